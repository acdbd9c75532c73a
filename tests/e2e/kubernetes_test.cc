// End-to-end on Kubernetes: the real control plane and agent (--apply=kubernetes)
// against a real Git repository and an API server.
//
// KubernetesFleet runs against the fake API server (tests/fakekube) over HTTPS with a
// bearer token, started here on loopback. RealCluster runs the same story against the
// cluster KUBECONFIG points at (kind, k3d, ...) and is skipped when KUBECONFIG is unset:
//
//   KUBECONFIG=$HOME/.kube/config bazel test //tests/e2e:kubernetes_test \
//       --test_env=KUBECONFIG --test_filter='RealCluster.*'

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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
using ::testing::HasSubstr;

using ::gitfleet::testing::kAgent;
using ::gitfleet::testing::kControlPlane;
using ::gitfleet::testing::kCtl;
using ::gitfleet::testing::kFakeApiServer;
using ::gitfleet::testing::Port;

class KubernetesFleet : public ::testing::Test {
 protected:
  KubernetesFleet() : root_(TempDir("kube")), git_(root_ + "/repo") {}

  // Starts the fake API server (HTTPS, token) and writes a kubeconfig for it.
  // `restricted_agent`: the agent's token is judged by RBAC as
  // system:serviceaccount:gitfleet:agent (which nothing grants anything), the tests' own
  // stays an administrator's.
  void StartFakeCluster(bool simulate_controllers, bool restricted_agent = false) {
    std::string command = absl::StrCat(
        "cd ", root_,
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout key.pem -out ca.pem -days 2 -subj /CN=127.0.0.1 "
        "-addext subjectAltName=IP:127.0.0.1 2>/dev/null && cat ca.pem key.pem > server.pem");
    ASSERT_EQ(::gitfleet::testing::Run(command), 0);
    fake_ = std::make_unique<Process>(
        kFakeApiServer,
        std::vector<std::string>{
            "--tls-cert-and-key=" + root_ + "/server.pem", "--token=e2e-token",
            "--restricted-token=agent-token",
            absl::StrCat("--simulate-controllers=", simulate_controllers ? "true" : "false")},
        root_ + "/fake.log");
    std::string url = fake_->WaitForLog(R"(listening on (https://\S+))");
    ASSERT_FALSE(url.empty()) << fake_->Log();
    auto write = [&](const std::string& path, const std::string& token_file,
                     const std::string& token) {
      std::ofstream(root_ + "/" + token_file) << token << "\n";
      std::ofstream(path) << "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
                          << "clusters:\n- name: fake\n  cluster:\n    server: " << url
                          << "\n    certificate-authority: ca.pem\n"
                          << "users:\n- name: agent\n  user:\n    tokenFile: " << token_file
                          << "\ncontexts:\n- name: fake\n  context: {cluster: fake, user: "
                             "agent}\n";
    };
    kubeconfig_ = root_ + "/kubeconfig";
    admin_kubeconfig_ = root_ + "/admin-kubeconfig";
    write(kubeconfig_, "token", restricted_agent ? "agent-token" : "e2e-token");
    write(admin_kubeconfig_, "admin-token", "e2e-token");
    ConnectApi();
  }

  void ConnectApi() {
    absl::StatusOr<KubeConfig> config =
        LoadKubeconfig(admin_kubeconfig_.empty() ? kubeconfig_ : admin_kubeconfig_, "");
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(*config, {});
    ASSERT_TRUE(client.ok()) << client.status();
    api_ = *std::move(client);
  }

  void StartFleet() {
    StartControlPlane("cp.log");
    StartAgent("agent.log");
  }

