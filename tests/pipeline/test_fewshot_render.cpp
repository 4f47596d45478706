// `eo-pipeline fewshot` and `eo-pipeline render` on a cube made by `run` over the
// synthetic world: the results table has every row, the pictures are real pictures of
// the data (sizes, varied pixels, chips of much and of little tree cover in colours of
// their own), and the GeoTIFFs are in the zone's CRS with the targets observed.

#include <gdal_priv.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "support/read_file.hpp"
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

  // Every target x features x model x size x seed has a row with finite scores, on the
  // test stripes and on the validation stripes.
  std::ifstream csv(out / "fewshot" / "results.csv");
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "target,features,model,n,seed,r2,rmse,f1,accuracy,validation_r2");
  std::map<std::string, int> rows_per_target;
  std::set<std::string> features, sizes;
  // With all training chips: per target, features and model, the sums of R² over seeds.
  std::map<std::tuple<std::string, std::string, std::string>, std::array<double, 2>> all_chips;  // test, validation
  while (std::getline(csv, line)) {
    std::stringstream ss(line);
    std::vector<std::string> f;
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    ASSERT_EQ(f.size(), 10u) << line;
    ++rows_per_target[f[0]];
    features.insert(f[1]);
    sizes.insert(f[3]);
    EXPECT_TRUE(std::isfinite(std::stod(f[6]))) << line;  // rmse
    EXPECT_TRUE(std::isfinite(std::stod(f[9]))) << line;  // validation R²
    if (f[3] == "all") {
      auto& sums = all_chips[{f[0], f[1], f[2]}];
      sums[0] += std::stod(f[5]), sums[1] += std::stod(f[9]);
    }
  }
  EXPECT_EQ(features, (std::set<std::string>{"s2rgb", "s1amp", "s1coh", "fused", "concat", "bands", "bands_s2rgb",
                                             "bands_s1amp", "bands_s1coh"}));
  EXPECT_EQ(sizes, (std::set<std::string>{"10", "20", "all"}));
  ASSERT_TRUE(rows_per_target.count("tree_cover_pct"));
  EXPECT_EQ(rows_per_target["tree_cover_pct"], 9 * 3 * 3 * 2);
  const json summary = json::parse(std::ifstream(out / "fewshot" / "summary.json"));
  EXPECT_GT(summary["chips"].get<int>(), 30);
  // The summary's best model is the one best on the validation stripes, never chosen on
  // the test stripes, and its R² is that model's mean on the test stripes.
  for (const auto& [target, per] : summary["targets"].items())
    for (const auto& [feature_set, best] : per.items()) {
      if (!best.is_object() || !best.contains("model_all")) continue;
      std::string chosen;
      double on_validation = -1e300;
      for (const char* model : {"ridge", "gbt", "rf"})
        if (const auto& sums = all_chips[{target, feature_set, model}]; sums[1] > on_validation)
          on_validation = sums[1], chosen = model;
      EXPECT_EQ(best["model_all"].get<std::string>(), chosen) << target << " " << feature_set;
      const double test_mean = all_chips[{target, feature_set, chosen}][0] / 2;
      EXPECT_NEAR(best["r2_all"].get<double>(), test_mean, 1e-4)
          << target << " " << feature_set;
    }

  // The learning curve: a picture with lines in several colours.
  const Raster curve = read_raster(out / "fewshot" / "curve_tree_cover_pct.png");
  EXPECT_EQ(curve.width, 720);
  EXPECT_EQ(curve.height, 480);
  EXPECT_GT(colours(curve), 6u);
  // ... and the same drawing as SVG, which an XML parser reads at the same size.
  const auto svg = test::run(fmt::format(
      "/usr/bin/python3 -c \"import xml.etree.ElementTree as E; r = E.parse('{}').getroot(); "
      "print(r.tag.split('}}')[-1], r.get('width'), r.get('height'), len(list(r.iter())))\"",
      (out / "fewshot" / "curve_tree_cover_pct.svg").string()));
  std::string tag, svg_w, svg_h;
  int elements = 0;
  std::istringstream(svg.output) >> tag >> svg_w >> svg_h >> elements;
  EXPECT_EQ(tag + " " + svg_w + " " + svg_h, "svg 720pt 480pt") << svg.output;
  EXPECT_GT(elements, 50) << svg.output;

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

  // The PCA picture: varied, and chips of much and of little tree cover far apart in
  // colour. The GeoTIFF holds the same colours on the chip grid, as RGB bytes with an
  // alpha band that is opaque exactly where a chip is.
  const Raster pca_tif = read_raster(out / "render" / fmt::format("pca_fused_{}.tif", zone.name()));
  ASSERT_EQ(pca_tif.width, map.width);
  ASSERT_EQ(pca_tif.height, map.height);
  ASSERT_EQ(pca_tif.bands, 4);
  {
    GDALDataset* ds = GDALDataset::Open((out / "render" / fmt::format("pca_fused_{}.tif", zone.name())).c_str(), GDAL_OF_RASTER);
    ASSERT_NE(ds, nullptr);
    EXPECT_EQ(ds->GetRasterBand(1)->GetRasterDataType(), GDT_Byte);
    EXPECT_EQ(ds->GetRasterBand(1)->GetColorInterpretation(), GCI_RedBand);
    EXPECT_EQ(ds->GetRasterBand(4)->GetColorInterpretation(), GCI_AlphaBand);
    GDALClose(ds);
  }
  const Raster pca_png = read_raster(out / "render" / fmt::format("pca_fused_{}.png", zone.name()));
  EXPECT_GT(colours(pca_png), 10u);
  std::vector<std::pair<float, std::array<double, 3>>> chips;
  for (int r = 0; r < map.height; ++r)
    for (int c = 0; c < map.width; ++c) {
      if (!std::isnan(map.at(9, r, c)) && pca_tif.at(3, r, c) == 255)
        chips.push_back({map.at(9, r, c), {pca_tif.at(0, r, c), pca_tif.at(1, r, c), pca_tif.at(2, r, c)}});
    }
  std::sort(chips.begin(), chips.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  ASSERT_GE(chips.size(), 8u);
  const std::size_t q = chips.size() / 4;
  std::array<double, 3> low{}, high{};
  for (std::size_t i = 0; i < q; ++i)
    for (int k = 0; k < 3; ++k) low[k] += chips[i].second[k] / q, high[k] += chips[chips.size() - 1 - i].second[k] / q;
  const double distance = std::hypot(low[0] - high[0], low[1] - high[1], low[2] - high[2]);
  EXPECT_GT(distance, 40) << "the least and the most wooded quarters of the chips have about the same colour";
  // And in the PNG, at the chips' places (summary.json says where the map lies), the same
  // colours as the GeoTIFF; the title, corners, legend and scale around it.
  const json rendered = json::parse(test::read_file(out / "render" / "summary.json"));
  json placed;
  for (const json& m : rendered["maps"])
    if (m["png"] == (out / "render" / fmt::format("pca_fused_{}.png", zone.name())).string()) placed = m;
  ASSERT_TRUE(placed.is_object()) << rendered.dump();
  const int x0 = placed["x"], y0 = placed["y"], chip_px = placed["chip_px"];
  EXPECT_GT(y0, 20) << "no room for a title";
  EXPECT_GT(pca_png.height, y0 + pca_tif.height * chip_px + 40) << "no room for a legend";
  for (int r = 0; r < pca_tif.height; ++r)
    for (int c = 0; c < pca_tif.width; ++c)
      if (pca_tif.at(3, r, c) == 255)
        for (int k = 0; k < 3; ++k)
          ASSERT_EQ(static_cast<int>(pca_png.at(k, y0 + r * chip_px + chip_px / 2, x0 + c * chip_px + chip_px / 2)),
                    static_cast<int>(pca_tif.at(k, r, c)));
  // Opaque exactly where a chip was drawn: as many opaque pixels, over the zones, as chips.
  std::size_t opaque = 0;
  for (const json& m : rendered["maps"]) {
    const Raster t = read_raster(m["tif"].get<std::string>());
    for (int r = 0; r < t.height; ++r)
      for (int c = 0; c < t.width; ++c) opaque += t.at(3, r, c) == 255;
  }
  EXPECT_EQ(opaque, rendered["chips"].get<std::size_t>());
  // The scatter leaves out the chips beyond its stretch (2nd to 98th percentile on each
  // axis) instead of piling them on its frame.
  EXPECT_LT(rendered["scatter_drawn"].get<std::size_t>(), rendered["chips"].get<std::size_t>());
  EXPECT_GE(rendered["scatter_drawn"].get<double>(), 0.8 * rendered["chips"].get<double>());

  const Raster scatter = read_raster(out / "render" / "scatter_fused_tree_cover.png");
  EXPECT_EQ(scatter.width, 640);
  EXPECT_GT(colours(scatter), 10u);

  // A user's own labels: points at 120 embedded chips' centres, each with the tree cover
  // GDAL reads there from the world's tree-cover maps (not our chip targets). The map of
  // the whole cube follows the labels where they are, and covers every embedded chip.
  const fs::path labels = world.dir / "trees.geojson", vrt = world.dir / "treecover.vrt";
  ASSERT_EQ(test::run(fmt::format("gdalbuildvrt -q {} {}/out/world/labels/treecover_*.tif", vrt.string(), world.dir.string())).code, 0);
  const auto made = test::run(fmt::format(
      "/usr/bin/python3 -c \"\n"
      "import json, numpy as np, zarr\n"
      "from osgeo import gdal, osr\n"
      "root = zarr.open_group('{0}', mode='r'); chips = []\n"
      "for zone in sorted(root.group_keys()):\n"
      "    g = root[zone]; t = g.attrs['spatial:transform']\n"
      "    s = osr.SpatialReference(); s.SetFromUserInput(g.attrs['proj:code'])\n"
      "    w = osr.SpatialReference(); w.ImportFromEPSG(4326); w.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)\n"
      "    tr = osr.CoordinateTransformation(s, w)\n"
      "    for r, c in zip(*np.nonzero(g['status'][:] == 1)):\n"
      "        chips.append(tr.TransformPoint(t[2] + (c + 0.5) * t[0], t[5] + (r + 0.5) * t[4])[:2])\n"
      "ds = gdal.Open('{1}'); gt = ds.GetGeoTransform(); band = ds.GetRasterBand(1).ReadAsArray()\n"
      "features = []\n"
      "for lon, lat in chips[::max(1, len(chips) // 120)][:120]:\n"
      "    v = float(band[int((lat - gt[3]) / gt[5]), int((lon - gt[0]) / gt[1])])\n"
      "    features.append({{'type': 'Feature', 'geometry': {{'type': 'Point', 'coordinates': [lon, lat]}}, 'properties': {{'trees': v}}}})\n"
      "json.dump({{'type': 'FeatureCollection', 'features': features}}, open('{2}', 'w')); print(len(chips), len(features))\n"
      "\"",
      world.cube("out").string(), vrt.string(), labels.string()));
  ASSERT_EQ(made.code, 0) << made.output;
  int embedded = 0, labelled = 0;
  std::istringstream(made.output) >> embedded >> labelled;
  ASSERT_GE(labelled, 40) << made.output;
  const auto own = test::run(fmt::format("{} fewshot {} --labels {} --label-property trees", EO_PIPELINE_EXE, args,
                                         labels.string()));
  ASSERT_EQ(own.code, 0) << own.output;
  const fs::path own_dir = out / "fewshot" / "labels-trees";
  EXPECT_TRUE(fs::exists(own_dir / "results.md"));
  int covered = 0;
  double sxy2 = 0, sx2 = 0, sy2 = 0, sxx2 = 0, syy2 = 0, n2 = 0;
  for (const auto& e : fs::directory_iterator(own_dir)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with("predicted_") || e.path().extension() != ".tif") continue;
    const Raster m = read_raster(e.path());
    ASSERT_EQ(m.bands, 2) << name;  // predicted trees, observed trees
    for (int r = 0; r < m.height; ++r)
      for (int c = 0; c < m.width; ++c) {
        covered += !std::isnan(m.at(0, r, c));
        const double p = m.at(0, r, c), o = m.at(1, r, c);
        if (std::isnan(o)) continue;
        sxy2 += p * o, sx2 += p, sy2 += o, sxx2 += p * p, syy2 += o * o, ++n2;
      }
    EXPECT_TRUE(fs::exists(own_dir / ("predicted_trees_" + name.substr(10, name.size() - 14) + ".png"))) << name;
  }
  EXPECT_EQ(covered, embedded) << "the predicted map does not cover the cube's embedded chips";
  EXPECT_EQ(n2, labelled);  // each label on a chip of its own, observed there
  EXPECT_GT((n2 * sxy2 - sx2 * sy2) / std::sqrt((n2 * sxx2 - sx2 * sx2) * (n2 * syy2 - sy2 * sy2)), 0.5);

  // Run again into the same folder with another target: what the first run drew for its
  // target is gone, and the folder's pictures are the ones summary.json lists.
  {
    json other = json::parse(test::read_file(labels));
    for (json& f : other["features"]) f["properties"] = {{"cover", f["properties"]["trees"]}};
    fs::create_directories(world.dir / "again");
    std::ofstream(world.dir / "again" / "trees.geojson") << other.dump();
    const auto again = test::run(fmt::format("{} fewshot {} --labels {} --label-property cover", EO_PIPELINE_EXE, args,
                                             (world.dir / "again" / "trees.geojson").string()));
    ASSERT_EQ(again.code, 0) << again.output;
    std::set<std::string> listed, present;
    const json summary = json::parse(test::read_file(own_dir / "summary.json"));
    for (const json& f : summary["files"]) listed.insert(f.get<std::string>());
    for (const auto& e : fs::directory_iterator(own_dir))
      if (e.path().extension() == ".png" || e.path().extension() == ".tif") present.insert(e.path().string());
    EXPECT_EQ(present, listed);
    for (const std::string& f : present) EXPECT_EQ(f.find("_trees"), std::string::npos) << f;
    EXPECT_NE(std::find_if(present.begin(), present.end(), [](const std::string& f) { return f.find("predicted_cover_") != std::string::npos; }),
              present.end());
  }

  // Classes labelled far from the area's balance: every chip of dense tree cover, one in
  // ten of the others. Warned, naming the class and both shares.
  {
    json doc = json::parse(test::read_file(labels));
    std::vector<double> cover;
    for (const json& f : doc["features"]) cover.push_back(f["properties"]["trees"].get<double>());
    std::nth_element(cover.begin(), cover.begin() + static_cast<long>(cover.size() / 2), cover.end());
    const double median = cover[cover.size() / 2];
    json picked = json::array();
    int sparse = 0;
    for (const json& f : doc["features"]) {
      const bool dense = f["properties"]["trees"].get<double>() >= median;
      if (!dense && sparse++ % 10 != 0) continue;
      picked.push_back({{"type", "Feature"}, {"geometry", f["geometry"]}, {"properties", {{"value", dense ? "dense" : "sparse"}}}});
    }
    doc["features"] = picked;
    std::ofstream(world.dir / "classes.geojson") << doc.dump();
    const auto lopsided = test::run(fmt::format("{} fewshot {} --labels {}", EO_PIPELINE_EXE, args, (world.dir / "classes.geojson").string()));
    ASSERT_EQ(lopsided.code, 0) << lopsided.output;
    EXPECT_NE(lopsided.output.find("fewshot: class sparse is "), std::string::npos) << lopsided.output;
  }

  // The same from the tree-cover raster itself: a target per chip, its mean there.
  const auto raster = test::run(fmt::format("{} fewshot {} --labels {}", EO_PIPELINE_EXE, args, vrt.string()));
  ASSERT_EQ(raster.code, 0) << raster.output;
  EXPECT_NE(raster.output.find(fmt::format("{} labelled chips of", embedded)), std::string::npos) << raster.output;
  EXPECT_TRUE(fs::exists(out / "fewshot" / "labels-treecover" / "results.md"));

  // Bad labels: clear errors naming the file and what is wrong.
  const auto bad = [&](const std::string& text, const std::string& says, const std::string& extra = "") {
    const fs::path f = world.dir / "bad.geojson";
    std::ofstream(f) << text;
    const auto r = test::run(fmt::format("{} fewshot {} --labels {} {}", EO_PIPELINE_EXE, args, f.string(), extra));
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find(says), std::string::npos) << r.output;
  };
  bad(R"({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, "properties": {"x": 1}}]})",
      "bad.geojson: feature 0: no property \"value\"");
  bad(R"({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "properties": {"value": 1}}]})",
      "bad.geojson: feature 0: a LineString");
  bad(R"({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, "properties": {"value": 1}}]})",
      "0 labelled chips in");
  // Latitude first, as people write it: refused, saying so.
  bad(R"({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [37.45, -120.5]}, "properties": {"value": 1}}]})",
      "bad.geojson: feature 0: position [37.45,-120.5] is not longitude and latitude in degrees (latitude, longitude, it seems");
  // Values beyond single precision: one of 1e39 turned every R² into 0 and RMSE into inf,
  // 1e308 crashed the ridge fit. Refused, naming the feature.
  std::string huge = R"({"type": "FeatureCollection", "features": [)";
  for (int i = 0; i < 200; ++i)
    huge += fmt::format(R"({}{{"type": "Feature", "geometry": {{"type": "Point", "coordinates": [0, 0]}}, "properties": {{"value": {}}}}})",
                        i ? "," : "", i % 4 == 3 ? "1e308" : std::to_string(i));
  bad(huge + "]}", "bad.geojson: feature 3: \"value\" is 1e+308, beyond what a label can be");
  bad(R"({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, "properties": {"value": 1e39}}]})",
      "bad.geojson: feature 0: \"value\" is 1e+39, beyond what a label can be");
}

}  // namespace
}  // namespace eo
