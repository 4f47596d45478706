#pragma once
// The lock of DESIGN.md §5: one run at a time writes an output. An flock(2) on a file in
// the output, held for the life of the object: the kernel drops it when the process
// ends however it ends, so a killed run never leaves a stale lock behind.

#include <filesystem>
#include <stdexcept>
#include <string>

namespace eo {

class LockedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class OutputLock {
 public:
  // Throws LockedError saying who holds the lock (host, pid, command, since when).
  OutputLock(const std::filesystem::path& file, const std::string& what);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace eo
