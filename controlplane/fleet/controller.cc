#include "controlplane/fleet/controller.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/model/cluster_group.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "controlplane/fleet/status.h"
#include "controlplane/render/file_patterns.h"
#include "controlplane/render/fleet_names.h"
#include "controlplane/render/helm_renderer.h"
#include "controlplane/render/remote_bases.h"
#include "controlplane/render/sops.h"
#include "controlplane/source/commit_signature.h"
#include "controlplane/source/git_credentials.h"
#include "controlplane/source/repo_url.h"
#include "controlplane/store/revisions.h"
#include "google/protobuf/util/message_differencer.h"

namespace gitfleet {
namespace {

// The top-level fields in which two definitions differ, by their proto names ("values,
// rollout"), the generation aside: what an operator's replacement changed, for its event.
std::string ChangedFields(const google::protobuf::Message& before,
                          const google::protobuf::Message& after) {
  const google::protobuf::Descriptor* type = before.GetDescriptor();
  std::vector<std::string> changed;
  for (int i = 0; i < type->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = type->field(i);
    if (field->name() == "generation") continue;
    google::protobuf::util::MessageDifferencer differ;
    for (int j = 0; j < type->field_count(); ++j) {
      if (j != i) differ.IgnoreField(type->field(j));
    }
    if (!differ.Compare(before, after)) changed.push_back(field->name());
  }
  return changed.empty() ? "nothing" : absl::StrJoin(changed, ", ");
}

constexpr char kSources[] = "sources";
constexpr char kBundles[] = "bundles";
constexpr char kBundleRecords[] = "bundle_records";
constexpr char kTombstones[] = "tombstones";
constexpr char kRenderCaches[] = "render_caches";
constexpr char kRolloutCuts[] = "rollout_cuts";
// A source's definition is bounded like any input (Git's own refs are far shorter).
constexpr size_t kMaxUrlBytes = 2048;
constexpr size_t kMaxRefBytes = 256;
// A bundle's path and selectors (checked at add; stored ones load whatever their size).
constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxSelectorBytes = 4096;
// The whole definition, values included: it is stored whole, kept in memory, and listed
// by `bundle list`.
constexpr size_t kMaxBundleBytes = 1 << 20;
constexpr int kMaxEngineArguments = 100;  // jsonnet arguments, helm values files

// The clusters a definition targets: those its selector matches, and its scope's too
// (a team's bundle reaches the team's clusters alone).
absl::StatusOr<LabelSelector> TargetSelector(const v1::Bundle& bundle) {
  const std::string& scope = bundle.scope().clusters();
  if (scope.empty()) return LabelSelector::Parse(bundle.selector());
  if (scope.size() > kMaxSelectorBytes) {
    return absl::InvalidArgumentError(absl::StrCat("bundle \"", bundle.name(),
                                                   "\": its scope's cluster selector is over ",
                                                   kMaxSelectorBytes, " bytes"));
  }
  return LabelSelector::Parse(
      bundle.selector().empty() ? scope : absl::StrCat(bundle.selector(), ",", scope));
}

// A bundle record as stored: without its render cache, which has a row of its own
// (RenderCache), so that a rollout step does not rewrite every path the render read.
std::string StoredRecord(v1::BundleRecord& record) {
  google::protobuf::RepeatedPtrField<std::string> paths, ids;
  paths.Swap(record.mutable_read_paths());
  ids.Swap(record.mutable_read_ids());
  std::string out = record.SerializeAsString();
  paths.Swap(record.mutable_read_paths());
  ids.Swap(record.mutable_read_ids());
  return out;
}

// Whether a source's ref follows the remote's default branch (no branch may be named
// HEAD).
bool FollowsDefaultBranch(absl::string_view ref) { return ref.empty() || ref == "HEAD"; }

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

// Engines that take cluster values themselves, rendering once per variant.
std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return std::vector<std::string>(field.begin(), field.end());
}

bool TakesValues(const std::string& engine) {
  const RendererFactory* factory = FindRendererFactory(engine);
  return factory != nullptr && factory->takes_values();
}

absl::Status ValidateEngineOptions(const v1::Bundle& bundle) {
  std::set<std::string> params;
  for (const std::string& tla : bundle.jsonnet_tlas()) {
    std::pair<std::string, std::string> spec = absl::StrSplit(tla, absl::MaxSplits('=', 1));
    if (!params.insert(spec.first).second) {
      return absl::InvalidArgumentError(absl::StrCat("jsonnet top-level argument ", spec.first,
                                                     " is given twice (which one would win?)"));
    }
    bool ok = !spec.first.empty() && !(spec.first[0] >= '0' && spec.first[0] <= '9');
    for (char c : spec.first) {
      ok &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    }
    if (!ok || (tla.find('=') != std::string::npos && spec.second.empty())) {
      return absl::InvalidArgumentError(
          absl::StrCat("jsonnet top-level argument \"", tla,
                       "\": want PARAM or PARAM=VALUE-NAME, PARAM a jsonnet identifier"));
    }
  }
  for (const std::string& file : bundle.helm_values_files()) {
    // Relative to the chart's folder, the bundle's or one inside it (checked again at each
    // render): anywhere in the repository, never outside it.
    if (absl::Status s = HelmValuesPath(bundle.path(), file).status(); !s.ok()) return s;
  }
  const std::string& engine = bundle.engine();
  if (!engine.empty() && engine != "jsonnet" && bundle.jsonnet_tlas_size() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("jsonnet top-level arguments given to a ", engine, " bundle"));
  }
  if (!engine.empty() && engine != "helm" && bundle.helm_values_files_size() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("helm values files given to a ", engine, " bundle"));
  }
  if (!bundle.helm_release().empty()) {
    if (!ValidReleaseName(bundle.helm_release())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--release=", bundle.helm_release().substr(0, 64),
          ": not a release name helm takes (a DNS name of at most 53 lower-case letters, digits, "
          "'-' and '.')"));
    }
    if (!engine.empty() && engine != "helm") {
      return absl::InvalidArgumentError(
          absl::StrCat("--release names a chart's release; a ", engine, " bundle renders none"));
    }
  }
  if (!bundle.argocd_app().empty()) {
    GF_RETURN_IF_ERROR(ValidateArgoCdAppName("--argocd-app", bundle.argocd_app()));
  }
  GF_RETURN_IF_ERROR(
      CheckHelmCapabilities(bundle.helm_kube_version(), Strings(bundle.helm_api_versions())));
  if (engine == "jsonnet" &&
      (!bundle.helm_kube_version().empty() || bundle.helm_api_versions_size() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kube-version and --api-versions are what helm template renders charts for (helm's, "
        "or kustomize's helmCharts); a ",
        engine, " bundle renders none"));
  }
  if (!bundle.decrypt().empty() && bundle.decrypt() != "sops") {
    return absl::InvalidArgumentError(absl::StrCat("--decrypt=", bundle.decrypt().substr(0, 64),
                                                   ": gitfleet decrypts \"sops\" files only"));
  }
  GF_RETURN_IF_ERROR(PathPatterns::Parse(Strings(bundle.include()), "--include").status());
  GF_RETURN_IF_ERROR(PathPatterns::Parse(Strings(bundle.exclude()), "--exclude").status());
  if (absl::Status s = CheckIgnoreDifferences(bundle.sync()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--ignore-difference: ", s.message()));
  }
  if (!engine.empty() && engine != "plain" &&
      (bundle.include_size() > 0 || bundle.exclude_size() > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--include and --exclude choose the files of a plain bundle; a ", engine,
                     " bundle reads the files its entry file names"));
  }
  return absl::OkStatus();
}

bool SameMessage(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

// Probe substitutes for this many targeted clusters or more on up to kMaxProbeThreads.
constexpr size_t kParallelProbeClusters = 512;
constexpr size_t kMaxProbeThreads = 4;
// Revisions built for cluster values that wait to be stored, per bundle; past this the
// oldest are not stored (they only serve deltas after a restart).
constexpr size_t kMaxPendingRevisions = 256;
// The notes kept from the renders of a jsonnet or helm bundle's variants.
constexpr size_t kMaxVariantNotes = 20;
// The Git repositories a bundle's render reads at a moving ref, kept to be told of pushes.
constexpr size_t kMaxRemoteRepos = 32;

// Sets BundleRecord.remote_repos to the repositories a render read at a ref that moves
// (normalized, at most kMaxRemoteRepos), and, `with_earlier`, those recorded before
// (a failed try's, beside the last good render's).
void KeepRemoteRepos(const std::vector<std::string>& read, bool with_earlier,
                     v1::BundleRecord* record) {
  std::set<std::string> repos;
  for (const std::string& repo : read) {
    // A registry's repository is in its one form already (OciRepositoryKey).
    if (repos.size() < kMaxRemoteRepos) {
      repos.insert(absl::StartsWith(repo, "oci://") ? repo : NormalizeRepoUrl(repo));
    }
  }
  if (with_earlier) {
    for (const std::string& repo : record->remote_repos()) {
      if (repos.size() < kMaxRemoteRepos) repos.insert(repo);
    }
  }
  record->mutable_remote_repos()->Assign(repos.begin(), repos.end());
}

// A stored render built again: the namespace its repository declared for it (a Tanka
// environment's, fleet.yaml's), which the stored objects do not carry, stays its own when
// the bundle names none, so it is the same revision.
void KeepDeclaredNamespace(const Revision& stored, BundleVariants::Params* params) {
  if (params->target_namespace.empty()) params->target_namespace = stored.target_namespace;
}

}  // namespace

// How often reports may reconcile one bundle (its rollout or dependency gate): the gate
// opens at most this late, and a partition of thousands costs a few evaluations.
constexpr absl::Duration kRolloutEvaluationInterval = absl::Milliseconds(50);
// While a partition waits for more reports than have come, how often they still
// reconcile it: what `bundle list` and `rollout status` say about it is at most this old.
constexpr absl::Duration kRolloutRefreshInterval = absl::Seconds(1);
// Events naming each cluster a paced partition gives a render out of turn, per evaluation;
// one more says how many others.
constexpr int kOutOfTurnEvents = 20;

class Controller::Mailbox {
 public:
  Mailbox(WorkQueue* queue, Clock* clock) : queue_(queue), clock_(clock) {}

  void RequestRender(const std::string& bundle) {
    MutexLock lock(&mu_);
    if (queue_ != nullptr) queue_->Add(bundle);
  }
  // An agent reported on `bundle`: its rollout gate may open (`rollout`, decided by the hub
  // from the report count, see Hub::ExpectReports), and so may the dependency gates of the
  // bundles depending on it. Each bundle is reconciled for reports at most once per
  // kRolloutEvaluationInterval (and once more after the last).
  void OnReport(const std::string& bundle, bool rollout) {
    MutexLock lock(&mu_);
    if (queue_ == nullptr) return;
    const absl::Time now = clock_->Now();
    if (rollout) ThrottledAddLocked(bundle, now);
    auto it = dependents_.find(bundle);
    if (it == dependents_.end()) return;
    // Any report may open a dependent's gate on its cluster.
    for (const std::string& dependent : it->second) ThrottledAddLocked(dependent, now);
  }
  void SetDependents(std::map<std::string, std::vector<std::string>> dependents) {
    MutexLock lock(&mu_);
    dependents_ = std::move(dependents);
  }
  void NewRevision(const std::string& bundle, uint64_t generation,
                   std::shared_ptr<const Revision> revision) {
    MutexLock lock(&mu_);
    if (queue_ == nullptr) return;
    auto& pending = revisions_[bundle];
    if (pending.size() >= kMaxPendingRevisions) pending.erase(pending.begin());
    pending.emplace_back(generation, std::move(revision));
    queue_->Add(bundle);
  }
  std::vector<std::pair<uint64_t, std::shared_ptr<const Revision>>> Take(
      const std::string& bundle) {
    MutexLock lock(&mu_);
    auto it = revisions_.find(bundle);
    if (it == revisions_.end()) return {};
    auto out = std::move(it->second);
    revisions_.erase(it);
    return out;
  }
  void Close() {
    MutexLock lock(&mu_);
    queue_ = nullptr;
    revisions_.clear();
  }

 private:
  Mutex mu_;
  WorkQueue* queue_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::pair<uint64_t, std::shared_ptr<const Revision>>>>
      revisions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> dependents_ ABSL_GUARDED_BY(mu_);
  Clock* const clock_;
  std::map<std::string, absl::Time> next_ ABSL_GUARDED_BY(mu_);  // when reports may queue it

  void ThrottledAddLocked(const std::string& bundle, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::Time& next = next_[bundle];
    if (now >= next) {
      queue_->Add(bundle);
      next = now + kRolloutEvaluationInterval;
    } else {
      // The queue keeps one delayed add per key, and drops it when the key is already
      // waiting for a worker (whose reconcile then sees this report).
      queue_->AddAfter(bundle, next - now);
    }
  }
};

namespace {
RepositoryReads ReadsOf(const v1::BundleRecord& record) {
  RepositoryReads reads;
  reads.declared_namespace = record.reads_declared_namespace();
  reads.fleetignore = record.reads_fleetignore();
  reads.sourceignore = record.reads_sourceignore();
  reads.fleet_helm = record.reads_fleet_helm();
  reads.fleet_targets = record.reads_fleet_targets();
  reads.fleet_target_folders = record.reads_fleet_target_folders();
  reads.fleet_bundle_layout = record.reads_fleet_bundle_layout();
  reads.fleet_charts = record.reads_fleet_charts();
  reads.fleet_diff = record.reads_fleet_diff();
  reads.controller_fields = record.reads_controller_fields();
  reads.fleet_service_account = record.reads_fleet_service_account();
  reads.fleet_depends_on = record.reads_fleet_depends_on();
  reads.fleet_release_name = record.reads_fleet_release_name();
  reads.argocd_source = record.reads_argocd_source();
  reads.argocd_kustomize = record.reads_argocd_kustomize();
  reads.argocd_additions = record.reads_argocd_additions();
  reads.argocd_helm = record.reads_argocd_helm();
  reads.argocd_template_options = record.reads_argocd_template_options();
  reads.fleet_do_not_deploy = record.reads_fleet_do_not_deploy();
  reads.fleet_outside_charts = record.reads_fleet_outside_charts();
  reads.fleet_getter_charts = record.reads_fleet_getter_charts();
  reads.fleet_override_targets = record.reads_fleet_override_targets();
  return reads;
}

// The definition a render of `commit` uses. A rollback with --prune=false keeps what the
// pinned revision lacks: its render prunes nothing, whatever the bundle's --prune says.
v1::Bundle RenderedDefinition(v1::Bundle definition, const v1::BundleRecord& record,
                              const std::string& commit) {
  if (!record.pinned_commit().empty() && record.pinned_commit() == commit &&
      record.pinned_no_prune()) {
    definition.mutable_sync()->set_prune(false);
  }
  return definition;
}

WorkQueueOptions QueueOptions(const ControllerOptions& options) {
  WorkQueueOptions queue;
  queue.name = "bundles";
  queue.workers = options.workers;
  queue.retry_base = options.retry_base;
  queue.retry_max = options.retry_max;
  queue.clock = options.clock;
  return queue;
}
}  // namespace

Controller::Controller(Store* store, GitRepositories* repos, Hub* hub, ControlPlaneMetrics& metrics,
                       ControllerOptions options)
    : store_(store),
      hub_(hub),
      metrics_(metrics),
      options_(options),
      queue_(QueueOptions(options), metrics.workqueue,
             [this](const std::string& name) { return Reconcile(name); }),
      renderers_(options.engines),
      poller_(
          repos, metrics,
          [this](const std::string& source, const SourceSnapshot& snapshot) {
            OnSourceCommit(source, snapshot);
          },
          options.default_poll_interval, /*fetch_threads=*/4, options.clock,
          [this](const std::string& source, const std::string& error) {
            OnSourceError(source, error);
          }) {
  poller_.SetSigningKeysDir(options.credentials_dir);
  // Each engine's renders are series from the start, at 0, so GitfleetRenderFailing's
  // increase() sees the first failure after a start (see ControlPlaneMetrics). "unknown":
  // a render that failed before its engine was known (the checkout, say).
  for (const std::string& engine : RendererNames()) {
    for (const char* result : {"ok", "error"}) {
      metrics_.renders.Add({{"engine", engine}, {"result", result}});
    }
  }
  metrics_.renders.Add({{"engine", "unknown"}, {"result", "error"}});
  mailbox_ = std::make_shared<Mailbox>(&queue_, options.clock);
  hub_->SetRenderRequester(
      [mailbox = mailbox_](const std::string& bundle) { mailbox->RequestRender(bundle); });
  // A report on a bundle whose rollout waits: reconcile it (the queue coalesces them).
  hub_->SetStatusObserver([mailbox = mailbox_](const std::string& bundle, bool rollout) {
    mailbox->OnReport(bundle, rollout);
  });
}

absl::Status Controller::Load() {
  GF_ASSIGN_OR_RETURN(const std::vector<Store::Entry> sources, store_->List(kSources));
  GF_ASSIGN_OR_RETURN(const std::vector<Store::Entry> bundles, store_->List(kBundles));
  GF_ASSIGN_OR_RETURN(const std::vector<Store::Entry> tombstones, store_->List(kTombstones));
  // One bad row costs that row, not the control plane: it is skipped, logged and counted.
  auto skip = [this](const char* what, const std::string& key, absl::string_view why) {
    GF_LOG(ERROR) << "skipping stored " << what << " \"" << key << "\": " << why
                  << " (the rest of the store is loaded)";
    metrics_.store_rows_skipped.Add({{"bucket", what}}).Increment();
  };
  std::vector<v1::Source> loaded_sources;
  std::vector<std::pair<std::string, int64_t>> loaded_tombstones;
  std::vector<std::string> names;
  {
    MutexLock writer(&writer_mu_);
    MutexLock lock(&mu_);
    for (const Store::Entry& entry : sources) {
      v1::Source source;
      if (!source.ParseFromString(entry.value) || source.name() != entry.key) {
        skip("source", entry.key, "the row is corrupt");
        continue;
      }
      sources_[source.name()] = source;
      loaded_sources.push_back(source);
    }
    for (const Store::Entry& entry : tombstones) {
      v1::Tombstone tombstone;
      if (!tombstone.ParseFromString(entry.value) || tombstone.bundle() != entry.key) {
        skip("tombstone", entry.key, "the row is corrupt");
        continue;
      }
      tombstones_[entry.key] = tombstone.generation();
      loaded_tombstones.emplace_back(entry.key, tombstone.generation());
    }
    for (const Store::Entry& entry : bundles) {
      BundleState state;
      if (!state.definition.ParseFromString(entry.value) || state.definition.name() != entry.key) {
        skip("bundle", entry.key, "the row is corrupt");
        continue;
      }
      // Definitions stored before generations existed start at 1.
      if (state.definition.generation() <= 0) state.definition.set_generation(1);
      absl::StatusOr<LabelSelector> selector = TargetSelector(state.definition);
      if (!selector.ok()) {
        skip("bundle", entry.key, selector.status().message());
        continue;
      }
      state.selector = *selector;
      absl::StatusOr<ValuesSpec> values = ValuesSpec::Parse(state.definition);
      if (!values.ok()) {
        skip("bundle", entry.key, values.status().message());
        continue;
      }
      state.values = *values;
      state.generation = next_generation_++;
      absl::StatusOr<std::string> record = store_->Get(kBundleRecords, entry.key);
      const bool parsed = record.ok() && state.record.ParseFromString(*record);
      // A bundle never rendered yet places its objects as a new one does; one rendered
      // before gitfleet read where repositories put them keeps them where they are.
      if (state.record.revision().empty()) {
        state.record.set_reads_declared_namespace(true);
        state.record.set_reads_fleetignore(true);
        state.record.set_reads_sourceignore(true);
        state.record.set_reads_fleet_helm(true);
        state.record.set_reads_fleet_targets(true);
        state.record.set_reads_fleet_target_folders(true);
        state.record.set_reads_fleet_bundle_layout(true);
        state.record.set_reads_fleet_charts(true);
        state.record.set_reads_fleet_diff(true);
        state.record.set_reads_controller_fields(true);
        state.record.set_reads_fleet_service_account(true);
        state.record.set_reads_fleet_depends_on(true);
        state.record.set_reads_fleet_release_name(true);
        state.record.set_reads_argocd_source(true);
        state.record.set_reads_argocd_kustomize(true);
        state.record.set_reads_argocd_additions(true);
        state.record.set_reads_argocd_helm(true);
        state.record.set_reads_argocd_template_options(true);
        state.record.set_reads_fleet_do_not_deploy(true);
        state.record.set_reads_fleet_outside_charts(true);
        state.record.set_reads_fleet_getter_charts(true);
        state.record.set_reads_fleet_override_targets(true);
      }
      if (parsed && state.record.read_paths_size() == 0) {
        // The render cache holds only for the definition it was rendered for: one changed
        // after its render (and before a crash) renders again.
        absl::StatusOr<std::string> stored = store_->Get(kRenderCaches, entry.key);
        v1::RenderCache cache;
        if (stored.ok() && cache.ParseFromString(*stored) &&
            cache.generation() == state.definition.generation()) {
          state.record.mutable_read_paths()->Swap(cache.mutable_read_paths());
          state.record.mutable_read_ids()->Swap(cache.mutable_read_ids());
        }
      }
      // Other engines' output is substituted again from the stored render. Engines that take
      // values reuse it when it read none; otherwise they wait for the first fetch to render
      // per variant.
      const bool per_cluster =
          TakesValues(state.record.engine()) || state.record.renders_per_target();
      if (parsed && !state.record.revision().empty() && (!per_cluster || state.record.uniform())) {
        absl::StatusOr<std::shared_ptr<const Revision>> rev =
            ReadStoredRevision(store_, Revision::RevisionKey(entry.key, state.record.revision()));
        if (!absl::IsNotFound(rev.status())) {
          absl::StatusOr<std::shared_ptr<BundleVariants>> content =
              absl::UnknownError("not loaded");
          if (!rev.ok()) {
            content = rev.status();
          } else {
            BundleVariants::Params params = ContentParams(
                entry.key, RenderedDefinition(state.definition, state.record, (*rev)->commit),
                state.values, state.generation, (*rev)->commit, (*rev)->committed_time);
            KeepDeclaredNamespace(**rev, &params);
            content = per_cluster
                          ? BundleVariants::Fixed(std::move(params), (*rev)->objects)
                          : BundleVariants::FromTemplate(std::move(params), (*rev)->objects);
          }
          if (content.ok()) {
            state.content = *content;
            state.content_generation = state.definition.generation();
          } else {
            GF_LOG(ERROR) << content.status();
          }
        }
      }
      // What clusters that join a rollout under way get meanwhile (once it is done, the
      // first evaluation makes the content stable).
      const v1::RolloutRecord& rollout = state.record.rollout();
      if (parsed && !rollout.stable_commit().empty()) {
        // Rendered per cluster by jsonnet or helm: rendered again at the first fetch (the
        // repository is not read before).
        if (static_cast<int64_t>(rollout.stable_generation()) == state.definition.generation()) {
          state.stable_to_render = rollout.stable_commit();
        } else {
          GF_LOG(WARNING) << "bundle " << entry.key << ": the render of "
                          << rollout.stable_commit().substr(0, 12)
                          << " the fleet ran is not rendered again: its definition changed "
                             "since (clusters that join its rollout get nothing until their "
                             "turn)";
        }
      } else if (parsed && !rollout.stable_revision().empty()) {
        const std::string& id = rollout.stable_revision();
        const int64_t template_generation = static_cast<int64_t>(rollout.stable_generation());
        absl::StatusOr<std::shared_ptr<const Revision>> rev =
            ReadStoredRevision(store_, Revision::RevisionKey(entry.key, id));
        absl::StatusOr<std::shared_ptr<const BundleContent>> stable =
            absl::UnknownError("not loaded");
        if (!rev.ok()) {
          stable = rev.status();
        } else if (template_generation == 0) {
          stable = SingleRevision(*std::move(rev));
        } else if (template_generation != state.definition.generation()) {
          stable = absl::FailedPreconditionError(
              "it is substituted with the values of a definition since changed");
        } else {
          BundleVariants::Params params =
              ContentParams(entry.key, state.definition, state.values, state.generation,
                            (*rev)->commit, (*rev)->committed_time);
          KeepDeclaredNamespace(**rev, &params);
          stable = BundleVariants::FromTemplate(std::move(params), (*rev)->objects);
        }
        if (stable.ok()) {
          state.stable = *std::move(stable);
          state.stable_generation = template_generation;
        } else {
          GF_LOG(WARNING) << "bundle " << entry.key << ": stable revision " << id
                          << " not loaded (clusters that join its rollout get nothing until "
                             "their turn): "
                          << stable.status();
        }
      }
      // The partitions of a rollout under way, adjusted for the fleet at the first evaluation.
      absl::StatusOr<std::string> stored_cut = store_->Get(kRolloutCuts, entry.key);
      v1::RolloutCut cut;
      if (stored_cut.ok() && cut.ParseFromString(*stored_cut) &&
          cut.generation() == static_cast<uint64_t>(state.definition.generation())) {
        std::vector<Partition> partitions;
        partitions.reserve(cut.partitions_size());
        for (v1::RolloutCut::Partition& p : *cut.mutable_partitions()) {
          partitions.push_back(
              {std::move(*p.mutable_selector()),
               std::vector<std::string>(std::make_move_iterator(p.mutable_clusters()->begin()),
                                        std::make_move_iterator(p.mutable_clusters()->end())),
               std::move(*p.mutable_name()), std::move(*p.mutable_max_unavailable())});
        }
        state.partitions = std::make_shared<const std::vector<Partition>>(std::move(partitions));
        state.partitions_membership = std::numeric_limits<uint64_t>::max();  // adjust first
        state.partitions_generation = state.definition.generation();
        state.partitions_commit = cut.commit();
      }
      bundles_[entry.key] = std::move(state);
    }
    GF_LOG(INFO) << "loaded " << sources_.size() << " sources and " << bundles_.size()
                 << " bundles";
    for (const auto& [name, state] : bundles_) names.push_back(name);
  }
  // A team bundle whose caller's clusters= narrowed gives the clusters it left nothing new
  // from the first push on (FollowCallerScopes says why once it runs).
  if (options_.caller_scopes) {
    std::shared_ptr<const CallerScopes> scopes = options_.caller_scopes();
    MutexLock lock(&mu_);
    for (auto& [name, state] : bundles_) {
      if (!state.definition.has_scope()) continue;
      NoteScopeClusters(state, scopes.get());
      if (state.caller_gone) {
        state.scope_held = CallerGoneMessage(name, state.definition.scope().caller());
      }
    }
  }
  // The hub and the poller are told outside the controller's locks (they may call back).
  for (const v1::Source& source : loaded_sources) poller_.Upsert(source);
  for (const auto& [bundle, generation] : loaded_tombstones) hub_->SetTombstone(bundle, generation);
  RefreshDependencies();
  for (const std::string& name : names) PushToHub(name);
  return absl::OkStatus();
}

Controller::~Controller() {
  stop_scopes_.Notify();
  if (scopes_thread_.joinable()) scopes_thread_.join();
  mailbox_->Close();
  hub_->SetRenderRequester(nullptr);
  hub_->SetStatusObserver(nullptr);
  poller_.Stop();
  queue_.Stop();
}

void Controller::Start() {
  queue_.Start();
  std::vector<std::string> names;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, state] : bundles_) names.push_back(name);
  }
  for (const std::string& name : names) queue_.Add(name);
  poller_.Start();
  if (options_.caller_scopes) scopes_thread_ = std::thread([this] { FollowScopesLoop(); });
}

