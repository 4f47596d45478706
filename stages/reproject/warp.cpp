#include "stages/reproject/warp.hpp"

#include <gdal_priv.h>
#include <gdal_utils.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <fmt/format.h>
#include <limits>
#include <stdexcept>

#include "stages/ingest/gdal_util.hpp"
#include "stages/ingest/tiff_blocks.hpp"
#include "stages/reproject/lattice.hpp"

namespace eo {
namespace {

// argv-style list for GDAL's *OptionsNew functions.
struct Argv {
  explicit Argv(const std::vector<std::string>& args) : strings(args) {
    for (auto& s : strings) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
  char** get() { return ptrs.data(); }
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
};

bool same_crs(const OGRSpatialReference& actual, const std::string& declared) {
  OGRSpatialReference expected;
  if (expected.SetFromUserInput(declared.c_str()) != OGRERR_NONE) return false;
  const char* options[] = {"IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES", "CRITERION=EQUIVALENT_EXCEPT_AXIS_ORDER_GEOGCRS", nullptr};
  return actual.IsSame(&expected, options);
}

std::string crs_name(const OGRSpatialReference& srs) {
  const char* auth = srs.GetAuthorityName(nullptr);
  const char* code = srs.GetAuthorityCode(nullptr);
  if (auth && code) return fmt::format("{}:{}", auth, code);
  const char* name = srs.GetName();
  return name ? name : "an unnamed CRS";
}

// A raster's pixel width and height in metres, along its own axes: a geographic one's at
// its centre, from the WGS84 ellipsoid's radii of curvature (a degree of latitude is
// longer than a degree of longitude by more than the cosine: 0.0004 degrees at 37 N is
// 35.6 m wide and 44.4 m tall).
std::pair<double, double> pixel_metres(GDALDataset& ds) {
  double gt[6];
  ds.GetGeoTransform(gt);
  double x = std::hypot(gt[1], gt[4]), y = std::hypot(gt[2], gt[5]);
  const OGRSpatialReference* srs = ds.GetSpatialRef();
  if (srs && srs->IsGeographic()) {
    const double lat = (gt[3] + gt[4] * ds.GetRasterXSize() / 2 + gt[5] * ds.GetRasterYSize() / 2) * M_PI / 180.0;
    constexpr double a = 6378137.0, e2 = 0.00669437999014;
    const double w = 1 - e2 * std::sin(lat) * std::sin(lat);
    const double normal = a / std::sqrt(w), meridional = a * (1 - e2) / (w * std::sqrt(w));
    x *= normal * std::cos(lat) * M_PI / 180.0;
    y *= meridional * M_PI / 180.0;
  } else if (srs) {
    x *= srs->GetLinearUnits();
    y *= srs->GetLinearUnits();
  }
  return {x, y};
}

}  // namespace

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
  return {"-r", s.resampling, "-et", "0", "-ovr", "NONE", "-dstnodata", "nan",
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

SourceSet::SourceSet(const std::vector<const SourceRecord*>& records, std::vector<int> bands)
    : bands_(std::move(bands)), records_(records) {
  if (bands_.empty() && !records.empty())
    for (std::size_t b = 0; b < records.front()->bands.size(); ++b) bands_.push_back(static_cast<int>(b));
  open();
}

SourceSet::SourceSet(const std::vector<const SourceRecord*>& records, Stack) : stacked_(true), records_(records) {
  for (const SourceRecord* r : records)
    for (std::size_t b = 0; b < r->bands.size(); ++b)
      if (r->bands[b] > 0) bands_.push_back(static_cast<int>(b));
  open();
  const auto grid = [](void* h, double* gt) {
    GDALDataset* ds = GDALDataset::FromHandle(h);
    ds->GetGeoTransform(gt);
    return std::make_pair(ds->GetRasterXSize(), ds->GetRasterYSize());
  };
  double gt0[6], gt[6];
  const auto size0 = grid(inputs_.front(), gt0);
  for (std::size_t i = 1; i < inputs_.size(); ++i)
    if (grid(inputs_[i], gt) != size0 || !std::equal(gt, gt + 6, gt0) || records_[i]->mask != records_[0]->mask ||
        records_[i]->crs != records_[0]->crs) {
      close();
      throw NotStackable(fmt::format("{} is not on the grid of {}", records_[i]->describe(), records_[0]->describe()));
    }
}

// Opens the records' files (again, after suspend()): the handles and what is read of each.
void SourceSet::open() {
  gdal_init();
  source_bands_.clear();
  unscaled_.clear();
  pixel_m_.clear();
  try {
    for (const SourceRecord* r : records_) {
      GdalDataset ds;
      try {
        ds = open_raster(r->path);
      } catch (const std::exception& e) {
        // "PATH: reason" -> "PATH (item I, asset A): reason"
        const std::string what = e.what(), path = r->path.string();
        throw std::runtime_error(fmt::format("{}: {}", r->describe(), what.starts_with(path + ": ") ? what.substr(path.size() + 2) : what));
      }
      const OGRSpatialReference* srs = ds->GetSpatialRef();
      if (!srs) throw std::runtime_error(fmt::format("{}: the file has no CRS; the catalog says {}", r->describe(), r->crs));
      if (!same_crs(*srs, r->crs))
        throw std::runtime_error(fmt::format("{}: the file's CRS is {}, the catalog says {}", r->describe(),
                                             crs_name(*srs), r->crs));
      // A stacked set's record holds one of its bands; any other set's records hold all.
      std::vector<int> held;
      if (stacked_) {
        for (std::size_t b = 0; b < r->bands.size(); ++b)
          if (r->bands[b] > 0) held.push_back(static_cast<int>(b));
      } else {
        held = bands_;
      }
      std::vector<int> source_bands;
      for (int b : held) {
        const int sb = b < static_cast<int>(r->bands.size()) ? r->bands[static_cast<std::size_t>(b)] : 0;
        if (sb < 1) throw std::runtime_error(fmt::format("{}: the record does not hold band {} of {}", r->describe(),
                                                         info(r->modality).bands.at(static_cast<std::size_t>(b)), info(r->modality).name));
        if (sb > ds->GetRasterCount())
          throw std::runtime_error(fmt::format("{}: has {} bands, the catalog maps band {}", r->describe(), ds->GetRasterCount(), sb));
        source_bands.push_back(sb);
      }
      // A catalog's scale/offset (STAC raster:bands) is applied after the warp: every
      // resampling kernel is a weighted mean or a pick, so it commutes with an affine map,
      // and no-data stays in the file's own numbers until then.
      const std::pair<double, double> affine{r->scale.value_or(1.0), r->offset.value_or(0.0)};
      if (r == records_.front()) affine_ = affine;
      else if (affine != affine_ && stacked_)
        throw NotStackable(fmt::format("{} has another scale/offset than {}", r->describe(), records_.front()->describe()));
      else if (affine != affine_)
        throw std::runtime_error(fmt::format("{}: scale/offset {}/{} differ from {}'s {}/{} in one mosaic", r->describe(),
                                             affine.first, affine.second, records_.front()->describe(), affine_.first, affine_.second));
      bool scaled = false, identity = ds->GetRasterCount() == static_cast<int>(source_bands.size());
      for (std::size_t i = 0; i < source_bands.size(); ++i) {
        GDALRasterBand* band = ds->GetRasterBand(source_bands[i]);
        scaled |= band->GetScale() != 1.0 || band->GetOffset() != 0.0;
        identity &= source_bands[i] == static_cast<int>(i) + 1;
      }
      void* input = ds.get();
      if (scaled || !identity || r->nodata) {
        // In-memory VRT: the catalog's bands, as Float32 with scale/offset applied.
        std::vector<std::string> args = {"-of", "VRT", "-ot", "Float32"};
        for (int b : source_bands) { args.push_back("-b"); args.push_back(std::to_string(b)); }
        if (r->nodata) { args.push_back("-a_nodata"); args.push_back(fmt::format("{:.17g}", *r->nodata)); }
        if (scaled) args.push_back("-unscale");
        Argv argv(args);
        GDALTranslateOptions* opts = GDALTranslateOptionsNew(argv.get(), nullptr);
        CPLErrorReset();
        input = GDALTranslate("", GDALDataset::ToHandle(ds.get()), opts, nullptr);
        GDALTranslateOptionsFree(opts);
        if (!input) throw std::runtime_error(fmt::format("{}: cannot select bands/unscale: {}", r->describe(), gdal_error()));
      }
      void* mask = nullptr;
      if (r->mask) {
        try {
          GdalDataset m = open_raster(r->mask->path);
          if (r->mask->band < 1 || r->mask->band > m->GetRasterCount())
            throw std::runtime_error(fmt::format("has {} bands, the catalog's mask uses band {}", m->GetRasterCount(), r->mask->band));
          if (!m->GetSpatialRef() || !m->GetSpatialRef()->IsSame(srs))
            throw std::runtime_error(fmt::format("its CRS is not that of {}", r->path.string()));
          mask = m.release();
        } catch (const std::exception& e) {
          if (input != ds.get()) GDALClose(input);
          throw std::runtime_error(fmt::format("mask {} of {}: {}", r->mask->path.string(), r->describe(), e.what()));
        }
      }
      inputs_.push_back(input);
      source_bands_.push_back(source_bands);
      unscaled_.push_back(scaled);
      datasets_.push_back(ds.release());
      masks_.push_back(mask);
    }
    for (void* input : inputs_) pixel_m_.push_back(pixel_metres(*GDALDataset::FromHandle(input)));
  } catch (...) {
    close();
    throw;
  }
}

SourceSet::~SourceSet() { close(); }

void SourceSet::close() {
  for (std::size_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i] != datasets_[i]) GDALClose(inputs_[i]);
  for (void* ds : datasets_) GDALClose(ds);
  for (void* m : masks_)
    if (m) GDALClose(m);
  inputs_.clear();
  datasets_.clear();
  masks_.clear();
}

bool SourceSet::masked() const {
  return std::any_of(masks_.begin(), masks_.end(), [](void* m) { return m != nullptr; });
}

namespace {

// A north-up Float32 MEM dataset in a CRS over band planes of `values`, no-data NaN.
GdalDataset mem_over(float* values, int width, int height, int bands, const double gt[6], const OGRSpatialReference* srs) {
  const std::string open = fmt::format("MEM:::DATAPOINTER={},PIXELS={},LINES={},BANDS={},DATATYPE=Float32",
                                       static_cast<void*>(values), width, height, bands);
  GdalDataset ds(GDALDataset::FromHandle(GDALOpen(open.c_str(), GA_Update)));
  if (!ds) throw std::runtime_error("cannot create an in-memory raster: " + gdal_error());
  ds->SetGeoTransform(const_cast<double*>(gt));
  if (srs) ds->SetSpatialRef(srs);
  for (int b = 1; b <= bands; ++b) ds->GetRasterBand(b)->SetNoDataValue(std::numeric_limits<double>::quiet_NaN());
  return ds;
}

// The pixel window [x0, x1) x [y0, y1) of a source that the destination window reaches,
// `margin` source pixels wider on each side (the resampling kernel), clipped to the
// source; empty when the source does not reach the window.
struct PixelWindow {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  bool empty() const { return x1 <= x0 || y1 <= y0; }
};

PixelWindow source_window(GDALDataset& src, const GridWindow& window, int margin) {
  double gt[6], inv[6];
  src.GetGeoTransform(gt);
  if (!GDALInvGeoTransform(gt, inv))
    throw std::runtime_error(fmt::format("{}: its geotransform cannot be inverted", src.GetDescription()));
  OGRSpatialReference dst_srs;
  dst_srs.importFromEPSG(window.zone.epsg());
  dst_srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  OGRSpatialReference src_srs(*src.GetSpatialRef());
  src_srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&dst_srs, &src_srs));
  if (!ct) throw std::runtime_error(fmt::format("{}: no transformation from the tile's CRS to the file's", src.GetDescription()));
  const Box b = window.box();
  constexpr int kSteps = 32;
  double px0 = 1e300, py0 = 1e300, px1 = -1e300, py1 = -1e300;
  for (int i = 0; i <= kSteps; ++i)
    for (int edge = 0; edge < 4; ++edge) {
      const double t = static_cast<double>(i) / kSteps;
      double x = edge == 0 ? b.e0 + t * (b.e1 - b.e0) : edge == 1 ? b.e1 : edge == 2 ? b.e1 - t * (b.e1 - b.e0) : b.e0;
      double y = edge == 0 ? b.n1 : edge == 1 ? b.n1 - t * (b.n1 - b.n0) : edge == 2 ? b.n0 : b.n0 + t * (b.n1 - b.n0);
      if (!ct->Transform(1, &x, &y)) continue;
      const double px = inv[0] + x * inv[1] + y * inv[2], py = inv[3] + x * inv[4] + y * inv[5];
      px0 = std::min(px0, px), px1 = std::max(px1, px), py0 = std::min(py0, py), py1 = std::max(py1, py);
    }
  if (px0 > px1) return {};
  const auto clampi = [](double v, int hi) { return static_cast<int>(std::clamp(v, 0.0, static_cast<double>(hi))); };
  return {clampi(std::floor(px0) - margin, src.GetRasterXSize()), clampi(std::floor(py0) - margin, src.GetRasterYSize()),
          clampi(std::ceil(px1) + margin, src.GetRasterXSize()), clampi(std::ceil(py1) + margin, src.GetRasterYSize())};
}

// The classes of a mask on the grid of a window of a source: each source pixel takes the
// class of the mask pixel under its centre (on Sentinel-2's aligned 10 m and 20 m grids:
// the 20 m pixel it lies in), as a nearest-neighbour warp does. The mask shares the
// source's CRS (checked when opened) and both grids are north-up: an index, no warp.
// -1 where the mask does not reach.
std::vector<std::int32_t> mask_classes(GDALDataset& mask, int band, const double gt[6], int width, int height) {
  double mgt[6];
  mask.GetGeoTransform(mgt);
  if (gt[2] != 0 || gt[4] != 0 || mgt[2] != 0 || mgt[4] != 0)
    throw std::runtime_error("a rotated grid (geotransform with rotation terms) is not supported for masks");
  const int mw = mask.GetRasterXSize(), mh = mask.GetRasterYSize();
  std::vector<int> cols(static_cast<std::size_t>(width)), rows(static_cast<std::size_t>(height));
  int c0 = mw, c1 = -1, r0 = mh, r1 = -1;
  for (int x = 0; x < width; ++x) {
    const int c = static_cast<int>(std::floor((gt[0] + (x + 0.5) * gt[1] - mgt[0]) / mgt[1]));
    cols[static_cast<std::size_t>(x)] = c;
    if (c >= 0 && c < mw) c0 = std::min(c0, c), c1 = std::max(c1, c);
  }
  for (int y = 0; y < height; ++y) {
    const int r = static_cast<int>(std::floor((gt[3] + (y + 0.5) * gt[5] - mgt[3]) / mgt[5]));
    rows[static_cast<std::size_t>(y)] = r;
    if (r >= 0 && r < mh) r0 = std::min(r0, r), r1 = std::max(r1, r);
  }
  std::vector<std::int32_t> classes(static_cast<std::size_t>(width) * height, -1);
  if (c1 < c0 || r1 < r0) return classes;
  const int rw = c1 - c0 + 1, rh = r1 - r0 + 1;
  std::vector<std::int32_t> window(static_cast<std::size_t>(rw) * rh);
  CPLErrorReset();
  if (!read_tiff_window(*mask.GetRasterBand(band), c0, r0, rw, rh, window.data()) &&
      mask.GetRasterBand(band)->RasterIO(GF_Read, c0, r0, rw, rh, window.data(), rw, rh, GDT_Int32, 0, 0) != CE_None)
    throw std::runtime_error("cannot be read: " + gdal_error());
  for (int y = 0; y < height; ++y) {
    const int r = rows[static_cast<std::size_t>(y)];
    if (r < r0 || r > r1) continue;
    for (int x = 0; x < width; ++x) {
      const int c = cols[static_cast<std::size_t>(x)];
      if (c >= c0 && c <= c1)
        classes[static_cast<std::size_t>(y) * width + x] = window[static_cast<std::size_t>(r - r0) * rw + (c - c0)];
    }
  }
  return classes;
}

// Reads bands of one grid over a window as Float32, no-data as NaN, and sets the pixels
// a mask does not keep to NaN.
std::vector<float> read_masked(GDALDataset& src, const std::vector<BandSource>& sources, const PixelWindow& w, int out_w,
                               int out_h, GDALDataset* mask, const MaskSpec* spec, const std::string& what) {
  const int bands = static_cast<int>(sources.size());
  std::vector<float> values(static_cast<std::size_t>(bands) * out_w * out_h);
  CPLErrorReset();
  for (int plane = 0; plane < bands; ++plane) {
    const BandSource& b = sources[static_cast<std::size_t>(plane)];
    float* dst = values.data() + static_cast<std::size_t>(plane) * out_w * out_h;
    const bool whole = out_w == w.x1 - w.x0 && out_h == w.y1 - w.y0;  // our decoder reads at full resolution
    if (!(whole && read_tiff_window(*b.band, w.x0, w.y0, out_w, out_h, dst)) &&
        b.band->RasterIO(GF_Read, w.x0, w.y0, w.x1 - w.x0, w.y1 - w.y0, dst, out_w, out_h, GDT_Float32, 0, 0) != CE_None)
      throw std::runtime_error(fmt::format("{}: cannot be read: {}", what, gdal_error()));
    if (b.nodata && !std::isnan(*b.nodata))
      for (std::size_t i = 0; i < static_cast<std::size_t>(out_w) * out_h; ++i)
        if (dst[i] == static_cast<float>(*b.nodata)) dst[i] = std::numeric_limits<float>::quiet_NaN();
  }
  if (mask) {
    double gt[6], sub[6];
    src.GetGeoTransform(gt);
    // The window's grid at the read size (decimated reads widen its pixels).
    sub[0] = gt[0] + w.x0 * gt[1] + w.y0 * gt[2];
    sub[3] = gt[3] + w.x0 * gt[4] + w.y0 * gt[5];
    sub[1] = gt[1] * (w.x1 - w.x0) / out_w, sub[2] = gt[2] * (w.y1 - w.y0) / out_h;
    sub[4] = gt[4] * (w.x1 - w.x0) / out_w, sub[5] = gt[5] * (w.y1 - w.y0) / out_h;
    std::vector<std::int32_t> classes;
    try {
      classes = mask_classes(*mask, spec->band, sub, out_w, out_h);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("mask {} of {}: {}", spec->path.string(), what, e.what()));
    }
    // Classes kept, sorted: a few comparisons per pixel, for any class values (Landsat's
    // 16-bit QA_PIXEL as well as Sentinel-2's SCL).
    std::vector<int> keep(spec->valid);
    std::sort(keep.begin(), keep.end());
    for (std::size_t i = 0; i < classes.size(); ++i)
      if (!std::binary_search(keep.begin(), keep.end(), classes[i]))
        for (int b = 0; b < bands; ++b) values[static_cast<std::size_t>(b) * out_w * out_h + i] = std::numeric_limits<float>::quiet_NaN();
  }
  return values;
}

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
bool copies_at_step_one(const std::string& resampling) {
  return resampling == "near" || resampling == "bilinear" || resampling == "cubic" || resampling == "average";
}

