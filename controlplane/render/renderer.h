#ifndef GITFLEET_CONTROLPLANE_RENDER_RENDERER_H_
#define GITFLEET_CONTROLPLANE_RENDER_RENDERER_H_

// Engines turn the files of a bundle's path at one commit into an object set. Each engine
// is a plug-in, as Envoy's extensions are: a RendererFactory registered by name from its
// own target (plain, kustomize, jsonnet, helm; `:engines` links them all), which says what
// the engine needs (cluster values, files outside its path) and creates renderers from the
// common EngineOptions. The controller and `gitfleetctl render` look engines up by name
// and detect them with one DetectEngine.
//
//   Renderers renderers(options);                  // one of each registered engine
//   std::string engine = DetectEngine(path, files);   // when the bundle names none
//   absl::StatusOr<ObjectSet> objects =
//       renderers.Find(engine)->Render({"web", "apps/web", files});
//
// Implementations are thread-safe; registration happens before main.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/manifest/object.h"
#include "controlplane/render/argocd_source.h"
#include "controlplane/render/fetch_scope.h"
#include "controlplane/render/fleet_diff.h"
#include "controlplane/render/fleet_rollout.h"
#include "controlplane/render/values.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

class ChartFetcher;       // chart_fetcher.h
class RemoteBaseFetcher;  // remote_bases.h

// A chart outside the repository, as fleet.yaml names it: `name` in the chart repository at
// `repo` at the newest version `version` allows, or the archive at `url`.
struct RemoteChart {
  std::string repo;
  std::string name;
  std::string version;
  std::string url;  // an archive's, an OCI reference, or go-getter's "git::URL//FOLDER?ref=R"
  bool empty() const { return repo.empty() && url.empty(); }
  // "web ^1.2 from https://charts.example.com/", or the URL.
  std::string Describe() const;
};
// Whether `chart` is a folder of another Git repository (go-getter's `git::` URL), which
// the control plane fetches as it fetches kustomize's remote bases.
bool IsGitChart(const RemoteChart& chart);
// Fleet's Git sources for a chart (fleet.yaml's helm.chart without helm.repo), as Fleet's
// bundle reader resolves them: `git::SOURCE` and `ssh::SOURCE`, a git:// or ssh:// URL,
// `github.com/ORG/REPO[/FOLDER]` (and gitlab.com's and bitbucket.org's: over https, ".git"
// added) and scp's `USER@HOST:PATH`; "//" splits the repository from its folder and `?ref=`
// names a branch, tag or commit. Returns the source as `git::URL[//FOLDER][?QUERY]` (what
// ParseRemoteBase reads), nullopt for anything else (a folder, an archive's URL), or
// InvalidArgument when it names no repository.
absl::StatusOr<std::optional<std::string>> FleetGitChartSource(absl::string_view chart);

// What a chart sees of the cluster (.Capabilities) when `helm template` renders it: empty
// means helm's defaults.
struct HelmCapabilities {
  std::string kube_version;
  std::vector<std::string> api_versions;
};

// What `helm template` leaves out: the chart's crds/ folder (without --include-crds), its
// test hooks (--skip-tests), the check of its values against values.schema.json
// (--skip-schema-validation). Argo CD's skipCrds, skipTests and skipSchemaValidation.
struct HelmSkips {
  bool crds = false;
  bool tests = false;
  bool schema_validation = false;
};

// --kube-version=cluster: each cluster's own Kubernetes version, as its agent reads it from
// the API server; --api-versions=cluster (with others or alone): the APIs it serves, from
// its discovery documents. As Argo CD gives charts the destination cluster's.
inline constexpr char kClusterKubeVersion[] = "cluster";
inline constexpr char kClusterApiVersions[] = "cluster";

// `capabilities` as flags: `kube_flag` + the version, `api_flag` + each API version
// ("--kube-version=" and "--api-versions=" for helm template). InvalidArgument when one is
// still kClusterKubeVersion or kClusterApiVersions (only a render for a cluster knows it).
absl::StatusOr<std::vector<std::string>> HelmCapabilityFlags(const HelmCapabilities& capabilities,
                                                             const std::string& kube_flag,
                                                             const std::string& api_flag);

// At most this many API versions.
inline constexpr size_t kMaxHelmApiVersions = 500;

// OK when `kube_version` is a version helm reads ("1.29", "v1.30.2", "1.28.3-gke.100"; empty
// for helm's own; kClusterKubeVersion) and each of `api_versions` names an API group
// version, optionally with a kind ("v1", "apps/v1", "monitoring.coreos.com/v1/ServiceMonitor").
// InvalidArgument naming the flag and the value otherwise, and past kMaxHelmApiVersions.
absl::Status CheckHelmCapabilities(const std::string& kube_version,
                                   const std::vector<std::string>& api_versions,
                                   size_t most_api_versions = kMaxHelmApiVersions);