  // Against the data dir of the last one, if any; its log in `log` under root_.
  void StartControlPlane(const std::string& log) {
    cp_ = std::make_unique<Process>(
        kControlPlane,
        std::vector<std::string>{"--data-dir=" + root_ + "/cp", "--grpc=127.0.0.1:0",
                                 "--http=127.0.0.1:0", "--poll-interval-seconds=1",
                                 "--allow-any-agent", "--trust-agent-labels",
                                 "--allow-local-sources"},
        root_ + "/" + log);
    grpc_port_ = Port(cp_->WaitForLog(R"(serving gRPC on port (\d+))"));
    ASSERT_GT(grpc_port_, 0) << cp_->Log();
    admin_ = v1::AdminService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_),
                                                           grpc::InsecureChannelCredentials()));
  }

  // Against the control plane started last, with the state dir of the last agent.
  void StartAgent(const std::string& log, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {absl::StrCat("--controlplane=127.0.0.1:", grpc_port_),
                                     "--cluster=kube",
                                     "--labels=env=test",
                                     "--apply=kubernetes",
                                     "--kubeconfig=" + kubeconfig_,
                                     "--state-dir=" + root_ + "/state",
                                     "--http=127.0.0.1:0",
                                     "--resync-interval-seconds=1",
                                     "--health-interval-seconds=1"};
    args.insert(args.end(), extra.begin(), extra.end());
    agent_ = std::make_unique<Process>(kAgent, args, root_ + "/" + log);
    agent_http_ = Port(agent_->WaitForLog(R"(HTTP on port (\d+))"));
    ASSERT_GT(agent_http_, 0) << agent_->Log();
  }

  std::string Ctl(const std::vector<std::string>& args, int* code = nullptr) {
    return ::gitfleet::testing::RunCtl(grpc_port_, args, code);
  }

  // Starts the fleet, adds this repository as source "demo" and `bundle` from apps/BUNDLE
  // into namespace `ns`.
  // See the move tests below.
  json SyncClaimHeldBy(const std::string& giver, const std::string& taker,
                       const std::vector<std::string>& taker_flags);
  std::string MoveClaim(const std::string& giver, const std::string& taker);
  // The claim held by web, api partitioned (one cluster a partition), web suspended; the
  // claim as it lives (null, with a failure, otherwise).
  json ClaimHeldBySuspendedWeb() {
    json before = SyncClaimHeldBy("web", "api", {"--partition-size=1"});
    int code;
    std::string out = Ctl({"bundle", "suspend", "web"}, &code);
    if (code != 0) {
      ADD_FAILURE() << out;
      return nullptr;
    }
    return before;
  }
  // With web suspended and the claim moved to partitioned api at `moved`: api waits for
  // web, without pausing its rollout; once web resumes, api takes over the claim `before`.
  void ExpectApiWaitsThenTakesOver(const json& before, const std::string& moved);

  // `agent_flags` go to the agent.
  void StartFleetWithBundle(const std::string& bundle, const std::string& ns,
                            const std::vector<std::string>& agent_flags = {}) {
    StartControlPlane("cp.log");
    StartAgent("agent.log", agent_flags);
    int code;
    std::string out = Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code);
    ASSERT_EQ(code, 0) << out;
    out = Ctl(
        {"bundle", "add", bundle, "--source=demo", "--path=apps/" + bundle, "--namespace=" + ns},
        &code);
    ASSERT_EQ(code, 0) << out;
  }

  // Writes a finished rollout of one replica into the Deployment at `path`, as its
  // controller would.
  void FinishRollout(const std::string& path) {
    json status = {{"status",
                    {{"observedGeneration", 1},
                     {"replicas", 1},
                     {"updatedReplicas", 1},
                     {"readyReplicas", 1},
                     {"availableReplicas", 1}}}};
    absl::StatusOr<KubeResponse> r =
        api_->Do("PATCH", path + "/status", status.dump(), "application/merge-patch+json");
    ASSERT_TRUE(r.ok() && r->code == 200) << (r.ok() ? r->body : r.status().ToString());
  }

  std::optional<v1::BundleStatus> Status(const std::string& bundle) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::GetStatusRequest request;
    request.set_cluster("kube");
    request.set_bundle(bundle);
    v1::GetStatusResponse response;
    if (!admin_->GetStatus(&context, request, &response).ok() || response.statuses_size() != 1) {
      return std::nullopt;
    }
    return response.statuses(0);
  }

  bool SyncedAt(const std::string& bundle, const std::string& commit) {
    std::optional<v1::BundleStatus> s = Status(bundle);
    return s && s->sync_state() == v1::SYNC_STATE_SYNCED && s->applied_commit() == commit;
  }

  std::string Describe(const std::string& bundle) {
    std::optional<v1::BundleStatus> s = Status(bundle);
    return absl::StrCat(s ? s->DebugString() : "no status", "\nagent log:\n", agent_->Log());
  }

  // The live object at `path`, or null.
  json Live(const std::string& path) {
    absl::StatusOr<KubeResponse> r = api_->Do("GET", path);
    if (!r.ok() || r->code != 200) return nullptr;
    return json::parse(r->body, nullptr, false);
  }

  // Sets the replicas of the Deployment at `path` as an autoscaler does: a manager of its own
  // that takes the field.
  void ScaleAsAnAutoscaler(const std::string& path, int replicas) {
    const json live = Live(path);
    json patch = {
        {"apiVersion", "apps/v1"},
        {"kind", "Deployment"},
        {"metadata",
         {{"name", live["metadata"]["name"]}, {"namespace", live["metadata"]["namespace"]}}},
        {"spec", {{"replicas", replicas}}}};
    absl::StatusOr<KubeResponse> r = api_->Do("PATCH", path + "?fieldManager=hpa&force=true",
                                              patch.dump(), "application/apply-patch+yaml");
    ASSERT_TRUE(r.ok() && r->code == 200) << (r.ok() ? r->body : r.status().ToString());
  }

  void Manifests(const std::string& ns, const std::string& value, bool with_service) {
    std::string yaml = absl::StrCat(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ", ns,
        "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  v: \"",
        value,
        "\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
        "spec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n"
        "    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n"
        "      - name: pause\n        image: registry.k8s.io/pause:3.9\n");
    if (with_service) {
      absl::StrAppend(&yaml,
                      "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
                      "  selector: {app: web}\n  ports:\n  - port: 80\n");
    }
    git_.Write("apps/web/all.yaml", yaml);
  }

  // The whole story, against whichever API server kubeconfig_ names.
  void SyncHealDriftPrune(const std::string& ns, bool fake) {
    Manifests(ns, "1", true);
    std::string first = git_.Commit("first");
    StartFleetWithBundle("web", ns);
    int code;
    std::string out;

    const std::string cm = absl::StrCat("/api/v1/namespaces/", ns, "/configmaps/settings");
    const std::string deploy = absl::StrCat("/apis/apps/v1/namespaces/", ns, "/deployments/web");
    const std::string service = absl::StrCat("/api/v1/namespaces/", ns, "/services/web");
    ASSERT_TRUE(Eventually([&] { return SyncedAt("web", first); }, absl::Seconds(60)))
        << Describe("web");
    json live = Live(cm);
    ASSERT_FALSE(live.is_null());
    EXPECT_EQ(live["data"]["v"], "1");
    EXPECT_EQ(live["metadata"]["labels"]["gitfleet.io/bundle"], "web");
    bool managed_by_gitfleet = false;
    for (const json& entry : live["metadata"]["managedFields"]) {
      managed_by_gitfleet |= entry.value("manager", "") == "gitfleet";
    }
    EXPECT_TRUE(managed_by_gitfleet) << live.dump();

    if (fake) {
      // No controller runs: the Deployment stays Progressing until its status says done.
      auto s = Status("web");
      EXPECT_EQ(s->health(), v1::HEALTH_STATE_PROGRESSING) << s->DebugString();
      FinishRollout(deploy);
    }
    EXPECT_TRUE(Eventually(
        [&] {
          auto s = Status("web");
          return s && s->health() == v1::HEALTH_STATE_HEALTHY;
        },
        absl::Seconds(120)))
        << Describe("web");

    // A change is applied and a removed object pruned.
    Manifests(ns, "2", false);
    std::string second = git_.Commit("change settings, drop the service");
    ASSERT_TRUE(Eventually([&] { return SyncedAt("web", second); }, absl::Seconds(60)))
        << Describe("web");
    EXPECT_EQ(Live(cm)["data"]["v"], "2");
    EXPECT_TRUE(Eventually([&] { return Live(service).is_null(); }, absl::Seconds(60)));

    // A dry run against the live objects: nothing to do, then what an edit would undo.
    out = Ctl({"diff", "--cluster=kube", "--bundle=web"}, &code);
    EXPECT_EQ(code, 0) << out;
    EXPECT_THAT(out, HasSubstr("0 to create, 0 to update, 0 to prune, 3 unchanged"));
    EXPECT_THAT(Ctl({"diff", "--cluster=nowhere", "--bundle=web"}, &code),
                HasSubstr("cluster nowhere is not connected"));
    EXPECT_EQ(code, 1);

    // Someone edits the live object: self-heal puts it back.
    json edit = {{"apiVersion", "v1"},
                 {"kind", "ConfigMap"},
                 {"metadata", {{"name", "settings"}, {"namespace", ns}}},
                 {"data", {{"v", "edited"}}}};
    absl::StatusOr<KubeResponse> edited =
        api_->Do("PATCH", cm + "?fieldManager=kubectl-edit&force=true", edit.dump(),
                 "application/apply-patch+yaml");
    ASSERT_TRUE(edited.ok() && edited->code == 200) << (edited.ok() ? edited->body : "");
    EXPECT_TRUE(Eventually([&] { return Live(cm)["data"]["v"] == "2"; }, absl::Seconds(30)))
        << agent_->Log();
    EXPECT_GE(MetricValue(HttpGet(agent_http_, "/metrics"), "gitfleet_agent_drift_events_total"),
              1);
    std::string metrics = HttpGet(agent_http_, "/metrics");
    EXPECT_THAT(metrics,
                HasSubstr("gitfleet_agent_kube_requests_total{code=\"200\",method=\"PATCH\"}"));
    EXPECT_THAT(metrics, HasSubstr("gitfleet_agent_bundle_health{health=\"healthy\"} 1"));

    // Removing the bundle prunes everything it applied, namespace last.
    out = Ctl({"bundle", "remove", "web"}, &code);
    ASSERT_EQ(code, 0) << out;
    EXPECT_TRUE(
        Eventually([&] { return Live(cm).is_null() && Live(deploy).is_null(); }, absl::Seconds(60)))
        << agent_->Log();
    EXPECT_TRUE(Eventually(
        [&] {
          return Live("/api/v1/namespaces/" + ns).is_null() ||
                 Live("/api/v1/namespaces/" + ns)["status"]["phase"] == "Terminating";
        },
        absl::Seconds(60)));
  }

  // Namespace shop, and in it a Role granting `verbs` on `resources` of API `groups`, bound
  // to shop's service account deployer.
  void GrantDeployer(const std::vector<std::string>& groups,
                     const std::vector<std::string>& resources,
                     const std::vector<std::string>& verbs) {
    const std::string rbac = "/apis/rbac.authorization.k8s.io/v1";
    for (const auto& [path, body] : std::vector<std::pair<std::string, json>>{
             {"/api/v1/namespaces",
              {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "shop"}}}}},
             {rbac + "/namespaces/shop/roles",
              {{"apiVersion", "rbac.authorization.k8s.io/v1"},
               {"kind", "Role"},
               {"metadata", {{"name", "deploy"}}},
               {"rules", {{{"apiGroups", groups}, {"resources", resources}, {"verbs", verbs}}}}}},
             {rbac + "/namespaces/shop/rolebindings",
              {{"apiVersion", "rbac.authorization.k8s.io/v1"},
               {"kind", "RoleBinding"},
               {"metadata", {{"name", "deploy"}}},
               {"roleRef",
                {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "deploy"}}},
               {"subjects", {{{"kind", "ServiceAccount"}, {"name", "deployer"}}}}}}}) {
      absl::StatusOr<KubeResponse> r = api_->Do("POST", path, body.dump());
      ASSERT_TRUE(r.ok() && r->code == 201)
          << path << ": " << (r.ok() ? r->body : r.status().ToString());
    }
  }

  // Edits shop's ConfigMap settings as `kubectl edit` does; the agent puts its v back to
  // "1" within 10 s.
  void ExpectAnEditOfSettingsHealed() {
    const std::string cm = "/api/v1/namespaces/shop/configmaps/settings";
    json edit = {{"apiVersion", "v1"},
                 {"kind", "ConfigMap"},
                 {"metadata", {{"name", "settings"}, {"namespace", "shop"}}},
                 {"data", {{"v", "edited"}}}};
    absl::StatusOr<KubeResponse> edited =
        api_->Do("PATCH", cm + "?fieldManager=kubectl-edit&force=true", edit.dump(),
                 "application/apply-patch+yaml");
    ASSERT_TRUE(edited.ok() && edited->code == 200) << (edited.ok() ? edited->body : "");
    EXPECT_TRUE(Eventually([&] { return Live(cm)["data"]["v"] == "1"; }, absl::Seconds(10)))
        << Live(cm).dump() << agent_->Log();
  }

  std::string root_;
  GitFixture git_;
  std::string kubeconfig_;        // the agent's
  std::string admin_kubeconfig_;  // the tests' own, when apart from the agent's
  std::unique_ptr<Process> fake_;
  std::unique_ptr<Process> cp_;
  std::unique_ptr<Process> agent_;
  std::unique_ptr<KubeClient> api_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  int grpc_port_ = 0;
  int agent_http_ = 0;
};

