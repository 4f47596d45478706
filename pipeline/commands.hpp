#pragma once
// One function per eo-pipeline command; each returns the process exit code.

#include "pipeline/cli.hpp"

namespace eo {

struct PlanOptions {
  CommonOptions common;
  int ranks = 0;  // 0: no partition preview
  std::string partition;  // empty: the config's
  std::string order;      // empty: the config's
  std::string tiles_file;  // empty: <output>/plan/tiles.jsonl
  bool json = false;
};
void add_plan_command(CLI::App& app, PlanOptions& opts);
int run_plan(const PlanOptions& opts);

}  // namespace eo
