#ifndef GITFLEET_AGENT_KUBE_APPLIER_H_
#define GITFLEET_AGENT_KUBE_APPLIER_H_

// The Applier for a real Kubernetes API server.
//
//   KubernetesApplier applier(client.get(), &mapper, {});
//   absl::StatusOr<ApplyResult> applied = applier.Apply(object, {"web", "web-prod"}, true);
//
// Apply is a server-side apply (PATCH application/apply-patch+yaml, fieldManager
// gitfleet, force) of the object with the `gitfleet.io/bundle` label added, into the
// object's namespace, else the bundle's target namespace, else the configured default
// (namespaced kinds only). A custom resource whose CRD this applier just applied waits
// (up to `crd_wait`) for the CRD to be Established and served.
//
// The first apply of an object by a bundle reads it first: an existing object labelled
// for another bundle is a conflict (FailedPrecondition), never taken over; any other
// existing object was found, not created (ApplyResult::created is false). Release gives a
// found object back as it is: gitfleet's field manager lets go of every field and the
// bundle label goes, nothing else changes; it is deleted only when annotated
// `gitfleet.io/prune: "true"`.
//
// Fields gitfleet applies that an earlier tool also owns with the same value
// (`shared_field_managers`: kubectl's client-side apply, Helm, Argo CD, Flux, fields from
// before managedFields) become gitfleet's alone after the apply, so that a field dropped
// from Git later is removed rather than kept for the earlier tool. Fields gitfleet does
// not apply stay theirs.
//
// Delete removes only what gitfleet owns: the live object must carry the bundle's label,
// and an object annotated `gitfleet.io/prune: "false"` is kept. Deletion is Background
// propagation with the live uid as precondition, so an object re-created meanwhile by
// someone else is not removed. Nor is what would take objects nobody asked to delete with
// it (FailedPrecondition): a Namespace that still holds PersistentVolumeClaims (with a
// Delete reclaim policy, their volumes' data; a StatefulSet's claims outlive it, and a
// claim may be annotated to be kept), or a CustomResourceDefinition that still has
// custom resources (whoever made them). Objects already being deleted do not count. It
// is deleted once they are gone, or at once when annotated `gitfleet.io/prune: "true"`.
//
// InSync compares the fields gitfleet applies with the live object (see
// FirstDifference): server defaults and status do not count as drift. Health reads what
// the last Apply, InSync or Refresh response held, so an apply costs one request.
//
// Thread-safe.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "agent/apply/applier.h"
#include "agent/kube/client.h"
#include "agent/kube/discovery.h"
#include "common/sync.h"
#include "nlohmann/json.hpp"

namespace gitfleet {

inline constexpr char kBundleLabel[] = "gitfleet.io/bundle";
// "apps/v1" -> {"apps", "v1"}; "v1" -> {"", "v1"}.
std::pair<std::string, std::string> SplitApiVersion(const std::string& api_version);
// On every run of a hook, beside the bundle label: `kubectl get jobs -l gitfleet.io/hook`.
inline constexpr char kHookLabel[] = "gitfleet.io/hook";
// On a namespace created because a bundle's target namespace was missing
// (SyncOptions.create_namespace): the bundle it was created for.
inline constexpr char kCreatedForBundleAnnotation[] = "gitfleet.io/created-for-bundle";

// kubectl (client-side and server-side apply, edit, patch...), fields of objects from
// before managedFields, Helm, Argo CD, Flux.
std::vector<std::string> DefaultSharedFieldManagers();

// What of the FieldsV1 set `theirs` is not in `mine`: the fields another manager keeps
// once `mine`'s are taken from it.
nlohmann::json FieldsNotIn(const nlohmann::json& theirs, const nlohmann::json& mine);

// The CRDs an agent's appliers applied, by "group/Kind": shared by its own applier and
// those acting as service accounts, so a custom resource waits for its CRD whichever of
// them applied it (another bundle's, applied as another account). Thread-safe.
class AppliedCrds {
 public:
  void Put(const std::string& group_kind, const std::string& crd);
  // The CRD's name, or "" when none was applied for that kind.
  std::string Find(const std::string& group_kind) const;

