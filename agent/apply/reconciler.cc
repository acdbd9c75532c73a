#include "agent/apply/reconciler.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/apply/order.h"
#include "agent/health/health.h"
#include "common/agent_protocol.h"
#include "common/logging.h"
#include "common/manifest/object.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace gitfleet {
namespace {

// A status the change watch saw move has the bundle's health read at most this often.
constexpr absl::Duration kStatusReadGap = absl::Seconds(1);

// How many of the objects prune-off left behind (a bundle's, or a removed bundle's) a
// drift pass reads.
constexpr int kLeftChecksPerPass = 50;

std::unique_ptr<Backoff> NewBackoff() {
  return std::make_unique<Backoff>(absl::Seconds(1), absl::Minutes(5));
}

ObjectSet ToSet(const v1::RevisionRecord& record) {
  ObjectSet set;
  for (const v1::ManifestObject& object : record.objects()) set.Put(object);
  return set;
}

// Hooks, and objects whose hook annotations do not parse: neither is applied.
bool IsHookObject(const v1::ManifestObject& object) {
  absl::StatusOr<std::optional<Hook>> hook = HookOf(object);
  return !hook.ok() || hook->has_value();
}

// What prune-off left behind, as the record keeps it: the count, and the first few.
void ReportLeftUnmanaged(const v1::AgentBundleRecord& record, v1::StatusUpdate* status) {
  status->set_left_unmanaged_count(record.left_unmanaged_size());
  status->clear_left_unmanaged();
  for (int i = 0; i < record.left_unmanaged_size() && i < kMaxLeftUnmanaged; ++i) {
    *status->add_left_unmanaged() = record.left_unmanaged(i);
  }
}

bool StatusEquals(const v1::StatusUpdate& a, const v1::StatusUpdate& b) {
  v1::StatusUpdate x = a, y = b;
  x.clear_applied_time();
  y.clear_applied_time();
  return x.SerializeAsString() == y.SerializeAsString();
}

}  // namespace

Reconciler::Reconciler(Applier* applier, BundleStateStore* state, AgentMetrics& metrics,
                       absl::Duration health_interval, Clock* clock, absl::Duration hook_timeout)
    : applier_(applier),
      health_interval_(health_interval),
      clock_(clock),
      hook_timeout_(hook_timeout),
      state_(state),
      metrics_(metrics) {}

absl::Status Reconciler::Load() {
  absl::StatusOr<BundleStateStore::Loaded> loaded = state_->LoadAll();
  if (!loaded.ok()) return loaded.status();
  moved_aside_ = loaded->moved_aside;
  for (auto& [name, record] : loaded->records) {
    Bundle& bundle = bundles_[name];
    bundle.record = std::move(record);
    bundle.backoff = NewBackoff();
    // Counted until the next pass counts them again (a Namespace that waits with them too).
    bundle.handing_over = bundle.record.handing_over_size();
    // Resync goes on pruning what a removal left; what a release left has no status.
    if (bundle.record.removing() || bundle.record.released()) continue;
    v1::StatusUpdate& status = bundle.status;
    status.set_bundle(name);
    status.set_revision(bundle.record.desired().revision());
    status.set_commit(bundle.record.desired().commit());
    status.set_applied_revision(bundle.record.applied_revision());
    status.set_applied_commit(bundle.record.applied_commit());
    *status.mutable_applied_time() = bundle.record.applied_time();
    status.set_sync_state(bundle.record.last_status().sync_state());
    status.set_health(bundle.record.last_status().health());
    status.set_message(bundle.record.last_status().message());
    ReportLeftUnmanaged(bundle.record, &status);
    const v1::HookProgress& hooks = bundle.record.hooks();
    bundle.hooks_pending = !hooks.revision().empty() &&
                           hooks.revision() == bundle.record.desired().revision() && !hooks.done();
  }
  GF_LOG(INFO) << "state: " << bundles_.size() << " bundles held";
  UpdateBundleGauges();
  return absl::OkStatus();
}

void Reconciler::SetServingFleet(const std::string& fleet_id, bool trusted) {
  serving_fleet_ = fleet_id;
  trusted_ = trusted;
  if (trusted) refused_.clear();
}

void Reconciler::Adopt() {
  for (auto& [name, bundle] : bundles_) {
    bundle.record.set_generation(0);
    bundle.record.clear_fleet_id();
    if (absl::Status saved = state_->Save(bundle.record); !saved.ok()) {
      GF_LOG(ERROR) << "cannot record the adoption of bundle " << name << ": " << saved;
    }
  }
  refused_.clear();
}

std::string Reconciler::Refusal(const Bundle& bundle, int64_t generation) const {
  if (!trusted_) {
    return absl::StrCat("control plane of fleet ", serving_fleet_,
                        " is not the fleet this cluster was served by; it may not replace or "
                        "remove bundle ",
                        bundle.record.bundle(),
                        " until an operator runs: gitfleetctl cluster adopt CLUSTER");
  }
  if (generation > 0 && bundle.record.fleet_id() == serving_fleet_ &&
      generation < bundle.record.generation()) {
    return absl::StrCat("control plane behind: it offers generation ", generation, " of bundle ",
                        bundle.record.bundle(), ", this cluster applied generation ",
                        bundle.record.generation(),
                        "; keeping the newer (restore a newer backup, or adopt the cluster)");
  }
  return "";
}

std::vector<v1::ClusterCondition> Reconciler::Conditions() const {
  std::vector<v1::ClusterCondition> out;
  v1::ClusterCondition refusals;
  refusals.set_type("ControlPlaneTrust");
  refusals.set_ok(refused_.empty());
  if (!refused_.empty()) {
    refusals.set_reason(trusted_ ? "ControlPlaneBehind" : "ForeignFleet");
    refusals.set_message(absl::StrCat(
        refused_.size(), " bundles kept as they are; first: ", refused_.begin()->second));
  }
  out.push_back(std::move(refusals));
  v1::ClusterCondition removals;
  removals.set_type("Removal");
  removals.set_ok(true);
  int removing = 0;
  for (const auto& [name, bundle] : bundles_) {
    // What waits for another bundle to take it over is not left to prune.
    const int left = bundle.record.inventory_size() - bundle.handing_over;
    if (!bundle.record.removing() || (left <= 0 && !bundle.removal_hooks)) continue;
    if (removing++ == 0 && bundle.removal_hooks) {
      removals.set_ok(false);
      removals.set_reason("DeleteHooks");
      removals.set_message(
          absl::StrCat("bundle ", name, " was removed; ",
                       left > 0 ? absl::StrCat(left, left == 1 ? " object waits" : " objects wait",
                                               " for its delete hooks: ")
                                : "its delete hooks: ",
                       bundle.removal_error));
    } else if (removing == 1) {
      removals.set_ok(false);
      removals.set_reason("PruneIncomplete");
      removals.set_message(
          absl::StrCat("bundle ", name, " was removed, but ", left,
                       left == 1 ? " of its objects is" : " of its objects are",
                       " still there and tried again; first: ", bundle.removal_error));
    }
  }
  if (removing > 1) {
    removals.set_message(absl::StrCat(removals.message(), " (", removing, " bundles)"));
  }
  out.push_back(std::move(removals));
  // What bundles removed with prune off left (released records): not a fault, but no
  // bundle status shows it any more, so the cluster says it.
  v1::ClusterCondition left;
  left.set_type("LeftUnmanaged");
  left.set_ok(true);
  int released = 0;
  int objects = 0;
  for (const auto& [name, bundle] : bundles_) {
    if (!bundle.record.released()) continue;
    objects += bundle.record.left_unmanaged_size();
    if (released++ > 0) continue;
    std::vector<std::string> first;
    for (const v1::ObjectKey& key : bundle.record.left_unmanaged()) {
      if (first.size() == 3) {
        first.push_back("...");
        break;
      }
      first.push_back(KeyDisplay(key));
    }
    left.set_reason("RemovedWithoutPrune");
    left.set_message(absl::StrCat("bundle ", name, ", removed without pruning, left ",
                                  bundle.record.left_unmanaged_size(),
                                  bundle.record.left_unmanaged_size() == 1 ? " object" : " objects",
                                  " in place, unmanaged: ", absl::StrJoin(first, ", ")));
  }
  if (released > 1) {
    absl::StrAppend(left.mutable_message(), " (", released, " bundles, ", objects,
                    " objects in all)");
  }
  if (released > 0) {
    absl::StrAppend(left.mutable_message(),
                    "; another bundle may take them over, and they drop out of this once "
                    "deleted or relabelled");
  }
  out.push_back(std::move(left));
  if (!moved_aside_.empty()) {
    v1::ClusterCondition state;
    state.set_type("AgentState");
    state.set_ok(false);
    state.set_reason("CorruptStateFile");
    state.set_message(
        absl::StrCat(moved_aside_.size(), " state files were corrupt and moved aside (",
                     moved_aside_.front(), ".corrupt); their bundles were asked for again"));
    out.push_back(std::move(state));
  }
  return out;
}

std::vector<v1::HeldRevision> Reconciler::Held() const {
  std::vector<v1::HeldRevision> out;
  for (const auto& [name, bundle] : bundles_) {
    if (bundle.record.desired().revision().empty()) continue;
    v1::HeldRevision held;
    held.set_bundle(name);
    held.set_revision(bundle.record.desired().revision());
    out.push_back(held);
  }
  return out;
}

Reconciler::Outcome Reconciler::OnUpdate(const v1::BundleUpdate& update) {
  Outcome outcome;
  outcome.ack.set_bundle(update.bundle());
  outcome.ack.set_revision(update.revision());
  auto need_full = [&](const std::string& why) {
    GF_LOG(INFO) << "bundle " << update.bundle() << ": asking for the whole set (" << why << ")";
    outcome.ack.set_need_full(true);
    outcome.ack.set_message(why);
    return outcome;
  };

  auto it = bundles_.find(update.bundle());
  ObjectSet desired;
  if (update.base_revision().empty()) {
    metrics_.updates_received.Add({{"kind", "full"}}).Increment();
  } else {
    metrics_.updates_received.Add({{"kind", "delta"}}).Increment();
    if (it == bundles_.end() || it->second.record.desired().revision() != update.base_revision()) {
      return need_full("base revision not held");
    }
    desired = ToSet(it->second.record.desired());
  }
  for (const v1::ManifestObject& object : update.upserts()) desired.Put(object);
  for (const v1::ObjectKey& key : update.removed()) desired.Remove(KeyString(key));
  if (static_cast<int>(desired.size()) != update.object_count() ||
      ComputeRevision(desired, update.sync(), update.target_namespace()) != update.revision()) {
    if (!update.base_revision().empty()) return need_full("reconstructed set does not match");
    outcome.ack.set_ok(false);
    outcome.ack.set_message("update does not match its revision");
    return outcome;
  }

  if (it != bundles_.end() && !it->second.record.desired().revision().empty()) {
    if (std::string why = Refusal(it->second, update.generation()); !why.empty()) {
      GF_LOG(WARNING) << "bundle " << update.bundle() << ": refused revision "
                      << update.revision().substr(0, 12) << ": " << why;
      refused_[update.bundle()] = why;
      outcome.ack.set_ok(false);
      outcome.ack.set_refused(true);
      outcome.ack.set_message(why);
      return outcome;
    }
  }
  refused_.erase(update.bundle());
  if (it == bundles_.end()) {
    it = bundles_.emplace(update.bundle(), Bundle()).first;
    it->second.record.set_bundle(update.bundle());
    it->second.backoff = NewBackoff();
  }
  Bundle& bundle = it->second;
  // Back while its removal was still pruning: what is left is in the inventory, so the
  // new revision prunes it unless it holds it again.
  bundle.record.set_removing(false);
  bundle.record.clear_terminating();
  // Back after a removal with prune off: what that left stays unmanaged (listed, never
  // pruned) unless the new revision holds it again.
  bundle.record.set_released(false);
  bundle.removal_error.clear();
  bundle.removal_hooks = false;
  bundle.record.set_fleet_id(serving_fleet_);
  if (update.generation() > 0) bundle.record.set_generation(update.generation());
  v1::RevisionRecord& record = *bundle.record.mutable_desired();
  record.Clear();
  record.set_bundle(update.bundle());
  record.set_revision(update.revision());
  record.set_commit(update.commit());
  *record.mutable_committed_time() = update.committed_time();
  *record.mutable_sync() = update.sync();
  record.set_target_namespace(update.target_namespace());
  for (const auto& [key, object] : desired.objects()) *record.add_objects() = *object;
  RecordHandovers(bundle, update.handovers());
  RecordTakeovers(bundle, update.takeovers());
  // What others waited to take over from this bundle, its new revision has let go or not.
  EndTakeoversFrom(update.bundle());
  // What others left for this bundle and its revision does not hold is theirs to prune,
  // once that revision is the bundle's newest: the stable one a cluster runs until its
  // partition's turn says nothing of what the newest takes over.
  if (!update.interim()) EndHandoversTo(update.bundle(), /*gone=*/false);
  bundle.backoff->Reset();
  bundle.next_retry = absl::InfinitePast();
  // What the change watch heard was judged by the revision before (its ignore rules, say):
  // the next periodic check looks at the new one whole.
  bundle.next_watched_check = absl::InfinitePast();
  bundle.unsettled.clear();
  bundle.unsaved = true;  // the new desired set is not on disk yet

  std::vector<v1::ObjectError> errors;
  bool changed = ApplyDesired(bundle, /*check_drift=*/false, &errors);
  outcome.ack.set_ok(errors.empty());
  for (v1::ObjectError& error : errors) *outcome.ack.add_errors() = std::move(error);
  if (!errors.empty()) outcome.ack.set_message(bundle.status.message());
  if (changed) outcome.status = bundle.status;
  return outcome;
}

