// `eo-pipeline fewshot`: the research's claim, measured: classical models trained on a
// few labelled chips' embeddings against the same models on all training chips, and
// against simple band statistics. Targets come from the label rasters reprojected onto
// the chip grid; the split is spatial (stripes at an angle).

#include <chrono>
#include <fmt/format.h>
#include <iostream>

#include "pipeline/commands.hpp"
#include "pipeline/driver/inputs.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/fewshot.hpp"
#include "stages/downstream/samples.hpp"

namespace eo {

namespace fs = std::filesystem;

void add_fewshot_command(CLI::App& app, FewshotOptions& opts) {
  auto* cmd = app.add_subcommand("fewshot", "few-shot models on the cube's embeddings against all labels and a band-statistics baseline");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--cube", opts.cube, "the cube (default: run.cube, else OUTPUT/cube.zarr)");
}

int run_fewshot(const FewshotOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const fs::path cube_path = cube_to_read(*config, opts.cube);
  const CubeReader cube(cube_path);
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
