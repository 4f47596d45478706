#pragma once
// Pictures of the embedding space: per zone, the embeddings projected on their first
// three principal components as RGB (a PNG to look at and a GeoTIFF to overlay), and a
// scatter of the first two components coloured by the tree cover on the ground: if the
// embeddings follow the land, both show it.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stages/downstream/samples.hpp"

namespace eo {

// Draws the chips' `array` embeddings (those that have them) into `dir`; returns the
// summary written there as summary.json (chips, explained variance, files). Throws
// ConfigError when fewer than 3 chips have the embeddings.
nlohmann::json render_embeddings(const std::vector<ChipSample>& all, const std::string& array,
                                 const std::filesystem::path& cube_path, const std::filesystem::path& dir);

}  // namespace eo
