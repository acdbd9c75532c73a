#include "agent/health/health.h"

namespace gitfleet {

int HealthRank(v1::HealthState state) {
  switch (state) {
    case v1::HEALTH_STATE_HEALTHY:
      return 0;
    case v1::HEALTH_STATE_PROGRESSING:
      return 1;
    case v1::HEALTH_STATE_UNKNOWN:
    case v1::HEALTH_STATE_UNSPECIFIED:
      return 2;
    case v1::HEALTH_STATE_MISSING:
      return 3;
    case v1::HEALTH_STATE_DEGRADED:
      return 4;
    default:
      return 2;
  }
}

void HealthSummary::Add(const v1::ResourceHealth& health) {
  if (HealthRank(health.health()) > HealthRank(overall_)) overall_ = health.health();
  if (health.health() != v1::HEALTH_STATE_HEALTHY) {
    ++unhealthy_count_;
    if (static_cast<int>(unhealthy_.size()) < kMaxUnhealthy) unhealthy_.push_back(health);
  }
}

}  // namespace gitfleet
