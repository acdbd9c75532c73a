// Values substitution (${name}, ${name:=default}, $${...}) over rendered text.
#include <cstdint>
#include <string>

#include "controlplane/render/values.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  gitfleet::Values values = {{"env", "prod"}, {"cluster.name", "eu-1"}, {"replicas", "3"}};
  gitfleet::ReadValues read;
  (void)gitfleet::Substitute(text, values, &read);
  (void)gitfleet::VariableNames(text);
  return 0;
}
