// `mpirun eo-pipeline run`, the main job: every rank takes its tiles of the plan and runs
// ingest -> reproject -> chip (on a prefetch thread, reading ahead into the next tile
// while the model works) -> embed -> the tile's cube chunks -> the journal, so that an
// interrupted or failed run resumes where it stopped and ends with the same cube.

#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <spdlog/spdlog.h>
#include <thread>

#include "pipeline/commands.hpp"
#include "pipeline/failpoint.hpp"
#include "pipeline/files.hpp"
#include "pipeline/hash.hpp"
#include "pipeline/journal.hpp"
#include "pipeline/lock.hpp"
#include "pipeline/run_inputs.hpp"
#include "pipeline/work.hpp"
#include "schedulers/partition.hpp"
#include "stages/chip/chipper.hpp"
#include "stages/cube/cube.hpp"
#include "stages/model/embed.hpp"

namespace eo {

void add_run_command(CLI::App& app, RunOptions& opts) {
  auto* cmd = app.add_subcommand("run", "embed every tile of the plan into the Zarr cube (the main job, under mpirun)");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--partition", opts.partition, "static, dynamic or slurm-array (overrides schedule.partition)")
      ->check(CLI::IsMember({"static", "dynamic", "slurm-array"}));
  cmd->add_flag("--json", opts.json, "print the run report as JSON at the end");
}

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct TileJob {
  std::size_t index = 0;  // into the plan's tiles
  std::string fingerprint;
};

// A row of chips of a tile from the reader, or (no row) the end of the tile.
struct RowItem {
  std::optional<ChipBatch> row;
  std::string error;        // at the end: why the tile could not be read
  double read_seconds = 0;  // at the end
};

// The cube or the journal could not be written (a full disk, ...): not the tile's
// fault, so the tile is not journalled as failed; the rank stops and a later run resumes.
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) {}
  // False when the queue was closed.
  bool push(T item) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }
  // Nothing once the queue is closed and empty.
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::deque<T> items_;
  bool closed_ = false;
};

// Reads and warps the tiles it is given, in order, on its own thread; a bounded queue of
// rows keeps memory to a few rows of chips (a row of 10 m chips of every modality is
// ~300 MB).
class Prefetcher {
 public:
  Prefetcher(const Catalog& catalog, const Plan& plan, const TileReadOptions& options)
      : catalog_(catalog), plan_(plan), options_(options), thread_([this] { loop(); }) {}
  ~Prefetcher() {
    jobs_.close();
    rows_.close();
    thread_.join();
  }
  void submit(std::size_t index) { jobs_.push(index); }
  void no_more_tiles() { jobs_.close(); }
  std::optional<RowItem> pop() { return rows_.pop(); }

 private:
  struct Closed {};
  void loop() {
    while (const auto index = jobs_.pop()) {
      const auto t0 = Clock::now();
      RowItem end;
      try {
        read_tile(catalog_, plan_.tiles[*index], options_, [&](ChipBatch&& row) {
          if (!rows_.push(RowItem{std::move(row), {}, 0})) throw Closed{};
        });
      } catch (const Closed&) {
        return;
      } catch (const std::exception& e) {
        end.error = e.what();
      }
      end.read_seconds = seconds_since(t0);
      if (!rows_.push(std::move(end))) return;
    }
    rows_.close();
  }

  const Catalog& catalog_;
  const Plan& plan_;
  TileReadOptions options_;
  BoundedQueue<std::size_t> jobs_{2};  // the main thread hands over at most two tiles
  BoundedQueue<RowItem> rows_{2};
  std::thread thread_;
};

struct RankStats {
  std::int64_t done = 0, nodata = 0, failed = 0, skipped = 0, left_failed = 0, chips = 0, nodata_chips = 0;
  double read_s = 0, embed_s = 0, write_s = 0, wait_s = 0;
  std::vector<std::int64_t> rss_mib_after_tile;  // memory must not grow with the tiles done
};

// Turns a tile's rows into its cube chunks and its journal record.
class TileAssembler {
 public:
  TileAssembler(const Config& config, const CubeSpec& spec, const Embedder& embedder, const Normalisation& norm,
                const CubeWriter& cube, JournalWriter& journal, std::string model_hash, int rank, RankStats& stats)
      : config_(config), spec_(spec), embedder_(embedder), norm_(norm), cube_(cube), journal_(journal),
        model_hash_(std::move(model_hash)), rank_(rank), stats_(stats) {}

