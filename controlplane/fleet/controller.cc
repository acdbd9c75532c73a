#include "controlplane/fleet/controller.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "controlplane/fleet/status.h"

namespace gitfleet {
namespace {

constexpr char kSources[] = "sources";
constexpr char kBundles[] = "bundles";
constexpr char kBundleRecords[] = "bundle_records";
constexpr char kRevisions[] = "revisions";

absl::Status ValidateUrl(const std::string& url) {
  if (url.empty()) return absl::InvalidArgumentError("source URL is empty");
  for (const char* scheme : {"file://", "git://", "http://", "https://", "ssh://"}) {
    if (absl::StartsWith(url, scheme) && url.size() > strlen(scheme)) return absl::OkStatus();
  }
  if (url[0] == '/') return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "source URL \"", url, "\" must start with file://, git://, http://, https://, ssh:// or /"));
}

absl::StatusOr<std::string> CleanPath(const std::string& path) {
  if (!path.empty() && path[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("bundle path \"", path, "\" must be relative to the repository root"));
  }
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("bundle path \"", path, "\" may not contain \"..\""));
    }
    parts.emplace_back(part);
  }
  return absl::StrJoin(parts, "/");
}

bool SameMessage(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace

absl::Status ValidateName(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= 63;
  for (char c : name) {
    ok &= (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  }
  ok &= !name.empty() && name.front() != '-' && name.back() != '-';
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " name \"", name,
        "\" must be 1-63 lower-case letters, digits or '-', starting and ending with a "
        "letter or digit"));
  }
  return absl::OkStatus();
}

Controller::Controller(Store* store, GitRepositories* repos, Hub* hub, ControlPlaneMetrics& metrics,
                       ControllerOptions options)
    : store_(store),
      hub_(hub),
      metrics_(metrics),
      options_(options),
      plain_(options.render_limits),
      kustomize_(options.kustomize),
      jsonnet_(options.render_limits),
      helm_(options.helm),
      poller_(
          repos, metrics,
          [this](const std::string& source, const SourceSnapshot& snapshot) {
            OnSourceCommit(source, snapshot);
          },
          options.default_poll_interval) {}

absl::Status Controller::Load() {
  absl::StatusOr<std::vector<Store::Entry>> sources = store_->List(kSources);
  if (!sources.ok()) return sources.status();
  absl::StatusOr<std::vector<Store::Entry>> bundles = store_->List(kBundles);
  if (!bundles.ok()) return bundles.status();
  MutexLock lock(&mu_);
  for (const Store::Entry& entry : *sources) {
    v1::Source source;
    if (!source.ParseFromString(entry.value)) {
      return absl::DataLossError(absl::StrCat("stored source ", entry.key, " is corrupt"));
    }
    sources_[source.name()] = source;
    poller_.Upsert(source);
  }
  for (const Store::Entry& entry : *bundles) {
    BundleState state;
    if (!state.definition.ParseFromString(entry.value)) {
      return absl::DataLossError(absl::StrCat("stored bundle ", entry.key, " is corrupt"));
    }
    absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(state.definition.selector());
    if (!selector.ok()) return selector.status();
    state.selector = *selector;
    state.generation = next_generation_++;
    absl::StatusOr<std::string> record = store_->Get(kBundleRecords, entry.key);
    if (record.ok() && state.record.ParseFromString(*record) && !state.record.revision().empty()) {
      absl::StatusOr<std::string> data =
          store_->Get(kRevisions, Revision::RevisionKey(entry.key, state.record.revision()));
      v1::RevisionRecord rev_record;
      if (data.ok() && rev_record.ParseFromString(*data)) {
        absl::StatusOr<std::shared_ptr<const Revision>> rev = Revision::FromRecord(rev_record);
        if (rev.ok()) {
          state.current = *rev;
        } else {
          GF_LOG(ERROR) << rev.status();
        }
      }
    }
    hub_->SetBundle(entry.key, state.selector, state.current);
    bundles_[entry.key] = std::move(state);
  }
  GF_LOG(INFO) << "loaded " << sources_.size() << " sources and " << bundles_.size() << " bundles";
  return absl::OkStatus();
}

