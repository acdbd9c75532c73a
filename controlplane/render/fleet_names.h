#ifndef GITFLEET_CONTROLPLANE_RENDER_FLEET_NAMES_H_
#define GITFLEET_CONTROLPLANE_RENDER_FLEET_NAMES_H_

// Rancher Fleet's names for the bundles it makes of a GitRepo's folders, which a
// fleet.yaml's dependsOn names: the GitRepo's name and the folder's path joined, slashes
// made dashes, and, as Fleet makes a Helm release name of it, a checksum appended when
// cleaning changed characters (upper case, `_`, `.`) and the whole cut to 53 characters
// with a checksum of its own.
//
//   FleetBundleName("fleet-examples", "multi-cluster/helm")  // "fleet-examples-multi-cluster-helm"
//   FleetBundleName("repo", "apps/web_ui")                   // "repo-apps-web-ui-<8 hex>"
//   IsFleetNameOfFolder("fleet-examples-multi-cluster-helm", "multi-cluster/helm")  // true
//
// gitfleet does not know the GitRepo a Fleet repository was written for (its sources are
// named by their operators), so IsFleetNameOfFolder tries each name the declared one can
// start with.

#include <string>

#include "absl/strings/string_view.h"

namespace gitfleet {

// Fleet's name for the bundle of folder `path` (relative to the repository's root; "" or
// "." the root) of the GitRepo named `gitrepo`.
std::string FleetBundleName(absl::string_view gitrepo, absl::string_view path);

// Whether `declared` is Fleet's name for the bundle of folder `path` of a GitRepo with
// some name (lower case letters, digits and dashes, as Kubernetes names are). False for
// the root folder, whose bundle Fleet names after the GitRepo alone.
bool IsFleetNameOfFolder(absl::string_view declared, absl::string_view path);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_FLEET_NAMES_H_
