#include "controlplane/render/fleet_rollout.h"

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

absl::StatusOr<FleetRollout> Read(const std::string& yaml) {
  return ReadFleetRollout(YAML::Load(yaml)["rolloutStrategy"]);
}

TEST(FleetRolloutTest, NoStrategyDeclaresNothing) {
  for (const char* yaml : {"namespace: web\n", "rolloutStrategy:\n", "rolloutStrategy: null\n"}) {
    absl::StatusOr<FleetRollout> read = Read(yaml);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_FALSE(read->declared) << yaml;
    EXPECT_THAT(read->partitions, IsEmpty());
  }
}

// Fleet's example: staging, then production, each by labels; a partition's own
// maxUnavailable over the strategy's, counts and percentages as Kubernetes' IntOrString.
TEST(FleetRolloutTest, PartitionsAreReadInOrderWithTheirOwnLimits) {
  absl::StatusOr<FleetRollout> read = Read(
      "rolloutStrategy:\n"
      "  maxUnavailable: 10%\n"
      "  maxUnavailablePartitions: 0\n"
      "  partitions:\n"
      "  - name: staging\n"
      "    maxUnavailable: \"1\"\n"
      "    clusterSelector:\n"
      "      matchLabels: {env: staging}\n"
      "  - name: canary\n"
      "    clusterName: prod-eu-1\n"
      "    maxUnavailable: 0\n"
      "  - name: production\n"
      "    clusterSelector:\n"
      "      matchExpressions:\n"
      "      - {key: env, operator: In, values: [prod, production]}\n"
      "    maxUnavailable: 250%\n");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->declared);
  EXPECT_EQ(read->max_unavailable, "10%");
  ASSERT_EQ(read->partitions.size(), 3u);
  EXPECT_EQ(read->partitions[0].name, "staging");
  EXPECT_EQ(read->partitions[0].selector, "env=staging");
  EXPECT_EQ(read->partitions[0].max_unavailable, "1");
  EXPECT_EQ(read->partitions[1].selector, "");
  EXPECT_EQ(read->partitions[1].cluster_name, "prod-eu-1");
  EXPECT_EQ(read->partitions[1].max_unavailable, "0");
  EXPECT_EQ(read->partitions[2].selector, "env in (prod,production)");
  EXPECT_EQ(read->partitions[2].max_unavailable, "100%");
  EXPECT_EQ(read->auto_partition_size, "") << "given partitions, Fleet cuts no others";
  EXPECT_THAT(read->notes, IsEmpty());
}

// Where gitfleet's reading differs from Fleet's, the notes say so: an unset maxUnavailable
// waits (Fleet's 100% does not), and maxUnavailablePartitions 0% is none (Fleet's 1).
TEST(FleetRolloutTest, WhatIsReadOtherwiseThanFleetIsNoted) {
  absl::StatusOr<FleetRollout> read = Read(
      "rolloutStrategy:\n"
      "  maxUnavailablePartitions: 0%\n"
      "  autoPartitionSize: 10%\n"
      "  partitions:\n"
      "  - name: nothing\n"
      "  - clusterSelector: {matchLabels: {env: dev}}\n");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->partitions.size(), 1u) << "a partition that matches nothing holds none";
  EXPECT_EQ(read->partitions[0].selector, "env=dev");
  EXPECT_THAT(read->notes,
              ElementsAre(HasSubstr("maxUnavailablePartitions is 0%: gitfleet goes on to a "
                                    "partition only once the one before is ready"),
                          HasSubstr("partitions[0] (nothing) sets no clusterSelector"),
                          HasSubstr("maxUnavailable is unset: gitfleet waits for every cluster"),
                          HasSubstr("autoPartitionSize is not read where partitions are given")));
}

// maxUnavailablePartitions is read as written: a count or a percentage of the partitions.
TEST(FleetRolloutTest, MaxUnavailablePartitionsIsRead) {
  for (const auto& [text, read_as] : std::vector<std::pair<std::string, std::string>>{
           {"1", "1"}, {"\"25%\"", "25%"}, {"0", ""}, {"0%", ""}}) {
    absl::StatusOr<FleetRollout> read =
        Read(absl::StrCat("rolloutStrategy:\n  maxUnavailablePartitions: ", text,
                          "\n  partitions:\n  - clusterSelector: {matchLabels: {env: dev}}\n"));
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->max_unavailable_partitions, read_as) << text;
  }
  EXPECT_FALSE(Read("rolloutStrategy: {maxUnavailablePartitions: many}\n").ok());
}

