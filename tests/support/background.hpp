#pragma once
// A command line run in the background through the shell, for the servers tests start
// (an object store, nginx, `eo-pipeline serve`). The command should `exec` its program, so
// that the signal reaches it and not the shell. Stopped by SIGTERM and waited for when the
// object goes, unless stop() did it first.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace eo::test {

class Background {
 public:
  explicit Background(const std::string& command) : pid_(fork()) {
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~Background() { stop(); }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  // SIGTERM, then its wait status (as waitpid gives it); -1 once stopped.
  int stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_;
};

}  // namespace eo::test
