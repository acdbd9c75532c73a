#include "controlplane/api/auth.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

CallerFacts Token(const std::string& token, const std::string& peer = "ipv4:10.0.0.7:4000") {
  CallerFacts facts;
  facts.peer = peer;
  facts.has_authorization = true;
  facts.bearer_token = token;
  return facts;
}

CallerFacts Peer(const std::string& peer) {
  CallerFacts facts;
  facts.peer = peer;
  return facts;
}

std::unique_ptr<ApiAuth> WithTokens() {
  std::string text = "# callers\n" + TokenLine("ci", Role::kAdmin, "admin-secret") + "\n" +
                     TokenLine("grafana", Role::kViewer, "viewer-secret") + "\n" +
                     TokenLine("oncall", Role::kOperator, "operator-secret") + "\n";
  absl::StatusOr<std::unique_ptr<ApiAuth>> auth =
      ApiAuth::Parse(text, "ops.example.com operator\nspiffe://corp/ci admin\n");
  EXPECT_TRUE(auth.ok()) << auth.status();
  return *std::move(auth);
}

TEST(ApiAuthTest, EveryAdminMethodHasARule) {
  // Through a message of admin.proto, so that a static link keeps the file's descriptor.
  const google::protobuf::ServiceDescriptor* service =
      v1::AddSourceRequest::descriptor()->file()->FindServiceByName("AdminService");
  ASSERT_NE(service, nullptr);
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_TRUE(IsKnownMethod(service->method(i)->name()))
        << service->method(i)->name() << " has no role in auth.cc (it would need admin)";
  }
  EXPECT_FALSE(IsKnownMethod("SomethingNew"));
  EXPECT_EQ(RequiredRole("SomethingNew"), Role::kAdmin) << "unknown methods need admin";
  EXPECT_TRUE(IsMutating("SomethingNew"));
}

TEST(ApiAuthTest, TokensAreKnownByTheirHashAndCarryARole) {
  auto auth = WithTokens();
  absl::StatusOr<Caller> ci = auth->Identify(Token("admin-secret"));
  ASSERT_TRUE(ci.ok()) << ci.status();
  EXPECT_EQ(ci->name, "ci");
  EXPECT_EQ(ci->role, Role::kAdmin);
  EXPECT_EQ(ci->via, "token");
  EXPECT_EQ(auth->Identify(Token("viewer-secret"))->role, Role::kViewer);
  EXPECT_EQ(auth->Identify(Token("operator-secret"))->role, Role::kOperator);
}

