#include "controlplane/distribute/hub.h"

#include <atomic>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/agent_protocol.h"
#include "common/status_matchers.h"
#include "controlplane/store/revisions.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class FakeConnection : public AgentConnection {
 public:
  void Notify(const std::string& bundle) override { notified.insert(bundle); }
  void NotifyControl() override { notified.insert(kControl); }
  void Close(const absl::Status& status) override { closed = status; }
  static constexpr char kControl[] = "<control>";
  std::set<std::string> notified;
  absl::Status closed;
};

std::shared_ptr<const Revision> MakeRevision(const std::string& bundle,
                                             const std::vector<std::string>& names,
                                             const std::string& data = "1") {
  ObjectSet set;
  for (const std::string& name : names) {
    set.Put(*MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"" + name +
                            "\"}\ndata: {v: \"" + data + "\"}\n",
                        "test"));
  }
  return Revision::Build(bundle, "c0ffee", absl::Now(), std::move(set), {}, "");
}

LabelSelector Selector(const std::string& text) { return *LabelSelector::Parse(text); }

// The hello of `cluster`'s agent, labelled env=`env`, holding `held` (bundle -> revision).
v1::Hello MakeHello(const std::string& cluster, const std::string& env,
                    const std::map<std::string, std::string>& held = {}) {
  v1::Hello hello;
  hello.set_cluster(cluster);
  (*hello.mutable_labels())["env"] = env;
  for (const auto& [bundle, revision] : held) {
    v1::HeldRevision* holding = hello.add_held();
    holding->set_bundle(bundle);
    holding->set_revision(revision);
  }
  return hello;
}

// The ACK of an agent that applied `revision`.
v1::Ack MakeAck(const std::string& bundle, const std::string& revision) {
  v1::Ack ack;
  ack.set_bundle(bundle);
  ack.set_revision(revision);
  ack.set_ok(true);
  return ack;
}

// A hub on a fake clock (flushing every 20 ms) whose status observer's calls are kept.
class HeardHub {
 public:
  HeardHub(Store* store, ControlPlaneMetrics& metrics)
      : hub(store, metrics, absl::Milliseconds(20), 128 << 20, &clock) {
    hub.SetTrustAgentLabels(true);
    hub.SetStatusObserver([this](const std::string& bundle, bool rollout) {
      MutexLock lock(&mu_);
      heard_.emplace_back(bundle, rollout);
    });
  }
  ~HeardHub() { hub.SetStatusObserver(nullptr); }
  // (bundle, rollout) of each call since the last Take.
  std::vector<std::pair<std::string, bool>> Take() {
    MutexLock lock(&mu_);
    return std::exchange(heard_, {});
  }

  FakeClock clock;
  Hub hub;

 private:
  Mutex mu_;
  std::vector<std::pair<std::string, bool>> heard_ ABSL_GUARDED_BY(mu_);
};

class HubTest : public ::testing::Test {
 protected:
  // These tests are about delivery: clusters are targeted by the labels their agents
  // report (TargetsByOwnedLabels... cover the default).
  HubTest() : metrics_(registry_), hub_(&store_, metrics_) { hub_.SetTrustAgentLabels(true); }
  // Bundle "web" at `rev` for every cluster, and cluster "a" connected through `conn`
  // with the first message sent; returns its session.
  uint64_t ServeWebToA(const std::shared_ptr<const Revision>& rev,
                       std::shared_ptr<FakeConnection> conn) {
    hub_.SetBundle("web", Selector(""), SingleRevision(rev));
    uint64_t session = hub_.Connect(MakeHello("a", "prod"), "p", std::move(conn));
    EXPECT_NE(hub_.NextMessage(session, "web"), nullptr);
    return session;
  }
  metrics::Registry registry_;
  ControlPlaneMetrics metrics_;
  MemoryStore store_;
  Hub hub_;
};

TEST_F(HubTest, SendsFullSetThenDeltasAndSharesMessages) {
  auto conn_a = std::make_shared<FakeConnection>();
  auto conn_b = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "peer-a", conn_a);
  uint64_t b = hub_.Connect(MakeHello("b", "prod"), "peer-b", conn_b);
  auto rev1 = MakeRevision("web", {"x", "y"});
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(rev1));
  EXPECT_THAT(conn_a->notified, ElementsAre("web"));

  auto msg_a = hub_.NextMessage(a, "web");
  auto msg_b = hub_.NextMessage(b, "web");
  ASSERT_NE(msg_a, nullptr);
  EXPECT_EQ(msg_a.get(), msg_b.get()) << "one message shared by both agents";
  EXPECT_EQ(msg_a->bytes, msg_a->message.SerializeAsString()) << "serialized once, up front";
  EXPECT_EQ(msg_a->message.update().upserts_size(), 2);
  EXPECT_EQ(msg_a->message.update().base_revision(), "");
  EXPECT_EQ(hub_.NextMessage(a, "web"), nullptr) << "already current";

  auto rev2 = MakeRevision("web", {"x", "z"});
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(rev2));
  auto delta = hub_.NextMessage(a, "web");
  ASSERT_NE(delta, nullptr);
  EXPECT_EQ(delta->message.update().base_revision(), rev1->id);
  ASSERT_EQ(delta->message.update().upserts_size(), 1);
  EXPECT_EQ(delta->message.update().upserts(0).key().name(), "z");
  ASSERT_EQ(delta->message.update().removed_size(), 1);
  EXPECT_EQ(delta->message.update().removed(0).name(), "y");
  EXPECT_EQ(hub_.messages_built(), 2u);
}

TEST_F(HubTest, MessageCacheIsBoundedInBytes) {
  // Agent c joins late (a full set of rev2); b catches up last (a delta 1->2). With room,
  // b reuses a's delta; with a cache too small for two messages, it is built again.
  for (size_t limit : {size_t{128} << 20, size_t{1}}) {
    MemoryStore store;
    Hub hub(&store, metrics_, absl::Milliseconds(250), limit);
    hub.SetTrustAgentLabels(true);
    auto conn = std::make_shared<FakeConnection>();
    uint64_t a = hub.Connect(MakeHello("a", "prod"), "p", conn);
    uint64_t b = hub.Connect(MakeHello("b", "prod"), "p", conn);
    hub.SetBundle("web", Selector("env=prod"), SingleRevision(MakeRevision("web", {"x", "y"})));
    ASSERT_NE(hub.NextMessage(a, "web"), nullptr);
    ASSERT_NE(hub.NextMessage(b, "web"), nullptr);
    hub.SetBundle("web", Selector("env=prod"), SingleRevision(MakeRevision("web", {"x", "z"})));
    ASSERT_NE(hub.NextMessage(a, "web"), nullptr);
    uint64_t c = hub.Connect(MakeHello("c", "prod"), "p", conn);
    ASSERT_NE(hub.NextMessage(c, "web"), nullptr);
    ASSERT_NE(hub.NextMessage(b, "web"), nullptr);
    EXPECT_EQ(hub.messages_built(), limit == 1 ? 4u : 3u) << "limit " << limit;
  }
}

TEST_F(HubTest, BundlesWithEqualContentGetTheirOwnMessages) {
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  auto web = MakeRevision("web", {"x"});
  auto copy = MakeRevision("copy", {"x"});
  ASSERT_EQ(web->id, copy->id);
  hub_.SetBundle("web", Selector(""), SingleRevision(web));
  hub_.SetBundle("copy", Selector(""), SingleRevision(copy));
  EXPECT_EQ(hub_.NextMessage(a, "web")->message.update().bundle(), "web");
  EXPECT_EQ(hub_.NextMessage(a, "copy")->message.update().bundle(), "copy");
}

TEST_F(HubTest, HelloWithCurrentRevisionGetsNothingAndSelectorIsHonoured) {
  auto rev = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(rev));
  v1::Hello hello = MakeHello("a", "prod", {{"web", rev->id}});
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(hello, "p", conn);
  EXPECT_EQ(hub_.NextMessage(a, "web"), nullptr);

  auto dev_conn = std::make_shared<FakeConnection>();
  uint64_t dev = hub_.Connect(MakeHello("dev", "dev"), "p", dev_conn);
  EXPECT_THAT(dev_conn->notified, IsEmpty());
  EXPECT_EQ(hub_.NextMessage(dev, "web"), nullptr);
}

LabelMap Labels(const std::string& key, const std::string& value) {
  LabelMap labels;
  labels[key] = value;
  return labels;
}

// A fleet told apart by some label keys only: one entry per set of those labels, with the
// first cluster in name order and how many share it.
TEST_F(HubTest, ClustersByLabelsCountsThoseThatLookAlike) {
  for (const auto& [cluster, env, region] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"p2", "prod", "eu"}, {"p1", "prod", "us"}, {"p3", "prod", "eu"}, {"s1", "dev", ""}}) {
    v1::Hello hello = MakeHello(cluster, env);
    if (!region.empty()) (*hello.mutable_labels())["region"] = region;
    hub_.Connect(hello, "p", std::make_shared<FakeConnection>());
  }
  std::map<LabelMap, Hub::LabelsShared> by_env = hub_.ClustersByLabels({"env"});
  ASSERT_EQ(by_env.size(), 2u);
  EXPECT_EQ(by_env[Labels("env", "prod")].first, "p1");
  EXPECT_EQ(by_env[Labels("env", "prod")].clusters, 3u);
  EXPECT_EQ(by_env[Labels("env", "dev")].first, "s1");
  std::map<LabelMap, Hub::LabelsShared> by_region = hub_.ClustersByLabels({"region", "tier"});
  ASSERT_EQ(by_region.size(), 3u);
  EXPECT_EQ(by_region[Labels("region", "eu")].first, "p2");
  EXPECT_EQ(by_region[Labels("region", "eu")].clusters, 2u);
  EXPECT_EQ(by_region[LabelMap()].first, "s1") << "no label of those keys";
  EXPECT_EQ(hub_.ClustersByLabels({}).begin()->second.clusters, 4u);
}

// The count of clusters a hub knows is bounded: a new one past it is not admitted, a
// known one always is.
TEST_F(HubTest, AdmitsNewClustersOnlyBelowTheBound) {
  EXPECT_TRUE(hub_.AdmitsCluster("a", 1));
  hub_.Connect(MakeHello("a", "prod"), "p", std::make_shared<FakeConnection>());
  hub_.Connect(MakeHello("b", "prod"), "p", std::make_shared<FakeConnection>());
  EXPECT_FALSE(hub_.AdmitsCluster("c", 2));
  EXPECT_TRUE(hub_.AdmitsCluster("a", 2));
  EXPECT_TRUE(hub_.AdmitsCluster("c", 3));
}

// A hub with the control plane's defaults: it owns labels, and does not trust agents'.
class HubLabelsTest : public ::testing::Test {
 protected:
  HubLabelsTest() : metrics_(registry_), hub_(&store_, metrics_) {}
  metrics::Registry registry_;
  ControlPlaneMetrics metrics_;
  MemoryStore store_;
  Hub hub_;
};

// What an agent claims does not target it.
TEST_F(HubLabelsTest, TargetsByOwnedLabelsAndAgentsCannotClaimOthers) {
  auto rev = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(rev));
  hub_.SetClusterIdentity("a", true, LabelMap{{"env", "dev"}});
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);  // claims env=prod
  EXPECT_EQ(hub_.NextMessage(a, "web"), nullptr) << "the agent's claim does not count";
  std::vector<ClusterView> clusters = hub_.Clusters("a");
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].info.labels().at("env"), "dev");
  EXPECT_EQ(clusters[0].info.reported_labels().at("env"), "prod");
  EXPECT_TRUE(clusters[0].info.registered());
  ASSERT_EQ(clusters[0].info.conditions_size(), 1);
  EXPECT_EQ(clusters[0].info.conditions(0).reason(), "AgentLabelsIgnored");

  // An operator assigns env=prod: the bundle goes out at once.
  conn->notified.clear();
  hub_.SetClusterIdentity("a", true, LabelMap{{"env", "prod"}});
  EXPECT_THAT(conn->notified, ElementsAre("web"));
  auto update = hub_.NextMessage(a, "web");
  ASSERT_NE(update, nullptr);
  EXPECT_TRUE(update->message.has_update());
  EXPECT_EQ(hub_.Clusters("a")[0].info.conditions_size(), 0);
}

TEST_F(HubLabelsTest, AClusterWithoutAssignedLabelsKeepsWhatItHoldsAndGetsNothingNew) {
  auto rev = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector(""), SingleRevision(rev));
  hub_.SetBundle("api", Selector(""), SingleRevision(MakeRevision("api", {"y"})));
  v1::Hello hello = MakeHello("b", "prod", {{"web", "older"}});
  auto conn = std::make_shared<FakeConnection>();
  uint64_t b = hub_.Connect(hello, "p", conn);
  EXPECT_EQ(hub_.NextMessage(b, "web"), nullptr) << "no removal, no update";
  EXPECT_EQ(hub_.NextMessage(b, "api"), nullptr) << "nothing new";
  ASSERT_EQ(hub_.Clusters("b")[0].info.conditions_size(), 1);
  EXPECT_EQ(hub_.Clusters("b")[0].info.conditions(0).reason(), "LabelsUnassigned");
  EXPECT_EQ(hub_.MatchingClusters(Selector("")).size(), 0u);
  // A tombstone is an explicit act: it still removes.
  hub_.RemoveBundle("web", 2);
  auto removal = hub_.NextMessage(b, "web");
  ASSERT_NE(removal, nullptr);
  EXPECT_TRUE(removal->message.has_removal());
  // Trusting agents' labels (--trust-agent-labels) targets it by what it reports.
  hub_.SetTrustAgentLabels(true);
  EXPECT_EQ(hub_.MatchingClusters(Selector("env=prod")).size(), 1u);
}

