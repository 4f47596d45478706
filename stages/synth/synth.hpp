#pragma once
// `eo-pipeline synth`: writes the synthetic world over a plan as the real products
// arrive (S2 RGB COGs in UTM, S1 amplitude GeoTIFFs and coherence NetCDFs in EPSG:4326,
// WorldCover-like and tree-cover label maps) and the catalog describing them.

#include <functional>
#include <map>
#include <string>

#include "pipeline/core/config.hpp"
#include "pipeline/core/plan.hpp"
#include "stages/synth/world.hpp"

namespace eo::synth {

struct SynthReport {
  std::map<std::string, int> files;  // per modality
  std::map<std::string, int> left_out;  // source tiles left out per modality (missing data)
  std::uintmax_t bytes = 0;
  std::filesystem::path catalog;
};

// The world the synth section describes: its seed and an origin at the centre of the plan.
World world_of(const SynthConfig& synth, const Plan& plan);

// The world's products and their catalog, written into `dir` (the config's world_dir()).
// With an href_base (the scenes layout), the STAC's assets are that URL followed by their
// path in `dir`, and so is the catalog made from it: the world read from where it is served.
SynthReport write_world(const SynthConfig& synth, const std::filesystem::path& dir, const Plan& plan,
                        const std::function<void(const std::string&)>& progress, const std::string& href_base = "");

}  // namespace eo::synth
