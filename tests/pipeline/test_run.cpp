// `eo-pipeline run`, the main job, on a synthetic world with a briefly trained model:
// the same cube bit for bit from 1 or more ranks, static or dynamic, more ranks than
// tiles; the cube holds what the model computes for each chip, read back by zarr-python,
// xarray and GDAL; a rank killed at random moments, or the whole job killed in the middle
// of writing a chunk, then resumed, gives the cube of an uninterrupted run.

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>

#include "pipeline/core/files.hpp"
#include "pipeline/core/journal.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/chip/normalise.hpp"
#include "stages/cube/cube.hpp"
#include "stages/model/embed.hpp"
#include "support/run_world.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class RunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new test::RunWorld("run", test::squares_aoi(6, 0.1));
    const auto r = test::run(world_->command("reference", 0));
    ASSERT_EQ(r.code, 0) << r.output;
    reference_ = new std::map<std::string, std::string>(test::cube_files(world_->cube("reference")));
  }
  static void TearDownTestSuite() {
    delete reference_;
    delete world_;
  }
  static test::RunWorld* world_;
  static std::map<std::string, std::string>* reference_;
};
test::RunWorld* RunTest::world_ = nullptr;
std::map<std::string, std::string>* RunTest::reference_ = nullptr;

TEST_F(RunTest, TheSameCubeFromAnyNumberOfRanksAndEitherPartition) {
  const std::size_t tiles = world_->world->plan.tiles.size();
  ASSERT_GE(tiles, 5u);
  const auto report = world_->report("reference");
  EXPECT_EQ(report["done"].get<std::size_t>() + report["nodata"].get<std::size_t>(), tiles);
  EXPECT_GT(report["chips_embedded"].get<int>(), 0);
  struct Variant { int ranks; const char* partition; };
  for (const Variant v : {Variant{2, "static"}, Variant{2, "dynamic"}, Variant{static_cast<int>(tiles) + 2, "dynamic"},
                          Variant{static_cast<int>(tiles) + 2, "static"}}) {
    const std::string output = fmt::format("np{}_{}", v.ranks, v.partition);
    SCOPED_TRACE(output);
    const auto r = test::run(world_->command(output, v.ranks, v.partition));
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(test::cube_difference(*reference_, test::cube_files(world_->cube(output))), "");
    world_->expect_each_tile_once(output);
    EXPECT_EQ(world_->report(output)["chips_embedded"], report["chips_embedded"]);
  }
  // A second run finds everything done and changes nothing.
  const auto again = test::run(world_->command("np2_static", 2));
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(world_->report("np2_static")["skipped_done"].get<std::size_t>(), tiles);
  EXPECT_EQ(test::cube_difference(*reference_, test::cube_files(world_->cube("np2_static"))), "");
}

