#ifndef GITFLEET_AGENT_KUBE_DRIFT_WATCH_H_
#define GITFLEET_AGENT_KUBE_DRIFT_WATCH_H_

// The Kubernetes change watch: one watch per kind the bundles hold, across all namespaces,
// of the objects labelled gitfleet.io/bundle, as Argo CD's cluster cache and every
// controller's informers watch. A hook's run (labelled gitfleet.io/hook too) counts by its
// status alone: its progress brings the bundle's next look at its hooks forward.
//
//   DriftWatcher watcher(kube.get(), mapper.get(), {});
//   watcher.Watch({{{"apps/v1", "Deployment"}, {"shop"}}});
//   ... watcher.TakeChanged() names the bundles whose objects someone edited ...
//
// Each kind's watch lists its objects first (the resourceVersion to watch from, and what
// each object looked like), then follows the watch, and lists again after a 410 Expired or
// a failure (bookmarks keep its resourceVersion fresh). A change counts when the object
// outside its status and bookkeeping (resourceVersion, managedFields, generation) differs
// from what was seen, or the object went; a status that differs counts apart (Changed.status),
// for the health to be read again.
// A namespaced kind the agent may not list or watch across namespaces (403: an agent bound
// by RoleBindings in its teams' namespaces rather than a ClusterRoleBinding) is watched in
// each namespace its bundles' objects are in instead, one watch each, until the watch
// across namespaces is allowed again (tried every forbidden_retry). A kind it may not
// watch at all, or one that fails, is left to the periodic checks, said in counts() and
// the log, and tried again later (or watched as a bundle's service account: AccountWatches,
// account_watch.h).
//
// Thread-safe. One thread per watch, at most Options.max_watches in all.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/apply/change_watch.h"
#include "agent/kube/client.h"
#include "agent/kube/discovery.h"
#include "common/sync.h"
#include "nlohmann/json.hpp"

namespace gitfleet {

class DriftWatcher : public ChangeWatch {
 public:
  struct Options {
    // Watches at once (a kind across namespaces, or a kind in one namespace); the kinds and
    // namespaces past it are checked on the periodic drift checks alone.
    size_t max_watches = 64;
    // Where a namespaced object that names no namespace in a bundle without a target
    // namespace lives (KubernetesApplier::Options::default_namespace).
    std::string default_namespace = "default";
    // How long one watch request lasts before it is made again from where it was.
    absl::Duration watch_timeout = absl::Minutes(5);
    absl::Duration min_backoff = absl::Seconds(1);
    absl::Duration max_backoff = absl::Minutes(1);
    // How long a kind the agent may not list or watch waits before it is tried again.
    absl::Duration forbidden_retry = absl::Minutes(5);
    // A kind not served yet (its CRD just applied) is looked up again after this.
    absl::Duration lookup_retry = absl::Seconds(10);
    // A watch event longer than this ends the watch (it is listed again instead).
    size_t max_event_bytes = 16 << 20;
    // Called (from a watch's thread) when a bundle is added to the changed set, or a change
    // starts waiting to be told apart from gitfleet's own write.
    std::function<void()> on_change;
    // How long a changed object waits for gitfleet to say it wrote that version (Written)
    // before it counts: its own apply's event often comes before the apply's answer.
    absl::Duration own_write_grace = absl::Milliseconds(250);
  };

  DriftWatcher(KubeClient* client, RestMapper* mapper, Options options);
  ~DriftWatcher() override;  // stops every watch (within about a second)

  void Watch(const Kinds& kinds) override;
  Changed TakeChanged() override;
  // A watch of the kind across namespaces, or of that namespace, is following it now.
  bool Watching(const Kind& kind, const std::string& ns) const override;
  // The agent may not watch the kind in namespace `ns` (as Kinds names it): 403 across
  // namespaces, and for a namespaced kind in that namespace too. False while it is still
  // finding out, and for a kind past the bound or not served.
  bool Forbidden(const Kind& kind, const std::string& ns) const;
  // gitfleet itself wrote the object at `name` ("namespace/name") of the collection
  // `collection` (a kind across namespaces), leaving it at `version`: the watch's event for
  // that version is no change to look at (KubernetesApplier::Options::on_written). The
  // event may come first; then it counts, as any change does.
  void Written(const std::string& collection, const std::string& name, const std::string& version);