TEST_F(KubernetesFleet, SyncsHealsDriftAndPrunesOnTheFakeApiServer) {
  StartFakeCluster(/*simulate_controllers=*/false);
  SyncHealDriftPrune("shop", /*fake=*/true);
  // The cluster's Kubernetes version, as its agent read it from /version.
  EXPECT_THAT(Ctl({"cluster", "list"}), HasSubstr("v1.30.2"));  // the fake's kFakeKubernetesVersion
  const std::string listed = Ctl({"cluster", "list", "-o", "json"});
  EXPECT_THAT(listed, HasSubstr("\"kubernetes_version\": \"v1.30.2\""));
  // And the APIs it serves, kept once per distinct list (what --api-versions=cluster gives
  // charts).
  EXPECT_THAT(listed, HasSubstr("\"api_versions_digest\": \""));
  EXPECT_THAT(listed, ::testing::ContainsRegex("\"api_versions_count\": [1-9][0-9]"));
}

// With the periodic drift check an hour away, an edit or a delete is healed as it happens:
// the agent watches the kinds its bundles hold (--watch-drift, on by default), as Argo CD's
// cluster cache does.
TEST_F(KubernetesFleet, AnEditOrADeleteIsHealedAsItHappensNotAtTheNextCheck) {
  StartFakeCluster(/*simulate_controllers=*/true);
  Manifests("shop", "1", /*with_service=*/false);
  const std::string first = git_.Commit("first");
  StartFleetWithBundle("web", "shop", {"--resync-interval-seconds=3600"});
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", first); }, absl::Seconds(60)))
      << Describe("web");
  // Namespace, ConfigMap and Deployment: a watch each.
  ASSERT_TRUE(Eventually(
      [&] {
        return MetricValue(HttpGet(agent_http_, "/metrics"),
                           "gitfleet_agent_drift_watches{state=\"watching\"}") == 3;
      },
      absl::Seconds(30)))
      << HttpGet(agent_http_, "/metrics") << agent_->Log();

  ExpectAnEditOfSettingsHealed();

  absl::StatusOr<KubeResponse> deleted =
      api_->Do("DELETE", "/apis/apps/v1/namespaces/shop/deployments/web");
  ASSERT_TRUE(deleted.ok() && deleted->code == 200) << (deleted.ok() ? deleted->body : "");
  EXPECT_TRUE(
      Eventually([&] { return !Live("/apis/apps/v1/namespaces/shop/deployments/web").is_null(); },
                 absl::Seconds(10)))
      << agent_->Log();
  EXPECT_GE(MetricValue(HttpGet(agent_http_, "/metrics"), "gitfleet_agent_drift_corrections_total"),
            2);
}

// An agent locked down to impersonation (`--default-service-account`, its own identity
// granted nothing, as Flux's lockdown would have it) still heals an edit as it happens:
// where it may not watch, the account its bundles are applied as watches for it.
TEST_F(KubernetesFleet, ALockedDownAgentWatchesAsTheAccountItAppliesAs) {
  StartFakeCluster(/*simulate_controllers=*/true, /*restricted_agent=*/true);
  GrantDeployer({""}, {"configmaps"}, {"get", "list", "watch", "create", "patch", "delete"});
  git_.Write("apps/web/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  v: \"1\"\n");
  const std::string first = git_.Commit("one ConfigMap");
  StartFleetWithBundle(
      "web", "shop", {"--resync-interval-seconds=3600", "--default-service-account=shop/deployer"});
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", first); }, absl::Seconds(60)))
      << Describe("web") << agent_->Log();
  ASSERT_TRUE(Eventually(
      [&] {
        return MetricValue(HttpGet(agent_http_, "/metrics"),
                           "gitfleet_agent_drift_watches{state=\"as_account\"}") == 1;
      },
      absl::Seconds(30)))
      << HttpGet(agent_http_, "/metrics") << agent_->Log();
  EXPECT_THAT(agent_->Log(), HasSubstr("as system:serviceaccount:shop:deployer, where the agent "
                                       "may not watch itself"));

  ExpectAnEditOfSettingsHealed();
}

