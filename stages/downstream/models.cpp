#include "stages/downstream/models.hpp"

#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>

#include "pipeline/core/error.hpp"

namespace eo {

const char* model_name(ModelKind kind) {
  switch (kind) {
    case ModelKind::ridge: return "ridge";
    case ModelKind::gbt: return "gbt";
    case ModelKind::rf: return "rf";
  }
  return "?";
}

namespace {

// Cholesky solve of the symmetric positive definite a (n x n, row-major) for b.
std::vector<double> solve_spd(std::vector<double> a, std::vector<double> b, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (std::size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (d <= 0) throw StageError("fewshot", "ridge: the system is not positive definite");
    const double l = std::sqrt(d);
    a[j * n + j] = l;
    for (std::size_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (std::size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / l;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {  // L z = b
    for (std::size_t k = 0; k < i; ++k) b[i] -= a[i * n + k] * b[k];
    b[i] /= a[i * n + i];
  }
  for (std::size_t i = n; i-- > 0;) {  // L^T w = z
    for (std::size_t k = i + 1; k < n; ++k) b[i] -= a[k * n + i] * b[k];
    b[i] /= a[i * n + i];
  }
  return b;
}

// Ridge on standardised features (missing values take the training mean), solved in the
// smaller of the primal and dual forms; the penalty is chosen on the validation set.
std::vector<float> ridge(FitData train, FitData validation, const Rows& query) {
  const Rows& x = *train.x;
  const std::size_t n = x.size(), d = x.front().size();
  std::vector<double> mean(d, 0), sd(d, 0);
  std::vector<std::size_t> count(d, 0);
  for (const auto& r : x)
    for (std::size_t j = 0; j < d; ++j)
      if (!std::isnan(r[j])) mean[j] += r[j], ++count[j];
  for (std::size_t j = 0; j < d; ++j) mean[j] = count[j] ? mean[j] / count[j] : 0;
  for (const auto& r : x)
    for (std::size_t j = 0; j < d; ++j)
      if (!std::isnan(r[j])) sd[j] += (r[j] - mean[j]) * (r[j] - mean[j]);
  for (std::size_t j = 0; j < d; ++j) sd[j] = count[j] > 1 && sd[j] > 0 ? std::sqrt(sd[j] / count[j]) : 1;
  auto z = [&](const std::vector<float>& r, std::size_t j) { return std::isnan(r[j]) ? 0.0 : (r[j] - mean[j]) / sd[j]; };
  double ybar = 0;
  for (float v : *train.y) ybar += v;
  ybar /= static_cast<double>(n);

  // The standardised rows and the Gram matrix of the smaller form, once: only the penalty
  // changes between the fits below.
  std::vector<double> zs(n * d);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) zs[i * d + j] = z(x[i], j);
  const bool primal = d <= n;
  const std::size_t m = primal ? d : n;
  std::vector<double> gram(m * m, 0), rhs(m, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const double yc = (*train.y)[i] - ybar;
    if (primal) {
      for (std::size_t j = 0; j < d; ++j) {
        rhs[j] += zs[i * d + j] * yc;
        for (std::size_t k = 0; k <= j; ++k) gram[j * d + k] += zs[i * d + j] * zs[i * d + k];
      }
    } else {
      rhs[i] = yc;
      for (std::size_t k = 0; k <= i; ++k)
        for (std::size_t j = 0; j < d; ++j) gram[i * n + k] += zs[i * d + j] * zs[k * d + j];
    }
  }
  for (std::size_t j = 0; j < m; ++j)
    for (std::size_t k = 0; k < j; ++k) gram[k * m + j] = gram[j * m + k];

  auto fit = [&](double lambda) {  // weights on the standardised features
    std::vector<double> a = gram;
    for (std::size_t j = 0; j < m; ++j) a[j * m + j] += lambda;
    const std::vector<double> solved = solve_spd(std::move(a), rhs, m);
    if (primal) return solved;
    std::vector<double> w(d, 0);  // w = Z^T (Z Z^T + lambda I)^-1 (y - ybar)
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < d; ++j) w[j] += solved[i] * zs[i * d + j];
    return w;
  };
  auto predict = [&](const std::vector<double>& w, const Rows& rows) {
    std::vector<float> out;
    for (const auto& r : rows) {
      double s = ybar;
      for (std::size_t j = 0; j < d; ++j) s += w[j] * z(r, j);
      out.push_back(static_cast<float>(s));
    }
    return out;
  };
  std::vector<double> best;
  double best_error = std::numeric_limits<double>::infinity();
  for (double lambda : {0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0}) {
    const auto w = fit(lambda * static_cast<double>(std::max(n, d)) / 100.0);
    const auto p = predict(w, *validation.x);
    double e = 0;
    for (std::size_t i = 0; i < p.size(); ++i) e += (p[i] - (*validation.y)[i]) * (p[i] - (*validation.y)[i]);
    if (e < best_error) best_error = e, best = w;
  }
  // Only values beyond double precision's squares get here: the readers refuse non-finite labels.
  if (best.empty()) throw StageError("fewshot", "ridge: no regularisation gives a finite validation error");
  return predict(best, query);
}

// The rounds whose predictions of the validation set err least (a forest has one).
int best_rounds(ModelKind kind, const std::vector<float>& truth, const std::function<std::vector<float>(int)>& predict) {
  if (kind != ModelKind::gbt) return 1;
  int rounds = 0;
  double best = std::numeric_limits<double>::infinity();
  for (int r : {25, 50, 100, 200, 400}) {
    const auto p = predict(r);
    double e = 0;
    for (std::size_t i = 0; i < p.size(); ++i) e += (p[i] - truth[i]) * (p[i] - truth[i]);
    if (e < best) best = e, rounds = r;
  }
  return rounds;
}

std::vector<float> trees(ModelKind kind, FitData train, FitData validation, const Rows& query, std::uint64_t seed,
                         int threads, int max_bin) {
  XgboostTrees model(*train.x, *train.y, sweep_tree_params(kind, seed, max_bin), threads);
  model.boost(kind == ModelKind::gbt ? 400 : 1);
  return model.predict(query, best_rounds(kind, *validation.y, [&](int r) { return model.predict(*validation.x, r); }));
}

}  // namespace

TreeParams sweep_tree_params(ModelKind kind, std::uint64_t seed, int max_bin) {
  TreeParams p;
  p.max_bin = max_bin;
  p.seed = static_cast<std::uint32_t>(seed % 2147483647);
  if (kind == ModelKind::gbt) {
    p.eta = 0.05f, p.max_depth = 4, p.subsample = 0.8f, p.colsample_bytree = 0.8f;
  } else {
    p.eta = 1, p.max_depth = 8, p.subsample = 0.632f, p.colsample_bynode = 0.5f, p.parallel_trees = 200, p.lambda = 0;
  }
  return p;
}

namespace {

void check(int code, const char* what) {
  if (code != 0) throw StageError("fewshot", fmt::format("xgboost: {}: {}", what, XGBGetLastError()));
}

DMatrixHandle matrix(const Rows& rows) {
  std::vector<float> flat;
  flat.reserve(rows.size() * rows.front().size());
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  DMatrixHandle h = nullptr;
  check(XGDMatrixCreateFromMat(flat.data(), rows.size(), rows.front().size(), std::numeric_limits<float>::quiet_NaN(), &h),
        "XGDMatrixCreateFromMat");
  return h;
}

}  // namespace

XgboostTrees::XgboostTrees(const Rows& x, const std::vector<float>& y, const TreeParams& p, int threads)
    : train_(matrix(x), XGDMatrixFree), booster_(nullptr, XGBoosterFree) {
  check(XGDMatrixSetFloatInfo(train_.get(), "label", y.data(), y.size()), "XGDMatrixSetFloatInfo");
  DMatrixHandle train = train_.get();
  BoosterHandle booster = nullptr;
  check(XGBoosterCreate(&train, 1, &booster), "XGBoosterCreate");
  booster_.reset(booster);
  const std::vector<std::pair<const char*, std::string>> params = {
      {"objective", "reg:squarederror"}, {"tree_method", "hist"}, {"nthread", std::to_string(threads)},
      {"seed", std::to_string(p.seed)}, {"verbosity", "0"}, {"max_bin", std::to_string(p.max_bin)},
      {"eta", fmt::format("{}", p.eta)}, {"max_depth", std::to_string(p.max_depth)},
      {"subsample", fmt::format("{}", p.subsample)}, {"colsample_bytree", fmt::format("{}", p.colsample_bytree)},
      {"colsample_bynode", fmt::format("{}", p.colsample_bynode)}, {"num_parallel_tree", std::to_string(p.parallel_trees)},
      {"lambda", fmt::format("{}", p.lambda)}, {"min_child_weight", fmt::format("{}", p.min_child_weight)}};
  for (const auto& [k, v] : params) check(XGBoosterSetParam(booster, k, v.c_str()), k);
}

void XgboostTrees::boost(int rounds) {
  for (int i = 0; i < rounds; ++i, ++rounds_)
    check(XGBoosterUpdateOneIter(booster_.get(), rounds_, train_.get()), "XGBoosterUpdateOneIter");
}

std::vector<float> XgboostTrees::predict(const Rows& rows, int rounds) const {
  const std::unique_ptr<void, int (*)(DMatrixHandle)> m(matrix(rows), XGDMatrixFree);
  const std::string config =
      fmt::format(R"({{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": {}, "strict_shape": false}})",
                  std::max(rounds, 0));
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* out = nullptr;
  check(XGBoosterPredictFromDMatrix(booster_.get(), m.get(), config.c_str(), &shape, &dims, &out), "predict");
  return std::vector<float>(out, out + shape[0]);
}

