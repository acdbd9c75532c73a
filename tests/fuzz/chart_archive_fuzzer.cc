// What a chart repository serves: its index, its archives, and the version constraints
// fleet.yaml writes; an OCI registry's token challenge; and --chart-credentials' entries.
// All come from outside; none may take the control plane down. So do the archives a
// `fleet.yaml`'s chart URL names, whatever their compression.
#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/render/archive.h"
#include "controlplane/render/chart_fetcher.h"
#include "tests/fuzz/chunks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An archive, an index, a constraint.
  std::vector<std::string> chunks = gitfleet::fuzz::Chunks(data, size, 3);
  if (chunks.empty()) return 0;
  (void)gitfleet::UnpackChartArchive(chunks[0], 1 << 20, 1000);
  // Any archive a chart URL names (tar, compressed four ways, or zip), and a folder of it.
  absl::StatusOr<std::vector<gitfleet::RepoFile>> files =
      gitfleet::UnpackArchive(chunks[0], {.max_bytes = 1 << 20, .max_files = 1000});
  if (files.ok() && chunks.size() > 1) (void)gitfleet::ArchiveFolder(*std::move(files), chunks[1]);
  if (chunks.size() > 1) (void)gitfleet::SplitArchiveUrl("https://h/a.tgz" + chunks[1]);
  if (chunks.size() < 2) return 0;
  absl::StatusOr<gitfleet::ChartIndex> index =
      gitfleet::ReadChartIndex(chunks[1], "https://charts.example.com/", "index.yaml");
  const std::string constraint = chunks.size() > 2 ? chunks[2] : "";
  if (index.ok()) {
    for (const auto& [name, versions] : *index) {
      (void)gitfleet::ChooseChartVersion(*index, "r", name, constraint);
    }
  }
  (void)gitfleet::SemverSatisfies("1.2.3-rc.1", constraint);
  (void)gitfleet::ReadBearerChallenge(constraint);
  (void)gitfleet::ReadBearerChallenge("Bearer " + chunks[0]);
  (void)gitfleet::ParseChartCredentials({constraint, chunks[1]}, {"*", chunks[0]});
  (void)gitfleet::CheckChartPrefixes({chunks[1]});
  return 0;
}
