#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_AGENT_SERVICE_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_AGENT_SERVICE_H_

// The gRPC adapter for the agent protocol: one reactor per agent stream, translating
// between protobuf messages and the Hub. Knows nothing of bundles or revisions.
//
//   AgentServiceImpl service(&hub, registry.get(), metrics);
//   builder.RegisterService(&service);
//   ServerLoop loop(&builder);
//   auto server = builder.BuildAndStart();
//   service.Serve(&loop);

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/rate_limit.h"
#include "common/server_loop.h"
#include "common/sync.h"
#include "controlplane/distribute/cluster_registry.h"
#include "controlplane/distribute/hub.h"
#include "controlplane/metrics.h"
#include "proto/gitfleet/v1/agent.grpc.pb.h"

namespace gitfleet {

// What one agent may do, so that no agent can crowd out the others. Past a limit the
// stream ends with RESOURCE_EXHAUSTED naming it, and the agent reconnects with backoff.
struct AgentLimits {
  // Largest message an agent may send (hello, ack, status); updates go the other way.
  size_t max_message_bytes = 1 << 20;
  // Messages per second on one stream, and the burst allowed (a reconnect re-sends one
  // status per bundle).
  double messages_per_second = 200;
  double message_burst = 2000;
  // Connections per cluster: a burst, then one every `connect_interval`.
  double connect_burst = 10;
  absl::Duration connect_interval = absl::Seconds(1);
  // Handshakes (hello read, token checked, welcome computed) in progress at once. The
  // rest wait unread, first come first served, so a fleet reconnecting at once costs the
  // control plane a bounded amount of work at a time.
  int max_concurrent_handshakes = 256;
  // Connections waiting for a handshake; past it new ones are refused at once.
  size_t max_waiting_handshakes = 100000;
  // From a handshake starting to its hello arriving; then the stream is cancelled.
  absl::Duration hello_timeout = absl::Seconds(10);
  // Largest message before the agent is authenticated, that is, the hello.
  size_t max_hello_bytes = 512 << 10;
  // What the message and connect rates are measured by (the hello timeout is a gRPC
  // alarm on the server loop, on real time).
  Clock* clock = &RealClock();
};

class AgentStream;

// What the control plane accepts from an agent, checked before anything of it is kept:
// the hello (cluster name, labels, held bundles, all bounded), and every later message
// (bundle names are names, revisions bounded).
absl::Status ValidateHello(const v1::Hello& hello);
// What a hello or a ClusterFacts message says of the cluster: its version and served APIs,
// bounded (kMaxClusterApiVersions, kMaxApiVersionBytes) and printable.
absl::Status ValidateClusterFacts(const std::string& kubernetes_version,
                                  const google::protobuf::RepeatedPtrField<std::string>& apis);
absl::Status ValidateAgentMessage(const v1::AgentMessage& message);

// Connect is served raw (grpc::ByteBuffer) so that updates go out as the hub's
// pre-serialized bytes; the method stays registered, so reflection still lists it. Its
// streams run on a ServerLoop: one thread polls for all of them.
class AgentServiceImpl final
    : public v1::AgentService::WithRawMethod_Connect<v1::AgentService::Service> {
 public:
  AgentServiceImpl(Hub* hub, ClusterRegistry* registry, ControlPlaneMetrics& metrics,
                   AgentLimits limits = {})
      : hub_(hub), tokens_(registry), metrics_(metrics), limits_(limits) {}

  // Starts accepting agent streams on `loop`, after the server is built and started.
  void Serve(ServerLoop* loop);
  ServerLoop* loop() const { return loop_; }

  const AgentLimits& limits() const { return limits_; }
  // Whether `cluster` may open another stream now (its connect bucket has a token).
  bool AllowConnect(const std::string& cluster);
  // The control plane is stopping: streams closed from now on tell their agents to come
  // back spread over `window` (see kReconnectSpreadHeader).
  void SetStopping(absl::Duration window) {
    reconnect_spread_ms_ = absl::ToInt64Milliseconds(window);
  }
  int64_t reconnect_spread_ms() const { return reconnect_spread_ms_.load(); }

  // Handshake admission (used by the streams): Admit starts `stream`'s handshake now or
  // queues it; every admitted stream calls HandshakeDone once, which starts the next.
  void Admit(std::shared_ptr<AgentStream> stream);
  void HandshakeDone();

  // Whether a slow handshake may be logged now: at most one line every 10 s, so a
  // starved control plane does not log each of 10,000 agents. `*skipped` is how many
  // were not logged since the last line.
  bool MayLogSlowHandshake(int64_t* skipped);

 private:
  Hub* const hub_;
  ClusterRegistry* const tokens_;
  ControlPlaneMetrics& metrics_;
  const AgentLimits limits_;
  ServerLoop* loop_ = nullptr;  // set by Serve, before any stream
  std::atomic<int64_t> reconnect_spread_ms_{0};
  std::atomic<int64_t> next_slow_log_ms_{0};
  std::atomic<int64_t> slow_not_logged_{0};
  Mutex mu_;
  // Bounded: cleared when it holds more than kMaxTrackedClusters entries.
  std::map<std::string, TokenBucket> connects_ ABSL_GUARDED_BY(mu_);
  Mutex handshake_mu_;
  int handshakes_ ABSL_GUARDED_BY(handshake_mu_) = 0;
  std::deque<std::weak_ptr<AgentStream>> waiting_ ABSL_GUARDED_BY(handshake_mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_AGENT_SERVICE_H_
