// The agent's handling of what a control plane sends: welcomes, bundle updates (full and
// delta) and removals, applied to an in-memory directory with in-memory state.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/apply/applier.h"
#include "agent/apply/reconciler.h"
#include "agent/metrics.h"
#include "agent/state/state_store.h"
#include "common/file_system.h"
#include "tests/fuzz/chunks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gitfleet;
  std::vector<std::string> chunks = fuzz::Chunks(data, size);
  if (chunks.empty()) return 0;
  static metrics::Registry* registry = new metrics::Registry();
  static AgentMetrics* metrics = new AgentMetrics(*registry);
  MemoryFileSystem fs;
  DirectoryApplier applier("/out", &fs);
  BundleStateStore state("/state", &fs);
  Reconciler reconciler(&applier, &state, *metrics);
  if (!reconciler.Load().ok()) return 0;
  for (const std::string& chunk : chunks) {
    v1::ControlMessage message;
    if (!message.ParseFromString(chunk)) break;
    if (message.has_welcome()) {
      reconciler.SetServingFleet(message.welcome().fleet_id(), message.welcome().adopt());
    } else if (message.has_update()) {
      (void)reconciler.OnUpdate(message.update());
    } else if (message.has_removal()) {
      reconciler.OnRemoval(message.removal());
    }
  }
  // What it wrote must stay inside its two directories: no path climbs out with "..".
  absl::StatusOr<std::vector<std::string>> files = fs.ListFiles("/");
  if (files.ok()) {
    for (const std::string& file : *files) {
      std::string path = "/" + file;
      if (path.find("/../") != std::string::npos ||
          (path.size() >= 3 && path.compare(path.size() - 3, 3, "/..") == 0)) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
