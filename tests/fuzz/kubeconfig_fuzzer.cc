// The agent's kubeconfig parser.
#include <cstdint>
#include <string>

#include "agent/kube/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)gitfleet::ParseKubeconfig(text, "", "/nonexistent-fuzz-dir", "fuzz-kubeconfig");
  (void)gitfleet::ParseKubeconfig(text, "prod", "/nonexistent-fuzz-dir", "fuzz-kubeconfig");
  return 0;
}
