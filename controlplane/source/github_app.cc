#include "controlplane/source/github_app.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/http.h"
#include "common/status_macros.h"
#include "common/sync.h"
#include "controlplane/source/repo_url.h"
#include "nlohmann/json.hpp"

namespace gitfleet {
namespace {

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct MdContextDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

absl::StatusOr<std::unique_ptr<EVP_PKEY, KeyDeleter>> ReadKey(const std::string& pem) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::InternalError("BIO_new_mem_buf failed");
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, crypto::NoPemPassphrase, nullptr));
  if (key == nullptr || EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError(
        "githubAppPrivateKey is not an RSA private key in PEM (the .pem GitHub gives an App)");
  }
  return key;
}

std::string Base64Url(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

bool Digits(const std::string& text) {
  return !text.empty() && text.size() <= 20 &&
         std::all_of(text.begin(), text.end(), [](char c) { return absl::ascii_isdigit(c); });
}

std::string Where(const GitHubApp& app) {
  return absl::StrCat("GitHub App ", app.app_id, " (installation ", app.installation_id, ")");
}

// Tokens by App, installation, API and key: at most 256 (all dropped past that).
struct TokenCache {
  Mutex mu;
  std::map<std::string, GitHubAppToken> tokens ABSL_GUARDED_BY(mu);
};

TokenCache& Tokens() {
  static auto* cache = new TokenCache();
  return *cache;
}

}  // namespace

absl::Status CheckGitHubApp(const GitHubApp& app) {
  if (!Digits(app.app_id)) {
    return absl::InvalidArgumentError("githubAppID is not a number (the App's ID)");
  }
  if (!Digits(app.installation_id)) {
    return absl::InvalidArgumentError(
        "githubAppInstallationID is not a number (the installation's ID)");
  }
  if (!absl::StartsWith(app.base_url, "https://") &&
      !(absl::StartsWith(app.base_url, "http://") && IsLoopbackHost(UrlAuthority(app.base_url)))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the GitHub API URL ", app.base_url.substr(0, 128),
        " is not https (githubAppEnterpriseBaseUrl: https://HOST/api/v3 for GitHub Enterprise)"));
  }
  return ReadKey(app.private_key_pem).status();
}

absl::StatusOr<std::string> GitHubAppJwt(const GitHubApp& app, absl::Time now) {
  GF_ASSIGN_OR_RETURN(auto key, ReadKey(app.private_key_pem));
  const int64_t issued = absl::ToUnixSeconds(now) - 60;
  const std::string signed_part = absl::StrCat(
      Base64Url(R"({"alg":"RS256","typ":"JWT"})"), ".",
      Base64Url(
          nlohmann::json{{"iat", issued}, {"exp", issued + 600}, {"iss", app.app_id}}.dump()));
  std::unique_ptr<EVP_MD_CTX, MdContextDeleter> context(EVP_MD_CTX_new());
  size_t length = 0;
  if (context == nullptr ||
      EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSignUpdate(context.get(), signed_part.data(), signed_part.size()) != 1 ||
      EVP_DigestSignFinal(context.get(), nullptr, &length) != 1) {
    return absl::InternalError("cannot sign the GitHub App's JWT");
  }
  std::string signature(length, '\0');
  if (EVP_DigestSignFinal(context.get(), reinterpret_cast<unsigned char*>(signature.data()),
                          &length) != 1) {
    return absl::InternalError("cannot sign the GitHub App's JWT");
  }
  signature.resize(length);
  return absl::StrCat(signed_part, ".", Base64Url(signature));
}

absl::StatusOr<GitHubAppToken> FetchGitHubAppToken(const GitHubApp& app, absl::Duration timeout) {
  GF_RETURN_IF_ERROR(CheckGitHubApp(app));
  const std::string key = crypto::Sha256(absl::StrCat(app.app_id, "\n", app.installation_id, "\n",
                                                      app.base_url, "\n", app.private_key_pem));
  const absl::Time now = RealClock().Now();
  TokenCache& cache = Tokens();
  {
    MutexLock lock(&cache.mu);
    auto it = cache.tokens.find(key);
    if (it != cache.tokens.end() && it->second.expires - now > absl::Minutes(5)) {
      return it->second;
    }
  }
  GF_ASSIGN_OR_RETURN(std::string jwt, GitHubAppJwt(app, now));
  HttpFetchOptions post;
  post.method = "POST";
  post.max_bytes = 64 << 10;
  post.timeout = timeout;
  post.follow_redirects = false;  // the JWT goes to the API named, nowhere else
  post.ca_pem = app.ca_pem;
  post.headers = {"Authorization: Bearer " + jwt, "Accept: application/vnd.github+json",
                  "X-GitHub-Api-Version: 2022-11-28"};
  const std::string url = absl::StrCat(absl::StripSuffix(app.base_url, "/"), "/app/installations/",
                                       app.installation_id, "/access_tokens");
  absl::StatusOr<HttpAnswer> answer = HttpFetch(url, post);
  if (!answer.ok()) {
    return absl::Status(answer.status().code(), absl::StrCat(Where(app), ": cannot reach ", url,
                                                             ": ", answer.status().message()));
  }
  if (answer->status != 201 && answer->status != 200) {
    std::string why;
    try {
      why = nlohmann::json::parse(answer->body).value("message", "");
    } catch (const nlohmann::json::exception&) {
    }
    const absl::StatusCode code =
        answer->status == 401 || answer->status == 403 || answer->status == 404
            ? absl::StatusCode::kPermissionDenied
            : absl::StatusCode::kUnavailable;
    return absl::Status(
        code, absl::StrCat(Where(app), ": ", url, " answered HTTP ", answer->status,
                           why.empty() ? "" : absl::StrCat(" (", why.substr(0, 200), ")"),
                           answer->status == 401
                               ? ": is githubAppPrivateKey this App's, and the clock right?"
                           : answer->status == 404
                               ? ": is the App installed there, with this installation ID?"
                               : ""));
  }
  GitHubAppToken token;
  try {
    const nlohmann::json body = nlohmann::json::parse(answer->body);
    token.token = body.value("token", "");
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, body.value("expires_at", ""), &token.expires,
                         &error)) {
      token.expires = now + absl::Minutes(50);
    }
  } catch (const nlohmann::json::exception&) {
  }
  if (token.token.empty() || token.token.size() > 4096 ||
      token.token.find_first_of("\r\n:") != std::string::npos) {
    return absl::UnavailableError(
        absl::StrCat(Where(app), ": ", url, " answered without an access token"));
  }
  // A server's clock may be off: never kept past the hour GitHub gives.
  token.expires = std::min(token.expires, now + absl::Hours(1));
  MutexLock lock(&cache.mu);
  if (cache.tokens.size() >= 256) cache.tokens.clear();
  cache.tokens[key] = token;
  return token;
}

}  // namespace gitfleet
