#include "schedulers/tile_source.hpp"

#include <numeric>

namespace eo {

TileSource::TileSource(const ScheduleSpec& spec, const Plan& plan, const Comm& comm) {
  if (spec.partition == Partition::slurm_array) {
    const ArrayTask task = spec.task ? *spec.task : array_task_from_env();
    job_ = slurm_array_tiles(plan.tiles, task, spec.order);
    std::vector<TilePlan> block;
    for (std::size_t i : job_) block.push_back(plan.tiles[i]);
    // Named: a range-for over a temporary's element outlives the temporary (until C++23).
    const Assignment within = static_partition(block, comm.size(), spec.order);
    for (std::size_t i : within[static_cast<std::size_t>(comm.rank())]) list_.push_back(job_[i]);
    return;
  }
  job_.resize(plan.tiles.size());
  std::iota(job_.begin(), job_.end(), std::size_t{0});
  if (spec.partition == Partition::dynamic)
    queue_.emplace(comm, curve_order(plan.tiles, spec.order));
  else
    list_ = static_partition(plan.tiles, comm.size(), spec.order)[static_cast<std::size_t>(comm.rank())];
}

std::optional<std::size_t> TileSource::next() {
  if (queue_) return queue_->next();
  if (pos_ < list_.size()) return list_[pos_++];
  return std::nullopt;
}

}  // namespace eo