std::vector<float> fit_predict(ModelKind kind, FitData train, FitData validation, const Rows& query, std::uint64_t seed,
                               int threads, int max_bin) {
  if (train.x->empty() || validation.x->empty()) throw std::invalid_argument("fit_predict: no training or validation rows");
  return kind == ModelKind::ridge ? ridge(train, validation, query) : trees(kind, train, validation, query, seed, threads, max_bin);
}

Scores score(const std::vector<float>& truth, const std::vector<float>& predicted, double threshold) {
  Scores s;
  const std::size_t n = truth.size();
  double mean = 0;
  for (float t : truth) mean += t;
  mean /= static_cast<double>(n);
  double ss_res = 0, ss_tot = 0;
  std::size_t tp = 0, fp = 0, fn = 0, right = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ss_res += (truth[i] - predicted[i]) * (truth[i] - predicted[i]);
    ss_tot += (truth[i] - mean) * (truth[i] - mean);
    const bool t = truth[i] >= threshold, p = predicted[i] >= threshold;
    tp += t && p, fp += !t && p, fn += t && !p, right += t == p;
  }
  s.rmse = std::sqrt(ss_res / static_cast<double>(n));
  s.r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 0;
  if (std::isnan(threshold)) {
    s.f1 = s.accuracy = std::nan("");
  } else {
    s.accuracy = static_cast<double>(right) / static_cast<double>(n);
    s.f1 = tp == 0 ? 0 : 2.0 * tp / (2.0 * tp + fp + fn);
  }
  return s;
}

}  // namespace eo
