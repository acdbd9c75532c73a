#ifndef GITFLEET_CONTROLPLANE_RENDER_RENDERER_H_
#define GITFLEET_CONTROLPLANE_RENDER_RENDERER_H_

// Turns the files of a bundle's path at one commit into an object set.
//
//   PlainRenderer renderer(limits);
//   absl::StatusOr<ObjectSet> objects = renderer.Render({"web", "apps/web", files});
//
// Implementations are thread-safe.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/manifest/object.h"
#include "common/sync.h"
#include "controlplane/render/values.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

struct RenderInput {
  std::string bundle;
  std::string path;  // bundle path in the repository
  // Every file under `path`, or the whole repository for engines that read outside it
  // (Renderer::ReadsOutsidePath). Not copied: one read of a commit serves many renders.
  const std::vector<RepoFile>& files;
  // When set, receives every repository path (directory or file) the render depended
  // on. The same ids at these paths in a later commit mean the same render.
  std::vector<std::string>* read_paths = nullptr;
  // The cluster's values, for engines that take them (jsonnet, helm); null: none. Plain
  // and kustomize output is substituted afterwards (SubstituteObjects), not here.
  const Values* values = nullptr;
  // When set, receives every value the render looked up.
  ReadValues* read_values = nullptr;
  // Jsonnet top-level arguments: "param" or "param=value-name".
  std::vector<std::string> jsonnet_tlas;
  // Helm values files, relative to the chart directory.
  std::vector<std::string> helm_values_files;
};

struct RenderLimits {
  size_t max_objects = 10000;
  size_t max_bytes = 64 << 20;
  // A render child's data segment (kustomize, helm, isolated jsonnet); 0 for no limit.
  int64_t max_memory_bytes = int64_t{2} << 30;
};

class Renderer {
 public:
  virtual ~Renderer() = default;
  virtual const char* engine() const = 0;
  // Whether the engine may read files outside the bundle path (kustomize bases, jsonnet
  // imports): such renders get the whole repository and cannot be cached by the path's
  // tree id.
  virtual bool ReadsOutsidePath() const { return false; }
  // InvalidArgument naming the file and line for bad input; ResourceExhausted when
  // the output passes a limit.
  virtual absl::StatusOr<ObjectSet> Render(const RenderInput& input) = 0;
};

// Plain YAML and JSON: every *.yaml, *.yml and *.json file under the path, recursively,
// in path order, each possibly holding several documents.
//
// Parsed files are kept by path and content, so a commit that changes one file of a
// large bundle parses that one file (parsing is most of a plain render). The cache holds
// two generations of at most `cache_bytes` / 2 of file text each: a file no render used
// for a generation falls out.
class PlainRenderer : public Renderer {
 public:
  // A render that takes longer than `timeout` fails (checked between files; one file's
  // parse is bounded by the YAML limits and the blob size).
  explicit PlainRenderer(RenderLimits limits = {}, size_t cache_bytes = 64 << 20,
                         absl::Duration timeout = absl::Seconds(60))
      : limits_(limits), cache_bytes_(cache_bytes), timeout_(timeout) {}
  const char* engine() const override { return "plain"; }
  absl::StatusOr<ObjectSet> Render(const RenderInput& input) override;

  // Files parsed, and files found in the cache, since construction.
  int64_t parsed_files() const;
  int64_t cached_files() const;

 private:
  using Parsed = std::shared_ptr<const std::vector<v1::ManifestObject>>;
  absl::StatusOr<Parsed> Parse(const RepoFile& file);

  const RenderLimits limits_;
  const size_t cache_bytes_;
  const absl::Duration timeout_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, Parsed> current_ ABSL_GUARDED_BY(mu_);  // by file digest
  absl::flat_hash_map<std::string, Parsed> previous_ ABSL_GUARDED_BY(mu_);
  size_t current_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t parsed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
};