void Controller::FollowScopesLoop() {
  NameThisThread("gf-scopes");
  std::shared_ptr<const CallerScopes> followed;
  absl::Time swept = absl::InfinitePast();
  do {
    std::shared_ptr<const CallerScopes> now = options_.caller_scopes();
    const absl::Time time = options_.clock->Now();
    if (now != nullptr && (now != followed || time - swept >= options_.scope_sweep)) {
      for (const std::string& line : FollowCallerScopes(*now)) GF_LOG(INFO) << line;
      followed = std::move(now);
      swept = time;
    }
  } while (!stop_scopes_.WaitForNotificationWithTimeout(absl::Seconds(1)));
}

std::string Controller::HeldBySource(const v1::BundleRecord& record,
                                     const v1::Bundle& definition) const {
  if (std::string paused = PausedBySource(record); !paused.empty()) return paused;
  if (Progressive(definition.rollout()) || !record.pinned_commit().empty()) return "";
  std::string error = record.fleet_rollout_error();
  const v1::RolloutStrategy& fleet = record.fleet_rollout();
  for (int i = 0; error.empty() && !options_.cluster_groups && i < fleet.partition_options_size();
       ++i) {
    const v1::PartitionOptions& options = fleet.partition_options(i);
    if (options.cluster_group().empty() && !options.cluster_group_selector_set()) continue;
    error = absl::StrCat(
        fleet.declared_in(), ": rolloutStrategy.partitions[", i, "]",
        options.name().empty() ? "" : absl::StrCat(" (", options.name(), ")"),
        " selects by Fleet's ",
        options.cluster_group().empty() ? std::string("clusterGroupSelector")
                                        : absl::StrCat("clusterGroup ", options.cluster_group()),
        ", and the control plane reads no cluster groups (give it Fleet's ClusterGroups: "
        "--cluster-groups)");
  }
  if (error.empty()) return "";
  return absl::StrCat("held: ", error, ", so the order it asks for at ",
                      record.commit().substr(0, 12),
                      " is unknown: no cluster gets this commit until a commit mends it, or the "
                      "bundle is given partitions of its own (bundle set --partition, "
                      "--partition-size)");
}

std::string Controller::PausedBySource(const v1::BundleRecord& record) {
  if (record.paused_by().empty() || !record.pinned_commit().empty()) return "";
  return absl::StrCat("paused: ", record.paused_by(), " says paused: true at ",
                      record.commit().substr(0, 12),
                      " (Fleet's paused): no cluster gets this commit, nor a later one that says "
                      "so, until a commit sets it false");
}

std::string Controller::CallerGoneMessage(const std::string& bundle, const std::string& caller) {
  return absl::StrCat(
      "its caller ", caller,
      " is named on no line of --api-tokens or --api-client-roles any more, so no cluster "
      "gets a new revision of it (each keeps what it runs) until the caller has a line again "
      "or a fleet admin removes the bundle (gitfleetctl bundle remove ",
      bundle, ") or adopts it as the fleet's own, keeping its limits (gitfleetctl bundle adopt ",
      bundle, ")");
}

bool Controller::NoteScopeClusters(BundleState& state, const CallerScopes* scopes) {
  const bool gated_before = state.ScopeGated();
  const bool gone_before = state.caller_gone;
  const std::optional<std::string> before = state.scope_clusters_now;
  const v1::BundleScope* now = nullptr;
  state.caller_gone = false;
  if (scopes != nullptr && state.definition.has_scope() && !state.definition.scope().adopted()) {
    auto it = scopes->find(state.definition.scope().caller());
    if (it == scopes->end()) {
      state.caller_gone = true;
    } else if (!it->second.caller().empty()) {
      now = &it->second;
    }
  }
  if (now == nullptr) {
    state.scope_clusters_now.reset();
    state.scope_selector_now.reset();
  } else if (state.scope_clusters_now != now->clusters()) {
    state.scope_clusters_now = now->clusters();
    absl::StatusOr<LabelSelector> parsed = LabelSelector::Parse(now->clusters());
    state.scope_selector_now.reset();
    if (parsed.ok() && now->clusters().size() <= kMaxSelectorBytes) {
      state.scope_selector_now = *std::move(parsed);
    }
  }
  const bool changed = state.ScopeGated() != gated_before || state.caller_gone != gone_before ||
                       (state.ScopeGated() && state.scope_clusters_now != before);
  // A rollout under way drops (or takes back) the clusters at its next evaluation.
  if (changed) state.partitions_membership = std::numeric_limits<uint64_t>::max();
  return changed;
}

std::vector<std::string> Controller::FollowCallerScopes(const CallerScopes& scopes,
                                                        absl::Time wait_until) {
  // The team bundles and sources whose recorded scope is not their caller's now.
  std::vector<v1::Bundle> stale;
  std::vector<v1::Source> stale_sources;
  std::vector<std::string> regated;  // whose clusters that may get new revisions changed
  std::vector<std::pair<std::string, std::string>> gone;  // bundle, why: told once
  {
    MutexLock lock(&mu_);
    for (auto& [name, state] : bundles_) {
      const v1::Bundle& definition = state.definition;
      if (!definition.has_scope()) continue;
      if (definition.scope().adopted()) {
        if (NoteScopeClusters(state, nullptr)) regated.push_back(name);
        continue;
      }
      auto now = scopes.find(definition.scope().caller());
      if (NoteScopeClusters(state, &scopes)) regated.push_back(name);
      if (state.caller_gone) {
        std::string why = CallerGoneMessage(name, definition.scope().caller());
        if (state.scope_held != why) {
          state.scope_held = why;
          gone.emplace_back(name, std::move(why));
        }
        continue;
      }
      if (now->second.caller().empty() || SameMessage(definition.scope(), now->second)) {
        state.scope_held.clear();
        continue;
      }
      stale.push_back(definition);
    }
    // A team's sources: their repos= as their caller's scope has it now (a URL no longer
    // under them is then not fetched: SourcePoller).
    for (const auto& [name, source] : sources_) {
      if (source.scope_caller().empty()) continue;
      auto now = scopes.find(source.scope_caller());
      if (now == scopes.end() || now->second.caller().empty()) continue;
      if (std::equal(source.scope_repos().begin(), source.scope_repos().end(),
                     now->second.repos().begin(), now->second.repos().end())) {
        continue;
      }
      stale_sources.push_back(source);
    }
  }
  // Their gate first: a commit rendered meanwhile must not reach the clusters left.
  for (const std::string& name : regated) queue_.Add(name);
  std::vector<std::string> out;
  for (const auto& [name, why] : gone) {
    GF_LOG(WARNING) << "bundle " << name << ": " << why;
    Publish(MakeEvent("bundle.scope_held", name, "", why, ""));
    out.push_back(absl::StrCat("bundle ", name, ": ", why));
  }
  for (v1::Source& source : stale_sources) {
    *source.mutable_scope_repos() = scopes.at(source.scope_caller()).repos();
    absl::StatusOr<v1::SourceInfo> followed = AddSource(source, /*replace=*/true, wait_until);
    out.push_back(
        followed.ok()
            ? absl::StrCat("source ", source.name(), " follows caller ", source.scope_caller(),
                           "'s scope: repos=", absl::StrJoin(source.scope_repos(), ","))
            : absl::StrCat("source ", source.name(),
                           " keeps the repositories it had: ", followed.status().message()));
  }
  for (const v1::Bundle& before : stale) {
    const v1::BundleScope& scope = scopes.at(before.scope().caller());
    v1::Bundle next = before;
    *next.mutable_scope() = scope;
    // The account the old scope forced gives way to the new scope's (DefineBundle forces
    // it, as for any definition).
    if (before.sync().service_account() == before.scope().service_account()) {
      next.mutable_sync()->clear_service_account();
    }
    if (!scope.service_account().empty()) {
      next.mutable_sync()->set_service_account(scope.service_account());
    }
    // Clusters the new clusters= leaves that hold the bundle keep it: a removal is an
    // explicit act, a fleet admin's.
    std::string held;
    if (scope.clusters() != before.scope().clusters()) {
      absl::StatusOr<LabelSelector> was = TargetSelector(before);
      absl::StatusOr<LabelSelector> now = TargetSelector(next);
      std::vector<std::string> leaving;
      if (was.ok() && now.ok()) leaving = hub_->HoldersLeaving(before.name(), *was, *now);
      if (!leaving.empty() || !now.ok()) {
        held = absl::StrCat(
            "the scope of caller ", scope.caller(), " now has clusters=", scope.clusters(),
            !now.ok()
                ? absl::StrCat(", which it cannot use (", now.status().message(), ")")
                : absl::StrCat(", which no longer matches ", leaving.size(),
                               leaving.size() == 1 ? " cluster that holds" : " clusters that hold",
                               " it (", ListNames(leaving), ")"),
            "; they keep what they run of it and get no new revision of it (its clusters= "
            "stays ",
            before.scope().clusters(),
            ") until a fleet admin replaces it with --allow-removal (gitfleetctl bundle set ",
            before.name(), " --allow-removal), which removes it from them");
        next.mutable_scope()->set_clusters(before.scope().clusters());
      }
    }
    bool told = false;
    {
      MutexLock lock(&mu_);
      auto it = bundles_.find(before.name());
      if (it == bundles_.end() || it->second.definition.generation() != before.generation()) {
        continue;  // changed meanwhile: the next sweep sees it
      }
      told = it->second.scope_held == held;
      it->second.scope_held = held;
    }
    if (!held.empty() && !told) {
      GF_LOG(WARNING) << "bundle " << before.name() << ": " << held;
      Publish(MakeEvent("bundle.scope_held", before.name(), "", held, ""));
      out.push_back(absl::StrCat("bundle ", before.name(), ": ", held));
    }
    if (SameMessage(next, before)) continue;  // the held clusters were all that changed
    absl::StatusOr<v1::BundleInfo> followed = DefineBundle(
        next, /*replace=*/true, wait_until, /*allow_removal=*/false, before.generation(),
        absl::StrCat("caller ", scope.caller(), "'s scope changed"));
    if (!followed.ok()) {
      if (followed.status().code() == absl::StatusCode::kAborted) continue;  // changed meanwhile
      GF_LOG(WARNING) << "bundle " << before.name()
                      << " keeps the scope it had: " << followed.status().message();
      out.push_back(absl::StrCat("bundle ", before.name(),
                                 " keeps the scope it had: ", followed.status().message()));
      continue;
    }
    out.push_back(absl::StrCat("bundle ", before.name(), " follows caller ", scope.caller(),
                               "'s scope: ", ChangedFields(before.scope(), next.scope())));
  }
  return out;
}

absl::StatusOr<v1::SourceInfo> Controller::AddSource(const v1::Source& input, bool replace,
                                                     absl::Time wait_until, bool rename_releases) {
  v1::Source source = input;
  if (absl::Status s = ValidateName("source", source.name()); !s.ok()) return s;
  if (!source.fleet_gitrepo().empty()) {
    if (absl::Status s = ValidateGitRepoName("fleet_gitrepo", source.fleet_gitrepo()); !s.ok()) {
      return s;
    }
  }
  if (source.scope_repos_size() == 0 && source.scope_caller().empty()) {
    // A team's source stays held to its repositories when a fleet admin replaces it.
    MutexLock lock(&mu_);
    auto it = sources_.find(source.name());
    if (it != sources_.end()) {
      *source.mutable_scope_repos() = it->second.scope_repos();
      source.set_scope_caller(it->second.scope_caller());
    }
  }
  if (source.url().size() > kMaxUrlBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "source URL is ", source.url().size(), " bytes; at most ", kMaxUrlBytes, " are allowed"));
  }
  if (absl::Status s = CheckSourceUrl(source.url(), options_.allow_local_sources); !s.ok()) {
    return s;
  }
  if (source.ref().size() > kMaxRefBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ref is ", source.ref().size(), " bytes; at most ", kMaxRefBytes, " are allowed"));
  }
  if (source.ref().find_first_of(" \t\n~^:?*[\\") != std::string::npos ||
      absl::StrContains(source.ref(), "..") ||
      std::any_of(source.ref().begin(), source.ref().end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return absl::InvalidArgumentError(
        absl::StrCat("ref \"", source.ref(), "\" is not a valid branch, tag or commit"));
  }
  if (!source.credentials_ref().empty()) {
    // Read now for a clear answer at once; the fetch reads it again each time.
    absl::StatusOr<GitCredential> credential =
        LoadGitCredential(options_.credentials_dir, source.credentials_ref());
    if (!credential.ok()) {
      return absl::Status(
          credential.status().code(),
          absl::StrCat("source \"", source.name(), "\": ", credential.status().message()));
    }
  }
  if (!source.verify_commits().empty()) {
    // The keys read now for a clear answer; each new commit is checked against them then.
    absl::StatusOr<SigningKeys> keys =
        LoadSigningKeys(options_.credentials_dir, source.verify_commits());
    if (!keys.ok()) {
      return absl::Status(keys.status().code(),
                          absl::StrCat("source \"", source.name(),
                                       "\": --verify-commits: ", keys.status().message()));
    }
  }
  if (source.poll_interval_seconds() < 0) {
    return absl::InvalidArgumentError("poll interval must not be negative");
  }
  // An empty ref follows the remote's default branch (its HEAD), as git clone does.
  bool changed = false;
  std::optional<v1::Source> replaced;  // the definition this one replaces
  {
    MutexLock writer(&writer_mu_);
    {
      MutexLock lock(&mu_);
      auto it = sources_.find(source.name());
      if (it != sources_.end() && !SameMessage(it->second, source) && !replace) {
        return absl::AlreadyExistsError(
            absl::StrCat("source \"", source.name(),
                         "\" already exists with a different definition "
                         "(remove it first, or replace it)"));
      }
      changed = it == sources_.end() || !SameMessage(it->second, source);
      if (changed && it != sources_.end()) replaced = it->second;
      const std::string gitrepo =
          source.fleet_gitrepo().empty() ? source.name() : source.fleet_gitrepo();
      if (replaced.has_value() && FleetGitRepoLocked(source.name()) != gitrepo &&
          !rename_releases) {
        // A chart released under Fleet's name for its folder (no fleet.yaml `name`, no
        // --release) would be released under another: new objects, the old ones pruned.
        std::vector<std::string> renamed;
        for (const auto& [bundle, state] : bundles_) {
          if (state.definition.source() == source.name() &&
              state.record.reads_fleet_release_name() && state.record.engine() == "helm" &&
              state.record.fleet_name().empty() && state.definition.helm_release().empty()) {
            renamed.push_back(bundle);
          }
        }
        if (!renamed.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "source \"", source.name(), "\": its GitRepo name ",
              FleetGitRepoLocked(source.name()), " -> ", gitrepo,
              " would rename the chart releases of bundles ", ListNames(renamed),
              " (released under Fleet's names for their folders: their objects would be made "
              "anew under new names and the old ones pruned); give each --release=NAME to keep "
              "one, or say --rename-releases"));
        }
      }
      if (it == sources_.end() && sources_.size() >= options_.max_sources) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "source \"", source.name(), "\": this control plane already has ", sources_.size(),
            " sources, its --max-sources; remove one, or raise the bound"));
      }
    }
    if (changed) {
      absl::Status stored =
          store_->Apply({Store::Put(kSources, source.name(), source.SerializeAsString())});
      if (!stored.ok()) return stored;
      MutexLock lock(&mu_);
      v1::Source& kept = sources_[source.name()];
      if (kept.url() != source.url() || kept.ref() != source.ref()) {
        default_branches_.erase(source.name());  // until its next fetch tells again
      }
      if (kept.fleet_gitrepo() != source.fleet_gitrepo() ||
          (!source.verify_commits().empty() && kept.verify_commits() != source.verify_commits())) {
        // Fleet's names in its renders are others, or a pinned commit is judged by keys it
        // was not judged by (Reconcile): each renders again, commit or not.
        for (auto& [bundle, state] : bundles_) {
          if (state.definition.source() == source.name()) state.reconciled_commit.clear();
        }
      }
      kept = source;
    }
  }
  if (changed) {
    EventBus::Audience names;
    {
      MutexLock lock(&mu_);
      names = AudienceOfLocked(source.name());
    }
    Publish(replaced.has_value()
                ? MakeEvent("source.replaced", "", "",
                            absl::StrCat("replaced by an operator; changed: ",
                                         ChangedFields(*replaced, source)),
                            "", "", source.name())
                : MakeEvent("source.added", "", "",
                            absl::StrCat("added by an operator: ", source.url(),
                                         source.ref().empty() ? "" : " at ", source.ref()),
                            "", "", source.name()),
            names);
    poller_.Upsert(source);
    // Fleet's names of its folders may be others (fleet_gitrepo): dependsOn resolves again.
    if (replaced.has_value() && replaced->fleet_gitrepo() != source.fleet_gitrepo()) {
      RefreshDependencies();
    }
  }
  absl::StatusOr<v1::SourceInfo> info = poller_.SyncNow(source.name(), WaitLeft(wait_until));
  if (info.ok()) ReconcileBundlesOf(source.name(), wait_until);
  if (info.ok() && replaced.has_value()) *info->mutable_replaced() = *std::move(replaced);
  return info;
}

absl::Status Controller::RemoveSource(
    const std::string& name, const std::function<bool(const std::string& bundle)>& visible) {
  {
    MutexLock writer(&writer_mu_);
    {
      MutexLock lock(&mu_);
      if (sources_.count(name) == 0) {
        return absl::NotFoundError(absl::StrCat("source \"", name, "\" not found"));
      }
      std::vector<std::string> users;
      int hidden = 0;
      for (const auto& [bundle, state] : bundles_) {
        if (state.definition.source() != name) continue;
        if (!visible || visible(bundle)) {
          users.push_back(bundle);
        } else {
          ++hidden;
        }
      }
      if (!users.empty() || hidden > 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("source \"", name, "\" is used by ",
                         users.empty() ? "" : absl::StrCat("bundles ", ListNames(users)),
                         users.empty() || hidden == 0 ? "" : " and ",
                         hidden == 0 ? ""
                                     : absl::StrCat(hidden, hidden == 1 ? " bundle" : " bundles",
                                                    " outside the caller's scope"),
                         "; remove them first"));
      }
    }
    // Bundles are added under writer_mu_ too, so none can start using it meanwhile.
    absl::Status stored = store_->Apply({Store::Delete(kSources, name)});
    if (!stored.ok()) return stored;
    MutexLock lock(&mu_);
    sources_.erase(name);
    source_audiences_.erase(name);
    default_branches_.erase(name);
    source_errors_.erase(name);
  }
  Publish(MakeEvent("source.removed", "", "", "removed by an operator", "", "", name));
  poller_.Remove(name);
  return absl::OkStatus();
}

absl::StatusOr<v1::SourceInfo> Controller::SyncSource(const std::string& name,
                                                      absl::Time wait_until) {
  std::map<std::string, uint64_t> tickets;
  {
    MutexLock lock(&mu_);
    for (const auto& [bundle, state] : bundles_) {
      if (state.definition.source() == name) tickets[bundle] = state.commit_ticket;
    }
  }
  absl::StatusOr<v1::SourceInfo> info = poller_.SyncNow(name, WaitLeft(wait_until));
  // Level-triggered: every bundle of the source is reconciled, whether or not the commit
  // moved, so a render that failed is tried again now (once: a commit the fetch brought
  // is already queued).
  if (info.ok()) ReconcileBundlesOf(name, wait_until, tickets);
  return info;
}

absl::Duration Controller::WaitLeft(absl::Time wait_until) const {
  return std::max(absl::ZeroDuration(),
                  std::min(options_.api_wait, wait_until - options_.clock->Now()));
}

void Controller::ReconcileBundlesOf(const std::string& source, absl::Time wait_until,
                                    const std::map<std::string, uint64_t>& tickets_before) {
  std::vector<std::string> names;
  // Bundles a new commit queued since `tickets_before`: that reconcile reads the commit.
  std::map<std::string, uint64_t> queued;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, state] : bundles_) {
      if (state.definition.source() != source) continue;
      names.push_back(name);
      auto before = tickets_before.find(name);
      if (state.commit_ticket != 0 && before != tickets_before.end() &&
          before->second != state.commit_ticket) {
        queued[name] = state.commit_ticket;
      }
    }
  }
  AskedToReconcile(names);  // a render that failed is tried again now
  absl::Time deadline = options_.clock->Now() + WaitLeft(wait_until);
  // A render that drops objects waits for the others' (WaitsForSiblings), then goes in a
  // pass of its own: the second round waits for those.
  for (int round = 0; round < 2 && !names.empty(); ++round) {
    std::vector<uint64_t> tickets;
    for (const std::string& name : names) {
      auto commit = round == 0 ? queued.find(name) : queued.end();
      tickets.push_back(commit != queued.end() ? commit->second : queue_.Add(name));
    }
    for (size_t i = 0; i < names.size(); ++i) {
      queue_.WaitFor(names[i], tickets[i],
                     std::max(absl::ZeroDuration(), deadline - options_.clock->Now()));
    }
    MutexLock lock(&mu_);
    std::vector<std::string> waited;
    for (const std::string& name : names) {
      auto it = bundles_.find(name);
      if (it != bundles_.end() && !it->second.siblings.commit().empty()) waited.push_back(name);
    }
    names = std::move(waited);
  }
}

void Controller::ReconcileAndWait(const std::string& name, absl::Time wait_until) {
  AskedToReconcile({name});
  queue_.WaitFor(name, queue_.Add(name), WaitLeft(wait_until));
}

void Controller::AskedToReconcile(const std::vector<std::string>& names) {
  MutexLock lock(&mu_);
  for (const std::string& name : names) {
    auto it = bundles_.find(name);
    if (it != bundles_.end()) ++it->second.asks;
  }
}

std::vector<v1::SourceInfo> Controller::ListSources() {
  std::vector<v1::SourceInfo> sources = poller_.List();
  for (v1::SourceInfo& info : sources) {
    if (info.source().credentials_ref().empty()) {
      info.set_credentials_from_prefix(
          CredentialForUrl(options_.credential_prefixes, info.source().url()));
    }
  }
  return sources;
}

absl::Status Controller::FetchSourceSoon(const std::string& name) {
  return poller_.FetchSoon(name);
}

std::vector<std::string> Controller::RenderReadersSoon(const std::set<std::string>& repos) {
  // Fetched again at those renders, however recently they were fetched.
  if (options_.engines.remote_bases != nullptr) options_.engines.remote_bases->FetchAgain(repos);
  if (options_.engines.chart_fetcher != nullptr) options_.engines.chart_fetcher->FetchAgain(repos);
  std::vector<std::string> names;
  {
    MutexLock lock(&mu_);
    for (auto& [name, state] : bundles_) {
      const auto& read = state.record.remote_repos();
      if (std::none_of(read.begin(), read.end(),
                       [&repos](const std::string& repo) { return repos.count(repo) > 0; })) {
        continue;
      }
      state.remote_pushed = true;
      names.push_back(name);
    }
  }
  for (const std::string& name : names) queue_.Add(name);
  return names;
}

bool Controller::HasSopsKeys() const {
  return (options_.sops_identities && options_.sops_identities() != nullptr) ||
         (options_.sops_pgp_keys && options_.sops_pgp_keys() != nullptr);
}

absl::StatusOr<v1::BundleInfo> Controller::AddBundle(const v1::Bundle& input, bool replace,
                                                     absl::Time wait_until, bool allow_removal,
                                                     int64_t if_generation, Adopt adopt) {
  return DefineBundle(input, replace, wait_until, allow_removal, if_generation, "", adopt);
}

