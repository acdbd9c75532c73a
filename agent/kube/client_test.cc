#include "agent/kube/client.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "agent/kube/discovery.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakekube/fake_apiserver.h"

namespace gitfleet {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::unique_ptr<FakeApiServer> StartFake(FakeApiServer::Options options = {}) {
  absl::StatusOr<std::unique_ptr<FakeApiServer>> server = FakeApiServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return *std::move(server);
}

KubeClient::Options Fast() {
  KubeClient::Options options;
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(50);
  options.qps = 1000;
  options.burst = 1000;
  return options;
}

std::unique_ptr<KubeClient> Client(const std::string& server, KubeClient::Options options = Fast(),
                                   KubeConfig config = {}) {
  config.server = server;
  absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(config, options);
  EXPECT_TRUE(client.ok()) << client.status();
  return *std::move(client);
}

// What the API server serves, as helm's .Capabilities.APIVersions holds it against a
// cluster: group versions, and each kind in one; a CRD's once the server serves it.
TEST(KubeClientTest, ReadsTheApiVersionsTheServerServes) {
  auto fake = StartFake();
  auto client = Client(fake->url());
  absl::StatusOr<std::vector<std::string>> apis = ReadServedApiVersions(*client);
  ASSERT_TRUE(apis.ok()) << apis.status();
  EXPECT_THAT(*apis, ::testing::IsSupersetOf({"v1", "v1/ConfigMap", "v1/Namespace", "apps/v1",
                                              "apps/v1/Deployment", "batch/v1/Job"}));
  EXPECT_TRUE(std::is_sorted(apis->begin(), apis->end()));
  for (const std::string& api : *apis) {
    EXPECT_FALSE(absl::StrContains(api, "/Scale")) << "no subresource's kind: " << api;
    EXPECT_FALSE(absl::StrContains(api, "example.com")) << api;
  }
  const std::string crd = R"({"apiVersion": "apiextensions.k8s.io/v1",
      "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
      "spec": {"group": "example.com", "scope": "Namespaced",
               "names": {"kind": "Widget", "plural": "widgets"},
               "versions": [{"name": "v1", "served": true, "storage": true}]}})";
  absl::StatusOr<KubeResponse> created = client->Do(
      "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, "application/json");
  ASSERT_TRUE(created.ok() && created->code == 201) << (created.ok() ? created->body : "");
  absl::StatusOr<std::vector<std::string>> again;
  for (int i = 0; i < 100; ++i) {  // established by the fake's controller
    again = ReadServedApiVersions(*client);
    ASSERT_TRUE(again.ok()) << again.status();
    if (std::count(again->begin(), again->end(), "example.com/v1/Widget") > 0) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(*again, ::testing::IsSupersetOf({"example.com/v1", "example.com/v1/Widget"}));
  // The server down: an error, nothing half read.
  fake->FailNext(1000, 503);
  EXPECT_FALSE(ReadServedApiVersions(*client).ok());
}

TEST(KubeClientTest, GetsAndReportsApiErrors) {
  auto fake = StartFake();
  std::vector<int> codes;
  KubeClient::Options options = Fast();
  options.on_response = [&](absl::string_view, int code) { codes.push_back(code); };
  auto client = Client(fake->url(), options);
  absl::StatusOr<KubeResponse> ns = client->Do("GET", "/api/v1/namespaces/default");
  ASSERT_TRUE(ns.ok()) << ns.status();
  EXPECT_EQ(ns->code, 200);
  EXPECT_EQ(json::parse(ns->body)["metadata"]["name"], "default");
  absl::StatusOr<KubeResponse> missing =
      client->Do("GET", "/api/v1/namespaces/default/configmaps/x");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->code, 404);
  EXPECT_EQ(missing->ToStatus().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing->ToStatus().message(), "404 NotFound: configmaps \"x\" not found");
  EXPECT_EQ(codes, (std::vector<int>{200, 404}));
}

