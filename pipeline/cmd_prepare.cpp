// `mpirun eo-pipeline prepare`: ingest -> reproject -> chip for every tile of the plan,
// into one HDF5 chip store per tile (the input of pretraining), journalled so that an
// interrupted or failed run resumes.

#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <spdlog/spdlog.h>
#include <thread>

#include "pipeline/commands.hpp"
#include "pipeline/hash.hpp"
#include "pipeline/journal.hpp"
#include "pipeline/plan.hpp"
#include "pipeline/work.hpp"
#include "schedulers/comm.hpp"
#include "schedulers/partition.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/chip/normalise.hpp"
#include "stages/chipstore/chipstore.hpp"
#include "stages/ingest/catalog.hpp"

namespace eo {

void add_prepare_command(CLI::App& app, PrepareOptions& opts) {
  auto* cmd = app.add_subcommand("prepare", "warp and chip every tile into HDF5 chip stores for pretraining (under mpirun)");
  add_common_options(*cmd, opts.common);
}

int run_prepare(const PrepareOptions& opts) {
  const Comm comm = Comm::world();
  const int rank = comm.rank();
  const auto config = start_command(opts.common, rank);
  if (!config) return kExitOk;
  const auto t0 = std::chrono::steady_clock::now();
  const Plan plan = make_plan(load_aois(*config));
  const Catalog catalog = load_catalog(*config);
  set_gdal_cache(config->warp.cache_mb);
  const std::filesystem::path out = config->output;
  if (rank == 0) {
    remove_stale_temporaries(out / "chips");
    write_resolved_config(*config, out / "prepare" / "config.yaml");
  }
  const Normalisation norm = ensure_normalisation(*config, catalog, comm);
  const std::string norm_hash = norm.hash();
  const auto journal_dir = out / "journal";
  const auto history = read_journal(journal_dir, "prepare");
  JournalWriter journal(journal_dir, "prepare", rank, new_run_id());
  const TileReadOptions read_options = TileReadOptions::from(*config, threads_per_rank(config->warp.threads, comm));
  if (rank == 0)
    spdlog::info("preparing {} tiles ({} chips) on {} ranks, {} warper threads each; chip stores in {}", plan.tiles.size(),
                 plan.total.chips, comm.size(), read_options.threads, (out / "chips").string());

  std::int64_t done = 0, nodata = 0, failed = 0, skipped = 0, left_failed = 0, chips_written = 0;
  TileSource tiles(*config, plan, comm);
  while (const auto index = tiles.next()) {
    const TilePlan& tile = plan.tiles[*index];
    const std::string fingerprint = tile_fingerprint(catalog, tile, *config, norm_hash);
    const auto it = history.find(tile.id.str());
    const TileAction action = it == history.end() ? TileAction::process : decide(it->second, fingerprint, config->prepare.max_attempts);
    if (action == TileAction::skip_done) { ++skipped; continue; }
    if (action == TileAction::skip_failed) { ++left_failed; continue; }

    const auto tile_t0 = std::chrono::steady_clock::now();
    JournalRecord record;
    record.tile = tile.id.str();
    record.fingerprint = fingerprint;
    record.config_hash = config_hash(*config);
    try {
      ChipStoreInfo store{tile.id, tile.chip_count(), config->chip_pixels(), config->pixel_size, config->data.modalities,
                          {{"fingerprint", fingerprint}, {"config_hash", record.config_hash},
                           {"normalisation", norm.to_json()}, {"software", "eo-pipeline " EO_VERSION}}};
      ChipStoreWriter writer(out / "chips" / (tile.id.str() + ".h5"), store);
      read_tile(catalog, tile, read_options, [&](ChipBatch&& batch) {
        std::vector<bool> has_data(batch.chips.size());
        for (std::size_t k = 0; k < batch.chips.size(); ++k) {
          has_data[k] = chip_has_data(batch, k, config->data.min_valid_fraction);
          record.chips += has_data[k];
          record.nodata_chips += !has_data[k];
        }
        writer.append(batch, has_data);
      });
      if (record.chips > 0) {
        writer.commit();
        record.status = "done";
        ++done;
        chips_written += record.chips;
      } else {
        record.status = "nodata";  // nothing to learn from: no file
        ++nodata;
      }
    } catch (const std::exception& e) {
      record.status = "failed";
      record.error = fmt::format("tile {}: rank {}: {}", tile.id.str(), rank, e.what());
      ++failed;
      spdlog::error("{}", record.error);
    }
    record.seconds = seconds_since(tile_t0);
    journal.append(record);
    spdlog::info("tile {}: {} ({} chips, {} no data, {:.1f} s)", record.tile, record.status, record.chips,
                 record.nodata_chips, record.seconds);
  }

  const double rss = peak_rss_mib();
  spdlog::debug("peak memory {:.0f} MiB", rss);
  const std::int64_t all_done = comm.allreduce_sum(done), all_nodata = comm.allreduce_sum(nodata),
                     all_failed = comm.allreduce_sum(failed), all_skipped = comm.allreduce_sum(skipped),
                     all_left = comm.allreduce_sum(left_failed), all_chips = comm.allreduce_sum(chips_written);
  const std::vector<std::int64_t> rss_all = comm.allgatherv({static_cast<std::int64_t>(rss)});
  const double seconds = seconds_since(t0);
  if (rank == 0) {
    std::vector<std::string> failures;
    for (const auto& [tile, records] : read_journal(journal_dir, "prepare"))
      if (records.back().status == "failed") failures.push_back(records.back().error);
    const nlohmann::json report = {{"tiles", plan.tiles.size()}, {"done", all_done}, {"nodata", all_nodata},
                                   {"failed", all_failed}, {"skipped_done", all_skipped}, {"left_failed", all_left},
                                   {"chips_written", all_chips}, {"seconds", seconds}, {"ranks", comm.size()},
                                   {"peak_rss_mib_per_rank", rss_all}, {"failures", failures}};
    std::filesystem::create_directories(out / "prepare");
    std::ofstream(out / "prepare" / "report.json") << report.dump(2) << '\n';
    std::cout << fmt::format("prepare: {} tiles: {} done, {} no data, {} failed, {} already done, {} left failed "
                             "after {} attempts; {} chips in {:.1f} s\n",
                             plan.tiles.size(), all_done, all_nodata, all_failed, all_skipped, all_left,
                             config->prepare.max_attempts, all_chips, seconds);
    for (const auto& f : failures) std::cout << "  failed: " << f << '\n';
    std::cout << "chip stores: " << (out / "chips").string() << "  report: " << (out / "prepare" / "report.json").string() << '\n';
  }
  return all_failed + all_left > 0 ? kExitTilesFailed : kExitOk;
}

}  // namespace eo
