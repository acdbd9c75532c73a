#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_CLUSTER_REGISTRY_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_CLUSTER_REGISTRY_H_

// The clusters the control plane knows by name: each one's agent token (kept as its
// SHA-256) and the labels bundles target it by. Clusters come from two places:
// - `gitfleetctl cluster add` (the API), stored durably in the store;
// - --agent-tokens=FILE, read at start: "cluster token [k=v,...]" a line.
// A cluster registered through the API overrides a file line of the same name.
//
//   GF_ASSIGN_OR_RETURN(auto registry, ClusterRegistry::Load(store, &hub, path, false));
//   absl::Status ok = registry->Check("eu-1", token);
//   GF_ASSIGN_OR_RETURN(std::string token, registry->Register("eu-2", {{"env", "prod"}}));
//
// Every change is on disk before it is answered, and pushed to the hub (labels, and
// closing the stream of a cluster whose token changed or that was removed).
// Thread-safe.

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/model/label_selector.h"
#include "common/sync.h"
#include "controlplane/distribute/hub.h"
#include "controlplane/store/store.h"

namespace gitfleet {

class ClusterRegistry {
 public:
  // `hub` may be null (tests of the registry alone). With `allow_any_agent`, agents of
  // clusters not registered are accepted without a token (demos and tests only).
  static absl::StatusOr<std::unique_ptr<ClusterRegistry>> Load(Store* store, Hub* hub,
                                                               const std::string& tokens_path,
                                                               bool allow_any_agent);
  static absl::StatusOr<std::unique_ptr<ClusterRegistry>> Create(Store* store, Hub* hub,
                                                                 const std::string& tokens_text,
                                                                 const std::string& origin,
                                                                 bool allow_any_agent);

  // Unauthenticated, naming the cluster, when `token` is not the registered cluster's,
  // or the cluster is not registered (unless any agent is allowed). One answer for all
  // of these: a caller without a token learns nothing about which clusters exist.
  absl::Status Check(const std::string& cluster, const std::string& token) const;
  // Which of those it was, for the control plane's own log only.
  std::string Explain(const std::string& cluster, const std::string& token) const;
  // True the first time a given cluster is refused, so callers log each once (bounded).
  bool FirstRefusal(const std::string& cluster);

  // Registers `name` with `labels`; returns its new token. ALREADY_EXISTS if registered.
  absl::StatusOr<std::string> Register(const std::string& name, const LabelMap& labels);
  absl::Status SetLabels(const std::string& name, const LabelMap& labels);
  // A new token; the old one stops working and the connected agent is disconnected.
  absl::StatusOr<std::string> RotateToken(const std::string& name);
  // Retires `name`: its agent is refused from now on; what it holds stays applied.
  absl::Status Remove(const std::string& name);

  bool allow_any_agent() const { return allow_any_agent_; }
  size_t size() const;

 private:
  struct Entry {
    LabelMap labels;
    bool has_labels = false;  // a file line without labels leaves targeting to the agent's
    std::string token_sha256;
    bool from_api = false;
  };
  ClusterRegistry(Store* store, Hub* hub, bool allow_any_agent)
      : store_(store), hub_(hub), allow_any_agent_(allow_any_agent) {}

  bool Matches(const std::string& cluster, const std::string& token) const;
  // Writes the registration; with writer_mu_ held (and not mu_: handshakes never wait on
  // the disk).
  absl::Status PersistLocked(const std::string& name, const Entry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // The registered entry of `name`; NotFound naming the command that registers it.
  absl::StatusOr<Entry> FindLocked(const std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Persists `entry`, then installs it.
  absl::Status SaveLocked(const std::string& name, const Entry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Tells the hub, in the order of the changes (writer_mu_ held, which the hub never takes).
  void PublishLocked(const std::string& name, const Entry* entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) ABSL_LOCKS_EXCLUDED(mu_);

  Store* const store_;
  Hub* const hub_;
  const bool allow_any_agent_;
  // Serializes registrations, held across their store writes; mu_ guards the map and is
  // held only to read or install it.
  Mutex writer_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable Mutex mu_;
  std::map<std::string, Entry> clusters_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> refused_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_CLUSTER_REGISTRY_H_
