#include "pipeline/core/verify.hpp"

#include <fmt/format.h>

#include <fstream>
#include <iterator>

#include "pipeline/core/files.hpp"

namespace eo {

namespace fs = std::filesystem;

namespace {

// What is wrong with a recorded file now, or "".
std::string file_problem(const fs::path& output, const WrittenFile& f) {
  const fs::path file = f.file.is_absolute() ? f.file : output / f.file;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return fmt::format("{}: missing", file.string());
  std::ifstream in(file, std::ios::binary);
  const std::string content((std::istreambuf_iterator<char>(in)), {});  // a read that fails comes up short
  if (static_cast<std::int64_t>(content.size()) != f.bytes)
    return fmt::format("{}: {} bytes, {} written", file.string(), content.size(), f.bytes);
  if (content_hash(content) != f.hash) return fmt::format("{}: its content changed since it was written", file.string());
  return "";
}

}  // namespace

Verification verify_outputs(const fs::path& output, JournalStage stage) {
  Verification v;
  for (const auto& [tile, records] : read_journal(output / "journal", stage)) {
    const JournalRecord& latest = records.back();
    if (latest.status == TileStatus::failed) continue;
    ++v.tiles;
    if (latest.files.empty()) ++v.unrecorded;
    for (const WrittenFile& f : latest.files) {
      ++v.files;
      if (std::string problem = file_problem(output, f); !problem.empty()) v.damaged.push_back({tile, std::move(problem)});
    }
  }
  return v;
}

void journal_damage(const fs::path& output, JournalStage stage, const std::vector<Damage>& damaged) {
  if (damaged.empty()) return;
  JournalWriter journal(output / "journal", stage, 0, new_run_id());
  std::string last;
  for (const Damage& d : damaged) {
    if (d.tile == last) continue;  // one record per tile
    last = d.tile;
    JournalRecord r;
    r.stage = stage;
    r.tile = d.tile;
    r.status = TileStatus::failed;
    r.fingerprint = "damaged";
    r.error = fmt::format("tile {}: verify: {}", d.tile, d.problem);
    journal.append(r);
  }
  journal.close();
}

}  // namespace eo
