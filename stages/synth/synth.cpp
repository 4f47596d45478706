#include "stages/synth/synth.hpp"

#include <gdal_priv.h>
#include <cpl_string.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <cmath>
#include <fmt/format.h>
#include <thread>
#include <vector>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/ingest/stac.hpp"
#include "stages/synth/products.hpp"

namespace eo::synth {
namespace {

constexpr double kS2PixelM = 10.0;
constexpr double kS1PixelDeg = 0.0001;
constexpr double kCohPixelDeg = 1.0 / 1200;  // 3 arc-seconds
constexpr double kCoverPixelDeg = 1.0 / 12000;  // WorldCover's ~10 m
constexpr double kTreePixelDeg = 0.00025;       // ~30 m
constexpr double kMgrsSpacing = 100000, kMgrsSize = 109800;
constexpr double kMarginDeg = 0.03;

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
std::vector<LonLatBox> plan_areas(const Plan& plan) {
  std::vector<LonLatBox> areas;
  for (const TilePlan& t : plan.tiles) {
    LonLatBox b;
    for (int i = 0; i < kChipsPerTile; ++i)
      if (t.chips.test(static_cast<std::size_t>(i))) b.add(lonlat_bounds(t.id.zone, t.id.chip(i).bounds(), 1));
    areas.push_back(b.grown(kMarginDeg));
  }
  return areas;
}

LonLatBox bounds_of(const std::vector<LonLatBox>& areas) {
  LonLatBox b;
  for (const LonLatBox& a : areas) b.add(a);
  return b;
}

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

OGRSpatialReference epsg(int code) {
  OGRSpatialReference srs;
  srs.importFromEPSG(code);
  srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  return srs;
}

class Writer {
 public:
  Writer(const SynthConfig& synth, std::filesystem::path dir, const Plan& plan,
         const std::function<void(const std::string&)>& progress)
      : synth_(synth), plan_(plan), progress_(progress), world_(world_of(synth, plan)), areas_(plan_areas(plan)),
        extent_(bounds_of(areas_)), dir_(std::move(dir)), scale_(synth.resolution_scale) {}

  SynthReport run() {
    gdal_init();
    if (synth_.layout == "scenes") {
      // As real data is published, and catalogued the way a user's is (`eo-pipeline
      // catalog --stac ...`, `--layout global-coherence`): the demo exercises that path.
      s2_scenes();
      s1_scenes();
      coherence_tiles();
      worldcover_tiles();
      labels({Modality::treecover});
      write_item_collections();
    } else {
      s2();
      s1_amplitude();
      coherence();
      labels({Modality::worldcover, Modality::treecover});
    }
    report_.catalog = dir_ / "catalog.jsonl";
    catalog_.save(report_.catalog);
    return report_;
  }

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

  bool left_out(Modality m, const std::string& tile) {
    const auto key = static_cast<std::int64_t>(Hasher().add(tile).value());
    if (hash_unit(synth_.seed, key, 0, 100 + static_cast<int>(m)) >= synth_.missing_fraction) return false;
    ++report_.left_out[info(m).name];
    return true;
  }

