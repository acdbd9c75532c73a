#ifndef GITFLEET_CONTROLPLANE_RENDER_FLEET_ROLLOUT_H_
#define GITFLEET_CONTROLPLANE_RENDER_FLEET_ROLLOUT_H_

// Rancher Fleet's rolloutStrategy (fleet.yaml), read as gitfleet's partitions. A
// repository moved from Fleet that says "staging, then production" keeps that order: a
// bundle without partitions of its own rolls out partition by partition, each waiting for
// its clusters to be Healthy, as gitfleet's --partition does.
//
//   absl::StatusOr<FleetRollout> read = ReadFleetRollout(options["rolloutStrategy"]);
//   // read->partitions[0]: {name "staging", selector "env=staging", max_unavailable ""}
//
// Read with gitfleet's gate, not Fleet's: a partition passes once at most its
// maxUnavailable clusters are not ready, and unset that is none (Fleet's default, 100%,
// waits for none: write `maxUnavailable: 100%` to keep it). maxUnavailablePartitions goes on
// past partitions not ready as Fleet does, but "0%" is none (Fleet's makes it 1).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {

// Fleet cuts clusters into partitions of autoPartitionSize only when at least this many
// are targeted; fewer are one partition.
inline constexpr int kFleetAutoPartitionFrom = 200;
// Fleet's autoPartitionSize when unset.
inline constexpr char kFleetAutoPartitionSize[] = "25%";
// At most this many partitions are read (as many as --partition takes).
inline constexpr size_t kMaxFleetPartitions = 100;

struct FleetRollout {
  // The fleet.yaml has a rolloutStrategy (a mapping). False: nothing below is set.
  bool declared = false;
  struct Partition {
    std::string name;  // its name, as written ("" when it has none)
    // Its clusterSelector as gitfleet's selector text ("" selects every cluster left), and
    // its clusterName ("" for any): a cluster is in the first partition both hold for.
    std::string selector;
    std::string cluster_name;
    std::string max_unavailable;  // "N" or "P%"; "" for the strategy's
    // Its clusterGroup ("" for any) and clusterGroupSelector (gitfleet's selector text,
    // when has_group_selector): a cluster must also be in such a group (--cluster-groups).
    std::string group;
    bool has_group_selector = false;
    std::string group_selector;
  };
  std::vector<Partition> partitions;
  std::string max_unavailable;  // "N" or "P%"; "" unset (gitfleet's default: 0)
  // maxUnavailablePartitions: "N" or "P%" of the partitions; "" unset (0).
  std::string max_unavailable_partitions;
  // With no partitions: the size the clusters are cut into from kFleetAutoPartitionFrom
  // clusters on ("N" or "P%"); "" when autoPartitionSize turns that off.
  std::string auto_partition_size;
  // What is read otherwise than Fleet reads it ("maxUnavailablePartitions is 0%: ...").
  std::vector<std::string> notes;
};

// Reads `strategy` (the value of fleet.yaml's rolloutStrategy; a missing or null node
// declares nothing). InvalidArgument naming the field ("rolloutStrategy.partitions[1]
// (canary): ...") for what Fleet would refuse (a maxUnavailable that is neither a count nor
// a percentage, a selector that is not one) and for what gitfleet cannot follow (a
// selector gitfleet cannot write; more than kMaxFleetPartitions partitions): deploying
// such a folder everywhere at once would ignore the order its repository asks for.
absl::StatusOr<FleetRollout> ReadFleetRollout(const YAML::Node& strategy);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_FLEET_ROLLOUT_H_
