#include "controlplane/api/scoped_view.h"

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ScopedViewTest : public ::testing::Test {
 protected:
  ScopedViewTest() {
    clusters_ = {{"a-dev", {{"team", "a"}}},
                 {"b-dev", {{"team", "b"}}},
                 {"b.prod_1", {{"team", "b"}}},
                 {"unlabelled", {}}};
    bundles_ = {"team-a-app", "web", "crds"};
  }

  ScopedView::Lookups Lookups() {
    ScopedView::Lookups lookups;
    lookups.cluster_labels = [this](const std::string& name) -> std::optional<LabelMap> {
      ++lookups_;
      auto it = clusters_.find(name);
      if (it == clusters_.end()) return std::nullopt;
      return it->second;
    };
    lookups.bundle_defined = [this](const std::string& name) {
      ++bundle_lookups_;
      return bundles_.count(name) > 0;
    };
    return lookups;
  }

  std::shared_ptr<const Scope> TeamA() {
    auto scope = Scope::Parse({"bundles=team-a-*", "clusters=team=a"});
    EXPECT_TRUE(scope.ok()) << scope.status();
    return std::make_shared<const Scope>(*scope);
  }

  std::map<std::string, LabelMap> clusters_;
  std::set<std::string> bundles_;
  int lookups_ = 0;
  int bundle_lookups_ = 0;
};

TEST_F(ScopedViewTest, AnUnscopedCallerReadsEveryTextAsWritten) {
  ScopedView view(nullptr, Lookups());
  EXPECT_EQ(view.Hide("partition 2/3: waiting for b-dev (Progressing)"),
            "partition 2/3: waiting for b-dev (Progressing)");
  EXPECT_EQ(lookups_, 0);
  EXPECT_TRUE(view.SeesCluster("b-dev"));
}

TEST_F(ScopedViewTest, ClustersOutsideTheScopeAreNotNamed) {
  ScopedView view(TeamA(), Lookups());
  EXPECT_EQ(view.Hide("partition 2/3: waiting for b-dev (Progressing), a-dev ready"),
            "partition 2/3: waiting for a cluster outside your scope (Progressing), a-dev ready");
  // At a sentence's end, between quotes, in a list, with dots and underscores in the name.
  EXPECT_EQ(view.Hide("held at b-dev. \"b.prod_1\",unlabelled,b-dev..."),
            "held at a cluster outside your scope. \"a cluster outside your scope\","
            "a cluster outside your scope,a cluster outside your scope...");
  // A longer word that holds a name is not that name.
  EXPECT_EQ(view.Hide("b-dev-2 xb-dev b-devs"), "b-dev-2 xb-dev b-devs");
  EXPECT_FALSE(view.SeesCluster("b-dev"));
  EXPECT_TRUE(view.SeesCluster("a-dev"));
  EXPECT_TRUE(view.SeesCluster("gone"));
  EXPECT_EQ(view.Hide(""), "");
}

TEST_F(ScopedViewTest, BundlesOutsideTheScopeOnlyInTheFleetsOwnTexts) {
  ScopedView view(TeamA(), Lookups());
  EXPECT_EQ(view.Hide("waits for 2 other bundles of source demo (first web)",
                      ScopedView::Names::kClustersAndBundles),
            "waits for 2 other bundles of source demo (first a bundle outside your scope)");
  EXPECT_EQ(view.Hide("waiting for dependencies: team-a-app (Progressing)",
                      ScopedView::Names::kClustersAndBundles),
            "waiting for dependencies: team-a-app (Progressing)");
  // A render's error names the repository's folders: "web" there is a folder.
  EXPECT_EQ(view.Hide("apps/web/deploy.yaml: line 3"), "apps/web/deploy.yaml: line 3");

  v1::BundleInfo info;
  info.set_rollout("partition 1/2: waiting for b-dev (Progressing)");
  info.set_waiting("its render waits for bundle crds to render it");
  info.set_error("with the values of cluster b-dev: web/values.yaml: bad");
  info.set_scope_held("held on b-dev");
  info.set_source_error("fetch failed");
  info.add_notes("skipped b-dev/README.md");
  view.Hide(&info);
  EXPECT_EQ(info.rollout(),
            "partition 1/2: waiting for a cluster outside your scope (Progressing)");
  EXPECT_EQ(info.waiting(), "its render waits for bundle a bundle outside your scope to render it");
  EXPECT_EQ(info.error(),
            "with the values of cluster a cluster outside your scope: web/values.yaml: bad");
  EXPECT_EQ(info.scope_held(), "held on a cluster outside your scope");
  EXPECT_EQ(info.notes(0), "skipped a cluster outside your scope/README.md");

  v1::BundleStatus status;
  status.set_message("Deployment web: b-dev is its image's registry");
  status.set_held_back("rollout: paused: waiting for b-dev; depends on crds");
  view.Hide(&status);
  EXPECT_EQ(status.message(), "Deployment web: b-dev is its image's registry")
      << "an agent's own message, of a cluster the caller sees";
  EXPECT_EQ(status.held_back(),
            "rollout: paused: waiting for a cluster outside your scope; depends on a bundle "
            "outside your scope");
}

