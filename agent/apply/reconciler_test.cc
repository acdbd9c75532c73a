#include "agent/apply/reconciler.h"

#include "absl/time/clock.h"
#include "common/manifest/object.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::ManifestObject Cm(const std::string& name, const std::string& value = "1") {
  return *MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name +
                         ", namespace: shop}\ndata: {v: \"" + value + "\"}\n",
                     "test");
}

// Builds updates the way the control plane does: full or delta against `base`.
v1::BundleUpdate Update(const std::vector<v1::ManifestObject>& objects,
                        const v1::BundleUpdate* base = nullptr, bool self_heal = true,
                        bool prune = true) {
  ObjectSet set;
  for (const auto& o : objects) set.Put(o);
  v1::SyncOptions sync;
  sync.set_prune(prune);
  sync.set_self_heal(self_heal);
  v1::BundleUpdate update;
  update.set_bundle("web");
  update.set_revision(ComputeRevision(set, sync, ""));
  update.set_commit("c" + update.revision().substr(0, 8));
  *update.mutable_sync() = sync;
  update.set_object_count(static_cast<int>(set.size()));
  if (base == nullptr) {
    for (const auto& [k, o] : set.objects()) *update.add_upserts() = *o;
    return update;
  }
  ObjectSet base_set;
  for (const auto& o : base->upserts()) base_set.Put(o);
  update.set_base_revision(base->revision());
  ObjectDelta delta = ComputeDelta(base_set, set);
  for (const auto* o : delta.upserts) *update.add_upserts() = *o;
  for (const auto& k : delta.removed) *update.add_removed() = k;
  return update;
}

// A change watch that says what it is told to say.
class FakeChangeWatch : public ChangeWatch {
 public:
  void Watch(const Kinds& kinds) override {
    kinds_.clear();
    for (const auto& [kind, namespaces] : kinds) kinds_.insert(kind);
    namespaces_ = kinds;
    ++told_;
  }
  Changed TakeChanged() override {
    Changed out;
    out.content.swap(changed_);
    out.status.swap(status_);
    return out;
  }
  bool Watching(const Kind& kind, const std::string& ns) const override {
    return heard_.count(kind.second + "/" + ns) > 0;
  }
  std::set<std::string> heard_;  // "Kind/namespace" a watch follows
  std::set<Kind> kinds_;
  Kinds namespaces_;
  int told_ = 0;
  std::set<std::string> changed_;
  std::set<std::string> status_;
};

class ReconcilerTest : public ::testing::Test {
 protected:
  ReconcilerTest()
      : faulty_(&fs_), applier_("/out", &faulty_), state_("/state", &faulty_), metrics_(registry_) {
    Restart();
  }
  void Restart() {
    reconciler_ =
        std::make_unique<Reconciler>(&applier_, &state_, metrics_, absl::Seconds(2), &clock_);
    ASSERT_TRUE(reconciler_->Load().ok());
  }
  double Applied() { return metrics_.objects_applied.Add({{"result", "ok"}}).Value(); }

  FakeClock clock_;
  MemoryFileSystem fs_;
  FaultyFileSystem faulty_;
  DirectoryApplier applier_;
  BundleStateStore state_;
  metrics::Registry registry_;
  AgentMetrics metrics_;
  std::unique_ptr<Reconciler> reconciler_;
};

TEST_F(ReconcilerTest, AppliesFullThenOnlyChangesAndPrunes) {
  v1::BundleUpdate first = Update({Cm("a"), Cm("b"), Cm("c")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(first);
  EXPECT_TRUE(outcome.ack.ok());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_SYNCED);
  EXPECT_EQ(outcome.status->health(), v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(outcome.status->applied_revision(), first.revision());
  EXPECT_THAT(*fs_.ListFiles("/out"), ElementsAre("shop/ConfigMap/a.yaml", "shop/ConfigMap/b.yaml",
                                                  "shop/ConfigMap/c.yaml"));
  EXPECT_EQ(Applied(), 3);

  v1::BundleUpdate full_second = Update({Cm("a"), Cm("b", "2")});
  v1::BundleUpdate second = Update({Cm("a"), Cm("b", "2")}, &first);
  EXPECT_EQ(second.upserts_size(), 1);
  EXPECT_EQ(second.removed_size(), 1);
  outcome = reconciler_->OnUpdate(second);
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.message();
  EXPECT_EQ(Applied(), 4) << "only the changed object is written";
  EXPECT_THAT(*fs_.ListFiles("/out"),
              ElementsAre("shop/ConfigMap/a.yaml", "shop/ConfigMap/b.yaml"));
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/b.yaml"), HasSubstr("\"2\""));

  // After a restart the agent holds the same revision and resumes from it.
  Restart();
  std::vector<v1::HeldRevision> held = reconciler_->Held();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].revision(), second.revision());
  v1::BundleUpdate third = Update({Cm("a"), Cm("b", "2"), Cm("d")}, &full_second);
  outcome = reconciler_->OnUpdate(third);
  EXPECT_TRUE(outcome.ack.ok());
  EXPECT_EQ(Applied(), 5) << "unchanged objects are not rewritten after a restart";
}

TEST_F(ReconcilerTest, TheDirectoryApplierKeepsWhatIsAnnotatedToBeKept) {
  auto kept = [](const std::string& name, const std::string& annotation) {
    return *MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name +
                           "\n  namespace: shop\n  annotations: {" + annotation + "}\n",
                       "test");
  };
  ASSERT_TRUE(
      reconciler_
          ->OnUpdate(Update({Cm("a"), Cm("gone"), kept("ours", "gitfleet.io/prune: 'false'"),
                             kept("argo", "argocd.argoproj.io/sync-options: Prune=false"),
                             kept("flux", "kustomize.toolkit.fluxcd.io/prune: disabled"),
                             kept("helm", "helm.sh/resource-policy: keep")}))
          .ack.ok());
  // While "b" fails to be written, the prune waits; the dry run says what it will do.
  faulty_.FailPathsContaining("/out/shop/ConfigMap/b.yaml");
  ASSERT_FALSE(reconciler_->OnUpdate(Update({Cm("a"), Cm("b")})).ack.ok());
  v1::DiffRequest request;
  request.set_bundle("web");
  const v1::DiffResult diff = reconciler_->Diff(request);
  std::map<std::string, std::string> changes;
  for (const auto& c : diff.changes()) changes[c.key().name()] = c.change() + ": " + c.detail();
  EXPECT_EQ(changes["gone"], "prune: ");
  EXPECT_EQ(changes["ours"], "keep: it is annotated gitfleet.io/prune=false");
  EXPECT_EQ(changes["argo"], "keep: it is annotated argocd.argoproj.io/sync-options=Prune=false");
  EXPECT_EQ(changes["flux"], "keep: it is annotated kustomize.toolkit.fluxcd.io/prune=disabled");
  EXPECT_EQ(changes["helm"], "keep: it is annotated helm.sh/resource-policy=keep");
  faulty_.Heal();
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a"), Cm("b")})).ack.ok());
  EXPECT_THAT(*fs_.ListFiles("/out"),
              ElementsAre("shop/ConfigMap/a.yaml", "shop/ConfigMap/argo.yaml",
                          "shop/ConfigMap/b.yaml", "shop/ConfigMap/flux.yaml",
                          "shop/ConfigMap/helm.yaml", "shop/ConfigMap/ours.yaml"));
}

