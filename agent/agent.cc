#include "agent/agent.h"

#include <algorithm>

#include "common/agent_protocol.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/proto_time.h"

namespace gitfleet {

Agent::Agent(Reconciler* reconciler, ControlPlaneClient::Options client_options, Options options,
             AgentMetrics& metrics)
    : reconciler_(reconciler), options_(std::move(options)), metrics_(metrics) {
  {
    MutexLock lock(&mu_);
    fleet_id_ = options_.fleet_id;
  }
  RefreshHeld();
  ControlPlaneClient::Callbacks callbacks;
  callbacks.hello = [this] { return BuildHello(); };
  callbacks.on_message = [this](const v1::ControlMessage& message) { Enqueue(message); };
  callbacks.on_connected = [this](const v1::Welcome& welcome) {
    metrics_.connected.Set(1);
    GF_LOG(INFO) << "connected to the control plane as cluster " << options_.cluster;
    Enqueue(Connected{welcome});
  };
  callbacks.on_disconnected = [](const absl::Status&) {};
  client_ = std::make_unique<ControlPlaneClient>(std::move(client_options), std::move(callbacks),
                                                 metrics);
}

Agent::Facts Agent::CurrentFacts() const {
  Facts facts;
  if (options_.kubernetes_version) facts.kubernetes_version = options_.kubernetes_version();
  if (options_.api_versions) facts.api_versions = options_.api_versions();
  return facts;
}

v1::Hello Agent::BuildHello() {
  v1::Hello hello;
  hello.set_cluster(options_.cluster);
  hello.mutable_labels()->insert(options_.labels.begin(), options_.labels.end());
  hello.set_agent_version(options_.version);
  Facts facts = CurrentFacts();
  hello.set_kubernetes_version(facts.kubernetes_version);
  MutexLock lock(&mu_);
  hello.set_fleet_id(fleet_id_);
  hello_digest_.clear();
  if (facts.api_versions != nullptr && !facts.api_versions->empty()) {
    if (digested_ != facts.api_versions) {  // a new list: hashed once
      digest_ = DigestOf(*facts.api_versions);
      digested_ = facts.api_versions;
    }
    hello_digest_ = digest_;
    hello.set_api_versions_digest(hello_digest_);
    // A control plane of this fleet said it holds this list: the digest says it.
    const bool alone =
        !fleet_id_.empty() && held_apis_.first == fleet_id_ && held_apis_.second == hello_digest_;
    if (!alone) {
      hello.mutable_api_versions()->Assign(facts.api_versions->begin(), facts.api_versions->end());
    }
  }
  for (const v1::HeldRevision& held : held_) *hello.add_held() = held;
  hello_facts_ = std::move(facts);
  return hello;
}

std::string Agent::DigestOf(const std::vector<std::string>& list) {
  if (std::is_sorted(list.begin(), list.end()) &&
      std::adjacent_find(list.begin(), list.end()) == list.end()) {
    return ApiVersionsDigest(list);  // as discovery reads it: no copy
  }
  std::vector<std::string> sorted = list;
  SortApiVersions(&sorted);
  return ApiVersionsDigest(sorted);
}

void Agent::SendFacts() {
  if (!told_facts_.has_value()) return;  // not connected yet
  Facts now = CurrentFacts();
  // A string compare and a pointer compare, each second.
  if (now == *told_facts_ && !facts_wanted_) return;
  const bool asked = facts_wanted_;
  facts_wanted_ = false;
  v1::AgentMessage message;
  v1::ClusterFacts* facts = message.mutable_facts();
  facts->set_kubernetes_version(now.kubernetes_version);
  if (now.api_versions != nullptr) {
    facts->mutable_api_versions()->Assign(now.api_versions->begin(), now.api_versions->end());
  }
  GF_LOG(INFO) << (asked ? "the control plane asked what the cluster serves (Kubernetes "
                         : "the cluster changed since the control plane was told (Kubernetes ")
               << facts->kubernetes_version() << ", " << facts->api_versions_size()
               << " API versions); telling it";
  client_->Send(message);
  told_facts_ = std::move(now);
}

void Agent::RefreshHeld() {
  std::vector<v1::HeldRevision> held = reconciler_->Held();
  MutexLock lock(&mu_);
  held_ = std::move(held);
}

void Agent::Enqueue(Event event) {
  MutexLock lock(&mu_);
  events_.push_back(std::move(event));
}

void Agent::SendStatus(const v1::StatusUpdate& status) {
  v1::AgentMessage message;
  *message.mutable_status() = status;
  client_->Send(message);
}

void Agent::TakeWelcome(const v1::Welcome& welcome) {
  std::string trusted;
  {
    MutexLock lock(&mu_);
    trusted = fleet_id_;
  }
  const std::string& offered = welcome.fleet_id();
  bool trust = true;
  if (offered.empty()) {
    // A control plane from before fleet ids: nothing to compare.
  } else if (welcome.adopt() || trusted.empty()) {
    if (welcome.adopt()) {
      GF_LOG(WARNING) << "adopted by control plane of fleet " << offered
                      << (trusted.empty() || trusted == offered ? ""
                                                                : " (was fleet " + trusted + ")")
                      << ": it may now replace and remove what this cluster holds";
      reconciler_->Adopt();
    } else {
      GF_LOG(INFO) << "first served by fleet " << offered << "; remembering it";
    }
    if (options_.save_fleet_id) {
      if (absl::Status saved = options_.save_fleet_id(offered); !saved.ok()) {
        GF_LOG(ERROR) << "cannot record the fleet id: " << saved;
      }
    }
    MutexLock lock(&mu_);
    fleet_id_ = offered;
  } else if (offered != trusted) {
    trust = false;
    GF_LOG(WARNING) << "this cluster was served by fleet " << trusted
                    << ", and the control plane is fleet " << offered
                    << " (an empty or replaced data dir?): it may add bundles, but not replace "
                       "or remove any this cluster holds until: gitfleetctl cluster adopt "
                    << options_.cluster;
  }
  reconciler_->SetServingFleet(offered, trust);
}

void Agent::SendConditions(bool all) {
  std::vector<v1::ClusterCondition> current = reconciler_->Conditions();
  if (options_.conditions) {
    for (v1::ClusterCondition& condition : options_.conditions()) {
      current.push_back(std::move(condition));
    }
  }
  for (v1::ClusterCondition& condition : current) {
    v1::ClusterCondition& held = conditions_[condition.type()];
    bool same = held.ok() == condition.ok() && held.reason() == condition.reason() &&
                held.message() == condition.message() && !held.type().empty();
    if (!same) {
      if (held.type().empty() || held.ok() != condition.ok()) {
        *condition.mutable_since() = ToProtoTime(RealClock().Now());
      } else {
        *condition.mutable_since() = held.since();
      }
      if (!condition.ok()) {
        GF_LOG(WARNING) << "cluster condition " << condition.type() << ": " << condition.reason()
                        << ": " << condition.message();
      } else if (!held.type().empty()) {
        GF_LOG(INFO) << "cluster condition " << condition.type() << " is fine again";
      }
      held = condition;
    }
    if (!same || all) {
      v1::AgentMessage message;
      *message.mutable_condition() = held;
      client_->Send(message);
    }
  }
}

void Agent::Handle(const Event& event) {
  if (const auto* connected = std::get_if<Connected>(&event)) {
    // Events are handled in order, so every update of this stream comes after its welcome.
    ack_carries_status_ = connected->welcome.ack_carries_status();
    {
      MutexLock lock(&mu_);
      told_facts_ = hello_facts_;  // what this stream's hello said
      const v1::Welcome& welcome = connected->welcome;
      held_apis_ = {};
      if (welcome.api_versions_held() && !welcome.fleet_id().empty() && !hello_digest_.empty()) {
        held_apis_ = {welcome.fleet_id(), hello_digest_};
      }
      // It holds no list by that digest (a restored store): it gets the whole list.
      facts_wanted_ = welcome.send_facts();
    }
    TakeWelcome(connected->welcome);
    // The control plane may have missed changes while we were apart.
    for (const v1::StatusUpdate& status : reconciler_->AllStatuses()) SendStatus(status);
    SendConditions(/*all=*/true);
    return;
  }
  const v1::ControlMessage& message = std::get<v1::ControlMessage>(event);
  if (message.has_update()) {
    Reconciler::Outcome outcome = reconciler_->OnUpdate(message.update());
    v1::AgentMessage ack;
    *ack.mutable_ack() = std::move(outcome.ack);
    // The update was applied before the ack: its status can ride along.
    bool carried = outcome.status.has_value() && ack_carries_status_;
    if (carried) *ack.mutable_ack()->mutable_status() = *outcome.status;
    client_->Send(ack);
    if (outcome.status.has_value() && !carried) SendStatus(*outcome.status);
  } else if (message.has_removal()) {
    reconciler_->OnRemoval(message.removal());
  } else if (message.has_diff()) {
    v1::AgentMessage answer;
    *answer.mutable_diff() = reconciler_->Diff(message.diff());
    client_->Send(answer);
    return;
  }
  RefreshHeld();
}

void Agent::Run(Notification* stop) {
  client_->Start();
  // Finish anything a crash interrupted before taking new work.
  for (const v1::StatusUpdate& status : reconciler_->Resync(/*check_drift=*/true)) {
    SendStatus(status);
  }
  absl::Time next_drift_check = RealClock().Now() + options_.resync_interval;
  while (!stop->HasBeenNotified()) {
    std::deque<Event> events;
    {
      MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !events_.empty() || interrupted_ || woken_;
      };
      // Wake at least every second: failed bundles retry on their own backoff.
      mu_.AwaitWithTimeout(ready, absl::Seconds(1));
      events.swap(events_);
      woken_ = false;
    }
    if (stop->HasBeenNotified()) break;
    for (const Event& event : events) Handle(event);
    bool check_drift = RealClock().Now() >= next_drift_check;
    if (check_drift) next_drift_check = RealClock().Now() + options_.resync_interval;
    for (const v1::StatusUpdate& status : reconciler_->Resync(check_drift)) SendStatus(status);
    SendConditions(/*all=*/false);
    SendFacts();
    if (options_.heartbeat != nullptr) options_.heartbeat->Beat();
  }
  client_->Stop();
}

void Agent::Interrupt() {
  MutexLock lock(&mu_);
  interrupted_ = true;
}

void Agent::Wake() {
  MutexLock lock(&mu_);
  woken_ = true;
}

}  // namespace gitfleet
