#include "controlplane/render/fleet_diff.h"

#include <string>

#include "common/manifest/object.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

absl::StatusOr<FleetComparePatches> Read(const std::string& yaml) {
  return ReadFleetComparePatches(YAML::Load(yaml)["diff"]);
}

std::vector<std::string> Described(const FleetComparePatches& read) {
  std::vector<std::string> out;
  for (const v1::IgnoreDifference& rule : read.rules) out.push_back(DescribeIgnoreDifference(rule));
  return out;
}

TEST(FleetDiffTest, NothingWithoutADiff) {
  for (const char* yaml :
       {"defaultNamespace: shop\n", "diff:\n", "diff: {}\n", "diff:\n  comparePatches: []\n"}) {
    absl::StatusOr<FleetComparePatches> read = Read(yaml);
    ASSERT_TRUE(read.ok()) << yaml << ": " << read.status();
    EXPECT_TRUE(read->empty()) << yaml;
  }
}

// Fleet's documented forms: an object's jsonPointers, and operations that remove a field.
TEST(FleetDiffTest, JsonPointersAndOperationsBecomeRules) {
  absl::StatusOr<FleetComparePatches> read = Read(R"(
diff:
  comparePatches:
  - apiVersion: apps/v1
    kind: Deployment
    name: web
    namespace: shop
    jsonPointers:
    - /spec/replicas
  - apiVersion: networking.k8s.io/v1
    kind: Ingress
    name: labelme-ingress
    namespace: default
    operations:
    - {"op": "remove", "path": "/spec/rules/0/host"}
    - {"op": "replace", "path": "/metadata/annotations/x", "value": "y"}
  - apiVersion: v1
    kind: Service
    jsonPointers: ["/spec/clusterIP", "/spec/clusterIPs"]
  - apiVersion: admissionregistration.k8s.io/v1
    kind: ValidatingWebhookConfiguration
    name: hooks
    jsonPointers: ["/webhooks/0/clientConfig/caBundle", "/webhooks/0/clientConfig/caBundle"]
    operations:
    - {"op": "remove", "path": "/webhooks/1/clientConfig/caBundle"}
)");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(
      Described(*read),
      ElementsAre("apps/Deployment:shop/web=/spec/replicas",
                  "networking.k8s.io/Ingress:default/labelme-ingress=/spec/rules/0/host,/metadata/"
                  "annotations/x",
                  "Service=/spec/clusterIP,/spec/clusterIPs",
                  "admissionregistration.k8s.io/ValidatingWebhookConfiguration:hooks=/webhooks/0/"
                  "clientConfig/caBundle,/webhooks/1/clientConfig/caBundle"));
  EXPECT_THAT(read->not_read, IsEmpty());
  // The group, not the version: the core group is "".
  EXPECT_EQ(read->rules[0].group(), "apps");
  EXPECT_EQ(read->rules[2].group(), "");
  EXPECT_EQ(read->rules[2].name(), "");
  EXPECT_EQ(IgnoreDifferenceFlags({read->rules[0], read->rules[2]}),
            "--ignore-difference=apps/Deployment:shop/web=/spec/replicas "
            "--ignore-difference=Service=/spec/clusterIP,/spec/clusterIPs");
}

// What gitfleet cannot do as Fleet does is described, never half done.
TEST(FleetDiffTest, WhatIsNotReadIsDescribed) {
  absl::StatusOr<FleetComparePatches> read = Read(R"(
diff:
  comparePatches:
  - apiVersion: postgresql.cnpg.io/v1
    kind: Cluster
    operations:
    - {"op": "remove", "path": "/status"}
  - apiVersion: bitnami.com/v1alpha1
    kind: SealedSecret
    namespace: shop
    name: .*creds.*
    operations:
    - {"op": "ignore"}
  - apiVersion: apps/v1
    kind: Deployment
    name: web
    operations:
    - {"op": "move", "from": "/a", "path": "/b"}
    - {"op": "add", "path": "/spec/template/spec/containers/-", "value": {}}
    - {"op": "test", "path": "/a", "value": 1}
    - {"op": "remove", "path": "/spec/paused"}
)");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(Described(*read), ElementsAre("apps/Deployment:web=/spec/paused"));
  ASSERT_EQ(read->not_read.size(), 5u);
  EXPECT_THAT(read->not_read[0], HasSubstr("comparePatches[0] (postgresql.cnpg.io/v1 Cluster): op "
                                           "remove /status on no named object, which Fleet "
                                           "applies to none"));
  EXPECT_THAT(read->not_read[1], HasSubstr("op ignore"));
  EXPECT_THAT(read->not_read[2], HasSubstr("comparePatches[2] (apps/v1 Deployment web): op move"));
  EXPECT_THAT(read->not_read[3], HasSubstr("appends to a list"));
  EXPECT_THAT(read->not_read[4], HasSubstr("op test"));
}

