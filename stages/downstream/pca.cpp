#include "stages/downstream/pca.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace eo {

std::vector<double> Pca::project(const std::vector<float>& row) const {
  std::vector<double> out;
  for (const auto& a : axes) {
    double s = 0;
    for (std::size_t j = 0; j < a.size(); ++j) s += (row[j] - mean[j]) * a[j];
    out.push_back(s);
  }
  return out;
}

Pca fit_pca(const Rows& rows, int k) {
  std::vector<const std::vector<float>*> use;
  for (const auto& r : rows)
    if (std::none_of(r.begin(), r.end(), [](float v) { return std::isnan(v); })) use.push_back(&r);
  if (use.size() < 2) throw std::invalid_argument("fit_pca: fewer than 2 complete rows");
  const std::size_t d = use.front()->size();
  Pca p;
  p.mean.assign(d, 0);
  for (const auto* r : use)
    for (std::size_t j = 0; j < d; ++j) p.mean[j] += (*r)[j];
  for (double& m : p.mean) m /= static_cast<double>(use.size());
  std::vector<double> cov(d * d, 0);
  for (const auto* r : use)
    for (std::size_t i = 0; i < d; ++i)
      for (std::size_t j = 0; j <= i; ++j) cov[i * d + j] += ((*r)[i] - p.mean[i]) * ((*r)[j] - p.mean[j]);
  for (std::size_t i = 0; i < d; ++i)
    for (std::size_t j = 0; j <= i; ++j) cov[j * d + i] = cov[i * d + j] /= static_cast<double>(use.size() - 1);
  for (int c = 0; c < k && static_cast<std::size_t>(c) < d; ++c) {
    std::vector<double> v(d);
    for (std::size_t j = 0; j < d; ++j) v[j] = 1.0 + 0.01 * static_cast<double>(j);  // not orthogonal to any axis, in practice
    double lambda = 0;
    for (int it = 0; it < 500; ++it) {
      std::vector<double> w(d, 0);
      for (std::size_t i = 0; i < d; ++i)
        for (std::size_t j = 0; j < d; ++j) w[i] += cov[i * d + j] * v[j];
      double norm = 0;
      for (double x : w) norm += x * x;
      norm = std::sqrt(norm);
      if (norm == 0) break;
      for (std::size_t j = 0; j < d; ++j) w[j] /= norm;
      double change = 0;
      for (std::size_t j = 0; j < d; ++j) change += std::abs(w[j] - v[j]);
      v = w;
      lambda = norm;
      if (change < 1e-10) break;
    }
    // A fixed sign, so that the pictures do not flip between runs.
    double sum = 0;
    for (double x : v) sum += x;
    if (sum < 0)
      for (double& x : v) x = -x;
    for (std::size_t i = 0; i < d; ++i)  // deflate
      for (std::size_t j = 0; j < d; ++j) cov[i * d + j] -= lambda * v[i] * v[j];
    p.axes.push_back(v);
    p.variance.push_back(lambda);
  }
  return p;
}

}  // namespace eo
