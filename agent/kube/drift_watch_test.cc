#include "agent/kube/drift_watch.h"

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "agent/kube/applier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakekube/fake_apiserver.h"

namespace gitfleet {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class DriftWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeApiServer>> server = FakeApiServer::Start({});
    ASSERT_TRUE(server.ok()) << server.status();
    fake_ = *std::move(server);
    KubeConfig config;
    config.server = fake_->url();
    KubeClient::Options options;
    options.qps = 1000;
    options.burst = 1000;
    absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(config, options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    mapper_ = std::make_unique<RestMapper>(client_.get());
  }

  std::unique_ptr<DriftWatcher> Watcher(DriftWatcher::Options options = {}) {
    options.min_backoff = absl::Milliseconds(50);
    options.max_backoff = absl::Milliseconds(200);
    options.forbidden_retry = absl::Milliseconds(300);
    return std::make_unique<DriftWatcher>(client_.get(), mapper_.get(), options);
  }

  void PutConfigMap(const std::string& name, const std::string& bundle, bool hook = false,
                    const std::string& ns = "default") {
    json labels = json::object();
    if (!bundle.empty()) labels[kBundleLabel] = bundle;
    if (hook) labels[kHookLabel] = "true";
    fake_->Put("", "configmaps",
               {{"apiVersion", "v1"},
                {"kind", "ConfigMap"},
                {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
                {"data", {{"k", "v"}}}});
  }

  // The kinds, each in the default namespace alone.
  static ChangeWatch::Kinds Kinds(std::initializer_list<ChangeWatch::Kind> kinds) {
    ChangeWatch::Kinds out;
    for (const ChangeWatch::Kind& kind : kinds) out[kind] = {""};
    return out;
  }

  // Lets the agent's own identity list and watch ConfigMaps: in `ns`, or across namespaces.
  void GrantConfigMaps(const std::string& ns) {
    const std::string rbac = "rbac.authorization.k8s.io";
    const std::string name = "watch-configmaps";
    json meta = {{"name", name}};
    if (!ns.empty()) meta["namespace"] = ns;
    fake_->Put(
        rbac, ns.empty() ? "clusterroles" : "roles",
        {{"apiVersion", rbac + "/v1"},
         {"kind", ns.empty() ? "ClusterRole" : "Role"},
         {"metadata", meta},
         {"rules",
          {{{"apiGroups", {""}}, {"resources", {"configmaps"}}, {"verbs", {"list", "watch"}}}}}});
    fake_->Put(
        rbac, ns.empty() ? "clusterrolebindings" : "rolebindings",
        {{"apiVersion", rbac + "/v1"},
         {"kind", ns.empty() ? "ClusterRoleBinding" : "RoleBinding"},
         {"metadata", meta},
         {"subjects", {{{"kind", "ServiceAccount"}, {"name", "agent"}, {"namespace", "gitfleet"}}}},
         {"roleRef",
          {{"apiGroup", rbac}, {"kind", ns.empty() ? "ClusterRole" : "Role"}, {"name", name}}}});
  }

  // Waits (at most 10 s) until `done` holds.
  static bool Eventually(const std::function<bool()>& done) {
    for (int i = 0; i < 200; ++i) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return done();
  }

  // The bundles named within `wait`, gathered over several looks: with a changed object,
  // or (`status`) with a changed status.
  static std::set<std::string> ChangedWithin(DriftWatcher& watcher, absl::Duration wait,
                                             std::set<std::string>* status = nullptr) {
    std::set<std::string> all;
    const absl::Time end = absl::Now() + wait;
    while (absl::Now() < end) {
      ChangeWatch::Changed changed = watcher.TakeChanged();
      all.insert(changed.content.begin(), changed.content.end());
      if (status != nullptr) status->insert(changed.status.begin(), changed.status.end());
      absl::SleepFor(absl::Milliseconds(50));
    }
    return all;
  }

  std::unique_ptr<FakeApiServer> fake_;
  std::unique_ptr<KubeClient> client_;
  std::unique_ptr<RestMapper> mapper_;
};

// Someone's edit or delete names the bundle; gitfleet's own creation, an object of no
// bundle and a hook's run do not, and a controller's status update names it for its health.
TEST_F(DriftWatchTest, AnEditOrADeleteNamesItsBundleAndAStatusDoesNot) {
  PutConfigMap("settings", "web");
  PutConfigMap("loose", "");
  PutConfigMap("migrate-run", "web", /*hook=*/true);
  fake_->Put("apps", "deployments",
             {{"apiVersion", "apps/v1"},
              {"kind", "Deployment"},
              {"metadata",
               {{"name", "api"}, {"namespace", "default"}, {"labels", {{kBundleLabel, "api"}}}}},
              {"spec", {{"replicas", 2}}}});
  auto watcher = Watcher();
  watcher->Watch(Kinds({{"v1", "ConfigMap"}, {"apps/v1", "Deployment"}}));
  ASSERT_TRUE(Eventually([&] { return watcher->counts().watching == 2; }));

  fake_->SetStatus("apps", "deployments", "default", "api", {{"readyReplicas", 2}});
  fake_->Mutate("", "configmaps", "default", "loose", [](json& o) { o["data"]["k"] = "x"; });
  fake_->Mutate("", "configmaps", "default", "migrate-run", [](json& o) { o["data"]["k"] = "x"; });
  PutConfigMap("created", "web");  // as gitfleet creates one
  std::set<std::string> status;
  EXPECT_THAT(ChangedWithin(*watcher, absl::Milliseconds(1500), &status), IsEmpty());
  EXPECT_THAT(status, ElementsAre("api"));

  fake_->Mutate("", "configmaps", "default", "settings",
                [](json& o) { o["data"]["k"] = "edited"; });
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(2)), ElementsAre("web"));

  fake_->Delete("apps", "deployments", "default", "api");
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(2)), ElementsAre("api"));

  // Relabelled to another bundle: both are looked at.
  fake_->Mutate("", "configmaps", "default", "settings",
                [](json& o) { o["metadata"]["labels"][kBundleLabel] = "other"; });
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(2)), ElementsAre("other", "web"));

  // Its label removed: it left the bundle's watch (DELETED to a watch with a selector).
  fake_->Mutate("", "configmaps", "default", "created",
                [](json& o) { o["metadata"]["labels"].erase(kBundleLabel); });
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(2)), ElementsAre("web"));

  // A hook's run counts by its progress alone: its status moving names its bundle for a
  // look at its hooks; its going (a delete policy) is no change.
  status.clear();
  fake_->SetStatus("", "configmaps", "default", "migrate-run", {{"succeeded", 1}});
  EXPECT_THAT(ChangedWithin(*watcher, absl::Milliseconds(1500), &status), IsEmpty());
  EXPECT_THAT(status, ElementsAre("web"));
  fake_->Delete("", "configmaps", "default", "migrate-run");
  status.clear();
  EXPECT_THAT(ChangedWithin(*watcher, absl::Milliseconds(1500), &status), IsEmpty());
  EXPECT_THAT(status, IsEmpty());
}

