// `mpirun eo-pipeline run`, the main job: every rank takes its tiles of the plan and runs
// ingest -> reproject -> chip (read ahead by the tile loop) -> embed -> the tile's cube
// chunks -> the journal, so that an interrupted or failed run resumes where it stopped and
// ends with the same cube. This file is the set-up and the sink; pipeline/driver runs the
// loop.

#include <atomic>
#include <deque>
#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "pipeline/commands.hpp"
#include "pipeline/core/error.hpp"
#include "pipeline/core/failpoint.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/lock.hpp"
#include "pipeline/driver/inputs.hpp"
#include "pipeline/driver/run_inputs.hpp"
#include "pipeline/driver/tile_loop.hpp"
#include "schedulers/partition.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/cube/cube.hpp"
#include "stages/model/embed.hpp"

namespace eo {

void add_run_command(CLI::App& app, RunOptions& opts) {
  auto* cmd = app.add_subcommand("run", "embed every tile of the plan into the Zarr cube (the main job, under mpirun)");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--partition", opts.partition, "static, dynamic or slurm-array (overrides schedule.partition)")
      ->check(CLI::IsMember({"static", "dynamic", "slurm-array"}));
  cmd->add_option("--inputs", opts.inputs, "sources or chip-stores (overrides run.inputs)")
      ->check(CLI::IsMember({"sources", "chip-stores"}));
  cmd->add_flag("--json", opts.json, "print the run report as JSON at the end");
}

namespace {

namespace fs = std::filesystem;

// What a tile came to, once its embeddings are all placed: its cube chunks written (a
// failed tile's status chunk says so).
TileOutcome conclude(TileEmbeddings& out, const TilePlan& tile, const std::string& error, const CubeWriter& cube) {
  TileOutcome outcome;
  if (!error.empty()) {
    out.fail(tile.chips);
    outcome.status = "failed";
    outcome.error = error;
  } else {
    for (std::uint8_t s : out.status) {
      outcome.chips += s == kEmbedded;
      outcome.nodata_chips += s == kNoData;
    }
    outcome.status = outcome.chips > 0 ? "done" : "nodata";
  }
  cube.write_tile(out);
  return outcome;
}

std::vector<bool> chips_with_data(const ChipBatch& row, double min_valid) {
  std::vector<bool> has_data(row.chips.size());
  for (std::size_t k = 0; k < row.chips.size(); ++k) has_data[k] = chip_has_data(row, k, min_valid);
  return has_data;
}

// A tile's rows through the model into its cube chunks, row by row.
class EmbedSink : public TileSink {
 public:
  EmbedSink(const RunConfig& run, double min_valid, const CubeSpec& spec, const Embedder& embedder,
            const Normalisation& norm, const CubeWriter& cube)
      : run_(run), min_valid_(min_valid), spec_(spec), embedder_(embedder), norm_(norm), cube_(cube) {}

  void begin(const TilePlan& tile, const std::string&) override {
    tile_ = &tile;
    out_.emplace(tile.id, spec_);
  }

  void add_row(const ChipBatch& row) override {
    try {
      out_->add(row.chips, embedder_.embed(row, chips_with_data(row, min_valid_), norm_, min_valid_, run_.batch));
      out_->add_inputs(row);
    } catch (const std::exception& e) {
      throw StageError("embed", e.what());
    }
  }

  TileOutcome finish(const std::string& error) override { return conclude(*out_, *tile_, error, cube_); }

 private:
  const RunConfig& run_;
  double min_valid_;
  const CubeSpec& spec_;
  const Embedder& embedder_;
  const Normalisation& norm_;
  const CubeWriter& cube_;
  const TilePlan* tile_ = nullptr;
  std::optional<TileEmbeddings> out_;
};

// Chips of consecutive rows and tiles through the model in full batches (run.batching:
// across-tiles): a tile's last chips wait for the next tile's first, so the tile is
// written, and journalled, once its last batch is back.
class StreamSink : public TileSink {
 public:
  StreamSink(const RunConfig& run, double min_valid, const CubeSpec& spec, const Embedder& embedder,
             const Normalisation& norm, const CubeWriter& cube)
      : min_valid_(min_valid), spec_(spec), cube_(cube),
        stream_(embedder, norm, min_valid, run.batch,
                [this](std::uint64_t tag, const std::vector<ChipId>& chips, const std::map<Modality, std::vector<float>>& e) {
                  Tile& t = tiles_.at(tag);
                  if (t.error.empty()) t.out.add(chips, e);
                  t.outstanding -= chips.size();
                },
                [this](std::uint64_t tag, std::size_t chips, const std::string& why) {
                  Tile& t = tiles_.at(tag);
                  if (t.error.empty()) t.error = StageError("embed", why).what();
                  t.outstanding -= chips;
                }) {}

  void begin(const TilePlan& tile, const std::string&) override {
    current_ = next_++;
    tiles_.emplace(current_, Tile{&tile, TileEmbeddings(tile.id, spec_), 0, {}});
  }

