#ifndef GITFLEET_CONTROLPLANE_RENDER_FLEET_SELECTOR_H_
#define GITFLEET_CONTROLPLANE_RENDER_FLEET_SELECTOR_H_

// Reading the cluster selectors of Rancher Fleet's fleet.yaml (targetCustomizations,
// rolloutStrategy.partitions) as gitfleet's selectors.
//
//   FleetSelectorText(node["clusterSelector"])  // "env=prod,tier in (a,b)"

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {

// Repository text read for notes and names is cut to this many bytes.
inline constexpr size_t kMaxFleetScalar = 256;

// A scalar of the repository's: bounded (kMaxFleetScalar), and no control character
// reaches a terminal ("" for no node or one that is not a scalar).
std::string FleetScalar(const YAML::Node& node);

// A Fleet clusterSelector (a Kubernetes LabelSelector) as gitfleet's selector text, or ""
// when it has none or one gitfleet cannot write.
std::string FleetSelectorText(const YAML::Node& selector);

// Whether a clusterSelector selects every cluster: no matchLabels, no matchExpressions.
bool FleetSelectsEverything(const YAML::Node& selector);

// A Kubernetes LabelSelector of a fleet.yaml or a ClusterGroup (a clusterSelector, a
// clusterGroupSelector, a spec.selector) as gitfleet's selector text ("" selects
// everything), or InvalidArgument "FIELD is not one gitfleet reads (matchLabels, and
// matchExpressions with In, ...)" or "FIELD: " and why the selector is none.
absl::StatusOr<std::string> ReadFleetSelector(const YAML::Node& selector, const std::string& field);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_FLEET_SELECTOR_H_
