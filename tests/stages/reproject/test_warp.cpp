// Our warp equals the gdalwarp program given the same inputs, target grid and options,
// for every modality of the synthetic world and for real files written by other tools
// (a Landsat 7 scene in SIRGAS 2000 / UTM 25S, a CF NetCDF with scale/offset).

#include <gtest/gtest.h>

#include <gdal/ogr_spatialref.h>

#include <cmath>
#include <fmt/format.h>
#include <cstring>
#include <iostream>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <random>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "stages/chip/chipper.hpp"
#include "stages/ingest/gdal_mirror.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/reproject/lattice.hpp"
#include "stages/reproject/warp.hpp"
#include "stages/synth/products.hpp"
#include "support/run.hpp"
#include "support/world.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

std::string quote(const std::string& s) { return "'" + s + "'"; }

// Runs gdalwarp (and gdal_translate first where a source needs band selection or
// unscaling) and returns the output's bands. Each source is warped with its own kernel
// scale, into the output the first made, in order (a mosaic, as one gdalwarp call of
// several inputs makes it).
std::vector<float> gdalwarp_cli(const std::vector<const SourceRecord*>& sources, const GridWindow& window,
                                const WarpSettings& settings, const fs::path& dir, bool unscale) {
  const fs::path out = dir / "gdalwarp.tif";
  fs::remove(out);
  const SourceSet set(sources);
  int k = 0;
  for (const SourceRecord* r : sources) {
    std::string input = r->path.string();
    bool identity = true;
    for (std::size_t i = 0; i < r->bands.size(); ++i) identity &= r->bands[i] == static_cast<int>(i) + 1;
    if (unscale || !identity) {
      const fs::path vrt = dir / fmt::format("src{}.vrt", k);
      std::string cmd = "gdal_translate -q -of VRT -ot Float32";
      for (int b : r->bands) cmd += fmt::format(" -b {}", b);
      if (unscale) cmd += " -unscale";
      const auto t = test::run(cmd + " " + quote(input) + " " + quote(vrt.string()));
      EXPECT_EQ(t.code, 0) << t.output;
      input = vrt.string();
    }
    std::string cmd = "gdalwarp -q";
    const WarpSettings own = set.scaled(settings, window, static_cast<std::size_t>(k++));
    for (const auto& a : fs::exists(out) ? resampling_arguments(own) : warp_arguments(window, own)) cmd += " " + quote(a);
    const auto w = test::run(cmd + " " + quote(input) + " " + quote(out.string()));
    EXPECT_EQ(w.code, 0) << w.output;
  }
  GdalDataset ds = open_raster(out);
  std::vector<float> data(static_cast<std::size_t>(ds->GetRasterCount()) * window.width * window.height);
  EXPECT_EQ(ds->RasterIO(GF_Read, 0, 0, window.width, window.height, data.data(), window.width, window.height,
                         GDT_Float32, ds->GetRasterCount(), nullptr, 0, 0, 0, nullptr), CE_None);
  return data;
}

// Same no-data pixels, values within 1e-6 relative (measured: 1.2e-7, a float's last bit).
void expect_same(const float* ours, const std::vector<float>& theirs, const std::string& what) {
  std::size_t valid = 0, mismatched = 0;
  for (std::size_t i = 0; i < theirs.size(); ++i) {
    if (std::isnan(theirs[i]) || std::isnan(ours[i])) {
      mismatched += std::isnan(theirs[i]) != std::isnan(ours[i]);
      continue;
    }
    ++valid;
    mismatched += std::abs(ours[i] - theirs[i]) > 1e-6 * std::max(1.0f, std::abs(theirs[i]));
  }
  std::size_t nan_mismatch = 0;
  double worst = 0;
  for (std::size_t i = 0; i < theirs.size(); ++i) {
    if (std::isnan(theirs[i]) != std::isnan(ours[i])) ++nan_mismatch;
    else if (!std::isnan(theirs[i])) worst = std::max(worst, std::abs(double(ours[i]) - theirs[i]) / std::max(1.0f, std::abs(theirs[i])));
  }
  EXPECT_EQ(mismatched, 0u) << what << " (no data differs at " << nan_mismatch << ", worst relative " << worst << ")";
  std::cout << what << ": worst relative difference " << worst << " over " << valid << " values\n";
  EXPECT_GT(valid, theirs.size() / 10) << what << ": too little data to compare";
}

class Warp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { world_ = test::make_world("warp").release(); }
  static void TearDownTestSuite() {
    fs::remove_all(world_->dir);
    delete world_;
  }
  static test::TestWorld* world_;
};
test::TestWorld* Warp::world_ = nullptr;

TEST_F(Warp, EachModalityEqualsGdalwarp) {
  // A tile of zone 10N, and one of 11N that also reads S2 tiles of zone 10N reaching
  // over the zone border.
  ASSERT_GE(world_->plan.tiles.size(), 2u);
  for (const TilePlan* tile : {&world_->plan.tiles.front(), &world_->plan.tiles.back()})
  for (Modality m : kImageModalities) {
    const GridWindow window = chip_window(tile->id, world_->config.pixel_size, 0, 16, 0, 16);
    const int season = 2;
    const WarpSettings settings{world_->config.resampling(m), 2, 256};
    const auto records = world_->catalog.query(m, season, padded(window.lonlat_box()));
    ASSERT_FALSE(records.empty()) << info(m).name;
    SourceSet sources(records);
    const int nb = static_cast<int>(info(m).bands.size());
    std::vector<float> ours(static_cast<std::size_t>(nb) * window.width * window.height);
    sources.warp(window, settings, ours.data(), nb);
    const auto theirs = gdalwarp_cli(records, window, settings, world_->dir, m == Modality::s1coh);
    expect_same(ours.data(), theirs, fmt::format("{} {} season {} from {} files", tile->id.str(), info(m).name, season, records.size()));
  }
}