// For a watcher of one cluster's events: a bundle concerns the clusters it targets by the
// labels the control plane gives them, and those that hold it.
TEST_F(HubLabelsTest, SaysWhichBundlesConcernACluster) {
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(MakeRevision("web", {"x"})));
  hub_.SetBundle("api", Selector("env=dev"), SingleRevision(MakeRevision("api", {"y"})));
  hub_.SetClusterIdentity("a", true, LabelMap{{"env", "prod"}});
  hub_.Connect(MakeHello("a", "dev"), "p", std::make_shared<FakeConnection>());
  // b has no labels from the control plane, and holds a revision of api.
  hub_.Connect(MakeHello("b", "dev", {{"api", "older"}}), "p", std::make_shared<FakeConnection>());
  EXPECT_TRUE(hub_.Concerns("a", "web", nullptr));
  EXPECT_FALSE(hub_.Concerns("a", "api", nullptr)) << "what the agent claims does not count";
  const LabelSelector both = Selector("env in (prod,dev)");
  EXPECT_TRUE(hub_.Concerns("a", "api", &both)) << "the definition's selector, when given";
  EXPECT_TRUE(hub_.Concerns("b", "api", nullptr)) << "it holds api";
  EXPECT_FALSE(hub_.Concerns("b", "web", nullptr));
  EXPECT_FALSE(hub_.Concerns("b", "web", &both)) << "no labels: targeted by nothing";
  EXPECT_FALSE(hub_.Concerns("a", "gone", nullptr)) << "neither set nor held";
  EXPECT_FALSE(hub_.Concerns("nobody", "web", nullptr)) << "a cluster the hub does not know";
}

// What a new selector, or new labels, would take bundles off: only clusters that hold
// the bundle and are targeted by it now (the API refuses such a change unless allowed).
TEST_F(HubLabelsTest, NamesTheClustersANewSelectorLeavesAndTheBundlesNewLabelsLeave) {
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(MakeRevision("web", {"x"})));
  hub_.SetBundle("api", Selector("env=prod"), SingleRevision(MakeRevision("api", {"y"})));
  hub_.SetBundle("base", Selector(""), SingleRevision(MakeRevision("base", {"z"})));
  hub_.SetClusterIdentity("a", true, LabelMap{{"env", "prod"}, {"region", "us"}});
  hub_.SetClusterIdentity("b", true, LabelMap{{"env", "prod"}, {"region", "us"}});
  hub_.SetClusterIdentity("c", true, LabelMap{{"env", "dev"}});
  hub_.Connect(MakeHello("a", "prod", {{"web", "old"}, {"api", "old"}, {"base", "old"}}), "p",
               std::make_shared<FakeConnection>());
  hub_.Connect(MakeHello("b", "prod"), "p", std::make_shared<FakeConnection>());  // holds none
  // c holds web though web no longer targets it (its removal is under way).
  hub_.Connect(MakeHello("c", "dev", {{"web", "old"}}), "p", std::make_shared<FakeConnection>());

  EXPECT_THAT(hub_.HoldersLeaving("web", Selector("env=prod"), Selector("region=eu")),
              ElementsAre("a"));
  EXPECT_THAT(hub_.HoldersLeaving("web", Selector("env=prod"), Selector("region in (us,eu)")),
              IsEmpty());
  EXPECT_THAT(hub_.HoldersLeaving("nothing", Selector("env=prod"), Selector("region=eu")),
              IsEmpty());

  EXPECT_THAT(hub_.BundlesLeaving("a", LabelMap{{"env", "dev"}}), ElementsAre("api", "web"));
  EXPECT_THAT(hub_.BundlesLeaving("a", LabelMap{{"env", "prod"}}), IsEmpty());
  EXPECT_THAT(hub_.BundlesLeaving("b", LabelMap{{"env", "dev"}}), IsEmpty()) << "holds none";
  EXPECT_THAT(hub_.BundlesLeaving("c", LabelMap{{"env", "qa"}}), IsEmpty()) << "not targeted";
  EXPECT_THAT(hub_.BundlesLeaving("unknown", LabelMap{}), IsEmpty());
  // Trusting agents' labels, the control plane's labels target nothing.
  hub_.SetTrustAgentLabels(true);
  EXPECT_THAT(hub_.BundlesLeaving("a", LabelMap{{"env", "dev"}}), IsEmpty());
}

// After a restart a cluster that has not reconnected yet has told nothing of what it holds:
// one whose report of a bundle is stored may hold it, and a change that would take the
// bundle off it counts it (its reconnect would otherwise bring a removal nobody asked for).
TEST_F(HubTest, AClusterNotBackSinceARestartHoldsWhatItReported) {
  auto rev = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(rev));
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", std::make_shared<FakeConnection>());
  hub_.Connect(MakeHello("b", "prod"), "p", std::make_shared<FakeConnection>());  // holds none
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  v1::StatusUpdate status;
  status.set_bundle("web");
  status.set_revision(rev->id);
  status.set_applied_revision(rev->id);
  status.set_sync_state(v1::SYNC_STATE_SYNCED);
  hub_.OnStatus(a, status);
  hub_.Flush();

  Hub restarted(&store_, metrics_);
  restarted.SetTrustAgentLabels(true);
  ASSERT_TRUE(restarted.Load().ok());
  EXPECT_THAT(restarted.HoldersLeaving("web", Selector("env=prod"), Selector("env=dev")),
              ElementsAre("a"));
  // Back, it says what it holds: nothing of web any more.
  restarted.Connect(MakeHello("a", "prod"), "p", std::make_shared<FakeConnection>());
  EXPECT_THAT(restarted.HoldersLeaving("web", Selector("env=prod"), Selector("env=dev")),
              IsEmpty());
}

TEST_F(HubTest, RemovalWhenSelectorStopsMatchingOrBundleIsRemoved) {
  auto rev = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(rev));
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  conn->notified.clear();
  hub_.SetBundle("web", Selector("env=dev"), SingleRevision(nullptr));
  EXPECT_THAT(conn->notified, ElementsAre("web"));
  auto removal = hub_.NextMessage(a, "web");
  ASSERT_NE(removal, nullptr);
  EXPECT_EQ(removal->message.removal().bundle(), "web");
  EXPECT_EQ(hub_.NextMessage(a, "web"), nullptr);
}

// "name->bundle" for each handover of `message` (an update or a removal).
std::vector<std::string> Handovers(const EncodedMessage& message) {
  const auto& handovers = message.message.has_update() ? message.message.update().handovers()
                                                       : message.message.removal().handovers();
  std::vector<std::string> out;
  for (const v1::Handover& h : handovers) out.push_back(h.key().name() + "->" + h.bundle());
  return out;
}

TEST_F(HubTest, WhatMovesToAnotherBundleIsHandedOverEvenBeforeThatBundleIsSent) {
  auto conn_a = std::make_shared<FakeConnection>();
  auto conn_b = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "peer-a", conn_a);
  uint64_t b = hub_.Connect(MakeHello("b", "dev"), "peer-b", conn_b);
  auto web1 = MakeRevision("web", {"x", "moved"});
  hub_.SetBundle("web", Selector(""), SingleRevision(web1));
  hub_.SetBundle("api", Selector("env=prod"), SingleRevision(MakeRevision("api", {"y"})));
  for (uint64_t session : {a, b}) ASSERT_NE(hub_.NextMessage(session, "web"), nullptr);
  ASSERT_NE(hub_.NextMessage(a, "api"), nullptr);
  EXPECT_EQ(hub_.NextMessage(b, "api"), nullptr) << "api targets prod only";

  // One commit moves "moved" from web to api. api's render holds it, but is not sent yet
  // (it waits, for its rollout's gate say) when web's goes out.
  hub_.SetNewestContent("api", Selector("env=prod"),
                        SingleRevision(MakeRevision("api", {"y", "moved"})));
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x"})));
  auto to_a = hub_.NextMessage(a, "web");
  auto to_b = hub_.NextMessage(b, "web");
  ASSERT_NE(to_a, nullptr);
  ASSERT_NE(to_b, nullptr);
  ASSERT_EQ(to_a->message.update().removed_size(), 1);
  EXPECT_THAT(Handovers(*to_a), ElementsAre("moved->api"));
  EXPECT_EQ(to_a->bytes, to_a->message.SerializeAsString());
  EXPECT_THAT(Handovers(*to_b), IsEmpty()) << "api is not for b: web prunes it there";
  EXPECT_EQ(to_b->message.update().removed_size(), 1);

  // web leaves prod: its removal names what api's newest render holds and a lacks.
  hub_.SetBundle("web", Selector("env=dev"), SingleRevision(MakeRevision("web", {"x"})));
  auto removal = hub_.NextMessage(a, "web");
  ASSERT_NE(removal, nullptr);
  ASSERT_TRUE(removal->message.has_removal());
  EXPECT_THAT(Handovers(*removal), ElementsAre("moved->api", "y->api"));

  // Once a holds api's newest, its removals name nothing: the agent knows.
  hub_.SetBundle("api", Selector("env=prod"), SingleRevision(MakeRevision("api", {"y", "moved"})));
  ASSERT_NE(hub_.NextMessage(a, "api"), nullptr);
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x", "moved"})));
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  hub_.RemoveBundle("web");
  removal = hub_.NextMessage(a, "web");
  ASSERT_NE(removal, nullptr);
  EXPECT_THAT(Handovers(*removal), IsEmpty());
  // A removed bundle takes nothing over.
  hub_.RemoveBundle("api");
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x", "moved"})));
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x"})));
  auto last = hub_.NextMessage(a, "web");
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->message.update().removed_size(), 1);
  EXPECT_THAT(Handovers(*last), IsEmpty());
}

// An agent whose revision the hub cannot diff against (unknown to it, or asked for the
// whole set) prunes whatever the whole set lacks: the set names what other bundles hold
// now, so a move is not a deletion there either. A fresh agent is told nothing.
TEST_F(HubTest, AWholeSetToAnAgentHoldingAnotherRevisionNamesHandovers) {
  hub_.SetNewestContent("api", Selector(""), SingleRevision(MakeRevision("api", {"y", "moved"})));
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x"})));
  uint64_t lost = hub_.Connect(MakeHello("lost", "prod", {{"web", "a-revision-nobody-stored"}}),
                               "p", std::make_shared<FakeConnection>());
  auto whole = hub_.NextMessage(lost, "web");
  ASSERT_NE(whole, nullptr);
  EXPECT_TRUE(whole->message.update().base_revision().empty());
  EXPECT_THAT(Handovers(*whole), ElementsAre("moved->api", "y->api"));
  uint64_t fresh =
      hub_.Connect(MakeHello("fresh", "prod"), "p", std::make_shared<FakeConnection>());
  auto first = hub_.NextMessage(fresh, "web");
  ASSERT_NE(first, nullptr);
  EXPECT_THAT(Handovers(*first), IsEmpty()) << "it holds nothing to prune";

  // Asking for the whole set: named again, once; what web keeps is not named.
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x", "y"})));
  auto delta = hub_.NextMessage(fresh, "web");
  ASSERT_NE(delta, nullptr);
  EXPECT_THAT(Handovers(*delta), IsEmpty()) << "nothing left web";
  v1::Ack need_full = MakeAck("web", delta->message.update().revision());
  need_full.set_need_full(true);
  hub_.OnAck(fresh, need_full);
  whole = hub_.NextMessage(fresh, "web");
  ASSERT_NE(whole, nullptr);
  EXPECT_TRUE(whole->message.update().base_revision().empty());
  EXPECT_THAT(Handovers(*whole), ElementsAre("moved->api"));

  // And a bundle that leaves a cluster which asked for its whole set is still removed
  // there (the hub no longer knew its revision, but knew it held one).
  hub_.OnAck(fresh, need_full);
  hub_.SetBundle("web", Selector("env=dev"), SingleRevision(MakeRevision("web", {"x", "y"})));
  auto removal = hub_.NextMessage(fresh, "web");
  ASSERT_NE(removal, nullptr);
  EXPECT_TRUE(removal->message.has_removal());
  EXPECT_THAT(Handovers(*removal), ElementsAre("moved->api", "y->api"));
  EXPECT_EQ(hub_.NextMessage(fresh, "web"), nullptr) << "removed once";
}

std::vector<std::string> Takeovers(const EncodedMessage& message) {
  std::vector<std::string> out;
  for (const v1::Handover& h : message.message.update().takeovers()) {
    out.push_back(h.key().name() + "<-" + h.bundle());
  }
  return out;
}