// A client that impersonates sends Impersonate-User with every request; the API server
// (here the fake's RBAC, judged as the API's authorizer does) authorizes each as that user.
TEST(KubeClientTest, ImpersonatesAUserAndIsAuthorizedAsIt) {
  KubeConfig config;
  config.server = "https://127.0.0.1:1";
  KubeClient::Options injected;
  injected.impersonate_user = "system:serviceaccount:a:b\r\nX-Evil: 1";
  EXPECT_FALSE(KubeClient::Create(config, injected).ok()) << "a header's line break is refused";
  auto fake = StartFake();
  KubeClient::Options options = Fast();
  options.max_retries = 0;
  options.impersonate_user = "system:serviceaccount:team-a:deployer";
  auto client = Client(fake->url(), options);
  auto code = [&](const std::string& path) {
    absl::StatusOr<KubeResponse> r = client->Do("GET", path);
    return r.ok() ? r->code : -1;
  };
  EXPECT_EQ(code("/api"), 200) << "discovery is open to every user";
  absl::StatusOr<KubeResponse> denied = client->Do("GET", "/api/v1/namespaces/default");
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->ToStatus().message(),
            "403 Forbidden: namespaces \"default\" is forbidden: User "
            "\"system:serviceaccount:team-a:deployer\" cannot get resource \"namespaces\" in API "
            "group \"\" in the namespace \"default\"");
  for (const FakeApiServer::Request& r : fake->Requests()) {
    EXPECT_EQ(r.user, "system:serviceaccount:team-a:deployer") << r.path;
  }

  const std::string rbac = "rbac.authorization.k8s.io";
  // Every service account may list ConfigMaps anywhere (a Group subject, cluster-wide)...
  fake->Put(
      rbac, "clusterroles",
      {{"metadata", {{"name", "list-cm"}}},
       {"rules", {{{"apiGroups", {""}}, {"resources", {"configmaps"}}, {"verbs", {"list"}}}}}});
  fake->Put(rbac, "clusterrolebindings",
            {{"metadata", {{"name", "list-cm"}}},
             {"roleRef", {{"apiGroup", rbac}, {"kind", "ClusterRole"}, {"name", "list-cm"}}},
             {"subjects", {{{"kind", "Group"}, {"name", "system:serviceaccounts"}}}}});
  // ... and this one may read one of them, in its namespace alone.
  fake->Put(rbac, "roles",
            {{"metadata", {{"name", "read-a"}, {"namespace", "team-a"}}},
             {"rules",
              {{{"apiGroups", {""}},
                {"resources", {"configmaps"}},
                {"resourceNames", {"a"}},
                {"verbs", {"get"}}}}}});
  fake->Put(rbac, "rolebindings",
            {{"metadata", {{"name", "read-a"}, {"namespace", "team-a"}}},
             {"roleRef", {{"apiGroup", rbac}, {"kind", "Role"}, {"name", "read-a"}}},
             {"subjects", {{{"kind", "ServiceAccount"}, {"name", "deployer"}}}}});
  EXPECT_EQ(code("/api/v1/namespaces/kube-system/configmaps"), 200);
  EXPECT_EQ(code("/api/v1/configmaps"), 200);
  EXPECT_EQ(code("/api/v1/namespaces/team-a/configmaps/a"), 404) << "allowed; not there";
  EXPECT_EQ(code("/api/v1/namespaces/team-a/configmaps/b"), 403);
  EXPECT_EQ(code("/api/v1/namespaces/team-b/configmaps/a"), 403);
  EXPECT_EQ(code("/api/v1/namespaces/team-a/secrets"), 403);
  absl::StatusOr<KubeResponse> create =
      client->Do("POST", "/api/v1/namespaces/team-a/configmaps",
                 R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}})");
  ASSERT_TRUE(create.ok());
  EXPECT_THAT(std::string(create->ToStatus().message()),
              HasSubstr("cannot create resource \"configmaps\""))
      << "a rule with resourceNames never allows a create";

  // The client itself may impersonate unless its own RBAC says no.
  fake->Forbid("impersonate", "", "serviceaccounts");
  absl::StatusOr<KubeResponse> refused =
      client->Do("GET", "/api/v1/namespaces/kube-system/configmaps");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->code, 403);
  EXPECT_THAT(std::string(refused->ToStatus().message()),
              HasSubstr("cannot impersonate resource \"serviceaccounts\""));
}

TEST(KubeClientTest, RetriesTooManyRequestsHonouringRetryAfter) {
  auto fake = StartFake();
  auto client = Client(fake->url());
  fake->FailNext(2, 429, /*retry_after_seconds=*/1);
  absl::Time start = absl::Now();
  absl::StatusOr<KubeResponse> r = client->Do("GET", "/api/v1/namespaces/default");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->code, 200);
  // Two waits of Retry-After: 1s, far above the 10-50 ms backoff.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(1900));
  EXPECT_EQ(fake->CountRequests("GET"), 3);
}

