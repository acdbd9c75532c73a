// Kubernetes' patches as Fleet applies a yaml overlay's patch: a repository's object and
// patch may hold anything.
#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/render/fleet_overlays.h"
#include "tests/fuzz/chunks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The object, then the patch; with only one, a Deployment is patched.
  std::vector<std::string> chunks = gitfleet::fuzz::Chunks(data, size, 2);
  if (chunks.empty()) return 0;
  const std::string object =
      chunks.size() > 1 ? chunks[0]
                        : "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n"
                          "  template:\n    spec:\n      containers: [{name: a, image: a}]\n";
  (void)gitfleet::PatchYaml(object, chunks.back(), "p");
  return 0;
}
