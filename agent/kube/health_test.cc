#include "agent/kube/health.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

v1::HealthState H(const std::string& live) { return EvaluateHealth(json::parse(live)).health(); }
std::string M(const std::string& live) { return EvaluateHealth(json::parse(live)).message(); }

// Shapes below are trimmed from `kubectl get -o json` of real objects.

TEST(HealthTest, DeploymentRollout) {
  const char* rolled_out = R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"name":"web","generation":3},
    "spec":{"replicas":3},
    "status":{"observedGeneration":3,"replicas":3,"updatedReplicas":3,"readyReplicas":3,
      "availableReplicas":3,"conditions":[
        {"type":"Available","status":"True","reason":"MinimumReplicasAvailable"},
        {"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable"}]}})";
  EXPECT_EQ(H(rolled_out), v1::HEALTH_STATE_HEALTHY);

  const char* not_observed = R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"name":"web","generation":4},"spec":{"replicas":3},
    "status":{"observedGeneration":3,"replicas":3,"updatedReplicas":3,"availableReplicas":3}})";
  EXPECT_EQ(H(not_observed), v1::HEALTH_STATE_PROGRESSING);
  EXPECT_THAT(M(not_observed), HasSubstr("observed"));

  const char* updating = R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"generation":4},"spec":{"replicas":3},
    "status":{"observedGeneration":4,"replicas":4,"updatedReplicas":1,"availableReplicas":3}})";
  EXPECT_EQ(H(updating), v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(M(updating), "1 of 3 updated replicas");

  const char* old_terminating = R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"generation":4},"spec":{"replicas":3},
    "status":{"observedGeneration":4,"replicas":4,"updatedReplicas":3,"availableReplicas":3}})";
  EXPECT_THAT(M(old_terminating), HasSubstr("1 old replicas are pending termination"));

  const char* unavailable = R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"generation":4},"spec":{"replicas":3},
    "status":{"observedGeneration":4,"replicas":3,"updatedReplicas":3,"availableReplicas":2}})";
  EXPECT_EQ(M(unavailable), "2 of 3 updated replicas are available");

  const char* deadline = R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"generation":4},"spec":{"replicas":3},
    "status":{"observedGeneration":4,"replicas":4,"updatedReplicas":1,"availableReplicas":3,
      "conditions":[{"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded",
        "message":"ReplicaSet \"web-5d9c\" has timed out progressing."}]}})";
  EXPECT_EQ(H(deadline), v1::HEALTH_STATE_DEGRADED);
  EXPECT_THAT(M(deadline), HasSubstr("timed out progressing"));

  // replicas defaults to 1.
  EXPECT_EQ(H(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"generation":1},
    "spec":{},"status":{"observedGeneration":1}})"),
            v1::HEALTH_STATE_PROGRESSING);
  // Zero replicas is done at once.
  EXPECT_EQ(H(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"generation":1},
    "spec":{"replicas":0},"status":{"observedGeneration":1}})"),
            v1::HEALTH_STATE_HEALTHY);
}

TEST(HealthTest, StatefulSet) {
  EXPECT_EQ(H(R"({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"generation":2},
    "spec":{"replicas":2,"updateStrategy":{"type":"RollingUpdate"}},
    "status":{"observedGeneration":2,"replicas":2,"readyReplicas":2,"updatedReplicas":2,
      "currentRevision":"db-7c9","updateRevision":"db-7c9"}})"),
            v1::HEALTH_STATE_HEALTHY);
  const char* updating =
      R"({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"generation":2},
    "spec":{"replicas":2},"status":{"observedGeneration":2,"readyReplicas":2,
      "updatedReplicas":1,"currentRevision":"db-7c9","updateRevision":"db-84f"}})";
  EXPECT_EQ(H(updating), v1::HEALTH_STATE_PROGRESSING);
  EXPECT_THAT(M(updating), HasSubstr("db-84f"));
  EXPECT_EQ(M(R"({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"generation":1},
    "spec":{"replicas":3},"status":{"observedGeneration":1,"readyReplicas":1}})"),
            "1 of 3 pods ready");
  EXPECT_EQ(H(R"({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"generation":1},
    "spec":{"replicas":4,"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}},
    "status":{"observedGeneration":1,"readyReplicas":4,"updatedReplicas":2,
      "currentRevision":"a","updateRevision":"b"}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"generation":1},
    "spec":{"replicas":4,"updateStrategy":{"type":"OnDelete"}},"status":{"observedGeneration":1}})"),
            v1::HEALTH_STATE_HEALTHY);
}

