// The Kubernetes applier driven by the agent's reconciler against the fake API server:
// ordering, CRDs, namespaces, pruning and ownership, drift, errors and health.

#include "agent/kube/applier.h"

#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/apply/impersonating_applier.h"
#include "agent/apply/reconciler.h"
#include "agent/kube/account_watch.h"
#include "agent/kube/drift_watch.h"
#include "agent/metrics.h"
#include "agent/state/state_store.h"
#include "common/file_system.h"
#include "common/manifest/object.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakekube/fake_apiserver.h"

namespace gitfleet {
namespace {

using nlohmann::json;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::ManifestObject Obj(const std::string& yaml) {
  absl::StatusOr<v1::ManifestObject> object = MakeObject(yaml, "test");
  EXPECT_TRUE(object.ok()) << object.status();
  return *object;
}

v1::ManifestObject Cm(const std::string& name, const std::string& ns = "shop",
                      const std::string& value = "1", const std::string& extra_metadata = "") {
  return Obj(absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ", name, "\n",
                          ns.empty() ? "" : "  namespace: " + ns + "\n", extra_metadata,
                          "data:\n  v: \"", value, "\"\n"));
}

v1::ManifestObject Ns(const std::string& name) {
  return Obj("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n");
}

v1::ManifestObject Deploy(const std::string& name, int replicas, const std::string& wave = "") {
  return Obj(absl::StrCat(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name, "\n  namespace: shop\n",
      wave.empty() ? "" : "  annotations:\n    gitfleet.io/sync-wave: \"" + wave + "\"\n",
      "spec:\n  replicas: ", replicas, "\n  selector:\n    matchLabels: {app: ", name,
      "}\n  template:\n    metadata:\n"
      "      labels: {app: ",
      name,
      "}\n    spec:\n      containers:\n      - name: app\n"
      "        image: nginx:1.25\n"));
}

v1::ManifestObject Crd() {
  return Obj(R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
)");
}

v1::ManifestObject Widget(const std::string& name) {
  return Obj("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: " + name +
             "\n  namespace: shop\nspec:\n  size: 3\n");
}

class KubernetesApplierTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }

  void Start(FakeApiServer::Options fake_options) {
    reconciler_.reset();
    applier_.reset();
    mapper_.reset();
    client_.reset();
    absl::StatusOr<std::unique_ptr<FakeApiServer>> fake = FakeApiServer::Start(fake_options);
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);
    KubeConfig config;
    config.server = fake_->url();
    config.token = fake_options.token;
    KubeClient::Options client_options;
    client_options.qps = 1000;
    client_options.burst = 1000;
    client_options.initial_backoff = absl::Milliseconds(10);
    client_options.max_retries = 2;
    client_ = *KubeClient::Create(config, client_options);
    mapper_ = std::make_unique<RestMapper>(client_.get(), absl::ZeroDuration());
    KubernetesApplier::Options options;
    options.crd_wait = absl::Seconds(10);
    options.poll_interval = absl::Milliseconds(20);
    applier_ = std::make_unique<KubernetesApplier>(client_.get(), mapper_.get(), options);
    reconciler_ =
        std::make_unique<Reconciler>(applier_.get(), &state_, metrics_, absl::ZeroDuration());
    ASSERT_TRUE(reconciler_->Load().ok());
  }

  // Applies a bundle that names a service account as that account (its client
  // impersonates it), the others as the agent (applier_).
  std::unique_ptr<ImpersonatingApplier> ActingAsAccounts() {
    return std::make_unique<ImpersonatingApplier>(
        applier_.get(), [this](const std::string& as) -> absl::StatusOr<std::unique_ptr<Applier>> {
          absl::StatusOr<std::unique_ptr<KubeClient>> client = client_->Impersonating(as);
          if (!client.ok()) return client.status();
          account_clients_.push_back(*std::move(client));
          return std::unique_ptr<Applier>(
              new KubernetesApplier(account_clients_.back().get(), mapper_.get(), {}));
        });
  }

  // Namespace shop, and a Role there granting `verbs` on ConfigMaps to shop's service
  // account deployer.
  void GrantDeployerConfigMaps(const std::vector<std::string>& verbs) {
    fake_->Put("", "namespaces", {{"metadata", {{"name", "shop"}}}});
    const std::string rbac = "rbac.authorization.k8s.io";
    fake_->Put(
        rbac, "roles",
        {{"metadata", {{"name", "deploy"}, {"namespace", "shop"}}},
         {"rules", {{{"apiGroups", {""}}, {"resources", {"configmaps"}}, {"verbs", verbs}}}}});
    fake_->Put(rbac, "rolebindings",
               {{"metadata", {{"name", "deploy"}, {"namespace", "shop"}}},
                {"roleRef", {{"apiGroup", rbac}, {"kind", "Role"}, {"name", "deploy"}}},
                {"subjects", {{{"kind", "ServiceAccount"}, {"name", "deployer"}}}}});
  }

  // Makes drift watchers whose requests impersonate the user asked for, noting each.
  AccountWatches::Factory WatchersAs(const DriftWatcher::Options& options,
                                     std::vector<std::string>* made_as) {
    return [this, options,
            made_as](const std::string& user) -> absl::StatusOr<std::shared_ptr<DriftWatcher>> {
      absl::StatusOr<std::unique_ptr<KubeClient>> made = client_->Impersonating(user);
      if (!made.ok()) return made.status();
      made_as->push_back(user);
      std::shared_ptr<KubeClient> client = *std::move(made);
      return std::shared_ptr<DriftWatcher>(new DriftWatcher(client.get(), mapper_.get(), options),
                                           [client](DriftWatcher* watcher) { delete watcher; });
    };
  }

  // `bundle` of `object` in namespace shop, pruned and healed, applied as shop's service
  // account `account`.
  v1::BundleUpdate ShopUpdateAs(const std::string& bundle, const std::string& account,
                                const v1::ManifestObject& object) {
    v1::SyncOptions sync;
    sync.set_prune(true);
    sync.set_self_heal(true);
    sync.set_service_account(account);
    ObjectSet set;
    set.Put(object);
    v1::BundleUpdate update;
    update.set_bundle(bundle);
    update.set_target_namespace("shop");
    update.set_revision(ComputeRevision(set, sync, "shop"));
    *update.mutable_sync() = sync;
    update.set_object_count(1);
    *update.add_upserts() = object;
    return update;
  }

  // Update() for `bundle`.
  v1::BundleUpdate UpdateOf(const std::string& bundle,
                            const std::vector<v1::ManifestObject>& objects) {
    v1::BundleUpdate update = Update(objects);
    update.set_bundle(bundle);
    return update;
  }

  // The control plane's removal of `bundle` from this cluster, naming `handovers`.
  void RemoveBundle(const std::string& bundle, const std::vector<v1::Handover>& handovers = {}) {
    v1::BundleRemoval removal;
    removal.set_bundle(bundle);
    for (const v1::Handover& handover : handovers) *removal.add_handovers() = handover;
    reconciler_->OnRemoval(removal);
  }

  // A new reconciler over the same state and cluster, as after the agent restarts.
  void Restart() {
    reconciler_ =
        std::make_unique<Reconciler>(applier_.get(), &state_, metrics_, absl::ZeroDuration());
    ASSERT_TRUE(reconciler_->Load().ok());
  }

  v1::BundleUpdate Update(const std::vector<v1::ManifestObject>& objects, bool prune = true,
                          bool self_heal = true, const std::string& target_namespace = "") {
    ObjectSet set;
    for (const auto& o : objects) set.Put(o);
    v1::SyncOptions sync;
    sync.set_prune(prune);
    sync.set_self_heal(self_heal);
    v1::BundleUpdate update;
    update.set_bundle("web");
    update.set_revision(ComputeRevision(set, sync, target_namespace));
    *update.mutable_sync() = sync;
    update.set_target_namespace(target_namespace);
    update.set_object_count(static_cast<int>(set.size()));
    for (const auto& [k, o] : set.objects()) *update.add_upserts() = *o;
    return update;
  }

  // Writes Deployment shop/NAME's status as its controller would: every replica updated,
  // `available` of them available.
  void SetDeploymentStatus(const std::string& name, int replicas, int available) {
    fake_->SetStatus("apps", "deployments", "shop", name,
                     {{"observedGeneration", 1},
                      {"replicas", replicas},
                      {"updatedReplicas", replicas},
                      {"availableReplicas", available}});
  }

  // The agent's dry run of `bundle`: "change: detail" by object name, of `kind` only when
  // given.
  std::map<std::string, std::string> DiffByName(const std::string& bundle,
                                                const std::string& kind = "") {
    v1::DiffRequest request;
    request.set_bundle(bundle);
    const v1::DiffResult diff = reconciler_->Diff(request);
    std::map<std::string, std::string> changes;
    for (const auto& c : diff.changes()) {
      if (kind.empty() || c.key().kind() == kind) {
        changes[c.key().name()] = c.change() + ": " + c.detail();
      }
    }
    return changes;
  }

  // "PATCH configmaps/a" for each write request, in order.
  std::vector<std::string> Writes() {
    std::vector<std::string> out;
    for (const FakeApiServer::Request& r : fake_->Requests()) {
      if (r.method == "GET") continue;
      std::vector<std::string> parts = absl::StrSplit(r.path, '/');
      out.push_back(absl::StrCat(r.method, " ", parts[parts.size() - 2], "/", parts.back()));
    }
    return out;
  }

  // GETs of ConfigMaps in shop since the requests were last cleared.
  int ConfigMapReads() {
    int reads = 0;
    for (const FakeApiServer::Request& r : fake_->Requests()) {
      if (r.method == "GET" && absl::StartsWith(r.path, "/api/v1/namespaces/shop/configmaps/")) {
        ++reads;
      }
    }
    return reads;
  }

  MemoryFileSystem fs_;
  BundleStateStore state_{"/state", &fs_};
  metrics::Registry registry_;
  AgentMetrics metrics_{registry_};
  std::unique_ptr<FakeApiServer> fake_;
  std::unique_ptr<KubeClient> client_;
  std::unique_ptr<RestMapper> mapper_;
  std::vector<std::unique_ptr<KubeClient>> account_clients_;  // ActingAsAccounts' clients
  std::unique_ptr<KubernetesApplier> applier_;
  std::unique_ptr<Reconciler> reconciler_;
};

TEST_F(KubernetesApplierTest, AppliesInDependencyOrderWithWaves) {
  FakeApiServer::Options slow_crds;
  slow_crds.crd_establish_delay = absl::Milliseconds(300);
  Start(slow_crds);
  v1::ManifestObject role =
      Obj("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: reader\n"
          "rules: []\n");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update(
      {Widget("w1"), Cm("late", "shop", "1", "  annotations:\n    gitfleet.io/sync-wave: \"5\"\n"),
       Deploy("db", 1, "-1"), Cm("a"), role, Ns("shop"), Crd()}));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  // CRDs and Namespaces first; then wave -1, which holds the rest until it is Healthy.
  EXPECT_THAT(Writes(), ElementsAre("PATCH customresourcedefinitions/widgets.example.com",
                                    "PATCH namespaces/shop", "PATCH deployments/db"));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_APPLYING);
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("later sync waves wait for wave -1 to be Healthy: Deployment shop/db is "
                        "progressing"));
  EXPECT_TRUE(reconciler_->Resync(/*check_drift=*/false).empty()) << "still waiting";
  SetDeploymentStatus("db", 1, 1);
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_SYNCED) << changed[0].message();
  // Within a wave, cluster-scoped objects first.
  EXPECT_THAT(Writes(), ElementsAre("PATCH customresourcedefinitions/widgets.example.com",
                                    "PATCH namespaces/shop", "PATCH deployments/db",
                                    "PATCH clusterroles/reader", "PATCH configmaps/a",
                                    "PATCH widgets/w1", "PATCH configmaps/late"));
  json widget = fake_->Get("example.com", "widgets", "shop", "w1");
  ASSERT_FALSE(widget.is_null()) << "the custom resource waited for its CRD";
  EXPECT_EQ(widget["metadata"]["labels"][kBundleLabel], "web");
  EXPECT_EQ(widget["metadata"]["managedFields"][0]["manager"], "gitfleet");
  EXPECT_EQ(widget["metadata"]["managedFields"][0]["operation"], "Apply");
  for (const FakeApiServer::Request& r : fake_->Requests()) {
    if (r.method == "PATCH") {
      EXPECT_EQ(r.query, "fieldManager=gitfleet&force=true");
    }
  }
}

// A custom resource applied as one service account waits for the CRD another bundle applied
// just before as another (or as the agent): the agent's appliers share what CRDs they
// applied. One applier of its own, sharing nothing, does not know to wait.
TEST_F(KubernetesApplierTest, ACustomResourceWaitsForACrdAnotherApplierApplied) {
  FakeApiServer::Options slow_crds;
  slow_crds.crd_establish_delay = absl::Milliseconds(300);
  Start(slow_crds);
  fake_->Put("", "namespaces", {{"metadata", {{"name", "shop"}}}});
  KubernetesApplier::Options options;
  options.crd_wait = absl::Seconds(10);
  options.poll_interval = absl::Milliseconds(20);
  options.crds = std::make_shared<AppliedCrds>();
  KubernetesApplier platform(client_.get(), mapper_.get(), options);
  KubernetesApplier team(client_.get(), mapper_.get(), options);
  ASSERT_TRUE(platform.Apply(Crd(), ApplyContext{"crds", "", false}, true).ok());
  absl::StatusOr<ApplyResult> widget =
      team.Apply(Widget("w1"), ApplyContext{"web", "shop", false}, true);
  ASSERT_TRUE(widget.ok()) << widget.status();
  EXPECT_FALSE(fake_->Get("example.com", "widgets", "shop", "w1").is_null());

  Start(slow_crds);  // a fresh cluster, appliers that share nothing
  fake_->Put("", "namespaces", {{"metadata", {{"name", "shop"}}}});
  options.crds = nullptr;
  KubernetesApplier alone_platform(client_.get(), mapper_.get(), options);
  KubernetesApplier alone_team(client_.get(), mapper_.get(), options);
  ASSERT_TRUE(alone_platform.Apply(Crd(), ApplyContext{"crds", "", false}, true).ok());
  EXPECT_THAT(alone_team.Apply(Widget("w1"), ApplyContext{"web", "shop", false}, true).status(),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(KubernetesApplierTest, UnknownKindFailsAtOnceNamingIt) {
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Ns("shop"), Widget("w1"), Cm("a")}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_EQ(outcome.ack.errors_size(), 1);
  EXPECT_EQ(outcome.ack.errors(0).key().kind(), "Widget");
  EXPECT_EQ(outcome.ack.errors(0).message(),
            "the server does not serve apiVersion example.com/v1 (is its CRD installed?)");
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null()) << "the others are applied";
}

// A team's namespaces are judged by what the cluster serves: a ClusterRole that writes a
// namespace is cluster-scoped all the same, an object without one is placed in the target
// namespace first, and a kind not served cannot be told.
TEST_F(KubernetesApplierTest, ATeamsNamespacesAreJudgedByWhatTheClusterServes) {
  ApplyContext context{"team-a-app", "team-a-web", false};
  context.allowed_namespaces = {"team-a-*"};
  EXPECT_TRUE(CheckAllowedNamespace(*applier_, Cm("a", ""), context).ok());
  EXPECT_TRUE(CheckAllowedNamespace(*applier_, Cm("a", "team-a-db"), context).ok());
  EXPECT_THAT(CheckAllowedNamespace(*applier_, Cm("a", "shop"), context),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("ConfigMap shop/a is placed in namespace shop, outside")));
  const v1::ManifestObject role =
      Obj("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: god\n"
          "  namespace: team-a-web\nrules: []\n");
  EXPECT_THAT(CheckAllowedNamespace(*applier_, role, context),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is cluster-scoped")));
  EXPECT_THAT(CheckAllowedNamespace(*applier_, Ns("team-a-web"), context),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is cluster-scoped")));
  EXPECT_THAT(CheckAllowedNamespace(*applier_, Widget("w1"), context),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("the cluster does not serve kind Widget (example.com/v1) yet")));
  // Without a target namespace, the client's default namespace is where it would go.
  ApplyContext no_target{"team-a-app", "", false};
  no_target.allowed_namespaces = {"team-a-*"};
  EXPECT_THAT(CheckAllowedNamespace(*applier_, Cm("a", ""), no_target),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("namespace default")));
}

