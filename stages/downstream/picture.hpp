#pragma once
// Pictures of the results, drawn with cairo (text through pango, in DejaVu Sans) and
// written as PNG and SVG; rasters per chip written as GeoTIFF in the zone's CRS through
// GDAL.

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/core/grid.hpp"

typedef struct _cairo cairo_t;

namespace eo {

using Rgb = std::array<std::uint8_t, 3>;

// A colour ramp (viridis-like: dark blue - green - yellow) for values in [0, 1].
Rgb ramp(double t);

// About `count` round values (1, 2 or 5 times a power of ten) from lo to hi.
std::vector<double> nice_ticks(double lo, double hi, int count);

// What a figure is drawn with: cairo, in pixels from the top left.
class Painter {
 public:
  explicit Painter(cairo_t* cr) : cr_(cr) {}
  enum class Anchor { left, centre, right };
  void fill(double x, double y, double w, double h, Rgb c);  // pixel-aligned, not antialiased
  void frame(double x, double y, double w, double h, Rgb c, double width = 1);
  // `dash` > 0: on and off in runs of that many pixels.
  void line(double x0, double y0, double x1, double y1, Rgb c, double width = 1, double dash = 0);
  void polyline(const std::vector<std::array<double, 2>>& points, Rgb c, double width = 1, double dash = 0);
  void dot(double x, double y, double radius, Rgb c);
  // Text whose top is at y; x is its left, centre or right. Returns its width.
  double text(double x, double y, const std::string& s, double size = 11, Anchor a = Anchor::left, bool bold = false);
  // Text turned a quarter anticlockwise (an axis title), centred on (x, y).
  void vertical_text(double x, double y, const std::string& s, double size = 11);
  // A horizontal colour bar for values lo..hi, ticked at round values, titled below.
  void colour_bar(double x, double y, double w, double h, double lo, double hi, const std::string& title);
  // A scale bar of a round number of km, at most `max_px` long, its left end at (x, y).
  void scale_bar(double x, double y, double metres_per_px, double max_px);

 private:
  cairo_t* cr_;
};

// Draws `draw` on a white page of width x height pixels and writes it as `png` and, with
// `svg`, as the same drawing in the SVG beside it (png's name with .svg).
void save_figure(const std::filesystem::path& png, int width, int height, const std::function<void(Painter&)>& draw,
                 bool svg = true);

// A raster of the chips of a zone: one pixel per chip over [row0, row1] x [col0, col1].
struct ChipRaster {
  Zone zone;
  int row0 = 0, col0 = 0, rows = 0, cols = 0;
  int bands = 1;
  std::vector<float> values;  // [band][row][col], NaN = none
  ChipRaster(Zone z, int r0, int c0, int nrows, int ncols, int nbands);
  bool contains(const ChipId& c) const {
    return c.zone == zone && c.row >= row0 && c.col >= col0 && c.row < row0 + rows && c.col < col0 + cols;
  }
  float& at(int band, const ChipId& c);  // throws std::out_of_range for a chip it does not contain
  // GeoTIFF in the zone's EPSG, 4480 m pixels on the chip grid, NaN no-data.
  void save_geotiff(const std::filesystem::path& file, const std::vector<std::string>& band_names) const;
  // Its first three bands (0-255) as an RGB GeoTIFF of bytes with an alpha band: opaque
  // where a chip has a value, transparent where none.
  void save_rgb_geotiff(const std::filesystem::path& file) const;
};

// Chips to outline on a map, with the legend's word for them.
struct Outline {
  std::vector<ChipId> chips;
  Rgb colour;
  std::string label;
};

// Where a chip map lies in its figure: the top-left pixel of its first chip, and the
// pixels a chip takes on each side.
struct ChipMapPlacement {
  int x = 0, y = 0, chip_px = 1;
};

// A chip raster drawn as a map (PNG and, with `svg`, SVG): the title above; the map's
// north-west corner in degrees and its zone; chips as squares in `colour` (none: grey),
// north up; outlines; its south-east corner in degrees; `legend` drawn below the map at
// (left, top); the outlines' key and a scale bar in km.
ChipMapPlacement save_chip_figure(const std::filesystem::path& png, const std::string& title, const ChipRaster& raster,
                                  const std::function<std::optional<Rgb>(int row, int col)>& colour,
                                  const std::function<void(Painter&, double left, double top)>& legend,
                                  const std::vector<Outline>& outlines = {}, bool svg = true);

// One band of a chip raster as a map (save_chip_figure), with a colour bar of the band's
// range as its legend.
void save_chip_map(const std::filesystem::path& png, const std::string& title, const ChipRaster& raster, int band,
                   const std::string& bar_title, const std::vector<Outline>& outlines = {});

}  // namespace eo
