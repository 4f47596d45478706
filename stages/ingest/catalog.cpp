#include "stages/ingest/catalog.hpp"
#include "stages/ingest/remote.hpp"

#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "stages/ingest/gdal_util.hpp"

namespace eo {
namespace {

std::int64_t cell_key(int lon, int lat) { return static_cast<std::int64_t>(lon + 1000) * 4096 + (lat + 1000); }

template <typename F>
void for_cells(const LonLatBox& b, F&& f) {
  for (int lon = static_cast<int>(std::floor(b.lon0)); lon <= static_cast<int>(std::floor(b.lon1)); ++lon)
    for (int lat = static_cast<int>(std::floor(b.lat0)); lat <= static_cast<int>(std::floor(b.lat1)); ++lat)
      f(cell_key(lon, lat));
}

}  // namespace

bool is_connection_string(const std::string& path) {
  const auto colon = path.find(':'), slash = path.find('/');
  return colon != std::string::npos && colon > 1 && (slash == std::string::npos || colon < slash);
}

bool is_verbatim_path(const std::string& path) { return is_connection_string(path) || path.starts_with("/vsi"); }

std::string SourceRecord::describe() const {
  const std::string where = redact_url(path.string());  // a signed URL's signature is not for messages
  if (item.empty()) return where;
  return fmt::format("{} (item {}, asset {})", where, item, asset.empty() ? "?" : asset);
}

std::string footprint_problem(const LonLatBox& b) {
  const std::string as_given = fmt::format("[{}, {}, {}, {}]", b.lon0, b.lat0, b.lon1, b.lat1);
  for (double v : {b.lon0, b.lat0, b.lon1, b.lat1})
    if (!std::isfinite(v)) return fmt::format("footprint {} is not finite", as_given);
  if (std::max({std::abs(b.lon0), std::abs(b.lon1), std::abs(b.lat0), std::abs(b.lat1)}) > 540)
    return fmt::format("footprint {} is not in degrees (values this large look like metres of a projected CRS); "
                       "give [west, south, east, north] in EPSG:4326 longitude and latitude", as_given);
  if (std::abs(b.lat0) > 90 || std::abs(b.lat1) > 90 || std::abs(b.lon0) > 180 || b.lon1 > b.lon0 + 360)
    return fmt::format("footprint {} is outside the Earth: [west, south, east, north] in degrees, longitudes "
                       "within +-180 and latitudes within +-90", as_given);
  if (b.lat0 > b.lat1 || b.lon0 > b.lon1)
    return fmt::format("footprint {} is inverted: [west, south, east, north], with west <= east and south <= north", as_given);
  return "";
}

int season_of(const std::string& datetime) {
  int year = 0, month = 0;
  if (std::sscanf(datetime.c_str(), "%4d-%2d", &year, &month) != 2 || month < 1 || month > 12)
    throw std::invalid_argument(fmt::format("'{}' is not an ISO 8601 date", datetime));
  return (month % 12) / 3;
}

std::filesystem::path underlying_file(const std::filesystem::path& path) {
  const std::string s = path.string();
  if (!is_connection_string(s)) return path;
  const auto q0 = s.find('"'), q1 = s.find('"', q0 + 1);
  if (q0 != std::string::npos && q1 != std::string::npos) return s.substr(q0 + 1, q1 - q0 - 1);
  const auto colon = s.find(':'), next = s.find(':', colon + 1);
  return s.substr(colon + 1, next == std::string::npos ? std::string::npos : next - colon - 1);
}

std::string season_interval(int year, int season) {
  static const char* ends[4] = {"02-28", "05-31", "08-31", "11-30"};
  static const char* starts[4] = {"12-01", "03-01", "06-01", "09-01"};
  return fmt::format("{}-{}/{}-{}", season == 0 ? year - 1 : year, starts[season], year, ends[season]);
}

void Catalog::add(SourceRecord record) {
  const std::size_t index = records_.size();
  for_cells(record.footprint, [&](std::int64_t key) { cells_[key].push_back(index); });
  records_.push_back(std::move(record));
}

std::vector<const SourceRecord*> Catalog::query(Modality modality, int season, const LonLatBox& box) const {
  std::set<std::size_t> hits;
  for_cells(box, [&](std::int64_t key) {
    const auto it = cells_.find(key);
    if (it == cells_.end()) return;
    for (std::size_t i : it->second) {
      const SourceRecord& r = records_[i];
      if (r.modality == modality && r.season == season && r.footprint.intersects(box)) hits.insert(i);
    }
  });
  std::vector<const SourceRecord*> out;
  for (std::size_t i : hits) out.push_back(&records_[i]);
  return out;
}

Catalog Catalog::load(const std::filesystem::path& file) {
  // The user's file: what is wrong with it is theirs to mend (exit 2).
  try {
    require_regular_file(file);
  } catch (const std::exception& e) {
    throw StageConfigError("ingest", fmt::format("catalog {}", e.what()));
  }
  std::ifstream in(file);
  if (!in) throw StageConfigError("ingest", fmt::format("catalog {}: cannot open the file", file.string()));
  Catalog c;
  c.file_ = file;
  const auto base = file.parent_path();
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.empty()) continue;
    try {
      const auto j = parse_json(text, "the record");
      SourceRecord r;
      const auto resolve = [&](const std::string& written) -> std::filesystem::path {
        const std::filesystem::path p = written;
        return p.is_absolute() || is_verbatim_path(written) ? p : (base / p).lexically_normal();
      };
      r.path = resolve(j.at("path").get<std::string>());
      r.modality = parse_modality(j.at("modality").get<std::string>());
      r.season = j.value("season", 0);
      if (r.season < 0 || r.season >= info(r.modality).seasons)
        throw std::invalid_argument(fmt::format("season {} out of range for {}", r.season, info(r.modality).name));
      r.time = j.value("time", "");
      r.crs = j.at("crs").get<std::string>();
      const auto fp = j.at("footprint").get<std::vector<double>>();
      if (fp.size() != 4) throw std::invalid_argument("footprint must be [lon0, lat0, lon1, lat1]");
      r.footprint = {fp[0], fp[1], fp[2], fp[3]};
      if (const std::string problem = footprint_problem(r.footprint); !problem.empty()) throw std::invalid_argument(problem);
      r.bands = j.value("bands", std::vector<int>{});
      if (r.bands.empty())
        for (std::size_t b = 1; b <= info(r.modality).bands.size(); ++b) r.bands.push_back(static_cast<int>(b));
      if (r.bands.size() != info(r.modality).bands.size())
        throw std::invalid_argument(fmt::format("{} needs {} bands, the record maps {}", info(r.modality).name,
                                                info(r.modality).bands.size(), r.bands.size()));
      if (std::none_of(r.bands.begin(), r.bands.end(), [](int b) { return b > 0; }))
        throw std::invalid_argument("the record maps none of the modality's bands");
      r.item = j.value("item", "");
      r.collection = j.value("collection", "");
      r.asset = j.value("asset", "");
      if (j.contains("scale")) r.scale = j["scale"].get<double>();
      if (j.contains("offset")) r.offset = j["offset"].get<double>();
      if (j.contains("nodata")) r.nodata = j["nodata"].get<double>();
      if (j.contains("cloud_cover")) r.cloud_cover = j["cloud_cover"].get<double>();
      r.version = j.value("version", "");
      r.units = parse_choice_or_throw<Units>(j.value("units", "native"), "units");
      if (j.contains("mask")) {
        const auto& m = j["mask"];
        r.mask = MaskSpec{resolve(m.at("path").get<std::string>()), m.value("band", 1), m.at("valid").get<std::vector<int>>(),
                          m.value("version", "")};
      }
      c.add(std::move(r));
    } catch (const std::exception& e) {
      throw StageConfigError("ingest", fmt::format("catalog {}:{}: bad record: {}", file.string(), line, detail_of(e)));
    }
  }
  return c;
}

