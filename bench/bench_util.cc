#include "bench/bench_util.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "absl/strings/str_cat.h"
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
                                               int poll_interval_seconds) {
  ControlPlane cp;
  cp.process = std::make_unique<testing::Process>(
      Binary(bin_dir, "controlplane/gitfleet-controlplane"),
      std::vector<std::string>{"--data-dir=" + root + "/cp", "--grpc=127.0.0.1:0",
                               "--http=127.0.0.1:0",
                               absl::StrCat("--poll-interval-seconds=", poll_interval_seconds)},
      root + "/cp.log");
  std::string port = cp.process->WaitForLog(R"(serving gRPC on port (\d+))");
  if (port.empty()) {
    return absl::UnavailableError(
        absl::StrCat("control plane did not start:\n", cp.process->Log()));
  }
  cp.target = "127.0.0.1:" + port;
  return cp;
}

absl::StatusOr<v1::BundleInfo> AddBenchBundle(v1::AdminService::Stub& admin, const std::string& url,
                                              const std::string& path) {
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
  v1::BundleInfo bundle;
  status = admin.AddBundle(&bundle_context, add_bundle, &bundle);
  if (!status.ok()) return FromGrpcStatus(status);
  return bundle;
}

}  // namespace gitfleet::bench
