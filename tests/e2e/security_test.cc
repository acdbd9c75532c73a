// Who may do what: the admin API's tokens and roles, client certificates, and agents'
// certificates, each against the real binaries. Every refusal leaves everything as it was.

#include <signal.h>
#include <stdio.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "controlplane/render/kustomize_renderer.h"
#include "grpcpp/create_channel.h"
#include "proto/grpc/reflection/v1/reflection.grpc.pb.h"
#include "proto/grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/e2e/fleet_fixture.h"
#include "tests/util/chart_server.h"
#include "tests/util/fake_tools.h"
#include "tests/util/git_servers.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::Cm;
using ::gitfleet::testing::Eventually;
using ::gitfleet::testing::Fleet;
using ::testing::HasSubstr;
using ::testing::Not;

class Security : public Fleet {
 protected:
  // An SSH key `release` under root_ and a key folder `signers` trusting it (git's
  // allowed_signers) in the returned credentials dir.
  std::string WriteSigners() {
    const std::string credentials = root_ + "/credentials";
    EXPECT_EQ(::gitfleet::testing::Run(absl::StrCat(
                  "set -e; mkdir -p '", credentials, "/signers'; cd '", root_,
                  "'; ssh-keygen -q -t ed25519 -N '' -f release; printf 'release@example.com "
                  "%s\\n' \"$(cut -d' ' -f1,2 release.pub)\" > '",
                  credentials, "/signers/allowed_signers'")),
              0);
    return credentials;
  }
  // Commits what is staged and changed (signed with `release` when `sign`); its id.
  std::string CommitAll(bool sign, const std::string& message) {
    std::string id;
    EXPECT_EQ(
        ::gitfleet::testing::Run(
            absl::StrCat("cd '", git_.dir(), "' && git -c gpg.format=ssh -c user.signingkey='",
                         root_, "/release' commit -q ", sign ? "-S " : "", "-am '", message,
                         "' && git rev-parse HEAD"),
            &id),
        0)
        << id;
    return std::string(absl::StripAsciiWhitespace(id));
  }

  // A token file for `token`, and its line for --api-tokens.
  std::string TokenFile(const std::string& name, const std::string& role,
                        const std::string& token) {
    std::string path = root_ + "/token-" + name;
    std::ofstream(path) << token << "\n";
    std::string line = Ctl({"token", "hash", name, role, "--token-file=" + path});
    absl::StrAppend(&api_tokens_, line);
    return path;
  }

  // gitfleetctl with `token_file` (none when empty); returns output, sets `code`.
  std::string As(const std::string& token_file, std::vector<std::string> args, int* code) {
    if (!token_file.empty()) args.insert(args.begin(), "--token-file=" + token_file);
    return Ctl(args, code);
  }

  void StartWithTokens(std::vector<std::string> extra = {}) {
    std::ofstream(root_ + "/api-tokens") << api_tokens_;
    extra.push_back("--api-tokens=" + root_ + "/api-tokens");
    StartControlPlane(extra);
  }

  // The services server reflection lists for a caller that sends `authorization` (none
  // when empty), space-separated; the status when it refuses. In the version whose stub,
  // request and response types are given.
  template <typename Reflection, typename Request, typename Response>
  std::string ReflectedServicesIn(const std::string& authorization) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    auto stream = Reflection::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_),
                                                          grpc::InsecureChannelCredentials()))
                      ->ServerReflectionInfo(&context);
    Request request;
    request.set_list_services("");
    stream->Write(request);
    Response response;
    std::vector<std::string> names;
    if (stream->Read(&response)) {
      for (const auto& service : response.list_services_response().service()) {
        names.push_back(service.name());
      }
    }
    stream->WritesDone();
    const grpc::Status status = stream->Finish();
    if (!status.ok())
      return absl::StrCat("refused: ", status.error_code(), " ", status.error_message());
    return absl::StrJoin(names, " ");
  }
  std::string ReflectedServices(const std::string& token) {
    return ReflectedServicesAs(token.empty() ? "" : "Bearer " + token);
  }
  std::string ReflectedServicesAs(const std::string& authorization) {
    namespace r = grpc::reflection::v1alpha;
    return ReflectedServicesIn<r::ServerReflection, r::ServerReflectionRequest,
                               r::ServerReflectionResponse>(authorization);
  }
  std::string ReflectedServicesV1(const std::string& token) {
    namespace r = grpc::reflection::v1;
    return ReflectedServicesIn<r::ServerReflection, r::ServerReflectionRequest,
                               r::ServerReflectionResponse>(token.empty() ? "" : "Bearer " + token);
  }

  void RestartControlPlaneKeepingData() {
    cp_->Kill(SIGTERM);
    StartControlPlane();
  }

  std::string api_tokens_;
};

TEST_F(Security, EachRoleMayDoItsOwnAndNothingMoreAndEveryChangeIsAudited) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  std::string admin = TokenFile("ci", "admin", "admin-secret-1");
  std::string viewer = TokenFile("grafana", "viewer", "viewer-secret-2");
  std::string op = TokenFile("oncall", "operator", "operator-secret-3");
  std::string wrong = root_ + "/wrong";
  std::ofstream(wrong) << "not-a-token\n";
  ASSERT_THAT(api_tokens_, HasSubstr("grafana viewer "));
  ASSERT_THAT(api_tokens_, Not(HasSubstr("viewer-secret-2"))) << "only hashes are stored";
  StartWithTokens();
  admin_token_ = "admin-secret-1";
  ctl_flags_ = {"--token-file=" + admin};
  StartAgent("prod-eu", "env=prod");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  ctl_flags_.clear();

  int code = 0;
  // No token, and a wrong one, even on loopback: UNAUTHENTICATED.
  EXPECT_THAT(As("", {"source", "list"}, &code), HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(code, 1);
  EXPECT_THAT(As(wrong, {"source", "list"}, &code), HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(code, 1);
  // A viewer reads, and may not add a bundle.
  EXPECT_THAT(As(viewer, {"bundle", "list"}, &code), HasSubstr("web"));
  EXPECT_EQ(code, 0);
  std::string out =
      As(viewer, {"bundle", "add", "evil", "--source=demo", "--path=apps/web"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(out, HasSubstr("AddBundle needs role admin; caller grafana has role viewer"));
  // An operator syncs, and may not remove a source.
  As(op, {"sync", "demo"}, &code);
  EXPECT_EQ(code, 0);
  out = As(op, {"source", "remove", "demo"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("RemoveSource needs role admin; caller oncall has role operator"));
  // A viewer may not take a backup (it holds every definition).
  out = As(viewer, {"backup", "--out=" + root_ + "/b.db"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("Backup needs role admin"));
  // The token from the environment works as --token-file does.
  std::string env_out;
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("GITFLEET_TOKEN=viewer-secret-2 ", ::gitfleet::testing::kCtl,
                             " --server=127.0.0.1:", grpc_port_, " source list"),
                &env_out),
            0)
      << env_out;
  EXPECT_THAT(env_out, HasSubstr("demo"));
  // An agent's token is not an API token.
  std::string agent_token = root_ + "/agent-token";
  std::ofstream(agent_token) << "agent-secret\n";
  EXPECT_THAT(As(agent_token, {"source", "list"}, &code), HasSubstr("UNAUTHENTICATED"));
  // Server reflection (what grpcurl reads the schema with) answers API callers only.
  EXPECT_THAT(ReflectedServices(""), HasSubstr("refused: 16 "));  // UNAUTHENTICATED
  EXPECT_THAT(ReflectedServices("agent-secret"), HasSubstr("refused: 16 "));
  EXPECT_THAT(ReflectedServices("viewer-secret-2"), HasSubstr("gitfleet.v1.AdminService"));
  // The scheme's name in any case, and spaces, as other clients write them (RFC 7235).
  EXPECT_THAT(ReflectedServicesAs("bearer viewer-secret-2"), HasSubstr("gitfleet.v1.AdminService"));
  EXPECT_THAT(ReflectedServicesAs("BEARER  viewer-secret-2 "),
              HasSubstr("gitfleet.v1.AdminService"));
  EXPECT_THAT(ReflectedServicesAs("Basic dmlld2VyLXNlY3JldC0y"), HasSubstr("refused: 16 "));
  EXPECT_THAT(ReflectedServicesAs("viewer-secret-2"), HasSubstr("refused: 16 "));
  // v1 too, which newer clients ask first: the same gate.
  EXPECT_THAT(ReflectedServicesV1(""), HasSubstr("refused: 16 "));
  EXPECT_THAT(ReflectedServicesV1("viewer-secret-2"), HasSubstr("gitfleet.v1.AdminService"));
  EXPECT_EQ(CpMetric("gitfleet_api_requests_total{code=\"unauthenticated\",method="
                     "\"ServerReflectionInfo\"}"),
            5);
  EXPECT_EQ(CpMetric("gitfleet_api_requests_total{code=\"ok\",method=\"ServerReflectionInfo\"}"),
            4);
  EXPECT_FALSE(cp_->WaitForLog("audit: refused ServerReflectionInfo .*from ipv4:127").empty())
      << "refused like any admin call";

  // Nothing the refused calls asked for happened.
  out = As(viewer, {"bundle", "list"}, &code);
  EXPECT_THAT(out, Not(HasSubstr("evil")));
  EXPECT_THAT(As(viewer, {"source", "list"}, &code), HasSubstr("demo"));
  ExpectSynced("prod-eu", "web", first);

  // Counted by method and code; changes and refusals are in the audit log.
  EXPECT_GE(
      CpMetric("gitfleet_api_requests_total{code=\"permission_denied\",method=\"AddBundle\"}"), 1);
  EXPECT_GE(
      CpMetric("gitfleet_api_requests_total{code=\"unauthenticated\",method=\"ListSources\"}"), 2);
  EXPECT_GE(CpMetric("gitfleet_api_requests_total{code=\"ok\",method=\"AddBundle\"}"), 2);
  EXPECT_FALSE(cp_->WaitForLog("audit: ci \\(admin by token\\) AddBundle web").empty());
  EXPECT_FALSE(cp_->WaitForLog("audit: oncall \\(operator by token\\) SyncSource demo").empty());
  EXPECT_FALSE(cp_->WaitForLog("audit: refused AddBundle evil .* from grafana").empty());
  EXPECT_THAT(cp_->Log(), Not(HasSubstr("viewer-secret-2")));

  // A leaked token is revoked by removing its line, without a restart (the file is
  // replaced as a mounted Secret is, and read again within a second).
  std::string kept;
  for (absl::string_view line : absl::StrSplit(api_tokens_, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "grafana ")) absl::StrAppend(&kept, line, "\n");
  }
  std::ofstream(root_ + "/api-tokens.new") << kept;
  ASSERT_EQ(rename((root_ + "/api-tokens.new").c_str(), (root_ + "/api-tokens").c_str()), 0);
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(As(viewer, {"source", "list"}, &code), "UNAUTHENTICATED");
  })) << cp_->Log();
  EXPECT_THAT(As(admin, {"source", "list"}, &code), HasSubstr("demo"));
  EXPECT_EQ(code, 0);
  EXPECT_THAT(As(op, {"source", "list"}, &code), HasSubstr("demo"));
}

