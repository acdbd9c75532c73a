#include "common/workqueue.h"

#include <atomic>
#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;

class WorkQueueTest : public ::testing::Test {
 protected:
  WorkQueueTest() : metrics_(registry_) {}

  WorkQueueOptions Options(int workers = 1) {
    WorkQueueOptions options;
    options.name = "test";
    options.workers = workers;
    options.retry_base = absl::Seconds(1);
    options.retry_max = absl::Seconds(8);
    options.clock = &clock_;
    return options;
  }
  double Retries() { return metrics_.retries.Add({{"name", "test"}}).Value(); }

  FakeClock clock_;
  metrics::Registry registry_;
  WorkQueueMetrics metrics_;
};

TEST_F(WorkQueueTest, AddsOfAWaitingKeyCollapseIntoOneRun) {
  Mutex mu;
  std::vector<std::string> runs;
  Notification started;
  Notification release;
  WorkQueue queue(Options(), metrics_, [&](const std::string& key) {
    if (key == "block") {
      started.Notify();
      release.WaitForNotification();
    }
    MutexLock lock(&mu);
    runs.push_back(key);
    return absl::OkStatus();
  });
  queue.Start();
  uint64_t blocked = queue.Add("block");  // holds the only worker
  started.WaitForNotification();
  queue.Add("a");
  queue.Add("b");
  uint64_t last_a = queue.Add("a");
  EXPECT_EQ(queue.Depth(), 2u) << "a is queued once";
  release.Notify();
  ASSERT_TRUE(queue.WaitFor("block", blocked, absl::Seconds(30)));
  ASSERT_TRUE(queue.WaitFor("a", last_a, absl::Seconds(30)));
  ASSERT_TRUE(queue.WaitFor("b", last_a, absl::Seconds(30)));
  MutexLock lock(&mu);
  EXPECT_THAT(runs, ElementsAre("block", "a", "b"));
  EXPECT_EQ(metrics_.adds.Add({{"name", "test"}}).Value(), 4);
}

TEST_F(WorkQueueTest, AKeyAddedWhileItRunsRunsAgainAfterwardsNeverAtOnce) {
  std::atomic<int> running{0};
  std::atomic<int> overlap{0};
  std::atomic<int> runs{0};
  Notification started;
  Notification release;
  WorkQueue queue(Options(/*workers=*/4), metrics_, [&](const std::string&) {
    if (running.fetch_add(1) > 0) overlap.fetch_add(1);
    if (runs.fetch_add(1) == 0) {
      started.Notify();
      release.WaitForNotification();
    }
    running.fetch_sub(1);
    return absl::OkStatus();
  });
  queue.Start();
  queue.Add("k");
  started.WaitForNotification();
  uint64_t during = queue.Add("k");  // marked dirty: the running pass may not have seen it
  queue.Add("k");
  release.Notify();
  ASSERT_TRUE(queue.WaitFor("k", during, absl::Seconds(30)));
  EXPECT_EQ(runs.load(), 2) << "both adds during the run fold into one more run";
  EXPECT_EQ(overlap.load(), 0);
}

