// `eo-pipeline status`: where a job stands, from its journal: per zone the tiles done,
// with no data, failed and pending, and every failure with its reason.

#include <algorithm>
#include <fmt/format.h>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/journal.hpp"
#include "pipeline/core/lock.hpp"
#include "pipeline/core/plan.hpp"
#include "pipeline/core/verify.hpp"

namespace eo {

namespace {

struct Counts {
  int tiles = 0, done = 0, nodata = 0, failed = 0, pending = 0;
  std::int64_t chips = 0;
};

// Where the job stands: per zone, in all, and each failed tile with its reason.
struct Standing {
  std::map<std::string, Counts> zones;
  Counts total;
  nlohmann::json failures = nlohmann::json::array();
};

Standing standing(const Plan& plan, const JournalHistory& history, int max_attempts) {
  Standing s;
  for (const TilePlan& tile : plan.tiles) {
    Counts& z = s.zones[tile.id.zone.name()];
    ++z.tiles;
    const auto it = history.find(tile.id.str());
    if (it == history.end()) {
      ++z.pending;
      continue;
    }
    const JournalRecord& last = it->second.back();
    if (last.status == TileStatus::done) {
      ++z.done;
      z.chips += last.chips;
    } else if (last.status == TileStatus::nodata) {
      ++z.nodata;
    } else {
      ++z.failed;
      const auto attempts = std::count_if(it->second.begin(), it->second.end(), [&](const JournalRecord& r) {
        return r.status == TileStatus::failed && r.fingerprint == last.fingerprint;
      });
      s.failures.push_back({{"tile", tile.id.str()}, {"attempts", attempts}, {"retried", attempts < max_attempts},
                            {"rank", last.rank}, {"run", last.run_id}, {"error", last.error}});
    }
  }
  for (const auto& [name, z] : s.zones) {
    s.total.tiles += z.tiles; s.total.done += z.done; s.total.nodata += z.nodata;
    s.total.failed += z.failed; s.total.pending += z.pending; s.total.chips += z.chips;
  }
  return s;
}

// Who holds the output's run lock, if a run is in progress.
std::string running_run(const Config& config) {
  const std::string holder = lock_holder(config.output / "run.lock");
  return holder.empty() ? "" : fmt::format("{} is in use ({})", config.output.string(), holder);
}

nlohmann::json as_json(const StatusOptions& opts, const Config& config, const Standing& s, const std::string& running) {
  nlohmann::json j = {{"stage", name_str(opts.stage)}, {"output", config.output.string()}, {"running", !running.empty()},
                      {"failures", s.failures}};
  auto counts = [](const Counts& c) {
    return nlohmann::json{{"tiles", c.tiles}, {"done", c.done}, {"nodata", c.nodata}, {"failed", c.failed},
                          {"pending", c.pending}, {"chips", c.chips}};
  };
  for (const auto& [name, z] : s.zones) j["zones"][name] = counts(z);
  j["total"] = counts(s.total);
  return j;
}

void print_table(const StatusOptions& opts, const Config& config, const Standing& s, const std::string& running,
                 int max_attempts) {
  std::cout << fmt::format("{} of {} ({}), journal {}\n", name_of(opts.stage), config.name, config.source,
                           (config.output / "journal").string());
  if (!running.empty()) std::cout << "in progress: " << running << '\n';
  std::cout << fmt::format("{:<6} {:>7} {:>7} {:>8} {:>7} {:>8} {:>10}\n", "zone", "tiles", "done", "no data", "failed",
                           "pending", "chips");
  auto line = [](const std::string& name, const Counts& z) {
    return fmt::format("{:<6} {:>7} {:>7} {:>8} {:>7} {:>8} {:>10}\n", name, z.tiles, z.done, z.nodata, z.failed,
                       z.pending, z.chips);
  };
  for (const auto& [name, z] : s.zones) std::cout << line(name, z);
  std::cout << line("total", s.total);
  if (s.failures.empty()) return;
  std::cout << "failures:\n";
  for (const auto& f : s.failures)
    std::cout << fmt::format("  {} (attempt {} of {}{}): {}\n", f["tile"].get<std::string>(), f["attempts"].get<int>(),
                             max_attempts, f["retried"].get<bool>() ? ", retried by the next run" : ", left failed",
                             f["error"].get<std::string>());
}

nlohmann::json verification_json(const Verification& v) {
  nlohmann::json damaged = nlohmann::json::array();
  for (const Damage& d : v.damaged) damaged.push_back({{"tile", d.tile}, {"problem", d.problem}});
  return {{"tiles", v.tiles}, {"files", v.files}, {"unrecorded", v.unrecorded}, {"damaged", damaged}};
}

void print_verification(const Verification& v) {
  std::cout << fmt::format("verified: {} files of {} done tiles; {} damaged", v.files, v.tiles, v.damaged.size());
  if (v.unrecorded)
    std::cout << fmt::format("; {} tiles list no files to check (chip stores are not listed, nor runs of older versions)",
                             v.unrecorded);
  std::cout << '\n';
  for (const Damage& d : v.damaged) std::cout << fmt::format("  damaged: tile {}: {}\n", d.tile, d.problem);
  if (!v.damaged.empty()) std::cout << "  `run --verify` redoes these tiles\n";
}

}  // namespace

int run_status(const StatusOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const int max_attempts = opts.stage == JournalStage::run ? config->run.max_attempts : config->prepare.max_attempts;
  const Standing s = standing(make_plan(load_aois(*config)), read_journal(config->output / "journal", opts.stage), max_attempts);
  // A run or a prepare holding the output's lock is in progress.
  const std::string running = running_run(*config);
  std::optional<Verification> checked;
  if (opts.verify) checked = verify_outputs(config->output, opts.stage);
  if (opts.json) {
    nlohmann::json j = as_json(opts, *config, s, running);
    if (checked) j["verify"] = verification_json(*checked);
    std::cout << j.dump(2) << '\n';
  } else {
    print_table(opts, *config, s, running, max_attempts);
    if (checked) print_verification(*checked);
  }
  return checked && !checked->damaged.empty() ? kExitTilesFailed : kExitOk;
}

}  // namespace eo
