#pragma once
// The synthetic world's writer, private to the synth stage: its products written as one
// ready-made raster per modality, season and place (product_layout.cpp), or as real data
// is published, per-date scenes with STAC ItemCollections (scene_layout.cpp); what both
// share (the ground under a tile's pixels, the catalog, the report) in writer.cpp.

#include <gdal_priv.h>
#include <cpl_string.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/ingest/stac.hpp"
#include "stages/synth/products.hpp"
#include "stages/synth/synth.hpp"

namespace eo::synth {


inline constexpr double kS2PixelM = 10.0;
inline constexpr double kS1PixelDeg = 0.0001;
inline constexpr double kCohPixelDeg = 1.0 / 1200;  // 3 arc-seconds
inline constexpr double kCoverPixelDeg = 1.0 / 12000;  // WorldCover's ~10 m
inline constexpr double kTreePixelDeg = 0.00025;       // ~30 m
inline constexpr double kMgrsSpacing = 100000, kMgrsSize = 109800;
inline constexpr double kMarginDeg = 0.03;

// Runs f(row) for rows [0, n) on all cores.
template <typename F>
void parallel_rows(int n, F&& f) {
  const int threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int r = t; r < n; r += threads) f(r);
    });
  for (auto& th : pool) th.join();
}

// Where the world exists: around each planned tile's chips, with a margin.
std::vector<LonLatBox> plan_areas(const Plan& plan);
LonLatBox bounds_of(const std::vector<LonLatBox>& areas);

// A raster in memory, written out through GDAL's CreateCopy into the product's format.
class Raster {
 public:
  Raster(int width, int height, int bands, GDALDataType type, const double gt[6], const OGRSpatialReference& srs)
      : ds_(GetGDALDriverManager()->GetDriverByName("MEM")->Create("", width, height, bands, type, nullptr)) {
    ds_->SetGeoTransform(const_cast<double*>(gt));
    ds_->SetSpatialRef(&srs);
  }
  GDALDataset& ds() { return *ds_; }
  template <typename T>
  void write_band(int band, const std::vector<T>& data, GDALDataType type) {
    if (ds_->GetRasterBand(band)->RasterIO(GF_Write, 0, 0, ds_->GetRasterXSize(), ds_->GetRasterYSize(),
                                           const_cast<T*>(data.data()), ds_->GetRasterXSize(), ds_->GetRasterYSize(),
                                           type, 0, 0) != CE_None)
      throw StageError("synth", "writing a band in memory failed: " + gdal_error());
  }
  void save(const char* driver, const std::filesystem::path& path, std::vector<std::string> options) {
    std::vector<char*> opts;
    for (auto& o : options) opts.push_back(o.data());
    opts.push_back(nullptr);
    GDALDriver* drv = GetGDALDriverManager()->GetDriverByName(driver);
    if (!drv) throw StageError("synth", fmt::format("GDAL has no {} driver", driver));
    publish_file(path, [&](const std::filesystem::path& tmp) {
      GdalDataset out(drv->CreateCopy(tmp.c_str(), ds_.get(), FALSE, opts.data(), nullptr, nullptr));
      if (!out) throw StageError("synth", fmt::format("cannot write {}: {}", path.string(), gdal_error()));
    });
  }

 private:
  GdalDataset ds_;
};

inline OGRSpatialReference epsg(int code) {
  OGRSpatialReference srs;
  srs.importFromEPSG(code);
  srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  return srs;
}
class Writer {
 public:
  Writer(const SynthConfig& synth, std::filesystem::path dir, const Plan& plan,
         const std::function<void(const std::string&)>& progress, std::string href_base)
      : synth_(synth), plan_(plan), progress_(progress), world_(world_of(synth, plan)), areas_(plan_areas(plan)),
        extent_(bounds_of(areas_)), dir_(std::move(dir)), href_base_(std::move(href_base)), scale_(synth.resolution_scale) {}

  SynthReport run();

