#include "common/metrics/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace gitfleet::metrics {
namespace {

void AtomicAdd(std::atomic<double>& target, double value) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + value, std::memory_order_relaxed)) {
  }
}

std::string FormatValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // The shortest form that reads back as the same double.
  char buf[64];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

std::string EscapeLabelValue(const std::string& value) {
  return absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

std::string FormatLabels(const Labels& labels,
                         const std::pair<std::string, std::string>* extra = nullptr) {
  if (labels.empty() && extra == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    absl::StrAppend(&out, first ? "" : ",", name, "=\"", EscapeLabelValue(value), "\"");
    first = false;
  }
  if (extra != nullptr) {
    absl::StrAppend(&out, first ? "" : ",", extra->first, "=\"", extra->second, "\"");
  }
  out += "}";
  return out;
}

void Header(std::string* out, const std::string& name, const std::string& help, const char* type) {
  absl::StrAppend(out, "# HELP ", name, " ",
                  absl::StrReplaceAll(help, {{"\\", "\\\\"}, {"\n", "\\n"}}), "\n");
  absl::StrAppend(out, "# TYPE ", name, " ", type, "\n");
}

}  // namespace

void Counter::Increment(double value) {
  if (value < 0) return;  // counters only go up
  AtomicAdd(value_, value);
}

void Gauge::Increment(double value) { AtomicAdd(value_, value); }

Histogram::Histogram(BucketBoundaries boundaries)
    : boundaries_(std::move(boundaries)),
      buckets_(new std::atomic<uint64_t>[boundaries_.size() + 1]) {
  for (size_t i = 0; i <= boundaries_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < boundaries_.size() && value > boundaries_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> counts;
  uint64_t total = 0;
  for (size_t i = 0; i <= boundaries_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    counts.push_back(total);
  }
  return counts;
}

Histogram::BucketBoundaries ExponentialBuckets(double start, double factor, int count) {
  Histogram::BucketBoundaries out;
  out.reserve(count > 0 ? count : 0);
  double value = start;
  for (int i = 0; i < count; ++i) {
    out.push_back(value);
    value *= factor;
  }
  return out;
}

template <>
void Family<Counter>::Serialize(std::string* out) const {
  Header(out, name(), help(), "counter");
  MutexLock lock(&mu_);
  for (const auto& [labels, metric] : metrics_) {
    absl::StrAppend(out, name(), FormatLabels(labels), " ", FormatValue(metric->Value()), "\n");
  }
}

template <>
void Family<Gauge>::Serialize(std::string* out) const {
  Header(out, name(), help(), "gauge");
  MutexLock lock(&mu_);
  for (const auto& [labels, metric] : metrics_) {
    absl::StrAppend(out, name(), FormatLabels(labels), " ", FormatValue(metric->Value()), "\n");
  }
}

template <>
void Family<Histogram>::Serialize(std::string* out) const {
  Header(out, name(), help(), "histogram");
  MutexLock lock(&mu_);
  for (const auto& [labels, metric] : metrics_) {
    std::vector<uint64_t> counts = metric->CumulativeCounts();
    for (size_t i = 0; i < counts.size(); ++i) {
      std::pair<std::string, std::string> le{
          "le", i < metric->boundaries().size() ? FormatValue(metric->boundaries()[i]) : "+Inf"};
      absl::StrAppend(out, name(), "_bucket", FormatLabels(labels, &le), " ", counts[i], "\n");
    }
    absl::StrAppend(out, name(), "_sum", FormatLabels(labels), " ", FormatValue(metric->Sum()),
                    "\n");
    absl::StrAppend(out, name(), "_count", FormatLabels(labels), " ", metric->Count(), "\n");
  }
}

void Registry::CheckUniqueLocked(const std::string& name) const {
  for (const auto& family : families_) {
    if (family->name() == name) {
      std::fprintf(stderr, "metric family %s registered twice\n", name.c_str());
      std::abort();
    }
  }
}

std::string Registry::Serialize() const {
  std::string out;
  MutexLock lock(&mu_);
  for (const auto& family : families_) family->Serialize(&out);
  return out;
}

}  // namespace gitfleet::metrics
