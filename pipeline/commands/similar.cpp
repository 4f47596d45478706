// `eo-pipeline similar`: the chips most like some examples (a chip id, a point, or a
// GeoJSON of positives and negatives), exactly by a pass over the cube or approximately
// from its index; `eo-pipeline index` builds that index beside the cube.

#include <fmt/format.h>

#include <chrono>
#include <iostream>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/resources.hpp"
#include "pipeline/driver/inputs.hpp"
#include "stages/downstream/index.hpp"
#include "stages/downstream/similar.hpp"

namespace eo {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Chip ids given to `option`, appended to `into`; a bad one is named with its option.
void add_chip_ids(const char* option, const std::vector<std::string>& ids, std::vector<ChipId>& into) {
  for (const std::string& id : ids) {
    try {
      into.push_back(parse_chip_id(id));
    } catch (const std::invalid_argument& e) {
      throw ConfigError(fmt::format("{} {}: {}", option, id, e.what()));
    }
  }
}

}  // namespace

int run_similar(const SimilarOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path cube_path = cube_to_read(*config, opts.cube);
  const CubeReader cube(cube_path);
  const SearchSpace space = SearchSpace::of(cube.spec(), cube_path, opts.modality);

  Examples examples;
  std::string asked;
  if (!opts.chips.empty()) {
    add_chip_ids("--chip", opts.chips, examples.positives);
    asked = fmt::format("chip {}", fmt::join(opts.chips, ", "));
  } else if (!opts.lonlat.empty()) {
    double lon = 0, lat = 0;
    char comma = 0, rest = 0;
    if (std::sscanf(opts.lonlat.c_str(), "%lf%c%lf%c", &lon, &comma, &lat, &rest) != 3 || comma != ',')
      throw ConfigError(fmt::format("--lonlat '{}': not LON,LAT in degrees", opts.lonlat));
    examples.positives.push_back(chip_at_lonlat(cube, {lon, lat}));
    asked = fmt::format("lon/lat {},{} (chip {})", lon, lat, examples.positives[0].str());
  } else if (!opts.examples.empty()) {
    examples = read_examples(cube, opts.examples);
    asked = fmt::format("{} ({} positives, {} negatives)", opts.examples, examples.positives.size(), examples.negatives.size());
  } else {
    throw ConfigError("similar: say what to look for: --chip ID, --lonlat LON,LAT or --examples FILE.geojson");
  }
  add_chip_ids("--unlike", opts.unlike, examples.negatives);
  if (!opts.unlike.empty()) asked += fmt::format(", unlike {}", fmt::join(opts.unlike, ", "));
  const std::vector<float> query = query_vector(cube, space, examples);

  const fs::path dir = opts.out.empty() ? config->output / "similar" : fs::path(opts.out);
  fs::create_directories(dir);
  std::vector<Hit> hits, scored;
  std::vector<fs::path> maps;
  if (opts.use_index) {
    hits = index_search(cube, space, {query}, opts.k, opts.nprobe).at(0);
  } else {
    hits = exact_search(cube, space, {query}, opts.k, threads_per_rank(opts.threads, Comm::serial()),
                        [&](const std::vector<ChipId>& chips, const std::vector<float>& scores) {
                          for (std::size_t i = 0; i < chips.size(); ++i) scored.push_back({chips[i], scores[i]});
                        })
               .at(0);
    maps = write_similarity_maps(scored, hits, examples, dir);
  }
  const fs::path geojson = dir / "hits.geojson";
  write_atomically(geojson, hits_geojson(hits, space.name).dump(1) + "\n");
  const double seconds = seconds_since(t0);

  json summary = {{"cube", cube_path.string()}, {"space", space.name}, {"query", asked},
                  {"search", opts.use_index ? "index" : "exact"}, {"k", opts.k}, {"hits", geojson.string()},
                  {"chips_scored", scored.size()}, {"seconds", seconds}};
  for (const fs::path& m : maps) summary["maps"].push_back(m.string());
  if (opts.json) {
    std::cout << summary.dump(2) << '\n';
    return kExitOk;
  }
  std::cout << fmt::format("{} chips most like {} by {} embeddings ({} search{}, {:.1f} s):\n", hits.size(), asked,
                           space.name, opts.use_index ? "approximate" : "exact",
                           opts.use_index ? "" : fmt::format(" over {} chips", scored.size()), seconds);
  for (std::size_t i = 0; i < hits.size(); ++i)
    std::cout << fmt::format("{:4}  {}  {:.4f}\n", i + 1, hits[i].chip.str(), hits[i].score);
  std::cout << "hits: " << geojson.string();
  for (const fs::path& m : maps) std::cout << "  " << m.string();
  std::cout << '\n';
  return kExitOk;
}

int run_index(const IndexOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const fs::path cube_path = cube_to_read(*config, opts.cube);
  const CubeReader cube(cube_path);
  const SearchSpace space = SearchSpace::of(cube.spec(), cube_path, opts.modality);
  const IndexCard card = build_index(cube, space, opts.factory, opts.nprobe, threads_per_rank(opts.threads, Comm::serial()));
  const json out = {{"index", index_file(cube_path, space.name).string()}, {"space", card.space}, {"factory", card.factory},
                    {"vectors", card.vectors}, {"dim", card.dim}, {"nprobe", card.nprobe}, {"bytes", card.bytes},
                    {"seconds", card.build_seconds}};
  if (opts.json)
    std::cout << out.dump(2) << '\n';
  else
    std::cout << fmt::format("index of {} {} embeddings ({}, {:.1f} MB) built in {:.1f} s: {}\n", card.vectors,
                             card.space, card.factory, static_cast<double>(card.bytes) / 1e6, card.build_seconds,
                             index_file(cube_path, space.name).string());
  return kExitOk;
}

}  // namespace eo