TEST(HealthTest, DaemonSetAndReplicaSet) {
  EXPECT_EQ(H(R"({"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"generation":1},
    "status":{"observedGeneration":1,"desiredNumberScheduled":3,"currentNumberScheduled":3,
      "updatedNumberScheduled":3,"numberAvailable":3,"numberReady":3}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(M(R"({"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"generation":1},
    "status":{"observedGeneration":1,"desiredNumberScheduled":3,"updatedNumberScheduled":2,
      "numberAvailable":3}})"),
            "2 of 3 updated pods scheduled");
  EXPECT_EQ(H(R"({"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"generation":1},
    "spec":{"replicas":2},"status":{"observedGeneration":1,"replicas":2,"availableReplicas":2}})"),
            v1::HEALTH_STATE_HEALTHY);
  const char* quota = R"({"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"generation":1},
    "spec":{"replicas":2},"status":{"observedGeneration":1,"replicas":0,"conditions":[
      {"type":"ReplicaFailure","status":"True","reason":"FailedCreate",
       "message":"pods \"web-x\" is forbidden: exceeded quota"}]}})";
  EXPECT_EQ(H(quota), v1::HEALTH_STATE_DEGRADED);
  EXPECT_THAT(M(quota), HasSubstr("exceeded quota"));
}

TEST(HealthTest, Pod) {
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"Pod","status":{"phase":"Running","conditions":[
    {"type":"Ready","status":"True"}],"containerStatuses":[{"name":"app","ready":true,
    "state":{"running":{}}}]}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"Pod","status":{"phase":"Running","conditions":[
    {"type":"Ready","status":"False"}]}})"),
            v1::HEALTH_STATE_PROGRESSING);
  const char* crash = R"({"apiVersion":"v1","kind":"Pod","status":{"phase":"Running",
    "containerStatuses":[{"name":"app","ready":false,"restartCount":5,"state":{"waiting":{
      "reason":"CrashLoopBackOff","message":"back-off 5m0s restarting failed container"}}}]}})";
  EXPECT_EQ(H(crash), v1::HEALTH_STATE_DEGRADED);
  EXPECT_THAT(M(crash), HasSubstr("container app: CrashLoopBackOff"));
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"Pod","status":{"phase":"Pending",
    "containerStatuses":[{"name":"app","state":{"waiting":{"reason":"ImagePullBackOff"}}}]}})"),
            v1::HEALTH_STATE_DEGRADED);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"Pod","status":{"phase":"Pending"}})"),
            v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"Pod","status":{"phase":"Succeeded"}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"Pod","status":{"phase":"Failed","reason":"Evicted",
    "message":"The node was low on resource: memory."}})"),
            v1::HEALTH_STATE_DEGRADED);
}

TEST(HealthTest, Job) {
  EXPECT_EQ(H(R"({"apiVersion":"batch/v1","kind":"Job","status":{"succeeded":1,"conditions":[
    {"type":"Complete","status":"True"}]}})"),
            v1::HEALTH_STATE_HEALTHY);
  const char* failed = R"({"apiVersion":"batch/v1","kind":"Job","status":{"failed":6,
    "conditions":[{"type":"Failed","status":"True","reason":"BackoffLimitExceeded",
    "message":"Job has reached the specified backoff limit"}]}})";
  EXPECT_EQ(H(failed), v1::HEALTH_STATE_DEGRADED);
  EXPECT_THAT(M(failed), HasSubstr("BackoffLimitExceeded"));
  EXPECT_EQ(H(R"({"apiVersion":"batch/v1","kind":"Job","status":{"active":1}})"),
            v1::HEALTH_STATE_PROGRESSING);
}

