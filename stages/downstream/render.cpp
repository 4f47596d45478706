#include "stages/downstream/render.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <optional>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "pipeline/core/config.hpp"
#include "pipeline/core/files.hpp"

namespace eo {

namespace fs = std::filesystem;

namespace {

// Per component, the 2nd and 98th percentiles: a stretch that a few outliers do not wash out.
std::vector<std::pair<double, double>> stretch(const std::vector<std::vector<double>>& points, std::size_t k) {
  std::vector<std::pair<double, double>> out;
  for (std::size_t c = 0; c < k; ++c) {
    std::vector<double> v;
    for (const auto& p : points) v.push_back(p[c]);
    std::sort(v.begin(), v.end());
    const double lo = v[v.size() * 2 / 100], hi = v[std::min(v.size() - 1, v.size() * 98 / 100)];
    out.emplace_back(lo, hi > lo ? hi : lo + 1);
  }
  return out;
}

bool inside(double v, std::pair<double, double> range) { return v >= range.first && v <= range.second; }

double scaled(double v, std::pair<double, double> range) {
  return std::clamp((v - range.first) / (range.second - range.first), 0.0, 1.0);
}

}  // namespace

PcaColours pca_colours(const Rows& rows) {
  if (rows.size() < 3) throw std::invalid_argument(fmt::format("pca_colours: {} rows, 3 at least", rows.size()));
  Rows fit_rows;
  const std::size_t step = std::max<std::size_t>(1, rows.size() / 20000);
  for (std::size_t i = 0; i < rows.size(); i += step) fit_rows.push_back(rows[i]);
  PcaColours out{fit_pca(fit_rows, 3), {}, {}, {}, {}};
  for (const auto& r : rows) out.points.push_back(out.pca.project(r));
  out.range = stretch(out.points, 3);
  for (const auto& q : out.points) {
    Rgb c;
    for (std::size_t k = 0; k < 3; ++k) c[k] = static_cast<std::uint8_t>(std::round(255 * scaled(q[k], out.range[k])));
    out.colours.push_back(c);
  }
  // Each component's share of the embeddings' variance, for a legend.
  double total = 0;
  for (std::size_t d = 0; d < fit_rows[0].size(); ++d) {
    double sum = 0, sum2 = 0;
    for (const auto& r : fit_rows) sum += r[d], sum2 += static_cast<double>(r[d]) * r[d];
    const double mean = sum / static_cast<double>(fit_rows.size());
    total += std::max(0.0, sum2 / static_cast<double>(fit_rows.size()) - mean * mean);
  }
  for (std::size_t k = 0; k < 3; ++k) out.share[k] = total > 0 ? 100 * out.pca.variance[k] / total : 0.0;
  return out;
}

nlohmann::json render_embeddings(const std::vector<ChipSample>& all, const std::string& array, const fs::path& cube_path,
                                 const fs::path& dir) {
  std::vector<const ChipSample*> samples;
  Rows rows;
  for (const ChipSample& s : all) {
    const auto& f = s.features.at(array);
    if (std::isnan(f[0])) continue;  // this chip has no such embedding
    samples.push_back(&s);
    rows.push_back(f);
  }
  if (rows.size() < 3)
    throw StageConfigError("render", fmt::format("{}: {} chips with {} embeddings: too few to draw", cube_path.string(), rows.size(), array));
  const PcaColours pc = pca_colours(rows);
  const auto& points = pc.points;
  const auto& range = pc.range;

  std::vector<ChipId> drawn;
  for (const ChipSample* s : samples) drawn.push_back(s->chip);
  auto rasters = zone_rasters(drawn, 3);
  for (std::size_t i = 0; i < samples.size(); ++i)
    for (int c = 0; c < 3; ++c)
      rasters.at(samples[i]->chip.zone).at(c, samples[i]->chip) =
          pc.colours[i][static_cast<std::size_t>(c)];
  nlohmann::json written = nlohmann::json::array(), maps = nlohmann::json::array();
  for (const auto& [zone, raster] : rasters) {
    const fs::path tif = dir / fmt::format("pca_{}_{}.tif", array, zone.name());
    raster.save_rgb_geotiff(tif);
    const fs::path file = dir / fmt::format("pca_{}_{}.png", array, zone.name());
    const std::size_t plane = static_cast<std::size_t>(raster.rows) * raster.cols;
    const ChipMapPlacement at = save_chip_figure(
        file, fmt::format("{} embeddings, zone {}: principal components 1-3 as RGB", array, zone.name()),
        raster,
        [&](int r, int c) -> std::optional<Rgb> {
          const std::size_t i = static_cast<std::size_t>(r) * raster.cols + c;
          if (std::isnan(raster.values[i])) return std::nullopt;
          return Rgb{static_cast<std::uint8_t>(raster.values[i]), static_cast<std::uint8_t>(raster.values[plane + i]),
                     static_cast<std::uint8_t>(raster.values[2 * plane + i])};
        },
        [&](Painter& p, double left, double top) {
          const Rgb key[3] = {{220, 40, 40}, {40, 170, 60}, {50, 80, 220}};
          const char* names[3] = {"red", "green", "blue"};
          double x = left;
          for (std::size_t k = 0; k < 3; ++k) {
            p.fill(x, top, 12, 12, key[k]);
            x += 20 + p.text(x + 16, top, fmt::format("{}: PC{} ({:.0f}% of the variance)", names[k], k + 1, pc.share[k]), 10);
          }
          p.text(left, top + 18, "each from its 2nd (dark) to its 98th percentile (bright); grey: no chip", 10);
        },
        {}, false);
    written.push_back(tif.string());
    written.push_back(file.string());
    maps.push_back({{"png", file.string()}, {"tif", tif.string()}, {"x", at.x}, {"y", at.y}, {"chip_px", at.chip_px}});
  }

  // The scatter: PC1 across, PC2 up (ticked at their values), each chip coloured by its
  // tree cover, the colour bar beside the plot.
  const std::size_t colour_by = 4;  // tree_cover_pct
  const int size = 640, left = 64, right = 40, top = 44, bottom = 110;
  const double plot = size - left - right;
  auto sx = [&](double v) { return left + scaled(v, range[0]) * plot; };
  auto sy = [&](double v) { return top + (1 - scaled(v, range[1])) * (size - top - bottom); };
  std::size_t drawn_points = 0;
  for (const auto& q : points) drawn_points += inside(q[0], range[0]) && inside(q[1], range[1]);
  const fs::path scatter_file = dir / fmt::format("scatter_{}_tree_cover.png", array);
  save_figure(scatter_file, size, size, [&](Painter& p) {
    p.text(left, 12, fmt::format("{} embeddings: first two principal components", array), 14, Painter::Anchor::left, true);
    const Rgb grid = {228, 228, 228}, axis = {60, 60, 60};
    for (double v : nice_ticks(range[0].first, range[0].second, 6)) {
      p.line(sx(v), top, sx(v), size - bottom, grid);
      p.text(sx(v), size - bottom + 6, fmt::format("{:g}", v), 10, Painter::Anchor::centre);
    }
    for (double v : nice_ticks(range[1].first, range[1].second, 6)) {
      p.line(left, sy(v), left + plot, sy(v), grid);
      p.text(left - 6, sy(v) - 7, fmt::format("{:g}", v), 10, Painter::Anchor::right);
    }
    p.line(left, size - bottom, left + plot, size - bottom, axis);
    p.line(left, top, left, size - bottom, axis);
    p.text(left + plot / 2, size - bottom + 22, "PC1", 11, Painter::Anchor::centre);
    p.vertical_text(16, (top + size - bottom) / 2.0, "PC2", 11);
    // Chips beyond the stretch are not drawn: clamped, they would pile up on the frame.
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (!inside(points[i][0], range[0]) || !inside(points[i][1], range[1])) continue;
      const float v = samples[i]->targets[colour_by];
      p.dot(sx(points[i][0]), sy(points[i][1]), 2.5, std::isnan(v) ? Rgb{160, 160, 160} : ramp(v / 100.0));
    }
    p.text(left, 30, fmt::format("{} of {} chips; {} beyond the 2nd-98th percentiles not drawn", drawn_points,
                                 samples.size(), samples.size() - drawn_points), 10);
    p.colour_bar(left, size - 50, 240, 12, 0, 100, "tree cover on the ground, %");
  });
  written.push_back(scatter_file.string());
  const nlohmann::json summary = {{"cube", cube_path.string()}, {"array", array}, {"chips", rows.size()},
                                  {"explained_variance", pc.pca.variance}, {"files", written}, {"maps", maps},
                                  {"scatter_drawn", drawn_points}};
  write_atomically(dir / "summary.json", summary.dump(2) + "\n");
  return summary;
}

}  // namespace eo
