// Fan-out of one change to a fleet: a real control plane, N simulated agents (bench/swarm,
// one TCP connection each), a real Git repository with one bundle of M ConfigMaps that
// targets every agent.
//
//   bazel run -c opt //bench:fanout -- --agents=1000 --objects=1000
//
// For each commit it changes one object, tells the control plane to fetch, and waits until
// every agent acknowledged the new revision. It reports the time from the control plane
// seeing the commit (the bundle's seen time) to it reading the last ACK (the bundle's
// rolled-out time, on the same clock; the swarm's sending of it is reported too), the
// update bytes each agent
// received, the control plane's CPU seconds and peak RSS, and its RSS per connected agent.
// In the same run it measures how fast this machine moves the same bytes over loopback
// with one plain TCP socket (after each commit, paired with its fan-out), and the same
// traffic pattern (one connection per agent, a write to each and an answer from each) over
// plain sockets, and prints the ratio of the fan-out to each: `ratio` is the median of the
// per-commit ratios. Each limit is the best of several timings, half of them with both
// ends on one CPU: a short timing is only ever slowed by something else (a preempted vCPU,
// a neighbour, waking a halted vCPU across cores, which on this VM costs from nothing to
// 2x depending on the host), never sped up, so the best is what the machine can do. The
// control plane's CPU is then timed over an idle keepalive period (--idle_seconds). The
// last line is one JSON object.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/swarm.h"
#include "common/proto_time.h"
#include "grpcpp/grpcpp.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"
#include "tests/util/etcd_server.h"
#include "tests/util/git_fixture.h"
#include "tests/util/process.h"

ABSL_FLAG(int, agents, 1000, "Simulated agents.");
ABSL_FLAG(int, objects, 1000, "ConfigMaps in the bundle.");
ABSL_FLAG(int, commits, 5, "Commits measured.");
ABSL_FLAG(int, slow_agents, 0, "Agents that wait --slow_ms before acknowledging.");
ABSL_FLAG(int, slow_ms, 1000, "How long slow agents wait.");
ABSL_FLAG(bool, ack_carries_status, true,
          "Agents put their status into the ACK (as the real agent does with this control "
          "plane); false: a separate status message after each ACK, as older agents do.");
ABSL_FLAG(int, settle_seconds, 5, "Pause after the initial sync, before measuring.");
ABSL_FLAG(int, idle_seconds, 30,
          "After the commits, how long to measure the control plane's CPU with every agent "
          "connected and nothing changing (keepalive pings come every 30 s); 0 skips it.");
ABSL_FLAG(std::string, bin_dir, "", "Where the binaries are (default: runfiles).");
ABSL_FLAG(bool, etcd, false,
          "The control plane's store in an etcd this bench starts (--store=etcd), whose CPU "
          "is reported too.");
ABSL_FLAG(bool, removals, false,
          "Each commit removes one object (and puts back the one the commit before removed), "
          "rather than changing one: the hub looks for handovers to other bundles.");
ABSL_FLAG(int, other_bundles, 0,
          "Bundles of one ConfigMap each, from the same source, that target every agent as "
          "well: what a removal's handover check and its wait for the source's renders walk.");
ABSL_FLAG(bool, per_cluster, false,
          "Add a ConfigMap naming each cluster (${cluster.name}): every agent gets its own "
          "revision of each commit.");

namespace gitfleet {
namespace {

using testing::GitFixture;
using testing::Process;
using testing::ScopedTempDir;

using bench::Median;

// A socket listening on an ephemeral loopback port, whose address goes to `addr`; -1 if
// the machine will not give one.
int LoopbackListener(int backlog, sockaddr_in* addr) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(*addr);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(addr), sizeof(*addr)) != 0 ||
      listen(listener, backlog) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(addr), &len) != 0) {
    if (listener >= 0) close(listener);
    return -1;
  }
  return listener;
}

// An epoll descriptor watching every one of `fds` for input. Only system calls, so a
// forked child may call it.
int EpollForReading(const std::vector<int>& fds) {
  int ep = epoll_create1(0);
  for (int fd : fds) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  return ep;
}

