#pragma once
// Reading sources for the warp, private to the reproject stage: a source's pixels under
// a window of the grid, as Float32 with no-data as NaN and masked classes removed at the
// file's own resolution, and in-memory rasters over such pixels for GDAL's warper.

#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <string>
#include <vector>

#include "stages/ingest/gdal_util.hpp"
#include "stages/reproject/warp.hpp"

namespace eo::reading {

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

// The CRS of a zone, made once per thread: importFromEPSG reads PROJ's database (4% of
// `run` on the demo when every warp did it).
const OGRSpatialReference& zone_srs(const Zone& zone);
// The transformation from a zone's CRS to a file's (both in GIS axis order), made once per
// thread and pair: PROJ's search for an operation reads its database (5% of `run` on the
// demo when every window of every file made its own). Null when PROJ has none.
OGRCoordinateTransformation* zone_to(const Zone& zone, const OGRSpatialReference& file);

// A north-up Float32 MEM dataset in a CRS over band planes of `values`, no-data NaN.
GdalDataset mem_over(float* values, int width, int height, int bands, const double gt[6], const OGRSpatialReference* srs);

// The pixel window [x0, x1) x [y0, y1) of a source that the destination window reaches,
// `margin` source pixels wider on each side (the resampling kernel), clipped to the
// source; empty when the source does not reach the window.
struct PixelWindow {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  bool empty() const { return x1 <= x0 || y1 <= y0; }
};
PixelWindow source_window(GDALDataset& src, const GridWindow& window, int margin);
// The same for windows of one zone (the rows of a tile), with one transformation.
std::vector<PixelWindow> source_windows(GDALDataset& src, const std::vector<GridWindow>& windows, int margin);

// Reads bands of one grid over a window as Float32 (at out_w x out_h: decimated when
// smaller), no-data as NaN, and sets the pixels a mask does not keep to NaN.
std::vector<float> read_masked(GDALDataset& src, const std::vector<BandSource>& sources, const PixelWindow& w, int out_w,
                               int out_h, GDALDataset* mask, const MaskSpec* spec, const std::string& what);

}  // namespace eo::reading
