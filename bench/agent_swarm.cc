// A load generator: N simulated agents against a running control plane, until SIGINT.
//
//   bazel run -c opt //bench:agent-swarm -- --controlplane=127.0.0.1:7070 --agents=1000 \
//       --envs=prod,staging --shards=10 --status_churn=0.1 --slow_agents=10
//
// Every agent has its own gRPC channel (its own TCP connection) and speaks the real agent
// protocol (bench/swarm.h). Prints connected agents, messages and bytes every 5 seconds.

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/swarm.h"
#include "common/shutdown.h"

ABSL_FLAG(std::string, controlplane, "127.0.0.1:7070", "Control plane gRPC address.");
ABSL_FLAG(int, agents, 100, "Simulated agents.");
ABSL_FLAG(std::string, prefix, "swarm-", "Cluster names are PREFIX0, PREFIX1, ...");
ABSL_FLAG(std::string, token, "", "Bearer token every agent presents.");
ABSL_FLAG(std::string, envs, "prod", "Comma-separated env label values, spread round-robin.");
ABSL_FLAG(int, shards, 10, "Agents get shard=s0..s(N-1), round-robin.");
ABSL_FLAG(double, status_churn, 0, "Health flips per agent per second (status churn).");
ABSL_FLAG(int, slow_agents, 0, "Agents that wait --slow_ms before every acknowledgement.");
ABSL_FLAG(int, slow_ms, 1000, "How long slow agents wait.");
ABSL_FLAG(bool, ack_carries_status, true,
          "Put the status into the ACK when the control plane offers it; false: a separate "
          "status message, as older agents send.");

int main(int argc, char** argv) {
  gitfleet::ShutdownSignals signals;  // before any thread starts
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as the daemons do
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  gitfleet::bench::SwarmOptions options;
  options.target = absl::GetFlag(FLAGS_controlplane);
  options.agents = absl::GetFlag(FLAGS_agents);
  options.name_prefix = absl::GetFlag(FLAGS_prefix);
  options.token = absl::GetFlag(FLAGS_token);
  options.envs = absl::StrSplit(absl::GetFlag(FLAGS_envs), ',', absl::SkipEmpty());
  if (options.envs.empty()) options.envs = {"prod"};
  options.shards = absl::GetFlag(FLAGS_shards);
  options.status_churn_per_second = absl::GetFlag(FLAGS_status_churn);
  options.slow_agents = absl::GetFlag(FLAGS_slow_agents);
  options.slow_delay = absl::Milliseconds(absl::GetFlag(FLAGS_slow_ms));
  options.ack_carries_status = absl::GetFlag(FLAGS_ack_carries_status);
  gitfleet::bench::Swarm swarm(options);
  swarm.Start();
  std::thread reporter([&] {
    while (true) {
      printf("connected %d/%d, messages %lld, bytes %lld, reconnects %lld\n", swarm.connected(),
             options.agents, static_cast<long long>(swarm.messages_received()),
             static_cast<long long>(swarm.bytes_received()),
             static_cast<long long>(swarm.reconnects()));
      fflush(stdout);
      absl::SleepFor(absl::Seconds(5));
    }
  });
  reporter.detach();
  int sig = signals.Wait();
  printf("stopping on signal %d\n", sig);
  return 0;
}
