#pragma once
// Which rank does which tiles. Ranks walk tiles along a space-filling curve so that the
// tiles of one rank are spatially close (they share source rasters) and are balanced by
// chip count, since the work of a tile is proportional to its chips.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/core/choices.hpp"  // CurveOrder
#include "pipeline/core/plan.hpp"

namespace eo {

std::uint64_t hilbert_index(std::uint32_t x, std::uint32_t y);  // 16-bit x and y
std::uint64_t morton_index(std::uint32_t x, std::uint32_t y);

// Tile indices in walking order: zone by zone from west to east (north before south
// within a zone number), and along the curve inside each zone.
std::vector<std::size_t> curve_order(const std::vector<TilePlan>& tiles, CurveOrder order);

// assignment[r] = indices into tiles, in walking order.
using Assignment = std::vector<std::vector<std::size_t>>;

// Contiguous stretches of the curve, cut where the running chip count is nearest to
// r * total / parts. With 100+ tiles per part no part is more than half a tile off.
Assignment static_partition(const std::vector<TilePlan>& tiles, int parts, CurveOrder order);

// What dynamic hand-out does when every chip costs the same: each tile, in walking
// order, to the rank that has the least work. Used by `plan` to preview a dynamic run.
Assignment simulate_dynamic(const std::vector<TilePlan>& tiles, int parts, CurveOrder order);

struct ArrayTask {
  int index = 0;  // 0-based position within the array
  int count = 1;
};
// From SLURM_ARRAY_TASK_ID and EO_ARRAY_SIZE (the whole array's size, set by
// slurm/submit.sh), or without it SLURM_ARRAY_TASK_MIN, _STEP and _COUNT; throws
// std::runtime_error naming the variable when one is missing or inconsistent.
ArrayTask array_task_from_env();
// The tiles of one array task: block `task.index` of a static partition into
// `task.count` blocks (the task's own ranks then split the block again).
std::vector<std::size_t> slurm_array_tiles(const std::vector<TilePlan>& tiles, ArrayTask task, CurveOrder order);

struct Balance {
  std::vector<std::size_t> chips;  // per part
  std::vector<std::size_t> tiles;  // per part
  double imbalance = 0;            // max / mean chips
};
Balance balance_of(const Assignment& assignment, const std::vector<TilePlan>& tiles);

}  // namespace eo
