// Benchmark: warp + chip throughput of the data path against the gdalwarp program doing
// the same warps (same sources, target grids and options) in the same run. Both with one
// warper thread, as one rank of `mpirun -np <cores>` has. Writes JSON to the given file.
//
//   bench_prepare CONFIG OUT.json [--tiles N]

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pipeline/core/config.hpp"
#include "pipeline/core/plan.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/reproject/warp.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string quote(const std::string& s) { return fmt::format("'{}'", s); }

double run_timed(const std::string& cmd) {
  const auto t0 = Clock::now();
  if (std::system((cmd + " > /dev/null 2>&1").c_str()) != 0) throw std::runtime_error("failed: " + cmd);
  return since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace eo;
  if (argc < 3) {
    std::cerr << "usage: bench_prepare CONFIG OUT.json [--tiles N]\n";
    return 2;
  }
  const Config config = load_config(argv[1]);
  std::size_t max_tiles = 1000;
  if (argc >= 5 && std::string(argv[3]) == "--tiles") max_tiles = std::stoul(argv[4]);
  const Plan plan = make_plan(load_aois(config));
  const Catalog catalog = Catalog::load(config.catalog_path());
  set_gdal_cache(config.warp.cache_mb);
  TileReadOptions options = TileReadOptions::from(config.pixel_size, config.data, config.warp, 1);
  const std::string scratch = "/dev/shm/eo_bench_" + std::to_string(::getpid());
  std::filesystem::create_directories(scratch);

  double ours_s = 0, theirs_s = 0, startup_s = 0;
  std::size_t ours_samples = 0, theirs_samples = 0, calls = 0, chips = 0;
  // gdalwarp's own start-up, measured on a one-pixel warp
  double one_pixel = 1e9;
  for (int i = 0; i < 3; ++i)
    one_pixel = std::min(one_pixel, run_timed(fmt::format("gdalwarp -q -overwrite -t_srs EPSG:32610 -te 0 0 10 10 -ts 1 1 {} {}/one.tif",
                                                          quote(catalog.records().front().path.string()), scratch)));
  for (std::size_t t = 0; t < std::min(max_tiles, plan.tiles.size()); ++t) {
    const TilePlan& tile = plan.tiles[t];
    // ours: ingest -> reproject -> chip, row by row
    auto t0 = Clock::now();
    read_tile(catalog, tile, options, [&](ChipBatch&& b) {
      chips += b.chips.size();
      for (const auto& m : b.modalities) ours_samples += b.chip_values(m) * b.chips.size();
    });
    ours_s += since(t0);
    // theirs: the same sources onto the rectangle of the tile's planned chips
    int r0 = 16, r1 = -1, c0 = 16, c1 = -1;
    for (int i = 0; i < kChipsPerTile; ++i)
      if (tile.chips.test(static_cast<std::size_t>(i))) {
        r0 = std::min(r0, i / 16); r1 = std::max(r1, i / 16); c0 = std::min(c0, i % 16); c1 = std::max(c1, i % 16);
      }
    const GridWindow window = chip_window(tile.id, config.pixel_size, r0, r1 - r0 + 1, c0, c1 - c0 + 1);
    const LonLatBox area = padded(chip_window(tile.id, config.pixel_size, 0, 16, 0, 16).lonlat_box());
    for (Modality m : config.data.modalities)
      for (int season = 0; season < info(m).seasons; ++season) {
        const auto records = catalog.query(m, season, area);
        if (records.empty()) continue;
        SourceSet sources(records);
        std::string inputs;
        for (const SourceRecord* r : records) {
          // sources with scale/offset go through the same unscaling VRT we build in memory
          std::string input = r->path.string();
          if (m == Modality::s1coh) {
            input = fmt::format("{}/src{}.vrt", scratch, calls * 16 + inputs.size());
            run_timed(fmt::format("gdal_translate -q -of VRT -ot Float32 -unscale {} {}", quote(r->path.string()), input));
          }
          inputs.append(" ").append(quote(input));
        }
        std::string cmd = "gdalwarp -q -overwrite -of ENVI";
        for (const auto& a : warp_arguments(window, sources.scaled({config.resampling(m), 1, config.warp.memory_mb}, window)))
          cmd.append(" ").append(quote(a));
        theirs_s += run_timed(cmd + inputs + " " + scratch + "/out.raw");
        startup_s += one_pixel;
        theirs_samples += static_cast<std::size_t>(window.width) * window.height * info(m).bands.size();
        ++calls;
      }
    std::cerr << fmt::format("tile {}: ours {:.1f} s so far, gdalwarp {:.1f} s so far\n", tile.id.str(), ours_s, theirs_s);
  }
  std::filesystem::remove_all(scratch);
  const double ours_rate = ours_samples / ours_s / 1e6, theirs_rate = theirs_samples / theirs_s / 1e6;
  const double theirs_rate_no_startup = theirs_samples / std::max(1e-9, theirs_s - startup_s) / 1e6;
  const nlohmann::json out = {
      {"benchmark", "warp + chip vs gdalwarp, one warper thread"},
      {"config", argv[1]},
      {"tiles", std::min(max_tiles, plan.tiles.size())},
      {"chips", chips},
      {"pixel_size_m", config.pixel_size},
      {"ours", {{"seconds", ours_s}, {"megasamples", ours_samples / 1e6}, {"megasamples_per_s", ours_rate}}},
      {"gdalwarp", {{"seconds", theirs_s}, {"calls", calls}, {"startup_s_each", one_pixel},
                    {"megasamples", theirs_samples / 1e6}, {"megasamples_per_s", theirs_rate},
                    {"megasamples_per_s_without_startup", theirs_rate_no_startup}}},
      {"ratio", ours_rate / theirs_rate},
      {"ratio_without_gdalwarp_startup", ours_rate / theirs_rate_no_startup}};
  std::ofstream(argv[2]) << out.dump(2) << '\n';
  std::cout << out.dump(2) << '\n';
  return 0;
}
