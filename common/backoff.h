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

  // Full jitter: a random delay in [0, ceiling]; the ceiling then grows to at most max.
  // Many clients that failed together (a restarted server) spread over the whole window
  // instead of arriving together in its second half.
  absl::Duration Next() {
    absl::Duration ceiling = ceiling_;
    if (spread_draws_ > 0) {
      // Inside a spread window the ceiling holds: a client that came too early (the server
      // is not back yet) tries again within one window, so none is pushed further out than
      // that once the server is back.
      --spread_draws_;
    } else {
      ceiling_ = std::min(max_, ceiling_ * multiplier_);
    }
    ++attempts_;
    return ceiling * absl::Uniform(absl::IntervalClosedClosed, bitgen_, 0.0, 1.0);
  }
  // The next `draws` delays are drawn from [0, window]; then the ceiling grows as usual:
  // clients of a server that said it is going away (and will be back) redial about once
  // each, spread over the window, rather than probing it many times while it restarts; if
  // it stays away that long they back off as usual.
  void Spread(absl::Duration window, int draws = 6) {
    ceiling_ = window;
    spread_draws_ = draws;
  }
  void Reset() {
    ceiling_ = initial_;
    spread_draws_ = 0;
    attempts_ = 0;
  }
  int attempts() const { return attempts_; }

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  const double multiplier_;
  absl::Duration ceiling_;
  int spread_draws_ = 0;
  int attempts_ = 0;
  absl::BitGen bitgen_;
};

// The agent's redial policy, shared with the load generators so that they behave as
// agents do: full-jitter backoff, reset by a stream that lasted, and a window named by a
// stopping control plane honoured.
//
//   Redial redial(absl::Milliseconds(250), absl::Seconds(30));
//   absl::Duration wait = redial.After(welcomed, lived, spread);
//
// Not thread-safe.
class Redial {
 public:
  Redial(absl::Duration initial, absl::Duration max) : backoff_(initial, max) {}
  // The delay before the next attempt, after a stream that was `welcomed` (or not), lasted
  // `lived`, and ended with the control plane naming a reconnect `spread` (or zero).
  absl::Duration After(bool welcomed, absl::Duration lived, absl::Duration spread) {
    if (welcomed && lived > absl::Seconds(10)) backoff_.Reset();
    if (spread > absl::ZeroDuration()) backoff_.Spread(spread);
    return backoff_.Next();
  }
  // Starts over: the next attempt is not a retry of the last (a new token, say).
  void Reset() { backoff_.Reset(); }

 private:
  Backoff backoff_;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_BACKOFF_H_
