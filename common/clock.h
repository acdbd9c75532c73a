#ifndef GITFLEET_COMMON_CLOCK_H_
#define GITFLEET_COMMON_CLOCK_H_

// Time as a seam, as LevelDB's Env and Kubernetes' clock package do it: production code
// asks a Clock for the time and waits through it, so tests advance a FakeClock instead of
// sleeping.
//
//   Clock& clock = RealClock();
//   absl::Time deadline = clock.Now() + absl::Seconds(5);
//   MutexLock lock(&mu);
//   clock.AwaitWithDeadline(&mu, [&] { return done; }, deadline);
//
//   FakeClock fake;            // starts at a fixed time
//   fake.Advance(absl::Seconds(5));
//
// Thread-safe.

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sync.h"

namespace gitfleet {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // With `mu` held on entry and on return: waits until `condition` holds or this clock
  // reaches `deadline`. Returns whether `condition` holds.
  virtual bool AwaitWithDeadline(Mutex* mu, const std::function<bool()>& condition,
                                 absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
};

// The system clock. Lives forever.
Clock& RealClock();

// A clock that moves only when told to. Waits on it end when the condition holds or a test
// advances the time past their deadline (waiters look again every millisecond of real time,
// since advancing does not unlock their mutex).
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}
  absl::Time Now() const override {
    MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    MutexLock lock(&mu_);
    now_ += d;
  }
  bool AwaitWithDeadline(Mutex* mu, const std::function<bool()>& condition,
                         absl::Time deadline) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (!condition()) {
      if (Now() >= deadline) return false;
      mu->AwaitWithTimeout(condition, absl::Milliseconds(1));
    }
    return true;
  }

 private:
  mutable Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_CLOCK_H_