TEST(KubeClientTest, RetriesServerErrorsThenGivesUp) {
  auto fake = StartFake();
  KubeClient::Options options = Fast();
  options.max_retries = 3;
  auto client = Client(fake->url(), options);
  fake->FailNext(3, 503);
  absl::StatusOr<KubeResponse> r = client->Do("GET", "/api/v1/namespaces/default");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->code, 200);
  fake->ClearRequests();
  fake->FailNext(10, 500);
  r = client->Do("GET", "/api/v1/namespaces/default");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->code, 500);  // the last answer, after 1 + 3 attempts
  EXPECT_THAT(std::string(r->ToStatus().message()), HasSubstr("injected failure 500"));
  EXPECT_EQ(fake->CountRequests("GET"), 4);
  // Client errors are not retried.
  fake->ClearRequests();
  fake->FailNext(0, 0);
  r = client->Do("GET", "/api/v1/namespaces/nope");
  EXPECT_EQ(r->code, 404);
  EXPECT_EQ(fake->CountRequests("GET"), 1);
}

TEST(KubeClientTest, ConnectionFailureIsAnErrorAfterRetries) {
  KubeClient::Options options = Fast();
  options.max_retries = 2;
  options.connect_timeout = absl::Seconds(1);
  int attempts = 0;
  options.on_response = [&](absl::string_view, int code) {
    EXPECT_EQ(code, 0);
    ++attempts;
  };
  auto client = Client("http://127.0.0.1:1", options);
  absl::StatusOr<KubeResponse> r = client->Do("GET", "/api");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("failed after 3 attempts"));
  EXPECT_EQ(attempts, 3);
}

TEST(KubeClientTest, RotatedTokenFileIsPickedUp) {
  FakeApiServer::Options fake_options;
  fake_options.token = "first";
  auto fake = StartFake(fake_options);
  std::string file = std::string(std::getenv("TEST_TMPDIR")) + "/token";
  std::ofstream(file) << "first\n";
  KubeConfig config;
  config.token_file = file;
  auto client = Client(fake->url(), Fast(), config);
  EXPECT_EQ(client->Do("GET", "/api")->code, 200);

  // The kubelet rotates the projected token: the file changes.
  fake->SetToken("second");
  std::ofstream(file, std::ios::trunc) << "second\n";
  EXPECT_EQ(client->Do("GET", "/api")->code, 200);

  // A rotation the file's mtime does not show (same second on a coarse clock) is caught
  // by the 401: the file is read once more and the request repeated.
  struct stat before;
  ASSERT_EQ(stat(file.c_str(), &before), 0);
  fake->SetToken("third");
  std::ofstream(file, std::ios::trunc) << "third\n";
  timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  EXPECT_EQ(client->Do("GET", "/api")->code, 200);

  // A wrong token stays a 401 (no loop).
  fake->SetToken("fourth");
  absl::StatusOr<KubeResponse> r = client->Do("GET", "/api");
  EXPECT_EQ(r->code, 401);
  EXPECT_EQ(r->ToStatus().code(), absl::StatusCode::kUnauthenticated);
}

TEST(KubeClientTest, AccessTellsClusterWideProblemsFromObjectOnes) {
  FakeApiServer::Options fake_options;
  fake_options.token = "right";
  auto fake = StartFake(fake_options);
  KubeConfig config;
  config.token = "right";
  auto client = Client(fake->url(), Fast(), config);
  EXPECT_TRUE(client->access().ok);
  EXPECT_EQ(client->Do("GET", "/api")->code, 200);
  EXPECT_TRUE(client->access().ok);

  // RBAC on one kind is that object's business, not the cluster's.
  fake->Forbid("get", "", "secrets");
  EXPECT_EQ(client->Do("GET", "/api/v1/namespaces/default/secrets/s")->code, 403);
  EXPECT_TRUE(client->access().ok);

  fake->SetToken("rotated-away");
  EXPECT_EQ(client->Do("GET", "/api/v1/namespaces/default")->code, 401);
  KubeClient::Access access = client->access();
  EXPECT_FALSE(access.ok);
  EXPECT_EQ(access.reason, "Unauthorized");
  EXPECT_THAT(access.message, HasSubstr("refused the credentials"));

  // Idle: CheckAccess asks the API itself, once.
  fake->SetToken("right");
  fake->ClearRequests();
  EXPECT_FALSE(client->CheckAccess(absl::Hours(1)).ok) << "not idle yet: no request";
  EXPECT_EQ(fake->Requests().size(), 0u);
  EXPECT_TRUE(client->CheckAccess(absl::ZeroDuration()).ok);
  EXPECT_EQ(fake->Requests().size(), 1u);

  fake.reset();
  KubeClient::Options once = Fast();
  once.max_retries = 0;
  config.server = "http://127.0.0.1:1";
  auto gone = *KubeClient::Create(config, once);
  EXPECT_EQ(gone->CheckAccess(absl::ZeroDuration()).reason, "Unreachable");
}

