// The stages module's entry points (pipeline/stages_module.hpp): the only symbols it
// exports. Exceptions pass through to the executable's main, which reports them.

#include "pipeline/commands/commands.hpp"
#include "pipeline/stages_module.hpp"

#define EO_MODULE_ENTRY(command, Options)                                                 \
  extern "C" __attribute__((visibility("default"))) int eo_run_##command(const eo::Options& opts) { \
    return eo::run_##command(opts);                                                         \
  }
EO_STAGES_MODULE_COMMANDS(EO_MODULE_ENTRY)
#undef EO_MODULE_ENTRY
