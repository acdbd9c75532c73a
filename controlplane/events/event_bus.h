#ifndef GITFLEET_CONTROLPLANE_EVENTS_EVENT_BUS_H_
#define GITFLEET_CONTROLPLANE_EVENTS_EVENT_BUS_H_

// The fleet's events (admin.proto Event) for other services: the controller and the hub
// publish, WatchEvents subscribers take. Bounded everywhere: the bus keeps the last
// `recent` events for new subscribers, and each subscriber buffers at most `queue`; one
// that falls behind loses what it had not taken and gets one "resync" event instead.
// Sequence numbers count within the bus's stream (one per control-plane run), so that a
// watcher can resume after the last event it handled, and is told (a "resync") when that
// cannot be done without a gap.
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
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/sync.h"
#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet {

// Every type of event the control plane publishes (admin.proto's Event.type says what each
// means); tools/check_event_types.py checks that each MakeEvent's is here.
inline constexpr const char* kEventTypes[] = {"source.commit",
                                              "source.failed",
                                              "source.recovered",
                                              "render.done",
                                              "render.failed",
                                              "render.waiting",
                                              "rollout.started",
                                              "rollout.partition",
                                              "rollout.paused",
                                              "rollout.resumed",
                                              "rollout.promoted",
                                              "rollout.done",
                                              "rollout.out_of_turn",
                                              "rollout.baking",
                                              "cluster.connected",
                                              "cluster.disconnected",
                                              "cluster.applied",
                                              "cluster.failed",
                                              "cluster.health",
                                              "cluster.suspended",
                                              "cluster.resumed",
                                              "bundle.suspended",
                                              "bundle.resumed",
                                              "bundle.pinned",
                                              "bundle.unpinned",
                                              "bundle.added",
                                              "bundle.replaced",
                                              "bundle.removed",
                                              "bundle.prune_held",
                                              "bundle.paused_by_source",
                                              "bundle.scope_held",
                                              "source.added",
                                              "source.replaced",
                                              "source.removed",
                                              "resync"};

// A watcher's type filter: one of kEventTypes, or a family of them ending in "."
// ("rollout."). InvalidArgument, listing them, for anything else: a mistyped type
// ("rollout.pause") would otherwise match nothing, silently.
absl::Status CheckEventTypeFilter(const std::string& type);

class EventBus {
 public:
  // The bundles a source's event concerns (sorted): those that read the source when it
  // was published. Kept beside the event for filtering, not sent: a monorepo source may
  // feed thousands of bundles, and each bundle's own events (render.done) follow anyway.
  using Audience = std::shared_ptr<const std::vector<std::string>>;

  struct Filter {
    std::string bundle;   // empty: any
    std::string cluster;  // empty: any
    // Event types, or families of them ending in "." ("rollout."); empty: any.
    std::vector<std::string> types;
    // With a cluster: whether an event about a whole bundle (a render, a rollout, a
    // definition change) concerns that cluster: the bundle targets it or it holds the
    // bundle. An event about a source concerns it when one of its audience does. Unset:
    // every such event does. Called under the bus's lock: it must not publish, nor take a
    // lock that is held while publishing.
    std::function<bool(const std::string& bundle)> concerns;
    // Whether the watcher may see the event at all (a scoped caller's share of the
    // fleet); unset: every event. Called under the bus's lock, as `concerns` is.
    std::function<bool(const v1::Event& event)> allows;
    // Sorted; non-empty: events about any of these bundles (a source's, when its audience
    // has one of them), as `bundle` picks one. An entry holding '*' or '?' is a glob
    // ("payments-*", as MatchesAnyGlob reads it).
    std::vector<std::string> bundles;
    // An event about a source (a bundle filter and no bundle of its own) matches when its
    // audience has the bundle.
    bool Matches(const v1::Event& event, const Audience& audience) const;
  };

  // Where a watcher left off: the sequence and stream of the last event it handled. An
  // empty stream means this bus's.
  struct Resume {
    uint64_t after_sequence = 0;
    std::string stream;
  };

  class Subscription {
   public:
    // Everything buffered since the last Take, a "resync" first if some were dropped (or
    // the subscription could not resume where it was asked to), each with the stream.
    std::vector<v1::Event> Take();
    // No more wakeups after this returns (one in progress may still be running).
    void Cancel();

   private:
    friend class EventBus;
    Subscription(Filter filter, std::function<void()> wakeup, size_t limit, std::string stream)
        : filter_(std::move(filter)),
          wakeup_(std::move(wakeup)),
          limit_(limit),
          stream_(std::move(stream)) {}
    const Filter filter_;
    const std::function<void()> wakeup_;
    const size_t limit_;
    const std::string stream_;
    Mutex mu_;
    std::deque<v1::Event> queue_ ABSL_GUARDED_BY(mu_);
    uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
    // Why the subscription could not resume where it was asked to (empty: it could).
    std::string gap_ ABSL_GUARDED_BY(mu_);
    bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  };

  // `stream`: empty for a random one (12 hex digits).
  explicit EventBus(size_t recent = 1000, size_t queue = 1000, Clock* clock = &RealClock(),
                    std::string stream = "");

  // Stamps `event` with the next sequence number and the time, keeps it, and hands it to
  // every subscriber whose filter matches. `audience`: see Audience (for source events).
  void Publish(v1::Event event, Audience audience = nullptr);
  // Subscribes with the recent events that match already queued: all of them, or with
  // `resume` those after it (and a "resync" first when that leaves a gap: the stream is
  // another, or events after it are no longer kept). `wakeup` runs (on the publishing
  // thread) whenever the subscription's queue goes from empty to not.
  // `max_subscribers` > 0: ResourceExhausted (no subscription) when that many are
  // subscribed already; checked and taken under one lock.
  absl::StatusOr<std::shared_ptr<Subscription>> Subscribe(Filter filter,
                                                          std::function<void()> wakeup,
                                                          size_t max_subscribers = 0,
                                                          const std::optional<Resume>& resume = {});

  size_t subscribers() const;
  // The sequence of the last event published (0 before any).
  uint64_t last_sequence() const;
  const std::string& stream() const { return stream_; }

 private:
  size_t SubscribersLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const size_t recent_limit_;
  const size_t queue_limit_;
  Clock* const clock_;
  const std::string stream_;
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
