#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controlplane/render/renderer.h"

namespace gitfleet {

absl::StatusOr<ObjectSet> PlainRenderer::Render(const RenderInput& input) {
  ObjectSet set;
  size_t bytes = 0;
  for (const RepoFile& file : input.files) {
    if (!absl::EndsWith(file.path, ".yaml") && !absl::EndsWith(file.path, ".yml") &&
        !absl::EndsWith(file.path, ".json")) {
      continue;
    }
    absl::StatusOr<std::vector<v1::ManifestObject>> objects =
        ParseManifests(file.content, file.path);
    if (!objects.ok()) return objects.status();
    for (v1::ManifestObject& object : *objects) {
      bytes += object.yaml().size();
      std::string origin = file.path;
      absl::Status added = set.Add(std::move(object), origin);
      if (!added.ok()) return absl::InvalidArgumentError(added.message());
      if (set.size() > limits_.max_objects) {
        return absl::ResourceExhaustedError(absl::StrCat("bundle ", input.bundle,
                                                         " renders more than ", limits_.max_objects,
                                                         " objects (at ", file.path, ")"));
      }
      if (bytes > limits_.max_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat("bundle ", input.bundle,
                                                         " renders more than ", limits_.max_bytes,
                                                         " bytes (at ", file.path, ")"));
      }
    }
  }
  return set;
}

}  // namespace gitfleet
