#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_HUB_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_HUB_H_

// The hub knows which revision of each bundle every cluster should run, which revision
// each connected agent holds, and what agents report. It builds the messages that
// move agents from what they hold to what they should run: deltas when it knows the
// agent's revision, the whole set otherwise. One message per (base, target) pair is
// built and shared by every agent that needs it.
//
// Connections pull: the hub tells a connection which bundle changed (Notify), and the
// connection asks for the message when its stream is free (NextMessage). So a slow
// agent only ever has one pending entry per bundle, always for the newest revision.
//
// Thread-safe. The hub never calls a connection while holding its own lock.

#include <array>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics/heartbeat.h"
#include "common/model/cluster_gate.h"
#include "common/model/cluster_group.h"
#include "common/model/label_selector.h"
#include "common/model/revision.h"
#include "common/model/rollout_progress.h"
#include "common/sync.h"
#include "controlplane/distribute/diff_broker.h"
#include "controlplane/distribute/message_cache.h"
#include "controlplane/distribute/write_behind.h"
#include "controlplane/events/event_bus.h"
#include "controlplane/metrics.h"
#include "controlplane/store/store.h"
#include "proto/gitfleet/v1/admin.pb.h"
#include "proto/gitfleet/v1/agent.pb.h"

namespace gitfleet {

// The most clusters one control plane knows: registered (API and --agent-tokens together)
// or, under --allow-any-agent, seen.
inline constexpr size_t kMaxClusters = 100000;

// The hub's handle on one agent stream.
class AgentConnection {
 public:
  virtual ~AgentConnection() = default;
  // Something changed for `bundle`; ask NextMessage when the stream is free.
  virtual void Notify(const std::string& bundle) = 0;
  // A control message (a diff request, a forget order) waits; ask NextControlMessage when
  // the stream is free, before any bundle.
  virtual void NotifyControl() = 0;
  // End the stream with `status` (e.g. replaced by a newer stream of the same cluster).
  virtual void Close(const absl::Status& status) = 0;
};

// What the hub knows about one cluster, for status and listings.
struct ClusterView {
  v1::ClusterInfo info;
  std::map<std::string, v1::StatusUpdate> reports;  // by bundle
};

class Hub {
 public:
  // Cluster records and status reports are written behind, in one transaction every
  // `flush_interval` (an agent re-sends its statuses after a reconnect, so a crash loses
  // nothing that matters); definitions and revisions are the controller's, written at once.
  // Built messages are kept for reuse up to `max_cached_message_bytes` (and 1,024 of them).
  Hub(Store* store, ControlPlaneMetrics& metrics,
      absl::Duration flush_interval = absl::Milliseconds(250),
      size_t max_cached_message_bytes = 128 << 20, Clock* clock = &RealClock());
  ~Hub();  // flushes

  // Writes pending cluster records and reports now.
  void Flush();
  // Sets gitfleet_clusters{state} from what the hub knows now (the flush loop does, every
  // kClusterCountInterval).
  void CountClusters();

  // Loads known clusters and their last reports.
  absl::Status Load();

  // This control plane's fleet id, sent in every welcome (set before agents connect).
  void SetFleetId(const std::string& fleet_id);

  // Whether bundles target clusters by the labels their agents report (--trust-agent-
  // labels). Otherwise only labels the control plane owns (ClusterRegistry) count, and a
  // cluster without any holds what it has and is given nothing new. Set before Load.
  void SetTrustAgentLabels(bool trust);
  // What the control plane knows of `cluster`: registered or not, and the labels it set
  // (nullopt: none). A connected agent is re-evaluated at once.
  void SetClusterIdentity(const std::string& cluster, bool registered,
                          std::optional<LabelMap> labels);
  // The cluster groups (--cluster-groups), in name order: each cluster's are those whose
  // selector matches its labels (ClusterInfo.groups), what a fleet.yaml's clusterGroup and
  // clusterGroupSelector select it by. A connected agent whose groups change is told of
  // the bundles whose revisions differ per cluster (what it gets from them may change).
  void SetClusterGroups(std::shared_ptr<const std::vector<ClusterGroup>> groups);
  // Closes `cluster`'s stream, if it has one (its token changed, or it was removed).
  void CloseCluster(const std::string& cluster, const absl::Status& status);

