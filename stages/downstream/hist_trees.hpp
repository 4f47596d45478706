#pragma once
// Gradient-boosted trees and random forests grown as xgboost 1.7's `hist` method grows them
// on one thread, bit for bit: the same quantile cuts, the same random draws, the same sums in
// the same order, the same splits, leaves and predictions (docs/decisions.md, 2026-12-01).
// Why our own: xgboost builds and scans every histogram bin of every feature at every node,
// however few chips the node holds; this keeps a node's histograms sparse and builds only the
// features a node samples, so the few-shot sweep's trees cost a fraction of xgboost's time.
// It covers reg:squarederror, depth-wise growth, uniform row sampling, colsample_bytree and
// colsample_bynode, lambda, min_child_weight and max_bin; `reproduces` says where its cuts
// are xgboost's (tests compare every prediction with xgboost's own).

#include <cstdint>
#include <random>
#include <vector>

namespace eo {

using Rows = std::vector<std::vector<float>>;  // one feature row per chip; NaN = missing

struct TreeParams {
  float eta = 0.3f;
  int max_depth = 6;
  float subsample = 1;
  float colsample_bytree = 1, colsample_bynode = 1;
  int parallel_trees = 1;  // xgboost's num_parallel_tree: a forest per round
  float lambda = 1;
  float min_child_weight = 1;
  int max_bin = 256;
  std::uint32_t seed = 0;
};

class HistTrees {
 public:
  // False when a feature holds more (non-missing) values than xgboost's quantile sketch keeps
  // in its queue (about 32 x max_bin), past which the sketch works in levels, not followed here.
  static bool reproduces(const Rows& x, int max_bin);

  HistTrees(const Rows& x, const std::vector<float>& y, const TreeParams& params);
  void boost(int rounds);
  // The sum of the first `rounds` rounds' trees (all of them when negative).
  std::vector<float> predict(const Rows& rows, int rounds = -1) const;

  struct Node {
    int left = -1, right = -1;
    std::uint32_t feature = 0;
    int split_bin = -1;  // rows whose bin is at most this go left; -1: none do
    float split_value = 0;
    bool default_left = false;
    float leaf = 0;
  };
  using Tree = std::vector<Node>;

 private:
  void grow(std::vector<float> grad, std::vector<float> hess, Tree& tree);

  TreeParams p_;
  std::size_t n_ = 0, d_ = 0;
  bool dense_ = true;
  std::vector<std::vector<float>> cuts_;  // per feature, xgboost's cut values
  std::vector<float> min_values_;
  std::vector<std::uint16_t> bins_;  // feature-major: bins_[f * n + i]; kMissing for NaN
  std::vector<std::vector<std::uint32_t>> bin_start_, bin_rows_;  // per feature: each bin's rows
  std::vector<float> labels_, margin_;
  std::vector<Tree> trees_;
  // xgboost's thread-local global engine (common/random.h), seeded with `seed` when the
  // booster is configured, and its column sampler's, seeded from the global's first draw.
  std::mt19937 global_rng_, column_rng_;
  struct Bin {
    std::uint32_t bin;
    double g, h;
  };
  std::vector<Bin> pool_;  // the histograms' storage, reused tree after tree
};

}  // namespace eo
