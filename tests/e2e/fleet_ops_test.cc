// End-to-end fleet operations: the real control plane, agents (--apply=kubernetes) and
// one fake Kubernetes API server per cluster, on loopback, against a real Git repository.
// Deployments stay Progressing until the test marks them ready, as a slow or broken
// rollout would.

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "agent/kube/client.h"
#include "agent/kube/config.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/gitfleet/v1/admin.grpc.pb.h"
#include "tests/e2e/e2e_util.h"
#include "tests/util/git_fixture.h"
#include "tests/util/process.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::Eventually;
using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::HttpGet;
using ::gitfleet::testing::MetricValue;
using ::gitfleet::testing::Process;
using ::gitfleet::testing::TempDir;
using nlohmann::json;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

using ::gitfleet::testing::kAgent;
using ::gitfleet::testing::kControlPlane;
using ::gitfleet::testing::kCtl;
using ::gitfleet::testing::kFakeApiServer;
using ::gitfleet::testing::Port;

class FleetOps : public ::testing::Test {
 protected:
  struct Cluster {
    std::unique_ptr<Process> api;
    std::unique_ptr<KubeClient> client;
    std::unique_ptr<Process> agent;
  };

  FleetOps() : root_(TempDir("ops")), git_(root_ + "/repo") {}

  void StartControlPlane(const std::vector<std::string>& extra = {},
                         const std::string& log = "cp.log") {
    std::vector<std::string> args = {"--data-dir=" + root_ + "/cp", "--grpc=127.0.0.1:0",
                                     "--http=127.0.0.1:0",          "--poll-interval-seconds=1",
                                     "--allow-any-agent",           "--trust-agent-labels",
                                     "--allow-local-sources"};
    args.insert(args.end(), extra.begin(), extra.end());
    cp_ = std::make_unique<Process>(kControlPlane, args, root_ + "/" + log);
    grpc_port_ = Port(cp_->WaitForLog(R"(serving gRPC on port (\d+))"));
    ASSERT_GT(grpc_port_, 0) << cp_->Log();
    http_port_ = Port(cp_->WaitForLog(R"(HTTP on port (\d+))"));
    admin_ = v1::AdminService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_),
                                                           grpc::InsecureChannelCredentials()));
  }

  // Stops the control plane (SIGTERM, as an upgrade does) and starts it again on the same
  // data and gRPC port; returns once every cluster's agent is back.
  void RestartControlPlane() {
    ASSERT_EQ(cp_->Kill(SIGTERM), 0) << cp_->Log();
    StartControlPlane({absl::StrCat("--grpc=127.0.0.1:", grpc_port_)}, "cp-restarted.log");
    for (const auto& [name, cluster] : clusters_) {
      ASSERT_NE(cp_->WaitForLog("cluster " + name + " connected", absl::Seconds(30)), "")
          << cp_->Log();
    }
  }

  // A fake API server (no controllers: Deployments stay Progressing) and an agent for it.
  void StartCluster(const std::string& name, const std::string& labels = "env=prod") {
    Cluster& c = clusters_[name];
    const std::string dir = root_ + "/" + name;
    ASSERT_EQ(::gitfleet::testing::Run("mkdir -p " + dir), 0);
    c.api = std::make_unique<Process>(
        kFakeApiServer, std::vector<std::string>{"--simulate-controllers=false"}, dir + "/api.log");
    std::string url = c.api->WaitForLog(R"(listening on (http://\S+))");
    ASSERT_FALSE(url.empty()) << c.api->Log();
    std::ofstream(dir + "/kubeconfig")
        << "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n"
        << "  cluster:\n    server: " << url << "\nusers:\n- name: agent\n  user: {}\n"
        << "contexts:\n- name: fake\n  context: {cluster: fake, user: agent}\n";
    absl::StatusOr<KubeConfig> config = LoadKubeconfig(dir + "/kubeconfig", "");
    ASSERT_TRUE(config.ok()) << config.status();
    c.client = *KubeClient::Create(*config, {});
    c.agent = std::make_unique<Process>(
        kAgent,
        std::vector<std::string>{absl::StrCat("--controlplane=127.0.0.1:", grpc_port_),
                                 "--cluster=" + name, "--labels=" + labels, "--apply=kubernetes",
                                 "--kubeconfig=" + dir + "/kubeconfig",
                                 "--state-dir=" + dir + "/state", "--http=127.0.0.1:0",
                                 "--resync-interval-seconds=1", "--health-interval-seconds=1"},
        dir + "/agent.log");
    ASSERT_GT(Port(c.agent->WaitForLog(R"(HTTP on port (\d+))")), 0) << c.agent->Log();
  }

  std::string Ctl(const std::vector<std::string>& args, int* code = nullptr) {
    return ::gitfleet::testing::RunCtl(grpc_port_, args, code,
                                       ::gitfleet::testing::CtlOutput::kStdoutAndStderr);
  }

  // `gitfleetctl rollout status BUNDLE -w --commit=COMMIT --watch-timeout=TIMEOUT`: its
  // lines and what it said, and its exit code in `code`.
  std::string WatchCommit(const std::string& bundle, const std::string& commit,
                          const std::string& timeout, int* code) {
    return Ctl(
        {"rollout", "status", bundle, "-w", "--commit=" + commit, "--watch-timeout=" + timeout},
        code);
  }

  json Live(const std::string& cluster, const std::string& path) {
    absl::StatusOr<KubeResponse> r = clusters_[cluster].client->Do("GET", path);
    if (!r.ok() || r->code != 200) return nullptr;
    return json::parse(r->body, nullptr, false);
  }
  // The image of the web Deployment on `cluster` ("" when there is none).
  std::string Image(const std::string& cluster) {
    json d = Live(cluster, "/apis/apps/v1/namespaces/shop/deployments/web");
    if (d.is_null()) return "";
    return d["spec"]["template"]["spec"]["containers"][0]["image"];
  }
  // Marks the Deployment rolled out, as its controller would.
  void Ready(const std::string& cluster) {
    SetStatus(cluster, {{"readyReplicas", 1}, {"availableReplicas", 1}});
  }

  // Marks the Deployment broken, as its controller would once its pods crash for longer
  // than its progress deadline.
  void Break(const std::string& cluster) {
    SetStatus(cluster, {{"readyReplicas", 0},
                        {"availableReplicas", 0},
                        {"unavailableReplicas", 1},
                        {"conditions",
                         {{{"type", "Progressing"},
                           {"status", "False"},
                           {"reason", "ProgressDeadlineExceeded"},
                           {"message", "ReplicaSet \"web-1\" has timed out progressing."}}}}});
  }
  // Patches the web Deployment's status on `cluster` with `fields`, for its current
  // generation and one updated replica.
  void SetStatus(const std::string& cluster, json fields) {
    json d = Live(cluster, "/apis/apps/v1/namespaces/shop/deployments/web");
    ASSERT_FALSE(d.is_null()) << cluster;
    fields["observedGeneration"] = d["metadata"]["generation"];
    fields["replicas"] = 1;
    fields["updatedReplicas"] = 1;
    json status = {{"status", fields}};
    absl::StatusOr<KubeResponse> r = clusters_[cluster].client->Do(
        "PATCH", "/apis/apps/v1/namespaces/shop/deployments/web/status", status.dump(),
        "application/merge-patch+json");
    ASSERT_TRUE(r.ok() && r->code == 200);
  }

  void WriteApp(const std::string& image) {
    git_.Write("apps/web/all.yaml",
               absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n"
                            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
                            "  namespace: shop\nspec:\n  replicas: 1\n  selector:\n"
                            "    matchLabels: {app: web}\n  template:\n    metadata:\n"
                            "      labels: {app: web}\n    spec:\n      containers:\n"
                            "      - name: web\n        image: ",
                            image, "\n"));
  }

  // Adds source "app" (this test's repository, fetched every second), then `bundle add`
  // with `bundle_args`.
  void AddApp(const std::vector<std::string>& bundle_args) {
    int code;
    std::string out = Ctl({"source", "add", "app", "--url=" + git_.url(), "--interval=1s"}, &code);
    ASSERT_EQ(code, 0) << out;
    std::vector<std::string> args = {"bundle", "add"};
    args.insert(args.end(), bundle_args.begin(), bundle_args.end());
    out = Ctl(args, &code);
    ASSERT_EQ(code, 0) << out;
  }

  // Whether `bundle`'s rollout reaches all `partitions` partitions in time.
  bool RolledOutToAll(const std::string& bundle, int partitions) {
    return Eventually([&] {
      return absl::StrContains(Ctl({"rollout", "status", bundle}),
                               absl::StrCat("rolled out to all ", partitions, " partitions"));
    });
  }

  std::string Logs() {
    std::string out = absl::StrCat("control plane:\n", cp_->Log());
    for (auto& [name, c] : clusters_) absl::StrAppend(&out, "\n", name, ":\n", c.agent->Log());
    return out;
  }

  std::string root_;
  GitFixture git_;
  std::unique_ptr<Process> cp_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::map<std::string, Cluster> clusters_;
};

