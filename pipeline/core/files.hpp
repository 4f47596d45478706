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

// A published file as it was written: what the journal records so that a later check
// finds a file changed or damaged since (`status --verify`).
struct WrittenFile {
  std::filesystem::path file;
  std::int64_t bytes = 0;
  std::string hash;  // content_hash
};
// One Hasher field over the whole content (file_hash, which hashes in 1 MiB pieces for
// fingerprints, gives other values for the same bytes).
std::string content_hash(std::string_view content);
WrittenFile written_file(const std::filesystem::path& file, std::string_view content);

// Temporaries that killed writers left in `dir` (and its subfolders when `recursive`),
// removed; returns how many. Call it only while nobody else writes there.
int remove_stale_temporaries(const std::filesystem::path& dir, bool recursive = false);

// JSON documents nested deeper than this are refused, so that no reader recurses as deep
// as its input says (GeoJSON needs about 10 levels, and one more pair per nested
// GeometryCollection).
inline constexpr int kMaxJsonDepth = 64;
// `text`'s JSON document. Throws std::runtime_error naming `source` when it is not JSON
// or is nested too deep.
nlohmann::json parse_json(std::string_view text, const std::string& source);

// Throws std::runtime_error naming `file` unless it is a regular file (or a link to one):
// reading a FIFO or a device blocks or never ends.
void require_regular_file(const std::filesystem::path& file);

// A JSON file's document. Throws std::runtime_error naming the file when it cannot be
// opened, is not a regular file, is not JSON or is nested too deep.
nlohmann::json read_json_file(const std::filesystem::path& file);
// The same for a file a user named (--labels, --examples): a ConfigError, naming the file.
nlohmann::json read_user_json_file(const std::filesystem::path& file);

// Throws ConfigError when writing `output` would replace `input` (the same file, by any
// path or link), naming both and the option that gave the input.
void refuse_output_over_input(const std::filesystem::path& output, const std::filesystem::path& input, const std::string& option);

// Content hash of a file, read in pieces (a paper-size checkpoint is ~3 GB).
std::string file_hash(const std::filesystem::path& file);

}  // namespace eo