  void record(const std::filesystem::path& path, Modality m, int season) {
    catalog_.add(describe_raster(path, m, season, info(m).seasons > 1 ? season_interval(synth_.year, season) : std::to_string(synth_.year)));
    ++report_.files[info(m).name];
    report_.bytes += std::filesystem::file_size(path);
  }

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
  void s2() {
    const double px = kS2PixelM * scale_;
    mgrs_tiles(Modality::s2rgb, px, [&](const GroundTile& t) {
      const auto& [zone, tile, gt, n, ground, where, covered] = t;
      const OGRSpatialReference srs = epsg(zone.epsg());
      const int ie = static_cast<int>(gt[0] / kMgrsSpacing), in = static_cast<int>((gt[3] - kMgrsSize) / kMgrsSpacing);
      for (int season = 0; season < kSeasons; ++season) {
        std::vector<std::vector<std::uint8_t>> bands(3, std::vector<std::uint8_t>(ground.size()));
        parallel_rows(n, [&](int r) {
          for (int c = 0; c < n; ++c) {
            const std::size_t i = static_cast<std::size_t>(r) * n + c;
            if (!covered[i] || world_.cloud(where[i], season, synth_.cloud_fraction)) continue;  // 0: no data
            auto rgb = s2_sample(ground[i], season, hash_unit(synth_.seed, ie * 100000 + c, in * 100000 + r, 200 + season));
            if (const double k = synth_.acquisition_effects; k > 0) {
              // illumination and atmosphere: a gain of 0.7..1.3 and haze of up to 40
              const double gain = 1 + 0.6 * k * world_.acquisition(where[i], 12000, static_cast<std::uint32_t>(season));
              const double haze = 40 * k * (world_.acquisition(where[i], 20000, 4 + static_cast<std::uint32_t>(season)) + 0.5);
              for (auto& v : rgb) v = static_cast<std::uint8_t>(std::clamp(std::lround(gain * v + haze), 1L, 255L));
            }
            for (int b = 0; b < 3; ++b) bands[static_cast<std::size_t>(b)][i] = rgb[static_cast<std::size_t>(b)];
          }
        });
        Raster out(n, n, 3, GDT_Byte, gt, srs);
        for (int b = 0; b < 3; ++b) {
          out.write_band(b + 1, bands[static_cast<std::size_t>(b)], GDT_Byte);
          out.ds().GetRasterBand(b + 1)->SetNoDataValue(0);
          out.ds().GetRasterBand(b + 1)->SetDescription(info(Modality::s2rgb).bands[static_cast<std::size_t>(b)].c_str());
        }
        const auto path = dir_ / "s2rgb" / fmt::format("S2_T{}_{}{}.tif", tile, synth_.year, season_name(season));
        out.save("COG", path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512", "NUM_THREADS=ALL_CPUS"});
        record(path, Modality::s2rgb, season);
      }
      progress_(fmt::format("s2rgb tile {} ({} px)", tile, n));
    });
  }

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
  void s1_amplitude() {
    const double px = kS1PixelDeg * scale_, size = synth_.s1_tile_deg;
    const int n = static_cast<int>(std::lround(size / px));
    const OGRSpatialReference srs = epsg(4326);
    geographic_tiles(size, [&](double lon, double lat) {
      const std::string tile = tile_name(lon, lat);
      if (left_out(Modality::s1amp, "S1_" + tile)) return;
      const double gt[6] = {lon, px, 0, lat + size, 0, -px};
      std::vector<Ground> ground(static_cast<std::size_t>(n) * n);
      std::vector<char> covered(ground.size(), 0);
      parallel_rows(n, [&](int r) {
        for (int c = 0; c < n; ++c) {
          const std::size_t i = static_cast<std::size_t>(r) * n + c;
          const LonLat p{gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px};
          if ((covered[i] = in_extent(p))) ground[i] = world_.at(p);
        }
      });
      for (int season = 0; season < kSeasons; ++season) {
        std::vector<std::vector<float>> bands(2, std::vector<float>(ground.size()));
        parallel_rows(n, [&](int r) {
          const auto gr = static_cast<std::int64_t>(std::lround((gt[3] - (r + 0.5) * px) / px));
          for (int c = 0; c < n; ++c) {
            if (!covered[static_cast<std::size_t>(r) * n + c]) {
              bands[0][static_cast<std::size_t>(r) * n + c] = bands[1][static_cast<std::size_t>(r) * n + c] = std::nanf("");
              continue;
            }
            const auto gc = static_cast<std::int64_t>(std::lround((gt[0] + (c + 0.5) * px) / px));
            std::array<double, 8> u;
            for (int k = 0; k < 8; ++k) u[static_cast<std::size_t>(k)] = hash_unit(synth_.seed, gc, gr, 300 + season * 8 + k);
            auto db = s1_sample_db(ground[static_cast<std::size_t>(r) * n + c], season, u);
            if (const double k = synth_.acquisition_effects; k > 0) {
              // calibration, incidence angle and soil moisture: +-2.5 dB over tens of km
              const double shift = 5 * k * world_.acquisition({gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px}, 25000,
                                                               8 + static_cast<std::uint32_t>(season));
              for (auto& v : db) v = static_cast<float>(v + shift);
            }
            bands[0][static_cast<std::size_t>(r) * n + c] = db[0];
            bands[1][static_cast<std::size_t>(r) * n + c] = db[1];
          }
        });
        Raster out(n, n, 2, GDT_Float32, gt, srs);
        for (int b = 0; b < 2; ++b) {
          out.write_band(b + 1, bands[static_cast<std::size_t>(b)], GDT_Float32);
          out.ds().GetRasterBand(b + 1)->SetNoDataValue(std::nan(""));
          out.ds().GetRasterBand(b + 1)->SetDescription(info(Modality::s1amp).bands[static_cast<std::size_t>(b)].c_str());
          out.ds().GetRasterBand(b + 1)->SetUnitType("dB");
        }
        const auto path = dir_ / "s1amp" / fmt::format("S1_{}_{}{}.tif", tile, synth_.year, season_name(season));
        out.save("GTiff", path, {"TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1", "PREDICTOR=3", "NUM_THREADS=ALL_CPUS"});
        record(path, Modality::s1amp, season);
      }
      progress_(fmt::format("s1amp tile {} ({} px)", tile, n));
    });
  }

  // Coherence: 3 arc-second CF NetCDF per 1-degree tile and season, stored as bytes with
  // scale_factor 0.004 and _FillValue 255, as such products often are.
  void coherence() {
    const double px = kCohPixelDeg;
    const int n = static_cast<int>(std::lround(1.0 / px));
    const OGRSpatialReference srs = epsg(4326);
    geographic_tiles(1.0, [&](double lon, double lat) {
      const std::string tile = tile_name(lon, lat);
      if (left_out(Modality::s1coh, "COH_" + tile)) return;
      const double gt[6] = {lon, px, 0, lat + 1.0, 0, -px};
      // a 90 m cell averages the ground under it: 3 x 3 samples
      std::vector<std::array<double, kSeasons>> coh(static_cast<std::size_t>(n) * n);
      parallel_rows(n, [&](int r) {
        for (int c = 0; c < n; ++c) {
          std::array<double, kSeasons> sum{};
          if (!in_extent({gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px})) {
            sum.fill(-1);  // outside the world: no data
            coh[static_cast<std::size_t>(r) * n + c] = sum;
            continue;
          }
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) {
              const Ground g = world_.at({gt[0] + (c + (i + 0.5) / 3) * px, gt[3] - (r + (j + 0.5) / 3) * px});
              for (int s = 0; s < kSeasons; ++s) sum[static_cast<std::size_t>(s)] += coherence_mean(g, s) / 9;
            }
          coh[static_cast<std::size_t>(r) * n + c] = sum;
        }
      });
      for (int season = 0; season < kSeasons; ++season) {
        std::vector<std::uint8_t> raw(coh.size());
        for (std::size_t i = 0; i < coh.size(); ++i) {
          const double noise = (hash_unit(synth_.seed, static_cast<std::int64_t>(i), static_cast<std::int64_t>(lon * 1000 + lat), 400 + season) - 0.5) * 0.08;
          double value = coh[i][static_cast<std::size_t>(season)];
          if (const double k = synth_.acquisition_effects; k > 0 && value >= 0) {
            // rain and wind between the two passes: coherence lost, down to 0.4 of it
            const auto r = static_cast<int>(i / static_cast<std::size_t>(n)), c = static_cast<int>(i % static_cast<std::size_t>(n));
            value *= 1 - 0.6 * k * (world_.acquisition({gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px}, 30000,
                                                       12 + static_cast<std::uint32_t>(season)) + 0.5);
          }
          raw[i] = value < 0 ? 255 : static_cast<std::uint8_t>(std::clamp(std::lround((value + noise) / 0.004), 0L, 250L));
        }
        Raster out(n, n, 1, GDT_Byte, gt, srs);
        out.write_band(1, raw, GDT_Byte);
        GDALRasterBand* band = out.ds().GetRasterBand(1);
        band->SetNoDataValue(255);
        band->SetScale(0.004);
        band->SetOffset(0.0);
        band->SetMetadataItem("NETCDF_VARNAME", "coherence");
        band->SetMetadataItem("long_name", fmt::format("Sentinel-1 6-day interferometric coherence, {}", season_name(season)).c_str());
        band->SetMetadataItem("units", "1");
        const auto path = dir_ / "s1coh" / fmt::format("COH_{}_{}{}.nc", tile, synth_.year, season_name(season));
        out.save("netCDF", path, {"FORMAT=NC4", "COMPRESS=DEFLATE", "ZLEVEL=1"});
        record(path, Modality::s1coh, season);
      }
      progress_(fmt::format("s1coh tile {} ({} px)", tile, n));
    });
  }

