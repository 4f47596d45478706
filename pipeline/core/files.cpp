#include "pipeline/core/files.hpp"

#include "pipeline/core/config.hpp"  // ConfigError

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <vector>

#include "pipeline/core/failpoint.hpp"
#include "pipeline/core/hash.hpp"

namespace eo {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& file, const char* what) {
  throw std::runtime_error(fmt::format("cannot write {}: {}: {}", file.string(), what, std::strerror(errno)));
}

void fsync_path(const fs::path& path, int flags, const fs::path& file, const char* what) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail(file, what);
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    fail(file, what);
  }
  ::close(fd);
}

}  // namespace

PendingFile::PendingFile(fs::path file) : file_(std::move(file)) {
  const fs::path dir = file_.has_parent_path() ? file_.parent_path() : fs::path(".");
  fs::create_directories(dir);
  temporary_ = dir / fmt::format("{}{}.{}", kTemporaryPrefix, ::getpid(), file_.filename().string());
  std::error_code ec;
  fs::remove(temporary_, ec);  // this process's own leftover of an earlier attempt
}

PendingFile::~PendingFile() {
  if (published_) return;
  std::error_code ec;
  fs::remove(temporary_, ec);
}

void PendingFile::publish() {
  failpoint("publish-written");
  if (!fs::is_symlink(temporary_)) fsync_path(temporary_, O_RDONLY, file_, "flushing to disk");
  failpoint("publish-synced");
  std::error_code ec;
  fs::rename(temporary_, file_, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot write {}: renaming into place: {}", file_.string(), ec.message()));
  published_ = true;
  failpoint("publish-renamed");
  fsync_path(temporary_.parent_path(), O_RDONLY | O_DIRECTORY, file_, "flushing its folder to disk");
}

void publish_file(const fs::path& file, const std::function<void(const fs::path&)>& write) {
  PendingFile pending(file);
  write(pending.temporary());
  pending.publish();
}

void write_atomically(const fs::path& file, std::string_view text) {
  publish_file(file, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out.flush()) fail(file, "writing its temporary");
  });
}

std::string content_hash(std::string_view content) { return Hasher().add(content).hex(); }

WrittenFile written_file(const fs::path& file, std::string_view content) {
  return {file, static_cast<std::int64_t>(content.size()), content_hash(content)};
}

int remove_stale_temporaries(const fs::path& dir, bool recursive) {
  if (!fs::is_directory(dir)) return 0;
  std::vector<fs::path> stale;
  auto consider = [&](const fs::directory_entry& e) {
    if (e.path().filename().string().starts_with(kTemporaryPrefix) && !e.is_directory()) stale.push_back(e.path());
  };
  if (recursive)
    for (const auto& e : fs::recursive_directory_iterator(dir)) consider(e);
  else
    for (const auto& e : fs::directory_iterator(dir)) consider(e);
  for (const auto& p : stale) {
    spdlog::debug("removing {}, left by an interrupted run", p.string());
    fs::remove(p);
  }
  return static_cast<int>(stale.size());
}

void refuse_output_over_input(const fs::path& output, const fs::path& input, const std::string& option) {
  std::error_code ec;
  const bool same = fs::exists(output, ec) ? fs::equivalent(output, input, ec)
                                           : fs::weakly_canonical(output, ec) == fs::weakly_canonical(input, ec);
  if (same)
    throw ConfigError(fmt::format("the output {} is the input {} ({}): writing it would replace the input; "
                                  "give another output", output.string(), input.string(), option));
}

std::string file_hash(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read {}", file.string()));
  std::vector<char> piece(1 << 20);
  Hasher h;
  while (in.read(piece.data(), static_cast<std::streamsize>(piece.size())) || in.gcount() > 0)
    h.add(std::string_view(piece.data(), static_cast<std::size_t>(in.gcount())));
  return h.hex();
}

namespace {

template <class Input>
nlohmann::json parse_json_limited(Input&& input, const std::string& source) {
  bool too_deep = false;
  // The parser itself keeps its own stack; the limit keeps the documents that readers
  // walk (and nlohmann's copies and comparisons, which recurse) shallow.
  const auto limit = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxJsonDepth) too_deep = true;
    return !too_deep;
  };
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(std::forward<Input>(input), limit);
  } catch (const nlohmann::json::exception& e) {
    if (!too_deep) throw std::runtime_error(fmt::format("{}: not JSON: {}", source, e.what()));
  }
  if (too_deep)
    throw std::runtime_error(fmt::format("{}: nested more than {} levels deep; no input eo-pipeline reads needs that", source,
                                         kMaxJsonDepth));
  return doc;
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& source) { return parse_json_limited(text, source); }

nlohmann::json read_json_file(const std::filesystem::path& file) {
  require_regular_file(file);
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open the file", file.string()));
  return parse_json_limited(in, file.string());
}

void require_regular_file(const std::filesystem::path& file) {
  std::error_code ec;
  const auto type = fs::status(file, ec).type();
  if (type == fs::file_type::not_found) throw std::runtime_error(fmt::format("{}: no such file", file.string()));
  // A FIFO or a device would block the read, or never end.
  if (type != fs::file_type::regular && type != fs::file_type::none)
    throw std::runtime_error(fmt::format("{}: not a regular file (a FIFO, a device or a folder)", file.string()));
}

nlohmann::json read_user_json_file(const std::filesystem::path& file) {
  try {
    return read_json_file(file);
  } catch (const std::runtime_error& e) {
    throw ConfigError(e.what());
  }
}

}  // namespace eo
