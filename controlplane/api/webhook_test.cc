#include "controlplane/api/webhook.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string Sign(const std::string& key, const std::string& body) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), out, &n);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(out), n));
}

TEST(PushedRepositoriesTest, ReadsEachProvidersFields) {
  nlohmann::json github = {{"repository",
                            {{"clone_url", "https://github.com/org/app.git"},
                             {"ssh_url", "git@github.com:org/app.git"},
                             {"html_url", "https://github.com/org/app"}}}};
  EXPECT_THAT(PushedRepositories(github), ElementsAre("github.com/org/app"));
  nlohmann::json gitlab = {{"project",
                            {{"git_http_url", "https://gitlab.com/g/app.git"},
                             {"git_ssh_url", "git@gitlab.com:g/app.git"}}},
                           {"repository", {{"homepage", "https://gitlab.com/g/app"}}}};
  EXPECT_THAT(PushedRepositories(gitlab), ElementsAre("gitlab.com/g/app"));
  EXPECT_THAT(PushedRepositories(nlohmann::json::array()), IsEmpty());
}

class WebhookTest : public ::testing::Test {
 protected:
  WebhookTest()
      : family_(metrics::BuildCounter()
                    .Name("gitfleet_webhooks_total")
                    .Help("h")
                    .LabelNames({"provider", "result"})
                    .Register(registry_)),
        used_(metrics::BuildCounter()
                  .Name("gitfleet_webhook_secrets_used_total")
                  .Help("h")
                  .LabelNames({"secret"})
                  .Register(registry_)) {
    Reset(10, 20);
  }
  void Reset(double rate, double burst, double verify_bytes_per_second = 64 << 20,
             size_t max_body_bytes = 4 << 20, std::vector<std::string> secrets = {"s3cret"}) {
    WebhookReceiver::Options options;
    options.secrets = WebhookReceiver::FixedSecrets(std::move(secrets));
    options.secrets_used = &used_;
    options.rate = rate;
    options.burst = burst;
    options.verify_bytes_per_second = verify_bytes_per_second;
    options.max_body_bytes = max_body_bytes;
    options.clock = &clock_;
    options.readers = [this](const std::set<std::string>& pushed) {
      std::vector<std::string> reading;
      for (const auto& [bundle, repo] : readers_) {
        if (pushed.count(repo) > 0) reading.push_back(bundle);
      }
      return reading;
    };
    receiver_ = std::make_unique<WebhookReceiver>(
        options,
        [] {
          return std::vector<std::pair<std::string, std::string>>{
              {"app", "git@github.com:org/app.git"},
              {"app-tags", "https://github.com/org/app"},
              {"other", "https://github.com/org/other"}};
        },
        [this](const std::string& name) {
          fetched_.push_back(name);
          return absl::OkStatus();
        },
        family_);
  }
  HttpRequest Push(const std::string& provider, const std::string& secret) {
    HttpRequest request;
    request.method = "POST";
    request.body =
        R"({"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/org/app.git"}})";
    if (provider == "github") {
      request.headers["x-github-event"] = "push";
      request.headers["x-hub-signature-256"] = "sha256=" + Sign(secret, request.body);
    } else if (provider == "gitlab") {
      request.headers["x-gitlab-event"] = "Push Hook";
      request.headers["x-gitlab-token"] = secret;
    } else if (provider == "gogs") {
      request.headers["x-gogs-event"] = "push";
      request.headers["x-gogs-signature"] = Sign(secret, request.body);
    } else if (provider == "bitbucket") {
      request.headers["x-event-key"] = "repo:push";
      request.headers["x-hub-signature"] = "sha256=" + Sign(secret, request.body);
    } else if (provider == "azuredevops") {
      request.body = R"({"eventType":"git.push","publisherId":"tfs","resource":{)"
                     R"("refUpdates":[{"name":"refs/heads/main"}],"repository":{)"
                     R"("url":"https://dev.azure.com/org/_apis/git/repositories/0b1c",)"
                     R"("remoteUrl":"https://github.com/org/app"}}})";
      request.headers["x-vss-activityid"] = "5f8b0c7e-0000-4000-8000-000000000001";
      request.headers["authorization"] = "Basic " + absl::Base64Escape("gitfleet:" + secret);
    } else {
      request.headers["x-gitea-event"] = "push";
      request.headers["x-gitea-signature"] = Sign(secret, request.body);
    }
    return request;
  }
  double Count(const std::string& provider, const std::string& result) {
    return family_.Add({{"provider", provider}, {"result", result}}).Value();
  }

  FakeClock clock_;
  metrics::Registry registry_;
  metrics::Family<metrics::Counter>& family_;
  metrics::Family<metrics::Counter>& used_;  // by secret
  std::unique_ptr<WebhookReceiver> receiver_;
  std::vector<std::string> fetched_;
  // (bundle, normalized repository) of the bundles whose renders read a repository.
  std::vector<std::pair<std::string, std::string>> readers_;
};

