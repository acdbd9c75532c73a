#include "common/model/cluster_group.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ClusterGroup Group(const std::string& name, const LabelMap& labels,
                   std::optional<std::string> selector) {
  ClusterGroup group{name, labels, std::nullopt};
  if (selector.has_value()) group.selector = *LabelSelector::Parse(*selector);
  return group;
}

TEST(ClusterGroupTest, AClusterIsInTheGroupsWhoseSelectorMatchesItsLabels) {
  const std::vector<ClusterGroup> groups = {
      Group("all", {}, ""), Group("eu-prod", {{"tier", "prod"}}, "env=prod,region=eu"),
      Group("none", {}, std::nullopt), Group("prod", {{"tier", "prod"}, {"x", "1"}}, "env=prod")};
  auto names = [&](const LabelMap& labels) {
    std::vector<std::string> out;
    for (const ClusterGroupMembership& group : GroupsMatching(groups, labels)) {
      out.push_back(group.name);
    }
    return out;
  };
  EXPECT_THAT(names({{"env", "prod"}, {"region", "eu"}}), ElementsAre("all", "eu-prod", "prod"));
  EXPECT_THAT(names({{"env", "dev"}}), ElementsAre("all")) << "no selector: no cluster";
}

TEST(ClusterGroupTest, MembershipsReadBackAsWritten) {
  const std::vector<ClusterGroupMembership> groups = {
      {"eu-prod", {{"tier", "prod"}, {"example.com/team", "a.b-c_d"}}}, {"bare", {}}};
  const std::string text = EncodeGroupMemberships(groups);
  EXPECT_EQ(text, "eu-prod\texample.com/team=a.b-c_d,tier=prod\nbare\t\n");
  absl::StatusOr<std::vector<ClusterGroupMembership>> back = DecodeGroupMemberships(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, groups);
  EXPECT_TRUE(DecodeGroupMemberships("")->empty());
  EXPECT_THAT(DecodeGroupMemberships("no-tab\n").status().message(), HasSubstr("no-tab"));
  EXPECT_THAT(DecodeGroupMemberships("g\tnot-a-label\n").status().message(),
              HasSubstr("not a label"));
}

}  // namespace
}  // namespace gitfleet