// The revision was Healthy on c1, which let partition 2 have it; then it broke there.
// It must not reach c3 until an operator has looked.
TEST_F(FleetOps, ARevisionThatBreaksInAPartitionPassedAlreadyGoesNoFurther) {
  WriteApp("web:1");
  git_.Commit("v1");
  StartControlPlane();
  for (const char* name : {"c1", "c2", "c3"}) StartCluster(name);
  ASSERT_NO_FATAL_FAILURE(AddApp({"web", "--source=app", "--path=apps/web", "--partition-size=1"}));
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; }, absl::Seconds(30))) << Logs();
  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:1"; })) << Logs();

  Break("c1");
  ASSERT_TRUE(Eventually([&] {
    return Ctl({"rollout", "status", "web"}).find("PAUSED at partition 2/3") != std::string::npos;
  })) << Ctl({"rollout", "status", "web"});
  std::string out = Ctl({"rollout", "status", "web"});
  EXPECT_THAT(out, HasSubstr("cluster c1 of partition 1/3, which this revision had passed, broke"));
  EXPECT_THAT(out, HasSubstr("timed out progressing")) << "what broke, in the agent's words";
  // c2 turning Healthy does not move it on: c3 keeps what it has (nothing, here).
  Ready("c2");
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(Image("c3"), "");
  EXPECT_THAT(HttpGet(http_port_, "/metrics"),
              HasSubstr("gitfleet_rollout_paused{bundle=\"web\"} 1"));
  EXPECT_THAT(Ctl({"events", "--bundle=web"}), HasSubstr("rollout.paused  bundle=web"));

  // Resume, once looked at: c1's trouble is acknowledged and the rollout goes on.
  int code;
  out = Ctl({"rollout", "resume", "web"}, &code);
  EXPECT_EQ(code, 0) << out;
  ASSERT_TRUE(Eventually([&] { return Image("c3") == "web:1"; })) << Logs();
}

// A break the partition may bear is remembered across a restart, so the next one that
// it may not bear pauses the rollout.
TEST_F(FleetOps, ABreakSeenBeforeARestartStillCountsAfterIt) {
  WriteApp("web:1");
  git_.Commit("v1");
  StartControlPlane();
  StartCluster("c1", "env=prod,ring=canary");
  StartCluster("c2", "env=prod,ring=canary");
  StartCluster("c3", "env=prod,ring=main");
  StartCluster("c4", "env=prod");
  // Partitions: c1 and c2 (one may be unavailable), c3, c4 (none may).
  ASSERT_NO_FATAL_FAILURE(
      AddApp({"web", "--source=app", "--path=apps/web", "--partition=ring=canary",
              "--partition=ring=main", "--max-unavailable=50%"}));
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1" && Image("c2") == "web:1"; },
                         absl::Seconds(30)))
      << Logs();
  Ready("c1");
  Ready("c2");
  ASSERT_TRUE(Eventually([&] { return Image("c3") == "web:1"; })) << Logs();

  // c1 breaks: one of two, which partition 1 may bear.
  Break("c1");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"events", "--bundle=web", "--cluster=c1"}),
                             "timed out progressing");
  })) << Logs();
  absl::SleepFor(absl::Seconds(1));  // judged, and stored
  std::string out = Ctl({"rollout", "status", "web"});
  EXPECT_THAT(out, Not(HasSubstr("PAUSED"))) << out;

  // After a restart, c2 breaks too: two of two, which it may not.
  ASSERT_NO_FATAL_FAILURE(RestartControlPlane());
  Break("c2");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"rollout", "status", "web"}), "PAUSED at partition 2/3");
  })) << Ctl({"rollout", "status", "web"})
      << Logs();
  out = Ctl({"rollout", "status", "web"});
  EXPECT_THAT(out, HasSubstr("cluster c1 of partition 1/3, which this revision had passed, broke"));
  EXPECT_THAT(out, HasSubstr("(2 clusters there)"));
  Ready("c3");
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(Image("c4"), "") << "c4 keeps what it has";

  // Resumed, the two are acknowledged, and stay so across another restart.
  int code;
  out = Ctl({"rollout", "resume", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_TRUE(Eventually([&] { return Image("c4") == "web:1"; })) << Logs();
  ASSERT_NO_FATAL_FAILURE(RestartControlPlane());
  absl::SleepFor(absl::Seconds(2));
  EXPECT_THAT(Ctl({"rollout", "status", "web"}), Not(HasSubstr("PAUSED")));
}

TEST_F(FleetOps, ARolloutStopsAtAPartitionThatStaysProgressingUntilPromoted) {
  WriteApp("web:1");
  git_.Commit("v1");
  StartControlPlane();
  for (const char* name : {"c1", "c2", "c3"}) StartCluster(name);
  ASSERT_NO_FATAL_FAILURE(AddApp(
      {"web", "--source=app", "--path=apps/web", "--partition-size=1", "--progress-deadline=3s"}));
  int code;
  std::string out;

  // Partition 1 gets it; partition 2 only once c1 is applied and Healthy.
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; }, absl::Seconds(30))) << Logs();
  EXPECT_EQ(Image("c2"), "");
  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:1"; })) << Logs();
  // c2 stays Progressing past the deadline: the rollout pauses; c3 gets nothing.
  ASSERT_TRUE(Eventually([&] {
    return Ctl({"rollout", "status", "web"}).find("PAUSED at partition 2/3") != std::string::npos;
  })) << Ctl({"rollout", "status", "web"});
  out = Ctl({"rollout", "status", "web"});
  EXPECT_THAT(out, HasSubstr("not ready within the progress deadline (3s)"));
  EXPECT_THAT(out, HasSubstr("waiting for c2: progressing"));
  EXPECT_EQ(Image("c3"), "");
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("partition 2/3: paused"));
  EXPECT_THAT(HttpGet(http_port_, "/metrics"),
              HasSubstr("gitfleet_rollout_paused{bundle=\"web\"} 1"));
  // The fleet's state by bundle, from the control plane alone: c1 Healthy, c2 not yet.
  std::string metrics = HttpGet(http_port_, "/metrics");
  EXPECT_THAT(metrics,
              HasSubstr("gitfleet_bundle_cluster_health{bundle=\"web\",health=\"healthy\"} 1"));
  EXPECT_THAT(metrics,
              HasSubstr("gitfleet_bundle_cluster_health{bundle=\"web\",health=\"progressing\"} 1"));
  EXPECT_THAT(metrics,
              HasSubstr("gitfleet_bundle_clusters{bundle=\"web\",sync_state=\"failed\"} 0"));

  // Promote: past c2, on to c3.
  out = Ctl({"rollout", "promote", "web"}, &code);
  EXPECT_EQ(code, 0) << out;
  ASSERT_TRUE(Eventually([&] { return Image("c3") == "web:1"; })) << Logs();
  Ready("c2");
  Ready("c3");
  ASSERT_TRUE(RolledOutToAll("web", 3)) << Ctl({"rollout", "status", "web"});

  // A new commit starts at partition 1 again; c2 and c3 keep web:1 until their turn.
  WriteApp("web:2");
  git_.Commit("v2");
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:2"; }, absl::Seconds(30))) << Logs();
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Image("c2"), "web:1");
  EXPECT_EQ(Image("c3"), "web:1");
  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:2"; })) << Logs();
  EXPECT_EQ(Image("c3"), "web:1");

  // An operator's pause holds even when c2 turns Healthy.
  out = Ctl({"rollout", "pause", "web"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("paused by an operator"));
  Ready("c2");
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Image("c3"), "web:1");
  // A restart keeps the rollout's place and the pause: c3 still waits.
  RestartControlPlane();
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Image("c3"), "web:1") << Logs();
  EXPECT_THAT(Ctl({"rollout", "status", "web"}), HasSubstr("paused by an operator"));
  // A cluster that joins now, holding nothing, runs what the whole fleet ran until its
  // turn: never the revision still being judged, and not nothing either.
  StartCluster("c4");
  ASSERT_TRUE(Eventually([&] { return Image("c4") == "web:1"; }, absl::Seconds(30))) << Logs();
  Ctl({"rollout", "resume", "web"}, &code);
  EXPECT_EQ(code, 0);
  ASSERT_TRUE(Eventually([&] { return Image("c3") == "web:2"; })) << Logs();
  ASSERT_TRUE(Eventually([&] { return Image("c4") == "web:2"; })) << Logs();

  // Removed while paused: none of its series stays behind (a paused rollout's would fire
  // GitfleetRolloutPaused for a bundle that is gone).
  Ctl({"rollout", "pause", "web"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(HttpGet(http_port_, "/metrics"),
              HasSubstr("gitfleet_rollout_paused{bundle=\"web\"} 1"));
  out = Ctl({"bundle", "remove", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] {
    return !absl::StrContains(HttpGet(http_port_, "/metrics"), "bundle=\"web\"");
  })) << HttpGet(http_port_, "/metrics");
}

TEST_F(FleetOps, SelectorPartitionsGoFirstAndMaxUnavailableLetsSomeLag) {
  WriteApp("web:1");
  git_.Commit("v1");
  StartControlPlane();
  StartCluster("c1", "env=prod,ring=canary");
  StartCluster("c2", "env=prod,ring=main");
  StartCluster("c3", "env=prod,ring=main");
  StartCluster("c4", "env=prod");
  // Partitions: ring=canary (c1), ring=main (c2, c3), the rest (c4). Half of a partition
  // may lag, rounded down: none of c1's or c4's, one of c2 and c3.
  ASSERT_NO_FATAL_FAILURE(
      AddApp({"web", "--source=app", "--path=apps/web", "--partition=ring=canary",
              "--partition=ring=main", "--max-unavailable=50%"}));
  int code;
  std::string out;
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; }, absl::Seconds(30))) << Logs();
  absl::SleepFor(absl::Seconds(2));
  for (const char* later : {"c2", "c3", "c4"}) EXPECT_EQ(Image(later), "") << later;
  out = Ctl({"rollout", "status", "web"});
  EXPECT_THAT(out, HasSubstr("at partition 1/3"));
  EXPECT_THAT(out, HasSubstr("1 ring=canary"));
  EXPECT_THAT(out, HasSubstr("2 ring=main"));

  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:1" && Image("c3") == "web:1"; }))
      << Logs();
  EXPECT_EQ(Image("c4"), "");
  Ready("c2");  // c3 stays Progressing: one of two may
  ASSERT_TRUE(Eventually([&] { return Image("c4") == "web:1"; })) << Logs();
  EXPECT_THAT(Ctl({"rollout", "status", "web"}), HasSubstr("at partition 3/3"));
  Ready("c4");
  ASSERT_TRUE(RolledOutToAll("web", 3)) << Ctl({"rollout", "status", "web"});
  // Paused once done, it says what the pause will hold.
  out = Ctl({"rollout", "pause", "web"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("paused by an operator: the next render goes to partition 1 only"));
}

