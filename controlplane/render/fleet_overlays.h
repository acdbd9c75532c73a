#ifndef GITFLEET_CONTROLPLANE_RENDER_FLEET_OVERLAYS_H_
#define GITFLEET_CONTROLPLANE_RENDER_FLEET_OVERLAYS_H_

// Rancher Fleet's yaml overlays, for a plain bundle's folder that holds a fleet.yaml. Its
// `overlays/` folder is not manifests: `overlays/NAME/` is applied over the folder's files
// for the clusters whose target names NAME (`yaml.overlays`, in order), by file name:
//   - `overlays/prod/svc.yaml` replaces `svc.yaml` (or is added when there is none);
//   - `overlays/prod/deploy_patch.yaml` patches `deploy.yaml` (its first `_patch.` read as
//     `.`), whose one object it patches as Fleet does (kube_patch.h): a list of operations
//     as a JSON Patch, a mapping as a strategic merge patch for a kind built into Kubernetes
//     (containers merged by name, ...), else as a JSON merge patch (a null removes a key).
//
//   GF_ASSIGN_OR_RETURN(std::vector<RepoFile> files,
//                       ApplyFleetOverlays("apps/web", input.files, {"prod"}, &notes));

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

inline constexpr size_t kMaxFleetOverlays = 16;

// The files a plain render of `path` reads: `files` less everything under `path`/overlays/,
// with `overlays` applied in order (each file named by its repository path: a replacement
// or an added file under its own, a patched file under the file it patches). Notes say
// what was left out and patched. InvalidArgument naming the overlay and file at fault: a
// name that is not one folder, an overlay with no files, a patch of a file that is not
// there or holds other than one object, or a patch that cannot be applied (kube_patch.h).
absl::StatusOr<std::vector<RepoFile>> ApplyFleetOverlays(const std::string& path,
                                                         const std::vector<RepoFile>& files,
                                                         const std::vector<std::string>& overlays,
                                                         std::vector<std::string>* notes);

// `patch` (one document: a mapping or a list of JSON Patch operations, as YAML) applied to
// `object` (one object, as YAML) as Fleet applies it (ApplyKubePatch); the result as block
// YAML. `what` names the patch in errors.
absl::StatusOr<std::string> PatchYaml(const std::string& object, const std::string& patch,
                                      const std::string& what);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_FLEET_OVERLAYS_H_
