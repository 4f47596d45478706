#pragma once
// The few-shot experiment (DESIGN.md §1's claim): for every target, training-set size,
// seed, feature set and model, a fit on a few labelled chips scored on the spatial test
// stripes; the results per seed and as means, learning curves, and a predicted map.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/core/config.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/models.hpp"
#include "stages/downstream/samples.hpp"
#include "stages/downstream/split.hpp"
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

// A target's predicted map, as `fewshot` draws it and `serve` trains it: gradient-boosted
// trees on the fused embeddings of the labelled chips that `split` puts in training,
// their rounds chosen on the validation chips, predicting every row of `query`, and
// scored on the test chips (`threshold` as in score(): NaN, no presence scores).
struct LabelMap {
  std::vector<float> predicted;  // per row of `query`
  Scores test;                   // NaN when there is no test chip
  std::size_t train = 0, validation = 0, test_chips = 0;
};
// nullopt when the target has fewer than 2 training chips or no validation chip.
std::optional<LabelMap> fit_label_map(const FewshotConfig& fewshot, const std::vector<ChipSample>& samples,
                                      std::size_t target, const std::vector<SplitSet>& split, const Rows& query,
                                      double threshold, int threads);

// The labels' spatial split: `fewshot`'s stripes over the samples' places.
std::vector<SplitSet> split_samples(const FewshotConfig& fewshot, const std::vector<ChipSample>& samples);

// "" when a class's share of the labelled chips the map learnt from (`labelled`: those of
// the training and validation stripes) is near its share of the map
// (`mapped`); else a warning saying so: labels picked where a class is easy to find teach
// the model the labels' balance, not the area's.
std::string balance_warning(const std::string& name, const std::vector<float>& labelled, const std::vector<float>& mapped);

// Runs the sweep and writes results.csv, results.md, curve_<target>.png,
// predicted_<zone>.tif and summary.json into `dir`. Returns the Markdown table.
std::string run_fewshot_experiment(const FewshotConfig& fewshot, const FewshotInput& in, const std::filesystem::path& dir);

}  // namespace eo