TEST(KubeClientTest, RateLimitSpacesRequests) {
  auto fake = StartFake();
  KubeClient::Options options = Fast();
  options.qps = 20;
  options.burst = 1;
  auto client = Client(fake->url(), options);
  absl::Time start = absl::Now();
  for (int i = 0; i < 11; ++i) ASSERT_EQ(client->Do("GET", "/api")->code, 200);
  // 10 requests past the burst at 20/s need at least 0.5 s.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(450));
}

// The clients an agent makes to act as service accounts share its rate limit: --kube-qps
// bounds them all together, however many accounts it acts as.
TEST(KubeClientTest, ImpersonatingClientsShareTheRateLimit) {
  auto fake = StartFake();
  KubeClient::Options options = Fast();
  options.qps = 20;
  options.burst = 1;
  auto client = Client(fake->url(), options);
  const std::string longest = "system:serviceaccount:" + std::string(63, 'n') + ":" +
                              std::string(253, 'a');  // a valid account's, at its longest
  absl::StatusOr<std::unique_ptr<KubeClient>> as_a = client->Impersonating(longest);
  ASSERT_TRUE(as_a.ok()) << as_a.status();
  absl::StatusOr<std::unique_ptr<KubeClient>> as_b =
      client->Impersonating("system:serviceaccount:b:deployer");
  ASSERT_TRUE(as_b.ok()) << as_b.status();
  EXPECT_FALSE(client->Impersonating("a\nb").ok());
  absl::Time start = absl::Now();
  for (int i = 0; i < 11; ++i) {
    KubeClient& next = i % 3 == 0 ? *client : i % 3 == 1 ? **as_a : **as_b;
    ASSERT_EQ(next.Do("GET", "/api")->code, 200);
  }
  // 10 requests past the one burst token at 20/s, whichever client: at least 0.5 s.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(450));
  std::vector<std::string> users;
  for (const FakeApiServer::Request& r : fake->Requests()) users.push_back(r.user);
  EXPECT_EQ(users[0], "");
  EXPECT_EQ(users[1], longest);
  EXPECT_EQ(users[2], "system:serviceaccount:b:deployer");
}

// Makes a self-signed certificate for 127.0.0.1 with openssl; returns the CA (the
// certificate) and writes cert+key to `pem`.
std::string MakeCertificate(const std::string& pem) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR"));
  std::string command =
      "cd " + dir +
      " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout key.pem -out cert.pem -days 2 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 2>/dev/null && cat cert.pem key.pem > " +
      pem;
  EXPECT_EQ(system(command.c_str()), 0);
  std::ifstream in(dir + "/cert.pem");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(KubeClientTest, HttpsVerifiesTheServerAgainstTheGivenCa) {
  std::string pem = std::string(std::getenv("TEST_TMPDIR")) + "/server.pem";
  std::string ca = MakeCertificate(pem);
  FakeApiServer::Options fake_options;
  fake_options.tls_cert_and_key = pem;
  auto fake = StartFake(fake_options);
  ASSERT_EQ(fake->url().substr(0, 8), "https://");

  KubeConfig trusted;
  trusted.ca_pem = ca;
  auto client = Client(fake->url(), Fast(), trusted);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(client->Do("GET", "/api")->code, 200);
  EXPECT_EQ(fake->TlsConnections(), 1) << "one connection, kept alive and reused";

  KubeClient::Options once = Fast();
  once.max_retries = 0;
  absl::StatusOr<KubeResponse> untrusted = Client(fake->url(), once)->Do("GET", "/api");
  ASSERT_FALSE(untrusted.ok());
  EXPECT_THAT(std::string(untrusted.status().message()), HasSubstr("certificate"));

  KubeConfig insecure;
  insecure.insecure_skip_tls_verify = true;
  EXPECT_EQ(Client(fake->url(), Fast(), insecure)->Do("GET", "/api")->code, 200);
}

