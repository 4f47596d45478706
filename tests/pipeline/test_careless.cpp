// Careless and hostile inputs (issue 32), each as a user would give it: no crash, no
// hang, nothing of the user's overwritten, nothing written by a command that fails
// before its work begins; the exit code of the README's convention (0 done, 1 tiles
// failed or a run-time error, 2 usage or config) and a message naming the file, key,
// item or tile.

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <torch/script.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "support/read_file.hpp"
#include "support/run_world.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;


std::string exe() { return EO_PIPELINE_EXE; }

// ---- Inputs that need no world: AOIs, catalogs, STAC, synth, settings, journals.

class Careless : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::fresh_temp_dir(std::string("careless_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }
  // A config of one small square (or `aois`), writing to dir_/out.
  fs::path config(const std::string& more = "", const std::string& aois = "") {
    return write("config.yaml", fmt::format("name: careless\noutput: {}\ngrid:\n  pixel_size: 40\naois:\n{}{}",
                                            (dir_ / "out").string(),
                                            aois.empty() ? "  - name: a\n    wkt: POLYGON((-121.3 36.6, -121.2 36.6, "
                                                           "-121.2 36.7, -121.3 36.7, -121.3 36.6))\n"
                                                         : aois,
                                            more));
  }
  fs::path dir_;
};

TEST_F(Careless, AnAoiNestedDeeperThanAnyGeoJsonNeedsIsRefusedNamingTheFile) {
  // GeometryCollections 100,000 deep (the reader overflowed its stack at about 35,000).
  std::string text;
  for (int i = 0; i < 100000; ++i) text += R"({"type": "GeometryCollection", "geometries": [)";
  text += R"({"type": "Polygon", "coordinates": [[[-121.3, 36.6], [-121.2, 36.6], [-121.2, 36.7], [-121.3, 36.6]]]})";
  for (int i = 0; i < 100000; ++i) text += "]}";
  const fs::path aoi = write("deep.geojson", text);
  const auto r = test::run(exe() + " plan " + config("", "  - name: deep\n    file: " + aoi.string() + "\n").string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(aoi.string() + ": nested more than 64 levels deep"), std::string::npos) << r.output;
  // A few levels are a real GeoJSON's, and read.
  std::string shallow;
  for (int i = 0; i < 5; ++i) shallow += R"({"type": "GeometryCollection", "geometries": [)";
  shallow += R"({"type": "Polygon", "coordinates": [[[-121.3, 36.6], [-121.2, 36.6], [-121.2, 36.7], [-121.3, 36.6]]]})";
  for (int i = 0; i < 5; ++i) shallow += "]}";
  write("deep.geojson", shallow);
  const auto ok = test::run(exe() + " plan -q " + config("", "  - name: deep\n    file: " + aoi.string() + "\n").string());
  EXPECT_EQ(ok.code, 0) << ok.output;
}

TEST_F(Careless, AoiRingsMustBeAreas) {
  const auto plan = [&](const std::string& wkt) {
    return test::run(exe() + " plan " + config("", "  - name: a\n    wkt: " + wkt + "\n").string());
  };
  // A hole larger than its outer ring planned the hole's area (59 chips against 9).
  const auto hole = plan("POLYGON((-121.0 36.5, -120.9 36.5, -120.9 36.6, -121.0 36.6, -121.0 36.5), "
                         "(-121.5 36.0, -120.0 36.0, -120.0 37.0, -121.5 37.0, -121.5 36.0))");
  EXPECT_EQ(hole.code, 2) << hole.output;
  EXPECT_NE(hole.output.find("config.yaml:6: aois[0]: AOI 'a' (inline WKT): polygon 1 is not a valid area: Hole lies outside shell"),
            std::string::npos) << hole.output;
  const auto bow = plan("POLYGON((-121.0 36.5, -120.9 36.6, -120.9 36.5, -121.0 36.6, -121.0 36.5))");
  EXPECT_EQ(bow.code, 2) << bow.output;
  EXPECT_NE(bow.output.find("polygon 1 is not a valid area: Self-intersection"), std::string::npos) << bow.output;
  EXPECT_FALSE(fs::exists(dir_ / "out" / "plan")) << "a refused plan wrote its tiles";
  const auto good = plan("POLYGON((-121.5 36.0, -120.0 36.0, -120.0 37.0, -121.5 37.0, -121.5 36.0), "
                         "(-121.0 36.5, -120.9 36.5, -120.9 36.6, -121.0 36.6, -121.0 36.5))");
  EXPECT_EQ(good.code, 0) << good.output;
}

TEST_F(Careless, SettingsThatCannotWorkAreRefusedWithTheMemoryTheyNeed) {
  // 1 m pixels ran for minutes on 4 chips and reached 2.9 GB.
  std::string yaml = test::read_file(config());
  yaml.replace(yaml.find("pixel_size: 40"), 14, "pixel_size: 1");
  const fs::path fine = write("fine.yaml", yaml);
  const auto refused = test::run(exe() + " plan " + fine.string());
  EXPECT_EQ(refused.code, 2) << refused.output;
  EXPECT_NE(refused.output.find("fine.yaml:4: grid.pixel_size: 1 m is finer than 2.5 m"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("4480x4480 pixels, 1.3 GB per channel"), std::string::npos) << refused.output;
}

TEST_F(Careless, FifosAndDevicesAreNotReadAsFiles) {
  // /dev/zero as the config never ends; a FIFO as the AOI blocks until someone writes.
  const auto zero = test::run("timeout 60 " + exe() + " plan /dev/zero");
  EXPECT_EQ(zero.code, 2) << zero.output;
  EXPECT_NE(zero.output.find("/dev/zero: not a regular file"), std::string::npos) << zero.output;
  const fs::path fifo = dir_ / "aoi.geojson";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const auto aoi = test::run("timeout 60 " + exe() + " plan " + config("", "  - name: a\n    file: " + fifo.string() + "\n").string());
  EXPECT_EQ(aoi.code, 2) << aoi.output;
  EXPECT_NE(aoi.output.find("config.yaml:7: aois[0].file: not a regular file (a FIFO, a device or a folder): " + fifo.string()),
            std::string::npos) << aoi.output;
}

TEST_F(Careless, LongInputIsCutInMessages) {
  const std::string megabyte(1 << 20, 'x');
  const auto r = test::run(exe() + " plan " + config("run:\n  dtype: " + megabyte + "\n").string());
  EXPECT_EQ(r.code, 2) << r.output.substr(0, 2000);
  EXPECT_NE(r.output.find("(1048576 characters in all)' is not an embedding dtype"), std::string::npos) << r.output.substr(0, 2000);
  EXPECT_LT(r.output.size(), 4000u) << r.output.substr(0, 2000);
}

TEST_F(Careless, CatalogFootprintsMustBeInDegrees) {
  // A footprint in metres (a common mistake) made `catalog` and `run` walk 1.2e10 cells.
  const auto record = [](const std::string& footprint) {
    return R"({"path": "x.tif", "modality": "s2rgb", "season": 1, "crs": "EPSG:32610", "footprint": )" + footprint + "}\n";
  };
  const std::string good = record("[-121.3, 36.6, -121.2, 36.7]");
  for (const auto& [footprint, says] :
       std::vector<std::pair<std::string, std::string>>{{"[600000, 4000000, 709800, 4109800]", "is not in degrees (values this large look like metres"},
                                                        {"[-1e300, -80, 1e300, 80]", "is not in degrees"},
                                                        {"[-121.2, 36.6, -121.3, 36.7]", "is inverted"},
                                                        {"[-121.3, 36.7, -121.2, 36.6]", "is inverted"},
                                                        {"[-121.3, 36.6, -121.2, 95]", "is outside the Earth"}}) {
    const fs::path catalog = write("catalog.jsonl", good + record(footprint));
    const auto r = test::run("timeout 120 " + exe() + " prepare " + config("data:\n  catalog: " + catalog.string() + "\n").string());
    EXPECT_EQ(r.code, 2) << footprint << ": " << r.output;
    EXPECT_NE(r.output.find(catalog.string() + ":2: bad record: footprint ["), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(says), std::string::npos) << footprint << ": " << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "out" / "run.lock")) << "prepare took the output before it read its catalog";
  }
}

