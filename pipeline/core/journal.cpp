#include "pipeline/core/journal.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unistd.h>

namespace eo {

std::string new_run_id() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &utc);
  return fmt::format("{}-p{}", buf, ::getpid());
}

JournalWriter::JournalWriter(const std::filesystem::path& dir, const std::string& stage, int rank, const std::string& run_id)
    : stage_(stage), run_id_(run_id), rank_(rank) {
  std::filesystem::create_directories(dir);  // fails early if the output cannot be written
  file_ = dir / fmt::format("{}-{}-r{}.jsonl", stage, run_id, rank);
}

JournalWriter::~JournalWriter() {
  if (out_) std::fclose(out_);
}

void JournalWriter::append(JournalRecord r) {
  if (!out_) {  // opened at the first record: a run that finishes no tile leaves no file
    out_ = std::fopen(file_.c_str(), "a");
    if (!out_) throw std::runtime_error(fmt::format("journal {}: cannot open for appending", file_.string()));
  }
  r.stage = stage_;
  r.rank = rank_;
  r.run_id = run_id_;
  r.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const nlohmann::json j = {{"stage", r.stage},   {"tile", r.tile},           {"status", r.status},
                            {"fingerprint", r.fingerprint}, {"config_hash", r.config_hash}, {"model_hash", r.model_hash},
                            {"chips", r.chips},   {"nodata_chips", r.nodata_chips}, {"seconds", r.seconds},
                            {"error", r.error},   {"rank", r.rank},          {"run_id", r.run_id},
                            {"time_ns", r.time_ns}};
  const std::string line = j.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), out_) != line.size() || std::fflush(out_) != 0 || ::fsync(fileno(out_)) != 0)
    throw std::runtime_error(
        fmt::format("journal {}: cannot write the record of tile {}: {}", file_.string(), r.tile, std::strerror(errno)));
}

JournalHistory read_journal(const std::filesystem::path& dir, const std::string& stage) {
  JournalHistory out;
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(stage + "-", 0) != 0 || entry.path().extension() != ".jsonl") continue;
    std::ifstream in(entry.path());
    for (std::string text; std::getline(in, text);) {
      JournalRecord r;
      try {
        const auto j = nlohmann::json::parse(text);
        r.stage = j.at("stage");
        r.tile = j.at("tile");
        r.status = j.at("status");
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
      } catch (const std::exception&) {
        continue;  // a torn line from a crash: the tile is simply not recorded
      }
      out[r.tile].push_back(std::move(r));
    }
  }
  for (auto& [tile, records] : out)
    std::stable_sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
  return out;
}

TileAction decide(const std::vector<JournalRecord>& history, const std::string& fingerprint, int max_attempts) {
  if (history.empty()) return TileAction::process;
  const JournalRecord& latest = history.back();
  if ((latest.status == "done" || latest.status == "nodata") && latest.fingerprint == fingerprint) return TileAction::skip_done;
  const auto failures = std::count_if(history.begin(), history.end(), [&](const JournalRecord& r) {
    return r.status == "failed" && r.fingerprint == fingerprint;
  });
  return failures >= max_attempts ? TileAction::skip_failed : TileAction::process;
}

TileAction decide(const JournalHistory& history, const std::string& tile, const std::string& fingerprint, int max_attempts) {
  const auto it = history.find(tile);
  return it == history.end() ? TileAction::process : decide(it->second, fingerprint, max_attempts);
}

}  // namespace eo
