#ifndef GITFLEET_BENCH_BENCH_UTIL_H_
#define GITFLEET_BENCH_BENCH_UTIL_H_

// What the benchmarks share: finding the binaries, medians, and the one source and bundle
// ("bench") they all measure.

#include <sys/types.h>

#include <cstdint>
#include <map>
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
// `grpc` is where it listens (port 0 picks one; a restart passes the port it had).
// `extra`: more flags (--store=etcd ...).
absl::StatusOr<ControlPlane> StartControlPlane(const std::string& bin_dir, const std::string& root,
                                               int poll_interval_seconds,
                                               const std::string& grpc = "127.0.0.1:0",
                                               const std::vector<std::string>& extra = {});

// A field of /proc/PID/status (VmRSS, VmHWM), in bytes; 0 when unknown.
int64_t ProcStatusBytes(pid_t pid, const std::string& field);
// User and system CPU seconds of `pid` so far.
double CpuSeconds(pid_t pid);
// The same for each of its threads, summed by thread name (the control plane names its
// own: gf-q-bundles, gf-hub-flush, ...; gRPC's are its own names).
std::map<std::string, double> CpuSecondsByThread(pid_t pid);
// Raises the open-file limit to the hard limit (children inherit it).
void RaiseFileLimit();

// Binds the calling thread, and the threads and processes it starts from now on, to CPUs
// [first, last] (clamped to the machine's). Call it before any other thread starts.
absl::Status PinToCpus(int first, int last);

// ConfigMap cm-I of the bench bundle at `version`: about 300 bytes of YAML, a typical
// small object (fanout and rollout commit changes to one of them).
std::string BenchConfigMap(int i, int version);

// Adds source "bench" at `url` and bundle "bench" at `path` (prune on) through `admin`;
// with `substitute`, ${var} references in it are substituted per cluster.
absl::StatusOr<v1::BundleInfo> AddBenchBundle(v1::AdminService::Stub& admin, const std::string& url,
                                              const std::string& path, bool substitute = false);

}  // namespace gitfleet::bench

#endif  // GITFLEET_BENCH_BENCH_UTIL_H_