TEST(ApiAuthTest, NoTokenOrAWrongOneIsUnauthenticatedEvenOnLoopback) {
  auto auth = WithTokens();
  EXPECT_THAT(auth->Identify(Token("nope")).status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("does not know this token")));
  EXPECT_THAT(auth->Identify(Token("nope", "ipv4:127.0.0.1:5")).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(auth->Identify(Token("", "ipv4:127.0.0.1:5")).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(auth->Identify(Peer("ipv4:127.0.0.1:5")).status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("needs a token")));
  EXPECT_THAT(auth->Identify(Token(std::string(10000, 'x'))).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(ApiAuthTest, WithoutTokensOnlyLocalCallersAreServed) {
  auto auth = *ApiAuth::Parse("", "");
  EXPECT_TRUE(auth->local_only());
  for (const char* peer :
       {"ipv4:127.0.0.1:4000", "ipv4:127.8.9.10:1", "ipv6:[::1]:4000", "ipv6:%5B::1%5D:4000",
        "ipv6:[::ffff:127.0.0.1]:9", "unix:/run/gf.sock", "unix-abstract:gf"}) {
    absl::StatusOr<Caller> caller = auth->Identify(Peer(peer));
    ASSERT_TRUE(caller.ok()) << peer << ": " << caller.status();
    EXPECT_EQ(caller->role, Role::kAdmin);
    EXPECT_EQ(caller->via, "local");
  }
  for (const char* peer : {"ipv4:10.1.2.3:4000", "ipv4:128.0.0.1:4000", "ipv6:[2001:db8::1]:1",
                           "ipv6:[::ffff:10.0.0.1]:9", "ipv4:127.0.0.1x:1", "", "garbage"}) {
    EXPECT_THAT(auth->Identify(Peer(peer)).status(),
                StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("local callers only")))
        << peer;
  }
}

TEST(ApiAuthTest, ClientCertificatesMapToRolesButAnAgentsNever) {
  auto auth = WithTokens();
  CallerFacts ops = Peer("ipv4:10.0.0.8:1");
  ops.certificate = {"ops.example.com"};
  EXPECT_EQ(auth->Identify(ops)->role, Role::kOperator);
  CallerFacts ci = Peer("ipv4:10.0.0.8:1");
  ci.certificate = {"ci-runner", "spiffe://corp/ci"};
  EXPECT_EQ(auth->Identify(ci)->role, Role::kAdmin);
  CallerFacts agent = Peer("ipv4:127.0.0.1:1");
  agent.certificate = {"ops.example.com", "gitfleet://cluster/prod-eu"};
  EXPECT_THAT(auth->Identify(agent).status(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("agent's certificate")));
  CallerFacts unknown = Peer("ipv4:10.0.0.8:1");
  unknown.certificate = {"someone-else"};
  EXPECT_THAT(auth->Identify(unknown).status(), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(ApiAuthTest, RolesAreOrdered) {
  Caller viewer{"v", Role::kViewer, "token"};
  Caller op{"o", Role::kOperator, "token"};
  Caller admin{"a", Role::kAdmin, "token"};
  EXPECT_TRUE(Authorize(viewer, "ListBundles").ok());
  EXPECT_TRUE(Authorize(viewer, "DiffBundle").ok());
  EXPECT_THAT(Authorize(viewer, "AddBundle"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("AddBundle needs role admin; caller v has role viewer")));
  EXPECT_THAT(Authorize(viewer, "SyncSource"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("needs role operator")));
  EXPECT_TRUE(Authorize(op, "SyncSource").ok());
  EXPECT_THAT(Authorize(op, "RemoveSource"), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(Authorize(op, "Backup"), StatusIs(absl::StatusCode::kPermissionDenied));
  for (const char* method : {"AddSource", "RemoveSource", "AddBundle", "RemoveBundle",
                             "AdoptCluster", "ForgetBundle", "Backup", "SyncSource"}) {
    EXPECT_TRUE(Authorize(admin, method).ok()) << method;
  }
}

TEST(ApiAuthTest, BadFilesNameTheLineAndNeverTakeAPlainToken) {
  EXPECT_THAT(ApiAuth::Parse("ci admin s3cret\n", "").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--api-tokens line 1: the third field must be the 64 hex")));
  EXPECT_THAT(ApiAuth::Parse("\n\nci root " + std::string(64, 'a') + "\n", "").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 3: role \"root\" is not viewer, operator or admin")));
  EXPECT_THAT(ApiAuth::Parse("ci admin\n", "").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NAME ROLE TOKEN_SHA256")));
  std::string line = "ci admin " + std::string(64, 'b') + "\n";
  EXPECT_THAT(ApiAuth::Parse(line + line, "").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listed twice")));
  EXPECT_THAT(ApiAuth::Parse("", "gitfleet://cluster/eu admin\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names an agent")));
  EXPECT_THAT(ApiAuth::Parse("", "ops\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--api-client-roles line 1: want CN_OR_SAN ROLE")));
  EXPECT_THAT(ApiAuthFiles::Open("/nonexistent/tokens", "").status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("--api-tokens: cannot open /nonexistent/tokens")));
}

// A leaked token is revoked by editing the file, without a restart; an edit that cannot be
// read, or that would leave no credential at all, keeps what is in force.
TEST(ApiAuthTest, TheTokenFileIsReadAgainWhenItChanges) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/api-tokens");
  auto write = [&](const std::string& text) {
    std::ofstream(path + ".new") << text;
    ASSERT_EQ(std::rename((path + ".new").c_str(), path.c_str()), 0);
  };
  write(TokenLine("ci", Role::kAdmin, "leaked-token") + "\n");
  FakeClock clock;
  WatchedFilesOptions options;
  options.clock = &clock;
  absl::StatusOr<std::unique_ptr<ApiAuthFiles>> files = ApiAuthFiles::Open(path, "", options);
  ASSERT_TRUE(files.ok()) << files.status();
  auto identify = [&](const CallerFacts& facts) { return (*files)->Current()->Identify(facts); };
  ASSERT_TRUE(identify(Token("leaked-token")).ok());

  write(TokenLine("ci", Role::kAdmin, "new-token") + "\n");
  EXPECT_TRUE(identify(Token("leaked-token")).ok()) << "read again at most once a second";
  clock.Advance(absl::Seconds(1));
  EXPECT_THAT(identify(Token("leaked-token")).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
  absl::StatusOr<Caller> caller = identify(Token("new-token"));
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->name, "ci");

  for (const std::string& refused :
       {std::string("ci admin not-a-digest\n"), std::string(""), std::string("# nobody\n")}) {
    write(refused);
    clock.Advance(absl::Seconds(1));
    EXPECT_TRUE(identify(Token("new-token")).ok()) << refused;
    EXPECT_THAT(identify(Peer("ipv4:127.0.0.1:5000")).status(),
                StatusIs(absl::StatusCode::kUnauthenticated))
        << "an emptied file must not open the API to local callers: " << refused;
  }
  ASSERT_EQ(std::remove(path.c_str()), 0);
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(identify(Token("new-token")).ok()) << "a missing file changes nothing";
}

// A team's token: its share of the fleet, and nothing fleet-wide whatever its role.
TEST(ApiAuthTest, AScopedCallerReachesWhatItsScopeNamesAndNoFleetWideMethod) {
  const std::string tokens =
      TokenLine("team-a", Role::kAdmin, "team-a-secret",
                "bundles=team-a-*,shared-web sources=team-a-* "
                "repos=https://git.example.com/team-a,ssh://git.example.com/infra/team-a.git "
                "credentials=team-a-* clusters=\"team=a, env in (dev,qa)\"") +
      "\n" + TokenLine("ci", Role::kAdmin, "ci-secret") + "\n";
  absl::StatusOr<std::unique_ptr<ApiAuth>> auth =
      ApiAuth::Parse(tokens, "team-b.example.com operator bundles=team-b-* clusters=team=b\n");
  ASSERT_TRUE(auth.ok()) << auth.status();
  absl::StatusOr<Caller> a = (*auth)->Identify(Token("team-a-secret"));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(a->scoped());
  const Scope& scope = *a->scope;
  EXPECT_TRUE(scope.CoversBundle("team-a-web"));
  EXPECT_TRUE(scope.CoversBundle("shared-web"));
  EXPECT_FALSE(scope.CoversBundle("team-b-web"));
  EXPECT_FALSE(scope.CoversBundle("shared-web2"));
  EXPECT_TRUE(scope.CoversSource("team-a-repo"));
  EXPECT_FALSE(scope.CoversSource("demo"));
  EXPECT_TRUE(scope.CoversCredential("team-a-deploy-key"));
  EXPECT_FALSE(scope.CoversCredential("fleet-admin"));
  EXPECT_TRUE(scope.CoversCluster({{"team", "a"}, {"env", "dev"}}));
  EXPECT_FALSE(scope.CoversCluster({{"team", "a"}, {"env", "prod"}}));
  EXPECT_FALSE(scope.CoversCluster({{"team", "b"}, {"env", "dev"}}));
  EXPECT_FALSE(scope.CoversCluster({}));
  // Repositories: under a prefix at a path boundary, written plainly.
  for (const char* url :
       {"https://git.example.com/team-a", "https://git.example.com/team-a.git",
        "https://git.example.com/team-a/app.git", "https://git.example.com/team-a/x/y",
        "ssh://git.example.com/infra/team-a.git", "ssh://git@git.example.com/infra/team-a.git"}) {
    EXPECT_TRUE(scope.CoversRepo(url)) << url;
  }
  for (const char* url :
       {"https://git.example.com/team-ab/app.git", "https://git.example.com/team-b/app.git",
        "https://git.example.com/team-a/../team-b/app.git",
        "https://git.example.com/team-a/%2e%2e/team-b/app", "https://git.example.com/team-a/..",
        "https://git.example.com/team-a/./../team-b", "https://git.example.com/team-a\\..\\b",
        "https://git.example.com/team-a/app?x=/team-b", "https://git.example.com.evil/team-a",
        "https://evil.example.com/team-a/app.git", "ssh://git.example.com/infra/team-a.git.b",
        "http://git.example.com/team-a/app.git", "file:///srv/team-a"}) {
    EXPECT_FALSE(scope.CoversRepo(url)) << url;
  }
  // Its role holds within the scope; a fleet-wide method is refused whatever the role.
  EXPECT_TRUE(Authorize(*a, "AddBundle").ok());
  EXPECT_TRUE(Authorize(*a, "AddSource").ok());
  for (const char* method : {"RegisterCluster", "LabelCluster", "RotateClusterToken",
                             "RemoveCluster", "AdoptCluster", "Backup", "SomethingNew"}) {
    EXPECT_THAT(Authorize(*a, method),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         HasSubstr(absl::StrCat(method,
                                                " is the whole fleet's; caller team-a is "
                                                "scoped to part of it (bundles="))))
        << method;
  }
  EXPECT_TRUE(a->MayReachBundle("team-a-web").ok());
  EXPECT_THAT(a->MayReachBundle("payments"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("caller team-a's scope (bundles=team-a-*,shared-web "
                                 "sources=team-a-* repos=")));
  EXPECT_THAT(a->MayReachCluster("prod-eu", {{"team", "b"}}),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("does not cover cluster "
                                                                      "prod-eu")));
  // The fleet's own admin is unscoped.
  absl::StatusOr<Caller> ci = (*auth)->Identify(Token("ci-secret"));
  ASSERT_TRUE(ci.ok());
  EXPECT_FALSE(ci->scoped());
  EXPECT_TRUE(ci->MayReachBundle("payments").ok());
  EXPECT_TRUE(Authorize(*ci, "RegisterCluster").ok());
  // A certificate's line takes a scope too; what it does not name is out of it.
  CallerFacts b = Peer("ipv4:10.0.0.8:1");
  b.certificate = {"team-b.example.com"};
  absl::StatusOr<Caller> team_b = (*auth)->Identify(b);
  ASSERT_TRUE(team_b.ok()) << team_b.status();
  EXPECT_EQ(team_b->role, Role::kOperator);
  ASSERT_TRUE(team_b->scoped());
  EXPECT_TRUE(team_b->scope->CoversBundle("team-b-api"));
  EXPECT_FALSE(team_b->scope->CoversSource("team-b-repo")) << "no sources= names no source";
  EXPECT_FALSE(team_b->scope->CoversRepo("https://git.example.com/team-b"));
  EXPECT_EQ(team_b->scope->service_account, "");
  absl::StatusOr<std::unique_ptr<ApiAuth>> with_account = ApiAuth::Parse(
      TokenLine("team-c", Role::kAdmin, "c", "bundles=c-* service-account=deployer") + "\n", "");
  ASSERT_TRUE(with_account.ok()) << with_account.status();
  absl::StatusOr<Caller> c = (*with_account)->Identify(Token("c"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->scope->service_account, "deployer");
  EXPECT_EQ(c->scope->Describe(), "bundles=c-* service-account=deployer");
  absl::StatusOr<std::unique_ptr<ApiAuth>> with_keys =
      ApiAuth::Parse(TokenLine("team-d", Role::kAdmin, "d",
                               "bundles=d-* sops-keys=35c1a64cd7fc0ab6eb66756b2445463c3234ece1") +
                         "\n",
                     "");
  ASSERT_TRUE(with_keys.ok()) << with_keys.status();
  absl::StatusOr<Caller> d = (*with_keys)->Identify(Token("d"));
  ASSERT_TRUE(d.ok());
  EXPECT_THAT(d->scope->sops_keys,
              ::testing::ElementsAre("35C1A64CD7FC0AB6EB66756B2445463C3234ECE1"))
      << "a fingerprint as SOPS and gpg write it";
}