TEST_F(ReconcilerTest, ARemovalThatCannotPruneEverythingTriesAgainAndSaysSo) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a"), Cm("b"), Cm("c")})).ack.ok());
  auto removal_condition = [&]() {
    for (const v1::ClusterCondition& c : reconciler_->Conditions()) {
      if (c.type() == "Removal") return c.ok() ? std::string("ok") : c.message();
    }
    return std::string("none");
  };
  EXPECT_EQ(removal_condition(), "ok");
  faulty_.FailPathsContaining("/out/shop/ConfigMap/b.yaml");
  v1::BundleRemoval removal;
  removal.set_bundle("web");
  reconciler_->OnRemoval(removal);
  EXPECT_THAT(*fs_.ListFiles("/out"), ElementsAre("shop/ConfigMap/b.yaml"));
  EXPECT_THAT(reconciler_->Held(), IsEmpty());
  EXPECT_THAT(reconciler_->AllStatuses(), IsEmpty()) << "a removed bundle reports no status";
  EXPECT_THAT(removal_condition(),
              AllOf(HasSubstr("bundle web was removed, but 1 of its objects is still there"),
                    HasSubstr("ConfigMap shop/b: ")));
  EXPECT_EQ(metrics_.objects_left_to_prune.Value(), 1);
  // The removal again (a reconnect) goes on pruning; a restart remembers what is left.
  reconciler_->OnRemoval(removal);
  EXPECT_THAT(*fs_.ListFiles("/out"), ElementsAre("shop/ConfigMap/b.yaml"));
  Restart();
  EXPECT_THAT(reconciler_->Held(), IsEmpty());
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_THAT(removal_condition(), HasSubstr("1 of its objects is still there"));
  // Once it can be deleted, it is, and the bundle is forgotten.
  faulty_.Heal();
  clock_.Advance(absl::Minutes(10));
  EXPECT_THAT(reconciler_->Resync(/*check_drift=*/false), IsEmpty());
  EXPECT_THAT(*fs_.ListFiles("/out"), IsEmpty());
  EXPECT_EQ(removal_condition(), "ok");
  EXPECT_EQ(metrics_.objects_left_to_prune.Value(), 0);
  EXPECT_FALSE(fs_.ReadFile("/state/bundles/web.pb").ok());
}

TEST_F(ReconcilerTest, ABundleBackWhileItsRemovalWasPruningPrunesWhatItNoLongerHolds) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a"), Cm("b")})).ack.ok());
  faulty_.FailPathsContaining("/out/shop/ConfigMap/");
  v1::BundleRemoval removal;
  removal.set_bundle("web");
  reconciler_->OnRemoval(removal);
  EXPECT_EQ(fs_.ListFiles("/out")->size(), 2u);
  faulty_.Heal();
  // Added again before the retry: "a" is held again, "b" is what is left to prune.
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Cm("a", "2")}));
  ASSERT_TRUE(outcome.ack.ok()) << outcome.ack.DebugString();
  EXPECT_THAT(*fs_.ListFiles("/out"), ElementsAre("shop/ConfigMap/a.yaml"));
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("\"2\""));
  ASSERT_EQ(reconciler_->Held().size(), 1u);
  for (const v1::ClusterCondition& c : reconciler_->Conditions()) {
    if (c.type() == "Removal") {
      EXPECT_TRUE(c.ok()) << c.message();
    }
  }
}

v1::ManifestObject Hook(const std::string& generate_name, const std::string& phase,
                        const std::string& policy = "", const std::string& value = "1") {
  return *MakeObject(
      "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: " + generate_name +
          "\n  namespace: shop\n  annotations:\n    argocd.argoproj.io/hook: " + phase + "\n" +
          (policy.empty() ? "" : "    argocd.argoproj.io/hook-delete-policy: " + policy + "\n") +
          "spec: {v: \"" + value + "\"}\n",
      "test");
}

TEST_F(ReconcilerTest, WhatLeavesWithPruneOffIsListedUntilItComesBackOrIsGone) {
  auto no_prune = [](const std::vector<v1::ManifestObject>& objects) {
    return Update(objects, nullptr, /*self_heal=*/true, /*prune=*/false);
  };
  auto left = [](const v1::StatusUpdate& status) {
    std::vector<std::string> keys;
    for (const v1::ObjectKey& key : status.left_unmanaged()) keys.push_back(KeyDisplay(key));
    EXPECT_EQ(status.left_unmanaged_count(), static_cast<int>(keys.size()));
    return keys;
  };
  Reconciler::Outcome outcome = reconciler_->OnUpdate(no_prune({Cm("a"), Cm("b"), Cm("c")}));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_THAT(left(*outcome.status), IsEmpty());

  outcome = reconciler_->OnUpdate(no_prune({Cm("a")}));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_THAT(left(*outcome.status), ElementsAre("ConfigMap shop/b", "ConfigMap shop/c"));
  EXPECT_EQ(fs_.ListFiles("/out")->size(), 3u) << "prune is off: nothing is deleted";
  EXPECT_EQ(metrics_.objects_left_unmanaged.Value(), 2);

  // The list is part of the agent's state: a restart reports the same.
  Restart();
  std::vector<v1::StatusUpdate> all = reconciler_->AllStatuses();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_THAT(left(all[0]), ElementsAre("ConfigMap shop/b", "ConfigMap shop/c"));

  // b comes back into a revision: managed again. c is deleted by hand, which the next
  // drift check notices.
  outcome = reconciler_->OnUpdate(no_prune({Cm("a"), Cm("b")}));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_THAT(left(*outcome.status), ElementsAre("ConfigMap shop/c"));
  EXPECT_THAT(reconciler_->Resync(/*check_drift=*/true), IsEmpty()) << "c is still there";
  ASSERT_TRUE(fs_.DeleteFile("/out/shop/ConfigMap/c.yaml", "/out").ok());
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/true);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_THAT(left(changed[0]), IsEmpty());
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_SYNCED);

  // With prune on, what leaves is deleted and never listed.
  outcome = reconciler_->OnUpdate(Update({Cm("a")}));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_THAT(left(*outcome.status), IsEmpty());
  EXPECT_THAT(*fs_.ListFiles("/out"), ElementsAre("shop/ConfigMap/a.yaml"));
}