// An object moving from web to api in one commit: api's update, sent first, says the
// agent's web still holds it, so the agent waits for web's revision rather than failing.
TEST_F(HubTest, WhatMovesInFromABundleTheAgentHasNotUpdatedYetIsNamed) {
  auto conn_a = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "peer-a", conn_a);
  uint64_t b = hub_.Connect(MakeHello("b", "prod"), "peer-b", std::make_shared<FakeConnection>());
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x", "moved"})));
  hub_.SetBundle("api", Selector(""), SingleRevision(MakeRevision("api", {"y"})));
  for (uint64_t session : {a, b}) {
    for (const char* bundle : {"web", "api"}) ASSERT_NE(hub_.NextMessage(session, bundle), nullptr);
  }
  // The commit: web's newest render lacks it (its update not given yet), api's holds it.
  hub_.SetNewestContent("web", Selector(""), SingleRevision(MakeRevision("web", {"x"})));
  hub_.SetBundle("api", Selector(""), SingleRevision(MakeRevision("api", {"y", "moved"})));
  auto to_a = hub_.NextMessage(a, "api");
  ASSERT_NE(to_a, nullptr);
  EXPECT_THAT(Takeovers(*to_a), ElementsAre("moved<-web"));
  EXPECT_EQ(to_a->bytes, to_a->message.SerializeAsString());
  // b got web's new revision first: nothing to wait for.
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x"})));
  ASSERT_NE(hub_.NextMessage(b, "web"), nullptr);
  auto to_b = hub_.NextMessage(b, "api");
  ASSERT_NE(to_b, nullptr);
  EXPECT_THAT(Takeovers(*to_b), IsEmpty());
  // A bundle that still holds it in its newest is a conflict, not a move: nothing named.
  hub_.SetBundle("db", Selector(""), SingleRevision(MakeRevision("db", {"z"})));
  ASSERT_NE(hub_.NextMessage(b, "db"), nullptr);
  hub_.SetBundle("db", Selector(""), SingleRevision(MakeRevision("db", {"z", "x"})));
  auto grab = hub_.NextMessage(b, "db");
  ASSERT_NE(grab, nullptr);
  EXPECT_THAT(Takeovers(*grab), IsEmpty());
  // web leaving the cluster: what a's web holds moves in too.
  hub_.SetNewestContent("web", Selector("env=dev"), SingleRevision(MakeRevision("web", {"x"})));
  hub_.SetBundle("db", Selector(""), SingleRevision(MakeRevision("db", {"z", "x", "moved"})));
  auto to_a_db = hub_.NextMessage(a, "db");
  ASSERT_NE(to_a_db, nullptr);
  EXPECT_THAT(Takeovers(*to_a_db), ::testing::UnorderedElementsAre("x<-web", "moved<-web"));

  // Only a selector change (no new render): cache leaves the cluster, its object moves.
  hub_.SetBundle("cache", Selector(""), SingleRevision(MakeRevision("cache", {"c"})));
  ASSERT_NE(hub_.NextMessage(b, "cache"), nullptr);
  hub_.SetBundle("cache", Selector("env=dev"), SingleRevision(MakeRevision("cache", {"c"})));
  hub_.SetBundle("db", Selector(""), SingleRevision(MakeRevision("db", {"z", "x", "c"})));
  auto to_b_db = hub_.NextMessage(b, "db");
  ASSERT_NE(to_b_db, nullptr);
  // (A whole set: b's revision of db is no longer kept. x moves too: web left b as well.)
  EXPECT_THAT(Takeovers(*to_b_db), ::testing::UnorderedElementsAre("c<-cache", "x<-web"));
}

// The APIs an agent reports are kept once per distinct list, named by a digest in its
// ClusterInfo, and stored with the clusters: a restarted control plane has them, and drops
// the lists no cluster serves any more.
TEST_F(HubTest, ReportedApiVersionsAreKeptOncePerListAndStored) {
  auto hello = [](const std::string& name, const std::vector<std::string>& apis) {
    v1::Hello h = MakeHello(name, "prod");
    for (const std::string& api : apis) h.add_api_versions(api);
    return h;
  };
  auto conn = [] { return std::make_shared<FakeConnection>(); };
  hub_.Connect(hello("a", {"v1", "apps/v1", "apps/v1/Deployment"}), "p", conn());
  hub_.Connect(hello("b", {"apps/v1/Deployment", "v1", "apps/v1", "v1"}), "p", conn());
  hub_.Connect(hello("c", {"v1"}), "p", conn());
  hub_.Connect(hello("d", {}), "p", conn());
  auto infos = [](const Hub& hub) {
    std::map<std::string, v1::ClusterInfo> out;
    for (v1::ClusterInfo& info : hub.MatchingClusters(Selector(""))) out[info.name()] = info;
    return out;
  };
  std::map<std::string, v1::ClusterInfo> before = infos(hub_);
  const std::string served = before["a"].api_versions_digest();
  ASSERT_FALSE(served.empty());
  EXPECT_EQ(before["b"].api_versions_digest(), served) << "one list, in any order";
  EXPECT_EQ(before["a"].api_versions_count(), 3);
  const std::string core_only = before["c"].api_versions_digest();
  EXPECT_NE(core_only, served);
  EXPECT_EQ(before["d"].api_versions_digest(), "");
  ASSERT_NE(hub_.ApiVersions(served), nullptr);
  EXPECT_THAT(*hub_.ApiVersions(served), ElementsAre("apps/v1", "apps/v1/Deployment", "v1"));
  EXPECT_EQ(hub_.ApiVersions(""), nullptr);
  EXPECT_EQ(hub_.ApiVersions("nothing"), nullptr);

  // Told while connected (a CRD installed, an upgrade): kept, and its bundles looked at again.
  auto e_conn = conn();
  uint64_t e = hub_.Connect(hello("e", {"v1"}), "p", e_conn);
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x"})));
  e_conn->notified.clear();
  v1::ClusterFacts facts;
  facts.set_kubernetes_version("v1.31.0");
  facts.add_api_versions("v1");
  facts.add_api_versions("monitoring.coreos.com/v1");
  hub_.OnFacts(e, facts);
  EXPECT_THAT(e_conn->notified, ::testing::Contains("web"));
  v1::ClusterInfo told = infos(hub_)["e"];
  EXPECT_EQ(told.kubernetes_version(), "v1.31.0");
  EXPECT_EQ(told.api_versions_count(), 2);
  EXPECT_THAT(*hub_.ApiVersions(told.api_versions_digest()),
              ElementsAre("monitoring.coreos.com/v1", "v1"));
  e_conn->notified.clear();
  hub_.OnFacts(e, facts);
  EXPECT_TRUE(e_conn->notified.empty()) << "nothing changed";

  // c upgraded: a new list; the old one no cluster names goes at the next start.
  hub_.Connect(hello("c", {"v1", "batch/v1"}), "p", conn());
  const std::string upgraded = infos(hub_)["c"].api_versions_digest();
  EXPECT_NE(upgraded, core_only);
  hub_.Flush();
  Hub again(&store_, metrics_);
  again.SetTrustAgentLabels(true);
  ASSERT_TRUE(again.Load().ok());
  std::map<std::string, v1::ClusterInfo> after = infos(again);
  EXPECT_EQ(after["a"].api_versions_digest(), served) << "before its agent reconnects";
  EXPECT_EQ(after["a"].api_versions_count(), 3);
  ASSERT_NE(again.ApiVersions(served), nullptr);
  EXPECT_THAT(*again.ApiVersions(upgraded), ElementsAre("batch/v1", "v1"));
  EXPECT_EQ(again.ApiVersions(core_only), nullptr);
}

// A hello may name its API list by digest alone once the hub said it holds that list: a
// reconnect storm then costs a look-up per agent. A digest the hub does not hold keeps
// what it knew and asks for the list; a digest computed otherwise is never confirmed.
TEST_F(HubTest, AHelloMayNameAHeldApiListByDigestAlone) {
  const std::vector<std::string> apis = {"apps/v1", "apps/v1/Deployment", "v1"};
  const std::string digest = ApiVersionsDigest(apis);
  auto hello = [&](const std::string& name, bool list, const std::string& named) {
    v1::Hello h = MakeHello(name, "prod");
    if (list) {
      for (const std::string& api : apis) h.add_api_versions(api);
    }
    h.set_api_versions_digest(named);
    return h;
  };
  auto info = [&](const std::string& name) {
    for (v1::ClusterInfo& i : hub_.MatchingClusters(Selector(""))) {
      if (i.name() == name) return i;
    }
    return v1::ClusterInfo();
  };
  auto conn = [] { return std::make_shared<FakeConnection>(); };

  v1::Welcome welcome = hub_.WelcomeFor(hub_.Connect(hello("a", true, digest), "p", conn()));
  EXPECT_TRUE(welcome.api_versions_held());
  EXPECT_FALSE(welcome.send_facts());
  welcome = hub_.WelcomeFor(hub_.Connect(hello("b", true, ""), "p", conn()));
  EXPECT_FALSE(welcome.api_versions_held()) << "an older agent names no digest";
  welcome = hub_.WelcomeFor(hub_.Connect(hello("c", true, std::string(24, '0')), "p", conn()));
  EXPECT_FALSE(welcome.api_versions_held()) << "a digest computed otherwise";
  EXPECT_EQ(info("c").api_versions_digest(), digest);

  // b names it alone: the list it stands for, counted.
  welcome = hub_.WelcomeFor(hub_.Connect(hello("b", false, digest), "p", conn()));
  EXPECT_TRUE(welcome.api_versions_held());
  EXPECT_FALSE(welcome.send_facts());
  EXPECT_EQ(info("b").api_versions_digest(), digest);
  EXPECT_EQ(info("b").api_versions_count(), 3);

  // A digest the hub does not hold: what it knew stays, and the agent is asked.
  const std::string unknown = ApiVersionsDigest({"batch/v1", "v1"});
  uint64_t session = hub_.Connect(hello("a", false, unknown), "p", conn());
  welcome = hub_.WelcomeFor(session);
  EXPECT_FALSE(welcome.api_versions_held());
  EXPECT_TRUE(welcome.send_facts());
  EXPECT_EQ(info("a").api_versions_digest(), digest);
  v1::ClusterFacts facts;
  facts.add_api_versions("batch/v1");
  facts.add_api_versions("v1");
  hub_.OnFacts(session, facts);
  EXPECT_EQ(info("a").api_versions_digest(), unknown);
  EXPECT_EQ(info("a").api_versions_count(), 2);
}

TEST_F(HubTest, WhatMovesInIsNamedAfterARestartToo) {
  // Before the restart: web held "moved" and "x"; the commit moved "moved" to api, and
  // the agents had not got web's new revision yet (web suspended, or behind its gate).
  auto web_before = MakeRevision("web", {"x", "moved"});
  auto api_before = MakeRevision("api", {"y"});
  for (const auto& rev : {web_before, api_before}) {
    ASSERT_TRUE(
        store_.Apply({Store::Put(kRevisionsTable, rev->key(), rev->ToRecord().SerializeAsString())})
            .ok());
  }
  // A new control plane knows only the newest contents (as the controller loads them).
  Hub hub(&store_, metrics_);
  hub.SetTrustAgentLabels(true);
  ASSERT_TRUE(hub.Load().ok());
  hub.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x"})));
  hub.SetBundle("api", Selector(""), SingleRevision(MakeRevision("api", {"y", "moved"})));
  uint64_t a =
      hub.Connect(MakeHello("a", "prod", {{"web", web_before->id}, {"api", api_before->id}}), "p",
                  std::make_shared<FakeConnection>());
  auto to_a = hub.NextMessage(a, "api");
  ASSERT_NE(to_a, nullptr);
  EXPECT_THAT(Takeovers(*to_a), ElementsAre("moved<-web"));
  EXPECT_EQ(to_a->message.update().base_revision(), api_before->id) << "a delta, from the store";
  // A revision the store no longer has (trimmed from the history while the agent was
  // away): whatever web's newest lacks may be moving in.
  uint64_t d =
      hub.Connect(MakeHello("d", "prod", {{"web", std::string(64, 'e')}, {"api", api_before->id}}),
                  "p", std::make_shared<FakeConnection>());
  auto to_d = hub.NextMessage(d, "api");
  ASSERT_NE(to_d, nullptr);
  EXPECT_THAT(Takeovers(*to_d), ElementsAre("moved<-web"));

  // A bundle whose new selector no longer takes in the cluster: all it held moves.
  Hub again(&store_, metrics_);
  again.SetTrustAgentLabels(true);
  ASSERT_TRUE(again.Load().ok());
  again.SetBundle("web", Selector("env=dev"), SingleRevision(MakeRevision("web", {"x"})));
  again.SetBundle("api", Selector(""), SingleRevision(MakeRevision("api", {"y", "x", "moved"})));
  uint64_t b =
      again.Connect(MakeHello("b", "prod", {{"web", web_before->id}, {"api", api_before->id}}), "p",
                    std::make_shared<FakeConnection>());
  auto to_b = again.NextMessage(b, "api");
  ASSERT_NE(to_b, nullptr);
  EXPECT_THAT(Takeovers(*to_b), ::testing::UnorderedElementsAre("x<-web", "moved<-web"));
  // One that holds web's newest already has nothing to wait for.
  uint64_t c = again.Connect(MakeHello("c", "dev", {{"api", api_before->id}}), "p",
                             std::make_shared<FakeConnection>());
  ASSERT_NE(again.NextMessage(c, "web"), nullptr);
  auto to_c = again.NextMessage(c, "api");
  ASSERT_NE(to_c, nullptr);
  EXPECT_THAT(Takeovers(*to_c), IsEmpty());
}