// A STAC item of Planetary Computer's sentinel-1-rtc with `bbox`.
std::string rtc_item(const std::string& id, const std::string& bbox) {
  return R"({"type": "Feature", "stac_version": "1.0.0", "id": ")" + id + R"(", "collection": "sentinel-1-rtc", "bbox": )" + bbox +
         R"(, "properties": {"datetime": "2021-07-04T01:58:13Z", "proj:epsg": 32610},
           "assets": {"vv": {"href": "vv.tiff"}, "vh": {"href": "vh.tiff"}}, "links": []})";
}

TEST_F(Careless, StacBboxesMustBeInDegreesAndMayCrossTheAntimeridian) {
  const fs::path metres = write("metres.json", R"({"type": "FeatureCollection", "features": [)" +
                                                   rtc_item("in-metres", "[600000, 4000000, 709800, 4109800]") + "]}");
  const auto r = test::run(exe() + " catalog --stac " + metres.string() + " --out " + (dir_ / "c.jsonl").string());
  EXPECT_EQ(r.code, 2) << r.output;  // nothing could be catalogued
  EXPECT_NE(r.output.find(metres.string() + ": item in-metres: footprint [600000, 4000000, 709800, 4109800] is not in degrees"),
            std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "c.jsonl"));
  // STAC writes a bbox across the antimeridian west > east: that is degrees, and kept.
  const fs::path across = write("across.json", R"({"type": "FeatureCollection", "features": [)" +
                                                   rtc_item("across", "[179.5, 60.0, -179.5, 61.0]") + "]}");
  const auto a = test::run(exe() + " catalog --stac " + across.string() + " --out " + (dir_ / "c.jsonl").string());
  EXPECT_EQ(a.code, 0) << a.output;
  std::ifstream in(dir_ / "c.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(json::parse(line)["footprint"], json::parse("[179.5, 60.0, 180.5, 61.0]")) << line;
}