TEST_F(ReconcilerTest, TheDirectoryApplierRecordsHooksUnderHooks) {
  v1::BundleUpdate first =
      Update({Cm("a"), Hook("migrate-", "PreSync", "HookSucceeded"), Hook("report-", "PostSync")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(first);
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.message();
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_SYNCED) << outcome.status->message();
  // A file succeeds once written: migrate ran and was deleted (HookSucceeded); report
  // stays until its next run (BeforeHookCreation). Hooks are not objects of the bundle.
  std::vector<std::string> files = *fs_.ListFiles("/out");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_THAT(files[0], ::testing::MatchesRegex("_hooks/shop/Job/report-[a-z0-9]{5}\\.yaml"));
  EXPECT_EQ(files[1], "shop/ConfigMap/a.yaml");
  EXPECT_THAT(*fs_.ReadFile("/out/" + files[0]), HasSubstr("name: report-"));

  // The next revision runs them again; the last report is replaced, never pruned.
  outcome =
      reconciler_->OnUpdate(Update({Cm("a", "2"), Hook("migrate-", "PreSync", "HookSucceeded"),
                                    Hook("report-", "PostSync", "", "2")}));
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_SYNCED);
  std::vector<std::string> again = *fs_.ListFiles("/out");
  ASSERT_EQ(again.size(), 2u);
  EXPECT_NE(again[0], files[0]);
  EXPECT_THAT(*fs_.ReadFile("/out/" + again[0]), HasSubstr("v: \"2\""));
  outcome = reconciler_->OnUpdate(Update({Cm("a", "2")}));
  EXPECT_EQ(*fs_.ListFiles("/out"), again) << "a hook that leaves the bundle is not pruned";

  // Runs happen once per revision: a restart and a drift check start none.
  Restart();
  reconciler_->Resync(true);
  EXPECT_EQ(*fs_.ListFiles("/out"), again);
}

// A directory applier whose objects named in `progressing` are not Healthy yet, and
// which records what it applies and which hooks it creates, in order.
class WatchedApplier : public DirectoryApplier {
 public:
  using DirectoryApplier::DirectoryApplier;
  absl::StatusOr<ApplyResult> Apply(const v1::ManifestObject& object, const ApplyContext& context,
                                    bool first) override {
    absl::StatusOr<ApplyResult> result = DirectoryApplier::Apply(object, context, first);
    if (result.ok()) calls.push_back(object.key().name());
    return result;
  }
  absl::StatusOr<v1::ObjectKey> CreateHook(const v1::ManifestObject& hook,
                                           const ApplyContext& context) override {
    calls.push_back("hook " + hook.key().name());
    return DirectoryApplier::CreateHook(hook, context);
  }
  v1::ResourceHealth Health(const v1::ManifestObject& object,
                            const ApplyContext& context) override {
    v1::ResourceHealth health = DirectoryApplier::Health(object, context);
    if (health.health() == v1::HEALTH_STATE_HEALTHY && progressing.count(object.key().name())) {
      health.set_health(v1::HEALTH_STATE_PROGRESSING);
      health.set_message("1 of 2 replicas updated");
    }
    return health;
  }
  std::set<std::string> progressing;
  std::vector<std::string> calls;
};

class SyncWaveTest : public ::testing::Test {
 protected:
  SyncWaveTest() : applier_("/out", &faulty_), state_("/state", &faulty_), metrics_(registry_) {
    Restart();
  }
  void Restart() {
    reconciler_ =
        std::make_unique<Reconciler>(&applier_, &state_, metrics_, absl::Seconds(2), &clock_);
    ASSERT_TRUE(reconciler_->Load().ok());
  }
  // A ConfigMap with these annotation lines.
  static v1::ManifestObject Annotated(const std::string& name, const std::string& annotations,
                                      const std::string& value = "1") {
    return *MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name +
                           "\n  namespace: shop\n  annotations:\n" + annotations + "data: {v: \"" +
                           value + "\"}\n",
                       "test");
  }
  bool Exists(const std::string& name) {
    return fs_.ReadFile("/out/shop/ConfigMap/" + name + ".yaml").ok();
  }
  // One pass after the health interval; the status it reports, or the last one.
  v1::StatusUpdate Pass(bool check_drift = false) {
    clock_.Advance(absl::Seconds(2));
    reconciler_->Resync(check_drift);
    std::vector<v1::StatusUpdate> all = reconciler_->AllStatuses();
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? v1::StatusUpdate() : all[0];
  }

  FakeClock clock_;
  MemoryFileSystem fs_;
  FaultyFileSystem faulty_{&fs_};
  WatchedApplier applier_;
  BundleStateStore state_;
  metrics::Registry registry_;
  AgentMetrics metrics_;
  std::unique_ptr<Reconciler> reconciler_;
};

// A status the change watch saw move is read at once: a rollout's end is reported when it
// happens, not at the next health poll (which backs off while nothing moves).
TEST_F(SyncWaveTest, AStatusTheChangeWatchSawMoveIsReadAtOnce) {
  FakeChangeWatch watch;
  reconciler_->SetChangeWatch(&watch);
  applier_.progressing = {"web"};
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Cm("web")}));
  ASSERT_TRUE(outcome.ack.ok());
  ASSERT_EQ(outcome.status->health(), v1::HEALTH_STATE_PROGRESSING);
  // Polls that find nothing new come less and less often: 2 s, then 4, then 8...
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(absl::Seconds(2 << i));
    reconciler_->Resync(/*check_drift=*/false);
  }
  applier_.progressing.clear();  // the rollout ends
  clock_.Advance(absl::Seconds(1));
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_EQ(reconciler_->AllStatuses().at(0).health(), v1::HEALTH_STATE_PROGRESSING)
      << "the next poll is not due";
  watch.status_ = {"web"};
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].health(), v1::HEALTH_STATE_HEALTHY);

  // Statuses that move many times a second are read at most once a second.
  v1::BundleUpdate second = Update({Cm("web", "2")});
  applier_.progressing = {"web"};
  ASSERT_EQ(reconciler_->OnUpdate(second).status->health(), v1::HEALTH_STATE_PROGRESSING);
  applier_.progressing.clear();
  watch.status_ = {"web"};
  EXPECT_THAT(reconciler_->Resync(/*check_drift=*/false), IsEmpty()) << "read a moment ago";
  clock_.Advance(absl::Seconds(1));
  changed = reconciler_->Resync(/*check_drift=*/false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].health(), v1::HEALTH_STATE_HEALTHY);
}