// Whether a raster is in the window's CRS (WGS 84 / UTM of its zone).
bool in_window_crs(GDALDataset& src, const GridWindow& window) {
  const OGRSpatialReference* srs = src.GetSpatialRef();
  if (!srs || srs->GetEPSGGeogCS() != 4326 || !srs->IsProjected()) return false;
  const char* code = srs->GetAuthorityCode(nullptr);
  return code && std::atoi(code) == window.zone.epsg();
}

std::optional<Aligned> aligned(GDALDataset& src, const GridWindow& window, const std::string& resampling) {
  double gt[6];
  if (src.GetGeoTransform(gt) != CE_None || gt[2] != 0 || gt[4] != 0 || gt[1] <= 0 || gt[5] != -gt[1]) return {};
  if (!in_window_crs(src, window)) return {};
  const double step = window.pixel / gt[1];
  const double whole = std::round(step);
  const auto is_whole = [](double v) { return std::abs(v - std::round(v)) < 1e-9 * std::max(1.0, std::abs(v)); };
  if (whole < 1 || !is_whole(step)) return {};
  if (whole > 1 && resampling != "near") return {};
  if (whole == 1 && !copies_at_step_one(resampling)) return {};
  const double x0 = (window.west - gt[0]) / gt[1], y0 = (gt[3] - window.north) / gt[1];
  if (!is_whole(x0) || !is_whole(y0)) return {};
  return Aligned{std::lround(x0), std::lround(y0), static_cast<int>(whole)};
}