TEST_F(HubTest, ARemovedBundleIsTombstonedAndAnUnknownOneIsOrphanedNotRemoved) {
  auto rev = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector(""), SingleRevision(rev), /*generation=*/3);
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  auto update = hub_.NextMessage(a, "web");
  ASSERT_NE(update, nullptr);
  EXPECT_EQ(update->message.update().generation(), 3);
  conn->notified.clear();
  hub_.RemoveBundle("web", /*generation=*/4);
  EXPECT_THAT(conn->notified, ElementsAre("web"));
  auto removal = hub_.NextMessage(a, "web");
  ASSERT_NE(removal, nullptr);
  EXPECT_EQ(removal->message.removal().reason(), "removed");
  EXPECT_EQ(removal->message.removal().generation(), 4);

  // A control plane that knows nothing (an empty data dir): what agents hold is orphaned.
  MemoryStore empty_store;
  Hub empty(&empty_store, metrics_);
  empty.SetTrustAgentLabels(true);
  v1::Hello hello = MakeHello("b", "prod", {{"api", "r1"}, {"db", "r1"}});
  auto conn_b = std::make_shared<FakeConnection>();
  uint64_t b = empty.Connect(hello, "p", conn_b);
  EXPECT_THAT(conn_b->notified, ElementsAre("api", "db"));
  EXPECT_EQ(empty.NextMessage(b, "api"), nullptr) << "no removal without a tombstone";
  EXPECT_EQ(empty.NextMessage(b, "db"), nullptr);
  std::vector<ClusterView> clusters = empty.Clusters();
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_THAT(clusters[0].info.orphaned_bundles(), ElementsAre("api", "db"));
  v1::StatusUpdate status;
  status.set_bundle("api");
  status.set_sync_state(v1::SYNC_STATE_SYNCED);
  empty.OnStatus(b, status);
  EXPECT_EQ(empty.Clusters()[0].reports.count("api"), 1u) << "an orphan's status is kept";

  // Defining it again ends the orphan; a tombstone makes the next connect remove it.
  empty.SetBundle("api", Selector(""), SingleRevision(MakeRevision("api", {"y"})), 1);
  EXPECT_THAT(empty.Clusters()[0].info.orphaned_bundles(), ElementsAre("db"));
  empty.SetTombstone("db", 7);
  uint64_t b2 = empty.Connect(hello, "p", conn_b);
  auto db = empty.NextMessage(b2, "db");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->message.removal().generation(), 7);
  EXPECT_TRUE(empty.Clusters()[0].info.orphaned_bundles().empty());
}

TEST_F(HubTest, ForgetIsAnExplicitRemovalOfWhatTheClusterHolds) {
  v1::Hello hello = MakeHello("a", "prod", {{"old", "r1"}});
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(hello, "p", conn);
  EXPECT_EQ(hub_.NextMessage(a, "old"), nullptr);  // orphaned
  EXPECT_THAT(hub_.ForgetBundle("a", "other", false),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("does not hold")));
  EXPECT_THAT(hub_.ForgetBundle("nobody", "old", false),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not connected")));
  conn->notified.clear();
  ASSERT_TRUE(hub_.ForgetBundle("a", "old", /*prune=*/true).ok());
  EXPECT_THAT(conn->notified, ElementsAre(FakeConnection::kControl));
  // A reconnect before the order went out does not lose it.
  auto again = std::make_shared<FakeConnection>();
  a = hub_.Connect(hello, "p", again);
  EXPECT_EQ(again->notified.count(FakeConnection::kControl), 1u);
  auto order = hub_.NextControlMessage(a);
  ASSERT_NE(order, nullptr);
  EXPECT_TRUE(order->message.removal().forget());
  EXPECT_TRUE(order->message.removal().prune());
  EXPECT_TRUE(hub_.Clusters()[0].info.orphaned_bundles().empty());
  // A bundle that still targets the cluster is not forgotten behind its definition's back.
  auto rev = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector(""), SingleRevision(rev));
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  EXPECT_THAT(hub_.ForgetBundle("a", "web", false),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("still targets")));
}

TEST_F(HubTest, AdoptionIsStoredAndTakenUpByTheNextWelcome) {
  hub_.SetFleetId("fleet-new");
  EXPECT_THAT(hub_.AdoptCluster("a"), StatusIs(absl::StatusCode::kNotFound));
  v1::Hello hello = MakeHello("a", "prod");
  hello.set_fleet_id("fleet-old");
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(hello, "p", conn);
  v1::Welcome welcome = hub_.WelcomeFor(a);
  EXPECT_EQ(welcome.fleet_id(), "fleet-new");
  EXPECT_FALSE(welcome.adopt());
  EXPECT_EQ(hub_.Clusters()[0].info.foreign_fleet_id(), "fleet-old");
  ASSERT_TRUE(hub_.AdoptCluster("a").ok());
  EXPECT_EQ(conn->closed.code(), absl::StatusCode::kAborted) << "reconnects to take it up";
  EXPECT_TRUE(hub_.Clusters()[0].info.adopt_pending());

  // Stored at once: a restart in between keeps the operator's word.
  Hub reloaded(&store_, metrics_);
  reloaded.SetTrustAgentLabels(true);
  ASSERT_TRUE(reloaded.Load().ok());
  reloaded.SetFleetId("fleet-new");
  uint64_t again = reloaded.Connect(hello, "p", std::make_shared<FakeConnection>());
  EXPECT_TRUE(reloaded.WelcomeFor(again).adopt());
  EXPECT_FALSE(reloaded.Clusters()[0].info.adopt_pending());
  EXPECT_FALSE(reloaded.WelcomeFor(again).adopt()) << "once";
}

TEST_F(HubTest, ARefusedUpdateIsNotResentUntilSomethingChanges) {
  auto rev = MakeRevision("web", {"x"});
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = ServeWebToA(rev, conn);
  conn->notified.clear();
  v1::Ack ack = MakeAck("web", rev->id);
  ack.set_ok(false);
  ack.set_refused(true);
  ack.set_message("control plane behind");
  hub_.OnAck(a, ack);
  EXPECT_TRUE(conn->notified.empty());
  // The hub no longer believes the agent holds it: the next change goes in full.
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x", "y"})), 9);
  auto full = hub_.NextMessage(a, "web");
  ASSERT_NE(full, nullptr);
  EXPECT_TRUE(full->message.update().base_revision().empty());
  EXPECT_EQ(full->message.update().generation(), 9);
}

TEST_F(HubTest, NeedFullResendsWholeSetAndReconnectReplacesOldStream) {
  auto rev = MakeRevision("web", {"x", "y"});
  auto first = std::make_shared<FakeConnection>();
  uint64_t s1 = ServeWebToA(rev, first);
  v1::Ack ack = MakeAck("web", rev->id);
  ack.set_ok(false);
  ack.set_need_full(true);
  hub_.OnAck(s1, ack);
  auto full = hub_.NextMessage(s1, "web");
  ASSERT_NE(full, nullptr);
  EXPECT_EQ(full->message.update().upserts_size(), 2);

  auto second = std::make_shared<FakeConnection>();
  uint64_t s2 = hub_.Connect(MakeHello("a", "prod"), "p2", second);
  EXPECT_EQ(first->closed.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(hub_.NextMessage(s1, "web"), nullptr) << "old session is gone";
  EXPECT_NE(hub_.NextMessage(s2, "web"), nullptr);
  hub_.Disconnect(s1);  // a late disconnect of the old stream changes nothing
  EXPECT_TRUE(hub_.Clusters()[0].info.connected());
}

TEST_F(HubTest, AnAckCarryingAStatusStoresItAsTheReport) {
  auto rev = MakeRevision("web", {"x"});
  uint64_t a = ServeWebToA(rev, std::make_shared<FakeConnection>());
  v1::Ack ack = MakeAck("web", rev->id);
  v1::StatusUpdate* status = ack.mutable_status();  // its bundle left empty: the ack's
  status->set_sync_state(v1::SYNC_STATE_SYNCED);
  status->set_applied_revision(rev->id);
  status->set_message(std::string(100000, 'm'));
  hub_.OnAck(a, ack);
  std::vector<ClusterView> clusters = hub_.Clusters("a");
  ASSERT_EQ(clusters.size(), 1u);
  ASSERT_EQ(clusters[0].reports.count("web"), 1u);
  const v1::StatusUpdate& report = clusters[0].reports.at("web");
  EXPECT_EQ(report.bundle(), "web");
  EXPECT_EQ(report.sync_state(), v1::SYNC_STATE_SYNCED);
  EXPECT_EQ(report.applied_revision(), rev->id);
  EXPECT_LT(report.message().size(), 100000u) << "bounded like any other status";
  EXPECT_EQ(hub_.NextMessage(a, "web"), nullptr) << "and acknowledged";
  EXPECT_EQ(metrics_.status_reports.Add({{"via", "ack"}}).Value(), 1);
  EXPECT_EQ(metrics_.status_reports.Add({{"via", "message"}}).Value(), 0);

  // An ack without a status leaves the report alone.
  ack.clear_status();
  hub_.OnAck(a, ack);
  EXPECT_EQ(hub_.Clusters("a")[0].reports.at("web").sync_state(), v1::SYNC_STATE_SYNCED);
  hub_.Flush();
  Hub reloaded(&store_, metrics_);
  reloaded.SetTrustAgentLabels(true);
  ASSERT_TRUE(reloaded.Load().ok());
  EXPECT_EQ(reloaded.Clusters("a")[0].reports.at("web").applied_revision(), rev->id)
      << "stored like a status message";
}

TEST_F(HubTest, OnlyReportsThatMayMoveARolloutReachTheObserverAsRollout) {
  HeardHub heard(&store_, metrics_);
  Hub& hub = heard.hub;
  FakeClock& clock = heard.clock;
  auto take = [&] { return heard.Take(); };
  auto rev = MakeRevision("web", {"x"});
  hub.SetBundle("web", Selector(""), SingleRevision(rev), 1, ClusterSetGate::Of({"a"}));
  hub.SetBundle("db", Selector(""), SingleRevision(MakeRevision("db", {"y"})));
  uint64_t a = hub.Connect(MakeHello("a", "prod"), "p", std::make_shared<FakeConnection>());
  auto report = [&](const std::string& bundle, v1::SyncState state) {
    v1::StatusUpdate status;
    status.set_bundle(bundle);
    status.set_sync_state(state);
    status.set_applied_revision(rev->id);
    hub.OnStatus(a, status);
  };
  using Heard = std::vector<std::pair<std::string, bool>>;

  // Before any evaluation said how many it needs, every report may move it.
  report("web", v1::SYNC_STATE_SYNCED);
  EXPECT_EQ(take(), (Heard{{"web", true}}));

  // The partition needs three more: the first two are counted, not passed on.
  hub.BeginEvaluation("web");
  hub.ExpectReports("web", 3, absl::Seconds(1));
  report("web", v1::SYNC_STATE_SYNCED);
  report("web", v1::SYNC_STATE_SYNCED);
  EXPECT_THAT(take(), IsEmpty());
  report("web", v1::SYNC_STATE_SYNCED);
  EXPECT_EQ(take(), (Heard{{"web", true}}));

  // A failure may halt it at once, whatever the count.
  hub.BeginEvaluation("web");
  hub.ExpectReports("web", 100, absl::Seconds(1));
  report("web", v1::SYNC_STATE_FAILED);
  EXPECT_EQ(take(), (Heard{{"web", true}}));
  report("web", v1::SYNC_STATE_SYNCED);
  EXPECT_THAT(take(), IsEmpty());
  // And once the evaluation is older than its refresh, any report does: what `rollout
  // status` says stays fresh.
  clock.Advance(absl::Seconds(1));
  report("web", v1::SYNC_STATE_SYNCED);
  EXPECT_EQ(take(), (Heard{{"web", true}}));

  // A bundle without a gate is heard only when others depend on it, and never as rollout.
  report("db", v1::SYNC_STATE_SYNCED);
  EXPECT_THAT(take(), IsEmpty());
  hub.SetWatchedBundles({"db"});
  report("db", v1::SYNC_STATE_SYNCED);
  EXPECT_EQ(take(), (Heard{{"db", false}}));
}

// A revision that was ready on a cluster and then broke there (Degraded, or a failed
// apply) while its rollout is under way is a regression: listed, and passed on at once.
TEST_F(HubTest, ARevisionThatBrokeWhereItWasReadyIsARegression) {
  HeardHub heard(&store_, metrics_);
  Hub& hub = heard.hub;
  auto take = [&] { return heard.Take(); };
  auto rev = MakeRevision("web", {"x"});
  auto content = SingleRevision(rev);
  hub.SetBundle("web", Selector(""), content, 1, ClusterSetGate::Of({"a", "b"}));
  uint64_t a = hub.Connect(MakeHello("a", "prod"), "p", std::make_shared<FakeConnection>());
  uint64_t b = hub.Connect(MakeHello("b", "prod"), "p", std::make_shared<FakeConnection>());
  auto report = [&](uint64_t session, v1::SyncState state, v1::HealthState health,
                    const std::string& revision) {
    v1::StatusUpdate status;
    status.set_bundle("web");
    status.set_revision(revision);
    status.set_applied_revision(revision);
    status.set_sync_state(state);
    status.set_health(health);
    hub.OnStatus(session, status);
  };
  using Heard = std::vector<std::pair<std::string, bool>>;
  // Degraded before it was ever ready: not a regression (the partition's own gate judges it).
  report(b, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_DEGRADED, rev->id);
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_HEALTHY, rev->id);
  hub.BeginEvaluation("web");
  hub.ExpectReports("web", 100, absl::Hours(1));
  take();
  EXPECT_THAT(hub.Regressions("web", content.get()), IsEmpty());

  // Ready, then Degraded on the same revision: heard at once, whatever the count.
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_DEGRADED, rev->id);
  EXPECT_EQ(take(), (Heard{{"web", true}}));
  EXPECT_THAT(hub.Regressions("web", content.get()), ElementsAre("a"));
  // Progressing on it still is one; ready again is not.
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_PROGRESSING, rev->id);
  EXPECT_THAT(take(), IsEmpty());
  EXPECT_THAT(hub.Regressions("web", content.get()), ElementsAre("a"));
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_HEALTHY, rev->id);
  EXPECT_THAT(hub.Regressions("web", content.get()), IsEmpty());

  // A failed apply of the revision it ran is one too, until acknowledged.
  report(a, v1::SYNC_STATE_FAILED, v1::HEALTH_STATE_HEALTHY, rev->id);
  EXPECT_THAT(hub.Regressions("web", content.get()), ElementsAre("a"));
  hub.AcknowledgeRegressions("web");
  EXPECT_THAT(hub.Regressions("web", content.get()), IsEmpty());

  // Of another content (a newer commit began the rollout again): no longer listed.
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_HEALTHY, rev->id);
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_DEGRADED, rev->id);
  auto newer = SingleRevision(MakeRevision("web", {"x"}, "2"));
  EXPECT_THAT(hub.Regressions("web", newer.get()), IsEmpty());
  EXPECT_THAT(hub.Regressions("web", content.get()), IsEmpty()) << "dropped when read";

  // A report on another revision (its values changed, say) ends it, broken or not.
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_HEALTHY, rev->id);
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_DEGRADED, rev->id);
  ASSERT_THAT(hub.Regressions("web", content.get()), ElementsAre("a"));
  report(a, v1::SYNC_STATE_FAILED, v1::HEALTH_STATE_DEGRADED, "another");
  EXPECT_THAT(hub.Regressions("web", content.get()), IsEmpty());

  // Without a rollout under way (no gate) nothing is one.
  hub.SetBundle("web", Selector(""), content, 1, nullptr);
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_HEALTHY, rev->id);
  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_DEGRADED, rev->id);
  EXPECT_THAT(hub.Regressions("web", content.get()), IsEmpty());
}

