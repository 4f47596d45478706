// Real inputs as they are published: Sentinel-2 L2A and Sentinel-1 RTC scenes described
// by STAC ItemCollections shaped as Earth Search v1 and Planetary Computer publish them
// (scenes.py writes them, with the pixels of a real Landsat 7 scene), composited per
// season and checked against gdalwarp + numpy; then the bad inputs a user brings.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "pipeline/core/utm.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/ingest/stac.hpp"
#include "stages/reproject/warp.hpp"
#include "support/run.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kJJA = 2;  // the scenes are of June to August 2023

class Composite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(test::fresh_temp_dir("composite"));
    const auto r = test::run(fmt::format("/usr/bin/python3 {}/tests/stages/reproject/scenes.py make {} {}/data/real/stars/tif/L7_ETMs.tif",
                                         EO_SOURCE_DIR, dir_->string(), EO_SOURCE_DIR));
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    if (!std::getenv("EO_KEEP_TEST_FILES")) fs::remove_all(*dir_);
    delete dir_;
  }

  static Catalog catalog_of(const fs::path& stac) {
    const StacReport report = read_stac(stac);
    EXPECT_TRUE(report.problems.empty()) << report.problems.front();
    Catalog c;
    for (const SourceRecord& r : report.records) c.add(r);
    return c;
  }

  // A 2 km window at 20 m in UTM 10N inside the scenes, or the same ground on zone 11's
  // grid (rotated against the scenes' by ~2 degrees).
  static GridWindow window(int zone) {
    if (zone == 10) return {Zone{10, false}, 760500, 4099500, 20, 100, 100};
    const LonLat centre = utm_inverse(10, false, {761500, 4098500});
    const EastNorth en = utm_forward(11, false, centre);
    return {Zone{11, false}, std::round((en.e - 1000) / 20) * 20, std::round((en.n + 1000) / 20) * 20, 20, 100, 100};
  }

  static WarpSettings settings(int pane_mb = 32) {
    WarpSettings s{Resampling::bilinear, 1, 256};
    s.pane_mb = pane_mb;
    s.xscale = s.yscale = 10.0 / 20.0;  // the scenes' 10 m onto 20 m
    return s;
  }

  // Our composite against scenes.py's (gdalwarp + numpy) on the same window.
  static json independent_check(const WarpedModality& ours, const GridWindow& w, const std::string& modality) {
    const fs::path data = *dir_ / "ours.f32", clear = *dir_ / "clear.u16", args = *dir_ / "args.json";
    std::ofstream(data, std::ios::binary).write(reinterpret_cast<const char*>(ours.data.data()),
                                                static_cast<std::streamsize>(ours.data.size() * 4));
    std::ofstream(clear, std::ios::binary).write(reinterpret_cast<const char*>(ours.clear.data()),
                                                 static_cast<std::streamsize>(ours.clear.size() * 2));
    std::ofstream(args) << json{{"args", warp_arguments(w, settings())}, {"width", w.width}, {"height", w.height},
                                {"modality", modality}, {"season", kJJA}, {"clear", clear.string()}}.dump();
    const auto r = test::run(fmt::format("/usr/bin/python3 {}/tests/stages/reproject/scenes.py check {} {} {}", EO_SOURCE_DIR,
                                         dir_->string(), data.string(), args.string()));
    EXPECT_EQ(r.code, 0) << r.output;
    const auto brace = r.output.rfind('{');
    return brace == std::string::npos ? json::object() : json::parse(r.output.substr(brace));
  }

  static fs::path* dir_;
};

fs::path* Composite::dir_ = nullptr;