// Without partitions Fleet cuts by autoPartitionSize (25% unless set; 0 turns it off).
TEST(FleetRolloutTest, WithoutPartitionsTheClustersAreCutBySize) {
  absl::StatusOr<FleetRollout> read = Read("rolloutStrategy: {maxUnavailable: 2}\n");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->auto_partition_size, "25%");
  EXPECT_EQ(read->max_unavailable, "2");
  EXPECT_THAT(read->notes, IsEmpty());
  read = Read("rolloutStrategy: {autoPartitionSize: 50, maxUnavailable: 0}\n");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->auto_partition_size, "50");
  read = Read("rolloutStrategy: {autoPartitionSize: 0, maxUnavailable: 0%}\n");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->auto_partition_size, "");
  EXPECT_EQ(read->max_unavailable, "0%");
}

// What Fleet would refuse, and what gitfleet cannot follow, fail naming the field.
// Partitions by Fleet's cluster groups (--cluster-groups): a group's name, a selector of
// groups by their labels, or both, beside the clusters' own criteria.
TEST(FleetRolloutTest, PartitionsByClusterGroupAreRead) {
  absl::StatusOr<FleetRollout> read = Read(
      "rolloutStrategy:\n"
      "  partitions:\n"
      "  - name: canary\n"
      "    clusterGroup: canary\n"
      "  - name: eu-prod\n"
      "    clusterSelector: {matchLabels: {env: prod}}\n"
      "    clusterGroupSelector: {matchLabels: {region: eu}}\n"
      "  - name: any-group\n"
      "    clusterGroupSelector: {}\n");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->partitions.size(), 3u);
  EXPECT_EQ(read->partitions[0].group, "canary");
  EXPECT_FALSE(read->partitions[0].has_group_selector);
  EXPECT_EQ(read->partitions[1].selector, "env=prod");
  EXPECT_TRUE(read->partitions[1].has_group_selector);
  EXPECT_EQ(read->partitions[1].group_selector, "region=eu");
  EXPECT_TRUE(read->partitions[2].has_group_selector);
  EXPECT_EQ(read->partitions[2].group_selector, "") << "every group";
  EXPECT_THAT(read->notes, ::testing::Not(::testing::Contains(HasSubstr("holds no cluster"))));
}

TEST(FleetRolloutTest, WhatCannotBeFollowedIsRefusedNamingTheField) {
  struct Case {
    const char* yaml;
    const char* error;
  } cases[] = {
      {"rolloutStrategy: [a]\n", "rolloutStrategy is not a mapping"},
      {"rolloutStrategy: {maxUnavailable: ten}\n",
       "rolloutStrategy.maxUnavailable is \"ten\": want a count of clusters (2) or a whole "
       "percentage"},
      {"rolloutStrategy: {maxUnavailable: 12.5%}\n", "is \"12.5%\""},
      {"rolloutStrategy: {maxUnavailable: -1}\n", "is \"-1\""},
      {"rolloutStrategy: {maxUnavailable: {a: 1}}\n", "is not a scalar"},
      {"rolloutStrategy: {autoPartitionSize: x}\n", "rolloutStrategy.autoPartitionSize is"},
      {"rolloutStrategy: {partitions: {a: 1}}\n", "rolloutStrategy.partitions is not a list"},
      {"rolloutStrategy: {partitions: [x]}\n", "rolloutStrategy.partitions[0] is not a mapping"},
      {"rolloutStrategy:\n  partitions:\n  - name: eu\n    clusterGroup: [europe]\n",
       "rolloutStrategy.partitions[0] (eu): its clusterGroup is not a group's name"},
      {"rolloutStrategy:\n  partitions:\n  - clusterGroupSelector:\n      matchExpressions:\n"
       "      - {key: a, operator: Gt, values: ['1']}\n",
       "partitions[0]: its clusterGroupSelector is not one gitfleet reads"},
      {"rolloutStrategy:\n  partitions:\n  - clusterSelector:\n      matchExpressions:\n"
       "      - {key: a, operator: Gt, values: ['1']}\n",
       "its clusterSelector is not one gitfleet reads"},
      {"rolloutStrategy:\n  partitions:\n  - clusterSelector: {matchLabels: {'a b': c}}\n",
       "its clusterSelector: selector"},
      {"rolloutStrategy:\n  partitions:\n  - {name: x, clusterName: [a]}\n",
       "partitions[0] (x): its clusterName is not a cluster's name"},
      {"rolloutStrategy:\n  partitions:\n  - {clusterName: a, maxUnavailable: lots}\n",
       "rolloutStrategy.partitions[0].maxUnavailable is \"lots\""},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Read(c.yaml).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.error)))
        << c.yaml;
  }
  std::string many = "rolloutStrategy:\n  partitions:\n";
  for (int i = 0; i <= 100; ++i) absl::StrAppend(&many, "  - clusterName: c", i, "\n");
  EXPECT_THAT(Read(many).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 100 are read")));
}

}  // namespace
}  // namespace gitfleet