 private:
  static constexpr size_t kMaxCrds = 10000;
  mutable Mutex mu_;
  std::map<std::string, std::string> crds_ ABSL_GUARDED_BY(mu_);
};

class KubernetesApplier : public Applier {
 public:
  struct Options {
    std::string field_manager = "gitfleet";
    // Field managers (a trailing `*` matches a prefix) whose fields gitfleet takes where it
    // applies the same value; empty: none.
    std::vector<std::string> shared_field_managers = DefaultSharedFieldManagers();
    std::string default_namespace = "default";
    // How long a custom resource waits for a CRD applied just before it.
    absl::Duration crd_wait = absl::Seconds(60);
    absl::Duration poll_interval = absl::Milliseconds(200);
    // Told how many objects turn reconciling off on their live object, when it changes.
    std::function<void(size_t)> on_not_reconciled;
    // How long the HorizontalPodAutoscalers of a namespace are remembered between reads.
    absl::Duration autoscaler_cache = absl::Seconds(10);
    // Told of each object an apply wrote: its kind's collection across namespaces
    // ("/apis/apps/v1/deployments"), "namespace/name" and the resourceVersion written, so a
    // change watch knows its own writes (DriftWatcher::Written). Unset: none is told.
    std::function<void(const std::string&, const std::string&, const std::string&)> on_written;
    // Shared with the agent's other appliers; null: one of its own.
    std::shared_ptr<AppliedCrds> crds;
  };

  KubernetesApplier(KubeClient* client, RestMapper* mapper, Options options)
      : client_(client),
        mapper_(mapper),
        options_(std::move(options)),
        crds_(options_.crds != nullptr ? options_.crds : std::make_shared<AppliedCrds>()) {}

