#ifndef GITFLEET_BENCH_BENCH_UTIL_H_
#define GITFLEET_BENCH_BENCH_UTIL_H_

// What the benchmarks share: finding the binaries, medians, and the one source and bundle
// ("bench") they all measure.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"

namespace gitfleet::bench {

double Median(std::vector<double> values);

// `path` (e.g. "controlplane/gitfleet-controlplane") under `bin_dir`, or in the runfiles
// when `bin_dir` is empty (bazel run).
std::string Binary(const std::string& bin_dir, const std::string& path);

// Adds source "bench" at `url` and bundle "bench" at `path` (prune on) through `admin`.
absl::StatusOr<v1::BundleInfo> AddBenchBundle(v1::AdminService::Stub& admin, const std::string& url,
                                              const std::string& path);

}  // namespace gitfleet::bench

#endif  // GITFLEET_BENCH_BENCH_UTIL_H_
