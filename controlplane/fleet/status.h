#ifndef GITFLEET_CONTROLPLANE_FLEET_STATUS_H_
#define GITFLEET_CONTROLPLANE_FLEET_STATUS_H_

// Composes the status of one (cluster, bundle) pair from what the control plane wants
// (the bundle's last good revision and render error) and what the agent last reported.
//
//   v1::BundleStatus s = ComposeStatus(cluster_info, bundle_info, seen, report);

#include <string>

#include "absl/time/time.h"
#include "proto/gitfleet/v1/admin.pb.h"
#include "proto/gitfleet/v1/agent.pb.h"

namespace gitfleet {

// `report` is null when the agent never reported on this bundle. `held_back` says why the
// cluster is not given the bundle's revision yet (empty: nothing holds it back).
// `not_deployed` says why the bundle's files leave the cluster out (empty: they do not).
v1::BundleStatus ComposeStatus(const v1::ClusterInfo& cluster, const v1::BundleInfo& bundle,
                               const google::protobuf::Timestamp& committed_time,
                               const google::protobuf::Timestamp& seen_time,
                               const v1::StatusUpdate* report, const std::string& held_back = "",
                               const std::string& not_deployed = "");

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_FLEET_STATUS_H_
