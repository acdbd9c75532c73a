#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_CLUSTER_REGISTRY_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_CLUSTER_REGISTRY_H_

// The clusters the control plane knows by name: each one's agent token (kept as its
// SHA-256) and the labels bundles target it by. Clusters come from two places:
// - `gitfleetctl cluster add` (the API), stored durably in the store;
// - --agent-tokens=FILE: "cluster token [k=v,...]" a line. The file is read again when it
//   changes (Refresh, or the thread WatchFile starts), so a leaked token is revoked, a
//   cluster added or retired, without a restart. A line removed retires its cluster and a
//   token changed stops the old one; either closes the agent's stream. An edit that does
//   not parse, or leaves the file empty, keeps what is in force (logged once).
// A cluster registered through the API overrides a file line of the same name.
//
//   GF_ASSIGN_OR_RETURN(auto registry, ClusterRegistry::Load(store, &hub, path, false));
//   registry->WatchFile();
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
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/model/label_selector.h"
#include "common/sync.h"
#include "common/watched_files.h"
#include "controlplane/distribute/hub.h"
#include "controlplane/store/store.h"

namespace gitfleet {

class ClusterRegistry {
 public:
  // `hub` may be null (tests of the registry alone). With `allow_any_agent`, agents of
  // clusters not registered are accepted without a token (demos and tests only).
  static absl::StatusOr<std::unique_ptr<ClusterRegistry>> Load(Store* store, Hub* hub,
                                                               const std::string& tokens_path,
                                                               bool allow_any_agent,
                                                               WatchedFilesOptions options = {});
  static absl::StatusOr<std::unique_ptr<ClusterRegistry>> Create(Store* store, Hub* hub,
                                                                 const std::string& tokens_text,
                                                                 const std::string& origin,
                                                                 bool allow_any_agent,
                                                                 Clock* clock = &RealClock());

  // Unauthenticated, naming the cluster, when `token` is not the registered cluster's,
  // or the cluster is not registered (unless any agent is allowed). One answer for all
  // of these: a caller without a token learns nothing about which clusters exist. A token
  // a rotation replaced is accepted until its grace ends; then `old_until` (when given)
  // says until when, and InfinitePast for the current token.
  absl::Status Check(const std::string& cluster, const std::string& token,
                     absl::Time* old_until = nullptr) const;
  // Which of those it was, for the control plane's own log only.
  std::string Explain(const std::string& cluster, const std::string& token) const;
  // True the first time a given cluster is refused, so callers log each once (bounded).
  bool FirstRefusal(const std::string& cluster);

  // Registers `name` with `labels`; returns its new token. ALREADY_EXISTS if registered.
  absl::StatusOr<std::string> Register(const std::string& name, const LabelMap& labels);
  // Labels that no longer match bundles the cluster holds would remove them from it
  // (pruning their objects where they prune): that is an explicit act, so it is refused
  // (FailedPrecondition, naming them) unless `allow_removal`.
  absl::Status SetLabels(const std::string& name, const LabelMap& labels,
                         bool allow_removal = false);
  // A new token. With no `grace`, the old one stops working and the connected agent is
  // disconnected. With one (at most kMaxTokenGrace), the old one works until it ends,
  // so each cluster's agent can be given the new token first: a connected agent stays
  // so until then, when the registry closes the stream of any still on the old token.
  // A rotation during a grace ends that grace's token at once.
  static constexpr absl::Duration kMaxTokenGrace = absl::Hours(7 * 24);
  struct Rotated {
    std::string token;
    absl::Time old_valid_until = absl::InfinitePast();  // with a grace
  };
  absl::StatusOr<Rotated> RotateToken(const std::string& name,
                                      absl::Duration grace = absl::ZeroDuration());
  // Ends the graces that are over: closes the streams of the clusters whose agent
  // connected with a replaced token, and returns them. Run by a thread of the
  // registry's own while a grace runs; for tests.
  std::vector<std::string> ExpireGraces() ABSL_LOCKS_EXCLUDED(mu_);
  // Retires `name`: its agent is refused from now on; what it holds stays applied.
  absl::Status Remove(const std::string& name);

