// `eo-pipeline fewshot` and `eo-pipeline render` on a cube made by `run` over the
// synthetic world: the results table has every row, the pictures are real pictures of
// the data (sizes, varied pixels, chips of much and of little tree cover in colours of
// their own), and the GeoTIFFs are in the zone's CRS with the targets observed.

#include <gdal_priv.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "support/run_world.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Raster {
  int width = 0, height = 0, bands = 0;
  std::vector<float> values;  // [band][row][col]
  std::string wkt;
  float at(int b, int r, int c) const { return values[(static_cast<std::size_t>(b) * height + r) * width + c]; }
};

Raster read_raster(const fs::path& file) {
  GDALAllRegister();
  Raster r;
  GDALDataset* ds = GDALDataset::Open(file.c_str(), GDAL_OF_RASTER);
  if (!ds) return r;
  r.width = ds->GetRasterXSize(), r.height = ds->GetRasterYSize(), r.bands = ds->GetRasterCount();
  r.values.resize(static_cast<std::size_t>(r.width) * r.height * r.bands);
  for (int b = 0; b < r.bands; ++b)
    if (ds->GetRasterBand(b + 1)->RasterIO(GF_Read, 0, 0, r.width, r.height, r.values.data() + static_cast<std::size_t>(b) * r.width * r.height,
                                           r.width, r.height, GDT_Float32, 0, 0) != CE_None)
      r.bands = 0;
  if (const char* w = ds->GetProjectionRef()) r.wkt = w;
  GDALClose(ds);
  return r;
}

std::size_t colours(const Raster& png) {
  std::set<std::tuple<int, int, int>> seen;
  for (int y = 0; y < png.height; ++y)
    for (int x = 0; x < png.width; ++x)
      seen.insert({static_cast<int>(png.at(0, y, x)), static_cast<int>(png.at(1, y, x)), static_cast<int>(png.at(2, y, x))});
  return seen.size();
}