TEST_F(HubTest, RegressionsAndTheirAcknowledgementOutliveARestart) {
  auto rev = MakeRevision("web", {"x"});
  auto content = SingleRevision(rev);
  auto report = [&](Hub& hub, uint64_t session, v1::HealthState health) {
    v1::StatusUpdate status;
    status.set_bundle("web");
    status.set_revision(rev->id);
    status.set_applied_revision(rev->id);
    status.set_sync_state(v1::SYNC_STATE_SYNCED);
    status.set_health(health);
    hub.OnStatus(session, status);
  };
  // A hub that loads what the last one stored, gated as the controller gates it.
  auto restart = [&](std::unique_ptr<Hub>& hub) {
    if (hub != nullptr) hub->Flush();
    hub = std::make_unique<Hub>(&store_, metrics_);
    hub->SetTrustAgentLabels(true);
    ASSERT_TRUE(hub->Load().ok());
    hub->SetBundle("web", Selector(""), content, 1, ClusterSetGate::Of({"a", "b", "c"}));
  };
  std::unique_ptr<Hub> hub;
  restart(hub);
  uint64_t a = hub->Connect(MakeHello("a", "prod"), "p", std::make_shared<FakeConnection>());
  uint64_t b = hub->Connect(MakeHello("b", "prod"), "p", std::make_shared<FakeConnection>());
  uint64_t c = hub->Connect(MakeHello("c", "prod"), "p", std::make_shared<FakeConnection>());
  for (uint64_t session : {a, b, c}) report(*hub, session, v1::HEALTH_STATE_HEALTHY);
  report(*hub, a, v1::HEALTH_STATE_DEGRADED);
  report(*hub, b, v1::HEALTH_STATE_DEGRADED);
  ASSERT_THAT(hub->Regressions("web", content.get()), ElementsAre("a", "b"));

  // The stored report says only Degraded; what it was before is what the restart keeps.
  restart(hub);
  EXPECT_THAT(hub->Regressions("web", content.get()), ElementsAre("a", "b"));
  // Ready again ends one, and that is stored too.
  b = hub->Connect(MakeHello("b", "prod"), "p", std::make_shared<FakeConnection>());
  report(*hub, b, v1::HEALTH_STATE_HEALTHY);
  restart(hub);
  EXPECT_THAT(hub->Regressions("web", content.get()), ElementsAre("a"));
  // An acknowledged one stays acknowledged: a restart does not pause the rollout again.
  hub->AcknowledgeRegressions("web");
  restart(hub);
  EXPECT_THAT(hub->Regressions("web", content.get()), IsEmpty());

  // One of an older content is dropped where it is read, from the store as well.
  c = hub->Connect(MakeHello("c", "prod"), "p", std::make_shared<FakeConnection>());
  report(*hub, c, v1::HEALTH_STATE_DEGRADED);
  ASSERT_THAT(hub->Regressions("web", content.get()), ElementsAre("c"));
  auto newer = SingleRevision(MakeRevision("web", {"x"}, "2"));
  EXPECT_THAT(hub->Regressions("web", newer.get()), IsEmpty());
  restart(hub);
  EXPECT_THAT(hub->Regressions("web", content.get()), IsEmpty());

  // And a removed bundle leaves none behind.
  c = hub->Connect(MakeHello("c", "prod"), "p", std::make_shared<FakeConnection>());
  report(*hub, c, v1::HEALTH_STATE_HEALTHY);
  report(*hub, c, v1::HEALTH_STATE_DEGRADED);
  ASSERT_THAT(hub->Regressions("web", content.get()), ElementsAre("c"));
  hub->RemoveBundle("web", 2);
  restart(hub);
  EXPECT_THAT(hub->Regressions("web", content.get()), IsEmpty());

  // A stored entry that cannot be read is refused by name, not taken for nothing.
  ASSERT_TRUE(store_.Apply({Store::Put("regressions", "no-slash", "r")}).ok());
  Hub broken(&store_, metrics_);
  EXPECT_THAT(broken.Load(), StatusIs(absl::StatusCode::kDataLoss,
                                      HasSubstr("stored regression no-slash is corrupt")));
}

TEST_F(HubTest, CountsAndListsTheClustersASelectorMatches) {
  auto conn = std::make_shared<FakeConnection>();
  hub_.Connect(MakeHello("a", "prod"), "p", conn);
  hub_.Connect(MakeHello("b", "prod"), "p", conn);
  uint64_t c = hub_.Connect(MakeHello("c", "dev"), "p", conn);
  hub_.Disconnect(c);  // known clusters count, connected or not
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).targets, 2);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("")).targets, 3);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=staging")).targets, 0);
  std::vector<v1::ClusterInfo> dev = hub_.MatchingClusters(Selector("env=dev"));
  ASSERT_EQ(dev.size(), 1u);
  EXPECT_EQ(dev[0].name(), "c");
  EXPECT_FALSE(dev[0].connected());
  EXPECT_EQ(hub_.Clusters("b").size(), 1u);
  EXPECT_THAT(hub_.Clusters("nobody"), IsEmpty());
  // One cluster's labels, looked up alone (a disconnected one too); none for a stranger.
  EXPECT_EQ(hub_.LabelsOf("c"), std::optional<LabelMap>(LabelMap{{"env", "dev"}}));
  EXPECT_EQ(hub_.LabelsOf("a"), std::optional<LabelMap>(LabelMap{{"env", "prod"}}));
  EXPECT_EQ(hub_.LabelsOf("bb"), std::nullopt) << "not the next cluster in name order";
  // A page of the clusters a scope keeps: those it passes over do not fill it.
  auto in_dev = [](const LabelMap& labels) {
    auto env = labels.find("env");
    return env != labels.end() && env->second == "dev";
  };
  std::vector<ClusterView> kept = hub_.Clusters("", "", 1, in_dev);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].info.name(), "c");
  EXPECT_THAT(hub_.Clusters("", "d", 0, in_dev), IsEmpty());
  EXPECT_EQ(hub_.LabelsOf(""), std::nullopt);
}

// A bundle's count is kept between listings and counted again once anything it counts
// changed: a cluster joining, a cluster's labels, the selector, an acknowledgement.
TEST_F(HubTest, ARolloutCountIsKeptUntilAnythingItCountsChanges) {
  auto conn = std::make_shared<FakeConnection>();
  auto rev1 = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(rev1));
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).targets, 1);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).targets, 1);
  uint64_t b = hub_.Connect(MakeHello("b", "prod"), "p", conn);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).targets, 2) << "b joined";
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=dev")).targets, 0) << "another selector";
  ASSERT_NE(hub_.NextMessage(b, "web"), nullptr);
  hub_.OnAck(b, MakeAck("web", rev1->id));
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).current, 1) << "b acknowledged";
  hub_.Disconnect(a);
  hub_.Connect(MakeHello("a", "dev"), "p", conn);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).targets, 1) << "a is dev now";
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(MakeRevision("web", {"x", "y"})));
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).current, 0) << "a new content";
  hub_.RemoveBundle("web");
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).current, 0);
}

// A team's share of a bundle that reaches every cluster: counted among the clusters its
// scope matches, each time, and the bundle's own kept count goes on as before.
TEST_F(HubTest, ARolloutIsCountedWithinAScopesClusters) {
  auto conn = std::make_shared<FakeConnection>();
  auto rev1 = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector(""), SingleRevision(rev1));
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  uint64_t b = hub_.Connect(MakeHello("b", "prod"), "p", conn);
  hub_.Connect(MakeHello("c", "dev"), "p", conn);
  const LabelSelector prod = Selector("env=prod");
  EXPECT_EQ(hub_.RolloutOf("web", Selector("")).targets, 3);
  Hub::Rollout within = hub_.RolloutOf("web", Selector(""), &prod);
  EXPECT_EQ(within.targets, 2);
  EXPECT_EQ(within.current, 0);
  ASSERT_NE(hub_.NextMessage(b, "web"), nullptr);
  hub_.OnAck(b, MakeAck("web", rev1->id));
  within = hub_.RolloutOf("web", Selector(""), &prod);
  EXPECT_EQ(within.current, 1);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("")).current, 1);
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  hub_.OnAck(a, MakeAck("web", rev1->id));
  within = hub_.RolloutOf("web", Selector(""), &prod);
  EXPECT_EQ(within.current, 2) << "every cluster of the scope is current; c is not";
  EXPECT_NE(within.last_current, absl::InfinitePast());
  Hub::Rollout all = hub_.RolloutOf("web", Selector(""));
  EXPECT_EQ(all.targets, 3);
  EXPECT_EQ(all.current, 2);
  const LabelSelector none = Selector("env=staging");
  EXPECT_EQ(hub_.RolloutOf("web", Selector(""), &none).targets, 0);
}

// A count kept up to date ACK by ACK says what counting the fleet again says, whatever
// the acknowledgements do: each step compares the kept count (of one selector) with a
// fresh one (of another that picks the same clusters, so the hub keeps nothing for it),
// on a clock that often stands still, so that several ACKs share the latest time.
TEST_F(HubTest, ARolloutCountKeptAckByAckEqualsAFreshCount) {
  FakeClock clock;
  Hub hub(&store_, metrics_, absl::Milliseconds(20), 128 << 20, &clock);
  hub.SetTrustAgentLabels(true);
  auto conn = std::make_shared<FakeConnection>();
  auto rev1 = MakeRevision("web", {"x"});
  auto rev2 = MakeRevision("web", {"x", "y"});
  hub.SetBundle("web", Selector("env=prod"), SingleRevision(rev1));
  std::vector<uint64_t> sessions;
  for (int i = 0; i < 24; ++i) {
    sessions.push_back(
        hub.Connect(MakeHello(absl::StrCat("c", i), i % 3 == 0 ? "dev" : "prod"), "p", conn));
  }
  std::vector<std::string> selectors = {"env=prod", "env in (prod)"};
  std::mt19937 random(17);
  for (int step = 0; step < 3000; ++step) {
    const uint64_t session = sessions[random() % sessions.size()];
    const int op = random() % 100;
    if (op < 60) {
      const std::string revision = random() % 2 ? rev1->id : rev2->id;
      hub.OnAck(session, MakeAck("web", random() % 10 ? revision : "unknown"));
    } else if (op < 70) {
      v1::Ack failed = MakeAck("web", rev1->id);
      failed.set_ok(false);
      failed.set_need_full(random() % 2);
      hub.OnAck(session, failed);
    } else if (op < 72) {
      hub.SetBundle("web", Selector("env=prod"), SingleRevision(random() % 2 ? rev1 : rev2));
    } else if (op < 73) {
      const size_t i = random() % sessions.size();
      hub.Disconnect(sessions[i]);
      sessions[i] =
          hub.Connect(MakeHello(absl::StrCat("c", i), random() % 2 ? "dev" : "prod"), "p", conn);
    }
    if (random() % 2) clock.Advance(absl::Milliseconds(random() % 3));
    const Hub::Rollout kept = hub.RolloutOf("web", Selector(selectors[0]));
    const Hub::Rollout fresh = hub.RolloutOf("web", Selector(selectors[1]));
    ASSERT_EQ(kept.targets, fresh.targets) << "step " << step;
    ASSERT_EQ(kept.current, fresh.current) << "step " << step;
    ASSERT_EQ(kept.last_current, fresh.last_current) << "step " << step;
    std::swap(selectors[0], selectors[1]);  // the fresh one is kept now
  }
}