TEST_F(SyncWaveTest, AWaveGoesOnlyOnceTheLowerWavesAreHealthy) {
  v1::BundleUpdate first = Update({Cm("legacy")});
  ASSERT_TRUE(reconciler_->OnUpdate(first).ack.ok());
  applier_.calls.clear();
  // Argo CD's annotation counts as gitfleet's does.
  const std::vector<v1::ManifestObject> next = {
      Annotated("config", "    gitfleet.io/sync-wave: \"-1\"\n"), Cm("db"),
      Annotated("web", "    argocd.argoproj.io/sync-wave: \"1\"\n")};
  applier_.progressing = {"db"};
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update(next));
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.message();
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_APPLYING);
  EXPECT_EQ(outcome.status->message(),
            "later sync waves wait for wave 0 to be Healthy: ConfigMap shop/db is progressing: 1 "
            "of 2 replicas updated");
  EXPECT_EQ(outcome.status->applied_revision(), first.revision());
  EXPECT_EQ(metrics_.bundles.Add({{"sync_state", "applying"}}).Value(), 1);
  EXPECT_THAT(applier_.calls, ElementsAre("config", "db"));
  EXPECT_FALSE(Exists("web"));
  EXPECT_TRUE(Exists("legacy")) << "nothing is pruned before the whole revision is applied";

  // Passes look again; a restart remembers where the revision stands.
  EXPECT_EQ(Pass().sync_state(), v1::SYNC_STATE_APPLYING);
  Restart();
  EXPECT_EQ(Pass().sync_state(), v1::SYNC_STATE_APPLYING);
  EXPECT_FALSE(Exists("web"));

  applier_.progressing.clear();
  v1::StatusUpdate status = Pass();
  EXPECT_EQ(status.sync_state(), v1::SYNC_STATE_SYNCED) << status.message();
  EXPECT_EQ(status.applied_revision(), Update(next).revision());
  EXPECT_THAT(applier_.calls, ElementsAre("config", "db", "web"));
  EXPECT_FALSE(Exists("legacy"));
  EXPECT_EQ(metrics_.bundles.Add({{"sync_state", "applying"}}).Value(), 0)
      << "a state no bundle is in reads 0, not its last count";
  EXPECT_EQ(metrics_.bundles.Add({{"sync_state", "synced"}}).Value(), 1);

  // A drift correction of an applied revision does not wait.
  applier_.progressing = {"db"};
  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/web.yaml", "tampered").ok());
  status = Pass(/*check_drift=*/true);
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/web.yaml"), HasSubstr("name: web"));
  EXPECT_EQ(status.sync_state(), v1::SYNC_STATE_SYNCED);
}

TEST_F(SyncWaveTest, SyncHooksRunInTheirWaveBetweenTheObjects) {
  const std::vector<v1::ManifestObject> objects = {
      Annotated("config", "    gitfleet.io/sync-wave: \"-1\"\n"), Cm("db"),
      Annotated("web", "    gitfleet.io/sync-wave: \"1\"\n"), Hook("seed-", "Sync"),
      // Above every object: runs once web is Healthy.
      *MakeObject("apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: smoke-\n"
                  "  namespace: shop\n  annotations:\n    argocd.argoproj.io/hook: Sync\n"
                  "    argocd.argoproj.io/sync-wave: \"5\"\n",
                  "test")};
  applier_.progressing = {"db"};
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update(objects));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_APPLYING);
  // seed (wave 0) started with db's wave; web waits for both.
  EXPECT_THAT(applier_.calls, ElementsAre("config", "db", "hook seed-"));

  applier_.progressing = {"web"};
  EXPECT_EQ(Pass().sync_state(), v1::SYNC_STATE_APPLYING);
  EXPECT_THAT(applier_.calls, ElementsAre("config", "db", "hook seed-", "web"));
  applier_.progressing.clear();
  v1::StatusUpdate status = Pass();
  EXPECT_EQ(status.sync_state(), v1::SYNC_STATE_SYNCED) << status.message();
  EXPECT_THAT(applier_.calls, ElementsAre("config", "db", "hook seed-", "web", "hook smoke-"));
}

TEST_F(SyncWaveTest, TheLastPossibleWaveRunsToo) {
  Reconciler::Outcome outcome = reconciler_->OnUpdate(
      Update({Cm("db"),
              *MakeObject("apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: last-\n"
                          "  namespace: shop\n  annotations:\n    argocd.argoproj.io/hook: Sync\n"
                          "    argocd.argoproj.io/sync-wave: \"2147483647\"\n",
                          "test")}));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_SYNCED) << outcome.status->message();
  EXPECT_THAT(applier_.calls, ElementsAre("db", "hook last-"));
}

TEST_F(SyncWaveTest, AFailedObjectStopsTheLaterWavesAndPrunesNothing) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("legacy")})).ack.ok());
  // db fails to apply (a name the directory applier refuses).
  const std::vector<v1::ManifestObject> next = {
      Annotated("../db", "    note: wave 0\n"),
      Annotated("web", "    gitfleet.io/sync-wave: \"1\"\n")};
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update(next));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(outcome.status->message(),
              AllOf(HasSubstr("ConfigMap shop/../db: "), HasSubstr("not a valid Kubernetes name"),
                    HasSubstr("later sync waves wait")));
  EXPECT_FALSE(Exists("web"));
  EXPECT_TRUE(Exists("legacy"));

  // The mended revision goes through, and only then is legacy pruned.
  outcome = reconciler_->OnUpdate(
      Update({Cm("db"), Annotated("web", "    gitfleet.io/sync-wave: \"1\"\n")}));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_SYNCED) << outcome.status->message();
  EXPECT_TRUE(Exists("web"));
  EXPECT_FALSE(Exists("legacy"));
}

TEST_F(SyncWaveTest, AReplacementThatFailsKeepsWhatItReplaces) {
  // One wave: the rest still applies, but nothing is pruned until every object is.
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a"), Cm("web-v1")})).ack.ok());
  Reconciler::Outcome outcome = reconciler_->OnUpdate(
      Update({Cm("a", "2"), Annotated("../web-v2", "    note: a name no cluster takes\n")}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("; 1 object that left the bundle is pruned once every object applies"));
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("\"2\""));
  EXPECT_TRUE(Exists("web-v1"));
  EXPECT_FALSE(Exists("web-v2"));
  outcome = reconciler_->OnUpdate(Update({Cm("a", "2"), Cm("web-v2")}));
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_SYNCED);
  EXPECT_THAT(*fs_.ListFiles("/out"),
              ElementsAre("shop/ConfigMap/a.yaml", "shop/ConfigMap/web-v2.yaml"));
}