TEST_F(Warp, ChipRowsEqualTheWholeTileWarp) {
  // The chip stage warps one row of chips at a time; the result must not depend on that.
  const TilePlan& tile = world_->plan.tiles.back();
  const TileReadOptions options = TileReadOptions::from(world_->config.pixel_size, world_->config.data, world_->config.warp, 2);
  const GridWindow whole = chip_window(tile.id, options.pixel, 0, 16, 0, 16);
  std::map<Modality, WarpedModality> full;
  for (Modality m : options.modalities)
    full[m] = warp_modality(world_->catalog, m, whole, {options.resampling.at(m), 2, 256});
  std::size_t compared = 0;
  std::vector<int> rows;  // of the batches, in the order they came
  read_tile(world_->catalog, tile, options, [&](ChipBatch&& batch) {
    // One batch per row (rows are warped two at a time), holding that row's planned chips.
    ASSERT_FALSE(batch.chips.empty());
    rows.push_back(batch.chips.front().row % 16);
    std::vector<int> planned;
    for (int c = 0; c < 16; ++c)
      if (tile.chips.test(static_cast<std::size_t>(rows.back() * 16 + c))) planned.push_back(c);
    std::vector<int> got;
    for (const ChipId& chip : batch.chips) {
      EXPECT_EQ(chip.row % 16, rows.back());
      got.push_back(chip.col % 16);
    }
    EXPECT_EQ(got, planned) << "row " << rows.back();
    for (const ModalityChips& mc : batch.modalities)
      for (std::size_t k = 0; k < batch.chips.size(); ++k) {
        const int r = batch.chips[k].row % 16, c = batch.chips[k].col % 16;
        for (int ch = 0; ch < mc.channels; ++ch)
          for (int y = 0; y < batch.size; y += 7)
            for (int x = 0; x < batch.size; x += 5) {
              const float a = mc.values[(k * mc.channels + ch) * batch.size * batch.size + y * batch.size + x];
              const float b = full[mc.modality].at(ch, r * batch.size + y, c * batch.size + x);
              ASSERT_TRUE((std::isnan(a) && std::isnan(b)) || std::abs(a - b) <= 1e-5f * std::max(1.0f, std::abs(b)))
                  << info(mc.modality).name << " " << batch.chips[k].str() << " ch " << ch << " " << a << " vs " << b;
              ++compared;
            }
      }
  });
  EXPECT_GT(compared, 10000u);
  std::vector<int> planned_rows;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      if (tile.chips.test(static_cast<std::size_t>(r * 16 + c))) {
        planned_rows.push_back(r);
        break;
      }
  EXPECT_EQ(rows, planned_rows);
}

// Real files from Debian's r-cran-stars: the setup script unpacks them.
const fs::path kStars = fs::path(EO_SOURCE_DIR) / "data/real/stars";