TEST_F(Careless, AChainOfChildCatalogsAsLongAsTheDiskHoldsIsWalked) {
  // 20,000 catalogs, each the child of the one before (the walk overflowed its stack at
  // about 15,000); the last holds an item.
  constexpr int kChain = 20000;
  for (int i = 0; i < kChain; ++i) {
    const std::string link = i + 1 < kChain ? fmt::format(R"({{"rel": "child", "href": "c{}.json"}})", i + 1)
                                            : R"({"rel": "item", "href": "item.json"})";
    write(fmt::format("chain/c{}.json", i),
          fmt::format(R"({{"type": "Catalog", "id": "c{}", "stac_version": "1.0.0", "description": "", "links": [{}]}})", i, link));
  }
  write("chain/item.json", rtc_item("at-the-end", "[-121.3, 36.6, -121.2, 36.7]"));
  const auto r = test::run(exe() + " catalog --stac " + (dir_ / "chain" / "c0.json").string() + " --out " + (dir_ / "c.jsonl").string());
  EXPECT_EQ(r.code, 0) << r.output.substr(0, 2000);
  EXPECT_NE(r.output.find("2 records added"), std::string::npos) << r.output.substr(0, 2000);
}

TEST_F(Careless, AnOutputThatIsAnInputIsRefused) {
  const fs::path stac = write("items.json", R"({"type": "FeatureCollection", "features": [)" +
                                                rtc_item("one", "[-121.3, 36.6, -121.2, 36.7]") + "]}");
  const std::string before = test::read_file(stac);
  for (const std::string& out : {stac.string(), (dir_ / "." / "items.json").string()}) {
    const auto r = test::run(exe() + " catalog --stac " + stac.string() + " --out " + out);
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("the output " + out + " is the input " + stac.string() + " (--stac)"), std::string::npos) << r.output;
    EXPECT_EQ(test::read_file(stac), before) << "the STAC file was overwritten";
  }
  // Through a link, too.
  fs::create_symlink(stac, dir_ / "link.jsonl");
  const auto linked = test::run(exe() + " catalog --stac " + stac.string() + " --out " + (dir_ / "link.jsonl").string());
  EXPECT_EQ(linked.code, 2) << linked.output;
  EXPECT_EQ(test::read_file(stac), before);
}

