#include "stages/serve/tiles.hpp"

#include <cairo.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <mutex>
#include <ranges>
#include <sstream>
#include <utility>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/utm.hpp"

namespace eo {

namespace fs = std::filesystem;

namespace {

constexpr int kTilePx = 256;

// Rows of premultiplied ARGB (cairo's layout) as PNG.
std::string png_of(std::vector<std::uint32_t>& argb, int width = kTilePx, int height = kTilePx) {
  cairo_surface_t* surface = cairo_image_surface_create_for_data(reinterpret_cast<unsigned char*>(argb.data()),
                                                                 CAIRO_FORMAT_ARGB32, width, height, width * 4);
  std::string out;
  const cairo_status_t status = cairo_surface_write_to_png_stream(
      surface,
      [](void* closure, const unsigned char* data, unsigned int length) {
        static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
        return CAIRO_STATUS_SUCCESS;
      },
      &out);
  cairo_surface_destroy(surface);
  if (status != CAIRO_STATUS_SUCCESS) throw std::runtime_error(fmt::format("PNG of a tile: {}", cairo_status_to_string(status)));
  return out;
}

std::uint32_t premultiplied(Rgba c) {
  const auto p = [&](std::uint8_t v) { return static_cast<std::uint32_t>((v * c.a + 127) / 255); };
  return static_cast<std::uint32_t>(c.a) << 24 | p(c.r) << 16 | p(c.g) << 8 | p(c.b);
}

// The zone whose band holds a point: its number by longitude, its hemisphere by latitude.
Zone home_zone(LonLat p) { return Zone{zone_of_longitude(p.lon), p.lat < 0}; }

}  // namespace

std::string encode_png(const std::vector<Rgba>& pixels, int width, int height) {
  if (pixels.size() != static_cast<std::size_t>(width) * static_cast<std::size_t>(height))
    throw std::invalid_argument("encode_png: a pixel per column and row");
  std::vector<std::uint32_t> argb;
  for (const Rgba& p : pixels) argb.push_back(premultiplied(p));
  return png_of(argb, width, height);
}

TileXYZ TileXYZ::checked(int z, int x, int y) {
  if (z < 0 || z > 22) throw ConfigError(fmt::format("tile {}/{}/{}: zoom {} is not 0 to 22", z, x, y, z));
  const long n = 1L << z;
  if (x < 0 || y < 0 || x >= n || y >= n)
    throw ConfigError(fmt::format("tile {}/{}/{}: at zoom {}, x and y run from 0 to {}", z, x, y, z, n - 1));
  return {z, x, y};
}

LonLat TileXYZ::lonlat(double px, double py) const {
  const double n = std::ldexp(1.0, z);
  const double lon = (x + px / kTilePx) / n * 360.0 - 180.0;
  const double lat = std::atan(std::sinh(M_PI * (1 - 2 * (y + py / kTilePx) / n))) * 180.0 / M_PI;
  return {lon, lat};
}

std::string TileXYZ::str() const { return fmt::format("{}/{}/{}", z, x, y); }

ChipLayer::ChipLayer(const std::vector<ChipId>& chips, const std::vector<Rgba>& colours) {
  if (chips.size() != colours.size()) throw std::invalid_argument("ChipLayer: a colour per chip");
  std::map<Zone, std::array<int, 4>> extent;  // row0, col0, row1, col1
  for (const ChipId& c : chips) {
    auto [it, fresh] = extent.try_emplace(c.zone, std::array<int, 4>{c.row, c.col, c.row, c.col});
    auto& e = it->second;
    e = {std::min(e[0], c.row), std::min(e[1], c.col), std::max(e[2], c.row), std::max(e[3], c.col)};
  }
  for (const auto& [zone, e] : extent) {
    ZoneGrid g{e[0], e[1], e[2] - e[0] + 1, e[3] - e[1] + 1, {}, {}};
    g.colours.resize(static_cast<std::size_t>(g.rows) * static_cast<std::size_t>(g.cols));
    const ChipId first{zone, e[0], e[1]}, last{zone, e[2], e[3]};
    const Box a = first.bounds(), b = last.bounds();
    g.bounds = lonlat_bounds(zone, {std::min(a.e0, b.e0), std::min(a.n0, b.n0), std::max(a.e1, b.e1), std::max(a.n1, b.n1)})
                   .grown(0.05);
    zones_.emplace(zone, std::move(g));
  }
  for (std::size_t i = 0; i < chips.size(); ++i) {
    ZoneGrid& g = zones_.at(chips[i].zone);
    g.colours[static_cast<std::size_t>(chips[i].row - g.row0) * static_cast<std::size_t>(g.cols) +
              static_cast<std::size_t>(chips[i].col - g.col0)] = colours[i];
  }
}

std::optional<Rgba> ChipLayer::at(LonLat p) const {
  std::optional<Rgba> found;
  look_in_zones(std::views::keys(zones_), p, [&](Zone zone) {
    const ZoneGrid& g = zones_.at(zone);
    if (!g.bounds.contains(p)) return false;
    const ChipId c = chip_at(zone, utm_forward(zone.number, zone.south, p));
    const int r = c.row - g.row0, k = c.col - g.col0;
    if (r < 0 || k < 0 || r >= g.rows || k >= g.cols) return false;
    const Rgba colour = g.colours[static_cast<std::size_t>(r) * static_cast<std::size_t>(g.cols) + static_cast<std::size_t>(k)];
    if (colour.a == 0) return false;
    found = colour;
    return true;
  });
  return found;
}

std::string render_tile(const TileXYZ& tile, const std::function<std::optional<Rgba>(LonLat)>& at) {
  std::vector<std::uint32_t> argb(kTilePx * kTilePx, 0);
  for (int j = 0; j < kTilePx; ++j)
    for (int i = 0; i < kTilePx; ++i)
      if (const auto c = at(tile.lonlat(i + 0.5, j + 0.5))) argb[static_cast<std::size_t>(j * kTilePx + i)] = premultiplied(*c);
  return png_of(argb);
}

std::string render_tile(const ChipLayer& layer, const TileXYZ& tile) {
  return render_tile(tile, [&](LonLat p) { return layer.at(p); });
}

std::string render_grid_tile(const TileXYZ& tile) {
  const bool chips = tile.z >= 10;
  // Per pixel (and one beyond, right and down): its home zone and, from zoom 9, its chip.
  constexpr int n = kTilePx + 1;
  std::vector<std::int64_t> zone(n * n), chip(n * n);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i) {
      const LonLat p = tile.lonlat(i + 0.5, j + 0.5);
      const Zone z = home_zone(p);
      zone[static_cast<std::size_t>(j * n + i)] = z.number * 2 + z.south;
      if (chips) {
        const ChipId c = chip_at(z, utm_forward(z.number, z.south, p));
        chip[static_cast<std::size_t>(j * n + i)] = (static_cast<std::int64_t>(c.row) << 24) ^ c.col;
      }
    }
  std::vector<std::uint32_t> argb(kTilePx * kTilePx, 0);
  const std::uint32_t border = premultiplied({20, 20, 20, 230}), grid = premultiplied({90, 90, 90, 150});
  for (int j = 0; j < kTilePx; ++j)
    for (int i = 0; i < kTilePx; ++i) {
      const std::size_t here = static_cast<std::size_t>(j * n + i), right = here + 1, below = here + n;
      auto& px = argb[static_cast<std::size_t>(j * kTilePx + i)];
      if (zone[here] != zone[right] || zone[here] != zone[below]) px = border;
      else if (chips && (chip[here] != chip[right] || chip[here] != chip[below])) px = grid;
    }
  return png_of(argb);
}

std::string TileCache::get(const std::string& layer, const TileXYZ& tile, const std::function<std::string()>& render) const {
  const fs::path file = dir_ / layer / std::to_string(tile.z) / std::to_string(tile.x) / (std::to_string(tile.y) + ".png");
  if (std::ifstream in{file, std::ios::binary}) {
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
  }
  std::string png = render();
  // Temporaries are named per process: two threads publishing one tile take turns.
  static std::mutex publishing;
  const std::lock_guard lock(publishing);
  try {
    if (!fs::exists(file)) write_atomically(file, png);
  } catch (const std::exception& e) {  // a cache it cannot write (a read-only output): rendered each time
    static bool said = false;
    if (!std::exchange(said, true)) spdlog::warn("serve: tiles are not kept: {}", e.what());
  }
  return png;
}

}  // namespace eo
