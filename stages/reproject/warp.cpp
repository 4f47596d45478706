#include "stages/reproject/warp.hpp"

#include <gdal_priv.h>
#include <gdal_utils.h>
#include <ogr_spatialref.h>

#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <stdexcept>

#include "stages/ingest/gdal_util.hpp"

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
std::vector<std::string> resampling_arguments(const WarpSettings& s) {
  return {"-r", s.resampling, "-et", "0", "-dstnodata", "nan",
          "-wm", std::to_string(s.memory_mb),
          "-wo", fmt::format("NUM_THREADS={}", std::max(1, s.threads)),
          "-wo", fmt::format("XSCALE={:.17g}", s.scale),
          "-wo", fmt::format("YSCALE={:.17g}", s.scale)};
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

SourceSet::SourceSet(const std::vector<const SourceRecord*>& records) {
  gdal_init();
  try {
    for (const SourceRecord* r : records) {
      GdalDataset ds = open_raster(r->path);
      const OGRSpatialReference* srs = ds->GetSpatialRef();
      if (!srs) throw std::runtime_error(fmt::format("{}: the file has no CRS; the catalog says {}", r->path.string(), r->crs));
      if (!same_crs(*srs, r->crs))
        throw std::runtime_error(fmt::format("{}: the file's CRS is {}, the catalog says {}", r->path.string(),
                                             crs_name(*srs), r->crs));
      for (int b : r->bands)
        if (b > ds->GetRasterCount())
          throw std::runtime_error(fmt::format("{}: has {} bands, the catalog maps band {}", r->path.string(), ds->GetRasterCount(), b));
      bool scaled = false, identity = ds->GetRasterCount() == static_cast<int>(r->bands.size());
      for (std::size_t i = 0; i < r->bands.size(); ++i) {
        GDALRasterBand* band = ds->GetRasterBand(r->bands[i]);
        scaled |= band->GetScale() != 1.0 || band->GetOffset() != 0.0;
        identity &= r->bands[i] == static_cast<int>(i) + 1;
      }
      void* input = ds.get();
      if (scaled || !identity) {
        // In-memory VRT: the catalog's bands, as Float32 with scale/offset applied.
        std::vector<std::string> args = {"-of", "VRT", "-ot", "Float32"};
        for (int b : r->bands) { args.push_back("-b"); args.push_back(std::to_string(b)); }
        if (scaled) args.push_back("-unscale");
        Argv argv(args);
        GDALTranslateOptions* opts = GDALTranslateOptionsNew(argv.get(), nullptr);
        CPLErrorReset();
        input = GDALTranslate("", GDALDataset::ToHandle(ds.get()), opts, nullptr);
        GDALTranslateOptionsFree(opts);
        if (!input) throw std::runtime_error(fmt::format("{}: cannot select bands/unscale: {}", r->path.string(), gdal_error()));
      }
      inputs_.push_back(input);
      datasets_.push_back(ds.release());
      files_.push_back(r->path.string());
    }
    native_pixel_m_ = native_pixel_m();
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
  inputs_.clear();
  datasets_.clear();
}

void SourceSet::warp(const GridWindow& window, const WarpSettings& settings, float* out, int bands) const {
  // The warper writes straight into our buffer: a MEM dataset over it.
  const std::string open = fmt::format("MEM:::DATAPOINTER={},PIXELS={},LINES={},BANDS={},DATATYPE=Float32",
                                       static_cast<void*>(out), window.width, window.height, bands);
  GdalDataset dst(GDALDataset::FromHandle(GDALOpen(open.c_str(), GA_Update)));
  if (!dst) throw std::runtime_error("warp: cannot wrap the output buffer: " + gdal_error());
  const Box b = window.box();
  double gt[6] = {b.e0, window.pixel, 0, b.n1, 0, -window.pixel};
  dst->SetGeoTransform(gt);
  OGRSpatialReference srs;
  srs.importFromEPSG(window.zone.epsg());
  dst->SetSpatialRef(&srs);
  for (int i = 1; i <= bands; ++i) dst->GetRasterBand(i)->SetNoDataValue(std::numeric_limits<double>::quiet_NaN());
  std::fill(out, out + static_cast<std::size_t>(bands) * window.width * window.height, std::numeric_limits<float>::quiet_NaN());

  // Into an existing dataset gdalwarp takes neither -t_srs/-te/-ts nor -ot: the grid is the dataset's.
  Argv argv(resampling_arguments(with_scale(settings, window)));
  GDALWarpAppOptions* opts = GDALWarpAppOptionsNew(argv.get(), nullptr);
  std::vector<GDALDatasetH> inputs(inputs_.begin(), inputs_.end());
  int usage_error = 0;
  CPLErrorReset();
  GDALDatasetH result = GDALWarp(nullptr, GDALDataset::ToHandle(dst.get()), static_cast<int>(inputs.size()), inputs.data(), opts, &usage_error);
  GDALWarpAppOptionsFree(opts);
  const std::string reason = gdal_error();
  const bool failed = !result || CPLGetLastErrorType() >= CE_Failure;
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
      if (bad) throw std::runtime_error(fmt::format("{}: cannot be read: {}", files_[i], gdal_error(reason)));
    }
    throw std::runtime_error(fmt::format("warp of {} source(s) ({}...) failed: {}", files_.size(),
                                         files_.empty() ? "" : files_.front(), reason));
  }
}

