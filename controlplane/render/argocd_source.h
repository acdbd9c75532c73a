#ifndef GITFLEET_CONTROLPLANE_RENDER_ARGOCD_SOURCE_H_
#define GITFLEET_CONTROLPLANE_RENDER_ARGOCD_SOURCE_H_

// Argo CD's parameter overrides kept in a repository: `.argocd-source.yaml`, then
// `.argocd-source-<app>.yaml`, in an Application's path, each merged over the one before
// (a JSON merge patch: a list given replaces the list). Argo CD Image Updater's git
// write-back leaves new image tags there, so a repository moved from Argo CD that gitfleet
// rendered without them would deploy the images it was moved away from.
//
//   absl::StatusOr<ArgoCdSource> source = ReadArgoCdSource("apps/web", "web", files);
//   // source->kustomize_images: {"nginx:1.25.3"}, as `kustomize edit set image` takes them
//   absl::StatusOr<std::string> edited = SetKustomizeImages(text, source->kustomize_images);
//
// What gitfleet reads: kustomize.images and helm.parameters (what the write-back writes),
// and the kustomize fields Argo CD sets with `kustomize edit` before a build (namePrefix,
// nameSuffix, namespace, commonLabels, commonAnnotations and their force flags, replicas,
// components and ignoreMissingComponents) or writes into the kustomization (patches),
// and a chart's valueFiles, values or valuesObject, releaseName, fileParameters, skipCrds,
// namespace, kubeVersion, apiVersions, skipTests and skipSchemaValidation (and kustomize's
// kubeVersion and apiVersions, for its helmCharts); helm.version only as "v3". Every other
// field is named in `unread`.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/source/git_repository.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {

inline constexpr char kArgoCdSourceFile[] = ".argocd-source.yaml";
// At most this many images or parameters are read from the files.
inline constexpr size_t kMaxArgoCdOverrides = 256;
// At most this many other Applications' files are named.
inline constexpr size_t kMaxArgoCdOtherApps = 8;

// The kustomize fields Argo CD sets in an Application's kustomization with `kustomize edit`
// before it builds (besides images): each unset when not given.
struct ArgoCdKustomize {
  std::optional<std::string> name_prefix;  // edit set nameprefix
  std::optional<std::string> name_suffix;  // edit set namesuffix
  std::optional<std::string> namespace_;   // edit set namespace
  // edit add label / annotation: a key the kustomization already sets is refused, as
  // kustomize refuses it, unless forced (forceCommonLabels, forceCommonAnnotations).
  std::map<std::string, std::string> common_labels;
  std::map<std::string, std::string> common_annotations;
  bool force_common_labels = false;
  bool force_common_annotations = false;
  // edit add label --without-selector (labelWithoutSelector): the labels go to an entry of
  // the kustomization's `labels` that leaves selectors alone (one whose includeTemplates is
  // label_include_templates, else a new one), not to commonLabels.
  bool label_without_selector = false;
  bool label_include_templates = false;  // --include-templates (labelIncludeTemplates)
  // edit set replicas NAME=COUNT, in order.
  std::vector<std::pair<std::string, int64_t>> replicas;
  // edit add component: folders relative to the kustomization's, each added to its
  // components unless there already. One that is not in the repository fails the build
  // (kustomize finds no such folder) unless ignore_missing_components, which leaves it out.
  std::vector<std::string> components;
  bool ignore_missing_components = false;
  // patches, appended to the kustomization's: each a mapping of Argo CD's KustomizePatch
  // fields (patch or path, target, options), written as YAML.
  std::vector<std::string> patches;
  // kubeVersion and apiVersions: what the charts the build inflates (helmCharts) see of the
  // cluster, in place of the bundle's --kube-version and --api-versions (as ArgoCdHelm's).
  // They change no kustomization.
  std::optional<std::string> kube_version;
  std::vector<std::string> api_versions;
  // Whether the kustomization is edited (kubeVersion and apiVersions aside).
  bool empty() const {
    return !name_prefix && !name_suffix && !namespace_ && common_labels.empty() &&
           common_annotations.empty() && replicas.empty() && components.empty() && patches.empty();
  }
  // The fields set, by Argo CD's names ("namePrefix", "commonLabels", "components").
  std::vector<std::string> Fields() const;
};
// How many components and patches a repository's overrides may add.
inline constexpr size_t kMaxArgoCdKustomizeAdditions = 64;

