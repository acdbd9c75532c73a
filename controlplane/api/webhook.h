#ifndef GITFLEET_CONTROLPLANE_API_WEBHOOK_H_
#define GITFLEET_CONTROLPLANE_API_WEBHOOK_H_

// Git push webhooks (POST /hooks/git on --http): a verified push fetches, at once, every
// source whose URL is one of the pushed repository's URLs, instead of waiting for its
// poll interval.
//
//   GitHub   X-Hub-Signature-256: sha256=HMAC-SHA256(secret, body), X-GitHub-Event: push
//   GitLab   X-Gitlab-Token: secret, X-Gitlab-Event: Push Hook | Tag Push Hook, or
//            System Hook (an instance's hook for every project) with event_name push,
//            tag_push or repository_update; or its signing token's Standard Webhooks
//            signature (below) instead of, or beside, the token
//   Gitea    X-Gitea-Signature (Forgejo: X-Forgejo-Signature): HMAC-SHA256 hex,
//            X-Gitea-Event (X-Forgejo-Event): push
//   Gogs     X-Gogs-Signature: HMAC-SHA256 hex, X-Gogs-Event: push
//   Bitbucket (Cloud and Data Center) X-Hub-Signature: sha256=HMAC-SHA256(secret, body),
//            X-Event-Key: repo:push (Cloud) | repo:refs_changed (Data Center)
//   Azure DevOps (Services and Server) X-VSS-ActivityId, Authorization: Basic with the
//            secret as password (any user name), eventType git.push in the payload
//// and chart pushes to OCI registries, which render again the bundles whose charts come from
// the pushed repository (a new version in their range, a tag pushed again):
//   Registry Authorization: Bearer SECRET (or the secret alone): Distribution's
//            notifications (events[] with action push), Harbor's webhooks (PUSH_ARTIFACT)
//   GitHub   its `package` event (a version published to ghcr.io), signed as a push
//   Docker Hub, Quay (and any sender that cannot sign, a Git server's push among them:
//            Gerrit's webhooks plugin, whose ref-updated event names the project alone)
//            POST /hooks/git/TOKEN, TOKEN the SHA-256 of a secret in hex
// and any sender's Standard Webhooks signature (www.standardwebhooks.com): webhook-id,
// webhook-timestamp (within 5 minutes of the control plane's clock), webhook-signature:
// "v1,BASE64(HMAC-SHA256(key, ID.TIMESTAMP.BODY))", space-separated, the key a secret
// "whsec_BASE64" encodes (any other secret as written).
//
// Answers: 202 for a verified push (and a verified event of another kind, which is
// ignored), 401 for a missing or wrong signature or token (nothing is fetched), 413 for a
// body over the limit, 429 past a rate limit, 400 for a verified body that is not JSON
// (or, with Content-Type application/x-www-form-urlencoded, a form whose `payload` field
// is not).
//
// `secret` is any of the secrets in force (several while one is rotated).
//
// Two limits, so that a flood of unsigned or wrongly signed requests cannot get real
// pushes refused: verified requests are limited in number (each may start fetches), and
// the bytes checked before verification (an HMAC over the body) are limited in volume,
// which only a flood near the network's own capacity exhausts. Requests that fail
// verification spend nothing of the first.
// Every outcome counts in gitfleet_webhooks_total{provider, result}; each provider's
// `unauthorized` and `accepted` series are there from the start, at 0.
//
//   WebhookReceiver receiver(options, sources, fetch, metrics.webhooks);
//   HttpResponse response = receiver.Handle(request);
//
// Thread-safe.

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "common/metrics/http_server.h"
#include "common/metrics/metrics.h"
#include "common/rate_limit.h"
#include "common/sync.h"
#include "controlplane/source/repo_url.h"  // NormalizeRepoUrl
#include "nlohmann/json.hpp"

