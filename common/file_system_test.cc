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

TEST(PosixFileSystemTest, ReadFileAtMostStopsPastItsBound) {
  FileSystem& fs = PosixFileSystem();
  std::string path = TempDir() + "/f";
  ASSERT_TRUE(fs.WriteFileAtomically(path, std::string(100000, 'x')).ok());
  absl::StatusOr<std::string> whole = ReadFileAtMost(path, 100000);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->size(), 100000u);
  EXPECT_EQ(ReadFileAtMost(path, 99999).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ReadFileAtMost(path, 99999).status().message()),
              ::testing::HasSubstr(path + " is over 99999 bytes"));
  EXPECT_EQ(ReadFileAtMost(path + ".missing", 10).status().code(), absl::StatusCode::kNotFound);
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
