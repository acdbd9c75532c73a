#include "controlplane/render/fleet_cluster_groups.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

// What `kubectl get clustergroups -A -o yaml` prints, and a manifest beside it.
TEST(FleetClusterGroupsTest, ReadsWhatKubectlPrintsAndManifests) {
  absl::StatusOr<std::vector<ClusterGroup>> groups = ParseFleetClusterGroups(R"(
apiVersion: v1
kind: List
items:
- apiVersion: fleet.cattle.io/v1alpha1
  kind: ClusterGroup
  metadata:
    name: prod
    namespace: fleet-default
    labels: {tier: critical}
  spec:
    selector:
      matchLabels: {env: prod}
      matchExpressions:
      - {key: region, operator: In, values: [eu, us]}
  status: {clusterCount: 3}
---
apiVersion: fleet.cattle.io/v1alpha1
kind: ClusterGroup
metadata: {name: everyone.v2}
spec:
  selector: {}
---
apiVersion: fleet.cattle.io/v1alpha1
kind: ClusterGroup
metadata: {name: empty}
)",
                                                                             "groups.yaml");
  ASSERT_TRUE(groups.ok()) << groups.status();
  ASSERT_EQ(groups->size(), 3);
  const ClusterGroup& empty = (*groups)[0];
  const ClusterGroup& everyone = (*groups)[1];
  const ClusterGroup& prod = (*groups)[2];
  EXPECT_EQ(empty.name, "empty");
  EXPECT_FALSE(empty.selector.has_value()) << "no selector: no cluster, as in Fleet";
  EXPECT_EQ(everyone.name, "everyone.v2");
  ASSERT_TRUE(everyone.selector.has_value());
  EXPECT_TRUE(everyone.selector->Matches({}));
  EXPECT_EQ(prod.labels, (LabelMap{{"tier", "critical"}}));
  ASSERT_TRUE(prod.selector.has_value());
  EXPECT_TRUE(prod.selector->Matches({{"env", "prod"}, {"region", "eu"}}));
  EXPECT_FALSE(prod.selector->Matches({{"env", "prod"}, {"region", "ap"}}));
  EXPECT_FALSE(prod.selector->Matches({{"env", "dev"}, {"region", "eu"}}));
  EXPECT_TRUE(ParseFleetClusterGroups("", "groups.yaml")->empty());
  EXPECT_TRUE(ParseFleetClusterGroups("apiVersion: v1\nkind: List\n", "groups.yaml")->empty())
      << "kubectl's list when there are none";
  EXPECT_TRUE(ParseFleetClusterGroups("kind: List\nitems: []\n", "groups.yaml")->empty());
}

TEST(FleetClusterGroupsTest, WhatIsNotAGroupIsRefusedByName) {
  const std::string head = "apiVersion: fleet.cattle.io/v1alpha1\nkind: ClusterGroup\n";
  struct Case {
    std::string text;
    std::string error;
  } cases[] = {
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
       "groups.yaml: document 1: is a ConfigMap (v1), not a Fleet ClusterGroup"},
      {head + "metadata: {name: Prod}\n", "metadata.name \"Prod\" is not a Kubernetes name"},
      {head + "metadata: {name: a}\n---\n" + head + "metadata: {name: a}\n",
       "document 2: ClusterGroup a is defined twice"},
      {head + "metadata: {name: a, labels: {'bad key!': x}}\n", "ClusterGroup a: metadata.labels:"},
      {head + "metadata: {name: a}\nspec: {selector: {matchExpressions: [{key: k, operator: Gt, "
              "values: ['1']}]}}\n",
       "ClusterGroup a: spec.selector is not one gitfleet reads"},
      {head + "metadata: {name: a}\nspec: {selector: [x]}\n", "spec.selector is not a mapping"},
      {"kind: List\nitems: {a: b}\n", "the List's items is not a list"},
      {"kind: List\nitems:\n- kind: Cluster\n", "document 1, item 1: is a Cluster"},
      // Found by cluster_groups_fuzzer: a scalar where a mapping goes threw out of yaml-cpp.
      {head + "metadata: ab\n", "document 1: its metadata is not a mapping"},
      {head + "metadata: [a]\n", "its metadata is not a mapping"},
      {head + "metadata: {name: a, labels: [x]}\n", "metadata.labels is not a mapping"},
      {head + "metadata: {name: a}\nspec: x\n", "ClusterGroup a: spec is not a mapping"},
      {"a: [\n", "groups.yaml:"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<ClusterGroup>> groups =
        ParseFleetClusterGroups(c.text, "groups.yaml");
    EXPECT_FALSE(groups.ok()) << c.text;
    EXPECT_THAT(groups.status().message(), HasSubstr(c.error)) << c.text;
  }
  std::string many;
  for (size_t i = 0; i <= kMaxClusterGroups; ++i) {
    absl::StrAppend(&many, "---\n", head, "metadata: {name: g", i, "}\n");
  }
  EXPECT_THAT(ParseFleetClusterGroups(many, "groups.yaml").status().message(),
              HasSubstr("more than 1000 cluster groups"));
  // 100 groups of 60 labels each, 20-byte values: what every cluster in all of them carries.
  std::string heavy;
  for (int g = 0; g < 100; ++g) {
    absl::StrAppend(&heavy, "---\n", head, "metadata:\n  name: g", g, "\n  labels:\n");
    for (int l = 0; l < 60; ++l) absl::StrAppend(&heavy, "    label-", l, ": value-of-twenty-b\n");
  }
  EXPECT_THAT(ParseFleetClusterGroups(heavy, "groups.yaml").status().message(),
              HasSubstr("the cluster groups' names and labels come to"));
}

}  // namespace
}  // namespace gitfleet
