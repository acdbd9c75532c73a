#ifndef GITFLEET_COMMON_MANIFEST_HOOK_H_
#define GITFLEET_COMMON_MANIFEST_HOOK_H_

// Hooks: objects a revision's sync creates at a point of its own (a database migration
// Job before the apply, a smoke test after it), rather than applies and keeps.
//
// An object is a hook when it carries Argo CD's or Helm's hook annotation, as real
// repositories write them:
//
//   argocd.argoproj.io/hook: PreSync | Sync | PostSync | SyncFail | PreDelete | PostDelete |
//                            Skip  (comma-separated)
//   argocd.argoproj.io/hook-delete-policy: HookSucceeded, HookFailed, BeforeHookCreation
//   helm.sh/hook: pre-install, pre-upgrade (PreSync), post-install, post-upgrade (PostSync),
//                 pre-delete (PreDelete), post-delete (PostDelete)
//   helm.sh/hook-delete-policy: hook-succeeded, hook-failed, before-hook-creation
//
// PreDelete and PostDelete run only when the bundle is removed from a cluster with its
// objects (before the prune, and after it), as `helm uninstall` and Argo CD's deletion of
// an Application run them; never in a sync. Argo CD's annotation wins over Helm's. Helm's
// rollback and test hooks and Argo CD's Skip name no phase: such an object is a hook that
// never runs. Without a delete policy a hook's previous run is deleted before the next is
// created (BeforeHookCreation), as in both tools. A hook's wave (its order within the
// phase) is gitfleet.io/sync-wave, else argocd.argoproj.io/sync-wave, else
// helm.sh/hook-weight.
//
// A hook may be named by `metadata.generateName` (the server picks the name) where every
// other object needs `metadata.name`; its key then carries the generateName as its name.
//
//   absl::StatusOr<std::optional<Hook>> hook = HookOf(object);
//   if (hook.ok() && *hook && (*hook)->Runs(HookPhase::kPreSync)) ...

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/gitfleet/v1/types.pb.h"

namespace YAML {
class Node;
}

namespace gitfleet {

enum class HookPhase { kPreSync, kSync, kPostSync, kSyncFail, kPreDelete, kPostDelete };
// "PreSync", "Sync", "PostSync", "SyncFail", "PreDelete", "PostDelete".
const char* HookPhaseName(HookPhase phase);

struct Hook {
  std::vector<HookPhase> phases;  // as annotated; empty for a hook that never runs
  std::string never_runs;         // why, when `phases` is empty ("helm.sh/hook: test")
  bool delete_before_creation = false;
  bool delete_on_success = false;
  bool delete_on_failure = false;
  int wave = 0;
  bool generated_name = false;  // named by metadata.generateName

  bool Runs(HookPhase phase) const;
};

inline constexpr char kArgoHookAnnotation[] = "argocd.argoproj.io/hook";
inline constexpr char kHelmHookAnnotation[] = "helm.sh/hook";
inline constexpr char kSyncWaveAnnotation[] = "gitfleet.io/sync-wave";
inline constexpr char kArgoSyncWaveAnnotation[] = "argocd.argoproj.io/sync-wave";

// The sync wave `metadata` declares for an object that is not a hook: gitfleet's
// annotation, else Argo CD's; 0 with neither. InvalidArgument naming the annotation and
// value when it is not an integer. (A hook's wave is Hook::wave.)
absl::StatusOr<int> SyncWaveOfMetadata(const YAML::Node& metadata);

// The hook `metadata` (a YAML mapping) declares, nullopt when it declares none;
// InvalidArgument naming the annotation and value when one is not understood.
absl::StatusOr<std::optional<Hook>> HookOfMetadata(const YAML::Node& metadata);
// The same for a rendered object (cheap for the common object that is not a hook).
absl::StatusOr<std::optional<Hook>> HookOf(const v1::ManifestObject& object);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MANIFEST_HOOK_H_
