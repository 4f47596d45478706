// The eo-pipeline executable as a user runs it: exit codes, messages, files written.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "support/read_file.hpp"
#include "support/run.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using test::run;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("eo_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  std::string exe() const { return EO_PIPELINE_EXE; }
  fs::path dir_;
};

TEST_F(Cli, PlanOnEmbeddedDemoWritesTileListAndConfig) {
  const auto r = run(exe() + " plan --output " + (dir_ / "out").string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("of Earth's land"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[r0] [info]"), std::string::npos) << r.output;
  std::ifstream tiles(dir_ / "out/plan/tiles.jsonl");
  int lines = 0, chips = 0;
  for (std::string line; std::getline(tiles, line); ++lines) chips += nlohmann::json::parse(line).at("chips").get<int>();
  EXPECT_GE(lines, 4);
  EXPECT_GT(chips, 200);
  EXPECT_TRUE(fs::exists(dir_ / "out/plan/config.yaml"));
  const auto j = run(exe() + " plan -q --json --output " + (dir_ / "out").string());
  ASSERT_EQ(j.code, 0) << j.output;
  const auto summary = nlohmann::json::parse(j.output);
  EXPECT_EQ(summary["total"]["chips"].get<int>(), chips);
  EXPECT_EQ(summary["total"]["tiles"].get<int>(), lines);
}

TEST_F(Cli, PlanPartitionPreview) {
  for (const char* scheme : {"static", "dynamic", "slurm-array"}) {
    const auto r = run(exe() + " plan -q --json --ranks 3 --partition " + scheme + " --output " + (dir_ / "o").string());
    ASSERT_EQ(r.code, 0) << r.output;
    const auto s = nlohmann::json::parse(r.output);
    const auto chips = s["partition"]["chips"].get<std::vector<int>>();
    ASSERT_EQ(chips.size(), 3u);
    EXPECT_EQ(chips[0] + chips[1] + chips[2], s["total"]["chips"].get<int>()) << scheme;
    EXPECT_GE(s["partition"]["imbalance"].get<double>(), 1.0);
  }
}

TEST_F(Cli, QuietAndVerbose) {
  const auto q = run(exe() + " plan --quiet --output " + (dir_ / "o").string());
  ASSERT_EQ(q.code, 0);
  EXPECT_EQ(q.output.find("[info]"), std::string::npos) << q.output;
  const auto v = run(exe() + " plan --verbose --output " + (dir_ / "o").string());
  ASSERT_EQ(v.code, 0);
  EXPECT_NE(v.output.find("[r0] [debug]"), std::string::npos) << v.output;
  EXPECT_EQ(run(exe() + " plan --quiet --verbose").code, 2);
}

TEST_F(Cli, HelpAndPrintConfig) {
  const auto h = run(exe() + " plan --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.output.find("--ranks"), std::string::npos) << h.output;
  EXPECT_NE(h.output.find("--print-config"), std::string::npos) << h.output;
  EXPECT_EQ(run(exe() + " --help").code, 0);
  const auto p = run(exe() + " plan --print-config --output " + (dir_ / "never").string());
  ASSERT_EQ(p.code, 0) << p.output;
  EXPECT_NE(p.output.find("pixel_size: 40"), std::string::npos) << p.output;
  EXPECT_NE(p.output.find("partition: static"), std::string::npos) << p.output;
  EXPECT_FALSE(fs::exists(dir_ / "never"));
  // the printed config is itself a valid config
  const std::string printed = write("printed.yaml", p.output);
  EXPECT_EQ(run(exe() + " plan -q " + printed + " --output " + (dir_ / "o").string()).code, 0);
}

struct BadConfig {
  const char* name;
  const char* yaml;
  const char* expect;  // part of the message
};

TEST_F(Cli, EachKindOfBadConfigExitsTwoNamingFileKeyAndLine) {
  const std::string aoi = "aois:\n  - name: a\n    wkt: POLYGON((14 45, 15 45, 15 46, 14 46, 14 45))\n";
  const std::vector<BadConfig> cases = {
      {"unknown_key", "gird:\n  pixel_size: 40\n", ":1: gird: unknown key (did you mean 'grid'?)"},
      {"wrong_type", "grid:\n  pixel_size: [1, 2]\n", ":2: grid.pixel_size: expected a number"},
      {"out_of_range", "grid:\n  pixel_size: 9000\n", ":2: grid.pixel_size: 9000 is out of range"},
      {"bad_choice", "schedule:\n  order: zigzag\n", ":2: schedule.order: 'zigzag' is not a curve order; one of: hilbert, morton"},
      {"missing_aoi_file", "aois:\n  - name: x\n    file: missing.geojson\n", ":3: aois[0].file: no such file"},
      {"polar_aoi", "aois:\n  - name: x\n    wkt: POLYGON((1 80,2 80,2 85,1 80))\n", ":2: aois[0]: AOI"},
      {"bad_yaml", "grid: {pixel_size: 40\n", "not valid YAML"},
  };
  for (const BadConfig& c : cases) {
    const bool has_aois = std::string(c.yaml).find("aois:") != std::string::npos;
    const std::string file = write(std::string(c.name) + ".yaml", std::string(c.yaml) + (has_aois ? "" : aoi));
    const auto out = dir_ / (std::string("out_") + c.name);
    const auto r = run(exe() + " plan " + file + " --output " + out.string());
    EXPECT_EQ(r.code, 2) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(file), std::string::npos) << c.name << " does not name the file: " << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.name << ": " << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.name << ": something was started";
  }
}

TEST_F(Cli, BadAoiFileNamesTheAoiFile) {
  const std::string bad = write("broken.geojson", "{\"type\": \"FeatureCollection\", \"features\": [");
  const std::string cfg = write("c.yaml", "aois:\n  - name: x\n    file: broken.geojson\n");
  const auto r = run(exe() + " plan " + cfg + " --output " + (dir_ / "o").string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(bad), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("c.yaml:2: aois[0]"), std::string::npos) << r.output;
}

TEST_F(Cli, PrepareWithoutCatalogExitsTwoNamingIt) {
  const std::string cfg = write("c.yaml", "aois:\n  - name: x\n    wkt: POLYGON((14 45, 15 45, 15 46, 14 46, 14 45))\n"
                                          "data:\n  catalog: nowhere/catalog.jsonl\n");
  const auto r = run(exe() + " prepare " + cfg + " --output " + (dir_ / "o").string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find((dir_ / "nowhere/catalog.jsonl").string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("eo-pipeline synth"), std::string::npos) << r.output;
}

// Real data enters through `catalog`: the Landsat 7 scene of r-cran-stars (SIRGAS 2000 /
// UTM 25S) beside a file that is not a raster, then `prepare` over an AOI inside it.
TEST_F(Cli, CatalogOfRealRastersFeedsPrepare) {
  const fs::path src = dir_ / "src";
  fs::create_directories(src);
  fs::copy_file(fs::path(EO_SOURCE_DIR) / "data/real/stars/tif/L7_ETMs.tif", src / "L7_ETMs.tif");
  write("src/README.txt", "not a raster");
  const auto c = run(exe() + " catalog " + src.string() + " --modality s2rgb --bands 3,2,1 --season 1 --out " +
                     (dir_ / "catalog.jsonl").string());
  ASSERT_EQ(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("1 records added (1 files not used"), std::string::npos) << c.output;
  std::ifstream in(dir_ / "catalog.jsonl");
  const auto record = nlohmann::json::parse(std::string((std::istreambuf_iterator<char>(in)), {}));
  EXPECT_EQ(record["crs"], "EPSG:31985");
  EXPECT_EQ(record["path"], "src/L7_ETMs.tif");
  EXPECT_EQ(record["bands"], nlohmann::json({3, 2, 1}));
  const std::string cfg = write("l7.yaml", "aois:\n  - name: olinda\n    wkt: POLYGON((-34.90 -8.03, -34.84 -8.03, -34.84 -7.96, "
                                           "-34.90 -7.96, -34.90 -8.03))\ndata:\n  catalog: catalog.jsonl\n  modalities: [s2rgb]\n"
                                           "  min_valid_fraction: 0.2\n");
  const auto p = run(exe() + " prepare " + cfg + " --output " + (dir_ / "out").string());
  ASSERT_EQ(p.code, 0) << p.output;
  EXPECT_NE(p.output.find("1 done"), std::string::npos) << p.output;
  EXPECT_TRUE(fs::exists(dir_ / "out/chips/25S_T012_T004.h5"));
  EXPECT_EQ(run(exe() + " catalog " + src.string() + " --modality lidar --out x.jsonl").code, 2);
}

// Options that are choices take the names of the choice's one table (the config's too)
// and refuse others listing them: catalog --layout, run --partition and --inputs, plan
// --order, status --stage.
TEST_F(Cli, ChoiceOptionsTakeTheNamesOfTheirTables) {
  const fs::path src = dir_ / "coherence";
  fs::create_directories(src);
  write("coherence/N48W090_winter_vv_COH12.tif", "");  // catalogued by its name alone
  const auto c = run(exe() + " catalog " + src.string() + " --layout global-coherence --out " + (dir_ / "c.jsonl").string());
  ASSERT_EQ(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("1 records added"), std::string::npos) << c.output;
  const auto bad = run(exe() + " catalog " + src.string() + " --layout globalcoherence --out x.jsonl");
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find("'globalcoherence' is not a folder layout; one of: files, global-coherence"), std::string::npos)
      << bad.output;
  const auto partition = run(exe() + " run --partition round-robin --output " + (dir_ / "o").string());
  EXPECT_EQ(partition.code, 2) << partition.output;
  EXPECT_NE(partition.output.find("'round-robin' is not a partition; one of: static, dynamic, slurm-array"),
            std::string::npos) << partition.output;
  const auto inputs = run(exe() + " run --inputs stores --output " + (dir_ / "o").string());
  EXPECT_EQ(inputs.code, 2) << inputs.output;
  EXPECT_NE(inputs.output.find("one of: sources, chip-stores"), std::string::npos) << inputs.output;
  const auto order = run(exe() + " plan -q --json --ranks 2 --order morton --output " + (dir_ / "o").string());
  ASSERT_EQ(order.code, 0) << order.output;
  const auto stage = run(exe() + " status --stage prepare --json --output " + (dir_ / "o").string());
  ASSERT_EQ(stage.code, 0) << stage.output;
  EXPECT_EQ(nlohmann::json::parse(stage.output)["stage"], "prepare");
  EXPECT_EQ(run(exe() + " status --stage pretrain --output " + (dir_ / "o").string()).code, 2);
}

// STAC in: a file that is not JSON stops the command naming it; an item lacking an asset
// its collection needs is left out whole, by name, and the command says it had problems;
// a day without new items appends nothing and is no failure.
TEST_F(Cli, CatalogOfStacNamesBadFilesItemsAndAssets) {
  const std::string broken = write("broken.json", "{\"type\": \"FeatureCollection\", \"features\": [");
  const auto bad = run(exe() + " catalog --stac " + broken + " --out " + (dir_ / "c.jsonl").string());
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find(broken + ": not JSON"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir_ / "c.jsonl"));
  const std::string items = write("items.json", R"({"type": "FeatureCollection", "features": [
    {"type": "Feature", "stac_version": "1.0.0", "id": "S1A_IW_GRDH_1SDV_20210704T015813_20210704T015838_038623_048EA1_rtc",
     "collection": "sentinel-1-rtc", "bbox": [-120.5, 36.5, -119.5, 37.5],
     "properties": {"datetime": "2021-07-04T01:58:13Z", "proj:epsg": 32610},
     "assets": {"vv": {"href": "vv.tiff"}}},
    {"type": "Feature", "stac_version": "1.0.0", "id": "S1A_IW_GRDH_1SDV_20210716T015813_20210716T015838_038798_0493C1_rtc",
     "collection": "sentinel-1-rtc", "bbox": [-120.5, 36.5, -119.5, 37.5],
     "properties": {"datetime": "2021-07-16T01:58:13Z", "proj:epsg": 32610},
     "assets": {"vv": {"href": "vv2.tiff"}, "vh": {"href": "vh2.tiff"}}}]})");
  const auto partial = run(exe() + " catalog --stac " + items + " --out " + (dir_ / "c.jsonl").string());
  EXPECT_EQ(partial.code, 1) << partial.output;
  EXPECT_NE(partial.output.find("item S1A_IW_GRDH_1SDV_20210704T015813_20210704T015838_038623_048EA1_rtc: asset vh: missing"),
            std::string::npos) << partial.output;
  EXPECT_NE(partial.output.find("the item is left out for all of s1amp"), std::string::npos) << partial.output;
  EXPECT_NE(partial.output.find("2 records added"), std::string::npos) << "the complete item's VV and VH only: " << partial.output;
  const std::string catalogued = test::read_file(dir_ / "c.jsonl");
  EXPECT_EQ(catalogued.find("vv.tiff"), std::string::npos) << "the incomplete item's VV was catalogued";

  // The nightly `catalog --append ... && run` on a day with nothing new.
  const std::string empty = write("empty.json", R"({"type": "FeatureCollection", "features": []})");
  const auto quiet = run(exe() + " catalog --stac " + empty + " --append --out " + (dir_ / "c.jsonl").string());
  EXPECT_EQ(quiet.code, 0) << quiet.output;
  EXPECT_NE(quiet.output.find("no new items"), std::string::npos) << quiet.output;
  EXPECT_EQ(test::read_file(dir_ / "c.jsonl"), catalogued);
}

