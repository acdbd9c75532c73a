#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_STATUS_BOUNDS_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_STATUS_BOUNDS_H_

// What one stored agent status may hold, whatever the agent sent: a message of at most
// 1 KiB (cut, with "..."), at most kMaxUnhealthyResources unhealthy resources, each
// message at most 1 KiB.
//
//   v1::StatusUpdate report = received;
//   BoundStatus(&report);

#include <cstddef>

#include "proto/gitfleet/v1/agent.pb.h"

namespace gitfleet {

inline constexpr size_t kMaxStatusMessageBytes = 1024;

void BoundStatus(v1::StatusUpdate* status);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_STATUS_BOUNDS_H_
