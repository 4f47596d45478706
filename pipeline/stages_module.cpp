// The executable's side of the stages module (pipeline/stages_module.hpp): each command
// that runs the stages loads the module, once, and calls its entry point.

#include "pipeline/stages_module.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>

#include "pipeline/commands/commands.hpp"

namespace eo {

namespace {

// The module beside the executable, whatever the working directory or PATH.
void* stages_module() {
  static void* const handle = [] {
    const auto file = std::filesystem::read_symlink("/proc/self/exe").parent_path() / EO_STAGES_MODULE_FILE;
    // Lazily bound, as the executable's own libraries were: binding every symbol of the
    // module's libraries up front cost 0.1 s more per call. The module is linked with
    // --no-undefined, so no call can find a symbol missing.
    void* h = dlopen(file.c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (!h) throw std::runtime_error(fmt::format("cannot load the stages module {}: {}", file.string(), dlerror()));
    return h;
  }();
  return handle;
}

template <class Options>
int call_module(const char* entry, const Options& opts) {
  using Entry = int (*)(const Options&);
  auto fn = reinterpret_cast<Entry>(dlsym(stages_module(), entry));
  if (!fn) throw std::runtime_error(fmt::format("the stages module {} has no {}: it is not this executable's build",
                                                EO_STAGES_MODULE_FILE, entry));
  return fn(opts);
}

}  // namespace

#define EO_CALL_MODULE(command, Options) \
  int run_##command(const Options& opts) { return call_module("eo_run_" #command, opts); }
EO_STAGES_MODULE_COMMANDS(EO_CALL_MODULE)
#undef EO_CALL_MODULE

}  // namespace eo
