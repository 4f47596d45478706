#include "pipeline/core/aoi.hpp"

#include <geos_c.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>
#include <stdexcept>

#include "pipeline/core/files.hpp"
#include "pipeline/core/grid.hpp"

namespace eo {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::runtime_error(fmt::format("AOI {}: {}", source, what));
}

// Make longitudes continuous along the ring, so a ring crossing the antimeridian
// (a step of more than 180 degrees between neighbours) keeps its shape.
void unwrap(Ring& ring) {
  for (std::size_t i = 1; i < ring.size(); ++i)
    ring[i].lon = ring[i - 1].lon + std::remainder(ring[i].lon - ring[i - 1].lon, 360.0);
}

// Why a polygon is not a valid area, as GEOS says it ("Hole lies outside shell",
// "Self-intersection" and where), or "" when it is one.
std::string validity_problem(const Polygon& poly) {
  const std::unique_ptr<GEOSContextHandle_HS, void (*)(GEOSContextHandle_t)> ctx(GEOS_init_r(), GEOS_finish_r);
  const auto ring = [&](const Ring& r) {
    std::vector<double> xy;
    for (const LonLat& p : r) xy.insert(xy.end(), {p.lon, p.lat});
    GEOSCoordSequence* seq = GEOSCoordSeq_copyFromBuffer_r(ctx.get(), xy.data(), r.size(), 0, 0);
    return seq ? GEOSGeom_createLinearRing_r(ctx.get(), seq) : nullptr;  // takes the sequence
  };
  GEOSGeometry* shell = ring(poly[0]);
  std::vector<GEOSGeometry*> holes;
  for (std::size_t h = 1; h < poly.size(); ++h) holes.push_back(ring(poly[h]));
  const bool built = shell && std::none_of(holes.begin(), holes.end(), [](GEOSGeometry* g) { return g == nullptr; });
  if (!built) {
    if (shell) GEOSGeom_destroy_r(ctx.get(), shell);
    for (GEOSGeometry* g : holes)
      if (g) GEOSGeom_destroy_r(ctx.get(), g);
    return "a ring is not a closed line of 4 or more points";
  }
  GEOSGeometry* polygon = GEOSGeom_createPolygon_r(ctx.get(), shell, holes.data(), static_cast<unsigned>(holes.size()));
  char* reason = GEOSisValidReason_r(ctx.get(), polygon);
  std::string problem = reason && std::string_view(reason) != "Valid Geometry" ? reason : "";
  if (reason) GEOSFree_r(ctx.get(), reason);
  GEOSGeom_destroy_r(ctx.get(), polygon);  // with its rings
  return problem;
}

void finish(Aoi& aoi) {
  if (aoi.polygons.empty()) fail(aoi.source, "no polygon found");
  aoi.min_lon = aoi.min_lat = 1e300;
  aoi.max_lon = aoi.max_lat = -1e300;
  for (Polygon& poly : aoi.polygons) {
    for (Ring& ring : poly) {
      if (ring.size() < 3) fail(aoi.source, fmt::format("a ring has {} points, needs at least 3", ring.size()));
      if (ring.front().lon != ring.back().lon || ring.front().lat != ring.back().lat) ring.push_back(ring.front());
      for (const LonLat& p : ring) {
        if (!std::isfinite(p.lon) || !std::isfinite(p.lat) || std::abs(p.lon) > 540 || std::abs(p.lat) > 90)
          fail(aoi.source, fmt::format("coordinate ({}, {}) is not a longitude/latitude in degrees", p.lon, p.lat));
        if (p.lat < kMinLat || p.lat > kMaxLat)
          fail(aoi.source, fmt::format("latitude {:.4f} at longitude {:.4f} is outside the UTM grid "
                                       "(80 S to 84 N); polar areas need a polar grid, which eo-pipeline "
                                       "does not have. Clip the AOI to 80 S..84 N.", p.lat, p.lon));
      }
      unwrap(ring);
    }
    // Holes follow their outer ring: shift each by whole turns next to it.
    for (std::size_t h = 1; h < poly.size(); ++h) {
      const double shift = 360.0 * std::round((poly[0][0].lon - poly[h][0].lon) / 360.0);
      for (LonLat& p : poly[h]) p.lon += shift;
    }
  }
  // Files crossing the antimeridian write one part as 177..181.5 and another as
  // -179.5..-178: each polygon is moved by whole turns next to the first one, so the
  // AOI's bounds are those of one connected area, not of two ends of the map.
  double reference = 0;
  for (std::size_t i = 0; i < aoi.polygons.size(); ++i) {
    Polygon& poly = aoi.polygons[i];
    double lo = 1e300, hi = -1e300;
    for (const LonLat& p : poly[0]) lo = std::min(lo, p.lon), hi = std::max(hi, p.lon);
    if (hi - lo > 360)
      fail(aoi.source, fmt::format("polygon {} winds around the Earth: its outer ring runs from longitude {:.4f} to "
                                   "{:.4f} ({:.1f} degrees) once made continuous", i + 1, lo, hi, hi - lo));
    const double centre = (lo + hi) / 2;
    if (i == 0) reference = centre - 360.0 * std::round(centre / 360.0);
    const double shift = 360.0 * std::round((reference - centre) / 360.0);
    for (Ring& ring : poly)
      for (LonLat& p : ring) p.lon += shift;
    aoi.min_lon = std::min(aoi.min_lon, lo + shift);
    aoi.max_lon = std::max(aoi.max_lon, hi + shift);
    for (const LonLat& p : poly[0]) {
      aoi.min_lat = std::min(aoi.min_lat, p.lat);
      aoi.max_lat = std::max(aoi.max_lat, p.lat);
    }
    // A hole outside its ring, or a ring crossing itself, would plan what nobody drew.
    if (const std::string problem = validity_problem(poly); !problem.empty())
      fail(aoi.source, fmt::format("polygon {} is not a valid area: {} (holes lie inside their outer ring, and no ring "
                                   "crosses itself or another)", i + 1, problem));
  }
}

