#include "stages/downstream/picture.hpp"

#include <cairo-svg.h>
#include <cairo.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>
#include <pango/pangocairo.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/utm.hpp"
#include "stages/ingest/gdal_util.hpp"

namespace eo {

namespace {

namespace fs = std::filesystem;

void set_colour(cairo_t* cr, Rgb c) { cairo_set_source_rgb(cr, c[0] / 255.0, c[1] / 255.0, c[2] / 255.0); }

PangoLayout* layout(cairo_t* cr, const std::string& s, double size, bool bold) {
  PangoLayout* l = pango_cairo_create_layout(cr);
  PangoFontDescription* font = pango_font_description_from_string(bold ? "DejaVu Sans Bold" : "DejaVu Sans");
  pango_font_description_set_absolute_size(font, size * PANGO_SCALE);
  pango_layout_set_font_description(l, font);
  pango_font_description_free(font);
  pango_layout_set_text(l, s.c_str(), -1);
  return l;
}

// A tick's label with as many decimals as the step between ticks needs.
std::string tick_label(double v, double step) {
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return fmt::format("{:.{}f}", std::abs(v) < step / 1e6 ? 0.0 : v, decimals);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, count), mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 5.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push_back(v);
  return out;
}

void Painter::fill(double x, double y, double w, double h, Rgb c) {
  cairo_save(cr_);
  cairo_set_antialias(cr_, CAIRO_ANTIALIAS_NONE);
  set_colour(cr_, c);
  cairo_rectangle(cr_, std::round(x), std::round(y), std::round(x + w) - std::round(x), std::round(y + h) - std::round(y));
  cairo_fill(cr_);
  cairo_restore(cr_);
}

void Painter::frame(double x, double y, double w, double h, Rgb c, double width) {
  set_colour(cr_, c);
  cairo_set_line_width(cr_, width);
  cairo_rectangle(cr_, x + width / 2, y + width / 2, w - width, h - width);
  cairo_stroke(cr_);
}

void Painter::line(double x0, double y0, double x1, double y1, Rgb c, double width, double dash) {
  polyline({{x0, y0}, {x1, y1}}, c, width, dash);
}

void Painter::polyline(const std::vector<std::array<double, 2>>& points, Rgb c, double width, double dash) {
  if (points.size() < 2) return;
  set_colour(cr_, c);
  cairo_set_line_width(cr_, width);
  cairo_set_line_join(cr_, CAIRO_LINE_JOIN_ROUND);
  if (dash > 0) cairo_set_dash(cr_, &dash, 1, 0);
  // Lines of odd width on half pixels stay crisp.
  const double half = static_cast<int>(width) % 2 == 1 ? 0.5 : 0;
  cairo_move_to(cr_, points[0][0] + half, points[0][1] + half);
  for (std::size_t i = 1; i < points.size(); ++i) cairo_line_to(cr_, points[i][0] + half, points[i][1] + half);
  cairo_stroke(cr_);
  cairo_set_dash(cr_, nullptr, 0, 0);
}

void Painter::dot(double x, double y, double radius, Rgb c) {
  set_colour(cr_, c);
  cairo_arc(cr_, x, y, radius, 0, 2 * M_PI);
  cairo_fill(cr_);
}

double Painter::text(double x, double y, const std::string& s, double size, Anchor a, bool bold) {
  PangoLayout* l = layout(cr_, s, size, bold);
  int w = 0, h = 0;
  pango_layout_get_pixel_size(l, &w, &h);
  const double left = a == Anchor::left ? x : a == Anchor::centre ? x - w / 2.0 : x - w;
  cairo_set_source_rgb(cr_, 0.1, 0.1, 0.1);
  cairo_move_to(cr_, left, y);
  pango_cairo_show_layout(cr_, l);
  g_object_unref(l);
  return w;
}

void Painter::vertical_text(double x, double y, const std::string& s, double size) {
  PangoLayout* l = layout(cr_, s, size, false);
  int w = 0, h = 0;
  pango_layout_get_pixel_size(l, &w, &h);
  cairo_save(cr_);
  cairo_translate(cr_, x, y);
  cairo_rotate(cr_, -M_PI / 2);
  cairo_set_source_rgb(cr_, 0.1, 0.1, 0.1);
  cairo_move_to(cr_, -w / 2.0, -h / 2.0);
  pango_cairo_show_layout(cr_, l);
  cairo_restore(cr_);
  g_object_unref(l);
}

void Painter::colour_bar(double x, double y, double w, double h, double lo, double hi, const std::string& title) {
  for (int i = 0; i < static_cast<int>(w); ++i) fill(x + i, y, 1, h, ramp(i / std::max(1.0, w - 1)));
  frame(x, y, w, h, {90, 90, 90});
  const std::vector<double> ticks = nice_ticks(lo, hi, 5);
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : std::max(std::abs(hi), 1e-9);
  for (double t : ticks) {
    const double at = hi > lo ? x + (t - lo) / (hi - lo) * (w - 1) : x + w / 2;
    line(at, y + h, at, y + h + 4, {60, 60, 60});
    text(at, y + h + 5, tick_label(t, step), 10, Anchor::centre);
  }
  text(x, y + h + 20, title, 11);
}

void Painter::scale_bar(double x, double y, double metres_per_px, double max_px) {
  double km = 1;
  for (double k : {1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0})
    if (k * 1000 / metres_per_px <= max_px) km = k;
  const double len = km * 1000 / metres_per_px;
  const Rgb ink = {30, 30, 30};
  fill(x, y, len / 2, 5, ink);
  fill(x + len / 2, y, len / 2, 5, {255, 255, 255});
  frame(x, y, len, 5, ink);
  text(x, y + 8, "0", 10, Anchor::centre);
  text(x + len, y + 8, fmt::format("{:g} km", km), 10, Anchor::centre);
}

void save_figure(const fs::path& png, int width, int height, const std::function<void(Painter&)>& draw, bool svg) {
  const auto paint = [&](cairo_surface_t* surface) {
    cairo_t* cr = cairo_create(surface);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    Painter p(cr);
    draw(p);
    cairo_destroy(cr);
  };
  publish_file(png, [&](const fs::path& tmp) {
    cairo_surface_t* image = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    paint(image);
    const cairo_status_t status = cairo_surface_write_to_png(image, tmp.c_str());
    cairo_surface_destroy(image);
    if (status != CAIRO_STATUS_SUCCESS)
      throw StageError("picture", fmt::format("cannot write {}: {}", png.string(), cairo_status_to_string(status)));
  });
  if (!svg) return;
  fs::path file = png;
  file.replace_extension(".svg");
  publish_file(file, [&](const fs::path& tmp) {
    cairo_surface_t* vector = cairo_svg_surface_create(tmp.c_str(), width, height);
    paint(vector);
    cairo_surface_finish(vector);
    const cairo_status_t status = cairo_surface_status(vector);
    cairo_surface_destroy(vector);
    if (status != CAIRO_STATUS_SUCCESS)
      throw StageError("picture", fmt::format("cannot write {}: {}", file.string(), cairo_status_to_string(status)));
  });
}

Rgb ramp(double t) {
  // Stops of a viridis-like ramp.
  static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(std::isnan(t) ? 0.0 : t, 0.0, 1.0) * 4;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  Rgb c;
  for (int k = 0; k < 3; ++k) c[static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(std::lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k])));
  return c;
}

