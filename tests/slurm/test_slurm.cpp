// `eo-pipeline run` as a SLURM job array (slurm/) on a real single-node cluster that the
// test starts itself (munged, slurmctld and slurmd from Debian, tests/slurm/
// local_cluster.sh): the array's cube (2 ranks per task, by mpirun) equals a plain mpirun
// run's; the nightly path (ranks by srun) redoes exactly the tiles whose input changed and
// again equals a fresh run; a task cancelled in the middle of its work is resubmitted by
// finalize, and a requeued one resumes, with nothing lost.

#include <gdal_priv.h>
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <set>
#include <thread>

#include "pipeline/core/journal.hpp"
#include "schedulers/partition.hpp"
#include "stages/chip/chipper.hpp"
#include "support/run_world.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class SlurmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new test::RunWorld("slurm", test::squares_aoi(6, 0.1));
    cluster_ = new fs::path(world_->dir / "cluster");
    const auto up = test::run(fmt::format("{}/tests/slurm/local_cluster.sh start {}", EO_SOURCE_DIR, cluster_->string()));
    ASSERT_EQ(up.code, 0) << up.output;
    const auto r = test::run(world_->command("reference", 2));
    ASSERT_EQ(r.code, 0) << r.output;
    reference_ = new std::map<std::string, std::string>(test::cube_files(world_->cube("reference")));
  }
  static void TearDownTestSuite() {
    if (cluster_) test::run(fmt::format("{}/tests/slurm/local_cluster.sh stop {}", EO_SOURCE_DIR, cluster_->string()));
    delete reference_;
    delete cluster_;
    delete world_;
  }

  static std::string slurm_env() {
    return fmt::format("SLURM_CONF={}/slurm.conf EO_PIPELINE={} OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                       cluster_->string(), EO_PIPELINE_EXE);
  }
  // slurm/submit.sh or slurm/nightly.sh on the world's config, into dir/OUTPUT.
  static test::RunResult slurm_script(const std::string& script, const std::string& output, const std::string& args,
                                      const std::string& env = "") {
    return test::run(fmt::format("{} {} {}/slurm/{} {} --output {} {}", slurm_env(), env, EO_SOURCE_DIR, script,
                                 world_->world->config_file.string(), (world_->dir / output).string(), args));
  }
  static std::string queue() { return test::run(slurm_env() + " squeue -h -o '%i %j %T'").output; }
  // Until the cluster has no job left: finalize resubmits before it ends, so an empty
  // queue means the chain is over.
  static void wait_for_jobs() {
    for (int i = 0; i < 450; ++i) {
      if (queue().empty()) return;
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
    FAIL() << "jobs still queued after 15 minutes:\n" << queue();
  }
  static std::string value_of(const std::string& output, const std::string& key) {
    std::smatch m;
    if (std::regex_search(output, m, std::regex(key + "=(\\S+)"))) return m[1];
    return "";
  }
  static json report(const std::string& output) {
    return json::parse(std::ifstream(world_->dir / output / "run" / "report.json"));
  }
  static std::map<std::string, std::vector<JournalRecord>> journal(const std::string& output) {
    return read_journal(world_->dir / output / "journal", JournalStage::run);
  }
  static fs::path status_chunk(const std::string& output, const TileId& tile) {
    return world_->cube(output) / tile.zone.name() / "status" / fmt::format("{}.{}", tile.row, tile.col);
  }
  // The contents of a file of a SLURM log folder, all of them joined.
  static std::string logs(const std::string& output, const std::string& pattern) {
    std::string all;
    const fs::path dir = world_->dir / output / "slurm";
    if (!fs::is_directory(dir)) return all;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().find(pattern) != std::string::npos)
        all += std::string(std::istreambuf_iterator<char>(std::ifstream(e.path()).rdbuf()), {});
    return all;
  }

  static test::RunWorld* world_;
  static fs::path* cluster_;
  static std::map<std::string, std::string>* reference_;
};
test::RunWorld* SlurmTest::world_ = nullptr;
fs::path* SlurmTest::cluster_ = nullptr;
std::map<std::string, std::string>* SlurmTest::reference_ = nullptr;

