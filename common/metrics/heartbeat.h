#ifndef GITFLEET_COMMON_METRICS_HEARTBEAT_H_
#define GITFLEET_COMMON_METRICS_HEARTBEAT_H_

// Health probes, and the liveness of a loop that should come round regularly: the loop beats,
// /healthz checks how long ago, on RealClock (a step of the wall clock neither fails nor
// passes it). A wedged loop (a deadlock, a call that never returns) fails the
// probe, so a supervisor restarts the process.
//
//   Heartbeat heartbeat;
//   while (running) { Work(); heartbeat.Beat(); }
//   probes.live = [&] { return heartbeat.Check(absl::Minutes(1)); };
//
// Thread-safe.

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace gitfleet {

// What a health probe found: `ok`, and a detail for the body ("enforcing from local
// state", or why it is not ok).
struct Probe {
  bool ok = true;
  std::string detail;
};

class Heartbeat {
 public:
  explicit Heartbeat(std::string loop, absl::Time now = RealClock().Now())
      : loop_(std::move(loop)), last_(absl::ToUnixNanos(now)) {}

  void Beat(absl::Time now = RealClock().Now()) {
    last_.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
  }
  // Not ok when the last beat is older than `max_age` at `now`.
  Probe Check(absl::Duration max_age, absl::Time now = RealClock().Now()) const {
    absl::Duration age = now - absl::FromUnixNanos(last_.load(std::memory_order_relaxed));
    if (age <= max_age) return Probe{};
    return Probe{false, absl::StrCat(loop_, " has not come round for ", absl::FormatDuration(age),
                                     " (at most ", absl::FormatDuration(max_age), ")")};
  }

 private:
  const std::string loop_;
  std::atomic<int64_t> last_;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_METRICS_HEARTBEAT_H_
