#include "pipeline/core/log.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace eo {

void setup_logging(int rank, const std::string& level) {
  spdlog::drop(fmt::format("r{}", rank));
  auto logger = spdlog::stderr_color_mt(fmt::format("r{}", rank));
  logger->set_pattern(fmt::format("%H:%M:%S [r{}] [%l] %v", rank));
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

}  // namespace eo
