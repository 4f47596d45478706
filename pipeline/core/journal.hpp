#pragma once
// The journal of DESIGN.md §5: append-only JSON lines, one file per rank per run, a
// record per finished tile, flushed and fsync'd after the tile's outputs are in place.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace eo {

struct JournalRecord {
  std::string stage;   // "prepare" or "run"
  std::string tile;
  std::string status;  // "done", "nodata" or "failed"
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
};

class JournalWriter {
 public:
  JournalWriter(const std::filesystem::path& dir, const std::string& stage, int rank, const std::string& run_id);
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;
  // Writes the record and returns only once it is on disk.
  void append(JournalRecord record);
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  std::FILE* out_ = nullptr;
  std::string stage_, run_id_;
  int rank_ = 0;
};

// Every record of a stage, per tile, oldest first.
using JournalHistory = std::map<std::string, std::vector<JournalRecord>>;
// A torn last line (a crash while writing) is skipped.
JournalHistory read_journal(const std::filesystem::path& dir, const std::string& stage);

enum class TileAction { process, skip_done, skip_failed };
// Done (or no data) with this fingerprint: skip. Failed `max_attempts` times with this
// fingerprint: left failed. Otherwise: process.
TileAction decide(const std::vector<JournalRecord>& history, const std::string& fingerprint, int max_attempts);
// The same for `tile` of a whole history (a tile never recorded is processed).
TileAction decide(const JournalHistory& history, const std::string& tile, const std::string& fingerprint, int max_attempts);

// A run id unique per process: UTC time and process id.
std::string new_run_id();

}  // namespace eo