// The chart fields of Argo CD's overrides (besides parameters), as it passes them to helm
// template: value files first, then the inline values, then the parameters.
struct ArgoCdHelm {
  // valueFiles, relative to the Application's path (the chart's folder).
  std::vector<std::string> value_files;
  bool ignore_missing_value_files = false;
  // values (a YAML text) or valuesObject (written out as YAML; it wins over values).
  std::optional<std::string> values;
  std::optional<std::string> release_name;  // releaseName
  // fileParameters: a value's name and the file, relative to the chart's folder, whose
  // content it takes (helm template --set-file), after the parameters.
  std::vector<std::pair<std::string, std::string>> file_parameters;
  // skipCrds: the chart's crds/ folder is left out (helm template without --include-crds),
  // as when its CRDs are installed by something else.
  bool skip_crds = false;
  // namespace: the namespace the chart is rendered for (helm template --namespace, what
  // `{{ .Release.Namespace }}` says) in place of the bundle's --namespace. Objects that name
  // no namespace still go to the bundle's, as Argo CD's go to the destination's.
  std::optional<std::string> namespace_;
  // kubeVersion and apiVersions: what the chart sees of the cluster (.Capabilities) in
  // place of the bundle's --kube-version and --api-versions, as Argo CD's replace the
  // destination cluster's. An empty list is none given.
  std::optional<std::string> kube_version;
  std::vector<std::string> api_versions;
  // skipTests and skipSchemaValidation: helm template --skip-tests (the chart's test hooks
  // left out) and --skip-schema-validation (values not checked against values.schema.json).
  bool skip_tests = false;
  bool skip_schema_validation = false;
  bool empty() const { return Fields().empty(); }
  // The fields set, by Argo CD's names ("valueFiles", "values", "releaseName",
  // "fileParameters", "skipCrds", "namespace", "kubeVersion", "apiVersions", "skipTests",
  // "skipSchemaValidation").
  std::vector<std::string> Fields() const;
};

struct ArgoCdSource {
  // The files read, in the order merged ("apps/web/.argocd-source-web.yaml").
  std::vector<std::string> files;
  // kustomize.images: arguments of `kustomize edit set image` ("nginx:1.25",
  // "nginx=registry.example.com/nginx@sha256:...").
  std::vector<std::string> kustomize_images;
  bool has_kustomize_images = false;
  struct HelmParameter {
    std::string name;
    std::string value;
    bool force_string = false;  // --set-string rather than --set
  };
  // helm.parameters, as Argo CD passes them to helm template.
  std::vector<HelmParameter> helm_parameters;
  bool has_helm_parameters = false;
  ArgoCdKustomize kustomize;
  ArgoCdHelm helm;
  // valuesObject as merged so far (ReadArgoCdSource writes it into helm.values).
  YAML::Node helm_values_object;
  // The fields gitfleet does not read ("helm.valueFiles", "directory"), each once.
  std::vector<std::string> unread;
  // The Applications whose own files (.argocd-source-NAME.yaml) are in the folder beside
  // `app`'s, not read: at most kMaxArgoCdOtherApps, in path order.
  std::vector<std::string> other_apps;
};

// Reads the overrides for the Application `app` (gitfleet's bundle name) in `path` ("" for
// the repository root) among `files`. Neither file: an empty ArgoCdSource. InvalidArgument
// naming the file and field for YAML Argo CD would refuse (a list where a mapping goes, a
// parameter without a name, forceString that is no boolean) or past kMaxArgoCdOverrides.
absl::StatusOr<ArgoCdSource> ReadArgoCdSource(const std::string& path, const std::string& app,
                                              const std::vector<RepoFile>& files);

// The kustomization `text` with `images` set as `kustomize edit set image` sets each (an
// entry for the image's name updated: a new name, a tag that drops the digest or a digest
// that drops the tag, "*" keeping what was there; else a new entry; sorted by name, as
// kustomize writes them). InvalidArgument naming the argument kustomize would refuse.
absl::StatusOr<std::string> SetKustomizeImages(const std::string& text,
                                               const std::vector<std::string>& images);

// The kustomization `text` with `fields` set as Argo CD's `kustomize edit` commands set them
// (ArgoCdKustomize). InvalidArgument naming a label or annotation the kustomization already
// sets when not forced (kustomize refuses to add it, so Argo CD's build fails).
// Components are added as given (the kustomize engine leaves out, or refuses, those not in
// the repository), patches appended after the kustomization's own.
absl::StatusOr<std::string> SetArgoCdKustomizeFields(const std::string& text,
                                                     const ArgoCdKustomize& fields);

// A helm parameter's value as Argo CD passes it to --set: commas not already escaped are
// escaped, except in a list written `{a,b}`.
std::string ArgoCdHelmSetValue(const std::string& value);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_ARGOCD_SOURCE_H_