// Writes all `size` bytes of `data` to `fd`, or stops at the first failed write.
void WriteAll(int fd, const char* data, int64_t size) {
  for (int64_t done = 0; done < size;) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) return;
    done += n;
  }
}

// Timings of each loopback limit; the best counts.
constexpr int kLimitTries = 6;

// Runs `seconds` with the calling thread, and so the threads and processes it starts, on
// the first CPU it may use, then lets it use all of them again.
double OnOneCpu(const std::function<double()>& seconds) {
  cpu_set_t all;
  if (sched_getaffinity(0, sizeof(all), &all) != 0) return seconds();
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &all)) {
      CPU_SET(cpu, &one);
      break;
    }
  }
  sched_setaffinity(0, sizeof(one), &one);
  double result = seconds();
  sched_setaffinity(0, sizeof(all), &all);
  return result;
}

// The least of `tries` results of `seconds` that are above zero (zero when none is), every
// other one taken on one CPU; the greatest goes to `*worst` if given.
double BestOf(int tries, const std::function<double()>& seconds, double* worst = nullptr) {
  double best = 0;
  for (int i = 0; i < tries; ++i) {
    double s = i % 2 == 0 ? seconds() : OnOneCpu(seconds);
    if (s <= 0) continue;
    best = best == 0 ? s : std::min(best, s);
    if (worst != nullptr) *worst = std::max(*worst, s);
  }
  return best;
}

// Seconds to move `messages` writes of `size` bytes through one loopback TCP connection.
double LoopbackSeconds(int64_t messages, int64_t size) {
  sockaddr_in addr;
  int listener = LoopbackListener(1, &addr);
  if (listener < 0) return 0;
  const int64_t total = messages * size;
  std::thread reader([&] {
    int fd = accept(listener, nullptr, nullptr);
    std::vector<char> buf(1 << 16);
    int64_t got = 0;
    while (got < total) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n <= 0) break;
      got += n;
    }
    close(fd);
  });
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 0;
  std::string payload(size, 'p');
  absl::Time start = absl::Now();
  for (int64_t m = 0; m < messages; ++m) WriteAll(fd, payload.data(), size);
  close(fd);
  reader.join();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  close(listener);
  return seconds;
}

// Seconds for the fan-out's traffic pattern over plain sockets: `connections` loopback TCP
// connections, one `size`-byte write to each, and a 16-byte answer back on each. The
// answering side is a child process: each side holds one descriptor per connection, as
// the control plane and the swarm do.
double PerConnectionLoopbackSeconds(int connections, int64_t size) {
  sockaddr_in addr;
  int listener = LoopbackListener(4096, &addr);
  if (listener < 0) return 0;
  int ready_pipe[2];
  if (pipe(ready_pipe) != 0) {
    close(listener);
    return 0;
  }
  pid_t child = fork();
  if (child == 0) {
    // Connects every socket, says so, then answers each write; exits when all are
    // answered or nothing arrives for 10 s. Only system calls here.
    close(listener);
    int one = 1;
    std::vector<int> fds;
    for (int i = 0; i < connections; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(1);
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      fds.push_back(fd);
    }
    int ep = EpollForReading(fds);
    char go = 'g';
    if (write(ready_pipe[1], &go, 1) != 1) _exit(1);
    std::vector<int64_t> got(*std::max_element(fds.begin(), fds.end()) + 1, 0);
    std::vector<char> buf(1 << 16);
    const char ack[16] = "ack";
    int answered = 0;
    std::vector<epoll_event> events(1024);
    while (answered < connections) {
      int ready = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 10000);
      if (ready <= 0) _exit(1);
      for (int e = 0; e < ready; ++e) {
        int fd = events[e].data.fd;
        ssize_t r = read(fd, buf.data(), buf.size());
        if (r > 0 && got[fd] < size && (got[fd] += r) >= size) {
          if (write(fd, ack, sizeof(ack)) == sizeof(ack)) ++answered;
        }
      }
    }
    _exit(0);
  }
  std::vector<int> fds;
  int one = 1;
  for (int i = 0; i < connections; ++i) {
    int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) break;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fds.push_back(fd);
  }
  char go;
  double seconds = 0;
  int acks = 0;
  if (static_cast<int>(fds.size()) == connections && read(ready_pipe[0], &go, 1) == 1) {
    int ep = EpollForReading(fds);
    std::string payload(size, 'p');
    absl::Time start = absl::Now();
    for (int fd : fds) WriteAll(fd, payload.data(), size);
    std::vector<epoll_event> events(1024);
    char buf[64];
    while (acks < connections) {
      int ready = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 10000);
      if (ready <= 0) break;  // bounded: nothing for 10 s ends the measurement
      for (int e = 0; e < ready; ++e) {
        if (read(events[e].data.fd, buf, sizeof(buf)) > 0) ++acks;
      }
    }
    seconds = absl::ToDoubleSeconds(absl::Now() - start);
    close(ep);
  }
  int status = 0;
  waitpid(child, &status, 0);
  for (int fd : fds) close(fd);
  close(listener);
  close(ready_pipe[0]);
  close(ready_pipe[1]);
  return acks >= connections ? seconds : 0;
}