TEST_F(ReconcilerTest, ANamespaceAnotherBundleStillUsesIsNotPruned) {
  auto ns = [](const std::string& name) {
    return *MakeObject("apiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + "}\n", "test");
  };
  auto cm = [](const std::string& ns, const std::string& name) {
    return *MakeObject(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: " + ns + "}\n",
        "test");
  };
  auto update = [](const std::string& bundle, const std::vector<v1::ManifestObject>& objects) {
    v1::BundleUpdate u = Update(objects);
    u.set_bundle(bundle);
    return u;
  };
  ASSERT_TRUE(reconciler_->OnUpdate(update("web", {ns("shop"), cm("shop", "a")})).ack.ok());
  ASSERT_TRUE(reconciler_->OnUpdate(update("other", {cm("shop", "b")})).ack.ok());

  // web drops its Namespace while other's ConfigMap lives there: it stays, and says why.
  Reconciler::Outcome outcome = reconciler_->OnUpdate(update("web", {cm("shop", "a")}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("1 object that left the bundle could not be pruned; first: Namespace "
                        "shop: prune: bundle other still applies 1 object in it (ConfigMap "
                        "shop/b); deleting the Namespace would delete them"));
  EXPECT_TRUE(fs_.ReadFile("/out/_cluster/Namespace/shop.yaml").ok());
  // The dry run says the same.
  v1::DiffRequest request;
  request.set_bundle("web");
  v1::DiffResult diff = reconciler_->Diff(request);
  ASSERT_EQ(diff.changes_size(), 1) << diff.DebugString();
  EXPECT_EQ(diff.changes(0).change(), "keep");
  EXPECT_THAT(diff.changes(0).detail(), HasSubstr("bundle other still applies 1 object in it"));

  // Once nothing else lives there, the retry prunes it.
  v1::BundleRemoval removal;
  removal.set_bundle("other");
  reconciler_->OnRemoval(removal);
  clock_.Advance(absl::Seconds(1));  // the first retry waits at most 1 s
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_SYNCED) << changed[0].message();
  EXPECT_FALSE(fs_.ReadFile("/out/_cluster/Namespace/shop.yaml").ok());

  // Removing a whole bundle spares such a Namespace too; its own objects go.
  ASSERT_TRUE(reconciler_->OnUpdate(update("lab", {ns("lab"), cm("lab", "c")})).ack.ok());
  ASSERT_TRUE(reconciler_->OnUpdate(update("guest", {cm("lab", "d")})).ack.ok());
  removal.set_bundle("lab");
  reconciler_->OnRemoval(removal);
  EXPECT_TRUE(fs_.ReadFile("/out/_cluster/Namespace/lab.yaml").ok());
  EXPECT_FALSE(fs_.ReadFile("/out/lab/ConfigMap/c.yaml").ok());
  EXPECT_TRUE(fs_.ReadFile("/out/lab/ConfigMap/d.yaml").ok());
}

// A bundle to be applied as a service account is not applied by an applier that cannot act
// as one (the directory applier, here): as the agent, it would have more rights than asked.
TEST_F(ReconcilerTest, ABundleForAServiceAccountIsNeverAppliedAsTheAgent) {
  ObjectSet set;
  set.Put(*MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: team-a}\n",
                      "test"));
  v1::SyncOptions sync;
  sync.set_service_account("deployer");
  v1::BundleUpdate update;
  update.set_bundle("team-a-app");
  update.set_revision(ComputeRevision(set, sync, "team-a"));
  update.set_commit("c1");
  update.set_target_namespace("team-a");
  *update.mutable_sync() = sync;
  update.set_object_count(1);
  for (const auto& [k, o] : set.objects()) *update.add_upserts() = *o;
  Reconciler::Outcome outcome = reconciler_->OnUpdate(update);
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("nothing of this revision is applied: bundle team-a-app is to be applied "
                        "as service account deployer, and the directory applier cannot act as "
                        "another user"));
  EXPECT_THAT(*fs_.ListFiles("/out"), ::testing::IsEmpty());
}

// A team's bundle (SyncOptions.allowed_namespaces) places objects in its namespaces alone:
// a revision with one cluster-scoped object, or one elsewhere (a hook too), fails whole
// before anything of it is applied; the revision id covers the namespaces.
TEST_F(ReconcilerTest, ATeamsBundleStaysWithinItsNamespaces) {
  auto object = [](const std::string& yaml) { return *MakeObject(yaml, "test"); };
  auto cm = [&](const std::string& ns, const std::string& name) {
    return object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name +
                  ", namespace: " + ns + "}\n");
  };
  auto team_update = [](const std::vector<v1::ManifestObject>& objects,
                        bool id_covers_namespaces = true) {
    ObjectSet set;
    for (const auto& o : objects) set.Put(o);
    v1::SyncOptions sync;
    sync.set_prune(true);
    v1::BundleUpdate update;
    update.set_bundle("team-a-app");
    update.set_revision(ComputeRevision(set, sync, ""));
    sync.add_allowed_namespaces("team-a-*");
    sync.add_allowed_namespaces("shared");
    if (id_covers_namespaces) update.set_revision(ComputeRevision(set, sync, ""));
    update.set_commit("c" + update.revision().substr(0, 8));
    *update.mutable_sync() = sync;
    update.set_object_count(static_cast<int>(set.size()));
    for (const auto& [k, o] : set.objects()) *update.add_upserts() = *o;
    return update;
  };
  const v1::ManifestObject role = object(
      "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: "
      "god}\nrules: []\n");
  const v1::ManifestObject hook = object(
      "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  namespace: kube-system\n"
      "  annotations: {argocd.argoproj.io/hook: PreSync}\nspec: {}\n");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(
      team_update({cm("team-a-web", "a"), role, cm("kube-system", "b"), hook}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("3 objects are outside the bundle's namespaces, so nothing of this "
                        "revision is applied"));
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("ClusterRole god is cluster-scoped; the bundle's scope allows objects in "
                        "namespaces team-a-*,shared alone"));
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("ConfigMap kube-system/b is placed in namespace kube-system, outside the "
                        "bundle's scope (namespaces team-a-*,shared)"));
  EXPECT_THAT(outcome.status->message(), HasSubstr("Job kube-system/migrate"));
  EXPECT_THAT(*fs_.ListFiles("/out"), ::testing::IsEmpty()) << "not even the one inside";

  // Within them, it applies; a retry after a backoff finds the same.
  outcome = reconciler_->OnUpdate(team_update({cm("team-a-web", "a"), cm("shared", "c")}));
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.message();
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_SYNCED) << outcome.status->message();
  EXPECT_THAT(*fs_.ListFiles("/out"),
              ElementsAre("shared/ConfigMap/c.yaml", "team-a-web/ConfigMap/a.yaml"));

  // A revision whose id leaves the namespaces out is not the revision it claims to be.
  outcome = reconciler_->OnUpdate(team_update({cm("team-a-web", "a")}, false));
  EXPECT_FALSE(outcome.ack.ok());
  EXPECT_THAT(outcome.ack.message(), HasSubstr("does not match its revision"));
  EXPECT_TRUE(fs_.ReadFile("/out/shared/ConfigMap/c.yaml").ok()) << "nothing pruned";
}

