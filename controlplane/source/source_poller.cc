#include "controlplane/source/source_poller.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/proto_time.h"

namespace gitfleet {
SourcePoller::SourcePoller(GitRepositories* repos, ControlPlaneMetrics& metrics,
                           CommitCallback on_commit, absl::Duration default_interval,
                           int fetch_threads)
    : repos_(repos),
      metrics_(metrics),
      on_commit_(std::move(on_commit)),
      default_interval_(default_interval),
      fetch_threads_(std::max(1, fetch_threads)) {}

SourcePoller::~SourcePoller() { Stop(); }

void SourcePoller::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  for (std::thread& fetcher : fetchers_) fetcher.join();
  fetchers_.clear();
}

void SourcePoller::Start() {
  thread_ = std::thread([this] { Run(); });
  for (int i = 0; i < fetch_threads_; ++i) fetchers_.emplace_back([this] { RunFetcher(); });
}

std::string RepoKey(const v1::Source& source) {
  return source.credentials_ref().empty()
             ? source.url()
             : absl::StrCat(source.credentials_ref(), "\n", source.url());
}

bool SourcePoller::BusyLocked(const std::string& url) const { return busy_.count(url) > 0; }

absl::Duration SourcePoller::IntervalLocked(const Tracked& t) const {
  if (t.source.poll_interval_seconds() > 0) {
    return absl::Seconds(t.source.poll_interval_seconds());
  }
  return default_interval_;
}

void SourcePoller::Upsert(const v1::Source& source) {
  MutexLock lock(&mu_);
  Tracked& t = sources_[source.name()];
  bool changed = t.source.url() != source.url() || t.source.ref() != source.ref() ||
                 t.source.credentials_ref() != source.credentials_ref();
  t.source = source;
  *t.info.mutable_source() = source;
  if (changed) {
    t.snapshot.reset();
    t.info.clear_commit();
  }
  t.backoff =
      std::make_unique<Backoff>(absl::Seconds(1), std::max(absl::Minutes(5), IntervalLocked(t)));
  t.next_fetch = absl::InfinitePast();
  wake_ = true;
}

void SourcePoller::Remove(const std::string& name) {
  MutexLock lock(&mu_);
  sources_.erase(name);
}

std::optional<v1::SourceInfo> SourcePoller::Get(const std::string& name) {
  MutexLock lock(&mu_);
  auto it = sources_.find(name);
  if (it == sources_.end()) return std::nullopt;
  return it->second.info;
}

std::vector<v1::SourceInfo> SourcePoller::List() {
  MutexLock lock(&mu_);
  std::vector<v1::SourceInfo> out;
  for (const auto& [name, t] : sources_) out.push_back(t.info);
  return out;
}

std::optional<SourceSnapshot> SourcePoller::Snapshot(const std::string& name) {
  MutexLock lock(&mu_);
  auto it = sources_.find(name);
  if (it == sources_.end()) return std::nullopt;
  return it->second.snapshot;
}

absl::StatusOr<v1::SourceInfo> SourcePoller::SyncNow(const std::string& name) {
  std::string url;
  {
    MutexLock lock(&mu_);
    auto it = sources_.find(name);
    if (it == sources_.end()) {
      return absl::NotFoundError(absl::StrCat("source \"", name, "\" not found"));
    }
    url = RepoKey(it->second.source);
  }
  FetchUrl(url);
  MutexLock lock(&mu_);
  auto it = sources_.find(name);
  if (it == sources_.end()) {
    return absl::NotFoundError(absl::StrCat("source \"", name, "\" was removed"));
  }
  return it->second.info;
}

void SourcePoller::Run() {
  while (true) {
    // Each pass ends by unlocking, which wakes the fetch threads for what it queued.
    MutexLock lock(&mu_);
    // A URL already queued or being fetched is not due again until that fetch is done
    // (which sets its next time and wakes this loop).
    auto earliest = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      absl::Time t = absl::InfiniteFuture();
      for (const auto& [name, s] : sources_) {
        if (!BusyLocked(RepoKey(s.source))) t = std::min(t, s.next_fetch);
      }
      return t;
    };
    auto ready = [this, &earliest]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || wake_ || earliest() <= absl::Now();
    };
    absl::Time deadline = std::min(earliest(), absl::Now() + absl::Seconds(5));
    mu_.AwaitWithDeadline(ready, deadline);
    if (stop_) return;
    wake_ = false;
    absl::Time now = absl::Now();
    for (const auto& [name, s] : sources_) {
      if (s.next_fetch <= now && busy_.insert(RepoKey(s.source)).second) {
        due_.push_back(RepoKey(s.source));
      }
    }
  }
}

void SourcePoller::RunFetcher() {
  while (true) {
    std::string url;
    {
      MutexLock lock(&mu_);
      mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !due_.empty(); });
      if (stop_) return;
      url = due_.front();
      due_.pop_front();
    }
    FetchUrl(url);
    MutexLock lock(&mu_);
    busy_.erase(url);
    wake_ = true;
  }
}

void SourcePoller::FetchUrl(const std::string& key) {
  absl::Time start = absl::Now();
  std::string url, credential;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, t] : sources_) {
      if (RepoKey(t.source) != key) continue;
      url = t.source.url();
      credential = t.source.credentials_ref();
      break;
    }
  }
  if (url.empty()) return;  // removed meanwhile
  absl::StatusOr<std::shared_ptr<GitRepository>> repo = repos_->ForUrl(url, credential);
  absl::Status fetched = repo.ok() ? (*repo)->Fetch() : repo.status();
  absl::Duration took = absl::Now() - start;
  metrics_.source_fetches.Add({{"result", fetched.ok() ? "ok" : "error"}}).Increment();
  metrics_.source_fetch_seconds.Add({}, metrics::ExponentialBuckets(0.005, 2, 14))
      .Observe(absl::ToDoubleSeconds(took));

  std::vector<std::pair<std::string, SourceSnapshot>> deliveries;
  {
    MutexLock lock(&mu_);
    absl::Time now = absl::Now();
    for (auto& [name, t] : sources_) {
      if (RepoKey(t.source) != key) continue;
      t.info.set_consecutive_failures(0);
      absl::Status status = fetched;
      absl::StatusOr<CommitInfo> commit;
      if (status.ok()) {
        commit = (*repo)->Resolve(t.source.ref());
        status = commit.status();
      }
      *t.info.mutable_fetched_time() = ToProtoTime(now);
      if (!status.ok()) {
        if (t.info.error() != status.message()) {
          GF_LOG(WARNING) << "source " << name << ": " << status.message();
        }
        t.info.set_error(std::string(status.message()));
        t.info.set_consecutive_failures(t.backoff->attempts() + 1);
        t.next_fetch = now + t.backoff->Next();
      } else {
        t.info.clear_error();
        t.backoff->Reset();
        t.next_fetch = now + IntervalLocked(t);
        if (!t.snapshot.has_value() || t.snapshot->commit.id != commit->id) {
          t.snapshot = SourceSnapshot{*commit, *repo};
          t.info.set_commit(commit->id);
          *t.info.mutable_committed_time() = ToProtoTime(commit->time);
          metrics_.source_commits.Add({}).Increment();
          GF_LOG(INFO) << "source " << name << ": " << t.source.ref() << " is at "
                       << commit->id.substr(0, 12) << " \"" << commit->summary << "\"";
          deliveries.emplace_back(name, *t.snapshot);
        }
      }
      *t.info.mutable_next_fetch_time() = ToProtoTime(t.next_fetch);
    }
  }
  for (const auto& [name, snapshot] : deliveries) on_commit_(name, snapshot);
}

}  // namespace gitfleet