std::atomic<std::int64_t> aligned_count{0}, lattice_count{0};

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

std::vector<BandSource> SourceSet::band_sources(std::size_t first, std::size_t count) const {
  std::vector<BandSource> out;
  for (std::size_t i = first; i < first + count; ++i) {
    // The file's own bands, no-data as the catalog or the file says, unless the file's own
    // scale needs GDAL's unscaling (its VRT): an in-memory VRT keeps a work buffer of the
    // largest window read per source, which over hundreds of scenes was hundreds of MB.
    GDALDataset* ds = GDALDataset::FromHandle(unscaled_[i] ? inputs_[i] : datasets_[i]);
    for (std::size_t k = 0; k < source_bands_[i].size(); ++k) {
      GDALRasterBand* band = ds->GetRasterBand(unscaled_[i] ? static_cast<int>(k) + 1 : source_bands_[i][k]);
      int has = 0;
      const double own = band->GetNoDataValue(&has);
      std::optional<double> nodata = has ? std::optional<double>(own) : std::nullopt;
      if (!unscaled_[i] && records_[i]->nodata) nodata = records_[i]->nodata;
      out.push_back({band, nodata});
    }
  }
  return out;
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
  // Enough source pixels around the window for any kernel GDAL uses (lanczos: 3 source
  // pixels, widened by the downsampling factor), so a strip reads what the whole would.
  const double factor = std::max(1.0, 1.0 / std::max(std::min(settings.xscale, settings.yscale), 1e-6));
  const int margin = 4 + static_cast<int>(std::ceil(3 * factor));
  const PixelWindow w = source_window(*src, window, margin);
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

void SourceSet::suspend() {
  close();
  suspended_ = true;
}

void SourceSet::warp(const GridWindow& window, const WarpSettings& settings, float* out, int bands) {
  if (suspended_) {
    open();
    suspended_ = false;
  }
  // The warper writes straight into our buffer: a MEM dataset over it.
  const Box b = window.box();
  const double gt[6] = {b.e0, window.pixel, 0, b.n1, 0, -window.pixel};
  OGRSpatialReference srs;
  srs.importFromEPSG(window.zone.epsg());
  GdalDataset dst = mem_over(out, window.width, window.height, bands, gt, &srs);
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
      if (bad) throw std::runtime_error(fmt::format("{}: cannot be read: {}", records_[i]->describe(), gdal_error(reason)));
    }
    throw std::runtime_error(fmt::format("warp of {} source(s) ({}...) failed: {}", records_.size(),
                                         records_.empty() ? "" : records_.front()->describe(), reason));
  }
}