  // Applies what --agent-tokens holds now, when it changed (read at most once per the
  // options' recheck). A no-op for a registry made by Create.
  void Refresh() ABSL_LOCKS_EXCLUDED(writer_mu_, mu_);
  // Calls Refresh every `every` on a thread of its own, until the registry is destroyed.
  void WatchFile(absl::Duration every = absl::Milliseconds(250));

  bool allow_any_agent() const { return allow_any_agent_; }
  size_t size() const;

  ~ClusterRegistry();

 private:
  struct Entry {
    LabelMap labels;
    bool has_labels = false;  // a file line without labels leaves targeting to the agent's
    std::string token_sha256;
    bool from_api = false;
    // The token the last rotation replaced, until when it works, and whether the end of
    // its grace was dealt with (ExpireGraces).
    std::string previous_sha256;
    absl::Time previous_until = absl::InfinitePast();
    bool grace_over = true;
  };
  using FileClusters = std::map<std::string, Entry>;
  ClusterRegistry(Store* store, Hub* hub, bool allow_any_agent, Clock* clock)
      : store_(store), hub_(hub), allow_any_agent_(allow_any_agent), clock_(clock) {}

  // The lines of an --agent-tokens file; errors name `origin` and the line.
  static absl::StatusOr<FileClusters> ParseFile(const std::string& text, const std::string& origin);
  // With the file's clusters parsed, adds the stored registrations and installs both.
  static absl::StatusOr<std::unique_ptr<ClusterRegistry>> Install(Store* store, Hub* hub,
                                                                  FileClusters file,
                                                                  bool allow_any_agent,
                                                                  Clock* clock);
  // Moves from the file's clusters `before` to `after`; registrations made through the
  // API are left alone.
  void ApplyFileLocked(const FileClusters& before, const FileClusters& after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) ABSL_LOCKS_EXCLUDED(mu_);

  // Which of the cluster's tokens `token` is (kNone: none, or no token). With `note`, an
  // accepted one is recorded in on_previous_ under the same lock (a connect).
  enum class Which { kUnregistered, kNone, kCurrent, kPreviousInGrace, kPreviousExpired };
  Which Matches(const std::string& cluster, const std::string& token, absl::Time* previous_until,
                bool note) const ABSL_LOCKS_EXCLUDED(mu_);
  // Starts the thread that ends graces, if it is not running, and wakes it.
  void WakeExpiry() ABSL_LOCKS_EXCLUDED(watch_mu_, mu_);
  // The earliest end of a grace not dealt with yet (InfiniteFuture: none).
  absl::Time NextGraceEnd() const ABSL_LOCKS_EXCLUDED(mu_);
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
  Clock* const clock_;
  // Serializes registrations, held across their store writes; mu_ guards the map and is
  // held only to read or install it.
  Mutex writer_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable Mutex mu_;
  std::map<std::string, Entry> clusters_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> refused_ ABSL_GUARDED_BY(mu_);
  // Clusters whose agent was last let in with the token a rotation replaced.
  mutable std::set<std::string> on_previous_ ABSL_GUARDED_BY(mu_);
  // --agent-tokens (null from Create), and the content of it last applied.
  std::unique_ptr<WatchedFiles<FileClusters>> file_;
  std::shared_ptr<const FileClusters> applied_file_ ABSL_GUARDED_BY(writer_mu_);
  Mutex watch_mu_;
  bool stopping_ ABSL_GUARDED_BY(watch_mu_) = false;
  bool expiry_woken_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread watcher_;
  std::thread expirer_ ABSL_GUARDED_BY(watch_mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_CLUSTER_REGISTRY_H_
