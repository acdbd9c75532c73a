// What commit statuses cost the control plane: a real control plane, N simulated agents
// (bench/swarm), one bundle of M ConfigMaps from a repository served by git daemon as
// OWNER/REPO. Two runs of R commits each, fanned out to every agent at once: one without
// a commit-status sink, one with a `github` sink (a GitHub Enterprise-style API on
// loopback, tests/util/webhook_sink). For each commit it measures the control plane's CPU
// from the sync until a fixed settle after the last agent's ACK (long enough for the
// status's success to be posted), and, with the sink, the time from the last ACK to the
// success being posted.
//
//   bazel run -c opt //bench:commit_status -- --agents=10000 --rounds=5
//
// The last line is one JSON object.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/swarm.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "proto/gitfleet/v1/admin.grpc.pb.h"
#include "tests/util/git_fixture.h"
#include "tests/util/git_servers.h"
#include "tests/util/process.h"
#include "tests/util/webhook_sink.h"

ABSL_FLAG(int, agents, 1000, "Simulated agents.");
ABSL_FLAG(int, objects, 1000, "ConfigMaps in the bundle.");
ABSL_FLAG(int, rounds, 5, "Commits measured per run.");
ABSL_FLAG(std::string, bin_dir, "", "Where the binaries are (default: runfiles).");
ABSL_FLAG(int, settle_ms, 3000,
          "How long after the last agent's ACK the control plane's CPU is read: statuses are "
          "judged at most once a second, so this leaves the success time to be posted.");

ABSL_FLAG(bool, control, false,
          "A control for the order of the runs: the second run has no sink either, so its "
          "ratio to the first is what the order alone makes.");

namespace gitfleet {
namespace {

using testing::GitFixture;
using testing::ScopedTempDir;

struct Run {
  std::vector<double> cpu;         // per commit
  std::vector<double> latency_ms;  // last ACK to the success posted (with the sink)
  int posts = 0;
  std::map<std::string, std::vector<double>> threads;  // CPU s per commit, by thread name
};

// The success status for `commit` among the sink's posts.
bool SuccessPosted(const testing::WebhookSink& sink, const std::string& commit) {
  for (const nlohmann::json& post : sink.Posts()) {
    if (!absl::EndsWith(post.value("path", ""), commit)) continue;
    nlohmann::json body = nlohmann::json::parse(post.value("body", ""), nullptr, false);
    if (body.is_object() && body.value("state", "") == "success") return true;
  }
  return false;
}

absl::StatusOr<Run> Measure(const std::string& root, GitFixture& git, int daemon_port,
                            testing::WebhookSink* sink) {
  const int agents = absl::GetFlag(FLAGS_agents);
  std::vector<std::string> extra;
  if (sink != nullptr) {
    std::ofstream(root + "/token") << "bench-token-0123456789\n";
    std::ofstream(root + "/notify") << "http://127.0.0.1:" << sink->port()
                                    << "/acme/fleet github token-file=" << root << "/token\n";
    extra.push_back("--notify-file=" + root + "/notify");
  }
  absl::StatusOr<bench::ControlPlane> started =
      bench::StartControlPlane(absl::GetFlag(FLAGS_bin_dir), root, 3600, "127.0.0.1:0", extra);
  if (!started.ok()) return started.status();
  testing::Process& cp = *started->process;
  auto admin = v1::AdminService::NewStub(
      grpc::CreateChannel(started->target, grpc::InsecureChannelCredentials()));
  auto call = [&](auto method, const auto& request, auto* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    return ((*admin).*method)(&context, request, response);
  };
  absl::StatusOr<v1::BundleInfo> added = bench::AddBenchBundle(
      *admin, absl::StrCat("git://127.0.0.1:", daemon_port, "/acme/fleet.git"), "apps/bench");
  if (!added.ok()) return added.status();
  bench::SwarmOptions options;
  options.target = started->target;
  options.agents = agents;
  bench::Swarm swarm(options);
  swarm.Start();
  if (!swarm.WaitUntil([&] { return swarm.Holding("bench", added->revision()) == agents; },
                       absl::Seconds(120 + agents / 20))) {
    return absl::DeadlineExceededError("initial sync incomplete");
  }
  absl::SleepFor(absl::Seconds(5));
  static int version = 1;
  Run run;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    git.Write("apps/bench/cm-0.yaml", bench::BenchConfigMap(0, version++));
    const std::string commit = git.Commit(absl::StrCat("change ", version));
    const double before = bench::CpuSeconds(cp.pid());
    const std::map<std::string, double> threads_before = bench::CpuSecondsByThread(cp.pid());
    v1::SyncSourceRequest sync;
    sync.set_name("bench");
    v1::SourceInfo info;
    if (!call(&v1::AdminService::Stub::SyncSource, sync, &info).ok()) {
      return absl::InternalError("sync failed");
    }
    v1::ListBundlesResponse bundles;
    if (!call(&v1::AdminService::Stub::ListBundles, v1::ListBundlesRequest(), &bundles).ok()) {
      return absl::InternalError("listing failed");
    }
    const std::string revision = bundles.bundles(0).revision();
    if (!swarm.WaitUntil([&] { return swarm.Holding("bench", revision) == agents; },
                         absl::Seconds(300))) {
      return absl::DeadlineExceededError(absl::StrCat("only ", swarm.Holding("bench", revision),
                                                      " of ", agents, " agents got ", revision));
    }
    const absl::Time last_ack = swarm.LastAckOf("bench", revision);
    if (sink != nullptr) {
      if (!swarm.WaitUntil([&] { return SuccessPosted(*sink, commit); }, absl::Seconds(60),
                           absl::Milliseconds(20))) {
        return absl::DeadlineExceededError(absl::StrCat("no success posted for ", commit));
      }
      run.latency_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - last_ack));
    }
    const absl::Time settled = last_ack + absl::Milliseconds(absl::GetFlag(FLAGS_settle_ms));
    if (settled > absl::Now()) absl::SleepFor(settled - absl::Now());
    run.cpu.push_back(bench::CpuSeconds(cp.pid()) - before);
    for (const auto& [name, seconds] : bench::CpuSecondsByThread(cp.pid())) {
      auto was = threads_before.find(name);
      run.threads[name].push_back(seconds - (was != threads_before.end() ? was->second : 0));
    }
    printf("%s round %d: %.3f CPU s%s\n", sink != nullptr ? "with statuses" : "without", round,
           run.cpu.back(),
           sink != nullptr
               ? absl::StrCat(", success posted ", run.latency_ms.back(), " ms after the last ACK")
                     .c_str()
               : "");
    fflush(stdout);
  }
  if (sink != nullptr) run.posts = static_cast<int>(sink->Posts().size());
  cp.Kill(SIGTERM);
  return run;
}

