#pragma once
// Chips of one tile (or one row of a tile) as they move from the chip stage to the chip
// store or the model: per modality, values [chip][channel][y][x] with NaN for no data,
// and the valid-pixel fraction of each chip and channel.

#include <string>
#include <vector>

#include "pipeline/core/grid.hpp"
#include "pipeline/core/modality.hpp"

namespace eo {

// One observation (a scene, or one season's product mosaic) that went into a composite.
struct ObservationInfo {
  std::string id;    // STAC item id, or "product <time>"
  std::string time;  // acquisition instant or product interval
  bool operator==(const ObservationInfo&) const = default;
};

struct ModalityChips {
  Modality modality = Modality::s2rgb;
  int channels = 0;
  std::vector<float> values;  // [chip][channel][y][x]
  std::vector<float> valid;   // [chip][channel], 0..1: pixels with at least one clear observation
  // [chip][season]: clear observations per pixel, the mean over the chip's pixels.
  std::vector<float> clear;
  // Per season, the observations the tile's composites were made of (in time order).
  std::vector<std::vector<ObservationInfo>> observations;
};

// [[{"id": ..., "time": ...}, ...] per season] and back (chip stores, cube provenance).
std::string observations_json(const std::vector<std::vector<ObservationInfo>>& observations);
std::vector<std::vector<ObservationInfo>> observations_from_json(const std::string& text);

struct ChipBatch {
  TileId tile;
  int size = 0;  // pixels per chip side
  std::vector<ChipId> chips;
  std::vector<ModalityChips> modalities;

  std::size_t chip_values(const ModalityChips& m) const { return static_cast<std::size_t>(m.channels) * size * size; }
  const ModalityChips* find(Modality m) const {
    for (const auto& mc : modalities)
      if (mc.modality == m) return &mc;
    return nullptr;
  }
};

}  // namespace eo