TEST_F(Composite, StacRecordsFollowEachPublishersConventions) {
  const StacReport es = read_stac(*dir_ / "earth-search-s2.json");
  ASSERT_EQ(es.items, 5);
  ASSERT_EQ(es.records.size(), 15u) << "one record per band asset";
  const SourceRecord& red = es.records.front();
  EXPECT_EQ(red.item, "S2B_10SGF_20230604_0_L2A");
  EXPECT_EQ(red.asset, "red");
  EXPECT_EQ(red.collection, "sentinel-2-l2a");
  EXPECT_EQ(red.crs, "EPSG:32610");
  EXPECT_EQ(red.bands, (std::vector<int>{1, 0, 0}));
  EXPECT_EQ(red.season, kJJA);
  EXPECT_EQ(red.time, "2023-06-04T18:59:21.024000Z");
  EXPECT_DOUBLE_EQ(*red.scale, 0.0001);
  EXPECT_DOUBLE_EQ(*red.offset, -0.1) << "raster:bands offset, earthsearch:boa_offset_applied false";
  ASSERT_TRUE(red.mask);
  EXPECT_EQ(red.mask->path, *dir_ / "s2/S2B_10SGF_20230604_0_L2A/SCL.tif") << "relative hrefs resolved against the JSON";
  EXPECT_EQ(red.mask->valid, s2_clear_classes());
  EXPECT_TRUE(red.cloud_cover.has_value());
  const StacReport pc = read_stac(*dir_ / "planetary-computer-s2.json");
  ASSERT_EQ(pc.records.size(), 15u);
  EXPECT_EQ(pc.records.front().asset, "B04");
  EXPECT_DOUBLE_EQ(*pc.records.front().offset, -0.1) << "s2:processing_baseline 05.09";
  EXPECT_EQ(pc.records.front().path, red.path);
  const StacReport s1 = read_stac(*dir_ / "planetary-computer-s1.json");
  ASSERT_EQ(s1.records.size(), 6u);
  EXPECT_EQ(s1.records[1].asset, "vh");
  EXPECT_EQ(s1.records[1].bands, (std::vector<int>{0, 1}));
  EXPECT_EQ(s1.records[1].units, Units::linear_power);
  EXPECT_DOUBLE_EQ(*s1.records[1].nodata, -32768);
  // The catalog keeps all of it through a save and a load.
  Catalog c;
  for (const SourceRecord& r : es.records) c.add(r);
  c.save(*dir_ / "catalog.jsonl");
  const Catalog back = Catalog::load(*dir_ / "catalog.jsonl");
  ASSERT_EQ(back.records().size(), 15u);
  EXPECT_EQ(back.records()[0].mask, red.mask);
  EXPECT_EQ(back.records()[0].item, red.item);
  EXPECT_EQ(back.records()[0].offset, red.offset);
  EXPECT_EQ(back.records()[0].bands, red.bands);
}

// One scene found through both publishers is one observation: kept once, from the first
// file, and each left-out item names the one kept.
TEST_F(Composite, AScenePublishedTwiceIsCataloguedOnce) {
  const StacReport both = read_stac(std::vector<fs::path>{*dir_ / "earth-search-s2.json", *dir_ / "planetary-computer-s2.json"});
  EXPECT_EQ(both.items, 10);
  EXPECT_EQ(both.records.size(), 15u);
  for (const SourceRecord& r : both.records) EXPECT_NE(r.asset.front(), 'B') << "Planetary Computer's " << r.item << " kept";
  ASSERT_EQ(both.duplicates.size(), 5u);
  EXPECT_NE(both.duplicates[0].find("which is kept"), std::string::npos) << both.duplicates[0];
  EXPECT_NE(both.duplicates[0].find("item S2B_10SGF_20230604_0_L2A of " + (*dir_ / "earth-search-s2.json").string()),
            std::string::npos) << both.duplicates[0];
  EXPECT_TRUE(both.problems.empty());
  // Composited once: the clear count of the pair is that of one publisher.
  const GridWindow w = window(10);
  Catalog pair;
  for (const SourceRecord& r : both.records) pair.add(r);
  const WarpedModality once = ModalitySources(pair, Modality::s2rgb, w.lonlat_box()).warp(w, settings());
  const WarpedModality es = ModalitySources(catalog_of(*dir_ / "earth-search-s2.json"), Modality::s2rgb, w.lonlat_box()).warp(w, settings());
  EXPECT_EQ(once.clear, es.clear);
}

