// The control plane's handling of what agents send: a hello, then acks, statuses,
// conditions, diff results and cluster facts, each checked as the agent service does and handed to
// the hub. The first byte picks an unauthenticated peer (only the hello is looked at) or an
// authenticated one (the whole conversation).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "controlplane/distribute/agent_service.h"
#include "controlplane/distribute/hub.h"
#include "controlplane/store/store.h"
#include "tests/fuzz/chunks.h"

namespace {

class NullConnection : public gitfleet::AgentConnection {
 public:
  void Notify(const std::string& bundle) override { notified.push_back(bundle); }
  void NotifyControl() override { ++control; }
  void Close(const absl::Status&) override {}
  int control = 0;
  std::vector<std::string> notified;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gitfleet;
  if (size < 1) return 0;
  const bool authenticated = data[0] & 1;
  std::vector<std::string> chunks = fuzz::Chunks(data + 1, size - 1);
  if (chunks.empty()) return 0;
  static metrics::Registry* registry = new metrics::Registry();
  static ControlPlaneMetrics* metrics = new ControlPlaneMetrics(*registry);
  MemoryStore store;
  Hub hub(&store, *metrics);
  hub.SetTrustAgentLabels(data[0] & 2);
  v1::AgentMessage first;
  if (!first.ParseFromString(chunks[0]) || !first.has_hello()) return 0;
  if (!ValidateHello(first.hello()).ok() || !authenticated) return 0;
  auto connection = std::make_shared<NullConnection>();
  uint64_t session = hub.Connect(first.hello(), "fuzz-peer", connection);
  (void)hub.WelcomeFor(session);
  for (size_t i = 1; i < chunks.size(); ++i) {
    v1::AgentMessage message;
    if (!message.ParseFromString(chunks[i])) break;
    if (!ValidateAgentMessage(message).ok()) break;  // the stream would end here
    if (message.has_ack()) {
      hub.OnAck(session, message.ack());
    } else if (message.has_status()) {
      hub.OnStatus(session, message.status());
    } else if (message.has_condition()) {
      hub.OnCondition(session, message.condition());
    } else if (message.has_diff()) {
      hub.OnDiff(session, message.diff());
    } else if (message.has_facts()) {
      hub.OnFacts(session, message.facts());
    } else {
      break;
    }
  }
  for (const std::string& bundle : connection->notified) (void)hub.NextMessage(session, bundle);
  for (const v1::ClusterInfo& info : hub.MatchingClusters(LabelSelector())) {
    (void)hub.ApiVersions(info.api_versions_digest());
  }
  for (int i = 0; i < connection->control; ++i) (void)hub.NextControlMessage(session);
  (void)hub.Clusters("");
  hub.Disconnect(session);
  hub.Flush();
  return 0;
}
