#include "common/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace gitfleet {
namespace {

size_t WriteBounded(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<std::pair<std::string*, size_t>*>(user);
  const size_t n = size * count;
  if (sink->first->size() + n > sink->second) return 0;  // past the bound: stop
  sink->first->append(data, n);
  return n;
}

// The headers an answer keeps (a registry's challenge, a list's next page), from the last
// response of a redirect chain.
size_t KeepHeaders(char* data, size_t size, size_t count, void* user) {
  const absl::string_view line(data, size * count);
  auto* answer = static_cast<HttpAnswer*>(user);
  if (absl::StartsWith(line, "HTTP/")) {  // a new response: forget the last one's
    answer->www_authenticate.clear();
    answer->link.clear();
    answer->retry_after.clear();
    answer->ratelimit_remaining.clear();
    answer->ratelimit_reset.clear();
  }
  for (auto [name, value] :
       {std::pair<absl::string_view, std::string*>{"www-authenticate:", &answer->www_authenticate},
        {"link:", &answer->link},
        {"retry-after:", &answer->retry_after},
        {"x-ratelimit-remaining:", &answer->ratelimit_remaining},
        {"ratelimit-remaining:", &answer->ratelimit_remaining},
        {"x-ratelimit-reset:", &answer->ratelimit_reset},
        {"ratelimit-reset:", &answer->ratelimit_reset}}) {
    if (line.size() > name.size() && line.size() < 8192 &&
        absl::EqualsIgnoreCase(line.substr(0, name.size()), name)) {
      *value = std::string(absl::StripAsciiWhitespace(line.substr(name.size())));
    }
  }
  return size * count;
}

}  // namespace

absl::StatusOr<HttpAnswer> HttpFetch(const std::string& url, const HttpFetchOptions& options) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  HttpAnswer answer;
  std::pair<std::string*, size_t> sink(&answer.body, options.max_bytes);
  char error[CURL_ERROR_SIZE] = "";
  curl_slist* list = nullptr;
  for (const std::string& header : options.headers) list = curl_slist_append(list, header.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, options.follow_redirects ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.timeout)));
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "gitfleet");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);  // Authorization: never to another host
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, KeepHeaders);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBounded);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  if (options.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, options.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(options.body.size()));
    // A redirect of a POST stays a POST, as git-lfs expects of its batch endpoint.
    curl_easy_setopt(curl, CURLOPT_POSTREDIR, CURL_REDIR_POST_ALL);
  }
  if (!options.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_blob ca{};
  std::string ca_pem;
  if (!options.ca_pem.empty()) {
    // On top of the system's CAs (Debian's curl reads them from /etc/ssl/certs, a CA path
    // this leaves in place) and ca_file's, which a blob overrides: so those are in it too.
    if (!options.ca_file.empty()) {
      std::ifstream in(options.ca_file, std::ios::binary);
      ca_pem.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      ca_pem += "\n";
    }
    ca_pem += options.ca_pem;
    ca.data = ca_pem.data();
    ca.len = ca_pem.size();
    ca.flags = CURL_BLOB_NOCOPY;
    curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
  }
  curl_blob client_cert{}, client_key{};
  if (!options.client_cert_pem.empty()) {
    client_cert.data = const_cast<char*>(options.client_cert_pem.data());
    client_cert.len = options.client_cert_pem.size();
    client_cert.flags = CURL_BLOB_NOCOPY;
    client_key.data = const_cast<char*>(options.client_key_pem.data());
    client_key.len = options.client_key_pem.size();
    client_key.flags = CURL_BLOB_NOCOPY;
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &client_cert);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &client_key);
  }
  if (!options.username.empty()) {
    // curl sends these to this host only (CURLOPT_UNRESTRICTED_AUTH stays off), and a
    // redirect keeps the scheme: a password never goes from https to http.
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, options.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, options.password.c_str());
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR,
                     absl::StartsWith(url, "https://") ? "https" : "http,https");
  }
  for (const std::string& header : options.headers) {
    // curl keeps a custom Authorization header from any other host, port or scheme a
    // redirect leads to; from https, a redirect stays https besides.
    if (absl::StartsWithIgnoreCase(header, "authorization:") && absl::StartsWith(url, "https://")) {
      curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    }
  }
  const CURLcode code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_easy_cleanup(curl);
  curl_slist_free_all(list);
  if (code == CURLE_WRITE_ERROR) {
    return absl::ResourceExhaustedError(
        absl::StrCat(url, " is larger than ", options.max_bytes, " bytes"));
  }
  if (code != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot fetch ", url, ": ", error[0] ? error : curl_easy_strerror(code)));
  }
  return answer;
}

