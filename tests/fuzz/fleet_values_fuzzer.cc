// fleet.yaml's helm values as Fleet gives them (fleet_values.h): values files merged over
// helm.values, "global.fleet.clusterLabels.X" and ${ } templates filled in per cluster. All
// of it comes from the repository, so any text must give an answer, never a throw, a crash
// or an unbounded result.
#include <cstdint>
#include <string>

#include "controlplane/render/fleet_values.h"
#include "tests/fuzz/chunks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // helm.values, two values files, and one scalar's text.
  std::vector<std::string> chunks = gitfleet::fuzz::Chunks(data, size, 4);
  if (chunks.empty()) return 0;
  const gitfleet::Values cluster = {{gitfleet::ClusterNameKey(), "eu-1"},
                                    {gitfleet::ClusterLabelKey("env"), "prod"},
                                    {gitfleet::ClusterLabelKey("a/b.c"), "x"},
                                    {"replicas", "3"}};
  gitfleet::FleetHelmValues fleet;
  fleet.values = chunks[0];
  for (size_t i = 1; i < chunks.size() && i < 3; ++i) {
    fleet.files.emplace_back("values" + std::to_string(i) + ".yaml", chunks[i]);
  }
  for (bool preprocess : {true, false}) {
    fleet.preprocess = preprocess;
    gitfleet::ReadValues read;
    (void)fleet.For(cluster, &read);
  }
  gitfleet::ReadValues read;
  (void)gitfleet::EvaluateFleetTemplate(chunks.back(), cluster, &read);
  return 0;
}