  void begin(const TilePlan& tile, const std::string& fingerprint) {
    tile_ = &tile;
    out_.emplace(tile.id, spec_);
    record_ = JournalRecord{};
    record_.tile = tile.id.str();
    record_.fingerprint = fingerprint;
    record_.config_hash = config_hash(config_);
    record_.model_hash = model_hash_;
    error_.clear();
    t0_ = Clock::now();
  }

  void add_row(const ChipBatch& row) {
    if (!error_.empty()) return;  // the tile has failed already
    const auto t0 = Clock::now();
    try {
      std::vector<bool> has_data(row.chips.size());
      for (std::size_t k = 0; k < row.chips.size(); ++k) has_data[k] = chip_has_data(row, k, config_.data.min_valid_fraction);
      const auto emb = embedder_.embed(row, has_data, norm_, config_.data.min_valid_fraction, config_.run.batch);
      const std::size_t dim = static_cast<std::size_t>(spec_.dim);
      auto& fused = out_->arrays.at("fused");
      for (std::size_t k = 0; k < row.chips.size(); ++k) {
        const int pos = index_in_tile(row.chips[k]);
        const std::size_t y = static_cast<std::size_t>(pos / kChipsPerTileSide), x = static_cast<std::size_t>(pos % kChipsPerTileSide);
        int present = 0;
        std::vector<float> sum(dim, 0.0f);
        for (const auto& [m, values] : emb) {
          const float* v = values.data() + k * dim;
          if (std::isnan(v[0])) continue;
          std::copy_n(v, dim, &out_->arrays.at(info(m).name)(y, x, 0));
          for (std::size_t i = 0; i < dim; ++i) sum[i] += v[i];
          ++present;
        }
        if (present > 0)
          for (std::size_t i = 0; i < dim; ++i) fused(y, x, i) = sum[i] / static_cast<float>(present);
        out_->status[static_cast<std::size_t>(pos)] = present > 0 ? kEmbedded : kNoData;
      }
    } catch (const std::exception& e) {
      error_ = fmt::format("embed: {}", e.what());
    }
    stats_.embed_s += seconds_since(t0);
  }

  // Writes the tile's chunks, then its journal record. Throws OutputError when either
  // cannot be written.
  void finish(const std::string& read_error, double read_seconds) {
    stats_.read_s += read_seconds;
    if (!read_error.empty() && error_.empty()) error_ = read_error;
    if (!error_.empty()) {
      out_.emplace(tile_->id, spec_);  // nothing of a failed tile is kept
      for (std::size_t i = 0; i < out_->status.size(); ++i)
        if (tile_->chips[i]) out_->status[i] = kFailed;
      record_.status = "failed";
      record_.error = fmt::format("tile {}: rank {}: {}", record_.tile, rank_, error_);
      ++stats_.failed;
    } else {
      for (std::uint8_t s : out_->status) {
        record_.chips += s == kEmbedded;
        record_.nodata_chips += s == kNoData;
      }
      record_.status = record_.chips > 0 ? "done" : "nodata";
      ++(record_.chips > 0 ? stats_.done : stats_.nodata);
      stats_.chips += record_.chips;
      stats_.nodata_chips += record_.nodata_chips;
    }
    const auto t0 = Clock::now();
    try {
      cube_.write_tile(*out_);
      failpoint("tile-written");
      record_.seconds = seconds_since(t0_);
      journal_.append(record_);
    } catch (const std::exception& e) {
      throw OutputError(fmt::format("tile {}: rank {}: cannot write the output: {}", record_.tile, rank_, e.what()));
    }
    stats_.write_s += seconds_since(t0);
    stats_.rss_mib_after_tile.push_back(static_cast<std::int64_t>(current_rss_mib()));
    if (record_.status == "failed")
      spdlog::error("{}", record_.error);
    else
      spdlog::info("tile {}: {} ({} chips, {} no data, {:.1f} s, {} MiB resident)", record_.tile, record_.status,
                   record_.chips, record_.nodata_chips, record_.seconds, stats_.rss_mib_after_tile.back());
  }

  int chips() const { return record_.chips; }