v1::StatusUpdate Reconciler::DesiredStatus(const Bundle& bundle, v1::SyncState state,
                                           const std::string& message) const {
  const v1::RevisionRecord& desired = bundle.record.desired();
  v1::StatusUpdate status = bundle.status;
  status.set_bundle(desired.bundle());
  status.set_revision(desired.revision());
  status.set_commit(desired.commit());
  status.set_sync_state(state);
  status.set_message(message);
  return status;
}

bool Reconciler::FailWhole(Bundle& bundle, const std::string& message,
                           std::vector<v1::ObjectError>* errors) {
  v1::ObjectError error;
  error.set_message(message);
  errors->push_back(std::move(error));
  v1::StatusUpdate status = DesiredStatus(bundle, v1::SYNC_STATE_FAILED, message);
  bundle.next_retry = clock_->Now() + bundle.backoff->Next();
  return SetStatus(bundle, std::move(status));
}

bool Reconciler::ApplyDesired(Bundle& bundle, bool check_drift,
                              std::vector<v1::ObjectError>* errors) {
  absl::Time start = clock_->Now();
  bundle.last_pass = start;
  v1::AgentBundleRecord& record = bundle.record;
  const v1::RevisionRecord& desired = record.desired();
  ApplyContext context{desired.bundle(), desired.target_namespace(),
                       desired.sync().create_namespace()};
  UseSyncOptions(desired.sync(), &context);
  // Objects moving in (record.taking_over) that the bundle they move from still holds:
  // waited for, not failed on. Only that bundle: a third one holding it is a conflict.
  std::set<std::string> held_by_giver;
  context.let_go = [this, &record, &held_by_giver, taker = desired.bundle()](
                       const std::string& owner, const v1::ObjectKey& key) {
    auto it = bundles_.find(owner);
    if (it == bundles_.end()) return false;
    // Removed with prune off: it left its objects to whoever wants them.
    if (it->second.record.released()) return true;
    // Left for this bundle (a removed bundle's too, which holds no revision any more).
    if (HandingOverTo(it->second.record, key) == taker) return true;
    if (!it->second.record.desired().revision().empty() && !Desires(it->second, key)) {
      return true;
    }
    if (!record.taking_over().empty() && TakingOverFrom(record, KeyString(key)) == owner) {
      held_by_giver.insert(KeyString(key));
    }
    return false;
  };
  context.holder = [this, taker = desired.bundle()](const v1::ObjectKey& key) {
    const std::string wanted = KeyString(key);
    for (const auto& [name, other] : bundles_) {
      if (name == taker) continue;
      for (const v1::ObjectKey& held : other.record.inventory()) {
        if (held.name() == key.name() && KeyString(held) == wanted) return name;
      }
    }
    return std::string();
  };

  // A bundle applied as a service account is applied as it or not at all: never as the
  // agent itself, whose rights are wider.
  if (absl::Status s = applier_->CanApplyAs(context); !s.ok()) {
    return FailWhole(bundle, absl::StrCat("nothing of this revision is applied: ", s.message()),
                     errors);
  }

  // A team's bundle stays within its namespaces: a revision with one object outside them
  // fails whole, before anything of it is applied or pruned (and is tried again: a kind
  // not served yet may be served later).
  if (!context.allowed_namespaces.empty()) {
    std::vector<std::string> outside;
    int count = 0;
    if (context.create_namespace && !desired.target_namespace().empty() &&
        !InAllowedNamespaces(context, desired.target_namespace())) {
      outside.push_back(absl::StrCat("its target namespace ", desired.target_namespace(),
                                     " (created for it) is not one of them"));
      ++count;
    }
    for (const v1::ManifestObject& object : desired.objects()) {
      absl::Status s = CheckAllowedNamespace(*applier_, object, context);
      if (s.ok()) continue;
      if (++count <= 3) outside.push_back(std::string(s.message()));
    }
    if (count > 0) {
      return FailWhole(
          bundle,
          absl::StrCat(count, count == 1 ? " object is" : " objects are",
                       " outside the bundle's namespaces, so nothing of this revision is applied: ",
                       absl::StrJoin(outside, "; "), count > 3 ? "; ..." : ""),
          errors);
    }
  }

  // Record the intent first when the inventory grows: a crash from here on leaves every
  // key we may create in the inventory, so it is pruned later if it leaves the bundle.
  // (A crash before the final save is otherwise harmless: the old record makes the
  // control plane resend the change.) Each save is an fsync of the whole record, so
  // skip it when nothing new could be created.
  //
  // Keys are recorded where the objects live (PlacedKey): an object written without a
  // namespace is recorded in the namespace it was applied to, so it is pruned from there
  // when the bundle's target namespace changes. When the target cannot place every
  // object now, this pass prunes nothing.
  //
  // Hooks are not objects of the bundle: never in the inventory, so never pruned. (A key
  // that was an object and is now a hook leaves the inventory without being pruned.)
  const std::string recorded = record.SerializeAsString();
  const HookPlan plan = PlanHooks(desired);
  std::vector<const v1::ManifestObject*> objects;  // the bundle's objects, hooks aside
  objects.reserve(desired.objects_size());
  for (const v1::ManifestObject& object : desired.objects()) {
    if (plan.keys.empty() || plan.keys.count(KeyString(object.key())) == 0) {
      objects.push_back(&object);
    }
  }
  bool placed_all = true;
  std::map<std::string, v1::ObjectKey> inventory;
  for (const v1::ObjectKey& stored : record.inventory()) {
    absl::StatusOr<v1::ObjectKey> key = applier_->ResolveKey(stored, context);
    if (!key.ok()) placed_all = false;
    inventory[KeyString(key.ok() ? *key : stored)] = key.ok() ? *key : stored;
  }
  for (const v1::ManifestObject& object : desired.objects()) {
    if (plan.keys.count(KeyString(object.key())) == 0) continue;
    inventory.erase(KeyString(object.key()));
    absl::StatusOr<v1::ObjectKey> key = applier_->PlacedKey(object, context);
    if (key.ok()) inventory.erase(KeyString(*key));
  }
  const size_t known = inventory.size();
  std::set<std::string> held_before;
  for (const auto& [k, key] : inventory) held_before.insert(k);
  // Keys new to the inventory whose apply the target refused (403: nothing was written):
  // they leave it again, so a later revision without them has nothing to prune.
  std::set<std::string> refused_new;
  std::map<const v1::ManifestObject*, std::string> placed;  // object -> its key string
  for (const v1::ManifestObject* object : objects) {
    absl::StatusOr<v1::ObjectKey> key = applier_->PlacedKey(*object, context);
    if (!key.ok()) placed_all = false;
    const v1::ObjectKey& k = key.ok() ? *key : object->key();
    placed[object] = KeyString(k);
    inventory[KeyString(k)] = k;
  }
  // The objects whose manifests ask Argo CD's PruneLast=true: remembered while they are in
  // the inventory, since one that leaves the bundle is no longer in the revision to ask.
  std::set<std::string> last_keys(record.prune_last().begin(), record.prune_last().end());
  for (const v1::ManifestObject* object : objects) {
    if (AsksPruneLast(*object)) {
      last_keys.insert(placed[object]);
    } else {
      last_keys.erase(placed[object]);
    }
  }
  absl::Status saved;
  if (inventory.size() != known) {
    record.clear_inventory();
    for (const auto& [k, key] : inventory) *record.add_inventory() = key;
    saved = state_->Save(record);
  }
  if (!saved.ok()) {
    return FailWhole(bundle, absl::StrCat("cannot record state: ", saved.message()), errors);
  }

  // The hooks of a revision not yet through all its phases.
  v1::HookProgress& hooks = *record.mutable_hooks();
  const bool with_hooks =
      !plan.phases.empty() && (hooks.revision() != desired.revision() || !hooks.done());
  bundle.hooks_pending = with_hooks;
  auto finish = [&](v1::StatusUpdate status) {
    if (bundle.unsaved || record.SerializeAsString() != recorded) {
      absl::Status saved = state_->Save(record);
      bundle.unsaved = !saved.ok();
      if (!saved.ok()) GF_LOG(ERROR) << "cannot record hook progress: " << saved;
    }
    return SetStatus(bundle, std::move(status));
  };
  if (with_hooks) {
    if (hooks.revision() != desired.revision()) {
      // A new revision: its hooks start from PreSync. Runs of hooks that left the bundle
      // are forgotten (they stay where they are, as any tool leaves them).
      v1::HookProgress next;
      next.set_revision(desired.revision());
      for (const auto& [key, live] : hooks.previous()) {
        if (plan.keys.count(key) > 0) (*next.mutable_previous())[key] = live;
      }
      hooks = std::move(next);
    }
    if (!hooks.failure().empty() && !hooks.attempt_over()) {
      for (const v1::ObjectError& e : plan.invalid) errors->push_back(e);
      v1::ObjectError error;
      error.set_message(hooks.failure());
      errors->push_back(std::move(error));
      return finish(FailAttempt(bundle, plan, context, hooks.failure()));
    }
    if (!hooks.failure().empty()) {
      // The failed attempt is over: this is the retry. It starts again from PreSync.
      hooks.clear_runs();
      hooks.clear_failure();
      hooks.set_attempt_over(false);
    }
    std::string detail;
    HookStep step = HookStep::kDone;
    if (plan.phases.count(HookPhase::kPreSync) > 0) {
      // The bundle's Namespaces first, so its PreSync hooks have somewhere to run (what
      // Argo CD's CreateNamespace does). A Namespace is a container, not a change.
      for (const v1::ManifestObject* object : objects) {
        if (!IsNamespace(object->key())) continue;
        const std::string& key = placed[object];
        auto previous = record.applied_hashes().find(key);
        if (previous != record.applied_hashes().end() &&
            previous->second == object->content_hash()) {
          continue;
        }
        if (absl::Status status = ApplyObject(*object, key, record, context); !status.ok()) {
          step = HookStep::kFailed;
          detail = absl::StrCat(KeyDisplay(object->key()),
                                " (before PreSync hooks): ", status.message());
          break;
        }
      }
    }
    if (step == HookStep::kDone) {
      step = RunHookPhase(bundle, plan, HookPhase::kPreSync, context, &detail);
    }
    if (step == HookStep::kFailed) {
      // Nothing of this revision is applied (its Namespaces aside) and nothing pruned.
      v1::ObjectError error;
      error.set_message(detail);
      errors->push_back(std::move(error));
      return finish(FailAttempt(bundle, plan, context, detail));
    }
    if (step == HookStep::kWaiting) {
      bundle.next_retry = clock_->Now() + health_interval_;
      return finish(DesiredStatus(bundle, v1::SYNC_STATE_APPLYING, detail));
    }
  }
  for (const v1::ObjectError& e : plan.invalid) errors->push_back(e);

  int applied = 0, unchanged = 0, drifted = 0;
  std::set<std::string> desired_keys;
  const std::vector<OrderedObject> order =
      ApplyOrder(objects, [this](const v1::ManifestObject& o) { return applier_->Namespaced(o); });
  // Sync waves gate while the revision is being applied (a drift correction of an applied
  // revision goes straight through). `waiting` is set when a wave holds the rest back.
  const bool gate_waves = record.applied_revision() != desired.revision();
  if (check_drift) {
    std::vector<const v1::ManifestObject*> in_order;
    in_order.reserve(order.size());
    for (const OrderedObject& o : order) in_order.push_back(o.object);
    applier_->BeginDriftCheck(in_order, context);
  } else if (gate_waves) {
    // What the new revision changes of what the bundle applied before (what it applies
    // first is read anyway): the live objects may have turned reconciling off since.
    std::vector<const v1::ManifestObject*> changing;
    for (const OrderedObject& o : order) {
      auto previous = record.applied_hashes().find(placed[o.object]);
      if (previous != record.applied_hashes().end() &&
          previous->second != o.object->content_hash()) {
        changing.push_back(o.object);
      }
    }
    if (!changing.empty()) applier_->BeginApply(changing, context);
  }
  absl::Status target_down;
  std::string waiting;        // what the sync still waits for
  std::string hook_failure;   // a Sync hook failed at a wave's gate
  bool stopped = false;       // the pass stopped at a wave's gate
  std::string takeover_wait;  // an object waits for another bundle to let go
  int takeover_waits = 0;
  std::set<std::string> taken;               // applied, so no longer waited for (see taking_over)
  std::optional<int> closed_wave;            // every wave up to this one is through
  std::vector<const OrderedObject*> passed;  // gated objects the pass went by
  // Lets the waves below `wave` through, lowest first: each one's Sync hooks succeeded and
  // its objects (and the lower waves') Healthy. False when the pass must stop here.
  auto through_below = [&](int64_t wave) {  // wider than a wave: one above INT_MAX fits
    std::set<int> waves;
    for (const OrderedObject* o : passed) {
      if (o->wave < wave && (!closed_wave || o->wave > *closed_wave)) waves.insert(o->wave);
    }
    if (with_hooks && plan.phases.count(HookPhase::kSync) > 0) {
      for (const PlannedHook& hook : plan.phases.at(HookPhase::kSync)) {
        if (hook.hook.wave < wave && (!closed_wave || hook.hook.wave > *closed_wave)) {
          waves.insert(hook.hook.wave);
        }
      }
    }
    for (int v : waves) {
      if (!errors->empty()) return false;  // a failed object stops the pass at the next wave
      if (with_hooks) {
        std::string detail;
        HookStep step = RunHookPhase(bundle, plan, HookPhase::kSync, context, &detail, v);
        if (step == HookStep::kFailed) {
          hook_failure = detail;
          return false;
        }
        if (step == HookStep::kWaiting) {
          waiting = detail;
          return false;
        }
      }
      waiting = WaveNotHealthy(passed, v, context);
      if (!waiting.empty()) return false;
      closed_wave = v;
    }
    return true;
  };
  for (const OrderedObject& ordered : order) {
    const v1::ManifestObject& object = *ordered.object;
    const std::string& key = placed[ordered.object];
    desired_keys.insert(key);
    if (gate_waves && ordered.gated && !stopped && target_down.ok()) {
      if (passed.empty() || ordered.wave != passed.back()->wave) {
        stopped = !through_below(ordered.wave);
      }
      passed.push_back(&ordered);
    }
    if (stopped) continue;  // a later pass gets here
    if (!target_down.ok()) {
      // The target is unreachable or refuses us: the rest would fail the same way, each
      // after its own retries. Report them and try the pass again later.
      v1::ObjectError error;
      *error.mutable_key() = object.key();
      error.set_message(absl::StrCat("not attempted: ", target_down.message()));
      errors->push_back(std::move(error));
      continue;
    }
    auto previous = record.applied_hashes().find(key);
    bool already =
        previous != record.applied_hashes().end() && previous->second == object.content_hash();
    if (already && check_drift) {
      absl::StatusOr<bool> in_sync = applier_->InSync(object, context);
      if (in_sync.status().code() == absl::StatusCode::kFailedPrecondition) {
        // Not ours to correct (another bundle claims it): report, do not re-apply.
        v1::ObjectError error;
        *error.mutable_key() = object.key();
        error.set_message(std::string(in_sync.status().message()));
        errors->push_back(std::move(error));
        continue;
      }
      if (in_sync.ok() && *in_sync) {
        ++unchanged;
        continue;
      }
      if (in_sync.ok() && !desired.sync().self_heal()) {
        ++drifted;  // reported, not corrected
        metrics_.drift_events.Increment();
        continue;
      }
      if (in_sync.ok()) {
        ++drifted;
        metrics_.drift_events.Increment();
        ++bundle.drift_corrections;
        metrics_.drift_corrections.Increment();
        GF_LOG(INFO) << "bundle " << desired.bundle() << ": " << KeyDisplay(object.key())
                     << " drifted; re-applying";
      }
    } else if (already) {
      ++unchanged;
      continue;
    }
    absl::Status status = ApplyObject(object, key, record, context);
    if (status.code() == absl::StatusCode::kUnavailable ||
        status.code() == absl::StatusCode::kUnauthenticated) {
      target_down = status;
    }
    if (status.ok()) {
      ++applied;
      if (!record.taking_over().empty()) taken.insert(key);
    } else if (std::string from = TakingOverFrom(record, key);
               !from.empty() && status.code() == absl::StatusCode::kFailedPrecondition &&
               held_by_giver.count(key) > 0) {
      // Moving in from a bundle whose revision letting go of it has not arrived yet.
      if (takeover_waits++ == 0) {
        takeover_wait = absl::StrCat(KeyDisplay(object.key()), " waits for bundle ", from,
                                     " to let go of it (it moves to this bundle)");
      }
    } else {
      if (status.code() == absl::StatusCode::kPermissionDenied && held_before.count(key) == 0 &&
          record.applied_hashes().count(key) == 0 &&
          std::find(record.created().begin(), record.created().end(), key) ==
              record.created().end()) {
        refused_new.insert(key);
      }
      v1::ObjectError error;
      *error.mutable_key() = object.key();
      error.set_message(std::string(status.message()));
      errors->push_back(std::move(error));
    }
  }
  if (!refused_new.empty()) {
    for (const std::string& key : refused_new) inventory.erase(key);
    auto* held = record.mutable_inventory();
    held->erase(std::remove_if(held->begin(), held->end(),
                               [&refused_new](const v1::ObjectKey& k) {
                                 return refused_new.count(KeyString(k)) > 0;
                               }),
                held->end());
  }
  // Sync hooks above the objects' waves wait for them too.
  if (gate_waves && !stopped && target_down.ok() && with_hooks &&
      plan.phases.count(HookPhase::kSync) > 0) {
    stopped = !through_below(int64_t{plan.phases.at(HookPhase::kSync).back().hook.wave} + 1);
  }
  if (check_drift) applier_->EndDriftCheck();
  metrics_.objects_unchanged.Increment(unchanged);
  if (!hook_failure.empty()) {
    v1::ObjectError error;
    error.set_message(hook_failure);
    errors->push_back(std::move(error));
    return finish(FailAttempt(bundle, plan, context, hook_failure));
  }

  // Sync hooks follow the objects; prune waits for them, and a failed attempt prunes
  // nothing.
  size_t prune_errors = 0;  // prunes run only once every object applied
  auto failure_message = [&] {
    const size_t failed = errors->size() - prune_errors;
    return absl::StrCat(
        failed > 0 ? absl::StrCat(failed, " of ", objects.size(), " objects failed")
                   : absl::StrCat(prune_errors, prune_errors == 1 ? " object" : " objects",
                                  " that left the bundle could not be pruned"),
        "; first: ", (*errors)[0].key().kind().empty() ? "" : KeyDisplay((*errors)[0].key()) + ": ",
        (*errors)[0].message(), stopped ? "; later sync waves wait" : "");
  };
  if (!record.taking_over().empty()) {
    auto* entries = record.mutable_taking_over();
    for (auto it = entries->begin(); it != entries->end();) {
      it = taken.count(KeyString(it->key())) > 0 ? entries->erase(it) : it + 1;
    }
  }
  if (!takeover_wait.empty() && waiting.empty()) {
    waiting = takeover_waits == 1 ? takeover_wait
                                  : absl::StrCat(takeover_wait, " (and ", takeover_waits - 1,
                                                 " more moving in from other bundles)");
  }
  if (with_hooks) {
    if (!errors->empty()) {
      FailAttempt(bundle, plan, context, failure_message());
    } else if (!stopped && takeover_wait.empty()) {
      std::string detail;
      HookStep step = RunHookPhase(bundle, plan, HookPhase::kSync, context, &detail);
      if (step == HookStep::kFailed) {
        v1::ObjectError error;
        error.set_message(detail);
        errors->push_back(std::move(error));
        return finish(FailAttempt(bundle, plan, context, detail));
      }
      if (step == HookStep::kWaiting) waiting = detail;
    }
  }
  const bool sync_waiting = !waiting.empty();
  // Prune only once every object of the revision is applied: a replacement that failed (or
  // a later wave not yet reached) keeps what it replaces running.
  const bool hold_prune = !errors->empty() || sync_waiting || stopped;
  // With prune-last (the bundle's, or Argo CD's PruneLast=true on the object as it was
  // applied), only once every object is Healthy too: the old Deployment of a renamed one
  // serves until the new one is ready. The revision counts as applied all the same.
  bundle.prune_waits = false;
  auto last = [&](const std::string& k) {
    return desired.sync().prune_last() || last_keys.count(k) > 0;
  };
  int last_waiting = 0;
  if (!hold_prune && desired.sync().prune() && target_down.ok() && placed_all) {
    for (const auto& [k, key] : inventory) last_waiting += desired_keys.count(k) == 0 && last(k);
  }
  if (last_waiting > 0) {
    for (int i : bundle.unsettled) {
      if (i < desired.objects_size()) applier_->Refresh(desired.objects(i), context);
    }
    const v1::HealthState now = SummarizeHealth(bundle, target_down).overall();
    if (now == v1::HEALTH_STATE_HEALTHY) {
      last_waiting = 0;
    } else {
      bundle.prune_waits = true;
      waiting = absl::StrCat(
          last_waiting,
          last_waiting == 1 ? " object that left the bundle waits"
                            : " objects that left the bundle wait",
          " for every object to be Healthy before it is pruned (",
          desired.sync().prune_last() ? "prune-last" : "PruneLast=true", "; now ",
          absl::AsciiStrToLower(v1::HealthState_Name(now).substr(sizeof("HEALTH_STATE_") - 1)),
          ")");
    }
  }

  // Prune what left the bundle. Without prune, gitfleet just stops managing it.
  int pruned = 0;
  int prune_held = 0;    // left the bundle; pruned once every object applies
  int handing_over = 0;  // left the bundle; in place for another bundle to take over
  int released = 0;
  std::vector<std::string> released_names;  // the first few, for the log
  std::vector<v1::ObjectKey> left;          // all of them
  std::vector<v1::ObjectKey> kept_inventory;
  std::vector<v1::ObjectKey> listed;
  for (const auto& [k, key] : inventory) listed.push_back(key);
  for (const v1::ObjectKey& key : PruneOrder(std::move(listed))) {
    std::string k = KeyString(key);
    if (desired_keys.count(k) > 0) {
      kept_inventory.push_back(key);
      continue;
    }
    if (!target_down.ok() || !placed_all || hold_prune) {
      kept_inventory.push_back(key);  // decided on a later pass
      if (hold_prune && desired.sync().prune()) ++prune_held;
      continue;
    }
    if (last_waiting > 0 && last(k)) {
      kept_inventory.push_back(key);  // once the revision is Healthy
      continue;
    }
    if (desired.sync().prune()) {
      std::string error_message;
      const Removal removal = Remove(key, context, record, &error_message);
      if (removal == Removal::kHandingOver) {
        ++handing_over;
        kept_inventory.push_back(key);
        continue;
      }
      if (removal == Removal::kFailed) {
        v1::ObjectError error;
        *error.mutable_key() = key;
        error.set_message(absl::StrCat("prune: ", error_message));
        errors->push_back(std::move(error));
        ++prune_errors;
        kept_inventory.push_back(key);
        continue;
      }
      ++pruned;
    } else {
      ++released;
      if (released_names.size() < 5) released_names.push_back(KeyDisplay(key));
      left.push_back(key);
    }
    record.mutable_applied_hashes()->erase(k);
  }
  if (released > 0) {
    // Said once per revision: someone will look for what a rollback with --prune=false (or
    // a bundle without --prune) left in the cluster.
    GF_LOG(INFO) << "bundle " << desired.bundle() << " revision "
                 << desired.revision().substr(0, 12) << ": " << released
                 << " objects left it and stay applied, no longer managed (prune is off): "
                 << absl::StrJoin(released_names, ", ")
                 << (released > static_cast<int>(released_names.size()) ? ", ..." : "");
  }
  record.clear_inventory();
  record.clear_prune_last();
  for (v1::ObjectKey& key : kept_inventory) {
    if (last_keys.count(KeyString(key)) > 0) record.add_prune_last(KeyString(key));
    *record.add_inventory() = std::move(key);
  }
  if (!record.handing_over().empty()) RecordHandovers(bundle, {});  // what is over goes
  if (handing_over != bundle.handing_over && handing_over > 0) {
    GF_LOG(INFO) << "bundle " << desired.bundle() << ": " << handing_over
                 << " objects that left it stay in place for " << record.handing_over(0).bundle()
                 << (record.handing_over_size() > 1 ? " and other bundles" : "")
                 << ", whose revision holding them has not arrived yet";
  }
  bundle.handing_over = handing_over;
  // What prune-off left is listed (status.left_unmanaged) until it comes back into a
  // revision or, looked at with the drift, is gone or someone else's: a few a pass, in
  // turn (kept objects are usually kept for good; reading them all each pass would be a
  // steady load on the API server for nothing). The list keeps its order: a record that
  // did not change is not written again.
  {
    std::vector<v1::ObjectKey> still;
    std::set<std::string> listed_keys;
    const int listed = record.left_unmanaged_size();
    const int from = bundle.left_checked_from < listed ? bundle.left_checked_from : 0;
    const bool read = check_drift && target_down.ok();
    for (int i = 0; i < listed; ++i) {
      const v1::ObjectKey& key = record.left_unmanaged(i);
      const std::string k = KeyString(key);
      if (desired_keys.count(k) > 0 || !listed_keys.insert(k).second) continue;
      if (read && (i - from + listed) % listed < kLeftChecksPerPass) {
        absl::StatusOr<bool> there = applier_->LeftBehind(key, context);
        if (there.ok() && !*there) {
          GF_LOG(INFO) << "bundle " << desired.bundle() << ": " << KeyDisplay(key)
                       << ", left unmanaged, is gone or no longer labelled the bundle's";
          continue;
        }
      }
      still.push_back(key);
    }
    if (read) bundle.left_checked_from = from + kLeftChecksPerPass;
    for (v1::ObjectKey& key : left) {
      if (listed_keys.insert(KeyString(key)).second) still.push_back(std::move(key));
    }
    if (still.size() > static_cast<size_t>(kMaxLeftUnmanagedKept)) {
      still.erase(still.begin(), still.end() - kMaxLeftUnmanagedKept);  // the oldest go
    }
    record.clear_left_unmanaged();
    for (v1::ObjectKey& key : still) *record.add_left_unmanaged() = std::move(key);
  }
  // Hashes are kept for desired objects only (a key whose placement changed leaves one).
  for (auto it = record.mutable_applied_hashes()->begin();
       it != record.mutable_applied_hashes()->end();) {
    if (desired_keys.count(it->first) == 0) {
      it = record.mutable_applied_hashes()->erase(it);
    } else {
      ++it;
    }
  }

  // Every object of the revision is applied (PostSync hooks may still be to come).
  const bool objects_applied = errors->empty() && !sync_waiting && !stopped;
  if (with_hooks && errors->empty() && waiting.empty()) {
    // PostSync waits for the objects to be Healthy: read again what had not settled.
    for (int i : bundle.unsettled) {
      if (i < desired.objects_size()) applier_->Refresh(desired.objects(i), context);
    }
  }
  HealthSummary health = SummarizeHealth(bundle, target_down);
  if (with_hooks && errors->empty() && waiting.empty()) {
    if (health.overall() != v1::HEALTH_STATE_HEALTHY) {
      waiting = absl::StrCat(
          "PostSync hooks wait for every object to be Healthy (now ",
          absl::AsciiStrToLower(
              v1::HealthState_Name(health.overall()).substr(sizeof("HEALTH_STATE_") - 1)),
          ")");
    } else {
      std::string detail;
      HookStep step = RunHookPhase(bundle, plan, HookPhase::kPostSync, context, &detail);
      if (step == HookStep::kFailed) {
        v1::ObjectError error;
        error.set_message(detail);
        errors->push_back(std::move(error));
      } else if (step == HookStep::kWaiting) {
        waiting = detail;
      } else {
        hooks.set_done(true);
        bundle.hooks_pending = false;
      }
    }
  }

  v1::StatusUpdate status;
  status.set_bundle(desired.bundle());
  status.set_revision(desired.revision());
  status.set_commit(desired.commit());
  status.set_health(health.overall());
  for (const v1::ResourceHealth& h : health.unhealthy()) *status.add_unhealthy_resources() = h;
  status.set_drift_corrections(bundle.drift_corrections);
  if (with_hooks && !errors->empty() && hooks.failure().empty()) {
    // PostSync failed: the objects stay applied; the attempt fails all the same.
    FailAttempt(bundle, plan, context, (*errors)[0].message());
  }
  if (objects_applied && record.applied_revision() != desired.revision()) {
    record.set_applied_revision(desired.revision());
    record.set_applied_commit(desired.commit());
    *record.mutable_applied_time() = ToProtoTime(clock_->Now());
  }
  if (errors->empty() && !waiting.empty()) {
    status.set_sync_state(v1::SYNC_STATE_APPLYING);
    status.set_message(waiting);
    bundle.next_retry = clock_->Now() + health_interval_;
  } else if (errors->empty()) {
    bundle.backoff->Reset();
    bundle.next_retry = absl::InfiniteFuture();
    status.set_sync_state(drifted > 0 && !desired.sync().self_heal() ? v1::SYNC_STATE_OUT_OF_SYNC
                                                                     : v1::SYNC_STATE_SYNCED);
    if (drifted > 0 && !desired.sync().self_heal()) {
      status.set_message(absl::StrCat(drifted, " objects drifted (self-heal is off)"));
    }
    if (handing_over > 0) {
      status.set_message(absl::StrCat(status.message(), status.message().empty() ? "" : "; ",
                                      handing_over,
                                      handing_over == 1 ? " object that left the bundle stays"
                                                        : " objects that left the bundle stay",
                                      " in place for bundle ", record.handing_over(0).bundle(),
                                      ", which holds it now and has not applied it here yet"));
    }
  } else {
    status.set_sync_state(v1::SYNC_STATE_FAILED);
    status.set_message(absl::StrCat(
        with_hooks && !hooks.failure().empty() ? hooks.failure() : failure_message(),
        prune_held > 0 ? absl::StrCat("; ", prune_held,
                                      prune_held == 1 ? " object that left the bundle is"
                                                      : " objects that left the bundle are",
                                      " pruned once every object applies")
                       : ""));
    bundle.next_retry = clock_->Now() + bundle.backoff->Next();
  }
  status.set_applied_revision(record.applied_revision());
  status.set_applied_commit(record.applied_commit());
  *status.mutable_applied_time() = record.applied_time();
  record.mutable_last_status()->set_revision(status.revision());
  record.mutable_last_status()->set_sync_state(status.sync_state());
  record.mutable_last_status()->set_health(status.health());
  record.mutable_last_status()->set_message(status.message());
  if (bundle.unsaved || record.SerializeAsString() != recorded) {
    saved = state_->Save(record);
    bundle.unsaved = !saved.ok();
    if (!saved.ok()) {
      // What was applied stays applied; the record of it waits for the disk. Said in the
      // status (and the ack), and retried with backoff until it lands.
      GF_LOG(ERROR) << "cannot record applied state: " << saved;
      v1::ObjectError error;
      error.set_message(absl::StrCat("cannot record the agent's state: ", saved.message()));
      errors->push_back(error);
      status.set_sync_state(v1::SYNC_STATE_FAILED);
      status.set_message(absl::StrCat(error.message(), " (what was applied stays; retrying)"));
      bundle.next_retry = clock_->Now() + bundle.backoff->Next();
    }
  }

  metrics_.apply_seconds.Observe(absl::ToDoubleSeconds(clock_->Now() - start));
  if (applied > 0 || pruned > 0 || !errors->empty()) {
    GF_LOG(INFO) << "bundle " << desired.bundle() << " revision "
                 << desired.revision().substr(0, 12) << ": applied " << applied << ", pruned "
                 << pruned << ", unchanged " << unchanged << ", failed " << errors->size();
  }
  return SetStatus(bundle, status);
}

