// What a bundle's folder declares for itself: fleet.yaml (read by RenderBundlePath for every
// engine) and a Tanka environment's spec.json (read by the jsonnet engine). Both come from
// the repository, so any text must give an answer, never a throw or a crash. Rendered as
// plain files for every cluster alike, for one cluster (fleet.yaml's targets choose its
// folder, or the yaml overlays patching its files), and as a chart's. The second chunk is
// also Argo CD's parameter overrides beside them, whose images and other kustomize fields
// are set in the last chunk read as a kustomization.
#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/render/plain_renderer.h"
#include "controlplane/render/renderer.h"
#include "tests/fuzz/chunks.h"

namespace {

// What RenderBundlePath does for a chart (fleet.yaml's helm values and targets), without
// running helm: the values it would hand helm are the output.
class ChartStandIn : public gitfleet::Renderer {
 public:
  const char* engine() const override { return "helm"; }
  absl::StatusOr<gitfleet::ObjectSet> Render(const gitfleet::RenderInput& input) override {
    return gitfleet::ObjectSet();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first chunk is fleet.yaml; the rest are manifests beside it (rewritten into a
  // forced namespace when it names one).
  std::vector<std::string> chunks = gitfleet::fuzz::Chunks(data, size, 4);
  if (chunks.empty()) return 0;
  std::vector<gitfleet::RepoFile> files = {{"apps/web/fleet.yaml", chunks[0]}};
  for (size_t i = 1; i < chunks.size(); ++i) {
    files.push_back({"apps/web/m" + std::to_string(i) + ".yaml", chunks[i]});
  }
  if (chunks.size() > 1) {
    files.push_back({"apps/web/.argocd-source-web.yaml", chunks[1]});
    absl::StatusOr<gitfleet::ArgoCdSource> argo =
        gitfleet::ReadArgoCdSource("apps/web", "web", files);
    if (argo.ok()) {
      (void)gitfleet::SetKustomizeImages(chunks.back(), argo->kustomize_images);
      (void)gitfleet::SetArgoCdKustomizeFields(chunks.back(), argo->kustomize);
    }
    for (const auto& parameter :
         argo.ok() ? argo->helm_parameters : std::vector<gitfleet::ArgoCdSource::HelmParameter>()) {
      (void)gitfleet::ArgoCdHelmSetValue(parameter.value);
    }
  }
  (void)gitfleet::ReadFleetYamlNamespace("apps/web", files);
  gitfleet::PlainRenderer renderer;
  std::vector<std::string> notes;
  gitfleet::RenderInput input{"web", "apps/web", files};
  input.notes = &notes;
  input.fleet_service_account_namespace = "gitfleet-system";
  (void)gitfleet::RenderBundlePath(renderer, input);
  // The same folder as a chart's, for a cluster with a name and labels.
  ChartStandIn chart;
  const gitfleet::Values cluster = {{gitfleet::ClusterNameKey(), "eu-1"},
                                    {gitfleet::ClusterLabelKey("env"), "prod"}};
  gitfleet::ReadValues read;
  input.values = &cluster;
  input.read_values = &read;
  (void)gitfleet::RenderBundlePath(chart, input);
  // And as plain files rendered for that cluster: the folder its target gives it.
  files.push_back({"apps/web/overlays/prod/m1_patch.yaml", chunks.back()});
  files.push_back({"apps/web/prod/m.yaml", chunks.back()});
  read.clear();
  (void)gitfleet::RenderBundlePath(renderer, input);
  return 0;
}
