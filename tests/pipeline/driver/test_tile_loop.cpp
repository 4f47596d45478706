// The one tile loop (pipeline/driver/tile_loop.hpp) with a reader and a sink made here:
// what it hands the sink, what it journals, its counters and report, resuming, failed
// tiles retried then left, an output that cannot be written, prefetch on and off alike.

#include <gtest/gtest.h>

#include <filesystem>
#include <deque>
#include <map>
#include <set>

#include "pipeline/core/error.hpp"
#include "pipeline/core/journal.hpp"
#include "pipeline/driver/tile_loop.hpp"
#include "support/plans.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

// Two rows per tile, the tile's planned chips split between them; `unreadable` tiles throw
// after their first row.
struct FakeReader {
  std::set<std::string> unreadable;
  void operator()(const TilePlan& tile, const std::function<void(ChipBatch&&)>& row) const {
    std::vector<ChipId> chips;
    for (int i = 0; i < kChipsPerTile; ++i)
      if (tile.chips[static_cast<std::size_t>(i)]) chips.push_back(tile.id.chip(i));
    const std::size_t half = chips.size() / 2;
    ChipBatch first{tile.id, 4, {chips.begin(), chips.begin() + static_cast<std::ptrdiff_t>(half)}, {}};
    row(std::move(first));
    if (unreadable.count(tile.id.str())) throw std::runtime_error("read: cannot open the scene");
    ChipBatch second{tile.id, 4, {chips.begin() + static_cast<std::ptrdiff_t>(half), chips.end()}, {}};
    row(std::move(second));
  }
};

// Keeps every chip of its tiles, but none of `empty` tiles; a row of `bad` tiles throws;
// finishing a `full_disk` tile cannot write.
class FakeSink : public TileSink {
 public:
  std::set<std::string> empty, bad, full_disk;
  std::vector<std::string> events;

  void begin(const TilePlan& tile, const std::string& fingerprint) override {
    tile_ = tile.id.str();
    chips_ = 0;
    events.push_back("begin " + tile_ + " " + fingerprint);
  }
  void add_row(const ChipBatch& row) override {
    EXPECT_EQ(row.tile.str(), tile_) << "a row of another tile";
    events.push_back("row " + tile_);
    if (bad.count(tile_)) throw StageError("embed", "the model said no");
    chips_ += static_cast<int>(row.chips.size());
  }
  TileOutcome finish(const std::string& error) override {
    if (full_disk.count(tile_)) {
      events.push_back("finish " + tile_ + (error.empty() ? "" : " failed: " + error));
      throw std::runtime_error("No space left on device");
    }
    return finish_outcome(error);
  }

 protected:
  TileOutcome finish_outcome(const std::string& error) {
    events.push_back("finish " + tile_ + (error.empty() ? "" : " failed: " + error));
    if (!error.empty()) return {TileStatus::failed, 0, 0, error};
    if (empty.count(tile_)) return {TileStatus::nodata, 0, chips_, ""};
    return {TileStatus::done, chips_, 0, ""};
  }
  const std::string& current() const { return tile_; }

 private:
  std::string tile_;
  int chips_ = 0;
};

// Like FakeSink, but defers as a sink batching chips across tiles does: a tile handed
// over by finish() completes only once `lag` later tiles have been handed over (their
// batch came back), or at the loop's end. Completing a `full_disk` tile cannot write.
class DeferringSink : public FakeSink {
 public:
  std::size_t lag = 2;
  std::string journal_dir;
  std::vector<std::string> completed_tiles;

  TileOutcome finish(const std::string& error) override {
    handed_.push_back({current(), FakeSink::finish_outcome(error)});
    // Not journalled while it waits for its batch.
    EXPECT_FALSE(read_journal(journal_dir, JournalStage::run).count(current())) << current() << " journalled before its outputs";
    return {};
  }
  bool deferred() const override { return true; }
  std::vector<TileOutcome> completed(bool all) override {
    std::vector<TileOutcome> out;
    while (!handed_.empty() && (all || handed_.size() > lag)) {
      if (full_disk.count(handed_.front().first)) throw std::runtime_error("tile " + handed_.front().first + ": No space left on device");
      completed_tiles.push_back(handed_.front().first);
      out.push_back(handed_.front().second);
      handed_.pop_front();
    }
    return out;
  }

 private:
  std::deque<std::pair<std::string, TileOutcome>> handed_;
};

class TileLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::fresh_temp_dir("tile_loop");
    plan_ = test::demo_plan();
    ASSERT_GE(plan_.tiles.size(), 6u);
  }
  void TearDown() override { fs::remove_all(dir_); }

  TileLoopSpec spec(bool prefetch, int max_attempts = 3) const {
    TileLoopSpec s;
    s.stage = JournalStage::run;
    s.journal = dir_ / "journal";
    s.max_attempts = max_attempts;
    s.prefetch = prefetch;
    s.fingerprint = [this](const TilePlan& t) { return "fp-" + t.id.str() + suffix_; };
    s.config_hash = "config";
    s.chips_key = "chips_embedded";
    return s;
  }
  LoopResult loop(TileSink& sink, const FakeReader& reader, const TileLoopSpec& s) {
    TileSource tiles(ScheduleSpec{}, plan_, Comm::serial());
    return run_tile_loop(Comm::serial(), plan_, tiles, reader, sink, s);
  }
  std::string id(std::size_t i) const { return plan_.tiles[i].id.str(); }

  fs::path dir_;
  Plan plan_;
  std::string suffix_;
};

TEST_F(TileLoop, CountsJournalsAndReportsEachTileOnce) {
  for (const bool prefetch : {true, false}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    fs::remove_all(dir_);
    FakeSink sink;
    sink.empty = {id(1)};
    sink.bad = {id(2)};
    const FakeReader reader{{id(3)}};
    const LoopResult r = loop(sink, reader, spec(prefetch));
    const std::int64_t n = static_cast<std::int64_t>(plan_.tiles.size());
    EXPECT_EQ(r.report.at("tiles"), n);
    EXPECT_EQ(r.report.at("done"), n - 3);
    EXPECT_EQ(r.report.at("nodata"), 1);
    EXPECT_EQ(r.report.at("failed"), 2);
    EXPECT_EQ(r.report.at("skipped_done"), 0);
    EXPECT_EQ(r.report.at("ranks_stopped"), 0);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.report.at("exit_code"), 1);
    std::int64_t chips = 0;
    for (std::size_t i = 0; i < plan_.tiles.size(); ++i)
      if (i != 1 && i != 2 && i != 3) chips += plan_.tiles[i].chip_count();
    EXPECT_EQ(r.report.at("chips_embedded"), chips);
    EXPECT_EQ(r.report.at("chips_nodata"), plan_.tiles[1].chip_count());

    // The failures name tile, rank and stage once each.
    ASSERT_EQ(r.report.at("failures").size(), 2u);
    std::map<std::string, std::string> errors;
    for (const auto& f : r.report.at("failures")) errors[f.at("tile")] = f.at("error");
    EXPECT_EQ(errors.at(id(2)), "tile " + id(2) + ": rank 0: embed: the model said no");
    EXPECT_EQ(errors.at(id(3)), "tile " + id(3) + ": rank 0: read: cannot open the scene");

    // Every tile began, got its rows in order (none after its failure), and finished.
    std::vector<std::string> expected;
    TileSource order(ScheduleSpec{}, plan_, Comm::serial());
    while (const auto i = order.next()) {
      const std::string t = id(*i);
      expected.push_back("begin " + t + " fp-" + t);
      expected.push_back("row " + t);
      if (t != id(2) && t != id(3)) expected.push_back("row " + t);
      expected.push_back("finish " + t + (t == id(2)   ? " failed: embed: the model said no"
                                          : t == id(3) ? " failed: read: cannot open the scene"
                                                       : ""));
    }
    EXPECT_EQ(sink.events, expected);

    const JournalHistory journal = read_journal(dir_ / "journal", JournalStage::run);
    ASSERT_EQ(journal.size(), plan_.tiles.size());
    for (const auto& [tile, records] : journal) {
      ASSERT_EQ(records.size(), 1u) << tile;
      EXPECT_EQ(records[0].fingerprint, "fp-" + tile);
      EXPECT_EQ(records[0].config_hash, "config");
    }
    EXPECT_EQ(journal.at(id(1)).back().status, TileStatus::nodata);
    EXPECT_EQ(journal.at(id(2)).back().status, TileStatus::failed);
  }
}