// --bake-time: the canary, Healthy, holds production back until it stayed Healthy that
// long; a Deployment that goes unready meanwhile starts the wait again, and the rollout's
// status, events and the held-back cluster say so.
TEST_F(FleetOps, AHealthyCanaryBakesBeforeProductionGetsTheRevision) {
  WriteApp("web:1");
  git_.Commit("v1");
  StartControlPlane();
  StartCluster("c1", "env=prod,ring=canary");
  StartCluster("c2", "env=prod");
  ASSERT_NO_FATAL_FAILURE(AddApp(
      {"web", "--source=app", "--path=apps/web", "--partition=ring=canary", "--bake-time=4s"}));
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; }, absl::Seconds(30))) << Logs();
  Ready("c1");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"rollout", "status", "web"}), "baking 4s before partition 2");
  })) << Ctl({"rollout", "status", "web"});
  const absl::Time ready_at = absl::Now();
  std::string out = Ctl({"rollout", "status", "web"});
  EXPECT_THAT(out, HasSubstr("baking"));
  EXPECT_EQ(Image("c2"), "");
  EXPECT_THAT(Ctl({"status", "--cluster=c2"}), HasSubstr("ready and baking (--bake-time=4s)"));
  // Unready during the bake (its pod restarted): it starts again once Healthy again.
  absl::SleepFor(absl::Seconds(2));
  SetStatus("c1", {{"readyReplicas", 0}, {"availableReplicas", 0}});
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"rollout", "status", "web"}), "the bake started again");
  })) << Ctl({"rollout", "status", "web"});
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(Image("c2"), "") << "4s after the canary was first Healthy, but not 4s Healthy";
  Ready("c1");
  const absl::Time ready_again = absl::Now();
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:1"; }, absl::Seconds(30)))
      << Ctl({"rollout", "status", "web"}) << Logs();
  EXPECT_GE(absl::Now() - ready_again, absl::Seconds(3)) << "baked again, in full";
  EXPECT_GE(absl::Now() - ready_at, absl::Seconds(8));
  Ready("c2");
  ASSERT_TRUE(RolledOutToAll("web", 2)) << Ctl({"rollout", "status", "web"});
  out = Ctl({"events", "--bundle=web"});
  EXPECT_THAT(out, HasSubstr("rollout.baking"));
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "yaml"}), HasSubstr("bake_seconds"));
}

// A repository moved from Fleet: its fleet.yaml's rolloutStrategy orders the rollout of a
// bundle that has no partitions of its own, canary first, then the rest of production.
TEST_F(FleetOps, AFleetFoldersRolloutStrategyOrdersTheRollout) {
  WriteApp("web:1");
  git_.Write("apps/web/fleet.yaml",
             "defaultNamespace: shop\n"
             "rolloutStrategy:\n"
             "  maxUnavailable: 0\n"
             "  partitions:\n"
             "  - name: canary\n"
             "    clusterName: c2\n"
             "  - name: production\n"
             "    clusterSelector:\n"
             "      matchExpressions: [{key: env, operator: In, values: [prod]}]\n");
  git_.Commit("v1");
  // Fleet's cluster groups, as kubectl prints them: eu holds the clusters in region eu.
  const std::string groups = root_ + "/groups.yaml";
  auto write_groups = [&](const std::string& region) {
    std::ofstream(groups + ".new") << "apiVersion: v1\nkind: List\nitems:\n"
                                      "- apiVersion: fleet.cattle.io/v1alpha1\n"
                                      "  kind: ClusterGroup\n"
                                      "  metadata: {name: eu, namespace: fleet-default}\n"
                                      "  spec: {selector: {matchLabels: {region: "
                                   << region << "}}}\n";
    ASSERT_EQ(rename((groups + ".new").c_str(), groups.c_str()), 0);
  };
  ASSERT_NO_FATAL_FAILURE(write_groups("eu"));
  StartControlPlane({"--cluster-groups=" + groups});
  StartCluster("c1");
  StartCluster("c2");
  StartCluster("c3", "env=prod,region=eu");
  ASSERT_NO_FATAL_FAILURE(AddApp({"web", "--source=app", "--path=apps/web"}));
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:1"; }, absl::Seconds(30))) << Logs();
  absl::SleepFor(absl::Seconds(2));
  for (const char* later : {"c1", "c3"}) EXPECT_EQ(Image(later), "") << later;
  std::string out = Ctl({"rollout", "status", "web"});
  EXPECT_THAT(out, HasSubstr("at partition 1/2"));
  EXPECT_THAT(out, HasSubstr("partition 1/2 (canary): 0 of 1 clusters ready"));
  EXPECT_THAT(out, HasSubstr("partitions from apps/web/fleet.yaml's rolloutStrategy"));
  EXPECT_THAT(out, HasSubstr("2 production"));
  EXPECT_THAT(Ctl({"events", "--bundle=web", "--type=rollout."}),
              HasSubstr("partition 1 first, by apps/web/fleet.yaml's rolloutStrategy"));

  // Production (c1 and c3), paced by maxUnavailable 0: one cluster at a time, in name order.
  Ready("c2");
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; })) << Logs();
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Image("c3"), "") << "paced: c1 first";
  EXPECT_THAT(Ctl({"rollout", "status", "web"}), HasSubstr("given to 1 of 2 so far"));
  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return Image("c3") == "web:1"; })) << Logs();
  Ready("c3");
  ASSERT_TRUE(RolledOutToAll("web", 2)) << Ctl({"rollout", "status", "web"});

  // By cluster group: eu's cluster first, then the others.
  git_.Write("apps/web/fleet.yaml",
             "defaultNamespace: shop\nrolloutStrategy:\n  partitions:\n"
             "  - name: europe\n    clusterGroup: eu\n");
  WriteApp("web:2");
  git_.Commit("v2, by cluster groups");
  ASSERT_TRUE(Eventually([&] { return Image("c3") == "web:2"; }, absl::Seconds(30))) << Logs();
  absl::SleepFor(absl::Seconds(2));
  for (const char* later : {"c1", "c2"}) EXPECT_EQ(Image(later), "web:1") << later;
  EXPECT_THAT(Ctl({"rollout", "status", "web"}), HasSubstr("partition 1/2 (europe)"));
  EXPECT_THAT(Ctl({"cluster", "list"}), ContainsRegex("c3 +[a-z]+ +yes +env=prod,region=eu +"
                                                      "[^ ]+ +eu "));
  Ready("c3");
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:2" && Image("c2") == "web:2"; }))
      << Logs();
  // An edit that does not parse keeps what is in force, and says so.
  {
    std::ofstream(groups + ".new") << "kind: List\nitems: {broken: [\n";
    ASSERT_EQ(rename((groups + ".new").c_str(), groups.c_str()), 0);
  }
  ASSERT_FALSE(cp_->WaitForLog("--cluster-groups.*what was read before stays in force").empty())
      << cp_->Log();
  EXPECT_THAT(Ctl({"cluster", "list", "-o", "json"}), HasSubstr("\"groups\""));
  // The groups file changes: c3 leaves eu, as `cluster list` shows within seconds.
  ASSERT_NO_FATAL_FAILURE(write_groups("us"));
  ASSERT_TRUE(Eventually([&] {
    return !absl::StrContains(Ctl({"cluster", "list", "-o", "json"}), "\"groups\"");
  })) << Ctl({"cluster", "list", "-o", "json"});

  // A strategy gitfleet cannot follow: the commit is held, and bundle add says so at once.
  git_.Write("apps/web/fleet.yaml",
             "defaultNamespace: shop\nrolloutStrategy:\n  partitions:\n  - clusterSelector:\n"
             "      matchExpressions: [{key: a, operator: Gt, values: ['1']}]\n");
  WriteApp("web:3");
  git_.Commit("v3, by a selector gitfleet cannot write");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"bundle", "list"}), "held: apps/web/fleet.yaml");
  })) << Ctl({"bundle", "list"});
  int code;
  std::string added = Ctl({"bundle", "add", "web2", "--source=app", "--path=apps/web"}, &code);
  EXPECT_EQ(code, 0) << added;
  EXPECT_THAT(added, HasSubstr("warning: held: apps/web/fleet.yaml: rolloutStrategy.partitions[0]: "
                               "its clusterSelector is not one gitfleet reads"));
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Image("c2"), "web:2") << "held from every cluster";
}

// Fleet's pacing gives a cluster down on the revision it runs the next commit first, out of
// turn (it may be the fix), and takes no healthy cluster down while that one is not ready.
TEST_F(FleetOps, APacedRolloutGivesTheFixToTheBrokenClusterFirst) {
  WriteApp("web:1");
  git_.Write("apps/web/fleet.yaml",
             "defaultNamespace: shop\nrolloutStrategy:\n  maxUnavailable: 1\n");
  git_.Commit("v1");
  StartControlPlane();
  for (const char* name : {"c1", "c2", "c3"}) StartCluster(name);
  ASSERT_NO_FATAL_FAILURE(AddApp({"web", "--source=app", "--path=apps/web"}));
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; }, absl::Seconds(30))) << Logs();
  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:1"; })) << Logs();
  Ready("c2");
  // Two of three ready, one may be unavailable: c3 gets it with the rest, and breaks.
  ASSERT_TRUE(Eventually([&] { return Image("c3") == "web:1"; })) << Logs();
  Break("c3");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"events", "--bundle=web", "--cluster=c3"}),
                             "timed out progressing");
  })) << Logs();

  WriteApp("web:2");
  git_.Commit("v2, the fix");
  ASSERT_TRUE(Eventually([&] { return Image("c3") == "web:2"; }, absl::Seconds(30))) << Logs();
  absl::SleepFor(absl::Seconds(2));
  for (const char* healthy : {"c1", "c2"}) EXPECT_EQ(Image(healthy), "web:1") << healthy;
  std::string out = Ctl({"rollout", "status", "web"});
  EXPECT_THAT(out, HasSubstr("given to 1 of 3 so far (1 out of turn: not ready on the older "
                             "revision it ran)"));
  EXPECT_THAT(out, HasSubstr("its turn in the partition has not come"));
  // The fix works: its pods come up, and the Deployment progresses again.
  SetStatus(
      "c3",
      {{"readyReplicas", 1},
       {"availableReplicas", 1},
       {"unavailableReplicas", 0},
       {"conditions",
        {{{"type", "Progressing"}, {"status", "True"}, {"reason", "NewReplicaSetAvailable"}}}}});
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:2"; })) << Logs();
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(Image("c2"), "web:1") << "one at a time";
  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:2"; })) << Logs();
}

