// The rollout machinery's cost: a real control plane, N simulated agents (bench/swarm),
// one bundle of M ConfigMaps. Each round commits a one-object change twice: once rolled
// out everywhere at once, once in P partitions (--partition-size=100/P %), the bundle's
// definition switched between the two in between (which sends nothing: the revision is
// the same). For each it measures the control plane's CPU from the sync to the last
// agent's report being read (rolled out, or the rollout done), and for the partitioned one
// the gate's latency: from the last ACK (carrying Applied and Healthy, as the real agent
// sends it) of partition k to the first ACK of partition k+1 (an ACK follows its update
// at once, so this is the gap to the next partition's first update plus one round trip).
//
//   bazel run -c opt //bench:rollout -- --agents=10000 --partitions=10 --rounds=3
//
// The last line is one JSON object.

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/swarm.h"
#include "common/proto_time.h"
#include "grpcpp/grpcpp.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"
#include "tests/util/git_fixture.h"
#include "tests/util/process.h"

ABSL_FLAG(int, agents, 1000, "Simulated agents.");
ABSL_FLAG(int, objects, 1000, "ConfigMaps in the bundle.");
ABSL_FLAG(int, partitions, 10, "Partitions of the progressive rollout.");
ABSL_FLAG(int, rounds, 3, "Rounds, each one commit at once and one commit partitioned.");
ABSL_FLAG(std::string, bin_dir, "", "Where the binaries are (default: runfiles).");
ABSL_FLAG(int, settle_ms, 1000,
          "How long after the last agent's ACK the control plane's CPU is read (work it does "
          "for the commit after that, such as storing reports, is not counted).");
ABSL_FLAG(std::string, perf_control, "",
          "A FIFO that `perf record --control=fifo:FIFO -D -1` listens on: the bench enables "
          "perf for each measured commit only, so a profile shows what the measurement counts. "
          "Two, comma-separated: the first for the commits at once, the second for the "
          "partitioned ones.");
ABSL_FLAG(int, apply_ms, 0,
          "Each agent takes a time in [0, apply_ms) to apply an update before it acknowledges "
          "it (a real agent waits for its API server); 0: every agent answers at once, the "
          "hardest case for the partitioned side (see docs/BENCHMARKS.md).");
ABSL_FLAG(int, at_once_apply_ms, -1,
          "The at-once side's --apply_ms, when it should differ (-1: the same). A control: "
          "with --apply_ms=500 and 10 partitions, --at_once_apply_ms=5000 gives the fan-out at "
          "once ACKs as sparse as each partition's.");
ABSL_FLAG(int, idle_s, 5,
          "How long the idle cost is measured. Keepalive pings begin 30 s after a connection's "
          "last data, so a window of 60 s or more includes them (they matter with a long "
          "--apply_ms, when a rollout lasts minutes).");
ABSL_FLAG(bool, pin_cpus, false,
          "Run the control plane on CPU 0 and the bench (the simulated agents) on the others, "
          "so that they share no core's caches: one source of noise fewer "
          "(docs/BENCHMARKS.md). Needs 2 CPUs or more.");
ABSL_FLAG(std::string, paced, "",
          "Pace the partitioned side (--paced --max-unavailable=THIS): each partition's "
          "clusters get the commit no more at a time than this many not ready (\"10%\", "
          "\"50\"). Empty: each partition at once.");
ABSL_FLAG(int, status_calls, 0,
          "After the rounds, this many GetRollout calls of the partitioned bundle as "
          "`rollout status` asks (50 clusters a partition), then as many summaries (what "
          "`rollout status -w` asks once a second): the control plane's CPU per call of each.");
ABSL_FLAG(std::string, only, "",
          "Run one side only, \"at_once\" or \"partitioned\" (to profile it alone).");