// Kustomize overlays: `kubectl kustomize DIR` or `kustomize build DIR` on a scratch copy of
// the repository at the commit, with a timeout, a clean environment and, where the
// machine allows, no network (a fresh network namespace via unshare).
// Options of an engine that runs an external tool (kustomize, helm).
struct ToolOptions {
  std::string binary;       // empty: found on the system (FindKustomize, FindHelm)
  std::string scratch_dir;  // where checkouts are written (and removed)
  absl::Duration timeout = absl::Seconds(60);
  RenderLimits limits;
  // Without a network namespace for the tool (unshare --net), a render fails, saying so,
  // unless this is set (--render-network=allow).
  bool allow_network = false;
};
using KustomizeOptions = ToolOptions;

// `unshare` when this machine can give a child a network namespace of its own (probed once
// by running /bin/true in one); empty when it cannot.
const std::string& NetworkSandbox();
// FailedPrecondition naming the engine and path when renders cannot be isolated from the
// network and `options` does not allow the host's network.
absl::Status RequireNetworkSandbox(const ToolOptions& options, const char* engine,
                                   const std::string& path);

class KustomizeRenderer : public Renderer {
 public:
  explicit KustomizeRenderer(KustomizeOptions options);
  const char* engine() const override { return "kustomize"; }
  bool ReadsOutsidePath() const override { return true; }
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

// Jsonnet, in-process (libjsonnet): evaluates PATH/main.jsonnet. Imports resolve only to
// files of the repository at the commit. The program may yield one object, an array of
// objects, or an object whose values are objects. Every value is an external variable
// (std.extVar), looked up lazily so `read_values` names only those the program used.
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

class JsonnetRenderer : public Renderer {
 public:
  explicit JsonnetRenderer(JsonnetOptions options = {}) : options_(options) {}
  const char* engine() const override { return "jsonnet"; }
  bool ReadsOutsidePath() const override { return true; }
  absl::StatusOr<ObjectSet> Render(const RenderInput& input) override;

 private:
  // Evaluates one entry file and adds its objects to `set`.
  absl::Status EvaluateEntry(const std::map<std::string, const RepoFile*>& files,
                             const std::string& main_path, const RenderInput& input,
                             const Values& values, ObjectSet* set, size_t* bytes,
                             std::vector<std::string>* read_paths, ReadValues* read_values);

  const JsonnetOptions options_;
};

// What a jsonnet bundle at `path` evaluates: main.jsonnet when there is one; otherwise, as
// Argo CD's directory mode does, every *.jsonnet directly in the path (libraries are
// *.libsonnet), in name order, their objects concatenated.
std::vector<std::string> JsonnetEntryFiles(const std::string& path,
                                           const std::vector<RepoFile>& files);

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

// A values file must name a file inside the chart: relative, without "..".
absl::Status CheckHelmValuesFile(const std::string& file);

// The `helm template` command line: values files (relative to the chart, never escaping
// it) in order, then each value as --set-string (dots in names nest, as helm does).
absl::StatusOr<std::vector<std::string>> HelmTemplateArgs(
    const std::string& binary, const std::string& release, const std::string& chart_dir,
    const std::vector<std::string>& values_files, const Values& values);

// /usr/local/bin/helm or /usr/bin/helm; empty when neither exists.
std::string FindHelm();

// The engine a bundle path calls for when its bundle names none: kustomization.yaml →
// kustomize, Chart.yaml → helm, main.jsonnet → jsonnet, else plain. `files` are the
// files under `path`.
std::string DetectEngine(const std::string& path, const std::vector<RepoFile>& files);

// The objects in an external tool's YAML output, under `limits`; errors name `origin`.
absl::StatusOr<ObjectSet> ObjectsFromToolOutput(const std::string& bundle,
                                                const std::string& origin, const std::string& text,
                                                const RenderLimits& limits);

// Adds parsed objects to `set`, enforcing `limits`. Shared by every engine.
absl::Status AddObjects(const std::string& bundle, const std::string& origin,
                        std::vector<v1::ManifestObject> objects, const RenderLimits& limits,
                        ObjectSet* set, size_t* bytes);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_RENDERER_H_
