#include "controlplane/render/helm_renderer.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/agent_protocol.h"
#include "common/manifest/yaml.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "controlplane/render/chart_fetcher.h"
#include "controlplane/render/checkout.h"
#include "controlplane/render/kustomize_renderer.h"
#include "controlplane/render/remote_bases.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {
// Where fleet.yaml's helm.values are written in the scratch copy of the chart.
constexpr char kFleetValuesFile[] = ".gitfleet-fleet-yaml-values.yaml";
// Where Argo CD's helm.values are written in the scratch copy of the chart.
constexpr char kArgoCdValuesFile[] = ".gitfleet-argocd-values.yaml";
// Where a fetched chart is written, in the scratch copy of the bundle's folder.
constexpr char kFetchedChartFolder[] = ".gitfleet-fetched-chart";
}  // namespace

absl::StatusOr<std::vector<std::string>> HelmTemplateArgs(
    const std::string& binary, const std::string& release, const std::string& chart_dir,
    const std::string& release_namespace, const std::string& values_dir,
    const std::vector<std::string>& values_files, const Values& values,
    const HelmCapabilities& capabilities,
    const std::vector<ArgoCdSource::HelmParameter>& parameters,
    const std::vector<std::pair<std::string, std::string>>& file_parameters,
    const HelmSkips& skips) {
  // A chart's crds/ folder too, as Argo CD renders it: without them its custom resources
  // have no kind to be.
  std::vector<std::string> args = {binary, "template", release, chart_dir};
  if (!skips.crds) args.push_back("--include-crds");
  if (skips.tests) args.push_back("--skip-tests");
  // helm 3.16 and later; an older one fails the render, saying it has no such flag.
  if (skips.schema_validation) args.push_back("--skip-schema-validation");
  if (!release_namespace.empty()) args.push_back("--namespace=" + release_namespace);
  GF_RETURN_IF_ERROR(CheckHelmCapabilities(capabilities.kube_version, capabilities.api_versions,
                                           kMaxHelmApiVersions + kMaxClusterApiVersions));
  absl::StatusOr<std::vector<std::string>> flags =
      HelmCapabilityFlags(capabilities, "--kube-version=", "--api-versions=");
  if (!flags.ok()) return flags.status();
  args.insert(args.end(), flags->begin(), flags->end());
  for (const std::string& file : values_files) {
    if (absl::Status s = CheckHelmValuesFile(file); !s.ok()) return s;
    args.push_back("--values=" + values_dir + "/" + file);
  }
  for (const auto& [name, value] : values) {
    if (IsClusterContextKey(name)) continue;  // only for fleet.yaml's templates
    if (name.empty() || name.find_first_of("=,[]") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "helm value \"", name, "\": names may not be empty or contain '=', ',', '[' or ']'"));
    }
    // helm splits values on unescaped commas.
    args.push_back(absl::StrCat("--set-string=", name, "=",
                                absl::StrReplaceAll(value, {{"\\", "\\\\"}, {",", "\\,"}})));
  }
  // Argo CD's helm.parameters, after the values (the later --set wins), as Argo CD passes
  // them.
  for (const ArgoCdSource::HelmParameter& parameter : parameters) {
    args.push_back(absl::StrCat(parameter.force_string ? "--set-string=" : "--set=", parameter.name,
                                "=", ArgoCdHelmSetValue(parameter.value)));
  }
  for (const auto& [name, file] : file_parameters) {
    if (absl::Status s = CheckHelmValuesFile(file); !s.ok()) return s;
    if (name.empty() || name.find_first_of("=,") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "helm file parameter \"", name, "\": names may not be empty or contain '=' or ','"));
    }
    args.push_back(absl::StrCat("--set-file=", name, "=",
                                absl::StrReplaceAll(values_dir + "/" + file, {{",", "\\,"}})));
  }
  return args;
}

