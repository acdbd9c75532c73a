#ifndef GITFLEET_BENCH_BENCH_UTIL_H_
#define GITFLEET_BENCH_BENCH_UTIL_H_

// What the benchmarks share: finding the binaries, medians, and the one source and bundle
// ("bench") they all measure.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"
#include "tests/util/process.h"

namespace gitfleet::bench {

double Median(std::vector<double> values);

// `path` (e.g. "controlplane/gitfleet-controlplane") under `bin_dir`, or in the runfiles
// when `bin_dir` is empty (bazel run).
std::string Binary(const std::string& bin_dir, const std::string& path);

// A control plane for a benchmark: data under ROOT/cp, log in ROOT/cp.log, loopback ports.
struct ControlPlane {
  std::unique_ptr<testing::Process> process;
  std::string target;  // 127.0.0.1:PORT for gRPC
};
absl::StatusOr<ControlPlane> StartControlPlane(const std::string& bin_dir, const std::string& root,
                                               int poll_interval_seconds);

// Adds source "bench" at `url` and bundle "bench" at `path` (prune on) through `admin`.
absl::StatusOr<v1::BundleInfo> AddBenchBundle(v1::AdminService::Stub& admin, const std::string& url,
                                              const std::string& path);

}  // namespace gitfleet::bench

#endif  // GITFLEET_BENCH_BENCH_UTIL_H_
