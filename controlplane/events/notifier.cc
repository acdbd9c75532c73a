#include "controlplane/events/notifier.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/http.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace gitfleet {

constexpr size_t kMaxNotifySinks = 16;

absl::StatusOr<std::vector<NotifySink>> ParseNotifySinks(absl::string_view text) {
  std::vector<NotifySink> sinks;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const std::string where = absl::StrCat("notify file line ", number);
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.size() > 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": more than URL, a format and event types"));
    }
    NotifySink sink;
    sink.line = number;
    sink.url = std::string(words[0]);
    if (!absl::StartsWith(sink.url, "https://") && !absl::StartsWith(sink.url, "http://")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": not an http(s) URL (its scheme is not shown)"));
    }
    const absl::string_view authority = absl::string_view(sink.url).substr(
        sink.url.find("://") + 3,
        sink.url.find_first_of("/?#", sink.url.find("://") + 3) - sink.url.find("://") - 3);
    if (authority.empty() || absl::StrContains(authority, "@")) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, authority.empty() ? ": the URL names no host"
                                   : ": the URL holds credentials (user@): put the secret in "
                                     "the path, as Slack's do, or sign with --notify-secret-file"));
    }
    size_t next = 1;
    if (words.size() > next && (words[next] == "json" || words[next] == "slack")) {
      sink.format = words[next] == "slack" ? NotifySink::Format::kSlack : NotifySink::Format::kJson;
      ++next;
    }
    if (words.size() > next && next == 1 && !absl::StrContains(words[next], '.') &&
        words[next] != "resync") {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"", words[next].substr(0, 64),
                       "\" is neither json nor slack, nor event types"));
    }
    if (words.size() > next) {
      for (absl::string_view type : absl::StrSplit(words[next], ',', absl::SkipEmpty())) {
        if (absl::Status known = CheckEventTypeFilter(std::string(type)); !known.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": ", known.message()));
        }
        sink.types.emplace_back(type);
      }
      ++next;
    }
    if (next != words.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"", words[next].substr(0, 64),
                       "\" is neither json nor slack, nor event types"));
    }
    if (sink.types.empty()) {
      sink.types.assign(std::begin(kDefaultNotifyTypes), std::end(kDefaultNotifyTypes));
    }
    if (sinks.size() >= kMaxNotifySinks) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": more than ", kMaxNotifySinks, " sinks"));
    }
    sinks.push_back(std::move(sink));
  }
  return sinks;
}

std::string NotificationBody(const v1::Event& event, NotifySink::Format format) {
  if (format == NotifySink::Format::kJson) {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    std::string json;
    if (google::protobuf::util::MessageToJsonString(event, &json, options).ok()) return json;
    return nlohmann::json{{"type", event.type()}, {"message", event.message()}}.dump();
  }
  // One line, as `gitfleetctl events` prints it.
  std::string text = absl::StrCat("gitfleet ", event.type());
  if (!event.source().empty()) absl::StrAppend(&text, " source=", event.source());
  if (!event.bundle().empty()) absl::StrAppend(&text, " bundle=", event.bundle());
  if (!event.cluster().empty()) absl::StrAppend(&text, " cluster=", event.cluster());
  if (!event.commit().empty()) absl::StrAppend(&text, " commit=", event.commit().substr(0, 12));
  if (!event.message().empty()) absl::StrAppend(&text, ": ", event.message());
  // Not JSON-valid UTF-8 (a file name in a message, say): replaced rather than refused.
  return nlohmann::json{{"text", text}}.dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace);
}

struct Notifier::Worker {
  NotifySink sink;
  std::string label;  // gitfleet_notifications_total's sink
  std::shared_ptr<EventBus::Subscription> subscription;
  Mutex mu;
  bool woken ABSL_GUARDED_BY(mu) = true;  // the recent events Subscribe queued
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool failing ABSL_GUARDED_BY(mu) = false;  // since its last POST taken
  std::thread thread;
};

Notifier::Notifier(Options options, EventBus* bus, metrics::Family<metrics::Counter>& outcomes)
    : options_(std::move(options)), bus_(bus), outcomes_(outcomes) {}

Notifier::~Notifier() { Stop(); }

