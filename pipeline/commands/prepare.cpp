// `mpirun eo-pipeline prepare`: ingest -> reproject -> chip for every tile of the plan,
// into one HDF5 chip store per tile (the input of pretraining), journalled so that an
// interrupted or failed run resumes. This file is the set-up; pipeline/driver has the
// sink and runs the loop.

#include <fmt/format.h>
#include <iostream>
#include <spdlog/spdlog.h>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/lock.hpp"
#include "pipeline/driver/inputs.hpp"
#include "pipeline/driver/sinks.hpp"
#include "pipeline/driver/tile_loop.hpp"
#include "stages/chip/chipper.hpp"

namespace eo {

int run_prepare(const PrepareOptions& opts) {
  const Comm comm = Comm::world();
  const int rank = comm.rank();
  const auto config = start_command(opts.common, rank);
  if (!config) return kExitOk;
  const auto t0 = std::chrono::steady_clock::now();
  const Plan plan = make_plan(load_aois(*config));
  const Catalog catalog = load_catalog(*config);
  set_gdal_cache(config->warp.cache_mb);
  const std::filesystem::path out = config->output, chips = out / "chips";
  // The lock `run` takes: two prepares, or a prepare and a run, never write one output at once.
  std::optional<OutputLock> lock;
  if (const std::string refused = take_output_lock(*config, fmt::format("eo-pipeline prepare ({} ranks)", comm.size()), comm, lock);
      !refused.empty()) {
    if (rank == 0) std::fprintf(stderr, "eo-pipeline: prepare refused: %s\n", refused.c_str());
    return kExitUsage;
  }
  comm.rank_zero_tries([&] {
    if (lock->first())
      if (const int n = remove_stale_temporaries(chips)) spdlog::info("removed {} unfinished chip stores of an interrupted run", n);
    write_resolved_config(*config, out / "prepare" / "config.yaml");
    lock->setup_done();
  });
  const Normalisation norm = ensure_normalisation(*config, catalog, comm);
  const TileReadOptions read_options = tile_read_options(*config, threads_per_rank(config->warp.threads, comm));
  if (rank == 0)
    spdlog::info("preparing {} tiles ({} chips) on {} ranks, {} warper threads each; chip stores in {}", plan.tiles.size(),
                 plan.total.chips, comm.size(), read_options.threads, chips.string());

  TileLoopSpec spec;
  spec.stage = JournalStage::prepare;
  spec.journal = out / "journal";
  spec.max_attempts = config->prepare.max_attempts;
  spec.prefetch = config->run.prefetch;
  spec.fingerprint = [&, norm_hash = norm.hash()](const TilePlan& t) { return tile_fingerprint(catalog, t, *config, norm_hash); };
  spec.config_hash = config_hash(*config);
  spec.chips_key = "chips_written";
  spec.seconds_keys = {"read_warp_chip", "chip_store", "publish", "waiting_for_data"};
  spec.started = t0;
  TileSource tiles(schedule_spec(*config), plan, comm);
  const auto sink = make_chip_store_sink(*config, chips, norm);
  const TileReader read = [&](const TilePlan& t, const std::function<void(ChipBatch&&)>& row) {
    read_tile(catalog, t, read_options, row);
  };
  const LoopResult result = run_tile_loop(comm, plan, tiles, read, *sink, spec);
  if (rank == 0) {
    const auto report_file = out / "prepare" / "report.json";
    write_report(report_file, result.report);
    std::cout << summary_text(spec, result.report, "written") << "chip stores: " << chips.string()
              << "  report: " << report_file.string() << '\n';
  }
  return result.exit_code;
}

}  // namespace eo
