#include "bench/bench_util.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/grpc_status.h"
#include "grpcpp/grpcpp.h"

namespace gitfleet::bench {

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

std::string Binary(const std::string& bin_dir, const std::string& path) {
  if (!bin_dir.empty()) return bin_dir + "/" + path;
  const char* runfiles = getenv("RUNFILES_DIR");
  return runfiles ? absl::StrCat(runfiles, "/gitfleet/", path) : path;
}

absl::StatusOr<ControlPlane> StartControlPlane(const std::string& bin_dir, const std::string& root,
                                               int poll_interval_seconds, const std::string& grpc,
                                               const std::vector<std::string>& extra) {
  static int starts = 0;
  ControlPlane cp;
  // Simulated agents join by name and are targeted by the labels they report.
  std::vector<std::string> args = {
      "--data-dir=" + root + "/cp", "--grpc=" + grpc,
      "--http=127.0.0.1:0",         absl::StrCat("--poll-interval-seconds=", poll_interval_seconds),
      "--allow-any-agent",          "--trust-agent-labels",
      "--allow-local-sources"};
  args.insert(args.end(), extra.begin(), extra.end());
  cp.process = std::make_unique<testing::Process>(
      Binary(bin_dir, "controlplane/gitfleet-controlplane"), args,
      // Each start its own log: they are appended to, and a restart must not find the last
      // start's "serving" line.
      absl::StrCat(root, "/cp.log", starts == 0 ? "" : absl::StrCat(".", starts)));
  ++starts;
  std::string port = cp.process->WaitForLog(R"(serving gRPC on port (\d+))");
  if (port.empty()) {
    return absl::UnavailableError(
        absl::StrCat("control plane did not start:\n", cp.process->Log()));
  }
  cp.target = "127.0.0.1:" + port;
  return cp;
}

int64_t ProcStatusBytes(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kib = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) return kib * 1024;
  }
  return 0;
}

namespace {
// utime + stime of a /proc .../stat file, in seconds.
double StatCpuSeconds(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(text.substr(paren + 2), ' ');
  double utime = 0, stime = 0;
  if (fields.size() > 12 &&
      (!absl::SimpleAtod(fields[11], &utime) || !absl::SimpleAtod(fields[12], &stime))) {
    return 0;  // not the stat line it should be
  }
  return (utime + stime) / sysconf(_SC_CLK_TCK);
}
}  // namespace

double CpuSeconds(pid_t pid) { return StatCpuSeconds(absl::StrCat("/proc/", pid, "/stat")); }

std::map<std::string, double> CpuSecondsByThread(pid_t pid) {
  std::map<std::string, double> out;
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (!std::getline(comm, name)) continue;  // gone meanwhile
    out[name] += StatCpuSeconds(task.path() / "stat");
  }
  return out;
}

absl::Status PinToCpus(int first, int last) {
  const int cpus = static_cast<int>(std::thread::hardware_concurrency());
  last = std::min(last, cpus - 1);
  if (first < 0 || first > last) {
    return absl::InvalidArgumentError(
        absl::StrCat("no CPUs ", first, "-", last, " on this machine of ", cpus));
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu = first; cpu <= last; ++cpu) CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return absl::InternalError(absl::StrCat("sched_setaffinity: ", strerror(errno)));
  }
  return absl::OkStatus();
}

void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string BenchConfigMap(int i, int version) {
  return absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-", i,
                      "\n  namespace: bench\n  labels: {app: bench, tier: backend}\ndata:\n"
                      "  version: \"",
                      version, "\"\n  settings: \"", std::string(160, 'x'), "\"\n");
}

absl::StatusOr<v1::BundleInfo> AddBenchBundle(v1::AdminService::Stub& admin, const std::string& url,
                                              const std::string& path, bool substitute) {
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(60); };
  grpc::ClientContext source_context;
  source_context.set_deadline(deadline());
  v1::AddSourceRequest add_source;
  add_source.mutable_source()->set_name("bench");
  add_source.mutable_source()->set_url(url);
  v1::SourceInfo source;
  grpc::Status status = admin.AddSource(&source_context, add_source, &source);
  if (!status.ok()) return FromGrpcStatus(status);
  grpc::ClientContext bundle_context;
  bundle_context.set_deadline(deadline());
  v1::AddBundleRequest add_bundle;
  add_bundle.mutable_bundle()->set_name("bench");
  add_bundle.mutable_bundle()->set_source("bench");
  add_bundle.mutable_bundle()->set_path(path);
  add_bundle.mutable_bundle()->mutable_sync()->set_prune(true);
  add_bundle.mutable_bundle()->set_substitute(substitute);
  v1::BundleInfo bundle;
  status = admin.AddBundle(&bundle_context, add_bundle, &bundle);
  if (!status.ok()) return FromGrpcStatus(status);
  return bundle;
}

}  // namespace gitfleet::bench
