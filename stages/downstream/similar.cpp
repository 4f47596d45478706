#include "stages/downstream/similar.hpp"

#include <cblas.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>

#include <nlohmann/json.hpp>
#include <ogr_spatialref.h>

#include "pipeline/core/error.hpp"
#include "pipeline/core/config.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/parallel.hpp"
#include "stages/downstream/picture.hpp"
#include "stages/downstream/samples.hpp"

namespace eo {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Scales each row to unit length; false for a row of zeros or with a NaN.
bool normalise(float* v, std::size_t dim) {
  double sum = 0;
  for (std::size_t i = 0; i < dim; ++i) sum += static_cast<double>(v[i]) * v[i];
  if (!(sum > 0) || std::isnan(sum)) return false;
  const float inv = static_cast<float>(1.0 / std::sqrt(sum));
  for (std::size_t i = 0; i < dim; ++i) v[i] *= inv;
  return true;
}

// Best first; ties by chip, so that every thread count gives the same list.
bool better(const Hit& a, const Hit& b) { return a.score > b.score || (a.score == b.score && a.chip < b.chip); }

// The k best of what it is offered, as a heap whose top is the worst kept.
class TopK {
 public:
  explicit TopK(int k) : k_(static_cast<std::size_t>(k)) {}
  void offer(const Hit& h) {
    if (heap_.size() < k_) {
      heap_.push_back(h);
      std::push_heap(heap_.begin(), heap_.end(), better);
    } else if (better(h, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), better);
      heap_.back() = h;
      std::push_heap(heap_.begin(), heap_.end(), better);
    }
  }
  // The lowest score that can still get in: anything below it is not kept.
  float bar() const { return heap_.size() < k_ ? -std::numeric_limits<float>::infinity() : heap_.front().score; }
  std::vector<Hit> sorted() const {
    std::vector<Hit> out = heap_;
    std::sort(out.begin(), out.end(), better);
    return out;
  }

 private:
  std::size_t k_;
  std::vector<Hit> heap_;
};

// Each query's best of `rows` chips' scores ([chip][query]) offered to its TopK. The
// queries' bars are kept side by side: most scores fall below them and are passed over
// without touching a heap (a score below the bar is one TopK would refuse).
void keep_best(const ChipId* chips, std::size_t rows, const float* scores, std::vector<TopK>& best) {
  const std::size_t nq = best.size();
  std::vector<float> bar(nq);
  for (std::size_t j = 0; j < nq; ++j) bar[j] = best[j].bar();
  for (std::size_t c = 0; c < rows; ++c) {
    const float* row = scores + c * nq;
    for (std::size_t j = 0; j < nq; ++j) {
      if (row[j] < bar[j]) continue;
      best[j].offer({chips[c], row[j]});
      bar[j] = best[j].bar();
    }
  }
}

bool inside(const Ring& ring, LonLat p) {
  bool in = false;
  for (std::size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++) {
    const LonLat a = ring[i], b = ring[j];
    if ((a.lat > p.lat) != (b.lat > p.lat) && p.lon < (b.lon - a.lon) * (p.lat - a.lat) / (b.lat - a.lat) + a.lon) in = !in;
  }
  return in;
}

}  // namespace

SearchSpace SearchSpace::of(const CubeSpec& spec, const fs::path& cube, const std::string& name) {
  const std::vector<std::string> arrays = spec.embedding_arrays();
  if (name == kConcatenated) return {name, spec.dim * static_cast<int>(spec.modalities.size())};
  if (std::find(arrays.begin(), arrays.end(), name) == arrays.end())
    throw StageConfigError("similar", fmt::format("{} has no {} embeddings (it holds {}, or concat)", cube.string(), name,
                                  fmt::join(arrays, ", ")));
  return {name, spec.dim};
}

