#ifndef GITFLEET_CONTROLPLANE_SOURCE_SOURCE_POLLER_H_
#define GITFLEET_CONTROLPLANE_SOURCE_SOURCE_POLLER_H_

// Keeps every source's ref up to date: fetches each URL on its poll interval (once per
// URL however many sources use it), retries failures with backoff, and reports each
// new commit. The URLs are the keys of a work queue (common/workqueue.h, name "sources"):
// a few workers fetch at once, one fetch per URL at a time, so a slow or hanging Git
// server delays only the sources that use it; a failed fetch (or a ref that does not
// resolve) is retried after min(1 s * 2^(n-1), 5 min), a good one after the interval.
// The clone of a repository no source uses any more is deleted (on the first fetch after
// a start, for sources removed while the control plane was down).
//
//   SourcePoller poller(repos, metrics, [&](const std::string& source,
//                                           const SourceSnapshot& snap) { ... });
//   poller.Upsert(source);  // fetches soon
//   poller.Start();
//
// Thread-safe. The callbacks run on a fetch worker, never with the poller's lock held;
// callbacks for different URLs may run at once, those for one source in order.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"
#include "common/workqueue.h"
#include "controlplane/metrics.h"
#include "controlplane/source/git_repository.h"
#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet {

struct SourceSnapshot {
  CommitInfo commit;
  std::shared_ptr<GitRepository> repo;
};

// One repository to fetch: a URL, read with one credential (or none).
std::string RepoKey(const v1::Source& source);

class SourcePoller {
 public:
  using CommitCallback =
      std::function<void(const std::string& source, const SourceSnapshot& snapshot)>;
  // A source's error changed: `error` is what its fetch (or its ref) failed with now, ""
  // when it recovered. Not called again while the same error repeats.
  using ErrorCallback = std::function<void(const std::string& source, const std::string& error)>;

  SourcePoller(GitRepositories* repos, ControlPlaneMetrics& metrics, CommitCallback on_commit,
               absl::Duration default_interval = absl::Seconds(30), int fetch_threads = 4,
               Clock* clock = &RealClock(), ErrorCallback on_error = nullptr);
  ~SourcePoller();  // Stop()

  // Where the key folders sources name to verify commits (Source.verify_commits) are: the
  // control plane's --credentials-dir. Before Start.
  void SetSigningKeysDir(std::string dir) { signing_keys_dir_ = std::move(dir); }
  // Starts the fetch workers. Sources upserted before are fetched at once.
  void Start();
  // Stops the workers, waiting for fetches (and their callbacks) in progress. Idempotent;
  // called by the owner.
  void Stop();
  // Tracks `source` (or updates its definition) and fetches it soon.
  void Upsert(const v1::Source& source);
  void Remove(const std::string& name);
  // Fetches the source's URL now (after a fetch of it in progress) and returns the
  // source's state afterwards. Needs Start().
  // Waits at most `wait` (a fetch has its own time limits, well inside the default).
  absl::StatusOr<v1::SourceInfo> SyncNow(const std::string& name,
                                         absl::Duration wait = absl::Minutes(10));
  // Queues a fetch of the source's URL now and returns at once (a webhook's push).
  absl::Status FetchSoon(const std::string& name);
  std::optional<v1::SourceInfo> Get(const std::string& name);
  std::vector<v1::SourceInfo> List();
  // The last snapshot delivered for `name`, if any.
  std::optional<SourceSnapshot> Snapshot(const std::string& name);
  // Whether `commit` of source `name`'s repository (`repo`, its snapshot's) may deploy for
  // it, for a commit other than the one the source delivers (an operator's `bundle rollback
  // --to`): "" when the source takes any commit, else who signed it or, when `ref` names a
  // tag of it, "tag REF by WHO" (as for the source's own commits); PermissionDenied naming
  // the commit and why not; NotFound when the source is not tracked.
  absl::StatusOr<std::string> VerifyForSource(const std::string& name, GitRepository& repo,
                                              const CommitInfo& commit, const std::string& ref);

 private:
  // The queue key (RepoKey) of source `name`; NotFound when it is not tracked.
  absl::StatusOr<std::string> KeyOf(const std::string& name);

  struct Tracked {
    v1::Source source;
    v1::SourceInfo info;
    std::optional<SourceSnapshot> snapshot;
  };

  // Fetches a repository (RepoKey) and resolves every source that uses it. An error
  // (the fetch, or a ref of one of them) makes the queue retry it with backoff.
  absl::Status FetchUrl(const std::string& key);
  // Deletes the clones of repositories no tracked source uses (GitRepositories::Retain).
  void ReleaseUnused();
  // Who signed `commit` with a key of folder `keys` (commit_signature.h), or, when `ref`
  // named a tag, "tag REF by WHO" when that annotated tag is so signed; PermissionDenied
  // naming the commit and why not. What was checked against the same keys is not checked
  // again.
  absl::StatusOr<std::string> VerifyCommit(GitRepository& repo, const CommitInfo& commit,
                                           const std::string& ref, const std::string& keys);
  absl::Duration IntervalLocked(const Tracked& t) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the sources_in_error gauge from what sources_ says now.
  void CountErrorsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  GitRepositories* const repos_;
  ControlPlaneMetrics& metrics_;
  const CommitCallback on_commit_;
  const ErrorCallback on_error_;
  const absl::Duration default_interval_;
  Clock* const clock_;

  std::string signing_keys_dir_;
  Mutex verified_mu_;
  // (commit, key folder, a digest of its keys) -> who signed; at most 4,096.
  std::map<std::string, std::string> verified_ ABSL_GUARDED_BY(verified_mu_);

  Mutex mu_;
  std::map<std::string, Tracked> sources_ ABSL_GUARDED_BY(mu_);
  WorkQueue queue_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_SOURCE_POLLER_H_