// A repository no source tracks, but whose branch a kustomization's remote base reads:
// its push renders those bundles again, alone or beside the sources it fetches.
TEST_F(WebhookTest, APushToARepositoryARenderReadsRendersItsReadersAgain) {
  HttpRequest platform = Push("gitlab", "s3cret");
  platform.body = R"({"object_kind":"push","project":{"git_http_url":)"
                  R"("https://GitHub.com/org/platform.git"}})";
  readers_ = {{"web", NormalizeRepoUrl("https://github.com/org/platform")},
              {"api", NormalizeRepoUrl("git@github.com:org/platform.git")},
              {"db", NormalizeRepoUrl("https://github.com/org/db")}};
  HttpResponse response = receiver_->Handle(platform);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_EQ(response.body, "rendering again web, api, which read the pushed repository\n");
  EXPECT_THAT(fetched_, ::testing::IsEmpty());
  EXPECT_EQ(Count("gitlab", "accepted"), 1);
  // The app's repository, which a source tracks and a bundle also reads from outside.
  readers_ = {{"web", NormalizeRepoUrl("https://github.com/org/app")}};
  response = receiver_->Handle(Push("gitlab", "s3cret"));
  EXPECT_EQ(response.body,
            "fetching app, app-tags; rendering again web, which reads the pushed repository\n");
  // Neither: said so.
  readers_.clear();
  response = receiver_->Handle(platform);
  EXPECT_EQ(response.code, 202);
  EXPECT_THAT(response.body, HasSubstr("no source tracks github.com/org/platform, and no "
                                       "bundle's render reads it"));
  EXPECT_EQ(Count("gitlab", "no_source"), 1);
}

// A repository published as a Pages site names the site too: a chart repository that
// chart-releaser keeps on gh-pages is read again when it is pushed to.
TEST(PagesSitesTest, AGitHubOrGitLabRepositoryPublishesItsPagesSite) {
  EXPECT_THAT(
      PagesSites({"github.com/acme/charts", "github.com/acme/acme.github.io",
                  "gitlab.com/platform/helm/charts", "git.example.com/acme/charts",
                  "github.com/acme"}),
      ElementsAre("acme.github.io", "acme.github.io/charts", "platform.gitlab.io/helm/charts"));
}

// A push to a repository whose Pages site serves a bundle's chart repository renders the
// bundle again (its index read anew).
TEST_F(WebhookTest, APushToAChartRepositorysPagesRendersItsBundlesAgain) {
  readers_ = {{"web", "org.github.io/app"}};
  HttpRequest push = Push("github", "s3cret");
  HttpResponse response = receiver_->Handle(push);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_THAT(response.body, HasSubstr("rendering again web"));
}

TEST(PushedRegistryRepositoriesTest, ReadsDistributionsAndHarborsPushes) {
  // Distribution: a chart's layers, then its manifest with the tag; pulls and deletes
  // change nothing.
  nlohmann::json distribution = nlohmann::json::parse(R"({"events":[
    {"action":"push","target":{"mediaType":"application/octet-stream",
      "repository":"charts/web","digest":"sha256:aa"},"request":{"host":"127.0.0.1:5000"}},
    {"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json",
      "repository":"charts/web","tag":"1.3.0",
      "url":"https://Registry.example.com/v2/charts/web/manifests/sha256:bb"},
      "request":{"host":"127.0.0.1:5000"}},
    {"action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json",
      "repository":"charts/api","tag":"2.0.0"},"request":{"host":"127.0.0.1:5000"}},
    {"action":"delete","target":{"repository":"charts/db","digest":"sha256:cc"}},
    "not an event", {"action":"push","target":5}]})");
  EXPECT_THAT(
      PushedRegistryRepositories(distribution),
      ElementsAre("oci://127.0.0.1:5000/charts/web", "oci://registry.example.com/charts/web"));
  // Azure Container Registry: one event alone, as Distribution writes each.
  nlohmann::json acr = nlohmann::json::parse(R"({"id":"1","action":"push","target":{
    "mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"helm/web",
    "tag":"1.3.0"},"request":{"host":"org.azurecr.io"}})");
  EXPECT_THAT(PushedRegistryRepositories(acr), ElementsAre("oci://org.azurecr.io/helm/web"));
  // Harbor, both formats: the repository's full name, the host from resource_url.
  nlohmann::json harbor = nlohmann::json::parse(R"({"type":"PUSH_ARTIFACT","event_data":{
    "resources":[{"tag":"1.3.0","resource_url":"harbor.example.com/library/web:1.3.0"}],
    "repository":{"name":"web","namespace":"library","repo_full_name":"library/web"}}})");
  EXPECT_THAT(PushedRegistryRepositories(harbor),
              ElementsAre("oci://harbor.example.com/library/web"));
  nlohmann::json cloud = nlohmann::json::parse(R"({"type":"harbor.artifact.pushed","data":{
    "resources":[{"resource_url":"Harbor.example.com:8443/team/charts/api@sha256:dd"}]}})");
  EXPECT_THAT(PushedRegistryRepositories(cloud),
              ElementsAre("oci://harbor.example.com:8443/team/charts/api"));
  // GitHub Packages: a chart helm pushed to ghcr.io, its package_url with the tag; the older
  // registry_package event; a version deleted changes nothing.
  nlohmann::json ghcr = nlohmann::json::parse(R"({"action":"published","package":{
    "name":"charts/web","namespace":"org","package_type":"CONTAINER","package_version":{
      "version":"sha256:ee","package_url":"ghcr.io/org/charts/web:1.3.0",
      "container_metadata":{"tag":{"name":"1.3.0"}}}}})");
  EXPECT_THAT(PushedRegistryRepositories(ghcr), ElementsAre("oci://ghcr.io/org/charts/web"));
  nlohmann::json older = nlohmann::json::parse(R"({"action":"published","registry_package":{
    "package_version":{"package_url":"ghcr.io/org/api"}}})");
  EXPECT_THAT(PushedRegistryRepositories(older), ElementsAre("oci://ghcr.io/org/api"));
  for (const char* other :
       {R"({"action":"deleted","package":{"package_version":{"package_url":"ghcr.io/o/w:1"}}})",
        R"({"type":"PULL_ARTIFACT","event_data":{"resources":[{"resource_url":"h/l/w:1"}]}})",
        R"({"type":"PUSH_ARTIFACT","event_data":"x"})", R"({"type":"PUSH_ARTIFACT"})",
        R"({"events":"x"})", R"([1])"}) {
    EXPECT_THAT(PushedRegistryRepositories(nlohmann::json::parse(other)), IsEmpty()) << other;
  }
}

