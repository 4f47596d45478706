#pragma once
// The lattice of stages/reproject/lattice.hpp, private to the reproject stage: its nodes
// (each a frame pixel, placed exactly by PROJ) and the cubic interpolation between them,
// shared by GDAL's transformer callback (lattice.cpp) and our kernel's loop over a
// window's rows (lattice_kernel.cpp), so that both place every pixel with the same bits.

#include <gdal_alg.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "stages/reproject/lattice.hpp"

namespace eo::lattice {

struct Lattice {
  void* exact = nullptr;       // GDAL's transformer, window pixels <-> input pixels
  double west_px = 0, north_px = 0;  // the window's corner in whole grid pixels
  long i0 = 0, j0 = 0;         // the first node's index
  int ni = 0, nj = 0;
  std::vector<double> nx, ny;  // per node, its frame pixel (NaN where PROJ failed)
  double frame_x = 0, frame_y = 0;
};

// Cubic Lagrange weights of nodes -1, 0, 1, 2 at u in [0, 1).
inline void cubic_weights(double u, double w[4]) {
  w[0] = -u * (u - 1) * (u - 2) / 6;
  w[1] = (u + 1) * (u - 1) * (u - 2) / 2;
  w[2] = -(u + 1) * u * (u - 2) / 2;
  w[3] = (u + 1) * u * (u - 1) / 6;
}

// Where a window coordinate falls among the nodes: the node column (or row), less i0 (j0),
// at or before it, and the cubic weights of the 4 nodes around it.
struct NodeSpan {
  long n = 0;
  double w[4] = {0, 0, 0, 0};
};

inline NodeSpan node_column(const Lattice& l, double x) {
  const double c = (l.west_px + x) / kLatticeSpacing, fi = std::floor(c);
  NodeSpan s;
  s.n = static_cast<long>(fi) - l.i0;
  cubic_weights(c - fi, s.w);
  return s;
}

inline NodeSpan node_row(const Lattice& l, double y) {
  const double r = (y - l.north_px) / kLatticeSpacing, fj = std::floor(r);
  NodeSpan s;
  s.n = static_cast<long>(fj) - l.j0;
  cubic_weights(r - fj, s.w);
  return s;
}

// Whether the 4 nodes around span n lie in a lattice of `count` nodes (with one to spare).
inline bool inner(long n, int count) { return n >= 1 && n + 2 < count; }

// Node column `col` summed down the 4 node rows around `row`.
inline void column_sums(const Lattice& l, const NodeSpan& row, std::size_t col, double* cx, double* cy) {
  double x = 0, y = 0;
  for (int b = 0; b < 4; ++b) {
    const std::size_t node = static_cast<std::size_t>(row.n - 1 + b) * static_cast<std::size_t>(l.ni) + col;
    x += row.w[b] * l.nx[node];
    y += row.w[b] * l.ny[node];
  }
  *cx = x, *cy = y;
}

// The frame pixel from the column sums of the 4 node columns around `column`; false where
// a node PROJ could not place made it NaN.
inline bool along_row(const NodeSpan& column, const double* sum_x, const double* sum_y, double* sx, double* sy) {
  double x = 0, y = 0;
  for (int a = 0; a < 4; ++a) {
    const std::size_t col = static_cast<std::size_t>(column.n - 1 + a);
    x += column.w[a] * sum_x[col];
    y += column.w[a] * sum_y[col];
  }
  *sx = x, *sy = y;
  return !std::isnan(x) && !std::isnan(y);
}

// transform() for the pixel centres of the window's rows, bit for bit (the same
// node_column, column_sums and along_row), with what does not change between rows (each
// pixel's node column and weights along the row) found once.
class RowTransform {
 public:
  RowTransform(const Lattice& l, int width)
      : l_(l), columns_(static_cast<std::size_t>(width)), sum_x_(static_cast<std::size_t>(l.ni)), sum_y_(sum_x_.size()) {
    for (int i = 0; i < width; ++i) columns_[static_cast<std::size_t>(i)] = node_column(l, i + 0.5);
  }

  // Input pixel (xs[k], ys[k]) of the centre of pixel k of window row `row`, for k in
  // [k0, k1); ok[k] where placed.
  void row(int row, int k0, int k1, double* xs, double* ys, int* ok) {
    const double y = row + 0.5;
    const NodeSpan nodes = node_row(l_, y);
    const bool inside = inner(nodes.n, l_.nj);
    if (inside) {  // the column sums for the pixels' node columns
      const long c0 = std::max(0L, columns_[static_cast<std::size_t>(k0)].n - 1);
      const long c1 = std::min(static_cast<long>(l_.ni) - 1, columns_[static_cast<std::size_t>(k1 - 1)].n + 2);
      for (long col = c0; col <= c1; ++col) {
        const std::size_t c = static_cast<std::size_t>(col);
        column_sums(l_, nodes, c, &sum_x_[c], &sum_y_[c]);
      }
    }
    for (int kk = k0; kk < k1; ++kk) {
      const std::size_t k = static_cast<std::size_t>(kk);
      xs[k] = kk + 0.5, ys[k] = y;
      double sx = 0, sy = 0;
      if (inside && inner(columns_[k].n, l_.ni) && along_row(columns_[k], sum_x_.data(), sum_y_.data(), &sx, &sy)) {
        xs[k] = sx - l_.frame_x, ys[k] = sy - l_.frame_y, ok[k] = TRUE;
        continue;
      }
      double z = 0;
      GDALGenImgProjTransform(l_.exact, TRUE, 1, xs + k, ys + k, &z, ok + k);  // as transform() does
    }
  }

 private:
  const Lattice& l_;
  std::vector<NodeSpan> columns_;  // per pixel of a row
  std::vector<double> sum_x_, sum_y_;
};

}  // namespace eo::lattice
