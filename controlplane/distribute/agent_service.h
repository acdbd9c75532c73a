#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_AGENT_SERVICE_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_AGENT_SERVICE_H_

// The gRPC adapter for the agent protocol: one reactor per agent stream, translating
// between protobuf messages and the Hub. Knows nothing of bundles or revisions.
//
//   AgentServiceImpl service(&hub, tokens.get(), metrics);
//   builder.RegisterService(&service);

#include "controlplane/distribute/agent_tokens.h"
#include "controlplane/distribute/hub.h"
#include "controlplane/metrics.h"
#include "proto/gitfleet/v1/agent.grpc.pb.h"

namespace gitfleet {

// Connect is served raw (grpc::ByteBuffer) so that updates go out as the hub's
// pre-serialized bytes; the method stays registered, so reflection still lists it.
class AgentServiceImpl final
    : public v1::AgentService::WithRawCallbackMethod_Connect<v1::AgentService::Service> {
 public:
  AgentServiceImpl(Hub* hub, AgentTokens* tokens, ControlPlaneMetrics& metrics)
      : hub_(hub), tokens_(tokens), metrics_(metrics) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Connect(
      grpc::CallbackServerContext* context) override;

 private:
  Hub* const hub_;
  AgentTokens* const tokens_;
  ControlPlaneMetrics& metrics_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_AGENT_SERVICE_H_
