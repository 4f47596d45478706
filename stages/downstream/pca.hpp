#pragma once
// Principal components of embeddings, for the pictures of `render`.

#include <vector>

#include "stages/downstream/models.hpp"

namespace eo {

struct Pca {
  std::vector<double> mean;
  std::vector<std::vector<double>> axes;  // k unit vectors, by decreasing variance
  std::vector<double> variance;           // along each axis
  std::vector<double> project(const std::vector<float>& row) const;
};

// The first `k` components of the rows without NaN (power iteration with deflation on
// the covariance). Throws std::invalid_argument with fewer than 2 such rows.
Pca fit_pca(const Rows& rows, int k);

}  // namespace eo
