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

void add_serve_command(CLI::App& app, ServeOptions& opts) {
  auto* cmd = app.add_subcommand("serve", "the cube's explorer in a web browser: its map, chips, their provenance, the "
                                          "chips most like them, and few-shot maps from your labels");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--cube", opts.cube, "the cube (default: run.cube, else OUTPUT/cube.zarr)");
  cmd->add_option("--host", opts.host, "the address to listen on (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", opts.port, "the port (default 8765; 0: any free one)")->check(CLI::Range(0, 65535));
  cmd->add_option("--threads", opts.threads, "threads of an exact search (default: every core)")->check(CLI::PositiveNumber);
}

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