// The executable alone, without the stages module beside it: the command line, `plan` and
// `status` work (they never load it), and a command that needs it says which file is
// missing. Its dynamic section names none of the stages' libraries.
TEST_F(Cli, WithoutItsStagesModule) {
  const fs::path alone = dir_ / "eo-pipeline";
  fs::copy_file(exe(), alone);
  EXPECT_EQ(run(alone.string() + " --help").code, 0);
  EXPECT_EQ(run(alone.string() + " run --help").code, 0);
  const auto plan = run(alone.string() + " plan -q --json --output " + (dir_ / "out").string());
  ASSERT_EQ(plan.code, 0) << plan.output;
  EXPECT_GT(nlohmann::json::parse(plan.output)["total"]["chips"].get<int>(), 200);
  const auto status = run(alone.string() + " status --output " + (dir_ / "out").string());
  EXPECT_EQ(status.code, 0) << status.output;
  EXPECT_NE(status.output.find("pending"), std::string::npos) << status.output;
  const auto prepare = run(alone.string() + " prepare --output " + (dir_ / "out").string());
  EXPECT_EQ(prepare.code, 1) << prepare.output;
  EXPECT_NE(prepare.output.find("cannot load the stages module " + (dir_ / "eo-pipeline-stages.so").string()),
            std::string::npos)
      << prepare.output;
  const auto libraries = run("ldd " + alone.string());
  ASSERT_EQ(libraries.code, 0) << libraries.output;
  for (const char* heavy : {"libtorch", "libgdal", "libhdf5", "libfaiss", "libxgboost"})
    EXPECT_EQ(libraries.output.find(heavy), std::string::npos) << heavy << " in\n" << libraries.output;
}

TEST_F(Cli, MissingConfigAndUnknownCommand) {
  const auto r = run(exe() + " plan " + (dir_ / "nope.yaml").string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("nope.yaml"), std::string::npos) << r.output;
  EXPECT_EQ(run(exe() + " frobnicate").code, 2);
  EXPECT_EQ(run(exe()).code, 2);
}

}  // namespace
}  // namespace eo
