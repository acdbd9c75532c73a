#ifndef GITFLEET_BENCH_SWARM_H_
#define GITFLEET_BENCH_SWARM_H_

// Many simulated agents in one process, each with its own gRPC channel (its own TCP
// connection), speaking the real agent protocol: hello with labels, ACK every revision
// (need_full when a delta's base is not what it holds), report status on change, and
// reconnect with backoff when the stream is cut. They hold revision ids, not objects.
//
//   SwarmOptions options;
//   options.target = "127.0.0.1:7070";
//   options.agents = 1000;
//   Swarm swarm(options);
//   swarm.Start();
//   swarm.WaitUntil([&] { return swarm.Holding("web", rev) == 1000; }, absl::Seconds(30));

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "common/sync.h"

namespace gitfleet::bench {

struct SwarmOptions {
  std::string target;
  int agents = 100;
  std::string name_prefix = "swarm-";
  std::string token;
  // Agent i gets env=envs[i % envs.size()] and shard=s<i % shards>.
  std::vector<std::string> envs = {"prod"};
  int shards = 10;
  // Reported by every agent besides env and shard.
  std::map<std::string, std::string> extra_labels;
  // Per agent: health flips per second (0: status only when a revision arrives).
  double status_churn_per_second = 0;
  // Agents [0, slow_agents) wait `slow_delay` before acknowledging anything.
  int slow_agents = 0;
  absl::Duration slow_delay = absl::Seconds(1);
  // Every agent takes a time in [0, apply_time) to apply an update before acknowledging
  // it, as a real agent waits for its cluster's API server; fixed per agent and revision
  // (a hash), so runs are repeatable. Zero: acknowledge at once. Slow agents add theirs.
  absl::Duration apply_time = absl::ZeroDuration();
  // Put the status into the ACK when the control plane's welcome offers it, as the real
  // agent does. False: a separate StatusUpdate after each ACK (an older agent).
  bool ack_carries_status = true;
  // Connections opened at once while starting (the rest wait their turn).
  int connect_batch = 500;
  // Keep when each agent acknowledged each revision (AckTimes).
  bool record_ack_times = false;
  // Each hello names this many served APIs (the same list for every agent), as the real
  // agent does; with `api_digest`, by digest alone once the control plane said it holds
  // the list (Welcome.api_versions_held), as the real agent does, else always in full.
  int api_versions = 0;
  bool api_digest = true;
};

class Swarm {
 public:
  explicit Swarm(SwarmOptions options);
  ~Swarm();  // closes every stream and stops reconnecting

  void Start();
  int connected() const;
  // Agents whose last acknowledged revision of `bundle` is `revision`.
  int Holding(const std::string& bundle, const std::string& revision) const;
  // When the last agent acknowledged `revision` of `bundle`, if all of `count` have.
  absl::Time LastAckOf(const std::string& bundle, const std::string& revision) const;
  // The same, by the commit the revision was rendered from: with per-cluster values each
  // agent's revision differs, the commit does not.
  int HoldingCommit(const std::string& bundle, const std::string& commit) const;
  absl::Time LastAckOfCommit(const std::string& bundle, const std::string& commit) const;
  // With record_ack_times: agent name -> when it acknowledged `revision` of `bundle`.
  std::map<std::string, absl::Time> AckTimes(const std::string& bundle,
                                             const std::string& revision) const;
  // Update bytes received by all agents so far (serialized size of each message).
  int64_t bytes_received() const;
  // Bytes of the hellos the agents sent.
  int64_t hello_bytes() const { return counters_.hello_bytes.load(); }
  int64_t messages_received() const;
  // Bundle updates (not welcomes, removals or diff requests) received so far.
  int64_t updates_received() const;
  int64_t reconnects() const;
  // Polls `done` every `interval` until it holds or `timeout` passes.
  bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout,
                 absl::Duration interval = absl::Milliseconds(10)) const;

  class Agent;  // one simulated agent (swarm.cc)
  const SwarmOptions& options() const { return options_; }
  // Replaces options().apply_time (which keeps the value the swarm started with) for
  // updates received from now on: a bench compares paces in one run.
  void SetApplyTime(absl::Duration apply_time) {
    apply_time_us_.store(absl::ToInt64Microseconds(apply_time));
  }

  // Kept per swarm (a process may run several, as tests do), by the streams.
  struct Counters {
    std::atomic<int64_t> bytes{0};
    std::atomic<int64_t> hello_bytes{0};
    std::atomic<int64_t> messages{0};
    std::atomic<int64_t> updates{0};
    std::atomic<int64_t> reconnects{0};
    std::atomic<int> connected{0};
    std::atomic<int> streams{0};  // calls not yet done
  };
  Counters& counters() { return counters_; }

 private:
  friend class Agent;
  void Schedule(absl::Time when, std::function<void()> fn);
  void RunScheduler();

  const SwarmOptions options_;
  std::atomic<int64_t> apply_time_us_;
  std::vector<std::string> apis_;  // the served APIs every hello names, sorted
  std::string apis_digest_;
  std::vector<std::shared_ptr<Agent>> agents_;
  mutable Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::multimap<absl::Time, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);
  // Kept as agents acknowledge, so that polling them costs nothing: agents holding each
  // (bundle, revision), and when the last of them acknowledged it.
  void Held(const std::string& bundle, const std::string& before, const std::string& after,
            absl::Time when, const std::string& agent);
  mutable Mutex holders_mu_;
  std::map<std::pair<std::string, std::string>, int> holders_ ABSL_GUARDED_BY(holders_mu_);
  std::map<std::pair<std::string, std::string>, absl::Time> last_ack_ ABSL_GUARDED_BY(holders_mu_);
  std::map<std::pair<std::string, std::string>, std::map<std::string, absl::Time>> ack_times_
      ABSL_GUARDED_BY(holders_mu_);
  Counters counters_;
  std::thread scheduler_;
};

}  // namespace gitfleet::bench

#endif  // GITFLEET_BENCH_SWARM_H_
