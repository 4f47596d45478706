#pragma once
// A small synthetic world written once per test program into a temporary folder.

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <unistd.h>

#include "pipeline/core/config.hpp"
#include "pipeline/core/plan.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/synth/synth.hpp"

namespace eo::test {

struct TestWorld {
  std::filesystem::path dir;
  std::filesystem::path config_file;  // the config, for running eo-pipeline on the world
  Config config;
  Plan plan;
  Catalog catalog;
};

inline constexpr const char* kBorderAoi =
    "POLYGON((-120.15 36.95, -119.85 36.95, -119.85 37.15, -120.15 37.15, -120.15 36.95))";

// `pixel` is the chip pixel size; the products are `scale` times coarser than native.
inline std::unique_ptr<TestWorld> make_world(const std::string& name, const std::string& aoi_wkt = kBorderAoi,
                                             const std::string& extra_yaml = "", int pixel = 40, int scale = 4,
                                             int seed = 3, double missing_fraction = 0) {
  auto w = std::make_unique<TestWorld>();
  w->dir = std::filesystem::temp_directory_path() / ("eo_world_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(w->dir);
  std::filesystem::create_directories(w->dir);
  const std::string yaml = "name: " + name + "\noutput: " + (w->dir / "out").string() +
                           "\ngrid:\n  pixel_size: " + std::to_string(pixel) + "\naois:\n  - name: t\n    wkt: " + aoi_wkt +
                           "\nsynth:\n  seed: " + std::to_string(seed) + "\n  resolution_scale: " + std::to_string(scale) +
                           "\n  missing_fraction: " + std::to_string(missing_fraction) + "\n" + extra_yaml;
  w->config_file = w->dir / (name + ".yaml");
  std::ofstream(w->config_file) << yaml;
  w->config = parse_config(yaml, w->config_file.string(), w->dir);
  w->plan = make_plan(load_aois(w->config));
  synth::write_world(w->config.synth, w->config.world_dir(), w->plan, [](const std::string&) {});
  w->catalog = Catalog::load(w->config.catalog_path());
  return w;
}

}  // namespace eo::test