// A bundle applied as a service account (`--service-account`, as Flux's serviceAccountName):
// the agent impersonates it, so the cluster's RBAC for the account decides what the bundle
// may do. What it may, applies; a Secret the account may not write fails, named with the
// API's words, and nothing of it is written; dropped from Git, nothing is left to prune.
TEST_F(KubernetesFleet, ABundleIsAppliedAsItsServiceAccount) {
  StartFakeCluster(/*simulate_controllers=*/true);
  GrantDeployer({"", "apps"}, {"configmaps", "deployments"},
                {"get", "list", "create", "patch", "delete"});
  const std::string app =
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  v: \"1\"\n"
      "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
      "spec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n"
      "    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n"
      "      - name: pause\n        image: registry.k8s.io/pause:3.9\n";
  git_.Write("apps/web/all.yaml",
             app +
                 "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n"
                 "stringData: {k: v}\n");
  git_.Commit("an app and a secret");
  StartFleet();
  int code;
  std::string out = Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web", "--namespace=shop",
             "--service-account=deployer"},
            &code);
  ASSERT_EQ(code, 0) << out;
  const std::string forbidden =
      "secrets \"token\" is forbidden: User \"system:serviceaccount:shop:deployer\" cannot get "
      "resource \"secrets\" in API group \"\" in the namespace \"shop\"";
  ASSERT_TRUE(Eventually(
      [&] {
        std::optional<v1::BundleStatus> s = Status("web");
        return s && s->sync_state() == v1::SYNC_STATE_FAILED &&
               absl::StrContains(s->DebugString(), "system:serviceaccount:shop:deployer");
      },
      absl::Seconds(60)))
      << Describe("web");
  std::optional<v1::BundleStatus> failed = Status("web");
  ASSERT_TRUE(failed.has_value());
  EXPECT_THAT(failed->message(), HasSubstr(forbidden));
  EXPECT_FALSE(Live("/api/v1/namespaces/shop/configmaps/settings").is_null());
  EXPECT_FALSE(Live("/apis/apps/v1/namespaces/shop/deployments/web").is_null());
  EXPECT_TRUE(Live("/api/v1/namespaces/shop/secrets/token").is_null());

  git_.Write("apps/web/all.yaml", app);
  const std::string second = git_.Commit("the secret goes to the platform team");
  EXPECT_TRUE(Eventually([&] { return SyncedAt("web", second); }, absl::Seconds(60)))
      << Describe("web");
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "json"}),
              HasSubstr("\"service_account\": \"deployer\""));

  // A Rancher Fleet repository's fleet.yaml names the account: looked up in the agents'
  // namespace, as Fleet looks it up in its agent's.
  git_.Write("apps/fleet/fleet.yaml", "serviceAccount: deployer\n");
  git_.Write("apps/fleet/cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fleet-cm\n  namespace: shop\n");
  git_.Commit("a Fleet bundle that names its account");
  out = Ctl({"bundle", "add", "fleetapp", "--source=demo", "--path=apps/fleet"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("applied as service account gitfleet-system/deployer"));
  EXPECT_TRUE(Eventually(
      [&] {
        std::optional<v1::BundleStatus> s = Status("fleetapp");
        return s && s->sync_state() == v1::SYNC_STATE_FAILED &&
               absl::StrContains(s->message(),
                                 "User \"system:serviceaccount:gitfleet-system:deployer\"");
      },
      absl::Seconds(60)))
      << Describe("fleetapp");
  EXPECT_TRUE(Live("/api/v1/namespaces/shop/configmaps/fleet-cm").is_null());

  // A cluster locked down by its agent (--default-service-account): a bundle that names no
  // account is applied as the default one, never with the agent's own rights.
  agent_.reset();
  StartAgent("agent-locked.log", {"--default-service-account=shop/deployer"});
  git_.Write("apps/plain/secret.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata:\n  name: plain\n  namespace: shop\n"
             "stringData: {k: v}\n");
  git_.Commit("a bundle that names no account");
  out = Ctl({"bundle", "add", "plain", "--source=demo", "--path=apps/plain"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually(
      [&] {
        std::optional<v1::BundleStatus> s = Status("plain");
        return s && s->sync_state() == v1::SYNC_STATE_FAILED &&
               absl::StrContains(s->message(),
                                 "secrets \"plain\" is forbidden: User "
                                 "\"system:serviceaccount:shop:deployer\"");
      },
      absl::Seconds(60)))
      << Describe("plain");
  EXPECT_TRUE(Live("/api/v1/namespaces/shop/secrets/plain").is_null());
  EXPECT_THAT(agent_->Log(), HasSubstr("applied as shop/deployer (--default-service-account)"));
}

// An autoscaler owns a Deployment's replicas: with `--ignore-difference`, a scale is neither
// drift nor set back by the next revision (as Argo CD's ignoreDifferences with
// RespectIgnoreDifferences); without it, self-heal takes it back.
TEST_F(KubernetesFleet, AnAutoscalersReplicasAreLeftToIt) {
  StartFakeCluster(/*simulate_controllers=*/false);
  Manifests("shop", "1", false);
  std::string first = git_.Commit("first");
  StartFleetWithBundle("web", "shop");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", first); }, absl::Seconds(60)))
      << Describe("web");
  const std::string deploy = "/apis/apps/v1/namespaces/shop/deployments/web";
  auto scale = [&](int replicas) { ScaleAsAnAutoscaler(deploy, replicas); };
  // Without it: drift, healed.
  scale(4);
  EXPECT_TRUE(Eventually([&] { return Live(deploy)["spec"]["replicas"] == 1; }, absl::Seconds(30)))
      << agent_->Log();

  int code;
  std::string out =
      Ctl({"bundle", "set", "web", "--ignore-difference=apps/Deployment=/spec/replicas"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("--ignore-difference: (none) -> apps/Deployment=/spec/replicas"));
  const json listed = json::parse(Ctl({"bundle", "list", "-o", "json"}), nullptr, false);
  const std::string revision = listed["bundles"][0].value("revision", "");
  ASSERT_FALSE(revision.empty()) << listed.dump();
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Status("web");
        return s && s->applied_revision() == revision;
      },
      absl::Seconds(60)))
      << Describe("web");
  scale(4);
  // Drift checks run every second: a few of them leave it alone.
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(Live(deploy)["spec"]["replicas"], 4) << agent_->Log();
  // A new commit changes the settings: applied, and the replicas stay the autoscaler's.
  Manifests("shop", "2", false);
  std::string second = git_.Commit("change settings");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", second); }, absl::Seconds(60)))
      << Describe("web");
  EXPECT_EQ(Live("/api/v1/namespaces/shop/configmaps/settings")["data"]["v"], "2");
  EXPECT_EQ(Live(deploy)["spec"]["replicas"], 4);
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "yaml"}), HasSubstr("/spec/replicas"));
}

// A bundle that ships its HorizontalPodAutoscaler: the replicas it sets stay, across drift
// checks and new commits, with no flag (an apply setting the manifest's count would scale a
// loaded service down until the autoscaler noticed).
TEST_F(KubernetesFleet, TheReplicasOfAWorkloadItsAutoscalerScalesAreLeftToIt) {
  StartFakeCluster(/*simulate_controllers=*/false);
  Manifests("shop", "1", false);
  const std::string hpa =
      "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\n"
      "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n"
      "  minReplicas: 1\n  maxReplicas: 5\n";
  git_.Write("apps/web/hpa.yaml", hpa);
  const std::string first = git_.Commit("with an autoscaler");
  StartFleetWithBundle("web", "shop");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", first); }, absl::Seconds(60)))
      << Describe("web");
  const std::string deploy = "/apis/apps/v1/namespaces/shop/deployments/web";
  EXPECT_EQ(Live(deploy)["spec"]["replicas"], 1) << "a new object gets the manifest's value";
  EXPECT_FALSE(Live("/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/web").is_null());
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "yaml"}),
              HasSubstr("leaves the replicas of Deployment web (HorizontalPodAutoscaler"));
  ScaleAsAnAutoscaler(deploy, 4);
  absl::SleepFor(absl::Seconds(3));  // drift checks run every second
  EXPECT_EQ(Live(deploy)["spec"]["replicas"], 4) << agent_->Log();
  Manifests("shop", "2", false);
  const std::string second = git_.Commit("change settings");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", second); }, absl::Seconds(60)))
      << Describe("web");
  EXPECT_EQ(Live("/api/v1/namespaces/shop/configmaps/settings")["data"]["v"], "2");
  EXPECT_EQ(Live(deploy)["spec"]["replicas"], 4) << agent_->Log();
}