  // Labels: a WorldCover-like class map (~10 m) and a tree-cover percentage map (~30 m),
  // in EPSG:4326 1-degree tiles. Never left out: they are the ground truth.
  void labels(const std::vector<Modality>& modalities) {
    const OGRSpatialReference srs = epsg(4326);
    geographic_tiles(1.0, [&](double lon, double lat) {
      const std::string tile = tile_name(lon, lat);
      for (Modality m : modalities) {
        const bool cover = m == Modality::worldcover;
        const double px = (cover ? kCoverPixelDeg : kTreePixelDeg) * scale_;
        const int n = static_cast<int>(std::lround(1.0 / px));
        const double gt[6] = {lon, px, 0, lat + 1.0, 0, -px};
        std::vector<std::uint8_t> values(static_cast<std::size_t>(n) * n);
        parallel_rows(n, [&](int r) {
          for (int c = 0; c < n; ++c) {
            const LonLat p{gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px};
            if (!in_extent(p)) {
              values[static_cast<std::size_t>(r) * n + c] = cover ? 0 : 255;
              continue;
            }
            const Ground g = world_.at(p);
            values[static_cast<std::size_t>(r) * n + c] =
                cover ? static_cast<std::uint8_t>(g.cover) : static_cast<std::uint8_t>(std::lround(g.tree_percent));
          }
        });
        Raster out(n, n, 1, GDT_Byte, gt, srs);
        out.write_band(1, values, GDT_Byte);
        out.ds().GetRasterBand(1)->SetNoDataValue(cover ? 0 : 255);
        const auto path = dir_ / "labels" / fmt::format("{}_{}_{}.tif", info(m).name, tile, synth_.year);
        out.save("GTiff", path, {"TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1"});
        record(path, m, 0);
      }
      progress_(fmt::format("labels tile {}", tile));
    });
  }

