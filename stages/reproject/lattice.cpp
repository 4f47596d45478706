#include "stages/reproject/lattice.hpp"

#include <gdal_alg.h>
#include <gdal_priv.h>
#include <gdalwarper.h>
#include <ogr_spatialref.h>

#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "stages/ingest/gdal_util.hpp"

namespace eo {

namespace {

GDALResampleAlg resample_alg(const std::string& name) {
  static const std::pair<const char*, GDALResampleAlg> known[] = {
      {"near", GRA_NearestNeighbour}, {"bilinear", GRA_Bilinear}, {"cubic", GRA_Cubic},
      {"cubicspline", GRA_CubicSpline}, {"lanczos", GRA_Lanczos}, {"average", GRA_Average},
      {"mode", GRA_Mode}, {"max", GRA_Max}, {"min", GRA_Min}, {"med", GRA_Med},
      {"q1", GRA_Q1}, {"q3", GRA_Q3}, {"sum", GRA_Sum}, {"rms", GRA_RMS}};
  for (const auto& [n, alg] : known)
    if (name == n) return alg;
  throw std::runtime_error("unknown resampling: " + name);
}

struct Lattice {
  void* exact = nullptr;       // GDAL's transformer, window pixels <-> input pixels
  double west_px = 0, north_px = 0;  // the window's corner in whole grid pixels
  long i0 = 0, j0 = 0;         // the first node's index
  int ni = 0, nj = 0;
  std::vector<double> nx, ny;  // per node, its frame pixel (NaN where PROJ failed)
  double frame_x = 0, frame_y = 0;
};

// Cubic Lagrange weights of nodes -1, 0, 1, 2 at u in [0, 1).
void cubic_weights(double u, double w[4]) {
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

NodeSpan node_column(const Lattice& l, double x) {
  const double c = (l.west_px + x) / kLatticeSpacing, fi = std::floor(c);
  NodeSpan s;
  s.n = static_cast<long>(fi) - l.i0;
  cubic_weights(c - fi, s.w);
  return s;
}

NodeSpan node_row(const Lattice& l, double y) {
  const double r = (y - l.north_px) / kLatticeSpacing, fj = std::floor(r);
  NodeSpan s;
  s.n = static_cast<long>(fj) - l.j0;
  cubic_weights(r - fj, s.w);
  return s;
}

// Whether the 4 nodes around span n lie in a lattice of `count` nodes (with one to spare).
bool inner(long n, int count) { return n >= 1 && n + 2 < count; }

// Node column `col` summed down the 4 node rows around `row`.
void column_sums(const Lattice& l, const NodeSpan& row, std::size_t col, double* cx, double* cy) {
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
bool along_row(const NodeSpan& column, const double* sum_x, const double* sum_y, double* sx, double* sy) {
  double x = 0, y = 0;
  for (int a = 0; a < 4; ++a) {
    const std::size_t col = static_cast<std::size_t>(column.n - 1 + a);
    x += column.w[a] * sum_x[col];
    y += column.w[a] * sum_y[col];
  }
  *sx = x, *sy = y;
  return !std::isnan(x) && !std::isnan(y);
}

// Window pixel -> input pixel by cubic interpolation between the 4 x 4 nodes around it
// (bilinear's error, ~3e-5 source pixels at 8 grid pixels between nodes, moved speckled
// dB values by up to 1e-3; cubic's is below 1e-9 pixels); the other way, and points
// beyond the lattice or next to a node PROJ could not place, exactly.
//
// Always down the node columns first, then along the row (column_sums, then along_row):
// GDAL transforms a row of pixels at a time, which then shares the column sums, and any
// other batch of points, RowTransform's included, gets the very same bits.
int transform(void* arg, int dst_to_src, int count, double* x, double* y, double* z, int* ok) {
  const Lattice& l = *static_cast<const Lattice*>(arg);
  if (!dst_to_src) return GDALGenImgProjTransform(l.exact, FALSE, count, x, y, z, ok);
  // Column sums of the node rows around the last row seen: [node column] -> (x, y).
  thread_local std::vector<double> sum_x, sum_y;
  thread_local std::vector<char> summed;
  double band_y = std::numeric_limits<double>::quiet_NaN();
  NodeSpan row;
  int all = TRUE;
  for (int k = 0; k < count; ++k) {
    if (y[k] != band_y) {  // a new row: new weights down the columns, no sums yet
      band_y = y[k];
      row = node_row(l, y[k]);
      sum_x.assign(static_cast<std::size_t>(l.ni), 0.0);
      sum_y.assign(static_cast<std::size_t>(l.ni), 0.0);
      summed.assign(static_cast<std::size_t>(l.ni), 0);
    }
    const NodeSpan column = node_column(l, x[k]);
    double sx = 0, sy = 0;
    if (inner(column.n, l.ni) && inner(row.n, l.nj)) {
      for (int a = 0; a < 4; ++a) {
        const std::size_t col = static_cast<std::size_t>(column.n - 1 + a);
        if (summed[col]) continue;
        column_sums(l, row, col, &sum_x[col], &sum_y[col]);
        summed[col] = 1;
      }
      if (along_row(column, sum_x.data(), sum_y.data(), &sx, &sy)) {
        x[k] = sx - l.frame_x;
        y[k] = sy - l.frame_y;
        if (z) z[k] = 0;
        ok[k] = TRUE;
        continue;
      }
    }
    all &= GDALGenImgProjTransform(l.exact, TRUE, 1, x + k, y + k, z ? z + k : nullptr, ok + k);
  }
  return all;
}

// GDAL's bilinear weight.
double bilinear(double d) {
  return std::max(0.0, 1 - std::abs(d));  // 1 - |d| where |d| <= 1, else 0, without a branch
}

// A cut-out of the input: band planes of width x height, NaN where a band has no data.
struct Pixels {
  const float* values;
  int width, height, bands;
  std::size_t plane() const { return static_cast<std::size_t>(width) * height; }
  float at(int band, long offset) const { return values[band * plane() + static_cast<std::size_t>(offset)]; }
};

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

// What GDAL's warper does for these kernels (its GWKGeneralCase with a Float32 working
// type and no-data masks, which is what it runs for our NaN-filled destination), without
// its per-pixel overheads: each window pixel's centre to input pixel through the lattice,
// a pixel off the input or whose own input pixel has no band with data left alone, else
// each band's value where its kernel has weight.
void resample(const Lattice& l, const Pixels& in, float* out, const GridWindow& window, const WarpSettings& settings) {
  const bool nearest = settings.resampling == "near" || in.width == 1 || in.height == 1;
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

}  // namespace

bool lattice_kernel_is_ours(const std::string& resampling) { return resampling == "bilinear" || resampling == "near"; }

void lattice_warp(GDALDatasetH input, GDALDatasetH frame, int frame_x, int frame_y, GDALDatasetH dst,
                  const GridWindow& window, const WarpSettings& settings, int bands, const std::string& what,
                  const float* pixels, float* out) {
  GDALDataset* in = GDALDataset::FromHandle(input);
  GDALDataset* fr = GDALDataset::FromHandle(frame);
  Lattice l;
  l.west_px = window.west / window.pixel;
  l.north_px = window.north / window.pixel;
  l.frame_x = frame_x;
  l.frame_y = frame_y;
  // The 4 x 4 nodes around every pixel of the window, and one more on each side.
  l.i0 = static_cast<long>(std::floor(l.west_px / kLatticeSpacing)) - 2;
  l.j0 = static_cast<long>(std::floor(-l.north_px / kLatticeSpacing)) - 2;
  l.ni = static_cast<int>(static_cast<long>(std::floor((l.west_px + window.width) / kLatticeSpacing)) + 4 - l.i0);
  l.nj = static_cast<int>(static_cast<long>(std::floor((window.height - l.north_px) / kLatticeSpacing)) + 4 - l.j0);
  // The nodes, exactly: zone metres -> the frame's CRS (PROJ) -> the frame's pixels.
  OGRSpatialReference zone;
  zone.importFromEPSG(window.zone.epsg());
  zone.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  OGRSpatialReference src(*fr->GetSpatialRef());
  src.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&zone, &src));
  double gt[6], inv[6];
  if (!ct || fr->GetGeoTransform(gt) != CE_None || !GDALInvGeoTransform(gt, inv))
    throw std::runtime_error(fmt::format("{}: no transformation from the tile's CRS to the file's grid", what));
  const std::size_t n = static_cast<std::size_t>(l.ni) * l.nj;
  std::vector<double> ex(n), ny_(n);
  std::vector<int> placed(n);
  for (int j = 0; j < l.nj; ++j)
    for (int i = 0; i < l.ni; ++i) {
      const std::size_t k = static_cast<std::size_t>(j) * l.ni + i;
      ex[k] = static_cast<double>((l.i0 + i) * kLatticeSpacing) * window.pixel;
      ny_[k] = -static_cast<double>((l.j0 + j) * kLatticeSpacing) * window.pixel;
    }
  ct->Transform(n, ex.data(), ny_.data(), nullptr, placed.data());
  l.nx.resize(n);
  l.ny.resize(n);
  for (std::size_t k = 0; k < n; ++k) {
    const bool good = placed[k] && std::isfinite(ex[k]) && std::isfinite(ny_[k]);
    l.nx[k] = good ? inv[0] + ex[k] * inv[1] + ny_[k] * inv[2] : std::numeric_limits<double>::quiet_NaN();
    l.ny[k] = good ? inv[3] + ex[k] * inv[4] + ny_[k] * inv[5] : std::numeric_limits<double>::quiet_NaN();
  }
  const GDALResampleAlg alg = resample_alg(settings.resampling);  // an unknown name throws here
  l.exact = GDALCreateGenImgProjTransformer2(input, dst, nullptr);
  if (!l.exact) throw std::runtime_error(fmt::format("{}: no transformation to the tile's grid: {}", what, gdal_error()));
  const std::unique_ptr<void, void (*)(void*)> exact(l.exact, GDALDestroyGenImgProjTransformer);
  if (in->GetRasterCount() < bands)
    throw std::logic_error(fmt::format("{}: {} bands to warp from an input of {}", what, bands, in->GetRasterCount()));
  if (pixels && lattice_kernel_is_ours(settings.resampling)) {
    resample(l, {pixels, in->GetRasterXSize(), in->GetRasterYSize(), bands}, out, window, settings);
    return;
  }

  GDALWarpOptions* wo = GDALCreateWarpOptions();
  wo->hSrcDS = input;
  wo->hDstDS = dst;
  wo->nBandCount = bands;
  wo->panSrcBands = static_cast<int*>(CPLMalloc(sizeof(int) * bands));
  wo->panDstBands = static_cast<int*>(CPLMalloc(sizeof(int) * bands));
  wo->padfDstNoDataReal = static_cast<double*>(CPLMalloc(sizeof(double) * bands));
  bool has_nodata = false;
  std::vector<double> src_nodata(static_cast<std::size_t>(bands));
  for (int b = 0; b < bands; ++b) {
    wo->panSrcBands[b] = wo->panDstBands[b] = b + 1;
    wo->padfDstNoDataReal[b] = std::numeric_limits<double>::quiet_NaN();
    int has = 0;
    src_nodata[static_cast<std::size_t>(b)] = in->GetRasterBand(b + 1)->GetNoDataValue(&has);
    has_nodata |= has != 0;
  }
  if (has_nodata) {  // as gdalwarp takes the inputs' own no-data
    wo->padfSrcNoDataReal = static_cast<double*>(CPLMalloc(sizeof(double) * bands));
    std::copy(src_nodata.begin(), src_nodata.end(), wo->padfSrcNoDataReal);
  }
  wo->eResampleAlg = alg;
  wo->eWorkingDataType = GDT_Float32;
  wo->dfWarpMemoryLimit = static_cast<double>(settings.memory_mb) * 1024 * 1024;
  // One thread: GDAL's threads each need a clone of the transformer, and it clones only
  // its own kinds. With the transformation this cheap, a thread per rank is the plan anyway.
  wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "NUM_THREADS", "1");
  wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "XSCALE", fmt::format("{:.17g}", settings.xscale).c_str());
  wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "YSCALE", fmt::format("{:.17g}", settings.yscale).c_str());
  wo->pfnTransformer = transform;
  wo->pTransformerArg = &l;
  CPLErrorReset();
  GDALWarpOperation op;
  CPLErr err = op.Initialize(wo);
  if (err == CE_None) err = op.ChunkAndWarpImage(0, 0, window.width, window.height);
  const std::string reason = gdal_error();
  GDALDestroyWarpOptions(wo);
  if (err != CE_None) throw std::runtime_error(fmt::format("{}: warp failed: {}", what, reason));
}

}  // namespace eo