absl::StatusOr<v1::BundleInfo> Controller::DefineBundle(const v1::Bundle& input, bool replace,
                                                        absl::Time wait_until, bool allow_removal,
                                                        int64_t if_generation,
                                                        const std::string& scope_change,
                                                        Adopt adopt) {
  v1::Bundle bundle = input;
  if (absl::Status s = ValidateName("bundle", bundle.name()); !s.ok()) return s;
  auto too_long = [&](absl::string_view what, size_t size, size_t most) {
    return absl::InvalidArgumentError(absl::StrCat("bundle \"", bundle.name(), "\": ", what, " is ",
                                                   size, " bytes; at most ", most, " are allowed"));
  };
  if (bundle.ByteSizeLong() > kMaxBundleBytes) {
    return too_long("the definition", bundle.ByteSizeLong(), kMaxBundleBytes);
  }
  if (bundle.jsonnet_tlas_size() > kMaxEngineArguments ||
      bundle.helm_values_files_size() > kMaxEngineArguments) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bundle \"", bundle.name(), "\": at most ", kMaxEngineArguments,
        " jsonnet top-level arguments and ", kMaxEngineArguments, " helm values files"));
  }
  if (bundle.path().size() > kMaxPathBytes) {
    return too_long("--path", bundle.path().size(), kMaxPathBytes);
  }
  if (bundle.selector().size() > kMaxSelectorBytes) {
    return too_long("--selector", bundle.selector().size(), kMaxSelectorBytes);
  }
  for (const std::string& partition : bundle.rollout().partitions()) {
    if (partition.size() > kMaxSelectorBytes) {
      return too_long("a --partition selector", partition.size(), kMaxSelectorBytes);
    }
  }
  absl::StatusOr<std::string> path = CleanPath(bundle.path());
  if (!path.ok()) return path.status();
  bundle.set_path(*path);
  absl::StatusOr<LabelSelector> own_selector = LabelSelector::Parse(bundle.selector());
  if (!own_selector.ok()) return own_selector.status();
  bundle.set_selector(own_selector->text());
  if (!bundle.has_scope()) {
    // A scope stays with the bundle until a scoped caller's definition brings its own: a
    // team's bundle replaced by a fleet admin still reaches the team's clusters alone, as
    // its caller's scope says now when that is known (a narrowed clusters= is then
    // refused as any removal is, unless allow_removal).
    {
      MutexLock lock(&mu_);
      auto it = bundles_.find(bundle.name());
      if (it != bundles_.end() && it->second.definition.has_scope()) {
        *bundle.mutable_scope() = it->second.definition.scope();
      }
    }
    if (adopt != Adopt::kNo) {
      // The fleet's own from now on: the limits it has stay (or, asked, go), the caller is
      // not followed.
      if (!replace || !bundle.has_scope()) {
        return absl::FailedPreconditionError(
            absl::StrCat("bundle \"", bundle.name(), "\" ",
                         bundle.has_scope()
                             ? "is adopted by a replacement: give --replace"
                             : "is no team's bundle (it has no caller's scope): nothing to adopt"));
      }
      if (adopt == Adopt::kDropLimits) {
        GF_LOG(INFO) << "bundle " << bundle.name() << ": adopted from caller "
                     << bundle.scope().caller() << " without its scope's limits";
        bundle.clear_scope();
      } else {
        bundle.mutable_scope()->set_adopted(true);
      }
    }
    // The token files are read for a team's bundle alone, and outside the lock; an adopted
    // one follows no line.
    std::shared_ptr<const CallerScopes> scopes =
        bundle.has_scope() && !bundle.scope().adopted() && options_.caller_scopes
            ? options_.caller_scopes()
            : nullptr;
    if (scopes != nullptr) {
      auto now = scopes->find(bundle.scope().caller());
      if (now != scopes->end() && !now->second.caller().empty()) {
        *bundle.mutable_scope() = now->second;
      }
    }
  }
  absl::StatusOr<LabelSelector> selector = TargetSelector(bundle);
  if (!selector.ok()) return selector.status();
  // What the agents hold the bundle's objects to: the scope's namespaces alone.
  *bundle.mutable_sync()->mutable_allowed_namespaces() = bundle.scope().namespaces();
  *bundle.mutable_sync()->mutable_allowed_cluster_kinds() = bundle.scope().cluster_kinds();
  // And the account they apply them as: the scope's, whatever the definition asks.
  if (!bundle.scope().service_account().empty()) {
    if (!bundle.sync().service_account().empty() &&
        bundle.sync().service_account() != bundle.scope().service_account()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "bundle \"", bundle.name(), "\": --service-account ", bundle.sync().service_account(),
          " is not the service account of its scope (", bundle.scope().service_account(),
          ", of caller ", bundle.scope().caller(), ")"));
    }
    bundle.mutable_sync()->set_service_account(bundle.scope().service_account());
  }
  if (!bundle.sync().service_account().empty()) {
    if (absl::Status s = ValidateServiceAccount(bundle.sync().service_account()); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bundle \"", bundle.name(), "\": --service-account: ", s.message()));
    }
  }
  // A team names an account in its own namespaces: one elsewhere (kube-system's, another
  // team's) would give its bundle that account's rights. Its scope's own account is the
  // fleet admin's choice. A bare NAME is in the bundle's namespace.
  if (scope_change.empty() && bundle.scope().service_account().empty() &&
      !bundle.sync().service_account().empty() && !bundle.scope().namespaces().empty()) {
    const std::string& account = bundle.sync().service_account();
    const size_t slash = account.find('/');
    const std::string ns =
        slash == std::string::npos ? bundle.target_namespace() : account.substr(0, slash);
    if (ns.empty() || !MatchesAnyGlob(bundle.scope().namespaces(), ns)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "bundle \"", bundle.name(), "\": --service-account ", account,
          ns.empty() ? " names no namespace and the bundle has no --namespace"
                     : absl::StrCat(" is in namespace ", ns),
          ", outside the namespaces of its scope (",
          absl::StrJoin(bundle.scope().namespaces(), ","), ", of caller ", bundle.scope().caller(),
          "): a team's bundle is applied as an account in its own namespaces"));
    }
  }
  // (A scope that changed under a bundle is not refused here: its agents refuse objects
  // outside the namespaces, and its render opens nothing without keys.)
  if (scope_change.empty() && !bundle.target_namespace().empty() &&
      !bundle.scope().namespaces().empty() &&
      !MatchesAnyGlob(bundle.scope().namespaces(), bundle.target_namespace())) {
    return absl::PermissionDeniedError(absl::StrCat("bundle \"", bundle.name(), "\": --namespace ",
                                                    bundle.target_namespace(),
                                                    " is outside the namespaces of its scope (",
                                                    absl::StrJoin(bundle.scope().namespaces(), ","),
                                                    ", of caller ", bundle.scope().caller(), ")"));
  }
  if (!bundle.engine().empty()) {
    if (absl::Status s = CheckEngineName(bundle.engine()); !s.ok()) return s;
  }
  if (!bundle.target_namespace().empty()) {
    if (absl::Status s = ValidateName("target namespace", bundle.target_namespace()); !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<ValuesSpec> values = ValuesSpec::Parse(bundle);
  if (!values.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bundle \"", bundle.name(), "\": ", values.status().message()));
  }
  if (absl::Status s = ValidateEngineOptions(bundle); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bundle \"", bundle.name(), "\": ", s.message()));
  }
  if (absl::Status s = ValidateRolloutStrategy(bundle.rollout()); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bundle \"", bundle.name(), "\": ", s.message()));
  }
  if (absl::Status s = ValidateMaxPrune(bundle.max_prune()); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bundle \"", bundle.name(), "\": ", s.message()));
  }
  // Said when the bundle is defined rather than at each render: decryption needs keys.
  if (bundle.decrypt() == "sops" && !HasSopsKeys()) {
    return absl::FailedPreconditionError(
        absl::StrCat("bundle \"", bundle.name(),
                     "\": --decrypt=sops needs the control plane's SOPS keys: start it with "
                     "--sops-age-key-file or --sops-pgp-key-file"));
  }
  // A team's bundle decrypts with the keys its scope names alone: another team's secrets,
  // copied into its repository, stay sealed.
  if (scope_change.empty() && bundle.decrypt() == "sops" && bundle.has_scope() &&
      bundle.scope().sops_keys().empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "bundle \"", bundle.name(), "\": --decrypt=sops, and the scope of caller ",
        bundle.scope().caller(), " names none of the control plane's SOPS keys (sops-keys=)"));
  }
  if (bundle.depends_on_size() > 32) {
    return absl::InvalidArgumentError("--depends-on: at most 32 bundles");
  }
  std::set<std::string> dependencies;
  for (const std::string& dependency : bundle.depends_on()) {
    if (absl::Status s = ValidateName("--depends-on bundle", dependency); !s.ok()) return s;
    if (!dependencies.insert(dependency).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bundle \"", bundle.name(), "\": --depends-on names ", dependency, " twice"));
    }
    if (dependency == bundle.name()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bundle \"", bundle.name(), "\" cannot depend on itself"));
    }
  }
  // Removal is an explicit act: a new selector that leaves clusters holding the bundle
  // needs allow_removal. Asked of the hub with no lock held (it may call back); a
  // replacement racing this one is judged by its own selector.
  if (replace && !allow_removal) {
    std::optional<LabelSelector> before;
    bool prunes = false;
    bool own_selector_changed = true;
    {
      MutexLock lock(&mu_);
      auto it = bundles_.find(bundle.name());
      if (it != bundles_.end() && it->second.selector.text() != selector->text()) {
        before = it->second.selector;
        prunes = it->second.definition.sync().prune();
        own_selector_changed = it->second.definition.selector() != bundle.selector();
      }
    }
    if (before.has_value()) {
      std::vector<std::string> leaving = hub_->HoldersLeaving(bundle.name(), *before, *selector);
      if (!leaving.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "bundle \"", bundle.name(), "\": ",
            own_selector_changed
                ? std::string("the new --selector")
                : absl::StrCat("the clusters= of caller ", bundle.scope().caller(),
                               "'s scope as it is now (", bundle.scope().clusters(), ")"),
            " no longer matches ", leaving.size(),
            leaving.size() == 1 ? " cluster that holds" : " clusters that hold", " it (",
            ListNames(leaving), "); replacing it would remove it from them",
            prunes ? ", pruning its objects there"
                   : " (its objects stay there, unmanaged: the bundle does not prune)",
            ". Replace it with --allow-removal to do that"));
      }
    }
  }
  std::optional<v1::Bundle> replaced;  // the definition this one replaces
  {
    MutexLock writer(&writer_mu_);
    std::vector<Store::Write> writes;
    bool tombstoned = false;
    {
      MutexLock lock(&mu_);
      if (sources_.count(bundle.source()) == 0) {
        return absl::NotFoundError(absl::StrCat("bundle \"", bundle.name(), "\": source \"",
                                                bundle.source(), "\" not found"));
      }
      if (std::string cycle = FindCycleLocked(bundle); !cycle.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("bundle \"", bundle.name(), "\": --depends-on makes a cycle: ", cycle));
      }
      auto it = bundles_.find(bundle.name());
      // The generation is the control plane's: it grows with every change of the definition
      // and continues past a tombstone, so agents can tell an older definition from a newer.
      auto tombstone = tombstones_.find(bundle.name());
      int64_t generation = it != bundles_.end()             ? it->second.definition.generation()
                           : tombstone != tombstones_.end() ? tombstone->second
                                                            : 0;
      bundle.set_generation(generation);
      if (if_generation > 0 && (it == bundles_.end() || generation != if_generation)) {
        return absl::AbortedError(absl::StrCat(
            "bundle \"", bundle.name(), "\" changed since it was read (generation ", if_generation,
            ", now ", it == bundles_.end() ? std::string("removed") : absl::StrCat(generation),
            "); read it again and retry"));
      }
      if (it == bundles_.end() && bundles_.size() >= options_.max_bundles) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "bundle \"", bundle.name(), "\": this control plane already has ", bundles_.size(),
            " bundles, its --max-bundles; remove one, or raise the bound"));
      }
      bool same = it != bundles_.end() && SameMessage(it->second.definition, bundle);
      if (it != bundles_.end() && !same && !replace) {
        return absl::AlreadyExistsError(
            absl::StrCat("bundle \"", bundle.name(),
                         "\" already exists with a different definition "
                         "(remove it first, or replace it)"));
      }
      if (!same) {
        if (it != bundles_.end()) replaced = it->second.definition;
        bundle.set_generation(generation + 1);
        writes.push_back(Store::Put(kBundles, bundle.name(), bundle.SerializeAsString()));
        tombstoned = tombstone != tombstones_.end();
        if (tombstoned) writes.push_back(Store::Delete(kTombstones, bundle.name()));
      }
    }
    // The same definition again changes nothing stored, and still reconciles (below): a
    // render that failed is tried again now.
    if (!writes.empty()) {
      absl::Status stored = store_->Apply(writes);
      if (!stored.ok()) return stored;
      MutexLock lock(&mu_);
      if (tombstoned) tombstones_.erase(bundle.name());
      BundleState& state = bundles_[bundle.name()];
      if (!replaced.has_value()) {  // a new one
        state.record.set_reads_declared_namespace(true);
        state.record.set_reads_fleetignore(true);
        state.record.set_reads_sourceignore(true);
        state.record.set_reads_fleet_helm(true);
        state.record.set_reads_fleet_targets(true);
        state.record.set_reads_fleet_target_folders(true);
        state.record.set_reads_fleet_bundle_layout(true);
        state.record.set_reads_fleet_charts(true);
        state.record.set_reads_fleet_diff(true);
        state.record.set_reads_controller_fields(true);
        state.record.set_reads_fleet_service_account(true);
        state.record.set_reads_fleet_depends_on(true);
        state.record.set_reads_fleet_release_name(true);
        state.record.set_reads_argocd_source(true);
        state.record.set_reads_argocd_kustomize(true);
        state.record.set_reads_argocd_additions(true);
        state.record.set_reads_argocd_helm(true);
        state.record.set_reads_argocd_template_options(true);
        state.record.set_reads_fleet_do_not_deploy(true);
        state.record.set_reads_fleet_outside_charts(true);
        state.record.set_reads_fleet_getter_charts(true);
        state.record.set_reads_fleet_override_targets(true);
      }
      state.definition = bundle;
      if (bundle.scope().adopted() || !bundle.has_scope()) {
        // Neither held for its caller's absence nor gated by the caller's line now.
        NoteScopeClusters(state, nullptr);
        state.scope_held.clear();
      }
      state.selector = *selector;
      state.values = *values;
      state.generation = next_generation_++;
      state.record.clear_read_paths();  // the definition changed: render again
      state.record.clear_read_ids();
      state.variant_paths.reset();
    }
    if (!writes.empty()) {
      // Before its render's events: the story of a change starts with the change.
      Publish(
          replaced.has_value()
              ? MakeEvent("bundle.replaced", bundle.name(), "",
                          absl::StrCat(scope_change.empty() ? std::string("replaced by an operator")
                                                            : scope_change,
                                       " (generation ", bundle.generation(),
                                       "); changed: ", ChangedFields(*replaced, bundle)))
              : MakeEvent("bundle.added", bundle.name(), "",
                          absl::StrCat("added by an operator: source ", bundle.source(), ", path ",
                                       bundle.path().empty() ? "/" : bundle.path(),
                                       bundle.selector().empty()
                                           ? ", every cluster"
                                           : absl::StrCat(", selector ", bundle.selector()))));
    }
  }
  RefreshDependencies();
  ReconcileAndWait(bundle.name(), wait_until);
  // A render that failed may be of a commit older than the one just pushed (a new path,
  // before the source's next poll): fetch once, and render what that brings.
  std::string failed_at;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(bundle.name());
    if (it != bundles_.end() && !it->second.record.error().empty()) {
      failed_at = it->second.record.error_commit();
    }
  }
  if (!failed_at.empty()) {
    absl::StatusOr<v1::SourceInfo> fetched = poller_.SyncNow(bundle.source(), WaitLeft(wait_until));
    if (fetched.ok() && !fetched->commit().empty() && fetched->commit() != failed_at) {
      ReconcileAndWait(bundle.name(), wait_until);
    }
  }
  MutexLock lock(&mu_);
  auto it = bundles_.find(bundle.name());
  if (it == bundles_.end()) {
    return absl::AbortedError(absl::StrCat("bundle \"", bundle.name(), "\" was removed"));
  }
  v1::BundleInfo info = InfoLocked(it->second);
  if (replaced.has_value()) *info.mutable_replaced() = *std::move(replaced);
  return info;
}

void Controller::DiffBundle(const std::string& cluster, const std::string& bundle,
                            absl::Duration timeout, Hub::DiffCallback done) {
  if (cluster.empty() || bundle.empty()) {
    done(absl::InvalidArgumentError("a diff needs a cluster and a bundle"));
    return;
  }
  {
    MutexLock lock(&mu_);
    if (bundles_.count(bundle) == 0) {
      done(absl::NotFoundError(absl::StrCat("bundle \"", bundle, "\" not found")));
      return;
    }
  }
  hub_->RequestDiff(cluster, bundle, timeout, std::move(done));
}

absl::Status Controller::RemoveBundle(const std::string& name, absl::Time wait_until) {
  {
    MutexLock writer(&writer_mu_);
    std::vector<Store::Write> writes;
    int64_t generation = 0;
    {
      MutexLock lock(&mu_);
      auto it = bundles_.find(name);
      if (it == bundles_.end()) {
        return absl::NotFoundError(absl::StrCat("bundle \"", name, "\" not found"));
      }
      std::vector<std::string> dependents;
      for (const auto& [other, state] : bundles_) {
        const auto& deps = state.definition.depends_on();
        if (std::find(deps.begin(), deps.end(), name) != deps.end()) dependents.push_back(other);
      }
      if (!dependents.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("bundle \"", name, "\" is a dependency of ", ListNames(dependents),
                         " (remove it from their --depends-on first)"));
      }
      // The tombstone is what makes agents prune: written with the deletion, durably.
      v1::Tombstone tombstone;
      tombstone.set_bundle(name);
      tombstone.set_generation(it->second.definition.generation() + 1);
      *tombstone.mutable_removed_time() = ToProtoTime(options_.clock->Now());
      generation = tombstone.generation();
      writes = {Store::Delete(kBundles, name), Store::Delete(kBundleRecords, name),
                Store::Delete(kRenderCaches, name), Store::Delete(kRolloutCuts, name),
                Store::Put(kTombstones, name, tombstone.SerializeAsString())};
      for (const std::string& rev : it->second.record.recent_revisions()) {
        writes.push_back(Store::Delete(kRevisionsTable, Revision::RevisionKey(name, rev)));
      }
    }
    absl::Status stored = store_->Apply(writes);
    if (!stored.ok()) return stored;
    {
      MutexLock lock(&mu_);
      bundles_.erase(name);
      tombstones_[name] = generation;
    }
    Publish(MakeEvent("bundle.removed", name, "",
                      "removed by an operator: clusters that hold it prune what it applied"));
  }
  // The reconcile tells the hub, in order with any reconcile of the bundle in progress.
  RefreshDependencies();
  ReconcileAndWait(name, wait_until);
  return absl::OkStatus();
}

std::vector<v1::BundleInfo> Controller::ListBundles(
    const std::string& from, size_t max, const std::function<bool(const std::string&)>& keep) {
  std::vector<v1::BundleInfo> out;
  std::vector<LabelSelector> selectors;
  {
    MutexLock lock(&mu_);
    for (auto it = bundles_.lower_bound(from);
         it != bundles_.end() && (max == 0 || out.size() < max); ++it) {
      if (keep != nullptr && !keep(it->first)) continue;
      out.push_back(InfoLocked(it->second));
      selectors.push_back(it->second.selector);
    }
  }
  // Counted by the hub, outside our lock: copying every cluster to count them made a
  // listing cost megabytes at 10,000 clusters, under the lock every agent's ACK takes.
  for (size_t i = 0; i < out.size(); ++i) {
    Hub::Rollout rollout = hub_->RolloutOf(out[i].bundle().name(), selectors[i]);
    out[i].set_target_clusters(rollout.targets);
    out[i].set_current_clusters(rollout.current);
    out[i].set_not_deployed_clusters(rollout.not_deployed);
    if (rollout.targets > 0 && rollout.current == rollout.targets) {
      *out[i].mutable_rolled_out_time() = ToProtoTime(rollout.last_current);
    }
  }
  return out;
}

void Controller::CountWithin(v1::BundleInfo* info, const LabelSelector& within) {
  std::optional<LabelSelector> selector;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(info->bundle().name());
    if (it != bundles_.end()) selector = it->second.selector;
  }
  if (!selector.has_value()) return;  // removed meanwhile: as listed
  Hub::Rollout rollout = hub_->RolloutOf(info->bundle().name(), *selector, &within);
  info->set_target_clusters(rollout.targets);
  info->set_current_clusters(rollout.current);
  info->set_not_deployed_clusters(rollout.not_deployed);
  info->clear_rolled_out_time();
  if (rollout.targets > 0 && rollout.current == rollout.targets) {
    *info->mutable_rolled_out_time() = ToProtoTime(rollout.last_current);
  }
}

std::vector<v1::ClusterInfo> Controller::ListClusters(
    const std::string& from, size_t max, const std::function<bool(const LabelMap&)>& keep) {
  std::vector<v1::ClusterInfo> out;
  for (ClusterView& view : hub_->Clusters("", from, max, keep)) {
    out.push_back(std::move(view.info));
  }
  return out;
}

std::string Controller::HeldBackLocked(const std::string& name, const BundleState& state,
                                       const v1::ClusterInfo& cluster,
                                       PartitionIndex& partition_of) const {
  if (state.record.suspended()) {
    return absl::StrCat(
        "bundle suspended: no cluster gets its new revisions until gitfleetctl "
        "bundle resume ",
        name);
  }
  if (std::string paused = HeldBySource(state.record, state.definition); !paused.empty()) {
    return paused;
  }
  if (cluster.suspended()) {
    return absl::StrCat(
        "cluster suspended for maintenance: it gets no new revisions until "
        "gitfleetctl cluster resume ",
        cluster.name());
  }
  if (state.caller_gone) return CallerGoneMessage(name, state.definition.scope().caller());
  if (state.ScopeGated() &&
      !state.InScopeNow(LabelMap(cluster.labels().begin(), cluster.labels().end()))) {
    return absl::StrCat("the scope of caller ", state.definition.scope().caller(),
                        " now has clusters=", *state.scope_clusters_now,
                        ", which does not cover this cluster: it keeps what it runs of the "
                        "bundle and gets no new revision of it until a fleet admin replaces "
                        "the bundle with --allow-removal (which removes it here)");
  }
  if (state.pushed_gate == nullptr || state.pushed_gate->Allows(cluster.name())) return "";
  const v1::RolloutRecord& rollout = state.record.rollout();
  const bool rolling = Progressive(state.Rollout()) && state.partitions != nullptr &&
                       rollout.partition() < static_cast<int>(state.partitions->size());
  if (rolling && (state.gate == nullptr || !state.gate->Allows(cluster.name()))) {
    if (partition_of.empty()) partition_of = IndexPartitions(*state.partitions);
    const int count = static_cast<int>(state.partitions->size());
    auto it = partition_of.find(cluster.name());
    std::string where =
        it == partition_of.end() ? "it is in no partition yet (it joined after they were cut)"
        : it->second == rollout.partition()
            ? absl::StrCat("its partition ", it->second + 1, "/", count,
                           " is given the revision a few clusters at a time (",
                           state.Rollout().declared_in().empty()
                               ? std::string("--paced")
                               : absl::StrCat(state.Rollout().declared_in(), "'s maxUnavailable"),
                           "), the next once one given it is ready, and this one's turn has not "
                           "come")
            : absl::StrCat("its partition ", it->second + 1, "/", count, " has not had its turn");
    std::string now =
        absl::StrCat("the rollout is at partition ", rollout.partition() + 1, "/", count);
    if (rollout.paused_by_operator()) {
      absl::StrAppend(&now, ", paused by an operator (gitfleetctl rollout resume ", name, ")");
    } else if (rollout.halted()) {
      absl::StrAppend(&now, ", paused: ", rollout.reason());
    } else if (rollout.has_ready_since()) {
      absl::StrAppend(
          &now, ", ready and baking (--bake-time=",
          absl::FormatDuration(absl::Seconds(state.definition.rollout().bake_seconds())),
          ") since ",
          absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProtoTime(rollout.ready_since()),
                           absl::UTCTimeZone()));
    }
    return absl::StrCat("rollout: ", where, "; ", now);
  }
  auto wait = state.dependency_waits.find(cluster.name());
  return wait != state.dependency_waits.end()
             ? absl::StrCat("waiting for dependencies: ", wait->second)
             : "waiting for the bundles it depends on";
}

absl::Status Controller::CheckStatusFilter(const std::string& cluster_filter,
                                           const std::string& bundle_filter) {
  bool defined = true;
  if (!bundle_filter.empty()) {
    MutexLock lock(&mu_);
    defined = bundles_.find(bundle_filter) != bundles_.end();
  }
  if (defined && cluster_filter.empty()) return absl::OkStatus();
  // One cluster, or (a bundle not defined here, which an agent may hold as an orphan) all of
  // them: a walk on this path only.
  const std::vector<ClusterView> clusters = hub_->Clusters(cluster_filter);
  if (!cluster_filter.empty() && clusters.empty()) {
    return absl::NotFoundError(absl::StrCat("cluster ", cluster_filter,
                                            " not found: neither registered nor connected (see "
                                            "gitfleetctl cluster list)"));
  }
  if (!defined && std::none_of(clusters.begin(), clusters.end(), [&](const ClusterView& c) {
        const auto& orphans = c.info.orphaned_bundles();
        return std::find(orphans.begin(), orphans.end(), bundle_filter) != orphans.end();
      })) {
    return absl::NotFoundError(absl::StrCat(
        "bundle ", bundle_filter,
        " not found: not defined here, nor held by an agent (see gitfleetctl bundle list)"));
  }
  return absl::OkStatus();
}

std::vector<v1::BundleStatus> Controller::GetStatus(const std::string& cluster_filter,
                                                    const std::string& bundle_filter) {
  return StatusesOf(hub_->Clusters(cluster_filter), bundle_filter);
}

std::string Controller::StatusPageToken(const v1::BundleStatus& last) {
  return absl::StrCat(last.cluster(), "/", last.bundle());  // names never hold a '/'
}

absl::StatusOr<Controller::StatusPage> Controller::GetStatusPage(const std::string& cluster_filter,
                                                                 const std::string& bundle_filter,
                                                                 const std::string& page_token,
                                                                 size_t page_size) {
  std::string after_cluster, after_bundle;
  if (!page_token.empty()) {
    std::vector<std::string> parts = absl::StrSplit(page_token, absl::MaxSplits('/', 1));
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("page_token \"", page_token,
                       "\" is not one this control plane gave (pass a page's next_page_token)"));
    }
    after_cluster = std::move(parts[0]);
    after_bundle = std::move(parts[1]);
  }
  page_size = std::max<size_t>(1, page_size);
  size_t bundles = 1;
  {
    MutexLock lock(&mu_);
    bundles = std::max<size_t>(1, bundles_.size());
  }
  // Clusters a batch at a time, about a page's worth of statuses each: the statuses of the
  // whole fleet are never built for one page.
  const size_t batch = page_size / bundles + 1;
  StatusPage page;
  std::string from = after_cluster;
  while (true) {
    std::vector<ClusterView> clusters = hub_->Clusters(cluster_filter, from, batch);
    if (clusters.empty()) break;
    for (v1::BundleStatus& status : StatusesOf(clusters, bundle_filter)) {
      if (!after_cluster.empty() &&
          std::tie(status.cluster(), status.bundle()) <= std::tie(after_cluster, after_bundle)) {
        continue;
      }
      if (page.statuses.size() == page_size) {  // and one more follows
        page.next_page_token = StatusPageToken(page.statuses.back());
        return page;
      }
      page.statuses.push_back(std::move(status));
    }
    if (!cluster_filter.empty() || clusters.size() < batch) break;
    from = clusters.back().info.name() + std::string(1, '\0');  // the next name on
  }
  return page;
}

std::vector<v1::BundleStatus> Controller::StatusesOf(const std::vector<ClusterView>& clusters,
                                                     const std::string& bundle_filter) {
  struct Pair {
    const ClusterView* cluster;
    v1::BundleInfo info;
    std::shared_ptr<const BundleVariants> content;
    google::protobuf::Timestamp committed_time;
    google::protobuf::Timestamp seen_time;
    std::string held_back;
    std::shared_ptr<const BundleContent> stable;  // what the hub gives joiners meanwhile
    std::string not_deployed;                     // why the bundle's files leave the cluster out
  };
  std::vector<Pair> pairs;
  {
    MutexLock lock(&mu_);
    // Each bundle's cluster -> partition, built when a status first needs it.
    std::map<std::string, PartitionIndex> partition_of;
    for (const ClusterView& cluster : clusters) {
      LabelMap labels(cluster.info.labels().begin(), cluster.info.labels().end());
      for (const auto& [name, state] : bundles_) {
        if (!bundle_filter.empty() && name != bundle_filter) continue;
        if (!state.selector.Matches(labels)) continue;
        pairs.push_back({&cluster, InfoLocked(state), state.content, state.record.committed_time(),
                         state.record.seen_time(),
                         HeldBackLocked(name, state, cluster.info, partition_of[name]),
                         state.pushed_stable});
      }
    }
  }
  // Each cluster's own revision, as built (a status never renders), outside the lock.
  std::vector<v1::BundleStatus> out;
  for (Pair& pair : pairs) {
    if (pair.content != nullptr && pair.content->Uniform() == nullptr) {
      std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> built =
          pair.content->Built(pair.cluster->info);
      absl::StatusOr<std::shared_ptr<const Revision>> revision =
          built.has_value() ? *std::move(built)
                            : absl::UnavailableError("its revision is being rendered");
      if (revision.ok()) {
        pair.info.set_revision((*revision)->id);
        pair.info.set_object_count(static_cast<int32_t>((*revision)->objects.size()));
      } else if (IsNotDeployed(revision.status())) {
        pair.info.clear_revision();
        pair.not_deployed = std::string(revision.status().message());
      } else if (!built.has_value()) {
        pair.info.clear_revision();
      } else {
        pair.info.clear_revision();
        if (pair.info.error().empty()) {
          pair.info.set_error(absl::StrCat("with the values of cluster ", pair.cluster->info.name(),
                                           ": ", revision.status().message()));
          pair.info.set_error_commit(pair.content->commit());
        }
      }
    }
    auto report = pair.cluster->reports.find(pair.info.bundle().name());
    if (!pair.held_back.empty() && pair.stable != nullptr &&
        report != pair.cluster->reports.end() &&
        pair.stable->Find(report->second.applied_revision()) != nullptr) {
      absl::StrAppend(&pair.held_back, "; meanwhile it runs ",
                      report->second.applied_revision().substr(0, 12),
                      ", the last revision the whole fleet was given");
    }
    out.push_back(ComposeStatus(pair.cluster->info, pair.info, pair.committed_time, pair.seen_time,
                                report == pair.cluster->reports.end() ? nullptr : &report->second,
                                pair.held_back, pair.not_deployed));
  }
  // Orphans: what the agents hold and enforce without a definition here.
  for (const ClusterView& cluster : clusters) {
    for (const std::string& bundle : cluster.info.orphaned_bundles()) {
      if (!bundle_filter.empty() && bundle != bundle_filter) continue;
      v1::BundleStatus status;
      status.set_cluster(cluster.info.name());
      status.set_bundle(bundle);
      status.set_orphaned(true);
      status.set_health(v1::HEALTH_STATE_UNKNOWN);
      auto report = cluster.reports.find(bundle);
      if (report != cluster.reports.end()) {
        status.set_applied_revision(report->second.applied_revision());
        status.set_applied_commit(report->second.applied_commit());
        status.set_sync_state(report->second.sync_state());
        status.set_health(report->second.health());
        *status.mutable_applied_time() = report->second.applied_time();
      }
      status.set_message(absl::StrCat(
          "orphaned: the agent keeps enforcing this bundle, which this control plane does not "
          "know; define it again, or release it with gitfleetctl cluster forget ",
          cluster.info.name(), " --bundle=", bundle, " [--prune]"));
      out.push_back(std::move(status));
    }
  }
  // Orphans among the rest: one order, so pages can resume after any status.
  std::stable_sort(out.begin(), out.end(),
                   [](const v1::BundleStatus& a, const v1::BundleStatus& b) {
                     return std::tie(a.cluster(), a.bundle()) < std::tie(b.cluster(), b.bundle());
                   });
  return out;
}