  // ---- The scenes layout: the world as real data is published ----

  // Acquisition dates of a season: n spread evenly over its months, as "YYYY-MM-DD".
  std::vector<std::string> scene_dates(int season, int n) const {
    using namespace std::chrono;
    const year_month_day start = season == 0 ? year{synth_.year - 1} / December / 1
                                             : year{synth_.year} / month{static_cast<unsigned>(3 * season)} / 1;
    const year_month_day end = season == 0 ? year{synth_.year} / March / 1
                                            : year{synth_.year} / month{static_cast<unsigned>(3 * season + 3)} / 1;
    const int days = static_cast<int>((sys_days{end} - sys_days{start}).count());
    std::vector<std::string> dates;
    for (int k = 0; k < n; ++k) {
      const year_month_day d{sys_days{start} + std::chrono::days{(2 * k + 1) * days / (2 * n)}};
      dates.push_back(fmt::format("{:04d}-{:02d}-{:02d}", static_cast<int>(d.year()), static_cast<unsigned>(d.month()),
                                  static_cast<unsigned>(d.day())));
    }
    return dates;
  }

  static std::string compact(const std::string& date) {
    std::string out;
    for (char c : date)
      if (c != '-') out += c;
    return out;
  }

  nlohmann::json item(const std::string& id, const std::string& collection, const std::string& datetime, const LonLatBox& box,
                      nlohmann::json properties, nlohmann::json assets, const std::string& publisher_url) {
    properties["datetime"] = datetime.empty() ? nlohmann::json() : nlohmann::json(datetime);
    const nlohmann::json ring = {{box.lon0, box.lat0}, {box.lon1, box.lat0}, {box.lon1, box.lat1}, {box.lon0, box.lat1}, {box.lon0, box.lat0}};
    return {{"type", "Feature"},
            {"stac_version", "1.0.0"},
            {"id", id},
            {"collection", collection},
            {"bbox", {box.lon0, box.lat0, box.lon1, box.lat1}},
            {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}},
            {"properties", std::move(properties)},
            {"assets", std::move(assets)},
            {"links", {{{"rel", "collection"}, {"href", publisher_url + "/collections/" + collection}}}}};
  }

  std::string href(const std::filesystem::path& file) const {
    return std::filesystem::relative(file, dir_ / "stac").generic_string();
  }