// A new model need not warp again: `run --inputs chip-stores` embeds the chips `prepare`
// stored and writes the cube from sources bit for bit. A tile whose inputs changed since
// (a touched file: new fingerprint, same pixels) or whose store is damaged is warped from
// its sources instead, and the cube is still the same.
TEST_F(RunTest, FromChipStoresTheSameCubeAsFromSources) {
  const std::size_t tiles = world_->world->plan.tiles.size();
  const fs::path chips = world_->dir / "out" / "chips";
  std::size_t stores = 0;
  for (const auto& e : fs::directory_iterator(chips)) stores += e.path().extension() == ".h5";
  ASSERT_GT(stores, 2u);
  const auto r = test::run(world_->command("out", 2) + " --inputs chip-stores");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::cube_difference(*reference_, test::cube_files(world_->cube("out"))), "");
  json report = world_->report("out");
  EXPECT_EQ(report["inputs"], "chip-stores");
  EXPECT_EQ(report["tiles_from_chip_stores"].get<std::size_t>(), stores);
  EXPECT_EQ(report["tiles_from_sources"].get<std::size_t>(), tiles - stores) << "tiles without data have no store";

  // One source file touched (the tile's fingerprint changes) and one store damaged.
  const TilePlan* touched = nullptr;
  fs::path source;
  for (const TilePlan& t : world_->world->plan.tiles)
    if (fs::exists(chips / (t.id.str() + ".h5")) && !touched) {
      touched = &t;
      source = tile_sources(world_->world->catalog, t, world_->world->config.data.modalities).front();
    }
  ASSERT_TRUE(touched);
  std::set<std::string> reaches;  // the tiles that read the touched file
  for (const TilePlan& t : world_->world->plan.tiles)
    for (const auto& f : tile_sources(world_->world->catalog, t, world_->world->config.data.modalities))
      if (f == source) reaches.insert(t.id.str());
  const auto mtime = fs::last_write_time(source);
  fs::last_write_time(source, mtime + std::chrono::seconds(10));
  std::string damaged;
  for (const TilePlan& t : world_->world->plan.tiles)
    if (fs::exists(chips / (t.id.str() + ".h5")) && !reaches.count(t.id.str()) && damaged.empty()) damaged = t.id.str();
  ASSERT_FALSE(damaged.empty());
  fs::rename(chips / (damaged + ".h5"), chips / (damaged + ".h5.saved"));
  std::ofstream(chips / (damaged + ".h5")) << "not HDF5";
  fs::remove_all(world_->dir / "out" / "journal");  // every tile again
  const auto again = test::run(world_->command("out", 2) + " --inputs chip-stores");
  fs::last_write_time(source, mtime);
  fs::rename(chips / (damaged + ".h5.saved"), chips / (damaged + ".h5"));
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(test::cube_difference(*reference_, test::cube_files(world_->cube("out"))), "");
  report = world_->report("out");
  std::size_t stale = 0;
  for (const auto& id : reaches) stale += fs::exists(chips / (id + ".h5"));
  EXPECT_EQ(report["tiles_from_chip_stores"].get<std::size_t>(), stores - stale - 1);
  EXPECT_EQ(report["tiles_from_sources"].get<std::size_t>(), tiles - stores + stale + 1);
  EXPECT_NE(again.output.find("made from other inputs"), std::string::npos) << again.output;
  EXPECT_NE(again.output.find(damaged + ": the chip store cannot be read"), std::string::npos) << again.output;
}

// What the model computes for each chip, found here without the run driver (read_tile
// and the Embedder, fused as the mean of the modalities present), is what zarr-python,
// xarray and GDAL read from the cube, at the place the grid gives the chip.
// What the cube of `world`'s chips embedded by `card` (normalised with `norm`) must hold,
// as tests/python/check_cube.py reads it; `embedded` and `partial` count the chips with
// data and those with a modality missing.
json expected_cube(const test::TestWorld& world, const ModelCard& card, const Normalisation& norm, const fs::path& cube,
                   int& embedded, int& partial) {
  const Config& config = world.config;
  const Embedder embedder(card, config.model, config.data.modalities, 2);  // the runs used 1 thread per rank
  const std::size_t dim = static_cast<std::size_t>(embedder.dim());
  json chips = json::array();
  embedded = partial = 0;
  for (const TilePlan& tile : world.plan.tiles) {
    read_tile(world.catalog, tile, TileReadOptions::from(config.pixel_size, config.data, config.warp, 1), [&](ChipBatch&& row) {
      std::vector<bool> use(row.chips.size());
      for (std::size_t k = 0; k < use.size(); ++k) use[k] = chip_has_data(row, k, config.data.min_valid_fraction);
      const auto emb = embedder.embed(row, use, norm, config.data.min_valid_fraction, config.run.batch);
      for (std::size_t k = 0; k < row.chips.size(); ++k) {
        json values = json::object();
        std::vector<float> sum(dim, 0.0f);
        int present = 0;
        for (const auto& [m, v] : emb) {
          if (std::isnan(v[k * dim])) {
            values[info(m).name] = nullptr;
            continue;
          }
          values[info(m).name] = std::vector<float>(v.begin() + static_cast<long>(k * dim), v.begin() + static_cast<long>((k + 1) * dim));
          for (std::size_t i = 0; i < dim; ++i) sum[i] += v[k * dim + i];
          ++present;
        }
        if (present > 0) {
          std::vector<float> fused(dim);
          for (std::size_t i = 0; i < dim; ++i) fused[i] = sum[i] / static_cast<float>(present);
          values["fused"] = fused;
        } else {
          values["fused"] = nullptr;
        }
        embedded += present > 0;
        partial += present > 0 && present < static_cast<int>(emb.size());
        const LonLatBox b = lonlat_bounds(row.chips[k].zone, row.chips[k].bounds());
        chips.push_back({{"zone", row.chips[k].zone.name()}, {"row", row.chips[k].row}, {"col", row.chips[k].col},
                         {"status", present > 0 ? 1 : 2}, {"values", values},
                         {"lonlat_bounds", {b.lon0, b.lat0, b.lon1, b.lat1}}});
      }
    });
  }
  return {{"cube", cube.string()}, {"dtype", "float32"}, {"dim", dim},
          {"arrays", {"s2rgb", "s1amp", "s1coh", "fused"}}, {"chips", chips}};
}

