// The journal's records and decisions (DESIGN.md §5), without the executable: what a
// tile's history says to do, records read back across files in time order, torn lines.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <random>
#include <set>
#include <fstream>

#include "pipeline/core/journal.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

JournalRecord record(const std::string& status, const std::string& fingerprint) {
  JournalRecord r;
  r.tile = "10N_T073_T008";
  r.status = *parse_choice<TileStatus>(status);
  r.fingerprint = fingerprint;
  return r;
}

TEST(JournalDecision, FromATilesHistory) {
  using A = TileAction;
  EXPECT_EQ(decide(std::vector<JournalRecord>{}, "f", 3), A::process);
  EXPECT_EQ(decide({record("done", "f")}, "f", 3), A::skip_done);
  EXPECT_EQ(decide({record("nodata", "f")}, "f", 3), A::skip_done);
  EXPECT_EQ(decide({record("done", "f")}, "g", 3), A::process) << "inputs changed: redo";
  EXPECT_EQ(decide({record("failed", "f"), record("failed", "f")}, "f", 3), A::process) << "attempts left";
  EXPECT_EQ(decide({record("failed", "f"), record("failed", "f"), record("failed", "f")}, "f", 3), A::skip_failed);
  EXPECT_EQ(decide({record("failed", "f"), record("failed", "f"), record("failed", "f")}, "g", 3), A::process)
      << "failures of other inputs do not count";
  EXPECT_EQ(decide({record("done", "f"), record("failed", "f")}, "f", 1), A::skip_failed) << "the latest record decides";
  EXPECT_EQ(decide({record("failed", "f"), record("done", "f")}, "f", 1), A::skip_done);

  const JournalHistory history = {{"10N_T073_T008", {record("done", "f")}}};
  EXPECT_EQ(decide(history, "10N_T073_T008", "f", 3), A::skip_done);
  EXPECT_EQ(decide(history, "10N_T073_T009", "f", 3), A::process) << "never recorded";
}

TEST(Journal, RecordsReadBackInTimeOrderAcrossFilesTornLinesSkipped) {
  const fs::path dir = test::fresh_temp_dir("journal");
  {
    JournalWriter a(dir, JournalStage::run, 0, "run-a"),b(dir, JournalStage::run, 1, "run-b"), other(dir, JournalStage::prepare, 0, "run-a");
    a.append(record("failed", "f"));
    b.append(record("done", "f"));
    JournalRecord second = record("done", "f");
    second.tile = "10N_T073_T009";
    a.append(second);
    other.append(record("done", "x"));
    std::ofstream(b.file(), std::ios::app) << R"({"stage": "run", "tile": "10N_T0)";  // a crash mid-line
  }
  const JournalHistory history = read_journal(dir, JournalStage::run);
  ASSERT_EQ(history.size(), 2u);
  const auto& t8 = history.at("10N_T073_T008");
  ASSERT_EQ(t8.size(), 2u);
  EXPECT_EQ(t8[0].status, TileStatus::failed);
  EXPECT_EQ(t8[0].rank, 0);
  EXPECT_EQ(t8[1].status, TileStatus::done);
  EXPECT_EQ(t8[1].rank, 1);
  EXPECT_EQ(t8[1].run_id, "run-b");
  EXPECT_EQ(t8[1].stage, JournalStage::run);
  EXPECT_EQ(read_journal(dir, JournalStage::prepare).at("10N_T073_T008").back().fingerprint, "x");
  EXPECT_TRUE(read_journal(dir / "missing", JournalStage::run).empty());
  fs::remove_all(dir);
}

// What decide() and `status` see of every tile, for every fingerprint that occurs.
std::map<std::string, std::string> decisions(const JournalHistory& history) {
  std::map<std::string, std::string> out;
  for (const auto& [tile, records] : history)
    for (const char* f : {"a", "b", "c"}) {
      const auto failures = std::count_if(records.begin(), records.end(),
                                           [&](const JournalRecord& r) { return r.status == TileStatus::failed && r.fingerprint == f; });
      out[tile + f] = fmt::format("{} {} {} {} {}", static_cast<int>(decide(records, f, 3)), failures,
                                  name_of(records.back().status), records.back().run_id, records.back().chips);
    }
  return out;
}

