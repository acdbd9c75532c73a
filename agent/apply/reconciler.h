#ifndef GITFLEET_AGENT_APPLY_RECONCILER_H_
#define GITFLEET_AGENT_APPLY_RECONCILER_H_

// Applies each bundle's desired set through an Applier and keeps the durable record.
//
// For every update it rebuilds the full desired set (the base it holds plus the delta),
// checks it against the revision, records the intent (desired set and every key that
// may exist) before touching the target, applies only objects whose content changed,
// prunes what left the bundle, and records the result. A failed apply is retried with
// backoff; drifted objects are re-applied when self-heal is on. Nothing applied is ever
// removed because of an error.
//
// Removal is an explicit act, and only a trusted control plane's: a control plane of
// another fleet (SetServingFleet with trusted=false) may add bundles but neither replace
// nor remove what the agent holds, and a trusted one may not replace or remove a bundle
// with an older definition generation than the one applied. Pruning deletes only objects
// gitfleet created; objects it found existing are released.
//
// Sync waves (apply/order.h) gate while a revision is being applied: the objects of a
// wave, and its Sync hooks, go only once every object of the lower waves is Healthy and
// their Sync hooks have succeeded. Until then the revision is Applying, saying what it
// waits for, and each pass (every `health_interval`) looks again. An object that fails
// stops the pass at the next wave. Prune waits until every object of the revision is
// applied.
//
// Hooks (common/manifest/hook.h) run once per revision, around its apply:
//   the bundle's Namespaces (so hooks can run in them); PreSync hooks, wave by wave, each
//   wave waiting for its runs to finish; then the
//   objects with the Sync hooks, wave by wave; then prune, and the revision counts as
//   applied; then, once every object is Healthy, PostSync hooks. Only then is the
//   revision Synced (Applying until then).
// A hook that fails (or outlasts `hook_timeout`), or an object that fails to apply, fails
// the attempt: what the attempt had not reached yet is not applied, nothing is pruned, and
// SyncFail hooks run. The next attempt (after the usual backoff) starts from PreSync.
// Hooks are never in the inventory: they are neither pruned nor checked for drift. Runs
// are recorded before they are waited for, so a restart waits for the same run.
//
//   Reconciler reconciler(&applier, &state, metrics);
//   GF_RETURN_IF_ERROR(reconciler.Load());
//   Reconciler::Outcome outcome = reconciler.OnUpdate(update);  // send outcome.ack
//
// Not thread-safe: the agent drives it from one thread.

#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/apply/applier.h"
#include "agent/apply/change_watch.h"
#include "agent/apply/order.h"
#include "agent/health/health.h"
#include "agent/metrics.h"
#include "agent/state/state_store.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/manifest/hook.h"
#include "proto/gitfleet/v1/agent.pb.h"

namespace gitfleet {

class Reconciler {
 public:
  struct Outcome {
    v1::Ack ack;
    std::optional<v1::StatusUpdate> status;  // set when the status changed
  };

  // `health_interval`: how often health that is still changing (Progressing, Missing,
  // Unknown) is read again, until it settles.
  // Retries and health checks are timed by `clock`.
  // A hook run still going after `hook_timeout` has failed.
  Reconciler(Applier* applier, BundleStateStore* state, AgentMetrics& metrics,
             absl::Duration health_interval = absl::Seconds(2), Clock* clock = &RealClock(),
             absl::Duration hook_timeout = absl::Hours(1));