// tests/python/check_cube.py's verdict on `expected`, written to `file`.
void expect_cube_holds(const json& expected, const fs::path& file) {
  std::ofstream(file) << expected.dump();
  const auto r = test::run(fmt::format("/usr/bin/python3 {}/tests/python/check_cube.py {}", EO_SOURCE_DIR, file.string()));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("CUBE OK"), std::string::npos) << r.output;
}

TEST_F(RunTest, TheCubeHoldsWhatTheModelComputes) {
  const ModelCard card = find_model(world_->world->config);
  const Normalisation norm = Normalisation::load(card.checkpoint.parent_path() / "normalisation.json");
  int embedded = 0, partial = 0;
  const json expected = expected_cube(*world_->world, card, norm, world_->cube("reference"), embedded, partial);
  EXPECT_GT(embedded, 20);
  EXPECT_GT(partial, 0) << "no chip with a modality missing: the world does not test that";
  const fs::path file = world_->dir / "expected.json";
  expect_cube_holds(expected, file);
  // The same through the geoemb: convention alone, and the cube's STAC (with the source
  // scenes of each tile linked) true to it.
  const auto geoemb = test::run(fmt::format("/usr/bin/python3 {}/tests/python/read_geoemb.py {}", EO_SOURCE_DIR, file.string()));
  EXPECT_EQ(geoemb.code, 0) << geoemb.output;
  EXPECT_NE(geoemb.output.find("arrays: ['fused', 's1amp', 's1coh', 's2rgb']"), std::string::npos) << geoemb.output;
  const auto stac = test::run(fmt::format("/usr/bin/python3 {}/tests/python/check_stac.py {}", EO_SOURCE_DIR,
                                          world_->cube("reference").string()));
  EXPECT_EQ(stac.code, 0) << stac.output;
  EXPECT_NE(stac.output.find("STAC OK"), std::string::npos) << stac.output;
  EXPECT_EQ(world_->report("reference")["stac"]["items"], world_->report("reference")["done"]);
}

// A model applies anywhere: this world's checkpoint embeds another area (a world of its
// own, another catalog) into another output. The statistics it was trained with travel
// beside it (pruning older checkpoints left them): `run` neither computes the other
// output's statistics nor refuses them, and the cube holds the other area's chips
// normalised as in training.
TEST_F(RunTest, AModelAppliesToAnotherAreaInAnotherOutput) {
  const ModelCard card = find_model(world_->world->config);
  const fs::path checkpoints = card.checkpoint.parent_path();
  EXPECT_FALSE(fs::exists(checkpoints / "step-000002.pt")) << "older checkpoints are pruned";
  ASSERT_TRUE(fs::exists(checkpoints / "normalisation.json")) << "the statistics did not stay beside the checkpoints";
  const Normalisation trained = Normalisation::load(checkpoints / "normalisation.json");
  const auto elsewhere = test::make_world("elsewhere", test::squares_aoi(2, 0.1, 37.4),
                                          fmt::format("model:\n  checkpoint: {}\n", card.checkpoint.string()), 80, 8, 11,
                                          0.25);
  const auto r = test::run(fmt::format("{} run {}", EO_PIPELINE_EXE, elsewhere->config_file.string()));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_FALSE(fs::exists(elsewhere->config.output / "normalisation.json")) << "statistics computed for nothing";
  // The other area's own statistics differ: normalised with them, the chips would embed otherwise.
  const Normalisation own = compute_normalisation(elsewhere->catalog, elsewhere->config.data.modalities,
                                                  elsewhere->config.data.normalisation_files);
  EXPECT_NE(own.hash(), trained.hash());
  int embedded = 0, partial = 0;
  const json expected = expected_cube(*elsewhere, card, trained, elsewhere->config.output / "cube.zarr", embedded, partial);
  EXPECT_GT(embedded, 5);
  expect_cube_holds(expected, elsewhere->dir / "expected.json");
  fs::remove_all(elsewhere->dir);
}

