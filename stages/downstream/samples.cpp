#include "stages/downstream/samples.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <mutex>

#include "pipeline/core/parallel.hpp"
#include "stages/chip/chipper.hpp"

namespace eo {

std::vector<ChipSample> collect_samples(TileReadOptions read, double min_label_valid, const Plan& plan,
                                        const Catalog& catalog, const CubeReader& cube,
                                        const std::vector<TargetSpec>& targets, bool with_band_statistics) {
  read.modalities = with_band_statistics ? cube.spec().modalities : std::vector<Modality>{};
  for (Modality m : kLabelModalities) read.modalities.push_back(m);
  const std::vector<Modality> images = cube.spec().modalities;

  const std::vector<std::string> arrays = cube.spec().embedding_arrays();
  // Tiles are read side by side, a thread each (the warps' own threads are then one), and
  // their samples kept in tile order; they are placed afterwards, in that order, since the
  // plane's origin is the first chip's.
  const int workers = std::max(1, read.threads);
  read.threads = 1;
  std::vector<std::vector<ChipSample>> per_tile(plan.tiles.size());
  std::mutex mutex;
  std::size_t tiles_read = 0, chips_read = 0;
  parallel_for(plan.tiles.size(), workers, [&](std::size_t t) {
    const TilePlan& tile = plan.tiles[t];
    const TileEmbeddings emb = cube.read_tile(tile.id);
    std::vector<ChipSample>& out = per_tile[t];
    if (std::any_of(emb.status.begin(), emb.status.end(), [](std::uint8_t s) { return s == kEmbedded; }))
      read_tile(catalog, tile, read, [&](ChipBatch&& row) {
        const auto y = chip_targets(row, targets, min_label_valid);
        const auto stats = with_band_statistics ? band_statistics(row, images) : std::vector<std::vector<float>>();
        for (std::size_t k = 0; k < row.chips.size(); ++k) {
          const int pos = index_in_tile(row.chips[k]);
          if (emb.status[static_cast<std::size_t>(pos)] != kEmbedded) continue;
          ChipSample s = embedded_sample(emb, pos, arrays);
          s.targets = y[k];
          if (with_band_statistics) {
            s.features[kBandStatistics] = stats[k];
            std::size_t at = 0;  // band_statistics: each modality's channels x (mean, sd) in turn
            for (Modality m : images) {
              const std::size_t n = 2 * static_cast<std::size_t>(info(m).channels());
              s.features[band_statistics_of(m)].assign(stats[k].begin() + static_cast<long>(at),
                                                       stats[k].begin() + static_cast<long>(at + n));
              at += n;
            }
          }
          out.push_back(std::move(s));
        }
      });
    const std::lock_guard lock(mutex);
    chips_read += out.size();
    spdlog::info("read tile {} ({}/{}), {} chips so far", tile.id.str(), ++tiles_read, plan.tiles.size(), chips_read);
  });
  std::vector<ChipSample> out;
  ChipPlane plane;
  for (auto& tile : per_tile)
    for (ChipSample& s : tile) {
      s.at = plane.at(s.chip);
      out.push_back(std::move(s));
    }
  return out;
}

Point ChipPlane::at(const ChipId& chip) {
  const LonLatBox box = lonlat_bounds(chip.zone, chip.bounds());
  const double lon = (box.lon0 + box.lon1) / 2, lat = (box.lat0 + box.lat1) / 2;
  if (!origin) lon0 = lon, lat0 = lat, origin = true;
  return {(lon - lon0) * 111320.0 * std::cos(lat0 * M_PI / 180), (lat - lat0) * 110540.0};
}

ChipSample embedded_sample(const TileEmbeddings& tile, int pos, const std::vector<std::string>& arrays) {
  ChipSample s;
  s.chip = tile.tile.chip(pos);
  const std::size_t y = static_cast<std::size_t>(pos / kChipsPerTileSide), x = static_cast<std::size_t>(pos % kChipsPerTileSide);
  auto& concat = s.features[kConcatenated];
  for (const std::string& a : arrays) {  // the cube's order: the modalities, then fused
    const auto& values = tile.arrays.at(a);
    const float* v = &values(y, x, 0);
    s.features[a].assign(v, v + values.shape(2));
    if (a != "fused") concat.insert(concat.end(), v, v + values.shape(2));
  }
  return s;
}

std::string band_statistics_of(Modality m) { return std::string(kBandStatistics) + "_" + info(m).name; }

std::map<Zone, ChipRaster> zone_rasters(const std::vector<ChipId>& chips, int bands) {
  std::map<Zone, std::array<int, 4>> extent;  // row0, col0, row1, col1
  for (const ChipId& c : chips) {
    auto [it, fresh] = extent.try_emplace(c.zone, std::array<int, 4>{c.row, c.col, c.row, c.col});
    auto& e = it->second;
    e = {std::min(e[0], c.row), std::min(e[1], c.col), std::max(e[2], c.row), std::max(e[3], c.col)};
  }
  std::map<Zone, ChipRaster> out;
  for (const auto& [zone, e] : extent) out.emplace(zone, ChipRaster(zone, e[0], e[1], e[2] - e[0] + 1, e[3] - e[1] + 1, bands));
  return out;
}

}  // namespace eo
