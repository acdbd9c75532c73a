// End-to-end: the real control plane, agents and gitfleetctl against real Git
// repositories (file:// and git daemon on loopback).

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/file_system.h"
#include "common/sync.h"
#include "controlplane/render/kustomize_renderer.h"
#include "controlplane/render/renderer.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/gitfleet/v1/admin.grpc.pb.h"
#include "tests/e2e/fleet_fixture.h"
#include "tests/util/chart_server.h"
#include "tests/util/fake_tools.h"
#include "tests/util/fleet_examples.h"
#include "tests/util/git_fixture.h"
#include "tests/util/git_servers.h"
#include "tests/util/lfs_server.h"
#include "tests/util/oci_registry.h"
#include "tests/util/process.h"
#include "tests/util/webhook_sink.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::Cm;
using ::gitfleet::testing::Eventually;
using ::gitfleet::testing::Fleet;
using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::HttpGet;
using ::gitfleet::testing::kControlPlane;
using ::gitfleet::testing::LfsServer;
using ::gitfleet::testing::MetricValue;
using ::gitfleet::testing::Port;
using ::gitfleet::testing::Process;
using ::gitfleet::testing::TempDir;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Makes a CA, a server certificate for 127.0.0.1 and a client certificate, with openssl.
void MakeCertificates(const std::string& dir) {
  std::string script = absl::StrCat(
      "set -e; cd '", dir, "';",
      "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out $1 "
      "2>/dev/null; };",
      "key ca.key; openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj "
      "/CN=gitfleet-test-ca;",
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext;",
      "key server.key; openssl req -new -key server.key -out server.csr -subj /CN=localhost;",
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 ",
      "  -extfile server.ext -out server.crt 2>/dev/null;",
      "key client.key; openssl req -new -key client.key -out client.csr -subj /CN=prod-eu;",
      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 ",
      "  -out client.crt 2>/dev/null;",
      "key other.key; openssl req -x509 -new -key other.key -out other.crt -days 2 -subj "
      "/CN=rogue");
  std::string out;
  ASSERT_EQ(::gitfleet::testing::Run(script, &out), 0) << out;
}

TEST_F(Fleet, SyncsTwoAgentsHonouringSelectorsThenPropagatesChangesAndPrunes) {
  git_.Write("apps/web/web.yaml", Cm("web") + "---\n" + Cm("web-extra"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  StartControlPlane();
  StartAgent("prod-eu", "env=prod,region=eu");
  StartAgent("dev", "env=dev");
  AddSourceAndBundles();

  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("prod-eu", "base", first);
  ExpectSynced("dev", "base", first);
  EXPECT_TRUE(Status("dev", "web").empty()) << "dev is not selected by env=prod";
  EXPECT_THAT(Files("prod-eu"),
              ElementsAre("_cluster/Namespace/shop.yaml", "shop/ConfigMap/web-extra.yaml",
                          "shop/ConfigMap/web.yaml"));
  EXPECT_THAT(Files("dev"), ElementsAre("_cluster/Namespace/shop.yaml"));
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/web.yaml"), HasSubstr("value: \"1\""));

  // A change propagates, and only as a delta.
  git_.Write("apps/web/web.yaml", Cm("web", "2") + "---\n" + Cm("web-extra"));
  std::string second = git_.Commit("change web");
  ExpectSynced("prod-eu", "web", second);
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/web.yaml"), HasSubstr("value: \"2\""));
  EXPECT_EQ(CpMetric("gitfleet_updates_sent_total{kind=\"delta\"}"), 1);
  // Each applied revision's status came inside its ACK: one message, not two.
  EXPECT_GE(CpMetric("gitfleet_agent_status_reports_total{via=\"ack\"}"), 4);

  // A removed object is pruned.
  git_.Write("apps/web/web.yaml", Cm("web", "2"));
  std::string third = git_.Commit("drop web-extra");
  ExpectSynced("prod-eu", "web", third);
  EXPECT_THAT(Files("prod-eu"),
              ElementsAre("_cluster/Namespace/shop.yaml", "shop/ConfigMap/web.yaml"));

  // The CLI shows the same story as a table and as JSON.
  std::string table = Ctl({"status"});
  EXPECT_THAT(table, HasSubstr("prod-eu"));
  EXPECT_THAT(table, HasSubstr("Synced"));
  std::string json = Ctl({"status", "-o", "json", "--cluster=prod-eu", "--bundle=web"});
  EXPECT_THAT(json, HasSubstr("\"sync_state\": \"Synced\""));
  EXPECT_THAT(json, HasSubstr("\"desired_commit\": \"" + third + "\""));
  EXPECT_THAT(json, HasSubstr("\"applied_time\""));
  EXPECT_THAT(Ctl({"cluster", "list"}), HasSubstr("env=prod,region=eu"));
  // Both bundles rolled out everywhere they target: web to one cluster, base to two.
  EXPECT_TRUE(Eventually([&] {
    std::string list = Ctl({"bundle", "list"});
    return list.find(" 1/1 ") != std::string::npos && list.find(" 2/2 ") != std::string::npos;
  })) << Ctl({"bundle", "list"});
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "json"}), HasSubstr("\"rolled_out_time\""));
}

TEST_F(Fleet, MalformedCommitKeepsLastGoodStateAndReportsFileAndLine) {
  std::string good = SyncedFleet();

  git_.Write("apps/web/web.yaml", Cm("web", "2"));
  git_.Write("apps/web/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n");
  std::string bad = git_.Commit("broken");
  ASSERT_TRUE(Eventually([&] {
    std::vector<v1::BundleStatus> s = Status("prod-eu", "web");
    return s.size() == 1 && s[0].sync_state() == v1::SYNC_STATE_FAILED;
  }));
  v1::BundleStatus failed = Status("prod-eu", "web")[0];
  EXPECT_THAT(failed.message(),
              HasSubstr("apps/web/broken.yaml:1: ConfigMap has no metadata.name"));
  EXPECT_THAT(failed.message(), HasSubstr(bad.substr(0, 12)));
  EXPECT_EQ(failed.applied_commit(), good);
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/web.yaml"), HasSubstr("value: \"1\""))
      << "the last good revision stays applied";
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("broken.yaml:1"));
  // A failed reconcile is retried with backoff (1 s, 2 s, ...): a slow run (ASAN) counts
  // the same commit's failure more than once.
  EXPECT_GE(CpMetric("gitfleet_renders_total{engine=\"plain\",result=\"error\"}"), 1);

  git_.Remove("apps/web/broken.yaml");
  std::string fixed = git_.Commit("fix");
  ExpectSynced("prod-eu", "web", fixed);
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/web.yaml"), HasSubstr("value: \"2\""));
}

// A repository that cannot be read keeps its bundles where they are, and says so where an
// operator looks for a bundle's trouble: `bundle list` and the events, not only `source list`.
TEST_F(Fleet, ASourceThatCannotBeReadIsShownOnItsBundlesAndInTheEvents) {
  std::string good = SyncedFleet();
  EXPECT_THAT(Ctl({"bundle", "list"}), Not(HasSubstr("source demo:")));

  const std::string gone = git_.dir() + ".gone";
  ASSERT_EQ(std::rename(git_.dir().c_str(), gone.c_str()), 0);
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"bundle", "list"}), "source demo:");
  })) << Ctl({"bundle", "list"});
  std::string list = Ctl({"bundle", "list"});
  EXPECT_THAT(list, HasSubstr("(stays at its last revision)"));
  EXPECT_THAT(list, HasSubstr(good.substr(0, 12))) << "both bundles keep the good commit";
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "json"}), HasSubstr("\"source_error\""));
  std::string events = Ctl({"events", "--bundle=web", "--type=source."});
  EXPECT_THAT(events, HasSubstr("source.failed"));
  EXPECT_EQ(absl::StrContains(events, "source.recovered"), false);
  // The error is said once, not at every retry.
  absl::SleepFor(absl::Seconds(3));
  events = Ctl({"events", "--bundle=web", "--type=source.failed"});
  EXPECT_EQ(std::count(events.begin(), events.end(), '\n'), 1) << events;
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/web.yaml"), HasSubstr("value: \"1\""));
  EXPECT_EQ(Status("prod-eu", "web")[0].sync_state(), v1::SYNC_STATE_SYNCED);
  EXPECT_THAT(Status("prod-eu", "web")[0].source_error(), HasSubstr("cannot fetch"));
  EXPECT_THAT(Ctl({"status", "--cluster=prod-eu", "--bundle=web"}),
              HasSubstr("source: cannot fetch"));

  // Back, with a change: the error goes, and the change follows.
  ASSERT_EQ(std::rename(gone.c_str(), git_.dir().c_str()), 0);
  git_.Write("apps/web/web.yaml", Cm("web", "2"));
  std::string next = git_.Commit("after the outage");
  ExpectSynced("prod-eu", "web", next);
  EXPECT_THAT(Ctl({"bundle", "list"}), Not(HasSubstr("source demo:")));
  EXPECT_EQ(Status("prod-eu", "web")[0].source_error(), "");
  events = Ctl({"events", "--bundle=web", "--type=source."});
  EXPECT_LT(events.find("source.failed"), events.find("source.recovered")) << events;
  EXPECT_LT(events.find("source.recovered"), events.rfind("source.commit")) << events;
}

TEST_F(Fleet, AgentKilledWithSigkillRestartsWithoutLosingOrDuplicating) {
  std::string first = SyncedFleet({"a", "b", "c"});
  // The source names no ref: the list says which branch it follows.
  EXPECT_THAT(Ctl({"source", "list"}), HasSubstr("(default: main)"));

  agents_["prod-eu"].process->Kill(SIGKILL);
  // While the agent is down: one object changes, one leaves the bundle.
  git_.Write("apps/web/a.yaml", Cm("a", "2"));
  git_.Remove("apps/web/c.yaml");
  std::string second = git_.Commit("change a, drop c");
  ASSERT_TRUE(Eventually([&] {
    return Ctl({"source", "list"}).find(second.substr(0, 12)) != std::string::npos;
  }));

  RestartAgent("prod-eu");
  ExpectSynced("prod-eu", "web", second);
  EXPECT_THAT(Files("prod-eu"), ElementsAre("_cluster/Namespace/shop.yaml", "shop/ConfigMap/a.yaml",
                                            "shop/ConfigMap/b.yaml"));
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/a.yaml"), HasSubstr("value: \"2\""));
  // The restarted agent wrote only the changed object and pruned only the removed one.
  EXPECT_EQ(AgentMetric("prod-eu", "gitfleet_agent_objects_applied_total{result=\"ok\"}"), 1);
  EXPECT_EQ(AgentMetric("prod-eu", "gitfleet_agent_objects_pruned_total{result=\"ok\"}"), 1);
  EXPECT_EQ(AgentMetric("prod-eu", "gitfleet_agent_updates_received_total{kind=\"delta\"}"), 1);
  EXPECT_EQ(AgentMetric("prod-eu", "gitfleet_agent_updates_received_total{kind=\"full\"}"), -1)
      << "no full resend after a restart";
}

TEST_F(Fleet, ControlPlaneRestartResumesAgentsWithoutResending) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  StartControlPlane();
  StartAgent("prod-eu", "env=prod");
  StartAgent("dev", "env=dev");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("dev", "base", first);

  absl::Time stopping = absl::Now();
  int status = cp_->Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "clean shutdown on SIGTERM";
  EXPECT_LT(absl::Now() - stopping, absl::Seconds(4))
      << "shutdown does not wait on agent streams:\n"
      << cp_->Log();
  StartControlPlane();
  ASSERT_TRUE(Eventually([&] { return ConnectedClusters() == 2; })) << Ctl({"cluster", "list"});
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("dev", "base", first);
  EXPECT_EQ(CpMetric("gitfleet_connected_agents"), 2);
  EXPECT_EQ(CpMetric("gitfleet_update_bytes_sent_total"), 0)
      << "agents that hold the current revisions get nothing after a restart";

  // The restarted control plane still delivers changes, as deltas.
  git_.Write("apps/web/a.yaml", Cm("a", "2"));
  std::string second = git_.Commit("change");
  ExpectSynced("prod-eu", "web", second);
  EXPECT_EQ(CpMetric("gitfleet_updates_sent_total{kind=\"delta\"}"), 1);
  EXPECT_EQ(CpMetric("gitfleet_updates_sent_total{kind=\"full\"}"), 0) << "no full resend";
}

TEST_F(Fleet, AgentKeepsEnforcingWhileTheControlPlaneIsAway) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  StartControlPlane();
  StartAgent("prod-eu", "env=prod", "", {"--resync-interval-seconds=1"});
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("prod-eu", "base", first);
  std::string applied = Read("prod-eu", "shop/ConfigMap/a.yaml");

  cp_->Kill(SIGKILL);
  std::string out = agents_["prod-eu"].out;
  ASSERT_TRUE(PosixFileSystem().WriteFileAtomically(out + "/shop/ConfigMap/a.yaml", "edited").ok());
  ASSERT_TRUE(PosixFileSystem().DeleteFile(out + "/_cluster/Namespace/shop.yaml", out).ok());
  EXPECT_TRUE(Eventually([&] {
    return Read("prod-eu", "shop/ConfigMap/a.yaml") == applied &&
           !Read("prod-eu", "_cluster/Namespace/shop.yaml").empty();
  })) << agents_["prod-eu"].process->Log();
  EXPECT_EQ(AgentMetric("prod-eu", "gitfleet_agent_drift_corrections_total"), 2);
  EXPECT_EQ(AgentMetric("prod-eu", "gitfleet_agent_connected"), 0);
  // Enforcing from local state is ready, and says so.
  int code = 0;
  EXPECT_EQ(HttpGet(agents_["prod-eu"].http, "/readyz", &code),
            "ready: enforcing from local state (the control plane is not connected)\n");
  EXPECT_EQ(code, 200);
  EXPECT_EQ(HttpGet(agents_["prod-eu"].http, "/healthz", &code), "ok\n");
}

TEST_F(Fleet, KustomizeAndJsonnetBundlesReachAgents) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  git_.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
  git_.Write("base/cm.yaml", Cm("shared"));
  git_.Write("overlays/prod/kustomization.yaml", "namespace: prod\nresources: [../../base]\n");
  git_.Write("lib/names.libsonnet", "{ names: ['x', 'y'] }\n");
  git_.Write("jsonnet/main.jsonnet",
             "local lib = import '../lib/names.libsonnet';\n"
             "[{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: n, namespace: 'j' } }"
             " for n in lib.names]\n");
  std::string first = git_.Commit("engines");
  StartControlPlane();
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  std::string out =
      Ctl({"bundle", "add", "overlay", "--source=demo", "--path=overlays/prod"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "gen", "--source=demo", "--path=jsonnet"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "overlay", first);
  ExpectSynced("prod-eu", "gen", first);
  EXPECT_THAT(Files("prod-eu"), ElementsAre("j/ConfigMap/x.yaml", "j/ConfigMap/y.yaml",
                                            "prod/ConfigMap/shared.yaml"));
  std::string list = Ctl({"bundle", "list"});
  EXPECT_THAT(list, HasSubstr("kustomize"));
  EXPECT_THAT(list, HasSubstr("jsonnet"));

  // A change to the base, outside the overlay's path, reaches the cluster.
  git_.Write("base/cm.yaml", Cm("shared", "2"));
  std::string second = git_.Commit("change the base");
  ExpectSynced("prod-eu", "overlay", second);
  EXPECT_THAT(Read("prod-eu", "prod/ConfigMap/shared.yaml"), HasSubstr("value: \"2\""));
}