absl::Status Controller::AdoptCluster(const std::string& cluster) {
  if (cluster.empty()) return absl::InvalidArgumentError("adopt needs a cluster name");
  return hub_->AdoptCluster(cluster);
}

absl::Status Controller::ForgetBundle(const std::string& cluster, const std::string& bundle,
                                      bool prune) {
  if (cluster.empty() || bundle.empty()) {
    return absl::InvalidArgumentError("forget needs a cluster and a bundle");
  }
  return hub_->ForgetBundle(cluster, bundle, prune);
}

v1::BundleInfo Controller::InfoLocked(const BundleState& state) const {
  v1::BundleInfo info;
  *info.mutable_bundle() = state.definition;
  if (state.content != nullptr) {
    std::shared_ptr<const Revision> shown = state.content->Uniform();
    std::vector<std::string> ids = state.content->RevisionIds();
    if (shown == nullptr && !ids.empty()) shown = state.content->Find(ids.front());
    if (shown != nullptr) {
      info.set_revision(shown->id);
      info.set_object_count(static_cast<int32_t>(shown->objects.size()));
    }
    info.set_variants(static_cast<int32_t>(ids.size()));
  }
  info.set_commit(state.record.commit());
  info.set_error(state.record.error());
  info.set_error_commit(state.record.error_commit());
  info.set_engine(state.record.engine());
  *info.mutable_notes() = state.record.notes();
  // What the folder holds is known from the record at once (the rollout's own message
  // follows its next evaluation).
  const std::string held = HeldBySource(state.record, state.definition);
  info.set_rollout(held.empty() ? state.rollout_message : held);
  info.set_waiting(state.siblings.note());
  info.set_scope_held(state.scope_held);
  if (info.waiting().empty()) {
    // A dependency may be defined after its dependent (Flux's dependsOn waits the same
    // way); until it is, nothing new reaches the dependent's clusters.
    std::vector<std::string> undefined;
    for (const std::string& dependency : state.definition.depends_on()) {
      if (bundles_.count(dependency) == 0) undefined.push_back(dependency);
    }
    if (!undefined.empty()) {
      info.set_waiting(absl::StrCat("depends on ", undefined.size() == 1 ? "bundle " : "bundles ",
                                    ListNames(undefined),
                                    ", not defined: its clusters get no new "
                                    "revision until ",
                                    undefined.size() == 1 ? "it is" : "they are"));
    }
  }
  if (auto failing = source_errors_.find(state.definition.source());
      failing != source_errors_.end()) {
    info.set_source_error(failing->second);
  }
  info.set_suspended(state.record.suspended());
  info.set_pinned_commit(state.record.pinned_commit());
  info.set_pinned_no_prune(state.record.pinned_no_prune());
  return info;
}

BundleVariants::Params Controller::ContentParams(const std::string& name,
                                                 const v1::Bundle& definition,
                                                 const ValuesSpec& values, uint64_t generation,
                                                 const std::string& commit,
                                                 absl::Time committed_time) {
  BundleVariants::Params params{
      name,
      commit,
      committed_time,
      definition.sync(),
      definition.target_namespace(),
      absl::InfinitePast(),
      values,
      [mailbox = mailbox_, name, generation](const std::shared_ptr<const Revision>& revision) {
        mailbox->NewRevision(name, generation, revision);
      }};
  params.allow_empty = definition.allow_empty();
  params.kinds.assign(definition.scope().kinds().begin(), definition.scope().kinds().end());
  params.deny_kinds.assign(definition.scope().deny_kinds().begin(),
                           definition.scope().deny_kinds().end());
  params.caller = definition.scope().caller();
  params.substitute = WantsSubstitution(definition);
  params.path = definition.path();
  params.engine = definition.engine();
  return params;
}

void Controller::RememberRevision(const std::string& bundle, const std::string& id, size_t kept,
                                  v1::BundleRecord* record, std::vector<Store::Write>* writes) {
  auto* recent = record->mutable_recent_revisions();
  recent->Add()->assign(id);
  std::rotate(recent->rbegin(), recent->rbegin() + 1, recent->rend());  // newest first
  while (static_cast<size_t>(recent->size()) > kept) {
    // The oldest, except the revision a rollout under way gives clusters that join it.
    int oldest = recent->size() - 1;
    if (oldest > 1 && recent->Get(oldest) == record->rollout().stable_revision()) --oldest;
    writes->push_back(
        Store::Delete(kRevisionsTable, Revision::RevisionKey(bundle, recent->Get(oldest))));
    recent->erase(recent->begin() + oldest);
  }
}

void Controller::PersistNewRevisions(const std::string& bundle) {
  std::vector<std::pair<uint64_t, std::shared_ptr<const Revision>>> pending =
      mailbox_->Take(bundle);
  if (pending.empty()) return;
  MutexLock writer(&writer_mu_);
  v1::BundleRecord record;
  std::vector<Store::Write> writes;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(bundle);
    if (it == bundles_.end()) return;
    BundleState& state = it->second;
    record = state.record;
    size_t variants = state.content != nullptr ? state.content->RevisionIds().size() : 0;
    for (const auto& [generation, revision] : pending) {
      if (generation != state.generation) continue;  // from a definition replaced since
      const auto& recent = record.recent_revisions();
      if (std::find(recent.begin(), recent.end(), revision->id) != recent.end()) continue;
      writes.push_back(
          Store::Put(kRevisionsTable, revision->key(), revision->ToRecord().SerializeAsString()));
      RememberRevision(bundle, revision->id, options_.revisions_kept + variants + 1, &record,
                       &writes);
    }
  }
  if (writes.empty()) return;
  writes.push_back(Store::Put(kBundleRecords, bundle, StoredRecord(record)));
  if (absl::Status stored = store_->Apply(writes); !stored.ok()) {
    // Only deltas after a restart need them; the next render stores its own.
    GF_LOG(ERROR) << "bundle " << bundle << ": cannot store " << pending.size()
                  << " revisions built for cluster values: " << stored;
    return;
  }
  MutexLock lock(&mu_);
  auto it = bundles_.find(bundle);
  if (it != bundles_.end()) it->second.record = std::move(record);
}

void Controller::OnSourceCommit(const std::string& source, const SourceSnapshot& snapshot) {
  // Only names are queued: each reconcile reads the source's snapshot as it is then.
  EventBus::Audience names;
  {
    MutexLock lock(&mu_);
    auto known = sources_.find(source);
    if (known != sources_.end() && FollowsDefaultBranch(known->second.ref()) &&
        !snapshot.commit.branch.empty()) {
      default_branches_[source] = snapshot.commit.branch;
    }
    names = AudienceOfLocked(source);
  }
  // Before the reconciles it causes, so a subscriber sees the commit before its renders.
  Publish(
      MakeEvent("source.commit", "", "", snapshot.commit.summary, snapshot.commit.id, "", source),
      names);
  std::vector<uint64_t> tickets;
  tickets.reserve(names->size());
  for (const std::string& name : *names) tickets.push_back(queue_.Add(name));
  MutexLock lock(&mu_);
  for (size_t i = 0; i < names->size(); ++i) {
    auto it = bundles_.find((*names)[i]);
    if (it != bundles_.end()) it->second.commit_ticket = tickets[i];
  }
}

void Controller::OnSourceError(const std::string& source, const std::string& error) {
  EventBus::Audience names;
  {
    MutexLock lock(&mu_);
    if (sources_.count(source) == 0) return;  // removed while it was fetched
    if (error.empty()) {
      source_errors_.erase(source);
    } else {
      source_errors_[source] = error;
    }
    names = AudienceOfLocked(source);
  }
  Publish(error.empty()
              ? MakeEvent("source.recovered", "", "", "fetched and resolved again", "", "", source)
              : MakeEvent("source.failed", "", "",
                          absl::StrCat(error, " (its bundles stay at their last revision)"), "", "",
                          source),
          names);
}

bool Controller::EventConcernsClusters(const v1::Event& event, const LabelSelector& clusters) {
  if (!event.cluster().empty()) {
    std::optional<LabelMap> labels = hub_->LabelsOf(event.cluster());
    return labels.has_value() && clusters.Matches(*labels);
  }
  std::vector<std::pair<std::string, std::optional<LabelSelector>>> bundles;
  if (!event.bundle().empty()) {
    bundles.emplace_back(event.bundle(), std::nullopt);
  } else if (!event.source().empty()) {
    // The source's bundles, in name order; none: it concerns no cluster yet.
  } else {
    return true;
  }
  {
    MutexLock lock(&mu_);
    if (!event.bundle().empty()) {
      auto it = bundles_.find(event.bundle());
      if (it != bundles_.end()) bundles.front().second = it->second.selector;
    } else {
      for (const auto& [name, state] : bundles_) {
        if (state.definition.source() == event.source()) bundles.emplace_back(name, state.selector);
      }
    }
  }
  // A bundle no longer defined (removed) concerns the clusters that still hold it.
  return std::any_of(bundles.begin(), bundles.end(), [&](const auto& bundle) {
    return hub_->ConcernsAny(clusters, bundle.first,
                             bundle.second.has_value() ? &*bundle.second : nullptr);
  });
}

bool Controller::BundleDefined(const std::string& name) {
  MutexLock lock(&mu_);
  return bundles_.count(name) > 0;
}

bool Controller::BundleConcernsCluster(const std::string& bundle, const std::string& cluster) {
  std::optional<LabelSelector> selector;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(bundle);
    if (it != bundles_.end()) selector = it->second.selector;
  }
  // A bundle no longer defined (removed, or an orphan) concerns the clusters holding it.
  return hub_->Concerns(cluster, bundle, selector.has_value() ? &*selector : nullptr);
}

EventBus::Audience Controller::AudienceOfLocked(const std::string& source) {
  std::vector<std::string> reading;
  for (const auto& [name, state] : bundles_) {  // in name order
    if (state.definition.source() == source) reading.push_back(name);
  }
  auto last = source_audiences_.find(source);
  if (last != source_audiences_.end() && *last->second == reading) return last->second;
  auto names = std::make_shared<const std::vector<std::string>>(std::move(reading));
  if (sources_.count(source) > 0) source_audiences_[source] = names;
  return names;
}

absl::Status Controller::Reconcile(const std::string& name) {
  PersistNewRevisions(name);
  std::string source;
  uint64_t generation = 0;
  std::string reconciled_commit;
  uint64_t reconciled_generation = 0;
  std::optional<int64_t> tombstone;
  v1::Bundle definition;
  std::shared_ptr<const BundleVariants> content;
  std::string pinned;
  std::string pinned_ref;
  bool remote_due = false;
  std::string revision_before;
  BundleState::SettledFailure settled;
  uint64_t asks = 0;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) {
      auto t = tombstones_.find(name);
      if (t != tombstones_.end()) tombstone = t->second;
    } else {
      source = it->second.definition.source();
      definition = it->second.definition;
      generation = it->second.generation;
      reconciled_commit = it->second.reconciled_commit;
      reconciled_generation = it->second.reconciled_generation;
      content = it->second.content;
      pinned = it->second.record.pinned_commit();
      pinned_ref = it->second.record.pinned_ref();
      // Read from outside the repository: rendered again each resync interval (the
      // resync's own spread is at least 90% of it).
      remote_due =
          (it->second.record.reads_remote() && options_.resync_interval > absl::ZeroDuration() &&
           options_.clock->Now() - it->second.rendered_at >= options_.resync_interval * 0.9) ||
          it->second.remote_pushed;
      it->second.remote_pushed = false;
      revision_before = it->second.record.revision();
      settled = it->second.settled;
      asks = it->second.asks;
    }
  }
  if (source.empty()) {
    // Removed: the hub sends removals to the agents that hold it (idempotent). Its rollout
    // series go (a paused one would fire GitfleetRolloutPaused for ever).
    if (tombstone.has_value()) hub_->RemoveBundle(name, *tombstone);
    metrics_.rollout_partition.Remove({{"bundle", name}});
    metrics_.rollout_paused.Remove({{"bundle", name}});
    metrics_.rollout_partitions_passed.Remove({{"bundle", name}});
    metrics_.prune_held.Remove({{"bundle", name}});
    return absl::OkStatus();
  }
  absl::Status status;
  std::optional<SourceSnapshot> snapshot = poller_.Snapshot(source);
  const std::string head = snapshot.has_value() ? snapshot->commit.id : "";
  bool rendered = false;
  absl::Status refused;  // the pinned commit's signature
  if (snapshot.has_value() && !pinned.empty() && snapshot->commit.id != pinned) {
    // Rolled back: the pinned commit, whatever the source's branch says.
    absl::StatusOr<CommitInfo> commit = snapshot->repo->Resolve(pinned);
    if (!commit.ok()) {
      return absl::Status(commit.status().code(),
                          absl::StrCat("pinned commit ", pinned, ": ", commit.status().message()));
    }
    snapshot->commit = *commit;
  }
  // Before anything is pushed: a rollout this pass starts records the same stable content.
  if (snapshot.has_value()) RenderStableAgain(name, *snapshot);
  bool moved = snapshot.has_value() &&
               (reconciled_generation != generation || reconciled_commit != snapshot->commit.id);
  if (moved && !remote_due && settled.commit == snapshot->commit.id &&
      settled.generation == generation && settled.asks == asks &&
      options_.clock->Now() < settled.until) {
    // It failed at this commit on its own content: rendering it again fails the same
    // way (see BundleState::settled). The clusters keep what they run.
    moved = false;
  }
  if (snapshot.has_value() && (moved || remote_due) && !pinned.empty() && head != pinned) {
    // Its source takes only signed commits: checked at each render of the pinned commit
    // (cached per commit and keys), so a pin from before the source verified, or a key
    // since taken out, renders nothing; the clusters keep what they run.
    absl::StatusOr<std::string> signer = poller_.VerifyForSource(
        source, *snapshot->repo, snapshot->commit, pinned_ref.empty() ? pinned : pinned_ref);
    if (!signer.ok()) {
      refused = absl::Status(
          signer.status().code(),
          absl::StrCat("pinned commit ", pinned.substr(0, 12), ": ", signer.status().message()));
    }
  }
  if (snapshot.has_value() && (moved || remote_due)) {
    status = RenderBundle(name, *snapshot, /*fresh=*/remote_due, refused);
    rendered = true;
    if (!status.ok()) {
      // Failed on its own content: the bundle says so, and the resync tries again (not
      // the queue's backoff, which would render it for nothing).
      MutexLock lock(&mu_);
      auto it = bundles_.find(name);
      if (it != bundles_.end() && it->second.settled.commit == snapshot->commit.id &&
          it->second.settled.generation == generation) {
        status = absl::OkStatus();
      }
    }
    if (events_ != nullptr) {
      v1::Event event;
      {
        MutexLock lock(&mu_);
        auto it = bundles_.find(name);
        if (it != bundles_.end()) {
          const v1::BundleRecord& record = it->second.record;
          // With per-cluster values the clusters' revisions differ from this one, the
          // render before them: say so, or a subscriber looks for it in vain.
          const char* per_cluster =
              record.uniform() ? "" : "; each cluster runs a revision built for its values";
          event =
              record.error().empty() || record.error_commit() != snapshot->commit.id
                  ? MakeEvent("render.done", name, "",
                              it->second.render_reused
                                  ? absl::StrCat("nothing it reads changed at ",
                                                 snapshot->commit.id.substr(0, 12), ": the last ",
                                                 record.engine(), " render stands (render cache)",
                                                 per_cluster)
                                  : absl::StrCat(record.engine(), " render of ",
                                                 snapshot->commit.id.substr(0, 12), per_cluster),
                              snapshot->commit.id, record.revision())
                  : MakeEvent("render.failed", name, "", record.error(), snapshot->commit.id);
          std::string told = event.type() == "render.failed"
                                 ? absl::StrCat(snapshot->commit.id, "\n", record.error())
                                 : "";
          if (!told.empty() && told == it->second.failure_told) event.Clear();
          // Rendered again for its remote bases alone, to the same revision: nothing new.
          if (!moved && told.empty() && record.revision() == revision_before) event.Clear();
          if (status.ok() || !told.empty()) it->second.failure_told = std::move(told);
        }
      }
      if (!event.type().empty() && (status.ok() || event.type() == "render.failed")) {
        Publish(std::move(event));
      }
    }
  } else if (content != nullptr && content->Uniform() == nullptr) {
    // Rendered and current: build the revisions of targeted clusters that lack one (a
    // cluster connected, or its labels changed). Only here do engines render for values.
    status = Probe(definition, *content);
  }
  BuildStableRevisions(name);
  PersistNewRevisions(name);
  GiveNewestToHub(name);
  // A render, good or failed, is what bundles of the source that wait for it wait for.
  if (rendered) {
    {
      MutexLock lock(&mu_);
      ++renders_done_;
    }
    WakeSiblingWaiters(name);
    WakeDependents(name);
  }
  std::string began;  // the wait's note, when this pass began it
  std::vector<std::string> fetch;
  bool fetching = false;  // waits for another repository's fetch, which tells no one
  if (WaitsForSiblings(name, head, &began, &fetch, &fetching)) {
    if (!began.empty()) Publish(MakeEvent("render.waiting", name, "", began, head));
    for (const std::string& other : fetch) {
      absl::Status queued = poller_.FetchSoon(other);
      if (!queued.ok()) GF_LOG(WARNING) << "source " << other << ": " << queued;
    }
    queue_.AddAfter(name, fetching ? absl::Milliseconds(200) : SiblingStall());
    return status;
  }
  PushToHub(name);
  if (options_.resync_interval > absl::ZeroDuration()) {
    // Level-triggered to the end: again later even if no event comes (one sooner wins).
    const double spread =
        0.9 + 0.2 * static_cast<double>(std::hash<std::string>()(name) % 1000) / 1000.0;
    queue_.AddAfter(name, options_.resync_interval * spread);
  }
  return status;
}

namespace {

// A revision standing for `content`'s objects: its single one, its template, or the first
// built for a cluster; null when none is built.
std::shared_ptr<const Revision> SomeRevision(const BundleVariants& content) {
  if (std::shared_ptr<const Revision> uniform = content.Uniform()) return uniform;
  if (content.template_revision() != nullptr) return content.template_revision();
  std::vector<std::string> ids = content.RevisionIds();
  return ids.empty() ? nullptr : content.Find(ids.front());
}

// Whether `after` no longer holds some object `before` held (true when unsure).
bool DropsObjects(const BundleVariants& before, const BundleVariants& after) {
  std::shared_ptr<const Revision> a = SomeRevision(before);
  std::shared_ptr<const Revision> b = SomeRevision(after);
  if (a == nullptr || b == nullptr) return true;
  for (const auto& [key, object] : a->objects.objects()) {
    if (b->objects.objects().count(key) == 0) return true;
  }
  return false;
}

}  // namespace

std::string Controller::CommitStreamLocked(const std::string& source) const {
  auto it = sources_.find(source);
  if (it == sources_.end()) return "";
  absl::string_view ref = it->second.ref();
  absl::ConsumePrefix(&ref, "refs/heads/");
  if (FollowsDefaultBranch(ref)) {
    // The default branch, by name once a fetch told it: "" and "main" are one stream
    // when the remote's HEAD is main. Before that, it matches only other sources that
    // follow the same remote's default branch.
    auto branch = default_branches_.find(source);
    ref = branch != default_branches_.end() ? absl::string_view(branch->second) : "(default)";
  }
  return absl::StrCat(NormalizeRepoUrl(it->second.url()), " ", ref);
}

bool Controller::SameCommitsLocked(const std::string& a, const std::string& b) const {
  if (a == b) return true;
  const std::string stream = CommitStreamLocked(a);
  return !stream.empty() && stream == CommitStreamLocked(b);
}

namespace {

// "source app", or "sources app and app2 (one repository at one ref)".
std::string SourcesNamed(const std::string& own, const std::set<std::string>& others) {
  if (others.empty()) return absl::StrCat("source ", own);
  std::vector<std::string> names = {own};
  names.insert(names.end(), others.begin(), others.end());
  const std::string last = names.back();
  names.pop_back();
  return absl::StrCat("sources ", absl::StrJoin(names, ", "), " and ", last,
                      " (one repository at one ref)");
}

}  // namespace

bool Controller::WaitsForSiblings(const std::string& name, const std::string& head,
                                  std::string* began, std::vector<std::string>* fetch,
                                  bool* fetching) {
  // Only a new render of the source's head, not pinned, that drops objects: those may
  // have moved to another bundle of the source in the same commit.
  auto drops = [&](const BundleState& state) {
    return !head.empty() && state.content != nullptr && state.pushed_content != nullptr &&
           state.content != state.pushed_content && state.content->commit() == head &&
           state.record.pinned_commit().empty() &&
           DropsObjects(*state.pushed_content, *state.content);
  };
  // Other repositories whose bundles share a cluster with it: found once per wait, and
  // with their fetches, read outside the lock (the hub's clusters, the poller's sources).
  std::optional<std::set<std::string>> neighbors;
  std::shared_ptr<const BundleVariants> content, pushed;
  LabelSelector selector;
  std::vector<std::pair<std::string, LabelSelector>> candidates;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return false;
    BundleState& state = it->second;
    if (!drops(state)) {
      state.siblings.Clear();
      return false;
    }
    content = state.content;
    pushed = state.pushed_content;
    if (state.siblings.commit() == head) neighbors = state.siblings.neighbors();
    if (!neighbors.has_value()) {
      selector = state.selector;
      const std::string& own = state.definition.source();
      for (const auto& [other, bundle] : bundles_) {
        if (other == name || !bundle.record.pinned_commit().empty() ||
            SameCommitsLocked(bundle.definition.source(), own)) {
          continue;
        }
        candidates.emplace_back(bundle.definition.source(), bundle.selector);
      }
    }
  }
  if (!neighbors.has_value()) neighbors = NeighborSources(selector, candidates);
  std::map<std::string, v1::SourceInfo> fetched;  // a neighbor's last fetch
  for (const std::string& source : *neighbors) {
    if (std::optional<v1::SourceInfo> info = poller_.Get(source)) fetched[source] = *info;
  }
  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  if (it == bundles_.end()) return false;
  BundleState& state = it->second;
  if ((state.content != content || state.pushed_content != pushed) && !drops(state)) {
    state.siblings.Clear();
    return false;
  }
  // Bundles of its source, or of another source that reads the same repository at the
  // same ref: one commit may move an object between any two of them.
  const std::string& own = state.definition.source();
  const std::string stream = CommitStreamLocked(own);
  std::map<std::string, bool> same;  // other source -> whether it reads `stream`
  std::vector<std::string> behind;
  std::set<std::string> other_sources;  // of bundles behind
  for (const auto& [other, sibling] : bundles_) {
    const std::string& source = sibling.definition.source();
    if (source != own) {
      auto [known, added] = same.emplace(source, false);
      if (added) known->second = !stream.empty() && CommitStreamLocked(source) == stream;
      if (!known->second) continue;
    }
    if (other == name || sibling.DoneWith(head)) continue;
    behind.push_back(other);
    if (sibling.definition.source() != own) other_sources.insert(sibling.definition.source());
  }
  // Other repositories on its clusters: an object may have been added to one of their
  // bundles before this commit dropped it, and their polls may come later. Each is fetched
  // once the wait began, and its bundles render what that fetch found (a failed fetch, or
  // render, counts as done), so what moved is handed over there too.
  const absl::Time now = options_.clock->Now();
  const absl::Time since = state.siblings.commit() == head ? state.siblings.started() : now;
  std::vector<std::string> unfetched;  // sources
  std::vector<std::string> elsewhere;  // their bundles that have not rendered what they found
  for (const auto& [source, info] : fetched) {
    if (FromProtoTime(info.fetched_time()) < since || !info.has_fetched_time()) {
      unfetched.push_back(source);
      continue;
    }
    for (const auto& [other, bundle] : bundles_) {
      if (bundle.definition.source() != source || info.commit().empty() ||
          bundle.DoneWith(info.commit())) {
        continue;
      }
      elsewhere.push_back(other);
    }
  }
  *fetching = !unfetched.empty();
  if (behind.empty() && unfetched.empty() && elsewhere.empty()) {
    if (state.siblings.commit() == head) {
      metrics_.sibling_waits.Add({{"result", "done"}}).Increment();
    }
    state.siblings.Clear();
    return false;
  }
  bool started = false;
  const bool waits = state.siblings.GoesOn(head, renders_done_, now, SiblingStall(), &started);
  const std::string sources = SourcesNamed(own, other_sources);
  const std::string others = unfetched.empty() ? std::string()
                             : unfetched.size() == 1
                                 ? absl::StrCat("source ", unfetched.front())
                                 : absl::StrCat("sources ", absl::StrJoin(unfetched, ", "));
  std::vector<std::string> waited;  // what it waits for, as its note says
  if (!behind.empty()) {
    waited.push_back(absl::StrCat(behind.size(),
                                  behind.size() == 1 ? " other bundle" : " other bundles", " of ",
                                  sources, " to render it too (first ", behind.front(), ")"));
  }
  if (!unfetched.empty()) {
    waited.push_back(absl::StrCat(others, " (another repository on its clusters) to fetch"));
  }
  if (!elsewhere.empty()) {
    waited.push_back(absl::StrCat(elsewhere.size(), elsewhere.size() == 1 ? " bundle" : " bundles",
                                  " of another repository on its clusters to render what it "
                                  "fetched (first ",
                                  elsewhere.front(), ")"));
  }
  const std::string first = !behind.empty()      ? behind.front()
                            : !elsewhere.empty() ? elsewhere.front()
                                                 : std::string();
  if (started) {
    state.siblings.set_neighbors(*neighbors);
    GF_LOG(INFO) << "bundle " << name << ": its render of " << head.substr(0, 12)
                 << " drops objects; it goes to the clusters once "
                 << absl::StrJoin(waited, ", and ")
                 << ", so what moved to one of them is handed over, never deleted";
    // A source of the repository fetched apart (its URL written another way, or another
    // credential) may not have seen the commit yet, or may have seen a newer one than
    // this source has: both fetch now, not a poll interval later.
    auto own_source = sources_.find(own);
    for (const std::string& source : other_sources) {
      auto it = sources_.find(source);
      if (own_source != sources_.end() && it != sources_.end() &&
          RepoKey(it->second) != RepoKey(own_source->second)) {
        if (fetch->empty()) fetch->push_back(own);
        fetch->push_back(source);
      }
    }
    fetch->insert(fetch->end(), unfetched.begin(), unfetched.end());
  }
  if (!waits) {
    GF_LOG(WARNING) << "bundle " << name << ": "
                    << (first.empty() ? absl::StrCat(others, " has not fetched")
                                      : absl::StrCat("bundle ", first, " of source ",
                                                     bundles_.at(first).definition.source(),
                                                     " has not rendered ", head.substr(0, 12)))
                    << " (no render finished for " << absl::FormatDuration(SiblingStall())
                    << ", or the wait reached " << absl::FormatDuration(SiblingWait::kMaxWait)
                    << "); the clusters get this bundle's render without waiting longer (an "
                       "object moved to that bundle is deleted, then created again)";
    metrics_.sibling_waits.Add({{"result", "abandoned"}}).Increment();
    state.siblings.Clear();
    return false;
  }
  state.siblings.set_note(absl::StrCat("its render of ", head.substr(0, 12),
                                       " drops objects and waits for ",
                                       absl::StrJoin(waited, ", and for "),
                                       ", so that what moved to one of them is handed over, "
                                       "not deleted"));
  if (started) *began = state.siblings.note();
  return true;
}

