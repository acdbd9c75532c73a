#include "agent/kube/health.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace gitfleet {
namespace {

using nlohmann::json;

const json& Field(const json& object, std::initializer_list<const char*> path) {
  static const json kNull;
  const json* node = &object;
  for (const char* part : path) {
    if (!node->is_object()) return kNull;
    auto it = node->find(part);
    if (it == node->end()) return kNull;
    node = &*it;
  }
  return *node;
}

int64_t Int(const json& object, std::initializer_list<const char*> path, int64_t fallback = 0) {
  const json& value = Field(object, path);
  return value.is_number() ? value.get<int64_t>() : fallback;
}

std::string Str(const json& object, std::initializer_list<const char*> path) {
  const json& value = Field(object, path);
  return value.is_string() ? value.get<std::string>() : "";
}

// The status.conditions entry of `type`, or null.
const json* Condition(const json& object, const char* type) {
  const json& conditions = Field(object, {"status", "conditions"});
  if (!conditions.is_array()) return nullptr;
  for (const json& c : conditions) {
    if (c.is_object() && c.value("type", "") == type) return &c;
  }
  return nullptr;
}

std::string ConditionText(const json& c) {
  std::string reason = c.value("reason", "");
  std::string message = c.value("message", "");
  if (reason.empty()) return message;
  if (message.empty()) return reason;
  return absl::StrCat(reason, ": ", message);
}

v1::ResourceHealth Make(v1::HealthState state, std::string message = "") {
  v1::ResourceHealth health;
  health.set_health(state);
  health.set_message(std::move(message));
  return health;
}

// A controller has not yet seen the latest spec.
bool NotObserved(const json& live) {
  const json& observed = Field(live, {"status", "observedGeneration"});
  return observed.is_number() && observed.get<int64_t>() < Int(live, {"metadata", "generation"});
}

v1::ResourceHealth Deployment(const json& live) {
  if (NotObserved(live))
    return Make(v1::HEALTH_STATE_PROGRESSING, "waiting for the rollout to be observed");
  if (Field(live, {"spec", "paused"}) == true)
    return Make(v1::HEALTH_STATE_HEALTHY, "rollout paused");
  if (const json* progressing = Condition(live, "Progressing");
      progressing != nullptr && progressing->value("reason", "") == "ProgressDeadlineExceeded") {
    return Make(v1::HEALTH_STATE_DEGRADED, ConditionText(*progressing));
  }
  int64_t want = Int(live, {"spec", "replicas"}, 1);
  int64_t updated = Int(live, {"status", "updatedReplicas"});
  int64_t total = Int(live, {"status", "replicas"});
  int64_t available = Int(live, {"status", "availableReplicas"});
  if (updated < want) {
    return Make(v1::HEALTH_STATE_PROGRESSING,
                absl::StrCat(updated, " of ", want, " updated replicas"));
  }
  if (total > updated) {
    return Make(v1::HEALTH_STATE_PROGRESSING,
                absl::StrCat(total - updated, " old replicas are pending termination"));
  }
  if (available < updated) {
    return Make(v1::HEALTH_STATE_PROGRESSING,
                absl::StrCat(available, " of ", updated, " updated replicas are available"));
  }
  return Make(v1::HEALTH_STATE_HEALTHY);
}

v1::ResourceHealth StatefulSet(const json& live) {
  if (NotObserved(live))
    return Make(v1::HEALTH_STATE_PROGRESSING, "waiting for the rollout to be observed");
  if (Str(live, {"spec", "updateStrategy", "type"}) == "OnDelete") {
    return Make(v1::HEALTH_STATE_HEALTHY, "updateStrategy OnDelete: pods update when deleted");
  }
  int64_t want = Int(live, {"spec", "replicas"}, 1);
  int64_t ready = Int(live, {"status", "readyReplicas"});
  if (ready < want) {
    return Make(v1::HEALTH_STATE_PROGRESSING, absl::StrCat(ready, " of ", want, " pods ready"));
  }
  const json& partition = Field(live, {"spec", "updateStrategy", "rollingUpdate", "partition"});
  if (partition.is_number() && partition.get<int64_t>() > 0) {
    int64_t target = want - partition.get<int64_t>();
    int64_t updated = Int(live, {"status", "updatedReplicas"});
    if (updated < target) {
      return Make(v1::HEALTH_STATE_PROGRESSING,
                  absl::StrCat(updated, " of ", target, " pods updated (partitioned rollout)"));
    }
    return Make(v1::HEALTH_STATE_HEALTHY,
                absl::StrCat("partitioned rollout: ", updated, " updated"));
  }
  std::string current = Str(live, {"status", "currentRevision"});
  std::string update = Str(live, {"status", "updateRevision"});
  if (current != update) {
    return Make(v1::HEALTH_STATE_PROGRESSING,
                absl::StrCat("waiting for pods to update to revision ", update));
  }
  return Make(v1::HEALTH_STATE_HEALTHY);
}

v1::ResourceHealth DaemonSet(const json& live) {
  if (NotObserved(live))
    return Make(v1::HEALTH_STATE_PROGRESSING, "waiting for the rollout to be observed");
  if (Str(live, {"spec", "updateStrategy", "type"}) == "OnDelete") {
    return Make(v1::HEALTH_STATE_HEALTHY, "updateStrategy OnDelete: pods update when deleted");
  }
  int64_t desired = Int(live, {"status", "desiredNumberScheduled"});
  int64_t updated = Int(live, {"status", "updatedNumberScheduled"});
  int64_t available = Int(live, {"status", "numberAvailable"});
  if (updated < desired) {
    return Make(v1::HEALTH_STATE_PROGRESSING,
                absl::StrCat(updated, " of ", desired, " updated pods scheduled"));
  }
  if (available < desired) {
    return Make(v1::HEALTH_STATE_PROGRESSING,
                absl::StrCat(available, " of ", desired, " updated pods available"));
  }
  return Make(v1::HEALTH_STATE_HEALTHY);
}

v1::ResourceHealth ReplicaSet(const json& live) {
  if (NotObserved(live))
    return Make(v1::HEALTH_STATE_PROGRESSING, "waiting for the rollout to be observed");
  if (const json* failure = Condition(live, "ReplicaFailure");
      failure != nullptr && failure->value("status", "") == "True") {
    return Make(v1::HEALTH_STATE_DEGRADED, ConditionText(*failure));
  }
  int64_t want = Int(live, {"spec", "replicas"}, 1);
  int64_t available = Int(live, {"status", "availableReplicas"});
  if (available < want) {
    return Make(v1::HEALTH_STATE_PROGRESSING,
                absl::StrCat(available, " of ", want, " replicas available"));
  }
  return Make(v1::HEALTH_STATE_HEALTHY);
}

v1::ResourceHealth Pod(const json& live) {
  std::string phase = Str(live, {"status", "phase"});
  if (phase == "Succeeded") return Make(v1::HEALTH_STATE_HEALTHY, "completed");
  if (phase == "Failed") {
    return Make(v1::HEALTH_STATE_DEGRADED, absl::StrCat("failed: ", Str(live, {"status", "reason"}),
                                                        " ", Str(live, {"status", "message"})));
  }
  for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
    const json& statuses = Field(live, {"status", list});
    if (!statuses.is_array()) continue;
    for (const json& c : statuses) {
      std::string reason = Str(c, {"state", "waiting", "reason"});
      if (reason == "CrashLoopBackOff" || reason == "ImagePullBackOff" ||
          reason == "ErrImagePull" || reason == "CreateContainerConfigError" ||
          reason == "InvalidImageName") {
        return Make(v1::HEALTH_STATE_DEGRADED,
                    absl::StrCat("container ", c.value("name", "?"), ": ", reason, " ",
                                 Str(c, {"state", "waiting", "message"})));
      }
    }
  }
  if (phase == "Running") {
    const json* ready = Condition(live, "Ready");
    if (ready != nullptr && ready->value("status", "") == "True")
      return Make(v1::HEALTH_STATE_HEALTHY);
    return Make(v1::HEALTH_STATE_PROGRESSING, "running, not ready");
  }
  if (phase == "Pending" || phase.empty()) return Make(v1::HEALTH_STATE_PROGRESSING, "pending");
  return Make(v1::HEALTH_STATE_UNKNOWN, absl::StrCat("phase ", phase));
}