namespace gitfleet {
namespace {

using testing::GitFixture;
using testing::ScopedTempDir;

int Main() {
  bench::RaiseFileLimit();
  const int agents = absl::GetFlag(FLAGS_agents);
  const int objects = absl::GetFlag(FLAGS_objects);
  const int partitions = absl::GetFlag(FLAGS_partitions);
  ScopedTempDir tmp("bench-rollout");
  const std::string root = tmp.path();
  GitFixture git(root + "/repo");
  for (int i = 0; i < objects; ++i)
    git.Write(absl::StrCat("apps/bench/cm-", i, ".yaml"), bench::BenchConfigMap(i, 0));
  git.Commit("initial");
  const bool pin = absl::GetFlag(FLAGS_pin_cpus);
  if (pin) {
    if (std::thread::hardware_concurrency() < 2) {
      fprintf(stderr, "--pin_cpus needs 2 CPUs or more\n");
      return 1;
    }
    if (absl::Status pinned = bench::PinToCpus(0, 0); !pinned.ok()) {  // the child inherits it
      fprintf(stderr, "%s\n", pinned.ToString().c_str());
      return 1;
    }
  }
  absl::StatusOr<bench::ControlPlane> started =
      bench::StartControlPlane(absl::GetFlag(FLAGS_bin_dir), root, 3600);
  if (!started.ok()) {
    fprintf(stderr, "%s\n", std::string(started.status().message()).c_str());
    return 1;
  }
  if (pin) {
    if (absl::Status pinned = bench::PinToCpus(1, 1 << 20); !pinned.ok()) {
      fprintf(stderr, "%s\n", pinned.ToString().c_str());
      return 1;
    }
    fprintf(stderr, "control plane on CPU 0, the bench on the others\n");
  }
  testing::Process& cp = *started->process;
  auto admin = v1::AdminService::NewStub(
      grpc::CreateChannel(started->target, grpc::InsecureChannelCredentials()));
  auto call = [&](auto method, const auto& request, auto* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    return ((*admin).*method)(&context, request, response);
  };
  absl::StatusOr<v1::BundleInfo> added = bench::AddBenchBundle(*admin, git.url(), "apps/bench");
  if (!added.ok()) return 1;
  v1::Bundle definition = added->bundle();

  bench::SwarmOptions options;
  options.target = started->target;
  options.agents = agents;
  options.record_ack_times = true;
  options.apply_time = absl::Milliseconds(absl::GetFlag(FLAGS_apply_ms));
  bench::Swarm swarm(options);
  swarm.Start();
  if (!swarm.WaitUntil([&] { return swarm.Holding("bench", added->revision()) == agents; },
                       absl::Seconds(120 + agents / 20))) {
    fprintf(stderr, "initial sync incomplete\n");
    return 1;
  }
  fprintf(stderr, "all %d agents hold the first revision\n", agents);
  absl::SleepFor(absl::Seconds(5));
  // What the control plane costs with every agent connected and nothing to do: a commit
  // measured over a longer time pays this for the extra time too.
  const double idle_before = bench::CpuSeconds(cp.pid());
  const absl::Time idle_start = absl::Now();
  absl::SleepFor(absl::Seconds(std::max(1, absl::GetFlag(FLAGS_idle_s))));
  const double idle_rate =
      (bench::CpuSeconds(cp.pid()) - idle_before) / absl::ToDoubleSeconds(absl::Now() - idle_start);

  auto set_partitioned = [&](bool partitioned) {
    v1::AddBundleRequest request;
    *request.mutable_bundle() = definition;
    request.mutable_bundle()->clear_generation();
    if (partitioned) {
      request.mutable_bundle()->mutable_rollout()->set_partition_size(
          absl::StrCat(100 / partitions, "%"));
      request.mutable_bundle()->mutable_rollout()->set_progress_deadline_seconds(600);
      if (!absl::GetFlag(FLAGS_paced).empty()) {
        request.mutable_bundle()->mutable_rollout()->set_paced(true);
        request.mutable_bundle()->mutable_rollout()->set_max_unavailable(
            absl::GetFlag(FLAGS_paced));
      }
    }
    request.set_replace(true);
    v1::BundleInfo info;
    return call(&v1::AdminService::Stub::AddBundle, request, &info).ok();
  };
  int version = 1;
  // Commits a change and waits until the control plane has read every agent's report on
  // it; returns the control plane's CPU seconds meanwhile and the revision.
  // Per thread name, each commit's CPU seconds, by side.
  std::map<std::string, std::vector<double>> threads_at_once, threads_partitioned;
  std::vector<double> at_once_seconds, partitioned_seconds;  // each commit's measured time
  // One FIFO for both sides, or two: the first for the commits at once, the second for
  // the partitioned ones (two perf sessions then profile the two sides of the same run).
  std::FILE* perf_control[2] = {nullptr, nullptr};
  if (!absl::GetFlag(FLAGS_perf_control).empty()) {
    std::vector<std::string> fifos = absl::StrSplit(absl::GetFlag(FLAGS_perf_control), ',');
    if (fifos.size() > 2) {
      fprintf(stderr, "--perf_control takes one FIFO or two\n");
      return 1;
    }
    for (size_t i = 0; i < fifos.size(); ++i) {
      perf_control[i] = std::fopen(fifos[i].c_str(), "w");
      if (perf_control[i] == nullptr) {
        fprintf(stderr, "cannot open %s\n", fifos[i].c_str());
        return 1;
      }
    }
    if (perf_control[1] == nullptr) perf_control[1] = perf_control[0];
  }
  auto profile = [&](bool partitioned, bool on) {
    std::FILE* fifo = perf_control[partitioned ? 1 : 0];
    if (fifo == nullptr) return;
    std::fputs(on ? "enable\n" : "disable\n", fifo);
    std::fflush(fifo);
  };
  auto commit = [&](bool partitioned, std::string* revision) -> double {
    git.Write("apps/bench/cm-0.yaml", bench::BenchConfigMap(0, version++));
    git.Commit(absl::StrCat("change ", version));
    const std::map<std::string, double> threads_before = bench::CpuSecondsByThread(cp.pid());
    profile(partitioned, true);
    const double before = bench::CpuSeconds(cp.pid());
    const absl::Time start = absl::Now();
    v1::SyncSourceRequest sync;
    sync.set_name("bench");
    v1::SourceInfo info;
    if (!call(&v1::AdminService::Stub::SyncSource, sync, &info).ok()) return -1;
    v1::ListBundlesResponse bundles;
    if (!call(&v1::AdminService::Stub::ListBundles, v1::ListBundlesRequest(), &bundles).ok()) {
      return -1;
    }
    *revision = bundles.bundles(0).revision();
    if (!swarm.WaitUntil([&] { return swarm.Holding("bench", *revision) == agents; },
                         absl::Seconds(300))) {
      fprintf(stderr, "only %d of %d agents got %s\n", swarm.Holding("bench", *revision), agents,
              revision->c_str());
      return -1;
    }
    // Holding counts an agent once it has the update; with --apply_ms its ACK leaves later.
    if (absl::Time last = swarm.LastAckOf("bench", *revision); last > absl::Now()) {
      absl::SleepFor(last - absl::Now());
    }
    // Every agent has sent its last ACK: the control plane reads it, (partitioned)
    // evaluates the gate once more within kRolloutEvaluationInterval (50 ms), and stores
    // the reports (the hub's flush runs every 250 ms). The CPU is read after a fixed
    // settle, long enough that this work is counted on both sides (a short one cut it off
    // unevenly: 300 ms gave ratios from 1.11 to 1.19 where 1 s gives 1.10, at an idle cost
    // of a few ms), and not at the end of polling: the partitioned side lasts longer and
    // would pay for more polls.
    absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_settle_ms)));
    double cpu = bench::CpuSeconds(cp.pid()) - before;
    profile(partitioned, false);
    absl::Time end = absl::Now();
    std::map<std::string, double> threads_after = bench::CpuSecondsByThread(cp.pid());
    auto finished = [&] {
      v1::ListBundlesResponse listed;
      if (!call(&v1::AdminService::Stub::ListBundles, v1::ListBundlesRequest(), &listed).ok()) {
        return false;
      }
      const v1::BundleInfo& b = listed.bundles(0);
      return b.revision() == *revision && b.has_rolled_out_time() &&
             (!partitioned || b.rollout() == "done");
    };
    if (!finished()) {
      // Not done after the settle: measured to the end instead (polls included), and said.
      fprintf(stderr, "%s: not done %d ms after the last ACK; measuring to the end\n",
              partitioned ? "partitioned" : "at once", absl::GetFlag(FLAGS_settle_ms));
      if (!swarm.WaitUntil(finished, absl::Seconds(60), absl::Milliseconds(200))) return -1;
      cpu = bench::CpuSeconds(cp.pid()) - before;
      end = absl::Now();
      threads_after = bench::CpuSecondsByThread(cp.pid());
    }
    (partitioned ? partitioned_seconds : at_once_seconds)
        .push_back(absl::ToDoubleSeconds(end - start));
    for (const auto& [name, seconds] : threads_after) {
      auto was = threads_before.find(name);
      (partitioned ? threads_partitioned : threads_at_once)[name].push_back(
          seconds - (was != threads_before.end() ? was->second : 0));
    }
    return cpu;
  };

  std::vector<double> at_once_cpu, partitioned_cpu, gaps;
  double max_gap = 0;
  const std::string only = absl::GetFlag(FLAGS_only);
  const int apply_ms = absl::GetFlag(FLAGS_apply_ms);
  const int at_once_apply_ms =
      absl::GetFlag(FLAGS_at_once_apply_ms) >= 0 ? absl::GetFlag(FLAGS_at_once_apply_ms) : apply_ms;
  if (!only.empty() && only != "at_once" && only != "partitioned") {
    fprintf(stderr, "--only must be at_once or partitioned, not \"%s\"\n", only.c_str());
    return 1;
  }
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    std::string revision;
    if (only != "partitioned") {
      if (!set_partitioned(false)) return 1;
      swarm.SetApplyTime(absl::Milliseconds(at_once_apply_ms));
      absl::SleepFor(absl::Seconds(2));
      double cpu = commit(false, &revision);
      if (cpu < 0) return 1;
      at_once_cpu.push_back(cpu);
      if (only == "at_once") {
        printf("round %d: at once %.2f CPU s\n", round, cpu);
        continue;
      }
    }
    if (!set_partitioned(true)) return 1;
    swarm.SetApplyTime(absl::Milliseconds(apply_ms));
    absl::SleepFor(absl::Seconds(2));
    double cpu = commit(true, &revision);
    if (cpu < 0) return 1;
    partitioned_cpu.push_back(cpu);
    // The partitions as the control plane cut them, and each agent's ACK time.
    v1::GetRolloutRequest request;
    request.set_bundle("bench");
    v1::RolloutStatus status;
    if (!call(&v1::AdminService::Stub::GetRollout, request, &status).ok()) return 1;
    std::map<std::string, absl::Time> acked = swarm.AckTimes("bench", revision);
    std::vector<double> round_gaps;
    for (int p = 0; p + 1 < status.partitions_size(); ++p) {
      absl::Time last = absl::InfinitePast(), first = absl::InfiniteFuture();
      for (const v1::RolloutCluster& c : status.partitions(p).clusters()) {
        last = std::max(last, acked[c.name()]);
      }
      for (const v1::RolloutCluster& c : status.partitions(p + 1).clusters()) {
        first = std::min(first, acked[c.name()]);
      }
      double gap = absl::ToDoubleSeconds(first - last);
      round_gaps.push_back(gap);
      gaps.push_back(gap);
      max_gap = std::max(max_gap, gap);
    }
    printf(
        "round %d: at once %.2f CPU s; %d partitions %.2f CPU s (%.2f per partition), "
        "gate median %.1f ms, max %.1f ms\n",
        round, at_once_cpu.empty() ? 0.0 : at_once_cpu.back(), status.partitions_size(),
        partitioned_cpu.back(), partitioned_cpu.back() / std::max(1, status.partitions_size()),
        1000 * bench::Median(round_gaps),
        round_gaps.empty() ? 0.0 : 1000 * *std::max_element(round_gaps.begin(), round_gaps.end()));
  }
  if (const int calls = absl::GetFlag(FLAGS_status_calls); calls > 0) {
    // What a watch's look costs the control plane, against the listing it asked before.
    auto cost = [&](bool summary) -> double {
      v1::GetRolloutRequest request;
      request.set_bundle("bench");
      request.set_clusters_per_partition(50);
      request.set_summary(summary);
      const double before = bench::CpuSeconds(cp.pid());
      for (int i = 0; i < calls; ++i) {
        v1::RolloutStatus status;
        if (!call(&v1::AdminService::Stub::GetRollout, request, &status).ok()) return -1;
      }
      return (bench::CpuSeconds(cp.pid()) - before) / calls;
    };
    const double full = cost(false);
    const double summary = cost(true);
    if (full < 0 || summary < 0) return 1;
    printf(
        "GetRollout at %d clusters, control-plane CPU per call: with 50 clusters a partition "
        "%.2f ms, summary %.3f ms\n",
        agents, 1000 * full, 1000 * summary);
  }
  // Where the CPU went: each thread name's median per commit, busiest first.
  auto breakdown = [](const std::map<std::string, std::vector<double>>& threads) {
    std::vector<std::pair<double, std::string>> sorted;
    for (const auto& [name, seconds] : threads) sorted.emplace_back(bench::Median(seconds), name);
    std::sort(sorted.rbegin(), sorted.rend());
    std::string out;
    for (const auto& [seconds, name] : sorted) {
      if (seconds >= 0.005) absl::StrAppend(&out, " ", name, "=", absl::SixDigits(seconds));
    }
    return out;
  };
  if (!threads_at_once.empty())
    printf("at once, CPU s by thread:%s\n", breakdown(threads_at_once).c_str());
  if (!threads_partitioned.empty()) {
    printf("partitioned, CPU s by thread:%s\n", breakdown(threads_partitioned).c_str());
  }
  printf(
      "idle (every agent connected, nothing to do): %.3f CPU s per s; measured time per "
      "commit: at once median %.2f s, partitioned median %.2f s\n",
      idle_rate, bench::Median(at_once_seconds), bench::Median(partitioned_seconds));
  // Each round's two sides ran back to back: the median of their ratios is steadier than
  // the ratio of medians when the machine's speed drifts.
  std::vector<double> round_ratios;
  for (size_t i = 0; i < std::min(at_once_cpu.size(), partitioned_cpu.size()); ++i) {
    if (at_once_cpu[i] > 0) round_ratios.push_back(partitioned_cpu[i] / at_once_cpu[i]);
  }
  if (!round_ratios.empty()) {
    printf("per round, partitioned / at once: median %.3f (min %.3f, max %.3f)\n",
           bench::Median(round_ratios), *std::min_element(round_ratios.begin(), round_ratios.end()),
           *std::max_element(round_ratios.begin(), round_ratios.end()));
  }
  const double at_once = bench::Median(at_once_cpu);
  const double partitioned = bench::Median(partitioned_cpu);
  if (at_once > 0 && partitioned > 0 && bench::Median(partitioned_seconds) > 30) {
    // What the fleet costs anyway over each side's time (keepalive pings): a rollout that
    // waits for slow agents lasts longer and pays more of it, for nothing it does. Only
    // an agent silent for 30 s is pinged (gRPC restarts the timer at each message read),
    // so a shorter rollout pays none of it, and a longer one less than this subtracts:
    // the agents of its first partitions keep reporting.
    const double at_once_net = at_once - idle_rate * bench::Median(at_once_seconds);
    const double partitioned_net = partitioned - idle_rate * bench::Median(partitioned_seconds);
    printf(
        "net of the idle cost over each side's time (too much is subtracted: agents that "
        "report are not pinged): at once "
        "%.2f s, partitioned %.2f s (ratio %.2f)\n",
        at_once_net, partitioned_net, at_once_net > 0 ? partitioned_net / at_once_net : 0.0);
  }
  printf(
      "control-plane CPU per commit: at once median %.2f s, in %d partitions median %.2f s "
      "(ratio %.2f); last Healthy of a partition to the next one's first ACK: median %.1f "
      "ms, max %.1f ms\n",
      at_once, partitions, partitioned, at_once > 0 ? partitioned / at_once : 0.0,
      1000 * bench::Median(gaps), 1000 * max_gap);
  printf(
      "{\"bench\": \"rollout\", \"agents\": %d, \"objects\": %d, \"partitions\": %d, "
      "\"paced\": \"%s\", \"rounds\": %d, \"apply_ms\": %d, \"at_once_apply_ms\": %d, "
      "\"at_once_cpu_seconds_median\": %.3f, "
      "\"round_ratio_median\": %.3f, "
      "\"partitioned_cpu_seconds_median\": %.3f, \"cpu_ratio\": %.3f, "
      "\"gate_seconds_median\": %.4f, \"gate_seconds_max\": %.4f}\n",
      agents, objects, partitions, absl::GetFlag(FLAGS_paced).c_str(), absl::GetFlag(FLAGS_rounds),
      apply_ms, at_once_apply_ms, at_once, round_ratios.empty() ? 0.0 : bench::Median(round_ratios),
      partitioned, at_once > 0 ? partitioned / at_once : 0.0, bench::Median(gaps), max_gap);
  return 0;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return gitfleet::Main();
}