std::set<std::string> Controller::NeighborSources(
    const LabelSelector& selector,
    const std::vector<std::pair<std::string, LabelSelector>>& candidates) {
  std::set<std::string> sources;
  if (candidates.empty()) return sources;
  const std::vector<std::pair<std::string, LabelMap>> clusters =
      hub_->MatchingClusterLabels(selector);
  for (const auto& [source, other] : candidates) {
    if (sources.count(source) > 0) continue;
    for (const auto& [cluster, labels] : clusters) {
      if (other.Matches(labels)) {
        sources.insert(source);
        break;
      }
    }
  }
  return sources;
}

absl::Duration Controller::SiblingStall() const {
  return std::max(SiblingWait::kMinStall, 2 * options_.engines.timeout);
}

bool SiblingWait::GoesOn(const std::string& head, uint64_t renders, absl::Time now,
                         absl::Duration stall, bool* started) {
  *started = commit_ != head;
  if (*started) {
    commit_ = head;
    started_ = now;
  }
  if (*started || renders != renders_) progress_ = now;  // begun, or a render finished
  renders_ = renders;
  return now - progress_ < stall && now - started_ < kMaxWait;
}

void Controller::GiveNewestToHub(const std::string& name) {
  std::shared_ptr<const BundleVariants> content;
  LabelSelector selector;
  std::string selector_text;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    // A definition replaced with the same render may target other clusters.
    if (it == bundles_.end() || it->second.content == nullptr ||
        (it->second.newest_given == it->second.content &&
         it->second.newest_selector == it->second.selector.text())) {
      return;
    }
    content = it->second.content;
    selector = it->second.selector;
    selector_text = it->second.selector.text();
  }
  hub_->SetNewestContent(name, selector, content);
  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  if (it == bundles_.end()) return;
  it->second.newest_given = content;
  it->second.newest_selector = std::move(selector_text);
}

void Controller::WakeSiblingWaiters(const std::string& name) {
  std::vector<std::string> waiting;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return;
    const std::string& source = it->second.definition.source();
    for (const auto& [other, sibling] : bundles_) {
      if (other != name && !sibling.siblings.commit().empty() &&
          (SameCommitsLocked(sibling.definition.source(), source) ||
           (sibling.siblings.neighbors().has_value() &&
            sibling.siblings.neighbors()->count(source) > 0))) {
        waiting.push_back(other);
      }
    }
  }
  for (const std::string& other : waiting) queue_.Add(other);
}

void Controller::WakeDependents(const std::string& name) {
  std::vector<std::string> waiting;
  {
    MutexLock lock(&mu_);
    for (const auto& [dependent, dependencies] : dependencies_) {
      if (std::find(dependencies.begin(), dependencies.end(), name) != dependencies.end()) {
        waiting.push_back(dependent);
      }
    }
  }
  for (const std::string& dependent : waiting) queue_.Add(dependent);
}

void Controller::RenderStableAgain(const std::string& name, const SourceSnapshot& snapshot) {
  std::string commit_id;
  RepositoryReads reads;
  std::string gitrepo;
  v1::Bundle definition;
  ValuesSpec values;
  uint64_t generation = 0;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end() || it->second.stable_to_render.empty()) return;
    commit_id = std::exchange(it->second.stable_to_render, "");  // tried once
    if (it->second.stable != nullptr) return;
    reads = ReadsOf(it->second.record);
    definition = it->second.definition;
    values = it->second.values;
    generation = it->second.generation;
    // The name the fleet's revision was made with, unless the record is from before.
    gitrepo = it->second.record.fleet_gitrepo().empty() ? FleetGitRepoLocked(definition.source())
                                                        : it->second.record.fleet_gitrepo();
  }
  absl::StatusOr<CommitInfo> commit = snapshot.repo->Resolve(commit_id);
  Built built;
  built.engine = definition.engine();
  absl::Status status = commit.status();
  if (commit.ok()) {
    SourceSnapshot at = snapshot;
    at.commit = *commit;
    // Not a new commit seen: no fan-out time is measured from it.
    status = BuildContent(name, definition, values, generation, at, absl::InfinitePast(), reads,
                          gitrepo, &built);
  }
  if (status.ok() && (built.content == nullptr || built.content->template_revision() != nullptr)) {
    status = absl::FailedPreconditionError(
        absl::StrCat("its engine is ", built.engine, ", not one that renders per cluster"));
  }
  if (!status.ok()) {
    GF_LOG(WARNING) << "bundle " << name << ": cannot render " << commit_id.substr(0, 12)
                    << ", the render the fleet ran, again (clusters that join its rollout get "
                       "nothing until their turn): "
                    << status;
    return;
  }
  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  // A definition changed meanwhile renders differently: its stable content is no longer
  // what the fleet ran.
  if (it == bundles_.end() || it->second.generation != generation || it->second.stable != nullptr) {
    return;
  }
  GF_LOG(INFO) << "bundle " << name << ": rendered " << commit_id.substr(0, 12)
               << " again, the render the fleet ran, for clusters that join its rollout";
  it->second.stable = std::move(built.content);
  it->second.stable_generation = definition.generation();
}

void Controller::BuildStableRevisions(const std::string& name) {
  std::shared_ptr<const BundleVariants> stable;
  LabelSelector selector;
  Hub::Gate gate;
  Hub::Gate stable_gate;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return;
    const BundleState& state = it->second;
    stable = std::dynamic_pointer_cast<const BundleVariants>(state.pushed_stable);
    selector = state.selector;
    gate = state.pushed_gate;
    stable_gate = state.pushed_stable_gate;
  }
  if (stable == nullptr || stable->Uniform() != nullptr || gate == nullptr) return;
  for (const v1::ClusterInfo& cluster : hub_->MatchingClustersHoldingNothing(name, selector)) {
    if (gate->Allows(cluster.name())) continue;
    if (stable_gate != nullptr && !stable_gate->Allows(cluster.name())) continue;
    // A failure shows in the cluster's status (its turn brings the current revision).
    (void)stable->For(cluster);
  }
}

void Controller::PushToHub(const std::string& name) {
  // The rollout's gate first: when it holds nobody back, the content is the stable one (a
  // cluster that joins the next rollout gets it meanwhile).
  Hub::Gate rollout_gate = RolloutGate(name);
  bool has_stable = false;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return;
    BundleState& state = it->second;
    if (rollout_gate == nullptr && state.content != nullptr) {
      state.stable = state.content;
      state.stable_generation = state.content_generation;
    }
    // While a rollback rolls out, what the fleet ran before is what the operator rolled
    // back from: a joiner waits for its turn rather than get that.
    const std::string& pinned = state.record.pinned_commit();
    has_stable = rollout_gate != nullptr && state.stable != nullptr &&
                 (pinned.empty() || state.stable->commit() == pinned);
  }
  Hub::Gate stable_gate;
  Hub::Gate gate = DependencyGate(name, rollout_gate, has_stable, &stable_gate);
  ScopeGate(name, &gate, &stable_gate);
  LabelSelector selector;
  std::shared_ptr<const BundleVariants> content;
  std::shared_ptr<const BundleContent> stable;
  int64_t definition_generation = 0;
  uint64_t generation = 0;
  uint64_t builds = 0;
  uint64_t stable_builds = 0;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return;
    BundleState& state = it->second;
    // A cluster the rollout holds back that holds nothing of the bundle gets the stable
    // content (where the bundles it depends on are ready).
    if (has_stable) stable = state.stable;
    builds = state.content != nullptr ? state.content->builds() : 0;
    auto stable_variants = std::dynamic_pointer_cast<const BundleVariants>(stable);
    stable_builds = stable_variants != nullptr ? stable_variants->builds() : 0;
    auto same = [](const Hub::Gate& a, const Hub::Gate& b) {
      return a == b || (a != nullptr && b != nullptr && a->SameAs(*b));
    };
    if (state.pushed_generation == state.generation && state.pushed_content == state.content &&
        state.pushed_builds == builds && same(state.pushed_gate, gate) &&
        state.pushed_stable == stable && state.pushed_stable_builds == stable_builds &&
        same(state.pushed_stable_gate, stable_gate)) {
      return;
    }
    selector = state.selector;
    content = state.content;
    definition_generation = state.definition.generation();
    generation = state.generation;
  }
  // Unlocked: the hub notifies agent streams, which ask it for messages at once.
  hub_->SetBundle(name, selector, content, definition_generation, gate, stable, stable_gate);
  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  if (it == bundles_.end()) return;
  it->second.pushed_generation = generation;
  it->second.pushed_content = content;
  it->second.pushed_builds = builds;
  it->second.pushed_gate = gate;
  it->second.pushed_stable = std::move(stable);
  it->second.pushed_stable_builds = stable_builds;
  it->second.pushed_stable_gate = std::move(stable_gate);
}

void Controller::ScopeGate(const std::string& name, Hub::Gate* gate, Hub::Gate* stable_gate) {
  LabelSelector selector;
  std::optional<LabelSelector> scope;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end() || !it->second.ScopeGated()) return;
    selector = it->second.selector;
    if (!it->second.caller_gone) scope = it->second.scope_selector_now;
  }
  absl::flat_hash_set<std::string> allowed;
  absl::flat_hash_set<std::string> stable_allowed;
  if (scope.has_value()) {
    for (const auto& [cluster, labels] : hub_->MatchingClusterLabels(selector)) {
      if (!scope->Matches(labels)) continue;
      if (*gate == nullptr || (*gate)->Allows(cluster)) allowed.insert(cluster);
      if (*stable_gate == nullptr || (*stable_gate)->Allows(cluster)) {
        stable_allowed.insert(cluster);
      }
    }
  }
  *gate = ClusterSetGate::Of(std::move(allowed));
  *stable_gate = ClusterSetGate::Of(std::move(stable_allowed));
}

std::vector<std::string> Controller::DependenciesLocked(const std::string& name,
                                                        const BundleState& state) const {
  std::vector<std::string> out;
  auto add = [&](const std::string& dependency) {
    if (dependency != name && std::find(out.begin(), out.end(), dependency) == out.end()) {
      out.push_back(dependency);
    }
  };
  for (const std::string& dependency : state.definition.depends_on()) add(dependency);
  std::vector<std::string> declared;
  for (const std::string& entry : state.record.declared_depends_on()) {
    ResolveDeclaredLocked(name, state.definition, entry, &declared);
  }
  for (const std::string& dependency : declared) add(dependency);
  return out;
}

void Controller::ResolveDeclaredLocked(const std::string& name, const v1::Bundle& definition,
                                       const std::string& declared,
                                       std::vector<std::string>* out) const {
  auto [cached, added] = declared_cache_.try_emplace({name, declared});
  if (added) ResolveDeclaredUncachedLocked(name, definition, declared, &cached->second);
  out->insert(out->end(), cached->second.begin(), cached->second.end());
}

void Controller::ResolveDeclaredUncachedLocked(const std::string& name,
                                               const v1::Bundle& definition,
                                               const std::string& declared,
                                               std::vector<std::string>* out) const {
  absl::string_view text = declared;
  if (!absl::ConsumePrefix(&text, kFleetSelectorPrefix)) {
    out->push_back(ResolveFleetDependencyLocked(name, definition, declared));
    return;
  }
  // The bundles whose fleet.yaml labels it matches, as Fleet lists them, of the same team
  // (Fleet's: of the same workspace): a team is not told of others' bundles.
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(text);
  const std::string team = definition.has_scope() ? definition.scope().caller() : "";
  const size_t before = out->size();
  for (const auto& [other, other_state] : bundles_) {
    const v1::Bundle& theirs = other_state.definition;
    if (!selector.ok() || other == name ||
        (theirs.has_scope() ? theirs.scope().caller() : "") != team) {
      continue;
    }
    LabelMap labels(other_state.record.fleet_labels().begin(),
                    other_state.record.fleet_labels().end());
    labels.emplace("fleet.cattle.io/repo-name", FleetGitRepoLocked(theirs.source()));
    if (selector->Matches(labels)) out->push_back(other);
  }
  if (out->size() == before) out->push_back(declared);  // none: waited for, as undefined
}

std::string Controller::FleetGitRepoLocked(const std::string& source) const {
  auto it = sources_.find(source);
  return it == sources_.end() || it->second.fleet_gitrepo().empty() ? source
                                                                    : it->second.fleet_gitrepo();
}

std::string Controller::ResolveFleetDependencyLocked(const std::string& name,
                                                     const v1::Bundle& definition,
                                                     const std::string& declared) const {
  if (bundles_.count(declared) > 0) return declared;
  const std::string& source = definition.source();
  const std::string team = definition.has_scope() ? definition.scope().caller() : "";
  // Fleet's names match bundles of the same team only (a source may be shared by teams):
  // another team's names are not this one's to wait for, nor to make ambiguous. (A
  // bundle's own name is matched whoever's, as --depends-on's are.)
  auto other_team = [&team](const v1::Bundle& theirs) {
    return (theirs.has_scope() ? theirs.scope().caller() : "") != team;
  };
  // A folder whose fleet.yaml names its bundle: Fleet calls it that alone. Of the same
  // source first; two of one name are no match (which one would be a guess).
  std::string named[2];  // [0] of the same source, [1] of any
  int count[2] = {0, 0};
  for (const auto& [other, other_state] : bundles_) {
    if (other == name || other_state.record.fleet_name() != declared ||
        other_team(other_state.definition)) {
      continue;
    }
    const bool same = other_state.definition.source() == source;
    for (int i = same ? 0 : 1; i < 2; ++i) {
      named[i] = other;
      ++count[i];
    }
  }
  if (count[0] == 1) return named[0];
  if (count[0] == 0 && count[1] == 1) return named[1];
  if (count[0] + count[1] > 0) return declared;
  // Else Fleet's name for a folder of the same source: its exact name for the GitRepo the
  // source stands for, or (the source named as its GitRepo, which may not be Fleet's
  // name for it) a name of some GitRepo and the folder; the longest path that fits (a
  // GitRepo "a-b" with "c" and "a" with "b/c" make the same name), a tie none.
  const std::string gitrepo = FleetGitRepoLocked(source);
  const bool guess = gitrepo == source;
  std::string found;
  size_t longest = 0;
  bool tie = false;
  for (const auto& [other, other_state] : bundles_) {
    if (other == name || other_state.definition.source() != source ||
        !other_state.record.fleet_name().empty() || other_team(other_state.definition)) {
      continue;
    }
    const std::string& path = other_state.definition.path();
    if ((!found.empty() && path.size() < longest) ||
        (FleetBundleName(gitrepo, path) != declared &&
         (!guess || !IsFleetNameOfFolder(declared, path)))) {
      continue;
    }
    if (found.empty() || path.size() > longest) {
      found = other;
      longest = path.size();
      tie = false;
    } else {
      tie = true;
    }
  }
  if (!found.empty()) return tie ? declared : found;
  // Else a folder of another source (Fleet's dependsOn reaches the workspace's other
  // GitRepos) by its exact name for the GitRepo that source stands for; two alike match
  // none.
  for (const auto& [other, other_state] : bundles_) {
    if (other == name || other_state.definition.source() == source ||
        !other_state.record.fleet_name().empty() || other_team(other_state.definition) ||
        FleetBundleName(FleetGitRepoLocked(other_state.definition.source()),
                        other_state.definition.path()) != declared) {
      continue;
    }
    if (!found.empty()) return declared;
    found = other;
  }
  return found.empty() ? declared : found;
}

std::string Controller::FindCycleLocked(const v1::Bundle& bundle) const {
  // Depth-first from the definition over everyone's dependencies (theirs worked out as
  // they are reached); bounded by the number of bundles (each is entered once).
  std::map<std::string, std::vector<std::string>> edges;
  std::vector<std::string>& own = edges[bundle.name()];
  own.assign(bundle.depends_on().begin(), bundle.depends_on().end());
  if (auto it = bundles_.find(bundle.name()); it != bundles_.end()) {
    std::vector<std::string> declared;
    for (const std::string& entry : it->second.record.declared_depends_on()) {
      // Not cached: `bundle` may be a definition proposed, not the one stored.
      ResolveDeclaredUncachedLocked(bundle.name(), bundle, entry, &declared);
    }
    for (std::string& dependency : declared) {
      if (dependency != bundle.name()) own.push_back(std::move(dependency));
    }
  }
  // Iterative, so the analysis sees the lock held for every look (a lambda is not
  // analysed as holding it): `path` the bundles entered, `next` each one's next edge.
  std::vector<std::string> path = {bundle.name()};
  std::vector<size_t> next = {0};
  std::set<std::string> done;
  while (!path.empty()) {
    auto edges_of = edges.find(path.back());
    if (edges_of == edges.end()) {
      auto it = bundles_.find(path.back());
      edges_of = edges
                     .emplace(path.back(), it != bundles_.end()
                                               ? DependenciesLocked(path.back(), it->second)
                                               : std::vector<std::string>())
                     .first;
    }
    if (next.back() >= edges_of->second.size()) {
      path.pop_back();
      next.pop_back();
      continue;
    }
    const std::string dependency = edges_of->second[next.back()++];
    if (dependency == bundle.name()) {
      path.push_back(dependency);
      // Said to the bundle's team: another team's bundles go unnamed, but for those its
      // own --depends-on names (the caller knows those names).
      const std::string team = bundle.has_scope() ? bundle.scope().caller() : "";
      for (std::string& step : path) {
        auto it = bundles_.find(step);
        const bool theirs =
            it != bundles_.end() && !team.empty() &&
            (it->second.definition.has_scope() ? it->second.definition.scope().caller() : "") !=
                team;
        if (theirs && std::find(bundle.depends_on().begin(), bundle.depends_on().end(), step) ==
                          bundle.depends_on().end()) {
          step = "(a bundle of another team)";
        }
      }
      return absl::StrJoin(path, " -> ");
    }
    if (!done.insert(dependency).second) continue;
    path.push_back(dependency);
    next.push_back(0);
  }
  return "";
}

void Controller::RefreshDependencies() {
  std::map<std::string, std::vector<std::string>> dependents;
  std::set<std::string> watched;
  std::vector<std::string> changed;  // bundles whose dependencies are others now
  {
    MutexLock lock(&mu_);
    declared_cache_.clear();  // whatever changed, names resolve afresh
    std::map<std::string, std::vector<std::string>> now;
    for (const auto& [name, state] : bundles_) {
      std::vector<std::string> dependencies = DependenciesLocked(name, state);
      for (const std::string& dependency : dependencies) {
        dependents[dependency].push_back(name);
        watched.insert(dependency);
      }
      auto before = dependencies_.find(name);
      if (before == dependencies_.end() ? !dependencies.empty() : before->second != dependencies) {
        changed.push_back(name);
      }
      if (!dependencies.empty()) now[name] = std::move(dependencies);
    }
    dependencies_ = std::move(now);
  }
  mailbox_->SetDependents(std::move(dependents));
  hub_->SetWatchedBundles(std::move(watched));
  // Its gate judged again at once: a dependency defined since, or renamed away.
  for (const std::string& name : changed) queue_.Add(name);
}

Hub::Gate Controller::DependencyGate(const std::string& name, Hub::Gate gate, bool has_stable,
                                     Hub::Gate* stable_gate) {
  *stable_gate = nullptr;
  v1::Bundle definition;
  LabelSelector selector;
  struct Dependency {
    std::string name;
    bool defined = false;
    LabelSelector selector;
    std::shared_ptr<const BundleVariants> content;
    // Why every cluster waits for it whatever its clusters report: of the same source, it
    // has not rendered the commit this revision comes from.
    std::string behind;
  };
  std::vector<Dependency> dependencies;
  std::string cycle;
  std::string source;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return gate;
    if (it->second.definition.depends_on().empty() &&
        it->second.record.declared_depends_on().empty()) {
      it->second.dependency_waits.clear();
      return gate;
    }
    source = it->second.definition.source();
  }
  // The source's newest commit (read without the lock: the poller calls back under its own).
  std::optional<SourceSnapshot> snapshot = poller_.Snapshot(source);
  const std::string head = snapshot.has_value() ? snapshot->commit.id : "";
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return gate;
    const std::string commit = it->second.content != nullptr ? it->second.content->commit() : "";
    *stable_gate = ClusterSetGate::Of({});  // until the dependencies are known ready
    // Nobody gets anything anyway.
    if (it->second.record.suspended() ||
        !HeldBySource(it->second.record, it->second.definition).empty()) {
      return gate;
    }
    selector = it->second.selector;
    // A cycle through what a fleet.yaml names (one of flags alone is refused when defined):
    // nobody gets anything new until it is broken.
    if (!it->second.record.declared_depends_on().empty()) {
      cycle = FindCycleLocked(it->second.definition);
    }
    for (const std::string& dependency : DependenciesLocked(name, it->second)) {
      Dependency d{dependency};
      auto dep = bundles_.find(dependency);
      if (dep != bundles_.end()) {
        d.defined = true;
        d.selector = dep->second.selector;
        d.content = dep->second.content;
        // One commit may change both (a CRD and what uses it): of the same source, the
        // dependency's render of that commit (or of a newer, the head) comes first, as
        // Flux waits for a dependency's revision of the same source.
        const BundleState& theirs = dep->second;
        if (!commit.empty() && theirs.definition.source() == source &&
            theirs.record.pinned_commit().empty() && theirs.reconciled_commit != commit &&
            (head.empty() || theirs.reconciled_commit != head)) {
          const bool failed = theirs.record.error_commit() == commit ||
                              (!head.empty() && theirs.record.error_commit() == head);
          // Another team's render error is its own to read (a source may be shared).
          const auto team_of = [](const v1::Bundle& b) {
            return b.has_scope() ? b.scope().caller() : "";
          };
          const bool same_team = team_of(it->second.definition).empty() ||
                                 team_of(it->second.definition) == team_of(theirs.definition);
          d.behind = failed ? absl::StrCat("bundle ", dependency, " failed to render ",
                                           theirs.record.error_commit().substr(0, 12),
                                           ", the commit this revision comes from",
                                           same_team ? absl::StrCat(": ", theirs.record.error())
                                                     : std::string(" (its team's to read)"))
                            : absl::StrCat("bundle ", dependency, " has not rendered ",
                                           commit.substr(0, 12),
                                           ", the commit this revision comes from, yet");
        }
      }
      dependencies.push_back(std::move(d));
    }
  }
  std::vector<std::string> candidates;
  for (auto& [cluster, labels] : hub_->MatchingClusterLabels(selector)) {
    if (gate == nullptr || gate->Allows(cluster)) candidates.push_back(std::move(cluster));
  }
  std::set<std::string> allowed(candidates.begin(), candidates.end());
  // Clusters that would get the stable content: held back, and holding nothing of it.
  std::vector<std::string> joiners;
  if (has_stable && gate != nullptr) {
    for (v1::ClusterInfo& cluster : hub_->MatchingClustersHoldingNothing(name, selector)) {
      if (!gate->Allows(cluster.name())) joiners.push_back(std::move(*cluster.mutable_name()));
    }
  }
  std::set<std::string> joiners_allowed(joiners.begin(), joiners.end());
  std::map<std::string, std::string> waits;  // cluster -> why
  if (!cycle.empty()) {
    for (const std::string& cluster : candidates) {
      waits[cluster] = absl::StrCat("the dependencies go round in a cycle, ", cycle,
                                    " (fleet.yaml's dependsOn counts): break it");
    }
    allowed.clear();
    joiners_allowed.clear();
    dependencies.clear();
  }
  for (const Dependency& d : dependencies) {
    if (!d.behind.empty()) {
      for (const std::string& cluster : candidates) {
        if (allowed.erase(cluster) > 0) waits[cluster] = d.behind;
      }
      joiners_allowed.clear();
      continue;
    }
    if (!d.defined || d.content == nullptr) {
      for (const std::string& cluster : candidates) {
        if (allowed.erase(cluster) > 0) {
          absl::string_view selector = d.name;
          waits[cluster] = absl::ConsumePrefix(&selector, kFleetSelectorPrefix)
                               ? absl::StrCat("no bundle's fleet.yaml labels match \"", selector,
                                              "\", which its dependsOn selects")
                               : absl::StrCat("bundle ", d.name,
                                              d.defined ? " has no render yet" : " is not defined");
        }
      }
      joiners_allowed.clear();
      continue;
    }
    std::set<std::string> targeted;
    for (auto& [cluster, labels] : hub_->MatchingClusterLabels(d.selector)) {
      targeted.insert(std::move(cluster));
    }
    std::vector<std::string> concerned;
    for (const std::vector<std::string>* clusters : {&candidates, &joiners}) {
      for (const std::string& cluster : *clusters) {
        if (targeted.count(cluster) > 0) concerned.push_back(cluster);
      }
    }
    for (const v1::RolloutCluster& c : hub_->RolloutProgress(d.name, d.content.get(), concerned)) {
      if (c.ready()) continue;
      joiners_allowed.erase(c.name());
      if (allowed.erase(c.name()) > 0) {
        waits[c.name()] = absl::StrCat("bundle ", d.name, ": ", c.detail());
      }
    }
  }
  *stable_gate = ClusterSetGate::Of(
      absl::flat_hash_set<std::string>(joiners_allowed.begin(), joiners_allowed.end()));
  {
    std::string message =
        waits.empty() ? ""
                      : absl::StrCat(waits.size(), " clusters wait for dependencies; first: ",
                                     waits.begin()->first, " (", waits.begin()->second, ")");
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it != bundles_.end()) {
      if (!message.empty()) {
        std::string& shown = it->second.rollout_message;
        shown = shown.empty() || shown == "done" ? message : absl::StrCat(shown, "; ", message);
      }
      it->second.dependency_waits = std::move(waits);  // for GetStatus, cluster by cluster
    }
  }
  return ClusterSetGate::Of(absl::flat_hash_set<std::string>(allowed.begin(), allowed.end()));
}

namespace {

// The object keys `content` gives clusters: its one revision, its template, or the
// revisions built from it so far (at most 64 of them).
std::set<std::string> ObjectKeysOf(const BundleContent& content) {
  std::set<std::string> keys;
  auto add = [&keys](const Revision& revision) {
    for (const auto& [key, object] : revision.objects.objects()) keys.insert(key);
  };
  if (std::shared_ptr<const Revision> uniform = content.Uniform()) {
    add(*uniform);
    return keys;
  }
  const auto* variants = dynamic_cast<const BundleVariants*>(&content);
  if (variants == nullptr) return keys;
  if (variants->template_revision() != nullptr) {
    add(*variants->template_revision());
    return keys;
  }
  int seen = 0;
  for (const std::string& id : variants->RevisionIds()) {
    if (seen++ >= 64) break;
    if (std::shared_ptr<const Revision> revision = variants->Find(id)) add(*revision);
  }
  return keys;
}

}  // namespace

std::string Controller::PruneHold(const std::string& name,
                                  const std::shared_ptr<const BundleContent>& before,
                                  const std::shared_ptr<const BundleContent>& after,
                                  const std::string& max_prune) {
  auto builds = [](const BundleContent& content) {
    const auto* variants = dynamic_cast<const BundleVariants*>(&content);
    return variants != nullptr ? variants->builds() : 0;
  };
  // Counted once per pair of contents (and variants built): a rollout asks on every report.
  PruneCount count{before, after, builds(*before), builds(*after)};
  bool counted = false;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return "";
    const PruneCount& last = it->second.prune_count;
    if (last.before == count.before && last.after == count.after &&
        last.before_builds == count.before_builds && last.after_builds == count.after_builds) {
      count = last;
      counted = true;
    }
  }
  if (!counted) {
    const std::set<std::string> had = ObjectKeysOf(*before);
    const std::set<std::string> has = ObjectKeysOf(*after);
    for (const std::string& key : had) count.dropped += has.count(key) == 0;
    count.had = had.size();
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it != bundles_.end()) it->second.prune_count = count;
  }
  std::string why = PruneHeld(max_prune, count.dropped, count.had);
  if (!why.empty()) {
    // Not deleted: what is handed over to another bundle (a bundle split in two).
    const size_t moved = HandedOver(name, *before, *after);
    if (moved > 0) why = PruneHeld(max_prune, count.dropped - moved, count.had);
  }
  if (why.empty() && max_prune.empty() && count.dropped > 0) why = StreamPruneHold(name);
  return NotePruneHold(name, after->commit(), std::move(why));
}

