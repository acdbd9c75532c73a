#ifndef GITFLEET_CONTROLPLANE_EVENTS_NOTIFIER_H_
#define GITFLEET_CONTROLPLANE_EVENTS_NOTIFIER_H_

// Pushes the fleet's events (the EventBus's) to HTTP endpoints, for the services and chat
// rooms that take webhooks rather than hold a WatchEvents stream: a deploy channel told
// when a rollout ends or pauses, an incident tool told when a render fails.
//
//   absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(file_text);
//   Notifier notifier({.sinks = *sinks, .secret = key}, &bus, metrics.notifications);
//   notifier.Start();
//
// Each sink has a worker of its own and a subscription to the bus filtered by the sink's
// event types, so a slow or dead endpoint delays only itself. With `reload`, the sinks
// follow the file as it changes: an unchanged line keeps its worker, wherever it moved. Events go
// one POST each, in order: `json` sends the event as JSON (admin.proto's Event, its field names),
// signed when a secret is given (`X-Gitfleet-Signature-256: sha256=HMAC-SHA256(secret, body)`, as
// GitHub signs its webhooks, and as Standard Webhooks do, which receivers built on their
// libraries check: `webhook-id` gitfleet-STREAM-SEQUENCE, the same at every try,
// `webhook-timestamp` the try's, `webhook-signature` v1,BASE64); `slack` sends `{"text": "..."}`,
// one line, which Slack's, Mattermost's and Rocket.Chat's incoming webhooks, and Discord's
// Slack-compatible one, take; `teams` sends an Adaptive Card, as Microsoft Teams' workflow webhooks
// ("Post to a channel when a webhook request is received") take. A failed POST (no answer, or not a
// 2xx) is tried again after 1 s, doubling up to a minute, at most `max_attempts` times (a rate
// limit, 429 or GitHub's 403 saying so, waited out as its Retry-After or X-RateLimit-Reset asks, up
// to 15 minutes, 4 times, without counting as a try); events meanwhile wait in the subscription,
// which keeps at most the bus's queue: past it those waiting are dropped and the sink is sent one
// "resync" event instead, saying how many. Every outcome counts in
// gitfleet_notifications_total{sink, result}, the sink by its line number (its URL may be a secret,
// as Slack's are).
//
// A `github`, `gitlab`, `gitea`, `bitbucket`, `bitbucket-server` or `azure-devops` sink is a
// repository (its https address, as its web page or clone URL gives it) and a token file
// (`token-file=PATH`): each bundle whose source
// fetches that repository gets a commit status there, `gitfleet/BUNDLE`, on the commit it
// is at: pending while it rolls out, success once every cluster it targets runs it Healthy,
// failure when its render failed or its rollout paused, as `gitfleetctl rollout status -w`
// judges. A pull request's checks then say whether its merge reached the fleet. A bundle is
// judged again when an event about its render or rollout comes, and at each
// `status_interval` while it is pending; its status is posted when its commit or state
// changes.
//
// Thread-safe.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/http.h"
#include "common/metrics/metrics.h"
#include "common/model/label_selector.h"
#include "common/sync.h"
#include "controlplane/events/event_bus.h"