  const char* name() const override { return "kubernetes"; }
  absl::StatusOr<ApplyResult> Apply(const v1::ManifestObject& object, const ApplyContext& context,
                                    bool first) override;
  absl::Status Delete(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::Status Release(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::StatusOr<bool> LeftBehind(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::StatusOr<bool> Terminating(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::StatusOr<RemovalPreview> PreviewRemoval(const v1::ObjectKey& key,
                                                const ApplyContext& context, bool created) override;
  absl::StatusOr<bool> InSync(const v1::ManifestObject& object,
                              const ApplyContext& context) override;
  v1::ResourceHealth Health(const v1::ManifestObject& object, const ApplyContext& context) override;
  void Refresh(const v1::ManifestObject& object, const ApplyContext& context) override;
  bool Namespaced(const v1::ManifestObject& object) override;
  absl::StatusOr<bool> ServedNamespaced(const v1::ManifestObject& object) override;
  absl::StatusOr<v1::ObjectKey> PlacedKey(const v1::ManifestObject& object,
                                          const ApplyContext& context) override;
  absl::StatusOr<v1::ObjectKey> ResolveKey(const v1::ObjectKey& key,
                                           const ApplyContext& context) override;
  // A hook's run is a POST of the object (its name generated from generateName), labelled
  // for the bundle and gitfleet.io/hook=true. Jobs run until their Complete or Failed
  // condition, Pods until phase Succeeded or Failed; other kinds succeed once created.
  absl::StatusOr<v1::ObjectKey> CreateHook(const v1::ManifestObject& hook,
                                           const ApplyContext& context) override;
  absl::StatusOr<HookStatus> CheckHook(const v1::ObjectKey& live,
                                       const ApplyContext& context) override;
  absl::Status DeleteHook(const v1::ObjectKey& live, const ApplyContext& context) override;
  // Lists the bundle's objects (label gitfleet.io/bundle) once per kind and namespace.
  void BeginDriftCheck(const std::vector<const v1::ManifestObject*>& objects,
                       const ApplyContext& context) override;
  void EndDriftCheck() override;
  // Reads the changed objects (listed by kind and namespace, or each read just before its
  // apply when a kind and namespace has few) for what they ask of gitfleet: reconciling
  // turned off since the last drift check.
  void BeginApply(const std::vector<const v1::ManifestObject*>& objects,
                  const ApplyContext& context) override;

  // What a server-side apply would change, from a dry run (dryRun=All): "" when the
  // live object would stay as it is, "create" when it does not exist, else the first
  // differing field path.
  absl::StatusOr<std::string> Preview(const v1::ManifestObject& object,
                                      const ApplyContext& context) override;

 private:
  struct Target {
    ApiResource resource;
    std::string ns;
    nlohmann::json body;  // what is sent
  };

  // Resolves the resource and namespace and builds the body. With `wait_for_crd`, an
  // unknown kind whose CRD this applier applied waits for it to be served.
  absl::StatusOr<Target> Prepare(const v1::ManifestObject& object, const ApplyContext& context,
                                 bool wait_for_crd);
  // The first field a server-side apply of `target` would change in `live` ("" for
  // none), from a dry run at `path`.
  absl::StatusOr<std::string> DryRunDifference(const Target& target, const std::string& path,
                                               nlohmann::json live);
  absl::StatusOr<ApiResource> WaitForCrd(const std::string& group, const std::string& version,
                                         const std::string& kind, const std::string& crd);
  // `key` in the namespace an object of `resource` without one goes to.
  v1::ObjectKey Place(v1::ObjectKey key, const absl::StatusOr<ApiResource>& resource,
                      const ApplyContext& context) const;
  // Where `key` lives and the live object (null when it, or its kind, is gone), for Delete,
  // Release, LeftBehind and PreviewRemoval. ReadForRemoval also forgets the health
  // remembered for it.
  struct Live {
    ApiResource resource;
    std::string ns;
    std::string path;
    nlohmann::json object;
  };
  absl::StatusOr<Live> ReadLive(const v1::ObjectKey& key, const ApplyContext& context);
  // Why deleting `claim` (a PersistentVolumeClaim) would destroy data: it is bound to a
  // volume whose reclaim policy is not Retain, or that cannot be read; "" when not.
  absl::StatusOr<std::string> ClaimDestroys(const nlohmann::json& claim);
  // Why deleting `live` would delete objects nobody asked to delete: a Namespace's
  // PersistentVolumeClaims, or Secrets that Git cannot bring back (made by hand or by
  // another tool, or kept by an annotation of `bundle`'s; not a service account's token,
  // nor one another object owns or another bundle applies); a CustomResourceDefinition's
  // custom resources; a bound claim's volume data (ClaimDestroys). "" when it would not,
  // or it is annotated to be deleted all the same.
  absl::StatusOr<std::string> DeletionDestroys(const v1::ObjectKey& key, const Live& live,
                                               const std::string& bundle);
  // What a list of `what` at `path` holds that counts (`holds`): names (namespace/name when
  // `cluster_wide`), read `kHeldPage` a page for at most `pages` pages. A page's list
  // stops at the first that holds anything; `more` when pages were left unread (with no
  // name found, a note saying so stands for one: unknown is not empty).
  struct Held {
    std::vector<std::string> names;
    bool more = false;
  };
  static constexpr int kHeldPage = 100;
  static constexpr int kSecretPages = 10;
  absl::StatusOr<Held> ListHeld(const std::string& path, const std::string& what, bool cluster_wide,
                                int pages, const std::function<bool(const nlohmann::json&)>& holds);
  absl::StatusOr<Live> ReadForRemoval(const v1::ObjectKey& key, const ApplyContext& context);
  // Reads the live object; nullopt-like null json when it does not exist.
  absl::StatusOr<nlohmann::json> Get(const std::string& path);
  // Creates namespace `ns` for `bundle` (annotated gitfleet.io/created-for-bundle, without
  // the bundle's label: no bundle manages or prunes it). One that exists already is fine.
  absl::Status CreateNamespace(const std::string& ns, const ApplyContext& context);
  // Adds to namespace `ns`, when it was created for `context`'s bundle, the labels and
  // annotations the bundle asks for that it lacks or holds with another value (a merge
  // patch; nothing is removed). Read once per namespace and asked metadata, then remembered.
  absl::Status UpdateCreatedNamespace(const std::string& ns, const ApplyContext& context);
  // Deletes the live object at `path` (this bundle's, annotated to be recreated, see
  // kForceAnnotation) so that an apply the server refused for a field that cannot change
  // creates it again; waits, bounded, until it is gone. FailedPrecondition saying why not:
  // another bundle's or no bundle's, annotated to be kept, or its deletion would take
  // objects nobody asked to delete.
  absl::Status DeleteToRecreate(const v1::ObjectKey& key, const Target& target,
                                const std::string& path, const ApplyContext& context);
  void Remember(const std::string& bundle, const v1::ObjectKey& key, v1::ResourceHealth health);
  // The HorizontalPodAutoscaler ("namespace/name") that scales the object `key` in `ns`
  // when `body` sets its replicas; "" when none does or they cannot be read. The
  // namespace's autoscalers are read at most once per `autoscaler_cache`.
  std::string AutoscaledBy(const v1::ObjectKey& key, const std::string& ns,
                           const nlohmann::json& body);
  // Records whether the live object at `path` turned reconciling off; the annotation that
  // did ("name=disabled"), or "".
  std::string NoteLiveReconcile(const std::string& path, const nlohmann::json& live);
  // Lists the bundle's objects in `collections` (path -> resource), noting which turn
  // reconciling off; `keep`: kept for InSync (a drift check).
  void ListBundle(const std::map<std::string, ApiResource>& collections,
                  const ApplyContext& context, bool keep);
  // Where `object` lives: its resource and namespace ("" for cluster-scoped); nullopt
  // when its kind is not served.
  std::optional<std::pair<ApiResource, std::string>> PlaceOf(const v1::ManifestObject& object,
                                                             const ApplyContext& context);
  // What others own in `body` takes `live`'s values: the fields `context` ignores, and the
  // replicas of a workload an autoscaler scales (`scaler`, from AutoscaledBy).
  void LeaveToOthers(const v1::ObjectKey& key, const std::string& ns, const ApplyContext& context,
                     const std::string& scaler, const nlohmann::json& live, nlohmann::json* body);
  // After an apply whose response is `applied`: the fields gitfleet applied that a
  // manager in `shared_field_managers` owns too become gitfleet's alone (a JSON patch of
  // managedFields, on the resourceVersion the response holds). A failure changes nothing
  // and is tried again at the next apply.
  absl::Status TakeSharedFields(const std::string& path, const nlohmann::json& applied);
  // The JSON patch of `object`'s managedFields that takes the fields gitfleet's apply owns
  // from the managers in `shared_field_managers` (named in `from`); nullopt: none to take.
  std::optional<nlohmann::json> SharedFieldsPatch(const nlohmann::json& object,
                                                  std::set<std::string>* from) const;
  bool Shared(const std::string& manager) const;

  KubeClient* const client_;
  RestMapper* const mapper_;
  const Options options_;

  Mutex mu_;
  // "bundle\0key" -> the health the last response showed.
  std::map<std::string, v1::ResourceHealth> health_ ABSL_GUARDED_BY(mu_);
  // During a drift check: the bundle's live objects as listed, by object path.
  std::map<std::string, nlohmann::json> prefetched_ ABSL_GUARDED_BY(mu_);
  // namespace -> when its autoscalers were read, and what they scale: "group/Kind/name" ->
  // "namespace/name" of the autoscaler.
  struct Autoscalers {
    absl::Time read;
    std::map<std::string, std::string> targets;
  };
  std::map<std::string, Autoscalers> autoscalers_ ABSL_GUARDED_BY(mu_);
  // Namespaces whose autoscalers could not be listed (said once each).
  std::set<std::string> autoscalers_unread_ ABSL_GUARDED_BY(mu_);
  // Object paths whose live object turned reconciling off (LiveReconcileDisabled), as the
  // last drift check or read saw them: their next apply reads them first.
  static constexpr size_t kMaxLiveDisabled = 10000;
  std::set<std::string> live_disabled_ ABSL_GUARDED_BY(mu_);
  // Object paths a new revision changes, read just before their apply (BeginApply); at
  // most kMaxLiveDisabled, beyond which their kinds are listed.
  std::set<std::string> read_first_ ABSL_GUARDED_BY(mu_);
  // namespace -> "bundle\nmetadata" UpdateCreatedNamespace last made sure of.
  std::map<std::string, std::string> namespace_metadata_ ABSL_GUARDED_BY(mu_);
  // Objects whose replicas were said to be left to an autoscaler (logged once each).
  std::set<std::string> autoscaled_said_ ABSL_GUARDED_BY(mu_);
  const std::shared_ptr<AppliedCrds> crds_;
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_KUBE_APPLIER_H_