std::set<std::string> files_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// 40 runs of 4 ranks over 30 tiles, with random outcomes and changing inputs: after
// compaction a start reads one file, and every tile's decision for every fingerprint,
// its failure count and its latest record are what they were.
TEST(Journal, CompactionKeepsEveryDecisionAndReadsOneFile) {
  const fs::path dir = test::fresh_temp_dir("journal-compact");
  std::mt19937 random(7);
  for (int run = 0; run < 40; ++run)
    for (int rank = 0; rank < 4; ++rank) {
      JournalWriter w(dir, JournalStage::run, rank, fmt::format("run{:02}", run));
      for (int t = rank; t < 30; t += 4)
        if (random() % 3 == 0) {
          JournalRecord r = record(random() % 4 == 0 ? "failed" : "done", std::string(1, static_cast<char>('a' + random() % 3)));
          r.tile = fmt::format("tile{:02}", t);
          r.chips = static_cast<int>(random() % 100);
          w.append(r);
        }
    }
  JournalWriter other(dir, JournalStage::prepare, 0, "p");
  other.append(record("done", "x"));
  other.close();
  int opened = 0;
  const JournalHistory before = read_journal(dir, JournalStage::run, &opened);
  EXPECT_GT(opened, 100);
  EXPECT_GT(compact_journal(dir, JournalStage::run), 100);
  const JournalHistory after = read_journal(dir, JournalStage::run, &opened);
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(decisions(after), decisions(before));
  EXPECT_EQ(files_in(dir), (std::set<std::string>{".run.compact.lock", ".prepare.compact.lock", "run.snapshot.jsonl",
                                                  other.file().filename().string()}))
      << "the run files are removed, another stage's are not";

  // A later run's file adds to the snapshot, and folds into it in turn.
  {
    JournalWriter w(dir, JournalStage::run, 0, "run99");
    JournalRecord r = record("failed", "a");
    r.tile = "tile00";
    w.append(r);
  }
  const JournalHistory later = read_journal(dir, JournalStage::run, &opened);
  EXPECT_EQ(opened, 2);
  EXPECT_EQ(later.at("tile00").back().run_id, "run99");
  EXPECT_EQ(compact_journal(dir, JournalStage::run), 1);
  EXPECT_EQ(decisions(read_journal(dir, JournalStage::run, &opened)), decisions(later));
  EXPECT_EQ(opened, 1);
  fs::remove_all(dir);
}

// A file whose writer still appends (another task of an array) is left alone, and what
// it gets later is read; a compaction killed after publishing its snapshot, before
// removing the files, counts nothing twice, and the next one removes them.
TEST(Journal, CompactionLeavesOpenFilesAndSurvivesACrash) {
  const fs::path dir = test::fresh_temp_dir("journal-crash");
  {
    JournalWriter a(dir, JournalStage::run, 0, "old");
    a.append(record("failed", "f"));
    a.append(record("failed", "f"));
  }
  JournalWriter live(dir, JournalStage::run, 1, "live");
  JournalRecord other = record("done", "f");
  other.tile = "10N_T073_T009";
  live.append(other);
  const fs::path saved = test::fresh_temp_dir("journal-crash-saved");
  for (const auto& e : fs::directory_iterator(dir)) fs::copy(e.path(), saved / e.path().filename());

  EXPECT_EQ(compact_journal(dir, JournalStage::run), 1) << "only the finished file";
  EXPECT_TRUE(fs::exists(live.file()));
  live.append(record("failed", "f"));  // still appending, after the compaction
  JournalHistory h = read_journal(dir, JournalStage::run);
  ASSERT_EQ(h.at("10N_T073_T008").size(), 3u);
  EXPECT_EQ(decide(h, "10N_T073_T008", "f", 3), TileAction::skip_failed);
  EXPECT_EQ(h.at("10N_T073_T009").back().status, TileStatus::done);

  // The moment after the snapshot was published: the absorbed file is back.
  fs::copy(saved / "run-old-r0.jsonl", dir / "run-old-r0.jsonl");
  h = read_journal(dir, JournalStage::run);
  EXPECT_EQ(h.at("10N_T073_T008").size(), 3u) << "the absorbed file was read again";
  live.close();
  EXPECT_EQ(compact_journal(dir, JournalStage::run), 2) << "the left-over file and the finished one";
  EXPECT_FALSE(fs::exists(dir / "run-old-r0.jsonl"));
  h = read_journal(dir, JournalStage::run);
  EXPECT_EQ(h.at("10N_T073_T008").size(), 3u);
  EXPECT_EQ(h.at("10N_T073_T009").size(), 1u);
  EXPECT_EQ(compact_journal(dir, JournalStage::run), 0) << "nothing left to fold";

  // A damaged snapshot is an error naming it, not a guess.
  std::ofstream(dir / "run.snapshot.jsonl") << "{not json\n";
  try {
    read_journal(dir, JournalStage::run);
    ADD_FAILURE() << "a damaged snapshot was read";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("run.snapshot.jsonl"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
  fs::remove_all(saved);
}

}  // namespace
}  // namespace eo
