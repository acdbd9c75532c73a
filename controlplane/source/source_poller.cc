#include "controlplane/source/source_poller.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "controlplane/source/commit_signature.h"
#include "controlplane/source/git_credentials.h"

namespace gitfleet {

// PermissionDenied when a team's source (Source.scope_caller) names a URL its scope's
// repos= no longer covers (narrowed since it was defined): it is not fetched.
static absl::Status OutsideItsScope(const v1::Source& source) {
  if (source.scope_caller().empty() ||
      UrlPlainlyUnder(source.url(), {source.scope_repos().begin(), source.scope_repos().end()})) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "its URL is outside the repositories of caller ", source.scope_caller(), "'s scope (",
      source.scope_repos().empty() ? std::string("none") : absl::StrJoin(source.scope_repos(), ","),
      "), so it is not fetched; the bundles that read it stay at their last revision"));
}
namespace {

WorkQueueOptions QueueOptions(int fetch_threads, Clock* clock) {
  WorkQueueOptions options;
  options.clock = clock;
  options.name = "sources";
  options.workers = std::max(1, fetch_threads);
  options.retry_base = absl::Seconds(1);
  options.retry_max = absl::Minutes(5);
  return options;
}

// Queued to delete held clones: no source's RepoKey is empty (its URL is not).
constexpr char kReleaseKey[] = "";
constexpr absl::Duration kReleaseRetry = absl::Seconds(5);

}  // namespace

SourcePoller::SourcePoller(GitRepositories* repos, ControlPlaneMetrics& metrics,
                           CommitCallback on_commit, absl::Duration default_interval,
                           int fetch_threads, Clock* clock, ErrorCallback on_error)
    : repos_(repos),
      metrics_(metrics),
      on_commit_(std::move(on_commit)),
      on_error_(std::move(on_error)),
      default_interval_(default_interval),
      clock_(clock),
      queue_(QueueOptions(fetch_threads, clock), metrics.workqueue,
             [this](const std::string& key) { return FetchUrl(key); }) {}

SourcePoller::~SourcePoller() { Stop(); }

void SourcePoller::Stop() { queue_.Stop(); }

void SourcePoller::Start() { queue_.Start(); }

std::string RepoKey(const v1::Source& source) {
  std::string key = source.credentials_ref().empty()
                        ? source.url()
                        : absl::StrCat(source.credentials_ref(), "\n", source.url());
  if (source.submodules()) key += "\n+submodules";
  if (source.lfs()) key += "\n+lfs";
  if ((source.lfs() || source.submodules()) && source.scope_repos_size() > 0) {
    key += absl::StrCat("\n+scope:", absl::StrJoin(source.scope_repos(), ","));
  }
  return key;
}

absl::Duration SourcePoller::IntervalLocked(const Tracked& t) const {
  if (t.source.poll_interval_seconds() > 0) {
    return absl::Seconds(t.source.poll_interval_seconds());
  }
  return default_interval_;
}

void SourcePoller::Upsert(const v1::Source& source) {
  bool other_repository = false;
  {
    MutexLock lock(&mu_);
    Tracked& t = sources_[source.name()];
    // A source that starts to take only signed commits (or trusts other keys) delivers
    // nothing until its commit is checked against them: what it delivered before was not,
    // and a bundle added or rendered again meanwhile would render it.
    bool changed =
        t.source.url() != source.url() || t.source.ref() != source.ref() ||
        t.source.credentials_ref() != source.credentials_ref() ||
        t.source.submodules() != source.submodules() || t.source.lfs() != source.lfs() ||
        (!source.verify_commits().empty() && t.source.verify_commits() != source.verify_commits());
    other_repository = !t.source.url().empty() && RepoKey(t.source) != RepoKey(source);
    t.source = source;
    *t.info.mutable_source() = source;
    if (changed) {
      t.snapshot.reset();
      t.info.clear_commit();
      t.info.clear_branch();
      t.info.clear_signed_by();
    }
  }
  queue_.Add(RepoKey(source));
  if (other_repository) ReleaseUnused();
}

void SourcePoller::Remove(const std::string& name) {
  {
    MutexLock lock(&mu_);
    sources_.erase(name);
    CountErrorsLocked();
  }
  ReleaseUnused();
}