  // Sets what `bundle` targets, its current content (null: none rendered yet, so
  // targeted agents keep what they have) and its definition's generation. Clears a
  // tombstone of the same name. `gate` names the clusters that may receive the content
  // (a progressive rollout, or none for a suspended bundle); the others keep what they
  // hold. Null: every targeted cluster. A cluster the gate holds back that holds nothing
  // of the bundle (it joined, or started to match, during a rollout) gets `stable`
  // instead, when given and `stable_gate` allows it (null: any): the content the whole
  // fleet was last allowed. A cluster's revision of either that is not built yet is asked
  // of the render requester (see SetRenderRequester).
  using Gate = std::shared_ptr<const ClusterGate>;
  void SetBundle(const std::string& bundle, const LabelSelector& selector,
                 std::shared_ptr<const BundleContent> content, int64_t generation = 0,
                 Gate gate = nullptr, std::shared_ptr<const BundleContent> stable = nullptr,
                 Gate stable_gate = nullptr);
  // The bundle's newest render, given as soon as it is rendered, before any wait or gate:
  // what it holds is what other bundles' updates and removals hand over to it rather
  // than delete (see HandoversLocked). Until given, the content of SetBundle counts.
  void SetNewestContent(const std::string& bundle, const LabelSelector& selector,
                        std::shared_ptr<const BundleContent> content);
  // Suspends (maintenance) or resumes `cluster`: while suspended its agent is sent no
  // update and no removal of any bundle. Kept across restarts. NotFound for a cluster
  // never seen nor registered.
  absl::Status SuspendCluster(const std::string& cluster, bool suspend);
  // How `clusters` are doing with `content` of `bundle` (the one about to be given, or
  // given), for its rollout: a cluster is ready when it reports the revision built for it
  // applied, Synced and Healthy. A report for any other revision (an older one, sent
  // before the change) never counts.
  std::vector<v1::RolloutCluster> RolloutProgress(const std::string& bundle,
                                                  const BundleContent* content,
                                                  const std::vector<std::string>& clusters);
  // The same, counted: how many are not ready and how many failed, and the first of each
  // in full. Copies nothing per cluster when the content is one revision for all (the
  // rollout gate asks it on every report).
  PartitionProgress SummarizeProgress(const std::string& bundle, const BundleContent* content,
                                      const std::vector<std::string>& clusters);
  // How many of the clusters `selector` matches run `bundle`'s content ready (its one
  // revision for all applied, Synced and Healthy), and the first that does not: counted
  // under the lock, copying nothing (a commit status asks it once a second while a
  // bundle rolls out to thousands of clusters). nullopt when the content is built per
  // cluster or leaves some clusters out: each cluster's status says then.
  struct Readiness {
    int total = 0;
    int ready = 0;
    std::string first_not_ready;  // a cluster's name; "" when all are
  };
  std::optional<Readiness> CountReady(const std::string& bundle,
                                      const LabelSelector& selector) const;
  // Grows whenever a cluster appears or its labels may have changed: what selectors match
  // is the same while it stays.
  uint64_t MembershipVersion() const;
  // Called with a bundle's name, without the hub's lock, when an agent's report on it
  // may matter: `rollout` when the bundle's content is gated and the report may move its
  // rollout (see ExpectReports); for bundles others depend on (SetWatchedBundles), on
  // every report. Set before agents connect.
  using StatusObserver = std::function<void(const std::string& bundle, bool rollout)>;
  void SetStatusObserver(StatusObserver observer);
  // An evaluation of `bundle`'s rollout begins: reports from now on count toward the
  // next. A report that arrives while it reads is counted twice, never missed.
  void BeginEvaluation(const std::string& bundle);
  // What the evaluation found: its partition cannot pass before `needed` more reports
  // (each changes one cluster). Until then only a failed report, or one after
  // `refresh`, is passed to the observer as `rollout`.
  void ExpectReports(const std::string& bundle, int needed, absl::Duration refresh);
  // Clusters whose report on a revision of `bundle`'s `content` went from ready (applied,
  // Synced, Healthy) to Degraded or failed while the bundle was gated (a rollout under
  // way): a revision that worked there and then broke. Such a report reaches the observer
  // as `rollout`. A cluster stays listed until it is ready again or reports another
  // revision, or until AcknowledgeRegressions. Sorted. Stored with the reports, so they
  // outlive a restart (as the reports do, within a flush interval).
  std::vector<std::string> Regressions(const std::string& bundle, const BundleContent* content);
  // An operator has seen them (rollout resume or promote): only new regressions count.
  void AcknowledgeRegressions(const std::string& bundle);
  // Bundles whose reports the observer hears even without a gate (other bundles depend
  // on them).
  void SetWatchedBundles(std::set<std::string> bundles);
  // Where cluster events go (connected, disconnected, applied, failed, health); none
  // when unset. Set before agents connect.
  void SetEventBus(EventBus* events) { events_ = events; }
  // The bundle was removed through the API: agents that hold it receive a removal, now
  // or whenever they connect, for as long as the tombstone is kept.
  void RemoveBundle(const std::string& bundle, int64_t generation = 0);
  // Records a tombstone loaded from the store.
  void SetTombstone(const std::string& bundle, int64_t generation);
  // Marks `cluster` adopted: its agent's next welcome tells it to trust this control
  // plane. A connected agent is disconnected so that it reconnects at once.
  // NotFound for a cluster never seen.
  absl::Status AdoptCluster(const std::string& cluster);
  // Tells `cluster`'s agent to forget `bundle` (deleting what gitfleet created there only
  // with `prune`). FailedPrecondition when the cluster is not connected or does not hold
  // the bundle.
  absl::Status ForgetBundle(const std::string& cluster, const std::string& bundle, bool prune);

