#ifndef GITFLEET_COMMON_MANIFEST_STRING_FIELDS_H_
#define GITFLEET_COMMON_MANIFEST_STRING_FIELDS_H_

// The fields Kubernetes decodes as strings that real repositories most often leave
// unquoted: an annotation `prometheus.io/scrape: true`, a label `version: 1.0`, a ConfigMap's
// `port: 8080`, an env var's `value: 8080`, `args: [--port, 8080]`. kubectl reads those as a
// boolean or a number (YAML 1.1, as YamlToJson does) and the API server refuses the object
// (or, for a custom resource's metadata, may drop the field). Said once at the render,
// naming the field, instead of on every cluster.
//
//   GF_RETURN_IF_ERROR(CheckStringFields("apps", "Deployment", object));
//
// Checked: every object's metadata (name, namespace, generateName, labels, annotations);
// for the core, apps and batch kinds, their pod templates' metadata, pod specs (each
// container's command, args, env values and image; nodeSelector), label selectors, a
// Service's selector, a ConfigMap's data and binaryData and a Secret's data and stringData.
// Null is taken (Kubernetes reads it as the empty string). Other kinds' fields are their
// schemas' to judge, on the cluster.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace gitfleet {

// InvalidArgument naming the first field that is not a string (".spec.template.spec
// .containers[0].args[1]") and what kubectl read there.
absl::Status CheckStringFields(absl::string_view group, absl::string_view kind,
                               const nlohmann::json& object);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MANIFEST_STRING_FIELDS_H_
