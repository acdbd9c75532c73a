#include "common/file_system.h"

#include <stdlib.h>
#include <sys/stat.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;

std::string TempDir() {
  std::string tmpl =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/fsXXXXXX";
  return mkdtemp(tmpl.data());
}

TEST(PosixFileSystemTest, WritesAtomicallyListsAndDeletesEmptyParents) {
  FileSystem& fs = PosixFileSystem();
  std::string root = TempDir();
  ASSERT_TRUE(fs.WriteFileAtomically(root + "/a/b/c.yaml", "one").ok());
  ASSERT_TRUE(fs.WriteFileAtomically(root + "/a/d.yaml", "two").ok());
  ASSERT_TRUE(fs.WriteFileAtomically(root + "/a/d.yaml", "three").ok());
  EXPECT_EQ(*fs.ReadFile(root + "/a/d.yaml"), "three");
  EXPECT_THAT(*fs.ListFiles(root), ElementsAre("a/b/c.yaml", "a/d.yaml"));
  ASSERT_TRUE(fs.DeleteFile(root + "/a/b/c.yaml", root).ok());
  struct stat st;
  EXPECT_NE(stat((root + "/a/b").c_str(), &st), 0) << "empty parent removed";
  EXPECT_EQ(stat((root + "/a").c_str(), &st), 0) << "non-empty parent kept";
  EXPECT_TRUE(fs.DeleteFile(root + "/a/missing.yaml", root).ok());
  EXPECT_EQ(fs.ReadFile(root + "/nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fs.ListFiles(root + "/absent")->empty());
}

TEST(FaultyFileSystemTest, FailsChosenPathsAndHeals) {
  MemoryFileSystem memory;
  FaultyFileSystem faulty(&memory);
  faulty.FailPathsContaining("/secret/");
  EXPECT_EQ(faulty.WriteFileAtomically("/x/secret/a", "v").code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(faulty.WriteFileAtomically("/x/other/a", "v").ok());
  faulty.Heal();
  EXPECT_TRUE(faulty.WriteFileAtomically("/x/secret/a", "v").ok());
  EXPECT_THAT(*faulty.ListFiles("/x"), ElementsAre("other/a", "secret/a"));
}

}  // namespace
}  // namespace gitfleet