// kustomize's remote bases, as Argo CD and Flux repositories have them: a platform team's
// repository (served by git daemon) at a tag, fetched by the control plane, which the
// flag trusts; moving the ref is a commit of the app's repository like any other.
TEST_F(Fleet, AKustomizationsRemoteBaseIsFetchedByTheControlPlane) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  testing::GitFixture platform(root_ + "/platform");
  platform.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
  platform.Write("base/cm.yaml", Cm("platform", "1"));
  platform.Commit("platform v1");
  platform.Git("tag v1");
  platform.Write("base/cm.yaml", Cm("platform", "2"));
  platform.Commit("platform v2");
  platform.Git("tag v2");
  std::unique_ptr<Process> daemon;
  const int port = StartGitDaemon(&daemon);
  ASSERT_GT(port, 0) << "git daemon did not start";
  const std::string remote = absl::StrCat("git://127.0.0.1:", port, "/platform//base");
  git_.Write("apps/web/kustomization.yaml",
             absl::StrCat("namespace: web\nresources:\n- ", remote, "?ref=v1\n"));
  std::string first = git_.Commit("the platform's base at v1");
  StartControlPlane({absl::StrCat("--kustomize-remote-bases=git://127.0.0.1:", port, "/")});
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  std::string out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr(absl::StrCat("fetched the remote base git://127.0.0.1:", port,
                                          "/platform at v1")));
  ExpectSynced("prod-eu", "web", first);
  EXPECT_THAT(Read("prod-eu", "web/ConfigMap/platform.yaml"), HasSubstr("value: \"1\""));
  git_.Write("apps/web/kustomization.yaml",
             absl::StrCat("namespace: web\nresources:\n- ", remote, "?ref=v2\n"));
  std::string second = git_.Commit("the platform's base at v2");
  ExpectSynced("prod-eu", "web", second);
  EXPECT_THAT(Read("prod-eu", "web/ConfigMap/platform.yaml"), HasSubstr("value: \"2\""));
  // A repository the flag does not trust fails the render, naming the flag; the cluster
  // keeps v2.
  git_.Write("apps/web/kustomization.yaml",
             "namespace: web\nresources:\n- https://github.com/elsewhere/repo//base?ref=v1\n");
  git_.Commit("a base from elsewhere");
  EXPECT_TRUE(testing::Eventually([&] {
    return Ctl({"bundle", "list", "-o", "yaml"}).find("--kustomize-remote-bases=") !=
           std::string::npos;
  })) << Ctl({"bundle", "list", "-o", "yaml"});
  EXPECT_THAT(Read("prod-eu", "web/ConfigMap/platform.yaml"), HasSubstr("value: \"2\""));
}

// A remote base at a branch changes without a commit of the app's repository: a push
// webhook naming the platform's repository (which no source tracks) renders its readers
// again at once, fetching it anew, rather than at the resync ten minutes later.
TEST_F(Fleet, APushToARemoteBasesRepositoryRendersItsReadersAtOnce) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  testing::GitFixture platform(root_ + "/platform");
  platform.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
  platform.Write("base/cm.yaml", Cm("platform", "1"));
  platform.Commit("platform 1");
  std::unique_ptr<Process> daemon;
  const int port = StartGitDaemon(&daemon);
  ASSERT_GT(port, 0) << "git daemon did not start";
  const std::string platform_url = absl::StrCat("git://127.0.0.1:", port, "/platform");
  git_.Write("apps/web/kustomization.yaml",
             absl::StrCat("namespace: web\nresources:\n- ", platform_url, "//base?ref=main\n"));
  git_.Write("apps/other/cm.yaml", Cm("other", "1"));
  const std::string first = git_.Commit("the platform's base at main");
  std::ofstream(root_ + "/webhook-secret") << "a-gitlab-token-of-some-length\n";
  StartControlPlane({absl::StrCat("--kustomize-remote-bases=git://127.0.0.1:", port, "/"),
                     "--webhook-secret-file=" + root_ + "/webhook-secret"});
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1h"}, &code), code),
            0);
  ASSERT_EQ((Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code), code), 0);
  ASSERT_EQ((Ctl({"bundle", "add", "other", "--source=demo", "--path=apps/other"}, &code), code),
            0);
  ExpectSynced("prod-eu", "web", first);
  EXPECT_THAT(Read("prod-eu", "web/ConfigMap/platform.yaml"), HasSubstr("value: \"1\""));

  platform.Write("base/cm.yaml", Cm("platform", "2"));
  platform.Commit("platform 2");
  auto push = [&](const std::string& token, int* status) {
    return ::gitfleet::testing::HttpRequest(
        cp_http_, "POST", "/hooks/git",
        {{"X-Gitlab-Event", "Push Hook"},
         {"X-Gitlab-Token", token},
         {"Content-Type", "application/json"}},
        absl::StrCat(R"({"object_kind":"push","project":{"git_http_url":")", platform_url,
                     R"("}})"),
        status);
  };
  int status = 0;
  std::string answer = push("a-wrong-token-of-some-length", &status);
  EXPECT_EQ(status, 401) << answer;
  answer = push("a-gitlab-token-of-some-length", &status);
  EXPECT_EQ(status, 202) << answer;
  EXPECT_THAT(answer, HasSubstr("rendering again web, which reads the pushed repository"));
  EXPECT_THAT(answer, Not(HasSubstr("other")));
  const absl::Time sent = absl::Now();
  EXPECT_TRUE(testing::Eventually(
      [&] {
        return Read("prod-eu", "web/ConfigMap/platform.yaml").find("value: \"2\"") !=
               std::string::npos;
      },
      absl::Seconds(20)))
      << Read("prod-eu", "web/ConfigMap/platform.yaml");
  EXPECT_LT(absl::Now() - sent, absl::Seconds(20)) << "not at the resync";
}

// A chart's new release pushed to an OCI registry (Debian's docker-registry, notifying the
// control plane as an operator configures it) reaches the clusters whose bundles' version
// range takes it in seconds, not when the registry's tags are next read (5 minutes) or at
// the resync (10).
TEST_F(Fleet, AChartReleasePushedToARegistryReachesTheClustersAtOnce) {
  if (!testing::DistributionRegistry::Installed()) {
    GTEST_SKIP() << "docker-registry or python3 is not installed (tools/setup)";
  }
  const std::string helm = testing::WriteDependencyCheckingHelm(TempDir("helm"));
  ASSERT_FALSE(helm.empty());
  const int registry_port = testing::FreePort();
  ASSERT_GT(registry_port, 0);
  const std::string chart = absl::StrCat("oci://127.0.0.1:", registry_port, "/charts/web");
  git_.Write("apps/web/fleet.yaml",
             absl::StrCat("helm:\n  chart: ", chart, "\n  version: ^1.0\n  releaseName: web\n"));
  const std::string first = git_.Commit("web from the registry, any 1.x");
  std::ofstream(root_ + "/webhook-secret") << "a-registry-token-of-some-length\n";
  StartControlPlane({"--helm=" + helm,
                     absl::StrCat("--chart-repositories=oci://127.0.0.1:", registry_port, "/"),
                     "--webhook-secret-file=" + root_ + "/webhook-secret"});
  testing::DistributionRegistry registry(TempDir("registry"));
  testing::DistributionRegistry::Options options;
  options.port = registry_port;
  options.notify_url = absl::StrCat("http://127.0.0.1:", cp_http_, "/hooks/git");
  options.notify_authorization = "Bearer a-registry-token-of-some-length";
  absl::Status started = registry.Start(options);
  ASSERT_TRUE(started.ok()) << started;
  absl::Status pushed = registry.PushCharts("charts/web", {"1.0.0"});
  ASSERT_TRUE(pushed.ok()) << pushed;
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1h"}, &code), code),
            0);
  std::string out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", first);
  auto version = [&] { return ReadFileNamed("prod-eu", "ConfigMap/web"); };
  EXPECT_THAT(version(), HasSubstr("1.0.0")) << absl::StrJoin(Files("prod-eu"), ", ");

  pushed = registry.PushCharts("charts/web", {"1.1.0"});
  ASSERT_TRUE(pushed.ok()) << pushed;
  const absl::Time sent = absl::Now();
  EXPECT_TRUE(
      testing::Eventually([&] { return absl::StrContains(version(), "1.1.0"); }, absl::Seconds(30)))
      << version() << registry.Log();
  EXPECT_LT(absl::Now() - sent, absl::Seconds(30));
  const std::string metrics = ::gitfleet::testing::HttpGet(cp_http_, "/metrics");
  EXPECT_GE(testing::MetricValue(
                metrics, R"(gitfleet_webhooks_total{provider="registry",result="accepted"})"),
            1)
      << metrics;
  EXPECT_EQ(testing::MetricValue(
                metrics, R"(gitfleet_webhooks_total{provider="registry",result="unauthorized"})"),
            0);
}

// A registry that signs nothing (Quay's webhooks, Docker Hub's) is given the webhook URL
// with a token, the SHA-256 of a secret: its push renders the bundles using the chart again
// at once. (Debian's docker-registry stands in for the registry, notifying no one; the
// test posts Quay's notification.)
TEST_F(Fleet, ARegistryThatCannotSignIsHeardAtItsUrlsToken) {
  if (!testing::DistributionRegistry::Installed()) {
    GTEST_SKIP() << "docker-registry or python3 is not installed (tools/setup)";
  }
  const std::string helm = testing::WriteDependencyCheckingHelm(TempDir("helm"));
  ASSERT_FALSE(helm.empty());
  const int registry_port = testing::FreePort();
  ASSERT_GT(registry_port, 0);
  git_.Write("apps/web/fleet.yaml",
             absl::StrCat("helm:\n  chart: oci://127.0.0.1:", registry_port,
                          "/charts/web\n  version: ^1.0\n  releaseName: web\n"));
  const std::string first = git_.Commit("web from the registry, any 1.x");
  const std::string secret = "a-registry-token-of-some-length";
  std::ofstream(root_ + "/webhook-secret") << secret << "\n";
  StartControlPlane({"--helm=" + helm,
                     absl::StrCat("--chart-repositories=oci://127.0.0.1:", registry_port, "/"),
                     "--webhook-secret-file=" + root_ + "/webhook-secret"});
  testing::DistributionRegistry registry(TempDir("registry"));
  testing::DistributionRegistry::Options options;
  options.port = registry_port;
  absl::Status started = registry.Start(options);
  ASSERT_TRUE(started.ok()) << started;
  ASSERT_TRUE(registry.PushCharts("charts/web", {"1.0.0"}).ok());
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1h"}, &code), code),
            0);
  ASSERT_EQ((Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code), code), 0);
  ExpectSynced("prod-eu", "web", first);
  auto version = [&] { return ReadFileNamed("prod-eu", "ConfigMap/web"); };
  EXPECT_THAT(version(), HasSubstr("1.0.0"));
  ASSERT_TRUE(registry.PushCharts("charts/web", {"1.1.0"}).ok());
  const std::string quay = absl::StrCat(
      R"({"repository":"charts/web","namespace":"charts","name":"web","docker_url":"127.0.0.1:)",
      registry_port, R"(/charts/web","updated_tags":["1.1.0"]})");
  int status = 0;
  const std::string token = absl::BytesToHexString(crypto::Sha256(secret));
  testing::HttpRequest(cp_http_, "POST", "/hooks/git/" + token.substr(1) + "0",
                       {{"Content-Type", "application/json"}}, quay, &status);
  EXPECT_EQ(status, 401);
  const std::string answer =
      testing::HttpRequest(cp_http_, "POST", "/hooks/git/" + token,
                           {{"Content-Type", "application/json"}}, quay, &status);
  EXPECT_EQ(status, 202) << answer;
  EXPECT_THAT(answer, HasSubstr("rendering again web"));
  const absl::Time sent = absl::Now();
  EXPECT_TRUE(
      testing::Eventually([&] { return absl::StrContains(version(), "1.1.0"); }, absl::Seconds(30)))
      << version() << cp_->Log();
  EXPECT_LT(absl::Now() - sent, absl::Seconds(30)) << "not when the tags are next read";
  const std::string metrics = ::gitfleet::testing::HttpGet(cp_http_, "/metrics");
  EXPECT_EQ(testing::MetricValue(
                metrics, R"(gitfleet_webhooks_total{provider="url_token",result="accepted"})"),
            1)
      << metrics;
  EXPECT_THAT(cp_->Log(), Not(HasSubstr(token)));
}

// A chart repository served over HTTP (GitHub Pages, a bucket) pushes nothing; the
// pipeline that publishes a release posts the repository's URL to the webhook (here at its
// URL's token), and the bundles whose charts come from it read its index again at once,
// not when it is next read (5 minutes).
TEST_F(Fleet, AChartRepositoryNamedByAPushIsReadAgainAtOnce) {
  const std::string helm = testing::WriteDependencyCheckingHelm(TempDir("helm"));
  ASSERT_FALSE(helm.empty());
  testing::ChartRepositoryServer charts(TempDir("charts"));
  ASSERT_TRUE(
      charts
          .AddChart("web", "1.0.0", {{"Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"}})
          .ok());
  if (absl::Status started = charts.Start(); !started.ok()) GTEST_SKIP() << started;
  git_.Write("apps/web/fleet.yaml",
             absl::StrCat("helm:\n  repo: ", charts.url(),
                          "\n  chart: web\n  version: ^1.0\n  releaseName: web\n"));
  const std::string first = git_.Commit("web from the chart repository, any 1.x");
  const std::string secret = "a-pipeline-token-of-some-length";
  std::ofstream(root_ + "/webhook-secret") << secret << "\n";
  StartControlPlane({"--helm=" + helm, "--chart-repositories=" + charts.url(),
                     "--webhook-secret-file=" + root_ + "/webhook-secret"});
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1h"}, &code), code),
            0);
  ASSERT_EQ((Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code), code), 0);
  ExpectSynced("prod-eu", "web", first);
  auto version = [&] { return ReadFileNamed("prod-eu", "ConfigMap/web"); };
  EXPECT_THAT(version(), HasSubstr("1.0.0"));
  ASSERT_TRUE(
      charts
          .AddChart("web", "1.1.0", {{"Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.1.0\n"}})
          .ok());
  int status = 0;
  const std::string answer = testing::HttpRequest(
      cp_http_, "POST", "/hooks/git/" + absl::BytesToHexString(crypto::Sha256(secret)),
      {{"Content-Type", "application/json"}},
      absl::StrCat(R"({"repository":{"url":")", charts.url(), R"("}})"), &status);
  EXPECT_EQ(status, 202) << answer;
  EXPECT_THAT(answer, HasSubstr("rendering again web, which reads the pushed repository"));
  const absl::Time sent = absl::Now();
  EXPECT_TRUE(
      testing::Eventually([&] { return absl::StrContains(version(), "1.1.0"); }, absl::Seconds(30)))
      << version() << cp_->Log();
  EXPECT_LT(absl::Now() - sent, absl::Seconds(30)) << "not when the index is next read";
}