// `export` writes the model as TorchScript; `run` with model.torchscript pointing at it
// (the way a user brings an encoder made in PyTorch) embeds every chip as the checkpoint
// did, into a cube of its own model version.
TEST_F(RunTest, AnExportedModelRunsAsTorchScriptToTheSameEmbeddings) {
  const fs::path exported = world_->dir / "exported";
  const auto e = test::run(fmt::format("{} export -q {} --out {}", EO_PIPELINE_EXE, world_->world->config_file.string(),
                                       exported.string()));
  ASSERT_EQ(e.code, 0) << e.output;
  for (const char* file : {"s2rgb.pt", "s1amp.pt", "s1coh.pt", "normalisation.json", "model.json"})
    EXPECT_TRUE(fs::exists(exported / file)) << file;
  // The config with the TorchScript folder in place of the checkpoint.
  std::ifstream in(world_->world->config_file);
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = yaml.find("  checkpoint: ");
  ASSERT_NE(at, std::string::npos);
  yaml.replace(at, yaml.find('\n', at) - at, "  torchscript: " + exported.string());
  const fs::path config = world_->dir / "torchscript.yaml";
  std::ofstream(config) << yaml;
  const auto r = test::run(fmt::format("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec -n 2 "
                                       "--oversubscribe {} run {} --output {}",
                                       EO_PIPELINE_EXE, config.string(), (world_->dir / "torchscript").string()));
  ASSERT_EQ(r.code, 0) << r.output;
  const auto compared = test::run(fmt::format("/usr/bin/python3 {}/tests/python/compare_cubes.py {} {} 1e-5", EO_SOURCE_DIR,
                                              world_->cube("reference").string(), world_->cube("torchscript").string()));
  EXPECT_NE(compared.output.find("CUBES MATCH"), std::string::npos) << compared.output;
  EXPECT_NE(fs::canonical(world_->cube("torchscript")).filename(), fs::canonical(world_->cube("reference")).filename());
  // A folder without encoders is refused, naming it.
  fs::create_directories(world_->dir / "empty");
  yaml.replace(yaml.find(exported.string()), exported.string().size(), (world_->dir / "empty").string());
  std::ofstream(config) << yaml;
  const auto refused = test::run(fmt::format("{} run {} --output {}", EO_PIPELINE_EXE, config.string(),
                                             (world_->dir / "refused").string()));
  EXPECT_EQ(refused.code, 2) << refused.output;
  EXPECT_NE(refused.output.find((world_->dir / "empty").string() + " holds none of"), std::string::npos) << refused.output;
}

// run.batching: across-tiles (the default on CUDA), here on the CPU with batches of 7
// chips that cut across rows and tiles: the reference cube's chips, statuses and NaN, the
// embeddings to a float's rounding (a pass's bits may depend on its batch-mates), each
// tile journalled once; killed as a tile is journalled and resumed, the same.
TEST_F(RunTest, BatchesAcrossTilesGiveTheCubeOfBatchesPerRow) {
  std::ifstream in(world_->world->config_file);
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = yaml.find("run:\n");
  ASSERT_NE(at, std::string::npos);
  yaml.insert(at + 5, "  batching: across-tiles\n  batch: 7\n");
  const fs::path config = world_->dir / "across.yaml";
  std::ofstream(config) << yaml;
  const auto command = [&](const std::string& output, const std::string& env) {
    return fmt::format("{} OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec -n 2 --oversubscribe {} run {} "
                       "--output {} --partition dynamic",
                       env, EO_PIPELINE_EXE, config.string(), (world_->dir / output).string());
  };
  const auto compare = [&](const std::string& output, bool whole_run) {
    const auto compared = test::run(fmt::format("/usr/bin/python3 {}/tests/python/compare_cubes.py {} {} 1e-5", EO_SOURCE_DIR,
                                                world_->cube("reference").string(), world_->cube(output).string()));
    EXPECT_NE(compared.output.find("CUBES MATCH"), std::string::npos) << compared.output;
    world_->expect_each_tile_once(output);
    if (whole_run) EXPECT_EQ(world_->report(output)["chips_embedded"], world_->report("reference")["chips_embedded"]);
    EXPECT_EQ(world_->report(output)["batching"], "across-tiles");
  };
  const auto r = test::run(command("across", ""));
  ASSERT_EQ(r.code, 0) << r.output;
  compare("across", true);
  EXPECT_EQ(world_->report("reference")["batching"], "per-row");

  const auto killed = test::run(command("across_killed", "EO_FAILPOINT=tile-written@3=kill"));
  EXPECT_NE(killed.code, 0) << killed.output;
  const auto resumed = test::run(command("across_killed", ""));
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_GT(world_->report("across_killed")["skipped_done"].get<int>(), 0);
  compare("across_killed", false);
}

