#pragma once
// `pretrain` as the CLI runs it, without LibTorch in the interface (DESIGN.md §6).

#include <functional>
#include <string>

#include "pipeline/core/config.hpp"
#include "schedulers/comm.hpp"

namespace eo {

struct PretrainReport {
  int first_step = 0;  // > 0 when resumed from a checkpoint
  int steps = 0;
  double first_loss = 0, last_loss = 0;
  std::int64_t parameters = 0;
  std::size_t chips = 0;
  double seconds = 0;
  std::string checkpoint;  // the last one written
};

// Trains on OUTPUT/chips/*.h5 with OUTPUT/normalisation.json; checkpoints, the loss
// curve (CSV) and a report go to OUTPUT/pretrain/. Resumes from the newest intact
// checkpoint by itself. Collective over `comm`.
PretrainReport run_pretraining(const Config& config, const Comm& comm, int threads);

}  // namespace eo
