#pragma once
// The journal of DESIGN.md §5: append-only JSON lines, one file per rank per run, a
// record per finished tile, flushed and fsync'd after the tile's outputs are in place.
//
// So that a start does not read every file ever written, a finished run folds the
// stage's finished files into one snapshot (`<stage>.snapshot.jsonl`) and removes them:
// a start then reads the snapshot and the few files newer than it. A file is finished
// when no writer holds its flock(2) (a writer holds it from the file's creation to its
// close, and the kernel drops it when a writer dies).

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "pipeline/core/choice.hpp"
#include "pipeline/core/files.hpp"

namespace eo {

// The per-tile jobs that keep a journal; the name starts each of its files.
enum class JournalStage { run, prepare };
template <>
struct ChoiceTable<JournalStage> {
  static constexpr std::string_view what = "a journalled stage";
  static constexpr ChoiceName<JournalStage> names[] = {{"run", JournalStage::run}, {"prepare", JournalStage::prepare}};
};

// What a tile came to (DESIGN.md §5).
enum class TileStatus { done, nodata, failed };
template <>
struct ChoiceTable<TileStatus> {
  static constexpr std::string_view what = "a tile status";
  static constexpr ChoiceName<TileStatus> names[] = {
      {"done", TileStatus::done}, {"nodata", TileStatus::nodata}, {"failed", TileStatus::failed}};
};

struct JournalRecord {
  JournalStage stage = JournalStage::run;
  std::string tile;
  TileStatus status = TileStatus::done;
  std::string fingerprint;
  std::string config_hash;
  std::string model_hash;
  int chips = 0;
  int nodata_chips = 0;
  double seconds = 0;
  std::string error;
  int rank = 0;
  std::string run_id;
  std::int64_t time_ns = 0;  // wall clock, orders records across files
  // What the tile wrote, relative to the output (absolute when outside it), as it was
  // written: what `status --verify` compares the files with. Empty in older records.
  std::vector<WrittenFile> files;
};

class JournalWriter {
 public:
  JournalWriter(const std::filesystem::path& dir, JournalStage stage, int rank, const std::string& run_id);
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;
  // Writes the record and returns only once it is on disk.
  void append(JournalRecord record);
  // No more records: the file is finished and may be compacted.
  void close();
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  std::FILE* out_ = nullptr;
  JournalStage stage_;
  std::string run_id_;
  int rank_ = 0;
};

// Every record of a stage, per tile, oldest first (after compaction: every failure, and
// the latest record, which is all that decide() and `status` look at).
using JournalHistory = std::map<std::string, std::vector<JournalRecord>>;
// The snapshot and the files it has not absorbed. A torn last line (a crash while
// writing) is skipped. `files_opened`, when given, counts the files read.
JournalHistory read_journal(const std::filesystem::path& dir, JournalStage stage, int* files_opened = nullptr);

// Folds the stage's finished files into the snapshot, then removes them. Safe against
// writers still appending (their files are left), another compaction (they take turns)
// and a crash at any moment (the snapshot names the files it absorbed, so a file left
// behind is not counted twice). Returns the number of files removed; `history`, when
// given, receives the snapshot's records (what read_journal then reads, less the files
// writers still hold).
int compact_journal(const std::filesystem::path& dir, JournalStage stage, JournalHistory* history = nullptr);

// A history as text and back, for one rank to read the journal and share it.
std::string journal_to_text(const JournalHistory& history);
JournalHistory journal_from_text(const std::string& text);

enum class TileAction { process, skip_done, skip_failed };
// Done (or no data) with this fingerprint: skip. Failed `max_attempts` times with this
// fingerprint: left failed. Otherwise: process.
TileAction decide(const std::vector<JournalRecord>& history, const std::string& fingerprint, int max_attempts);
// The same for `tile` of a whole history (a tile never recorded is processed).
TileAction decide(const JournalHistory& history, const std::string& tile, const std::string& fingerprint, int max_attempts);

// A run id unique per run: UTC time, process id, and the run's number in the process.
std::string new_run_id();

}  // namespace eo
