// Over 400 lines on purpose: the plan of DESIGN.md §3 is one computation (AOIs split at
// the antimeridian, chips of each zone's band intersected with them, areas gross and net,
// the tile list and its file); its pieces share the zone geometry kept private here.
#include "pipeline/core/plan.hpp"

#include "pipeline/core/files.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace eo {
namespace {

constexpr double kFalseNorthingSouth = 10000000.0;
// Planning cuts each AOI to its zone's band widened by this margin before projecting:
// enough for any chip that reaches over the band edge (0.4 degrees at 84 N), small
// enough for the projection to stay exact.
constexpr double kWindowMarginDeg = 1.0;
constexpr double kDensifyDeg = 0.02;
constexpr double kBorderToleranceM = 1.0;

// Eastings of the zone band's east edge at the two northings bounding a chip row; the
// west edge mirrors it about the central meridian (500 km).
struct RowBand {
  double east_at_bottom = 0, east_at_top = 0;
};

RowBand row_band(Zone zone, int row) {
  const double top = zone.origin_northing() - row * kChipSizeM;
  const double east = zone.central_meridian() + 3.0;
  return {meridian_easting(zone, east, top - kChipSizeM), meridian_easting(zone, east, top)};
}

// Band edges are computed once per zone and row: planning asks for the same rows often.
const RowBand& cached_row_band(Zone zone, int row) {
  static std::mutex mutex;
  static std::unordered_map<std::uint64_t, RowBand> cache;
  const std::uint64_t key = TileId{zone, row, 0}.key();
  std::lock_guard lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, row_band(zone, row)).first;
  return it->second;
}

using Pt = EastNorth;

// Keep the part of a convex polygon on the left of the directed line a->b.
std::vector<Pt> clip_half_plane(const std::vector<Pt>& poly, Pt a, Pt b) {
  auto side = [&](Pt p) { return (b.e - a.e) * (p.n - a.n) - (b.n - a.n) * (p.e - a.e); };
  std::vector<Pt> out;
  for (std::size_t i = 0; i < poly.size(); ++i) {
    const Pt p = poly[i], q = poly[(i + 1) % poly.size()];
    const double sp = side(p), sq = side(q);
    if (sp >= 0) out.push_back(p);
    if ((sp >= 0) != (sq >= 0)) {
      const double t = sp / (sp - sq);
      out.push_back({p.e + t * (q.e - p.e), p.n + t * (q.n - p.n)});
    }
  }
  return out;
}

double polygon_area(const std::vector<Pt>& poly) {
  double twice = 0;
  for (std::size_t i = 0; i < poly.size(); ++i) {
    const Pt p = poly[i], q = poly[(i + 1) % poly.size()];
    twice += p.e * q.n - q.e * p.n;
  }
  return std::abs(twice) / 2;
}

// Whether the whole chip lies inside its zone's band and hemisphere.
bool chip_inside_zone(const ChipId& chip) {
  const Box b = chip.bounds();
  const RowBand& rb = cached_row_band(chip.zone, chip.row);
  const double east_min = std::min(rb.east_at_bottom, rb.east_at_top);
  const bool hemisphere_inside = chip.zone.south ? b.n1 <= kFalseNorthingSouth : b.n0 >= 0;
  return b.e0 >= 1e6 - east_min && b.e1 <= east_min && hemisphere_inside;
}

// The part of a chip inside its zone's band and hemisphere, with the band and equator
// edges moved `inset` metres inwards. Within a chip the band edges are straight to well
// under a metre.
std::vector<Pt> chip_part_in_zone(const ChipId& chip, double inset) {
  const Box b = chip.bounds();
  const RowBand& rb = cached_row_band(chip.zone, chip.row);
  std::vector<Pt> poly = {{b.e0, b.n0}, {b.e1, b.n0}, {b.e1, b.n1}, {b.e0, b.n1}};
  // Left of a northward line is west, left of a southward one is east.
  poly = clip_half_plane(poly, {rb.east_at_bottom - inset, b.n0}, {rb.east_at_top - inset, b.n1});
  poly = clip_half_plane(poly, {1e6 - rb.east_at_top + inset, b.n1}, {1e6 - rb.east_at_bottom + inset, b.n0});
  if (chip.zone.south)
    poly = clip_half_plane(poly, {1.0, kFalseNorthingSouth - inset}, {0.0, kFalseNorthingSouth - inset});
  else
    poly = clip_half_plane(poly, {0.0, inset}, {1.0, inset});
  return poly;
}

