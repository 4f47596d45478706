#pragma once
// The one tile loop of every per-tile command (`run`, `prepare`; DESIGN.md §2, §5):
//
//   tile source -> journal decision -> read (prefetched) -> the command's sink
//     (begin, add_row per row of chips, finish) -> journal record -> counters
//     -> the job's totals, gathered from every rank -> report -> exit code
//
// A command brings its set-up and its sink; the loop does the rest, the same way for all.

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pipeline/core/chip_batch.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/journal.hpp"
#include "pipeline/core/plan.hpp"
#include "pipeline/driver/prefetcher.hpp"
#include "schedulers/comm.hpp"
#include "schedulers/tile_source.hpp"

namespace eo {

// What a tile came to, as its sink says at the end.
struct TileOutcome {
  TileStatus status = TileStatus::done;
  int chips = 0, nodata_chips = 0;
  std::string error;   // failed: why (the stage names itself; the loop adds tile and rank)
  std::vector<WrittenFile> files;  // what the tile wrote, for the journal
};

// What one command does with the rows of each tile.
class TileSink {
 public:
  virtual ~TileSink() = default;
  // A tile starts, with the input fingerprint its journal record will carry.
  virtual void begin(const TilePlan& tile, const std::string& fingerprint) = 0;
  // One row of the tile's chips. Throwing fails the tile: its later rows are not passed on.
  virtual void add_row(const ChipBatch& row) = 0;
  // Writes what the tile came to. `error` is why it failed (reading, or add_row), empty
  // when it did not. Throws only when the output cannot be written (a full disk): the
  // tile is then not journalled, and this rank stops (OutputError).
  virtual TileOutcome finish(const std::string& error) = 0;

  // A sink that embeds the chips of several tiles together (Embedder::Stream) defers:
  // its finish() only hands the tile over (what it returns is ignored), and completed()
  // later gives the outcomes of the tiles handed over, oldest first, once their outputs
  // are written. The loop journals a tile only then, so a crash redoes what was pending.
  virtual bool deferred() const { return false; }
  // Outcomes of tiles handed over whose outputs are now written, in the order of their
  // finish(); with `all`, of every one (the loop's end). Throws as finish() does.
  virtual std::vector<TileOutcome> completed(bool /*all*/) { return {}; }
};

struct TileLoopSpec {
  JournalStage stage = JournalStage::run;  // names the journal's files
  std::filesystem::path journal;  // OUTPUT/journal
  int max_attempts = 3;           // failed this often with one fingerprint: left failed
  bool prefetch = true;           // read the next tile while the sink works on this one
  // The tile's input fingerprint (DESIGN.md §5): a tile done with the same one is skipped.
  std::function<std::string(const TilePlan&)> fingerprint;
  std::string config_hash, model_hash;  // recorded with each tile
  // Names in the report: the chips the sink kept, and the four stages' seconds (reading,
  // the sink's rows, the sink's finish, the sink waiting for rows).
  std::string chips_key = "chips";
  std::array<std::string, 4> seconds_keys = {"read_warp_chip", "process", "write", "waiting_for_data"};
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();  // the command's start
};

// One rank's counts.
struct RankStats {
  std::int64_t done = 0, nodata = 0, failed = 0, skipped = 0, left_failed = 0, chips = 0, nodata_chips = 0;
  double read_s = 0, process_s = 0, write_s = 0, wait_s = 0;
  std::vector<std::int64_t> rss_mib_after_tile;  // memory must not grow with the tiles done
  std::string stopped;                           // why this rank stopped early (an OutputError)
};

struct LoopResult {
  RankStats mine;
  // The whole job's report (the same keys for every command), complete on rank 0.
  nlohmann::json report;
  int exit_code = 0;  // 0 all tiles done or without data, 1 some failed or a rank stopped
};

// Runs the loop on this rank's tiles. Collective: every rank calls it.
LoopResult run_tile_loop(const Comm& comm, const Plan& plan, TileSource& tiles, const TileReader& read, TileSink& sink,
                         const TileLoopSpec& spec);

// The report's summary for people: the counts, each failure, stopped ranks.
// `chips_verb`: what the sink did with its chips ("embedded", "written").
std::string summary_text(const TileLoopSpec& spec, const nlohmann::json& report, const std::string& chips_verb);

// Publishes the report, or logs why it cannot (the summary still says it all).
void write_report(const std::filesystem::path& file, const nlohmann::json& report);

}  // namespace eo
