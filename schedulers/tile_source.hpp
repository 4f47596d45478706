#pragma once
// The tiles one rank works on, in order (DESIGN.md §3's partitioning): a fixed list
// (static, slurm-array) or a queue shared by all ranks (dynamic).

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/core/plan.hpp"
#include "schedulers/comm.hpp"
#include "schedulers/partition.hpp"

namespace eo {

// schedule.partition and schedule.order of the config.
struct ScheduleSpec {
  Partition partition = Partition::static_split;
  CurveOrder order = CurveOrder::hilbert;
  // slurm-array: this process's task (from the environment; see array_task_from_env).
  std::optional<ArrayTask> task;
};

class TileSource {
 public:
  // Collective (dynamic hand-out creates a counter every rank shares).
  TileSource(const ScheduleSpec& spec, const Plan& plan, const Comm& comm);
  // This rank's next tile, an index into the plan's tiles; nothing when it has no more.
  std::optional<std::size_t> next();
  // The tiles of the whole job, all ranks together: the plan's, or an array task's block.
  const std::vector<std::size_t>& job_tiles() const { return job_; }

 private:
  std::optional<DynamicQueue> queue_;
  std::vector<std::size_t> list_;
  std::size_t pos_ = 0;
  std::vector<std::size_t> job_;
};

}  // namespace eo
