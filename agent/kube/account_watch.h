#ifndef GITFLEET_AGENT_KUBE_ACCOUNT_WATCH_H_
#define GITFLEET_AGENT_KUBE_ACCOUNT_WATCH_H_

// The change watch of an agent whose bundles are applied as service accounts: the agent's
// own watches first (DriftWatcher), and where the agent may not watch a kind in a
// namespace (403), a watch made as an account that applies it there, impersonating it as
// the account's applies do. An agent locked down to impersonation (Flux's
// --default-service-account; no list or watch of its own) so still hears a `kubectl
// edit` at once instead of at the next periodic check.
//
//   AccountWatches watches(&own, [&](const std::string& user) { return WatcherAs(user); }, 64);
//   watches.WatchAs({{"system:serviceaccount:shop:deployer", {{{"v1", "ConfigMap"}, {"shop"}}}}});
//   watches.Watch(kinds);
//   ... watches.TakeChanged() ...
//
// A kind and namespace goes to the first account (by user name) whose bundles hold it
// there, and stays with it while its bundles hold it there and it may watch it. An account
// that may not watch it either (403) is not given it again for `refused_retry`: the next
// account holding it there is tried; with none left it is left to the periodic checks.
// The agent's own watches and the accounts' share `max_watches` (a kind across namespaces
// and each namespace's count one each; the agent's own come first), so the threads stay
// within it. What each account watches is arranged again at each TakeChanged, as the
// watches find out what they may not do.
//
// Thread-safe.

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/apply/change_watch.h"
#include "agent/kube/drift_watch.h"
#include "common/sync.h"

namespace gitfleet {

class AccountWatches : public ChangeWatch {
 public:
  // A watcher whose requests impersonate `user`.
  using Factory =
      std::function<absl::StatusOr<std::shared_ptr<DriftWatcher>>(const std::string& user)>;

  AccountWatches(DriftWatcher* own, Factory factory, size_t max_watches,
                 absl::Duration refused_retry = absl::Minutes(5));
  ~AccountWatches() override;

  void Watch(const Kinds& kinds) override;
  void WatchAs(const std::map<std::string, Kinds>& by_user) override;
  Changed TakeChanged() override;
  bool Watching(const Kind& kind, const std::string& ns) const override;
  // Told to every watcher (DriftWatcher::Written).
  void Written(const std::string& collection, const std::string& name, const std::string& version);

  struct Counts {
    DriftWatcher::Counts all;  // the agent's own watches and the accounts', added
    int as_account = 0;        // of all.watching, those made as an account
    int accounts = 0;          // accounts watching something
  };
  Counts counts() const;
  // The watches' threads, the agent's own and the accounts' (at most max_watches, but for
  // a moment after the agent's own grow).
  size_t threads() const;

 private:
  // Gives each account the kinds and namespaces the agent may not watch itself.
  void Arrange();
  std::map<std::string, std::shared_ptr<DriftWatcher>> Watchers() const;

  // A kind in a namespace (as Kinds names it).
  using Place = std::pair<Kind, std::string>;

  DriftWatcher* const own_;
  const Factory factory_;
  const size_t max_watches_;
  const absl::Duration refused_retry_;

  Mutex arrange_mu_;  // one arrangement at a time (held across the factory's calls)
  mutable Mutex mu_;
  std::shared_ptr<const std::map<std::string, Kinds>> by_user_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<DriftWatcher>> watchers_ ABSL_GUARDED_BY(mu_);
  // Accounts no watcher could be made for (said once each; bounded).
  std::set<std::string> refused_ ABSL_GUARDED_BY(arrange_mu_);
  size_t over_ ABSL_GUARDED_BY(arrange_mu_) = 0;  // kinds left out at the last arrangement
  // Who watches each place the agent may not, as last arranged.
  std::map<Place, std::string> assigned_ ABSL_GUARDED_BY(arrange_mu_);
  // Accounts refused a place they were given (403), and until when they are passed over
  // there (bounded: kMaxRefusals).
  std::map<std::pair<std::string, Place>, absl::Time> refusals_ ABSL_GUARDED_BY(arrange_mu_);
  static constexpr size_t kMaxRefusals = 4096;
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_KUBE_ACCOUNT_WATCH_H_
