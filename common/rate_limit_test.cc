#include "common/rate_limit.h"

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

TEST(TokenBucketTest, AllowsTheBurstThenTheRate) {
  TokenBucket bucket(2, 5);
  absl::Time t = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.Take(t)) << i;
  EXPECT_FALSE(bucket.Take(t));
  EXPECT_FALSE(bucket.Take(t + absl::Milliseconds(400)));
  EXPECT_TRUE(bucket.Take(t + absl::Milliseconds(600)));  // 1.2 tokens refilled
  EXPECT_FALSE(bucket.Take(t + absl::Milliseconds(700)));
  // A long pause refills to the burst, no further.
  int taken = 0;
  while (bucket.Take(t + absl::Hours(1))) ++taken;
  EXPECT_EQ(taken, 5);
}

}  // namespace
}  // namespace gitfleet
