#pragma once
// The outputs checked against the journal (`status --verify`, `run --verify`): every file
// that the latest done record of a tile lists is read back and compared with the size
// and hash it was written with. A file changed since, cut short or gone is damage; a run
// with --verify journals the damaged tiles as failed, so that it redoes them.

#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/core/journal.hpp"

namespace eo {

struct Damage {
  std::string tile, problem;  // the problem names the file
};

struct Verification {
  int tiles = 0, files = 0;
  int unrecorded = 0;  // done tiles whose records list no files (older versions wrote none)
  std::vector<Damage> damaged;
};

// `output` holds the journal; files recorded relative to it are read there.
Verification verify_outputs(const std::filesystem::path& output, JournalStage stage);

// Journals each damaged tile as failed, under a fingerprint of its own: no attempt of
// the tile's real fingerprint is used up, and the next run processes it.
void journal_damage(const std::filesystem::path& output, JournalStage stage, const std::vector<Damage>& damaged);

}  // namespace eo
