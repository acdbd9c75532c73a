#ifndef GITFLEET_COMMON_RATE_LIMIT_H_
#define GITFLEET_COMMON_RATE_LIMIT_H_

// A token bucket: up to `burst` events at once, refilled at `rate` per second.
//
//   TokenBucket bucket(100, 1000);
//   if (!bucket.Take(RealClock().Now())) return absl::ResourceExhaustedError("slow down");
//
// Not thread-safe; callers hold their own lock or own the bucket.

#include <algorithm>

#include "absl/time/time.h"

namespace gitfleet {

class TokenBucket {
 public:
  TokenBucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst) {}

  // Takes `n` tokens if there are that many (one event, or n bytes of one).
  bool Take(absl::Time now, double n = 1) {
    if (last_ != absl::InfinitePast()) {
      tokens_ = std::min(burst_, tokens_ + rate_ * absl::ToDoubleSeconds(now - last_));
    }
    last_ = now;
    if (tokens_ < n) return false;
    tokens_ -= n;
    return true;
  }

 private:
  double rate_;
  double burst_;
  double tokens_;
  absl::Time last_ = absl::InfinitePast();
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_RATE_LIMIT_H_
