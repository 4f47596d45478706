// `eo-pipeline fewshot`: the research's claim, measured: classical models trained on a
// few labelled chips' embeddings against the same models on all training chips, and
// against simple band statistics. Targets come from the label rasters reprojected onto
// the chip grid; the split is spatial (stripes at an angle).

#include <chrono>
#include <fmt/format.h>
#include <iostream>
#include <spdlog/spdlog.h>

#include "pipeline/commands/commands.hpp"
#include "pipeline/driver/inputs.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/fewshot.hpp"
#include "stages/downstream/labels.hpp"
#include "stages/downstream/samples.hpp"

namespace eo {

namespace fs = std::filesystem;

namespace {

// Few-shot on a user's labels: the labelled chips of the cube are the samples, and the
// predicted map covers every embedded chip of the cube.
int fewshot_on_labels(const Config& config, const FewshotOptions& opts, const fs::path& cube_path,
                      const CubeReader& cube, std::chrono::steady_clock::time_point t0) {
  const UserLabels labels = read_labels(opts.labels, opts.label_property, cube, config.fewshot.min_label_valid);
  std::vector<ChipSample> everywhere = cube_samples(cube);
  std::vector<ChipSample> samples;
  for (const ChipSample& s : everywhere) {
    const auto it = labels.chips.find(s.chip);
    if (it == labels.chips.end()) continue;
    samples.push_back(s);
    samples.back().targets = it->second;
  }
  // Labels all outside, that would fall on chips the other way round: latitude first.
  const std::string swapped =
      labels.outside_swapped > 0
          ? fmt::format(" ({} of them would, read as latitude, longitude: GeoJSON gives longitude first)", labels.outside_swapped)
          : "";
  if (labels.outside > 0)
    spdlog::warn("{}: {} of {} labels fall on no embedded chip of {}: left out{}", opts.labels, labels.outside,
                 labels.labels, cube_path.string(), swapped);
  if (samples.size() < 20)
    throw ConfigError(fmt::format("{}: {} labelled chips in {}: too few for a few-shot model (20 at least){}", opts.labels,
                                  samples.size(), cube_path.string(), swapped));
  const fs::path dir = config.output / "fewshot" / ("labels-" + fs::path(opts.labels).stem().string());
  FewshotInput in{config.name, cube_path, &cube.spec(), std::move(samples), labels.targets, t0, &everywhere};
  const std::string md = run_fewshot_experiment(config.fewshot, in, dir);
  std::cout << md << fmt::format("\n{} labelled chips of {}; maps of all {}: ", in.samples.size(), opts.labels,
                                 everywhere.size())
            << (dir / "predicted_<zone>.tif").string() << "\nresults: " << (dir / "results.md").string() << '\n';
  return kExitOk;
}

}  // namespace

int run_fewshot(const FewshotOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const fs::path cube_path = cube_to_read(*config, opts.cube);
  const CubeReader cube(cube_path);
  if (!opts.labels.empty()) return fewshot_on_labels(*config, opts, cube_path, cube, std::chrono::steady_clock::now());
  const Plan plan = make_plan(load_aois(*config));
  const Catalog catalog = load_catalog(*config);
  const std::vector<TargetSpec> targets = default_targets();
  const fs::path dir = config->output / "fewshot";
  const auto t0 = std::chrono::steady_clock::now();
  const TileReadOptions read = tile_read_options(*config, threads_per_rank(0, Comm::serial()));
  const FewshotInput in{config->name, cube_path, &cube.spec(),
                        collect_samples(read, config->fewshot.min_label_valid, plan, catalog, cube, targets, true), targets,
                        t0};
  if (in.samples.size() < 20)
    throw ConfigError(fmt::format("{}: only {} embedded chips in {}: too few for the few-shot experiments",
                                  config->source, in.samples.size(), cube_path.string()));
  const std::string md = run_fewshot_experiment(config->fewshot, in, dir);
  std::cout << md << "\nresults: " << (dir / "results.csv").string() << ", " << (dir / "results.md").string() << ", "
            << (dir / "summary.json").string() << '\n';
  return kExitOk;
}

}  // namespace eo
