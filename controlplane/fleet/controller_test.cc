#include "controlplane/fleet/controller.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/file_system.h"
#include "common/status_matchers.h"
#include "common/sync.h"
#include "controlplane/render/fleet_cluster_groups.h"
#include "controlplane/render/fleet_names.h"
#include "controlplane/render/helm_renderer.h"
#include "controlplane/render/kustomize_renderer.h"
#include "controlplane/render/remote_bases.h"
#include "controlplane/source/repo_url.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/chart_server.h"
#include "tests/util/fake_tools.h"
#include "tests/util/git_fixture.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::TempDir;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string Cm(const std::string& name, const std::string& value = "1") {
  return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {v: \"" + value +
         "\"}\n";
}

class FakeConnection : public AgentConnection {
 public:
  // Called by the controller's workers as well as the test's thread.
  void Notify(const std::string& bundle) override {
    MutexLock lock(&mu_);
    ++notices_[bundle];
  }
  void NotifyControl() override {}
  void Close(const absl::Status&) override {}
  // How often the agent was told that `bundle` may have something new for it.
  int notices(const std::string& bundle) const {
    MutexLock lock(&mu_);
    auto it = notices_.find(bundle);
    return it == notices_.end() ? 0 : it->second;
  }

 private:
  mutable Mutex mu_;
  std::map<std::string, int> notices_ ABSL_GUARDED_BY(mu_);
};

// Connects an agent of cluster `name` with `labels`, holding `held` (bundle -> revision).
uint64_t ConnectAgent(Hub* hub, const std::string& name,
                      const std::map<std::string, std::string>& labels,
                      const std::map<std::string, std::string>& held = {}) {
  v1::Hello hello;
  hello.set_cluster(name);
  hello.mutable_labels()->insert(labels.begin(), labels.end());
  for (const auto& [bundle, revision] : held) {
    v1::HeldRevision* h = hello.add_held();
    h->set_bundle(bundle);
    h->set_revision(revision);
  }
  return hub->Connect(hello, "peer", std::make_shared<FakeConnection>());
}

class ControllerTest : public ::testing::Test {
 protected:
  ControllerTest()
      : git_(TempDir("repo")),
        repos_(NewLibgit2Repositories(TempDir("cache"), {}, {"", /*allow_local=*/true})),
        metrics_(registry_) {
    Restart();
  }

  // What the controller's caller_scopes gives (its thread follows them).
  void SetCallerScopes(std::shared_ptr<const CallerScopes> scopes) {
    MutexLock lock(&scopes_mu_);
    caller_scopes_ = std::move(scopes);
  }

  // Team a's bundle of app/ (clusters team=a, namespaces team-a-*) that a1 (team=a) got
  // and b1 (team=b) did not, its caller then taken off every line.
  void GoneTeamsBundle(v1::Bundle* bundle, uint64_t* a1, uint64_t* b1);

  void Restart() {
    controller_.reset();
    hub_ = std::make_unique<Hub>(&store_, metrics_, absl::Milliseconds(250), 128 << 20, hub_clock_);
    hub_->SetTrustAgentLabels(true);  // agents here are targeted by the labels they report
    if (cluster_groups_) hub_->SetClusterGroups(groups_);  // as main does, before Load
    ASSERT_TRUE(hub_->Load().ok());
    ControllerOptions options;
    options.allow_local_sources = true;  // the test repositories are local
    options.cluster_groups = cluster_groups_;
    if (!kustomize_.empty()) options.engines.binaries["kustomize"] = kustomize_;
    if (!helm_.empty()) {
      options.engines.binaries["helm"] = helm_;
      options.engines.allow_network = true;  // a stand-in, not a chart's hooks
    }
    options.sops_identities = [identities = sops_identities_] { return identities; };
    options.caller_scopes = [this] {
      MutexLock lock(&scopes_mu_);
      return caller_scopes_;
    };
#ifdef __SANITIZE_ADDRESS__
    // One render worker: GCC 12's ASAN allocator is not fork-safe, and a jsonnet child
    // forked while the other worker allocates can hang (common/subprocess.h, RunInChild).
    // TSAN and the normal build run these tests with two workers.
    options.workers = 1;
#endif
    controller_ =
        std::make_unique<Controller>(&store_, repos_.get(), hub_.get(), metrics_, options);
    controller_->SetEventBus(&events_);
    ASSERT_TRUE(controller_->Load().ok());
    controller_->Start();
  }

  // Rewrites `bundle`'s stored record as a control plane from before an upgrade left it
  // (`forget` clears what that one did not know), and restarts on it.
  void AsLeftBeforeTheUpgrade(const std::string& bundle,
                              const std::function<void(v1::BundleRecord&)>& forget) {
    absl::StatusOr<std::string> stored = store_.Get("bundle_records", bundle);
    ASSERT_TRUE(stored.ok()) << stored.status();
    v1::BundleRecord record;
    ASSERT_TRUE(record.ParseFromString(*stored));
    forget(record);
    ASSERT_TRUE(
        store_.Apply({Store::Put("bundle_records", bundle, record.SerializeAsString())}).ok());
    Restart();
    ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  }

  // apps/web: a kustomization of one Deployment running nginx:1.24 (for Argo CD's image
  // overrides to set).
  void WriteWebKustomization() {
    git_.Write("apps/web/kustomization.yaml", "resources: [deploy.yaml]\n");
    git_.Write("apps/web/deploy.yaml",
               "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n"
               "  selector: {matchLabels: {app: web}}\n  template:\n"
               "    metadata: {labels: {app: web}}\n"
               "    spec: {containers: [{name: web, image: \"nginx:1.24\"}]}\n");
  }
  // The object `bundle`'s next update to `agent` upserts, when it upserts exactly one.
  std::string OnlyObjectOf(uint64_t agent, const std::string& bundle) {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, bundle);
    if (message == nullptr || message->message.update().upserts_size() != 1) return std::string();
    return message->message.update().upserts(0).yaml();
  }

  // Every bundle's listing, by name.
  std::map<std::string, v1::BundleInfo> ListedByName() {
    std::map<std::string, v1::BundleInfo> listed;
    for (v1::BundleInfo& b : controller_->ListBundles()) listed[b.bundle().name()] = b;
    return listed;
  }

  // That `agent`'s next update of each bundle holds one object, named after its chart's
  // release (the stand-in helm's ConfigMap). Waited for (up to 30 s): a render that drops
  // objects goes out once its source's other bundles rendered the commit too, after the
  // call that caused it returned.
  void ExpectReleases(uint64_t agent,
                      const std::vector<std::pair<std::string, std::string>>& releases) {
    for (const auto& [bundle, release] : releases) {
      std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, bundle);
      for (int i = 0; message == nullptr && i < 3000; ++i) {
        absl::SleepFor(absl::Milliseconds(10));
        message = hub_->NextMessage(agent, bundle);
      }
      ASSERT_NE(message, nullptr) << bundle;
      ASSERT_EQ(message->message.update().upserts_size(), 1) << bundle;
      EXPECT_EQ(message->message.update().upserts(0).key().name(), release) << bundle;
    }
  }

  v1::Source Source() {
    v1::Source source;
    source.set_name("app");
    source.set_url(git_.url());
    return source;
  }
  // Adds source `source` of `url`, polled hourly, and its bundle `bundle` of `path`.
  void AddHourlySourceAndBundle(const std::string& source, const std::string& url,
                                const std::string& bundle, const std::string& path,
                                const std::string& selector = "") {
    v1::Source hourly = Source();
    hourly.set_name(source);
    hourly.set_url(url);
    hourly.set_poll_interval_seconds(3600);
    ASSERT_TRUE(controller_->AddSource(hourly, false).ok());
    v1::Bundle added = Bundle(bundle, path, selector);
    added.set_source(source);
    ASSERT_TRUE(controller_->AddBundle(added, false).ok());
  }

  // Four small apps, each with a prod and a staging bundle of the same 5 ConfigMaps, on
  // cluster c1 (env=prod) and `more_prod_clusters` more like it, and c2 (env=staging);
  // staging's bundles have --max-prune=`staging_max_prune`. Then one commit empties
  // prod's but for one ConfigMap each.
  void EmptyProdOfFourSmallApps(const std::string& staging_max_prune, int more_prod_clusters = 0) {
    for (const std::string app : {"a", "b", "c", "d"}) {
      for (int i = 0; i < 5; ++i) {
        for (const char* env : {"prod", "staging"}) {
          git_.Write(absl::StrCat("apps/", app, "/", env, "/cm", i, ".yaml"),
                     Cm(absl::StrCat(app, "-cm", i)));
        }
      }
    }
    git_.Commit("four small apps, each for prod and staging");
    ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
    for (const std::string app : {"a", "b", "c", "d"}) {
      for (const std::string env : {"prod", "staging"}) {
        v1::Bundle bundle =
            Bundle(app + "-" + env, absl::StrCat("apps/", app, "/", env), "env=" + env);
        bundle.mutable_sync()->set_prune(true);
        if (env == "staging") bundle.set_max_prune(staging_max_prune);
        ASSERT_TRUE(controller_->AddBundle(bundle, false).ok());
      }
    }
    ConnectAgent(hub_.get(), "c1", {{"env", "prod"}});
    for (int i = 0; i < more_prod_clusters; ++i) {
      ConnectAgent(hub_.get(), absl::StrCat("c1-", i), {{"env", "prod"}});
    }
    ConnectAgent(hub_.get(), "c2", {{"env", "staging"}});

    for (const std::string app : {"a", "b", "c", "d"}) {
      for (int i = 1; i < 5; ++i) git_.Remove(absl::StrCat("apps/", app, "/prod/cm", i, ".yaml"));
    }
    git_.Commit("prod's apps emptied by mistake");
    ASSERT_TRUE(controller_->SyncSource("app").ok());
  }
  // Expects each of EmptyProdOfFourSmallApps' prod bundles held, saying `why`.
  void ExpectEachProdBundleHeld(const std::string& why) {
    for (const std::string app : {"a", "b", "c", "d"}) {
      const std::string bundle = app + "-prod";
      bool held = false;
      for (int i = 0; i < 1000 && !held; ++i) {
        held = controller_->GetRollout(bundle)->prune_held();
        if (!held) absl::SleepFor(absl::Milliseconds(10));
      }
      EXPECT_TRUE(held) << bundle << ": " << controller_->GetRollout(bundle)->message();
      EXPECT_THAT(controller_->GetRollout(bundle)->message(), HasSubstr(why)) << bundle;
    }
  }

  // Restarts the controller with a stand-in helm that prints what helm prints for a chart
  // of one ConfigMap named after the release (testing::WriteFakeHelm).
  void UseFakeHelm() {
    helm_ = testing::WriteFakeHelm(TempDir("fake-helm"));
    ASSERT_FALSE(helm_.empty());
    Restart();
  }
  // Restarts the controller with a stand-in helm that renders a ConfigMap echoing the
  // values and capabilities it was given (testing::WriteValuesEchoHelm).
  void UseEchoHelm() {
    helm_ = testing::WriteValuesEchoHelm(TempDir("echo-helm"));
    ASSERT_FALSE(helm_.empty());
    Restart();
  }

  v1::Bundle Bundle(const std::string& name, const std::string& path,
                    const std::string& selector = "") {
    v1::Bundle bundle;
    bundle.set_name(name);
    bundle.set_source("app");
    bundle.set_path(path);
    bundle.set_selector(selector);
    return bundle;
  }

  // The move tests' repository: apps/api (plain) with ConfigMaps a and moved, apps/web
  // (kustomize) with b.
  void WriteApiAndWeb() {
    git_.Write("apps/api/a.yaml", Cm("a"));
    git_.Write("apps/api/moved.yaml", Cm("moved"));
    git_.Write("apps/web/kustomization.yaml", "resources: [b.yaml]\n");
    git_.Write("apps/web/b.yaml", Cm("b"));
    git_.Commit("two bundles");
  }
  // Its source, and bundles api and web.
  void AddApiAndWeb() {
    WriteApiAndWeb();
    ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
    ASSERT_TRUE(controller_->AddBundle(Bundle("api", "apps/api"), false).ok());
    ASSERT_TRUE(controller_->AddBundle(Bundle("web", "apps/web"), false).ok());
  }
  // One commit moves ConfigMap moved from api to web; returns it.
  std::string MoveMovedToWeb() {
    git_.Remove("apps/api/moved.yaml");
    git_.Write("apps/web/moved.yaml", Cm("moved"));
    git_.Write("apps/web/kustomization.yaml", "resources: [b.yaml, moved.yaml]\n");
    return git_.Commit("move moved from api to web");
  }

  std::string kustomize_;  // the kustomize binary, when not the one found
  std::string helm_;       // the helm binary, when not the one found
  std::shared_ptr<const AgeIdentities> sops_identities_;  // --sops-age-key-file's
  Mutex scopes_mu_;
  std::shared_ptr<const CallerScopes> caller_scopes_ ABSL_GUARDED_BY(scopes_mu_);
  GitFixture git_;
  std::unique_ptr<GitRepositories> repos_;
  metrics::Registry registry_;
  ControlPlaneMetrics metrics_;
  MemoryStore store_;
  EventBus events_;
  // The hub's clock; a test that counts the reconciles reports queue sets a fake one (the
  // real one is wall time: a step of the system clock would pass the hub's refresh).
  FakeClock hub_fake_clock_;
  Clock* hub_clock_ = &RealClock();
  std::unique_ptr<Hub> hub_;
  // ControllerOptions.cluster_groups, and the hub's groups, at the next Restart.
  bool cluster_groups_ = false;
  std::shared_ptr<const std::vector<ClusterGroup>> groups_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerTest, RendersKeepsLastGoodOnErrorAndSkipsUntouchedBundles) {
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Write("apps/api/cm.yaml", Cm("api"));
  std::string first = git_.Commit("first");
  auto source = controller_->AddSource(Source(), false);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ(source->commit(), first);
  auto web = controller_->AddBundle(Bundle("web", "apps/web/"), false);
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_EQ(web->object_count(), 1);
  EXPECT_EQ(web->bundle().path(), "apps/web");
  ASSERT_TRUE(controller_->AddBundle(Bundle("api", "apps/api"), false).ok());
  std::string good_revision = web->revision();

  // A commit that only touches api does not re-render web.
  git_.Write("apps/api/cm.yaml", Cm("api", "2"));
  git_.Commit("api only");
  double renders_before = metrics_.renders.Add({{"engine", "plain"}, {"result", "ok"}}).Value();
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(metrics_.renders.Add({{"engine", "plain"}, {"result", "ok"}}).Value(),
            renders_before + 1);
  EXPECT_EQ(metrics_.render_cache_hits.Add({}).Value(), 1);
  // Its event says so, rather than that it rendered.
  std::vector<v1::Event> renders =
      (*events_.Subscribe({"web", "", {"render.done"}}, nullptr))->Take();
  ASSERT_EQ(renders.size(), 2u);
  EXPECT_EQ(renders[0].message(), "plain render of " + first.substr(0, 12));
  EXPECT_THAT(renders[1].message(), HasSubstr("the last plain render stands (render cache)"));
  EXPECT_EQ(renders[1].revision(), good_revision);

  // A malformed commit keeps the last good revision and names file and line.
  git_.Write("apps/web/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
  std::string bad = git_.Commit("break web");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  std::vector<v1::BundleInfo> bundles = controller_->ListBundles();
  ASSERT_EQ(bundles.size(), 2u);
  const v1::BundleInfo& broken = bundles[1];
  ASSERT_EQ(broken.bundle().name(), "web");
  EXPECT_EQ(broken.revision(), good_revision);
  EXPECT_THAT(broken.error(), HasSubstr("apps/web/cm.yaml:"));
  EXPECT_EQ(broken.error_commit(), bad);

  // Definitions, the last good revision and the error survive a restart.
  Restart();
  bundles = controller_->ListBundles();
  ASSERT_EQ(bundles.size(), 2u);
  EXPECT_EQ(bundles[1].revision(), good_revision);
  EXPECT_THAT(bundles[1].error(), HasSubstr("apps/web/cm.yaml:"));
}

// A bundle added right after a push of its path: the source's last fetch predates the
// path, so the add fetches once rather than answering "path not found".
TEST_F(ControllerTest, ABundleAddedForAPathJustPushedFetchesItsSourceOnce) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  git_.Write("b/cm.yaml", Cm("b"));
  const std::string pushed = git_.Commit("b, not fetched yet");
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(Bundle("b", "b"), false);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->error(), "");
  EXPECT_EQ(added->commit(), pushed);
  EXPECT_NE(added->revision(), "");
  // A path that is not there after the fetch either is the error it was.
  absl::StatusOr<v1::BundleInfo> missing = controller_->AddBundle(Bundle("c", "c"), false);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_THAT(missing->error(),
              HasSubstr("path \"c\" not found at commit " + pushed.substr(0, 12)));
}

// `bundle rollback --to` takes what operators copy: a revision or commit of the bundle's
// history, or a tag, branch or (abbreviated) commit id of its source.
TEST_F(ControllerTest, RollbackTakesARevisionATagABranchOrAnyCommitOfTheSource) {
  git_.Write("apps/web/cm.yaml", Cm("web", "1"));
  const std::string v1 = git_.Commit("v1");
  git_.Tag("v1");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  absl::StatusOr<v1::BundleInfo> first = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(first.ok()) << first.status();
  git_.Write("apps/web/cm.yaml", Cm("web", "2"));
  const std::string v2 = git_.Commit("v2, never fetched");
  git_.Write("apps/web/cm.yaml", Cm("web", "3"));
  const std::string v3 = git_.Commit("v3");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  auto pinned_to = [&](const std::string& to) -> std::string {
    absl::StatusOr<v1::BundleInfo> info = controller_->PinBundle("web", to);
    if (!info.ok()) return std::string(info.status().message());
    return info->pinned_commit();
  };
  EXPECT_EQ(pinned_to(first->revision().substr(0, 7)), v1) << "a revision of its history";
  EXPECT_EQ(pinned_to("v1"), v1) << "a tag";
  EXPECT_EQ(pinned_to(v2.substr(0, 9)), v2) << "a commit the control plane never fetched";
  EXPECT_NE(controller_->ListBundles()[0].revision(), first->revision());
  EXPECT_EQ(pinned_to(v2), v2);
  EXPECT_EQ(pinned_to("main"), v3) << "a branch: the commit it names now";
  EXPECT_THAT(pinned_to("v9"), HasSubstr("no revision or commit of bundle web, nor a tag"));
  EXPECT_THAT(pinned_to("00000000"), HasSubstr("no revision or commit of bundle web"));
  EXPECT_EQ(controller_->ListBundles()[0].pinned_commit(), v3) << "a refused --to changes nothing";
}

// `rollout status -w --commit`: a bundle has reached a commit once reconciled at it or at a
// later commit of its history (fetched with it or after it); not one of another branch,
// nor one not fetched yet, each saying why; and a later render's failure is the commit's.
TEST_F(ControllerTest, ABundleReachesACommitAtItOrAtALaterOne) {
  git_.Write("apps/web/cm.yaml", Cm("web", "1"));
  const std::string v1 = git_.Commit("v1");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("web", "apps/web"), false).ok());
  git_.Write("apps/web/cm.yaml", Cm("web", "2"));
  const std::string v2 = git_.Commit("v2");
  git_.Write("apps/api/cm.yaml", Cm("api"));
  const std::string v3 = git_.Commit("v3, leaves web alone");
  auto reach = [&](const std::string& asked) {
    absl::StatusOr<v1::CommitReach> got = controller_->ReachOf("web", asked);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.value_or(v1::CommitReach());
  };
  v1::CommitReach got = reach(v2.substr(0, 8));
  EXPECT_FALSE(got.reached());
  EXPECT_EQ(got.commit(), "");
  EXPECT_THAT(got.note(), HasSubstr("source app has not fetched it yet"));
  EXPECT_EQ(got.bundle_commit(), v1);

  // Fetched with a later commit: the bundle is at v3, which holds v2's change.
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  got = reach(v2.substr(0, 8));
  EXPECT_TRUE(got.reached());
  EXPECT_FALSE(got.failed());
  EXPECT_EQ(got.commit(), v2);
  EXPECT_EQ(got.bundle_commit(), v3);
  EXPECT_EQ(got.note(), "");
  EXPECT_TRUE(reach(v1).reached());
  EXPECT_TRUE(reach(absl::AsciiStrToUpper(v3.substr(0, 4))).reached());

  // Another branch's commit is not in its history (until merged).
  git_.Git("checkout -q -b other " + v1);
  git_.Write("apps/web/cm.yaml", Cm("web", "side"));
  const std::string side = git_.Commit("on another branch");
  git_.Git("checkout -q main");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  got = reach(side);
  EXPECT_FALSE(got.reached());
  EXPECT_EQ(got.commit(), side);
  EXPECT_THAT(got.note(), HasSubstr("not in the history of " + v3.substr(0, 12) +
                                    ", the commit the bundle runs: a commit of another branch "
                                    "counts once merged"));

  // A later commit's render fails: for v2, the bundle's newest render, past it, failed.
  git_.Write("apps/web/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
  const std::string bad = git_.Commit("break web");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  got = reach(v2);
  EXPECT_TRUE(got.reached());
  EXPECT_TRUE(got.failed());
  got = reach(bad);
  EXPECT_FALSE(got.reached()) << "it runs v3 still";
  EXPECT_TRUE(got.failed());
  EXPECT_EQ(got.note(), "") << "not reached yet, and in its history";
  EXPECT_FALSE(reach(side).failed());

  EXPECT_EQ(controller_->ReachOf("web", "main").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(controller_->ReachOf("nope", v1).status().code(), absl::StatusCode::kNotFound);
}

// A replacement answers with the definition it replaced, so the caller sees what it
// changed; an add, or the same definition again, with none.
TEST_F(ControllerTest, AReplacementAnswersWithTheDefinitionItReplaced) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  absl::StatusOr<v1::SourceInfo> source = controller_->AddSource(Source(), false);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_FALSE(source->has_replaced());
  v1::Source slower = Source();
  slower.set_poll_interval_seconds(600);
  source = controller_->AddSource(slower, true);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ(source->replaced().poll_interval_seconds(), 0);
  EXPECT_EQ(source->source().poll_interval_seconds(), 600);

  v1::Bundle bundle = Bundle("b", "a");
  (*bundle.mutable_values())["replicas"] = "2";
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_FALSE(added->has_replaced());
  added = controller_->AddBundle(bundle, true);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_FALSE(added->has_replaced()) << "the same definition replaces nothing";
  bundle.clear_values();
  added = controller_->AddBundle(bundle, true);
  ASSERT_TRUE(added.ok()) << added.status();
  ASSERT_TRUE(added->has_replaced());
  EXPECT_EQ(added->replaced().values().at("replicas"), "2");
  EXPECT_TRUE(added->bundle().values().empty());

  // A read-modify-write names the generation it read: a change made meanwhile wins.
  const int64_t read = added->bundle().generation();
  ASSERT_GT(read, 0);
  bundle.set_selector("env=prod");
  absl::Status stale =
      controller_->AddBundle(bundle, true, absl::InfiniteFuture(), false, read - 1).status();
  EXPECT_TRUE(absl::IsAborted(stale)) << stale;
  EXPECT_THAT(std::string(stale.message()), HasSubstr("changed since it was read"));
  EXPECT_EQ(controller_->ListBundles()[0].bundle().selector(), "") << "nothing changed";
  added = controller_->AddBundle(bundle, true, absl::InfiniteFuture(), false, read);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->bundle().selector(), "env=prod");
  EXPECT_EQ(added->bundle().generation(), read + 1);
  EXPECT_TRUE(absl::IsAborted(
      controller_->AddBundle(Bundle("gone", "a"), true, absl::InfiniteFuture(), false, 1).status()))
      << "a bundle that is not there has no generation to match";

  // Each change of a definition is an event, before its render's: what changed, by name.
  ASSERT_TRUE(controller_->RemoveBundle("b").ok());
  ASSERT_TRUE(controller_->RemoveSource("app").ok());
  std::vector<std::string> told;
  for (const v1::Event& event : (*events_.Subscribe({"",
                                                     "",
                                                     {"bundle.", "source.added", "source.replaced",
                                                      "source.removed", "render.done"}},
                                                    nullptr))
                                    ->Take()) {
    told.push_back(
        absl::StrCat(event.type(), " ", event.bundle(), event.source(), ": ", event.message()));
  }
  EXPECT_THAT(
      told,
      ElementsAre("source.added app: added by an operator: " + git_.url(),
                  "source.replaced app: replaced by an operator; changed: poll_interval_seconds",
                  "bundle.added b: added by an operator: source app, path a, every cluster",
                  HasSubstr("render.done b: plain render of "),
                  "bundle.replaced b: replaced by an operator (generation 2); changed: values",
                  HasSubstr("render.done b: "),
                  "bundle.replaced b: replaced by an operator (generation 3); changed: selector",
                  HasSubstr("render.done b: "),
                  "bundle.removed b: removed by an operator: clusters that hold it prune what "
                  "it applied",
                  "source.removed app: removed by an operator"));
}

// The number of sources and bundles is bounded: one more is refused, naming the bound;
// replacing one, or removing one and adding another, is not.
TEST_F(ControllerTest, TheCountOfSourcesAndBundlesIsBounded) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  ControllerOptions options;
  options.allow_local_sources = true;
  options.max_sources = 2;
  options.max_bundles = 2;
  MemoryStore store;
  Hub hub(&store, metrics_);
  Controller controller(&store, repos_.get(), &hub, metrics_, options);
  ASSERT_TRUE(controller.Load().ok());
  controller.Start();
  auto source = [&](const std::string& name) {
    v1::Source s = Source();
    s.set_name(name);
    return s;
  };
  ASSERT_TRUE(controller.AddSource(source("s1"), false).ok());
  ASSERT_TRUE(controller.AddSource(source("s2"), false).ok());
  absl::Status third = controller.AddSource(source("s3"), false).status();
  EXPECT_TRUE(absl::IsResourceExhausted(third)) << third;
  EXPECT_EQ(third.message(),
            "source \"s3\": this control plane already has 2 sources, its --max-sources; "
            "remove one, or raise the bound");
  v1::Source replaced = source("s2");
  replaced.set_poll_interval_seconds(60);
  EXPECT_TRUE(controller.AddSource(replaced, true).ok()) << "a replacement is no new source";

  v1::Bundle b = Bundle("b1", "a");
  b.set_source("s1");
  ASSERT_TRUE(controller.AddBundle(b, false).ok());
  b.set_name("b2");
  ASSERT_TRUE(controller.AddBundle(b, false).ok());
  b.set_name("b3");
  absl::Status refused = controller.AddBundle(b, false).status();
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("already has 2 bundles, its --max-bundles"));
  ASSERT_TRUE(controller.RemoveBundle("b1").ok());
  EXPECT_TRUE(controller.AddBundle(b, false).ok()) << "room again";
  EXPECT_EQ(controller.ListBundles().size(), 2u);
}

TEST_F(ControllerTest, RejectsBadDefinitionsClearly) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  v1::Source bad_name = Source();
  bad_name.set_name("App_1");
  EXPECT_THAT(std::string(controller_->AddSource(bad_name, false).status().message()),
              HasSubstr("source name \"App_1\""));
  v1::Source bad_url = Source();
  bad_url.set_url("ftp://x");
  EXPECT_THAT(std::string(controller_->AddSource(bad_url, false).status().message()),
              HasSubstr("ftp://x"));
  v1::Source with_credentials = Source();
  with_credentials.set_credentials_ref("github-token");
  EXPECT_THAT(std::string(controller_->AddSource(with_credentials, false).status().message()),
              HasSubstr("source \"app\": source needs credential github-token but the control "
                        "plane has no --credentials-dir"));
  v1::Source secret_in_url = Source();
  secret_in_url.set_url("https://user:hunter2@git.example.com/app.git");
  absl::Status refused = controller_->AddSource(secret_in_url, false).status();
  EXPECT_THAT(std::string(refused.message()), HasSubstr("carries credentials"));
  EXPECT_THAT(std::string(refused.message()), Not(HasSubstr("hunter2")));
  // Every part of a definition has a bound, and a ref Git could not name is refused.
  v1::Source long_url = Source();
  long_url.set_url("https://git.example.com/" + std::string(3000, 'a'));
  EXPECT_THAT(std::string(controller_->AddSource(long_url, false).status().message()),
              HasSubstr("source URL is 3024 bytes; at most 2048 are allowed"));
  v1::Source long_ref = Source();
  long_ref.set_ref(std::string(300, 'r'));
  EXPECT_THAT(std::string(controller_->AddSource(long_ref, false).status().message()),
              HasSubstr("ref is 300 bytes; at most 256 are allowed"));
  for (const std::string ref : {"a..b", "a b", "a\x7f", "main^"}) {
    v1::Source bad_ref = Source();
    bad_ref.set_ref(ref);
    EXPECT_THAT(std::string(controller_->AddSource(bad_ref, false).status().message()),
                HasSubstr("is not a valid branch, tag or commit"))
        << ref;
  }
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok()) << "identical re-add is a no-op";
  v1::Source other = Source();
  other.set_ref("dev");
  EXPECT_EQ(controller_->AddSource(other, false).status().code(), absl::StatusCode::kAlreadyExists);

  EXPECT_THAT(std::string(controller_->AddBundle(Bundle("b", "../etc"), false).status().message()),
              HasSubstr("\"..\""));
  EXPECT_THAT(
      std::string(controller_->AddBundle(Bundle("b", "a", "env in (x"), false).status().message()),
      HasSubstr("selector"));
  EXPECT_THAT(
      std::string(
          controller_->AddBundle(Bundle("b", std::string(5000, 'p')), false).status().message()),
      HasSubstr("bundle \"b\": --path is 5000 bytes; at most 4096 are allowed"));
  std::string wide = "env in (a";
  while (wide.size() < 5000) absl::StrAppend(&wide, ",a");
  EXPECT_THAT(
      std::string(controller_->AddBundle(Bundle("b", "a", wide + ")"), false).status().message()),
      HasSubstr("--selector is 5002 bytes; at most 4096 are allowed"));
  v1::Bundle partitioned = Bundle("b", "a");
  partitioned.mutable_rollout()->add_partitions(wide + ")");
  EXPECT_THAT(std::string(controller_->AddBundle(partitioned, false).status().message()),
              HasSubstr("a --partition selector is 5002 bytes"));
  v1::Bundle huge = Bundle("b", "a");
  (*huge.mutable_values())["blob"] = std::string(2 << 20, 'v');
  EXPECT_THAT(std::string(controller_->AddBundle(huge, false).status().message()),
              HasSubstr("the definition is 2097"));
  v1::Bundle many = Bundle("b", "a");
  for (int i = 0; i < 101; ++i) many.add_helm_values_files(absl::StrCat("v", i, ".yaml"));
  EXPECT_THAT(std::string(controller_->AddBundle(many, false).status().message()),
              HasSubstr("at most 100 jsonnet top-level arguments and 100 helm values files"));
  v1::Bundle unknown = Bundle("b", "a");
  unknown.set_engine("ksonnet");
  EXPECT_THAT(std::string(controller_->AddBundle(unknown, false).status().message()),
              HasSubstr("engine \"ksonnet\" is not one of helm, jsonnet, kustomize, plain"));
  v1::Bundle orphan = Bundle("b", "a");
  orphan.set_source("nope");
  EXPECT_EQ(controller_->AddBundle(orphan, false).status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(controller_->AddBundle(Bundle("b", "a"), false).ok());
  absl::Status in_use = controller_->RemoveSource("app");
  EXPECT_EQ(in_use.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(in_use.message()), HasSubstr("used by bundles b"));
  // A team's caller is told of the bundles it may see alone; the others are counted.
  ASSERT_TRUE(controller_->AddBundle(Bundle("team-a-web", "a"), false).ok());
  auto team_a = [](const std::string& bundle) { return bundle.rfind("team-a-", 0) == 0; };
  EXPECT_THAT(std::string(controller_->RemoveSource("app", team_a).message()),
              HasSubstr("source \"app\" is used by bundles team-a-web and 1 bundle outside the "
                        "caller's scope; remove them first"));
  EXPECT_THAT(
      std::string(
          controller_->RemoveSource("app", [](const std::string&) { return false; }).message()),
      HasSubstr("is used by 2 bundles outside the caller's scope"));
  ASSERT_TRUE(controller_->RemoveBundle("team-a-web").ok());
  ASSERT_TRUE(controller_->RemoveBundle("b").ok());
  EXPECT_TRUE(controller_->RemoveSource("app").ok());
  EXPECT_EQ(controller_->RemoveBundle("b").code(), absl::StatusCode::kNotFound);
}

TEST_F(ControllerTest, MissingPathIsABundleErrorNotACrash) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto info = controller_->AddBundle(Bundle("b", "nowhere"), false);
  ASSERT_TRUE(info.ok());
  EXPECT_THAT(info->error(), HasSubstr("path \"nowhere\" not found"));
  EXPECT_TRUE(info->revision().empty());
}

TEST_F(ControllerTest, AnEmptyRenderFailsTheBundleAndKeepsItsLastGoodRevision) {
  git_.Write("web/cm.yaml", Cm("a"));
  git_.Write("docs/README.md", "no manifests here\n");
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto web = controller_->AddBundle(Bundle("web", "web"), false);
  ASSERT_TRUE(web.ok());
  std::string good = web->revision();
  ASSERT_FALSE(good.empty());
  // Everything moved away: an empty render, which would prune the bundle everywhere.
  git_.Remove("web/cm.yaml");
  git_.Write("web/README.md", "moved to apps/web\n");
  git_.Commit("moved");
  auto after = controller_->SyncSource("app");
  ASSERT_TRUE(after.ok());
  v1::BundleInfo info;
  for (const v1::BundleInfo& b : controller_->ListBundles()) {
    if (b.bundle().name() == "web") info = b;
  }
  EXPECT_EQ(info.revision(), good) << "the last good revision stays";
  EXPECT_THAT(info.error(), HasSubstr("bundle web renders no objects from path web"));
  // A bundle that says so may be empty.
  v1::Bundle empty = Bundle("docs", "docs");
  empty.set_allow_empty(true);
  auto docs = controller_->AddBundle(empty, false);
  ASSERT_TRUE(docs.ok());
  EXPECT_TRUE(docs->error().empty()) << docs->error();
  EXPECT_EQ(docs->object_count(), 0);
}

TEST_F(ControllerTest, DetectsEnginesAndRerendersWhenABaseOutsideThePathChanges) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  git_.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
  git_.Write("base/cm.yaml", Cm("shared"));
  git_.Write("overlays/prod/kustomization.yaml", "namespace: prod\nresources: [../../base]\n");
  git_.Write("plain/cm.yaml", Cm("plain"));
  git_.Write("chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n");
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto overlay = controller_->AddBundle(Bundle("overlay", "overlays/prod"), false);
  ASSERT_TRUE(overlay.ok()) << overlay.status();
  EXPECT_EQ(overlay->engine(), "kustomize");
  EXPECT_EQ(overlay->object_count(), 1);
  EXPECT_TRUE(overlay->error().empty()) << overlay->error();
  auto plain = controller_->AddBundle(Bundle("plain", "plain"), false);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->engine(), "plain");
  auto chart = controller_->AddBundle(Bundle("chart", "chart"), false);
  ASSERT_TRUE(chart.ok());
  if (FindHelm().empty()) {
    EXPECT_THAT(chart->error(), HasSubstr("engine helm (chart): the control plane has no helm"));
  }

  // The base lives outside the overlay's path: the overlay must render again.
  git_.Write("base/cm.yaml", Cm("shared", "2"));
  git_.Commit("change the base");
  double hits_before = metrics_.render_cache_hits.Add({}).Value();
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  std::vector<v1::BundleInfo> bundles = controller_->ListBundles();
  ASSERT_EQ(bundles.size(), 3u);
  EXPECT_EQ(bundles[1].bundle().name(), "overlay");
  EXPECT_NE(bundles[1].revision(), overlay->revision()) << "the base change reached the overlay";
  EXPECT_EQ(bundles[2].revision(), plain->revision());
  EXPECT_EQ(metrics_.render_cache_hits.Add({}).Value(), hits_before + 1)
      << "the untouched plain bundle is a cache hit";
}

// Real repositories hold symbolic links. One leading to a file or folder of the repository
// reads as what it leads to (a plain bundle's file shared with another folder, a kustomize
// base linked into an overlay); a link elsewhere in the repository, even one leading out
// of it, no longer fails every kustomize bundle; a change to what a link leads to renders
// again (the render cache looks through links); a link out of the repository in a
// bundle's own folder fails that bundle, naming it, and its last good revision stays.
TEST_F(ControllerTest, SymbolicLinksReadAsWhatTheyLeadToWithinTheRepository) {
  const bool kustomize = !FindKustomize().empty();
  git_.Write("shared/cm.yaml", Cm("shared"));
  git_.Write("apps/web/own.yaml", Cm("own"));
  git_.Write("docs/intro.md", "hi\n");
  git_.Link("../../shared/cm.yaml", "apps/web/shared.yaml");
  git_.Link("docs/intro.md", "README.md");
  git_.Link("/etc/hostname", "docs/host.md");  // out of the repository, read by no bundle
  if (kustomize) {
    git_.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
    git_.Write("base/cm.yaml", Cm("base"));
    git_.Write("overlays/prod/kustomization.yaml", "namespace: prod\nresources: [base]\n");
    git_.Link("../../base", "overlays/prod/base");
  }
  git_.Commit("links");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto web = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_TRUE(web->error().empty()) << web->error();
  EXPECT_EQ(web->object_count(), 2);
  absl::StatusOr<v1::BundleInfo> overlay;
  if (kustomize) {
    overlay = controller_->AddBundle(Bundle("overlay", "overlays/prod"), false);
    ASSERT_TRUE(overlay.ok()) << overlay.status();
    EXPECT_EQ(overlay->engine(), "kustomize");
    EXPECT_TRUE(overlay->error().empty()) << overlay->error();
    EXPECT_EQ(overlay->object_count(), 1);
  }

  // What the links lead to changes, not the folders the bundles name.
  git_.Write("shared/cm.yaml", Cm("shared", "2"));
  if (kustomize) git_.Write("base/cm.yaml", Cm("base", "2"));
  git_.Commit("change what the links lead to");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  std::map<std::string, v1::BundleInfo> now;
  for (v1::BundleInfo& info : controller_->ListBundles()) now[info.bundle().name()] = info;
  EXPECT_NE(now["web"].revision(), web->revision()) << "shared/cm.yaml changed";
  EXPECT_TRUE(now["web"].error().empty()) << now["web"].error();
  if (kustomize) {
    EXPECT_NE(now["overlay"].revision(), overlay->revision()) << "base/cm.yaml changed";
  }

  // A link out of the repository in web's own folder fails web alone.
  git_.Link("/etc/hostname", "apps/web/host.yaml");
  git_.Commit("a link out");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  const std::string good = now["web"].revision();
  now.clear();
  for (v1::BundleInfo& info : controller_->ListBundles()) now[info.bundle().name()] = info;
  EXPECT_THAT(now["web"].error(),
              HasSubstr("apps/web/host.yaml: a symbolic link to /etc/hostname that leads "
                        "outside the repository"));
  EXPECT_EQ(now["web"].revision(), good) << "the last good revision stays";
  if (kustomize) {
    EXPECT_TRUE(now["overlay"].error().empty()) << now["overlay"].error();
  }
}

// The monorepo case: a commit re-renders exactly the bundles that read what it touched.
TEST_F(ControllerTest, CommitRerendersOnlyTheBundlesThatReadWhatItTouched) {
  constexpr int kBundles = 200;
  constexpr int kBases = 10;
  for (int b = 0; b < kBases; ++b) {
    git_.Write(absl::StrCat("lib/base-", b, ".libsonnet"),
               absl::StrCat("{ cm(name):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: "
                            "{ name: name }, data: { base: '",
                            b, "' } } }\n"));
  }
  for (int i = 0; i < kBundles; ++i) {
    git_.Write(absl::StrCat("apps/app-", i, "/main.jsonnet"),
               absl::StrCat("local base = import '../../lib/base-", i % kBases,
                            ".libsonnet';\n[base.cm('app-", i, "')]\n"));
  }
  git_.Commit("monorepo");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  for (int i = 0; i < kBundles; ++i) {
    auto info = controller_->AddBundle(
        Bundle(absl::StrCat("app-", i), absl::StrCat("apps/app-", i)), false);
    ASSERT_TRUE(info.ok() && info->error().empty()) << info.status() << info->error();
  }
  auto renders = [&] {
    return metrics_.renders.Add({{"engine", "jsonnet"}, {"result", "ok"}}).Value();
  };
  double renders_before = renders();
  double hits_before = metrics_.render_cache_hits.Add({}).Value();

  git_.Write("lib/base-3.libsonnet",
             "{ cm(name):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name }, "
             "data: { base: 'three' } } }\n");
  git_.Commit("touch one base");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(renders() - renders_before, kBundles / kBases) << "only the importers of base-3";
  EXPECT_EQ(metrics_.render_cache_hits.Add({}).Value() - hits_before, kBundles - kBundles / kBases);

  // A commit touching nothing any bundle reads renders nothing.
  git_.Write("README.md", "docs only\n");
  git_.Commit("docs");
  double renders_after = renders();
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(renders(), renders_after);

  // The cache survives a restart.
  Restart();
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  git_.Write("apps/app-7/main.jsonnet",
             "local base = import '../../lib/base-7.libsonnet';\n[base.cm('renamed')]\n");
  git_.Commit("change one app");
  renders_after = renders();
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(renders() - renders_after, 1);
}

// What a render read is stored apart from the bundle's record (which every rollout step
// rewrites), and holds only for the definition it was rendered for.
TEST_F(ControllerTest, TheRenderCacheIsStoredApartAndOnlyForItsDefinition) {
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Write("apps/api/a.yaml", Cm("a"));
  git_.Write("apps/api/b.yaml", Cm("b"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto web = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_EQ(web->object_count(), 1);

  absl::StatusOr<std::string> stored = store_.Get("bundle_records", "web");
  ASSERT_TRUE(stored.ok());
  v1::BundleRecord record;
  ASSERT_TRUE(record.ParseFromString(*stored));
  EXPECT_EQ(record.read_paths_size(), 0) << "the record carries no render cache";
  EXPECT_EQ(record.revision(), web->revision());
  stored = store_.Get("render_caches", "web");
  ASSERT_TRUE(stored.ok()) << stored.status();
  v1::RenderCache cache;
  ASSERT_TRUE(cache.ParseFromString(*stored));
  EXPECT_EQ(cache.generation(), web->bundle().generation());
  // The folder, and the .sourceignore files above it, there or not.
  EXPECT_THAT(cache.read_paths(), ElementsAre("apps/web", ".sourceignore", "apps/.sourceignore"));
  EXPECT_EQ(cache.read_ids_size(), 3);

  // After a restart the cache is used: an unrelated commit renders nothing.
  metrics::Counter& renders = metrics_.renders.Add({{"engine", "plain"}, {"result", "ok"}});
  const double rendered = renders.Value();
  Restart();
  git_.Write("README.md", "docs\n");
  git_.Commit("docs");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(renders.Value(), rendered);
  EXPECT_EQ(controller_->ListBundles()[0].revision(), web->revision());

  // A record stored by an earlier version carries its cache inline: still used.
  *record.mutable_read_paths() = cache.read_paths();
  *record.mutable_read_ids() = cache.read_ids();
  ASSERT_TRUE(store_
                  .Apply({Store::Put("bundle_records", "web", record.SerializeAsString()),
                          Store::Delete("render_caches", "web")})
                  .ok());
  Restart();
  git_.Write("README.md", "more docs\n");
  git_.Commit("more docs");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(renders.Value(), rendered);

  // The definition changed (its path), and the control plane stopped before the render
  // was stored: the cache is for the old definition, so the bundle renders its new path.
  stored = store_.Get("bundles", "web");
  ASSERT_TRUE(stored.ok());
  v1::Bundle definition;
  ASSERT_TRUE(definition.ParseFromString(*stored));
  definition.set_path("apps/api");
  definition.set_generation(definition.generation() + 1);
  ASSERT_TRUE(store_.Apply({Store::Put("bundles", "web", definition.SerializeAsString())}).ok());
  Restart();
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  std::vector<v1::BundleInfo> bundles;
  for (int i = 0; i < 300; ++i) {
    bundles = controller_->ListBundles();
    if (bundles.size() == 1 && bundles[0].object_count() == 2) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(bundles.size(), 1u);
  EXPECT_EQ(bundles[0].object_count(), 2) << "rendered from apps/api, not the cache of apps/web";
  EXPECT_NE(bundles[0].revision(), web->revision());
}

TEST_F(ControllerTest, KustomizeOverlaysRerenderOnlyWhenTheirBaseChanges) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  for (const char* base : {"a", "b"}) {
    git_.Write(absl::StrCat("bases/", base, "/kustomization.yaml"), "resources: [cm.yaml]\n");
    git_.Write(absl::StrCat("bases/", base, "/cm.yaml"), Cm(base));
  }
  for (int i = 0; i < 6; ++i) {
    git_.Write(
        absl::StrCat("overlays/o", i, "/kustomization.yaml"),
        absl::StrCat("namespace: o", i, "\nresources: [../../bases/", i % 2 ? "b" : "a", "]\n"));
  }
  git_.Commit("overlays");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  for (int i = 0; i < 6; ++i) {
    auto info =
        controller_->AddBundle(Bundle(absl::StrCat("o", i), absl::StrCat("overlays/o", i)), false);
    ASSERT_TRUE(info.ok() && info->error().empty()) << info->error();
  }
  auto renders = [&] {
    return metrics_.renders.Add({{"engine", "kustomize"}, {"result", "ok"}}).Value();
  };
  double before = renders();
  git_.Write("bases/b/cm.yaml", Cm("b", "2"));
  git_.Commit("change base b");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(renders() - before, 3) << "o1, o3 and o5 use base b";
}

TEST_F(ControllerTest, StatusFollowsAgentReports) {
  git_.Write("a/cm.yaml", Cm("a"));
  std::string commit = git_.Commit("a");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto bundle = controller_->AddBundle(Bundle("b", "a", "env=prod"), false);
  ASSERT_TRUE(bundle.ok());
  v1::Hello hello;
  hello.set_cluster("eu");
  (*hello.mutable_labels())["env"] = "prod";
  uint64_t session = hub_->Connect(hello, "peer", std::make_shared<FakeConnection>());
  v1::Hello dev = hello;
  dev.set_cluster("dev");
  (*dev.mutable_labels())["env"] = "dev";
  hub_->Connect(dev, "peer", std::make_shared<FakeConnection>());

  std::vector<v1::BundleStatus> statuses = controller_->GetStatus("", "");
  ASSERT_EQ(statuses.size(), 1u) << "dev is not targeted";
  EXPECT_EQ(statuses[0].sync_state(), v1::SYNC_STATE_OUT_OF_SYNC);
  EXPECT_EQ(statuses[0].desired_commit(), commit);

  v1::StatusUpdate report;
  report.set_bundle("b");
  report.set_revision(bundle->revision());
  report.set_applied_revision(bundle->revision());
  report.set_sync_state(v1::SYNC_STATE_SYNCED);
  report.set_health(v1::HEALTH_STATE_HEALTHY);
  hub_->OnStatus(session, report);
  statuses = controller_->GetStatus("eu", "b");
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].sync_state(), v1::SYNC_STATE_SYNCED);
  EXPECT_EQ(statuses[0].health(), v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(statuses[0].applied_commit(), commit);

  // A filter naming nothing known is an error, not an empty answer; one known but with
  // nothing to show is not.
  EXPECT_TRUE(controller_->CheckStatusFilter("dev", "").ok());
  EXPECT_TRUE(controller_->CheckStatusFilter("dev", "b").ok());
  EXPECT_TRUE(controller_->CheckStatusFilter("", "").ok());
  absl::Status no_cluster = controller_->CheckStatusFilter("ue", "b");
  EXPECT_TRUE(absl::IsNotFound(no_cluster));
  EXPECT_EQ(no_cluster.message(),
            "cluster ue not found: neither registered nor connected (see gitfleetctl cluster "
            "list)");
  absl::Status no_bundle = controller_->CheckStatusFilter("", "c");
  EXPECT_TRUE(absl::IsNotFound(no_bundle));
  EXPECT_THAT(std::string(no_bundle.message()), HasSubstr("bundle c not found"));
}

// A watcher of one cluster (events --cluster) gets what happens to the bundles that reach
// it: their definitions, renders and the commits of the source they read; not another
// cluster's bundle. The filter asks the controller, which publishes from its workers
// meanwhile (the lock order bus, controller, hub: run under TSAN too).
TEST_F(ControllerTest, AClustersWatcherSeesTheBundlesThatReachIt) {
  ConnectAgent(hub_.get(), "eu", {{"env", "prod"}});
  ConnectAgent(hub_.get(), "dev", {{"env", "dev"}});
  auto watch = [this](const std::string& cluster) {
    EventBus::Filter filter{"", cluster};
    filter.concerns = [this, cluster](const std::string& bundle) {
      return controller_->BundleConcernsCluster(bundle, cluster);
    };
    return *events_.Subscribe(filter, nullptr);
  };
  auto eu = watch("eu");
  auto dev = watch("dev");
  git_.Write("prod/cm.yaml", Cm("p"));
  git_.Write("dev/cm.yaml", Cm("d"));
  git_.Commit("two");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("shop", "prod", "env=prod"), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("lab", "dev", "env=dev"), false).ok());
  git_.Write("prod/cm.yaml", Cm("p2"));
  git_.Write("dev/cm.yaml", Cm("d2"));
  const std::string second = git_.Commit("both change");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  auto seen = [](const std::vector<v1::Event>& events) {
    std::set<std::string> out;
    for (const v1::Event& e : events) {
      out.insert(absl::StrCat(e.type(), " ", e.bundle(), e.source(), " ", e.commit()));
    }
    return out;
  };
  std::set<std::string> on_eu = seen(eu->Take());
  std::set<std::string> on_dev = seen(dev->Take());
  EXPECT_THAT(on_eu, ::testing::IsSupersetOf(std::vector<std::string>{
                         "bundle.added shop ", "render.done shop " + second,
                         "source.commit app " + second}));
  for (const std::string& event : on_eu) EXPECT_THAT(event, Not(HasSubstr("lab"))) << event;
  EXPECT_THAT(on_dev, ::testing::IsSupersetOf(
                          std::vector<std::string>{"bundle.added lab ", "render.done lab " + second,
                                                   "source.commit app " + second}));
  for (const std::string& event : on_dev) EXPECT_THAT(event, Not(HasSubstr("shop"))) << event;
  EXPECT_FALSE(controller_->BundleConcernsCluster("shop", "nowhere")) << "an unknown cluster";
  EXPECT_FALSE(controller_->BundleConcernsCluster("gone", "eu")) << "neither defined nor held";
}

// A notification sink's clusters=: an event concerns those clusters when it is about one
// of them, or about a bundle that targets one, or a source one of whose bundles does; the
// sink's filter asks while the controller publishes (under TSAN too).
TEST_F(ControllerTest, AnEventConcernsTheClustersItReaches) {
  ConnectAgent(hub_.get(), "eu", {{"env", "prod"}});
  ConnectAgent(hub_.get(), "dev", {{"env", "dev"}});
  const LabelSelector prod = *LabelSelector::Parse("env=prod");
  EventBus::Filter filter;
  filter.allows = [this, &prod](const v1::Event& event) {
    return controller_->EventConcernsClusters(event, prod);
  };
  auto sink = *events_.Subscribe(filter, nullptr);
  git_.Write("prod/cm.yaml", Cm("p"));
  git_.Write("dev/cm.yaml", Cm("d"));
  git_.Commit("two");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("shop", "prod", "env=prod"), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("lab", "dev", "env=dev"), false).ok());
  std::set<std::string> seen;
  for (const v1::Event& e : sink->Take()) seen.insert(absl::StrCat(e.type(), " ", e.bundle()));
  EXPECT_THAT(seen, ::testing::Contains("bundle.added shop"));
  EXPECT_THAT(seen, Not(::testing::Contains("bundle.added lab")));
  auto event = [](const std::string& bundle, const std::string& cluster,
                  const std::string& source) {
    v1::Event e;
    e.set_type("x");
    e.set_bundle(bundle);
    e.set_cluster(cluster);
    e.set_source(source);
    return e;
  };
  EXPECT_TRUE(controller_->EventConcernsClusters(event("lab", "eu", ""), prod))
      << "about a prod cluster, whatever the bundle";
  EXPECT_FALSE(controller_->EventConcernsClusters(event("shop", "dev", ""), prod));
  EXPECT_FALSE(controller_->EventConcernsClusters(event("", "nowhere", ""), prod));
  EXPECT_TRUE(controller_->EventConcernsClusters(event("", "", "app"), prod))
      << "shop reads the source";
  EXPECT_FALSE(
      controller_->EventConcernsClusters(event("", "", "app"), *LabelSelector::Parse("env=qa")));
  EXPECT_FALSE(controller_->EventConcernsClusters(event("", "", "other"), prod))
      << "no bundle reads it";
  EXPECT_TRUE(controller_->EventConcernsClusters(event("", "", ""), prod)) << "a resync";
  EXPECT_FALSE(controller_->EventConcernsClusters(event("gone", "", ""), prod));
}

// A team's bundle (defined by a scoped caller) reaches the clusters both its selector and
// its scope match; a replacement that brings no scope keeps it, one that brings another
// takes it, and a restart keeps it.
TEST_F(ControllerTest, ATeamsBundleReachesTheClustersItsScopeCoversAlone) {
  ConnectAgent(hub_.get(), "a1", {{"team", "a"}, {"env", "prod"}});
  ConnectAgent(hub_.get(), "b1", {{"team", "b"}, {"env", "prod"}});
  git_.Write("app/cm.yaml", Cm("x"));
  git_.Commit("one");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("team-a-app", "app");
  bundle.mutable_scope()->set_caller("team-a");
  bundle.mutable_scope()->set_clusters("team in (a)");
  ASSERT_TRUE(controller_->AddBundle(bundle, false).ok());
  auto reaches = [this](const std::string& cluster) {
    return controller_->BundleConcernsCluster("team-a-app", cluster);
  };
  auto info = [this] { return controller_->ListBundles("team-a-app", 1).at(0); };
  EXPECT_TRUE(reaches("a1"));
  EXPECT_FALSE(reaches("b1"));
  EXPECT_EQ(info().target_clusters(), 1);
  EXPECT_EQ(info().bundle().selector(), "") << "the bundle's own selector is kept apart";
  // A team's page: the bundles and clusters it keeps alone, the others passed over.
  ASSERT_TRUE(controller_->AddBundle(Bundle("other", "app"), false).ok());
  std::vector<v1::BundleInfo> page =
      controller_->ListBundles("", 1, [](const std::string& name) { return name != "other"; });
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].bundle().name(), "team-a-app");
  std::vector<v1::ClusterInfo> clusters = controller_->ListClusters(
      "", 0,
      [](const LabelMap& labels) { return labels.count("team") > 0 && labels.at("team") == "b"; });
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].name(), "b1");
  ASSERT_TRUE(controller_->RemoveBundle("other").ok());

  // The fleet's admin replaces it (no scope of its own): the scope stays.
  v1::Bundle replacement = Bundle("team-a-app", "app", "env=prod");
  ASSERT_TRUE(controller_->AddBundle(replacement, true).ok());
  EXPECT_EQ(info().bundle().scope().caller(), "team-a");
  EXPECT_EQ(info().bundle().selector(), "env=prod");
  EXPECT_TRUE(reaches("a1"));
  EXPECT_FALSE(reaches("b1"));
  EXPECT_EQ(info().target_clusters(), 1);
  // The same definition again is no change.
  const int64_t generation = info().bundle().generation();
  ASSERT_TRUE(controller_->AddBundle(replacement, true).ok());
  EXPECT_EQ(info().bundle().generation(), generation);

  Restart();
  EXPECT_EQ(info().bundle().scope().clusters(), "team in (a)");
  ConnectAgent(hub_.get(), "a1", {{"team", "a"}, {"env", "prod"}});
  ConnectAgent(hub_.get(), "b1", {{"team", "b"}, {"env", "prod"}});
  EXPECT_TRUE(reaches("a1"));
  EXPECT_FALSE(reaches("b1"));

  // Another scope's definition takes the bundle to its clusters (leaving a1: an explicit
  // act, as any selector change that leaves a cluster holding it).
  v1::Bundle moved = Bundle("team-a-app", "app");
  moved.mutable_scope()->set_caller("team-b");
  moved.mutable_scope()->set_clusters("team=b");
  ASSERT_TRUE(controller_->AddBundle(moved, true, absl::InfiniteFuture(), true).ok());
  EXPECT_FALSE(reaches("a1"));
  EXPECT_TRUE(reaches("b1"));
  // A scope's selector is checked as any selector is.
  moved.mutable_scope()->set_clusters("team in b");
  EXPECT_THAT(controller_->AddBundle(moved, true).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// A team's scope names the service account its bundles apply as: the agents get it whatever
// the definition asks (a fleet admin's replacement included), another one is refused, and
// it is part of the revision (an agent that cannot impersonate refuses it). A bundle
// outside a scope may name any valid account.
TEST_F(ControllerTest, ATeamsBundleAppliesAsItsScopesServiceAccount) {
  uint64_t a1 = ConnectAgent(hub_.get(), "a1", {{"team", "a"}});
  git_.Write("app/cm.yaml", Cm("x"));
  git_.Commit("one");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("team-a-app", "app");
  bundle.set_target_namespace("team-a");
  bundle.mutable_scope()->set_caller("team-a");
  bundle.mutable_scope()->set_clusters("team=a");
  bundle.mutable_scope()->set_service_account("deployer");
  bundle.mutable_sync()->set_service_account("team-a/admin");
  EXPECT_THAT(controller_->AddBundle(bundle, false).status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("--service-account team-a/admin is not the service account of "
                                 "its scope (deployer, of caller team-a)")));
  bundle.mutable_sync()->clear_service_account();
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->bundle().sync().service_account(), "deployer");
  std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(a1, "team-a-app");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().sync().service_account(), "deployer");

  // A fleet admin's replacement brings no scope and no account: the scope's stays.
  v1::Bundle replacement = Bundle("team-a-app", "app");
  replacement.set_target_namespace("team-a");
  absl::StatusOr<v1::BundleInfo> replaced = controller_->AddBundle(replacement, true);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(replaced->bundle().sync().service_account(), "deployer");
  EXPECT_EQ(replaced->revision(), added->revision());

  // Outside a scope: any account the API could know, none other.
  v1::Bundle own = Bundle("ops", "app");
  own.mutable_sync()->set_service_account("kube-system/Deployer");
  EXPECT_THAT(controller_->AddBundle(own, false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("bundle \"ops\": --service-account: service account")));
  own.mutable_sync()->set_service_account("ops/deployer");
  absl::StatusOr<v1::BundleInfo> as_account = controller_->AddBundle(own, false);
  ASSERT_TRUE(as_account.ok()) << as_account.status();
  own.mutable_sync()->clear_service_account();
  absl::StatusOr<v1::BundleInfo> as_agent = controller_->AddBundle(own, true);
  ASSERT_TRUE(as_agent.ok()) << as_agent.status();
  EXPECT_NE(as_agent->revision(), as_account->revision()) << "the account is in the revision";
}

// A team without a scope account names one in its own namespaces: not kube-system's or
// another team's (that account's rights would be the team's), whether with --service-account
// or through its repository's fleet.yaml (looked up in the agents' namespace, as Fleet does).
TEST_F(ControllerTest, ATeamsBundleIsAppliedAsAnAccountInItsOwnNamespacesAlone) {
  ConnectAgent(hub_.get(), "a1", {{"team", "a"}});
  git_.Write("app/cm.yaml", Cm("x"));
  git_.Commit("one");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("team-a-app", "app");
  bundle.mutable_scope()->set_caller("team-a");
  bundle.mutable_scope()->set_clusters("team=a");
  bundle.mutable_scope()->add_namespaces("team-a-*");
  bundle.mutable_sync()->set_service_account("kube-system/admin");
  EXPECT_THAT(controller_->AddBundle(bundle, false).status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("--service-account kube-system/admin is in namespace "
                                 "kube-system, outside the namespaces of its scope (team-a-*, "
                                 "of caller team-a)")));
  bundle.mutable_sync()->set_service_account("deployer");  // bare, and no --namespace
  EXPECT_THAT(controller_->AddBundle(bundle, false).status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("names no namespace and the bundle has no --namespace")));
  bundle.set_target_namespace("team-a-web");
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_TRUE(added->error().empty()) << added->error();
  const std::string good = added->revision();
  bundle.mutable_sync()->set_service_account("team-a-jobs/deployer");
  added = controller_->AddBundle(bundle, true);
  ASSERT_TRUE(added.ok()) << added.status();

  // fleet.yaml's account is in gitfleet-system, not the team's: the render fails whole.
  bundle.mutable_sync()->clear_service_account();
  added = controller_->AddBundle(bundle, true);
  ASSERT_TRUE(added.ok()) << added.status();
  const std::string unnamed = added->revision();
  git_.Write("app/fleet.yaml", "serviceAccount: fleet-admin\n");
  git_.Commit("fleet.yaml names an account");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  v1::BundleInfo info = controller_->ListBundles("team-a-app", 1).at(0);
  EXPECT_EQ(info.revision(), unnamed) << "the last good revision stays";
  EXPECT_THAT(info.error(),
              HasSubstr("bundle team-a-app: fleet.yaml's serviceAccount is "
                        "gitfleet-system/fleet-admin, outside the namespaces of the scope of "
                        "caller team-a (team-a-*), so nothing of this render is applied"));

  // A fleet admin's own bundle may name any account.
  v1::Bundle own = Bundle("ops", "app");
  own.mutable_sync()->set_service_account("kube-system/admin");
  absl::StatusOr<v1::BundleInfo> ops = controller_->AddBundle(own, false);
  ASSERT_TRUE(ops.ok()) << ops.status();
  EXPECT_TRUE(ops->error().empty()) << ops->error();
}

// A team's scope names the kinds its bundles may hold (kinds=, deny-kinds=): a render with
// another fails whole, naming each object and the scope, and the last good revision stays;
// its cluster-kinds= go to the agents, which judge what is cluster-scoped, in the revision.
TEST_F(ControllerTest, ATeamsBundleHoldsTheKindsItsScopeAllowsAlone) {
  uint64_t a1 = ConnectAgent(hub_.get(), "a1", {{"team", "a"}});
  git_.Write("app/cm.yaml", Cm("x"));
  git_.Commit("one");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("team-a-app", "app");
  v1::BundleScope& scope = *bundle.mutable_scope();
  scope.set_caller("team-a");
  scope.set_clusters("team=a");
  scope.add_namespaces("team-a-*");
  scope.add_kinds("ConfigMap");
  scope.add_kinds("apps/*");
  scope.add_kinds("rbac.authorization.k8s.io/*");
  scope.add_deny_kinds("rbac.authorization.k8s.io/ClusterRoleBinding");
  scope.add_cluster_kinds("rbac.authorization.k8s.io/ClusterRole");
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_TRUE(added->error().empty()) << added->error();
  const std::string good = added->revision();
  ASSERT_FALSE(good.empty());
  std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(a1, "team-a-app");
  ASSERT_NE(message, nullptr);
  EXPECT_THAT(message->message.update().sync().allowed_cluster_kinds(),
              ElementsAre("rbac.authorization.k8s.io/ClusterRole"));
  EXPECT_THAT(message->message.update().sync().allowed_namespaces(), ElementsAre("team-a-*"));

  // A Secret (not among kinds=) and a ClusterRoleBinding (deny-kinds=, though kinds= has
  // its group): nothing of the commit is rendered for anyone.
  git_.Write("app/secret.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: team-a-web}\n");
  git_.Write("app/binding.yaml",
             "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: "
             "{name: team-a-god}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: "
             "ClusterRole, name: cluster-admin}\n");
  git_.Write("app/deployment.yaml",
             "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: "
             "team-a-web}\n");
  git_.Commit("a Secret and a binding");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  v1::BundleInfo info = controller_->ListBundles("team-a-app", 1).at(0);
  EXPECT_EQ(info.revision(), good) << "the last good revision stays";
  EXPECT_THAT(info.error(), HasSubstr("bundle team-a-app: 2 objects are of a kind the scope of "
                                      "caller team-a does not allow, so nothing of this render "
                                      "is applied"));
  EXPECT_THAT(info.error(), HasSubstr("Secret team-a-web/s (Secret: not in kinds=ConfigMap,apps/"
                                      "*,rbac.authorization.k8s.io/*)"));
  EXPECT_THAT(info.error(), HasSubstr("ClusterRoleBinding team-a-god (rbac.authorization.k8s.io/"
                                      "ClusterRoleBinding: deny-kinds=rbac.authorization.k8s.io/"
                                      "ClusterRoleBinding)"));
  EXPECT_THAT(info.error(), Not(HasSubstr("Deployment")));

  // Taken out, the commit renders.
  git_.Remove("app/secret.yaml");
  git_.Remove("app/binding.yaml");
  git_.Commit("within the scope");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  info = controller_->ListBundles("team-a-app", 1).at(0);
  EXPECT_TRUE(info.error().empty()) << info.error();
  EXPECT_NE(info.revision(), good);
  EXPECT_EQ(info.object_count(), 2);
}

// A team's bundles follow its scope as its line changes (FollowCallerScopes): narrower
// kinds fail the next render, another account reaches the agents, and a clusters= that
// leaves a cluster holding the bundle is held, said, until a fleet admin's replacement
// with --allow-removal. A caller not in the scopes (its line gone) keeps what it had.
TEST_F(ControllerTest, ATeamsBundlesFollowItsScopeAndANarrowedClustersWaitsForAnAdmin) {
  uint64_t a1 = ConnectAgent(hub_.get(), "a1", {{"team", "a"}, {"env", "dev"}});
  ConnectAgent(hub_.get(), "a2", {{"team", "a"}, {"env", "prod"}});
  git_.Write("app/cm.yaml", Cm("x"));
  git_.Write("app/secret.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: team-a}\n");
  git_.Commit("one");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("team-a-app", "app");
  bundle.set_target_namespace("team-a");
  v1::BundleScope scope;
  scope.set_caller("team-a");
  scope.set_clusters("team=a");
  scope.set_service_account("team-a/deployer");
  *bundle.mutable_scope() = scope;
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(added.ok()) << added.status();
  const std::string good = added->revision();
  // a1 comes back saying it holds that revision.
  a1 = ConnectAgent(hub_.get(), "a1", {{"team", "a"}, {"env", "dev"}}, {{"team-a-app", good}});
  auto info = [this] { return controller_->ListBundles("team-a-app", 1).at(0); };

  // Unchanged, or a caller the files name with no scope to follow: nothing happens.
  EXPECT_THAT(controller_->FollowCallerScopes({{"team-a", scope}}), IsEmpty());
  EXPECT_THAT(controller_->FollowCallerScopes({{"team-a", v1::BundleScope()}}), IsEmpty());
  EXPECT_EQ(info().bundle().generation(), added->bundle().generation());

  // Another account: the agents get it.
  v1::BundleScope moved = scope;
  moved.set_service_account("team-a/limited");
  EXPECT_THAT(controller_->FollowCallerScopes({{"team-a", moved}}, absl::InfiniteFuture()),
              ElementsAre(HasSubstr("bundle team-a-app follows caller team-a's scope: "
                                    "service_account")));
  EXPECT_EQ(info().bundle().sync().service_account(), "team-a/limited");
  std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(a1, "team-a-app");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().sync().service_account(), "team-a/limited");
  const std::string limited = info().revision();
  EXPECT_NE(limited, good);

  // Kinds narrowed: the bundle's Secret fails its render; the last good revision stays.
  v1::BundleScope narrowed = moved;
  narrowed.add_kinds("ConfigMap");
  controller_->FollowCallerScopes({{"team-a", narrowed}}, absl::InfiniteFuture());
  EXPECT_THAT(info().bundle().scope().kinds(), ElementsAre("ConfigMap"));
  EXPECT_THAT(info().error(), HasSubstr("Secret team-a/s (Secret: not in kinds=ConfigMap)"));
  EXPECT_EQ(info().revision(), limited);

  // Clusters narrowed to prod: a1 holds it, so the old clusters= stays, and says why.
  v1::BundleScope prod = narrowed;
  prod.set_clusters("team=a,env=prod");
  prod.clear_kinds();
  std::vector<std::string> lines =
      controller_->FollowCallerScopes({{"team-a", prod}}, absl::InfiniteFuture());
  ASSERT_EQ(lines.size(), 2u) << absl::StrJoin(lines, "\n");
  EXPECT_THAT(lines[0], HasSubstr("now has clusters=team=a,env=prod, which no longer matches 1 "
                                  "cluster that holds it (a1); they keep what they run of "
                                  "it and get no new revision of it (its clusters= stays "
                                  "team=a) until a fleet admin replaces it with "
                                  "--allow-removal"));
  EXPECT_THAT(lines[1], HasSubstr("follows caller team-a's scope: kinds"));
  EXPECT_EQ(info().bundle().scope().clusters(), "team=a");
  EXPECT_TRUE(info().bundle().scope().kinds().empty()) << "the rest of the scope is followed";
  EXPECT_TRUE(info().error().empty()) << info().error();
  EXPECT_THAT(info().scope_held(), HasSubstr("(a1)"));
  EXPECT_TRUE(controller_->BundleConcernsCluster("team-a-app", "a1"));
  // Said once, not at every sweep.
  EXPECT_THAT(controller_->FollowCallerScopes({{"team-a", prod}}), IsEmpty());

  // Meanwhile a1 keeps what it runs and gets none of the team's new commits; a2 does, and
  // a dev cluster that joins gets nothing.
  const std::string held_revision = info().revision();
  a1 = ConnectAgent(hub_.get(), "a1", {{"team", "a"}, {"env", "dev"}},
                    {{"team-a-app", held_revision}});
  uint64_t a2 = ConnectAgent(hub_.get(), "a2", {{"team", "a"}, {"env", "prod"}},
                             {{"team-a-app", held_revision}});
  uint64_t a3 = ConnectAgent(hub_.get(), "a3", {{"team", "a"}, {"env", "dev"}});
  git_.Write("app/cm.yaml", Cm("x", "2"));
  git_.Commit("two");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  const std::string newer = info().revision();
  ASSERT_NE(newer, held_revision);
  message = hub_->NextMessage(a2, "team-a-app");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().revision(), newer);
  EXPECT_EQ(hub_->NextMessage(a1, "team-a-app"), nullptr) << "the scope left it";
  EXPECT_EQ(hub_->NextMessage(a3, "team-a-app"), nullptr) << "the scope never covered it";
  EXPECT_THAT(controller_->GetStatus("a1", "team-a-app").at(0).held_back(),
              HasSubstr("the scope of caller team-a now has clusters=team=a,env=prod, which "
                        "does not cover this cluster: it keeps what it runs of the bundle and "
                        "gets no new revision of it until a fleet admin replaces the bundle "
                        "with --allow-removal"));
  EXPECT_EQ(controller_->GetStatus("a2", "team-a-app").at(0).held_back(), "");
  // So from the first push after a restart, before the scopes are followed again (and a1,
  // not back yet, holds what it last reported: the scope's clusters= stays held).
  v1::StatusUpdate report;
  report.set_bundle("team-a-app");
  report.set_revision(held_revision);
  report.set_applied_revision(held_revision);
  report.set_sync_state(v1::SYNC_STATE_SYNCED);
  hub_->OnStatus(a1, report);
  auto scopes = std::make_shared<const CallerScopes>(CallerScopes{{"team-a", prod}});
  SetCallerScopes(scopes);
  Restart();
  controller_->FollowCallerScopes(*scopes);  // as the scopes thread does at the start
  EXPECT_THAT(info().scope_held(), HasSubstr("(a1)")) << "held, as before the restart";
  EXPECT_EQ(info().bundle().scope().clusters(), "team=a");
  a1 = ConnectAgent(hub_.get(), "a1", {{"team", "a"}, {"env", "dev"}},
                    {{"team-a-app", held_revision}});
  a3 = ConnectAgent(hub_.get(), "a3", {{"team", "a"}, {"env", "dev"}});
  EXPECT_EQ(hub_->NextMessage(a1, "team-a-app"), nullptr) << "after a restart";
  EXPECT_EQ(hub_->NextMessage(a3, "team-a-app"), nullptr) << "after a restart";
  EXPECT_THAT(controller_->GetStatus("a1", "team-a-app").at(0).held_back(),
              HasSubstr("does not cover this cluster"));

  // A fleet admin's replacement takes the scope as it is now: refused as a removal, then
  // done with --allow-removal.
  v1::Bundle admin = Bundle("team-a-app", "app");
  admin.set_target_namespace("team-a");
  EXPECT_THAT(controller_->AddBundle(admin, true).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("the clusters= of caller team-a's scope as it is now "
                                 "(team=a,env=prod) no longer matches 1 cluster that holds it "
                                 "(a1)")));
  absl::StatusOr<v1::BundleInfo> removed =
      controller_->AddBundle(admin, true, absl::InfiniteFuture(), /*allow_removal=*/true);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->bundle().scope().clusters(), "team=a,env=prod");
  EXPECT_EQ(info().target_clusters(), 1) << "a2 alone; a1 is sent the removal";
  EXPECT_THAT(controller_->FollowCallerScopes(*scopes), IsEmpty());
  EXPECT_TRUE(info().scope_held().empty());
}

// A team taken off the files no longer deploys from its repositories: its bundles get no
// new revision anywhere (each cluster keeps what it runs), said once, until its line is
// back.
TEST_F(ControllerTest, ABundleOfACallerTakenOffTheFilesGetsNoNewRevisions) {
  git_.Write("app/cm.yaml", Cm("x"));
  git_.Commit("one");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("team-a-app", "app");
  bundle.mutable_scope()->set_caller("team-a");
  bundle.mutable_scope()->set_clusters("team=a");
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(added.ok()) << added.status();
  const std::string first = added->revision();
  uint64_t a1 = ConnectAgent(hub_.get(), "a1", {{"team", "a"}}, {{"team-a-app", first}});
  auto info = [this] { return controller_->ListBundles("team-a-app", 1).at(0); };

  EXPECT_THAT(controller_->FollowCallerScopes({{"ci", v1::BundleScope()}}),
              ElementsAre(HasSubstr("bundle team-a-app: its caller team-a is named on no line "
                                    "of --api-tokens or --api-client-roles any more, so no "
                                    "cluster gets a new revision of it (each keeps what it "
                                    "runs) until the caller has a line again or a fleet admin "
                                    "removes the bundle")));
  EXPECT_THAT(controller_->FollowCallerScopes({}), IsEmpty()) << "said once";
  EXPECT_THAT(info().scope_held(), HasSubstr("named on no line"));
  git_.Write("app/cm.yaml", Cm("x", "2"));
  git_.Commit("two");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  const std::string second = info().revision();
  ASSERT_NE(second, first);
  EXPECT_EQ(hub_->NextMessage(a1, "team-a-app"), nullptr);
  uint64_t a2 = ConnectAgent(hub_.get(), "a2", {{"team", "a"}});
  EXPECT_EQ(hub_->NextMessage(a2, "team-a-app"), nullptr);
  EXPECT_THAT(controller_->GetStatus("a1", "team-a-app").at(0).held_back(),
              HasSubstr("named on no line"));

  // Its line back: the commit goes out.
  EXPECT_THAT(controller_->FollowCallerScopes({{"team-a", bundle.scope()}}), IsEmpty());
  EXPECT_TRUE(info().scope_held().empty());
  std::shared_ptr<const EncodedMessage> message;
  for (int i = 0; i < 2000 && message == nullptr; ++i) {
    message = hub_->NextMessage(a1, "team-a-app");
    if (message == nullptr) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().revision(), second);
}

void ControllerTest::GoneTeamsBundle(v1::Bundle* bundle, uint64_t* a1, uint64_t* b1) {
  git_.Write("app/cm.yaml", Cm("x"));
  git_.Commit("one");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  *bundle = Bundle("team-a-app", "app");
  bundle->mutable_scope()->set_caller("team-a");
  bundle->mutable_scope()->set_clusters("team=a");
  bundle->mutable_scope()->add_namespaces("team-a-*");
  ASSERT_TRUE(controller_->AddBundle(*bundle, false).ok());
  *a1 = ConnectAgent(hub_.get(), "a1", {{"team", "a"}});
  *b1 = ConnectAgent(hub_.get(), "b1", {{"team", "b"}});
  ASSERT_NE(hub_->NextMessage(*a1, "team-a-app"), nullptr);
  ASSERT_EQ(hub_->NextMessage(*b1, "team-a-app"), nullptr);
  ASSERT_THAT(controller_->FollowCallerScopes({}), ElementsAre(HasSubstr("named on no line")));
}

// A fleet admin adopts a gone team's bundle: it gets new revisions again, on the team's
// clusters alone and within its namespaces as before, and no line is followed any more; a
// bundle with no team's scope has nothing to adopt.
TEST_F(ControllerTest, AnAdoptedBundleKeepsItsLimitsAndFollowsNoLine) {
  uint64_t a1 = 0, b1 = 0;
  v1::Bundle bundle;
  ASSERT_NO_FATAL_FAILURE(GoneTeamsBundle(&bundle, &a1, &b1));
  git_.Write("app/cm.yaml", Cm("x", "2"));
  git_.Commit("two");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(hub_->NextMessage(a1, "team-a-app"), nullptr) << "held while the caller is gone";

  // Not a replacement, or no team's bundle: refused.
  v1::Bundle own = Bundle("ops", "app");
  ASSERT_TRUE(controller_->AddBundle(own, false).ok());
  EXPECT_THAT(
      controller_
          ->AddBundle(own, true, absl::InfiniteFuture(), false, 0, Controller::Adopt::kKeepLimits)
          .status(),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("nothing to adopt")));
  v1::Bundle admins = Bundle("team-a-app", "app");  // a fleet admin's: no scope of its own
  EXPECT_THAT(controller_
                  ->AddBundle(admins, false, absl::InfiniteFuture(), false, 0,
                              Controller::Adopt::kKeepLimits)
                  .status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("give --replace")));

  absl::StatusOr<v1::BundleInfo> adopted = controller_->AddBundle(
      admins, true, absl::InfiniteFuture(), false, 0, Controller::Adopt::kKeepLimits);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_TRUE(adopted->bundle().scope().adopted());
  EXPECT_EQ(adopted->bundle().scope().caller(), "team-a");
  EXPECT_TRUE(adopted->scope_held().empty()) << adopted->scope_held();
  std::shared_ptr<const EncodedMessage> message;
  for (int i = 0; i < 2000 && message == nullptr; ++i) {
    message = hub_->NextMessage(a1, "team-a-app");
    if (message == nullptr) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_NE(message, nullptr);
  EXPECT_THAT(message->message.update().sync().allowed_namespaces(), ElementsAre("team-a-*"));
  EXPECT_EQ(hub_->NextMessage(b1, "team-a-app"), nullptr) << "still the team's clusters alone";

  // No line is followed: neither its absence nor a line of that name changes it.
  EXPECT_THAT(controller_->FollowCallerScopes({}), IsEmpty());
  v1::BundleScope wider = bundle.scope();
  wider.set_clusters("team in (a,b)");
  EXPECT_THAT(controller_->FollowCallerScopes({{"team-a", wider}}), IsEmpty());
  EXPECT_EQ(controller_->ListBundles("team-a-app", 1).at(0).bundle().scope().clusters(), "team=a");
  // An admin's later change keeps it adopted.
  admins.set_selector("team=a");
  absl::StatusOr<v1::BundleInfo> changed = controller_->AddBundle(admins, true);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(changed->bundle().scope().adopted());
  // After a restart too.
  Restart();
  EXPECT_THAT(controller_->FollowCallerScopes({}), IsEmpty());
  EXPECT_TRUE(controller_->ListBundles("team-a-app", 1).at(0).scope_held().empty());
}

// An adoption that drops the team's limits (an admin's explicit widening) leaves the bundle
// the fleet's own as any admin's: its own selector says where it goes, no namespaces fence.
TEST_F(ControllerTest, AnAdoptionThatDropsTheLimitsLeavesTheBundleFencedByItsOwnDefinition) {
  uint64_t a1 = 0, b1 = 0;
  v1::Bundle bundle;
  ASSERT_NO_FATAL_FAILURE(GoneTeamsBundle(&bundle, &a1, &b1));

  v1::Bundle admins = Bundle("team-a-app", "app");
  EXPECT_THAT(controller_
                  ->AddBundle(admins, false, absl::InfiniteFuture(), false, 0,
                              Controller::Adopt::kDropLimits)
                  .status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("give --replace")));
  absl::StatusOr<v1::BundleInfo> dropped = controller_->AddBundle(
      admins, true, absl::InfiniteFuture(), false, 0, Controller::Adopt::kDropLimits);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_FALSE(dropped->bundle().has_scope());
  EXPECT_TRUE(dropped->scope_held().empty()) << dropped->scope_held();
  std::shared_ptr<const EncodedMessage> message;
  for (int i = 0; i < 2000 && message == nullptr; ++i) {
    message = hub_->NextMessage(b1, "team-a-app");
    if (message == nullptr) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_NE(message, nullptr) << "its own selector (every cluster) says where it goes";
  EXPECT_THAT(message->message.update().sync().allowed_namespaces(), IsEmpty());
  EXPECT_THAT(controller_->FollowCallerScopes({}), IsEmpty());
  // Nothing left to adopt: no team's scope.
  EXPECT_THAT(controller_
                  ->AddBundle(admins, true, absl::InfiniteFuture(), false, 0,
                              Controller::Adopt::kKeepLimits)
                  .status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("nothing to adopt")));
}

// A team's source follows its caller's repos= too: narrowed away from its URL, it is not
// fetched (the bundles reading it keep their revision, the source's error says why);
// widened again, it is.
TEST_F(ControllerTest, ATeamsSourceOutsideItsNarrowedReposIsNotFetched) {
  git_.Write("app/cm.yaml", Cm("x"));
  git_.Commit("one");
  v1::Source source = Source();
  source.set_scope_caller("team-a");
  source.add_scope_repos(git_.url());
  ASSERT_TRUE(controller_->AddSource(source, false).ok());
  v1::Bundle bundle = Bundle("team-a-app", "app");
  bundle.mutable_scope()->set_caller("team-a");
  bundle.mutable_scope()->set_clusters("team=a");
  bundle.mutable_scope()->add_repos(git_.url());
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(added.ok()) << added.status();
  const std::string first = added->commit();

  v1::BundleScope elsewhere = bundle.scope();
  elsewhere.set_repos(0, "https://git.example.com/team-a");
  std::vector<std::string> lines =
      controller_->FollowCallerScopes({{"team-a", elsewhere}}, absl::InfiniteFuture());
  EXPECT_THAT(lines, Contains(HasSubstr("source app follows caller team-a's scope: "
                                        "repos=https://git.example.com/team-a")));
  git_.Write("app/cm.yaml", Cm("x", "2"));
  git_.Commit("two");
  absl::StatusOr<v1::SourceInfo> synced = controller_->SyncSource("app");
  ASSERT_TRUE(synced.ok()) << synced.status();
  EXPECT_THAT(synced->error(), HasSubstr("its URL is outside the repositories of caller "
                                         "team-a's scope (https://git.example.com/team-a), so "
                                         "it is not fetched"));
  EXPECT_EQ(controller_->ListBundles("team-a-app", 1).at(0).commit(), first);

  // A fleet admin's replacement keeps it the team's.
  ASSERT_TRUE(controller_->AddSource(Source(), true).ok());
  EXPECT_EQ(controller_->ListSources().at(0).source().scope_caller(), "team-a");

  controller_->FollowCallerScopes({{"team-a", bundle.scope()}}, absl::InfiniteFuture());
  synced = controller_->SyncSource("app");
  ASSERT_TRUE(synced.ok()) << synced.status();
  EXPECT_TRUE(synced->error().empty()) << synced->error();
  EXPECT_NE(synced->commit(), first);
}

// `bundle rollback --prune=false`: the pinned render prunes nothing it lacks (a revision of
// its own, the same objects), across a restart; the bundle's own --prune comes back with a
// rollback that prunes, even at the same commit, and with unpin.
TEST_F(ControllerTest, ARollbackWithPruneFalseKeepsWhatItsRevisionLacks) {
  git_.Write("apps/web/cm.yaml", Cm("web"));
  const std::string v1 = git_.Commit("v1");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("web", "apps/web");
  bundle.mutable_sync()->set_prune(true);
  absl::StatusOr<v1::BundleInfo> first = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(first.ok()) << first.status();
  git_.Write("apps/web/extra.yaml", Cm("extra"));
  git_.Commit("v2 adds a ConfigMap");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  uint64_t c1 = ConnectAgent(hub_.get(), "c1", {});
  auto next = [&]() -> v1::BundleUpdate {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(c1, "web");
    return message == nullptr ? v1::BundleUpdate() : message->message.update();
  };
  v1::BundleUpdate update = next();
  EXPECT_EQ(update.object_count(), 2);
  EXPECT_TRUE(update.sync().prune());

  absl::StatusOr<v1::BundleInfo> kept = controller_->PinBundle("web", v1, /*no_prune=*/true);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_TRUE(kept->pinned_no_prune());
  EXPECT_NE(kept->revision(), first->revision()) << "the same objects, other sync options";
  update = next();
  EXPECT_EQ(update.revision(), kept->revision());
  EXPECT_EQ(update.object_count(), 1);
  EXPECT_FALSE(update.sync().prune()) << "the agent would delete the ConfigMap v2 added";
  absl::StatusOr<v1::BundleHistoryResponse> history = controller_->BundleHistory("web", 10);
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_TRUE(history->pinned_no_prune());

  // A restart serves the same revision (substituted again from the stored render), and so
  // does the first render after it.
  Restart();
  EXPECT_EQ(controller_->ListBundles()[0].revision(), kept->revision());
  EXPECT_TRUE(controller_->ListBundles()[0].pinned_no_prune());
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(controller_->ListBundles()[0].revision(), kept->revision());
  c1 = ConnectAgent(hub_.get(), "c1", {{}}, {{"web", kept->revision()}});
  EXPECT_EQ(hub_->NextMessage(c1, "web"), nullptr) << "it holds what it should run";

  // Rolled back again to the same commit, pruning: that very revision, rendered again.
  absl::StatusOr<v1::BundleInfo> pruned = controller_->PinBundle("web", v1);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_FALSE(pruned->pinned_no_prune());
  EXPECT_EQ(pruned->revision(), first->revision());
  EXPECT_TRUE(next().sync().prune());
  ASSERT_TRUE(controller_->PinBundle("web", v1, /*no_prune=*/true).ok());
  EXPECT_FALSE(next().sync().prune());
  // Unpinned, it follows its source with its own --prune.
  absl::StatusOr<v1::BundleInfo> unpinned = controller_->PinBundle("web", "");
  ASSERT_TRUE(unpinned.ok()) << unpinned.status();
  EXPECT_FALSE(unpinned->pinned_no_prune());
  update = next();
  EXPECT_EQ(update.object_count(), 2);
  EXPECT_TRUE(update.sync().prune());
}

// The prune guard: a commit that would delete most of what the fleet runs (a folder moved,
// a path mistyped in a kustomization) is held for an operator, and the fleet keeps what it
// runs; one that deletes a few goes on. `rollout promote` lets a held one through (that
// render only), and --max-prune=all turns the guard off.
TEST_F(ControllerTest, ARenderThatWouldDeleteMostOfWhatTheFleetRunsIsHeld) {
  auto write = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      git_.Write(absl::StrCat("apps/web/cm", i, ".yaml"), Cm(absl::StrCat("cm", i)));
    }
  };
  auto remove = [&](int from, int to) {
    for (int i = from; i < to; ++i) git_.Remove(absl::StrCat("apps/web/cm", i, ".yaml"));
  };
  write(0, 15);
  git_.Commit("fifteen ConfigMaps");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("web", "apps/web");
  bundle.mutable_sync()->set_prune(true);
  ASSERT_TRUE(controller_->AddBundle(bundle, false).ok());
  uint64_t c1 = ConnectAgent(hub_.get(), "c1", {});
  auto next = [&]() -> v1::BundleUpdate {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(c1, "web");
    return message == nullptr ? v1::BundleUpdate() : message->message.update();
  };
  ASSERT_EQ(next().object_count(), 15);
  auto rollout_message = [&] {
    absl::StatusOr<v1::RolloutStatus> status = controller_->GetRollout("web");
    return status.ok() ? status->message() : status.status().ToString();
  };
  auto sync = [&](const std::string& message) {
    std::string commit = git_.Commit(message);
    EXPECT_TRUE(controller_->SyncSource("app").ok());
    return commit;
  };

  // Three go: a few.
  remove(0, 3);
  sync("three fewer");
  EXPECT_EQ(next().object_count(), 12) << rollout_message();

  // Eleven of the twelve go: held, and the cluster keeps what it runs.
  remove(3, 14);
  const std::string mistake = sync("a folder moved by mistake");
  EXPECT_EQ(next().object_count(), 0) << "nothing sent";
  EXPECT_THAT(rollout_message(),
              HasSubstr("held by the prune guard: this render would delete 11 of the 12 objects"));
  EXPECT_THAT(registry_.Serialize(), HasSubstr("gitfleet_bundle_prune_held{bundle=\"web\"} 1"));
  EXPECT_TRUE(controller_->GetRollout("web")->prune_held());
  // A cluster that holds nothing of it gets what the fleet runs.
  uint64_t joiner = ConnectAgent(hub_.get(), "joiner", {});
  std::shared_ptr<const EncodedMessage> joined = hub_->NextMessage(joiner, "web");
  ASSERT_NE(joined, nullptr);
  EXPECT_EQ(joined->message.update().object_count(), 12);

  absl::StatusOr<v1::RolloutStatus> promoted = controller_->ControlRollout("web", "promote");
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  v1::BundleUpdate update = next();
  EXPECT_EQ(update.object_count(), 1) << "let through";
  EXPECT_EQ(update.commit(), mistake);
  EXPECT_THAT(registry_.Serialize(), HasSubstr("gitfleet_bundle_prune_held{bundle=\"web\"} 0"));
  EXPECT_FALSE(promoted->prune_held());

  // Back to twelve; a bundle that allows 5 holds six going, and with the guard off they go.
  write(3, 14);
  sync("twelve again");
  EXPECT_EQ(next().object_count(), 12);
  bundle.set_max_prune("5");
  ASSERT_TRUE(controller_->AddBundle(bundle, /*replace=*/true).ok());
  remove(3, 9);
  sync("six fewer");
  EXPECT_EQ(next().object_count(), 0);
  EXPECT_THAT(rollout_message(), HasSubstr("would delete 6 of the 12 objects"));
  EXPECT_THAT(rollout_message(), HasSubstr("(more than 5)"));
  bundle.set_max_prune("all");
  ASSERT_TRUE(controller_->AddBundle(bundle, /*replace=*/true).ok());
  EXPECT_EQ(next().object_count(), 6);
  bundle.set_max_prune("50 percent");
  EXPECT_THAT(controller_->AddBundle(bundle, true).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max-prune=50 percent")));
}

// The default guard also looks across the bundles of one repository at one ref: a commit
// that empties many small bundles (each under the guard's floor of 10 alone) is held as one
// that empties a big one. An object moved to another bundle counts as kept; a bundle with
// its own --max-prune is judged alone; `rollout promote` lets one bundle's part through,
// and what is left is judged again.
TEST_F(ControllerTest, ACommitThatEmptiesManySmallBundlesIsHeldAcrossThem) {
  const std::vector<std::string> small = {"a", "b", "c", "d"};
  for (const std::string& app : small) {
    for (int i = 0; i < 5; ++i) {
      git_.Write(absl::StrCat("apps/", app, "/cm", i, ".yaml"), Cm(absl::StrCat(app, "-cm", i)));
    }
  }
  for (int i = 0; i < 5; ++i) {
    git_.Write(absl::StrCat("apps/own/cm", i, ".yaml"), Cm(absl::StrCat("own-cm", i)));
  }
  git_.Commit("four small bundles and one with its own limit");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  for (const std::string& app : small) {
    v1::Bundle bundle = Bundle(app, "apps/" + app);
    bundle.mutable_sync()->set_prune(true);
    ASSERT_TRUE(controller_->AddBundle(bundle, false).ok());
  }
  v1::Bundle own = Bundle("own", "apps/own");
  own.mutable_sync()->set_prune(true);
  own.set_max_prune("all");
  ASSERT_TRUE(controller_->AddBundle(own, false).ok());
  uint64_t c1 = ConnectAgent(hub_.get(), "c1", {});
  auto next = [&](const std::string& bundle) -> int {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(c1, bundle);
    return message == nullptr ? -1 : message->message.update().object_count();
  };
  // A render that drops objects goes once its siblings rendered, which may be after
  // SyncSource returns: what it sends, within 10 s.
  auto sent = [&](const std::string& bundle) -> int {
    int count = next(bundle);
    for (int i = 0; i < 1000 && count < 0; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
      count = next(bundle);
    }
    return count;
  };
  auto held = [&](const std::string& bundle) {
    for (int i = 0; i < 1000 && !controller_->GetRollout(bundle)->prune_held(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    return controller_->GetRollout(bundle)->prune_held();
  };
  for (const std::string& app : small) ASSERT_EQ(next(app), 5) << app;
  ASSERT_EQ(next("own"), 5);
  auto rollout_message = [&](const std::string& bundle) {
    absl::StatusOr<v1::RolloutStatus> status = controller_->GetRollout(bundle);
    return status.ok() ? status->message() : status.status().ToString();
  };

  // One ConfigMap moves from a to b: kept, so nothing is held.
  git_.Remove("apps/a/cm4.yaml");
  git_.Write("apps/b/moved.yaml", Cm("a-cm4"));
  git_.Commit("a ConfigMap moves");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(sent("a"), 4) << rollout_message("a");
  EXPECT_EQ(sent("b"), 6) << rollout_message("b");

  // Four of each small bundle's five go (15 of the 20 they run; 4 of own's, which allows
  // any): each small one alone is under the floor, together they are held.
  for (const std::string& app : small) {
    for (int i = 1; i < 4; ++i) git_.Remove(absl::StrCat("apps/", app, "/cm", i, ".yaml"));
  }
  git_.Remove("apps/b/moved.yaml");
  git_.Remove("apps/b/cm4.yaml");
  git_.Remove("apps/c/cm4.yaml");
  git_.Remove("apps/d/cm4.yaml");
  for (int i = 1; i < 5; ++i) git_.Remove(absl::StrCat("apps/own/cm", i, ".yaml"));
  const std::string mistake = git_.Commit("most of the apps deleted by mistake");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  for (const std::string& app : small) {
    ASSERT_TRUE(held(app)) << app << ": " << rollout_message(app);
    EXPECT_EQ(next(app), -1) << app << " is held: " << rollout_message(app);
    EXPECT_THAT(rollout_message(app),
                HasSubstr("this commit would delete 16 of the 20 objects the bundles of source "
                          "app run (more than half, the default), across 4 bundles"))
        << app;
  }
  EXPECT_THAT(rollout_message("a"), HasSubstr("3 of them this bundle's"));
  EXPECT_THAT(rollout_message("b"), HasSubstr("5 of them this bundle's"));
  EXPECT_EQ(sent("own"), 1) << "its own limit allows it: " << rollout_message("own");

  // Promoted, a goes; the other three still delete 13 of 16.
  ASSERT_TRUE(controller_->ControlRollout("a", "promote").ok());
  EXPECT_EQ(sent("a"), 1);
  EXPECT_EQ(next("b"), -1);
  EXPECT_THAT(rollout_message("b"), HasSubstr("would delete 13 of the 16 objects"));
  // And b: c and d delete 8 of 10, under the floor, so they go by themselves.
  ASSERT_TRUE(controller_->ControlRollout("b", "promote").ok());
  EXPECT_EQ(sent("b"), 1);
  EXPECT_EQ(sent("c"), 1) << rollout_message("c");
  EXPECT_EQ(sent("d"), 1) << rollout_message("d");
  for (const std::string& app : small) {
    EXPECT_FALSE(controller_->GetRollout(app)->prune_held()) << app;
    EXPECT_EQ(controller_->GetRollout(app)->message(), "") << app;
  }
  EXPECT_THAT(registry_.Serialize(), HasSubstr("gitfleet_bundle_prune_held{bundle=\"c\"} 0"));
  (void)mistake;
}

TEST_F(ControllerTest, PerClusterValuesAreSubstitutedAndEqualValuesShareOneMessage) {
  git_.Write("web/deploy.yaml",
             "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-${env}\nspec:\n"
             "  replicas: ${replicas:=1}\n  template: {spec: {containers: [{name: c, image: "
             "\"nginx:${tag}\"}]}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
             "data: {script: \"echo $${HOME}\"}\n");
  git_.Commit("templated");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  uint64_t prod_a = ConnectAgent(hub_.get(), "prod-a", {{"env", "prod"}, {"zone", "a"}});
  uint64_t prod_b = ConnectAgent(hub_.get(), "prod-b", {{"env", "prod"}, {"zone", "b"}});
  uint64_t dev = ConnectAgent(hub_.get(), "dev", {{"env", "dev"}});
  v1::Bundle bundle = Bundle("web", "web");
  (*bundle.mutable_values())["tag"] = "1.25";
  v1::ClusterValues* prod = bundle.add_cluster_values();
  prod->set_selector("env=prod");
  (*prod->mutable_values())["replicas"] = "3";
  auto info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->error(), "");
  EXPECT_EQ(info->variants(), 2) << "prod-a and prod-b agree on everything read";
  std::vector<v1::Event> renders =
      (*events_.Subscribe({"web", "", {"render.done"}}, nullptr))->Take();
  ASSERT_EQ(renders.size(), 1u);
  EXPECT_THAT(renders[0].message(), HasSubstr("each cluster runs a revision built for its values"));

  auto a = hub_->NextMessage(prod_a, "web");
  auto b = hub_->NextMessage(prod_b, "web");
  auto d = hub_->NextMessage(dev, "web");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(a, b) << "one message, serialized once, for both prod clusters";
  EXPECT_NE(a->message.update().revision(), d->message.update().revision());
  std::string prod_yaml, dev_yaml;
  for (const auto& o : a->message.update().upserts()) prod_yaml += o.yaml();
  for (const auto& o : d->message.update().upserts()) dev_yaml += o.yaml();
  EXPECT_THAT(prod_yaml, HasSubstr("name: web-prod"));
  EXPECT_THAT(prod_yaml, HasSubstr("replicas: 3\n"));
  EXPECT_THAT(prod_yaml, HasSubstr("image: nginx:1.25\n"));
  EXPECT_THAT(prod_yaml, HasSubstr("echo ${HOME}"));
  EXPECT_THAT(dev_yaml, HasSubstr("name: web-dev"));
  EXPECT_THAT(dev_yaml, HasSubstr("replicas: 1\n"));

  std::vector<v1::BundleStatus> statuses = controller_->GetStatus("", "web");
  ASSERT_EQ(statuses.size(), 3u);
  for (const v1::BundleStatus& status : statuses) {
    EXPECT_EQ(status.desired_revision(), status.cluster() == "dev"
                                             ? d->message.update().revision()
                                             : a->message.update().revision());
  }

  // The history marks the whole render current: its template, which no cluster runs,
  // and each cluster's revision of it.
  absl::StatusOr<v1::BundleHistoryResponse> history = controller_->BundleHistory("web", 10);
  ASSERT_TRUE(history.ok()) << history.status();
  std::map<std::string, const v1::HistoryEntry*> entries;
  for (const v1::HistoryEntry& entry : history->entries()) entries[entry.revision()] = &entry;
  ASSERT_EQ(entries.size(), 3u);
  for (const auto& [revision, entry] : entries) {
    EXPECT_TRUE(entry->current()) << revision;
    const bool runs =
        revision == a->message.update().revision() || revision == d->message.update().revision();
    EXPECT_EQ(entry->per_cluster_template(), !runs) << revision;
  }

  // A restart substitutes again from the stored render: agents that hold their revision
  // get nothing.
  std::string prod_revision = a->message.update().revision();
  Restart();
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  uint64_t again = ConnectAgent(hub_.get(), "prod-a", {{"env", "prod"}, {"zone", "a"}},
                                {{"web", prod_revision}});
  EXPECT_EQ(hub_->NextMessage(again, "web"), nullptr);
  EXPECT_EQ(hub_->messages_built(), 0u);
}

TEST_F(ControllerTest, AMissingValueFailsOnlyTheClustersWithoutIt) {
  git_.Write("web/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {r: \"${region}\"}\n");
  git_.Commit("needs region");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  uint64_t eu = ConnectAgent(hub_.get(), "eu", {{"region", "eu"}});
  uint64_t bare = ConnectAgent(hub_.get(), "bare", {});
  v1::Bundle web = Bundle("web", "web");
  web.set_substitute(true);  // only labels are values here: the bundle asks for substitution
  auto info = controller_->AddBundle(web, false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->error(), "") << "one cluster renders, so the bundle is good";
  EXPECT_NE(hub_->NextMessage(eu, "web"), nullptr);
  EXPECT_EQ(hub_->NextMessage(bare, "web"), nullptr);
  std::vector<v1::BundleStatus> bare_status = controller_->GetStatus("bare", "web");
  ASSERT_EQ(bare_status.size(), 1u);
  EXPECT_EQ(bare_status[0].sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(bare_status[0].message(), HasSubstr("with the values of cluster bare"));
  EXPECT_THAT(bare_status[0].message(), HasSubstr("${region} has no value"));
  EXPECT_EQ(controller_->GetStatus("eu", "web")[0].sync_state(), v1::SYNC_STATE_OUT_OF_SYNC);
}

// Enough clusters that the probe substitutes on several threads: each gets its own
// revision, and one that lacks a value fails alone.
TEST_F(ControllerTest, ABundleNamingEachOfManyClustersIsBuiltForEach) {
  git_.Write("web/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
             "data: {who: \"${cluster.name}\", r: \"${region}\"}\n");
  git_.Commit("names each cluster");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  constexpr int kClusters = 700;
  std::vector<uint64_t> sessions;
  for (int i = 0; i < kClusters; ++i) {
    sessions.push_back(ConnectAgent(hub_.get(), absl::StrCat("c", i),
                                    i == 350
                                        ? std::map<std::string, std::string>{}
                                        : std::map<std::string, std::string>{{"region", "eu"}}));
  }
  v1::Bundle web = Bundle("web", "web");
  web.set_substitute(true);
  auto info = controller_->AddBundle(web, false);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->error(), "");
  EXPECT_EQ(info->variants(), kClusters - 1);
  for (int i = 0; i < kClusters; ++i) {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(sessions[i], "web");
    if (i == 350) {
      EXPECT_EQ(message, nullptr);
      continue;
    }
    ASSERT_NE(message, nullptr) << i;
    EXPECT_THAT(message->message.update().upserts(0).yaml(),
                HasSubstr(absl::StrCat("who: c", i, "\n")));
  }
  EXPECT_THAT(controller_->GetStatus("c350", "web")[0].message(),
              HasSubstr("${region} has no value"));
}

TEST_F(ControllerTest, JsonnetGetsValuesAsExtVarsAndTopLevelArguments) {
  git_.Write("j/main.jsonnet",
             "function(replicas) {\n"
             "  apiVersion: 'v1', kind: 'ConfigMap',\n"
             "  metadata: { name: 'cfg-' + std.extVar('env') },\n"
             "  data: { replicas: replicas },\n"
             "}\n");
  git_.Commit("jsonnet");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  uint64_t p1 = ConnectAgent(hub_.get(), "p1", {{"env", "prod"}, {"zone", "a"}});
  uint64_t p2 = ConnectAgent(hub_.get(), "p2", {{"env", "prod"}, {"zone", "b"}});
  uint64_t dev = ConnectAgent(hub_.get(), "d1", {{"env", "dev"}});
  v1::Bundle bundle = Bundle("j", "j");
  bundle.add_jsonnet_tlas("replicas=count");
  (*bundle.mutable_values())["count"] = "2";
  auto info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->error(), "");
  EXPECT_EQ(info->engine(), "jsonnet");
  EXPECT_EQ(info->variants(), 2);
  auto a = hub_->NextMessage(p1, "j");
  auto b = hub_->NextMessage(p2, "j");
  auto d = hub_->NextMessage(dev, "j");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a->message.update().upserts(0).key().name(), "cfg-prod");
  EXPECT_THAT(a->message.update().upserts(0).yaml(), HasSubstr("replicas: \"2\""));
  EXPECT_EQ(d->message.update().upserts(0).key().name(), "cfg-dev");

  // A commit elsewhere in the repository does not render it again.
  git_.Write("other/x.txt", "x");
  git_.Commit("elsewhere");
  double hits = metrics_.render_cache_hits.Add({}).Value();
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(metrics_.render_cache_hits.Add({}).Value(), hits + 1);
}

TEST_F(ControllerTest, ARestartServesJsonnetThatReadNoValueWithoutRendering) {
  git_.Write("j/main.jsonnet", "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }");
  git_.Commit("jsonnet");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto info = controller_->AddBundle(Bundle("j", "j"), false);
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->error(), "");
  Restart();
  uint64_t agent = ConnectAgent(hub_.get(), "a", {}, {{"j", info->revision()}});
  EXPECT_EQ(hub_->NextMessage(agent, "j"), nullptr) << "served from the store before any fetch";
  double renders = metrics_.renders.Add({{"engine", "jsonnet"}, {"result", "ok"}}).Value();
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());  // the first fetch
  EXPECT_EQ(metrics_.renders.Add({{"engine", "jsonnet"}, {"result", "ok"}}).Value(), renders);
  EXPECT_EQ(controller_->ListBundles()[0].revision(), info->revision());
}

// A Tanka environment's spec.namespace is where its namespaced objects that name none go,
// as `tk apply` puts them: the revision an agent gets says so, the bundle's own
// --namespace wins over it, and a restart serves that same revision.
TEST_F(ControllerTest, ATankaEnvironmentsNamespaceIsWhereItsObjectsGo) {
  git_.Write("tkrc.yaml", "");
  git_.Write("environments/prod/main.jsonnet",
             "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }");
  git_.Write("environments/prod/spec.json",
             R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment",
                 "metadata": {"name": "environments/prod"}, "spec": {"namespace": "shop"}})");
  git_.Commit("a Tanka environment");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  absl::StatusOr<v1::BundleInfo> info =
      controller_->AddBundle(Bundle("prod", "environments/prod"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->error(), "");
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  auto next = [&]() -> v1::BundleUpdate {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, "prod");
    return message == nullptr ? v1::BundleUpdate() : message->message.update();
  };
  v1::BundleUpdate update = next();
  EXPECT_EQ(update.revision(), info->revision());
  EXPECT_EQ(update.target_namespace(), "shop");

  // The namespace is part of the revision: a restart serves the same one, from the store
  // and after the first fetch.
  Restart();
  EXPECT_EQ(controller_->ListBundles()[0].revision(), info->revision());
  agent = ConnectAgent(hub_.get(), "a", {}, {{"prod", info->revision()}});
  EXPECT_EQ(hub_->NextMessage(agent, "prod"), nullptr) << "it holds what it should run";
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());  // the first fetch
  EXPECT_EQ(controller_->ListBundles()[0].revision(), info->revision());

  // Another namespace in the spec is another revision.
  git_.Write("environments/prod/spec.json",
             R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment",
                 "spec": {"namespace": "store"}})");
  git_.Commit("the environment moves");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  update = next();
  EXPECT_NE(update.revision(), info->revision());
  EXPECT_EQ(update.target_namespace(), "store");

  // The bundle's own namespace is the operator's word on it.
  v1::Bundle pinned = Bundle("prod", "environments/prod");
  pinned.set_target_namespace("ops");
  ASSERT_TRUE(controller_->AddBundle(pinned, /*replace=*/true).ok());
  update = next();
  EXPECT_EQ(update.target_namespace(), "ops");
}

// A repository moved from Rancher Fleet keeps its objects where fleet.yaml put them; the
// namespace is part of the revision a restart serves again.
TEST_F(ControllerTest, FleetYamlsNamespaceIsWhereTheObjectsGo) {
  git_.Write("apps/web/cm.yaml", Cm("a"));
  git_.Write("apps/web/fleet.yaml", "defaultNamespace: web\n");
  git_.Commit("from Fleet");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->error(), "");
  EXPECT_THAT(info->notes(),
              ::testing::Contains(HasSubstr("go to web (apps/web/fleet.yaml: defaultNamespace)")));
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, "web");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().target_namespace(), "web");
  Restart();
  EXPECT_EQ(controller_->ListBundles()[0].revision(), info->revision());
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());  // the first fetch
  EXPECT_EQ(controller_->ListBundles()[0].revision(), info->revision());
  agent = ConnectAgent(hub_.get(), "a", {}, {{"web", info->revision()}});
  EXPECT_EQ(hub_->NextMessage(agent, "web"), nullptr) << "it holds what it should run";
}

// A repository that keeps other files beside its manifests: --exclude leaves them out (a
// change of it renders again, not from the cache), a .fleetignore does for a new bundle,
// and a bundle rendered before gitfleet read .fleetignore keeps the manifests it names.
TEST_F(ControllerTest, ExcludeAndFleetIgnoreChooseAPlainBundlesFiles) {
  git_.Write("apps/web/cm.yaml", Cm("web", "1"));
  git_.Write("apps/web/package.json", R"({"name": "web"})");
  git_.Write("apps/web/test/fixture.yaml", Cm("fixture", "1"));
  git_.Commit("manifests beside other files");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  absl::StatusOr<v1::BundleInfo> failing = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(failing.ok()) << failing.status();
  EXPECT_THAT(failing->error(), HasSubstr("--exclude=package.json"));

  v1::Bundle web = Bundle("web", "apps/web");
  web.add_exclude("*.json");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(web, /*replace=*/true);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->error(), "");
  EXPECT_EQ(info->object_count(), 2);
  web.add_exclude("test/");
  info = controller_->AddBundle(web, /*replace=*/true);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->object_count(), 1) << "rendered again for the new patterns";

  // Patterns are checked when the bundle is defined, by name.
  v1::Bundle bad = web;
  bad.add_include("../up");
  EXPECT_THAT(controller_->AddBundle(bad, true).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--include pattern")));
  bad = web;
  bad.set_engine("kustomize");
  EXPECT_THAT(controller_->AddBundle(bad, true).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--include and --exclude choose the files of a plain bundle")));

  // A bundle from before .fleetignore was read: what it names that holds manifests stays.
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "apps/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    record.clear_reads_fleetignore();
    record.set_revision("rendered-before");
  }));
  git_.Write("apps/web/.fleetignore", "*.json\ntest/\n");
  git_.Commit("a .fleetignore");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("new", "apps/web"), false).ok());
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_EQ(listed["new"].error(), "");
  EXPECT_EQ(listed["new"].object_count(), 1) << "a new bundle leaves out what it names";
  EXPECT_EQ(listed["old"].error(), "");
  EXPECT_EQ(listed["old"].object_count(), 2) << "the upgrade prunes nothing";
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("kept apps/web/test/fixture.yaml although it is "
                                            "ignored by apps/web/.fleetignore: test/")));
}

// A Rancher Fleet repository read as Fleet scans it: a subfolder with its own fleet.yaml is
// a bundle of its own, left out of its parent's, and fleet.yml is fleet.yaml's other name.
// A bundle rendered before gitfleet read them keeps rendering what it did.
TEST_F(ControllerTest, FleetsNestedBundlesAndFleetYmlAreReadForBundlesRenderedSince) {
  git_.Write("fleet/apps/fleet.yml", "defaultNamespace: shop\n");
  git_.Write("fleet/apps/web.yaml", Cm("web", "1"));
  git_.Write("fleet/apps/db/fleet.yaml", "defaultNamespace: data\n");
  git_.Write("fleet/apps/db/db.yaml", Cm("db", "1"));
  git_.Commit("a Fleet repository with a nested bundle");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "fleet/apps"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_fleet_bundle_layout()) << "a new bundle reads them";
    record.clear_reads_fleet_bundle_layout();
    record.set_revision("rendered-before");
  }));
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("new", "fleet/apps"), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("db", "fleet/apps/db"), false).ok());
  uint64_t agent = ConnectAgent(hub_.get(), "c1", {});
  // "namespace: name,name" of `bundle`'s next message to the agent.
  auto placed = [&](const std::string& bundle) {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, bundle);
    if (message == nullptr) return std::string("(none)");
    std::vector<std::string> names;
    for (const auto& upsert : message->message.update().upserts()) {
      names.push_back(YAML::Load(upsert.yaml())["metadata"]["name"].as<std::string>());
    }
    std::sort(names.begin(), names.end());
    return absl::StrCat(message->message.update().target_namespace(), ": ",
                        absl::StrJoin(names, ","));
  };
  EXPECT_EQ(placed("new"), "shop: web");
  EXPECT_EQ(placed("db"), "data: db");
  EXPECT_EQ(placed("old"), ": db,web") << "the upgrade neither moves nor prunes";
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_THAT(listed["new"].notes(),
              ::testing::Contains(HasSubstr("left out fleet/apps/db/, 2 files")));
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("kept the manifests of fleet/apps/db/, 1 file")));
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("fleet/apps/fleet.yml is Rancher Fleet's bundle "
                                            "options under their other name")));
}

// The Secrets test data Flux's own tests decrypt (SOPS 3.10.2, age), and its identity.
std::string SopsTestdata(const std::string& name) {
  absl::StatusOr<std::string> text =
      ReadFileAtMost("controlplane/render/testdata/sops/" + name, 1 << 20);
  return text.ok() ? *std::move(text) : "";
}

// A Flux repository's SOPS-encrypted Secret reaches clusters decrypted when its bundle says
// --decrypt=sops and the control plane has an identity for it; otherwise, or when the file
// was altered, the render fails naming why and the bundle keeps its last good revision.
TEST_F(ControllerTest, SopsEncryptedSecretsAreDecryptedForBundlesThatAskWithTheControlPlanesKeys) {
  const std::string secret = SopsTestdata("flux_global.yaml");
  ASSERT_FALSE(secret.empty());
  git_.Write("apps/db/secret.yaml", secret);
  git_.Write("apps/db/cm.yaml", Cm("db", "1"));
  git_.Commit("an encrypted Secret beside a ConfigMap");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle db = Bundle("db", "apps/db");
  db.set_decrypt("sops");
  // Without identities the bundle is refused; without --decrypt, its render fails; each
  // says what to do.
  EXPECT_THAT(controller_->AddBundle(db, false).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("bundle \"db\": --decrypt=sops needs the control plane's SOPS "
                                 "keys: start it with --sops-age-key-file or "
                                 "--sops-pgp-key-file")));
  ASSERT_TRUE(controller_->AddBundle(Bundle("plain", "apps/db"), false).ok());
  auto listed = [&] {
    std::map<std::string, v1::BundleInfo> out;
    for (v1::BundleInfo& b : controller_->ListBundles()) out[b.bundle().name()] = b;
    return out;
  };
  EXPECT_THAT(listed()["plain"].error(),
              HasSubstr("apps/db/secret.yaml:1: Secret global-age-secret is encrypted with SOPS"));
  EXPECT_THAT(listed()["plain"].error(), HasSubstr("give the bundle --decrypt=sops"));
  v1::Bundle bad = db;
  bad.set_decrypt("vault");
  EXPECT_THAT(controller_->AddBundle(bad, true).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--decrypt=vault: gitfleet decrypts \"sops\" files only")));

  // With the control plane's identity, the Secret reaches the cluster decrypted.
  absl::StatusOr<AgeIdentities> keys =
      AgeIdentities::Parse(SopsTestdata("flux_global.age.txt"), "keys");
  ASSERT_TRUE(keys.ok()) << keys.status();
  sops_identities_ = std::make_shared<const AgeIdentities>(*keys);
  Restart();
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(db, false).ok());
  uint64_t agent = ConnectAgent(hub_.get(), "c1", {});
  std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, "db");
  ASSERT_NE(message, nullptr) << listed()["db"].error();
  std::map<std::string, YAML::Node> objects;
  for (const auto& upsert : message->message.update().upserts()) {
    YAML::Node node = YAML::Load(upsert.yaml());
    objects[node["kind"].as<std::string>()] = node;
  }
  ASSERT_EQ(objects.count("Secret"), 1u);
  EXPECT_EQ(objects["Secret"]["stringData"]["key"].as<std::string>(), "global-value");
  EXPECT_FALSE(objects["Secret"]["sops"]);
  EXPECT_EQ(objects.count("ConfigMap"), 1u);
  const std::string revision = listed()["db"].revision();
  EXPECT_THAT(listed()["db"].notes(),
              ::testing::Contains("decrypted with SOPS: apps/db/secret.yaml"));

  // Altered after encryption: the render fails naming the file; the revision stays.
  git_.Write("apps/db/secret.yaml",
             absl::StrReplaceAll(secret, {{"namespace: default", "namespace: kube-system"}}));
  git_.Commit("moved without re-encrypting");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(listed()["db"].error(),
              HasSubstr("apps/db/secret.yaml (SOPS): its MAC does not match its values"));
  EXPECT_EQ(listed()["db"].revision(), revision);
  EXPECT_THAT(listed()["db"].error(), Not(HasSubstr("global-value")));

  // A restart without the identities keeps what clusters run, and says why.
  sops_identities_ = nullptr;
  Restart();
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(listed()["db"].error(),
              HasSubstr("bundle db decrypts SOPS files (--decrypt=sops), and the control plane "
                        "has no SOPS keys: start it with --sops-age-key-file or "
                        "--sops-pgp-key-file"));
  EXPECT_EQ(listed()["db"].revision(), revision);
}

// A team's bundle decrypts with the keys its scope names alone: with none it may not ask
// to decrypt, and a Secret encrypted for a key of the control plane's that is not the
// team's (another team's, copied into its repository) fails the render, sealed.
TEST_F(ControllerTest, ATeamsBundleDecryptsWithItsScopesSopsKeysAlone) {
  absl::StatusOr<AgeIdentities> keys = AgeIdentities::Parse(
      SopsTestdata("flux_global.age.txt") + "\n" + SopsTestdata("flux_algorithms.age.txt"), "keys");
  ASSERT_TRUE(keys.ok()) << keys.status();
  sops_identities_ = std::make_shared<const AgeIdentities>(*keys);
  Restart();
  git_.Write("apps/db/secret.yaml", SopsTestdata("flux_global.yaml"));
  git_.Commit("team a's Secret");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  const std::string team_a = "age1henwn645drkd3fa34t27t2w2x0nsgw3w4h62gmg5x5xflyjpy38s5cncph";
  const std::string team_b = keys->Recipients()[1];
  v1::Bundle db = Bundle("db", "apps/db");
  db.set_decrypt("sops");
  db.mutable_scope()->set_caller("team-b");
  db.mutable_scope()->set_clusters("team=b");
  EXPECT_THAT(controller_->AddBundle(db, false).status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("bundle \"db\": --decrypt=sops, and the scope of caller team-b "
                                 "names none of the control plane's SOPS keys (sops-keys=)")));
  db.mutable_scope()->add_sops_keys(team_b);
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(db, false);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(added->error(), HasSubstr("apps/db/secret.yaml"));
  EXPECT_THAT(added->error(), HasSubstr("encrypted for " + team_a));
  EXPECT_THAT(added->error(), HasSubstr("the control plane's keys are " + team_b));
  EXPECT_TRUE(added->revision().empty()) << "nothing rendered";
  // Team a's own scope opens it.
  db.mutable_scope()->set_caller("team-a");
  db.mutable_scope()->clear_sops_keys();
  db.mutable_scope()->add_sops_keys(team_a);
  absl::StatusOr<v1::BundleInfo> opened = controller_->AddBundle(db, true);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE(opened->error().empty()) << opened->error();
  EXPECT_FALSE(opened->revision().empty());
}

// A Flux repository whose root .sourceignore leaves out a bundle folder's fixtures: a
// commit that changes only that file (nothing under the folder) renders the bundle again,
// not from its cache, and a bundle rendered before gitfleet read .sourceignore keeps the
// manifests it names.
TEST_F(ControllerTest, FluxsSourceIgnoreAboveTheFolderChoosesAPlainBundlesFiles) {
  git_.Write("clusters/prod/apps/cm.yaml", Cm("web", "1"));
  git_.Write("clusters/prod/apps/fixtures/cm.yaml", Cm("fixture", "1"));
  git_.Commit("manifests and fixtures");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("new", "clusters/prod/apps"), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "clusters/prod/apps"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_sourceignore()) << "a new bundle reads them";
    record.clear_reads_sourceignore();
  }));
  auto listed = [&] {
    std::map<std::string, v1::BundleInfo> out;
    for (v1::BundleInfo& b : controller_->ListBundles()) out[b.bundle().name()] = b;
    return out;
  };
  EXPECT_EQ(listed()["new"].object_count(), 2);
  const std::string revision = listed()["new"].revision();

  git_.Write(".sourceignore", "# not for clusters\nfixtures/\n");
  git_.Commit("a .sourceignore at the root");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  std::map<std::string, v1::BundleInfo> now = listed();
  EXPECT_EQ(now["new"].error(), "");
  EXPECT_EQ(now["new"].object_count(), 1) << "rendered again: the root's file is read";
  EXPECT_NE(now["new"].revision(), revision);
  EXPECT_THAT(now["new"].notes(),
              ::testing::Contains("skipped clusters/prod/apps/fixtures/cm.yaml: ignored by "
                                  ".sourceignore: fixtures/"));
  EXPECT_EQ(now["old"].error(), "");
  EXPECT_EQ(now["old"].object_count(), 2) << "the upgrade prunes nothing";
  EXPECT_THAT(now["old"].notes(),
              ::testing::Contains(HasSubstr("kept clusters/prod/apps/fixtures/cm.yaml although it "
                                            "is ignored by .sourceignore: fixtures/ (this bundle "
                                            "was rendered before gitfleet read .sourceignore")));

  // One that cannot be read fails the render, naming it; the bundle keeps its revision.
  git_.Write("clusters/.sourceignore", "[unclosed\n");
  git_.Commit("a bad line");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  now = listed();
  EXPECT_THAT(now["new"].error(), HasSubstr("clusters/.sourceignore:1:"));
  EXPECT_EQ(now["new"].object_count(), 1);
}

// A bundle rendered by a control plane that did not yet read where repositories put objects
// keeps them where they are after the upgrade: a spec.namespace is noted, not used (using
// it would move the objects, and prune them where they run). The operator's --namespace
// decides.
TEST_F(ControllerTest, ABundlePlacedBeforeTheUpgradeKeepsItsObjectsWhereTheyAre) {
  git_.Write("tkrc.yaml", "");
  git_.Write("environments/prod/main.jsonnet",
             "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }");
  git_.Commit("a Tanka environment without a spec");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  absl::StatusOr<v1::BundleInfo> info =
      controller_->AddBundle(Bundle("prod", "environments/prod"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->error(), "");
  // What an older control plane stored: the record without the flag.
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("prod", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_declared_namespace()) << "a new bundle reads it";
    record.clear_reads_declared_namespace();
  }));

  git_.Write("environments/prod/spec.json",
             R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment",
                 "spec": {"namespace": "shop"}})");
  git_.Commit("the environment names its namespace");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  uint64_t agent = ConnectAgent(hub_.get(), "a", {}, {{"prod", info->revision()}});
  EXPECT_EQ(hub_->NextMessage(agent, "prod"), nullptr) << "the same revision: nothing moves";
  v1::BundleInfo listed = controller_->ListBundles()[0];
  EXPECT_EQ(listed.revision(), info->revision());
  EXPECT_THAT(listed.notes(),
              ::testing::Contains(HasSubstr(
                  "says namespaced objects that name none go to shop; this bundle was placed "
                  "before gitfleet read that, and its objects stay where they are")));

  // The operator moves them.
  v1::Bundle moved = Bundle("prod", "environments/prod");
  moved.set_target_namespace("shop");
  ASSERT_TRUE(controller_->AddBundle(moved, /*replace=*/true).ok());
  std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, "prod");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().target_namespace(), "shop");
}

// A chart that writes `namespace: {{ .Release.Namespace }}` renders in the bundle's
// namespace. Helm is not packaged here: a stand-in prints what helm prints for it.
TEST_F(ControllerTest, AHelmReleaseIsRenderedInTheBundlesNamespace) {
  ASSERT_NO_FATAL_FAILURE(UseFakeHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Commit("a chart");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("web", "charts/web");
  bundle.set_target_namespace("shop");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->error(), "");
  EXPECT_EQ(info->engine(), "helm");
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, "web");
  ASSERT_NE(message, nullptr);
  ASSERT_EQ(message->message.update().upserts_size(), 1);
  EXPECT_EQ(message->message.update().upserts(0).key().namespace_(), "shop");
}

// fleet.yaml's helm.releaseName names the release of a bundle made after gitfleet read it;
// one rendered before keeps its release (another name would rename, so prune, its objects).
TEST_F(ControllerTest, FleetYamlsHelmOptionsAreReadForBundlesRenderedSince) {
  ASSERT_NO_FATAL_FAILURE(UseFakeHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("charts/web/fleet.yaml", "helm:\n  releaseName: shop-web\n");
  git_.Commit("a chart Fleet deployed");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "charts/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_fleet_helm()) << "a new bundle reads them";
    record.clear_reads_fleet_helm();
    record.clear_reads_fleet_release_name();  // read later still
    record.set_revision("rendered-before");
  }));
  git_.Write("charts/web/values.yaml", "replicas: 1\n");
  git_.Commit("values");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("new", "charts/web"), false).ok());

  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  ASSERT_NO_FATAL_FAILURE(ExpectReleases(agent, {{"old", "old"}, {"new", "shop-web"}}));
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("sets helm.releaseName shop-web; this bundle was "
                                            "rendered before gitfleet read them")));
  EXPECT_THAT(listed["new"].notes(),
              ::testing::Contains(HasSubstr("the chart takes helm.releaseName shop-web from "
                                            "charts/web/fleet.yaml")));
}

// A chart of a Fleet folder is released under the name Fleet gives it (its bundle's), so
// one Fleet installed keeps its objects' names when gitfleet takes it over; a chart with no
// fleet.yaml, or a bundle rendered before gitfleet did this, keeps the bundle's name.
TEST_F(ControllerTest, AFleetFoldersChartIsReleasedUnderFleetsNameForIt) {
  ASSERT_NO_FATAL_FAILURE(UseFakeHelm());
  for (const char* chart : {"charts/web", "charts/Named_Web", "charts/plain"}) {
    git_.Write(absl::StrCat(chart, "/Chart.yaml"), "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  }
  git_.Write("charts/web/fleet.yaml", "defaultNamespace: shop\n");
  git_.Write("charts/Named_Web/fleet.yaml", "name: Platform.Web\n");
  git_.Commit("charts Fleet deployed");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "charts/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_fleet_release_name()) << "a new bundle reads it";
    record.clear_reads_fleet_release_name();
    record.set_revision("rendered-before");
  }));
  git_.Write("charts/web/values.yaml", "replicas: 1\n");
  git_.Commit("values");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("web", "charts/web"), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("named", "charts/Named_Web"), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("plain", "charts/plain"), false).ok());

  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  // Fleet's names: source "app" standing for the GitRepo, and HelmReleaseName of the
  // fleet.yaml's name (cleaned, with a checksum of what cleaning changed).
  ASSERT_NO_FATAL_FAILURE(ExpectReleases(agent, {{"old", "old"},
                                                 {"web", "app-charts-web"},
                                                 {"named", FleetBundleName("Platform.Web", "")},
                                                 {"plain", "plain"}}));
  EXPECT_THAT(FleetBundleName("Platform.Web", ""), ::testing::StartsWith("platform-web-"));
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_THAT(listed["web"].notes(),
              ::testing::Contains(HasSubstr("the chart is released as app-charts-web, as Fleet "
                                            "releases it")));
}

// A source's fleet_gitrepo names the GitRepo it takes over (one whose name the source
// cannot take: with a dot here), and a Fleet folder's chart is released under Fleet's name
// in that GitRepo. Another name would rename the release (new objects, the old pruned):
// refused, naming the bundle and keeping the source as it was, unless said explicitly;
// then the chart is rendered again under the new name, not taken from the render cache.
TEST_F(ControllerTest, ASourcesFleetGitRepoNamesItsChartsReleasesAndARenameIsExplicit) {
  ASSERT_NO_FATAL_FAILURE(UseFakeHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("charts/web/fleet.yaml", "defaultNamespace: shop\n");
  git_.Commit("a chart Fleet deployed from GitRepo fleet.apps");
  v1::Source source = Source();
  source.set_fleet_gitrepo("Fleet.Apps");
  EXPECT_THAT(controller_->AddSource(source, false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("fleet_gitrepo \"Fleet.Apps\" must be a GitRepo's name")));
  source.set_fleet_gitrepo("fleet.apps");
  ASSERT_TRUE(controller_->AddSource(source, false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("web", "charts/web"), false).ok());
  v1::Bundle kept = Bundle("kept", "charts/web");
  kept.set_helm_release("kept");  // its own release whatever the GitRepo
  ASSERT_TRUE(controller_->AddBundle(kept, false).ok());
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  const std::string fleets = FleetBundleName("fleet.apps", "charts/web");
  EXPECT_THAT(fleets, ::testing::StartsWith("fleet-apps-charts-web-"));  // '.' cleaned
  ASSERT_NO_FATAL_FAILURE(ExpectReleases(agent, {{"web", fleets}, {"kept", "kept"}}));
  EXPECT_THAT(ListedByName()["web"].notes(),
              ::testing::Contains(HasSubstr(absl::StrCat(
                  "the chart is released as ", fleets,
                  ", as Fleet releases it (its bundle's name in the GitRepo fleet.apps"))));

  source.set_fleet_gitrepo("fleet-apps");
  EXPECT_THAT(controller_->AddSource(source, true).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("its GitRepo name fleet.apps -> fleet-apps would rename the chart "
                                 "releases of bundles web (released under")));
  std::vector<v1::SourceInfo> sources = controller_->ListSources();
  ASSERT_EQ(sources.size(), 1u);
  EXPECT_EQ(sources[0].source().fleet_gitrepo(), "fleet.apps");
  ASSERT_TRUE(controller_
                  ->AddSource(source, true, absl::InfiniteFuture(),
                              /*rename_releases=*/true)
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectReleases(agent, {{"web", "fleet-apps-charts-web"}}));
}

// A repository moved from Argo CD keeps Argo CD's parameter overrides in its folders, where
// Argo CD Image Updater writes new image tags: a kustomization's images are set as
// `kustomize edit set image` sets them, a chart's parameters passed after the bundle's
// values, the shared file first and the bundle's own (named as the Application) over it.
// One an engine cannot take fails the render naming the file; a bundle rendered before
// gitfleet read them renders as it did, saying so.
TEST_F(ControllerTest, ArgoCdsParameterOverridesAreAppliedAsArgoCdAppliesThem) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  WriteWebKustomization();
  git_.Write("charts/api/Chart.yaml", "apiVersion: v2\nname: api\nversion: 0.1.0\n");
  git_.Commit("an Argo CD repository");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "apps/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_argocd_source()) << "a new bundle reads them";
    record.clear_reads_argocd_source();
  }));

  // What the write-back leaves, and a parameter file where no chart renders.
  git_.Write("apps/web/.argocd-source.yaml",
             "kustomize:\n  images:\n  - nginx:1.25.3\n  - busybox=registry.example.com/bb:1\n");
  git_.Write("charts/api/.argocd-source.yaml",
             "helm:\n  parameters: [{name: replicas, value: '1'}]\n");
  git_.Write("charts/api/.argocd-source-api.yaml",
             "helm:\n"
             "  parameters:\n"
             "  - {name: image.tag, value: '2.0', forcestring: true}\n"
             "  - {name: replicas, value: '3'}\n"
             "  valueFiles: [prod.yaml]\n");
  git_.Write("charts/api/prod.yaml", "tier: prod\n");
  git_.Write("plain/cm.yaml", Cm("plain"));
  git_.Write("plain/.argocd-source.yaml", "kustomize: {images: ['nginx:1.25.3']}\n");
  git_.Commit("image updater: nginx 1.25.3, api 2.0");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("web", "apps/web"), false).ok());
  v1::Bundle api = Bundle("api", "charts/api");
  (*api.mutable_values())["replicas"] = "2";  // the operator's value, which the file's wins over
  ASSERT_TRUE(controller_->AddBundle(api, false).ok());
  absl::StatusOr<v1::BundleInfo> plain = controller_->AddBundle(Bundle("plain", "plain"), false);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_THAT(plain->error(),
              HasSubstr("plain/.argocd-source.yaml sets kustomize.images (nginx:1.25.3), which "
                        "Argo CD applies to a kustomize build (kustomize edit set image), and "
                        "plain renders with plain"));

  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  auto object_of = [&](const std::string& bundle) { return OnlyObjectOf(agent, bundle); };
  EXPECT_THAT(object_of("web"), HasSubstr("image: nginx:1.25.3"));
  EXPECT_THAT(object_of("old"), HasSubstr("image: nginx:1.24"));
  EXPECT_THAT(object_of("api"),
              HasSubstr("sets: \"--set-string=replicas=2 --set-string=image.tag=2.0 "
                        "--set=replicas=3 \""));
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_THAT(listed["web"].notes(),
              ::testing::Contains(HasSubstr("sets the images nginx:1.25.3, "
                                            "busybox=registry.example.com/bb:1 as "
                                            "apps/web/.argocd-source.yaml asks")));
  EXPECT_THAT(listed["api"].notes(),
              ::testing::Contains(
                  HasSubstr("gives the chart valueFiles as charts/api/.argocd-source.yaml and "
                            "charts/api/.argocd-source-api.yaml asks")));
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("apps/web/.argocd-source.yaml sets kustomize.images "
                                            "(Argo CD's parameter overrides); this bundle was "
                                            "rendered before gitfleet read them")));
}

// Argo CD's chart overrides: value files from the chart's folder after the bundle's own, the
// inline values (valuesObject over values) after them, the release name unless --release
// names one; a bundle rendered before gitfleet read them renders as it did, saying so.
TEST_F(ControllerTest, ArgoCdsChartOverridesAreGivenAsArgoCdGivesThem) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("charts/web/values-prod.yaml", "replicas: 3\n");
  git_.Commit("a chart");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "charts/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_argocd_helm()) << "a new bundle reads them";
    record.clear_reads_argocd_helm();
    record.clear_reads_argocd_additions();
  }));
  git_.Write("charts/web/.argocd-source.yaml",
             "helm:\n  valueFiles: [values-prod.yaml, missing.yaml]\n"
             "  ignoreMissingValueFiles: true\n  values: 'ignored: true'\n"
             "  valuesObject: {image: {tag: '2.0'}}\n  releaseName: web-prod\n");
  git_.Commit("overrides");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("web", "charts/web"), false).ok());
  v1::Bundle named = Bundle("named", "charts/web");
  named.set_helm_release("mine");
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(named, false);
  ASSERT_TRUE(added.ok()) << added.status();
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  const std::string web = OnlyObjectOf(agent, "web");
  EXPECT_THAT(web, HasSubstr("name: web-prod"));
  EXPECT_THAT(web, HasSubstr("values-prod.yaml=replicas: 3 |.gitfleet-argocd-values.yaml=image:"));
  EXPECT_THAT(web, HasSubstr("tag: 2.0"));
  EXPECT_THAT(web, Not(HasSubstr("ignored"))) << "valuesObject wins over values";
  EXPECT_THAT(OnlyObjectOf(agent, "named"), HasSubstr("name: mine"));
  const std::string old = OnlyObjectOf(agent, "old");
  EXPECT_THAT(old, HasSubstr("name: old"));
  EXPECT_THAT(old, Not(HasSubstr("values-prod")));
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_THAT(listed["web"].notes(),
              ::testing::Contains(HasSubstr("gives the chart valueFiles, values, releaseName as "
                                            "charts/web/.argocd-source.yaml asks")));
  EXPECT_THAT(listed["named"].notes(),
              ::testing::Contains(HasSubstr("(its releaseName aside: --release names one)")));
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("helm.valueFiles, helm.values, helm.releaseName, "
                                            "which gitfleet does not read")));
  // fileParameters: a file's content as a value (helm --set-file), from the chart's folder
  // or anywhere in the repository; a bundle from before gets none, saying so.
  git_.Write("charts/web/.argocd-source.yaml",
             "helm: {fileParameters: [{name: config, path: files/app.conf}, "
             "{name: shared, path: ../../envs/prod/shared.conf}]}\n");
  git_.Write("charts/web/files/app.conf", "level=debug\n");
  git_.Write("envs/prod/shared.conf", "region=eu\n");
  git_.Commit("file parameters");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(ListedByName()["web"].error(), "");
  EXPECT_THAT(OnlyObjectOf(agent, "web"),
              HasSubstr("files: config<-level=debug |shared<-region=eu |\n"));
  EXPECT_THAT(ListedByName()["web"].notes(),
              ::testing::Contains(HasSubstr("gives the chart fileParameters as")));
  // A change to one renders again.
  git_.Write("envs/prod/shared.conf", "region=us\n");
  git_.Commit("another region");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(OnlyObjectOf(agent, "web"), HasSubstr("shared<-region=us |"));
  EXPECT_THAT(ListedByName()["old"].notes(),
              ::testing::Contains(HasSubstr("helm.fileParameters, which gitfleet does not read")));
  // skipCrds: the chart's CRDs are someone else's (helm template without --include-crds).
  git_.Write("charts/web/.argocd-source.yaml", "helm: {skipCrds: true}\n");
  git_.Commit("CRDs installed elsewhere");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(OnlyObjectOf(agent, "web"), HasSubstr("crds: skipped"));
  // A value file, or a file parameter's file, that is not there fails the render, as Argo
  // CD's does (a value file unless ignored); one outside the repository is refused.
  for (const auto& [overrides, error] : std::vector<std::pair<std::string, std::string>>{
           {"helm: {valueFiles: [missing.yaml]}\n",
            "helm.valueFiles missing.yaml, which is not in the repository "
            "(charts/web/missing.yaml, from the chart's folder)"},
           {"helm: {fileParameters: [{name: config, path: gone.conf}]}\n",
            "helm.fileParameters config from gone.conf, which is not in the repository "
            "(charts/web/gone.conf, from the chart's folder)"},
           {"helm: {fileParameters: [{name: config, path: ../../../etc/passwd}]}\n",
            "helm.fileParameters config: "},
           {"helm: {fileParameters: [{name: config, path: 'https://example.com/c'}]}\n",
            "which is not a file of the repository"},
       }) {
    git_.Write("charts/web/.argocd-source.yaml", overrides);
    git_.Commit("a bad override");
    ASSERT_TRUE(controller_->SyncSource("app").ok());
    EXPECT_THAT(ListedByName()["web"].error(), HasSubstr(error)) << overrides;
  }
}

// What Argo CD renders a chart for: helm.namespace (the release's, .Release.Namespace, in
// place of the bundle's --namespace), kubeVersion and apiVersions (in place of the
// bundle's --kube-version and --api-versions, as Argo CD's replace the destination
// cluster's), skipTests and skipSchemaValidation. A bundle from before renders as it did,
// saying what it leaves; what helm could not take is refused naming the file and field.
TEST_F(ControllerTest, ArgoCdsTemplateOptionsAreGivenAsArgoCdGivesThem) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Commit("a chart");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto bundle = [&](const std::string& name) {
    v1::Bundle b = Bundle(name, "charts/web");
    b.set_target_namespace("shop");
    b.set_helm_kube_version("1.27");
    b.add_helm_api_versions("apps/v1");
    return b;
  };
  ASSERT_TRUE(controller_->AddBundle(bundle("old"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_argocd_template_options()) << "a new bundle reads them";
    record.clear_reads_argocd_template_options();
  }));
  git_.Write("charts/web/.argocd-source.yaml",
             "helm:\n  namespace: monitoring\n  kubeVersion: 1.30.2\n"
             "  apiVersions: [monitoring.coreos.com/v1/ServiceMonitor]\n"
             "  skipTests: true\n  skipSchemaValidation: true\n  version: v3\n");
  git_.Commit("overrides");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(bundle("web"), false);
  ASSERT_TRUE(added.ok()) << added.status();
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  const std::string web = OnlyObjectOf(agent, "web");
  EXPECT_THAT(web, HasSubstr("releaseNamespace: monitoring"));
  EXPECT_THAT(web, HasSubstr("capabilities: \"kube=1.30.2 "
                             "api=monitoring.coreos.com/v1/ServiceMonitor \""));
  EXPECT_THAT(web, HasSubstr("skips: \"--skip-tests --skip-schema-validation \""));
  const std::string old = OnlyObjectOf(agent, "old");
  EXPECT_THAT(old, HasSubstr("releaseNamespace: shop"));
  EXPECT_THAT(old, HasSubstr("capabilities: \"kube=1.27 api=apps/v1 \""));
  EXPECT_THAT(old, Not(HasSubstr("skips:")));
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_EQ(listed["web"].error(), "");
  EXPECT_THAT(listed["web"].notes(),
              ::testing::Contains(
                  HasSubstr("gives the chart namespace, kubeVersion, apiVersions, skipTests, "
                            "skipSchemaValidation as charts/web/.argocd-source.yaml asks")));
  EXPECT_THAT(listed["web"].notes(), Not(::testing::Contains(HasSubstr("does not read"))))
      << "version v3 is read";
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(
                  HasSubstr("helm.namespace, helm.kubeVersion, helm.apiVersions, helm.skipTests, "
                            "helm.skipSchemaValidation, which gitfleet does not read")));
  // Without them the bundle's own hold again.
  git_.Write("charts/web/.argocd-source.yaml", "helm: {skipTests: false}\n");
  git_.Commit("no overrides");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  const std::string back = OnlyObjectOf(agent, "web");
  EXPECT_THAT(back, HasSubstr("capabilities: \"kube=1.27 api=apps/v1 \""));
  EXPECT_THAT(back, HasSubstr("releaseNamespace: shop"));
  EXPECT_THAT(back, Not(HasSubstr("skips:")));
  // What helm could not take fails the render, naming the file and field (the objects
  // already there stay, as for any render that fails).
  for (const auto& [overrides, error] : std::vector<std::pair<std::string, std::string>>{
           {"helm: {kubeVersion: latest}\n",
            "charts/web/.argocd-source.yaml sets helm.kubeVersion \"latest\", which is not a "
            "Kubernetes version helm reads"},
           {"helm: {kubeVersion: cluster}\n", "helm.kubeVersion \"cluster\", which is not"},
           {"helm: {apiVersions: ['v1 --set a=b']}\n",
            "helm.apiVersions \"v1 --set a=b\", which is not an API version"},
           {"helm: {namespace: Not_A_Namespace}\n", "helm.namespace: "},
           {"kustomize: {kubeVersion: '1.29'}\n", "kustomize fields (kubeVersion)"},
       }) {
    git_.Write("charts/web/.argocd-source.yaml", overrides);
    git_.Commit("a bad override");
    ASSERT_TRUE(controller_->SyncSource("app").ok());
    EXPECT_THAT(ListedByName()["web"].error(), HasSubstr(error)) << overrides;
  }
}

// A chart's values files may be anywhere in the repository, as Argo CD allows (a monorepo's
// envs/prod beside charts/web): the bundle's --values-file and Argo CD's valueFiles alike,
// read at the render's commit, a change to them rendering again. One that climbs out of the
// repository, or is not there, is refused by name.
TEST_F(ControllerTest, AChartsValuesFilesMayBeAnywhereInTheRepository) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("charts/web/.argocd-source.yaml", "helm: {valueFiles: [../../envs/prod/argo.yaml]}\n");
  git_.Write("envs/prod/values.yaml", "replicas: 5\n");
  git_.Write("envs/prod/argo.yaml", "tier: prod\n");
  git_.Commit("a monorepo");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle web = Bundle("web", "charts/web");
  web.add_helm_values_files("../../envs/prod/values.yaml");
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(web, false);
  ASSERT_TRUE(added.ok()) << added.status();
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  EXPECT_THAT(OnlyObjectOf(agent, "web"),
              HasSubstr("values.yaml=replicas: 5 |argo.yaml=tier: prod |"));

  git_.Write("envs/prod/values.yaml", "replicas: 7\n");
  git_.Commit("more replicas");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(OnlyObjectOf(agent, "web"), HasSubstr("values.yaml=replicas: 7 |"))
      << "a change outside the chart renders it again";

  v1::Bundle out = Bundle("out", "charts/web");
  out.add_helm_values_files("../../../secrets.yaml");
  absl::StatusOr<v1::BundleInfo> refused = controller_->AddBundle(out, false);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("helm values file \"../../../secrets.yaml\" is outside the repository"));

  git_.Write("charts/web/.argocd-source.yaml", "helm: {valueFiles: [../../envs/dev/argo.yaml]}\n");
  git_.Commit("a file not there");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(ListedByName()["web"].error(),
              HasSubstr("helm.valueFiles ../../envs/dev/argo.yaml, which is not in the repository "
                        "(envs/dev/argo.yaml, from the chart's folder)"));
  git_.Write("charts/web/.argocd-source.yaml", "helm: {valueFiles: [../../../argo.yaml]}\n");
  git_.Commit("a file outside");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(ListedByName()["web"].error(),
              HasSubstr("helm values file \"../../../argo.yaml\" is outside the repository"));
  git_.Remove("charts/web/.argocd-source.yaml");
  git_.Remove("envs/prod/values.yaml");
  git_.Commit("the bundle's own file gone");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(ListedByName()["web"].error(),
              HasSubstr("values file envs/prod/values.yaml is not in the repository"));
}

// Argo CD's other kustomize overrides (namePrefix, commonLabels, ...) are set as Argo CD's
// `kustomize edit` sets them before its build; a bundle rendered before gitfleet read them
// keeps its objects' names and labels, saying what it leaves.
TEST_F(ControllerTest, ArgoCdsKustomizeOverridesAreSetAsArgoCdSetsThem) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  WriteWebKustomization();
  git_.Commit("an Argo CD repository");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "apps/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_argocd_kustomize()) << "a new bundle reads them";
    record.clear_reads_argocd_kustomize();
  }));
  git_.Write("apps/web/.argocd-source.yaml",
             "kustomize:\n  images: [nginx:1.25.3]\n  namePrefix: prod-\n"
             "  commonLabels: {env: prod}\n");
  git_.Commit("overrides");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("web", "apps/web"), false).ok());
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  const std::string web = OnlyObjectOf(agent, "web");
  EXPECT_THAT(web, HasSubstr("name: prod-web"));
  EXPECT_THAT(web, HasSubstr("env: prod"));
  EXPECT_THAT(web, HasSubstr("image: nginx:1.25.3"));
  const std::string old = OnlyObjectOf(agent, "old");
  EXPECT_THAT(old, HasSubstr("name: web\n"));
  EXPECT_THAT(old, Not(HasSubstr("env: prod")));
  EXPECT_THAT(old, HasSubstr("image: nginx:1.25.3")) << "images it read before";
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_THAT(listed["web"].notes(),
              ::testing::Contains(HasSubstr("sets the kustomization's namePrefix, commonLabels "
                                            "as apps/web/.argocd-source.yaml asks")));
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("apps/web/.argocd-source.yaml sets "
                                            "kustomize.namePrefix, kustomize.commonLabels, which "
                                            "gitfleet does not read")));
  // A label the kustomization sets already fails the render, as kustomize edit add label
  // fails Argo CD's build, unless forced; the cluster keeps what it runs.
  git_.Write("apps/web/kustomization.yaml", "resources: [deploy.yaml]\ncommonLabels: {env: dev}\n");
  git_.Commit("a label of its own");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(ListedByName()["web"].error(),
              HasSubstr("label env is already in the kustomization's commonLabels"));
  git_.Write("apps/web/.argocd-source-web.yaml",
             "kustomize: {forceCommonLabels: true, commonLabels: {env: staging}}\n");
  git_.Commit("forced");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(ListedByName()["web"].error(), "");
  EXPECT_THAT(OnlyObjectOf(agent, "web"), HasSubstr("env: staging"));
  // labelWithoutSelector: the object's labels, never its selector (which a Deployment may
  // not change) nor, without labelIncludeTemplates, its pods'.
  git_.Write("apps/web/kustomization.yaml", "resources: [deploy.yaml]\n");
  git_.Write("apps/web/.argocd-source-web.yaml",
             "kustomize: {labelWithoutSelector: true, commonLabels: {team: shop}}\n");
  git_.Commit("labels without selector");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(ListedByName()["web"].error(), "");
  const std::string labelled = OnlyObjectOf(agent, "web");
  auto times = [&](const std::string& text) {
    int n = 0;
    for (size_t at = labelled.find(text); at != std::string::npos;
         at = labelled.find(text, at + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_EQ(times("team: shop"), 1) << "the object's own labels only: " << labelled;
  EXPECT_EQ(times("env: prod"), 1) << labelled;
  EXPECT_EQ(times("app: web"), 2) << "its selector and pods as they were: " << labelled;
}

// Argo CD's kustomize.components and kustomize.patches are added to the kustomization as
// Argo CD adds them (a missing component left out only with ignoreMissingComponents); one
// that leaves the repository, or is remote, is refused; a bundle rendered before gitfleet
// read them renders as it did, saying so.
TEST_F(ControllerTest, ArgoCdsComponentsAndPatchesAreAddedAsArgoCdAddsThem) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  WriteWebKustomization();
  git_.Write("components/monitoring/kustomization.yaml",
             "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
             "resources: [cm.yaml]\n");
  git_.Write("components/monitoring/cm.yaml", Cm("monitoring"));
  git_.Write("components/remote/kustomization.yaml",
             "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
             "resources: ['https://github.com/example/c//base?ref=v1']\n");
  git_.Commit("an Argo CD repository with a component");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "apps/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_argocd_additions()) << "a new bundle reads them";
    record.clear_reads_argocd_additions();
  }));
  git_.Write("apps/web/.argocd-source.yaml",
             "kustomize:\n"
             "  components: [../../components/monitoring, ../../components/gone]\n"
             "  ignoreMissingComponents: true\n"
             "  patches:\n"
             "  - target: {kind: Deployment, name: web}\n"
             "    patch: |\n"
             "      - {op: add, path: /spec/replicas, value: 4}\n");
  git_.Commit("overrides");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("web", "apps/web"), false).ok());
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  auto objects_of = [&](const std::string& bundle) {
    std::string out;
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, bundle);
    for (int i = 0; message != nullptr && i < message->message.update().upserts_size(); ++i) {
      out += message->message.update().upserts(i).yaml() + "---\n";
    }
    return out;
  };
  const std::string web = objects_of("web");
  EXPECT_THAT(web, HasSubstr("name: monitoring"));
  EXPECT_THAT(web, HasSubstr("replicas: 4"));
  const std::string old = objects_of("old");
  EXPECT_THAT(old, Not(HasSubstr("name: monitoring")));
  EXPECT_THAT(old, Not(HasSubstr("replicas: 4")));
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_THAT(listed["web"].notes(),
              ::testing::Contains(HasSubstr("sets the kustomization's components, patches as "
                                            "apps/web/.argocd-source.yaml asks")));
  EXPECT_THAT(listed["web"].notes(),
              ::testing::Contains(HasSubstr("leaves out the component ../../components/gone, "
                                            "not in the repository (ignoreMissingComponents)")));
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("apps/web/.argocd-source.yaml sets "
                                            "kustomize.components, kustomize.patches, which "
                                            "gitfleet does not read")));

  // A change to the component renders again: what it reads is the render's.
  git_.Write("components/monitoring/cm.yaml", Cm("monitoring", "2"));
  git_.Commit("the component changes");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(objects_of("web"), HasSubstr("v: \"2\""));

  // A pattern stands for the folders it matches, as `kustomize edit add component` expands
  // it; a folder added later is taken at its commit. With ignoreMissingComponents Argo CD
  // looks the pattern up as a path and leaves it out.
  git_.Write("apps/web/.argocd-source.yaml", "kustomize: {components: ['../../components/m*']}\n");
  git_.Commit("a pattern");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(ListedByName()["web"].error(), "");
  EXPECT_THAT(objects_of("web"), Not(HasSubstr("replicas: 4"))) << "the patch is gone";
  git_.Write("components/metrics/kustomization.yaml",
             "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
             "resources: [cm.yaml]\n");
  git_.Write("components/metrics/cm.yaml", Cm("metrics"));
  git_.Commit("another component the pattern matches");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(objects_of("web"), HasSubstr("name: metrics"));
  git_.Write("apps/web/.argocd-source.yaml",
             "kustomize: {components: ['../../components/m*'], ignoreMissingComponents: true}\n");
  git_.Commit("a pattern, missing ones ignored");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(objects_of("web"), Not(HasSubstr("name: metrics")));
  EXPECT_THAT(ListedByName()["web"].notes(),
              ::testing::Contains(HasSubstr("leaves out the component ../../components/m*: with "
                                            "ignoreMissingComponents Argo CD looks a pattern up")));
  git_.Write("apps/web/.argocd-source.yaml", "kustomize: {components: ['../../components/m*']}\n");

  // What Argo CD's build would fail on fails the render; the cluster keeps what it runs.
  for (const auto& [overrides, error] : std::vector<std::pair<std::string, std::string>>{
           {"kustomize: {components: [../../components/gone], ignoreMissingComponents: false}\n",
            "kustomize.components names ../../components/gone (components/gone), which is not "
            "a folder of the repository, so Argo CD's build fails"},
           {"kustomize: {components: [../../../elsewhere]}\n",
            "kustomize.components names ../../../elsewhere, outside the repository"},
           {"kustomize: {components: ['https://github.com/example/c//monitoring?ref=v1']}\n",
            "a remote component; gitfleet builds Argo CD's components from the repository only"},
           {"kustomize: {patches: [{path: /etc/passwd}]}\n",
            "kustomize.patches names the file /etc/passwd, outside the repository"},
           {"kustomize: {components: [../../components/remote]}\n",
            "kustomize.components names ../../components/remote (components/remote), which "
            "reaches a remote base or file"},
           {"kustomize: {components: ['../../components/x*']}\n",
            "kustomize.components names ../../components/x*, which matches nothing in the "
            "repository"},
           {"kustomize: {components: ['../../../e*']}\n",
            "kustomize.components names ../../../e*, outside the repository"},
           {"kustomize: {components: ['../../components/*/..']}\n",
            "a pattern that climbs (..) after a wildcard"},
           {"kustomize: {components: ['../../components/r*']}\n",
            "kustomize.components names ../../components/remote (components/remote), which "
            "reaches a remote base or file"},
       }) {
    git_.Write("apps/web/.argocd-source-web.yaml", overrides);
    git_.Commit("a bad override");
    ASSERT_TRUE(controller_->SyncSource("app").ok());
    EXPECT_THAT(ListedByName()["web"].error(), HasSubstr(error)) << overrides;
  }
}

// Argo CD Image Updater names its write-back file after the Application, which a bundle
// taking it over may be named otherwise: rendered without it, the bundle would deploy the
// images the write-back replaced. The bundle says which Application it takes over.
TEST_F(ControllerTest, AnotherApplicationsOverridesNeedTheBundleToSayWhichItTakesOver) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  WriteWebKustomization();
  git_.Write("apps/web/.argocd-source-guestbook-prod.yaml",
             "kustomize:\n  images: [nginx:1.25.3]\n");
  git_.Commit("image updater: nginx 1.25.3 for guestbook-prod");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  absl::StatusOr<v1::BundleInfo> web = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_THAT(web->error(),
              HasSubstr("apps/web/.argocd-source-guestbook-prod.yaml holds Argo CD's parameter "
                        "overrides (the image tags its write-back set, say) for the Application "
                        "guestbook-prod, and this bundle, web, has no such file of its own: give "
                        "it --argocd-app=guestbook-prod"));
  EXPECT_EQ(web->revision(), "") << "nothing rendered without them";

  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  auto object_of = [&](const std::string& bundle) { return OnlyObjectOf(agent, bundle); };
  v1::Bundle takes_over = Bundle("web", "apps/web");
  takes_over.set_argocd_app("guestbook-prod");
  web = controller_->AddBundle(takes_over, /*replace=*/true);
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_EQ(web->error(), "");
  EXPECT_THAT(object_of("web"), HasSubstr("image: nginx:1.25.3"));
  // Its own name, said: the other Application's file is not its.
  v1::Bundle dev = Bundle("web-dev", "apps/web");
  dev.set_argocd_app("web-dev");
  ASSERT_TRUE(controller_->AddBundle(dev, false).ok());
  EXPECT_THAT(object_of("web-dev"), HasSubstr("image: nginx:1.24"));
  v1::Bundle bad = Bundle("web-x", "apps/web");
  bad.set_argocd_app("Guestbook");
  EXPECT_THAT(controller_->AddBundle(bad, false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--argocd-app \"Guestbook\" must be an Argo CD Application's "
                                 "name")));
}

// A bundle's --release names its chart's release over every other name (fleet.yaml's
// releaseName, Fleet's, the bundle's), so a chart Argo CD or Flux installed under another
// name keeps its objects; a name helm would refuse, or one for a bundle of no chart, is
// refused when given.
TEST_F(ControllerTest, ABundlesReleaseNamesItsChartsRelease) {
  ASSERT_NO_FATAL_FAILURE(UseFakeHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("charts/web/fleet.yaml", "helm:\n  releaseName: shop-web\n");
  git_.Commit("a chart");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bundle = Bundle("web", "charts/web");
  bundle.set_helm_release("guestbook");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok()) << info.status();
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  ASSERT_NO_FATAL_FAILURE(ExpectReleases(agent, {{"web", "guestbook"}}));

  bundle.set_helm_release("Guest_Book");
  EXPECT_THAT(controller_->AddBundle(bundle, true).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--release=Guest_Book: not a release name helm takes")));
  v1::Bundle plain = Bundle("plain", "charts/web");
  plain.set_engine("plain");
  plain.set_helm_release("guestbook");
  EXPECT_THAT(controller_->AddBundle(plain, false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--release names a chart's release; a plain bundle")));
}

// The values files the values-echo helm (tests/util/fake_tools.h) was given, from the
// ConfigMap of `bundle`'s next message to `agent`, and that message's revision; empty
// when there is no such message.
std::pair<std::string, std::string> EchoedValues(Hub* hub, uint64_t agent,
                                                 const std::string& bundle) {
  std::shared_ptr<const EncodedMessage> message = hub->NextMessage(agent, bundle);
  if (message == nullptr || message->message.update().upserts_size() != 1) return {};
  YAML::Node cm = YAML::Load(message->message.update().upserts(0).yaml());
  return {cm["data"]["values"].as<std::string>(), message->message.update().revision()};
}

// Fleet fills in a chart's values per cluster from its labels: clusters that agree on the
// labels the values read share one render, and one that lacks a label fails alone.
TEST_F(ControllerTest, FleetYamlsHelmValuesAreFilledInPerClusterAsFleetFillsThem) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("charts/web/fleet.yaml",
             "helm:\n  values:\n    env: ${ .ClusterLabels.env }\n"
             "    zone: global.fleet.clusterLabels.zone\n");
  git_.Commit("a chart Fleet filled in per cluster");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  uint64_t dev = ConnectAgent(hub_.get(), "dev", {{"env", "dev"}, {"zone", "a"}});
  uint64_t prod1 = ConnectAgent(hub_.get(), "prod-1", {{"env", "prod"}, {"zone", "a"}, {"n", "1"}});
  uint64_t prod2 = ConnectAgent(hub_.get(), "prod-2", {{"env", "prod"}, {"zone", "a"}, {"n", "2"}});
  uint64_t bare = ConnectAgent(hub_.get(), "bare", {});
  auto info = controller_->AddBundle(Bundle("web", "charts/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  auto values_of = [&](uint64_t agent) { return EchoedValues(hub_.get(), agent, "web"); };
  auto [dev_values, dev_revision] = values_of(dev);
  auto [prod1_values, prod1_revision] = values_of(prod1);
  auto [prod2_values, prod2_revision] = values_of(prod2);
  EXPECT_EQ(dev_values, ".gitfleet-fleet-yaml-values.yaml=env: dev zone: a |");
  EXPECT_EQ(prod1_values, ".gitfleet-fleet-yaml-values.yaml=env: prod zone: a |");
  EXPECT_EQ(prod2_values, prod1_values);
  EXPECT_EQ(prod2_revision, prod1_revision) << "a label the values do not read";
  EXPECT_NE(dev_revision, prod1_revision);
  EXPECT_EQ(hub_->NextMessage(bare, "web"), nullptr);
  std::vector<v1::BundleStatus> bare_status = controller_->GetStatus("bare", "web");
  ASSERT_EQ(bare_status.size(), 1u);
  EXPECT_EQ(bare_status[0].sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(bare_status[0].message(), HasSubstr("with the values of cluster bare"));
  EXPECT_THAT(bare_status[0].message(),
              HasSubstr("env: ${ .ClusterLabels.env }: the cluster has no label env"));
}

// An agent whose hello reports its cluster's Kubernetes version and served APIs.
uint64_t ConnectReporting(Hub* hub, const std::string& name, const std::string& version,
                          const std::vector<std::string>& apis = {}) {
  v1::Hello hello;
  hello.set_cluster(name);
  hello.set_kubernetes_version(version);
  for (const std::string& api : apis) hello.add_api_versions(api);
  return hub->Connect(hello, "peer", std::make_shared<FakeConnection>());
}

// What the echo helm says `bundle`'s next message to `agent` renders for (its
// `capabilities`, "" for helm's own), and the revision; empty when nothing is sent.
std::pair<std::string, std::string> EchoedCapabilities(Hub* hub, uint64_t agent,
                                                       const std::string& bundle) {
  std::shared_ptr<const EncodedMessage> message = hub->NextMessage(agent, bundle);
  if (message == nullptr || message->message.update().upserts_size() != 1) return {};
  YAML::Node cm = YAML::Load(message->message.update().upserts(0).yaml());
  return {std::string(absl::StripAsciiWhitespace(cm["data"]["capabilities"].as<std::string>(""))),
          message->message.update().revision()};
}

// --kube-version=cluster renders a chart for each cluster's own Kubernetes version (as
// Argo CD gives charts the destination's): clusters on one version share a render; one that
// never reported its version gets nothing and says why; an upgrade renders again.
TEST_F(ControllerTest, AChartRendersForEachClustersOwnKubernetesVersion) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Commit("a chart");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto connect = [&](const std::string& name, const std::string& version) {
    return ConnectReporting(hub_.get(), name, version);
  };
  uint64_t a1 = connect("a1", "v1.29.4-eks-036c24b");
  uint64_t a2 = connect("a2", "v1.29.4-eks-036c24b");
  uint64_t b = connect("b", "v1.31.0+k3s1");
  uint64_t bare = connect("bare", "");
  v1::Bundle bundle = Bundle("web", "charts/web");
  bundle.set_helm_kube_version("cluster");
  auto info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok()) << info.status();
  auto capabilities = [&](uint64_t agent) { return EchoedCapabilities(hub_.get(), agent, "web"); };
  auto [a1_caps, a1_revision] = capabilities(a1);
  auto [a2_caps, a2_revision] = capabilities(a2);
  auto [b_caps, b_revision] = capabilities(b);
  EXPECT_EQ(a1_caps, "kube=v1.29.4-eks-036c24b");
  EXPECT_EQ(b_caps, "kube=v1.31.0+k3s1");
  EXPECT_EQ(a2_revision, a1_revision) << "one version, one render";
  EXPECT_NE(b_revision, a1_revision);
  EXPECT_EQ(hub_->NextMessage(bare, "web"), nullptr);
  std::vector<v1::BundleStatus> bare_status = controller_->GetStatus("bare", "web");
  ASSERT_EQ(bare_status.size(), 1u);
  EXPECT_EQ(bare_status[0].sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(bare_status[0].message(),
              HasSubstr("this cluster has not reported its Kubernetes version"));

  // a2 upgraded: its next connection renders for its new version.
  hub_->Disconnect(a2);
  a2 = connect("a2", "v1.30.1-eks-1");
  std::string upgraded;
  for (int i = 0; i < 500 && upgraded.empty(); ++i) {  // rendered by the controller's worker
    upgraded = capabilities(a2).first;
    if (upgraded.empty()) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(upgraded, "kube=v1.30.1-eks-1");

  // Rendered here, without a cluster, it asks for a version.
  EXPECT_THAT(HelmTemplateArgs("helm", "web", "/c", "", "", {}, {}, {"cluster", {}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--kube-version=1.30")));
  bundle.set_helm_kube_version("clusters");
  EXPECT_THAT(controller_->AddBundle(bundle, true).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("or \"cluster\"")));
}

// --api-versions=cluster renders a chart for the APIs each cluster serves (as Argo CD does):
// a chart that renders a ServiceMonitor only where the CRD is served renders it there.
TEST_F(ControllerTest, AChartRendersForTheApisEachClusterServes) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Commit("a chart");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto connect = [&](const std::string& name, const std::vector<std::string>& apis) {
    return ConnectReporting(hub_.get(), name, "", apis);
  };
  const std::vector<std::string> monitored = {"v1", "monitoring.coreos.com/v1",
                                              "monitoring.coreos.com/v1/ServiceMonitor"};
  uint64_t m1 = connect("m1", monitored);
  uint64_t m2 = connect("m2", {monitored.rbegin(), monitored.rend()});
  uint64_t plain = connect("plain", {"v1"});
  uint64_t bare = connect("bare", {});
  v1::Bundle bundle = Bundle("web", "charts/web");
  bundle.add_helm_api_versions("cluster");
  bundle.add_helm_api_versions("extra.io/v1");
  auto info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok()) << info.status();
  auto capabilities = [&](uint64_t agent) { return EchoedCapabilities(hub_.get(), agent, "web"); };
  auto [m1_caps, m1_revision] = capabilities(m1);
  auto [m2_caps, m2_revision] = capabilities(m2);
  auto [plain_caps, plain_revision] = capabilities(plain);
  EXPECT_EQ(m1_caps,
            "api=extra.io/v1 api=monitoring.coreos.com/v1 "
            "api=monitoring.coreos.com/v1/ServiceMonitor api=v1");
  EXPECT_EQ(plain_caps, "api=extra.io/v1 api=v1");
  EXPECT_EQ(m2_revision, m1_revision) << "the same APIs, one render";
  EXPECT_NE(plain_revision, m1_revision);
  EXPECT_EQ(hub_->NextMessage(bare, "web"), nullptr);
  std::vector<v1::BundleStatus> bare_status = controller_->GetStatus("bare", "web");
  ASSERT_EQ(bare_status.size(), 1u);
  EXPECT_THAT(bare_status[0].message(), HasSubstr("has not reported the APIs it serves"));
  EXPECT_THAT(HelmTemplateArgs("helm", "web", "/c", "", "", {}, {}, {"", {"cluster"}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--api-versions=monitoring")));
}

// A kustomize bundle's helmCharts get each cluster's version and APIs too (Argo CD passes
// them to kustomize): its renders are per cluster, shared by clusters that agree.
TEST_F(ControllerTest, KustomizeHelmChartsRenderForEachClusterToo) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("apps/kz/kustomization.yaml", "helmCharts:\n- {name: web, releaseName: web}\n");
  git_.Write("apps/kz/charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("apps/kz/charts/web/values.yaml", "{}\n");
  git_.Write("apps/plainkz/kustomization.yaml", "resources: [cm.yaml]\n");
  git_.Write("apps/plainkz/cm.yaml", Cm("x"));
  git_.Commit("a kustomization with a chart");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  uint64_t a1 = ConnectReporting(hub_.get(), "a1", "v1.29.4", {"v1", "monitoring.coreos.com/v1"});
  uint64_t a2 = ConnectReporting(hub_.get(), "a2", "v1.29.4", {"monitoring.coreos.com/v1", "v1"});
  uint64_t b = ConnectReporting(hub_.get(), "b", "v1.31.0", {"v1"});
  v1::Bundle bundle = Bundle("web", "apps/kz");
  bundle.set_engine("kustomize");
  bundle.set_helm_kube_version("cluster");
  bundle.add_helm_api_versions("cluster");
  auto info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok()) << info.status();
  auto [a1_caps, a1_revision] = EchoedCapabilities(hub_.get(), a1, "web");
  auto [a2_caps, a2_revision] = EchoedCapabilities(hub_.get(), a2, "web");
  auto [b_caps, b_revision] = EchoedCapabilities(hub_.get(), b, "web");
  EXPECT_EQ(a1_caps, "api=monitoring.coreos.com/v1 api=v1 kube=v1.29.4");
  EXPECT_EQ(b_caps, "api=v1 kube=v1.31.0");
  EXPECT_EQ(a2_revision, a1_revision) << "one version and one list, one render";
  EXPECT_NE(b_revision, a1_revision);

  // A kustomize bundle with no charts takes the flags, and its notes say they reach none.
  v1::Bundle plain = Bundle("plainkz", "apps/plainkz");
  plain.set_engine("kustomize");
  plain.set_helm_kube_version("1.30");
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(plain, false);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(added->notes(), ::testing::Contains(HasSubstr("reach kustomize's helmCharts")));
  // jsonnet renders no chart at all.
  v1::Bundle jsonnet = Bundle("js", "apps/kz");
  jsonnet.set_engine("jsonnet");
  jsonnet.set_helm_kube_version("1.30");
  EXPECT_THAT(
      controller_->AddBundle(jsonnet, false).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a jsonnet bundle renders none")));
}

// A bundle rendered before gitfleet read targetCustomizations' helm values keeps rendering
// what it did for every cluster; one added since gives each cluster its target's values.
TEST_F(ControllerTest, FleetTargetCustomizationsHelmValuesAreReadForBundlesRenderedSince) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("charts/web/fleet.yaml",
             "targetCustomizations:\n- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
             "  helm: {values: {replicas: 3}}\n");
  git_.Commit("a chart with a prod target");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "charts/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_fleet_targets()) << "a new bundle reads them";
    record.clear_reads_fleet_targets();
    record.set_revision("rendered-before");
  }));
  git_.Write("charts/web/values.yaml", "replicas: 1\n");
  git_.Commit("values");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  uint64_t prod = ConnectAgent(hub_.get(), "prod-1", {{"env", "prod"}});
  uint64_t dev = ConnectAgent(hub_.get(), "dev-1", {{"env", "dev"}});
  ASSERT_TRUE(controller_->AddBundle(Bundle("new", "charts/web"), false).ok());
  auto values_of = [&](uint64_t agent, const std::string& bundle) {
    return EchoedValues(hub_.get(), agent, bundle).first;
  };
  EXPECT_EQ(values_of(prod, "old"), "");
  EXPECT_EQ(values_of(prod, "new"), ".gitfleet-fleet-yaml-values.yaml=replicas: 3 |");
  EXPECT_EQ(values_of(dev, "new"), "");
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("targetCustomizations prod give some clusters other "
                                            "helm values; this bundle was rendered before")));
  EXPECT_THAT(listed["new"].notes(),
              ::testing::Contains(HasSubstr("the chart takes the helm values that "
                                            "charts/web/fleet.yaml's targetCustomizations prod")));
}

// A chart in a folder fleet.yaml's helm.chart names renders as Fleet renders it, for a
// bundle added since gitfleet read it; one rendered before keeps its engine and output.
TEST_F(ControllerTest, FleetYamlsHelmChartFolderIsRenderedForBundlesRenderedSince) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("apps/shop/fleet.yaml", "helm:\n  chart: ./chart\n  values: {replicas: 2}\n");
  git_.Write("apps/shop/chart/Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n");
  git_.Write("apps/shop/extra.yaml", Cm("extra", "1"));
  git_.Commit("a chart in a folder of its own");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "apps/shop"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    record.clear_reads_fleet_bundle_layout();
    record.set_revision("rendered-before");
  }));
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("new", "apps/shop"), false).ok());
  uint64_t agent = ConnectAgent(hub_.get(), "c1", {});
  EXPECT_EQ(EchoedValues(hub_.get(), agent, "new").first,
            ".gitfleet-fleet-yaml-values.yaml=replicas: 2 |");
  std::shared_ptr<const EncodedMessage> old = hub_->NextMessage(agent, "old");
  ASSERT_NE(old, nullptr);
  ASSERT_EQ(old->message.update().upserts_size(), 1);
  EXPECT_THAT(old->message.update().upserts(0).yaml(), HasSubstr("name: extra"))
      << "still the plain folder it was";
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_EQ(listed["new"].engine(), "helm");
  EXPECT_EQ(listed["old"].engine(), "plain");
}

// A target may name another chart folder inside the bundle's (Fleet's `helm.chart` in a
// targetCustomization): its clusters get that chart, the others the folder's, and a change
// to it renders again for them.
TEST_F(ControllerTest, AFleetTargetsChartFolderIsItsClustersChart) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("apps/shop/fleet.yaml",
             "helm: {chart: ./chart}\n"
             "targetCustomizations:\n"
             "- name: edge\n  clusterSelector: {matchLabels: {env: edge}}\n"
             "  helm: {chart: ./edge-chart}\n");
  git_.Write("apps/shop/chart/Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n");
  git_.Write("apps/shop/edge-chart/Chart.yaml",
             "apiVersion: v2\nname: shop-edge\nversion: 0.1.0\n");
  git_.Commit("a chart for the edge clusters");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(Bundle("shop", "apps/shop"), false);
  ASSERT_TRUE(added.ok()) << added.status();
  uint64_t prod = ConnectAgent(hub_.get(), "c1", {{"env", "prod"}});
  uint64_t edge = ConnectAgent(hub_.get(), "c2", {{"env", "edge"}});
  // A cluster's own revision is built after it joins: waited for (up to 30 s).
  auto next = [&](uint64_t agent) {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, "shop");
    for (int i = 0; message == nullptr && i < 3000; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
      message = hub_->NextMessage(agent, "shop");
    }
    return message == nullptr || message->message.update().upserts_size() != 1
               ? std::string()
               : message->message.update().upserts(0).yaml();
  };
  EXPECT_THAT(next(prod), HasSubstr("chart: shop\n"));
  EXPECT_THAT(next(edge), HasSubstr("chart: shop-edge\n"));
  EXPECT_EQ(ListedByName()["shop"].error(), "");
  git_.Write("apps/shop/edge-chart/Chart.yaml",
             "apiVersion: v2\nname: shop-edge-2\nversion: 0.2.0\n");
  git_.Commit("the edge chart changes");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_THAT(next(edge), HasSubstr("chart: shop-edge-2\n"));
  EXPECT_EQ(hub_->NextMessage(prod, "shop"), nullptr) << "the other clusters' chart is as it was";
}

// A chart beside a kustomization renders as Fleet renders it, for a bundle added since
// gitfleet did: through the kustomization its cluster's target's kustomize.dir names, else
// the folder's own, in the target's namespace. One rendered before keeps its engine and
// output (there: the folder's kustomization, without the chart).
TEST_F(ControllerTest, AChartGoesThroughItsFleetKustomizationForBundlesRenderedSince) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("mc/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("mc/web/fleet.yaml",
             "helm: {releaseName: web}\n"
             "targetCustomizations:\n"
             "- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n"
             "  kustomize: {dir: overlays/dev}\n  namespace: shop-dev\n");
  git_.Write("mc/web/kustomization.yaml", "resources: [extra.yaml]\n");
  git_.Write("mc/web/extra.yaml", Cm("extra", "1"));
  git_.Write("mc/web/overlays/dev/kustomization.yaml", "namePrefix: dev-\n");
  git_.Commit("a chart and its kustomizations, as Fleet renders them");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "mc/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_fleet_charts()) << "a new bundle reads them";
    record.clear_reads_fleet_charts();
    record.set_revision("rendered-before");
  }));
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  uint64_t dev = ConnectAgent(hub_.get(), "dev-1", {{"env", "dev"}});
  uint64_t prod = ConnectAgent(hub_.get(), "prod-1", {{"env", "prod"}});
  ASSERT_TRUE(controller_->AddBundle(Bundle("new", "mc/web"), false).ok());
  // "namespace: name, name" of each object `bundle`'s next message to `agent` upserts.
  auto names = [&](uint64_t agent, const std::string& bundle) {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(agent, bundle);
    if (message == nullptr) return std::string("(none)");
    std::vector<std::string> out;
    for (const auto& upsert : message->message.update().upserts()) {
      out.push_back(YAML::Load(upsert.yaml())["metadata"]["name"].as<std::string>());
    }
    std::sort(out.begin(), out.end());
    return absl::StrCat(message->message.update().target_namespace(), ": ",
                        absl::StrJoin(out, ", "));
  };
  EXPECT_EQ(names(dev, "new"), "shop-dev: dev-web");
  EXPECT_EQ(names(prod, "new"), ": extra, web") << "the folder's own, with the chart";
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_EQ(listed["new"].engine(), "helm");
  EXPECT_EQ(listed["old"].engine(), "kustomize") << "still the kustomize folder it was";
  EXPECT_EQ(listed["old"].object_count(), 1) << "extra, without the chart";
  EXPECT_THAT(listed["new"].notes(),
              ::testing::Contains(HasSubstr("the chart's output goes through "
                                            "mc/web/overlays/dev/kustomization.yaml")));
}

// "namespace/tier": where `bundle`'s next message to `agent` puts objects that name no
// namespace, and its one ConfigMap's data.tier; with that message's revision. Empty when
// there is no such message.
std::pair<std::string, std::string> TierOf(Hub* hub, uint64_t agent, const std::string& bundle) {
  std::shared_ptr<const EncodedMessage> message = hub->NextMessage(agent, bundle);
  if (message == nullptr || message->message.update().upserts_size() != 1) return {};
  YAML::Node cm = YAML::Load(message->message.update().upserts(0).yaml());
  return {absl::StrCat(message->message.update().target_namespace(), "/",
                       cm["data"]["tier"].as<std::string>()),
          message->message.update().revision()};
}

// A folder Fleet renders per cluster group: each target of fleet.yaml gives its clusters
// another folder (and namespace). One plain bundle renders for each cluster what its target
// gives it, substituted with its values; clusters of one target share a revision, a restart
// renders again rather than giving every cluster one cluster's render, and a bundle rendered
// before gitfleet read them keeps rendering its folder as it is.
TEST_F(ControllerTest, FleetTargetCustomizationsGiveAPlainBundlesClustersTheirFolders) {
  git_.Write("mc/web/fleet.yaml",
             "targetCustomizations:\n"
             "- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n  kustomize: {dir: dev}\n"
             "- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
             "  kustomize: {dir: prod}\n  defaultNamespace: shop\n");
  for (const char* env : {"dev", "prod"}) {
    git_.Write(absl::StrCat("mc/web/", env, "/cm.yaml"),
               absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n"
                            "data:\n  tier: ",
                            env, "-${size:=s}\n"));
  }
  git_.Commit("a folder per environment");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "mc/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_fleet_target_folders()) << "a new bundle reads them";
    record.clear_reads_fleet_target_folders();
    record.set_revision("rendered-before");
  }));
  uint64_t dev = ConnectAgent(hub_.get(), "dev-1", {{"env", "dev"}});
  uint64_t prod1 = ConnectAgent(hub_.get(), "prod-1", {{"env", "prod"}, {"size", "l"}});
  uint64_t prod2 = ConnectAgent(hub_.get(), "prod-2", {{"env", "prod"}, {"zone", "b"}});
  ConnectAgent(hub_.get(), "qa-1", {{"env", "qa"}});
  v1::Bundle web = Bundle("web", "mc/web");
  web.set_substitute(true);
  auto info = controller_->AddBundle(web, false);
  ASSERT_TRUE(info.ok()) << info.status();
  auto [dev_tier, dev_revision] = TierOf(hub_.get(), dev, "web");
  auto [prod1_tier, prod1_revision] = TierOf(hub_.get(), prod1, "web");
  auto [prod2_tier, prod2_revision] = TierOf(hub_.get(), prod2, "web");
  EXPECT_EQ(dev_tier, "/dev-s");
  EXPECT_EQ(prod1_tier, "shop/prod-l") << "substituted with the cluster's values";
  EXPECT_EQ(prod2_tier, "shop/prod-s") << "the target's namespace";
  EXPECT_NE(prod1_revision, prod2_revision);
  EXPECT_NE(dev_revision, prod2_revision);
  std::vector<v1::BundleStatus> qa_status = controller_->GetStatus("qa-1", "web");
  ASSERT_EQ(qa_status.size(), 1u);
  EXPECT_EQ(qa_status[0].sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(qa_status[0].message(),
              HasSubstr("no targetCustomizations of mc/web/fleet.yaml selects this cluster"));
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_THAT(listed["web"].notes(),
              ::testing::Contains(HasSubstr("each cluster renders what mc/web/fleet.yaml's "
                                            "targetCustomizations dev, prod give it")));
  // The old bundle renders the folder as it is: both ConfigMaps, one name: a render error
  // that names the bundles per target, for every cluster alike.
  EXPECT_THAT(listed["old"].error(), HasSubstr("a bundle per target does their work"));

  // After a restart, each cluster still gets its own folder's render.
  Restart();
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  dev = ConnectAgent(hub_.get(), "dev-1", {{"env", "dev"}});
  prod2 = ConnectAgent(hub_.get(), "prod-2", {{"env", "prod"}, {"zone", "b"}});
  EXPECT_EQ(TierOf(hub_.get(), dev, "web"), std::make_pair(std::string("/dev-s"), dev_revision));
  EXPECT_EQ(TierOf(hub_.get(), prod2, "web").first, "shop/prod-s");
}

// A target's folder that fails for its clusters alone (a kustomization naming a base not
// there yet) is rendered again once a commit brings what it looked for, though nothing the
// other targets read changed: what a failed render read counts for the render cache too.
TEST_F(ControllerTest, ATargetsFailedFolderRendersOnceWhatItLookedForComes) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  git_.Write("mc/web/fleet.yaml",
             "targetCustomizations:\n"
             "- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n  kustomize: {dir: dev}\n"
             "- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
             "  kustomize: {dir: prod}\n");
  git_.Write("mc/web/dev/kustomization.yaml", "resources: [cm.yaml]\n");
  git_.Write("mc/web/dev/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {tier: dev}\n");
  git_.Write("mc/web/prod/kustomization.yaml", "resources: [../../../shared/prod]\n");
  git_.Commit("prod's base is not there yet");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  uint64_t dev = ConnectAgent(hub_.get(), "dev-1", {{"env", "dev"}});
  ConnectAgent(hub_.get(), "prod-1", {{"env", "prod"}});
  ASSERT_TRUE(controller_->AddBundle(Bundle("web", "mc/web"), false).ok());
  EXPECT_EQ(TierOf(hub_.get(), dev, "web").first, "/dev");
  std::vector<v1::BundleStatus> prod = controller_->GetStatus("prod-1", "web");
  ASSERT_EQ(prod.size(), 1u);
  EXPECT_EQ(prod[0].sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(prod[0].message(), HasSubstr("shared/prod"));

  git_.Write("shared/prod/kustomization.yaml", "resources: [cm.yaml]\n");
  git_.Write("shared/prod/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {tier: prod}\n");
  git_.Commit("prod's base");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  uint64_t prod1 = ConnectAgent(hub_.get(), "prod-1", {{"env", "prod"}});
  EXPECT_EQ(TierOf(hub_.get(), prod1, "web").first, "/prod");
  prod = controller_->GetStatus("prod-1", "web");
  ASSERT_EQ(prod.size(), 1u);
  EXPECT_NE(prod[0].sync_state(), v1::SYNC_STATE_FAILED) << prod[0].message();
}

// Fleet's layout of one chart and a folder of values per environment (each fleet.yaml's
// `helm.chart: ../../charts/web`): each environment's bundle renders the chart with its own
// values. The chart's folder is among what they read: another team's commit renders
// neither, a change to the chart renders both; a broken chart fails both, is carried
// across commits that change nothing they read, and its fix renders both at once. A bundle
// rendered before gitfleet read it keeps its folder, saying why.
TEST_F(ControllerTest, AChartOutsideTheFolderRendersWithEachEnvironmentsValues) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("helm/charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("helm/charts/web/values.yaml", "replicas: 1\n");
  for (const char* env : {"prod", "dev"}) {
    git_.Write(absl::StrCat("helm/values/", env, "/fleet.yaml"),
               absl::StrCat("helm:\n  chart: ../../charts/web\n  releaseName: web-", env,
                            "\n  values: {tier: ", env, "}\n"));
  }
  git_.Write("helm/values/old/fleet.yaml", "helm: {chart: ../../charts/web}\n");
  git_.Write("helm/values/old/cm.yaml", Cm("old"));
  git_.Commit("one chart, a folder of values per environment");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "helm/values/old"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_fleet_outside_charts()) << "a new bundle reads it";
    record.clear_reads_fleet_outside_charts();
    record.set_revision("rendered-before");
  }));
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  for (const char* env : {"prod", "dev"}) {
    ASSERT_TRUE(controller_->AddBundle(Bundle(env, absl::StrCat("helm/values/", env)), false).ok());
  }
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  // The object `bundle`'s next update holds, waited for (the hub gets a render after its
  // record is written).
  auto object_of = [&](const std::string& bundle) {
    std::string object = OnlyObjectOf(agent, bundle);
    for (int i = 0; object.empty() && i < 3000; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
      object = OnlyObjectOf(agent, bundle);
    }
    return object;
  };
  for (const char* env : {"prod", "dev"}) {
    const std::string object = object_of(env);
    EXPECT_THAT(object, HasSubstr(absl::StrCat("name: web-", env))) << env;
    EXPECT_THAT(object, HasSubstr("chart: web")) << env;
    EXPECT_THAT(object, HasSubstr(absl::StrCat("tier: ", env))) << env;
  }
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  EXPECT_EQ(listed["prod"].engine(), "helm");
  EXPECT_EQ(listed["old"].engine(), "plain") << "a bundle from before keeps its engine";
  EXPECT_THAT(object_of("old"), HasSubstr("name: old"));
  EXPECT_THAT(listed["old"].notes(),
              ::testing::Contains(HasSubstr("this bundle was rendered before gitfleet read it")));

  auto helm_renders = [&] {
    return metrics_.renders.Add({{"engine", "helm"}, {"result", "ok"}}).Value() +
           metrics_.renders.Add({{"engine", "helm"}, {"result", "error"}}).Value();
  };
  // As a push webhook asks: a fetch, not an operator's call (which renders again).
  auto push = [&](const std::string& message) {
    const std::string commit = git_.Commit(message);
    EXPECT_TRUE(controller_->FetchSourceSoon("app").ok());
    for (int i = 0; i < 3000; ++i) {
      std::map<std::string, v1::BundleInfo> now = ListedByName();
      if (std::all_of(now.begin(), now.end(), [&](const auto& entry) {
            return entry.second.commit() == commit || entry.second.error_commit() == commit;
          })) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return commit;
  };
  double before = helm_renders();
  git_.Write("other/cm.yaml", Cm("other"));
  push("another team's change");
  EXPECT_EQ(helm_renders(), before) << "nothing the environments read changed";

  git_.Write("helm/charts/web/Chart.yaml", "apiVersion: v2\nname: web-chart\nversion: 0.2.0\n");
  push("the chart");
  EXPECT_EQ(helm_renders(), before + 2);
  for (const char* env : {"prod", "dev"}) {
    EXPECT_THAT(object_of(env), HasSubstr("chart: web-chart")) << env;
  }

  git_.Remove("helm/charts/web/Chart.yaml");
  std::string commit = push("the chart broken");
  listed = ListedByName();
  for (const char* env : {"prod", "dev"}) {
    EXPECT_EQ(listed[env].error_commit(), commit) << env;
    EXPECT_THAT(listed[env].error(),
                HasSubstr("the chart folder helm/charts/web holds no Chart.yaml"))
        << env;
  }
  before = helm_renders();
  git_.Write("other/cm.yaml", Cm("other", "2"));
  commit = push("another team's change while the chart is broken");
  EXPECT_EQ(helm_renders(), before) << "the failure is carried: nothing it read changed";
  EXPECT_EQ(ListedByName()["prod"].error_commit(), commit);

  git_.Write("helm/charts/web/Chart.yaml", "apiVersion: v2\nname: web-fixed\nversion: 0.3.0\n");
  commit = push("the chart fixed");
  listed = ListedByName();
  for (const char* env : {"prod", "dev"}) {
    EXPECT_EQ(listed[env].error(), "") << env;
    EXPECT_EQ(listed[env].commit(), commit) << env;
    EXPECT_THAT(object_of(env), HasSubstr("chart: web-fixed")) << env;
  }
}

// A chart named in one of Fleet's forms of a Git source other than `git::` (GitHub's
// shorthand here) is read as a chart in another Git repository by a new bundle: detected as
// a chart and fetched, so here refused by name (no prefix is trusted). A bundle rendered
// before gitfleet read that form keeps its engine and renders its folder as it did, saying
// why.
TEST_F(ControllerTest, AChartInFleetsGitShorthandIsReadByNewBundlesOnly) {
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("apps/web/fleet.yaml", "helm: {chart: 'github.com/org/charts//web?ref=v1'}\n");
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("a chart on GitHub, in Fleet's shorthand");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("old", "apps/web"), false).ok());
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("old", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_fleet_getter_charts()) << "a new bundle reads it";
    record.clear_reads_fleet_getter_charts();
    record.set_revision("rendered-before");
  }));
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("new", "apps/web"), false).ok());
  uint64_t agent = ConnectAgent(hub_.get(), "a", {});
  std::string object = OnlyObjectOf(agent, "old");
  for (int i = 0; object.empty() && i < 3000; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    object = OnlyObjectOf(agent, "old");
  }
  EXPECT_THAT(object, HasSubstr("name: web"));
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  for (int i = 0; listed["new"].error().empty() && i < 3000; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    listed = ListedByName();
  }
  EXPECT_EQ(listed["old"].engine(), "plain") << "a bundle from before keeps its engine";
  EXPECT_THAT(listed["old"].notes(), ::testing::Contains(HasSubstr("read that form of a chart")));
  EXPECT_THAT(listed["new"].error(), HasSubstr("helm apps/web: the chart"));
  EXPECT_THAT(listed["new"].error(), HasSubstr("https://github.com/org/charts.git"));
  EXPECT_THAT(listed["new"].error(), HasSubstr("--kustomize-remote-bases"));
}

// Fleet's cluster groups (--cluster-groups): a target's clusterGroup holds the clusters of
// that group, its clusterGroupSelector those of the groups whose labels it matches, as in
// Fleet. A change of the groups moves the clusters it moves to their new target.
TEST_F(ControllerTest, FleetClusterGroupsChooseTheTargetsOfTheirClusters) {
  git_.Write("mc/web/fleet.yaml",
             "targetCustomizations:\n"
             "- name: edge\n  clusterGroup: edge\n  kustomize: {dir: edge}\n"
             "- name: critical\n  clusterGroupSelector: {matchLabels: {tier: critical}}\n"
             "  kustomize: {dir: critical}\n  defaultNamespace: shop\n"
             "- name: rest\n  clusterSelector: {}\n  kustomize: {dir: rest}\n");
  for (const char* dir : {"edge", "critical", "rest"}) {
    git_.Write(absl::StrCat("mc/web/", dir, "/cm.yaml"),
               absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n"
                            "data:\n  tier: ",
                            dir, "\n"));
  }
  git_.Commit("a folder per group");
  auto groups = [](const std::string& prod_tier) {
    absl::StatusOr<std::vector<ClusterGroup>> read = ParseFleetClusterGroups(
        absl::StrCat("apiVersion: fleet.cattle.io/v1alpha1\nkind: ClusterGroup\n"
                     "metadata: {name: edge}\nspec: {selector: {matchLabels: {site: edge}}}\n"
                     "---\napiVersion: fleet.cattle.io/v1alpha1\nkind: ClusterGroup\n"
                     "metadata: {name: prod, labels: {tier: ",
                     prod_tier, "}}\nspec: {selector: {matchLabels: {env: prod}}}\n"),
        "groups.yaml");
    EXPECT_TRUE(read.ok()) << read.status();
    return std::make_shared<const std::vector<ClusterGroup>>(
        read.value_or(std::vector<ClusterGroup>{}));
  };
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  uint64_t edge = ConnectAgent(hub_.get(), "edge-1", {{"site", "edge"}, {"env", "prod"}});
  uint64_t prod = ConnectAgent(hub_.get(), "prod-1", {{"env", "prod"}});
  uint64_t dev = ConnectAgent(hub_.get(), "dev-1", {{"env", "dev"}});
  auto info = controller_->AddBundle(Bundle("web", "mc/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  // Without groups read (no --cluster-groups), where a group's target would decide is
  // unknown: those clusters fail rather than get another target's render.
  std::vector<v1::BundleStatus> unknown = controller_->GetStatus("dev-1", "web");
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0].sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(unknown[0].message(),
              HasSubstr("targetCustomizations edge selects by Fleet's clusterGroup edge, and the "
                        "control plane reads no cluster groups"));
  EXPECT_EQ(TierOf(hub_.get(), dev, "web").first, "");
  hub_->SetClusterGroups(groups("critical"));
  // Variants for clusters arrive as they are built: wait for each.
  auto tier = [&](uint64_t agent) {
    for (int i = 0; i < 1000; ++i) {
      std::string got = TierOf(hub_.get(), agent, "web").first;
      if (!got.empty()) return got;
      absl::SleepFor(absl::Milliseconds(2));
    }
    return std::string("(none)");
  };
  EXPECT_EQ(tier(edge), "/edge") << "in both groups: the first target that holds it";
  EXPECT_EQ(tier(prod), "shop/critical") << "its group's labels match clusterGroupSelector";
  EXPECT_EQ(tier(dev), "/rest") << "in no group";
  std::vector<v1::ClusterInfo> clusters = hub_->MatchingClusters(*LabelSelector::Parse(""));
  for (const v1::ClusterInfo& cluster : clusters) {
    if (cluster.name() != "edge-1") continue;
    ASSERT_EQ(cluster.groups_size(), 2);
    EXPECT_EQ(cluster.groups(0).name(), "edge");
    EXPECT_EQ(cluster.groups(1).name(), "prod");
  }

  // The prod group's labels change: its clusters leave the critical target; the edge
  // cluster keeps what it has.
  hub_->SetClusterGroups(groups("standard"));
  EXPECT_EQ(tier(prod), "/rest");
  EXPECT_EQ(TierOf(hub_.get(), edge, "web").first, "") << "nothing new for the edge cluster";
  EXPECT_EQ(TierOf(hub_.get(), dev, "web").first, "");
}

TEST_F(ControllerTest, RejectsBadValuesClearly) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Bundle bad_rule = Bundle("b", "a");
  bad_rule.add_cluster_values()->set_selector("env in prod");
  EXPECT_THAT(std::string(controller_->AddBundle(bad_rule, false).status().message()),
              HasSubstr("cluster_values[0] (env in prod)"));
  v1::Bundle bad_tla = Bundle("b", "a");
  bad_tla.add_jsonnet_tlas("1x");
  EXPECT_THAT(std::string(controller_->AddBundle(bad_tla, false).status().message()),
              HasSubstr("jsonnet top-level argument \"1x\""));
  v1::Bundle twice = Bundle("b", "a");
  twice.add_jsonnet_tlas("env=cluster.env");
  twice.add_jsonnet_tlas("env");
  EXPECT_THAT(std::string(controller_->AddBundle(twice, false).status().message()),
              HasSubstr("jsonnet top-level argument env is given twice"));
  v1::Bundle depends_twice = Bundle("b", "a");
  depends_twice.add_depends_on("crds");
  depends_twice.add_depends_on("crds");
  EXPECT_THAT(std::string(controller_->AddBundle(depends_twice, false).status().message()),
              HasSubstr("--depends-on names crds twice"));
  v1::Bundle bad_file = Bundle("b", "a");
  bad_file.add_helm_values_files("../../secrets.yaml");
  EXPECT_THAT(std::string(controller_->AddBundle(bad_file, false).status().message()),
              HasSubstr("helm values file \"../../secrets.yaml\" is outside the repository"));
  v1::Bundle absolute_file = Bundle("b", "a");
  absolute_file.add_helm_values_files("/etc/passwd");
  EXPECT_THAT(std::string(controller_->AddBundle(absolute_file, false).status().message()),
              HasSubstr("must be a path relative to the chart's folder"));
  // A shell script in a ConfigMap, in a bundle that asked for no substitution, renders as
  // written.
  v1::Bundle script = Bundle("b", "a");
  git_.Write("m/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n"
             "data: {run.sh: \"exit ${BACKUP_EXIT:-0} ${#A[@]} ${env}\"}\n");
  git_.Commit("script");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  script.set_path("m");
  auto info = controller_->AddBundle(script, false);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->error().empty()) << info->error();
}

// The real agent stream asks the hub for its message on the thread that notifies it
// (AgentStream::Notify -> MaybeWrite -> Hub::NextMessage). This connection does the same.
class SynchronousConnection : public AgentConnection {
 public:
  explicit SynchronousConnection(Hub* hub) : hub_(hub) {}
  void Notify(const std::string& bundle) override {
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(session, bundle);
    MutexLock lock(&mu_);
    if (message != nullptr) messages_.push_back(message);
  }
  void NotifyControl() override {}
  void Close(const absl::Status&) override {}
  std::vector<std::shared_ptr<const EncodedMessage>> messages() {
    MutexLock lock(&mu_);
    return messages_;
  }
  std::atomic<uint64_t> session{0};

 private:
  Hub* const hub_;
  Mutex mu_;
  std::vector<std::shared_ptr<const EncodedMessage>> messages_ ABSL_GUARDED_BY(mu_);
};

// An orphan (held by an agent, defined nowhere here) has a status: filtering by it is not
// an error.
TEST_F(ControllerTest, AStatusFilterMayNameAnOrphan) {
  v1::Hello holder;
  holder.set_cluster("old");
  v1::HeldRevision* held = holder.add_held();
  held->set_bundle("c");
  held->set_revision("r1");
  EXPECT_TRUE(absl::IsNotFound(controller_->CheckStatusFilter("", "c")));
  auto agent = std::make_shared<SynchronousConnection>(hub_.get());
  agent->session = hub_->Connect(holder, "peer", agent);
  agent->Notify("c");
  EXPECT_TRUE(controller_->CheckStatusFilter("", "c").ok());
  EXPECT_TRUE(controller_->CheckStatusFilter("old", "c").ok());
  ASSERT_EQ(controller_->GetStatus("old", "c").size(), 1u);
  EXPECT_TRUE(controller_->GetStatus("old", "c")[0].orphaned());
}

// Runs `fn` on its own thread; a call that does not return within the limit is a deadlock,
// and the test binary exits (the stuck thread cannot be joined).
void WithinDeadline(const char* what, std::function<void()> fn) {
  auto done = std::make_shared<Notification>();
  std::thread thread([fn = std::move(fn), done] {
    fn();
    done->Notify();
  });
  if (!done->WaitForNotificationWithTimeout(absl::Seconds(30))) {
    fprintf(stderr, "DEADLOCK: %s did not return within 30 s\n", what);
    fflush(stderr);
    _exit(1);
  }
  thread.join();
}

TEST_F(ControllerTest, WideningAPerClusterBundleToAConnectedClusterDoesNotDeadlock) {
  git_.Write("j/main.jsonnet",
             "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg-' + "
             "std.extVar('cluster.name') } }\n");
  git_.Commit("per-cluster jsonnet");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto connection = std::make_shared<SynchronousConnection>(hub_.get());
  v1::Hello hello;
  hello.set_cluster("idle");
  (*hello.mutable_labels())["env"] = "prod";
  connection->session = hub_->Connect(hello, "peer", connection);
  auto dev_only = controller_->AddBundle(Bundle("j", "j", "env=dev"), false);
  ASSERT_TRUE(dev_only.ok()) << dev_only.status();
  EXPECT_TRUE(connection->messages().empty());

  // Widening the selector reaches the idle prod cluster, whose variant is not built yet.
  WithinDeadline("bundle add --replace", [&] {
    auto widened = controller_->AddBundle(Bundle("j", "j", ""), /*replace=*/true);
    ASSERT_TRUE(widened.ok()) << widened.status();
  });
  WithinDeadline("the render for the new cluster", [&] {
    for (int i = 0; i < 3000 && connection->messages().empty(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  ASSERT_EQ(connection->messages().size(), 1u);
  EXPECT_EQ(connection->messages()[0]->message.update().upserts(0).key().name(), "cfg-idle");
}

// The branch a source follows is deleted upstream (merged and cleaned up, or by mistake):
// the source says so, and clusters keep what they run: no bundle is emptied or removed,
// also across a restart of the control plane while the branch is gone.
TEST_F(ControllerTest, ABranchDeletedUpstreamKeepsWhatClustersRun) {
  git_.Write("web/cm.yaml", Cm("a"));
  git_.Commit("a");
  git_.Git("branch next");
  v1::Source next = Source();
  next.set_ref("next");
  ASSERT_TRUE(controller_->AddSource(next, false).ok());
  absl::StatusOr<v1::BundleInfo> web = controller_->AddBundle(Bundle("web", "web"), false);
  ASSERT_TRUE(web.ok()) << web.status();
  const std::string revision = web->revision();
  ASSERT_FALSE(revision.empty());
  auto agent = std::make_shared<SynchronousConnection>(hub_.get());
  v1::Hello hello;
  hello.set_cluster("c1");
  agent->session = hub_->Connect(hello, "peer", agent);
  agent->Notify("web");
  ASSERT_EQ(agent->messages().size(), 1u);

  git_.Git("branch -D next");
  absl::StatusOr<v1::SourceInfo> synced = controller_->SyncSource("app");
  ASSERT_TRUE(synced.ok()) << synced.status();
  EXPECT_THAT(synced->error(), HasSubstr("ref \"next\" not found"));
  EXPECT_THAT(synced->error(), HasSubstr("branches: main"));
  EXPECT_EQ(metrics_.sources_in_error.Value(), 1) << "the fetch worked; the ref is gone";
  auto listed = [&] {
    std::vector<v1::BundleInfo> bundles = controller_->ListBundles();
    return bundles.size() == 1 ? bundles[0] : v1::BundleInfo();
  };
  EXPECT_EQ(listed().revision(), revision);
  EXPECT_EQ(listed().error(), "") << "its render did not fail";
  EXPECT_THAT(listed().source_error(), HasSubstr("ref \"next\" not found"));
  // Services that read a cluster's status see it too.
  std::vector<v1::BundleStatus> statuses = controller_->GetStatus("c1", "web");
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_THAT(statuses[0].source_error(), HasSubstr("ref \"next\" not found"));
  agent->Notify("web");
  EXPECT_EQ(agent->messages().size(), 1u) << "nothing new for the cluster, no removal";

  // A restart while the branch is gone: the stored revision is served as it was.
  Restart();
  synced = controller_->SyncSource("app");
  ASSERT_TRUE(synced.ok()) << synced.status();
  EXPECT_THAT(synced->error(), HasSubstr("ref \"next\" not found"));
  EXPECT_EQ(listed().revision(), revision);
  auto back = std::make_shared<SynchronousConnection>(hub_.get());
  v1::HeldRevision* held = hello.add_held();
  held->set_bundle("web");
  held->set_revision(revision);
  back->session = hub_->Connect(hello, "peer", back);
  back->Notify("web");
  EXPECT_TRUE(back->messages().empty()) << "it holds the revision it should: nothing to send";
  // A rollback to a commit outside the history needs the repository: it says why it cannot.
  absl::StatusOr<v1::BundleInfo> pinned = controller_->PinBundle("web", "abcdef1");
  EXPECT_TRUE(absl::IsUnavailable(pinned.status())) << pinned.status();
  EXPECT_THAT(std::string(pinned.status().message()),
              HasSubstr("--to=abcdef1: not in bundle web's history, and source app has no "
                        "fetched commit to look it up in (ref \"next\" not found"));
  EXPECT_EQ(listed().pinned_commit(), "");
  // To a revision of its history it rolls back while the source cannot be fetched.
  absl::StatusOr<v1::BundleInfo> stored = controller_->PinBundle("web", revision.substr(0, 7));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->revision(), revision);
  ASSERT_TRUE(controller_->PinBundle("web", "").ok());

  // The branch comes back with a change: the bundle follows it again.
  git_.Git("branch next");
  git_.Git("checkout -q next");
  git_.Write("web/cm.yaml", Cm("a", "2"));
  git_.Commit("a again");
  synced = controller_->SyncSource("app");
  ASSERT_TRUE(synced.ok()) << synced.status();
  EXPECT_EQ(synced->error(), "");
  EXPECT_EQ(metrics_.sources_in_error.Value(), 0);
  EXPECT_NE(listed().revision(), revision);
  EXPECT_EQ(listed().source_error(), "");
  EXPECT_EQ(controller_->GetStatus("c1", "web")[0].source_error(), "");
  back->Notify("web");
  ASSERT_EQ(back->messages().size(), 1u);
  EXPECT_FALSE(back->messages()[0]->message.has_removal());

  // Told to the bundle's watchers: once per run of the control plane while it failed
  // (not at every fetch), then that it recovered.
  std::vector<std::string> told;
  for (const v1::Event& event :
       (*events_.Subscribe({"web", "", {"source.failed", "source.recovered"}}, nullptr))->Take()) {
    told.push_back(event.type());
    EXPECT_EQ(event.source(), "app");
  }
  EXPECT_THAT(told, ElementsAre("source.failed", "source.failed", "source.recovered"));
}

// One commit moves a file from one bundle's path to another's. The bundle that loses it
// renders fast (plain) and the one that gains it slowly (kustomize): its update still
// names the object as handed over, because it waits for the other's render before the
// agents get it. The agent then leaves the object in place rather than delete it.
// An agent of cluster c1 (env=prod) that took api's and web's first revisions.
std::shared_ptr<SynchronousConnection> ConnectAgentOfApiAndWeb(Hub* hub) {
  auto agent = std::make_shared<SynchronousConnection>(hub);
  v1::Hello hello;
  hello.set_cluster("c1");
  (*hello.mutable_labels())["env"] = "prod";
  agent->session = hub->Connect(hello, "peer", agent);
  agent->Notify("api");
  agent->Notify("web");
  return agent;
}

// Whether the agent has `count` messages within `limit`.
bool SentWithin(SynchronousConnection& agent, size_t count, absl::Duration limit) {
  for (absl::Time end = absl::Now() + limit; absl::Now() < end;) {
    if (agent.messages().size() >= count) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

// The agent's updates (not first revisions), one line each: "api: -moved moved->web".
std::vector<std::string> UpdateLines(SynchronousConnection& agent) {
  std::vector<std::string> updates;
  for (const auto& message : agent.messages()) {
    const v1::BundleUpdate& update = message->message.update();
    if (update.base_revision().empty()) continue;
    std::string line = update.bundle() + ":";
    for (const auto& key : update.removed()) absl::StrAppend(&line, " -", key.name());
    for (const auto& o : update.upserts()) absl::StrAppend(&line, " +", o.key().name());
    for (const auto& h : update.handovers()) {
      absl::StrAppend(&line, " ", h.key().name(), "->", h.bundle());
    }
    updates.push_back(line);
  }
  return updates;
}

// A commit that replaces api's a.yaml by c.yaml reaches `agent` once source app is synced
// (within 20 s): one update of api, one object removed and none handed over.
void ExpectADropThatMovesNothingGoes(GitFixture& git, Controller& controller,
                                     SynchronousConnection& agent) {
  const size_t sent = agent.messages().size();
  git.Remove("apps/api/a.yaml");
  git.Write("apps/api/c.yaml", Cm("c"));
  git.Commit("a goes");
  ASSERT_TRUE(controller.SyncSource("app").ok());
  ASSERT_TRUE(SentWithin(agent, sent + 1, absl::Seconds(20)));
  ASSERT_EQ(agent.messages().size(), sent + 1);
  const v1::BundleUpdate& update = agent.messages().back()->message.update();
  EXPECT_EQ(update.bundle(), "api");
  ASSERT_EQ(update.removed_size(), 1);
  EXPECT_EQ(update.handovers_size(), 0);
}

// After a commit that moved ConfigMap moved from api to web (source app): the agent
// hears of both once app is synced, api's update handing the object over, and api's render
// waited once, for what `waited_for` says.
void ExpectMovedHandedOver(Controller& controller, EventBus& events, SynchronousConnection& agent,
                           const std::string& commit, const std::string& waited_for) {
  ASSERT_TRUE(controller.SyncSource("app").ok());
  ASSERT_TRUE(SentWithin(agent, 4, absl::Seconds(20)));
  EXPECT_THAT(UpdateLines(agent),
              ::testing::UnorderedElementsAre("api: -moved moved->web", "web: +moved"));
  std::vector<v1::Event> waits =
      (*events.Subscribe({"api", "", {"render.waiting"}}, nullptr))->Take();
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(
      waits[0].message(),
      absl::StrCat("its render of ", commit.substr(0, 12), " drops objects and waits for ",
                   waited_for, ", so that what moved to one of them is handed over, not deleted"));
}

TEST_F(ControllerTest, AnObjectMovedBetweenBundlesInOneCommitIsHandedOverNotDeleted) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  AddApiAndWeb();
  std::shared_ptr<SynchronousConnection> agent = ConnectAgentOfApiAndWeb(hub_.get());
  ASSERT_EQ(agent->messages().size(), 2u);

  MoveMovedToWeb();
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  // api's update goes once web's render is done (a pass of its own, which the sync does
  // not wait for).
  ASSERT_TRUE(SentWithin(*agent, 4, absl::Seconds(20)));
  EXPECT_THAT(UpdateLines(*agent),
              ::testing::UnorderedElementsAre("api: -moved moved->web", "web: +moved"));

  // A commit that only drops an object waits no longer than web's render, the same as
  // before (not the minute a render that never comes would take).
  ExpectADropThatMovesNothingGoes(git_, *controller_, *agent);
}

// Two sources may read one repository at one ref (a team's own source on a monorepo, its
// URL written another way): an object one commit moves between their bundles is handed
// over too, and the other source fetches that commit at once, not an hour later.
TEST_F(ControllerTest, AnObjectMovedBetweenSourcesOfOneRepositoryIsHandedOverToo) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  WriteApiAndWeb();
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Source other = Source();
  other.set_name("app2");
  other.set_url(git_.url() + "/.git/");  // fetched apart, one repository
  // app follows the remote's default branch; app2 names it: one stream of commits.
  other.set_ref("refs/heads/main");
  other.set_poll_interval_seconds(3600);
  // A source on another branch of the repository sees other commits: nothing waits for it.
  v1::Source branch = Source();
  branch.set_name("app-next");
  branch.set_ref("next");
  git_.Git("branch next");
  ASSERT_TRUE(controller_->AddSource(other, false).ok());
  ASSERT_TRUE(controller_->AddSource(branch, false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("api", "apps/api"), false).ok());
  v1::Bundle web = Bundle("web", "apps/web");
  web.set_source("app2");
  ASSERT_TRUE(controller_->AddBundle(web, false).ok());
  v1::Bundle next = Bundle("next", "apps/web");
  next.set_source("app-next");
  next.set_selector("env=none");
  ASSERT_TRUE(controller_->AddBundle(next, false).ok());
  std::shared_ptr<SynchronousConnection> agent = ConnectAgentOfApiAndWeb(hub_.get());
  ASSERT_EQ(agent->messages().size(), 2u);

  // Only app is synced; app2 is not asked to.
  ExpectMovedHandedOver(*controller_, events_, *agent, MoveMovedToWeb(),
                        "1 other bundle of sources app and app2 (one repository at one ref) to "
                        "render it too (first web)");
}

// The documented way to move an object between repositories: add it to the new one's
// bundle, then drop it from the old one's. The new repository is polled hourly, so the
// control plane has not seen it add the object when the old one's commit arrives: the old
// bundle's render fetches the repositories of the bundles on its clusters first, and the
// object is handed over rather than deleted and created again an hour later.
TEST_F(ControllerTest, AnObjectAddedInAnotherRepositoryThenDroppedHereIsHandedOver) {
  git_.Write("apps/api/a.yaml", Cm("a"));
  git_.Write("apps/api/moved.yaml", Cm("moved"));
  git_.Commit("api");
  GitFixture other(TempDir("other-repo"));
  other.Write("apps/web/b.yaml", Cm("b"));
  other.Commit("web");
  GitFixture far(TempDir("far-repo"));
  far.Write("apps/far/f.yaml", Cm("f"));
  far.Commit("far");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("api", "apps/api"), false).ok());
  AddHourlySourceAndBundle("other", other.url(), "web", "apps/web");
  // On no cluster api is on: not waited for.
  AddHourlySourceAndBundle("far", far.url(), "far", "apps/far", "env=none");
  std::shared_ptr<SynchronousConnection> agent = ConnectAgentOfApiAndWeb(hub_.get());
  ASSERT_EQ(agent->messages().size(), 2u);

  other.Write("apps/web/moved.yaml", Cm("moved"));
  other.Commit("web takes moved");  // seen at the next poll, an hour away
  git_.Remove("apps/api/moved.yaml");
  ExpectMovedHandedOver(*controller_, events_, *agent, git_.Commit("api lets moved go"),
                        "source other (another repository on its clusters) to fetch");
  EXPECT_EQ(metrics_.sibling_waits.Add({{"result", "done"}}).Value(), 1);

  // A drop that moves nothing waits for that fetch alone, then goes.
  ExpectADropThatMovesNothingGoes(git_, *controller_, *agent);
  EXPECT_EQ(metrics_.sibling_waits.Add({{"result", "done"}}).Value(), 2);
}

// A repository on the same clusters that cannot be fetched holds a drop up for one failed
// fetch, not for the minute a stalled wait would take.
TEST_F(ControllerTest, ADropWaitsForAnUnreachableRepositoryOnlyAsLongAsItsFetch) {
  git_.Write("apps/api/a.yaml", Cm("a"));
  git_.Write("apps/api/b.yaml", Cm("b"));
  git_.Commit("api");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("api", "apps/api"), false).ok());
  AddHourlySourceAndBundle("broken", "file://" + TempDir("no-repo") + "/missing", "web",
                           "apps/web");
  std::shared_ptr<SynchronousConnection> agent = ConnectAgentOfApiAndWeb(hub_.get());
  const size_t sent = agent->messages().size();
  ASSERT_GE(sent, 1u);

  git_.Remove("apps/api/b.yaml");
  git_.Commit("b goes");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  // Within half the stall's minute.
  ASSERT_TRUE(SentWithin(*agent, sent + 1, absl::Seconds(30)));
  const v1::BundleUpdate& update = agent->messages().back()->message.update();
  EXPECT_EQ(update.bundle(), "api");
  EXPECT_EQ(update.removed_size(), 1);
  EXPECT_EQ(metrics_.sibling_waits.Add({{"result", "done"}}).Value(), 1);
  EXPECT_EQ(metrics_.sibling_waits.Add({{"result", "abandoned"}}).Value(), 0);
}

// The prune guard counts what a render hands over to another bundle as kept: a bundle split
// in two is not held. An object another bundle holds only on other clusters (staging's copy
// of what prod drops) is still counted as deleted.
TEST_F(ControllerTest, ThePruneGuardLetsABundleSplitInTwoGoButNotAMistakeStagingHides) {
  for (int i = 0; i < 12; ++i) {
    git_.Write(absl::StrCat("apps/api/c", i, ".yaml"), Cm(absl::StrCat("c", i)));
    git_.Write(absl::StrCat("apps/prod/p", i, ".yaml"), Cm(absl::StrCat("p", i)));
    git_.Write(absl::StrCat("apps/staging/p", i, ".yaml"), Cm(absl::StrCat("p", i)));
  }
  git_.Write("apps/web/w.yaml", Cm("w"));
  git_.Commit("api, web, and prod with its staging copy");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  for (const auto& [name, selector] : {std::pair<std::string, std::string>("api", ""),
                                       {"web", ""},
                                       {"prod", "env=prod"},
                                       {"staging", "env=staging"}}) {
    v1::Bundle bundle = Bundle(name, "apps/" + name, selector);
    bundle.mutable_sync()->set_prune(true);
    ASSERT_TRUE(controller_->AddBundle(bundle, false).ok());
  }
  std::shared_ptr<SynchronousConnection> agent = ConnectAgentOfApiAndWeb(hub_.get());
  ASSERT_EQ(agent->messages().size(), 2u);
  auto rollout = [&](const std::string& bundle) {
    absl::StatusOr<v1::RolloutStatus> status = controller_->GetRollout(bundle);
    EXPECT_TRUE(status.ok()) << status.status();
    return status.ok() ? *status : v1::RolloutStatus();
  };

  // Eleven of api's twelve move to web: handed over, not deleted, so not held.
  std::vector<std::string> moved;
  for (int i = 1; i < 12; ++i) {
    git_.Remove(absl::StrCat("apps/api/c", i, ".yaml"));
    git_.Write(absl::StrCat("apps/web/c", i, ".yaml"), Cm(absl::StrCat("c", i)));
    moved.push_back(absl::StrCat("c", i));
  }
  std::sort(moved.begin(), moved.end());  // as the keys sort
  git_.Commit("web takes eleven of api's");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  ASSERT_TRUE(SentWithin(*agent, 4, absl::Seconds(20))) << rollout("api").message();
  std::string api = "api:", web = "web:";
  for (const std::string& name : moved) absl::StrAppend(&api, " -", name);
  for (const std::string& name : moved) absl::StrAppend(&api, " ", name, "->web");
  for (const std::string& name : moved) absl::StrAppend(&web, " +", name);
  EXPECT_THAT(UpdateLines(*agent), ::testing::UnorderedElementsAre(api, web));
  EXPECT_FALSE(rollout("api").prune_held()) << rollout("api").message();

  // Eleven of prod's twelve deleted by mistake: staging holds the same objects, but on no
  // cluster prod runs on, so they count as deleted.
  for (int i = 1; i < 12; ++i) git_.Remove(absl::StrCat("apps/prod/p", i, ".yaml"));
  git_.Commit("prod emptied by mistake");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  bool held = false;
  for (int i = 0; i < 1000 && !held; ++i) {
    held = rollout("prod").prune_held();
    if (!held) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(held) << rollout("prod").message();
  EXPECT_THAT(rollout("prod").message(),
              HasSubstr("held by the prune guard: this render would delete 11 of the 12 objects"));
}

// The count across a repository's bundles, with prod's and staging's overlays side by side:
// staging's copies (their own limit, as a staging bundle often has) hold the same objects
// on other clusters, so prod's emptied bundles are held all the same.
TEST_F(ControllerTest, ACommitThatEmptiesProdIsHeldThoughStagingHoldsTheSameObjects) {
  EmptyProdOfFourSmallApps(/*staging_max_prune=*/"all");
  ExpectEachProdBundleHeld(
      "this commit would delete 16 of the 20 objects the bundles of source app run (more than "
      "half, the default), across 4 bundles");
}

// With staging's bundles guarded too, prod's loss is 16 of the 40 objects the repository's
// bundles run: under half across the fleet, but all but 4 of what prod's clusters run.
TEST_F(ControllerTest, ACommitThatEmptiesProdIsHeldWhereItLandsThoughNotAcrossTheFleet) {
  EmptyProdOfFourSmallApps(/*staging_max_prune=*/"", /*more_prod_clusters=*/2);
  ExpectEachProdBundleHeld(
      "this commit would delete 16 of the 20 objects the bundles of source app run on cluster "
      "c1 (and 2 more alike) (more than half, the default), across 4 bundles, 4 of them this "
      "bundle's");
  for (const std::string app : {"a", "b", "c", "d"}) {
    EXPECT_FALSE(controller_->GetRollout(app + "-staging")->prune_held()) << app;
  }
}

// While a render that drops objects waits for the other bundles of its source, the bundle
// says so (bundle list), and stops saying it once its render has gone to the clusters.
TEST_F(ControllerTest, ARenderWaitingForTheRestOfItsSourceSaysSo) {
  const std::string real = FindKustomize();
  if (real.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  // web's kustomize takes 3 s more than it would (named as the real one: kubectl is run
  // with its kustomize subcommand).
  const std::string dir = TempDir("slow-kustomize");
  kustomize_ = dir + "/" + real.substr(real.rfind('/') + 1);
  std::ofstream(kustomize_) << "#!/bin/sh\nsleep 3\nexec " << real << " \"$@\"\n";
  ASSERT_EQ(chmod(kustomize_.c_str(), 0755), 0);
  Restart();
  AddApiAndWeb();
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  auto waiting = [&](const std::string& bundle) {
    for (const v1::BundleInfo& info : controller_->ListBundles()) {
      if (info.bundle().name() == bundle) return info.waiting();
    }
    return std::string("no such bundle");
  };
  ASSERT_EQ(waiting("api"), "");

  const std::string moved = MoveMovedToWeb();
  std::thread sync([&] { EXPECT_TRUE(controller_->SyncSource("app").ok()); });
  std::string said;
  for (absl::Time end = absl::Now() + absl::Seconds(10); absl::Now() < end && said.empty();) {
    said = waiting("api");
    absl::SleepFor(absl::Milliseconds(20));
  }
  sync.join();
  const std::string note = absl::StrCat(
      "its render of ", moved.substr(0, 12),
      " drops objects and waits for 1 other bundle of source app to render it too (first web), "
      "so that what moved to one of them is handed over, not deleted");
  EXPECT_EQ(said, note);
  // Other services hear of it as well.
  std::vector<v1::Event> waits =
      (*events_.Subscribe({"api", "", {"render.waiting"}}, nullptr))->Take();
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(waits[0].message(), note);
  EXPECT_EQ(waits[0].commit(), moved);
  for (absl::Time end = absl::Now() + absl::Seconds(10);
       absl::Now() < end && !waiting("api").empty();) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(waiting("api"), "");
  EXPECT_EQ(metrics_.sibling_waits.Add({{"result", "done"}}).Value(), 1);
  EXPECT_EQ(metrics_.sibling_waits.Add({{"result", "abandoned"}}).Value(), 0);
}

// A render that drops objects waits for the other bundles of its source while renders keep
// finishing (they may be queued behind others; many slow helm charts may take minutes),
// gives up once none finished for the stall time, and waits half an hour at most.
TEST(SiblingWaitTest, WaitsWhileRendersKeepFinishingAndNoLongerThanAStall) {
  const absl::Time t0 = absl::FromUnixSeconds(1800000000);
  const absl::Duration stall = absl::Seconds(60);
  SiblingWait wait;
  bool started = false;
  EXPECT_TRUE(wait.GoesOn("c1", 7, t0, stall, &started));
  EXPECT_TRUE(started);
  EXPECT_EQ(wait.commit(), "c1");
  EXPECT_TRUE(wait.GoesOn("c1", 7, t0 + absl::Seconds(59), stall, &started));
  EXPECT_FALSE(started);
  EXPECT_TRUE(wait.GoesOn("c1", 8, t0 + absl::Seconds(59), stall, &started)) << "one finished";
  EXPECT_TRUE(wait.GoesOn("c1", 9, t0 + absl::Seconds(110), stall, &started)) << "another";
  EXPECT_TRUE(wait.GoesOn("c1", 9, t0 + absl::Seconds(169), stall, &started));
  EXPECT_FALSE(wait.GoesOn("c1", 9, t0 + absl::Seconds(170), stall, &started)) << "stalled";
  // A newer commit waits afresh, and no longer than kMaxWait however busy the renders.
  const absl::Time t1 = t0 + absl::Seconds(171);
  EXPECT_TRUE(wait.GoesOn("c2", 9, t1, stall, &started));
  EXPECT_TRUE(started);
  uint64_t renders = 9;
  absl::Time now = t1;
  for (; now - t1 < SiblingWait::kMaxWait; now += absl::Seconds(30)) {
    ASSERT_TRUE(wait.GoesOn("c2", ++renders, now, stall, &started)) << now - t1;
  }
  EXPECT_FALSE(wait.GoesOn("c2", ++renders, now, stall, &started));
  wait.Clear();
  EXPECT_EQ(wait.commit(), "");
}

// Options for a controller of its own, on the test's repositories and `clock`.
ControllerOptions OnFakeClock(FakeClock* clock) {
  ControllerOptions options;
  options.allow_local_sources = true;
  options.clock = clock;
  return options;
}

// A store whose writes of render records fail while `fail_records` is above zero.
class FlakyStore : public Store {
 public:
  absl::Status Apply(const std::vector<Write>& writes) override {
    for (const Write& write : writes) {
      if (write.bucket == "bundle_records" && fail_records.load() > 0) {
        fail_records.fetch_sub(1);
        return absl::UnavailableError("disk full (injected)");
      }
    }
    return inner.Apply(writes);
  }
  absl::StatusOr<std::string> Get(const std::string& bucket, const std::string& key) override {
    return inner.Get(bucket, key);
  }
  absl::StatusOr<std::vector<Entry>> List(const std::string& bucket) override {
    return inner.List(bucket);
  }
  std::atomic<int> fail_records{0};
  MemoryStore inner;
};

// A store whose writes of render records wait until released.
class SlowStore : public FlakyStore {
 public:
  absl::Status Apply(const std::vector<Write>& writes) override {
    for (const Write& write : writes) {
      if (write.bucket == "bundle_records") release.WaitForNotification();
    }
    return FlakyStore::Apply(writes);
  }
  Notification release;
};

TEST_F(ControllerTest, AFailedReconcileIsRetriedWithBackoffWithoutANewCommit) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  FlakyStore store;
  FakeClock clock;
  Hub hub(&store, metrics_);
  ControllerOptions options = OnFakeClock(&clock);
  options.retry_base = absl::Seconds(10);
  options.api_wait = absl::Seconds(1);  // of the fake clock: only the first attempt
  Controller controller(&store, repos_.get(), &hub, metrics_, options);
  ASSERT_TRUE(controller.Load().ok());
  controller.Start();
  ASSERT_TRUE(controller.AddSource(Source(), false).ok());
  store.fail_records = 1;
  auto info = controller.AddBundle(Bundle("b", "a"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->revision(), "") << "the first render could not be stored";
  auto retries = [&] { return metrics_.workqueue.retries.Add({{"name", "bundles"}}).Value(); };
  EXPECT_EQ(retries(), 1);
  EXPECT_EQ(store.fail_records.load(), 0);

  // No commit, no API call: the backoff ends and the reconcile succeeds.
  auto revision = [&] {
    for (const v1::BundleInfo& bundle : controller.ListBundles()) return bundle.revision();
    return std::string();
  };
  clock.Advance(absl::Seconds(9));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(revision(), "") << "retried before the backoff ended";
  clock.Advance(absl::Seconds(1));
  for (int i = 0; i < 3000 && revision().empty(); ++i) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_NE(revision(), "");
  EXPECT_EQ(retries(), 1) << "and no more";
}

// Without any event, every bundle is reconciled again after the resync interval (a
// reconcile that finds nothing new renders nothing), and again after the next; with the
// interval 0, only events reconcile.
TEST_F(ControllerTest, EveryBundleIsReconciledAgainAfterTheResyncIntervalWithoutAnEvent) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  for (const absl::Duration interval : {absl::Minutes(10), absl::ZeroDuration()}) {
    SCOPED_TRACE(absl::FormatDuration(interval));
    MemoryStore store;
    FakeClock clock;
    Hub hub(&store, metrics_);
    ControllerOptions options = OnFakeClock(&clock);
    options.resync_interval = interval;
    options.default_poll_interval = absl::Hours(10);  // no fetch brings a reconcile
    Controller controller(&store, repos_.get(), &hub, metrics_, options);
    ASSERT_TRUE(controller.Load().ok());
    controller.Start();
    ASSERT_TRUE(controller.AddSource(Source(), false).ok());
    ASSERT_TRUE(controller.AddBundle(Bundle("b", "a"), false).ok());
    auto reconciles = [&] {
      // The queue's own series (the boundaries are used only where it is new).
      return metrics_.workqueue.work
          .Add({{"name", "bundles"}}, metrics::Histogram::BucketBoundaries{1})
          .Count();
    };
    auto renders = [&] {
      return metrics_.renders.Add({{"engine", "plain"}, {"result", "ok"}}).Value();
    };
    absl::SleepFor(absl::Milliseconds(100));  // the add's reconciles end
    const uint64_t before = reconciles();
    const double rendered = renders();
    for (int round = 1; round <= 2; ++round) {
      clock.Advance(absl::Minutes(11));  // past the interval and its 10%
      uint64_t now = reconciles();
      for (int i = 0; i < 500 && now < before + round; ++i) {
        absl::SleepFor(absl::Milliseconds(2));
        now = reconciles();
      }
      EXPECT_EQ(now, interval > absl::ZeroDuration() ? before + round : before)
          << "round " << round;
    }
    EXPECT_EQ(renders(), rendered) << "a reconcile that finds nothing new renders nothing";
  }
}

// A kustomization that reads a remote file (or base at a branch) can change without a
// commit: such a bundle renders again at each resync, and its clusters get what the
// remote now says. One that reads only the repository is not rendered again.
TEST_F(ControllerTest, ABundleReadingRemoteBasesRendersAgainAtEachResync) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  testing::ChartRepositoryServer files(TempDir("files"));
  files.Write("install.yaml", Cm("operator", "1"));
  if (absl::Status started = files.Start(); !started.ok()) GTEST_SKIP() << started;
  git_.Write("remote/kustomization.yaml",
             absl::StrCat("resources:\n- ", files.url(), "install.yaml\n"));
  git_.Write("local/kustomization.yaml", "resources: [cm.yaml]\n");
  git_.Write("local/cm.yaml", Cm("local"));
  git_.Commit("two kustomizations");
  MemoryStore store;
  FakeClock clock;
  Hub hub(&store, metrics_);
  ControllerOptions options = OnFakeClock(&clock);
  options.resync_interval = absl::Minutes(10);
  options.default_poll_interval = absl::Hours(10);  // no fetch brings a reconcile
  if (!kustomize_.empty()) options.engines.binaries["kustomize"] = kustomize_;
  options.engines.remote_bases = std::make_shared<RemoteBaseFetcher>(
      repos_.get(), std::vector<std::string>{files.url()}, absl::ZeroDuration());
  Controller controller(&store, repos_.get(), &hub, metrics_, options);
  ASSERT_TRUE(controller.Load().ok());
  controller.Start();
  ASSERT_TRUE(controller.AddSource(Source(), false).ok());
  absl::StatusOr<v1::BundleInfo> remote = controller.AddBundle(Bundle("remote", "remote"), false);
  ASSERT_TRUE(remote.ok()) << remote.status();
  absl::StatusOr<v1::BundleInfo> local = controller.AddBundle(Bundle("local", "local"), false);
  ASSERT_TRUE(local.ok()) << local.status();
  auto revision = [&](const std::string& name) {
    for (const v1::BundleInfo& b : controller.ListBundles()) {
      if (b.bundle().name() == name) return b.revision();
    }
    return std::string();
  };
  auto renders = [&] {
    return metrics_.renders.Add({{"engine", "kustomize"}, {"result", "ok"}}).Value();
  };
  absl::SleepFor(absl::Milliseconds(100));  // the adds' reconciles end
  const double before = renders();

  // Nothing changed: rendered again (the remote one only), the same revision.
  clock.Advance(absl::Minutes(11));
  for (int i = 0; i < 1000 && renders() < before + 1; ++i) absl::SleepFor(absl::Milliseconds(2));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(renders(), before + 1) << "the local one renders nothing";
  EXPECT_EQ(revision("remote"), remote->revision());

  // The remote file changes with no commit: the next resync brings it.
  files.Write("install.yaml", Cm("operator", "2"));
  clock.Advance(absl::Minutes(11));
  std::string now;
  for (int i = 0; i < 1000; ++i) {
    now = revision("remote");
    if (now != remote->revision()) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_NE(now, remote->revision()) << "the remote file's change never came";
  EXPECT_EQ(revision("local"), local->revision());
  EXPECT_EQ(renders(), before + 2);
}

// An operator's refresh (Argo CD's hard refresh) renders a bundle again now, reading anew
// what it reads from outside: a remote file that changed with no commit reaches it without
// waiting for the resync. An unknown bundle is NotFound.
TEST_F(ControllerTest, ARefreshReadsWhatABundleReadsFromOutsideAnew) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  testing::ChartRepositoryServer files(TempDir("files"));
  files.Write("install.yaml", Cm("operator", "1"));
  if (absl::Status started = files.Start(); !started.ok()) GTEST_SKIP() << started;
  git_.Write("remote/kustomization.yaml",
             absl::StrCat("resources:\n- ", files.url(), "install.yaml\n"));
  git_.Commit("a kustomization reading a remote file");
  MemoryStore store;
  FakeClock clock;
  Hub hub(&store, metrics_);
  ControllerOptions options = OnFakeClock(&clock);
  options.resync_interval = absl::Minutes(10);
  options.default_poll_interval = absl::Hours(10);
  options.api_wait = absl::Seconds(30);
  if (!kustomize_.empty()) options.engines.binaries["kustomize"] = kustomize_;
  // Remote files kept for an hour: only a refresh (or a push) reads them anew.
  options.engines.remote_bases = std::make_shared<RemoteBaseFetcher>(
      repos_.get(), std::vector<std::string>{files.url()}, absl::Hours(1));
  Controller controller(&store, repos_.get(), &hub, metrics_, options);
  ASSERT_TRUE(controller.Load().ok());
  controller.Start();
  ASSERT_TRUE(controller.AddSource(Source(), false).ok());
  absl::StatusOr<v1::BundleInfo> remote = controller.AddBundle(Bundle("remote", "remote"), false);
  ASSERT_TRUE(remote.ok()) << remote.status();
  ASSERT_FALSE(remote->revision().empty()) << remote->error();

  files.Write("install.yaml", Cm("operator", "2"));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(controller.ListBundles()[0].revision(), remote->revision()) << "nothing asked";
  absl::StatusOr<v1::BundleInfo> refreshed =
      controller.RefreshBundle("remote", absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(refreshed.ok()) << refreshed.status();
  EXPECT_NE(refreshed->revision(), remote->revision()) << refreshed->error();
  EXPECT_EQ(refreshed->commit(), remote->commit());
  EXPECT_TRUE(absl::IsNotFound(controller.RefreshBundle("nope").status()));
}

// A bundle whose render fails on a remote base it reads (its first render, or a commit
// that adds the base) names that repository too: a push that fixes the base renders it
// at once, not at the end of its backoff.
TEST_F(ControllerTest, APushToABrokenRemoteBaseRendersItsFailingReadersAtOnce) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  testing::GitFixture platform(TempDir("platform"));
  platform.Write("base/kustomization.yaml", "resources: [cm.yaml, missing.yaml]\n");
  platform.Write("base/cm.yaml", Cm("platform"));
  platform.Commit("a base naming a file it lacks");
  git_.Write("web/kustomization.yaml",
             absl::StrCat("resources:\n- ", platform.url(), "//base?ref=main\n"));
  git_.Commit("web reads the platform's base");
  MemoryStore store;
  FakeClock clock;
  Hub hub(&store, metrics_);
  ControllerOptions options = OnFakeClock(&clock);
  options.resync_interval = absl::Minutes(10);
  options.default_poll_interval = absl::Hours(10);
  options.retry_base = absl::Minutes(5);  // no retry comes within the test
  if (!kustomize_.empty()) options.engines.binaries["kustomize"] = kustomize_;
  options.engines.remote_bases =
      std::make_shared<RemoteBaseFetcher>(repos_.get(), std::vector<std::string>{platform.url()});
  Controller controller(&store, repos_.get(), &hub, metrics_, options);
  ASSERT_TRUE(controller.Load().ok());
  controller.Start();
  ASSERT_TRUE(controller.AddSource(Source(), false).ok());
  ASSERT_TRUE(controller.AddBundle(Bundle("web", "web"), false).ok());
  auto web = [&] {
    for (const v1::BundleInfo& b : controller.ListBundles()) {
      if (b.bundle().name() == "web") return b;
    }
    return v1::BundleInfo();
  };
  for (int i = 0; i < 2000 && web().error().empty(); ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_THAT(web().error(), HasSubstr("missing.yaml"));
  EXPECT_TRUE(web().revision().empty());

  platform.Write("base/missing.yaml", Cm("found"));
  platform.Commit("the file it named");
  EXPECT_THAT(controller.RenderReadersSoon({NormalizeRepoUrl(platform.url())}), ElementsAre("web"));
  for (int i = 0; i < 2000 && web().revision().empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_FALSE(web().revision().empty()) << web().error();
  EXPECT_TRUE(web().error().empty()) << web().error();
}

// A render that fails is tried again (at the resync, for a failure of its own content);
// subscribers hear of the failure once per commit and error, not at every try.
TEST_F(ControllerTest, ARenderFailingTheSameWayIsToldOnce) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  FakeClock clock;
  ControllerOptions options = OnFakeClock(&clock);
  options.retry_base = absl::Seconds(10);
  options.api_wait = absl::Seconds(1);
  EventBus events;
  MemoryStore store;
  Hub hub(&store, metrics_);
  Controller controller(&store, repos_.get(), &hub, metrics_, options);
  controller.SetEventBus(&events);
  ASSERT_TRUE(controller.Load().ok());
  controller.Start();
  ASSERT_TRUE(controller.AddSource(Source(), false).ok());
  ASSERT_TRUE(controller.AddBundle(Bundle("b", "a"), false).ok());
  auto failed_renders = [&] {
    return metrics_.renders.Add({{"engine", "plain"}, {"result", "error"}}).Value();
  };
  auto told = [&] {
    std::vector<std::string> lines;
    for (const v1::Event& event :
         (*events.Subscribe({"b", "", {"render.done", "render.failed"}}, nullptr))->Take()) {
      lines.push_back(absl::StrCat(event.type(), " ", event.commit().substr(0, 7)));
    }
    return lines;
  };
  git_.Write("a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
  const std::string bad = git_.Commit("break it");
  ASSERT_TRUE(controller.SyncSource("app").ok());
  ASSERT_GE(failed_renders(), 1);
  for (int retry = 0; retry < 3; ++retry) {
    const double before = failed_renders();
    // Past any backoff, again until the retry ran: a retry is scheduled from the clock's
    // time when the failed pass ends, which may be after an advance.
    for (int i = 0; i < 3000 && failed_renders() == before; ++i) {
      clock.Advance(absl::Minutes(10));
      absl::SleepFor(absl::Milliseconds(2));
    }
    ASSERT_GT(failed_renders(), before) << "retried";
  }
  EXPECT_THAT(told(), ElementsAre(HasSubstr("render.done"), "render.failed " + bad.substr(0, 7)));

  // Fixed, then broken the same way again at a new commit: each is told.
  git_.Write("a/cm.yaml", Cm("a", "2"));
  const std::string fixed = git_.Commit("fix it");
  ASSERT_TRUE(controller.SyncSource("app").ok());
  git_.Write("a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
  const std::string again = git_.Commit("break it again");
  ASSERT_TRUE(controller.SyncSource("app").ok());
  EXPECT_THAT(told(), ElementsAre(HasSubstr("render.done"), "render.failed " + bad.substr(0, 7),
                                  "render.done " + fixed.substr(0, 7),
                                  "render.failed " + again.substr(0, 7)));
}

// A render that fails on the commit's own content (the engine refuses it, and it read
// nothing from outside the repository) fails the same way however often it runs: it is not
// rendered again at that commit by the queue's backoff, nor by events that queue it, until
// the resync or an operator's call. A failure something else can end (a team's scope,
// which changes without a commit) keeps its backoff.
TEST_F(ControllerTest, ARenderFailingOnItsOwnContentWaitsForTheResyncOrAnOperator) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Write("t/main.jsonnet",
             "[{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 't', namespace: 'x'}}]\n");
  git_.Commit("a");
  FakeClock clock;
  ControllerOptions options = OnFakeClock(&clock);
  options.resync_interval = absl::Minutes(10);
  options.default_poll_interval = absl::Hours(10);  // no fetch brings a reconcile
  options.api_wait = absl::Seconds(30);
  MemoryStore store;
  Hub hub(&store, metrics_);
  Controller controller(&store, repos_.get(), &hub, metrics_, options);
  ASSERT_TRUE(controller.Load().ok());
  controller.Start();
  ASSERT_TRUE(controller.AddSource(Source(), false).ok());
  ASSERT_TRUE(controller.AddBundle(Bundle("b", "a"), false).ok());
  // Its scope allows no ConfigMap: PermissionDenied, until the scope changes.
  v1::Bundle team = Bundle("team", "t");
  team.mutable_scope()->set_caller("team-a");
  team.mutable_scope()->add_kinds("apps/*");
  absl::StatusOr<v1::BundleInfo> refused = controller.AddBundle(team, false);
  ASSERT_TRUE(refused.ok()) << refused.status();
  ASSERT_THAT(refused->error(), HasSubstr("scope of caller team-a"));
  auto failed = [&](const char* engine) {
    return metrics_.renders.Add({{"engine", engine}, {"result", "error"}}).Value();
  };
  git_.Write("a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
  const std::string broken = git_.Commit("break it");
  ASSERT_TRUE(controller.SyncSource("app").ok());
  const double content = failed("plain"), scope = failed("jsonnet");
  ASSERT_GE(content, 1);
  EXPECT_EQ(controller.ListBundles("b", 1).at(0).error_commit(), broken);

  // The scope's failure keeps its backoff (1 s, 2 s, 4 s, ...): tried again as the clock
  // moves, each try waited for (renders are slow under sanitizers).
  absl::Duration advanced;
  for (int i = 0; i < 40 && failed("jsonnet") < scope + 3; ++i) {
    const double before = failed("jsonnet");
    clock.Advance(absl::Seconds(10));
    advanced += absl::Seconds(10);
    for (int j = 0; j < 1000 && failed("jsonnet") == before; ++j) {
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  EXPECT_GE(failed("jsonnet"), scope + 3) << "the scope's failure keeps its backoff";
  // Eight minutes in all, where the backoff would have tried eight times: the content's
  // failure is not tried again.
  for (; advanced < absl::Minutes(8); advanced += absl::Seconds(10)) {
    clock.Advance(absl::Seconds(10));
    absl::SleepFor(absl::Milliseconds(5));
  }
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(failed("plain"), content) << "rendered again for nothing";
  EXPECT_EQ(controller.ListBundles("b", 1).at(0).error_commit(), broken) << "and still told";

  // The resync tries it again, once.
  clock.Advance(absl::Minutes(3));
  for (int i = 0; i < 1000 && failed("plain") == content; ++i)
    absl::SleepFor(absl::Milliseconds(2));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(failed("plain"), content + 1);
  // An operator's sync at the same commit tries it again at once.
  ASSERT_TRUE(controller.SyncSource("app").ok());
  EXPECT_EQ(failed("plain"), content + 2);
  // And a fix renders at once, whatever was settled.
  git_.Write("a/cm.yaml", Cm("a", "2"));
  git_.Commit("fix it");
  ASSERT_TRUE(controller.SyncSource("app").ok());
  EXPECT_EQ(controller.ListBundles("b", 1).at(0).error(), "");
}

// A failure of the content's own is carried to a later commit that changes nothing the
// failed render read or looked for: in a monorepo, other teams' commits do not render a
// broken bundle once each (each is still told to subscribers, at its commit). A commit
// that brings what the render looked for and did not find (a kustomize base, a chart's
// values file elsewhere in the repository), or that changes the bundle's own folder,
// renders it at once.
TEST_F(ControllerTest, AFailureIsCarriedToLaterCommitsThatChangeNothingItRead) {
  const bool kustomize = !FindKustomize().empty();
  ASSERT_NO_FATAL_FAILURE(UseEchoHelm());
  git_.Write("plain/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
  git_.Write("overlays/prod/kustomization.yaml", "resources: [../../base]\n");
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("tanka/main.jsonnet", "(import '../lib/cm.libsonnet').cm('tanka')\n");
  git_.Write("lib/cm.libsonnet", "{ cm(name):: error 'broken' }\n");
  git_.Write("other/cm.yaml", Cm("other"));
  const std::string first = git_.Commit("a monorepo with broken bundles");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  std::vector<std::string> broken = {"plain", "tanka", "web"};
  ASSERT_TRUE(controller_->AddBundle(Bundle("plain", "plain"), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("tanka", "tanka"), false).ok());
  v1::Bundle web = Bundle("web", "charts/web");
  web.add_helm_values_files("../../envs/prod/values.yaml");
  ASSERT_TRUE(controller_->AddBundle(web, false).ok());
  if (kustomize) {
    ASSERT_TRUE(controller_->AddBundle(Bundle("prod", "overlays/prod"), false).ok());
    broken.push_back("prod");
  }
  std::map<std::string, v1::BundleInfo> listed = ListedByName();
  for (const std::string& name : broken) {
    EXPECT_EQ(listed[name].error_commit(), first) << name;
    EXPECT_NE(listed[name].error(), "") << name;
  }
  auto renders = [&] {
    double total = 0;
    for (const char* engine : {"plain", "helm", "kustomize", "jsonnet"}) {
      for (const char* result : {"ok", "error"}) {
        total += metrics_.renders.Add({{"engine", engine}, {"result", result}}).Value();
      }
    }
    return total;
  };
  auto rendered = [&](const std::string& name) {
    const std::map<std::string, std::string> engines = {
        {"plain", "plain"}, {"tanka", "jsonnet"}, {"web", "helm"}, {"prod", "kustomize"}};
    return metrics_.renders.Add({{"engine", engines.at(name)}, {"result", "ok"}}).Value();
  };
  // As a push webhook asks: a fetch, not an operator's call (which renders again).
  auto push = [&](const std::string& message) {
    const std::string commit = git_.Commit(message);
    EXPECT_TRUE(controller_->FetchSourceSoon("app").ok());
    for (int i = 0; i < 3000; ++i) {
      std::map<std::string, v1::BundleInfo> now = ListedByName();
      if (std::all_of(broken.begin(), broken.end(), [&](const std::string& name) {
            return now[name].error_commit() == commit || now[name].error().empty();
          })) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return commit;
  };

  // Other teams' commits: each broken bundle fails at each, rendered never.
  for (int i = 0; i < 3; ++i) {
    const double before = renders();
    git_.Write("other/cm.yaml", Cm("other", absl::StrCat(i)));
    const std::string commit = push(absl::StrCat("another team's change ", i));
    listed = ListedByName();
    for (const std::string& name : broken) {
      EXPECT_EQ(listed[name].error_commit(), commit) << name << " at change " << i;
    }
    EXPECT_EQ(renders(), before) << "change " << i << " rendered a broken bundle again";
  }
  std::vector<std::string> told;
  for (const v1::Event& event :
       (*events_.Subscribe({"plain", "", {"render.failed"}}, nullptr))->Take()) {
    told.push_back(event.commit());
  }
  EXPECT_EQ(told.size(), 4u) << "each commit's failure is told";

  // What the kustomization looked for comes: it renders; the others stay as they were.
  if (kustomize) {
    git_.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
    git_.Write("base/cm.yaml", Cm("base"));
    const double before = rendered("prod");
    const std::string commit = push("the base");
    listed = ListedByName();
    EXPECT_EQ(listed["prod"].error(), "");
    EXPECT_EQ(listed["prod"].commit(), commit);
    EXPECT_EQ(rendered("prod"), before + 1);
    EXPECT_EQ(listed["plain"].error_commit(), commit);
    EXPECT_EQ(listed["tanka"].error_commit(), commit);
    EXPECT_EQ(listed["web"].error_commit(), commit);
    broken.pop_back();
  }
  // The chart's values file, elsewhere in the repository.
  git_.Write("envs/prod/values.yaml", "replicas: 5\n");
  std::string commit = push("the chart's values");
  listed = ListedByName();
  EXPECT_EQ(listed["web"].error(), "");
  EXPECT_EQ(listed["web"].commit(), commit);
  EXPECT_EQ(listed["plain"].error_commit(), commit);
  EXPECT_EQ(listed["tanka"].error_commit(), commit);
  // The library the program imports.
  git_.Write("lib/cm.libsonnet",
             "{ cm(name):: {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: name, "
             "namespace: 'x'}} }\n");
  const double tanka = rendered("tanka");
  commit = push("the library fixed");
  listed = ListedByName();
  EXPECT_EQ(listed["tanka"].error(), "");
  EXPECT_EQ(listed["tanka"].commit(), commit);
  EXPECT_EQ(rendered("tanka"), tanka + 1);
  EXPECT_EQ(listed["plain"].error_commit(), commit);
  // A change in the bundle's own folder: rendered (and here fixed).
  git_.Write("plain/cm.yaml", Cm("plain"));
  commit = push("the fix");
  listed = ListedByName();
  EXPECT_EQ(listed["plain"].error(), "");
  EXPECT_EQ(listed["plain"].commit(), commit);
}

// `sync` renders a commit it fetched once, not once for the commit and again for the
// sync; at a commit already seen, it tries a failed render again, once.
TEST_F(ControllerTest, ASyncRendersTheCommitItFetchedOnce) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  FakeClock clock;  // no backoff retry runs unless the test moves it
  ControllerOptions options = OnFakeClock(&clock);
  options.api_wait = absl::Seconds(30);
  MemoryStore store;
  Hub hub(&store, metrics_);
  Controller controller(&store, repos_.get(), &hub, metrics_, options);
  ASSERT_TRUE(controller.Load().ok());
  controller.Start();
  ASSERT_TRUE(controller.AddSource(Source(), false).ok());
  ASSERT_TRUE(controller.AddBundle(Bundle("b", "a"), false).ok());
  auto renders = [&](const char* result) {
    return metrics_.renders.Add({{"engine", "plain"}, {"result", result}}).Value();
  };
  auto hits = [&] { return metrics_.render_cache_hits.Add({}).Value(); };
  for (int i = 0; i < 3; ++i) {
    git_.Write("a/cm.yaml", i == 1 ? std::string("kind: [broken") : Cm("a", absl::StrCat(i)));
    git_.Commit(absl::StrCat("change ", i));
    const double ok = renders("ok"), failed = renders("error"), cached = hits();
    ASSERT_TRUE(controller.SyncSource("app").ok());
    EXPECT_EQ(renders("ok") + renders("error") - ok - failed, 1) << "change " << i;
    EXPECT_EQ(hits(), cached) << "change " << i << ": nothing rendered twice";
  }
  // The same commit again, rendered well: the sync's reconcile has nothing to render.
  const double ok = renders("ok"), cached = hits();
  ASSERT_TRUE(controller.SyncSource("app").ok());
  EXPECT_EQ(renders("ok"), ok);
  EXPECT_EQ(hits(), cached);
  // A failed render at a commit already seen is tried again by a sync, once.
  git_.Write("a/cm.yaml", "kind: [broken");
  git_.Commit("broken again");
  ASSERT_TRUE(controller.SyncSource("app").ok());
  const double failed = renders("error");
  ASSERT_TRUE(controller.SyncSource("app").ok());
  EXPECT_EQ(renders("error"), failed + 1);
}

TEST_F(ControllerTest, ApiCallsStopWaitingAtTheCallersDeadlineAndTheWorkGoesOn) {
  git_.Write("a/cm.yaml", Cm("a"));
  git_.Commit("a");
  SlowStore store;
  FakeClock clock;
  Hub hub(&store, metrics_);
  ControllerOptions options = OnFakeClock(&clock);
  options.api_wait = absl::Hours(1);
  Controller controller(&store, repos_.get(), &hub, metrics_, options);
  // Whatever fails below, the worker is released before the controller waits for it.
  struct Release {
    SlowStore* store;
    ~Release() { store->release.Notify(); }
  } release{&store};
  ASSERT_TRUE(controller.Load().ok());
  controller.Start();
  ASSERT_TRUE(controller.AddSource(Source(), false).ok());
  // The render's record cannot be stored yet; the caller's deadline is now.
  auto info = controller.AddBundle(Bundle("b", "a"), false, clock.Now());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->revision(), "") << "answered before the reconcile finished";
  store.release.Notify();
  std::string revision;
  for (int i = 0; i < 3000 && revision.empty(); ++i) {
    revision = controller.ListBundles()[0].revision();
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_NE(revision, "") << "the reconcile went on";
}

TEST_F(ControllerTest, TheSameDefinitionAgainRetriesAFailedRenderAtOnce) {
  git_.Write("a/cm.yaml", "kind: [broken");
  git_.Commit("broken");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto info = controller_->AddBundle(Bundle("b", "a"), false);
  ASSERT_TRUE(info.ok());
  EXPECT_NE(info->error(), "");
  double failed = metrics_.renders.Add({{"engine", "plain"}, {"result", "error"}}).Value();
  // Level-triggered: the same definition again reconciles (and fails again, counted).
  info = controller_->AddBundle(Bundle("b", "a"), false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(metrics_.renders.Add({{"engine", "plain"}, {"result", "error"}}).Value(), failed + 1);
}

// Agents in-process: they take what the hub gives them and report as told.
class RolloutTest : public ControllerTest {
 protected:
  struct Agent {
    uint64_t session = 0;
    std::shared_ptr<FakeConnection> connection = std::make_shared<FakeConnection>();
    std::string held;
    std::string yaml;  // the objects of the last update it took
  };
  // Connects `name`, labelled env=`env`, on a new connection; its agent says it holds
  // revision `held` of web, if any.
  void Connect(const std::string& name, const std::string& held = "",
               const std::string& env = "prod") {
    v1::Hello hello;
    hello.set_cluster(name);
    (*hello.mutable_labels())["env"] = env;
    if (!held.empty()) {
      v1::HeldRevision* holding = hello.add_held();
      holding->set_bundle("web");
      holding->set_revision(held);
    }
    agents_[name] = Agent();
    agents_[name].session = hub_->Connect(hello, "peer", agents_[name].connection);
  }
  // Takes the update waiting for `name`, if any: the revision it now holds ("" for none).
  std::string Take(const std::string& name, const std::string& bundle = "web") {
    std::shared_ptr<const EncodedMessage> message =
        hub_->NextMessage(agents_[name].session, bundle);
    if (message == nullptr || !message->message.has_update()) return "";
    agents_[name].held = message->message.update().revision();
    agents_[name].yaml.clear();
    for (const v1::ManifestObject& object : message->message.update().upserts()) {
      agents_[name].yaml += object.yaml();
    }
    return agents_[name].held;
  }
  // Whether `name`'s agent is told within 20 s that web may have something new for it,
  // once it has been told `before` times (generous, as Eventually is: a loaded machine).
  bool NoticedAfter(const std::string& name, int before) {
    for (int i = 0; i < 2000; ++i) {
      if (agents_[name].connection->notices("web") > before) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }
  void Report(const std::string& name, const std::string& revision, v1::HealthState health,
              v1::SyncState sync = v1::SYNC_STATE_SYNCED, const std::string& bundle = "web") {
    v1::StatusUpdate status;
    status.set_bundle(bundle);
    status.set_revision(revision);
    status.set_applied_revision(sync == v1::SYNC_STATE_SYNCED ? revision : "");
    status.set_sync_state(sync);
    status.set_health(health);
    hub_->OnStatus(agents_[name].session, status);
  }
  // Waits for the controller to hand `name` an update (the reconcile a report queued).
  // Generous: under ASAN a jsonnet render, a child forked from a process the suite has
  // grown, takes seconds. Only a revision that never comes costs the wait.
  std::string Eventually(const std::string& name, const std::string& bundle = "web") {
    for (absl::Time end = absl::Now() + absl::Seconds(20); absl::Now() < end;) {
      std::string revision = Take(name, bundle);
      if (!revision.empty()) return revision;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return "";
  }
  // The revision of the next update of `bundle` (not web) for `name`'s agent, waited for
  // as Eventually waits; "" when none comes.
  std::string NextUpdateOf(const std::string& name, const std::string& bundle) {
    for (absl::Time end = absl::Now() + absl::Seconds(20); absl::Now() < end;) {
      if (std::shared_ptr<const EncodedMessage> update =
              hub_->NextMessage(agents_[name].session, bundle)) {
        return update->message.update().revision();
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return "";
  }
  // Connects c1-c3 and adds bundle "web" (for `selector`) rolled out one cluster per
  // partition; *r1 is its first revision.
  void AddWeb(std::string* r1, const std::string& selector = "") {
    git_.Write("apps/web/cm.yaml", Cm("web"));
    git_.Commit("first");
    ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
    for (const char* name : {"c1", "c2", "c3"}) Connect(name);
    v1::Bundle bundle = Bundle("web", "apps/web", selector);
    bundle.mutable_rollout()->set_partition_size("1");
    absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(bundle, false);
    ASSERT_TRUE(info.ok()) << info.status();
    *r1 = info->revision();
  }
  // Source "app" whose apps/web folder's fleet.yaml asks for at most one cluster not ready
  // at a time (Fleet's maxUnavailable: a paced partition), and c1-c3 connected.
  void PacedFleetWebSource() {
    git_.Write("apps/web/fleet.yaml", "rolloutStrategy:\n  maxUnavailable: 1\n");
    git_.Write("apps/web/cm.yaml", Cm("web"));
    git_.Commit("first");
    ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
    for (const char* name : {"c1", "c2", "c3"}) Connect(name);
  }
  // AddWeb, then every cluster takes *r1 and reports it Healthy.
  void AddWebEverywhere(std::string* r1, const std::string& selector = "") {
    ASSERT_NO_FATAL_FAILURE(AddWeb(r1, selector));
    for (const char* name : {"c1", "c2", "c3"}) {
      ASSERT_EQ(Eventually(name), *r1) << name;
      Report(name, *r1, v1::HEALTH_STATE_HEALTHY);
    }
  }
  // Commits version `version` of web's ConfigMap and fetches it; *revision is the new
  // render's.
  void CommitWeb(const std::string& version, std::string* revision) {
    const std::string before = controller_->ListBundles()[0].revision();
    git_.Write("apps/web/cm.yaml", Cm("web", version));
    git_.Commit("version " + version);
    ASSERT_TRUE(controller_->SyncSource("app").ok());
    *revision = controller_->ListBundles()[0].revision();
    ASSERT_NE(*revision, before);
  }
  // AddWebEverywhere, then a second revision *r2 rolled out to partition 2/3: c1 runs it
  // Healthy, c2 has it and has not reported on it yet, c3 waits.
  void RollR2ToPartition2(std::string* r1, std::string* r2, const std::string& selector = "") {
    ASSERT_NO_FATAL_FAILURE(AddWebEverywhere(r1, selector));
    ASSERT_NO_FATAL_FAILURE(CommitWeb("2", r2));
    ASSERT_EQ(Eventually("c1"), *r2);
    Report("c1", *r2, v1::HEALTH_STATE_HEALTHY);
    ASSERT_EQ(Eventually("c2"), *r2);
  }
  // web's rollout once `until` holds of it (or after 2 s, as it then is).
  absl::StatusOr<v1::RolloutStatus> RolloutOnce(
      const std::function<bool(const v1::RolloutStatus&)>& until,
      const std::string& bundle = "web") {
    absl::StatusOr<v1::RolloutStatus> rollout;
    for (int i = 0; i < 200; ++i) {
      rollout = controller_->GetRollout(bundle);
      if (rollout.ok() && until(*rollout)) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return rollout;
  }
  std::map<std::string, Agent> agents_;
};

// A bundle's commit status: waiting while partitions go, done once every cluster runs it
// Healthy; a commit settled done stays done while the bundle is at it.
TEST_F(RolloutTest, ABundlesVerdictIsWhatItsCommitStatusSays) {
  std::string r1, r2;
  ASSERT_NO_FATAL_FAILURE(RollR2ToPartition2(&r1, &r2));
  absl::StatusOr<Controller::BundleVerdict> judged = controller_->JudgeBundle("web");
  ASSERT_TRUE(judged.ok()) << judged.status();
  const std::string commit = controller_->ListBundles()[0].commit();
  EXPECT_EQ(judged->verdict.code, RolloutVerdict::kWaiting) << judged->verdict.line;
  EXPECT_EQ(judged->verdict.commit, commit);
  EXPECT_THAT(judged->verdict.line, HasSubstr("partition 2/3"));
  EXPECT_EQ(judged->source_url, git_.url());
  Report("c2", r2, v1::HEALTH_STATE_HEALTHY);
  ASSERT_EQ(Eventually("c3"), r2);
  Report("c3", r2, v1::HEALTH_STATE_HEALTHY);
  for (int i = 0; i < 200; ++i) {
    judged = controller_->JudgeBundle("web");
    if (judged.ok() && judged->verdict.code == RolloutVerdict::kDone) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(judged.ok());
  EXPECT_EQ(judged->verdict.code, RolloutVerdict::kDone) << judged->verdict.line;
  EXPECT_THAT(judged->verdict.line, HasSubstr("rolled out, Healthy on 3 clusters"));
  // A cluster flaps afterwards: judged afresh it waits; settled, the commit stays done.
  Report("c1", r2, v1::HEALTH_STATE_DEGRADED);
  EXPECT_EQ(controller_->JudgeBundle("web")->verdict.code, RolloutVerdict::kWaiting);
  EXPECT_THAT(controller_->JudgeBundle("web")->verdict.line,
              HasSubstr("2 of 3 clusters run it Healthy; waiting for c1: degraded"));
  EXPECT_EQ(controller_->JudgeBundle("web", commit)->verdict.code, RolloutVerdict::kDone);
  EXPECT_EQ(controller_->JudgeBundle("web", "an-older-commit")->verdict.code,
            RolloutVerdict::kWaiting);
  EXPECT_EQ(controller_->JudgeBundle("nope").status().code(), absl::StatusCode::kNotFound);
  // The count `rollout status -w` asks the admin API for, in place of every status.
  absl::StatusOr<StatusTally> tally = controller_->TallyBundle("web");
  ASSERT_TRUE(tally.ok()) << tally.status();
  EXPECT_EQ(tally->total, 3);
  EXPECT_EQ(tally->ready, 2);
  EXPECT_EQ(tally->first_not_ready, "c1: degraded");
  EXPECT_EQ(controller_->TallyBundle("nope").status().code(), absl::StatusCode::kNotFound);
}

// Removal is an explicit act: a replacement whose selector leaves clusters that hold the
// bundle is refused, naming them, and changes nothing; allowed, they are sent its removal.
TEST_F(RolloutTest, ANewSelectorThatLeavesClustersHoldingTheBundleNeedsAllowRemoval) {
  std::string r1;
  ASSERT_NO_FATAL_FAILURE(AddWebEverywhere(&r1, "env=prod"));
  for (const char* name : {"c1", "c2", "c3"}) Connect(name, r1);  // each says it holds r1
  v1::Bundle narrower = controller_->ListBundles()[0].bundle();
  narrower.set_selector("env=prod,tier=edge");
  EXPECT_THAT(controller_->AddBundle(narrower, /*replace=*/true).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("bundle \"web\": the new --selector no longer matches 3 "
                                 "clusters that hold it (c1, c2, c3); replacing it would remove "
                                 "it from them (its objects stay there, unmanaged: the bundle "
                                 "does not prune)")));
  EXPECT_EQ(controller_->ListBundles()[0].bundle().selector(), "env=prod");
  EXPECT_EQ(hub_->NextMessage(agents_["c1"].session, "web"), nullptr) << "nothing is sent";
  // A selector that still matches every cluster holding it is no removal; nor is one
  // that leaves only clusters holding none of it.
  v1::Bundle wider = narrower;
  wider.set_selector("env in (prod,dev)");
  ASSERT_TRUE(controller_->AddBundle(wider, true).ok());
  Connect("c4", "", "dev");
  wider.set_selector("env=prod");
  ASSERT_TRUE(controller_->AddBundle(wider, true).ok());

  ASSERT_TRUE(controller_
                  ->AddBundle(narrower, true, absl::InfiniteFuture(),
                              /*allow_removal=*/true)
                  .ok());
  std::shared_ptr<const EncodedMessage> removal = hub_->NextMessage(agents_["c1"].session, "web");
  ASSERT_NE(removal, nullptr);
  EXPECT_TRUE(removal->message.has_removal());
  EXPECT_EQ(removal->message.removal().reason(), "not targeted");
}

// A team's narrowed clusters= held for an admin: its rollouts pass over the clusters the
// scope left (they get nothing new, and a rollout does not wait for them).
TEST_F(RolloutTest, ATeamsRolloutPassesOverTheClustersItsNarrowedScopeLeft) {
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("c1");
  Connect("c2", "", "dev");
  Connect("c3");
  v1::Bundle bundle = Bundle("web", "apps/web");
  bundle.mutable_rollout()->set_partition_size("1");
  bundle.mutable_scope()->set_caller("team-a");
  bundle.mutable_scope()->set_clusters("env in (prod,dev)");
  absl::StatusOr<v1::BundleInfo> added = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(added.ok()) << added.status();
  const std::string r1 = added->revision();
  for (const char* name : {"c1", "c2", "c3"}) {
    ASSERT_EQ(Eventually(name), r1) << name;
    Report(name, r1, v1::HEALTH_STATE_HEALTHY);
  }
  ASSERT_TRUE(RolloutOnce([](const v1::RolloutStatus& r) { return r.done(); })->done());

  v1::BundleScope prod = bundle.scope();
  prod.set_clusters("env=prod");
  EXPECT_THAT(controller_->FollowCallerScopes({{"team-a", prod}}, absl::InfiniteFuture()),
              Contains(HasSubstr("no longer matches 1 cluster that holds it (c2)")));
  std::string r2;
  ASSERT_NO_FATAL_FAILURE(CommitWeb("2", &r2));
  ASSERT_EQ(Eventually("c1"), r2);
  Report("c1", r2, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c3"), r2) << "c2's partition is passed at once";
  Report("c3", r2, v1::HEALTH_STATE_HEALTHY);
  EXPECT_TRUE(RolloutOnce([](const v1::RolloutStatus& r) { return r.done(); })->done());
  EXPECT_EQ(Take("c2"), "") << "c2 keeps r1";
}

TEST_F(RolloutTest, EachPartitionWaitsForReportsOnItsRevisionNeverAnOlderOne) {
  std::string r1;
  ASSERT_NO_FATAL_FAILURE(AddWeb(&r1));

  // Partition 1 (c1) first; the others wait for it to be applied and Healthy.
  EXPECT_EQ(Take("c1"), r1);
  EXPECT_EQ(Take("c2"), "");
  Report("c1", r1, v1::HEALTH_STATE_PROGRESSING);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("c2"), "") << "Progressing is not Healthy";
  Report("c1", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c2"), r1);
  Report("c2", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c3"), r1);
  Report("c3", r1, v1::HEALTH_STATE_HEALTHY);

  // A new commit starts again from partition 1. c2's Healthy report is for r1: it never
  // counts for r2, however often it is sent again.
  std::string r2;
  ASSERT_NO_FATAL_FAILURE(CommitWeb("2", &r2));
  EXPECT_EQ(Take("c2"), "") << "not its partition's turn";
  EXPECT_EQ(Take("c1"), r2);
  Report("c1", r2, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c2"), r2);
  Report("c2", r1, v1::HEALTH_STATE_HEALTHY);  // stale: sent before it had r2
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c3"), "") << "a report for the older revision moved the rollout on";
  absl::StatusOr<v1::RolloutStatus> rollout = controller_->GetRollout("web");
  ASSERT_TRUE(rollout.ok());
  EXPECT_EQ(rollout->partition(), 1);
  EXPECT_THAT(rollout->message(),
              HasSubstr("partition 2/3: 0 of 1 clusters ready; waiting for c2: no report for "
                        "this revision yet"));
  ASSERT_EQ(rollout->partitions_size(), 3);
  EXPECT_EQ(rollout->partitions(0).state(), "done");
  EXPECT_EQ(rollout->partitions(1).state(), "rolling");
  EXPECT_EQ(rollout->partitions(2).state(), "waiting");
  EXPECT_EQ(rollout->partitions(2).clusters(0).applied_revision(), r1);
  // The summary a watch asks once a second: the same state, no look at the clusters.
  absl::StatusOr<v1::RolloutStatus> summary = controller_->GetRollout("web", /*summary=*/true);
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->message(), rollout->message());
  EXPECT_EQ(summary->partition(), 1);
  ASSERT_EQ(summary->partitions_size(), 3);
  EXPECT_EQ(summary->partitions(1).state(), "rolling");
  EXPECT_EQ(summary->partitions(1).selector(), rollout->partitions(1).selector());
  for (const v1::RolloutPartition& partition : summary->partitions()) {
    EXPECT_EQ(partition.clusters_size(), 0);
  }
  // Its status says what holds c3 back, not that an update is on its way.
  std::vector<v1::BundleStatus> held = controller_->GetStatus("c3", "web");
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].held_back(),
            absl::StrCat("rollout: its partition 3/3 has not had its turn; the rollout is at "
                         "partition 2/3; meanwhile it runs ",
                         r1.substr(0, 12), ", the last revision the whole fleet was given"));
  EXPECT_EQ(held[0].message(), held[0].held_back());
  EXPECT_EQ(held[0].sync_state(), v1::SYNC_STATE_OUT_OF_SYNC);
  EXPECT_EQ(controller_->GetStatus("c1", "web")[0].held_back(), "") << "c1 runs r2";

  // Stuck on c2: the operator pauses, then promotes past it.
  ASSERT_TRUE(controller_->ControlRollout("web", "pause").ok());
  Report("c2", r2, v1::HEALTH_STATE_PROGRESSING);
  EXPECT_TRUE(controller_->GetRollout("web")->paused());
  absl::StatusOr<v1::RolloutStatus> promoted = controller_->ControlRollout("web", "promote");
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  EXPECT_EQ(Eventually("c3"), r2);
  EXPECT_EQ(promoted->partition(), 2);
  Report("c3", r2, v1::HEALTH_STATE_HEALTHY);
  for (int i = 0; i < 100 && !controller_->GetRollout("web")->done(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(controller_->GetRollout("web")->done());
  EXPECT_EQ(controller_->ListBundles()[0].rollout(), "done");
  EXPECT_THAT(controller_->ControlRollout("web", "promote").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is done, so there is no partition to promote")));

  // Unknown bundles and actions are named (a restart: ARestartMidRolloutResumes...).
  EXPECT_THAT(controller_->ControlRollout("nope", "pause").status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(controller_->ControlRollout("web", "jump").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("want pause, resume")));
}

// A control plane that restarts mid-rollout resumes where it was: the agents reconnect
// holding what they held, and the clusters whose partition has not had its turn get
// nothing new until the partition before theirs is ready again, reported to the new
// process.
TEST_F(RolloutTest, ARestartMidRolloutResumesAtTheSamePartition) {
  std::string r1, r2;
  ASSERT_NO_FATAL_FAILURE(RollR2ToPartition2(&r1, &r2));

  Restart();
  Connect("c1", r2);
  Connect("c2", r2);
  Connect("c3", r1);
  absl::StatusOr<v1::RolloutStatus> rollout =
      RolloutOnce([](const v1::RolloutStatus& r) { return r.partitions_size() == 3; });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->partition(), 1) << "the place in the rollout was lost";
  EXPECT_EQ(controller_->ListBundles()[0].revision(), r2);
  absl::SleepFor(absl::Milliseconds(300));  // time for anything wrongly given to show
  EXPECT_EQ(Take("c3"), "") << "a restart let a later partition skip the gate";
  EXPECT_EQ(Take("c1"), "") << "c1 holds r2 already";
  EXPECT_EQ(controller_->GetStatus("c3", "web")[0].held_back(),
            absl::StrCat("rollout: its partition 3/3 has not had its turn; the rollout is at "
                         "partition 2/3; meanwhile it runs ",
                         r1.substr(0, 12), ", the last revision the whole fleet was given"));
  // Reported to the new process, c2's health moves the rollout on.
  Report("c1", r2, v1::HEALTH_STATE_HEALTHY);
  Report("c2", r2, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c3"), r2);
}

// A partition that needs N more ready clusters cannot pass before N more reports: fewer
// do not reconcile the bundle, the one that completes it does, and a failure halts the
// rollout at once whatever the count.
TEST_F(RolloutTest, OnlyReportsThatCanMoveTheRolloutReconcileIt) {
  // Counted, reports alone queue reconciles: the hub's once-a-second refresh (its clock is
  // wall time, which a step of the system clock moves on) never comes here.
  hub_clock_ = &hub_fake_clock_;
  Restart();
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  for (const char* name : {"c1", "c2", "c3", "c4", "c5"}) Connect(name);
  v1::Bundle bundle = Bundle("web", "apps/web");
  bundle.mutable_rollout()->set_partition_size("3");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  for (const char* name : {"c1", "c2", "c3"}) EXPECT_EQ(Take(name), r1);
  EXPECT_EQ(Take("c4"), "");

  metrics::Counter& adds = metrics_.workqueue.adds.Add({{"name", "bundles"}});
  const double before = adds.Value();
  Report("c1", r1, v1::HEALTH_STATE_HEALTHY);
  Report("c2", r1, v1::HEALTH_STATE_HEALTHY);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(adds.Value(), before) << "two reports cannot ready a partition of three";
  Report("c3", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c4"), r1);
  EXPECT_EQ(Take("c5"), r1);

  // Partition 2 needs two reports; one failure is enough to pause it.
  Report("c4", r1, v1::HEALTH_STATE_UNKNOWN, v1::SYNC_STATE_FAILED);
  absl::StatusOr<v1::RolloutStatus> rollout;
  for (int i = 0; i < 200; ++i) {
    rollout = controller_->GetRollout("web");
    if (rollout.ok() && rollout->paused()) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_TRUE(rollout->paused());
  EXPECT_THAT(rollout->message(), HasSubstr("cluster c4 failed to apply the revision"));
}

// A cluster under maintenance gets nothing new, so it cannot become ready: its partition
// waits for it (or for max-unavailable, or a promote), and says why.
TEST_F(RolloutTest, ASuspendedClusterHoldsItsPartitionAndSaysSo) {
  std::string r1, r2;
  ASSERT_NO_FATAL_FAILURE(AddWebEverywhere(&r1));
  ASSERT_TRUE(controller_->SuspendCluster("c2", true).ok());
  ASSERT_NO_FATAL_FAILURE(CommitWeb("2", &r2));
  ASSERT_EQ(Eventually("c1"), r2);
  Report("c1", r2, v1::HEALTH_STATE_HEALTHY);
  absl::StatusOr<v1::RolloutStatus> rollout =
      RolloutOnce([](const v1::RolloutStatus& r) { return r.partition() == 1; });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->partition(), 1);
  EXPECT_THAT(rollout->message(),
              HasSubstr("waiting for c2: cluster suspended for maintenance (gitfleetctl cluster "
                        "resume c2); counted as not ready"));
  EXPECT_EQ(Take("c2"), "");
  EXPECT_EQ(Take("c3"), "");
  ASSERT_TRUE(controller_->ControlRollout("web", "promote").ok());
  EXPECT_EQ(Eventually("c3"), r2);
  EXPECT_EQ(Take("c2"), "") << "still under maintenance";
}

TEST_F(RolloutTest, SuspendedBundlesAndClustersGetNothingNew) {
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  for (const char* name : {"c1", "c2"}) Connect(name);
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(Take("c1"), info->revision());
  EXPECT_EQ(Take("c2"), info->revision());

  absl::StatusOr<v1::BundleInfo> suspended = controller_->SuspendBundle("web", true);
  ASSERT_TRUE(suspended.ok());
  EXPECT_TRUE(suspended->suspended());
  ASSERT_TRUE(controller_->SuspendCluster("c2", true).ok());
  git_.Write("apps/web/cm.yaml", Cm("web", "2"));
  git_.Commit("second");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  const std::string r2 = controller_->ListBundles()[0].revision();
  EXPECT_EQ(Take("c1"), "") << "the bundle is suspended";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(),
              HasSubstr("bundle suspended: no cluster gets its new revisions until gitfleetctl "
                        "bundle resume web"));

  // Both survive a restart of the control plane.
  Restart();
  for (const char* name : {"c1", "c2"}) Connect(name);
  EXPECT_TRUE(controller_->ListBundles()[0].suspended());
  ASSERT_TRUE(controller_->SuspendBundle("web", false).ok());
  EXPECT_EQ(Take("c1"), r2);
  EXPECT_EQ(Take("c2"), "") << "the cluster is under maintenance";
  EXPECT_THAT(controller_->GetStatus("c2", "web")[0].held_back(),
              HasSubstr("cluster suspended for maintenance"));
  EXPECT_EQ(controller_->GetStatus("c1", "web")[0].held_back(), "");
  std::vector<v1::ClusterInfo> clusters = controller_->ListClusters();
  ASSERT_EQ(clusters.size(), 2u);
  EXPECT_TRUE(clusters[1].suspended());
  ASSERT_TRUE(controller_->SuspendCluster("c2", false).ok());
  EXPECT_EQ(Take("c2"), r2);
  EXPECT_THAT(controller_->SuspendCluster("nowhere", true), StatusIs(absl::StatusCode::kNotFound));
}

// A folder whose fleet.yaml says `paused: true` (Fleet's paused): its commits reach no
// cluster, a restart included, and a cluster that joins gets what the fleet ran, until a
// commit sets it false. A value Fleet would refuse fails the render.
TEST_F(RolloutTest, FleetYamlsPausedHoldsItsCommitsFromEveryCluster) {
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("c1");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  EXPECT_EQ(Take("c1"), r1);

  git_.Write("apps/web/fleet.yaml", "paused: true\n");
  git_.Write("apps/web/cm.yaml", Cm("web", "2"));
  git_.Commit("second, paused");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  const std::string r2 = controller_->ListBundles()[0].revision();
  ASSERT_NE(r2, r1);
  EXPECT_EQ(Take("c1"), "") << "the folder says paused";
  const std::string paused = "paused: apps/web/fleet.yaml says paused: true at ";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(), HasSubstr(paused));
  EXPECT_THAT(controller_->ListBundles()[0].notes(), Not(Contains(HasSubstr("paused"))));
  Connect("c2");
  EXPECT_EQ(Take("c2"), r1) << "a cluster that joins gets what the fleet runs";

  Restart();
  for (const char* name : {"c1", "c2"}) Connect(name, r1);
  absl::SleepFor(absl::Milliseconds(300));  // time for anything wrongly given to show
  EXPECT_EQ(Take("c1"), "") << "a restart let a paused commit through";
  EXPECT_THAT(controller_->GetStatus("c2", "web")[0].held_back(), HasSubstr(paused));

  // Unpaused: the same objects, now for everyone.
  git_.Write("apps/web/fleet.yaml", "paused: false\n");
  git_.Commit("unpause");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_EQ(Eventually("c1"), r2);
  EXPECT_EQ(Eventually("c2"), r2);
  EXPECT_EQ(controller_->GetStatus("c1", "web")[0].held_back(), "");

  // Quoted, it is a string Fleet's reader refuses: the render fails, nothing is lost.
  git_.Write("apps/web/fleet.yaml", "paused: \"true\"\n");
  git_.Write("apps/web/cm.yaml", Cm("web", "3"));
  git_.Commit("quoted");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  std::vector<v1::BundleInfo> bundles = controller_->ListBundles();
  EXPECT_THAT(bundles[0].error(),
              HasSubstr("apps/web/fleet.yaml: paused is \"true\", not true or false (unquoted)"));
  EXPECT_EQ(bundles[0].revision(), r2);
  EXPECT_EQ(Take("c1"), "");
}

// A fleet.yaml's partitions by cluster group (--cluster-groups): the canary group's
// clusters first, then those of the groups whose labels the next partition selects. A
// control plane that reads no groups cannot tell that order: it holds the commit.
TEST_F(RolloutTest, FleetYamlsPartitionsByClusterGroupOrderTheRollout) {
  git_.Write("apps/web/fleet.yaml",
             "rolloutStrategy:\n"
             "  partitions:\n"
             "  - name: canary\n"
             "    clusterGroup: canary\n"
             "  - name: second\n"
             "    clusterGroupSelector: {matchLabels: {wave: two}}\n");
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("p1");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->rollout(),
              HasSubstr("held: apps/web/fleet.yaml: rolloutStrategy.partitions[0] (canary) "
                        "selects by Fleet's clusterGroup canary, and the control plane reads no "
                        "cluster groups"));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("p1"), "");
  ASSERT_TRUE(controller_->RemoveBundle("web", absl::Now() + absl::Seconds(10)).ok());

  absl::StatusOr<std::vector<ClusterGroup>> groups = ParseFleetClusterGroups(
      "apiVersion: fleet.cattle.io/v1alpha1\nkind: ClusterGroup\n"
      "metadata: {name: canary}\nspec: {selector: {matchLabels: {env: staging}}}\n---\n"
      "apiVersion: fleet.cattle.io/v1alpha1\nkind: ClusterGroup\n"
      "metadata: {name: prod, labels: {wave: two}}\n"
      "spec: {selector: {matchLabels: {env: prod}}}\n",
      "groups.yaml");
  ASSERT_TRUE(groups.ok()) << groups.status();
  cluster_groups_ = true;
  groups_ = std::make_shared<const std::vector<ClusterGroup>>(*groups);
  Restart();
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("p1");
  Connect("s1", "", "staging");
  Connect("d1", "", "dev");
  info = controller_->AddBundle(Bundle("web2", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  EXPECT_EQ(Eventually("s1", "web2"), r1);
  absl::StatusOr<v1::RolloutStatus> rollout =
      RolloutOnce([](const v1::RolloutStatus& r) { return r.partitions_size() == 3; }, "web2");
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->partitions(0).name(), "canary");
  ASSERT_EQ(rollout->partitions(0).clusters_size(), 1);
  EXPECT_EQ(rollout->partitions(0).clusters(0).name(), "s1");
  EXPECT_EQ(rollout->partitions(1).name(), "second");
  ASSERT_EQ(rollout->partitions(1).clusters_size(), 1);
  EXPECT_EQ(rollout->partitions(1).clusters(0).name(), "p1");
  ASSERT_EQ(rollout->partitions(2).clusters_size(), 1);
  EXPECT_EQ(rollout->partitions(2).clusters(0).name(), "d1") << "in no group: last";
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("p1", "web2"), "") << "the canary group goes first";
  Report("s1", r1, v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "web2");
  EXPECT_EQ(Eventually("p1", "web2"), r1);
  EXPECT_EQ(Take("d1", "web2"), "");
  Report("p1", r1, v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "web2");
  EXPECT_EQ(Eventually("d1", "web2"), r1);
}

// Fleet's maxUnavailable paces a rollout: a fleet.yaml asking for at most one cluster not
// ready at a time gets its clusters one by one, each once the one before is Healthy, where
// gitfleet gave the whole partition at once.
TEST_F(RolloutTest, AFleetYamlsMaxUnavailableGivesTheRevisionAFewClustersAtATime) {
  ASSERT_NO_FATAL_FAILURE(PacedFleetWebSource());
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  EXPECT_EQ(Eventually("c1"), r1);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("c2"), "") << "one at a time";
  EXPECT_EQ(Take("c3"), "");
  absl::StatusOr<v1::RolloutStatus> rollout =
      RolloutOnce([](const v1::RolloutStatus& r) { return r.partitions_size() == 1; });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_THAT(rollout->message(), HasSubstr("given to 1 of 3 so far, at most 1 not ready at a "
                                            "time; waiting for c1"));
  ASSERT_EQ(rollout->partitions(0).clusters_size(), 3);
  EXPECT_THAT(rollout->partitions(0).clusters(2).detail(),
              HasSubstr("its turn in the partition has not come"));
  std::vector<v1::BundleStatus> c3 = controller_->GetStatus("c3", "web");
  ASSERT_EQ(c3.size(), 1u);
  EXPECT_THAT(c3[0].held_back(),
              HasSubstr("is given the revision a few clusters at a time (apps/web/fleet.yaml's "
                        "maxUnavailable)"));
  Report("c1", r1, v1::HEALTH_STATE_PROGRESSING);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("c2"), "") << "c1 is not ready yet";
  Report("c1", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c2"), r1);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("c3"), "");
  // Two of three ready, one may be unavailable: the partition is through, c3 gets it.
  Report("c2", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c3"), r1);
}

// As Fleet does, a cluster down on the revision it runs gets the next one at once, out of
// turn (it may be its fix), and while it is not ready on it no other cluster is taken down
// for its turn: one not ready at a time, counting it.
TEST_F(RolloutTest, APacedPartitionGivesACommitFirstToAClusterDownOnTheOldOne) {
  ASSERT_NO_FATAL_FAILURE(PacedFleetWebSource());
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  for (const char* name : {"c1", "c2", "c3"}) {
    ASSERT_EQ(Eventually(name), r1) << name;
    Report(name, r1, v1::HEALTH_STATE_HEALTHY);
  }
  Report("c3", r1, v1::HEALTH_STATE_DEGRADED);  // c3's app broke on r1
  std::string r2;
  ASSERT_NO_FATAL_FAILURE(CommitWeb("2", &r2));
  EXPECT_EQ(Eventually("c3"), r2) << "out of turn";
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("c1"), "") << "c3 is not ready on r2 yet: nobody else";
  absl::StatusOr<v1::RolloutStatus> rollout = RolloutOnce(
      [](const v1::RolloutStatus& r) { return absl::StrContains(r.message(), "out of turn"); });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_THAT(rollout->message(),
              HasSubstr("given to 1 of 3 so far (1 out of turn: not ready on the older revision "
                        "it ran), at most 1 not ready at a time; waiting for c3"));
  ASSERT_EQ(rollout->partitions(0).clusters_size(), 3);
  EXPECT_THAT(rollout->partitions(0).clusters(0).detail(),
              HasSubstr("its turn in the partition has not come"));
  EXPECT_THAT(rollout->partitions(0).clusters(2).detail(), Not(HasSubstr("its turn")));
  std::vector<v1::BundleStatus> c3 = controller_->GetStatus("c3", "web");
  ASSERT_EQ(c3.size(), 1u);
  EXPECT_EQ(c3[0].held_back(), "");
  auto told = [&] {
    return (*events_.Subscribe({"web", "", {"rollout.out_of_turn"}}, nullptr))->Take();
  };
  std::vector<v1::Event> events = told();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].cluster(), "c3");
  EXPECT_THAT(events[0].message(), HasSubstr("given it out of turn: not ready on the older"));
  Report("c3", r2, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c1"), r2) << "c3 is ready: c1's turn";
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("c2"), "");
  Report("c1", r2, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c2"), r2);
  EXPECT_EQ(told().size(), 1u) << "told once";
}

// A cluster suspended for maintenance gets nothing new: in a paced partition its turn
// passes to the next rather than holding the rest back until the deadline, and it gets the
// revision once resumed.
TEST_F(RolloutTest, APacedPartitionPassesOverASuspendedCluster) {
  ASSERT_NO_FATAL_FAILURE(PacedFleetWebSource());
  ASSERT_TRUE(controller_->SuspendCluster("c1", true).ok());
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  EXPECT_EQ(Eventually("c2"), r1) << "c1's turn passes";
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("c3"), "") << "one at a time";
  Report("c2", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c3"), r1);
  EXPECT_EQ(Take("c1"), "") << "suspended";
  ASSERT_TRUE(controller_->SuspendCluster("c1", false).ok());
  EXPECT_EQ(Eventually("c1"), r1) << "resumed";
}

// A cluster given the render that leaves the paced partition (its labels no longer match)
// frees its place without handing it to the next cluster out of turn.
TEST_F(RolloutTest, AClusterLeavingAPacedPartitionMovesNoOtherIntoItsPlace) {
  ASSERT_NO_FATAL_FAILURE(PacedFleetWebSource());
  absl::StatusOr<v1::BundleInfo> info =
      controller_->AddBundle(Bundle("web", "apps/web", "env=prod"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  EXPECT_EQ(Eventually("c1"), r1);
  Report("c1", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c2"), r1);
  // c1 leaves (now env=dev; removal allowed by the operator, as the file would):
  // c2 is still not ready, so c3 waits.
  hub_->Disconnect(agents_["c1"].session);
  Connect("c1", r1, "dev");
  ASSERT_TRUE(controller_->SyncSource("app").ok());  // a reconcile, at the least
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c3"), "") << "c2 is given it and not ready: one at a time";
  Report("c2", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c3"), r1);
}

// Fleet's doNotDeploy leaves a cluster out, as Fleet does: it is sent nothing, shows as not
// deployed rather than failed, and its partition passes at once, so a rollout goes on to
// the clusters after it. A cluster that already runs the bundle keeps it: a repository
// never takes a bundle off a cluster.
TEST_F(RolloutTest, FleetsDoNotDeployLeavesAClusterOutAndTheRolloutGoesOn) {
  git_.Write("apps/web/fleet.yaml",
             "targetCustomizations:\n"
             "- name: lab\n  clusterSelector: {matchLabels: {env: lab}}\n  doNotDeploy: true\n");
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("a-lab", "", "lab");
  Connect("b1");
  Connect("c1");
  v1::Bundle bundle = Bundle("web", "apps/web");
  bundle.mutable_rollout()->set_partition_size("1");  // a-lab, then b1, then c1
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->error().empty()) << info->error();
  const std::string r1 = Eventually("b1");
  ASSERT_FALSE(r1.empty()) << "the left-out cluster's partition passes at once";
  EXPECT_EQ(hub_->NextMessage(agents_["a-lab"].session, "web"), nullptr) << "sent nothing";
  absl::StatusOr<v1::RolloutStatus> rollout = RolloutOnce(
      [](const v1::RolloutStatus& r) { return r.partitions_size() == 3 && r.partition() >= 1; });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  ASSERT_EQ(rollout->partitions(0).clusters_size(), 1);
  EXPECT_TRUE(rollout->partitions(0).clusters(0).ready());
  EXPECT_THAT(rollout->partitions(0).clusters(0).detail(),
              HasSubstr("not deployed here: apps/web/fleet.yaml: targetCustomizations lab says "
                        "doNotDeploy for this cluster"));
  std::vector<v1::BundleStatus> lab = controller_->GetStatus("a-lab", "web");
  ASSERT_EQ(lab.size(), 1u);
  EXPECT_TRUE(lab[0].not_deployed());
  EXPECT_EQ(lab[0].sync_state(), v1::SYNC_STATE_SYNCED);
  EXPECT_THAT(lab[0].message(), HasSubstr("nothing of the bundle is deployed here"));
  Report("b1", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c1"), r1);
  Report("c1", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_TRUE(RolloutOnce([](const v1::RolloutStatus& r) { return r.done(); })->done());
  v1::BundleInfo listed = controller_->ListBundles()[0];
  EXPECT_EQ(listed.target_clusters(), 2);
  EXPECT_EQ(listed.not_deployed_clusters(), 1);

  // A lab cluster that already runs the bundle (its hello says so) is sent no removal,
  // and its status says what it keeps and how to remove it.
  Connect("d-lab", r1, "lab");
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(hub_->NextMessage(agents_["d-lab"].session, "web"), nullptr);
  v1::StatusUpdate held;
  held.set_bundle("web");
  held.set_revision(r1);
  held.set_applied_revision(r1);
  held.set_sync_state(v1::SYNC_STATE_SYNCED);
  held.set_health(v1::HEALTH_STATE_HEALTHY);
  hub_->OnStatus(agents_["d-lab"].session, held);
  std::vector<v1::BundleStatus> kept;
  for (int i = 0; i < 1000 && (kept.empty() || !kept[0].not_deployed()); ++i) {
    kept = controller_->GetStatus("d-lab", "web");
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_TRUE(kept[0].not_deployed());
  EXPECT_EQ(kept[0].sync_state(), v1::SYNC_STATE_OUT_OF_SYNC);
  EXPECT_THAT(kept[0].message(),
              HasSubstr(absl::StrCat("keeps revision ", r1.substr(0, 12), " it runs")));
  EXPECT_EQ(controller_->ListBundles()[0].not_deployed_clusters(), 2);
}

// Fleet's overrideTargets choose the clusters a folder goes to: a cluster of the bundle's
// that none selects is sent nothing and shows as not deployed, never failed; one that
// already runs the bundle keeps it. A bundle rendered before gitfleet read them goes to
// every cluster, as it did.
TEST_F(RolloutTest, FleetsOverrideTargetsChooseTheClustersAFolderGoesTo) {
  git_.Write("apps/web/fleet.yaml",
             "overrideTargets:\n- name: test\n  clusterSelector: {matchLabels: {env: test}}\n");
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("t1", "", "test");
  Connect("p1");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->error().empty()) << info->error();
  const std::string r1 = Eventually("t1");
  ASSERT_FALSE(r1.empty());
  EXPECT_EQ(hub_->NextMessage(agents_["p1"].session, "web"), nullptr) << "sent nothing";
  std::vector<v1::BundleStatus> prod;
  for (int i = 0; i < 1000 && (prod.empty() || !prod[0].not_deployed()); ++i) {
    prod = controller_->GetStatus("p1", "web");
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(prod.size(), 1u);
  EXPECT_TRUE(prod[0].not_deployed());
  EXPECT_THAT(prod[0].message(), HasSubstr("its overrideTargets test select other clusters"));
  v1::BundleInfo listed = controller_->ListBundles()[0];
  EXPECT_EQ(listed.not_deployed_clusters(), 1);
  EXPECT_THAT(listed.notes(), Contains(HasSubstr("only the clusters apps/web/fleet.yaml's "
                                                 "overrideTargets test select get it")));

  // A bundle from before: every cluster of its selector.
  ASSERT_NO_FATAL_FAILURE(AsLeftBeforeTheUpgrade("web", [](v1::BundleRecord& record) {
    EXPECT_TRUE(record.reads_fleet_override_targets()) << "a new bundle reads them";
    record.clear_reads_fleet_override_targets();
    record.set_revision("rendered-before");
  }));
  Connect("t1", r1, "test");
  Connect("p1");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_FALSE(Eventually("p1").empty()) << "as it did before";
}

// A fleet.yaml's rolloutStrategy partitions: staging, then production.
constexpr char kStagingThenProd[] =
    "  partitions:\n"
    "  - name: staging\n"
    "    clusterSelector: {matchLabels: {env: staging}}\n"
    "  - name: production\n"
    "    clusterSelector: {matchLabels: {env: prod}}\n";

// A Fleet repository's maxUnavailablePartitions: production gets the commit while staging
// is not ready yet (one partition may be), and rollout status says staging was passed.
TEST_F(RolloutTest, FleetsMaxUnavailablePartitionsGoesOnPastOne) {
  git_.Write("apps/web/fleet.yaml",
             absl::StrCat("rolloutStrategy:\n  maxUnavailablePartitions: 1\n", kStagingThenProd));
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("p1");
  Connect("s1", "", "staging");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  EXPECT_THAT(info->notes(), Not(Contains(HasSubstr("maxUnavailablePartitions"))));
  EXPECT_EQ(Eventually("s1"), r1);
  Report("s1", r1, v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(Eventually("p1"), r1) << "staging not ready is the one partition allowed";
  absl::StatusOr<v1::RolloutStatus> rollout = RolloutOnce([](const v1::RolloutStatus& r) {
    return r.partitions_size() == 2 && r.partitions(0).state() == "passed";
  });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  ASSERT_EQ(rollout->partitions_size(), 2);
  EXPECT_EQ(rollout->partitions(0).state(), "passed");
  EXPECT_EQ(rollout->partitions(0).name(), "staging");
}

// A repository moved from Fleet keeps the order its fleet.yaml's rolloutStrategy asks for:
// staging, then production, each partition waiting for the one before to be Healthy. One
// it cannot follow holds the commit from every cluster, and a bundle's own partitions win.
TEST_F(RolloutTest, FleetYamlsRolloutStrategyOrdersTheRollout) {
  const std::string strategy =
      "rolloutStrategy:\n"
      "  partitions:\n"
      "  - name: staging\n"
      "    clusterSelector: {matchLabels: {env: staging}}\n"
      "  - name: production\n"
      "    clusterSelector: {matchLabels: {env: prod}}\n";
  git_.Write("apps/web/fleet.yaml", strategy);
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("p1");
  Connect("p2");
  Connect("s1", "", "staging");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  EXPECT_THAT(info->notes(), Contains(HasSubstr("apps/web/fleet.yaml: rolloutStrategy."
                                                "maxUnavailable is unset: gitfleet waits")));
  EXPECT_EQ(Eventually("s1"), r1);
  EXPECT_EQ(Take("p1"), "") << "production goes after staging";
  absl::StatusOr<v1::RolloutStatus> rollout =
      RolloutOnce([](const v1::RolloutStatus& r) { return r.partitions_size() == 2; });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_TRUE(rollout->progressive());
  EXPECT_EQ(rollout->declared_in(), "apps/web/fleet.yaml");
  EXPECT_EQ(rollout->partitions(0).name(), "staging");
  EXPECT_EQ(rollout->partitions(1).name(), "production");
  EXPECT_THAT(rollout->message(), HasSubstr("partition 1/2 (staging): 0 of 1 clusters ready"));
  Report("s1", r1, v1::HEALTH_STATE_PROGRESSING);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("p1"), "") << "staging is not Healthy yet";

  // A restart goes on with the same partitions, names and all, from the stored render.
  Restart();
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("p1");
  Connect("p2");
  Connect("s1", r1, "staging");
  rollout = RolloutOnce([](const v1::RolloutStatus& r) { return r.partitions_size() == 2; });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->declared_in(), "apps/web/fleet.yaml");
  EXPECT_EQ(rollout->partitions(0).name(), "staging");
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("p1"), "") << "a restart let production go before staging";
  Report("s1", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("p1"), r1);
  EXPECT_EQ(Eventually("p2"), r1);
  for (const char* name : {"p1", "p2"}) Report(name, r1, v1::HEALTH_STATE_HEALTHY);

  // A strategy gitfleet cannot follow (a selector it cannot write): nobody gets the commit.
  git_.Write("apps/web/fleet.yaml",
             "rolloutStrategy:\n  partitions:\n  - name: eu\n    clusterSelector:\n"
             "      matchExpressions: [{key: a, operator: Gt, values: ['1']}]\n");
  git_.Write("apps/web/cm.yaml", Cm("web", "2"));
  git_.Commit("cluster groups");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  const std::string r2 = controller_->ListBundles()[0].revision();
  ASSERT_NE(r2, r1);
  absl::SleepFor(absl::Milliseconds(200));
  for (const char* name : {"s1", "p1", "p2"}) EXPECT_EQ(Take(name), "") << name;
  EXPECT_THAT(controller_->GetStatus("p1", "web")[0].held_back(),
              HasSubstr("held: apps/web/fleet.yaml: rolloutStrategy.partitions[0] (eu): its "
                        "clusterSelector is not one gitfleet reads"));
  EXPECT_THAT(controller_->ListBundles()[0].rollout(),
              HasSubstr("held: apps/web/fleet.yaml: rolloutStrategy.partitions[0] (eu)"))
      << "bundle list and bundle add say it at once";
  auto paused_gauge = [&] { return metrics_.rollout_paused.Add({{"bundle", "web"}}).Value(); };
  for (int i = 0; i < 200 && paused_gauge() != 1; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(paused_gauge(), 1) << "held until someone acts: GitfleetRolloutPaused fires";

  // The bundle's own partitions win over its fleet.yaml's: r2 goes out by them.
  v1::Bundle own = controller_->ListBundles()[0].bundle();
  own.mutable_rollout()->add_partitions("env=prod");
  absl::StatusOr<v1::BundleInfo> replaced = controller_->AddBundle(own, /*replace=*/true);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(Eventually("p1"), r2) << "prod first, by the bundle's own --partition";
  EXPECT_EQ(paused_gauge(), 0);
  EXPECT_EQ(Take("s1"), "");
  rollout = controller_->GetRollout("web");
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->declared_in(), "");
}

// A bundle's --bake-time holds the next partition of its fleet.yaml's rolloutStrategy too:
// staging Healthy, production gets the render only once staging stayed so that long.
TEST_F(RolloutTest, ABundlesBakeTimeHoldsItsFleetYamlsNextPartition) {
  git_.Write("apps/web/fleet.yaml", absl::StrCat("rolloutStrategy:\n", kStagingThenProd));
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("p1");
  Connect("s1", "", "staging");
  v1::Bundle bundle = Bundle("web", "apps/web");
  bundle.mutable_rollout()->set_bake_seconds(2);
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(bundle, false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  EXPECT_EQ(Eventually("s1"), r1);
  Report("s1", r1, v1::HEALTH_STATE_HEALTHY);
  const absl::Time healthy = absl::Now();
  absl::StatusOr<v1::RolloutStatus> rollout = RolloutOnce([](const v1::RolloutStatus& r) {
    return r.partitions_size() == 2 && r.partitions(0).state() == "baking";
  });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->declared_in(), "apps/web/fleet.yaml");
  EXPECT_THAT(rollout->message(), HasSubstr("partition 1/2 (staging): ready (1 of 1 clusters); "
                                            "baking 2s before partition 2"));
  EXPECT_THAT(controller_->GetStatus("p1", "web")[0].held_back(),
              HasSubstr("ready and baking (--bake-time=2s)"));
  EXPECT_EQ(Eventually("p1"), r1);
  EXPECT_GE(absl::Now() - healthy, absl::Seconds(1)) << "production went before the bake";
}

// The partitions are cut when a render's rollout starts. A cluster that stops matching the
// bundle later leaves its partition and moves nobody else, and one that starts matching
// joins the last partition that has not started: a change in the fleet never brings a
// cluster's turn forward, so it cannot get the render before the partitions ahead of its
// own are ready.
TEST_F(RolloutTest, TheFleetChangingMidRolloutBringsNoClustersTurnForward) {
  std::string r1, r2, r3;
  ASSERT_NO_FATAL_FAILURE(RollR2ToPartition2(&r1, &r2, "env=prod"));  // c2 stays Progressing
  Report("c2", r2, v1::HEALTH_STATE_PROGRESSING);

  // c1 (partition 1, passed) stops matching, and c0, which sorts first, joins. Cut again
  // from scratch, c2 would now be in a passed partition and c3 in the current one.
  Connect("c1", r2, "dev");
  Connect("c0");
  Report("c2", r2, v1::HEALTH_STATE_PROGRESSING);  // any report evaluates the rollout
  absl::SleepFor(absl::Milliseconds(300));         // time for anything wrongly given to show
  EXPECT_EQ(Take("c3"), "") << "c3 got r2 while c2, ahead of it, is not ready";
  // A joiner that holds nothing runs what the whole fleet ran until its turn.
  EXPECT_EQ(Take("c0"), r1) << "a cluster that joined mid-rollout jumped the queue";
  absl::StatusOr<v1::RolloutStatus> rollout = controller_->GetRollout("web");
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->partition(), 1);
  ASSERT_EQ(rollout->partitions_size(), 3);
  EXPECT_EQ(rollout->partitions(0).clusters_size(), 0) << "c1 left it";
  ASSERT_EQ(rollout->partitions(1).clusters_size(), 1);
  EXPECT_EQ(rollout->partitions(1).clusters(0).name(), "c2");
  ASSERT_EQ(rollout->partitions(2).clusters_size(), 2);
  EXPECT_EQ(rollout->partitions(2).clusters(0).name(), "c3");
  EXPECT_EQ(rollout->partitions(2).clusters(1).name(), "c0") << "joiners go last";
  EXPECT_THAT(rollout->message(), HasSubstr("partition 2/3"));

  // c2 turns Healthy: the last partition, joiner included, gets r2.
  Report("c2", r2, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c3"), r2);
  EXPECT_EQ(Eventually("c0"), r2);
  EXPECT_EQ(Take("c1"), "") << "c1 is no longer targeted";

  // c5 joins while the last partition rolls out: it waits in a partition of its own.
  Connect("c5");
  Report("c3", r2, v1::HEALTH_STATE_HEALTHY);  // c0 is not ready yet
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c5"), r1) << "c5 joined a partition that had started";
  Report("c0", r2, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c5"), r2);
  Report("c5", r2, v1::HEALTH_STATE_HEALTHY);
  rollout = RolloutOnce([](const v1::RolloutStatus& r) { return r.done(); });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_TRUE(rollout->done());
  EXPECT_EQ(rollout->partitions_size(), 4);

  // The next render's rollout is cut afresh: c0 first, by name, and no empty partition.
  ASSERT_NO_FATAL_FAILURE(CommitWeb("3", &r3));
  EXPECT_EQ(Eventually("c0"), r3);
  rollout = controller_->GetRollout("web");
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  ASSERT_EQ(rollout->partitions_size(), 4);  // c0 | c2 | c3 | c5
  EXPECT_EQ(rollout->partitions(0).clusters(0).name(), "c0");
}

// A restart goes on with the partitions the rollout had, fleet changes included, instead
// of cutting them again from the fleet as it then is.
TEST_F(RolloutTest, ARestartKeepsThePartitionsOfARolloutUnderWay) {
  std::string r1, r2;
  ASSERT_NO_FATAL_FAILURE(RollR2ToPartition2(&r1, &r2));
  Connect("c0");  // sorts first; joins the last partition
  Report("c2", r2, v1::HEALTH_STATE_PROGRESSING);
  absl::StatusOr<v1::RolloutStatus> rollout =
      RolloutOnce([](const v1::RolloutStatus& r) { return r.partitions(2).clusters_size() == 2; });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  ASSERT_EQ(rollout->partitions(2).clusters_size(), 2) << rollout->DebugString();

  Restart();
  Connect("c0");
  Connect("c1", r2);
  Connect("c2", r2);
  Connect("c3", r1);
  Report("c2", r2, v1::HEALTH_STATE_PROGRESSING);  // evaluates the rollout
  rollout = RolloutOnce([](const v1::RolloutStatus& r) { return r.partitions_size() == 3; });
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  ASSERT_EQ(rollout->partitions_size(), 3) << rollout->DebugString();
  EXPECT_EQ(rollout->partition(), 1);
  EXPECT_EQ(rollout->partitions(0).clusters(0).name(), "c1") << "cut again after the restart";
  ASSERT_EQ(rollout->partitions(2).clusters_size(), 2);
  EXPECT_EQ(rollout->partitions(2).clusters(1).name(), "c0");
  absl::SleepFor(absl::Milliseconds(300));  // time for anything wrongly given to show
  EXPECT_EQ(Take("c0"), r1) << "c0 got r2 in a partition that had passed";
  Report("c2", r2, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c0"), r2);
  EXPECT_EQ(Eventually("c3"), r2);
}

// A cluster that joins during a rollout, holding nothing of the bundle, runs the last
// revision the whole fleet was given until its partition's turn: not nothing (commits
// that come faster than a rollout finishes would keep it empty for good), and never the
// revision still being judged. After a restart too, however many commits came since.
TEST_F(RolloutTest, AClusterThatJoinsMidRolloutRunsWhatTheFleetRanUntilItsTurn) {
  std::string r1, r2, r3;
  ASSERT_NO_FATAL_FAILURE(RollR2ToPartition2(&r1, &r2));
  Connect("c9");
  EXPECT_EQ(Eventually("c9"), r1);
  EXPECT_EQ(Take("c3"), "") << "c3 holds r1 and keeps it until its turn";
  Report("c9", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_THAT(controller_->GetStatus("c9", "web")[0].held_back(),
              AllOf(HasSubstr("rollout: "),
                    HasSubstr(absl::StrCat("; meanwhile it runs ", r1.substr(0, 12),
                                           ", the last revision the whole fleet was given"))));

  // Newer commits while r2 is under way: what the fleet last ran is still r1.
  ASSERT_TRUE(controller_->ControlRollout("web", "pause").ok());
  for (int i = 3; i <= 16; ++i) ASSERT_NO_FATAL_FAILURE(CommitWeb(absl::StrCat(i), &r3));
  Connect("c8");
  EXPECT_EQ(Eventually("c8"), r1);

  // A restart: r1 was kept in the store (14 commits pushed it past the revisions kept).
  Restart();
  Connect("c7");
  EXPECT_EQ(Eventually("c7"), r1);
  Connect("c1", r3);
  Connect("c9", r1);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Take("c9"), "") << "c9 holds r1: it keeps it until its turn";

  // The rollout of r3 finishes: r3 is what a cluster that joins gets, at once.
  ASSERT_TRUE(controller_->ControlRollout("web", "resume").ok());
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<v1::RolloutStatus> status =
        RolloutOnce([](const v1::RolloutStatus&) { return true; });
    ASSERT_TRUE(status.ok()) << status.status();
    if (status->done()) break;
    ASSERT_TRUE(controller_->ControlRollout("web", "promote").ok());
  }
  ASSERT_TRUE(RolloutOnce([](const v1::RolloutStatus& r) { return r.done(); })->done());
  Connect("c6");
  EXPECT_EQ(Eventually("c6"), r3);
}

// During a rollback's rollout, the revision the whole fleet ran is the one the operator
// rolls back from: a joiner waits for its turn instead.
TEST_F(RolloutTest, AJoinerGetsNothingOfTheRevisionARollbackMovesAwayFrom) {
  std::string r1, r2;
  ASSERT_NO_FATAL_FAILURE(RollR2ToPartition2(&r1, &r2));
  Report("c2", r2, v1::HEALTH_STATE_HEALTHY);
  ASSERT_EQ(Eventually("c3"), r2);
  Report("c3", r2, v1::HEALTH_STATE_HEALTHY);
  ASSERT_TRUE(RolloutOnce([](const v1::RolloutStatus& r) { return r.done(); })->done());

  absl::StatusOr<v1::BundleInfo> pinned = controller_->PinBundle("web", r1.substr(0, 12));
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  ASSERT_EQ(Eventually("c1"), r1) << "the rollback rolls out from partition 1";
  Connect("c9");
  absl::SleepFor(absl::Milliseconds(300));  // time for anything wrongly given to show
  EXPECT_EQ(Take("c9"), "") << "a joiner got the revision being rolled back from";
  Report("c1", r1, v1::HEALTH_STATE_HEALTHY);
  ASSERT_EQ(Eventually("c2"), r1);
  Report("c2", r1, v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(Eventually("c3"), r1);
  EXPECT_EQ(Eventually("c9"), r1) << "its turn, in the last partition";
}

// A joiner gets a bundle's stable revision only once the bundles it depends on are
// applied and Healthy there: its objects never go before theirs.
TEST_F(RolloutTest, AJoinerGetsTheStableRevisionOnlyOnceItsDependenciesAreReady) {
  git_.Write("apps/base/cm.yaml", Cm("base"));
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  for (const char* name : {"c1", "c2"}) Connect(name);
  ASSERT_TRUE(controller_->AddBundle(Bundle("base", "apps/base"), false).ok());
  auto report_base = [&](const std::string& cluster) {
    std::shared_ptr<const EncodedMessage> message =
        hub_->NextMessage(agents_[cluster].session, "base");
    ASSERT_NE(message, nullptr) << cluster;
    Report(cluster, message->message.update().revision(), v1::HEALTH_STATE_HEALTHY,
           v1::SYNC_STATE_SYNCED, "base");
  };
  for (const char* name : {"c1", "c2"}) ASSERT_NO_FATAL_FAILURE(report_base(name));
  v1::Bundle web = Bundle("web", "apps/web");
  web.mutable_rollout()->set_partition_size("1");
  web.add_depends_on("base");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(web, false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  for (const char* name : {"c1", "c2"}) {
    ASSERT_EQ(Eventually(name), r1) << name;
    Report(name, r1, v1::HEALTH_STATE_HEALTHY);
  }
  ASSERT_TRUE(RolloutOnce([](const v1::RolloutStatus& r) { return r.done(); })->done());
  git_.Write("apps/web/cm.yaml", Cm("web", "2"));
  git_.Commit("version 2");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  EXPECT_NE(Eventually("c1"), "");

  Connect("c3");  // base is not applied there yet
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c3"), "") << "web's objects went before base's";
  ASSERT_NO_FATAL_FAILURE(report_base("c3"));
  EXPECT_EQ(Eventually("c3"), r1) << "base is ready on c3: web's stable revision goes there";
}

// A Fleet folder's dependsOn, by Fleet's name for the folder it waits for (the GitRepo's
// name, a dash, the folder's path with dashes): waited for on each cluster as --depends-on
// is, once a bundle of the same source renders that folder; a cycle through it holds both.
TEST_F(RolloutTest, FleetYamlsDependsOnIsWaitedForAsDependsOnIs) {
  git_.Write("apps/base/cm.yaml", Cm("base"));
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Write("apps/web/fleet.yaml", "dependsOn:\n- name: fleet-examples-apps-base\n");
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("c1");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string r1 = info->revision();
  EXPECT_THAT(controller_->ListBundles()[0].notes(),
              Contains(HasSubstr("on each cluster, waits for bundle fleet-examples-apps-base to "
                                 "be applied and Healthy there, as apps/web/fleet.yaml's "
                                 "dependsOn asks")));
  absl::SleepFor(absl::Milliseconds(300));  // time for anything wrongly given to show
  EXPECT_EQ(Take("c1"), "") << "its dependency is not even defined";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(),
              HasSubstr("bundle fleet-examples-apps-base is not defined"));

  ASSERT_TRUE(controller_->AddBundle(Bundle("base", "apps/base"), false).ok());
  const std::string base = NextUpdateOf("c1", "base");
  ASSERT_FALSE(base.empty());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c1"), "") << "web went before base was Healthy";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(), HasSubstr("bundle base"));
  Report("c1", base, v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "base");
  EXPECT_EQ(Eventually("c1"), r1);

  // base's folder now waits for web: a cycle, and neither's next commit goes anywhere.
  git_.Write("apps/base/fleet.yaml", "dependsOn:\n- name: web\n");
  git_.Commit("a cycle");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  git_.Write("apps/web/cm.yaml", Cm("web", "2"));
  git_.Commit("web 2");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c1"), "") << "a cycle let web through";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(),
              HasSubstr("the dependencies go round in a cycle, web -> base -> web"));
  // And a flag that would close one is refused when it is given.
  v1::Bundle base_again = Bundle("base", "apps/base");
  base_again.add_depends_on("web");
  EXPECT_THAT(controller_->AddBundle(base_again, true).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cycle")));
}

// A cycle refused is named to the team defining the bundle: the bundles it names itself,
// and its own, but not the names of another team's bundles the cycle goes through.
TEST_F(RolloutTest, ACycleThroughAnotherTeamsBundlesDoesNotNameThem) {
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  auto of_team = [this](const std::string& name, const std::string& team,
                        const std::string& dependency) {
    v1::Bundle bundle = Bundle(name, "apps/web");
    bundle.mutable_scope()->set_caller(team);
    bundle.add_depends_on(dependency);
    return controller_->AddBundle(bundle, false).status();
  };
  ASSERT_TRUE(of_team("b-db", "team-b", "a-web").ok());
  ASSERT_TRUE(of_team("b-infra", "team-b", "b-db").ok());
  ASSERT_TRUE(of_team("a-api", "team-a", "b-infra").ok());
  absl::Status refused = of_team("a-web", "team-a", "a-api");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("--depends-on makes a cycle: a-web -> a-api -> (a bundle "
                                          "of another team) -> (a bundle of another team) -> "
                                          "a-web")));
  EXPECT_THAT(refused.message(), Not(HasSubstr("b-db")));
  // Another team's bundle the definition names itself is named: the caller gave it.
  refused = of_team("a-web", "team-a", "b-infra");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("a-web -> b-infra -> (a bundle of another team) -> "
                                          "a-web")));
  // A fleet admin is told every name.
  v1::Bundle admins = Bundle("a-web", "apps/web");
  admins.add_depends_on("a-api");
  EXPECT_THAT(controller_->AddBundle(admins, false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("a-web -> a-api -> b-infra -> b-db -> a-web")));
}

// Fleet names a folder's bundle by its fleet.yaml's `name`, or makes a Helm release name
// of the GitRepo's and the folder's: a checksum where characters were changed, and cut to
// 53 characters. Each is found as Fleet finds it.
TEST_F(RolloutTest, FleetYamlsDependsOnFindsFleetsNamesAsFleetMakesThem) {
  const std::string operator_path = "clusters/production/monitoring/Prometheus_Operator";
  git_.Write(operator_path + "/cm.yaml", Cm("operator"));
  git_.Write("infra/crds/cm.yaml", Cm("crds"));
  git_.Write("infra/crds/fleet.yaml", "name: platform-crds\n");
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Write("infra/issuer/cm.yaml", Cm("issuer"));
  git_.Write("apps/web/fleet.yaml",
             "dependsOn:\n"
             "- name: fleet-examples-clusters-production-monitoring-p-5a3cf\n"
             "- name: platform-crds\n"
             "  selector: {matchLabels: {tier: infra}}\n"
             "- name: infra-infra-issuer\n");  // of GitRepo "infra": another source
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Source infra = Source();
  infra.set_name("infra");
  ASSERT_TRUE(controller_->AddSource(infra, false).ok());
  Connect("c1");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(controller_->AddBundle(Bundle("operator", operator_path), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("crds", "infra/crds"), false).ok());
  v1::Bundle issuer = Bundle("issuer", "infra/issuer");
  issuer.set_source("infra");
  ASSERT_TRUE(controller_->AddBundle(issuer, false).ok());
  std::map<std::string, std::string> revisions;
  for (const char* bundle : {"operator", "crds", "issuer"}) {
    revisions[bundle] = NextUpdateOf("c1", bundle);
    ASSERT_FALSE(revisions[bundle].empty()) << bundle;
  }
  absl::SleepFor(absl::Milliseconds(300));  // time for anything wrongly given to show
  EXPECT_EQ(Take("c1"), "") << "web went before its dependencies were Healthy";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(), HasSubstr("bundle operator"));
  Report("c1", revisions["operator"], v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "operator");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c1"), "") << "web went before crds was Healthy";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(), HasSubstr("bundle crds"));
  Report("c1", revisions["crds"], v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "crds");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c1"), "") << "web went before issuer was Healthy";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(), HasSubstr("bundle issuer"));
  Report("c1", revisions["issuer"], v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "issuer");
  EXPECT_EQ(Eventually("c1"), info->revision());
}

// A source's fleet_gitrepo is the GitRepo Fleet's names are made of: a dependsOn naming a
// folder of it by Fleet's name (checksummed for the dot) and a selector on its
// fleet.cattle.io/repo-name are waited for. A fleet.yaml `name` another team's bundle
// gives as well is not this team's to match: the bundle of its own team is waited for.
TEST_F(RolloutTest, ASourcesFleetGitRepoAndItsTeamAreWhatFleetsNamesResolveIn) {
  git_.Write("infra/crds/cm.yaml", Cm("crds"));
  git_.Write("infra/issuer/cm.yaml", Cm("issuer"));
  git_.Write("infra/issuer/fleet.yaml", "labels:\n  tier: issuer\n");
  git_.Write("infra/platform/cm.yaml", Cm("platform"));
  git_.Write("infra/platform/fleet.yaml", "name: platform\n");
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Write(
      "apps/web/fleet.yaml",
      absl::StrCat("dependsOn:\n"
                   "- name: ",
                   FleetBundleName("fleet.infra", "infra/crds"),
                   "\n"
                   "- selector:\n"
                   "    matchLabels: {fleet.cattle.io/repo-name: fleet.infra, tier: issuer}\n"
                   "- name: platform\n"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  v1::Source infra = Source();
  infra.set_name("infra");
  infra.set_fleet_gitrepo("fleet.infra");
  ASSERT_TRUE(controller_->AddSource(infra, false).ok());
  Connect("c1");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  for (const char* folder : {"crds", "issuer", "platform"}) {
    // Not named as the fleet.yaml names it: that name is Fleet's alone.
    v1::Bundle bundle = Bundle(folder == std::string("platform") ? "shared" : folder,
                               absl::StrCat("infra/", folder));
    bundle.set_source("infra");
    ASSERT_TRUE(controller_->AddBundle(bundle, false).ok());
  }
  v1::Bundle theirs = Bundle("team-b-platform", "infra/platform");
  theirs.set_source("infra");
  theirs.mutable_scope()->set_caller("team-b");
  ASSERT_TRUE(controller_->AddBundle(theirs, false).ok());
  std::map<std::string, std::string> revisions;
  for (const char* bundle : {"crds", "issuer", "shared"}) {
    revisions[bundle] = NextUpdateOf("c1", bundle);
    ASSERT_FALSE(revisions[bundle].empty()) << bundle;
  }
  for (const char* bundle : {"crds", "issuer"}) {
    absl::SleepFor(absl::Milliseconds(300));  // time for anything wrongly given to show
    EXPECT_EQ(Take("c1"), "") << "web went before " << bundle << " was Healthy";
    EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(),
                HasSubstr(absl::StrCat("bundle ", bundle)));
    Report("c1", revisions[bundle], v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, bundle);
  }
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c1"), "") << "web went before shared was Healthy";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(), HasSubstr("bundle shared"));
  Report("c1", revisions["shared"], v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "shared");
  EXPECT_EQ(Eventually("c1"), info->revision());
}

// dependsOn's selector waits for every bundle whose fleet.yaml labels it matches, as
// Fleet lists a cluster's bundles by their labels; none matching waits too.
TEST_F(RolloutTest, FleetYamlsDependsOnSelectorWaitsForEveryBundleItMatches) {
  for (const char* folder : {"crds", "operator"}) {
    git_.Write(absl::StrCat("infra/", folder, "/cm.yaml"), Cm(folder));
    git_.Write(absl::StrCat("infra/", folder, "/fleet.yaml"), "labels:\n  tier: infra\n");
  }
  git_.Write("apps/other/cm.yaml", Cm("other"));
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Write("apps/web/fleet.yaml",
             "dependsOn:\n"
             "- selector:\n"
             "    matchLabels:\n"
             "      tier: infra\n"
             "    matchExpressions:\n"
             "    - {key: fleet.cattle.io/repo-name, operator: In, values: [app]}\n");
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("c1");
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(Bundle("web", "apps/web"), false);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(controller_->ListBundles()[0].notes(),
              Contains(HasSubstr("waits for the bundles whose fleet.yaml labels match "
                                 "\"tier=infra,fleet.cattle.io/repo-name in (app)\"")));
  ASSERT_TRUE(controller_->AddBundle(Bundle("other", "apps/other"), false).ok());
  absl::SleepFor(absl::Milliseconds(300));  // time for anything wrongly given to show
  EXPECT_EQ(Take("c1"), "") << "no bundle is labelled so yet";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(),
              HasSubstr("no bundle's fleet.yaml labels match \"tier=infra,"));

  ASSERT_TRUE(controller_->AddBundle(Bundle("crds", "infra/crds"), false).ok());
  ASSERT_TRUE(controller_->AddBundle(Bundle("operator", "infra/operator"), false).ok());
  std::map<std::string, std::string> revisions;
  for (const char* bundle : {"operator", "crds"}) {
    revisions[bundle] = NextUpdateOf("c1", bundle);
    ASSERT_FALSE(revisions[bundle].empty()) << bundle;
  }
  Report("c1", revisions["crds"], v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "crds");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c1"), "") << "web went before operator was Healthy";
  EXPECT_THAT(controller_->GetStatus("c1", "web")[0].held_back(), HasSubstr("bundle operator"));
  Report("c1", revisions["operator"], v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "operator");
  EXPECT_EQ(Eventually("c1"), info->revision());

  // A selector gitfleet cannot read fails the render, as Fleet would not deploy it.
  git_.Write("apps/web/fleet.yaml",
             "dependsOn:\n"
             "- selector:\n"
             "    matchExpressions:\n"
             "    - {key: tier, operator: Gt, values: ['1']}\n");
  git_.Write("apps/web/cm.yaml", Cm("web", "2"));
  git_.Commit("unreadable");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  std::vector<v1::BundleInfo> bundles = controller_->ListBundles();
  auto web = std::find_if(bundles.begin(), bundles.end(),
                          [](const v1::BundleInfo& b) { return b.bundle().name() == "web"; });
  ASSERT_NE(web, bundles.end());
  EXPECT_THAT(web->error(), HasSubstr("apps/web/fleet.yaml: dependsOn[0].selector is not one "
                                      "gitfleet reads"));
  EXPECT_EQ(web->revision(), info->revision());
  EXPECT_EQ(Take("c1"), "");
}

// One commit may change a dependency and its dependent (a CRD and what uses it): of the
// same source, the dependency's render of that commit comes first, so a dependency that
// was Healthy at the commit before does not let the dependent's new revision through.
TEST_F(RolloutTest, ADependencyOfTheSameSourceRendersTheCommitBeforeItsDependentGoes) {
  git_.Write("apps/base/cm.yaml", Cm("base"));
  git_.Write("apps/web/cm.yaml", Cm("web"));
  git_.Commit("first");
  ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
  Connect("c1");
  ASSERT_TRUE(controller_->AddBundle(Bundle("base", "apps/base"), false).ok());
  const std::string base1 = NextUpdateOf("c1", "base");
  ASSERT_FALSE(base1.empty());
  Report("c1", base1, v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "base");
  v1::Bundle web = Bundle("web", "apps/web");
  web.add_depends_on("base");
  web.mutable_scope()->set_caller("team-a");  // base is a fleet admin's
  absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(web, false);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(Eventually("c1"), info->revision());
  Report("c1", info->revision(), v1::HEALTH_STATE_HEALTHY);
  v1::Bundle ops = Bundle("ops", "apps/web");  // a fleet admin's too
  ops.add_depends_on("base");
  ASSERT_TRUE(controller_->AddBundle(ops, false).ok());

  // base's render of the next commit fails: web's change of that commit waits. Why base
  // failed is said to its own team only.
  git_.Write("apps/base/cm.yaml", "kind: [\n");
  git_.Write("apps/web/cm.yaml", Cm("web", "2"));
  git_.Commit("base broken");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  absl::SleepFor(absl::Milliseconds(300));  // time for anything wrongly given to show
  EXPECT_EQ(Take("c1"), "") << "web went though base did not render its commit";
  const std::string web_waits = controller_->GetStatus("c1", "web")[0].held_back();
  EXPECT_THAT(web_waits, HasSubstr("bundle base failed to render"));
  EXPECT_THAT(web_waits, HasSubstr("the commit this revision comes from (its team's to read)"));
  EXPECT_THAT(controller_->GetStatus("c1", "ops")[0].held_back(),
              HasSubstr("the commit this revision comes from: apps/base/cm.yaml"));

  // Mended: base's new revision goes, and web's once that one is Healthy.
  git_.Write("apps/base/cm.yaml", Cm("base", "3"));
  git_.Commit("base mended");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  const std::string base3 = NextUpdateOf("c1", "base");
  ASSERT_FALSE(base3.empty());
  EXPECT_NE(base3, base1);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c1"), "") << "web went before base's new revision was Healthy";
  Report("c1", base3, v1::HEALTH_STATE_HEALTHY, v1::SYNC_STATE_SYNCED, "base");
  const std::string web3 = Eventually("c1");
  EXPECT_FALSE(web3.empty());
  EXPECT_NE(web3, info->revision());
}

// Adds bundle "web" of a ConfigMap whose value names each cluster ("prod-c1-1"), rolled
// out one cluster per partition, and rolls it out to c1-c3; `commit` commits version N of
// it. A template substituted per cluster, or with jsonnet_ a jsonnet render per cluster.
class PerClusterRolloutTest : public RolloutTest {
 protected:
  void Commit(const std::string& version) {
    if (jsonnet_) {
      git_.Write("apps/web/main.jsonnet",
                 "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web' },\n"
                 "  data: { v: std.extVar('env') + '-' + std.extVar('cluster.name') + '-" +
                     version + "' } }\n");
    } else {
      git_.Write("apps/web/cm.yaml", Cm("web", "${env}-${cluster.name}-" + version));
    }
    git_.Commit("version " + version);
  }
  v1::Bundle Web() {
    v1::Bundle bundle = Bundle("web", "apps/web");
    bundle.set_substitute(!jsonnet_);
    bundle.mutable_rollout()->set_partition_size("1");
    return bundle;
  }
  void AddWebEverywhere() {
    Commit("1");
    ASSERT_TRUE(controller_->AddSource(Source(), false).ok());
    for (const char* name : {"c1", "c2", "c3"}) Connect(name);
    v1::Bundle bundle = Web();
    absl::StatusOr<v1::BundleInfo> info = controller_->AddBundle(bundle, false);
    ASSERT_TRUE(info.ok()) << info.status();
    for (const char* name : {"c1", "c2", "c3"}) {
      ASSERT_NE(Eventually(name), "") << name;
      ASSERT_THAT(agents_[name].yaml, HasSubstr(absl::StrCat("prod-", name, "-1")));
      Report(name, agents_[name].held, v1::HEALTH_STATE_HEALTHY);
    }
    ASSERT_TRUE(RolloutOnce([](const v1::RolloutStatus& r) { return r.done(); })->done());
  }
  // AddWebEverywhere, then version 2 rolled out to partition 1 (c1).
  void RollVersion2ToC1() {
    ASSERT_NO_FATAL_FAILURE(AddWebEverywhere());
    Commit("2");
    ASSERT_TRUE(controller_->SyncSource("app").ok());
    ASSERT_NE(Eventually("c1"), "");
    ASSERT_THAT(agents_["c1"].yaml, HasSubstr("prod-c1-2"));
  }
  bool jsonnet_ = false;
};

// A cluster that joins a rollout of a bundle whose objects differ per cluster gets the
// stable render's objects substituted for it. The controller builds them (never a gRPC
// thread) and the agent is told, before its turn and after a restart alike.
TEST_F(PerClusterRolloutTest, AJoinerGetsTheStableRenderBuiltForItsValues) {
  ASSERT_NO_FATAL_FAILURE(RollVersion2ToC1());

  Connect("c9");
  const int before = agents_["c9"].connection->notices("web");
  // Asking for it never builds it on the asking (gRPC) thread (hub_test checks that without
  // a controller racing it): the controller builds it and tells the agent. A reconcile still
  // under way when c9 connected (one more after the last reports) may have built it
  // already: then it is there at once.
  if (Take("c9").empty()) {
    ASSERT_TRUE(NoticedAfter("c9", before)) << "not told once its revision was built";
    ASSERT_NE(Take("c9"), "");
  }
  EXPECT_THAT(agents_["c9"].yaml, HasSubstr("prod-c9-1"));

  // After a restart the stable render is substituted again from the stored one.
  Restart();
  Connect("c1", agents_["c1"].held);
  Connect("c8");
  EXPECT_NE(Eventually("c8"), "");
  EXPECT_THAT(agents_["c8"].yaml, HasSubstr("prod-c8-1"));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(Take("c1"), "") << "c1 holds its revision of version 2";

  // The definition changes (a new rollout; in memory, joiners still get version 1 as the
  // fleet ran it). After a restart, its values no longer say what the fleet ran: a joiner
  // waits for its turn.
  v1::Bundle changed = Web();
  (*changed.mutable_values())["env"] = "staging";
  ASSERT_TRUE(controller_->AddBundle(changed, true).ok());
  Connect("c7");
  EXPECT_NE(Eventually("c7"), "");
  EXPECT_THAT(agents_["c7"].yaml, HasSubstr("prod-c7-1"));
  Restart();
  Connect("c6");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c6"), "") << "substituted with values the fleet never ran";
}

// Jsonnet renders per cluster: the stable render keeps the old commit's files in memory,
// and after a restart renders that commit again from the repository's history.
TEST_F(PerClusterRolloutTest, AJoinerGetsAJsonnetRenderOfWhatTheFleetRanAfterARestartToo) {
  jsonnet_ = true;
  ASSERT_NO_FATAL_FAILURE(RollVersion2ToC1());
  Connect("c9");
  ASSERT_NE(Eventually("c9"), "");
  EXPECT_THAT(agents_["c9"].yaml, HasSubstr("prod-c9-1"));

  // Version 3 is committed while the control plane is down. Its rollout starts over, and
  // joiners still get version 1 (stored for the next restart too).
  Commit("3");
  Restart();
  Connect("c2", agents_["c2"].held);
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  Connect("c8");
  EXPECT_NE(Eventually("c8"), "");
  EXPECT_THAT(agents_["c8"].yaml, HasSubstr("prod-c8-1"));
  EXPECT_EQ(Take("c2"), "") << "not c2's turn";
  Restart();
  Connect("c7");
  const int before = agents_["c7"].connection->notices("web");
  if (Take("c7").empty()) {  // before it was rendered again: told once it is
    ASSERT_TRUE(controller_->SyncSource("app").ok());
    EXPECT_TRUE(NoticedAfter("c7", before));
  }
  EXPECT_NE(Eventually("c7"), "");
  EXPECT_THAT(agents_["c7"].yaml, HasSubstr("prod-c7-1"));

  // The definition changes: after a restart its values no longer say what the fleet ran.
  v1::Bundle changed = Web();
  (*changed.mutable_values())["env"] = "staging";
  ASSERT_TRUE(controller_->AddBundle(changed, true).ok());
  Restart();
  Connect("c6");
  ASSERT_TRUE(controller_->SyncSource("app").ok());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Take("c6"), "") << "rendered with values the fleet never ran";
}

// A cluster whose values change after its partition's turn gets its new objects as soon
// as they are built, not when the rollout ends.
TEST_F(PerClusterRolloutTest, AClusterWhoseValuesChangeMidRolloutIsToldOnceItsRevisionIsBuilt) {
  ASSERT_NO_FATAL_FAILURE(RollVersion2ToC1());
  Report("c1", agents_["c1"].held, v1::HEALTH_STATE_HEALTHY);
  ASSERT_NE(Eventually("c2"), "");  // partition 2 waits for c2's report

  Connect("c1", agents_["c1"].held, "dev");
  const int before = agents_["c1"].connection->notices("web");
  if (Take("c1").empty()) {  // not built yet (a reconcile under way may have built it)
    ASSERT_TRUE(NoticedAfter("c1", before)) << "not told once its revision was built";
    ASSERT_NE(Take("c1"), "");
  }
  EXPECT_THAT(agents_["c1"].yaml, HasSubstr("dev-c1-2"));
  EXPECT_EQ(Take("c3"), "") << "not c3's turn";
}

}  // namespace
}  // namespace gitfleet