absl::Status Reconciler::ApplyObject(const v1::ManifestObject& object, const std::string& key,
                                     v1::AgentBundleRecord& record, const ApplyContext& context) {
  const bool created_before =
      std::find(record.created().begin(), record.created().end(), key) != record.created().end();
  const bool first = record.applied_hashes().count(key) == 0 && !created_before;
  absl::Status status = SyncWave(object).status();
  if (status.ok()) status = CheckAllowedNamespace(*applier_, object, context);
  if (status.ok()) {
    absl::StatusOr<ApplyResult> result = applier_->Apply(object, context, first);
    status = result.status();
    if (result.ok() && result->created && !created_before) record.add_created(key);
    if (result.ok() && !result->taken_from.empty() && !created_before) {
      // Moved from another bundle: what gitfleet created stays so, whichever bundle holds it.
      auto from = bundles_.find(result->taken_from);
      if (from != bundles_.end()) {
        const auto& theirs = from->second.record.created();
        if (std::find(theirs.begin(), theirs.end(), key) != theirs.end()) record.add_created(key);
        HandedOver(from->second, key);
      }
      GF_LOG(INFO) << "bundle " << record.bundle() << ": took over " << key << " from bundle "
                   << result->taken_from << ", which no longer applies it";
    }
  }
  metrics_.objects_applied.Add({{"result", status.ok() ? "ok" : "error"}}).Increment();
  if (status.ok()) (*record.mutable_applied_hashes())[key] = object.content_hash();
  return status;
}