namespace {

// The label keys any of `selectors` reads: what tells clusters apart for them.
std::set<std::string> KeysRead(const std::vector<const LabelSelector*>& selectors) {
  std::set<std::string> keys;
  for (const LabelSelector* selector : selectors) {
    for (const std::string& key : selector->Keys()) keys.insert(key);
  }
  return keys;
}

// Whether `taker` targets every cluster `giver` targets (true when `giver` targets none),
// the fleet given as the label sets that tell its clusters apart (Hub::ClustersByLabels).
bool TargetsEachOf(const LabelSelector& taker, const LabelSelector& giver,
                   const std::map<LabelMap, Hub::LabelsShared>& fleet) {
  for (const auto& [labels, shared] : fleet) {
    if (giver.Matches(labels) && !taker.Matches(labels)) return false;
  }
  return true;
}

}  // namespace

size_t Controller::HandedOver(const std::string& name, const BundleContent& before,
                              const BundleContent& after) {
  std::set<std::string> dropped;
  {
    const std::set<std::string> has = ObjectKeysOf(after);
    for (const std::string& key : ObjectKeysOf(before)) {
      if (has.count(key) == 0) dropped.insert(key);
    }
  }
  if (dropped.empty()) return 0;
  auto builds = [](const BundleContent& content) -> uint64_t {
    const auto* variants = dynamic_cast<const BundleVariants*>(&content);
    return variants != nullptr ? variants->builds() : 0;
  };
  LabelSelector selector;
  std::vector<std::pair<LabelSelector, std::shared_ptr<const BundleContent>>> others;
  // What the answer depends on, to give the last one again while none of it changed.
  const uint64_t membership = hub_->MembershipVersion();
  std::vector<std::string> selectors;
  std::vector<uint64_t> built;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return 0;
    selector = it->second.selector;
    selectors.push_back(selector.text());
    for (const auto& [other, state] : bundles_) {
      if (other != name && state.content != nullptr) {
        others.emplace_back(state.selector, state.content);
        selectors.push_back(state.selector.text());
        built.push_back(builds(*state.content));
      }
    }
    // Kept with the count of these contents only (another pair may have replaced it).
    const PruneCount& last = it->second.prune_count;
    bool same = last.moved.has_value() && last.before.get() == &before &&
                last.after.get() == &after && last.moved_membership == membership &&
                last.moved_selectors == selectors && last.moved_builds == built &&
                last.moved_contents.size() == others.size();
    for (size_t i = 0; same && i < others.size(); ++i) {
      same = last.moved_contents[i].lock() == others[i].second;
    }
    if (same) return *last.moved;
  }
  const size_t moved = HandedOverTo(selector, dropped, others);
  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  if (it != bundles_.end() && it->second.prune_count.before.get() == &before &&
      it->second.prune_count.after.get() == &after) {
    PruneCount& last = it->second.prune_count;
    last.moved = moved;
    last.moved_membership = membership;
    last.moved_selectors = std::move(selectors);
    last.moved_builds = std::move(built);
    last.moved_contents.clear();
    for (const auto& [other_selector, content] : others) last.moved_contents.push_back(content);
  }
  return moved;
}

size_t Controller::HandedOverTo(
    const LabelSelector& selector, const std::set<std::string>& dropped,
    const std::vector<std::pair<LabelSelector, std::shared_ptr<const BundleContent>>>& others) {
  // The fleet as the labels the selectors read tell its clusters apart (when first needed).
  std::optional<std::map<LabelMap, Hub::LabelsShared>> fleet;
  std::set<std::string> kept;
  for (const auto& [other_selector, content] : others) {
    std::vector<std::string> held;
    for (const std::string& key : ObjectKeysOf(*content)) {
      if (dropped.count(key) > 0 && kept.count(key) == 0) held.push_back(key);
    }
    if (held.empty()) continue;
    if (!fleet.has_value()) {
      std::vector<const LabelSelector*> selectors = {&selector};
      for (const auto& [any_selector, any_content] : others) selectors.push_back(&any_selector);
      fleet = hub_->ClustersByLabels(KeysRead(selectors));
      // On no cluster, nothing is handed over: the drop is judged as it is.
      if (std::none_of(fleet->begin(), fleet->end(),
                       [&](const auto& set) { return selector.Matches(set.first); })) {
        return 0;
      }
    }
    // On every cluster this bundle runs on: an object another bundle holds only elsewhere
    // (staging's copy of what prod drops) is deleted where this one runs.
    if (TargetsEachOf(other_selector, selector, *fleet)) kept.insert(held.begin(), held.end());
  }
  return kept.size();
}

std::string Controller::StreamPruneHold(const std::string& name) {
  constexpr size_t kMaxStreamPruneCounts = 1024;
  auto builds = [](const BundleContent& content) -> uint64_t {
    const auto* variants = dynamic_cast<const BundleVariants*>(&content);
    return variants != nullptr ? variants->builds() : 0;
  };
  StreamPruneCount count;
  std::vector<std::shared_ptr<const BundleContent>> contents;  // as count.contents
  std::vector<std::string> names;        // of each bundle, for the pairs of `contents`
  std::vector<LabelSelector> selectors;  // of each bundle
  std::string stream;
  // Who targets which cluster counts too: a copy on other clusters is not kept.
  count.membership = hub_->MembershipVersion();
  std::string own_source;
  std::set<std::string> other_sources;  // of guarded bundles that changed
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return "";
    own_source = it->second.definition.source();
    stream = CommitStreamLocked(own_source);
    if (stream.empty()) stream = absl::StrCat("source ", own_source);
    std::map<std::string, bool> same;  // other source -> whether it reads `stream`
    for (const auto& [other, state] : bundles_) {
      const std::string& source = state.definition.source();
      if (source != own_source) {
        auto [known, added] = same.emplace(source, false);
        if (added) known->second = CommitStreamLocked(source) == stream;
        if (!known->second) continue;
      }
      if (state.content == nullptr) continue;
      const bool promoted =
          state.record.prune_approved_commit() == state.content->commit() &&
          state.record.prune_approved_generation() == state.definition.generation();
      std::shared_ptr<const BundleContent> guarded;
      if (state.definition.sync().prune() && state.definition.max_prune().empty() &&
          state.record.pinned_commit().empty() && !promoted && state.stable != nullptr) {
        guarded = state.stable;
        if (source != own_source && state.stable != state.content) other_sources.insert(source);
      }
      count.builds.push_back(guarded != nullptr ? builds(*guarded) : 0);
      count.builds.push_back(builds(*state.content));
      contents.push_back(std::move(guarded));
      contents.push_back(state.content);
      names.push_back(other);
      selectors.push_back(state.selector);
      count.selectors.push_back(state.selector.text());
    }
    auto cached = stream_prune_counts_.find(stream);
    bool unchanged = cached != stream_prune_counts_.end() &&
                     cached->second.builds == count.builds &&
                     cached->second.selectors == count.selectors &&
                     cached->second.membership == count.membership &&
                     cached->second.contents.size() == contents.size();
    for (size_t i = 0; unchanged && i < contents.size(); ++i) {
      unchanged = cached->second.present[i] == (contents[i] != nullptr) &&
                  cached->second.contents[i].lock() == contents[i];
    }
    if (unchanged) {
      count = cached->second;
      names.clear();
    }
  }
  if (!names.empty()) {
    // Which bundles' newest renders hold each object: one moved between them is handed
    // over, never deleted, where the bundle that takes it targets every cluster of the one
    // that lets go. A copy on other clusters only (staging's, of what prod drops) is not.
    std::map<std::string, std::vector<size_t>> holders;
    for (size_t i = 0; i < names.size(); ++i) {
      for (const std::string& key : ObjectKeysOf(*contents[2 * i + 1])) holders[key].push_back(i);
    }
    // The fleet's clusters as these bundles' selectors tell them apart (when first needed):
    // a few sets of labels, however many clusters share each.
    std::optional<std::map<LabelMap, Hub::LabelsShared>> fleet;
    auto clusters = [&]() -> const std::map<LabelMap, Hub::LabelsShared>& {
      if (!fleet.has_value()) {
        std::vector<const LabelSelector*> all;
        for (const LabelSelector& selector : selectors) all.push_back(&selector);
        fleet = hub_->ClustersByLabels(KeysRead(all));
      }
      return *fleet;
    };
    std::map<std::pair<size_t, size_t>, bool> covered;
    auto covers = [&](size_t taker, size_t giver) {
      auto [known, added] = covered.emplace(std::make_pair(taker, giver), true);
      // A bundle on no cluster drops nothing anywhere: whatever it held counts as kept.
      if (added) known->second = TargetsEachOf(selectors[taker], selectors[giver], clusters());
      return known->second;
    };
    std::vector<size_t> had(names.size(), 0);
    std::vector<size_t> dropped(names.size(), 0);
    for (size_t i = 0; i < names.size(); ++i) {
      if (contents[2 * i] == nullptr) continue;
      for (const std::string& key : ObjectKeysOf(*contents[2 * i])) {
        ++had[i];
        auto held = holders.find(key);
        bool kept = false;
        for (size_t j = 0; held != holders.end() && j < held->second.size() && !kept; ++j) {
          kept = held->second[j] == i || covers(held->second[j], i);
        }
        dropped[i] += !kept;
      }
      count.had += had[i];
      count.dropped += dropped[i];
      if (dropped[i] > 0) count.own[names[i]] = dropped[i];
    }
    if (count.dropped >= kDefaultPruneFloor && count.dropped * 2 <= count.had) {
      // Not more than half across the fleet, but perhaps where it lands: the guarded
      // bundles on each cluster, and what they drop there. Clusters run by the same
      // bundles are counted once.
      std::map<std::vector<size_t>, StreamPruneCount::OnCluster> groups;
      for (const auto& [labels, shared] : clusters()) {
        std::vector<size_t> bundles;  // the guarded bundles on these clusters
        for (size_t i = 0; i < names.size(); ++i) {
          if (contents[2 * i] != nullptr && had[i] > 0 && selectors[i].Matches(labels)) {
            bundles.push_back(i);
          }
        }
        if (bundles.empty()) continue;
        auto [group, added] = groups.emplace(std::move(bundles), StreamPruneCount::OnCluster());
        StreamPruneCount::OnCluster& on = group->second;
        if (!added) {
          on.alike += shared.clusters;
          on.cluster = std::min(on.cluster, shared.first);
          continue;
        }
        on.cluster = shared.first;
        on.alike = shared.clusters - 1;
        for (size_t i : group->first) {
          on.had += had[i];
          on.dropped += dropped[i];
          on.bundles += dropped[i] > 0;
        }
      }
      for (const auto& [bundles, group] : groups) {
        if (group.dropped < kDefaultPruneFloor || group.dropped * 2 <= group.had) continue;
        for (size_t i : bundles) {
          if (dropped[i] == 0) continue;
          auto [worst, added] = count.worst.emplace(names[i], group);
          // The cluster that loses the largest share (as a fraction: a * d' > a' * d).
          if (!added && group.dropped * worst->second.had > worst->second.dropped * group.had) {
            worst->second = group;
          }
        }
      }
    }
    for (const std::shared_ptr<const BundleContent>& content : contents) {
      count.contents.push_back(content);
      count.present.push_back(content != nullptr);
    }
    MutexLock lock(&mu_);
    if (stream_prune_counts_.size() >= kMaxStreamPruneCounts) stream_prune_counts_.clear();
    stream_prune_counts_[stream] = count;
  }
  auto own = count.own.find(name);
  const size_t share = own != count.own.end() ? own->second : 0;
  std::string why = StreamPruneHeld(count.dropped, count.had, share, count.own.size(),
                                    SourcesNamed(own_source, other_sources));
  auto worst = count.worst.find(name);
  if (why.empty() && worst != count.worst.end()) {
    const StreamPruneCount::OnCluster& on = worst->second;
    why = ClusterPruneHeld(on.cluster, on.alike, on.dropped, on.had, share, on.bundles,
                           SourcesNamed(own_source, other_sources));
  }
  return why;
}

std::string Controller::NotePruneHold(const std::string& name, const std::string& commit,
                                      std::string why) {
  bool news = false;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return why;
    std::string& held = it->second.prune_held_commit;
    // Not asked (the fleet runs the render): the contents counted last are let go.
    if (commit.empty()) it->second.prune_count = PruneCount();
    const std::string now = why.empty() ? "" : commit;
    news = held != now && !now.empty();
    held = now;
    // Said with the hold, not a moment after it (the rollout's publish sets it again).
    if (!why.empty()) it->second.rollout_message = why;
  }
  metrics_.prune_held.Add({{"bundle", name}}).Set(why.empty() ? 0 : 1);
  if (news) {
    GF_LOG(WARNING) << "bundle " << name << " at " << commit.substr(0, 12) << ": " << why;
    Publish(MakeEvent("bundle.prune_held", name, "", why, commit));
  }
  return why;
}

Hub::Gate Controller::RolloutGate(const std::string& name) {
  // Asked on every report a gated bundle gets (at most every kRolloutEvaluationInterval):
  // copies only what it needs, and adjusts the partitions only when the fleet changed.
  v1::RolloutStrategy strategy;
  int64_t definition_generation = 0;
  bool suspended = false;
  std::string paused;  // by the folder's fleet.yaml
  v1::RolloutRecord before;
  LabelSelector selector;
  std::shared_ptr<const BundleVariants> content;
  std::string stable_revision;                        // see RolloutRecord.stable_revision
  std::string stable_commit;                          // see RolloutRecord.stable_commit
  uint64_t stable_generation = 0;                     // and its stable_generation
  std::shared_ptr<const std::vector<Partition>> cut;  // as last worked out, if any
  uint64_t cut_membership = 0;
  int64_t cut_generation = -1;
  std::string cut_commit;
  const uint64_t membership = hub_->MembershipVersion();
  // While a team's narrowed clusters= is held, only the clusters it covers take part.
  bool scope_gated = false;
  std::optional<LabelSelector> scope_now;
  // The prune guard: what the fleet runs (the stable content) against the render.
  std::shared_ptr<const BundleContent> guarded_from;
  std::string max_prune;
  bool approved = false;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return nullptr;
    const BundleState& state = it->second;
    strategy = state.RolloutWithBake();
    definition_generation = state.definition.generation();
    suspended = state.record.suspended();
    paused = HeldBySource(state.record, state.definition);
    // A rollback is the operator's own act; a changed definition is judged as a commit is
    // (a mistyped --path deletes as much as a folder moved).
    if (state.definition.sync().prune() && state.record.pinned_commit().empty() &&
        state.stable != nullptr && state.content != nullptr && state.stable != state.content) {
      guarded_from = state.stable;
      max_prune = state.definition.max_prune();
      approved = state.record.prune_approved_commit() == state.content->commit() &&
                 state.record.prune_approved_generation() == state.definition.generation();
    }
    before = state.record.rollout();
    selector = state.selector;
    scope_gated = state.ScopeGated();
    if (!state.caller_gone) scope_now = state.scope_selector_now;
    content = state.content;
    if (state.stable != nullptr && state.stable != state.content) {
      auto variants = std::dynamic_pointer_cast<const BundleVariants>(state.stable);
      if (std::shared_ptr<const Revision> uniform = state.stable->Uniform()) {
        stable_revision = uniform->id;
      } else if (variants != nullptr && state.stable_generation > 0) {
        // Never stored without its generation: Load would take a template for a revision
        // every cluster runs, ${...} and all.
        if (variants->template_revision() != nullptr) {
          stable_revision = variants->template_revision()->id;
        } else {
          stable_commit = variants->commit();  // rendered per cluster
        }
        stable_generation = static_cast<uint64_t>(state.stable_generation);
      }
    }
    cut = state.partitions;
    cut_membership = state.partitions_membership;
    cut_generation = state.partitions_generation;
    cut_commit = state.partitions_commit;
  }
  // Records `partitions`, cut for `cut_for` (the rollout's commit) and adjusted to the
  // fleet as of `cut_at` (a membership version), and what the rollout waits for.
  // `stopped`: held until an operator acts although no partition is paused (a fleet.yaml
  // rolloutStrategy that cannot be followed), which gitfleet_rollout_paused says too.
  auto publish = [&](const std::shared_ptr<const std::vector<Partition>>& partitions,
                     uint64_t cut_at, const std::string& cut_for, const std::string& message,
                     const v1::RolloutRecord& rollout, bool stopped = false) {
    const size_t count = partitions != nullptr ? partitions->size() : 0;
    const bool progressive = Progressive(strategy) && count > 0;
    const bool done = rollout.partition() >= static_cast<int>(count);
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    // Set only while it exists: its removal takes its series away (Reconcile).
    if (it == bundles_.end()) return;
    metrics_.rollout_partition.Add({{"bundle", name}})
        .Set(progressive && !done ? rollout.partition() + 1 : 0);
    metrics_.rollout_paused.Add({{"bundle", name}})
        .Set(stopped || (progressive && !done && (rollout.halted() || rollout.paused_by_operator()))
                 ? 1
                 : 0);
    it->second.partitions = partitions;
    it->second.partitions_membership = cut_at;
    it->second.partitions_generation = definition_generation;
    it->second.partitions_commit = cut_for;
    it->second.rollout_message = message;
  };
  // The partitions the rollout of `commit` was cut into, if they are still known.
  auto cut_for = [&](const std::string& commit) {
    return cut != nullptr && cut_generation == definition_generation && cut_commit == commit
               ? cut
               : nullptr;
  };
  if (suspended) {
    hub_->ExpectReports(name, 1, kRolloutRefreshInterval);
    // Kept as they are: the rollout goes on from the same partitions once resumed.
    publish(cut_for(before.commit()), cut_membership, before.commit(),
            "suspended (gitfleetctl bundle resume)", before);
    return ClusterSetGate::Of({});  // nobody gets anything new
  }
  if (!paused.empty()) {
    hub_->ExpectReports(name, 1, kRolloutRefreshInterval);
    // Fleet's paused is the repository's wish; a strategy it cannot follow needs someone.
    publish(cut_for(before.commit()), cut_membership, before.commit(), paused, before,
            /*stopped=*/absl::StartsWith(paused, "held: "));
    return ClusterSetGate::Of({});  // the fleet keeps what it runs
  }
  const std::string held = guarded_from != nullptr && !approved
                               ? PruneHold(name, guarded_from, content, max_prune)
                               : NotePruneHold(name, "", "");
  if (!held.empty()) {
    hub_->ExpectReports(name, 1, kRolloutRefreshInterval);
    publish(cut_for(before.commit()), cut_membership, before.commit(), held, before);
    return ClusterSetGate::Of({});  // the fleet keeps what it runs
  }
  if (!Progressive(strategy) || content == nullptr) {
    hub_->ExpectReports(name, 1, kRolloutRefreshInterval);
    publish(nullptr, 0, "", "", before);
    return nullptr;
  }
  const absl::Time now = options_.clock->Now();
  v1::RolloutRecord rollout = before;
  if (rollout.commit() != content->commit() ||
      rollout.generation() != static_cast<uint64_t>(definition_generation)) {
    // A newer render starts from the first partition; clusters on an older one keep it
    // until their partition's turn. An operator's pause holds across commits.
    const bool paused = rollout.paused_by_operator();
    rollout.Clear();
    rollout.set_commit(content->commit());
    rollout.set_generation(definition_generation);
    rollout.set_paused_by_operator(paused);
    rollout.set_stable_revision(stable_revision);
    rollout.set_stable_commit(stable_commit);
    rollout.set_stable_generation(stable_generation);
    *rollout.mutable_partition_started() = ToProtoTime(now);
    GF_LOG(INFO) << "bundle " << name << ": rolling out " << content->commit().substr(0, 12)
                 << " partition by partition";
    Publish(MakeEvent(
        "rollout.started", name, "",
        strategy.declared_in().empty()
            ? std::string("partition 1 first")
            : absl::StrCat("partition 1 first, by ", strategy.declared_in(), "'s rolloutStrategy"),
        content->commit()));
  }
  // Cut when the rollout begins. Since then the fleet may have changed (a cluster joined,
  // or its labels changed): the cut is adjusted so that no cluster's turn comes sooner.
  // A fleet.yaml's partitions by cluster group need each cluster's groups: carried beside
  // its labels (AddGroupEntries), where no selector looks.
  const bool by_group =
      std::any_of(strategy.partition_options().begin(), strategy.partition_options().end(),
                  [](const v1::PartitionOptions& options) {
                    return !options.cluster_group().empty() || options.cluster_group_selector_set();
                  });
  auto targeted = [&] {
    std::vector<std::pair<std::string, LabelMap>> clusters;
    if (by_group) {
      for (const v1::ClusterInfo& cluster : hub_->MatchingClusters(selector)) {
        LabelMap labels(cluster.labels().begin(), cluster.labels().end());
        AddGroupEntries(GroupsOf(cluster), &labels);
        clusters.emplace_back(cluster.name(), std::move(labels));
      }
    } else {
      clusters = hub_->MatchingClusterLabels(selector);
    }
    if (scope_gated) {
      clusters.erase(std::remove_if(clusters.begin(), clusters.end(),
                                    [&](const std::pair<std::string, LabelMap>& cluster) {
                                      return !scope_now.has_value() ||
                                             !scope_now->Matches(cluster.second);
                                    }),
                     clusters.end());
    }
    return clusters;
  };
  std::shared_ptr<const std::vector<Partition>> partitions = cut_for(rollout.commit());
  if (partitions == nullptr) {
    partitions =
        std::make_shared<const std::vector<Partition>>(CutPartitions(strategy, targeted()));
  } else if (cut_membership != membership) {
    std::vector<Partition> adjusted =
        AdjustPartitions(*partitions, rollout.partition(), targeted());
    // A paced partition counts its clusters given the render by place: those of them that
    // left are no longer counted, so that no cluster after them moves into their places.
    if (const int current = rollout.partition(); rollout.admitted() > 0 &&
                                                 current < static_cast<int>(partitions->size()) &&
                                                 current < static_cast<int>(adjusted.size())) {
      const std::vector<std::string>& before = (*partitions)[current].clusters;
      const absl::flat_hash_set<std::string> now(adjusted[current].clusters.begin(),
                                                 adjusted[current].clusters.end());
      int kept = 0;
      const int admitted = std::min<int>(rollout.admitted(), before.size());
      for (int i = 0; i < admitted; ++i) kept += now.count(before[i]) > 0;
      rollout.set_admitted(kept);
    }
    // Those given it out of turn that left are no longer counted either.
    if (const int current = rollout.partition();
        rollout.out_of_turn_size() > 0 && current < static_cast<int>(adjusted.size())) {
      const absl::flat_hash_set<std::string> now(adjusted[current].clusters.begin(),
                                                 adjusted[current].clusters.end());
      auto* given = rollout.mutable_out_of_turn();
      given->erase(std::remove_if(given->begin(), given->end(),
                                  [&](const std::string& c) { return now.count(c) == 0; }),
                   given->end());
    }
    // Agents reconnecting move the membership version too: the same partitions keep the
    // same gate, and the hub is told nothing new.
    if (adjusted != *partitions) {
      partitions = std::make_shared<const std::vector<Partition>>(std::move(adjusted));
    }
  }
  if (partitions != cut) {
    // Kept for a restart: the only copy of the cut a rollout under way goes on with. A
    // failure leaves the rollout as it is here, but a restart would cut it again.
    v1::RolloutCut stored;
    stored.set_commit(rollout.commit());
    stored.set_generation(static_cast<uint64_t>(definition_generation));
    for (const Partition& partition : *partitions) {
      v1::RolloutCut::Partition* p = stored.add_partitions();
      p->set_selector(partition.selector);
      p->mutable_clusters()->Add(partition.clusters.begin(), partition.clusters.end());
      p->set_name(partition.name);
      p->set_max_unavailable(partition.max_unavailable);
    }
    if (absl::Status written =
            store_->Apply({Store::Put(kRolloutCuts, name, stored.SerializeAsString())});
        !written.ok()) {
      GF_LOG(WARNING) << "bundle " << name << ": rollout partitions not stored: " << written;
    }
  }
  const int started_at = rollout.partition();
  hub_->BeginEvaluation(name);
  if (!rollout.paused_by_operator() && rollout.partition() > 0 &&
      rollout.partition() < static_cast<int>(partitions->size())) {
    // A revision that broke where it had worked stops before it goes further.
    HaltOnRegressions(rollout, *partitions, strategy, hub_->Regressions(name, content.get()),
                      [&](const std::string& cluster) {
                        std::vector<v1::RolloutCluster> described =
                            hub_->RolloutProgress(name, content.get(), {cluster});
                        return described.empty() ? std::string("no report") : described[0].detail();
                      });
  }
  RolloutStep step =
      AdvanceRollout(rollout, *partitions, strategy, now, [&](const Partition& partition) {
        return hub_->SummarizeProgress(name, content.get(), partition.clusters);
      });
  if (rollout.partition() > started_at) {
    metrics_.rollout_partitions_passed.Add({{"bundle", name}})
        .Increment(rollout.partition() - started_at);
    const bool done = rollout.partition() >= static_cast<int>(partitions->size());
    const std::string where =
        done ? std::string("done")
             : absl::StrCat("at partition ", rollout.partition() + 1, "/", partitions->size());
    GF_LOG(INFO) << "bundle " << name << ": rollout " << where;
    Publish(MakeEvent(done ? "rollout.done" : "rollout.partition", name, "",
                      done ? "every partition is through" : where, content->commit()));
  }
  if (rollout.has_ready_since() &&
      (!before.has_ready_since() || rollout.partition() != before.partition() ||
       rollout.commit() != before.commit())) {
    Publish(MakeEvent("rollout.baking", name, "", step.message, content->commit()));
  }
  if (rollout.halted() && !before.halted()) {
    GF_LOG(WARNING) << "bundle " << name << ": rollout paused: " << rollout.reason();
    Publish(MakeEvent("rollout.paused", name, "", rollout.reason(), content->commit()));
  }
  if (step.recheck != absl::InfiniteFuture()) {
    // The deadline passes with no report to wake it: look again then. (The queue keeps the
    // earliest delayed add of a key, so this is asked again on every evaluation.)
    queue_.AddAfter(name, std::max(absl::ZeroDuration(), step.recheck - now) + absl::Seconds(1));
  }
  if (!SameMessage(rollout, before)) {
    absl::Status stored = ChangeRollout(name, [&](v1::BundleRecord& current) {
      if (!SameMessage(current.rollout(), before)) {
        // An operator changed it meanwhile: that change queued another reconcile.
        return absl::AbortedError("changed meanwhile");
      }
      *current.mutable_rollout() = rollout;
      return absl::OkStatus();
    });
    if (!stored.ok()) {
      // Nothing is given out on progress that is not stored: the gate stays as it was.
      GF_LOG(WARNING) << "bundle " << name << ": rollout not advanced: " << stored;
      rollout = before;
      step.reports_needed = 1;  // counted for a place it did not take: any report looks
    }
  }
  if (rollout.out_of_turn_size() > 0) {
    // Each cluster given it out of turn, once it is stored (at most kOutOfTurnEvents an
    // evaluation).
    const bool same_partition = rollout.commit() == before.commit() &&
                                rollout.generation() == before.generation() &&
                                rollout.partition() == before.partition();
    const absl::flat_hash_set<std::string> told =
        same_partition ? absl::flat_hash_set<std::string>(before.out_of_turn().begin(),
                                                          before.out_of_turn().end())
                       : absl::flat_hash_set<std::string>();
    int published = 0, more = 0;
    for (const std::string& cluster : rollout.out_of_turn()) {
      if (told.count(cluster) > 0) continue;
      if (published == kOutOfTurnEvents) {
        ++more;
        continue;
      }
      ++published;
      Publish(MakeEvent("rollout.out_of_turn", name, cluster,
                        "given it out of turn: not ready on the older revision it ran, so it "
                        "may be its fix; it holds a place until it is ready",
                        content->commit()));
    }
    if (more > 0) {
      Publish(MakeEvent("rollout.out_of_turn", name, "",
                        absl::StrCat(more, " more clusters given it out of turn"),
                        content->commit()));
    }
  }
  hub_->ExpectReports(name, step.reports_needed, kRolloutRefreshInterval);
  // The same partitions and the same place in them: the same gate object, so the hub is
  // not told anything new. A new one is built on the last (the hub then looks only at
  // the clusters it adds).
  Hub::Gate gate, last;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it != bundles_.end()) {
      last = it->second.gate;
      if (it->second.gate_partitions == partitions &&
          it->second.gate_partition == rollout.partition() &&
          it->second.gate_admitted == rollout.admitted() &&
          it->second.gate_out_of_turn == rollout.out_of_turn_size()) {
        gate = last;
      }
    }
  }
  if (gate == nullptr && rollout.partition() < static_cast<int>(partitions->size())) {
    const Partition& current = (*partitions)[rollout.partition()];
    gate = GateOf(rollout, partitions, last.get(),
                  PaceOf(strategy, current, static_cast<int>(current.clusters.size())) > 0);
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it != bundles_.end()) {
      it->second.gate = gate;
      it->second.gate_partitions = partitions;
      it->second.gate_partition = rollout.partition();
      it->second.gate_admitted = rollout.admitted();
      it->second.gate_out_of_turn = rollout.out_of_turn_size();
    }
  }
  publish(partitions, membership, rollout.commit(), step.message.empty() ? "done" : step.message,
          rollout);
  return gate;
}

