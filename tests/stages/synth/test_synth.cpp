// The synthetic world: products as the real ones arrive, deterministic from a seed,
// with class proportions that change from chip to chip and areas missing a modality.

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "stages/ingest/gdal_util.hpp"
#include "support/run.hpp"
#include "support/world.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
const char* kSmallAoi = "POLYGON((-120.3 37.0, -120.2 37.0, -120.2 37.08, -120.3 37.08, -120.3 37.0))";

// A band's values with its no-data value as NaN.
std::vector<float> band_values(const fs::path& file, int band) {
  GdalDataset ds = open_raster(file);
  std::vector<float> v(static_cast<std::size_t>(ds->GetRasterXSize()) * ds->GetRasterYSize());
  GDALRasterBand* b = ds->GetRasterBand(band);
  EXPECT_EQ(b->RasterIO(GF_Read, 0, 0, ds->GetRasterXSize(), ds->GetRasterYSize(), v.data(), ds->GetRasterXSize(),
                        ds->GetRasterYSize(), GDT_Float32, 0, 0), CE_None);
  int has = 0;
  const double nodata = b->GetNoDataValue(&has);
  if (has)
    for (float& x : v)
      if (x == static_cast<float>(nodata)) x = std::nanf("");
  return v;
}

TEST(Synth, ProductsArriveAsTheRealOnesDo) {
  const auto w = test::make_world("products", kSmallAoi, "", 80, 8);
  std::map<Modality, std::set<std::string>> crs;
  std::map<Modality, std::set<int>> seasons;
  for (const SourceRecord& r : w->catalog.records()) {
    crs[r.modality].insert(r.crs);
    seasons[r.modality].insert(r.season);
    EXPECT_TRUE(fs::exists(r.path)) << r.path;
  }
  for (Modality m : kImageModalities) EXPECT_EQ(seasons[m].size(), 4u) << info(m).name;
  EXPECT_EQ(*crs[Modality::s2rgb].begin(), "EPSG:32610");  // S2 in the UTM zone of its tile
  EXPECT_EQ(crs[Modality::s1amp], std::set<std::string>{"EPSG:4326"});
  EXPECT_FALSE(crs[Modality::worldcover].empty());
  EXPECT_FALSE(crs[Modality::treecover].empty());
  // Coherence is CF NetCDF: xarray decodes scale_factor and _FillValue into 0..1 values.
  fs::path nc;
  for (const SourceRecord& r : w->catalog.records())
    if (r.modality == Modality::s1coh) nc = r.path;
  const auto py = test::run("/usr/bin/python3 -c \"import xarray as xr, numpy as np\n"
                            "d = xr.open_dataset('" + nc.string() + "')\n"
                            "c = d['coherence']\n"
                            "print(d.attrs.get('Conventions'), c.encoding['scale_factor'], c.encoding['_FillValue'],"
                            " float(c.min()) >= 0, float(c.max()) <= 1.0, int(c.notnull().sum()) > 0)\"");
  ASSERT_EQ(py.code, 0) << py.output;
  EXPECT_NE(py.output.find("CF-1.5 0.004 255 True True True"), std::string::npos) << py.output;
  // S2 has cloud holes (0 = no data) and S1 amplitude is speckled dB.
  for (const SourceRecord& r : w->catalog.records()) {
    if (r.modality == Modality::s1amp && r.season == 1) {
      const auto v = band_values(r.path, 1);
      double lo = 1e9, hi = -1e9;
      for (float x : v)
        if (!std::isnan(x)) { lo = std::min<double>(lo, x); hi = std::max<double>(hi, x); }
      EXPECT_LT(lo, -20);  // water and speckle troughs
      EXPECT_GT(hi, -8);   // built-up double bounce and speckle peaks
      break;
    }
  }
  fs::remove_all(w->dir);
}

TEST(Synth, DeterministicFromTheSeed) {
  const auto a = test::make_world("seed_a", kSmallAoi, "", 80, 8);
  const auto b = test::make_world("seed_b", kSmallAoi, "", 80, 8);
  const auto c = test::make_world("seed_c", kSmallAoi, "", 80, 8, 4);
  ASSERT_EQ(a->catalog.records().size(), b->catalog.records().size());
  for (std::size_t i = 0; i < a->catalog.records().size(); ++i) {
    const auto& ra = a->catalog.records()[i];
    const auto& rb = b->catalog.records()[i];
    EXPECT_EQ(ra.path.filename(), rb.path.filename());
    const auto va = band_values(ra.path, 1), vb = band_values(rb.path, 1);
    ASSERT_EQ(va.size(), vb.size());
    for (std::size_t k = 0; k < va.size(); ++k)
      ASSERT_TRUE((std::isnan(va[k]) && std::isnan(vb[k])) || va[k] == vb[k]) << ra.path.filename() << " pixel " << k;
  }
  // another seed, another world
  std::size_t differ = 0, compared = 0;
  for (std::size_t i = 0; i < std::min(a->catalog.records().size(), c->catalog.records().size()); ++i) {
    if (a->catalog.records()[i].path.filename() != c->catalog.records()[i].path.filename()) continue;
    const auto va = band_values(a->catalog.records()[i].path, 1), vc = band_values(c->catalog.records()[i].path, 1);
    for (std::size_t k = 0; k < va.size(); ++k)
      if (!std::isnan(va[k]) && !std::isnan(vc[k])) { ++compared; differ += va[k] != vc[k]; }
  }
  EXPECT_GT(differ, compared / 2);
  for (const auto* w : {&a, &b, &c}) fs::remove_all((*w)->dir);
}

