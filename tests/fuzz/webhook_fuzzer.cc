// Push webhook bodies: form decoding, the JSON payload and the repository URLs in it.
// (A body reaches them only once its signature is verified; a URL from a source's
// definition reaches NormalizeRepoUrl anyway.) Then the whole receiver, as a verified
// GitLab project hook and system hook, Azure DevOps hook, registry notification and a
// request verified by its URL's token (Docker Hub's, Quay's), so
// every branch a verified body can take runs, and the input as Azure DevOps' basic
// authentication, a Standard Webhooks signature and timestamp.
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/metrics/metrics.h"
#include "controlplane/api/webhook.h"

namespace {

gitfleet::WebhookReceiver& Receiver() {
  static auto* registry = new gitfleet::metrics::Registry();
  static auto* family = &gitfleet::metrics::BuildCounter()
                             .Name("gitfleet_webhooks_total")
                             .Help("webhooks")
                             .LabelNames({"provider", "result"})
                             .Register(*registry);
  static auto* receiver = [] {
    gitfleet::SetLogLevel(gitfleet::LogLevel::kError);  // refusals log warnings
    gitfleet::WebhookReceiver::Options options;
    options.secrets = gitfleet::WebhookReceiver::FixedSecrets({"s"});
    options.rate = 1e12;  // no limit gets in the way of the body's path
    options.burst = 1e12;
    options.verify_bytes_per_second = 1e18;
    return new gitfleet::WebhookReceiver(
        options,
        [] {
          return std::vector<std::pair<std::string, std::string>>{
              {"app", "https://github.com/org/app.git"}, {"v6", "ssh://git@[::1]:22/org/app"}};
        },
        [](const std::string&) { return absl::OkStatus(); }, *family);
  }();
  return *receiver;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)gitfleet::NormalizeRepoUrl(text);
  std::optional<std::string> field = gitfleet::FormField(text, "payload");
  for (const std::string* body : {&text, field.has_value() ? &*field : nullptr}) {
    if (body == nullptr) continue;
    nlohmann::json payload = nlohmann::json::parse(*body, nullptr, false);
    if (payload.is_discarded()) continue;
    (void)gitfleet::PagesSites(gitfleet::PushedRepositories(payload));
    (void)gitfleet::PushedRegistryRepositories(payload);
  }
  for (const char* event : {"Push Hook", "System Hook"}) {
    gitfleet::HttpRequest request;
    request.method = "POST";
    request.body = text;
    request.headers["x-gitlab-event"] = event;
    request.headers["x-gitlab-token"] = "s";
    (void)Receiver().Handle(request);
  }
  // Azure DevOps: a verified body (basic auth "r:s"), then the input as its credentials.
  gitfleet::HttpRequest azure;
  azure.method = "POST";
  azure.body = text;
  azure.headers["x-vss-activityid"] = "1";
  azure.headers["authorization"] = "Basic cjpz";
  (void)Receiver().Handle(azure);
  azure.body = "{}";
  azure.headers["authorization"] = text;
  (void)Receiver().Handle(azure);
  // A registry's notification, verified.
  gitfleet::HttpRequest registry;
  registry.method = "POST";
  registry.body = text;
  registry.headers["authorization"] = "Bearer s";
  (void)Receiver().Handle(registry);
  // A sender verified by its URL's token (Docker Hub's, Quay's, a pipeline's), and the
  // input as the token.
  gitfleet::HttpRequest by_url;
  by_url.method = "POST";
  by_url.path = "/hooks/git/" + absl::BytesToHexString(gitfleet::crypto::Sha256("s"));
  by_url.body = text;
  (void)Receiver().Handle(by_url);
  by_url.path = "/hooks/git/" + text.substr(0, 256);
  by_url.body = "{}";
  (void)Receiver().Handle(by_url);
  // Standard Webhooks (GitLab's signing token): the input as the signatures, then as the
  // timestamp.
  gitfleet::HttpRequest standard;
  standard.method = "POST";
  standard.body = "{}";
  standard.headers["webhook-id"] = "1";
  standard.headers["webhook-timestamp"] = std::to_string(absl::ToUnixSeconds(absl::Now()));
  standard.headers["webhook-signature"] = text.substr(0, 1024);
  (void)Receiver().Handle(standard);
  standard.headers["webhook-timestamp"] = text.substr(0, 64);
  standard.headers["webhook-signature"] = "v1,AAAA";
  (void)Receiver().Handle(standard);
  return 0;
}
