#include "schedulers/partition.hpp"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <numeric>
#include <queue>
#include <stdexcept>

namespace eo {

std::uint64_t hilbert_index(std::uint32_t x, std::uint32_t y) {
  // The classic rotate-and-flip walk over a 2^16 x 2^16 square.
  std::uint64_t d = 0;
  for (std::uint32_t s = 1u << 15; s > 0; s >>= 1) {
    const std::uint32_t rx = (x & s) ? 1 : 0, ry = (y & s) ? 1 : 0;
    d += static_cast<std::uint64_t>(s) * s * ((3 * rx) ^ ry);
    if (ry == 0) {
      if (rx == 1) {
        x = 0xffff - x;  // only the bits below s matter from here on
        y = 0xffff - y;
      }
      std::swap(x, y);
    }
  }
  return d;
}

std::uint64_t morton_index(std::uint32_t x, std::uint32_t y) {
  auto spread = [](std::uint64_t v) {
    v &= 0xffff;
    v = (v | (v << 8)) & 0x00ff00ff;
    v = (v | (v << 4)) & 0x0f0f0f0f;
    v = (v | (v << 2)) & 0x33333333;
    v = (v | (v << 1)) & 0x55555555;
    return v;
  };
  return spread(x) | (spread(y) << 1);
}

std::vector<std::size_t> curve_order(const std::vector<TilePlan>& tiles, CurveOrder order) {
  auto key = [&](const TilePlan& t) {
    const auto x = static_cast<std::uint32_t>(t.id.col), y = static_cast<std::uint32_t>(t.id.row);
    const std::uint64_t along = order == CurveOrder::hilbert ? hilbert_index(x, y) : morton_index(x, y);
    return std::tuple(t.id.zone.number, t.id.zone.south, along);
  };
  std::vector<std::size_t> idx(tiles.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return key(tiles[a]) < key(tiles[b]); });
  return idx;
}

Assignment static_partition(const std::vector<TilePlan>& tiles, int parts, CurveOrder order) {
  if (parts < 1) throw std::invalid_argument("a partition needs at least one part");
  const std::vector<std::size_t> walk = curve_order(tiles, order);
  std::vector<double> cumulative(walk.size() + 1, 0.0);  // chips before position i
  for (std::size_t i = 0; i < walk.size(); ++i) cumulative[i + 1] = cumulative[i] + tiles[walk[i]].chip_count();
  const double total = cumulative.back();

  Assignment out(static_cast<std::size_t>(parts));
  std::size_t begin = 0;
  for (int r = 0; r < parts; ++r) {
    std::size_t end = walk.size();
    if (r + 1 < parts) {
      const double target = total * (r + 1) / parts;
      // first cut position whose running count reaches the target, or the one before
      end = static_cast<std::size_t>(std::lower_bound(cumulative.begin(), cumulative.end(), target) - cumulative.begin());
      if (end > begin && target - cumulative[end - 1] < cumulative[end] - target) --end;
      end = std::clamp(end, begin, walk.size());
    }
    out[static_cast<std::size_t>(r)].assign(walk.begin() + static_cast<std::ptrdiff_t>(begin),
                                            walk.begin() + static_cast<std::ptrdiff_t>(end));
    begin = end;
  }
  return out;
}

Assignment simulate_dynamic(const std::vector<TilePlan>& tiles, int parts, CurveOrder order) {
  if (parts < 1) throw std::invalid_argument("a partition needs at least one part");
  Assignment out(static_cast<std::size_t>(parts));
  // (work so far, rank): the rank that is free first asks for the next tile
  using Slot = std::pair<std::size_t, int>;
  std::priority_queue<Slot, std::vector<Slot>, std::greater<>> free_at;
  for (int r = 0; r < parts; ++r) free_at.push({0, r});
  for (std::size_t t : curve_order(tiles, order)) {
    auto [work, r] = free_at.top();
    free_at.pop();
    out[static_cast<std::size_t>(r)].push_back(t);
    free_at.push({work + static_cast<std::size_t>(tiles[t].chip_count()), r});
  }
  return out;
}

namespace {
int env_int(const char* name, bool required, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    if (required) throw std::runtime_error(fmt::format("{} is not set: the slurm-array partition runs inside a SLURM job array (sbatch --array)", name));
    return fallback;
  }
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0) throw std::runtime_error(fmt::format("{}='{}' is not a non-negative integer", name, v));
  return static_cast<int>(x);
}
}  // namespace

ArrayTask array_task_from_env() {
  const int id = env_int("SLURM_ARRAY_TASK_ID", true, 0);
  // Resubmitting only some tasks of an array (--array=2,5) leaves SLURM's _COUNT and _MIN
  // describing the subset; EO_ARRAY_SIZE keeps every task on its block of the full array.
  if (const char* size = std::getenv("EO_ARRAY_SIZE"); size && *size) {
    const int count = env_int("EO_ARRAY_SIZE", true, 1);
    if (count < 1 || id >= count)
      throw std::runtime_error(fmt::format("SLURM_ARRAY_TASK_ID={} is not a task of an array of EO_ARRAY_SIZE={} "
                                           "(tasks 0 to {})", id, count, count - 1));
    return {id, count};
  }
  const int count = env_int("SLURM_ARRAY_TASK_COUNT", true, 1);
  const int min = env_int("SLURM_ARRAY_TASK_MIN", false, 0);
  const int step = std::max(1, env_int("SLURM_ARRAY_TASK_STEP", false, 1));
  if (count < 1) throw std::runtime_error("SLURM_ARRAY_TASK_COUNT must be at least 1");
  if (id < min || (id - min) % step != 0 || (id - min) / step >= count)
    throw std::runtime_error(fmt::format(
        "SLURM_ARRAY_TASK_ID={} does not fit SLURM_ARRAY_TASK_MIN={}, _STEP={}, _COUNT={}: "
        "submit the array as --array=0-{} (a contiguous range), or set EO_ARRAY_SIZE", id, min, step, count, count - 1));
  return {(id - min) / step, count};
}

std::vector<std::size_t> slurm_array_tiles(const std::vector<TilePlan>& tiles, ArrayTask task, CurveOrder order) {
  if (task.index < 0 || task.index >= task.count)
    throw std::invalid_argument(fmt::format("array task {} of {} does not exist", task.index, task.count));
  return static_partition(tiles, task.count, order)[static_cast<std::size_t>(task.index)];
}

Balance balance_of(const Assignment& assignment, const std::vector<TilePlan>& tiles) {
  Balance b;
  std::size_t total = 0, most = 0;
  for (const auto& part : assignment) {
    std::size_t chips = 0;
    for (std::size_t t : part) chips += static_cast<std::size_t>(tiles[t].chip_count());
    b.chips.push_back(chips);
    b.tiles.push_back(part.size());
    total += chips;
    most = std::max(most, chips);
  }
  const double mean = assignment.empty() ? 0.0 : static_cast<double>(total) / assignment.size();
  b.imbalance = mean > 0 ? most / mean : 1.0;
  return b;
}

}  // namespace eo