// synth.acquisition_effects changes what each acquisition sees of the ground, never the
// ground: the label maps stay, S1 shifts VV and VH alike by up to 2.5 dB, smoothly
// varying, coherence only falls, S2 changes but keeps its cloud holes.
TEST(Synth, AcquisitionEffectsChangeWhatSensorsSeeNotTheGround) {
  const auto a = test::make_world("acq_off", kSmallAoi, "", 80, 8);
  const auto b = test::make_world("acq_on", kSmallAoi, "  acquisition_effects: 1\n", 80, 8);
  ASSERT_EQ(a->catalog.records().size(), b->catalog.records().size());
  int checked = 0;
  for (std::size_t i = 0; i < a->catalog.records().size(); ++i) {
    const SourceRecord& ra = a->catalog.records()[i];
    const SourceRecord& rb = b->catalog.records()[i];
    ASSERT_EQ(ra.path.filename(), rb.path.filename());
    SCOPED_TRACE(ra.path.filename().string());
    const auto va = band_values(ra.path, 1), vb = band_values(rb.path, 1);
    std::size_t differ = 0, valid = 0;
    double lo = 1e9, hi = -1e9;
    for (std::size_t k = 0; k < va.size(); ++k) {
      ASSERT_EQ(std::isnan(va[k]), std::isnan(vb[k])) << "pixel " << k << ": no data moved";
      if (std::isnan(va[k])) continue;
      ++valid;
      differ += va[k] != vb[k];
      lo = std::min<double>(lo, vb[k] - va[k]);
      hi = std::max<double>(hi, vb[k] - va[k]);
    }
    if (ra.modality == Modality::worldcover || ra.modality == Modality::treecover) {
      EXPECT_EQ(differ, 0u);
    } else if (valid > 0) {
      EXPECT_GT(differ, valid / 2);
      ++checked;
    }
    if (ra.modality == Modality::s1amp && valid > 0) {
      EXPECT_GE(lo, -2.5 - 1e-4);
      EXPECT_LE(hi, 2.5 + 1e-4);
      EXPECT_GT(hi - lo, 0.2) << "the shift varies over the tile";
      const auto vh_a = band_values(ra.path, 2), vh_b = band_values(rb.path, 2);
      for (std::size_t k = 0; k < va.size(); k += 97)
        if (!std::isnan(va[k])) ASSERT_NEAR(vh_b[k] - vh_a[k], vb[k] - va[k], 1e-3) << "pixel " << k;
    }
    if (ra.modality == Modality::s1coh && valid > 0) {
      EXPECT_LE(hi, 0.0041) << "coherence only falls";
      EXPECT_LT(lo, -0.02);
    }
  }
  EXPECT_GE(checked, 12) << "every season of every sensor";
  for (const auto* w : {&a, &b}) fs::remove_all((*w)->dir);
}

// The label map at chip scale: every chip's class proportions, from the 10 m-like
// WorldCover map, vary from chip to chip, and the classes are all there.
TEST(Synth, ClassProportionsVaryFromChipToChip) {
  const auto w = test::make_world("classes", "POLYGON((-120.6 36.9, -120.2 36.9, -120.2 37.2, -120.6 37.2, -120.6 36.9))",
                                  "", 80, 8, 3, 0.4);
  std::map<int, std::size_t> total;
  std::vector<double> tree_fraction;
  for (const SourceRecord& r : w->catalog.records()) {
    if (r.modality != Modality::worldcover) continue;
    GdalDataset ds = open_raster(r.path);
    const int nx = ds->GetRasterXSize(), ny = ds->GetRasterYSize();
    const auto v = band_values(r.path, 1);
    const int block = static_cast<int>(0.045 * nx);  // ~ a chip
    for (int by = 0; by + block <= ny; by += block)
      for (int bx = 0; bx + block <= nx; bx += block) {
        std::size_t n = 0, tree = 0;
        for (int y = by; y < by + block; ++y)
          for (int x = bx; x < bx + block; ++x) {
            const float value = v[static_cast<std::size_t>(y) * nx + x];
            if (std::isnan(value)) continue;
            const int c = static_cast<int>(value);
            ++n;
            ++total[c];
            tree += c == 10;
          }
        if (n == static_cast<std::size_t>(block) * block) tree_fraction.push_back(static_cast<double>(tree) / n);
      }
  }
  EXPECT_EQ(total.size(), 6u) << "water, tree, grass, crop, built-up and bare";
  ASSERT_GT(tree_fraction.size(), 20u);
  double mean = 0, var = 0;
  for (double f : tree_fraction) mean += f / tree_fraction.size();
  for (double f : tree_fraction) var += (f - mean) * (f - mean) / tree_fraction.size();
  EXPECT_GT(std::sqrt(var), 0.15) << "tree cover fraction should differ from chip to chip";
  EXPECT_GT(mean, 0.05);
  // Some source tiles were left out: those areas lack a modality.
  std::set<std::string> s1_tiles;
  for (const SourceRecord& r : w->catalog.records())
    if (r.modality == Modality::s1amp) s1_tiles.insert(r.path.filename().string().substr(0, 18));
  EXPECT_LT(s1_tiles.size(), 4u) << "with missing_fraction 0.4 some of the 4 S1 tiles are missing";
  fs::remove_all(w->dir);
}

}  // namespace
}  // namespace eo
