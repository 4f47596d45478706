#pragma once
// A small valid config for the tests of the config and its choices: one area, 40 m pixels.

#include <string>

namespace eo::test {

inline const std::string kSmallConfig = R"(name: t
grid:
  pixel_size: 40
aois:
  - name: a
    wkt: POLYGON((14 45, 15 45, 15 46, 14 46, 14 45))
)";

}  // namespace eo::test