  // Registers an agent stream after its hello; replaces (and closes) an older stream
  // of the same cluster. Returns the session id.
  uint64_t Connect(const v1::Hello& hello, const std::string& peer,
                   std::shared_ptr<AgentConnection> connection);
  // The welcome for a session that just connected; it consumes a pending adoption.
  v1::Welcome WelcomeFor(uint64_t session);
  void Disconnect(uint64_t session);
  // Closes every agent stream with `status` (on shutdown, so the server need not wait
  // for streams that never end by themselves). Agents reconnect with backoff.
  void CloseAll(const absl::Status& status);
  // Who builds a cluster's revision when its values need one not built yet: called with
  // the bundle's name, on the asking thread, without the hub's lock held. It must not
  // render there; it queues the work, and calls SetBundle again when the revision is
  // built: that tells every agent that waited for one. Set before agents connect.
  using RenderRequester = std::function<void(const std::string& bundle)>;
  void SetRenderRequester(RenderRequester requester);

  // The message that brings the agent's `bundle` up to date, or null when it is (or
  // when its cluster's values do not render, status shows why, or when its revision is
  // not built yet: the render requester is asked). Never renders.
  std::shared_ptr<const EncodedMessage> NextMessage(uint64_t session, const std::string& bundle);
  // The session's next control message (see AgentConnection::NotifyControl), or null.
  std::shared_ptr<const EncodedMessage> NextControlMessage(uint64_t session);
  // An Ack that carries a status also does what OnStatus does with it.
  void OnAck(uint64_t session, const v1::Ack& ack);
  void OnStatus(uint64_t session, const v1::StatusUpdate& status);
  // Asks `cluster`'s agent for a dry-run diff of `bundle`. `done` runs once, on another
  // thread: with the agent's answer, or an error when the cluster is not connected or
  // does not answer within `timeout`.
  using DiffCallback = DiffBroker::Callback;
  void RequestDiff(const std::string& cluster, const std::string& bundle, absl::Duration timeout,
                   DiffCallback done);
  void OnDiff(uint64_t session, const v1::DiffResult& result);
  // Replaces the cluster's condition of the same type.
  void OnCondition(uint64_t session, const v1::ClusterCondition& condition);
  // The agent's cluster changed since its hello (its Kubernetes version, the APIs it
  // serves): kept as a hello's are, and its bundles looked at again (a chart rendered for
  // them renders anew).
  void OnFacts(uint64_t session, const v1::ClusterFacts& facts);