  // Watches by state. A kind watched namespace by namespace counts its namespaces' watches
  // (and in `by_namespace`), not the one across namespaces it may not make.
  struct Counts {
    int watching = 0;      // listed and following a watch
    int starting = 0;      // listing, or waiting to list again after a failure
    int forbidden = 0;     // 403 on its list or watch
    int unwatched = 0;     // kinds or namespaces past max_watches, or kinds not served
    int by_namespace = 0;  // kinds watched in each of their namespaces instead
  };
  Counts counts() const;
  // Its watches' threads, whatever their state (a kind across namespaces that is refused
  // keeps one, asking again every forbidden_retry).
  size_t threads() const;

 private:
  enum class State { kStarting, kWatching, kForbidden };
  struct Worker {
    std::string path;         // what it lists and watches
    std::string collection;   // the kind's collection across namespaces
    std::string ns;           // the namespace it watches alone; "" across namespaces
    bool namespaced = false;  // a namespaced kind: it may fall back to its namespaces
    std::atomic<bool> stop{false};
    std::atomic<State> state{State::kStarting};
    // A 403 since its last good list (across namespaces: its namespaces are watched).
    std::atomic<bool> forbidden{false};
    std::thread thread;
  };
  // A kind the bundles hold, as served.
  struct Target {
    ApiResource resource;
    std::set<std::string> namespaces;  // "" resolved to the default namespace
  };
  // What one object looked like (by "namespace/name").
  struct Seen {
    std::string bundle;
    uint64_t digest = 0;
    uint64_t status = 0;  // of its status alone
    bool hook = false;    // a hook's run: only its status counts (its progress)
  };

  void Run(Worker* worker);
  // Starts and stops workers to match targets_ and the kinds forbidden across namespaces;
  // returns the stopped ones, for the caller to join outside the lock.
  std::vector<std::unique_ptr<Worker>> ArrangeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Join(std::vector<std::unique_ptr<Worker>>& stopped);
  // A worker across namespaces got a 403 (or a good list after one): its namespaces'
  // watches start (or stop) at the next arrangement.
  void Rearrange(Worker* worker);
  // A 403 on the worker's list or watch: said once, and its namespaces watched instead.
  void Forbidden(Worker* worker, const absl::Status& status);
  // Lists the kind into `seen` and `version`; the response's code when it is not 200.
  absl::Status List(Worker* worker, std::map<std::string, Seen>* seen, std::string* version);
  // One watch from `version` (updated as events come); false when it must list again.
  bool Follow(Worker* worker, std::map<std::string, Seen>* seen, std::string* version,
              absl::Status* error);
  // Names `bundle` as changed (its status alone, with `status`).
  void Note(const std::string& bundle, bool status = false);
  // Waits `duration`, or less when the worker is stopped; false when stopped.
  static bool Sleep(Worker* worker, absl::Duration duration);

  KubeClient* const client_;
  RestMapper* const mapper_;
  const Options options_;

  mutable Mutex mu_;
  Kinds kinds_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Target> targets_ ABSL_GUARDED_BY(mu_);    // by collection
  std::map<Kind, std::string> collections_ ABSL_GUARDED_BY(mu_);  // of targets_
  // Kinds the server did not serve at the last look, and when to look again.
  int unserved_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_lookup_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::map<std::string, std::unique_ptr<Worker>> workers_ ABSL_GUARDED_BY(mu_);  // by path
  bool arrange_ ABSL_GUARDED_BY(mu_) = false;  // a worker's 403 changed what to watch
  int over_limit_ ABSL_GUARDED_BY(mu_) = 0;
  Changed changed_ ABSL_GUARDED_BY(mu_);
  // gitfleet's own writes not seen yet: "collection\nnamespace/name" -> resourceVersion.
  std::map<std::string, std::string> written_ ABSL_GUARDED_BY(mu_);
  static constexpr size_t kMaxWritten = 100000;
  // Changes waiting (own_write_grace) to be told apart from gitfleet's own writes.
  struct Held {
    std::string version;
    std::vector<std::string> bundles;
    absl::Time due;
  };
  std::map<std::string, Held> held_ ABSL_GUARDED_BY(mu_);
  // An object changed outside its status at `version`: its bundles are named, unless it
  // was gitfleet's own write (told already, or within own_write_grace).
  void ContentChanged(const std::string& collection, const std::string& name,
                      const std::string& version, std::vector<std::string> bundles);
  // Names the bundles of the held changes that are due.
  void ReleaseHeldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

// What a change is judged on: the object without status, resourceVersion, managedFields,
// generation, apiVersion and kind (a list's items may lack the last two).
uint64_t ObjectDigest(nlohmann::json object);
// Of the object's status alone (0 for none).
uint64_t StatusDigest(const nlohmann::json& object);

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_KUBE_DRIFT_WATCH_H_
