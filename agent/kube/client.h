#ifndef GITFLEET_AGENT_KUBE_CLIENT_H_
#define GITFLEET_AGENT_KUBE_CLIENT_H_

// An HTTP client for one Kubernetes API server, on libcurl.
//
//   GF_ASSIGN_OR_RETURN(std::unique_ptr<KubeClient> client, KubeClient::Create(config, {}));
//   GF_ASSIGN_OR_RETURN(KubeResponse r, client->Do("GET", "/api/v1/namespaces/web"));
//   if (r.code != 200) return r.ToStatus();
//
// Connections are kept and reused (a small pool of curl handles). Requests wait for the
// client-side rate limit (QPS with a burst). Connection failures, timeouts, 429 and 5xx
// are retried with jittered backoff, honouring Retry-After, a bounded number of times. A
// token file is re-read when it changes and once more on a 401, so rotated
// service-account tokens are picked up without a restart.
//
// Thread-safe.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/kube/config.h"
#include "common/rate_limit.h"
#include "common/sync.h"

namespace gitfleet {

struct KubeResponse {
  int code = 0;
  std::string body;
  // An error naming the code, the API's reason and message, from a `Status` body:
  // "422 Invalid: Deployment.apps \"web\" is invalid: ...".
  absl::Status ToStatus() const;
};

class KubeClient {
 public:
  struct Options {
    double qps = 50;
    int burst = 100;
    absl::Duration timeout = absl::Seconds(30);
    absl::Duration connect_timeout = absl::Seconds(5);
    // Attempts after the first, for transport errors, 429 and 5xx.
    int max_retries = 5;
    absl::Duration initial_backoff = absl::Milliseconds(200);
    absl::Duration max_backoff = absl::Seconds(5);
    // Retry-After is honoured up to this.
    absl::Duration max_retry_after = absl::Seconds(30);
    // Called for every attempt: method and HTTP code, 0 when no response came.
    std::function<void(absl::string_view method, int code)> on_response;
    // Every request is made as this user (Impersonate-User), e.g.
    // "system:serviceaccount:team-a:deployer": the API server checks that the client may
    // impersonate it, then authorizes the request as that user alone. Empty: as itself.
    std::string impersonate_user;
  };

  static absl::StatusOr<std::unique_ptr<KubeClient>> Create(KubeConfig config, Options options);
  ~KubeClient();

  // A client of the same server and options that makes every request as `user`
  // (Options.impersonate_user), sharing this client's rate limit: however many users the
  // agent acts as, --kube-qps bounds them all together.
  absl::StatusOr<std::unique_ptr<KubeClient>> Impersonating(const std::string& user) const;

  // Sends one request (retrying as above). Any HTTP response is returned, whatever its
  // code; an error means no usable response: connection, TLS or timeout, after retries.
  absl::StatusOr<KubeResponse> Do(absl::string_view method, absl::string_view path,
                                  absl::string_view body = "",
                                  absl::string_view content_type = "application/json");

  // Streams a GET (a watch): each piece of a 200 response's body goes to `on_data` as it
  // arrives, until the server ends it, `on_data` returns false, `stop` returns true
  // (asked about once a second), or `timeout` passes. Waits for the rate limit once and
  // never retries. Returns the code, with the body when it is not 200 (a Status); an error
  // for no response. Ending it with `on_data` or `stop` is no error.
  absl::StatusOr<KubeResponse> Stream(absl::string_view path,
                                      const std::function<bool(absl::string_view)>& on_data,
                                      const std::function<bool()>& stop, absl::Duration timeout);

  const KubeConfig& config() const { return config_; }

  // Whether the API accepts this client, from the latest answers: a 401 anywhere is
  // "Unauthorized", a 403 on discovery is "Forbidden", no answer is "Unreachable"; any
  // other answer is fine. (A 403 on one object is that object's error, not the cluster's.)
  struct Access {
    bool ok = true;
    std::string reason;
    std::string message;
  };
  Access access() const;
  // When nothing was asked of the API for `idle`, asks it once (GET /api, no retries)
  // so access() stays current. Returns access().
  Access CheckAccess(absl::Duration idle);

 private:
  // The requests' rate limit, shared by the clients Impersonating makes.
  struct RateLimit {
    RateLimit(double qps, int burst) : bucket(qps, burst) {}
    Mutex mu;
    TokenBucket bucket ABSL_GUARDED_BY(mu);
  };

  KubeClient(KubeConfig config, Options options, std::shared_ptr<RateLimit> rate_limit);
  // A stream's receiver (Stream), for DoOnce.
  struct Sink {
    const std::function<bool(absl::string_view)>* on_data;
    const std::function<bool()>* stop;
    absl::Duration timeout;
  };
  absl::StatusOr<KubeResponse> DoOnce(void* curl, absl::string_view method, const std::string& url,
                                      absl::string_view body, absl::string_view content_type,
                                      const std::string& token, absl::Duration* retry_after,
                                      const Sink* sink = nullptr);
  void WaitForRateLimit();
  // The bearer token to send; re-reads the token file when it changed (or `force`).
  std::string Token(bool force);
  void* TakeHandle();
  void ReturnHandle(void* handle);

  const KubeConfig config_;
  const Options options_;

  const std::shared_ptr<RateLimit> rate_limit_;

  Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);
  int64_t token_mtime_ns_ ABSL_GUARDED_BY(token_mu_) = -1;

  void Observe(absl::string_view path, const absl::StatusOr<KubeResponse>& response);

  mutable Mutex access_mu_;
  Access access_ ABSL_GUARDED_BY(access_mu_);
  absl::Time last_request_ ABSL_GUARDED_BY(access_mu_) = absl::InfinitePast();

  Mutex pool_mu_;
  std::vector<void*> pool_ ABSL_GUARDED_BY(pool_mu_);
};

// Percent-encodes a query value (label selectors).
std::string UrlEncode(absl::string_view text);

// The API server's version (GET /version, its gitVersion: "v1.30.2"), at most 64 printable
// characters. An error when it cannot be read or holds none.
absl::StatusOr<std::string> ReadKubernetesVersion(KubeClient& client);

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_KUBE_CLIENT_H_
