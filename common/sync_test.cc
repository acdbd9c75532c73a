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