WarpSettings SourceSet::scaled(const WarpSettings& settings, const GridWindow& window, std::size_t source) const {
  if (settings.xscale > 0 && settings.yscale > 0) return settings;
  WarpSettings out = settings;
  out.xscale = pixel_m_.at(source).first / window.pixel;
  out.yscale = pixel_m_.at(source).second / window.pixel;
  return out;
}

std::vector<float> SourceSet::sample(std::size_t source, int band, int size) const {
  GDALDataset* ds = GDALDataset::FromHandle(inputs_.at(source));
  const int w = std::min(size, ds->GetRasterXSize()), h = std::min(size, ds->GetRasterYSize());
  const PixelWindow all{0, 0, ds->GetRasterXSize(), ds->GetRasterYSize()};
  const SourceRecord& r = *records_.at(source);
  const std::vector<float> values = read_masked(*ds, band_sources(source, 1), all, w, h, GDALDataset::FromHandle(masks_.at(source)),
                                                r.mask ? &*r.mask : nullptr, r.describe());
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(w) * h);
  for (std::size_t i = 0; i < static_cast<std::size_t>(w) * h; ++i) {
    const float v = static_cast<float>(values[static_cast<std::size_t>(band - 1) * w * h + i] * affine_.first + affine_.second);
    if (std::isnan(v)) continue;
    // Statistics in the units the modality hands on: backscatter in dB.
    if (r.units == Units::linear_power) {
      if (v > 0) out.push_back(static_cast<float>(10 * std::log10(v)));
    } else if (r.units == Units::amplitude_dn) {
      if (v > 0) out.push_back(static_cast<float>(20 * std::log10(v) - 83));
    } else {
      out.push_back(v);
    }
  }
  return out;
}

