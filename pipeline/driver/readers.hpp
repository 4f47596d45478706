#pragma once
// Where `run` takes a tile's rows of chips from: the chip stage warping its sources
// (stages/chip's read_tile), or the chip store `prepare` made of it (run.inputs:
// chip-stores) where that store was made from the tile's current inputs.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "pipeline/core/config.hpp"
#include "pipeline/driver/prefetcher.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/chipstore/chipstore.hpp"
#include "stages/ingest/catalog.hpp"

namespace eo {

// The tile's chip store (OUTPUT/chips/<tile>.h5), open, when `prepare` made it from the
// tile's current inputs with this config's chip settings, holding every modality of the
// run as the chip stage makes it; otherwise null, and `why` says why not. Throws when
// the store cannot be read.
std::unique_ptr<ChipStoreReader> current_chip_store(const Config& config, const Catalog& catalog, const TilePlan& tile,
                                                    std::string& why);

// Calls `row` for each row of the store's chips, with the config's modalities: the rows
// read_tile makes from the sources, read instead of warped.
void read_chip_store_rows(const ChipStoreReader& store, const std::vector<Modality>& modalities,
                          const std::function<void(ChipBatch&&)>& row);

// Tiles read so far each way, by every thread of this rank.
struct ReadCounts {
  std::atomic<std::int64_t> from_stores{0}, from_sources{0};
};

// `run`'s reader under `config`: from sources, or with run.inputs chip-stores from a
// tile's current chip store when it has one (a store that cannot be read is warned of,
// and the tile warped). Counts into `counts`, which must outlive it.
TileReader run_tile_reader(const Config& config, const Catalog& catalog, const TileReadOptions& options,
                           ReadCounts& counts);

}  // namespace eo
