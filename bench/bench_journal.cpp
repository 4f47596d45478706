// Benchmark: a start's journal reading against the number of past runs (issue 17). For
// each count of past runs of RANKS ranks (a first run recording every tile, then nightly
// runs in which each rank redoes one tile), two journals: as every run left it before
// compaction (one file per rank per run) and as runs leave it now (compacted at each
// run's end). Prints JSON: files a start opens, its reading time from a cold and a warm
// page cache, and the last run's compaction time.
// Each journal is left in DIR/<runs>-<files or compacted>/journal for `status` to read.
//
//   bench_journal DIR RANKS TILES RUNS...

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>

#include "pipeline/core/journal.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void drop_page_cache() {
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3\n";  // root only; warm numbers otherwise
}

eo::JournalRecord record(int tile, int run) {
  eo::JournalRecord r;
  r.tile = fmt::format("10N_T{:03}_T{:03}", tile / 100, tile % 100);
  r.status = eo::TileStatus::done;
  r.fingerprint = fmt::format("{:016x}", static_cast<unsigned>(tile * 7919 + run));
  r.config_hash = "c0ffee";
  r.model_hash = "m0de1";
  r.chips = 100;
  return r;
}

// One past run: every rank's file. Returns the compaction's seconds (0 when not compacting).
double one_run(const fs::path& dir, int run, int ranks, int tiles, bool compact) {
  for (int rank = 0; rank < ranks; ++rank) {
    eo::JournalWriter w(dir, eo::JournalStage::run, rank, fmt::format("bench{:05}", run));
    if (run == 0)
      for (int t = rank; t < tiles; t += ranks) w.append(record(t, run));
    else
      w.append(record((run * ranks + rank) % tiles, run));
  }
  if (!compact) return 0;
  const auto t0 = Clock::now();
  eo::compact_journal(dir, eo::JournalStage::run);
  return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: bench_journal DIR RANKS TILES RUNS...\n";
    return 2;
  }
  const fs::path root = argv[1];
  const int ranks = std::atoi(argv[2]), tiles = std::atoi(argv[3]);
  nlohmann::json out = {{"ranks", ranks}, {"tiles", tiles}, {"cases", nlohmann::json::array()}};
  for (int a = 4; a < argc; ++a) {
    const int runs = std::atoi(argv[a]);
    for (const bool compact : {false, true}) {
      const fs::path dir = root / fmt::format("{}-{}", runs, compact ? "compacted" : "files") / "journal";
      fs::remove_all(dir);
      double compaction_s = 0;
      for (int run = 0; run < runs; ++run) compaction_s = one_run(dir, run, ranks, tiles, compact);
      int opened = 0;
      drop_page_cache();
      auto t0 = Clock::now();
      const auto history = eo::read_journal(dir, eo::JournalStage::run, &opened);
      const double cold = seconds_since(t0);
      t0 = Clock::now();
      eo::read_journal(dir, eo::JournalStage::run);
      const double warm = seconds_since(t0);
      // Before: every rank read every file at its start. Now: rank 0 reads and broadcasts.
      const long per_start = compact ? opened : static_cast<long>(opened) * ranks;
      out["cases"].push_back({{"past_runs", runs}, {"journal", compact ? "compacted" : "one file per rank per run"},
                              {"files_in_journal", opened}, {"files_opened_per_start_all_ranks", per_start},
                              {"tiles_recorded", history.size()}, {"read_cold_s", cold}, {"read_warm_s", warm},
                              {"last_compaction_s", compaction_s}});
      std::cerr << out["cases"].back().dump() << '\n';
    }
  }
  std::cout << out.dump(2) << '\n';
}