// What a team's bundles follow: each scoped caller's scope as they record it, unless the
// name is unscoped somewhere, its lines disagree, or it names no clusters (then it is
// named, with no scope to follow).
TEST(ApiAuthTest, BundleScopesAreTheScopedCallersWhoseLinesAgree) {
  const std::string tokens = TokenLine("team-a", Role::kAdmin, "a",
                                       "bundles=a-* clusters=team=a namespaces=a-* kinds=ConfigMap "
                                       "service-account=a/deployer") +
                             "\n" + TokenLine("ci", Role::kAdmin, "ci") + "\n" +
                             TokenLine("team-b", Role::kAdmin, "b", "bundles=b-* clusters=team=b") +
                             "\n" + TokenLine("team-c", Role::kAdmin, "c", "bundles=c-*") + "\n" +
                             TokenLine("team-d", Role::kAdmin, "d", "bundles=d-* clusters=team=d") +
                             "\n";
  const std::string roles =
      "team-b operator bundles=b-* clusters=team=b\n"  // agrees with its token's
      "team-d operator bundles=d-* clusters=team=x\n"  // does not
      "ci operator bundles=ci-* clusters=team=ci\n";   // unscoped on its token line
  absl::StatusOr<std::unique_ptr<ApiAuth>> auth = ApiAuth::Parse(tokens, roles);
  ASSERT_TRUE(auth.ok()) << auth.status();
  const BundleScopes& scopes = *(*auth)->bundle_scopes();
  std::vector<std::string> followed;
  std::vector<std::string> named;
  for (const auto& [name, scope] : scopes) {
    named.push_back(name);
    if (!scope.caller().empty()) followed.push_back(name);
  }
  EXPECT_THAT(followed, ::testing::ElementsAre("team-a", "team-b"));
  EXPECT_THAT(named, ::testing::ElementsAre("ci", "team-a", "team-b", "team-c", "team-d"));
  const v1::BundleScope& a = scopes.at("team-a");
  EXPECT_EQ(a.caller(), "team-a");
  EXPECT_EQ(a.clusters(), "team=a");
  EXPECT_THAT(a.namespaces(), ::testing::ElementsAre("a-*"));
  EXPECT_THAT(a.kinds(), ::testing::ElementsAre("ConfigMap"));
  EXPECT_EQ(a.service_account(), "a/deployer");
}

