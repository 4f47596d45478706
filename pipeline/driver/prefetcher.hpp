#pragma once
// Reads the tiles it is given, in order, on its own thread, so that ingest, warp and chip
// of the next tile overlap with the work on this one (DESIGN.md §2). A bounded queue of
// rows keeps memory to a few rows of chips (a row of 10 m chips of every modality is
// ~300 MB).

#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "pipeline/core/chip_batch.hpp"
#include "pipeline/core/plan.hpp"
#include "pipeline/driver/queue.hpp"

namespace eo {

// Reads a tile, handing over its chips row by row; throws when the tile cannot be read.
using TileReader = std::function<void(const TilePlan&, const std::function<void(ChipBatch&&)>&)>;

// A row of chips of a tile, or (no row) the end of the tile.
struct RowItem {
  std::optional<ChipBatch> row;
  std::string error;        // at the end: why the tile could not be read
  double read_seconds = 0;  // at the end
};

class Prefetcher {
 public:
  Prefetcher(TileReader read, const Plan& plan);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  void submit(std::size_t tile) { jobs_.push(tile); }
  void no_more_tiles() { jobs_.close(); }
  // The next row, or the end of a tile; nothing once every submitted tile has ended.
  std::optional<RowItem> pop() { return rows_.pop(); }

 private:
  void loop();

  TileReader read_;
  const Plan& plan_;
  BoundedQueue<std::size_t> jobs_{2};  // the loop hands over at most two tiles
  BoundedQueue<RowItem> rows_{2};
  std::thread thread_;
};

}  // namespace eo