 private:
  const Config& config_;
  const CubeSpec& spec_;
  const Embedder& embedder_;
  const Normalisation& norm_;
  const CubeWriter& cube_;
  JournalWriter& journal_;
  std::string model_hash_;
  int rank_;
  RankStats& stats_;
  const TilePlan* tile_ = nullptr;
  std::optional<TileEmbeddings> out_;
  JournalRecord record_;
  std::string error_;
  Clock::time_point t0_;
};

// Counters every rank adds to, so that rank 0 can report the whole job's progress.
class Progress {
 public:
  Progress(const Comm& comm, std::size_t total) : tiles_(comm), chips_(comm), worked_(comm), rank_(comm.rank()), total_(total) {}
  void skipped() { tiles_.fetch_add(1); report(false); }
  void finished(int chips) {
    tiles_.fetch_add(1);
    worked_.fetch_add(1);
    chips_.fetch_add(chips);
    report(false);
  }
  void report(bool force) {
    if (rank_ != 0) return;
    const double now = seconds_since(t0_);
    if (!force && now - last_ < 5) return;
    last_ = now;
    const std::int64_t tiles = tiles_.fetch_add(0), chips = chips_.fetch_add(0), worked = worked_.fetch_add(0);
    if (tiles == said_) return;  // the last line said it already
    said_ = tiles;
    const double eta = worked > 0 ? now / static_cast<double>(worked) * static_cast<double>(static_cast<std::int64_t>(total_) - tiles) : 0;
    spdlog::info("progress: {}/{} tiles, {} chips, {:.1f} chips/s, ETA {:.0f} s", tiles, total_, chips,
                 now > 0 ? static_cast<double>(chips) / now : 0.0, eta);
  }

 private:
  SharedCounter tiles_, chips_, worked_;
  int rank_;
  std::size_t total_;
  Clock::time_point t0_ = Clock::now();
  double last_ = 0;
  std::int64_t said_ = -1;  // tiles at the last progress line
};

// The tasks of one SLURM job array share the output (see OutputLock); a plain run has it
// alone.
std::string lock_group(const Config& config) {
  if (config.partition != "slurm-array") return "";
  const std::string job = env_or("SLURM_ARRAY_JOB_ID", "");
  if (job.empty())
    throw ConfigError("SLURM_ARRAY_JOB_ID is not set: the slurm-array partition runs inside a SLURM job array "
                      "(see slurm/submit.sh)");
  return "slurm-array-" + job;
}

}  // namespace