// The fleet's events reach the HTTP endpoints --notify-file names, each with its types
// and format: a service's, signed, and a chat room's one line of text.
TEST_F(Fleet, EventsArePostedToTheNotifyFilesSinks) {
  testing::WebhookSink service, chat, prod;
  absl::Status started = service.Start(TempDir("service"));
  if (!started.ok()) GTEST_SKIP() << started;
  ASSERT_TRUE(chat.Start(TempDir("chat")).ok());
  ASSERT_TRUE(prod.Start(TempDir("prod")).ok());
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/lab/a.yaml", Cm("lab"));
  const std::string first = git_.Commit("first");
  std::ofstream(root_ + "/notify") << absl::StrCat(
      "# a service, the deploy channel, and production's on-call room\n",
      "http://127.0.0.1:", service.port(), "/gitfleet json render.done,render.failed bundles=web\n",
      "http://127.0.0.1:", chat.port(), "/hooks/T0/B0/secret slack\n",
      "http://127.0.0.1:", prod.port(),
      "/prod slack cluster.applied,bundle.added clusters=\"env in (prod)\"\n");
  std::ofstream(root_ + "/notify-secret") << "a-signing-secret-of-some-length\n";
  StartControlPlane(
      {"--notify-file=" + root_ + "/notify", "--notify-secret-file=" + root_ + "/notify-secret"});
  StartAgent("prod-eu", "env=prod");
  StartAgent("staging", "env=staging");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  ASSERT_EQ((Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code), code), 0);
  ASSERT_EQ(
      (Ctl({"bundle", "add", "lab", "--source=demo", "--path=apps/lab", "--selector=env=staging"},
           &code),
       code),
      0);
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("staging", "web", first);
  ExpectSynced("staging", "lab", first);
  // Production's room hears of production alone: its clusters' applies, the bundles that
  // reach them.
  auto texts = [](const testing::WebhookSink& sink) {
    std::vector<std::string> out;
    for (const nlohmann::json& post : sink.Posts()) {
      nlohmann::json body = nlohmann::json::parse(post.value("body", ""), nullptr, false);
      out.push_back(body.is_object() ? body.value("text", "") : "");
    }
    return out;
  };
  ASSERT_TRUE(testing::Eventually([&] { return texts(prod).size() >= 2; })) << prod.Log();
  absl::SleepFor(absl::Seconds(1));
  EXPECT_THAT(texts(prod), ::testing::UnorderedElementsAre(
                               HasSubstr("bundle.added bundle=web"),
                               HasSubstr("cluster.applied bundle=web cluster=prod-eu")))
      << prod.Log();
  git_.Write("apps/web/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
  const std::string broken = git_.Commit("broken");
  auto types = [](const testing::WebhookSink& sink, const std::string& field) {
    std::vector<std::string> out;
    for (const nlohmann::json& post : sink.Posts()) {
      nlohmann::json body = nlohmann::json::parse(post.value("body", ""), nullptr, false);
      out.push_back(body.is_object() ? body.value(field, "") : "");
    }
    return out;
  };
  ASSERT_TRUE(testing::Eventually([&] {
    return types(service, "type").size() >= 2 && !types(chat, "text").empty();
  })) << service.Log()
      << chat.Log();
  EXPECT_THAT(types(service, "type"), ElementsAre("render.done", "render.failed"));
  std::set<std::string> ids;
  for (const nlohmann::json& post : service.Posts()) {
    EXPECT_EQ(post["path"], "/gitfleet");
    EXPECT_THAT(post.value("signature", ""), ::testing::StartsWith("sha256="));
    // As Standard Webhooks sign (a receiver on their libraries checks it): HMAC-SHA256 of
    // ID.TIMESTAMP.BODY, base64, within minutes of now; an id of its own per event.
    const std::string id = post.value("webhook_id", "");
    const std::string timestamp = post.value("webhook_timestamp", "");
    EXPECT_THAT(id, ::testing::StartsWith("gitfleet-"));
    ids.insert(id);
    int64_t seconds = 0;
    ASSERT_TRUE(absl::SimpleAtoi(timestamp, &seconds)) << post;
    EXPECT_LT(std::abs(absl::ToUnixSeconds(absl::Now()) - seconds), 300);
    EXPECT_EQ(post.value("webhook_signature", ""),
              "v1," + absl::Base64Escape(crypto::HmacSha256(
                          "a-signing-secret-of-some-length",
                          absl::StrCat(id, ".", timestamp, ".", post.value("body", "")))));
  }
  EXPECT_EQ(ids.size(), service.Posts().size());
  nlohmann::json failed = nlohmann::json::parse(service.Posts()[1].value("body", ""));
  EXPECT_EQ(failed["bundle"], "web");
  EXPECT_EQ(failed["commit"], broken);
  // The chat room: by default the events about whole bundles, as text.
  EXPECT_THAT(types(chat, "text"), Contains(AllOf(HasSubstr("gitfleet bundle.added bundle=web"))));
  EXPECT_TRUE(testing::Eventually([&] {
    for (const std::string& text : types(chat, "text")) {
      if (absl::StrContains(text, "render.failed bundle=web commit=" + broken.substr(0, 12))) {
        return true;
      }
    }
    return false;
  })) << chat.Log();
  const std::string metrics = HttpGet(cp_http_, "/metrics");
  EXPECT_GE(
      testing::MetricValue(metrics, R"(gitfleet_notifications_total{result="sent",sink="3"})"), 2)
      << metrics;
  EXPECT_THAT(metrics, Not(HasSubstr("/hooks/T0/B0")));  // sinks by their line
  EXPECT_THAT(cp_->Log(), Not(HasSubstr("/hooks/T0/B0/secret")));

  // The file edited while it runs: a team's room added, with no restart. A line it cannot
  // read keeps the sinks in force.
  testing::WebhookSink team;
  ASSERT_TRUE(team.Start(TempDir("team")).ok());
  std::ofstream(root_ + "/notify.new")
      << absl::StrCat("http://127.0.0.1:", service.port(), "/gitfleet json render.done\n",
                      "ftp://127.0.0.1/not-http\n");
  ASSERT_EQ(rename((root_ + "/notify.new").c_str(), (root_ + "/notify").c_str()), 0);
  EXPECT_TRUE(testing::Eventually([&] {
    return absl::StrContains(cp_->Log(), "what was read before stays in force");
  })) << cp_->Log();
  std::ofstream(root_ + "/notify.new") << absl::StrCat(
      "# the service as before (the same line), and a team's room\n",
      "http://127.0.0.1:", service.port(), "/gitfleet json render.done,render.failed bundles=web\n",
      "http://127.0.0.1:", team.port(), "/team slack render.done bundles=web\n");
  ASSERT_EQ(rename((root_ + "/notify.new").c_str(), (root_ + "/notify").c_str()), 0);
  EXPECT_TRUE(testing::Eventually([&] {
    return absl::StrContains(cp_->Log(), "--notify-file: 1 sinks kept, 1 started, 2 stopped");
  })) << cp_->Log();
  const size_t chat_posts = chat.Posts().size();
  git_.Write("apps/web/a.yaml", Cm("c"));
  const std::string fixed = git_.Commit("fixed");
  ASSERT_TRUE(testing::Eventually([&] { return !team.Posts().empty(); })) << team.Log();
  EXPECT_THAT(types(team, "text")[0],
              HasSubstr("gitfleet render.done bundle=web commit=" + fixed.substr(0, 12)));
  EXPECT_EQ(team.Posts().size(), 1u) << "nothing from before it was added: " << team.Log();
  EXPECT_EQ(chat.Posts().size(), chat_posts) << "the chat room's line was removed";
}

// A Git host's commit statuses follow each bundle of the repository: success once every
// cluster runs the commit Healthy, failure for a commit whose render fails, each on its
// commit, through the host's API (GitHub Enterprise's paths, served on loopback) with the
// token file's token.
TEST_F(Fleet, CommitStatusesSayWhereEachBundleStands) {
  testing::WebhookSink api;
  absl::Status started = api.Start(TempDir("github-api"));
  if (!started.ok()) GTEST_SKIP() << started;
  git_.Write("apps/web/a.yaml", Cm("a"));
  const std::string first = git_.Commit("first");
  // The repository as a Git host names it: OWNER/REPO.
  ASSERT_EQ(mkdir((root_ + "/acme").c_str(), 0755), 0);
  ASSERT_EQ(symlink((root_ + "/repo").c_str(), (root_ + "/acme/fleet.git").c_str()), 0);
  std::unique_ptr<Process> daemon;
  const int port = StartGitDaemon(&daemon);
  ASSERT_GT(port, 0) << "git daemon did not start";
  std::ofstream(root_ + "/notify") << "http://127.0.0.1:" << api.port()
                                   << "/acme/fleet github token-file=" << root_ << "/token\n";
  std::ofstream(root_ + "/token") << "ghp_0123456789abcdef\n";
  StartControlPlane({"--notify-file=" + root_ + "/notify"});
  StartAgent("prod-eu", "env=prod");
  StartAgent("staging", "env=staging");
  int code;
  std::string out =
      Ctl({"source", "add", "demo", absl::StrCat("--url=git://127.0.0.1:", port, "/acme/fleet.git"),
           "--interval=1s"},
          &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_EQ((Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code), code), 0);
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("staging", "web", first);
  // The last status posted for each commit.
  auto statuses = [&api] {
    std::map<std::string, nlohmann::json> last;
    for (const nlohmann::json& post : api.Posts()) {
      nlohmann::json body = nlohmann::json::parse(post.value("body", ""), nullptr, false);
      if (body.is_object()) last[post.value("path", "")] = body;
    }
    return last;
  };
  const std::string path = "/api/v3/repos/acme/fleet/statuses/";
  auto field = [&](const std::string& commit, const std::string& name) {
    std::map<std::string, nlohmann::json> last = statuses();
    auto found = last.find(path + commit);
    return found == last.end() ? std::string() : found->second.value(name, "");
  };
  ASSERT_TRUE(testing::Eventually([&] { return field(first, "state") == "success"; }))
      << api.Log() << cp_->Log();
  EXPECT_EQ(field(first, "context"), "gitfleet/web");
  EXPECT_EQ(field(first, "description"), "rolled out, Healthy on 2 clusters");
  for (const nlohmann::json& post : api.Posts()) {
    EXPECT_EQ(post["authorization"], "Bearer ghp_0123456789abcdef");
  }
  git_.Write("apps/web/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
  const std::string broken = git_.Commit("broken");
  ASSERT_TRUE(testing::Eventually([&] { return field(broken, "state") == "failure"; }))
      << api.Log();
  EXPECT_THAT(field(broken, "description"),
              HasSubstr("the render of " + broken.substr(0, 12) + " failed"));
  git_.Write("apps/web/a.yaml", Cm("b"));
  const std::string fixed = git_.Commit("fixed");
  ASSERT_TRUE(testing::Eventually([&] { return field(fixed, "state") == "success"; })) << api.Log();
  EXPECT_EQ(field(first, "state"), "success");  // each commit its own
  const std::string metrics = HttpGet(cp_http_, "/metrics");
  EXPECT_GE(
      testing::MetricValue(metrics, R"(gitfleet_notifications_total{result="sent",sink="1"})"), 3)
      << metrics;
  EXPECT_THAT(cp_->Log(), Not(HasSubstr("ghp_0123456789abcdef")));
}

TEST_F(Fleet, PerClusterValuesReachEachClusterAndAMissingValueFailsOnlyItsCluster) {
  git_.Write("apps/web/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-${env}\n  namespace: web\n"
             "data:\n  replicas: \"${replicas:=1}\"\n  region: ${region}\n");
  std::string first = git_.Commit("templated");
  StartControlPlane();
  StartAgent("prod-eu", "env=prod,region=eu");
  StartAgent("staging", "env=staging,region=us");
  StartAgent("bare", "env=dev");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  std::string out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web",
                         "--values=replicas=2", "--cluster-values=env=prod;replicas=5"},
                        &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("staging", "web", first);
  EXPECT_THAT(Read("prod-eu", "web/ConfigMap/web-prod.yaml"), HasSubstr("replicas: \"5\""));
  EXPECT_THAT(Read("prod-eu", "web/ConfigMap/web-prod.yaml"), HasSubstr("region: eu"));
  EXPECT_THAT(Read("staging", "web/ConfigMap/web-staging.yaml"), HasSubstr("replicas: \"2\""));
  std::vector<v1::BundleStatus> bare = Status("bare", "web");
  ASSERT_EQ(bare.size(), 1u);
  EXPECT_EQ(bare[0].sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(bare[0].message(), HasSubstr("${region} has no value"));
  EXPECT_TRUE(Files("bare").empty());

  // Changing the rule's value rolls out to prod only; staging's revision is unchanged.
  std::string staging_revision = Status("staging", "web")[0].applied_revision();
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web", "--values=replicas=2",
             "--cluster-values=env=prod;replicas=7", "--replace"},
            &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("bundle web replaced"));
  EXPECT_THAT(out,
              HasSubstr("\n  --cluster-values: 'env=prod;replicas=5' -> 'env=prod;replicas=7'\n"))
      << "the answer says what the replacement changed";
  EXPECT_TRUE(Eventually([&] {
    return Read("prod-eu", "web/ConfigMap/web-prod.yaml").find("replicas: \"7\"") !=
           std::string::npos;
  })) << cp_->Log();
  ExpectSynced("prod-eu", "web", first);
  EXPECT_EQ(Status("staging", "web")[0].applied_revision(), staging_revision);
  // The cluster whose values do not render holds nothing, so the rollout is not done.
  std::string bundles;
  EXPECT_TRUE(Eventually([&] {
    bundles = Ctl({"bundle", "list", "-o", "json"});
    return bundles.find("\"current_clusters\": 2") != std::string::npos;
  })) << bundles;
  EXPECT_THAT(bundles, HasSubstr("\"variants\": 2"));
  EXPECT_THAT(bundles, HasSubstr("\"target_clusters\": 3"));
  EXPECT_THAT(bundles, Not(HasSubstr("\"rolled_out_time\"")));
  // The history marks the render current whole: each cluster's revision, and the template
  // none runs.
  std::string history = Ctl({"bundle", "history", "web"});
  EXPECT_THAT(history, ::testing::ContainsRegex(
                           "yes +- \\(template: each cluster runs its own values' revision\\)"))
      << history;
  EXPECT_THAT(history, ::testing::ContainsRegex("yes +prod-eu\n")) << history;
  EXPECT_THAT(history, ::testing::ContainsRegex("yes +staging\n")) << history;
}