TileVectors tile_vectors(const CubeReader& cube, const SearchSpace& space, const TileId& tile) {
  const std::vector<std::uint8_t> status = cube.read_status(tile);
  TileVectors out;
  if (std::none_of(status.begin(), status.end(), [](std::uint8_t s) { return s == kEmbedded; })) return out;
  const std::size_t dim = static_cast<std::size_t>(cube.spec().dim), n = static_cast<std::size_t>(kChipsPerTile);
  std::vector<std::string> arrays{space.name};
  if (space.name == kConcatenated) {  // the modalities' own arrays, side by side
    arrays.clear();
    for (Modality m : cube.spec().modalities) arrays.push_back(info(m).name);
  }
  std::vector<float> raw(arrays.size() * n * dim);
  for (std::size_t a = 0; a < arrays.size(); ++a) cube.read_array(tile, arrays[a], raw.data() + a * n * dim);
  const std::size_t width = arrays.size() * dim;
  out.values.resize(n * width);
  std::size_t kept = 0;
  for (std::size_t c = 0; c < n; ++c) {
    if (status[c] != kEmbedded) continue;
    float* v = out.values.data() + kept * width;  // written in place; a chip without it is overwritten by the next
    bool any = false;
    for (std::size_t a = 0; a < arrays.size(); ++a) {
      float* part = v + a * dim;
      std::copy_n(raw.data() + (a * n + c) * dim, dim, part);
      if (normalise(part, dim)) any = true;
      else std::fill_n(part, dim, 0.0f);  // this modality is missing: it adds nothing
    }
    if (!any || !normalise(v, width)) continue;
    out.chips.push_back(tile.chip(static_cast<int>(c)));
    ++kept;
  }
  out.values.resize(kept * width);
  return out;
}

std::vector<float> query_vector(const CubeReader& cube, const SearchSpace& space, const Examples& examples) {
  if (examples.positives.empty()) throw StageConfigError("similar", "no positive example: give at least one chip to look for");
  const std::size_t dim = static_cast<std::size_t>(space.dim);
  std::vector<float> q(dim, 0.0f);
  std::map<TileId, TileVectors> tiles;  // each tile of the examples read once
  const auto add = [&](const std::vector<ChipId>& chips, float sign) {
    for (const ChipId& chip : chips) {
      auto at = tiles.find(tile_of(chip));
      if (at == tiles.end()) at = tiles.emplace(tile_of(chip), tile_vectors(cube, space, tile_of(chip))).first;
      const TileVectors& t = at->second;
      const auto it = std::find(t.chips.begin(), t.chips.end(), chip);
      if (it == t.chips.end()) {
        const int status = cube.read_status(tile_of(chip))[static_cast<std::size_t>(index_in_tile(chip))];
        throw StageConfigError("similar", fmt::format("chip {} has no {} embedding in {} (status {}: {})", chip.str(), space.name,
                                      cube.root().string(), status,
                                      status == kEmbedded ? "embedded, but not in this modality"
                                      : status == kNoData ? "no data"
                                      : status == kFailed ? "failed"
                                                          : "not processed, or outside the cube's plan"));
      }
      const float* v = t.values.data() + static_cast<std::size_t>(it - t.chips.begin()) * dim;
      for (std::size_t i = 0; i < dim; ++i) q[i] += sign * v[i] / static_cast<float>(chips.size());
    }
  };
  add(examples.positives, 1.0f);
  add(examples.negatives, -1.0f);
  return q;
}

ChipId chip_at_lonlat(const CubeReader& cube, LonLat p) {
  std::vector<Zone> zones = cube.spec().zones;
  const int home = zone_of_longitude(p.lon);
  std::stable_sort(zones.begin(), zones.end(), [&](Zone a, Zone b) {
    return (a.number == home && a.south == (p.lat < 0)) > (b.number == home && b.south == (p.lat < 0));
  });
  std::vector<std::string> names;
  for (Zone z : zones) {
    names.push_back(z.name());
    if (z.south != (p.lat < 0) && std::abs(p.lat) > 1) continue;  // the other hemisphere's grid
    const ChipId chip = chip_at(z, utm_forward(z.number, z.south, p));
    if (chip.row < 0 || chip.row >= zone_rows(z) || chip.col < 0 || chip.col >= zone_cols()) continue;
    if (cube.read_status(tile_of(chip))[static_cast<std::size_t>(index_in_tile(chip))] == kEmbedded) return chip;
  }
  throw StageConfigError("similar", fmt::format("lon/lat {:.6f},{:.6f}: no embedded chip there in any zone of {} (zones {})", p.lon,
                                p.lat, cube.root().string(), fmt::join(names, ", ")));
}