TEST_F(Careless, SynthDoesNotReplaceAWorldItDidNotMake) {
  const fs::path world = dir_ / "out" / "world";
  const fs::path mine = write("out/world/catalog.jsonl", "{\"a user's\": \"catalog\"}\n");
  const std::string settings = "synth:\n  resolution_scale: 8\n  seed: 3\n";
  const auto refused = test::run(exe() + " synth -q " + config(settings).string());
  EXPECT_EQ(refused.code, 2) << refused.output;
  EXPECT_NE(refused.output.find(mine.string() + " already holds a catalog that synth did not write"), std::string::npos)
      << refused.output;
  EXPECT_EQ(test::read_file(mine), "{\"a user's\": \"catalog\"}\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(world), {}), 1) << "synth wrote beside the user's catalog";
  // --force replaces it; synth again with the same settings (the demo run twice) goes ahead.
  const auto forced = test::run(exe() + " synth -q --force " + config(settings).string());
  ASSERT_EQ(forced.code, 0) << forced.output;
  const std::string synthesised = test::read_file(mine);
  EXPECT_NE(synthesised.find("s2rgb"), std::string::npos);
  const auto again = test::run(exe() + " synth -q " + config(settings).string());
  EXPECT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(test::read_file(mine), synthesised);
  // Other settings make another world: refused without --force.
  const auto other = test::run(exe() + " synth -q " + config("synth:\n  resolution_scale: 8\n  seed: 4\n").string());
  EXPECT_EQ(other.code, 2) << other.output;
  EXPECT_NE(other.output.find("already holds a catalog of a world other settings made"), std::string::npos) << other.output;
  EXPECT_EQ(test::read_file(mine), synthesised);
}

TEST_F(Careless, AJournalRecordNoTileCanHaveIsLeftOutAndItsTileRedone) {
  const auto planned = test::run(exe() + " plan -q " + config().string());
  ASSERT_EQ(planned.code, 0) << planned.output;
  std::ifstream tiles(dir_ / "out" / "plan" / "tiles.jsonl");
  std::string first;
  ASSERT_TRUE(std::getline(tiles, first));
  const std::string tile = json::parse(first)["tile"];
  const fs::path journal = write("out/journal/run-20261206T000000Z-p1-r0.jsonl",
                                 json{{"stage", "run"}, {"tile", tile}, {"status", "done"}, {"chips", -1000000}}.dump() + "\n");
  const auto r = test::run(exe() + " status --json " + config().string());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find(journal.string() + ":1: record left out: tile " + tile + ": -1000000 chips"), std::string::npos)
      << r.output;
  const auto j = json::parse(r.output.substr(r.output.find("{\n")));
  EXPECT_EQ(j["total"]["done"], 0) << j.dump();
  EXPECT_EQ(j["total"]["chips"], 0) << j.dump();
  EXPECT_EQ(j["total"]["pending"], j["total"]["tiles"]) << j.dump();
}