TEST_F(ScopedViewTest, WhatTheCallerAskedForIsItsOwnToReadBack) {
  ScopedView view(TeamA(), Lookups());
  view.Asked("b-dev bundle=web");
  EXPECT_EQ(view.Hide("caller team-a's scope does not cover cluster b-dev"),
            "caller team-a's scope does not cover cluster b-dev");
  EXPECT_EQ(view.Hide("bundle web", ScopedView::Names::kClustersAndBundles), "bundle web");
  EXPECT_EQ(view.Hide("b.prod_1"), "a cluster outside your scope");
}

TEST_F(ScopedViewTest, ARolloutsMessageAndItsRowsDetails) {
  ScopedView view(TeamA(), Lookups());
  v1::RolloutStatus status;
  status.set_message("paused: partition 1/2 waits for b-dev");
  v1::RolloutCluster* row = status.add_partitions()->add_clusters();
  row->set_name("a-dev");
  row->set_detail("waits for b-dev to be ready first");
  status.mutable_commit_reach()->set_note("not yet on b-dev");
  view.Hide(&status);
  EXPECT_THAT(status.message(), Not(HasSubstr("b-dev")));
  EXPECT_EQ(status.partitions(0).clusters(0).detail(),
            "waits for a cluster outside your scope to be ready first");
  EXPECT_EQ(status.partitions(0).clusters(0).name(), "a-dev");
  EXPECT_THAT(status.commit_reach().note(), Not(HasSubstr("b-dev")));

  v1::Event event;
  event.set_message("rollout paused: waiting for b-dev");
  view.Hide(&event);
  EXPECT_EQ(event.message(), "rollout paused: waiting for a cluster outside your scope");
}

// The bundles a team's cluster holds that are defined no more: the team's own alone.
TEST_F(ScopedViewTest, AClustersOrphansAreTheTeamsOwnAlone) {
  v1::ClusterInfo cluster;
  cluster.set_name("a-dev");
  for (const char* orphan : {"payments", "team-a-old", "web"}) cluster.add_orphaned_bundles(orphan);
  v1::ClusterInfo seen_by_admin = cluster;
  ScopedView(nullptr, Lookups()).Hide(&seen_by_admin);
  EXPECT_EQ(seen_by_admin.orphaned_bundles_size(), 3);
  ScopedView(TeamA(), Lookups()).Hide(&cluster);
  ASSERT_EQ(cluster.orphaned_bundles_size(), 1);
  EXPECT_EQ(cluster.orphaned_bundles(0), "team-a-old");
}

TEST_F(ScopedViewTest, EachWordIsLookedUpOncePerCallAndLongWordsNever) {
  ScopedView view(TeamA(), Lookups());
  view.Hide("b-dev b-dev b-dev a-dev a-dev web");
  EXPECT_EQ(lookups_, 3);
  EXPECT_EQ(bundle_lookups_, 0) << "a text read for clusters alone asks nothing of bundles";
  view.Hide("a-dev web web", ScopedView::Names::kClustersAndBundles);
  EXPECT_EQ(lookups_, 3);
  EXPECT_EQ(bundle_lookups_, 2) << "a-dev (a cluster the caller sees) and web, once each";
  lookups_ = 0;
  view.Hide(std::string(64, 'x') + " " + std::string(100000, 'y'));
  EXPECT_EQ(lookups_, 0) << "no name is longer than 63 characters";
  // What is kept is bounded; past it, words are looked up again.
  for (size_t i = 0; i < ScopedView::kMaxKept + 10; ++i) view.Hide(absl::StrCat("w", i));
  const int before = lookups_;
  view.Hide(absl::StrCat("w", ScopedView::kMaxKept + 5));
  EXPECT_EQ(lookups_, before + 1);
  EXPECT_EQ(view.Hide("b-dev"), "a cluster outside your scope");
  EXPECT_EQ(lookups_, before + 1);
}

}  // namespace
}  // namespace gitfleet