namespace gitfleet {

struct NotifySink {
  enum class Format {
    kJson,
    kSlack,
    kTeams,
    // Commit statuses, from here on.
    kGitHub,
    kGitLab,
    kGitea,            // and Forgejo
    kBitbucket,        // Bitbucket Cloud
    kBitbucketServer,  // Bitbucket Data Center (once Server)
    kAzureDevOps,      // Services and Server
  };
  std::string url;
  Format format = Format::kJson;
  // Event types, or families ending in "." ("rollout."); never empty once parsed.
  std::vector<std::string> types;
  int line = 0;  // in the file: the sink's label
  // Commit-status sinks: the file holding the API token, or the --credentials-dir
  // credential giving it (one of the two); the API's root (`api=URL` when the line gives
  // one: a host under a path of its own, or a test's server; else from the address); the
  // URL a commit's status is posted to, "{commit}" standing for the commit; and the forms
  // of the repository's address a source may fetch it by (HTTPS and SSH, as
  // NormalizeRepoUrl writes them).
  std::string token_file;
  std::string credential;
  std::string api_url;
  std::string status_url;
  std::vector<std::string> repositories;
  std::string page_url;  // Bitbucket's: the repository's page, a status's link by default
  bool Names(absl::string_view source_url) const;
  // `bundles=NAME,...`: only events about these bundles (sorted; an entry with '*' or '?'
  // is a glob, "payments-*"); empty: any.
  std::vector<std::string> bundles;
  // `clusters=SELECTOR` (a label selector; not for commit statuses, which judge every
  // cluster a bundle targets): only events about those clusters, and about whole bundles
  // and sources that concern one of them (Notifier::Options::concerns); unset: any.
  std::optional<LabelSelector> clusters;
  // A commit-status sink's `details=URL`: the status's link ("Details"), with {bundle}
  // and {commit} filled in (a dashboard of the bundle, say); empty: none.
  std::string details_url;
  bool commit_statuses() const { return format >= Format::kGitHub; }
  // The same line, read the same way (a sink kept across a re-read of the file).
  bool operator==(const NotifySink& other) const;
};

// What a sink is sent when its line names no types: events about whole sources and
// bundles (failures, rollouts, an operator's acts), none per cluster, which a fleet of
// thousands sends thousands of per commit.
inline constexpr const char* kDefaultNotifyTypes[] = {
    "source.failed",  "source.recovered",  "render.failed",   "rollout.",     "bundle.suspended",
    "bundle.resumed", "bundle.pinned",     "bundle.unpinned", "bundle.added", "bundle.replaced",
    "bundle.removed", "cluster.suspended", "cluster.resumed", "resync"};

// --notify-file's text: one sink per line, `URL [json|slack|teams] [TYPE,...] [bundles=NAME,...]
// [clusters=SELECTOR]`
// or `REPOSITORY_URL FORMAT token-file=PATH|credential=NAME [bundles=NAME,...] [details=URL]
// [api=URL]` (FORMAT:
// github, gitlab, gitea or forgejo, bitbucket, bitbucket-server, azure-devops) (blank
// lines and lines starting with '#' skipped), an http(s) URL without credentials in it, at most 16
// sinks, 64 bundles (or globs of them) a sink. A token goes over https only (http to this machine
// alone, for tests). InvalidArgument naming the line (never the URL, which may be a secret) for
// what it cannot read: another scheme, an unknown format or event type, a repository URL that names
// no repository.
absl::StatusOr<std::vector<NotifySink>> ParseNotifySinks(absl::string_view text);

// The body POSTed for `event`.
std::string NotificationBody(const v1::Event& event, NotifySink::Format format);

// Where a bundle stands, for its commit status.
struct CommitStatus {
  // kSuperseded: a later commit went out before this one was everywhere (GitHub's and
  // Bitbucket Data Center's pending, GitLab's canceled, Gitea's warning, Bitbucket Cloud's
  // STOPPED, Azure DevOps' notApplicable).
  enum class State { kPending, kSuccess, kFailure, kSuperseded };
  std::string source_url;  // the repository its source fetches
  std::string commit;      // full id
  State state = State::kPending;
  std::string description;  // one line
  // Pending, and as good as nothing but an event about the bundle moves it (a suspended
  // bundle: its resume): judged again at that event, and each quiet_interval meanwhile
  // (clusters given its commit before may finish), not at each status_interval.
  bool awaits_event = false;
};

// The request that sets `status` as `bundle`'s commit status through `sink`'s API: the
// context `gitfleet/BUNDLE` (Bitbucket's key, at most 40 bytes, from it), the description
// cut to 140 bytes (GitHub's limit) on a character's boundary.
struct StatusRequest {
  std::string url;
  std::string body;
  std::vector<std::string> headers;  // the token's among them
};
StatusRequest CommitStatusRequest(const NotifySink& sink, const std::string& bundle,
                                  const CommitStatus& status, const std::string& token);

class Notifier {
 public:
  struct Options {
    std::vector<NotifySink> sinks;
    // The secret `json` bodies are signed with, asked at each POST (a file read again as
    // it changes); unset, or "": not signed.
    std::function<std::string()> secret;
    absl::Duration timeout = absl::Seconds(10);  // one POST
    int max_attempts = 5;
    absl::Duration retry_base = absl::Seconds(1);
    absl::Duration retry_max = absl::Minutes(1);
    // For commit-status sinks: the token of a sink, asked at each POST (StatusTokens; an
    // error fails the POST, tried again as a failed one is); how a bundle stands (NotFoundError
    // once it is gone; any other error: asked again later), `settled` the commit it was last posted
    // a success for ("" for none), which stays a success while the bundle is at it; every bundle's
    // name (judged at start and after a resync); and how often a bundle is judged at most.
    std::function<absl::StatusOr<std::string>(const NotifySink& sink)> token;
    std::function<absl::StatusOr<CommitStatus>(const std::string& bundle,
                                               const std::string& settled)>
        judge;
    std::function<absl::StatusOr<std::vector<std::string>>()> bundles;
    absl::Duration status_interval = absl::Seconds(1);
    // How often a bundle pending on an event (CommitStatus::awaits_event) is judged
    // meanwhile.
    absl::Duration quiet_interval = absl::Minutes(1);
    // Between two of a GitHub sink's statuses, at least (GitHub's advice for requests that
    // create content).
    absl::Duration github_spacing = absl::Seconds(1);
    // When set, asked each `reload_interval` for the sinks in force (the file read again
    // as it changes; the same pointer while nothing changed): a sink the same as before
    // (on whatever line: its label follows) keeps its worker, the others stop and new ones
    // start.
    std::function<std::shared_ptr<const std::vector<NotifySink>>()> reload;
    absl::Duration reload_interval = absl::Seconds(1);
    // For sinks with clusters=: whether `event` concerns a cluster `clusters` matches (one
    // it names; a bundle one targets or holds; a source one of whose bundles does). Called
    // under the event bus's lock (EventBus::Filter::allows). Unset: every event does.
    std::function<bool(const v1::Event& event, const LabelSelector& clusters)> concerns;
  };
  Notifier(Options options, EventBus* bus, metrics::Family<metrics::Counter>& outcomes);
  ~Notifier();  // Stop()
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Subscribes each sink and starts its worker (and, with `reload`, the thread that
  // follows the file).
  absl::Status Start();
  // Ends the workers; a POST in flight finishes (bounded by the timeout), a wait for a
  // retry does not.
  void Stop();

 private:
  struct Worker;
  absl::StatusOr<std::unique_ptr<Worker>> StartWorker(const NotifySink& sink, bool from_now);
  static void StopWorkers(std::vector<std::unique_ptr<Worker>>& workers);
  // Follows `reload`: the sinks that changed get new workers.
  void Supervise();
  void Run(Worker* worker);
  // A commit-status sink's worker: judges the bundles events name, posts what changed.
  void RunStatuses(Worker* worker);
  // Tries `request` to `url` until it is taken, the attempts run out or Stop; true once
  // taken. `refused`: set when a commit status's API refused it for good (a 4xx).
  // `stamp`, when given, adds the headers of each try to them (a signed timestamp).
  bool Deliver(Worker* worker, const std::string& url, const HttpFetchOptions& request,
               bool* refused = nullptr,
               const std::function<void(std::vector<std::string>*)>& stamp = nullptr);
  // Waits until the worker's subscription has events (true) or Stop (false).
  bool AwaitWork(Worker* worker);
  bool Stopping(Worker* worker);
  // Posts `status` as `bundle`'s through a commit-status sink.
  enum class Delivery { kTaken, kRefused, kFailed };
  Delivery Post(Worker* worker, const std::string& bundle, const CommitStatus& status);
  // Whether `duration` passed without Stop.
  bool Pause(Worker* worker, absl::Duration duration);

  const Options options_;
  EventBus* const bus_;
  metrics::Family<metrics::Counter>& outcomes_;
  Mutex workers_mu_;
  std::vector<std::unique_ptr<Worker>> workers_ ABSL_GUARDED_BY(workers_mu_);
  Mutex supervisor_mu_;
  bool stopping_ ABSL_GUARDED_BY(supervisor_mu_) = false;
  std::thread supervisor_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_EVENTS_NOTIFIER_H_
