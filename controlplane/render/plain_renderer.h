#ifndef GITFLEET_CONTROLPLANE_RENDER_PLAIN_RENDERER_H_
#define GITFLEET_CONTROLPLANE_RENDER_PLAIN_RENDERER_H_

// The plain engine ("plain"): YAML and JSON files as they are.
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/sync.h"
#include "controlplane/render/renderer.h"

namespace gitfleet {

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

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_PLAIN_RENDERER_H_
