#include "controlplane/events/event_bus.h"

#include <fnmatch.h>

#include <algorithm>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/proto_time.h"

namespace gitfleet {

absl::Status CheckEventTypeFilter(const std::string& type) {
  for (const char* known : kEventTypes) {
    if (!type.empty() && type.back() == '.' ? absl::StartsWith(known, type) : type == known) {
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("types: \"", type.substr(0, 64), "\" is not an event type: want one of ",
                   absl::StrJoin(kEventTypes, ", "), ", or a family of them (rollout.)"));
}

bool EventBus::Filter::Matches(const v1::Event& event, const Audience& audience) const {
  if (!types.empty() && std::none_of(types.begin(), types.end(), [&event](const std::string& type) {
        return !type.empty() && type.back() == '.' ? absl::StartsWith(event.type(), type)
                                                   : event.type() == type;
      })) {
    return false;
  }
  if (!bundle.empty() && !event.bundle().empty() && event.bundle() != bundle) return false;
  if (!cluster.empty() && !event.cluster().empty() && event.cluster() != cluster) return false;
  if (allows != nullptr && !allows(event)) return false;
  if (!bundles.empty()) {
    auto named = [this](const std::string& name) {
      return std::binary_search(bundles.begin(), bundles.end(), name) ||
             std::any_of(bundles.begin(), bundles.end(), [&name](const std::string& entry) {
               return entry.find_first_of("*?") != std::string::npos &&
                      fnmatch(entry.c_str(), name.c_str(), 0) == 0;
             });
    };
    if (!event.bundle().empty() ? !named(event.bundle())
                                : event.source().empty() || audience == nullptr ||
                                      std::none_of(audience->begin(), audience->end(), named)) {
      return false;
    }
  }
  if (!bundle.empty() && event.bundle().empty()) {
    // About a source: it concerns the bundles that read it. Otherwise (a cluster's
    // connection) it is about no bundle.
    if (event.source().empty() || audience == nullptr) return false;
    if (!std::binary_search(audience->begin(), audience->end(), bundle)) return false;
  }
  if (!cluster.empty() && event.cluster() != cluster) {
    if (!event.cluster().empty()) return false;
    // About a whole bundle, or a source: the clusters its bundles target or that hold them.
    if (concerns == nullptr) return true;
    if (!event.bundle().empty()) return concerns(event.bundle());
    if (event.source().empty() || audience == nullptr) return true;
    if (!bundle.empty()) return concerns(bundle);  // in the audience: checked above
    return std::any_of(audience->begin(), audience->end(), concerns);
  }
  return true;
}

std::vector<v1::Event> EventBus::Subscription::Take() {
  MutexLock lock(&mu_);
  std::vector<v1::Event> out;
  out.reserve(queue_.size() + 1);
  if (dropped_ > 0 || !gap_.empty()) {
    std::vector<std::string> why;
    if (!gap_.empty()) why.push_back(std::move(gap_));
    if (dropped_ > 0) why.push_back(absl::StrCat("fell behind: ", dropped_, " events dropped"));
    v1::Event resync;
    resync.set_type("resync");
    resync.set_message(absl::StrCat(absl::StrJoin(why, "; "),
                                    "; read the current state (GetStatus, GetRollout) and go "
                                    "on from here"));
    out.push_back(std::move(resync));
    dropped_ = 0;
    gap_.clear();
  }
  for (v1::Event& e : queue_) out.push_back(std::move(e));
  queue_.clear();
  // Stamped here rather than on publishing: most events are published to nobody.
  for (v1::Event& e : out) e.set_stream(stream_);
  return out;
}

void EventBus::Subscription::Cancel() {
  MutexLock lock(&mu_);
  cancelled_ = true;
  queue_.clear();
}

namespace {

std::string RandomStream() {
  std::random_device device;
  const uint64_t bits = (uint64_t{device()} << 32) ^ device();
  return absl::StrFormat("%012x", bits & 0xffffffffffffULL);
}

}  // namespace

EventBus::EventBus(size_t recent, size_t queue, Clock* clock, std::string stream)
    : recent_limit_(recent),
      queue_limit_(queue),
      clock_(clock),
      stream_(stream.empty() ? RandomStream() : std::move(stream)) {}

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
    Filter filter, std::function<void()> wakeup, size_t max_subscribers,
    const std::optional<Resume>& resume) {
  std::shared_ptr<Subscription> sub(
      new Subscription(std::move(filter), std::move(wakeup), queue_limit_, stream_));
  MutexLock lock(&mu_);
  if (max_subscribers > 0 && SubscribersLocked() >= max_subscribers) {
    return absl::ResourceExhaustedError(
        absl::StrCat("more than ", max_subscribers, " event watchers; try again later"));
  }
  {
    MutexLock sub_lock(&sub->mu_);
    uint64_t after = 0;  // the kept events after this one are queued
    if (resume.has_value()) {
      const uint64_t oldest_kept =
          recent_.empty() ? sequence_ + 1 : recent_.front().first.sequence();
      if (!resume->stream.empty() && resume->stream != stream_) {
        sub->gap_ = absl::StrCat("the control plane restarted since: stream ", resume->stream,
                                 " is gone, this is stream ", stream_);
      } else if (resume->after_sequence > sequence_) {
        sub->gap_ = absl::StrCat("sequence ", resume->after_sequence,
                                 " is past this control plane's last event (", sequence_,
                                 "): it restarted since");
      } else {
        after = resume->after_sequence;
        if (after + 1 < oldest_kept) {
          sub->gap_ = absl::StrCat("events ", after + 1, " to ", oldest_kept - 1,
                                   " are no longer kept (the last ", recent_limit_, " are)");
        }
      }
    }
    for (const auto& [e, audience] : recent_) {
      if (e.sequence() > after && sub->filter_.Matches(e, audience)) sub->queue_.push_back(e);
    }
    while (sub->queue_.size() > queue_limit_) {
      sub->queue_.pop_front();
      ++sub->dropped_;
    }
  }
  subscribers_.push_back(sub);
  return sub;
}

size_t EventBus::subscribers() const {
  MutexLock lock(&mu_);
  return SubscribersLocked();
}

uint64_t EventBus::last_sequence() const {
  MutexLock lock(&mu_);
  return sequence_;
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