absl::StatusOr<HelmCapabilities> HelmCapabilitiesFor(HelmCapabilities capabilities,
                                                     const Values& values, ReadValues* read,
                                                     const ApiVersionsOf& api_versions_of) {
  // The cluster value `key`, recorded as read; "" when the cluster has none.
  auto look_up = [&](const std::string& key) {
    auto found = values.find(key);
    const bool known = found != values.end() && !found->second.empty();
    if (read != nullptr) {
      (*read)[key] = known ? std::optional<std::string>(found->second) : std::nullopt;
    }
    return known ? found->second : std::string();
  };
  if (capabilities.kube_version == kClusterKubeVersion) {
    const std::string version = look_up(ClusterKubernetesVersionKey());
    if (version.empty()) {
      return absl::FailedPreconditionError(
          "--kube-version=cluster: this cluster has not reported its Kubernetes version (its "
          "agent has not connected since it was added, applies to a directory, or is older "
          "than the report); nothing is rendered for it, and it keeps what it has");
    }
    if (version == kClusterKubeVersion || !CheckHelmCapabilities(version, {}).ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--kube-version=cluster: this cluster reports Kubernetes version \"",
                       version.substr(0, 64), "\", which helm cannot read as a version"));
    }
    capabilities.kube_version = version;
  }
  auto cluster = std::find(capabilities.api_versions.begin(), capabilities.api_versions.end(),
                           kClusterApiVersions);
  if (cluster != capabilities.api_versions.end()) {
    capabilities.api_versions.erase(cluster);
    const std::string digest = look_up(ClusterApiVersionsKey());
    std::shared_ptr<const std::vector<std::string>> served =
        digest.empty() || !api_versions_of ? nullptr : api_versions_of(digest);
    if (served == nullptr) {
      return absl::FailedPreconditionError(
          "--api-versions=cluster: this cluster has not reported the APIs it serves (its "
          "agent has not connected since it was added or since the control plane started, "
          "applies to a directory, or is older than the report); nothing is rendered for it, "
          "and it keeps what it has");
    }
    std::set<std::string> named(capabilities.api_versions.begin(), capabilities.api_versions.end());
    for (const std::string& api : *served) {
      if (named.count(api) == 0) capabilities.api_versions.push_back(api);
    }
  }
  return capabilities;
}

HelmRenderer::HelmRenderer(HelmOptions options, std::optional<ToolOptions> kustomize,
                           std::shared_ptr<ChartFetcher> charts)
    : options_(std::move(options)), charts_(std::move(charts)) {
  if (charts_ == nullptr) charts_ = std::make_shared<ChartFetcher>(ChartFetchOptions{});
  if (options_.binary.empty()) options_.binary = FindHelm();
  if (options_.scratch_dir.empty()) options_.scratch_dir = "/tmp";
  if (!kustomize.has_value()) {
    kustomize = options_;
    kustomize->binary.clear();  // found on the system
  }
  remote_bases_ = kustomize->remote_bases;
  post_renderer_ = std::make_unique<KustomizeRenderer>(*std::move(kustomize));
}

absl::StatusOr<std::string> WithChartOutputResource(const std::string& path,
                                                    const std::string& kustomization) {
  GF_RETURN_IF_ERROR(CheckYamlBounds(kustomization, path));
  YAML::Node doc;
  try {
    doc = YAML::Load(kustomization);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  if (!doc.IsMap()) return kustomization;
  try {
    YAML::Node resources = doc["resources"];
    YAML::Node list(YAML::NodeType::Sequence);
    list.push_back(kFleetManifestsFile);
    if (resources && resources.IsSequence()) {
      for (const YAML::Node& resource : resources) {
        if (resource.IsScalar() && resource.Scalar() == kFleetManifestsFile) return kustomization;
        list.push_back(resource);
      }
    } else if (resources && !resources.IsNull()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": resources is not a list, so the chart's output cannot be added to it"));
    }
    doc["resources"] = list;
    YAML::Emitter out;
    out << doc;
    if (!out.good()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": cannot be written back with the chart's output: ", out.GetLastError()));
    }
    std::string written = std::string(out.c_str()) + "\n";
    // yaml-cpp reads some bytes (a NUL, bytes that are not UTF-8) into scalars that it
    // writes back as YAML it cannot read: what kustomize gets must read as what was meant.
    std::string unreadable;
    if (absl::Status bounds = CheckYamlBounds(written, path); !bounds.ok()) {
      unreadable = std::string(bounds.message());
    } else {
      try {
        (void)YAML::Load(written);
      } catch (const YAML::Exception& e) {
        unreadable = e.msg;
      }
    }
    if (!unreadable.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path,
                       ": cannot be written back with the chart's output: it holds characters YAML "
                       "cannot write (",
                       unreadable, ")"));
    }
    return written;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, " cannot be read: ", e.what()));
  }
}

