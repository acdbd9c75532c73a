#ifndef GITFLEET_COMMON_HTTP_H_
#define GITFLEET_COMMON_HTTP_H_

// One bounded HTTP request with libcurl, for the control plane's few outbound fetches
// (charts, kustomize's remote files, Git LFS objects):
//
//   HttpFetchOptions options;
//   options.max_bytes = 1 << 20;
//   GF_ASSIGN_OR_RETURN(HttpAnswer answer, HttpFetch("https://charts.example.com/index.yaml",
//                                                      options));
//
// At most `max_bytes` of body, `timeout` from connect to last byte, redirects (at most 5)
// to http(s) only, unless `follow_redirects` is off; an `Authorization` header is never sent
// on to another host, port or scheme (curl drops it), nor from https to http (other headers
// are sent on). With a username, basic auth goes to the URL's host only: never on a redirect
// elsewhere, nor from https to http. An error status is an answer, not an error;
// ResourceExhausted past `max_bytes`, Unavailable when the server cannot be reached.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gitfleet {

struct HttpAnswer {
  long status = 0;
  std::string body;
  std::string www_authenticate;
  std::string link;  // its Link header: where the next page of a list is
  // A rate limit's headers: Retry-After (seconds, or an HTTP date), and GitHub's and
  // GitLab's X-RateLimit-Remaining and X-RateLimit-Reset (Unix seconds, or GitLab's
  // RateLimit-Reset).
  std::string retry_after;
  std::string ratelimit_remaining;
  std::string ratelimit_reset;
};

struct HttpFetchOptions {
  std::string method = "GET";  // or "POST", with `body`
  std::string body;
  size_t max_bytes = 16 << 20;
  absl::Duration timeout = absl::Seconds(60);
  bool follow_redirects = true;
  std::vector<std::string> headers;  // "Name: value" (see above for redirects)
  std::string ca_file;               // trusted instead of the system's CAs
  std::string ca_pem;                // trusted on top of the system's (and ca_file's)
  std::string username;              // basic auth, to the URL's host only
  std::string password;
  // A client certificate (PEM, leaf first) and its unencrypted key, for servers that ask
  // for one (mutual TLS).
  std::string client_cert_pem;
  std::string client_key_pem;
};

absl::StatusOr<HttpAnswer> HttpFetch(const std::string& url, const HttpFetchOptions& options);

// How long a rate-limited answer (429; a 403 with Retry-After or no requests left, as
// GitHub's secondary limit says it) asks to wait before the next request, from its
// Retry-After (seconds, or an HTTP date) or X-RateLimit-Reset, a minute when it names no
// time, within 1 s and kMaxRateLimitWait; nullopt when it is no rate limit.
inline constexpr absl::Duration kMaxRateLimitWait = absl::Minutes(15);
std::optional<absl::Duration> RateLimitWait(const HttpAnswer& answer, absl::Time now);

// Hosts that answered with a rate limit, for every fetch of the process that asks (charts,
// remote files, Git LFS): a failing render is tried again sooner than the host asked, and
// every bundle reading from it would ask too, keeping the limit spent.
// NoteRateLimit: when `answer` from `url` is a rate limit, its host (scheme and authority)
// is not to be asked again until the time it names. WaitingOutRateLimit: Unavailable,
// naming the host and how long, while `url`'s host is so; OK otherwise. At most 1,024 hosts
// are kept (those due soonest dropped first). Thread-safe.
void NoteRateLimit(const std::string& url, const HttpAnswer& answer);
absl::Status WaitingOutRateLimit(const std::string& url);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_HTTP_H_