  // Whether an agent of `cluster` may connect as far as the count of clusters goes: the hub
  // knows it already, or knows fewer than `most` (under --allow-any-agent anyone may
  // name a new cluster, and each is kept).
  bool AdmitsCluster(const std::string& cluster, size_t most) const;
  // Records that an agent claiming `cluster` was refused, and `why` (for the cluster's
  // operator: ClusterInfo.refused, until its agent next connects). Only clusters the hub
  // knows (registered, or seen) are recorded: any client may claim any name. True when
  // the cluster is known and this is its first refusal since it last connected, or a
  // refusal for another reason: the caller logs those.
  bool NoteRefused(const std::string& cluster, const std::string& why);
  // While `cluster`'s agent is connected: it was let in with the token a rotation
  // replaced, which works `until` then (ClusterInfo.old_token_until); InfiniteFuture:
  // with the token of the earlier of two --agent-tokens lines (old_token_listed);
  // InfinitePast: with the current one. Cleared when it connects again or leaves.
  void SetOldToken(const std::string& cluster, absl::Time until);
  // Whether `bundle` concerns `cluster`: `selector` (its definition's; null: the one it was
  // last set with) matches the cluster's labels, or the cluster holds some revision of
  // it. False for a cluster the hub does not know. For event filters (EventBus::Filter).
  bool Concerns(const std::string& cluster, const std::string& bundle,
                const LabelSelector* selector) const ABSL_LOCKS_EXCLUDED(mu_);
  // The labels bundles target `cluster` by (ClusterInfo.labels), or nullopt when the hub
  // does not know it: one look-up, nothing copied but the labels (for filters that ask per
  // event or per word).
  std::optional<LabelMap> LabelsOf(const std::string& cluster) const ABSL_LOCKS_EXCLUDED(mu_);
  // Whether it concerns any cluster `clusters` matches (a walk of the fleet).
  bool ConcernsAny(const LabelSelector& clusters, const std::string& bundle,
                   const LabelSelector* selector) const ABSL_LOCKS_EXCLUDED(mu_);
  // Every cluster, or only `name` when it is not empty. Otherwise, in name order, those
  // from `from` on (inclusive), at most `max` of them (0: no bound): a page's worth. With
  // `keep`, only the clusters whose labels (ClusterInfo.labels) it keeps, looked at before
  // anything is copied (a team's page of a big fleet).
  std::vector<ClusterView> Clusters(const std::string& name = "", const std::string& from = "",
                                    size_t max = 0,
                                    const std::function<bool(const LabelMap&)>& keep = nullptr);
  // How far `bundle` has rolled out to the known clusters `selector` matches.
  struct Rollout {
    int targets = 0;
    // Targets that acknowledged a revision of the current content (or said in their
    // hello that they hold one).
    int current = 0;
    // When the last of the current ones did; InfinitePast when none is.
    absl::Time last_current = absl::InfinitePast();
    // Clusters the selector matches that the bundle's own files leave out
    // (BundleContent::LeavesSomeOut): not counted in targets.
    int not_deployed = 0;
  };
  // Copies nothing: listings call it while every agent of a big fleet is acknowledging,
  // and take the hub's lock only to count. The count is kept, and each acknowledgement
  // brings it up to date (AckedChangedLocked); it is counted again only when the bundle's
  // content or the fleet's membership changed: a listing of hundreds of bundles, during a
  // fan-out to thousands of clusters, counts none of them again. Content that leaves some
  // clusters out looks at each cluster it targets (unlocked) once per change of the fleet
  // or of what it built (left_out_).
  //
  // With `within`, of the clusters it matches too (a team's share of a bundle that reaches
  // others'): counted anew each time, and not kept.
  Rollout RolloutOf(const std::string& bundle, const LabelSelector& selector,
                    const LabelSelector* within = nullptr) const ABSL_LOCKS_EXCLUDED(mu_);
  // The info (not the reports) of the clusters `selector` matches.
  std::vector<v1::ClusterInfo> MatchingClusters(const LabelSelector& selector) const;
  // The same clusters' names and labels only, in name order: cheap enough for a fleet
  // of thousands each time a rollout's partitions are cut.
  std::vector<std::pair<std::string, LabelMap>> MatchingClusterLabels(
      const LabelSelector& selector) const;
  // The clusters whose labels are known, told apart only by their labels of `keys`: for
  // each set of those, the first cluster in name order that has it and how many do. What
  // selectors that read only `keys` make of a fleet of thousands, with a few such sets.
  struct LabelsShared {
    std::string first;
    size_t clusters = 0;
  };
  std::map<LabelMap, LabelsShared> ClustersByLabels(const std::set<std::string>& keys) const;
  // The clusters that hold `bundle` and that `before` matches but `after` does not, in
  // name order: a new selector would remove the bundle from them.
  std::vector<std::string> HoldersLeaving(const std::string& bundle, const LabelSelector& before,
                                          const LabelSelector& after) const;
  // The bundles `cluster` holds and is targeted by now that would no longer target it
  // were the control plane's labels for it `labels`, in name order (none when bundles
  // target clusters by their agents' labels: --trust-agent-labels).
  std::vector<std::string> BundlesLeaving(const std::string& cluster, const LabelMap& labels) const;
  // Of those clusters, the ones that hold no revision of `bundle`, in name order.
  std::vector<v1::ClusterInfo> MatchingClustersHoldingNothing(const std::string& bundle,
                                                              const LabelSelector& selector) const;
  // The API versions clusters' agents reported (Hello.api_versions), by the digest their
  // ClusterInfo.api_versions_digest names; null when none is kept under it. Each distinct
  // list is kept once (at most kMaxApiVersionLists), stored with the clusters. Never
  // takes the hub's main lock: renders call it.
  std::shared_ptr<const std::vector<std::string>> ApiVersions(const std::string& digest) const;
  static constexpr size_t kMaxApiVersionLists = 1024;
  // For tests and metrics: how many distinct update messages were built (and serialized).
  size_t messages_built() const;
  // Liveness: the flush loop (which takes the hub's lock) comes round every flush interval.
  Probe Liveness() const;

