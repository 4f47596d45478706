#pragma once
// Pictures of the results, drawn here (no plotting library is packaged for C++ on
// Debian): an RGB canvas with lines, boxes and a small bitmap font, written as PNG, and
// rasters per chip written as GeoTIFF in the zone's CRS, both through GDAL.

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/core/grid.hpp"

namespace eo {

using Rgb = std::array<std::uint8_t, 3>;

class Canvas {
 public:
  Canvas(int width, int height, Rgb background = {255, 255, 255});
  int width() const { return w_; }
  int height() const { return h_; }
  void set(int x, int y, Rgb c);
  Rgb at(int x, int y) const;
  void fill(int x0, int y0, int x1, int y1, Rgb c);  // inclusive
  // `dash` > 0: on and off in runs of that many pixels.
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 1, int dash = 0);
  // Upper-case letters, digits and . - : / ( ) % = ², `scale` pixels per font pixel.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 2);
  static int text_width(const std::string& s, int scale = 2) { return static_cast<int>(s.size()) * 4 * scale; }
  void save_png(const std::filesystem::path& file) const;

 private:
  int w_, h_;
  std::vector<std::uint8_t> px_;  // RGB, row-major
};

// A colour ramp (dark blue - green - yellow) for values in [0, 1].
Rgb ramp(double t);

// A raster of the chips of a zone: one pixel per chip over [row0, row1] x [col0, col1].
struct ChipRaster {
  Zone zone;
  int row0 = 0, col0 = 0, rows = 0, cols = 0;
  int bands = 1;
  std::vector<float> values;  // [band][row][col], NaN = none
  ChipRaster(Zone z, int r0, int c0, int nrows, int ncols, int nbands);
  float& at(int band, const ChipId& c);
  // GeoTIFF in the zone's EPSG, 4480 m pixels on the chip grid, NaN no-data.
  void save_geotiff(const std::filesystem::path& file, const std::vector<std::string>& band_names) const;
};

}  // namespace eo