void Controller::Start() { poller_.Start(); }

absl::StatusOr<v1::SourceInfo> Controller::AddSource(const v1::Source& input, bool replace) {
  v1::Source source = input;
  if (absl::Status s = ValidateName("source", source.name()); !s.ok()) return s;
  if (absl::Status s = ValidateUrl(source.url()); !s.ok()) return s;
  if (source.ref().find_first_of(" \t\n~^:?*[\\") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("ref \"", source.ref(), "\" is not a valid branch, tag or commit"));
  }
  if (!source.credentials_ref().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "source \"", source.name(), "\": credentials (\"", source.credentials_ref(),
        "\") are not supported yet; use a URL that needs none (file://, git://, public "
        "https://)"));
  }
  if (source.poll_interval_seconds() < 0) {
    return absl::InvalidArgumentError("poll interval must not be negative");
  }
  if (source.ref().empty()) source.set_ref("main");
  {
    MutexLock lock(&mu_);
    auto it = sources_.find(source.name());
    if (it != sources_.end() && !SameMessage(it->second, source) && !replace) {
      return absl::AlreadyExistsError(absl::StrCat("source \"", source.name(),
                                                   "\" already exists with a different definition "
                                                   "(remove it first, or replace it)"));
    }
    if (it == sources_.end() || !SameMessage(it->second, source)) {
      absl::Status stored =
          store_->Apply({Store::Put(kSources, source.name(), source.SerializeAsString())});
      if (!stored.ok()) return stored;
      sources_[source.name()] = source;
      poller_.Upsert(source);
    }
  }
  return poller_.SyncNow(source.name());
}

absl::Status Controller::RemoveSource(const std::string& name) {
  MutexLock lock(&mu_);
  if (sources_.count(name) == 0) {
    return absl::NotFoundError(absl::StrCat("source \"", name, "\" not found"));
  }
  std::vector<std::string> users;
  for (const auto& [bundle, state] : bundles_) {
    if (state.definition.source() == name) users.push_back(bundle);
  }
  if (!users.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("source \"", name, "\" is used by bundles ",
                                                      absl::StrJoin(users, ", "),
                                                      "; remove them first"));
  }
  absl::Status stored = store_->Apply({Store::Delete(kSources, name)});
  if (!stored.ok()) return stored;
  sources_.erase(name);
  poller_.Remove(name);
  return absl::OkStatus();
}

absl::StatusOr<v1::SourceInfo> Controller::SyncSource(const std::string& name) {
  return poller_.SyncNow(name);
}

std::vector<v1::SourceInfo> Controller::ListSources() { return poller_.List(); }

