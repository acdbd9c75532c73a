#ifndef GITFLEET_CONTROLPLANE_FLEET_CONTROLLER_H_
#define GITFLEET_CONTROLPLANE_FLEET_CONTROLLER_H_

// The controller owns the fleet's definitions (sources and bundles): it validates and
// persists them, renders each bundle when its source moves, and hands good revisions
// to the hub. A failed render keeps the last good revision in force and records the
// error on the bundle.
//
// It reconciles levels, as Kubernetes controllers do. Every event (a new commit, a
// definition added, replaced or removed, a cluster whose values need a revision not built
// yet, a `sync`) only queues the bundle's name in a keyed work queue; a fixed number of
// workers reconcile each name against the current state, never two at once for one name,
// and a name whose reconcile fails (a render that timed out, a store write that failed)
// is queued again with exponential backoff, with no new commit needed. A render that
// fails on the commit's own content fails the same way at each try: it waits for the
// resync or an operator's call instead (BundleState::settled).
//
//   Controller controller(&store, repos.get(), &hub, metrics, options);
//   absl::Status loaded = controller.Load();
//   controller.Start();
//
// Thread-safe. Locking: `writer_mu_` serializes changes to definitions and records and is
// held across their store writes; `mu_` guards the in-memory state and is held only to
// copy or install it, never across store I/O. Neither is held while calling the hub, the
// poller or a bundle's content, since those may call back (the hub's notifications reach
// agent streams, which ask the hub, whose render requests come back here).

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/model/label_selector.h"
#include "common/names.h"
#include "common/sync.h"
#include "common/workqueue.h"
#include "controlplane/distribute/hub.h"
#include "controlplane/events/event_bus.h"
#include "controlplane/fleet/repository_files.h"
#include "controlplane/fleet/rollout.h"
#include "controlplane/fleet/rollout_verdict.h"
#include "controlplane/fleet/variants.h"
#include "controlplane/metrics.h"
#include "controlplane/render/age.h"
#include "controlplane/render/pgp.h"
#include "controlplane/render/renderer.h"
#include "controlplane/source/source_poller.h"
#include "controlplane/store/store.h"
#include "proto/gitfleet/v1/admin.pb.h"
#include "proto/gitfleet/v1/state.pb.h"

namespace gitfleet {

// How long a bundle's render of a commit that drops objects waits for the other bundles of
// its source to render that commit (what moved to one of them is then handed over, never
// deleted and created again): as long as renders keep finishing (the others may be queued
// behind other sources' renders, and a source of many slow helm charts takes minutes), so
// until no render finished for `stall` (longer than one render may take), and at most
// kMaxWait in all: a sibling that never renders does not hold the bundle back for good.
class SiblingWait {
 public:
  static constexpr absl::Duration kMinStall = absl::Seconds(60);
  static constexpr absl::Duration kMaxWait = absl::Minutes(30);
  // Whether the render of `head` waits on at `now`, `renders` being the count of renders
  // finished so far (any bundle's); *started when this begins a wait for `head`.
  bool GoesOn(const std::string& head, uint64_t renders, absl::Time now, absl::Duration stall,
              bool* started);
  void Clear() {
    commit_.clear();
    note_.clear();
    neighbors_.reset();
  }
  // The commit waited for; empty when none is.
  const std::string& commit() const { return commit_; }
  // When the wait for commit() began.
  absl::Time started() const { return started_; }
  // The sources of other repositories (or refs) whose bundles share a cluster with this
  // one, found when the wait began; nullopt before.
  const std::optional<std::set<std::string>>& neighbors() const { return neighbors_; }
  void set_neighbors(std::set<std::string> sources) { neighbors_ = std::move(sources); }
  // What BundleInfo.waiting says of the wait.
  const std::string& note() const { return note_; }
  void set_note(std::string note) { note_ = std::move(note); }

 private:
  std::string commit_;
  std::string note_;
  std::optional<std::set<std::string>> neighbors_;
  absl::Time started_;
  absl::Time progress_;  // when the wait began, or a render last finished
  uint64_t renders_ = 0;
};

// The scopes in force by caller name: what each team's line in --api-tokens and
// --api-client-roles says now. An entry with no BundleScope.caller is a name with no scope
// to follow (lines of one name that disagree, or unscoped on one): its bundles keep the
// scope they have. A caller missing is named on no line any more: its bundles get no new
// revisions (a team taken off the files no longer deploys from its repositories).
using CallerScopes = std::map<std::string, v1::BundleScope>;

struct ControllerOptions {
  absl::Duration default_poll_interval = absl::Seconds(30);
  // Where fleet.yaml's serviceAccount is looked up (the agents' namespace, as Fleet looks
  // it up in its agent's); empty: not used (RenderInput::fleet_service_account_namespace).
  std::string fleet_service_account_namespace = "gitfleet-system";
  // Every render engine's options (limits, timeout, scratch directory, tools).
  EngineOptions engines;
  // Revisions kept in the store per bundle, so agents that were away get deltas and
  // `bundle history` and `bundle rollback` have something to show and go back to.
  int revisions_kept = 10;
  // Sources may be file:// URLs and paths on the control plane's disk.
  bool allow_local_sources = false;
  // The control plane reads cluster groups (--cluster-groups). Without, a fleet.yaml's
  // rolloutStrategy partitions by cluster group hold the commit (their order is unknown).
  bool cluster_groups = false;
  // The most sources and bundles defined at once: each source is polled, each bundle
  // rendered and tracked per cluster. Adding one more is refused (ResourceExhausted); what
  // the store holds beyond them (a lowered bound) is still loaded.
  size_t max_sources = 1000;
  size_t max_bundles = 10000;
  // Where sources' credentials are (git_credentials.h); empty: sources may name none.
  std::string credentials_dir;
  // --git-credentials (git_credentials.h), to say which credential a source naming none
  // is fetched with.
  std::vector<std::pair<std::string, std::string>> credential_prefixes;
  // Workers reconciling bundles (rendering); a failed reconcile is retried after
  // min(retry_base * 2^(n-1), retry_max).
  int workers = 2;
  absl::Duration retry_base = absl::Seconds(1);
  absl::Duration retry_max = absl::Minutes(5);
  // Every bundle is reconciled again this long after its last reconcile (within 10% either
  // way, by name, so they do not all come at once), whatever happened meanwhile: its
  // source's commit read afresh, its gates judged again, what its clusters lack built,
  // as controller-runtime's SyncPeriod does. An event lost on the way costs at most this.
  // Zero: only events reconcile.
  absl::Duration resync_interval = absl::Minutes(10);
  // How long an API call that changed a bundle waits for its reconcile before answering
  // with what is known (the reconcile goes on).
  absl::Duration api_wait = absl::Minutes(2);
  Clock* clock = &RealClock();
  // The age identities (--sops-age-key-file) and PGP keys (--sops-pgp-key-file) bundles
  // with --decrypt=sops decrypt their repository's SOPS files with, read at each render;
  // null, or returning null: none of that kind. With neither, such a bundle is refused, and
  // one stored before renders failing, saying so.
  std::function<std::shared_ptr<const AgeIdentities>()> sops_identities;
  std::function<std::shared_ptr<const PgpKeys>()> sops_pgp_keys;
  // The scopes in force (read again within a second of a change); when set, a team's
  // bundles follow their caller's scope as it changes (FollowCallerScopes), checked at
  // least every `scope_sweep`, and at once when the returned pointer changes.
  std::function<std::shared_ptr<const CallerScopes>()> caller_scopes;
  absl::Duration scope_sweep = absl::Seconds(10);
};

class Controller {
 public:
  Controller(Store* store, GitRepositories* repos, Hub* hub, ControlPlaneMetrics& metrics,
             ControllerOptions options);
  // Stops polling first, waiting for fetches and renders in progress: their callbacks use
  // members that are destroyed before the poller.
  ~Controller();

