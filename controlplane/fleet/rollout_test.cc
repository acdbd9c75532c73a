#include "controlplane/fleet/rollout.h"

#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/model/cluster_group.h"
#include "common/proto_time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::pair<std::string, LabelMap> Cluster(const std::string& name, const std::string& env) {
  return {name, {{"env", env}}};
}

std::vector<std::pair<std::string, LabelMap>> Fleet() {
  return {Cluster("p3", "prod"),    Cluster("d1", "dev"),  Cluster("p1", "prod"),
          Cluster("s1", "staging"), Cluster("p2", "prod"), Cluster("x1", "lab")};
}

TEST(RolloutTest, SelectorsThenTheRestBySize) {
  v1::RolloutStrategy strategy;
  strategy.add_partitions("env=dev");
  strategy.add_partitions("env in (staging,dev)");
  strategy.set_partition_size("2");
  ASSERT_TRUE(ValidateRolloutStrategy(strategy).ok());
  std::vector<Partition> partitions = CutPartitions(strategy, Fleet());
  ASSERT_EQ(partitions.size(), 4u);
  EXPECT_THAT(partitions[0].clusters, ElementsAre("d1"));
  EXPECT_THAT(partitions[1].clusters, ElementsAre("s1")) << "d1 was taken by the first";
  EXPECT_THAT(partitions[2].clusters, ElementsAre("p1", "p2"));
  EXPECT_THAT(partitions[3].clusters, ElementsAre("p3", "x1"));

  // Percentages round up for sizes; without a size the rest is one last partition.
  strategy.set_partition_size("50%");
  EXPECT_EQ(CutPartitions(strategy, Fleet()).size(), 4u);  // 4 left: 2 + 2
  strategy.clear_partition_size();
  partitions = CutPartitions(strategy, Fleet());
  ASSERT_EQ(partitions.size(), 3u);
  EXPECT_THAT(partitions[2].clusters, ElementsAre("p1", "p2", "p3", "x1"));
}

// A fleet.yaml's partitions: a name shown, a cluster named rather than selected, a
// selector that takes every cluster left, and a limit of their own; Fleet's cut by size
// only from 200 clusters on.
TEST(RolloutTest, AFleetYamlsPartitionsAreCutAsFleetDeclaresThem) {
  FleetRollout read;
  read.declared = true;
  read.max_unavailable = "1";
  read.partitions = {{"canary", "", "p2", "0"},
                     {"dev", "env=dev", "", ""},
                     {"rest-of-prod", "env=prod", "", "50%"},
                     {"everything", "", "", ""}};
  const v1::RolloutStrategy strategy = FleetRolloutStrategy(read, "apps/web/fleet.yaml");
  EXPECT_TRUE(Progressive(strategy));
  EXPECT_EQ(strategy.declared_in(), "apps/web/fleet.yaml");
  std::vector<Partition> partitions = CutPartitions(strategy, Fleet());
  ASSERT_EQ(partitions.size(), 4u);
  EXPECT_EQ(partitions[0].name, "canary");
  EXPECT_THAT(partitions[0].clusters, ElementsAre("p2")) << "by name alone";
  EXPECT_THAT(partitions[1].clusters, ElementsAre("d1"));
  EXPECT_THAT(partitions[2].clusters, ElementsAre("p1", "p3"));
  EXPECT_THAT(partitions[3].clusters, ElementsAre("s1", "x1"));
  EXPECT_EQ(AllowedUnavailable(strategy, partitions[0], 1), 0) << "its own 0";
  EXPECT_EQ(AllowedUnavailable(strategy, partitions[1], 1), 1) << "the strategy's";
  EXPECT_EQ(AllowedUnavailable(strategy, partitions[2], 2), 1) << "its own 50%";
  EXPECT_EQ(DescribeRolloutStrategy(strategy),
            "1 canary (cluster p2, none may be not ready, given to 1 at a time), 2 dev "
            "(env=dev, 1 may be not ready, given to 1 at a time), 3 rest-of-prod (env=prod, "
            "50% may be not ready, given to 50% at a time), 4 everything (every cluster left, "
            "1 may be not ready, given to 1 at a time), then the clusters left (1 may be not "
            "ready, given to 1 at a time)");
  // Kept as they are when the fleet changes.
  std::vector<Partition> adjusted = AdjustPartitions(partitions, 0, Fleet());
  EXPECT_EQ(adjusted, partitions);
  EXPECT_EQ(adjusted[2].max_unavailable, "50%");

  // A name and a selector must both hold.
  read.partitions = {{"only-if-prod", "env=prod", "d1", ""}};
  partitions = CutPartitions(FleetRolloutStrategy(read, "fleet.yaml"), Fleet());
  ASSERT_EQ(partitions.size(), 1u) << "d1 is no prod cluster: all are left over";
  EXPECT_EQ(partitions[0].name, "");

  // No partitions: one until 200 clusters, then autoPartitionSize's.
  read.partitions.clear();
  read.auto_partition_size = "25%";
  const v1::RolloutStrategy automatic = FleetRolloutStrategy(read, "fleet.yaml");
  EXPECT_EQ(DescribeRolloutStrategy(automatic),
            "the clusters in partitions of 25% from 200 clusters on (fewer: one), 1 may be not "
            "ready, given to 1 at a time");
  EXPECT_EQ(CutPartitions(automatic, Fleet()).size(), 1u);
  std::vector<std::pair<std::string, LabelMap>> many;
  for (int i = 0; i < 200; ++i) many.push_back(Cluster(absl::StrCat("c", 1000 + i), "prod"));
  partitions = CutPartitions(automatic, many);
  ASSERT_EQ(partitions.size(), 4u);
  EXPECT_EQ(partitions[0].clusters.size(), 50u);
  many.pop_back();
  EXPECT_EQ(CutPartitions(automatic, many).size(), 1u);

  // None declared, or one that turns the cut off and bounds nothing: everything at once.
  EXPECT_FALSE(Progressive(FleetRolloutStrategy(FleetRollout{}, "fleet.yaml")));
  read.auto_partition_size.clear();
  const v1::RolloutStrategy one = FleetRolloutStrategy(read, "fleet.yaml");
  EXPECT_TRUE(Progressive(one)) << "maxUnavailable 1: one partition, paced";
  EXPECT_TRUE(one.paced());
  EXPECT_EQ(CutPartitions(one, many).size(), 1u);
  read.max_unavailable = "100%";
  EXPECT_FALSE(Progressive(FleetRolloutStrategy(read, "fleet.yaml")));
  read.max_unavailable.clear();
  EXPECT_FALSE(Progressive(FleetRolloutStrategy(read, "fleet.yaml")));
}