// Another item of the same platform and time is the same scene only where it names the
// same tile. An item whose MGRS properties stop at the zone (as synth's do) names no tile:
// scenes of one zone taken together are each kept.
TEST_F(Composite, AnotherItemIsTheSameSceneOnlyWhereItNamesTheSameTile) {
  const auto copy = [&](const std::string& name, bool zone_only) {
    json items = json::parse(std::ifstream(*dir_ / "earth-search-s2.json"));
    for (json& it : items["features"]) {
      it["id"] = it["id"].get<std::string>() + "_" + name;
      if (zone_only) it["properties"].erase("mgrs:latitude_band"), it["properties"].erase("mgrs:grid_square");
    }
    std::ofstream(*dir_ / name) << items.dump();
    return *dir_ / name;
  };
  const StacReport same_tile = read_stac(std::vector<fs::path>{*dir_ / "earth-search-s2.json", copy("same-tile.json", false)});
  EXPECT_EQ(same_tile.records.size(), 15u);
  EXPECT_EQ(same_tile.duplicates.size(), 5u);
  const fs::path zone_only = copy("zone-only.json", true);
  const StacReport zone = read_stac(std::vector<fs::path>{zone_only, copy("zone-only-2.json", true)});
  EXPECT_EQ(zone.records.size(), 30u);
  EXPECT_TRUE(zone.duplicates.empty()) << zone.duplicates.front();
  EXPECT_TRUE(zone.problems.empty());
}

TEST_F(Composite, EarthSearchAndPlanetaryComputerGiveTheSameComposite) {
  const GridWindow w = window(10);
  const WarpedModality es = ModalitySources(catalog_of(*dir_ / "earth-search-s2.json"), Modality::s2rgb, w.lonlat_box()).warp(w, settings());
  const WarpedModality pc = ModalitySources(catalog_of(*dir_ / "planetary-computer-s2.json"), Modality::s2rgb, w.lonlat_box()).warp(w, settings());
  ASSERT_EQ(es.data.size(), pc.data.size());
  EXPECT_EQ(0, std::memcmp(es.data.data(), pc.data.data(), es.data.size() * 4)) << "same ground, same reflectance";
  EXPECT_EQ(es.clear, pc.clear);
  ASSERT_EQ(es.observations[kJJA].size(), 5u);
  EXPECT_EQ(es.observations[kJJA][0].id, "S2B_10SGF_20230604_0_L2A");
  EXPECT_TRUE(es.observations[0].empty());
}

TEST_F(Composite, S2MedianOfClearObservationsMatchesGdalwarpAndNumpy) {
  const Catalog c = catalog_of(*dir_ / "earth-search-s2.json");
  for (int zone : {10, 11}) {
    SCOPED_TRACE(fmt::format("window on zone {}'s grid", zone));
    const GridWindow w = window(zone);
    const WarpedModality ours = ModalitySources(c, Modality::s2rgb, w.lonlat_box()).warp(w, settings());
    const json result = independent_check(ours, w, "s2rgb");
    std::cout << "S2 on zone " << zone << ": " << result.dump() << "\n";
    EXPECT_GT(result.value("pixels", 0), 20000);
    // Cloudy pixels hold DN 30000 (reflectance 2.9): none reached the composite.
    EXPECT_LE(result.value("max_value", 9.0), 1.0) << result.dump();
    EXPECT_LT(result.value("mean_clear", 9.0), 5.0) << "clouds took observations away";
    EXPECT_GT(result.value("mean_clear", 0.0), 2.0);
  }
}

