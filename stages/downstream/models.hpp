#pragma once
// The classical models of the few-shot experiments: ridge regression (the linear
// baseline), gradient-boosted trees and a random forest (xgboost's `hist` method, through
// its C API), and their scores.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace eo {

using Rows = std::vector<std::vector<float>>;  // one feature row per chip; NaN = missing

// xgboost's parameters of a fit.
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

enum class ModelKind { ridge, gbt, rf };
const char* model_name(ModelKind kind);

// The sweep's trees: gradient-boosted (400 rounds, of which the validation set keeps 25 to
// 400) or a random forest (one round of 200 parallel trees on bootstrap-like subsamples).
TreeParams sweep_tree_params(ModelKind kind, std::uint64_t seed, int max_bin);

// xgboost's trees (its C API, `threads` threads, the `hist` method), grown round by round.
class XgboostTrees {
 public:
  XgboostTrees(const Rows& x, const std::vector<float>& y, const TreeParams& params, int threads);
  void boost(int rounds);
  std::vector<float> predict(const Rows& rows, int rounds = -1) const;  // every round's when negative

 private:
  std::unique_ptr<void, int (*)(void*)> train_, booster_;
  int rounds_ = 0;
};

struct FitData {
  const Rows* x = nullptr;
  const std::vector<float>* y = nullptr;
};

// Fits on `train`, choosing the model's capacity (ridge's penalty, the trees' rounds) on
// `validation`, and predicts `query`. `max_bin`: the trees' histogram bins per feature
// (xgboost's max_bin; 256 is its default, fewer fit faster with other numbers).
// `threads`: xgboost's.
std::vector<float> fit_predict(ModelKind kind, FitData train, FitData validation, const Rows& query, std::uint64_t seed,
                               int threads, int max_bin = 256);

struct Scores {
  double r2 = 0, rmse = 0;
  double f1 = 0, accuracy = 0;  // of presence (value >= threshold); NaN when not asked
};
// `threshold` NaN: no presence scores.
Scores score(const std::vector<float>& truth, const std::vector<float>& predicted, double threshold);

}  // namespace eo
