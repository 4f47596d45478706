#pragma once
// What `fewshot` and `render` learn from and draw: every embedded chip of the plan with
// its embeddings (from the cube), its targets (from the label maps on the chip grid) and,
// when asked, the band statistics of the baseline.

#include <map>
#include <string>
#include <vector>

#include "pipeline/core/plan.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/cube/cube.hpp"
#include "stages/downstream/picture.hpp"
#include "stages/downstream/split.hpp"
#include "stages/downstream/targets.hpp"
#include "stages/ingest/catalog.hpp"

namespace eo {

inline constexpr const char* kBandStatistics = "bands";  // the baseline's feature set: every modality's
// One modality's part of it ("bands_s2rgb"): the baseline its own embedding is judged against.
std::string band_statistics_of(Modality m);
// The modalities' embeddings side by side (NaN where one is missing): what the mean in
// `fused` averages away stays for the model to use.
inline constexpr const char* kConcatenated = "concat";

struct ChipSample {
  ChipId chip;
  Point at;                    // metres, equirectangular about the first chip
  std::vector<float> targets;  // per target, NaN = none
  std::map<std::string, std::vector<float>> features;  // the cube's arrays, "concat" (and "bands", "bands_<m>")
};

// Chip centres on a plane: equirectangular about the first chip asked for, good to a few
// per cent over an AOI and continuous across UTM zones, which the zones' own metres are not.
struct ChipPlane {
  bool origin = false;
  double lon0 = 0, lat0 = 0;
  Point at(const ChipId& chip);
};

// The chip at `pos` of a tile read from the cube, with its embeddings as features: every
// array of `arrays` (the cube's embedding_arrays()) and "concat". Its place (`at`) is the
// caller's to set, from the ChipPlane of all the chips it collects.
ChipSample embedded_sample(const TileEmbeddings& tile, int pos, const std::vector<std::string>& arrays);

// `read`: how the chip stage reads (its modalities are set here: the cube's images for
// the band statistics, and the label maps). `min_label_valid`: fewshot.min_label_valid.
std::vector<ChipSample> collect_samples(TileReadOptions read, double min_label_valid, const Plan& plan,
                                        const Catalog& catalog, const CubeReader& cube,
                                        const std::vector<TargetSpec>& targets, bool band_statistics);

// A raster per zone over the chips, one pixel per chip, all NaN.
std::map<Zone, ChipRaster> zone_rasters(const std::vector<ChipId>& chips, int bands);

}  // namespace eo