struct RenderInput {
  std::string bundle;
  std::string path;  // bundle path in the repository
  // Every file under `path` (for plain, with the .sourceignore files in the folders above
  // it), or the whole repository for engines that read outside it
  // (RendererFactory::reads_outside_path). Not copied: one read of a commit serves many renders.
  const std::vector<RepoFile>& files;
  // When set, receives every repository path (directory or file) the render depended
  // on. The same ids at these paths in a later commit mean the same render.
  std::vector<std::string>* read_paths = nullptr;
  // The cluster's values, for engines that take them (jsonnet, helm); null: none. Plain
  // and kustomize output is substituted afterwards (SubstituteObjects), not here.
  const Values* values = nullptr;
  // When set, receives every value the render looked up.
  ReadValues* read_values = nullptr;
  // Jsonnet top-level arguments: "param" or "param=value-name".
  std::vector<std::string> jsonnet_tlas;
  // Helm values files, relative to the chart directory.
  std::vector<std::string> helm_values_files;
  // When set, receives what the render says without failing: files skipped as never
  // manifests, a kustomization generated for a directory without one.
  std::vector<std::string>* notes = nullptr;
  // The bundle's target namespace (--namespace), or empty. Helm renders its release there,
  // so a chart that writes `namespace: {{ .Release.Namespace }}` (most do) puts its objects
  // where the bundle's others go, not in "default".
  std::string target_namespace;
  // False: what the repository declares about namespaces (fleet.yaml, a Tanka environment)
  // is not used, only noted (RenderBundlePath): for bundles placed before gitfleet read it.
  bool declared_namespace = true;
  // The files of a plain bundle's folder it reads (file_patterns.h): those its --include
  // patterns match (all when none), less those its --exclude patterns match. Other engines
  // read what their entry file names, and refuse these.
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  // Whether .fleetignore files leave out what they name. False for a bundle rendered before
  // gitfleet read them: a file they name that holds manifests stays in (an upgrade never
  // prunes it), and the notes say so.
  bool reads_fleetignore = true;
  // The same for Flux's .sourceignore files (in the folder, below it and above it: the
  // controller adds those above to `files`).
  bool reads_sourceignore = true;
  // Whether fleet.yaml's helm options (values, valuesFiles, releaseName) are used for a
  // chart. False for a bundle rendered before gitfleet read them: noted, not used.
  bool reads_fleet_helm = true;
  // Whether a chart takes the helm values fleet.yaml's targetCustomizations give the
  // clusters they select. False for a bundle rendered before gitfleet read them: noted,
  // not used.
  bool reads_fleet_targets = true;
  // Whether a plain or kustomize bundle renders, for each cluster, the folder, namespace and
  // (plain) yaml overlays fleet.yaml's targetCustomizations give it (RenderBundlePath; `values`
  // then hold the cluster's name and labels under the reserved keys). False for a bundle rendered
  // before gitfleet read them: its folder as it is for every cluster, noted.
  bool reads_fleet_target_folders = true;
  // Whether a plain or kustomize folder whose fleet.yaml's targets say doNotDeploy renders
  // per cluster for them alone (the clusters they select get NotDeployedHere), with
  // reads_fleet_target_folders. False for a bundle rendered before: noted.
  bool reads_fleet_do_not_deploy = true;
  // Whether a folder whose fleet.yaml's helm.chart names a chart folder elsewhere in the
  // repository (`../../charts/web`, helm_chart_folder) or in another Git repository
  // (`git::URL//FOLDER?ref=REF`, remote_chart) renders that chart with the helm engine, as
  // Fleet does. False for a bundle rendered before: its folder as it did, noted.
  bool reads_fleet_outside_charts = true;
  // Whether a helm.chart in the other forms of a chart source go-getter reads for Fleet is
  // read so: a Git source other than `git::` (`github.com/ORG/REPO//DIR`, `ssh::`, a git://
  // or ssh:// URL, `USER@HOST:PATH`: FleetGitChartSource), fetched as a `git::` one is, in
  // fleet.yaml and its targets; a chart archive in the repository (`./web-1.2.0.tgz`,
  // helm_chart_archive), unpacked. False for a bundle rendered before: such a chart reads as
  // it did (a folder inside the bundle's, or nothing), noted.
  bool reads_fleet_getter_charts = true;
  // Whether fleet.yaml's overrideTargets choose, among the bundle's clusters, those it is
  // deployed to (the others get NotDeployedHere), as Fleet deploys it. False for a bundle
  // rendered before: every cluster of its --selector, as before, noted.
  bool reads_fleet_override_targets = true;
  // Whether fleet.yml is read when there is no fleet.yaml (Fleet's other name for it), a
  // plain render leaves out subfolders holding their own fleet.yaml or fleet.yml (bundles of
  // their own in Fleet), and a helm render renders the chart fleet.yaml's helm.chart names
  // in a folder inside the bundle's. False for a bundle rendered before gitfleet read them:
  // noted, and those subfolders' manifests stay in.
  bool reads_fleet_bundle_layout = true;
  // Whether a chart goes through the kustomization of the folder fleet.yaml's kustomize.dir
  // names (its cluster's target's, else its own; else the bundle's folder), as Fleet
  // post-renders it, and takes its cluster's target's namespace; and whether a chart
  // fleet.yaml names in a chart repository or by URL is fetched and rendered. False for a
  // bundle rendered before gitfleet read them: noted (a chart beside a kustomization fails,
  // saying so).
  bool reads_fleet_charts = true;
  // Whether fleet.yaml's diff.comparePatches leave fields to others in what the bundle
  // renders (ObjectSet::ignore_differences), as Fleet leaves them out of its comparison.
  // False for a bundle rendered before gitfleet read them: noted, not used.
  bool reads_fleet_diff = true;
  // Whether fields controllers in the cluster set are left to them
  // (ObjectSet::ignore_differences): the replicas of a workload an autoscaler in the render
  // scales (a HorizontalPodAutoscaler's or KEDA ScaledObject's scaleTargetRef), as
  // Kubernetes advises and Fleet does, and the CA bundles a controller injects into webhook
  // configurations, CRDs and APIServices (those the manifest leaves empty, or all when
  // cert-manager's cainjector is asked to). An apply would otherwise set them back to the
  // manifest's. False for a bundle rendered before gitfleet did: noted, not used.
  bool reads_controller_fields = true;
  // Whether fleet.yaml's serviceAccount is the account the bundle is applied as when it
  // names none (ObjectSet::declared_service_account), looked up in
  // `fleet_service_account_namespace` (the agents' namespace, where Fleet looks it up;
  // empty: not used, noted). False for a bundle rendered before gitfleet read it: noted.
  bool reads_fleet_service_account = true;
  std::string fleet_service_account_namespace;
  // Whether fleet.yaml's dependsOn names bundles the bundle waits for on each cluster, as
  // its --depends-on does (the controller reads them: FleetYamlNamespace::depends_on). False
  // for a bundle rendered before gitfleet read them: noted.
  bool reads_fleet_depends_on = true;
  // A chart of a folder with a fleet.yaml that names no helm.releaseName is released under
  // the name Fleet gives it (its bundle's: fleet.yaml's `name`, or FleetBundleName of
  // `fleet_gitrepo` and the path), so that a chart Fleet installed keeps its objects'
  // names. False for a bundle rendered before gitfleet did: it keeps the bundle's name.
  bool reads_fleet_release_name = true;
  // Argo CD's parameter overrides in the folder (.argocd-source.yaml, and
  // .argocd-source-<bundle>.yaml: ReadArgoCdSource) set a kustomization's images and a
  // chart's parameters, as Argo CD applies them. False for a bundle rendered before
  // gitfleet read them: noted, not applied (they would change its objects).
  bool reads_argocd_source = true;
  // Set by RenderBundlePath from those: images set in the kustomization built, as
  // `kustomize edit set image` sets them, and helm parameters (--set, --set-string) after
  // the bundle's values.
  std::vector<std::string> kustomize_images;
  std::vector<ArgoCdSource::HelmParameter> helm_parameters;
  // The GitRepo Fleet would have read the repository as: the source's fleet_gitrepo, else
  // its name. Empty (a local render given none): the chart keeps the bundle's name.
  std::string fleet_gitrepo;
  // The bundle's --release for the helm engine: wins over every other release name.
  std::string bundle_helm_release;
  // Set by RenderBundlePath for the helm engine, from the above: the folder (relative to
  // `path`, "" for it) whose kustomization.yaml the chart's output goes through, as its
  // first resource, fleet-manifests.yaml (kFleetManifestsFile), as Fleet post-renders it.
  bool fleet_post_render = false;
  std::string fleet_post_render_dir;
  // Set by RenderBundlePath for a plain render of a folder with a fleet.yaml (read since
  // reads_fleet_target_folders): its overlays/ folder is Fleet's yaml overlays, not
  // manifests, and `fleet_overlays` (the cluster's target's) are applied over its files,
  // in order (ApplyFleetOverlays).
  bool fleet_overlays_folder = false;
  std::vector<std::string> fleet_overlays;
  // Set by RenderBundlePath from fleet.yaml for the helm engine: its values as YAML (its
  // helm.values with its valuesFiles, and the cluster's target's, merged over them and
  // filled in for the cluster, fleet_values.h), and its releaseName. The bundle's own
  // values files and values come after them, so the operator's word wins.
  std::string fleet_helm_values;
  std::string helm_release;
  // Set by RenderBundlePath from fleet.yaml's helm.chart for the helm engine: the chart's
  // folder, relative to `path` ("" for the folder itself).
  std::string helm_chart;
  // Set by RenderBundlePath when fleet.yaml's helm.chart names a folder outside the bundle's
  // (since reads_fleet_outside_charts): its repository path. The helm engine reads it with
  // read_folder; the bundle's own values files are then relative to `path`.
  std::string helm_chart_folder;
  // Set by RenderBundlePath when fleet.yaml's helm.chart names a chart archive in the
  // repository (`./web-1.2.0.tgz`, as go-getter unpacks it for Fleet; since
  // reads_fleet_getter_charts): its repository path. The helm engine unpacks it (from
  // `files`, else with read_files); the bundle's own values files are relative to `path`.
  std::string helm_chart_archive;
  // Set by RenderBundlePath from fleet.yaml's helm.repo, chart and version (or a chart's
  // URL) for the helm engine: the chart to fetch and render (since reads_fleet_charts). The
  // bundle's own values files are then relative to `path`.
  RemoteChart remote_chart;
  // What `helm template` takes the cluster to be (Bundle.helm_kube_version and
  // helm_api_versions).
  HelmCapabilities helm_capabilities;
  // Reads a folder of the repository at the render's commit (its files, by repository
  // path), for what an engine may take from outside `files`: a chart's file:// dependency
  // elsewhere in the repository. Unset: nothing outside `files` is read.
  std::function<absl::StatusOr<std::vector<RepoFile>>(const std::string& folder)> read_folder;
  // A team's bundle: where what the render fetches from outside the repository may come
  // from (Bundle.scope.repos; chart_fetcher.h). Empty: what the control plane trusts.
  FetchScope fetch_scope;
  // The Argo CD Application whose parameter overrides (.argocd-source-NAME.yaml) the
  // bundle takes (Bundle.argocd_app); "": the bundle's name, and another Application's
  // file beside them, with none of the bundle's own, fails the render.
  std::string argocd_app;
  // When set, made true if the render read something from outside the repository that
  // can change without a commit (kustomize's remote bases and files): the same paths then
  // do not mean the same render.
  bool* read_remote = nullptr;
  // Argo CD's kustomize fields in the parameter overrides (namePrefix, commonLabels, ...:
  // ArgoCdKustomize) are set in the kustomization built, as Argo CD's `kustomize edit` sets
  // them. False for a bundle rendered before gitfleet read them: noted, not applied (they
  // would rename or relabel its objects).
  bool reads_argocd_kustomize = true;
  // And its components and patches (ArgoCdKustomize::components, patches) are added to the
  // kustomization, and its chart's fileParameters given (ArgoCdHelm::file_parameters), as
  // Argo CD does. False for a bundle rendered before gitfleet read them: noted, not applied.
  bool reads_argocd_additions = true;
  // And a chart's namespace, kubeVersion, apiVersions, skipTests and skipSchemaValidation
  // (ArgoCdHelm), and kustomize's kubeVersion and apiVersions, are given to helm as Argo CD
  // gives them. False for a bundle rendered before gitfleet read them: noted, not applied.
  bool reads_argocd_template_options = true;
  // Set by RenderBundlePath from those.
  ArgoCdKustomize argocd_kustomize;
  // Argo CD's chart fields in the parameter overrides (valueFiles, values or valuesObject,
  // releaseName: ArgoCdHelm) are passed to helm as Argo CD passes them: the value files
  // after the bundle's own, the values after those (before --values and parameters), the
  // release name unless --release names one. False for a bundle rendered before gitfleet
  // read them: noted, not applied.
  bool reads_argocd_helm = true;
  // Set by RenderBundlePath from those: the values text, written beside the chart.
  std::string argocd_helm_values;
  // Argo CD's helm.fileParameters (ArgoCdHelm::file_parameters): a value's name and a file
  // relative to the chart directory, given with --set-file after everything else.
  std::vector<std::pair<std::string, std::string>> helm_file_parameters;
  // Argo CD's helm.skipCrds, skipTests and skipSchemaValidation.
  HelmSkips helm_skips;
  // Argo CD's helm.namespace: the namespace helm renders the release for, in place of
  // target_namespace (where objects that name none still go). Empty: target_namespace.
  std::string helm_release_namespace;
  // Reads files of the repository at the render's commit (those there, by repository
  // path; GitRepository::ReadFiles), for the few an engine takes from outside `files`:
  // helm values files elsewhere in the repository (HelmValuesPath). Unset: none is read.
  std::function<absl::StatusOr<std::vector<RepoFile>>(const std::vector<std::string>& paths)>
      read_files;
  // When set, an engine that reads outside `path` (RendererFactory::reads_outside_path)
  // and knows what its failed render read fills it as read_paths would be filled, the
  // paths it looked for and did not find included: the same ids there in a later commit
  // mean the same failure. Left empty otherwise (the render is then tried at each commit).
  std::vector<std::string>* failed_reads = nullptr;
};