int Main() {
  bench::RaiseFileLimit();
  ScopedTempDir tmp("bench-commit-status");
  const std::string root = tmp.path();
  GitFixture git(root + "/repo");
  for (int i = 0; i < absl::GetFlag(FLAGS_objects); ++i) {
    git.Write(absl::StrCat("apps/bench/cm-", i, ".yaml"), bench::BenchConfigMap(i, 0));
  }
  git.Commit("initial");
  // Served as a Git host names it, OWNER/REPO, by git-daemon itself (see the e2e fixture).
  mkdir((root + "/acme").c_str(), 0755);
  symlink((root + "/repo").c_str(), (root + "/acme/fleet.git").c_str());
  const int port = testing::FreePort();
  testing::Process daemon("/usr/lib/git-core/git-daemon",
                          {"--reuseaddr", "--export-all", "--listen=127.0.0.1",
                           absl::StrCat("--port=", port), "--base-path=" + root, root},
                          root + "/git-daemon.log");
  absl::SleepFor(absl::Milliseconds(500));
  if (!daemon.running()) {
    fprintf(stderr, "git daemon did not start: %s\n", daemon.Log().c_str());
    return 1;
  }
  testing::WebhookSink sink;
  mkdir((root + "/sink").c_str(), 0755);
  if (absl::Status started = sink.Start(root + "/sink"); !started.ok()) {
    fprintf(stderr, "%s\n", started.ToString().c_str());
    return 1;
  }
  mkdir((root + "/without").c_str(), 0755);
  mkdir((root + "/with").c_str(), 0755);
  absl::StatusOr<Run> without = Measure(root + "/without", git, port, nullptr);
  if (!without.ok()) {
    fprintf(stderr, "%s\n", without.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<Run> with =
      Measure(root + "/with", git, port, absl::GetFlag(FLAGS_control) ? nullptr : &sink);
  if (!with.ok()) {
    fprintf(stderr, "%s\n", with.status().ToString().c_str());
    return 1;
  }
  // The threads whose median cost per commit moved most.
  std::vector<std::pair<double, std::string>> moved;
  for (const auto& [name, seconds] : with->threads) {
    auto was = without->threads.find(name);
    const double base = was != without->threads.end() ? bench::Median(was->second) : 0;
    moved.push_back({bench::Median(seconds) - base, name});
  }
  std::sort(moved.rbegin(), moved.rend());
  for (size_t i = 0; i < moved.size() && i < 6; ++i) {
    printf("thread %s: %+.3f CPU s per commit with statuses\n", moved[i].second.c_str(),
           moved[i].first);
  }
  const double base = bench::Median(without->cpu), statuses = bench::Median(with->cpu);
  printf(
      "{\"agents\": %d, \"rounds\": %d, \"cpu_s_without_median\": %.3f, "
      "\"cpu_s_with_median\": %.3f, \"ratio\": %.3f, \"success_after_last_ack_ms_median\": %.0f, "
      "\"statuses_posted\": %d}\n",
      absl::GetFlag(FLAGS_agents), absl::GetFlag(FLAGS_rounds), base, statuses,
      base > 0 ? statuses / base : 0.0, bench::Median(with->latency_ms), with->posts);
  return 0;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return gitfleet::Main();
}
