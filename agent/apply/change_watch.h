#ifndef GITFLEET_AGENT_APPLY_CHANGE_WATCH_H_
#define GITFLEET_AGENT_APPLY_CHANGE_WATCH_H_

// What tells the reconciler, between its periodic drift checks, which bundles have a live
// object someone else changed or deleted, so a `kubectl edit` is healed in about a second
// rather than at the next check. The checks stay: a change watch only brings one forward.
//
//   watch->Watch({{"apps/v1", "Deployment"}, {"v1", "ConfigMap"}});
//   for (const std::string& bundle : watch->TakeChanged()) ... check it for drift ...

#include <set>
#include <string>
#include <utility>

namespace gitfleet {

class ChangeWatch {
 public:
  // (apiVersion, kind)
  using Kind = std::pair<std::string, std::string>;

  virtual ~ChangeWatch() = default;
  // The kinds of the objects the bundles hold now; called again whenever that changes.
  virtual void Watch(const std::set<Kind>& kinds) = 0;
  // The bundles with a live object that changed or went since the last call (gitfleet's own
  // writes included: a check then finds nothing to do).
  virtual std::set<std::string> TakeChanged() = 0;
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_APPLY_CHANGE_WATCH_H_
