#ifndef GITFLEET_CONTROLPLANE_RENDER_HELM_RENDERER_H_
#define GITFLEET_CONTROLPLANE_RENDER_HELM_RENDERER_H_

// The helm engine ("helm").
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/render/chart_fetcher.h"
#include "controlplane/render/renderer.h"

namespace gitfleet {

// Helm charts: `helm template BUNDLE DIR` on a scratch copy of the chart directory, with
// the same timeout, clean environment and bounds as kustomize. Helm is not packaged for
// Debian 12; without a binary, renders fail with a message saying so.
// A chart Fleet post-renders through a kustomization (RenderInput::fleet_post_render) then
// goes through kustomize, as `kustomize`'s options say (by default: helm's, with the
// kustomize found on the system).
using HelmOptions = ToolOptions;

class HelmRenderer : public Renderer {
 public:
  // `charts` fetches the charts fleet.yaml names outside the repository; null: none may be.
  explicit HelmRenderer(HelmOptions options, std::optional<ToolOptions> kustomize = std::nullopt,
                        std::shared_ptr<ChartFetcher> charts = nullptr);
  const char* engine() const override { return "helm"; }
  absl::StatusOr<ObjectSet> Render(const RenderInput& input) override;

 private:
  // The chart's `output` through the kustomization.yaml input.fleet_post_render_dir names,
  // as its first resource (kFleetManifestsFile), as Fleet post-renders it; `empty`: the
  // output holds no object, and the kustomization is left as it is, as in Fleet.
  absl::StatusOr<ObjectSet> PostRender(const RenderInput& input, const std::string& output,
                                       bool empty);

  HelmOptions options_;
  std::unique_ptr<Renderer> post_renderer_;
  std::shared_ptr<ChartFetcher> charts_;
  // Where a chart in another Git repository (fleet.yaml's `chart: git::URL//FOLDER?ref=R`)
  // is fetched from: kustomize's remote bases' trusted prefixes; null: nowhere.
  std::shared_ptr<RemoteBaseFetcher> remote_bases_;
};

// `kustomization` (the text of the file at `path`) with kFleetManifestsFile first among its
// resources, as Fleet's post-render writes it; unchanged when they name it already, or when
// it is no mapping (kustomize says what is wrong). InvalidArgument naming the file when its
// YAML cannot be read, or its resources are no list.
absl::StatusOr<std::string> WithChartOutputResource(const std::string& path,
                                                    const std::string& kustomization);

// The `helm template` command line: the chart's crds/ folder included, the release's
// namespace when there is one (else helm says "default"), values files (relative to
// `values_dir`, the chart's or the bundle's folder, never escaping it) in order, then each
// value as --set-string (dots in names nest, as helm does), then Argo CD's `parameters`
// (--set, or --set-string where forceString), then its `file_parameters` (--set-file, each
// a value's name and a file relative to `values_dir`, never escaping it). `skips` (Argo
// CD's skipCrds, skipTests, skipSchemaValidation) leave the crds/ folder, the test hooks or
// the values' schema check out.
absl::StatusOr<std::vector<std::string>> HelmTemplateArgs(
    const std::string& binary, const std::string& release, const std::string& chart_dir,
    const std::string& release_namespace, const std::string& values_dir,
    const std::vector<std::string>& values_files, const Values& values,
    const HelmCapabilities& capabilities = {},
    const std::vector<ArgoCdSource::HelmParameter>& parameters = {},
    const std::vector<std::pair<std::string, std::string>>& file_parameters = {},
    const HelmSkips& skips = {});

// kClusterKubeVersion and kClusterApiVersions (renderer.h) are resolved per cluster
// (HelmCapabilitiesFor) before a render; HelmTemplateArgs refuses them unresolved.

// The API versions clusters reported, by digest (Hub::ApiVersions); null for none.
using ApiVersionsOf =
    std::function<std::shared_ptr<const std::vector<std::string>>(const std::string& digest)>;

// `capabilities` for the cluster whose values are `values`: with kClusterKubeVersion, its
// version (ClusterKubernetesVersionKey); with kClusterApiVersions among the API versions,
// the list `api_versions_of` gives for its digest (ClusterApiVersionsKey) in its place.
// What it looks up is recorded in `read`, so clusters that agree share a render.
// FailedPrecondition when the cluster has not reported what is asked.
absl::StatusOr<HelmCapabilities> HelmCapabilitiesFor(HelmCapabilities capabilities,
                                                     const Values& values, ReadValues* read,
                                                     const ApiVersionsOf& api_versions_of = {});

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_HELM_RENDERER_H_
