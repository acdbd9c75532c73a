#include "controlplane/api/webhook.h"

#include <algorithm>
#include <initializer_list>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/authorization.h"
#include "common/crypto.h"
#include "common/logging.h"

namespace gitfleet {
namespace {

// Standard Webhooks (https://www.standardwebhooks.com; GitLab's signing token): a delivery
// signed at a time is taken within this of the control plane's clock, not replayed later.
constexpr int64_t kStandardWebhookToleranceSeconds = 300;

std::string Header(const HttpRequest& request, const char* name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? "" : it->second;
}

std::string HmacSha256Hex(const std::string& key, const std::string& data) {
  return absl::BytesToHexString(crypto::HmacSha256(key, data));
}

using crypto::SecureEquals;

// The first of `fields` in `payload` that is a string; "" when none is (a field of another
// type names no event, and reading it as a string would throw).
std::string EventName(const nlohmann::json& payload, std::initializer_list<const char*> fields) {
  for (const char* field : fields) {
    auto it = payload.find(field);
    if (it != payload.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

// Whether `authorization` is HTTP basic authentication (any user name) whose password is
// `secret`.
bool BasicPasswordMatches(absl::string_view authorization, const std::string& secret) {
  authorization = absl::StripAsciiWhitespace(authorization);
  constexpr absl::string_view kScheme = "basic ";
  if (!absl::StartsWithIgnoreCase(authorization, kScheme)) return false;
  authorization.remove_prefix(kScheme.size());
  std::string credentials;
  if (!absl::Base64Unescape(absl::StripAsciiWhitespace(authorization), &credentials)) {
    return false;
  }
  const size_t colon = credentials.find(':');
  return colon != std::string::npos && SecureEquals(credentials.substr(colon + 1), secret);
}

// Whether `authorization` is `secret`, alone or after "Bearer " (what a registry's
// notification endpoint, or Harbor's webhook policy, is told to send).
bool AuthorizationMatches(absl::string_view authorization, const std::string& secret) {
  if (std::optional<absl::string_view> token = BearerCredential(authorization);
      token.has_value() && SecureEquals(*token, secret)) {
    return true;
  }
  return SecureEquals(absl::StripAsciiWhitespace(authorization), secret);
}

// A string field of `object` ("" when absent or not a string).
std::string StringField(const nlohmann::json& object, const char* field) {
  if (!object.is_object()) return "";
  auto it = object.find(field);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// "HOST/PATH:TAG", "HOST/PATH@DIGEST" or "HOST/PATH" split into the host and the path;
// nullopt without a path.
std::optional<std::pair<std::string, std::string>> SplitImageReference(const std::string& url) {
  const size_t slash = url.find('/');
  if (slash == std::string::npos) return std::nullopt;
  std::string path = url.substr(slash + 1);
  path = path.substr(0, std::min(path.find('@'), path.rfind(':')));
  return std::make_pair(url.substr(0, slash), path);
}

// Up to 20 names, then how many more.
std::string Listed(const std::vector<std::string>& names) {
  constexpr size_t kMostNamed = 20;
  return absl::StrCat(
      absl::StrJoin(names.begin(), names.begin() + std::min(names.size(), kMostNamed), ", "),
      names.size() > kMostNamed ? absl::StrCat(" and ", names.size() - kMostNamed, " more") : "");
}

}  // namespace

std::set<std::string> PushedRegistryRepositories(const nlohmann::json& payload) {
  constexpr size_t kMostRepositories = 64;
  std::set<std::string> out;
  auto add = [&out](absl::string_view host, absl::string_view repository) {
    if (host.empty() || repository.empty() || out.size() >= kMostRepositories) return;
    out.insert(OciRepositoryKey(host, repository));
  };
  if (!payload.is_object()) return out;
  // Distribution (and registries that notify as it does): events[], each a push or pull
  // of a manifest or blob; a chart pushed is a manifest pushed (with its tag). Azure
  // Container Registry sends one such event alone.
  std::vector<const nlohmann::json*> pushes;
  auto events = payload.find("events");
  if (events != payload.end() && events->is_array()) {
    for (const nlohmann::json& event : *events) pushes.push_back(&event);
  } else if (payload.contains("action") && payload.contains("target")) {
    pushes.push_back(&payload);
  }
  for (const nlohmann::json* each : pushes) {
    const nlohmann::json& event = *each;
    if (StringField(event, "action") != "push" || !event.contains("target")) continue;
    const nlohmann::json& target = event["target"];
    const std::string repository = StringField(target, "repository");
    const std::string media_type = StringField(target, "mediaType");
    if (StringField(target, "tag").empty() && media_type.find("manifest") == std::string::npos) {
      continue;  // a layer: its manifest's event follows
    }
    // The host the client pushed to, and the one the registry names itself by.
    if (event.contains("request")) add(StringField(event["request"], "host"), repository);
    add(UrlAuthority(StringField(target, "url")), repository);
  }
  // GitHub Packages (the repository's or organization's `package` event, or the older
  // `registry_package`): a version published, package_url "ghcr.io/OWNER/NAME:TAG".
  const std::string action = StringField(payload, "action");
  if (action == "published" || action == "updated") {
    for (const char* field : {"package", "registry_package"}) {
      auto found = payload.find(field);
      if (found == payload.end() || !found->is_object() || !found->contains("package_version")) {
        continue;
      }
      if (auto image =
              SplitImageReference(StringField((*found)["package_version"], "package_url"))) {
        add(image->first, image->second);
      }
    }
  }
  // Harbor: a PUSH_ARTIFACT event (its CloudEvents format: harbor.artifact.pushed, the
  // same fields under "data"); resource_url is HOST/PROJECT/REPOSITORY:TAG or @DIGEST.
  const std::string type = StringField(payload, "type");
  if (type == "PUSH_ARTIFACT" || type == "harbor.artifact.pushed") {
    auto found = payload.find("event_data");
    if (found == payload.end()) found = payload.find("data");
    const bool object = found != payload.end() && found->is_object();
    std::string repository;
    if (object && found->contains("repository")) {
      repository = StringField((*found)["repository"], "repo_full_name");
    }
    if (object && found->contains("resources") && (*found)["resources"].is_array()) {
      for (const nlohmann::json& resource : (*found)["resources"]) {
        if (auto image = SplitImageReference(StringField(resource, "resource_url"))) {
          add(image->first, repository.empty() ? image->second : repository);
        }
      }
    }
  }
  // Docker Hub: push_data with repository.repo_name ("OWNER/NAME"), on the host helm and
  // docker pull from, whichever name a chart's URL gives it.
  auto repository = payload.find("repository");
  if (payload.contains("push_data") && repository != payload.end() && repository->is_object()) {
    const std::string name = StringField(*repository, "repo_name");
    if (!name.empty()) {
      for (const char* host : {"registry-1.docker.io", "docker.io", "index.docker.io"}) {
        add(host, name.find('/') == std::string::npos ? absl::StrCat("library/", name) : name);
      }
    }
  }
  // Quay (quay.io and a Quay of one's own): a repository push, docker_url "HOST/NS/NAME",
  // with the tags it updated.
  if (payload.contains("updated_tags") && payload.contains("docker_url")) {
    if (auto image = SplitImageReference(StringField(payload, "docker_url"))) {
      add(image->first, image->second);
    }
  }
  return out;
}

std::optional<std::string> FormField(absl::string_view body, absl::string_view name) {
  for (absl::string_view pair : absl::StrSplit(body, '&')) {
    const size_t equals = pair.find('=');
    if (equals == absl::string_view::npos || pair.substr(0, equals) != name) continue;
    absl::string_view encoded = pair.substr(equals + 1);
    std::string out;
    out.reserve(encoded.size());
    auto hex = [](char c) {
      return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10;
    };
    for (size_t i = 0; i < encoded.size(); ++i) {
      const char c = encoded[i];
      if (c == '+') {
        out.push_back(' ');
      } else if (c != '%') {
        out.push_back(c);
      } else if (i + 2 < encoded.size() && absl::ascii_isxdigit(encoded[i + 1]) &&
                 absl::ascii_isxdigit(encoded[i + 2])) {
        out.push_back(static_cast<char>(hex(encoded[i + 1]) * 16 + hex(encoded[i + 2])));
        i += 2;
      } else {
        return std::nullopt;  // a stray '%' is not form encoding
      }
    }
    return out;
  }
  return std::nullopt;
}

std::optional<GerritEvent> ReadGerritEvent(const nlohmann::json& payload) {
  // Gerrit's events (stream-events, its webhooks plugin) are a type and the time made.
  if (!payload.is_object() || !payload.contains("eventCreatedOn")) return std::nullopt;
  GerritEvent event;
  event.type = StringField(payload, "type");
  if (event.type.empty() || event.type.size() > 64) return std::nullopt;
  auto update = payload.find("refUpdate");
  if (update != payload.end()) event.project = StringField(*update, "project");
  if (event.project.empty()) {
    auto project = payload.find("project");  // other events: a name, or {name: ...}
    if (project != payload.end()) {
      event.project =
          project->is_string() ? project->get<std::string>() : StringField(*project, "name");
    }
  }
  if (event.project.size() > 1024) event.project.clear();
  return event;
}

std::set<std::string> GerritProjectSources(const std::string& project,
                                           const std::vector<std::string>& source_urls) {
  std::set<std::string> matched;
  if (project.empty()) return matched;
  // The project as a path normalizes as a URL's would (case, ".git").
  const std::string normalized = NormalizeRepoUrl(absl::StrCat("https://gerrit/", project));
  const absl::string_view want = absl::string_view(normalized).substr(normalized.find('/') + 1);
  for (const std::string& url : source_urls) {
    const std::string source = NormalizeRepoUrl(url);
    const size_t slash = source.find('/');
    if (slash == std::string::npos) continue;
    absl::string_view path = absl::string_view(source).substr(slash + 1);
    // Gerrit serves a project at /PROJECT, and at /a/PROJECT to authenticated clients.
    if (path == want || (absl::ConsumePrefix(&path, "a/") && path == want)) {
      matched.insert(source);
    }
  }
  return matched;
}

std::set<std::string> PushedRepositories(const nlohmann::json& payload) {
  std::set<std::string> out;
  auto add = [&out](const nlohmann::json& value) {
    if (value.is_string() && !value.get<std::string>().empty()) {
      out.insert(NormalizeRepoUrl(value.get<std::string>()));
    }
  };
  if (!payload.is_object()) return out;
  std::vector<const nlohmann::json*> repositories;
  for (const char* object : {"repository", "project"}) {
    auto it = payload.find(object);
    if (it != payload.end() && it->is_object()) repositories.push_back(&*it);
  }
  // Azure DevOps: resource.repository.remoteUrl (and sshUrl, webUrl in newer versions).
  auto resource = payload.find("resource");
  if (resource != payload.end() && resource->is_object()) {
    auto it = resource->find("repository");
    if (it != resource->end() && it->is_object()) repositories.push_back(&*it);
  }
  for (const nlohmann::json* repository : repositories) {
    for (const char* field :
         {"clone_url", "ssh_url", "git_url", "html_url", "url", "svn_url", "git_http_url",
          "git_ssh_url", "web_url", "http_url", "homepage", "remoteUrl", "sshUrl", "webUrl"}) {
      auto value = repository->find(field);
      if (value != repository->end()) add(*value);
    }
    // Bitbucket: links.html.href (Cloud), links.clone[].href (Data Center: ssh and http).
    auto links = repository->find("links");
    if (links == repository->end() || !links->is_object()) continue;
    for (const auto& [name, link] : links->items()) {
      if (name != "html" && name != "clone") continue;
      if (link.is_object() && link.contains("href")) add(link["href"]);
      if (!link.is_array()) continue;
      for (const nlohmann::json& each : link) {
        if (each.is_object() && each.contains("href")) add(each["href"]);
      }
    }
  }
  return out;
}

std::set<std::string> PagesSites(const std::set<std::string>& repositories) {
  std::set<std::string> sites;
  for (const std::string& repo : repositories) {
    std::vector<std::string> parts = absl::StrSplit(repo, '/');
    if (parts.size() < 3) continue;
    const std::string suffix = parts[0] == "github.com"   ? ".github.io"
                               : parts[0] == "gitlab.com" ? ".gitlab.io"
                                                          : "";
    if (suffix.empty()) continue;
    const std::string site = parts[1] + suffix;
    // USER.github.io is the site's root; any other repository is a path under it.
    sites.insert(parts.size() == 3 && parts[2] == site
                     ? site
                     : absl::StrCat(site, "/", absl::StrJoin(parts.begin() + 2, parts.end(), "/")));
  }
  return sites;
}

WebhookReceiver::WebhookReceiver(Options options, Sources sources, Fetch fetch,
                                 metrics::Family<metrics::Counter>& outcomes)
    : options_(std::move(options)),
      sources_(std::move(sources)),
      fetch_(std::move(fetch)),
      outcomes_(outcomes),
      verified_(options_.rate, options_.burst),
      verifying_(options_.verify_bytes_per_second,
                 4.0 * static_cast<double>(std::max<size_t>(options_.max_body_bytes, 1024))) {
  // Each provider's refusals and pushes are series from the start, at 0: Prometheus's
  // increase() cannot see a series born at its first count, so GitfleetWebhookRefused
  // would miss the first refused push after each start.
  for (const char* provider : kWebhookProviders) {
    for (const char* result : {"unauthorized", "accepted"}) {
      outcomes_.Add({{"provider", provider}, {"result", result}});
    }
  }
}

WebhookReceiver::Secrets WebhookReceiver::FixedSecrets(std::vector<std::string> secrets) {
  auto fixed = std::make_shared<const std::vector<std::string>>(std::move(secrets));
  return [fixed] { return fixed; };
}

HttpResponse WebhookReceiver::Answer(const std::string& provider, const std::string& result,
                                     int code, std::string body) {
  outcomes_.Add({{"provider", provider}, {"result", result}}).Increment();
  // Not the refusals a flood brings (counted, and the HTTP endpoint logs its cuts).
  if (code >= 400 && code != 408 && code != 413 && code != 429 && code != 503) {
    GF_LOG(WARNING) << "webhook from " << provider << " refused (" << code << "): " << body;
  }
  return HttpResponse{code, "text/plain; charset=utf-8", body + "\n"};
}

HttpResponse WebhookReceiver::Handle(const HttpRequest& request) {
  std::string provider = "unknown";
  std::string event;
  if (!Header(request, "x-gitea-event").empty() || !Header(request, "x-forgejo-event").empty()) {
    provider = "gitea";
    event = Header(request, "x-gitea-event");
    if (event.empty()) event = Header(request, "x-forgejo-event");
  } else if (!Header(request, "x-gogs-event").empty()) {
    provider = "gogs";
    event = Header(request, "x-gogs-event");
  } else if (!Header(request, "x-gitlab-event").empty() ||
             !Header(request, "x-gitlab-token").empty()) {
    provider = "gitlab";
    event = Header(request, "x-gitlab-event");
  } else if (!Header(request, "x-github-event").empty() ||
             !Header(request, "x-hub-signature-256").empty()) {
    provider = "github";
    event = Header(request, "x-github-event");
  } else if (!Header(request, "x-event-key").empty()) {
    provider = "bitbucket";  // Cloud and Data Center
    event = Header(request, "x-event-key");
  } else if (!Header(request, "x-vss-activityid").empty() ||
             !Header(request, "x-vss-subscriptionid").empty()) {
    provider = "azuredevops";  // Services and Server; the event is in the payload
  } else if (!Header(request, "authorization").empty()) {
    provider = "registry";  // Distribution's notifications, Harbor's webhooks
  }
  // Senders that sign nothing and send no header of their own (Docker Hub's and Quay's
  // webhooks) are given a URL: /hooks/git/TOKEN, the token SHA-256 of a secret (hex), so
  // the URL, which proxies and the sender's settings show, never holds the secret that
  // signs the Git hosts' pushes.
  absl::string_view path_token = request.path;
  const bool has_path_token = absl::ConsumePrefix(&path_token, kWebhookPath) &&
                              absl::ConsumePrefix(&path_token, "/") && !path_token.empty();
  if (has_path_token && (provider == "unknown" || provider == "registry")) provider = "url_token";
  if (request.body_too_large) {
    return Answer(provider, "too_large", 413,
                  absl::StrCat("payload over ", options_.max_body_bytes, " bytes"));
  }
  if (request.busy) {
    return Answer(provider, "busy", 503,
                  "as many webhook requests as are read at once are being read; deliver "
                  "it again");
  }
  if (request.too_slow) {
    return Answer(provider, "too_slow", 408, "the payload did not arrive in time");
  }
  // Without secrets nothing verifies.
  std::shared_ptr<const std::vector<std::string>> secrets =
      options_.secrets != nullptr ? options_.secrets() : nullptr;
  if (secrets == nullptr) secrets = std::make_shared<const std::vector<std::string>>();
  {
    MutexLock lock(&mu_);
    // Each secret in force is one more HMAC of the body.
    const double bytes = static_cast<double>(std::max<size_t>(request.body.size(), 1024)) *
                         static_cast<double>(std::max<size_t>(secrets->size(), 1));
    if (!verifying_.Take(options_.clock->Now(), bytes)) {
      return Answer(provider, "rate_limited", 429,
                    "webhook requests are arriving faster than they can be verified; slow down");
    }
  }
  // Standard Webhooks' signature (webhook-signature: "v1,BASE64 ...", over
  // "ID.TIMESTAMP.BODY"), which GitLab sends for a hook with a signing token, beside or
  // instead of its X-Gitlab-Token; with a timestamp too far from now it verifies nothing.
  const std::string standard_signatures = Header(request, "webhook-signature");
  bool standard_checked = false;  // the signature can be checked
  std::string standard_id, standard_timestamp;
  std::string standard_problem;
  if (!standard_signatures.empty()) {
    const std::string id = Header(request, "webhook-id");
    const std::string timestamp = Header(request, "webhook-timestamp");
    int64_t seconds = 0;
    if (id.empty() || !absl::SimpleAtoi(timestamp, &seconds)) {
      standard_problem =
          "a webhook-signature without a webhook-id and a webhook-timestamp in seconds";
    } else {
      const int64_t off = absl::ToUnixSeconds(options_.clock->Now()) - seconds;
      if (off > kStandardWebhookToleranceSeconds || off < -kStandardWebhookToleranceSeconds) {
        standard_problem =
            absl::StrCat("its webhook-timestamp is ", off < 0 ? -off : off, " s ",
                         off < 0 ? "ahead of" : "behind", " the control plane's clock (more than ",
                         kStandardWebhookToleranceSeconds,
                         "): a delivery replayed or held back, or a clock that is off");
      } else {
        standard_checked = true;
        standard_id = id;
        standard_timestamp = timestamp;
      }
    }
  }
  // Whether `secret` verifies the request.
  auto verifies = [&](const std::string& secret) {
    if (standard_checked) {
      const std::string expected =
          crypto::StandardWebhookSignature(secret, standard_id, standard_timestamp, request.body);
      // Other versions' (v1a, an Ed25519 signature) never match.
      for (absl::string_view signature :
           absl::StrSplit(standard_signatures, ' ', absl::SkipEmpty())) {
        if (SecureEquals(signature, expected)) return true;
      }
    }
    // HMAC-SHA256 of the body, hex; GitHub and Bitbucket put "sha256=" before it.
    auto hmac_matches = [&](absl::string_view signature) {
      return SecureEquals(absl::AsciiStrToLower(signature), HmacSha256Hex(secret, request.body));
    };
    auto prefixed_hmac_matches = [&](const std::string& header) {
      absl::string_view signature = header;
      return absl::ConsumePrefix(&signature, "sha256=") && hmac_matches(signature);
    };
    if (provider == "github") {
      return prefixed_hmac_matches(Header(request, "x-hub-signature-256"));
    } else if (provider == "gitlab") {
      return SecureEquals(Header(request, "x-gitlab-token"), secret);
    } else if (provider == "gitea") {
      std::string signature = Header(request, "x-gitea-signature");
      if (signature.empty()) signature = Header(request, "x-forgejo-signature");
      return hmac_matches(signature);
    } else if (provider == "gogs") {
      return hmac_matches(Header(request, "x-gogs-signature"));
    } else if (provider == "bitbucket") {
      return prefixed_hmac_matches(Header(request, "x-hub-signature"));
    } else if (provider == "azuredevops") {
      return BasicPasswordMatches(Header(request, "authorization"), secret);
    } else if (provider == "registry") {
      return AuthorizationMatches(Header(request, "authorization"), secret);
    } else if (provider == "url_token") {
      return SecureEquals(absl::AsciiStrToLower(path_token),
                          absl::BytesToHexString(crypto::Sha256(secret)));
    }
    return false;
  };
  size_t verified = 0;  // 1-based position of the secret that verified it
  for (size_t i = 0; verified == 0 && i < secrets->size(); ++i) {
    if (verifies((*secrets)[i])) verified = i + 1;
  }
  if (verified == 0) {
    return Answer(
        provider, "unauthorized", 401,
        !standard_problem.empty()
            ? absl::StrCat("the webhook-signature cannot verify it: ", standard_problem)
        : provider == "unknown"
            ? "no GitHub, GitLab, Gitea, Gogs, Bitbucket or Azure DevOps signature headers, "
              "no Standard Webhooks webhook-signature, nor a registry's Authorization header"
        : provider == "azuredevops"
            ? "no basic authentication whose password is a webhook secret (set the "
              "service hook's basic authentication password to it)"
        : provider == "registry"
            ? "the Authorization header is not a webhook secret (set the registry's "
              "notification endpoint's Authorization header to \"Bearer SECRET\")"
        : provider == "url_token"
            ? "the URL's token is no webhook secret's (it is the SHA-256 of one, in hex: "
              "printf %s SECRET | sha256sum)"
            : absl::StrCat("the ", provider, " signature or token does not match"));
  }
  if (options_.secrets_used != nullptr) {
    options_.secrets_used->Add({{"secret", absl::StrCat(verified)}}).Increment();
  }
  {
    MutexLock lock(&mu_);
    if (!verified_.Take(options_.clock->Now())) {
      return Answer(provider, "rate_limited", 429, "too many webhook requests; slow down");
    }
  }
  // A sender verified by its URL or by Standard Webhooks alone says what it sends only in
  // its payload.
  if (provider == "registry" || provider == "url_token" || provider == "unknown") {
    nlohmann::json payload = nlohmann::json::parse(request.body, nullptr, false);
    if (payload.is_discarded() || !payload.is_object()) {
      return Answer(provider, "bad_request", 400, "the payload is not a JSON object");
    }
    // Gerrit (its webhooks plugin cannot sign): a ref-updated event names its project
    // alone, no URL.
    if (std::optional<GerritEvent> gerrit = ReadGerritEvent(payload); gerrit.has_value()) {
      if (gerrit->type != "ref-updated") {
        return Answer(provider, "ignored", 202,
                      absl::StrCat("Gerrit event \"", gerrit->type, "\" ignored"));
      }
      if (gerrit->project.empty()) {
        return Answer(provider, "bad_request", 400,
                      "the Gerrit ref-updated event names no project (refUpdate.project)");
      }
      std::vector<std::string> urls;
      for (auto& [name, url] : sources_()) urls.push_back(std::move(url));
      std::set<std::string> pushed = GerritProjectSources(gerrit->project, urls);
      if (pushed.empty()) {
        return Answer(provider, "no_source", 202,
                      absl::StrCat("no source's repository is Gerrit project ",
                                   gerrit->project.substr(0, 256),
                                   " (a URL whose path is the project, or a/ and the project)"));
      }
      return HandlePushed(provider, pushed);
    }
    // A sender verified by its URL may also be a Git server that cannot sign: its push
    // names its repository as the others' do.
    if (provider == "registry" || !PushedRegistryRepositories(payload).empty() ||
        PushedRepositories(payload).empty()) {
      return HandleRegistry(provider, payload);
    }
    return HandlePush(provider, payload);
  }
  if ((provider == "github" && event == "ping") ||
      (provider == "bitbucket" && event == "diagnostics:ping")) {
    return Answer(provider, "ping", 202, "pong");
  }
  // Bitbucket Cloud says repo:push, Data Center repo:refs_changed.
  const bool push = event == "push" || event == "Push Hook" || event == "Tag Push Hook" ||
                    event == "repo:push" || event == "repo:refs_changed";
  // A GitLab instance's system hook carries every project's events under one header; its
  // payload says which (a push's fields are those of a project's push hook).
  const bool system_hook = provider == "gitlab" && event == "System Hook";
  // Azure DevOps names its event only in the payload (eventType).
  const bool azure_devops = provider == "azuredevops";
  // GitHub's Packages: a container (a chart helm pushed to ghcr.io among them) published.
  const bool package = provider == "github" && (event == "package" || event == "registry_package");
  if (!push && !system_hook && !azure_devops && !package) {
    return Answer(provider, "ignored", 202, absl::StrCat("event \"", event, "\" ignored"));
  }
  // JSON, or (GitHub's and Gitea's other content type) a form whose `payload` field holds
  // it. Either way the signature covers the body as sent. A JSON object labelled as a form
  // (what `curl --data` sends, and some relays) is taken as JSON: no form starts with '{'.
  std::string json = request.body;
  if (absl::StartsWithIgnoreCase(Header(request, "content-type"),
                                 "application/x-www-form-urlencoded") &&
      !absl::StartsWith(absl::StripLeadingAsciiWhitespace(request.body), "{")) {
    std::optional<std::string> field = FormField(request.body, "payload");
    if (!field.has_value()) {
      return Answer(provider, "bad_request", 400,
                    "the form-encoded body has no well-formed \"payload\" field");
    }
    json = std::move(*field);
  }
  nlohmann::json payload = nlohmann::json::parse(json, nullptr, false);
  if (payload.is_discarded() || !payload.is_object()) {
    return Answer(provider, "bad_request", 400, "the payload is not a JSON object");
  }
  if (package) return HandleRegistry(provider, payload);
  if (system_hook) {
    const std::string name = EventName(payload, {"event_name", "object_kind"});
    if (name != "push" && name != "tag_push" && name != "repository_update") {
      return Answer(provider, "ignored", 202,
                    absl::StrCat("system hook event \"", name, "\" ignored"));
    }
  }
  if (azure_devops) {
    event = EventName(payload, {"eventType"});
    if (event != "git.push") {
      return Answer(provider, "ignored", 202, absl::StrCat("event \"", event, "\" ignored"));
    }
  }
  return HandlePush(provider, payload);
}

HttpResponse WebhookReceiver::HandlePush(const std::string& provider,
                                         const nlohmann::json& payload) {
  const std::set<std::string> pushed = PushedRepositories(payload);
  if (pushed.empty()) {
    return Answer(provider, "bad_request", 400, "the payload names no repository URL");
  }
  return HandlePushed(provider, pushed);
}

HttpResponse WebhookReceiver::HandlePushed(const std::string& provider,
                                           const std::set<std::string>& pushed) {
  std::vector<std::string> fetching;
  for (const auto& [name, url] : sources_()) {
    if (pushed.count(NormalizeRepoUrl(url)) == 0) continue;
    if (fetch_(name).ok()) fetching.push_back(name);
  }
  // Bundles that read a pushed repository from outside their own (a remote base at a
  // branch): rendered again now, not at the resync.
  // ... and those whose charts come from the Pages site the repository publishes.
  std::set<std::string> read = pushed;
  for (const std::string& site : PagesSites(pushed)) read.insert(site);
  std::vector<std::string> rendering;
  if (options_.readers) rendering = options_.readers(read);
  if (fetching.empty() && rendering.empty()) {
    return Answer(provider, "no_source", 202,
                  absl::StrCat("no source tracks ", *pushed.begin(),
                               options_.readers ? ", and no bundle's render reads it" : ""));
  }
  std::vector<std::string> said;
  if (!fetching.empty()) said.push_back(absl::StrCat("fetching ", Listed(fetching)));
  if (!rendering.empty()) {
    said.push_back(absl::StrCat("rendering again ", Listed(rendering),
                                rendering.size() == 1 ? ", which reads" : ", which read",
                                " the pushed repository"));
  }
  GF_LOG(INFO) << "webhook from " << provider << ": " << absl::StrJoin(said, "; ");
  return Answer(provider, "accepted", 202, absl::StrJoin(said, "; "));
}

HttpResponse WebhookReceiver::HandleRegistry(const std::string& provider,
                                             const nlohmann::json& payload) {
  const std::set<std::string> pushed = PushedRegistryRepositories(payload);
  if (pushed.empty()) {
    // Pulls, deletes, a layer alone, another Harbor event: nothing changes what renders read.
    return Answer(provider, "ignored", 202, "no manifest pushed: ignored");
  }
  std::vector<std::string> rendering;
  if (options_.readers) rendering = options_.readers(pushed);
  if (rendering.empty()) {
    return Answer(provider, "no_source", 202,
                  absl::StrCat("no bundle's chart comes from ", *pushed.begin()));
  }
  const std::string said =
      absl::StrCat("rendering again ", Listed(rendering),
                   rendering.size() == 1 ? ", whose chart comes" : ", whose charts come",
                   " from the pushed repository");
  GF_LOG(INFO) << "webhook from " << provider << ": " << said;
  return Answer(provider, "accepted", 202, said);
}

}  // namespace gitfleet
