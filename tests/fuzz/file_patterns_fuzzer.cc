// Which files a plain bundle reads: a repository's .fleetignore and .sourceignore files
// (IgnoreFiles, the latter from above the bundle's folder too) and an
// operator's --include/--exclude patterns (PathPattern), matched against paths a commit
// may hold. Any text must give an answer, never a crash or a walk that does not end.
#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/render/file_patterns.h"
#include "tests/fuzz/chunks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first chunk is an ignore file, the second another and a pattern; the rest are paths.
  std::vector<std::string> chunks = gitfleet::fuzz::Chunks(data, size, 16);
  if (chunks.size() < 2) return 0;
  std::vector<gitfleet::RepoFile> files = {{"apps/web/.fleetignore", chunks[0]},
                                           {"apps/web/sub/.fleetignore", chunks[1]}};
  absl::StatusOr<gitfleet::IgnoreFiles> ignore =
      gitfleet::IgnoreFiles::Read("apps/web", files, gitfleet::IgnoreFiles::Kind::kFleet);
  std::vector<gitfleet::RepoFile> flux_files = {{".sourceignore", chunks[0]},
                                                {"apps/web/sub/.sourceignore", chunks[1]}};
  absl::StatusOr<gitfleet::IgnoreFiles> flux =
      gitfleet::IgnoreFiles::Read("apps/web", flux_files, gitfleet::IgnoreFiles::Kind::kFlux);
  absl::StatusOr<gitfleet::PathPattern> pattern = gitfleet::PathPattern::Parse(chunks[1], "fuzz");
  for (size_t i = 2; i < chunks.size(); ++i) {
    if (ignore.ok()) (void)ignore->Ignored("apps/web/" + chunks[i]);
    if (flux.ok()) (void)flux->Ignored("apps/web/" + chunks[i]);
    if (pattern.ok()) (void)pattern->Matches(chunks[i]);
  }
  return 0;
}
