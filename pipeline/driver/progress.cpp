#include "pipeline/driver/progress.hpp"

#include <spdlog/spdlog.h>

#include "pipeline/core/resources.hpp"

namespace eo {

Progress::Progress(const Comm& comm, std::size_t total)
    : tiles_(comm), chips_(comm), worked_(comm), rank_(comm.rank()), total_(total) {}

void Progress::skipped() {
  tiles_.fetch_add(1);
  report(false);
}

void Progress::finished(int chips) {
  tiles_.fetch_add(1);
  worked_.fetch_add(1);
  chips_.fetch_add(chips);
  report(false);
}

void Progress::report(bool force) {
  if (rank_ != 0) return;
  const double now = seconds_since(t0_);
  if (!force && now - last_ < 5) return;
  last_ = now;
  const std::int64_t tiles = tiles_.fetch_add(0), chips = chips_.fetch_add(0), worked = worked_.fetch_add(0);
  if (tiles == said_) return;  // the last line said it already
  said_ = tiles;
  const double eta =
      worked > 0 ? now / static_cast<double>(worked) * static_cast<double>(static_cast<std::int64_t>(total_) - tiles) : 0;
  spdlog::info("progress: {}/{} tiles, {} chips, {:.1f} chips/s, ETA {:.0f} s", tiles, total_, chips,
               now > 0 ? static_cast<double>(chips) / now : 0.0, eta);
}

}  // namespace eo
