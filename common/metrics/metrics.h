#ifndef GITFLEET_COMMON_METRICS_METRICS_H_
#define GITFLEET_COMMON_METRICS_METRICS_H_

// Prometheus metrics with prometheus-cpp's API shape (that library is not packaged
// for Debian 12).
//
//   Registry registry;
//   Family<Counter>& fetches = BuildCounter()
//       .Name("gitfleet_source_fetches_total")
//       .Help("Git fetches by result.")
//       .LabelNames({"result"})
//       .Register(registry);
//   fetches.Add({{"result", "ok"}}).Increment();
//   std::string text = registry.Serialize();  // text exposition format 0.0.4
//
// Thread-safe: metrics update lock-free; Add() and Serialize() take a family's mutex.
// Families and metrics live as long as the Registry.

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/sync.h"

namespace gitfleet::metrics {

using Labels = std::map<std::string, std::string>;

class Counter {
 public:
  void Increment(double value = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Increment(double value = 1.0);
  void Decrement(double value = 1.0) { Increment(-value); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  using BucketBoundaries = std::vector<double>;
  explicit Histogram(BucketBoundaries boundaries);
  void Observe(double value);

  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  // Cumulative counts, one per boundary, then +Inf.
  std::vector<uint64_t> CumulativeCounts() const;
  const BucketBoundaries& boundaries() const { return boundaries_; }

 private:
  const BucketBoundaries boundaries_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // one per boundary + Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Boundaries start, start*factor, ... (count of them).
Histogram::BucketBoundaries ExponentialBuckets(double start, double factor, int count);

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}
  virtual ~FamilyBase() = default;
  virtual void Serialize(std::string* out) const = 0;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }

 private:
  const std::string name_;
  const std::string help_;
};

template <typename T>
class Family : public FamilyBase {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names)
      : FamilyBase(std::move(name), std::move(help)), label_names_(std::move(label_names)) {}

  // Returns the metric for `labels`, creating it with `args` on first use. Labels must
  // be exactly the family's label names.
  template <typename... Args>
  T& Add(const Labels& labels, Args&&... args) {
    MutexLock lock(&mu_);
    auto it = metrics_.find(labels);
    if (it == metrics_.end()) {
      it = metrics_.emplace(labels, std::make_unique<T>(std::forward<Args>(args)...)).first;
    }
    return *it->second;
  }

  void Remove(const Labels& labels) {
    MutexLock lock(&mu_);
    metrics_.erase(labels);
  }

  void Serialize(std::string* out) const override;

 private:
  const std::vector<std::string> label_names_;
  mutable Mutex mu_;
  std::map<Labels, std::unique_ptr<T>> metrics_ ABSL_GUARDED_BY(mu_);
};

class Registry {
 public:
  // Takes ownership; returns the family. A second family of the same name aborts,
  // since that is a programming error.
  template <typename T>
  Family<T>& Register(std::unique_ptr<Family<T>> family) {
    MutexLock lock(&mu_);
    Family<T>& ref = *family;
    CheckUniqueLocked(ref.name());
    families_.push_back(std::move(family));
    return ref;
  }

  // The text exposition format.
  std::string Serialize() const;

 private:
  void CheckUniqueLocked(const std::string& name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  mutable Mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
};

template <typename T>
class Builder {
 public:
  Builder& Name(std::string name) {
    name_ = std::move(name);
    return *this;
  }
  Builder& Help(std::string help) {
    help_ = std::move(help);
    return *this;
  }
  Builder& LabelNames(std::vector<std::string> names) {
    label_names_ = std::move(names);
    return *this;
  }
  Family<T>& Register(Registry& registry) {
    return registry.Register(std::make_unique<Family<T>>(name_, help_, label_names_));
  }

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
};

inline Builder<Counter> BuildCounter() { return {}; }
inline Builder<Gauge> BuildGauge() { return {}; }
inline Builder<Histogram> BuildHistogram() { return {}; }

}  // namespace gitfleet::metrics

#endif  // GITFLEET_COMMON_METRICS_METRICS_H_
