#pragma once
// Small GDAL helpers shared by the stages that read and write rasters.

#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <filesystem>
#include <memory>
#include <string>

#include "stages/ingest/catalog.hpp"

namespace eo {

struct GdalCloser {
  void operator()(GDALDataset* ds) const { GDALClose(GDALDataset::ToHandle(ds)); }
};
using GdalDataset = std::unique_ptr<GDALDataset, GdalCloser>;

// GDAL's drivers registered once, errors kept quiet (we report them ourselves).
void gdal_init();

// Opens a raster read-only; throws std::runtime_error naming the file and GDAL's reason.
GdalDataset open_raster(const std::filesystem::path& path);

// GDAL's last error message on this thread, or `fallback`.
std::string gdal_error(const std::string& fallback = "unknown GDAL error");

std::string srs_wkt(const OGRSpatialReference& srs);

// Bounds of a raster in EPSG:4326, from points along its edges.
LonLatBox lonlat_bounds(GDALDataset& ds);

}  // namespace eo