// What of a repository's declarations about itself a bundle's render reads (its
// BundleRecord's reads_* fields). False for a bundle rendered before gitfleet read each:
// an upgrade does not change what it renders, and its notes say what would change.
struct RepositoryReads {
  bool declared_namespace = true;
  bool fleetignore = true;
  bool sourceignore = true;
  bool fleet_helm = true;
  bool fleet_targets = true;
  bool fleet_target_folders = true;
  bool fleet_do_not_deploy = true;
  bool fleet_outside_charts = true;
  bool fleet_getter_charts = true;
  bool fleet_override_targets = true;
  bool fleet_bundle_layout = true;
  bool fleet_charts = true;
  bool fleet_diff = true;
  bool controller_fields = true;
  bool fleet_service_account = true;
  bool fleet_depends_on = true;
  bool fleet_release_name = true;
  bool argocd_source = true;
  bool argocd_kustomize = true;
  bool argocd_additions = true;
  bool argocd_helm = true;
  bool argocd_template_options = true;
};

// The file a chart's output is written to, beside the kustomization it goes through, as Fleet
// names it (RenderInput::fleet_post_render).
inline constexpr char kFleetManifestsFile[] = "fleet-manifests.yaml";

// Sets `input`'s reads_* fields (and declared_namespace) from `reads`.
void UseReads(const RepositoryReads& reads, RenderInput* input);