  // Loads the durable record; a bundle that was mid-apply is finished by Resync. A corrupt
  // bundle file is moved aside (see Conditions) and that bundle asked for again.
  absl::Status Load();
  // The control plane now serving, and whether the agent trusts it (its fleet is the one
  // the agent remembers, or an operator adopted the cluster).
  void SetServingFleet(const std::string& fleet_id, bool trusted);
  // An operator adopted the cluster: generations applied so far stop counting, so the
  // serving control plane may replace what the agent holds.
  void Adopt();
  // Facts about the agent's own state for the cluster's conditions: a foreign fleet,
  // refused updates or removals, state files moved aside.
  std::vector<v1::ClusterCondition> Conditions() const;
  // The revisions held, for the hello.
  std::vector<v1::HeldRevision> Held() const;
  Outcome OnUpdate(const v1::BundleUpdate& update);
  // Prunes the bundle's objects (when prune is on) and forgets it, unless the removal is
  // not to be trusted (see above): then it keeps the bundle and says why.
  void OnRemoval(const v1::BundleRemoval& removal);
  // Retries failed bundles whose backoff elapsed and, with `check_drift`, re-checks live
  // objects (those of a bundle the change watch hears whole, at most once per
  // `watched_check_interval`); without it, re-checks those of the bundles the change watch
  // names (at most once per `watch_check_interval` each). Returns the statuses that changed.
  std::vector<v1::StatusUpdate> Resync(bool check_drift);
  // What names the bundles whose live objects someone changed (null: none; not owned). It
  // is told the kinds the bundles hold as that changes.
  void SetChangeWatch(ChangeWatch* watch, absl::Duration watch_check_interval = absl::Seconds(2),
                      absl::Duration watched_check_interval = absl::ZeroDuration());
  // What applying the bundle's desired revision would change now, by the applier's dry
  // run. Changes nothing.
  v1::DiffResult Diff(const v1::DiffRequest& request);
  // The current status of every bundle (sent after each reconnect).
  std::vector<v1::StatusUpdate> AllStatuses() const;

 private:
  struct Bundle {
    v1::AgentBundleRecord record;
    v1::StatusUpdate status;
    std::unique_ptr<Backoff> backoff;
    absl::Time next_retry = absl::InfinitePast();
    int64_t drift_corrections = 0;
    // The in-memory record has changes the state file lacks.
    bool unsaved = false;
    // Objects of record.desired whose health has not settled, and when to look again.
    std::vector<int> unsettled;  // indexes into record.desired().objects()
    absl::Time next_health_check = absl::InfiniteFuture();
    absl::Time health_read = absl::InfinitePast();  // when health was last read
    absl::Duration health_delay;                    // doubles while rechecks change nothing
    // The desired revision's hooks have not all run: passes go on at next_retry.
    bool hooks_pending = false;
    // What left the revision waits for it to be Healthy (prune-last): passes go on at
    // next_retry.
    bool prune_waits = false;
    // While record.removing: why the last try left objects in place.
    std::string removal_error;
    // ... and it was the revision's delete hooks (waiting or failed; removal_error says).
    bool removal_hooks = false;
    // Of the inventory, objects left in place for another bundle (record.handing_over), as
    // the last prune counted them.
    int handing_over = 0;
    // Where in record.left_unmanaged the next drift pass starts reading (a few a pass).
    int left_checked_from = 0;
    // The change watch named it: its live objects are checked at next_watch_check.
    bool watch_changed = false;
    // ... for a status that moved: health still changing is read at once, settled health
    // by a check (as a changed object).
    bool status_changed = false;
    absl::Time next_watch_check = absl::InfinitePast();
    // When a periodic check may next pass over it while the change watch hears all of its
    // objects (watched_check_interval_ after its last check).
    absl::Time next_watched_check = absl::InfinitePast();
    // When ApplyDesired last ran for it (a pass over its hooks, its waits).
    absl::Time last_pass = absl::InfinitePast();
  };
  enum class Removal { kDone, kHandingOver, kFailed };

  struct PlannedHook {
    const v1::ManifestObject* object;
    Hook hook;
  };
  struct HookPlan {
    // The hooks that run in each phase, by wave, then key.
    std::map<HookPhase, std::vector<PlannedHook>> phases;
    // Every hook's key string, whether it runs or not: none of these is applied.
    std::set<std::string> keys;
    // Hooks whose annotations do not parse (a control plane that did not check them).
    std::vector<v1::ObjectError> invalid;
  };
  enum class HookStep { kDone, kWaiting, kFailed };