v1::ResourceHealth Job(const json& live) {
  for (const char* type : {"Failed", "Complete"}) {
    const json* c = Condition(live, type);
    if (c == nullptr || c->value("status", "") != "True") continue;
    if (std::string(type) == "Complete") return Make(v1::HEALTH_STATE_HEALTHY, "complete");
    return Make(v1::HEALTH_STATE_DEGRADED, ConditionText(*c));
  }
  if (Field(live, {"spec", "suspend"}) == true) return Make(v1::HEALTH_STATE_HEALTHY, "suspended");
  return Make(v1::HEALTH_STATE_PROGRESSING,
              absl::StrCat(Int(live, {"status", "active"}), " active, ",
                           Int(live, {"status", "succeeded"}), " succeeded"));
}

v1::ResourceHealth LoadBalanced(const json& live, const char* what) {
  const json& ingress = Field(live, {"status", "loadBalancer", "ingress"});
  if (ingress.is_array() && !ingress.empty()) return Make(v1::HEALTH_STATE_HEALTHY);
  return Make(v1::HEALTH_STATE_PROGRESSING, absl::StrCat("waiting for ", what));
}

v1::ResourceHealth Claim(const json& live) {
  std::string phase = Str(live, {"status", "phase"});
  if (phase == "Bound") return Make(v1::HEALTH_STATE_HEALTHY);
  if (phase == "Lost") return Make(v1::HEALTH_STATE_DEGRADED, "the bound volume is lost");
  return Make(v1::HEALTH_STATE_PROGRESSING,
              absl::StrCat("phase ", phase.empty() ? "Pending" : phase));
}