// A bundle that names a service account is applied as it: every request about its objects
// impersonates the account, so the cluster's RBAC for it, not the agent's own rights,
// decides what the bundle may do; a cluster that will not let the agent impersonate it
// applies nothing of it.
TEST_F(KubernetesApplierTest, ABundleIsAppliedAsItsServiceAccountAndHeldToItsRbac) {
  const std::string user = "system:serviceaccount:shop:deployer";
  std::unique_ptr<ImpersonatingApplier> acting = ActingAsAccounts();
  ImpersonatingApplier& applier = *acting;
  Reconciler reconciler(&applier, &state_, metrics_, absl::ZeroDuration());
  ASSERT_TRUE(reconciler.Load().ok());
  GrantDeployerConfigMaps({"get", "list", "create", "patch", "delete"});
  auto update = [](const std::vector<v1::ManifestObject>& objects) {
    ObjectSet set;
    for (const auto& o : objects) set.Put(o);
    v1::SyncOptions sync;
    sync.set_prune(true);
    sync.set_service_account("deployer");
    v1::BundleUpdate update;
    update.set_bundle("web");
    update.set_target_namespace("shop");
    update.set_revision(ComputeRevision(set, sync, "shop"));
    *update.mutable_sync() = sync;
    update.set_object_count(static_cast<int>(set.size()));
    for (const auto& [k, o] : set.objects()) *update.add_upserts() = *o;
    return update;
  };
  const v1::ManifestObject secret =
      Obj("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: shop}\n"
          "stringData: {k: v}\n");
  const v1::ManifestObject elsewhere = Cm("b", "kube-system");
  fake_->Put("", "namespaces", {{"metadata", {{"name", "kube-system"}}}});
  fake_->ClearRequests();
  Reconciler::Outcome outcome = reconciler.OnUpdate(update({Cm("a", ""), secret, elsewhere}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_THAT(outcome.status->message(),
              AllOf(HasSubstr("2 of 3 objects failed"),
                    HasSubstr("configmaps \"b\" is forbidden: User "
                              "\"system:serviceaccount:shop:deployer\" cannot get resource "
                              "\"configmaps\" in API group \"\" in the namespace "
                              "\"kube-system\"")));
  std::vector<std::string> errors;
  for (const v1::ObjectError& e : outcome.ack.errors()) errors.push_back(e.message());
  EXPECT_THAT(errors,
              ::testing::Contains(HasSubstr(
                  "secrets \"s\" is forbidden: User \"system:serviceaccount:shop:deployer\" "
                  "cannot get resource \"secrets\" in API group \"\" in the namespace "
                  "\"shop\"")));
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null()) << "what it may, it applies";
  EXPECT_TRUE(fake_->Get("", "secrets", "shop", "s").is_null());
  EXPECT_TRUE(fake_->Get("", "configmaps", "kube-system", "b").is_null());
  int made = 0;
  for (const FakeApiServer::Request& r : fake_->Requests()) {
    if (absl::StrContains(r.path, "/namespaces/")) {
      EXPECT_EQ(r.user, user) << r.method << " " << r.path << " was made as the agent";
      ++made;
    }
  }
  EXPECT_GE(made, 3);

  // Within its rights, it applies, with nothing to prune of what it was refused (never
  // written); and its removal prunes as the account.
  outcome = reconciler.OnUpdate(update({Cm("a", "", "2")}));
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.message();
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "a")["data"]["v"], "2");

  // A cluster whose RBAC does not let the agent impersonate the account: nothing applies.
  fake_->Forbid("impersonate", "", "serviceaccounts");
  outcome = reconciler.OnUpdate(update({Cm("a", "", "3")}));
  EXPECT_FALSE(outcome.ack.ok());
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("serviceaccounts \"deployer\" is forbidden: User "
                        "\"system:serviceaccount:gitfleet:agent\" cannot impersonate resource "
                        "\"serviceaccounts\" in API group \"\" in the namespace \"shop\""));
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "a")["data"]["v"], "2");
  fake_->Allow("impersonate", "", "serviceaccounts");

  fake_->ClearRequests();
  v1::BundleRemoval removal;
  removal.set_bundle("web");
  reconciler.OnRemoval(removal);
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null());
  for (const FakeApiServer::Request& r : fake_->Requests()) {
    if (r.method == "DELETE") EXPECT_EQ(r.user, user) << r.path;
  }
  EXPECT_EQ(fake_->CountRequests("DELETE"), 1);
}

// An agent locked down to impersonation (no list or watch of its own) cannot watch for
// drift itself: the account its bundle is applied as watches in its stead, so an edit is
// healed within seconds rather than at the next periodic check, and once the agent may
// watch itself, the account's watch goes.
TEST_F(KubernetesApplierTest, WhatTheAgentMayNotWatchItselfIsWatchedAsTheBundlesAccount) {
  fake_->AuthorizeAs("system:serviceaccount:gitfleet:agent");
  std::unique_ptr<ImpersonatingApplier> acting = ActingAsAccounts();
  ImpersonatingApplier& applier = *acting;
  Reconciler reconciler(&applier, &state_, metrics_, absl::ZeroDuration());
  ASSERT_TRUE(reconciler.Load().ok());
  GrantDeployerConfigMaps({"get", "list", "watch", "create", "patch", "delete"});
  const std::string rbac = "rbac.authorization.k8s.io";
  DriftWatcher::Options watch_options;
  watch_options.min_backoff = absl::Milliseconds(50);
  watch_options.max_backoff = absl::Milliseconds(200);
  watch_options.forbidden_retry = absl::Milliseconds(300);
  DriftWatcher own(client_.get(), mapper_.get(), watch_options);
  std::vector<std::string> made_as;
  AccountWatches watches(&own, WatchersAs(watch_options, &made_as),
                         /*max_watches=*/8);
  reconciler.SetChangeWatch(&watches, absl::ZeroDuration());
  ASSERT_TRUE(reconciler.OnUpdate(ShopUpdateAs("web", "deployer", Cm("a", ""))).ack.ok());
  const ChangeWatch::Kind configmaps{"v1", "ConfigMap"};
  auto eventually = [&](const std::function<bool()>& done) {
    for (int i = 0; i < 200 && !done(); ++i) {
      reconciler.Resync(/*check_drift=*/false);  // the agent's passes between checks
      absl::SleepFor(absl::Milliseconds(50));
    }
    return done();
  };
  ASSERT_TRUE(eventually([&] { return watches.Watching(configmaps, "shop"); }));
  EXPECT_FALSE(own.Watching(configmaps, "shop")) << "the agent itself may not";
  EXPECT_TRUE(own.Forbidden(configmaps, "shop"));
  EXPECT_THAT(made_as, ElementsAre("system:serviceaccount:shop:deployer"));
  EXPECT_EQ(watches.counts().as_account, 1);
  EXPECT_EQ(watches.counts().accounts, 1);
  absl::SleepFor(absl::Milliseconds(300));  // past its list and the own-write grace

  // Someone edits it: heard as the account, healed with no periodic check.
  fake_->Mutate("", "configmaps", "shop", "a", [](json& o) { o["data"]["v"] = "edited"; });
  EXPECT_TRUE(eventually([&] {
    return fake_->Get("", "configmaps", "shop", "a")["data"]["v"] == "1";
  })) << fake_->Get("", "configmaps", "shop", "a").dump();

  // The agent may watch ConfigMaps itself now: the account's watch goes.
  fake_->Put(
      rbac, "clusterroles",
      {{"metadata", {{"name", "watch"}}},
       {"rules",
        {{{"apiGroups", {""}}, {"resources", {"configmaps"}}, {"verbs", {"list", "watch"}}}}}});
  fake_->Put(
      rbac, "clusterrolebindings",
      {{"metadata", {{"name", "watch"}}},
       {"roleRef", {{"apiGroup", rbac}, {"kind", "ClusterRole"}, {"name", "watch"}}},
       {"subjects", {{{"kind", "ServiceAccount"}, {"name", "agent"}, {"namespace", "gitfleet"}}}}});
  EXPECT_TRUE(eventually([&] { return watches.counts().accounts == 0; }));
  EXPECT_TRUE(own.Watching(configmaps, "shop"));
  EXPECT_TRUE(watches.Watching(configmaps, "shop"));
  reconciler.SetChangeWatch(nullptr);
}

// Two bundles in shop applied as two accounts; the first by name (auditor) may list
// ConfigMaps there but not watch them: its watch is refused, and the next account holding
// them there (deployer) watches them instead, for both bundles. The agent's own watches and
// the accounts' stay within one max_watches.
TEST_F(KubernetesApplierTest, AWatchAnAccountIsRefusedGoesToTheNextAccountHoldingIt) {
  fake_->AuthorizeAs("system:serviceaccount:gitfleet:agent");
  std::unique_ptr<ImpersonatingApplier> acting = ActingAsAccounts();
  Reconciler reconciler(acting.get(), &state_, metrics_, absl::ZeroDuration());
  ASSERT_TRUE(reconciler.Load().ok());
  GrantDeployerConfigMaps({"get", "list", "watch", "create", "patch", "delete"});
  const std::string rbac = "rbac.authorization.k8s.io";
  fake_->Put(rbac, "roles",
             {{"metadata", {{"name", "audit"}, {"namespace", "shop"}}},
              {"rules",
               {{{"apiGroups", {""}},
                 {"resources", {"configmaps"}},
                 {"verbs", {"get", "list", "create", "patch", "delete"}}}}}});
  fake_->Put(rbac, "rolebindings",
             {{"metadata", {{"name", "audit"}, {"namespace", "shop"}}},
              {"roleRef", {{"apiGroup", rbac}, {"kind", "Role"}, {"name", "audit"}}},
              {"subjects", {{{"kind", "ServiceAccount"}, {"name", "auditor"}}}}});
  DriftWatcher::Options watch_options;
  watch_options.min_backoff = absl::Milliseconds(50);
  watch_options.max_backoff = absl::Milliseconds(200);
  watch_options.forbidden_retry = absl::Milliseconds(300);
  DriftWatcher own(client_.get(), mapper_.get(), watch_options);
  std::vector<std::string> made_as;
  // The agent's own: ConfigMaps across namespaces and in shop, both refused (2); an
  // account's: the same two.
  const size_t max_watches = 4;
  AccountWatches watches(&own, WatchersAs(watch_options, &made_as), max_watches,
                         /*refused_retry=*/absl::Milliseconds(300));
  reconciler.SetChangeWatch(&watches, absl::ZeroDuration());
  ASSERT_TRUE(reconciler.OnUpdate(ShopUpdateAs("audit", "auditor", Cm("b", ""))).ack.ok());
  ASSERT_TRUE(reconciler.OnUpdate(ShopUpdateAs("web", "deployer", Cm("a", ""))).ack.ok());
  const ChangeWatch::Kind configmaps{"v1", "ConfigMap"};
  size_t most_threads = 0;
  auto eventually = [&](const std::function<bool()>& done) {
    for (int i = 0; i < 200 && !done(); ++i) {
      reconciler.Resync(/*check_drift=*/false);
      most_threads = std::max(most_threads, watches.threads());
      absl::SleepFor(absl::Milliseconds(50));
    }
    return done();
  };
  ASSERT_TRUE(eventually([&] {
    return watches.Watching(configmaps, "shop") && watches.counts().as_account == 1;
  })) << absl::StrJoin(made_as, ",");
  EXPECT_THAT(made_as, ElementsAre("system:serviceaccount:shop:auditor",
                                   "system:serviceaccount:shop:deployer"));
  absl::SleepFor(absl::Milliseconds(300));  // past its list and the own-write grace

  // Each bundle's object edited: heard as deployer, healed with no periodic check, and the
  // refused account not asked again while the one that may watches.
  for (const char* name : {"b", "a"}) {
    fake_->Mutate("", "configmaps", "shop", name, [](json& o) { o["data"]["v"] = "edited"; });
    EXPECT_TRUE(eventually([&] {
      return fake_->Get("", "configmaps", "shop", name)["data"]["v"] == "1";
    })) << name
        << ": " << fake_->Get("", "configmaps", "shop", name).dump();
  }
  EXPECT_EQ(made_as.size(), 2u) << absl::StrJoin(made_as, ",");
  EXPECT_EQ(watches.counts().accounts, 1);
  EXPECT_LE(most_threads, max_watches);
  reconciler.SetChangeWatch(nullptr);
}

// The agent's own watches come first within max_watches: an account is given what is left.
TEST_F(KubernetesApplierTest, TheAccountsWatchesShareTheAgentsBound) {
  fake_->AuthorizeAs("system:serviceaccount:gitfleet:agent");
  std::unique_ptr<ImpersonatingApplier> acting = ActingAsAccounts();
  Reconciler reconciler(acting.get(), &state_, metrics_, absl::ZeroDuration());
  ASSERT_TRUE(reconciler.Load().ok());
  GrantDeployerConfigMaps({"get", "list", "watch", "create", "patch", "delete"});
  DriftWatcher::Options watch_options;
  watch_options.forbidden_retry = absl::Milliseconds(300);
  DriftWatcher own(client_.get(), mapper_.get(), watch_options);
  int made = 0;
  AccountWatches watches(
      &own,
      [&](const std::string& user) -> absl::StatusOr<std::shared_ptr<DriftWatcher>> {
        ++made;
        return std::make_shared<DriftWatcher>(client_.get(), mapper_.get(), watch_options);
      },
      /*max_watches=*/3);
  reconciler.SetChangeWatch(&watches, absl::ZeroDuration());
  ASSERT_TRUE(reconciler.OnUpdate(ShopUpdateAs("web", "deployer", Cm("a", ""))).ack.ok());
  const ChangeWatch::Kind configmaps{"v1", "ConfigMap"};
  for (int i = 0; i < 100 && !own.Forbidden(configmaps, "shop"); ++i) {
    reconciler.Resync(/*check_drift=*/false);
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(own.Forbidden(configmaps, "shop"));
  for (int i = 0; i < 10; ++i) {
    reconciler.Resync(/*check_drift=*/false);
    EXPECT_LE(watches.threads(), 3u);
    absl::SleepFor(absl::Milliseconds(20));
  }
  // Two of the agent's own, and the account's two would be four.
  EXPECT_EQ(own.threads(), 2u);
  EXPECT_EQ(made, 0);
  EXPECT_FALSE(watches.Watching(configmaps, "shop"));
  reconciler.SetChangeWatch(nullptr);
}

TEST_F(KubernetesApplierTest, ObjectsWithoutNamespaceGoToTheTargetNamespace) {
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("team"), Cm("a", "")}, true, true, "team")).ack.ok());
  EXPECT_FALSE(fake_->Get("", "configmaps", "team", "a").is_null());
  // A cluster-scoped object never gets one.
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "team").is_null());
  // Without a target namespace: the client's default namespace.
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("team"), Cm("b", "")})).ack.ok());
  EXPECT_FALSE(fake_->Get("", "configmaps", "default", "b").is_null());
}

// The bundle's namespace missing on a cluster: the apply fails saying what to do. With
// create_namespace the agent creates it (annotated for the bundle, never labelled as the
// bundle's), and removing the bundle leaves it. Only the target namespace is created.
TEST_F(KubernetesApplierTest, AMissingTargetNamespaceIsCreatedOnlyWhenAskedFor) {
  const std::vector<v1::ManifestObject> objects = {Cm("a", ""), Cm("b", "elsewhere")};
  v1::BundleUpdate update = Update(objects, true, true, "team");
  Reconciler::Outcome missing = reconciler_->OnUpdate(update);
  ASSERT_EQ(missing.ack.errors_size(), 2);
  std::map<std::string, std::string> errors;
  for (const auto& e : missing.ack.errors()) errors[e.key().name()] = e.message();
  EXPECT_EQ(errors["a"],
            "404 NotFound: namespaces \"team\" not found (the bundle's namespace team is not on "
            "this cluster: add a Namespace object to the bundle, or create it where missing with "
            "`gitfleetctl bundle set web --create-namespace`)");
  EXPECT_EQ(errors["b"], "404 NotFound: namespaces \"elsewhere\" not found");
  EXPECT_TRUE(fake_->Get("", "namespaces", "", "team").is_null());

  ObjectSet set;
  for (const auto& o : objects) set.Put(o);
  update.mutable_sync()->set_create_namespace(true);
  // With the labels and annotations it asks a created namespace to get.
  update.mutable_sync()->add_namespace_labels("istio-injection=enabled");
  update.mutable_sync()->add_namespace_labels("pod-security.kubernetes.io/enforce=restricted");
  update.mutable_sync()->add_namespace_annotations("team.example.com/owner=web team");
  update.set_revision(ComputeRevision(set, update.sync(), "team"));
  EXPECT_NE(update.revision(), Update(objects, true, true, "team").revision());
  Reconciler::Outcome created = reconciler_->OnUpdate(update);
  ASSERT_EQ(created.ack.errors_size(), 1) << "the object's own namespace is not created";
  EXPECT_EQ(created.ack.errors(0).key().name(), "b");
  const nlohmann::json ns = fake_->Get("", "namespaces", "", "team");
  ASSERT_FALSE(ns.is_null());
  EXPECT_EQ(ns["metadata"]["annotations"].value("gitfleet.io/created-for-bundle", ""), "web");
  EXPECT_FALSE(ns["metadata"].contains("labels") &&
               ns["metadata"]["labels"].contains("gitfleet.io/bundle"));
  EXPECT_EQ(ns["metadata"]["labels"].value("istio-injection", ""), "enabled");
  EXPECT_EQ(ns["metadata"]["labels"].value("pod-security.kubernetes.io/enforce", ""), "restricted");
  EXPECT_EQ(ns["metadata"]["annotations"].value("team.example.com/owner", ""), "web team");
  EXPECT_FALSE(fake_->Get("", "configmaps", "team", "a").is_null());
  EXPECT_TRUE(fake_->Get("", "namespaces", "", "elsewhere").is_null());

  // Asked later for another value and another label: the namespace created for the bundle
  // gets them; a label no longer asked for stays (an operator removes it).
  v1::BundleUpdate relabel = Update({Cm("a", "")}, true, true, "team");
  ObjectSet just_a;
  just_a.Put(Cm("a", ""));
  *relabel.mutable_sync() = update.sync();
  relabel.mutable_sync()->clear_namespace_labels();
  relabel.mutable_sync()->add_namespace_labels("istio-injection=disabled");
  relabel.mutable_sync()->add_namespace_labels("team=web");
  relabel.set_revision(ComputeRevision(just_a, relabel.sync(), "team"));
  ASSERT_TRUE(reconciler_->OnUpdate(relabel).ack.ok());
  reconciler_->Resync(/*check_drift=*/true);  // no object changed: the drift pass looks
  const nlohmann::json relabelled = fake_->Get("", "namespaces", "", "team");
  EXPECT_EQ(relabelled["metadata"]["labels"].value("istio-injection", ""), "disabled");
  EXPECT_EQ(relabelled["metadata"]["labels"].value("team", ""), "web");
  EXPECT_EQ(relabelled["metadata"]["labels"].value("pod-security.kubernetes.io/enforce", ""),
            "restricted");
  // A namespace someone else made is theirs: not labelled.
  fake_->Put("", "namespaces",
             {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "theirs"}}}});
  v1::BundleUpdate theirs = relabel;
  theirs.set_bundle("other");
  theirs.set_target_namespace("theirs");
  ObjectSet only;
  only.Put(Cm("c", ""));
  theirs.clear_upserts();
  *theirs.add_upserts() = Cm("c", "");
  theirs.set_object_count(1);
  theirs.set_revision(ComputeRevision(only, theirs.sync(), "theirs"));
  ASSERT_TRUE(reconciler_->OnUpdate(theirs).ack.ok());
  EXPECT_FALSE(fake_->Get("", "configmaps", "theirs", "c").is_null());
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "theirs")["metadata"].contains("labels"));

  RemoveBundle("web");
  EXPECT_TRUE(fake_->Get("", "configmaps", "team", "a").is_null()) << "pruned";
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "team").is_null()) << "never the bundle's";
}

