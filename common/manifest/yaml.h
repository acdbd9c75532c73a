#ifndef GITFLEET_COMMON_MANIFEST_YAML_H_
#define GITFLEET_COMMON_MANIFEST_YAML_H_

// Canonical YAML text: block style, and quoted scalars stay quoted when their plain
// form would read as anything but a string ("1", "true", "on", "~"), or when they hold a
// ${value} reference (which could become one). yaml-cpp's own node emitter drops
// quotes, which would turn the string "1" into the integer 1.
//
//   GF_ASSIGN_OR_RETURN(std::string text, EmitBlockYaml(YAML::Load(json)));

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {

absl::StatusOr<std::string> EmitBlockYaml(const YAML::Node& node);

// YAML 1.1's merge key, as kubectl reads manifests (go-yaml): in a mapping, a plain `<<`
// whose value is a mapping (`<<: *defaults`) or a list of them (`<<: [*a, *b]`) stands for
// the keys of those mappings that the mapping does not set itself, earlier ones first. A
// new tree with every merge done (the input is left as it is; returned as it is when it
// holds no merge, its marks kept for errors' lines); InvalidArgument for a `<<`
// whose value is neither. The caller bounds the text first (CheckYamlBounds): the tree is
// no larger than its expansion.
absl::StatusOr<YAML::Node> ResolveMergeKeys(const YAML::Node& node);

// Bounds on one YAML text, checked while parsing, before any node is built or emitted:
// an alias bomb ("billion laughs") is refused, never expanded.
struct YamlLimits {
  // Nodes in one document once every alias is expanded.
  uint64_t max_expanded_nodes = 1000000;
  // Maps and sequences inside each other.
  int max_depth = 256;
  int max_documents = 10000;
  // A mapping that sets one key twice (by its text, as go-yaml v3 and kubectl's strict
  // validation judge it; YAML's merge key `<<` aside) is refused: the later value would
  // silently replace the earlier one (an `env:` given twice loses the first).
  bool refuse_duplicate_keys = false;
};

// InvalidArgument naming `file`, the line and the bound that `text` goes past (or its
// syntax error); OK when within them.
//
//   GF_RETURN_IF_ERROR(CheckYamlBounds(text, "apps/web/cm.yaml"));
absl::Status CheckYamlBounds(absl::string_view text, absl::string_view file,
                             const YamlLimits& limits = {});

// One YAML document of `text`, its bounds checked first (CheckYamlBounds); InvalidArgument
// naming `file` and the line otherwise. yaml-cpp's exceptions stay inside.
//
//   GF_ASSIGN_OR_RETURN(YAML::Node doc, LoadBoundedYaml(file.content, file.path));
absl::StatusOr<YAML::Node> LoadBoundedYaml(absl::string_view text, absl::string_view file,
                                           const YamlLimits& limits = {});

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MANIFEST_YAML_H_
