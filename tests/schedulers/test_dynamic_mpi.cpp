// Dynamic hand-out under mpiexec: every tile goes to exactly one rank. Runs serially too.

#include <gtest/gtest.h>

#include <map>

#include "schedulers/comm.hpp"
#include "schedulers/partition.hpp"
#include "support/plans.hpp"

namespace eo {
namespace {

void expect_each_tile_once(const Plan& plan) {
  const Comm comm = Comm::world();
  std::vector<std::int64_t> mine;
  {
    DynamicQueue queue(comm, curve_order(plan.tiles, CurveOrder::hilbert));
    while (auto t = queue.next()) mine.push_back(static_cast<std::int64_t>(*t));
  }
  // (tile, rank) pairs from every rank
  std::vector<std::int64_t> tagged;
  for (std::int64_t t : mine) {
    tagged.push_back(t);
    tagged.push_back(comm.rank());
  }
  const std::vector<std::int64_t> all = comm.allgatherv(tagged);
  std::map<std::int64_t, int> owners;
  for (std::size_t i = 0; i < all.size(); i += 2) ++owners[all[i]];
  EXPECT_EQ(owners.size(), plan.tiles.size());
  for (const auto& [tile, count] : owners) EXPECT_EQ(count, 1) << "tile " << tile;
  std::int64_t chips = 0;
  for (std::int64_t t : mine) chips += plan.tiles.at(static_cast<std::size_t>(t)).chip_count();
  EXPECT_EQ(comm.allreduce_sum(chips), static_cast<std::int64_t>(plan.total.chips));
}

TEST(DynamicMpi, DemoPlanEveryTileOnce) { expect_each_tile_once(test::demo_plan()); }

TEST(DynamicMpi, PaperPlanEveryTileOnce) { expect_each_tile_once(test::paper_plan()); }

TEST(DynamicMpi, QueueCanBeCreatedAgain) {
  // A second queue starts from zero again (windows are freed collectively).
  const Plan plan = test::demo_plan();
  for (int round = 0; round < 2; ++round) expect_each_tile_once(plan);
}

}  // namespace
}  // namespace eo
