// SourceSet's files: opened and checked against the catalog (CRS, bands, scale/offset,
// masks), their bands as the warp reads them, samples for the normalisation statistics.

#include <gdal_priv.h>
#include <gdal_utils.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "stages/ingest/gdal_util.hpp"
#include "stages/reproject/reading.hpp"
#include "stages/reproject/warp.hpp"

namespace eo {

using reading::Argv;
using reading::PixelWindow;
using reading::read_masked;

namespace {

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

// Opens the records' files: the handles and what is read of each.
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
        const std::string what = detail_of(e), path = r->path.string();
        throw StageError("ingest", fmt::format("{}: {}", r->describe(), what.starts_with(path + ": ") ? what.substr(path.size() + 2) : what));
      }
      const OGRSpatialReference* srs = ds->GetSpatialRef();
      if (!srs) throw StageError("ingest", fmt::format("{}: the file has no CRS; the catalog says {}", r->describe(), r->crs));
      if (!same_crs(*srs, r->crs))
        throw StageError("ingest", fmt::format("{}: the file's CRS is {}, the catalog says {}", r->describe(),
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
        if (sb < 1) throw StageError("ingest", fmt::format("{}: the record does not hold band {} of {}", r->describe(),
                                                         info(r->modality).bands.at(static_cast<std::size_t>(b)), info(r->modality).name));
        if (sb > ds->GetRasterCount())
          throw StageError("ingest", fmt::format("{}: has {} bands, the catalog maps band {}", r->describe(), ds->GetRasterCount(), sb));
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
        throw StageError("ingest", fmt::format("{}: scale/offset {}/{} differ from {}'s {}/{} in one mosaic", r->describe(),
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
        if (!input) throw StageError("ingest", fmt::format("{}: cannot select bands/unscale: {}", r->describe(), gdal_error()));
      }
      void* mask = nullptr;
      if (r->mask) {
        try {
          GdalDataset m = open_raster(r->mask->path);
          if (r->mask->band < 1 || r->mask->band > m->GetRasterCount())
            throw StageError("ingest", fmt::format("has {} bands, the catalog's mask uses band {}", m->GetRasterCount(), r->mask->band));
          if (!m->GetSpatialRef() || !m->GetSpatialRef()->IsSame(srs))
            throw StageError("ingest", fmt::format("its CRS is not that of {}", r->path.string()));
          mask = m.release();
        } catch (const std::exception& e) {
          if (input != ds.get()) GDALClose(input);
          throw StageError("ingest", fmt::format("mask {} of {}: {}", r->mask->path.string(), r->describe(), detail_of(e)));
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

}  // namespace eo