TEST(Downstream, FewshotAndRenderOnARunsCube) {
  const test::RunWorld world("downstream", test::squares_aoi(6, 0.1),
                             "fewshot:\n  sizes: [10, 20]\n  seeds: 2\n  stripes: 5\n");
  const auto ran = test::run(world.command("out", 2));
  ASSERT_EQ(ran.code, 0) << ran.output;
  const fs::path out = world.dir / "out";
  const std::string args = fmt::format("{} --output {} -q", world.world->config_file.string(), out.string());
  const auto fewshot = test::run(fmt::format("{} fewshot {}", EO_PIPELINE_EXE, args));
  ASSERT_EQ(fewshot.code, 0) << fewshot.output;
  const auto render = test::run(fmt::format("{} render {}", EO_PIPELINE_EXE, args));
  ASSERT_EQ(render.code, 0) << render.output;

  // Every target x features x model x size x seed has a row with finite scores.
  std::ifstream csv(out / "fewshot" / "results.csv");
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "target,features,model,n,seed,r2,rmse,f1,accuracy");
  std::map<std::string, int> rows_per_target;
  std::set<std::string> features, sizes;
  while (std::getline(csv, line)) {
    std::stringstream ss(line);
    std::vector<std::string> f;
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    ASSERT_EQ(f.size(), 9u) << line;
    ++rows_per_target[f[0]];
    features.insert(f[1]);
    sizes.insert(f[3]);
    EXPECT_TRUE(std::isfinite(std::stod(f[6]))) << line;  // rmse
  }
  EXPECT_EQ(features, (std::set<std::string>{"s2rgb", "s1amp", "s1coh", "fused", "concat", "bands"}));
  EXPECT_EQ(sizes, (std::set<std::string>{"10", "20", "all"}));
  ASSERT_TRUE(rows_per_target.count("tree_cover_pct"));
  EXPECT_EQ(rows_per_target["tree_cover_pct"], 6 * 3 * 3 * 2);
  const json summary = json::parse(std::ifstream(out / "fewshot" / "summary.json"));
  EXPECT_GT(summary["chips"].get<int>(), 30);

  // The learning curve: a picture with lines in several colours.
  const Raster curve = read_raster(out / "fewshot" / "curve_tree_cover_pct.png");
  EXPECT_EQ(curve.width, 720);
  EXPECT_EQ(curve.height, 480);
  EXPECT_GT(colours(curve), 6u);

  // The map: per zone, predicted and observed targets in the zone's CRS; the prediction
  // follows the observation.
  const Zone zone = world.world->plan.tiles.front().id.zone;
  const Raster map = read_raster(out / "fewshot" / fmt::format("predicted_{}.tif", zone.name()));
  ASSERT_EQ(map.bands, 10);
  EXPECT_NE(map.wkt.find(std::to_string(zone.epsg())), std::string::npos) << map.wkt;
  double sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0, n = 0;
  for (int r = 0; r < map.height; ++r)
    for (int c = 0; c < map.width; ++c) {
      const double p = map.at(4, r, c), o = map.at(9, r, c);  // tree cover %, predicted and observed
      if (std::isnan(p) || std::isnan(o)) continue;
      sxy += p * o, sx += p, sy += o, sxx += p * p, syy += o * o, ++n;
    }
  ASSERT_GT(n, 10);
  const double corr = (n * sxy - sx * sy) / std::sqrt((n * sxx - sx * sx) * (n * syy - sy * sy));
  EXPECT_GT(corr, 0.5) << "the predicted tree cover does not follow the observed one";

  // The PCA picture: the size the grid gives, varied, and chips of much and of little tree
  // cover far apart in colour (the GeoTIFF holds the same colours on the chip grid).
  const Raster pca_tif = read_raster(out / "render" / fmt::format("pca_fused_{}.tif", zone.name()));
  ASSERT_EQ(pca_tif.width, map.width);
  ASSERT_EQ(pca_tif.height, map.height);
  const Raster pca_png = read_raster(out / "render" / fmt::format("pca_fused_{}.png", zone.name()));
  const int scale = std::max(1, 600 / std::max(pca_tif.width, pca_tif.height));
  EXPECT_EQ(pca_png.width, pca_tif.width * scale);
  EXPECT_EQ(pca_png.height, pca_tif.height * scale);
  EXPECT_GT(colours(pca_png), 10u);
  std::vector<std::pair<float, std::array<double, 3>>> chips;
  for (int r = 0; r < map.height; ++r)
    for (int c = 0; c < map.width; ++c)
      if (!std::isnan(map.at(9, r, c)) && !std::isnan(pca_tif.at(0, r, c)))
        chips.push_back({map.at(9, r, c), {pca_tif.at(0, r, c), pca_tif.at(1, r, c), pca_tif.at(2, r, c)}});
  std::sort(chips.begin(), chips.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  ASSERT_GE(chips.size(), 8u);
  const std::size_t q = chips.size() / 4;
  std::array<double, 3> low{}, high{};
  for (std::size_t i = 0; i < q; ++i)
    for (int k = 0; k < 3; ++k) low[k] += chips[i].second[k] / q, high[k] += chips[chips.size() - 1 - i].second[k] / q;
  const double distance = std::hypot(low[0] - high[0], low[1] - high[1], low[2] - high[2]);
  EXPECT_GT(distance, 40) << "the least and the most wooded quarters of the chips have about the same colour";
  // And in the PNG, at the chips' places, the same colours as the GeoTIFF.
  for (int r = 0; r < pca_tif.height; ++r)
    for (int c = 0; c < pca_tif.width; ++c)
      if (!std::isnan(pca_tif.at(0, r, c)))
        for (int k = 0; k < 3; ++k)
          ASSERT_EQ(static_cast<int>(pca_png.at(k, r * scale + scale / 2, c * scale + scale / 2)),
                    static_cast<int>(pca_tif.at(k, r, c)));

  const Raster scatter = read_raster(out / "render" / "scatter_fused_tree_cover.png");
  EXPECT_EQ(scatter.width, 640);
  EXPECT_GT(colours(scatter), 10u);
}

}  // namespace
}  // namespace eo
