// Tanka's native functions (tanka_natives.h) with text a repository controls: YAML and
// JSON to parse, regular expressions and their templates, called as a jsonnet evaluation
// calls them (each callback with the values it would be handed); and the rewrite of
// jsonnet source that points calls at them. Any input must give a value or an error,
// never a crash or a hang.
extern "C" {
#include <libjsonnet.h>
}

#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/render/tanka_natives.h"
#include "tests/fuzz/chunks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first chunk's first byte picks the native; the rest are its arguments (an
  // `indent` is 2), the first of them also rewritten as jsonnet source.
  std::vector<std::string> chunks = gitfleet::fuzz::Chunks(data, size, 4);
  if (chunks.empty() || chunks[0].empty()) return 0;
  static JsonnetVm* const vm = jsonnet_make();  // only makes and frees values here
  const std::vector<gitfleet::TankaNative>& natives = gitfleet::TankaNatives();
  const gitfleet::TankaNative& native =
      natives[static_cast<uint8_t>(chunks[0][0]) % natives.size()];
  (void)gitfleet::CallsTankaNatives("fuzz.libsonnet", chunks.size() > 1 ? chunks[1] : "");
  std::vector<JsonnetJsonValue*> args;
  for (size_t i = 0; native.params[i] != nullptr; ++i) {
    if (std::string(native.params[i]) == "indent") {
      args.push_back(jsonnet_json_make_number(vm, 2));
      continue;
    }
    std::string value = i + 1 < chunks.size() ? chunks[i + 1] : "";
    value = value.substr(0, value.find('\0'));  // jsonnet hands natives C strings
    args.push_back(jsonnet_json_make_string(vm, value.c_str()));
  }
  int success = 0;
  JsonnetJsonValue* result = native.callback(vm, args.data(), &success);
  jsonnet_json_destroy(vm, result);
  for (JsonnetJsonValue* arg : args) jsonnet_json_destroy(vm, arg);
  return 0;
}
