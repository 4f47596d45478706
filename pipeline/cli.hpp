#pragma once
// The eo-pipeline command line: `eo-pipeline <command> [CONFIG] [options]`.

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "pipeline/core/choice.hpp"

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

// An option whose value is a choice: checked against the choice's table (the message
// lists the valid names) and parsed here, once. Empty when not given.
// `Target` is E (with a default) or std::optional<E>.
template <class E, class Target>
CLI::Option* add_choice_option(CLI::App& cmd, const std::string& name, Target& target, const std::string& help) {
  return cmd.add_option_function<std::string>(name, [&target](const std::string& v) { target = *parse_choice<E>(v); }, help)
      ->check(CLI::Validator([](std::string& v) { return choice_problem<E>(v); }, "{" + choice_list<E>() + "}"));
}
template <class E>
CLI::Option* add_choice_option(CLI::App& cmd, const std::string& name, std::optional<E>& target, const std::string& help) {
  return add_choice_option<E, std::optional<E>>(cmd, name, target, help);
}
template <class E>
CLI::Option* add_choice_option(CLI::App& cmd, const std::string& name, E& target, const std::string& help) {
  return add_choice_option<E, E>(cmd, name, target, help);
}

// Exit codes (DESIGN.md §7).
inline constexpr int kExitOk = 0;
inline constexpr int kExitTilesFailed = 1;
inline constexpr int kExitUsage = 2;
// `finalize`: tiles are still to do (a task was cancelled or died, or failed tiles have
// attempts left): resubmit the tasks it names.
inline constexpr int kExitWorkLeft = 3;

}  // namespace eo