// A change made while the watch could not follow (forbidden, then its history compacted)
// is found by the list made before watching again.
TEST_F(DriftWatchTest, AChangeMissedWhileNotWatchingIsFoundByTheNextList) {
  PutConfigMap("settings", "web");
  fake_->Forbid("watch", "", "configmaps");
  auto watcher = Watcher();
  watcher->Watch(Kinds({{"v1", "ConfigMap"}}));
  ASSERT_TRUE(Eventually([&] { return watcher->counts().forbidden == 1; }));
  fake_->Mutate("", "configmaps", "default", "settings",
                [](json& o) { o["data"]["k"] = "edited"; });
  fake_->CompactWatchHistory();
  fake_->Allow("watch", "", "configmaps");
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(3)), ElementsAre("web"));
  ASSERT_TRUE(Eventually([&] { return watcher->counts().watching == 1; }));

  // A watch whose history goes (410 Expired) lists again and goes on watching.
  fake_->CompactWatchHistory();
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(1)), IsEmpty());
  fake_->Mutate("", "configmaps", "default", "settings", [](json& o) { o["data"]["k"] = "again"; });
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(3)), ElementsAre("web"));
}

// gitfleet's own write, told before its event comes, is no change to look at; the next
// one, by someone else, is.
TEST_F(DriftWatchTest, ItsOwnWritesAreNoChange) {
  PutConfigMap("settings", "web");
  auto watcher = Watcher();
  watcher->Watch(Kinds({{"v1", "ConfigMap"}}));
  ASSERT_TRUE(Eventually([&] { return watcher->counts().watching == 1; }));
  // The fake's next write gets the resourceVersion after its list's.
  absl::StatusOr<KubeResponse> list = client_->Do("GET", "/api/v1/configmaps");
  ASSERT_TRUE(list.ok() && list->code == 200);
  int64_t now = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      json::parse(list->body)["metadata"]["resourceVersion"].get<std::string>(), &now));
  watcher->Written("/api/v1/configmaps", "default/settings", std::to_string(now + 1));
  watcher->Written("/apis/apps/v1/deployments", "default/x", "1");  // not watched: ignored
  fake_->Mutate("", "configmaps", "default", "settings", [](json& o) { o["data"]["k"] = "mine"; });
  EXPECT_THAT(ChangedWithin(*watcher, absl::Milliseconds(1500)), IsEmpty());
  fake_->Mutate("", "configmaps", "default", "settings",
                [](json& o) { o["data"]["k"] = "theirs"; });
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(2)), ElementsAre("web"));

  // Its event may come before the apply's answer: told within the grace, it is its own.
  fake_->Mutate("", "configmaps", "default", "settings",
                [](json& o) { o["data"]["k"] = "mine again"; });
  absl::SleepFor(absl::Milliseconds(50));  // the event is there first
  watcher->Written("/api/v1/configmaps", "default/settings", std::to_string(now + 3));
  EXPECT_THAT(ChangedWithin(*watcher, absl::Milliseconds(1500)), IsEmpty());
}

