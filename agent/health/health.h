#ifndef GITFLEET_AGENT_HEALTH_HEALTH_H_
#define GITFLEET_AGENT_HEALTH_HEALTH_H_

// Rolls per-object health up to a bundle: the worst state wins, in the order
// Healthy < Progressing < Unknown < Missing < Degraded.
//
//   HealthSummary summary;
//   for (...) summary.Add(applier.Health(object, context));
//   v1::HealthState overall = summary.overall();

#include <vector>

#include "common/agent_protocol.h"
#include "proto/gitfleet/v1/types.pb.h"

namespace gitfleet {

class HealthSummary {
 public:
  // Keeps at most this many unhealthy resources, so status stays small.
  static constexpr int kMaxUnhealthy = kMaxUnhealthyResources;

  void Add(const v1::ResourceHealth& health);
  v1::HealthState overall() const { return overall_; }
  const std::vector<v1::ResourceHealth>& unhealthy() const { return unhealthy_; }
  int unhealthy_count() const { return unhealthy_count_; }

 private:
  v1::HealthState overall_ = v1::HEALTH_STATE_HEALTHY;
  std::vector<v1::ResourceHealth> unhealthy_;
  int unhealthy_count_ = 0;
};

// Severity rank used for the roll-up; higher is worse.
int HealthRank(v1::HealthState state);

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_HEALTH_HEALTH_H_
