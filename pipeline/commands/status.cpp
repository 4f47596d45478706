// `eo-pipeline status`: where a job stands, from its journal: per zone the tiles done,
// with no data, failed and pending, and every failure with its reason.

#include <fmt/format.h>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/journal.hpp"
#include "pipeline/core/lock.hpp"
#include "pipeline/core/plan.hpp"

namespace eo {

void add_status_command(CLI::App& app, StatusOptions& opts) {
  auto* cmd = app.add_subcommand("status", "tiles done / no data / failed / pending per zone, and the failures");
  add_common_options(*cmd, opts.common);
  add_choice_option(*cmd, "--stage", opts.stage, "the job to report on (default: run)");
  cmd->add_flag("--json", opts.json, "as JSON");
}

int run_status(const StatusOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const Plan plan = make_plan(load_aois(*config));
  const auto journal_dir = config->output / "journal";
  const auto history = read_journal(journal_dir, opts.stage);
  const int max_attempts = opts.stage == JournalStage::run ? config->run.max_attempts : config->prepare.max_attempts;

  struct Counts {
    int tiles = 0, done = 0, nodata = 0, failed = 0, pending = 0;
    std::int64_t chips = 0;
  };
  std::map<std::string, Counts> zones;
  Counts total;
  nlohmann::json failures = nlohmann::json::array();
  for (const TilePlan& tile : plan.tiles) {
    Counts& z = zones[tile.id.zone.name()];
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
      failures.push_back({{"tile", tile.id.str()}, {"attempts", attempts}, {"retried", attempts < max_attempts},
                          {"rank", last.rank}, {"run", last.run_id}, {"error", last.error}});
    }
  }
  for (const auto& [name, z] : zones) {
    total.tiles += z.tiles; total.done += z.done; total.nodata += z.nodata;
    total.failed += z.failed; total.pending += z.pending; total.chips += z.chips;
  }
  // A run holding the output's lock is in progress.
  std::string running;
  if (opts.stage == JournalStage::run && std::filesystem::exists(config->output / "run.lock")) {
    try {
      OutputLock probe(config->output / "run.lock", "eo-pipeline status");
    } catch (const LockedError& e) {
      running = e.what();
    }
  }

  if (opts.json) {
    nlohmann::json j = {{"stage", name_str(opts.stage)}, {"output", config->output.string()}, {"running", !running.empty()},
                        {"failures", failures}};
    auto counts = [](const Counts& c) {
      return nlohmann::json{{"tiles", c.tiles}, {"done", c.done}, {"nodata", c.nodata}, {"failed", c.failed},
                            {"pending", c.pending}, {"chips", c.chips}};
    };
    for (const auto& [name, z] : zones) j["zones"][name] = counts(z);
    j["total"] = counts(total);
    std::cout << j.dump(2) << '\n';
    return kExitOk;
  }
  std::cout << fmt::format("{} of {} ({}), journal {}\n", name_of(opts.stage), config->name, config->source, journal_dir.string());
  if (!running.empty()) std::cout << "in progress: " << running << '\n';
  std::cout << fmt::format("{:<6} {:>7} {:>7} {:>8} {:>7} {:>8} {:>10}\n", "zone", "tiles", "done", "no data", "failed",
                           "pending", "chips");
  auto line = [](const std::string& name, const Counts& z) {
    return fmt::format("{:<6} {:>7} {:>7} {:>8} {:>7} {:>8} {:>10}\n", name, z.tiles, z.done, z.nodata, z.failed,
                       z.pending, z.chips);
  };
  for (const auto& [name, z] : zones) std::cout << line(name, z);
  std::cout << line("total", total);
  if (!failures.empty()) {
    std::cout << "failures:\n";
    for (const auto& f : failures)
      std::cout << fmt::format("  {} (attempt {} of {}{}): {}\n", f["tile"].get<std::string>(), f["attempts"].get<int>(),
                               max_attempts, f["retried"].get<bool>() ? ", retried by the next run" : ", left failed",
                               f["error"].get<std::string>());
  }
  return kExitOk;
}

}  // namespace eo
