// Argo CD's parameter overrides in a repository (`.argocd-source.yaml` and the
// Application's own file), merged and applied to a kustomization as Argo CD's `kustomize
// edit` commands apply them: a repository's files may hold anything.
#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/render/argocd_source.h"
#include "tests/fuzz/chunks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The shared file, the Application's file, then the kustomization they edit.
  std::vector<std::string> chunks = gitfleet::fuzz::Chunks(data, size, 3);
  if (chunks.empty()) return 0;
  std::vector<gitfleet::RepoFile> files = {{"apps/web/.argocd-source.yaml", chunks[0]}};
  if (chunks.size() > 1) files.push_back({"apps/web/.argocd-source-web.yaml", chunks[1]});
  const std::string kustomization = chunks.size() > 2 ? chunks[2] : "resources: [a.yaml]\n";
  absl::StatusOr<gitfleet::ArgoCdSource> source =
      gitfleet::ReadArgoCdSource("apps/web", "web", files);
  if (!source.ok()) return 0;
  // What is read is bounded, whatever the files say.
  const gitfleet::ArgoCdKustomize& k = source->kustomize;
  if (source->kustomize_images.size() > gitfleet::kMaxArgoCdOverrides ||
      source->helm_parameters.size() > gitfleet::kMaxArgoCdOverrides ||
      source->helm.api_versions.size() > gitfleet::kMaxArgoCdOverrides ||
      k.components.size() > gitfleet::kMaxArgoCdKustomizeAdditions ||
      k.patches.size() > gitfleet::kMaxArgoCdKustomizeAdditions) {
    __builtin_trap();
  }
  for (const auto& parameter : source->helm_parameters) {
    (void)gitfleet::ArgoCdHelmSetValue(parameter.value);
  }
  // Setting the images is idempotent, as `kustomize edit set image` is.
  absl::StatusOr<std::string> images =
      gitfleet::SetKustomizeImages(kustomization, source->kustomize_images);
  if (images.ok()) {
    absl::StatusOr<std::string> again =
        gitfleet::SetKustomizeImages(*images, source->kustomize_images);
    if (!again.ok() || *again != *images) __builtin_trap();
  }
  (void)gitfleet::SetArgoCdKustomizeFields(kustomization, source->kustomize);
  return 0;
}
