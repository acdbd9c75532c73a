#include "agent/kube/account_watch.h"

#include <utility>
#include <vector>

#include "common/logging.h"

namespace gitfleet {

AccountWatches::AccountWatches(DriftWatcher* own, Factory factory, size_t max_watches)
    : own_(own), factory_(std::move(factory)), max_watches_(max_watches) {}

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
  // What each account is to watch: the kinds and namespaces its bundles hold there that
  // the agent may not watch itself and no account before it watches, within the bound.
  std::map<std::string, Kinds> want;
  if (by_user != nullptr) {
    std::set<std::pair<Kind, std::string>> taken;
    size_t budget = max_watches_;
    size_t over = 0;
    for (const auto& [user, kinds] : *by_user) {
      Kinds mine;
      for (const auto& [kind, namespaces] : kinds) {
        std::set<std::string> forbidden;
        for (const std::string& ns : namespaces) {
          if (taken.count({kind, ns}) == 0 && own_->Forbidden(kind, ns)) forbidden.insert(ns);
        }
        if (forbidden.empty()) continue;
        // Across namespaces first, then each namespace where that is refused too.
        const size_t cost = 1 + forbidden.size();
        if (cost > budget) {
          ++over;
          continue;
        }
        budget -= cost;
        for (const std::string& ns : forbidden) taken.insert({kind, ns});
        mine[kind] = std::move(forbidden);
      }
      if (!mine.empty()) want[user] = std::move(mine);
    }
    if (over > 0 && over != over_) {
      GF_LOG(WARNING) << "drift watch: " << over << " kinds the agent may not watch itself are "
                      << "past the " << max_watches_
                      << " watches made as service accounts (--max-drift-watches); they are "
                         "checked on the periodic checks alone";
    }
    over_ = over;
  }
  std::map<std::string, std::shared_ptr<DriftWatcher>> current = Watchers();
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