ChipRaster::ChipRaster(Zone z, int r0, int c0, int nrows, int ncols, int nbands)
    : zone(z), row0(r0), col0(c0), rows(nrows), cols(ncols), bands(nbands),
      values(static_cast<std::size_t>(nbands) * nrows * ncols, std::nanf("")) {}

float& ChipRaster::at(int band, const ChipId& c) {
  if (!contains(c)) throw std::out_of_range(fmt::format("chip {} is outside the raster", c.str()));
  return values[(static_cast<std::size_t>(band) * rows + (c.row - row0)) * cols + (c.col - col0)];
}

namespace {

// A GeoTIFF on the raster's chip grid in the zone's EPSG, being written at `tmp`.
GdalDataset create_on_chip_grid(const ChipRaster& r, const fs::path& file, const fs::path& tmp, int bands, GDALDataType type,
                                char** options) {
  GDALAllRegister();
  GDALDriver* gtiff = GetGDALDriverManager()->GetDriverByName("GTiff");
  GdalDataset ds(gtiff->Create(tmp.c_str(), r.cols, r.rows, bands, type, options));
  CSLDestroy(options);
  if (!ds) throw StageError("picture", fmt::format("cannot create {}: {}", file.string(), CPLGetLastErrorMsg()));
  const Box b = ChipId{r.zone, r.row0, r.col0}.bounds();
  double gt[6] = {b.e0, kChipSizeM, 0, b.n1, 0, -kChipSizeM};
  ds->SetGeoTransform(gt);
  OGRSpatialReference srs;
  srs.importFromEPSG(r.zone.epsg());
  ds->SetSpatialRef(&srs);
  return ds;
}

}  // namespace

