#include "stages/synth/synth.hpp"

#include <gdal_priv.h>
#include <cpl_string.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <thread>
#include <vector>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/hash.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/ingest/gdal_util.hpp"
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
    s2();
    s1_amplitude();
    coherence();
    labels();
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

  // S2 RGB: MGRS-like 109.8 km tiles on a 100 km grid of each UTM zone the plan uses,
  // one COG per season with bands R, G, B; clouds are holes (0).
  void s2() {
    const double px = kS2PixelM * scale_;
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
      const OGRSpatialReference srs = epsg(zone.epsg());
      for (int ie = static_cast<int>(std::floor((e0 - kMgrsSize) / kMgrsSpacing)) + 1; ie * kMgrsSpacing < e1; ++ie)
        for (int in = static_cast<int>(std::floor((n0 - kMgrsSize) / kMgrsSpacing)) + 1; in * kMgrsSpacing < n1; ++in) {
          const std::string tile = fmt::format("{}{:02d}{:03d}", zone.name(), ie, in);
          const Box mgrs{ie * kMgrsSpacing, in * kMgrsSpacing, ie * kMgrsSpacing + kMgrsSize, in * kMgrsSpacing + kMgrsSize};
          if (!touches_world(lonlat_bounds(zone, mgrs)) || left_out(Modality::s2rgb, "S2_" + tile)) continue;
          const double gt[6] = {ie * kMgrsSpacing, px, 0, in * kMgrsSpacing + kMgrsSize, 0, -px};
          // ground once per pixel, then every season from it
          std::vector<Ground> ground(static_cast<std::size_t>(n) * n);
          std::vector<LonLat> where(ground.size());
          std::vector<char> covered(ground.size(), 0);
          parallel_rows(n, [&](int r) {
            for (int c = 0; c < n; ++c) {
              const std::size_t i = static_cast<std::size_t>(r) * n + c;
              where[i] = utm_inverse(zone.number, zone.south, {gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px});
              if ((covered[i] = in_extent(where[i]))) ground[i] = world_.at(where[i]);
            }
          });
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
        }
    }
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
  void labels() {
    const OGRSpatialReference srs = epsg(4326);
    geographic_tiles(1.0, [&](double lon, double lat) {
      const std::string tile = tile_name(lon, lat);
      for (Modality m : kLabelModalities) {
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
