#include "stages/downstream/picture.hpp"

#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <stdexcept>

namespace eo {

namespace {

// A 3 x 5 font: five rows of three, '#' lit.
const std::map<char, const char*>& font() {
  static const std::map<char, const char*> f = {
      {'0', "####.##.##.####"}, {'1', ".#.##..#..#.###"}, {'2', "###..#####..###"}, {'3', "###..#.##..####"},
      {'4', "#.##.####..#..#"}, {'5', "####..###..####"}, {'6', "####..####.####"}, {'7', "###..#..#.#..#."},
      {'8', "####.#####.####"}, {'9', "####.####..####"}, {'A', ".#.#.#####.##.#"}, {'B', "##.#.###.#.###."},
      {'C', ".###..#..#...##"}, {'D', "##.#.##.##.###."}, {'E', "####..##.#..###"}, {'F', "####..##.#..#.."},
      {'G', ".###..#.##.#.##"}, {'H', "#.##.#####.##.#"}, {'I', "###.#..#..#.###"}, {'J', "..#..#..##.#.#."},
      {'K', "#.##.###.#.##.#"}, {'L', "#..#..#..#..###"}, {'M', "#.########.##.#"}, {'N', "##.#.##.##.##.#"},
      {'O', ".#.#.##.##.#.#."}, {'P', "##.#.###.#..#.."}, {'Q', ".#.#.##.###..##"}, {'R', "##.#.###.#.##.#"},
      {'S', ".###...#...###."}, {'T', "###.#..#..#..#."}, {'U', "#.##.##.##.####"}, {'V', "#.##.##.##.#.#."},
      {'W', "#.##.########.#"}, {'X', "#.##.#.#.#.##.#"}, {'Y', "#.##.#.#..#..#."}, {'Z', "###..#.#.#..###"},
      {'.', ".............#."}, {'-', "......###......"}, {':', "....#.....#...."}, {'/', "..#..#.#.#..#.."},
      {'(', ".#.#..#..#...#."}, {')', ".#...#..#..#.#."}, {'%', "#.#..#.#.#..#.#"}, {'=', "...###...###..."},
      {'_', "............###"}, {' ', "..............."}};
  return f;
}

}  // namespace

Canvas::Canvas(int width, int height, Rgb background)
    : w_(width), h_(height), px_(static_cast<std::size_t>(width) * height * 3) {
  for (std::size_t i = 0; i < px_.size(); i += 3) std::copy(background.begin(), background.end(), px_.begin() + i);
}

void Canvas::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
  std::copy(c.begin(), c.end(), px_.begin() + (static_cast<std::size_t>(y) * w_ + x) * 3);
}

Rgb Canvas::at(int x, int y) const {
  const std::size_t i = (static_cast<std::size_t>(y) * w_ + x) * 3;
  return {px_[i], px_[i + 1], px_[i + 2]};
}

void Canvas::fill(int x0, int y0, int x1, int y1, Rgb c) {
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) set(x, y, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, int thickness, int dash) {
  const double length = std::hypot(x1 - x0, y1 - y0);
  const int steps = std::max(1, static_cast<int>(std::ceil(length * 2)));
  for (int i = 0; i <= steps; ++i) {
    const double t = static_cast<double>(i) / steps;
    if (dash > 0 && static_cast<int>(t * length / dash) % 2 == 1) continue;
    const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0))), y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
    fill(x - thickness / 2, y - thickness / 2, x + (thickness - 1) / 2, y + (thickness - 1) / 2, c);
  }
}

void Canvas::text(int x, int y, const std::string& s, Rgb c, int scale) {
  for (std::size_t k = 0; k < s.size(); ++k) {
    const auto it = font().find(static_cast<char>(std::toupper(static_cast<unsigned char>(s[k]))));
    if (it == font().end()) continue;
    const std::string glyph = it->second;
    for (int row = 0; row < 5; ++row)
      for (int col = 0; col < 3; ++col)
        if (glyph[static_cast<std::size_t>(row * 3 + col)] == '#')
          fill(x + static_cast<int>(k) * 4 * scale + col * scale, y + row * scale,
               x + static_cast<int>(k) * 4 * scale + col * scale + scale - 1, y + row * scale + scale - 1, c);
  }
}

void Canvas::save_png(const std::filesystem::path& file) const {
  GDALAllRegister();
  std::filesystem::create_directories(file.parent_path());
  GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  GDALDriver* png = GetGDALDriverManager()->GetDriverByName("PNG");
  if (!mem || !png) throw std::runtime_error("GDAL has no MEM or PNG driver");
  GDALDataset* ds = mem->Create("", w_, h_, 3, GDT_Byte, nullptr);
  for (int b = 0; b < 3; ++b)
    if (ds->GetRasterBand(b + 1)->RasterIO(GF_Write, 0, 0, w_, h_, const_cast<std::uint8_t*>(px_.data()) + b, w_, h_,
                                           GDT_Byte, 3, static_cast<GSpacing>(w_) * 3) != CE_None)
      throw std::runtime_error("cannot fill the picture");
  GDALDataset* out = png->CreateCopy(file.c_str(), ds, FALSE, nullptr, nullptr, nullptr);
  GDALClose(ds);
  if (!out) throw std::runtime_error(fmt::format("cannot write {}: {}", file.string(), CPLGetLastErrorMsg()));
  GDALClose(out);
  std::filesystem::remove(file.string() + ".aux.xml");  // GDAL's side file: not part of a picture
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
  if (c.zone != zone || c.row < row0 || c.col < col0 || c.row >= row0 + rows || c.col >= col0 + cols)
    throw std::out_of_range(fmt::format("chip {} is outside the raster", c.str()));
  return values[(static_cast<std::size_t>(band) * rows + (c.row - row0)) * cols + (c.col - col0)];
}

void ChipRaster::save_geotiff(const std::filesystem::path& file, const std::vector<std::string>& band_names) const {
  GDALAllRegister();
  std::filesystem::create_directories(file.parent_path());
  GDALDriver* gtiff = GetGDALDriverManager()->GetDriverByName("GTiff");
  char** options = CSLSetNameValue(nullptr, "COMPRESS", "DEFLATE");
  GDALDataset* ds = gtiff->Create(file.c_str(), cols, rows, bands, GDT_Float32, options);
  CSLDestroy(options);
  if (!ds) throw std::runtime_error(fmt::format("cannot create {}: {}", file.string(), CPLGetLastErrorMsg()));
  const ChipId first{zone, row0, col0};
  const Box b = first.bounds();
  double gt[6] = {b.e0, kChipSizeM, 0, b.n1, 0, -kChipSizeM};
  ds->SetGeoTransform(gt);
  OGRSpatialReference srs;
  srs.importFromEPSG(zone.epsg());
  ds->SetSpatialRef(&srs);
  for (int k = 0; k < bands; ++k) {
    GDALRasterBand* band = ds->GetRasterBand(k + 1);
    band->SetNoDataValue(std::nan(""));
    if (static_cast<std::size_t>(k) < band_names.size()) band->SetDescription(band_names[static_cast<std::size_t>(k)].c_str());
    if (band->RasterIO(GF_Write, 0, 0, cols, rows, const_cast<float*>(values.data()) + static_cast<std::size_t>(k) * rows * cols,
                       cols, rows, GDT_Float32, 0, 0) != CE_None)
      throw std::runtime_error(fmt::format("cannot write {}", file.string()));
  }
  GDALClose(ds);
}

}  // namespace eo
