#pragma once
// The UTM chip grid of DESIGN.md §3 (spec): 4480 m chips on the grid of each UTM zone,
// 16 x 16 chips to a tile, rows counted down from a fixed per-hemisphere origin.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/core/utm.hpp"

namespace eo {

inline constexpr double kChipSizeM = 4480.0;
inline constexpr int kChipsPerTileSide = 16;
inline constexpr int kChipsPerTile = kChipsPerTileSide * kChipsPerTileSide;
inline constexpr double kTileSizeM = kChipSizeM * kChipsPerTileSide;  // 71.68 km
// Northing origins, multiples of the tile size so tile edges fall on chip edges. North:
// above 84 N (9.33e6 m); south: above the equator's 1e7 m false northing.
inline constexpr double kOriginNorth = 131 * kTileSizeM;  // 9,390,080 m
inline constexpr double kOriginSouth = 140 * kTileSizeM;  // 10,035,200 m
// The UTM domain; AOIs reaching outside it are refused.
inline constexpr double kMinLat = -80.0;
inline constexpr double kMaxLat = 84.0;

struct Zone {
  int number = 0;      // 1..60
  bool south = false;  // false: EPSG:326zz, true: EPSG:327zz

  int epsg() const { return (south ? 32700 : 32600) + number; }
  std::string name() const;  // "33N"
  double central_meridian() const { return utm_central_meridian(number); }
  double origin_northing() const { return south ? kOriginSouth : kOriginNorth; }
  bool operator==(const Zone&) const = default;
  auto operator<=>(const Zone&) const = default;
};

// Bounds in EPSG:4326, degrees.
struct LonLatBox {
  double lon0 = 1e300, lat0 = 1e300, lon1 = -1e300, lat1 = -1e300;  // empty until something is added

  bool intersects(const LonLatBox& o) const { return lon0 < o.lon1 && o.lon0 < lon1 && lat0 < o.lat1 && o.lat0 < lat1; }
  bool contains(LonLat p) const { return p.lon >= lon0 && p.lon <= lon1 && p.lat >= lat0 && p.lat <= lat1; }
  bool empty() const { return lon0 > lon1; }
  void add(LonLat p) {
    lon0 = std::min(lon0, p.lon); lon1 = std::max(lon1, p.lon);
    lat0 = std::min(lat0, p.lat); lat1 = std::max(lat1, p.lat);
  }
  void add(const LonLatBox& b) { add(LonLat{b.lon0, b.lat0}); add(LonLat{b.lon1, b.lat1}); }
  LonLatBox grown(double degrees) const { return {lon0 - degrees, lat0 - degrees, lon1 + degrees, lat1 + degrees}; }
};

// Axis-aligned box in a zone CRS, metres.
struct Box {
  double e0 = 0, n0 = 0, e1 = 0, n1 = 0;  // west, south, east, north
};

struct ChipId {
  Zone zone;
  int row = 0;  // counted down from the zone's origin northing
  int col = 0;  // floor(E / 4480)

  std::string str() const;  // "33N_0412_0107"
  Box bounds() const;
  EastNorth centre() const;
  bool operator==(const ChipId&) const = default;
  auto operator<=>(const ChipId&) const = default;
};

struct TileId {
  Zone zone;
  int row = 0;
  int col = 0;

  std::string str() const;  // "33N_T025_T006"
  Box bounds() const;
  ChipId chip(int index) const;  // index = row_in_tile * 16 + col_in_tile
  bool operator==(const TileId&) const = default;
  auto operator<=>(const TileId&) const = default;
  // A total order key, unique per tile, for hashing and sorting.
  std::uint64_t key() const;
};

TileId tile_of(const ChipId& c);
int index_in_tile(const ChipId& c);
ChipId chip_at(Zone zone, EastNorth p);

// Parse "33N_0412_0107" / "33N_T025_T006"; throws std::invalid_argument naming the text.
ChipId parse_chip_id(std::string_view text);
TileId parse_tile_id(std::string_view text);
Zone parse_zone(std::string_view text);

// Zone holding a longitude (degrees, any value; wrapped to [-180, 180)).
int zone_of_longitude(double lon);

// Footprint of a box of a zone in EPSG:4326: the corners, counter-clockwise from the
// south-west, with `per_edge - 1` extra points along each edge (edges curve in lon/lat).
// Longitudes are continuous around the ring (a zone-60 chip over the antimeridian has
// eastern longitudes above 180) so that the ring is a valid, unsplit polygon.
std::vector<LonLat> footprint_lonlat(Zone zone, const Box& box, int per_edge = 1);

// Bounds of a box of a zone in EPSG:4326 (from points along its curved edges).
LonLatBox lonlat_bounds(Zone zone, const Box& box, int per_edge = 8);

// Easting of meridian `lon` at northing `n` in the zone's CRS.
double meridian_easting(Zone zone, double lon, double northing);

}  // namespace eo
