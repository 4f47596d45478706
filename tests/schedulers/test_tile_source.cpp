// The tile source without mpiexec: stand-in communicators say which rank of how many
// this process is (ADIOS2's serial Comm), so each rank's tiles are checked one by one.

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "schedulers/tile_source.hpp"
#include "support/plans.hpp"

namespace eo {
namespace {

std::vector<std::size_t> drain(TileSource& source) {
  std::vector<std::size_t> out;
  while (const auto i = source.next()) out.push_back(*i);
  return out;
}

TEST(TileSource, StaticRanksTakeDisjointCurveStretchesCoveringThePlan) {
  const Plan plan = test::demo_plan();
  const int ranks = 3;
  std::set<std::size_t> seen;
  for (int r = 0; r < ranks; ++r) {
    TileSource source(ScheduleSpec{Partition::static_split, CurveOrder::hilbert, {}}, plan, Comm::stand_in(r, ranks));
    EXPECT_EQ(source.job_tiles().size(), plan.tiles.size());
    const auto mine = drain(source);
    EXPECT_EQ(mine, static_partition(plan.tiles, ranks, CurveOrder::hilbert)[static_cast<std::size_t>(r)]);
    for (std::size_t i : mine) EXPECT_TRUE(seen.insert(i).second) << "tile " << i << " given twice";
  }
  EXPECT_EQ(seen.size(), plan.tiles.size());
}

TEST(TileSource, ArrayTasksSplitTheirBlockAmongTheirRanks) {
  const Plan plan = test::demo_plan();
  std::set<std::size_t> seen;
  for (int task = 0; task < 2; ++task) {
    const ArrayTask t{task, 2};
    const auto block = slurm_array_tiles(plan.tiles, t, CurveOrder::morton);
    std::set<std::size_t> of_task;
    for (int r = 0; r < 2; ++r) {
      TileSource source(ScheduleSpec{Partition::slurm_array, CurveOrder::morton, t}, plan, Comm::stand_in(r, 2));
      EXPECT_EQ(source.job_tiles(), block) << "the job of a task is its block";
      for (std::size_t i : drain(source)) {
        EXPECT_TRUE(of_task.insert(i).second);
        EXPECT_TRUE(seen.insert(i).second) << "tile " << i << " in two tasks";
      }
    }
    EXPECT_EQ(of_task, std::set<std::size_t>(block.begin(), block.end()));
  }
  EXPECT_EQ(seen.size(), plan.tiles.size());
}

TEST(TileSource, DynamicAloneHandsOutEveryTileInWalkingOrder) {
  const Plan plan = test::demo_plan();
  TileSource source(ScheduleSpec{Partition::dynamic, CurveOrder::hilbert, {}}, plan, Comm::serial());
  EXPECT_EQ(drain(source), curve_order(plan.tiles, CurveOrder::hilbert));
  EXPECT_FALSE(source.next());
}

TEST(StandInComm, RefusesARankItCannotBe) {
  EXPECT_THROW(Comm::stand_in(2, 2), std::invalid_argument);
  EXPECT_EQ(Comm::stand_in(1, 4).size(), 4);
  EXPECT_EQ(Comm::stand_in(1, 4).allreduce_sum(std::int64_t{5}), 5) << "its collectives see this process alone";
}

}  // namespace
}  // namespace eo
