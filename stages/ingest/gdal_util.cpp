#include "stages/ingest/gdal_util.hpp"

#include <cpl_error.h>
#include <fmt/format.h>
#include <mutex>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "stages/ingest/remote.hpp"

namespace eo {

void gdal_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    GDALAllRegister();
    CPLSetErrorHandler(CPLQuietErrorHandler);
    install_remote_reader();
  });
}

std::string gdal_error(const std::string& fallback) {
  // A remote read's own reason (the HTTP status, curl's words) before what GDAL made of it.
  if (std::string remote = take_remote_failure(); !remote.empty()) return remote;
  const char* msg = CPLGetLastErrorMsg();
  return msg && *msg ? std::string(msg) : fallback;
}

GdalDataset open_raster(const std::filesystem::path& path) {
  gdal_init();
  CPLErrorReset();
  // Only files and GDAL's remote paths are inputs: a FIFO, a device or stdin blocks
  // GDAL's open (or reads forever), so they are refused before GDAL sees them.
  const std::string name = path.string();
  if (name.starts_with("/vsistdin"))
    throw StageError("ingest", fmt::format("{}: standard input is not an input eo-pipeline reads; name a file", name));
  if (!name.starts_with("/vsi")) {
    try {
      require_regular_file(underlying_file(path));
    } catch (const std::runtime_error& e) {
      throw StageError("ingest", e.what());
    }
  }
  take_remote_failure();
  take_remote_failure_not_the_objects();
  GdalDataset ds(GDALDataset::FromHandle(
      GDALOpenEx(readable_path(name).c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
  if (!ds) throw StageError("ingest", fmt::format("{}: cannot open as a raster: {}", redact_url(name), gdal_error("unknown format")));
  return ds;
}

std::string srs_wkt(const OGRSpatialReference& srs) {
  char* wkt = nullptr;
  const char* options[] = {"FORMAT=WKT2_2019", nullptr};
  srs.exportToWkt(&wkt, options);
  std::string out = wkt ? wkt : "";
  CPLFree(wkt);
  return out;
}

LonLatBox lonlat_bounds(GDALDataset& ds) {
  double gt[6];
  ds.GetGeoTransform(gt);
  OGRSpatialReference wgs84;
  wgs84.importFromEPSG(4326);
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  OGRSpatialReference src(*ds.GetSpatialRef());
  src.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&src, &wgs84));
  if (!ct) throw StageError("ingest", fmt::format("{}: no transformation from its CRS to EPSG:4326", ds.GetDescription()));
  const int w = ds.GetRasterXSize(), h = ds.GetRasterYSize();
  constexpr int kSteps = 16;
  LonLatBox b;
  for (int i = 0; i <= kSteps; ++i)
    for (int edge = 0; edge < 4; ++edge) {
      const double t = static_cast<double>(i) / kSteps;
      const double px = edge == 0 ? t * w : edge == 1 ? w : edge == 2 ? (1 - t) * w : 0;
      const double py = edge == 0 ? 0 : edge == 1 ? t * h : edge == 2 ? h : (1 - t) * h;
      double x = gt[0] + px * gt[1] + py * gt[2], y = gt[3] + px * gt[4] + py * gt[5];
      if (ct->Transform(1, &x, &y)) b.add(LonLat{x, y});
    }
  if (b.empty()) throw StageError("ingest", fmt::format("{}: footprint cannot be transformed to EPSG:4326", ds.GetDescription()));
  return b;
}

}  // namespace eo