Ring ring_from_json(const nlohmann::json& coords, const std::string& source) {
  Ring ring;
  for (const auto& pos : coords) {
    if (!pos.is_array() || pos.size() < 2 || !pos[0].is_number() || !pos[1].is_number())
      fail(source, "a position is not [lon, lat]");
    ring.push_back({pos[0].get<double>(), pos[1].get<double>()});
  }
  return ring;
}

Polygon polygon_from_json(const nlohmann::json& coords, const std::string& source) {
  if (!coords.is_array() || coords.empty()) fail(source, "a Polygon has no rings");
  Polygon poly;
  for (const auto& ring : coords) poly.push_back(ring_from_json(ring, source));
  return poly;
}

void add_geometry(const nlohmann::json& g, MultiPolygon& out, const std::string& source) {
  if (!g.is_object() || !g.contains("type")) fail(source, "a geometry has no \"type\"");
  const std::string type = g["type"].get<std::string>();
  if (type == "Polygon") {
    out.push_back(polygon_from_json(g.at("coordinates"), source));
  } else if (type == "MultiPolygon") {
    for (const auto& p : g.at("coordinates")) out.push_back(polygon_from_json(p, source));
  } else if (type == "GeometryCollection") {
    for (const auto& sub : g.at("geometries")) add_geometry(sub, out, source);
  } else {
    fail(source, fmt::format("geometry type {} is not an area (use Polygon or MultiPolygon)", type));
  }
}

// A small recursive-descent reader for POLYGON / MULTIPOLYGON WKT.
class WktReader {
 public:
  WktReader(const std::string& text, const std::string& source) : s_(text), source_(source) {}

  MultiPolygon read() {
    const std::string word = keyword();
    MultiPolygon out;
    if (word == "POLYGON") {
      out.push_back(polygon());
    } else if (word == "MULTIPOLYGON") {
      expect('(');
      do out.push_back(polygon()); while (accept(','));
      expect(')');
    } else {
      fail(source_, fmt::format("WKT type '{}' is not an area (use POLYGON or MULTIPOLYGON)", word));
    }
    skip();
    if (i_ != s_.size()) error("unexpected text after the geometry");
    return out;
  }

 private:
  void skip() { while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_; }
  bool accept(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) { ++i_; return true; }
    return false;
  }
  void expect(char c) { if (!accept(c)) error(fmt::format("expected '{}'", c)); }
  [[noreturn]] void error(const std::string& what) {
    fail(source_, fmt::format("bad WKT at character {}: {}", i_ + 1, what));
  }
  std::string keyword() {
    skip();
    std::string w;
    while (i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]))) w += static_cast<char>(std::toupper(s_[i_++]));
    if (w.empty()) error("expected POLYGON or MULTIPOLYGON");
    return w;
  }
  double number() {
    skip();
    const char* begin = s_.c_str() + i_;
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    if (end == begin) error("expected a number");
    i_ += static_cast<std::size_t>(end - begin);
    return v;
  }
  Polygon polygon() {
    Polygon poly;
    expect('(');
    do {
      Ring ring;
      expect('(');
      do {
        const double lon = number();
        const double lat = number();
        ring.push_back({lon, lat});
      } while (accept(','));
      expect(')');
      poly.push_back(std::move(ring));
    } while (accept(','));
    expect(')');
    return poly;
  }

  const std::string& s_;
  const std::string& source_;
  std::size_t i_ = 0;
};

}  // namespace

