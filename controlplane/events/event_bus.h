#ifndef GITFLEET_CONTROLPLANE_EVENTS_EVENT_BUS_H_
#define GITFLEET_CONTROLPLANE_EVENTS_EVENT_BUS_H_

// The fleet's events (admin.proto Event) for other services: the controller and the hub
// publish, WatchEvents subscribers take. Bounded everywhere: the bus keeps the last
// `recent` events for new subscribers, and each subscriber buffers at most `queue`; one
// that falls behind loses what it had not taken and gets one "resync" event instead.
//
//   EventBus bus;
//   std::shared_ptr<EventBus::Subscription> sub = *bus.Subscribe({"web", ""}, [] { ... });
//   bus.Publish(EventOf("render.done", ...));
//   for (v1::Event& e : sub->Take()) ...
//
// Thread-safe. Publish never calls out with the bus's lock held; wakeups run on the
// publishing thread, so they must only schedule work.

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/sync.h"
#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet {

class EventBus {
 public:
  // The bundles a source's event concerns (sorted): those that read the source when it
  // was published. Kept beside the event for filtering, not sent: a monorepo source may
  // feed thousands of bundles, and each bundle's own events (render.done) follow anyway.
  using Audience = std::shared_ptr<const std::vector<std::string>>;

  struct Filter {
    std::string bundle;   // empty: any
    std::string cluster;  // empty: any
    // An event about a source (a bundle filter and no bundle of its own) matches when its
    // audience has the bundle.
    bool Matches(const v1::Event& event, const Audience& audience) const;
  };

  class Subscription {
   public:
    // Everything buffered since the last Take, a "resync" first if some were dropped.
    std::vector<v1::Event> Take();
    // No more wakeups after this returns (one in progress may still be running).
    void Cancel();

   private:
    friend class EventBus;
    Subscription(Filter filter, std::function<void()> wakeup, size_t limit)
        : filter_(std::move(filter)), wakeup_(std::move(wakeup)), limit_(limit) {}
    const Filter filter_;
    const std::function<void()> wakeup_;
    const size_t limit_;
    Mutex mu_;
    std::deque<v1::Event> queue_ ABSL_GUARDED_BY(mu_);
    uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
    bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  };

  explicit EventBus(size_t recent = 1000, size_t queue = 1000, Clock* clock = &RealClock());

  // Stamps `event` with the next sequence number and the time, keeps it, and hands it to
  // every subscriber whose filter matches. `audience`: see Audience (for source events).
  void Publish(v1::Event event, Audience audience = nullptr);
  // Subscribes with the recent events that match already queued. `wakeup` runs (on the
  // publishing thread) whenever the subscription's queue goes from empty to not.
  // `max_subscribers` > 0: ResourceExhausted (no subscription) when that many are
  // subscribed already; checked and taken under one lock.
  absl::StatusOr<std::shared_ptr<Subscription>> Subscribe(Filter filter,
                                                          std::function<void()> wakeup,
                                                          size_t max_subscribers = 0);

  size_t subscribers() const;

 private:
  size_t SubscribersLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const size_t recent_limit_;
  const size_t queue_limit_;
  Clock* const clock_;
  mutable Mutex mu_;
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::pair<v1::Event, Audience>> recent_ ABSL_GUARDED_BY(mu_);
  std::vector<std::weak_ptr<Subscription>> subscribers_ ABSL_GUARDED_BY(mu_);
};

// An event of `type` with the given subjects (empty ones left unset).
v1::Event MakeEvent(const std::string& type, const std::string& bundle, const std::string& cluster,
                    const std::string& message, const std::string& commit = "",
                    const std::string& revision = "", const std::string& source = "");

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_EVENTS_EVENT_BUS_H_
