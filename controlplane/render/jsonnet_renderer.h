#ifndef GITFLEET_CONTROLPLANE_RENDER_JSONNET_RENDERER_H_
#define GITFLEET_CONTROLPLANE_RENDER_JSONNET_RENDERER_H_

// The jsonnet engine ("jsonnet").
#include <map>
#include <string>
#include <vector>

#include "controlplane/render/renderer.h"

namespace gitfleet {

// Jsonnet, in-process (libjsonnet): evaluates PATH/main.jsonnet. Imports resolve only to
// files of the repository at the commit: beside the importing file, then in the library
// folders of a Tanka or jsonnet-bundler project (JsonnetLibraryPaths). The program may yield one
// object, an array of objects, or an object whose values are objects. Every value is an external
// variable (std.extVar), looked up lazily so `read_values` names only those the program used.
//
// A Tanka environment's namespace (spec.namespace of PATH/spec.json, or of an inline
// environment) becomes the set's default namespace: namespaced objects that name none go
// there, as `tk apply` puts them, unless the bundle has its own (--namespace). Its
// spec.resourceDefaults labels and annotations are added to every object that does not set
// them itself, as Tanka adds them.
//
// libjsonnet cannot be interrupted, so each evaluation runs in a forked child (which sees
// the repository's files copy-on-write) that is killed at `timeout`.
struct JsonnetOptions {
  absl::Duration timeout = absl::Seconds(60);
  RenderLimits limits;
  // False evaluates in-process: about 2.4x faster per render (docs/BENCHMARKS.md), but a
  // program that never ends holds a render thread forever. For trusted repositories only.
  bool isolate = true;
};

// A Tanka environment's spec.resourceDefaults, and where they were read.
struct TankaDefaults {
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::string origin;
};

class JsonnetRenderer : public Renderer {
 public:
  explicit JsonnetRenderer(JsonnetOptions options = {}) : options_(options) {}
  const char* engine() const override { return "jsonnet"; }
  absl::StatusOr<ObjectSet> Render(const RenderInput& input) override;

 private:
  // Evaluates one entry file and adds its objects to `set`, with `defaults` (spec.json's;
  // an inline environment's own replace them).
  absl::Status EvaluateEntry(const std::map<std::string, const RepoFile*>& files,
                             const std::string& main_path, const RenderInput& input,
                             const Values& values, const std::vector<std::string>& libraries,
                             const TankaDefaults& defaults, ObjectSet* set, size_t* bytes,
                             std::vector<std::string>* read_paths, ReadValues* read_values,
                             std::string* inline_namespace);

  const JsonnetOptions options_;
};

// Where imports are looked for after the importing file's own folder, for a bundle at
// `path`: in a project whose root (the nearest folder from `path` up holding tkrc.yaml,
// else jsonnetfile.json) is found, Tanka's import paths, highest rank first: `path`,
// ROOT/lib, `path`/vendor, ROOT/vendor (jsonnet-bundler's vendor folder). None without a
// root. `markers` are the files looked for to find a root that was found (what the
// render read: one appearing nearer moves the root).
struct JsonnetLibraries {
  std::vector<std::string> folders;
  std::vector<std::string> markers;
};
JsonnetLibraries JsonnetLibraryPaths(const std::string& path,
                                     const std::map<std::string, const RepoFile*>& files);

// What a jsonnet bundle at `path` evaluates: main.jsonnet when there is one; otherwise, as
// Argo CD's directory mode does, every *.jsonnet directly in the path (libraries are
// *.libsonnet), in name order, their objects concatenated.
std::vector<std::string> JsonnetEntryFiles(const std::string& path,
                                           const std::vector<RepoFile>& files);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_JSONNET_RENDERER_H_
