// What every command does first: its config resolved and its logging set up.

#include <fmt/format.h>
#include <fstream>
#include <iostream>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/log.hpp"

namespace eo {

std::optional<Config> start_command(const CommonOptions& opts, int rank) {
  Config config = load_config_or_demo(opts.config);
  if (!opts.output.empty()) config.output = opts.output;
  if (opts.print_config) {
    if (rank == 0) std::cout << to_yaml(config);
    return std::nullopt;
  }
  setup_logging(rank, opts.quiet ? LogLevel::warn : opts.verbose ? LogLevel::debug : config.log_level);
  return config;
}

void write_resolved_config(const Config& config, const std::filesystem::path& file) {
  write_atomically(file, "# resolved from " + config.source + " by eo-pipeline " EO_VERSION "\n" + to_yaml(config));
}

}  // namespace eo