  // Where source, render and rollout events go (none when unset). Set before Start.
  void SetEventBus(EventBus* events) { events_ = events; }

  // Loads definitions, last good revisions and errors; hands them to the hub.
  absl::Status Load();
  // Starts the workers, queues every bundle, and starts polling sources.
  void Start();

  // The calls that change something wait for the reconciles (or fetch) they cause, up to
  // api_wait and never past `wait_until` (the caller's deadline), then answer with what
  // is known; the work goes on.
  // A replacement that changes the source's fleet_gitrepo, and so the release of a chart
  // some bundle of it releases under Fleet's name, is refused naming them unless
  // `rename_releases`.
  absl::StatusOr<v1::SourceInfo> AddSource(const v1::Source& source, bool replace,
                                           absl::Time wait_until = absl::InfiniteFuture(),
                                           bool rename_releases = false);
  // Refused while bundles use the source, naming those `visible` says the caller may see
  // (all when unset) and counting the others.
  absl::Status RemoveSource(const std::string& name,
                            const std::function<bool(const std::string& bundle)>& visible = {});
  absl::StatusOr<v1::SourceInfo> SyncSource(const std::string& name,
                                            absl::Time wait_until = absl::InfiniteFuture());
  std::vector<v1::SourceInfo> ListSources();
  // Queues a fetch of the source now, without waiting for it (a push webhook).
  absl::Status FetchSourceSoon(const std::string& name);
  // Queues a render now of each bundle whose last render (good, or failed since) read one
  // of `repos` (normalized URLs, or OciRepositoryKey for a registry's; BundleRecord.
  // remote_repos) at a ref that moves, as the resync would render it later (a push webhook
  // naming a repository that no source tracks, but that a kustomization's remote base or a
  // chart names), each fetched again for it (RemoteBaseFetcher::FetchAgain,
  // ChartFetcher::FetchAgain). Returns their names.
  std::vector<std::string> RenderReadersSoon(const std::set<std::string>& repos);

  // A replacement whose selector no longer matches clusters that hold the bundle removes
  // it from them (pruning its objects when it prunes): that is an explicit act, so it is
  // refused (FailedPrecondition, naming them) unless `allow_removal`. With `if_generation`
  // > 0, only a replacement of the definition of that generation happens (Aborted
  // otherwise). With `adopt`, a replacement of a team's bundle takes it as the fleet's own
  // (BundleScope.adopted): its scope's limits stay, its caller's line is no longer followed
  // (FailedPrecondition when it has no team's scope); kDropLimits drops the scope whole.
  enum class Adopt { kNo, kKeepLimits, kDropLimits };
  absl::StatusOr<v1::BundleInfo> AddBundle(const v1::Bundle& bundle, bool replace,
                                           absl::Time wait_until = absl::InfiniteFuture(),
                                           bool allow_removal = false, int64_t if_generation = 0,
                                           Adopt adopt = Adopt::kNo);
  absl::Status RemoveBundle(const std::string& name,
                            absl::Time wait_until = absl::InfiniteFuture());
  // A team's bundle records its caller's scope when it is defined; this brings every
  // such bundle to the scope its caller has now, as a redefinition does (an event,
  // a new generation, a render), so a scope narrowed in --api-tokens binds the bundles
  // already defined: fewer namespaces, kinds or keys, another account. Clusters that
  // hold a bundle and that its new clusters= leaves are not left: that is a removal, an
  // explicit act, so the bundle keeps its clusters= and says so (BundleInfo.scope_held)
  // until a fleet admin replaces it with --allow-removal. Returns a line per bundle
  // changed or held.
  // It waits for each bundle's reconcile until `wait_until`.
  std::vector<std::string> FollowCallerScopes(const CallerScopes& scopes,
                                              absl::Time wait_until = absl::InfinitePast());
  // A dry-run diff of `bundle` from `cluster`'s agent (see Hub::RequestDiff).
  void DiffBundle(const std::string& cluster, const std::string& bundle, absl::Duration timeout,
                  Hub::DiffCallback done);
  // Every bundle, or (max > 0) at most `max` of them in name order from `from` on.
  // With `keep`, only the bundles whose names it keeps (`max` of those), looked at before
  // anything is built (a team's page of a big fleet).
  std::vector<v1::BundleInfo> ListBundles(
      const std::string& from = "", size_t max = 0,
      const std::function<bool(const std::string&)>& keep = nullptr);
  // A listing's counts (target, current and not deployed clusters, when it rolled out) of
  // the clusters `within` matches alone: a scoped caller's share of a bundle that reaches
  // others' clusters too. Counted anew: a look at every cluster.
  void CountWithin(v1::BundleInfo* info, const LabelSelector& within) ABSL_LOCKS_EXCLUDED(mu_);