// GitHub's package event, signed as its pushes are, renders the bundles whose charts come
// from the published package.
TEST_F(WebhookTest, AGitHubPackagePublishedRendersTheBundlesUsingIt) {
  readers_ = {{"web", "oci://ghcr.io/org/charts/web"}};
  HttpRequest request;
  request.method = "POST";
  request.body = R"({"action":"published","package":{"package_version":{)"
                 R"("package_url":"ghcr.io/org/charts/web:1.3.0"}}})";
  request.headers["x-github-event"] = "package";
  request.headers["x-hub-signature-256"] = "sha256=" + Sign("s3cret", request.body);
  HttpResponse response = receiver_->Handle(request);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_EQ(response.body, "rendering again web, whose chart comes from the pushed repository\n");
  EXPECT_EQ(Count("github", "accepted"), 1);
  request.headers["x-hub-signature-256"] = "sha256=" + Sign("guess", request.body);
  EXPECT_EQ(receiver_->Handle(request).code, 401);
  EXPECT_THAT(fetched_, IsEmpty());
}

// A registry's notification of a chart pushed (a new version in a bundle's range, a tag
// pushed again) renders again the bundles whose charts come from that repository.
TEST_F(WebhookTest, AChartPushedToARegistryRendersTheBundlesUsingIt) {
  HttpRequest push;
  push.method = "POST";
  push.headers["content-type"] = "application/vnd.docker.distribution.events.v1+json";
  push.body = R"({"events":[{"action":"push","target":{"mediaType":)"
              R"("application/vnd.oci.image.manifest.v1+json","repository":"charts/web",)"
              R"("tag":"1.3.0"},"request":{"host":"127.0.0.1:5000"}}]})";
  readers_ = {{"web", "oci://127.0.0.1:5000/charts/web"},
              {"api", "oci://127.0.0.1:5000/charts/api"}};
  push.headers["authorization"] = "Bearer guess";
  HttpResponse response = receiver_->Handle(push);
  EXPECT_EQ(response.code, 401) << response.body;
  EXPECT_THAT(response.body, HasSubstr("\"Bearer SECRET\""));
  EXPECT_EQ(Count("registry", "unauthorized"), 1);
  for (const char* authorization : {"Bearer s3cret", "s3cret"}) {  // Harbor's: as written
    push.headers["authorization"] = authorization;
    response = receiver_->Handle(push);
    EXPECT_EQ(response.code, 202) << response.body;
    EXPECT_EQ(response.body, "rendering again web, whose chart comes from the pushed repository\n");
  }
  EXPECT_EQ(Count("registry", "accepted"), 2);
  EXPECT_THAT(fetched_, IsEmpty());

  HttpRequest pull = push;
  pull.body = R"({"events":[{"action":"pull","target":{"repository":"charts/web","tag":"1"}}]})";
  response = receiver_->Handle(pull);
  EXPECT_EQ(response.code, 202);
  EXPECT_THAT(response.body, HasSubstr("no manifest pushed"));
  EXPECT_EQ(Count("registry", "ignored"), 1);
  readers_.clear();
  EXPECT_THAT(receiver_->Handle(push).body,
              HasSubstr("no bundle's chart comes from oci://127.0.0.1:5000/charts/web"));
  pull.body = "events";
  EXPECT_EQ(receiver_->Handle(pull).code, 400);
  // No Authorization at all: not a registry's.
  push.headers.erase("authorization");
  response = receiver_->Handle(push);
  EXPECT_EQ(response.code, 401);
  EXPECT_EQ(Count("unknown", "unauthorized"), 1);
}