std::string Reconciler::WaveNotHealthy(const std::vector<const OrderedObject*>& passed, int wave,
                                       const ApplyContext& context) {
  std::vector<v1::ResourceHealth> not_healthy;
  for (const OrderedObject* o : passed) {
    if (o->wave > wave) continue;
    v1::ResourceHealth h = applier_->Health(*o->object, context);
    if (h.health() != v1::HEALTH_STATE_HEALTHY) {
      applier_->Refresh(*o->object, context);
      h = applier_->Health(*o->object, context);
    }
    if (h.health() != v1::HEALTH_STATE_HEALTHY) not_healthy.push_back(std::move(h));
  }
  if (not_healthy.empty()) return "";
  const v1::ResourceHealth& first = not_healthy.front();
  return absl::StrCat(
      "later sync waves wait for wave ", wave, " to be Healthy: ", KeyDisplay(first.key()), " is ",
      absl::AsciiStrToLower(
          v1::HealthState_Name(first.health()).substr(sizeof("HEALTH_STATE_") - 1)),
      first.message().empty() ? "" : ": ", first.message(),
      not_healthy.size() > 1 ? absl::StrCat(" (", not_healthy.size() - 1, " more)") : "");
}

namespace {

bool DeletePhase(HookPhase phase) {
  return phase == HookPhase::kPreDelete || phase == HookPhase::kPostDelete;
}

}  // namespace

Reconciler::HookPlan Reconciler::PlanHooks(const v1::RevisionRecord& desired, bool removal) const {
  HookPlan plan;
  for (const v1::ManifestObject& object : desired.objects()) {
    absl::StatusOr<std::optional<Hook>> hook = HookOf(object);
    if (hook.ok() && !hook->has_value()) continue;
    plan.keys.insert(KeyString(object.key()));
    if (!hook.ok()) {
      v1::ObjectError error;
      *error.mutable_key() = object.key();
      error.set_message(std::string(hook.status().message()));
      plan.invalid.push_back(std::move(error));
      continue;
    }
    for (HookPhase phase : (*hook)->phases) {
      if (DeletePhase(phase) == removal) plan.phases[phase].push_back({&object, **hook});
    }
  }
  for (auto& [phase, hooks] : plan.phases) {
    // Objects arrive in key order: a stable sort keeps it within a wave.
    std::stable_sort(hooks.begin(), hooks.end(), [](const PlannedHook& a, const PlannedHook& b) {
      return a.hook.wave < b.hook.wave;
    });
  }
  return plan;
}

namespace {

std::string DescribeRun(const v1::HookRun& run) {
  return absl::StrCat(run.phase(), " hook ", KeyDisplay(run.live()));
}

v1::HookRun* FindRun(v1::HookProgress& progress, const std::string& hook,
                     const std::string& phase) {
  for (v1::HookRun& run : *progress.mutable_runs()) {
    if (run.hook() == hook && run.phase() == phase) return &run;
  }
  return nullptr;
}

bool Transient(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kUnauthenticated ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
}

}  // namespace

