#ifndef GITFLEET_AGENT_KUBE_HEALTH_H_
#define GITFLEET_AGENT_KUBE_HEALTH_H_

// The health of a live Kubernetes object in the status model's words, by the rules
// `kubectl rollout status` and Argo CD use:
//
//   Deployment, StatefulSet, DaemonSet, ReplicaSet  observedGeneration, updated / ready /
//                           available replicas; ProgressDeadlineExceeded -> Degraded
//   Pod                     Succeeded or Running and Ready; CrashLoopBackOff,
//                           ImagePullBackOff or Failed -> Degraded
//   Job                     Complete -> Healthy, Failed -> Degraded
//   Service (LoadBalancer), Ingress   an ingress point assigned
//   PersistentVolumeClaim   Bound; Lost -> Degraded
//   CustomResourceDefinition Established; NamesAccepted=False -> Degraded
//   APIService              Available
//   anything else           status.conditions Ready/Available (Stalled=True -> Degraded);
//                           Healthy once applied when it has neither
//
//   v1::ResourceHealth h = EvaluateHealth(live);  // h.key() is left for the caller

#include "nlohmann/json.hpp"
#include "proto/gitfleet/v1/types.pb.h"

namespace gitfleet {

v1::ResourceHealth EvaluateHealth(const nlohmann::json& live);

// Whether a health state can still change without anyone applying anything.
bool HealthSettled(v1::HealthState state);

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_KUBE_HEALTH_H_