// A chart's delete hooks, written as Helm writes them, run when the bundle is removed, with
// the real agent against the fake API server (whose Job controller completes Jobs): the
// pre-delete Job before the prune, the post-delete Job after it.
TEST_F(KubernetesFleet, DeleteHooksRunWhenTheBundleIsRemoved) {
  StartFakeCluster(/*simulate_controllers=*/true);
  Manifests("shop", "1", false);
  auto job = [](const std::string& name, const std::string& hook) {
    return absl::StrCat("---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: ", name,
                        "\n  namespace: default\n  annotations:\n    helm.sh/hook: ", hook,
                        "\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n"
                        "      containers:\n      - name: run\n        image: busybox:1.36\n");
  };
  git_.Write("apps/web/hooks.yaml",
             job("uninstall", "pre-delete") + job("farewell", "post-delete"));
  const std::string first = git_.Commit("a chart's delete hooks");
  StartFleetWithBundle("web", "shop");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", first); }, absl::Seconds(60)))
      << Describe("web");
  const std::string uninstall = "/apis/batch/v1/namespaces/default/jobs/uninstall";
  const std::string farewell = "/apis/batch/v1/namespaces/default/jobs/farewell";
  EXPECT_TRUE(Live(uninstall).is_null()) << "a sync runs no delete hook";
  EXPECT_TRUE(Live(farewell).is_null());

  int code;
  std::string out = Ctl({"bundle", "remove", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  const std::string cm = "/api/v1/namespaces/shop/configmaps/settings";
  EXPECT_TRUE(Eventually([&] { return Live(cm).is_null() && !Live(farewell).is_null(); },
                         absl::Seconds(60)))
      << agent_->Log();
  const json before = Live(uninstall);
  const json after = Live(farewell);
  ASSERT_FALSE(before.is_null()) << "the pre-delete Job ran (and stays: no delete policy)";
  EXPECT_EQ(before["metadata"]["labels"]["gitfleet.io/hook"], "true");
  EXPECT_LE(before["metadata"]["creationTimestamp"].get<std::string>(),
            after["metadata"]["creationTimestamp"].get<std::string>());
  EXPECT_THAT(agent_->Log(), HasSubstr("started PreDelete hook Job default/uninstall"));
  EXPECT_THAT(agent_->Log(), HasSubstr("started PostDelete hook Job default/farewell"));
}

// A webhook configuration whose chart leaves its caBundle empty for a controller to fill in
// (istiod, Kyverno): the injected CA stays, across drift checks and new commits; an apply of
// the empty value would fail every request the webhook admits until it was injected again.
TEST_F(KubernetesFleet, AnInjectedCaBundleIsLeftToItsController) {
  StartFakeCluster(/*simulate_controllers=*/false);
  Manifests("shop", "1", false);
  git_.Write("apps/web/hooks.yaml",
             "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\n"
             "metadata:\n  name: policy\nwebhooks:\n- name: check.example.com\n"
             "  clientConfig:\n    caBundle: \"\"\n"
             "    service: {name: policy, namespace: shop}\n"
             "  admissionReviewVersions: [v1]\n  sideEffects: None\n");
  const std::string first = git_.Commit("with a webhook");
  StartFleetWithBundle("web", "shop");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", first); }, absl::Seconds(60)))
      << Describe("web");
  const std::string hooks =
      "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/policy";
  ASSERT_FALSE(Live(hooks).is_null());
  // The controller injects its CA, as its own manager.
  json patch = {{"apiVersion", "admissionregistration.k8s.io/v1"},
                {"kind", "ValidatingWebhookConfiguration"},
                {"metadata", {{"name", "policy"}}},
                {"webhooks", json::array({{{"name", "check.example.com"},
                                           {"clientConfig", {{"caBundle", "Q0EgYnVuZGxl"}}}}})}};
  absl::StatusOr<KubeResponse> r = api_->Do("PATCH", hooks + "?fieldManager=injector&force=true",
                                            patch.dump(), "application/apply-patch+yaml");
  ASSERT_TRUE(r.ok() && r->code == 200) << (r.ok() ? r->body : r.status().ToString());
  auto injected = [&] {
    return Live(hooks)["webhooks"][0]["clientConfig"].value("caBundle", "") == "Q0EgYnVuZGxl";
  };
  ASSERT_TRUE(injected()) << Live(hooks).dump();
  absl::SleepFor(absl::Seconds(3));  // drift checks run every second
  EXPECT_TRUE(injected()) << Live(hooks).dump() << agent_->Log();
  Manifests("shop", "2", false);
  const std::string second = git_.Commit("change settings");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", second); }, absl::Seconds(60)))
      << Describe("web");
  EXPECT_TRUE(injected()) << Live(hooks).dump() << agent_->Log();
}

// A folder moved from Rancher Fleet whose fleet.yaml leaves the replicas to an autoscaler
// (diff.comparePatches): they are neither drift nor set back, across a control plane restart
// (the revision stays the same), until a commit takes the patch out.
TEST_F(KubernetesFleet, AFleetYamlsComparePatchesLeaveTheReplicasToAnAutoscaler) {
  StartFakeCluster(/*simulate_controllers=*/false);
  Manifests("shop", "1", false);
  git_.Write("apps/web/fleet.yaml",
             "diff:\n  comparePatches:\n  - apiVersion: apps/v1\n    kind: Deployment\n"
             "    name: web\n    namespace: shop\n    jsonPointers:\n    - /spec/replicas\n");
  const std::string first = git_.Commit("from Fleet");
  StartFleetWithBundle("web", "shop");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", first); }, absl::Seconds(60)))
      << Describe("web");
  const std::string deploy = "/apis/apps/v1/namespaces/shop/deployments/web";
  EXPECT_EQ(Live(deploy)["spec"]["replicas"], 1) << "a new object gets the manifest's value";
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "yaml"}),
              HasSubstr("--ignore-difference=apps/Deployment:shop/web=/spec/replicas"));
  ScaleAsAnAutoscaler(deploy, 4);
  absl::SleepFor(absl::Seconds(3));  // drift checks run every second
  EXPECT_EQ(Live(deploy)["spec"]["replicas"], 4) << agent_->Log();

  const json listed = json::parse(Ctl({"bundle", "list", "-o", "json"}), nullptr, false);
  const std::string revision = listed["bundles"][0].value("revision", "");
  ASSERT_FALSE(revision.empty()) << listed.dump();
  cp_.reset();
  agent_.reset();
  StartControlPlane("cp2.log");
  StartAgent("agent2.log");
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Status("web");
        return s && s->desired_revision() == revision && s->applied_revision() == revision &&
               s->sync_state() == v1::SYNC_STATE_SYNCED;
      },
      absl::Seconds(60)))
      << Describe("web");
  const json again = json::parse(Ctl({"bundle", "list", "-o", "json"}), nullptr, false);
  EXPECT_EQ(again["bundles"][0].value("revision", ""), revision) << again.dump();
  absl::SleepFor(absl::Seconds(3));
  EXPECT_EQ(Live(deploy)["spec"]["replicas"], 4) << agent_->Log();

  // Taking the patch out makes the replicas the repository's again.
  git_.Write("apps/web/fleet.yaml", "defaultNamespace: shop\n");
  const std::string second = git_.Commit("the replicas are ours again");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", second); }, absl::Seconds(60)))
      << Describe("web");
  EXPECT_TRUE(Eventually([&] { return Live(deploy)["spec"]["replicas"] == 1; }, absl::Seconds(30)))
      << agent_->Log();
}

// A folder moved from Rancher Fleet, whose fleet.yaml names the namespace its objects go to
// and which no cluster has yet: the apply fails saying what to do; `bundle set
// --create-namespace` makes the agent create it, and the objects land there. Removing the
// bundle prunes them and leaves the namespace.
TEST_F(KubernetesFleet, AFleetRepositorysNamespaceIsCreatedWhenAskedFor) {
  StartFakeCluster(/*simulate_controllers=*/true);
  git_.Write("apps/web/fleet.yaml",
             "defaultNamespace: web-from-fleet\nnamespaceLabels: {istio-injection: enabled}\n");
  git_.Write("apps/web/settings.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  v: \"1\"\n");
  const std::string first = git_.Commit("from Fleet");
  StartFleet();
  int code;
  std::string out = Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0) << out;
  const std::string cm = "/api/v1/namespaces/web-from-fleet/configmaps/settings";
  EXPECT_TRUE(Eventually(
      [&] {
        std::optional<v1::BundleStatus> s = Status("web");
        return s && s->sync_state() == v1::SYNC_STATE_FAILED &&
               absl::StrContains(s->DebugString(), "--create-namespace");
      },
      absl::Seconds(60)))
      << Describe("web");
  EXPECT_TRUE(Live("/api/v1/namespaces/web-from-fleet").is_null());

  out = Ctl({"bundle", "set", "web", "--create-namespace"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("--create-namespace: false -> true"));
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", first); }, absl::Seconds(60)))
      << Describe("web");
  json ns = Live("/api/v1/namespaces/web-from-fleet");
  ASSERT_FALSE(ns.is_null());
  EXPECT_EQ(ns["metadata"]["annotations"]["gitfleet.io/created-for-bundle"], "web");
  EXPECT_EQ(ns["metadata"]["labels"]["istio-injection"], "enabled") << "fleet.yaml's label";
  EXPECT_EQ(Live(cm)["data"]["v"], "1");

  out = Ctl({"bundle", "remove", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] { return Live(cm).is_null(); }, absl::Seconds(60))) << agent_->Log();
  EXPECT_FALSE(Live("/api/v1/namespaces/web-from-fleet").is_null()) << "never the bundle's";
}