absl::StatusOr<v1::HookRun> Reconciler::StartHook(Bundle& bundle, const PlannedHook& planned,
                                                  HookPhase phase, const ApplyContext& context) {
  v1::HookProgress& progress = *bundle.record.mutable_hooks();
  const std::string key = KeyString(planned.object->key());
  if (planned.hook.delete_before_creation) {
    auto previous = progress.previous().find(key);
    if (previous != progress.previous().end()) {
      GF_RETURN_IF_ERROR(applier_->DeleteHook(previous->second, context));
      progress.mutable_previous()->erase(key);
    }
    if (!planned.hook.generated_name) {
      // A named hook's earlier run, recorded or not (the agent's state may be newer).
      absl::StatusOr<v1::ObjectKey> placed = applier_->PlacedKey(*planned.object, context);
      if (placed.ok()) GF_RETURN_IF_ERROR(applier_->DeleteHook(*placed, context));
    }
  }
  GF_RETURN_IF_ERROR(CheckAllowedNamespace(*applier_, *planned.object, context));
  absl::StatusOr<v1::ObjectKey> live = applier_->CreateHook(*planned.object, context);
  if (!live.ok()) return live.status();
  v1::HookRun run;
  run.set_hook(key);
  run.set_phase(HookPhaseName(phase));
  *run.mutable_live() = *live;
  run.set_state(v1::HookRun::RUNNING);
  *run.mutable_started() = ToProtoTime(clock_->Now());
  (*progress.mutable_previous())[key] = *live;
  GF_LOG(INFO) << "bundle " << bundle.record.bundle() << ": started " << DescribeRun(run);
  return run;
}

Reconciler::HookStep Reconciler::RunHookPhase(Bundle& bundle, const HookPlan& plan, HookPhase phase,
                                              const ApplyContext& context, std::string* detail,
                                              int up_to_wave) {
  auto planned_hooks = plan.phases.find(phase);
  if (planned_hooks == plan.phases.end()) return HookStep::kDone;
  const std::vector<PlannedHook>& hooks = planned_hooks->second;
  v1::HookProgress& progress = *bundle.record.mutable_hooks();
  const std::string phase_name = HookPhaseName(phase);
  const std::string phase_label = absl::AsciiStrToLower(phase_name);
  for (size_t begin = 0; begin < hooks.size() && hooks[begin].hook.wave <= up_to_wave;) {
    size_t end = begin;
    while (end < hooks.size() && hooks[end].hook.wave == hooks[begin].hook.wave) ++end;
    std::vector<std::string> running, failed;
    for (size_t i = begin; i < end; ++i) {
      const PlannedHook& planned = hooks[i];
      const std::string key = KeyString(planned.object->key());
      v1::HookRun* run = FindRun(progress, key, phase_name);
      if (run == nullptr) {
        absl::StatusOr<v1::HookRun> started = StartHook(bundle, planned, phase, context);
        const std::string what =
            absl::StrCat(phase_name, " hook ", KeyDisplay(planned.object->key()));
        if (!started.ok() && Transient(started.status())) {
          running.push_back(absl::StrCat(what, ": not started yet: ", started.status().message()));
          continue;
        }
        if (!started.ok()) {
          metrics_.hook_runs.Add({{"phase", phase_label}, {"result", "failed"}}).Increment();
          failed.push_back(
              absl::StrCat(what, " could not be created: ", started.status().message()));
          continue;
        }
        run = progress.add_runs();
        *run = *std::move(started);
        // Recorded before it is waited for: a restart waits for this run, not another.
        if (absl::Status saved = state_->Save(bundle.record); !saved.ok()) {
          GF_LOG(ERROR) << "cannot record " << DescribeRun(*run) << ": " << saved;
        }
      }
      if (run->state() == v1::HookRun::RUNNING) {
        absl::StatusOr<HookStatus> status = applier_->CheckHook(run->live(), context);
        const bool late = clock_->Now() - FromProtoTime(run->started()) > hook_timeout_;
        if (!status.ok() && !late) {
          running.push_back(absl::StrCat(DescribeRun(*run), ": ", status.status().message()));
          continue;
        }
        if (late && (!status.ok() || status->state == HookStatus::kRunning)) {
          status = HookStatus{
              HookStatus::kFailed,
              absl::StrCat("did not finish within ", absl::FormatDuration(hook_timeout_))};
        }
        if (status->state == HookStatus::kRunning) {
          running.push_back(absl::StrCat(DescribeRun(*run), ": ", status->message));
          continue;
        }
        const bool succeeded = status->state == HookStatus::kSucceeded;
        run->set_state(succeeded ? v1::HookRun::SUCCEEDED : v1::HookRun::FAILED);
        run->set_message(status->message);
        metrics_.hook_runs
            .Add({{"phase", phase_label}, {"result", succeeded ? "succeeded" : "failed"}})
            .Increment();
        GF_LOG(INFO) << "bundle " << bundle.record.bundle() << ": " << DescribeRun(*run)
                     << (succeeded ? " succeeded" : " failed: ")
                     << (succeeded ? "" : status->message);
        if (succeeded ? planned.hook.delete_on_success : planned.hook.delete_on_failure) {
          absl::Status deleted = applier_->DeleteHook(run->live(), context);
          if (deleted.ok()) {
            progress.mutable_previous()->erase(key);
          } else {
            // Left for BeforeHookCreation, or for an operator.
            GF_LOG(WARNING) << "cannot delete " << DescribeRun(*run) << ": " << deleted;
          }
        }
      }
      if (run->state() == v1::HookRun::FAILED) {
        failed.push_back(absl::StrCat(DescribeRun(*run), " failed: ", run->message()));
      }
    }
    if (!failed.empty()) {
      *detail = failed.size() == 1
                    ? failed[0]
                    : absl::StrCat(failed.size(), " hooks failed; first: ", failed[0]);
      return HookStep::kFailed;
    }
    if (!running.empty()) {
      *detail = running.size() == 1
                    ? absl::StrCat("waiting for ", running[0])
                    : absl::StrCat("waiting for ", running.size(), " hooks; first: ", running[0]);
      return HookStep::kWaiting;
    }
    begin = end;
  }
  return HookStep::kDone;
}

v1::StatusUpdate Reconciler::FailAttempt(Bundle& bundle, const HookPlan& plan,
                                         const ApplyContext& context, const std::string& failure) {
  v1::HookProgress& progress = *bundle.record.mutable_hooks();
  progress.set_failure(failure);
  std::string detail;
  const HookStep step = RunHookPhase(bundle, plan, HookPhase::kSyncFail, context, &detail);
  if (step == HookStep::kFailed) {
    GF_LOG(WARNING) << "bundle " << bundle.record.bundle() << ": " << detail;
  }
  progress.set_attempt_over(step != HookStep::kWaiting);
  bundle.hooks_pending = true;
  bundle.next_retry =
      clock_->Now() + (step == HookStep::kWaiting ? health_interval_ : bundle.backoff->Next());
  return DesiredStatus(
      bundle, v1::SYNC_STATE_FAILED,
      step == HookStep::kWaiting ? absl::StrCat(failure, "; SyncFail hooks running") : failure);
}

HealthSummary Reconciler::SummarizeHealth(Bundle& bundle, const absl::Status& target_down) {
  const v1::RevisionRecord& desired = bundle.record.desired();
  ApplyContext context{desired.bundle(), desired.target_namespace(),
                       desired.sync().create_namespace()};
  UseSyncOptions(desired.sync(), &context);
  HealthSummary health;
  bundle.unsettled.clear();
  for (int i = 0; i < desired.objects_size(); ++i) {
    if (IsHookObject(desired.objects(i))) continue;  // a hook's runs have no health here
    v1::ResourceHealth h;
    if (target_down.ok()) {
      h = applier_->Health(desired.objects(i), context);
    } else {
      *h.mutable_key() = desired.objects(i).key();
      h.set_health(v1::HEALTH_STATE_UNKNOWN);
      h.set_message(absl::StrCat("not checked: ", target_down.message()));
    }
    if (h.health() != v1::HEALTH_STATE_HEALTHY && h.health() != v1::HEALTH_STATE_DEGRADED) {
      bundle.unsettled.push_back(i);
    }
    health.Add(h);
  }
  bundle.health_delay = health_interval_;
  bundle.health_read = clock_->Now();
  bundle.next_health_check = clock_->Now() + health_interval_;
  return health;
}

bool Reconciler::RecheckHealth(Bundle& bundle) {
  const v1::RevisionRecord& desired = bundle.record.desired();
  ApplyContext context{desired.bundle(), desired.target_namespace(),
                       desired.sync().create_namespace()};
  UseSyncOptions(desired.sync(), &context);
  for (int i : bundle.unsettled) {
    if (i < desired.objects_size()) applier_->Refresh(desired.objects(i), context);
  }
  const absl::Duration delay = bundle.health_delay;
  HealthSummary health = SummarizeHealth(bundle, absl::OkStatus());
  v1::StatusUpdate status = bundle.status;
  status.set_health(health.overall());
  status.clear_unhealthy_resources();
  for (const v1::ResourceHealth& h : health.unhealthy()) *status.add_unhealthy_resources() = h;
  bool changed = SetStatus(bundle, std::move(status));
  if (!changed) {
    // Something that never settles (a LoadBalancer no controller serves) is read less and
    // less often, down to once a minute.
    bundle.health_delay = std::min(absl::Minutes(1), delay * 2);
    bundle.next_health_check = clock_->Now() + bundle.health_delay;
  }
  return changed;
}

bool Reconciler::SetStatus(Bundle& bundle, v1::StatusUpdate status) {
  ReportLeftUnmanaged(bundle.record, &status);
  bool changed = !StatusEquals(bundle.status, status);
  bundle.status = std::move(status);
  UpdateBundleGauges();
  return changed;
}

std::string Reconciler::NamespaceHeldByOthers(const std::string& ns,
                                              const std::string& bundle) const {
  for (const auto& [name, other] : bundles_) {
    if (name == bundle) continue;
    int held = 0;
    const v1::ObjectKey* first = nullptr;
    for (const v1::ObjectKey& key : other.record.inventory()) {
      if (key.namespace_() != ns) continue;
      if (first == nullptr) first = &key;
      ++held;
    }
    // What it left there with prune off is no less in it.
    int left = 0;
    for (const v1::ObjectKey& key : other.record.left_unmanaged()) {
      if (key.namespace_() != ns) continue;
      if (first == nullptr) first = &key;
      ++left;
    }
    if (held == 0 && left > 0) {
      return absl::StrCat("bundle ", name, " left ", left, left == 1 ? " object" : " objects",
                          " in it unmanaged (prune off: ", KeyDisplay(*first),
                          left > 1 ? ", ..." : "",
                          "); deleting the Namespace would delete them, so it is pruned once "
                          "they are gone");
    }
    if (held > 0) {
      return absl::StrCat("bundle ", name, " still applies ", held,
                          held == 1 ? " object" : " objects", " in it (", KeyDisplay(*first),
                          held > 1 ? ", ..." : "",
                          "); deleting the Namespace would delete them, so it is pruned once "
                          "they are gone");
    }
  }
  return "";
}

bool Reconciler::Desires(const Bundle& bundle, const v1::ObjectKey& key) const {
  const v1::RevisionRecord& desired = bundle.record.desired();
  ApplyContext context{desired.bundle(), desired.target_namespace(),
                       desired.sync().create_namespace()};
  UseSyncOptions(desired.sync(), &context);
  for (const v1::ManifestObject& object : desired.objects()) {
    const v1::ObjectKey& k = object.key();
    if (k.name() != key.name() || k.kind() != key.kind() || k.group() != key.group()) continue;
    if (IsHookObject(object)) continue;
    absl::StatusOr<v1::ObjectKey> placed = applier_->PlacedKey(object, context);
    if (!placed.ok() || placed->namespace_() == key.namespace_()) return true;
  }
  return false;
}

std::string Reconciler::DesiredElsewhere(const v1::ObjectKey& key,
                                         const std::string& bundle) const {
  for (const auto& [name, other] : bundles_) {
    if (name == bundle || other.record.desired().revision().empty()) continue;
    if (Desires(other, key)) return name;
  }
  return "";
}

