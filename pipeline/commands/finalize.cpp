// `eo-pipeline todo` and `eo-pipeline finalize`, for runs as SLURM job arrays (slurm/):
// where every tile of an output stands against its inputs, config and model now, and
// which tasks of the array own the tiles still to do. `todo` only says (the submit
// helper sizes an incremental array with it); `finalize` runs once the array has ended:
// it cleans what killed tasks left, writes the run report and says what to resubmit.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/journal.hpp"
#include "pipeline/core/lock.hpp"
#include "pipeline/driver/inputs.hpp"
#include "schedulers/partition.hpp"

namespace eo {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Where the tiles stand, and the tasks of an array of `array_size` that own those to do.
struct Standing {
  std::size_t tiles = 0;
  int done = 0, nodata = 0, left_failed = 0;
  int never_run = 0, changed = 0, retry = 0;  // why a tile is to do
  std::int64_t chips = 0;
  std::vector<std::string> todo;
  std::vector<int> tasks;
  json failures = json::array();  // left failed: attempts used up
};

Standing stand(const RunInputs& in, const Config& config, int array_size) {
  const auto history = read_journal(config.output / "journal", JournalStage::run);
  Standing s;
  s.tiles = in.plan.tiles.size();
  std::vector<bool> to_do(s.tiles, false);
  for (std::size_t i = 0; i < s.tiles; ++i) {
    const std::string id = in.plan.tiles[i].id.str();
    const std::string fingerprint = run_fingerprint(in, config, in.plan.tiles[i]);
    const TileAction action = decide(history, id, fingerprint, config.run.max_attempts);
    const auto it = history.find(id);
    const JournalRecord* last = it == history.end() ? nullptr : &it->second.back();
    if (action == TileAction::process) {
      to_do[i] = true;
      s.todo.push_back(id);
      ++(!last ? s.never_run : last->fingerprint != fingerprint ? s.changed : s.retry);
    } else if (action == TileAction::skip_failed) {
      ++s.left_failed;
      s.failures.push_back({{"tile", id}, {"error", last->error}});
    } else {
      ++(last->status == TileStatus::done ? s.done : s.nodata);
      s.chips += last->chips;
    }
  }
  if (array_size > 0) {
    const Assignment blocks = static_partition(in.plan.tiles, array_size, config.order);
    for (int t = 0; t < array_size; ++t)
      if (std::any_of(blocks[static_cast<std::size_t>(t)].begin(), blocks[static_cast<std::size_t>(t)].end(),
                      [&](std::size_t i) { return to_do[i]; }))
        s.tasks.push_back(t);
  }
  return s;
}

std::string summary(const Standing& s) {
  return fmt::format("{} tiles: {} done, {} no data, {} left failed; {} to do ({} never run, {} with changed inputs, "
                     "config or model, {} failed with attempts left)",
                     s.tiles, s.done, s.nodata, s.left_failed, s.todo.size(), s.never_run, s.changed, s.retry);
}

}  // namespace

int run_todo(const TodoOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const RunInputs in = load_run_inputs(*config, Comm::world());
  int size = opts.array_size;
  if (opts.tiles_per_task > 0) {
    const auto tiles = static_cast<int>(in.plan.tiles.size());
    size = std::clamp((tiles + opts.tiles_per_task - 1) / opts.tiles_per_task, 1, opts.max_tasks);
  }
  const Standing s = stand(in, *config, size);
  if (opts.shell) {
    std::cout << fmt::format("EO_ARRAY_SIZE={}\nEO_TASKS={}\nEO_TILES={}\nEO_TILES_TODO={}\nEO_MODEL_VERSION={}\n"
                             "EO_OUTPUT_DIR={}\n",
                             size, fmt::join(s.tasks, ","), s.tiles, s.todo.size(), in.model_version,
                             fs::absolute(config->output).lexically_normal().string());
  } else if (opts.json) {
    std::cout << json{{"tiles", s.tiles}, {"done", s.done}, {"nodata", s.nodata}, {"left_failed", s.left_failed},
                      {"todo", s.todo}, {"never_run", s.never_run}, {"changed", s.changed}, {"retry", s.retry},
                      {"array_size", size}, {"array_tasks", s.tasks}, {"model_version", in.model_version},
                      {"cube", in.cube.string()}}
                     .dump(2)
              << '\n';
  } else {
    std::cout << summary(s) << '\n';
    if (size > 0) std::cout << fmt::format("array of {} tasks: tasks to run: {}\n", size, fmt::join(s.tasks, ","));
  }
  return kExitOk;
}