std::optional<absl::Duration> RateLimitWait(const HttpAnswer& answer, absl::Time now) {
  const bool limited =
      answer.status == 429 ||
      (answer.status == 403 && (!answer.retry_after.empty() || answer.ratelimit_remaining == "0"));
  if (!limited) return std::nullopt;
  absl::Duration wait = absl::Minutes(1);  // GitHub's advice when it names no time
  int64_t seconds = 0;
  absl::Time at;
  std::string error;
  if (absl::SimpleAtoi(answer.retry_after, &seconds)) {
    wait = absl::Seconds(seconds);
  } else if (!answer.retry_after.empty() &&
             absl::ParseTime("%a, %d %b %Y %H:%M:%S", answer.retry_after, &at, &error)) {
    wait = at - now;  // the HTTP date form ("GMT" read as UTC)
  } else if (absl::SimpleAtoi(answer.ratelimit_reset, &seconds)) {
    // Unix seconds (GitHub's, GitLab's), or seconds from now (the IETF draft's).
    wait = seconds > 1000000000 ? absl::FromUnixSeconds(seconds) - now : absl::Seconds(seconds);
  }
  return std::clamp(wait, absl::Seconds(1), kMaxRateLimitWait);
}

namespace {

// "https://host:port" of a URL (no user, path or query): the host a rate limit is for.
std::string Origin(absl::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == absl::string_view::npos) return std::string(url.substr(0, 256));
  const size_t start = scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  if (end == absl::string_view::npos) end = url.size();
  absl::string_view authority = url.substr(start, end - start);
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  return absl::AsciiStrToLower(absl::StrCat(url.substr(0, start), authority.substr(0, 256)));
}

class RateLimitedHosts {
 public:
  static RateLimitedHosts& Get() {
    static auto* hosts = new RateLimitedHosts;
    return *hosts;
  }
  std::optional<absl::Time> Until(const std::string& host, absl::Time now) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = until_.find(host);
    if (it == until_.end()) return std::nullopt;
    if (it->second <= now) {
      until_.erase(it);
      return std::nullopt;
    }
    return it->second;
  }
  void Note(const std::string& host, absl::Time until) {
    std::lock_guard<std::mutex> lock(mu_);
    until_[host] = until;
    while (until_.size() > kMaxHosts) {
      until_.erase(std::min_element(until_.begin(), until_.end(), [](const auto& a, const auto& b) {
        return a.second < b.second;
      }));
    }
  }

 private:
  static constexpr size_t kMaxHosts = 1024;
  std::mutex mu_;
  std::map<std::string, absl::Time> until_;  // guarded by mu_
};

}  // namespace

void NoteRateLimit(const std::string& url, const HttpAnswer& answer) {
  const absl::Time now = absl::Now();
  if (std::optional<absl::Duration> wait = RateLimitWait(answer, now)) {
    RateLimitedHosts::Get().Note(Origin(url), now + *wait);
  }
}

absl::Status WaitingOutRateLimit(const std::string& url) {
  const std::string host = Origin(url);
  const absl::Time now = absl::Now();
  std::optional<absl::Time> until = RateLimitedHosts::Get().Until(host, now);
  if (!until.has_value()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat(host, " answered with a rate limit: not asked again for ",
                   absl::FormatDuration(absl::Ceil(*until - now, absl::Seconds(1))),
                   " (as its Retry-After or rate-limit reset asked)"));
}

}  // namespace gitfleet
