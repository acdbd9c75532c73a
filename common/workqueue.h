#ifndef GITFLEET_COMMON_WORKQUEUE_H_
#define GITFLEET_COMMON_WORKQUEUE_H_

// A keyed work queue for level-triggered reconcilers, in the shape of Kubernetes'
// client-go workqueue: events add keys, not payloads; a key waiting is queued once however
// often it is added; a key is never processed by two workers at once (added while being
// processed, it runs again afterwards); a key whose processing fails is added again after
// an exponential per-key backoff, and a success resets it. The processing function reads
// the current state and acts; it never trusts the event that queued it.
//
//   WorkQueue queue({"bundles", 2}, metrics, [&](const std::string& key) {
//     return Reconcile(key);  // an error retries the key with backoff
//   });
//   queue.Start();
//   uint64_t ticket = queue.Add("web");
//   queue.WaitFor("web", ticket, absl::Seconds(30));  // until a run that saw the add ends
//
// Thread-safe. The processing function runs on the queue's workers without the queue's
// lock held, so it may add keys (its own too).

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics/metrics.h"
#include "common/sync.h"

namespace gitfleet {

// The gitfleet_workqueue_* families; each queue takes its series by name.
struct WorkQueueMetrics {
  explicit WorkQueueMetrics(metrics::Registry& registry);

  metrics::Family<metrics::Gauge>& depth;       // keys ready and waiting for a worker
  metrics::Family<metrics::Counter>& adds;      // every Add, de-duplicated or not
  metrics::Family<metrics::Counter>& retries;   // failures requeued with backoff
  metrics::Family<metrics::Histogram>& queued;  // seconds from ready to picked
  metrics::Family<metrics::Histogram>& work;    // seconds of processing
  metrics::Family<metrics::Gauge>& retrying;    // keys waiting out a backoff
};

struct WorkQueueOptions {
  std::string name;  // the metrics' `name` label
  int workers = 1;
  // A key's n-th consecutive failure waits min(retry_base * 2^(n-1), retry_max).
  absl::Duration retry_base = absl::Seconds(1);
  absl::Duration retry_max = absl::Minutes(5);
  Clock* clock = &RealClock();
};

class WorkQueue {
 public:
  using Process = std::function<absl::Status(const std::string& key)>;

  WorkQueue(WorkQueueOptions options, WorkQueueMetrics& metrics, Process process);
  ~WorkQueue();  // Stop()

  void Start();
  // Waits for keys being processed; drops the rest. Idempotent.
  void Stop();

  // Queues `key` now. Returns a ticket for WaitFor.
  uint64_t Add(const std::string& key);
  // Queues `key` after `delay`, unless it is queued sooner. Not an event for WaitFor.
  void AddAfter(const std::string& key, absl::Duration delay);
  // Waits until a processing of `key` that began after the Add that returned `ticket` has
  // ended, successfully or not. False on timeout or when the queue stops.
  bool WaitFor(const std::string& key, uint64_t ticket, absl::Duration timeout);

  // Consecutive failures of `key` so far.
  int Failures(const std::string& key) const;
  // The wait after the n-th consecutive failure.
  absl::Duration RetryDelay(int failures) const;
  // Keys ready and waiting for a worker.
  size_t Depth() const;

 private:
  void Run();
  // Queues `key` now (ready_, or dirty_ while it is processed); not counted as an event.
  void AddLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddAfterLocked(const std::string& key, absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves delayed keys whose time has come to ready_; returns the next such time.
  absl::Time PromoteDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkQueueOptions options_;
  const Process process_;
  metrics::Gauge& depth_;
  metrics::Counter& adds_;
  metrics::Counter& retries_;
  metrics::Histogram& queued_seconds_;
  metrics::Histogram& work_seconds_;
  metrics::Gauge& retrying_;

  mutable Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> ready_since_ ABSL_GUARDED_BY(mu_);  // keys in ready_
  std::set<std::string> processing_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);  // added while processed
  // Keys waiting for a time (a retry or an AddAfter), earliest per key.
  std::map<std::string, absl::Time> delayed_ ABSL_GUARDED_BY(mu_);
  uint64_t delayed_changes_ ABSL_GUARDED_BY(mu_) = 0;  // wakes workers waiting for a time
  std::map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Per key: the sequence when its last finished run began (every Add up to it was seen).
  // One entry per key ever processed (bundle and source names: small and admin-made).
  std::map<std::string, uint64_t> done_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_WORKQUEUE_H_