TEST(WarpRealFiles, Landsat7SceneInSirgas2000EqualsGdalwarp) {
  const fs::path scene = kStars / "tif/L7_ETMs.tif";
  ASSERT_TRUE(fs::exists(scene)) << "run scripts/setup.sh: it unpacks " << scene;
  SourceRecord r = describe_raster(scene, Modality::s2rgb, 1, "", {3, 2, 1});
  EXPECT_EQ(r.crs, "EPSG:31985");  // SIRGAS 2000 / UTM zone 25S
  // A window of our zone-25S grid over the scene, at 10 m.
  const Zone zone{25, true};
  const ChipId chip = chip_at(zone, utm_forward(25, true, {-34.87, -7.99}));
  const TileId tile = tile_of(chip);
  const GridWindow window = chip_window(tile, 10, chip.row % 16 - 1, 3, chip.col % 16 - 1, 3);
  const WarpSettings settings{Resampling::bilinear, 2, 256};
  SourceSet sources({&r});
  std::vector<float> ours(3u * window.width * window.height);
  sources.warp(window, settings, ours.data(), 3);
  const auto dir = fs::temp_directory_path() / ("eo_l7_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  expect_same(ours.data(), gdalwarp_cli({&r}, window, settings, dir, false), "L7_ETMs bands 3,2,1");
  fs::remove_all(dir);
}

// A Float32 GeoTIFF in EPSG:4326 with its corner at (west, north) and pixels of `deg`
// degrees, band after band of `value()`s; `nodata` declared when given.
void geographic_raster(const fs::path& file, double west, double north, double deg, int w, int h, int bands,
                       const std::function<float()>& value, std::optional<double> nodata = std::nullopt) {
  GDALAllRegister();
  GdalDataset ds(GetGDALDriverManager()->GetDriverByName("GTiff")->Create(file.c_str(), w, h, bands, GDT_Float32, nullptr));
  double gt[6] = {west, deg, 0, north, 0, -deg};
  ds->SetGeoTransform(gt);
  OGRSpatialReference srs;
  srs.importFromEPSG(4326);
  ds->SetSpatialRef(&srs);
  std::vector<float> v(static_cast<std::size_t>(w) * h);
  for (int b = 1; b <= bands; ++b) {
    for (float& x : v) x = value();
    if (nodata) ds->GetRasterBand(b)->SetNoDataValue(*nodata);
    ASSERT_EQ(ds->GetRasterBand(b)->RasterIO(GF_Write, 0, 0, w, h, v.data(), w, h, GDT_Float32, 0, 0), CE_None);
  }
}

class WarpWrapped : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("eo_wrap_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(WarpWrapped, NetcdfWithScaleOffsetThroughVrtEqualsGdalwarp) {
  // NOAA OISST sample (CF-1.0): sst is int16 with scale_factor 0.01 on a global 2-degree
  // grid, without a grid mapping; a VRT written by gdal_translate gives it EPSG:4326.
  const fs::path vrt = dir_ / "sst.vrt";
  const auto t = test::run("gdal_translate -q -of VRT -a_srs EPSG:4326 'NETCDF:\"" + (kStars / "nc/reduced.nc").string() +
                           "\":sst' " + vrt.string());
  ASSERT_EQ(t.code, 0) << t.output;
  SourceRecord r = describe_raster(vrt, Modality::s1coh, 0, "", {1});
  SourceSet sources({&r});
  const Zone zone{31, false};
  const TileId tile = tile_of(chip_at(zone, utm_forward(31, false, {3.0, 40.0})));  // the western Mediterranean
  const GridWindow window = chip_window(tile, 1120, 0, 16, 0, 16);
  const WarpSettings settings{Resampling::bilinear, 2, 256};
  std::vector<float> ours(static_cast<std::size_t>(window.width) * window.height);
  sources.warp(window, settings, ours.data(), 1);
  float lo = 1e9f, hi = -1e9f;
  for (float v : ours)
    if (!std::isnan(v)) { lo = std::min(lo, v); hi = std::max(hi, v); }
  EXPECT_GT(lo, 5.0f) << "scale_factor not applied: sea surface temperature in degrees C";
  EXPECT_LT(hi, 30.0f);
  expect_same(ours.data(), gdalwarp_cli({&r}, window, settings, dir_, true), "reduced.nc sst");
}

TEST_F(WarpWrapped, Hdf5WrittenByH5pyEqualsGdalwarp) {
  // h5py writes a plain 2-D dataset with scale and no-data; a VRT places it in UTM 31N.
  const fs::path h5 = dir_ / "amp.h5";
  const auto py = test::run("/usr/bin/python3 -c \"import h5py, numpy as np\n"
                            "y, x = np.mgrid[0:300, 0:400]\n"
                            "a = (-12 + 3*np.sin(x/17.0) + 2*np.cos(y/23.0)).astype('float32')\n"
                            "a[100:120, 50:90] = -9999\n"
                            "f = h5py.File('" + h5.string() + "', 'w'); f.create_dataset('vv', data=a)\"");
  ASSERT_EQ(py.code, 0) << py.output;
  const fs::path vrt = dir_ / "amp.vrt";
  const auto t = test::run("gdal_translate -q -of VRT -a_srs EPSG:32631 -a_ullr 440000 4440000 452000 4431000 "
                           "-a_nodata -9999 'HDF5:\"" + h5.string() + "\"://vv' " + vrt.string());
  ASSERT_EQ(t.code, 0) << t.output;
  SourceRecord r = describe_raster(vrt, Modality::s1coh, 0, "", {1});
  SourceSet sources({&r});
  const TileId tile = tile_of(chip_at({31, false}, {445000, 4435000}));
  const ChipId c = chip_at({31, false}, {445000, 4435000});
  const GridWindow window = chip_window(tile, 20, c.row % 16, 1, c.col % 16, 1);
  const WarpSettings settings{Resampling::bilinear, 2, 256};
  std::vector<float> ours(static_cast<std::size_t>(window.width) * window.height);
  sources.warp(window, settings, ours.data(), 1);
  expect_same(ours.data(), gdalwarp_cli({&r}, window, settings, dir_, false), "h5py dataset");
}

}  // namespace
}  // namespace eo

namespace eo {
namespace {

// What a pixel shows, per modality, from the latent world at its centre (season 2).
double expected_signature(Modality m, const synth::Ground& g) {
  switch (m) {
    case Modality::s2rgb: return synth::s2_mean(g, 2)[1];  // G of JJA
    case Modality::s1amp: return synth::s1_mean_db(g, 2)[0];  // VV of JJA
    default: return synth::coherence_mean(g, 2);
  }
}
int observed_channel(Modality m) { return m == Modality::s2rgb ? 2 * 3 + 1 : m == Modality::s1amp ? 2 * 2 : 2; }

double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) { ma += a[i]; mb += b[i]; }
  ma /= a.size(); mb /= b.size();
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb); saa += (a[i] - ma) * (a[i] - ma); sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