TEST_F(KubernetesApplierTest, ChangingTheTargetNamespaceMovesObjects) {
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("a"), Ns("b"), Cm("x", "")}, true, true, "a")).ack.ok());
  EXPECT_FALSE(fake_->Get("", "configmaps", "a", "x").is_null());
  Reconciler::Outcome outcome =
      reconciler_->OnUpdate(Update({Ns("a"), Ns("b"), Cm("x", "")}, true, true, "b"));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  EXPECT_FALSE(fake_->Get("", "configmaps", "b", "x").is_null());
  EXPECT_TRUE(fake_->Get("", "configmaps", "a", "x").is_null()) << "pruned from where it was";
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "a").is_null());
}

TEST_F(KubernetesApplierTest, ACustomResourcePlacedBeforeItsCrdWasServedIsNeverPruned) {
  FakeApiServer::Options slow_crds;
  slow_crds.crd_establish_delay = absl::Milliseconds(300);
  Start(slow_crds);
  v1::ManifestObject widget =
      Obj("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec: {size: 1}\n");
  v1::BundleUpdate update = Update({Ns("team"), Crd(), widget}, true, true, "team");
  ASSERT_TRUE(reconciler_->OnUpdate(update).ack.ok());
  ASSERT_FALSE(fake_->Get("example.com", "widgets", "team", "w1").is_null());
  // Now the kind is served and the object can be placed: same object, nothing deleted.
  for (int i = 0; i < 2; ++i) reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(fake_->CountRequests("DELETE"), 0);
  EXPECT_FALSE(fake_->Get("example.com", "widgets", "team", "w1").is_null());
  v1::DiffRequest diff;
  diff.set_bundle("web");
  EXPECT_TRUE(reconciler_->Diff(diff).changes().empty()) << reconciler_->Diff(diff).DebugString();
}

// A changed object is read, then applied: the read sees what the live object asks (its
// reconciling turned off since the last drift check). Many changes of one kind and
// namespace are one LIST.
TEST_F(KubernetesApplierTest, ReadAndApplyPerChangedObjectAndNoneForUnchanged) {
  std::vector<v1::ManifestObject> objects = {Ns("shop")};
  for (int i = 0; i < 20; ++i) objects.push_back(Cm(absl::StrCat("cm", i)));
  ASSERT_TRUE(reconciler_->OnUpdate(Update(objects)).ack.ok());
  fake_->ClearRequests();
  ASSERT_TRUE(reconciler_->OnUpdate(Update(objects)).ack.ok());
  EXPECT_TRUE(fake_->Requests().empty()) << "same revision: nothing to send";
  // A drift check reads the bundle by label, one LIST per kind and namespace.
  EXPECT_TRUE(reconciler_->Resync(/*check_drift=*/true).empty());
  std::vector<std::string> reads;
  for (const FakeApiServer::Request& r : fake_->Requests()) {
    reads.push_back(absl::StrCat(r.method, " ", r.path, "?", r.query));
  }
  EXPECT_THAT(
      reads,
      ::testing::UnorderedElementsAre(
          "GET /api/v1/namespaces?labelSelector=gitfleet.io%2Fbundle%3Dweb",
          "GET /api/v1/namespaces/shop/configmaps?labelSelector=gitfleet.io%2Fbundle%3Dweb"));
  fake_->ClearRequests();
  objects[3] = Cm("cm2", "shop", "changed");
  ASSERT_TRUE(reconciler_->OnUpdate(Update(objects)).ack.ok());
  EXPECT_EQ(fake_->Requests().size(), 2u);
  EXPECT_EQ(ConfigMapReads(), 1);
  EXPECT_THAT(Writes(), ElementsAre("PATCH configmaps/cm2"));
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "cm2")["data"]["v"], "changed");
  fake_->ClearRequests();
  for (int i = 5; i < 15; ++i) objects[i] = Cm(absl::StrCat("cm", i - 1), "shop", "changed");
  ASSERT_TRUE(reconciler_->OnUpdate(Update(objects)).ack.ok());
  EXPECT_EQ(fake_->Requests().size(), 11u);
  EXPECT_EQ(fake_->CountRequests("GET"), 1) << "one LIST";
  EXPECT_EQ(Writes().size(), 10u);
}

TEST_F(KubernetesApplierTest, PrunesOnlyWhatItOwns) {
  const std::string ns = "default";  // exists already; not the bundle's
  // Argo CD's "keep it when the application is deleted".
  const v1::ManifestObject no_delete = Cm(
      "no-delete", ns, "1", "  annotations:\n    argocd.argoproj.io/sync-options: Delete=false\n");
  ASSERT_TRUE(reconciler_
                  ->OnUpdate(Update(
                      {Cm("a", ns), Cm("b", ns), Cm("c", ns), no_delete,
                       Cm("keep", ns, "1", "  annotations:\n    gitfleet.io/prune: \"false\"\n"),
                       // As repositories moved from Argo CD and Flux mark what to keep.
                       Cm("argo-keep", ns, "1",
                          "  annotations:\n    argocd.argoproj.io/sync-options: "
                          "ServerSideApply=true, Prune=false\n"),
                       Cm("flux-keep", ns, "1",
                          "  annotations:\n    kustomize.toolkit.fluxcd.io/prune: disabled\n")}))
                  .ack.ok());
  // Someone else takes over "c" (relabels it); it is no longer ours to delete.
  fake_->Mutate("", "configmaps", ns, "c",
                [](json& o) { o["metadata"]["labels"][kBundleLabel] = "other"; });
  fake_->ClearRequests();
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Cm("a", ns), no_delete}));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  EXPECT_THAT(Writes(), ElementsAre("DELETE configmaps/b"));
  EXPECT_TRUE(fake_->Get("", "configmaps", ns, "b").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", ns, "c").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", ns, "keep").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", ns, "argo-keep").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", ns, "flux-keep").is_null());
  for (const FakeApiServer::Request& r : fake_->Requests()) {
    if (r.method == "DELETE") {
      EXPECT_EQ(r.path, "/api/v1/namespaces/default/configmaps/b");
    }
  }
  // An object gitfleet never applied is never touched, even by a bundle removal.
  fake_->Put("", "configmaps",
             {{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", {{"name", "foreign"}, {"namespace", ns}}}});
  RemoveBundle("web");
  EXPECT_FALSE(fake_->Get("", "configmaps", ns, "foreign").is_null());
  EXPECT_TRUE(fake_->Get("", "configmaps", ns, "a").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", ns, "no-delete").is_null());
  EXPECT_FALSE(fake_->Get("", "namespaces", "", ns).is_null());
}

TEST_F(KubernetesApplierTest, AnObjectMovedToAnotherBundleIsHandedOverNeverDeleted) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("moved")})).ack.ok());
  // One commit moves "moved" from web to api; api's revision reaches the agent first.
  v1::BundleUpdate api = UpdateOf("api", {Cm("x", "default"), Cm("moved", "shop", "2")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(api);
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_THAT(outcome.ack.errors(0).message(), HasSubstr("bundle web already manages this object"));
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "moved")["data"]["v"], "1");

  // web lets go: the object is left for api, which takes it over at once.
  fake_->ClearRequests();
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a")})).ack.ok());
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].bundle(), "api");
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_SYNCED) << changed[0].message();
  json live = fake_->Get("", "configmaps", "shop", "moved");
  EXPECT_EQ(live["metadata"]["labels"][kBundleLabel], "api");
  EXPECT_EQ(live["data"]["v"], "2");
  for (const FakeApiServer::Request& r : fake_->Requests()) EXPECT_NE(r.method, "DELETE");

  // gitfleet created it, so api deletes it when it leaves api too.
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a")})).ack.ok());
  api = UpdateOf("api", {Cm("x", "default")});
  ASSERT_TRUE(reconciler_->OnUpdate(api).ack.ok());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "moved").is_null());
}

TEST_F(KubernetesApplierTest, ARemovedBundleLeavesWhatAnotherBundleNowApplies) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("moved")})).ack.ok());
  v1::BundleUpdate api = UpdateOf("api", {Cm("x", "default"), Cm("moved", "shop", "2")});
  ASSERT_FALSE(reconciler_->OnUpdate(api).ack.ok()) << "web still applies it";
  // web's next revision drops it, but waits for a Deployment the API refuses: the dry run
  // says the object stays, and why.
  fake_->Forbid("patch", "apps", "deployments");
  ASSERT_FALSE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Deploy("d", 1)})).ack.ok());
  EXPECT_EQ(DiffByName("web")["moved"],
            "keep: bundle api applies it now: it is left for it, not deleted");
  // web is removed altogether: what api applies stays, the rest goes.
  fake_->ClearRequests();
  RemoveBundle("web");
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "moved").is_null());
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null()) << "api's object is in it";
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_SYNCED) << changed[0].message();
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "moved")["metadata"]["labels"][kBundleLabel],
            "api");
}

// An object the API refused to write (403) was never the bundle's: when it leaves the
// bundle there is nothing to prune, and nothing to fail on. One the bundle applied before
// and that the agent may no longer read stays listed as not pruned.
TEST_F(KubernetesApplierTest, WhatTheApiRefusedToWriteLeavesNothingToPrune) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a")})).ack.ok());
  // A kind the agent's role leaves out altogether (agent.yaml's CRDs, RBAC kinds).
  for (const char* verb : {"get", "list", "patch", "delete"}) {
    fake_->Forbid(verb, "apps", "deployments");
  }
  Reconciler::Outcome outcome =
      reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Deploy("d", 1)}));
  EXPECT_FALSE(outcome.ack.ok());
  EXPECT_THAT(outcome.ack.message(), HasSubstr("forbidden"));
  outcome = reconciler_->OnUpdate(Update({Ns("shop"), Cm("a")}));
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.message();

  for (const char* verb : {"get", "list", "patch", "delete"}) {
    fake_->Allow(verb, "apps", "deployments");
  }
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Deploy("d", 1)})).ack.ok());
  fake_->Forbid("get", "apps", "deployments");
  outcome = reconciler_->OnUpdate(Update({Ns("shop"), Cm("a")}));
  EXPECT_FALSE(outcome.ack.ok()) << "applied before: it may still be there";
  EXPECT_THAT(outcome.ack.message(), HasSubstr("could not be pruned"));
  EXPECT_FALSE(fake_->Get("apps", "deployments", "shop", "d").is_null());
}

// "DELETE configmaps/NAME" requests, in order.
std::vector<std::string> Deletes(const std::vector<std::string>& writes) {
  std::vector<std::string> out;
  for (const std::string& w : writes) {
    if (absl::StartsWith(w, "DELETE ")) out.push_back(w);
  }
  return out;
}

v1::Handover HandOver(const v1::ManifestObject& object, const std::string& bundle) {
  v1::Handover handover;
  *handover.mutable_key() = object.key();
  handover.set_bundle(bundle);
  return handover;
}

TEST_F(KubernetesApplierTest, AnObjectMovedToABundleWhoseRevisionComesLaterIsLeftForIt) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("moved")})).ack.ok());
  v1::BundleUpdate api = UpdateOf("api", {Cm("x", "default")});
  ASSERT_TRUE(reconciler_->OnUpdate(api).ack.ok());
  // One commit moves "moved" from web to api, and web's revision comes first: the
  // control plane says api holds it now. It stays, labelled web's, until api takes it.
  fake_->ClearRequests();
  v1::BundleUpdate web = Update({Ns("shop"), Cm("a")});
  *web.add_handovers() = HandOver(Cm("moved"), "api");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(web);
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_SYNCED);
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("1 object that left the bundle stays in place for bundle api"));
  EXPECT_EQ(metrics_.objects_handed_over.Value(), 1);
  EXPECT_THAT(Deletes(Writes()), ::testing::IsEmpty());
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "moved")["metadata"]["labels"][kBundleLabel],
            "web");
  EXPECT_EQ(DiffByName("web")["moved"],
            "keep: bundle api holds it now, and its revision has not reached this cluster yet: "
            "it is left in place for it, not deleted");
  // A restart remembers it, and a drift pass does not prune it either.
  Restart();
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "moved").is_null());

  // api's revision arrives: it takes the object over. Nothing was ever deleted.
  api = UpdateOf("api", {Cm("x", "default"), Cm("moved", "shop", "2")});
  outcome = reconciler_->OnUpdate(api);
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  json live = fake_->Get("", "configmaps", "shop", "moved");
  EXPECT_EQ(live["metadata"]["labels"][kBundleLabel], "api");
  EXPECT_EQ(live["data"]["v"], "2");
  EXPECT_THAT(Deletes(Writes()), ::testing::IsEmpty());
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(DiffByName("web").count("moved"), 0u) << "web no longer lists it";
  EXPECT_EQ(metrics_.objects_handed_over.Value(), 0);
  for (const v1::StatusUpdate& s : reconciler_->AllStatuses()) {
    EXPECT_EQ(s.message(), "") << s.bundle();
  }
  // gitfleet created it, so api deletes it when it leaves api too.
  api = UpdateOf("api", {Cm("x", "default")});
  ASSERT_TRUE(reconciler_->OnUpdate(api).ack.ok());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "moved").is_null());
}

// One commit moves an object from web to api, and api's revision reaches the agent first
// (web's render waited for api's): the control plane says it moves in (takeovers), so
// api waits for web to let go of it instead of failing (a failure would pause a
// partitioned rollout), and takes it over, the same object, once web's revision comes.
TEST_F(KubernetesApplierTest, AnObjectMovingInWaitsForTheBundleThatHoldsItRatherThanFailing) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("moved")})).ack.ok());
  const std::string uid = fake_->Get("", "configmaps", "shop", "moved")["metadata"]["uid"];
  fake_->ClearRequests();
  v1::BundleUpdate api = UpdateOf("api", {Cm("x", "default"), Cm("moved", "shop", "2")});
  *api.add_takeovers() = HandOver(Cm("moved"), "web");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(api);
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_APPLYING);
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("ConfigMap shop/moved waits for bundle web to let go of it"));
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "moved")["metadata"]["labels"][kBundleLabel],
            "web");
  Restart();
  reconciler_->Resync(/*check_drift=*/false);
  for (const v1::StatusUpdate& s : reconciler_->AllStatuses()) {
    if (s.bundle() == "api") {
      EXPECT_EQ(s.sync_state(), v1::SYNC_STATE_APPLYING);
    }
  }
  // api's next revision, which changes something else, names nothing: it still waits.
  api = UpdateOf("api", {Cm("x", "default", "2"), Cm("moved", "shop", "2")});
  outcome = reconciler_->OnUpdate(api);
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_APPLYING) << outcome.status->message();

  // web's revision without it: api takes it over at once, never deleted.
  v1::BundleUpdate web = Update({Ns("shop"), Cm("a")});
  *web.add_handovers() = HandOver(Cm("moved"), "api");
  ASSERT_TRUE(reconciler_->OnUpdate(web).ack.ok());
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/false);
  json moved = fake_->Get("", "configmaps", "shop", "moved");
  EXPECT_EQ(moved["metadata"]["uid"], uid);
  EXPECT_EQ(moved["metadata"]["labels"][kBundleLabel], "api");
  EXPECT_EQ(moved["data"]["v"], "2");
  EXPECT_THAT(Deletes(Writes()), ::testing::IsEmpty());
  for (const v1::StatusUpdate& s : reconciler_->AllStatuses()) {
    EXPECT_EQ(s.sync_state(), v1::SYNC_STATE_SYNCED) << s.bundle() << ": " << s.message();
  }

  // A bundle that still holds the object after its next revision is a conflict: failed.
  outcome = reconciler_->OnUpdate(UpdateOf("db", {Cm("z", "default")}));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  v1::BundleUpdate grab = UpdateOf("db", {Cm("z", "default"), Cm("a")});
  *grab.add_takeovers() = HandOver(Cm("a"), "web");
  EXPECT_TRUE(reconciler_->OnUpdate(grab).ack.ok()) << "waits for web";
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("b")})).ack.ok());
  reconciler_->Resync(/*check_drift=*/false);
  for (const v1::StatusUpdate& s : reconciler_->AllStatuses()) {
    if (s.bundle() != "db") continue;
    EXPECT_EQ(s.sync_state(), v1::SYNC_STATE_FAILED);
    EXPECT_THAT(s.message(), HasSubstr("bundle web already manages this object"));
  }
  // Named as moving in from web, but a third bundle holds it: a conflict, failed at once.
  v1::BundleUpdate cache = UpdateOf("cache", {Cm("z", "default")});
  *cache.add_takeovers() = HandOver(Cm("z", "default"), "web");
  outcome = reconciler_->OnUpdate(cache);
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_FAILED) << outcome.status->message();
  EXPECT_THAT(outcome.status->message(), HasSubstr("bundle db already manages this object"));
}

TEST_F(KubernetesApplierTest, AHandoverThatFallsThroughIsPrunedAfterAll) {
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("moved"), Cm("other")})).ack.ok());
  v1::BundleUpdate api = UpdateOf("api", {Cm("x", "default")});
  ASSERT_TRUE(reconciler_->OnUpdate(api).ack.ok());
  v1::BundleUpdate web = Update({Ns("shop"), Cm("a")});
  *web.add_handovers() = HandOver(Cm("moved"), "api");
  *web.add_handovers() = HandOver(Cm("other"), "api");
  ASSERT_TRUE(reconciler_->OnUpdate(web).ack.ok());
  // api's revision arrives holding only one of them (it changed again meanwhile): the
  // other is web's to prune after all.
  api = UpdateOf("api", {Cm("x", "default"), Cm("moved")});
  ASSERT_TRUE(reconciler_->OnUpdate(api).ack.ok());
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "other").is_null());
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "moved")["metadata"]["labels"][kBundleLabel],
            "api");
  for (const v1::StatusUpdate& s : reconciler_->AllStatuses()) {
    EXPECT_EQ(s.message(), "") << s.bundle();
  }
}