// A team's token (Argo CD's projects, Fleet's workspaces): its own sources, from its own
// repositories, its own bundles, which reach its own clusters alone; it reads its share and
// nothing else, and nothing fleet-wide is its to do. Each refusal leaves everything as it was.
TEST_F(Security, AScopedTokenReachesItsTeamsShareOfTheFleetAndNoMore) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  git_.Write("teams/a/app.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: team-a-app\n  namespace: "
             "team-a-web\ndata: {v: \"1\"}\n");
  git_.Write("teams/a-admin/role.yaml",
             "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n"
             "  name: team-a-is-root\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: "
             "ClusterRole, name: cluster-admin}\nsubjects: []\n");
  // The platform team's repository, whose base the control plane trusts for everyone.
  testing::GitFixture platform(root_ + "/platform");
  platform.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
  platform.Write("base/cm.yaml", Cm("platform-secret-config"));
  platform.Commit("platform");
  std::unique_ptr<testing::Process> daemon;
  const int port = StartGitDaemon(&daemon);
  ASSERT_GT(port, 0) << "git daemon did not start";
  git_.Write("shared/cm.yaml", Cm("shared-by-all"));
  git_.Write("teams/a-remote/kustomization.yaml",
             absl::StrCat("resources:\n- git://127.0.0.1:", port, "/platform//base\n"));
  std::string first = git_.Commit("first");
  std::string admin = TokenFile("ci", "admin", "admin-secret-1");
  const std::string team = root_ + "/token-team-a";
  std::ofstream(team) << "team-a-secret\n";
  int code = 0;
  std::string line = Ctl({"token", "hash", "team-a", "admin", "--token-file=" + team,
                          "--bundles=team-a-*", "--sources=team-a-*", "--repos=" + git_.url(),
                          "--clusters=team in (a)", "--namespaces=team-a-*"},
                         &code);
  ASSERT_EQ(code, 0) << line;
  EXPECT_THAT(line, HasSubstr(" clusters=\"team in (a)\""));
  absl::StrAppend(&api_tokens_, line);
  // Team c applies as a service account of its own, and decrypts with one key.
  const std::string team_c = root_ + "/token-team-c";
  std::ofstream(team_c) << "team-c-secret\n";
  const std::string age_key = "age1henwn645drkd3fa34t27t2w2x0nsgw3w4h62gmg5x5xflyjpy38s5cncph";
  line = Ctl({"token", "hash", "team-c", "admin", "--token-file=" + team_c, "--bundles=team-c-*",
              "--sources=demo", "--clusters=team=a", "--service-account=team-c/deployer",
              "--sops-keys=" + age_key, "--kinds=ConfigMap,apps/*"},
             &code);
  ASSERT_EQ(code, 0) << line;
  absl::StrAppend(&api_tokens_, line);
  EXPECT_THAT(Ctl({"token", "hash", "x", "admin", "--token-file=" + team, "--bundle=a"}, &code),
              HasSubstr("bundle"));
  EXPECT_EQ(code, 2) << "a mistyped scope key is refused, not ignored";
  EXPECT_THAT(
      Ctl({"token", "hash", "x", "admin", "--token-file=" + team, "--clusters=team in"}, &code),
      HasSubstr("token hash: clusters=: "));
  EXPECT_EQ(code, 2);
  StartWithTokens({absl::StrCat("--kustomize-remote-bases=git://127.0.0.1:", port, "/")});
  admin_token_ = "admin-secret-1";
  ctl_flags_ = {"--token-file=" + admin};
  StartAgent("a-dev", "team=a,env=prod");
  StartAgent("b-dev", "team=b,env=prod");
  AddSourceAndBundles();
  ExpectSynced("a-dev", "web", first);
  ExpectSynced("b-dev", "web", first);
  ctl_flags_.clear();

  // It can ask who it is taken to be.
  std::string out = As(team, {"whoami"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("team-a (admin by token)"));
  EXPECT_THAT(out, HasSubstr("  bundles: team-a-*\n"));
  EXPECT_THAT(out, HasSubstr("  clusters: team in (a)\n"));
  EXPECT_THAT(out, HasSubstr("  namespaces: team-a-*\n"));
  EXPECT_THAT(As(admin, {"whoami"}, &code),
              HasSubstr("ci (admin by token)\nscope: the whole fleet"));

  // Its source: its name, its repository.
  out = As(team, {"source", "add", "team-a-src", "--url=" + git_.url(), "--interval=1s"}, &code);
  EXPECT_EQ(code, 0) << out;
  out = As(team, {"source", "add", "team-a-other", "--url=" + git_.url() + "-other"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(out, HasSubstr("caller team-a's scope (bundles=team-a-* sources=team-a-* repos="));
  EXPECT_THAT(out, HasSubstr("does not cover repository " + git_.url() + "-other"));
  EXPECT_THAT(As(team, {"source", "add", "payments", "--url=" + git_.url()}, &code),
              HasSubstr("does not cover source payments"));
  EXPECT_THAT(
      As(team, {"source", "add", "team-a-x", "--url=" + git_.url(), "--credentials=fleet-key"},
         &code),
      HasSubstr("does not cover credential fleet-key"));
  EXPECT_THAT(
      As(team, {"source", "add", "team-a-x", "--url=" + git_.url(), "--verify-commits=fleet-keys"},
         &code),
      HasSubstr("does not cover signing keys fleet-keys"));
  // With submodules or LFS, the source is held to its repositories where it fetches.
  out = As(team, {"source", "add", "team-a-y", "--url=" + git_.url(), "--submodules"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(As(team, {"source", "list", "-o", "json"}, &code),
              HasSubstr("\"submodules\": true,\n    \"scope_repos\": [\n     \"" + git_.url()));
  As(team, {"source", "remove", "team-a-y"}, &code);
  EXPECT_EQ(code, 0);

  // Its bundle, asked for every cluster, reaches its clusters alone.
  out = As(team, {"bundle", "add", "team-a-app", "--source=team-a-src", "--path=teams/a"}, &code);
  EXPECT_EQ(code, 0) << out;
  ExpectSynced("a-dev", "team-a-app", first);
  std::vector<v1::BundleStatus> statuses = Status("", "team-a-app");
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].cluster(), "a-dev");
  // Its own bundle it may refresh (fetched and rendered again now).
  out = As(team, {"bundle", "refresh", "team-a-app"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("bundle team-a-app refreshed: revision "));
  EXPECT_THAT(Files("b-dev"), Not(::testing::Contains(HasSubstr("team-a-app"))));
  // Within its clusters, its objects stay in its namespaces: a cluster-wide binding fails
  // on the cluster, naming why, and is not applied.
  out = As(team, {"bundle", "add", "team-a-admin", "--source=team-a-src", "--path=teams/a-admin"},
           &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] {
    std::vector<v1::BundleStatus> s = Status("a-dev", "team-a-admin");
    return s.size() == 1 && s[0].sync_state() == v1::SYNC_STATE_FAILED;
  }));
  EXPECT_THAT(As(team, {"status", "--bundle=team-a-admin"}, &code),
              HasSubstr("ClusterRoleBinding team-a-is-root is cluster-scoped; the bundle's scope "
                        "allows objects in namespaces team-a-* alone"));
  EXPECT_THAT(Files("a-dev"), Not(::testing::Contains(HasSubstr("team-a-is-root"))));
  // What its renders fetch comes from its repositories too: the platform's base, which
  // the control plane trusts, is not its to read.
  if (!FindKustomize().empty()) {
    out =
        As(team, {"bundle", "add", "team-a-remote", "--source=team-a-src", "--path=teams/a-remote"},
           &code);
    EXPECT_THAT(out, HasSubstr(absl::StrCat("the remote base git://127.0.0.1:", port,
                                            "/platform is outside the repositories of the "
                                            "bundle's scope (" +
                                                git_.url() + ")")));
    EXPECT_THAT(Files("a-dev"), Not(::testing::Contains(HasSubstr("platform-secret-config"))));
  }
  EXPECT_THAT(As(team,
                 {"bundle", "add", "team-a-sys", "--source=team-a-src", "--path=teams/a",
                  "--namespace=kube-system"},
                 &code),
              HasSubstr("--namespace kube-system is outside the namespaces of its scope"));
  EXPECT_THAT(
      As(team, {"bundle", "add", "payments", "--source=team-a-src", "--path=teams/a"}, &code),
      HasSubstr("does not cover bundle payments"));
  EXPECT_THAT(As(team, {"bundle", "add", "team-a-web", "--source=demo", "--path=apps/web"}, &code),
              HasSubstr("does not cover source demo"));

  // It reads its share, and nothing else.
  out = As(team, {"bundle", "list"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("team-a-app"));
  EXPECT_THAT(out, HasSubstr("[scope of team-a: team in (a)]"));
  EXPECT_THAT(out, Not(HasSubstr("web")));
  EXPECT_THAT(out, Not(::testing::ContainsRegex("\nbase ")));
  out = As(team, {"source", "list"}, &code);
  EXPECT_THAT(out, HasSubstr("team-a-src"));
  EXPECT_THAT(out, Not(HasSubstr("demo")));
  out = As(team, {"cluster", "list"}, &code);
  EXPECT_THAT(out, HasSubstr("a-dev"));
  EXPECT_THAT(out, Not(HasSubstr("b-dev")));
  out = As(team, {"status"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("team-a-app"));
  EXPECT_THAT(out, Not(HasSubstr("b-dev")));
  EXPECT_THAT(out, Not(HasSubstr("web")));
  EXPECT_THAT(As(team, {"status", "--bundle=web"}, &code), HasSubstr("does not cover bundle web"));
  EXPECT_THAT(As(team, {"status", "--cluster=b-dev"}, &code),
              HasSubstr("does not cover cluster b-dev"));
  out = As(team, {"events", "-o", "json"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("team-a-app"));
  EXPECT_THAT(out, HasSubstr("\"a-dev\""));
  EXPECT_THAT(out, Not(HasSubstr("\"web\"")));
  EXPECT_THAT(out, Not(HasSubstr("\"demo\"")));
  EXPECT_THAT(out, Not(HasSubstr("b-dev")));
  EXPECT_THAT(As(team, {"events", "--bundle=base"}, &code), HasSubstr("does not cover bundle"));

  // Nothing fleet-wide, and nothing of another's.
  EXPECT_THAT(As(team, {"cluster", "label", "b-dev", "team=a"}, &code),
              HasSubstr("LabelCluster is the whole fleet's; caller team-a is scoped"));
  EXPECT_THAT(As(team, {"backup", "--out=" + root_ + "/b.db"}, &code),
              HasSubstr("Backup is the whole fleet's"));
  EXPECT_THAT(As(team, {"cluster", "suspend", "b-dev"}, &code),
              HasSubstr("does not cover cluster b-dev"));
  EXPECT_THAT(As(team, {"bundle", "suspend", "web"}, &code),
              HasSubstr("does not cover bundle web"));
  EXPECT_THAT(As(team, {"bundle", "refresh", "web"}, &code),
              HasSubstr("does not cover bundle web"));
  EXPECT_THAT(As(team, {"bundle", "remove", "web"}, &code), HasSubstr("does not cover bundle web"));
  EXPECT_THAT(As(team, {"source", "remove", "demo"}, &code), HasSubstr("does not cover source"));
  EXPECT_THAT(As(team, {"sync", "demo"}, &code), HasSubstr("does not cover source demo"));
  EXPECT_THAT(As(team, {"rollout", "pause", "web"}, &code), HasSubstr("does not cover bundle web"));
  As(team, {"cluster", "suspend", "a-dev"}, &code);
  EXPECT_EQ(code, 0);
  As(team, {"cluster", "resume", "a-dev"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_FALSE(
      cp_->WaitForLog("audit: team-a \\(admin by token\\) AddBundle payments .*does not cover "
                      "bundle payments")
          .empty());

  // The fleet's admin replacing the team's bundle keeps it to the team's clusters.
  ctl_flags_ = {"--token-file=" + admin};
  out = Ctl({"bundle", "set", "team-a-app", "--selector=team"}, &code);
  EXPECT_EQ(code, 0) << out;
  out = Ctl({"bundle", "list"}, &code);
  EXPECT_THAT(out, HasSubstr("team [scope of team-a: team in (a)]")) << out;
  absl::SleepFor(absl::Seconds(1));
  statuses = Status("", "team-a-app");
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].cluster(), "a-dev");
  // A bundle named for the team but defined by the fleet's admin for every cluster: the
  // team's view of its rollout holds the team's clusters alone.
  out = Ctl(
      {"bundle", "add", "team-a-shared", "--source=demo", "--path=shared", "--partition-size=1"},
      &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("b-dev", "team-a-shared", first);
  ExpectSynced("a-dev", "team-a-shared", first);
  out = As(team, {"rollout", "status", "team-a-shared"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("a-dev"));
  EXPECT_THAT(out, Not(HasSubstr("b-dev")));
  EXPECT_THAT(Ctl({"rollout", "status", "team-a-shared"}), HasSubstr("b-dev"));
  // Held at the other team's cluster (suspended for maintenance), the rollout's message,
  // which names it for the admin, names no cluster outside the team's scope for the team.
  ASSERT_EQ((Ctl({"cluster", "suspend", "b-dev"}, &code), code), 0);
  git_.Write("shared/cm.yaml", Cm("shared-second"));
  const std::string second = git_.Commit("shared, second");
  ASSERT_EQ((Ctl({"bundle", "set", "team-a-shared", "--progress-deadline=1s"}, &code), code), 0);
  ASSERT_TRUE(Eventually([&] {
    return Ctl({"rollout", "status", "team-a-shared"}).find("waiting for b-dev") !=
           std::string::npos;
  })) << Ctl({"rollout", "status", "team-a-shared"});
  for (const std::vector<std::string>& look :
       {std::vector<std::string>{"rollout", "status", "team-a-shared"},
        std::vector<std::string>{"rollout", "status", "team-a-shared", "-o", "json"},
        std::vector<std::string>{"bundle", "list"},
        std::vector<std::string>{"bundle", "list", "-o", "json"}}) {
    out = As(team, look, &code);
    EXPECT_EQ(code, 0) << out;
    EXPECT_THAT(out, Not(HasSubstr("b-dev"))) << absl::StrJoin(look, " ") << ":\n" << out;
    EXPECT_THAT(out, HasSubstr("waiting for a cluster outside your scope"))
        << absl::StrJoin(look, " ") << ":\n"
        << out;
  }
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("waiting for b-dev"));
  // Its counts are of its clusters, as its rollout's are: a-dev runs the second commit.
  EXPECT_THAT(Ctl({"bundle", "list"}), ::testing::ContainsRegex("\nteam-a-shared .* 1/2 "));
  EXPECT_THAT(As(team, {"bundle", "list"}, &code),
              ::testing::ContainsRegex("\nteam-a-shared .* 1/1 "));
  // Nor do the clusters' statuses, where each revision runs, or what a refusal says.
  for (const std::vector<std::string>& look :
       {std::vector<std::string>{"status", "--bundle=team-a-shared"},
        std::vector<std::string>{"status", "--bundle=team-a-shared", "-o", "json"},
        std::vector<std::string>{"bundle", "history", "team-a-shared"},
        std::vector<std::string>{"bundle", "history", "team-a-shared", "-o", "json"},
        std::vector<std::string>{"rollout", "pause", "team-a-shared"},
        std::vector<std::string>{"rollout", "resume", "team-a-shared"}}) {
    out = As(team, look, &code);
    EXPECT_THAT(out, Not(HasSubstr("b-dev"))) << absl::StrJoin(look, " ") << ":\n" << out;
  }
  out = Ctl({"bundle", "history", "team-a-shared"}, &code);
  EXPECT_THAT(out, HasSubstr("b-dev")) << out;
  out = As(team, {"bundle", "history", "team-a-shared"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("a-dev")) << out;
  // The partition of the other team's cluster is not said to be empty.
  out = As(team, {"rollout", "status", "team-a-shared"}, &code);
  EXPECT_THAT(out, HasSubstr("no clusters in your scope")) << out;
  EXPECT_THAT(out, Not(HasSubstr("they left the bundle"))) << out;
  // Its events too: the pause at the deadline says where it waits, for the admin alone.
  ASSERT_TRUE(Eventually([&] {
    return Ctl({"events", "--bundle=team-a-shared"}).find("waiting for b-dev") != std::string::npos;
  })) << Ctl({"events", "--bundle=team-a-shared"});
  out = As(team, {"events", "--bundle=team-a-shared"}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, Not(HasSubstr("b-dev"))) << out;
  EXPECT_THAT(out, HasSubstr("waiting for a cluster outside your scope")) << out;
  ASSERT_EQ((Ctl({"cluster", "resume", "b-dev"}, &code), code), 0);
  // Everything the refused calls named is as it was.
  EXPECT_THAT(Ctl({"source", "list"}), Not(HasSubstr("team-a-other")));
  EXPECT_THAT(Ctl({"bundle", "list"}), Not(HasSubstr("payments")));
  ExpectSynced("b-dev", "web", second);
  ExpectSynced("b-dev", "base", second);
  EXPECT_THAT(Ctl({"cluster", "list"}), ::testing::ContainsRegex("b-dev .*team=b"));

  // Team c's bundles apply as its service account, whatever they ask; a directory agent,
  // which cannot act as another user, applies nothing of them rather than apply as itself.
  out = As(team_c, {"whoami"}, &code);
  EXPECT_THAT(out, HasSubstr("  applies as: service account team-c/deployer\n"));
  EXPECT_THAT(out, HasSubstr("  SOPS keys: " + age_key + "\n"));
  EXPECT_THAT(out, HasSubstr("  kinds: ConfigMap, apps/*\n"));
  // Its bundles hold those kinds alone: a render with another is applied nowhere.
  out =
      As(team_c, {"bundle", "add", "team-c-admin", "--source=demo", "--path=teams/a-admin"}, &code);
  EXPECT_THAT(out, HasSubstr("ClusterRoleBinding team-a-is-root (rbac.authorization.k8s.io/"
                             "ClusterRoleBinding: not in kinds=ConfigMap,apps/*)"))
      << code;
  As(team_c, {"bundle", "remove", "team-c-admin"}, &code);
  EXPECT_EQ(code, 0);
  out = As(team_c,
           {"bundle", "add", "team-c-app", "--source=demo", "--path=shared",
            "--service-account=kube-system/admin"},
           &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("--service-account kube-system/admin is not the service account of "
                             "its scope (team-c/deployer, of caller team-c)"));
  out = As(team_c, {"bundle", "add", "team-c-app", "--source=demo", "--path=shared"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(Ctl({"bundle", "list", "-o", "json"}),
              HasSubstr("\"service_account\": \"team-c/deployer\""));
  EXPECT_TRUE(Eventually(
      [&] {
        std::vector<v1::BundleStatus> c = Status("a-dev", "team-c-app");
        return c.size() == 1 && c[0].sync_state() == v1::SYNC_STATE_FAILED &&
               absl::StrContains(c[0].message(), "cannot act as another user");
      },
      absl::Seconds(30)))
      << As(team_c, {"status"}, &code);

  // Team a's line is narrowed to Secrets while the control plane runs: its bundles already
  // defined follow (a ConfigMap is no longer its to apply), and its clusters keep what they
  // have.
  line = Ctl({"token", "hash", "team-a", "admin", "--token-file=" + team, "--bundles=team-a-*",
              "--sources=team-a-*", "--repos=" + git_.url(), "--clusters=team in (a)",
              "--namespaces=team-a-*", "--kinds=Secret"},
             &code);
  ASSERT_EQ(code, 0) << line;
  std::vector<std::string> lines = absl::StrSplit(api_tokens_, '\n', absl::SkipEmpty());
  for (std::string& each : lines) {
    if (absl::StartsWith(each, "team-a "))
      each = std::string(absl::StripTrailingAsciiWhitespace(line));
  }
  std::ofstream(root_ + "/api-tokens.new") << absl::StrJoin(lines, "\n") << "\n";
  ASSERT_EQ(std::rename((root_ + "/api-tokens.new").c_str(), (root_ + "/api-tokens").c_str()), 0);
  EXPECT_TRUE(Eventually(
      [&] {
        return absl::StrContains(
            Ctl({"bundle", "list"}),
            "ConfigMap team-a-web/team-a-app (ConfigMap: not in kinds=Secret)");
      },
      absl::Seconds(30)))
      << Ctl({"bundle", "list"});
  EXPECT_THAT(Ctl({"events", "--bundle=team-a-app"}), HasSubstr("caller team-a's scope changed"));
  // The cluster keeps what it runs; its status says why nothing newer comes.
  EXPECT_THAT(Files("a-dev"), ::testing::Contains(HasSubstr("team-a-app")));
  std::vector<v1::BundleStatus> held = Status("a-dev", "team-a-app");
  ASSERT_EQ(held.size(), 1u);
  EXPECT_THAT(held[0].message(), HasSubstr("not in kinds=Secret"));

  // Team a taken off the files: its bundles get no new revision anywhere, and say why.
  lines.erase(
      std::remove_if(lines.begin(), lines.end(),
                     [](const std::string& each) { return absl::StartsWith(each, "team-a "); }),
      lines.end());
  std::ofstream(root_ + "/api-tokens.new") << absl::StrJoin(lines, "\n") << "\n";
  ASSERT_EQ(std::rename((root_ + "/api-tokens.new").c_str(), (root_ + "/api-tokens").c_str()), 0);
  EXPECT_TRUE(Eventually(
      [&] {
        return absl::StrContains(Ctl({"bundle", "list", "-o", "json"}),
                                 "its caller team-a is named on no line of --api-tokens or "
                                 "--api-client-roles any more");
      },
      absl::Seconds(30)))
      << Ctl({"bundle", "list", "-o", "json"});
  EXPECT_THAT(Files("a-dev"), ::testing::Contains(HasSubstr("team-a-app")));

  // A fleet admin adopts it as the fleet's own: no longer held for the gone caller, its
  // limits kept (kinds=Secret still refuses the ConfigMap). A team may not adopt.
  As(team_c, {"bundle", "adopt", "team-a-app"}, &code);
  EXPECT_NE(code, 0);
  std::string adopted = Ctl({"bundle", "adopt", "team-a-app"}, &code);
  ASSERT_EQ(code, 0) << adopted;
  EXPECT_THAT(adopted, HasSubstr("bundle team-a-app adopted from caller team-a: it keeps its "
                                 "limits (clusters=team in (a) namespaces=team-a-*)"));
  // (Team a's other bundles stay held.)
  const std::string listed = Ctl({"bundle", "list", "-o", "yaml"});
  const size_t at = listed.find("name: team-a-app");
  ASSERT_NE(at, std::string::npos) << listed;
  const std::string entry = listed.substr(at, listed.find("\n  - ", at) - at);
  EXPECT_THAT(entry, Not(HasSubstr("named on no line"))) << entry;
  EXPECT_THAT(entry, HasSubstr("adopted: true"));
  EXPECT_THAT(entry, HasSubstr("not in kinds=Secret"));
  EXPECT_THAT(Ctl({"bundle", "adopt", "team-a-app"}), HasSubstr("is the fleet's already"));

  // Its limits dropped too, an admin's explicit widening: fenced by its own definition
  // alone, the ConfigMap kinds=Secret refused is applied. A team may not.
  As(team_c, {"bundle", "adopt", "team-a-app", "--drop-limits"}, &code);
  EXPECT_NE(code, 0);
  std::string dropped = Ctl({"bundle", "adopt", "team-a-app", "--drop-limits"}, &code);
  ASSERT_EQ(code, 0) << dropped;
  EXPECT_THAT(dropped, HasSubstr("bundle team-a-app adopted from caller team-a without its "
                                 "limits: it is fenced by its own definition alone"));
  EXPECT_TRUE(Eventually(
      [&] {
        std::vector<v1::BundleStatus> now = Status("a-dev", "team-a-app");
        if (now.size() != 1 || now[0].sync_state() != v1::SYNC_STATE_SYNCED) return false;
        for (absl::string_view row : absl::StrSplit(Ctl({"bundle", "list"}), '\n')) {
          if (absl::StartsWith(row, "team-a-app ")) return !absl::StrContains(row, "kinds=");
        }
        return false;
      },
      absl::Seconds(30)))
      << Ctl({"bundle", "list"});
}

TEST_F(Security, TokenNewPrintsATokenAndTheLineThatAdmitsIt) {
  int code = 0;
  std::string out = Ctl({"token", "new", "robot", "operator"}, &code);
  ASSERT_EQ(code, 0) << out;
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 2u) << out;
  std::string token = lines[0];
  EXPECT_EQ(token.substr(0, 4), "gft_");
  std::string line;
  for (const std::string& l : lines) {
    if (absl::StartsWith(l, "robot operator ")) line = l;
  }
  ASSERT_FALSE(line.empty()) << out;
  api_tokens_ = line + "\n";
  StartWithTokens();
  std::string file = root_ + "/robot";
  std::ofstream(file) << token;
  As(file, {"source", "list"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(Ctl({"token", "new", "robot", "root"}, &code), HasSubstr("not viewer, operator"));
  EXPECT_EQ(code, 2);
}

TEST_F(Security, AnAgentsCertificateIsNotAnApiCredentialAndNamesItsCluster) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  std::string certs = root_ + "/certs";
  std::string out;
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat(
                    "set -e; mkdir -p '", certs, "'; cd '", certs, "';",
                    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 "
                    "-out $1 2>/dev/null; };",
                    "key ca.key; openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj "
                    "/CN=gitfleet-test-ca;",
                    "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext;",
                    "key server.key; openssl req -new -key server.key -out server.csr -subj "
                    "/CN=localhost;",
                    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                    "-days 2 -extfile server.ext -out server.crt 2>/dev/null;",
                    // prod-eu's agent: named by a SAN URI only.
                    "printf 'subjectAltName=URI:gitfleet://cluster/prod-eu\\n' > agent.ext;",
                    "key agent.key; openssl req -new -key agent.key -out agent.csr -subj "
                    "/CN=agent;",
                    "openssl x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                    "-days 2 -extfile agent.ext -out agent.crt 2>/dev/null;",
                    // An operator's certificate.
                    "key ops.key; openssl req -new -key ops.key -out ops.csr -subj "
                    "/CN=ops.example.com;",
                    "openssl x509 -req -in ops.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                    "-days 2 -out ops.crt 2>/dev/null"),
                &out),
            0)
      << out;
  std::string admin = TokenFile("ci", "admin", "admin-secret-1");
  std::ofstream(root_ + "/client-roles") << "ops.example.com operator\n";
  std::vector<std::string> tls = {"--tls-ca=" + certs + "/ca.crt"};
  StartWithTokens({"--tls-cert=" + certs + "/server.crt", "--tls-key=" + certs + "/server.key",
                   "--tls-ca=" + certs + "/ca.crt",
                   "--api-client-roles=" + root_ + "/client-roles"});
  std::vector<std::string> agent_tls = {"--tls-ca=" + certs + "/ca.crt",
                                        "--tls-cert=" + certs + "/agent.crt",
                                        "--tls-key=" + certs + "/agent.key"};
  std::vector<std::string> ops_tls = {"--tls-ca=" + certs + "/ca.crt",
                                      "--tls-cert=" + certs + "/ops.crt",
                                      "--tls-key=" + certs + "/ops.key"};
  // The admin's token over TLS; the CLI still needs a client certificate for mTLS.
  ctl_flags_ = ops_tls;
  ctl_flags_.push_back("--token-file=" + admin);
  AddSourceAndBundles();
  StartAgent("prod-eu", "env=prod", "", agent_tls);
  // Another cluster's agent with prod-eu's certificate is refused.
  Fleet::Agent& impostor = StartAgent("dev", "env=prod", "", agent_tls);
  EXPECT_FALSE(
      impostor.process->WaitForLog("names .*gitfleet://cluster/prod-eu, not cluster").empty())
      << impostor.process->Log();

  // The agent's certificate calling the admin API is refused, whatever it asks.
  ctl_flags_ = agent_tls;
  int code = 0;
  out = Ctl({"source", "list"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("agent's certificate is not an admin API credential"));
  out = Ctl({"bundle", "remove", "web"}, &code);
  EXPECT_EQ(code, 1);
  // The operator's certificate carries its role.
  ctl_flags_ = ops_tls;
  Ctl({"sync", "demo"}, &code);
  EXPECT_EQ(code, 0);
  out = Ctl({"bundle", "remove", "web"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("needs role admin; caller ops.example.com has role operator"));
  // Nothing was removed.
  ctl_flags_ = ops_tls;
  EXPECT_THAT(Ctl({"bundle", "list"}, &code), HasSubstr("web"));
  EXPECT_TRUE(Eventually([&] {
    return Ctl({"status", "--cluster=prod-eu", "--bundle=web"}).find("Synced") != std::string::npos;
  })) << Ctl({"status"});

  // A renewed server certificate (as cert-manager renews one) is served without a restart:
  // the key and the certificate are replaced, each renamed over its file.
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("set -e; cd '", certs, "';",
                             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 "
                             "-out renewed.key 2>/dev/null;",
                             "openssl req -new -key renewed.key -out renewed.csr -subj "
                             "/CN=renewed;",
                             "openssl x509 -req -in renewed.csr -CA ca.crt -CAkey ca.key "
                             "-CAcreateserial -days 2 -extfile server.ext -out renewed.crt "
                             "2>/dev/null;",
                             "mv renewed.key server.key; mv renewed.crt server.crt"),
                &out),
            0)
      << out;
  auto served = [&] {
    std::string subject;
    ::gitfleet::testing::Run(
        absl::StrCat("cd '", certs, "'; openssl s_client -connect 127.0.0.1:", grpc_port_,
                     " -CAfile ca.crt -cert ops.crt -key ops.key </dev/null 2>/dev/null | ",
                     "openssl x509 -noout -subject"),
        &subject);
    return subject;
  };
  EXPECT_TRUE(Eventually([&] { return absl::StrContains(served(), "renewed"); }, absl::Seconds(40)))
      << served();
  // New connections verify it as before, and the agent's stream carried on.
  EXPECT_THAT(Ctl({"bundle", "list"}, &code), HasSubstr("web"));
  EXPECT_EQ(code, 0);
  EXPECT_THAT(Ctl({"status", "--cluster=prod-eu", "--bundle=web"}), HasSubstr("Synced"));

  // A key that does not match the certificate (a renewal caught half-way) is not taken up:
  // the pair in force stays, and the log says why.
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("set -e; cd '", certs, "';",
                             "cp server.key renewed.key;",  // put back below
                             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 "
                             "-out odd.key 2>/dev/null; mv odd.key server.key"),
                &out),
            0)
      << out;
  EXPECT_FALSE(cp_->WaitForLog("--tls-key does not match --tls-cert", absl::Seconds(30)).empty())
      << cp_->Log();
  absl::SleepFor(absl::Seconds(11));  // past gRPC's next reading of the copies
  EXPECT_THAT(served(), HasSubstr("renewed"));
  EXPECT_THAT(Ctl({"bundle", "list"}, &code), HasSubstr("web"));
  EXPECT_EQ(code, 0);

  // The agent's certificate, renewed on disk, is what it presents from its next
  // connection on. One that a CA the control plane does not trust signed is refused...
  auto issue_agent = [&](const std::string& ca) {
    ASSERT_EQ(
        ::gitfleet::testing::Run(
            absl::StrCat("set -e; cd '", certs, "';",
                         "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 "
                         "-out next.key 2>/dev/null;",
                         "openssl req -new -key next.key -out next.csr -subj /CN=agent;",
                         "openssl x509 -req -in next.csr -CA ", ca, ".crt -CAkey ", ca,
                         ".key -CAcreateserial -days 2 -extfile agent.ext -out next.crt "
                         "2>/dev/null;",
                         "mv next.key agent.key; mv next.crt agent.crt"),
            &out),
        0)
        << out;
  };
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("set -e; cd '", certs, "'; mv renewed.key server.key;",
                             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 "
                             "-out other-ca.key 2>/dev/null;",
                             "openssl req -x509 -new -key other-ca.key -out other-ca.crt -days 2 "
                             "-subj /CN=another-ca"),
                &out),
            0)
      << out;
  ASSERT_NO_FATAL_FAILURE(issue_agent("other-ca"));
  cp_->Kill(SIGTERM);  // every stream ends; the agent dials again
  StartWithTokens({"--tls-cert=" + certs + "/server.crt", "--tls-key=" + certs + "/server.key",
                   "--tls-ca=" + certs + "/ca.crt",
                   "--api-client-roles=" + root_ + "/client-roles"});
  EXPECT_EQ(cp_->WaitForLog("cluster prod-eu connected", absl::Seconds(8)), "")
      << "the agent presented its old certificate";
  // ...and one the control plane's CA signed is taken up at the next attempt.
  ASSERT_NO_FATAL_FAILURE(issue_agent("ca"));
  EXPECT_NE(cp_->WaitForLog("cluster prod-eu connected", absl::Seconds(45)), "") << cp_->Log();
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"status", "--cluster=prod-eu", "--bundle=web"}), "Synced");
  }));
}

