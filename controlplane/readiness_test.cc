#include "controlplane/readiness.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

// A store whose reads can be made to fail, as a lost disk would.
class FailingStore : public MemoryStore {
 public:
  absl::StatusOr<std::string> Get(const std::string& bucket, const std::string& key) override {
    if (failing) return absl::UnavailableError("disk I/O error");
    return MemoryStore::Get(bucket, key);
  }
  bool failing = false;
};

TEST(ReadinessTest, ReadyOnlyWhileServingWithAStoreThatAnswers) {
  FailingStore store;
  ASSERT_TRUE(LoadOrCreateFleetId(&store).ok());
  Readiness readiness;
  EXPECT_THAT(readiness.Check().detail, HasSubstr("loading the store"));
  EXPECT_FALSE(readiness.Check().ok);
  readiness.SetStore(&store);
  EXPECT_THAT(readiness.Check().detail, HasSubstr("not serving yet"));
  readiness.SetPhase(Readiness::Phase::kServing);
  EXPECT_TRUE(readiness.Check().ok) << readiness.Check().detail;
  store.failing = true;
  Probe broken = readiness.Check();
  EXPECT_FALSE(broken.ok);
  EXPECT_THAT(broken.detail, HasSubstr("store: disk I/O error"));
  store.failing = false;
  readiness.SetPhase(Readiness::Phase::kDraining);
  EXPECT_THAT(readiness.Check().detail, HasSubstr("draining"));
}

}  // namespace
}  // namespace gitfleet
