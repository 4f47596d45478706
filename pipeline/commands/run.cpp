// `mpirun eo-pipeline run`, the main job: every rank takes its tiles of the plan and runs
// ingest -> reproject -> chip (read ahead by the tile loop) -> embed -> the tile's cube
// chunks -> the journal, so that an interrupted or failed run resumes where it stopped and
// ends with the same cube. This file is the set-up; pipeline/driver has the reader, the
// sinks and the loop.

#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/failpoint.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/lock.hpp"
#include "pipeline/driver/inputs.hpp"
#include "pipeline/driver/readers.hpp"
#include "pipeline/driver/sinks.hpp"
#include "pipeline/driver/tile_loop.hpp"
#include "pipeline/core/verify.hpp"
#include "schedulers/partition.hpp"

namespace eo {

namespace {

namespace fs = std::filesystem;

// By rank 0, holding the lock: the cube created once, before any rank writes.
void set_up_output(const Config& config, const RunInputs& in, OutputLock& lock) {
  // Partial chunks are only left by runs that died; with other tasks of the array
  // writing, a temporary may be theirs.
  if (lock.first())
    if (const int n = remove_stale_temporaries(in.cube, true)) spdlog::info("removed {} partial chunks of an interrupted run", n);
  set_up_cube(config, in);
  write_resolved_config(config, config.output / "run" / "config.yaml");
  lock.setup_done();
}

TileLoopSpec loop_spec(const Config& config, const RunInputs& in, std::chrono::steady_clock::time_point started) {
  TileLoopSpec spec;
  spec.stage = JournalStage::run;
  spec.journal = config.output / "journal";
  spec.max_attempts = config.run.max_attempts;
  spec.prefetch = config.run.prefetch;
  spec.fingerprint = [&](const TilePlan& t) { return run_fingerprint(in, config, t); };
  spec.config_hash = config_hash(config);
  spec.model_hash = in.model_hash;
  spec.chips_key = "chips_embedded";
  spec.seconds_keys = {"read_warp_chip", "embed", "write", "model_waiting_for_data"};
  spec.started = started;
  return spec;
}

// Rank 0's ending: the cube's STAC (once every task of an array is done: finalize), the
// report published and printed.
int report_run(const RunOptions& opts, const Config& config, const RunInputs& in, const std::optional<ArrayTask>& task,
               const TileLoopSpec& spec, LoopResult& result, const nlohmann::json& more) {
  nlohmann::json& report = result.report;
  if (!task) {
    report["stac"] = describe_cube(in);
    if (report["stac"].contains("error")) {
      result.exit_code = std::max(result.exit_code, kExitTilesFailed);
      report["exit_code"] = result.exit_code;
    }
  }
  report.update(more);
  // An array task reports on its own tiles, beside the other tasks'; finalize reports on them all.
  fs::path report_file = config.output / "run" / "report.json";
  if (task) {
    const std::string job = env_or("SLURM_JOB_ID", "0");
    report["array_task"] = {{"index", task->index}, {"count", task->count}, {"job", job},
                            {"array_job", env_or("SLURM_ARRAY_JOB_ID", "")},
                            {"restarts", std::stoi(env_or("SLURM_RESTART_COUNT", "0"))}};
    report_file = array_reports_dir(config.output, array_chain()) / fmt::format("task-{}-job-{}.json", task->index, job);
  }
  write_report(report_file, report);
  if (opts.json)
    std::cout << report.dump(2) << '\n';
  else
    std::cout << summary_text(spec, report, "embedded") << "cube: " << in.cube.string()
              << "  report: " << report_file.string() << '\n';
  return result.exit_code;
}

}  // namespace

int run_run(const RunOptions& opts) {
  const Comm comm = Comm::world();
  const int rank = comm.rank();
  auto config = start_command(opts.common, rank);
  if (!config) return kExitOk;
  if (opts.partition) config->partition = *opts.partition;
  if (opts.inputs) config->run.inputs = *opts.inputs;
  const auto t0 = std::chrono::steady_clock::now();
  const std::optional<ArrayTask> task =
      config->partition == Partition::slurm_array ? std::optional(array_task_from_env()) : std::nullopt;

  std::optional<OutputLock> lock;
  const std::string what = task ? fmt::format("eo-pipeline run, array task {} of {} ({} ranks)", task->index, task->count, comm.size())
                                : fmt::format("eo-pipeline run ({} ranks)", comm.size());
  if (const std::string refused = take_output_lock(*config, what, comm, lock); !refused.empty()) {
    if (rank == 0) std::fprintf(stderr, "eo-pipeline: run refused: %s\n", refused.c_str());
    return kExitUsage;
  }
  failpoint("run-locked");
  const RunInputs in = load_run_inputs(*config, comm);
  set_gdal_cache(config->warp.cache_mb);
  const int threads = threads_per_rank(config->run.threads, comm);
  // The model is loaded before the output is touched: a run that cannot load it leaves
  // OUTPUT/cube.zarr naming the cube it named.
  const Embedder embedder(in.card, config->model, config->data.modalities, threads);
  try {
    comm.rank_zero_tries([&] { set_up_output(*config, in, *lock); });
  } catch (const ConfigError& e) {  // the settings: a cube of another model named, ...
    if (rank == 0) std::fprintf(stderr, "eo-pipeline: run: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {  // the output could not be written: a run-time error
    if (rank == 0) std::fprintf(stderr, "eo-pipeline: run: %s\n", e.what());
    return kExitTilesFailed;
  }
  failpoint("run-set-up");
  if (opts.verify)
    comm.rank_zero_tries([&] {
      const Verification v = verify_outputs(config->output, JournalStage::run);
      for (const Damage& d : v.damaged) spdlog::warn("tile {}: damaged, redone: {}", d.tile, d.problem);
      spdlog::info("verified {} files of {} done tiles: {} damaged", v.files, v.tiles, v.damaged.size());
      journal_damage(config->output, JournalStage::run, v.damaged);
    });

  const CubeWriter cube(in.cube, in.spec);
  const TileReadOptions read_options = tile_read_options(*config, threads_per_rank(config->warp.threads, comm));
  ScheduleSpec schedule = schedule_spec(*config);
  schedule.task = task;
  TileSource tiles(schedule, in.plan, comm);
  if (rank == 0)
    spdlog::info("run: {} tiles{} ({} chips planned in all) on {} ranks, model {}, {} torch and {} warper threads per "
                 "rank, cube {}",
                 tiles.job_tiles().size(), task ? fmt::format(" of array task {} of {}", task->index, task->count) : "",
                 in.plan.total.chips, comm.size(), in.model_version, threads, read_options.threads, in.cube.string());

  const TileLoopSpec spec = loop_spec(*config, in, t0);
  const bool across_tiles = batches_across_tiles(*config);
  const auto sink = make_embed_sink(across_tiles, config->run, config->data.min_valid_fraction, in.spec, embedder,
                                    in.norm, cube);
  ReadCounts counts;
  LoopResult result = run_tile_loop(comm, in.plan, tiles, run_tile_reader(*config, in.catalog, read_options, counts),
                                    *sink, spec);
  const std::int64_t from_stores = comm.allreduce_sum(counts.from_stores.load()),
                     from_sources = comm.allreduce_sum(counts.from_sources.load());
  if (rank != 0) return result.exit_code;
  return report_run(opts, *config, in, task, spec, result,
                    {{"torch_threads_per_rank", threads}, {"warp_threads_per_rank", read_options.threads},
                     {"model", in.card.name}, {"model_version", in.model_version},
                     {"checkpoint", in.card.checkpoint.string()}, {"model_hash", in.model_hash},
                     {"cube", in.cube.string()}, {"dtype", name_str(config->run.dtype)},
                     {"inputs", name_str(config->run.inputs)},
                     {"batching", name_str(across_tiles ? Batching::across_tiles : Batching::per_row)},
                     {"tiles_from_chip_stores", from_stores}, {"tiles_from_sources", from_sources}});
}

}  // namespace eo
