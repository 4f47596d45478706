#pragma once
// The explorer's map layers as XYZ tiles in Web Mercator (EPSG:3857, 256 x 256 pixels,
// y down from the north, as Leaflet asks for them): a colour per chip (a ChipLayer), and
// the chip grid and UTM zone borders. Each pixel takes the chip under its centre, from
// the zone whose band holds the point first, as the API's chip_at does.

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/core/grid.hpp"

namespace eo {

struct Rgba {
  std::uint8_t r = 0, g = 0, b = 0, a = 0;
};

// The zones of `zones` a point's chip is looked for in, in order: the one whose band holds
// the point, then the others (the chip grids overlap at zone borders), none of the other
// hemisphere beyond a degree from the equator, as the API's chip_at_lonlat does. Calls
// `look(zone)` on each until it returns true; returns whether one did.
template <class Zones, class Look>
bool look_in_zones(const Zones& zones, LonLat p, Look&& look) {
  const Zone home{zone_of_longitude(p.lon), p.lat < 0};
  for (int pass = 0; pass < 2; ++pass)
    for (const Zone& z : zones) {
      if ((pass == 0) != (z == home) || (z.south != (p.lat < 0) && std::abs(p.lat) > 1)) continue;
      if (look(z)) return true;
    }
  return false;
}

struct TileXYZ {
  int z = 0, x = 0, y = 0;
  // Throws ConfigError naming the tile when z is not 0..22 or x, y not 0..2^z-1.
  static TileXYZ checked(int z, int x, int y);
  LonLat lonlat(double px, double py) const;  // of a point in the tile's pixels
  std::string str() const;                    // "z/x/y"
};

// A colour per chip, held per zone on the chip grid.
class ChipLayer {
 public:
  ChipLayer() = default;
  ChipLayer(const std::vector<ChipId>& chips, const std::vector<Rgba>& colours);
  std::optional<Rgba> at(LonLat p) const;

 private:
  struct ZoneGrid {
    int row0 = 0, col0 = 0, rows = 0, cols = 0;
    std::vector<Rgba> colours;  // [row][col]; alpha 0: no chip
    LonLatBox bounds;           // in degrees, a little wider than the chips
  };
  std::map<Zone, ZoneGrid> zones_;
};

// Pixels (rows from the top) as PNG bytes.
std::string encode_png(const std::vector<Rgba>& pixels, int width, int height);

// The layer's tile as PNG bytes (transparent where no chip is).
std::string render_tile(const ChipLayer& layer, const TileXYZ& tile);
// A tile of the colour `at` gives each pixel's centre (transparent where none).
std::string render_tile(const TileXYZ& tile, const std::function<std::optional<Rgba>(LonLat)>& at);

// The chip grid (from zoom 10, where a chip is 30 pixels or more) and the UTM zone
// borders, as lines on a transparent tile.
std::string render_grid_tile(const TileXYZ& tile);

// How the cached layers are drawn: part of the cache's folder name, so that tiles drawn
// by an older build are not served. Raise it when a cached layer's drawing changes.
inline constexpr int kTileStyle = 2;

// Rendered tiles kept on disk under `dir` (<layer>/<z>/<x>/<y>.png), written through
// core/files, so that a tile is rendered once per cube and layer.
class TileCache {
 public:
  explicit TileCache(std::filesystem::path dir) : dir_(std::move(dir)) {}
  // The tile from disk, else rendered by `render` and kept.
  std::string get(const std::string& layer, const TileXYZ& tile, const std::function<std::string()>& render) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace eo