// rollout status -w, as kubectl's: it follows a rollout until every cluster runs it Healthy
// (exit 0), and stops with 1 where it cannot get there by itself (paused), or when a
// --commit it waits for does not come within --watch-timeout.
TEST_F(FleetOps, RolloutStatusWatchFollowsARolloutToItsEndOrItsPause) {
  WriteApp("web:1");
  git_.Write("apps/cfg/all.yaml",
             "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cfg\n---\n"
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
             "  namespace: cfg\ndata:\n  level: info\n");
  const std::string v1 = git_.Commit("v1");
  StartControlPlane();
  StartCluster("c1");
  StartCluster("c2");
  ASSERT_NO_FATAL_FAILURE(AddApp({"web", "--source=app", "--path=apps/web", "--partition-size=1"}));
  int code = -1;
  Ctl({"bundle", "add", "cfg", "--source=app", "--path=apps/cfg"}, &code);
  ASSERT_EQ(code, 0);
  std::string watched;
  // Every bundle of the source: web, partition by partition, and cfg.
  std::thread watch([&] {
    watched = Ctl({"rollout", "status", "-w", "--source=app", "--watch-timeout=90s"}, &code);
  });
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; }, absl::Seconds(30))) << Logs();
  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:1"; })) << Logs();
  absl::SleepFor(absl::Seconds(2));
  Ready("c2");
  watch.join();
  EXPECT_EQ(code, 0) << watched;
  EXPECT_THAT(watched, HasSubstr(": partition 2/2: 0 of 1 clusters ready"));
  EXPECT_THAT(watched, HasSubstr(": rolled out, Healthy on 2 clusters"));
  EXPECT_THAT(watched, HasSubstr("rolled out to all 2 partitions")) << "then the status";
  EXPECT_THAT(watched, HasSubstr("bundle cfg at ")) << "both bundles";
  EXPECT_THAT(watched, HasSubstr("no partitions (everywhere at once)"));

  // A commit it waits for that does not come: the deadline, saying what it waited for.
  watched = WatchCommit("web", "0123abc", "2s", &code);
  EXPECT_EQ(code, 1) << watched;
  EXPECT_THAT(watched, HasSubstr("not done within 2s (--watch-timeout): bundle web at "));
  EXPECT_THAT(watched, HasSubstr("waiting for commit 0123abc: source app has not fetched it yet"));

  // Paused by an operator: it cannot get there by itself.
  WriteApp("web:2");
  const std::string v2 = git_.Commit("v2");
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:2"; }, absl::Seconds(30))) << Logs();
  Ctl({"rollout", "pause", "web"});
  watched = Ctl({"rollout", "status", "web", "-w", "--commit=" + v2.substr(0, 8)}, &code);
  EXPECT_EQ(code, 1) << watched;
  EXPECT_THAT(watched, HasSubstr(": PAUSED: partition 1/2: paused by an operator"));
  // -o json: no lines, the status with its partitions' clusters (each look asked a summary).
  watched = Ctl({"rollout", "status", "web", "-w", "-o", "json"}, &code);
  EXPECT_EQ(code, 1) << watched;
  EXPECT_THAT(watched, AllOf(HasSubstr("\"paused\": true"), HasSubstr("\"name\": \"c1\""),
                             Not(HasSubstr("PAUSED: partition"))));
  watched = Ctl({"rollout", "status", "web", "--commit=" + v2}, &code);
  EXPECT_EQ(code, 2) << "--commit without -w: " << watched;

  // cfg's files did not change in v2: its render stands, and the watch for v2 ends at once.
  watched = WatchCommit("cfg", v2.substr(0, 10), "30s", &code);
  EXPECT_EQ(code, 0) << watched;
  EXPECT_THAT(watched, HasSubstr(absl::StrCat("bundle cfg at ", v2.substr(0, 12),
                                              ": rolled out, Healthy on 2 clusters")));
  // A commit fetched with a later one (a busy monorepo's): the bundle is at the later commit,
  // which holds its change, and that ends a watch for it (its digits as a terminal may show
  // them, upper-case).
  git_.Write("apps/cfg/all.yaml",
             "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cfg\n---\n"
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
             "  namespace: cfg\ndata:\n  level: debug\n");
  const std::string debug = git_.Commit("cfg: debug");
  git_.Write("README.md", "a later commit that leaves cfg alone\n");
  const std::string later = git_.Commit("readme");
  watched = WatchCommit("cfg", later.substr(0, 10), "60s", &code);
  ASSERT_EQ(code, 0) << watched;
  watched = WatchCommit("cfg", absl::AsciiStrToUpper(debug.substr(0, 7)), "20s", &code);
  EXPECT_EQ(code, 0) << watched;
  EXPECT_THAT(watched, HasSubstr(absl::StrCat("bundle cfg at ", later.substr(0, 12),
                                              ": rolled out, Healthy on 2 clusters")));
  // Pinned by a rollback, so a newer commit never comes; suspended: 1 at once, saying so.
  Ctl({"bundle", "rollback", "cfg", "--to=" + v1}, &code);
  ASSERT_EQ(code, 0);
  watched = WatchCommit("cfg", v2.substr(0, 10), "20s", &code);
  EXPECT_EQ(code, 1) << watched;
  EXPECT_THAT(watched, HasSubstr(absl::StrCat(": pinned to ", v1.substr(0, 12),
                                              " (a rollback) until gitfleetctl bundle unpin cfg")));
  Ctl({"bundle", "unpin", "cfg"});
  Ctl({"bundle", "suspend", "cfg"});
  watched = Ctl({"rollout", "status", "cfg", "-w", "--watch-timeout=20s"}, &code);
  EXPECT_EQ(code, 1) << watched;
  EXPECT_THAT(watched,
              HasSubstr(": suspended: no cluster gets its new revisions until gitfleetctl bundle "
                        "resume cfg"));
  Ctl({"bundle", "resume", "cfg"});

  // A commit whose render fails, and still fails 30 s on: 1, saying why.
  git_.Write("apps/web/broken.yaml", "kind: [\n");
  const std::string v3 = git_.Commit("v3, broken");
  const absl::Time before = absl::Now();
  watched = WatchCommit("web", v3, "5m", &code);
  EXPECT_EQ(code, 1) << watched;
  EXPECT_THAT(watched, HasSubstr(absl::StrCat(": the render of ", v3.substr(0, 12),
                                              " failed (the clusters keep what they run)")));
  EXPECT_GE(absl::Now() - before, absl::Seconds(30)) << "a failure a retry may mend waits";
}

// Fleet's doNotDeploy: the clusters a target leaves out get nothing and hold up no rollout,
// even as its first partition; and one that already runs the bundle when a commit leaves
// it out keeps what it runs (removal is an operator's act), saying so.
TEST_F(FleetOps, AFleetFoldersDoNotDeployLeavesClustersOut) {
  auto fleet_yaml = [&](const std::string& left_out) {
    git_.Write("apps/web/fleet.yaml",
               absl::StrCat("defaultNamespace: shop\n"
                            "targetCustomizations:\n"
                            "- name: off\n"
                            "  clusterSelector:\n"
                            "    matchExpressions: [{key: env, operator: In, values: [",
                            left_out,
                            "]}]\n"
                            "  doNotDeploy: true\n"
                            "rolloutStrategy:\n"
                            "  partitions:\n"
                            "  - name: lab first\n"
                            "    clusterName: lab-1\n"));
  };
  WriteApp("web:1");
  fleet_yaml("lab");
  git_.Commit("v1, not for the lab");
  StartControlPlane();
  StartCluster("lab-1", "env=lab");
  StartCluster("c2", "env=staging");
  ASSERT_NO_FATAL_FAILURE(AddApp({"web", "--source=app", "--path=apps/web"}));
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:1"; }, absl::Seconds(30))) << Logs();
  EXPECT_EQ(Image("lab-1"), "");
  Ready("c2");
  ASSERT_TRUE(RolledOutToAll("web", 2)) << Ctl({"rollout", "status", "web"});
  EXPECT_EQ(Image("lab-1"), "") << "left out";
  EXPECT_THAT(Ctl({"status", "--cluster=lab-1", "--bundle=web"}),
              AllOf(HasSubstr("NotDeployed"),
                    HasSubstr("apps/web/fleet.yaml: targetCustomizations off says doNotDeploy for "
                              "this cluster: nothing of the bundle is deployed here")));
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("1/1 (1 left out)"));
  EXPECT_THAT(Ctl({"rollout", "status", "web"}), HasSubstr("not deployed here"));

  // A commit leaves staging out too: c2 runs web:1 and keeps it, getting nothing newer.
  WriteApp("web:2");
  fleet_yaml("lab, staging");
  git_.Commit("v2, not for the lab nor staging");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"status", "--cluster=c2", "--bundle=web"}), "keeps revision");
  })) << Ctl({"status", "--cluster=c2", "--bundle=web"});
  EXPECT_THAT(Ctl({"status", "--cluster=c2", "--bundle=web"}), HasSubstr("NotDeployed"));
  EXPECT_EQ(Image("c2"), "web:1") << "kept: a repository never takes a bundle off a cluster";
  EXPECT_EQ(Image("lab-1"), "");
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("0/0 (2 left out)"));
}

