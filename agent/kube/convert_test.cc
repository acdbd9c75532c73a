#include "agent/kube/convert.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

TEST(ConvertTest, ScalarsFollowKubernetesYaml) {
  absl::StatusOr<json> j = YamlToJson(
      "a: 1\nb: \"1\"\nc: true\nd: 'on'\ne: on\nf: 1.5\ng: null\nh: ~\ni:\nj: text\n"
      "k: [1, \"2\", x]\nl: {m: no}\nhex: 0x1F\no: 1e3\np: \"\"\nq: 1.2.3\n");
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
  EXPECT_EQ((*j)["hex"], 31);
  EXPECT_EQ((*j)["o"], 1000.0);
  EXPECT_EQ((*j)["p"], "");
  EXPECT_EQ((*j)["q"], "1.2.3");
}

// Integers as kubectl's YAML reader (go-yaml, Go's ParseInt with base 0) reads them: a
// leading 0 is octal, so a volume's `defaultMode: 0644` is 420 (rw-r--r--), never 644;
// 0o, 0b and 0x prefixes, signs and underscores (all dropped first); "08" is no octal (a
// float, 8); past int64 a uint64, past that a float; floats in go-yaml's syntax alone, and
// one past a double stays text; the YAML 1.1 words only in go-yaml's three spellings.
TEST(ConvertTest, IntegersAndWordsReadAsKubectlReadsThem) {
  absl::StatusOr<json> j = YamlToJson(
      "mode: 0644\nzero: 0\nzeros: 00\no: 0o17\nb: 0b101\nneg: -0x10\nplus: +12\n"
      "big: 1_000_000\neight: 08\nbadunder: 1__0\nhuge: 99999999999999999999\n"
      "yesv: Yes\nodd: yEs\nnul: Null\nnull2: nULL\nq: \"0644\"\n"
      "u64: 18446744073709551615\nplusu64: +18446744073709551615\nmin: -9223372036854775808\n"
      "dot: .5\ntrail: 5.\nexp: 1e3\nunderf: 1_000.5\nover: 1e400\nword: 1.2.3\n"
      "under: _1\nhexu: 0x_1F\nsign: -x\n");
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
  EXPECT_EQ((*j)["badunder"], 10) << "go-yaml drops every underscore first";
  EXPECT_TRUE((*j)["huge"].is_number_float()) << (*j)["huge"];
  EXPECT_TRUE((*j)["u64"].is_number_unsigned()) << (*j)["u64"];
  EXPECT_EQ((*j)["u64"].dump(), "18446744073709551615");
  EXPECT_TRUE((*j)["plusu64"].is_number_float()) << "ParseUint takes no sign";
  EXPECT_EQ((*j)["min"].dump(), "-9223372036854775808");
  EXPECT_EQ((*j)["dot"], 0.5);
  EXPECT_EQ((*j)["trail"], 5.0);
  EXPECT_EQ((*j)["exp"], 1000.0);
  EXPECT_EQ((*j)["underf"], 1000.5);
  EXPECT_EQ((*j)["over"], "1e400") << "past a double, go-yaml keeps the text";
  EXPECT_EQ((*j)["word"], "1.2.3");
  EXPECT_EQ((*j)["under"], "_1");
  EXPECT_EQ((*j)["hexu"], 31);
  EXPECT_EQ((*j)["sign"], "-x");
  EXPECT_EQ((*j)["yesv"], true);
  EXPECT_EQ((*j)["odd"], "yEs");
  EXPECT_TRUE((*j)["nul"].is_null());
  EXPECT_EQ((*j)["null2"], "nULL");
  EXPECT_EQ((*j)["q"], "0644");
}

