#include "pipeline/driver/tile_loop.hpp"

#include <deque>
#include <fmt/format.h>
#include <set>
#include <spdlog/spdlog.h>

#include "pipeline/core/error.hpp"
#include "pipeline/core/failpoint.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/journal.hpp"
#include "pipeline/core/resources.hpp"
#include "pipeline/driver/progress.hpp"
#include "stages/ingest/tiff_blocks.hpp"

namespace eo {

namespace {

using Clock = std::chrono::steady_clock;

// One tile at a time from the sink's begin to its finish, and each tile's journal record
// once the sink has written its outputs (at once, or later for a deferring sink).
class TileRun {
 public:
  TileRun(TileSink& sink, JournalWriter& journal, const TileLoopSpec& spec, int rank, RankStats& stats,
          std::function<void(int chips)> recorded)
      : sink_(sink), journal_(journal), spec_(spec), rank_(rank), stats_(stats), recorded_(std::move(recorded)) {}

  void begin(const TilePlan& tile, std::string fingerprint) {
    current_ = {tile.id.str(), std::move(fingerprint), Clock::now()};
    error_.clear();
    try {
      sink_.begin(tile, current_.fingerprint);
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }

  void add_row(const ChipBatch& row) {
    if (!error_.empty()) return;  // the tile has failed already
    const auto t0 = Clock::now();
    try {
      sink_.add_row(row);
    } catch (const std::exception& e) {
      error_ = e.what();
    }
    stats_.process_s += seconds_since(t0);
    collect(false);  // the row may have completed a batch that ends earlier tiles
  }

  // The tile to the sink's finish, and its journal record unless the sink defers it.
  // Throws OutputError when the outputs or the record cannot be written.
  void end(const std::string& read_error, double read_seconds) {
    stats_.read_s += read_seconds;
    if (!read_error.empty() && error_.empty()) error_ = read_error;
    const auto w0 = Clock::now();
    TileOutcome outcome;
    try {
      outcome = sink_.finish(error_);
    } catch (const std::exception& e) {
      throw OutputError(fmt::format("tile {}: rank {}: cannot write the output: {}", current_.tile, rank_, e.what()));
    }
    stats_.write_s += seconds_since(w0);
    if (!sink_.deferred()) return record(current_, outcome);
    pending_.push_back(current_);
    collect(false);
  }

  // Journals the tiles a deferring sink has written since; `all`: every tile handed over.
  void collect(bool all) {
    if (!sink_.deferred()) return;
    const auto w0 = Clock::now();
    std::vector<TileOutcome> outcomes;
    try {
      outcomes = sink_.completed(all);
    } catch (const std::exception& e) {
      throw OutputError(fmt::format("rank {}: cannot write the output: {}", rank_, e.what()));
    }
    stats_.write_s += seconds_since(w0);
    for (const TileOutcome& outcome : outcomes) {
      record(pending_.front(), outcome);
      pending_.pop_front();
    }
  }

 private:
  struct Handed {
    std::string tile, fingerprint;
    Clock::time_point t0;
  };

  void record(const Handed& tile, const TileOutcome& outcome) {
    const auto w0 = Clock::now();
    JournalRecord record;
    record.tile = tile.tile;
    record.fingerprint = tile.fingerprint;
    record.config_hash = spec_.config_hash;
    record.model_hash = spec_.model_hash;
    record.status = outcome.status;
    record.chips = outcome.chips;
    record.nodata_chips = outcome.nodata_chips;
    if (outcome.status == TileStatus::failed)
      record.error = fmt::format("tile {}: rank {}: {}", record.tile, rank_, clipped(outcome.error, 2000));
    // Relative to the output where they are in it, so that the output can be moved.
    const auto output = std::filesystem::absolute(spec_.journal.parent_path()).lexically_normal();
    for (const WrittenFile& f : outcome.files) {
      const auto file = std::filesystem::absolute(f.file).lexically_normal(), inside = file.lexically_relative(output);
      const bool under = !inside.empty() && *inside.begin() != "..";
      record.files.push_back({under ? inside : file, f.bytes, f.hash});
    }
    try {
      failpoint("tile-written");
      record.seconds = seconds_since(tile.t0);
      journal_.append(record);
    } catch (const std::exception& e) {
      throw OutputError(fmt::format("tile {}: rank {}: cannot write the output: {}", record.tile, rank_, e.what()));
    }
    stats_.write_s += seconds_since(w0);
    if (record.status == TileStatus::failed) {
      ++stats_.failed;
    } else {
      ++(record.status == TileStatus::done ? stats_.done : stats_.nodata);
      stats_.chips += record.chips;
      stats_.nodata_chips += record.nodata_chips;
    }
    stats_.rss_mib_after_tile.push_back(static_cast<std::int64_t>(current_rss_mib()));
    if (record.status == TileStatus::failed)
      spdlog::error("{}", record.error);
    else
      spdlog::info("tile {}: {} ({} chips, {} no data, {:.1f} s, {} MiB resident)", record.tile, name_of(record.status),
                   record.chips, record.nodata_chips, record.seconds, stats_.rss_mib_after_tile.back());
    recorded_(record.chips);
  }

  TileSink& sink_;
  JournalWriter& journal_;
  const TileLoopSpec& spec_;
  int rank_;
  RankStats& stats_;
  std::function<void(int)> recorded_;
  Handed current_;
  std::string error_;
  std::deque<Handed> pending_;  // handed to a deferring sink, not yet journalled
};

struct Claimed {
  std::size_t index = 0;  // into the plan's tiles
  std::string fingerprint;
};

// The whole job's numbers from every rank's (collective): the exit code everywhere, the
// report on rank 0, which also compacts the journal once every rank has closed its file.
void gather(const Comm& comm, const Plan& plan, const TileSource& tiles, const TileLoopSpec& spec, LoopResult& result) {
  const RankStats& stats = result.mine;
  const double rss = peak_rss_mib();
  const std::int64_t done = comm.allreduce_sum(stats.done), nodata = comm.allreduce_sum(stats.nodata),
                     failed = comm.allreduce_sum(stats.failed), skipped = comm.allreduce_sum(stats.skipped),
                     left = comm.allreduce_sum(stats.left_failed), chips = comm.allreduce_sum(stats.chips),
                     nodata_chips = comm.allreduce_sum(stats.nodata_chips),
                     stopped = comm.allreduce_sum(stats.stopped.empty() ? 0 : 1);
  float stage[4] = {static_cast<float>(stats.read_s), static_cast<float>(stats.process_s),
                    static_cast<float>(stats.write_s), static_cast<float>(stats.wait_s)};
  comm.allreduce_sum(stage, 4);
  const std::vector<std::int64_t> rss_all = comm.allgatherv({static_cast<std::int64_t>(rss)});
  const std::vector<std::int64_t> cpu_ms = comm.allgatherv({static_cast<std::int64_t>(cpu_seconds() * 1000)});
  std::vector<double> cpu_all;
  for (std::int64_t ms : cpu_ms) cpu_all.push_back(static_cast<double>(ms) / 1000);
  // Source blocks decoded against those served decoded (stages/ingest/tiff_blocks): a
  // block decoded again is a row of chips paying twice for it.
  const TiffBlockStats blocks = tiff_block_stats();
  const std::int64_t decoded = comm.allreduce_sum(blocks.decoded), reused = comm.allreduce_sum(blocks.reused);
  const std::vector<std::int64_t> chips_per_rank = comm.allgatherv({stats.chips});
  comm.barrier();  // every journal is complete
  result.exit_code = failed + left + stopped > 0 ? 1 : 0;
  if (comm.rank() != 0) return;

  // The next start reads one snapshot instead of every file of every past run, and this
  // report reads what the compaction read. Losing the race to a crash loses nothing: the
  // files stay and the next run folds them in.
  JournalHistory history;
  try {
    compact_journal(spec.journal, spec.stage, &history);
  } catch (const std::exception& e) {
    spdlog::warn("the journal was not compacted (the next run will): {}", e.what());
    history = read_journal(spec.journal, spec.stage);
  }
  // The latest record of each of the job's tiles that failed (an array task's own tiles).
  std::set<std::string> job;
  for (std::size_t i : tiles.job_tiles()) job.insert(plan.tiles[i].id.str());
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& [tile, records] : history)
    if (records.back().status == TileStatus::failed && job.count(tile))
      failures.push_back({{"tile", tile}, {"rank", records.back().rank}, {"error", records.back().error}});
  const double seconds = seconds_since(spec.started);
  nlohmann::json seconds_by_stage;
  for (std::size_t i = 0; i < 4; ++i) seconds_by_stage[spec.seconds_keys[i]] = stage[i];
  result.report = {{"tiles", tiles.job_tiles().size()}, {"chips_planned", plan.total.chips}, {"done", done}, {"nodata", nodata},
          {"failed", failed}, {"skipped_done", skipped}, {"left_failed", left}, {"ranks_stopped", stopped},
          {spec.chips_key, chips}, {"chips_nodata", nodata_chips}, {"seconds", seconds},
          {"chips_per_second", seconds > 0 ? static_cast<double>(chips) / seconds : 0.0},
          {"stage_seconds_all_ranks", seconds_by_stage}, {"ranks", comm.size()}, {"prefetch", spec.prefetch},
          {"chips_per_rank", chips_per_rank}, {"peak_rss_mib_per_rank", rss_all},
          {"cpu_seconds_per_rank", cpu_all},
          {"source_blocks_all_ranks", {{"decoded", decoded}, {"reused", reused}}},
          {"rss_mib_after_each_tile_rank0", stats.rss_mib_after_tile}, {"failures", failures},
          {"exit_code", result.exit_code}};
}

}  // namespace

LoopResult run_tile_loop(const Comm& comm, const Plan& plan, TileSource& tiles, const TileReader& read, TileSink& sink,
                         const TileLoopSpec& spec) {
  const int rank = comm.rank();
  // One rank reads the journal and shares it: a start opens the journal's files once, not
  // once per rank. A journal that cannot be read stops every rank, not rank 0 alone.
  const JournalHistory history =
      journal_from_text(comm.rank_zero_tries([&] { return journal_to_text(read_journal(spec.journal, spec.stage)); }));
  JournalWriter journal(spec.journal, spec.stage, rank, new_run_id());
  LoopResult result;
  RankStats& stats = result.mine;
  Progress progress(comm, tiles.job_tiles().size());
  TileRun tile(sink, journal, spec, rank, stats, [&](int chips) { progress.finished(chips); });

  // The next tile of this rank that needs work; tiles done with the same fingerprint,
  // or failed too often, are passed over.
  auto claim = [&]() -> std::optional<Claimed> {
    while (const auto index = tiles.next()) {
      const TilePlan& t = plan.tiles[*index];
      std::string fingerprint = spec.fingerprint(t);
      const TileAction action = decide(history, t.id.str(), fingerprint, spec.max_attempts);
      if (action == TileAction::process) return Claimed{*index, std::move(fingerprint)};
      ++(action == TileAction::skip_done ? stats.skipped : stats.left_failed);
      progress.skipped();
    }
    return std::nullopt;
  };

  try {
    if (spec.prefetch) {
      Prefetcher reader(read, plan);
      std::deque<Claimed> claimed;  // handed to the reader, in order
      auto hand_over = [&] {
        if (auto job = claim()) {
          reader.submit(job->index);
          claimed.push_back(std::move(*job));
        } else {
          reader.no_more_tiles();
        }
      };
      hand_over();
      hand_over();  // the reader starts on the next tile while the sink works on this one
      bool started = false;
      while (!claimed.empty()) {
        const auto wait0 = Clock::now();
        auto item = reader.pop();
        stats.wait_s += seconds_since(wait0);
        if (!item) break;
        if (!started) {
          tile.begin(plan.tiles[claimed.front().index], claimed.front().fingerprint);
          started = true;
        }
        if (item->row) {
          tile.add_row(*item->row);
          continue;
        }
        tile.end(item->error, item->read_seconds);
        claimed.pop_front();
        started = false;
        if (claimed.size() < 2) hand_over();
      }
    } else {
      while (auto job = claim()) {
        tile.begin(plan.tiles[job->index], std::move(job->fingerprint));
        const auto r0 = Clock::now();
        const double process_before = stats.process_s, write_before = stats.write_s;
        std::string error;
        try {
          read(plan.tiles[job->index], [&](ChipBatch&& row) { tile.add_row(row); });
        } catch (const std::exception& e) {
          error = e.what();
        }
        tile.end(error, seconds_since(r0) - (stats.process_s - process_before) - (stats.write_s - write_before));
      }
    }
    tile.collect(true);
  } catch (const OutputError& e) {
    stats.stopped = e.what();
    spdlog::error("{}; this rank stops (its remaining tiles stay pending: run again once the output can be written)",
                  stats.stopped);
  }

  journal.close();
  gather(comm, plan, tiles, spec, result);  // after every rank's journal is closed: compacts it
  if (rank == 0) progress.report(true);
  return result;
}

std::string summary_text(const TileLoopSpec& spec, const nlohmann::json& r, const std::string& chips_verb) {
  const double seconds = r.at("seconds");
  std::string text = fmt::format(
      "{}: {} tiles: {} done, {} no data, {} failed, {} already done, {} left failed after {} attempts; {} chips {} in "
      "{:.1f} s ({:.1f} chips/s) on {} ranks\n",
      name_of(spec.stage), r.at("tiles").get<std::int64_t>(), r.at("done").get<std::int64_t>(), r.at("nodata").get<std::int64_t>(),
      r.at("failed").get<std::int64_t>(), r.at("skipped_done").get<std::int64_t>(), r.at("left_failed").get<std::int64_t>(),
      spec.max_attempts, r.at(spec.chips_key).get<std::int64_t>(), chips_verb, seconds,
      r.at("chips_per_second").get<double>(), r.at("ranks").get<int>());
  for (const auto& f : r.at("failures")) text += "  failed: " + f.at("error").get<std::string>() + "\n";
  if (const auto stopped = r.at("ranks_stopped").get<std::int64_t>(); stopped > 0)
    text += fmt::format("  {} ranks stopped because the output could not be written; their tiles are pending\n", stopped);
  return text;
}

void write_report(const std::filesystem::path& file, const nlohmann::json& report) {
  try {
    write_atomically(file, report.dump(2) + "\n");
  } catch (const std::exception& e) {
    spdlog::error("cannot write the report {}: {}", file.string(), e.what());
  }
}

}  // namespace eo