TEST_F(Composite, SceneOrderStripsAndPanesDoNotChangeABit) {
  json items;
  std::ifstream(*dir_ / "earth-search-s2.json") >> items;
  std::reverse(items["features"].begin(), items["features"].end());
  std::ofstream(*dir_ / "reversed.json") << items.dump();
  const GridWindow w = window(11);
  const Catalog c = catalog_of(*dir_ / "earth-search-s2.json");
  const WarpedModality whole = ModalitySources(c, Modality::s2rgb, w.lonlat_box()).warp(w, settings());
  const WarpedModality reversed = ModalitySources(catalog_of(*dir_ / "reversed.json"), Modality::s2rgb, w.lonlat_box()).warp(w, settings());
  // No memory for a pane: strips of one row, each warped on its own.
  const WarpedModality strips = ModalitySources(c, Modality::s2rgb, w.lonlat_box()).warp(w, settings(0));
  // Panes of 7 columns (the last one 2), of the whole height; and of 7 columns and one row.
  WarpSettings narrow = settings();
  narrow.pane_width = 7;
  const WarpedModality panes = ModalitySources(c, Modality::s2rgb, w.lonlat_box()).warp(w, narrow);
  narrow.pane_mb = 0;
  const WarpedModality small = ModalitySources(c, Modality::s2rgb, w.lonlat_box()).warp(w, narrow);
  EXPECT_EQ(0, std::memcmp(whole.data.data(), reversed.data.data(), whole.data.size() * 4));
  EXPECT_EQ(0, std::memcmp(whole.data.data(), strips.data.data(), whole.data.size() * 4));
  EXPECT_EQ(0, std::memcmp(whole.data.data(), panes.data.data(), whole.data.size() * 4));
  EXPECT_EQ(0, std::memcmp(whole.data.data(), small.data.data(), whole.data.size() * 4));
  EXPECT_EQ(whole.clear, strips.clear);
  EXPECT_EQ(whole.clear, panes.clear);
  EXPECT_EQ(whole.clear, small.clear);
  EXPECT_EQ(whole.observations, reversed.observations) << "listed in time order, whatever the file's order";
}

TEST(CompositeMedian, TheSortingNetworkTakesTheMedianOfAnyNumberOfObservations) {
  // 1 to 48 observations a pixel (a season of 24 scenes over two MGRS tiles holds 48), a
  // third of them missing, ties among them; against each pixel's values sorted.
  std::mt19937 random(31);
  std::uniform_int_distribution<int> value(0, 40), gap(0, 2);
  for (std::size_t n_obs = 1; n_obs <= 48; ++n_obs) {
    const std::size_t pixels = 200;  // more than three groups of lanes, the last one partial
    std::vector<float> values(n_obs * pixels);
    for (float& v : values) v = gap(random) == 0 ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(value(random)) / 4;
    const std::vector<float> medians = medians_by_network(values, n_obs, pixels);
    for (std::size_t p = 0; p < pixels; ++p) {
      std::vector<float> valid;
      for (std::size_t o = 0; o < n_obs; ++o)
        if (!std::isnan(values[o * pixels + p])) valid.push_back(values[o * pixels + p]);
      std::sort(valid.begin(), valid.end());
      const std::size_t n = valid.size();
      if (n == 0) {
        EXPECT_TRUE(std::isnan(medians[p])) << n_obs << " observations, pixel " << p;
        continue;
      }
      const float expected = n % 2 ? valid[n / 2] : static_cast<float>((static_cast<double>(valid[n / 2 - 1]) + valid[n / 2]) / 2);
      ASSERT_EQ(medians[p], expected) << n_obs << " observations, pixel " << p << ", " << n << " valid";
    }
  }
}

TEST_F(Composite, S1MeanInLinearPowerInDbMatchesNumpy) {
  const GridWindow w = window(11);
  const WarpedModality ours = ModalitySources(catalog_of(*dir_ / "planetary-computer-s1.json"), Modality::s1amp, w.lonlat_box()).warp(w, settings());
  const json result = independent_check(ours, w, "s1amp");
  std::cout << "S1: " << result.dump() << "\n";
  EXPECT_EQ(result.value("pixels", 0), 2 * 100 * 100) << "every pixel has VV and VH";
  EXPECT_LT(result.value("max_value", 99.0), 5.0) << "dB, not linear power";
}

