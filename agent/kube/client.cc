#include "agent/kube/client.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/logging.h"
#include "nlohmann/json.hpp"

namespace gitfleet {
namespace {

absl::StatusCode CodeFor(int http) {
  switch (http) {
    case 400:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kAborted;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return http >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnknown;
  }
}

bool Retryable(int code) {
  return code == 429 || code == 500 || code == 502 || code == 503 || code == 504;
}

struct Exchange {
  std::string body;
  absl::Duration retry_after = absl::ZeroDuration();
  // A stream's: where a 200's body goes, and what ends it early.
  CURL* curl = nullptr;
  const std::function<bool(absl::string_view)>* on_data = nullptr;
  const std::function<bool()>* stop = nullptr;
  bool ended = false;  // by on_data or stop
};

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  auto* exchange = static_cast<Exchange*>(user);
  if (exchange->on_data != nullptr) {
    long code = 0;
    curl_easy_getinfo(exchange->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code == 200) {
      if (!(*exchange->on_data)(absl::string_view(data, size * n))) {
        exchange->ended = true;
        return 0;  // aborts the transfer
      }
      return size * n;
    }
    if (exchange->body.size() > (1 << 20)) return 0;  // an error's Status is small
  }
  exchange->body.append(data, size * n);
  return size * n;
}

int StreamProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* exchange = static_cast<Exchange*>(user);
  if (exchange->stop != nullptr && (*exchange->stop)()) {
    exchange->ended = true;
    return 1;  // aborts the transfer
  }
  return 0;
}

size_t ReadHeader(char* data, size_t size, size_t n, void* user) {
  absl::string_view line(data, size * n);
  if (absl::StartsWithIgnoreCase(line, "retry-after:")) {
    line.remove_prefix(sizeof("retry-after:") - 1);
    int seconds = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &seconds) && seconds >= 0) {
      static_cast<Exchange*>(user)->retry_after = absl::Seconds(seconds);
    }
  }
  return size * n;
}

void SetBlob(CURL* curl, CURLoption option, const std::string& pem) {
  curl_blob blob;
  blob.data = const_cast<char*>(pem.data());
  blob.len = pem.size();
  blob.flags = CURL_BLOB_COPY;
  curl_easy_setopt(curl, option, &blob);
}

}  // namespace

absl::Status KubeResponse::ToStatus() const {
  if (code >= 200 && code < 300) return absl::OkStatus();
  std::string reason, message;
  nlohmann::json status = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (status.is_object()) {
    if (status.contains("reason") && status["reason"].is_string()) reason = status["reason"];
    if (status.contains("message") && status["message"].is_string()) message = status["message"];
  }
  if (message.empty()) message = body.substr(0, 200);
  return absl::Status(CodeFor(code),
                      absl::StrCat(code, reason.empty() ? "" : " ", reason, ": ", message));
}

std::string UrlEncode(absl::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%",
                      absl::AsciiStrToUpper(absl::StrCat(absl::Hex(c, absl::kZeroPad2))));
    }
  }
  return out;
}

