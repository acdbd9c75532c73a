// The YAML-to-objects parser: any bytes from a Git repository, then each object read as
// the agent reads it before applying (YAML to JSON, integers and words as kubectl's reader),
// which must take what the render took.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/manifest/object.h"
#include "common/manifest/yaml_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto objects = gitfleet::ParseManifests(text, "fuzz.yaml");
  if (!objects.ok()) return 0;
  for (const auto& object : *objects) {
    // The render converted each object's node and took it: the text the agents get must
    // convert too, or the render and the agents read different objects.
    auto json = gitfleet::YamlToJson(object.yaml());
    if (!json.ok()) {
      fprintf(stderr, "accepted at the render, refused as the agent reads it: %s\n%s\n",
              std::string(json.status().message()).c_str(), object.yaml().c_str());
      abort();
    }
  }
  return 0;
}