 private:
  struct BundleTarget {
    LabelSelector selector;
    std::shared_ptr<const BundleContent> content;
    // The content before, whose revisions agents still hold while they catch up.
    std::shared_ptr<const BundleContent> previous;
    int64_t generation = 0;
    Gate gate;                                    // see SetBundle
    std::shared_ptr<const BundleContent> stable;  // see SetBundle
    Gate stable_gate;
    // Clusters whose revision was not built when their agent asked: told at the next
    // SetBundle, whatever it changes (a build ends with one). At most one per cluster.
    std::set<std::string> waiting;
  };
  // For a gated bundle: reports since its rollout's evaluation began, how many it needs
  // before it can move, and when reports reconcile it anyway (see ExpectReports). Kept
  // apart from BundleTarget: the first evaluation comes before the first SetBundle.
  struct ReportCount {
    int reports = 0;
    int needed = 1;
    absl::Time refresh = absl::InfinitePast();
  };
  struct Agent {
    v1::ClusterInfo info;
    // What bundles target it by (info.labels, kept as a map: every fan-out matches them),
    // and whether that is known at all (see SetTrustAgentLabels).
    LabelMap labels;
    bool labels_known = false;
    LabelMap reported;                            // from the hello
    std::optional<LabelMap> owned;                // set by the registry
    std::shared_ptr<AgentConnection> connection;  // null when disconnected
    uint64_t session = 0;
    std::map<std::string, std::string> held;  // bundle -> revision the agent holds
    // Bundles it holds a revision of that the hub cannot diff against (it asked for the
    // whole set, or refused one): the whole set it is sent next names handovers.
    std::set<std::string> whole;
    // bundle -> the revision the agent last acknowledged holding, and when.
    std::map<std::string, std::pair<std::string, absl::Time>> acked;
    std::map<std::string, v1::StatusUpdate> reports;
    // Bundles it holds that are neither defined nor tombstoned: kept, and reported.
    std::set<std::string> orphans;
    // Diff requests and forget orders waiting for the stream.
    std::deque<v1::ControlMessage> control;
    std::string fleet_id;  // from the hello
    bool adopt_pending = false;
    bool suspended = false;  // see SuspendCluster
    // What this session's welcome says of the hello's API list (Welcome.api_versions_held,
    // Welcome.send_facts).
    bool apis_held = false;
    bool facts_wanted = false;
    // Its cluster groups (info.groups) as EncodeGroupMemberships writes them.
    std::string groups_text;
  };
  using Notification = std::pair<std::shared_ptr<AgentConnection>, std::string>;

