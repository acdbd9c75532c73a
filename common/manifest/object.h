#ifndef GITFLEET_COMMON_MANIFEST_OBJECT_H_
#define GITFLEET_COMMON_MANIFEST_OBJECT_H_

// The manifest model: object keys, parsed objects, object sets and revisions.
//
//   absl::StatusOr<std::vector<v1::ManifestObject>> objects =
//       ParseManifests(file_text, "apps/web/deploy.yaml");
//   ObjectSet set;
//   for (auto& o : *objects) GF_RETURN_IF_ERROR(set.Add(std::move(o), "deploy.yaml"));
//   std::string revision = ComputeRevision(set, sync, "web");

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/gitfleet/v1/types.pb.h"

namespace gitfleet {

// "group/kind/namespace/name"; the core group and cluster scope are empty parts,
// e.g. "/ConfigMap/web/settings" or "rbac.authorization.k8s.io/ClusterRole//view".
std::string KeyString(const v1::ObjectKey& key);
absl::StatusOr<v1::ObjectKey> ParseKeyString(absl::string_view text);
// Human form for messages: "ConfigMap web/settings" or "Namespace web".
std::string KeyDisplay(const v1::ObjectKey& key);

// Parses one file of YAML or JSON documents into objects, in document order. Empty
// documents are skipped; `kind: List` expands to its items. Every object must have
// apiVersion, kind and metadata.name, except a hook (see hook.h), which may have
// metadata.generateName instead: its key's name is then the generateName. Errors name
// `file` and the line.
absl::StatusOr<std::vector<v1::ManifestObject>> ParseManifests(absl::string_view text,
                                                               absl::string_view file);

// Builds a ManifestObject from a YAML document: key, canonical YAML and hash.
absl::StatusOr<v1::ManifestObject> MakeObject(absl::string_view yaml, absl::string_view origin);

// The objects of one render, ordered by key string. Objects are immutable once added,
// and sets may share them: a render per cluster that changes one object of a hundred
// holds one new object and 99 shared ones. Not thread-safe (shared objects are only read).
class ObjectSet {
 public:
  using Object = std::shared_ptr<const v1::ManifestObject>;

  // Fail with AlreadyExists, naming both origins, when the key is taken. Without an
  // origin ("") the object's kind and name stand for it.
  absl::Status Add(v1::ManifestObject object, absl::string_view origin);
  absl::Status Add(Object object, absl::string_view origin = "");
  void Put(v1::ManifestObject object);
  bool Remove(const std::string& key);

  const std::map<std::string, Object>& objects() const { return objects_; }
  size_t size() const { return objects_.size(); }
  // Total YAML bytes of all objects.
  size_t bytes() const;

  // The namespace the rendered source declares for namespaced objects that name none (a
  // Tanka environment's spec.namespace), or empty. A bundle's own target namespace wins
  // over it (Revision::Build).
  const std::string& default_namespace() const { return default_namespace_; }
  void set_default_namespace(std::string ns) { default_namespace_ = std::move(ns); }

