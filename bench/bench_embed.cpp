// Benchmark: the model's pure forward throughput on the chips of a config's plan, the
// denominator of the pipeline's efficiency (run's end-to-end chips/s over this). The
// chips are read and warped first, untimed; then only the Embedder runs, with the
// config's batch and the given threads. Writes JSON to the given file.
//
//   bench_embed CONFIG OUT.json [--threads N]

#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pipeline/core/config.hpp"
#include "pipeline/core/plan.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/model/embed.hpp"

int main(int argc, char** argv) {
  using namespace eo;
  if (argc < 3) {
    std::cerr << "usage: bench_embed CONFIG OUT.json [--threads N]\n";
    return 2;
  }
  const int threads = argc >= 5 && std::string(argv[3]) == "--threads" ? std::stoi(argv[4]) : 1;
  const Config config = load_config(argv[1]);
  const Plan plan = make_plan(load_aois(config));
  const Catalog catalog = Catalog::load(config.catalog_path());
  const ModelCard card = find_model(config);
  const Normalisation norm = Normalisation::load(card.checkpoint.parent_path() / "normalisation.json");
  const Embedder embedder(card, config.model, config.data.modalities, threads);

  std::vector<ChipBatch> rows;
  std::vector<std::vector<bool>> use;
  std::size_t chips = 0;
  for (const TilePlan& tile : plan.tiles)
    read_tile(catalog, tile, TileReadOptions::from(config.pixel_size, config.data, config.warp, 1), [&](ChipBatch&& row) {
      std::vector<bool> u(row.chips.size());
      for (std::size_t k = 0; k < u.size(); ++k) chips += u[k] = chip_has_data(row, k, config.data.min_valid_fraction);
      rows.push_back(std::move(row));
      use.push_back(std::move(u));
    });
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < rows.size(); ++i)
    embedder.embed(rows[i], use[i], norm, config.data.min_valid_fraction, config.run.batch);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const nlohmann::json out = {{"benchmark", "pure forward of the embedder on the plan's chips"},
                              {"model", card.name}, {"threads", threads}, {"batch", config.run.batch},
                              {"chips", chips}, {"seconds", seconds}, {"chips_per_second", chips / seconds}};
  std::ofstream(argv[2]) << out.dump(2) << '\n';
  std::cout << out.dump() << '\n';
  return 0;
}
