#include "common/model/label_selector.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

bool Match(const std::string& selector, const LabelMap& labels) {
  auto s = LabelSelector::Parse(selector);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() && s->Matches(labels);
}

TEST(LabelSelectorTest, MatchesEveryOperator) {
  LabelMap prod_web = {{"env", "prod"}, {"tier", "web"}};
  LabelMap prod_canary = {{"env", "prod"}, {"tier", "api"}, {"canary", "true"}};
  EXPECT_TRUE(Match("", prod_web));
  EXPECT_TRUE(Match("env=prod", prod_web));
  EXPECT_TRUE(Match("env==prod", prod_web));
  EXPECT_FALSE(Match("env!=prod", prod_web));
  EXPECT_TRUE(Match("env!=dev", {}));
  EXPECT_TRUE(Match("env=prod,tier in (web,api),!canary", prod_web));
  EXPECT_FALSE(Match("env=prod,tier in (web,api),!canary", prod_canary));
  EXPECT_TRUE(Match("canary", prod_canary));
  EXPECT_FALSE(Match("canary", prod_web));
  EXPECT_TRUE(Match("tier notin (db, cache)", prod_web));
  EXPECT_FALSE(Match("tier notin (web)", prod_web));
  EXPECT_TRUE(Match("example.com/team = a", {{"example.com/team", "a"}}));
  auto keys = LabelSelector::Parse("env=prod,tier in (web,api),!canary,env!=dev");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->Keys(), (std::set<std::string>{"canary", "env", "tier"}));
  EXPECT_TRUE(LabelSelector::Parse("")->Keys().empty());
}

TEST(LabelSelectorTest, RejectsMalformedSelectorsNamingThePart) {
  for (const char* bad : {"env=prod,", "tier in (web", "tier within (a)", "a b", "bad key=1",
                          "env=has space", "tier in ()"}) {
    auto s = LabelSelector::Parse(bad);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("selector")) << bad;
  }
}

TEST(ParseLabelsTest, ParsesAndValidates) {
  auto labels = ParseLabels("env=prod, region=eu");
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(labels->at("region"), "eu");
  EXPECT_TRUE(ParseLabels("")->empty());
  EXPECT_THAT(std::string(ParseLabels("env").status().message()),
              HasSubstr("\"env\" is not key=value"));
  EXPECT_THAT(std::string(ParseLabels("env=a,env=b").status().message()), HasSubstr("given twice"));
  EXPECT_FALSE(ParseLabels("env=a b").ok());
}

TEST(ValidateLabelsTest, SameRulesForAMap) {
  EXPECT_TRUE(ValidateLabels({{"env", "prod"}, {"example.com/tier", "web"}, {"empty", ""}}).ok());
  EXPECT_THAT(std::string(ValidateLabels({{"env", "a,b"}}).message()),
              HasSubstr("label value \"a,b\" of env is invalid"));
  EXPECT_FALSE(ValidateLabels({{"", "x"}}).ok());
  EXPECT_FALSE(ValidateLabels({{"bad key", "x"}}).ok());
  LabelMap many;
  for (int i = 0; i < 65; ++i) many["k" + std::to_string(i)] = "v";
  EXPECT_THAT(std::string(ValidateLabels(many).message()), HasSubstr("at most 64"));
}

}  // namespace
}  // namespace gitfleet
