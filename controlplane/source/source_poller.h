#ifndef GITFLEET_CONTROLPLANE_SOURCE_SOURCE_POLLER_H_
#define GITFLEET_CONTROLPLANE_SOURCE_SOURCE_POLLER_H_

// Keeps every source's ref up to date: fetches each URL on its poll interval (once per
// URL however many sources use it), retries failures with backoff, and reports each
// new commit. Due URLs are fetched by a few threads at once, one fetch per URL at a
// time, so a slow or hanging Git server delays only the sources that use it.
//
//   SourcePoller poller(repos, metrics, [&](const std::string& source,
//                                           const SourceSnapshot& snap) { ... });
//   poller.Upsert(source);  // fetches soon
//   poller.Start();
//
// Thread-safe. The callback runs on a fetch thread or a SyncNow caller's, never with the
// poller's lock held; callbacks for different URLs may run at once.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/sync.h"
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

  SourcePoller(GitRepositories* repos, ControlPlaneMetrics& metrics, CommitCallback on_commit,
               absl::Duration default_interval = absl::Seconds(30), int fetch_threads = 4);
  ~SourcePoller();  // Stop()

  void Start();
  // Stops the threads, waiting for fetches (and their callbacks) in progress. Idempotent;
  // called by the owner.
  void Stop();
  // Tracks `source` (or updates its definition) and fetches it soon.
  void Upsert(const v1::Source& source);
  void Remove(const std::string& name);
  // Fetches the source's URL now and returns its state afterwards.
  absl::StatusOr<v1::SourceInfo> SyncNow(const std::string& name);
  std::optional<v1::SourceInfo> Get(const std::string& name);
  std::vector<v1::SourceInfo> List();
  // The last snapshot delivered for `name`, if any.
  std::optional<SourceSnapshot> Snapshot(const std::string& name);

 private:
  struct Tracked {
    v1::Source source;
    v1::SourceInfo info;
    std::optional<SourceSnapshot> snapshot;
    absl::Time next_fetch = absl::InfinitePast();
    std::unique_ptr<Backoff> backoff;
  };

  void Run();
  void RunFetcher();
  // Whether a repository (RepoKey) waits in the queue or is being fetched.
  bool BusyLocked(const std::string& key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fetches a repository (RepoKey) and resolves every source that uses it.
  void FetchUrl(const std::string& key);
  absl::Duration IntervalLocked(const Tracked& t) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  GitRepositories* const repos_;
  ControlPlaneMetrics& metrics_;
  const CommitCallback on_commit_;
  const absl::Duration default_interval_;
  const int fetch_threads_;

  Mutex mu_;
  std::map<std::string, Tracked> sources_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::string> due_ ABSL_GUARDED_BY(mu_);  // URLs waiting for a fetch thread
  std::set<std::string> busy_ ABSL_GUARDED_BY(mu_);   // URLs in due_ or being fetched
  std::thread thread_;
  std::vector<std::thread> fetchers_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_SOURCE_POLLER_H_