TEST(ApiAuthTest, ABadScopeNamesTheLineAndWhatIsWrong) {
  const std::string hash = std::string(64, 'c');
  auto parse = [&](const std::string& scope) {
    return ApiAuth::Parse("team " + std::string("admin ") + hash + " " + scope + "\n", "").status();
  };
  EXPECT_TRUE(parse("bundles=a-*").ok());
  EXPECT_TRUE(parse("bundles=a-* service-account=team-a/deployer").ok());
  EXPECT_TRUE(parse("sops-keys=age1henwn645drkd3fa34t27t2w2x0nsgw3w4h62gmg5x5xflyjpy38s5cncph,"
                    "35c1a64cd7fc0ab6eb66756b2445463c3234ece1")
                  .ok());
  absl::StatusOr<Scope> kinds =
      Scope::Parse({"namespaces=team-a-*", "kinds=ConfigMap,apps/*",
                    "deny-kinds=rbac.authorization.k8s.io/ClusterRoleBinding",
                    "cluster-kinds=rbac.authorization.k8s.io/ClusterRole,Namespace"});
  ASSERT_TRUE(kinds.ok()) << kinds.status();
  EXPECT_THAT(kinds->kinds, ::testing::ElementsAre("ConfigMap", "apps/*"));
  EXPECT_EQ(kinds->Describe(),
            "namespaces=team-a-* kinds=ConfigMap,apps/* "
            "deny-kinds=rbac.authorization.k8s.io/ClusterRoleBinding "
            "cluster-kinds=rbac.authorization.k8s.io/ClusterRole,Namespace");
  EXPECT_THAT(parse("kinds=Deployment"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("kinds=: \"Deployment\" names the core group, which has no kind "
                                 "Deployment; did you mean apps/Deployment?")));
  EXPECT_THAT(parse("deny-kinds=apps/"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("deny-kinds=: \"apps/\" is not [GROUP/]KIND")));
  EXPECT_THAT(parse("cluster-kinds=rbac.authorization.k8s.io/ClusterRole"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cluster-kinds= lets cluster-scoped kinds past namespaces=, "
                                 "which is not given")));
  EXPECT_THAT(parse("sops-keys=AGE-SECRET-KEY-1QQQ"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sops-keys=: \"AGE-SECRET-KEY-1QQQ\" is neither an age "
                                 "recipient (age1...) nor a PGP fingerprint (40 hex digits)")));
  EXPECT_THAT(parse("service-account=Team-A/deployer"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--api-tokens line 1: service-account=: service account's "
                                 "namespace name \"Team-A\"")));
  EXPECT_THAT(parse("service-account=a:b"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("service-account=: service account \"a:b\" must be NAME or "
                                 "NAMESPACE/NAME")));
  EXPECT_THAT(parse("bundle=a-*"), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("--api-tokens line 1: unknown scope key "
                                                      "\"bundle\"")));
  EXPECT_THAT(parse("bundles"), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("\"bundles\" is not KEY=VALUE")));
  EXPECT_THAT(parse("bundles="),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not KEY=VALUE")));
  EXPECT_THAT(parse("bundles=a bundles=b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bundles= is given twice")));
  EXPECT_THAT(parse("bundles=a,,b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bundles=: at most 100")));
  EXPECT_THAT(parse("clusters=\"env in (dev\""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("clusters=: ")));
  EXPECT_THAT(parse("clusters=\"env=dev"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--api-tokens line 1: a double quote is not closed")));
  EXPECT_THAT(parse("clusters=\"\""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not KEY=VALUE")));
  EXPECT_THAT(parse("clusters=\" \""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("an empty selector would be every cluster")));
  EXPECT_THAT(parse("repos=git.example.com/team-a"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repos=: source URL")));
  EXPECT_THAT(parse("repos=https://git.example.com/team-a/../"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a plain URL prefix")));
  EXPECT_THAT(parse("repos=https://user:pw@git.example.com/"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("carries credentials")));
  std::string many = "bundles=";
  for (int i = 0; i < 101; ++i) absl::StrAppend(&many, i == 0 ? "" : ",", "b", i);
  EXPECT_THAT(parse(many),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 100 entries")));
  EXPECT_THAT(ApiAuth::Parse("", "ops operator sources=x repos=\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--api-client-roles line 1: \"repos=\" is not KEY=VALUE")));
}

TEST(ApiAuthTest, TokenLineIsTheSha256) {
  // printf abc | sha256sum
  EXPECT_EQ(TokenLine("x", Role::kViewer, "abc"),
            "x viewer ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(TokenLine("x", Role::kViewer, "abc", "bundles=a-*"),
            "x viewer ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad "
            "bundles=a-*");
}

}  // namespace
}  // namespace gitfleet