  // Sentinel-2 L2A scenes as Earth Search v1 publishes them: per date and MGRS tile one
  // uint16 COG per band (DN = 10000 reflectance + 1000, processing baseline 05.xx) and a
  // scene classification (SCL) at twice the pixel size, clouds, cirrus and their shadows
  // in it with their real class codes.
  void s2_scenes() {
    const double px = kS2PixelM * scale_;
    mgrs_tiles(Modality::s2rgb, px, [&](const GroundTile& t) {
      const auto& [zone, tile, gt, n, ground, where, covered] = t;
      const OGRSpatialReference srs = epsg(zone.epsg());
      const int ns = (n + 1) / 2;  // SCL pixels per side
      const double gt20[6] = {gt[0], 2 * px, 0, gt[3], 0, -2 * px};
      const LonLatBox box = lonlat_bounds(zone, {gt[0], gt[3] - n * px, gt[0] + n * px, gt[3]});
      for (int season = 0; season < kSeasons; ++season) {
        const auto dates = scene_dates(season, synth_.s2_scenes);
        for (int k = 0; k < static_cast<int>(dates.size()); ++k) {
          const std::string id = fmt::format("S2B_{}_{}_0_L2A", tile, compact(dates[static_cast<std::size_t>(k)]));
          if (left_out(Modality::s2rgb, id)) continue;
          const auto layer = static_cast<std::uint32_t>(100 + 16 * season + k);
          std::vector<std::uint8_t> scl(static_cast<std::size_t>(ns) * ns, 0);
          // The acquisition's gain and haze vary over 10-20 km: drawn per SCL pixel.
          std::vector<float> gain(scl.size(), 1.0f), haze(scl.size(), 0.0f);
          parallel_rows(ns, [&](int r) {
            for (int c = 0; c < ns; ++c) {
              const std::size_t i = static_cast<std::size_t>(std::min(2 * r, n - 1)) * n + std::min(2 * c, n - 1);
              if (!covered[i]) continue;  // 0: no data
              const LonLat p = where[i];
              if (const double e = synth_.acquisition_effects; e > 0) {
                gain[static_cast<std::size_t>(r) * ns + c] = static_cast<float>(1 + 0.6 * e * world_.acquisition(p, 12000, layer));
                haze[static_cast<std::size_t>(r) * ns + c] = static_cast<float>(40 * e * (world_.acquisition(p, 20000, layer + 500) + 0.5));
              }
              const int field = static_cast<int>(layer);
              std::uint8_t cls = ground[i].cover == Cover::water ? 6 : ground[i].cover == Cover::bare || ground[i].cover == Cover::built ? 5 : 4;
              // a shadow falls ~1 km from its cloud, away from the sun
              if (world_.cloud({p.lon + 0.012, p.lat + 0.008}, field, synth_.cloud_fraction)) cls = 3;
              if (world_.cloud(p, field + 1000, synth_.cloud_fraction / 3)) cls = 10;  // thin cirrus
              if (world_.cloud(p, field, synth_.cloud_fraction)) cls = world_.cloud(p, field, synth_.cloud_fraction / 2) ? 9 : 8;
              scl[static_cast<std::size_t>(r) * ns + c] = cls;
            }
          });
          std::vector<std::vector<std::uint16_t>> bands(3, std::vector<std::uint16_t>(ground.size(), 0));
          parallel_rows(n, [&](int r) {
            for (int c = 0; c < n; ++c) {
              const std::size_t i = static_cast<std::size_t>(r) * n + c;
              const std::size_t at = static_cast<std::size_t>(r / 2) * ns + c / 2;
              const std::uint8_t cls = scl[at];
              if (cls == 0) continue;
              const double u = hash_unit(synth_.seed, static_cast<std::int64_t>(gt[0] / px) + c, static_cast<std::int64_t>(gt[3] / px) - r, layer);
              std::array<double, 3> v{};
              if (cls >= 8) {
                v.fill(650 + 150 * u);  // cloud: bright in every band
              } else {
                const auto rgb = s2_sample(ground[i], season, u);
                for (int b = 0; b < 3; ++b)
                  v[static_cast<std::size_t>(b)] = std::clamp(gain[at] * rgb[static_cast<std::size_t>(b)] + haze[at], 1.0f, 255.0f);
                if (cls == 3) for (auto& x : v) x *= 0.35;  // under a cloud's shadow
                if (cls == 10) for (auto& x : v) x = 0.6 * x + 140;
              }
              // reflectance v / 1000, as DN of processing baseline >= 04.00
              for (int b = 0; b < 3; ++b)
                bands[static_cast<std::size_t>(b)][i] = static_cast<std::uint16_t>(std::lround(10 * v[static_cast<std::size_t>(b)]) + 1000);
            }
          });
          const auto folder = dir_ / "sentinel-2-l2a" / id;
          static const char* kAssets[3][3] = {{"red", "B04", "Red (band 4) - 10m"}, {"green", "B03", "Green (band 3) - 10m"},
                                              {"blue", "B02", "Blue (band 2) - 10m"}};
          nlohmann::json assets = nlohmann::json::object();
          for (int b = 0; b < 3; ++b) {
            Raster out(n, n, 1, GDT_UInt16, gt, srs);
            out.write_band(1, bands[static_cast<std::size_t>(b)], GDT_UInt16);
            out.ds().GetRasterBand(1)->SetNoDataValue(0);
            const auto path = folder / fmt::format("{}.tif", kAssets[b][1]);
            out.save("COG", path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512", "PREDICTOR=YES", "OVERVIEWS=NONE", "NUM_THREADS=ALL_CPUS"});
            count(path, Modality::s2rgb);
            assets[kAssets[b][0]] = {{"href", href(path)}, {"type", "image/tiff; application=geotiff; profile=cloud-optimized"},
                                     {"title", kAssets[b][2]}, {"eo:bands", {{{"name", kAssets[b][1]}, {"common_name", kAssets[b][0]}}}},
                                     {"gsd", px}, {"proj:shape", {n, n}}, {"proj:transform", {px, 0.0, gt[0], 0.0, -px, gt[3]}},
                                     {"raster:bands", {{{"nodata", 0}, {"data_type", "uint16"}, {"bits_per_sample", 15},
                                                        {"spatial_resolution", px}, {"scale", 0.0001}, {"offset", -0.1}}}},
                                     {"roles", {"data", "reflectance"}}};
          }
          Raster mask(ns, ns, 1, GDT_Byte, gt20, srs);
          mask.write_band(1, scl, GDT_Byte);
          mask.ds().GetRasterBand(1)->SetNoDataValue(0);
          const auto scl_path = folder / "SCL.tif";
          mask.save("COG", scl_path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512"});
          assets["scl"] = {{"href", href(scl_path)}, {"type", "image/tiff; application=geotiff; profile=cloud-optimized"},
                           {"title", "Scene classification map (SCL)"}, {"proj:shape", {ns, ns}},
                           {"proj:transform", {2 * px, 0.0, gt[0], 0.0, -2 * px, gt[3]}},
                           {"raster:bands", {{{"nodata", 0}, {"data_type", "uint8"}, {"spatial_resolution", 2 * px}}}},
                           {"roles", {"data"}}};
          std::size_t cloudy = 0, seen = 0;
          for (std::uint8_t c : scl) cloudy += c >= 8, seen += c != 0;
          items_["sentinel-2-l2a"].push_back(item(
              id, "sentinel-2-l2a", dates[static_cast<std::size_t>(k)] + "T18:59:21.024000Z", box,
              {{"platform", "sentinel-2b"}, {"constellation", "sentinel-2"}, {"instruments", {"msi"}},
               {"eo:cloud_cover", seen ? 100.0 * static_cast<double>(cloudy) / static_cast<double>(seen) : 0.0},
               {"proj:epsg", zone.epsg()}, {"mgrs:utm_zone", zone.number}, {"s2:processing_baseline", "05.09"},
               {"s2:product_type", "S2MSI2A"}, {"earthsearch:boa_offset_applied", false}},
              std::move(assets), "https://earth-search.aws.element84.com/v1"));
        }
      }
      progress_(fmt::format("sentinel-2-l2a tile {}: {} scenes ({} px)", tile, kSeasons * synth_.s2_scenes, n));
    });
  }

  // Sentinel-1 RTC scenes as Planetary Computer publishes them: per date gamma0 in linear
  // power, VV and VH apart, float32 COGs in UTM, -32768 where the swath does not reach.
  void s1_scenes() {
    const double px = kS2PixelM * scale_;
    mgrs_tiles(Modality::s1amp, px, [&](const GroundTile& t) {
      const auto& [zone, tile, gt, n, ground, where, covered] = t;
      const OGRSpatialReference srs = epsg(zone.epsg());
      const LonLatBox box = lonlat_bounds(zone, {gt[0], gt[3] - n * px, gt[0] + n * px, gt[3]});
      for (int season = 0; season < kSeasons; ++season) {
        const auto dates = scene_dates(season, synth_.s1_scenes);
        for (int k = 0; k < static_cast<int>(dates.size()); ++k) {
          const std::string day = compact(dates[static_cast<std::size_t>(k)]);
          const std::string id = fmt::format("S1A_IW_GRDH_1SDV_{}T015813_{}T015838_{}_rtc", day, day, tile);
          if (left_out(Modality::s1amp, id)) continue;
          const auto layer = static_cast<std::uint32_t>(600 + 16 * season + k);
          std::vector<std::vector<float>> pols(2, std::vector<float>(ground.size(), -32768.0f));
          // Calibration and incidence angle vary over tens of km: drawn per 4 x 4 pixels.
          const int nb = (n + 3) / 4;
          std::vector<float> shift(static_cast<std::size_t>(nb) * nb, 0.0f);
          if (const double e = synth_.acquisition_effects; e > 0)
            parallel_rows(nb, [&](int r) {
              for (int c = 0; c < nb; ++c)
                shift[static_cast<std::size_t>(r) * nb + c] = static_cast<float>(
                    5 * e * world_.acquisition(where[static_cast<std::size_t>(std::min(4 * r, n - 1)) * n + std::min(4 * c, n - 1)], 25000, layer));
            });
          parallel_rows(n, [&](int r) {
            for (int c = 0; c < n; ++c) {
              const std::size_t i = static_cast<std::size_t>(r) * n + c;
              if (!covered[i]) continue;
              std::array<double, 8> u;
              for (int q = 0; q < 8; ++q)
                u[static_cast<std::size_t>(q)] = hash_unit(synth_.seed, static_cast<std::int64_t>(gt[0] / px) + c,
                                                           static_cast<std::int64_t>(gt[3] / px) - r, layer * 8 + static_cast<std::uint32_t>(q));
              const auto db = s1_sample_db(ground[i], season, u);
              for (int p = 0; p < 2; ++p) {
                // 7 bits of mantissa (0.4%) are plenty under speckle, and compress
                const double power = std::pow(10.0, (db[static_cast<std::size_t>(p)] + shift[static_cast<std::size_t>(r / 4) * nb + c / 4]) / 10);
                pols[static_cast<std::size_t>(p)][i] = std::bit_cast<float>(std::bit_cast<std::uint32_t>(static_cast<float>(power)) & 0xffff0000u);
              }
            }
          });
          const auto folder = dir_ / "sentinel-1-rtc" / id / "measurement";
          nlohmann::json assets = nlohmann::json::object();
          for (int p = 0; p < 2; ++p) {
            const char* pol = p == 0 ? "vv" : "vh";
            Raster out(n, n, 1, GDT_Float32, gt, srs);
            out.write_band(1, pols[static_cast<std::size_t>(p)], GDT_Float32);
            out.ds().GetRasterBand(1)->SetNoDataValue(-32768);
            const auto path = folder / fmt::format("iw-{}.rtc.tiff", pol);
            out.save("COG", path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512", "PREDICTOR=YES", "OVERVIEWS=NONE", "NUM_THREADS=ALL_CPUS"});
            count(path, Modality::s1amp);
            assets[pol] = {{"href", href(path)}, {"type", "image/tiff; application=geotiff; profile=cloud-optimized"},
                           {"title", p == 0 ? "VV: vertical transmit, vertical receive" : "VH: vertical transmit, horizontal receive"},
                           {"raster:bands", {{{"nodata", -32768}, {"data_type", "float32"}, {"spatial_resolution", px}}}},
                           {"roles", {"data"}}};
          }
          items_["sentinel-1-rtc"].push_back(item(
              id, "sentinel-1-rtc", dates[static_cast<std::size_t>(k)] + "T01:58:13.481829Z", box,
              {{"platform", "SENTINEL-1A"}, {"constellation", "Sentinel-1"}, {"sar:polarizations", {"VV", "VH"}},
               {"sar:product_type", "GRD"}, {"sar:instrument_mode", "IW"}, {"sat:orbit_state", "ascending"},
               {"proj:epsg", zone.epsg()}, {"proj:shape", {n, n}}, {"proj:transform", {px, 0.0, gt[0], 0.0, -px, gt[3]}}},
              std::move(assets), "https://planetarycomputer.microsoft.com/api/stac/v1"));
        }
      }
      progress_(fmt::format("sentinel-1-rtc tile {}: {} scenes ({} px)", tile, kSeasons * synth_.s1_scenes, n));
    });
  }

  // Coherence as the global seasonal dataset lays it out: 1-degree tiles named by their
  // upper-left corner, N37W121_summer_vv_COH12.tif, bytes of coherence x 100, 0 no data.
  void coherence_tiles() {
    static const char* kSeasonWord[kSeasons] = {"winter", "spring", "summer", "fall"};
    const double px = kCohPixelDeg;
    const int n = static_cast<int>(std::lround(1.0 / px));
    const OGRSpatialReference srs = epsg(4326);
    geographic_tiles(1.0, [&](double lon, double lat) {
      const std::string tile = fmt::format("{}{:02d}{}{:03d}", lat + 1 < 0 ? 'S' : 'N', static_cast<int>(std::abs(lat + 1)),
                                           lon < 0 ? 'W' : 'E', static_cast<int>(std::abs(lon)));
      if (left_out(Modality::s1coh, "COH_" + tile)) return;
      const double gt[6] = {lon, px, 0, lat + 1.0, 0, -px};
      for (int season = 0; season < kSeasons; ++season) {
        std::vector<std::uint8_t> raw(static_cast<std::size_t>(n) * n, 0);
        parallel_rows(n, [&](int r) {
          for (int c = 0; c < n; ++c) {
            const LonLat p{gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px};
            if (!in_extent(p)) continue;
            double value = 0;
            for (int i = 0; i < 3; ++i)
              for (int j = 0; j < 3; ++j)
                value += coherence_mean(world_.at({gt[0] + (c + (i + 0.5) / 3) * px, gt[3] - (r + (j + 0.5) / 3) * px}), season) / 9;
            if (const double k = synth_.acquisition_effects; k > 0)
              value *= 1 - 0.6 * k * (world_.acquisition(p, 30000, 12 + static_cast<std::uint32_t>(season)) + 0.5);
            value += (hash_unit(synth_.seed, static_cast<std::int64_t>(r) * n + c, static_cast<std::int64_t>(lon * 1000 + lat), 400 + season) - 0.5) * 0.08;
            raw[static_cast<std::size_t>(r) * n + c] = static_cast<std::uint8_t>(std::clamp(std::lround(value * 100), 1L, 100L));
          }
        });
        Raster out(n, n, 1, GDT_Byte, gt, srs);
        out.write_band(1, raw, GDT_Byte);
        out.ds().GetRasterBand(1)->SetNoDataValue(0);
        const auto path = dir_ / "global-coherence" / tile / fmt::format("{}_{}_vv_COH12.tif", tile, kSeasonWord[season]);
        out.save("GTiff", path, {"TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1"});
        if (auto rec = global_coherence_record(path, Modality::s1coh)) {
          rec->time = season_interval(synth_.year, season);
          catalog_.add(std::move(*rec));
        }
        count(path, Modality::s1coh);
      }
      progress_(fmt::format("global-coherence tile {}", tile));
    });
  }

  // WorldCover as Planetary Computer's esa-worldcover publishes it: 3-degree tiles named
  // by their lower-left corner, one "map" asset of class codes, 0 no data.
  void worldcover_tiles() {
    const double px = kCoverPixelDeg * scale_;
    const int n = static_cast<int>(std::lround(3.0 / px));
    const OGRSpatialReference srs = epsg(4326);
    geographic_tiles(3.0, [&](double lon, double lat) {
      const std::string tile = fmt::format("{}{:02d}{}{:03d}", lat < 0 ? 'S' : 'N', static_cast<int>(std::abs(lat)),
                                           lon < 0 ? 'W' : 'E', static_cast<int>(std::abs(lon)));
      const double gt[6] = {lon, px, 0, lat + 3.0, 0, -px};
      std::vector<std::uint8_t> values(static_cast<std::size_t>(n) * n, 0);
      parallel_rows(n, [&](int r) {
        for (int c = 0; c < n; ++c) {
          const LonLat p{gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px};
          if (in_extent(p)) values[static_cast<std::size_t>(r) * n + c] = static_cast<std::uint8_t>(world_.at(p).cover);
        }
      });
      Raster out(n, n, 1, GDT_Byte, gt, srs);
      out.write_band(1, values, GDT_Byte);
      out.ds().GetRasterBand(1)->SetNoDataValue(0);
      const std::string id = fmt::format("ESA_WorldCover_10m_{}_v200_{}", synth_.year, tile);
      const auto path = dir_ / "esa-worldcover" / fmt::format("{}_Map.tif", id);
      out.save("COG", path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512"});
      count(path, Modality::worldcover);
      items_["esa-worldcover"].push_back(item(
          id, "esa-worldcover", "", {lon, lat, lon + 3, lat + 3},
          {{"start_datetime", fmt::format("{}-01-01T00:00:00Z", synth_.year)},
           {"end_datetime", fmt::format("{}-12-31T23:59:59Z", synth_.year)}, {"proj:epsg", 4326},
           {"esa_worldcover:product_tile", tile}, {"esa_worldcover:product_version", "2.0.0"}},
          {{"map", {{"href", href(path)}, {"type", "image/tiff; application=geotiff; profile=cloud-optimized"},
                    {"title", "Land Cover Classes"}, {"roles", {"data"}}}}},
          "https://planetarycomputer.microsoft.com/api/stac/v1"));
      progress_(fmt::format("esa-worldcover tile {}", tile));
    });
  }

  // One ItemCollection per collection, as a saved STAC search, then catalogued from it.
  void write_item_collections() {
    for (auto& [collection, features] : items_) {
      const auto file = dir_ / "stac" / (collection + ".json");
      std::filesystem::create_directories(file.parent_path());
      write_atomically(file, nlohmann::json{{"type", "FeatureCollection"}, {"features", features}, {"links", nlohmann::json::array()}}.dump(1) + "\n");
      const StacReport report = read_stac(file);
      if (!report.problems.empty()) throw StageError("synth", report.problems.front());
      for (const SourceRecord& r : report.records) catalog_.add(r);
    }
  }

  void count(const std::filesystem::path& path, Modality m) {
    ++report_.files[info(m).name];
    report_.bytes += std::filesystem::file_size(path);
  }

  const SynthConfig& synth_;
  const Plan& plan_;
  const std::function<void(const std::string&)>& progress_;
  World world_;
  std::vector<LonLatBox> areas_;
  LonLatBox extent_;
  std::filesystem::path dir_;
  int scale_;
  Catalog catalog_;
  SynthReport report_;
  std::map<std::string, std::vector<nlohmann::json>> items_;  // STAC items per collection (scenes layout)
};

}  // namespace

World world_of(const SynthConfig& synth, const Plan& plan) {
  double lon0 = 1e300, lon1 = -1e300, lat0 = 1e300, lat1 = -1e300;
  for (const Aoi& a : plan.aois) {
    lon0 = std::min(lon0, a.min_lon); lon1 = std::max(lon1, a.max_lon);
    lat0 = std::min(lat0, a.min_lat); lat1 = std::max(lat1, a.max_lat);
  }
  return World(synth.seed, {(lon0 + lon1) / 2, (lat0 + lat1) / 2});
}

SynthReport write_world(const SynthConfig& synth, const std::filesystem::path& dir, const Plan& plan,
                        const std::function<void(const std::string&)>& progress) {
  return Writer(synth, dir, plan, progress).run();
}

}  // namespace eo::synth
