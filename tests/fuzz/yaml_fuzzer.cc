// The YAML-to-objects parser: any bytes from a Git repository.
#include <cstdint>
#include <string>

#include "common/manifest/object.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)gitfleet::ParseManifests(text, "fuzz.yaml");
  return 0;
}