// Marks the chips of one zone that a set of projected polygons touches: every cell a
// boundary segment passes through, and every cell whose centre lies inside. Together
// these are exactly the cells the polygons intersect.
class ZoneRaster {
 public:
  ZoneRaster(Zone zone, std::vector<std::vector<std::vector<Pt>>> polygons)
      : zone_(zone), polygons_(std::move(polygons)) {
    double e0 = 1e300, e1 = -1e300, n0 = 1e300, n1 = -1e300;
    for (const auto& poly : polygons_)
      for (const auto& ring : poly)
        for (const Pt& p : ring) {
          e0 = std::min(e0, p.e); e1 = std::max(e1, p.e);
          n0 = std::min(n0, p.n); n1 = std::max(n1, p.n);
        }
    if (e0 > e1) return;
    col0_ = static_cast<int>(std::floor(e0 / kChipSizeM)) - 1;
    row0_ = static_cast<int>(std::floor((zone.origin_northing() - n1) / kChipSizeM)) - 1;
    cols_ = static_cast<int>(std::floor(e1 / kChipSizeM)) + 2 - col0_;
    rows_ = static_cast<int>(std::floor((zone.origin_northing() - n0) / kChipSizeM)) + 2 - row0_;
    cells_.assign(static_cast<std::size_t>(rows_) * cols_, 0);
    row_segments_.resize(static_cast<std::size_t>(rows_));
    for (std::size_t p = 0; p < polygons_.size(); ++p) {
      for (const auto& ring : polygons_[p])
        for (std::size_t i = 0; i + 1 < ring.size(); ++i) {
          const UV a = uv(ring[i]), b = uv(ring[i + 1]);
          mark_segment(a, b);
          const int first = std::max(0, static_cast<int>(std::floor(std::min(a.v, b.v))));
          const int last = std::min(rows_ - 1, static_cast<int>(std::floor(std::max(a.v, b.v))));
          for (int r = first; r <= last; ++r) row_segments_[static_cast<std::size_t>(r)].push_back({ring[i], ring[i + 1], p});
        }
      fill(polygons_[p]);
    }
  }

  template <typename F>
  void for_each_chip(F&& f) const {
    for (int r = 0; r < rows_; ++r)
      for (int c = 0; c < cols_; ++c)
        if (cells_[static_cast<std::size_t>(r) * cols_ + c]) f(ChipId{zone_, row0_ + r, col0_ + c});
  }

  // Whether the polygons overlap `convex`, a part of `chip`, by more than touching.
  bool overlaps(const ChipId& chip, const std::vector<Pt>& convex) const {
    const int r = chip.row - row0_;
    if (convex.size() < 3 || r < 0 || r >= rows_) return false;
    // Only the segments of the chip's row can reach into it.
    const auto& segments = row_segments_[static_cast<std::size_t>(r)];
    for (const Segment& s : segments) {
      if (inside_convex(convex, s.a) || inside_convex(convex, s.b)) return true;
      for (std::size_t k = 0; k < convex.size(); ++k)
        if (segments_cross(s.a, s.b, convex[k], convex[(k + 1) % convex.size()])) return true;
    }
    // No boundary reaches in: the part is wholly inside or wholly outside. A ray east
    // from its centroid meets only segments of the same row.
    Pt c{0, 0};
    for (const Pt& p : convex) { c.e += p.e / convex.size(); c.n += p.n / convex.size(); }
    std::vector<char> parity(polygons_.size(), 0);
    for (const Segment& s : segments)
      if ((s.a.n > c.n) != (s.b.n > c.n) && c.e < s.a.e + (c.n - s.a.n) / (s.b.n - s.a.n) * (s.b.e - s.a.e))
        parity[s.polygon] ^= 1;
    return std::find(parity.begin(), parity.end(), 1) != parity.end();
  }

 private:
  struct UV { double u, v; };

  static double cross(Pt o, Pt a, Pt b) { return (a.e - o.e) * (b.n - o.n) - (a.n - o.n) * (b.e - o.e); }

