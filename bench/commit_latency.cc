// Commit-to-applied latency for the demo set-up: a real control plane and two agents on
// loopback, a real Git repository, a bundle of --objects ConfigMaps targeted at both.
//
//   bazel run -c opt //bench:commit_latency -- --commits=20 --objects=50
//
// For each commit it changes one object and measures until both agents' files hold the
// new content, in two modes: "sync" (the control plane is told to fetch at once, as a
// webhook would) and "poll" (it notices on its own --poll-interval-seconds=1 timer).
// Prints medians and maxima, and one JSON line at the end.

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "common/file_system.h"
#include "grpcpp/grpcpp.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"
#include "tests/util/git_fixture.h"
#include "tests/util/process.h"

ABSL_FLAG(int, commits, 15, "Commits measured per mode.");
ABSL_FLAG(int, objects, 50, "ConfigMaps in the bundle.");
ABSL_FLAG(std::string, bin_dir, "", "Where the binaries are (default: runfiles).");

namespace gitfleet {
namespace {

using testing::Eventually;
using testing::GitFixture;
using testing::Process;
using testing::ScopedTempDir;

std::string Cm(int i, int version) {
  return absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-", i,
                      "\n  namespace: bench\ndata:\n  version: \"", version, "\"\n");
}

using bench::Median;

std::string Binary(const std::string& path) {
  return bench::Binary(absl::GetFlag(FLAGS_bin_dir), path);
}

int Main() {
  const int commits = absl::GetFlag(FLAGS_commits);
  const int objects = absl::GetFlag(FLAGS_objects);
  ScopedTempDir tmp("bench-latency");
  const std::string root = tmp.path();
  GitFixture git(root + "/repo");
  for (int i = 0; i < objects; ++i) git.Write(absl::StrCat("apps/bench/cm-", i, ".yaml"), Cm(i, 0));
  git.Commit("initial");

  absl::StatusOr<bench::ControlPlane> started =
      bench::StartControlPlane(absl::GetFlag(FLAGS_bin_dir), root, 1);
  if (!started.ok()) {
    fprintf(stderr, "%s\n", std::string(started.status().message()).c_str());
    return 1;
  }
  const std::string& target = started->target;
  std::vector<std::unique_ptr<Process>> agents;
  for (const char* name : {"prod-eu", "staging"}) {
    agents.push_back(std::make_unique<Process>(
        Binary("agent/gitfleet-agent"),
        std::vector<std::string>{"--controlplane=" + target, absl::StrCat("--cluster=", name),
                                 "--labels=env=bench",
                                 absl::StrCat("--apply=directory:", root, "/out-", name),
                                 absl::StrCat("--state-dir=", root, "/state-", name),
                                 "--http=127.0.0.1:0", "--log-level=warning"},
        absl::StrCat(root, "/agent-", name, ".log")));
  }
  auto admin =
      v1::AdminService::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  auto call = [&](auto method, const auto& request, auto* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ((*admin).*method)(&context, request, response);
  };
  absl::StatusOr<v1::BundleInfo> added = bench::AddBenchBundle(*admin, git.url(), "apps/bench");
  if (!added.ok()) {
    fprintf(stderr, "cannot add the bench bundle: %s\n",
            std::string(added.status().message()).c_str());
    return 1;
  }
  v1::BundleInfo bundle_info = *added;

  auto applied_everywhere = [&](int object, int version) {
    std::string want = absl::StrCat("version: \"", version, "\"");
    for (const char* name : {"prod-eu", "staging"}) {
      absl::StatusOr<std::string> text = PosixFileSystem().ReadFile(
          absl::StrCat(root, "/out-", name, "/bench/ConfigMap/cm-", object, ".yaml"));
      if (!text.ok() || text->find(want) == std::string::npos) return false;
    }
    return true;
  };
  // Start measuring only when both agents applied the whole initial set.
  auto initial_synced = [&] {
    v1::GetStatusRequest request;
    v1::GetStatusResponse response;
    if (!call(&v1::AdminService::Stub::GetStatus, request, &response).ok()) return false;
    int synced = 0;
    for (const v1::BundleStatus& s : response.statuses()) {
      synced +=
          s.sync_state() == v1::SYNC_STATE_SYNCED && s.applied_revision() == bundle_info.revision();
    }
    return synced == 2;
  };
  if (!Eventually(initial_synced, absl::Seconds(60)) || !applied_everywhere(0, 0)) {
    fprintf(stderr, "initial sync did not complete\n");
    return 1;
  }

  std::map<std::string, std::vector<double>> results;
  int version = 0;
  for (const std::string mode : {"sync", "poll"}) {
    for (int c = 0; c < commits; ++c) {
      ++version;
      int object = version % objects;
      git.Write(absl::StrCat("apps/bench/cm-", object, ".yaml"), Cm(object, version));
      git.Commit(absl::StrCat("bench ", version));
      absl::Time start = absl::Now();
      if (mode == "sync") {
        v1::SyncSourceRequest sync;
        sync.set_name("bench");
        v1::SourceInfo info;
        call(&v1::AdminService::Stub::SyncSource, sync, &info);
      }
      while (!applied_everywhere(object, version)) {
        if (absl::Now() - start > absl::Seconds(30)) {
          fprintf(stderr, "commit %d never arrived\n", version);
          return 1;
        }
        absl::SleepFor(absl::Microseconds(500));
      }
      results[mode].push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    }
  }
  for (const auto& [mode, values] : results) {
    printf("%-5s commits=%zu median=%.1fms max=%.1fms samples:", mode.c_str(), values.size(),
           Median(values), *std::max_element(values.begin(), values.end()));
    for (double v : values) printf(" %.0f", v);
    printf("\n");
  }
  printf(
      "{\"bench\": \"commit_latency\", \"agents\": 2, \"objects\": %d, \"commits\": %d, "
      "\"sync_median_ms\": %.1f, \"sync_max_ms\": %.1f, \"poll_median_ms\": %.1f, "
      "\"poll_max_ms\": %.1f}\n",
      objects, commits, Median(results["sync"]),
      *std::max_element(results["sync"].begin(), results["sync"].end()), Median(results["poll"]),
      *std::max_element(results["poll"].begin(), results["poll"].end()));
  return 0;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return gitfleet::Main();
}