LonLatBox padded(const LonLatBox& b) { return b.grown(0.01); }

// One scene (or one season's product mosaic): its records grouped by the bands they hold
// (a multi-band file holds all; each S2 band is its own COG), each group warped together.
struct ModalitySources::Observation {
  ObservationInfo info;
  Units units = Units::native;
  std::vector<std::unique_ptr<SourceSet>> parts;
  // One set of all bands, unmasked, in the modality's units: warped as it is.
  bool plain(int bands) const {
    return parts.size() == 1 && static_cast<int>(parts[0]->bands().size()) == bands && !parts[0]->masked() &&
           units == Units::native;
  }
};

ModalitySources::~ModalitySources() = default;
ModalitySources::ModalitySources(ModalitySources&&) noexcept = default;

ModalitySources::ModalitySources(const Catalog& catalog, Modality modality, const LonLatBox& area) : modality_(modality) {
  for (int season = 0; season < info(modality).seasons; ++season) {
    // Records of one observation; observations in time order, then by id, so that the
    // composite never depends on the order of the catalog.
    std::map<std::pair<std::string, std::string>, std::vector<const SourceRecord*>> groups;
    for (const SourceRecord* r : catalog.query(modality, season, padded(area)))
      groups[{r->time, r->observation()}].push_back(r);
    std::vector<Observation> observations;
    for (auto& [key, records] : groups) {
      Observation o;
      o.info = {key.second, records.front()->time};
      o.units = records.front()->units;
      std::map<std::vector<int>, std::vector<const SourceRecord*>> by_bands;
      for (const SourceRecord* r : records) {
        if (r->units != o.units)
          throw std::runtime_error(fmt::format("{}: units {} differ from {}'s other files ({})", r->describe(),
                                               units_name(r->units), o.info.id, units_name(o.units)));
        std::vector<int> held;
        for (std::size_t b = 0; b < r->bands.size(); ++b)
          if (r->bands[b] > 0) held.push_back(static_cast<int>(b));
        by_bands[held].push_back(r);
      }
      // A scene of one file per band (and all of them): one stacked input if they share a grid.
      const bool per_band = by_bands.size() > 1 && std::all_of(by_bands.begin(), by_bands.end(), [](const auto& kv) {
        return kv.first.size() == 1 && kv.second.size() == 1;
      });
      if (per_band && by_bands.size() == info(modality).bands.size()) {
        std::vector<const SourceRecord*> scene;
        for (auto& [bands, rs] : by_bands) scene.push_back(rs.front());
        try {
          o.parts.push_back(std::make_unique<SourceSet>(scene, SourceSet::Stack{}));
        } catch (const SourceSet::NotStackable&) {
        }
      }
      if (o.parts.empty())
        for (auto& [bands, rs] : by_bands) o.parts.push_back(std::make_unique<SourceSet>(rs, bands));
      observations.push_back(std::move(o));
    }
    seasons_.push_back(std::move(observations));
  }
}

