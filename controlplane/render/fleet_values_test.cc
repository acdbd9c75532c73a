#include "controlplane/render/fleet_values.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

Values EuCluster() {
  return {{ClusterNameKey(), "eu-1"},
          {ClusterLabelKey("env"), "prod"},
          {ClusterLabelKey("port"), "8080"},
          {ClusterLabelKey("topology.kubernetes.io/zone"), "eu-west-1a"},
          {"replicas", "3"}};
}

std::string Fill(const std::string& values, const Values& cluster = EuCluster(),
                 ReadValues* read = nullptr) {
  FleetHelmValues fleet{values, {}, true};
  absl::StatusOr<std::string> out = fleet.For(cluster, read);
  return out.ok() ? *out : "error: " + std::string(out.status().message());
}

TEST(FleetHelmValuesTest, ValuesFilesMergeOverValuesAsFleetApplyMergesThem) {
  FleetHelmValues fleet{"a: 1\nm: {x: 1, y: 1}\nb: 1\n",
                        {{"values/one.yaml", "m: {y: 2}\nb: 2\n"},
                         {"values/two.yaml", "b: 3\nlist: [1]\n"},
                         {"values/empty.yaml", ""}},
                        true};
  absl::StatusOr<std::string> out = fleet.For({}, nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "a: 1\nm:\n  x: 1\n  y: 2\nb: 3\nlist:\n  - 1\n");

  FleetHelmValues not_a_map{"", {{"values/list.yaml", "- a\n"}}, true};
  EXPECT_THAT(std::string(not_a_map.For({}, nullptr).status().message()),
              HasSubstr("values/list.yaml is not a mapping of values"));
  EXPECT_EQ(*FleetHelmValues{}.For({}, nullptr), "");
}

TEST(FleetHelmValuesTest, TemplatesFillInTheClustersNameLabelsAndValues) {
  ReadValues read;
  EXPECT_EQ(Fill("name: ${ .ClusterName }\n"
                 "host: \"${ .ClusterLabels.env }.example.com\"\n"
                 "zone: ${ index .ClusterLabels \"topology.kubernetes.io/zone\" | upper }\n"
                 "tier: ${ get .ClusterLabels \"tier\" | default \"standard\" }\n"
                 "port: ${ .ClusterLabels.port }\n"
                 "portText: ${ .ClusterLabels.port | quote }\n"
                 "canary: ${ hasKey .ClusterLabels \"canary\" }\n"
                 "count: ${ .ClusterValues.replicas }\n"
                 "\"${ .ClusterLabels.env }-only\": true\n",
                 EuCluster(), &read),
            "name: eu-1\nhost: prod.example.com\nzone: EU-WEST-1A\ntier: standard\nport: 8080\n"
            "portText: \"8080\"\ncanary: false\ncount: 3\nprod-only: true\n");
  // Every lookup counts, found or not: clusters that agree on these share the result.
  EXPECT_EQ(read, (ReadValues{{ClusterNameKey(), "eu-1"},
                              {ClusterLabelKey("env"), "prod"},
                              {ClusterLabelKey("port"), "8080"},
                              {ClusterLabelKey("topology.kubernetes.io/zone"), "eu-west-1a"},
                              {ClusterLabelKey("tier"), std::nullopt},
                              {ClusterLabelKey("canary"), std::nullopt},
                              {"replicas", "3"}}));
  // Types as Fleet reads the filled-in text: a number, a quoted string.
  YAML::Node node = YAML::Load(Fill("port: ${ .ClusterLabels.port }\n"));
  EXPECT_EQ(node["port"].Tag(), "?");
  // Trim markers, squote, trim, replace, parentheses.
  EXPECT_EQ(Fill("a: \"x  ${- .ClusterLabels.env -}  y\"\n"
                 "b: ${ squote (replace \"prod\" \"live\" .ClusterLabels.env) }\n"
                 "c: ${ trim \"  z \" }\n"),
            "a: xprody\nb: live\nc: z\n");
  // Nothing to fill in reads nothing: every cluster shares one render.
  read.clear();
  EXPECT_EQ(Fill("plain: ${\n", EuCluster(), &read).substr(0, 6), "error:");
  read.clear();
  EXPECT_EQ(Fill("plain: text\n", EuCluster(), &read), "plain: text\n");
  EXPECT_TRUE(read.empty());
}

