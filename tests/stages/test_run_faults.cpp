// `eo-pipeline run` when things go wrong: a corrupt input fails only its tile (status 3
// in the cube, the reason in `status` and in the report) and is retried a bounded number
// of times; a second run on the same output at the same time is refused; a full disk (a
// small tmpfs) stops the run cleanly, and once space is freed the run resumes to the
// cube of an undisturbed run.

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <map>
#include <set>

#include "pipeline/journal.hpp"
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
      "{} ; echo \"second exit $?\"; {} status {} --output {}; kill -9 $first; wait $first",
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
  const auto journal = read_journal(disk / "out" / "journal", "run");
  std::size_t done_before = 0;
  for (const auto& [tile, records] : journal) {
    EXPECT_NE(records.back().status, "failed") << tile << ": a full disk is not the tile's fault";
    done_before += records.back().status == "done" || records.back().status == "nodata";
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