// `status` opened the output's lock for writing, so it failed on a read-only output.
TEST_F(Careless, ReadOnlyOutputIsReadByStatus) {
  const auto planned = test::run(exe() + " plan -q " + config().string());
  ASSERT_EQ(planned.code, 0) << planned.output;
  write("out/run.lock", "eo-pipeline run (2 ranks) by pid 1 on a host since 2026-12-06T00:00:00Z\n");  // as a run leaves it
  const fs::path mounted = dir_ / "read_only";
  fs::create_directories(mounted);
  if (::mount((dir_ / "out").c_str(), mounted.c_str(), nullptr, MS_BIND, nullptr) != 0)
    GTEST_SKIP() << "bind mounts need root with CAP_SYS_ADMIN";
  if (::mount(nullptr, mounted.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
    ::umount(mounted.c_str());
    GTEST_SKIP() << "a read-only remount is not allowed here";
  }
  const auto r = test::run(exe() + " status --verify " + config().string() + " --output " + mounted.string());
  const bool writable = ::access(mounted.c_str(), W_OK) == 0 && std::ofstream(mounted / "probe").good();
  ::umount(mounted.c_str());
  ASSERT_FALSE(writable) << "the mount is not read-only";
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("pending"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("in progress"), std::string::npos) << r.output;
}

// ---- Inputs of a world with a model: the cube, the model, the inputs, the lock.

class CarelessRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new test::RunWorld("careless", test::squares_aoi(2, 0.1));
    const auto ref = test::run(world_->command("reference", 2));
    if (ref.code != 0) throw std::runtime_error("the reference run failed: " + ref.output);
  }
  static void TearDownTestSuite() { delete world_; }

  // The world's config with each `from` replaced by `to`, as NAME.yaml.
  static fs::path config_with(const std::string& name, const std::vector<std::pair<std::string, std::string>>& edits) {
    std::string yaml = test::read_file(world_->world->config_file);
    for (const auto& [from, to] : edits) {
      const auto at = yaml.find(from);
      if (at == std::string::npos) throw std::runtime_error(from + " not in " + yaml);
      yaml.replace(at, from.size(), to);
    }
    const fs::path file = world_->dir / (name + ".yaml");
    std::ofstream(file) << yaml;
    return file;
  }
  static std::string run_in(const fs::path& config, const std::string& output, const std::string& more = "") {
    return fmt::format("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec -n 2 --oversubscribe {} run {} --output {} {}",
                       exe(), config.string(), (world_->dir / output).string(), more);
  }
  static std::string checkpoint() { return (world_->world->config.output / "pretrain/checkpoints/step-000004.pt").string(); }

  static test::RunWorld* world_;
};
test::RunWorld* CarelessRun::world_ = nullptr;

TEST_F(CarelessRun, ADamagedChunkIsNamedFoundByVerifyAndRedone) {
  const auto ran = test::run(world_->command("damaged", 2));
  ASSERT_EQ(ran.code, 0) << ran.output;
  fs::path chunk;
  for (const auto& e : fs::recursive_directory_iterator(fs::canonical(world_->cube("damaged"))))
    if (e.is_regular_file() && e.path().parent_path().filename() == "fused" && std::isdigit(e.path().filename().string()[0]))
      chunk = e.path();
  ASSERT_FALSE(chunk.empty());
  fs::resize_file(chunk, 0);  // a 0-byte chunk: render and similar crashed inside blosc
  const std::string named = (world_->cube("damaged") / fs::relative(chunk, fs::canonical(world_->cube("damaged")))).string();

  const std::string args = world_->world->config_file.string() + " --output " + (world_->dir / "damaged").string();
  const auto render = test::run(exe() + " render -q " + args);
  EXPECT_EQ(render.code, 1) << render.output;
  EXPECT_NE(render.output.find(named + ": not a chunk of"), std::string::npos) << render.output;
  const auto similar = test::run(exe() + " similar -q " + args + " --lonlat=-121.25,36.65");
  EXPECT_EQ(similar.code, 1) << similar.output;
  EXPECT_NE(similar.output.find(named + ": not a chunk of"), std::string::npos) << similar.output;

  const auto verify = test::run(exe() + " status --verify " + args);
  EXPECT_EQ(verify.code, 1) << verify.output;
  EXPECT_NE(verify.output.find(": " + chunk.string() + ": 0 bytes,"), std::string::npos) << verify.output;
  EXPECT_NE(verify.output.find("1 damaged"), std::string::npos) << verify.output;
  // A plain run trusts the journal; --verify redoes the damaged tile, and only it.
  const auto redo = test::run(run_in(world_->world->config_file, "damaged", "--verify"));
  EXPECT_EQ(redo.code, 0) << redo.output;
  EXPECT_EQ(world_->report("damaged")["done"].get<int>() + world_->report("damaged")["nodata"].get<int>(), 1);
  const auto again = test::run(exe() + " status --verify " + args);
  EXPECT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find(" 0 damaged"), std::string::npos) << again.output;
  EXPECT_EQ(test::cube_difference(test::cube_files(world_->cube("reference")), test::cube_files(world_->cube("damaged"))), "");
}