TEST_F(Security, TheControlPlaneOwnsClusterIdentities) {
  open_fleet_ = false;  // the control plane's defaults: registered clusters, owned labels
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  StartControlPlane();
  int code = 0;
  std::string prod_token = Ctl({"cluster", "add", "prod-eu", "--labels=env=prod"}, &code);
  ASSERT_EQ(code, 0) << prod_token;
  prod_token = prod_token.substr(0, prod_token.find('\n'));
  ASSERT_EQ(prod_token.substr(0, 4), "gfa_") << prod_token;
  std::string dev_token = Ctl({"cluster", "add", "dev", "--labels=env=dev"}, &code);
  ASSERT_EQ(code, 0);
  dev_token = dev_token.substr(0, dev_token.find('\n'));
  EXPECT_THAT(Ctl({"cluster", "add", "dev"}, &code), HasSubstr("ALREADY_EXISTS"));
  EXPECT_THAT(cp_->Log(), Not(HasSubstr(prod_token))) << "tokens are never logged";

  std::string prod_file = root_ + "/prod-token";
  std::ofstream(prod_file) << prod_token;
  std::string dev_file = root_ + "/dev-token";
  std::ofstream(dev_file) << dev_token;
  StartAgent("prod-eu", "env=prod", "", {"--token-file=" + prod_file});
  // dev's agent claims env=prod: it is targeted as env=dev all the same.
  StartAgent("dev", "env=prod", "", {"--token-file=" + dev_file});
  Agent& stranger = StartAgent("stranger", "env=prod");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("dev", "base", first);
  EXPECT_THAT(Files("dev"), ::testing::ElementsAre("_cluster/Namespace/shop.yaml"));
  EXPECT_FALSE(stranger.process->WaitForLog("refused this agent").empty());
  EXPECT_THAT(Files("stranger"), ::testing::IsEmpty());
  std::string list = Ctl({"cluster", "list"});
  EXPECT_THAT(list, HasSubstr("AgentLabelsIgnored"));
  EXPECT_THAT(list, Not(HasSubstr("stranger"))) << "a refused agent leaves no record";
  EXPECT_THAT(list, ::testing::ContainsRegex("dev +yes +yes +env=dev +env=prod"));

  // The operator relabels dev: it gets web at once.
  Ctl({"cluster", "label", "dev", "env=prod"}, &code);
  EXPECT_EQ(code, 0);
  ExpectSynced("dev", "web", first);

  // A rotated token cuts the agent off until it has the new one (re-read, no restart).
  std::string rotated = Ctl({"cluster", "rotate-token", "prod-eu"}, &code);
  ASSERT_EQ(code, 0) << rotated;
  rotated = rotated.substr(0, rotated.find('\n'));
  EXPECT_FALSE(agents_["prod-eu"].process->WaitForLog("token was rotated").empty());
  std::ofstream(prod_file + ".new") << rotated;
  ASSERT_EQ(rename((prod_file + ".new").c_str(), prod_file.c_str()), 0);
  EXPECT_TRUE(Eventually([&] { return ConnectedClusters() == 2; })) << Ctl({"cluster", "list"});

  // With --grace the old token keeps working, so the agent can be given the new one
  // first: it stays connected, and cluster list says until when.
  EXPECT_THAT(Ctl({"cluster", "rotate-token", "prod-eu", "--grace=8d"}, &code),
              HasSubstr("at most 168h"));
  EXPECT_NE(code, 0);
  std::string graced = Ctl({"cluster", "rotate-token", "prod-eu", "--grace=5s"}, &code);
  ASSERT_EQ(code, 0) << graced;
  EXPECT_THAT(graced, HasSubstr("has a new token; the old one works until "));
  graced = graced.substr(0, graced.find('\n'));
  EXPECT_THAT(Ctl({"cluster", "list"}), HasSubstr("agent on its old token, which works until "));
  EXPECT_EQ(ConnectedClusters(), 2);
  std::ofstream(prod_file + ".new") << graced;
  ASSERT_EQ(rename((prod_file + ".new").c_str(), prod_file.c_str()), 0);
  // When the grace ends, the stream of the agent still on the old token is closed, and it
  // comes back with the new one it reads.
  EXPECT_FALSE(agents_["prod-eu"].process->WaitForLog("old token is over").empty())
      << agents_["prod-eu"].process->Log();
  EXPECT_TRUE(Eventually([&] {
    return ConnectedClusters() == 2 && !absl::StrContains(Ctl({"cluster", "list"}), "old token");
  })) << Ctl({"cluster", "list"});

  // A removed cluster is refused; what it holds stays applied.
  Ctl({"cluster", "remove", "dev"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(Eventually([&] { return ConnectedClusters() == 1; }));
  EXPECT_FALSE(agents_["dev"].process->WaitForLog("this cluster was removed").empty());
  EXPECT_THAT(Files("dev"),
              ::testing::ElementsAre("_cluster/Namespace/shop.yaml", "shop/ConfigMap/a.yaml"));
  // Registrations are durable: a restart keeps them.
  RestartControlPlaneKeepingData();
  EXPECT_TRUE(Eventually([&] { return ConnectedClusters() == 1; })) << Ctl({"cluster", "list"});
  ExpectSynced("prod-eu", "web", first);
}

TEST_F(Security, PrivateGitCredentialsAreNeverLoggedStoredOrReturned) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  std::string first = git_.Commit("first");
  ::gitfleet::testing::HttpsGitServer server(::gitfleet::testing::TempDir("https"));
  if (absl::Status s = server.Start("deployer", "Pa55-never-shown"); !s.ok()) GTEST_SKIP() << s;
  std::string url = server.Serve(git_.dir(), "app");
  std::string credentials = root_ + "/credentials";
  ASSERT_EQ(
      ::gitfleet::testing::Run(absl::StrCat(
          "mkdir -p '", credentials, "/git' && printf deployer > '", credentials,
          "/git/username' && printf Pa55-never-shown > '", credentials, "/git/password' && cp '",
          server.ca_pem_path(), "' '", credentials, "/git/ca.crt'")),
      0);
  allow_local_sources_ = false;  // the control plane's default
  StartControlPlane({"--credentials-dir=" + credentials, "--log-level=debug"});
  StartAgent("prod-eu", "env=prod");
  int code = 0;
  // A local path is refused without --allow-local-sources.
  std::string out = Ctl({"source", "add", "local", "--url=" + git_.url()}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("--allow-local-sources"));
  // A secret in the URL is refused, and not echoed.
  std::string with_secret = url;
  with_secret.insert(std::string("https://").size(), "deployer:Pa55-never-shown@");
  out = Ctl({"source", "add", "demo", "--url=" + with_secret}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("--credentials"));
  EXPECT_THAT(out, Not(HasSubstr("Pa55")));
  // A credential that does not exist is named at once.
  out = Ctl({"source", "add", "demo", "--url=" + url, "--credentials=nope"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("credential nope not found"));

  out = Ctl({"source", "add", "demo", "--url=" + url, "--credentials=git", "--interval=1s"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web", "--selector=env=prod"},
            &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", first);
  EXPECT_THAT(Ctl({"source", "list"}), ::testing::ContainsRegex("demo .* git "));

  // Nowhere: not in the API's answers, the log, or the store.
  EXPECT_THAT(Ctl({"source", "list", "-o", "json"}), Not(HasSubstr("Pa55")));
  EXPECT_THAT(Ctl({"status", "-o", "json"}), Not(HasSubstr("Pa55")));
  EXPECT_THAT(cp_->Log(), Not(HasSubstr("Pa55")));
  std::string backup = root_ + "/backup.db";
  Ctl({"backup", "--out=" + backup}, &code);
  ASSERT_EQ(code, 0);
  std::string db;
  ASSERT_EQ(::gitfleet::testing::Run(absl::StrCat("cat '", data_dir_, "'/gitfleet.db* '", backup,
                                                  "' | grep -ac Pa55 || true"),
                                     &db),
            0);
  EXPECT_EQ(db, "0\n") << "the password is in the store";
}

// A source that names signing keys deploys only commits one of them signed: an unsigned
// commit pushed to the branch reaches no cluster (each keeps what it runs) and the source
// says why; the next signed commit deploys as usual.
TEST_F(Security, OnlySignedCommitsAreDeployed) {
  const std::string credentials = WriteSigners();
  auto commit = [&](bool sign, const std::string& message) {
    git_.Write("apps/web/a.yaml", Cm("a", "v" + message));
    return CommitAll(sign, message);
  };
  git_.Write("apps/web/a.yaml", Cm("a"));
  const std::string start = git_.Commit("unsigned start");
  const std::string first = commit(true, "1");
  StartControlPlane({"--credentials-dir=" + credentials});
  StartAgent("prod-eu", "env=prod");
  int code = 0;
  std::string out = Ctl(
      {"source", "add", "demo", "--url=" + git_.url(), "--interval=1s", "--verify-commits=nobody"},
      &code);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("signing keys nobody not found"));
  out = Ctl(
      {"source", "add", "demo", "--url=" + git_.url(), "--interval=1s", "--verify-commits=signers"},
      &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", first);

  const std::string unsigned_commit = commit(false, "2");
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"source", "list"}),
                             absl::StrCat(unsigned_commit.substr(0, 12), " is not signed"));
  })) << Ctl({"source", "list"});
  EXPECT_THAT(Ctl({"source", "list"}), HasSubstr("(signed: signers)"));
  EXPECT_THAT(Ctl({"source", "list"}),
              HasSubstr(absl::StrCat(first.substr(0, 12), " (signed by release@example.com)")));
  ExpectSynced("prod-eu", "web", first);

  const std::string signed_again = commit(true, "3");
  ExpectSynced("prod-eu", "web", signed_again);

  // A rollback goes only to what the keys vouch for: a commit they signed, or one a tag
  // they signed names; any other commit of the repository is refused and nothing changes.
  for (const std::string& to : {unsigned_commit, start.substr(0, 10)}) {
    out = Ctl({"bundle", "rollback", "web", "--to=" + to}, &code);
    EXPECT_NE(code, 0) << to;
    EXPECT_THAT(out, HasSubstr(" is not signed (this source takes only commits signed by a key "
                               "in signers); bundle web keeps what it runs"));
  }
  EXPECT_THAT(Ctl({"bundle", "list"}), Not(HasSubstr("pinned")));
  out = Ctl({"bundle", "rollback", "web", "--to=" + first}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", first);
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("cd '", git_.dir(), "' && git -c gpg.format=ssh -c user.signingkey='",
                             root_, "/release' tag -s v0 -m 'the start, vouched for' ", start)),
            0);
  out = Ctl({"bundle", "rollback", "web", "--to=v0"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", start);
  out = Ctl({"bundle", "unpin", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", signed_again);
}

// A rollback made before its source verified commits is judged by the keys once it does:
// the pinned commit, unsigned, renders nothing more (the bundle says why; the cluster keeps
// what it runs), and the unpinned bundle takes the signed head.
TEST_F(Security, APinFromBeforeItsSourceVerifiedIsJudgedByTheKeys) {
  const std::string credentials = WriteSigners();
  git_.Write("apps/web/a.yaml", Cm("a"));
  const std::string start = git_.Commit("unsigned start");
  git_.Write("apps/web/a.yaml", Cm("a", "v1"));
  const std::string head = CommitAll(/*sign=*/true, "signed");
  StartControlPlane({"--credentials-dir=" + credentials});
  StartAgent("prod-eu", "env=prod");
  int code = 0;
  std::string out = Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", head);
  out = Ctl({"bundle", "rollback", "web", "--to=" + start}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", start);

  out = Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s",
             "--verify-commits=signers", "--replace"},
            &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Ctl({"bundle", "list", "-o", "json"}),
                             absl::StrCat("pinned commit ", start.substr(0, 12), ": commit ",
                                          start.substr(0, 12), " is not signed"));
  })) << Ctl({"bundle", "list", "-o", "json"});
  // The cluster keeps it, and is told why nothing newer comes.
  std::vector<v1::BundleStatus> status = Status("prod-eu", "web");
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].applied_commit(), start);
  EXPECT_THAT(status[0].message(), HasSubstr("is not signed (this source takes only commits "
                                             "signed by a key in signers)"));
  out = Ctl({"bundle", "unpin", "web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", head);
}

