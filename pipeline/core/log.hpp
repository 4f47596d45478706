#pragma once
// Rank-prefixed logging on stderr: one line per event, "[r3] [info] ...".

#include <spdlog/spdlog.h>
#include <string>

#include "pipeline/core/choices.hpp"

namespace eo {

// --quiet and --verbose override the config's level.
void setup_logging(int rank, LogLevel level);

}  // namespace eo
