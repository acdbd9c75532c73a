#include "controlplane/events/event_bus.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"

namespace gitfleet {

bool EventBus::Filter::Matches(const v1::Event& event, const Audience& audience) const {
  if (!bundle.empty() && !event.bundle().empty() && event.bundle() != bundle) return false;
  if (!bundle.empty() && event.bundle().empty()) {
    // About a source: it concerns the bundles that read it. Otherwise (a cluster's
    // connection) it is about no bundle.
    if (event.source().empty() || audience == nullptr) return false;
    if (!std::binary_search(audience->begin(), audience->end(), bundle)) return false;
  }
  if (!cluster.empty() && event.cluster() != cluster) {
    // Bundle-wide events (renders, rollouts, commits) concern every cluster.
    if (!event.cluster().empty()) return false;
  }
  return true;
}

std::vector<v1::Event> EventBus::Subscription::Take() {
  MutexLock lock(&mu_);
  std::vector<v1::Event> out;
  out.reserve(queue_.size() + 1);
  if (dropped_ > 0) {
    v1::Event resync;
    resync.set_type("resync");
    resync.set_message(absl::StrCat("fell behind: ", dropped_,
                                    " events dropped; read the current state (GetStatus, "
                                    "GetRollout) and go on from here"));
    out.push_back(std::move(resync));
    dropped_ = 0;
  }
  for (v1::Event& e : queue_) out.push_back(std::move(e));
  queue_.clear();
  return out;
}

void EventBus::Subscription::Cancel() {
  MutexLock lock(&mu_);
  cancelled_ = true;
  queue_.clear();
}

EventBus::EventBus(size_t recent, size_t queue, Clock* clock)
    : recent_limit_(recent), queue_limit_(queue), clock_(clock) {}

void EventBus::Publish(v1::Event event, Audience audience) {
  std::vector<std::shared_ptr<Subscription>> wake;
  {
    MutexLock lock(&mu_);
    event.set_sequence(++sequence_);
    *event.mutable_time() = ToProtoTime(clock_->Now());
    for (auto it = subscribers_.begin(); it != subscribers_.end();) {
      std::shared_ptr<Subscription> sub = it->lock();
      if (sub == nullptr) {
        it = subscribers_.erase(it);
        continue;
      }
      ++it;
      if (!sub->filter_.Matches(event, audience)) continue;
      MutexLock sub_lock(&sub->mu_);
      if (sub->cancelled_) continue;
      const bool was_empty = sub->queue_.empty() && sub->dropped_ == 0;
      if (sub->queue_.size() >= sub->limit_) {
        // Behind: what it has not taken is dropped, and it is told to resync; it goes on
        // from this event.
        sub->dropped_ += sub->queue_.size();
        sub->queue_.clear();
      }
      sub->queue_.push_back(event);
      if (was_empty) wake.push_back(sub);
    }
    // Subscribers have their copies; the recent list takes the event itself (one is
    // published for every report a cluster applies, usually with no subscriber at all).
    recent_.emplace_back(std::move(event), std::move(audience));
    if (recent_.size() > recent_limit_) recent_.pop_front();
  }
  for (const std::shared_ptr<Subscription>& sub : wake) {
    if (sub->wakeup_) sub->wakeup_();
  }
}

absl::StatusOr<std::shared_ptr<EventBus::Subscription>> EventBus::Subscribe(
    Filter filter, std::function<void()> wakeup, size_t max_subscribers) {
  std::shared_ptr<Subscription> sub(
      new Subscription(std::move(filter), std::move(wakeup), queue_limit_));
  MutexLock lock(&mu_);
  if (max_subscribers > 0 && SubscribersLocked() >= max_subscribers) {
    return absl::ResourceExhaustedError(
        absl::StrCat("more than ", max_subscribers, " event watchers; try again later"));
  }
  {
    MutexLock sub_lock(&sub->mu_);
    for (const auto& [e, audience] : recent_) {
      if (sub->filter_.Matches(e, audience)) sub->queue_.push_back(e);
    }
    while (sub->queue_.size() > queue_limit_) sub->queue_.pop_front();
  }
  subscribers_.push_back(sub);
  return sub;
}

size_t EventBus::subscribers() const {
  MutexLock lock(&mu_);
  return SubscribersLocked();
}

size_t EventBus::SubscribersLocked() const {
  size_t n = 0;
  for (const auto& weak : subscribers_) n += weak.expired() ? 0 : 1;
  return n;
}

v1::Event MakeEvent(const std::string& type, const std::string& bundle, const std::string& cluster,
                    const std::string& message, const std::string& commit,
                    const std::string& revision, const std::string& source) {
  v1::Event event;
  event.set_type(type);
  event.set_bundle(bundle);
  event.set_cluster(cluster);
  event.set_message(message);
  event.set_commit(commit);
  event.set_revision(revision);
  event.set_source(source);
  return event;
}

}  // namespace gitfleet
