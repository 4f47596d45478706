#pragma once
// The one way a file appears in an output (DESIGN.md §4, §5): its content is written to a
// temporary name in the same folder, fsync'd, renamed over the final name, and the folder
// is fsync'd. A reader, a crash or a power cut then finds the old file or the new one,
// whole, and a journal record written after publishing never outlives the file it
// vouches for. Every writer of the project publishes this way: the cube's chunks and
// metadata, chip stores, checkpoints, exports, synthetic rasters, catalogs and reports.

#include <filesystem>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace eo {

// Temporary names start with this (`.tmp.<pid>.<name>`): hidden, unique per writing
// process, and ending with the final name so that a driver chosen by extension still
// recognises it.
inline constexpr std::string_view kTemporaryPrefix = ".tmp.";

// A file being written under its temporary name. Write to temporary(), then publish();
// destroyed unpublished (an exception, a tile that failed), the temporary is removed.
class PendingFile {
 public:
  explicit PendingFile(std::filesystem::path file);  // creates the folder
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  const std::filesystem::path& file() const { return file_; }
  const std::filesystem::path& temporary() const { return temporary_; }
  // fsync the temporary (a file; a symbolic link has nothing to sync), rename it into
  // place, fsync the folder. Throws std::runtime_error naming the file. Failpoints
  // `publish-written`, `publish-synced` and `publish-renamed` sit between the steps.
  void publish();

 private:
  std::filesystem::path file_, temporary_;
  bool published_ = false;
};

// `write` makes the content at the temporary path it is given; then the file is published.
void publish_file(const std::filesystem::path& file, const std::function<void(const std::filesystem::path&)>& write);

// Publishes `text` as `file`.
void write_atomically(const std::filesystem::path& file, std::string_view text);

// Temporaries that killed writers left in `dir` (and its subfolders when `recursive`),
// removed; returns how many. Call it only while nobody else writes there.
int remove_stale_temporaries(const std::filesystem::path& dir, bool recursive = false);

// A JSON file's document. Throws std::runtime_error naming the file when it cannot be
// opened or is not JSON.
nlohmann::json read_json_file(const std::filesystem::path& file);
// The same for a file a user named (--labels, --examples): a ConfigError, naming the file.
nlohmann::json read_user_json_file(const std::filesystem::path& file);

// Content hash of a file, read in pieces (a paper-size checkpoint is ~3 GB).
std::string file_hash(const std::filesystem::path& file);

}  // namespace eo