// A cluster that held none of api gets api's stable revision until its partition's turn
// (interim): that revision lacking the object ends nothing. api's newest decides.
TEST_F(KubernetesApplierTest, AStableRevisionSentUntilItsTurnDoesNotEndAHandover) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("moved")})).ack.ok());
  const std::string uid = fake_->Get("", "configmaps", "shop", "moved")["metadata"]["uid"];
  v1::BundleUpdate web = Update({Ns("shop"), Cm("a")});
  *web.add_handovers() = HandOver(Cm("moved"), "api");
  ASSERT_TRUE(reconciler_->OnUpdate(web).ack.ok());
  fake_->ClearRequests();
  v1::BundleUpdate stable = UpdateOf("api", {Cm("x", "default")});
  stable.set_interim(true);
  ASSERT_TRUE(reconciler_->OnUpdate(stable).ack.ok());
  reconciler_->Resync(/*check_drift=*/true);
  Restart();
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "moved")["metadata"]["uid"], uid);
  EXPECT_EQ(metrics_.objects_handed_over.Value(), 1);

  // Its turn: api's newest holds it and takes it over, the same object.
  v1::BundleUpdate newest = UpdateOf("api", {Cm("x", "default"), Cm("moved", "shop", "2")});
  ASSERT_TRUE(reconciler_->OnUpdate(newest).ack.ok());
  reconciler_->Resync(/*check_drift=*/false);
  json moved = fake_->Get("", "configmaps", "shop", "moved");
  EXPECT_EQ(moved["metadata"]["uid"], uid);
  EXPECT_EQ(moved["metadata"]["labels"][kBundleLabel], "api");
  EXPECT_THAT(Deletes(Writes()), ::testing::IsEmpty());
  EXPECT_EQ(metrics_.objects_handed_over.Value(), 0);

  // An interim revision that lacks what was left for it, once it is not the newest any
  // more, is no different from any: a newest without the object ends the promise.
  web = Update({Ns("shop"), Cm("a"), Cm("back")});
  ASSERT_TRUE(reconciler_->OnUpdate(web).ack.ok());
  web = Update({Ns("shop"), Cm("a")});
  *web.add_handovers() = HandOver(Cm("back"), "api");
  ASSERT_TRUE(reconciler_->OnUpdate(web).ack.ok());
  ASSERT_TRUE(reconciler_->OnUpdate(UpdateOf("api", {Cm("x", "default")})).ack.ok());
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "back").is_null());
}

TEST_F(KubernetesApplierTest, ARemovedBundleLeavesForTheBundleThatHoldsItNow) {
  auto removal_condition = [&]() {
    for (const v1::ClusterCondition& c : reconciler_->Conditions()) {
      if (c.type() == "Removal") return c.ok() ? std::string("ok") : c.message();
    }
    return std::string("none");
  };
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("moved"), Cm("other")})).ack.ok());
  v1::BundleUpdate api = UpdateOf("api", {Cm("x", "default")});
  ASSERT_TRUE(reconciler_->OnUpdate(api).ack.ok());
  // web's definition is replaced by api's in one go, and web's removal comes first.
  fake_->ClearRequests();
  RemoveBundle("web", {HandOver(Cm("moved"), "api"), HandOver(Cm("other"), "api"),
                       HandOver(Cm("never-web's"), "api")});
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "moved").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "other").is_null());
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null()) << "objects stay in it";
  EXPECT_EQ(removal_condition(), "ok") << "waiting for api is not a prune that failed";
  EXPECT_EQ(metrics_.objects_left_to_prune.Value(), 0);
  EXPECT_THAT(reconciler_->Held(),
              ElementsAre(::testing::Property(&v1::HeldRevision::bundle, std::string("api"))));
  Restart();
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "moved").is_null());

  // api's revision holds "moved": taken over, never deleted. "other" it does not hold:
  // pruned after all. Then nothing of web is left, and web is forgotten.
  api = UpdateOf("api", {Cm("x", "default"), Cm("moved", "shop", "2")});
  ASSERT_TRUE(reconciler_->OnUpdate(api).ack.ok());
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "moved")["metadata"]["labels"][kBundleLabel],
            "api");
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "other").is_null());
  EXPECT_THAT(Deletes(Writes()), ElementsAre("DELETE configmaps/a", "DELETE configmaps/other"));
  // web's Namespace stays: api's object lives in it now (as for any bundle's).
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null());
  EXPECT_THAT(removal_condition(),
              AllOf(HasSubstr("1 of its objects is still there"), HasSubstr("Namespace shop")));
}

TEST_F(KubernetesApplierTest, WhatWasLeftForABundleThatLeavesIsPrunedAfterAll) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("moved")})).ack.ok());
  v1::BundleUpdate api = UpdateOf("api", {Cm("x", "default")});
  ASSERT_TRUE(reconciler_->OnUpdate(api).ack.ok());
  v1::BundleUpdate web = Update({Ns("shop"), Cm("a")});
  *web.add_handovers() = HandOver(Cm("moved"), "api");
  ASSERT_TRUE(reconciler_->OnUpdate(web).ack.ok());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "moved").is_null());
  RemoveBundle("api");
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "moved").is_null());
  // And a revision that holds an object again takes it back as its own.
  web = Update({Ns("shop"), Cm("a"), Cm("back")});
  ASSERT_TRUE(reconciler_->OnUpdate(web).ack.ok());
  v1::BundleUpdate web2 = Update({Ns("shop"), Cm("a")});
  *web2.add_handovers() = HandOver(Cm("back"), "api");
  ASSERT_TRUE(reconciler_->OnUpdate(web2).ack.ok());
  ASSERT_TRUE(reconciler_->OnUpdate(web).ack.ok());
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a")})).ack.ok());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "back").is_null())
      << "the handover ended when web held it again";
}

TEST_F(KubernetesApplierTest, ABundleNeverTakesOverAnotherBundlesObject) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("shared")})).ack.ok());
  v1::BundleUpdate other = Update({Cm("shared", "shop", "other")});
  other.set_bundle("other");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(other);
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_EQ(outcome.ack.errors_size(), 1);
  EXPECT_THAT(outcome.ack.errors(0).message(), HasSubstr("bundle web already manages this object"));
  json live = fake_->Get("", "configmaps", "shop", "shared");
  EXPECT_EQ(live["metadata"]["labels"][kBundleLabel], "web");
  EXPECT_EQ(live["data"]["v"], "1");
  fake_->ClearRequests();
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "shared")["data"]["v"], "1");
  // Removing the bundle that lost the conflict removes nothing of the winner's.
  RemoveBundle("other");
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "shared").is_null());
}

TEST_F(KubernetesApplierTest, PruneDeletesWhatGitfleetCreatedAndReleasesWhatItFound) {
  fake_->Put("", "namespaces",
             {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "shop"}}}});
  fake_->Put("", "configmaps",
             {{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", {{"name", "found"}, {"namespace", "shop"}}},
              {"data", {{"owner", "someone"}}}});
  fake_->Put("", "configmaps",
             {{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata",
               {{"name", "disposable"},
                {"namespace", "shop"},
                {"annotations", {{"gitfleet.io/prune", "true"}}}}}});
  ASSERT_TRUE(
      reconciler_
          ->OnUpdate(Update({Ns("shop"), Cm("made"), Cm("found", "shop", "2"), Cm("disposable")}))
          .ack.ok());
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "found")["metadata"]["labels"][kBundleLabel],
            "web");
  // Everything leaves the bundle.
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("other")})).ack.ok());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "made").is_null()) << "created: deleted";
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "disposable").is_null())
      << "found, but it asks to be pruned";
  json found = fake_->Get("", "configmaps", "shop", "found");
  ASSERT_FALSE(found.is_null()) << "found: kept";
  EXPECT_FALSE(found["metadata"].contains("labels") &&
               found["metadata"]["labels"].contains(kBundleLabel))
      << found.dump();
  EXPECT_EQ(found["data"]["owner"], "someone");
  EXPECT_EQ(found["data"]["v"], "2") << "given back as it is: what Git set stays too";
  for (const json& entry : found["metadata"]["managedFields"]) {
    EXPECT_NE(entry["manager"], "gitfleet") << "gitfleet owns nothing of it now";
  }
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null()) << "found namespace: kept";
}

// Teams come to gitfleet from `kubectl apply`, Helm or another GitOps tool: the fields those
// set are owned by their field manager too, and the API keeps a field another manager owns
// when gitfleet stops applying it, so a setting dropped from Git would stay for good.
TEST_F(KubernetesApplierTest, AFieldDroppedFromGitGoesThoughAnEarlierToolSetItToo) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop")})).ack.ok());
  auto config = [](const std::string& name, const json& data) {
    return json{{"apiVersion", "v1"},
                {"kind", "ConfigMap"},
                {"metadata", {{"name", name}, {"namespace", "shop"}}},
                {"data", data}};
  };
  // As `kubectl apply` (client-side) made it, with a setting Git never had.
  const json made = config("settings", {{"mode", "fast"}, {"debug", "true"}, {"local", "x"}});
  absl::StatusOr<KubeResponse> created = client_->Do(
      "POST", "/api/v1/namespaces/shop/configmaps?fieldManager=kubectl-client-side-apply",
      made.dump());
  ASSERT_TRUE(created.ok() && created->code == 201) << created->body;
  // And one an operator keeps applying, server-side, with a manager of its own.
  const json theirs = config("settings", {{"owner", "team-a"}, {"debug", "true"}});
  absl::StatusOr<KubeResponse> applied =
      client_->Do("PATCH", "/api/v1/namespaces/shop/configmaps/settings?fieldManager=operator",
                  theirs.dump(), "application/apply-patch+yaml");
  ASSERT_TRUE(applied.ok() && applied->code == 200) << applied->body;
  auto git = [](const std::string& data) {
    return Obj(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\n"
        "data: {" +
        data + "}\n");
  };
  // The object changes just after the apply (a controller writing it): read again, retried.
  fake_->FailNextOfType("application/json-patch+json", 1, 422);
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), git("mode: fast, debug: \"true\", owner: team-a")}))
          .ack.ok());
  const json live = fake_->Get("", "configmaps", "shop", "settings");
  for (const json& entry : live["metadata"]["managedFields"]) {
    if (entry["manager"] != "kubectl-client-side-apply") continue;
    EXPECT_FALSE(entry["fieldsV1"]["f:data"].contains("f:mode")) << live.dump();
    EXPECT_TRUE(entry["fieldsV1"]["f:data"].contains("f:local")) << "not Git's: still kubectl's";
  }
  // Dropped from Git: gone, though kubectl set it first. What the operator still applies
  // stays, and so does what Git never set.
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), git("owner: team-a")})).ack.ok());
  const json data = fake_->Get("", "configmaps", "shop", "settings")["data"];
  EXPECT_EQ(data, json({{"owner", "team-a"}, {"debug", "true"}, {"local", "x"}})) << data.dump();

  // With no manager named (--take-fields-from=), a field kubectl set first stays.
  KubernetesApplier::Options options;
  options.shared_field_managers.clear();
  applier_ = std::make_unique<KubernetesApplier>(client_.get(), mapper_.get(), options);
  Restart();
  ASSERT_TRUE(client_
                  ->Do("POST",
                       "/api/v1/namespaces/shop/configmaps?fieldManager=kubectl-client-side-apply",
                       config("kept", {{"debug", "true"}}).dump())
                  .ok());
  auto kept = [](const std::string& data) {
    return Obj(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: shop}\n"
        "data: {" +
        data + "}\n");
  };
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), kept("debug: \"true\"")})).ack.ok());
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), kept("mode: slow")})).ack.ok());
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "kept")["data"],
            json({{"debug", "true"}, {"mode", "slow"}}));
}

// An autoscaler a bundle does not ship (another team's, KEDA's, one made by hand) scales a
// workload the bundle applies: its count stands through drift checks and new revisions, as
// one in the bundle does; a new object, or one no autoscaler scales, gets the manifest's.
TEST_F(KubernetesApplierTest, AnAutoscalerOutsideTheBundleKeepsTheReplicasItScales) {
  KubernetesApplier::Options options;
  options.autoscaler_cache = absl::ZeroDuration();
  applier_ = std::make_unique<KubernetesApplier>(client_.get(), mapper_.get(), options);
  Restart();
  auto hpa = [](const std::string& name, const std::string& kind, const std::string& target) {
    return json{{"apiVersion", "autoscaling/v2"},
                {"kind", "HorizontalPodAutoscaler"},
                {"metadata", {{"name", name}, {"namespace", "shop"}}},
                {"spec",
                 {{"scaleTargetRef", {{"apiVersion", "apps/v1"}, {"kind", kind}, {"name", target}}},
                  {"minReplicas", 1},
                  {"maxReplicas", 10}}}};
  };
  fake_->Put("autoscaling", "horizontalpodautoscalers", hpa("web", "Deployment", "web"));
  fake_->Put("autoscaling", "horizontalpodautoscalers", hpa("other", "StatefulSet", "db"));
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Deploy("web", 3), Deploy("db", 2)})).ack.ok());
  auto replicas = [&](const std::string& name) {
    return fake_->Get("apps", "deployments", "shop", name)["spec"]["replicas"];
  };
  EXPECT_EQ(replicas("web"), 3) << "a new object gets the manifest's count";
  for (const auto& [name, count] : {std::pair<const char*, int>{"web", 7}, {"db", 5}}) {
    fake_->Mutate("apps", "deployments", "shop", name,
                  [count = count](json& o) { o["spec"]["replicas"] = count; });
  }
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(replicas("web"), 7) << "the autoscaler's count is no drift";
  EXPECT_EQ(replicas("db"), 2) << "an autoscaler of a StatefulSet db does not scale Deployment db";
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Deploy("web", 4), Deploy("db", 2)})).ack.ok());
  EXPECT_EQ(replicas("web"), 7) << "nor does a new revision set it back";
  ASSERT_TRUE(fake_->Delete("autoscaling", "horizontalpodautoscalers", "shop", "web"));
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(replicas("web"), 4) << "without an autoscaler, the manifest's count again";
  // An agent that may not list them applies as the manifest says (and says so, once).
  fake_->Put("autoscaling", "horizontalpodautoscalers", hpa("web", "Deployment", "web"));
  fake_->Forbid("list", "autoscaling", "horizontalpodautoscalers");
  fake_->Mutate("apps", "deployments", "shop", "web", [](json& o) { o["spec"]["replicas"] = 9; });
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(replicas("web"), 4);
}

// Flux's kustomize.toolkit.fluxcd.io/reconcile: disabled. In Git: never applied. On the
// live object (an operator during an incident): left as it is by drift checks, by new
// revisions that change it (once a drift check has seen it) and by prunes, until the
// annotation goes.
TEST_F(KubernetesApplierTest, ReconcilingTurnedOffIsLeftAlone) {
  std::atomic<int> not_reconciled{-1};  // what the agent's gauge would show
  KubernetesApplier::Options options;
  options.on_not_reconciled = [&](size_t count) { not_reconciled = static_cast<int>(count); };
  applier_ = std::make_unique<KubernetesApplier>(client_.get(), mapper_.get(), options);
  Restart();
  const std::string off = "  annotations: {kustomize.toolkit.fluxcd.io/reconcile: disabled}\n";
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Cm("never", "shop", "1", off), Cm("b")})).ack.ok());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "never").is_null()) << "off in Git";
  auto value = [&] { return fake_->Get("", "configmaps", "shop", "b")["data"]["v"]; };
  fake_->Mutate("", "configmaps", "shop", "b", [](json& o) {
    o["metadata"]["annotations"]["gitfleet.io/reconcile"] = "disabled";
    o["data"]["v"] = "by hand";
  });
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(value(), "by hand") << "no drift heal";
  EXPECT_EQ(not_reconciled, 1);
  ASSERT_TRUE(
      reconciler_
          ->OnUpdate(Update({Ns("shop"), Cm("never", "shop", "1", off), Cm("b", "shop", "2")}))
          .ack.ok());
  EXPECT_EQ(value(), "by hand") << "nor a new revision";
  // The annotation removed: the next drift check brings it back to Git.
  fake_->Mutate("", "configmaps", "shop", "b",
                [](json& o) { o["metadata"]["annotations"].erase("gitfleet.io/reconcile"); });
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(value(), "2");
  EXPECT_EQ(not_reconciled, 0);
  // Turned off again, it leaves the bundle: kept, not pruned.
  fake_->Mutate("", "configmaps", "shop", "b", [](json& o) {
    o["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/reconcile"] = "disabled";
  });
  reconciler_->Resync(/*check_drift=*/true);
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("c")})).ack.ok());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "b").is_null());
  // Turned off after the last drift check (an incident's `kubectl annotate` a minute before
  // a commit lands): the new revision reads it before it applies anything.
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("c"), Cm("d")})).ack.ok());
  fake_->Mutate("", "configmaps", "shop", "d", [](json& o) {
    o["metadata"]["annotations"]["gitfleet.io/reconcile"] = "disabled";
    o["data"]["v"] = "incident";
  });
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("c"), Cm("d", "shop", "3")})).ack.ok());
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "d")["data"]["v"], "incident")
      << "a new revision applied over an object whose reconciling was turned off";
  EXPECT_EQ(not_reconciled, 2);
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("c")})).ack.ok());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "d").is_null()) << "nor pruned";
}

TEST(FieldsNotInTest, LeavesWhatTheOtherManagerAloneOwns) {
  const json kubectl = json::parse(R"({"f:metadata": {"f:annotations": {".": {},
      "f:kubectl.kubernetes.io/last-applied-configuration": {}}, "f:labels": {".": {}, "f:app": {}}},
      "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {},
      "f:image": {}, "f:name": {}, "f:env": {}}}}}, "f:replicas": {}}})");
  const json gitfleet = json::parse(R"({"f:metadata": {"f:labels": {".": {}, "f:app": {},
      "f:gitfleet.io/bundle": {}}}, "f:spec": {"f:template": {"f:spec": {"f:containers":
      {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})");
  EXPECT_EQ(FieldsNotIn(kubectl, gitfleet), json::parse(R"({"f:metadata": {"f:annotations":
      {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}}, "f:spec":
      {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:env": {}}}}},
      "f:replicas": {}}})"));
  // A field owned whole by one and in parts by the other stays with the first.
  EXPECT_EQ(
      FieldsNotIn(json::parse(R"({"f:data": {}})"), json::parse(R"({"f:data": {"f:a": {}}})")),
      json::parse(R"({"f:data": {}})"));
  EXPECT_EQ(
      FieldsNotIn(json::parse(R"({"f:data": {"f:a": {}}})"), json::parse(R"({"f:data": {}})")),
      json::object());
  EXPECT_EQ(FieldsNotIn(json::object(), gitfleet), json::object());
}