TEST_F(Composite, BadInputsAreNamed) {
  // Not JSON, not STAC.
  std::ofstream(*dir_ / "broken.json") << "{\"type\": \"FeatureCollection\", \"features\": [";
  try {
    read_stac(*dir_ / "broken.json");
    ADD_FAILURE() << "a broken file was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((*dir_ / "broken.json").string() + ": not JSON"), std::string::npos) << e.what();
  }
  // An item without an asset the collection needs: left out whole (its other bands too), by name.
  json items;
  std::ifstream(*dir_ / "earth-search-s2.json") >> items;
  items["features"][1]["assets"].erase("green");
  items["features"][2]["properties"]["proj:epsg"] = 99999;
  items["features"][3]["assets"]["blue"]["href"] = "s2/nowhere/B02.tif";
  std::ofstream(*dir_ / "bad.json") << items.dump();
  const StacReport report = read_stac(*dir_ / "bad.json");
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_NE(report.problems[0].find("item S2B_10SGF_20230619_0_L2A: asset green: missing"), std::string::npos) << report.problems[0];
  EXPECT_EQ(report.records.size(), 12u);
  for (const SourceRecord& r : report.records) EXPECT_NE(r.item, "S2B_10SGF_20230619_0_L2A") << r.asset;
  // A CRS GDAL cannot resolve, and a file that is not there: the warp names file, item and asset.
  const GridWindow w = window(10);
  for (const char* id : {"S2B_10SGF_20230709_0_L2A", "S2B_10SGF_20230724_0_L2A"}) {
    Catalog c;
    for (const SourceRecord& r : report.records)
      if (r.item == id) c.add(r);
    try {
      ModalitySources(c, Modality::s2rgb, w.lonlat_box()).warp(w, settings());
      ADD_FAILURE() << id << " was read";
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(fmt::format("(item {}, asset", id)), std::string::npos) << what;
      EXPECT_TRUE(what.find("EPSG:99999") != std::string::npos || what.find("no such file") != std::string::npos) << what;
    }
  }
}

// Scene 2 (2023-06-19) has no data over its western 400 m: alone, it leaves that ground
// with no clear observation, which is no data, not a value.
TEST_F(Composite, NoClearObservationIsNoData) {
  Catalog c;
  for (const SourceRecord& r : read_stac(*dir_ / "earth-search-s2.json").records)
    if (r.item == "S2B_10SGF_20230619_0_L2A") c.add(r);
  const GridWindow edge{Zone{10, false}, 760000, 4099000, 20, 30, 20};  // 600 m wide: 400 m of no data
  const WarpedModality w = ModalitySources(c, Modality::s2rgb, edge.lonlat_box()).warp(edge, settings());
  const std::size_t plane = 30 * 20;
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 30; ++x) {
      const float v = w.data[static_cast<std::size_t>(kJJA) * 3 * plane + static_cast<std::size_t>(y) * 30 + x];
      const std::uint16_t clear = w.clear[static_cast<std::size_t>(kJJA) * plane + static_cast<std::size_t>(y) * 30 + x];
      if (x < 19) {  // 380 m: away from the bilinear kernel's reach into the data
        EXPECT_TRUE(std::isnan(v)) << x << "," << y;
        EXPECT_EQ(clear, 0) << x << "," << y;
      }
      if (x >= 21 && clear) EXPECT_FALSE(std::isnan(v)) << x << "," << y;
    }
}