int run_finalize(const FinalizeOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const std::string chain = opts.chain.empty() ? array_chain() : opts.chain;
  // The array has ended (finalize runs afterany): a task still holding the lock is a
  // straggler, and writing the report beside it would be wrong.
  std::optional<OutputLock> lock;
  try {
    lock.emplace(config->output / "run.lock", "eo-pipeline finalize");
  } catch (const LockedError& e) {
    std::fprintf(stderr, "eo-pipeline: finalize refused: %s\n", e.what());
    return kExitUsage;
  }
  const RunInputs in = load_run_inputs(*config, Comm::world());
  if (const int n = remove_stale_temporaries(in.cube, true)) spdlog::info("removed {} partial chunks left by killed tasks", n);
  const Standing s = stand(in, *config, opts.array_size);

  json tasks = json::array();
  double busiest = 0;
  const fs::path reports = array_reports_dir(config->output, chain);
  if (fs::is_directory(reports))
    for (const auto& e : fs::directory_iterator(reports)) {
      if (e.path().extension() != ".json") continue;
      try {
        const json r = json::parse(std::ifstream(e.path()));
        tasks.push_back({{"task", r.at("array_task").at("index")}, {"job", r.at("array_task").at("job")},
                         {"restarts", r.at("array_task").at("restarts")}, {"exit_code", r.at("exit_code")},
                         {"tiles", r.at("tiles")}, {"done", r.at("done")}, {"failed", r.at("failed")},
                         {"skipped_done", r.at("skipped_done")}, {"chips_embedded", r.at("chips_embedded")},
                         {"seconds", r.at("seconds")}, {"peak_rss_mib_per_rank", r.at("peak_rss_mib_per_rank")}});
        busiest = std::max(busiest, r.at("seconds").get<double>());
      } catch (const json::exception& x) {
        spdlog::warn("{}: not a task report ({}): left out of the run report", e.path().string(), x.what());
      }
    }
  std::sort(tasks.begin(), tasks.end(), [](const json& a, const json& b) {
    return std::tie(a["task"], a["job"]) < std::tie(b["task"], b["job"]);
  });

  int code = !s.todo.empty() ? kExitWorkLeft : s.left_failed > 0 ? kExitTilesFailed : kExitOk;
  const json stac = describe_cube(in);
  if (stac.contains("error")) code = std::max(code, kExitTilesFailed);
  const json report = {{"chain", chain}, {"array_size", opts.array_size}, {"tiles", s.tiles}, {"done", s.done},
                       {"nodata", s.nodata}, {"left_failed", s.left_failed}, {"todo", s.todo.size()},
                       {"todo_never_run", s.never_run}, {"todo_changed", s.changed}, {"todo_retry", s.retry},
                       {"resubmit_tasks", s.tasks}, {"chips_embedded_in_cube", s.chips}, {"tasks", tasks},
                       {"longest_task_seconds", busiest}, {"model_version", in.model_version},
                       {"model_hash", in.model_hash}, {"cube", in.cube.string()}, {"failures", s.failures},
                       {"stac", stac}, {"exit_code", code}};
  const fs::path file = config->output / "run" / "report.json";
  write_atomically(file, report.dump(2) + "\n");
  if (opts.json) {
    std::cout << report.dump(2) << '\n';
  } else {
    std::cout << "finalize: " << summary(s) << '\n';
    for (const auto& f : s.failures)
      std::cout << fmt::format("  left failed: {}\n", f["error"].get<std::string>());
    if (!s.tasks.empty())
      std::cout << fmt::format("  resubmit array tasks {} of {}\n", fmt::join(s.tasks, ","), opts.array_size);
    std::cout << "cube: " << in.cube.string() << "  report: " << file.string() << '\n';
  }
  return code;
}

}  // namespace eo
