#pragma once
// Per-chip targets for the few-shot models, from label rasters reprojected onto the chip
// grid (the chip stage, with the labels' own resampling: the class map's mode at the
// chip's pixels, the tree-cover map's average): the proportion of a class of a
// WorldCover-like map, or the mean of a continuous map.

#include <string>
#include <vector>

#include "pipeline/core/chip_batch.hpp"

namespace eo {

struct TargetSpec {
  std::string name;      // "tree", "cropland", ...
  Modality source;       // worldcover (a class proportion) or treecover (a mean)
  int class_code = -1;   // for worldcover
  bool proportion() const { return class_code >= 0; }
};

// Tree cover, cropland, built-up and permanent water (ESA WorldCover codes 10, 40, 50,
// 80) as proportions, and the tree-cover percentage as a mean.
std::vector<TargetSpec> default_targets();

// targets[chip][target]: NaN where less than `min_valid` of the chip's label pixels are
// valid or the batch lacks the target's source.
std::vector<std::vector<float>> chip_targets(const ChipBatch& batch, const std::vector<TargetSpec>& specs,
                                             double min_valid);

// The baseline's features: mean and standard deviation of every channel of the image
// modalities, over the chip's valid pixels (NaN when it has none).
std::vector<std::vector<float>> band_statistics(const ChipBatch& batch, const std::vector<Modality>& modalities);

}  // namespace eo