absl::StatusOr<ObjectSet> HelmRenderer::PostRender(const RenderInput& input,
                                                   const std::string& output, bool empty) {
  const std::string& dir = input.fleet_post_render_dir;
  const std::string folder =
      input.path.empty() ? dir : (dir.empty() ? input.path : absl::StrCat(input.path, "/", dir));
  const std::string prefix = folder.empty() ? "" : folder + "/";
  const std::string manifests = prefix + kFleetManifestsFile;
  const std::string kustomization = prefix + "kustomization.yaml";
  std::vector<RepoFile> files;
  files.reserve(input.files.size() + 1);
  bool found = false;
  for (const RepoFile& file : input.files) {
    if (file.path == manifests) {
      // Fleet writes the chart's output over it.
      if (input.notes != nullptr) {
        input.notes->push_back(absl::StrCat(manifests,
                                            " is not read: the chart's output takes "
                                            "its place, as in Fleet"));
      }
      continue;
    }
    if (file.path == kustomization) {
      found = true;
      if (!empty) {
        absl::StatusOr<std::string> with = WithChartOutputResource(file.path, file.content);
        if (!with.ok()) return with.status();
        files.push_back({file.path, *std::move(with)});
        continue;
      }
    }
    files.push_back(file);
  }
  if (!found) {
    return absl::InvalidArgumentError(
        absl::StrCat("helm ", input.path, ": no ", kustomization, " to post-render the chart"));
  }
  files.push_back({manifests, output});
  RenderInput post{input.bundle, folder, files};
  absl::StatusOr<ObjectSet> set = post_renderer_->Render(post);
  if (!set.ok()) {
    return absl::Status(set.status().code(),
                        absl::StrCat("post-rendering the chart through ", kustomization,
                                     ", as Fleet does (the chart's output is its first resource, ",
                                     kFleetManifestsFile, "): ", set.status().message()));
  }
  return set;
}