// A credential by URL prefix (--git-credentials, as Argo CD's credential templates): every
// source under it that names none is fetched with it, and `source list` says so.
TEST_F(Security, AGitCredentialByUrlPrefixServesEverySourceUnderIt) {
  git_.Write("apps/web/a.yaml", Cm("a"));
  std::string first = git_.Commit("first");
  ::gitfleet::testing::HttpsGitServer server(::gitfleet::testing::TempDir("https"));
  if (absl::Status s = server.Start("deployer", "Pr3fix-never-shown"); !s.ok()) GTEST_SKIP() << s;
  const std::string url = server.Serve(git_.dir(), "app");
  const std::string credentials = root_ + "/credentials";
  ASSERT_EQ(
      ::gitfleet::testing::Run(absl::StrCat(
          "mkdir -p '", credentials, "/org' && printf deployer > '", credentials,
          "/org/username' && printf Pr3fix-never-shown > '", credentials, "/org/password' && cp '",
          server.ca_pem_path(), "' '", credentials, "/org/ca.crt'")),
      0);
  const std::string prefix = absl::StrCat("https://127.0.0.1:", server.port(), "/git/");
  // A prefix in plain http elsewhere is refused at start.
  std::string out;
  EXPECT_NE(::gitfleet::testing::Run(
                absl::StrCat(::gitfleet::testing::kControlPlane,
                             " --grpc=127.0.0.1:0 --http=127.0.0.1:0 --data-dir=", root_,
                             "/refused-data --credentials-dir=", credentials,
                             " --git-credentials=http://git.example.com/=org 2>&1"),
                &out),
            0);
  EXPECT_THAT(out, HasSubstr("--git-credentials: http://git.example.com/=org: a credential is "
                             "never sent over plain http"))
      << out;
  allow_local_sources_ = false;
  StartControlPlane({"--credentials-dir=" + credentials, "--git-credentials=" + prefix + "=org"});
  StartAgent("prod-eu", "env=prod");
  int code = 0;
  out = Ctl({"source", "add", "demo", "--url=" + url, "--interval=1s"}, &code);
  ASSERT_EQ(code, 0) << out;
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", first);
  EXPECT_THAT(Ctl({"source", "list"}),
              ::testing::ContainsRegex("demo .* org \\(--git-credentials\\)"));
  EXPECT_THAT(Ctl({"source", "list", "-o", "json"}),
              HasSubstr("\"credentials_from_prefix\": \"org\""));
  EXPECT_THAT(Ctl({"source", "list", "-o", "json"}), Not(HasSubstr("Pr3fix")));
  EXPECT_THAT(cp_->Log(), Not(HasSubstr("Pr3fix")));
}

