#include "pipeline/core/journal.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <fcntl.h>
#include <optional>
#include <set>
#include <spdlog/spdlog.h>
#include <sstream>
#include <sys/file.h>
#include <unistd.h>
#include <utility>

#include "pipeline/core/failpoint.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/grid.hpp"

namespace eo {

std::string new_run_id() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &utc);
  // A process that runs the loop twice in one second (tests do) still gets two ids: a
  // compacted file's name must never be written again.
  static std::atomic<int> runs{0};
  const int n = runs++;
  return n == 0 ? fmt::format("{}-p{}", buf, ::getpid()) : fmt::format("{}-p{}-{}", buf, ::getpid(), n);
}

namespace {

nlohmann::json files_json(const std::vector<WrittenFile>& files) {
  nlohmann::json out = nlohmann::json::array();
  for (const WrittenFile& f : files) out.push_back({{"path", f.file.string()}, {"bytes", f.bytes}, {"hash", f.hash}});
  return out;
}

nlohmann::json to_json(const JournalRecord& r) {
  return {{"stage", name_str(r.stage)}, {"tile", r.tile}, {"status", name_str(r.status)},
          {"fingerprint", r.fingerprint}, {"config_hash", r.config_hash}, {"model_hash", r.model_hash},
          {"chips", r.chips},   {"nodata_chips", r.nodata_chips}, {"seconds", r.seconds},
          {"error", r.error},   {"rank", r.rank},          {"run_id", r.run_id},
          {"time_ns", r.time_ns}, {"files", files_json(r.files)}};
}

// Throws on anything but a whole record.
JournalRecord from_json(const nlohmann::json& j) {
  JournalRecord r;
  r.stage = parse_choice_or_throw<JournalStage>(j.at("stage").get<std::string>(), "stage");
  r.tile = j.at("tile");
  r.status = parse_choice_or_throw<TileStatus>(j.at("status").get<std::string>(), "status");
  r.fingerprint = j.value("fingerprint", "");
  r.config_hash = j.value("config_hash", "");
  r.model_hash = j.value("model_hash", "");
  r.chips = j.value("chips", 0);
  r.nodata_chips = j.value("nodata_chips", 0);
  r.seconds = j.value("seconds", 0.0);
  r.error = j.value("error", "");
  r.rank = j.value("rank", 0);
  r.run_id = j.value("run_id", "");
  r.time_ns = j.value("time_ns", std::int64_t{0});
  for (const auto& f : j.value("files", nlohmann::json::array()))
    r.files.push_back({f.at("path").get<std::string>(), f.at("bytes").get<std::int64_t>(), f.at("hash").get<std::string>()});
  // A record says what a tile came to: counts no tile can have are damage, not facts.
  if (r.chips < 0 || r.chips > kChipsPerTile || r.nodata_chips < 0 || r.nodata_chips > kChipsPerTile)
    throw std::invalid_argument(fmt::format("tile {}: {} chips and {} without data is not a tile of {} chips", r.tile, r.chips,
                                            r.nodata_chips, kChipsPerTile));
  return r;
}

// The records of JSON lines; a torn line (a crash while writing) is skipped, and a whole
// record that cannot be true is skipped with a warning: its tile is then redone.
void add_lines(std::istream& in, JournalHistory& out, const std::filesystem::path& file, int line = 0) {
  for (std::string text; std::getline(in, text);) {
    ++line;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const std::exception&) {
      continue;
    }
    try {
      JournalRecord r = from_json(j);
      out[r.tile].push_back(std::move(r));
    } catch (const std::exception& e) {
      spdlog::warn("journal {}:{}: record left out: {}", file.string(), line, e.what());
    }
  }
}

void order_by_time(JournalHistory& history) {
  for (auto& [tile, records] : history)
    std::stable_sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
}

std::filesystem::path compaction_lock(const std::filesystem::path& dir, JournalStage stage) {
  return dir / fmt::format(".{}.compact.lock", name_of(stage));
}

std::filesystem::path snapshot_path(const std::filesystem::path& dir, JournalStage stage) {
  return dir / fmt::format("{}.snapshot.jsonl", name_of(stage));
}