// Files under a bundle path that are never manifests, whatever their extension: dotfiles
// and anything under a dot-directory, a helm chart (a directory holding Chart.yaml: its
// metadata, values and templates), fleet.yaml (Rancher Fleet's bundle options),
// kustomization files and the CI settings Flux leaves out by default (appveyor.yml,
// cloudbuild.yaml, codeship-*.yml). Flux and Fleet repositories keep these beside their
// manifests.
class NonManifests {
 public:
  // `files` are the files under `path`.
  NonManifests(const std::string& path, const std::vector<RepoFile>& files);
  // Why the file at `repo_path` is skipped, or an empty string when it may be a manifest.
  std::string Why(const std::string& repo_path) const;
  // The repository path of the subfolder of `path` holding `repo_path` that holds its own
  // fleet.yaml or fleet.yml (the top-most such folder), or "": Fleet makes such a folder a
  // bundle of its own and leaves it out of the folder's raw YAML.
  std::string FleetBundleOf(const std::string& repo_path) const;

 private:
  std::string prefix_;                      // path + "/", or empty
  std::vector<std::string> charts_;         // directories (relative) that hold a Chart.yaml
  std::vector<std::string> fleet_bundles_;  // subfolders (relative) that hold a fleet.yaml
};

// Fleet's bundle options file in `path` among `files`: "path/fleet.yaml", else (when
// `fleet_yml`) "path/fleet.yml", Fleet's other name for it; null when neither is there.
const RepoFile* FindFleetYaml(const std::string& path, const std::vector<RepoFile>& files,
                              bool fleet_yml = true);
// Whether `name` (a file's last path element) is Fleet's bundle options file.
bool IsFleetYamlName(absl::string_view name);

// Whether `content` is a Git LFS pointer (git-lfs's spec/v1): the file itself is kept in
// LFS storage, which gitfleet does not fetch, and what Git holds is three lines naming it.
bool IsLfsPointer(absl::string_view content);