std::vector<ChipId> embedded_chips(const CubeReader& cube) {
  std::vector<ChipId> out;
  for (Zone z : cube.spec().zones)
    for (const TileId& t : cube.written_tiles(z)) {
      const std::vector<std::uint8_t> status = cube.read_status(t);
      for (int k = 0; k < kChipsPerTile; ++k)
        if (status[static_cast<std::size_t>(k)] == kEmbedded) out.push_back(t.chip(k));
    }
  return out;
}

namespace {
constexpr double kCellDegrees = 0.1;
std::int64_t cell_of(double lon, double lat) {
  return static_cast<std::int64_t>(std::floor(lon / kCellDegrees)) * 4096 + static_cast<std::int64_t>(std::floor(lat / kCellDegrees));
}
}  // namespace

ChipsByPlace::ChipsByPlace(std::vector<ChipId> chips) : chips_(std::move(chips)) {
  for (std::size_t i = 0; i < chips_.size(); ++i) {
    const ChipId& c = chips_[i];
    centres_.push_back(utm_inverse(c.zone.number, c.zone.south, c.centre()));
    cells_[cell_of(centres_.back().lon, centres_.back().lat)].push_back(i);
  }
}

std::vector<std::size_t> ChipsByPlace::near(const LonLatBox& box) const {
  std::vector<std::size_t> out;
  for (double v : {box.lon0, box.lon1, box.lat0, box.lat1})
    if (!(std::abs(v) <= 540)) return out;  // not degrees: no chip of the Earth is there
  const double lon0 = std::floor(box.lon0 / kCellDegrees), lon1 = std::floor(box.lon1 / kCellDegrees);
  const double lat0 = std::floor(box.lat0 / kCellDegrees), lat1 = std::floor(box.lat1 / kCellDegrees);
  if (!((lon1 - lon0 + 1) * (lat1 - lat0 + 1) < static_cast<double>(cells_.size()))) {  // more cells than chips' cells: all
    out.resize(chips_.size());
    std::iota(out.begin(), out.end(), std::size_t{0});
    return out;
  }
  for (auto lon = static_cast<std::int64_t>(lon0); lon <= static_cast<std::int64_t>(lon1); ++lon)
    for (auto lat = static_cast<std::int64_t>(lat0); lat <= static_cast<std::int64_t>(lat1); ++lat)
      if (const auto it = cells_.find(lon * 4096 + lat); it != cells_.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<ChipId> chips_of_geometry(const CubeReader& cube, const json& geometry, const ChipsByPlace& embedded) {
  const std::string type = geometry.at("type").get<std::string>();
  const auto lonlat = [](const json& c) { return LonLat{c.at(0).get<double>(), c.at(1).get<double>()}; };
  std::vector<ChipId> chips;
  if (type == "Point") {
    try {
      chips.push_back(chip_at_lonlat(cube, lonlat(geometry.at("coordinates"))));
    } catch (const ConfigError&) {  // on no embedded chip
    }
  } else if (type == "Polygon" || type == "MultiPolygon") {
    const json polygons = type == "Polygon" ? json::array({geometry.at("coordinates")}) : geometry.at("coordinates");
    for (const json& polygon : polygons) {
      Ring ring;
      LonLatBox box;
      for (const json& c : polygon.at(0)) {  // the outer ring
        ring.push_back(lonlat(c));
        box.add(ring.back());
      }
      for (std::size_t i : embedded.near(box))
        if (inside(ring, embedded.centre(i))) chips.push_back(embedded.chip(i));
    }
  } else {
    throw StageConfigError("similar", fmt::format("a {} (Point, Polygon or MultiPolygon)", type));
  }
  return chips;
}

namespace {

constexpr const char* kCrsExample = R"({"type": "name", "properties": {"name": "EPSG:32610"}})";

// Calls fn on each position (an array of numbers) of a GeoJSON coordinates member.
void for_each_position(json& coordinates, const std::function<void(json&)>& fn) {
  if (!coordinates.is_array() || coordinates.empty()) return;
  if (coordinates[0].is_number()) return fn(coordinates);
  for (json& c : coordinates) for_each_position(c, fn);
}

}  // namespace

GeoJsonCrs::GeoJsonCrs(const json& doc, const std::string& source, const std::string& stage) {
  if (!doc.is_object() || !doc.contains("crs") || doc["crs"].is_null()) return;
  const json& crs = doc["crs"];
  const json props = crs.is_object() ? crs.value("properties", json::object()) : json();
  const std::string type = crs.is_object() ? crs.value("type", "") : "";
  if (type == "name" && props.is_object() && props.contains("name") && props["name"].is_string())
    name_ = props["name"].get<std::string>();
  else if (type == "EPSG" && props.is_object() && props.contains("code") && props["code"].is_number_integer())
    name_ = fmt::format("EPSG:{}", props["code"].get<int>());
  else
    throw StageConfigError(stage, fmt::format("{}: crs {} is not one read here: name it, as {}, or reproject the file to "
                                              "longitude and latitude (ogr2ogr -t_srs EPSG:4326)",
                                              source, clipped(crs.dump()), kCrsExample));
  OGRSpatialReference from, lonlat;
  if (from.SetFromUserInput(name_.c_str()) != OGRERR_NONE)
    throw StageConfigError(stage, fmt::format("{}: crs \"{}\" is not a CRS that PROJ knows", source, name_));
  lonlat.importFromEPSG(4326);
  // GeoJSON positions are easting (or longitude) first, whatever the CRS's own axis order.
  from.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  lonlat.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  to_.reset(OGRCreateCoordinateTransformation(&from, &lonlat));
  if (!to_) throw StageConfigError(stage, fmt::format("{}: no transformation from crs \"{}\" to longitude and latitude", source, name_));
}

json GeoJsonCrs::lonlat(const json& geometry) const {
  json g = geometry;
  if (!g.is_object() || !g.contains("coordinates")) return g;
  for_each_position(g["coordinates"], [&](json& p) {
    if (p.size() < 2 || !p[0].is_number() || !p[1].is_number()) throw ConfigError(fmt::format("position {} is not two numbers", clipped(p.dump())));
    double x = p[0].get<double>(), y = p[1].get<double>();
    if (to_ && !to_->Transform(1, &x, &y)) throw ConfigError(fmt::format("position {} cannot be transformed from {}", p.dump(), name_));
    if (!(std::abs(x) <= 180 && std::abs(y) <= 90)) {
      if (to_) throw ConfigError(fmt::format("position {} in {} is no place on Earth (longitude {:g}, latitude {:g})", p.dump(), name_, x, y));
      throw ConfigError(fmt::format(
          "position {} is not longitude and latitude in degrees{}: a GeoJSON without a crs member is WGS 84 longitude, "
          "latitude (RFC 7946); name its CRS in a crs member, as {}, or reproject it (ogr2ogr -t_srs EPSG:4326)",
          p.dump(),
          std::abs(x) > 1000 || std::abs(y) > 1000 ? " (metres, it seems)"
          : std::abs(y) <= 180 && std::abs(x) <= 90 ? " (latitude, longitude, it seems: GeoJSON gives longitude first)"
                                                    : "",
          kCrsExample));
    }
    p[0] = x, p[1] = y;
  });
  return g;
}

json swapped_axes(const json& geometry) {
  json g = geometry;
  if (g.is_object() && g.contains("coordinates"))
    for_each_position(g["coordinates"], [](json& p) {
      if (p.size() >= 2) std::swap(p[0], p[1]);
    });
  return g;
}

Examples read_examples(const CubeReader& cube, const fs::path& file) {
  const json doc = read_user_json_file(file);
  const json features = doc.value("type", "") == "FeatureCollection" ? doc.value("features", json::array())
                        : doc.value("type", "") == "Feature"          ? json::array({doc})
                                                                       : json();
  if (!features.is_array() || features.empty())
    throw StageConfigError("similar", fmt::format("{}: not a GeoJSON Feature or FeatureCollection with features", file.string()));
  const GeoJsonCrs crs(doc, file.string(), "similar");
  Examples out;
  std::optional<ChipsByPlace> embedded;  // read when a polygon needs them
  for (std::size_t i = 0; i < features.size(); ++i) {
    const json& f = features[i];
    const std::string where = fmt::format("{}: feature {}", file.string(), i);
    const json props = f.contains("properties") && f["properties"].is_object() ? f["properties"] : json::object();
    const json label = props.value("label", json("positive"));
    const bool negative = label == "negative" || label == false || label == 0;
    if (!negative && !(label == "positive" || label == true || label == 1))
      throw StageConfigError("similar", fmt::format("{}: label {} is neither positive nor negative", where, label.dump()));
    std::vector<ChipId> chips;
    try {
      if (props.contains("chip")) {
        chips.push_back(parse_chip_id(props["chip"].get<std::string>()));
      } else {
        if (!embedded) embedded.emplace(embedded_chips(cube));
        chips = chips_of_geometry(cube, crs.lonlat(f.at("geometry")), *embedded);
        if (chips.empty()) throw StageConfigError("similar", "no embedded chip of the cube there");
      }
    } catch (const std::exception& e) {
      throw StageConfigError("similar", fmt::format("{}: {}", where, detail_of(e)));
    }
    auto& list = negative ? out.negatives : out.positives;
    list.insert(list.end(), chips.begin(), chips.end());
  }
  return out;
}

void for_each_tile(const CubeReader& cube, const SearchSpace& space, int threads,
                   const std::function<void(const TileVectors&)>& fn) {
  std::vector<TileId> tiles;
  for (Zone z : cube.spec().zones) {
    const std::vector<TileId> t = cube.written_tiles(z);
    tiles.insert(tiles.end(), t.begin(), t.end());
  }
  // Decoded tiles wait in their slots until every tile before them is handed over, and a
  // thread starts a tile only within a window of the next one to hand over (memory stays
  // bounded however a slow tile holds the line).
  const std::size_t window = 2 * static_cast<std::size_t>(std::max(1, threads));
  std::vector<std::optional<TileVectors>> ready(tiles.size());
  std::size_t next = 0;
  bool failed = false;  // a tile or fn threw: nobody waits for the line to move any more
  std::mutex mutex;
  std::condition_variable moved;
  parallel_for(tiles.size(), threads, [&](std::size_t i) {
    std::unique_lock lock(mutex);
    moved.wait(lock, [&] { return failed || i < next + window; });
    if (failed) return;
    lock.unlock();
    try {
      TileVectors t = tile_vectors(cube, space, tiles[i]);
      lock.lock();
      ready[i] = std::move(t);
      for (; next < tiles.size() && ready[next]; ++next) {
        if (!ready[next]->chips.empty()) fn(*ready[next]);
        ready[next].reset();
        moved.notify_all();
      }
    } catch (...) {
      if (!lock.owns_lock()) lock.lock();
      failed = true;
      moved.notify_all();
      throw;
    }
  });
}

std::vector<std::vector<Hit>> exact_search(const CubeReader& cube, const SearchSpace& space,
                                           const std::vector<std::vector<float>>& queries, int k, int threads,
                                           const TileScores& each) {
  const std::size_t dim = static_cast<std::size_t>(space.dim), nq = queries.size();
  std::vector<float> q(nq * dim);  // [query][dim]
  for (std::size_t i = 0; i < nq; ++i) {
    if (queries[i].size() != dim)
      throw std::invalid_argument(fmt::format("query {} has {} values, the {} embeddings {}", i, queries[i].size(),
                                              space.name, dim));
    std::copy(queries[i].begin(), queries[i].end(), q.begin() + static_cast<long>(i * dim));
  }
  std::vector<TopK> best(nq, TopK(k));
  std::vector<float> scores;
  for_each_tile(cube, space, threads, [&](const TileVectors& t) {
    const int n = static_cast<int>(t.chips.size());
    scores.assign(t.chips.size() * nq, 0.0f);
    // scores[chip][query] = X [chips x dim] . Q^T [dim x queries]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, static_cast<int>(nq), static_cast<int>(dim), 1.0f,
                t.values.data(), static_cast<int>(dim), q.data(), static_cast<int>(dim), 0.0f, scores.data(),
                static_cast<int>(nq));
    keep_best(t.chips.data(), t.chips.size(), scores.data(), best);
    if (each) each(t.chips, scores);
  });
  std::vector<std::vector<Hit>> out;
  for (const TopK& b : best) out.push_back(b.sorted());
  return out;
}

VectorsInMemory::VectorsInMemory(const CubeReader& cube, const SearchSpace& space, int threads)
    : dim_(space.dim), threads_(std::max(1, threads)) {
  for_each_tile(cube, space, threads_, [&](const TileVectors& t) {
    chips_.insert(chips_.end(), t.chips.begin(), t.chips.end());
    values_.insert(values_.end(), t.values.begin(), t.values.end());
  });
}

std::vector<std::vector<Hit>> VectorsInMemory::search(const std::vector<std::vector<float>>& queries, int k,
                                                      std::vector<float>* scores) const {
  const std::size_t dim = static_cast<std::size_t>(dim_), nq = queries.size(), n = chips_.size();
  if (scores && nq != 1) throw std::invalid_argument("VectorsInMemory::search: every chip's scores are for one query");
  std::vector<float> q;
  for (const auto& query : queries) {
    if (query.size() != dim) throw std::invalid_argument(fmt::format("a query of {} values, the vectors {}", query.size(), dim));
    q.insert(q.end(), query.begin(), query.end());
  }
  if (scores) scores->assign(n, 0.0f);
  // Blocks of chips side by side, each scored against every query by one BLAS call (a
  // block's scores stay in cache while its best are picked), then the blocks' best merged.
  constexpr std::size_t kBlock = 4096;
  const std::size_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<std::vector<TopK>> best(blocks);
  parallel_for(blocks, threads_, [&](std::size_t b) {
    const std::size_t first = b * kBlock, rows = std::min(kBlock, n - first);
    std::vector<float> s(rows * nq);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(nq), dim_, 1.0f,
                values_.data() + first * dim, dim_, q.data(), dim_, 0.0f, s.data(), static_cast<int>(nq));
    best[b].assign(nq, TopK(k));
    keep_best(chips_.data() + first, rows, s.data(), best[b]);
    if (scores) std::copy(s.begin(), s.end(), scores->begin() + static_cast<long>(first));
  });
  std::vector<std::vector<Hit>> out;
  for (std::size_t j = 0; j < nq; ++j) {
    TopK merged(k);
    for (const auto& block : best)
      for (const Hit& h : block[j].sorted()) merged.offer(h);
    out.push_back(merged.sorted());
  }
  return out;
}

