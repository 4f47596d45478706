#pragma once
// The few-shot experiment (DESIGN.md §1's claim): for every target, training-set size,
// seed, feature set and model, a fit on a few labelled chips scored on the spatial test
// stripes; the results per seed and as means, learning curves, and a predicted map.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/core/config.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/samples.hpp"
#include "stages/downstream/targets.hpp"

namespace eo {

struct FewshotInput {
  std::string name;                 // the config's, for the results' title
  std::filesystem::path cube_path;  // named in the results
  const CubeSpec* cube = nullptr;   // its arrays and provenance
  std::vector<ChipSample> samples;
  std::vector<TargetSpec> targets;
  std::chrono::steady_clock::time_point started;  // the experiment's start, for its summary
  // What the predicted map covers: the samples when null, else these chips (e.g. every
  // embedded chip of the cube, for a user's labels), each drawn as a PNG too.
  const std::vector<ChipSample>* map_chips = nullptr;
};

// Runs the sweep and writes results.csv, results.md, curve_<target>.png,
// predicted_<zone>.tif and summary.json into `dir`. Returns the Markdown table.
std::string run_fewshot_experiment(const FewshotConfig& fewshot, const FewshotInput& in, const std::filesystem::path& dir);

}  // namespace eo