// Docker Hub and Quay sign nothing and send no header: they are given /hooks/git/TOKEN,
// the token the SHA-256 of a secret, never the secret itself. A Git server that cannot
// sign may post its push there too.
TEST_F(WebhookTest, SendersThatCannotSignAreVerifiedByTheirUrlsToken) {
  const std::string token = absl::BytesToHexString(crypto::Sha256("s3cret"));
  HttpRequest hub;
  hub.method = "POST";
  hub.headers["content-type"] = "application/json";
  hub.body = R"({"callback_url":"https://registry.hub.docker.com/u/acme/web/hook/2i/",)"
             R"("push_data":{"pushed_at":1700000000,"pusher":"jane","tag":"1.3.0"},)"
             R"("repository":{"name":"web","namespace":"acme","repo_name":"acme/web",)"
             R"("repo_url":"https://hub.docker.com/r/acme/web","status":"Active"}})";
  readers_ = {{"web", "oci://registry-1.docker.io/acme/web"},
              {"web-short", "oci://docker.io/acme/web"},
              {"quay-web", "oci://quay.io/acme/web"}};
  for (const std::string& path :
       std::vector<std::string>{"/hooks/git", "/hooks/git/" + token + "00", "/hooks/git/s3cret"}) {
    hub.path = path;
    HttpResponse refused = receiver_->Handle(hub);
    EXPECT_EQ(refused.code, 401) << path;
  }
  EXPECT_EQ(Count("unknown", "unauthorized"), 1);
  EXPECT_EQ(Count("url_token", "unauthorized"), 2);
  hub.path = "/hooks/git/" + token;
  HttpResponse response = receiver_->Handle(hub);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_EQ(response.body,
            "rendering again web, web-short, whose charts come from the pushed repository\n");
  hub.path = "/hooks/git/" + absl::AsciiStrToUpper(token);  // hex either way
  EXPECT_EQ(receiver_->Handle(hub).code, 202);
  EXPECT_EQ(Count("url_token", "accepted"), 2);

  HttpRequest quay = hub;
  quay.body = R"({"repository":"acme/web","namespace":"acme","name":"web",)"
              R"("docker_url":"quay.io/acme/web","homepage":"https://quay.io/repository/acme/web",)"
              R"("updated_tags":["1.3.0"]})";
  response = receiver_->Handle(quay);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_EQ(response.body,
            "rendering again quay-web, whose chart comes from the pushed repository\n");

  HttpRequest git = Push("github", "s3cret");
  git.headers.clear();
  git.path = "/hooks/git/" + token;
  response = receiver_->Handle(git);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_THAT(fetched_, ElementsAre("app", "app-tags"));
  EXPECT_THAT(PushedRegistryRepositories(nlohmann::json::parse(hub.body)),
              ElementsAre("oci://docker.io/acme/web", "oci://index.docker.io/acme/web",
                          "oci://registry-1.docker.io/acme/web"));
  // Official images are library/NAME.
  EXPECT_THAT(PushedRegistryRepositories(nlohmann::json::parse(
                  R"({"push_data":{"tag":"1"},"repository":{"repo_name":"nginx"}})")),
              Contains("oci://registry-1.docker.io/library/nginx"));
}

// Gerrit's webhooks plugin signs nothing (a URL token verifies it) and its ref-updated
// event names the project alone: the sources whose path is that project, on any host, at
// /PROJECT or Gerrit's authenticated /a/PROJECT, are fetched; its other events are ignored.
TEST_F(WebhookTest, AGerritRefUpdatedEventFetchesTheSourcesOfItsProject) {
  HttpRequest gerrit;
  gerrit.method = "POST";
  gerrit.path = "/hooks/git/" + absl::BytesToHexString(crypto::Sha256("s3cret"));
  gerrit.headers["content-type"] = "application/json";
  gerrit.body = R"({"submitter":{"name":"Jane","username":"jane"},)"
                R"("refUpdate":{"oldRev":"0000000000000000000000000000000000000000",)"
                R"("newRev":"c3a2f0e1d4b5a69788796a5b4c3d2e1f0a9b8c7d",)"
                R"("refName":"refs/heads/main","project":"org/App"},)"
                R"("type":"ref-updated","eventCreatedOn":1700000000})";
  HttpResponse response = receiver_->Handle(gerrit);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_THAT(fetched_, ElementsAre("app", "app-tags"));
  EXPECT_EQ(Count("url_token", "accepted"), 1);

  HttpRequest other = gerrit;
  other.body = R"({"type":"patchset-created","eventCreatedOn":1700000000,)"
               R"("change":{"project":"org/app","branch":"main"}})";
  response = receiver_->Handle(other);
  EXPECT_EQ(response.code, 202);
  EXPECT_THAT(response.body, HasSubstr("Gerrit event \"patchset-created\" ignored"));
  other.body = R"({"type":"ref-updated","eventCreatedOn":1700000000,)"
               R"("refUpdate":{"project":"tools/unknown"}})";
  response = receiver_->Handle(other);
  EXPECT_EQ(response.code, 202);
  EXPECT_THAT(response.body, HasSubstr("no source's repository is Gerrit project tools/unknown"));
  other.body = R"({"type":"ref-updated","eventCreatedOn":1700000000,"refUpdate":{}})";
  EXPECT_EQ(receiver_->Handle(other).code, 400);
  EXPECT_EQ(fetched_.size(), 2u);
  // Unsigned, it is refused as any sender without a token is.
  gerrit.path = "/hooks/git";
  EXPECT_EQ(receiver_->Handle(gerrit).code, 401);

  EXPECT_THAT(
      GerritProjectSources("platform/fleet",
                           {"https://review.example.com/a/platform/fleet",
                            "ssh://jane@review.example.com:29418/platform/fleet.git",
                            "https://review.example.com/platform/fleet-extra",
                            "https://review.example.com/x/platform/fleet",
                            "https://review.example.com/a/a/platform/fleet"}),
      ElementsAre("review.example.com/a/platform/fleet", "review.example.com/platform/fleet"));
  EXPECT_FALSE(ReadGerritEvent(nlohmann::json::parse(R"({"type":"push"})")).has_value());
}

TEST_F(WebhookTest, AVerifiedPushFetchesEverySourceOfThatRepository) {
  for (const char* provider : {"github", "gitlab", "gitea", "gogs", "bitbucket", "azuredevops"}) {
    fetched_.clear();
    HttpResponse response = receiver_->Handle(Push(provider, "s3cret"));
    EXPECT_EQ(response.code, 202) << provider << ": " << response.body;
    EXPECT_THAT(fetched_, ElementsAre("app", "app-tags")) << provider;
    EXPECT_EQ(Count(provider, "accepted"), 1) << provider;
  }
}

