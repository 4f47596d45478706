#include "stages/downstream/render.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <stdexcept>

#include "pipeline/core/config.hpp"
#include "pipeline/core/files.hpp"
#include "stages/downstream/pca.hpp"
#include "stages/downstream/picture.hpp"

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

double scaled(double v, std::pair<double, double> range) {
  return std::clamp((v - range.first) / (range.second - range.first), 0.0, 1.0);
}

}  // namespace

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
    throw ConfigError(fmt::format("{}: {} chips with {} embeddings: too few to draw", cube_path.string(), rows.size(), array));
  // Fitted on a sample of at most 20,000 chips, evenly spaced along the plan.
  Rows fit_rows;
  const std::size_t step = std::max<std::size_t>(1, rows.size() / 20000);
  for (std::size_t i = 0; i < rows.size(); i += step) fit_rows.push_back(rows[i]);
  const Pca pca = fit_pca(fit_rows, 3);
  std::vector<std::vector<double>> points;
  for (const auto& r : rows) points.push_back(pca.project(r));
  const auto range = stretch(points, 3);

  std::vector<ChipId> drawn;
  for (const ChipSample* s : samples) drawn.push_back(s->chip);
  auto rasters = zone_rasters(drawn, 3);
  for (std::size_t i = 0; i < samples.size(); ++i)
    for (int c = 0; c < 3; ++c)
      rasters.at(samples[i]->chip.zone).at(c, samples[i]->chip) =
          static_cast<float>(255 * scaled(points[i][static_cast<std::size_t>(c)], range[static_cast<std::size_t>(c)]));
  nlohmann::json written = nlohmann::json::array();
  for (const auto& [zone, raster] : rasters) {
    const fs::path tif = dir / fmt::format("pca_{}_{}.tif", array, zone.name());
    raster.save_geotiff(tif, {"PC1", "PC2", "PC3"});
    // The PNG: chips as squares of `scale` pixels, north up, grey where there is none.
    const int scale = std::max(1, 600 / std::max(raster.rows, raster.cols));
    Canvas png(raster.cols * scale, raster.rows * scale, {200, 200, 200});
    for (int r = 0; r < raster.rows; ++r)
      for (int c = 0; c < raster.cols; ++c) {
        const std::size_t at = static_cast<std::size_t>(r) * raster.cols + c, plane = static_cast<std::size_t>(raster.rows) * raster.cols;
        if (std::isnan(raster.values[at])) continue;
        const Rgb rgb = {static_cast<std::uint8_t>(raster.values[at]), static_cast<std::uint8_t>(raster.values[plane + at]),
                         static_cast<std::uint8_t>(raster.values[2 * plane + at])};
        png.fill(c * scale, r * scale, c * scale + scale - 1, r * scale + scale - 1, rgb);
      }
    const fs::path file = dir / fmt::format("pca_{}_{}.png", array, zone.name());
    png.save_png(file);
    written.push_back(tif.string());
    written.push_back(file.string());
  }

  // The scatter: PC1 across, PC2 up, each chip coloured by its tree cover.
  const std::size_t colour_by = 4;  // tree_cover_pct
  const int size = 640, margin = 48;
  Canvas scatter(size, size);
  scatter.text(margin, 14, fmt::format("{} EMBEDDINGS: PC1 / PC2, COLOUR = TREE COVER %", array), {0, 0, 0}, 2);
  scatter.line(margin, size - margin, size - margin, size - margin, {0, 0, 0});
  scatter.line(margin, margin, margin, size - margin, {0, 0, 0});
  scatter.text(size - margin - Canvas::text_width("PC1"), size - margin + 10, "PC1", {0, 0, 0});
  scatter.text(8, margin, "PC2", {0, 0, 0});
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const double x = margin + scaled(points[i][0], range[0]) * (size - 2 * margin);
    const double y = size - margin - scaled(points[i][1], range[1]) * (size - 2 * margin);
    const float v = samples[i]->targets[colour_by];
    const Rgb c = std::isnan(v) ? Rgb{160, 160, 160} : ramp(v / 100.0);
    scatter.fill(static_cast<int>(x) - 2, static_cast<int>(y) - 2, static_cast<int>(x) + 2, static_cast<int>(y) + 2, c);
  }
  for (int i = 0; i <= 10; ++i)  // the colour key
    scatter.fill(size - margin - 110 + i * 10, 40, size - margin - 101 + i * 10, 52, ramp(i / 10.0));
  scatter.text(size - margin - 130, 58, "0", {0, 0, 0});
  scatter.text(size - margin + 4, 58, "100", {0, 0, 0});
  const fs::path scatter_file = dir / fmt::format("scatter_{}_tree_cover.png", array);
  scatter.save_png(scatter_file);
  written.push_back(scatter_file.string());

  const nlohmann::json summary = {{"cube", cube_path.string()}, {"array", array}, {"chips", rows.size()},
                                  {"explained_variance", pca.variance}, {"files", written}};
  write_atomically(dir / "summary.json", summary.dump(2) + "\n");
  return summary;
}

}  // namespace eo
