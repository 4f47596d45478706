// Benchmark: where the data path's time goes, per modality, on one core (issue 17). For
// the first tiles of a config's plan, each modality's rows of chips are warped (and
// composited) as `run` and `prepare` do; beside it, in the same run, the machine's copy
// bandwidth (the limit: a sample read and a float written) and the sources' decoding
// alone (every file of the tile read whole, no warp), by GDAL and by our block decoder
// (stages/ingest/tiff_blocks). Writes JSON.
//
//   bench_data_path CONFIG OUT.json [--tiles N]

#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "bench/copy_rate.hpp"
#include "pipeline/core/config.hpp"
#include "pipeline/core/plan.hpp"
#include "pipeline/core/resources.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/ingest/tiff_blocks.hpp"
#include "stages/reproject/warp.hpp"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  using namespace eo;
  if (argc < 3) {
    std::cerr << "usage: bench_data_path CONFIG OUT.json [--tiles N]\n";
    return 2;
  }
  const Config config = load_config(argv[1]);
  std::size_t max_tiles = 3;
  if (argc >= 5 && std::string(argv[3]) == "--tiles") max_tiles = std::stoul(argv[4]);
  const Plan plan = make_plan(load_aois(config));
  const Catalog catalog = Catalog::load(config.catalog_path());
  keep_freed_memory();  // as `run` warps: its model is built before its first tile
  set_gdal_cache(config.warp.cache_mb);
  const TileReadOptions options = TileReadOptions::from(config.pixel_size, config.data, config.warp, 1);
  const std::size_t tiles = std::min(max_tiles, plan.tiles.size());

  nlohmann::json modalities = nlohmann::json::object();
  double total_s = 0, total_samples = 0, decode_s = 0, decode_samples = 0, own_s = 0, own_samples = 0, own_declined = 0;
  for (Modality m : options.modalities) {
    double seconds = 0, samples = 0, input_samples = 0;
    std::int64_t aligned = 0;
    for (std::size_t t = 0; t < tiles; ++t) {
      const TilePlan& tile = plan.tiles[t];
      const LonLatBox area = chip_window(tile.id, options.pixel, 0, kChipsPerTileSide, 0, kChipsPerTileSide).lonlat_box();
      const std::int64_t before = aligned_reads();
      const auto t0 = Clock::now();
      const ModalitySources sources(catalog, m, area);
      for (int r = 0; r < kChipsPerTileSide; ++r) {
        const GridWindow row = chip_window(tile.id, options.pixel, r, 1, 0, kChipsPerTileSide);
        const WarpedModality w = sources.warp(row, {options.resampling.at(m), 1, options.memory_mb});
        samples += static_cast<double>(w.data.size());
      }
      seconds += seconds_since(t0);
      aligned += aligned_reads() - before;
      // Decoding alone: every file the tile reads, whole.
      const auto d0 = Clock::now();
      std::set<std::string> seen;
      for (int season = 0; season < info(m).seasons; ++season)
        for (const SourceRecord* rec : catalog.query(m, season, padded(area))) {
          if (!seen.insert(rec->path.string()).second) continue;
          GdalDataset ds = open_raster(rec->path);
          const int w = ds->GetRasterXSize(), h = ds->GetRasterYSize();
          std::vector<float> buffer(static_cast<std::size_t>(w) * h);
          for (int b = 1; b <= ds->GetRasterCount(); ++b)
            if (ds->GetRasterBand(b)->RasterIO(GF_Read, 0, 0, w, h, buffer.data(), w, h, GDT_Float32, 0, 0) != CE_None)
              throw std::runtime_error("cannot read " + rec->path.string());
          input_samples += static_cast<double>(w) * h * ds->GetRasterCount();
        }
      decode_s += seconds_since(d0);
      // The same files whole through our block decoder, nothing kept between reads.
      set_tiff_block_cache(0);
      const auto o0 = Clock::now();
      for (const std::string& path : seen) {
        GdalDataset ds = open_raster(path);
        const int w = ds->GetRasterXSize(), h = ds->GetRasterYSize();
        std::vector<float> buffer(static_cast<std::size_t>(w) * h);
        for (int b = 1; b <= ds->GetRasterCount(); ++b) {
          if (read_tiff_window(*ds->GetRasterBand(b), 0, 0, w, h, buffer.data())) own_samples += static_cast<double>(w) * h;
          else own_declined += 1;
        }
      }
      own_s += seconds_since(o0);
      set_gdal_cache(config.warp.cache_mb);
    }
    decode_samples += input_samples;
    total_s += seconds;
    total_samples += samples;
    modalities[info(m).name] = {{"seconds", seconds}, {"megasamples_out", samples / 1e6},
                                {"megasamples_out_per_s", samples / seconds / 1e6},
                                {"source_files_decoded_megasamples", input_samples / 1e6},
                                {"aligned_reads", aligned}};
    std::cerr << info(m).name << ": " << modalities[info(m).name].dump() << '\n';
  }
  const double copy = copy_samples_per_s();
  const nlohmann::json out = {
      {"benchmark", "data path per modality, one core (bench/bench_data_path.cpp)"},
      {"config", argv[1]}, {"tiles", tiles}, {"pixel_size_m", config.pixel_size},
      {"modalities", modalities},
      {"all", {{"seconds", total_s}, {"megasamples_out_per_s", total_samples / total_s / 1e6}}},
      {"decode_whole_files", {{"seconds", decode_s}, {"megasamples_per_s", decode_samples / decode_s / 1e6}}},
      {"decode_whole_files_tiff_blocks", {{"seconds", own_s}, {"megasamples_per_s", own_samples / own_s / 1e6},
                                          {"bands_left_to_gdal", own_declined}}},
      {"copy_megasamples_per_s", copy / 1e6},
      {"fraction_of_copy_bandwidth", total_samples / total_s / copy}};
  std::ofstream(argv[2]) << out.dump(2) << '\n';
  std::cout << out.dump(2) << '\n';
  return 0;
}
