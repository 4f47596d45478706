#pragma once
// The plan: which chips of the global grid a run covers, grouped into tiles (the unit of
// work), with the areas the user wants to see before committing a cluster to it.

#include <bitset>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "pipeline/core/aoi.hpp"
#include "pipeline/core/grid.hpp"

namespace eo {

inline constexpr double kChipAreaKm2 = kChipSizeM * kChipSizeM / 1e6;  // 20.0704
inline constexpr double kEarthLandKm2 = 148.9e6;

struct TilePlan {
  TileId id;
  std::bitset<kChipsPerTile> chips;  // bit index_in_tile(chip) set when the chip is planned
  std::uint64_t aois = 0;           // bit i set when the tile holds chips of AOI i

  int chip_count() const { return static_cast<int>(chips.count()); }
};

struct AreaStats {
  std::size_t tiles = 0;
  std::size_t chips = 0;
  double gross_km2 = 0;  // chips x 4480 m x 4480 m, zone-border overlap counted twice
  double net_km2 = 0;    // without the overlap: only the part of each chip in its zone
};

struct Plan {
  std::vector<Aoi> aois;
  std::vector<TilePlan> tiles;  // sorted by TileId
  std::vector<AreaStats> per_aoi;
  std::vector<std::map<Zone, AreaStats>> per_aoi_zone;
  std::map<Zone, AreaStats> per_zone;  // all AOIs together, chips counted once
  AreaStats total;

  std::size_t chip_count() const { return total.chips; }
};

// Chips whose footprint intersects an AOI and their zone's 6-degree band (DESIGN.md §3).
// At most 64 AOIs.
Plan make_plan(std::vector<Aoi> aois);

// Fraction of a chip's footprint inside its zone's band and hemisphere (1 away from borders).
double chip_fraction_in_zone(const ChipId& chip);

// One JSON object per line per tile: id, zone, EPSG, row/col, chip count, chip mask
// (64 hex digits, bit i = chip i of the tile, row-major), AOI names, bounds in the zone
// CRS and in EPSG:4326.
void write_tiles_jsonl(const Plan& plan, const std::filesystem::path& file);
std::vector<TilePlan> read_tiles_jsonl(const std::filesystem::path& file);

std::string chip_mask_hex(const std::bitset<kChipsPerTile>& chips);
std::bitset<kChipsPerTile> chip_mask_from_hex(const std::string& hex);

}  // namespace eo