void Catalog::save(const std::filesystem::path& file) const {
  const auto base = std::filesystem::absolute(file).parent_path();
  const auto relative = [&](const std::filesystem::path& p) {
    return is_verbatim_path(p.string()) ? p.string() : std::filesystem::absolute(p).lexically_relative(base).string();
  };
  std::string text;
  for (const SourceRecord& r : records_) {
    nlohmann::json j = {{"path", relative(r.path)},
                        {"modality", info(r.modality).name},
                        {"season", r.season},
                        {"time", r.time},
                        {"crs", r.crs},
                        {"footprint", {r.footprint.lon0, r.footprint.lat0, r.footprint.lon1, r.footprint.lat1}},
                        {"bands", r.bands}};
    if (!r.item.empty()) j["item"] = r.item;
    if (!r.collection.empty()) j["collection"] = r.collection;
    if (!r.asset.empty()) j["asset"] = r.asset;
    if (r.scale) j["scale"] = *r.scale;
    if (r.offset) j["offset"] = *r.offset;
    if (r.nodata) j["nodata"] = *r.nodata;
    if (r.cloud_cover) j["cloud_cover"] = *r.cloud_cover;
    if (r.units != Units::native) j["units"] = name_str(r.units);
    if (!r.version.empty()) j["version"] = r.version;
    if (r.mask) {
      j["mask"] = {{"path", relative(r.mask->path)}, {"band", r.mask->band}, {"valid", r.mask->valid}};
      if (!r.mask->version.empty()) j["mask"]["version"] = r.mask->version;
    }
    text += j.dump() + '\n';
  }
  write_atomically(file, text);
}

SourceRecord describe_raster(const std::filesystem::path& path, Modality modality, int season, const std::string& time,
                             std::vector<int> bands) {
  auto ds = open_raster(path);
  const OGRSpatialReference* srs = ds->GetSpatialRef();
  if (!srs) throw StageError("ingest", fmt::format("{}: the raster has no coordinate reference system", path.string()));
  double gt[6];
  if (ds->GetGeoTransform(gt) != CE_None)
    throw StageError("ingest", fmt::format("{}: the raster has no geotransform", path.string()));
  SourceRecord r;
  r.path = is_verbatim_path(path.string()) ? path : std::filesystem::absolute(path);
  r.modality = modality;
  r.season = season;
  r.time = time;
  const char* auth = srs->GetAuthorityName(nullptr);
  const char* code = srs->GetAuthorityCode(nullptr);
  r.crs = auth && code ? fmt::format("{}:{}", auth, code) : srs_wkt(*srs);
  r.footprint = lonlat_bounds(*ds);
  r.bands = std::move(bands);
  if (r.bands.empty())
    for (std::size_t b = 1; b <= info(modality).bands.size(); ++b) r.bands.push_back(static_cast<int>(b));
  for (int b : r.bands)
    if (b < 1 || b > ds->GetRasterCount())
      throw StageError("ingest", fmt::format("{}: has {} bands, band {} asked for", path.string(), ds->GetRasterCount(), b));
  return r;
}

}  // namespace eo