TEST_F(TileLoop, ResumesSkippingDoneTilesRetriesFailedOnesThenLeavesThem) {
  FakeSink sink;
  sink.bad = {id(0)};
  loop(sink, FakeReader{}, spec(true, 2));
  FakeSink again;
  again.bad = {id(0)};
  LoopResult r = loop(again, FakeReader{}, spec(true, 2));
  EXPECT_EQ(r.report.at("skipped_done"), static_cast<std::int64_t>(plan_.tiles.size()) - 1);
  EXPECT_EQ(r.report.at("failed"), 1) << "a failed tile is retried";
  ASSERT_EQ(again.events.size(), 3u) << "only the failed tile is worked on";
  FakeSink third;
  r = loop(third, FakeReader{}, spec(true, 2));
  EXPECT_EQ(r.report.at("left_failed"), 1) << "two attempts used up";
  EXPECT_TRUE(third.events.empty());
  EXPECT_EQ(r.exit_code, 1);

  suffix_ = "-changed";  // new inputs: every tile again, the failed one too
  FakeSink nightly;
  r = loop(nightly, FakeReader{}, spec(true, 2));
  EXPECT_EQ(r.report.at("done"), static_cast<std::int64_t>(plan_.tiles.size()));
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(TileLoop, AnOutputThatCannotBeWrittenStopsTheRankWithoutJournallingTheTile) {
  for (const bool prefetch : {true, false}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    fs::remove_all(dir_);
    TileSource order(ScheduleSpec{}, plan_, Comm::serial());
    const std::size_t first = *order.next(), second = *order.next();
    FakeSink sink;
    sink.full_disk = {id(second)};
    const LoopResult r = loop(sink, FakeReader{}, spec(prefetch));
    EXPECT_EQ(r.report.at("ranks_stopped"), 1);
    EXPECT_EQ(r.report.at("done"), 1);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.mine.stopped.find("tile " + id(second) + ": rank 0: cannot write the output: No space left on device"),
              std::string::npos)
        << r.mine.stopped;
    const JournalHistory journal = read_journal(dir_ / "journal", JournalStage::run);
    EXPECT_EQ(journal.size(), 1u);
    EXPECT_TRUE(journal.count(id(first)));
    EXPECT_EQ(sink.events.back(), "finish " + id(second)) << "no tile after the stop";
  }
}

// A sink that batches chips across tiles: each tile journalled once its outputs are
// written, in the order handed over, with the same counts as a sink that does not defer;
// a write that fails at completion stops the rank with the tiles still waiting unjournalled.
TEST_F(TileLoop, ADeferringSinkJournalsEachTileOnceItsOutputsAreWritten) {
  for (const bool prefetch : {true, false}) {
    SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
    fs::remove_all(dir_);
    FakeSink plain;
    plain.empty = {id(1)};
    plain.bad = {id(3)};
    const LoopResult expected = loop(plain, FakeReader{{id(4)}}, spec(prefetch));
    fs::remove_all(dir_);
    DeferringSink sink;
    sink.journal_dir = (dir_ / "journal").string();
    sink.empty = plain.empty;
    sink.bad = plain.bad;
    const LoopResult r = loop(sink, FakeReader{{id(4)}}, spec(prefetch));
    for (const char* key : {"done", "nodata", "failed", "chips_embedded", "chips_nodata"})
      EXPECT_EQ(r.report.at(key), expected.report.at(key)) << key;
    EXPECT_EQ(r.report.at("failures").size(), 2u);
    const JournalHistory journal = read_journal(dir_ / "journal", JournalStage::run);
    EXPECT_EQ(journal.size(), plan_.tiles.size());
    for (const auto& [tile, records] : journal) EXPECT_EQ(records.size(), 1u) << tile;
    TileSource order(ScheduleSpec{}, plan_, Comm::serial());
    std::vector<std::string> walked;
    while (const auto i = order.next()) walked.push_back(id(*i));
    EXPECT_EQ(sink.completed_tiles, walked);

    // The disk fills when the third tile handed over is written: the first two are
    // journalled, the third and the two behind it are not.
    fs::remove_all(dir_);
    DeferringSink full;
    full.journal_dir = (dir_ / "journal").string();
    full.full_disk = {walked[2]};
    const LoopResult stopped = loop(full, FakeReader{}, spec(prefetch));
    EXPECT_EQ(stopped.report.at("ranks_stopped"), 1);
    EXPECT_NE(stopped.mine.stopped.find("rank 0: cannot write the output: tile " + walked[2] + ": No space left on device"),
              std::string::npos)
        << stopped.mine.stopped;
    const JournalHistory partial = read_journal(dir_ / "journal", JournalStage::run);
    EXPECT_EQ(partial.size(), 2u);
    EXPECT_TRUE(partial.count(walked[0]) && partial.count(walked[1]));
  }
}

}  // namespace
}  // namespace eo
