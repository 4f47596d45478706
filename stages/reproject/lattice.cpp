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

// Window pixel -> input pixel by cubic interpolation between the 4 x 4 nodes around it
// (bilinear's error, ~3e-5 source pixels at 8 grid pixels between nodes, moved speckled
// dB values by up to 1e-3; cubic's is below 1e-9 pixels); the other way, and points
// beyond the lattice or next to a node PROJ could not place, exactly.
//
// Always down the node columns first, then along the row: GDAL transforms a row of
// pixels at a time, which then shares the column sums, and any other batch of points
// gets the very same bits.
int transform(void* arg, int dst_to_src, int count, double* x, double* y, double* z, int* ok) {
  const Lattice& l = *static_cast<const Lattice*>(arg);
  if (!dst_to_src) return GDALGenImgProjTransform(l.exact, FALSE, count, x, y, z, ok);
  // Column sums of the node row band around the last row seen: [node column] -> (x, y).
  thread_local std::vector<double> sum_x, sum_y;
  thread_local std::vector<char> summed;
  long band = -1;  // the node row j of the cached sums
  double band_r = std::numeric_limits<double>::quiet_NaN();
  double wv[4] = {0, 0, 0, 0};
  int all = TRUE;
  for (int k = 0; k < count; ++k) {
    const double c = (l.west_px + x[k]) / kLatticeSpacing, r = (y[k] - l.north_px) / kLatticeSpacing;
    const double fi = std::floor(c), fj = std::floor(r);
    const long i = static_cast<long>(fi) - l.i0, j = static_cast<long>(fj) - l.j0;
    bool done = false;
    if (i >= 1 && j >= 1 && i + 2 < l.ni && j + 2 < l.nj) {
      if (r != band_r) {  // a new row: new weights down the columns, no sums yet
        band_r = r;
        band = j;
        cubic_weights(r - fj, wv);
        sum_x.assign(static_cast<std::size_t>(l.ni), 0.0);
        sum_y.assign(static_cast<std::size_t>(l.ni), 0.0);
        summed.assign(static_cast<std::size_t>(l.ni), 0);
      }
      double wu[4];
      cubic_weights(c - fi, wu);
      double sx = 0, sy = 0;
      for (int a = 0; a < 4; ++a) {
        const std::size_t col = static_cast<std::size_t>(i - 1 + a);
        if (!summed[col]) {
          double cx = 0, cy = 0;
          for (int b = 0; b < 4; ++b) {
            const std::size_t node = static_cast<std::size_t>(band - 1 + b) * static_cast<std::size_t>(l.ni) + col;
            cx += wv[b] * l.nx[node];
            cy += wv[b] * l.ny[node];
          }
          sum_x[col] = cx;
          sum_y[col] = cy;
          summed[col] = 1;
        }
        sx += wu[a] * sum_x[col];
        sy += wu[a] * sum_y[col];
      }
      if (!std::isnan(sx) && !std::isnan(sy)) {
        x[k] = sx - l.frame_x;
        y[k] = sy - l.frame_y;
        if (z) z[k] = 0;
        ok[k] = TRUE;
        done = true;
      }
    }
    if (!done) all &= GDALGenImgProjTransform(l.exact, TRUE, 1, x + k, y + k, z ? z + k : nullptr, ok + k);
  }
  return all;
}

}  // namespace

void lattice_warp(GDALDatasetH input, GDALDatasetH frame, int frame_x, int frame_y, GDALDatasetH dst,
                  const GridWindow& window, const WarpSettings& settings, int bands, const std::string& what) {
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
  const GDALResampleAlg alg = resample_alg(settings.resampling);  // may throw: before anything needs freeing
  l.exact = GDALCreateGenImgProjTransformer2(input, dst, nullptr);
  if (!l.exact) throw std::runtime_error(fmt::format("{}: no transformation to the tile's grid: {}", what, gdal_error()));

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
  GDALDestroyGenImgProjTransformer(l.exact);
  if (err != CE_None) throw std::runtime_error(fmt::format("{}: warp failed: {}", what, reason));
}

}  // namespace eo