v1::ObjectKey Reconciler::Placed(const v1::AgentBundleRecord& record,
                                 const v1::ObjectKey& key) const {
  ApplyContext context{record.bundle(), record.desired().target_namespace(),
                       record.desired().sync().create_namespace()};
  UseSyncOptions(record.desired().sync(), &context);
  absl::StatusOr<v1::ObjectKey> placed = applier_->ResolveKey(key, context);
  return placed.ok() ? *std::move(placed) : key;
}

std::string Reconciler::HandingOverTo(const v1::AgentBundleRecord& record,
                                      const v1::ObjectKey& key) const {
  const std::string k = KeyString(key);
  for (const v1::Handover& handover : record.handing_over()) {
    if (KeyString(Placed(record, handover.key())) == k) return handover.bundle();
  }
  return "";
}

std::string Reconciler::TakingOverFrom(const v1::AgentBundleRecord& record,
                                       const std::string& key) {
  for (const v1::Handover& takeover : record.taking_over()) {
    if (KeyString(takeover.key()) == key) return takeover.bundle();
  }
  return "";
}

bool Reconciler::HandsOverIn(const v1::AgentBundleRecord& record, const std::string& ns) const {
  for (const v1::Handover& handover : record.handing_over()) {
    if (Placed(record, handover.key()).namespace_() == ns) return true;
  }
  return false;
}

void Reconciler::RecordHandovers(Bundle& bundle,
                                 const google::protobuf::RepeatedPtrField<v1::Handover>& add) {
  v1::AgentBundleRecord& record = bundle.record;
  if (add.empty() && record.handing_over().empty()) return;
  std::set<std::string> inventory;
  for (const v1::ObjectKey& stored : record.inventory()) {
    inventory.insert(KeyString(Placed(record, stored)));
  }
  // Bounded by the inventory: one entry per object the bundle applied, the newest word on
  // it first.
  google::protobuf::RepeatedPtrField<v1::Handover> kept;
  std::set<std::string> seen;
  auto keep = [&](const v1::Handover& handover, bool added) {
    if (handover.bundle().empty() || handover.bundle() == record.bundle()) return;
    const v1::ObjectKey key = Placed(record, handover.key());
    const std::string k = KeyString(key);
    if (inventory.count(k) == 0 || !seen.insert(k).second) return;
    if (Desires(bundle, key)) return;  // its own again
    if (added) {
      GF_LOG(INFO) << "bundle " << record.bundle() << ": " << KeyDisplay(key)
                   << " left it for bundle " << handover.bundle()
                   << " (the control plane says that bundle holds it now): left in place for "
                      "it, not deleted";
    }
    *kept.Add() = handover;
  };
  for (const v1::Handover& handover : add) keep(handover, true);
  for (const v1::Handover& handover : record.handing_over()) keep(handover, false);
  record.mutable_handing_over()->Swap(&kept);
}

void Reconciler::RecordTakeovers(Bundle& bundle,
                                 const google::protobuf::RepeatedPtrField<v1::Handover>& add) {
  v1::AgentBundleRecord& record = bundle.record;
  if (add.empty() && record.taking_over().empty()) return;
  google::protobuf::RepeatedPtrField<v1::Handover> kept;
  std::set<std::string> seen;
  // The newest word first; what earlier updates named stands until the other bundle
  // changes here (a delta names only the objects it carries).
  auto keep = [&](const v1::Handover& takeover) {
    if (takeover.bundle() == record.bundle() || bundles_.count(takeover.bundle()) == 0) return;
    const v1::ObjectKey key = Placed(record, takeover.key());
    if (!seen.insert(KeyString(key)).second || !Desires(bundle, key)) return;
    v1::Handover& entry = *kept.Add();
    *entry.mutable_key() = key;
    entry.set_bundle(takeover.bundle());
  };
  for (const v1::Handover& takeover : add) keep(takeover);
  for (const v1::Handover& takeover : record.taking_over()) keep(takeover);
  record.mutable_taking_over()->Swap(&kept);
}

void Reconciler::EndTakeoversFrom(const std::string& from) {
  for (auto& [name, other] : bundles_) {
    if (name == from) continue;
    auto* entries = other.record.mutable_taking_over();
    const int before = entries->size();
    for (auto it = entries->begin(); it != entries->end();) {
      it = it->bundle() == from ? entries->erase(it) : it + 1;
    }
    if (entries->size() == before) continue;
    other.unsaved = true;
    other.next_retry = absl::InfinitePast();
  }
}

void Reconciler::EndHandoversTo(const std::string& taker, bool gone) {
  auto to = bundles_.find(taker);
  for (auto& [name, other] : bundles_) {
    if (name == taker) continue;
    auto* entries = other.record.mutable_handing_over();
    int ended = 0;
    for (auto it = entries->begin(); it != entries->end();) {
      if (it->bundle() != taker ||
          (!gone && to != bundles_.end() && Desires(to->second, Placed(other.record, it->key())))) {
        ++it;  // someone else's, or it takes it over when it applies it
        continue;
      }
      GF_LOG(INFO) << "bundle " << name << ": bundle " << taker
                   << (gone ? " left this cluster without taking over "
                            : "'s revision here does not hold ")
                   << KeyDisplay(it->key()) << ": it is pruned after all";
      it = entries->erase(it);
      ++ended;
    }
    if (ended == 0) continue;
    // Its next pass prunes them (a removed bundle's retry, or a pass of its revision).
    other.unsaved = true;
    other.next_retry = absl::InfinitePast();
  }
}

void Reconciler::HandedOver(Bundle& from, const std::string& key) {
  v1::AgentBundleRecord& record = from.record;
  auto* inventory = record.mutable_inventory();
  for (auto it = inventory->begin(); it != inventory->end();) {
    if (KeyString(Placed(record, *it)) != key) {
      ++it;
      continue;
    }
    auto created = std::find(record.created().begin(), record.created().end(), KeyString(*it));
    if (created != record.created().end()) record.mutable_created()->erase(created);
    it = inventory->erase(it);
  }
  auto* entries = record.mutable_handing_over();
  for (auto it = entries->begin(); it != entries->end();) {
    it = KeyString(Placed(record, it->key())) == key ? entries->erase(it) : it + 1;
  }
  // What it left unmanaged is managed again, by the bundle that took it.
  auto* left = record.mutable_left_unmanaged();
  for (auto it = left->begin(); it != left->end();) {
    it = KeyString(*it) == key ? left->erase(it) : it + 1;
  }
  // Saved on its next pass, due now (a removed bundle with nothing left is forgotten then).
  from.unsaved = true;
  from.next_retry = absl::InfinitePast();
}

Reconciler::Removal Reconciler::Remove(const v1::ObjectKey& key, const ApplyContext& context,
                                       v1::AgentBundleRecord& record, std::string* error) {
  const std::string k = KeyString(key);
  auto created = std::find(record.created().begin(), record.created().end(), k);
  const bool ours = created != record.created().end();
  if (std::string to = DesiredElsewhere(key, record.bundle()); !to.empty()) {
    // Moved to another bundle: left in place for it to take over, with what gitfleet knows
    // of it (that gitfleet created it, so that bundle deletes it when it goes there too).
    Bundle& taker = bundles_.at(to);
    taker.next_retry = absl::InfinitePast();  // a conflict over it is over: try again now
    v1::AgentBundleRecord& theirs = taker.record;
    if (ours &&
        std::find(theirs.created().begin(), theirs.created().end(), k) == theirs.created().end()) {
      theirs.add_created(k);
      if (absl::Status saved = state_->Save(theirs); !saved.ok()) {
        theirs.mutable_created()->RemoveLast();
        *error = absl::StrCat("cannot hand it over to bundle ", to, ": ", saved.message());
        return Removal::kFailed;
      }
    }
    GF_LOG(INFO) << "bundle " << record.bundle() << ": " << KeyDisplay(key)
                 << " left it for bundle " << to << ", which applies it now; not deleted";
    if (ours) record.mutable_created()->erase(created);
    return Removal::kDone;
  }
  // The control plane said another bundle holds it now, and that bundle's revision has not
  // arrived: deleting it now would only have that bundle create it again (a gap in
  // service; a volume claim's data gone).
  if (!HandingOverTo(record, key).empty()) return Removal::kHandingOver;
  if (IsNamespace(key) && HandsOverIn(record, key.name())) {
    return Removal::kHandingOver;  // deleting it would delete them
  }
  if (IsNamespace(key)) {
    // Deleting a Namespace deletes everything in it, whoever applied it.
    if (std::string held = NamespaceHeldByOthers(key.name(), record.bundle()); !held.empty()) {
      *error = std::move(held);
      return Removal::kFailed;
    }
  }
  // Only what gitfleet created is deleted; what it found is given back.
  absl::Status status = ours ? applier_->Delete(key, context) : applier_->Release(key, context);
  metrics_.objects_pruned.Add({{"result", status.ok() ? "ok" : "error"}}).Increment();
  if (!status.ok()) {
    *error = std::string(status.message());
    return Removal::kFailed;
  }
  if (ours) record.mutable_created()->erase(created);
  return Removal::kDone;
}

void Reconciler::OnRemoval(const v1::BundleRemoval& removal) {
  metrics_.updates_received.Add({{"kind", "removal"}}).Increment();
  auto it = bundles_.find(removal.bundle());
  if (it == bundles_.end()) return;
  if (!removal.forget()) {
    if (std::string why = Refusal(it->second, removal.generation()); !why.empty()) {
      GF_LOG(WARNING) << "bundle " << removal.bundle() << ": refused removal (" << removal.reason()
                      << "): " << why;
      refused_[removal.bundle()] = why;
      return;
    }
  }
  refused_.erase(removal.bundle());
  Bundle& bundle = it->second;
  v1::AgentBundleRecord& record = bundle.record;
  if (record.released()) return;  // removed already; what it left is no longer its own
  // A bundle already being removed keeps pruning (its desired revision, and with it its
  // prune option, is gone), unless an operator forgets it without --prune.
  // A bundle whose source asks its objects to stay (Fleet's keepResources) releases them,
  // unless an operator forgets it with --prune.
  const bool keep = record.desired().sync().keep_on_removal();
  const bool prune = removal.forget()
                         ? removal.prune()
                         : record.removing() || (record.desired().sync().prune() && !keep);
  const std::string why =
      removal.reason().empty() ? "no longer targets this cluster" : removal.reason();
  // What other bundles left here for this one, it will never take over now.
  EndHandoversTo(removal.bundle(), /*gone=*/true);
  EndTakeoversFrom(removal.bundle());
  if (!prune) {
    const int left = Release(bundle);
    GF_LOG(INFO) << "bundle " << removal.bundle() << " removed (" << why
                 << (keep ? "); its source asks its objects to stay (keepResources): they stay, "
                            "unmanaged ("
                          : "); prune is off: its objects stay, unmanaged (")
                 << left << (left == 1 ? " object" : " objects")
                 << "; another bundle may take them over)";
    if (left == 0) bundles_.erase(it);
    UpdateBundleGauges();
    return;
  }
  // From here on the bundle is being removed: no revision, no status; only what is left
  // to prune, and the revision's PreDelete and PostDelete hooks to run around the prune.
  // A crash or a failure never forgets that. An operator who forgets the bundle runs none
  // (as `helm uninstall --no-hooks`): the way out of a delete hook that keeps failing.
  v1::RevisionRecord kept;
  kept.set_bundle(removal.bundle());
  kept.set_target_namespace(record.desired().target_namespace());
  // Pruned as the account it was applied as: never with the agent's own wider rights.
  kept.mutable_sync()->set_service_account(record.desired().sync().service_account());
  v1::HookProgress hooks;
  if (record.removing() && !removal.forget()) {
    kept = record.desired();  // its delete hooks, as they got
    hooks = record.hooks();
  } else if (!record.removing() && !removal.forget()) {
    const HookPlan plan = PlanHooks(record.desired(), /*removal=*/true);
    std::set<const v1::ManifestObject*> deleting;
    for (const auto& [phase, planned] : plan.phases) {
      for (const PlannedHook& hook : planned) deleting.insert(hook.object);
    }
    for (const v1::ManifestObject& object : record.desired().objects()) {
      if (deleting.count(&object) > 0) *kept.add_objects() = object;
    }
    if (!deleting.empty()) {
      // Not the revision's own hook progress: a revision that comes back runs its sync's.
      hooks.set_revision(absl::StrCat("removal of ", record.desired().revision()));
      *hooks.mutable_previous() = record.hooks().previous();  // BeforeHookCreation
      GF_LOG(INFO) << "bundle " << removal.bundle() << ": " << deleting.size()
                   << " delete hooks run around the prune";
    }
  }
  record.clear_desired();
  *record.mutable_desired() = std::move(kept);
  record.clear_applied_revision();
  record.clear_applied_commit();
  record.clear_applied_time();
  record.clear_applied_hashes();
  *record.mutable_hooks() = std::move(hooks);
  record.clear_left_unmanaged();
  record.clear_last_status();
  if (!record.removing() || removal.forget()) record.clear_terminating();
  record.set_removing(true);
  bundle.status.Clear();
  bundle.unsettled.clear();
  bundle.hooks_pending = false;
  bundle.backoff->Reset();
  RecordHandovers(bundle, removal.handovers());
  int pruned = 0;
  const bool done = PruneForRemoval(bundle, &pruned);
  GF_LOG(INFO) << "bundle " << removal.bundle() << " removed (" << why << "); pruned " << pruned
               << " objects"
               << (bundle.removal_hooks ? absl::StrCat("; delete hooks: ", bundle.removal_error)
                                        : "")
               << (done || bundle.removal_error.empty() || bundle.removal_hooks
                       ? ""
                       : absl::StrCat("; ", record.inventory_size() - bundle.handing_over,
                                      " could not be, and are tried again: ", bundle.removal_error))
               << (bundle.handing_over > 0
                       ? absl::StrCat("; ", bundle.handing_over,
                                      " stay in place for the bundles that hold them now")
                       : "");
  if (done) bundles_.erase(it);
  UpdateBundleGauges();
}

