// The YAML-to-objects parser: any bytes from a Git repository, then each object read as
// the agent reads it before applying (YAML to JSON, integers and words as kubectl's reader).
#include <cstdint>
#include <string>

#include "common/manifest/object.h"
#include "common/manifest/yaml_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto objects = gitfleet::ParseManifests(text, "fuzz.yaml");
  if (!objects.ok()) return 0;
  for (const auto& object : *objects) (void)gitfleet::YamlToJson(object.yaml());
  return 0;
}