void SourcePoller::ReleaseUnused() {
  std::set<RepoRef> in_use;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, t] : sources_) {
      in_use.insert({t.source.url(), t.source.credentials_ref(), t.source.submodules(),
                     t.source.lfs(),
                     t.source.lfs() || t.source.submodules()
                         ? std::vector<std::string>(t.source.scope_repos().begin(),
                                                    t.source.scope_repos().end())
                         : std::vector<std::string>()});
    }
  }
  repos_->Retain(in_use);
  // A clone a fetch or render still holds goes once it lets go: at a later fetch of any
  // source, or, with none left to fetch, here again in a while (the key no source has).
  if (repos_->RetainPending()) queue_.AddAfter(kReleaseKey, kReleaseRetry);
}

void SourcePoller::CountErrorsLocked() {
  int failing = 0;
  for (const auto& [name, t] : sources_) failing += t.info.error().empty() ? 0 : 1;
  metrics_.sources_in_error.Set(failing);
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

absl::StatusOr<std::string> SourcePoller::KeyOf(const std::string& name) {
  MutexLock lock(&mu_);
  auto it = sources_.find(name);
  if (it == sources_.end()) {
    return absl::NotFoundError(absl::StrCat("source \"", name, "\" not found"));
  }
  return RepoKey(it->second.source);
}

absl::StatusOr<v1::SourceInfo> SourcePoller::SyncNow(const std::string& name, absl::Duration wait) {
  absl::StatusOr<std::string> found = KeyOf(name);
  if (!found.ok()) return found.status();
  const std::string& key = *found;
  if (!queue_.WaitFor(key, queue_.Add(key), wait)) {
    return absl::DeadlineExceededError(
        absl::StrCat("source \"", name, "\": no fetch finished within ", absl::FormatDuration(wait),
                     "; it goes on, and `source list` shows how it ends"));
  }
  MutexLock lock(&mu_);
  auto it = sources_.find(name);
  if (it == sources_.end()) {
    return absl::NotFoundError(absl::StrCat("source \"", name, "\" was removed"));
  }
  return it->second.info;
}

absl::Status SourcePoller::FetchSoon(const std::string& name) {
  absl::StatusOr<std::string> key = KeyOf(name);
  if (!key.ok()) return key.status();
  queue_.Add(*key);
  return absl::OkStatus();
}

absl::StatusOr<std::string> SourcePoller::VerifyForSource(const std::string& name,
                                                          GitRepository& repo,
                                                          const CommitInfo& commit,
                                                          const std::string& ref) {
  std::string keys;
  {
    MutexLock lock(&mu_);
    auto it = sources_.find(name);
    if (it == sources_.end())
      return absl::NotFoundError(absl::StrCat("source ", name, " not found"));
    keys = it->second.source.verify_commits();
  }
  if (keys.empty()) return std::string();
  return VerifyCommit(repo, commit, ref, keys);
}

absl::StatusOr<std::string> SourcePoller::VerifyCommit(GitRepository& repo,
                                                       const CommitInfo& resolved,
                                                       const std::string& ref,
                                                       const std::string& keys_name) {
  const std::string& commit = resolved.id;
  // A tag, when the ref resolved to no branch and is not a commit id itself.
  const bool tag =
      resolved.branch.empty() && !ref.empty() && ref != "HEAD" && !absl::StartsWith(commit, ref);
  const std::string wanted =
      absl::StrCat(" (this source takes only commits signed by a key in ", keys_name, ")");
  absl::StatusOr<SigningKeys> keys = LoadSigningKeys(signing_keys_dir_, keys_name);
  if (!keys.ok()) return keys.status();
  const std::string cache_key =
      absl::StrCat(commit, "/", keys_name, "/", crypto::Sha256(keys->pgp_keyring),
                   crypto::Sha256(keys->allowed_signers));
  const std::string tag_cache_key = absl::StrCat(cache_key, "/tag ", ref);
  {
    MutexLock lock(&verified_mu_);
    if (auto it = verified_.find(cache_key); it != verified_.end()) return it->second;
    if (auto it = verified_.find(tag_cache_key); tag && it != verified_.end()) return it->second;
  }
  auto remember = [&](const std::string& key, const std::string& signer) {
    MutexLock lock(&verified_mu_);
    if (verified_.size() >= 4096) verified_.clear();
    verified_[key] = signer;
  };
  absl::Status refused;
  absl::StatusOr<GitRepository::Signed> signed_commit = repo.CommitSignature(commit);
  if (signed_commit.ok()) {
    absl::StatusOr<std::string> signer =
        VerifyCommitSignature(*keys, signed_commit->signature, signed_commit->data);
    if (signer.ok()) {
      GF_LOG(INFO) << "commit " << commit.substr(0, 12) << " is signed by " << *signer << " ("
                   << keys_name << ")";
      remember(cache_key, *signer);
      return *signer;
    }
    refused = absl::Status(signer.status().code(),
                           absl::StrCat("commit ", commit.substr(0, 12),
                                        " is not taken: ", signer.status().message()));
  } else if (absl::IsNotFound(signed_commit.status())) {
    refused = absl::PermissionDeniedError(
        absl::StrCat("commit ", commit.substr(0, 12), " is not signed"));
  } else {
    return signed_commit.status();
  }
  if (tag) {
    // A release manager's signed tag vouches for the commit it names.
    absl::StatusOr<GitRepository::Signed> signed_tag = repo.TagSignature(ref, commit);
    if (signed_tag.ok()) {
      absl::StatusOr<std::string> signer =
          VerifyCommitSignature(*keys, signed_tag->signature, signed_tag->data);
      if (signer.ok()) {
        GF_LOG(INFO) << "tag " << ref << " of commit " << commit.substr(0, 12) << " is signed by "
                     << *signer << " (" << keys_name << ")";
        const std::string vouched = absl::StrCat("tag ", ref, " by ", *signer);
        remember(tag_cache_key, vouched);
        return vouched;
      }
      return absl::Status(refused.code(),
                          absl::StrCat(refused.message(), ", and tag ", ref,
                                       " is not taken: ", signer.status().message(), wanted));
    }
    if (!absl::IsNotFound(signed_tag.status())) return signed_tag.status();
    return absl::Status(refused.code(),
                        absl::StrCat(refused.message(), ", nor is tag ", ref, " signed", wanted));
  }
  return absl::Status(refused.code(), absl::StrCat(refused.message(), wanted));
}

absl::Status SourcePoller::FetchUrl(const std::string& key) {
  absl::Time start = clock_->Now();
  std::string url, credential;
  bool submodules = false;
  bool lfs = false;
  std::vector<std::string> scope;
  std::set<std::string> refs;                              // of the sources that read it
  std::set<std::pair<std::string, std::string>> verified;  // (ref, signing keys) asked for
  bool wanted = false;                                     // by a source its scope lets read it
  {
    MutexLock lock(&mu_);
    for (const auto& [name, t] : sources_) {
      if (RepoKey(t.source) != key) continue;
      wanted |= OutsideItsScope(t.source).ok();
      url = t.source.url();
      credential = t.source.credentials_ref();
      submodules = t.source.submodules();
      lfs = t.source.lfs();
      scope.assign(t.source.scope_repos().begin(), t.source.scope_repos().end());
      refs.insert(t.source.ref());
      if (!t.source.verify_commits().empty()) {
        verified.emplace(t.source.ref(), t.source.verify_commits());
      }
    }
  }
  if (url.empty()) {  // removed meanwhile: not queued again
    if (repos_->RetainPending()) ReleaseUnused();
    return absl::OkStatus();
  }
  absl::StatusOr<std::shared_ptr<GitRepository>> repo =
      wanted ? repos_->ForUrl(url, credential, submodules, lfs, scope)
             : absl::StatusOr<std::shared_ptr<GitRepository>>(
                   absl::PermissionDeniedError("no source may read it"));
  absl::Status fetched = repo.ok() ? (*repo)->Fetch() : repo.status();
  // Resolved outside the lock: with submodules, a resolve fetches those its commit lacks.
  std::map<std::string, absl::StatusOr<CommitInfo>> resolved;
  if (fetched.ok()) {
    for (const std::string& ref : refs) resolved.emplace(ref, (*repo)->Resolve(ref));
  }
  // Signatures checked outside the lock too (gpgv, ssh-keygen): per ref and key folder.
  std::map<std::pair<std::string, std::string>, absl::StatusOr<std::string>> signatures;
  for (const auto& [ref, keys] : verified) {
    auto found = resolved.find(ref);
    if (found == resolved.end() || !found->second.ok()) continue;
    signatures.emplace(std::make_pair(ref, keys), VerifyCommit(**repo, *found->second, ref, keys));
  }
  absl::Duration took = clock_->Now() - start;
  metrics_.source_fetches.Add({{"result", fetched.ok() ? "ok" : "error"}}).Increment();
  metrics_.source_fetch_seconds.Add({}, metrics::ExponentialBuckets(0.005, 2, 14))
      .Observe(absl::ToDoubleSeconds(took));

  // The queue counts this run's failure after it returns: it will be failure n + 1.
  const int failures = queue_.Failures(key) + 1;
  absl::Status result;
  absl::Duration next = absl::InfiniteDuration();
  std::vector<std::pair<std::string, SourceSnapshot>> deliveries;
  std::vector<std::pair<std::string, std::string>> error_changes;  // source, error now
  {
    MutexLock lock(&mu_);
    absl::Time now = clock_->Now();
    std::vector<Tracked*> users;
    for (auto& [name, t] : sources_) {
      if (RepoKey(t.source) != key) continue;
      auto found = resolved.find(t.source.ref());
      // Added, or its ref set, meanwhile: Upsert queued another fetch, which resolves it.
      if (fetched.ok() && found == resolved.end()) continue;
      users.push_back(&t);
      absl::Status status = fetched;
      if (absl::Status held = OutsideItsScope(t.source); !held.ok()) status = held;
      absl::StatusOr<CommitInfo> commit;
      if (status.ok()) {
        commit = found->second;
        status = commit.status();
      }
      if (status.ok() && !t.source.verify_commits().empty()) {
        // A commit no trusted key signed is not delivered: bundles keep what they run.
        auto checked = signatures.find({t.source.ref(), t.source.verify_commits()});
        status =
            checked != signatures.end()
                ? checked->second.status()
                : absl::UnavailableError("its commit's signature is checked at the next fetch");
        if (status.ok()) t.info.set_signed_by(*checked->second);
      } else {
        t.info.clear_signed_by();
      }
      *t.info.mutable_fetched_time() = ToProtoTime(now);
      if (!status.ok()) {
        if (t.info.error() != status.message()) {
          GF_LOG(WARNING) << "source " << name << ": " << status.message();
          error_changes.emplace_back(name, std::string(status.message()));
        }
        t.info.set_error(std::string(status.message()));
        if (result.ok()) result = status;
        continue;
      }
      if (!t.info.error().empty()) {
        GF_LOG(INFO) << "source " << name << ": fetched and resolved again";
        error_changes.emplace_back(name, "");
      }
      t.info.clear_error();
      t.info.set_consecutive_failures(0);
      next = std::min(next, IntervalLocked(t));
      // A new branch at the same commit is news too: sources that read one repository at
      // one branch wait for each other's renders (Controller::WaitsForSiblings).
      if (!t.snapshot.has_value() || t.snapshot->commit.id != commit->id ||
          t.snapshot->commit.branch != commit->branch) {
        t.snapshot = SourceSnapshot{*commit, *repo};
        t.info.set_commit(commit->id);
        t.info.set_branch(commit->branch);
        *t.info.mutable_committed_time() = ToProtoTime(commit->time);
        metrics_.source_commits.Add({}).Increment();
        GF_LOG(INFO) << "source " << name << ": "
                     << (!t.source.ref().empty() ? t.source.ref()
                         : commit->branch.empty()
                             ? std::string("the default branch")
                             : absl::StrCat(commit->branch, " (the default branch)"))
                     << " is at " << commit->id.substr(0, 12) << " \"" << commit->summary << "\"";
        deliveries.emplace_back(name, *t.snapshot);
      }
    }
    // One schedule per URL: a failure anywhere retries it with backoff (the sources that
    // resolved are fetched again sooner than their interval; that costs one fetch).
    if (!result.ok()) next = queue_.RetryDelay(failures);
    for (Tracked* t : users) {
      if (!t->info.error().empty()) t->info.set_consecutive_failures(failures);
      *t->info.mutable_next_fetch_time() = ToProtoTime(now + next);
    }
    CountErrorsLocked();
  }
  if (on_error_) {
    for (const auto& [name, error] : error_changes) on_error_(name, error);
  }
  for (const auto& [name, snapshot] : deliveries) on_commit_(name, snapshot);
  if (result.ok() && next < absl::InfiniteDuration()) queue_.AddAfter(key, next);
  // The first fetch after a start deletes clones no source uses any more; later ones, a
  // clone a fetch or render still held when its source went (this one included).
  deliveries.clear();
  if (repo.ok()) repo->reset();
  if (repos_->RetainPending()) ReleaseUnused();
  return result;
}

}  // namespace gitfleet