json hits_geojson(const std::vector<Hit>& hits, const std::string& space) {
  json features = json::array();
  for (std::size_t i = 0; i < hits.size(); ++i) {
    const ChipId& c = hits[i].chip;
    json ring = json::array();
    for (const LonLat& p : footprint_lonlat(c.zone, c.bounds(), 2)) ring.push_back({p.lon, p.lat});
    features.push_back({{"type", "Feature"},
                        {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}},
                        {"properties",
                         {{"rank", i + 1}, {"chip", c.str()}, {"zone", c.zone.name()}, {"score", hits[i].score},
                          {"space", space}}}});
  }
  return {{"type", "FeatureCollection"}, {"features", features}};
}

std::vector<fs::path> write_similarity_maps(const std::vector<Hit>& scored, const std::vector<Hit>& hits,
                                            const Examples& examples, const fs::path& dir) {
  std::vector<ChipId> chips, hit_chips, example_chips(examples.positives);
  for (const Hit& h : scored) chips.push_back(h.chip);
  for (const Hit& h : hits) hit_chips.push_back(h.chip);
  example_chips.insert(example_chips.end(), examples.negatives.begin(), examples.negatives.end());
  auto rasters = zone_rasters(chips, 1);
  for (const Hit& h : scored) rasters.at(h.chip.zone).at(0, h.chip) = h.score;
  std::vector<fs::path> files;
  for (const auto& [zone, raster] : rasters) {
    const fs::path tif = dir / fmt::format("similarity_{}.tif", zone.name());
    raster.save_geotiff(tif, {"similarity"});
    const fs::path png = dir / fmt::format("similarity_{}.png", zone.name());
    save_chip_map(png, fmt::format("Similarity to the examples, zone {}", zone.name()), raster, 0,
                  "score (mean cosine to the positives, less the negatives')",
                  {{hit_chips, {0, 0, 0}, fmt::format("the {} best", hits.size())}, {example_chips, {255, 255, 255}, "examples"}});
    files.push_back(tif);
    files.push_back(png);
  }
  return files;
}

std::int64_t chip_key(const ChipId& chip) {
  return (static_cast<std::int64_t>(chip.zone.number * 2 + (chip.zone.south ? 1 : 0)) << 40) |
         (static_cast<std::int64_t>(chip.row) << 20) | static_cast<std::int64_t>(chip.col);
}

ChipId chip_of_key(std::int64_t key) {
  const int z = static_cast<int>(key >> 40);
  return ChipId{Zone{z / 2, (z % 2) == 1}, static_cast<int>((key >> 20) & 0xfffff), static_cast<int>(key & 0xfffff)};
}

}  // namespace eo