// A static catalog on disk: Catalog -> Collection (child) -> Items (item links), each
// item its own file with hrefs relative to it.
TEST_F(Composite, StaticCatalogsAreWalked) {
  json items;
  std::ifstream(*dir_ / "earth-search-s2.json") >> items;
  const fs::path root = *dir_ / "static";
  fs::create_directories(root / "sentinel-2-l2a");
  json collection = {{"type", "Collection"}, {"id", "sentinel-2-l2a"}, {"stac_version", "1.0.0"}, {"links", json::array()}};
  for (json item : items["features"]) {
    item.erase("collection");  // the collection the item is linked from says it
    for (auto& [key, asset] : item["assets"].items()) asset["href"] = "../../../" + asset["href"].get<std::string>();
    const std::string name = item["id"].get<std::string>() + ".json";
    fs::create_directories(root / "sentinel-2-l2a" / item["id"].get<std::string>());
    std::ofstream(root / "sentinel-2-l2a" / item["id"].get<std::string>() / name) << item.dump();
    collection["links"].push_back({{"rel", "item"}, {"href", "./" + item["id"].get<std::string>() + "/" + name}});
  }
  collection["links"].push_back({{"rel", "root"}, {"href", "../catalog.json"}});
  std::ofstream(root / "sentinel-2-l2a" / "collection.json") << collection.dump();
  std::ofstream(root / "catalog.json") << json{{"type", "Catalog"}, {"id", "mine"}, {"stac_version", "1.0.0"},
                                              {"links", {{{"rel", "child"}, {"href", "./sentinel-2-l2a/collection.json"}},
                                                         {{"rel", "self"}, {"href", "./catalog.json"}}}}}.dump();
  const StacReport report = read_stac(root / "catalog.json");
  EXPECT_TRUE(report.problems.empty()) << report.problems.front();
  ASSERT_EQ(report.records.size(), 15u);
  EXPECT_EQ(report.records.front().collection, "sentinel-2-l2a");
  EXPECT_EQ(report.records.front().path, read_stac(*dir_ / "earth-search-s2.json").records.front().path);
}

// A collection eo-pipeline does not know, described by a mapping file: real Landsat 7
// pixels (r-cran-stars' L7_ETMs.tif, bands 3, 2, 1 as three COGs) as a STAC item.
TEST_F(Composite, AMappedCollectionNeedsNoCode) {
  const fs::path l7 = fs::path(EO_SOURCE_DIR) / "data/real/stars/tif/L7_ETMs.tif", scene = *dir_ / "landsat";
  fs::create_directories(scene);
  for (const auto& [band, name] : std::vector<std::pair<int, std::string>>{{3, "red"}, {2, "green"}, {1, "blue"}}) {
    const auto r = test::run(fmt::format("gdal_translate -q -of COG -b {} {} {}", band, l7.string(), (scene / (name + ".tif")).string()));
    ASSERT_EQ(r.code, 0) << r.output;
  }
  json assets = json::object();
  for (const char* name : {"red", "green", "blue"}) assets[name] = {{"href", std::string("landsat/") + name + ".tif"}};
  std::ofstream(*dir_ / "landsat.json") << json{{"type", "Feature"}, {"stac_version", "1.0.0"}, {"id", "LE07_L2SP_214065_20020728"},
                                                {"collection", "landsat-c2-l2"}, {"bbox", {-34.9166, -8.0410, -34.8260, -7.9498}},
                                                {"properties", {{"datetime", "2002-07-28T12:20:00Z"}, {"proj:epsg", 31985}}},
                                                {"assets", assets}}.dump();
  std::ofstream(*dir_ / "landsat.yaml") << "collections:\n  - collection: landsat-c2-l2\n    modality: s2rgb\n"
                                           "    bands: {R: red, G: green, B: blue}\n    scale: 0.004\n";
  EXPECT_FALSE(read_stac(*dir_ / "landsat.json").problems.empty()) << "unknown without its mapping";
  const StacReport report = read_stac(*dir_ / "landsat.json", load_collection_mappings(*dir_ / "landsat.yaml"));
  ASSERT_TRUE(report.problems.empty()) << report.problems.front();
  ASSERT_EQ(report.records.size(), 3u);
  Catalog c;
  for (const SourceRecord& r : report.records) c.add(r);
  // Olinda, Brazil, on its UTM 25S grid at 30 m: the item's three files, stacked, scaled.
  const EastNorth en = utm_forward(25, true, {-34.87, -7.995});
  const GridWindow w{Zone{25, true}, std::round(en.e / 30) * 30 - 1500, std::round(en.n / 30) * 30 + 1500, 30, 100, 100};
  WarpSettings s{Resampling::bilinear, 1, 256};
  const WarpedModality out = ModalitySources(c, Modality::s2rgb, w.lonlat_box()).warp(w, s);
  // The same ground straight from the multi-band file with gdalwarp, scaled by hand.
  const fs::path ref = *dir_ / "l7_ref.tif", rgb = *dir_ / "l7_rgb.vrt";
  const auto t = test::run(fmt::format("gdal_translate -q -of VRT -b 3 -b 2 -b 1 {} {}", l7.string(), rgb.string()));
  ASSERT_EQ(t.code, 0) << t.output;
  std::string cmd = "gdalwarp -q -overwrite";
  for (const auto& a : warp_arguments(w, SourceSet({&report.records[0]}, {0}).scaled(s, w))) cmd += " '" + a + "'";
  const auto r = test::run(cmd + " " + rgb.string() + " " + ref.string());
  ASSERT_EQ(r.code, 0) << r.output;
  GdalDataset ds = open_raster(ref);
  std::vector<float> theirs(3 * 100 * 100);
  ASSERT_EQ(ds->RasterIO(GF_Read, 0, 0, 100, 100, theirs.data(), 100, 100, GDT_Float32, 3, nullptr, 0, 0, 0, nullptr), CE_None);
  const std::size_t season = 2;  // July
  int compared = 0;
  for (std::size_t i = 0; i < theirs.size(); ++i) {
    const float ours = out.data[season * theirs.size() + i];
    if (std::isnan(theirs[i])) continue;
    ASSERT_NEAR(ours, theirs[i] * 0.004f, 1e-5) << i;
    ++compared;
  }
  EXPECT_GT(compared, 20000);
}

