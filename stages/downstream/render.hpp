#pragma once
// Pictures of the embedding space: per zone, the embeddings projected on their first
// three principal components as RGB (a PNG to look at and a GeoTIFF to overlay), and a
// scatter of the first two components coloured by the tree cover on the ground: if the
// embeddings follow the land, both show it.

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "stages/downstream/pca.hpp"
#include "stages/downstream/picture.hpp"
#include "stages/downstream/samples.hpp"

namespace eo {

// Embeddings as colours: their first three principal components (fitted on at most
// 20,000 of the rows, evenly spaced), each stretched from its 2nd (0) to its 98th (255)
// percentile, as red, green and blue.
struct PcaColours {
  Pca pca;
  std::vector<std::vector<double>> points;          // per row, its components 1-3
  std::vector<std::pair<double, double>> range;     // per component, the stretch
  std::vector<Rgb> colours;                         // per row
  std::array<double, 3> share{};                    // per component, % of the embeddings' variance
};
// `rows` without NaN, at least 3. Throws std::invalid_argument otherwise.
PcaColours pca_colours(const Rows& rows);

// Draws the chips' `array` embeddings (those that have them) into `dir`; returns the
// summary written there as summary.json (chips, explained variance, files). Throws
// ConfigError when fewer than 3 chips have the embeddings.
nlohmann::json render_embeddings(const std::vector<ChipSample>& all, const std::string& array,
                                 const std::filesystem::path& cube_path, const std::filesystem::path& dir);

}  // namespace eo