TEST_F(KubernetesFleet, BadCredentialsAreNamedInTheStatus) {
  StartFakeCluster(/*simulate_controllers=*/true);
  std::ofstream(root_ + "/token", std::ios::trunc) << "wrong\n";
  Manifests("shop", "1", false);
  git_.Commit("first");
  StartFleet();
  int code;
  Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code);
  Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0);
  EXPECT_TRUE(Eventually([&] {
    auto s = Status("web");
    return s && s->sync_state() == v1::SYNC_STATE_FAILED &&
           s->message().find("401 Unauthorized") != std::string::npos;
  })) << Describe("web");
  // The cluster as a whole shows it too.
  EXPECT_TRUE(Eventually([&] {
    return Ctl({"cluster", "list"}).find("ApiAccess Unauthorized") != std::string::npos;
  })) << Ctl({"cluster", "list"});
  // An agent that cannot use its cluster's API is not ready.
  int http_code = 0;
  EXPECT_THAT(HttpGet(agent_http_, "/readyz", &http_code),
              HasSubstr("not ready: Kubernetes API: Unauthorized"));
  EXPECT_EQ(http_code, 503);

  // The token is fixed (as a rotation would): the agent recovers on its own.
  std::ofstream(root_ + "/token", std::ios::trunc) << "e2e-token\n";
  EXPECT_TRUE(Eventually(
      [&] {
        auto s = Status("web");
        return s && s->sync_state() == v1::SYNC_STATE_SYNCED;
      },
      absl::Seconds(30)))
      << Describe("web");
  EXPECT_TRUE(Eventually([&] {
    return Ctl({"cluster", "list"}).find("Unauthorized") == std::string::npos;
  })) << Ctl({"cluster", "list"});
  EXPECT_EQ(HttpGet(agent_http_, "/readyz", &http_code), "ready: connected to the control plane\n");
}

// Hooks as real repositories write them: generateName Jobs with Argo CD's annotations.
std::string HookJob(const std::string& generate_name, const std::string& phase,
                    const std::string& policy) {
  return absl::StrCat("apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: ", generate_name,
                      "\n  annotations:\n    argocd.argoproj.io/hook: ", phase,
                      "\n    argocd.argoproj.io/hook-delete-policy: ", policy,
                      "\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n"
                      "      restartPolicy: Never\n      containers:\n      - name: run\n"
                      "        image: busybox:1.36\n        command: [\"true\"]\n");
}

TEST_F(KubernetesFleet, HooksRunAroundTheSyncAndAFailedPreSyncHookStopsIt) {
  StartFakeCluster(/*simulate_controllers=*/false);
  auto write = [&](const std::string& value, const std::string& migrate_policy, bool extra) {
    git_.Write("apps/hooked/namespace.yaml",
               "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: hooks\n");
    git_.Write("apps/hooked/settings.yaml",
               absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
                            "data:\n  v: \"",
                            value, "\"\n",
                            extra ? "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                    "  name: extra\ndata: {}\n"
                                  : ""));
    git_.Write("apps/hooked/hooks.yaml",
               absl::StrCat(HookJob("migrate-", "PreSync", migrate_policy), "---\n",
                            HookJob("smoke-", "PostSync", "BeforeHookCreation"), "---\n",
                            HookJob("cleanup-", "SyncFail", "HookSucceeded")));
  };
  write("1", "HookSucceeded", true);
  const std::string first = git_.Commit("hooks");
  StartFleetWithBundle("hooked", "hooks");

  // The live Jobs starting with `prefix`, and the job controller's verdict on one.
  auto jobs = [&](const std::string& prefix) {
    std::vector<std::string> names;
    json list = Live("/apis/batch/v1/namespaces/hooks/jobs?labelSelector=gitfleet.io%2Fhook");
    if (list.is_null()) return names;
    for (const json& item : list["items"]) {
      std::string name = item["metadata"]["name"];
      if (absl::StartsWith(name, prefix)) names.push_back(name);
    }
    return names;
  };
  auto finish = [&](const std::string& job, bool ok) {
    json status = {
        {"status",
         {{"conditions",
           json::array(
               {{{"type", ok ? "Complete" : "Failed"},
                 {"status", "True"},
                 {"reason", ok ? "Completed" : "BackoffLimitExceeded"},
                 {"message", ok ? "" : "Job has reached the specified backoff limit"}}})}}}};
    absl::StatusOr<KubeResponse> r =
        api_->Do("PATCH", "/apis/batch/v1/namespaces/hooks/jobs/" + job + "/status", status.dump(),
                 "application/merge-patch+json");
    ASSERT_TRUE(r.ok() && r->code == 200) << (r.ok() ? r->body : r.status().ToString());
  };
  const std::string settings = "/api/v1/namespaces/hooks/configmaps/settings";

  // PreSync runs first, and the sync waits for it.
  ASSERT_TRUE(Eventually([&] { return jobs("migrate-").size() == 1; }, absl::Seconds(60)))
      << Describe("hooked");
  EXPECT_TRUE(Eventually([&] {
    auto s = Status("hooked");
    return s && s->sync_state() == v1::SYNC_STATE_APPLYING &&
           s->message().find("waiting for PreSync hook Job hooks/migrate-") != std::string::npos;
  })) << Describe("hooked");
  EXPECT_TRUE(Live(settings).is_null()) << "nothing is applied before PreSync finishes";
  const std::string migrate = jobs("migrate-")[0];
  finish(migrate, true);

  // Then the objects; PostSync once they are Healthy; then Synced.
  ASSERT_TRUE(Eventually([&] { return jobs("smoke-").size() == 1; }, absl::Seconds(30)))
      << Describe("hooked");
  EXPECT_FALSE(Live(settings).is_null());
  EXPECT_TRUE(jobs("migrate-").empty()) << "HookSucceeded deleted it";
  finish(jobs("smoke-")[0], true);
  ASSERT_TRUE(Eventually([&] { return SyncedAt("hooked", first); }, absl::Seconds(30)))
      << Describe("hooked");
  EXPECT_TRUE(jobs("cleanup-").empty()) << "SyncFail hooks run only when a sync fails";

  // A revision whose PreSync hook fails: nothing of it is applied, nothing pruned.
  write("2", "HookFailed", false);
  const std::string second = git_.Commit("migrate again, and drop extra");
  ASSERT_TRUE(Eventually(
      [&] {
        std::vector<std::string> m = jobs("migrate-");
        return m.size() == 1 && m[0] != migrate;
      },
      absl::Seconds(60)))
      << Describe("hooked");
  const std::string failing = jobs("migrate-")[0];
  finish(failing, false);
  ASSERT_TRUE(Eventually([&] {
    auto s = Status("hooked");
    return s && s->sync_state() == v1::SYNC_STATE_FAILED;
  })) << Describe("hooked");
  auto s = Status("hooked");
  EXPECT_THAT(s->message(), HasSubstr("PreSync hook Job hooks/" + failing +
                                      " failed: failed: BackoffLimitExceeded: Job has reached"));
  EXPECT_EQ(s->applied_commit(), first);
  EXPECT_EQ(Live(settings)["data"]["v"], "1");
  EXPECT_FALSE(Live("/api/v1/namespaces/hooks/configmaps/extra").is_null()) << "not pruned";
  EXPECT_TRUE(Eventually([&] { return jobs("migrate-").empty(); })) << "HookFailed deleted it";
  EXPECT_EQ(jobs("cleanup-").size(), 1u) << "SyncFail hooks run when the sync fails";
  EXPECT_EQ(jobs("smoke-").size(), 1u) << "the last PostSync run stays (BeforeHookCreation)";
  std::string metrics = HttpGet(agent_http_, "/metrics");
  EXPECT_THAT(metrics,
              HasSubstr("gitfleet_agent_hook_runs_total{phase=\"presync\",result=\"failed\"} 1"));
  EXPECT_THAT(
      metrics,
      HasSubstr("gitfleet_agent_hook_runs_total{phase=\"presync\",result=\"succeeded\"} 1"));
  (void)second;
}

