#include "stages/downstream/split.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace eo {

std::vector<SplitSet> stripe_split(const std::vector<Point>& points, double angle_deg, int stripes) {
  if (stripes < 5 || stripes % 5 != 0) throw std::invalid_argument("stripe_split: stripes must be a multiple of 5");
  const double a = angle_deg * M_PI / 180.0, cx = std::cos(a), cy = std::sin(a);
  std::vector<std::size_t> order(points.size());
  std::iota(order.begin(), order.end(), 0);
  // Ties broken by index: the same split on every machine.
  std::stable_sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) {
    return points[i].x * cx + points[i].y * cy < points[j].x * cx + points[j].y * cy;
  });
  static constexpr SplitSet pattern[5] = {SplitSet::train, SplitSet::train, SplitSet::train, SplitSet::validation,
                                          SplitSet::test};
  std::vector<SplitSet> out(points.size());
  const std::size_t n = points.size();
  for (std::size_t rank = 0; rank < n; ++rank) {
    const std::size_t stripe = rank * static_cast<std::size_t>(stripes) / n;
    out[order[rank]] = pattern[stripe % 5];
  }
  return out;
}

}  // namespace eo
