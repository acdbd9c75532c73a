// A control plane restart under a fleet: a real control plane, N simulated agents (bench/swarm,
// one TCP connection each, redialling as the real agent does), each holding one bundle of M
// ConfigMaps.
//
//   bazel run -c opt //bench:restart_storm -- --agents=10000 --objects=100
//
// Once every agent holds the bundle, the control plane gets SIGTERM and is started again on
// the same data and port. It reports the time from the control plane serving again to every
// agent being connected, the connection attempts per agent (every stream opened from the
// SIGTERM on), the update messages and bytes sent again (zero is right: each hello names
// what the agent holds), and the restarted control plane's CPU seconds and peak RSS during
// the storm. The last line is one JSON object.

#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/swarm.h"
#include "grpcpp/grpcpp.h"
#include "tests/util/git_fixture.h"
#include "tests/util/process.h"

ABSL_FLAG(int, agents, 1000, "Simulated agents.");
ABSL_FLAG(int, objects, 100, "ConfigMaps in the bundle.");
ABSL_FLAG(int, restarts, 3, "Restarts measured.");
ABSL_FLAG(int, api_versions, 0, "Served APIs each agent's hello names (0: none).");
ABSL_FLAG(bool, api_digest, true,
          "Agents name a list the control plane holds by digest alone (false: in full, as "
          "agents before the digest did).");
ABSL_FLAG(std::string, bin_dir, "", "Where the binaries are (default: runfiles).");

namespace gitfleet {
namespace {

using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::ScopedTempDir;

int Main() {
  bench::RaiseFileLimit();  // the control plane inherits it
  const int agents = absl::GetFlag(FLAGS_agents);
  ScopedTempDir tmp("bench-restart");
  const std::string root = tmp.path();
  GitFixture git(root + "/repo");
  for (int i = 0; i < absl::GetFlag(FLAGS_objects); ++i) {
    git.Write(absl::StrCat("apps/bench/cm-", i, ".yaml"),
              absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-", i,
                           "\n  namespace: bench\ndata:\n  v: \"", i, "\"\n"));
  }
  git.Commit("initial");
  absl::StatusOr<bench::ControlPlane> cp =
      bench::StartControlPlane(absl::GetFlag(FLAGS_bin_dir), root, 3600);
  if (!cp.ok()) {
    fprintf(stderr, "%s\n", std::string(cp.status().message()).c_str());
    return 1;
  }
  const std::string target = cp->target;
  auto admin =
      v1::AdminService::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  absl::StatusOr<v1::BundleInfo> bundle = bench::AddBenchBundle(*admin, git.url(), "apps/bench");
  if (!bundle.ok()) {
    fprintf(stderr, "cannot add the bench bundle: %s\n",
            std::string(bundle.status().message()).c_str());
    return 1;
  }
  bench::SwarmOptions options;
  options.target = target;
  options.agents = agents;
  options.api_versions = absl::GetFlag(FLAGS_api_versions);
  options.api_digest = absl::GetFlag(FLAGS_api_digest);
  bench::Swarm swarm(options);
  swarm.Start();
  if (!swarm.WaitUntil([&] { return swarm.Holding("bench", bundle->revision()) == agents; },
                       absl::Seconds(120 + agents / 20))) {
    fprintf(stderr, "initial sync incomplete: %d of %d agents hold the revision\n",
            swarm.Holding("bench", bundle->revision()), agents);
    return 1;
  }
  printf("%d agents hold bundle bench (%d objects)\n", agents, absl::GetFlag(FLAGS_objects));
  absl::SleepFor(absl::Seconds(2));

  std::vector<double> back, attempts, cpu, rss, down, hello_mb;
  int64_t resent_messages = 0, resent_bytes = 0;
  for (int r = 0; r < absl::GetFlag(FLAGS_restarts); ++r) {
    const int64_t reconnects_before = swarm.reconnects();
    const int64_t updates_before = swarm.updates_received();
    const int64_t bytes_before = swarm.bytes_received();
    const int64_t hello_bytes_before = swarm.hello_bytes();
    absl::Time stop = absl::Now();
    cp->process->Kill(SIGTERM);
    absl::StatusOr<bench::ControlPlane> again =
        bench::StartControlPlane(absl::GetFlag(FLAGS_bin_dir), root, 3600, target);
    if (!again.ok()) {
      fprintf(stderr, "restart %d: %s\n", r, std::string(again.status().message()).c_str());
      return 1;
    }
    absl::Time serving = absl::Now();
    down.push_back(absl::ToDoubleSeconds(serving - stop));
    cp = std::move(again);
    const double cpu_start = bench::CpuSeconds(cp->process->pid());
    if (!swarm.WaitUntil([&] { return swarm.connected() == agents; }, absl::Seconds(120),
                         absl::Milliseconds(20))) {
      fprintf(stderr, "restart %d: only %d of %d agents came back\n", r, swarm.connected(), agents);
      return 1;
    }
    back.push_back(absl::ToDoubleSeconds(absl::Now() - serving));
    // Each redial after the SIGTERM is one attempt.
    attempts.push_back(static_cast<double>(swarm.reconnects() - reconnects_before) / agents);
    absl::SleepFor(absl::Seconds(1));
    resent_messages += swarm.updates_received() - updates_before;
    resent_bytes += swarm.bytes_received() - bytes_before;
    hello_mb.push_back(static_cast<double>(swarm.hello_bytes() - hello_bytes_before) / 1e6);
    cpu.push_back(bench::CpuSeconds(cp->process->pid()) - cpu_start);
    rss.push_back(static_cast<double>(bench::ProcStatusBytes(cp->process->pid(), "VmHWM")));
    printf(
        "restart %d: serving again %.2fs after SIGTERM; every agent back %.2fs after serving; "
        "%.2f attempts per agent; hellos %.1f MB; cp cpu %.2fs, peak rss %.0f MiB\n",
        r, down.back(), back.back(), attempts.back(), hello_mb.back(), cpu.back(),
        rss.back() / (1 << 20));
    fflush(stdout);
    absl::SleepFor(absl::Seconds(2));
  }
  printf(
      "{\"agents\": %d, \"objects\": %d, \"restarts\": %zu, \"down_seconds_median\": %.2f, "
      "\"back_seconds_median\": %.2f, "
      "\"back_seconds_max\": %.2f, \"attempts_per_agent_median\": %.2f, "
      "\"resent_update_messages\": %lld, \"welcome_and_resent_bytes\": %lld, "
      "\"hello_mb_median\": %.1f, "
      "\"cp_cpu_seconds_median\": %.2f, \"cp_peak_rss_mib_max\": %.0f}\n",
      agents, absl::GetFlag(FLAGS_objects), back.size(), bench::Median(down), bench::Median(back),
      *std::max_element(back.begin(), back.end()), bench::Median(attempts),
      static_cast<long long>(resent_messages), static_cast<long long>(resent_bytes),
      bench::Median(hello_mb), bench::Median(cpu),
      *std::max_element(rss.begin(), rss.end()) / (1 << 20));
  return 0;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as the daemons do
  return gitfleet::Main();
}
