#ifndef GITFLEET_AGENT_AGENT_H_
#define GITFLEET_AGENT_AGENT_H_

// The agent's one worker: takes messages from the control plane, drives the reconciler,
// answers with acks and status changes, and re-checks its bundles on a timer so the
// last desired state stays applied while the control plane is away.
//
//   Agent agent(&reconciler, client_options, hello_identity, metrics, options);
//   agent.Run(&stop);  // returns after stop is notified
//
// Thread-safe: Run owns the reconciler; client callbacks only enqueue events.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "agent/apply/reconciler.h"
#include "agent/client/controlplane_client.h"
#include "agent/metrics.h"
#include "common/metrics/heartbeat.h"
#include "common/sync.h"

namespace gitfleet {

class Agent {
 public:
  struct Options {
    std::string cluster;
    std::map<std::string, std::string> labels;
    std::string version = "gitfleet-agent/0.1";
    // How often to retry failed bundles and check live objects for drift.
    absl::Duration resync_interval = absl::Seconds(30);
    // Called about once a second; what it returns is sent when it changes and after
    // each connect. Empty for targets with nothing to say about the whole cluster.
    std::function<std::vector<v1::ClusterCondition>()> conditions;
    // The cluster's Kubernetes version for each hello ("v1.30.2"); unset or "" for none.
    std::function<std::string()> kubernetes_version;
    // What its API server serves, for each hello (Hello.api_versions); unset or null for
    // none. A new list only when what it serves changed: the agent compares pointers.
    std::function<std::shared_ptr<const std::vector<std::string>>()> api_versions;
    // The fleet id of the control plane the agent trusts ("" before the first), and where
    // a new one is recorded (on the first welcome, and on an adoption).
    std::string fleet_id;
    std::function<absl::Status(const std::string&)> save_fleet_id;
    // Beaten each time round the loop, for /healthz (optional).
    Heartbeat* heartbeat = nullptr;
  };

  Agent(Reconciler* reconciler, ControlPlaneClient::Options client_options, Options options,
        AgentMetrics& metrics);

  // Serves until `stop` is notified. Call Interrupt() after notifying it, so a loop
  // waiting for work sees it at once (it looks at least once a second anyway).
  void Run(Notification* stop);
  void Interrupt();
  // Brings the loop's next pass forward (a change watch named a bundle). Any thread.
  void Wake();

 private:
  struct Connected {
    v1::Welcome welcome;
  };
  using Event = std::variant<v1::ControlMessage, Connected>;

  void Enqueue(Event event);
  void Handle(const Event& event);
  void SendStatus(const v1::StatusUpdate& status);
  // Sends conditions that changed (all of them with `all`).
  void SendConditions(bool all);
  v1::Hello BuildHello();
  // ApiVersionsDigest of `list` (sorted and without repeats first, if it is not).
  static std::string DigestOf(const std::vector<std::string>& list);
  // What a hello says of the cluster (ClusterFacts), as Options gives it.
  struct Facts {
    std::string kubernetes_version;
    std::shared_ptr<const std::vector<std::string>> api_versions;
    bool operator==(const Facts& other) const {
      return kubernetes_version == other.kubernetes_version && api_versions == other.api_versions;
    }
  };
  Facts CurrentFacts() const;
  // Sends what the hello said of the cluster again when it changed since (ClusterFacts).
  void SendFacts();
  void RefreshHeld();
  // Decides whether the welcoming control plane is trusted (see Reconciler).
  void TakeWelcome(const v1::Welcome& welcome);

  Reconciler* const reconciler_;
  const Options options_;
  AgentMetrics& metrics_;
  std::unique_ptr<ControlPlaneClient> client_;
  std::map<std::string, v1::ClusterCondition> conditions_;  // by type; Run's thread only
  // The current control plane reads a status inside an Ack (Run's thread only).
  bool ack_carries_status_ = false;

  Mutex mu_;
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  bool interrupted_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::HeldRevision> held_ ABSL_GUARDED_BY(mu_);
  std::string fleet_id_ ABSL_GUARDED_BY(mu_);  // the trusted fleet, for the hello
  // What the last hello said of the cluster; what the control plane was last told of it
  // (Run's thread only; cleared until a connect).
  Facts hello_facts_ ABSL_GUARDED_BY(mu_);
  std::optional<Facts> told_facts_;
  // The digest of the last hello's API list ("" for none), worked out once per list.
  std::string hello_digest_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const std::vector<std::string>> digested_ ABSL_GUARDED_BY(mu_);
  std::string digest_ ABSL_GUARDED_BY(mu_);
  // The fleet whose control plane said it holds the list of that digest (its hellos send
  // the digest alone), and the digest; empty when none did.
  std::pair<std::string, std::string> held_apis_ ABSL_GUARDED_BY(mu_);
  // The control plane asked for the list (Welcome.send_facts): sent at the next look.
  bool facts_wanted_ = false;  // Run's thread only
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_AGENT_H_