// A chart moved from Rancher Fleet keeps its values in fleet.yaml, filled in per cluster
// from its labels: each cluster gets its own, and one that lacks a label fails alone.
TEST_F(Fleet, AChartsFleetYamlValuesAreFilledInForEachCluster) {
  const std::string helm = testing::WriteValuesEchoHelm(TempDir("echo-helm"));
  ASSERT_FALSE(helm.empty());
  git_.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
  git_.Write("charts/web/fleet.yaml",
             "helm:\n  releaseName: shop-web\n  values:\n    env: ${ .ClusterLabels.env }\n"
             "    host: \"${ .ClusterName }.example.com\"\n  valuesFiles: [values/region.yaml]\n");
  git_.Write("charts/web/values/region.yaml", "region: global.fleet.clusterLabels.region\n");
  std::string first = git_.Commit("a chart Fleet filled in per cluster");
  StartControlPlane({"--helm=" + helm});
  StartAgent("prod-eu", "env=prod,region=eu");
  StartAgent("bare", "region=us");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  std::string out = Ctl({"bundle", "add", "web", "--source=demo", "--path=charts/web"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("${ } templates filled in per cluster")) << out;
  ExpectSynced("prod-eu", "web", first);
  std::string values;
  for (const std::string& file : Files("prod-eu")) {
    if (absl::StrContains(file, "shop-web")) values = Read("prod-eu", file);
  }
  EXPECT_THAT(values, HasSubstr(".gitfleet-fleet-yaml-values.yaml=env: prod host: "
                                "prod-eu.example.com region: eu |"))
      << absl::StrJoin(Files("prod-eu"), ", ");
  std::vector<v1::BundleStatus> bare = Status("bare", "web");
  ASSERT_EQ(bare.size(), 1u);
  EXPECT_EQ(bare[0].sync_state(), v1::SYNC_STATE_FAILED);
  EXPECT_THAT(bare[0].message(), HasSubstr("env: ${ .ClusterLabels.env }: the cluster has no "
                                           "label env"));
  EXPECT_TRUE(Files("bare").empty());

  // Fleet's other helm layout: the chart in a folder of its own, which fleet.yml (fleet.yaml's
  // other name) names in helm.chart, with values files beside it. Detected as a chart.
  git_.Write("apps/api/fleet.yml",
             "helm:\n  chart: ./chart\n  releaseName: api\n  valuesFiles: [prod.yaml]\n");
  git_.Write("apps/api/prod.yaml", "replicas: 3\n");
  git_.Write("apps/api/chart/Chart.yaml", "apiVersion: v2\nname: api\nversion: 0.1.0\n");
  std::string second = git_.Commit("a chart beside its Fleet options");
  out = Ctl({"bundle", "add", "api", "--source=demo", "--path=apps/api"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("renders the chart in apps/api/chart")) << out;
  ExpectSynced("prod-eu", "api", second);
  EXPECT_THAT(Read("prod-eu", "_cluster/ConfigMap/api.yaml"),
              HasSubstr(".gitfleet-fleet-yaml-values.yaml=replicas: 3 |"));

  // What the chart sees of the clusters, as Argo CD's helm.kubeVersion and apiVersions:
  // rendered again for the same commit.
  out = Ctl({"bundle", "set", "api", "--kube-version=1.29",
             "--api-versions=monitoring.coreos.com/v1,monitoring.coreos.com/v1/ServiceMonitor"},
            &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Read("prod-eu", "_cluster/ConfigMap/api.yaml"),
                             "capabilities: \"kube=1.29 api=monitoring.coreos.com/v1 "
                             "api=monitoring.coreos.com/v1/ServiceMonitor");
  })) << Read("prod-eu", "_cluster/ConfigMap/api.yaml");
  out = Ctl({"bundle", "set", "api", "--api-versions=monitoring coreos"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("is not an API version")) << out;

  // The release the chart was installed as elsewhere (an Argo CD Application's name): the
  // operator's word over fleet.yaml's releaseName.
  out = Ctl({"bundle", "set", "api", "--release=legacy-api"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Read("prod-eu", "_cluster/ConfigMap/legacy-api.yaml"), "replicas: 3");
  })) << Read("prod-eu", "_cluster/ConfigMap/legacy-api.yaml");
  out = Ctl({"bundle", "set", "api", "--release=Legacy_API"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("not a release name helm takes")) << out;

  // A chart Fleet released from GitRepo "fleet.apps", a name no source takes: the source
  // names it, and the release is Fleet's. Another GitRepo name would rename the release:
  // refused until said.
  git_.Write("charts/db/Chart.yaml", "apiVersion: v2\nname: db\nversion: 0.1.0\n");
  git_.Write("charts/db/fleet.yaml", "helm:\n  values:\n    replicas: 2\n");
  std::string third = git_.Commit("a chart Fleet released under its own name");
  const std::string url = "--url=" + git_.url();
  out = Ctl({"source", "add", "fleet-apps", url, "--interval=1s", "--fleet-gitrepo=fleet.apps"},
            &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "db", "--source=fleet-apps", "--path=charts/db"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "db", third);
  auto release_of_db = [&] {
    for (const std::string& file : Files("prod-eu")) {
      if (absl::StartsWith(file, "_cluster/ConfigMap/fleet-apps-charts-db")) return file;
    }
    return std::string();
  };
  EXPECT_THAT(release_of_db(),
              ::testing::MatchesRegex("_cluster/ConfigMap/fleet-apps-charts-db-[0-9a-f]{8}\\.yaml"))
      << absl::StrJoin(Files("prod-eu"), ", ");
  out = Ctl({"source", "add", "fleet-apps", url, "--interval=1s", "--fleet-gitrepo=fleet-apps",
             "--replace"},
            &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("would rename the chart releases of bundles db")) << out;
  out = Ctl({"source", "add", "fleet-apps", url, "--interval=1s", "--fleet-gitrepo=fleet-apps",
             "--replace", "--rename-releases"},
            &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("--fleet-gitrepo: fleet.apps -> fleet-apps")) << out;
  EXPECT_TRUE(Eventually([&] {
    return release_of_db() == "_cluster/ConfigMap/fleet-apps-charts-db.yaml";
  })) << absl::StrJoin(Files("prod-eu"), ", ");
}