TEST_F(HubTest, RolloutCountsTheTargetsThatAcknowledgedTheCurrentContent) {
  auto conn = std::make_shared<FakeConnection>();
  auto rev1 = MakeRevision("web", {"x"});
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(rev1));
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  uint64_t b = hub_.Connect(MakeHello("b", "prod"), "p", conn);
  hub_.Connect(MakeHello("c", "dev"), "p", conn);  // not targeted
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  ASSERT_NE(hub_.NextMessage(b, "web"), nullptr);
  Hub::Rollout rollout = hub_.RolloutOf("web", Selector("env=prod"));
  EXPECT_EQ(rollout.targets, 2);
  EXPECT_EQ(rollout.current, 0) << "sent is not acknowledged";
  EXPECT_EQ(rollout.last_current, absl::InfinitePast());

  absl::Time before = absl::Now();
  hub_.OnAck(a, MakeAck("web", rev1->id));
  v1::Ack failed = MakeAck("web", rev1->id);
  failed.set_ok(false);
  failed.set_message("admission webhook said no");
  hub_.OnAck(b, failed);
  rollout = hub_.RolloutOf("web", Selector("env=prod"));
  EXPECT_EQ(rollout.current, 1) << "a failed apply is not current";
  EXPECT_GE(rollout.last_current, before);
  EXPECT_LE(rollout.last_current, absl::Now());

  hub_.OnAck(b, MakeAck("web", rev1->id));
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).current, 2);

  // A new commit: nobody is current until they acknowledge it.
  auto rev2 = MakeRevision("web", {"x", "y"});
  hub_.SetBundle("web", Selector("env=prod"), SingleRevision(rev2));
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).current, 0);
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  hub_.OnAck(a, MakeAck("web", rev2->id));
  v1::Ack need_full = MakeAck("web", rev2->id);
  need_full.set_ok(false);
  need_full.set_need_full(true);
  hub_.OnAck(b, need_full);  // b no longer holds rev1 either
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).current, 1);

  // A disconnected cluster still runs what it acknowledged; one that reconnects counts
  // as holding what its hello says, since when it first said so.
  absl::Time a_acked = hub_.RolloutOf("web", Selector("env=prod")).last_current;
  hub_.Disconnect(a);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).current, 1);
  a = hub_.Connect(MakeHello("a", "prod", {{"web", rev2->id}}), "p", conn);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).last_current, a_acked);
  b = hub_.Connect(MakeHello("b", "prod", {{"web", rev2->id}}), "p", conn);
  rollout = hub_.RolloutOf("web", Selector("env=prod"));
  EXPECT_EQ(rollout.current, 2);
  EXPECT_GT(rollout.last_current, a_acked) << "b said so only now";

  // Untargeted clusters are sent a removal and hold nothing afterwards.
  hub_.SetBundle("web", Selector("env=dev"), SingleRevision(rev2));
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).current, 1);
  EXPECT_EQ(hub_.RolloutOf("nothing", Selector("")).current, 0);
}

TEST_F(HubTest, ClusterConditionsAreKeptByTypeAndReportedAfreshOnReconnect) {
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  v1::ClusterCondition refused;
  refused.set_type("ApiAccess");
  refused.set_ok(false);
  refused.set_reason("Unauthorized");
  refused.set_message(std::string(5000, 'm'));
  hub_.OnCondition(a, refused);
  v1::ClusterInfo info = hub_.Clusters("a")[0].info;
  ASSERT_EQ(info.conditions_size(), 1);
  EXPECT_EQ(info.conditions(0).reason(), "Unauthorized");
  EXPECT_LE(info.conditions(0).message().size(), 1024u) << "bounded like status messages";

  v1::ClusterCondition fine;
  fine.set_type("ApiAccess");
  fine.set_ok(true);
  hub_.OnCondition(a, fine);
  info = hub_.Clusters("a")[0].info;
  ASSERT_EQ(info.conditions_size(), 1) << "replaced, not added";
  EXPECT_TRUE(info.conditions(0).ok());

  // No agent can grow the list without bound.
  for (int i = 0; i < 100; ++i) {
    v1::ClusterCondition other = fine;
    other.set_type("T" + std::to_string(i));
    hub_.OnCondition(a, other);
  }
  EXPECT_EQ(hub_.Clusters("a")[0].info.conditions_size(), 8);

  hub_.OnCondition(a, refused);
  uint64_t again = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  EXPECT_EQ(hub_.Clusters("a")[0].info.conditions_size(), 0);
  hub_.OnCondition(again, fine);
  EXPECT_EQ(hub_.Clusters("a")[0].info.conditions_size(), 1);
}

TEST_F(HubTest, DiffRequestsReachTheClusterAndItsAnswerComesBack) {
  // Declared before the hub: its flush thread answers through them until the hub is gone.
  Mutex mu;
  std::vector<absl::StatusOr<v1::DiffResult>> answers;  // guarded by mu
  FakeClock clock;
  Hub hub(&store_, metrics_, absl::Milliseconds(20), 128 << 20, &clock);
  hub.SetTrustAgentLabels(true);
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub.Connect(MakeHello("a", "prod"), "p", conn);
  uint64_t b = hub.Connect(MakeHello("b", "prod"), "p", std::make_shared<FakeConnection>());
  auto collect = [&](absl::StatusOr<v1::DiffResult> r) {
    MutexLock lock(&mu);
    answers.push_back(std::move(r));
  };
  auto count = [&] {
    MutexLock lock(&mu);
    return answers.size();
  };

  hub.RequestDiff("nowhere", "web", absl::Seconds(5), collect);
  ASSERT_EQ(count(), 1u);
  EXPECT_EQ(answers[0].status().message(), "cluster nowhere is not connected");

  hub.RequestDiff("a", "web", absl::Seconds(60), collect);
  hub.RequestDiff("a", "db", absl::Milliseconds(100), collect);
  EXPECT_EQ(conn->notified.count(FakeConnection::kControl), 1u);
  auto first = hub.NextControlMessage(a);
  auto second = hub.NextControlMessage(a);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->message.diff().bundle(), "web");
  EXPECT_EQ(second->message.diff().bundle(), "db");
  EXPECT_EQ(hub.NextControlMessage(a), nullptr);

  v1::DiffResult result;
  result.set_id(first->message.diff().id());
  result.set_unchanged(3);
  hub.OnDiff(b, result);  // another cluster cannot answer for a
  // The unanswered "db" request expires when its time has passed, not before.
  clock.Advance(absl::Milliseconds(90));
  absl::SleepFor(absl::Milliseconds(30));
  EXPECT_EQ(count(), 1u) << "expired early";
  clock.Advance(absl::Milliseconds(30));
  for (int i = 0; i < 2000 && count() < 2; ++i) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(count(), 2u);
  {
    MutexLock lock(&mu);
    EXPECT_EQ(answers[1].status().code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_EQ(answers[1].status().message(), "cluster a did not answer the diff request in time");
  }
  hub.OnDiff(a, result);
  ASSERT_EQ(count(), 3u);
  MutexLock lock(&mu);
  ASSERT_TRUE(answers[2].ok());
  EXPECT_EQ(answers[2]->cluster(), "a");
  EXPECT_EQ(answers[2]->unchanged(), 3);
}

// `gauge{labels} value` as Prometheus reads it.
bool Exposes(metrics::Registry& registry, const std::string& sample) {
  return absl::StrContains(registry.Serialize(), sample + "\n");
}

TEST_F(HubTest, BundleGaugesCountTheClustersByTheirLastReport) {
  hub_.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x"})));
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  uint64_t b = hub_.Connect(MakeHello("b", "prod"), "p", conn);
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  ASSERT_NE(hub_.NextMessage(b, "web"), nullptr);
  auto report = [&](uint64_t session, v1::SyncState sync, v1::HealthState health) {
    v1::StatusUpdate status;
    status.set_bundle("web");
    status.set_sync_state(sync);
    status.set_health(health);
    hub_.OnStatus(session, status);
  };
  auto clusters = [&](const std::string& state, int count) {
    return Exposes(registry_, absl::StrCat("gitfleet_bundle_clusters{bundle=\"web\",sync_state=\"",
                                           state, "\"} ", count));
  };
  auto health = [&](const std::string& state, int count) {
    return Exposes(registry_,
                   absl::StrCat("gitfleet_bundle_cluster_health{bundle=\"web\",health=\"", state,
                                "\"} ", count));
  };
  EXPECT_FALSE(absl::StrContains(registry_.Serialize(), "gitfleet_bundle_clusters{"))
      << "no report, no series";

  report(a, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_HEALTHY);
  report(b, v1::SYNC_STATE_APPLYING, v1::HEALTH_STATE_PROGRESSING);
  EXPECT_TRUE(clusters("synced", 1));
  EXPECT_TRUE(clusters("applying", 1));
  EXPECT_TRUE(clusters("failed", 0)) << "every state has a series";
  EXPECT_TRUE(clusters("out_of_sync", 0));
  EXPECT_TRUE(health("healthy", 1));
  EXPECT_TRUE(health("progressing", 1));
  EXPECT_TRUE(health("degraded", 0));

  report(b, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_HEALTHY);
  report(b, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_HEALTHY);  // the same again
  EXPECT_TRUE(clusters("synced", 2));
  EXPECT_TRUE(clusters("applying", 0));
  EXPECT_TRUE(health("healthy", 2));
  EXPECT_TRUE(health("progressing", 0));
  report(a, v1::SYNC_STATE_FAILED, v1::HEALTH_STATE_DEGRADED);
  EXPECT_TRUE(clusters("synced", 1));
  EXPECT_TRUE(clusters("failed", 1));
  EXPECT_TRUE(health("degraded", 1));
  // A state this build does not know is a report, counted in no state.
  report(a, static_cast<v1::SyncState>(99), static_cast<v1::HealthState>(99));
  EXPECT_TRUE(clusters("failed", 0));
  EXPECT_TRUE(health("degraded", 0));
  report(a, v1::SYNC_STATE_FAILED, v1::HEALTH_STATE_UNSPECIFIED);
  EXPECT_TRUE(clusters("failed", 1));
  // A bundle an agent holds that nobody defined here adds no series (agents cannot grow
  // the control plane's metrics by naming bundles).
  uint64_t c = hub_.Connect(MakeHello("c", "prod", {{"ghost", "r"}}), "p", conn);
  v1::StatusUpdate ghost;
  ghost.set_bundle("ghost");
  ghost.set_sync_state(v1::SYNC_STATE_SYNCED);
  hub_.OnStatus(c, ghost);
  EXPECT_FALSE(absl::StrContains(registry_.Serialize(), "bundle=\"ghost\""));
  hub_.Disconnect(c);

  // A disconnected cluster still counts (it runs what it last reported); and a restart
  // counts the stored reports again.
  hub_.Disconnect(a);
  EXPECT_TRUE(clusters("failed", 1));
  hub_.Flush();
  {
    metrics::Registry registry;
    ControlPlaneMetrics metrics(registry);
    Hub reloaded(&store_, metrics);
    ASSERT_TRUE(reloaded.Load().ok());
    // Shown once the controller defines the bundle again, as it does at start.
    EXPECT_FALSE(absl::StrContains(registry.Serialize(), "gitfleet_bundle_clusters{"));
    reloaded.SetBundle("web", Selector(""), SingleRevision(MakeRevision("web", {"x"})));
    EXPECT_TRUE(
        Exposes(registry, "gitfleet_bundle_clusters{bundle=\"web\",sync_state=\"failed\"} 1"));
    EXPECT_TRUE(
        Exposes(registry, "gitfleet_bundle_clusters{bundle=\"web\",sync_state=\"synced\"} 1"));
    EXPECT_TRUE(
        Exposes(registry, "gitfleet_bundle_cluster_health{bundle=\"web\",health=\"healthy\"} 1"));
  }

  // Removed: its series go with the last cluster that drops it.
  a = hub_.Connect(MakeHello("a", "prod", {{"web", "r"}}), "p", conn);
  hub_.RemoveBundle("web");
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  EXPECT_TRUE(clusters("synced", 1));
  EXPECT_TRUE(clusters("failed", 0));
  ASSERT_NE(hub_.NextMessage(b, "web"), nullptr);
  EXPECT_FALSE(absl::StrContains(registry_.Serialize(), "bundle=\"web\""));
}

TEST_F(HubTest, RegisteredClustersAreCountedByState) {
  hub_.SetClusterIdentity("up", true, LabelMap{{"env", "prod"}});
  hub_.SetClusterIdentity("away", true, LabelMap{{"env", "prod"}});
  hub_.SetClusterIdentity("new", true, LabelMap{{"env", "prod"}});
  hub_.SetClusterIdentity("fixing", true, LabelMap{{"env", "prod"}});
  auto conn = std::make_shared<FakeConnection>();
  hub_.Connect(MakeHello("up", "prod"), "p", conn);
  hub_.Disconnect(hub_.Connect(MakeHello("away", "prod"), "p", conn));
  ASSERT_TRUE(hub_.SuspendCluster("fixing", true).ok());
  // Seen but not registered (--allow-any-agent), or retired: not counted.
  hub_.Disconnect(hub_.Connect(MakeHello("stray", "prod"), "p", conn));
  hub_.CountClusters();
  auto count = [&](const std::string& state) {
    return metrics_.clusters.Add({{"state", state}}).Value();
  };
  EXPECT_EQ(count("connected"), 1);
  EXPECT_EQ(count("disconnected"), 1);
  EXPECT_EQ(count("never_connected"), 1);
  EXPECT_EQ(count("suspended"), 1);

  hub_.Connect(MakeHello("away", "prod"), "p", conn);
  hub_.SetClusterIdentity("up", false, std::nullopt);  // retired
  hub_.CountClusters();
  EXPECT_EQ(count("connected"), 1);
  EXPECT_EQ(count("disconnected"), 0);
}

