// Push webhook bodies: form decoding, the JSON payload and the repository URLs in it.
// (A body reaches them only once its signature is verified; a URL from a source's
// definition reaches NormalizeRepoUrl anyway.)
#include <cstdint>
#include <optional>
#include <string>

#include "controlplane/api/webhook.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)gitfleet::NormalizeRepoUrl(text);
  std::optional<std::string> field = gitfleet::FormField(text, "payload");
  for (const std::string* body : {&text, field.has_value() ? &*field : nullptr}) {
    if (body == nullptr) continue;
    nlohmann::json payload = nlohmann::json::parse(*body, nullptr, false);
    if (!payload.is_discarded()) (void)gitfleet::PushedRepositories(payload);
  }
  return 0;
}
