#include "common/clock.h"

#include <atomic>
#include <chrono>

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

// A wall clock and a clock since boot that the test moves.
struct Sources {
  absl::Time wall = absl::FromUnixSeconds(1'700'000'000);
  absl::Duration elapsed = absl::Seconds(100);
  void Pass(absl::Duration d) {
    wall += d;
    elapsed += d;
  }
  SlewedClock Make() {
    return SlewedClock([this] { return wall; }, [this] { return elapsed; });
  }
};

TEST(SlewedClockTest, IsTheWallClockWhileNobodySetsIt) {
  Sources sources;
  SlewedClock clock = sources.Make();
  EXPECT_EQ(clock.Now(), sources.wall);
  for (int i = 0; i < 100; ++i) {
    sources.Pass(absl::Milliseconds(1234));
    EXPECT_EQ(clock.Now(), sources.wall);
  }
}

TEST(SlewedClockTest, AStepOfTheWallClockIsNeverAJumpNorAStall) {
  for (absl::Duration step : {absl::Hours(-1), absl::Hours(1), absl::Seconds(-30)}) {
    Sources sources;
    SlewedClock clock = sources.Make();
    sources.Pass(absl::Seconds(10));
    absl::Time before = clock.Now();
    sources.wall += step;  // a time service sets the wall clock
    // It moves on with the time that passes, up to 5% faster or slower: a deadline 10
    // minutes away passes after 9.5 to 10.5 minutes.
    for (int i = 0; i < 60; ++i) {
      sources.Pass(absl::Seconds(10));
      absl::Time now = clock.Now();
      EXPECT_GE(now - before, absl::Seconds(9.5)) << step;
      EXPECT_LE(now - before, absl::Seconds(10.5)) << step;
      before = now;
    }
    // And it comes back to the wall clock: an hour's step in 20 hours.
    for (int i = 0; i < 21; ++i) sources.Pass(absl::Hours(1));
    EXPECT_EQ(clock.Now(), sources.wall) << step;
  }
}

TEST(SlewedClockTest, ElapsedTimeThatGoesBackIsNotFollowed) {
  Sources sources;
  SlewedClock clock = sources.Make();
  sources.Pass(absl::Seconds(5));
  absl::Time now = clock.Now();
  sources.elapsed -= absl::Seconds(3);
  EXPECT_GE(clock.Now(), now);
}

// A wait on the real clock ends on time when the wall clock is set back an hour during it
// (on the wall clock alone it would wait that hour).
TEST(SlewedClockTest, AWaitEndsOnTimeWhenTheWallClockIsSetBack) {
  std::atomic<bool> stepped{false};
  const auto start = std::chrono::steady_clock::now();
  SlewedClock clock([&] { return absl::Now() - (stepped ? absl::Hours(1) : absl::ZeroDuration()); },
                    [&] { return absl::FromChrono(std::chrono::steady_clock::now() - start); });
  Mutex mu;
  MutexLock lock(&mu);
  const absl::Time deadline = clock.Now() + absl::Milliseconds(300);
  stepped = true;
  const auto waited_from = std::chrono::steady_clock::now();
  EXPECT_FALSE(clock.AwaitWithDeadline(
      &mu, [] { return false; }, deadline));
  const absl::Duration waited = absl::FromChrono(std::chrono::steady_clock::now() - waited_from);
  EXPECT_GE(waited, absl::Milliseconds(280));
  EXPECT_LT(waited, absl::Seconds(30)) << "not the hour the wall clock went back";
}

}  // namespace
}  // namespace gitfleet