// Fleet's helm-kustomize layout, moved as it is: a chart beside the overlays its fleet.yaml
// targets name, each cluster's overlay post-rendering the chart's output (strategic merge
// patches of its objects), in the target's namespace. One bundle.
TEST_F(Fleet, AChartGoesThroughTheKustomizationItsFleetYamlTargetNames) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  const std::string helm = testing::WriteValuesEchoHelm(TempDir("echo-helm"));
  ASSERT_FALSE(helm.empty());
  git_.Write("mc/helm-kustomize/fleet.yaml",
             "namespace: guestbook\n"
             "helm: {chart: ./chart, releaseName: frontend}\n"
             "targetCustomizations:\n"
             "- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n"
             "  kustomize: {dir: overlays/dev}\n"
             "- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
             "  kustomize: {dir: overlays/prod}\n  namespace: guestbook-prod\n");
  git_.Write("mc/helm-kustomize/chart/Chart.yaml",
             "apiVersion: v2\nname: guestbook\nversion: 0.0.0\n");
  for (const char* env : {"dev", "prod"}) {
    const std::string overlay = absl::StrCat("mc/helm-kustomize/overlays/", env, "/");
    git_.Write(overlay + "kustomization.yaml", "patchesStrategicMerge:\n- frontend.yaml\n");
    git_.Write(overlay + "frontend.yaml",
               absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frontend}\n"
                            "data: {tier: ",
                            env, "}\n"));
  }
  std::string first = git_.Commit("Fleet's helm-kustomize example, with the chart beside it");
  // Its chart as the example has it, in a chart repository (on loopback), which the control
  // plane is told to trust.
  testing::ChartRepositoryServer charts(TempDir("charts"));
  for (const char* version : {"0.1.3", "0.2.0"}) {
    ASSERT_TRUE(charts
                    .AddChart("guestbook", version,
                              {{"Chart.yaml", absl::StrCat("apiVersion: v2\nname: guestbook\n"
                                                           "version: ",
                                                           version, "\n")}})
                    .ok());
  }
  if (absl::Status started = charts.Start(); !started.ok()) GTEST_SKIP() << started;
  testing::OciRegistryServer registry(TempDir("registry"));
  ASSERT_TRUE(registry
                  .AddChart("charts/guestbook", "0.3.0",
                            {{"Chart.yaml", "apiVersion: v2\nname: guestbook\nversion: 0.3.0\n"}})
                  .ok());
  if (absl::Status started = registry.Start(); !started.ok()) GTEST_SKIP() << started;
  StartControlPlane({"--helm=" + helm, absl::StrCat("--chart-repositories=", charts.url(), ",",
                                                    registry.url(), "charts/")});
  StartAgent("dev-1", "env=dev");
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  std::string out =
      Ctl({"bundle", "add", "guestbook", "--source=demo", "--path=mc/helm-kustomize"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "list", "-o", "yaml"});
  EXPECT_THAT(out, HasSubstr("the chart goes through the kustomization of the folder, and into "
                             "the namespace, that mc/helm-kustomize/fleet.yaml's "
                             "targetCustomizations dev, prod give the clusters they select"))
      << out;
  ExpectSynced("dev-1", "guestbook", first);
  ExpectSynced("prod-eu", "guestbook", first);
  EXPECT_THAT(Files("dev-1"), ElementsAre("_cluster/ConfigMap/frontend.yaml"));
  const std::string dev = Read("dev-1", "_cluster/ConfigMap/frontend.yaml");
  EXPECT_THAT(dev, HasSubstr("tier: dev"));
  EXPECT_THAT(dev, HasSubstr("chart: guestbook")) << "the chart's output, patched";
  const std::string prod = Read("prod-eu", "_cluster/ConfigMap/frontend.yaml");
  EXPECT_THAT(prod, HasSubstr("tier: prod"));
  EXPECT_THAT(prod, HasSubstr("chart: guestbook"));
  // The chart is a chart whatever is beside it: a change to an overlay reaches its clusters.
  git_.Write("mc/helm-kustomize/overlays/prod/frontend.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frontend}\n"
             "data: {tier: prod-2}\n");
  std::string second = git_.Commit("prod's overlay changes");
  ExpectSynced("prod-eu", "guestbook", second);
  EXPECT_THAT(Read("prod-eu", "_cluster/ConfigMap/frontend.yaml"), HasSubstr("tier: prod-2"));

  git_.Write("mc/helm-repo/fleet.yaml",
             absl::StrCat("helm:\n  repo: ", charts.url(),
                          "\n  chart: guestbook\n  version: '~0.1'\n  releaseName: remote\n"
                          "targetCustomizations:\n"
                          "- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n"
                          "  kustomize: {dir: overlays/dev}\n"
                          // Prod on the newer chart, under a release name of its own.
                          "- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
                          "  helm: {version: 0.2.0, releaseName: remote-next}\n"));
  git_.Write("mc/helm-repo/overlays/dev/kustomization.yaml", "namePrefix: dev-\n");
  std::string third = git_.Commit("the chart from its chart repository");
  out = Ctl({"bundle", "add", "remote", "--source=demo", "--path=mc/helm-repo"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("dev-1", "remote", third);
  ExpectSynced("prod-eu", "remote", third);
  EXPECT_THAT(Read("dev-1", "_cluster/ConfigMap/dev-remote.yaml"), HasSubstr("chart: guestbook"));
  EXPECT_THAT(Read("prod-eu", "_cluster/ConfigMap/remote-next.yaml"),
              HasSubstr("chart: guestbook"));
  out = Ctl({"bundle", "list", "-o", "yaml"});
  EXPECT_THAT(out,
              HasSubstr(absl::StrCat("fetched the chart guestbook 0.1.3 from ", charts.url())));
  EXPECT_THAT(out,
              HasSubstr(absl::StrCat("fetched the chart guestbook 0.2.0 from ", charts.url())));

  // kustomize's helmCharts, as Argo CD and Flux repositories have them: the same chart.
  git_.Write("kustomize-chart/kustomization.yaml",
             absl::StrCat("namePrefix: k-\nhelmCharts:\n- name: guestbook\n  repo: ", charts.url(),
                          "\n  version: 0.2.0\n  releaseName: inflated\n"));
  std::string fourth = git_.Commit("kustomize inflates the chart");
  out = Ctl({"bundle", "add", "inflated", "--source=demo", "--path=kustomize-chart"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("dev-1", "inflated", fourth);
  EXPECT_THAT(Read("dev-1", "_cluster/ConfigMap/k-inflated.yaml"), HasSubstr("chart: guestbook"));

  // The chart in an OCI registry behind an anonymous token, as ghcr.io serves public charts.
  git_.Write("mc/helm-oci/fleet.yaml",
             absl::StrCat("helm: {chart: '", registry.url(), "charts/guestbook', version: '^0.3'",
                          ", releaseName: from-oci}\n"));
  std::string fifth = git_.Commit("the chart from an OCI registry");
  out = Ctl({"bundle", "add", "oci", "--source=demo", "--path=mc/helm-oci"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("dev-1", "oci", fifth);
  EXPECT_THAT(Read("dev-1", "_cluster/ConfigMap/from-oci.yaml"), HasSubstr("chart: guestbook"));
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "yaml"}),
              HasSubstr(absl::StrCat("fetched the chart guestbook 0.3.0 from ", registry.url(),
                                     "charts/guestbook:0.3.0 (sha256 checked)")));
}

// Fleet's multi-cluster kustomize and manifests layouts, moved as they are: one bundle
// each, and each cluster gets the overlay its fleet.yaml target gives it; and its
// single-cluster layout, whose fleet.yaml names the overlay every cluster gets.
TEST_F(Fleet, EachClusterGetsTheOverlaysItsFleetYamlTargetGivesIt) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  git_.Write("mc/kustomize/fleet.yaml",
             "defaultNamespace: shop\ntargetCustomizations:\n"
             "- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n"
             "  kustomize: {dir: overlays/dev}\n"
             "- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
             "  kustomize: {dir: overlays/prod}\n  defaultNamespace: shop-prod\n");
  for (const auto& [path, content] : testing::FleetKustomizeOverlays("mc/kustomize")) {
    git_.Write(path, content);
  }
  std::string first = git_.Commit("Fleet's multi-cluster kustomize example");
  StartControlPlane();
  StartAgent("dev-1", "env=dev");
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  std::string out = Ctl({"bundle", "add", "web", "--source=demo", "--path=mc/kustomize"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("each cluster renders what mc/kustomize/fleet.yaml's "
                             "targetCustomizations dev, prod give it"));
  ExpectSynced("dev-1", "web", first);
  ExpectSynced("prod-eu", "web", first);
  // (These agents write objects as they come; where one that names no namespace goes is
  // the Kubernetes applier's, tested with the controller.)
  EXPECT_THAT(Files("dev-1"), ElementsAre("_cluster/ConfigMap/web.yaml"));
  EXPECT_THAT(Read("dev-1", "_cluster/ConfigMap/web.yaml"), HasSubstr("tier: dev"));
  EXPECT_THAT(Files("prod-eu"), ElementsAre("_cluster/ConfigMap/web.yaml"));
  EXPECT_THAT(Read("prod-eu", "_cluster/ConfigMap/web.yaml"), HasSubstr("tier: prod"));

  // Its multi-cluster manifests layout: plain files, and yaml overlays per target.
  git_.Write("mc/manifests/fleet.yaml",
             "targetCustomizations:\n- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
             "  yaml: {overlays: [production]}\n");
  git_.Write("mc/manifests/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {replicas: \"1\"}\n");
  git_.Write("mc/manifests/overlays/production/cm_patch.yaml", "data: {replicas: \"3\"}\n");
  // A Deployment's container patched by name, as Kubernetes' strategic merge patches it.
  git_.Write("mc/manifests/deploy.yaml",
             "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n"
             "  template:\n    spec:\n      containers:\n"
             "      - {name: app, image: \"app:1\", ports: [{containerPort: 80}]}\n"
             "      - {name: proxy, image: \"proxy:1\"}\n");
  git_.Write("mc/manifests/overlays/production/deploy_patch.yaml",
             "spec:\n  template:\n    spec:\n      containers: [{name: app, image: \"app:2\"}]\n");
  // A subfolder with its own fleet.yml: a bundle of its own, as in Fleet.
  git_.Write("mc/manifests/db/fleet.yml", "defaultNamespace: data\n");
  git_.Write("mc/manifests/db/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\ndata: {replicas: \"1\"}\n");
  std::string second = git_.Commit("Fleet's multi-cluster manifests example");
  out = Ctl({"bundle", "add", "app", "--source=demo", "--path=mc/manifests"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("dev-1", "app", second);
  ExpectSynced("prod-eu", "app", second);
  EXPECT_THAT(Read("dev-1", "_cluster/ConfigMap/app.yaml"), HasSubstr("replicas: \"1\""));
  EXPECT_THAT(Read("prod-eu", "_cluster/ConfigMap/app.yaml"), HasSubstr("replicas: \"3\""));
  const std::string deployment = Read("prod-eu", "_cluster/Deployment/app.yaml");
  EXPECT_THAT(deployment, HasSubstr("app:2"));
  EXPECT_THAT(deployment, HasSubstr("containerPort: 80")) << "merged by name";
  EXPECT_THAT(deployment, HasSubstr("proxy:1")) << "the other container kept";
  EXPECT_THAT(Read("dev-1", "_cluster/Deployment/app.yaml"), HasSubstr("app:1"));
  EXPECT_THAT(Files("dev-1"), Not(::testing::Contains("_cluster/ConfigMap/db.yaml")));
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "yaml"}),
              HasSubstr("left out mc/manifests/db/, 2 files"));
  out = Ctl({"bundle", "add", "db", "--source=demo", "--path=mc/manifests/db"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("dev-1", "db", second);
  EXPECT_THAT(Read("dev-1", "_cluster/ConfigMap/db.yaml"), HasSubstr("replicas: \"1\""));

  // Its single-cluster kustomize layout: fleet.yaml's own kustomize.dir, for every cluster.
  for (const auto& [path, content] : testing::FleetKustomizeOverlays("sc/kustomize")) {
    git_.Write(path, absl::StrReplaceAll(content, {{"name: web", "name: single"}}));
  }
  git_.Write("sc/kustomize/fleet.yaml", "kustomize:\n  dir: overlays/prod\n");
  std::string third = git_.Commit("Fleet's single-cluster kustomize example");
  out = Ctl({"bundle", "add", "single", "--source=demo", "--path=sc/kustomize"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("dev-1", "single", third);
  EXPECT_THAT(Read("dev-1", "_cluster/ConfigMap/single.yaml"), HasSubstr("tier: prod"));
}

// A Flux repository's SOPS-encrypted Secrets reach clusters decrypted, by the control
// plane's age identity and PGP key, for a bundle that says --decrypt=sops; gitfleetctl
// render decrypts them the same way with the keys given to it. (The files are ones SOPS
// itself wrote for Flux's tests.)
TEST_F(Fleet, ASopsEncryptedSecretReachesClustersDecrypted) {
  auto testdata = [](const std::string& name) {
    absl::StatusOr<std::string> text =
        ReadFileAtMost("controlplane/render/testdata/sops/" + name, 1 << 20);
    return text.ok() ? *std::move(text) : "";
  };
  const std::string key_file = root_ + "/age-keys.txt";
  std::ofstream(key_file) << testdata("flux_global.age.txt");
  const std::string pgp_file = root_ + "/pgp-keys.asc";
  std::ofstream(pgp_file) << testdata("flux_pgp.asc");
  git_.Write("apps/db/secret.yaml", testdata("flux_global.yaml"));
  git_.Write("apps/db/pgp-secret.yaml", testdata("flux_pgp.yaml"));  // for a PGP key
  git_.Write("apps/db/cm.yaml", Cm("db"));
  std::string first = git_.Commit("encrypted Secrets");
  StartControlPlane({"--sops-age-key-file=" + key_file, "--sops-pgp-key-file=" + pgp_file});
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  std::string out =
      Ctl({"bundle", "add", "db", "--source=demo", "--path=apps/db", "--decrypt=sops"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "db", first);
  EXPECT_THAT(Read("prod-eu", "default/Secret/global-age-secret.yaml"), HasSubstr("global-value"))
      << absl::StrJoin(Files("prod-eu"), ", ");
  EXPECT_THAT(Read("prod-eu", "default/Secret/global-age-secret.yaml"), Not(HasSubstr("sops")));
  EXPECT_THAT(Read("prod-eu", "_cluster/Secret/pgp.yaml"), HasSubstr("key: value"))
      << "the PGP one, through gpg";
  // Without --decrypt the bundle refuses the document, saying what to do.
  out =
      Ctl({"bundle", "add", "raw", "--source=demo", "--path=apps/db", "--selector=none=x"}, &code);
  EXPECT_THAT(out, HasSubstr("give the bundle --decrypt=sops"));
  // gitfleetctl render, with the identity given to it.
  out = Ctl({"render", "--repo=" + git_.dir(), "--path=apps/db", "--decrypt=sops",
             "--sops-age-key-file=" + key_file, "--sops-pgp-key-file=" + pgp_file},
            &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("key: global-value"));
  out = Ctl({"render", "--repo=" + git_.dir(), "--path=apps/db", "--decrypt=sops"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("--decrypt=sops needs --sops-age-key-file or --sops-pgp-key-file"));
}

TEST_F(Fleet, WrongTokenIsRefusedAndSaysSo) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  std::ofstream(root_ + "/tokens") << "# cluster token\nprod-eu good-token\nintruder other\n";
  StartControlPlane({"--agent-tokens=" + root_ + "/tokens"});
  StartAgent("prod-eu", "env=prod", "good-token");
  Agent& bad = StartAgent("intruder", "env=prod", "guessed");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);

  // The agent hears only that it was refused; which of the reasons stays in the control
  // plane's log.
  EXPECT_FALSE(
      bad.process->WaitForLog("refused this agent: .*unknown cluster, or missing or wrong token")
          .empty())
      << bad.process->Log();
  EXPECT_THAT(bad.process->Log(), HasSubstr("(check --token-file=" + root_ + "/token-intruder)"));
  EXPECT_TRUE(Eventually([&] {
    return CpMetric("gitfleet_agent_rejections_total{reason=\"unauthenticated\"}") >= 2;
  }));
  EXPECT_EQ(cp_->CountInLog("claiming cluster intruder: wrong token"), 1) << "logged once";
  EXPECT_THAT(Files("intruder"), IsEmpty());
  // Registered (it is in --agent-tokens), never connected.
  EXPECT_THAT(Ctl({"cluster", "list"}), ::testing::ContainsRegex("intruder +yes +no +- +- +"));
  // Counted so, every 10 s; and prod-eu as away once its agent is gone.
  EXPECT_TRUE(Eventually([&] {
    return CpMetric("gitfleet_clusters{state=\"connected\"}") == 1 &&
           CpMetric("gitfleet_clusters{state=\"never_connected\"}") == 1;
  }));
  // Where the cluster's operator looks: its agent refused, when and why.
  auto line_of = [&](const std::string& cluster) {
    for (absl::string_view line : absl::StrSplit(Ctl({"cluster", "list"}), '\n')) {
      if (absl::StartsWith(line, cluster + " ")) return std::string(line);
    }
    return std::string();
  };
  EXPECT_THAT(line_of("intruder"), ::testing::ContainsRegex("agent refused at [^ ]+: wrong token"));
  EXPECT_THAT(line_of("prod-eu"), Not(HasSubstr("refused")));

  // A token changed in the file (a rotation) refuses prod-eu's agent until it has the new
  // one: shown, logged once, and gone once the agent is in again.
  std::ofstream(root_ + "/tokens") << "prod-eu new-token\nintruder other\n";
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(line_of("prod-eu"), "agent refused at ") &&
           absl::StrContains(line_of("prod-eu"), ": wrong token");
  })) << line_of("prod-eu");
  EXPECT_THAT(line_of("prod-eu"), ::testing::ContainsRegex("^prod-eu +yes +no "));
  ASSERT_TRUE(PosixFileSystem().WriteFileAtomically(root_ + "/token-prod-eu", "new-token\n").ok());
  EXPECT_TRUE(Eventually(
      [&] { return std::regex_search(line_of("prod-eu"), std::regex("^prod-eu +yes +yes ")); },
      absl::Seconds(45)))
      << line_of("prod-eu");
  EXPECT_THAT(line_of("prod-eu"), Not(HasSubstr("refused")));
  EXPECT_EQ(cp_->CountInLog("claiming cluster prod-eu: wrong token"), 1);
  // Refused again later: told again (once).
  std::ofstream(root_ + "/tokens") << "prod-eu newer-token\nintruder other\n";
  EXPECT_TRUE(
      Eventually([&] { return cp_->CountInLog("claiming cluster prod-eu: wrong token") == 2; }));

  agents_["prod-eu"].process->Kill(SIGKILL);
  EXPECT_TRUE(Eventually([&] {
    return CpMetric("gitfleet_clusters{state=\"disconnected\"}") == 1 &&
           CpMetric("gitfleet_clusters{state=\"connected\"}") == 0;
  })) << HttpGet(cp_http_, "/metrics");
}

// Removal is an explicit act: neither a bundle's new selector nor a cluster's new labels
// take a bundle off clusters that hold it unless the operator says so.
TEST_F(Fleet, ANewSelectorOrNewLabelsRemoveABundleOnlyWithAllowRemoval) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  open_fleet_ = false;  // the control plane owns the labels
  std::ofstream(root_ + "/tokens") << "prod-eu t-eu env=prod,region=eu\n"
                                      "prod-us t-us env=prod,region=us\n";
  StartControlPlane({"--agent-tokens=" + root_ + "/tokens"});
  StartAgent("prod-eu", "", "t-eu");
  StartAgent("prod-us", "", "t-us");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("prod-us", "web", first);
  const std::string web_file = "shop/ConfigMap/a.yaml";

  // A selector that leaves prod-us is refused, naming it; nothing changes.
  int code = 0;
  std::string out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web",
                         "--selector=env=prod,region=eu", "--replace"},
                        &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(out, HasSubstr("the new --selector no longer matches 1 cluster that holds it "
                             "(prod-us); replacing it would remove it from them, pruning its "
                             "objects there. Replace it with --allow-removal"));
  EXPECT_THAT(Ctl({"bundle", "list"}), ::testing::ContainsRegex("web +demo +apps/web +plain +"
                                                                "env=prod +2/2"));
  // One that keeps every cluster that holds it needs nothing.
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web",
             "--selector=env in (prod,dev)", "--replace"},
            &code);
  EXPECT_EQ(code, 0) << out;

  // Labels that leave web are refused too, naming it, and prod-eu keeps it.
  out = Ctl({"cluster", "label", "prod-eu", "env=staging"}, &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("cluster \"prod-eu\": these labels no longer match bundle web, "
                             "which it holds; setting them would remove it from the cluster"));
  EXPECT_THAT(Ctl({"cluster", "list"}), ::testing::ContainsRegex("prod-eu +yes +yes +"
                                                                 "env=prod,region=eu"));
  // With --allow-removal they are set, and web (only) leaves prod-eu, its objects pruned.
  out = Ctl({"cluster", "label", "prod-eu", "env=staging", "--allow-removal"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] {
    return Files("prod-eu") == std::vector<std::string>{"_cluster/Namespace/shop.yaml"};
  })) << ::testing::PrintToString(Files("prod-eu"));
  EXPECT_FALSE(
      cp_->WaitForLog("cluster prod-eu: its labels no longer match web, which it holds").empty());
  EXPECT_FALSE(cp_->WaitForLog("LabelCluster prod-eu labels=env=staging allow_removal").empty())
      << "the audit line says the removal was allowed";

  // A selector replaced with --allow-removal takes web off prod-us.
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web",
             "--selector=env=prod,region=eu", "--replace", "--allow-removal"},
            &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] {
    return Files("prod-us") == std::vector<std::string>{"_cluster/Namespace/shop.yaml"};
  })) << ::testing::PrintToString(Files("prod-us"));
}