// Fleet's partitions by cluster group: a cluster's groups (carried beside its labels, as
// the controller hands them over) decide; one of its groups must be both the one named and
// one the group selector matches.
TEST(RolloutTest, AFleetYamlsPartitionsByClusterGroupTakeTheGroupsClusters) {
  const ClusterGroupMembership canary{"canary", {{"stage", "first"}}};
  const ClusterGroupMembership eu{"eu", {{"region", "eu"}}};
  std::vector<std::pair<std::string, LabelMap>> fleet = Fleet();
  for (auto& [name, labels] : fleet) {
    if (name == "s1" || name == "d1") AddGroupEntries({canary}, &labels);
    if (name == "p1" || name == "p3") AddGroupEntries({eu}, &labels);
    if (name == "d1") AddGroupEntries({eu}, &labels);
  }
  FleetRollout read;
  read.declared = true;
  FleetRollout::Partition first{"first", "", "", ""};
  first.has_group_selector = true;
  first.group_selector = "stage=first";
  FleetRollout::Partition europe{"europe", "env=prod", "", ""};
  europe.group = "eu";
  FleetRollout::Partition both{"eu-and-first", "", "", ""};
  both.group = "eu";
  both.has_group_selector = true;
  both.group_selector = "stage=first";
  read.partitions = {first, europe};
  const v1::RolloutStrategy strategy = FleetRolloutStrategy(read, "fleet.yaml");
  std::vector<Partition> partitions = CutPartitions(strategy, fleet);
  ASSERT_EQ(partitions.size(), 3u);
  EXPECT_THAT(partitions[0].clusters, ElementsAre("d1", "s1"));
  EXPECT_THAT(partitions[1].clusters, ElementsAre("p1", "p3")) << "eu and env=prod";
  EXPECT_THAT(partitions[2].clusters, ElementsAre("p2", "x1"));
  EXPECT_EQ(DescribeRolloutStrategy(strategy),
            "1 first (cluster groups stage=first, none may be not ready), 2 europe (env=prod, "
            "cluster group eu, none may be not ready), then the clusters left (none may be not "
            "ready)");
  // d1 is in eu and in canary (stage=first), but no one group is both.
  read.partitions = {both};
  partitions = CutPartitions(FleetRolloutStrategy(read, "fleet.yaml"), fleet);
  ASSERT_EQ(partitions.size(), 1u);
  EXPECT_EQ(partitions[0].name, "") << "no cluster is in such a group: all are left over";
  // Without groups (no --cluster-groups), nobody is in one.
  read.partitions = {europe};
  partitions = CutPartitions(FleetRolloutStrategy(read, "fleet.yaml"), Fleet());
  ASSERT_EQ(partitions.size(), 1u);
  EXPECT_EQ(partitions[0].name, "");
}

TEST(RolloutTest, AFleetChangeMovesNoClusterToAnEarlierPartition) {
  v1::RolloutStrategy strategy;
  strategy.add_partitions("env=dev");
  strategy.set_partition_size("2");
  const std::vector<Partition> cut = CutPartitions(strategy, Fleet());
  ASSERT_EQ(cut.size(), 4u);  // d1 | p1 p2 | p3 s1 | x1

  // d1 and p1 leave (no longer targeted); a0 (dev, as the first selector asks) and z9
  // join. Cut from scratch, a0 would take partition 1 and x1 would move up to partition 3.
  std::vector<std::pair<std::string, LabelMap>> now = {
      Cluster("p3", "prod"),    Cluster("z9", "prod"), Cluster("p2", "prod"),
      Cluster("s1", "staging"), Cluster("x1", "lab"),  Cluster("a0", "dev")};
  std::vector<Partition> adjusted = AdjustPartitions(cut, /*current=*/1, now);
  ASSERT_EQ(adjusted.size(), 4u) << "every partition keeps its place";
  EXPECT_EQ(adjusted[0].selector, "env=dev");
  EXPECT_THAT(adjusted[0].clusters, ElementsAre()) << "left empty: it passes at once";
  EXPECT_THAT(adjusted[1].clusters, ElementsAre("p2"));
  EXPECT_THAT(adjusted[2].clusters, ElementsAre("p3", "s1"));
  EXPECT_THAT(adjusted[3].clusters, ElementsAre("x1", "a0", "z9")) << "joiners go last";
  EXPECT_THAT(AdjustPartitions(adjusted, 1, now)[3].clusters, ElementsAre("x1", "a0", "z9"))
      << "the same fleet again changes nothing";

  // At the last partition, joiners wait in a new one; once done, they join the last.
  now.push_back(Cluster("y5", "prod"));
  adjusted = AdjustPartitions(adjusted, /*current=*/3, now);
  ASSERT_EQ(adjusted.size(), 5u);
  EXPECT_THAT(adjusted[3].clusters, ElementsAre("x1", "a0", "z9")) << "it has started";
  EXPECT_THAT(adjusted[4].clusters, ElementsAre("y5"));
  now.push_back(Cluster("b2", "prod"));
  EXPECT_THAT(AdjustPartitions(adjusted, /*current=*/5, now)[4].clusters, ElementsAre("y5", "b2"));

  // A rollout that had no cluster to cut gets one last partition of its joiners.
  adjusted = AdjustPartitions({}, 0, {Cluster("b", "prod"), Cluster("a", "prod")});
  ASSERT_EQ(adjusted.size(), 1u);
  EXPECT_THAT(adjusted[0].clusters, ElementsAre("a", "b"));
}

