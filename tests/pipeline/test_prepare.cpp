// `prepare` under mpiexec on a synthetic world with broken inputs: corrupt, truncated,
// missing and wrong-CRS files fail their tiles with a message naming the file and the
// tile; every other tile finishes; reruns keep what was done and retry a bounded number
// of times.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "pipeline/core/files.hpp"
#include "pipeline/core/journal.hpp"
#include "pipeline/core/utm.hpp"
#include "stages/chip/chipper.hpp"
#include "support/run.hpp"
#include "support/world.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

std::string prepare_command(const test::TestWorld& w, int ranks) {
  return fmt::format("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec -n {} --oversubscribe {} prepare {}",
                     ranks, EO_PIPELINE_EXE, w.config_file.string());
}

TEST(Prepare, BrokenInputsFailOnlyTheirTiles) {
  // Six small areas far enough apart to lie in different tiles and mostly different
  // source files, in zones 10 and 11.
  std::string squares;
  for (int i = 0; i < 6; ++i) {
    const double lon = -121.3 + 0.9 * (i % 3), lat = 36.2 + 1.1 * (i / 3);
    squares += fmt::format("{}(({} {}, {} {}, {} {}, {} {}, {} {}))", i ? "," : "", lon, lat, lon + 0.04, lat, lon + 0.04,
                           lat + 0.04, lon, lat + 0.04, lon, lat);
  }
  const auto w = test::make_world("broken", "MULTIPOLYGON(" + squares + ")", "prepare:\n  max_attempts: 2\n", 80, 8);
  ASSERT_GE(w->plan.tiles.size(), 6u);
  // Which tiles read which files.
  std::map<fs::path, std::set<std::string>> users;
  for (const TilePlan& t : w->plan.tiles)
    for (const auto& f : tile_sources(w->catalog, t, w->config.data.modalities)) users[f].insert(t.id.str());
  // Break one file of each kind, each read by tiles no other broken file reaches (so
  // that each error is seen), leaving some tiles untouched.
  std::set<fs::path> taken;
  std::set<std::string> affected;
  auto pick = [&](const std::string& folder) {
    fs::path best;
    for (const auto& [f, tiles] : users) {
      if (f.parent_path().filename() != folder || taken.count(f)) continue;
      const bool disjoint = std::none_of(tiles.begin(), tiles.end(), [&](const std::string& t) { return affected.count(t) > 0; });
      if (disjoint && (best.empty() || tiles.size() < users[best].size())) best = f;
    }
    EXPECT_FALSE(best.empty()) << "no " << folder << " file to break on its own tiles";
    taken.insert(best);
    affected.insert(users[best].begin(), users[best].end());
    return best;
  };
  const fs::path truncated = pick("s2rgb");
  const fs::path corrupt = pick("s1amp");
  const fs::path wrong_crs = pick("s1amp");
  const fs::path missing = pick("s2rgb");
  ASSERT_LT(affected.size(), w->plan.tiles.size()) << "every tile would fail: the test needs a larger world";

  fs::resize_file(truncated, fs::file_size(truncated) / 2);
  {
    std::ofstream out(corrupt, std::ios::trunc | std::ios::binary);
    for (int i = 0; i < 100000; ++i) out.put(static_cast<char>((i * 7919) & 0xff));
  }
  const fs::path reprojected = w->dir / "mercator.tif";
  const auto t = test::run("gdalwarp -q -t_srs EPSG:3857 " + wrong_crs.string() + " " + reprojected.string());
  ASSERT_EQ(t.code, 0) << t.output;
  fs::rename(reprojected, wrong_crs);
  fs::remove(missing);

  const auto r = test::run(prepare_command(*w, 2));
  EXPECT_EQ(r.code, 1) << r.output;
  const fs::path out = w->config.output;
  const auto journal = read_journal(out / "journal", JournalStage::prepare);
  ASSERT_EQ(journal.size(), w->plan.tiles.size());
  std::map<fs::path, int> named;
  for (const TilePlan& tile : w->plan.tiles) {
    const JournalRecord& rec = journal.at(tile.id.str()).back();
    const fs::path store = out / "chips" / (tile.id.str() + ".h5");
    if (affected.count(tile.id.str())) {
      EXPECT_EQ(rec.status, TileStatus::failed) << tile.id.str();
      EXPECT_NE(rec.error.find("tile " + tile.id.str()), std::string::npos) << rec.error;
      bool names_a_broken_file = false;
      for (const auto& f : taken)
        if (rec.error.find(f.string()) != std::string::npos && users[f].count(tile.id.str())) {
          names_a_broken_file = true;
          ++named[f];
        }
      EXPECT_TRUE(names_a_broken_file) << rec.error;
      EXPECT_FALSE(fs::exists(store)) << "a failed tile left a chip store";
      EXPECT_NE(r.output.find(rec.error), std::string::npos) << "the summary does not list " << rec.error;
    } else {
      EXPECT_EQ(rec.status, TileStatus::done) << tile.id.str() << ": " << rec.error;
      EXPECT_TRUE(fs::exists(store)) << store;
    }
  }
  for (const auto& f : taken) EXPECT_GT(named[f], 0) << "no failure names " << f;
  for (const auto& e : fs::directory_iterator(out / "chips"))
    EXPECT_FALSE(e.path().filename().string().starts_with(kTemporaryPrefix)) << "temporary file left: " << e.path();

  // The finished stores are complete HDF5 files a real reader opens.
  const auto py = test::run("/usr/bin/python3 -c \"import h5py, glob, sys\n"
                            "n = 0\n"
                            "for f in glob.glob('" + (out / "chips").string() + "/*.h5'):\n"
                            "    h = h5py.File(f, 'r'); n += h['s2rgb/data'].shape[0]; assert h['s1amp/data'].shape[1] == 8\n"
                            "print(n)\"");
  ASSERT_EQ(py.code, 0) << py.output;
  EXPECT_GT(std::stoi(py.output), 0);

  // A rerun keeps the done tiles and retries the failed ones; after max_attempts (2)
  // they are left failed with their reason.
  const auto again = test::run(prepare_command(*w, 2));
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.output.find(fmt::format("{} already done", w->plan.tiles.size() - affected.size())), std::string::npos) << again.output;
  const auto third = test::run(prepare_command(*w, 1));
  EXPECT_EQ(third.code, 1);
  EXPECT_NE(third.output.find(fmt::format("{} left failed after 2 attempts", affected.size())), std::string::npos) << third.output;
  EXPECT_NE(third.output.find(missing.string()), std::string::npos) << "the left-failed reasons are listed";
  fs::remove_all(w->dir);
}

}  // namespace
}  // namespace eo