absl::Status Notifier::Start() {
  for (const NotifySink& sink : options_.sinks) {
    auto worker = std::make_unique<Worker>();
    worker->sink = sink;
    worker->label = absl::StrCat(sink.line);
    for (const char* result : {"sent", "failed", "retried"}) {
      outcomes_.Add({{"sink", worker->label}, {"result", result}});
    }
    EventBus::Filter filter;
    filter.types = sink.types;
    Worker* raw = worker.get();
    absl::StatusOr<std::shared_ptr<EventBus::Subscription>> subscription =
        bus_->Subscribe(std::move(filter), [raw] {
          MutexLock lock(&raw->mu);
          raw->woken = true;
        });
    if (!subscription.ok()) return subscription.status();
    worker->subscription = *std::move(subscription);
    workers_.push_back(std::move(worker));
  }
  for (auto& worker : workers_) {
    Worker* raw = worker.get();
    worker->thread = std::thread([this, raw] { Run(raw); });
  }
  return absl::OkStatus();
}

void Notifier::Stop() {
  for (auto& worker : workers_) {
    if (worker->subscription != nullptr) worker->subscription->Cancel();
    MutexLock lock(&worker->mu);
    worker->stopping = true;
  }
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

void Notifier::Run(Worker* worker) {
  NameThisThread("gf-notify");
  while (true) {
    {
      MutexLock lock(&worker->mu);
      worker->mu.Await([worker]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(worker->mu) {
        return worker->woken || worker->stopping;
      });
      if (worker->stopping) return;
      worker->woken = false;
    }
    for (const v1::Event& event : worker->subscription->Take()) {
      if (!Deliver(worker, NotificationBody(event, worker->sink.format))) {
        MutexLock lock(&worker->mu);
        if (worker->stopping) return;
      }
    }
  }
}

bool Notifier::Deliver(Worker* worker, const std::string& body) {
  HttpFetchOptions request;
  request.method = "POST";
  request.body = body;
  request.timeout = options_.timeout;
  request.max_bytes = 64 << 10;  // the answer, unread
  request.follow_redirects = false;
  request.headers = {"Content-Type: application/json", "User-Agent: gitfleet"};
  const std::string secret =
      worker->sink.format == NotifySink::Format::kJson && options_.secret ? options_.secret() : "";
  if (!secret.empty()) {
    request.headers.push_back(
        absl::StrCat("X-Gitfleet-Signature-256: sha256=",
                     absl::BytesToHexString(crypto::HmacSha256(secret, body))));
  }
  absl::Duration wait = options_.retry_base;
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<HttpAnswer> answer = HttpFetch(worker->sink.url, request);
    std::string error;
    if (!answer.ok()) {
      error = std::string(answer.status().message());
    } else if (answer->status < 200 || answer->status > 299) {
      error = absl::StrCat("HTTP ", answer->status);
    }
    // The URL may be a secret (Slack's): errors name the sink by its line.
    for (const char* scheme_end : {"https://", "http://"}) {
      for (size_t at = error.find(scheme_end); at != std::string::npos;
           at = error.find(scheme_end)) {
        error.replace(at, error.find_first_of(" '\"", at) - at, "(the sink's URL)");
      }
    }
    if (error.empty()) {
      outcomes_.Add({{"sink", worker->label}, {"result", "sent"}}).Increment();
      MutexLock lock(&worker->mu);
      if (worker->failing) {
        GF_LOG(INFO) << "notify sink " << worker->label << " takes events again";
        worker->failing = false;
      }
      return true;
    }
    // Logged when a sink starts failing and when an event is given up (at most once per
    // round of tries), not at every try.
    const bool give_up = attempt >= options_.max_attempts;
    {
      MutexLock lock(&worker->mu);
      if (!worker->failing || give_up) {
        GF_LOG(WARNING) << "notify sink " << worker->label << " (notify file line "
                        << worker->sink.line << "): " << error
                        << (give_up ? absl::StrCat("; an event given up after ", attempt, " tries")
                                    : std::string("; trying again"));
        worker->failing = true;
      }
    }
    if (give_up) break;
    outcomes_.Add({{"sink", worker->label}, {"result", "retried"}}).Increment();
    MutexLock lock(&worker->mu);
    if (worker->mu.AwaitWithTimeout(
            [worker]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(worker->mu) { return worker->stopping; },
            wait)) {
      return false;
    }
    wait = std::min(wait * 2, options_.retry_max);
  }
  outcomes_.Add({{"sink", worker->label}, {"result", "failed"}}).Increment();
  return false;
}

}  // namespace gitfleet
