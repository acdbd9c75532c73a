#ifndef GITFLEET_CONTROLPLANE_RENDER_FLEET_DIFF_H_
#define GITFLEET_CONTROLPLANE_RENDER_FLEET_DIFF_H_

// Rancher Fleet's `diff.comparePatches` (in fleet.yaml, and in its targetCustomizations), as
// gitfleet's rules for fields left to others (SyncOptions.ignore_differences, what a bundle's
// --ignore-difference writes). Fleet leaves out of its comparison, for the objects an entry
// names (apiVersion and kind; namespace and name when given):
//   - its `jsonPointers`;
//   - the paths of its `operations` that remove, replace or add a field (each applied to
//     both sides before comparing, so the field's value no longer counts), on the one object
//     the entry names.
// An autoscaler's replicas, a webhook's injected caBundle, a controller's annotations:
//
//   diff:
//     comparePatches:
//     - apiVersion: apps/v1
//       kind: Deployment
//       name: web
//       namespace: shop
//       jsonPointers: ["/spec/replicas"]
//
// gitfleet's agent also applies with the live values at those pointers, so they are neither
// drift nor set back (see --ignore-difference). What gitfleet cannot do the same way (an
// operation on no named object, which Fleet applies to none; `ignore`, which only keeps a
// missing object from counting as missing; move, copy and test) is described, not read.
//
//   GF_ASSIGN_OR_RETURN(FleetComparePatches read, ReadFleetComparePatches(fleet["diff"]));

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/gitfleet/v1/types.pb.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {

// At most this many entries are read; more fail the read.
inline constexpr size_t kMaxFleetComparePatches = 64;

struct FleetComparePatches {
  // One rule per entry that leaves something out (more when it names more than 16 pointers),
  // in order; at most 64 in all.
  std::vector<v1::IgnoreDifference> rules;
  // What of the entries is not read, each described ("comparePatches[2] (apps/v1 Deployment
  // web): op move"); at most ten, then counted.
  std::vector<std::string> not_read;
  int not_read_more = 0;
  bool empty() const { return rules.empty() && not_read.empty() && not_read_more == 0; }
};

// Reads a `diff` section (absent or null: nothing). InvalidArgument naming the entry and field
// at fault: not a mapping or list where Fleet has one, an entry without a kind, an apiVersion
// or pointer Kubernetes and RFC 6901 refuse, more than kMaxFleetComparePatches entries or 64
// rules.
absl::StatusOr<FleetComparePatches> ReadFleetComparePatches(const YAML::Node& diff);

// The flags a bundle would be given for `rules`:
// "--ignore-difference=apps/Deployment:shop/web=/spec/replicas ...".
std::string IgnoreDifferenceFlags(const std::vector<v1::IgnoreDifference>& rules);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_FLEET_DIFF_H_