// Chips at known coordinates carry the signature of the latent class there, and the
// match is best with no shift at all: geolocation is right to within a pixel.
TEST_F(Warp, ChipsCarryTheLatentSignatureAtTheirCoordinates) {
  const synth::World world = synth::world_of(world_->config.synth, world_->plan);
  const TilePlan& tile = world_->plan.tiles.front();
  std::vector<ChipBatch> rows;
  read_tile(world_->catalog, tile, TileReadOptions::from(world_->config.pixel_size, world_->config.data, world_->config.warp, 2), [&](ChipBatch&& b) {
    if (rows.size() < 2) rows.push_back(std::move(b));
  });
  ASSERT_FALSE(rows.empty());
  const int n = rows[0].size;
  const double px = world_->config.pixel_size;
  for (Modality m : kImageModalities) {
    std::map<std::pair<int, int>, std::pair<std::vector<double>, std::vector<double>>> shifted;  // (dx, dy) -> (obs, exp)
    std::map<synth::Cover, std::pair<double, double>> per_class;  // sums of observed, expected over interior pixels
    std::map<synth::Cover, int> per_class_n;
    for (const ChipBatch& batch : rows) {
      const ModalityChips* mc = batch.find(m);
      ASSERT_NE(mc, nullptr);
      for (std::size_t k = 0; k < std::min<std::size_t>(batch.chips.size(), 4); ++k) {
        const Box b = batch.chips[k].bounds();
        // the world on the chip's pixel centres, with a border of one pixel
        std::vector<synth::Ground> g(static_cast<std::size_t>(n + 2) * (n + 2));
        for (int y = -1; y <= n; ++y)
          for (int x = -1; x <= n; ++x)
            g[static_cast<std::size_t>(y + 1) * (n + 2) + x + 1] =
                world.at(utm_inverse(batch.tile.zone.number, batch.tile.zone.south, {b.e0 + (x + 0.5) * px, b.n1 - (y + 0.5) * px}));
        auto ground = [&](int x, int y) -> const synth::Ground& { return g[static_cast<std::size_t>(y + 1) * (n + 2) + x + 1]; };
        const int ch = observed_channel(m);
        for (int y = 0; y < n; ++y)
          for (int x = 0; x < n; ++x) {
            const float v = mc->values[(k * mc->channels + ch) * n * n + y * n + x];
            if (std::isnan(v)) continue;
            for (int dy = -1; dy <= 1; ++dy)
              for (int dx = -1; dx <= 1; ++dx) {
                auto& [obs, exp] = shifted[{dx, dy}];
                obs.push_back(v);
                exp.push_back(expected_signature(m, ground(x + dx, y + dy)));
              }
            bool interior = true;
            for (int dy = -1; dy <= 1; ++dy)
              for (int dx = -1; dx <= 1; ++dx) interior &= ground(x + dx, y + dy).cover == ground(x, y).cover;
            if (interior) {
              per_class[ground(x, y).cover].first += v;
              per_class[ground(x, y).cover].second += expected_signature(m, ground(x, y));
              ++per_class_n[ground(x, y).cover];
            }
          }
      }
    }
    const double at_zero = correlation(shifted[{0, 0}].first, shifted[{0, 0}].second);
    std::cout << info(m).name << ": correlation with the latent signature " << at_zero << " at the pixel, "
              << correlation(shifted[{1, 0}].first, shifted[{1, 0}].second) << " one pixel east\n";
    EXPECT_GT(at_zero, m == Modality::s1amp ? 0.6 : 0.8) << info(m).name;
    for (const auto& [shift, pair] : shifted)
      if (shift != std::pair<int, int>{0, 0})
        EXPECT_GT(at_zero, correlation(pair.first, pair.second))
            << info(m).name << ": a shift of (" << shift.first << ", " << shift.second << ") px matches better";
    // per class, the mean observed value is the class's signature
    const double tolerance = m == Modality::s2rgb ? 4.0 : m == Modality::s1amp ? 1.2 : 0.06;
    int classes = 0;
    for (const auto& [cover, sums] : per_class) {
      if (per_class_n[cover] < 200) continue;
      ++classes;
      EXPECT_NEAR(sums.first / per_class_n[cover], sums.second / per_class_n[cover], tolerance)
          << info(m).name << " class " << static_cast<int>(cover);
    }
    EXPECT_GE(classes, 3) << info(m).name;
  }
}

// Rasters on the grid of zone 10N's tiles at 10 m (as Sentinel-2 and Sentinel-1 RTC are
// published), or shifted off it by `shift` metres; random values with holes (no-data).
fs::path aligned_raster(const fs::path& file, GDALDataType type, double west, double north, int size, unsigned seed,
                        double shift = 0) {
  GDALAllRegister();
  GDALDriver* gtiff = GetGDALDriverManager()->GetDriverByName("GTiff");
  GdalDataset ds(gtiff->Create(file.c_str(), size, size, 2, type, nullptr));
  double gt[6] = {west + shift, 10, 0, north - shift, 0, -10};
  ds->SetGeoTransform(gt);
  OGRSpatialReference srs;
  srs.importFromEPSG(32610);
  ds->SetSpatialRef(&srs);
  std::mt19937 random(seed);
  std::vector<float> v(static_cast<std::size_t>(size) * size);
  for (int b = 1; b <= 2; ++b) {
    for (float& x : v) x = random() % 50 == 0 ? 0.0f : static_cast<float>(1 + random() % 9000);  // 0: no data
    ds->GetRasterBand(b)->SetNoDataValue(0);
    EXPECT_EQ(ds->GetRasterBand(b)->RasterIO(GF_Write, 0, 0, size, size, v.data(), size, size, GDT_Float32, 0, 0), CE_None);
  }
  return file;
}

