#include "stages/reproject/warp.hpp"

#include <gdal_priv.h>
#include <gdal_utils.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <set>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/ingest/tiff_blocks.hpp"
#include "stages/reproject/lattice.hpp"
#include "stages/reproject/reading.hpp"

namespace eo {

using reading::Argv;
using reading::mem_over;
using reading::PixelWindow;
using reading::read_masked;
using reading::source_window;
using reading::source_windows;
using reading::zone_srs;

LonLatBox GridWindow::lonlat_box() const { return lonlat_bounds(zone, box()); }

GridWindow chip_window(const TileId& tile, double pixel, int row0, int rows, int col0, int cols) {
  const Box tb = tile.bounds();
  const int px = static_cast<int>(std::lround(kChipSizeM / pixel));
  return {tile.zone, tb.e0 + col0 * kChipSizeM, tb.n1 - row0 * kChipSizeM, pixel, cols * px, rows * px};
}

// How pixels are computed, the same for our warp into an existing grid and for the
// gdalwarp command line. -et 0 (the exact transformation at every pixel) and a fixed
// scale make a window warped in strips equal the whole tile warped at once: the
// approximate transformer and GDAL's per-chunk scale both depend on the chunking.
// -ovr NONE: always the full resolution, with the kernel widened by the fixed scale.
// gdalwarp's default picks a source overview near the target resolution, which makes
// the result depend on whether and how a publisher built overviews, and would warp a
// masked scene (read at full resolution) differently from an unmasked one.
std::vector<std::string> resampling_arguments(const WarpSettings& s) {
  return {"-r", name_str(s.resampling), "-et", "0", "-ovr", "NONE", "-dstnodata", "nan",
          "-wm", std::to_string(s.memory_mb),
          "-wo", fmt::format("NUM_THREADS={}", std::max(1, s.threads)),
          "-wo", fmt::format("XSCALE={:.17g}", s.xscale),
          "-wo", fmt::format("YSCALE={:.17g}", s.yscale)};
}

std::vector<std::string> warp_arguments(const GridWindow& w, const WarpSettings& s) {
  const Box b = w.box();
  std::vector<std::string> args = {
      "-t_srs", fmt::format("EPSG:{}", w.zone.epsg()),
      "-te", fmt::format("{:.6f}", b.e0), fmt::format("{:.6f}", b.n0), fmt::format("{:.6f}", b.e1), fmt::format("{:.6f}", b.n1),
      "-ts", std::to_string(w.width), std::to_string(w.height), "-ot", "Float32"};
  const auto rest = resampling_arguments(s);
  args.insert(args.end(), rest.begin(), rest.end());
  return args;
}

namespace {

// Where a warp is a read: the source in the window's CRS, north-up, its pixels `step`
// (whole) times finer than the window's, and the window's corner on a source pixel corner
// (Sentinel-2 and Sentinel-1 RTC on the tile's own zone). Window pixel (x, y) is then
// source pixel (x0 + x step + step/2, y0 + y step + step/2) exactly: at step 1 every
// kernel GDAL has weighs the pixel under the centre alone, and nearest picks it at any
// step; the warp's result is that pixel's value, bit for bit (tested against gdalwarp).
struct Aligned {
  long x0 = 0, y0 = 0;  // the window's corner on the source's grid (may lie outside it)
  int step = 1;
};

// Kernels whose warp of an aligned source at step 1 is the source pixel itself (tested).
bool copies_at_step_one(Resampling r) {
  return r == Resampling::near || r == Resampling::bilinear || r == Resampling::cubic || r == Resampling::average;
}

// Whether a raster is in the window's CRS (WGS 84 / UTM of its zone).
bool in_window_crs(GDALDataset& src, const GridWindow& window) {
  const OGRSpatialReference* srs = src.GetSpatialRef();
  if (!srs || srs->GetEPSGGeogCS() != 4326 || !srs->IsProjected()) return false;
  const char* code = srs->GetAuthorityCode(nullptr);
  return code && std::atoi(code) == window.zone.epsg();
}

std::optional<Aligned> aligned(GDALDataset& src, const GridWindow& window, Resampling resampling) {
  double gt[6];
  if (src.GetGeoTransform(gt) != CE_None || gt[2] != 0 || gt[4] != 0 || gt[1] <= 0 || gt[5] != -gt[1]) return {};
  if (!in_window_crs(src, window)) return {};
  const double step = window.pixel / gt[1];
  const double whole = std::round(step);
  const auto is_whole = [](double v) { return std::abs(v - std::round(v)) < 1e-9 * std::max(1.0, std::abs(v)); };
  if (whole < 1 || !is_whole(step)) return {};
  if (whole > 1 && resampling != Resampling::near) return {};
  if (whole == 1 && !copies_at_step_one(resampling)) return {};
  const double x0 = (window.west - gt[0]) / gt[1], y0 = (gt[3] - window.north) / gt[1];
  if (!is_whole(x0) || !is_whole(y0)) return {};
  return Aligned{std::lround(x0), std::lround(y0), static_cast<int>(whole)};
}

std::atomic<std::int64_t> aligned_count{0}, lattice_count{0};

// Enough source pixels around a window for any kernel GDAL uses (lanczos: 3 source pixels,
// widened by the downsampling factor), so a strip reads what the whole would.
int kernel_margin(const WarpSettings& settings) {
  const double factor = std::max(1.0, 1.0 / std::max(std::min(settings.xscale, settings.yscale), 1e-6));
  return 4 + static_cast<int>(std::ceil(3 * factor));
}

}  // namespace

std::int64_t aligned_reads() { return aligned_count.load(); }
std::int64_t lattice_warps() { return lattice_count.load(); }

void SourceSet::copy_aligned(std::size_t first, std::size_t count, const GridWindow& window, int step, long x0, long y0,
                             float* out, int bands) const {
  const std::vector<BandSource> sources = band_sources(first, count);
  GDALDataset* src = GDALDataset::FromHandle(datasets_[first]);
  const long half = step / 2;
  // The window's pixels whose source pixel is inside the source.
  const auto span = [&](long origin, int n, int size) {
    const long lo = std::max<long>(0, (-origin - half + step - 1) / step);  // first x with origin + x step + half >= 0
    const long hi = std::min<long>(n, (size - origin - half + step - 1) / step);
    return std::pair<long, long>{std::clamp<long>(lo, 0, n), std::clamp<long>(hi, 0, n)};
  };
  const auto [cx0, cx1] = span(x0, window.width, src->GetRasterXSize());
  const auto [cy0, cy1] = span(y0, window.height, src->GetRasterYSize());
  ++aligned_count;
  if (cx1 <= cx0 || cy1 <= cy0) return;
  const PixelWindow w{static_cast<int>(x0 + cx0 * step), static_cast<int>(y0 + cy0 * step),
                      static_cast<int>(x0 + (cx1 - 1) * step + step), static_cast<int>(y0 + (cy1 - 1) * step + step)};
  const PixelWindow read{w.x0, w.y0, std::min(w.x1, src->GetRasterXSize()), std::min(w.y1, src->GetRasterYSize())};
  const int rw = read.x1 - read.x0, rh = read.y1 - read.y0;
  const SourceRecord& r = *records_[first];
  const std::vector<float> values = read_masked(*src, sources, read, rw, rh, GDALDataset::FromHandle(masks_[first]),
                                                r.mask ? &*r.mask : nullptr, r.describe());
  const std::size_t plane = static_cast<std::size_t>(window.width) * window.height;
  // A later source's valid values cover an earlier one's, band by band, as in a mosaic.
  for (int b = 0; b < bands; ++b)
    for (long y = cy0; y < cy1; ++y) {
      const float* row = values.data() + (static_cast<std::size_t>(b) * rh + static_cast<std::size_t>((y - cy0) * step + half)) * rw;
      float* dst = out + b * plane + static_cast<std::size_t>(y) * window.width;
      for (long x = cx0; x < cx1; ++x) {
        const float v = row[(x - cx0) * step + half];
        if (!std::isnan(v)) dst[x] = v;
      }
    }
}

struct SourceSet::Cutout {
  std::vector<float> values;  // band planes, NaN where a band has no data
  GdalDataset dataset;        // an in-memory raster over the values
  int x0 = 0, y0 = 0;         // its pixel (0, 0) in the first source's file
};

std::unique_ptr<SourceSet::Cutout> SourceSet::cutout(std::size_t first, std::size_t count, const GridWindow& window,
                                                     const WarpSettings& settings) const {
  const std::vector<BandSource> sources = band_sources(first, count);
  GDALDataset* src = GDALDataset::FromHandle(datasets_[first]);
  const PixelWindow w = source_window(*src, window, kernel_margin(settings));
  if (w.empty()) return nullptr;
  auto cut = std::make_unique<Cutout>();
  cut->x0 = w.x0, cut->y0 = w.y0;
  const int width = w.x1 - w.x0, height = w.y1 - w.y0;
  const SourceRecord& r = *records_[first];
  cut->values = read_masked(*src, sources, w, width, height, GDALDataset::FromHandle(masks_[first]),
                            r.mask ? &*r.mask : nullptr, r.describe());
  const int bands = static_cast<int>(cut->values.size() / (static_cast<std::size_t>(width) * height));
  double gt[6], sub[6];
  src->GetGeoTransform(gt);
  std::copy(gt, gt + 6, sub);
  sub[0] = gt[0] + w.x0 * gt[1] + w.y0 * gt[2];
  sub[3] = gt[3] + w.x0 * gt[4] + w.y0 * gt[5];
  cut->dataset = mem_over(cut->values.data(), width, height, bands, sub, src->GetSpatialRef());
  return cut;
}

void SourceSet::warp(const GridWindow& window, const WarpSettings& settings, float* out, int bands) {
  // The warper writes straight into our buffer: a MEM dataset over it.
  const Box b = window.box();
  const double gt[6] = {b.e0, window.pixel, 0, b.n1, 0, -window.pixel};
  GdalDataset dst = mem_over(out, window.width, window.height, bands, gt, &zone_srs(window.zone));
  std::fill(out, out + static_cast<std::size_t>(bands) * window.width * window.height, std::numeric_limits<float>::quiet_NaN());

  // Masked sources are read for this window only, masked, and warped from memory.
  std::vector<std::unique_ptr<Cutout>> masked;
  std::vector<GDALDatasetH> inputs;  // for GDAL's warper, in order, all with one kernel scale
  WarpSettings pending;
  std::string reason;
  bool failed = false;
  // The warper's inputs so far, warped (gdalwarp warps its inputs one after the other
  // too: the same mosaic as one call with all of them).
  const auto warp_pending = [&] {
    if (inputs.empty() || failed) return;
    // Into an existing dataset gdalwarp takes neither -t_srs/-te/-ts nor -ot: the grid is the dataset's.
    Argv argv(resampling_arguments(pending));
    GDALWarpAppOptions* opts = GDALWarpAppOptionsNew(argv.get(), nullptr);
    int usage_error = 0;
    CPLErrorReset();
    GDALDatasetH result =
        GDALWarp(nullptr, GDALDataset::ToHandle(dst.get()), static_cast<int>(inputs.size()), inputs.data(), opts, &usage_error);
    GDALWarpAppOptionsFree(opts);
    reason = gdal_error();
    failed = !result || CPLGetLastErrorType() >= CE_Failure;
    inputs.clear();
    masked.clear();
  };
  // Inputs [first, first + count) of one grid: read and copied when the grids agree,
  // else (masked ones read, masked and) handed to the warper with their own kernel scale.
  const auto add = [&](std::size_t first, std::size_t count, bool read_first) {
    const WarpSettings own = scaled(settings, window, first);
    if (const auto a = aligned(*GDALDataset::FromHandle(datasets_[first]), window, own.resampling)) {
      warp_pending();
      if (!failed) copy_aligned(first, count, window, a->step, a->x0, a->y0, out, bands);
      return;
    }
    GDALDataset* frame = GDALDataset::FromHandle(read_first ? datasets_[first] : inputs_[first]);
    if (!in_window_crs(*frame, window)) {  // another CRS: the exact transformation on a lattice
      warp_pending();
      if (failed) return;
      if (read_first || lattice_kernel_is_ours(own.resampling)) {  // from a cut-out of the window
        const std::unique_ptr<Cutout> cut = cutout(first, count, window, own);
        if (!cut) return;  // does not reach the window
        lattice_warp(GDALDataset::ToHandle(cut->dataset.get()), datasets_[first], cut->x0, cut->y0,
                     GDALDataset::ToHandle(dst.get()), window, own, bands, records_[first]->describe(), cut->values.data(),
                     out);
      } else {
        lattice_warp(inputs_[first], GDALDataset::ToHandle(frame), 0, 0, GDALDataset::ToHandle(dst.get()), window, own,
                     bands, records_[first]->describe());
      }
      ++lattice_count;
      return;
    }
    if (!inputs.empty() && (own.xscale != pending.xscale || own.yscale != pending.yscale)) warp_pending();
    pending = own;
    if (read_first) {
      if (auto cut = cutout(first, count, window, own)) {  // null: does not reach the window
        inputs.push_back(GDALDataset::ToHandle(cut->dataset.get()));
        masked.push_back(std::move(cut));
      }
    } else {
      inputs.push_back(inputs_[first]);
    }
  };
  if (stacked_) {
    add(0, inputs_.size(), true);
  } else {
    for (std::size_t i = 0; i < inputs_.size(); ++i) add(i, 1, masks_[i] != nullptr);
  }
  warp_pending();
  if (!failed && affine_ != std::pair<double, double>{1.0, 0.0}) {
    const auto [scale, offset] = affine_;
    for (std::size_t i = 0; i < static_cast<std::size_t>(bands) * window.width * window.height; ++i)
      out[i] = static_cast<float>(out[i] * scale + offset);
  }
  if (failed) {
    // Find which file it was: read each source's part of the window on its own.
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
      GDALDataset* src = GDALDataset::FromHandle(inputs_[i]);
      CPLErrorReset();
      std::vector<float> probe(static_cast<std::size_t>(src->GetRasterXSize()));
      bool bad = false;
      for (int band = 1; band <= src->GetRasterCount() && !bad; ++band)
        for (int row = 0; row < src->GetRasterYSize() && !bad; row += std::max(1, src->GetRasterYSize() / 64))
          bad = src->GetRasterBand(band)->RasterIO(GF_Read, 0, row, src->GetRasterXSize(), 1, probe.data(),
                                                  src->GetRasterXSize(), 1, GDT_Float32, 0, 0) != CE_None;
      if (bad) throw StageError("reproject", fmt::format("{}: cannot be read: {}", records_[i]->describe(), gdal_error(reason)));
    }
    throw StageError("reproject", fmt::format("warp of {} source(s) ({}...) failed: {}", records_.size(),
                                         records_.empty() ? "" : records_.front()->describe(), reason));
  }
}