void ChipRaster::save_geotiff(const std::filesystem::path& file, const std::vector<std::string>& band_names) const {
  publish_file(file, [&](const fs::path& tmp) {
    GdalDataset ds = create_on_chip_grid(*this, file, tmp, bands, GDT_Float32, CSLSetNameValue(nullptr, "COMPRESS", "DEFLATE"));
    for (int k = 0; k < bands; ++k) {
      GDALRasterBand* band = ds->GetRasterBand(k + 1);
      band->SetNoDataValue(std::nan(""));
      if (static_cast<std::size_t>(k) < band_names.size()) band->SetDescription(band_names[static_cast<std::size_t>(k)].c_str());
      if (band->RasterIO(GF_Write, 0, 0, cols, rows, const_cast<float*>(values.data()) + static_cast<std::size_t>(k) * rows * cols,
                         cols, rows, GDT_Float32, 0, 0) != CE_None)
        throw StageError("picture", fmt::format("cannot write {}", file.string()));
    }
    ds.reset();  // closed, and so written, before it is published
  });
}

void ChipRaster::save_rgb_geotiff(const std::filesystem::path& file) const {
  const std::size_t plane = static_cast<std::size_t>(rows) * cols;
  std::vector<std::uint8_t> bytes(4 * plane, 0);
  for (std::size_t i = 0; i < plane; ++i) {
    if (std::isnan(values[i])) continue;
    for (std::size_t k = 0; k < 3; ++k) bytes[k * plane + i] = static_cast<std::uint8_t>(std::clamp(std::lround(values[k * plane + i]), 0L, 255L));
    bytes[3 * plane + i] = 255;
  }
  publish_file(file, [&](const fs::path& tmp) {
    char** options = CSLSetNameValue(nullptr, "COMPRESS", "DEFLATE");
    options = CSLSetNameValue(options, "PHOTOMETRIC", "RGB");
    options = CSLSetNameValue(options, "ALPHA", "YES");
    GdalDataset ds = create_on_chip_grid(*this, file, tmp, 4, GDT_Byte, options);
    if (ds->RasterIO(GF_Write, 0, 0, cols, rows, bytes.data(), cols, rows, GDT_Byte, 4, nullptr, 0, 0, 0, nullptr) != CE_None)
      throw StageError("picture", fmt::format("cannot write {}", file.string()));
    ds.reset();
  });
}

namespace {

std::string degrees(LonLat p) {
  return fmt::format("{:.3f}°{}, {:.3f}°{}", std::abs(p.lat), p.lat < 0 ? "S" : "N", std::abs(p.lon), p.lon < 0 ? "W" : "E");
}

}  // namespace