namespace gitfleet {

inline constexpr char kWebhookPath[] = "/hooks/git";
// The provider label of gitfleet_webhooks_total: who sent it, by its headers.
inline constexpr const char* kWebhookProviders[] = {"github",   "gitlab",    "gitea",
                                                    "gogs",     "bitbucket", "azuredevops",
                                                    "registry", "url_token", "unknown"};

// The URL-decoded value of `name` in an application/x-www-form-urlencoded body; nullopt
// when it is missing or not well-formed.
std::optional<std::string> FormField(absl::string_view body, absl::string_view name);

// The normalized URLs a push payload names for its repository (GitHub, GitLab, Gitea,
// Gogs, Bitbucket, Azure DevOps).
std::set<std::string> PushedRepositories(const nlohmann::json& payload);

// A Gerrit event (stream-events' JSON, which its webhooks plugin posts): its type
// ("ref-updated" for a push or a submit) and the project it names ("" when none, or over
// 1 KiB). nullopt for a payload that is no Gerrit event.
struct GerritEvent {
  std::string type;
  std::string project;
};
std::optional<GerritEvent> ReadGerritEvent(const nlohmann::json& payload);

// The normalized URLs among `source_urls` whose path is Gerrit project `project` (or
// "a/" and it, Gerrit's authenticated path), on any host: a ref-updated event names no URL.
std::set<std::string> GerritProjectSources(const std::string& project,
                                           const std::vector<std::string>& source_urls);

// The Pages sites the normalized `repositories` publish, on github.com and gitlab.com
// (ORG.github.io/REPO, ORG.github.io for ORG/ORG.github.io, GROUP.gitlab.io/PROJECT), where
// chart repositories are often served (chart-releaser's gh-pages branch): a push there is
// a new index.
std::set<std::string> PagesSites(const std::set<std::string>& repositories);

// The repositories (OciRepositoryKey) whose manifests a registry's notification says were
// pushed: Distribution's (CNCF Distribution, Docker's registry, and those that notify as
// it does: events[] with action "push"; Azure Container Registry's, one such event alone),
// Harbor's PUSH_ARTIFACT webhooks (its default and CloudEvents formats), GitHub's
// `package` events (a version published to ghcr.io), Docker Hub's (push_data; the
// repository under each of Docker Hub's host names) and Quay's (updated_tags). At most 64.
std::set<std::string> PushedRegistryRepositories(const nlohmann::json& payload);

class WebhookReceiver {
 public:
  // The secrets in force, in order (see SecretFile): a request verified by any of them
  // is accepted, so a secret is rotated without refusing anyone.
  using Secrets = std::function<std::shared_ptr<const std::vector<std::string>>()>;
  static Secrets FixedSecrets(std::vector<std::string> secrets);

  struct Options {
    Secrets secrets;
    // When set, each verified request counts here under `secret`, the 1-based position of
    // the secret that verified it: a rotation is done when the old one stops counting.
    metrics::Family<metrics::Counter>* secrets_used = nullptr;
    size_t max_body_bytes = 4 << 20;
    // Verified requests admitted per second, with a burst.
    double rate = 10;
    double burst = 20;
    // Body bytes verified per second, with a burst of four bodies of the largest size;
    // past it a request is refused before its HMAC is computed. Each request counts as
    // at least 1 KiB.
    double verify_bytes_per_second = 64 << 20;
    Clock* clock = &RealClock();
    // When set, asked with the pushed repositories' normalized URLs to render again the
    // bundles that read one of them from outside their own repository (a kustomization's
    // remote base, a chart in another Git repository, at a branch or tag); returns their
    // names (Controller::RenderReadersSoon).
    std::function<std::vector<std::string>(const std::set<std::string>& pushed)> readers;
  };
  // (name, url) of every source.
  using Sources = std::function<std::vector<std::pair<std::string, std::string>>()>;
  using Fetch = std::function<absl::Status(const std::string& source)>;

  WebhookReceiver(Options options, Sources sources, Fetch fetch,
                  metrics::Family<metrics::Counter>& outcomes);

  HttpResponse Handle(const HttpRequest& request);
  size_t max_body_bytes() const { return options_.max_body_bytes; }

 private:
  HttpResponse Answer(const std::string& provider, const std::string& result, int code,
                      std::string body);
  // A verified registry notification (or GitHub's package event): the bundles whose charts
  // come from a repository it pushed to render again.
  HttpResponse HandleRegistry(const std::string& provider, const nlohmann::json& payload);
  // A verified push: the sources of the pushed repository fetch, the bundles reading it
  // from outside render again.
  HttpResponse HandlePush(const std::string& provider, const nlohmann::json& payload);
  // A verified push of the repositories `pushed` (normalized URLs).
  HttpResponse HandlePushed(const std::string& provider, const std::set<std::string>& pushed);

  const Options options_;
  const Sources sources_;
  const Fetch fetch_;
  metrics::Family<metrics::Counter>& outcomes_;
  Mutex mu_;
  TokenBucket verified_ ABSL_GUARDED_BY(mu_);   // requests, after verification
  TokenBucket verifying_ ABSL_GUARDED_BY(mu_);  // bytes, before it
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_API_WEBHOOK_H_