// A --cluster-groups file that cannot be read stops the start, naming what is wrong: a
// control plane that went on without the groups would hold, or fail, what selects by them.
TEST_F(FleetOps, AClusterGroupsFileThatCannotBeReadStopsTheStart) {
  const std::string groups = root_ + "/groups.yaml";
  std::ofstream(groups) << "apiVersion: fleet.cattle.io/v1alpha1\nkind: ClusterGroup\n"
                           "metadata: {name: Prod}\n";
  Process cp(kControlPlane,
             {"--data-dir=" + root_ + "/cp", "--grpc=127.0.0.1:0", "--http=127.0.0.1:0",
              "--cluster-groups=" + groups},
             root_ + "/cp-groups.log");
  std::optional<int> status = cp.WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << cp.Log();
  EXPECT_NE(*status, 0);
  EXPECT_THAT(cp.Log(), HasSubstr("--cluster-groups: document 1: metadata.name \"Prod\" is not a "
                                  "Kubernetes name"));
}

// A bundle whose objects name each cluster: a cluster that joins while a rollout waits
// gets its own render of what the fleet ran, not the revision being judged, and not
// nothing until its turn.
TEST_F(FleetOps, AJoinerOfAPerClusterBundleGetsItsOwnRenderOfWhatTheFleetRan) {
  auto write = [&](const std::string& version) {
    git_.Write("apps/who/all.yaml",
               "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n"
               "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: who\n  namespace: shop\n"
               "data:\n  value: \"${cluster.name}-" +
                   version + "\"\n");
    git_.Commit("v" + version);
  };
  auto who = [&](const std::string& cluster) -> std::string {
    json cm = Live(cluster, "/api/v1/namespaces/shop/configmaps/who");
    return cm.is_null() ? "" : cm["data"]["value"].get<std::string>();
  };
  write("1");
  StartControlPlane();
  for (const char* name : {"c1", "c2"}) StartCluster(name);
  ASSERT_NO_FATAL_FAILURE(
      AddApp({"who", "--source=app", "--path=apps/who", "--partition-size=1", "--substitute"}));
  int code;
  std::string out;
  ASSERT_TRUE(
      Eventually([&] { return who("c1") == "c1-1" && who("c2") == "c2-1"; }, absl::Seconds(30)))
      << Logs();
  ASSERT_TRUE(RolledOutToAll("who", 2)) << Ctl({"rollout", "status", "who"});

  // Version 2 goes to partition 1 only, held there by an operator.
  out = Ctl({"rollout", "pause", "who"}, &code);
  ASSERT_EQ(code, 0) << out;
  write("2");
  ASSERT_TRUE(Eventually([&] { return who("c1") == "c1-2"; }, absl::Seconds(30))) << Logs();
  StartCluster("c3");
  ASSERT_TRUE(Eventually([&] { return who("c3") == "c3-1"; }, absl::Seconds(30))) << Logs();
  EXPECT_EQ(who("c2"), "c2-1") << "paused after partition 1";

  out = Ctl({"rollout", "resume", "who"}, &code);
  ASSERT_EQ(code, 0) << out;
  // c3 joined the last partition that had not started, c2's: both get version 2 at once,
  // in either order.
  ASSERT_TRUE(Eventually([&] { return who("c3") == "c3-2"; }, absl::Seconds(30))) << Logs();
  EXPECT_TRUE(Eventually([&] { return who("c2") == "c2-2"; }, absl::Seconds(30))) << Logs();
}

TEST_F(FleetOps, AClusterThatFailsToApplyPausesTheRolloutLongBeforeItsDeadline) {
  WriteApp("web:1");
  git_.Commit("v1");
  StartControlPlane();
  for (const char* name : {"c1", "c2", "c3"}) StartCluster(name);
  // On c2 another bundle already manages shop/web: its agent refuses to take it over, so
  // the apply fails there (and only there).
  auto apply = [&](const std::string& path, const std::string& object) {
    absl::StatusOr<KubeResponse> r = clusters_["c2"].client->Do(
        "PATCH", path + "?fieldManager=kubectl", object, "application/apply-patch+yaml");
    ASSERT_TRUE(r.ok() && (r->code == 200 || r->code == 201)) << (r.ok() ? r->body : "");
  };
  apply("/api/v1/namespaces/shop",
        R"({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})");
  apply("/apis/apps/v1/namespaces/shop/deployments/web", R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"gitfleet.io/bundle": "other"}},
    "spec": {"selector": {"matchLabels": {"app": "other"}},
             "template": {"metadata": {"labels": {"app": "other"}},
                          "spec": {"containers": [{"name": "other", "image": "other:1"}]}}}})");
  // The default progress deadline (10m): only the failure can pause it within the test.
  ASSERT_NO_FATAL_FAILURE(AddApp({"web", "--source=app", "--path=apps/web", "--partition-size=1"}));
  int code;
  std::string out;
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; }, absl::Seconds(30))) << Logs();
  Ready("c1");

  ASSERT_TRUE(Eventually([&] {
    return Ctl({"rollout", "status", "web"}).find("PAUSED at partition 2/3") != std::string::npos;
  })) << Ctl({"rollout", "status", "web"})
      << Logs();
  out = Ctl({"rollout", "status", "web"});
  EXPECT_THAT(out, HasSubstr("cluster c2 failed to apply the revision"));
  EXPECT_THAT(out, HasSubstr("bundle other already manages this object"));
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("partition 2/3: paused"));
  EXPECT_EQ(Image("c2"), "other:1") << "the other bundle's object is left as it was";
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Image("c3"), "") << "clusters not yet reached get nothing";

  // The operator sorts c2 out: the other bundle's object goes, and c2's agent applies on
  // its next try. The rollout stays paused, even with c2 healthy, until it is resumed.
  absl::StatusOr<KubeResponse> deleted =
      clusters_["c2"].client->Do("DELETE", "/apis/apps/v1/namespaces/shop/deployments/web");
  ASSERT_TRUE(deleted.ok() && deleted->code == 200) << (deleted.ok() ? deleted->body : "");
  ASSERT_TRUE(Eventually([&] { return Image("c2") == "web:1"; }, absl::Seconds(30))) << Logs();
  Ready("c2");
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Image("c3"), "") << "a paused rollout waits for the operator";
  out = Ctl({"rollout", "resume", "web"}, &code);
  EXPECT_EQ(code, 0) << out;
  ASSERT_TRUE(Eventually([&] { return Image("c3") == "web:1"; })) << Logs();
}

TEST_F(FleetOps, SuspendedBundlesAndClustersReceiveNothingNew) {
  WriteApp("web:1");
  git_.Commit("v1");
  StartControlPlane();
  for (const char* name : {"c1", "c2"}) StartCluster(name);
  int code;
  Ctl({"source", "add", "app", "--url=" + git_.url(), "--interval=1s"}, &code);
  ASSERT_EQ(code, 0);
  Ctl({"bundle", "add", "web", "--source=app", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0);
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1" && Image("c2") == "web:1"; },
                         absl::Seconds(30)))
      << Logs();

  std::string out = Ctl({"bundle", "suspend", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"cluster", "suspend", "c2"}, &code);
  ASSERT_EQ(code, 0) << out;
  WriteApp("web:2");
  const std::string v2 = git_.Commit("v2");
  ASSERT_TRUE(Eventually([&] {
    return Ctl({"bundle", "list", "-o", "json"}).find(v2) != std::string::npos;
  })) << Ctl({"bundle", "list"});
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Image("c1"), "web:1") << "the bundle is suspended";
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("suspended"));

  // Its agents keep enforcing what they hold: drift is still healed.
  json edit = {{"apiVersion", "apps/v1"},
               {"kind", "Deployment"},
               {"metadata", {{"name", "web"}, {"namespace", "shop"}}},
               {"spec", {{"replicas", 3}}}};
  ASSERT_EQ(
      clusters_["c1"]
          .client
          ->Do("PATCH",
               "/apis/apps/v1/namespaces/shop/deployments/web?fieldManager=kubectl&force=true",
               edit.dump(), "application/apply-patch+yaml")
          ->code,
      200);
  EXPECT_TRUE(Eventually([&] {
    return Live("c1", "/apis/apps/v1/namespaces/shop/deployments/web")["spec"]["replicas"] == 1;
  })) << Logs();

  Ctl({"bundle", "resume", "web"}, &code);
  EXPECT_EQ(code, 0);
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:2"; })) << Logs();
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(Image("c2"), "web:1") << "the cluster is under maintenance";
  EXPECT_THAT(Ctl({"cluster", "list", "-o", "json"}), HasSubstr("\"suspended\": true"));
  EXPECT_THAT(
      Ctl({"cluster", "list"}),
      ContainsRegex("c2 .* suspended: no new revisions until gitfleetctl cluster resume c2"));
  Ctl({"cluster", "resume", "c2"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(Eventually([&] { return Image("c2") == "web:2"; })) << Logs();
  // Each act is an event, in order, for services that follow them.
  std::string events = Ctl({"events", "--type=bundle.,cluster.suspended,cluster.resumed"});
  // (POSIX regular expressions: "." also matches the line ends.)
  EXPECT_THAT(events, ContainsRegex("bundle\\.suspended +bundle=web .*"
                                    "cluster\\.suspended +cluster=c2 .*"
                                    "bundle\\.resumed +bundle=web .*"
                                    "cluster\\.resumed +cluster=c2"))
      << events;
}

// The prune guard, end to end: a commit that would delete most of what the cluster runs
// is held (the cluster keeps it all, and rollout status says so) until rollout promote.
TEST_F(FleetOps, ACommitThatWouldDeleteMostOfWhatTheClusterRunsWaitsForPromote) {
  auto configmaps = [&](int count) {
    std::string yaml;
    for (int i = 0; i < count; ++i) {
      absl::StrAppend(&yaml, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm", i,
                      ", namespace: shop}\ndata: {v: \"1\"}\n");
    }
    git_.Write("apps/web/configmaps.yaml", yaml);
  };
  WriteApp("web:1");
  configmaps(12);
  git_.Commit("v1");
  StartControlPlane();
  StartCluster("c1");
  AddApp({"web", "--source=app", "--path=apps/web"});
  auto present = [&](int i) {
    return !Live("c1", absl::StrCat("/api/v1/namespaces/shop/configmaps/cm", i)).is_null();
  };
  ASSERT_TRUE(Eventually([&] { return present(11); }, absl::Seconds(30))) << Logs();

  configmaps(1);
  const std::string v2 = git_.Commit("the ConfigMaps moved elsewhere by mistake");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"rollout", "status", "web"}), "HELD by the prune guard");
  })) << Ctl({"rollout", "status", "web"})
      << Logs();
  EXPECT_THAT(Ctl({"rollout", "status", "web"}),
              HasSubstr("would delete 11 of the 14 objects the fleet runs"));
  absl::SleepFor(absl::Seconds(2));
  EXPECT_TRUE(present(11)) << "held: the cluster keeps what it runs";

  int code;
  std::string out = Ctl({"rollout", "promote", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] { return !present(11) && present(0); }, absl::Seconds(30))) << Logs();
  EXPECT_THAT(Ctl({"rollout", "status", "web"}), Not(HasSubstr("HELD")));
}

