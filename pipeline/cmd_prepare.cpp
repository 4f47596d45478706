// `mpirun eo-pipeline prepare`: ingest -> reproject -> chip for every tile of the plan,
// into one HDF5 chip store per tile (the input of pretraining), journalled so that an
// interrupted or failed run resumes. This file is the set-up and the sink;
// pipeline/driver runs the loop.

#include <fmt/format.h>
#include <iostream>
#include <optional>
#include <spdlog/spdlog.h>

#include "pipeline/commands.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "pipeline/driver/inputs.hpp"
#include "pipeline/driver/tile_loop.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/chipstore/chipstore.hpp"

namespace eo {

void add_prepare_command(CLI::App& app, PrepareOptions& opts) {
  auto* cmd = app.add_subcommand("prepare", "warp and chip every tile into HDF5 chip stores for pretraining (under mpirun)");
  add_common_options(*cmd, opts.common);
}

namespace {

// A tile's rows into its chip store, published when the tile has chips with data.
class ChipStoreSink : public TileSink {
 public:
  ChipStoreSink(const Config& config, std::filesystem::path dir, const Normalisation& norm)
      : config_(config), dir_(std::move(dir)), norm_(norm) {}

  void begin(const TilePlan& tile, const std::string& fingerprint) override {
    chips_ = nodata_ = 0;
    writer_.reset();
    ChipStoreInfo store{tile.id, tile.chip_count(), config_.chip_pixels(), config_.pixel_size, config_.data.modalities,
                        {{"fingerprint", fingerprint}, {"config_hash", config_hash(config_)},
                         {"normalisation", norm_.to_json()}, {"software", "eo-pipeline " EO_VERSION}}};
    store.compress = config_.prepare.compression == "deflate";
    writer_.emplace(dir_ / (tile.id.str() + ".h5"), std::move(store));
  }

  void add_row(const ChipBatch& row) override {
    std::vector<bool> has_data(row.chips.size());
    for (std::size_t k = 0; k < row.chips.size(); ++k) {
      has_data[k] = chip_has_data(row, k, config_.data.min_valid_fraction);
      chips_ += has_data[k];
      nodata_ += !has_data[k];
    }
    writer_->append(row, has_data);
  }

  TileOutcome finish(const std::string& error) override {
    TileOutcome outcome{error.empty() ? "done" : "failed", chips_, nodata_, error};
    try {
      if (outcome.status == "done" && chips_ > 0) writer_->commit();
    } catch (const std::exception& e) {
      outcome = {"failed", chips_, nodata_, e.what()};
    }
    if (outcome.status == "done" && chips_ == 0) outcome.status = "nodata";  // nothing to learn from: no file
    writer_.reset();  // unpublished: its temporary goes
    return outcome;
  }

 private:
  const Config& config_;
  std::filesystem::path dir_;
  const Normalisation& norm_;
  std::optional<ChipStoreWriter> writer_;
  int chips_ = 0, nodata_ = 0;
};

}  // namespace

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
  if (rank == 0) {
    if (const int n = remove_stale_temporaries(chips))
      spdlog::info("removed {} unfinished chip stores of an interrupted run", n);
    write_resolved_config(*config, out / "prepare" / "config.yaml");
  }
  const Normalisation norm = ensure_normalisation(*config, catalog, comm);
  const TileReadOptions read_options = tile_read_options(*config, threads_per_rank(config->warp.threads, comm));
  if (rank == 0)
    spdlog::info("preparing {} tiles ({} chips) on {} ranks, {} warper threads each; chip stores in {}", plan.tiles.size(),
                 plan.total.chips, comm.size(), read_options.threads, chips.string());

  TileLoopSpec spec;
  spec.stage = "prepare";
  spec.journal = out / "journal";
  spec.max_attempts = config->prepare.max_attempts;
  spec.prefetch = config->run.prefetch;
  spec.fingerprint = [&, norm_hash = norm.hash()](const TilePlan& t) { return tile_fingerprint(catalog, t, *config, norm_hash); };
  spec.config_hash = config_hash(*config);
  spec.chips_key = "chips_written";
  spec.seconds_keys = {"read_warp_chip", "chip_store", "publish", "waiting_for_data"};
  spec.started = t0;
  TileSource tiles(schedule_spec(*config), plan, comm);
  ChipStoreSink sink(*config, chips, norm);
  const TileReader read = [&](const TilePlan& t, const std::function<void(ChipBatch&&)>& row) {
    read_tile(catalog, t, read_options, row);
  };
  const LoopResult result = run_tile_loop(comm, plan, tiles, read, sink, spec);
  if (rank == 0) {
    const auto report_file = out / "prepare" / "report.json";
    write_report(report_file, result.report);
    std::cout << summary_text(spec, result.report, "written") << "chip stores: " << chips.string()
              << "  report: " << report_file.string() << '\n';
  }
  return result.exit_code;
}

}  // namespace eo