TEST_F(WebhookTest, WhileASecretIsRotatedEitherVerifiesAndTheOneUsedIsCounted) {
  Reset(100, 100, 64 << 20, 4 << 20, {"old-s3cret", "new-s3cret"});
  for (const char* provider : {"github", "gitlab", "gitea", "gogs", "bitbucket", "azuredevops"}) {
    fetched_.clear();
    EXPECT_EQ(receiver_->Handle(Push(provider, "old-s3cret")).code, 202) << provider;
    EXPECT_EQ(receiver_->Handle(Push(provider, "new-s3cret")).code, 202) << provider;
    EXPECT_THAT(fetched_, ElementsAre("app", "app-tags", "app", "app-tags")) << provider;
    HttpResponse wrong = receiver_->Handle(Push(provider, "s3cret"));
    EXPECT_EQ(wrong.code, 401) << provider << ": " << wrong.body;
    EXPECT_EQ(fetched_.size(), 4u) << provider;
  }
  EXPECT_EQ(used_.Add({{"secret", "1"}}).Value(), 6);
  EXPECT_EQ(used_.Add({{"secret", "2"}}).Value(), 6);

  // Each secret in force is an HMAC more: the bytes verified before admission count so.
  Reset(100, 100, /*verify_bytes_per_second=*/1, /*max_body_bytes=*/1024,
        {"old-s3cret", "new-s3cret"});
  // The burst is four bodies of the largest size: two requests, each checked twice.
  EXPECT_EQ(receiver_->Handle(Push("github", "new-s3cret")).code, 202);
  EXPECT_EQ(receiver_->Handle(Push("github", "new-s3cret")).code, 202);
  EXPECT_EQ(receiver_->Handle(Push("github", "new-s3cret")).code, 429);
}

// GitLab's signing token (Standard Webhooks): webhook-signature holds "v1,BASE64" of the
// HMAC-SHA256 of "ID.TIMESTAMP.BODY" under the key "whsec_BASE64" encodes, and a delivery is
// taken only within 5 minutes of its timestamp. A hook with a signing token alone sends no
// X-Gitlab-Token: before, every such push was refused.
TEST_F(WebhookTest, AGitLabPushSignedWithItsSigningTokenIsVerified) {
  const std::string key = "0123456789abcdef0123456789abcdef";
  const std::string signing_token = "whsec_" + absl::Base64Escape(key);
  Reset(100, 100, 64 << 20, 4 << 20, {"other", signing_token});
  const int64_t now = absl::ToUnixSeconds(clock_.Now());
  auto signed_push = [&](const std::string& with_key, int64_t timestamp,
                         const std::string& signatures_before = "") {
    HttpRequest request = Push("gitlab", "");
    request.headers.erase("x-gitlab-token");
    request.headers["webhook-id"] = "9f3c1b2e-7d4a-4c55-9e0b-1a2b3c4d5e6f";
    request.headers["webhook-timestamp"] = absl::StrCat(timestamp);
    request.headers["webhook-signature"] = absl::StrCat(
        signatures_before, "v1,",
        absl::Base64Escape(crypto::HmacSha256(
            with_key,
            absl::StrCat(request.headers["webhook-id"], ".", timestamp, ".", request.body))));
    return request;
  };
  HttpResponse accepted = receiver_->Handle(signed_push(key, now));
  EXPECT_EQ(accepted.code, 202) << accepted.body;
  EXPECT_THAT(fetched_, ElementsAre("app", "app-tags"));
  EXPECT_EQ(used_.Add({{"secret", "2"}}).Value(), 1);
  // Several signatures (a key being rotated, another version's): one that holds is enough.
  EXPECT_EQ(receiver_->Handle(signed_push(key, now - 60, "v1a,c2lnbmVk v1,bm90IGl0 ")).code, 202);
  EXPECT_EQ(fetched_.size(), 4u);

  // The key as written, not decoded, is not GitLab's key.
  HttpResponse wrong = receiver_->Handle(signed_push(signing_token, now));
  EXPECT_EQ(wrong.code, 401);
  EXPECT_THAT(wrong.body, HasSubstr("gitlab signature or token does not match"));
  HttpRequest tampered = signed_push(key, now);
  tampered.body += " ";
  EXPECT_EQ(receiver_->Handle(tampered).code, 401);
  // Replayed or held back past 5 minutes, either way.
  HttpResponse late = receiver_->Handle(signed_push(key, now - 301));
  EXPECT_EQ(late.code, 401);
  EXPECT_THAT(late.body, HasSubstr("webhook-timestamp is 301 s behind the control plane's clock"));
  HttpResponse early = receiver_->Handle(signed_push(key, now + 400));
  EXPECT_THAT(early.body, HasSubstr("400 s ahead of"));
  HttpRequest no_id = signed_push(key, now);
  no_id.headers.erase("webhook-id");
  EXPECT_THAT(receiver_->Handle(no_id).body, HasSubstr("without a webhook-id"));
  EXPECT_EQ(fetched_.size(), 4u) << "nothing refused fetched";
  // Its token still verifies alone, as before.
  Reset(100, 100, 64 << 20, 4 << 20, {"other", signing_token});
  EXPECT_EQ(receiver_->Handle(Push("gitlab", signing_token)).code, 202);

  // Any other sender that signs so, without a header of its own: its payload says the rest.
  Reset(100, 100, 64 << 20, 4 << 20, {"plain-secret"});
  fetched_.clear();
  HttpRequest other = signed_push("plain-secret", now);
  other.headers.erase("x-gitlab-event");
  HttpResponse by_standard = receiver_->Handle(other);
  EXPECT_EQ(by_standard.code, 202) << by_standard.body;
  EXPECT_THAT(fetched_, ElementsAre("app", "app-tags"));
  EXPECT_EQ(Count("unknown", "accepted"), 1);
}