TEST_F(KubernetesFleet, ALaterSyncWaveWaitsForTheEarlierOneToBeHealthy) {
  // No controllers: the Deployment stays Progressing until its status is written.
  StartFakeCluster(/*simulate_controllers=*/false);
  git_.Write("apps/waves/all.yaml",
             "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: waves\n---\n"
             "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: db\n"
             "spec:\n  replicas: 1\n  selector:\n    matchLabels: {app: db}\n  template:\n"
             "    metadata:\n      labels: {app: db}\n    spec:\n      containers:\n"
             "      - name: pause\n        image: registry.k8s.io/pause:3.9\n---\n"
             // Argo CD's annotation, as a repository moved from Argo CD has it.
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  annotations:\n"
             "    argocd.argoproj.io/sync-wave: \"1\"\ndata: {v: \"1\"}\n");
  const std::string commit = git_.Commit("a database before its app");
  StartFleetWithBundle("waves", "waves");

  const std::string deploy = "/apis/apps/v1/namespaces/waves/deployments/db";
  const std::string app = "/api/v1/namespaces/waves/configmaps/app";
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = Status("waves");
        return s && s->sync_state() == v1::SYNC_STATE_APPLYING &&
               absl::StrContains(s->message(),
                                 "later sync waves wait for wave 0 to be Healthy: Deployment "
                                 "db is progressing: 0 of 1 updated replicas");
      },
      absl::Seconds(60)))
      << Describe("waves");
  EXPECT_FALSE(Live(deploy).is_null());
  absl::SleepFor(absl::Seconds(3));  // passes go on; the wave still holds
  EXPECT_TRUE(Live(app).is_null()) << "wave 1 is not applied before wave 0 is Healthy";
  std::string out = Ctl({"status", "--bundle=waves"});
  EXPECT_THAT(out, HasSubstr("later sync waves wait for wave 0")) << out;

  FinishRollout(deploy);
  ASSERT_TRUE(Eventually([&] { return SyncedAt("waves", commit); }, absl::Seconds(60)))
      << Describe("waves");
  EXPECT_FALSE(Live(app).is_null());
}

TEST_F(KubernetesFleet, ARemovedBundleKeepsANamespaceWithVolumeClaimsAndSaysSo) {
  StartFakeCluster(/*simulate_controllers=*/true);
  git_.Write("apps/data/all.yaml",
             "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: data\n---\n"
             "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n"
             "spec:\n  replicas: 1\n  serviceName: db\n  selector:\n    matchLabels: {app: db}\n"
             "  template:\n    metadata:\n      labels: {app: db}\n    spec:\n"
             "      containers:\n      - name: db\n        image: postgres:16\n"
             "  volumeClaimTemplates:\n  - metadata: {name: pgdata}\n"
             "    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
  const std::string commit = git_.Commit("a database");
  StartFleetWithBundle("data", "data");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("data", commit); }, absl::Seconds(60)))
      << Describe("data");
  // The claim its StatefulSet controller makes: nobody applied it, and it outlives the
  // StatefulSet.
  json claim = {
      {"apiVersion", "v1"},
      {"kind", "PersistentVolumeClaim"},
      {"metadata", {{"name", "pgdata-db-0"}, {"namespace", "data"}}},
      {"spec",
       {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}};
  absl::StatusOr<KubeResponse> created =
      api_->Do("POST", "/api/v1/namespaces/data/persistentvolumeclaims", claim.dump());
  ASSERT_TRUE(created.ok() && created->code == 201)
      << (created.ok() ? created->body : created.status().ToString());

  int code;
  std::string out = Ctl({"bundle", "remove", "data"}, &code);
  ASSERT_EQ(code, 0) << out;
  const std::string ns = "/api/v1/namespaces/data";
  const std::string db = "/apis/apps/v1/namespaces/data/statefulsets/db";
  ASSERT_TRUE(Eventually(
      [&] {
        return Ctl({"cluster", "list"}).find("Removal PruneIncomplete") != std::string::npos;
      },
      absl::Seconds(60)))
      << Ctl({"cluster", "list"}) << agent_->Log();
  EXPECT_TRUE(Live(db).is_null()) << "the rest of the bundle is pruned";
  EXPECT_FALSE(Live(ns).is_null()) << "the Namespace, and the claim's data, stay";
  EXPECT_FALSE(Live(ns + "/persistentvolumeclaims/pgdata-db-0").is_null());
  EXPECT_THAT(Ctl({"cluster", "list"}),
              HasSubstr("bundle data was removed, but 1 of its objects is still there and tried "
                        "again; first: Namespace data: it still holds 1 PersistentVolumeClaim "
                        "(pgdata-db-0)"));
  EXPECT_EQ(MetricValue(HttpGet(agent_http_, "/metrics"), "gitfleet_agent_objects_left_to_prune"),
            1);

  // The operator deletes the claim (the explicit act): the Namespace follows.
  absl::StatusOr<KubeResponse> deleted =
      api_->Do("DELETE", ns + "/persistentvolumeclaims/pgdata-db-0");
  ASSERT_TRUE(deleted.ok() && deleted->code == 200);
  EXPECT_TRUE(Eventually([&] { return Live(ns).is_null(); }, absl::Seconds(60))) << agent_->Log();
  EXPECT_TRUE(Eventually([&] {
    return Ctl({"cluster", "list"}).find("PruneIncomplete") == std::string::npos;
  })) << Ctl({"cluster", "list"});
}

// The claim both move tests move, and the repository they move it in: `giver` (plain)
// holds the Namespace shop, a ConfigMap and the claim; `taker` (kustomize) a ConfigMap.
// Starts the fleet with `giver`, adds `taker` with `taker_flags`, and returns the claim as
// it lives once both are synced (null, with a failure, otherwise).
constexpr char kClaimPath[] = "/api/v1/namespaces/shop/persistentvolumeclaims/data";
constexpr char kClaimYaml[] =
    "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n"
    "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";

