#pragma once
// The eo-pipeline command line: `eo-pipeline <command> [CONFIG] [options]`.

#include <CLI/CLI.hpp>
#include <string>

namespace eo {

// Options every command takes.
struct CommonOptions {
  std::string config;  // empty: the embedded demo
  std::string output;  // overrides the config's output
  bool print_config = false;
  bool quiet = false;
  bool verbose = false;
};

void add_common_options(CLI::App& cmd, CommonOptions& opts);

// Exit codes (DESIGN.md §7).
inline constexpr int kExitOk = 0;
inline constexpr int kExitTilesFailed = 1;
inline constexpr int kExitUsage = 2;
// `finalize`: tiles are still to do (a task was cancelled or died, or failed tiles have
// attempts left): resubmit the tasks it names.
inline constexpr int kExitWorkLeft = 3;

}  // namespace eo

#include <optional>

#include "pipeline/core/config.hpp"

namespace eo {

// Loads and checks the config, applies the common overrides and sets up logging for
// `rank`. Returns nothing when --print-config was asked (the config is printed).
std::optional<Config> start_command(const CommonOptions& opts, int rank);

// Writes the resolved config beside a command's outputs.
void write_resolved_config(const Config& config, const std::filesystem::path& file);

}  // namespace eo