TEST_F(FleetOps, RollbackPinsARevisionUntilUnpinned) {
  WriteApp("web:1");
  const std::string v1 = git_.Commit("v1");
  StartControlPlane();
  StartCluster("c1");
  int code;
  Ctl({"source", "add", "app", "--url=" + git_.url(), "--interval=1s"}, &code);
  ASSERT_EQ(code, 0);
  Ctl({"bundle", "add", "web", "--source=app", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0);
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; }, absl::Seconds(30))) << Logs();
  WriteApp("web:2");
  git_.Write("apps/web/extra.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: shop\n"
             "data: {v: \"2\"}\n");
  git_.Commit("v2");
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:2"; }, absl::Seconds(30))) << Logs();
  auto extra = [&] { return !Live("c1", "/api/v1/namespaces/shop/configmaps/extra").is_null(); };
  ASSERT_TRUE(Eventually(extra)) << Logs();

  std::string out = Ctl({"bundle", "history", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr(v1.substr(0, 12)));
  EXPECT_TRUE(Eventually([&] {
    return Ctl({"bundle", "history", "web"}).find("c1") != std::string::npos;
  })) << Ctl({"bundle", "history", "web"});

  // --prune=false: what v1 lacks (the ConfigMap v2 added) stays.
  out = Ctl({"bundle", "rollback", "web", "--to=" + v1.substr(0, 10), "--prune=false"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("pinned to commit " + v1.substr(0, 12)));
  EXPECT_THAT(out, HasSubstr("objects that revision lacks stay applied"));
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; })) << Logs();
  ASSERT_TRUE(Eventually([&] {
    return Ctl({"status", "--bundle=web", "-o", "json"}).find("\"Synced\"") != std::string::npos;
  })) << Ctl({"status"});
  EXPECT_TRUE(extra()) << "a rollback with --prune=false deleted what its revision lacks";
  EXPECT_TRUE(Eventually([&] {
    return clusters_["c1"].agent->Log().find(
               "1 objects left it and stay applied, no longer managed (prune is off): ConfigMap "
               "shop/extra") != std::string::npos;
  })) << clusters_["c1"].agent->Log();
  EXPECT_THAT(Ctl({"bundle", "history", "web"}), HasSubstr("keeping what it lacks"));
  // The status says what was left, for whoever cleans up after the incident.
  EXPECT_TRUE(Eventually([&] {
    return Ctl({"status", "--bundle=web", "--cluster=c1"})
               .find("1 left unmanaged (prune off): ConfigMap shop/extra") != std::string::npos;
  })) << Ctl({"status"});
  EXPECT_THAT(Ctl({"status", "--bundle=web", "--cluster=c1", "-o", "json"}),
              HasSubstr("\"left_unmanaged_count\": 1"));
  // Unpinned, v2 manages it again.
  out = Ctl({"bundle", "unpin", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:2"; })) << Logs();
  EXPECT_TRUE(Eventually([&] {
    return Ctl({"status", "--bundle=web", "--cluster=c1"}).find("left unmanaged") ==
           std::string::npos;
  })) << Ctl({"status"});
  // By default a rollback prunes as the bundle does: the very revision v1 had.
  out = Ctl({"bundle", "rollback", "web", "--to=" + v1.substr(0, 10)}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("pinned to commit " + v1.substr(0, 12)));
  ASSERT_TRUE(Eventually([&] { return !extra(); })) << Logs();
  EXPECT_EQ(Image("c1"), "web:1");
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("pinned@" + v1.substr(0, 12)));
  // New commits do not move a pinned bundle.
  WriteApp("web:3");
  const std::string v3 = git_.Commit("v3");
  ASSERT_TRUE(Eventually([&] {
    return Ctl({"source", "list", "-o", "json"}).find(v3) != std::string::npos;
  })) << Ctl({"source", "list"});
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Image("c1"), "web:1");

  EXPECT_THAT(Ctl({"bundle", "rollback", "web", "--to=0000000000"}, &code),
              HasSubstr("no revision or commit of bundle web"));
  EXPECT_EQ(code, 1);
  out = Ctl({"bundle", "unpin", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:3"; })) << Logs();
  EXPECT_TRUE(Eventually(extra)) << "v3 holds it again";
  std::string events = Ctl({"events", "--bundle=web", "--type=bundle."});
  EXPECT_THAT(events, HasSubstr("bundle.pinned  bundle=web  commit=" + v1.substr(0, 12) +
                                "  rolled back by an operator to " + v1.substr(0, 12) +
                                ", keeping what it lacks"))
      << events;
  EXPECT_THAT(events, HasSubstr("bundle.unpinned  bundle=web"));
}

TEST_F(FleetOps, ABundleWaitsForItsDependenciesOnEachCluster) {
  WriteApp("operator:1");  // apps/web: the "operator" the app needs, Progressing at first
  git_.Write("apps/app/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: shop\n"
             "data: {v: \"1\"}\n");
  git_.Commit("v1");
  StartControlPlane();
  StartCluster("c1");
  int code;
  Ctl({"source", "add", "app", "--url=" + git_.url(), "--interval=1s"}, &code);
  ASSERT_EQ(code, 0);
  std::string out = Ctl({"bundle", "add", "operator", "--source=app", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "app", "--source=app", "--path=apps/app", "--depends-on=operator"},
            &code);
  ASSERT_EQ(code, 0) << out;
  const std::string cm = "/api/v1/namespaces/shop/configmaps/app";
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "operator:1"; }, absl::Seconds(30))) << Logs();
  absl::SleepFor(absl::Seconds(2));
  EXPECT_TRUE(Live("c1", cm).is_null()) << "the operator is not Healthy yet";
  EXPECT_THAT(
      Ctl({"bundle", "list"}),
      HasSubstr("1 clusters wait for dependencies; first: c1 (bundle operator: progressing"));
  // The cluster's own status says why it has nothing yet, not that an update was sent.
  out = Ctl({"status", "--cluster=c1", "--bundle=app", "-o", "json"});
  EXPECT_THAT(out, HasSubstr("waiting for dependencies: bundle operator: progressing")) << out;
  EXPECT_THAT(out, Not(HasSubstr("update sent"))) << out;

  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return !Live("c1", cm).is_null(); })) << Logs();

  // A cycle is refused, named; a dependency cannot be removed while it is one.
  out = Ctl({"bundle", "add", "operator", "--source=app", "--path=apps/web", "--depends-on=app",
             "--replace"},
            &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("--depends-on makes a cycle: operator -> app -> operator"));
  out = Ctl({"bundle", "remove", "operator"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("bundle \"operator\" is a dependency of app"));

  // A dependency may be defined later (as with Flux's dependsOn); until then the
  // dependent says what it waits for, from its add on.
  out = Ctl({"bundle", "add", "later", "--source=app", "--path=apps/app", "--selector=env=none",
             "--depends-on=crds,operator"},
            &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("waiting: depends on bundle crds, not defined: its clusters get no "
                             "new revision until it is"));
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("depends on bundle crds, not defined"));
}

std::string Sign(const std::string& key, const std::string& body) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), out, &n);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(out), n));
}

