#pragma once
// A synthetic world with a briefly pretrained model, for the tests of `run`: each run
// writes to an output of its own (--output) and embeds with the one model.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "pipeline/core/journal.hpp"
#include "support/run.hpp"
#include "support/world.hpp"

namespace eo::test {

inline std::string squares_aoi(int n, double size, double lat = 36.6) {
  std::string squares;
  for (int i = 0; i < n; ++i) {
    const double lon = -121.3 + 0.9 * i;
    squares += fmt::format("{}(({} {}, {} {}, {} {}, {} {}, {} {}))", i ? "," : "", lon, lat, lon + size, lat, lon + size,
                           lat + size, lon, lat + size, lon, lat);
  }
  return "MULTIPOLYGON(" + squares + ")";
}

struct RunWorld {
  std::unique_ptr<TestWorld> world;
  std::filesystem::path dir;

  // `extra` is more YAML for the config.
  RunWorld(const std::string& name, const std::string& aoi, const std::string& extra = "") {
    const auto d = std::filesystem::temp_directory_path() / ("eo_world_" + name + "_" + std::to_string(::getpid()));
    const std::string yaml = fmt::format(
        "data:\n  catalog: {0}/out/world/catalog.jsonl\n"
        "model:\n  checkpoint: {0}/out/pretrain/checkpoints/step-000004.pt\n"
        // a checkpoint every step, so that older ones are pruned beside the statistics
        "pretrain:\n  steps: 4\n  batch: 8\n  checkpoint_every: 1\n  threads: 1\n"
        "run:\n  max_attempts: 2\n{1}",
        d.string(), extra);
    world = make_world(name, aoi, yaml, 80, 8, 3, 0.25);
    dir = world->dir;
    const std::string env = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
    for (const char* step : {"prepare", "pretrain"}) {
      const auto r = run(fmt::format("{} mpiexec -n 2 --oversubscribe {} {} -q {}", env, EO_PIPELINE_EXE, step,
                                     world->config_file.string()));
      if (r.code != 0) throw std::runtime_error(fmt::format("{} failed: {}", step, r.output));
    }
  }
  ~RunWorld() {
    if (!std::getenv("EO_KEEP_TEST_OUTPUT")) std::filesystem::remove_all(dir);  // kept for debugging
  }

  // `eo-pipeline run` into dir/OUTPUT: alone (ranks 0) or under mpiexec; `env` is put
  // before the command.
  std::string command(const std::string& output, int ranks, const std::string& partition = "static",
                      const std::string& env = "") const {
    const std::string launcher =
        ranks == 0 ? "" : fmt::format("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec -n {} --oversubscribe ", ranks);
    return fmt::format("{} {}{} run {} --output {} --partition {}", env, launcher, EO_PIPELINE_EXE,
                       world->config_file.string(), (dir / output).string(), partition);
  }
  std::filesystem::path cube(const std::string& output) const { return dir / output / "cube.zarr"; }
  nlohmann::json report(const std::string& output) const {
    return nlohmann::json::parse(std::ifstream(dir / output / "run" / "report.json"));
  }
  // Every planned tile has exactly one record saying it is done (or has no data) in the
  // output's journal: none lost, none done twice.
  void expect_each_tile_once(const std::string& output) const {
    const auto journal = read_journal(dir / output / "journal", JournalStage::run);
    for (const TilePlan& t : world->plan.tiles) {
      const auto it = journal.find(t.id.str());
      ASSERT_NE(it, journal.end()) << t.id.str() << " lost";
      const auto finished = std::count_if(it->second.begin(), it->second.end(),
                                          [](const JournalRecord& r) { return r.status != TileStatus::failed; });
      EXPECT_EQ(finished, 1) << t.id.str() << " recorded " << finished << " times";
    }
  }
};

// Every file of a cube (its STAC included) and its bytes, but the times that are facts of
// the run, not of the result: the cube's creation, and when each tile was written.
inline std::map<std::string, std::string> cube_files(const std::filesystem::path& cube) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(cube)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes(std::istreambuf_iterator<char>(in), {});
    const std::string name = std::filesystem::relative(e.path(), cube).string();
    if (name == ".zattrs" || name == ".zmetadata") {
      auto j = nlohmann::json::parse(bytes);
      j.erase("created");
      if (j.contains("metadata")) j["metadata"][".zattrs"].erase("created");
      bytes = j.dump();
    } else if (name.starts_with("stac/items/")) {
      auto j = nlohmann::json::parse(bytes);
      j["properties"].erase("processing:datetime");
      bytes = j.dump();
    }
    out[name] = std::move(bytes);
  }
  return out;
}

// Empty when equal, else the first file that differs.
inline std::string cube_difference(const std::map<std::string, std::string>& a, const std::map<std::string, std::string>& b) {
  for (const auto& [name, bytes] : a) {
    const auto it = b.find(name);
    if (it == b.end()) return name + " only in the first";
    if (it->second != bytes) return name + " differs";
  }
  for (const auto& [name, bytes] : b)
    if (!a.count(name)) return name + " only in the second";
  return "";
}

}  // namespace eo::test