// Sources on the tile's own grid are read, not warped, and the result is gdalwarp's bit
// for bit: at 10 m with every kernel that copies there, at 20 and 40 m with nearest; a
// window reaching past the source's edge; a mosaic whose later source covers an earlier
// one, with a source off the grid (warped by GDAL) between two on it.
TEST_F(WarpWrapped, SourcesOnTheTilesGridAreReadBitForBitAsGdalwarpWarps) {
  const TileId tile = tile_of(chip_at(Zone{10, false}, {650000, 4100000}));
  const GridWindow at10 = chip_window(tile, 10, 3, 1, 5, 1);
  const auto record = [&](const fs::path& file) { return describe_raster(file, Modality::s1amp, 0, "", {1, 2}); };
  const SourceRecord a = record(aligned_raster(dir_ / "a.tif", GDT_UInt16, at10.west - 1000, at10.north + 500, 600, 1));
  const SourceRecord edge = record(aligned_raster(dir_ / "edge.tif", GDT_Float32, at10.west + 2000, at10.north - 1000, 400, 2));
  const SourceRecord off = record(aligned_raster(dir_ / "off.tif", GDT_Float32, at10.west + 1000, at10.north - 700, 200, 3, 5));
  const auto bits_equal = [](const std::vector<float>& ours, const std::vector<float>& theirs) {
    std::size_t differ = 0, valid = 0;
    for (std::size_t i = 0; i < ours.size(); ++i) {
      valid += !std::isnan(theirs[i]);
      differ += std::isnan(ours[i]) ? !std::isnan(theirs[i]) : std::memcmp(&ours[i], &theirs[i], sizeof(float)) != 0;
    }
    EXPECT_GT(valid, ours.size() / 4);
    return differ;
  };
  struct Case {
    std::vector<const SourceRecord*> sources;
    double pixel;
    Resampling resampling;
    std::int64_t read;  // sources read without the warper
  };
  std::vector<Case> cases;
  for (Resampling r : {Resampling::near, Resampling::bilinear, Resampling::cubic, Resampling::average}) {
    cases.push_back({{&a}, 10, r, 1});
    cases.push_back({{&edge}, 10, r, 1});
    cases.push_back({{&a, &off, &edge}, 10, r, 2});
  }
  for (double pixel : {20.0, 40.0}) {
    cases.push_back({{&a, &edge}, pixel, Resampling::near, 2});
    cases.push_back({{&a, &edge}, pixel, Resampling::bilinear, 0});  // a wider kernel: GDAL's warper
  }
  for (const Case& c : cases) {
    const GridWindow window = chip_window(tile, c.pixel, 3, 1, 5, 1);
    const WarpSettings settings{c.resampling, 1, 256};
    SourceSet sources(c.sources);
    std::vector<float> ours(2u * window.width * window.height);
    const std::int64_t before = aligned_reads();
    sources.warp(window, settings, ours.data(), 2);
    const std::string what = fmt::format("{} sources at {} m, {}", c.sources.size(), c.pixel, name_of(c.resampling));
    EXPECT_EQ(aligned_reads() - before, c.read) << what;
    EXPECT_EQ(bits_equal(ours, gdalwarp_cli(c.sources, window, settings, dir_, false)), 0u) << what;
  }
}

// The kernel's scale comes from each source's own pixel per axis, never from the query:
// a 0.0004-degree source at 37 N has pixels 35.6 m wide and 44.4 m tall (measured here by
// PROJ in an azimuthal equidistant projection about the source's centre), and a finer
// source next to it in the same warp leaves its pixels as they were.
TEST_F(WarpWrapped, EachSourceKeepsItsOwnKernelPerAxis) {
  GDALAllRegister();
  const double lon0 = -121.3, lat0 = 37.2, deg = 0.0004;
  const int n = 500;
  std::mt19937 random(5);
  geographic_raster(dir_ / "geo.tif", lon0, lat0, deg, n, n, 1, [&] { return static_cast<float>(random() % 1000) / 1000.0f; });
  const SourceRecord geo = describe_raster(dir_ / "geo.tif", Modality::s1coh, 0, "", {1});
  const double centre_lat = lat0 - deg * n / 2, centre_lon = lon0 + deg * n / 2;
  OGRSpatialReference wgs, aeqd;
  wgs.importFromEPSG(4326);
  wgs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  aeqd.importFromProj4(fmt::format("+proj=aeqd +lat_0={} +lon_0={} +datum=WGS84", centre_lat, centre_lon).c_str());
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&wgs, &aeqd));
  double xs[2] = {centre_lon - deg / 2, centre_lon + deg / 2}, ys[2] = {centre_lat, centre_lat};
  double xn[2] = {centre_lon, centre_lon}, yn[2] = {centre_lat - deg / 2, centre_lat + deg / 2};
  ASSERT_TRUE(ct->Transform(2, xs, ys) && ct->Transform(2, xn, yn));
  const double width_m = xs[1] - xs[0], height_m = yn[1] - yn[0];
  EXPECT_NEAR(width_m, 35.6, 0.1);
  EXPECT_NEAR(height_m, 44.4, 0.1);

  const EastNorth c = utm_forward(10, false, {centre_lon, centre_lat});
  const GridWindow window{Zone{10, false}, std::round(c.e / 40) * 40 - 2000, std::round(c.n / 40) * 40 + 2000, 40, 100, 100};
  const WarpSettings settings{Resampling::bilinear, 1, 256};
  const WarpSettings own = SourceSet({&geo}).scaled(settings, window);
  EXPECT_NEAR(own.xscale, width_m / 40, 1e-4 * width_m / 40);
  EXPECT_NEAR(own.yscale, height_m / 40, 1e-4 * height_m / 40);

  // A finer source (10 m, the same zone) over the window's eastern half only.
  const SourceRecord fine = describe_raster(
      aligned_raster(dir_ / "fine.tif", GDT_Float32, window.west + 2000, window.north, 200, 6), Modality::s1coh, 0, "", {1});
  std::vector<float> alone(static_cast<std::size_t>(window.width) * window.height), mosaic(alone.size());
  SourceSet({&geo}).warp(window, settings, alone.data(), 1);
  SourceSet({&geo, &fine}).warp(window, settings, mosaic.data(), 1);
  std::size_t compared = 0, differ = 0;
  for (int y = 0; y < window.height; ++y)
    for (int x = 0; x < 45; ++x) {  // west of the fine source (and of its kernel)
      const std::size_t i = static_cast<std::size_t>(y) * window.width + x;
      if (std::isnan(alone[i])) continue;
      ++compared;
      differ += std::memcmp(&alone[i], &mosaic[i], sizeof(float)) != 0;
    }
  EXPECT_GT(compared, 4000u);
  EXPECT_EQ(differ, 0u) << "the finer source changed the kernel of the geographic one";
}