json KubernetesFleet::SyncClaimHeldBy(const std::string& giver, const std::string& taker,
                                      const std::vector<std::string>& taker_flags) {
  StartFakeCluster(/*simulate_controllers=*/true);
  git_.Write("apps/" + giver + "/all.yaml",
             "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n"
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " +
                 giver + "\ndata: {v: '1'}\n");
  git_.Write("apps/" + giver + "/claim.yaml", kClaimYaml);
  git_.Write("apps/" + taker + "/kustomization.yaml", "resources: [" + taker + ".yaml]\n");
  git_.Write("apps/" + taker + "/" + taker + ".yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + taker + "\ndata: {v: '1'}\n");
  const std::string first = git_.Commit(giver + " holds the claim");
  StartFleetWithBundle(giver, "shop");
  std::vector<std::string> add = {
      "bundle", "add", taker, "--source=demo", "--path=apps/" + taker, "--namespace=shop"};
  add.insert(add.end(), taker_flags.begin(), taker_flags.end());
  int code;
  std::string out = Ctl(add, &code);
  if (code != 0) {
    ADD_FAILURE() << out;
    return nullptr;
  }
  if (!Eventually([&] { return SyncedAt(giver, first) && SyncedAt(taker, first); },
                  absl::Seconds(60))) {
    ADD_FAILURE() << Describe(giver) << Describe(taker) << cp_->Log() << agent_->Log();
    return nullptr;
  }
  json claim = Live(kClaimPath);
  EXPECT_EQ(claim["metadata"]["labels"]["gitfleet.io/bundle"], giver);
  return claim;
}

std::string KubernetesFleet::MoveClaim(const std::string& giver, const std::string& taker) {
  git_.Remove("apps/" + giver + "/claim.yaml");
  git_.Write("apps/" + taker + "/claim.yaml", kClaimYaml);
  git_.Write("apps/" + taker + "/kustomization.yaml",
             "resources: [" + taker + ".yaml, claim.yaml]\n");
  return git_.Commit("the claim moves to " + taker);
}

bool HasKustomize() {
  return ::gitfleet::testing::Run(
             "command -v kubectl >/dev/null || command -v kustomize "
             ">/dev/null") == 0;
}

// One commit moves a volume claim from bundle api to bundle web, while web is suspended
// (or behind its rollout's gate): api's revision reaches the cluster long before web's.
// The claim is never deleted, which would lose its data: it stays, keeps its identity
// (uid), and web takes it over once it may.
TEST_F(KubernetesFleet, AVolumeClaimMovedBetweenBundlesInOneCommitIsNeverDeleted) {
  if (!HasKustomize()) GTEST_SKIP() << "neither kubectl nor kustomize is installed";
  const json before = SyncClaimHeldBy("api", "web", {});
  ASSERT_FALSE(before.is_null());
  int code;
  std::string out = Ctl({"bundle", "suspend", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  const std::string moved = MoveClaim("api", "web");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("api", moved); }, absl::Seconds(60)))
      << Describe("api");
  std::optional<v1::BundleStatus> api = Status("api");
  ASSERT_TRUE(api.has_value());
  EXPECT_THAT(api->message(), HasSubstr("1 object that left the bundle stays in place for "
                                        "bundle web"));
  EXPECT_EQ(Live(kClaimPath)["metadata"]["uid"], before["metadata"]["uid"]) << agent_->Log();
  EXPECT_EQ(Live(kClaimPath)["metadata"]["labels"]["gitfleet.io/bundle"], "api");
  // A drift pass or two later it is still there.
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Live(kClaimPath)["metadata"]["uid"], before["metadata"]["uid"]) << agent_->Log();

  out = Ctl({"bundle", "resume", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", moved); }, absl::Seconds(60)))
      << Describe("web");
  const json after = Live(kClaimPath);
  ASSERT_FALSE(after.is_null()) << agent_->Log();
  EXPECT_EQ(after["metadata"]["uid"], before["metadata"]["uid"]) << "deleted and created again\n"
                                                                 << agent_->Log();
  EXPECT_EQ(after["metadata"]["labels"]["gitfleet.io/bundle"], "web");
  EXPECT_TRUE(Eventually([&] {
    std::optional<v1::BundleStatus> s = Status("api");
    return s && s->message().empty();
  })) << Describe("api");
}

// A claim moved between repositories, the documented way: the team adds it to web's
// repository (polled hourly), then removes it from api's. api's render fetches web's
// repository before it goes, so the claim is handed over, never deleted, though the
// control plane had not seen web's commit when api's arrived.
TEST_F(KubernetesFleet, AVolumeClaimMovedToAnotherRepositoryIsNeverDeleted) {
  StartFakeCluster(/*simulate_controllers=*/true);
  git_.Write("apps/api/all.yaml",
             "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n"
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\ndata: {v: '1'}\n");
  git_.Write("apps/api/claim.yaml", kClaimYaml);
  const std::string first = git_.Commit("api holds the claim");
  GitFixture web_repo(root_ + "/web-repo");
  web_repo.Write("web/web.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n");
  const std::string web_first = web_repo.Commit("web");
  StartFleetWithBundle("api", "shop");
  int code;
  std::string out =
      Ctl({"source", "add", "web-repo", "--url=" + web_repo.url(), "--interval=1h"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "web", "--source=web-repo", "--path=web", "--namespace=shop"}, &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_TRUE(Eventually([&] { return SyncedAt("api", first) && SyncedAt("web", web_first); },
                         absl::Seconds(60)))
      << Describe("api") << Describe("web");
  const json before = Live(kClaimPath);
  ASSERT_EQ(before["metadata"]["labels"]["gitfleet.io/bundle"], "api");

  web_repo.Write("web/claim.yaml", kClaimYaml);
  const std::string taken = web_repo.Commit("web takes the claim");
  git_.Remove("apps/api/claim.yaml");
  const std::string dropped = git_.Commit("api lets the claim go");
  ASSERT_TRUE(Eventually([&] { return SyncedAt("api", dropped); }, absl::Seconds(60)))
      << Describe("api") << cp_->Log();
  EXPECT_EQ(Live(kClaimPath)["metadata"]["uid"], before["metadata"]["uid"]) << "deleted\n"
                                                                            << agent_->Log();
  ASSERT_TRUE(Eventually([&] { return SyncedAt("web", taken); }, absl::Seconds(60)))
      << Describe("web") << cp_->Log();
  const json after = Live(kClaimPath);
  ASSERT_FALSE(after.is_null()) << agent_->Log();
  EXPECT_EQ(after["metadata"]["uid"], before["metadata"]["uid"]) << "deleted and created again\n"
                                                                 << agent_->Log();
  EXPECT_EQ(after["metadata"]["labels"]["gitfleet.io/bundle"], "web");
  EXPECT_THAT(Ctl({"events", "--bundle=api", "--type=render.waiting"}),
              HasSubstr("waits for source web-repo (another repository on its clusters) to fetch"));
}

// The other way round: the bundle the claim moves to is rolled out in partitions and its
// revision comes first (the giver is suspended here; a giver behind its own rollout's
// gate is the same). The claim it cannot take yet is waited for, not failed on, so the
// move does not pause its rollout; it takes the claim over once the giver lets go.
void KubernetesFleet::ExpectApiWaitsThenTakesOver(const json& before, const std::string& moved) {
  ASSERT_TRUE(Eventually(
      [&] {
        std::optional<v1::BundleStatus> s = Status("api");
        return s && absl::StrContains(s->message(), "waits for bundle web to let go of it");
      },
      absl::Seconds(60)))
      << Describe("api") << Ctl({"rollout", "status", "api"}) << cp_->Log() << agent_->Log();
  absl::SleepFor(absl::Seconds(1));
  EXPECT_THAT(Ctl({"rollout", "status", "api"}), Not(HasSubstr("paused")));
  EXPECT_EQ(Live(kClaimPath)["metadata"]["labels"]["gitfleet.io/bundle"], "web");

  int code;
  std::string out = Ctl({"bundle", "resume", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_TRUE(Eventually([&] { return SyncedAt("api", moved) && SyncedAt("web", moved); },
                         absl::Seconds(60)))
      << Describe("api") << Describe("web") << Ctl({"rollout", "status", "api"}) << cp_->Log()
      << agent_->Log();
  const json after = Live(kClaimPath);
  ASSERT_FALSE(after.is_null()) << agent_->Log();
  EXPECT_EQ(after["metadata"]["uid"], before["metadata"]["uid"]) << agent_->Log();
  EXPECT_EQ(after["metadata"]["labels"]["gitfleet.io/bundle"], "api");
  EXPECT_THAT(Ctl({"rollout", "status", "api"}), Not(HasSubstr("paused")));
}

TEST_F(KubernetesFleet, AMoveIntoAPartitionedBundleDoesNotPauseItsRollout) {
  if (!HasKustomize()) GTEST_SKIP() << "neither kubectl nor kustomize is installed";
  const json before = ClaimHeldBySuspendedWeb();
  ASSERT_FALSE(before.is_null());
  ExpectApiWaitsThenTakesOver(before, MoveClaim("web", "api"));
}

// The same move, with the control plane restarted between the commit and the cluster
// hearing of it (the agent away meanwhile): the new control plane knows web's newest
// render but not what the agent's older revision of web held. It reads that revision
// from its store when the agent connects, so api's update still names the claim.
TEST_F(KubernetesFleet, AMoveSurvivesAControlPlaneRestart) {
  if (!HasKustomize()) GTEST_SKIP() << "neither kubectl nor kustomize is installed";
  const json before = ClaimHeldBySuspendedWeb();
  ASSERT_FALSE(before.is_null());
  agent_.reset();
  const std::string moved = MoveClaim("web", "api");
  int code;
  std::string out = Ctl({"sync", "demo"}, &code);  // returns once both are rendered
  ASSERT_EQ(code, 0) << out;
  ASSERT_THAT(Ctl({"bundle", "history", "api"}), HasSubstr(moved.substr(0, 12)));
  cp_.reset();
  StartControlPlane("cp2.log");
  StartAgent("agent2.log");
  ExpectApiWaitsThenTakesOver(before, moved);
}

TEST_F(KubernetesFleet, RealCluster) {
  const char* kubeconfig = std::getenv("KUBECONFIG");
  if (kubeconfig == nullptr || *kubeconfig == '\0') {
    GTEST_SKIP() << "KUBECONFIG is not set; see README (Testing on a real cluster)";
  }
  kubeconfig_ = kubeconfig;
  ConnectApi();
  SyncHealDriftPrune(absl::StrCat("gitfleet-e2e-", getpid()), /*fake=*/false);
}

}  // namespace
}  // namespace gitfleet