// `bundle set` changes only the flags given; the rest of the definition stays, and the
// answer says what changed.
TEST_F(Fleet, BundleSetChangesOnlyTheFlagsGiven) {
  SyncedFleet();
  int code = 0;
  std::string out =
      Ctl({"bundle", "set", "web", "--partition=env=prod", "--progress-deadline=1m"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("bundle web replaced"));
  EXPECT_THAT(out, HasSubstr("\n  --partition: (none) -> env=prod\n"));
  EXPECT_THAT(out, HasSubstr("\n  --progress-deadline: 10m -> 1m\n"));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3) << out;
  EXPECT_THAT(Ctl({"bundle", "list"}),
              ::testing::ContainsRegex("web +demo +apps/web +plain +env=prod +1/1"))
      << "path and selector as they were";
  EXPECT_THAT(Ctl({"rollout", "status", "web"}), HasSubstr("1 env=prod"));

  out = Ctl({"bundle", "set", "web", "--partition=env=prod"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "bundle web unchanged\n");
  out = Ctl({"bundle", "set", "web", "--paced"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("\n  --paced: false -> true\n"));
  // Partitions go, and the deadline with them (the control plane refuses one without).
  out = Ctl({"bundle", "set", "web", "--partition="}, &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("--paced and --progress-deadline need partitions"));
  out = Ctl({"bundle", "set", "web", "--partition=", "--progress-deadline=", "--paced=false",
             "--values=a=1"},
            &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("\n  --values: (none) -> a=1\n  --partition: env=prod -> (none)\n"
                             "  --paced: true -> false\n  --progress-deadline: 1m -> 10m\n"));

  out = Ctl({"bundle", "set", "nope", "--path=x"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("NOT_FOUND: bundle nope not found"));
  // It reads the one bundle by name: the next one after a missing name is not it.
  out = Ctl({"bundle", "set", "we", "--path=x"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("NOT_FOUND: bundle we not found"));
  out = Ctl({"bundle", "set", "web"}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("bundle set needs a flag to change"));
  // A selector that leaves a cluster holding it needs --allow-removal here too.
  out = Ctl({"bundle", "set", "web", "--selector=env=dev"}, &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("--allow-removal"));
}

// The names in `text` that look like gitfleet metrics: after `prefix` (a table row's "| `"),
// or anywhere when it is empty.
std::set<std::string> MetricNames(const std::string& text, const std::string& prefix) {
  std::set<std::string> names;
  static const std::regex kName(R"(gitfleet_[a-z0-9_]+)");
  for (std::sregex_iterator it(text.begin(), text.end(), kName), end; it != end; ++it) {
    const size_t at = it->position();
    if (at >= prefix.size() && text.compare(at - prefix.size(), prefix.size(), prefix) == 0) {
      names.insert(it->str());
    }
  }
  return names;
}

// deploy/grafana/gitfleet.json: its panels' queries, and its variables' label_values()
// queries, each with the variables as a fleet's Prometheus would see them filled in.
struct DashboardQueries {
  std::vector<std::string> exprs;
  std::vector<std::string> variables;  // label_values(SELECTOR, LABEL)
};
DashboardQueries ReadDashboard(const nlohmann::json& dashboard) {
  DashboardQueries out;
  auto fill = [](std::string expr) {
    return absl::StrReplaceAll(expr, {{"$controlplane_job", "gitfleet-controlplane"},
                                      {"$agent_job", "gitfleet-agent"},
                                      {"$bundle", ".*"},
                                      {"$__rate_interval", "1m"}});
  };
  for (const nlohmann::json& panel : dashboard.value("panels", nlohmann::json::array())) {
    for (const nlohmann::json& target : panel.value("targets", nlohmann::json::array())) {
      out.exprs.push_back(fill(target.value("expr", "")));
    }
  }
  for (const nlohmann::json& variable :
       dashboard["templating"].value("list", nlohmann::json::array())) {
    if (variable.value("type", "") == "query") {
      out.variables.push_back(fill(variable["query"].value("query", "")));
    }
  }
  return out;
}

// Prometheus itself (Debian's, 2.42) scrapes both daemons as deploy/prometheus has it: each
// target is up, every gitfleet family reaches its storage, and the alert rules evaluate
// without an error against real series (what promtool's static checks cannot see).
TEST_F(Fleet, PrometheusScrapesBothDaemonsAndEvaluatesTheAlertRules) {
  if (access("/usr/bin/prometheus", X_OK) != 0) GTEST_SKIP() << "prometheus is not installed";
  git_.Write("apps/web/a.yaml", Cm("a"));
  const std::string first = git_.Commit("first");
  StartControlPlane();
  StartAgent("prod-eu", "env=prod");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  const std::string dir = TempDir("prometheus");
  char rules[PATH_MAX];
  ASSERT_NE(realpath("deploy/prometheus/alerts.yaml", rules), nullptr);
  std::ofstream(dir + "/prometheus.yml") << absl::StrCat(
      "global: {scrape_interval: 1s, evaluation_interval: 1s}\n", "rule_files: ['", rules,
      "']\nscrape_configs:\n", "- job_name: gitfleet-controlplane\n",
      "  static_configs: [{targets: ['127.0.0.1:", cp_http_, "']}]\n",
      "- job_name: gitfleet-agent\n",
      "  static_configs: [{targets: ['127.0.0.1:", agents_["prod-eu"].http, "']}]\n");
  const int port = testing::FreePort();
  ASSERT_GT(port, 0);
  Process prometheus(
      "/usr/bin/prometheus",
      {"--config.file=" + dir + "/prometheus.yml", "--storage.tsdb.path=" + dir + "/data",
       absl::StrCat("--web.listen-address=127.0.0.1:", port)},
      dir + "/prometheus.log");
  // Through curl: Prometheus keeps connections open and answers in chunks.
  auto query = [&](const std::string& path, const std::string& match = "") {
    std::string body;
    const int code = ::gitfleet::testing::Run(
        absl::StrCat("curl -sf -m 5 --get 'http://127.0.0.1:", port, path, "'",
                     match.empty() ? "" : " --data-urlencode 'match[]=" + match + "'"),
        &body);
    return code == 0 ? nlohmann::json::parse(body, nullptr, false) : nlohmann::json();
  };
  // Both targets up, after a scrape or two.
  nlohmann::json targets;
  const bool up = testing::Eventually(
      [&] {
        targets = query("/api/v1/targets");
        if (!targets.is_object()) return false;
        const nlohmann::json& active = targets["data"]["activeTargets"];
        return active.is_array() && active.size() == 2 &&
               std::all_of(active.begin(), active.end(),
                           [](const nlohmann::json& t) { return t.value("health", "") == "up"; });
      },
      absl::Seconds(30));
  ASSERT_TRUE(up) << targets.dump() << "\n" << prometheus.Log();
  // Every family a scrape shows is in Prometheus's storage, for the job that exports it.
  for (const auto& [job, port_of] : std::vector<std::pair<std::string, int>>{
           {"gitfleet-controlplane", cp_http_}, {"gitfleet-agent", agents_["prod-eu"].http}}) {
    const std::string text = HttpGet(port_of, "/metrics");
    std::set<std::string> sampled;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      if (absl::StartsWith(line, "gitfleet_")) {
        sampled.emplace(line.substr(0, line.find_first_of("{ ")));
      }
    }
    ASSERT_GT(sampled.size(), 5u) << job;
    nlohmann::json names;
    const std::string match = absl::StrCat("{job=\"", job, "\"}");  // no binding in a lambda
    ASSERT_TRUE(testing::Eventually([&] {
      names = query("/api/v1/label/__name__/values", match);
      if (!names.is_object() || !names["data"].is_array()) return false;
      std::set<std::string> stored;
      for (const nlohmann::json& name : names["data"]) stored.insert(name.get<std::string>());
      return std::includes(stored.begin(), stored.end(), sampled.begin(), sampled.end());
    })) << job
        << ": " << names.dump();
  }
  // Every alert rule evaluated, none with an error.
  nlohmann::json groups;
  ASSERT_TRUE(testing::Eventually(
      [&] {
        groups = query("/api/v1/rules");
        if (!groups.is_object()) return false;
        int rules = 0;
        for (const nlohmann::json& group : groups["data"]["groups"]) {
          for (const nlohmann::json& rule : group["rules"]) {
            if (rule.value("lastEvaluation", "").rfind("0001-", 0) == 0) return false;
            ++rules;
          }
        }
        return rules >= 6;
      },
      absl::Seconds(30)))
      << groups.dump();
  for (const nlohmann::json& group : groups["data"]["groups"]) {
    for (const nlohmann::json& rule : group["rules"]) {
      EXPECT_EQ(rule.value("health", ""), "ok")
          << rule.value("name", "") << ": " << rule.value("lastError", "");
    }
  }
  // The Grafana dashboard: every panel's query runs without an error against these series,
  // most find some, and each variable lists values.
  absl::StatusOr<std::string> dashboard_text =
      PosixFileSystem().ReadFile("deploy/grafana/gitfleet.json");
  ASSERT_TRUE(dashboard_text.ok()) << dashboard_text.status();
  const DashboardQueries dashboard =
      ReadDashboard(nlohmann::json::parse(*dashboard_text, nullptr, false));
  ASSERT_GE(dashboard.exprs.size(), 30u);
  auto evaluate = [&](const std::string& expr) {
    std::string body;
    const int code =
        ::gitfleet::testing::Run(absl::StrCat("curl -s -m 5 --get 'http://127.0.0.1:", port,
                                              "/api/v1/query' --data-urlencode 'query=", expr, "'"),
                                 &body);
    return code == 0 ? nlohmann::json::parse(body, nullptr, false) : nlohmann::json();
  };
  // Rates need two scrapes in their window: a few seconds after the first.
  size_t found = 0;
  std::vector<std::string> empty;
  testing::Eventually(
      [&] {
        found = 0;
        empty.clear();
        for (const std::string& expr : dashboard.exprs) {
          const nlohmann::json answer = evaluate(expr);
          if (!answer.is_object() || answer.value("status", "") != "success") {
            ADD_FAILURE() << expr << ": " << answer.dump();
            return true;
          }
          if (answer["data"].value("result", nlohmann::json::array()).empty()) {
            empty.push_back(expr);
          } else {
            ++found;
          }
        }
        return found >= dashboard.exprs.size() / 2;
      },
      absl::Seconds(20));
  EXPECT_GE(found, dashboard.exprs.size() / 2)
      << "most panels show something; these show nothing:\n"
      << absl::StrJoin(empty, "\n");
  static const std::regex kLabelValues(R"re(^label_values\((.*), *([a-z_]+)\)$)re");
  ASSERT_EQ(dashboard.variables.size(), 3u);
  for (const std::string& variable : dashboard.variables) {
    std::smatch parts;
    ASSERT_TRUE(std::regex_match(variable, parts, kLabelValues)) << variable;
    const nlohmann::json values =
        query(absl::StrCat("/api/v1/label/", parts[2].str(), "/values"), parts[1].str());
    ASSERT_TRUE(values.is_object()) << variable;
    EXPECT_FALSE(values.value("data", nlohmann::json::array()).empty()) << variable;
  }
}

TEST_F(Fleet, AlertRulesAndTheDocsNameTheMetricsThatAreExported) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  std::string first = git_.Commit("first");
  std::ofstream(root_ + "/webhook-secret") << "a-webhook-secret-of-some-length\n";
  // A notification sink, so its series are there too (no one listens: they are tried).
  std::ofstream(root_ + "/notify") << "http://127.0.0.1:" << testing::FreePort() << "/\n";
  StartControlPlane(
      {"--webhook-secret-file=" + root_ + "/webhook-secret", "--notify-file=" + root_ + "/notify"});
  StartAgent("prod-eu", "env=prod");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  std::set<std::string> exported;  // every family has a HELP line, samples or not
  const std::string dir = TempDir("metrics");
  const std::vector<std::string> scrapes = {HttpGet(cp_http_, "/metrics"),
                                            HttpGet(agents_["prod-eu"].http, "/metrics")};
  for (const std::string& text : scrapes) {
    std::set<std::string> names = MetricNames(text, "# HELP ");
    exported.insert(names.begin(), names.end());
    // Prometheus's own linter (units, suffixes, help) over what a scrape reads.
    ASSERT_TRUE(PosixFileSystem().WriteFileAtomically(dir + "/metrics.txt", text).ok());
    std::string lint;
    EXPECT_EQ(::gitfleet::testing::Run("promtool check metrics < " + dir + "/metrics.txt", &lint),
              0)
        << lint << "(promtool comes from Debian's prometheus package: tools/setup)";
  }
  ASSERT_GT(exported.size(), 20u);
  // What the dashboard charts with rate() is a series from the start (0 before a hit).
  EXPECT_GE(testing::MetricValue(scrapes[0], "gitfleet_render_cache_hits_total"), 0) << scrapes[0];
  absl::StatusOr<std::string> alerts = PosixFileSystem().ReadFile("deploy/prometheus/alerts.yaml");
  ASSERT_TRUE(alerts.ok()) << alerts.status();
  std::set<std::string> alerted;
  for (const std::string& name : MetricNames(*alerts, "")) {
    // A PromQL selector may name a histogram's series.
    alerted.insert(std::regex_replace(name, std::regex("_(bucket|sum|count)$"), ""));
  }
  EXPECT_GE(alerted.size(), 6u);
  // What an alert counts with increase() has its series before the first count (nothing
  // here has failed, been refused or given up yet): Prometheus cannot see the increase of
  // a series born at 1, so the first failure after each start would not fire it.
  static const std::regex kIncrease(R"re(increase\((gitfleet_[a-z0-9_]+)\{([^}]*)\}\[)re");
  int increases = 0;
  for (std::sregex_iterator it(alerts->begin(), alerts->end(), kIncrease), end; it != end;
       ++it, ++increases) {
    const std::string name = (*it)[1];
    std::vector<std::string> matchers = absl::StrSplit((*it)[2].str(), ',', absl::SkipEmpty());
    bool found = false;
    for (const std::string& text : scrapes) {
      for (absl::string_view line : absl::StrSplit(text, '\n')) {
        if (!absl::StartsWith(line, name + "{")) continue;
        bool all = true;
        for (const std::string& matcher : matchers) {
          ASSERT_THAT(matcher, ::testing::MatchesRegex(R"re( *[a-z_]+="[^"]*" *)re"))
              << "a matcher this check does not read, in " << it->str();
          all = all && absl::StrContains(line, absl::StripAsciiWhitespace(matcher));
        }
        found = found || all;
      }
    }
    EXPECT_TRUE(found) << "alerts.yaml counts " << it->str()
                       << " but no such series is exported before its first count";
  }
  EXPECT_GE(increases, 4);
  for (const std::string& name : alerted) {
    EXPECT_TRUE(exported.count(name) > 0)
        << "alerts.yaml names " << name << ", which nothing exports";
  }
  // The Grafana dashboard names only what is exported, and is a dashboard Grafana loads:
  // panels with unique ids on its 24-column grid, each query with its refId and the
  // dashboard's data source.
  absl::StatusOr<std::string> dashboard_text =
      PosixFileSystem().ReadFile("deploy/grafana/gitfleet.json");
  ASSERT_TRUE(dashboard_text.ok()) << dashboard_text.status();
  const nlohmann::json dashboard = nlohmann::json::parse(*dashboard_text, nullptr, false);
  ASSERT_TRUE(dashboard.is_object()) << "deploy/grafana/gitfleet.json is not JSON";
  EXPECT_EQ(dashboard.value("uid", ""), "gitfleet");
  std::set<int> ids;
  for (const nlohmann::json& panel : dashboard["panels"]) {
    const std::string title = panel.value("title", "");
    EXPECT_TRUE(ids.insert(panel.value("id", 0)).second) << "a second panel id: " << title;
    const nlohmann::json& grid = panel["gridPos"];
    EXPECT_LE(grid.value("x", 99) + grid.value("w", 99), 24) << title;
    if (panel.value("type", "") == "row") continue;
    EXPECT_EQ(panel["datasource"].value("uid", ""), "${datasource}") << title;
    EXPECT_FALSE(panel.value("description", "").empty()) << title;
    std::set<std::string> refs;
    for (const nlohmann::json& target : panel["targets"]) {
      EXPECT_TRUE(refs.insert(target.value("refId", "")).second) << title;
      EXPECT_FALSE(target.value("expr", "").empty()) << title;
    }
    EXPECT_FALSE(refs.empty()) << title;
  }
  const DashboardQueries queries = ReadDashboard(dashboard);
  std::set<std::string> charted;
  for (const std::string& expr : queries.exprs) {
    for (const std::string& name : MetricNames(expr, "")) {
      charted.insert(std::regex_replace(name, std::regex("_(bucket|sum|count)$"), ""));
    }
  }
  EXPECT_GE(charted.size(), 30u);
  for (const std::string& name : charted) {
    EXPECT_TRUE(exported.count(name) > 0)
        << "deploy/grafana/gitfleet.json charts " << name << ", which nothing exports";
  }
  absl::StatusOr<std::string> docs = PosixFileSystem().ReadFile("docs/operations.md");
  ASSERT_TRUE(docs.ok()) << docs.status();
  const std::set<std::string> documented = MetricNames(*docs, "| `");
  for (const std::string& name : exported) {
    EXPECT_TRUE(documented.count(name) > 0)
        << name << " is exported but not in docs/operations.md's metric tables";
  }
  for (const std::string& name : documented) {
    EXPECT_TRUE(exported.count(name) > 0)
        << "docs/operations.md lists " << name << ", which nothing exports";
  }
}

TEST_F(Fleet, AnAgentRereadsItsTokenFileBeforeEachConnection) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  std::ofstream(root_ + "/tokens") << "prod-eu new-token env=prod\n";
  open_fleet_ = false;  // the control plane's defaults: only registered clusters
  StartControlPlane({"--agent-tokens=" + root_ + "/tokens"});
  std::string token_file = root_ + "/agent-token";
  std::ofstream(token_file) << "old-token\n";
  Agent& agent = StartAgent("prod-eu", "env=prod", "", {"--token-file=" + token_file});
  AddSourceAndBundles();
  EXPECT_FALSE(agent.process->WaitForLog("refused this agent").empty()) << agent.process->Log();
  EXPECT_THAT(agent.process->Log(), HasSubstr("token travels in clear"));
  // The mounted Secret is rotated: the running agent picks the new token up.
  std::ofstream(token_file + ".tmp") << "new-token\n";
  ASSERT_EQ(rename((token_file + ".tmp").c_str(), token_file.c_str()), 0);
  ExpectSynced("prod-eu", "web", first);
  EXPECT_FALSE(agent.process->WaitForLog("token changed in").empty());

  // The control plane's own file is edited (a leaked token replaced), with no restart:
  // the old token stops working and the connected agent is cut off, until its own file
  // has the new one.
  auto write_tokens = [&](const std::string& text) {
    std::ofstream(root_ + "/tokens.new") << text;
    ASSERT_EQ(rename((root_ + "/tokens.new").c_str(), (root_ + "/tokens").c_str()), 0);
  };
  write_tokens("prod-eu newer-token env=prod\n");
  EXPECT_FALSE(
      agent.process->WaitForLog("token changed in the control plane's --agent-tokens").empty())
      << agent.process->Log();
  std::ofstream(token_file + ".tmp") << "newer-token\n";
  ASSERT_EQ(rename((token_file + ".tmp").c_str(), token_file.c_str()), 0);
  git_.Write("apps/web/b.yaml", Cm("b"));
  std::string second = git_.Commit("second");
  ExpectSynced("prod-eu", "web", second);

  // A move to a new token without refusals: a second line for the cluster makes both
  // tokens work (the agent stays, and cluster list says it is on the earlier line's);
  // its own file is given the new one; removing the earlier line then closes its stream,
  // and it is in again at once with the token its file holds.
  const std::string rejections = "gitfleet_agent_rejections_total{reason=\"unauthenticated\"}";
  const double refused_before = CpMetric(rejections);
  // printf %s newest-token | sha256sum
  const std::string newest =
      "sha256:af689ced15f77131865ff772319111ea3a33bbd8398043c5fda06f91dd14b31a";
  write_tokens("prod-eu newer-token env=prod\nprod-eu " + newest + " env=prod\n");
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"cluster", "list"}), "earlier of its two --agent-tokens lines");
  })) << Ctl({"cluster", "list"});
  EXPECT_EQ(ConnectedClusters(), 1);
  std::ofstream(token_file + ".tmp") << "newest-token\n";
  ASSERT_EQ(rename((token_file + ".tmp").c_str(), token_file.c_str()), 0);
  write_tokens("prod-eu " + newest + " env=prod\n");
  EXPECT_FALSE(cp_->WaitForLog("prod-eu's earlier token was removed").empty()) << cp_->Log();
  git_.Write("apps/web/c.yaml", Cm("c"));
  std::string third = git_.Commit("third");
  ExpectSynced("prod-eu", "web", third);
  EXPECT_EQ(CpMetric(rejections), refused_before) << "never refused on the way";
  EXPECT_THAT(Ctl({"cluster", "list"}), Not(HasSubstr("--agent-tokens lines")));

  // An edit that does not parse keeps what is in force; a removed line retires the
  // cluster, and what it holds stays applied.
  write_tokens("prod-eu\n");
  EXPECT_FALSE(cp_->WaitForLog("tokens:1: want \"cluster token \\[labels\\]\"").empty());
  EXPECT_EQ(ConnectedClusters(), 1);
  const double refused = CpMetric(rejections);
  write_tokens("# prod-eu is retired\n");
  EXPECT_FALSE(
      agent.process->WaitForLog("this cluster was removed from the control plane's").empty());
  // Its agent comes back and is refused.
  EXPECT_TRUE(Eventually([&] { return CpMetric(rejections) > refused; }));
  EXPECT_EQ(ConnectedClusters(), 0);
  EXPECT_THAT(Files("prod-eu"), ::testing::Contains("shop/ConfigMap/b.yaml"));
}

