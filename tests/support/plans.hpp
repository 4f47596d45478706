#pragma once
// Plans of the shipped configs, for the scheduler tests.

#include <set>

#include "pipeline/core/config.hpp"
#include "pipeline/core/plan.hpp"

namespace eo::test {

inline Plan plan_of(const std::string& config_file) { return make_plan(load_aois(load_config(config_file))); }

inline Plan paper_plan() {
  static const Plan plan = plan_of(EO_SOURCE_DIR "/configs/paper.yaml");
  return plan;
}

inline Plan demo_plan() { return make_plan(load_aois(load_config_or_demo(""))); }

}  // namespace eo::test
