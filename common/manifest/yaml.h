#ifndef GITFLEET_COMMON_MANIFEST_YAML_H_
#define GITFLEET_COMMON_MANIFEST_YAML_H_

// Canonical YAML text: block style, and quoted scalars stay quoted when their plain
// form would read as anything but a string ("1", "true", "on", "~"), or when they hold a
// ${value} reference (which could become one). yaml-cpp's own node emitter drops
// quotes, which would turn the string "1" into the integer 1.
//
//   GF_ASSIGN_OR_RETURN(std::string text, EmitBlockYaml(YAML::Load(json)));

#include <string>

#include "absl/status/statusor.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {

absl::StatusOr<std::string> EmitBlockYaml(const YAML::Node& node);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MANIFEST_YAML_H_
