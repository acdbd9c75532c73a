// The kustomization path checker, the rewrite that adds a chart's output to a kustomization
// (Fleet's post-render), and the readers of remote bases and of Fleet's Git chart sources: a
// repository's kustomization.yaml and fleet.yaml may hold anything.
#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/render/helm_renderer.h"
#include "controlplane/render/kustomize_renderer.h"
#include "controlplane/render/remote_bases.h"
#include "controlplane/render/renderer.h"
#include "tests/fuzz/chunks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first chunk is the overlay's kustomization; the rest are files beside it.
  std::vector<std::string> chunks = gitfleet::fuzz::Chunks(data, size, 8);
  if (chunks.empty()) return 0;
  std::vector<gitfleet::RepoFile> files;
  files.push_back({"overlays/prod/kustomization.yaml", chunks[0]});
  for (size_t i = 1; i < chunks.size(); ++i) {
    files.push_back({"base/file-" + std::to_string(i) + ".yaml", chunks[i]});
  }
  files.push_back({"base/kustomization.yaml", chunks.size() > 1 ? chunks[1] : ""});
  (void)gitfleet::CheckKustomizeReferences(files);
  for (const std::string& chunk : chunks) {
    absl::StatusOr<std::optional<gitfleet::RemoteBase>> base = gitfleet::ParseRemoteBase(chunk);
    // A remote base's folder never climbs out of its repository.
    if (base.ok() && base->has_value() &&
        ((**base).path == ".." || (**base).path.rfind("../", 0) == 0 ||
         (**base).path.find("/../") != std::string::npos)) {
      __builtin_trap();
    }
    // Fleet's forms of a Git source for a chart read as a `git::` one, whose folder never
    // climbs out of its repository either.
    absl::StatusOr<std::optional<std::string>> chart = gitfleet::FleetGitChartSource(chunk);
    if (chart.ok() && chart->has_value()) {
      if ((**chart).rfind("git::", 0) != 0) __builtin_trap();
      base = gitfleet::ParseRemoteBase(absl::string_view(**chart).substr(5));
      if (base.ok() && base->has_value() &&
          ((**base).path == ".." || (**base).path.rfind("../", 0) == 0 ||
           (**base).path.find("/../") != std::string::npos)) {
        __builtin_trap();
      }
    }
  }
  // What the rewrite writes is a kustomization that lists the output once, first.
  absl::StatusOr<std::string> with = gitfleet::WithChartOutputResource("k.yaml", chunks[0]);
  if (with.ok() && *with != chunks[0]) {
    absl::StatusOr<std::string> again = gitfleet::WithChartOutputResource("k.yaml", *with);
    if (!again.ok() || *again != *with) __builtin_trap();
  }
  return 0;
}
