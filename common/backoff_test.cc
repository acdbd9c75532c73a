#include "common/backoff.h"

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

TEST(BackoffTest, GrowsWithFullJitterUpToMaxAndResets) {
  Backoff backoff(absl::Milliseconds(100), absl::Seconds(1));
  absl::Duration ceiling = absl::Milliseconds(100);
  for (int i = 0; i < 10; ++i) {
    absl::Duration d = backoff.Next();
    EXPECT_GE(d, absl::ZeroDuration()) << "attempt " << i;
    EXPECT_LE(d, ceiling) << "attempt " << i;
    ceiling = std::min(absl::Seconds(1), ceiling * 2);
  }
  // Full jitter uses the whole window: over many draws some fall in its first half.
  Backoff many(absl::Seconds(1), absl::Seconds(1));
  int early = 0;
  for (int i = 0; i < 200; ++i) early += many.Next() < absl::Milliseconds(500);
  EXPECT_GT(early, 50);
  EXPECT_LT(early, 150);
  EXPECT_EQ(backoff.attempts(), 10);
  backoff.Reset();
  EXPECT_LE(backoff.Next(), absl::Milliseconds(100));
  backoff.Spread(absl::Milliseconds(800), 3);
  for (int i = 0; i < 3; ++i) EXPECT_LE(backoff.Next(), absl::Milliseconds(800)) << "spread";
  // Then it backs off from the window as usual, up to max.
  for (int i = 0; i < 20; ++i) EXPECT_LE(backoff.Next(), absl::Seconds(1));
}

}  // namespace
}  // namespace gitfleet