int Reconciler::Release(Bundle& bundle) {
  v1::AgentBundleRecord& record = bundle.record;
  // What it left unmanaged before, oldest first, then everything it applied.
  std::vector<v1::ObjectKey> left;
  std::set<std::string> seen;
  auto add = [&](const v1::ObjectKey& key) {
    v1::ObjectKey placed = Placed(record, key);
    if (seen.insert(KeyString(placed)).second) left.push_back(std::move(placed));
  };
  for (const v1::ObjectKey& key : record.left_unmanaged()) add(key);
  for (const v1::ObjectKey& key : record.inventory()) add(key);
  if (left.size() > static_cast<size_t>(kMaxLeftUnmanagedKept)) {
    left.erase(left.begin(), left.end() - kMaxLeftUnmanagedKept);  // the oldest go
  }
  if (left.empty()) {
    absl::Status deleted = state_->Delete(record.bundle());
    if (!deleted.ok()) GF_LOG(ERROR) << "cannot forget bundle state: " << deleted;
    return 0;
  }
  v1::AgentBundleRecord released;
  released.set_bundle(record.bundle());
  released.set_fleet_id(record.fleet_id());
  released.set_generation(record.generation());
  released.mutable_desired()->set_bundle(record.bundle());
  released.mutable_desired()->set_target_namespace(record.desired().target_namespace());
  for (const std::string& key : record.created()) {
    if (seen.count(key) > 0) released.add_created(key);
  }
  for (v1::ObjectKey& key : left) *released.add_left_unmanaged() = std::move(key);
  released.set_released(true);
  record = std::move(released);
  bundle.status.Clear();
  bundle.unsettled.clear();
  bundle.hooks_pending = false;
  bundle.handing_over = 0;
  bundle.unsaved = false;
  if (absl::Status saved = state_->Save(record); !saved.ok()) {
    GF_LOG(ERROR) << "cannot record what bundle " << record.bundle() << " left: " << saved;
    bundle.unsaved = true;
  }
  return record.left_unmanaged_size();
}

bool Reconciler::CheckReleased(Bundle& bundle, bool check_drift) {
  v1::AgentBundleRecord& record = bundle.record;
  if (check_drift && !record.left_unmanaged().empty()) {
    // What an operator kept is usually kept for good: each drift pass reads a few of the
    // objects (one read each), the first in the list, and moves those still there to its
    // end, so that every one is looked at in turn without a steady load on the API server.
    ApplyContext context{record.bundle(), record.desired().target_namespace(),
                         record.desired().sync().create_namespace()};
    UseSyncOptions(record.desired().sync(), &context);
    const int looked_at = std::min(record.left_unmanaged_size(), kLeftChecksPerPass);
    google::protobuf::RepeatedPtrField<v1::ObjectKey> still;
    for (int i = looked_at; i < record.left_unmanaged_size(); ++i) {
      *still.Add() = record.left_unmanaged(i);
    }
    for (int i = 0; i < looked_at; ++i) {
      const v1::ObjectKey& key = record.left_unmanaged(i);
      absl::StatusOr<bool> there = applier_->LeftBehind(key, context);
      if (there.ok() && !*there) {
        GF_LOG(INFO) << "bundle " << record.bundle()
                     << " (removed with prune off): " << KeyDisplay(key)
                     << ", left unmanaged, is gone or no longer labelled the bundle's";
        bundle.unsaved = true;  // saved below (the new order alone is not worth a write)
      } else {
        *still.Add() = key;
      }
    }
    record.mutable_left_unmanaged()->Swap(&still);
  }
  if (record.left_unmanaged().empty()) {
    absl::Status deleted = state_->Delete(record.bundle());
    if (!deleted.ok()) {
      GF_LOG(ERROR) << "cannot forget bundle state: " << deleted;
      return false;
    }
    GF_LOG(INFO) << "bundle " << record.bundle()
                 << " (removed with prune off): nothing it left is its own any more; forgotten";
    return true;
  }
  if (bundle.unsaved) {
    absl::Status saved = state_->Save(record);
    if (saved.ok()) {
      bundle.unsaved = false;
    } else {
      GF_LOG(ERROR) << "cannot record what bundle " << record.bundle() << " left: " << saved;
    }
  }
  return false;
}

std::string Reconciler::StillDeleting(v1::AgentBundleRecord& record, const ApplyContext& context) {
  // In the order pruned, dropping those that are gone; the first still there stops the
  // look (one read each for what went since, one for what holds it up).
  auto* terminating = record.mutable_terminating();
  int gone = 0;
  std::string detail;
  for (; gone < terminating->size(); ++gone) {
    const v1::ObjectKey& key = terminating->Get(gone);
    absl::StatusOr<bool> there = applier_->Terminating(key, context);
    if (there.ok() && !*there) continue;
    const int after = terminating->size() - gone - 1;
    detail = absl::StrCat(
        "the PostDelete hooks wait for what was pruned to finish deleting (finalizers): ",
        KeyDisplay(key),
        there.ok() ? " still is" : absl::StrCat(" cannot be read: ", there.status().message()),
        after > 0 ? absl::StrCat(" (", after, " pruned after it looked at next)") : "");
    break;
  }
  terminating->DeleteSubrange(0, gone);
  return detail;
}

bool Reconciler::PruneForRemoval(Bundle& bundle, int* pruned) {
  v1::AgentBundleRecord& record = bundle.record;
  ApplyContext context{record.bundle(), record.desired().target_namespace(),
                       record.desired().sync().create_namespace()};
  UseSyncOptions(record.desired().sync(), &context);
  // The revision's delete hooks: PreDelete before anything is pruned, PostDelete once the
  // rest is gone, in Namespaces kept for them until they finish.
  const HookPlan plan = PlanHooks(record.desired(), /*removal=*/true);
  v1::HookProgress& progress = *record.mutable_hooks();
  const bool post_delete = plan.phases.count(HookPhase::kPostDelete) > 0 && !progress.done();
  bundle.removal_hooks = false;
  auto hooks_hold = [&](HookStep step, const std::string& detail) {
    bundle.handing_over = 0;
    bundle.removal_error = detail;
    bundle.removal_hooks = true;
    if (step == HookStep::kFailed) {
      // Tried again after the backoff, from the hooks that failed.
      auto* runs = progress.mutable_runs();
      runs->erase(
          std::remove_if(runs->begin(), runs->end(),
                         [](const v1::HookRun& run) { return run.state() == v1::HookRun::FAILED; }),
          runs->end());
    }
    if (absl::Status saved = state_->Save(record); !saved.ok()) {
      GF_LOG(ERROR) << "cannot record bundle " << record.bundle() << "'s delete hooks: " << saved;
    }
    bundle.unsaved = false;
    bundle.next_retry =
        clock_->Now() + (step == HookStep::kWaiting ? health_interval_ : bundle.backoff->Next());
    return false;
  };
  if (plan.phases.count(HookPhase::kPreDelete) > 0 && !progress.done()) {
    std::string detail;
    const HookStep step = RunHookPhase(bundle, plan, HookPhase::kPreDelete, context, &detail);
    if (step == HookStep::kFailed) {
      GF_LOG(WARNING) << "bundle " << record.bundle() << " (removed): " << detail
                      << "; nothing is pruned, and it is tried again";
      return hooks_hold(step, absl::StrCat(detail, "; nothing is pruned until it succeeds"));
    }
    if (step == HookStep::kWaiting) return hooks_hold(step, detail);
  }
  std::set<std::string> hook_namespaces;  // kept until the PostDelete hooks are through
  if (post_delete) {
    for (const PlannedHook& hook : plan.phases.at(HookPhase::kPostDelete)) {
      absl::StatusOr<v1::ObjectKey> placed = applier_->PlacedKey(*hook.object, context);
      if (placed.ok() && !placed->namespace_().empty()) {
        hook_namespaces.insert(placed->namespace_());
      }
    }
  }
  std::vector<v1::ObjectKey> left;
  std::vector<v1::ObjectKey> held;  // Namespaces the PostDelete hooks run in
  std::string first_error;
  bundle.handing_over = 0;
  // Prunes `key`, or keeps it in `left` (waiting for the bundle that holds it now, or
  // failed: the first failure is what the Removal condition says).
  auto prune = [&](const v1::ObjectKey& key) {
    std::string error;
    const Removal removal = Remove(key, context, record, &error);
    if (removal == Removal::kDone) {
      ++*pruned;
      if (post_delete) *record.add_terminating() = key;  // the hooks wait until it is gone
      return;
    }
    left.push_back(key);
    if (removal == Removal::kHandingOver) {
      ++bundle.handing_over;
      return;
    }
    GF_LOG(WARNING) << "bundle " << record.bundle() << " (removed): cannot prune "
                    << KeyDisplay(key) << ": " << error;
    if (first_error.empty()) first_error = absl::StrCat(KeyDisplay(key), ": ", error);
  };
  for (const v1::ObjectKey& key :
       PruneOrder({record.inventory().begin(), record.inventory().end()})) {
    if (IsNamespace(key) && hook_namespaces.count(key.name()) > 0) {
      held.push_back(key);
      continue;
    }
    prune(key);
  }
  if (left.empty() && post_delete) {
    std::string detail = StillDeleting(record, context);
    const HookStep step =
        !detail.empty() ? HookStep::kWaiting
                        : RunHookPhase(bundle, plan, HookPhase::kPostDelete, context, &detail);
    if (step != HookStep::kDone) {
      if (step == HookStep::kFailed) {
        GF_LOG(WARNING) << "bundle " << record.bundle() << " (removed): " << detail
                        << "; tried again";
      }
      record.clear_inventory();
      for (v1::ObjectKey& key : held) *record.add_inventory() = std::move(key);
      return hooks_hold(step, detail);
    }
    progress.set_done(true);
    record.clear_terminating();
    for (const v1::ObjectKey& key : held) prune(key);  // the Namespaces they ran in go now
    held.clear();
  }
  for (v1::ObjectKey& key : held) left.push_back(std::move(key));  // PostDelete hooks wait
  if (left.empty()) {
    absl::Status deleted = state_->Delete(record.bundle());
    if (!deleted.ok()) GF_LOG(ERROR) << "cannot forget bundle state: " << deleted;
    return true;
  }
  record.clear_inventory();
  for (v1::ObjectKey& key : left) *record.add_inventory() = std::move(key);
  RecordHandovers(bundle, {});  // what is over goes
  if (absl::Status saved = state_->Save(record); !saved.ok()) {
    GF_LOG(ERROR) << "cannot record what bundle " << record.bundle()
                  << " has left to prune: " << saved;
  }
  bundle.unsaved = false;
  bundle.removal_error = std::move(first_error);
  // What waits for another bundle to take it over is looked at again when that bundle's
  // revision arrives or it leaves (EndHandoversTo, HandedOver), not on a timer.
  bundle.next_retry = bundle.removal_error.empty() ? absl::InfiniteFuture()
                                                   : clock_->Now() + bundle.backoff->Next();
  return false;
}