TEST(GlobalCoherence, TilesAreKnownByTheirNames) {
  const auto coh = global_coherence_record("/data/N48W090/N48W090_winter_vv_COH12.tif", Modality::s1coh);
  ASSERT_TRUE(coh);
  EXPECT_EQ(coh->season, 0);
  EXPECT_EQ(coh->crs, "EPSG:4326");
  EXPECT_DOUBLE_EQ(coh->footprint.lon0, -90);
  EXPECT_DOUBLE_EQ(coh->footprint.lat0, 47);
  EXPECT_DOUBLE_EQ(coh->footprint.lat1, 48);
  EXPECT_DOUBLE_EQ(*coh->scale, 0.01);
  EXPECT_EQ(coh->time, "2019-12-01/2020-02-28");
  const auto vh = global_coherence_record("/data/S01E012_fall_vh_AMP.tif", Modality::s1amp);
  ASSERT_TRUE(vh);
  EXPECT_EQ(vh->bands, (std::vector<int>{0, 1}));
  EXPECT_EQ(vh->units, Units::amplitude_dn);
  EXPECT_EQ(vh->season, 3);
  EXPECT_DOUBLE_EQ(vh->footprint.lat0, -2);
  EXPECT_FALSE(global_coherence_record("/data/N48W090_winter_vv_COH06.tif", Modality::s1coh)) << "another metric";
  EXPECT_FALSE(global_coherence_record("/data/N48W090_winter_vv_AMP.tif", Modality::s1coh));
  EXPECT_FALSE(global_coherence_record("/data/N48W090_winter_vv_rho.tif", Modality::s1amp));
}

TEST(CollectionMappings, ALandsatCollectionWithoutCode) {
  const fs::path dir = test::fresh_temp_dir("mappings");
  std::ofstream(dir / "landsat.yaml") << "collections:\n"
                                         "  - collection: landsat-c2-l2\n"
                                         "    modality: s2rgb\n"
                                         "    bands: {R: red, G: green, B: blue}\n"
                                         "    mask: {asset: qa_pixel, valid: [21824, 21888]}\n"
                                         "    scale: 0.0000275\n"
                                         "    offset: -0.2\n"
                                         "    nodata: 0\n";
  const auto m = load_collection_mappings(dir / "landsat.yaml");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].assets, (std::vector<std::string>{"red", "green", "blue"}));
  EXPECT_EQ(m[0].mask_valid, (std::vector<int>{21824, 21888}));
  std::ofstream(dir / "bad.yaml") << "collections:\n  - collection: x\n    modality: s1amp\n    bands: {VV: vv}\n";
  try {
    load_collection_mappings(dir / "bad.yaml");
    ADD_FAILURE() << "a mapping without VH was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.yaml:4: collections[0].bands: no asset for band VH of s1amp"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace eo