v1::ResourceHealth ByCondition(const json& live, const char* type, bool false_is_degraded) {
  const json* c = Condition(live, type);
  if (c == nullptr) return Make(v1::HEALTH_STATE_PROGRESSING, absl::StrCat("waiting for ", type));
  std::string status = c->value("status", "");
  if (status == "True") return Make(v1::HEALTH_STATE_HEALTHY);
  if (status == "False" && false_is_degraded)
    return Make(v1::HEALTH_STATE_DEGRADED, ConditionText(*c));
  return Make(v1::HEALTH_STATE_PROGRESSING,
              absl::StrCat(type, " is ", status, ": ", ConditionText(*c)));
}

v1::ResourceHealth Crd(const json& live) {
  if (const json* names = Condition(live, "NamesAccepted");
      names != nullptr && names->value("status", "") == "False") {
    return Make(v1::HEALTH_STATE_DEGRADED, ConditionText(*names));
  }
  return ByCondition(live, "Established", false);
}

v1::ResourceHealth Generic(const json& live) {
  if (const json* stalled = Condition(live, "Stalled");
      stalled != nullptr && stalled->value("status", "") == "True") {
    return Make(v1::HEALTH_STATE_DEGRADED, ConditionText(*stalled));
  }
  for (const char* type : {"Ready", "Available"}) {
    const json* c = Condition(live, type);
    if (c == nullptr) continue;
    if (NotObserved(live))
      return Make(v1::HEALTH_STATE_PROGRESSING, "waiting for the controller to observe the change");
    if (c->value("status", "") == "True") return Make(v1::HEALTH_STATE_HEALTHY);
    return Make(v1::HEALTH_STATE_PROGRESSING,
                absl::StrCat(type, " is ", c->value("status", "Unknown"), ": ", ConditionText(*c)));
  }
  return Make(v1::HEALTH_STATE_HEALTHY);
}

v1::ResourceHealth Evaluate(const json& live) {
  std::string api_version = Str(live, {"apiVersion"});
  std::string group = api_version.find('/') == std::string::npos
                          ? ""
                          : api_version.substr(0, api_version.find('/'));
  std::string kind = Str(live, {"kind"});
  if (group == "apps" && kind == "Deployment") return Deployment(live);
  if (group == "apps" && kind == "StatefulSet") return StatefulSet(live);
  if (group == "apps" && kind == "DaemonSet") return DaemonSet(live);
  if (group == "apps" && kind == "ReplicaSet") return ReplicaSet(live);
  if (group == "batch" && kind == "Job") return Job(live);
  if (group.empty() && kind == "Pod") return Pod(live);
  if (group.empty() && kind == "PersistentVolumeClaim") return Claim(live);
  if (group.empty() && kind == "Service") {
    if (Str(live, {"spec", "type"}) != "LoadBalancer") return Make(v1::HEALTH_STATE_HEALTHY);
    return LoadBalanced(live, "a load balancer address");
  }
  if (group == "networking.k8s.io" && kind == "Ingress")
    return LoadBalanced(live, "an ingress address");
  if (group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition") return Crd(live);
  if (group == "apiregistration.k8s.io" && kind == "APIService") {
    return ByCondition(live, "Available", true);
  }
  return Generic(live);
}

}  // namespace

v1::ResourceHealth EvaluateHealth(const json& live) {
  // Custom resources are written by any controller: a field of an unexpected type is
  // Unknown health, not a crash.
  try {
    return Evaluate(live);
  } catch (const json::exception& e) {
    return Make(v1::HEALTH_STATE_UNKNOWN,
                absl::StrCat("cannot read the object's status: ", e.what()));
  }
}

bool HealthSettled(v1::HealthState state) {
  return state == v1::HEALTH_STATE_HEALTHY || state == v1::HEALTH_STATE_DEGRADED;
}

}  // namespace gitfleet