 private:
  // The world exists over the plan's chips and a margin; products are no data elsewhere,
  // as real ones are beyond a swath or an archive's coverage.
  bool in_extent(LonLat p) const {
    return std::any_of(areas_.begin(), areas_.end(), [&](const LonLatBox& a) { return a.contains(p); });
  }
  // Source tiles that hold none of the world are not written.
  bool touches_world(const LonLatBox& box) const {
    for (const LonLatBox& a : areas_)
      if (a.intersects(box)) return true;
    return false;
  }

  bool left_out(Modality m, const std::string& tile);

  void record(const std::filesystem::path& path, Modality m, int season);

  // One MGRS-like tile at pixel size px: its grid and the world under each pixel.
  struct GroundTile {
    Zone zone;
    std::string name;
    double gt[6];
    int n = 0;                    // pixels per side
    std::vector<Ground> ground;   // per pixel
    std::vector<LonLat> where;    // pixel centres
    std::vector<char> covered;    // whether the world exists there
  };

  // The MGRS-like 109.8 km tiles on a 100 km grid of each UTM zone the plan uses that
  // hold some of the world, each handed to f as a GroundTile.
  template <typename F>
  void mgrs_tiles(Modality m, double px, F&& f) {
    const int n = static_cast<int>(std::lround(kMgrsSize / px));
    for (const auto& [zone, stats] : plan_.per_zone) {
      // the part of the extent within the zone's band, in the zone's CRS
      const double cm = zone.central_meridian();
      const double lon0 = std::max(extent_.lon0, cm - 3.2), lon1 = std::min(extent_.lon1, cm + 3.2);
      if (lon0 >= lon1) continue;
      double e0 = 1e300, e1 = -1e300, n0 = 1e300, n1 = -1e300;
      for (int i = 0; i <= 8; ++i)
        for (int j = 0; j <= 8; ++j) {
          const EastNorth p = utm_forward(zone.number, zone.south,
                                          {lon0 + (lon1 - lon0) * i / 8, extent_.lat0 + (extent_.lat1 - extent_.lat0) * j / 8});
          e0 = std::min(e0, p.e); e1 = std::max(e1, p.e); n0 = std::min(n0, p.n); n1 = std::max(n1, p.n);
        }
      for (int ie = static_cast<int>(std::floor((e0 - kMgrsSize) / kMgrsSpacing)) + 1; ie * kMgrsSpacing < e1; ++ie)
        for (int in = static_cast<int>(std::floor((n0 - kMgrsSize) / kMgrsSpacing)) + 1; in * kMgrsSpacing < n1; ++in) {
          const std::string tile = fmt::format("{}{:02d}{:03d}", zone.name(), ie, in);
          const Box mgrs{ie * kMgrsSpacing, in * kMgrsSpacing, ie * kMgrsSpacing + kMgrsSize, in * kMgrsSpacing + kMgrsSize};
          if (!touches_world(lonlat_bounds(zone, mgrs)) || left_out(m, "S2_" + tile)) continue;
          // ground once per pixel, then every season and scene from it
          GroundTile t{zone, tile, {ie * kMgrsSpacing, px, 0, in * kMgrsSpacing + kMgrsSize, 0, -px}, n, {}, {}, {}};
          t.ground.resize(static_cast<std::size_t>(n) * n);
          t.where.resize(t.ground.size());
          t.covered.assign(t.ground.size(), 0);
          parallel_rows(n, [&](int r) {
            for (int c = 0; c < n; ++c) {
              const std::size_t i = static_cast<std::size_t>(r) * n + c;
              t.where[i] = utm_inverse(zone.number, zone.south, {t.gt[0] + (c + 0.5) * px, t.gt[3] - (r + 0.5) * px});
              if ((t.covered[i] = in_extent(t.where[i]))) t.ground[i] = world_.at(t.where[i]);
            }
          });
          f(static_cast<const GroundTile&>(t));
        }
    }
  }

  // S2 RGB: one COG per MGRS tile and season with bands R, G, B; clouds are holes (0).
  void s2();

