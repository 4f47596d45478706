#pragma once
// A small synthetic world written once per test program into a temporary folder.

#include <filesystem>
#include <memory>
#include <string>
#include <unistd.h>

#include "pipeline/config.hpp"
#include "pipeline/plan.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/synth/synth.hpp"

namespace eo::test {

struct TestWorld {
  std::filesystem::path dir;
  Config config;
  Plan plan;
  Catalog catalog;
};

// `aoi_wkt` defaults to a 0.3 x 0.2 degree area across the border of zones 10 and 11.
inline std::unique_ptr<TestWorld> make_world(const std::string& name, const std::string& extra_yaml = "",
                                             const std::string& aoi_wkt =
                                                 "POLYGON((-120.15 36.95, -119.85 36.95, -119.85 37.15, -120.15 37.15, -120.15 36.95))") {
  auto w = std::make_unique<TestWorld>();
  w->dir = std::filesystem::temp_directory_path() / ("eo_world_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(w->dir);
  std::filesystem::create_directories(w->dir);
  const std::string yaml = "name: " + name + "\noutput: " + (w->dir / "out").string() +
                           "\ngrid:\n  pixel_size: 40\naois:\n  - name: t\n    wkt: " + aoi_wkt +
                           "\nsynth:\n  seed: 3\n  resolution_scale: 4\n  missing_fraction: 0\n" + extra_yaml;
  w->config = parse_config(yaml, name + ".yaml", w->dir);
  w->plan = make_plan(load_aois(w->config));
  synth::write_world(w->config, w->plan, [](const std::string&) {});
  w->catalog = Catalog::load(w->config.catalog_path());
  return w;
}

}  // namespace eo::test
