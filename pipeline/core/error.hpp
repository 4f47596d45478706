#pragma once
// Errors that name where they come from (DESIGN.md §7). A stage names itself once, in
// the error it throws (PDAL's Stage::throwError); the tile loop adds the tile and the
// rank once, so a failed tile's message reads "tile T: rank R: stage: what".

#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace eo {

// `text` cut to its first `limit` characters, with how long it was: a message quotes what
// it was given, and never a megabyte of it.
inline std::string clipped(std::string_view text, std::size_t limit = 200) {
  if (text.size() <= limit) return std::string(text);
  return std::string(text.substr(0, limit)) + "... (" + std::to_string(text.size()) + " characters in all)";
}

// A configuration problem: the user's config, an option or a file they named is at
// fault. The command stops at once with exit code 2 (DESIGN.md §7).
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The stage an error names, and what it says apart from that name.
class StageNamed {
 public:
  StageNamed(std::string stage, std::string detail) : stage_(std::move(stage)), detail_(std::move(detail)) {}
  virtual ~StageNamed() = default;
  const std::string& stage() const { return stage_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string stage_, detail_;
};

// "stage: what": what went wrong in a stage, named by the stage.
class StageError : public std::runtime_error, public StageNamed {
 public:
  StageError(const std::string& stage, const std::string& detail)
      : std::runtime_error(stage + ": " + detail), StageNamed(stage, detail) {}
};

// A stage's error that the user's settings or files are at fault for (a model path, a
// labels file an option names): a ConfigError (exit code 2) that names its stage.
class StageConfigError : public ConfigError, public StageNamed {
 public:
  StageConfigError(const std::string& stage, const std::string& detail)
      : ConfigError(stage + ": " + detail), StageNamed(stage, detail) {}
};

// What an error says without the stage that named itself in it: for a message that puts
// context (a file, a modality) before it.
inline std::string detail_of(const std::exception& e) {
  if (const auto* s = dynamic_cast<const StageNamed*>(&e)) return s->detail();
  return e.what();
}

// `e` again with `context` before what it says: in the stage that named itself in it,
// else in `stage`; a configuration error stays one.
[[noreturn]] inline void rethrow_with_context(const std::exception& e, const std::string& stage,
                                              const std::string& context) {
  if (const auto* s = dynamic_cast<const StageConfigError*>(&e)) throw StageConfigError(s->stage(), context + ": " + s->detail());
  if (const auto* s = dynamic_cast<const StageError*>(&e)) throw StageError(s->stage(), context + ": " + s->detail());
  throw StageError(stage, context + ": " + e.what());
}

// The output (the cube, a chip store's folder, the journal) could not be written: a full
// disk, a lost mount. Not the tile's fault, so the tile is not journalled as failed: the
// rank stops, and a later run resumes its tiles.
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace eo
