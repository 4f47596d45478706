#pragma once
// Runs a command line through the shell and returns its exit code and merged output.

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace eo::test {

struct RunResult {
  int code = -1;
  std::string output;
};

inline RunResult run(const std::string& command) {
  RunResult r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe)) r.output += buf.data();
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace eo::test
