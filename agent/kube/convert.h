#ifndef GITFLEET_AGENT_KUBE_CONVERT_H_
#define GITFLEET_AGENT_KUBE_CONVERT_H_

// YAML to JSON as Kubernetes reads it (sigs.k8s.io/yaml, YAML 1.1 scalars): plain
// true/false/yes/no/on/off are booleans, plain numbers are numbers, plain null/~ and empty
// values are null, and quoted scalars are always strings.
//
//   GF_ASSIGN_OR_RETURN(nlohmann::json object, YamlToJson(manifest.yaml()));

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace gitfleet {

absl::StatusOr<nlohmann::json> YamlToJson(absl::string_view yaml);

// Whether every field `want` sets has the same value in `have` (maps: a subset; lists:
// the same length, element by element). Fields the server adds (defaults, status,
// metadata it owns) do not count. Returns the first differing path, or "" when equal.
std::string FirstDifference(const nlohmann::json& want, const nlohmann::json& have,
                            const std::string& path = "");

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_KUBE_CONVERT_H_
