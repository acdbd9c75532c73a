#include "agent/health/health.h"

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

v1::ResourceHealth Make(v1::HealthState state) {
  v1::ResourceHealth h;
  h.set_health(state);
  return h;
}

TEST(HealthSummaryTest, WorstWinsAndUnhealthyListIsBounded) {
  HealthSummary summary;
  EXPECT_EQ(summary.overall(), v1::HEALTH_STATE_HEALTHY);
  summary.Add(Make(v1::HEALTH_STATE_HEALTHY));
  summary.Add(Make(v1::HEALTH_STATE_PROGRESSING));
  EXPECT_EQ(summary.overall(), v1::HEALTH_STATE_PROGRESSING);
  summary.Add(Make(v1::HEALTH_STATE_DEGRADED));
  summary.Add(Make(v1::HEALTH_STATE_MISSING));
  EXPECT_EQ(summary.overall(), v1::HEALTH_STATE_DEGRADED);
  for (int i = 0; i < 100; ++i) summary.Add(Make(v1::HEALTH_STATE_MISSING));
  EXPECT_EQ(summary.unhealthy().size(), static_cast<size_t>(HealthSummary::kMaxUnhealthy));
  EXPECT_EQ(summary.unhealthy_count(), 103);
}

}  // namespace
}  // namespace gitfleet