// A scope's cluster-kinds= (SyncOptions.allowed_cluster_kinds) lets those cluster-scoped
// kinds past the namespace fence, a Namespace only when it is one of the team's own; the
// revision id covers them.
TEST_F(ReconcilerTest, ATeamsClusterKindsGoPastItsNamespacesAndItsOwnNamespacesAlone) {
  auto object = [](const std::string& yaml) { return *MakeObject(yaml, "test"); };
  auto ns = [&](const std::string& name) {
    return object("apiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + "}\n");
  };
  const v1::ManifestObject role = object(
      "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: "
      "team-a-view}\nrules: []\n");
  const v1::ManifestObject binding = object(
      "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: "
      "team-a-god}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "
      "cluster-admin}\nsubjects: []\n");
  auto team_update = [](const std::vector<v1::ManifestObject>& objects,
                        bool id_covers_kinds = true) {
    ObjectSet set;
    for (const auto& o : objects) set.Put(o);
    v1::SyncOptions sync;
    sync.add_allowed_namespaces("team-a-*");
    v1::BundleUpdate update;
    update.set_bundle("team-a-base");
    update.set_revision(ComputeRevision(set, sync, ""));
    sync.add_allowed_cluster_kinds("rbac.authorization.k8s.io/ClusterRole");
    sync.add_allowed_cluster_kinds("Namespace");
    if (id_covers_kinds) update.set_revision(ComputeRevision(set, sync, ""));
    update.set_commit("c" + update.revision().substr(0, 8));
    *update.mutable_sync() = sync;
    update.set_object_count(static_cast<int>(set.size()));
    for (const auto& [k, o] : set.objects()) *update.add_upserts() = *o;
    return update;
  };
  Reconciler::Outcome outcome =
      reconciler_->OnUpdate(team_update({ns("team-a-web"), role, ns("kube-system"), binding}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("2 objects are outside the bundle's namespaces, so nothing of this "
                        "revision is applied"));
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("Namespace kube-system is a namespace outside the bundle's scope "
                        "(namespaces team-a-*)"));
  EXPECT_THAT(outcome.status->message(),
              HasSubstr("ClusterRoleBinding team-a-god is cluster-scoped; the bundle's scope "
                        "allows objects in namespaces team-a-* and cluster-scoped kinds "
                        "rbac.authorization.k8s.io/ClusterRole,Namespace alone"));
  EXPECT_THAT(*fs_.ListFiles("/out"), ::testing::IsEmpty());

  outcome = reconciler_->OnUpdate(team_update({ns("team-a-web"), role}));
  EXPECT_TRUE(outcome.ack.ok()) << outcome.ack.message();
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_SYNCED) << outcome.status->message();
  EXPECT_THAT(*fs_.ListFiles("/out"), ElementsAre("_cluster/ClusterRole/team-a-view.yaml",
                                                  "_cluster/Namespace/team-a-web.yaml"));

  // A revision whose id leaves the kinds out is not the revision it claims to be.
  outcome = reconciler_->OnUpdate(team_update({role}, false));
  EXPECT_FALSE(outcome.ack.ok());
  EXPECT_THAT(outcome.ack.message(), HasSubstr("does not match its revision"));
}

// A file says nothing of who wrote it, so the directory applier asks the agent's
// inventories: as on Kubernetes, one bundle's object is not taken over by another (the
// two would overwrite each other for ever), unless the first let go of it.
TEST_F(ReconcilerTest, TheDirectoryApplierDoesNotLetTwoBundlesManageOneObject) {
  auto update = [](const std::string& bundle, const std::vector<v1::ManifestObject>& objects) {
    v1::BundleUpdate u = Update(objects);
    u.set_bundle(bundle);
    return u;
  };
  ASSERT_TRUE(reconciler_->OnUpdate(update("web", {Cm("a", "web's")})).ack.ok());
  Reconciler::Outcome outcome = reconciler_->OnUpdate(update("copy", {Cm("a", "copy's"), Cm("b")}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_EQ(outcome.ack.errors_size(), 1);
  EXPECT_THAT(outcome.ack.errors(0).message(),
              HasSubstr("bundle web already manages this object; it is not taken over"));
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("web's"));
  EXPECT_TRUE(fs_.ReadFile("/out/shop/ConfigMap/b.yaml").ok()) << "the rest is applied";

  // Once web no longer holds it, copy takes it over at its next try.
  ASSERT_TRUE(reconciler_->OnUpdate(update("web", {Cm("c")})).ack.ok());
  clock_.Advance(absl::Seconds(2));
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("copy's"));
}

TEST_F(ReconcilerTest, DeltaAgainstUnknownBaseAsksForFullSet) {
  v1::BundleUpdate first = Update({Cm("a")});
  v1::BundleUpdate second = Update({Cm("a"), Cm("b")}, &first);
  Reconciler::Outcome outcome = reconciler_->OnUpdate(second);
  EXPECT_TRUE(outcome.ack.need_full());
  EXPECT_TRUE(fs_.ListFiles("/out")->empty());
}

TEST_F(ReconcilerTest, FailedObjectNacksKeepsOthersAndRetries) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a"), Cm("b")})).ack.ok());
  faulty_.FailPathsContaining("/out/shop/ConfigMap/b.yaml");
  v1::BundleUpdate bad = Update({Cm("a", "2"), Cm("b", "2")});
  Reconciler::Outcome outcome = reconciler_->OnUpdate(bad);
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_EQ(outcome.ack.errors_size(), 1);
  EXPECT_EQ(outcome.ack.errors(0).key().name(), "b");
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(outcome.status->message(), HasSubstr("ConfigMap shop/b"));
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("\"2\""));
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/b.yaml"), HasSubstr("\"1\""))
      << "the last applied content stays";

  faulty_.Heal();
  clock_.Advance(absl::Seconds(1));  // the first retry waits at most 1 s
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(false);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_SYNCED);
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/b.yaml"), HasSubstr("\"2\""));
}

TEST_F(ReconcilerTest, SelfHealsDriftAndReportsItWhenOff) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a")})).ack.ok());
  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/a.yaml", "tampered").ok());
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(true);
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("name: a"));
  EXPECT_EQ(metrics_.drift_corrections.Value(), 1);
  ASSERT_EQ(changed.size(), 1u) << "drift count is part of status";
  EXPECT_EQ(changed[0].drift_corrections(), 1);

  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("x")}, nullptr, /*self_heal=*/false)).ack.ok());
  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/x.yaml", "tampered").ok());
  changed = reconciler_->Resync(true);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_OUT_OF_SYNC);
  EXPECT_EQ(*fs_.ReadFile("/out/shop/ConfigMap/x.yaml"), "tampered");
}

