#include "tests/util/fleet_examples.h"

namespace gitfleet::testing {

std::vector<std::pair<std::string, std::string>> FleetKustomizeOverlays(const std::string& folder) {
  std::vector<std::pair<std::string, std::string>> files = {
      {folder + "/base/kustomization.yaml", "resources: [cm.yaml]\n"},
      {folder + "/base/cm.yaml",
       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {tier: base}\n"},
  };
  for (const std::string env : {"dev", "prod"}) {
    files.emplace_back(folder + "/overlays/" + env + "/kustomization.yaml",
                       "resources: [../../base]\npatches:\n- patch: |-\n    apiVersion: v1\n"
                       "    kind: ConfigMap\n    metadata: {name: web}\n    data: {tier: " +
                           env + "}\n");
  }
  return files;
}

}  // namespace gitfleet::testing