absl::StatusOr<v1::BundleInfo> Controller::AddBundle(const v1::Bundle& input, bool replace) {
  v1::Bundle bundle = input;
  if (absl::Status s = ValidateName("bundle", bundle.name()); !s.ok()) return s;
  absl::StatusOr<std::string> path = CleanPath(bundle.path());
  if (!path.ok()) return path.status();
  bundle.set_path(*path);
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(bundle.selector());
  if (!selector.ok()) return selector.status();
  bundle.set_selector(selector->text());
  if (bundle.engine() != "" && bundle.engine() != "plain" && bundle.engine() != "kustomize" &&
      bundle.engine() != "jsonnet" && bundle.engine() != "helm") {
    return absl::InvalidArgumentError(
        absl::StrCat("engine \"", bundle.engine(),
                     "\" is not one of plain, kustomize, jsonnet, helm (or empty to detect)"));
  }
  if (!bundle.target_namespace().empty()) {
    if (absl::Status s = ValidateName("target namespace", bundle.target_namespace()); !s.ok()) {
      return s;
    }
  }
  {
    MutexLock lock(&mu_);
    if (sources_.count(bundle.source()) == 0) {
      return absl::NotFoundError(absl::StrCat("bundle \"", bundle.name(), "\": source \"",
                                              bundle.source(), "\" not found"));
    }
    auto it = bundles_.find(bundle.name());
    if (it != bundles_.end() && SameMessage(it->second.definition, bundle)) {
      return InfoLocked(it->second);
    }
    if (it != bundles_.end() && !replace) {
      return absl::AlreadyExistsError(absl::StrCat("bundle \"", bundle.name(),
                                                   "\" already exists with a different definition "
                                                   "(remove it first, or replace it)"));
    }
    absl::Status stored =
        store_->Apply({Store::Put(kBundles, bundle.name(), bundle.SerializeAsString())});
    if (!stored.ok()) return stored;
    BundleState& state = bundles_[bundle.name()];
    state.definition = bundle;
    state.selector = *selector;
    state.generation = next_generation_++;
    state.record.clear_read_paths();  // the definition changed: render again
    state.record.clear_read_ids();
    hub_->SetBundle(bundle.name(), state.selector, state.current);
  }
  std::optional<SourceSnapshot> snapshot = poller_.Snapshot(bundle.source());
  if (snapshot.has_value()) RenderBundle(bundle.name(), *snapshot);
  MutexLock lock(&mu_);
  auto it = bundles_.find(bundle.name());
  if (it == bundles_.end()) {
    return absl::AbortedError(absl::StrCat("bundle \"", bundle.name(), "\" was removed"));
  }
  return InfoLocked(it->second);
}

absl::Status Controller::RemoveBundle(const std::string& name) {
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) {
      return absl::NotFoundError(absl::StrCat("bundle \"", name, "\" not found"));
    }
    std::vector<Store::Write> writes = {Store::Delete(kBundles, name),
                                        Store::Delete(kBundleRecords, name)};
    for (const std::string& rev : it->second.record.recent_revisions()) {
      writes.push_back(Store::Delete(kRevisions, Revision::RevisionKey(name, rev)));
    }
    absl::Status stored = store_->Apply(writes);
    if (!stored.ok()) return stored;
    bundles_.erase(it);
  }
  hub_->RemoveBundle(name);
  return absl::OkStatus();
}

std::vector<v1::BundleInfo> Controller::ListBundles() {
  std::vector<ClusterView> clusters = hub_->Clusters();
  MutexLock lock(&mu_);
  std::vector<v1::BundleInfo> out;
  for (const auto& [name, state] : bundles_) {
    v1::BundleInfo info = InfoLocked(state);
    int targets = 0;
    for (const ClusterView& cluster : clusters) {
      LabelMap labels(cluster.info.labels().begin(), cluster.info.labels().end());
      targets += state.selector.Matches(labels);
    }
    info.set_target_clusters(targets);
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<v1::ClusterInfo> Controller::ListClusters() {
  std::vector<v1::ClusterInfo> out;
  for (ClusterView& view : hub_->Clusters()) out.push_back(std::move(view.info));
  return out;
}

std::vector<v1::BundleStatus> Controller::GetStatus(const std::string& cluster_filter,
                                                    const std::string& bundle_filter) {
  std::vector<ClusterView> clusters = hub_->Clusters();
  MutexLock lock(&mu_);
  std::vector<v1::BundleStatus> out;
  for (const ClusterView& cluster : clusters) {
    if (!cluster_filter.empty() && cluster.info.name() != cluster_filter) continue;
    LabelMap labels(cluster.info.labels().begin(), cluster.info.labels().end());
    for (const auto& [name, state] : bundles_) {
      if (!bundle_filter.empty() && name != bundle_filter) continue;
      if (!state.selector.Matches(labels)) continue;
      auto report = cluster.reports.find(name);
      out.push_back(ComposeStatus(cluster.info, InfoLocked(state), state.record.committed_time(),
                                  state.record.seen_time(),
                                  report == cluster.reports.end() ? nullptr : &report->second));
    }
  }
  return out;
}

v1::BundleInfo Controller::InfoLocked(const BundleState& state) const {
  v1::BundleInfo info;
  *info.mutable_bundle() = state.definition;
  if (state.current != nullptr) {
    info.set_revision(state.current->id);
    info.set_object_count(static_cast<int32_t>(state.current->objects.size()));
  }
  info.set_commit(state.record.commit());
  info.set_error(state.record.error());
  info.set_error_commit(state.record.error_commit());
  info.set_engine(state.record.engine());
  return info;
}

void Controller::OnSourceCommit(const std::string& source, const SourceSnapshot& snapshot) {
  std::vector<std::string> names;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, state] : bundles_) {
      if (state.definition.source() == source) names.push_back(name);
    }
  }
  for (const std::string& name : names) RenderBundle(name, snapshot);
}

