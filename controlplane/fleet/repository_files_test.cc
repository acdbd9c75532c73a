#include "controlplane/fleet/repository_files.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

// A reader of `bytes` bytes of content that counts its reads.
std::function<absl::StatusOr<std::vector<RepoFile>>()> Reader(int* reads, size_t bytes = 10) {
  return [reads, bytes]() -> absl::StatusOr<std::vector<RepoFile>> {
    ++*reads;
    return std::vector<RepoFile>{{"a", std::string(bytes - 1, 'x')}};
  };
}

// Two sources' commits rendered in turn read each repository once, not once a render.
TEST(RepositoryFilesTest, RendersOfTwoRepositoriesInTurnReadEachOnce) {
  RecentRepositoryFiles files;
  int a = 0, b = 0;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(files.Get("a@1", Reader(&a)).ok());
    ASSERT_TRUE(files.Get("b@1", Reader(&b)).ok());
  }
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
  absl::StatusOr<RecentRepositoryFiles::Files> got = files.Get("a@1", Reader(&a));
  ASSERT_TRUE(got.ok());
  ASSERT_EQ((*got)->size(), 1u);
  EXPECT_EQ((**got)[0].path, "a");
}

// Past its count or its bytes, the least recently used goes; the newest stays whatever
// its size, and a failed read keeps nothing.
TEST(RepositoryFilesTest, KeepsTheMostRecentlyUsedWithinItsBounds) {
  RecentRepositoryFiles files(/*entries=*/2, /*bytes=*/100);
  int reads = 0;
  ASSERT_TRUE(files.Get("a", Reader(&reads)).ok());
  ASSERT_TRUE(files.Get("b", Reader(&reads)).ok());
  ASSERT_TRUE(files.Get("a", Reader(&reads)).ok());  // a is now the most recent
  ASSERT_TRUE(files.Get("c", Reader(&reads)).ok());  // b goes
  EXPECT_EQ(reads, 3);
  ASSERT_TRUE(files.Get("a", Reader(&reads)).ok());
  EXPECT_EQ(reads, 3) << "a stayed";
  ASSERT_TRUE(files.Get("b", Reader(&reads)).ok());
  EXPECT_EQ(reads, 4) << "b was read again";

  ASSERT_TRUE(files.Get("big", Reader(&reads, 1000)).ok());  // over the bytes: alone
  ASSERT_TRUE(files.Get("big", Reader(&reads, 1000)).ok());
  EXPECT_EQ(reads, 5) << "the newest stays whatever its size";
  ASSERT_TRUE(files.Get("b", Reader(&reads)).ok());
  EXPECT_EQ(reads, 6) << "only big was kept";

  int failed = 0;
  auto failing = [&failed]() -> absl::StatusOr<std::vector<RepoFile>> {
    ++failed;
    return absl::UnavailableError("disk");
  };
  EXPECT_EQ(files.Get("d", failing).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(files.Get("d", failing).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(failed, 2);
}

}  // namespace
}  // namespace gitfleet
