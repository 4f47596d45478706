#pragma once
// A fresh, empty folder for one test process: <tmp>/eo_test_<name>_<pid>.

#include <unistd.h>

#include <filesystem>
#include <string>

namespace eo::test {

inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("eo_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace eo::test
