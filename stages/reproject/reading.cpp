#include "stages/reproject/reading.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "stages/ingest/tiff_blocks.hpp"

namespace eo::reading {
namespace {

// The classes of a mask on the grid of a window of a source: each source pixel takes the
// class of the mask pixel under its centre (on Sentinel-2's aligned 10 m and 20 m grids:
// the 20 m pixel it lies in), as a nearest-neighbour warp does. The mask shares the
// source's CRS (checked when opened) and both grids are north-up: an index, no warp.
// -1 where the mask does not reach.
std::vector<std::int32_t> mask_classes(GDALDataset& mask, int band, const double gt[6], int width, int height) {
  double mgt[6];
  mask.GetGeoTransform(mgt);
  if (gt[2] != 0 || gt[4] != 0 || mgt[2] != 0 || mgt[4] != 0)
    throw StageError("reproject", "a rotated grid (geotransform with rotation terms) is not supported for masks");
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
    throw StageError("reproject", "cannot be read: " + gdal_error());
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

}  // namespace

const OGRSpatialReference& zone_srs(const Zone& zone) {
  thread_local std::map<int, OGRSpatialReference> made;
  const auto [it, added] = made.try_emplace(zone.epsg());
  if (added) it->second.importFromEPSG(zone.epsg());
  return it->second;
}

OGRCoordinateTransformation* zone_to(const Zone& zone, const OGRSpatialReference& file) {
  thread_local std::map<std::pair<int, std::string>, std::unique_ptr<OGRCoordinateTransformation>> made;
  char* wkt = nullptr;
  file.exportToWkt(&wkt);
  std::pair<int, std::string> key{zone.epsg(), wkt ? wkt : ""};
  CPLFree(wkt);
  auto& ct = made[key];
  if (!ct) {
    OGRSpatialReference from(zone_srs(zone)), to(file);
    from.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    to.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    ct.reset(OGRCreateCoordinateTransformation(&from, &to));
  }
  return ct.get();
}

GdalDataset mem_over(float* values, int width, int height, int bands, const double gt[6], const OGRSpatialReference* srs) {
  const std::string open = fmt::format("MEM:::DATAPOINTER={},PIXELS={},LINES={},BANDS={},DATATYPE=Float32",
                                       static_cast<void*>(values), width, height, bands);
  GdalDataset ds(GDALDataset::FromHandle(GDALOpen(open.c_str(), GA_Update)));
  if (!ds) throw StageError("reproject", "cannot create an in-memory raster: " + gdal_error());
  ds->SetGeoTransform(const_cast<double*>(gt));
  if (srs) ds->SetSpatialRef(srs);
  for (int b = 1; b <= bands; ++b) ds->GetRasterBand(b)->SetNoDataValue(std::numeric_limits<double>::quiet_NaN());
  return ds;
}

PixelWindow source_window(GDALDataset& src, const GridWindow& window, int margin) {
  return source_windows(src, {window}, margin).front();
}

std::vector<PixelWindow> source_windows(GDALDataset& src, const std::vector<GridWindow>& windows, int margin) {
  std::vector<PixelWindow> out;
  if (windows.empty()) return out;
  double gt[6], inv[6];
  src.GetGeoTransform(gt);
  if (!GDALInvGeoTransform(gt, inv))
    throw StageError("reproject", fmt::format("{}: its geotransform cannot be inverted", src.GetDescription()));
  OGRCoordinateTransformation* ct = zone_to(windows.front().zone, *src.GetSpatialRef());
  if (!ct) throw StageError("reproject", fmt::format("{}: no transformation from the tile's CRS to the file's", src.GetDescription()));
  const auto clampi = [](double v, int hi) { return static_cast<int>(std::clamp(v, 0.0, static_cast<double>(hi))); };
  for (const GridWindow& window : windows) {
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
    if (px0 > px1) {
      out.emplace_back();
      continue;
    }
    out.push_back({clampi(std::floor(px0) - margin, src.GetRasterXSize()), clampi(std::floor(py0) - margin, src.GetRasterYSize()),
                   clampi(std::ceil(px1) + margin, src.GetRasterXSize()), clampi(std::ceil(py1) + margin, src.GetRasterYSize())});
  }
  return out;
}

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
      throw StageError("reproject", fmt::format("{}: cannot be read: {}", what, gdal_error()));
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
      throw StageError("reproject", fmt::format("mask {} of {}: {}", spec->path.string(), what, detail_of(e)));
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

}  // namespace eo::reading