TEST_F(CarelessRun, AModelThatCannotBeLoadedLeavesTheOutputAsItWas) {
  const auto ran = test::run(world_->command("model", 2));
  ASSERT_EQ(ran.code, 0) << ran.output;
  const fs::path link = world_->dir / "model" / "cube.zarr";
  const fs::path named = fs::read_symlink(link);
  const auto cubes = std::distance(fs::directory_iterator(world_->dir / "model" / "cubes"), {});
  // The checkpoint's copy, cut short (its sidecar and statistics beside it, whole).
  const fs::path broken = world_->dir / "broken";
  fs::copy(fs::path(checkpoint()).parent_path(), broken, fs::copy_options::recursive);
  fs::resize_file(broken / "step-000004.pt", 100);
  const auto r = test::run(run_in(config_with("broken", {{checkpoint(), (broken / "step-000004.pt").string()}}), "model"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find((broken / "step-000004.pt").string()), std::string::npos) << r.output;
  EXPECT_EQ(fs::read_symlink(link), named) << "OUTPUT/cube.zarr was pointed at the broken model's cube";
  EXPECT_EQ(std::distance(fs::directory_iterator(world_->dir / "model" / "cubes"), {}), cubes) << "a cube was made";
}

TEST_F(CarelessRun, AnEncoderThatReturnsNaNFailsItsTilesSayingSo) {
  const fs::path exported = world_->dir / "nan_model";
  const auto e = test::run(fmt::format("{} export -q {} --out {}", exe(), world_->world->config_file.string(), exported.string()));
  ASSERT_EQ(e.code, 0) << e.output;
  {
    torch::jit::Module m = torch::jit::load((exported / "s2rgb.pt").string());
    torch::NoGradGuard no_grad;
    for (torch::Tensor p : m.parameters()) p.fill_(std::nanf(""));
    m.save((exported / "s2rgb.pt").string());
  }
  const std::string yaml = test::read_file(world_->world->config_file);
  const auto at = yaml.find("  checkpoint: ");
  const auto r = test::run(run_in(config_with("nan", {{yaml.substr(at, yaml.find('\n', at) - at), "  torchscript: " + exported.string()}}),
                                  "nan"));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("embed: the model's s2rgb encoder returned nan for a chip with data"), std::string::npos) << r.output;
  const auto report = world_->report("nan");
  EXPECT_EQ(report["done"].get<int>(), 0) << report.dump();
  EXPECT_GT(report["failed"].get<int>(), 0) << report.dump();
}

TEST_F(CarelessRun, InputsThatAreNotFilesFailTheirTilesInsteadOfBlocking) {
  // A FIFO blocked GDAL's open forever, holding the run lock; so did /vsistdin/.
  const fs::path fifo = world_->dir / "fifo.tif";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const fs::path original = world_->world->config.data.catalog;
  // Every tile's S2 scenes at `path`, in an output of its own.
  const auto run_with_s2_at = [&](const std::string& path, const std::string& name) {
    std::ifstream in(original);
    std::string text, line;
    while (std::getline(in, line)) {
      json r = json::parse(line);
      if (r["modality"] == "s2rgb") r["path"] = path;
      text += r.dump() + "\n";
    }
    const fs::path catalog = original.parent_path() / ("catalog_" + name + ".jsonl");
    std::ofstream(catalog) << text;
    return test::run("timeout 600 env " + run_in(config_with(name, {{original.string(), catalog.string()}}), name) +
                     " < /dev/null");
  };
  const auto r = run_with_s2_at(fifo.string(), "fifo");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(fifo.string() + ": not a regular file"), std::string::npos) << r.output;
  const auto stdin_run = run_with_s2_at("/vsistdin/", "stdin");
  EXPECT_EQ(stdin_run.code, 1) << stdin_run.output;
  EXPECT_NE(stdin_run.output.find("/vsistdin/: standard input is not an input"), std::string::npos) << stdin_run.output;
  // A FIFO as a label raster, too.
  const auto labels = test::run("timeout 300 " + exe() + " fewshot -q " + world_->world->config_file.string() + " --output " +
                                (world_->dir / "reference").string() + " --labels " + fifo.string());
  EXPECT_EQ(labels.code, 2) << labels.output;
  EXPECT_NE(labels.output.find("labels: " + fifo.string() + ": not a regular file"), std::string::npos) << labels.output;
  const auto status = test::run(exe() + " status " + world_->world->config_file.string() + " --output " +
                                (world_->dir / "fifo").string());
  EXPECT_EQ(status.output.find("in progress"), std::string::npos) << status.output;
}