// A mask's kept classes may be any value: Landsat's 16-bit QA_PIXEL keeps 21824 (clear).
// Pixels under a kept class keep their values; the others become no data.
TEST_F(WarpWrapped, MasksKeepClassesBeyondEightBits) {
  const TileId tile = tile_of(chip_at(Zone{10, false}, {650000, 4100000}));
  const GridWindow window = chip_window(tile, 10, 3, 1, 5, 1);
  SourceRecord r = describe_raster(aligned_raster(dir_ / "scene.tif", GDT_Float32, window.west, window.north, 448, 9),
                                   Modality::s1amp, 0, "", {1, 2});
  {
    GdalDataset qa(GetGDALDriverManager()->GetDriverByName("GTiff")->Create((dir_ / "qa.tif").c_str(), 448, 448, 1, GDT_UInt16, nullptr));
    double gt[6] = {window.west, 10, 0, window.north, 0, -10};
    qa->SetGeoTransform(gt);
    OGRSpatialReference srs;
    srs.importFromEPSG(32610);
    qa->SetSpatialRef(&srs);
    std::vector<std::uint16_t> classes(448 * 448);
    for (std::size_t i = 0; i < classes.size(); ++i) classes[i] = i % 448 < 224 ? 21824 : 22280;  // clear | cloud
    ASSERT_EQ(qa->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, 448, 448, classes.data(), 448, 448, GDT_UInt16, 0, 0), CE_None);
  }
  r.mask = MaskSpec{dir_ / "qa.tif", 1, {21824, 21888}};
  std::vector<float> out(2u * 448 * 448);
  SourceSet({&r}).warp(window, {Resampling::bilinear, 1, 256}, out.data(), 2);
  std::size_t kept = 0, dropped = 0;
  for (std::size_t i = 0; i < 448u * 448; ++i) (i % 448 < 224 ? kept : dropped) += !std::isnan(out[i]);
  EXPECT_GT(kept, 448u * 224 * 9 / 10) << "clear pixels were dropped";
  EXPECT_EQ(dropped, 0u) << "cloudy pixels were kept";
}

// A north-up Float32 MEM raster over `values` (band planes), no-data NaN.
GdalDataset mem_raster(std::vector<float>& values, int width, int height, int bands, const double gt[6], int epsg) {
  GdalDataset ds(GDALDataset::FromHandle(GDALOpen(
      fmt::format("MEM:::DATAPOINTER={},PIXELS={},LINES={},BANDS={},DATATYPE=Float32", static_cast<void*>(values.data()),
                  width, height, bands).c_str(), GA_Update)));
  EXPECT_TRUE(ds);
  ds->SetGeoTransform(const_cast<double*>(gt));
  OGRSpatialReference srs;
  srs.importFromEPSG(epsg);
  ds->SetSpatialRef(&srs);
  for (int b = 1; b <= bands; ++b) ds->GetRasterBand(b)->SetNoDataValue(std::numeric_limits<double>::quiet_NaN());
  return ds;
}

