#pragma once
// The spatial split of the few-shot experiments: chips are ordered along a direction at
// an angle and cut into stripes of equal chip count, which take turns being train,
// train, train, validation, test. Neighbouring chips mostly share a set, so test scores
// are not inflated by near-duplicates of training chips, and the proportions are
// 60/20/20 up to a chip per stripe.

#include <vector>

namespace eo {

enum class SplitSet { train = 0, validation = 1, test = 2 };

struct Point {
  double x = 0, y = 0;  // metres in any planar frame
};

// `stripes` a multiple of 5; `angle_deg` of the stripes' direction of travel, from +x.
std::vector<SplitSet> stripe_split(const std::vector<Point>& points, double angle_deg, int stripes);

}  // namespace eo
