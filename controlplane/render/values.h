#ifndef GITFLEET_CONTROLPLANE_RENDER_VALUES_H_
#define GITFLEET_CONTROLPLANE_RENDER_VALUES_H_

// Per-cluster values and ${var} substitution in rendered objects.
//
//   Values values = {{"env", "prod"}};
//   ReadValues read;
//   absl::StatusOr<std::string> text = Substitute("replicas: ${replicas:=2}", values, &read);
//   // read == {{"replicas", std::nullopt}}: what the result depended on.
//
// Syntax: ${name} is the value (an error naming it when there is none), ${name:=text}
// and the shell's ${name:-text} fall back to text, and $${ writes a literal ${. Names are
// letters, digits and "._-/" (label keys such as topology.kubernetes.io/zone work). Any
// other ${...} form (${#a[@]}, ${x%%y}, an unclosed ${) is left as written.
//
// Substitution is opt-in per bundle (WantsSubstitution), and an object annotated (or
// labelled) gitfleet.io/substitute: disabled, or Flux's kustomize.toolkit.fluxcd.io/
// substitute: disabled, is never substituted.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/manifest/object.h"

namespace gitfleet {

using Values = std::map<std::string, std::string>;
// Every value a render looked up, and what it found (nullopt: absent). A later render
// whose values agree on all of these produces the same output.
using ReadValues = std::map<std::string, std::optional<std::string>>;

// Where a cluster's own name and labels reach an engine that otherwise takes only the
// bundle's explicit values (helm: for fleet.yaml's templating, fleet_values.h). No value
// name holds ':', so these never shadow one, nor one of them; engines leave them out of
// what they pass on, and record them as read only when they look them up.
inline std::string ClusterNameKey() { return "cluster:name"; }
inline std::string ClusterLabelKey(absl::string_view label) {
  return absl::StrCat("cluster:label:", label);
}
// The cluster groups the cluster is in, with their labels (ClusterInfo.groups), as
// EncodeGroupMemberships (common/model/cluster_group.h) writes them: what a fleet.yaml's
// clusterGroup and clusterGroupSelector choose its target by ("" when it is in none).
// Absent when the control plane reads no cluster groups: then whether it is in one is
// unknown.
inline std::string ClusterGroupsKey() { return "cluster:groups"; }
// The cluster's Kubernetes version as its agent reported it (ClusterInfo.kubernetes_version),
// where it has one: what --kube-version=cluster renders a chart for.
inline std::string ClusterKubernetesVersionKey() { return "cluster:kubernetes-version"; }
// The digest naming the APIs the cluster serves (ClusterInfo.api_versions_digest), where
// its agent reported them: what --api-versions=cluster renders a chart for.
inline std::string ClusterApiVersionsKey() { return "cluster:api-versions"; }
inline bool IsClusterContextKey(absl::string_view name) {
  return absl::StartsWith(name, "cluster:");
}

// Whether `values` agrees with everything in `read`.
bool Agrees(const ReadValues& read, const Values& values);

absl::StatusOr<std::string> Substitute(absl::string_view text, const Values& values,
                                       ReadValues* read);

// The names `text` refers to; InvalidArgument for a malformed reference.
absl::StatusOr<std::set<std::string>> VariableNames(absl::string_view text);

// Whether `text` has anything Substitute would change ("${" or "$${").
inline bool HasVariables(absl::string_view text) {
  return text.find("${") != absl::string_view::npos;
}

// The ${...} forms in `text` that substitution leaves as written (a shell's ${#a[@]},
// ${x%%y}, an unclosed ${), each once, each cut to 40 characters: worth a warning, since
// an author may have meant a variable.
std::vector<std::string> UnsubstitutedForms(absl::string_view text);

// Whether `object` opted out: labelled or annotated gitfleet.io/substitute: disabled, or
// Flux's kustomize.toolkit.fluxcd.io/substitute: disabled.
bool SubstitutionDisabled(const v1::ManifestObject& object);

// Substitutes into every object that has variables, re-parsing it; errors name the
// object. Objects without variables, or that opted out, are shared unchanged.
absl::StatusOr<ObjectSet> SubstituteObjects(const ObjectSet& objects, const Values& values,
                                            ReadValues* read);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_VALUES_H_
