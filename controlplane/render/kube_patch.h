#ifndef GITFLEET_CONTROLPLANE_RENDER_KUBE_PATCH_H_
#define GITFLEET_CONTROLPLANE_RENDER_KUBE_PATCH_H_

// Kubernetes' three kinds of patch, applied to one object as YAML nodes, as Rancher Fleet
// applies a yaml overlay's `_patch.` file (wrangler's patch.Apply):
//   - a list of operations is a JSON Patch (RFC 6902: add, remove, replace, move, copy,
//     test, at RFC 6901 pointers);
//   - a mapping patching an object of a kind built into Kubernetes (apps/v1 Deployment,
//     v1 Service, ...) is a strategic merge patch: the lists Kubernetes merges are merged by
//     their items' keys (containers by name, ports by containerPort, env by name, ...;
//     finalizers as a set), every other list replaced, with the `$patch` (replace, delete),
//     `$retainKeys` and `$deleteFromPrimitiveList/` directives; new items land where
//     Kubernetes puts them, and a value given whole loses its nulls and what carries a
//     `$patch`, as in Kubernetes;
//   - a mapping patching any other object (a custom resource, a CRD) is a JSON merge patch
//     (RFC 7386): maps merged, lists replaced, a null removing a key.
// Errors name `what` and the key or operation at fault; a `$setElementOrder/` directive
// (which kubectl writes, and people do not) and a `$` key in a merge patch (which Fleet
// would write as a field) are refused by name.
//
//   GF_ASSIGN_OR_RETURN(YAML::Node patched, ApplyKubePatch(object, patch, "prod/svc_patch.yaml"));

#include <string>

#include "absl/status/statusor.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {

// Which of the three `patch` is for `object`: "json", "strategic" or "merge".
std::string KubePatchKind(const YAML::Node& object, const YAML::Node& patch);

// `object` with `patch` applied (neither is changed).
absl::StatusOr<YAML::Node> ApplyKubePatch(const YAML::Node& object, const YAML::Node& patch,
                                          const std::string& what);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_KUBE_PATCH_H_