// For a tool's failure: "" or a sentence naming the files among `files` under `path` that
// are Git LFS pointers (at most three), which the tool read instead of the real file.
std::string LfsPointerHint(const std::vector<RepoFile>& files, absl::string_view path);

// For a tool's failure in a repository read without its submodules: "" or a sentence saying
// the repository has some (a .gitmodules among `files`) and `how` to fetch them.
std::string SubmoduleHint(const std::vector<RepoFile>& files, absl::string_view how);

// The default of --max-bundle-bytes; it leaves room under the 64 MiB message limit.
inline constexpr size_t kDefaultMaxBundleBytes = 32 << 20;

struct RenderLimits {
  size_t max_objects = 10000;
  size_t max_bytes = kDefaultMaxBundleBytes;
  // A render child's data segment (kustomize, helm, isolated jsonnet); 0 for no limit.
  int64_t max_memory_bytes = int64_t{2} << 30;
};

class Renderer {
 public:
  virtual ~Renderer() = default;
  virtual const char* engine() const = 0;
  // InvalidArgument naming the file and line for bad input; ResourceExhausted when
  // the output passes a limit.
  virtual absl::StatusOr<ObjectSet> Render(const RenderInput& input) = 0;
};

// Options of an engine that runs an external tool (kustomize, helm).
struct ToolOptions {
  std::string binary;       // empty: found on the system (FindKustomize, FindHelm)
  std::string scratch_dir;  // where checkouts are written (and removed)
  absl::Duration timeout = absl::Seconds(60);
  RenderLimits limits;
  // Without a network namespace for the tool (unshare --net), a render fails, saying so,
  // unless this is set (--render-network=allow).
  bool allow_network = false;
  // kustomize only: build with --load-restrictor=LoadRestrictionsNone (as Flux builds), so a
  // kustomization may name files outside its own folder. gitfleet still refuses references
  // in kustomization files that leave the repository, but kustomize may then read any file
  // the control plane can that a transformer's own config names
  // (--kustomize-load-restrictor=LoadRestrictionsNone).
  bool load_restrictions_none = false;
  // kustomize only: the helm kustomize's helmCharts run (--enable-helm; empty: none, and such
  // a build fails saying so), and where their charts come from (null: nowhere).
  std::string helm_binary;
  std::shared_ptr<ChartFetcher> chart_fetcher;
  // kustomize only: where remote bases are fetched from (remote_bases.h); null: nowhere,
  // and a build that reads one fails naming --kustomize-remote-bases.
  std::shared_ptr<RemoteBaseFetcher> remote_bases;
};
using KustomizeOptions = ToolOptions;

// helm in /usr/local/bin or /usr/bin; empty when there is none.
std::string FindHelm();

// `unshare` when this machine can give a child a network namespace of its own (probed once
// by running /bin/true in one); empty when it cannot.
const std::string& NetworkSandbox();
// FailedPrecondition naming the engine and path when renders cannot be isolated from the
// network and `options` does not allow the host's network.
absl::Status RequireNetworkSandbox(const ToolOptions& options, const char* engine,
                                   const std::string& path);

// What every engine may be configured with; each factory takes what applies to it.
struct EngineOptions {
  RenderLimits limits;
  // Past it a render is killed (tools, isolated jsonnet) or stopped (plain).
  absl::Duration timeout = absl::Seconds(60);
  std::string scratch_dir;     // where tools' checkouts are written (and removed)
  bool allow_network = false;  // tools may run with the host's network (see ToolOptions)
  bool kustomize_load_restrictions_none = false;  // see ToolOptions::load_restrictions_none
  // Jsonnet evaluates in a child process that can be killed (the default).
  bool isolate_jsonnet = true;
  // An engine's tool binary by engine name ("kustomize", "helm"); absent or empty: found
  // on the system.
  std::map<std::string, std::string> binaries;
  size_t plain_cache_bytes = 64 << 20;
  // Where the helm engine fetches charts from outside the repository; null: nowhere (a
  // render that needs one fails, naming --chart-repositories).
  std::shared_ptr<ChartFetcher> chart_fetcher;
  // Where kustomize's remote bases are fetched from; null: nowhere.
  std::shared_ptr<RemoteBaseFetcher> remote_bases;

  // ToolOptions for `engine`'s tool.
  ToolOptions Tool(const std::string& engine) const;
};

// An engine: its name, what it needs, and how to make one.
class RendererFactory {
 public:
  virtual ~RendererFactory() = default;
  virtual std::string name() const = 0;
  // Renders once per distinct set of cluster values it reads (jsonnet, helm); otherwise
  // the output is a template substituted per cluster.
  virtual bool takes_values() const = 0;
  // Is handed only the bundle's own values, not the cluster's labels (helm).
  virtual bool explicit_values_only() const { return false; }
  // May read files outside the bundle path (kustomize bases, jsonnet imports): such
  // renders get the whole repository and cannot be cached by the path's tree id.
  virtual bool reads_outside_path() const = 0;
  // The few files above `path` a render that does not read outside it still reads (plain:
  // Flux's .sourceignore files), added to its files when they are there (ReadFilesAbove).
  virtual std::vector<std::string> FilesAbove(const std::string& path) const { return {}; }
  // Detection: factories are asked in ascending order; the first whose Detects holds
  // names the engine. One that never claims a path (plain, the fallback) returns false.
  virtual int detect_order() const { return 1000; }
  virtual bool Detects(const std::string& path, const std::vector<RepoFile>& files) const {
    return false;
  }
  virtual std::unique_ptr<Renderer> Create(const EngineOptions& options) const = 0;
};