// Explicit tags as go-yaml v2 decodes them for kubectl: `!!str` and `!` are text, the
// resolvable ones must resolve to what they name (`!!float` takes an integer), `!!binary`
// is decoded, and a tag go-yaml does not resolve leaves the text.
TEST(ConvertTest, TagsReadAsKubectlReadsThem) {
  absl::StatusOr<json> j = YamlToJson(
      "a: !!int \"1\"\nb: !!float 1\nc: !!float \"1.5\"\nd: !!str 1\ne: !!bool \"yes\"\n"
      "f: !!null \"\"\ng: !foo 1\nh: !!binary aGVsbG8=\ni: !<tag:yaml.org,2002:int> '0x10'\n"
      "j: !!timestamp 2001-12-14\nk: ! 1\nl: !!timestamp 2001-12-14T21:59:43.10-05:00\n"
      "m: 2001-12-14\nset: !!set 1\no: !!str\np: !!binary |\n  aGVs\n  bG8=\nq: !!str ~\n");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["a"], 1);
  EXPECT_TRUE((*j)["b"].is_number_float()) << (*j)["b"];
  EXPECT_EQ((*j)["b"], 1.0);
  EXPECT_EQ((*j)["c"], 1.5);
  EXPECT_EQ((*j)["d"], "1");
  EXPECT_EQ((*j)["e"], true);
  EXPECT_TRUE((*j)["f"].is_null());
  EXPECT_EQ((*j)["g"], "1") << "a tag go-yaml does not resolve leaves the text";
  EXPECT_EQ((*j)["h"], "hello");
  EXPECT_EQ((*j)["i"], 16);
  EXPECT_EQ((*j)["j"], "2001-12-14");
  EXPECT_EQ((*j)["k"], "1");
  EXPECT_EQ((*j)["l"], "2001-12-14T21:59:43.10-05:00");
  EXPECT_EQ((*j)["m"], "2001-12-14");
  EXPECT_EQ((*j)["set"], "1");
  EXPECT_EQ((*j)["o"], "");
  EXPECT_EQ((*j)["p"], "hello") << "base64 over lines";
  EXPECT_EQ((*j)["q"], "~");

  for (const auto& [value, says] : std::vector<std::pair<std::string, std::string>>{
           {"!!int abc", "`abc` tagged !!int reads as !!str"},
           {"!!int 1.5", "`1.5` tagged !!int reads as !!float"},
           {"!!bool 1", "`1` tagged !!bool reads as !!int"},
           {"!!null x", "`x` tagged !!null reads as !!str"},
           {"!!float 18446744073709551615", "tagged !!float reads as !!int"},
           {"!!timestamp 12", "`12` tagged !!timestamp reads as !!int"},
           {"!!timestamp 2001-13-01", "tagged !!timestamp reads as !!str"},
           {"!!float .inf", "JSON cannot carry"},
           {"!!binary \"%%%\"", "not base64"},
           {"!!binary /w==", "not UTF-8"}}) {
    absl::StatusOr<json> bad = YamlToJson(absl::StrCat("spec:\n  x: ", value, "\n"));
    ASSERT_FALSE(bad.ok()) << value << " read as " << *bad;
    EXPECT_THAT(bad.status().message(), HasSubstr("at .spec.x: ")) << value;
    EXPECT_THAT(bad.status().message(), HasSubstr(says)) << value;
  }
}

// Mapping keys as sigs.k8s.io/yaml makes them JSON keys: resolved as values are, then
// written as Go writes them (a ConfigMap's `on:` key is "true" under kubectl, Argo CD and
// Flux alike); a null key or one past int64 is refused.
TEST(ConvertTest, KeysReadAsKubectlReadsThem) {
  absl::StatusOr<json> j = YamlToJson(
      "on: a\nOff: b\n0x10: c\n0644: d\n1_000: e\n1.0: f\n1.5: g\n'on': h\n!!str yes: i\n"
      "1e6: j\n0.1: k\n.inf: l\n2001-12-14: m\n+5: nv\n3.14159265358979: o\n100000: p\n"
      "1234567.0: q\n123456.0: r\n0.00001: s\n0.0001: t\n-2.5: u\nplain: v\n");
  ASSERT_TRUE(j.ok()) << j.status();
  const std::map<std::string, std::string> want = {
      {"true", "a"},         {"false", "b"},  {"16", "c"},        {"420", "d"},
      {"1000", "e"},         {"1", "f"},      {"1.5", "g"},       {"on", "h"},
      {"yes", "i"},          {"1e+06", "j"},  {"0.1", "k"},       {".inf", "l"},
      {"2001-12-14", "m"},   {"5", "nv"},     {"3.1415927", "o"}, {"100000", "p"},
      {"1.234567e+06", "q"}, {"123456", "r"}, {"1e-05", "s"},     {"0.0001", "t"},
      {"-2.5", "u"},         {"plain", "v"}};
  EXPECT_EQ(*j, json(want));

  for (const auto& [key, says] :
       std::vector<std::pair<std::string, std::string>>{{"~", "null"},
                                                        {"null", "null"},
                                                        {"18446744073709551615", "past int64"},
                                                        {"!!int abc", "tagged !!int"}}) {
    absl::StatusOr<json> bad = YamlToJson(absl::StrCat("data:\n  ", key, ": x\n"));
    ASSERT_FALSE(bad.ok()) << key << " read as " << *bad;
    EXPECT_THAT(bad.status().message(), HasSubstr(says)) << key;
    EXPECT_THAT(bad.status().message(), HasSubstr("at .data")) << key;
  }
}

TEST(ConvertTest, BadYamlIsAnError) { EXPECT_FALSE(YamlToJson("a: [1, 2").ok()); }

// JSON has no infinities or NaN: kubectl fails on them, and so does the agent, saying where.
// Quoted, they are strings.
TEST(ConvertTest, InfinitiesAndNaNAreRefusedSayingWhere) {
  for (const char* word : {".inf", "-.Inf", "+.INF", ".nan", ".NaN"}) {
    absl::StatusOr<json> j =
        YamlToJson(absl::StrCat("spec:\n  ports:\n  - 1\n  - weight: ", word, "\n"));
    ASSERT_FALSE(j.ok()) << word;
    EXPECT_THAT(j.status().message(), HasSubstr("at .spec.ports[1].weight: "));
    EXPECT_THAT(j.status().message(), HasSubstr("JSON cannot carry"));
  }
  absl::StatusOr<json> quoted = YamlToJson("a: \".inf\"\nb: inf\nc: .infinity\n");
  ASSERT_TRUE(quoted.ok()) << quoted.status();
  EXPECT_EQ((*quoted)["a"], ".inf");
  EXPECT_EQ((*quoted)["b"], "inf");
  EXPECT_EQ((*quoted)["c"], ".infinity");
}

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
