#pragma once
// chip: a tile's sources, warped one row of chips at a time, cut into 448 x 448 (or
// pixel-size dependent) chips with the valid-pixel fraction of every chip and channel.
// Row by row keeps memory bounded (a whole 10 m tile of all modalities is ~5 GB).

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "pipeline/core/chip_batch.hpp"
#include "pipeline/core/config.hpp"
#include "pipeline/core/plan.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/reproject/warp.hpp"

namespace eo {

struct TileReadOptions {
  double pixel = 10;
  std::vector<Modality> modalities;
  std::map<Modality, Resampling> resampling;
  int threads = 1;
  int memory_mb = 256;

  // From the config's sections the chip stage reads: grid.pixel_size, data, warp. Every
  // modality's resampling is filled in, the labels' too.
  static TileReadOptions from(double pixel_size, const DataConfig& data, const WarpConfig& warp, int threads);
};

// Calls `row` for each row of planned chips of the tile, in row order, with those chips.
// Throws StageError (ingest or reproject) naming the modality and file when a source fails.
void read_tile(const Catalog& catalog, const TilePlan& tile, const TileReadOptions& options,
               const std::function<void(ChipBatch&&)>& row);

// The files a tile reads (all modalities and seasons) and what the catalog says of their
// versions, for its fingerprint; each file once, in the order of their paths.
struct TileInput {
  std::filesystem::path path;
  std::string version;  // SourceRecord::version
};
std::vector<TileInput> tile_inputs(const Catalog& catalog, const TilePlan& tile, const std::vector<Modality>& modalities);
// Their paths alone.
std::vector<std::filesystem::path> tile_sources(const Catalog& catalog, const TilePlan& tile,
                                                const std::vector<Modality>& modalities);

// Whether a chip has data: some channel of some modality has at least `threshold`
// valid pixels.
bool chip_has_data(const ChipBatch& batch, std::size_t chip, double threshold);
// chip_has_data of every chip of the batch.
std::vector<bool> chips_with_data(const ChipBatch& batch, double threshold);

}  // namespace eo
