#include "pipeline/core/log.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace eo {

void setup_logging(int rank, LogLevel level) {
  spdlog::drop(fmt::format("r{}", rank));
  auto logger = spdlog::stderr_color_mt(fmt::format("r{}", rank));
  logger->set_pattern(fmt::format("%H:%M:%S [r{}] [%l] %v", rank));
  logger->set_level(level == LogLevel::debug  ? spdlog::level::debug
                    : level == LogLevel::info ? spdlog::level::info
                    : level == LogLevel::warn ? spdlog::level::warn
                                              : spdlog::level::err);
  spdlog::set_default_logger(logger);
}

}  // namespace eo
