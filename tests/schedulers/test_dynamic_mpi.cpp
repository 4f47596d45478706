// Under mpiexec (and serially too): dynamic hand-out gives every tile to exactly one rank;
// what rank 0 tries, every rank learns.

#include <gtest/gtest.h>

#include <map>

#include "pipeline/core/config.hpp"  // ConfigError
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

// rank_zero_tries: only rank 0 runs the attempt; every rank gets what it returned, or
// throws what it threw, a configuration error as one.
TEST(RankZeroTries, EveryRankLearnsTheOutcome) {
  const Comm comm = Comm::world();
  int calls = 0;
  EXPECT_EQ(comm.rank_zero_tries([&] {
    ++calls;
    return std::string("from rank ") + std::to_string(comm.rank());
  }), "from rank 0");
  EXPECT_EQ(comm.allreduce_sum(calls), 1) << "the attempt ran on one rank";
  comm.rank_zero_tries([&] { ++calls; });  // nothing to return
  EXPECT_EQ(comm.allreduce_sum(calls), 2);
  try {
    comm.rank_zero_tries([&] { throw ConfigError("schedule.partition: no such thing"); });
    ADD_FAILURE() << "rank " << comm.rank() << " went on";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "schedule.partition: no such thing");
  }
  try {
    comm.rank_zero_tries([&]() -> std::string { throw std::runtime_error("journal: unreadable"); });
    ADD_FAILURE() << "rank " << comm.rank() << " went on";
  } catch (const ConfigError&) {
    ADD_FAILURE() << "not a configuration error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "journal: unreadable");
  }
  comm.barrier();  // every rank got here: none was left waiting
}

}  // namespace
}  // namespace eo
