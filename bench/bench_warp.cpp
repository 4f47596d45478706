// Benchmark: warp rates per kind of source on one core, beside gdalwarp doing the same
// warp and the machine's copy bandwidth, all in the same run (issue 17). Sources are
// written to DIR (use a tmpfs: the rates are of the warp, not of a disk) as tiled,
// uncompressed GeoTIFFs at 10 m (or 0.0001 degrees), and warped onto one row of chips
// of a zone-10 tile at 10 m (448 x 7168 pixels), bilinear:
//
//   aligned      the tile's own grid (Sentinel-2 / Sentinel-1 RTC): a read
//   other-zone   zone 11's grid (a neighbouring zone): the lattice warp
//   geographic   EPSG:4326 (global coherence): the lattice warp
//   composite-N  N scenes (3 bands and an SCL mask each) on the tile's grid, median of
//                the clear ones; samples counted per input scene band, as read
//
//   bench_warp DIR CASE   -> one JSON line on stdout

#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "bench/copy_rate.hpp"
#include "pipeline/core/resources.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/reproject/warp.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {



// A tiled, uncompressed raster of `bands` bands with smooth values and a few holes.
void write_raster(const fs::path& file, int epsg, const double gt[6], int w, int h, int bands, GDALDataType type,
                  unsigned seed, double nodata) {
  if (fs::exists(file)) return;
  const char* options[] = {"TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", nullptr};
  eo::GdalDataset ds(GetGDALDriverManager()->GetDriverByName("GTiff")->Create(file.c_str(), w, h, bands, type,
                                                                          const_cast<char**>(options)));
  ds->SetGeoTransform(const_cast<double*>(gt));
  OGRSpatialReference srs;
  srs.importFromEPSG(epsg);
  ds->SetSpatialRef(&srs);
  std::mt19937 random(seed);
  std::vector<float> row(static_cast<std::size_t>(w));
  for (int b = 1; b <= bands; ++b) {
    GDALRasterBand* band = ds->GetRasterBand(b);
    band->SetNoDataValue(nodata);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x)
        row[static_cast<std::size_t>(x)] = random() % 500 == 0 ? static_cast<float>(nodata)
                                                               : static_cast<float>(1000 + 500 * std::sin(x * 0.01 + b) * std::cos(y * 0.013) + random() % 50);
      if (band->RasterIO(GF_Write, 0, y, w, 1, row.data(), w, 1, GDT_Float32, 0, 0) != CE_None) throw std::runtime_error("write");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace eo;
  if (argc < 3) {
    std::cerr << "usage: bench_warp DIR aligned|other-zone|geographic|composite-N\n";
    return 2;
  }
  GDALAllRegister();
  keep_freed_memory();  // as `run` warps: its model is built before its first tile
  set_gdal_cache(256);
  const fs::path dir = argv[1];
  const std::string kase = argv[2];
  fs::create_directories(dir);
  const TileId tile = tile_of(chip_at(Zone{10, false}, {650000, 4100000}));
  const GridWindow window = chip_window(tile, 10, 5, 1, 0, kChipsPerTileSide);
  const Box b = window.box();
  const WarpSettings settings{Resampling::bilinear, 1, 256};
  const LonLatBox area = window.lonlat_box();
  std::vector<SourceRecord> records;
  int bands = 1;
  double input_samples = 0;
  if (kase == "aligned") {
    const double gt[6] = {b.e0 - 2000, 10, 0, b.n1 + 2000, 0, -10};
    write_raster(dir / "aligned.tif", 32610, gt, window.width + 400, window.height + 400, 2, GDT_UInt16, 1, 0);
    records.push_back(describe_raster(dir / "aligned.tif", Modality::s1amp, 0, "", {1, 2}));
    bands = 2;
  } else if (kase == "other-zone") {
    OGRSpatialReference z10, z11;
    z10.importFromEPSG(32610);
    z11.importFromEPSG(32611);
    z10.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    z11.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&z10, &z11));
    double x[2] = {b.e0, b.e1}, y[2] = {b.n1, b.n0};
    ct->Transform(2, x, y);
    const double gt[6] = {std::floor(std::min(x[0], x[1]) / 10) * 10 - 6000, 10, 0, std::ceil(std::max(y[0], y[1]) / 10) * 10 + 6000, 0, -10};
    const int w = static_cast<int>((std::abs(x[1] - x[0]) + 12000) / 10), h = static_cast<int>((std::abs(y[1] - y[0]) + 12000) / 10);
    write_raster(dir / "zone11.tif", 32611, gt, w, h, 2, GDT_Float32, 2, -32768);
    records.push_back(describe_raster(dir / "zone11.tif", Modality::s1amp, 0, "", {1, 2}));
    bands = 2;
  } else if (kase == "geographic") {
    const double deg = 0.0001;
    const double gt[6] = {area.lon0 - 0.05, deg, 0, area.lat1 + 0.05, 0, -deg};
    write_raster(dir / "geographic.tif", 4326, gt, static_cast<int>((area.lon1 - area.lon0 + 0.1) / deg),
                 static_cast<int>((area.lat1 - area.lat0 + 0.1) / deg), 1, GDT_Float32, 3, -9999);
    records.push_back(describe_raster(dir / "geographic.tif", Modality::s1coh, 0, "", {1}));
  } else if (kase.rfind("composite-", 0) == 0) {
    const int n = std::stoi(kase.substr(10));
    bands = 3;
    for (int i = 0; i < n; ++i) {
      const double gt[6] = {b.e0 - 2000 - 10 * (i % 7) * 10, 10, 0, b.n1 + 2000 + 10 * (i % 5) * 10, 0, -10};
      const int w = window.width + 600, h = window.height + 600;
      const fs::path scene = dir / fmt::format("scene{:02}.tif", i), scl = dir / fmt::format("scene{:02}_scl.tif", i);
      write_raster(scene, 32610, gt, w, h, 3, GDT_UInt16, 10 + static_cast<unsigned>(i), 0);
      const double mgt[6] = {gt[0], 20, 0, gt[3], 0, -20};
      if (!fs::exists(scl)) {  // classes 4 (vegetation) with clouds (9) in a band that moves with the scene
        GdalDataset ds(GetGDALDriverManager()->GetDriverByName("GTiff")->Create(scl.c_str(), w / 2, h / 2, 1, GDT_Byte, nullptr));
        ds->SetGeoTransform(const_cast<double*>(mgt));
        OGRSpatialReference srs;
        srs.importFromEPSG(32610);
        ds->SetSpatialRef(&srs);
        std::vector<std::uint8_t> row(static_cast<std::size_t>(w / 2));
        for (int y = 0; y < h / 2; ++y) {
          for (int x = 0; x < w / 2; ++x) row[static_cast<std::size_t>(x)] = (x + 37 * i) % 400 < 60 ? 9 : 4;
          if (ds->GetRasterBand(1)->RasterIO(GF_Write, 0, y, w / 2, 1, row.data(), w / 2, 1, GDT_Byte, 0, 0) != CE_None) return 1;
        }
      }
      SourceRecord r = describe_raster(scene, Modality::s2rgb, 0, fmt::format("2021-07-{:02}T18:00:00Z", 1 + i % 28), {1, 2, 3});
      r.item = fmt::format("scene{:02}", i);
      r.mask = MaskSpec{scl, 1, {4, 5, 6}};
      records.push_back(r);
    }
    input_samples = static_cast<double>(n) * 3 * window.width * window.height;
  } else {
    std::cerr << "unknown case " << kase << '\n';
    return 2;
  }
  const double rss0 = current_rss_mib();

  // Ours, best of 3.
  double ours = 1e9;
  std::int64_t aligned = 0, lattice = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const std::int64_t a0 = aligned_reads(), l0 = lattice_warps();
    const auto t0 = Clock::now();
    if (kase.rfind("composite-", 0) == 0) {
      Catalog catalog;
      for (const SourceRecord& r : records) catalog.add(r);
      const WarpedModality w = ModalitySources(catalog, Modality::s2rgb, area).warp(window, settings);
      if (w.data.empty()) return 1;
    } else {
      std::vector<const SourceRecord*> ptrs;
      for (const SourceRecord& r : records) ptrs.push_back(&r);
      SourceSet set(ptrs);
      std::vector<float> out(static_cast<std::size_t>(bands) * window.width * window.height);
      set.warp(window, settings, out.data(), bands);
    }
    ours = std::min(ours, seconds_since(t0));
    aligned = aligned_reads() - a0;
    lattice = lattice_warps() - l0;
  }
  const double out_samples = static_cast<double>(bands) * window.width * window.height;
  if (input_samples == 0) input_samples = out_samples;

  // gdalwarp, the same warp of each source (-et 0, the same kernel scale), best of 3.
  double theirs = 1e9;
  if (kase.rfind("composite-", 0) != 0) {
    std::vector<const SourceRecord*> ptrs;
    for (const SourceRecord& r : records) ptrs.push_back(&r);
    std::string cmd = "gdalwarp -q -overwrite -of ENVI";
    for (const auto& a : warp_arguments(window, SourceSet(ptrs).scaled(settings, window))) cmd += " '" + a + "'";
    cmd += " '" + records[0].path.string() + "' '" + (dir / "gdalwarp.raw").string() + "' > /dev/null 2>&1";
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = Clock::now();
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
      theirs = std::min(theirs, seconds_since(t0));
    }
  }
  const double copy = copy_samples_per_s();
  nlohmann::json out = {{"case", kase}, {"window", fmt::format("{} x {} px at 10 m, {} band(s)", window.width, window.height, bands)},
                        {"ours_s", ours}, {"ours_msamples_per_s", input_samples / ours / 1e6},
                        {"aligned_reads", aligned}, {"lattice_warps", lattice},
                        {"copy_msamples_per_s", copy / 1e6}, {"ours_fraction_of_copy", input_samples / ours / copy},
                        {"rss_growth_mib", current_rss_mib() - rss0}};
  if (theirs < 1e9) out.update({{"gdalwarp_s", theirs}, {"gdalwarp_msamples_per_s", out_samples / theirs / 1e6},
                                {"ours_over_gdalwarp", theirs / ours}});
  std::cout << out.dump() << '\n';
  return 0;
}
