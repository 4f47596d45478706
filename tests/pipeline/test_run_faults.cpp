// `eo-pipeline run` when things go wrong: a corrupt input fails only its tile (status 3
// in the cube, the reason in `status` and in the report) and is retried a bounded number
// of times; a second run on the same output at the same time is refused; a full disk (a
// small tmpfs) stops the run cleanly, and once space is freed the run resumes to the
// cube of an undisturbed run; the tasks of a SLURM array share the lock with each other
// only; a new model writes a new cube.

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <map>
#include <set>

#include "pipeline/core/journal.hpp"
#include "stages/chip/chipper.hpp"
#include "support/run_world.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

class RunFaults : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { world_ = new test::RunWorld("faults", test::squares_aoi(4, 0.1)); }
  static void TearDownTestSuite() { delete world_; }
  static test::RunWorld* world_;
};
test::RunWorld* RunFaults::world_ = nullptr;

TEST_F(RunFaults, ASecondRunOnTheSameOutputIsRefused) {
  // The first run holds still for a while right after taking the lock.
  const fs::path out = world_->dir / "locked";
  const auto r = test::run(fmt::format(
      "{} > {}/first.log 2>&1 & first=$!; "
      "for i in $(seq 1000); do [ -s {}/run.lock ] && break; sleep 0.02; done; "
      "{} 2>&1; echo \"second exit $?\"; {} status {} --output {}; kill -9 $first; wait $first",
      world_->command("locked", 0, "static", "EO_FAILPOINT=run-locked@1=sleep:60"), world_->dir.string(), out.string(),
      world_->command("locked", 0), EO_PIPELINE_EXE, world_->world->config_file.string(), out.string()));
  EXPECT_NE(r.output.find("second exit 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("is in use by another run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("in progress:"), std::string::npos) << "status does not say a run is going on: " << r.output;
  // The holder was killed: the kernel dropped its lock, and a new run goes ahead.
  const auto after = test::run(world_->command("locked", 0));
  EXPECT_EQ(after.code, 0) << after.output;
}

TEST_F(RunFaults, AFullDiskStopsCleanlyAndTheRunResumesOnceSpaceIsFreed) {
  const auto ref = test::run(world_->command("reference", 0));
  ASSERT_EQ(ref.code, 0) << ref.output;
  // Room for everything a run writes (tmpfs takes a page per small file) but half the
  // cube's chunks.
  std::uintmax_t meta = 0, chunks = 0;
  for (const auto& e : fs::recursive_directory_iterator(world_->dir / "reference")) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    const bool chunk = std::isdigit(static_cast<unsigned char>(name[0])) && e.path().parent_path().filename() != "x" &&
                       e.path().parent_path().filename() != "y" && e.path().parent_path().filename() != "spatial_ref";
    (chunk ? chunks : meta) += (fs::file_size(e.path()) + 4095) / 4096 * 4096;
  }
  const fs::path disk = world_->dir / "disk";
  fs::create_directories(disk);
  const std::uintmax_t size_kb = (meta + chunks / 2) / 1024;
  if (::mount("tmpfs", disk.c_str(), "tmpfs", 0, fmt::format("size={}k", size_kb).c_str()) != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "): needs root with CAP_SYS_ADMIN";
  struct Unmount {
    fs::path dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{disk};

  const auto full = test::run(world_->command("disk/out", 2));
  EXPECT_EQ(full.code, 1) << full.output;
  EXPECT_NE(full.output.find("No space left on device"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find("run again once the output can be written"), std::string::npos) << full.output;
  // What was journalled is intact, and some tiles were.
  const auto journal = read_journal(disk / "out" / "journal", JournalStage::run);
  std::size_t done_before = 0;
  for (const auto& [tile, records] : journal) {
    EXPECT_NE(records.back().status, TileStatus::failed) << tile << ": a full disk is not the tile's fault";
    done_before += records.back().status != TileStatus::failed;
  }
  EXPECT_GT(done_before, 0u) << "the disk was full before any tile: " << full.output;
  EXPECT_LT(done_before, world_->world->plan.tiles.size()) << "the disk never filled: " << full.output;

  ASSERT_EQ(::mount("tmpfs", disk.c_str(), "tmpfs", MS_REMOUNT, "size=256m"), 0) << std::strerror(errno);
  const auto resumed = test::run(world_->command("disk/out", 2));
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_EQ(world_->report("disk/out")["skipped_done"].get<std::size_t>(), done_before);
  EXPECT_EQ(test::cube_difference(test::cube_files(world_->cube("reference")), test::cube_files(disk / "out" / "cube.zarr")), "");
}

// Last: it breaks an input of the world.
// The tasks of one SLURM array write one output side by side; a plain run, or a task of
// another array, is refused while they do. (The array's environment is set by hand here;
// tests/slurm runs real arrays.)
TEST_F(RunFaults, AnArraySharesTheLockOnlyAmongItsOwnTasks) {
  const fs::path out = world_->dir / "array_lock";
  auto task = [&](int job, int index, const std::string& env = "") {
    return world_->command("array_lock", 0, "slurm-array",
                           fmt::format("SLURM_ARRAY_JOB_ID={} SLURM_JOB_ID={}{} SLURM_ARRAY_TASK_ID={} EO_ARRAY_SIZE=2 "
                                       "EO_RUN_CHAIN=c{} {}",
                                       job, job, index, index, job, env));
  };
  const auto r = test::run(fmt::format(
      "( {} > {}/first.log 2>&1 & first=$!; "
      "for i in $(seq 1000); do [ -s {}/run.lock ] && break; sleep 0.02; done; "
      "{} ; echo \"same array exit $?\"; {} ; echo \"other array exit $?\"; {} ; echo \"plain exit $?\"; "
      "kill -9 $first; wait $first )",
      task(7, 0, "EO_FAILPOINT=run-set-up@1=sleep:60"), world_->dir.string(), out.string(), task(7, 1), task(8, 0),
      world_->command("array_lock", 0)));
  EXPECT_NE(r.output.find("same array exit 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("other array exit 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("plain exit 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("array task 0 of 2"), std::string::npos) << "the refusal names the holder: " << r.output;
  EXPECT_TRUE(fs::exists(out / "run" / "tasks" / "c7" / "task-1-job-71.json"));
}

// A new model writes a new cube, never into the old one; OUTPUT/cube.zarr follows the
// newest, and every tile is redone for it.
TEST_F(RunFaults, ANewModelWritesANewCube) {
  const auto first = test::run(world_->command("models", 2));
  ASSERT_EQ(first.code, 0) << first.output;
  const fs::path old_cube = fs::canonical(world_->cube("models"));
  const auto old_files = test::cube_files(old_cube);
  // The same model trained 4 steps further, in an output of its own (the checkpoints
  // copied, the chips linked), so that pruning its older checkpoints there leaves this
  // world's step 4 to the other tests.
  const fs::path trained = world_->world->config.output, further = world_->dir / "further";
  fs::create_directories(further / "pretrain");
  fs::copy(trained / "pretrain" / "checkpoints", further / "pretrain" / "checkpoints", fs::copy_options::recursive);
  fs::create_directory_symlink(trained / "chips", further / "chips");
  fs::copy_file(trained / "normalisation.json", further / "normalisation.json");
  std::string yaml((std::istreambuf_iterator<char>(std::ifstream(world_->world->config_file).rdbuf())), {});
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"steps: 4", "steps: 8"},
                                 {(trained / "pretrain/checkpoints/step-000004.pt").string(),
                                  (further / "pretrain/checkpoints/step-000008.pt").string()},
                                 {"output: " + trained.string() + "\n", "output: " + further.string() + "\n"}}) {
    ASSERT_NE(yaml.find(from), std::string::npos) << from << " not in " << yaml;
    yaml.replace(yaml.find(from), from.size(), to);
  }
  const fs::path config2 = world_->dir / "newer_model.yaml";
  std::ofstream(config2) << yaml;
  const std::string env = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
  const auto train = test::run(fmt::format("{} mpiexec -n 2 --oversubscribe {} pretrain -q {}", env, EO_PIPELINE_EXE, config2.string()));
  ASSERT_EQ(train.code, 0) << train.output;
  const std::string run2 = fmt::format("{} mpiexec -n 2 --oversubscribe {} run {} --output {}", env, EO_PIPELINE_EXE,
                                       config2.string(), (world_->dir / "models").string());
  const auto second = test::run(run2);
  ASSERT_EQ(second.code, 0) << second.output;

  const fs::path new_cube = fs::canonical(world_->cube("models"));
  EXPECT_NE(new_cube, old_cube);
  EXPECT_EQ(new_cube.parent_path(), old_cube.parent_path());
  EXPECT_EQ(test::cube_difference(old_files, test::cube_files(old_cube)), "") << "the old model's cube was written to";
  const auto old_attrs = nlohmann::json::parse(std::ifstream(old_cube / ".zattrs"));
  const auto new_attrs = nlohmann::json::parse(std::ifstream(new_cube / ".zattrs"));
  EXPECT_NE(old_attrs["model_version"], new_attrs["model_version"]);
  EXPECT_NE(new_attrs["model_version"].get<std::string>().find("step-000008"), std::string::npos) << new_attrs.dump();
  EXPECT_EQ(new_cube.filename().string(), new_attrs["model_version"].get<std::string>() + ".zarr");
  const auto report = world_->report("models");
  EXPECT_EQ(report["skipped_done"], 0) << "tiles done by the old model were not redone";
  EXPECT_EQ(report["done"].get<std::size_t>() + report["nodata"].get<std::size_t>(), world_->world->plan.tiles.size());

  // Told to write into the old cube, the new model is refused, and the cube untouched.
  std::ofstream(config2, std::ios::app) << "  cube: " << old_cube.string() << "\n";  // under run:, the last section
  const auto into_old = test::run(run2);
  EXPECT_EQ(into_old.code, 2) << into_old.output;
  EXPECT_NE(into_old.output.find("a new model writes a new cube"), std::string::npos) << into_old.output;
  EXPECT_NE(into_old.output.find(old_cube.string()), std::string::npos) << into_old.output;
  EXPECT_EQ(test::cube_difference(old_files, test::cube_files(old_cube)), "");
}

TEST_F(RunFaults, ACorruptInputFailsOnlyItsTilesBoundedRetries) {
  const auto& plan = world_->world->plan;
  std::map<fs::path, std::set<std::string>> users;
  for (const TilePlan& t : plan.tiles)
    for (const auto& f : tile_sources(world_->world->catalog, t, world_->world->config.data.modalities))
      users[f].insert(t.id.str());
  fs::path victim;
  for (const auto& [f, tiles] : users)
    if (f.parent_path().filename() == "s2rgb" && (victim.empty() || tiles.size() < users[victim].size())) victim = f;
  ASSERT_FALSE(victim.empty());
  const std::set<std::string> broken = users[victim];
  ASSERT_LT(broken.size(), plan.tiles.size());
  fs::resize_file(victim, fs::file_size(victim) / 3);  // truncated, as by an interrupted copy

  const auto first = test::run(world_->command("corrupt", 2));
  EXPECT_EQ(first.code, 1) << first.output;
  EXPECT_NE(first.output.find(victim.filename().string()), std::string::npos) << "the file is not named: " << first.output;
  const auto report = world_->report("corrupt");
  EXPECT_EQ(report["failed"].get<std::size_t>(), broken.size());
  EXPECT_EQ(report["done"].get<std::size_t>() + report["nodata"].get<std::size_t>(), plan.tiles.size() - broken.size());
  for (const auto& f : report["failures"]) {
    EXPECT_TRUE(broken.count(f["tile"].get<std::string>())) << f.dump();
    EXPECT_NE(f["error"].get<std::string>().find(victim.filename().string()), std::string::npos) << f.dump();
  }
  // In the cube: the failed tiles' planned chips are 3, the others' 1 or 2.
  std::string checks;
  for (const TilePlan& t : plan.tiles)
    for (int i = 0; i < kChipsPerTile; ++i)
      if (t.chips[static_cast<std::size_t>(i)]) {
        const ChipId c = t.id.chip(i);
        checks += fmt::format("('{}', {}, {}, {}),", c.zone.name(), c.row, c.col, broken.count(t.id.str()) ? "[3]" : "[1, 2]");
      }
  const auto cube = test::run(fmt::format(
      "/usr/bin/python3 -c \"import zarr; g = zarr.open_group('{}', 'r'); "
      "bad = [c for c in [{}] if int(g[c[0]]['status'][c[1], c[2]]) not in c[3]]; print('STATUS OK' if not bad else bad)\"",
      world_->cube("corrupt").string(), checks));
  EXPECT_NE(cube.output.find("STATUS OK"), std::string::npos) << cube.output;
  auto status = [&] {
    return test::run(fmt::format("{} status {} --output {}", EO_PIPELINE_EXE, world_->world->config_file.string(),
                                 (world_->dir / "corrupt").string()));
  };
  const auto s1 = status();
  for (const auto& tile : broken) EXPECT_NE(s1.output.find(tile + " (attempt 1 of 2, retried"), std::string::npos) << s1.output;
  EXPECT_NE(s1.output.find(victim.filename().string()), std::string::npos) << s1.output;

  // Retried by the next run, then left failed; the good tiles are not redone.
  const auto second = test::run(world_->command("corrupt", 2));
  EXPECT_EQ(second.code, 1);
  EXPECT_EQ(world_->report("corrupt")["failed"].get<std::size_t>(), broken.size());
  EXPECT_EQ(world_->report("corrupt")["skipped_done"].get<std::size_t>(), plan.tiles.size() - broken.size());
  const auto third = test::run(world_->command("corrupt", 2));
  EXPECT_EQ(third.code, 1);
  EXPECT_EQ(world_->report("corrupt")["failed"].get<std::size_t>(), 0u);
  EXPECT_EQ(world_->report("corrupt")["left_failed"].get<std::size_t>(), broken.size());
  for (const auto& tile : broken) EXPECT_NE(status().output.find(tile + " (attempt 2 of 2, left failed"), std::string::npos);
}

}  // namespace
}  // namespace eo