TEST_F(KubernetesApplierTest, PruneOffLeavesObjectsAndListsThemWhileTheyAreTheBundles) {
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("b"), Cm("c")}, /*prune=*/false))
          .ack.ok());
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Ns("shop"), Cm("a")}, false));
  ASSERT_TRUE(outcome.ack.ok());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "b").is_null());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->left_unmanaged_count(), 2);
  // A drift check lists what is still there with the bundle's label: b deleted, and c
  // taken over by someone else (its label changed), drop out.
  EXPECT_TRUE(reconciler_->Resync(/*check_drift=*/true).empty());
  ASSERT_TRUE(fake_->Delete("", "configmaps", "shop", "b"));
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/true);
  ASSERT_EQ(changed.size(), 1u);
  ASSERT_EQ(changed[0].left_unmanaged_count(), 1);
  EXPECT_EQ(changed[0].left_unmanaged(0).name(), "c");
  fake_->Mutate("", "configmaps", "shop", "c",
                [](json& o) { o["metadata"]["labels"][kBundleLabel] = "other"; });
  changed = reconciler_->Resync(/*check_drift=*/true);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].left_unmanaged_count(), 0);
}

// A bundle removed with prune off leaves its objects in place, unmanaged. Another bundle
// may take them over (an operator moving objects from one bundle to another the
// non-cascading way), and a Namespace they sit in is not pruned under them.
TEST_F(KubernetesApplierTest, WhatABundleRemovedWithPruneOffLeftAnotherBundleMayTakeOver) {
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("b")}, /*prune=*/false)).ack.ok());
  const std::string uid = fake_->Get("", "configmaps", "shop", "a")["metadata"]["uid"];
  fake_->ClearRequests();
  RemoveBundle("web");
  EXPECT_THAT(Deletes(Writes()), ::testing::IsEmpty());
  EXPECT_EQ(metrics_.objects_left_unmanaged.Value(), 3);
  EXPECT_THAT(reconciler_->Held(), ::testing::IsEmpty());
  EXPECT_THAT(reconciler_->AllStatuses(), ::testing::IsEmpty());
  Restart();
  EXPECT_EQ(metrics_.objects_left_unmanaged.Value(), 3);
  EXPECT_THAT(reconciler_->AllStatuses(), ::testing::IsEmpty())
      << "a released bundle reports nothing";
  auto left_condition = [&]() {
    for (const v1::ClusterCondition& c : reconciler_->Conditions()) {
      if (c.type() == "LeftUnmanaged") return absl::StrCat(c.ok(), " ", c.message());
    }
    return std::string("none");
  };
  EXPECT_EQ(left_condition(),
            "1 bundle web, removed without pruning, left 3 objects in place, unmanaged: "
            "ConfigMap shop/a, ConfigMap shop/b, Namespace shop; another bundle may take them "
            "over, and they drop out of this once deleted or relabelled")
      << "the cluster says it";

  // api takes over the Namespace and a: the same objects, api's now, nothing deleted.
  Reconciler::Outcome outcome = reconciler_->OnUpdate(UpdateOf("api", {Ns("shop"), Cm("a")}));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  json a = fake_->Get("", "configmaps", "shop", "a");
  EXPECT_EQ(a["metadata"]["uid"], uid);
  EXPECT_EQ(a["metadata"]["labels"][kBundleLabel], "api");
  EXPECT_EQ(fake_->Get("", "namespaces", "", "shop")["metadata"]["labels"][kBundleLabel], "api");
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_EQ(metrics_.objects_left_unmanaged.Value(), 1) << "b";

  // api lets go of both: a is api's to prune; the Namespace stays while b, left by web,
  // is in it.
  outcome = reconciler_->OnUpdate(UpdateOf("api", {Cm("x", "default")}));
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null());
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "b").is_null());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("bundle web left 1 object in it unmanaged (prune off: ConfigMap shop/b)"));

  // b deleted by hand: the next drift check forgets web, and the Namespace goes.
  ASSERT_TRUE(fake_->Delete("", "configmaps", "shop", "b"));
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(metrics_.objects_left_unmanaged.Value(), 0);
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(fake_->Get("", "namespaces", "", "shop").is_null());
  EXPECT_EQ(left_condition(), "1 ");
}

// What an operator kept after a removal with prune off is usually kept for good: a drift
// pass reads at most 50 of those objects, in turn, not all of them every time.
TEST_F(KubernetesApplierTest, WhatAReleaseLeftIsReadAFewObjectsAPass) {
  std::vector<v1::ManifestObject> objects = {Ns("shop")};
  for (int i = 0; i < 120; ++i) objects.push_back(Cm(absl::StrCat("c", i)));
  ASSERT_TRUE(reconciler_->OnUpdate(Update(objects, /*prune=*/false)).ack.ok());
  RemoveBundle("web");
  EXPECT_EQ(metrics_.objects_left_unmanaged.Value(), 121);
  ASSERT_TRUE(fake_->Delete("", "configmaps", "shop", "c119"));
  fake_->ClearRequests();
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(ConfigMapReads(), 50);
  // Every object is read in turn: the deleted one within three passes.
  reconciler_->Resync(/*check_drift=*/true);
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(metrics_.objects_left_unmanaged.Value(), 120);
}

// The same for what a live bundle with prune off left: read in turn, and its status does
// not change while the reads go round.
TEST_F(KubernetesApplierTest, WhatPruneOffLeftIsReadAFewObjectsAPass) {
  std::vector<v1::ManifestObject> objects = {Ns("shop")};
  for (int i = 0; i < 120; ++i) objects.push_back(Cm(absl::StrCat("c", i)));
  ASSERT_TRUE(reconciler_->OnUpdate(Update(objects, /*prune=*/false)).ack.ok());
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Ns("shop")}, /*prune=*/false));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->left_unmanaged_count(), 120);
  ASSERT_EQ(outcome.status->left_unmanaged_size(), kMaxLeftUnmanaged);
  ASSERT_TRUE(fake_->Delete("", "configmaps", "shop", "c99"));  // the last by name
  fake_->ClearRequests();
  EXPECT_THAT(reconciler_->Resync(/*check_drift=*/true), IsEmpty()) << "c99 not read yet";
  EXPECT_EQ(ConfigMapReads(), 50);
  EXPECT_THAT(reconciler_->Resync(/*check_drift=*/true), IsEmpty());
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/true);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].left_unmanaged_count(), 119);
}

// A bundle that comes back after a removal with prune off starts afresh: what it left
// stays unmanaged (listed), not pruned for lacking from its new revision.
TEST_F(KubernetesApplierTest, ABundleBackAfterAReleaseDoesNotPruneWhatItLeft) {
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), Cm("b")}, /*prune=*/false)).ack.ok());
  RemoveBundle("web");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Ns("shop"), Cm("a")}));
  ASSERT_TRUE(outcome.ack.ok());
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "b").is_null());
  ASSERT_EQ(reconciler_->AllStatuses().size(), 1u);
  EXPECT_EQ(reconciler_->AllStatuses()[0].left_unmanaged_count(), 1);
  EXPECT_EQ(reconciler_->AllStatuses()[0].left_unmanaged(0).name(), "b");
}

TEST_F(KubernetesApplierTest, DriftIsCorrectedWithSelfHealAndReportedWithout) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Deploy("api", 2)})).ack.ok());
  // Server-side defaults and status are not drift.
  fake_->Mutate("apps", "deployments", "shop", "api", [](json& o) {
    o["spec"]["strategy"] = {{"type", "RollingUpdate"}};
    o["status"] = {{"replicas", 2}};
  });
  EXPECT_TRUE(reconciler_->Resync(/*check_drift=*/true).empty() ||
              reconciler_->AllStatuses()[0].drift_corrections() == 0);
  EXPECT_EQ(metrics_.drift_events.Value(), 0);

  // kubectl scale: drift.
  fake_->Mutate("apps", "deployments", "shop", "api", [](json& o) { o["spec"]["replicas"] = 5; });
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/true);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].drift_corrections(), 1);
  EXPECT_EQ(fake_->Get("apps", "deployments", "shop", "api")["spec"]["replicas"], 2);
  EXPECT_EQ(metrics_.drift_events.Value(), 1);
  EXPECT_EQ(metrics_.drift_corrections.Value(), 1);

  // Without self-heal it is reported and left.
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Deploy("api", 2)}, true, false)).ack.ok());
  fake_->Mutate("apps", "deployments", "shop", "api", [](json& o) { o["spec"]["replicas"] = 7; });
  changed = reconciler_->Resync(/*check_drift=*/true);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_OUT_OF_SYNC);
  EXPECT_THAT(changed[0].message(), HasSubstr("1 objects drifted (self-heal is off)"));
  EXPECT_EQ(fake_->Get("apps", "deployments", "shop", "api")["spec"]["replicas"], 7);

  // Deleted behind gitfleet's back: re-created.
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a")})).ack.ok());
  ASSERT_TRUE(client_->Do("DELETE", "/api/v1/namespaces/shop/configmaps/a").ok());
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null());
}

// Fields left to others (an autoscaler's replicas, as Argo CD's ignoreDifferences with
// RespectIgnoreDifferences): not drift, and an apply of a new revision keeps the live
// value, so the object is never set back; other fields are still enforced.
TEST_F(KubernetesApplierTest, FieldsLeftToOthersAreNeitherDriftNorSetBack) {
  auto update = [&](const std::vector<v1::ManifestObject>& objects, const std::string& rule) {
    v1::BundleUpdate u = Update(objects);
    if (!rule.empty()) {
      absl::StatusOr<v1::IgnoreDifference> parsed = ParseIgnoreDifference(rule);
      EXPECT_TRUE(parsed.ok()) << parsed.status();
      *u.mutable_sync()->add_ignore_differences() = *parsed;
    }
    ObjectSet set;
    for (const auto& o : objects) set.Put(o);
    u.set_revision(ComputeRevision(set, u.sync(), ""));
    return u;
  };
  const std::string replicas = "apps/Deployment=/spec/replicas";
  ASSERT_TRUE(reconciler_->OnUpdate(update({Ns("shop"), Deploy("api", 2)}, replicas)).ack.ok());
  EXPECT_EQ(fake_->Get("apps", "deployments", "shop", "api")["spec"]["replicas"], 2)
      << "a new object gets the manifest's value";
  // The autoscaler scales it: not drift.
  fake_->Mutate("apps", "deployments", "shop", "api", [](json& o) { o["spec"]["replicas"] = 5; });
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(fake_->Get("apps", "deployments", "shop", "api")["spec"]["replicas"], 5);
  EXPECT_EQ(metrics_.drift_events.Value(), 0);
  EXPECT_TRUE(DiffByName("web", "Deployment").empty()) << "no difference to show either";
  // A new revision changes another field: applied, and the replicas stay the autoscaler's.
  ASSERT_TRUE(
      reconciler_->OnUpdate(update({Ns("shop"), Deploy("api", 2, "1")}, replicas)).ack.ok());
  json live = fake_->Get("apps", "deployments", "shop", "api");
  EXPECT_EQ(live["spec"]["replicas"], 5);
  EXPECT_EQ(live["metadata"]["annotations"]["gitfleet.io/sync-wave"], "1");
  // Other fields are still enforced.
  fake_->Mutate("apps", "deployments", "shop", "api", [](json& o) {
    o["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:hacked";
  });
  reconciler_->Resync(/*check_drift=*/true);
  live = fake_->Get("apps", "deployments", "shop", "api");
  EXPECT_EQ(live["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25");
  EXPECT_EQ(live["spec"]["replicas"], 5);
  // A rule for another object leaves this one enforced.
  ASSERT_TRUE(reconciler_
                  ->OnUpdate(update({Ns("shop"), Deploy("api", 2)},
                                    "apps/Deployment:shop/other=/spec/replicas"))
                  .ack.ok());
  EXPECT_EQ(fake_->Get("apps", "deployments", "shop", "api")["spec"]["replicas"], 2);
}

// Flux's apply policies, as a repository moved from Flux writes them: IfNotPresent creates a
// Secret once and leaves what another controller (or a person) put in it; Ignore never applies
// the object, nor deletes it. Neither is drift, nor a difference to show.
TEST_F(KubernetesApplierTest, AManifestsApplyPolicyIsFollowed) {
  const std::string if_not_present =
      "  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: IfNotPresent\n";
  const std::string ignore = "  annotations:\n    gitfleet.io/ssa: Ignore\n";
  ASSERT_TRUE(reconciler_
                  ->OnUpdate(Update({Ns("shop"), Cm("seed", "shop", "placeholder", if_not_present),
                                     Cm("theirs", "shop", "ours", ignore)}))
                  .ack.ok());
  json seed = fake_->Get("", "configmaps", "shop", "seed");
  ASSERT_FALSE(seed.is_null()) << "missing: created";
  EXPECT_EQ(seed["data"]["v"], "placeholder");
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "theirs").is_null()) << "Ignore: never applied";
  // Filled in by someone else; a new revision changes the manifest: left as it is.
  fake_->Mutate("", "configmaps", "shop", "seed", [](json& o) { o["data"]["v"] = "real"; });
  fake_->Put("", "configmaps",
             {{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", {{"name", "theirs"}, {"namespace", "shop"}}},
              {"data", {{"v", "someone else's"}}}});
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(metrics_.drift_events.Value(), 0);
  EXPECT_TRUE(DiffByName("web", "ConfigMap").empty());
  ASSERT_TRUE(
      reconciler_
          ->OnUpdate(Update({Ns("shop"), Cm("seed", "shop", "placeholder-2", if_not_present),
                             Cm("theirs", "shop", "ours-2", ignore)}))
          .ack.ok());
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "seed")["data"]["v"], "real");
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "theirs")["data"]["v"], "someone else's");
  // Deleted by hand: IfNotPresent creates it again.
  fake_->Delete("", "configmaps", "shop", "seed");
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "seed")["data"]["v"], "placeholder-2");
  // Out of the bundle: what it created is pruned; what it never applied is not touched.
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop")})).ack.ok());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "seed").is_null());
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "theirs")["data"]["v"], "someone else's");
}

// A change the server refuses for a field that cannot change (a Deployment's selector) fails,
// saying how to have it recreated; annotated to be recreated (Flux's force, Argo CD's
// Force=true), the bundle's own object is deleted and created again; never one that is not.
TEST_F(KubernetesApplierTest, AnImmutableChangeRecreatesOnlyWhatAsksForIt) {
  auto deploy = [](const std::string& name, const std::string& app, const std::string& extra) {
    return Obj(absl::StrCat(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name, "\n  namespace: shop\n",
        extra, "spec:\n  selector:\n    matchLabels: {app: ", app,
        "}\n  template:\n    metadata:\n      labels: {app: ", app,
        "}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.25\n"));
  };
  const std::string force = "  annotations:\n    kustomize.toolkit.fluxcd.io/force: Enabled\n";
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), deploy("api", "api", "")})).ack.ok());
  const std::string uid =
      fake_->Get("apps", "deployments", "shop", "api")["metadata"]["uid"].get<std::string>();
  Reconciler::Outcome outcome =
      reconciler_->OnUpdate(Update({Ns("shop"), deploy("api", "api-v2", "")}));
  ASSERT_FALSE(outcome.ack.ok());
  EXPECT_THAT(outcome.ack.DebugString(), HasSubstr("field is immutable"));
  EXPECT_THAT(outcome.ack.DebugString(), HasSubstr("annotate it gitfleet.io/force: enabled"));
  EXPECT_EQ(fake_->Get("apps", "deployments", "shop", "api")["metadata"]["uid"], uid);

  outcome = reconciler_->OnUpdate(Update({Ns("shop"), deploy("api", "api-v2", force)}));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  json live = fake_->Get("apps", "deployments", "shop", "api");
  EXPECT_NE(live["metadata"]["uid"], uid) << "created again";
  EXPECT_EQ(live["spec"]["selector"]["matchLabels"]["app"], "api-v2");

  // Someone else's object of the same name is never deleted, whatever the manifest asks.
  fake_->Put("apps", "deployments",
             {{"apiVersion", "apps/v1"},
              {"kind", "Deployment"},
              {"metadata", {{"name", "other"}, {"namespace", "shop"}}},
              {"spec",
               {{"selector", {{"matchLabels", {{"app", "old"}}}}},
                {"template", {{"metadata", {{"labels", {{"app", "old"}}}}}}}}}});
  const std::string other_uid =
      fake_->Get("apps", "deployments", "shop", "other")["metadata"]["uid"].get<std::string>();
  outcome = reconciler_->OnUpdate(Update(
      {Ns("shop"), deploy("api", "api-v2", force),
       deploy("other", "new",
              "  annotations:\n    argocd.argoproj.io/sync-options: Force=true,Replace=true\n")}));
  EXPECT_FALSE(outcome.ack.ok());
  EXPECT_THAT(outcome.ack.DebugString(), HasSubstr("asks to recreate it, and it is not"));
  EXPECT_EQ(fake_->Get("apps", "deployments", "shop", "other")["metadata"]["uid"], other_uid);
}

// A bundle whose source asks its objects to stay (Fleet's keepResources) releases them when
// it is removed; an operator's `cluster forget --prune` still prunes.
TEST_F(KubernetesApplierTest, ABundleThatKeepsItsObjectsReleasesThemOnRemoval) {
  auto keeping = [&](const std::vector<v1::ManifestObject>& objects) {
    v1::BundleUpdate u = Update(objects);
    u.mutable_sync()->set_keep_on_removal(true);
    ObjectSet set;
    for (const auto& o : objects) set.Put(o);
    u.set_revision(ComputeRevision(set, u.sync(), ""));
    return u;
  };
  ASSERT_TRUE(reconciler_->OnUpdate(keeping({Ns("shop"), Cm("a"), Cm("gone")})).ack.ok());
  // Objects that leave the bundle are still pruned: only a removal keeps them.
  ASSERT_TRUE(reconciler_->OnUpdate(keeping({Ns("shop"), Cm("a")})).ack.ok());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "gone").is_null());
  RemoveBundle("web");
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null()) << "kept on removal";
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null());

  // Forgotten with --prune by an operator: pruned after all.
  ASSERT_TRUE(reconciler_->OnUpdate(keeping({Ns("shop"), Cm("b")})).ack.ok());
  v1::BundleRemoval forget;
  forget.set_bundle("web");
  forget.set_forget(true);
  forget.set_prune(true);
  reconciler_->OnRemoval(forget);
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "b").is_null());
}

