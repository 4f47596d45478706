#include "stages/reproject/lattice_kernel.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "stages/ingest/gdal_mirror.hpp"

namespace eo {
namespace lattice {
namespace {

// GDAL's bilinear weight.
double bilinear(double d) {
  return std::max(0.0, 1 - std::abs(d));  // 1 - |d| where |d| <= 1, else 0, without a branch
}

// GDAL's bilinear of four samples (scales of 0.95 and more on both axes), at input pixel
// (x, y): the weights of the valid ones, renormalised. Its arithmetic in its order, so
// the value is GDAL's bit for bit. False where no weight is left.
bool bilinear4(const Pixels& p, int band, double x, double y, double* value) {
  int ix = static_cast<int>(std::floor(x - 0.5)), iy = static_cast<int>(std::floor(y - 0.5));
  double rx = 1.5 - (x - ix), ry = 1.5 - (y - iy);
  if (ix == -1) ix = 0, rx = 1;
  if (iy == -1) iy = 0, ry = 1;
  double sum = 0, divisor = 0;
  for (int row = 0; row < 2; ++row) {
    if (iy + row >= p.height) break;
    const double wy = row == 0 ? ry : 1.0 - ry;
    const long offset = static_cast<long>(iy + row) * p.width + ix;
    const double m[2] = {rx * wy, (1.0 - rx) * wy};
    for (int c = 0; c < 2; ++c) {
      if (ix + c >= p.width) continue;
      const float v = p.at(band, offset + c);
      if (std::isnan(v)) continue;
      divisor += m[c];
      sum += v * m[c];
    }
  }
  if (divisor == 1.0) return *value = sum, true;
  if (divisor < 0.00001) return false;
  return *value = sum / divisor, true;
}

// GDAL's general bilinear (a scale below 0.95): the kernel widened by 1 / scale on an axis
// scaled below 1, the valid samples' weights renormalised, rows summed then weighted in
// GDAL's order. The taps and their weights are set once per position for all bands.
class WideBilinear {
 public:
  WideBilinear(double xscale, double yscale)
      : xscale_(xscale), yscale_(yscale), rx_(xscale < 1.0 ? static_cast<int>(std::ceil(1.0 / xscale)) : 1),
        ry_(yscale < 1.0 ? static_cast<int>(std::ceil(1.0 / yscale)) : 1), wx_(2 * rx_ + 1), wy_(2 * ry_ + 1) {}

  // The taps around input pixel (x, y).
  void place(const Pixels& p, double x, double y) {
    const double tx = x - 0.5, ty = y - 0.5;  // >= -0.5: floor is the truncation, less one below it
    int ix = static_cast<int>(tx), iy = static_cast<int>(ty);
    ix -= tx < ix, iy -= ty < iy;
    const double dx = tx - ix, dy = ty - iy;
    i0_ = std::max(-rx_, -ix), i1_ = std::min(rx_, p.width - ix - 1);
    j0_ = std::max(-ry_, -iy), j1_ = std::min(ry_, p.height - iy - 1);
    weights(dx, xscale_, rx_, i0_, i1_, wx_.data());
    weights(dy, yscale_, ry_, j0_, j1_, wy_.data());
    origin_ = static_cast<long>(iy) * p.width + ix;
  }

  // A band's value at the placed position; false where no weight is left.
  bool value(const Pixels& p, int band, double* value) const {
    const float* base = p.values + band * p.plane() + origin_;
    double sum = 0, weight = 0;
    for (int j = j0_; j <= j1_; ++j) {
      const float* row = base + static_cast<long>(j) * p.width;
      double row_sum = 0, row_weight = 0;
      for (int i = i0_; i <= i1_; ++i) {
        const float v = row[i];
        if (std::isnan(v)) continue;
        row_sum += v * wx_[i + rx_];
        row_weight += wx_[i + rx_];
      }
      sum += row_sum * wy_[j + ry_];
      weight += row_weight * wy_[j + ry_];
    }
    if (weight < 0.000001) return false;
    return *value = weight < 0.99999 || weight > 1.00001 ? sum / weight : sum, true;
  }

 private:
  // GDAL's weights of taps [lo, hi] at distance d past tap 0 (taps of zero weight too:
  // leaving them out saves no time, and 0 x inf is NaN in GDAL's sums).
  static void weights(double d, double scale, int radius, int lo, int hi, double* w) {
    for (int i = lo; i <= hi; ++i) w[i + radius] = bilinear(scale < 1.0 ? (i - d) * scale : i - d);
  }

  double xscale_, yscale_;
  int rx_, ry_, i0_ = 0, i1_ = -1, j0_ = 0, j1_ = -1;
  long origin_ = 0;
  std::vector<double> wx_, wy_;
};

}  // namespace

// What GDAL's warper does for these kernels: its GWKGeneralCase with a Float32 working
// type and no-data masks, which is what it runs for our NaN-filled destination.
void resample(const Lattice& l, const Pixels& in, float* out, const GridWindow& window, const WarpSettings& settings) {
  const bool nearest = settings.resampling == Resampling::near || in.width == 1 || in.height == 1;
  const bool four = settings.xscale >= 0.95 && settings.yscale >= 0.95;
  WideBilinear wide(settings.xscale, settings.yscale);
  const std::size_t plane = static_cast<std::size_t>(window.width) * window.height;
  std::vector<double> xs(static_cast<std::size_t>(window.width)), ys(xs.size());
  std::vector<int> ok(xs.size());
  RowTransform positions(l, window.width);
  // In strips of columns, so that the input rows under one row of a strip are still in
  // the cache for the next (a whole row's are not).
  constexpr int kStrip = 64;
  for (int i0 = 0; i0 < window.width; i0 += kStrip)
  for (int row = 0; row < window.height; ++row) {
    const int i1 = std::min(window.width, i0 + kStrip);
    positions.row(row, i0, i1, xs.data(), ys.data(), ok.data());
    for (int i = i0; i < i1; ++i) {
      const double x = xs[static_cast<std::size_t>(i)], y = ys[static_cast<std::size_t>(i)];
      if (!ok[static_cast<std::size_t>(i)] || std::isnan(x) || std::isnan(y)) continue;
      if (x < 0 || y < 0 || x + 1e-10 > in.width || y + 1e-10 > in.height) continue;
      const int cx = std::min(static_cast<int>(x + 1e-10), in.width - 1), cy = std::min(static_cast<int>(y + 1e-10), in.height - 1);
      const long centre = static_cast<long>(cy) * in.width + cx;
      bool any = false;
      for (int b = 0; b < in.bands && !any; ++b) any = !std::isnan(in.at(b, centre));
      if (!any) continue;
      const std::size_t at = static_cast<std::size_t>(row) * window.width + static_cast<std::size_t>(i);
      if (!nearest && !four) wide.place(in, x, y);
      for (int b = 0; b < in.bands; ++b) {
        double v = 0;
        const bool has = nearest ? !std::isnan(v = in.at(b, centre))
                         : four  ? bilinear4(in, b, x, y, &v)
                                 : wide.value(in, b, &v);
        if (has) out[b * plane + at] = static_cast<float>(v);
      }
    }
  }
}

}  // namespace lattice

bool lattice_kernel_is_ours(Resampling resampling) {
  return (resampling == Resampling::bilinear || resampling == Resampling::near) &&
         gdal_mirror_holds(GdalMirror::lattice_kernel);
}

}  // namespace eo