  // Every cluster, or (max > 0) at most `max` of them in name order from `from` on.
  // With `keep`, only the clusters whose labels it keeps.
  std::vector<v1::ClusterInfo> ListClusters(
      const std::string& from = "", size_t max = 0,
      const std::function<bool(const LabelMap&)>& keep = nullptr);
  // See Hub::AdoptCluster and Hub::ForgetBundle.
  absl::Status AdoptCluster(const std::string& cluster);
  absl::Status ForgetBundle(const std::string& cluster, const std::string& bundle, bool prune);
  // NotFound for a filter that names no cluster the hub knows (registered or seen), or a
  // bundle neither defined nor held by an agent (an orphan has a status): a mistyped name
  // must not read as "nothing there".
  absl::Status CheckStatusFilter(const std::string& cluster_filter,
                                 const std::string& bundle_filter);
  // Whether events about the whole of `bundle` concern `cluster`, for a watcher of that
  // cluster (EventBus::Filter::concerns): its selector matches the cluster, or the cluster
  // holds it. Never called with mu_ held: events are published without it.
  bool BundleConcernsCluster(const std::string& bundle, const std::string& cluster)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `event` concerns a cluster `clusters` matches, for a notification sink's
  // clusters=: the cluster it is about; else a bundle one targets or holds; else a source
  // one of whose bundles does. Other events (a resync) concern every cluster. Never called
  // with mu_ held, as BundleConcernsCluster.
  bool EventConcernsClusters(const v1::Event& event, const LabelSelector& clusters)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The labels bundles target a cluster by; nullopt for a cluster the hub does not know.
  std::optional<LabelMap> ClusterLabels(const std::string& cluster) {
    return hub_->LabelsOf(cluster);
  }
  // Whether a bundle of that name is defined (a look-up: no listing).
  bool BundleDefined(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // Ordered by cluster, then bundle.
  std::vector<v1::BundleStatus> GetStatus(const std::string& cluster_filter,
                                          const std::string& bundle_filter);
  // At most `page_size` (>= 1) of them, from after `page_token` (a page's next_page_token:
  // the cluster and bundle of its last status). InvalidArgument for a token it did not give.
  struct StatusPage {
    std::vector<v1::BundleStatus> statuses;
    std::string next_page_token;  // empty on the last page
  };
  // The token of the page that ends with `last`.
  static std::string StatusPageToken(const v1::BundleStatus& last);
  absl::StatusOr<StatusPage> GetStatusPage(const std::string& cluster_filter,
                                           const std::string& bundle_filter,
                                           const std::string& page_token, size_t page_size);

  // Fleet operations (see admin.proto).
  // With `summary`, the partitions carry no clusters (v1::GetRolloutRequest.summary).
  absl::StatusOr<v1::RolloutStatus> GetRollout(const std::string& bundle, bool summary = false);
  // Whether `bundle` has reached commit `asked` (an id or its first digits): see
  // v1::CommitReach. InvalidArgument for digits that are no id or name several commits.
  // Walks the source's history between the two (git merge-base --is-ancestor).
  absl::StatusOr<v1::CommitReach> ReachOf(const std::string& bundle, const std::string& asked);
  // Where `bundle`'s rollout stands at its own commit, as `rollout status -w` judges it,
  // and the URL of the repository its source fetches: what its commit status says.
  // `settled`: a commit already judged done, which stays done while the bundle is at it
  // (its clusters' statuses are not walked again). NotFound for no such bundle.
  struct BundleVerdict {
    RolloutVerdict verdict;
    std::string source_url;
    bool suspended = false;
  };
  absl::StatusOr<BundleVerdict> JudgeBundle(const std::string& bundle,
                                            const std::string& settled = "");
  // How many clusters the bundle targets run it ready, and why the first that does not
  // (StatusTally): the hub's count where one revision is for all, else its statuses
  // counted. NotFound for an unknown bundle.
  absl::StatusOr<StatusTally> TallyBundle(const std::string& bundle);
  // "pause", "resume" or "promote"; waits (like AddBundle) for the reconcile it causes.
  absl::StatusOr<v1::RolloutStatus> ControlRollout(const std::string& bundle,
                                                   const std::string& action,
                                                   absl::Time wait_until = absl::InfiniteFuture());
  absl::StatusOr<v1::BundleInfo> SuspendBundle(const std::string& bundle, bool suspend,
                                               absl::Time wait_until = absl::InfiniteFuture());
  // An operator's refresh (Argo CD's hard refresh): fetches the bundle's source now, and
  // renders it again reading anew what it reads from outside its repository (remote bases
  // and files, charts, other Git repositories: what its record names), as a push webhook for
  // those would; waits (like AddBundle) for the reconcile. NotFound for an unknown bundle.
  absl::StatusOr<v1::BundleInfo> RefreshBundle(const std::string& bundle,
                                               absl::Time wait_until = absl::InfiniteFuture());
  absl::Status SuspendCluster(const std::string& cluster, bool suspend);
  // `visible`, when set, says which clusters the caller may see: the others are neither
  // named nor counted where each revision is applied.
  absl::StatusOr<v1::BundleHistoryResponse> BundleHistory(
      const std::string& bundle, int limit,
      const std::function<bool(const v1::ClusterInfo&)>& visible = nullptr);
  // `to` empty unpins. With `no_prune`, the pinned render deletes nothing it lacks.
  absl::StatusOr<v1::BundleInfo> PinBundle(const std::string& bundle, const std::string& to,
                                           bool no_prune = false,
                                           absl::Time wait_until = absl::InfiniteFuture());

 private:
  StatusTally TallyBundle(const std::string& bundle, const LabelSelector& selector);
  // Whether --decrypt=sops bundles have keys to decrypt with (ControllerOptions).
  bool HasSopsKeys() const;
  // The statuses of `clusters` (and the bundles `bundle_filter` lets through), ordered by
  // cluster, then bundle, orphans included.
  std::vector<v1::BundleStatus> StatusesOf(const std::vector<ClusterView>& clusters,
                                           const std::string& bundle_filter);
  // Every repository path the renders of one content read, across all its variants
  // (a jsonnet program may import different files for different values).
  struct ReadPathSet {
    Mutex mu;
    std::set<std::string> paths ABSL_GUARDED_BY(mu);
    // What the renders said without failing (RenderInput::notes), each once, at most
    // kMaxVariantNotes: variants of one commit say the same things.
    std::set<std::string> notes ABSL_GUARDED_BY(mu);
    // Some render read from outside the repository (RenderInput::read_remote), and the Git
    // repositories they read at a ref that moves and the registries' repositories their
    // charts came from (FetchScope::repos_read).
    bool read_remote ABSL_GUARDED_BY(mu) = false;
    std::set<std::string> repos_read ABSL_GUARDED_BY(mu);
    // What the renders that failed read (RenderInput::failed_reads, and what they asked of
    // the repository; in `paths` too), and whether one failed without its engine saying
    // (then what the failure depends on is not known).
    std::set<std::string> failed ABSL_GUARDED_BY(mu);
    bool failed_unknown ABSL_GUARDED_BY(mu) = false;
  };
  // What the prune guard counted for a pair of contents: of `before`'s objects (`had`),
  // how many `after` drops.
  struct PruneCount {
    std::shared_ptr<const BundleContent> before;
    std::shared_ptr<const BundleContent> after;
    uint64_t before_builds = 0;
    uint64_t after_builds = 0;
    size_t dropped = 0;
    size_t had = 0;
    // HandedOver's answer for these contents (none yet), and what it read: the hub's
    // membership version, this bundle's selector then every other bundle's, and their
    // contents (weak) and variants built, in name order. A held render is asked on reports.
    std::optional<size_t> moved;
    uint64_t moved_membership = 0;
    std::vector<std::string> moved_selectors;
    std::vector<std::weak_ptr<const BundleContent>> moved_contents;
    std::vector<uint64_t> moved_builds;
  };
  // What the prune guard counted across the bundles of one repository at one ref
  // (StreamPruneHold), for the contents they had then.
  struct StreamPruneCount {
    // Each bundle's guarded stable content (none when not guarded) and newest content, with
    // how many variants each had built, in name order; weak, so that a count kept for a
    // stream holds no content in memory.
    std::vector<std::weak_ptr<const BundleContent>> contents;
    std::vector<bool> present;
    std::vector<uint64_t> builds;
    std::vector<std::string> selectors;  // each bundle's, as written
    uint64_t membership = 0;             // the hub's MembershipVersion when counted
    size_t had = 0;                      // objects the guarded bundles run, per bundle
    // Of those, in no newest content on every cluster their bundle targets (its own, or
    // another bundle's that targets each of those clusters).
    size_t dropped = 0;
    std::map<std::string, size_t> own;  // per guarded bundle that drops some, its share
    // When the whole count would not hold: per guarded bundle that drops some, the cluster
    // of its own where the guarded bundles on it drop the most of what they run there, when
    // that would hold (prod emptied while staging, elsewhere, runs as much).
    struct OnCluster {
      std::string cluster;  // the first in name order of those alike
      size_t alike = 0;     // other clusters run by the same bundles
      size_t dropped = 0;
      size_t had = 0;
      size_t bundles = 0;  // of those on it, how many drop some
    };
    std::map<std::string, OnCluster> worst;
  };
  struct BundleState {
    v1::Bundle definition;
    LabelSelector selector;
    ValuesSpec values;
    // The last good render: what every targeted cluster runs (null before the first).
    std::shared_ptr<const BundleVariants> content;
    int64_t content_generation = 0;  // of the definition it was rendered for
    // BundleInfo.scope_held: why its caller's narrowed clusters= is not in force yet.
    std::string scope_held;
    // The caller's clusters= as its scope has it now, and parsed (nullopt when it cannot
    // be: it covers no cluster). While that is not the definition's (held for an admin,
    // or about to be followed), only targeted clusters it covers get new revisions, and
    // the rollout cuts its partitions from them; the others keep what they hold: a team's
    // commits no longer reach clusters its scope left (ScopeGate).
    std::optional<std::string> scope_clusters_now;
    std::optional<LabelSelector> scope_selector_now;
    // Its caller is named on no line any more: no cluster gets a new revision.
    bool caller_gone = false;
    // The strategy its rollout follows: its own partitions, else its fleet.yaml's
    // rolloutStrategy at the render's commit (not Progressive when neither cuts). Asked per
    // cluster (HeldBackLocked): a reference, never a copy.
    const v1::RolloutStrategy& Rollout() const {
      return Progressive(definition.rollout()) ? definition.rollout() : record.fleet_rollout();
    }
    // Rollout() as AdvanceRollout takes it: with the bundle's own --bake-time, which holds
    // a fleet.yaml's partitions too.
    v1::RolloutStrategy RolloutWithBake() const {
      v1::RolloutStrategy strategy = Rollout();
      strategy.set_bake_seconds(definition.rollout().bake_seconds());
      return strategy;
    }
    bool ScopeGated() const {
      return caller_gone || (scope_clusters_now.has_value() &&
                             *scope_clusters_now != definition.scope().clusters());
    }
    // Whether `labels` (matched by `selector`) are covered by the caller's clusters= now.
    bool InScopeNow(const LabelMap& labels) const {
      return !ScopeGated() || (!caller_gone && scope_selector_now.has_value() &&
                               scope_selector_now->Matches(labels));
    }
    // Engines that take values (jsonnet, helm) render per variant; their reads collect
    // here and are the render cache for the next commit.
    std::shared_ptr<ReadPathSet> variant_paths;
    // The queue ticket of the reconcile its source's newest commit queued: a sync that
    // fetched that commit waits for it rather than render the commit twice.
    uint64_t commit_ticket = 0;
    v1::BundleRecord record;
    // The render cache of other engines is record.read_paths/read_ids; a definition change
    // clears it.
    uint64_t generation = 0;
    // What the last successful reconcile rendered: (generation, commit). Equal to the
    // current ones, a reconcile only builds revisions for clusters that lack one.
    uint64_t reconciled_generation = 0;
    std::string reconciled_commit;
    // The last render was the render cache's: nothing it read changed (see RenderBundle).
    bool render_reused = false;
    // When it was last rendered, not from the cache (InfinitePast since a start): one
    // that reads remote bases (BundleRecord.reads_remote) renders again a resync
    // interval later, whatever its commit.
    absl::Time rendered_at = absl::InfinitePast();
    // A push webhook named a repository its render reads (RenderReadersSoon): rendered
    // again at the next reconcile, as at a resync.
    bool remote_pushed = false;
    // The commit and error of the last render.failed event: a retry that fails the same
    // way is not told again (subscribers would hear it at the backoff's pace). Cleared
    // by a good render.
    std::string failure_told;
    // A render that failed on what the commit and the definition hold alone (the engine
    // refused the content: InvalidArgument, with nothing read from outside the repository)
    // fails the same way however often it runs. Until `until` (the resync) it is not
    // rendered again at that commit and generation unless an operator's call asks
    // (`asks` moved: a sync, a `bundle add|set`, a rollout or pin command). Events that
    // merely queue the bundle (a retry, a cluster joining, a dependency's report) reuse
    // the failure: 1,000 bundles broken by one shared base render once each, not at the
    // backoff's pace. Cleared by any other outcome.
    // A later commit that changes nothing the failed render read or looked for (`paths`,
    // their ids `ids` at `commit`) fails the same way too: it is not rendered either, and
    // the failure (the record's error) moves to it, until the same `until` (a monorepo's other
    // teams' commits do not render a broken bundle once each). `paths` is empty when that is not
    // known (Controller::FailedReads): the next commit renders.
    struct SettledFailure {
      std::string commit;
      uint64_t generation = 0;
      uint64_t asks = 0;
      absl::Time until = absl::InfinitePast();
      std::vector<std::string> paths;
      std::vector<std::string> ids;
      std::string engine;
      std::string fleet_gitrepo;
      std::string rendered_commit;  // where it last rendered (and failed)
    };
    SettledFailure settled;
    uint64_t asks = 0;  // operators' calls that reconciled it (see `settled`)
    // While its new render waits for the other bundles of its source (WaitsForSiblings).
    SiblingWait siblings;
    // The render last given to the hub as the newest (Hub::SetNewestContent), and for
    // which selector.
    std::shared_ptr<const BundleVariants> newest_given;
    std::string newest_selector;
    // Whether another bundle's drop may stop waiting for this one at `commit`: pinned (it
    // renders no new commit), its render of `commit` failed, or it rendered `commit` and the
    // hub has that render (one that changed nothing keeps the content of an earlier commit).
    bool DoneWith(const std::string& commit) const {
      return !record.pinned_commit().empty() || record.error_commit() == commit ||
             (reconciled_commit == commit && newest_given == content);
    }
    // What the hub was last given (a reconcile gives it again only what changed).
    uint64_t pushed_generation = 0;
    std::shared_ptr<const BundleVariants> pushed_content;
    uint64_t pushed_builds = 0;
    Hub::Gate pushed_gate;
    std::shared_ptr<const BundleContent> pushed_stable;
    uint64_t pushed_stable_builds = 0;
    Hub::Gate pushed_stable_gate;
    // The content the whole targeted fleet was last allowed (no gate held anyone back):
    // what a cluster that joins during a rollout gets meanwhile (see Hub::SetBundle). After
    // a restart, the stored RolloutRecord.stable_revision.
    std::shared_ptr<const BundleContent> stable;
    int64_t stable_generation = 0;  // of the definition it was rendered for
    // After a restart, the commit to render `stable` at (RolloutRecord.stable_commit) once
    // the source's repository is there; cleared when tried.
    std::string stable_to_render;
    // The rollout as last worked out: its partitions (cut when the rollout of a render of
    // a definition began, and adjusted to the hub's membership version since; see
    // AdjustPartitions), what it waits for, and the gate of its current partition.
    std::shared_ptr<const std::vector<Partition>> partitions;
    uint64_t partitions_membership = 0;
    int64_t partitions_generation = -1;
    std::string partitions_commit;
    std::string rollout_message;
    // The render the prune guard holds (its commit), "" when none.
    std::string prune_held_commit;
    PruneCount prune_count;  // as PruneHold last counted
    // Clusters its dependencies hold back, and why (as of the last evaluation).
    std::map<std::string, std::string> dependency_waits;
    Hub::Gate gate;
    std::shared_ptr<const std::vector<Partition>> gate_partitions;
    int gate_partition = -1;
    int gate_admitted = 0;     // of a paced partition (RolloutRecord.admitted)
    int gate_out_of_turn = 0;  // and how many out of turn (RolloutRecord.out_of_turn)
  };
  class Mailbox;

  void OnSourceCommit(const std::string& source, const SourceSnapshot& snapshot);
  // Why the newest render goes to no cluster because its folder's fleet.yaml says
  // `paused: true` (BundleRecord.paused_by), or "" (also for a pinned bundle: a rollback is
  // the operator's own act).
  static std::string PausedBySource(const v1::BundleRecord& record);
  // That, or why it goes to no cluster because its fleet.yaml's rolloutStrategy cannot be
  // read while the bundle has no partitions of its own (BundleRecord.fleet_rollout_error).
  std::string HeldBySource(const v1::BundleRecord& record, const v1::Bundle& definition) const;
  // The source's fetch (or ref) failed with `error`, or recovered (""): kept for the
  // bundles that read it, and told as an event.
  void OnSourceError(const std::string& source, const std::string& error);
  // The bundles that read `source`, in name order (shared while they stay the same).
  EventBus::Audience AudienceOfLocked(const std::string& source) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How many of the objects `before` holds and `after` does not are handed over rather
  // than deleted: another bundle's newest render holds them, and that bundle targets every
  // cluster bundle `name` targets now. Only when the prune guard would hold (it lists the
  // clusters). Kept with the bundle's PruneCount until what it read changes.
  size_t HandedOver(const std::string& name, const BundleContent& before,
                    const BundleContent& after) ABSL_LOCKS_EXCLUDED(mu_);
  // The same for a bundle of `selector` whose render drops `dropped`, against the newest
  // contents of the other bundles and their selectors.
  size_t HandedOverTo(
      const LabelSelector& selector, const std::set<std::string>& dropped,
      const std::vector<std::pair<LabelSelector, std::shared_ptr<const BundleContent>>>& others)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The prune guard (Bundle.max_prune): why `after` is held against `before`, the fleet's,
  // or "". Noted (NotePruneHold).
  std::string PruneHold(const std::string& name, const std::shared_ptr<const BundleContent>& before,
                        const std::shared_ptr<const BundleContent>& after,
                        const std::string& max_prune) ABSL_LOCKS_EXCLUDED(mu_);
  // The default guard's second look (StreamPruneHeld): what the newest renders of every
  // bundle of `name`'s repository at its ref would delete of what the guarded ones (prune
  // on, the default --max-prune, not pinned, not promoted) run, an object moved to another
  // of them counting as kept. Counted once per set of contents.
  std::string StreamPruneHold(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // Records whether `name`'s render at `commit` is held (`why`, or "" for not): the
  // gauge, and a log line and event when a hold begins. Returns `why`.
  std::string NotePruneHold(const std::string& name, const std::string& commit, std::string why)
      ABSL_LOCKS_EXCLUDED(mu_);
  // One pass of the work queue for `name`: reads the current state and acts.
  absl::Status Reconcile(const std::string& name);
  // Gives the hub the bundle's selector, content and gate if they changed since it last did.
  void PushToHub(const std::string& name);
  // Whether the bundle's new render of the source's `head` waits before the hub gets it:
  // it drops objects, and another bundle of its source (not pinned) has not rendered
  // `head` yet. An object moved between two bundles in one commit is then handed over
  // (the hub names what the other bundle's newest render holds), never deleted and
  // created again. As long as renders keep finishing (see SiblingWait); a render that
  // fails counts as done. Sets *began to the wait's note when this call began it.
  // "Its source" includes every source that reads the same repository at the same ref
  // (SameCommitsLocked); *fetch gets those fetched apart, to fetch now, when the wait begins.
  // It waits for other repositories too, those whose bundles share a cluster with it
  // (NeighborSources): each is fetched (*fetch) once the wait began, and its bundles render
  // what that fetch found. An object added to a bundle of another repository, then removed
  // from this one, is so handed over whichever repository is polled first.
  // *fetching when it waits for such a fetch (which wakes no one: look again soon).
  bool WaitsForSiblings(const std::string& name, const std::string& head, std::string* began,
                        std::vector<std::string>* fetch, bool* fetching);
  // The repository (NormalizeRepoUrl) and ref `source` reads, or "" when it is unknown.
  std::string CommitStreamLocked(const std::string& source) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether sources `a` and `b` see the same commits: one source, or one repository (its
  // URL written in any form) at one ref.
  bool SameCommitsLocked(const std::string& a, const std::string& b) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The sources of `candidates` (a bundle's source and selector, for bundles of other
  // repositories or refs) whose selectors match a cluster `selector` matches now.
  std::set<std::string> NeighborSources(
      const LabelSelector& selector,
      const std::vector<std::pair<std::string, LabelSelector>>& candidates);
  // How long no render may finish before a wait for siblings is given up (SiblingWait).
  absl::Duration SiblingStall() const;
  // Gives the hub the bundle's newest render, if it did not have it (see
  // Hub::SetNewestContent).
  void GiveNewestToHub(const std::string& name);
  // Queues the bundles that wait for `name`'s render (WaitsForSiblings).
  void WakeSiblingWaiters(const std::string& name);
  // Queues the bundles that depend on `name`, whose gates its render may open.
  void WakeDependents(const std::string& name);
  // Which clusters may have the bundle's current content: none while it is suspended, the
  // partitions its rollout reached, else all (null). Moves the rollout on as far as the
  // clusters' reports allow and stores where it stands.
  Hub::Gate RolloutGate(const std::string& name);
  // Narrows `gate` and `stable_gate` (null: any) to the clusters the bundle's caller's
  // scope covers now, while its definition still has a wider clusters= (see
  // BundleState.scope_gated); unchanged otherwise.
  void ScopeGate(const std::string& name, Hub::Gate* gate, Hub::Gate* stable_gate);
  // Notes its caller's scope in `scopes` (null: none in force) in a team bundle's `state`
  // (BundleState.scope_clusters_now, caller_gone). Returns whether its gate changed.
  static bool NoteScopeClusters(BundleState& state, const CallerScopes* scopes);
  // Why a team bundle whose caller is named on no line gets no new revisions.
  static std::string CallerGoneMessage(const std::string& bundle, const std::string& caller);
  // Narrows `gate` to the clusters where every bundle `name` depends on is applied and
  // Healthy (or does not go); says which clusters wait in the bundle's rollout message.
  // *stable_gate: of the clusters `gate` holds back that hold nothing of the bundle, those
  // that may have its stable content (their dependencies ready there too); null when the
  // bundle has no dependencies (any may).
  Hub::Gate DependencyGate(const std::string& name, Hub::Gate gate, bool has_stable,
                           Hub::Gate* stable_gate);
  // Why `cluster` does not get bundle `name`'s revision yet, or "" (see
  // BundleStatus.held_back). `partition_of` caches the rollout's cluster -> partition.
  std::string HeldBackLocked(const std::string& name, const BundleState& state,
                             const v1::ClusterInfo& cluster, PartitionIndex& partition_of) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the hub and the mailbox which bundles others depend on (after a change), and
  // queues the bundles whose dependencies resolve to others than before.
  void RefreshDependencies() ABSL_LOCKS_EXCLUDED(mu_);
  // Each bundle's dependencies as RefreshDependencies last worked them out.
  std::map<std::string, std::vector<std::string>> dependencies_ ABSL_GUARDED_BY(mu_);
  // What each bundle's fleet.yaml dependsOn entries resolve to (ResolveDeclaredLocked), by
  // bundle and entry: a walk of every bundle with checksums, asked at each gate
  // evaluation. Cleared by RefreshDependencies, which every change that may resolve them
  // otherwise (a bundle defined, replaced or removed; a render's name or labels) calls.
  mutable std::map<std::pair<std::string, std::string>, std::vector<std::string>> declared_cache_
      ABSL_GUARDED_BY(mu_);
  // The dependency cycle `bundle` would close ("a -> b -> a"), or "".
  std::string FindCycleLocked(const v1::Bundle& bundle) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The bundles `name`'s clusters wait for: its --depends-on, then what its fleet.yaml's
  // dependsOn names (BundleRecord.declared_depends_on), each resolved to a bundle here: the
  // one of that name, else the one whose fleet.yaml gives it that `name` (of the same
  // source first), else one of the same source whose folder Fleet names so (FleetBundleName
  // for some GitRepo name: the longest such path; a tie resolves to none), else one of
  // another source whose folder it names exactly, that source named as the GitRepo. One that
  // resolves to none is kept as written (waited for as an undefined bundle is). Never
  // `name` itself; each once.
  std::vector<std::string> DependenciesLocked(const std::string& name,
                                              const BundleState& state) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends what `declared` (one of the dependsOn entries of the fleet.yaml of `name`,
  // defined as `definition`) resolves to: a name's bundle, or each bundle of the same team
  // whose fleet.yaml labels a selector matches (with fleet.cattle.io/repo-name the GitRepo
  // its source stands for); `declared` itself when none.
  void ResolveDeclaredLocked(const std::string& name, const v1::Bundle& definition,
                             const std::string& declared, std::vector<std::string>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The same, without declared_cache_.
  void ResolveDeclaredUncachedLocked(const std::string& name, const v1::Bundle& definition,
                                     const std::string& declared,
                                     std::vector<std::string>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The name of the Fleet GitRepo `source` stands for: its fleet_gitrepo, else its name.
  std::string FleetGitRepoLocked(const std::string& source) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What `declared` (a name in the fleet.yaml of `name`, defined as `definition`) resolves
  // to: a bundle of the same team (Fleet's dependsOn reaches its workspace's only).
  std::string ResolveFleetDependencyLocked(const std::string& name, const v1::Bundle& definition,
                                           const std::string& declared) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Changes the stored rollout record under the writer lock; queues a reconcile.
  absl::Status ChangeRollout(const std::string& name,
                             const std::function<absl::Status(v1::BundleRecord&)>& change);
  // Stores revisions built for some cluster's values since the last pass.
  void PersistNewRevisions(const std::string& name);
  // Queues every bundle of `source` and waits (up to api_wait and `wait_until`) for their
  // reconciles. A bundle whose commit_ticket is no longer the one in `tickets_before`
  // (its source delivered a commit since) is not queued again: the reconcile that commit
  // queued is waited for.
  void ReconcileBundlesOf(const std::string& source, absl::Time wait_until,
                          const std::map<std::string, uint64_t>& tickets_before = {});
  // Queues `name` and waits (up to api_wait and `wait_until`) for a reconcile that saw
  // the change.
  void ReconcileAndWait(const std::string& name, absl::Time wait_until);
  // An operator's call reconciles `names`: a failure they settled is rendered again
  // (BundleState::settled).
  void AskedToReconcile(const std::vector<std::string>& names) ABSL_LOCKS_EXCLUDED(mu_);
  // How long an API call may still wait.
  absl::Duration WaitLeft(absl::Time wait_until) const;
  // Builds the revisions of the clusters the bundle targets; a failure that depends on
  // no value is the render's failure.
  absl::Status Probe(const v1::Bundle& definition, const BundleVariants& content);
  // Builds the stable content's revisions (see BundleState.stable) for the clusters the
  // hub gives it to and that lack one: the hub never builds, and tells their agents once
  // the bundle is set again.
  void BuildStableRevisions(const std::string& name);
  // Adds `id` to the record's recent revisions, newest first, deleting the oldest past `kept`.
  static void RememberRevision(const std::string& bundle, const std::string& id, size_t kept,
                               v1::BundleRecord* record, std::vector<Store::Write>* writes);

  BundleVariants::Params ContentParams(const std::string& name, const v1::Bundle& definition,
                                       const ValuesSpec& values, uint64_t generation,
                                       const std::string& commit, absl::Time committed_time);
  // What a render builds, and what it read (the render cache for the next commit).
  struct Built {
    std::string engine;  // as given, else detected from the files
    std::shared_ptr<BundleVariants> content;
    // Engines that take values: filled as the variants render. Others: read_paths/ids.
    std::shared_ptr<ReadPathSet> variant_paths;
    std::vector<std::string> read_paths;
    std::vector<std::string> read_ids;
    std::vector<std::string> notes;
    // A plain or kustomize bundle rendered per cluster for fleet.yaml's targets
    // (BundleRecord.renders_per_target).
    bool per_target = false;
    // The fleet.yaml that says `paused: true` (BundleRecord.paused_by), or "".
    std::string paused_by;
    // What its fleet.yaml's dependsOn names (BundleRecord.declared_depends_on).
    std::vector<std::string> declared_depends_on;
    // Its fleet.yaml's name and labels (BundleRecord.fleet_name, fleet_labels).
    std::string fleet_name;
    std::map<std::string, std::string> fleet_labels;
    // Its fleet.yaml's rolloutStrategy, and why it cannot be read
    // (BundleRecord.fleet_rollout, fleet_rollout_error).
    v1::RolloutStrategy fleet_rollout;
    std::string fleet_rollout_error;
    // The render read from outside the repository (BundleRecord.reads_remote), and the
    // Git repositories it read at a ref that moves and the registries' repositories its
    // charts came from (BundleRecord.remote_repos).
    bool read_remote = false;
    std::vector<std::string> repos_read;
    // What it asked of the repository beyond its files (RenderInput::read_folder and
    // read_files), every variant's: a chart's file:// dependency, a values file elsewhere.
    std::shared_ptr<ReadPathSet> asked = std::make_shared<ReadPathSet>();
    // RenderInput::failed_reads of its render (one render for all clusters only).
    std::vector<std::string> failed_reads;
  };
  // Every repository path a render that failed with `built` read or looked for, as the
  // render cache's paths; nullopt when that is not known (BundleState::SettledFailure).
  static std::optional<std::vector<std::string>> FailedReads(const v1::Bundle& definition,
                                                             const Built& built);
  // Builds the content of `definition` at the snapshot's commit, any commit of its history
  // (no cache, no probe, nothing stored). out->engine may be set before a failure.
  // `reads`: the BundleRecord's reads_* fields (ReadsOf).
  // `fleet_gitrepo`: the GitRepo name Fleet's names are made from (FleetGitRepoLocked).
  absl::Status BuildContent(const std::string& name, const v1::Bundle& definition,
                            const ValuesSpec& values, uint64_t generation,
                            const SourceSnapshot& snapshot, absl::Time seen_time,
                            const RepositoryReads& reads, const std::string& fleet_gitrepo,
                            Built* out);
  // After a restart, renders the stable content of a jsonnet or helm bundle's rollout under
  // way again (BundleState.stable_to_render) from the snapshot's repository.
  void RenderStableAgain(const std::string& name, const SourceSnapshot& snapshot);
  // Renders the bundle at the snapshot; the error is the render's or the store's.
  // `fresh`: not from the render cache (a render that read remote bases, again).
  // `refused`: the snapshot's commit may not deploy (a pinned commit its source's keys did
  // not sign): nothing is rendered, and that is recorded as the render's error.
  absl::Status RenderBundle(const std::string& bundle, const SourceSnapshot& snapshot,
                            bool fresh = false, const absl::Status& refused = absl::OkStatus());
  v1::BundleInfo InfoLocked(const BundleState& state) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // AddBundle's work; `scope_change`, when set, says the bundle's caller's scope changed
  // (FollowCallerScopes): the event says so, and what the agents and the render judge
  // anyway (namespaces, SOPS keys) is not refused here. `adopt`: AddBundle's.
  absl::StatusOr<v1::BundleInfo> DefineBundle(const v1::Bundle& bundle, bool replace,
                                              absl::Time wait_until, bool allow_removal,
                                              int64_t if_generation,
                                              const std::string& scope_change,
                                              Adopt adopt = Adopt::kNo);
  // Runs FollowCallerScopes when the scopes in force change, and every scope_sweep.
  void FollowScopesLoop();
  void PruneRevisions(const std::string& bundle);

  Store* const store_;
  Hub* const hub_;
  EventBus* events_ = nullptr;
  // Never with mu_ held: a watcher's filter may ask BundleConcernsCluster.
  void Publish(v1::Event event, EventBus::Audience audience = nullptr) ABSL_LOCKS_EXCLUDED(mu_) {
    if (events_ != nullptr) events_->Publish(std::move(event), std::move(audience));
  }
  ControlPlaneMetrics& metrics_;
  const ControllerOptions options_;
  // Every file of the repository at the snapshot's commit, read once per commit and shared
  // by the renders that need the whole repository (kustomize, jsonnet; see
  // RecentRepositoryFiles).
  absl::StatusOr<std::shared_ptr<const std::vector<RepoFile>>> RepositoryFiles(
      const SourceSnapshot& snapshot);

  // Revisions built for cluster values and render requests, from other threads (contents
  // and the hub may outlive this controller; the mailbox is closed first).
  std::shared_ptr<Mailbox> mailbox_;
  WorkQueue queue_;

  Renderers renderers_;
  SourcePoller poller_;
  // FollowScopesLoop, when options_.caller_scopes is set.
  absl::Notification stop_scopes_;
  std::thread scopes_thread_;

  RecentRepositoryFiles repository_files_;  // by url@commit

  Mutex writer_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  // Renders finished (good or failed), for SiblingWait.
  uint64_t renders_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, v1::Source> sources_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, BundleState> bundles_ ABSL_GUARDED_BY(mu_);
  // By commit stream (CommitStreamLocked); at most kMaxStreamPruneCounts, then cleared.
  std::map<std::string, StreamPruneCount> stream_prune_counts_ ABSL_GUARDED_BY(mu_);
  // Per source, the bundles that read it as its last commit event named them: the next
  // commit's event shares the list while they stay the same, so the bus's recent events
  // hold one copy, not one per commit of a monorepo source that feeds thousands.
  std::map<std::string, EventBus::Audience> source_audiences_ ABSL_GUARDED_BY(mu_);
  // Sources without a ref -> the remote's default branch, as their last commit named it.
  std::map<std::string, std::string> default_branches_ ABSL_GUARDED_BY(mu_);
  // Sources whose last fetch failed (or whose ref did not resolve) -> why.
  std::map<std::string, std::string> source_errors_ ABSL_GUARDED_BY(mu_);
  // Removed bundles -> the generation a re-added one continues from.
  std::map<std::string, int64_t> tombstones_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_FLEET_CONTROLLER_H_
