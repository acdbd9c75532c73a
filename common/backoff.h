#ifndef GITFLEET_COMMON_BACKOFF_H_
#define GITFLEET_COMMON_BACKOFF_H_

// Exponential backoff with full jitter for retries.
//
//   Backoff backoff(absl::Milliseconds(200), absl::Seconds(30));
//   while (!Connect().ok()) absl::SleepFor(backoff.Next());
//   backoff.Reset();
//
// Not thread-safe.

#include <cstdint>

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace gitfleet {

class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max, double multiplier = 2.0)
      : initial_(initial), max_(max), multiplier_(multiplier), ceiling_(initial) {}

  // A random delay in [ceiling/2, ceiling]; the ceiling then grows to at most max.
  absl::Duration Next() {
    absl::Duration ceiling = ceiling_;
    ceiling_ = std::min(max_, ceiling_ * multiplier_);
    ++attempts_;
    double fraction = absl::Uniform(bitgen_, 0.5, 1.0);
    return ceiling * fraction;
  }
  void Reset() {
    ceiling_ = initial_;
    attempts_ = 0;
  }
  int attempts() const { return attempts_; }

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  const double multiplier_;
  absl::Duration ceiling_;
  int attempts_ = 0;
  absl::BitGen bitgen_;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_BACKOFF_H_