// Adds to `files` (the files under `path`) those of factory.FilesAbove(path) that `repo`
// has at `commit`.
absl::Status ReadFilesAbove(const RendererFactory& factory, GitRepository& repo,
                            const std::string& commit, const std::string& path,
                            std::vector<RepoFile>* files);

// Registers a factory under its name (from a static initializer in the engine's target,
// which is alwayslink). Returns true; a second factory of the same name aborts.
bool RegisterRendererFactory(std::unique_ptr<RendererFactory> factory);
// The factory of `name`; null when no such engine is linked in.
const RendererFactory* FindRendererFactory(const std::string& name);
// Every registered engine's name, sorted.
std::vector<std::string> RendererNames();
// The engine a bundle path calls for when its bundle names none: the first factory that
// detects it (kustomization.yaml → kustomize, Chart.yaml → helm, a jsonnet entry file →
// jsonnet), else plain. `files` are the files under `path`.
// A folder whose fleet.yaml (or fleet.yml) names a chart in a folder inside it
// (`helm.chart: ./chart`) is a chart, as Fleet renders it, unless `fleet_layout` is false (a
// bundle rendered before gitfleet read it). So is a folder with a Chart.yaml and a fleet.yaml,
// whatever kustomization is beside the chart (Fleet post-renders the chart through it), unless
// `fleet_charts` is false. So is one whose fleet.yaml names a chart folder outside it
// (`helm.chart: ../../charts/web`), unless `fleet_outside_charts` is false, or a chart in
// another Git repository in one of Fleet's forms other than `git::` (FleetGitChartSource),
// or a chart archive in the repository, unless `fleet_getter_charts` is false.
std::string DetectEngine(const std::string& path, const std::vector<RepoFile>& files,
                         bool fleet_layout = true, bool fleet_charts = true,
                         bool fleet_outside_charts = true, bool fleet_getter_charts = true);
// InvalidArgument naming `engine` and every registered one when there is no such engine.
absl::Status CheckEngineName(const std::string& engine);

// One renderer of every registered engine, made from `options`.
class Renderers {
 public:
  explicit Renderers(const EngineOptions& options);
  // Null when no such engine is registered.
  Renderer* Find(const std::string& engine) const;

 private:
  std::map<std::string, std::unique_ptr<Renderer>> renderers_;
};

// How FleetYamlNamespace::depends_on writes a selector entry ("selector:app=db"); no
// bundle's name holds a colon.
inline constexpr char kFleetSelectorPrefix[] = "selector:";

// Helm's rule for a release name: a DNS subdomain of at most 53 characters.
bool ValidReleaseName(absl::string_view name);

