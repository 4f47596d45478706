// The output lock (DESIGN.md §5) in one process: each OutputLock opens the file anew, so
// flock(2) treats two of them as two runs.

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <unistd.h>

#include "pipeline/core/lock.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

class Lock : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_temp_dir("lock"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(Lock, ASecondRunIsRefusedNamingTheHolderUntilTheFirstEnds) {
  const fs::path file = dir_ / "run.lock";
  std::optional<OutputLock> first;
  first.emplace(file, "eo-pipeline run (2 ranks)");
  EXPECT_TRUE(first->first());
  try {
    OutputLock second(file, "eo-pipeline run (4 ranks)");
    FAIL() << "a second run took the lock";
  } catch (const LockedError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("in use by another run"), std::string::npos) << what;
    EXPECT_NE(what.find("eo-pipeline run (2 ranks)"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(::getpid())), std::string::npos) << what;
  }
  first.reset();
  OutputLock third(file, "eo-pipeline run");
  EXPECT_TRUE(third.first()) << "the lock must be free once its holder is gone";
}

TEST_F(Lock, TheTasksOfOneArrayShareItOthersAreRefused) {
  const fs::path file = dir_ / "run.lock";
  OutputLock task0(file, "task 0", "slurm-array-7");
  EXPECT_TRUE(task0.first());
  task0.setup_done();
  OutputLock task1(file, "task 1", "slurm-array-7");
  EXPECT_FALSE(task1.first()) << "the second task must not clean up what the first is writing";
  task1.setup_done();
  EXPECT_THROW(OutputLock(file, "another array", "slurm-array-8"), LockedError);
  EXPECT_THROW(OutputLock(file, "a plain run"), LockedError);
}

}  // namespace
}  // namespace eo