absl::Status Controller::ChangeRollout(
    const std::string& name, const std::function<absl::Status(v1::BundleRecord&)>& change) {
  MutexLock writer(&writer_mu_);
  v1::BundleRecord record;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end())
      return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
    record = it->second.record;
  }
  GF_RETURN_IF_ERROR(change(record));
  GF_RETURN_IF_ERROR(store_->Apply({Store::Put(kBundleRecords, name, StoredRecord(record))}));
  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  if (it != bundles_.end()) it->second.record = record;
  return absl::OkStatus();
}

absl::StatusOr<Controller::BundleVerdict> Controller::JudgeBundle(const std::string& name,
                                                                  const std::string& settled) {
  std::vector<v1::BundleInfo> infos = ListBundles(name, 1);
  if (infos.empty() || infos[0].bundle().name() != name) {
    return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
  }
  BundleVerdict out;
  LabelSelector selector;
  {
    MutexLock lock(&mu_);
    auto source = sources_.find(infos[0].bundle().source());
    if (source != sources_.end()) out.source_url = source->second.url();
    auto bundle = bundles_.find(name);
    if (bundle != bundles_.end()) selector = bundle->second.selector;
  }
  // Done at its commit once stays done there: a cluster's later report (a flap, a
  // cluster joining) is about what runs, not whether the commit reached the fleet.
  if (!settled.empty() && infos[0].commit() == settled && infos[0].error().empty()) {
    out.verdict.code = RolloutVerdict::kDone;
    out.verdict.commit = settled;
    out.verdict.line =
        absl::StrCat("bundle ", name, " at ", settled.substr(0, 12), ": rolled out (settled)");
    return out;
  }
  absl::StatusOr<v1::RolloutStatus> rollout = GetRollout(name, /*summary=*/true);
  if (!rollout.ok()) return rollout.status();
  out.suspended = rollout->suspended();
  // As gitfleetctl does: the clusters' statuses are read once each has taken the render.
  constexpr int kStatusesFrom = 1000;
  absl::StatusOr<RolloutVerdict> verdict =
      JudgeRollout(infos[0], *rollout, "", kStatusesFrom,
                   [&]() -> absl::StatusOr<StatusTally> { return TallyBundle(name, selector); });
  if (!verdict.ok()) return verdict.status();
  out.verdict = *std::move(verdict);
  return out;
}

absl::StatusOr<StatusTally> Controller::TallyBundle(const std::string& name) {
  LabelSelector selector;
  {
    MutexLock lock(&mu_);
    auto bundle = bundles_.find(name);
    if (bundle == bundles_.end()) {
      return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
    }
    selector = bundle->second.selector;
  }
  return TallyBundle(name, selector);
}

StatusTally Controller::TallyBundle(const std::string& name, const LabelSelector& selector) {
  StatusTally tally;
  // Counted by the hub where one revision is for all; the first not ready described.
  if (std::optional<Hub::Readiness> counted = hub_->CountReady(name, selector)) {
    tally.total = counted->total;
    tally.ready = counted->ready;
    if (!counted->first_not_ready.empty()) {
      for (const v1::BundleStatus& status : GetStatus(counted->first_not_ready, name)) {
        tally.first_not_ready = absl::StrCat(status.cluster(), ": ", WhyNotReady(status));
      }
      if (tally.first_not_ready.empty()) {
        tally.first_not_ready = absl::StrCat(counted->first_not_ready, ": no report yet");
      }
    }
    return tally;
  }
  for (const v1::BundleStatus& status : GetStatus("", name)) tally.Add(status);
  return tally;
}

absl::StatusOr<v1::RolloutStatus> Controller::GetRollout(const std::string& name, bool summary) {
  v1::RolloutStatus status;
  // Shared, not copied: a 10,000-cluster cut is 10,000 names, under the controller's lock.
  std::shared_ptr<const std::vector<Partition>> cut;
  v1::RolloutRecord rollout;
  v1::RolloutStrategy strategy;
  std::shared_ptr<const BundleVariants> content;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end())
      return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
    const BundleState& state = it->second;
    status.set_bundle(name);
    status.set_commit(state.content != nullptr ? state.content->commit() : "");
    status.set_progressive(Progressive(state.Rollout()));
    status.set_declared_in(state.Rollout().declared_in());
    status.set_suspended(state.record.suspended());
    status.set_message(state.rollout_message);
    status.set_pinned_commit(state.record.pinned_commit());
    status.set_prune_held(state.content != nullptr &&
                          state.prune_held_commit == state.content->commit());
    cut = state.partitions;
    rollout = state.record.rollout();
    content = state.content;
    strategy = state.RolloutWithBake();
  }
  static const auto* const kNone = new std::vector<Partition>();
  const std::vector<Partition>& partitions = cut != nullptr ? *cut : *kNone;
  const bool done = rollout.partition() >= static_cast<int>(partitions.size());
  status.set_partition(std::min<int>(rollout.partition(), partitions.size()));
  status.set_done(status.progressive() && done);
  status.set_paused(status.progressive() && !done &&
                    (rollout.halted() || rollout.paused_by_operator()));
  if (status.done() && rollout.paused_by_operator()) {
    // Nothing to hold now; the pause holds the next render (it goes to partition 1 only).
    status.set_message(
        "paused by an operator: the next render goes to partition 1 only, until gitfleetctl "
        "rollout resume");
  }
  for (size_t i = 0; i < partitions.size(); ++i) {
    v1::RolloutPartition* p = status.add_partitions();
    p->set_index(static_cast<int32_t>(i));
    p->set_selector(partitions[i].selector);
    p->set_name(partitions[i].name);
    p->set_max_unavailable(partitions[i].max_unavailable);
    const int index = static_cast<int>(i);
    p->set_state(index < rollout.partition()   ? "done"
                 : index > rollout.partition() ? "waiting"
                 : status.paused()             ? "paused"
                 : rollout.has_ready_since()   ? "baking"
                                               : "rolling");
    if (summary) continue;
    int place = 0;
    const bool paced =
        PaceOf(strategy, partitions[i], static_cast<int>(partitions[i].clusters.size())) > 0;
    const absl::flat_hash_set<std::string> out_of_turn(rollout.out_of_turn().begin(),
                                                       rollout.out_of_turn().end());
    for (v1::RolloutCluster& c :
         hub_->RolloutProgress(name, content.get(), partitions[i].clusters)) {
      if (index > rollout.partition() && !c.ready()) c.set_detail("not reached yet");
      // Paced: those of the partition after the ones given it so far wait their turn.
      if (paced && index == rollout.partition() && place >= rollout.admitted() && !c.ready() &&
          out_of_turn.count(c.name()) == 0) {
        c.set_detail(
            "its turn in the partition has not come (a few at a time, the next once "
            "one given it is ready)");
      }
      ++place;
      *p->add_clusters() = std::move(c);
    }
    // Gone past not ready (Fleet's maxUnavailablePartitions): said so, not "done".
    if (index < rollout.partition() && !strategy.max_unavailable_partitions().empty() &&
        std::any_of(p->clusters().begin(), p->clusters().end(),
                    [](const v1::RolloutCluster& c) { return !c.ready(); })) {
      p->set_state("passed");
    }
  }
  return status;
}

absl::StatusOr<v1::CommitReach> Controller::ReachOf(const std::string& name,
                                                    const std::string& asked) {
  std::string source;
  std::string current;    // the commit it was reconciled at
  std::string failed_at;  // its newest render's, when that failed
  std::string source_error;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end())
      return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
    const BundleState& state = it->second;
    source = state.definition.source();
    current = state.record.commit();
    if (!state.record.error().empty()) failed_at = state.record.error_commit();
    if (auto failing = source_errors_.find(source); failing != source_errors_.end()) {
      source_error = failing->second;
    }
  }
  v1::CommitReach reach;
  reach.set_bundle_commit(current);
  const std::string failing = source_error.empty()
                                  ? std::string()
                                  : absl::StrCat(" (its source fails: ", source_error, ")");
  std::optional<SourceSnapshot> snapshot = poller_.Snapshot(source);
  if (!snapshot.has_value() || (current.empty() && failed_at.empty())) {
    reach.set_note(
        absl::StrCat("source ", source, " has not given the bundle a commit yet", failing));
    return reach;
  }
  for (const std::string* commit : {&failed_at, &current}) {
    if (commit->empty()) continue;
    absl::StatusOr<GitRepository::Ancestry> at = snapshot->repo->CompareCommits(asked, *commit);
    if (absl::IsNotFound(at.status())) {
      reach.set_note(absl::StrCat("source ", source, " has not fetched it yet", failing));
      return reach;
    }
    if (!at.ok()) return at.status();
    reach.set_commit(at->asked);
    if (commit == &failed_at) {
      reach.set_failed(at->reached);
      continue;
    }
    reach.set_reached(at->reached);
    if (!at->reached && !at->ahead) {
      reach.set_note(absl::StrCat(
          "not in the history of ", current.substr(0, 12),
          ", the commit the bundle runs: a commit of another branch counts once merged, one a "
          "force-push dropped never comes"));
    }
  }
  return reach;
}

absl::StatusOr<v1::RolloutStatus> Controller::ControlRollout(const std::string& name,
                                                             const std::string& action,
                                                             absl::Time wait_until) {
  if (action != "pause" && action != "resume" && action != "promote") {
    return absl::InvalidArgumentError(
        absl::StrCat("rollout action \"", action, "\": want pause, resume or promote"));
  }
  std::string held_commit;  // a render the prune guard holds, which promote lets through
  int64_t held_generation = 0;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end())
      return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
    const BundleState& held = it->second;
    if (action == "promote" && held.content != nullptr &&
        held.prune_held_commit == held.content->commit()) {
      held_commit = held.content->commit();
      held_generation = held.definition.generation();
    }
  }
  if (!held_commit.empty()) {
    // This render only: a later one that deletes as much is held again.
    GF_RETURN_IF_ERROR(ChangeRollout(name, [&](v1::BundleRecord& record) {
      record.set_prune_approved_commit(held_commit);
      record.set_prune_approved_generation(held_generation);
      return absl::OkStatus();
    }));
    GF_LOG(INFO) << "bundle " << name << ": the prune of " << held_commit.substr(0, 12)
                 << " let through by an operator";
    Publish(MakeEvent("rollout.promoted", name, "", "the prune guard's hold lifted by an operator",
                      held_commit));
    ReconcileAndWait(name, wait_until);
    // Those held with it across its repository (StreamPruneHold) are judged again: what is
    // left of the commit's deletions may be under the guard's limit now.
    std::vector<std::string> held_too;
    {
      MutexLock lock(&mu_);
      auto it = bundles_.find(name);
      for (auto other = bundles_.begin(); it != bundles_.end() && other != bundles_.end();
           ++other) {
        if (other != it && !other->second.prune_held_commit.empty() &&
            SameCommitsLocked(other->second.definition.source(), it->second.definition.source())) {
          held_too.push_back(other->first);
        }
      }
    }
    for (const std::string& other : held_too) ReconcileAndWait(other, wait_until);
    return GetRollout(name);
  }
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end())
      return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
    if (!Progressive(it->second.Rollout())) {
      return absl::FailedPreconditionError(
          absl::StrCat("bundle ", name,
                       " has no partitions: it rolls out everywhere at once (see bundle add "
                       "--partition, --partition-size, or a fleet.yaml's rolloutStrategy)"));
    }
    const BundleState& state = it->second;
    const v1::RolloutRecord& rollout = state.record.rollout();
    if (action == "promote" && state.partitions != nullptr && state.content != nullptr &&
        rollout.commit() == state.content->commit() &&
        rollout.partition() >= static_cast<int>(state.partitions->size())) {
      // It would be a no-op that looks like one was needed (and a new render's rollout
      // starts with no promotion either way).
      return absl::FailedPreconditionError(absl::StrCat(
          "bundle ", name, ": its rollout of ", rollout.commit().substr(0, 12),
          " is done, so there is no partition to promote",
          rollout.paused_by_operator() ? " (rollout resume lifts the pause on the next render)"
                                       : ""));
    }
  }
  const absl::Time now = options_.clock->Now();
  // The clusters whose trouble paused it were looked at: only new trouble pauses again.
  if (action != "pause") hub_->AcknowledgeRegressions(name);
  GF_RETURN_IF_ERROR(ChangeRollout(name, [&](v1::BundleRecord& record) {
    v1::RolloutRecord& rollout = *record.mutable_rollout();
    if (action == "pause") {
      rollout.set_paused_by_operator(true);
    } else {
      // Resume and promote both give the partition a fresh deadline.
      rollout.set_paused_by_operator(false);
      rollout.set_halted(false);
      rollout.clear_reason();
      *rollout.mutable_partition_started() = ToProtoTime(now);
      if (action == "promote") rollout.set_promoted(true);
    }
    return absl::OkStatus();
  }));
  GF_LOG(INFO) << "bundle " << name << ": rollout " << action << " by an operator";
  Publish(MakeEvent(action == "pause"    ? "rollout.paused"
                    : action == "resume" ? "rollout.resumed"
                                         : "rollout.promoted",
                    name, "", absl::StrCat(action, " by an operator")));
  ReconcileAndWait(name, wait_until);
  return GetRollout(name);
}

absl::StatusOr<v1::BundleInfo> Controller::SuspendBundle(const std::string& name, bool suspend,
                                                         absl::Time wait_until) {
  GF_RETURN_IF_ERROR(ChangeRollout(name, [&](v1::BundleRecord& record) {
    record.set_suspended(suspend);
    return absl::OkStatus();
  }));
  GF_LOG(INFO) << "bundle " << name << (suspend ? " suspended" : " resumed");
  Publish(MakeEvent(suspend ? "bundle.suspended" : "bundle.resumed", name, "",
                    suspend ? "suspended by an operator: no cluster gets a new revision"
                            : "resumed by an operator"));
  ReconcileAndWait(name, wait_until);
  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  if (it == bundles_.end()) return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
  return InfoLocked(it->second);
}

absl::StatusOr<v1::BundleInfo> Controller::RefreshBundle(const std::string& name,
                                                         absl::Time wait_until) {
  std::string source;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) {
      return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
    }
    source = it->second.definition.source();
    it->second.remote_pushed = true;  // rendered again, not from the render cache
  }
  // The remote files and chart indexes a render read are not recorded by repository:
  // whatever the fetchers keep is read anew at its next use (an operator's act, rare).
  if (options_.engines.remote_bases != nullptr) options_.engines.remote_bases->FetchAllAgain();
  if (options_.engines.chart_fetcher != nullptr) options_.engines.chart_fetcher->FetchAllAgain();
  GF_LOG(INFO) << "bundle " << name << ": refreshed by an operator";
  // The source too (its other bundles are reconciled as a sync reconciles them): a commit
  // it brings is what this render reads.
  if (absl::StatusOr<v1::SourceInfo> synced = SyncSource(source, wait_until); !synced.ok()) {
    // What it has of the source still renders anew.
    GF_LOG(WARNING) << "bundle " << name << ": refresh: source " << source << ": "
                    << synced.status();
    ReconcileAndWait(name, wait_until);
  }
  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  if (it == bundles_.end()) return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
  return InfoLocked(it->second);
}

absl::StatusOr<v1::BundleHistoryResponse> Controller::BundleHistory(
    const std::string& name, int limit,
    const std::function<bool(const v1::ClusterInfo&)>& visible) {
  if (limit <= 0) limit = 10;
  limit = std::min(limit, 1000);
  std::vector<std::string> ids;
  v1::BundleHistoryResponse response;
  std::set<std::string> current;  // the current render's revisions: template and variants
  std::shared_ptr<const BundleVariants> content;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end())
      return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
    ids.assign(it->second.record.recent_revisions().begin(),
               it->second.record.recent_revisions().end());
    response.set_pinned_commit(it->second.record.pinned_commit());
    response.set_pinned_no_prune(it->second.record.pinned_no_prune());
    current.insert(it->second.record.revision());
    content = it->second.content;
  }
  if (content != nullptr) {  // outside the lock: a content has its own
    for (std::string& id : content->RevisionIds()) current.insert(std::move(id));
  }
  // Where each runs, from what the clusters report.
  std::map<std::string, std::vector<std::string>> applied;
  for (const ClusterView& view : hub_->Clusters()) {
    auto report = view.reports.find(name);
    if (report != view.reports.end() && !report->second.applied_revision().empty() &&
        (visible == nullptr || visible(view.info))) {
      applied[report->second.applied_revision()].push_back(view.info.name());
    }
  }
  for (const std::string& id : ids) {
    if (response.entries_size() >= limit) break;
    v1::HistoryEntry* entry = response.add_entries();
    entry->set_revision(id);
    entry->set_current(current.count(id) > 0);
    absl::StatusOr<std::string> stored =
        store_->Get(kRevisionsTable, Revision::RevisionKey(name, id));
    v1::RevisionRecord record;
    if (stored.ok() && record.ParseFromString(*stored)) {
      entry->set_commit(record.commit());
      *entry->mutable_committed_time() = record.committed_time();
      entry->set_object_count(record.objects_size());
      entry->set_per_cluster_template(record.per_cluster_template());
    }
    const std::vector<std::string>& where = applied[id];
    entry->set_applied_count(static_cast<int32_t>(where.size()));
    for (size_t i = 0; i < where.size() && i < 50; ++i) entry->add_applied(where[i]);
  }
  return response;
}

absl::StatusOr<v1::BundleInfo> Controller::PinBundle(const std::string& name, const std::string& to,
                                                     bool no_prune, absl::Time wait_until) {
  std::string commit;
  std::string pinned_ref;  // the signed tag that vouches for it
  if (!to.empty()) {
    // A revision or commit of the bundle's history, by at least 7 characters of its id.
    GF_ASSIGN_OR_RETURN(v1::BundleHistoryResponse history, BundleHistory(name, 1000));
    for (const v1::HistoryEntry& entry : history.entries()) {
      if (to.size() >= 7 &&
          (absl::StartsWith(entry.revision(), to) || absl::StartsWith(entry.commit(), to))) {
        if (!commit.empty() && commit != entry.commit()) {
          return absl::InvalidArgumentError(
              absl::StrCat("--to=", to, " matches more than one revision; give more of it"));
        }
        commit = entry.commit();
      }
    }
    std::string source;
    std::string source_error;
    {
      MutexLock lock(&mu_);
      auto it = bundles_.find(name);
      if (it != bundles_.end()) source = it->second.definition.source();
      if (auto failing = source_errors_.find(source); failing != source_errors_.end()) {
        source_error = failing->second;
      }
    }
    std::optional<SourceSnapshot> snapshot = poller_.Snapshot(source);
    if (snapshot.has_value()) {
      // Not in the history: a tag, a branch (the commit it names now) or a commit id of the
      // source's repository.
      const std::string asked = commit.empty() ? to : commit;
      absl::StatusOr<CommitInfo> resolved = snapshot->repo->Resolve(asked);
      if (absl::IsNotFound(resolved.status()) && commit.empty()) {
        // Pushed since the last fetch (a release tag made for the rollback, say): the
        // source is fetched now, once, and asked again.
        absl::StatusOr<v1::SourceInfo> synced = poller_.SyncNow(source, WaitLeft(wait_until));
        if (synced.ok()) resolved = snapshot->repo->Resolve(asked);
      }
      if (resolved.ok()) {
        commit = resolved->id;
        // A source that takes only signed commits takes no other by a rollback either: any
        // commit of its repository (another branch's, say) could be named here. Checked
        // again at each render of it (a key taken out of the folder since counts).
        absl::StatusOr<std::string> signer =
            poller_.VerifyForSource(source, *snapshot->repo, *resolved, asked);
        if (!signer.ok()) {
          return absl::Status(signer.status().code(),
                              absl::StrCat("--to=", to, ": ", signer.status().message(),
                                           "; bundle ", name, " keeps what it runs"));
        }
        if (absl::StartsWith(*signer, "tag ")) pinned_ref = asked;
      }
      if (absl::IsInvalidArgument(resolved.status()) && commit.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--to=", to, ": ", resolved.status().message()));
      }
      if (!resolved.ok() && commit.empty()) {
        return absl::NotFoundError(absl::StrCat(
            "--to=", to, ": no revision or commit of bundle ", name, ", nor a tag, branch or ",
            "commit of source ", source, " (see gitfleetctl bundle history ", name,
            "; a commit id needs at least 7 characters)"));
      }
    } else if (commit.empty()) {
      return absl::UnavailableError(
          absl::StrCat("--to=", to, ": not in bundle ", name, "'s history, and source ", source,
                       " has no fetched commit to look it up in",
                       source_error.empty() ? " yet" : absl::StrCat(" (", source_error, ")")));
    }
  }
  GF_RETURN_IF_ERROR(ChangeRollout(name, [&](v1::BundleRecord& record) {
    record.set_pinned_commit(commit);
    record.set_pinned_no_prune(!commit.empty() && no_prune);
    record.set_pinned_ref(pinned_ref);
    return absl::OkStatus();
  }));
  {
    // Rendered again even at the commit it runs: whether it prunes may have changed.
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it != bundles_.end()) it->second.reconciled_commit.clear();
  }
  GF_LOG(INFO) << "bundle " << name
               << (commit.empty() ? std::string(" unpinned: it follows its source again")
                                  : absl::StrCat(" pinned to commit ", commit,
                                                 no_prune ? ", keeping what it lacks" : ""));
  Publish(commit.empty()
              ? MakeEvent("bundle.unpinned", name, "",
                          "unpinned by an operator: it follows its source again")
              : MakeEvent("bundle.pinned", name, "",
                          absl::StrCat("rolled back by an operator to ", commit.substr(0, 12),
                                       no_prune ? ", keeping what it lacks" : ""),
                          commit));
  ReconcileAndWait(name, wait_until);
  MutexLock lock(&mu_);
  auto it = bundles_.find(name);
  if (it == bundles_.end()) return absl::NotFoundError(absl::StrCat("bundle ", name, " not found"));
  return InfoLocked(it->second);
}