// Between periodic checks, a bundle the change watch names is checked at once (at most once
// per interval); the watch is told the kinds the bundles hold as that changes.
TEST_F(ReconcilerTest, ABundleTheChangeWatchNamesIsCheckedBeforeTheNextPeriodicCheck) {
  FakeChangeWatch watch;
  reconciler_->SetChangeWatch(&watch, absl::Seconds(2));
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a")})).ack.ok());
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_THAT(watch.kinds_, ElementsAre(ChangeWatch::Kind{"v1", "ConfigMap"}));
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_EQ(watch.told_, 1) << "told again only when what the bundles hold changes";

  // Not named: a pass without the periodic check leaves the tampering alone.
  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/a.yaml", "tampered").ok());
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_EQ(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), "tampered");

  watch.changed_ = {"web", "gone"};  // a bundle it does not hold is ignored
  std::vector<v1::StatusUpdate> changed = reconciler_->Resync(/*check_drift=*/false);
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("name: a"));
  EXPECT_EQ(metrics_.drift_corrections.Value(), 1);
  ASSERT_EQ(changed.size(), 1u);

  // Named again within the interval: checked once it has passed, not before.
  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/a.yaml", "tampered").ok());
  watch.changed_ = {"web"};
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_EQ(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), "tampered");
  clock_.Advance(absl::Seconds(2));
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("name: a"));
  EXPECT_EQ(metrics_.drift_corrections.Value(), 2);

  // What the bundles hold changes: the watch is told, with the namespaces each kind's
  // objects are in (one that names none is in the bundle's target namespace, or "").
  v1::ManifestObject deployment = *MakeObject(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: shop}\n", "test");
  v1::ManifestObject placed =
      *MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: placed}\n", "test");
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a"), deployment, placed})).ack.ok());
  reconciler_->Resync(/*check_drift=*/false);
  EXPECT_THAT(watch.kinds_, ElementsAre(ChangeWatch::Kind{"apps/v1", "Deployment"},
                                        ChangeWatch::Kind{"v1", "ConfigMap"}));
  EXPECT_THAT(watch.namespaces_[ChangeWatch::Kind("v1", "ConfigMap")], ElementsAre("", "shop"));
  EXPECT_THAT(watch.namespaces_[ChangeWatch::Kind("apps/v1", "Deployment")], ElementsAre("shop"));
}

// A bundle whose objects the change watch all hears is checked periodically at the longer
// interval (a change brings a check forward); one with an object no watch follows is
// checked at every periodic check, as without a watch.
TEST_F(ReconcilerTest, ABundleTheWatchHearsWholeIsCheckedAtTheLongerInterval) {
  FakeChangeWatch watch;
  watch.heard_ = {"ConfigMap/shop"};
  reconciler_->SetChangeWatch(&watch, absl::Seconds(2), absl::Minutes(5));
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a")})).ack.ok());
  reconciler_->Resync(/*check_drift=*/true);  // its first periodic check

  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/a.yaml", "tampered").ok());
  clock_.Advance(absl::Seconds(30));
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), "tampered")
      << "heard whole: the periodic check waits for the longer interval";
  clock_.Advance(absl::Minutes(5));
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("name: a"));

  // A new revision (other rules, the same objects) is checked whole at the next periodic
  // check: what the watch heard was judged by the one before.
  ASSERT_TRUE(reconciler_
                  ->OnUpdate(Update({Cm("a")}, nullptr, /*self_heal=*/true,
                                    /*prune=*/false))
                  .ack.ok());
  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/a.yaml", "tampered").ok());
  clock_.Advance(absl::Seconds(30));
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("name: a"));
  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/a.yaml", "tampered").ok());
  clock_.Advance(absl::Seconds(30));
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_EQ(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), "tampered") << "then the longer wait";

  // An object in a namespace no watch follows: every periodic check looks.
  v1::ManifestObject elsewhere =
      *MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: web}\n", "test");
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a"), elsewhere})).ack.ok());
  reconciler_->Resync(/*check_drift=*/true);
  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/a.yaml", "tampered").ok());
  clock_.Advance(absl::Seconds(30));
  reconciler_->Resync(/*check_drift=*/true);
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("name: a"));
}

TEST_F(ReconcilerTest, DriftCheckThatFindsNothingWritesNoState) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a"), Cm("b")})).ack.ok());
  // Any state write would now fail and turn the bundle Failed.
  faulty_.FailPathsContaining("/state/");
  EXPECT_TRUE(reconciler_->Resync(true).empty());
  std::vector<v1::StatusUpdate> statuses = reconciler_->AllStatuses();
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].sync_state(), v1::SYNC_STATE_SYNCED);
  // An update that adds no key records intent without a second write; one that adds a
  // key must record it first, and fails cleanly when it cannot.
  Reconciler::Outcome adds = reconciler_->OnUpdate(Update({Cm("a"), Cm("b"), Cm("c")}));
  EXPECT_FALSE(adds.ack.ok());
  EXPECT_THAT(adds.status->message(), HasSubstr("cannot record state"));
  EXPECT_FALSE(fs_.ReadFile("/out/shop/ConfigMap/c.yaml").ok()) << "nothing applied unrecorded";
}

TEST_F(ReconcilerTest, RefusesNamesThatEscapeTheDirectory) {
  v1::ManifestObject evil =
      *MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"../../etc/passwd\"}\n", "t");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Cm("a"), evil}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_EQ(outcome.ack.errors_size(), 1);
  EXPECT_THAT(outcome.ack.errors(0).message(), HasSubstr("not a valid Kubernetes name"));
  EXPECT_THAT(*fs_.ListFiles("/out"), ElementsAre("shop/ConfigMap/a.yaml"));
}

TEST_F(ReconcilerTest, RemovalPrunesEverythingAndForgets) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a"), Cm("b")})).ack.ok());
  v1::BundleRemoval removal;
  removal.set_bundle("web");
  reconciler_->OnRemoval(removal);
  EXPECT_TRUE(fs_.ListFiles("/out")->empty());
  EXPECT_TRUE(reconciler_->Held().empty());
  Restart();
  EXPECT_TRUE(reconciler_->Held().empty());
}

}  // namespace
}  // namespace gitfleet