void SourceSet::remote_ranges(const std::vector<GridWindow>& windows, const WarpSettings& settings,
                              std::vector<RemoteRange>& out) const {
  if (windows.empty()) return;
  // Each band the warp reads, over each window with the widest margin a read takes.
  const auto add = [&](GDALDataset& file, const std::vector<int>& bands, int margin) {
    const std::vector<PixelWindow> pixels = source_windows(file, windows, margin);
    std::set<std::uint64_t> seen;  // a block under two windows is wanted by the first
    for (std::size_t step = 0; step < pixels.size(); ++step) {
      const PixelWindow& w = pixels[step];
      if (w.empty()) continue;
      for (int band : bands)
        for (const auto& [offset, length] : remote_tiff_ranges(*file.GetRasterBand(band), w.x0, w.y0, w.x1 - w.x0, w.y1 - w.y0))
          if (seen.insert(offset).second)
            out.push_back({file.GetDescription(), static_cast<std::int64_t>(offset), static_cast<std::int64_t>(length),
                           static_cast<int>(step)});
    }
  };
  for (std::size_t i = 0; i < datasets_.size(); ++i) {
    if (!is_remote_path(records_[i]->path.string())) continue;
    const int margin = kernel_margin(scaled(settings, windows.front(), i));
    add(*GDALDataset::FromHandle(datasets_[i]), source_bands_[i], margin);
    if (masks_[i]) add(*GDALDataset::FromHandle(masks_[i]), {records_[i]->mask->band}, margin);
  }
}

void set_gdal_cache(int megabytes) {
  GDALSetCacheMax64(static_cast<GIntBig>(megabytes) * 1024 * 1024);
  set_tiff_block_cache(static_cast<std::size_t>(megabytes) << 20);
}

}  // namespace eo