TEST_F(FleetOps, ASignedPushFetchesAtOnceAndAWronglySignedOneNothing) {
  const std::string secret = "a-webhook-secret-of-some-length";
  std::ofstream(root_ + "/webhook-secret") << secret << "\n";
  git_.Write("apps/app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
  const std::string first = git_.Commit("first");
  StartControlPlane({"--webhook-secret-file=" + root_ + "/webhook-secret"});
  int code;
  std::string out = Ctl({"source", "add", "app", "--url=" + git_.url(), "--interval=1h"}, &code);
  ASSERT_EQ(code, 0) << out;
  const std::string second = git_.Commit("second");
  auto fetched = [&](const std::string& commit) {
    return Ctl({"source", "list", "-o", "json"}).find(commit) != std::string::npos;
  };
  const std::string body = absl::StrCat(R"({"ref":"refs/heads/main","after":")", second,
                                        R"(","repository":{"clone_url":")", git_.url(), R"("}})");
  // Wrongly signed: 401, and nothing is fetched.
  int status = 0;
  std::string answer =
      ::gitfleet::testing::HttpRequest(http_port_, "POST", "/hooks/git",
                                       {{"X-GitHub-Event", "push"},
                                        {"X-Hub-Signature-256", "sha256=" + Sign("guess", body)},
                                        {"Content-Type", "application/json"}},
                                       body, &status);
  EXPECT_EQ(status, 401) << answer;
  absl::SleepFor(absl::Seconds(2));
  EXPECT_FALSE(fetched(second));

  // Signed: fetched within a second, with a one-hour poll interval.
  const absl::Time sent = absl::Now();
  answer =
      ::gitfleet::testing::HttpRequest(http_port_, "POST", "/hooks/git",
                                       {{"X-GitHub-Event", "push"},
                                        {"X-Hub-Signature-256", "sha256=" + Sign(secret, body)},
                                        {"Content-Type", "application/json"}},
                                       body, &status);
  EXPECT_EQ(status, 202) << answer;
  EXPECT_THAT(answer, HasSubstr("fetching app"));
  ASSERT_TRUE(Eventually([&] { return fetched(second); }, absl::Seconds(5)));
  // The control plane's own time for the commit (its source.commit event), not this test's
  // polls through gitfleetctl, a process each: under load, starting those took 0.2 s more.
  const std::string events = Ctl({"events", "--type=source.commit", "-o", "json"});
  absl::Time seen = absl::InfiniteFuture();
  for (absl::string_view line : absl::StrSplit(events, '\n', absl::SkipEmpty())) {
    const nlohmann::json event = nlohmann::json::parse(line);
    if (event.value("commit", "") != second) continue;
    std::string error;
    ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, event.value("time", ""), &seen, &error))
        << error << ": " << line;
  }
  ASSERT_NE(seen, absl::InfiniteFuture()) << "no source.commit event for " << second << ":\n"
                                          << events;
  EXPECT_LT(seen - sent, absl::Seconds(1)) << "webhook to fetched";

  // Azure DevOps signs nothing: its basic authentication carries the secret as password,
  // and the HTTP server hands that header through.
  const std::string third = git_.Commit("third");
  const std::string azure = absl::StrCat(R"({"eventType":"git.push","resource":{"repository":)",
                                         R"({"remoteUrl":")", git_.url(), R"("}}})");
  for (const std::string& password : {std::string("guess"), secret}) {
    answer = ::gitfleet::testing::HttpRequest(
        http_port_, "POST", "/hooks/git",
        {{"X-VSS-ActivityId", "5f8b0c7e-0000-4000-8000-000000000001"},
         {"Authorization", "Basic " + absl::Base64Escape("azure:" + password)},
         {"Content-Type", "application/json; charset=utf-8"}},
        azure, &status);
    EXPECT_EQ(status, password == secret ? 202 : 401) << answer;
    if (password != secret) {
      EXPECT_FALSE(fetched(third));
    }
  }
  ASSERT_TRUE(Eventually([&] { return fetched(third); }, absl::Seconds(5)));

  // Too large: 413 before anything is read.
  answer = ::gitfleet::testing::HttpRequest(http_port_, "POST", "/hooks/git",
                                            {{"X-GitHub-Event", "push"}}, std::string(5 << 20, ' '),
                                            &status);
  EXPECT_EQ(status, 413);
  std::string metrics = HttpGet(http_port_, "/metrics");
  EXPECT_THAT(metrics,
              HasSubstr(R"(gitfleet_webhooks_total{provider="github",result="unauthorized"} 1)"));
  EXPECT_THAT(metrics,
              HasSubstr(R"(gitfleet_webhooks_total{provider="github",result="accepted"} 1)"));
  EXPECT_THAT(metrics,
              HasSubstr(R"(gitfleet_webhooks_total{provider="github",result="too_large"} 1)"));
  EXPECT_THAT(metrics, HasSubstr(R"(gitfleet_webhooks_total{provider="azuredevops",)"
                                 R"(result="unauthorized"} 1)"));
  EXPECT_THAT(metrics,
              HasSubstr(R"(gitfleet_webhooks_total{provider="azuredevops",result="accepted"} 1)"));

  // A rotation, without a restart: the new secret is added beside the old, the senders
  // move to it, then the old one goes. The file is replaced as a mounted Secret is.
  const std::string rotated = "the-next-webhook-secret-0123";
  auto replace = [&](const std::string& content) {
    std::ofstream(root_ + "/webhook-secret.new") << content;
    ASSERT_EQ(
        std::rename((root_ + "/webhook-secret.new").c_str(), (root_ + "/webhook-secret").c_str()),
        0);
    absl::SleepFor(absl::Milliseconds(1100));  // read again at most once a second
  };
  auto push = [&](const std::string& with) {
    ::gitfleet::testing::HttpRequest(http_port_, "POST", "/hooks/git",
                                     {{"X-GitHub-Event", "push"},
                                      {"X-Hub-Signature-256", "sha256=" + Sign(with, body)},
                                      {"Content-Type", "application/json"}},
                                     body, &status);
    return status;
  };
  EXPECT_EQ(push(rotated), 401);
  ASSERT_NO_FATAL_FAILURE(replace(absl::StrCat(secret, "\n", rotated, "\n")));
  EXPECT_EQ(push(rotated), 202);
  EXPECT_EQ(push(secret), 202);
  ASSERT_NO_FATAL_FAILURE(replace(rotated + "\n"));
  EXPECT_EQ(push(secret), 401);
  EXPECT_EQ(push(rotated), 202);
  // An edit that is refused keeps the secret in force, and the log says why.
  ASSERT_NO_FATAL_FAILURE(replace("too-short\n"));
  EXPECT_EQ(push(rotated), 202);
  EXPECT_THAT(cp_->Log(), HasSubstr("--webhook-secret-file: line 1: a secret must be at least "
                                    "16 characters; what was read before stays in force"));
  metrics = HttpGet(http_port_, "/metrics");
  EXPECT_THAT(metrics, HasSubstr(R"(gitfleet_webhook_secrets_used_total{secret="1"} 5)"));
  EXPECT_THAT(metrics, HasSubstr(R"(gitfleet_webhook_secrets_used_total{secret="2"} 1)"));
  (void)first;
}