TEST_F(HubTest, ReportsAndClustersSurviveReload) {
  auto conn = std::make_shared<FakeConnection>();
  v1::Hello hello = MakeHello("a", "prod", {{"web", "r1"}, {"big", "r1"}});
  uint64_t a = hub_.Connect(hello, "p", conn);
  v1::StatusUpdate status;
  status.set_bundle("web");
  status.set_sync_state(v1::SYNC_STATE_SYNCED);
  hub_.OnStatus(a, status);
  // A bundle it neither holds nor is given leaves no row behind.
  v1::StatusUpdate stray = status;
  stray.set_bundle("stray");
  hub_.OnStatus(a, stray);
  hub_.Disconnect(a);
  v1::StatusUpdate huge = status;
  huge.set_bundle("big");
  huge.set_message(std::string(100000, 'm'));
  for (int i = 0; i < 500; ++i) huge.add_unhealthy_resources()->set_message("bad");
  uint64_t again = hub_.Connect(hello, "p", conn);
  hub_.OnStatus(again, huge);
  hub_.Disconnect(again);
  hub_.Flush();

  Hub reloaded(&store_, metrics_);
  reloaded.SetTrustAgentLabels(true);
  ASSERT_TRUE(reloaded.Load().ok());
  std::vector<ClusterView> clusters = reloaded.Clusters();
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].info.name(), "a");
  EXPECT_FALSE(clusters[0].info.connected());
  EXPECT_EQ(clusters[0].info.labels().at("env"), "prod");
  EXPECT_EQ(clusters[0].reports.at("web").sync_state(), v1::SYNC_STATE_SYNCED);
  EXPECT_EQ(clusters[0].reports.count("stray"), 0u);
  // What an agent sends is bounded before it is kept.
  const v1::StatusUpdate& big = clusters[0].reports.at("big");
  EXPECT_LE(big.message().size(), 1100u);
  EXPECT_EQ(big.unhealthy_resources_size(), 20);
}

}  // namespace
}  // namespace gitfleet

namespace gitfleet {
namespace {

// Pulls messages when notified, as the stream reactor does, tracking what it holds.
class PullingConnection : public AgentConnection {
 public:
  explicit PullingConnection(Hub* hub) : hub_(hub) {}
  void set_session(uint64_t session) {
    MutexLock lock(&mu_);
    session_ = session;
  }
  void NotifyControl() override {}
  // One pull at a time, like the stream's single write in flight.
  void Notify(const std::string& bundle) override {
    MutexLock pulling(&pull_mu_);
    uint64_t session;
    {
      MutexLock lock(&mu_);
      session = session_;
    }
    if (session == 0) return;
    std::shared_ptr<const EncodedMessage> message = hub_->NextMessage(session, bundle);
    if (message == nullptr) return;
    MutexLock lock(&mu_);
    if (message->message.has_update()) held_[bundle] = message->message.update().revision();
    if (message->message.has_removal()) held_.erase(bundle);
  }
  void Close(const absl::Status&) override {}
  std::map<std::string, std::string> held() {
    MutexLock lock(&mu_);
    return held_;
  }

 private:
  Hub* const hub_;
  Mutex pull_mu_;
  Mutex mu_;
  uint64_t session_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::string> held_ ABSL_GUARDED_BY(mu_);
};

TEST(HubConcurrencyTest, ConcurrentRendersConnectsAndReportsConverge) {
  metrics::Registry registry;
  ControlPlaneMetrics metrics(registry);
  MemoryStore store;
  Hub hub(&store, metrics);
  hub.SetTrustAgentLabels(true);
  constexpr int kAgents = 8;
  constexpr int kRevisions = 40;
  std::vector<std::shared_ptr<PullingConnection>> connections;
  for (int i = 0; i < kAgents; ++i) {
    connections.push_back(std::make_shared<PullingConnection>(&hub));
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  // Renders: a new revision of "web" again and again.
  std::shared_ptr<const Revision> last;
  threads.emplace_back([&] {
    for (int r = 0; r < kRevisions; ++r) {
      auto rev = MakeRevision("web", {"a", "b"}, std::to_string(r));
      hub.SetBundle("web", Selector("env=prod"), SingleRevision(rev));
      if (r == kRevisions - 1) last = rev;
    }
  });
  // Agents connect, report and reconnect.
  for (int i = 0; i < kAgents; ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 5; ++round) {
        v1::Hello hello = MakeHello("agent-" + std::to_string(i), "prod");
        uint64_t session = hub.Connect(hello, "peer", connections[i]);
        connections[i]->set_session(session);
        connections[i]->Notify("web");
        v1::StatusUpdate status;
        status.set_bundle("web");
        status.set_sync_state(v1::SYNC_STATE_SYNCED);
        hub.OnStatus(session, status);
        if (round < 4) {
          connections[i]->set_session(0);
          hub.Disconnect(session);
        }
      }
    });
  }
  // Readers: status and listings while all that happens.
  threads.emplace_back([&] {
    while (!stop.load()) hub.Clusters();
  });
  for (size_t t = 0; t + 1 < threads.size(); ++t) threads[t].join();
  stop = true;
  threads.back().join();

  // Every agent ends holding the newest revision.
  for (int i = 0; i < kAgents; ++i) connections[i]->Notify("web");
  for (int i = 0; i < kAgents; ++i) {
    EXPECT_EQ(connections[i]->held()["web"], last->id) << "agent " << i;
  }
  EXPECT_EQ(metrics.connected_agents.Value(), kAgents);
}

// Per-cluster content whose revisions exist only once `Build` made them.
class LazyContent : public BundleContent {
 public:
  const std::string& commit() const override { return commit_; }
  absl::Time committed_time() const override { return absl::UnixEpoch(); }
  std::shared_ptr<const Revision> Uniform() const override { return nullptr; }
  std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> Built(
      const v1::ClusterInfo& cluster) const override {
    MutexLock lock(&mu_);
    if (left_out_.count(cluster.name()) > 0) {
      return absl::StatusOr<std::shared_ptr<const Revision>>(NotDeployedHere("left out"));
    }
    auto it = built_.find(cluster.name());
    if (it == built_.end()) return std::nullopt;
    return it->second;
  }
  bool LeavesSomeOut() const override {
    MutexLock lock(&mu_);
    return !left_out_.empty();
  }
  uint64_t builds() const override {
    MutexLock lock(&mu_);
    return built_.size() + left_out_.size();
  }
  // `cluster`'s outcome: left out (NotDeployedHere).
  void LeaveOut(const std::string& cluster) {
    MutexLock lock(&mu_);
    left_out_.insert(cluster);
  }
  std::shared_ptr<const Revision> Find(const std::string& id) const override {
    MutexLock lock(&mu_);
    for (const auto& [cluster, revision] : built_) {
      if (revision->id == id) return revision;
    }
    return nullptr;
  }
  void Build(const std::string& cluster) {
    MutexLock lock(&mu_);
    built_[cluster] = MakeRevision("web", {"cm-" + cluster});
  }

 private:
  const std::string commit_ = "c0ffee";
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<const Revision>> built_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> left_out_ ABSL_GUARDED_BY(mu_);
};

// Clusters a bundle's files leave out are neither targets waited for nor current, whatever
// they hold; the count follows what the content builds and who joins, and is kept between.
TEST_F(HubTest, ARolloutCountLeavesOutTheClustersTheContentLeavesOut) {
  auto conn = std::make_shared<FakeConnection>();
  auto content = std::make_shared<LazyContent>();
  content->Build("a");
  content->LeaveOut("b");
  hub_.SetBundle("web", Selector(""), content);
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  hub_.Connect(MakeHello("b", "prod"), "p", conn);
  hub_.Connect(MakeHello("c", "prod"), "p", conn);  // not built yet
  Hub::Rollout rollout = hub_.RolloutOf("web", Selector(""));
  EXPECT_EQ(rollout.targets, 2);
  EXPECT_EQ(rollout.not_deployed, 1);
  EXPECT_EQ(rollout.current, 0);
  std::shared_ptr<const EncodedMessage> update = hub_.NextMessage(a, "web");
  ASSERT_NE(update, nullptr);
  hub_.OnAck(a, MakeAck("web", update->message.update().revision()));
  rollout = hub_.RolloutOf("web", Selector(""));
  EXPECT_EQ(rollout.current, 1);
  EXPECT_EQ(rollout.not_deployed, 1) << "kept";
  content->LeaveOut("c");  // built meanwhile: counted again
  rollout = hub_.RolloutOf("web", Selector(""));
  EXPECT_EQ(rollout.targets, 1);
  EXPECT_EQ(rollout.not_deployed, 2);
  EXPECT_EQ(rollout.current, 1);
  // A left-out cluster that holds a revision of this content is not counted current.
  content->LeaveOut("a");
  rollout = hub_.RolloutOf("web", Selector(""));
  EXPECT_EQ(rollout.targets, 0);
  EXPECT_EQ(rollout.not_deployed, 3);
  EXPECT_EQ(rollout.current, 0);
  hub_.Connect(MakeHello("d", "dev"), "p", conn);  // joins: counted again, as a target
  EXPECT_EQ(hub_.RolloutOf("web", Selector("")).targets, 1);
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).targets, 0) << "another selector";
  EXPECT_EQ(hub_.RolloutOf("web", Selector("env=prod")).not_deployed, 3);
}

// A paced partition gives a cluster down on the older revision it runs the new one out of
// turn: the hub tells such a cluster apart from one that waits its turn healthy, one not
// connected (it could not take it), one suspended (it takes nothing new), and one that
// already has the new revision or none, for revisions the same everywhere or per cluster.
TEST_F(HubTest, AClusterDownOnAnOlderRevisionIsToldApartFromOneWaitingItsTurn) {
  auto conn = std::make_shared<FakeConnection>();
  auto rev = MakeRevision("web", {"x"}, "2");
  std::shared_ptr<const BundleContent> uniform = SingleRevision(rev);
  auto per_cluster = std::make_shared<LazyContent>();
  const std::vector<std::string> names = {"down",      "healthy", "current", "away",
                                          "suspended", "none",    "failed"};
  std::map<std::string, uint64_t> session;
  for (const std::string& name : names) {
    session[name] = hub_.Connect(MakeHello(name, "prod"), "p", conn);
    per_cluster->Build(name);
  }
  auto report = [&](const std::string& name, const std::string& revision, v1::SyncState sync,
                    v1::HealthState health) {
    v1::StatusUpdate status;
    status.set_bundle("web");
    status.set_revision(revision);
    status.set_applied_revision(sync == v1::SYNC_STATE_SYNCED ? revision : "");
    status.set_sync_state(sync);
    status.set_health(health);
    status.set_message(sync == v1::SYNC_STATE_FAILED ? "webhook refused it" : "");
    hub_.OnStatus(session[name], status);
  };
  for (const std::shared_ptr<const BundleContent>& content :
       std::vector<std::shared_ptr<const BundleContent>>{uniform, per_cluster}) {
    SCOPED_TRACE(content == uniform ? "uniform" : "per cluster");
    hub_.SetBundle("web", Selector(""), content);
    std::string expected_current = content == uniform ? rev->id : "";
    if (expected_current.empty()) {
      v1::ClusterInfo info;
      info.set_name("current");
      std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> built =
          per_cluster->Built(info);
      ASSERT_TRUE(built.has_value() && built->ok());
      expected_current = (**built)->id;
    }
    report("down", "old", v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_DEGRADED);
    report("healthy", "old", v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_HEALTHY);
    report("current", expected_current, v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_PROGRESSING);
    report("away", "old", v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_DEGRADED);
    report("suspended", "old", v1::SYNC_STATE_SYNCED, v1::HEALTH_STATE_PROGRESSING);
    report("failed", "old", v1::SYNC_STATE_FAILED, v1::HEALTH_STATE_HEALTHY);
    if (content == uniform) {
      hub_.Disconnect(session["away"]);
      ASSERT_TRUE(hub_.SuspendCluster("suspended", true).ok());
    }
    PartitionProgress progress = hub_.SummarizeProgress("web", content.get(), names);
    EXPECT_EQ(progress.not_ready, 7) << "none reports this revision ready";
    EXPECT_THAT(progress.down, ElementsAre("down", "failed"));
    EXPECT_THAT(progress.suspended, ElementsAre("suspended"));
    std::vector<v1::RolloutCluster> described =
        hub_.RolloutProgress("web", content.get(), {"down", "healthy", "failed"});
    ASSERT_EQ(described.size(), 3u);
    EXPECT_TRUE(described[0].down_on_older());
    EXPECT_THAT(described[0].detail(),
                HasSubstr("no report for this revision yet; not ready on the older revision it "
                          "runs (degraded)"));
    EXPECT_FALSE(described[1].down_on_older());
    EXPECT_EQ(described[1].detail(), "no report for this revision yet");
    EXPECT_THAT(described[2].detail(), HasSubstr("(webhook refused it)"));
    std::vector<v1::RolloutCluster> resting =
        hub_.RolloutProgress("web", content.get(), {"suspended"});
    ASSERT_EQ(resting.size(), 1u);
    EXPECT_TRUE(resting[0].suspended());
    EXPECT_FALSE(resting[0].down_on_older());
  }
}