namespace gitfleet {
namespace {

class ReconcilerSafetyTest : public ReconcilerTest {
 protected:
  v1::BundleUpdate At(int64_t generation, const std::vector<v1::ManifestObject>& objects) {
    v1::BundleUpdate update = Update(objects);
    update.set_generation(generation);
    return update;
  }
  v1::BundleRemoval Removal(int64_t generation) {
    v1::BundleRemoval removal;
    removal.set_bundle("web");
    removal.set_generation(generation);
    removal.set_reason("removed");
    return removal;
  }
  std::string ConditionReason() {
    for (const v1::ClusterCondition& c : reconciler_->Conditions()) {
      if (c.type() == "ControlPlaneTrust") return c.ok() ? "ok" : c.reason();
    }
    return "none";
  }
};

TEST_F(ReconcilerSafetyTest, AnOlderGenerationNeitherReplacesNorRemovesANewerOne) {
  reconciler_->SetServingFleet("fleet-a", true);
  ASSERT_TRUE(reconciler_->OnUpdate(At(3, {Cm("a", "new")})).ack.ok());
  Reconciler::Outcome older = reconciler_->OnUpdate(At(2, {Cm("a", "old")}));
  EXPECT_FALSE(older.ack.ok());
  EXPECT_TRUE(older.ack.refused());
  EXPECT_THAT(older.ack.message(), HasSubstr("control plane behind: it offers generation 2"));
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("new"));
  EXPECT_EQ(ConditionReason(), "ControlPlaneBehind");
  reconciler_->OnRemoval(Removal(2));
  EXPECT_TRUE(fs_.ReadFile("/out/shop/ConfigMap/a.yaml").ok()) << "an older tombstone";
  // The same generation (a new commit) and a newer one go through; so does a removal.
  ASSERT_TRUE(reconciler_->OnUpdate(At(3, {Cm("a", "newer")})).ack.ok());
  EXPECT_EQ(ConditionReason(), "ok");
  Restart();  // what was applied is remembered
  reconciler_->SetServingFleet("fleet-a", true);
  EXPECT_TRUE(reconciler_->OnUpdate(At(1, {Cm("a", "old")})).ack.refused());
  reconciler_->OnRemoval(Removal(4));
  EXPECT_FALSE(fs_.ReadFile("/out/shop/ConfigMap/a.yaml").ok());
}

TEST_F(ReconcilerSafetyTest, AnotherFleetMayAddButNotReplaceOrRemoveUntilAdopted) {
  reconciler_->SetServingFleet("fleet-a", true);
  ASSERT_TRUE(reconciler_->OnUpdate(At(5, {Cm("a")})).ack.ok());
  reconciler_->SetServingFleet("fleet-b", /*trusted=*/false);
  EXPECT_TRUE(reconciler_->OnUpdate(At(9, {Cm("a", "theirs")})).ack.refused());
  reconciler_->OnRemoval(Removal(9));
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("\"1\""));
  EXPECT_EQ(ConditionReason(), "ForeignFleet");
  v1::BundleUpdate other = At(1, {Cm("b")});
  other.set_bundle("other");
  EXPECT_TRUE(reconciler_->OnUpdate(other).ack.ok()) << "a bundle it does not hold is fine";
  // An operator's forget is accepted from any control plane.
  v1::BundleRemoval forget;
  forget.set_bundle("other");
  forget.set_forget(true);
  forget.set_prune(false);
  reconciler_->OnRemoval(forget);
  EXPECT_TRUE(fs_.ReadFile("/out/shop/ConfigMap/b.yaml").ok()) << "forgotten without prune";
  EXPECT_EQ(reconciler_->Held().size(), 1u);

  reconciler_->Adopt();
  reconciler_->SetServingFleet("fleet-b", true);
  EXPECT_TRUE(reconciler_->OnUpdate(At(1, {Cm("a", "theirs")})).ack.ok())
      << "adopted: its generations start afresh";
  EXPECT_EQ(ConditionReason(), "ok");
}

TEST_F(ReconcilerSafetyTest, PruneDeletesWhatItCreatedAndKeepsWhatItFound) {
  ASSERT_TRUE(fs_.WriteFileAtomically("/out/shop/ConfigMap/found.yaml", "someone's").ok());
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("made"), Cm("found")})).ack.ok());
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("other")})).ack.ok());
  EXPECT_FALSE(fs_.ReadFile("/out/shop/ConfigMap/made.yaml").ok());
  EXPECT_TRUE(fs_.ReadFile("/out/shop/ConfigMap/found.yaml").ok());
}

TEST_F(ReconcilerSafetyTest, ACorruptStateFileIsMovedAsideAndTheRestLoads) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a")})).ack.ok());
  v1::BundleUpdate other = Update({Cm("b")});
  other.set_bundle("other");
  ASSERT_TRUE(reconciler_->OnUpdate(other).ack.ok());
  ASSERT_TRUE(fs_.WriteFileAtomically("/state/bundles/web.pb", "\xff\xff garbage").ok());
  ASSERT_TRUE(fs_.WriteFileAtomically("/state/bundles/other.pb.tmp-1-2", "half").ok());
  Restart();
  std::vector<v1::HeldRevision> held = reconciler_->Held();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].bundle(), "other");
  EXPECT_EQ(*fs_.ReadFile("/state/bundles/web.pb.corrupt"), "\xff\xff garbage");
  EXPECT_FALSE(fs_.ReadFile("/state/bundles/other.pb.tmp-1-2").ok());
  bool reported = false;
  for (const v1::ClusterCondition& c : reconciler_->Conditions()) {
    reported |= c.type() == "AgentState" && !c.ok() && c.reason() == "CorruptStateFile";
  }
  EXPECT_TRUE(reported);
  EXPECT_TRUE(fs_.ReadFile("/out/shop/ConfigMap/a.yaml").ok()) << "nothing pruned on a guess";
}

}  // namespace
}  // namespace gitfleet

namespace gitfleet {
namespace {

TEST_F(ReconcilerTest, AStateDiskThatFillsUpLosesNothingAppliedAndRecovers) {
  ASSERT_TRUE(reconciler_->OnUpdate(Update({Cm("a")})).ack.ok());
  faulty_.FailPathsContaining("/state/");
  Reconciler::Outcome outcome = reconciler_->OnUpdate(Update({Cm("a", "2")}));
  EXPECT_FALSE(outcome.ack.ok());
  ASSERT_TRUE(outcome.status.has_value());
  EXPECT_EQ(outcome.status->sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(outcome.status->message(), HasSubstr("cannot record the agent's state"));
  EXPECT_THAT(*fs_.ReadFile("/out/shop/ConfigMap/a.yaml"), HasSubstr("\"2\""));
  faulty_.Heal();
  std::vector<v1::StatusUpdate> changed;
  for (int i = 0; i < 50 && changed.empty(); ++i) {
    clock_.Advance(absl::Seconds(1));  // the retry's backoff (1 s at most)
    changed = reconciler_->Resync(/*check_drift=*/false);
  }
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].sync_state(), v1::SYNC_STATE_SYNCED);
  Restart();  // and it is on disk now
  EXPECT_EQ(reconciler_->Held()[0].revision(), Update({Cm("a", "2")}).revision());
}

}  // namespace
}  // namespace gitfleet