// With --webhook-http the webhooks have an address of their own, which is all the outside
// world needs to reach: clients there that trickle their requests (heads and bodies) hold
// none of the workers of --http, whose probes answer all along, and they are cut; a signed
// push then fetches as before.
TEST_F(FleetOps, WebhooksApartKeepSlowClientsFromTheProbes) {
  const std::string secret = "a-webhook-secret-of-some-length";
  std::ofstream(root_ + "/webhook-secret") << secret << "\n";
  git_.Write("apps/app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
  git_.Commit("first");
  StartControlPlane(
      {"--webhook-secret-file=" + root_ + "/webhook-secret", "--webhook-http=127.0.0.1:0"});
  const int hooks_port = Port(cp_->WaitForLog(R"(webhooks on port (\d+))"));
  ASSERT_GT(hooks_port, 0) << cp_->Log();
  int code;
  std::string out = Ctl({"source", "add", "app", "--url=" + git_.url(), "--interval=1h"}, &code);
  ASSERT_EQ(code, 0) << out;
  const std::string second = git_.Commit("second");
  const std::string body = absl::StrCat(R"({"ref":"refs/heads/main","after":")", second,
                                        R"(","repository":{"clone_url":")", git_.url(), R"("}})");
  const std::map<std::string, std::string> signed_push = {
      {"X-GitHub-Event", "push"},
      {"X-Hub-Signature-256", "sha256=" + Sign(secret, body)},
      {"Content-Type", "application/json"}};
  int status = 0;
  EXPECT_THAT(::gitfleet::testing::HttpRequest(http_port_, "POST", "/hooks/git", signed_push, body,
                                               &status),
              HasSubstr("--webhook-http"));
  EXPECT_EQ(status, 404);
  HttpGet(hooks_port, "/metrics", &status);
  EXPECT_EQ(status, 404) << "the webhooks' address serves nothing else";

  // 40 clients: half send a head a byte at a time, half a whole head and then a body a
  // byte at a time; each every 100 ms.
  std::vector<int> fds;
  std::vector<std::string> pending;
  for (int i = 0; i < 40; ++i) {
    const int fd = ::gitfleet::testing::ConnectLoopback(hooks_port);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    pending.push_back(
        i % 2 == 0 ? "POST /hooks/git HTTP/1.1\r\nHost: x\r\nX-A: " + std::string(1000, 'a') : "");
    if (i % 2 == 1) {
      const std::string head =
          "POST /hooks/git HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
          "Content-Length: 100000\r\n\r\n";
      ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), head.size());
    }
  }
  std::vector<bool> cut(fds.size(), false);
  std::vector<std::string> received(fds.size());
  size_t cuts = 0;
  for (int step = 0; step < 250 && cuts < fds.size(); ++step) {  // 25 s at most
    for (size_t i = 0; i < fds.size(); ++i) {
      if (cut[i]) continue;
      const std::string next = pending[i].empty() ? "a" : pending[i].substr(0, 1);
      if (!pending[i].empty()) pending[i].erase(0, 1);
      if (::gitfleet::testing::ClosedByPeer(fds[i], &received[i]) ||
          send(fds[i], next.data(), 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        cut[i] = true;
        ++cuts;
      }
    }
    if (step % 10 == 0) {
      const absl::Time asked = absl::Now();
      EXPECT_EQ(HttpGet(http_port_, "/healthz"), "ok\n") << "at step " << step;
      EXPECT_LT(absl::Now() - asked, absl::Seconds(2)) << "/healthz waited at step " << step;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(cuts, fds.size()) << "slow clients still held the webhooks' workers";
  for (int fd : fds) close(fd);

  EXPECT_EQ(::gitfleet::testing::HttpRequest(hooks_port, "POST", "/hooks/git", signed_push, body,
                                             &status),
            absl::StrCat("fetching app\n"))
      << status;
  EXPECT_EQ(status, 202);
  EXPECT_TRUE(Eventually(
      [&] {
        return Ctl({"source", "list", "-o", "json"}).find(second) != std::string::npos;
      },
      absl::Seconds(5)));
  const std::string metrics = HttpGet(http_port_, "/metrics");
  EXPECT_GT(MetricValue(metrics, R"(gitfleet_webhooks_total{provider="github",result="busy"})"), 0);
  EXPECT_GT(MetricValue(metrics, R"(gitfleet_webhooks_total{provider="github",result="too_slow"})"),
            0);
}

TEST_F(FleetOps, ASubscriberSeesACommitsWholeStoryInOrder) {
  WriteApp("web:1");
  git_.Write("apps/staging/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\n  namespace: default\n");
  git_.Commit("v1");
  StartControlPlane();
  StartCluster("c1");
  int code;
  Ctl({"source", "add", "app", "--url=" + git_.url(), "--interval=1s"}, &code);
  ASSERT_EQ(code, 0);
  Ctl({"bundle", "add", "web", "--source=app", "--path=apps/web", "--partition-size=1"}, &code);
  ASSERT_EQ(code, 0);
  // A source no bundle reads: its commits are no business of bundle web's watcher.
  Ctl({"source", "add", "unread", "--url=" + git_.url(), "--interval=1s"}, &code);
  ASSERT_EQ(code, 0);
  // A bundle for clusters that c1 is not: none of c1's watcher's business either.
  Ctl({"bundle", "add", "staging", "--source=app", "--path=apps/staging", "--selector=env=staging"},
      &code);
  ASSERT_EQ(code, 0);
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:1"; }, absl::Seconds(30))) << Logs();
  Ready("c1");
  ASSERT_TRUE(Eventually([&] {
    return Ctl({"rollout", "status", "web"}).find("rolled out") != std::string::npos;
  })) << Ctl({"rollout", "status", "web"});

  // A subscriber for bundle web, following.
  Process watcher(kCtl,
                  {absl::StrCat("--server=127.0.0.1:", grpc_port_), "events", "--bundle=web", "-w",
                   "-o", "json"},
                  root_ + "/events.log");
  ASSERT_FALSE(watcher.WaitForLog(R"(("type":"rollout.done"))").empty()) << watcher.Log();
  WriteApp("web:2");
  const std::string v2 = git_.Commit("v2");
  ASSERT_TRUE(Eventually([&] { return Image("c1") == "web:2"; }, absl::Seconds(30))) << Logs();
  Ready("c1");
  ASSERT_TRUE(Eventually([&] { return watcher.CountInLog("\"type\":\"rollout.done\"") >= 2; }))
      << watcher.Log();

  // The story of v2, in order, after the last event about v1.
  std::vector<json> story;
  std::istringstream lines(watcher.Log());
  for (std::string line; std::getline(lines, line);) {
    json event = json::parse(line, nullptr, false);
    if (event.is_object()) story.push_back(event);
  }
  auto find = [&](size_t from, const std::string& type, const std::string& field = "",
                  const std::string& value = "") {
    for (size_t i = from; i < story.size(); ++i) {
      if (story[i].value("type", "") != type) continue;
      if (!field.empty() && story[i].value(field, "").rfind(value, 0) != 0) continue;
      return i;
    }
    return story.size();
  };
  size_t commit = find(0, "source.commit", "commit", v2);
  size_t render = find(commit, "render.done", "commit", v2);
  size_t started = find(render, "rollout.started", "commit", v2);
  size_t applied = find(started, "cluster.applied", "cluster", "c1");
  size_t progressing = find(applied, "cluster.health", "message", "progressing");
  size_t healthy = find(progressing, "cluster.health", "message", "healthy");
  size_t done = find(healthy, "rollout.done");
  EXPECT_LT(done, story.size()) << watcher.Log();
  EXPECT_EQ(story[applied].value("commit", ""), v2);
  for (const json& event : story) EXPECT_NE(event.value("source", ""), "unread") << event.dump();
  for (size_t i = 1; i < story.size(); ++i) {
    EXPECT_GT(std::stoull(story[i].value("sequence", "0")),
              std::stoull(story[i - 1].value("sequence", "0")));
  }
  watcher.Kill(SIGTERM);

  // Without -w: the recent events, then it ends.
  std::string out = Ctl({"events", "--cluster=c1"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("cluster.connected  cluster=c1"));
  EXPECT_THAT(out, HasSubstr("cluster.applied  bundle=web  cluster=c1"));
  EXPECT_THAT(out, HasSubstr("render.done  bundle=web")) << "web reaches c1";
  EXPECT_THAT(out, HasSubstr("rollout.done  bundle=web"));
  EXPECT_THAT(out, HasSubstr("source.commit  source=app"));
  EXPECT_THAT(out, Not(HasSubstr("bundle=staging"))) << "staging targets other clusters";
  EXPECT_THAT(out, Not(HasSubstr("source=unread"))) << "no bundle reads it";
  EXPECT_THAT(Ctl({"events", "--bundle=staging"}), HasSubstr("render.done  bundle=staging"))
      << "there were such events";
  // A name not known (yet) is said, not followed in silence; the watch goes on.
  out = Ctl({"events", "--cluster=c1-typo"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("cluster c1-typo not found"));
  EXPECT_THAT(out, HasSubstr("following its events anyway"));
  EXPECT_THAT(Ctl({"events", "--cluster=c1"}), Not(HasSubstr("not found")));
  EXPECT_THAT(Ctl({"events"}), HasSubstr("source.commit  source=unread"))
      << "unfiltered, every source's commits";
  // Only rollouts: every line is one, and both of v1's and v2's rollouts are there.
  out = Ctl({"events", "--bundle=web", "--type=rollout."}, &code);
  EXPECT_EQ(code, 0) << out;
  std::istringstream rollout_lines(out);
  int rollout_dones = 0;
  for (std::string line; std::getline(rollout_lines, line);) {
    EXPECT_THAT(line, HasSubstr("  rollout.")) << out;
    rollout_dones += line.find("rollout.done") != std::string::npos;
  }
  EXPECT_EQ(rollout_dones, 2) << out;
  EXPECT_THAT(Ctl({"events", "--type=" + std::string(65, 'x')}, &code),
              HasSubstr("is not an event type"));
  EXPECT_NE(code, 0);
  // A mistyped type matches nothing, so it is refused rather than followed in silence.
  out = Ctl({"events", "--type=rollout.,rollout.pause"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("INVALID_ARGUMENT: types: \"rollout.pause\" is not an event type: "
                             "want one of source.commit, "));

  // A watcher that reconnects resumes after the last event it handled: here the one
  // before v2's commit, so v2's story comes again from its commit, and nothing older.
  ASSERT_GT(commit, 0u);
  ASSERT_LT(commit, story.size());
  const std::string after = story[commit - 1].value("sequence", "");
  const std::string stream = story[commit - 1].value("stream", "");
  ASSERT_FALSE(stream.empty()) << story[commit - 1].dump();
  auto resumed = [&](std::vector<std::string>* types, std::vector<std::string>* messages) {
    int rc = 0;
    std::string text = Ctl(
        {"events", "--bundle=web", "--after=" + after, "--stream=" + stream, "-o", "json"}, &rc);
    EXPECT_EQ(rc, 0) << text;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      json event = json::parse(line, nullptr, false);
      if (!event.is_object()) continue;
      types->push_back(event.value("type", ""));
      messages->push_back(event.value("message", ""));
      if (event.value("type", "") != "resync" && event.value("stream", "") == stream) {
        EXPECT_GT(std::stoull(event.value("sequence", "0")), std::stoull(after)) << line;
      }
    }
  };
  std::vector<std::string> types, messages;
  resumed(&types, &messages);
  ASSERT_FALSE(types.empty());
  EXPECT_EQ(types.front(), "source.commit") << absl::StrJoin(types, " ");
  EXPECT_EQ(std::count(types.begin(), types.end(), "resync"), 0) << absl::StrJoin(types, " ");
  EXPECT_EQ(std::count(types.begin(), types.end(), "rollout.done"), 1) << "v2's only";

  // After a restart those numbers mean nothing: a resync says so first. A watcher that
  // follows (-w) is still there afterwards: it resumed, and was told.
  Process follower(kCtl,
                   {absl::StrCat("--server=127.0.0.1:", grpc_port_), "events", "--bundle=web", "-w",
                    "-o", "json"},
                   root_ + "/follower.log");
  ASSERT_FALSE(follower.WaitForLog(R"(("type":"rollout.done"))").empty()) << follower.Log();
  RestartControlPlane();
  ASSERT_FALSE(follower.WaitForLog(R"(("type":"resync"))", absl::Seconds(30)).empty())
      << follower.Log();
  EXPECT_THAT(follower.Log(), HasSubstr("the event stream ended"));
  EXPECT_THAT(follower.Log(), HasSubstr("restarted"));
  follower.Kill(SIGTERM);
  types.clear();
  messages.clear();
  resumed(&types, &messages);
  ASSERT_FALSE(types.empty());
  EXPECT_EQ(types.front(), "resync");
  EXPECT_THAT(messages.front(), HasSubstr("restarted"));
  EXPECT_THAT(Ctl({"events", "--stream=" + std::string(65, 'x')}, &code), HasSubstr("stream: 65"));
  EXPECT_NE(code, 0);
}

}  // namespace
}  // namespace gitfleet
