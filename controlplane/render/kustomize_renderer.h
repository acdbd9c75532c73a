#ifndef GITFLEET_CONTROLPLANE_RENDER_KUSTOMIZE_RENDERER_H_
#define GITFLEET_CONTROLPLANE_RENDER_KUSTOMIZE_RENDERER_H_

// The kustomize engine ("kustomize").
#include <string>
#include <vector>

#include "controlplane/render/renderer.h"

namespace gitfleet {

// Kustomize overlays: `kubectl kustomize DIR` or `kustomize build DIR` on a scratch copy of
// the repository at the commit, with a timeout, a clean environment and, where the
// machine allows, no network (a fresh network namespace via unshare).
class KustomizeRenderer : public Renderer {
 public:
  explicit KustomizeRenderer(KustomizeOptions options);
  const char* engine() const override { return "kustomize"; }
  absl::StatusOr<ObjectSet> Render(const RenderInput& input) override;
  bool network_isolated() const { return !unshare_.empty(); }

 private:
  KustomizeOptions options_;
  std::string unshare_;  // non-empty when renders run without network
};

// Refuses kustomizations that name anything outside the repository: paths that climb
// above its root, absolute paths, and remote bases (renders have no network).
absl::Status CheckKustomizeReferences(const std::vector<RepoFile>& files);

// `kustomize` on PATH if present, else `kubectl` (whose `kustomize` subcommand embeds
// it); empty when neither exists.
std::string FindKustomize();

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_KUSTOMIZE_RENDERER_H_
