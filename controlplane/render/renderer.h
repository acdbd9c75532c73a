#ifndef GITFLEET_CONTROLPLANE_RENDER_RENDERER_H_
#define GITFLEET_CONTROLPLANE_RENDER_RENDERER_H_

// Turns the files of a bundle's path at one commit into an object set.
//
//   PlainRenderer renderer(limits);
//   absl::StatusOr<ObjectSet> objects = renderer.Render({"web", "apps/web", files});
//
// Implementations are thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/manifest/object.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

struct RenderInput {
  std::string bundle;
  std::string path;             // bundle path in the repository
  std::vector<RepoFile> files;  // every file under `path`
};

struct RenderLimits {
  size_t max_objects = 10000;
  size_t max_bytes = 64 << 20;
};

class Renderer {
 public:
  virtual ~Renderer() = default;
  virtual const char* engine() const = 0;
  // InvalidArgument naming the file and line for bad input; ResourceExhausted when
  // the output passes a limit.
  virtual absl::StatusOr<ObjectSet> Render(const RenderInput& input) = 0;
};

// Plain YAML and JSON: every *.yaml, *.yml and *.json file under the path, recursively,
// in path order, each possibly holding several documents.
class PlainRenderer : public Renderer {
 public:
  explicit PlainRenderer(RenderLimits limits = {}) : limits_(limits) {}
  const char* engine() const override { return "plain"; }
  absl::StatusOr<ObjectSet> Render(const RenderInput& input) override;

 private:
  const RenderLimits limits_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_RENDERER_H_