  static bool segments_cross(Pt a, Pt b, Pt c, Pt d) {
    const double d1 = cross(c, d, a), d2 = cross(c, d, b), d3 = cross(a, b, c), d4 = cross(a, b, d);
    return ((d1 > 0) != (d2 > 0)) && ((d3 > 0) != (d4 > 0)) && d1 != 0 && d2 != 0 && d3 != 0 && d4 != 0;
  }

  // Strictly inside: on the same side of every edge, none on an edge.
  static bool inside_convex(const std::vector<Pt>& convex, Pt p) {
    bool pos = true, neg = true;
    for (std::size_t k = 0; k < convex.size(); ++k) {
      const double c = cross(convex[k], convex[(k + 1) % convex.size()], p);
      pos &= c > 0;
      neg &= c < 0;
    }
    return pos || neg;
  }

  struct Segment {
    Pt a, b;
    std::size_t polygon;
  };  // cell coordinates: u along columns, v along rows (down)

  UV uv(Pt p) const {
    return {p.e / kChipSizeM - col0_, (zone_.origin_northing() - p.n) / kChipSizeM - row0_};
  }

  void mark(int c, int r) {
    if (r >= 0 && r < rows_ && c >= 0 && c < cols_) cells_[static_cast<std::size_t>(r) * cols_ + c] = 1;
  }

  // Amanatides & Woo grid traversal: every cell the segment passes through.
  void mark_segment(UV a, UV b) {
    int c = static_cast<int>(std::floor(a.u)), r = static_cast<int>(std::floor(a.v));
    const int c_end = static_cast<int>(std::floor(b.u)), r_end = static_cast<int>(std::floor(b.v));
    const double du = b.u - a.u, dv = b.v - a.v;
    const int step_c = du > 0 ? 1 : -1, step_r = dv > 0 ? 1 : -1;
    constexpr double inf = std::numeric_limits<double>::infinity();
    double t_c = du != 0 ? (du > 0 ? c + 1 - a.u : a.u - c) / std::abs(du) : inf;
    double t_r = dv != 0 ? (dv > 0 ? r + 1 - a.v : a.v - r) / std::abs(dv) : inf;
    const double dt_c = du != 0 ? 1 / std::abs(du) : inf, dt_r = dv != 0 ? 1 / std::abs(dv) : inf;
    mark(c, r);
    for (int steps = std::abs(c_end - c) + std::abs(r_end - r); steps > 0; --steps) {
      if (t_c < t_r) { c += step_c; t_c += dt_c; } else { r += step_r; t_r += dt_r; }
      mark(c, r);
    }
  }

  // Even-odd scanline fill at cell centres of one polygon (outer ring and holes).
  void fill(const std::vector<std::vector<Pt>>& poly) {
    std::vector<std::vector<double>> crossings(rows_);
    for (const auto& ring : poly) {
      for (std::size_t i = 0; i + 1 < ring.size(); ++i) {
        const UV a = uv(ring[i]), b = uv(ring[i + 1]);
        if (a.v == b.v) continue;
        const double lo = std::min(a.v, b.v), hi = std::max(a.v, b.v);
        // rows whose centre r + 0.5 lies in [lo, hi)
        for (int r = std::max(0, static_cast<int>(std::ceil(lo - 0.5))); r < rows_ && r + 0.5 < hi; ++r) {
          const double t = (r + 0.5 - a.v) / (b.v - a.v);
          crossings[r].push_back(a.u + t * (b.u - a.u));
        }
      }
    }
    for (int r = 0; r < rows_; ++r) {
      auto& xs = crossings[r];
      std::sort(xs.begin(), xs.end());
      for (std::size_t k = 0; k + 1 < xs.size(); k += 2)
        for (int c = std::max(0, static_cast<int>(std::ceil(xs[k] - 0.5)));
             c < cols_ && c + 0.5 <= xs[k + 1]; ++c)
          mark(c, r);
    }
  }

  Zone zone_;
  std::vector<std::vector<std::vector<Pt>>> polygons_;
  std::vector<std::vector<Segment>> row_segments_;  // per row, the segments reaching into it
  int row0_ = 0, col0_ = 0, rows_ = 0, cols_ = 0;
  std::vector<std::uint8_t> cells_;
};