TEST(PruneGuardTest, HoldsWhatDeletesMoreThanAllowed) {
  // The default: more than half, and at least 10.
  EXPECT_EQ(PruneHeld("", 9, 10), "") << "under the floor";
  EXPECT_THAT(PruneHeld("", 11, 12), HasSubstr("would delete 11 of the 12 objects"));
  EXPECT_EQ(PruneHeld("", 10, 20), "") << "half is not more than half";
  EXPECT_THAT(PruneHeld("", 11, 20), HasSubstr("more than half, the default"));
  EXPECT_EQ(PruneHeld("", 0, 0), "");
  // A count, a percentage, or never.
  EXPECT_EQ(PruneHeld("5", 5, 100), "");
  EXPECT_THAT(PruneHeld("5", 6, 100), HasSubstr("(more than 5)"));
  EXPECT_EQ(PruneHeld("0", 0, 3), "");
  EXPECT_THAT(PruneHeld("0", 1, 3), HasSubstr("would delete 1 of the 3"));
  EXPECT_EQ(PruneHeld("25%", 1, 4), "");
  EXPECT_THAT(PruneHeld("25%", 2, 4), HasSubstr("(more than 25%)"));
  EXPECT_EQ(PruneHeld("all", 1000, 1000), "");
  for (const char* bad : {"-1", "101%", "half", "5 %", "1e3", "9999999999"}) {
    EXPECT_THAT(ValidateMaxPrune(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max-prune=")))
        << bad;
  }
  for (const char* good : {"", "all", "0", "20", "0%", "100%"}) {
    EXPECT_TRUE(ValidateMaxPrune(good).ok()) << good;
  }
}

// Across one repository's bundles, and cluster by cluster: more than half, at least the
// floor, and only for a bundle that drops some.
TEST(PruneGuardTest, TheRepositorysCountsHoldMoreThanHalfAndAtLeastTheFloor) {
  EXPECT_EQ(StreamPruneHeld(10, 20, 3, 4, "source app"), "") << "half is not more than half";
  EXPECT_EQ(StreamPruneHeld(9, 9, 3, 4, "source app"), "") << "under the floor";
  EXPECT_EQ(StreamPruneHeld(11, 20, 0, 4, "source app"), "") << "drops none itself";
  EXPECT_THAT(StreamPruneHeld(11, 20, 3, 4, "source app"),
              HasSubstr("would delete 11 of the 20 objects the bundles of source app run (more "
                        "than half, the default), across 4 bundles, 3 of them this bundle's"));
  EXPECT_EQ(ClusterPruneHeld("c1", 0, 10, 20, 3, 4, "source app"), "");
  EXPECT_EQ(ClusterPruneHeld("c1", 0, 9, 9, 3, 4, "source app"), "");
  EXPECT_EQ(ClusterPruneHeld("c1", 0, 11, 20, 0, 4, "source app"), "");
  EXPECT_THAT(ClusterPruneHeld("c1", 0, 11, 20, 3, 4, "source app"),
              HasSubstr("would delete 11 of the 20 objects the bundles of source app run on "
                        "cluster c1 (more than half"));
  EXPECT_THAT(ClusterPruneHeld("c1", 5, 11, 20, 3, 4, "source app"),
              HasSubstr("run on cluster c1 (and 5 more alike) (more than half"));
}

TEST(RolloutTest, BadStrategiesNameTheFlag) {
  v1::RolloutStrategy strategy;
  strategy.add_partitions("env in prod");
  EXPECT_THAT(ValidateRolloutStrategy(strategy),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--partition=env in prod")));
  strategy.Clear();
  strategy.add_partitions("env=canary");
  strategy.add_partitions("env=prod");
  strategy.add_partitions(" env=canary");
  EXPECT_THAT(ValidateRolloutStrategy(strategy),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--partition= env=canary is given twice")));
  strategy.Clear();
  strategy.set_partition_size("0");
  EXPECT_THAT(ValidateRolloutStrategy(strategy),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--partition-size must be")));
  strategy.set_partition_size("lots");
  EXPECT_THAT(ValidateRolloutStrategy(strategy),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--partition-size=lots")));
  strategy.set_partition_size("120%");
  EXPECT_FALSE(ValidateRolloutStrategy(strategy).ok());
  strategy.set_partition_size("10");
  strategy.set_max_unavailable("-1");
  EXPECT_THAT(ValidateRolloutStrategy(strategy),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max-unavailable=-1")));
  strategy.Clear();
  strategy.set_max_unavailable("1");
  EXPECT_THAT(ValidateRolloutStrategy(strategy),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("need partitions")));
}

class AdvanceTest : public ::testing::Test {
 protected:
  AdvanceTest() {
    strategy_.set_partition_size("2");
    strategy_.set_progress_deadline_seconds(60);
    partitions_ = CutPartitions(strategy_, {Cluster("a", "x"), Cluster("b", "x"), Cluster("c", "x"),
                                            Cluster("d", "x"), Cluster("e", "x")});
    *record_.mutable_partition_started() = ToProtoTime(now_);
  }
  RolloutStep Advance() {
    return AdvanceRollout(record_, partitions_, strategy_, now_, [this](const Partition& p) {
      PartitionProgress out;
      out.total = static_cast<int>(p.clusters.size());
      for (const std::string& name : p.clusters) {
        v1::RolloutCluster c;
        c.set_name(name);
        const std::string& state = state_[name];
        if (state == "ready") continue;
        c.set_failed(state == "failed");
        c.set_detail(state.empty() ? "no report for this revision" : state);
        ++out.not_ready;
        // Not ready on the older revision it runs; suspended for maintenance.
        if (state == "down") out.down.push_back(name);
        if (state == "suspended") out.suspended.push_back(name);
        if (c.failed()) {
          ++out.failed;
          if (!out.first_failed) out.first_failed = c;
        } else if (!out.first_waiting) {
          out.first_waiting = c;
        }
      }
      return out;
    });
  }
  std::shared_ptr<const std::vector<Partition>> Cut() const {
    return std::make_shared<const std::vector<Partition>>(partitions_);
  }
  // Which of the fleet's clusters (and one never seen) `gate` allows.
  static std::vector<std::string> Allowed(const std::shared_ptr<const ClusterGate>& gate) {
    std::vector<std::string> out;
    for (const char* name : {"a", "b", "c", "d", "e", "unknown"}) {
      if (gate->Allows(name)) out.push_back(name);
    }
    return out;
  }
  v1::RolloutStrategy strategy_;
  std::vector<Partition> partitions_;
  v1::RolloutRecord record_;
  absl::Time now_ = absl::FromUnixSeconds(1000000);
  std::map<std::string, std::string> state_;
};

TEST_F(AdvanceTest, EachPartitionWaitsForTheOneBefore) {
  RolloutStep step = Advance();
  EXPECT_EQ(record_.partition(), 0);
  EXPECT_THAT(step.message, HasSubstr("partition 1/3: 0 of 2 clusters ready; waiting for a"));
  EXPECT_EQ(step.recheck, now_ + absl::Seconds(60));
  EXPECT_EQ(step.reports_needed, 2) << "two clusters to hear from";
  EXPECT_THAT(Allowed(GateOf(record_, Cut())), ElementsAre("a", "b"));

  state_["a"] = "ready";
  step = Advance();
  EXPECT_EQ(record_.partition(), 0) << "max-unavailable 0: every cluster";
  EXPECT_EQ(step.reports_needed, 1);
  state_["b"] = "ready";
  now_ += absl::Seconds(5);
  step = Advance();
  EXPECT_TRUE(step.changed);
  EXPECT_EQ(record_.partition(), 1);
  EXPECT_EQ(FromProtoTime(record_.partition_started()), now_);
  EXPECT_THAT(Allowed(GateOf(record_, Cut())), ElementsAre("a", "b", "c", "d"));

  // A partition's own limit goes before the strategy's.
  partitions_[1].max_unavailable = "2";
  partitions_[1].name = "canary";
  step = Advance();
  EXPECT_EQ(record_.partition(), 2) << "both of its two may be unavailable";
  record_.set_partition(1);
  partitions_[1].max_unavailable = "";
  step = Advance();
  EXPECT_EQ(record_.partition(), 1);
  EXPECT_THAT(step.message, HasSubstr("partition 2/3 (canary): 0 of 2 clusters ready"));

  // With 50% allowed unavailable, partition 2 passes on one ready cluster of two; the
  // last partition, of one, then needs its cluster (50% of 1 rounds down to none).
  strategy_.set_max_unavailable("50%");
  state_["c"] = "ready";
  Advance();
  EXPECT_EQ(record_.partition(), 2);
  state_["e"] = "ready";
  step = Advance();
  EXPECT_EQ(record_.partition(), 3);
  EXPECT_EQ(step.message, "");
  EXPECT_EQ(GateOf(record_, Cut()), nullptr) << "done: every cluster";
}

// --bake-time: a partition ready holds the next back until it stayed ready that long; a
// cluster not ready meanwhile starts the bake again once the partition is ready again (and
// gives the partition its deadline again); a failure pauses as ever; an operator's promote
// skips it; the last partition has none (there is no next to hold back).
TEST_F(AdvanceTest, AReadyPartitionBakesBeforeTheNextStarts) {
  strategy_.set_bake_seconds(600);
  strategy_.set_progress_deadline_seconds(120);
  state_["a"] = "ready";
  state_["b"] = "ready";
  RolloutStep step = Advance();
  EXPECT_EQ(record_.partition(), 0);
  EXPECT_TRUE(step.changed);
  EXPECT_EQ(FromProtoTime(record_.ready_since()), now_);
  EXPECT_THAT(
      step.message,
      HasSubstr(absl::StrCat(
          "partition 1/3: ready (2 of 2 clusters); baking 10m before "
          "partition 2, until ",
          absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now_ + absl::Minutes(10), absl::UTCTimeZone()))));
  const std::string baking = step.message;
  EXPECT_EQ(step.recheck, now_ + absl::Minutes(10));
  EXPECT_EQ(step.reports_needed, 1) << "any report may end the bake";
  EXPECT_THAT(Allowed(GateOf(record_, Cut())), ElementsAre("a", "b"));
  // Past the progress deadline while baking: ready, so not paused.
  now_ += absl::Minutes(4);
  step = Advance();
  EXPECT_FALSE(step.changed);
  EXPECT_FALSE(record_.halted());
  EXPECT_EQ(step.message, baking) << "the same from one look to the next";
  // A cluster not ready: the bake starts again once it is, with a fresh deadline.
  state_["b"] = "Progressing";
  step = Advance();
  EXPECT_TRUE(step.changed);
  EXPECT_FALSE(record_.has_ready_since());
  EXPECT_EQ(FromProtoTime(record_.partition_started()), now_);
  EXPECT_THAT(step.message, HasSubstr("the bake started again"));
  EXPECT_THAT(step.message, HasSubstr("waiting for b: Progressing"));
  now_ += absl::Minutes(1);
  state_["b"] = "ready";
  Advance();
  EXPECT_EQ(FromProtoTime(record_.ready_since()), now_);
  now_ += absl::Minutes(9) + absl::Seconds(59);
  Advance();
  EXPECT_EQ(record_.partition(), 0) << "a second short";
  now_ += absl::Seconds(1);
  step = Advance();
  EXPECT_EQ(record_.partition(), 1);
  EXPECT_FALSE(record_.has_ready_since());
  EXPECT_THAT(Allowed(GateOf(record_, Cut())), ElementsAre("a", "b", "c", "d"));
  // A failure while baking pauses, as one before it would.
  state_["c"] = "ready";
  state_["d"] = "ready";
  Advance();
  EXPECT_TRUE(record_.has_ready_since());
  state_["d"] = "failed";
  step = Advance();
  EXPECT_TRUE(record_.halted());
  EXPECT_THAT(step.message, HasSubstr("cluster d failed to apply"));
  // An operator's promote skips the bake.
  record_.set_halted(false);
  state_["d"] = "ready";
  Advance();
  EXPECT_EQ(record_.partition(), 1);
  record_.set_promoted(true);
  Advance();
  EXPECT_EQ(record_.partition(), 2);
  // The last partition: done once ready, no bake.
  state_["e"] = "ready";
  step = Advance();
  EXPECT_EQ(record_.partition(), 3);
  EXPECT_EQ(step.message, "");
  EXPECT_FALSE(record_.has_ready_since());

  EXPECT_THAT(DescribeRolloutStrategy(strategy_),
              HasSubstr("each ready for 10m before the next starts"));
  strategy_.set_bake_seconds(7 * 24 * 3600 + 1);
  EXPECT_THAT(ValidateRolloutStrategy(strategy_).message(), HasSubstr("--bake-time"));
}

// Fleet's maxUnavailablePartitions: the rollout goes on past a partition not ready while,
// with it, at most that many of the partitions reached are not ready; the next then waits
// (its deadline pauses it), and goes once an earlier one is ready. A failure pauses as ever;
// 0, or none, goes past none.
TEST_F(AdvanceTest, MaxUnavailablePartitionsGoesOnPastSomeNotReady) {
  strategy_.set_max_unavailable_partitions("1");
  RolloutStep step = Advance();
  EXPECT_EQ(record_.partition(), 1) << "partition 1 not ready: the one allowed";
  EXPECT_THAT(Allowed(GateOf(record_, Cut())), ElementsAre("a", "b", "c", "d"));
  EXPECT_THAT(step.message, HasSubstr("partition 2/3: 0 of 2 clusters ready"));
  EXPECT_EQ(step.reports_needed, 1) << "a report of partition 1 may let it go on";
  step = Advance();
  EXPECT_EQ(record_.partition(), 1) << "partitions 1 and 2 not ready: two";
  state_["a"] = "ready";
  state_["b"] = "ready";
  Advance();
  EXPECT_EQ(record_.partition(), 2) << "partition 1 ready: partition 2 is the one not ready";
  EXPECT_THAT(Allowed(GateOf(record_, Cut())), ElementsAre("a", "b", "c", "d", "e"));
  // Partition 3 waits while partition 2 is not ready, and its deadline pauses it.
  now_ += absl::Seconds(61);
  step = Advance();
  EXPECT_TRUE(record_.halted());
  EXPECT_THAT(step.message, HasSubstr("partition 3/3: paused: not ready within the progress"));
  // Resumed, partition 2 ready: the last one goes past (the rollout is through; its cluster
  // is waited for by whoever waits for the whole bundle).
  record_.set_halted(false);
  *record_.mutable_partition_started() = ToProtoTime(now_);
  state_["c"] = "ready";
  state_["d"] = "ready";
  step = Advance();
  EXPECT_EQ(record_.partition(), 3);

  // A failed cluster pauses the rollout however many partitions may be not ready.
  record_.Clear();
  *record_.mutable_partition_started() = ToProtoTime(now_);
  state_.clear();
  state_["a"] = "failed";
  step = Advance();
  EXPECT_EQ(record_.partition(), 0);
  EXPECT_TRUE(record_.halted());
  EXPECT_THAT(step.message, HasSubstr("cluster a failed to apply"));

  // None allowed: each partition waits.
  for (const char* none : {"0", ""}) {
    strategy_.set_max_unavailable_partitions(none);
    record_.Clear();
    *record_.mutable_partition_started() = ToProtoTime(now_);
    state_.clear();
    Advance();
    EXPECT_EQ(record_.partition(), 0) << none;
  }

  // Counted as Fleet counts: a percentage of the partitions, rounded down, at least one.
  v1::RolloutStrategy counted;
  EXPECT_EQ(AllowedUnavailablePartitions(counted, 10), 0);
  counted.set_max_unavailable_partitions("20%");
  EXPECT_EQ(AllowedUnavailablePartitions(counted, 10), 2);
  EXPECT_EQ(AllowedUnavailablePartitions(counted, 3), 1);
  counted.set_max_unavailable_partitions("0%");
  EXPECT_EQ(AllowedUnavailablePartitions(counted, 10), 0);
  counted.set_max_unavailable_partitions("3");
  EXPECT_EQ(AllowedUnavailablePartitions(counted, 10), 3);
  counted.set_max_unavailable_partitions("lots");
  counted.set_partition_size("2");
  EXPECT_THAT(ValidateRolloutStrategy(counted),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("maxUnavailablePartitions")));
}

// Fleet's pacing: a partition's clusters are given the revision no more at a time than may
// be not ready, in the cut's order, the next once one given it is ready; the deadline
// counts from the last one given it; the strategy's bound holds across the partitions
// reached so far.
TEST_F(AdvanceTest, APacedPartitionGivesItToNoMoreAtATimeThanMayBeNotReady) {
  strategy_.set_partition_size("100%");
  strategy_.set_paced(true);
  strategy_.set_max_unavailable("1");
  strategy_.set_declared_in("apps/web/fleet.yaml");  // Fleet's: the strategy's bound spans
  partitions_ = CutPartitions(strategy_, {Cluster("a", "x"), Cluster("b", "x"), Cluster("c", "x"),
                                          Cluster("d", "x"), Cluster("e", "x")});
  ASSERT_EQ(partitions_.size(), 1u);
  std::shared_ptr<const std::vector<Partition>> cut = Cut();
  RolloutStep step = Advance();
  EXPECT_TRUE(step.changed);
  EXPECT_EQ(record_.admitted(), 1);
  EXPECT_EQ(step.reports_needed, 1) << "any report may make room";
  EXPECT_THAT(step.message,
              HasSubstr("0 of 5 clusters ready (1 may be unavailable); given to 1 of 5 so far, "
                        "at most 1 not ready at a time; waiting for a"));
  std::shared_ptr<const ClusterGate> first = GateOf(record_, cut, nullptr, true);
  EXPECT_THAT(Allowed(first), ElementsAre("a"));
  step = Advance();
  EXPECT_FALSE(step.changed) << "a is not ready yet: nobody else";
  EXPECT_EQ(record_.admitted(), 1);

  state_["a"] = "ready";
  now_ += absl::Seconds(50);
  Advance();
  EXPECT_EQ(record_.admitted(), 2);
  std::shared_ptr<const ClusterGate> second = GateOf(record_, cut, first.get(), true);
  EXPECT_THAT(Allowed(second), ElementsAre("a", "b"));
  std::vector<std::string> added;
  ASSERT_TRUE(second->AddedTo(first.get(), &added));
  EXPECT_THAT(added, ElementsAre("b"));
  EXPECT_FALSE(second->SameAs(*first));
  // The deadline counts from b's turn, not from the partition's start 50 s ago.
  now_ += absl::Seconds(30);
  step = Advance();
  EXPECT_FALSE(record_.halted());
  EXPECT_EQ(step.recheck, now_ + absl::Seconds(30));
  now_ += absl::Seconds(30);
  Advance();
  EXPECT_TRUE(record_.halted()) << "b not ready within the deadline of its turn";
  EXPECT_THAT(record_.reason(), HasSubstr("waiting for b"));
  record_.set_halted(false);

  // Ready ones make room: c, then d; with 4 of 5 ready (1 may be unavailable) the
  // partition is through, and e gets it with the rest.
  for (const char* name : {"b", "c"}) {
    state_[name] = "ready";
    Advance();
  }
  EXPECT_EQ(record_.admitted(), 4) << "d's turn";
  state_["d"] = "ready";
  Advance();
  EXPECT_EQ(record_.partition(), 1);
  EXPECT_EQ(record_.admitted(), 0);
  EXPECT_EQ(GateOf(record_, cut, nullptr, true), nullptr);

  // Two partitions of 3, the first's own bound 1, the second's 2, the strategy's 2 across
  // both: the second gets room only as much as the first's unready leave.
  strategy_.set_partition_size("3");
  strategy_.set_max_unavailable("2");
  partitions_ = CutPartitions(strategy_, {Cluster("a", "x"), Cluster("b", "x"), Cluster("c", "x"),
                                          Cluster("d", "x"), Cluster("e", "x"), Cluster("f", "x")});
  ASSERT_EQ(partitions_.size(), 2u);
  partitions_[0].max_unavailable = "1";
  record_.Clear();
  *record_.mutable_partition_started() = ToProtoTime(now_);
  state_.clear();
  Advance();
  EXPECT_EQ(record_.admitted(), 1) << "the first partition's own bound";
  state_["a"] = "ready";
  Advance();
  state_["b"] = "ready";
  Advance();
  EXPECT_EQ(record_.partition(), 1) << "c may be unavailable: on to the next";
  EXPECT_EQ(record_.admitted(), 1) << "c, not ready, leaves room for one of 2";
  EXPECT_THAT(Allowed(GateOf(record_, Cut(), nullptr, true)), ElementsAre("a", "b", "c", "d"));
  state_["c"] = "ready";
  Advance();
  EXPECT_EQ(record_.admitted(), 2) << "c is ready: room for e";
  std::shared_ptr<const ClusterGate> gate = GateOf(record_, Cut(), nullptr, true);
  EXPECT_TRUE(gate->Allows("e"));
  EXPECT_FALSE(gate->Allows("f"));

  // No room at all across the partitions: the next partition gets none, not all.
  partitions_[0].max_unavailable = "2";
  record_.Clear();
  *record_.mutable_partition_started() = ToProtoTime(now_);
  state_.clear();
  Advance();
  EXPECT_EQ(record_.admitted(), 2) << "a and b";
  state_["a"] = "ready";
  Advance();
  EXPECT_EQ(record_.partition(), 1) << "b and c may be unavailable";
  EXPECT_EQ(record_.admitted(), 0) << "b and c fill the strategy's 2";
  gate = GateOf(record_, Cut(), nullptr, true);
  EXPECT_TRUE(gate->Allows("c"));
  EXPECT_FALSE(gate->Allows("d")) << "none of the second partition";
  EXPECT_THAT(Advance().message, HasSubstr("given to 0 of 3 so far"));

  // Paused by an operator when a render comes: a paced partition's first clusters get it,
  // as an unpaced partition would get it whole, and no more until resumed.
  record_.Clear();
  record_.set_paused_by_operator(true);
  *record_.mutable_partition_started() = ToProtoTime(now_);
  state_.clear();
  RolloutStep paused = Advance();
  EXPECT_TRUE(paused.changed);
  EXPECT_EQ(record_.admitted(), 2);
  state_["a"] = "ready";
  state_["b"] = "ready";
  Advance();
  EXPECT_EQ(record_.admitted(), 2) << "paused";
}

// As Fleet does, a paced partition gives a cluster down on the older revision it runs the
// new one at once, out of turn (the new one may be its fix), and counts it as not ready
// like one given it in turn: no other is taken down for its turn while it is. Partitions
// not reached, a halted rollout and a paused one give nothing out of turn.
TEST_F(AdvanceTest, APacedPartitionGivesItAtOnceToAClusterDownOnTheOlderRevision) {
  strategy_.set_partition_size("100%");
  strategy_.set_paced(true);
  strategy_.set_max_unavailable("1");
  strategy_.set_declared_in("apps/web/fleet.yaml");
  partitions_ = CutPartitions(strategy_, {Cluster("a", "x"), Cluster("b", "x"), Cluster("c", "x"),
                                          Cluster("d", "x"), Cluster("e", "x")});
  ASSERT_EQ(partitions_.size(), 1u);
  std::shared_ptr<const std::vector<Partition>> cut = Cut();
  state_["c"] = "down";
  RolloutStep step = Advance();
  EXPECT_TRUE(step.changed);
  EXPECT_EQ(record_.admitted(), 0) << "c's trouble fills the one place";
  EXPECT_THAT(record_.out_of_turn(), ElementsAre("c"));
  EXPECT_THAT(step.message,
              HasSubstr("given to 1 of 5 so far (1 out of turn: not ready on the older revision "
                        "it ran), at most 1 not ready at a time; waiting for c"));
  std::shared_ptr<const ClusterGate> first = GateOf(record_, cut, nullptr, true);
  EXPECT_THAT(Allowed(first), ElementsAre("c"));

  state_["c"] = "";  // given it, no report on it yet
  step = Advance();
  EXPECT_FALSE(step.changed);
  EXPECT_THAT(record_.out_of_turn(), ElementsAre("c")) << "kept";
  state_["c"] = "ready";
  Advance();
  EXPECT_EQ(record_.admitted(), 1) << "a's turn";
  std::shared_ptr<const ClusterGate> second = GateOf(record_, cut, first.get(), true);
  EXPECT_THAT(Allowed(second), ElementsAre("a", "c"));
  std::vector<std::string> added;
  ASSERT_TRUE(second->AddedTo(first.get(), &added));
  EXPECT_THAT(added, ElementsAre("a"));
  ASSERT_FALSE(first->AddedTo(second.get(), &added)) << "narrower";

  // e goes down while a is given it: e gets it too, and b waits for both.
  state_["e"] = "down";
  Advance();
  EXPECT_EQ(record_.admitted(), 1);
  EXPECT_THAT(record_.out_of_turn(), ElementsAre("c", "e"));
  std::shared_ptr<const ClusterGate> third = GateOf(record_, cut, second.get(), true);
  ASSERT_TRUE(third->AddedTo(second.get(), &added));
  EXPECT_THAT(added, ElementsAre("e"));
  state_["e"] = "";
  state_["a"] = "ready";
  Advance();
  EXPECT_EQ(record_.admitted(), 1) << "e is not ready yet";
  state_["e"] = "ready";
  Advance();
  // b's turn; c's place after it is passed over (it has it), counted by the frontier now.
  EXPECT_EQ(record_.admitted(), 3);
  EXPECT_THAT(record_.out_of_turn(), ElementsAre("e"));
  std::shared_ptr<const ClusterGate> fourth = GateOf(record_, cut, third.get(), true);
  EXPECT_THAT(Allowed(fourth), ElementsAre("a", "b", "c", "e"));
  ASSERT_TRUE(fourth->AddedTo(third.get(), &added));
  EXPECT_THAT(added, ElementsAre("b"));
  state_["b"] = "ready";
  Advance();
  EXPECT_EQ(record_.partition(), 1) << "4 of 5 ready (1 may be unavailable): d with the rest";
  EXPECT_THAT(record_.out_of_turn(), IsEmpty());

  // Two partitions: a cluster down in the second waits until the second's turn.
  strategy_.set_partition_size("3");
  partitions_ = CutPartitions(strategy_, {Cluster("a", "x"), Cluster("b", "x"), Cluster("c", "x"),
                                          Cluster("d", "x"), Cluster("e", "x")});
  ASSERT_EQ(partitions_.size(), 2u);
  record_.Clear();
  *record_.mutable_partition_started() = ToProtoTime(now_);
  state_.clear();
  state_["e"] = "down";
  Advance();
  EXPECT_THAT(record_.out_of_turn(), IsEmpty());
  EXPECT_THAT(Allowed(GateOf(record_, Cut(), nullptr, true)), ElementsAre("a"));

  // Halted or paused: nothing more, out of turn or not.
  state_["c"] = "down";
  record_.set_halted(true);
  Advance();
  EXPECT_THAT(record_.out_of_turn(), IsEmpty());
  record_.set_halted(false);
  record_.set_paused_by_operator(true);
  Advance();
  EXPECT_THAT(record_.out_of_turn(), IsEmpty());
  record_.set_paused_by_operator(false);
  Advance();
  EXPECT_THAT(record_.out_of_turn(), ElementsAre("c"));
  EXPECT_THAT(Allowed(GateOf(record_, Cut(), nullptr, true)), ElementsAre("a", "c"));
  // One down next in line is simply passed by the frontier.
  state_["b"] = "down";
  Advance();
  EXPECT_EQ(record_.admitted(), 3);
  EXPECT_THAT(record_.out_of_turn(), IsEmpty());
}

// A cluster suspended for maintenance gets nothing new, so in a paced partition it holds
// no place and its turn passes, rather than holding the rest back until the deadline; it
// still counts as not ready for the partition's gate.
TEST_F(AdvanceTest, APacedPartitionPassesOverASuspendedCluster) {
  strategy_.set_partition_size("100%");
  strategy_.set_paced(true);
  strategy_.set_max_unavailable("1");
  strategy_.set_declared_in("apps/web/fleet.yaml");
  partitions_ = CutPartitions(strategy_, {Cluster("a", "x"), Cluster("b", "x"), Cluster("c", "x"),
                                          Cluster("d", "x"), Cluster("e", "x")});
  state_["a"] = "suspended";
  Advance();
  EXPECT_EQ(record_.admitted(), 2) << "a's turn passes: b's";
  state_["b"] = "ready";
  Advance();
  EXPECT_EQ(record_.admitted(), 3) << "a holds no place: c's turn";
  state_["c"] = "ready";
  state_["e"] = "suspended";
  Advance();
  EXPECT_EQ(record_.admitted(), 5) << "d's, and e's passes";
  state_["d"] = "ready";
  RolloutStep step = Advance();
  EXPECT_EQ(record_.partition(), 0) << "a and e are not ready, 1 may be";
  EXPECT_THAT(step.message, HasSubstr("3 of 5 clusters ready"));
  state_["e"] = "ready";  // resumed, and given it
  Advance();
  EXPECT_EQ(record_.partition(), 1);
}

// A bundle's own --paced: its --max-unavailable (0 by default: one at a time) paces each
// partition, and bounds nothing across partitions.
TEST_F(AdvanceTest, ABundlesOwnPacingGoesOneAtATimeByDefault) {
  strategy_.set_paced(true);
  EXPECT_TRUE(ValidateRolloutStrategy(strategy_).ok());
  EXPECT_EQ(PaceOf(strategy_, partitions_[0], 2), 1);
  EXPECT_EQ(FleetPaceOf(strategy_, 5), 0);
  EXPECT_THAT(DescribeRolloutStrategy(strategy_),
              HasSubstr("none may be not ready, given to 1 at a time"));
  Advance();
  EXPECT_EQ(record_.admitted(), 1);
  EXPECT_THAT(Allowed(GateOf(record_, Cut(), nullptr, true)), ElementsAre("a"));
  strategy_.set_max_unavailable("2");
  EXPECT_EQ(PaceOf(strategy_, partitions_[0], 2), 2);
  v1::RolloutStrategy alone;
  alone.set_paced(true);
  EXPECT_THAT(ValidateRolloutStrategy(alone),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--paced")));
}

// A widened gate says what it adds to the one before, so the hub looks only at those.
TEST_F(AdvanceTest, AGateBuiltOnTheLastSaysWhatItAdds) {
  std::shared_ptr<const std::vector<Partition>> cut = Cut();
  std::shared_ptr<const ClusterGate> first = GateOf(record_, cut);
  record_.set_partition(1);
  std::shared_ptr<const ClusterGate> second = GateOf(record_, cut, first.get());
  std::vector<std::string> added;
  ASSERT_TRUE(second->AddedTo(first.get(), &added));
  EXPECT_THAT(added, ElementsAre("c", "d"));
  EXPECT_FALSE(second->AddedTo(nullptr, &added)) << "nothing before: look at everyone";
  EXPECT_FALSE(first->AddedTo(second.get(), &added)) << "narrower, not wider";
  EXPECT_FALSE(second->SameAs(*first));
  EXPECT_TRUE(second->SameAs(*GateOf(record_, cut, first.get())));

  // Two partitions at once (both were ready): both are added.
  record_.set_partition(2);
  std::shared_ptr<const ClusterGate> third = GateOf(record_, cut, first.get());
  ASSERT_TRUE(third->AddedTo(first.get(), &added));
  EXPECT_THAT(added, ElementsAre("c", "d", "e"));

  // A gate of another cut (the fleet changed) or of another kind is no base.
  std::shared_ptr<const ClusterGate> recut = GateOf(record_, Cut(), second.get());
  EXPECT_FALSE(recut->AddedTo(second.get(), &added));
  EXPECT_THAT(Allowed(recut), ElementsAre("a", "b", "c", "d", "e"));
  EXPECT_FALSE(recut->AddedTo(ClusterSetGate::Of({"a", "b"}).get(), &added));
  EXPECT_TRUE(ClusterSetGate::Of({"a"})->SameAs(*ClusterSetGate::Of({"a"})));
  EXPECT_FALSE(ClusterSetGate::Of({"a"})->SameAs(*recut));
}

TEST_F(AdvanceTest, TheDeadlineAndFailuresHaltItUntilPromotedOrResumed) {
  state_["a"] = "ready";
  state_["b"] = "Progressing";
  now_ += absl::Seconds(61);
  RolloutStep step = Advance();
  EXPECT_TRUE(record_.halted());
  EXPECT_EQ(step.reports_needed, std::numeric_limits<int>::max()) << "no report resumes it";
  EXPECT_THAT(step.message, HasSubstr("partition 1/3: paused: not ready within the progress "
                                      "deadline (1m): 1 of 2 clusters ready; waiting for b: "
                                      "Progressing"));
  // Halted, it stays so even once the cluster is fine: an operator looks first.
  state_["b"] = "ready";
  Advance();
  EXPECT_EQ(record_.partition(), 0);

  // Promote skips the gate of the partition it is on.
  record_.set_halted(false);
  record_.set_promoted(true);
  state_["b"] = "Progressing";
  Advance();
  EXPECT_EQ(record_.partition(), 1);
  EXPECT_FALSE(record_.promoted());

  // A failed cluster halts at once.
  state_["c"] = "failed";
  step = Advance();
  EXPECT_TRUE(record_.halted());
  EXPECT_THAT(step.message, HasSubstr("cluster c failed to apply the revision: failed"));

  // An operator's pause holds whatever the clusters do.
  record_.set_halted(false);
  record_.set_paused_by_operator(true);
  state_["c"] = state_["d"] = "ready";
  step = Advance();
  EXPECT_EQ(record_.partition(), 1);
  EXPECT_THAT(step.message, HasSubstr("paused by an operator"));
}

// Partitions {a, b}, {c, d}, {e}: at the third, the first two are through.
TEST_F(AdvanceTest, ABreakInAPartitionThroughAlreadyHaltsItBeforeItGoesFurther) {
  record_.set_partition(2);
  auto describe = [](const std::string& cluster) { return cluster + " is Degraded"; };
  EXPECT_FALSE(HaltOnRegressions(record_, partitions_, strategy_, {}, describe));
  EXPECT_FALSE(HaltOnRegressions(record_, partitions_, strategy_, {"e"}, describe))
      << "e's own partition is judged by its own gate";
  EXPECT_FALSE(HaltOnRegressions(record_, partitions_, strategy_, {"unknown"}, describe));
  EXPECT_FALSE(record_.halted());

  ASSERT_TRUE(HaltOnRegressions(record_, partitions_, strategy_, {"d", "c"}, describe));
  EXPECT_TRUE(record_.halted());
  EXPECT_THAT(record_.reason(),
              HasSubstr("cluster c of partition 2/3, which this revision had passed, broke on it: "
                        "c is Degraded (2 clusters there)"));
  RolloutStep step = Advance();
  EXPECT_EQ(record_.partition(), 2) << "halted: e does not get it";
  EXPECT_THAT(step.message, HasSubstr("partition 3/3: paused: cluster c of partition 2/3"));
  EXPECT_FALSE(HaltOnRegressions(record_, partitions_, strategy_, {"a"}, describe))
      << "halted already: the first reason stands";

  // What a partition may have unavailable, it may have broken.
  record_.set_halted(false);
  strategy_.set_max_unavailable("1");
  EXPECT_FALSE(HaltOnRegressions(record_, partitions_, strategy_, {"a", "c"}, describe));
  EXPECT_TRUE(HaltOnRegressions(record_, partitions_, strategy_, {"a", "b"}, describe));
  EXPECT_THAT(record_.reason(), HasSubstr("cluster a of partition 1/3"));
}

TEST(RolloutTest, CountsWithoutAnExampleStillExplainThemselves) {
  // The hub counts under its lock and describes the first waiting cluster a moment later,
  // when it may be ready: a count without an example must not be trusted to have one.
  v1::RolloutStrategy strategy;
  strategy.set_partition_size("2");
  std::vector<Partition> partitions =
      CutPartitions(strategy, {Cluster("a", "x"), Cluster("b", "x")});
  v1::RolloutRecord record;
  const absl::Time now = absl::FromUnixSeconds(1000);
  *record.mutable_partition_started() = ToProtoTime(now);
  RolloutStep step = AdvanceRollout(record, partitions, strategy, now, [](const Partition&) {
    PartitionProgress p;
    p.total = 2;
    p.not_ready = 2;
    return p;
  });
  EXPECT_THAT(step.message, HasSubstr("0 of 2 clusters ready; waiting for 2 clusters' reports"));
  step = AdvanceRollout(record, partitions, strategy, now, [](const Partition&) {
    PartitionProgress p;
    p.total = 2;
    p.not_ready = 1;
    p.failed = 1;
    return p;
  });
  EXPECT_TRUE(record.halted());
  EXPECT_THAT(step.message, HasSubstr("1 clusters failed to apply the revision"));
}

}  // namespace
}  // namespace gitfleet