TEST(KubeClientTest, ClientCertificatesAuthenticate) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/mtls";
  std::string command =
      "mkdir -p " + dir + " && cd " + dir +
      " && key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out $1 "
      "2>/dev/null; }"
      " && key ca.key && openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj /CN=ca"
      " && key server.key && openssl req -new -key server.key -out server.csr -subj /CN=127.0.0.1"
      " && printf 'subjectAltName=IP:127.0.0.1' > san.ext"
      " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2"
      " -extfile san.ext -out server.crt 2>/dev/null && cat server.crt server.key > server.pem"
      " && key client.key && openssl req -new -key client.key -out client.csr"
      " -subj /O=system:masters/CN=gitfleet"
      " && openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2"
      " -out client.crt 2>/dev/null";
  ASSERT_EQ(system(command.c_str()), 0);
  auto read = [&](const std::string& name) {
    std::ifstream in(dir + "/" + name);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  FakeApiServer::Options fake_options;
  fake_options.tls_cert_and_key = dir + "/server.pem";
  fake_options.client_ca = dir + "/ca.crt";
  auto fake = StartFake(fake_options);

  // As a kubeconfig gives them: inline (-data) PEM.
  KubeConfig config;
  config.ca_pem = read("ca.crt");
  config.client_cert_pem = read("client.crt");
  config.client_key_pem = read("client.key");
  EXPECT_EQ(Client(fake->url(), Fast(), config)->Do("GET", "/api")->code, 200);

  KubeClient::Options once = Fast();
  once.max_retries = 0;
  config.client_cert_pem.clear();
  config.client_key_pem.clear();
  absl::StatusOr<KubeResponse> anonymous = Client(fake->url(), once, config)->Do("GET", "/api");
  EXPECT_FALSE(anonymous.ok()) << "the TLS handshake refuses a client without a certificate";
}

TEST(RestMapperTest, MapsKindsAndFindsNewCrds) {
  auto fake = StartFake();
  auto client = Client(fake->url());
  RestMapper mapper(client.get(), absl::ZeroDuration());
  absl::StatusOr<ApiResource> d = mapper.Find("apps", "v1", "Deployment");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->resource, "deployments");
  EXPECT_TRUE(d->namespaced);
  EXPECT_EQ(d->Path("web", "api"), "/apis/apps/v1/namespaces/web/deployments/api");
  absl::StatusOr<ApiResource> ns = mapper.Find("", "v1", "Namespace");
  ASSERT_TRUE(ns.ok());
  EXPECT_FALSE(ns->namespaced);
  EXPECT_EQ(ns->Path("", "web"), "/api/v1/namespaces/web");
  absl::StatusOr<ApiResource> role =
      mapper.FindPreferred("rbac.authorization.k8s.io", "ClusterRole");
  ASSERT_TRUE(role.ok()) << role.status();
  EXPECT_EQ(role->Path("", "view"), "/apis/rbac.authorization.k8s.io/v1/clusterroles/view");

  absl::StatusOr<ApiResource> widget = mapper.Find("example.com", "v1", "Widget");
  EXPECT_EQ(widget.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(widget.status().message(),
            "the server does not serve apiVersion example.com/v1 (is its CRD installed?)");
  EXPECT_THAT(std::string(mapper.Find("apps", "v1", "Deploymnet").status().message()),
              HasSubstr("no kind Deploymnet in apiVersion apps/v1"));

  json crd = {{"apiVersion", "apiextensions.k8s.io/v1"},
              {"kind", "CustomResourceDefinition"},
              {"metadata", {{"name", "widgets.example.com"}}},
              {"spec",
               {{"group", "example.com"},
                {"scope", "Namespaced"},
                {"names", {{"kind", "Widget"}, {"plural", "widgets"}}},
                {"versions", {{{"name", "v1"}, {"served", true}, {"storage", true}}}}}}};
  absl::StatusOr<KubeResponse> applied = client->Do(
      "PATCH",
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com?fieldManager=t",
      crd.dump(), "application/apply-patch+yaml");
  ASSERT_EQ(applied->code, 201) << applied->body;
  widget = mapper.Find("example.com", "v1", "Widget");
  ASSERT_TRUE(widget.ok()) << widget.status();
  EXPECT_EQ(widget->resource, "widgets");
}

}  // namespace
}  // namespace gitfleet