namespace eo {
namespace {

std::map<std::string, std::string> file_contents(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().filename().string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

// Killed with SIGKILL in the middle of its work, then resumed, prepare leaves exactly the
// chip stores of a run that was never interrupted, byte for byte.
TEST(Prepare, KilledAndResumedEqualsUninterrupted) {
  std::string squares;
  for (int i = 0; i < 5; ++i) {
    const double lon = -121.3 + 0.9 * i, lat = 36.6;
    squares += fmt::format("{}(({} {}, {} {}, {} {}, {} {}, {} {}))", i ? "," : "", lon, lat, lon + 0.05, lat, lon + 0.05,
                           lat + 0.05, lon, lat + 0.05, lon, lat);
  }
  const auto w = test::make_world("killed", "MULTIPOLYGON(" + squares + ")", "", 80, 8);
  const fs::path out = w->config.output;
  const std::string prepare = fmt::format("{} prepare -q {}", EO_PIPELINE_EXE, w->config_file.string());
  ASSERT_EQ(test::run(prepare).code, 0);
  const auto clean = file_contents(out / "chips");
  ASSERT_EQ(clean.size(), w->plan.tiles.size());
  for (int kill_after : {1, 3}) {
    for (const char* sub : {"chips", "journal"}) fs::remove_all(out / sub);
    // Start, wait until `kill_after` tiles are journalled, then SIGKILL in the next one.
    const auto killed = test::run(fmt::format(
        "{} & pid=$!; for i in $(seq 2000); do n=$(cat {}/journal/*.jsonl 2>/dev/null | wc -l); "
        "[ \"$n\" -ge {} ] && break; sleep 0.01; done; kill -9 $pid; wait $pid; echo \"exit $?\"",
        prepare, out.string(), kill_after));
    EXPECT_NE(killed.output.find("exit 137"), std::string::npos) << "not killed: " << killed.output;
    EXPECT_LT(file_contents(out / "chips").size(), clean.size()) << "finished before the kill";
    const auto resumed = test::run(prepare);
    ASSERT_EQ(resumed.code, 0) << resumed.output;
    const auto after = file_contents(out / "chips");
    ASSERT_EQ(after.size(), clean.size());
    for (const auto& [name, bytes] : clean) EXPECT_TRUE(after.count(name) && after.at(name) == bytes) << name;
  }
  // Killed while compacting the journal, after its snapshot is published and before the
  // files it absorbed are removed: the next run finds every tile done, once.
  for (const char* sub : {"chips", "journal"}) fs::remove_all(out / sub);
  const auto killed = test::run("EO_FAILPOINT=journal-compacted@1=kill " + prepare + "; echo \"exit $?\"");
  EXPECT_NE(killed.output.find("exit 137"), std::string::npos) << "not killed: " << killed.output;
  EXPECT_TRUE(fs::exists(out / "journal" / "prepare.snapshot.jsonl"));
  EXPECT_EQ(read_journal(out / "journal", JournalStage::prepare).size(), clean.size());
  const auto resumed = test::run(prepare);
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find(fmt::format("0 done, 0 no data, 0 failed, {} already done", clean.size())), std::string::npos)
      << resumed.output;
  for (const auto& e : fs::directory_iterator(out / "journal"))
    EXPECT_FALSE(e.path().filename().string().starts_with("prepare-")) << "not folded: " << e.path();
  for (const auto& [tile, records] : read_journal(out / "journal", JournalStage::prepare)) EXPECT_EQ(records.size(), 1u) << tile;

  // A damaged snapshot stops every rank with its name (rank 0 reads it for all: the
  // others must not wait for it forever), and the chip stores are left as they were.
  std::ofstream(out / "journal" / "prepare.snapshot.jsonl") << "{damaged\n";
  const auto damaged = test::run("timeout 300 env " + prepare_command(*w, 2));
  EXPECT_NE(damaged.code, 0);
  EXPECT_NE(damaged.code, 124) << "the ranks hung";
  EXPECT_NE(damaged.output.find("prepare.snapshot.jsonl"), std::string::npos) << damaged.code << ": " << damaged.output;
  EXPECT_EQ(file_contents(out / "chips"), clean);
  fs::remove_all(w->dir);
}

}  // namespace
}  // namespace eo