// Every name data.resampling accepts warps a source in another CRS (EPSG:4326, as the
// coherence is published: the lattice path) and one on the tile's grid (the aligned
// path, or GDAL's warper), as gdalwarp warps it with GDAL's name for the method; an
// alias gives its method's result bit for bit. `nearest` on an EPSG:4326 source once
// failed every tile ("unknown resampling: nearest"): the name reached the warp as text.
TEST_F(WarpWrapped, EveryResamplingNameWarpsSourcesInAnotherCrsAndOnTheGrid) {
  GDALAllRegister();
  const TileId tile = tile_of(chip_at(Zone{10, false}, {650000, 4100000}));
  const GridWindow window = chip_window(tile, 40, 3, 1, 5, 2);
  const LonLatBox box = window.lonlat_box();
  const double deg = 0.0004, west = box.lon0 - 0.01, north = box.lat1 + 0.01;
  const int w = static_cast<int>((box.lon1 - box.lon0 + 0.02) / deg), h = static_cast<int>((box.lat1 - box.lat0 + 0.02) / deg);
  std::mt19937 random(3);
  // Few distinct values, so that mode, median and quartiles pick among ties too; 0: no data.
  geographic_raster(dir_ / "geo.tif", west, north, deg, w, h, 2,
                    [&] { return random() % 40 == 0 ? 0.0f : static_cast<float>(1 + random() % 12); }, 0.0);
  const SourceRecord geo = describe_raster(dir_ / "geo.tif", Modality::s1amp, 0, "", {1, 2});
  const SourceRecord grid =
      describe_raster(aligned_raster(dir_ / "grid.tif", GDT_Float32, window.west - 400, window.north + 400, 1000, 4),
                      Modality::s1amp, 0, "", {1, 2});
  const std::size_t n = 2u * window.width * window.height;
  for (const SourceRecord* source : {&geo, &grid}) {
    std::map<Resampling, std::vector<float>> first;
    for (const std::string& name : choice_names<Resampling>()) {
      const std::string what = fmt::format("{} from {}", name, source->path.filename().string());
      SCOPED_TRACE(what);
      const WarpSettings settings{*parse_choice<Resampling>(name), 1, 256};
      std::vector<float> ours(n);
      ASSERT_NO_THROW(SourceSet({source}).warp(window, settings, ours.data(), 2));
      const std::vector<float> theirs = gdalwarp_cli({source}, window, settings, dir_, false);
      std::size_t valid = 0, same = 0;
      for (std::size_t i = 0; i < n; ++i) {
        valid += !std::isnan(theirs[i]);
        same += std::isnan(theirs[i]) ? std::isnan(ours[i]) : std::memcmp(&ours[i], &theirs[i], sizeof(float)) == 0;
      }
      EXPECT_GT(valid, n / 2);
      // Bit for bit but at a few pixels (at most 22 of 50,176 measured): on the lattice a
      // pixel's source position is a hair from gdalwarp's exact one.
      EXPECT_GE(same, n * 995 / 1000) << same << " of " << n << " as gdalwarp's";
      std::cout << what << ": " << same << " of " << n << " values as gdalwarp's\n";
      const auto [was, fresh] = first.emplace(settings.resampling, ours);
      if (!fresh) EXPECT_EQ(std::memcmp(was->second.data(), ours.data(), n * sizeof(float)), 0) << "an alias differs";
    }
    EXPECT_EQ(first.size(), choice_values<Resampling>().size());
  }
}

// Our resampling on the lattice is GDAL's warper bit for bit: the same input (EPSG:4326,
// and a neighbouring UTM zone), the same lattice, the same kernel scales, once through
// GDAL's warper and once through our loop, every output bit equal. The inputs have holes
// (random pixels and a block, different per band), have edges inside the window, and are
// warped onto a destination already half filled (a mosaic's second input); the scales
// take GDAL's four-sample bilinear (both axes at 0.95 and above) and its general one,
// narrow and wide, and nearest.
TEST(LatticeKernel, OursIsGdalsWarperBitForBit) {
  GDALAllRegister();
  struct Case {
    std::string name;
    int epsg;
    double west, north, step;  // the input's corner and pixel, in its CRS
    int bands;
    Resampling resampling;
    double xscale, yscale;
  };
  const EastNorth c = utm_forward(10, false, {-120.3, 37.2});
  const GridWindow window{Zone{10, false}, std::round(c.e / 40) * 40 - 2400, std::round(c.n / 40) * 40 + 2000, 40, 120, 100};
  // The window's west edge in zone 11 metres, for an input there that ends inside the window.
  const EastNorth c11 = utm_forward(11, false, {-120.3, 37.2});
  const std::vector<Case> cases = {
      {"EPSG:4326, general", 4326, -120.36, 37.24, 0.0004, 1, Resampling::bilinear, 0.89, 1.11},
      {"EPSG:4326, four samples", 4326, -120.36, 37.24, 0.0004, 2, Resampling::bilinear, 1.3, 1.6},
      {"EPSG:4326, wide", 4326, -120.36, 37.24, 0.0004, 2, Resampling::bilinear, 0.45, 0.7},
      {"EPSG:4326, one axis below 0.95", 4326, -120.36, 37.24, 0.0004, 1, Resampling::bilinear, 0.97, 0.93},
      {"EPSG:4326, four samples, the input's corner inside", 4326, -120.32, 37.21, 0.0004, 1, Resampling::bilinear, 1.3, 1.6},
      {"EPSG:4326, general, the input's corner inside", 4326, -120.32, 37.21, 0.0004, 1, Resampling::bilinear, 0.89, 1.11},
      {"EPSG:4326, nearest", 4326, -120.36, 37.24, 0.0004, 2, Resampling::near, 0.89, 1.11},
      {"zone 11, wide", 32611, std::round(c11.e) - 2500, std::round(c11.n) + 2500, 20, 3, Resampling::bilinear, 0.5, 0.5},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    const int w = 160, h = 240;  // ends inside the window on the east (and starts inside where said)
    std::vector<float> pixels(static_cast<std::size_t>(k.bands) * w * h);
    std::mt19937 random(11);
    for (int b = 0; b < k.bands; ++b)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const bool hole = random() % 10 == 0 || (x > 40 + 10 * b && x < 60 + 10 * b && y > 80 && y < 120);
          pixels[(static_cast<std::size_t>(b) * h + y) * w + x] =
              hole ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(random() % 100000) / 97.0f;
        }
    const double gt[6] = {k.west, k.step, 0, k.north, 0, -k.step};
    GdalDataset input = mem_raster(pixels, w, h, k.bands, gt, k.epsg);
    const Box box = window.box();
    const double dgt[6] = {box.e0, window.pixel, 0, box.n1, 0, -window.pixel};
    const std::size_t n = static_cast<std::size_t>(k.bands) * window.width * window.height;
    std::vector<float> gdal(n, std::numeric_limits<float>::quiet_NaN()), ours(n, std::numeric_limits<float>::quiet_NaN());
    for (std::size_t i = 0; i < n; ++i)
      if (i % window.width < static_cast<std::size_t>(window.width) / 2) gdal[i] = ours[i] = 7.0f;  // an earlier input
    GdalDataset to_gdal = mem_raster(gdal, window.width, window.height, k.bands, dgt, 32610);
    GdalDataset to_ours = mem_raster(ours, window.width, window.height, k.bands, dgt, 32610);
    WarpSettings settings{k.resampling, 1, 256};
    settings.xscale = k.xscale, settings.yscale = k.yscale;
    ASSERT_TRUE(lattice_kernel_is_ours(k.resampling));
    lattice_warp(GDALDataset::ToHandle(input.get()), GDALDataset::ToHandle(input.get()), 0, 0,
                 GDALDataset::ToHandle(to_gdal.get()), window, settings, k.bands, k.name);
    lattice_warp(GDALDataset::ToHandle(input.get()), GDALDataset::ToHandle(input.get()), 0, 0,
                 GDALDataset::ToHandle(to_ours.get()), window, settings, k.bands, k.name, pixels.data(), ours.data());
    std::size_t written = 0, differ = 0;
    for (std::size_t i = 0; i < n; ++i) {
      written += !std::isnan(gdal[i]) && gdal[i] != 7.0f;
      differ += std::memcmp(&gdal[i], &ours[i], sizeof(float)) != 0;
    }
    EXPECT_GT(written, n / 4) << "too little of the input reaches the window";
    EXPECT_LT(written, n * 9 / 10) << "the input should end inside the window";
    EXPECT_EQ(differ, 0u) << "of " << n << " samples";
  }
}