  // Applies record.desired; fills `errors`; returns whether the status changed.
  bool ApplyDesired(Bundle& bundle, bool check_drift, std::vector<v1::ObjectError>* errors);
  bool SetStatus(Bundle& bundle, v1::StatusUpdate status);
  // The bundle's status for its desired revision, in `state` with `message` (the rest as
  // it was: health, counts).
  v1::StatusUpdate DesiredStatus(const Bundle& bundle, v1::SyncState state,
                                 const std::string& message) const;
  // The desired revision failed as a whole before anything of it was applied: `message`
  // is its one error and its status, tried again after the bundle's backoff.
  bool FailWhole(Bundle& bundle, const std::string& message, std::vector<v1::ObjectError>* errors);
  // Applies one object placed at `key`; records its hash, and whether gitfleet created it.
  absl::Status ApplyObject(const v1::ManifestObject& object, const std::string& key,
                           v1::AgentBundleRecord& record, const ApplyContext& context);
  // The hooks of `desired`'s sync phases, or with `removal` of its PreDelete and
  // PostDelete phases (run when the bundle is removed with its objects).
  HookPlan PlanHooks(const v1::RevisionRecord& desired, bool removal = false) const;
  // What keeps the objects of `passed` up to `wave` from being Healthy (reading again
  // those that are not), "" when nothing does.
  std::string WaveNotHealthy(const std::vector<const OrderedObject*>& passed, int wave,
                             const ApplyContext& context);
  // Runs `phase`'s hooks wave by wave, those of waves up to `up_to_wave`: starts the runs
  // not started, checks the running ones, applies delete policies. `detail` says what it
  // waits for or what failed.
  HookStep RunHookPhase(Bundle& bundle, const HookPlan& plan, HookPhase phase,
                        const ApplyContext& context, std::string* detail,
                        int up_to_wave = std::numeric_limits<int>::max());
  absl::StatusOr<v1::HookRun> StartHook(Bundle& bundle, const PlannedHook& planned, HookPhase phase,
                                        const ApplyContext& context);
  // Records why the attempt failed and runs (or goes on running) the SyncFail hooks.
  // Returns the status to report.
  v1::StatusUpdate FailAttempt(Bundle& bundle, const HookPlan& plan, const ApplyContext& context,
                               const std::string& failure);
  // Every desired object's health, remembering which have not settled; all Unknown
  // without asking when `target_down` says the target cannot answer.
  HealthSummary SummarizeHealth(Bundle& bundle, const absl::Status& target_down);
  // Reads unsettled objects again; returns whether the status changed.
  bool RecheckHealth(Bundle& bundle);
  void UpdateBundleGauges();
  // Why the serving control plane may not replace or remove `bundle` as `generation`
  // asks; "" when it may.
  std::string Refusal(const Bundle& bundle, int64_t generation) const;
  // Why the Namespace `ns` may not be deleted for `bundle`: another bundle's objects live
  // in it (deleting it would delete them). "" when none do.
  std::string NamespaceHeldByOthers(const std::string& ns, const std::string& bundle) const;
  // Turns `bundle`, removed with prune off, into a released record: what it applied and
  // what it left unmanaged before, listed as left unmanaged (bounded), which another
  // bundle may take over. Returns how many; none: its state is deleted, to be forgotten.
  int Release(Bundle& bundle);
  // A released bundle's pass: with `check_drift`, drops what is gone or no longer
  // labelled for it; saves a change. True when nothing is left and its state is deleted.
  bool CheckReleased(Bundle& bundle, bool check_drift);
  // Prunes what `bundle`'s inventory lists, for its removal. What could not be pruned
  // stays in the inventory, the record is kept (removing) and retried at next_retry;
  // returns true when nothing is left, and the record is deleted.
  bool PruneForRemoval(Bundle& bundle, int* pruned);
  // What holds up a removal's PostDelete hooks: the first of record.terminating still
  // finishing its deletion (those gone before it are dropped), or "" when none is.
  std::string StillDeleting(v1::AgentBundleRecord& record, const ApplyContext& context);
  // Whether `bundle`'s revision holds an object placed at `key` (true when unsure).
  bool Desires(const Bundle& bundle, const v1::ObjectKey& key) const;
  // Another held bundle whose revision holds an object placed at `key`; "" for none.
  std::string DesiredElsewhere(const v1::ObjectKey& key, const std::string& bundle) const;
  // Where the object `key` recorded for `record`'s bundle lives (Applier::ResolveKey), or
  // `key` as it is when the target cannot say now.
  v1::ObjectKey Placed(const v1::AgentBundleRecord& record, const v1::ObjectKey& key) const;
  // The bundle `record` leaves the object at `key` (where it lives) for, waiting for that
  // bundle's revision (record.handing_over); "" for none.
  std::string HandingOverTo(const v1::AgentBundleRecord& record, const v1::ObjectKey& key) const;
  // Whether `record` leaves an object in the Namespace `ns` for another bundle.
  bool HandsOverIn(const v1::AgentBundleRecord& record, const std::string& ns) const;
  // Adds what the control plane says other bundles hold now (BundleUpdate.handovers) to
  // `bundle`'s handing_over, for objects its inventory lists; drops the entries for what
  // its revision holds again.
  void RecordHandovers(Bundle& bundle, const google::protobuf::RepeatedPtrField<v1::Handover>& add);
  // `taker`'s revision arrived (or, `gone`, it left): other bundles' handovers to it of
  // objects it does not hold are over, and those bundles prune them on their next pass.
  void EndHandoversTo(const std::string& taker, bool gone);
  // The bundle `record` waits to take the object at (placed) `key` over from; "" if none.
  static std::string TakingOverFrom(const v1::AgentBundleRecord& record, const std::string& key);
  // Sets `bundle`'s taking_over to what the control plane says moves in from other bundles
  // (BundleUpdate.takeovers), for objects its revision holds and bundles the agent holds.
  void RecordTakeovers(Bundle& bundle, const google::protobuf::RepeatedPtrField<v1::Handover>& add);
  // `from` changed here (a new revision, or its removal): what other bundles waited to take
  // over from it, they take over or fail on at their next pass, due now.
  void EndTakeoversFrom(const std::string& from);
  // `taker` took over the object at `key` from `from`: it leaves from's inventory.
  void HandedOver(Bundle& from, const std::string& key);
  // Deletes what gitfleet created and releases what it found: kDone, or kFailed with
  // `error` (a Namespace another bundle's objects live in is one). What another bundle
  // now applies is handed over to it instead: left in place, never deleted (kDone). What
  // the control plane said another bundle holds, whose revision has not arrived yet, is
  // left in place and in the inventory for it (kHandingOver).
  Removal Remove(const v1::ObjectKey& key, const ApplyContext& context,
                 v1::AgentBundleRecord& record, std::string* error);

  Applier* const applier_;
  std::string serving_fleet_;
  bool trusted_ = true;
  // Bundles whose last update or removal was refused -> why.
  std::map<std::string, std::string> refused_;
  std::vector<std::string> moved_aside_;  // corrupt state files
  const absl::Duration health_interval_;
  Clock* const clock_;
  const absl::Duration hook_timeout_;
  BundleStateStore* const state_;
  AgentMetrics& metrics_;
  std::map<std::string, Bundle> bundles_;
  ChangeWatch* change_watch_ = nullptr;
  absl::Duration watch_check_interval_;
  absl::Duration watched_check_interval_;
  // Whether the change watch hears every object the bundle's drift check looks at.
  bool WatchedWhole(const Bundle& bundle) const;
  // What the change watch was last told: the bundles and revisions it was worked out from.
  std::string watched_;
  // Tells the change watch the kinds the bundles hold, when their revisions changed.
  void TellChangeWatch();
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_APPLY_RECONCILER_H_