TEST_F(WebhookTest, AGitLabSystemHookFetchesOnPushesAndIgnoresTheRest) {
  HttpRequest push = Push("gitlab", "s3cret");
  push.headers["x-gitlab-event"] = "System Hook";
  push.body = R"({"event_name":"push","ref":"refs/heads/main",)"
              R"("project":{"git_http_url":"https://github.com/org/app.git"}})";
  HttpResponse response = receiver_->Handle(push);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_THAT(fetched_, ElementsAre("app", "app-tags"));

  fetched_.clear();
  HttpRequest created = push;
  created.body =
      R"({"event_name":"project_create","project":{"git_http_url":"https://github.com/org/app.git"}})";
  response = receiver_->Handle(created);
  EXPECT_EQ(response.code, 202);
  EXPECT_THAT(response.body, HasSubstr("system hook event \"project_create\" ignored"));
  EXPECT_THAT(fetched_, IsEmpty());
  EXPECT_EQ(Count("gitlab", "ignored"), 1);

  HttpRequest odd = push;
  odd.body = R"({"event_name":5,"project":{"git_http_url":"https://github.com/org/app.git"}})";
  EXPECT_THAT(receiver_->Handle(odd).body, HasSubstr("system hook event \"\" ignored"));
  EXPECT_THAT(fetched_, IsEmpty());

  HttpRequest forged = push;
  forged.headers["x-gitlab-token"] = "guess";
  EXPECT_EQ(receiver_->Handle(forged).code, 401);
  EXPECT_THAT(fetched_, IsEmpty());
}

// Bitbucket names its repository in links: Cloud's web page, Data Center's clone URLs
// (SSH on its own port, HTTP under /scm/).
TEST_F(WebhookTest, BitbucketPushesNameTheirRepositoryInLinks) {
  nlohmann::json cloud = {
      {"repository",
       {{"full_name", "org/app"},
        {"links",
         {{"html", {{"href", "https://bitbucket.org/org/app"}}},
          {"self", {{"href", "https://api.bitbucket.org/2.0/repositories/org/app"}}}}}}}};
  EXPECT_THAT(PushedRepositories(cloud), ElementsAre("bitbucket.org/org/app"));
  nlohmann::json data_center = {
      {"eventKey", "repo:refs_changed"},
      {"repository",
       {{"slug", "app"},
        {"links",
         {{"clone",
           {{{"href", "ssh://git@git.example.com:7999/org/app.git"}, {"name", "ssh"}},
            {{"href", "https://git.example.com/scm/org/app.git"}, {"name", "http"}}}},
          {"self", {{{"href", "https://git.example.com/projects/ORG/repos/app/browse"}}}}}}}}};
  EXPECT_THAT(PushedRepositories(data_center),
              ElementsAre("git.example.com/org/app", "git.example.com/scm/org/app"));
  nlohmann::json odd = {{"repository", {{"links", {{"clone", {1, "x", {{"href", 2}}}}}}}}};
  EXPECT_THAT(PushedRepositories(odd), IsEmpty());

  HttpRequest push = Push("bitbucket", "s3cret");
  push.headers["x-event-key"] = "repo:refs_changed";
  push.body = R"({"repository":{"links":{"clone":[)"
              R"({"href":"ssh://git@github.com:22/org/app.git","name":"ssh"}]}}})";
  push.headers["x-hub-signature"] = "sha256=" + Sign("s3cret", push.body);
  HttpResponse response = receiver_->Handle(push);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_THAT(fetched_, ElementsAre("app", "app-tags"));
  EXPECT_EQ(Count("bitbucket", "accepted"), 1);

  fetched_.clear();
  HttpRequest ping = push;
  ping.headers["x-event-key"] = "diagnostics:ping";
  EXPECT_THAT(receiver_->Handle(ping).body, HasSubstr("pong"));
  HttpRequest unsigned_push = push;
  unsigned_push.headers.erase("x-hub-signature");
  EXPECT_EQ(receiver_->Handle(unsigned_push).code, 401);
  EXPECT_THAT(fetched_, IsEmpty());
}