  // The fields the rendered source leaves to others (Fleet's diff.comparePatches), as
  // SyncOptions.ignore_differences: they go after the bundle's own (Revision::Build).
  const google::protobuf::RepeatedPtrField<v1::IgnoreDifference>& ignore_differences() const {
    return ignore_differences_;
  }
  google::protobuf::RepeatedPtrField<v1::IgnoreDifference>* mutable_ignore_differences() {
    return &ignore_differences_;
  }
  // Whether the rendered source asks for the objects to stay when the bundle leaves a
  // cluster (Fleet's keepResources): SyncOptions.keep_on_removal (Revision::Build).
  bool keep_on_removal() const { return keep_on_removal_; }
  void set_keep_on_removal(bool keep) { keep_on_removal_ = keep; }
  // The labels and annotations ("KEY=VALUE", sorted) the source asks a namespace the agent
  // creates to get (Fleet's namespaceLabels and namespaceAnnotations): the bundle's own come
  // first, a key once (Revision::Build).
  const std::vector<std::string>& namespace_labels() const { return namespace_labels_; }
  const std::vector<std::string>& namespace_annotations() const { return namespace_annotations_; }
  void set_namespace_metadata(std::vector<std::string> labels,
                              std::vector<std::string> annotations) {
    namespace_labels_ = std::move(labels);
    namespace_annotations_ = std::move(annotations);
  }
  // The service account ("NAMESPACE/NAME") the source asks the bundle to be applied as
  // (Fleet's serviceAccount): SyncOptions.service_account when the bundle names none
  // (Revision::Build).
  const std::string& declared_service_account() const { return declared_service_account_; }
  void set_declared_service_account(std::string account) {
    declared_service_account_ = std::move(account);
  }
  // What a set made from this one keeps of it besides the objects: the default namespace,
  // the fields left to others, keep_on_removal, the namespace metadata and the account.
  void CopyDeclarationsFrom(const ObjectSet& other) {
    declared_service_account_ = other.declared_service_account_;
    default_namespace_ = other.default_namespace_;
    ignore_differences_ = other.ignore_differences_;
    keep_on_removal_ = other.keep_on_removal_;
    namespace_labels_ = other.namespace_labels_;
    namespace_annotations_ = other.namespace_annotations_;
  }

 private:
  std::map<std::string, Object> objects_;
  std::string default_namespace_;
  google::protobuf::RepeatedPtrField<v1::IgnoreDifference> ignore_differences_;
  bool keep_on_removal_ = false;
  std::vector<std::string> namespace_labels_;
  std::vector<std::string> namespace_annotations_;
  std::string declared_service_account_;
  // Where each object added with an origin came from (for the duplicate error).
  std::map<std::string, std::string> origins_;
};

// The content hash of everything an agent needs to apply a bundle: the objects' keys
// and hashes plus the sync options and target namespace. Same inputs, same revision.
std::string ComputeRevision(const ObjectSet& set, const v1::SyncOptions& sync,
                            absl::string_view target_namespace);

// SyncOptions.ignore_differences, as `--ignore-difference` writes one rule:
// "[GROUP/]KIND[:NAMESPACE/NAME]=/POINTER" ("apps/Deployment=/spec/replicas",
// "admissionregistration.k8s.io/ValidatingWebhookConfiguration:/hooks=/webhooks/0/clientConfig/caBundle"
// for a cluster-scoped NAME, "*/*=/metadata/annotations/x" for any object). InvalidArgument
// naming what is wrong.
absl::StatusOr<v1::IgnoreDifference> ParseIgnoreDifference(absl::string_view text);
// "[GROUP/]KIND[:NAMESPACE/NAME]=/POINTER,...", as ParseIgnoreDifference reads it.
std::string DescribeIgnoreDifference(const v1::IgnoreDifference& rule);
// OK when every rule names a kind and valid JSON pointers (at most 64 rules, 16 pointers
// each, 256 bytes a pointer); InvalidArgument naming the first that does not.
absl::Status CheckIgnoreDifferences(const v1::SyncOptions& sync);
// OK when SyncOptions' namespace_labels and namespace_annotations are "KEY=VALUE" with keys
// Kubernetes takes (an optional DNS prefix and "/", a name of at most 63 characters), label
// values it takes (at most 63 characters), sorted by key, each once, at most 32 of each and
// 64 KiB of annotations; InvalidArgument naming the first that is not.
absl::Status CheckNamespaceMetadata(const v1::SyncOptions& sync);
// The JSON pointers `rules` (SyncOptions.ignore_differences) leave to others in the object
// `key` (placed in `ns`).
std::vector<std::string> IgnoredPointers(
    const google::protobuf::RepeatedPtrField<v1::IgnoreDifference>& rules, const v1::ObjectKey& key,
    absl::string_view ns);

// The change from `base` to `target`: objects added or changed, and keys removed.
struct ObjectDelta {
  std::vector<const v1::ManifestObject*> upserts;
  std::vector<v1::ObjectKey> removed;
};
ObjectDelta ComputeDelta(const ObjectSet& base, const ObjectSet& target);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MANIFEST_OBJECT_H_
