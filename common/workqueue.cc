#include "common/workqueue.h"

#include <algorithm>

#include "common/thread_name.h"

namespace gitfleet {

WorkQueueMetrics::WorkQueueMetrics(metrics::Registry& registry)
    : depth(metrics::BuildGauge()
                .Name("gitfleet_workqueue_depth")
                .Help("Keys ready and waiting for a worker, by queue.")
                .LabelNames({"name"})
                .Register(registry)),
      adds(metrics::BuildCounter()
               .Name("gitfleet_workqueue_adds_total")
               .Help("Keys added to a work queue (events), by queue.")
               .LabelNames({"name"})
               .Register(registry)),
      retries(metrics::BuildCounter()
                  .Name("gitfleet_workqueue_retries_total")
                  .Help("Failed keys queued again after a backoff, by queue.")
                  .LabelNames({"name"})
                  .Register(registry)),
      queued(metrics::BuildHistogram()
                 .Name("gitfleet_workqueue_queue_duration_seconds")
                 .Help("Seconds a ready key waited for a worker, by queue.")
                 .LabelNames({"name"})
                 .Register(registry)),
      work(metrics::BuildHistogram()
               .Name("gitfleet_workqueue_work_duration_seconds")
               .Help("Seconds a worker spent on one key, by queue.")
               .LabelNames({"name"})
               .Register(registry)),
      retrying(metrics::BuildGauge()
                   .Name("gitfleet_workqueue_retrying")
                   .Help("Keys whose last run failed, waiting out their backoff, by queue.")
                   .LabelNames({"name"})
                   .Register(registry)) {}

namespace {
const metrics::Histogram::BucketBoundaries& Buckets() {
  static const auto* const buckets =
      new metrics::Histogram::BucketBoundaries(metrics::ExponentialBuckets(0.0001, 4, 12));
  return *buckets;
}
}  // namespace

WorkQueue::WorkQueue(WorkQueueOptions options, WorkQueueMetrics& metrics, Process process)
    : options_(std::move(options)),
      process_(std::move(process)),
      depth_(metrics.depth.Add({{"name", options_.name}})),
      adds_(metrics.adds.Add({{"name", options_.name}})),
      retries_(metrics.retries.Add({{"name", options_.name}})),
      queued_seconds_(metrics.queued.Add({{"name", options_.name}}, Buckets())),
      work_seconds_(metrics.work.Add({{"name", options_.name}}, Buckets())),
      retrying_(metrics.retrying.Add({{"name", options_.name}})) {}

WorkQueue::~WorkQueue() { Stop(); }

void WorkQueue::Start() {
  MutexLock lock(&mu_);
  if (started_ || stop_) return;
  started_ = true;
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    workers_.emplace_back([this] {
      NameThisThread("gf-q-" + options_.name);
      Run();
    });
  }
}

void WorkQueue::Stop() {
  std::vector<std::thread> workers;
  {
    MutexLock lock(&mu_);
    stop_ = true;
    workers.swap(workers_);
  }
  for (std::thread& worker : workers) worker.join();
}

uint64_t WorkQueue::Add(const std::string& key) {
  MutexLock lock(&mu_);
  ++sequence_;
  adds_.Increment();
  AddLocked(key);
  return sequence_;
}

void WorkQueue::AddLocked(const std::string& key) {
  delayed_.erase(key);
  if (processing_.count(key) > 0) {
    dirty_.insert(key);
  } else if (ready_since_.emplace(key, options_.clock->Now()).second) {
    ready_.push_back(key);
  }
  UpdateGaugesLocked();
}

void WorkQueue::AddAfter(const std::string& key, absl::Duration delay) {
  if (delay <= absl::ZeroDuration()) {
    Add(key);
    return;
  }
  MutexLock lock(&mu_);
  AddAfterLocked(key, options_.clock->Now() + delay);
}

void WorkQueue::AddAfterLocked(const std::string& key, absl::Time when) {
  if (ready_since_.count(key) > 0 || dirty_.count(key) > 0) return;  // sooner already
  auto [it, inserted] = delayed_.emplace(key, when);
  if (!inserted) {
    if (when >= it->second) return;  // already due then or sooner: nothing to wake for
    it->second = when;
  }
  ++delayed_changes_;  // idle workers wait for the earliest time: it may be this one
}

bool WorkQueue::WaitFor(const std::string& key, uint64_t ticket, absl::Duration timeout) {
  MutexLock lock(&mu_);
  auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stop_) return true;
    auto it = done_.find(key);
    return it != done_.end() && it->second >= ticket;
  };
  options_.clock->AwaitWithDeadline(&mu_, seen, options_.clock->Now() + timeout);
  auto it = done_.find(key);
  return it != done_.end() && it->second >= ticket;
}

int WorkQueue::Failures(const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

absl::Duration WorkQueue::RetryDelay(int failures) const {
  absl::Duration delay = options_.retry_base;
  for (int i = 1; i < failures && delay < options_.retry_max; ++i) delay *= 2;
  return std::min(delay, options_.retry_max);
}

size_t WorkQueue::Depth() const {
  MutexLock lock(&mu_);
  return ready_.size();
}

absl::Time WorkQueue::PromoteDueLocked() {
  absl::Time now = options_.clock->Now();
  absl::Time next = absl::InfiniteFuture();
  for (auto it = delayed_.begin(); it != delayed_.end();) {
    if (it->second <= now) {
      std::string key = it->first;
      it = delayed_.erase(it);
      AddLocked(key);
      continue;
    }
    next = std::min(next, it->second);
    ++it;
  }
  return next;
}

void WorkQueue::UpdateGaugesLocked() {
  depth_.Set(static_cast<double>(ready_.size()));
  retrying_.Set(static_cast<double>(failures_.size()));
}

void WorkQueue::Run() {
  while (true) {
    std::string key;
    uint64_t began = 0;
    {
      MutexLock lock(&mu_);
      while (true) {
        if (stop_) return;
        absl::Time next = PromoteDueLocked();
        if (!ready_.empty()) break;
        const uint64_t changes = delayed_changes_;
        options_.clock->AwaitWithDeadline(
            &mu_,
            [this, changes]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
              return stop_ || !ready_.empty() || delayed_changes_ != changes;
            },
            next);
      }
      key = ready_.front();
      ready_.pop_front();
      auto since = ready_since_.find(key);
      queued_seconds_.Observe(absl::ToDoubleSeconds(options_.clock->Now() - since->second));
      ready_since_.erase(since);
      processing_.insert(key);
      began = sequence_;
      UpdateGaugesLocked();
    }
    absl::Time start = options_.clock->Now();
    absl::Status status = process_(key);
    work_seconds_.Observe(absl::ToDoubleSeconds(options_.clock->Now() - start));
    MutexLock lock(&mu_);
    processing_.erase(key);
    uint64_t& done = done_[key];
    done = std::max(done, began);
    int failures = 0;
    if (status.ok()) {
      failures_.erase(key);
    } else {
      failures = ++failures_[key];
    }
    if (dirty_.erase(key) > 0) {
      // Added while it ran: a new event, handled now (a failure keeps its count).
      AddLocked(key);
    } else if (!status.ok()) {
      retries_.Increment();
      AddAfterLocked(key, options_.clock->Now() + RetryDelay(failures));
    }
    UpdateGaugesLocked();
  }
}

}  // namespace gitfleet
