#pragma once
// A file's bytes as a string, for tests that check what a command wrote.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace eo::test {

inline std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace eo::test
