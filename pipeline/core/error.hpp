#pragma once
// Errors that name where they come from (DESIGN.md §7). A stage names itself once, in
// the error it throws (PDAL's Stage::throwError); the tile loop adds the tile and the
// rank once, so a failed tile's message reads "tile T: rank R: stage: what".

#include <stdexcept>
#include <string>

namespace eo {

class StageError : public std::runtime_error {
 public:
  StageError(const std::string& stage, const std::string& what) : std::runtime_error(stage + ": " + what), stage_(stage) {}
  const std::string& stage() const { return stage_; }

 private:
  std::string stage_;
};

// The output (the cube, a chip store's folder, the journal) could not be written: a full
// disk, a lost mount. Not the tile's fault, so the tile is not journalled as failed: the
// rank stops, and a later run resumes its tiles.
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace eo
