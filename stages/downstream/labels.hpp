#pragma once
// A user's own labels for `fewshot --labels`, instead of the synthetic world's label maps:
// a GeoJSON of points or polygons with a value or a class, or a label raster, turned into
// per-chip targets on the cube's chips.

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stages/cube/cube.hpp"
#include "stages/downstream/samples.hpp"
#include "stages/downstream/targets.hpp"

namespace eo {

struct UserLabels {
  // A number property gives one target (the chips' mean of it); a text property one per
  // class (the proportion of a chip's labels of that class); a raster one (its mean over
  // the chip's valid pixels).
  std::vector<TargetSpec> targets;
  std::map<ChipId, std::vector<float>> chips;  // per labelled chip, per target
  std::size_t labels = 0, outside = 0;         // read; on no embedded chip of the cube
  std::size_t outside_swapped = 0;             // of those outside, on a chip read as latitude, longitude
};

// GeoJSON (.geojson, .json): Point, Polygon and MultiPolygon features, the label in
// `property`; a point labels the chip it falls in, a polygon every chip whose centre it
// holds. Positions are longitude, latitude, or in the CRS a `crs` member names
// (GeoJsonCrs). Anything else is read as a raster through GDAL: a chip's target is the
// mean of the raster's valid pixels in the chip's footprint, kept where at least
// `min_valid` of them are valid. Throws ConfigError naming the file, and the feature or
// property; labels with nothing to learn (one class, one value) are refused.
UserLabels read_labels(const std::filesystem::path& file, const std::string& property, const CubeReader& cube,
                       double min_valid);

// The GeoJSON labels of read_labels from a document already read (`serve`'s page sends
// them); `source` names it in errors.
UserLabels geojson_labels(const nlohmann::json& doc, const std::string& source, const std::string& property,
                          const CubeReader& cube);

// Every embedded chip of the cube with its embeddings (the arrays and "concat"), no
// targets: what a predicted map covers.
std::vector<ChipSample> cube_samples(const CubeReader& cube);

}  // namespace eo
