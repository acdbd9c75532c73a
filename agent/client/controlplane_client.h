#ifndef GITFLEET_AGENT_CLIENT_CONTROLPLANE_CLIENT_H_
#define GITFLEET_AGENT_CLIENT_CONTROLPLANE_CLIENT_H_

// Holds the agent's one stream to the control plane. The agent always dials out; when
// the stream ends it redials with exponential backoff and jitter, sending a fresh hello
// (with the revisions held at that moment) each time.
//
//   ControlPlaneClient client(options, callbacks, metrics);
//   client.Start();
//   client.Send(ack_message);
//
// Thread-safe. Callbacks run on gRPC or dialer threads and must not block.

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/metrics.h"
#include "common/sync.h"
#include "grpcpp/grpcpp.h"
#include "proto/gitfleet/v1/agent.grpc.pb.h"

namespace gitfleet {

class ControlPlaneClient {
 public:
  struct Options {
    std::string target;  // host:port
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    // Called before each dial after the first: credentials to dial with from then on, on a
    // new channel (renewed TLS files), or null to keep the channel. Empty: never renewed.
    std::function<std::shared_ptr<grpc::ChannelCredentials>()> renewed_credentials;
    // Called before each dial, so a rotated token file is picked up without a restart.
    // Empty: no token.
    std::function<std::string()> token;
    // Where the token comes from, for the message when it is refused ("--token-file=F").
    std::string token_origin = "--token";
    int max_message_bytes = 64 << 20;
    // gRPC's bandwidth-delay-product probe: a ping after received data, to widen the
    // flow-control window. It speeds a multi-megabyte first sync over a long link, and
    // costs both ends a ping round trip per update, which at fleet scale is most of the
    // work of a small change. Off unless asked for.
    bool bdp_probe = false;
    absl::Duration min_backoff = absl::Milliseconds(250);
    absl::Duration max_backoff = absl::Seconds(30);
    // A stream the control plane took but did not welcome within this is given up and
    // dialled again (a control plane stalled on this agent's hello must not hold it for ever).
    absl::Duration welcome_timeout = absl::Seconds(60);
  };
  struct Callbacks {
    std::function<v1::Hello()> hello;
    std::function<void(const v1::ControlMessage&)> on_message;
    // The control plane welcomed us; called before any message of the stream.
    std::function<void(const v1::Welcome&)> on_connected;
    std::function<void(const absl::Status&)> on_disconnected;
  };

  ControlPlaneClient(Options options, Callbacks callbacks, AgentMetrics& metrics);
  ~ControlPlaneClient();  // stops

  void Start();
  void Stop();
  // Queues `message` on the current stream. False (and dropped) when there is no
  // stream: the next hello carries everything the control plane needs.
  bool Send(const v1::AgentMessage& message);

 private:
  class Stream;
  void DialLoop();

  const Options options_;
  const Callbacks callbacks_;
  AgentMetrics& metrics_;
  grpc::ChannelArguments channel_args_;
  // Only the dial loop's thread uses them once it runs (made anew with renewed credentials).
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> stub_;

  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Stream> current_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_CLIENT_CONTROLPLANE_CLIENT_H_