TEST_F(WorkQueueTest, FailuresRetryWithExponentialBackoffAndSuccessResetsIt) {
  Mutex mu;
  std::vector<absl::Time> attempts;
  int fail_first = 3;
  WorkQueue queue(Options(), metrics_, [&](const std::string&) {
    MutexLock lock(&mu);
    attempts.push_back(clock_.Now());
    return static_cast<int>(attempts.size()) <= fail_first ? absl::UnavailableError("not yet")
                                                           : absl::OkStatus();
  });
  queue.Start();
  absl::Time t0 = clock_.Now();
  uint64_t ticket = queue.Add("k");
  ASSERT_TRUE(queue.WaitFor("k", ticket, absl::Seconds(30)));
  EXPECT_EQ(queue.Failures("k"), 1);
  // Each retry waits for the fake clock: 1 s, then 2 s, then 4 s.
  auto attempts_made = [&] {
    MutexLock lock(&mu);
    return attempts.size();
  };
  for (absl::Duration step : {absl::Seconds(1), absl::Seconds(2), absl::Seconds(4)}) {
    size_t before = attempts_made();
    // The retry is scheduled once the failure is counted.
    for (int i = 0; i < 3000 && queue.Failures("k") != static_cast<int>(before); ++i) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    clock_.Advance(step - absl::Milliseconds(1));
    absl::SleepFor(absl::Milliseconds(20));
    EXPECT_EQ(attempts_made(), before) << "retried before its backoff ended";
    clock_.Advance(absl::Milliseconds(1));
    for (int i = 0; i < 3000 && attempts_made() == before; ++i) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_EQ(attempts_made(), before + 1);
  }
  for (int i = 0; i < 3000 && queue.Failures("k") != 0; ++i) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(queue.Failures("k"), 0) << "the fourth attempt succeeded";
  EXPECT_EQ(Retries(), 3);
  MutexLock lock(&mu);
  ASSERT_EQ(attempts.size(), 4u);
  EXPECT_EQ(attempts[1] - t0, absl::Seconds(1));
  EXPECT_EQ(attempts[2] - attempts[1], absl::Seconds(2));
  EXPECT_EQ(attempts[3] - attempts[2], absl::Seconds(4));
}

TEST_F(WorkQueueTest, RetryDelayDoublesUpToTheCap) {
  WorkQueue queue(Options(), metrics_, [](const std::string&) { return absl::OkStatus(); });
  EXPECT_EQ(queue.RetryDelay(1), absl::Seconds(1));
  EXPECT_EQ(queue.RetryDelay(3), absl::Seconds(4));
  EXPECT_EQ(queue.RetryDelay(4), absl::Seconds(8));
  EXPECT_EQ(queue.RetryDelay(60), absl::Seconds(8));
}

TEST_F(WorkQueueTest, AnEventDuringABackoffRunsAtOnce) {
  std::atomic<int> runs{0};
  WorkQueue queue(Options(), metrics_, [&](const std::string&) {
    return runs.fetch_add(1) == 0 ? absl::UnavailableError("first fails") : absl::OkStatus();
  });
  queue.Start();
  ASSERT_TRUE(queue.WaitFor("k", queue.Add("k"), absl::Seconds(30)));
  ASSERT_TRUE(queue.WaitFor("k", queue.Add("k"), absl::Seconds(30)))
      << "a new event does not wait out the backoff";
  EXPECT_EQ(runs.load(), 2);
}

TEST_F(WorkQueueTest, AddAfterWaitsForTheClockAndAnEarlierAddWins) {
  std::atomic<int> runs{0};
  WorkQueue queue(Options(), metrics_, [&](const std::string&) {
    runs.fetch_add(1);
    return absl::OkStatus();
  });
  queue.Start();
  absl::SleepFor(absl::Milliseconds(20));  // the worker waits with nothing due, forever
  queue.AddAfter("k", absl::Seconds(30));  // so this must wake it to wait for its time
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(runs.load(), 0);
  clock_.Advance(absl::Seconds(30));
  for (int i = 0; i < 3000 && runs.load() == 0; ++i) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(runs.load(), 1);
}

TEST_F(WorkQueueTest, WaitForGivesUpAtTheTimeoutAndWhenStopped) {
  WorkQueue queue(Options(), metrics_, [](const std::string&) { return absl::OkStatus(); });
  uint64_t ticket = queue.Add("k");  // never started
  std::atomic<bool> gave_up{false};
  Notification returned;
  std::thread waiter([&] {
    gave_up = !queue.WaitFor("k", ticket, absl::Hours(1));
    returned.Notify();
  });
  // However the waiter's start and the advances interleave, two hours pass its deadline.
  for (int i = 0; i < 3000 && !returned.HasBeenNotified(); ++i) {
    clock_.Advance(absl::Minutes(30));
    absl::SleepFor(absl::Milliseconds(2));
  }
  waiter.join();
  EXPECT_TRUE(gave_up.load());
  queue.Stop();
  EXPECT_FALSE(queue.WaitFor("k", ticket, absl::Hours(1)));
}

}  // namespace
}  // namespace gitfleet
