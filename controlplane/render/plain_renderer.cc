#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controlplane/render/renderer.h"

namespace gitfleet {

absl::Status AddObjects(const std::string& bundle, const std::string& origin,
                        std::vector<v1::ManifestObject> objects, const RenderLimits& limits,
                        ObjectSet* set, size_t* bytes) {
  for (v1::ManifestObject& object : objects) {
    *bytes += object.yaml().size();
    absl::Status added = set->Add(std::move(object), origin);
    if (!added.ok()) return absl::InvalidArgumentError(added.message());
    if (set->size() > limits.max_objects) {
      return absl::ResourceExhaustedError(absl::StrCat("bundle ", bundle, " renders more than ",
                                                       limits.max_objects, " objects (at ", origin,
                                                       ")"));
    }
    if (*bytes > limits.max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "bundle ", bundle, " renders more than ", limits.max_bytes, " bytes (at ", origin, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ObjectSet> ObjectsFromToolOutput(const std::string& bundle,
                                                const std::string& origin, const std::string& text,
                                                const RenderLimits& limits) {
  absl::StatusOr<std::vector<v1::ManifestObject>> objects = ParseManifests(text, origin);
  if (!objects.ok()) return objects.status();
  ObjectSet set;
  size_t bytes = 0;
  absl::Status added = AddObjects(bundle, origin, *std::move(objects), limits, &set, &bytes);
  if (!added.ok()) return added;
  return set;
}

std::string DetectEngine(const std::string& path, const std::vector<RepoFile>& files) {
  std::string prefix = path.empty() ? "" : path + "/";
  auto has = [&](const char* name) {
    for (const RepoFile& file : files) {
      if (file.path == prefix + name) return true;
    }
    return false;
  };
  if (has("kustomization.yaml") || has("kustomization.yml") || has("Kustomization")) {
    return "kustomize";
  }
  if (has("Chart.yaml")) return "helm";
  if (has("main.jsonnet")) return "jsonnet";
  return "plain";
}

absl::StatusOr<ObjectSet> PlainRenderer::Render(const RenderInput& input) {
  if (input.read_paths != nullptr) *input.read_paths = {input.path};
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
    absl::Status added =
        AddObjects(input.bundle, file.path, *std::move(objects), limits_, &set, &bytes);
    if (!added.ok()) return added;
  }
  return set;
}

}  // namespace gitfleet