// Where Rancher Fleet's fleet.yaml in a bundle's folder puts the bundle's objects:
// `defaultNamespace` for namespaced objects that name none, or `namespace`, which Fleet
// forces on every object. Empty `ns` when there is no fleet.yaml or it sets neither.
struct FleetYamlNamespace {
  std::string file;  // its repository path, whether or not it is there
  std::string ns;
  bool forced = false;  // from `namespace`
  std::string origin;   // "apps/web/fleet.yaml: namespace", for messages
  // Options it sets that change what Fleet renders or how it rolls out, which gitfleet
  // does not read ("helm", "targetCustomizations", ...); a bundle's flags do their work.
  std::vector<std::string> unread;
  // Its dependsOn entries, at most 32: a bundle's name (`- name: NAME`), or the bundles
  // whose labels a selector matches (`- selector:`), kFleetSelectorPrefix and its text
  // (with a name too, the name); whether some are neither (not read), and why a selector
  // cannot be read (Fleet would not deploy the folder either).
  std::vector<std::string> depends_on;
  bool depends_on_unread = false;
  std::string depends_on_error;
  // Its `labels` (the bundle's, which other folders' dependsOn selectors match): at most
  // 64, those Kubernetes would take.
  std::map<std::string, std::string> labels;
  // Its `name` (Fleet names the bundle so instead of after the GitRepo and folder), which
  // other folders' dependsOn may name; "" when unset or no name.
  std::string bundle_name;
  // Its `paused` (Fleet: the folder's changes are not deployed while true), and why it
  // cannot be read when it is not a boolean (Fleet's reader would refuse it).
  bool paused = false;
  std::string paused_error;
  // Its rolloutStrategy (rollout.declared when it has one), and why it cannot be read.
  FleetRollout rollout;
  std::string rollout_error;
  // Its serviceAccount (a name), and why it cannot be used when it is no name.
  std::string service_account;
  std::string service_account_error;
  // "kustomize.dir overlays/prod" or "helm.chart ./chart" when it sets them: Fleet then
  // renders another folder or chart than the bundle's path.
  std::string renders_elsewhere;
  // "helm.chart ./chart" when it sets that, whether or not it sets kustomize.dir too.
  std::string chart_elsewhere;
  // Its own kustomize.dir (relative to the folder, inside it; "" for the folder), or why it
  // cannot be used: the folder a plain or kustomize bundle renders for a cluster whose
  // target gives none, as Fleet renders it (since reads_fleet_target_folders).
  std::string kustomize_dir;
  std::string kustomize_dir_error;
  // Its targetCustomizations that change what some clusters get (another folder, helm
  // options, overlays, a namespace, not deployed), each as the flags of the gitfleet bundle
  // that does its work: "dev: --selector=env=dev --path=apps/web/overlays/dev", for a
  // bundle that renders its folder as it is for every cluster it targets (one rendered
  // before gitfleet read them; a chart, for what is more than its values).
  std::vector<std::string> targets;
  int targets_not_described = 0;            // past the first ten
  std::vector<std::string> target_folders;  // the kustomize.dir of those that set one
  // Its helm options a chart rendered with helm takes (RenderInput's fleet_helm_*): the
  // valuesFiles, the values as YAML, the releaseName; what they are, for a note
  // ("helm.values, helm.valuesFiles values/prod.yaml"); and why they cannot be used, if
  // so (Fleet's ${ } templating, a file outside the chart, a release name helm refuses).
  std::vector<std::string> helm_values_files;
  std::string helm_values;
  std::string helm_release;
  std::string helm_described;
  std::string helm_error;
  bool helm_other_options = false;  // repo, version, a chart elsewhere, ...: not read
  // Its helm.chart when that names a folder inside the bundle's (relative, cleaned): Fleet
  // renders the chart there (Chart.yaml in it), with the options above.
  std::string helm_chart;
  // Its helm.chart when that names a folder outside the bundle's (relative, cleaned, with a
  // "..": `../../charts/web`), which Fleet renders too. Resolved against the folder, and
  // refused when it leaves the repository, by RenderBundlePath.
  std::string helm_chart_outside;
  // The chart its helm.repo, chart and version name in a chart repository, or helm.chart's
  // URL; or why it cannot be fetched (an OCI registry, a scheme other than http(s)).
  RemoteChart remote_chart;
  std::string remote_chart_error;
  // The chart helm.chart names in another Git repository in one of Fleet's forms other than
  // `git::` (FleetGitChartSource: `github.com/ORG/REPO//DIR`, a git:// URL, ...), or why it
  // names none: the remote chart since reads_fleet_getter_charts (ReadGetterCharts), a
  // folder inside the bundle's or nothing before.
  RemoteChart git_chart_form;
  std::string git_chart_form_error;
  // Its helm.chart when that names a chart archive (.tgz, .tar.gz) in the repository,
  // relative to the folder as written (cleaned): go-getter unpacks it for Fleet. Since
  // reads_fleet_getter_charts (ReadGetterCharts moves it to helm_chart_archive), a
  // folder of that name before.
  std::string chart_archive_form;
  std::string helm_chart_archive;
  bool helm_other_options_but_getter = false;  // helm_other_options, the chart read
  // Takes git_chart_form as the remote chart, or chart_archive_form as helm_chart_archive
  // (helm_chart and helm_chart_outside cleared).
  void ReadGetterCharts();
  // Takes `field` off `unread`: the render reads it.
  void MarkRead(absl::string_view field);
  // Its helm.repo, helm.chart and helm.version as written: a target's are merged over them.
  std::string helm_repo_field, helm_chart_field, helm_version_field;
  bool helm_preprocess = true;  // false: disablePreProcess, ${ } is text
  // Its diff.comparePatches as rules for fields left to others (fleet_diff.h), with what of
  // them is not read; or why they cannot be read.
  FleetComparePatches compare_patches;
  std::string compare_patches_error;
  // Its targetCustomizations that set a diff of their own, each as the flags of the bundle
  // per target that does its work ("dev: --selector=env=dev --ignore-difference=..."): one
  // bundle takes the folder's for every cluster.
  std::vector<std::string> target_diffs;
  // keepResources: true: its objects stay when the bundle leaves a cluster.
  bool keep_resources = false;
  // The first target whose own keepResources set keep_resources ("" when the folder's did,
  // or none): its clusters' objects would be kept by Fleet, so every cluster's are.
  std::string keep_resources_target;
  // namespaceLabels and namespaceAnnotations, "KEY=VALUE" sorted by key, or why they cannot
  // be read: what a namespace created for the bundle gets.
  std::vector<std::string> namespace_labels;
  std::vector<std::string> namespace_annotations;
  std::string namespace_metadata_error;

  // Every one of its targetCustomizations, in order: for each cluster the first whose
  // criteria all hold (none set: no cluster) is its target (ChooseFleetTarget). A chart
  // rendered with helm takes its helm values, merged over the folder's;
  // `targets_beyond_helm` describes, as `targets` does, those that change more than a
  // chart's values. A plain or kustomize render takes its folder and namespace
  // (`folder_targets`).
  struct Target {
    std::string name;  // its name, else "targetCustomizations[N]"
    bool has_selector = false;
    std::string selector;      // its clusterSelector as a selector ("" matches every cluster)
    std::string cluster_name;  // its clusterName
    std::string group;         // its clusterGroup: the cluster must be in that group
    // Its clusterGroupSelector (gitfleet's selector text): the cluster must be in a group
    // whose labels it matches.
    bool has_group_selector = false;
    std::string group_selector;
    std::string error;  // why it cannot be read
    bool do_not_deploy = false;
    std::string helm_values;  // YAML
    std::vector<std::string> helm_values_files;
    bool helm_preprocess_off = false;
    // Its helm.releaseName, and its helm.repo, chart and version (each unset when absent):
    // over the folder's, as Fleet merges a target's helm options (since reads_fleet_charts).
    std::string helm_release;
    std::optional<std::string> helm_repo, helm_chart, helm_version;
    std::string chart_error;                 // why those cannot be read
    std::string kustomize_dir;               // relative to the folder, inside it; "" for the folder
    std::string ns;                          // its namespace, else its defaultNamespace
    bool ns_forced = false;                  // from `namespace`
    bool overlays = false;                   // it sets yaml.overlays
    std::vector<std::string> overlay_names;  // them, in order (fleet_overlays.h)
    // Why its folder or namespace cannot be used (a plain or kustomize render that chooses
    // it fails; a chart does not read them).
    std::string folder_error;
  };
  std::vector<Target> helm_targets;
  std::string helm_targets_error;  // too many of them
  std::vector<std::string> targets_beyond_helm;
  int targets_beyond_helm_not_described = 0;
  // The same for a chart that also takes its target's kustomize.dir (a post-render) and
  // namespace (RenderInput::reads_fleet_charts).
  std::vector<std::string> targets_beyond_chart;
  int targets_beyond_chart_not_described = 0;
  std::vector<std::string> helm_target_names;  // those that give a chart values
  // Those that give a chart another release name, chart or chart version.
  std::vector<std::string> chart_target_names;
  // Those that give their clusters another folder (kustomize.dir), namespace or yaml
  // overlays: a plain or kustomize bundle renders per cluster what its target gives it.
  std::vector<std::string> folder_target_names;
  bool folder_targets() const { return !folder_target_names.empty(); }
  // Those that say doNotDeploy: a plain or kustomize bundle renders per cluster for them
  // too (since RenderInput::reads_fleet_do_not_deploy), their clusters getting nothing.
  std::vector<std::string> do_not_deploy_target_names;
  // Its overrideTargets (Fleet's list of targets, or `overrideTargets: true` with the list
  // under `targets:`, as fleet-examples writes it): in Fleet, the clusters it is deployed to
  // instead of its GitRepo's targets. Since RenderInput::reads_fleet_override_targets, a
  // cluster of the bundle's that none selects gets nothing of it (RenderBundlePath); a
  // cluster outside the bundle's --selector gets nothing either way. Or why they cannot
  // be read.
  bool override_targets_given = false;
  bool override_targets_from_targets = false;  // `overrideTargets: true`: `targets:` is the list
  std::vector<Target> override_targets;
  std::vector<std::string> override_target_names;
  std::string override_targets_error;
  bool per_target(bool reads_do_not_deploy, bool reads_override_targets = false) const {
    return folder_targets() || (reads_do_not_deploy && !do_not_deploy_target_names.empty()) ||
           (reads_override_targets && override_targets_given);
  }
};