  Agent* AgentForSessionLocked(uint64_t session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Targets(const BundleTarget& target, const Agent& agent) const;
  // Whether `agent` holds some revision of `bundle`, known to the hub or not.
  static bool HoldsAny(const Agent& agent, const std::string& bundle);
  // HoldsAny, or, for a cluster not connected (after a restart its hello has not told what
  // it holds), a report of `bundle` stored from it: what a change that would take the
  // bundle off it must take for held, lest its reconnect bring a removal nobody asked for.
  static bool MayHold(const Agent& agent, const std::string& bundle);
  // Whether `agent`, held back by the gate of `bundle` (`target`), gets its stable content.
  static bool GetsStable(const std::string& bundle, const BundleTarget& target, const Agent& agent);
  // Works out agent.labels from what it reports and what the control plane owns, and its
  // groups from those.
  void UpdateLabelsLocked(Agent* agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets agent's groups to `groups`, written as `text`; whether they changed.
  bool SetGroupsLocked(Agent* agent, const std::vector<ClusterGroupMembership>& groups,
                       const std::string& text) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A revision of `bundle` by id, from its contents or those read from the store. Null
  // when unknown; then, if `load` is given and the store was not asked yet, *load is the
  // key to read (LoadStoredRevision, without the lock) before asking again.
  std::shared_ptr<const Revision> FindRevisionLocked(const std::string& bundle,
                                                     const BundleTarget& target,
                                                     const std::string& id, std::string* load)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads a revision from the store (taking the lock only to keep it).
  void LoadStoredRevision(const std::string& key) ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<const EncodedMessage> NextMessageOnce(uint64_t session, const std::string& bundle,
                                                        std::string* load) ABSL_LOCKS_EXCLUDED(mu_);
  // `current` is the agent's revision; null when the bundle no longer targets it;
  // `interim` when it is the bundle's stable revision, not its newest (a joiner's, until
  // its turn). Returns null with *load set when a revision must be read from the store
  // first.
  std::shared_ptr<const EncodedMessage> NextMessageLocked(
      Agent* agent, const std::string& bundle, const std::shared_ptr<const Revision>& current,
      bool interim, std::string* load) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<const EncodedMessage> BuildUpdateLocked(const Revision* base,
                                                          const Revision& target,
                                                          int64_t generation, bool interim)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  using KeyList = google::protobuf::RepeatedPtrField<v1::ObjectKey>;
  // What other bundles targeting `agent` hold in their newest revision for its cluster
  // (gate or not), for a message on `bundle`: of `keys` (an update's removed keys), or,
  // without keys (a removal, or a whole set the agent cannot diff), whatever the agent
  // was not sent yet and `kept` (the whole set, if any) lacks, at most kMaxHandovers.
  // May work out per-cluster values (BundleContent::Built): only asked when something
  // may leave a bundle.
  std::vector<v1::Handover> HandoversLocked(const Agent& agent, const std::string& bundle,
                                            const KeyList* keys,
                                            const Revision* kept = nullptr) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  using ObjectList = google::protobuf::RepeatedPtrField<v1::ManifestObject>;
  // Of `upserts` (an update of `bundle`), the objects another bundle held in the revision
  // `agent` has of it and its newest revision for the cluster no longer holds (or that
  // bundle no longer targets the cluster): moving to `bundle`, whose update may reach the
  // agent before the other's. Only bundles whose newest the agent does not hold yet are
  // looked at (those in the middle of a change); at most kMaxHandovers.
  std::vector<v1::Handover> TakeoversLocked(const Agent& agent, const std::string& bundle,
                                            const ObjectList& upserts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Notes what `bundle`'s content `now` dropped of `before` (see dropped_); all of it when
  // the bundle is `retargeted` (a new selector: some clusters lose all of it).
  void NoteDropsLocked(const std::string& bundle, const BundleContent* before,
                       const BundleContent& now, bool retargeted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Notes what `held_id`, the revision of `bundle` that `agent` holds, has that the
  // bundle's newest no longer holds for the agent's cluster (all of it when the bundle no
  // longer targets the cluster), as NoteDropsLocked does for a new content: for revisions
  // held from before this process saw its contents change (a restart). Once per revision.
  // Needs the revision in memory (see Connect, which reads what the store has first).
  void NoteHeldDropsLocked(const Agent& agent, const std::string& bundle,
                           const std::string& held_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The bundle's newest content (SetNewestContent's, or else its target's), null when it
  // has none, and the selector that goes with it.
  const BundleContent* NewestLocked(const BundleTarget& target, const std::string& bundle,
                                    const LabelSelector** selector) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The same, and whether it targets `agent`.
  const BundleContent* NewestForLocked(const BundleTarget& target, const std::string& bundle,
                                       const Agent& agent, bool* targets) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetDropsLocked(const std::string& bundle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Says that agents' acknowledgements of `bundle` (or its content) changed: what RolloutOf
  // counted is out of date. Given the one agent whose acknowledgement went from `before` to
  // `after` (null: none), a count still right until then is brought up to date in place
  // instead, so that a listing during a fan-out does not count the fleet again.
  using Acked = std::pair<std::string, absl::Time>;  // revision, when
  void AckedChangedLocked(const std::string& bundle, const Agent* agent = nullptr,
                          const Acked* before = nullptr, const Acked* after = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings held_by_ up to date with `bundle`'s newest content (after it changed or went).
  void IndexNewestLocked(const std::string& bundle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `content`'s revision for `agent`'s cluster: the one for everyone, or the cluster's if
  // built and good; null otherwise.
  static std::shared_ptr<const Revision> RevisionFor(const BundleContent& content,
                                                     const Agent& agent);
  void SetTombstoneLocked(const std::string& bundle, int64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets what the hub knew of `agent`'s copy of `bundle`.
  void DropHeldLocked(Agent* agent, const std::string& bundle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistClusterLocked(const Agent& agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops, in memory and in the store, every regression of `bundle`.
  void ForgetRegressionsLocked(const std::string& bundle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a cluster's report on `bundle`, in `sync` state and `health` (the enums'
  // numbers), in (delta 1) or out (-1) of the bundle's gauges (gitfleet_bundle_clusters,
  // _cluster_health). Its series go with its last report (and
  // gitfleet_commit_to_applied_seconds's too, once the bundle is removed).
  void CountReportLocked(const std::string& bundle, int sync, int health, int delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes the gauges of `bundle`'s report counts, if it has any and they are not made yet.
  void ExportReportStatesLocked(const std::string& bundle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores `status` as the agent's report for `bundle` (whatever status.bundle() says).
  // Appends to `events` what the report changed (published after the lock). True when it
  // is a regression (see Regressions).
  bool RecordStatusLocked(Agent* agent, const std::string& bundle, const v1::StatusUpdate& status,
                          std::vector<v1::Event>* events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Deliver(const std::vector<Notification>& notifications);
  void Publish(std::vector<v1::Event> events) ABSL_LOCKS_EXCLUDED(mu_);
  // The observer to call for a report on `bundle`, or null (see SetStatusObserver).
  // `urgent`: the report failed or regressed, so it may halt the rollout whatever count
  // of reports it waits for.
  std::shared_ptr<const StatusObserver> ObserverForLocked(const std::string& bundle, bool urgent,
                                                          bool* rollout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 public:
  // How often the flush loop counts clusters by state (a walk of every cluster).
  static constexpr absl::Duration kClusterCountInterval = absl::Seconds(10);
  // Tombstones kept; past this the oldest go, and agents that still hold those bundles
  // keep them as orphans (the safe side).
  static constexpr size_t kMaxTombstones = 10000;
  // Handovers named in one removal (see HandoversLocked).
  static constexpr size_t kMaxHandovers = 10000;

 private:
  Store* const store_;
  ControlPlaneMetrics& metrics_;
  EventBus* events_ = nullptr;
  // Series touched once per agent per commit, looked up once here.
  metrics::Counter& sent_full_;
  metrics::Counter& sent_delta_;
  metrics::Counter& sent_removal_;
  metrics::Counter& ack_ok_;
  metrics::Counter& ack_nack_;
  metrics::Counter& ack_need_full_;
  metrics::Counter& status_via_ack_;
  metrics::Counter& status_via_message_;
  const absl::Duration flush_interval_;
  Clock* const clock_;
  Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  Heartbeat flusher_heartbeat_{"the hub's flush loop"};
  std::thread flusher_;
  // A hello's API versions, sorted and without repeats, and their digest; made before the
  // hub's lock is taken (a copy, a sort when needed, a hash).
  struct PreparedApis {
    std::string digest;
    std::shared_ptr<const std::vector<std::string>> apis;  // null for none
  };
  static PreparedApis PrepareApiVersions(
      const google::protobuf::RepeatedPtrField<std::string>& apis);
  // The list named `digest`, or null when the catalog does not hold it.
  std::shared_ptr<const std::vector<std::string>> HeldApiVersions(const std::string& digest);
  // Keeps `prepared` once; its digest, or "" when it holds none or the catalog is full of
  // lists clusters still name.
  std::string InternApiVersionsLocked(const PreparedApis& prepared)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  // Lock order: mu_, then apis_mu_.
  mutable Mutex apis_mu_;
  std::map<std::string, std::shared_ptr<const std::vector<std::string>>> api_versions_
      ABSL_GUARDED_BY(apis_mu_);
  WriteBehind writes_;  // cluster records and reports
  std::map<std::string, BundleTarget> bundles_ ABSL_GUARDED_BY(mu_);
  struct Newest {
    LabelSelector selector;
    std::shared_ptr<const BundleContent> content;
  };
  std::map<std::string, Newest> newest_ ABSL_GUARDED_BY(mu_);  // see SetNewestContent
  // What TakeoversLocked looks at, so that an update whose objects no other bundle let go
  // of costs one look-up per object: object key -> bundles whose content dropped it
  // (since, none held it again), at most kMaxHandovers keys a bundle; and the bundles
  // whose contents cannot be compared so (values differ between clusters, or an agent
  // holds a revision of it the store no longer has), always looked at.
  absl::flat_hash_map<std::string, std::set<std::string>> dropped_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<std::string>> dropped_by_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> undiffable_ ABSL_GUARDED_BY(mu_);
  // What HandoversLocked looks at for an update's removed keys, so that it costs one
  // look-up per removed key rather than a walk of every bundle: object key -> bundles whose
  // newest content (newest_'s, else bundles_') holds it in its one revision for everyone
  // (indexed_ says which revision each was indexed at); and the bundles whose newest
  // content has a revision per cluster, always looked at.
  absl::flat_hash_map<std::string, std::set<std::string>> held_by_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<const Revision>> indexed_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> per_cluster_newest_ ABSL_GUARDED_BY(mu_);
  // bundle -> the held revisions NoteHeldDropsLocked noted (with "/gone" when the bundle
  // did not target the agent), at most kMaxHeldNoted a bundle.
  std::map<std::string, std::set<std::string>> held_noted_ ABSL_GUARDED_BY(mu_);
  static constexpr size_t kMaxHeldNoted = 64;
  absl::flat_hash_map<std::string, ReportCount> report_counts_ ABSL_GUARDED_BY(mu_);
  // bundle -> cluster -> the revision it regressed on (see Regressions): at most one entry
  // per cluster and bundle. Stored too, so a restart keeps them.
  absl::flat_hash_map<std::string, std::map<std::string, std::string>> regressed_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, Agent> agents_ ABSL_GUARDED_BY(mu_);  // by cluster
  // agents_.find(name), trying `hint` first: names walked in sorted order through adjacent
  // agents (a partition cut in name order) cost one comparison each, not a tree walk.
  std::map<std::string, Agent>::const_iterator FindAgentLocked(
      const std::string& name, std::map<std::string, Agent>::const_iterator hint) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return hint != agents_.end() && hint->first == name ? hint : agents_.find(name);
  }
  std::string fleet_id_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const RenderRequester> render_requester_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const StatusObserver> status_observer_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> watched_ ABSL_GUARDED_BY(mu_);
  uint64_t membership_version_ ABSL_GUARDED_BY(mu_) = 0;
  // Per bundle, bumped whenever an agent's acknowledgement of it, or its content, changes;
  // with membership_version_, what a RolloutOf counted is still right while neither moved
  // (AckedChangedLocked moves a kept count's version along with the ACKs it took in).
  std::map<std::string, uint64_t> ack_versions_ ABSL_GUARDED_BY(mu_);
  struct CountedRollout {
    LabelSelector selector;
    const BundleContent* content = nullptr;
    uint64_t membership_version = 0;
    uint64_t ack_version = 0;
    Rollout rollout;
  };
  mutable std::map<std::string, CountedRollout> counted_ ABSL_GUARDED_BY(mu_);
  Rollout CountRolloutLocked(const std::string& bundle, const LabelSelector& selector,
                             const LabelSelector* within = nullptr) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // For content that leaves some clusters out (BundleContent::LeavesSomeOut): the clusters
  // `selector` matches that it leaves out, by name, as last worked out (each cluster's
  // outcome looked at unlocked). Worked out again when the content, the fleet's
  // membership or what the content built changed.
  struct LeftOut {
    std::string selector;
    std::weak_ptr<const BundleContent> content;
    uint64_t membership_version = 0;
    uint64_t builds = 0;
    std::vector<std::string> clusters;
  };
  mutable std::map<std::string, LeftOut> left_out_ ABSL_GUARDED_BY(mu_);
  // Takes `clusters` (left out) off `rollout`'s targets, and off its current ones those
  // that acknowledged a revision of `content` anyway.
  void SubtractLeftOutLocked(const std::string& bundle, const std::vector<std::string>& clusters,
                             const BundleContent& content, Rollout* rollout) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Per bundle with reports: its clusters by sync state and by health (indexed by the
  // enums' numbers; [0], unspecified, is not counted), its reports, and the gauges that
  // show the counts: made once the bundle is defined here (ExportReportStatesLocked), so
  // bundles agents hold that nobody defined add no series.
  struct ReportStates {
    std::array<int, v1::SyncState_ARRAYSIZE> sync{};
    std::array<int, v1::HealthState_ARRAYSIZE> health{};
    int reports = 0;
    std::array<metrics::Gauge*, v1::SyncState_ARRAYSIZE> sync_gauges{};
    std::array<metrics::Gauge*, v1::HealthState_ARRAYSIZE> health_gauges{};
    bool exported = false;
  };
  std::map<std::string, ReportStates> report_states_ ABSL_GUARDED_BY(mu_);
  bool trust_agent_labels_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const std::vector<ClusterGroup>> groups_ ABSL_GUARDED_BY(mu_);
  // Removed bundles -> (generation, sequence); the sequence orders them for the bound.
  std::map<std::string, std::pair<int64_t, uint64_t>> tombstones_ ABSL_GUARDED_BY(mu_);
  uint64_t tombstone_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Agents are never erased from agents_, so these pointers stay valid.
  // Looked up on every agent message: hashed, not ordered.
  absl::flat_hash_map<uint64_t, Agent*> sessions_ ABSL_GUARDED_BY(mu_);
  uint64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  // Revisions loaded from the store (agents far behind, or from before a restart), by
  // RevisionKey. Bounded; current and previous contents answer most lookups first.
  std::map<std::string, std::shared_ptr<const Revision>> stored_revisions_ ABSL_GUARDED_BY(mu_);
  MessageCache messages_ ABSL_GUARDED_BY(mu_);
  DiffBroker diffs_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_HUB_H_