// A repository that keeps app settings and tooling files beside its manifests: the bundle
// fails naming the --exclude that leaves such a file out; `bundle set --exclude` does, and
// a .fleetignore or .sourceignore line does for what the repository's own authors leave out.
TEST_F(Fleet, APlainBundleReadsTheFilesItsPatternsAndFleetIgnoreLeave) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/web/package.json", R"({"name": "web", "private": true})");
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  const std::string first = git_.Commit("first");
  StartControlPlane();
  StartAgent("prod-eu", "env=prod");
  AddSourceAndBundles();
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"bundle", "list"}),
                             "leave it out with the bundle's --exclude=package.json");
  })) << Ctl({"bundle", "list"});
  int code;
  std::string out = Ctl({"bundle", "set", "web", "--exclude=*.json"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("--exclude: (none) -> *.json"));
  ExpectSynced("prod-eu", "web", first);
  EXPECT_THAT(Files("prod-eu"), Contains("shop/ConfigMap/a.yaml"));

  git_.Write("apps/web/tools/lint.yaml", "rules: {line-length: 120}\n");
  git_.Write("apps/web/.fleetignore", "tools/\n");
  std::string third = git_.Commit("a linter config, ignored");
  ExpectSynced("prod-eu", "web", third);
  out = Ctl({"bundle", "list", "-o", "json"});
  EXPECT_THAT(out, HasSubstr("skipped apps/web/tools/lint.yaml: ignored by apps/web/.fleetignore: "
                             "tools/"));
  // Flux's .sourceignore, at the repository root, above the bundle's folder.
  git_.Write("apps/web/scripts/ci.yaml", "steps: []\n");
  git_.Write(".sourceignore", "# CI only\nscripts/\n");
  third = git_.Commit("a CI config, ignored for Flux");
  ExpectSynced("prod-eu", "web", third);
  out = Ctl({"bundle", "list", "-o", "json"});
  EXPECT_THAT(out, HasSubstr("skipped apps/web/scripts/ci.yaml: ignored by .sourceignore: "
                             "scripts/"));

  // A folder Fleet rendered per cluster group: a cluster no target selects renders it as it
  // is, and adding its bundle says so.
  git_.Write("apps/web/fleet.yaml",
             "targetCustomizations:\n- name: eu\n  clusterSelector: {matchLabels: {region: eu}}\n"
             "  kustomize: {dir: overlays/eu}\n");
  third = git_.Commit("Fleet's targets");
  ExpectSynced("prod-eu", "web", third);
  out = Ctl({"bundle", "set", "web", "--exclude=*.json,tools/"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("\nnote: each cluster renders what apps/web/fleet.yaml's "
                             "targetCustomizations eu give it"));
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web", "--selector=env=prod",
             "--exclude=../up", "--replace"},
            &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_THAT(out, HasSubstr("--exclude pattern \"../up\""));
}

TEST_F(Fleet, SyncsFromGitDaemonAndReportsUnreachableSources) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  std::unique_ptr<Process> daemon;
  const int port = StartGitDaemon(&daemon);
  ASSERT_GT(port, 0) << "git daemon did not start";
  StartControlPlane();
  StartAgent("prod-eu", "env=prod");
  int code;
  std::string out = Ctl({"source", "add", "demo",
                         absl::StrCat("--url=git://127.0.0.1:", port, "/repo"), "--interval=1s"},
                        &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_EQ((Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code), code), 0);
  ExpectSynced("prod-eu", "web", first);

  out = Ctl({"source", "add", "gone", "--url=git://127.0.0.1:1/nothing"}, &code);
  EXPECT_EQ(code, 0) << "the source is recorded; the error is visible on it";
  EXPECT_THAT(out, HasSubstr("warning: cannot fetch git://127.0.0.1:1/nothing"));
  out = Ctl({"source", "add", "badref", "--url=" + git_.url(), "--ref=no-such-branch"}, &code);
  EXPECT_THAT(out, HasSubstr("ref \"no-such-branch\" not found"));
  EXPECT_THAT(Ctl({"source", "list"}), HasSubstr("no-such-branch"));
  out = Ctl({"sync", "gone"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("cannot fetch"));

  // Removed sources leave no clone behind in the data directory.
  auto clones = [&] {
    std::string listed;
    ::gitfleet::testing::Run("ls -d '" + data_dir_ + "'/git/*.git 2>/dev/null | wc -l", &listed);
    return std::string(absl::StripAsciiWhitespace(listed));
  };
  // demo's, badref's, and the empty one gone's failed fetch made.
  EXPECT_EQ(clones(), "3");
  ASSERT_EQ((Ctl({"bundle", "remove", "web"}, &code), code), 0);
  for (const char* source : {"demo", "gone", "badref"}) {
    out = Ctl({"source", "remove", source}, &code);
    ASSERT_EQ(code, 0) << out;
  }
  EXPECT_TRUE(Eventually([&] { return clones() == "0"; }, absl::Seconds(70))) << clones();
}

// A folder moved from Rancher Fleet whose fleet.yaml says keepResources: removing the bundle
// leaves its objects where they run, while another bundle's are pruned.
TEST_F(Fleet, AFleetBundleThatKeepsItsResourcesLeavesThemWhenRemoved) {
  git_.Write("apps/web/fleet.yaml", "keepResources: true\n");
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/api/b.yaml", Cm("b"));
  const std::string first = git_.Commit("first");
  StartControlPlane();
  StartAgent("prod-eu", "env=prod");
  int code;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  ASSERT_EQ((Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code), code), 0);
  ASSERT_EQ((Ctl({"bundle", "add", "api", "--source=demo", "--path=apps/api"}, &code), code), 0);
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("prod-eu", "api", first);
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "yaml"}), HasSubstr("keepResources asks"));
  ASSERT_EQ((Ctl({"bundle", "remove", "web"}, &code), code), 0);
  ASSERT_EQ((Ctl({"bundle", "remove", "api"}, &code), code), 0);
  EXPECT_TRUE(Eventually([&] {
    return !absl::c_linear_search(Files("prod-eu"), "shop/ConfigMap/b.yaml");
  })) << "api's objects are pruned";
  EXPECT_THAT(Files("prod-eu"), Contains("shop/ConfigMap/a.yaml")) << "web's stay";
}

// A repository that keeps a large manifest in Git LFS (its .lfsconfig naming its LFS
// server), served by git daemon: without --lfs the bundle fails naming the pointer and the
// flag; with it, the manifest reaches the cluster, and a new version of it too.
TEST_F(Fleet, ASourceWithLfsReadsFilesKeptInGitLfs) {
  LfsServer lfs(root_ + "/lfs");
  const std::string big_1 = Cm("big", "1");
  const std::string pointer_1 = lfs.AddObject(big_1);
  const std::string big_2 = Cm("big", "2");
  const std::string pointer_2 = lfs.AddObject(big_2);
  ASSERT_TRUE(lfs.Start().ok());
  git_.Write(".lfsconfig", absl::StrCat("[lfs]\n\turl = ", lfs.url(), "repo.git/info/lfs\n"));
  git_.Write(".gitattributes", "apps/web/big.yaml filter=lfs diff=lfs merge=lfs -text\n");
  git_.Write("apps/web/big.yaml", pointer_1);
  git_.Write("apps/web/a.yaml", Cm("a"));
  const std::string first = git_.Commit("a manifest in LFS");
  std::unique_ptr<Process> daemon;
  const std::string url = StartWebFromGitDaemon(&daemon);
  ASSERT_FALSE(url.empty());
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"bundle", "list"}),
                             "apps/web/big.yaml is a Git LFS pointer, not the file: give the "
                             "source --lfs");
  })) << Ctl({"bundle", "list"});

  TurnOnForDemo(url, "lfs");
  ExpectSynced("prod-eu", "web", first);
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/big.yaml"), HasSubstr("value: \"1\""));

  git_.Write("apps/web/big.yaml", pointer_2);
  const std::string second = git_.Commit("big 2");
  ExpectSynced("prod-eu", "web", second);
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/big.yaml"), HasSubstr("value: \"2\""));
  EXPECT_THAT(lfs.Log(), HasSubstr("POST /repo.git/info/lfs/objects/batch"));
}

