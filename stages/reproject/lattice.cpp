#include "stages/reproject/lattice.hpp"
#include "pipeline/core/error.hpp"
#include "stages/reproject/lattice_kernel.hpp"
#include "stages/reproject/lattice_nodes.hpp"

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
#include "stages/reproject/reading.hpp"

namespace eo {

namespace {

GDALResampleAlg resample_alg(Resampling r) {
  switch (r) {
    case Resampling::near: return GRA_NearestNeighbour;
    case Resampling::bilinear: return GRA_Bilinear;
    case Resampling::cubic: return GRA_Cubic;
    case Resampling::cubicspline: return GRA_CubicSpline;
    case Resampling::lanczos: return GRA_Lanczos;
    case Resampling::average: return GRA_Average;
    case Resampling::rms: return GRA_RMS;
    case Resampling::mode: return GRA_Mode;
    case Resampling::max: return GRA_Max;
    case Resampling::min: return GRA_Min;
    case Resampling::med: return GRA_Med;
    case Resampling::q1: return GRA_Q1;
    case Resampling::q3: return GRA_Q3;
    case Resampling::sum: return GRA_Sum;
  }
  throw std::logic_error("a resampling without GDAL's kernel");
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
  using namespace lattice;
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

}  // namespace

void lattice_warp(GDALDatasetH input, GDALDatasetH frame, int frame_x, int frame_y, GDALDatasetH dst,
                  const GridWindow& window, const WarpSettings& settings, int bands, const std::string& what,
                  const float* pixels, float* out) {
  GDALDataset* in = GDALDataset::FromHandle(input);
  GDALDataset* fr = GDALDataset::FromHandle(frame);
  lattice::Lattice l;
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
  OGRCoordinateTransformation* ct = reading::zone_to(window.zone, *fr->GetSpatialRef());
  double gt[6], inv[6];
  if (!ct || fr->GetGeoTransform(gt) != CE_None || !GDALInvGeoTransform(gt, inv))
    throw StageError("reproject", fmt::format("{}: no transformation from the tile's CRS to the file's grid", what));
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
  const GDALResampleAlg alg = resample_alg(settings.resampling);
  l.exact = GDALCreateGenImgProjTransformer2(input, dst, nullptr);
  if (!l.exact) throw StageError("reproject", fmt::format("{}: no transformation to the tile's grid: {}", what, gdal_error()));
  const std::unique_ptr<void, void (*)(void*)> exact(l.exact, GDALDestroyGenImgProjTransformer);
  if (in->GetRasterCount() < bands)
    throw std::logic_error(fmt::format("{}: {} bands to warp from an input of {}", what, bands, in->GetRasterCount()));
  if (pixels && lattice_kernel_is_ours(settings.resampling)) {
    lattice::resample(l, {pixels, in->GetRasterXSize(), in->GetRasterYSize(), bands}, out, window, settings);
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
  if (err != CE_None) throw StageError("reproject", fmt::format("{}: warp failed: {}", what, reason));
}

}  // namespace eo
