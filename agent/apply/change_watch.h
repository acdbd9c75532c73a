#ifndef GITFLEET_AGENT_APPLY_CHANGE_WATCH_H_
#define GITFLEET_AGENT_APPLY_CHANGE_WATCH_H_

// What tells the reconciler, between its periodic drift checks, which bundles have a live
// object someone else changed or deleted, so a `kubectl edit` is healed in about a second
// rather than at the next check, and which have an object whose status moved, so its
// health is read again at once rather than at the next health poll. The checks and polls
// stay: a change watch only brings one forward.
//
//   watch->Watch({{{"apps/v1", "Deployment"}, {"shop"}}, {{"v1", "ConfigMap"}, {"shop", "web"}}});
//   ChangeWatch::Changed changed = watch->TakeChanged();
//   ... check changed.content for drift, read the health of changed.status ...

#include <map>
#include <set>
#include <string>
#include <utility>

namespace gitfleet {

class ChangeWatch {
 public:
  // (apiVersion, kind)
  using Kind = std::pair<std::string, std::string>;
  // Each kind the bundles hold, with the namespaces their objects of it are in as written
  // in the revision: an object's own, else its bundle's target namespace, else "" (the
  // agent's default namespace for a namespaced kind; nothing for a cluster-scoped one).
  using Kinds = std::map<Kind, std::set<std::string>>;

  struct Changed {
    // Bundles with a live object that changed outside its status, or went (gitfleet's own
    // writes included: a check then finds nothing to do).
    std::set<std::string> content;
    // Bundles with a live object whose status changed (a controller's progress).
    std::set<std::string> status;
  };

  virtual ~ChangeWatch() = default;
  // The kinds of the objects the bundles hold now; called again whenever that changes.
  virtual void Watch(const Kinds& kinds) = 0;
  // Of those, the kinds of the bundles applied as each service account (by the user its
  // requests impersonate), told just before each Watch: where the agent may not watch a
  // kind itself, it may watch as an account that applies it. By default: not used.
  virtual void WatchAs(const std::map<std::string, Kinds>& by_user) {}
  // What changed since the last call.
  virtual Changed TakeChanged() = 0;
  // Whether a change to an object of `kind` in namespace `ns` (as Kinds names it) is heard
  // now: a watch follows it. The reconciler's periodic checks of a bundle whose objects are
  // all heard so come at a longer interval (the watch brings one forward on a change).
  virtual bool Watching(const Kind& kind, const std::string& ns) const { return false; }
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_APPLY_CHANGE_WATCH_H_