// SIGKILL to one rank (mpiexec then ends the job) after a random number of tiles and a
// random delay, several times; every trial resumed gives the reference cube.
TEST_F(RunTest, OneRankKilledAtRandomMomentsThenResumed) {
  const std::size_t tiles = world_->world->plan.tiles.size();
  std::mt19937 rng(11);
  for (int trial = 0; trial < 3; ++trial) {
    const std::string output = fmt::format("killed{}", trial);
    SCOPED_TRACE(output);
    // Before half the tiles are done, so that both ranks still have work.
    const int after = static_cast<int>(rng() % (tiles / 2));
    const int delay_ms = static_cast<int>(rng() % 300);
    const int victim = static_cast<int>(rng() % 2);
    const auto killed = test::run(fmt::format(
        "{0} > /dev/null 2>&1 & job=$!; "
        "for i in $(seq 3000); do n=$(cat {1}/journal/run-*.jsonl 2>/dev/null | wc -l); [ \"$n\" -ge {2} ] && break; "
        "sleep 0.01; done; sleep {3}; "
        "n=$(pgrep -f '^{4} run .*{1} ' | wc -l); "
        "[ \"$n\" -gt 0 ] && pid=$(pgrep -f '^{4} run .*{1} ' | sort -n | sed -n \"$(( {5} % n + 1 ))p\"); "
        "[ -n \"$pid\" ] && kill -9 $pid && echo \"killed rank process $pid\"; wait $job; echo \"exit $?\"",
        world_->command(output, 2), (world_->dir / output).string(), after, delay_ms / 1000.0, EO_PIPELINE_EXE,
        victim));
    ASSERT_NE(killed.output.find("killed rank process"), std::string::npos) << killed.output;
    EXPECT_EQ(killed.output.find("exit 0"), std::string::npos) << "the job finished before the kill: " << killed.output;
    const auto resumed = test::run(world_->command(output, 2));
    ASSERT_EQ(resumed.code, 0) << resumed.output;
    EXPECT_EQ(test::cube_difference(*reference_, test::cube_files(world_->cube(output))), "");
    world_->expect_each_tile_once(output);
  }
}

// Every rank dies (SIGKILL, from a failpoint) halfway through writing a chunk: the torn
// chunk is only under its temporary name, readers see a consistent cube, and the resumed
// run removes it and ends with the reference cube.
TEST_F(RunTest, TheWholeJobKilledInTheMiddleOfAChunkThenResumed) {
  for (int chunk : {2, 7}) {
    const std::string output = fmt::format("torn{}", chunk);
    SCOPED_TRACE(output);
    const auto killed = test::run(world_->command(output, 2, "dynamic", fmt::format("EO_FAILPOINT=cube-chunk@{}=kill", chunk)));
    EXPECT_NE(killed.code, 0) << killed.output;
    int torn = 0;
    for (const auto& e : fs::recursive_directory_iterator(world_->cube(output)))
      torn += e.path().filename().string().starts_with(kTemporaryPrefix);
    EXPECT_GT(torn, 0) << "no chunk was cut off";
    const auto readable = test::run(fmt::format(
        "/usr/bin/python3 -c \"import xarray as xr; [xr.open_zarr('{}', group=z).load() for z in ('10N', '11N')]; print('READ OK')\"",
        world_->cube(output).string()));
    EXPECT_NE(readable.output.find("READ OK"), std::string::npos) << readable.output;
    const auto resumed = test::run(world_->command(output, 2, "dynamic"));
    ASSERT_EQ(resumed.code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("partial chunks"), std::string::npos) << resumed.output;
    EXPECT_EQ(test::cube_difference(*reference_, test::cube_files(world_->cube(output))), "");
    world_->expect_each_tile_once(output);
  }
}

}  // namespace
}  // namespace eo
