#include "pipeline/core/lock.hpp"

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

namespace {

int open_lock_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open the lock {}: {}", file.string(), std::strerror(errno)));
  return fd;
}

// The holder's note: a line for people, then `group=` for the tasks of an array.
struct Note {
  std::string who, group;
};

Note read_note(const std::filesystem::path& file) {
  std::ifstream in(file);
  Note note;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("group=", 0) == 0)
      note.group = line.substr(6);
    else if (note.who.empty())
      note.who = line;
  }
  return note;
}

}  // namespace

OutputLock::OutputLock(const std::filesystem::path& file, const std::string& what, const std::string& group) {
  std::filesystem::create_directories(file.parent_path());
  setup_fd_ = open_lock_file(file.string() + ".setup");
  fd_ = open_lock_file(file);
  auto release = [&] {
    ::close(fd_);
    ::close(setup_fd_);
    fd_ = setup_fd_ = -1;
  };
  auto fail = [&](const std::string& message) {
    release();
    throw std::runtime_error(message);
  };
  if (::flock(setup_fd_, LOCK_EX) != 0) fail(fmt::format("cannot lock {}.setup: {}", file.string(), std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) {
    first_ = true;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    std::string text = fmt::format("{} by pid {} on {} since {:%Y-%m-%dT%H:%M:%SZ}\n", what, ::getpid(), host,
                                   fmt::gmtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())));
    if (!group.empty()) text += "group=" + group + "\n";
    // Who holds it, for the message of a refused run; the lock holds without the note.
    if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, text.data(), text.size(), 0);
    // Not atomic, but every other taker waits on the setup lock meanwhile.
    if (!group.empty() && ::flock(fd_, LOCK_SH) != 0)
      fail(fmt::format("cannot share the lock {}: {}", file.string(), std::strerror(errno)));
  } else {
    const int err = errno;
    if (err != EWOULDBLOCK) fail(fmt::format("cannot lock {}: {}", file.string(), std::strerror(err)));
    const Note holder = read_note(file);
    const bool joins = !group.empty() && holder.group == group && ::flock(fd_, LOCK_SH | LOCK_NB) == 0;
    if (!joins) {
      release();
      throw LockedError(fmt::format("{} is in use by another run ({}); wait for it to finish, or use another output. "
                                    "The lock is {}",
                                    file.parent_path().string(), holder.who.empty() ? "unknown" : holder.who,
                                    file.string()));
    }
  }
  if (group.empty()) setup_done();  // a run alone needs no ordering: others are refused
}

std::string lock_holder(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";  // never taken
  // flock(2) needs no write access: an exclusive try fails while any holder has it.
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  if (!held) return "";
  const Note holder = read_note(file);
  return holder.who.empty() ? "unknown" : holder.who;
}

void OutputLock::setup_done() {
  if (setup_fd_ >= 0) ::close(setup_fd_);
  setup_fd_ = -1;
}

OutputLock::~OutputLock() {
  setup_done();
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace eo