// A run's file of the stage: `<stage>-<run>-r<rank>.jsonl`.
bool is_run_file(const std::filesystem::path& file, JournalStage stage) {
  return file.filename().string().rfind(name_str(stage) + "-", 0) == 0 && file.extension() == ".jsonl";
}

struct Snapshot {
  std::set<std::string> absorbed;  // names of the files whose records it holds
  JournalHistory history;
};

// The snapshot's first line names the files it absorbed; the records follow.
Snapshot read_snapshot(const std::filesystem::path& file) {
  Snapshot s;
  std::ifstream in(file);
  if (!in) return s;
  std::string head;
  std::getline(in, head);
  try {
    const auto first = nlohmann::json::parse(head);
    for (const auto& name : first.at("absorbed")) s.absorbed.insert(name.get<std::string>());
  } catch (const std::exception& e) {
    // Published atomically, so never torn: this is damage, and guessing would count
    // records twice or lose them.
    throw std::runtime_error(fmt::format("journal snapshot {}: unreadable first line: {}", file.string(), e.what()));
  }
  add_lines(in, s.history, file, 1);
  return s;
}

// What decide() and `status` need of a tile's records: every failure (attempts are
// counted per fingerprint) and the latest record.
void prune(std::vector<JournalRecord>& records) {
  std::vector<JournalRecord> kept;
  for (std::size_t i = 0; i < records.size(); ++i)
    if (records[i].status == TileStatus::failed || i + 1 == records.size()) kept.push_back(std::move(records[i]));
  records = std::move(kept);
}

// An flock(2) held for the life of the object.
class FileLock {
 public:
  FileLock(const std::filesystem::path& file, int flags, int operation) : fd_(::open(file.c_str(), flags | O_CLOEXEC, 0644)) {
    if (fd_ < 0) throw std::runtime_error(fmt::format("journal {}: cannot open: {}", file.string(), std::strerror(errno)));
    if (::flock(fd_, operation) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileLock(FileLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace

JournalWriter::JournalWriter(const std::filesystem::path& dir, JournalStage stage, int rank, const std::string& run_id)
    : stage_(stage), run_id_(run_id), rank_(rank) {
  std::filesystem::create_directories(dir);  // fails early if the output cannot be written
  file_ = dir / fmt::format("{}-{}-r{}.jsonl", name_of(stage), run_id, rank);
  // The compaction's lock exists before any file to compact, so that a reader always
  // finds it and never reads while a compaction swaps files for the snapshot.
  if (const int fd = ::open(compaction_lock(dir, stage).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644); fd >= 0) ::close(fd);
}

JournalWriter::~JournalWriter() { close(); }

void JournalWriter::close() {
  if (out_) std::fclose(out_);  // drops the flock: the file is finished
  out_ = nullptr;
}

void JournalWriter::append(JournalRecord r) {
  if (!out_) {
    // Opened at the first record: a run that finishes no tile leaves no file. Created and
    // locked under a temporary name, so that a compaction never sees it unlocked.
    const auto temporary = file_.parent_path() / fmt::format("{}{}.{}", kTemporaryPrefix, ::getpid(), file_.filename().string());
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0 || std::rename(temporary.c_str(), file_.c_str()) != 0 ||
        !(out_ = ::fdopen(fd, "a"))) {
      const std::string why = std::strerror(errno);
      if (fd >= 0) ::close(fd);
      throw std::runtime_error(fmt::format("journal {}: cannot open for appending: {}", file_.string(), why));
    }
  }
  r.stage = stage_;
  r.rank = rank_;
  r.run_id = run_id_;
  r.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string line = to_json(r).dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), out_) != line.size() || std::fflush(out_) != 0 || ::fsync(fileno(out_)) != 0)
    throw std::runtime_error(
        fmt::format("journal {}: cannot write the record of tile {}: {}", file_.string(), r.tile, std::strerror(errno)));
}