// Watches are bounded: past max_watches, and for kinds the server does not serve, the
// periodic checks alone look; kinds no bundle holds any more stop being watched.
TEST_F(DriftWatchTest, WatchesAreBoundedAndFollowTheKindsHeld) {
  DriftWatcher::Options options;
  options.max_watches = 1;
  auto watcher = Watcher(options);
  watcher->Watch(
      Kinds({{"v1", "ConfigMap"}, {"apps/v1", "Deployment"}, {"example.com/v1", "Widget"}}));
  ASSERT_TRUE(Eventually([&] { return watcher->counts().watching == 1; }));
  EXPECT_EQ(watcher->counts().unwatched, 2);
  EXPECT_NE(watcher->Watching({"v1", "ConfigMap"}, ""),
            watcher->Watching({"apps/v1", "Deployment"}, ""))
      << "one of the two is watched, the other past the bound";
  EXPECT_FALSE(watcher->Watching({"example.com/v1", "Widget"}, "")) << "not served";
  ASSERT_TRUE(Eventually([&] { return fake_->OpenWatches() == 1; }));

  watcher->Watch({});
  EXPECT_EQ(watcher->counts().watching, 0);
  EXPECT_EQ(watcher->counts().unwatched, 0);
  EXPECT_TRUE(Eventually([&] { return fake_->OpenWatches() == 0; }));
}