ChipMapPlacement save_chip_figure(const fs::path& png, const std::string& title, const ChipRaster& r,
                                  const std::function<std::optional<Rgb>(int row, int col)>& colour,
                                  const std::function<void(Painter&, double left, double top)>& legend,
                                  const std::vector<Outline>& outlines, bool svg) {
  ChipMapPlacement at;
  at.chip_px = std::max(2, 560 / std::max(r.rows, r.cols));
  at.x = 16, at.y = 58;
  const int map_w = r.cols * at.chip_px, map_h = r.rows * at.chip_px;
  const int width = std::max(map_w, 560) + 2 * at.x, height = at.y + map_h + 112;
  // The map's corners on the ground: its north-west and south-east chips' outer corners.
  const Box nw = ChipId{r.zone, r.row0, r.col0}.bounds(), se = ChipId{r.zone, r.row0 + r.rows - 1, r.col0 + r.cols - 1}.bounds();
  const LonLat top_left = utm_inverse(r.zone.number, r.zone.south, {nw.e0, nw.n1});
  const LonLat bottom_right = utm_inverse(r.zone.number, r.zone.south, {se.e1, se.n0});
  save_figure(png, width, height, [&](Painter& p) {
    p.text(at.x, 12, title, 14, Painter::Anchor::left, true);
    p.text(at.x, at.y - 16, degrees(top_left) + fmt::format("  (UTM zone {}, north up)", r.zone.name()), 10);
    p.fill(at.x, at.y, map_w, map_h, {215, 215, 215});
    for (int y = 0; y < r.rows; ++y)
      for (int x = 0; x < r.cols; ++x)
        if (const auto c = colour(y, x)) p.fill(at.x + x * at.chip_px, at.y + y * at.chip_px, at.chip_px, at.chip_px, *c);
    for (const Outline& o : outlines)
      for (const ChipId& c : o.chips)
        if (r.contains(c))
          p.frame(at.x + (c.col - r.col0) * at.chip_px, at.y + (c.row - r.row0) * at.chip_px, at.chip_px, at.chip_px, o.colour, 2);
    p.frame(at.x, at.y, map_w, map_h, {120, 120, 120});
    p.text(at.x + map_w, at.y + map_h + 4, degrees(bottom_right), 10, Painter::Anchor::right);
    const double below = at.y + map_h + 26;
    legend(p, at.x, below);
    double key = at.x + 270;
    for (const Outline& o : outlines) {  // below the map: the key covers no chip
      p.fill(key, below, 14, 14, {170, 170, 170});
      p.frame(key, below, 14, 14, o.colour, 2);
      key += 32 + p.text(key + 20, below, o.label, 10);
    }
    p.scale_bar(width - at.x - 150, below + 46, kChipSizeM / at.chip_px, 140);
  }, svg);
  return at;
}

void save_chip_map(const fs::path& png, const std::string& title, const ChipRaster& r, int band,
                   const std::string& bar_title, const std::vector<Outline>& outlines) {
  const std::size_t plane = static_cast<std::size_t>(r.rows) * r.cols;
  const float* v = r.values.data() + static_cast<std::size_t>(band) * plane;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (std::size_t i = 0; i < plane; ++i)
    if (!std::isnan(v[i])) lo = std::min(lo, v[i]), hi = std::max(hi, v[i]);
  if (!(hi >= lo)) lo = 0, hi = 1;
  save_chip_figure(
      png, title, r,
      [&](int y, int x) -> std::optional<Rgb> {
        const float value = v[static_cast<std::size_t>(y) * r.cols + x];
        if (std::isnan(value)) return std::nullopt;
        return ramp(hi > lo ? (value - lo) / (hi - lo) : 0.5);
      },
      [&](Painter& p, double left, double top) { p.colour_bar(left, top, 240, 12, lo, hi, bar_title); }, outlines);
}

}  // namespace eo
