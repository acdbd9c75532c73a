#include "controlplane/store/store.h"

#include <stdlib.h>
#include <unistd.h>

#include "controlplane/store/store_conformance.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

std::string TempPath() {
  std::string tmpl =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/storeXXXXXX";
  return std::string(mkdtemp(tmpl.data())) + "/sub/gitfleet.db";
}

TEST(MemoryStoreTest, PutsListsAndDeletes) {
  MemoryStore store;
  ExerciseStore(store);
}

TEST(SqliteStoreTest, PutsListsDeletesAndSurvivesReopen) {
  std::string path = TempPath();
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ExerciseStore(**store);
  }
  auto reopened = SqliteStore::Open(path);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(*(*reopened)->Get("sources", "b"), "2");
}

TEST(SqliteStoreTest, RefusesAFileThatIsNotADatabase) {
  std::string path = TempPath();
  ASSERT_TRUE(SqliteStore::Open(path).ok());
  FILE* f = fopen(path.c_str(), "w");
  fputs("this is not sqlite at all, just text that is long enough to matter\n", f);
  fclose(f);
  unlink((path + "-wal").c_str());
  unlink((path + "-shm").c_str());
  auto store = SqliteStore::Open(path);
  EXPECT_FALSE(store.ok());
  EXPECT_NE(std::string(store.status().message()).find(path), std::string::npos);
}

}  // namespace
}  // namespace gitfleet
