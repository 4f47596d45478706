#include "pipeline/core/grid.hpp"

#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <stdexcept>

namespace eo {

std::string Zone::name() const { return fmt::format("{:02d}{}", number, south ? 'S' : 'N'); }

std::string ChipId::str() const { return fmt::format("{}_{:04d}_{:04d}", zone.name(), row, col); }

Box ChipId::bounds() const {
  const double top = zone.origin_northing() - row * kChipSizeM;
  return {col * kChipSizeM, top - kChipSizeM, (col + 1) * kChipSizeM, top};
}

EastNorth ChipId::centre() const {
  const Box b = bounds();
  return {(b.e0 + b.e1) / 2, (b.n0 + b.n1) / 2};
}

std::string TileId::str() const { return fmt::format("{}_T{:03d}_T{:03d}", zone.name(), row, col); }

Box TileId::bounds() const {
  const double top = zone.origin_northing() - row * kTileSizeM;
  return {col * kTileSizeM, top - kTileSizeM, (col + 1) * kTileSizeM, top};
}

ChipId TileId::chip(int index) const {
  return {zone, row * kChipsPerTileSide + index / kChipsPerTileSide,
          col * kChipsPerTileSide + index % kChipsPerTileSide};
}

std::uint64_t TileId::key() const {
  return (static_cast<std::uint64_t>(zone.south) << 40) |
         (static_cast<std::uint64_t>(zone.number) << 32) |
         (static_cast<std::uint64_t>(row) << 16) | static_cast<std::uint64_t>(col);
}

TileId tile_of(const ChipId& c) {
  return {c.zone, c.row / kChipsPerTileSide, c.col / kChipsPerTileSide};
}

int index_in_tile(const ChipId& c) {
  return (c.row % kChipsPerTileSide) * kChipsPerTileSide + c.col % kChipsPerTileSide;
}

ChipId chip_at(Zone zone, EastNorth p) {
  return {zone, static_cast<int>(std::floor((zone.origin_northing() - p.n) / kChipSizeM)),
          static_cast<int>(std::floor(p.e / kChipSizeM))};
}

Zone parse_zone(std::string_view text) {
  auto bad = [&] {
    return std::invalid_argument(
        fmt::format("'{}' is not a UTM zone (expected 01N..60N or 01S..60S)", text));
  };
  if (text.size() != 3 || (text[2] != 'N' && text[2] != 'S') || !std::isdigit(text[0]) ||
      !std::isdigit(text[1]))
    throw bad();
  const int number = (text[0] - '0') * 10 + (text[1] - '0');
  if (number < 1 || number > 60) throw bad();
  return {number, text[2] == 'S'};
}

namespace {
int parse_digits(std::string_view text, std::string_view whole, const char* what) {
  int value = 0;
  if (text.empty()) throw std::invalid_argument(fmt::format("'{}' is not a {} id", whole, what));
  for (char ch : text) {
    if (!std::isdigit(static_cast<unsigned char>(ch)))
      throw std::invalid_argument(fmt::format("'{}' is not a {} id", whole, what));
    value = value * 10 + (ch - '0');
  }
  return value;
}

Zone zone_of_id(std::string_view id, const char* what) {
  try {
    return parse_zone(id.substr(0, 3));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("'{}' is not a {} id: {}", id, what, e.what()));
  }
}
}  // namespace

ChipId parse_chip_id(std::string_view text) {
  // ZZH_RRRR_CCCC
  if (text.size() != 13 || text[3] != '_' || text[8] != '_')
    throw std::invalid_argument(fmt::format("'{}' is not a chip id (expected like 33N_0412_0107)", text));
  return {zone_of_id(text, "chip"), parse_digits(text.substr(4, 4), text, "chip"),
          parse_digits(text.substr(9, 4), text, "chip")};
}

TileId parse_tile_id(std::string_view text) {
  // ZZH_TRRR_TCCC
  if (text.size() != 13 || text[3] != '_' || text[4] != 'T' || text[8] != '_' || text[9] != 'T')
    throw std::invalid_argument(fmt::format("'{}' is not a tile id (expected like 33N_T025_T006)", text));
  return {zone_of_id(text, "tile"), parse_digits(text.substr(5, 3), text, "tile"),
          parse_digits(text.substr(10, 3), text, "tile")};
}

int zone_of_longitude(double lon) {
  const double wrapped = lon - 360.0 * std::floor((lon + 180.0) / 360.0);  // [-180, 180)
  return std::min(60, static_cast<int>(std::floor((wrapped + 180.0) / 6.0)) + 1);
}

std::vector<LonLat> footprint_lonlat(Zone zone, const Box& box, int per_edge) {
  const EastNorth corners[4] = {{box.e0, box.n0}, {box.e1, box.n0}, {box.e1, box.n1}, {box.e0, box.n1}};
  std::vector<LonLat> ring;
  ring.reserve(4 * per_edge + 1);
  for (int k = 0; k < 4; ++k) {
    const EastNorth a = corners[k], b = corners[(k + 1) % 4];
    for (int i = 0; i < per_edge; ++i) {
      const double t = static_cast<double>(i) / per_edge;
      ring.push_back(utm_inverse(zone.number, zone.south, {a.e + t * (b.e - a.e), a.n + t * (b.n - a.n)}));
    }
  }
  ring.push_back(ring.front());
  // Keep longitudes continuous around the central meridian rather than wrapped.
  const double cm = zone.central_meridian();
  for (LonLat& p : ring) p.lon = cm + std::remainder(p.lon - cm, 360.0);
  return ring;
}

LonLatBox lonlat_bounds(Zone zone, const Box& box, int per_edge) {
  LonLatBox b;
  for (const LonLat& p : footprint_lonlat(zone, box, per_edge)) b.add(p);
  return b;
}

double meridian_easting(Zone zone, double lon, double northing) {
  // Northing grows monotonically with latitude along a meridian: bisect on latitude.
  double lo = -89.9, hi = 89.9;
  for (int i = 0; i < 60; ++i) {
    const double mid = (lo + hi) / 2;
    if (utm_forward(zone.number, zone.south, {lon, mid}).n < northing) lo = mid; else hi = mid;
  }
  return utm_forward(zone.number, zone.south, {lon, (lo + hi) / 2}).e;
}

}  // namespace eo