namespace eo {
namespace {

// Nightly reprocessing of real inputs: the world as published (STAC scenes), prepared;
// then one new Sentinel-2 scene arrives over a part of one tile and is added to the
// catalog (`catalog --stac NEW --append`). The next prepare redoes exactly the tiles the
// scene touches, and their chip stores name it among their inputs.
TEST(Prepare, ANewSceneRedoesExactlyTheTilesItTouches) {
  const auto w = test::make_world("arrival", "POLYGON((-121.0 36.95, -119.85 36.95, -119.85 37.10, -121.0 37.10, -121.0 36.95))",
                                  "  layout: scenes\n  s2_scenes: 2\n  s1_scenes: 1\n", 80, 8);
  ASSERT_EQ(w->plan.tiles.size(), 3u);
  const auto first = test::run(prepare_command(*w, 1));
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_NE(first.output.find("3 done"), std::string::npos) << first.output;
  const auto first_journal = read_journal(w->config.output / "journal", JournalStage::prepare);

  // The scene: 4 km around the middle of tile 10N column 9, the day after a scene there.
  const LonLat where = utm_inverse(10, false, {680000, 4100000});
  const fs::path world = w->config.world_dir(), arrived = world / "stac" / "arrived.json";
  const auto cut = test::run(fmt::format("/usr/bin/python3 {}/tests/stages/reproject/scenes.py arrive {} {} {} {}", EO_SOURCE_DIR,
                                         (world / "stac" / "sentinel-2-l2a.json").string(), where.lon, where.lat, arrived.string()));
  ASSERT_EQ(cut.code, 0) << cut.output;
  const std::string id = cut.output.substr(0, cut.output.find(' '));
  const auto cat = test::run(fmt::format("{} catalog --stac {} --append --out {}", EO_PIPELINE_EXE, arrived.string(),
                                         w->config.catalog_path().string()));
  ASSERT_EQ(cat.code, 0) << cat.output;
  EXPECT_NE(cat.output.find("3 records added"), std::string::npos) << cat.output;

  // Which tiles read the new scene's files, by the catalog's footprints.
  const Catalog catalog = Catalog::load(w->config.catalog_path());
  std::set<std::string> touched;
  for (const TilePlan& t : w->plan.tiles)
    for (const auto& f : tile_sources(catalog, t, w->config.data.modalities))
      if (f.string().find(id) != std::string::npos) touched.insert(t.id.str());
  const std::string tile = tile_of(chip_at(Zone{10, false}, {680000, 4100000})).str();
  ASSERT_EQ(touched, std::set<std::string>{tile}) << "the scene should reach one tile";

  const auto again = test::run(prepare_command(*w, 1));
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("1 done, 0 no data, 0 failed, 2 already done"), std::string::npos) << again.output;
  const auto journal = read_journal(w->config.output / "journal", JournalStage::prepare);
  for (const TilePlan& t : w->plan.tiles)
    EXPECT_EQ(journal.at(t.id.str()).back().run_id != first_journal.at(t.id.str()).back().run_id, touched.count(t.id.str()) > 0)
        << t.id.str();
  // The redone tile's chip store lists the scene among its inputs.
  const auto py = test::run("/usr/bin/python3 -c \"import h5py, json\n"
                            "h = h5py.File('" + (w->config.output / "chips" / (tile + ".h5")).string() + "', 'r')\n"
                            "obs = json.loads(h['s2rgb'].attrs['observations'])\n"
                            "print([o['id'] for season in obs for o in season], h['s2rgb/clear'].shape)\"");
  ASSERT_EQ(py.code, 0) << py.output;
  EXPECT_NE(py.output.find(id), std::string::npos) << py.output;

  // The scene's green band goes missing: its tile (whose file set changed) is redone and
  // fails, naming the file, the item, the asset, the tile and the rank; the others stay
  // done, and the tile's chip store of the last good run is kept.
  const fs::path green = world / "sentinel-2-l2a" / id / "B03.tif";
  fs::remove(green);
  const auto broken = test::run(prepare_command(*w, 1));
  EXPECT_EQ(broken.code, 1) << broken.output;
  const std::string why = fmt::format("tile {}: rank 0: ingest: s2rgb: {} (item {}, asset green): no such file", tile,
                                      green.string(), id);
  EXPECT_NE(broken.output.find(why), std::string::npos) << broken.output;
  EXPECT_NE(broken.output.find("2 already done"), std::string::npos) << broken.output;
  EXPECT_TRUE(fs::exists(w->config.output / "chips" / (tile + ".h5")));
  fs::remove_all(w->dir);
}

}  // namespace
}  // namespace eo
