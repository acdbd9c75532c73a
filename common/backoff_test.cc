#include "common/backoff.h"

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

TEST(BackoffTest, GrowsWithJitterUpToMaxAndResets) {
  Backoff backoff(absl::Milliseconds(100), absl::Seconds(1));
  absl::Duration ceiling = absl::Milliseconds(100);
  for (int i = 0; i < 10; ++i) {
    absl::Duration d = backoff.Next();
    EXPECT_GE(d, ceiling / 2) << "attempt " << i;
    EXPECT_LE(d, ceiling) << "attempt " << i;
    ceiling = std::min(absl::Seconds(1), ceiling * 2);
  }
  EXPECT_EQ(backoff.attempts(), 10);
  backoff.Reset();
  EXPECT_LE(backoff.Next(), absl::Milliseconds(100));
}

}  // namespace
}  // namespace gitfleet
