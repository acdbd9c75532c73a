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

// The system clock, as gitfleet measures time with it. Lives forever.
//
// It is the wall clock moved only by the passing of time: it starts at the wall clock and
// advances with CLOCK_BOOTTIME, which no one sets and which counts a suspend. When the wall
// clock is set (a time service stepping it after boot, an operator), it does not jump with
// it: it runs up to 5% faster or slower until the two agree again (SlewedClock). A deadline
// 10 minutes away therefore passes after 9.5 to 10.5 minutes whatever is done to the wall
// clock, a wait never stalls for the size of a backward step, and the times it stamps come
// back to the wall clock's (a minute's step in 20 minutes).
Clock& RealClock();

// The clock RealClock is, with its sources given: `wall` (absl::Now) and `elapsed`, a
// clock that only moves forward (CLOCK_BOOTTIME since some fixed point). Waits end on
// `elapsed`, checked at least every 10 s.
class SlewedClock : public Clock {
 public:
  // How much faster or slower than `elapsed` it may run while it catches up.
  static constexpr double kRate = 0.05;

  SlewedClock(std::function<absl::Time()> wall, std::function<absl::Duration()> elapsed);
  absl::Time Now() const override;
  bool AwaitWithDeadline(Mutex* mu, const std::function<bool()>& condition,
                         absl::Time deadline) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

 private:
  const std::function<absl::Time()> wall_;
  const std::function<absl::Duration()> elapsed_;
  mutable Mutex mu_;
  // Now() is UnixEpoch() + elapsed + offset_; offset_ moves toward wall - elapsed.
  mutable absl::Duration offset_ ABSL_GUARDED_BY(mu_);
  mutable absl::Duration last_elapsed_ ABSL_GUARDED_BY(mu_);
};

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
