#ifndef GITFLEET_COMMON_MANIFEST_YAML_JSON_H_
#define GITFLEET_COMMON_MANIFEST_YAML_JSON_H_

// YAML to JSON as Kubernetes reads it (sigs.k8s.io/yaml over go-yaml, YAML 1.1 scalars):
// plain true/false/yes/no/on/off/y/n (each as go-yaml spells it: lower, Title or UPPER
// case) are booleans, plain integers read as Go reads them (a leading 0 is octal:
// `defaultMode: 0644` is 420; 0x, 0o, 0b; underscores dropped; past int64 a uint64), other
// plain numbers in go-yaml's float syntax are floats, plain null/~ and empty values are
// null, and quoted scalars are always strings. `.inf` and `.nan` are refused, as kubectl
// refuses them (JSON has no such numbers); errors say where ("at .spec.x: ..."). Explicit
// tags as go-yaml decodes them (`!!str` text, `!!int "1"` 1, `!!float 1` 1.0, `!!binary`
// decoded, an unresolvable tag leaves the text, a mismatch is an error); mapping keys are
// resolved as values and written as sigs.k8s.io/yaml writes them (`on:` is "true",
// `0x10:` "16", `1.0:` "1"; a null key or one past int64 is refused).
//
//   GF_ASSIGN_OR_RETURN(nlohmann::json object, YamlToJson(manifest.yaml()));

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace gitfleet {

// One document's text; InvalidArgument when it is not YAML, a key is not a scalar or is
// null, a number is infinite or NaN, or a tag does not fit its value.
absl::StatusOr<nlohmann::json> YamlToJson(absl::string_view yaml);
// A node already parsed (the caller bounds its text: CheckYamlBounds).
absl::StatusOr<nlohmann::json> YamlNodeToJson(const YAML::Node& node);

// Whether `data` is well-formed UTF-8 (no overlongs, surrogates or code points past
// U+10FFFF).
bool IsUtf8(absl::string_view data);

// OK when `text` holds only what go-yaml reads at all: UTF-8 without control characters
// (tab, line feed, carriage return and NEL aside). InvalidArgument saying which byte
// otherwise. yaml-cpp reads such bytes into scalars it then writes back as YAML that
// neither it nor go-yaml reads.
absl::Status CheckGoYamlCharacters(absl::string_view text);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MANIFEST_YAML_JSON_H_