// With a GDAL other than the one the kernel was proven against, the lattice warp leaves
// its pixels to GDAL's warper (our loop writes nothing), and the log says so once.
TEST(LatticeKernel, AnotherGdalRunsGdalsWarper) {
  GDALAllRegister();
  const EastNorth c = utm_forward(10, false, {-120.3, 37.2});
  const GridWindow window{Zone{10, false}, std::round(c.e / 40) * 40 - 2400, std::round(c.n / 40) * 40 + 2000, 40, 120, 100};
  const int w = 160, h = 240;
  std::vector<float> pixels(static_cast<std::size_t>(w) * h);
  std::mt19937 random(4);
  for (float& v : pixels) v = static_cast<float>(random() % 1000) / 7.0f;
  const double gt[6] = {-120.36, 0.0004, 0, 37.24, 0, -0.0004};
  GdalDataset input = mem_raster(pixels, w, h, 1, gt, 4326);
  const Box box = window.box();
  const double dgt[6] = {box.e0, window.pixel, 0, box.n1, 0, -window.pixel};
  const std::size_t n = static_cast<std::size_t>(window.width) * window.height;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  WarpSettings settings{Resampling::bilinear, 1, 256};
  settings.xscale = 0.89, settings.yscale = 1.11;
  // Into `dst` (GDAL's warper writes there) with `aside` as the kernel's own output.
  const auto warp = [&](std::vector<float>& dst, std::vector<float>* aside) {
    GdalDataset to = mem_raster(dst, window.width, window.height, 1, dgt, 32610);
    lattice_warp(GDALDataset::ToHandle(input.get()), GDALDataset::ToHandle(input.get()), 0, 0,
                 GDALDataset::ToHandle(to.get()), window, settings, 1, "another GDAL", aside ? pixels.data() : nullptr,
                 aside ? aside->data() : nullptr);
  };
  const auto written = [](const std::vector<float>& v) {
    return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [](float x) { return !std::isnan(x); }));
  };
  std::vector<float> gdal(n, nan);
  warp(gdal, nullptr);  // GDAL's warper, as for any kernel not ours
  ASSERT_GT(written(gdal), n / 4);

  std::ostringstream log;
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  pretend_gdal_version(3070000);
  EXPECT_FALSE(lattice_kernel_is_ours(Resampling::bilinear));
  std::vector<float> dst(n, nan), aside(n, nan);
  warp(dst, &aside);
  warp(dst, &aside);
  EXPECT_EQ(written(aside), 0u) << "our kernel ran";
  EXPECT_EQ(std::memcmp(dst.data(), gdal.data(), n * sizeof(float)), 0) << "not GDAL's warper's result";
  pretend_gdal_version(0);
  spdlog::set_default_logger(previous);
  EXPECT_TRUE(lattice_kernel_is_ours(Resampling::bilinear)) << "this machine's GDAL is the proven one";
  std::fill(dst.begin(), dst.end(), nan);
  warp(dst, &aside);
  EXPECT_EQ(written(aside), written(gdal)) << "our kernel did not run";
  const std::string text = log.str(), line = "GDAL 3070000 is not the 3060200 that the lattice warp's kernel";
  EXPECT_NE(text.find(line), std::string::npos) << text;
  EXPECT_EQ(text.find(line), text.rfind(line)) << "said more than once: " << text;
}

}  // namespace
}  // namespace eo