TEST_F(KubernetesApplierTest, ValuesTheServerRewritesAreNotDrift) {
  v1::ManifestObject pod =
      Obj("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  containers:\n"
          "  - name: app\n    image: nginx\n    resources:\n      requests: {cpu: 0.5}\n"
          "      limits: {cpu: \"1\", memory: 64Mi}\n");
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), pod})).ack.ok());
  ASSERT_EQ(
      fake_->Get("", "pods", "shop", "p")["spec"]["containers"][0]["resources"]["requests"]["cpu"],
      "500m");
  fake_->ClearRequests();
  EXPECT_TRUE(reconciler_->Resync(/*check_drift=*/true).empty());
  EXPECT_EQ(metrics_.drift_events.Value(), 0) << "0.5 and 500m are the same CPU";
  int dry_runs = 0, applies = 0;
  for (const FakeApiServer::Request& r : fake_->Requests()) {
    if (r.method != "PATCH") continue;
    (r.query.find("dryRun=All") != std::string::npos ? dry_runs : applies)++;
  }
  EXPECT_EQ(dry_runs, 1) << "only the object the plain comparison doubted";
  EXPECT_EQ(applies, 0);

  // A real change to the same field still is drift.
  fake_->Mutate("", "pods", "shop", "p", [](json& o) {
    o["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "250m";
  });
  EXPECT_EQ(reconciler_->Resync(/*check_drift=*/true).size(), 1u);
  EXPECT_EQ(metrics_.drift_events.Value(), 1);
  EXPECT_EQ(
      fake_->Get("", "pods", "shop", "p")["spec"]["containers"][0]["resources"]["requests"]["cpu"],
      "500m");
}

TEST_F(KubernetesApplierTest, ApiErrorsNackTheObjectAndApplyTheRest) {
  fake_->Forbid("patch", "", "secrets");
  v1::ManifestObject secret =
      Obj("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: shop}\n");
  v1::ManifestObject bad =
      Obj("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: shop}\n"
          "spec: {replicas: -1}\n");
  Reconciler::Outcome outcome =
      reconciler_->OnUpdate(Update({Ns("shop"), bad, Cm("a"), secret, Cm("z")}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_EQ(outcome.ack.errors_size(), 2);
  std::map<std::string, std::string> errors;
  for (const auto& e : outcome.ack.errors()) errors[e.key().kind()] = e.message();
  EXPECT_THAT(errors["Deployment"],
              HasSubstr("422 Invalid: Deployment.apps \"api\" is invalid: spec.replicas"));
  EXPECT_THAT(errors["Secret"], HasSubstr("403 Forbidden: secrets \"s\" is forbidden"));
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "z").is_null());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(outcome.status->message(), HasSubstr("2 of 5 objects failed"));

  // A conflict is not retried in a loop: it NACKs, and the next attempt (backoff) applies.
  fake_->FailNext(1, 409);
  outcome = reconciler_->OnUpdate(Update({Ns("shop"), Cm("a", "shop", "2")}));
  ASSERT_EQ(outcome.ack.errors_size(), 1);
  EXPECT_EQ(outcome.ack.errors(0).message(), "409 Conflict: injected failure 409");
  EXPECT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a", "shop", "3")})).ack.ok());

  // A namespace that does not exist is the API's 404, named.
  outcome = reconciler_->OnUpdate(Update({Cm("a", "nowhere")}));
  ASSERT_EQ(outcome.ack.errors_size(), 1);
  EXPECT_EQ(outcome.ack.errors(0).message(), "404 NotFound: namespaces \"nowhere\" not found");
}

TEST_F(KubernetesApplierTest, AnUnreachableApiFailsThePassFastAndRetriesLater) {
  std::vector<v1::ManifestObject> objects = {Ns("shop")};
  for (int i = 0; i < 50; ++i) objects.push_back(Cm(absl::StrCat("cm", i)));
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("old")})).ack.ok());
  fake_->ClearRequests();
  fake_->FailNext(1000000, 503);
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update(objects));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_EQ(outcome.ack.errors_size(), 50);
  EXPECT_THAT(outcome.ack.errors(0).message(), HasSubstr("503"));
  EXPECT_THAT(outcome.ack.errors(1).message(), HasSubstr("not attempted: "));
  // One object's attempts (1 + 2 retries), not fifty objects' worth; nothing pruned.
  EXPECT_EQ(fake_->Requests().size(), 3u);
  EXPECT_EQ(fake_->CountRequests("DELETE"), 0);
  fake_->FailNext(0, 0);
  EXPECT_TRUE(reconciler_->OnUpdate(Update(objects)).ack.ok());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "old").is_null()) << "pruned once it could";
}

TEST_F(KubernetesApplierTest, BadSyncWaveIsAnObjectError) {
  // The control plane refuses such a render (object_test); one that did not check sent it.
  v1::ManifestObject bad = Cm("a");
  bad.set_yaml(
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\n"
      "  annotations:\n    gitfleet.io/sync-wave: soon\ndata:\n  v: \"1\"\n");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Ns("shop"), bad}));
  ASSERT_EQ(outcome.ack.errors_size(), 1);
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("annotation gitfleet.io/sync-wave is \"soon\", want an integer"));
}

TEST_F(KubernetesApplierTest, HealthFollowsTheRolloutUntilSettled) {
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Ns("shop"), Deploy("api", 2)}));
  ASSERT_TRUE(outcome.ack.ok());
  EXPECT_EQ(outcome.status->health(), v1::HEALTH_STATE_PROGRESSING);
  ASSERT_EQ(outcome.status->unhealthy_resources_size(), 1);
  EXPECT_EQ(outcome.status->unhealthy_resources(0).key().name(), "api");

  fake_->ClearRequests();
  SetDeploymentStatus("api", 2, 1);
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].health(), v1::HEALTH_STATE_PROGRESSING);
  EXPECT_EQ(changed[0].unhealthy_resources(0).message(), "1 of 2 updated replicas are available");
  // Only the unsettled object is read again.
  EXPECT_EQ(fake_->Requests().size(), 1u);

  SetDeploymentStatus("api", 2, 2);
  changed = reconciler_->Resync(/*check_drift=*/false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].health(), v1::HEALTH_STATE_HEALTHY);
  fake_->ClearRequests();
  EXPECT_TRUE(reconciler_->Resync(/*check_drift=*/false).empty());
  EXPECT_TRUE(fake_->Requests().empty()) << "settled health is not polled";
  EXPECT_EQ(metrics_.bundle_health.Add({{"health", "healthy"}}).Value(), 1);
}

TEST_F(KubernetesApplierTest, UnauthorizedNamesTheCause) {
  FakeApiServer::Options options;
  options.token = "right";
  Start(options);
  client_ = *KubeClient::Create(KubeConfig{fake_->url(), "", false, "", "", "wrong"}, {});
  mapper_ = std::make_unique<RestMapper>(client_.get());
  applier_ = std::make_unique<KubernetesApplier>(client_.get(), mapper_.get(),
                                                 KubernetesApplier::Options());
  reconciler_ = std::make_unique<Reconciler>(applier_.get(), &state_, metrics_);
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Ns("shop")}));
  ASSERT_EQ(outcome.ack.errors_size(), 1);
  EXPECT_THAT(outcome.ack.errors(0).message(), HasSubstr("401 Unauthorized"));
}

TEST_F(KubernetesApplierTest, DiffListsCreatesUpdatesAndPrunesWithoutChangingAnything) {
  ASSERT_TRUE(reconciler_
                  ->OnUpdate(Update({Ns("shop"), Deploy("api", 2), Cm("a"), Cm("b")},
                                    /*prune=*/true, /*self_heal=*/false))
                  .ack.ok());
  v1::DiffRequest request;
  request.set_id(7);
  request.set_bundle("web");
  v1::DiffResult result = reconciler_->Diff(request);
  EXPECT_EQ(result.id(), 7u);
  EXPECT_TRUE(result.changes().empty());
  EXPECT_EQ(result.unchanged(), 4);

  fake_->Mutate("apps", "deployments", "shop", "api", [](json& o) { o["spec"]["replicas"] = 9; });
  ASSERT_TRUE(client_->Do("DELETE", "/api/v1/namespaces/shop/configmaps/a").ok());
  fake_->ClearRequests();
  result = reconciler_->Diff(request);
  EXPECT_EQ(result.revision(), reconciler_->Held()[0].revision());
  std::map<std::string, std::string> changes;
  for (const auto& c : result.changes()) changes[c.key().name()] = c.change() + " " + c.detail();
  EXPECT_EQ(changes["api"], "update .spec.replicas");
  EXPECT_EQ(changes["a"], "create ");
  EXPECT_EQ(result.unchanged(), 2);
  for (const FakeApiServer::Request& r : fake_->Requests()) {
    if (r.method == "PATCH") {
      EXPECT_THAT(r.query, HasSubstr("dryRun=All"));
    }
    EXPECT_NE(r.method, "DELETE");
  }
  EXPECT_EQ(fake_->Get("apps", "deployments", "shop", "api")["spec"]["replicas"], 9);

  // An object that left the bundle but could not be deleted yet shows as a prune.
  fake_->Forbid("delete", "", "configmaps");
  EXPECT_FALSE(
      reconciler_->OnUpdate(Update({Ns("shop"), Deploy("api", 9), Cm("a")}, true, false)).ack.ok());
  result = reconciler_->Diff(request);
  changes.clear();
  for (const auto& c : result.changes()) changes[c.key().name()] = c.change();
  // "a" was deleted behind gitfleet's back and is unchanged in Git: the next drift check
  // re-creates it, and the diff says so meanwhile.
  EXPECT_THAT(changes, ::testing::UnorderedElementsAre(::testing::Pair("a", "create"),
                                                       ::testing::Pair("b", "prune")));
  // An unknown bundle is an error, not a crash.
  request.set_bundle("other");
  EXPECT_EQ(reconciler_->Diff(request).error(), "this agent holds no revision of bundle other");
}

TEST_F(KubernetesApplierTest, DiffSaysWhatAPruneWouldLeaveAndWhy) {
  const std::string ns = "default";
  // "found" existed before the bundle applied it.
  fake_->Put("", "configmaps",
             {{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", {{"name", "found"}, {"namespace", ns}}}});
  ASSERT_TRUE(reconciler_
                  ->OnUpdate(Update(
                      {Cm("a", ns), Cm("b", ns), Cm("c", ns), Cm("gone", ns), Cm("found", ns),
                       Cm("keep", ns, "1",
                          "  annotations:\n    argocd.argoproj.io/sync-options: Prune=false\n")}))
                  .ack.ok());
  fake_->Mutate("", "configmaps", ns, "c",
                [](json& o) { o["metadata"]["labels"][kBundleLabel] = "other"; });
  ASSERT_TRUE(fake_->Delete("", "configmaps", ns, "gone"));
  // The next revision drops all but "a" and adds a Deployment the API refuses: the prune
  // waits until it applies, and the diff says what it will do then.
  fake_->Forbid("patch", "apps", "deployments");
  ASSERT_FALSE(reconciler_->OnUpdate(Update({Cm("a", ns), Ns("shop"), Deploy("api", 1)})).ack.ok());
  EXPECT_FALSE(fake_->Get("", "configmaps", ns, "b").is_null());
  fake_->ClearRequests();
  std::map<std::string, std::string> changes = DiffByName("web", "ConfigMap");
  EXPECT_THAT(
      changes,
      ::testing::UnorderedElementsAre(
          ::testing::Pair("b", "prune: "),
          ::testing::Pair("c",
                          "keep: it is not labelled gitfleet.io/bundle=web (it belongs to "
                          "other)"),
          ::testing::Pair("keep",
                          "keep: it is annotated argocd.argoproj.io/sync-options=Prune=false"),
          ::testing::Pair("found", HasSubstr("keep: it existed before bundle web applied it"))));
  for (const FakeApiServer::Request& r : fake_->Requests()) EXPECT_NE(r.method, "DELETE");
  // What the diff said is what the prune does, once the Deployment applies.
  fake_->Allow("patch", "apps", "deployments");
  Reconciler::Outcome outcome =
      reconciler_->OnUpdate(Update({Cm("a", ns), Ns("shop"), Deploy("api", 1)}));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  EXPECT_TRUE(fake_->Get("", "configmaps", ns, "b").is_null());
  EXPECT_EQ(fake_->Get("", "configmaps", ns, "c")["metadata"]["labels"][kBundleLabel], "other");
  EXPECT_FALSE(fake_->Get("", "configmaps", ns, "keep").is_null());
  json found = fake_->Get("", "configmaps", ns, "found");
  ASSERT_FALSE(found.is_null());
  EXPECT_FALSE(found["metadata"].contains("labels") &&
               found["metadata"]["labels"].contains(kBundleLabel));
  EXPECT_TRUE(fake_->Get("", "configmaps", ns, "gone").is_null());
}

TEST_F(KubernetesApplierTest, ANamespaceThatHoldsVolumeClaimsIsNotPruned) {
  // The bundle's own claim, annotated to be kept; a StatefulSet's claim nobody applied.
  const v1::ManifestObject cache = Obj(
      "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: cache\n  namespace: shop\n"
      "  annotations:\n    gitfleet.io/prune: \"false\"\n"
      "spec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n");
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), cache, Cm("x", "default")})).ack.ok());
  fake_->Put("", "persistentvolumeclaims",
             {{"apiVersion", "v1"},
              {"kind", "PersistentVolumeClaim"},
              {"metadata", {{"name", "data-db-0"}, {"namespace", "shop"}}}});
  const v1::BundleUpdate dropped = Update({Cm("x", "default")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(dropped);
  ASSERT_FALSE(outcome.ack.ok());
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_EQ(outcome.ack.errors(0).key().kind(), "Namespace");
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("prune: it still holds 2 PersistentVolumeClaims (cache, data-db-0): "
                        "deleting the Namespace would delete them"));
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null());
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null());
  EXPECT_FALSE(fake_->Get("", "persistentvolumeclaims", "shop", "data-db-0").is_null());

  // The dry run says the same.
  EXPECT_THAT(DiffByName("web"),
              ElementsAre(::testing::Pair(
                  "shop", ::testing::AllOf(::testing::StartsWith("keep: "),
                                           HasSubstr("it still holds 2 PersistentVolumeClaims")))));

  // One claim gone: the kept one still holds it.
  ASSERT_TRUE(fake_->Delete("", "persistentvolumeclaims", "shop", "data-db-0"));
  outcome = reconciler_->OnUpdate(dropped);
  ASSERT_FALSE(outcome.ack.ok());
  EXPECT_THAT(outcome.ack.errors(0).message(), HasSubstr("1 PersistentVolumeClaim (cache)"));
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null());

  // The operator says so on the Namespace: it goes, with the claim.
  fake_->Mutate("", "namespaces", "", "shop",
                [](json& o) { o["metadata"]["annotations"]["gitfleet.io/prune"] = "true"; });
  outcome = reconciler_->OnUpdate(dropped);
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  EXPECT_TRUE(fake_->Get("", "namespaces", "", "shop").is_null());
  EXPECT_TRUE(fake_->Get("", "persistentvolumeclaims", "shop", "cache").is_null());
}

// A claim the bundle applied is deleted when it leaves the bundle only if its data would
// outlive it: never bound, or bound to a volume whose reclaim policy is Retain. One bound
// to a volume a deletion would take with it stays, saying why, until the operator says so
// on the live object.
TEST_F(KubernetesApplierTest, AClaimWhoseVolumeWouldGoWithItIsNotPruned) {
  auto claim = [](const std::string& name) {
    return Obj(
        absl::StrCat("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: ", name,
                     "\n  namespace: shop\nspec:\n  accessModes: [ReadWriteOnce]\n"
                     "  resources: {requests: {storage: 1Gi}}\n"));
  };
  ASSERT_TRUE(reconciler_
                  ->OnUpdate(Update(
                      {Ns("shop"), Cm("x"), claim("data"), claim("archive"), claim("scratch")}))
                  .ack.ok());
  auto bind = [&](const std::string& name, const std::string& volume, const std::string& policy) {
    fake_->Put("", "persistentvolumes",
               {{"apiVersion", "v1"},
                {"kind", "PersistentVolume"},
                {"metadata", {{"name", volume}}},
                {"spec", {{"persistentVolumeReclaimPolicy", policy}}}});
    ASSERT_TRUE(fake_->Mutate("", "persistentvolumeclaims", "shop", name, [&](json& o) {
      o["spec"]["volumeName"] = volume;
      o["status"]["phase"] = "Bound";
    }));
  };
  bind("data", "pvc-1234", "Delete");
  bind("archive", "pvc-5678", "Retain");
  const v1::BundleUpdate dropped = Update({Ns("shop"), Cm("x")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(dropped);
  ASSERT_FALSE(outcome.ack.ok());
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_EQ(outcome.ack.errors(0).key().name(), "data");
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("it is bound to PersistentVolume pvc-1234, whose reclaim policy is "
                        "Delete: deleting the claim would delete the volume's data"));
  EXPECT_FALSE(fake_->Get("", "persistentvolumeclaims", "shop", "data").is_null());
  EXPECT_TRUE(fake_->Get("", "persistentvolumeclaims", "shop", "archive").is_null())
      << "Retain: its data stays with the volume";
  EXPECT_TRUE(fake_->Get("", "persistentvolumeclaims", "shop", "scratch").is_null())
      << "never bound";
  EXPECT_THAT(DiffByName("web"),
              ElementsAre(::testing::Pair(
                  "data", ::testing::AllOf(::testing::StartsWith("keep: "),
                                           HasSubstr("whose reclaim policy is Delete")))));

  // A volume the agent may not read is not taken as one that keeps its data.
  fake_->Forbid("get", "", "persistentvolumes");
  outcome = reconciler_->OnUpdate(dropped);
  ASSERT_FALSE(outcome.ack.ok());
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("bound to PersistentVolume pvc-1234, which cannot be read"));
  EXPECT_FALSE(fake_->Get("", "persistentvolumeclaims", "shop", "data").is_null());
  fake_->Allow("get", "", "persistentvolumes");

  // The operator says so on the claim: it goes.
  fake_->Mutate("", "persistentvolumeclaims", "shop", "data",
                [](json& o) { o["metadata"]["annotations"]["gitfleet.io/prune"] = "true"; });
  outcome = reconciler_->OnUpdate(dropped);
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  EXPECT_TRUE(fake_->Get("", "persistentvolumeclaims", "shop", "data").is_null());
}