// Private chart repositories and registries: the control plane fetches their charts with
// the credential --chart-credentials gives each prefix, and the password is nowhere to be
// read afterwards. A credential for a prefix it does not trust stops it at start.
TEST_F(Security, PrivateChartsAreFetchedWithTheirPrefixsCredentialAndNeverShown) {
  const std::string helm =
      ::gitfleet::testing::WriteValuesEchoHelm(::gitfleet::testing::TempDir("echo-helm"));
  ASSERT_FALSE(helm.empty());
  ::gitfleet::testing::ChartRepositoryServer charts(::gitfleet::testing::TempDir("charts"));
  ASSERT_TRUE(
      charts
          .AddChart("web", "1.0.0", {{"Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"}})
          .ok());
  charts.RequireLogin("deployer", "Ch4rt-never-shown");
  if (absl::Status started = charts.Start(); !started.ok()) GTEST_SKIP() << started;
  ::gitfleet::testing::OciRegistryServer registry(::gitfleet::testing::TempDir("registry"));
  ASSERT_TRUE(registry
                  .AddChart("team/db", "2.0.0",
                            {{"Chart.yaml", "apiVersion: v2\nname: db\nversion: 2.0.0\n"}})
                  .ok());
  registry.RequireLogin("puller", "Reg1stry-never-shown");
  if (absl::Status started = registry.Start(); !started.ok()) GTEST_SKIP() << started;
  const std::string credentials = root_ + "/credentials";
  ASSERT_EQ(
      ::gitfleet::testing::Run(absl::StrCat(
          "mkdir -p '", credentials, "/charts' '", credentials, "/registry' && printf deployer > '",
          credentials, "/charts/username' && printf Ch4rt-never-shown > '", credentials,
          "/charts/password' && printf puller > '", credentials,
          "/registry/username' && printf Reg1stry-never-shown > '", credentials,
          "/registry/password'")),
      0);
  const std::string trusted =
      absl::StrCat("--chart-repositories=", charts.url(), ",", registry.url(), "team/");

  // A credential for a prefix the control plane does not fetch from: it does not start.
  std::string out;
  EXPECT_NE(::gitfleet::testing::Run(
                absl::StrCat(::gitfleet::testing::kControlPlane,
                             " --grpc=127.0.0.1:0 --http=127.0.0.1:0 --data-dir=", root_,
                             "/refused-data --credentials-dir=", credentials, " ", trusted,
                             " --chart-credentials=https://charts.elsewhere.example/=charts 2>&1"),
                &out),
            0);
  EXPECT_THAT(out, HasSubstr("--chart-credentials: https://charts.elsewhere.example/=charts: "
                             "https://charts.elsewhere.example/ is not under any of "
                             "--chart-repositories"))
      << out;
  // Nor with a credential that is not there.
  EXPECT_NE(::gitfleet::testing::Run(
                absl::StrCat(::gitfleet::testing::kControlPlane,
                             " --grpc=127.0.0.1:0 --http=127.0.0.1:0 --data-dir=", root_,
                             "/refused-data --credentials-dir=", credentials, " ", trusted,
                             " --chart-credentials=", charts.url(), "=nope 2>&1"),
                &out),
            0);
  EXPECT_THAT(out, HasSubstr("credential nope not found")) << out;

  git_.Write("apps/web/fleet.yaml",
             absl::StrCat("helm: {repo: '", charts.url(), "', chart: web, releaseName: web}\n"));
  git_.Write("apps/db/fleet.yaml", absl::StrCat("helm: {chart: '", registry.url(),
                                                "team/db', version: '^2', "
                                                "releaseName: db}\n"));
  std::string first = git_.Commit("charts from a private repository and a private registry");
  StartControlPlane({"--helm=" + helm, "--credentials-dir=" + credentials, trusted,
                     absl::StrCat("--chart-credentials=", charts.url(), "=charts,", registry.url(),
                                  "team/=registry")});
  StartAgent("prod-eu", "env=prod");
  int code = 0;
  ASSERT_EQ((Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code), code),
            0);
  for (const char* name : {"web", "db"}) {
    out = Ctl({"bundle", "add", name, "--source=demo", absl::StrCat("--path=apps/", name)}, &code);
    ASSERT_EQ(code, 0) << out;
    ExpectSynced("prod-eu", name, first);
  }
  EXPECT_THAT(Read("prod-eu", "_cluster/ConfigMap/web.yaml"), HasSubstr("chart: web"));
  EXPECT_THAT(Read("prod-eu", "_cluster/ConfigMap/db.yaml"), HasSubstr("chart: db"));
  EXPECT_THAT(charts.Log(), HasSubstr("GET /index.yaml auth=Basic"));
  EXPECT_THAT(registry.Log(), HasSubstr("GET /token auth=Basic"));

  // Nowhere: not in the API's answers, the log, or the store.
  for (const char* secret : {"Ch4rt", "Reg1stry"}) {
    EXPECT_THAT(Ctl({"bundle", "list", "-o", "json"}), Not(HasSubstr(secret)));
    EXPECT_THAT(Ctl({"status", "-o", "json"}), Not(HasSubstr(secret)));
    EXPECT_THAT(cp_->Log(), Not(HasSubstr(secret)));
  }
  std::string db;
  ASSERT_EQ(
      ::gitfleet::testing::Run(
          absl::StrCat("cat '", data_dir_, "'/gitfleet.db* | grep -ac 'Ch4rt\\|Reg1stry' || true"),
          &db),
      0);
  EXPECT_EQ(db, "0\n") << "a password is in the store";
}

}  // namespace
}  // namespace gitfleet