  void add_row(const ChipBatch& row) override {
    Tile& t = tiles_.at(current_);
    if (!t.error.empty()) return;  // a batch with its chips failed: the tile has failed
    t.out.add_inputs(row);
    t.outstanding += row.chips.size();  // before add(): chips may come back within it
    try {
      stream_.add(current_, row, chips_with_data(row, min_valid_));
    } catch (const std::exception& e) {  // refused whole, before any chip was taken
      t.outstanding -= row.chips.size();
      throw StageError("embed", e.what());
    }
  }

  TileOutcome finish(const std::string& error) override {
    Tile& t = tiles_.at(current_);
    if (t.error.empty()) t.error = error;
    order_.push_back(current_);
    return {};
  }

  bool deferred() const override { return true; }

  std::vector<TileOutcome> completed(bool all) override {
    if (all) stream_.flush();
    std::vector<TileOutcome> done;
    while (!order_.empty() && tiles_.at(order_.front()).outstanding == 0) {
      Tile& t = tiles_.at(order_.front());
      done.push_back(conclude(t.out, *t.plan, t.error, cube_));
      tiles_.erase(order_.front());
      order_.pop_front();
    }
    return done;
  }

 private:
  struct Tile {
    const TilePlan* plan;
    TileEmbeddings out;
    std::size_t outstanding = 0;  // chips handed to the stream, not back yet
    std::string error;
  };
  double min_valid_;
  const CubeSpec& spec_;
  const CubeWriter& cube_;
  std::map<std::uint64_t, Tile> tiles_;
  std::deque<std::uint64_t> order_;  // handed over by finish(), oldest first
  std::uint64_t next_ = 0, current_ = 0;
  Embedder::Stream stream_;  // last: its callbacks use the members above
};

// The tasks of one SLURM job array share the output (see OutputLock); a plain run has it
// alone.
std::string lock_group(const Config& config) {
  if (config.partition != "slurm-array") return "";
  const std::string job = env_or("SLURM_ARRAY_JOB_ID", "");
  if (job.empty())
    throw ConfigError("SLURM_ARRAY_JOB_ID is not set: the slurm-array partition runs inside a SLURM job array "
                      "(see slurm/submit.sh)");
  return "slurm-array-" + job;
}

}  // namespace

int run_run(const RunOptions& opts) {
  const Comm comm = Comm::world();
  const int rank = comm.rank();
  auto config = start_command(opts.common, rank);
  if (!config) return kExitOk;
  if (!opts.partition.empty()) config->partition = opts.partition;
  if (!opts.inputs.empty()) config->run.inputs = opts.inputs;
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path out = config->output;
  const bool array = config->partition == "slurm-array";
  const std::optional<ArrayTask> task = array ? std::optional(array_task_from_env()) : std::nullopt;

  // One run per output at a time (the tasks of an array count as one): rank 0 holds the
  // lock for the whole run.
  const std::string group = lock_group(*config);
  std::optional<OutputLock> lock;
  std::string refused;
  if (rank == 0) {
    try {
      const std::string what = task ? fmt::format("eo-pipeline run, array task {} of {} ({} ranks)", task->index,
                                                  task->count, comm.size())
                                    : fmt::format("eo-pipeline run ({} ranks)", comm.size());
      lock.emplace(out / "run.lock", what, group);
    } catch (const LockedError& e) {
      refused = e.what();
    }
  }
  if (comm.allreduce_sum(refused.empty() ? 0 : 1) > 0) {
    if (rank == 0) std::fprintf(stderr, "eo-pipeline: run refused: %s\n", refused.c_str());
    return kExitUsage;
  }
  failpoint("run-locked");

  const RunInputs in = load_run_inputs(*config, comm);
  const Plan& plan = in.plan;
  const ModelCard& card = in.card;
  const fs::path& cube_path = in.cube;
  set_gdal_cache(config->warp.cache_mb);
  std::string setup_error;
  if (rank == 0) {
    try {
      // Partial chunks are only left by runs that died; with other tasks of the array
      // writing, a temporary may be theirs.
      if (lock->first())
        if (const int n = remove_stale_temporaries(cube_path, true))
          spdlog::info("removed {} partial chunks of an interrupted run", n);
      set_up_cube(*config, in);
      write_resolved_config(*config, out / "run" / "config.yaml");
    } catch (const std::exception& e) {
      setup_error = e.what();
    }
    lock->setup_done();
  }
  if (comm.allreduce_sum(setup_error.empty() ? 0 : 1) > 0) {
    if (rank == 0) std::fprintf(stderr, "eo-pipeline: run: %s\n", setup_error.c_str());
    return kExitUsage;
  }
  failpoint("run-set-up");

  const int threads = threads_per_rank(config->run.threads, comm);
  const Embedder embedder(card, config->model, config->data.modalities, threads);
  const CubeWriter cube(cube_path, in.spec);
  const TileReadOptions read_options = tile_read_options(*config, threads_per_rank(config->warp.threads, comm));
  ScheduleSpec schedule = schedule_spec(*config);
  schedule.task = task;
  TileSource tiles(schedule, plan, comm);
  if (rank == 0)
    spdlog::info("run: {} tiles{} ({} chips planned in all) on {} ranks, model {}, {} torch and {} warper threads per "
                 "rank, cube {}",
                 tiles.job_tiles().size(), task ? fmt::format(" of array task {} of {}", task->index, task->count) : "",
                 plan.total.chips, comm.size(), in.model_version, threads, read_options.threads, cube_path.string());

  TileLoopSpec spec;
  spec.stage = "run";
  spec.journal = out / "journal";
  spec.max_attempts = config->run.max_attempts;
  spec.prefetch = config->run.prefetch;
  spec.fingerprint = [&](const TilePlan& t) { return run_fingerprint(in, *config, t); };
  spec.config_hash = config_hash(*config);
  spec.model_hash = in.model_hash;
  spec.chips_key = "chips_embedded";
  spec.seconds_keys = {"read_warp_chip", "embed", "write", "model_waiting_for_data"};
  spec.started = t0;
  const bool across_tiles = config->run.batching == "across-tiles" ||
                            (config->run.batching == "auto" && config->model.device == "cuda");
  std::unique_ptr<TileSink> sink;
  if (across_tiles)
    sink = std::make_unique<StreamSink>(config->run, config->data.min_valid_fraction, in.spec, embedder, in.norm, cube);
  else
    sink = std::make_unique<EmbedSink>(config->run, config->data.min_valid_fraction, in.spec, embedder, in.norm, cube);
  // Tiles read from chip stores and warped from sources (the prefetch thread counts).
  std::atomic<std::int64_t> from_stores{0}, from_sources{0};
  const bool stores = config->run.inputs == "chip-stores";
  const TileReader read = [&](const TilePlan& t, const std::function<void(ChipBatch&&)>& row) {
    if (stores) {
      std::string why;
      std::unique_ptr<ChipStoreReader> store;
      try {
        store = current_chip_store(*config, in.catalog, t, why);
      } catch (const std::exception& e) {
        spdlog::warn("tile {}: the chip store cannot be read ({}); warping the tile from its sources", t.id.str(), e.what());
      }
      if (store) {
        ++from_stores;
        read_chip_store_rows(*store, config->data.modalities, row);
        return;
      }
      if (!why.empty()) spdlog::info("tile {}: warped from its sources: chip store {}", t.id.str(), why);
    }
    ++from_sources;
    read_tile(in.catalog, t, read_options, row);
  };
  LoopResult result = run_tile_loop(comm, plan, tiles, read, *sink, spec);
  const std::int64_t tiles_from_stores = comm.allreduce_sum(from_stores.load()),
                     tiles_from_sources = comm.allreduce_sum(from_sources.load());
  if (rank != 0) return result.exit_code;

  nlohmann::json& report = result.report;
  // The tasks of an array end one by one, each seeing only part of the cube: finalize
  // describes it once they all have.
  if (!task) {
    report["stac"] = describe_cube(in);
    if (report["stac"].contains("error")) {
      result.exit_code = std::max(result.exit_code, kExitTilesFailed);
      report["exit_code"] = result.exit_code;
    }
  }
  report.update({{"torch_threads_per_rank", threads}, {"warp_threads_per_rank", read_options.threads},
                 {"model", card.name}, {"model_version", in.model_version}, {"checkpoint", card.checkpoint.string()},
                 {"model_hash", in.model_hash}, {"cube", cube_path.string()}, {"dtype", config->run.dtype},
                 {"inputs", config->run.inputs}, {"batching", across_tiles ? "across-tiles" : "per-row"},
                 {"tiles_from_chip_stores", tiles_from_stores},
                 {"tiles_from_sources", tiles_from_sources}});
  // An array task reports on its own tiles, beside the other tasks'; finalize reports on them all.
  fs::path report_file = out / "run" / "report.json";
  if (task) {
    const std::string job = env_or("SLURM_JOB_ID", "0");
    report["array_task"] = {{"index", task->index}, {"count", task->count}, {"job", job},
                            {"array_job", env_or("SLURM_ARRAY_JOB_ID", "")},
                            {"restarts", std::stoi(env_or("SLURM_RESTART_COUNT", "0"))}};
    report_file = array_reports_dir(out, array_chain()) / fmt::format("task-{}-job-{}.json", task->index, job);
  }
  write_report(report_file, report);
  if (opts.json)
    std::cout << report.dump(2) << '\n';
  else
    std::cout << summary_text(spec, report, "embedded") << "cube: " << cube_path.string()
              << "  report: " << report_file.string() << '\n';
  return result.exit_code;
}

}  // namespace eo
