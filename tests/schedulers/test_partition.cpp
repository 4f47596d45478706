// Partitioners: every chip to exactly one rank, balanced by chips, spatially compact.

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "schedulers/partition.hpp"
#include "support/plans.hpp"

namespace eo {
namespace {

// Each planned chip appears in exactly one part.
void expect_exact_cover(const Plan& plan, const Assignment& parts, const std::string& what) {
  std::set<ChipId> seen;
  std::size_t total = 0;
  for (const auto& part : parts)
    for (std::size_t t : part) {
      const TilePlan& tile = plan.tiles.at(t);
      for (int i = 0; i < kChipsPerTile; ++i)
        if (tile.chips.test(static_cast<std::size_t>(i))) {
          EXPECT_TRUE(seen.insert(tile.id.chip(i)).second) << what << ": chip twice " << tile.id.chip(i).str();
          ++total;
        }
    }
  EXPECT_EQ(total, plan.total.chips) << what;
  EXPECT_EQ(seen.size(), plan.total.chips) << what;
}

Assignment array_parts(const Plan& plan, int tasks, CurveOrder order) {
  Assignment parts;
  for (int t = 0; t < tasks; ++t) parts.push_back(slurm_array_tiles(plan.tiles, {t, tasks}, order));
  return parts;
}

TEST(Partition, EveryChipToExactlyOneRank) {
  for (const Plan& plan : {test::demo_plan(), test::paper_plan()})
    for (int ranks : {1, 2, 3, 7})
      for (CurveOrder order : {CurveOrder::hilbert, CurveOrder::morton}) {
        const std::string what = std::to_string(plan.tiles.size()) + " tiles, " + std::to_string(ranks) + " ranks";
        expect_exact_cover(plan, static_partition(plan.tiles, ranks, order), "static " + what);
        expect_exact_cover(plan, simulate_dynamic(plan.tiles, ranks, order), "dynamic " + what);
        expect_exact_cover(plan, array_parts(plan, ranks, order), "slurm-array " + what);
      }
}

TEST(Partition, MoreRanksThanTiles) {
  const Plan plan = test::demo_plan();
  const int ranks = static_cast<int>(plan.tiles.size()) + 3;
  const Assignment parts = static_partition(plan.tiles, ranks, CurveOrder::hilbert);
  expect_exact_cover(plan, parts, "static");
  int empty = 0;
  for (const auto& p : parts) empty += p.empty();
  EXPECT_GE(empty, 3);
}

TEST(Partition, StaticBalancedWithinFivePercentAtHundredTilesPerRank) {
  const Plan plan = test::paper_plan();
  ASSERT_GT(plan.tiles.size(), 3000u);
  for (int ranks : {2, 3, 7, 16, static_cast<int>(plan.tiles.size() / 100)}) {
    const Balance b = balance_of(static_partition(plan.tiles, ranks, CurveOrder::hilbert), plan.tiles);
    EXPECT_LE(b.imbalance, 1.05) << ranks << " ranks";
    for (std::size_t t : b.tiles) EXPECT_GT(t, 0u);
  }
}

TEST(Partition, StaticBlocksAreSpatiallyCompact) {
  // Along the Hilbert walk inside a zone, consecutive tiles are neighbours far more often
  // than along a row-major walk; and a rank's block spans few zones.
  const Plan plan = test::paper_plan();
  const auto walk = curve_order(plan.tiles, CurveOrder::hilbert);
  int adjacent = 0, steps = 0;
  for (std::size_t i = 1; i < walk.size(); ++i) {
    const TileId a = plan.tiles[walk[i - 1]].id, b = plan.tiles[walk[i]].id;
    if (a.zone != b.zone) continue;
    ++steps;
    adjacent += std::abs(a.row - b.row) + std::abs(a.col - b.col) == 1;
  }
  EXPECT_GT(static_cast<double>(adjacent) / steps, 0.8);
  for (const auto& part : static_partition(plan.tiles, 7, CurveOrder::hilbert)) {
    std::set<Zone> zones;
    for (std::size_t t : part) zones.insert(plan.tiles[t].id.zone);
    EXPECT_LE(zones.size(), 6u);
  }
}

TEST(Partition, HilbertAndMortonAreBijectionsOnASquare) {
  std::set<std::uint64_t> h, m;
  for (std::uint32_t x = 0; x < 32; ++x)
    for (std::uint32_t y = 0; y < 32; ++y) {
      h.insert(hilbert_index(x, y));
      m.insert(morton_index(x, y));
    }
  EXPECT_EQ(h.size(), 1024u);
  EXPECT_EQ(m.size(), 1024u);
  EXPECT_EQ(morton_index(3, 5), 0b100111u);
}

TEST(Partition, SlurmArrayTaskFromEnvironment) {
  ::setenv("SLURM_ARRAY_TASK_ID", "12", 1);
  ::setenv("SLURM_ARRAY_TASK_MIN", "10", 1);
  ::setenv("SLURM_ARRAY_TASK_STEP", "1", 1);
  ::setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
  ArrayTask t = array_task_from_env();
  EXPECT_EQ(t.index, 2);
  EXPECT_EQ(t.count, 4);
  ::setenv("SLURM_ARRAY_TASK_ID", "14", 1);
  try {
    array_task_from_env();
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("SLURM_ARRAY_TASK_ID=14"), std::string::npos) << e.what();
  }
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  try {
    array_task_from_env();
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("SLURM_ARRAY_TASK_ID is not set"), std::string::npos) << e.what();
  }
  // A resubmitted subset (--array=1,3 gives _COUNT=2, _MIN=1) keeps its blocks of the whole array.
  ::setenv("SLURM_ARRAY_TASK_ID", "3", 1);
  ::setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
  ::setenv("SLURM_ARRAY_TASK_COUNT", "2", 1);
  ::setenv("EO_ARRAY_SIZE", "4", 1);
  t = array_task_from_env();
  EXPECT_EQ(t.index, 3);
  EXPECT_EQ(t.count, 4);
  ::setenv("EO_ARRAY_SIZE", "3", 1);
  EXPECT_THROW(array_task_from_env(), std::runtime_error);
  for (const char* v : {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT",
                        "EO_ARRAY_SIZE"})
    ::unsetenv(v);
}

}  // namespace
}  // namespace eo