Renderer* Controller::RendererFor(const std::string& engine) {
  if (engine == "plain") return &plain_;
  if (engine == "kustomize") return &kustomize_;
  if (engine == "jsonnet") return &jsonnet_;
  if (engine == "helm") return &helm_;
  return nullptr;
}

absl::StatusOr<std::shared_ptr<const std::vector<RepoFile>>> Controller::RepositoryFiles(
    const SourceSnapshot& snapshot) {
  std::string key = absl::StrCat(snapshot.repo->url(), "@", snapshot.commit.id);
  MutexLock lock(&repository_files_mu_);
  if (repository_files_key_ != key || repository_files_ == nullptr) {
    absl::StatusOr<std::vector<RepoFile>> files = snapshot.repo->ReadTree(snapshot.commit.id, "");
    if (!files.ok()) return files.status();
    repository_files_ = std::make_shared<const std::vector<RepoFile>>(*std::move(files));
    repository_files_key_ = key;
  }
  return repository_files_;
}

void Controller::RenderBundle(const std::string& name, const SourceSnapshot& snapshot) {
  v1::Bundle definition;
  uint64_t generation;
  v1::BundleRecord last;
  bool have_current;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return;
    definition = it->second.definition;
    generation = it->second.generation;
    last = it->second.record;
    have_current = it->second.current != nullptr;
  }
  const CommitInfo& commit = snapshot.commit;
  absl::Time start = absl::Now();
  // The cache: if every path the last render read has the same object id at this commit,
  // the render would be the same. The engine is decided by the bundle path's files, and
  // every engine lists the bundle path itself, so an unchanged path means the same engine.
  std::vector<std::string> read_paths(last.read_paths().begin(), last.read_paths().end());
  absl::StatusOr<std::vector<std::string>> ids =
      read_paths.empty() ? absl::StatusOr<std::vector<std::string>>(std::vector<std::string>())
                         : snapshot.repo->EntryIds(commit.id, read_paths);
  absl::Status status = ids.status();
  bool cache_hit =
      ids.ok() && have_current && !read_paths.empty() &&
      std::equal(ids->begin(), ids->end(), last.read_ids().begin(), last.read_ids().end());
  std::string engine = cache_hit ? last.engine() : definition.engine();
  std::shared_ptr<const Revision> revision;
  if (ids.ok() && !cache_hit) {
    read_paths.clear();
    absl::StatusOr<std::vector<RepoFile>> files =
        snapshot.repo->ReadTree(commit.id, definition.path());
    if (files.ok() && engine.empty()) engine = DetectEngine(definition.path(), *files);
    Renderer* renderer = RendererFor(engine);
    absl::StatusOr<ObjectSet> objects = absl::UnknownError("not rendered");
    if (!files.ok()) {
      objects = files.status();
    } else if (renderer == nullptr) {
      objects = absl::UnimplementedError(absl::StrCat("engine ", engine, " (", definition.path(),
                                                      ") is not supported yet; the bundle keeps "
                                                      "its last good revision"));
    } else {
      if (renderer->ReadsOutsidePath()) {
        absl::StatusOr<std::shared_ptr<const std::vector<RepoFile>>> all =
            RepositoryFiles(snapshot);
        if (all.ok()) {
          files = **all;
        } else {
          files = all.status();
        }
      }
      objects = files.ok()
                    ? renderer->Render({name, definition.path(), *std::move(files), &read_paths})
                    : absl::StatusOr<ObjectSet>(files.status());
    }
    if (objects.ok()) ids = snapshot.repo->EntryIds(commit.id, read_paths);
    if (objects.ok() && !ids.ok()) objects = ids.status();
    status = objects.status();
    if (objects.ok()) {
      revision = Revision::Build(name, commit.id, commit.time, *std::move(objects),
                                 definition.sync(), definition.target_namespace());
    }
  }
  const std::string engine_label = engine.empty() ? "unknown" : engine;
  metrics_.render_seconds.Add({{"engine", engine_label}}, metrics::ExponentialBuckets(0.001, 2, 16))
      .Observe(absl::ToDoubleSeconds(absl::Now() - start));
  if (cache_hit) {
    metrics_.render_cache_hits.Add({}).Increment();
  } else {
    metrics_.renders.Add({{"engine", engine_label}, {"result", status.ok() ? "ok" : "error"}})
        .Increment();
  }

  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  if (it == bundles_.end() || it->second.generation != generation) return;  // superseded
  BundleState& state = it->second;
  v1::BundleRecord record = state.record;
  if (record.commit() != commit.id) *record.mutable_seen_time() = ToProtoTime(absl::Now());
  std::vector<Store::Write> writes;
  if (!status.ok()) {
    record.set_error(std::string(status.message()));
    record.set_error_commit(commit.id);
    if (state.record.error() != record.error()) {
      GF_LOG(WARNING) << "bundle " << name << " failed to render at " << commit.id.substr(0, 12)
                      << ": " << status.message();
    }
  } else {
    record.clear_error();
    record.clear_error_commit();
    record.set_commit(commit.id);
    *record.mutable_committed_time() = ToProtoTime(commit.time);
    if (revision != nullptr) {
      record.set_engine(engine);
      record.clear_read_paths();
      record.clear_read_ids();
      for (const std::string& path : read_paths) record.add_read_paths(path);
      for (const std::string& id : *ids) record.add_read_ids(id);
      record.set_revision(revision->id);
      if (state.current == nullptr || state.current->id != revision->id) {
        writes.push_back(
            Store::Put(kRevisions, revision->key(), revision->ToRecord().SerializeAsString()));
        record.mutable_recent_revisions()->Add()->assign(revision->id);
        std::rotate(record.mutable_recent_revisions()->rbegin(),
                    record.mutable_recent_revisions()->rbegin() + 1,
                    record.mutable_recent_revisions()->rend());
        while (record.recent_revisions_size() > options_.revisions_kept) {
          writes.push_back(Store::Delete(
              kRevisions, Revision::RevisionKey(
                              name, record.recent_revisions(record.recent_revisions_size() - 1))));
          record.mutable_recent_revisions()->RemoveLast();
        }
        GF_LOG(INFO) << "bundle " << name << " rendered " << revision->objects.size()
                     << " objects at " << commit.id.substr(0, 12) << ": revision "
                     << revision->id.substr(0, 12);
      }
    }
  }
  writes.push_back(Store::Put(kBundleRecords, name, record.SerializeAsString()));
  absl::Status stored = store_->Apply(writes);
  if (!stored.ok()) {
    GF_LOG(ERROR) << "bundle " << name << ": cannot store render: " << stored;
    return;
  }
  state.record = record;
  if (revision != nullptr) {
    if (state.current == nullptr || state.current->id != revision->id) {
      state.current = revision;
      hub_->SetBundle(name, state.selector, revision);
    }
  }
}

}  // namespace gitfleet
