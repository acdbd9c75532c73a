#include "common/sync.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

TEST(MutexTest, GuardsCountersAcrossThreads) {
  Mutex mu;
  int counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        MutexLock lock(&mu);
        ++counter;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  MutexLock lock(&mu);
  EXPECT_EQ(counter, 4000);
}

TEST(MutexTest, AwaitWakesWhenAnotherThreadChangesTheCondition) {
  Mutex mu;
  bool ready = false;
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(20));
    MutexLock lock(&mu);
    ready = true;
  });
  mu.Lock();
  mu.Await([&] { return ready; });
  EXPECT_TRUE(ready);
  mu.Unlock();
  setter.join();
  mu.Lock();
  EXPECT_FALSE(mu.AwaitWithTimeout([] { return false; }, absl::Milliseconds(10)));
  mu.Unlock();
}

// The thread that unlocks looks at the waiters' conditions: a waiter wakes when its own
// condition holds, not at every unlock of a busy mutex (each wake would be a context
// switch; a work queue's idle workers were woken by every report in a rollout).
// A thread that changes a condition under the lock and then waits itself, without an
// Unlock between, wakes the thread the change was for: a request and its answer. Before,
// the waiter slept until the other's wait ran out.
TEST(MutexTest, AThreadThatWaitsWakesThoseItsChangesAreFor) {
  Mutex mu;
  bool asked = false;
  bool answered = false;
  std::thread answerer([&] {
    MutexLock lock(&mu);
    mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return asked; });
    answered = true;
  });
  absl::SleepFor(absl::Milliseconds(50));  // the answerer waits by now, most likely
  const absl::Time start = absl::Now();
  {
    MutexLock lock(&mu);
    asked = true;
    EXPECT_TRUE(mu.AwaitWithTimeout([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return answered; },
                                    absl::Seconds(20)));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  answerer.join();
  // The same for the other two ways to wait.
  asked = answered = false;
  std::thread again([&] {
    MutexLock lock(&mu);
    mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return asked; });
    answered = true;
  });
  absl::SleepFor(absl::Milliseconds(50));
  {
    MutexLock lock(&mu);
    asked = true;
    EXPECT_TRUE(mu.AwaitWithDeadline([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return answered; },
                                     absl::Now() + absl::Seconds(20)));
  }
  again.join();
}

TEST(MutexTest, UnlocksThatChangeNothingDoNotWakeAWaiter) {
  Mutex mu;
  bool ready = false;
  int unrelated = 0;
  int evaluations_on_waiter = 0;
  bool waiting = false;
  std::thread waiter([&] {
    const std::thread::id self = std::this_thread::get_id();
    MutexLock lock(&mu);
    mu.Await([&] {
      if (std::this_thread::get_id() == self) ++evaluations_on_waiter;
      waiting = true;
      return ready;
    });
  });
  while (true) {
    MutexLock lock(&mu);
    if (waiting) break;  // it evaluated under the lock, so it waits now
  }
  for (int i = 0; i < 2000; ++i) {
    MutexLock lock(&mu);
    ++unrelated;
  }
  {
    MutexLock lock(&mu);
    ready = true;
  }
  waiter.join();
  MutexLock lock(&mu);
  // Once before waiting and once when woken; a spurious wake-up may add a few.
  EXPECT_LE(evaluations_on_waiter, 5);
  EXPECT_EQ(unrelated, 2000);
}

TEST(MutexTest, EachWaiterWakesForItsOwnConditionAndLeavesOnItsDeadline) {
  Mutex mu;
  int value = 0;
  std::vector<std::thread> threads;
  std::vector<bool> met(3, false);
  // The middle waiter gives up first, so it leaves from between the others.
  threads.emplace_back([&] {
    MutexLock lock(&mu);
    met[0] = mu.AwaitWithTimeout([&] { return value >= 1; }, absl::Seconds(30));
  });
  threads.emplace_back([&] {
    MutexLock lock(&mu);
    met[1] = mu.AwaitWithTimeout([&] { return value >= 100; }, absl::Milliseconds(20));
  });
  threads.emplace_back([&] {
    MutexLock lock(&mu);
    met[2] = mu.AwaitWithTimeout([&] { return value >= 2; }, absl::Seconds(30));
  });
  absl::SleepFor(absl::Milliseconds(60));
  {
    MutexLock lock(&mu);
    value = 1;
  }
  {
    MutexLock lock(&mu);
    value = 2;
  }
  for (std::thread& t : threads) t.join();
  EXPECT_TRUE(met[0]);
  EXPECT_FALSE(met[1]);
  EXPECT_TRUE(met[2]);
}

TEST(NotificationTest, NotifiesWaiters) {
  Notification done;
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(5)));
  std::thread notifier([&] { done.Notify(); });
  done.WaitForNotification();
  EXPECT_TRUE(done.HasBeenNotified());
  notifier.join();
}

}  // namespace
}  // namespace gitfleet