int run_run(const RunOptions& opts) {
  const Comm comm = Comm::world();
  const int rank = comm.rank();
  auto config = start_command(opts.common, rank);
  if (!config) return kExitOk;
  if (!opts.partition.empty()) config->partition = opts.partition;
  const auto t0 = Clock::now();
  const fs::path out = config->output;
  const bool array = config->partition == "slurm-array";
  const std::optional<ArrayTask> task = array ? std::optional(array_task_from_env()) : std::nullopt;

  // One run per output at a time (the tasks of an array count as one): rank 0 holds the
  // lock for the whole run.
  const std::string group = lock_group(*config);
  std::optional<OutputLock> lock;
  std::string refused;
  if (rank == 0) {
    try {
      const std::string what = task ? fmt::format("eo-pipeline run, array task {} of {} ({} ranks)", task->index,
                                                  task->count, comm.size())
                                    : fmt::format("eo-pipeline run ({} ranks)", comm.size());
      lock.emplace(out / "run.lock", what, group);
    } catch (const LockedError& e) {
      refused = e.what();
    }
  }
  if (comm.allreduce_sum(refused.empty() ? 0 : 1) > 0) {
    if (rank == 0) std::fprintf(stderr, "eo-pipeline: run refused: %s\n", refused.c_str());
    return kExitUsage;
  }
  failpoint("run-locked");

  const RunInputs in = load_run_inputs(*config, comm);
  const Plan& plan = in.plan;
  const ModelCard& card = in.card;
  const fs::path& cube_path = in.cube;
  set_gdal_cache(config->warp.cache_mb);
  std::string setup_error;
  if (rank == 0) {
    try {
      // Partial chunks are only left by runs that died; with other tasks of the array
      // writing, a temporary may be theirs.
      if (lock->first())
        if (const int n = remove_stale_chunks(cube_path)) spdlog::info("removed {} partial chunks of an interrupted run", n);
      set_up_cube(*config, in);
      write_resolved_config(*config, out / "run" / "config.yaml");
    } catch (const std::exception& e) {
      setup_error = e.what();
    }
    lock->setup_done();
  }
  if (comm.allreduce_sum(setup_error.empty() ? 0 : 1) > 0) {
    if (rank == 0) std::fprintf(stderr, "eo-pipeline: run: %s\n", setup_error.c_str());
    return kExitUsage;
  }
  failpoint("run-set-up");

  const int threads = threads_per_rank(config->run.threads, comm);
  const Embedder embedder(card, *config, config->data.modalities, threads);
  const CubeWriter cube(cube_path, in.spec);
  const auto journal_dir = out / "journal";
  const auto history = read_journal(journal_dir, "run");
  JournalWriter journal(journal_dir, "run", rank, new_run_id());
  const TileReadOptions read_options = TileReadOptions::from(*config, threads_per_rank(config->warp.threads, comm));
  TileSource tiles(*config, plan, comm);
  if (rank == 0)
    spdlog::info("run: {} tiles{} ({} chips planned in all) on {} ranks, model {}, {} torch and {} warper threads per "
                 "rank, cube {}",
                 tiles.job_tiles(), task ? fmt::format(" of array task {} of {}", task->index, task->count) : "",
                 plan.total.chips, comm.size(), in.model_version, threads, read_options.threads, cube_path.string());

  RankStats stats;
  TileAssembler assembler(*config, in.spec, embedder, in.norm, cube, journal, in.model_hash, rank, stats);
  Progress progress(comm, tiles.job_tiles());
  // The next tile of this rank that needs work; tiles done with the same fingerprint,
  // or failed too often, are passed over.
  auto claim = [&]() -> std::optional<TileJob> {
    while (const auto index = tiles.next()) {
      TileWork work = tile_work(in, *config, history, *index);
      if (work.action == TileAction::process) return TileJob{*index, std::move(work.fingerprint)};
      ++(work.action == TileAction::skip_done ? stats.skipped : stats.left_failed);
      progress.skipped();
    }
    return std::nullopt;
  };

  std::string stopped;  // why this rank stopped early
  try {
    if (config->run.prefetch) {
      Prefetcher reader(in.catalog, plan, read_options);
      std::deque<TileJob> claimed;  // handed to the reader, in order
      auto hand_over = [&] {
        if (auto job = claim()) {
          reader.submit(job->index);
          claimed.push_back(std::move(*job));
        } else {
          reader.no_more_tiles();
        }
      };
      hand_over();
      hand_over();  // the reader starts on the next tile while the model works on this one
      bool started = false;
      while (!claimed.empty()) {
        const auto wait0 = Clock::now();
        auto item = reader.pop();
        stats.wait_s += seconds_since(wait0);
        if (!item) break;
        const TileJob& job = claimed.front();
        if (!started) {
          assembler.begin(plan.tiles[job.index], job.fingerprint);
          started = true;
        }
        if (item->row) {
          assembler.add_row(*item->row);
          continue;
        }
        assembler.finish(item->error, item->read_seconds);
        progress.finished(assembler.chips());
        claimed.pop_front();
        started = false;
        if (claimed.size() < 2) hand_over();
      }
    } else {
      while (const auto job = claim()) {
        assembler.begin(plan.tiles[job->index], job->fingerprint);
        const auto r0 = Clock::now();
        std::string error;
        double embed_before = stats.embed_s;
        try {
          read_tile(in.catalog, plan.tiles[job->index], read_options, [&](ChipBatch&& row) { assembler.add_row(row); });
        } catch (const std::exception& e) {
          error = e.what();
        }
        assembler.finish(error, seconds_since(r0) - (stats.embed_s - embed_before));
        progress.finished(assembler.chips());
      }
    }
  } catch (const OutputError& e) {
    stopped = e.what();
    spdlog::error("{}; this rank stops (its remaining tiles stay pending: run again once the output can be written)",
                  stopped);
  }

  // The whole job's numbers.
  const double rss = peak_rss_mib();
  const std::int64_t all_done = comm.allreduce_sum(stats.done), all_nodata = comm.allreduce_sum(stats.nodata),
                     all_failed = comm.allreduce_sum(stats.failed), all_skipped = comm.allreduce_sum(stats.skipped),
                     all_left = comm.allreduce_sum(stats.left_failed), all_chips = comm.allreduce_sum(stats.chips),
                     all_nodata_chips = comm.allreduce_sum(stats.nodata_chips),
                     all_stopped = comm.allreduce_sum(stopped.empty() ? 0 : 1);
  float stage[4] = {static_cast<float>(stats.read_s), static_cast<float>(stats.embed_s), static_cast<float>(stats.write_s),
                    static_cast<float>(stats.wait_s)};
  comm.allreduce_sum(stage, 4);
  const std::vector<std::int64_t> rss_all = comm.allgatherv({static_cast<std::int64_t>(rss)});
  const std::vector<std::int64_t> chips_per_rank = comm.allgatherv({stats.chips});
  comm.barrier();  // every journal is complete
  const double seconds = seconds_since(t0);
  const int code = all_failed + all_left + all_stopped > 0 ? kExitTilesFailed : kExitOk;
  if (rank == 0) {
    progress.report(true);
    // An array task reports on its own tiles; finalize reports on them all.
    std::set<std::string> mine;
    if (task)
      for (std::size_t i : slurm_array_tiles(plan.tiles, *task, parse_curve_order(config->order)))
        mine.insert(plan.tiles[i].id.str());
    nlohmann::json failures = nlohmann::json::array();
    for (const auto& [tile, records] : read_journal(journal_dir, "run"))
      if (records.back().status == "failed" && (!task || mine.count(tile)))
        failures.push_back({{"tile", tile}, {"rank", records.back().rank}, {"error", records.back().error}});
    nlohmann::json report = {
        {"tiles", tiles.job_tiles()}, {"chips_planned", plan.total.chips}, {"done", all_done}, {"nodata", all_nodata},
        {"failed", all_failed}, {"skipped_done", all_skipped}, {"left_failed", all_left},
        {"ranks_stopped", all_stopped}, {"chips_embedded", all_chips}, {"chips_nodata", all_nodata_chips},
        {"seconds", seconds}, {"chips_per_second", seconds > 0 ? static_cast<double>(all_chips) / seconds : 0.0},
        {"stage_seconds_all_ranks", {{"read_warp_chip", stage[0]}, {"embed", stage[1]}, {"write", stage[2]},
                                     {"model_waiting_for_data", stage[3]}}},
        {"ranks", comm.size()}, {"torch_threads_per_rank", threads}, {"warp_threads_per_rank", read_options.threads},
        {"prefetch", config->run.prefetch}, {"chips_per_rank", chips_per_rank}, {"peak_rss_mib_per_rank", rss_all},
        {"rss_mib_after_each_tile_rank0", stats.rss_mib_after_tile},
        {"model", card.name}, {"model_version", in.model_version}, {"checkpoint", card.checkpoint.string()},
        {"model_hash", in.model_hash}, {"cube", cube_path.string()}, {"dtype", config->run.dtype},
        {"failures", failures}, {"exit_code", code}};
    fs::path report_file = out / "run" / "report.json";
    if (task) {
      const std::string job = env_or("SLURM_JOB_ID", "0");
      report["array_task"] = {{"index", task->index}, {"count", task->count}, {"job", job},
                              {"array_job", env_or("SLURM_ARRAY_JOB_ID", "")},
                              {"restarts", std::stoi(env_or("SLURM_RESTART_COUNT", "0"))}};
      report_file = array_reports_dir(out, array_chain()) / fmt::format("task-{}-job-{}.json", task->index, job);
    }
    try {
      write_atomically(report_file, report.dump(2) + "\n");
    } catch (const std::exception& e) {
      spdlog::error("cannot write the run report: {}", e.what());  // the summary below still says it all
    }
    if (opts.json) {
      std::cout << report.dump(2) << '\n';
    } else {
      std::cout << fmt::format("run: {} tiles: {} done, {} no data, {} failed, {} already done, {} left failed after {} "
                               "attempts; {} chips embedded in {:.1f} s ({:.1f} chips/s) on {} ranks\n",
                               tiles.job_tiles(), all_done, all_nodata, all_failed, all_skipped, all_left,
                               config->run.max_attempts, all_chips, seconds,
                               seconds > 0 ? static_cast<double>(all_chips) / seconds : 0.0, comm.size());
      for (const auto& f : failures) std::cout << "  failed: " << f["error"].get<std::string>() << '\n';
      if (all_stopped > 0)
        std::cout << fmt::format("  {} ranks stopped because the output could not be written; their tiles are pending\n",
                                 all_stopped);
      std::cout << "cube: " << cube_path.string() << "  report: " << report_file.string() << '\n';
    }
  }
  return code;
}

}  // namespace eo
