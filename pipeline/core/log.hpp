#pragma once
// Rank-prefixed logging on stderr: one line per event, "[r3] [info] ...".

#include <spdlog/spdlog.h>
#include <string>

namespace eo {

// level: debug | info | warn | error. --quiet and --verbose override the config's level.
void setup_logging(int rank, const std::string& level);

}  // namespace eo
