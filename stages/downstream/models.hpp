#pragma once
// The classical models of the few-shot experiments: ridge regression (the linear
// baseline), gradient-boosted trees and a random forest (xgboost's C API), and their
// scores.

#include <cstdint>
#include <string>
#include <vector>

#include "stages/downstream/hist_trees.hpp"  // Rows

namespace eo {

enum class ModelKind { ridge, gbt, rf };
const char* model_name(ModelKind kind);

struct FitData {
  const Rows* x = nullptr;
  const std::vector<float>* y = nullptr;
};

// Fits on `train`, choosing the model's capacity (ridge's penalty, the trees' rounds) on
// `validation`, and predicts `query`. `max_bin`: the trees' histogram bins per feature
// (xgboost's max_bin; 256, its default, unless a user trades exact numbers for speed).
std::vector<float> fit_predict(ModelKind kind, FitData train, FitData validation, const Rows& query, std::uint64_t seed,
                               int threads, int max_bin = 256);

struct Scores {
  double r2 = 0, rmse = 0;
  double f1 = 0, accuracy = 0;  // of presence (value >= threshold); NaN when not asked
};
// `threshold` NaN: no presence scores.
Scores score(const std::vector<float>& truth, const std::vector<float>& predicted, double threshold);

}  // namespace eo
