#ifndef GITFLEET_AGENT_APPLY_APPLIER_H_
#define GITFLEET_AGENT_APPLY_APPLIER_H_

// The apply seam: puts objects into a cluster (or a directory), removes them, and
// reads back whether they still match and how healthy they are.
//
//   DirectoryApplier applier("/var/lib/gitfleet/out");
//   absl::StatusOr<ApplyResult> applied = applier.Apply(object, {"web", ""}, /*first=*/true);
//
// Implementations are thread-safe.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/file_system.h"
#include "proto/gitfleet/v1/types.pb.h"

namespace gitfleet {

// The annotations by which a live object asks its GitOps tool never to delete it:
// gitfleet's own, and Argo CD's, Flux's and Helm's, as repositories and charts carry them.
inline constexpr char kPruneAnnotation[] = "gitfleet.io/prune";
inline constexpr char kArgoSyncOptionsAnnotation[] = "argocd.argoproj.io/sync-options";
inline constexpr char kFluxPruneAnnotation[] = "kustomize.toolkit.fluxcd.io/prune";
inline constexpr char kHelmResourcePolicyAnnotation[] = "helm.sh/resource-policy";
// The annotation that keeps an object from being deleted, as "name=value"; "" when none
// does. `annotation` gives an annotation's value, "" when absent. gitfleet.io/prune
// "false"; Argo CD's sync options Prune=false or Delete=false (either way its author wants
// it kept, so both hold on a prune and on a bundle's removal); Flux's prune "disabled";
// Helm's resource-policy "keep" (charts put it on CRDs, volumes and secrets that must
// outlive the release); reconciling disabled (ReconcileDisabledBy) or an Ignore apply policy.
std::string KeptByAnnotation(const std::function<std::string(const char* name)>& annotation);

// How a manifest asks to be applied: Flux's kustomize.toolkit.fluxcd.io/ssa, or gitfleet.io/ssa
// with the same values. Override (the default): applied, drift healed. IfNotPresent: created
// when missing, then left as it is (a Secret or webhook configuration another controller
// fills in after; pruned as others are). Ignore: never applied, nor deleted.
// Flux's kustomize.toolkit.fluxcd.io/reconcile "disabled" (or gitfleet.io/reconcile) is
// Ignore too.
inline constexpr char kFluxSsaAnnotation[] = "kustomize.toolkit.fluxcd.io/ssa";
inline constexpr char kSsaAnnotation[] = "gitfleet.io/ssa";
enum class ApplyPolicy { kOverride, kIfNotPresent, kIgnore };
ApplyPolicy ApplyPolicyOf(const std::function<std::string(const char* name)>& annotation);
// The annotation that makes ApplyPolicyOf Ignore, as "name=value"; "" when none does.
std::string IgnoredBy(const std::function<std::string(const char* name)>& annotation);

// Reconciling turned off for one object, as Flux's kustomize.toolkit.fluxcd.io/reconcile
// "disabled" (or gitfleet.io/reconcile) does: in a manifest, the object is never applied
// nor deleted; on the live object (an operator's `kubectl annotate` during an incident), it
// is left as it is: no drift heal, no apply, no prune. "name=disabled", or "".
inline constexpr char kFluxReconcileAnnotation[] = "kustomize.toolkit.fluxcd.io/reconcile";
inline constexpr char kReconcileAnnotation[] = "gitfleet.io/reconcile";
std::string ReconcileDisabledBy(const std::function<std::string(const char* name)>& annotation);

// Whether a manifest asks to be deleted and created again when the server refuses an apply
// for a field that cannot change (a Deployment's selector, a Job's template): Flux's
// kustomize.toolkit.fluxcd.io/force Enabled, Argo CD's sync option Force=true, or
// gitfleet.io/force "enabled". Returns the annotation that asks, as "name=value", or "".
inline constexpr char kForceAnnotation[] = "gitfleet.io/force";
inline constexpr char kFluxForceAnnotation[] = "kustomize.toolkit.fluxcd.io/force";
std::string RecreateAskedBy(const std::function<std::string(const char* name)>& annotation);

// Whether the manifest asks Argo CD's sync option PruneLast=true
// (argocd.argoproj.io/sync-options): once it leaves the bundle, it is pruned only after
// every object of the revision is Healthy.
bool AsksPruneLast(const v1::ManifestObject& object);

struct ApplyContext {
  std::string bundle;
  std::string target_namespace;
  // Create `target_namespace` where it is missing (SyncOptions.create_namespace).
  bool create_namespace = false;
  // Whether bundle `owner` has let go of the object at `key` (where it lives): `owner`
  // is held here and its revision no longer holds it, so `bundle` may take it over (an
  // object moved from one bundle to another). Unset: no bundle ever has.
  std::function<bool(const std::string& owner, const v1::ObjectKey& key)> let_go;
  // Another bundle held here whose inventory has the object at `key` (where it lives), or
  // "": for appliers whose objects cannot say which bundle manages them (Kubernetes'
  // carry a label). Unset: none.
  std::function<std::string(const v1::ObjectKey& key)> holder;
  // Fields left to others (SyncOptions.ignore_differences): not drift, and applied with
  // their live values.
  google::protobuf::RepeatedPtrField<v1::IgnoreDifference> ignore_differences;
  // What a namespace created for the bundle gets (SyncOptions.namespace_labels and
  // namespace_annotations, "KEY=VALUE").
  std::vector<std::string> namespace_labels;
  std::vector<std::string> namespace_annotations;
  // A team's bundle: the namespace globs its objects must live in
  // (SyncOptions.allowed_namespaces); empty: any.
  std::vector<std::string> allowed_namespaces;
  // The cluster-scoped kinds ("[GROUP/]KIND" globs) allowed past `allowed_namespaces`
  // (SyncOptions.allowed_cluster_kinds); a Namespace's name must be one of them too.
  std::vector<std::string> allowed_cluster_kinds;
  // The service account every request about the bundle's objects is made as
  // (SyncOptions.service_account: "NAME" in `target_namespace`, or "NAMESPACE/NAME");
  // empty: as the agent itself. See Applier::CanApplyAs.
  std::string service_account;
};

// Sets `context`'s fields that come from the bundle's sync options beyond the first three.
void UseSyncOptions(const v1::SyncOptions& sync, ApplyContext* context);

// Whether namespace `ns` is one of `context.allowed_namespaces` (any, when there are none).
bool InAllowedNamespaces(const ApplyContext& context, const std::string& ns);

class Applier;
// OK when `object` stays within `context.allowed_namespaces` (always, when there are
// none): a kind the cluster serves as namespaced, placed in a namespace a glob matches, or
// a cluster-scoped kind of `context.allowed_cluster_kinds` (a Namespace named as one of
// them). PermissionDenied for another cluster-scoped object or one placed elsewhere;
// FailedPrecondition
// for a kind the cluster does not serve yet (whether it is namespaced cannot be told).
absl::Status CheckAllowedNamespace(Applier& applier, const v1::ManifestObject& object,
                                   const ApplyContext& context);

struct ApplyResult {
  // The object did not exist before this apply: gitfleet created it, so pruning it later
  // deletes it. An object gitfleet found existing is only released.
  bool created = false;
  // The bundle the object was taken over from (see ApplyContext::let_go); "" for none.
  std::string taken_from;
};

// Where a hook's run stands.
struct HookStatus {
  enum State { kRunning, kSucceeded, kFailed };
  State state = kRunning;
  std::string message;  // why it failed, or what it is doing
};

// What a prune would do to one object.
struct RemovalPreview {
  bool exists = true;  // false: gone already, nothing to do
  std::string kept;    // why it stays; "" when it would be deleted
};

class Applier {
 public:
  virtual ~Applier() = default;
  virtual const char* name() const = 0;
  // Creates or updates the live object to match `object`. `first`: the bundle has not
  // applied this object before, so an existing one is checked first: one that another
  // bundle manages is FailedPrecondition (a conflict, never a takeover), unless that
  // bundle has let go of it (context.let_go).
  virtual absl::StatusOr<ApplyResult> Apply(const v1::ManifestObject& object,
                                            const ApplyContext& context, bool first) = 0;
  // Deletes the live object; OK when it is already gone.
  virtual absl::Status Delete(const v1::ObjectKey& key, const ApplyContext& context) = 0;
  // Lets go of an object gitfleet found existing (did not create): gives up the fields it
  // applied and its bundle label, and deletes it only when the object itself says so
  // (annotation gitfleet.io/prune: "true"). By default: leaves it as it is.
  virtual absl::Status Release(const v1::ObjectKey& key, const ApplyContext& context) {
    return absl::OkStatus();
  }
  // What removing the object would do, without doing it (see RemovalPreview): Delete for
  // an object the bundle `created`, Release for one it found. An error when the target
  // cannot say now. By default: what the bundle created is deleted, what it found stays.
  virtual absl::StatusOr<RemovalPreview> PreviewRemoval(const v1::ObjectKey& key,
                                                        const ApplyContext& context, bool created) {
    if (created) return RemovalPreview{};
    return RemovalPreview{true, absl::StrCat("it existed before bundle ", context.bundle,
                                             " applied it: it is given back, not deleted")};
  }
  // Whether an object the bundle stopped managing while prune was off is still there as
  // it was left: it exists and, where objects carry gitfleet's bundle label, still has
  // the bundle's. An error when the target cannot say now. By default: true.
  virtual absl::StatusOr<bool> LeftBehind(const v1::ObjectKey& key, const ApplyContext& context) {
    return true;
  }
  // Whether an object whose deletion was accepted is still there finishing it (its
  // finalizers): false once it is gone, or when what is there now is not being deleted (the
  // delete was declined, or the object was made again). An error when the target cannot
  // say now. By default: false (deletion is done when accepted).
  virtual absl::StatusOr<bool> Terminating(const v1::ObjectKey& key, const ApplyContext& context) {
    return false;
  }
  // Whether the live object still matches `object` as applied (false when missing).
  // FailedPrecondition when someone else now owns it (it is reported, not re-applied).
  virtual absl::StatusOr<bool> InSync(const v1::ManifestObject& object,
                                      const ApplyContext& context) = 0;
  // The live object's health in the status model's words. May answer from what the
  // last Apply, InSync or Refresh of the object saw.
  virtual v1::ResourceHealth Health(const v1::ManifestObject& object,
                                    const ApplyContext& context) = 0;
  // Before a drift check of `objects`: the applier may read them in bulk so the InSync
  // calls that follow cost nothing each. EndDriftCheck drops what was read.
  virtual void BeginDriftCheck(const std::vector<const v1::ManifestObject*>& objects,
                               const ApplyContext& context) {}
  virtual void EndDriftCheck() {}
  // Called before a new revision of the bundle is applied, with the objects it changes of
  // those applied before, in apply order: a chance to read what the live objects ask
  // (reconciling turned off since the last drift check) before any of them is changed.
  virtual void BeginApply(const std::vector<const v1::ManifestObject*>& objects,
                          const ApplyContext& context) {}
  // Reads the live object again so Health reflects it (used while health is unsettled).
  virtual void Refresh(const v1::ManifestObject& object, const ApplyContext& context) {}
  // What applying `object` would change, without changing anything: "" for nothing,
  // "create" when it does not exist, else a description (the first differing field).
  // By default: whether InSync says it matches.
  virtual absl::StatusOr<std::string> Preview(const v1::ManifestObject& object,
                                              const ApplyContext& context) {
    absl::StatusOr<bool> in_sync = InSync(object, context);
    if (!in_sync.ok()) return in_sync.status();
    return *in_sync ? std::string() : std::string("differs from the live object");
  }
  // Where the object lives: its key with the namespace the target puts it in (for a
  // namespaced kind written without one). The key unchanged when the kind is not known
  // yet; an error when the target cannot say now (so nothing is pruned on a guess).
  virtual absl::StatusOr<v1::ObjectKey> PlacedKey(const v1::ManifestObject& object,
                                                  const ApplyContext& context) {
    return object.key();
  }
  // The same for a key recorded in the inventory.
  virtual absl::StatusOr<v1::ObjectKey> ResolveKey(const v1::ObjectKey& key,
                                                   const ApplyContext& context) {
    return key;
  }
  // Hooks (common/manifest/hook.h) are created, never applied, and never pruned.
  // CreateHook creates a run of `hook` and returns the live object's key (its name the
  // server generated from metadata.generateName). AlreadyExists when a named hook's
  // previous run still exists.
  virtual absl::StatusOr<v1::ObjectKey> CreateHook(const v1::ManifestObject& hook,
                                                   const ApplyContext& context) {
    return absl::UnimplementedError(absl::StrCat("the ", name(), " applier cannot run hooks"));
  }
  // How the run `live` (a key CreateHook returned) stands: Jobs and Pods run until they
  // complete or fail; any other kind succeeds once created. A run that is gone failed.
  virtual absl::StatusOr<HookStatus> CheckHook(const v1::ObjectKey& live,
                                               const ApplyContext& context) {
    return absl::UnimplementedError(absl::StrCat("the ", name(), " applier cannot run hooks"));
  }
  // Deletes the run `live` (with what it started); OK when it is already gone.
  virtual absl::Status DeleteHook(const v1::ObjectKey& live, const ApplyContext& context) {
    return absl::UnimplementedError(absl::StrCat("the ", name(), " applier cannot run hooks"));
  }
  // Whether the object's kind is namespaced, for the apply order. By default: whether
  // its key names a namespace.
  virtual bool Namespaced(const v1::ManifestObject& object) {
    return !object.key().namespace_().empty();
  }
  // Whether the cluster serves the object's kind as namespaced now; NotFound for a kind it
  // does not serve (yet), where Namespaced guesses. By default: Namespaced.
  virtual absl::StatusOr<bool> ServedNamespaced(const v1::ManifestObject& object) {
    return Namespaced(object);
  }
  // OK when this applier makes every request about `context`'s objects as
  // context.service_account (always, when it names none). An applier that cannot is never
  // asked to apply such a bundle as itself: the revision fails whole. By default: it
  // cannot.
  virtual absl::Status CanApplyAs(const ApplyContext& context) {
    if (context.service_account.empty()) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "bundle ", context.bundle, " is to be applied as service account ", context.service_account,
        ", and the ", name(), " applier cannot act as another user"));
  }
  // The user `context`'s requests are made as ("system:serviceaccount:NAMESPACE:NAME"),
  // or "" for the applier's own identity. By default: its own.
  virtual absl::StatusOr<std::string> UserOf(const ApplyContext& context) const {
    return std::string();
  }
};

