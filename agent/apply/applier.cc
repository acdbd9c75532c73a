#include "agent/apply/applier.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/names.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// Whether Argo CD's sync-options annotation value `options` ("Prune=false,Replace=true")
// holds `option`.
bool HasArgoSyncOption(absl::string_view options, absl::string_view option) {
  for (absl::string_view listed : absl::StrSplit(options, ',', absl::SkipWhitespace())) {
    if (absl::StripAsciiWhitespace(listed) == option) return true;
  }
  return false;
}

}  // namespace

std::string KeptByAnnotation(const std::function<std::string(const char* name)>& annotation) {
  if (annotation(kPruneAnnotation) == "false") return absl::StrCat(kPruneAnnotation, "=false");
  const std::string argo = annotation(kArgoSyncOptionsAnnotation);
  for (const char* option : {"Prune=false", "Delete=false"}) {
    if (HasArgoSyncOption(argo, option))
      return absl::StrCat(kArgoSyncOptionsAnnotation, "=", option);
  }
  if (annotation(kFluxPruneAnnotation) == "disabled") {
    return absl::StrCat(kFluxPruneAnnotation, "=disabled");
  }
  if (absl::StripAsciiWhitespace(annotation(kHelmResourcePolicyAnnotation)) == "keep") {
    return absl::StrCat(kHelmResourcePolicyAnnotation, "=keep");
  }
  // An object its manifest says never to apply was never gitfleet's to delete, and one whose
  // reconciling an operator turned off is left as it is.
  return IgnoredBy(annotation);
}

std::string RecreateAskedBy(const std::function<std::string(const char* name)>& annotation) {
  for (const char* name : {kForceAnnotation, kFluxForceAnnotation}) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(annotation(name)), "enabled")) {
      return absl::StrCat(name, "=", annotation(name));
    }
  }
  if (HasArgoSyncOption(annotation(kArgoSyncOptionsAnnotation), "Force=true")) {
    return absl::StrCat(kArgoSyncOptionsAnnotation, "=Force=true");
  }
  return "";
}

bool AsksPruneLast(const v1::ManifestObject& object) {
  // Most manifests do not say it: skip the parse.
  if (object.yaml().find("PruneLast") == std::string::npos) return false;
  std::string options;
  try {
    const YAML::Node annotations = YAML::Load(object.yaml())["metadata"]["annotations"];
    if (!annotations || !annotations.IsMap()) return false;
    const YAML::Node value = annotations[kArgoSyncOptionsAnnotation];
    if (!value || !value.IsScalar()) return false;
    options = value.Scalar();
  } catch (const YAML::Exception&) {
    return false;
  }
  return HasArgoSyncOption(options, "PruneLast=true");
}

void UseSyncOptions(const v1::SyncOptions& sync, ApplyContext* context) {
  context->ignore_differences = sync.ignore_differences();
  context->namespace_labels.assign(sync.namespace_labels().begin(), sync.namespace_labels().end());
  context->namespace_annotations.assign(sync.namespace_annotations().begin(),
                                        sync.namespace_annotations().end());
  context->allowed_namespaces.assign(sync.allowed_namespaces().begin(),
                                     sync.allowed_namespaces().end());
  context->allowed_cluster_kinds.assign(sync.allowed_cluster_kinds().begin(),
                                        sync.allowed_cluster_kinds().end());
  context->service_account = sync.service_account();
}

bool InAllowedNamespaces(const ApplyContext& context, const std::string& ns) {
  return context.allowed_namespaces.empty() || MatchesAnyGlob(context.allowed_namespaces, ns);
}

absl::Status CheckAllowedNamespace(Applier& applier, const v1::ManifestObject& object,
                                   const ApplyContext& context) {
  if (context.allowed_namespaces.empty()) return absl::OkStatus();
  const std::string allowed = absl::StrJoin(context.allowed_namespaces, ",");
  const v1::ObjectKey& key = object.key();
  const std::string what = absl::StrCat(
      key.kind(), " ", key.namespace_().empty() ? "" : key.namespace_() + "/", key.name());
  absl::StatusOr<bool> namespaced = applier.ServedNamespaced(object);
  if (!namespaced.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": the cluster does not serve kind ", key.kind(), " (", object.api_version(),
        ") yet, so whether it stays within the bundle's namespaces (", allowed,
        ") cannot be told"));
  }
  if (!*namespaced) {
    const std::string group = ApiGroupOf(object.api_version());
    if (!MatchesAnyKind(context.allowed_cluster_kinds, group, key.kind())) {
      return absl::PermissionDeniedError(absl::StrCat(
          what, " is cluster-scoped; the bundle's scope allows objects in namespaces ", allowed,
          context.allowed_cluster_kinds.empty()
              ? std::string(" alone")
              : absl::StrCat(" and cluster-scoped kinds ",
                             absl::StrJoin(context.allowed_cluster_kinds, ","), " alone")));
    }
    // A team may have its own namespaces as objects, never another's.
    if (group.empty() && key.kind() == "Namespace" && !InAllowedNamespaces(context, key.name())) {
      return absl::PermissionDeniedError(absl::StrCat(
          what, " is a namespace outside the bundle's scope (namespaces ", allowed, ")"));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<v1::ObjectKey> placed = applier.PlacedKey(object, context);
  if (!placed.ok()) return placed.status();
  const std::string& ns = placed->namespace_();
  if (ns.empty() || !InAllowedNamespaces(context, ns)) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " is placed in namespace ", ns.empty() ? "(none)" : ns,
                     ", outside the bundle's scope (namespaces ", allowed, ")"));
  }
  return absl::OkStatus();
}

std::string ReconcileDisabledBy(const std::function<std::string(const char* name)>& annotation) {
  for (const char* name : {kReconcileAnnotation, kFluxReconcileAnnotation}) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(annotation(name)), "disabled")) {
      return absl::StrCat(name, "=disabled");
    }
  }
  return "";
}

std::string IgnoredBy(const std::function<std::string(const char* name)>& annotation) {
  if (std::string disabled = ReconcileDisabledBy(annotation); !disabled.empty()) return disabled;
  for (const char* name : {kSsaAnnotation, kFluxSsaAnnotation}) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(annotation(name)), "Ignore")) {
      return absl::StrCat(name, "=Ignore");
    }
  }
  return "";
}

ApplyPolicy ApplyPolicyOf(const std::function<std::string(const char* name)>& annotation) {
  if (!ReconcileDisabledBy(annotation).empty()) return ApplyPolicy::kIgnore;
  for (const char* name : {kSsaAnnotation, kFluxSsaAnnotation}) {
    const absl::string_view value = absl::StripAsciiWhitespace(annotation(name));
    if (absl::EqualsIgnoreCase(value, "IfNotPresent")) return ApplyPolicy::kIfNotPresent;
    if (absl::EqualsIgnoreCase(value, "Ignore")) return ApplyPolicy::kIgnore;
  }
  return ApplyPolicy::kOverride;
}

}  // namespace gitfleet