// The AOI's polygons cut to the zone's widened band and hemisphere, densified in lon/lat
// (edges are straight there) and projected to the zone CRS.
std::vector<std::vector<std::vector<Pt>>> project_to_zone(const Aoi& aoi, Zone zone) {
  const double cm = zone.central_meridian();
  const double lat_lo = zone.south ? -90.0 : -kWindowMarginDeg;
  const double lat_hi = zone.south ? kWindowMarginDeg : 90.0;
  std::vector<std::vector<std::vector<Pt>>> out;
  for (int turn = -1; turn <= 1; ++turn) {
    const double shift = 360.0 * turn;
    if (aoi.max_lon + shift < cm - 3 - kWindowMarginDeg || aoi.min_lon + shift > cm + 3 + kWindowMarginDeg)
      continue;
    for (const Polygon& poly : aoi.polygons) {
      std::vector<std::vector<Pt>> projected;
      for (const Ring& ring : poly) {
        Ring shifted = ring;
        for (LonLat& p : shifted) p.lon += shift;
        const Ring clipped = clip_ring(shifted, cm - 3 - kWindowMarginDeg, cm + 3 + kWindowMarginDeg, lat_lo, lat_hi);
        if (clipped.empty()) {
          if (projected.empty()) break;  // outer ring gone: the whole polygon is outside
          continue;
        }
        std::vector<Pt> pts;
        for (std::size_t i = 0; i + 1 < clipped.size(); ++i) {
          const LonLat a = clipped[i], b = clipped[i + 1];
          const int steps = 1 + static_cast<int>(std::max(std::abs(b.lon - a.lon), std::abs(b.lat - a.lat)) / kDensifyDeg);
          for (int k = 0; k < steps; ++k) {
            const double t = static_cast<double>(k) / steps;
            pts.push_back(utm_forward(zone.number, zone.south, {a.lon + t * (b.lon - a.lon), a.lat + t * (b.lat - a.lat)}));
          }
        }
        pts.push_back(pts.front());
        projected.push_back(std::move(pts));
      }
      if (!projected.empty()) out.push_back(std::move(projected));
    }
  }
  return out;
}

bool window_overlaps(const Aoi& aoi, Zone zone) {
  const double cm = zone.central_meridian();
  if (zone.south ? aoi.min_lat >= kWindowMarginDeg : aoi.max_lat <= -kWindowMarginDeg) return false;
  for (int turn = -1; turn <= 1; ++turn)
    if (aoi.max_lon + 360.0 * turn >= cm - 3 - kWindowMarginDeg &&
        aoi.min_lon + 360.0 * turn <= cm + 3 + kWindowMarginDeg)
      return true;
  return false;
}

void add_chip_stats(AreaStats& s, const ChipId& chip) {
  ++s.chips;
  s.gross_km2 += kChipAreaKm2;
  s.net_km2 += kChipAreaKm2 * chip_fraction_in_zone(chip);
}

}  // namespace

double chip_fraction_in_zone(const ChipId& chip) {
  if (chip_inside_zone(chip)) return 1.0;
  return polygon_area(chip_part_in_zone(chip, 0.0)) / (kChipSizeM * kChipSizeM);
}

