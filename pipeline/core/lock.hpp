#pragma once
// The lock of DESIGN.md §5: one run at a time writes an output. An flock(2) on a file in
// the output, held for the life of the object: the kernel drops it when the process
// ends however it ends, so a killed run never leaves a stale lock behind.
//
// The tasks of one SLURM job array are one run: they share the lock (each writes its
// own tiles), and any other run is refused while one of them holds it. A second file,
// `<lock>.setup`, orders the tasks while one of them sets the output up.

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
  // `group` empty: the lock alone. Otherwise shared with the holders of the same group
  // (a SLURM array job id). Throws LockedError saying who holds the lock (host, pid,
  // command, since when).
  OutputLock(const std::filesystem::path& file, const std::string& what, const std::string& group = "");
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

  // Nobody held the lock when this one took it: what crashed runs left behind may be
  // cleaned up, since nobody is writing.
  bool first() const { return first_; }
  // The output is set up: the next holder of the group may go on. Until then (or the
  // destructor) other holders wait in the constructor.
  void setup_done();

 private:
  int fd_ = -1, setup_fd_ = -1;
  bool first_ = false;
};

// Who holds the lock `file` (its holder's note), or "" when nobody does. Reads only, so
// it answers on a read-only output, and takes the lock for no longer than the test.
std::string lock_holder(const std::filesystem::path& file);

}  // namespace eo