// An agent bound to its teams' namespaces alone (RoleBindings, no ClusterRoleBinding) may
// not watch a kind across namespaces: it watches it in each namespace its bundles use, a
// namespace it may not watch in either is left to the periodic checks, and once it may
// watch across namespaces again, one watch does.
TEST_F(DriftWatchTest, AKindForbiddenAcrossNamespacesIsWatchedInEachNamespace) {
  fake_->AuthorizeAs("system:serviceaccount:gitfleet:agent");
  GrantConfigMaps("shop");
  GrantConfigMaps("web");
  PutConfigMap("settings", "shop", false, "shop");
  PutConfigMap("settings", "web", false, "web");
  PutConfigMap("settings", "other", false, "other");
  auto watcher = Watcher();
  watcher->Watch({{{"v1", "ConfigMap"}, {"shop", "web", "other"}}});
  auto counts_are = [&](int watching, int forbidden, int by_namespace) {
    return Eventually([&] {
      watcher->TakeChanged();  // the reconciler's pass: it rearranges the watches
      DriftWatcher::Counts counts = watcher->counts();
      return counts.watching == watching && counts.forbidden == forbidden &&
             counts.by_namespace == by_namespace && counts.starting == 0;
    });
  };
  ASSERT_TRUE(counts_are(2, 1, 1));
  EXPECT_EQ(fake_->OpenWatches(), 2);
  EXPECT_TRUE(watcher->Watching({"v1", "ConfigMap"}, "shop"));
  EXPECT_FALSE(watcher->Watching({"v1", "ConfigMap"}, "other")) << "forbidden there too";
  EXPECT_FALSE(watcher->Watching({"apps/v1", "Deployment"}, "shop")) << "not asked for";
  EXPECT_THAT(ChangedWithin(*watcher, absl::Milliseconds(500)), IsEmpty());

  fake_->Mutate("", "configmaps", "shop", "settings", [](json& o) { o["data"]["k"] = "edited"; });
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(2)), ElementsAre("shop"));
  fake_->Delete("", "configmaps", "web", "settings");
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(2)), ElementsAre("web"));
  // Written as the agent writes, its own change is none, as across namespaces.
  absl::StatusOr<KubeResponse> list = client_->Do("GET", "/api/v1/namespaces/shop/configmaps");
  ASSERT_TRUE(list.ok() && list->code == 200);
  int64_t now = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      json::parse(list->body)["metadata"]["resourceVersion"].get<std::string>(), &now));
  watcher->Written("/api/v1/configmaps", "shop/settings", std::to_string(now + 1));
  fake_->Mutate("", "configmaps", "shop", "settings", [](json& o) { o["data"]["k"] = "mine"; });
  EXPECT_THAT(ChangedWithin(*watcher, absl::Milliseconds(1500)), IsEmpty());

  // Allowed across namespaces: one watch again, which sees every namespace.
  GrantConfigMaps("");
  ASSERT_TRUE(counts_are(1, 0, 0));
  ASSERT_TRUE(Eventually([&] { return fake_->OpenWatches() == 1; }));
  EXPECT_TRUE(watcher->Watching({"v1", "ConfigMap"}, "other"));
  fake_->Mutate("", "configmaps", "other", "settings", [](json& o) { o["data"]["k"] = "x"; });
  EXPECT_THAT(ChangedWithin(*watcher, absl::Seconds(2)), ElementsAre("other"));
}

// A namespace's watches count within max_watches.
TEST_F(DriftWatchTest, NamespacesWatchedInsteadCountWithinTheBound) {
  fake_->AuthorizeAs("system:serviceaccount:gitfleet:agent");
  GrantConfigMaps("a");
  GrantConfigMaps("b");
  GrantConfigMaps("c");
  DriftWatcher::Options options;
  options.max_watches = 3;
  auto watcher = Watcher(options);
  watcher->Watch({{{"v1", "ConfigMap"}, {"a", "b", "c"}}});
  ASSERT_TRUE(Eventually([&] {
    watcher->TakeChanged();
    DriftWatcher::Counts counts = watcher->counts();
    return counts.watching == 2 && counts.by_namespace == 1 && counts.unwatched == 1;
  }));
  EXPECT_TRUE(Eventually([&] { return fake_->OpenWatches() == 2; }));
}

}  // namespace
}  // namespace gitfleet