// A repository that vendors its shared base as a submodule (relative URL, as most do),
// served by git daemon: without --submodules the bundle fails naming the submodule and the
// flag; with it, a kustomization reads the base through the submodule, a bundle's folder
// may be inside it, and a commit that moves the submodule reaches the cluster.
TEST_F(Fleet, ASourceWithSubmodulesReadsThemAsACheckoutShowsThem) {
  GitFixture lib(root_ + "/lib");
  lib.Write("base/cm.yaml", Cm("shared", "1"));
  lib.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
  lib.Write("extra/cm.yaml", Cm("extra"));
  const std::string lib_1 = lib.Commit("shared base");
  git_.Write("apps/web/kustomization.yaml", "resources:\n- ../../vendor/lib/base\n- a.yaml\n");
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write(".gitmodules", "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib\n");
  git_.Git("add -A");
  git_.Gitlink("vendor/lib", lib_1);
  const std::string first = git_.CommitStaged("vendor lib");
  std::unique_ptr<Process> daemon;
  const std::string url = StartWebFromGitDaemon(&daemon);
  ASSERT_FALSE(url.empty());
  int code;
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"bundle", "list"}), "lstat vendor: no such file or directory") &&
           absl::StrContains(Ctl({"bundle", "list"}),
                             "(the repository has submodules, named in .gitmodules, which source "
                             "demo does not fetch: give it --submodules)");
  })) << Ctl({"bundle", "list"});

  TurnOnForDemo(url, "submodules");
  ExpectSynced("prod-eu", "web", first);
  EXPECT_THAT(Files("prod-eu"),
              ::testing::IsSupersetOf({"shop/ConfigMap/shared.yaml", "shop/ConfigMap/a.yaml"}));
  // A bundle whose own folder is inside the submodule.
  ASSERT_EQ(
      (Ctl({"bundle", "add", "extra", "--source=demo", "--path=vendor/lib/extra"}, &code), code),
      0);
  ExpectSynced("prod-eu", "extra", first);
  EXPECT_THAT(Files("prod-eu"), Contains("shop/ConfigMap/extra.yaml"));

  // The shared base changes upstream, and the repository takes it.
  lib.Write("base/cm.yaml", Cm("shared", "2"));
  const std::string lib_2 = lib.Commit("shared base 2");
  git_.Gitlink("vendor/lib", lib_2);
  const std::string second = git_.CommitStaged("lib 2");
  ExpectSynced("prod-eu", "web", second);
  ExpectSynced("prod-eu", "extra", second);
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/shared.yaml"), HasSubstr("value: \"2\""));

  // A submodule that cannot be fetched keeps what the clusters run, and says why.
  git_.Write(".gitmodules", "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../gone\n");
  git_.Git("add .gitmodules");
  git_.Gitlink("vendor/lib", std::string(40, 'a'));
  git_.CommitStaged("lib moved away");
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"source", "list"}), "submodule vendor/lib: cannot fetch");
  })) << Ctl({"source", "list"});
  EXPECT_TRUE(SyncedAt("prod-eu", "web", second));
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/shared.yaml"), HasSubstr("value: \"2\""));
}

TEST_F(Fleet, CliReportsServerErrorsInOneLine) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Commit("first");
  StartControlPlane();
  int code;
  std::string out = Ctl({"bundle", "add", "web", "--source=missing", "--path=apps/web"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(out, "gitfleetctl: NOT_FOUND: bundle \"web\": source \"missing\" not found\n");
  out = Ctl({"source", "add", "Bad_Name", "--url=" + git_.url()}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("INVALID_ARGUMENT: source name \"Bad_Name\""));
  EXPECT_EQ(HttpGet(cp_http_, "/healthz"), "ok\n");
  EXPECT_EQ(HttpGet(cp_http_, "/readyz"), "ready\n");
  // A push webhook set up against a control plane without webhooks is told why.
  int status = 0;
  EXPECT_EQ(::gitfleet::testing::HttpRequest(cp_http_, "POST", "/hooks/git",
                                             {{"X-GitHub-Event", "push"}}, "{}", &status),
            "webhooks are off: this control plane was started without --webhook-secret-file\n");
  EXPECT_EQ(status, 404);
}

// A request's names and text come back in its error, and a client refuses an error whose
// trailer outgrows its metadata limit (8 KiB): it read "RESOURCE_EXHAUSTED: received initial
// metadata size exceeds limit" instead of what was wrong. Names are checked by their rule
// first, and any message is cut to fit.
TEST_F(Fleet, AnOversizedNameOrFieldIsRefusedReadably) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Commit("first");
  StartControlPlane();
  int code;
  ASSERT_THAT(Ctl({"source", "add", "demo", "--url=" + git_.url()}, &code), HasSubstr("added"));
  const std::string name(20000, 'a');
  const std::vector<std::vector<std::string>> calls = {
      {"status", "--cluster=" + name},
      {"status", "--bundle=" + name},
      {"bundle", "history", name},
      {"bundle", "remove", name},
      {"bundle", "suspend", name},
      {"rollout", "status", name},
      {"rollout", "pause", name},
      {"cluster", "suspend", name},
      {"cluster", "remove", name},
      {"cluster", "forget", name, "--bundle=web"},
      {"diff", "--cluster=" + name, "--bundle=web"},
      {"sync", name},
      {"source", "remove", name},
      {"events", "--bundle=" + name},
      {"events", "--cluster=" + name},
  };
  for (const std::vector<std::string>& call : calls) {
    std::string out = Ctl(call, &code);
    EXPECT_EQ(code, 1) << call[0] << " " << call[1];
    EXPECT_THAT(out, HasSubstr("INVALID_ARGUMENT: ")) << call[0] << " " << call[1];
    EXPECT_THAT(out, HasSubstr("name")) << call[0] << " " << call[1];
    EXPECT_LT(out.size(), 400u) << call[0] << " " << call[1];
  }
  std::string out = Ctl({"bundle", "rollback", "web", "--to=" + name}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("INVALID_ARGUMENT: to: 20000 bytes"));
  // Within a definition's bounds (4 KiB of selector), but two-byte characters take six
  // bytes each once in the trailer: the error is cut to fit, and read.
  std::string wide;
  for (int i = 0; i < 2000; ++i) wide += "\xc3\xa9";
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web", "--selector=env=" + wide},
            &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("INVALID_ARGUMENT: "));
  EXPECT_THAT(out, HasSubstr("more bytes]"));
  EXPECT_LT(out.size(), 4200u);
  // The names it refused never reached a lookup, and what is defined is all there.
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code);
  EXPECT_EQ(code, 0) << out;
}

TEST_F(Fleet, MutualTlsAcceptsSignedAgentsOnly) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  std::string certs = root_ + "/certs";
  ::gitfleet::testing::Run("mkdir -p '" + certs + "'");
  MakeCertificates(certs);
  StartControlPlane({"--tls-cert=" + certs + "/server.crt", "--tls-key=" + certs + "/server.key",
                     "--tls-ca=" + certs + "/ca.crt"});
  std::vector<std::string> client_tls = {"--tls-ca=" + certs + "/ca.crt",
                                         "--tls-cert=" + certs + "/client.crt",
                                         "--tls-key=" + certs + "/client.key"};
  ctl_flags_ = client_tls;
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *PosixFileSystem().ReadFile(certs + "/ca.crt");
  ssl.pem_cert_chain = *PosixFileSystem().ReadFile(certs + "/client.crt");
  ssl.pem_private_key = *PosixFileSystem().ReadFile(certs + "/client.key");
  admin_credentials_ = grpc::SslCredentials(ssl);
  admin_ = v1::AdminService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_), admin_credentials_));

  StartAgent("prod-eu", "env=prod", "", client_tls);
  Agent& anonymous = StartAgent("anonymous", "env=prod", "", {"--tls-ca=" + certs + "/ca.crt"});
  Agent& rogue = StartAgent("rogue", "env=prod", "",
                            {"--tls-ca=" + certs + "/ca.crt", "--tls-cert=" + certs + "/other.crt",
                             "--tls-key=" + certs + "/other.key"});
  Agent& plaintext = StartAgent("plaintext", "env=prod");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  EXPECT_FALSE(anonymous.process->WaitForLog("stream to control plane .* ended").empty());
  EXPECT_FALSE(rogue.process->WaitForLog("stream to control plane .* ended").empty());
  EXPECT_FALSE(plaintext.process->WaitForLog("stream to control plane .* ended").empty());
  EXPECT_EQ(ConnectedClusters(), 1) << Ctl({"cluster", "list"});
  EXPECT_THAT(Files("anonymous"), IsEmpty());
  EXPECT_THAT(Files("rogue"), IsEmpty());

  // The CLI without a client certificate cannot drive the control plane.
  ctl_flags_ = {"--tls-ca=" + certs + "/ca.crt", "--timeout=3s"};
  int code;
  Ctl({"source", "list"}, &code);
  EXPECT_EQ(code, 1);
}

TEST_F(Fleet, OversizedRenderFailsTheBundleClearly) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  StartControlPlane({"--max-bundle-bytes=2000"});
  StartAgent("prod-eu", "env=prod");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  git_.Write("apps/web/big.yaml", Cm("big", std::string(5000, 'x')));
  std::string big = git_.Commit("too big");
  ASSERT_TRUE(Eventually([&] {
    std::vector<v1::BundleStatus> s = Status("prod-eu", "web");
    return s.size() == 1 && s[0].sync_state() == v1::SYNC_STATE_FAILED;
  }));
  EXPECT_THAT(Status("prod-eu", "web")[0].message(), HasSubstr("renders more than 2000 bytes"));
  EXPECT_THAT(Files("prod-eu"),
              ElementsAre("_cluster/Namespace/shop.yaml", "shop/ConfigMap/a.yaml"));

  // Flags that could never work are refused at start-up with the reason.
  Process bad(kControlPlane,
              {"--data-dir=" + root_ + "/cp2", "--grpc=127.0.0.1:0", "--http=127.0.0.1:0",
               "--max-bundle-bytes=1000000", "--max-message-bytes=1000"},
              root_ + "/cp-bad.log");
  EXPECT_FALSE(
      bad.WaitForLog("--max-bundle-bytes .* must be smaller than --max-message-bytes").empty())
      << bad.Log();
}

// The gRPC health service's answer for the whole server: SERVING is "\x08\x01",
// NOT_SERVING "\x08\x02"; empty when the call failed.
std::string GrpcHealth(int port) {
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice empty("");  // HealthCheckRequest{service: ""} encodes to no bytes
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = s;
                   done.Notify();
                 });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(10)) || !status.ok()) return "";
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return "";
  std::string bytes;
  for (const grpc::Slice& slice : slices)
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return bytes;
}

TEST_F(Fleet, ServesGrpcHealth) {
  StartControlPlane({"--shutdown-delay-seconds=3"});
  // A second control plane on the same port is refused, not given half the connections.
  Process second(kControlPlane,
                 {"--data-dir=" + root_ + "/cp2", absl::StrCat("--grpc=127.0.0.1:", grpc_port_),
                  "--http=127.0.0.1:0"},
                 root_ + "/cp-second.log");
  EXPECT_FALSE(second.WaitForLog("cannot listen for gRPC on 127.0.0.1:").empty()) << second.Log();
  EXPECT_EQ(GrpcHealth(grpc_port_), std::string("\x08\x01", 2)) << "SERVING";
  int code = 0;
  EXPECT_EQ(HttpGet(cp_http_, "/readyz", &code), "ready\n");
  EXPECT_EQ(code, 200);

  // Draining: still answering, but not ready, on both.
  ASSERT_EQ(kill(cp_->pid(), SIGTERM), 0);
  ASSERT_FALSE(cp_->WaitForLog("draining: serving").empty()) << cp_->Log();
  EXPECT_EQ(GrpcHealth(grpc_port_), std::string("\x08\x02", 2)) << "NOT_SERVING";
  EXPECT_EQ(HttpGet(cp_http_, "/readyz", &code),
            "not ready: draining: the control plane is stopping\n");
  EXPECT_EQ(code, 503);
  EXPECT_EQ(HttpGet(cp_http_, "/healthz", &code), "ok\n");
  EXPECT_EQ(code, 200);
}

// Lists services through gRPC server reflection: one ServerReflectionRequest with
// list_services set (field 7, empty string), raw bytes in and out.
class ReflectionCall : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // `version`: "v1alpha" or "v1".
  std::string Run(grpc::GenericStub& stub, const std::string& version) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    stub.PrepareBidiStreamingCall(
        &context_,
        absl::StrCat("/grpc.reflection.", version, ".ServerReflection/ServerReflectionInfo"),
        grpc::StubOptions(), this);
    grpc::Slice request(std::string("\x3a\x00", 2));
    out_ = grpc::ByteBuffer(&request, 1);
    StartWrite(&out_);
    StartRead(&in_);
    StartCall();
    done_.WaitForNotificationWithTimeout(absl::Seconds(15));
    return response_;
  }
  void OnWriteDone(bool ok) override {
    if (ok) StartWritesDone();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    std::vector<grpc::Slice> slices;
    if (in_.Dump(&slices).ok()) {
      for (const grpc::Slice& slice : slices) {
        response_.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
      }
    }
  }
  void OnDone(const grpc::Status&) override { done_.Notify(); }

 private:
  grpc::ClientContext context_;
  grpc::ByteBuffer out_;
  grpc::ByteBuffer in_;
  std::string response_;
  Notification done_;
};

TEST_F(Fleet, ServerReflectionListsTheServices) {
  StartControlPlane();
  grpc::GenericStub stub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_),
                                             grpc::InsecureChannelCredentials()));
  // Both versions of the protocol: newer clients ask v1 first, older ones v1alpha alone.
  for (const char* version : {"v1alpha", "v1"}) {
    ReflectionCall call;
    std::string services = call.Run(stub, version);
    EXPECT_THAT(services, HasSubstr("gitfleet.v1.AgentService")) << version;
    EXPECT_THAT(services, HasSubstr("gitfleet.v1.AdminService")) << version;
    EXPECT_THAT(services, HasSubstr("grpc.health.v1.Health")) << version;
    EXPECT_THAT(services, HasSubstr("grpc.reflection.v1alpha.ServerReflection")) << version;
    EXPECT_THAT(services, HasSubstr("grpc.reflection.v1.ServerReflection")) << version;
  }

  // Every service, reflection and health included, runs on the one polling thread: gRPC's
  // callback API and synchronous server would each add pollers (common/server_loop.h).
  std::vector<std::string> threads;
  const std::string tasks = absl::StrCat("/proc/", cp_->pid(), "/task");
  DIR* dir = opendir(tasks.c_str());
  ASSERT_NE(dir, nullptr);
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream comm(absl::StrCat(tasks, "/", entry->d_name, "/comm"));
    std::string name;
    std::getline(comm, name);
    threads.push_back(name);
    // ...and it runs as SCHED_BATCH, so that waking it does not preempt a bundle worker
    // once per write of a fan-out (ServerLoopOptions::batch_scheduling).
    if (name == "gf-grpc-loop") {
      int tid = 0;
      ASSERT_TRUE(absl::SimpleAtoi(entry->d_name, &tid));
      EXPECT_EQ(sched_getscheduler(tid), SCHED_BATCH);
    }
  }
  closedir(dir);
  EXPECT_THAT(threads, Contains("gf-grpc-loop").Times(1));
  EXPECT_THAT(threads, Not(Contains("nexting_thread")));
  EXPECT_THAT(threads, Not(Contains("grpcpp_sync_ser")));
}

}  // namespace
}  // namespace gitfleet