// With prune-last (Argo CD's PruneLast=true), what left the bundle is pruned only once
// every object of the revision is Healthy: a renamed Deployment's old one keeps serving
// until the new one is ready.
TEST_F(KubernetesApplierTest, PruneLastWaitsForTheRevisionToBeHealthy) {
  auto with_prune_last = [&](const std::vector<v1::ManifestObject>& objects) {
    v1::BundleUpdate update = Update(objects);
    v1::SyncOptions sync = update.sync();
    sync.set_prune_last(true);
    ObjectSet set;
    for (const auto& o : objects) set.Put(o);
    update.set_revision(ComputeRevision(set, sync, ""));
    *update.mutable_sync() = sync;
    return update;
  };
  const v1::BundleUpdate first = with_prune_last({Ns("shop"), Deploy("web", 2), Cm("old")});
  ASSERT_TRUE(reconciler_->OnUpdate(first).ack.ok());
  SetDeploymentStatus("web", 2, 2);
  const v1::BundleUpdate second = with_prune_last({Ns("shop"), Deploy("web-v2", 2)});
  EXPECT_NE(second.revision(), Update({Ns("shop"), Deploy("web-v2", 2)}).revision())
      << "the revision id covers it: an agent that does not know it refuses it";
  Reconciler::Outcome outcome = reconciler_->OnUpdate(second);
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_APPLYING);
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("2 objects that left the bundle wait for every object to be Healthy "
                        "before it is pruned (prune-last; now"));
  EXPECT_EQ(outcome.status->applied_revision(), second.revision()) << "applied all the same";
  EXPECT_FALSE(fake_->Get("apps", "deployments", "shop", "web").is_null()) << "still serving";
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "old").is_null());

  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_FALSE(fake_->Get("apps", "deployments", "shop", "web").is_null());
  SetDeploymentStatus("web-v2", 2, 2);
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(fake_->Get("apps", "deployments", "shop", "web").is_null()) << "pruned once ready";
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "old").is_null());
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_SYNCED) << changed[0].message();

  // Without it, the old one goes as soon as the new one is applied, unless its manifest
  // asked Argo CD's PruneLast=true when it was applied: then it alone waits.
  v1::ManifestObject last = Cm("last", "shop", "1",
                               "  annotations:\n    argocd.argoproj.io/sync-options: "
                               "\"Prune=true, PruneLast=true\"\n");
  ASSERT_TRUE(
      reconciler_->OnUpdate(Update({Ns("shop"), Deploy("web-v2", 2), last, Cm("plain")})).ack.ok());
  outcome = reconciler_->OnUpdate(Update({Ns("shop"), Deploy("web-v3", 2)}));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  EXPECT_TRUE(fake_->Get("apps", "deployments", "shop", "web-v2").is_null());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "plain").is_null());
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "last").is_null()) << "web-v3 is not ready";
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("1 object that left the bundle waits for every object to be Healthy "
                        "before it is pruned (PruneLast=true"));
  Restart();  // remembered in the agent's state; its first pass looks at everything
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "last").is_null());
  SetDeploymentStatus("web-v3", 2, 2);
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "last").is_null());
}

// A StatefulSet that deletes its claims with it (persistentVolumeClaimRetentionPolicy
// whenDeleted: Delete), and a PersistentVolume whose deletion deletes its storage, are
// not pruned without the operator's say-so; by default (Retain) they are.
TEST_F(KubernetesApplierTest, WhatWouldTakeVolumesWithItIsNotPruned) {
  auto stateful = [](const std::string& name, const std::string& when_deleted) {
    return Obj(absl::StrCat(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: ", name,
        "\n  namespace: shop\nspec:\n  serviceName: ", name,
        "\n  selector: {matchLabels: {app: db}}\n",
        when_deleted.empty()
            ? ""
            : "  persistentVolumeClaimRetentionPolicy: {whenDeleted: " + when_deleted + "}\n",
        "  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers:\n"
        "      - {name: db, image: postgres:16}\n"
        "  volumeClaimTemplates:\n  - metadata: {name: data}\n"
        "    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"));
  };
  auto volume = [](const std::string& name, const std::string& policy) {
    return Obj(
        absl::StrCat("apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: ", name,
                     "\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n",
                     policy.empty() ? "" : "  persistentVolumeReclaimPolicy: " + policy + "\n",
                     "  hostPath: {path: /data/", name, "}\n"));
  };
  ASSERT_TRUE(reconciler_
                  ->OnUpdate(Update({Ns("shop"), Cm("x"), stateful("db", "Delete"),
                                     stateful("cache", "Retain"), stateful("queue", ""),
                                     volume("pv-delete", "Delete"), volume("pv-retain", "Retain"),
                                     volume("pv-default", "")}))
                  .ack.ok());
  const v1::BundleUpdate dropped = Update({Ns("shop"), Cm("x")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(dropped);
  ASSERT_FALSE(outcome.ack.ok());
  std::map<std::string, std::string> errors;
  for (const v1::ObjectError& e : outcome.ack.errors()) errors[e.key().name()] = e.message();
  EXPECT_THAT(errors, ::testing::ElementsAre(
                          ::testing::Pair("db", HasSubstr("whenDeleted is Delete: deleting it "
                                                          "deletes its PersistentVolumeClaims")),
                          ::testing::Pair("pv-delete", HasSubstr("its reclaim policy is Delete: "
                                                                 "deleting it may delete the "
                                                                 "storage behind it"))));
  EXPECT_FALSE(fake_->Get("apps", "statefulsets", "shop", "db").is_null());
  EXPECT_FALSE(fake_->Get("", "persistentvolumes", "", "pv-delete").is_null());
  for (const char* gone : {"cache", "queue"}) {
    EXPECT_TRUE(fake_->Get("apps", "statefulsets", "shop", gone).is_null()) << gone;
  }
  for (const char* gone : {"pv-retain", "pv-default"}) {
    EXPECT_TRUE(fake_->Get("", "persistentvolumes", "", gone).is_null()) << gone;
  }
  // The operator says so on each: they go.
  for (const auto& [group, resource, ns, name] :
       std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
           {"apps", "statefulsets", "shop", "db"}, {"", "persistentvolumes", "", "pv-delete"}}) {
    fake_->Mutate(group, resource, ns, name,
                  [](json& o) { o["metadata"]["annotations"]["gitfleet.io/prune"] = "true"; });
  }
  outcome = reconciler_->OnUpdate(dropped);
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  EXPECT_TRUE(fake_->Get("apps", "statefulsets", "shop", "db").is_null());
  EXPECT_TRUE(fake_->Get("", "persistentvolumes", "", "pv-delete").is_null());
}

// Secrets Git cannot bring back hold a Namespace as claims do: one made by hand, and the
// bundle's own kept by an annotation. A service account's token, a Secret another object
// owns and another bundle's do not.
TEST_F(KubernetesApplierTest, ANamespaceThatHoldsSecretsGitCannotBringBackIsNotPruned) {
  const v1::ManifestObject kept =
      Obj("apiVersion: v1\nkind: Secret\nmetadata:\n  name: kept\n  namespace: shop\n"
          "  annotations:\n    gitfleet.io/prune: \"false\"\nstringData: {password: x}\n");
  const v1::ManifestObject pruned =
      Obj("apiVersion: v1\nkind: Secret\nmetadata:\n  name: pruned\n  namespace: shop\n"
          "stringData: {password: \"y\"}\n");
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), kept, pruned, Cm("x", "default")}))
                  .ack.ok());
  auto secret = [&](const std::string& name, json extra) {
    json object = {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", {{"name", name}, {"namespace", "shop"}}}};
    object.merge_patch(extra);
    fake_->Put("", "secrets", object);
  };
  secret("by-hand", json::object());
  secret("token", {{"type", "kubernetes.io/service-account-token"}});
  secret("owned", {{"metadata",
                    {{"ownerReferences", json::array({{{"apiVersion", "cert-manager.io/v1"},
                                                       {"kind", "Certificate"},
                                                       {"name", "web"},
                                                       {"uid", "u1"}}})}}}});
  secret("theirs", {{"metadata", {{"labels", {{kBundleLabel, "other"}}}}}});
  const v1::BundleUpdate dropped = Update({Cm("x", "default")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(dropped);
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_EQ(outcome.ack.errors(0).key().kind(), "Namespace");
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("prune: it still holds 2 Secrets no bundle applies (by-hand, kept): "
                        "deleting the Namespace would delete them, and nothing in Git could "
                        "bring them back; it is pruned once they are gone, or at once when it "
                        "is annotated gitfleet.io/prune=true"));
  EXPECT_TRUE(fake_->Get("", "secrets", "shop", "pruned").is_null()) << "the bundle's own";
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null());
  EXPECT_THAT(DiffByName("web"),
              ElementsAre(::testing::Pair(
                  "shop", ::testing::AllOf(::testing::StartsWith("keep: "),
                                           HasSubstr("it still holds 2 Secrets")))));

  // The one made by hand goes: the kept one still holds it.
  ASSERT_TRUE(fake_->Delete("", "secrets", "shop", "by-hand"));
  outcome = reconciler_->OnUpdate(dropped);
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_THAT(outcome.ack.errors(0).message(), HasSubstr("1 Secret no bundle applies (kept)"));
  // The operator says so on the Namespace: it goes, with what is in it.
  fake_->Mutate("", "namespaces", "", "shop",
                [](json& o) { o["metadata"]["annotations"]["gitfleet.io/prune"] = "true"; });
  outcome = reconciler_->OnUpdate(dropped);
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  EXPECT_TRUE(fake_->Get("", "namespaces", "", "shop").is_null());
}

// Secrets are read a page at a time: one on a later page holds the Namespace too, and
// pages left unread count as holding one.
TEST_F(KubernetesApplierTest, SecretsBeyondTheFirstPageHoldANamespaceToo) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("x", "default")})).ack.ok());
  auto put = [&](const std::string& name, bool token) {
    json object = {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", {{"name", name}, {"namespace", "shop"}}}};
    if (token) object["type"] = "kubernetes.io/service-account-token";
    fake_->Put("", "secrets", object);
  };
  for (int i = 0; i < 150; ++i) put(absl::StrFormat("token-%04d", i), true);
  put("zz-by-hand", false);
  const v1::BundleUpdate dropped = Update({Cm("x", "default")});
  fake_->ClearRequests();
  Reconciler::Outcome outcome = reconciler_->OnUpdate(dropped);
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("it still holds 1 Secret no bundle applies (zz-by-hand)"));
  int pages = 0;
  for (const FakeApiServer::Request& r : fake_->Requests()) {
    if (r.method == "GET" && r.path == "/api/v1/namespaces/shop/secrets") ++pages;
  }
  EXPECT_EQ(pages, 2);

  ASSERT_TRUE(fake_->Delete("", "secrets", "shop", "zz-by-hand"));
  for (int i = 150; i < 1001; ++i) put(absl::StrFormat("token-%04d", i), true);
  outcome = reconciler_->OnUpdate(dropped);
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("it still holds 1 or more Secret no bundle applies (more than 1000 "
                        "not read to the end)"));
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null());
}

TEST_F(KubernetesApplierTest, ACrdThatStillHasCustomResourcesIsNotPruned) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Crd(), Ns("shop"), Widget("w1"), Cm("x", "default")}))
                  .ack.ok());
  // Someone else's Widget, made with the CRD the bundle installed.
  fake_->Put("example.com", "widgets",
             {{"apiVersion", "example.com/v1"},
              {"kind", "Widget"},
              {"metadata", {{"name", "theirs"}, {"namespace", "shop"}}}});
  const v1::BundleUpdate dropped = Update({Ns("shop"), Cm("x", "default")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(dropped);
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_EQ(outcome.ack.errors(0).key().kind(), "CustomResourceDefinition");
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("prune: it still holds 1 Widget object (shop/theirs): deleting the "
                        "CustomResourceDefinition would delete every one of them"));
  EXPECT_TRUE(fake_->Get("example.com", "widgets", "shop", "w1").is_null()) << "the bundle's own";
  EXPECT_FALSE(
      fake_->Get("apiextensions.k8s.io", "customresourcedefinitions", "", "widgets.example.com")
          .is_null());
  ASSERT_TRUE(fake_->Delete("example.com", "widgets", "shop", "theirs"));
  ASSERT_TRUE(reconciler_->OnUpdate(dropped).ack.ok());
  EXPECT_TRUE(
      fake_->Get("apiextensions.k8s.io", "customresourcedefinitions", "", "widgets.example.com")
          .is_null());
}

TEST_F(KubernetesApplierTest, ACrdThatServesNoVersionIsNotPrunedUnseen) {
  v1::ManifestObject crd = Crd();
  std::string yaml = crd.yaml();
  yaml.replace(yaml.find("served: true"), sizeof("served: true") - 1, "served: false");
  crd = Obj(yaml);
  ASSERT_TRUE(reconciler_->OnUpdate(Update({crd, Cm("x", "default")})).ack.ok());
  const v1::BundleUpdate dropped = Update({Cm("x", "default")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(dropped);
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("prune: it serves no version, so whether any Widget objects are still "
                        "stored cannot be read"));
  const json live =
      fake_->Get("apiextensions.k8s.io", "customresourcedefinitions", "", "widgets.example.com");
  ASSERT_FALSE(live.is_null());
  json annotated = live;
  annotated["metadata"]["annotations"][kPruneAnnotation] = "true";
  fake_->Put("apiextensions.k8s.io", "customresourcedefinitions", annotated);
  ASSERT_TRUE(reconciler_->OnUpdate(dropped).ack.ok());
  EXPECT_TRUE(
      fake_->Get("apiextensions.k8s.io", "customresourcedefinitions", "", "widgets.example.com")
          .is_null());
}

TEST_F(KubernetesApplierTest, ANamespaceIsNotPrunedWhenItsClaimsCannotBeRead) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("x", "default")})).ack.ok());
  fake_->Forbid("list", "", "persistentvolumeclaims");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Cm("x", "default")}));
  ASSERT_EQ(outcome.ack.errors_size(), 1) << outcome.ack.DebugString();
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("prune: cannot tell whether it holds any PersistentVolumeClaim, so it "
                        "is not deleted: 403 Forbidden"));
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null());
  fake_->Allow("list", "", "persistentvolumeclaims");
  EXPECT_TRUE(reconciler_->OnUpdate(Update({Cm("x", "default")})).ack.ok());
  EXPECT_TRUE(fake_->Get("", "namespaces", "", "shop").is_null());
}

TEST_F(KubernetesApplierTest, PreviewShowsWhatAnApplyWouldChange) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Deploy("api", 2)})).ack.ok());
  ApplyContext context{"web", ""};
  EXPECT_EQ(*applier_->Preview(Deploy("api", 2), context), "");
  EXPECT_EQ(*applier_->Preview(Deploy("api", 3), context), ".spec.replicas");
  EXPECT_EQ(*applier_->Preview(Deploy("new", 1), context), "create");
  EXPECT_EQ(fake_->Get("apps", "deployments", "shop", "api")["spec"]["replicas"], 2)
      << "a dry run changes nothing";
}

// Hooks: a generateName Job in `phase` (Argo CD's annotation) with an optional delete
// policy.
v1::ManifestObject HookJob(const std::string& generate_name, const std::string& phase,
                           const std::string& policy = "") {
  return Obj(absl::StrCat(
      "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: ", generate_name,
      "\n  namespace: shop\n  annotations:\n    argocd.argoproj.io/hook: ", phase, "\n",
      policy.empty() ? "" : "    argocd.argoproj.io/hook-delete-policy: " + policy + "\n",
      "spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
      "      - name: run\n        image: busybox:1.36\n"));
}

class KubernetesHooksTest : public KubernetesApplierTest {
 protected:
  // The live Jobs in namespace shop whose name starts with `prefix`.
  std::vector<std::string> Jobs(const std::string& prefix) {
    std::vector<std::string> names;
    absl::StatusOr<KubeResponse> r = client_->Do("GET", "/apis/batch/v1/namespaces/shop/jobs");
    if (!r.ok() || r->code != 200) {
      ADD_FAILURE() << "listing jobs: " << (r.ok() ? r->body : r.status().ToString());
      return names;
    }
    const json list = json::parse(r->body);
    for (const json& item : list["items"]) {
      std::string name = item["metadata"]["name"];

      if (absl::StartsWith(name, prefix)) names.push_back(name);
    }
    return names;
  }
  // Sets the Job's condition as the Job controller would.
  void Finish(const std::string& job, bool ok, const std::string& reason = "") {
    json condition = {{"type", ok ? "Complete" : "Failed"}, {"status", "True"}};
    if (!reason.empty()) condition["reason"] = reason;
    ASSERT_TRUE(
        fake_->SetStatus("batch", "jobs", "shop", job, {{"conditions", json::array({condition})}}));
  }
  v1::StatusUpdate Current() {
    for (const v1::StatusUpdate& s : reconciler_->AllStatuses()) {
      if (s.bundle() == "web") return s;
    }
    return {};
  }
};

