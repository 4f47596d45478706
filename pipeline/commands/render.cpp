// `eo-pipeline render`: pictures of the embedding space (stages/downstream/render.hpp) of
// a cube's chips.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pipeline/commands/commands.hpp"
#include "pipeline/driver/inputs.hpp"
#include "stages/downstream/render.hpp"
#include "stages/downstream/samples.hpp"

namespace eo {

namespace fs = std::filesystem;

int run_render(const RenderOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const fs::path cube_path = cube_to_read(*config, opts.cube);
  const CubeReader cube(cube_path);
  const auto arrays = cube.spec().embedding_arrays();
  if (std::find(arrays.begin(), arrays.end(), opts.array) == arrays.end())
    throw ConfigError(fmt::format("--array {}: not an array of {} ({})", opts.array, cube_path.string(), fmt::join(arrays, ", ")));
  const Plan plan = make_plan(load_aois(*config));
  const Catalog catalog = load_catalog(*config);
  const std::vector<TargetSpec> targets = default_targets();
  const TileReadOptions read = tile_read_options(*config, threads_per_rank(0, Comm::serial()));
  const std::vector<ChipSample> all =
      collect_samples(read, config->fewshot.min_label_valid, plan, catalog, cube, targets, false);
  const nlohmann::json summary = render_embeddings(all, opts.array, cube_path, config->output / "render");
  const auto& variance = summary.at("explained_variance");
  std::cout << fmt::format("render: {} chips of {} on 3 principal components (variances {:.3g}, {:.3g}, {:.3g})\n",
                           summary.at("chips").get<std::size_t>(), opts.array, variance[0].get<double>(),
                           variance[1].get<double>(), variance[2].get<double>());
  for (const auto& f : summary.at("files")) std::cout << "  " << f.get<std::string>() << '\n';
  return kExitOk;
}

}  // namespace eo
