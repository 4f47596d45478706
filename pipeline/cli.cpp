#include "pipeline/cli.hpp"

namespace eo {

void add_common_options(CLI::App& cmd, CommonOptions& opts) {
  cmd.add_option("CONFIG", opts.config, "YAML config; the embedded demo config when omitted")
      ->check(CLI::ExistingFile);
  cmd.add_option("--output", opts.output, "output folder (overrides the config's 'output')");
  cmd.add_flag("--print-config", opts.print_config, "print the resolved config with defaults filled in, then exit");
  auto* q = cmd.add_flag("-q,--quiet", opts.quiet, "log warnings and errors only");
  auto* v = cmd.add_flag("-v,--verbose", opts.verbose, "log debug messages too");
  q->excludes(v);
}

}  // namespace eo

#include <fmt/format.h>
#include <fstream>
#include <iostream>

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
