#ifndef GITFLEET_CONTROLPLANE_FLEET_ROLLOUT_H_
#define GITFLEET_CONTROLPLANE_FLEET_ROLLOUT_H_

// Progressive rollouts: a bundle's targeted clusters cut into ordered partitions, each
// receiving a new render only once the partitions before it applied it and are Healthy.
//
//   std::vector<Partition> partitions = CutPartitions(strategy, clusters);
//   RolloutStep step = AdvanceRollout(record, partitions, strategy, now, progress);
//   gate = GateOf(record, partitions, gate.get());
//   hub->SetBundle(name, selector, content, generation, gate);
//
// Pure functions: the controller keeps the record, the hub says how clusters are doing.

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model/cluster_gate.h"
#include "common/model/label_selector.h"
#include "common/model/rollout_progress.h"
#include "controlplane/render/fleet_rollout.h"
#include "proto/gitfleet/v1/admin.pb.h"
#include "proto/gitfleet/v1/state.pb.h"
#include "proto/gitfleet/v1/types.pb.h"

namespace gitfleet {

inline constexpr absl::Duration kDefaultProgressDeadline = absl::Minutes(10);

// Whether the strategy partitions the clusters at all.
bool Progressive(const v1::RolloutStrategy& strategy);
// InvalidArgument naming the flag (--partition, --partition-size, --max-unavailable,
// --progress-deadline) and what is wrong with it.
absl::Status ValidateRolloutStrategy(const v1::RolloutStrategy& strategy);

// The prune guard (Bundle.max_prune). InvalidArgument naming the flag for a value that is
// none of "", "all", a count or a percentage.
absl::Status ValidateMaxPrune(const std::string& max_prune);
// Why a render that deletes `dropped` of the `before` objects the fleet runs is held for
// an operator under `max_prune`, or "" when it is not. The default ("") holds more than
// half of them when that is at least kDefaultPruneFloor.
inline constexpr size_t kDefaultPruneFloor = 10;
std::string PruneHeld(const std::string& max_prune, size_t dropped, size_t before);
// The default guard's look across the bundles of one repository at one ref (`sources`,
// "source app"): why a bundle that would delete `own` objects is held when that commit
// would delete `dropped` of the `before` objects those bundles run, more than half and at
// least kDefaultPruneFloor (a commit that empties many small bundles is held as one that
// empties a big one), or "" when it is not.
std::string StreamPruneHeld(size_t dropped, size_t before, size_t own, size_t bundles,
                            const std::string& sources);
// The same look, cluster by cluster: why a bundle is held when on `cluster` (and `alike`
// other clusters that run the same bundles) the commit would delete `dropped` of the
// `before` objects those bundles run there (more than half and at least
// kDefaultPruneFloor), though across the fleet it would not.
std::string ClusterPruneHeld(const std::string& cluster, size_t alike, size_t dropped,
                             size_t before, size_t own, size_t bundles, const std::string& sources);
absl::Duration ProgressDeadline(const v1::RolloutStrategy& strategy);
// How long a ready partition holds the next back (RolloutStrategy.bake_seconds); 0: none.
absl::Duration BakeTime(const v1::RolloutStrategy& strategy);
// The partitions `strategy` cuts, in words: "1 canary (cluster c2, none may be not ready),
// 2 production (env in (prod)), then the clusters left".
std::string DescribeRolloutStrategy(const v1::RolloutStrategy& strategy);

struct Partition {
  std::string selector;  // "" for a cut by size or the clusters left over
  std::vector<std::string> clusters;
  // A fleet.yaml's partition's name, and its own max_unavailable ("" for the strategy's):
  // v1::PartitionOptions.
  std::string name;
  std::string max_unavailable;

