#include "agent/kube/account_watch.h"

#include <algorithm>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace gitfleet {

AccountWatches::AccountWatches(DriftWatcher* own, Factory factory, size_t max_watches,
                               absl::Duration refused_retry)
    : own_(own),
      factory_(std::move(factory)),
      max_watches_(max_watches),
      refused_retry_(refused_retry) {}

AccountWatches::~AccountWatches() {
  std::map<std::string, std::shared_ptr<DriftWatcher>> watchers;
  {
    MutexLock lock(&mu_);
    watchers.swap(watchers_);
  }
  // Each stops its watches as it goes (outside the lock: that takes up to a second).
}

void AccountWatches::WatchAs(const std::map<std::string, Kinds>& by_user) {
  auto copy = std::make_shared<const std::map<std::string, Kinds>>(by_user);
  MutexLock lock(&mu_);
  by_user_ = std::move(copy);
}

void AccountWatches::Watch(const Kinds& kinds) {
  own_->Watch(kinds);
  Arrange();
}

ChangeWatch::Changed AccountWatches::TakeChanged() {
  Changed changed = own_->TakeChanged();
  for (const auto& [user, watcher] : Watchers()) {
    Changed theirs = watcher->TakeChanged();
    changed.content.insert(theirs.content.begin(), theirs.content.end());
    changed.status.insert(theirs.status.begin(), theirs.status.end());
  }
  Arrange();
  return changed;
}

bool AccountWatches::Watching(const Kind& kind, const std::string& ns) const {
  if (own_->Watching(kind, ns)) return true;
  for (const auto& [user, watcher] : Watchers()) {
    if (watcher->Watching(kind, ns)) return true;
  }
  return false;
}

void AccountWatches::Written(const std::string& collection, const std::string& name,
                             const std::string& version) {
  own_->Written(collection, name, version);
  for (const auto& [user, watcher] : Watchers()) watcher->Written(collection, name, version);
}

AccountWatches::Counts AccountWatches::counts() const {
  Counts counts;
  counts.all = own_->counts();
  for (const auto& [user, watcher] : Watchers()) {
    DriftWatcher::Counts theirs = watcher->counts();
    counts.all.watching += theirs.watching;
    counts.all.starting += theirs.starting;
    counts.all.forbidden += theirs.forbidden;
    counts.all.unwatched += theirs.unwatched;
    counts.all.by_namespace += theirs.by_namespace;
    counts.as_account += theirs.watching;
    counts.accounts += theirs.watching > 0;
  }
  return counts;
}

size_t AccountWatches::threads() const {
  size_t threads = own_->threads();
  for (const auto& [user, watcher] : Watchers()) threads += watcher->threads();
  return threads;
}

std::map<std::string, std::shared_ptr<DriftWatcher>> AccountWatches::Watchers() const {
  MutexLock lock(&mu_);
  return watchers_;
}

void AccountWatches::Arrange() {
  MutexLock arranging(&arrange_mu_);
  std::shared_ptr<const std::map<std::string, Kinds>> by_user;
  {
    MutexLock lock(&mu_);
    by_user = by_user_;
  }
  std::map<std::string, std::shared_ptr<DriftWatcher>> current = Watchers();
  const absl::Time now = absl::Now();
  // An account refused what it was given is passed over there for a while (its watch of
  // it stops below, and with it the 403 that said so).
  for (auto it = refusals_.begin(); it != refusals_.end();) {
    it = it->second <= now ? refusals_.erase(it) : std::next(it);
  }
  for (const auto& [place, user] : assigned_) {
    auto watcher = current.find(user);
    if (watcher == current.end() || !watcher->second->Forbidden(place.first, place.second)) {
      continue;
    }
    if (refusals_.size() >= kMaxRefusals) break;
    if (refusals_.emplace(std::make_pair(user, place), now + refused_retry_).second) {
      GF_LOG(WARNING) << "drift watch: " << user << " may not watch " << place.first.first << " "
                      << place.first.second
                      << (place.second.empty() ? "" : absl::StrCat(" in ", place.second))
                      << " either; another account holding it there is tried, else it is "
                         "checked on the periodic checks alone (asked again in "
                      << absl::FormatDuration(refused_retry_) << ")";
    }
  }
  // Who is to watch each kind and namespace the agent may not watch itself: the account
  // watching it already, while its bundles hold it there and it was not refused; else the
  // first account (by user name) whose bundles hold it there and that was not refused.
  std::map<std::string, Kinds> want;
  std::map<Place, std::string> assigned;
  if (by_user != nullptr) {
    std::map<Place, std::vector<std::string>> candidates;
    for (const auto& [user, kinds] : *by_user) {
      for (const auto& [kind, namespaces] : kinds) {
        for (const std::string& ns : namespaces) {
          Place place{kind, ns};
          if (refusals_.count({user, place}) > 0 || !own_->Forbidden(kind, ns)) continue;
          candidates[std::move(place)].push_back(user);
        }
      }
    }
    std::map<std::string, Kinds> chosen;
    for (const auto& [place, users] : candidates) {
      std::string user = users.front();
      if (auto was = assigned_.find(place);
          was != assigned_.end() &&
          std::find(users.begin(), users.end(), was->second) != users.end()) {
        user = was->second;
      }
      chosen[user][place.first].insert(place.second);
    }
    // Within the bound the agent's own watches leave: each kind an account watches costs
    // a watch across namespaces, then one per namespace where that is refused too.
    const size_t own = own_->threads();
    size_t budget = max_watches_ > own ? max_watches_ - own : 0;
    size_t over = 0;
    for (auto& [user, kinds] : chosen) {
      Kinds mine;
      for (auto& [kind, namespaces] : kinds) {
        const size_t cost = 1 + namespaces.size();
        if (cost > budget) {
          ++over;
          continue;
        }
        budget -= cost;
        for (const std::string& ns : namespaces) assigned[{kind, ns}] = user;
        mine[kind] = std::move(namespaces);
      }
      if (!mine.empty()) want[user] = std::move(mine);
    }
    if (over > 0 && over != over_) {
      GF_LOG(WARNING) << "drift watch: " << over << " kinds the agent may not watch itself are "
                      << "past the " << max_watches_
                      << " watches at once (--max-drift-watches, the agent's own first); they "
                         "are checked on the periodic checks alone";
    }
    over_ = over;
  }
  assigned_ = std::move(assigned);
  std::map<std::string, std::shared_ptr<DriftWatcher>> next;
  for (const auto& [user, kinds] : want) {
    std::shared_ptr<DriftWatcher> watcher;
    if (auto it = current.find(user); it != current.end()) {
      watcher = it->second;
    } else {
      absl::StatusOr<std::shared_ptr<DriftWatcher>> made = factory_(user);
      if (!made.ok()) {
        if (refused_.size() < 1024 && refused_.insert(user).second) {
          GF_LOG(WARNING) << "drift watch: cannot watch as " << user << ": " << made.status();
        }
        continue;
      }
      watcher = *std::move(made);
      GF_LOG(INFO) << "drift watch: watching " << kinds.size()
                   << (kinds.size() == 1 ? " kind" : " kinds") << " as " << user
                   << ", where the agent may not watch itself";
    }
    watcher->Watch(kinds);
    next[user] = std::move(watcher);
  }
  std::vector<std::shared_ptr<DriftWatcher>> gone;
  for (auto& [user, watcher] : current) {
    if (next.count(user) == 0) gone.push_back(std::move(watcher));
  }
  {
    MutexLock lock(&mu_);
    watchers_ = std::move(next);
  }
  // `gone` stops its watches here, outside the locks readers take.
}

}  // namespace gitfleet