namespace {

// The user to impersonate goes into a header: printable, no spaces, bounded (a service
// account's, "system:serviceaccount:" with a namespace and a name, is at most 339).
absl::Status CheckImpersonateUser(const std::string& user) {
  if (user.size() > 512 ||
      std::any_of(user.begin(), user.end(), [](char c) { return c < 0x21 || c > 0x7e; })) {
    return absl::InvalidArgumentError(
        "kubernetes client: the user to impersonate must be at most 512 printable characters "
        "without spaces");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubeClient>> KubeClient::Create(KubeConfig config, Options options) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (options.qps <= 0 || options.burst < 1) {
    return absl::InvalidArgumentError("kubernetes client: qps must be > 0 and burst >= 1");
  }
  if (config.server.empty()) return absl::InvalidArgumentError("kubernetes client: no server");
  if (absl::Status s = CheckImpersonateUser(options.impersonate_user); !s.ok()) return s;
  if (config.insecure_skip_tls_verify) {
    GF_LOG(WARNING) << "kubernetes: " << config.origin
                    << " skips TLS verification (insecure-skip-tls-verify): anyone on the path "
                       "to "
                    << config.server << " can read and change what the agent applies";
  }
  auto rate_limit = std::make_shared<RateLimit>(options.qps, options.burst);
  std::unique_ptr<KubeClient> client(
      new KubeClient(std::move(config), std::move(options), std::move(rate_limit)));
  client->Token(/*force=*/false);
  return client;
}

absl::StatusOr<std::unique_ptr<KubeClient>> KubeClient::Impersonating(
    const std::string& user) const {
  Options options = options_;
  options.impersonate_user = user;
  if (absl::Status s = CheckImpersonateUser(options.impersonate_user); !s.ok()) return s;
  std::unique_ptr<KubeClient> client(new KubeClient(config_, std::move(options), rate_limit_));
  client->Token(/*force=*/false);
  return client;
}

KubeClient::KubeClient(KubeConfig config, Options options, std::shared_ptr<RateLimit> rate_limit)
    : config_(std::move(config)), options_(std::move(options)), rate_limit_(std::move(rate_limit)) {
  MutexLock lock(&token_mu_);
  token_ = config_.token;
}

KubeClient::~KubeClient() {
  MutexLock lock(&pool_mu_);
  for (void* handle : pool_) curl_easy_cleanup(static_cast<CURL*>(handle));
}

void* KubeClient::TakeHandle() {
  {
    MutexLock lock(&pool_mu_);
    if (!pool_.empty()) {
      void* handle = pool_.back();
      pool_.pop_back();
      return handle;
    }
  }
  return curl_easy_init();
}

void KubeClient::ReturnHandle(void* handle) {
  if (handle == nullptr) return;
  MutexLock lock(&pool_mu_);
  pool_.push_back(handle);
}

void KubeClient::WaitForRateLimit() {
  // Bounded: at worst one token's refill time per loop, and tokens always refill.
  for (;;) {
    {
      MutexLock lock(&rate_limit_->mu);
      if (rate_limit_->bucket.Take(RealClock().Now())) return;
    }
    absl::SleepFor(absl::Seconds(1.0 / options_.qps));
  }
}

std::string KubeClient::Token(bool force) {
  MutexLock lock(&token_mu_);
  if (config_.token_file.empty()) return token_;
  struct stat st;
  if (stat(config_.token_file.c_str(), &st) != 0) return token_;
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (!force && mtime == token_mtime_ns_) return token_;
  std::ifstream in(config_.token_file);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(buffer.str()));
  if (!token.empty()) {
    if (token_mtime_ns_ >= 0 && token != token_) {
      GF_LOG(INFO) << "kubernetes: token file " << config_.token_file << " changed; using it";
    }
    token_ = std::move(token);
  }
  token_mtime_ns_ = mtime;
  return token_;
}

namespace {

// /api, /apis, /api/v1, /apis/GROUP and /apis/GROUP/VERSION: what every client may read.
bool IsDiscovery(absl::string_view path) {
  path = path.substr(0, path.find('?'));
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  if (parts.empty()) return false;
  if (parts[0] == "api") return parts.size() <= 2;
  return parts[0] == "apis" && parts.size() <= 3;
}

}  // namespace

void KubeClient::Observe(absl::string_view path, const absl::StatusOr<KubeResponse>& response) {
  MutexLock lock(&access_mu_);
  last_request_ = RealClock().Now();
  if (!response.ok()) {
    access_ = {false, "Unreachable", std::string(response.status().message())};
  } else if (response->code == 401) {
    access_ = {false, "Unauthorized",
               absl::StrCat(config_.server, " refused the credentials from ", config_.origin, ": ",
                            response->ToStatus().message())};
  } else if (response->code == 403 && IsDiscovery(path)) {
    access_ = {
        false, "Forbidden",
        absl::StrCat(config_.server, " forbids discovery: ", response->ToStatus().message())};
  } else if (response->code != 403) {
    access_ = Access();
  }
}

KubeClient::Access KubeClient::access() const {
  MutexLock lock(&access_mu_);
  return access_;
}

KubeClient::Access KubeClient::CheckAccess(absl::Duration idle) {
  {
    MutexLock lock(&access_mu_);
    if (RealClock().Now() - last_request_ < idle) return access_;
  }
  WaitForRateLimit();
  void* curl = TakeHandle();
  absl::Duration retry_after;
  absl::StatusOr<KubeResponse> response =
      DoOnce(curl, "GET", config_.server + "/api", "", "", Token(/*force=*/false), &retry_after);
  ReturnHandle(curl);
  if (options_.on_response) options_.on_response("GET", response.ok() ? response->code : 0);
  if (response.ok() && response->code == 401 && !config_.token_file.empty()) {
    Token(/*force=*/true);  // the next request uses a rotated token, if there is one
  }
  Observe("/api", response);
  return access();
}

absl::StatusOr<KubeResponse> KubeClient::Do(absl::string_view method, absl::string_view path,
                                            absl::string_view body,
                                            absl::string_view content_type) {
  const std::string url = absl::StrCat(config_.server, path);
  Backoff backoff(options_.initial_backoff, options_.max_backoff);
  bool reread_token = false;
  absl::Status last_error;
  for (int attempt = 0; attempt <= options_.max_retries; ++attempt) {
    WaitForRateLimit();
    std::string token = Token(/*force=*/false);
    void* curl = TakeHandle();
    absl::Duration retry_after = absl::ZeroDuration();
    absl::StatusOr<KubeResponse> response =
        DoOnce(curl, method, url, body, content_type, token, &retry_after);
    ReturnHandle(curl);
    if (options_.on_response) options_.on_response(method, response.ok() ? response->code : 0);
    if (response.ok() && response->code == 401 && !config_.token_file.empty() && !reread_token) {
      // The token may have rotated since it was last read: read it once more.
      reread_token = true;
      if (Token(/*force=*/true) != token) {
        --attempt;
        continue;
      }
    }
    if (response.ok() && !Retryable(response->code)) {
      Observe(path, response);
      return response;
    }
    absl::Duration wait = backoff.Next();
    if (response.ok()) {
      last_error = response->ToStatus();
      if (retry_after > absl::ZeroDuration())
        wait = std::min(retry_after, options_.max_retry_after);
      if (attempt == options_.max_retries) {
        Observe(path, response);
        return response;
      }
    } else {
      last_error = response.status();
    }
    if (attempt < options_.max_retries) {
      GF_LOG(DEBUG) << "kubernetes: " << method << " " << path << ": " << last_error.message()
                    << "; retrying in " << wait;
      absl::SleepFor(wait);
    }
  }
  absl::Status failed = absl::UnavailableError(
      absl::StrCat(method, " ", config_.server, path, " failed after ", options_.max_retries + 1,
                   " attempts: ", last_error.message()));
  Observe(path, failed);
  return failed;
}

absl::StatusOr<KubeResponse> KubeClient::Stream(
    absl::string_view path, const std::function<bool(absl::string_view)>& on_data,
    const std::function<bool()>& stop, absl::Duration timeout) {
  WaitForRateLimit();
  const std::string url = absl::StrCat(config_.server, path);
  std::string token = Token(/*force=*/false);
  // A handle of its own: a stream holds its connection for as long as it lasts.
  CURL* curl = curl_easy_init();
  absl::Duration retry_after = absl::ZeroDuration();
  const Sink sink{&on_data, &stop, timeout};
  absl::StatusOr<KubeResponse> response =
      DoOnce(curl, "GET", url, "", "", token, &retry_after, &sink);
  if (curl != nullptr) curl_easy_cleanup(curl);
  if (options_.on_response) options_.on_response("WATCH", response.ok() ? response->code : 0);
  if (response.ok() && response->code == 401 && !config_.token_file.empty()) {
    Token(/*force=*/true);  // the next request uses a rotated token, if there is one
  }
  return response;
}

absl::StatusOr<KubeResponse> KubeClient::DoOnce(void* handle, absl::string_view method,
                                                const std::string& url, absl::string_view body,
                                                absl::string_view content_type,
                                                const std::string& token,
                                                absl::Duration* retry_after, const Sink* sink) {
  CURL* curl = static_cast<CURL*>(handle);
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  curl_easy_reset(curl);  // keeps the connection cache
  Exchange exchange;
  const std::string method_string(method);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method_string.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(
                       sink != nullptr ? sink->timeout : options_.timeout)));
  if (sink != nullptr) {
    exchange.curl = curl;
    exchange.on_data = sink->on_data;
    exchange.stop = sink->stop;
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &StreamProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &exchange);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  }
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &exchange);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &ReadHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &exchange);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  if (method == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  if (!body.empty() || method == "POST" || method == "PATCH" || method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "User-Agent: gitfleet-agent");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  std::string content_header = absl::StrCat("Content-Type: ", content_type);
  if (!body.empty()) headers = curl_slist_append(headers, content_header.c_str());
  std::string auth;
  if (!token.empty()) {
    auth = absl::StrCat("Authorization: Bearer ", token);
    headers = curl_slist_append(headers, auth.c_str());
  }
  std::string impersonate;
  if (!options_.impersonate_user.empty()) {
    impersonate = absl::StrCat("Impersonate-User: ", options_.impersonate_user);
    headers = curl_slist_append(headers, impersonate.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!config_.ca_pem.empty()) SetBlob(curl, CURLOPT_CAINFO_BLOB, config_.ca_pem);
  if (config_.insecure_skip_tls_verify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!config_.client_cert_pem.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
    SetBlob(curl, CURLOPT_SSLCERT_BLOB, config_.client_cert_pem);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    SetBlob(curl, CURLOPT_SSLKEY_BLOB, config_.client_key_pem);
  }
  CURLcode result = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  long streamed = 0;
  if (sink != nullptr) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &streamed);
  // A stream that lasted until its timeout ended as asked.
  const bool timed_out_stream =
      sink != nullptr && result == CURLE_OPERATION_TIMEDOUT && streamed == 200;
  if (result != CURLE_OK && !exchange.ended && !timed_out_stream) {
    return absl::UnavailableError(absl::StrCat(method, " ", url, ": ", curl_easy_strerror(result)));
  }
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  *retry_after = exchange.retry_after;
  KubeResponse response;
  response.code = static_cast<int>(code);
  response.body = std::move(exchange.body);
  return response;
}

absl::StatusOr<std::string> ReadKubernetesVersion(KubeClient& client) {
  absl::StatusOr<KubeResponse> response = client.Do("GET", "/version");
  if (!response.ok()) return response.status();
  if (response->code != 200) return response->ToStatus();
  const nlohmann::json version = nlohmann::json::parse(response->body, nullptr, false);
  const std::string text =
      version.is_object() && version.contains("gitVersion") && version["gitVersion"].is_string()
          ? version["gitVersion"].get<std::string>()
          : std::string();
  if (text.empty() || text.size() > 64 ||
      std::any_of(text.begin(), text.end(), [](char c) { return c <= ' ' || c > '~'; })) {
    return absl::InvalidArgumentError("/version holds no gitVersion of at most 64 characters");
  }
  return text;
}

}  // namespace gitfleet