TEST_F(SlurmTest, AnArrayGivesTheMpirunCubeAndTheNightlyPathRedoesOnlyChangedTiles) {
  const auto& plan = world_->world->plan;
  const int tiles = static_cast<int>(plan.tiles.size());
  ASSERT_GE(tiles, 5);
  // Two ranks per task, started by mpirun inside the task's allocation.
  const auto submitted = slurm_script("submit.sh", "array", "--tiles-per-task 2 --ranks-per-task 2");
  ASSERT_EQ(submitted.code, 0) << submitted.output;
  ASSERT_NE(value_of(submitted.output, "EO_ARRAY_JOB"), "") << submitted.output;
  wait_for_jobs();
  const json first = report("array");
  EXPECT_EQ(first["exit_code"], 0) << first.dump(2);
  EXPECT_EQ(first["done"].get<int>() + first["nodata"].get<int>(), tiles);
  const int tasks = (tiles + 1) / 2;
  EXPECT_EQ(first["array_size"], tasks);
  EXPECT_EQ(first["tasks"].size(), static_cast<std::size_t>(tasks)) << first.dump(2);
  for (const json& t : first["tasks"]) EXPECT_EQ(t["peak_rss_mib_per_rank"].size(), 2u) << "not 2 ranks: " << t.dump();
  EXPECT_EQ(test::cube_difference(*reference_, test::cube_files(world_->cube("array"))), "");
  world_->expect_each_tile_once("array");
  const json attrs = json::parse(std::ifstream(world_->cube("array") / ".zattrs"));
  EXPECT_EQ(attrs["model_version"], first["model_version"]);
  EXPECT_NE(fs::read_symlink(world_->cube("array")).string().find(attrs["model_version"].get<std::string>()),
            std::string::npos);

  // Nothing changed: the nightly path submits nothing.
  const auto idle = slurm_script("nightly.sh", "array", "--tiles-per-task 2");
  ASSERT_EQ(idle.code, 0) << idle.output;
  EXPECT_NE(idle.output.find("nothing to do"), std::string::npos) << idle.output;
  EXPECT_EQ(queue(), "");

  // One S2 file changes (new pixel values, as a reprocessed product would have): the
  // tiles that read it, and no other, are to be redone. Of the files that some but not
  // all tiles read, the one read by the fewest.
  const Catalog& catalog = world_->world->catalog;
  std::map<fs::path, std::set<std::string>> readers;
  for (const TilePlan& t : plan.tiles)
    for (const auto& f : tile_sources(catalog, t, world_->world->config.data.modalities)) readers[f].insert(t.id.str());
  const fs::path* changed = nullptr;
  for (const auto& [file, by] : readers)
    if (file.string().find("s2") != std::string::npos && by.size() < plan.tiles.size() &&
        (!changed || by.size() < readers[*changed].size()))
      changed = &file;
  ASSERT_NE(changed, nullptr);
  const std::set<std::string> affected = readers[*changed];
  {
    GDALAllRegister();
    GDALDataset* ds = GDALDataset::Open(changed->c_str(), GDAL_OF_RASTER | GDAL_OF_UPDATE);
    ASSERT_NE(ds, nullptr) << changed->string();
    const int w = ds->GetRasterXSize(), h = ds->GetRasterYSize();
    std::vector<float> pixels(static_cast<std::size_t>(w) * h);
    for (int b = 1; b <= ds->GetRasterCount(); ++b) {
      GDALRasterBand* band = ds->GetRasterBand(b);
      ASSERT_EQ(band->RasterIO(GF_Read, 0, 0, w, h, pixels.data(), w, h, GDT_Float32, 0, 0), CE_None);
      for (float& p : pixels) p = p * 0.5f + 100.0f;
      ASSERT_EQ(band->RasterIO(GF_Write, 0, 0, w, h, pixels.data(), w, h, GDT_Float32, 0, 0), CE_None);
    }
    GDALClose(ds);
  }
  const auto before = journal("array");
  std::map<std::string, fs::file_time_type> mtime_before;
  for (const TilePlan& t : plan.tiles) mtime_before[t.id.str()] = fs::last_write_time(status_chunk("array", t.id));

  // This time the tasks' ranks are started by srun (PMIx) instead of mpirun.
  const auto nightly = slurm_script("nightly.sh", "array", "--tiles-per-task 2 --ranks-per-task 2", "EO_LAUNCHER=srun");
  ASSERT_EQ(nightly.code, 0) << nightly.output;
  EXPECT_NE(nightly.output.find(fmt::format("{} of {} tiles to do", affected.size(), tiles)), std::string::npos)
      << nightly.output;
  wait_for_jobs();
  const json second = report("array");
  EXPECT_EQ(second["exit_code"], 0) << second.dump(2);
  for (const json& t : second["tasks"]) EXPECT_EQ(t["peak_rss_mib_per_rank"].size(), 2u) << "not 2 ranks: " << t.dump();
  // Incremental: only the tasks whose blocks hold a changed tile were submitted.
  std::set<int> owners, ran;
  for (int t = 0; t < tasks; ++t)
    for (std::size_t i : slurm_array_tiles(plan.tiles, {t, tasks}, world_->world->config.order))
      if (affected.count(plan.tiles[i].id.str())) owners.insert(t);
  for (const json& t : second["tasks"]) ran.insert(t["task"].get<int>());
  EXPECT_EQ(ran, owners);
  EXPECT_LT(owners.size(), static_cast<std::size_t>(tasks));
  EXPECT_NE(logs("array", ".out").find("2 ranks started by mpirun"), std::string::npos);
  EXPECT_NE(logs("array", ".out").find("2 ranks started by srun"), std::string::npos);
  const auto after = journal("array");
  for (const TilePlan& t : plan.tiles) {
    const std::string id = t.id.str();
    const bool redo = affected.count(id) > 0;
    EXPECT_EQ(after.at(id).back().run_id != before.at(id).back().run_id, redo) << id << (redo ? " not redone" : " redone");
    EXPECT_EQ(fs::last_write_time(status_chunk("array", t.id)) != mtime_before[id], redo)
        << id << (redo ? ": its chunks were not rewritten" : ": its chunks were rewritten");
  }

  // The cube is what a fresh run over the changed inputs makes, and every tile whose
  // embeddings the change moved is among those redone.
  const auto fresh = test::run(world_->command("fresh", 2));
  ASSERT_EQ(fresh.code, 0) << fresh.output;
  const auto fresh_files = test::cube_files(world_->cube("fresh"));
  EXPECT_EQ(test::cube_difference(fresh_files, test::cube_files(world_->cube("array"))), "");
  int moved = 0;
  for (const TilePlan& t : plan.tiles) {
    const std::string chunk = fmt::format("{}/fused/{}.{}.0", t.id.zone.name(), t.id.row, t.id.col);
    const std::map<std::string, std::string>& old_files = *reference_;
    const auto a = old_files.find(chunk), b = fresh_files.find(chunk);
    const bool differs = (a == old_files.end()) != (b == fresh_files.end()) ||
                         (a != old_files.end() && a->second != b->second);
    if (differs) {
      ++moved;
      EXPECT_TRUE(affected.count(t.id.str())) << t.id.str() << " changed but was not redone";
    }
  }
  EXPECT_GT(moved, 0) << "the changed file moved no embedding: the test changed nothing";
}

