#include "agent/kube/convert.h"

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using nlohmann::json;

TEST(ConvertTest, ScalarsFollowKubernetesYaml) {
  absl::StatusOr<json> j = YamlToJson(
      "a: 1\nb: \"1\"\nc: true\nd: 'on'\ne: on\nf: 1.5\ng: null\nh: ~\ni:\nj: text\n"
      "k: [1, \"2\", x]\nl: {m: no}\nn: 0x1F\no: 1e3\np: \"\"\nq: 1.2.3\n");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["a"], 1);
  EXPECT_EQ((*j)["b"], "1");
  EXPECT_EQ((*j)["c"], true);
  EXPECT_EQ((*j)["d"], "on");
  EXPECT_EQ((*j)["e"], true);
  EXPECT_EQ((*j)["f"], 1.5);
  EXPECT_TRUE((*j)["g"].is_null());
  EXPECT_TRUE((*j)["h"].is_null());
  EXPECT_TRUE((*j)["i"].is_null());
  EXPECT_EQ((*j)["j"], "text");
  EXPECT_EQ((*j)["k"], json::parse(R"([1, "2", "x"])"));
  EXPECT_EQ((*j)["l"]["m"], false);
  EXPECT_EQ((*j)["n"], 31);
  EXPECT_EQ((*j)["o"], 1000.0);
  EXPECT_EQ((*j)["p"], "");
  EXPECT_EQ((*j)["q"], "1.2.3");
}

// Integers as kubectl's YAML reader (go-yaml, Go's ParseInt with base 0) reads them: a
// leading 0 is octal, so a volume's `defaultMode: 0644` is 420 (rw-r--r--), never 644;
// 0o, 0b and 0x prefixes, signs and underscores; "08" is no octal (a float, 8); the YAML
// 1.1 words only in go-yaml's three spellings.
TEST(ConvertTest, IntegersAndWordsReadAsKubectlReadsThem) {
  absl::StatusOr<json> j = YamlToJson(
      "mode: 0644\nzero: 0\nzeros: 00\no: 0o17\nb: 0b101\nneg: -0x10\nplus: +12\n"
      "big: 1_000_000\neight: 08\nbadunder: 1__0\nhuge: 99999999999999999999\n"
      "Yes: Yes\nodd: yEs\nnul: Null\nnull2: nULL\nq: \"0644\"\n");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["mode"], 420);
  EXPECT_EQ((*j)["zero"], 0);
  EXPECT_EQ((*j)["zeros"], 0);
  EXPECT_EQ((*j)["o"], 15);
  EXPECT_EQ((*j)["b"], 5);
  EXPECT_EQ((*j)["neg"], -16);
  EXPECT_EQ((*j)["plus"], 12);
  EXPECT_EQ((*j)["big"], 1000000);
  EXPECT_EQ((*j)["eight"], 8.0);
  EXPECT_EQ((*j)["badunder"], "1__0");
  EXPECT_TRUE((*j)["huge"].is_number_float()) << (*j)["huge"];
  EXPECT_EQ((*j)["Yes"], true);
  EXPECT_EQ((*j)["odd"], "yEs");
  EXPECT_TRUE((*j)["nul"].is_null());
  EXPECT_EQ((*j)["null2"], "nULL");
  EXPECT_EQ((*j)["q"], "0644");
}

TEST(ConvertTest, BadYamlIsAnError) { EXPECT_FALSE(YamlToJson("a: [1, 2").ok()); }

TEST(ConvertTest, FirstDifferenceIgnoresServerFields) {
  json want = json::parse(R"({"metadata":{"name":"a","labels":{"x":"1"}},"spec":{"replicas":2,
    "template":{"spec":{"containers":[{"name":"c","image":"i:1"}]}}}})");
  json have = json::parse(R"({"metadata":{"name":"a","uid":"u","labels":{"x":"1","y":"2"}},
    "spec":{"replicas":2.0,"strategy":{},"template":{"spec":{"containers":[
      {"name":"c","image":"i:1","imagePullPolicy":"IfNotPresent"}]}}},"status":{}})");
  EXPECT_EQ(FirstDifference(want, have), "");
  have["spec"]["template"]["spec"]["containers"][0]["image"] = "i:2";
  EXPECT_EQ(FirstDifference(want, have), ".spec.template.spec.containers[0].image");
  have = json::parse(R"({"metadata":{"name":"a","labels":{}},"spec":{"replicas":2}})");
  EXPECT_EQ(FirstDifference(want, have), ".metadata.labels.x");
  // Unset (null) or empty fields the server omits are not differences.
  EXPECT_EQ(FirstDifference(json::parse(R"({"a":null,"b":{},"c":[]})"), json::object()), "");
}

}  // namespace
}  // namespace gitfleet
