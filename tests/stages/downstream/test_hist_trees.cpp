// HistTrees against xgboost itself (Debian's libxgboost, its C API on one thread): the same
// parameters, data and seed must give the same predictions, every bit of every one.
#include <gtest/gtest.h>
#include <xgboost/c_api.h>

#include <cmath>
#include <random>
#include <string>

#include "stages/downstream/hist_trees.hpp"

using namespace eo;

namespace {

void ok(int code) {
  if (code != 0) throw std::runtime_error(XGBGetLastError());
}

struct Matrix {
  DMatrixHandle h = nullptr;
  explicit Matrix(const Rows& rows) {
    std::vector<float> flat;
    for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
    ok(XGDMatrixCreateFromMat(flat.data(), rows.size(), rows.front().size(), std::nanf(""), &h));
  }
  ~Matrix() { XGDMatrixFree(h); }
};

// xgboost's predictions of `query` after `rounds` rounds, each round's trees as `p` asks.
std::vector<float> xgboost(const Rows& x, const std::vector<float>& y, const Rows& query, const TreeParams& p,
                           int rounds, int predict_rounds) {
  const Matrix train(x), q(query);
  ok(XGDMatrixSetFloatInfo(train.h, "label", y.data(), y.size()));
  BoosterHandle b = nullptr;
  ok(XGBoosterCreate(&train.h, 1, &b));
  const std::vector<std::pair<std::string, std::string>> params = {
      {"objective", "reg:squarederror"}, {"tree_method", "hist"}, {"nthread", "1"}, {"verbosity", "0"},
      {"seed", std::to_string(p.seed)}, {"max_bin", std::to_string(p.max_bin)}, {"eta", std::to_string(p.eta)},
      {"max_depth", std::to_string(p.max_depth)}, {"subsample", std::to_string(p.subsample)},
      {"colsample_bytree", std::to_string(p.colsample_bytree)}, {"colsample_bynode", std::to_string(p.colsample_bynode)},
      {"num_parallel_tree", std::to_string(p.parallel_trees)}, {"lambda", std::to_string(p.lambda)},
      {"min_child_weight", std::to_string(p.min_child_weight)}};
  for (const auto& [k, v] : params) ok(XGBoosterSetParam(b, k.c_str(), v.c_str()));
  for (int i = 0; i < rounds; ++i) ok(XGBoosterUpdateOneIter(b, i, train.h));
  const std::string config = R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": )" +
                             std::to_string(predict_rounds) + R"(, "strict_shape": false})";
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* out = nullptr;
  ok(XGBoosterPredictFromDMatrix(b, q.h, config.c_str(), &shape, &dims, &out));
  std::vector<float> result(out, out + shape[0]);
  XGBoosterFree(b);
  return result;
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

TreeParams boosting(int max_bin, std::uint32_t seed) {  // the few-shot sweep's gbt
  TreeParams p;
  p.eta = 0.05f, p.max_depth = 4, p.subsample = 0.8f, p.colsample_bytree = 0.8f, p.max_bin = max_bin, p.seed = seed;
  return p;
}

TreeParams forest(int max_bin, std::uint32_t seed) {  // the few-shot sweep's rf
  TreeParams p;
  p.eta = 1, p.max_depth = 8, p.subsample = 0.632f, p.colsample_bynode = 0.5f, p.parallel_trees = 200, p.lambda = 0;
  p.max_bin = max_bin, p.seed = seed;
  return p;
}

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
  // Past twice its queue's summary (about 8 x max_bin values, more with levels) xgboost's sketch
  // summarises in levels, which HistTrees does not follow.
  EXPECT_TRUE(HistTrees::reproduces(make(900, 3, 0, 0, 1).x, 256));
  EXPECT_TRUE(HistTrees::reproduces(make(514, 3, 0, 0, 1).x, 16));
  EXPECT_FALSE(HistTrees::reproduces(make(515, 3, 0, 0, 1).x, 16));
  EXPECT_TRUE(HistTrees::reproduces(make(8194, 2, 0, 0, 1).x, 256));
  EXPECT_FALSE(HistTrees::reproduces(make(8195, 2, 0, 0, 1).x, 256));
  EXPECT_THROW(HistTrees(make(515, 3, 0, 0, 1).x, std::vector<float>(515), boosting(16, 0)), std::invalid_argument);
}