  // Lon/lat tiles of `size` degrees over the extent, aligned to multiples of it.
  template <typename F>
  void geographic_tiles(double size, F&& f) {
    for (double lat = std::floor(extent_.lat0 / size) * size; lat < extent_.lat1 - 1e-9; lat += size)
      for (double lon = std::floor(extent_.lon0 / size) * size; lon < extent_.lon1 - 1e-9; lon += size)
        if (touches_world({lon, lat, lon + size, lat + size})) f(lon, lat);
  }

  static std::string tile_name(double lon, double lat) {
    return fmt::format("{}{:05.2f}{}{:06.2f}", lat < 0 ? 'S' : 'N', std::abs(lat), lon < 0 ? 'W' : 'E', std::abs(lon));
  }

  // S1 amplitude: VV and VH in dB, float32, EPSG:4326 at 0.0001 deg, with speckle.
  void s1_amplitude();

  // Coherence: 3 arc-second CF NetCDF per 1-degree tile and season, stored as bytes with
  // scale_factor 0.004 and _FillValue 255, as such products often are.
  void coherence();

  // Labels: a WorldCover-like class map (~10 m) and a tree-cover percentage map (~30 m),
  // in EPSG:4326 1-degree tiles. Never left out: they are the ground truth.
  void labels(const std::vector<Modality>& modalities);

  // ---- The scenes layout: the world as real data is published ----

  // Acquisition dates of a season: n spread evenly over its months, as "YYYY-MM-DD".
  std::vector<std::string> scene_dates(int season, int n) const;

  static std::string compact(const std::string& date) {
    std::string out;
    for (char c : date)
      if (c != '-') out += c;
    return out;
  }

  nlohmann::json item(const std::string& id, const std::string& collection, const std::string& datetime, const LonLatBox& box,
                      nlohmann::json properties, nlohmann::json assets, const std::string& publisher_url);

  // A file as the STAC names it: relative to the STAC's folder, or under href_base_.
  std::string href(const std::filesystem::path& file) const {
    if (!href_base_.empty()) return href_base_ + std::filesystem::relative(file, dir_).generic_string();
    return std::filesystem::relative(file, dir_ / "stac").generic_string();
  }
  // A file catalogued without a STAC (by its name, as users do for these products): where
  // it is, or where the world is served.
  std::filesystem::path catalogued(const std::filesystem::path& file) const {
    return href_base_.empty() ? file : std::filesystem::path(gdal_path_of_href(href(file), dir_ / "stac"));
  }

  // Sentinel-2 L2A scenes as Earth Search v1 publishes them: per date and MGRS tile one
  // uint16 COG per band (DN = 10000 reflectance + 1000, processing baseline 05.xx) and a
  // scene classification (SCL) at twice the pixel size, clouds, cirrus and their shadows
  // in it with their real class codes.
  void s2_scenes();

  // Sentinel-1 RTC scenes as Planetary Computer publishes them: per date gamma0 in linear
  // power, VV and VH apart, float32 COGs in UTM, -32768 where the swath does not reach.
  void s1_scenes();

  // Coherence as the global seasonal dataset lays it out: 1-degree tiles named by their
  // upper-left corner, N37W121_summer_vv_COH12.tif, bytes of coherence x 100, 0 no data.
  void coherence_tiles();

  // WorldCover as Planetary Computer's esa-worldcover publishes it: 3-degree tiles named
  // by their lower-left corner, one "map" asset of class codes, 0 no data.
  void worldcover_tiles();

  // One ItemCollection per collection, as a saved STAC search, then catalogued from it.
  void write_item_collections();

  void count(const std::filesystem::path& path, Modality m);

  const SynthConfig& synth_;
  const Plan& plan_;
  const std::function<void(const std::string&)>& progress_;
  World world_;
  std::vector<LonLatBox> areas_;
  LonLatBox extent_;
  std::filesystem::path dir_;
  std::string href_base_;  // where the world is served from (synth --stac-hrefs), ending in '/'
  int scale_;
  Catalog catalog_;
  SynthReport report_;
  std::map<std::string, std::vector<nlohmann::json>> items_;  // STAC items per collection (scenes layout)
};

}  // namespace eo::synth
