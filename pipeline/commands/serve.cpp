// `eo-pipeline serve`: the cube's explorer, a page and a JSON API on this machine
// (stages/serve/server.hpp), until Ctrl-C or SIGTERM.

#include <fmt/format.h>
#include <signal.h>

#include <iostream>
#include <thread>

#include "pipeline/commands/commands.hpp"
#include "pipeline/driver/inputs.hpp"
#include "stages/serve/server.hpp"

namespace eo {

namespace fs = std::filesystem;

int run_serve(const ServeOptions& opts) {
  const auto config = start_command(opts.common, 0);
  if (!config) return kExitOk;
  const fs::path cube_path = cube_to_read(*config, opts.cube);
  std::cout << fmt::format("reading {} ...", cube_path.string()) << std::endl;
  const Explorer explorer(cube_path, {threads_per_rank(opts.threads, Comm::serial()), config->fewshot, config->output});
  ExplorerServer server(explorer, {opts.host, opts.port});
  // The signals are taken by this thread alone (sigwait), so that stopping the server
  // happens outside a signal handler, where httplib may be called.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const int port = server.bind();
  std::thread answering([&] { server.serve(); });
  std::cout << fmt::format("serving {} on http://{}:{}/ (Ctrl-C stops); exports go to {}", cube_path.string(), opts.host,
                           port, explorer.exports().string())
            << std::endl;
  int signal = 0;
  sigwait(&stop_signals, &signal);
  server.stop();
  answering.join();
  std::cout << "stopped" << std::endl;
  return kExitOk;
}

}  // namespace eo