std::vector<std::vector<ObservationInfo>> ModalitySources::observations() const {
  std::vector<std::vector<ObservationInfo>> out;
  for (const auto& season : seasons_) {
    out.emplace_back();
    for (const Observation& o : season) out.back().push_back(o.info);
  }
  return out;
}

namespace {

// An observation's values in the space its modality composites in: linear power for
// mean_power_db, the modality's own units otherwise.
inline double to_composite(double v, Units units, Reduce reduce) {
  if (reduce == Reduce::mean_power_db) {
    switch (units) {
      case Units::native: return std::pow(10.0, v / 10);
      case Units::linear_power: return v;
      case Units::amplitude_dn: return v * v * std::pow(10.0, -8.3);
    }
  }
  switch (units) {
    case Units::native: return v;
    case Units::linear_power: return 10 * std::log10(v);
    case Units::amplitude_dn: return 20 * std::log10(v) - 83;
  }
  return v;
}

}  // namespace

// Observations of a season kept open between strips; a season of more is reopened per strip.
constexpr std::size_t kOpenObservations = 4;

void ModalitySources::composite(const std::vector<Observation>& season, const GridWindow& window,
                                const WarpSettings& settings, float* out, std::uint16_t* clear) const {
  const ModalityInfo& mi = info(modality_);
  const int nb = static_cast<int>(mi.bands.size());
  const std::size_t n_obs = season.size();
  const std::size_t W = static_cast<std::size_t>(window.width);
  // Strip height: every observation's bands of a strip in settings.memory_mb.
  const std::size_t per_row = n_obs * static_cast<std::size_t>(nb) * W * sizeof(float);
  const int strip = static_cast<int>(std::clamp<std::size_t>(static_cast<std::size_t>(settings.memory_mb) * 1024 * 1024 / per_row, 1,
                                                              static_cast<std::size_t>(window.height)));
  std::vector<float> layers, part;
  std::vector<double> values;
  for (int y0 = 0; y0 < window.height; y0 += strip) {
    const int rows = std::min(strip, window.height - y0);
    GridWindow sw = window;
    sw.north = window.north - y0 * window.pixel;
    sw.height = rows;
    const std::size_t plane = static_cast<std::size_t>(rows) * W;
    layers.assign(n_obs * nb * plane, std::numeric_limits<float>::quiet_NaN());
    for (std::size_t o = 0; o < n_obs; ++o)
      for (const auto& set : season[o].parts) {
        const std::vector<int>& bands = set->bands();
        const int k = static_cast<int>(bands.size());
        float* first = layers.data() + (o * nb + static_cast<std::size_t>(bands.front())) * plane;
        bool consecutive = true;
        for (int i = 0; i < k; ++i) consecutive &= bands[static_cast<std::size_t>(i)] == bands.front() + i;
        if (consecutive) {  // a whole scene's bands, in order: warped in place
          set->warp(sw, settings, first, k);
        } else {
          part.resize(static_cast<std::size_t>(k) * plane);
          set->warp(sw, settings, part.data(), k);
          for (int i = 0; i < k; ++i)
            std::copy_n(part.data() + static_cast<std::size_t>(i) * plane, plane,
                        layers.data() + (o * nb + static_cast<std::size_t>(bands[static_cast<std::size_t>(i)])) * plane);
        }
        // Memory bounded in the number of scenes too: beyond a few, each is closed after
        // use and reopened for the next strip.
        if (n_obs > kOpenObservations) set->suspend();
      }
    for (std::size_t p = 0; p < plane; ++p) {
      const std::size_t at = static_cast<std::size_t>(y0) * W + p;
      std::uint16_t seen = 0;
      for (std::size_t o = 0; o < n_obs; ++o)
        for (int b = 0; b < nb; ++b)
          if (!std::isnan(layers[(o * nb + b) * plane + p])) {
            ++seen;
            break;
          }
      clear[at] = seen;
      for (int b = 0; b < nb; ++b) {
        values.clear();
        for (std::size_t o = 0; o < n_obs; ++o) {
          const float v = layers[(o * nb + b) * plane + p];
          if (!std::isnan(v)) values.push_back(to_composite(v, season[o].units, mi.reduce));
        }
        float result = std::numeric_limits<float>::quiet_NaN();
        if (!values.empty()) {
          switch (mi.reduce) {
            case Reduce::median: {
              std::sort(values.begin(), values.end());
              const std::size_t n = values.size();
              result = n % 2 ? static_cast<float>(values[n / 2])
                             : static_cast<float>((values[n / 2 - 1] + values[n / 2]) / 2);
              break;
            }
            case Reduce::mean:
            case Reduce::mean_power_db: {
              double sum = 0;
              for (double v : values) sum += v;  // in time order: the same bits on every rank
              const double mean = sum / static_cast<double>(values.size());
              result = static_cast<float>(mi.reduce == Reduce::mean ? mean : 10 * std::log10(mean));
              break;
            }
            case Reduce::first: result = static_cast<float>(values.front()); break;
          }
        }
        out[static_cast<std::size_t>(b) * W * window.height + at] = result;
      }
    }
  }
}