TEST_F(KubernetesHooksTest, HooksRunAroundTheApplyAndFollowTheirDeletePolicies) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop")})).ack.ok());
  const std::vector<v1::ManifestObject> first = {Ns("shop"), Cm("a"),
                                                 HookJob("migrate-", "PreSync", "HookSucceeded"),
                                                 HookJob("smoke-", "PostSync")};
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update(first));
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.message();
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_APPLYING);
  EXPECT_THAT(outcome.status->message(), HasSubstr("waiting for PreSync hook Job shop/migrate-"));
  // The hook was created (a POST, its name from generateName); nothing else was applied.
  std::vector<std::string> migrate = Jobs("migrate-");
  ASSERT_EQ(migrate.size(), 1u);
  EXPECT_EQ(migrate[0].size(), std::string("migrate-").size() + 5);
  json live = fake_->Get("batch", "jobs", "shop", migrate[0]);
  EXPECT_EQ(live["metadata"]["labels"]["gitfleet.io/bundle"], "web");
  EXPECT_EQ(live["metadata"]["labels"]["gitfleet.io/hook"], "true");
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null()) << "PreSync runs first";

  // Still running: another pass waits and creates nothing new.
  reconciler_->Resync(false);
  EXPECT_EQ(Jobs("migrate-").size(), 1u);

  Finish(migrate[0], true);
  reconciler_->Resync(false);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null());
  EXPECT_TRUE(Jobs("migrate-").empty()) << "HookSucceeded deletes it once it succeeded";
  std::vector<std::string> smoke = Jobs("smoke-");
  ASSERT_EQ(smoke.size(), 1u) << "PostSync runs once every object is Healthy";
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_APPLYING);
  EXPECT_THAT(Current().message(), HasSubstr("waiting for PostSync hook Job shop/smoke-"));
  EXPECT_EQ(Current().applied_revision(), Update(first).revision())
      << "the objects are applied; only the PostSync hook is to come";

  Finish(smoke[0], true);
  reconciler_->Resync(false);
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_SYNCED) << Current().message();
  EXPECT_EQ(Jobs("smoke-"), smoke) << "BeforeHookCreation (the default) keeps it until next time";
  EXPECT_EQ(Current().health(), v1::HEALTH_STATE_HEALTHY) << "hooks have no health of their own";

  // Drift checks and reconnects never run a revision's hooks again.
  fake_->ClearRequests();
  reconciler_->Resync(true);
  EXPECT_TRUE(reconciler_->OnUpdate(Update(first)).ack.ok());
  EXPECT_EQ(fake_->CountRequests("POST"), 0);

  // The next revision runs them again; BeforeHookCreation deletes the last smoke run first.
  const std::vector<v1::ManifestObject> second = {Ns("shop"), Cm("a", "shop", "2"),
                                                  HookJob("migrate-", "PreSync", "HookSucceeded"),
                                                  HookJob("smoke-", "PostSync")};
  reconciler_->OnUpdate(Update(second));
  Finish(Jobs("migrate-").at(0), true);
  reconciler_->Resync(false);
  std::vector<std::string> smoke2 = Jobs("smoke-");
  ASSERT_EQ(smoke2.size(), 1u);
  EXPECT_NE(smoke2[0], smoke[0]);
  Finish(smoke2[0], true);
  reconciler_->Resync(false);
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_SYNCED);

  // A hook that leaves the bundle is never pruned: its last run stays.
  EXPECT_TRUE(reconciler_->OnUpdate(Update({Ns("shop"), Cm("a", "shop", "2")})).ack.ok());
  EXPECT_EQ(Jobs("smoke-"), smoke2);
  EXPECT_EQ(fake_->CountRequests("DELETE"), 2)
      << "migrate's HookSucceeded and smoke's BeforeHookCreation; nothing pruned";
}

// With the change watch, a hook's run finishing is heard as it happens: the revision goes on
// within a second or so, not at the next poll of its hooks (an hour here).
TEST_F(KubernetesHooksTest, AHooksRunFinishingIsHeardAsItHappens) {
  Reconciler reconciler(applier_.get(), &state_, metrics_, /*health_interval=*/absl::Hours(1));
  ASSERT_TRUE(reconciler.Load().ok());
  DriftWatcher::Options watch_options;
  watch_options.min_backoff = absl::Milliseconds(50);
  DriftWatcher watcher(client_.get(), mapper_.get(), watch_options);
  reconciler.SetChangeWatch(&watcher);
  ASSERT_TRUE(reconciler.OnUpdate(Update({Ns("shop")})).ack.ok());
  reconciler.OnUpdate(Update({Ns("shop"), Cm("a"), HookJob("migrate-", "PreSync")}));
  reconciler.Resync(false);  // tells the watch the kinds held
  for (int i = 0; i < 200 && !watcher.Watching({"batch/v1", "Job"}, "shop"); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(watcher.Watching({"batch/v1", "Job"}, "shop"));
  absl::SleepFor(absl::Milliseconds(200));  // its list is done
  std::vector<std::string> migrate = Jobs("migrate-");
  ASSERT_EQ(migrate.size(), 1u);
  reconciler.Resync(false);
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null()) << "PreSync still runs";
  Finish(migrate[0], true);
  for (int i = 0; i < 100 && fake_->Get("", "configmaps", "shop", "a").is_null(); ++i) {
    reconciler.Resync(false);
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null())
      << "the PreSync hook's end was heard, long before the hour's poll";
  reconciler.SetChangeWatch(nullptr);
}

// PreDelete and PostDelete hooks (Argo CD's; Helm's pre-delete and post-delete) run only
// when the bundle leaves the cluster with its objects: PreDelete before anything is
// pruned, PostDelete once the rest is gone, in a Namespace kept for it until it finishes.
TEST_F(KubernetesHooksTest, DeleteHooksRunAroundTheRemovalsPrune) {
  auto removal_condition = [&]() {
    for (const v1::ClusterCondition& c : reconciler_->Conditions()) {
      if (c.type() == "Removal") return c.ok() ? std::string("ok") : c.message();
    }
    return std::string("none");
  };
  v1::ManifestObject farewell = HookJob("farewell-", "PostDelete", "HookSucceeded");
  const std::vector<v1::ManifestObject> objects = {
      Ns("shop"), Cm("a"), HookJob("cleanup-", "PreDelete", "HookSucceeded"), farewell};
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update(objects));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.message();
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_SYNCED) << Current().message();
  EXPECT_TRUE(Jobs("cleanup-").empty()) << "a sync never runs delete hooks";
  EXPECT_TRUE(Jobs("farewell-").empty());
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_TRUE(Jobs("cleanup-").empty());

  RemoveBundle("web");
  std::vector<std::string> cleanup = Jobs("cleanup-");
  ASSERT_EQ(cleanup.size(), 1u) << "PreDelete runs first";
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null()) << "nothing pruned yet";
  EXPECT_THAT(removal_condition(), HasSubstr("waiting for PreDelete hook Job shop/cleanup-"));
  // A restarted agent waits for the same run.
  Restart();
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_EQ(Jobs("cleanup-"), cleanup);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null());

  Finish(cleanup[0], true);
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null()) << "pruned after PreDelete";
  EXPECT_TRUE(Jobs("cleanup-").empty()) << "HookSucceeded";
  std::vector<std::string> bye = Jobs("farewell-");
  ASSERT_EQ(bye.size(), 1u) << "PostDelete once the objects are gone";
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null())
      << "the Namespace it runs in is kept for it";
  EXPECT_THAT(removal_condition(), HasSubstr("waiting for PostDelete hook Job shop/farewell-"));

  Finish(bye[0], true);
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(fake_->Get("", "namespaces", "", "shop").is_null()) << "then the Namespace goes";
  EXPECT_EQ(removal_condition(), "ok");
  Restart();
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(Jobs("farewell-").empty() && Jobs("cleanup-").empty()) << "forgotten: no rerun";
}

// PostDelete hooks run once the pruned objects are gone, not when their deletion is
// accepted: an object a finalizer holds (an operator's cleanup) holds the hooks up, so a
// hook that removes the operator or its CRD does not pull it from under that finalizer.
TEST_F(KubernetesHooksTest, PostDeleteHooksWaitForFinalizersToFinish) {
  auto removal_condition = [&]() {
    for (const v1::ClusterCondition& c : reconciler_->Conditions()) {
      if (c.type() == "Removal") return c.ok() ? std::string("ok") : c.message();
    }
    return std::string("none");
  };
  const std::vector<v1::ManifestObject> objects = {
      Ns("shop"), Cm("a"), Cm("b", "shop", "1", "  finalizers: [example.com/cleanup]\n"), Cm("c"),
      HookJob("farewell-", "PostDelete", "HookSucceeded")};
  ASSERT_TRUE(reconciler_->OnUpdate(Update(objects)).ack.ok());
  RemoveBundle("web");
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null());
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "c").is_null());
  const json b = fake_->Get("", "configmaps", "shop", "b");
  ASSERT_FALSE(b.is_null()) << "its finalizer holds it";
  EXPECT_TRUE(b["metadata"].contains("deletionTimestamp")) << "its deletion was accepted";
  EXPECT_TRUE(Jobs("farewell-").empty()) << "PostDelete waits for it";
  EXPECT_THAT(removal_condition(),
              HasSubstr("the PostDelete hooks wait for what was pruned to finish deleting "
                        "(finalizers): ConfigMap shop/b still is (1 pruned after it looked at "
                        "next)"));
  // A restarted agent remembers what it waits for.
  Restart();
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(Jobs("farewell-").empty());
  EXPECT_FALSE(fake_->Get("", "namespaces", "", "shop").is_null());

  // The finalizer's controller finishes: the object goes, and the hook runs.
  ASSERT_TRUE(fake_->Mutate("", "configmaps", "shop", "b",
                            [](json& o) { o["metadata"].erase("finalizers"); }));
  ASSERT_TRUE(fake_->Get("", "configmaps", "shop", "b").is_null());
  reconciler_->Resync(/*check_drift=*/false);
  std::vector<std::string> bye = Jobs("farewell-");
  ASSERT_EQ(bye.size(), 1u) << removal_condition();
  EXPECT_THAT(removal_condition(), HasSubstr("waiting for PostDelete hook Job shop/farewell-"));
  Finish(bye[0], true);
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_TRUE(fake_->Get("", "namespaces", "", "shop").is_null());
  EXPECT_EQ(removal_condition(), "ok");
}

// An object made again under the same name after its delete (no deletionTimestamp) is not
// waited for: nothing would end the wait.
TEST_F(KubernetesHooksTest, PostDeleteHooksDoNotWaitForAnObjectMadeAgain) {
  const std::vector<v1::ManifestObject> objects = {
      Ns("shop"), Cm("b", "shop", "1", "  finalizers: [example.com/cleanup]\n"),
      HookJob("farewell-", "PostDelete")};
  ASSERT_TRUE(reconciler_->OnUpdate(Update(objects)).ack.ok());
  RemoveBundle("web");
  EXPECT_TRUE(Jobs("farewell-").empty());
  fake_->Put("", "configmaps",
             {{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", {{"name", "b"}, {"namespace", "shop"}}}});
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_EQ(Jobs("farewell-").size(), 1u);
}

// A PreDelete hook that fails keeps everything in place and is tried again; an operator
// who forgets the bundle with --prune runs no hooks (the way out, as --no-hooks).
TEST_F(KubernetesHooksTest, AFailedPreDeleteHookPrunesNothing) {
  ASSERT_TRUE(reconciler_
                  ->OnUpdate(Update({Ns("shop"), Cm("a"), HookJob("cleanup-", "PreDelete"),
                                     HookJob("farewell-", "PostDelete")}))
                  .ack.ok());
  RemoveBundle("web");
  std::vector<std::string> cleanup = Jobs("cleanup-");
  ASSERT_EQ(cleanup.size(), 1u);
  Finish(cleanup[0], false, "BackoffLimitExceeded");
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null()) << "nothing pruned";
  EXPECT_TRUE(Jobs("farewell-").empty());
  bool said = false;
  for (const v1::ClusterCondition& c : reconciler_->Conditions()) {
    if (c.type() != "Removal") continue;
    said = true;
    EXPECT_FALSE(c.ok());
    EXPECT_EQ(c.reason(), "DeleteHooks");
    EXPECT_THAT(c.message(), HasSubstr("PreDelete hook Job shop/" + cleanup[0] +
                                       " failed: failed: BackoffLimitExceeded; nothing is pruned"));
  }
  EXPECT_TRUE(said);
  // Tried again (after its backoff; a restart starts it over): a new run replaces it.
  Restart();
  reconciler_->Resync(/*check_drift=*/false);
  std::vector<std::string> again = Jobs("cleanup-");
  ASSERT_EQ(again.size(), 1u) << "BeforeHookCreation";
  EXPECT_NE(again[0], cleanup[0]);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null());

  v1::BundleRemoval forget;
  forget.set_bundle("web");
  forget.set_forget(true);
  forget.set_prune(true);
  reconciler_->OnRemoval(forget);
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "a").is_null()) << "pruned, no hooks";
  EXPECT_TRUE(Jobs("farewell-").empty());
}

TEST_F(KubernetesHooksTest, AFailedPreSyncHookStopsTheRevisionAndPrunesNothing) {
  const std::vector<v1::ManifestObject> first = {Ns("shop"), Cm("a"), Cm("b")};
  ASSERT_TRUE(reconciler_->OnUpdate(Update(first)).ack.ok());
  const std::vector<v1::ManifestObject> second = {Ns("shop"), Cm("a", "shop", "2"),
                                                  HookJob("migrate-", "PreSync", "HookFailed"),
                                                  HookJob("notify-", "SyncFail")};
  reconciler_->OnUpdate(Update(second));
  std::vector<std::string> migrate = Jobs("migrate-");
  ASSERT_EQ(migrate.size(), 1u);
  Finish(migrate[0], false, "BackoffLimitExceeded");
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(changed[0].message(), HasSubstr("PreSync hook Job shop/" + migrate[0] +
                                              " failed: failed: BackoffLimitExceeded"));
  EXPECT_EQ(changed[0].applied_revision(), Update(first).revision());
  // Nothing of the revision applied, nothing pruned.
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "a")["data"]["v"], "1");
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "b").is_null());
  EXPECT_TRUE(Jobs("migrate-").empty()) << "HookFailed deletes it once it failed";
  EXPECT_EQ(Jobs("notify-").size(), 1u) << "SyncFail hooks run when the sync fails";
  EXPECT_THAT(changed[0].message(), HasSubstr("SyncFail hooks running"));
}

TEST_F(KubernetesHooksTest, SyncHooksFollowTheObjectsAndPruneWaitsForThem) {
  const std::vector<v1::ManifestObject> first = {Ns("shop"), Cm("a"), Cm("b")};
  ASSERT_TRUE(reconciler_->OnUpdate(Update(first)).ack.ok());
  const std::vector<v1::ManifestObject> second = {Ns("shop"), Cm("a", "shop", "2"),
                                                  HookJob("check-", "Sync")};
  reconciler_->OnUpdate(Update(second));
  EXPECT_EQ(fake_->Get("", "configmaps", "shop", "a")["data"]["v"], "2") << "objects first";
  ASSERT_EQ(Jobs("check-").size(), 1u);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "b").is_null()) << "prune waits";
  EXPECT_THAT(Current().message(), HasSubstr("waiting for Sync hook Job shop/check-"));
  EXPECT_EQ(Current().applied_revision(), Update(first).revision());
  Finish(Jobs("check-")[0], false);
  reconciler_->Resync(false);
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "b").is_null())
      << "a failed sync prunes nothing";
  EXPECT_EQ(Current().applied_revision(), Update(first).revision());

  // The retry (after its backoff) starts again: a new run that succeeds lets prune go on.
  reconciler_ =
      std::make_unique<Reconciler>(applier_.get(), &state_, metrics_, absl::ZeroDuration());
  ASSERT_TRUE(reconciler_->Load().ok());
  reconciler_->Resync(false);
  std::vector<std::string> runs = Jobs("check-");
  ASSERT_EQ(runs.size(), 1u) << "BeforeHookCreation replaced the failed run";
  Finish(runs[0], true);
  reconciler_->Resync(false);
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_SYNCED) << Current().message();
  EXPECT_TRUE(fake_->Get("", "configmaps", "shop", "b").is_null());
  EXPECT_EQ(Current().applied_revision(), Update(second).revision());
}

TEST_F(KubernetesHooksTest, ARestartWaitsForTheSameRun) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop")})).ack.ok());
  const std::vector<v1::ManifestObject> objects = {Ns("shop"), Cm("a"),
                                                   HookJob("migrate-", "PreSync")};
  reconciler_->OnUpdate(Update(objects));
  ASSERT_EQ(Jobs("migrate-").size(), 1u);
  reconciler_ =
      std::make_unique<Reconciler>(applier_.get(), &state_, metrics_, absl::ZeroDuration());
  ASSERT_TRUE(reconciler_->Load().ok());
  reconciler_->Resync(false);
  std::vector<std::string> migrate = Jobs("migrate-");
  ASSERT_EQ(migrate.size(), 1u) << "no second run after a restart";
  Finish(migrate[0], true);
  reconciler_->Resync(false);
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_SYNCED) << Current().message();
  EXPECT_FALSE(fake_->Get("", "configmaps", "shop", "a").is_null());
}

TEST_F(KubernetesHooksTest, PodHooksAndNamedHooksAndTimeouts) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Ns("shop")})).ack.ok());
  // A named Pod hook (Helm's annotation); its previous run is replaced by name.
  v1::ManifestObject pod =
      Obj("apiVersion: v1\nkind: Pod\nmetadata:\n  name: check\n  namespace: shop\n  annotations:\n"
          "    helm.sh/hook: post-install,post-upgrade\nspec:\n  restartPolicy: Never\n"
          "  containers:\n  - name: c\n    image: busybox:1.36\n");
  reconciler_->OnUpdate(Update({Ns("shop"), Cm("a"), pod}));
  ASSERT_FALSE(fake_->Get("", "pods", "shop", "check").is_null());
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_APPLYING);
  ASSERT_TRUE(fake_->SetStatus("", "pods", "shop", "check", {{"phase", "Running"}}));
  reconciler_->Resync(false);
  EXPECT_THAT(Current().message(), HasSubstr("PostSync hook Pod shop/check: phase Running"));
  ASSERT_TRUE(fake_->SetStatus("", "pods", "shop", "check", {{"phase", "Succeeded"}}));
  reconciler_->Resync(false);
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_SYNCED) << Current().message();
  const std::string first_uid = fake_->Get("", "pods", "shop", "check")["metadata"]["uid"];

  // The next revision deletes the finished Pod and creates it again.
  reconciler_->OnUpdate(Update({Ns("shop"), Cm("a", "shop", "2"), pod}));
  json again = fake_->Get("", "pods", "shop", "check");
  ASSERT_FALSE(again.is_null());
  EXPECT_NE(again["metadata"]["uid"], first_uid);

  // A hook that never finishes fails after the hook timeout.
  reconciler_ = std::make_unique<Reconciler>(applier_.get(), &state_, metrics_,
                                             absl::ZeroDuration(), &RealClock(),
                                             /*hook_timeout=*/absl::ZeroDuration());
  ASSERT_TRUE(reconciler_->Load().ok());
  reconciler_->Resync(false);
  EXPECT_EQ(Current().sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(Current().message(),
              HasSubstr("PostSync hook Pod shop/check failed: did not finish within 0"));
  EXPECT_EQ(Current().applied_revision(),
            Update({Ns("shop"), Cm("a", "shop", "2"), pod}).revision())
      << "the objects were applied before PostSync";
}

}  // namespace
}  // namespace gitfleet