Aoi aoi_from_geojson(const std::string& text, const std::string& name, const std::string& source) {
  nlohmann::json doc;
  try {
    doc = parse_json(text, source);  // nested GeometryCollections are read recursively: the depth is bounded
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("AOI {}", e.what()));
  }
  Aoi aoi{name, source, {}, 0, 0, 0, 0};
  try {
    const std::string type = doc.value("type", "");
    if (type == "FeatureCollection") {
      for (const auto& f : doc.at("features")) add_geometry(f.at("geometry"), aoi.polygons, source);
    } else if (type == "Feature") {
      add_geometry(doc.at("geometry"), aoi.polygons, source);
    } else {
      add_geometry(doc, aoi.polygons, source);
    }
  } catch (const nlohmann::json::exception& e) {
    fail(source, fmt::format("not a GeoJSON area: {}", e.what()));
  }
  finish(aoi);
  return aoi;
}

Aoi aoi_from_wkt(const std::string& text, const std::string& name, const std::string& source) {
  Aoi aoi{name, source, WktReader(text, source).read(), 0, 0, 0, 0};
  finish(aoi);
  return aoi;
}

Aoi load_aoi(const std::filesystem::path& file, const std::string& name) {
  try {
    require_regular_file(file);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("AOI {}", e.what()));
  }
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("AOI {}: cannot open the file", file.string()));
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string ext = file.extension().string();
  if (ext == ".wkt" || ext == ".txt") return aoi_from_wkt(buf.str(), name, file.string());
  return aoi_from_geojson(buf.str(), name, file.string());
}

double spherical_area_km2(const MultiPolygon& polygons) {
  // Area on the authalic sphere (R = 6371.007 km) by the trapezoid rule on
  // (lon, sin lat), exact for rings whose edges follow parallels and meridians and
  // close enough for reporting otherwise.
  constexpr double kR = 6371.0072;
  constexpr double kDeg = std::numbers::pi / 180.0;
  double total = 0;
  for (const Polygon& poly : polygons) {
    for (std::size_t r = 0; r < poly.size(); ++r) {
      double twice = 0;
      const Ring& ring = poly[r];
      for (std::size_t i = 0; i + 1 < ring.size(); ++i) {
        // densify so long edges follow their straight lon/lat line
        const int steps = 1 + static_cast<int>(std::abs(ring[i + 1].lat - ring[i].lat) / 0.1);
        for (int k = 0; k < steps; ++k) {
          const double t0 = static_cast<double>(k) / steps, t1 = static_cast<double>(k + 1) / steps;
          const double lon0 = ring[i].lon + t0 * (ring[i + 1].lon - ring[i].lon);
          const double lon1 = ring[i].lon + t1 * (ring[i + 1].lon - ring[i].lon);
          const double lat0 = ring[i].lat + t0 * (ring[i + 1].lat - ring[i].lat);
          const double lat1 = ring[i].lat + t1 * (ring[i + 1].lat - ring[i].lat);
          twice += (lon1 - lon0) * kDeg * (std::sin(lat0 * kDeg) + std::sin(lat1 * kDeg));
        }
      }
      const double area = std::abs(twice) / 2 * kR * kR;
      total += r == 0 ? area : -area;
    }
  }
  return total;
}

Ring clip_ring(const Ring& ring, double min_lon, double max_lon, double min_lat, double max_lat) {
  // Each pass keeps the side of one box edge where inside(p) holds.
  auto pass = [](const Ring& in, auto inside, auto cross) {
    Ring out;
    if (in.size() < 2) return out;
    for (std::size_t i = 0; i + 1 < in.size(); ++i) {
      const LonLat a = in[i], b = in[i + 1];
      const bool ia = inside(a), ib = inside(b);
      if (ia) out.push_back(a);
      if (ia != ib) out.push_back(cross(a, b));
    }
    if (!out.empty()) out.push_back(out.front());
    return out;
  };
  auto at_lon = [](double lon) {
    return [lon](LonLat a, LonLat b) { return LonLat{lon, a.lat + (lon - a.lon) / (b.lon - a.lon) * (b.lat - a.lat)}; };
  };
  auto at_lat = [](double lat) {
    return [lat](LonLat a, LonLat b) { return LonLat{a.lon + (lat - a.lat) / (b.lat - a.lat) * (b.lon - a.lon), lat}; };
  };
  Ring r = pass(ring, [&](LonLat p) { return p.lon >= min_lon; }, at_lon(min_lon));
  r = pass(r, [&](LonLat p) { return p.lon <= max_lon; }, at_lon(max_lon));
  r = pass(r, [&](LonLat p) { return p.lat >= min_lat; }, at_lat(min_lat));
  r = pass(r, [&](LonLat p) { return p.lat <= max_lat; }, at_lat(max_lat));
  if (r.size() < 4) r.clear();
  return r;
}

}  // namespace eo