  bool operator==(const Partition& other) const {
    return selector == other.selector && clusters == other.clusters && name == other.name &&
           max_unavailable == other.max_unavailable;
  }
};
// The partitions of `clusters` (name and labels, any order): selectors first, in order,
// each taking what it matches of the clusters left (and, with partition_options, only the
// cluster it names, if it names one); the rest cut by partition_size in name order (when
// at least partition_size_from are left), or as one last partition. Empty partitions are
// dropped. The strategy must be valid.
std::vector<Partition> CutPartitions(const v1::RolloutStrategy& strategy,
                                     std::vector<std::pair<std::string, LabelMap>> clusters);

// `cut` (the partitions a rollout under way was cut into; it is at partition `current`,
// cut.size() once done) after the fleet changed, where `clusters` are the ones the bundle
// targets now: each stays in its partition, those no longer targeted leave theirs (a
// partition left empty stays, so that every partition keeps its place, and passes at
// once), and newly targeted ones join, in name order, the last partition if it has not
// started (or the rollout is done: they get the render at once), else a new last one. A
// change in the fleet thus never brings a cluster's turn forward, where cutting again
// from scratch could move it into a partition already passed, nor hands a started (or
// paused) partition more clusters.
std::vector<Partition> AdjustPartitions(const std::vector<Partition>& cut, int current,
                                        std::vector<std::pair<std::string, LabelMap>> clusters);

// How many clusters of `partition` (of `size`) may be not ready when the next starts: its
// own max_unavailable, else the strategy's.
int AllowedUnavailable(const v1::RolloutStrategy& strategy, const Partition& partition, int size);

// How many of `partitions` partitions may be not ready when a later one starts (Fleet's
// maxUnavailablePartitions, RolloutStrategy.max_unavailable_partitions): a count, or a
// percentage rounded down, at least 1 when above 0%. 0 unset.
int AllowedUnavailablePartitions(const v1::RolloutStrategy& strategy, int partitions);

// A paced rollout's bound (RolloutStrategy.paced) on the clusters of `partition` (of
// `size`) given the revision and not ready at once: its own max_unavailable, else the
// strategy's, as Fleet reads it (a percentage rounds down; at least 1); neither set, 1 for
// a bundle's own --paced. 0 when the strategy is not paced, or for a fleet.yaml's that
// sets neither (Fleet's 100%): the whole partition at once.
int PaceOf(const v1::RolloutStrategy& strategy, const Partition& partition, int size);
// The same bound over every partition reached so far (of `total` clusters), from a
// fleet.yaml strategy's max_unavailable alone; 0 when not paced, unset, or the bundle's
// own (its --max-unavailable is per partition).
int FleetPaceOf(const v1::RolloutStrategy& strategy, int total);

// A fleet.yaml's rolloutStrategy (read from `file`) as gitfleet's, for
// BundleRecord.fleet_rollout: not Progressive when it declares none, or none that cuts.
v1::RolloutStrategy FleetRolloutStrategy(const FleetRollout& read, const std::string& file);

struct RolloutStep {
  // Why it waits or why it is paused; "" once done.
  std::string message;
  // When to look again without news from the clusters (the deadline); InfiniteFuture
  // when there is nothing to wait for.
  absl::Time recheck = absl::InfiniteFuture();
  // The record changed (it must be stored).
  bool changed = false;
  // Reports the current partition needs at the least before it can pass: each report
  // changes one cluster, and more than AllowedUnavailable are not ready. (1: any report
  // may matter.)
  int reports_needed = 1;
};

// Moves `record` (already reset for the current render) through `partitions` as far as
// the clusters allow: a partition is passed once at most AllowedUnavailable of its
// clusters are not ready (or it was promoted) and, with a BakeTime, have stayed so that
// long (record.ready_since; the last partition has none), or, none of them failed, while
// with it at most AllowedUnavailablePartitions of the partitions reached are not ready
// (every cluster of a paced one given the revision first); it halts the rollout when more
// than that failed, or when it is not through by the deadline. `progress` tells how one
// partition's clusters are doing. A paced partition gives the render to its clusters in
// the cut's order, no more at a time than PaceOf not ready on it, and at once to those
// waiting their turn that `progress` says are down on an older revision
// (PartitionProgress.down), each counted as one not ready (as Fleet does).
RolloutStep AdvanceRollout(v1::RolloutRecord& record, const std::vector<Partition>& partitions,
                           const v1::RolloutStrategy& strategy, absl::Time now,
                           const std::function<PartitionProgress(const Partition&)>& progress);

// A revision that broke where it had worked: when more clusters of a partition the
// rollout has passed than that partition allows to be unavailable are in `regressed`
// (ready on the revision, then Degraded or failed on it; see Hub::Regressions), halts
// `record`, naming the first through `describe` (what is wrong with a cluster), and
// returns true. Clusters not yet reached keep what they run; an operator's resume or
// promote goes on. Costs one look-up per cluster of the passed partitions.
bool HaltOnRegressions(v1::RolloutRecord& record, const std::vector<Partition>& partitions,
                       const v1::RolloutStrategy& strategy,
                       const std::vector<std::string>& regressed,
                       const std::function<std::string(const std::string&)>& describe);

// Each cluster of `partitions` -> the index of its partition (a cluster is in one).
using PartitionIndex = absl::flat_hash_map<std::string, int>;
PartitionIndex IndexPartitions(const std::vector<Partition>& partitions);

// The clusters that may receive the render: every partition before the current one, and of
// the current one all of it, or when `paced` (PaceOf the current partition > 0) only its
// first record.admitted() (none for 0) and record.out_of_turn(); null (everyone) once the
// rollout is done. Built on
// `previous` (the gate the rollout had, or null) when that covers the same `partitions`: it then
// shares its index of clusters by partition (built once per cut) and tells the hub the clusters it
// adds (AddedTo).
std::shared_ptr<const ClusterGate> GateOf(const v1::RolloutRecord& record,
                                          std::shared_ptr<const std::vector<Partition>> partitions,
                                          const ClusterGate* previous = nullptr,
                                          bool paced = false);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_FLEET_ROLLOUT_H_