int Main() {
  bench::RaiseFileLimit();  // the control plane inherits it
  const int agents = absl::GetFlag(FLAGS_agents);
  // The fan-out's traffic pattern over plain sockets, measured first: each side needs a
  // descriptor per agent, which the swarm's own connections would not leave room for.
  // 611 bytes is what a one-object delta weighs (see the results).
  const double pattern_limit =
      BestOf(kLimitTries, [&] { return PerConnectionLoopbackSeconds(agents, 611); });
  const int objects = absl::GetFlag(FLAGS_objects);
  const int commits = absl::GetFlag(FLAGS_commits);
  ScopedTempDir tmp("bench-fanout");
  const std::string root = tmp.path();
  GitFixture git(root + "/repo");
  for (int i = 0; i < objects; ++i)
    git.Write(absl::StrCat("apps/bench/cm-", i, ".yaml"), bench::BenchConfigMap(i, 0));
  const bool per_cluster = absl::GetFlag(FLAGS_per_cluster);
  if (per_cluster) {
    git.Write("apps/bench/who.yaml",
              "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: who\n  namespace: bench\n"
              "data:\n  cluster: \"${cluster.name}\"\n");
  }
  const int other_bundles = absl::GetFlag(FLAGS_other_bundles);
  for (int i = 0; i < other_bundles; ++i) {
    git.Write(absl::StrCat("apps/other-", i, "/cm.yaml"),
              absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other-", i,
                           "\n  namespace: bench\ndata:\n  v: \"1\"\n"));
  }
  std::string commit = git.Commit("initial");
  // Agents that hold the render of `commit`: one revision for all, or (per_cluster) one each.
  auto holding = [&](bench::Swarm& swarm, const std::string& revision) {
    return per_cluster ? swarm.HoldingCommit("bench", commit) : swarm.Holding("bench", revision);
  };

  std::unique_ptr<testing::Process> etcd;
  std::vector<std::string> store_flags;
  if (absl::GetFlag(FLAGS_etcd)) {
    absl::StatusOr<std::string> endpoint = testing::StartEtcd(root + "/etcd", &etcd);
    if (!endpoint.ok()) {
      fprintf(stderr, "%s\n", std::string(endpoint.status().message()).c_str());
      return 1;
    }
    store_flags = {"--store=etcd", "--etcd-endpoints=" + *endpoint};
  }
  absl::StatusOr<bench::ControlPlane> started = bench::StartControlPlane(
      absl::GetFlag(FLAGS_bin_dir), root, 3600, "127.0.0.1:0", store_flags);
  if (!started.ok()) {
    fprintf(stderr, "%s\n", std::string(started.status().message()).c_str());
    return 1;
  }
  testing::Process& cp = *started->process;
  const std::string& target = started->target;
  auto admin =
      v1::AdminService::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  auto call = [&](auto method, const auto& request, auto* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return ((*admin).*method)(&context, request, response);
  };
  absl::StatusOr<v1::BundleInfo> added =
      bench::AddBenchBundle(*admin, git.url(), "apps/bench", per_cluster);
  if (!added.ok()) {
    fprintf(stderr, "cannot add the bench bundle: %s\n",
            std::string(added.status().message()).c_str());
    return 1;
  }
  v1::BundleInfo bundle = *added;
  std::vector<std::pair<std::string, std::string>> others;  // (bundle, revision)
  for (int i = 0; i < other_bundles; ++i) {
    v1::AddBundleRequest add;
    add.mutable_bundle()->set_name(absl::StrCat("other-", i));
    add.mutable_bundle()->set_source("bench");
    add.mutable_bundle()->set_path(absl::StrCat("apps/other-", i));
    add.mutable_bundle()->mutable_sync()->set_prune(true);
    v1::BundleInfo info;
    grpc::Status status = call(&v1::AdminService::Stub::AddBundle, add, &info);
    if (!status.ok()) {
      fprintf(stderr, "cannot add bundle other-%d: %s\n", i, status.error_message().c_str());
      return 1;
    }
    others.emplace_back(info.bundle().name(), info.revision());
  }
  // The bench bundle's info in a listing, or null.
  auto bench_of = [](const v1::ListBundlesResponse& listed) -> const v1::BundleInfo* {
    for (const v1::BundleInfo& b : listed.bundles()) {
      if (b.bundle().name() == "bench") return &b;
    }
    return nullptr;
  };
  absl::SleepFor(absl::Seconds(1));
  const int64_t rss_idle = bench::ProcStatusBytes(cp.pid(), "VmRSS");

  bench::SwarmOptions options;
  options.target = target;
  options.agents = agents;
  options.slow_agents = absl::GetFlag(FLAGS_slow_agents);
  options.slow_delay = absl::Milliseconds(absl::GetFlag(FLAGS_slow_ms));
  options.ack_carries_status = absl::GetFlag(FLAGS_ack_carries_status);
  bench::Swarm swarm(options);
  absl::Time start = absl::Now();
  swarm.Start();
  auto all_held = [&] {
    if (holding(swarm, bundle.revision()) != agents) return false;
    for (const auto& [name, revision] : others) {
      if (swarm.Holding(name, revision) != agents) return false;
    }
    return true;
  };
  if (!swarm.WaitUntil(all_held, absl::Seconds(120 + agents / 20 * (1 + other_bundles)))) {
    fprintf(stderr, "initial sync incomplete: %d of %d agents hold the revision, %d connected\n",
            holding(swarm, bundle.revision()), agents, swarm.connected());
    return 1;
  }
  double initial_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  printf("connected %d agents and sent each the full bundle in %.2fs\n", agents, initial_seconds);
  absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_settle_seconds)));  // let status writes settle
  const int64_t rss_connected = bench::ProcStatusBytes(cp.pid(), "VmRSS");
  const double cpu_before = bench::CpuSeconds(cp.pid());
  const double etcd_cpu_before = etcd != nullptr ? bench::CpuSeconds(etcd->pid()) : 0;
  const double swarm_cpu_before = bench::CpuSeconds(getpid());

  std::vector<double> fanout, swarm_fanout, sync_to_ack, bytes_per_agent, limits, ratios;
  double limit_cpu = 0;  // the swarm process's CPU spent timing the limits, not the swarm's
  int64_t object_bytes = 0;
  const bool removals = absl::GetFlag(FLAGS_removals);
  for (int c = 0; c < commits; ++c) {
    int object = c % objects;
    std::string changed = bench::BenchConfigMap(object, c + 1);
    if (removals) {
      git.Remove(absl::StrCat("apps/bench/cm-", object, ".yaml"));
      if (c > 0) {  // the one the commit before removed comes back
        const int back = (c - 1) % objects;
        git.Write(absl::StrCat("apps/bench/cm-", back, ".yaml"), bench::BenchConfigMap(back, 0));
      }
    } else {
      git.Write(absl::StrCat("apps/bench/cm-", object, ".yaml"), changed);
    }
    commit = git.Commit(absl::StrCat("change ", c));
    int64_t bytes_before = swarm.bytes_received();
    absl::Time sync_start = absl::Now();
    v1::SyncSourceRequest sync;
    sync.set_name("bench");
    v1::SourceInfo source_info;
    if (!call(&v1::AdminService::Stub::SyncSource, sync, &source_info).ok()) return 1;
    v1::ListBundlesResponse bundles;
    if (!call(&v1::AdminService::Stub::ListBundles, v1::ListBundlesRequest(), &bundles).ok() ||
        bench_of(bundles) == nullptr) {
      return 1;
    }
    std::string revision = bench_of(bundles)->revision();
    object_bytes = static_cast<int64_t>(changed.size());
    if (!swarm.WaitUntil([&] { return holding(swarm, revision) == agents; }, absl::Seconds(120))) {
      fprintf(stderr, "commit %d: only %d of %d agents acknowledged\n", c, holding(swarm, revision),
              agents);
      return 1;
    }
    const absl::Time swarm_last_ack =
        per_cluster ? swarm.LastAckOfCommit("bench", commit) : swarm.LastAckOf("bench", revision);
    // The control plane's own account, by the clock that stamped the seen time: when it
    // read the last ACK (the swarm sent it a little earlier, and the control plane may
    // still be reading the last ones).
    // The time is the control plane's, so asking seldom loses nothing, and each listing
    // counts the fleet under the lock the last ACKs need.
    v1::BundleInfo rollout;
    auto rolled_out = [&] {
      v1::ListBundlesResponse listed;
      if (!call(&v1::AdminService::Stub::ListBundles, v1::ListBundlesRequest(), &listed).ok() ||
          bench_of(listed) == nullptr) {
        return false;
      }
      rollout = *bench_of(listed);
      return (per_cluster ? rollout.commit() == commit : rollout.revision() == revision) &&
             rollout.has_rolled_out_time();
    };
    if (!swarm.WaitUntil(rolled_out, absl::Seconds(60), absl::Milliseconds(100))) {
      fprintf(stderr, "commit %d: the control plane counts %d of %d clusters current\n", c,
              rollout.current_clusters(), rollout.target_clusters());
      return 1;
    }
    const absl::Time last_ack = FromProtoTime(rollout.rolled_out_time());
    v1::GetStatusRequest status_request;
    status_request.set_cluster("swarm-0");
    status_request.set_bundle("bench");
    v1::GetStatusResponse status;
    if (!call(&v1::AdminService::Stub::GetStatus, status_request, &status).ok() ||
        status.statuses_size() != 1) {
      return 1;
    }
    absl::Time seen = FromProtoTime(status.statuses(0).seen_time());
    fanout.push_back(absl::ToDoubleSeconds(last_ack - seen));
    swarm_fanout.push_back(absl::ToDoubleSeconds(swarm_last_ack - seen));
    sync_to_ack.push_back(absl::ToDoubleSeconds(last_ack - sync_start));
    bytes_per_agent.push_back(static_cast<double>(swarm.bytes_received() - bytes_before) / agents);
    // The same bytes through one plain socket, right after this fan-out (after the status
    // writes it caused have landed), so that each fan-out is compared with a limit measured
    // within a second of it.
    absl::SleepFor(absl::Milliseconds(500));
    const double limit_cpu_before = bench::CpuSeconds(getpid());
    double worst = 0;
    limits.push_back(BestOf(
        kLimitTries,
        [&] { return LoopbackSeconds(agents, std::max<int64_t>(1, bytes_per_agent.back())); },
        &worst));
    limit_cpu += bench::CpuSeconds(getpid()) - limit_cpu_before;
    ratios.push_back(limits.back() > 0 ? fanout.back() / limits.back() : 0.0);
    printf(
        "commit %d: fan-out %.3fs (last ACK sent at %.3fs; sync call to last ACK %.3fs), %.0f "
        "bytes per agent, one socket %.4fs (worst of %d %.4fs; ratio %.1f), control plane RSS "
        "%.1f MiB, CPU seconds so far: control plane %.2f, swarm %.2f\n",
        c, fanout.back(), swarm_fanout.back(), sync_to_ack.back(), bytes_per_agent.back(),
        limits.back(), kLimitTries, worst, ratios.back(),
        bench::ProcStatusBytes(cp.pid(), "VmRSS") / 1048576.0,
        bench::CpuSeconds(cp.pid()) - cpu_before,
        bench::CpuSeconds(getpid()) - swarm_cpu_before - limit_cpu);
  }
  const double cpu_seconds = bench::CpuSeconds(cp.pid()) - cpu_before;
  if (etcd != nullptr) {
    printf("etcd: %.2f CPU seconds for %d commits\n",
           bench::CpuSeconds(etcd->pid()) - etcd_cpu_before, commits);
  }
  // What holding the fleet costs while nothing changes: keepalives, timers, housekeeping.
  const int idle_seconds = absl::GetFlag(FLAGS_idle_seconds);
  double idle_cpu_fraction = 0;
  if (idle_seconds > 0) {
    absl::SleepFor(absl::Seconds(1));  // the last commit's status writes
    const double idle_before = bench::CpuSeconds(cp.pid());
    absl::SleepFor(absl::Seconds(idle_seconds));
    idle_cpu_fraction = (bench::CpuSeconds(cp.pid()) - idle_before) / idle_seconds;
    printf("idle: the control plane used %.1f%% of one core over %d s with %d agents connected\n",
           100 * idle_cpu_fraction, idle_seconds, swarm.connected());
  }
  const int64_t peak_rss = bench::ProcStatusBytes(cp.pid(), "VmHWM");
  const double per_agent_bytes = Median(bytes_per_agent);
  double loopback = Median(limits);
  double fanout_median = Median(fanout);
  double fanout_max = *std::max_element(fanout.begin(), fanout.end());
  printf(
      "fan-out median %.3fs max %.3fs; one socket moving the same bytes: median %.4fs, median "
      "ratio %.1f\n",
      fanout_median, fanout_max, loopback, Median(ratios));
  printf(
      "same pattern over plain sockets (%d connections, a write and an answer each): %.4fs, "
      "ratio %.1f\n",
      agents, pattern_limit, pattern_limit > 0 ? fanout_median / pattern_limit : 0.0);
  printf("control plane: %.2f CPU seconds for %d commits, peak RSS %.1f MiB, %.1f KiB per agent\n",
         cpu_seconds, commits, peak_rss / 1048576.0, (rss_connected - rss_idle) / 1024.0 / agents);
  printf(
      "{\"bench\": \"fanout\", \"agents\": %d, \"objects\": %d, \"commits\": %d, "
      "\"fanout_seconds_median\": %.4f, \"fanout_seconds_max\": %.4f, "
      "\"last_ack_sent_seconds_median\": %.4f, \"sync_to_last_ack_seconds_median\": %.4f, "
      "\"bytes_per_agent\": %.0f, "
      "\"object_bytes\": %lld, \"initial_sync_seconds\": %.2f, \"cp_cpu_seconds\": %.2f, "
      "\"cp_peak_rss_bytes\": %lld, \"cp_rss_per_agent_bytes\": %lld, "
      "\"loopback_limit_seconds\": %.5f, \"ratio\": %.1f, "
      "\"per_connection_limit_seconds\": %.5f, \"per_connection_ratio\": %.1f, "
      "\"cp_idle_cpu_fraction\": %.4f, \"reconnects\": %lld, \"ack_carries_status\": %s, "
      "\"per_cluster\": %s, \"removals\": %s, \"other_bundles\": %d}\n",
      agents, objects, commits, fanout_median, fanout_max, Median(swarm_fanout),
      Median(sync_to_ack), per_agent_bytes, static_cast<long long>(object_bytes), initial_seconds,
      cpu_seconds, static_cast<long long>(peak_rss),
      static_cast<long long>((rss_connected - rss_idle) / std::max(1, agents)), loopback,
      Median(ratios), pattern_limit, pattern_limit > 0 ? fanout_median / pattern_limit : 0.0,
      idle_cpu_fraction, static_cast<long long>(swarm.reconnects()),
      options.ack_carries_status ? "true" : "false", per_cluster ? "true" : "false",
      removals ? "true" : "false", other_bundles);
  return 0;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as the daemons do
  absl::ParseCommandLine(argc, argv);
  return gitfleet::Main();
}