JournalHistory read_journal(const std::filesystem::path& dir, JournalStage stage, int* files_opened) {
  int opened = 0;
  // Shared with other readers, never read while a compaction swaps the snapshot for files.
  const auto turn_file = compaction_lock(dir, stage);
  std::optional<FileLock> turn;
  if (std::filesystem::exists(turn_file)) turn.emplace(turn_file, O_RDONLY, LOCK_SH);
  Snapshot snapshot;
  if (std::filesystem::exists(snapshot_path(dir, stage))) {
    snapshot = read_snapshot(snapshot_path(dir, stage));
    ++opened;
  }
  JournalHistory& out = snapshot.history;
  if (std::filesystem::is_directory(dir))
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (!is_run_file(entry.path(), stage) || snapshot.absorbed.count(entry.path().filename().string())) continue;
      std::ifstream in(entry.path());
      ++opened;
      add_lines(in, out, entry.path());
    }
  order_by_time(out);
  if (files_opened) *files_opened = opened;
  return std::move(out);
}

int compact_journal(const std::filesystem::path& dir, JournalStage stage, JournalHistory* history) {
  if (!std::filesystem::is_directory(dir)) return 0;
  const FileLock turn(compaction_lock(dir, stage), O_RDWR | O_CREAT, LOCK_EX);
  if (!turn.held()) throw std::runtime_error(fmt::format("journal {}: cannot lock for compaction", dir.string()));
  const auto snapshot_file = snapshot_path(dir, stage);
  Snapshot snapshot = read_snapshot(snapshot_file);
  std::set<std::string> absorbed;      // the new snapshot's list
  std::vector<std::filesystem::path> remove;
  std::vector<FileLock> finished;      // held until the files are gone
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!is_run_file(entry.path(), stage)) continue;
    const std::string name = entry.path().filename().string();
    if (snapshot.absorbed.count(name)) {  // absorbed by a compaction that died before removing it
      absorbed.insert(name);
      remove.push_back(entry.path());
      continue;
    }
    FileLock lock(entry.path(), O_RDONLY, LOCK_EX | LOCK_NB);
    if (!lock.held()) continue;  // a writer still appends to it
    std::ifstream in(entry.path());
    add_lines(in, snapshot.history, entry.path());
    absorbed.insert(name);
    remove.push_back(entry.path());
    finished.push_back(std::move(lock));
  }
  order_by_time(snapshot.history);
  if (remove.empty()) {
    if (history) *history = std::move(snapshot.history);
    return 0;
  }
  std::string text = nlohmann::json{{"absorbed", absorbed}}.dump() + "\n";
  for (auto& [tile, records] : snapshot.history) {
    prune(records);
    for (const JournalRecord& r : records) text += to_json(r).dump() + "\n";
  }
  write_atomically(snapshot_file, text);
  failpoint("journal-compacted");
  int removed = 0;
  for (const auto& file : remove) removed += std::filesystem::remove(file) ? 1 : 0;
  if (history) *history = std::move(snapshot.history);
  return removed;
}

std::string journal_to_text(const JournalHistory& history) {
  std::string text;
  for (const auto& [tile, records] : history)
    for (const JournalRecord& r : records) text += to_json(r).dump() + "\n";
  return text;
}

JournalHistory journal_from_text(const std::string& text) {
  JournalHistory out;
  std::istringstream in(text);
  add_lines(in, out, "(as rank 0 read it)");
  return out;
}

TileAction decide(const std::vector<JournalRecord>& history, const std::string& fingerprint, int max_attempts) {
  if (history.empty()) return TileAction::process;
  const JournalRecord& latest = history.back();
  if (latest.status != TileStatus::failed && latest.fingerprint == fingerprint) return TileAction::skip_done;
  const auto failures = std::count_if(history.begin(), history.end(), [&](const JournalRecord& r) {
    return r.status == TileStatus::failed && r.fingerprint == fingerprint;
  });
  return failures >= max_attempts ? TileAction::skip_failed : TileAction::process;
}

TileAction decide(const JournalHistory& history, const std::string& tile, const std::string& fingerprint, int max_attempts) {
  const auto it = history.find(tile);
  return it == history.end() ? TileAction::process : decide(it->second, fingerprint, max_attempts);
}

}  // namespace eo