absl::Status Controller::SuspendCluster(const std::string& cluster, bool suspend) {
  if (cluster.empty()) return absl::InvalidArgumentError("suspend needs a cluster name");
  GF_RETURN_IF_ERROR(hub_->SuspendCluster(cluster, suspend));
  Publish(MakeEvent(suspend ? "cluster.suspended" : "cluster.resumed", "", cluster,
                    suspend ? "under maintenance: it gets no new revision of any bundle"
                            : "resumed by an operator"));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const std::vector<RepoFile>>> Controller::RepositoryFiles(
    const SourceSnapshot& snapshot) {
  // Read with submodules, the same commit shows more files.
  return repository_files_.Get(absl::StrCat(snapshot.repo->url(), "@", snapshot.commit.id,
                                            snapshot.repo->reads_submodules() ? "+submodules" : "",
                                            snapshot.repo->reads_lfs() ? "+lfs" : ""),
                               [&] {
                                 return snapshot.repo->ReadTree(
                                     snapshot.commit.id, "", GitRepository::Unreadable::kLeaveOut);
                               });
}

absl::Status Controller::BuildContent(const std::string& name, const v1::Bundle& definition,
                                      const ValuesSpec& values, uint64_t generation,
                                      const SourceSnapshot& snapshot, absl::Time seen_time,
                                      const RepositoryReads& reads,
                                      const std::string& fleet_gitrepo, Built* out) {
  const CommitInfo& commit = snapshot.commit;
  // Readers of the repository at the commit that note each path they are asked for, found
  // or not, in out->asked: what the render read beyond its files.
  auto read_folder = [read = FolderReader(snapshot.repo, commit.id),
                      asked = out->asked](const std::string& folder) {
    {
      MutexLock lock(&asked->mu);
      asked->paths.insert(folder);
    }
    return read(folder);
  };
  auto read_files = [read = FilesReader(snapshot.repo, commit.id),
                     asked = out->asked](const std::vector<std::string>& paths) {
    {
      MutexLock lock(&asked->mu);
      asked->paths.insert(paths.begin(), paths.end());
    }
    return read(paths);
  };
  std::string& engine = out->engine;
  std::shared_ptr<BundleVariants>& content = out->content;
  std::shared_ptr<ReadPathSet>& variant_paths = out->variant_paths;
  std::vector<std::string>& read_paths = out->read_paths;
  std::vector<std::string>& read_ids = out->read_ids;
  std::vector<std::string>& notes = out->notes;
  absl::Status status;
  absl::StatusOr<std::vector<RepoFile>> files =
      snapshot.repo->ReadTree(commit.id, definition.path(), GitRepository::Unreadable::kRefuse);
  if (files.ok() && engine.empty()) {
    engine = DetectEngine(definition.path(), *files, reads.fleet_bundle_layout, reads.fleet_charts,
                          reads.fleet_outside_charts, reads.fleet_getter_charts);
  }
  Renderer* renderer = renderers_.Find(engine);
  std::shared_ptr<const std::vector<RepoFile>> inputs;
  if (!files.ok()) {
    status = files.status();
  } else if (renderer == nullptr) {
    status = absl::UnimplementedError(absl::StrCat("engine ", engine, " (", definition.path(),
                                                   ") is not supported yet; the bundle keeps "
                                                   "its last good revision"));
  } else if (FindRendererFactory(engine)->reads_outside_path()) {
    absl::StatusOr<std::shared_ptr<const std::vector<RepoFile>>> all = RepositoryFiles(snapshot);
    if (all.ok()) inputs = *all;
    status = all.status();
  } else {
    status = ReadFilesAbove(*FindRendererFactory(engine), *snapshot.repo, commit.id,
                            definition.path(), &*files);
    if (status.ok()) inputs = std::make_shared<const std::vector<RepoFile>>(*std::move(files));
  }
  // SOPS-encrypted files, decrypted before any engine reads them (into a copy: the
  // repository's files are shared with other renders).
  if (status.ok() && definition.decrypt() == "sops") {
    std::shared_ptr<const AgeIdentities> identities =
        options_.sops_identities ? options_.sops_identities() : nullptr;
    std::shared_ptr<const PgpKeys> pgp =
        options_.sops_pgp_keys ? options_.sops_pgp_keys() : nullptr;
    if (identities == nullptr && pgp == nullptr) {
      status = absl::FailedPreconditionError(absl::StrCat(
          "bundle ", name,
          " decrypts SOPS files (--decrypt=sops), and the control plane has no SOPS keys: start "
          "it with --sops-age-key-file or --sops-pgp-key-file"));
    } else if (std::any_of(inputs->begin(), inputs->end(), [](const RepoFile& file) {
                 return IsSopsFile(file.path, file.content);
               })) {
      auto decrypted = std::make_shared<std::vector<RepoFile>>(*inputs);
      SopsKeys keys{identities.get(), pgp.get()};
      // A team's bundle: its scope's keys alone (none: nothing opens).
      std::optional<AgeIdentities> team_identities;
      std::vector<std::string> team_pgp;
      if (definition.has_scope()) {
        const std::vector<std::string> allowed(definition.scope().sops_keys().begin(),
                                               definition.scope().sops_keys().end());
        if (identities != nullptr) team_identities = identities->Only(allowed);
        keys.age = team_identities.has_value() && team_identities->size() > 0 ? &*team_identities
                                                                              : nullptr;
        for (const std::string& key : allowed) {
          if (!absl::StartsWith(key, "age1")) team_pgp.push_back(key);
        }
        if (team_pgp.empty()) keys.pgp = nullptr;
        keys.pgp_only = &team_pgp;
      }
      status = DecryptSopsFiles(definition.path(), keys, decrypted.get(), &notes);
      inputs = std::move(decrypted);
    }
  }
  BundleVariants::Params params =
      ContentParams(name, definition, values, generation, commit.id, commit.time);
  params.seen_time = seen_time;
  params.engine = engine;
  // A plain or kustomize bundle whose fleet.yaml gives clusters their own folder or
  // namespace renders per cluster, as jsonnet and helm do (RenderBundlePath chooses).
  const bool per_target = out->per_target =
      status.ok() && reads.fleet_target_folders &&
      RendersPerFleetTarget(engine, definition.path(), *inputs, reads.fleet_bundle_layout,
                            reads.fleet_do_not_deploy, reads.fleet_override_targets);
  // Charts rendered for each cluster's version or APIs (--kube-version=cluster): a
  // kustomize bundle's helmCharts too, so its renders are per cluster as helm's are.
  const bool cluster_capabilities =
      definition.helm_kube_version() == kClusterKubeVersion ||
      std::find(definition.helm_api_versions().begin(), definition.helm_api_versions().end(),
                kClusterApiVersions) != definition.helm_api_versions().end();
  if (status.ok() && (TakesValues(engine) || per_target || cluster_capabilities)) {
    // A fleet.yaml target, or a cluster's version and APIs, is chosen from its context.
    params.cluster_context = per_target || cluster_capabilities;
    variant_paths = std::make_shared<ReadPathSet>();
    std::vector<std::string> tlas(definition.jsonnet_tlas().begin(),
                                  definition.jsonnet_tlas().end());
    std::vector<std::string> values_files(definition.helm_values_files().begin(),
                                          definition.helm_values_files().end());
    HelmCapabilities capabilities{definition.helm_kube_version(),
                                  Strings(definition.helm_api_versions())};
    BundleVariants::RenderFn render =
        [renderer, inputs, name, path = definition.path(), tlas, values_files, capabilities,
         api_versions_of = ApiVersionsOf(
             [hub = hub_](const std::string& digest) { return hub->ApiVersions(digest); }),
         read_folder, read_files, ns = definition.target_namespace(), reads,
         gitrepo = fleet_gitrepo, release = definition.helm_release(),
         argocd_app = definition.argocd_app(),
         accounts_namespace = options_.fleet_service_account_namespace,
         include = Strings(definition.include()), exclude = Strings(definition.exclude()),
         scope_repos = Strings(definition.scope().repos()),
         substitute = !TakesValues(engine) && WantsSubstitution(definition), variant_paths,
         asked = out->asked](const Values& values, ReadValues* read) {
          std::vector<std::string> paths;
          std::vector<std::string> failed;
          std::vector<std::string> said;
          bool remote = false;
          std::vector<std::string> repos;
          absl::StatusOr<HelmCapabilities> capabilities_here =
              HelmCapabilitiesFor(capabilities, values, read, api_versions_of);
          if (!capabilities_here.ok()) return absl::StatusOr<ObjectSet>(capabilities_here.status());
          RenderInput input{name, path, *inputs, &paths, &values, read, tlas, values_files};
          input.read_remote = &remote;
          input.helm_capabilities = *std::move(capabilities_here);
          input.read_folder = read_folder;
          input.read_files = read_files;
          input.target_namespace = ns;
          UseReads(reads, &input);
          input.fleet_gitrepo = gitrepo;
          input.bundle_helm_release = release;
          input.argocd_app = argocd_app;
          input.fleet_service_account_namespace = accounts_namespace;
          input.include = include;
          input.exclude = exclude;
          input.fetch_scope.repos = scope_repos;
          input.fetch_scope.repos_read = &repos;
          input.notes = &said;
          input.failed_reads = &failed;
          absl::StatusOr<ObjectSet> objects = RenderBundlePath(*renderer, input);
          // Plain and kustomize output is a template: substituted here, per cluster.
          if (objects.ok() && substitute) objects = SubstituteObjects(*objects, values, read);
          // Whether the engine said what its failure read (RenderInput::failed_reads).
          const bool failure_said = !failed.empty();
          if (!objects.ok()) {
            // And what it asked of the repository (a values file elsewhere, not there yet).
            MutexLock lock(&asked->mu);
            failed.insert(failed.end(), asked->paths.begin(), asked->paths.end());
          }
          MutexLock lock(&variant_paths->mu);
          variant_paths->paths.insert(paths.begin(), paths.end());
          variant_paths->read_remote |= remote;
          for (std::string& repo : repos) {
            if (variant_paths->repos_read.size() >= kMaxRemoteRepos) break;
            variant_paths->repos_read.insert(std::move(repo));
          }
          if (!objects.ok()) {
            // What a variant failed on is read too: a commit that changes it renders again
            // (a target's folder whose base comes later), though the others read none of it.
            variant_paths->paths.insert(failed.begin(), failed.end());
            variant_paths->failed_unknown |= !failure_said;
            variant_paths->failed.insert(failed.begin(), failed.end());
          }
          for (std::string& note : said) {
            if (variant_paths->notes.size() >= kMaxVariantNotes) break;
            variant_paths->notes.insert(std::move(note));
          }
          return objects;
        };
    content = BundleVariants::FromRenderer(std::move(params), std::move(render),
                                           FindRendererFactory(engine)->explicit_values_only());
  } else if (status.ok()) {
    RenderInput input{name, definition.path(), *inputs, &read_paths};
    input.read_remote = &out->read_remote;
    input.notes = &notes;
    input.helm_capabilities = {definition.helm_kube_version(),
                               Strings(definition.helm_api_versions())};
    input.read_folder = read_folder;
    input.read_files = read_files;
    input.failed_reads = &out->failed_reads;
    input.target_namespace = definition.target_namespace();
    UseReads(reads, &input);
    input.fleet_gitrepo = fleet_gitrepo;
    input.bundle_helm_release = definition.helm_release();
    input.argocd_app = definition.argocd_app();
    input.fleet_service_account_namespace = options_.fleet_service_account_namespace;
    input.include = Strings(definition.include());
    input.exclude = Strings(definition.exclude());
    input.fetch_scope.repos = Strings(definition.scope().repos());
    input.fetch_scope.repos_read = &out->repos_read;
    absl::StatusOr<ObjectSet> objects = RenderBundlePath(*renderer, input);
    absl::StatusOr<std::vector<std::string>> ids =
        objects.ok() ? snapshot.repo->EntryIds(commit.id, read_paths)
                     : absl::StatusOr<std::vector<std::string>>(objects.status());
    absl::StatusOr<std::shared_ptr<BundleVariants>> built =
        ids.ok() ? BundleVariants::FromTemplate(std::move(params), *std::move(objects))
                 : absl::StatusOr<std::shared_ptr<BundleVariants>>(ids.status());
    if (ids.ok()) read_ids = *std::move(ids);
    status = built.status();
    if (built.ok()) {
      content = *std::move(built);
      notes.insert(notes.end(), content->notes().begin(), content->notes().end());
    }
  }
  // Fleet's `paused`, read from the folder whatever the engine (a chart's variants render
  // later): the render is held from every cluster while it says true.
  if (status.ok() && inputs != nullptr) {
    absl::StatusOr<FleetYamlNamespace> fleet =
        ReadFleetYamlNamespace(definition.path(), *inputs, reads.fleet_bundle_layout);
    if (fleet.ok() && !fleet->paused_error.empty()) {
      status = absl::InvalidArgumentError(fleet->paused_error);
      content.reset();
    } else if (fleet.ok() && fleet->paused) {
      out->paused_by = fleet->file;
    }
    if (fleet.ok() && reads.fleet_depends_on) {
      out->declared_depends_on = fleet->depends_on;
      if (!fleet->depends_on_error.empty() && status.ok()) {
        // Fleet would not deploy it either: nothing waits for what it cannot tell.
        status =
            absl::InvalidArgumentError(absl::StrCat(fleet->file, ": ", fleet->depends_on_error));
        content.reset();
      }
    }
    if (fleet.ok()) {
      out->fleet_name = fleet->bundle_name;
      out->fleet_labels = fleet->labels;
      // Its rolloutStrategy orders the rollout of a bundle with no partitions of its own.
      out->fleet_rollout = FleetRolloutStrategy(fleet->rollout, fleet->file);
      out->fleet_rollout_error = fleet->rollout_error;
      if (Progressive(definition.rollout()) &&
          (fleet->rollout.declared || !fleet->rollout_error.empty())) {
        out->notes.push_back(absl::StrCat(fleet->file,
                                          ": rolloutStrategy is not followed: the bundle's "
                                          "own partitions (--partition, --partition-size) are"));
      } else {
        for (const std::string& note : fleet->rollout.notes) {
          out->notes.push_back(absl::StrCat(fleet->file, ": ", note));
        }
      }
    }
  }
  // A tool that read the repository found no files where a submodule is: say why.
  if (!status.ok() && inputs != nullptr && !snapshot.repo->reads_submodules() &&
      !absl::StrContains(status.message(), "--submodules")) {
    status = absl::Status(
        status.code(),
        absl::StrCat(
            status.message(),
            SubmoduleHint(*inputs, absl::StrCat("source ", definition.source(),
                                                " does not fetch: give it --submodules"))));
  }
  return status;
}

std::optional<std::vector<std::string>> Controller::FailedReads(const v1::Bundle& definition,
                                                                const Built& built) {
  const RendererFactory* factory =
      built.engine.empty() ? nullptr : FindRendererFactory(built.engine);
  if (factory == nullptr) return std::nullopt;
  std::vector<std::string> paths = {definition.path()};
  if (!factory->reads_outside_path()) {
    // Its files are the folder's and those above it that the engine names.
    std::vector<std::string> above = factory->FilesAbove(definition.path());
    paths.insert(paths.end(), above.begin(), above.end());
  } else if (built.variant_paths == nullptr) {
    // The whole repository, of which the engine says what it read.
    if (built.failed_reads.empty()) return std::nullopt;
    paths.insert(paths.end(), built.failed_reads.begin(), built.failed_reads.end());
  } else {
    // Per variant: what those that failed read (a failure that depends on no value fails
    // each variant alike).
    MutexLock lock(&built.variant_paths->mu);
    if (built.variant_paths->failed_unknown || built.variant_paths->failed.empty()) {
      return std::nullopt;
    }
    paths.insert(paths.end(), built.variant_paths->failed.begin(),
                 built.variant_paths->failed.end());
  }
  {
    MutexLock lock(&built.asked->mu);
    paths.insert(paths.end(), built.asked->paths.begin(), built.asked->paths.end());
  }
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  return paths;
}

absl::Status Controller::RenderBundle(const std::string& name, const SourceSnapshot& snapshot,
                                      bool fresh, const absl::Status& refused) {
  v1::Bundle definition;
  ValuesSpec values;
  uint64_t generation;
  v1::BundleRecord last;
  std::shared_ptr<const BundleVariants> last_content;
  std::shared_ptr<ReadPathSet> last_paths;
  std::string fleet_gitrepo;
  uint64_t asks;
  BundleState::SettledFailure settled;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return absl::OkStatus();
    definition = it->second.definition;
    values = it->second.values;
    generation = it->second.generation;
    asks = it->second.asks;
    settled = it->second.settled;
    last = it->second.record;
    last_content = it->second.content;
    last_paths = it->second.variant_paths;
    fleet_gitrepo = FleetGitRepoLocked(definition.source());
  }
  const CommitInfo& commit = snapshot.commit;
  definition = RenderedDefinition(std::move(definition), last, commit.id);
  absl::Time start = options_.clock->Now();
  // The cache: if every path the last render read has the same object id at this commit,
  // the render would be the same. The engine is decided by the bundle path's files, and
  // every engine lists the bundle path itself, so an unchanged path means the same engine.
  bool cache_hit = false;
  if (last_content != nullptr && last_paths != nullptr) {
    // Per-variant engines: everything any variant read, then and now.
    std::vector<std::string> paths;
    {
      MutexLock lock(&last_paths->mu);
      paths.assign(last_paths->paths.begin(), last_paths->paths.end());
    }
    absl::StatusOr<std::vector<std::string>> before =
        paths.empty() ? absl::StatusOr<std::vector<std::string>>(absl::NotFoundError("no reads"))
                      : snapshot.repo->EntryIds(last_content->commit(), paths);
    absl::StatusOr<std::vector<std::string>> now =
        before.ok() ? snapshot.repo->EntryIds(commit.id, paths) : before.status();
    cache_hit = now.ok() && *before == *now;
  } else if (last_content != nullptr && last.read_paths_size() > 0) {
    std::vector<std::string> paths(last.read_paths().begin(), last.read_paths().end());
    absl::StatusOr<std::vector<std::string>> now = snapshot.repo->EntryIds(commit.id, paths);
    cache_hit = now.ok() && std::equal(now->begin(), now->end(), last.read_ids().begin(),
                                       last.read_ids().end());
  }
  // What it read from outside the repository may have changed without a commit.
  cache_hit = cache_hit && !fresh;
  // The same objects, but not the same options (a rollback's prune, an unpin): built anew.
  cache_hit = cache_hit &&
              last_content->sync().SerializeAsString() == definition.sync().SerializeAsString();
  // Nor the same names (the source's --fleet-gitrepo changed since).
  cache_hit = cache_hit && (last.fleet_gitrepo().empty() ? definition.source()
                                                         : last.fleet_gitrepo()) == fleet_gitrepo;
  // Refused before any render (a pinned commit its source's keys did not sign): recorded
  // as a render of it that failed, so the bundle says why and keeps what it runs.
  cache_hit = cache_hit && refused.ok();
  // The same for a failure of its own content (BundleState::SettledFailure): a later commit
  // that changes nothing it read or looked for fails the same way, and is not rendered.
  bool failure_hit = false;
  if (!cache_hit && refused.ok() && !fresh && !settled.paths.empty() &&
      settled.commit != commit.id && settled.generation == generation && settled.asks == asks &&
      options_.clock->Now() < settled.until && settled.fleet_gitrepo == fleet_gitrepo) {
    absl::StatusOr<std::vector<std::string>> now =
        snapshot.repo->EntryIds(commit.id, settled.paths);
    failure_hit = now.ok() && *now == settled.ids;
  }
  Built built;
  built.engine = cache_hit ? last.engine() : failure_hit ? settled.engine : definition.engine();
  absl::Status status = refused;
  if (failure_hit) {
    status = absl::InvalidArgumentError(last.error());  // the settled failure's
  } else if (!cache_hit && refused.ok()) {
    status = BuildContent(name, definition, values, generation, snapshot, start, ReadsOf(last),
                          fleet_gitrepo, &built);
  }
  std::string& engine = built.engine;
  std::shared_ptr<BundleVariants>& content = built.content;
  std::shared_ptr<ReadPathSet>& variant_paths = built.variant_paths;
  std::vector<std::string>& read_paths = built.read_paths;
  std::vector<std::string>& read_ids = built.read_ids;
  std::vector<std::string>& notes = built.notes;
  if (content != nullptr) status = Probe(definition, *content);
  if (status.ok() && content != nullptr && variant_paths != nullptr) {
    // What the probe renders read: with one revision for all, that is everything, and a
    // restart can check it without rendering.
    {
      MutexLock paths_lock(&variant_paths->mu);
      read_paths.assign(variant_paths->paths.begin(), variant_paths->paths.end());
      notes.insert(notes.end(), variant_paths->notes.begin(), variant_paths->notes.end());
      built.read_remote = built.read_remote || variant_paths->read_remote;
      built.repos_read.insert(built.repos_read.end(), variant_paths->repos_read.begin(),
                              variant_paths->repos_read.end());
    }
    absl::StatusOr<std::vector<std::string>> ids = snapshot.repo->EntryIds(commit.id, read_paths);
    if (ids.ok()) {
      read_ids = *std::move(ids);
    } else {
      read_paths.clear();
    }
  }

  // Whether it would fail the same way at the next try: the engine refused what the
  // commit holds, and nothing it read comes from outside the repository (a chart range,
  // a remote base, a key file, a scope: those change without a commit and fail otherwise).
  bool settles = !status.ok() && status.code() == absl::StatusCode::kInvalidArgument &&
                 refused.ok() && !built.read_remote &&
                 options_.resync_interval > absl::ZeroDuration();
  if (settles && variant_paths != nullptr) {
    MutexLock paths_lock(&variant_paths->mu);
    settles = !variant_paths->read_remote;
  }
  // And what it read or looked for, to judge later commits by (not under a lock: the ids
  // are a walk of the commit's trees).
  std::optional<std::vector<std::string>> failed_paths;
  absl::StatusOr<std::vector<std::string>> failed_ids = absl::NotFoundError("not failed");
  if (settles && !failure_hit) failed_paths = FailedReads(definition, built);
  if (failed_paths.has_value()) failed_ids = snapshot.repo->EntryIds(commit.id, *failed_paths);

  const std::string engine_label = engine.empty() ? "unknown" : engine;
  metrics_.render_seconds.Add({{"engine", engine_label}}, metrics::ExponentialBuckets(0.001, 2, 16))
      .Observe(absl::ToDoubleSeconds(options_.clock->Now() - start));
  if (cache_hit || failure_hit) {
    metrics_.render_cache_hits.Add({}).Increment();
  } else {
    metrics_.renders.Add({{"engine", engine_label}, {"result", status.ok() ? "ok" : "error"}})
        .Increment();
  }

  MutexLock writer(&writer_mu_);
  v1::BundleRecord record;
  std::vector<Store::Write> writes;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    // Superseded: the change that did it queued this bundle again.
    if (it == bundles_.end() || it->second.generation != generation) return absl::OkStatus();
    BundleState& state = it->second;
    record = state.record;
    if (record.commit() != commit.id) {
      *record.mutable_seen_time() = ToProtoTime(options_.clock->Now());
    }
    if (failure_hit && settled.commit == settled.rendered_commit) {
      // Once per failure: in a monorepo it is carried at every other team's commit.
      GF_LOG(INFO) << "bundle " << name << " not rendered at " << commit.id.substr(0, 12)
                   << ": nothing it read changed since " << settled.rendered_commit.substr(0, 12)
                   << ", where it failed on its own content (nor at later commits that change "
                      "none of it)";
    }
    if (!status.ok()) {
      record.set_error(std::string(status.message()));
      record.set_error_commit(commit.id);
      if (state.record.error() != record.error()) {
        GF_LOG(WARNING) << "bundle " << name << " failed to render at " << commit.id.substr(0, 12)
                        << ": " << status.message()
                        << (settles ? " (the content's own error: not rendered again at this "
                                      "commit before the resync, unless a sync asks)"
                                    : "");
      }
      // A push to a repository this try read (a remote base it added, or the one that
      // broke) renders it again at once, as it would a good render's.
      if (!failure_hit) KeepRemoteRepos(built.repos_read, /*with_earlier=*/true, &record);
      content.reset();
    } else {
      record.clear_error();
      record.clear_error_commit();
      record.set_commit(commit.id);
      *record.mutable_committed_time() = ToProtoTime(commit.time);
    }
  }
  if (content != nullptr) {
    record.set_engine(engine);
    record.set_renders_per_target(built.per_target);
    record.set_paused_by(built.paused_by);
    record.mutable_declared_depends_on()->Assign(built.declared_depends_on.begin(),
                                                 built.declared_depends_on.end());
    record.set_fleet_name(built.fleet_name);
    record.set_fleet_gitrepo(fleet_gitrepo);
    record.mutable_fleet_labels()->clear();
    record.mutable_fleet_labels()->insert(built.fleet_labels.begin(), built.fleet_labels.end());
    *record.mutable_fleet_rollout() = built.fleet_rollout;
    record.set_fleet_rollout_error(built.fleet_rollout_error);
    record.set_uniform(content->Uniform() != nullptr);
    if (!cache_hit) {  // a cache hit renders nothing and keeps what the render said
      record.clear_notes();
      for (const std::string& note : notes) record.add_notes(note);
      record.set_reads_remote(built.read_remote);
      KeepRemoteRepos(built.repos_read, /*with_earlier=*/false, &record);
    }
    record.clear_read_paths();
    record.clear_read_ids();
    for (const std::string& path : read_paths) record.add_read_paths(path);
    for (const std::string& id : read_ids) record.add_read_ids(id);
    // What a restart substitutes from (engines without values), else the first cluster's
    // revision (shown in listings).
    std::shared_ptr<const Revision> kept = content->template_revision();
    std::vector<std::string> ids = content->RevisionIds();
    if (kept == nullptr && !ids.empty()) kept = content->Find(ids.front());
    if (kept != nullptr) {
      record.set_revision(kept->id);
      const auto& recent = record.recent_revisions();
      if (std::find(recent.begin(), recent.end(), kept->id) == recent.end()) {
        v1::RevisionRecord stored = kept->ToRecord();
        stored.set_per_cluster_template(kept == content->template_revision() &&
                                        content->Uniform() == nullptr);
        writes.push_back(Store::Put(kRevisionsTable, kept->key(), stored.SerializeAsString()));
        RememberRevision(name, kept->id, options_.revisions_kept + ids.size() + 1, &record,
                         &writes);
        GF_LOG(INFO) << "bundle " << name << " rendered " << kept->objects.size() << " objects at "
                     << commit.id.substr(0, 12) << ": revision " << kept->id.substr(0, 12)
                     << (content->Uniform() == nullptr
                             ? absl::StrCat(" (", ids.size(), " per-cluster variants so far)")
                             : "");
      }
    }
  }
  writes.push_back(Store::Put(kBundleRecords, name, StoredRecord(record)));
  if (content != nullptr) {
    v1::RenderCache cache;
    cache.set_generation(definition.generation());
    *cache.mutable_read_paths() = record.read_paths();
    *cache.mutable_read_ids() = record.read_ids();
    writes.push_back(Store::Put(kRenderCaches, name, cache.SerializeAsString()));
  }
  absl::Status stored = store_->Apply(writes);
  if (!stored.ok()) {
    // Nothing changes in memory either: the queue retries the whole reconcile.
    GF_LOG(ERROR) << "bundle " << name << ": cannot store render: " << stored;
    return absl::Status(stored.code(), absl::StrCat("cannot store render: ", stored.message()));
  }
  std::string paused;  // told once the lock is let go (Publish)
  bool dependencies_changed = false;
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(name);
    if (it == bundles_.end()) return absl::OkStatus();
    BundleState& state = it->second;
    paused = HeldBySource(record, state.definition);
    if (HeldBySource(state.record, state.definition) == paused &&
        state.record.commit() == record.commit()) {
      paused.clear();  // said already
    }
    // Its own dependencies, or those others' fleet.yaml resolve by its name.
    dependencies_changed =
        !std::equal(state.record.declared_depends_on().begin(),
                    state.record.declared_depends_on().end(), record.declared_depends_on().begin(),
                    record.declared_depends_on().end()) ||
        state.record.fleet_name() != record.fleet_name() ||
        LabelMap(state.record.fleet_labels().begin(), state.record.fleet_labels().end()) !=
            LabelMap(record.fleet_labels().begin(), record.fleet_labels().end());
    state.record = record;
    state.settled = {};
    if (settles) {
      state.settled = {commit.id, generation, asks,
                       options_.clock->Now() + options_.resync_interval * 0.9};
      state.settled.engine = engine;
      state.settled.fleet_gitrepo = fleet_gitrepo;
      state.settled.rendered_commit = failure_hit ? settled.rendered_commit : commit.id;
      if (failure_hit) {
        // The resync still renders it, however many commits it was carried to.
        state.settled.until = settled.until;
        state.settled.paths = std::move(settled.paths);
        state.settled.ids = std::move(settled.ids);
      } else if (failed_ids.ok()) {
        state.settled.paths = std::move(*failed_paths);
        state.settled.ids = *std::move(failed_ids);
      }
    }
    state.render_reused = cache_hit && status.ok();
    if (!cache_hit && !failure_hit) state.rendered_at = options_.clock->Now();
    if (content != nullptr) {
      // A new render with the same single revision changes nothing for agents.
      std::shared_ptr<const Revision> before =
          state.content != nullptr ? state.content->Uniform() : nullptr;
      std::shared_ptr<const Revision> after = content->Uniform();
      if (before == nullptr || after == nullptr || before->id != after->id) {
        state.content = content;
        state.content_generation = definition.generation();
        state.variant_paths = variant_paths;
      }
    }
    if (status.ok()) {
      state.reconciled_generation = generation;
      state.reconciled_commit = commit.id;
    }
  }
  if (!paused.empty()) {
    GF_LOG(INFO) << "bundle " << name << ": " << paused;
    Publish(MakeEvent("bundle.paused_by_source", name, "", paused, record.commit()));
  }
  if (dependencies_changed) RefreshDependencies();
  return status;
}

absl::Status Controller::Probe(const v1::Bundle& definition, const BundleVariants& content) {
  if (content.Uniform() != nullptr) return absl::OkStatus();
  // Build the revisions of the clusters it targets now, so errors show at once. A failure
  // that depends on no value fails every cluster alike: the bundle keeps its last good
  // content. One that depends on values fails only the clusters with those values.
  absl::StatusOr<LabelSelector> selector = TargetSelector(definition);
  std::vector<v1::ClusterInfo> targets;
  if (selector.ok()) targets = hub_->MatchingClusters(*selector);
  // With no cluster yet, an engine that takes values still renders once (with the
  // defaults), so what it reads and its value-free errors are known.
  if (targets.empty() && content.template_revision() == nullptr) targets.emplace_back();
  auto probe = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      bool depends_on_values = false;
      absl::StatusOr<std::shared_ptr<const Revision>> revision =
          content.For(targets[i], &depends_on_values);
      // A cluster the bundle's files leave out is no failure, whatever it depends on.
      if (!revision.ok() && !depends_on_values && !IsNotDeployed(revision.status())) {
        return revision.status();
      }
    }
    return absl::OkStatus();
  };
  // Substitution is CPU work alone: a bundle that names each cluster substitutes once per
  // cluster, so thousands are split over the cores. Engines that render per variant
  // (jsonnet, helm) run a child process each and stay on this thread.
  size_t parts = 1;
  if (content.template_revision() != nullptr && targets.size() >= kParallelProbeClusters) {
    parts = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxProbeThreads);
  }
  std::vector<absl::Status> results(parts);
  std::vector<std::thread> helpers;
  const size_t n = targets.size();
  for (size_t part = 1; part < parts; ++part) {
    helpers.emplace_back([&, part] {
      NameThisThread("gf-probe");
      results[part] = probe(part * n / parts, (part + 1) * n / parts);
    });
  }
  results[0] = probe(0, n / parts);
  for (std::thread& helper : helpers) helper.join();
  for (const absl::Status& result : results) {
    if (!result.ok()) return result;
  }
  return absl::OkStatus();
}

}  // namespace gitfleet
