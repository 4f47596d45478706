// `mpirun eo-pipeline pretrain`: contrastive pretraining of the multi-modal model on the
// chip stores, data-parallel over the ranks, resuming from its last checkpoint.

#include <fmt/format.h>
#include <iostream>
#include <spdlog/spdlog.h>
#include <thread>

#include "pipeline/commands/commands.hpp"
#include "pipeline/driver/inputs.hpp"
#include "schedulers/comm.hpp"
#include "stages/model/pretrain.hpp"

namespace eo {

int run_pretrain(const PretrainOptions& opts) {
  const Comm comm = Comm::world();
  const auto config = start_command(opts.common, comm.rank());
  if (!config) return kExitOk;
  if (comm.rank() == 0) write_resolved_config(*config, config->output / "pretrain" / "config.yaml");
  const PretrainSpec spec{config->pretrain, config->model, config->data.modalities, config->data.min_valid_fraction,
                          config->output, config_hash(*config), config->source};
  const PretrainReport r = run_pretraining(spec, comm, threads_per_rank(config->pretrain.threads, comm));
  if (comm.rank() == 0)
    std::cout << fmt::format("pretrain: {} steps{} on {} chips, loss {:.4f} -> {:.4f} in {:.1f} s; checkpoint {}\n",
                             r.steps, r.first_step > 0 ? fmt::format(" (resumed at {})", r.first_step) : "", r.chips,
                             r.first_loss, r.last_loss, r.seconds, r.checkpoint);
  return kExitOk;
}

}  // namespace eo
