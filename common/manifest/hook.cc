#include "common/manifest/hook.h"

#include <algorithm>
#include <initializer_list>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

constexpr char kArgoDeletePolicy[] = "argocd.argoproj.io/hook-delete-policy";
constexpr char kHelmDeletePolicy[] = "helm.sh/hook-delete-policy";
constexpr char kHelmWeight[] = "helm.sh/hook-weight";

std::string Annotation(const YAML::Node& annotations, const char* name) {
  if (!annotations || !annotations.IsMap()) return "";
  YAML::Node value = annotations[name];
  return value && value.IsScalar() ? value.Scalar() : "";
}

// The first of `names` that is set, as an integer; 0 when none is.
absl::StatusOr<int> WaveOf(const YAML::Node& annotations,
                           std::initializer_list<const char*> names) {
  for (const char* name : names) {
    std::string text = Annotation(annotations, name);
    if (text.empty()) continue;
    int wave = 0;
    if (!absl::SimpleAtoi(text, &wave)) {
      return absl::InvalidArgumentError(
          absl::StrCat("annotation ", name, " is \"", text, "\", want an integer"));
    }
    return wave;
  }
  return 0;
}

std::vector<std::string> List(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(item));
  }
  return out;
}

absl::Status Unknown(const char* annotation, absl::string_view value, absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("annotation ", annotation, " has \"", value, "\", want one of ", want));
}

void AddPhase(Hook& hook, HookPhase phase) {
  if (std::find(hook.phases.begin(), hook.phases.end(), phase) == hook.phases.end()) {
    hook.phases.push_back(phase);
  }
}

absl::Status ArgoPhases(absl::string_view value, Hook& hook) {
  for (const std::string& item : List(value)) {
    if (item == "PreSync") {
      AddPhase(hook, HookPhase::kPreSync);
    } else if (item == "Sync") {
      AddPhase(hook, HookPhase::kSync);
    } else if (item == "PostSync") {
      AddPhase(hook, HookPhase::kPostSync);
    } else if (item == "SyncFail") {
      AddPhase(hook, HookPhase::kSyncFail);
    } else if (item == "PreDelete") {
      AddPhase(hook, HookPhase::kPreDelete);
    } else if (item == "PostDelete") {
      AddPhase(hook, HookPhase::kPostDelete);
    } else if (item == "Skip") {
      hook.never_runs = absl::StrCat(kArgoHookAnnotation, ": ", item);
    } else {
      return Unknown(kArgoHookAnnotation, item,
                     "PreSync, Sync, PostSync, SyncFail, PreDelete, PostDelete, Skip");
    }
  }
  return absl::OkStatus();
}

absl::Status HelmPhases(absl::string_view value, Hook& hook) {
  for (const std::string& item : List(value)) {
    if (item == "pre-install" || item == "pre-upgrade") {
      AddPhase(hook, HookPhase::kPreSync);
    } else if (item == "post-install" || item == "post-upgrade") {
      AddPhase(hook, HookPhase::kPostSync);
    } else if (item == "pre-delete") {
      AddPhase(hook, HookPhase::kPreDelete);
    } else if (item == "post-delete") {
      AddPhase(hook, HookPhase::kPostDelete);
    } else if (item == "pre-rollback" || item == "post-rollback" || item == "test" ||
               item == "test-success" || item == "test-failure" || item == "crd-install") {
      hook.never_runs = absl::StrCat(kHelmHookAnnotation, ": ", item);
    } else {
      return Unknown(kHelmHookAnnotation, item,
                     "pre-install, pre-upgrade, post-install, post-upgrade, pre-delete, "
                     "post-delete, pre-rollback, post-rollback, test");
    }
  }
  return absl::OkStatus();
}

absl::Status DeletePolicies(const char* annotation, absl::string_view value, bool helm,
                            Hook& hook) {
  for (const std::string& item : List(value)) {
    if (item == (helm ? "hook-succeeded" : "HookSucceeded")) {
      hook.delete_on_success = true;
    } else if (item == (helm ? "hook-failed" : "HookFailed")) {
      hook.delete_on_failure = true;
    } else if (item == (helm ? "before-hook-creation" : "BeforeHookCreation")) {
      hook.delete_before_creation = true;
    } else {
      return Unknown(annotation, item,
                     helm ? "hook-succeeded, hook-failed, before-hook-creation"
                          : "HookSucceeded, HookFailed, BeforeHookCreation");
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* HookPhaseName(HookPhase phase) {
  switch (phase) {
    case HookPhase::kPreSync:
      return "PreSync";
    case HookPhase::kSync:
      return "Sync";
    case HookPhase::kPostSync:
      return "PostSync";
    case HookPhase::kSyncFail:
      return "SyncFail";
    case HookPhase::kPreDelete:
      return "PreDelete";
    case HookPhase::kPostDelete:
      return "PostDelete";
  }
  return "?";
}

bool Hook::Runs(HookPhase phase) const {
  return std::find(phases.begin(), phases.end(), phase) != phases.end();
}

absl::StatusOr<std::optional<Hook>> HookOfMetadata(const YAML::Node& metadata) {
  if (!metadata || !metadata.IsMap()) return std::nullopt;
  const YAML::Node annotations = metadata["annotations"];
  const std::string argo = Annotation(annotations, kArgoHookAnnotation);
  const std::string helm = Annotation(annotations, kHelmHookAnnotation);
  if (argo.empty() && helm.empty()) return std::nullopt;
  Hook hook;
  const bool use_argo = !argo.empty();
  absl::Status phases = use_argo ? ArgoPhases(argo, hook) : HelmPhases(helm, hook);
  if (!phases.ok()) return phases;
  if (!hook.phases.empty()) hook.never_runs.clear();
  std::string argo_policy = Annotation(annotations, kArgoDeletePolicy);
  std::string helm_policy = Annotation(annotations, kHelmDeletePolicy);
  if (!argo_policy.empty()) {
    absl::Status policy = DeletePolicies(kArgoDeletePolicy, argo_policy, false, hook);
    if (!policy.ok()) return policy;
  } else if (!helm_policy.empty()) {
    absl::Status policy = DeletePolicies(kHelmDeletePolicy, helm_policy, true, hook);
    if (!policy.ok()) return policy;
  } else {
    hook.delete_before_creation = true;  // both tools' default
  }
  absl::StatusOr<int> wave =
      WaveOf(annotations, {kSyncWaveAnnotation, kArgoSyncWaveAnnotation, kHelmWeight});
  if (!wave.ok()) return wave.status();
  hook.wave = *wave;
  YAML::Node name = metadata["name"];
  hook.generated_name = !name || name.IsNull() || (name.IsScalar() && name.Scalar().empty());
  return hook;
}

absl::StatusOr<int> SyncWaveOfMetadata(const YAML::Node& metadata) {
  if (!metadata || !metadata.IsMap()) return 0;
  return WaveOf(metadata["annotations"], {kSyncWaveAnnotation, kArgoSyncWaveAnnotation});
}

absl::StatusOr<std::optional<Hook>> HookOf(const v1::ManifestObject& object) {
  // Most objects are not hooks: no parse for them.
  if (object.yaml().find(kArgoHookAnnotation) == std::string::npos &&
      object.yaml().find(kHelmHookAnnotation) == std::string::npos) {
    return std::nullopt;
  }
  try {
    return HookOfMetadata(YAML::Load(object.yaml())["metadata"]);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("object YAML does not parse: ", e.msg));
  }
}

}  // namespace gitfleet