TEST_F(CarelessRun, PrepareTakesTheLockOfRun) {
  const fs::path out = world_->dir / "locked";
  const auto r = test::run(fmt::format(
      "{} > {}/first.log 2>&1 & first=$!; "
      "for i in $(seq 1000); do [ -s {}/run.lock ] && break; sleep 0.02; done; "
      "{} prepare {} --output {} 2>&1; echo \"prepare exit $?\"; {} status --stage prepare {} --output {}; kill -9 $first; "
      "wait $first",
      world_->command("locked", 0, "static", "EO_FAILPOINT=run-locked@1=sleep:60"), world_->dir.string(), out.string(),
      exe(), world_->world->config_file.string(), out.string(), exe(), world_->world->config_file.string(), out.string()));
  EXPECT_NE(r.output.find("prepare exit 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("prepare refused: " + out.string() + " is in use by another run (eo-pipeline run"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("in progress: " + out.string() + " is in use (eo-pipeline run"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out / "prepare")) << "the refused prepare wrote to the output";
}

TEST_F(CarelessRun, ABatchWhoseActivationsExceedTheMachineIsRefusedUpFront) {
  // pretrain.batch 65536 died with LibTorch's stack trace after trying to allocate 39 GB.
  const fs::path checkpoints = fs::path(checkpoint()).parent_path();
  std::map<std::string, std::string> before;
  for (const auto& e : fs::directory_iterator(checkpoints)) before[e.path().filename()] = test::read_file(e.path());
  const fs::path config = config_with("huge_batch", {{"batch: 8", "batch: 65536"}});
  const auto r = test::run(fmt::format("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec -n 2 --oversubscribe "
                                       "{} pretrain {}", exe(), config.string()));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("pretrain.batch 65536: the nano model's activations need at least"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("c10::Error"), std::string::npos) << r.output;
  std::map<std::string, std::string> after;
  for (const auto& e : fs::directory_iterator(checkpoints)) after[e.path().filename()] = test::read_file(e.path());
  EXPECT_TRUE(before == after) << "the refused pretraining changed the checkpoints";
}

TEST_F(CarelessRun, AWidthTheAttentionHeadsDoNotDivideIsRefused) {
  const fs::path config = config_with("odd_width", {{"model:\n", "model:\n  dim: 99\n"}});
  const auto r = test::run(exe() + " pretrain " + config.string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("model.dim 99 is not a multiple of the nano preset's 2 attention heads"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("c10::Error"), std::string::npos) << r.output;
}

// `status` reads the lock and changes nothing of it (that it answers on a read-only
// mount is Careless.ReadOnlyOutputIsReadByStatus).
TEST_F(CarelessRun, StatusChangesNothingOfTheOutput) {
  const fs::path out = world_->dir / "reference";
  const std::string lock = test::read_file(out / "run.lock");
  const auto time = fs::last_write_time(out / "run.lock");
  const auto r = test::run(exe() + " status " + world_->world->config_file.string() + " --output " + out.string());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::read_file(out / "run.lock"), lock);
  EXPECT_EQ(fs::last_write_time(out / "run.lock"), time);
}

}  // namespace
}  // namespace eo
