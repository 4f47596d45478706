#include "pipeline/core/failpoint.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace eo {

void failpoint(const char* name) {
  static const std::string spec = [] {
    const char* v = std::getenv("EO_FAILPOINT");
    return std::string(v ? v : "");
  }();
  if (spec.empty()) return;
  const auto at = spec.find('@'), eq = spec.find('=');
  if (at == std::string::npos || eq == std::string::npos || spec.compare(0, at, name) != 0) return;
  static std::atomic<long> hits{0};
  if (++hits != std::stol(spec.substr(at + 1, eq - at - 1))) return;
  const std::string action = spec.substr(eq + 1);
  if (action == "kill") ::raise(SIGKILL);
  if (action.rfind("sleep:", 0) == 0) {
    // Said, so that a test can act at the moment the process is held here.
    std::fprintf(stderr, "failpoint %s: sleeping %s s\n", name, action.substr(6).c_str());
    std::fflush(stderr);
    ::sleep(static_cast<unsigned>(std::stoul(action.substr(6))));
  }
}

}  // namespace eo
