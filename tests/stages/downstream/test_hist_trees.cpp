// HistTrees against xgboost itself (Debian's libxgboost through XgboostTrees, its C API on
// one thread): the same parameters, data and seed must give the same predictions, every bit
// of every one.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "stages/downstream/hist_trees.hpp"
#include "stages/downstream/models.hpp"

using namespace eo;

namespace {

// xgboost's predictions of `query` after `rounds` rounds, on one thread.
std::vector<float> xgboost(const Rows& x, const std::vector<float>& y, const Rows& query, const TreeParams& p,
                           int rounds, int predict_rounds) {
  XgboostTrees trees(x, y, p, 1);
  trees.boost(rounds);
  return trees.predict(query, predict_rounds);
}

struct Data {
  Rows x, query;
  std::vector<float> y;
};

// A nonlinear target of two features; `missing`: the share of NaN values; `grid` > 0 rounds
// values to multiples of 1/grid, so that features repeat values and splits tie.
Data make(int n, int d, double missing, int grid, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::uniform_real_distribution<double> u;
  auto rows = [&](int m) {
    Rows x(static_cast<std::size_t>(m), std::vector<float>(static_cast<std::size_t>(d)));
    for (auto& r : x)
      for (float& v : r) {
        v = g(rng);
        if (grid > 0) v = std::round(v * static_cast<float>(grid)) / static_cast<float>(grid);
        if (u(rng) < missing) v = std::nanf("");
      }
    return x;
  };
  Data data{rows(n), rows(200), {}};
  for (const auto& r : data.x) {
    const float a = std::isnan(r[0]) ? 0 : r[0], b = std::isnan(r[1 % d]) ? 0 : r[1 % d];
    data.y.push_back(a * a + std::sin(3 * b) + 0.3f * g(rng));
  }
  return data;
}

TreeParams boosting(int max_bin, std::uint32_t seed) { return sweep_tree_params(ModelKind::gbt, seed, max_bin); }
TreeParams forest(int max_bin, std::uint32_t seed) { return sweep_tree_params(ModelKind::rf, seed, max_bin); }

void expect_same(const Data& data, const TreeParams& p, int rounds, int predict_rounds, const std::string& what) {
  ASSERT_TRUE(HistTrees::reproduces(data.x, p.max_bin)) << what;
  HistTrees ours(data.x, data.y, p);
  ours.boost(rounds);
  const std::vector<float> mine = ours.predict(data.query, predict_rounds);
  const std::vector<float> theirs = xgboost(data.x, data.y, data.query, p, rounds, predict_rounds);
  ASSERT_EQ(mine.size(), theirs.size());
  int differ = 0;
  for (std::size_t i = 0; i < mine.size(); ++i) differ += mine[i] != theirs[i];
  EXPECT_EQ(differ, 0) << what << ": first " << mine[0] << " against xgboost's " << theirs[0];
}

}  // namespace

TEST(HistTrees, BoostingIsXgboostsBitForBit) {
  struct Case {
    int n, d;
    double missing;
    int grid, max_bin;
  };
  // Few rows (each value its own bin), more rows than bins (the sketch prunes), missing values
  // (scans both ways), tied values, coarse bins, and rows past the sketch's first summary.
  for (const Case c : {Case{25, 40, 0, 0, 256}, Case{500, 30, 0, 0, 256}, Case{919, 12, 0, 0, 32},
                       Case{300, 10, 0.1, 0, 256}, Case{400, 8, 0, 4, 256}, Case{100, 6, 0.3, 8, 3},
                       Case{3000, 5, 0, 0, 256}}) {
    const Data data = make(c.n, c.d, c.missing, c.grid, static_cast<unsigned>(c.n + c.d));
    const std::string what = "n " + std::to_string(c.n) + ", d " + std::to_string(c.d) + ", max_bin " +
                             std::to_string(c.max_bin) + ", missing " + std::to_string(c.missing);
    expect_same(data, boosting(c.max_bin, 2), 60, 60, what);
    expect_same(data, boosting(c.max_bin, 0), 60, 25, what + ", the first 25 rounds");
  }
}

TEST(HistTrees, ForestIsXgboostsBitForBit) {
  struct Case {
    int n, d;
    double missing;
    int grid, max_bin;
  };
  for (const Case c : {Case{25, 40, 0, 0, 256}, Case{700, 24, 0, 0, 256}, Case{300, 10, 0.1, 0, 256},
                       Case{400, 8, 0.2, 2, 16}, Case{2500, 4, 0, 0, 256}})
    for (std::uint32_t seed : {0u, 1u})
      expect_same(make(c.n, c.d, c.missing, c.grid, seed + static_cast<unsigned>(c.n)), forest(c.max_bin, seed), 1, 1,
                  "forest, n " + std::to_string(c.n) + ", seed " + std::to_string(seed));
}

TEST(HistTrees, SaysWhereItsCutsAreNotXgboosts) {
  // Past what its queue holds (2 x its summary's limit: 514 values for 16 bins, 8,194 for
  // 256) xgboost's sketch summarises in levels, which HistTrees does not follow.
  EXPECT_TRUE(HistTrees::reproduces(make(900, 3, 0, 0, 1).x, 256));
  EXPECT_TRUE(HistTrees::reproduces(make(514, 3, 0, 0, 1).x, 16));
  EXPECT_FALSE(HistTrees::reproduces(make(515, 3, 0, 0, 1).x, 16));
  EXPECT_TRUE(HistTrees::reproduces(make(8194, 2, 0, 0, 1).x, 256));
  EXPECT_FALSE(HistTrees::reproduces(make(8195, 2, 0, 0, 1).x, 256));
  EXPECT_THROW(HistTrees(make(515, 3, 0, 0, 1).x, std::vector<float>(515), boosting(16, 0)), std::invalid_argument);
}

TEST(HistTrees, TheSweepsForestIsXgboostsWhicheverGrowsIt) {
  // fit_predict's forest against xgboost's with the sweep's settings: grown by HistTrees
  // (600 rows) and by xgboost itself (9,000 rows: more values than the sketch's queue).
  for (int n : {600, 9000}) {
    const Data data = make(n, 3, 0, 0, static_cast<unsigned>(n));
    const Data validation = make(100, 3, 0, 0, 5);
    EXPECT_EQ(HistTrees::reproduces(data.x, 256), n < 8194);
    const std::vector<float> swept =
        fit_predict(ModelKind::rf, {&data.x, &data.y}, {&validation.x, &validation.y}, data.query, 1, 1, 256);
    EXPECT_EQ(swept, xgboost(data.x, data.y, data.query, forest(256, 1), 1, 1)) << n << " rows";
  }
}