void Reconciler::SetChangeWatch(ChangeWatch* watch, absl::Duration watch_check_interval,
                                absl::Duration watched_check_interval) {
  change_watch_ = watch;
  watch_check_interval_ = watch_check_interval;
  watched_check_interval_ = watched_check_interval;
  watched_.clear();
  // What a watch heard before is no reason to wait: the next periodic check looks.
  for (auto& [name, bundle] : bundles_) bundle.next_watched_check = absl::InfinitePast();
}

// Where the change watch is told an object of a revision with `target` lives: its own
// namespace, else the target ("" when neither: the agent's default, or cluster-scoped).
static const std::string& WatchedNamespace(const v1::ManifestObject& object,
                                           const std::string& target) {
  return object.key().namespace_().empty() ? target : object.key().namespace_();
}

bool Reconciler::WatchedWhole(const Bundle& bundle) const {
  if (change_watch_ == nullptr) return false;
  const std::string& target = bundle.record.desired().target_namespace();
  ChangeWatch::Kind kind;
  for (const v1::ManifestObject& object : bundle.record.desired().objects()) {
    kind.first = object.api_version();
    kind.second = object.key().kind();
    if (!change_watch_->Watching(kind, WatchedNamespace(object, target))) return false;
  }
  return true;
}

void Reconciler::TellChangeWatch() {
  if (change_watch_ == nullptr) return;
  std::string watched;
  for (const auto& [name, bundle] : bundles_) {
    absl::StrAppend(&watched, name, "=", bundle.record.desired().revision(),
                    bundle.record.removing() ? "-" : "", "\n");
  }
  if (watched == watched_) return;
  watched_ = std::move(watched);
  ChangeWatch::Kinds kinds;
  std::map<std::string, ChangeWatch::Kinds> by_user;  // bundles applied as an account
  for (const auto& [name, bundle] : bundles_) {
    if (bundle.record.removing() || bundle.record.released()) continue;
    const v1::RevisionRecord& desired = bundle.record.desired();
    const std::string& target = desired.target_namespace();
    ApplyContext context{desired.bundle(), target, desired.sync().create_namespace()};
    UseSyncOptions(desired.sync(), &context);
    absl::StatusOr<std::string> user = applier_->UserOf(context);
    ChangeWatch::Kinds* as_user = user.ok() && !user->empty() ? &by_user[*user] : nullptr;
    for (const v1::ManifestObject& object : desired.objects()) {
      const ChangeWatch::Kind kind{object.api_version(), object.key().kind()};
      const std::string& ns = WatchedNamespace(object, target);
      kinds[kind].insert(ns);
      if (as_user != nullptr) (*as_user)[kind].insert(ns);
    }
  }
  change_watch_->WatchAs(by_user);
  change_watch_->Watch(kinds);
}

std::vector<v1::StatusUpdate> Reconciler::Resync(bool check_drift) {
  std::vector<v1::StatusUpdate> changed;
  absl::Time now = clock_->Now();
  if (change_watch_ != nullptr) {
    ChangeWatch::Changed changes = change_watch_->TakeChanged();
    for (const std::string& name : changes.content) {
      auto it = bundles_.find(name);
      if (it != bundles_.end()) it->second.watch_changed = true;
    }
    for (const std::string& name : changes.status) {
      auto it = bundles_.find(name);
      if (it != bundles_.end()) it->second.status_changed = true;
    }
  }
  std::vector<std::string> removed;
  bool recount = false;  // the gauges may have moved (removals, releases)
  for (auto& [name, bundle] : bundles_) {
    if (bundle.record.removing()) {
      if (now < bundle.next_retry) continue;
      int pruned = 0;
      if (PruneForRemoval(bundle, &pruned)) {
        GF_LOG(INFO) << "bundle " << name << " (removed): the last " << pruned
                     << " objects left to prune are gone; forgotten";
        removed.push_back(name);
      }
      recount = true;
      continue;
    }
    if (bundle.record.released()) {
      if (CheckReleased(bundle, check_drift)) removed.push_back(name);
      recount = recount || check_drift;
      continue;
    }
    if (bundle.record.desired().revision().empty()) continue;
    bool failed = bundle.record.applied_revision() != bundle.record.desired().revision() ||
                  bundle.unsaved || bundle.hooks_pending || bundle.prune_waits;
    if (bundle.status_changed) {
      bundle.status_changed = false;
      if ((bundle.hooks_pending || bundle.prune_waits) &&
          bundle.status.sync_state() != v1::SYNC_STATE_FAILED) {
        // A hook's run (a Job finishing) or what a prune waits on moved: look now rather
        // than at the next poll, at most once a second (a failure keeps its backoff).
        bundle.next_retry =
            std::min(bundle.next_retry, std::max(now, bundle.last_pass + kStatusReadGap));
      } else if (!bundle.unsettled.empty()) {
        // A controller moved: read the health now (at most once a second: a rollout of
        // many workloads moves many times a second), and keep reading it at the pace of
        // something that moves.
        bundle.next_health_check =
            std::min(bundle.next_health_check, std::max(now, bundle.health_read + kStatusReadGap));
        bundle.health_delay = health_interval_;
      } else if (!failed) {
        bundle.watch_changed = true;  // settled health that moved: a check reads it all
      }
    }
    // Someone changed one of its live objects: look now rather than at the next check.
    const bool watched = bundle.watch_changed && now >= bundle.next_watch_check;
    // A bundle the watch hears whole has its periodic checks further apart: a change
    // brings one forward, and these are the floor for what a watch could miss.
    const bool periodic =
        check_drift && (now >= bundle.next_watched_check || failed || !WatchedWhole(bundle));
    const bool drift = periodic || watched;
    if (!failed && !drift && !bundle.unsettled.empty() && now >= bundle.next_health_check) {
      // Health is still moving (a rollout, a load balancer): look again.
      if (RecheckHealth(bundle)) changed.push_back(bundle.status);
      continue;
    }
    if (failed && now < bundle.next_retry) continue;
    if (!failed && !drift) continue;
    if (drift) {
      bundle.watch_changed = false;
      bundle.next_watch_check = now + watch_check_interval_;
      bundle.next_watched_check = now + watched_check_interval_;
    }
    std::vector<v1::ObjectError> errors;
    if (ApplyDesired(bundle, /*check_drift=*/!failed || drift, &errors)) {
      changed.push_back(bundle.status);
    }
  }
  for (const std::string& name : removed) bundles_.erase(name);
  if (!removed.empty()) {
    // A prune held by what those bundles had in a Namespace may go now: try again at once.
    for (auto& [name, bundle] : bundles_) bundle.next_retry = absl::InfinitePast();
  }
  if (recount || !removed.empty()) UpdateBundleGauges();
  TellChangeWatch();
  return changed;
}

v1::DiffResult Reconciler::Diff(const v1::DiffRequest& request) {
  v1::DiffResult result;
  result.set_id(request.id());
  result.set_bundle(request.bundle());
  auto it = bundles_.find(request.bundle());
  if (it == bundles_.end() || it->second.record.desired().revision().empty()) {
    result.set_error(absl::StrCat("this agent holds no revision of bundle ", request.bundle()));
    return result;
  }
  const v1::AgentBundleRecord& record = it->second.record;
  const v1::RevisionRecord& desired = record.desired();
  result.set_revision(desired.revision());
  ApplyContext context{desired.bundle(), desired.target_namespace(),
                       desired.sync().create_namespace()};
  UseSyncOptions(desired.sync(), &context);
  std::set<std::string> desired_keys;
  bool placed_all = true;
  for (const v1::ManifestObject& object : desired.objects()) {
    if (IsHookObject(object)) continue;  // created by a sync, never applied
    absl::StatusOr<v1::ObjectKey> placed = applier_->PlacedKey(object, context);
    placed_all = placed_all && placed.ok();
    desired_keys.insert(KeyString(placed.ok() ? *placed : object.key()));
    absl::StatusOr<std::string> preview = applier_->Preview(object, context);
    if (preview.ok() && preview->empty()) {
      result.set_unchanged(result.unchanged() + 1);
      continue;
    }
    v1::ObjectDiff* diff = result.add_changes();
    *diff->mutable_key() = object.key();
    if (!preview.ok()) {
      diff->set_change("error");
      diff->set_detail(std::string(preview.status().message()));
    } else if (*preview == "create") {
      diff->set_change("create");
    } else {
      diff->set_change("update");
      diff->set_detail(*preview);
    }
  }
  if (desired.sync().prune() && placed_all) {
    for (const v1::ObjectKey& stored : record.inventory()) {
      absl::StatusOr<v1::ObjectKey> key = applier_->ResolveKey(stored, context);
      if (!key.ok() || desired_keys.count(KeyString(*key)) > 0) continue;
      // What Remove would do: what it would refuse or leave in place is said, not counted
      // as a prune.
      std::string kept;
      if (std::string to = DesiredElsewhere(stored, desired.bundle()); !to.empty()) {
        kept = absl::StrCat("bundle ", to, " applies it now: it is left for it, not deleted");
      } else if (std::string to = HandingOverTo(record, *key); !to.empty()) {
        kept = absl::StrCat("bundle ", to,
                            " holds it now, and its revision has not reached this cluster yet: "
                            "it is left in place for it, not deleted");
      } else if (IsNamespace(*key) && HandsOverIn(record, key->name())) {
        kept = "objects in it are left for the bundles that hold them now: it stays with them";
      } else if (IsNamespace(*key)) {
        kept = NamespaceHeldByOthers(key->name(), desired.bundle());
      }
      if (kept.empty()) {
        const bool created = std::find(record.created().begin(), record.created().end(),
                                       KeyString(stored)) != record.created().end();
        absl::StatusOr<RemovalPreview> removal = applier_->PreviewRemoval(stored, context, created);
        if (!removal.ok()) {
          v1::ObjectDiff* diff = result.add_changes();
          *diff->mutable_key() = *key;
          diff->set_change("error");
          diff->set_detail(absl::StrCat("prune: ", removal.status().message()));
          continue;
        }
        if (!removal->exists) continue;  // nothing to prune
        kept = std::move(removal->kept);
      }
      v1::ObjectDiff* diff = result.add_changes();
      *diff->mutable_key() = *key;
      diff->set_change(kept.empty() ? "prune" : "keep");
      diff->set_detail(std::move(kept));
    }
  }
  return result;
}

std::vector<v1::StatusUpdate> Reconciler::AllStatuses() const {
  std::vector<v1::StatusUpdate> out;
  for (const auto& [name, bundle] : bundles_) {
    if (!bundle.status.bundle().empty()) out.push_back(bundle.status);
  }
  return out;
}

void Reconciler::UpdateBundleGauges() {
  // Every state is set each time, so a state no bundle is in any more reads 0.
  std::map<v1::SyncState, int> counts = {{v1::SYNC_STATE_SYNCED, 0},
                                         {v1::SYNC_STATE_OUT_OF_SYNC, 0},
                                         {v1::SYNC_STATE_APPLYING, 0},
                                         {v1::SYNC_STATE_FAILED, 0}};
  std::map<v1::HealthState, int> health = {{v1::HEALTH_STATE_HEALTHY, 0},
                                           {v1::HEALTH_STATE_PROGRESSING, 0},
                                           {v1::HEALTH_STATE_DEGRADED, 0},
                                           {v1::HEALTH_STATE_MISSING, 0},
                                           {v1::HEALTH_STATE_UNKNOWN, 0}};
  int left_unmanaged = 0;
  int left_to_prune = 0;
  int handed_over = 0;
  for (const auto& [name, bundle] : bundles_) {
    left_unmanaged += bundle.record.left_unmanaged_size();
    if (bundle.record.removing()) {
      left_to_prune += bundle.record.inventory_size() - bundle.handing_over;
    }
    handed_over += bundle.handing_over;
    if (counts.count(bundle.status.sync_state()) > 0) ++counts[bundle.status.sync_state()];
    if (bundle.status.health() != v1::HEALTH_STATE_UNSPECIFIED) ++health[bundle.status.health()];
  }
  for (const auto& [state, count] : counts) {
    std::string label = absl::AsciiStrToLower(v1::SyncState_Name(state));
    metrics_.bundles.Add({{"sync_state", label.substr(sizeof("SYNC_STATE_") - 1)}}).Set(count);
  }
  for (const auto& [state, count] : health) {
    std::string label = absl::AsciiStrToLower(v1::HealthState_Name(state));
    metrics_.bundle_health.Add({{"health", label.substr(sizeof("HEALTH_STATE_") - 1)}}).Set(count);
  }
  metrics_.objects_left_unmanaged.Set(left_unmanaged);
  metrics_.objects_left_to_prune.Set(left_to_prune);
  metrics_.objects_handed_over.Set(handed_over);
}

}  // namespace gitfleet
