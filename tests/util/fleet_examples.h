#ifndef GITFLEET_TESTS_UTIL_FLEET_EXAMPLES_H_
#define GITFLEET_TESTS_UTIL_FLEET_EXAMPLES_H_

// Repository layouts moved from Rancher Fleet, as files to write.
//
//   for (const auto& [path, content] : testing::FleetKustomizeOverlays("mc/kustomize"))
//     git.Write(path, content);

#include <string>
#include <utility>
#include <vector>

namespace gitfleet::testing {

// Fleet's multi-cluster kustomize layout under `folder` (fleet.yaml left to the test): a
// base with one ConfigMap `web` (data.tier: base), and overlays/dev and overlays/prod that
// patch its tier to their name. The folder as a whole is no build: the same object twice.
std::vector<std::pair<std::string, std::string>> FleetKustomizeOverlays(const std::string& folder);

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_FLEET_EXAMPLES_H_
