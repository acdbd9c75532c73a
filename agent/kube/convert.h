#ifndef GITFLEET_AGENT_KUBE_CONVERT_H_
#define GITFLEET_AGENT_KUBE_CONVERT_H_

// YAML to JSON as Kubernetes reads it (common/manifest/yaml_json.h), and how an applied
// object compares with the live one.
//
//   GF_ASSIGN_OR_RETURN(nlohmann::json object, YamlToJson(manifest.yaml()));

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/manifest/yaml_json.h"
#include "nlohmann/json.hpp"

namespace gitfleet {

// Whether every field `want` sets has the same value in `have` (maps: a subset; lists:
// the same length, element by element). Fields the server adds (defaults, status,
// metadata it owns) do not count. Returns the first differing path, or "" when equal.
std::string FirstDifference(const nlohmann::json& want, const nlohmann::json& have,
                            const std::string& path = "");

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_KUBE_CONVERT_H_