Plan make_plan(std::vector<Aoi> aois) {
  if (aois.size() > 64) throw std::invalid_argument(fmt::format("{} AOIs given; at most 64 per plan", aois.size()));
  Plan plan;
  plan.aois = std::move(aois);
  plan.per_aoi.resize(plan.aois.size());
  plan.per_aoi_zone.resize(plan.aois.size());
  std::unordered_map<std::uint64_t, TilePlan> tiles;

  for (std::size_t a = 0; a < plan.aois.size(); ++a) {
    const Aoi& aoi = plan.aois[a];
    std::unordered_set<std::uint64_t> aoi_tiles;
    for (int number = 1; number <= 60; ++number) {
      for (bool south : {false, true}) {
        const Zone zone{number, south};
        if (!window_overlaps(aoi, zone)) continue;
        auto polygons = project_to_zone(aoi, zone);
        if (polygons.empty()) continue;
        const ZoneRaster raster(zone, std::move(polygons));
        raster.for_each_chip([&](const ChipId& chip) {
          // The chip must overlap the AOI inside its own zone (by more than a metre, so
          // that an AOI edge lying on a zone border adds no chips across it).
          if (!chip_inside_zone(chip) && !raster.overlaps(chip, chip_part_in_zone(chip, kBorderToleranceM))) return;
          const TileId tile = tile_of(chip);
          TilePlan& tp = tiles[tile.key()];
          tp.id = tile;
          tp.aois |= std::uint64_t{1} << a;
          tp.chips.set(static_cast<std::size_t>(index_in_tile(chip)));
          aoi_tiles.insert(tile.key());
          add_chip_stats(plan.per_aoi[a], chip);
          add_chip_stats(plan.per_aoi_zone[a][zone], chip);
        });
      }
    }
    plan.per_aoi[a].tiles = aoi_tiles.size();
    for (auto& [zone, stats] : plan.per_aoi_zone[a])
      stats.tiles = static_cast<std::size_t>(std::count_if(aoi_tiles.begin(), aoi_tiles.end(), [&](std::uint64_t key) {
        return tiles[key].id.zone == zone;
      }));
  }

  plan.tiles.reserve(tiles.size());
  for (auto& [key, tp] : tiles) plan.tiles.push_back(tp);
  std::sort(plan.tiles.begin(), plan.tiles.end(), [](const TilePlan& x, const TilePlan& y) { return x.id < y.id; });
  for (const TilePlan& tp : plan.tiles) {
    AreaStats& z = plan.per_zone[tp.id.zone];
    ++z.tiles;
    ++plan.total.tiles;
    for (int i = 0; i < kChipsPerTile; ++i)
      if (tp.chips.test(static_cast<std::size_t>(i))) {
        add_chip_stats(z, tp.id.chip(i));
        add_chip_stats(plan.total, tp.id.chip(i));
      }
  }
  return plan;
}

std::string chip_mask_hex(const std::bitset<kChipsPerTile>& chips) {
  std::string hex(kChipsPerTile / 4, '0');
  for (int nibble = 0; nibble < kChipsPerTile / 4; ++nibble) {
    int v = 0;
    for (int b = 0; b < 4; ++b) v |= chips.test(static_cast<std::size_t>(nibble * 4 + b)) << b;
    hex[static_cast<std::size_t>(nibble)] = "0123456789abcdef"[v];
  }
  return hex;
}

std::bitset<kChipsPerTile> chip_mask_from_hex(const std::string& hex) {
  if (hex.size() != kChipsPerTile / 4) throw std::invalid_argument(fmt::format("chip mask '{}' is not 64 hex digits", hex));
  std::bitset<kChipsPerTile> chips;
  for (int nibble = 0; nibble < kChipsPerTile / 4; ++nibble) {
    const char ch = hex[static_cast<std::size_t>(nibble)];
    const int v = std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
    if (v < 0) throw std::invalid_argument(fmt::format("chip mask '{}' is not 64 hex digits", hex));
    for (int b = 0; b < 4; ++b) chips.set(static_cast<std::size_t>(nibble * 4 + b), (v >> b) & 1);
  }
  return chips;
}

void write_tiles_jsonl(const Plan& plan, const std::filesystem::path& file) {
  std::string text;
  for (const TilePlan& tp : plan.tiles) {
    const Box b = tp.id.bounds();
    const LonLatBox ll = lonlat_bounds(tp.id.zone, b);
    nlohmann::json names = nlohmann::json::array();
    for (std::size_t a = 0; a < plan.aois.size(); ++a)
      if (tp.aois >> a & 1) names.push_back(plan.aois[a].name);
    const nlohmann::json line = {
        {"tile", tp.id.str()}, {"zone", tp.id.zone.name()}, {"epsg", tp.id.zone.epsg()},
        {"row", tp.id.row}, {"col", tp.id.col}, {"chips", tp.chip_count()},
        {"mask", chip_mask_hex(tp.chips)}, {"aois", names},
        {"bounds", {b.e0, b.n0, b.e1, b.n1}}, {"lonlat_bounds", {ll.lon0, ll.lat0, ll.lon1, ll.lat1}}};
    text += line.dump() + '\n';
  }
  write_atomically(file, text);
}

std::vector<TilePlan> read_tiles_jsonl(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("cannot open the tile list {}", file.string()));
  std::vector<TilePlan> tiles;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(text);
      TilePlan tp;
      tp.id = parse_tile_id(j.at("tile").get<std::string>());
      tp.chips = chip_mask_from_hex(j.at("mask").get<std::string>());
      tiles.push_back(tp);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}:{}: bad tile record: {}", file.string(), line, e.what()));
    }
  }
  return tiles;
}

}  // namespace eo