// Azure DevOps signs nothing: its service hook sends basic authentication, whose password
// is the secret, and names its event in the payload.
TEST_F(WebhookTest, AzureDevOpsPushesAuthenticateWithTheSecretAsPassword) {
  const std::vector<std::pair<std::string, std::string>> sources = {
      {"ssh", "git@ssh.dev.azure.com:v3/org/proj/app"},
      {"https", "https://org@dev.azure.com/org/proj/_git/app"},
      {"legacy", "https://org.visualstudio.com/DefaultCollection/proj/_git/app"},
      {"other", "git@ssh.dev.azure.com:v3/org/proj/other"}};
  auto receiver = [&](const std::string& secret) {
    WebhookReceiver::Options options;
    options.secrets = WebhookReceiver::FixedSecrets({secret});
    options.clock = &clock_;
    return std::make_unique<WebhookReceiver>(
        options, [&] { return sources; },
        [this](const std::string& name) {
          fetched_.push_back(name);
          return absl::OkStatus();
        },
        family_);
  };
  std::unique_ptr<WebhookReceiver> azure = receiver("s3cret");
  HttpRequest push = Push("azuredevops", "s3cret");
  push.headers.erase("x-vss-activityid");
  push.headers["x-vss-subscriptionid"] = "8fd412f1-9873-4b45-8854-655b1b8a2eff";
  push.body = R"({"eventType":"git.push","resource":{"repository":{)"
              R"("remoteUrl":"https://dev.azure.com/org/proj/_git/app"}}})";
  HttpResponse response = azure->Handle(push);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_THAT(fetched_, ElementsAre("ssh", "https", "legacy"));
  EXPECT_EQ(Count("azuredevops", "accepted"), 1);

  // Any user name, a lower-case scheme, and a password holding colons.
  fetched_.clear();
  HttpRequest colons = push;
  colons.headers["authorization"] = "basic  " + absl::Base64Escape(":a:b:c") + " ";
  EXPECT_EQ(receiver("a:b:c")->Handle(colons).code, 202);
  EXPECT_THAT(fetched_, ElementsAre("ssh", "https", "legacy"));

  fetched_.clear();
  for (const std::string& authorization :
       {std::string(""), "Basic " + absl::Base64Escape("gitfleet:guess"),
        "Basic " + absl::Base64Escape("s3cret"), "Basic " + absl::Base64Escape("s3cret:"),
        std::string("Bearer s3cret"), std::string("Basic not*base64"),
        "Basic " + absl::Base64Escape(":s3cre")}) {
    HttpRequest forged = push;
    if (authorization.empty()) {
      forged.headers.erase("authorization");
    } else {
      forged.headers["authorization"] = authorization;
    }
    response = azure->Handle(forged);
    EXPECT_EQ(response.code, 401) << authorization;
    EXPECT_THAT(response.body, HasSubstr("basic authentication")) << authorization;
  }
  EXPECT_THAT(fetched_, IsEmpty());
  EXPECT_EQ(Count("azuredevops", "unauthorized"), 7);

  // Other events (and a payload that names none) are acknowledged and fetch nothing.
  for (const char* body : {R"({"eventType":"git.pullrequest.created","resource":{"repository":)"
                           R"({"remoteUrl":"https://dev.azure.com/org/proj/_git/app"}}})",
                           R"({"eventType":7})", R"({})"}) {
    HttpRequest other = push;
    other.body = body;
    response = azure->Handle(other);
    EXPECT_EQ(response.code, 202) << body;
    EXPECT_THAT(response.body, HasSubstr("ignored")) << body;
  }
  EXPECT_THAT(fetched_, IsEmpty());
  EXPECT_EQ(Count("azuredevops", "ignored"), 3);

  HttpRequest not_json = push;
  not_json.body = "eventType=git.push";
  EXPECT_EQ(azure->Handle(not_json).code, 400);
}

TEST(FormFieldTest, DecodesTheNamedFieldAndRefusesMalformedEscapes) {
  EXPECT_EQ(FormField("a=1&payload=%7B%22x%22%3A+1%7d&b=2", "payload"), "{\"x\": 1}");
  EXPECT_EQ(FormField("payload=", "payload"), "");
  EXPECT_EQ(FormField("payloads=1", "payload"), std::nullopt);
  EXPECT_EQ(FormField("payload=%4", "payload"), std::nullopt);
  EXPECT_EQ(FormField("payload=%zz", "payload"), std::nullopt);
  EXPECT_EQ(FormField("", "payload"), std::nullopt);
}

// GitHub's and Gitea's other content type: the JSON in a form's `payload` field, the
// signature over the form as sent.
TEST_F(WebhookTest, AFormEncodedPushIsReadFromItsPayloadField) {
  for (const char* provider : {"github", "gitea"}) {
    fetched_.clear();
    HttpRequest request = Push(provider, "s3cret");
    request.headers["content-type"] = "application/x-www-form-urlencoded";
    request.body =
        "payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%2C%22repository%22%3A%7B%22clone_url%22"
        "%3A%22https%3A%2F%2Fgithub.com%2Forg%2Fapp.git%22%7D%7D";
    const std::string signature = Sign("s3cret", request.body);
    if (std::string(provider) == "github") {
      request.headers["x-hub-signature-256"] = "sha256=" + signature;
    } else {
      request.headers["x-gitea-signature"] = signature;
    }
    HttpResponse response = receiver_->Handle(request);
    EXPECT_EQ(response.code, 202) << provider << ": " << response.body;
    EXPECT_THAT(fetched_, ElementsAre("app", "app-tags")) << provider;
  }
  HttpRequest bad = Push("github", "s3cret");
  bad.headers["content-type"] = "application/x-www-form-urlencoded";
  bad.body = "nothing=here";
  bad.headers["x-hub-signature-256"] = "sha256=" + Sign("s3cret", bad.body);
  fetched_.clear();
  HttpResponse response = receiver_->Handle(bad);
  EXPECT_EQ(response.code, 400);
  EXPECT_THAT(response.body, HasSubstr("\"payload\""));
  EXPECT_THAT(fetched_, IsEmpty());

  // A JSON body labelled as a form (curl --data, some relays) is read as JSON.
  HttpRequest mislabelled = Push("github", "s3cret");
  mislabelled.headers["content-type"] = "application/x-www-form-urlencoded";
  response = receiver_->Handle(mislabelled);
  EXPECT_EQ(response.code, 202) << response.body;
  EXPECT_THAT(fetched_, ElementsAre("app", "app-tags"));
}

