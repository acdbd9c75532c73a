#ifndef GITFLEET_CONTROLPLANE_RENDER_FLEET_VALUES_H_
#define GITFLEET_CONTROLPLANE_RENDER_FLEET_VALUES_H_

// A chart's values as Rancher Fleet gives them from fleet.yaml, for one cluster.
//
// Fleet merges each of `helm.valuesFiles` over `helm.values` (a map deep-merged, anything
// else replaced), then fills in, per cluster:
// - a string value "global.fleet.clusterLabels.KEY": the cluster's label KEY ("" without it),
//   always;
// - ${ ... } templates (Go templates with ${ } delimiters), unless disablePreProcess:
//   `.ClusterName`, `.ClusterLabels.KEY`, `index|get|hasKey .ClusterLabels "KEY"`, and
//   `.ClusterValues.NAME` (in gitfleet: the bundle's --values and --cluster-values), with
//   `quote`, `squote`, `upper`, `lower`, `trim`, `default`, `replace` and pipes. A label
//   that `.ClusterLabels.KEY` or `index` names and the cluster lacks fails, as in Fleet
//   (missingkey=error). Any other form (`if`, `range`, `toYaml`, `.ClusterAnnotations`, ...)
//   fails naming it: a chart never gets a template's text as its value.
// A template is evaluated in each scalar (key or value) that holds one, and its result is
// read as YAML, as Fleet reads the filled-in text: `replicas: ${ .ClusterLabels.n }` is a
// number, `${ ... | quote }` a string.
//
//   FleetHelmValues fleet{values_yaml, {{"values/prod.yaml", text}}, /*preprocess=*/true};
//   ReadValues read;
//   absl::StatusOr<std::string> yaml = fleet.For(cluster_values, &read);
//
// The cluster's name and labels come in `values` under ClusterNameKey() and
// ClusterLabelKey() (values.h); every one looked up is recorded in `read`, found or not,
// so clusters that agree on them share the result.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/render/values.h"

namespace gitfleet {

struct FleetHelmValues {
  // fleet.yaml's helm.values as YAML text (a mapping), or empty.
  std::string values;
  // Each of helm.valuesFiles: its name (for errors) and its text, in order.
  std::vector<std::pair<std::string, std::string>> files;
  // False when fleet.yaml sets disablePreProcess: ${ } is then text.
  bool preprocess = true;

  // The merged values for the cluster whose values are `values`, as YAML text; "" when
  // there are none. InvalidArgument naming the file, the key and the template at fault.
  absl::StatusOr<std::string> For(const Values& values, ReadValues* read) const;
};

// Evaluates the ${ ... } templates in `text` (one scalar) for the cluster in `values`.
// Exposed for tests.
absl::StatusOr<std::string> EvaluateFleetTemplate(const std::string& text, const Values& values,
                                                  ReadValues* read);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_FLEET_VALUES_H_