TEST_F(SlurmTest, ACancelledTaskIsResubmittedAndARequeuedOneResumesWithNothingLost) {
  const auto reference = test::run(world_->command("cut_reference", 2));  // over today's inputs
  ASSERT_EQ(reference.code, 0) << reference.output;
  // Each task stops for a while once its first tile's chunks are written, before the
  // tile's journal record: the moment a cut loses the most.
  const auto submitted = slurm_script("submit.sh", "cut", "--tiles-per-task 2", "EO_FAILPOINT=tile-written@1=sleep:10");
  ASSERT_EQ(submitted.code, 0) << submitted.output;
  const std::string job = value_of(submitted.output, "EO_ARRAY_JOB");
  ASSERT_NE(job, "") << submitted.output;
  auto held = [](const std::string& task) { return logs("cut", task).find("failpoint tile-written: sleeping") != std::string::npos; };
  for (int i = 0; i < 300 && !(held("_0.out") && held("_1.out")); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(held("_0.out") && held("_1.out")) << logs("cut", ".out") << queue();
  const auto cancel = test::run(fmt::format("{} scancel {}_0", slurm_env(), job));
  ASSERT_EQ(cancel.code, 0) << cancel.output;
  const auto requeue = test::run(fmt::format("{} scontrol requeue {}_1", slurm_env(), job));
  ASSERT_EQ(requeue.code, 0) << requeue.output;
  wait_for_jobs();

  const json r = report("cut");
  EXPECT_EQ(r["exit_code"], 0) << r.dump(2);
  int runs_of_task0 = 0, restarts_of_task1 = 0;
  for (const json& t : r["tasks"]) {
    runs_of_task0 += t["task"] == 0;
    if (t["task"] == 1) restarts_of_task1 = std::max(restarts_of_task1, t["restarts"].get<int>());
  }
  EXPECT_EQ(runs_of_task0, 1) << "the cancelled task writes no report; its resubmission does\n" << r.dump(2);
  EXPECT_EQ(restarts_of_task1, 1) << r.dump(2);
  EXPECT_NE(logs("cut", "finalize").find("resubmit array tasks 0 of"), std::string::npos) << logs("cut", "finalize");
  EXPECT_EQ(test::cube_difference(test::cube_files(world_->cube("cut_reference")), test::cube_files(world_->cube("cut"))), "");
  world_->expect_each_tile_once("cut");
}

}  // namespace
}  // namespace eo