// One file per object at DIR/<namespace or _cluster>/<kind>/<name>.yaml, written
// atomically. Objects are Healthy once their file exists. A file that existed before
// gitfleet first wrote it was found, not created: releasing it leaves it in place. A file
// whose object is annotated to be kept (KeptByAnnotation) is not deleted.
// A hook's run is a file under DIR/_hooks/ (no Kubernetes namespace starts with "_"),
// named from its generateName plus five characters; it succeeds once written.
class DirectoryApplier : public Applier {
 public:
  DirectoryApplier(std::string dir, FileSystem* fs) : dir_(std::move(dir)), fs_(fs) {}
  const char* name() const override { return "directory"; }
  absl::StatusOr<ApplyResult> Apply(const v1::ManifestObject& object, const ApplyContext& context,
                                    bool first) override;
  absl::Status Delete(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::StatusOr<RemovalPreview> PreviewRemoval(const v1::ObjectKey& key,
                                                const ApplyContext& context, bool created) override;
  absl::StatusOr<bool> LeftBehind(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::StatusOr<bool> InSync(const v1::ManifestObject& object,
                              const ApplyContext& context) override;
  v1::ResourceHealth Health(const v1::ManifestObject& object, const ApplyContext& context) override;
  absl::StatusOr<v1::ObjectKey> CreateHook(const v1::ManifestObject& hook,
                                           const ApplyContext& context) override;
  absl::StatusOr<HookStatus> CheckHook(const v1::ObjectKey& live,
                                       const ApplyContext& context) override;
  absl::Status DeleteHook(const v1::ObjectKey& live, const ApplyContext& context) override;

  // The file for `key`, or InvalidArgument when a part would escape the directory.
  absl::StatusOr<std::string> PathFor(const v1::ObjectKey& key) const;

 private:
  absl::StatusOr<std::string> PathUnder(const std::string& root, const v1::ObjectKey& key) const;
  // What deleting the file for `key` would do: whether it exists, and the annotation that
  // keeps it.
  absl::StatusOr<RemovalPreview> ReadForRemoval(const v1::ObjectKey& key, std::string* path);

  const std::string dir_;
  FileSystem* const fs_;
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_APPLY_APPLIER_H_