TEST(HealthTest, ServiceIngressClaim) {
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"Service","spec":{"type":"ClusterIP"},"status":{
    "loadBalancer":{}}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"Service","spec":{"type":"LoadBalancer"},"status":{
    "loadBalancer":{}}})"),
            v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"Service","spec":{"type":"LoadBalancer"},"status":{
    "loadBalancer":{"ingress":[{"ip":"203.0.113.7"}]}}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","status":{
    "loadBalancer":{"ingress":[{"hostname":"lb.example.com"}]}}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","status":{
    "loadBalancer":{}}})"),
            v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"PersistentVolumeClaim","status":{"phase":"Bound"}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"PersistentVolumeClaim","status":{"phase":"Pending"}})"),
            v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"PersistentVolumeClaim","status":{"phase":"Lost"}})"),
            v1::HEALTH_STATE_DEGRADED);
}

TEST(HealthTest, CrdAndApiService) {
  EXPECT_EQ(H(R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
    "status":{"conditions":[{"type":"NamesAccepted","status":"True"},
    {"type":"Established","status":"True"}]}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
    "status":{"conditions":[{"type":"NamesAccepted","status":"True"},
    {"type":"Established","status":"False","reason":"Installing"}]}})"),
            v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(H(R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
    "status":{"conditions":[{"type":"NamesAccepted","status":"False","reason":"ListKindConflict"}]}})"),
            v1::HEALTH_STATE_DEGRADED);
  EXPECT_EQ(H(R"({"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","status":{
    "conditions":[{"type":"Available","status":"True","reason":"Passed"}]}})"),
            v1::HEALTH_STATE_HEALTHY);
  const char* unavailable = R"({"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService",
    "status":{"conditions":[{"type":"Available","status":"False","reason":"FailedDiscoveryCheck",
    "message":"failing or missing response from https://10.96.0.1:443"}]}})";
  EXPECT_EQ(H(unavailable), v1::HEALTH_STATE_DEGRADED);
  EXPECT_THAT(M(unavailable), HasSubstr("FailedDiscoveryCheck"));
}

TEST(HealthTest, GenericConditionsAndUnknownKinds) {
  EXPECT_EQ(
      H(R"({"apiVersion":"cert-manager.io/v1","kind":"Certificate","metadata":{"generation":1},
    "status":{"conditions":[{"type":"Ready","status":"True"}]}})"),
      v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(
      H(R"({"apiVersion":"cert-manager.io/v1","kind":"Certificate","metadata":{"generation":2},
    "status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"True"}]}})"),
      v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(H(R"({"apiVersion":"cert-manager.io/v1","kind":"Certificate","status":{"conditions":[
    {"type":"Ready","status":"False","reason":"Issuing"}]}})"),
            v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(H(R"({"apiVersion":"example.com/v1","kind":"Widget","status":{"conditions":[
    {"type":"Stalled","status":"True","reason":"BadSpec"}]}})"),
            v1::HEALTH_STATE_DEGRADED);
  EXPECT_EQ(H(R"({"apiVersion":"example.com/v1","kind":"Thing","status":{"conditions":[
    {"type":"Available","status":"True"}]}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"v1","kind":"ConfigMap","data":{"a":"b"}})"),
            v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(H(R"({"apiVersion":"example.com/v1","kind":"Widget","spec":{}})"),
            v1::HEALTH_STATE_HEALTHY);
}

TEST(HealthTest, MalformedStatusIsUnknownNotACrash) {
  v1::ResourceHealth h = EvaluateHealth(json::parse(R"({"apiVersion":"example.com/v1",
    "kind":"Widget","status":{"conditions":[{"type":"Ready","status":true}]}})"));
  EXPECT_EQ(h.health(), v1::HEALTH_STATE_UNKNOWN);
  EXPECT_THAT(h.message(), HasSubstr("cannot read the object's status"));
  EXPECT_EQ(H(R"({"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":"three"},
    "status":{}})"),
            v1::HEALTH_STATE_PROGRESSING);  // a non-number reads as the default
  EXPECT_EQ(H(R"([1, 2])"), v1::HEALTH_STATE_HEALTHY);
}

TEST(HealthTest, Settled) {
  EXPECT_TRUE(HealthSettled(v1::HEALTH_STATE_HEALTHY));
  EXPECT_TRUE(HealthSettled(v1::HEALTH_STATE_DEGRADED));
  EXPECT_FALSE(HealthSettled(v1::HEALTH_STATE_PROGRESSING));
  EXPECT_FALSE(HealthSettled(v1::HEALTH_STATE_MISSING));
}

}  // namespace
}  // namespace gitfleet
