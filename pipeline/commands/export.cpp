// `eo-pipeline export`: the model `run` would use, as TorchScript encoders with their
// normalisation statistics, for PyTorch users and for `run` with model.torchscript.

#include <fmt/format.h>
#include <iostream>

#include "pipeline/commands/commands.hpp"
#include "pipeline/driver/inputs.hpp"
#include "schedulers/comm.hpp"

namespace eo {

int run_export(const ExportOptions& opts) {
  const Comm comm = Comm::world();
  const auto config = start_command(opts.common, comm.rank());
  if (!config) return kExitOk;
  const RunInputs in = load_run_inputs(*config, comm);
  const std::filesystem::path dir = opts.out.empty() ? config->output / "export" / in.model_version : std::filesystem::path(opts.out);
  for (const auto& file : export_model(in.card, in.norm, dir)) std::cout << file.string() << '\n';
  std::cout << fmt::format("export: {} ({}) as TorchScript in {}; run with it through model.torchscript: {}\n",
                           in.model_version, in.card.checkpoint.string(), dir.string(), dir.string());
  return kExitOk;
}

}  // namespace eo
