#ifndef GITFLEET_CONTROLPLANE_RENDER_HELM_RENDERER_H_
#define GITFLEET_CONTROLPLANE_RENDER_HELM_RENDERER_H_

// The helm engine ("helm").
#include <string>
#include <vector>

#include "controlplane/render/renderer.h"

namespace gitfleet {

// Helm charts: `helm template BUNDLE DIR` on a scratch copy of the chart directory, with
// the same timeout, clean environment and bounds as kustomize. Helm is not packaged for
// Debian 12; without a binary, renders fail with a message saying so.
using HelmOptions = ToolOptions;

class HelmRenderer : public Renderer {
 public:
  explicit HelmRenderer(HelmOptions options);
  const char* engine() const override { return "helm"; }
  absl::StatusOr<ObjectSet> Render(const RenderInput& input) override;

 private:
  HelmOptions options_;
};

// The `helm template` command line: the chart's crds/ folder included, the release's
// namespace when there is one (else helm says "default"), values files (relative to the
// chart, never escaping it) in order, then each value as --set-string (dots in names nest,
// as helm does).
absl::StatusOr<std::vector<std::string>> HelmTemplateArgs(
    const std::string& binary, const std::string& release, const std::string& chart_dir,
    const std::string& release_namespace, const std::vector<std::string>& values_files,
    const Values& values);

// /usr/local/bin/helm or /usr/bin/helm; empty when neither exists.
std::string FindHelm();

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_HELM_RENDERER_H_