TEST_F(WebhookTest, AWrongSignatureIsRefusedAndFetchesNothing) {
  // Before anything arrives, each provider's refusals are a series at 0 (what
  // GitfleetWebhookRefused's increase() needs to see the first one).
  const std::string scrape = registry_.Serialize();
  for (const char* provider : kWebhookProviders) {
    EXPECT_THAT(scrape, HasSubstr(absl::StrCat("gitfleet_webhooks_total{provider=\"", provider,
                                               "\",result=\"unauthorized\"} 0\n")))
        << scrape;
  }
  for (const char* provider : {"github", "gitlab", "gitea", "gogs", "bitbucket", "azuredevops"}) {
    HttpResponse response = receiver_->Handle(Push(provider, "guess"));
    EXPECT_EQ(response.code, 401) << provider;
    EXPECT_EQ(Count(provider, "unauthorized"), 1) << provider;
  }
  // The body changed after signing.
  HttpRequest tampered = Push("github", "s3cret");
  tampered.body += " ";
  EXPECT_EQ(receiver_->Handle(tampered).code, 401);
  HttpRequest anonymous;
  anonymous.body = "{}";
  EXPECT_EQ(receiver_->Handle(anonymous).code, 401);
  EXPECT_EQ(Count("unknown", "unauthorized"), 1);
  EXPECT_THAT(fetched_, IsEmpty());
}

TEST_F(WebhookTest, OversizedFloodsAndOtherEventsAreAnsweredWithoutFetching) {
  HttpRequest big = Push("github", "s3cret");
  big.body_too_large = true;
  big.body.clear();
  EXPECT_EQ(receiver_->Handle(big).code, 413);
  EXPECT_EQ(Count("github", "too_large"), 1);
  HttpRequest busy = Push("gitlab", "s3cret");  // the endpoint was reading enough at once
  busy.busy = true;
  busy.body.clear();
  EXPECT_EQ(receiver_->Handle(busy).code, 503);
  EXPECT_EQ(Count("gitlab", "busy"), 1);
  HttpRequest slow = Push("github", "s3cret");  // cut at its deadline
  slow.too_slow = true;
  slow.body.clear();
  EXPECT_EQ(receiver_->Handle(slow).code, 408);
  EXPECT_EQ(Count("github", "too_slow"), 1);

  HttpRequest issue = Push("github", "s3cret");
  issue.headers["x-github-event"] = "issues";
  EXPECT_EQ(receiver_->Handle(issue).code, 202);
  EXPECT_EQ(Count("github", "ignored"), 1);
  HttpRequest ping = Push("github", "s3cret");
  ping.headers["x-github-event"] = "ping";
  EXPECT_THAT(receiver_->Handle(ping).body, HasSubstr("pong"));

  HttpRequest elsewhere = Push("gitlab", "s3cret");
  elsewhere.body = R"({"project":{"git_http_url":"https://gitlab.com/x/y.git"}})";
  HttpResponse none = receiver_->Handle(elsewhere);
  EXPECT_EQ(none.code, 202);
  EXPECT_THAT(none.body, HasSubstr("no source tracks gitlab.com/x/y"));
  HttpRequest garbage = Push("gitlab", "s3cret");
  garbage.body = "not json";
  EXPECT_EQ(receiver_->Handle(garbage).code, 400);
  EXPECT_THAT(fetched_, IsEmpty());

  // Past the burst, requests are refused until the bucket refills.
  Reset(1, 2);
  EXPECT_EQ(receiver_->Handle(Push("github", "s3cret")).code, 202);
  EXPECT_EQ(receiver_->Handle(Push("github", "s3cret")).code, 202);
  EXPECT_EQ(receiver_->Handle(Push("github", "s3cret")).code, 429);
  EXPECT_EQ(Count("github", "rate_limited"), 1);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(receiver_->Handle(Push("github", "s3cret")).code, 202);
}

// Wrong signatures spend nothing of the verified requests' limit: a flood of them is
// refused with 401, and a real push right after it is still taken.
TEST_F(WebhookTest, AFloodOfWrongSignaturesDoesNotGetARealPushRefused) {
  Reset(1, 2);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(receiver_->Handle(Push(i % 2 == 0 ? "github" : "gitea", "guess")).code, 401) << i;
  }
  HttpRequest anonymous;
  anonymous.body = "{}";
  EXPECT_EQ(receiver_->Handle(anonymous).code, 401);
  EXPECT_EQ(Count("github", "rate_limited") + Count("gitea", "rate_limited"), 0);
  EXPECT_EQ(receiver_->Handle(Push("github", "s3cret")).code, 202);
  EXPECT_THAT(fetched_, Not(IsEmpty()));
}

// What is verified before the signature is known is bounded in bytes: past the budget
// (here 1 KiB/s, a burst of four 1 KiB bodies) a request is refused before its HMAC,
// whoever sent it, until the budget refills.
TEST_F(WebhookTest, BytesVerifiedPerSecondAreBounded) {
  Reset(10, 20, /*verify_bytes_per_second=*/1024, /*max_body_bytes=*/1024);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(receiver_->Handle(Push("github", "guess")).code, 401) << i;
  HttpResponse refused = receiver_->Handle(Push("github", "s3cret"));
  EXPECT_EQ(refused.code, 429);
  EXPECT_THAT(refused.body, HasSubstr("faster than they can be verified"));
  EXPECT_EQ(Count("github", "rate_limited"), 1);
  EXPECT_THAT(fetched_, IsEmpty());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(receiver_->Handle(Push("github", "s3cret")).code, 202);
}

}  // namespace
}  // namespace gitfleet
