#pragma once
// The classical models of the few-shot experiments: ridge regression (the linear
// baseline), gradient-boosted trees and a random forest (xgboost's, grown by HistTrees),
// and their scores.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stages/downstream/hist_trees.hpp"  // Rows

namespace eo {

enum class ModelKind { ridge, gbt, rf };
const char* model_name(ModelKind kind);

// The sweep's trees: gradient-boosted (400 rounds, of which the validation set keeps 25 to
// 400) or a random forest (one round of 200 parallel trees on bootstrap-like subsamples).
TreeParams sweep_tree_params(ModelKind kind, std::uint64_t seed, int max_bin);

// xgboost's own trees (its C API, `threads` threads) with HistTrees' parameters and
// interface: where HistTrees' cuts are not xgboost's, and as the reference it is tested
// and measured against.
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
// (xgboost's max_bin; 256, its default, unless a user trades exact numbers for speed).
// `threads`: xgboost's, where it grows the trees (HistTrees grows them on one).
std::vector<float> fit_predict(ModelKind kind, FitData train, FitData validation, const Rows& query, std::uint64_t seed,
                               int threads, int max_bin = 256);

struct Scores {
  double r2 = 0, rmse = 0;
  double f1 = 0, accuracy = 0;  // of presence (value >= threshold); NaN when not asked
};
// `threshold` NaN: no presence scores.
Scores score(const std::vector<float>& truth, const std::vector<float>& predicted, double threshold);

}  // namespace eo
