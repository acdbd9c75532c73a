#ifndef GITFLEET_COMMON_MODEL_CLUSTER_GATE_H_
#define GITFLEET_COMMON_MODEL_CLUSTER_GATE_H_

// Which clusters may receive a bundle's newest content: the hub asks a gate about each
// agent it sends to, and a rollout widens its gate partition by partition. A gate built
// by adding clusters to another says which (AddedTo), so the hub looks at only those and
// a widening costs the partition's size, not the fleet's.
//
//   std::shared_ptr<const ClusterGate> gate = ClusterSetGate::Of({"c1", "c2"});
//   if (gate->Allows("c1")) ...
//
// Immutable, so thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"

namespace gitfleet {

class ClusterGate {
 public:
  virtual ~ClusterGate() = default;
  virtual bool Allows(const std::string& cluster) const = 0;
  // When this gate is exactly `previous` plus some clusters: true, with those in `added`.
  // Otherwise (or with no previous) false, and the caller looks at every cluster.
  virtual bool AddedTo(const ClusterGate* previous, std::vector<std::string>* added) const {
    return false;
  }
  // Allows the same clusters as `other` (false when it cannot tell cheaply).
  virtual bool SameAs(const ClusterGate& other) const = 0;
};

// A gate of the clusters named.
class ClusterSetGate : public ClusterGate {
 public:
  static std::shared_ptr<const ClusterGate> Of(absl::flat_hash_set<std::string> clusters) {
    return std::make_shared<const ClusterSetGate>(std::move(clusters));
  }
  explicit ClusterSetGate(absl::flat_hash_set<std::string> clusters)
      : clusters_(std::move(clusters)) {}
  bool Allows(const std::string& cluster) const override { return clusters_.contains(cluster); }
  bool SameAs(const ClusterGate& other) const override {
    auto* set = dynamic_cast<const ClusterSetGate*>(&other);
    return set != nullptr && set->clusters_ == clusters_;
  }

 private:
  const absl::flat_hash_set<std::string> clusters_;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MODEL_CLUSTER_GATE_H_
