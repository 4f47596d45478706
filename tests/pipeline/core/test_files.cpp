// Publishing a file (pipeline/core/files.hpp), the one way every writer of the project
// makes a file appear: a process killed (SIGKILL, from a failpoint) between any two steps
// leaves the old file or the new one, whole, and at most a temporary that the sweeper
// removes.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pipeline/core/files.hpp"
#include "support/temp_dir.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int temporaries(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().starts_with(kTemporaryPrefix);
  return n;
}

class Publish : public ::testing::Test {
 protected:
  void SetUp() override {
    // Death tests re-run this binary: a fresh process reads EO_FAILPOINT anew.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    // One folder for the test and the children its death tests start (they inherit it).
    if (!std::getenv("EO_TEST_FILES_DIR")) ::setenv("EO_TEST_FILES_DIR", test::fresh_temp_dir("files").c_str(), 1);
    dir_ = std::getenv("EO_TEST_FILES_DIR");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(Publish, WritesWholeAndLeavesNoTemporary) {
  write_atomically(dir_ / "sub" / "a.json", "new");
  EXPECT_EQ(slurp(dir_ / "sub" / "a.json"), "new");
  write_atomically(dir_ / "sub" / "a.json", "newer");
  EXPECT_EQ(slurp(dir_ / "sub" / "a.json"), "newer");
  EXPECT_EQ(temporaries(dir_ / "sub"), 0);
}

TEST_F(Publish, AWriterThatFailsLeavesTheOldFileAndNoTemporary) {
  write_atomically(dir_ / "a.json", "old");
  EXPECT_THROW(publish_file(dir_ / "a.json",
                            [](const fs::path& tmp) {
                              std::ofstream(tmp) << "half";
                              throw std::runtime_error("disk full");
                            }),
               std::runtime_error);
  EXPECT_EQ(slurp(dir_ / "a.json"), "old");
  EXPECT_EQ(temporaries(dir_), 0);
}

TEST_F(Publish, APendingFileNeverPublishedIsRemoved) {
  fs::path tmp;
  {
    PendingFile pending(dir_ / "store.h5");
    tmp = pending.temporary();
    EXPECT_EQ(tmp.parent_path(), dir_) << "the temporary must be in the file's folder, for an atomic rename";
    EXPECT_TRUE(tmp.filename().string().ends_with("store.h5")) << "drivers chosen by extension must still see it";
    std::ofstream(tmp) << "part";
  }
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(dir_ / "store.h5"));
}

TEST_F(Publish, ASymbolicLinkIsPublishedToo) {
  fs::create_directory(dir_ / "cube-a");
  PendingFile pending(dir_ / "cube.zarr");
  fs::create_directory_symlink("cube-a", pending.temporary());
  pending.publish();
  EXPECT_EQ(fs::read_symlink(dir_ / "cube.zarr"), "cube-a");
}

// A kill at each step: before the rename the old file stays (a temporary is left for the
// sweeper); after it the new file is in place.
TEST_F(Publish, KilledBetweenEachStep) {
  struct Case {
    const char* failpoint;
    bool new_in_place;
  };
  for (const Case c : {Case{"publish-written", false}, Case{"publish-synced", false}, Case{"publish-renamed", true}}) {
    SCOPED_TRACE(c.failpoint);
    const fs::path file = dir_ / "report.json";
    // Not published: the child re-runs the test up to its statement, and a failpoint
    // passed before EO_FAILPOINT is set would read it unset for good.
    std::ofstream(file) << "old";
    const std::string spec = std::string(c.failpoint) + "@1=kill";
    EXPECT_EXIT(
        {
          ::setenv("EO_FAILPOINT", spec.c_str(), 1);
          write_atomically(file, "new");
          std::exit(0);
        },
        ::testing::KilledBySignal(SIGKILL), "");
    EXPECT_EQ(slurp(file), c.new_in_place ? "new" : "old");
    EXPECT_EQ(temporaries(dir_), c.new_in_place ? 0 : 1);
    EXPECT_EQ(remove_stale_temporaries(dir_), c.new_in_place ? 0 : 1);
    EXPECT_EQ(temporaries(dir_), 0);
    EXPECT_EQ(slurp(file), c.new_in_place ? "new" : "old");
  }
}

TEST_F(Publish, TheSweeperRemovesOnlyTemporariesAndGoesDownWhenAsked) {
  fs::create_directories(dir_ / "g" / "a");
  std::ofstream(dir_ / "keep.json") << "x";
  std::ofstream(dir_ / ".zattrs") << "x";  // a dot file that is not ours to remove
  std::ofstream(dir_ / (std::string(kTemporaryPrefix) + "1.keep.json")) << "x";
  std::ofstream(dir_ / "g" / "a" / (std::string(kTemporaryPrefix) + "2.0.0.0")) << "x";
  EXPECT_EQ(remove_stale_temporaries(dir_), 1);
  EXPECT_TRUE(fs::exists(dir_ / "g" / "a" / (std::string(kTemporaryPrefix) + "2.0.0.0")));
  EXPECT_EQ(remove_stale_temporaries(dir_, true), 1);
  EXPECT_TRUE(fs::exists(dir_ / "keep.json"));
  EXPECT_TRUE(fs::exists(dir_ / ".zattrs"));
  EXPECT_EQ(remove_stale_temporaries(dir_ / "missing"), 0);
}

}  // namespace
}  // namespace eo