TEST(FleetHelmValuesTest, ClusterLabelsValuesAreFilledInEvenWithoutPreprocessing) {
  ReadValues read;
  FleetHelmValues fleet{
      "zone: global.fleet.clusterLabels.env\n"
      "nested: {list: [{tier: global.fleet.clusterLabels.tier}]}\n"
      "text: ${ .ClusterLabels.env }\n",
      {},
      /*preprocess=*/false};
  absl::StatusOr<std::string> out = fleet.For(EuCluster(), &read);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "zone: prod\nnested:\n  list:\n    - tier: \"\"\ntext: ${ .ClusterLabels.env }\n");
  EXPECT_EQ(read, (ReadValues{{ClusterLabelKey("env"), "prod"},
                              {ClusterLabelKey("tier"), std::nullopt}}));
}

TEST(FleetHelmValuesTest, WhatGitfleetCannotFillInFailsNamingIt) {
  // A label the cluster lacks fails (Fleet's missingkey=error), and the lookup still counts.
  ReadValues read;
  EXPECT_THAT(Fill("a: {b: \"${ .ClusterLabels.region }\"}\n", EuCluster(), &read),
              HasSubstr("a.b: ${ .ClusterLabels.region }: the cluster has no label region"));
  EXPECT_EQ(read, (ReadValues{{ClusterLabelKey("region"), std::nullopt}}));
  EXPECT_THAT(Fill("a: ${ index .ClusterLabels \"region\" }\n"),
              HasSubstr("the cluster has no label region"));
  EXPECT_THAT(Fill("a: ${ .ClusterValues.size }\n"),
              HasSubstr("the bundle has no value size for this cluster"));
  const std::pair<const char*, const char*> kRefused[] = {
      {"a: ${ if hasKey .ClusterLabels \"x\" }y${ end }\n", "the control action \"if\""},
      {"a: ${ toYaml .ClusterLabels }\n", "the function \"toYaml\""},
      {"a: ${ .ClusterAnnotations.owner }\n", ".ClusterAnnotations"},
      {"a: ${ .ClusterNamespace }\n", ".ClusterNamespace"},
      {"a: ${ $x := 1 }\n", "a template variable"},
      {"a: ${ .ClusterLabels.my-label }\n", "index .ClusterLabels \"KEY\""},
      {"a: ${ .ClusterLabels }\n", "a whole map as text"},
      {"a: ${ upper .ClusterLabels }\n", "upper takes text, not a map"},
      {"a: ${ upper }\n", "upper takes 1 arguments, not 0"},
      {"a: ${ .ClusterName .ClusterName }\n", "not a function"},
      {"a: ${ \"x }\n", "unclosed"},
      {"a: ${ .Values.x }\n", "the field .Values.x"},
      {"a: ${/* note */}\n", "a comment"},
      {"a: ${ HOME }\n", "the function \"HOME\""},
  };
  for (const auto& [values, error] : kRefused) {
    std::string out = Fill(values);
    EXPECT_THAT(out, HasSubstr(error)) << values;
    EXPECT_THAT(out, HasSubstr("error: a: ")) << values;
  }
  // Every template's output is bounded.
  EXPECT_THAT(Fill("a: ${ replace \"p\" \"" + std::string(70000, 'x') + "\" .ClusterName }\n"),
              HasSubstr("pass 65536 bytes"));
  EXPECT_THAT(Fill("a: ${ .ClusterName }\n", {}), HasSubstr("no cluster to fill in"));
}

}  // namespace
}  // namespace gitfleet
