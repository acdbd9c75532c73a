#ifndef GITFLEET_CONTROLPLANE_RENDER_FLEET_CLUSTER_GROUPS_H_
#define GITFLEET_CONTROLPLANE_RENDER_FLEET_CLUSTER_GROUPS_H_

// Rancher Fleet's ClusterGroup manifests, read as gitfleet's cluster groups (the control
// plane's --cluster-groups file): what `kubectl get clustergroups -A -o yaml` prints, or
// the manifests a Fleet repository keeps them in.
//
//   absl::StatusOr<std::vector<ClusterGroup>> groups =
//       ParseFleetClusterGroups(text, "--cluster-groups");
//
// Every YAML document is a ClusterGroup (apiVersion fleet.cattle.io/...) or a List of
// them. A group's metadata.name names it, metadata.labels are its labels (what
// clusterGroupSelector matches), and spec.selector (matchLabels, matchExpressions)
// selects its clusters by their labels; without one it holds no cluster, as in Fleet.
// Namespaces are not read: gitfleet's clusters are one fleet.

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/cluster_group.h"

namespace gitfleet {

inline constexpr size_t kMaxClusterGroups = 1000;
// The groups' names and labels, as a cluster in every group carries them (one line each,
// EncodeGroupMemberships), come to at most this many bytes.
inline constexpr size_t kMaxClusterGroupBytes = 64 << 10;

// The groups, in name order. InvalidArgument naming `file`, the document and the field
// for a document of another kind, a name that is not a Kubernetes name or is given twice,
// labels or a selector that are not Kubernetes', and past kMaxClusterGroups groups or
// kMaxClusterGroupBytes.
absl::StatusOr<std::vector<ClusterGroup>> ParseFleetClusterGroups(absl::string_view text,
                                                                  const std::string& file);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_FLEET_CLUSTER_GROUPS_H_