// Which bundles an update's removed keys may be handed over to is looked up by key: the
// index follows each bundle's newest content as it changes, and leaves, and bundles whose
// revisions differ per cluster are always asked.
TEST_F(HubTest, HandoversFollowEachBundlesNewestContentAsItChanges) {
  auto conn = std::make_shared<FakeConnection>();
  uint64_t a = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  auto web_with = [](const std::vector<std::string>& names) {
    return SingleRevision(MakeRevision("web", names));
  };
  hub_.SetBundle("web", Selector(""), web_with({"x", "moved", "cm-a"}));
  hub_.SetBundle("api", Selector(""), SingleRevision(MakeRevision("api", {"y"})));
  ASSERT_NE(hub_.NextMessage(a, "web"), nullptr);
  ASSERT_NE(hub_.NextMessage(a, "api"), nullptr);
  // "web drops `name`": the handovers of its update to a, then web holds it again.
  auto drop = [&](const std::string& name) {
    std::vector<std::string> kept = {"x", "moved", "cm-a"};
    kept.erase(std::find(kept.begin(), kept.end(), name));
    hub_.SetBundle("web", Selector(""), web_with(kept));
    std::shared_ptr<const EncodedMessage> update = hub_.NextMessage(a, "web");
    EXPECT_NE(update, nullptr);
    std::vector<std::string> out =
        update != nullptr ? Handovers(*update) : std::vector<std::string>{"none sent"};
    hub_.SetBundle("web", Selector(""), web_with({"x", "moved", "cm-a"}));
    EXPECT_NE(hub_.NextMessage(a, "web"), nullptr);
    return out;
  };

  hub_.SetNewestContent("api", Selector(""), SingleRevision(MakeRevision("api", {"y", "moved"})));
  EXPECT_THAT(drop("moved"), ElementsAre("moved->api"));
  // api's newest no longer holds it (another commit): web deletes it.
  hub_.SetNewestContent("api", Selector(""), SingleRevision(MakeRevision("api", {"y"})));
  EXPECT_THAT(drop("moved"), IsEmpty());
  // api's target content, once its newest goes with the bundle, counts no more either.
  hub_.SetBundle("api", Selector(""), SingleRevision(MakeRevision("api", {"y", "moved"})));
  hub_.SetNewestContent("api", Selector(""), SingleRevision(MakeRevision("api", {"y", "moved"})));
  EXPECT_THAT(drop("moved"), ElementsAre("moved->api"));
  hub_.RemoveBundle("api");
  EXPECT_THAT(drop("moved"), IsEmpty());
  // A bundle new to the hub, given only its target content (no newest), counts.
  hub_.SetBundle("db", Selector(""), SingleRevision(MakeRevision("db", {"moved"})));
  EXPECT_THAT(drop("moved"), ElementsAre("moved->db"));
  hub_.SetBundle("db", Selector("env=dev"), SingleRevision(MakeRevision("db", {"moved"})));
  EXPECT_THAT(drop("moved"), IsEmpty()) << "db no longer targets a";

  // Per-cluster revisions are not indexed: such a bundle is always asked.
  auto values = std::make_shared<LazyContent>();
  values->Build("a");  // holds cm-a for a
  hub_.SetNewestContent("vals", Selector(""), values);
  EXPECT_THAT(drop("cm-a"), ElementsAre("cm-a->vals"));
  EXPECT_THAT(drop("x"), IsEmpty());
}

TEST_F(HubTest, ARevisionNotBuiltIsRequestedNeverRenderedOnTheAskingThread) {
  std::vector<std::string> requested;
  hub_.SetRenderRequester([&](const std::string& bundle) { requested.push_back(bundle); });
  auto content = std::make_shared<LazyContent>();
  auto conn = std::make_shared<FakeConnection>();
  uint64_t session = hub_.Connect(MakeHello("a", "prod"), "p", conn);
  hub_.SetBundle("web", Selector(""), content);
  EXPECT_EQ(hub_.NextMessage(session, "web"), nullptr);
  EXPECT_THAT(requested, ElementsAre("web"));
  // The controller builds it and hands the same content again: the agent is told.
  content->Build("a");
  conn->notified.clear();
  hub_.SetBundle("web", Selector(""), content);
  EXPECT_THAT(conn->notified, ElementsAre("web"));
  auto message = hub_.NextMessage(session, "web");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().upserts(0).key().name(), "cm-a");
  EXPECT_THAT(requested, ElementsAre("web")) << "asked once";
}

}  // namespace
}  // namespace gitfleet

namespace gitfleet {
namespace {

// A cluster that joins during a rollout holds nothing of the bundle: until its turn it
// gets what the whole fleet was last given, never the revision being rolled out. A
// cluster that holds any revision keeps it.
TEST_F(HubTest, AClusterThatHoldsNothingGetsTheStableContentUntilItsTurn) {
  auto r1 = MakeRevision("web", {"x"}, "1");
  auto r2 = MakeRevision("web", {"x"}, "2");
  auto stable = SingleRevision(r1);
  auto next = SingleRevision(r2);
  uint64_t old = hub_.Connect(MakeHello("old", "prod", {{"web", "an-older-one"}}), "p",
                              std::make_shared<FakeConnection>());
  hub_.SetBundle("web", Selector(""), next, 1, ClusterSetGate::Of({"first"}), stable);
  EXPECT_EQ(hub_.NextMessage(old, "web"), nullptr) << "it keeps what it holds";

  auto joiner_conn = std::make_shared<FakeConnection>();
  uint64_t joiner = hub_.Connect(MakeHello("joiner", "prod"), "p", joiner_conn);
  EXPECT_THAT(joiner_conn->notified, ElementsAre("web"));
  auto message = hub_.NextMessage(joiner, "web");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().revision(), r1->id);
  EXPECT_TRUE(message->message.update().interim()) << "not the bundle's newest";
  EXPECT_EQ(hub_.NextMessage(joiner, "web"), nullptr) << "holding it now";

  // Its turn: the revision being rolled out, as a delta from the stable one.
  hub_.SetBundle("web", Selector(""), next, 1, ClusterSetGate::Of({"first", "joiner"}), stable);
  message = hub_.NextMessage(joiner, "web");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().revision(), r2->id);
  EXPECT_EQ(message->message.update().base_revision(), r1->id);
  EXPECT_FALSE(message->message.update().interim());

  // Without a stable content (the bundle never reached the whole fleet), nothing.
  hub_.SetBundle("web", Selector(""), next, 1, ClusterSetGate::Of({"first"}));
  uint64_t late = hub_.Connect(MakeHello("late", "prod"), "p", std::make_shared<FakeConnection>());
  EXPECT_EQ(hub_.NextMessage(late, "web"), nullptr);
  // Nor to a cluster that the bundle does not target.
  hub_.SetBundle("web", Selector("env=prod"), next, 1, ClusterSetGate::Of({"first"}), stable);
  uint64_t dev = hub_.Connect(MakeHello("dev", "dev"), "p", std::make_shared<FakeConnection>());
  EXPECT_EQ(hub_.NextMessage(dev, "web"), nullptr);
}

// The stable content goes only where its gate allows (the controller's: where the bundles
// it depends on are ready).
TEST_F(HubTest, TheStableContentGoesOnlyWhereItsGateAllows) {
  auto r1 = MakeRevision("web", {"x"}, "1");
  auto next = SingleRevision(MakeRevision("web", {"x"}, "2"));
  auto ready_conn = std::make_shared<FakeConnection>();
  uint64_t ready = hub_.Connect(MakeHello("ready", "prod"), "p", ready_conn);
  uint64_t waiting =
      hub_.Connect(MakeHello("waiting", "prod"), "p", std::make_shared<FakeConnection>());
  hub_.SetBundle("web", Selector(""), next, 1, ClusterSetGate::Of({}), SingleRevision(r1),
                 ClusterSetGate::Of({"ready"}));
  EXPECT_THAT(ready_conn->notified, ElementsAre("web"));
  auto message = hub_.NextMessage(ready, "web");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().revision(), r1->id);
  EXPECT_EQ(hub_.NextMessage(waiting, "web"), nullptr);
}

// Stable content whose revision for a cluster's values was never built: the joiner gets
// nothing, and no render is asked for (the render requester builds the current content).
TEST_F(HubTest, AStableRevisionNotBuiltIsAskedForAndTheAgentToldOnceItIs) {
  std::vector<std::string> requested;
  hub_.SetRenderRequester([&](const std::string& bundle) { requested.push_back(bundle); });
  auto stable = std::make_shared<LazyContent>();
  stable->Build("built");
  auto next = SingleRevision(MakeRevision("web", {"x"}, "2"));
  Hub::Gate gate = ClusterSetGate::Of({});
  hub_.SetBundle("web", Selector(""), next, 1, gate, stable);
  auto connection = std::make_shared<FakeConnection>();
  uint64_t joiner = hub_.Connect(MakeHello("joiner", "prod"), "p", connection);
  EXPECT_EQ(hub_.NextMessage(joiner, "web"), nullptr) << "built on a gRPC thread";
  EXPECT_THAT(requested, ElementsAre("web"));
  uint64_t built =
      hub_.Connect(MakeHello("built", "prod"), "p", std::make_shared<FakeConnection>());
  auto message = hub_.NextMessage(built, "web");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().upserts(0).key().name(), "cm-built");

  // The controller builds it and sets the bundle again, changing nothing else.
  connection->notified.clear();
  stable->Build("joiner");
  hub_.SetBundle("web", Selector(""), next, 1, gate, stable);
  EXPECT_THAT(connection->notified, ElementsAre("web"));
  message = hub_.NextMessage(joiner, "web");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->message.update().upserts(0).key().name(), "cm-joiner");
}

// Fleet's cluster groups: each cluster's are those whose selector matches the labels
// bundles target it by (the owned ones here: an agent's claim puts it in no group). A
// change of the groups asks again what a connected cluster whose groups it changes gets
// from bundles rendered per cluster, and nothing else; a change of its labels moves it
// between groups.
TEST_F(HubLabelsTest, AClustersGroupsFollowTheGroupsAndItsLabels) {
  auto group = [](const std::string& name, const std::string& selector, const LabelMap& labels) {
    return ClusterGroup{name, labels, *LabelSelector::Parse(selector)};
  };
  auto groups_of = [&](const std::string& cluster) {
    std::vector<std::string> out;
    const std::vector<ClusterView> views = hub_.Clusters(cluster);
    for (const v1::ClusterGroupMembership& g : views.at(0).info.groups()) {
      out.push_back(absl::StrCat(g.name(), g.labels().empty() ? "" : ":labelled"));
    }
    return out;
  };
  // A bundle rendered per cluster is asked again; one with one revision for all is not.
  hub_.SetBundle("web", Selector(""), std::make_shared<LazyContent>());
  hub_.SetBundle("all", Selector(""), SingleRevision(MakeRevision("all", {"x"})));
  hub_.SetClusterIdentity("a", true, LabelMap{{"env", "prod"}, {"region", "eu"}});
  hub_.SetClusterIdentity("b", true, LabelMap{{"env", "dev"}});
  auto a_conn = std::make_shared<FakeConnection>();
  auto b_conn = std::make_shared<FakeConnection>();
  hub_.Connect(MakeHello("a", "prod"), "p", a_conn);
  hub_.Connect(MakeHello("b", "prod"), "p", b_conn);  // claims prod: not its labels
  const uint64_t version = hub_.MembershipVersion();
  a_conn->notified.clear();
  b_conn->notified.clear();
  hub_.SetClusterGroups(std::make_shared<const std::vector<ClusterGroup>>(std::vector<ClusterGroup>{
      group("eu", "region=eu", {}), group("prod", "env=prod", {{"tier", "1"}}),
      ClusterGroup{"none", {}, std::nullopt}}));
  EXPECT_THAT(groups_of("a"), ElementsAre("eu", "prod:labelled"));
  EXPECT_THAT(groups_of("b"), IsEmpty());
  EXPECT_THAT(a_conn->notified, ElementsAre("web")) << "its renders may change";
  EXPECT_THAT(b_conn->notified, ElementsAre("web"))
      << "in no group, now known: a render waiting to know renders";
  EXPECT_TRUE(hub_.Clusters("b")[0].info.groups_defined());
  EXPECT_GT(hub_.MembershipVersion(), version) << "cuts by group are worked out again";

  // The same groups again: nobody is told anything.
  a_conn->notified.clear();
  b_conn->notified.clear();
  const uint64_t same = hub_.MembershipVersion();
  hub_.SetClusterGroups(std::make_shared<const std::vector<ClusterGroup>>(std::vector<ClusterGroup>{
      group("eu", "region=eu", {}), group("prod", "env=prod", {{"tier", "1"}}),
      ClusterGroup{"none", {}, std::nullopt}}));
  EXPECT_THAT(a_conn->notified, IsEmpty());
  EXPECT_THAT(b_conn->notified, IsEmpty());
  EXPECT_EQ(hub_.MembershipVersion(), same);

  // b's labels change: it joins prod.
  hub_.SetClusterIdentity("b", true, LabelMap{{"env", "prod"}});
  EXPECT_THAT(groups_of("b"), ElementsAre("prod:labelled"));
  // The groups go: so do the clusters' memberships.
  hub_.SetClusterGroups(nullptr);
  EXPECT_THAT(groups_of("a"), IsEmpty());
  EXPECT_THAT(groups_of("b"), IsEmpty());
}

}  // namespace
}  // namespace gitfleet
