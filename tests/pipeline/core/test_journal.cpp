// The journal's records and decisions (DESIGN.md §5), without the executable: what a
// tile's history says to do, records read back across files in time order, torn lines.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "pipeline/core/journal.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

JournalRecord record(const std::string& status, const std::string& fingerprint) {
  JournalRecord r;
  r.tile = "10N_T073_T008";
  r.status = status;
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
    JournalWriter a(dir, "run", 0, "run-a"), b(dir, "run", 1, "run-b"), other(dir, "prepare", 0, "run-a");
    a.append(record("failed", "f"));
    b.append(record("done", "f"));
    JournalRecord second = record("done", "f");
    second.tile = "10N_T073_T009";
    a.append(second);
    other.append(record("done", "x"));
    std::ofstream(b.file(), std::ios::app) << R"({"stage": "run", "tile": "10N_T0)";  // a crash mid-line
  }
  const JournalHistory history = read_journal(dir, "run");
  ASSERT_EQ(history.size(), 2u);
  const auto& t8 = history.at("10N_T073_T008");
  ASSERT_EQ(t8.size(), 2u);
  EXPECT_EQ(t8[0].status, "failed");
  EXPECT_EQ(t8[0].rank, 0);
  EXPECT_EQ(t8[1].status, "done");
  EXPECT_EQ(t8[1].rank, 1);
  EXPECT_EQ(t8[1].run_id, "run-b");
  EXPECT_EQ(t8[1].stage, "run");
  EXPECT_EQ(read_journal(dir, "prepare").at("10N_T073_T008").back().fingerprint, "x");
  EXPECT_TRUE(read_journal(dir / "missing", "run").empty());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace eo