TEST(FleetDiffTest, ManyPointersAreSplitIntoRulesOfSixteen) {
  std::string yaml = "diff:\n  comparePatches:\n  - kind: ConfigMap\n    jsonPointers:\n";
  for (int i = 0; i < 40; ++i) absl::StrAppend(&yaml, "    - /data/k", i, "\n");
  absl::StatusOr<FleetComparePatches> read = Read(yaml);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->rules.size(), 3u);
  EXPECT_EQ(read->rules[0].json_pointers_size(), 16);
  EXPECT_EQ(read->rules[2].json_pointers_size(), 8);
  EXPECT_EQ(read->rules[2].json_pointers(7), "/data/k39");
  v1::SyncOptions sync;
  sync.mutable_ignore_differences()->Assign(read->rules.begin(), read->rules.end());
  EXPECT_TRUE(CheckIgnoreDifferences(sync).ok());
}

TEST(FleetDiffTest, BadInputIsNamed) {
  struct Case {
    const char* yaml;
    const char* error;
  };
  std::string too_many = "diff:\n  comparePatches:\n";
  for (int i = 0; i < 65; ++i) absl::StrAppend(&too_many, "  - {kind: ConfigMap}\n");
  std::string too_many_rules = "diff:\n  comparePatches:\n";
  for (int i = 0; i < 33; ++i) {
    absl::StrAppend(&too_many_rules, "  - kind: ConfigMap\n    jsonPointers: [");
    for (int p = 0; p < 17; ++p) absl::StrAppend(&too_many_rules, p ? ", " : "", "/data/k", p);
    absl::StrAppend(&too_many_rules, "]\n");
  }
  const Case cases[] = {
      {"diff: [a]\n", "diff is not a mapping"},
      {"diff:\n  comparePatches: {kind: x}\n", "diff.comparePatches is not a list"},
      {"diff:\n  comparePatches:\n  - just text\n", "diff.comparePatches[0]: is not a mapping"},
      {"diff:\n  comparePatches:\n  - {apiVersion: v1, jsonPointers: [/a]}\n",
       "comparePatches[0]: names no kind"},
      {"diff:\n  comparePatches:\n  - {kind: [x]}\n", "comparePatches[0]: kind is not a string"},
      {"diff:\n  comparePatches:\n  - {apiVersion: /v1, kind: X, jsonPointers: [/a]}\n",
       "apiVersion /v1 is not GROUP/VERSION or VERSION"},
      {"diff:\n  comparePatches:\n  - {apiVersion: a/b/c, kind: X}\n",
       "apiVersion a/b/c is not GROUP/VERSION"},
      {"diff:\n  comparePatches:\n  - {kind: X, jsonPointers: /a}\n",
       "comparePatches[0]: jsonPointers is not a list"},
      {"diff:\n  comparePatches:\n  - {kind: X, jsonPointers: [spec/replicas]}\n",
       "\"spec/replicas\" is not a JSON pointer"},
      {"diff:\n  comparePatches:\n  - {kind: X, name: a, operations: [{op: remove, path: a~2}]}\n",
       "is not a JSON pointer"},
      {"diff:\n  comparePatches:\n  - {kind: X, jsonPointers: [/metadata/name]}\n",
       "what names the object"},
      {"diff:\n  comparePatches:\n  - {kind: X, name: 'a b', jsonPointers: [/a]}\n",
       "as Kubernetes writes them"},
      {"diff:\n  comparePatches:\n  - {kind: X, operations: {op: remove}}\n",
       "operations is not a list"},
      {too_many.c_str(), "lists 65 entries; at most 64"},
      {too_many_rules.c_str(), "more than 64 groups of fields"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<FleetComparePatches> read = Read(c.yaml);
    ASSERT_FALSE(read.ok()) << c.yaml;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(read.status().message(), HasSubstr(c.error)) << c.yaml;
  }
}

}  // namespace
}  // namespace gitfleet