WarpSettings SourceSet::with_scale(const WarpSettings& settings, const GridWindow& window) const {
  if (settings.scale > 0 || inputs_.empty()) return settings;
  WarpSettings out = settings;
  out.scale = native_pixel_m_ / window.pixel;
  return out;
}

// The finest pixel size of the sources in metres; a geographic source's at its centre.
// It depends on the sources only, never on the window being warped.
double SourceSet::native_pixel_m() const {
  double finest = 1e300;
  for (void* h : inputs_) {
    GDALDataset* ds = GDALDataset::FromHandle(h);
    double gt[6];
    ds->GetGeoTransform(gt);
    double size = std::min(std::hypot(gt[1], gt[4]), std::hypot(gt[2], gt[5]));
    const OGRSpatialReference* srs = ds->GetSpatialRef();
    if (srs && srs->IsGeographic()) {
      const double lat = gt[3] + gt[5] * ds->GetRasterYSize() / 2;
      size *= 111320.0 * std::cos(lat * M_PI / 180.0);
    } else if (srs) {
      size *= srs->GetLinearUnits();
    }
    finest = std::min(finest, size);
  }
  return finest;
}

std::vector<float> SourceSet::sample(std::size_t source, int band, int size) const {
  GDALDataset* ds = GDALDataset::FromHandle(inputs_.at(source));
  GDALRasterBand* b = ds->GetRasterBand(band);
  const int w = std::min(size, ds->GetRasterXSize()), h = std::min(size, ds->GetRasterYSize());
  std::vector<float> buf(static_cast<std::size_t>(w) * h);
  CPLErrorReset();
  if (b->RasterIO(GF_Read, 0, 0, ds->GetRasterXSize(), ds->GetRasterYSize(), buf.data(), w, h, GDT_Float32, 0, 0) != CE_None)
    throw std::runtime_error(fmt::format("{}: cannot be read: {}", files_.at(source), gdal_error()));
  int has_nodata = 0;
  const double nodata = b->GetNoDataValue(&has_nodata);
  std::vector<float> out;
  out.reserve(buf.size());
  for (float v : buf)
    if (!std::isnan(v) && !(has_nodata && v == static_cast<float>(nodata))) out.push_back(v);
  return out;
}

LonLatBox padded(const LonLatBox& b) { return b.grown(0.01); }

ModalitySources::ModalitySources(const Catalog& catalog, Modality modality, const LonLatBox& area) : modality_(modality) {
  for (int season = 0; season < info(modality).seasons; ++season)
    seasons_.push_back(std::make_unique<SourceSet>(catalog.query(modality, season, padded(area))));
}

WarpedModality ModalitySources::warp(const GridWindow& window, const WarpSettings& settings) const {
  const ModalityInfo& mi = info(modality_);
  WarpedModality out{modality_, mi.channels(), window.width, window.height, {}, {}};
  out.data.assign(static_cast<std::size_t>(out.channels) * window.width * window.height,
                  std::numeric_limits<float>::quiet_NaN());
  const int nb = static_cast<int>(mi.bands.size());
  for (std::size_t season = 0; season < seasons_.size(); ++season) {
    const SourceSet& sources = *seasons_[season];
    if (sources.empty()) continue;  // the modality is missing here: channels stay NaN
    sources.warp(window, settings, out.data.data() + season * nb * window.width * window.height, nb);
    out.sources.insert(out.sources.end(), sources.files().begin(), sources.files().end());
  }
  return out;
}

WarpedModality warp_modality(const Catalog& catalog, Modality modality, const GridWindow& window,
                             const WarpSettings& settings) {
  return ModalitySources(catalog, modality, window.lonlat_box()).warp(window, settings);
}

void set_gdal_cache(int megabytes) { GDALSetCacheMax64(static_cast<GIntBig>(megabytes) * 1024 * 1024); }

}  // namespace eo
