#include "pipeline/lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

namespace eo {

OutputLock::OutputLock(const std::filesystem::path& file, const std::string& what) {
  std::filesystem::create_directories(file.parent_path());
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open the lock {}: {}", file.string(), std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) throw std::runtime_error(fmt::format("cannot lock {}: {}", file.string(), std::strerror(err)));
    std::ifstream in(file);
    std::stringstream holder;
    holder << in.rdbuf();
    std::string who = holder.str();
    while (!who.empty() && who.back() == '\n') who.pop_back();
    throw LockedError(fmt::format("{} is in use by another run ({}); wait for it to finish, or use another output. "
                                  "The lock is {}",
                                  file.parent_path().string(), who.empty() ? "unknown" : who, file.string()));
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string text = fmt::format("{} by pid {} on {} since {:%Y-%m-%dT%H:%M:%SZ}\n", what, ::getpid(), host,
                                       fmt::gmtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())));
  // Who holds it, for the message of a refused run; the lock holds without the note.
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, text.data(), text.size(), 0);
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace eo
