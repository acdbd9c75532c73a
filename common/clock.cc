#include "common/clock.h"

#include <time.h>

#include <algorithm>

namespace gitfleet {
namespace {

absl::Duration SinceBoot() {
  timespec ts;
  if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0) clock_gettime(CLOCK_MONOTONIC, &ts);
  return absl::DurationFromTimespec(ts);
}

// The longest a wait sleeps before it looks at the clock again.
constexpr absl::Duration kMaxSleep = absl::Seconds(10);

}  // namespace

SlewedClock::SlewedClock(std::function<absl::Time()> wall, std::function<absl::Duration()> elapsed)
    : wall_(std::move(wall)), elapsed_(std::move(elapsed)) {
  MutexLock lock(&mu_);
  last_elapsed_ = elapsed_();
  offset_ = (wall_() - absl::UnixEpoch()) - last_elapsed_;
}

absl::Time SlewedClock::Now() const {
  MutexLock lock(&mu_);
  const absl::Duration elapsed = std::max(elapsed_(), last_elapsed_);
  const absl::Duration step = elapsed - last_elapsed_;
  last_elapsed_ = elapsed;
  // Toward the wall clock, by at most kRate of the time that passed: never a jump.
  const absl::Duration behind = ((wall_() - absl::UnixEpoch()) - elapsed) - offset_;
  const absl::Duration most = step * kRate;
  offset_ += std::clamp(behind, -most, most);
  return absl::UnixEpoch() + elapsed + offset_;
}

bool SlewedClock::AwaitWithDeadline(Mutex* mu, const std::function<bool()>& condition,
                                    absl::Time deadline) {
  while (!condition()) {
    const absl::Duration left = deadline - Now();
    if (left <= absl::ZeroDuration()) return false;
    // Slept on `elapsed` (a steady wait), then the deadline is looked at again: this
    // clock may run up to kRate slower or faster than the sleep.
    mu->AwaitWithTimeout(condition, std::min(left, kMaxSleep));
  }
  return true;
}

Clock& RealClock() {
  static SlewedClock* const clock = new SlewedClock([] { return absl::Now(); }, &SinceBoot);
  return *clock;
}

}  // namespace gitfleet