WarpedModality ModalitySources::warp(const GridWindow& window, const WarpSettings& settings) const {
  const ModalityInfo& mi = info(modality_);
  WarpedModality out{modality_, mi.channels(), window.width, window.height, {}, {}, {}};
  const std::size_t plane = static_cast<std::size_t>(window.width) * window.height;
  out.data.assign(static_cast<std::size_t>(out.channels) * plane, std::numeric_limits<float>::quiet_NaN());
  out.clear.assign(static_cast<std::size_t>(mi.seasons) * plane, 0);
  out.observations = observations();
  const int nb = static_cast<int>(mi.bands.size());
  for (std::size_t season = 0; season < seasons_.size(); ++season) {
    const auto& observations = seasons_[season];
    if (observations.empty()) continue;  // the modality is missing here: channels stay NaN
    float* dst = out.data.data() + season * nb * plane;
    std::uint16_t* clear = out.clear.data() + season * plane;
    if (observations.size() == 1 && observations[0].plain(nb)) {
      // One product (or one scene, nothing to mask): warped as it is.
      observations[0].parts[0]->warp(window, settings, dst, nb);
      for (std::size_t p = 0; p < plane; ++p)
        for (int b = 0; b < nb; ++b)
          if (!std::isnan(dst[static_cast<std::size_t>(b) * plane + p])) {
            clear[p] = 1;
            break;
          }
    } else {
      composite(observations, window, settings, dst, clear);
    }
  }
  return out;
}

WarpedModality warp_modality(const Catalog& catalog, Modality modality, const GridWindow& window,
                             const WarpSettings& settings) {
  return ModalitySources(catalog, modality, window.lonlat_box()).warp(window, settings);
}

void set_gdal_cache(int megabytes) {
  GDALSetCacheMax64(static_cast<GIntBig>(megabytes) * 1024 * 1024);
  set_tiff_block_cache(static_cast<std::size_t>(megabytes) << 20);
}

}  // namespace eo