// Whether `engine` renders the folders fleet.yaml names (its kustomize.dir, its targets'
// folders, namespaces and yaml overlays): plain and kustomize.
bool RendersFleetFolders(const std::string& engine);
// Whether a bundle of `engine` at `path` renders per cluster for fleet.yaml's targets
// (RenderBundlePath then needs the cluster's values, AllAndClusterFor): one whose folder's
// fleet.yaml gives some clusters another folder, namespace or overlays. `files` are the
// files the render reads.
// With `do_not_deploy` (RenderInput::reads_fleet_do_not_deploy), also one whose targets
// leave some clusters out; with `override_targets` (reads_fleet_override_targets), one whose
// overrideTargets choose its clusters.
bool RendersPerFleetTarget(const std::string& engine, const std::string& path,
                           const std::vector<RepoFile>& files, bool fleet_yml = true,
                           bool do_not_deploy = true, bool override_targets = true);

// The target of `targets` (FleetYamlNamespace::helm_targets) that is the cluster's in
// `values` (ClusterNameKey, ClusterLabelKey): the first whose criteria all hold; nullptr
// when none does. Every name and label looked at is recorded in `read`. InvalidArgument
// naming the target when it cannot be decided here (Fleet's cluster groups, which gitfleet
// clusters do not have) or cannot be read.
// `list` names the targets' field in errors.
absl::StatusOr<const FleetYamlNamespace::Target*> ChooseFleetTarget(
    const std::vector<FleetYamlNamespace::Target>& targets, const Values& values, ReadValues* read,
    absl::string_view list = "targetCustomizations");

// A helm values file must name a file inside the chart: relative, without "..".
absl::Status CheckHelmValuesFile(const std::string& file);
// A helm values file a bundle (--values-file) or Argo CD (helm.valueFiles) names, relative
// to repository folder `folder` (the chart's), as the repository path it reads: "." and
// ".." worked out, so it may be anywhere in the repository, as Argo CD allows (a monorepo's
// envs/prod/values.yaml beside charts/web). InvalidArgument naming it when it is empty,
// absolute, over 1,024 characters, or climbs out of the repository.
absl::StatusOr<std::string> HelmValuesPath(const std::string& folder, const std::string& file);
// InvalidArgument naming the file when it is not YAML, not a mapping, or names a
// namespace Kubernetes refuses: passing over it would put the objects elsewhere.
// `fleet_yml`: fleet.yml is read when there is no fleet.yaml (FindFleetYaml).
absl::StatusOr<FleetYamlNamespace> ReadFleetYamlNamespace(const std::string& path,
                                                          const std::vector<RepoFile>& files,
                                                          bool fleet_yml = true);

// What every caller renders a bundle with: `renderer` on `input`, with what the bundle's
// folder declares for itself (fleet.yaml's namespace) when the bundle has no
// --namespace (`input.target_namespace`): helm renders its release there, the set's
// default namespace is it (Revision::Build), and with Fleet's `namespace` an object that
// names another one is moved into it, as Fleet moves it. Fleet options gitfleet does not
// read are named in the notes, and in the error of a render that fails while fleet.yaml
// says Fleet renders another folder or chart.
absl::StatusOr<ObjectSet> RenderBundlePath(Renderer& renderer, const RenderInput& input);

// The objects in an external tool's YAML output, under `limits`; errors name `origin`.
absl::StatusOr<ObjectSet> ObjectsFromToolOutput(const std::string& bundle,
                                                const std::string& origin, const std::string& text,
                                                const RenderLimits& limits);

// Adds parsed objects to `set`, enforcing `limits`. Shared by every engine.
absl::Status AddObjects(const std::string& bundle, const std::string& origin,
                        std::vector<v1::ManifestObject> objects, const RenderLimits& limits,
                        ObjectSet* set, size_t* bytes);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_RENDERER_H_