absl::StatusOr<ObjectSet> HelmRenderer::Render(const RenderInput& input) {
  if (options_.binary.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "engine helm (", input.path,
        "): the control plane has no helm binary (helm is not packaged for Debian 12; install "
        "it as /usr/local/bin/helm or pass --helm)"));
  }
  if (access(options_.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("helm ", input.path, ": cannot execute ",
                                            options_.binary, ": ", strerror(errno)));
  }
  if (absl::Status sandbox = RequireNetworkSandbox(options_, "helm", input.path); !sandbox.ok()) {
    return sandbox;
  }
  if (input.read_paths != nullptr) *input.read_paths = {input.path};
  // A chart from a chart repository or a URL: fetched, and written beside the folder's files
  // (its values files are the folder's).
  const std::string folder_prefix = input.path.empty() ? "" : input.path + "/";
  std::vector<RepoFile> with_chart;
  if (IsGitChart(input.remote_chart)) {
    // A chart in another Git repository (go-getter's `git::URL//FOLDER?ref=REF`, as Fleet
    // fetches it): the control plane fetches that repository as it fetches kustomize's
    // remote bases, and writes the folder beside the bundle's files.
    const std::string& url = input.remote_chart.url;
    auto said = [&](absl::string_view what) {
      return absl::StrCat("helm ", input.path, ": the chart ", url.substr(0, 256), ": ", what);
    };
    absl::StatusOr<std::optional<RemoteBase>> base =
        ParseRemoteBase(absl::string_view(url).substr(sizeof("git::") - 1));
    if (!base.ok()) return absl::InvalidArgumentError(said(base.status().message()));
    if (!base->has_value()) {
      return absl::InvalidArgumentError(said("names no Git repository"));
    }
    // A branch or tag moves: the resync renders it again (a full commit id never moves), and
    // a failure is not the repository's own (set before the fetch, which may fail).
    const std::string& ref = (*base)->ref;
    const bool pinned =
        ref.size() == 40 && ref.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (input.read_remote != nullptr && !pinned) *input.read_remote = true;
    if (remote_bases_ == nullptr) {
      return absl::FailedPreconditionError(
          said("is in another Git repository, which the control plane fetches only from the "
               "prefixes --kustomize-remote-bases trusts (none given)"));
    }
    absl::StatusOr<RemoteTree> tree =
        remote_bases_->Fetch((*base)->repo, (*base)->ref, input.fetch_scope);
    if (!tree.ok()) return absl::Status(tree.status().code(), said(tree.status().message()));
    const std::string from = (*base)->path.empty() ? "" : (*base)->path + "/";
    bool chart_yaml = false;
    with_chart = input.files;
    for (const RepoFile& file : tree->files) {
      if (!absl::StartsWith(file.path, from)) continue;
      const std::string inside = file.path.substr(from.size());
      chart_yaml |= inside == "Chart.yaml";
      with_chart.push_back(
          {absl::StrCat(folder_prefix, kFetchedChartFolder, "/", inside), file.content});
    }
    if (!chart_yaml) {
      return absl::InvalidArgumentError(said(absl::StrCat(
          "holds no Chart.yaml at ", (*base)->path.empty() ? "its root" : (*base)->path)));
    }
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat("fetched the chart ", url.substr(0, 256), " at ",
                                          tree->commit.substr(0, 12)));
    }
  } else if (!input.remote_chart.empty()) {
    ChartRef ref{input.remote_chart.repo, input.remote_chart.name, input.remote_chart.version,
                 input.remote_chart.url};
    absl::StatusOr<std::shared_ptr<const FetchedChart>> fetched =
        charts_->Fetch(ref, input.fetch_scope);
    if (!fetched.ok()) {
      return absl::Status(fetched.status().code(), absl::StrCat("helm ", input.path, ": the chart ",
                                                                input.remote_chart.Describe(), ": ",
                                                                fetched.status().message()));
    }
    // A range, or the newest: a release in the repository changes what this render gives.
    if (input.read_remote != nullptr && ChartRefMoves(ref)) *input.read_remote = true;
    with_chart = input.files;
    for (const RepoFile& file : (*fetched)->files) {
      with_chart.push_back(
          {absl::StrCat(folder_prefix, kFetchedChartFolder, "/", file.path), file.content});
    }
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat("fetched the chart ", (*fetched)->name, " ",
                                          (*fetched)->version, " from ", (*fetched)->url,
                                          (*fetched)->digest.empty() ? "" : " (sha256 checked)"));
    }
  }
  // A chart archive in the repository that fleet.yaml's helm.chart names: unpacked beside
  // the bundle's files, as a fetched chart is.
  if (!input.helm_chart_archive.empty()) {
    const std::string& at = input.helm_chart_archive;
    auto said = [&](absl::string_view what) {
      return absl::StrCat("helm ", input.path, ": the chart archive ", at, ": ", what);
    };
    const RepoFile* archive = nullptr;
    for (const RepoFile& file : input.files) {
      if (file.path == at) archive = &file;
    }
    std::vector<RepoFile> read;
    if (archive == nullptr && input.read_files != nullptr) {
      absl::StatusOr<std::vector<RepoFile>> got = input.read_files({at});
      if (!got.ok()) return absl::Status(got.status().code(), said(got.status().message()));
      read = *std::move(got);
      for (const RepoFile& file : read) {
        if (file.path == at) archive = &file;
      }
      // A change there renders the bundle again.
      if (input.read_paths != nullptr) input.read_paths->push_back(at);
    }
    if (archive == nullptr) return absl::InvalidArgumentError(said("is not in the repository"));
    ChartFetchOptions bounds;
    absl::StatusOr<std::vector<RepoFile>> unpacked =
        UnpackChartArchive(archive->content, bounds.max_chart_bytes, bounds.max_chart_files);
    if (!unpacked.ok()) {
      return absl::Status(unpacked.status().code(), said(unpacked.status().message()));
    }
    with_chart = input.files;
    bool chart_yaml = false;
    for (RepoFile& file : *unpacked) {
      chart_yaml |= file.path == "Chart.yaml";
      with_chart.push_back({absl::StrCat(folder_prefix, kFetchedChartFolder, "/", file.path),
                            std::move(file.content)});
    }
    if (!chart_yaml) return absl::InvalidArgumentError(said("holds no Chart.yaml"));
  }
  // A chart folder elsewhere in the repository that fleet.yaml's helm.chart names: read at
  // the same commit, and written where it is in the repository, as a checkout has it.
  if (!input.helm_chart_folder.empty()) {
    const std::string& at = input.helm_chart_folder;
    if (input.read_folder == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("helm ", input.path, ": the chart ", at,
                       " is outside the bundle's folder, and this render reads only that folder"));
    }
    absl::StatusOr<std::vector<RepoFile>> read = input.read_folder(at);
    if (!read.ok()) {
      return absl::Status(read.status().code(), absl::StrCat("helm ", input.path, ": the chart ",
                                                             at, ": ", read.status().message()));
    }
    if (with_chart.empty()) with_chart = input.files;
    const std::string at_prefix = at + "/";
    bool chart_yaml = false;
    for (RepoFile& file : *read) {
      if (!absl::StartsWith(file.path, at_prefix)) continue;
      chart_yaml |= file.path == at_prefix + "Chart.yaml";
      // The bundle's own files are there already (a chart beside them, named by "../").
      if (!folder_prefix.empty() && absl::StartsWith(file.path, folder_prefix)) continue;
      with_chart.push_back(std::move(file));
    }
    if (!chart_yaml) {
      return absl::InvalidArgumentError(
          absl::StrCat("helm ", input.path, ": the chart folder ", at, " holds no Chart.yaml"));
    }
    // A change there renders the bundle again.
    if (input.read_paths != nullptr) input.read_paths->push_back(at);
  }
  // The chart: the bundle's folder, the folder fleet.yaml's helm.chart names (inside it or
  // elsewhere), or the one fetched.
  const bool unpacked_here = !input.remote_chart.empty() || !input.helm_chart_archive.empty();
  const std::string chart =
      !input.helm_chart_folder.empty() ? input.helm_chart_folder
      : unpacked_here                  ? absl::StrCat(folder_prefix, kFetchedChartFolder)
      : input.helm_chart.empty()
          ? input.path
          : (input.path.empty() ? input.helm_chart : input.path + "/" + input.helm_chart);
  // Its dependencies, as `helm dependency build` would get them (Argo CD runs it).
  bool missing = false;
  {
    std::map<std::string, const RepoFile*> by_path;
    for (const RepoFile& file : with_chart.empty() ? input.files : with_chart) {
      by_path[file.path] = &file;
    }
    absl::StatusOr<std::vector<ChartDependency>> dependencies = ChartDependencies(chart, by_path);
    if (!dependencies.ok()) {
      return absl::Status(dependencies.status().code(),
                          absl::StrCat("helm ", input.path, ": ", dependencies.status().message()));
    }
    for (const ChartDependency& d : *dependencies) missing |= !HasSubchart(chart, d.name, by_path);
  }
  if (missing) {  // the files copied only then
    std::vector<RepoFile> with_dependencies = with_chart.empty() ? input.files : with_chart;
    const size_t before = with_dependencies.size();
    int fetched = 0;
    std::vector<std::string> read_outside;
    absl::Status added = AddChartDependencies(chart, charts_.get(), 0, &with_dependencies, &fetched,
                                              input.notes, input.read_folder, &read_outside,
                                              input.fetch_scope, input.read_remote);
    if (input.read_paths != nullptr) {
      // A chart elsewhere in the repository: a change there renders the bundle again.
      input.read_paths->insert(input.read_paths->end(), read_outside.begin(), read_outside.end());
    }
    if (!added.ok()) {
      return absl::Status(added.code(), absl::StrCat("helm ", input.path, ": ", added.message()));
    }
    if (with_dependencies.size() != before) with_chart = std::move(with_dependencies);
  }
  // Values files are the chart's folder's (a fetched chart's, or one elsewhere that
  // fleet.yaml names: the bundle's folder's), by
  // repository path: one elsewhere in the repository is read at the same commit and
  // written where it is in the repository, as a checkout has it.
  const std::string values_folder =
      !unpacked_here && input.helm_chart_folder.empty() ? chart : input.path;
  std::vector<std::string> values_paths;
  // Argo CD's fileParameters' files, found as values files are: (name, repository path).
  std::vector<std::pair<std::string, std::string>> file_parameters;
  {
    std::vector<std::string> outside;
    auto place = [&](const std::string& file) -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> at = HelmValuesPath(values_folder, file);
      if (!at.ok()) return at.status();
      if (!absl::StartsWith(*at, folder_prefix) &&
          std::find(outside.begin(), outside.end(), *at) == outside.end()) {
        outside.push_back(*at);
      }
      return at;
    };
    for (const std::string& file : input.helm_values_files) {
      absl::StatusOr<std::string> at = place(file);
      if (!at.ok()) return at.status();
      values_paths.push_back(*at);
    }
    for (const auto& [name, file] : input.helm_file_parameters) {
      absl::StatusOr<std::string> at = place(file);
      if (!at.ok()) return at.status();
      file_parameters.emplace_back(name, *at);
    }
    if (!outside.empty()) {
      if (input.read_files == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "helm ", input.path, ": values file ", outside.front(),
            " is outside the bundle's folder, and this render reads only that folder"));
      }
      absl::StatusOr<std::vector<RepoFile>> read = input.read_files(outside);
      if (!read.ok()) {
        return absl::Status(
            read.status().code(),
            absl::StrCat("helm ", input.path, ": values file ", read.status().message()));
      }
      for (const std::string& path : outside) {
        if (std::none_of(read->begin(), read->end(),
                         [&](const RepoFile& file) { return file.path == path; })) {
          return absl::InvalidArgumentError(absl::StrCat("helm ", input.path, ": values file ",
                                                         path, " is not in the repository"));
        }
      }
      // A change there renders the bundle again.
      if (input.read_paths != nullptr) {
        input.read_paths->insert(input.read_paths->end(), outside.begin(), outside.end());
      }
      if (with_chart.empty()) with_chart = input.files;
      for (RepoFile& file : *read) with_chart.push_back(std::move(file));
    }
  }
  absl::StatusOr<std::unique_ptr<Checkout>> checkout =
      Checkout::Write(options_.scratch_dir, with_chart.empty() ? input.files : with_chart);
  if (!checkout.ok()) return checkout.status();
  const Checkout& scratch = **checkout;
  SubprocessOptions run;
  run.cwd = scratch.path();
  run.env = {"PATH=/usr/bin:/bin",
             "HOME=" + scratch.path(),
             "HELM_CACHE_HOME=" + scratch.path() + "/cache",
             "HELM_CONFIG_HOME=" + scratch.path() + "/config",
             "HELM_DATA_HOME=" + scratch.path() + "/data",
             "KUBECONFIG=/dev/null"};
  run.timeout = options_.timeout;
  run.max_cpu = options_.timeout;
  run.max_memory_bytes = options_.limits.max_memory_bytes;
  run.max_stdout_bytes = options_.limits.max_bytes * 2;
  run.max_stderr_bytes = 4096;
  static const Values kNoValues;
  const std::string chart_dir = scratch.root() + "/" + chart;
  // Where gitfleet writes the values it is given as text: the values files' folder.
  const std::string values_dir = absl::StrCat(scratch.root(), "/", values_folder);
  // fleet.yaml's values (merged and filled in), then the bundle's own files, then Argo CD's
  // inline values (its overrides' values or valuesObject).
  std::vector<std::string> values_files;
  // `text` written as `name` beside the chart's values, for helm to read; `whose` names it.
  auto write_values = [&](const char* name, const std::string& text,
                          const char* whose) -> absl::Status {
    const std::string written = values_dir + "/" + name;
    if (access(written.c_str(), F_OK) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("helm ", chart,
                                                     ": the chart holds a file named ", name,
                                                     ", where gitfleet puts ", whose));
    }
    std::ofstream out(written);
    out << text;
    out.close();
    if (!out) {
      return absl::InternalError(absl::StrCat("helm ", input.path, ": cannot write ", written));
    }
    values_files.push_back(values_folder.empty() ? name : absl::StrCat(values_folder, "/", name));
    return absl::OkStatus();
  };
  if (!input.fleet_helm_values.empty()) {
    GF_RETURN_IF_ERROR(
        write_values(kFleetValuesFile, input.fleet_helm_values, "fleet.yaml's helm.values"));
  }
  values_files.insert(values_files.end(), values_paths.begin(), values_paths.end());
  if (!input.argocd_helm_values.empty()) {
    GF_RETURN_IF_ERROR(
        write_values(kArgoCdValuesFile, input.argocd_helm_values, "Argo CD's helm.values"));
  }
  absl::StatusOr<std::vector<std::string>> args = HelmTemplateArgs(
      options_.binary, input.helm_release.empty() ? input.bundle : input.helm_release, chart_dir,
      input.helm_release_namespace.empty() ? input.target_namespace : input.helm_release_namespace,
      scratch.root(), values_files, input.values ? *input.values : kNoValues,
      input.helm_capabilities, input.helm_parameters, file_parameters, input.helm_skips);
  if (!args.ok()) return args.status();
  if (input.read_values != nullptr) {
    // helm sees every value, so every value counts (a cluster's name and labels only
    // where fleet.yaml's templates looked them up).
    for (const auto& [name, value] : input.values ? *input.values : kNoValues) {
      if (!IsClusterContextKey(name)) (*input.read_values)[name] = value;
    }
  }
  // No network for the chart either (as kustomize): a fresh network namespace.
  if (!NetworkSandbox().empty()) {
    args->insert(args->begin(), {NetworkSandbox(), "--net", "--map-root-user"});
  }
  absl::StatusOr<SubprocessResult> result = RunSubprocess(*args, run);
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat("helm ", input.path, ": ", result.status().message()));
  }
  if (result->exit_code != 0) {
    std::string message = absl::StrReplaceAll(result->stderr_text, {{scratch.root() + "/", ""}});
    const bool old_helm = absl::StrContains(message, "unknown flag: --skip-schema-validation");
    return absl::InvalidArgumentError(absl::StrCat(
        "helm template ", chart, " failed: ", absl::StripTrailingAsciiWhitespace(message),
        old_helm ? " (Argo CD's helm.skipSchemaValidation needs helm 3.16 or later on the "
                   "control plane)"
                 : "",
        LfsPointerHint(input.files, input.path)));
  }
  absl::StatusOr<ObjectSet> objects =
      ObjectsFromToolOutput(input.bundle, absl::StrCat(input.path, " (helm output)"),
                            result->stdout_text, options_.limits);
  if (!objects.ok() || !input.fleet_post_render) return objects;
  return PostRender(input, result->stdout_text, objects->objects().empty());
}

namespace {

class HelmFactory : public RendererFactory {
 public:
  std::string name() const override { return "helm"; }
  bool takes_values() const override { return true; }
  bool explicit_values_only() const override { return true; }
  bool reads_outside_path() const override { return false; }
  int detect_order() const override { return 20; }
  bool Detects(const std::string& path, const std::vector<RepoFile>& files) const override {
    std::string chart = path.empty() ? "Chart.yaml" : path + "/Chart.yaml";
    for (const RepoFile& file : files) {
      if (file.path == chart) return true;
    }
    return false;
  }
  std::unique_ptr<Renderer> Create(const EngineOptions& options) const override {
    return std::make_unique<HelmRenderer>(options.Tool("helm"), options.Tool("kustomize"),
                                          options.chart_fetcher);
  }
};

const bool kRegistered = RegisterRendererFactory(std::make_unique<HelmFactory>());

}  // namespace
}  // namespace gitfleet
