#include "controlplane/render/renderer.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/manifest/yaml.h"
#include "common/model/cluster_group.h"
#include "common/model/label_selector.h"
#include "common/model/revision.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "common/sync.h"
#include "controlplane/render/archive.h"
#include "controlplane/render/fleet_names.h"
#include "controlplane/render/fleet_overlays.h"
#include "controlplane/render/fleet_selector.h"
#include "controlplane/render/fleet_values.h"
#include "controlplane/source/git_credentials.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// Runs `/bin/true` in a new network namespace to learn whether renders can be isolated.
std::string ProbeUnshare() {
  for (const char* unshare : {"/usr/bin/unshare", "/bin/unshare"}) {
    if (access(unshare, X_OK) != 0) continue;
    SubprocessOptions options;
    options.env = {"PATH=/usr/bin:/bin"};
    options.timeout = absl::Seconds(5);
    absl::StatusOr<SubprocessResult> r =
        RunSubprocess({unshare, "--net", "--map-root-user", "/bin/true"}, options);
    if (r.ok() && r->exit_code == 0) return unshare;
  }
  return "";
}

struct Registry {
  Mutex mu;
  std::map<std::string, std::unique_ptr<RendererFactory>> factories ABSL_GUARDED_BY(mu);
};

Registry& TheRegistry() {
  static Registry* const registry = new Registry();
  return *registry;
}

// The targetCustomizations fleet.yaml lists that gitfleet describes, at most; the rest
// are counted.
constexpr size_t kMaxTargetsDescribed = 10;
// fleet.yaml's targetCustomizations a chart's values are chosen among.
constexpr size_t kMaxHelmTargets = 256;

// A target's name, else "target N" (1-based).
std::string TargetName(const YAML::Node& target, int index) {
  std::string name = FleetScalar(target["name"]);
  return name.empty() ? absl::StrCat("target ", index + 1) : name;
}

// The clusters a target is for, as a bundle per target would select them.
std::string TargetWhere(const YAML::Node& target) {
  if (std::string selector = FleetSelectorText(target["clusterSelector"]); !selector.empty()) {
    return absl::StrCat("--selector=", ShellWord(selector));
  }
  if (std::string cluster = FleetScalar(target["clusterName"]); !cluster.empty()) {
    return absl::StrCat("a selector of a label only cluster ", cluster, " has");
  }
  if (std::string group = FleetScalar(target["clusterGroup"]); !group.empty()) {
    return absl::StrCat("a selector of the clusters of Fleet's cluster group ", group);
  }
  return "a selector of the clusters it is for";
}

// One of fleet.yaml's targetCustomizations, described as the flags of the gitfleet bundle
// that does its work: "dev: --selector=env=dev --path=apps/web/overlays/dev". Empty when
// it changes nothing a render makes (correctDrift, say). `path` is the bundle's folder.
// What the render does itself for a chart is left out: nothing, its helm values, or those
// and its folder and namespace (`native`).
enum class TargetNative { kNothing, kHelmValues, kChart };
std::string DescribeFleetTarget(const YAML::Node& target, int index, const std::string& path,
                                const std::string& folder_namespace, TargetNative native,
                                std::string* folder) {
  if (!target.IsMap()) return "";
  std::vector<std::string> work;
  const YAML::Node kustomize = target["kustomize"];
  if (kustomize && kustomize.IsMap() && native != TargetNative::kChart) {
    std::string dir = FleetScalar(kustomize["dir"]);
    while (absl::StartsWith(dir, "./")) dir = dir.substr(2);
    while (absl::EndsWith(dir, "/")) dir.pop_back();
    if (!dir.empty() && dir != ".") {
      const std::string joined = path.empty() ? dir : absl::StrCat(path, "/", dir);
      work.push_back(absl::StrCat("--path=", ShellWord(joined)));
      *folder = dir;
    }
  }
  std::string ns;
  for (const char* field : {"namespace", "defaultNamespace"}) {
    if (native == TargetNative::kChart) break;
    if (ns = FleetScalar(target[field]); !ns.empty()) break;
  }
  // Another folder does not read this folder's fleet.yaml: its namespace goes along.
  if (ns.empty() && !folder->empty()) ns = folder_namespace;
  if (!ns.empty()) work.push_back(absl::StrCat("--namespace=", ShellWord(ns)));
  const YAML::Node helm = target["helm"];
  if (helm && helm.IsMap() && helm.size() > 0 && native == TargetNative::kNothing) {
    work.push_back("its helm options as --values-file or --cluster-values");
  }
  const YAML::Node yaml = target["yaml"];
  if (yaml && yaml.IsMap() && yaml["overlays"]) {
    work.push_back("the files its yaml overlays change (gitfleet applies no overlays)");
  }
  const YAML::Node skip = target["doNotDeploy"];
  const bool not_deployed = skip && skip.IsScalar() && skip.Scalar() == "true";
  if (work.empty() && !not_deployed) return "";

  const std::string name = TargetName(target, index);
  const std::string where = TargetWhere(target);
  if (not_deployed) {
    return absl::StrCat(name,
                        ": not deployed to its clusters (leave them out of the bundle's "
                        "--selector: ",
                        where, ")");
  }
  return absl::StrCat(name, ": ", where, " ", absl::StrJoin(work, " "));
}

// A helm section's `values` (as YAML; "" when unset or empty) and `valuesFiles` (relative to
// the folder, each inside it), as Fleet reads them. The error names the field at fault.
absl::Status ReadHelmValues(const YAML::Node& helm, std::string* values,
                            std::vector<std::string>* files) {
  if (const YAML::Node listed = helm["valuesFiles"]; listed && !listed.IsNull()) {
    if (!listed.IsSequence()) return absl::InvalidArgumentError("helm.valuesFiles is not a list");
    if (listed.size() > kMaxTargetsDescribed * 10) {
      return absl::InvalidArgumentError(absl::StrCat("helm.valuesFiles lists ", listed.size(),
                                                     " files; at most ", kMaxTargetsDescribed * 10,
                                                     " are read"));
    }
    for (const auto& file : listed) {
      std::string name = file.IsScalar() ? file.Scalar() : "";
      while (absl::StartsWith(name, "./")) name = name.substr(2);
      if (absl::Status inside = CheckHelmValuesFile(name); !inside.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("helm.valuesFiles: ", inside.message()));
      }
      files->push_back(name);
    }
  }
  if (const YAML::Node given = helm["values"]; given && !given.IsNull()) {
    if (!given.IsMap()) return absl::InvalidArgumentError("helm.values is not a mapping");
    if (given.size() > 0) {
      absl::StatusOr<std::string> text = EmitBlockYaml(given);
      if (!text.ok()) return text.status();
      *values = *std::move(text);
    }
  }
  return absl::OkStatus();
}

// A kustomize section's `dir` as a folder inside the bundle's ("" for the folder itself);
// `error` says why it is not one.
std::string KustomizeDirOf(const YAML::Node& kustomize, std::string* error) {
  if (!kustomize || !kustomize.IsMap()) return "";
  std::string dir = FleetScalar(kustomize["dir"]);
  while (absl::StartsWith(dir, "./")) dir = dir.substr(2);
  while (absl::EndsWith(dir, "/")) dir.pop_back();
  if (dir == ".") dir.clear();
  if (!dir.empty() && (dir.size() > 1024 || absl::StartsWith(dir, "/") ||
                       absl::StrContains(absl::StrCat("/", dir, "/"), "/../"))) {
    *error = absl::StrCat("its kustomize.dir ", dir.substr(0, 256),
                          " is not a folder inside the bundle's");
    return "";
  }
  return dir;
}

// The chart fetched for helm.repo, helm.chart and helm.version (as written, "" when unset):
// one in a chart repository, one in an OCI registry (oci:// in helm.repo with the chart's
// name, or in helm.chart), or an archive's URL in helm.chart; `out` is left empty for a
// chart in a folder. Returns why it cannot be fetched ("" when it can, or is a folder).
// `git_forms`: Fleet's Git sources other than `git::` too (FleetGitChartSource).
std::string RemoteChartOf(const std::string& repo_url, const std::string& chart_name,
                          const std::string& version, RemoteChart* out, bool git_forms = false) {
  *out = RemoteChart();
  // Never sent, nor shown again (SecretInUrlRefusal).
  for (const auto& [field, url] :
       {std::pair<const char*, const std::string&>{"repo", repo_url},
        std::pair<const char*, const std::string&>{"chart", chart_name}}) {
    if (UrlCarriesSecret(url)) {
      return absl::StrCat("helm.", field, " ",
                          SecretInUrlRefusal(url,
                                             "--chart-credentials=PREFIX=NAME, or "
                                             "--git-credentials for a Git repository"));
    }
  }
  auto http = [](const std::string& url) {
    return absl::StartsWith(url, "https://") || absl::StartsWith(url, "http://");
  };
  // A chart in an OCI registry: helm.repo's path and the chart's name, or helm.chart's
  // whole reference.
  if (absl::StartsWith(repo_url, "oci://")) {
    if (chart_name.empty()) return "helm.repo names an OCI registry, and helm.chart no chart";
    out->url = absl::StrCat(absl::StripSuffix(repo_url, "/"), "/", chart_name);
    out->version = version;
    return "";
  }
  if (repo_url.empty() && absl::StartsWith(chart_name, "oci://")) {
    out->url = chart_name;
    out->version = version;
    return "";
  }
  // A folder of another Git repository, as go-getter names it (Fleet fetches charts so).
  if (repo_url.empty() && (git_forms || absl::StartsWith(chart_name, "git::"))) {
    absl::StatusOr<std::optional<std::string>> git = FleetGitChartSource(chart_name);
    if (!git.ok()) return std::string(git.status().message());
    if (git->has_value()) {
      out->url = **std::move(git);
      return "";
    }
  }
  const bool for_http = git_forms && (absl::StartsWith(chart_name, "https::") ||
                                      absl::StartsWith(chart_name, "http::"));
  // go-getter's other sources: refused by name rather than read as a folder.
  for (const char* getter : {"s3::", "gcs::", "hg::"}) {
    if (repo_url.empty() && absl::StartsWith(chart_name, getter)) {
      return absl::StrCat("helm.chart ", chart_name.substr(0, 256),
                          " is fetched by go-getter from where gitfleet does not fetch (a chart "
                          "repository, an OCI registry, an archive's URL or a git:: URL do)");
    }
  }
  if (!repo_url.empty()) {
    if (!http(repo_url)) {
      return absl::StrCat("helm.repo ", repo_url.substr(0, 256), " is not an http(s) URL");
    }
    if (chart_name.empty()) return "helm.repo names a chart repository, and helm.chart no chart";
    // Its path's slashes as Fleet joins it with index.yaml (fleet-examples writes
    // `https://oauth2-proxy.github.io/manifests///`).
    const size_t path = repo_url.find('/', repo_url.find("://") + 3);
    std::string repo = repo_url.substr(0, path);
    if (path != std::string::npos) {
      const size_t query = std::min(repo_url.find_first_of("?#", path), repo_url.size());
      for (size_t i = path; i < query; ++i) {
        if (repo_url[i] != '/' || repo.back() != '/') repo += repo_url[i];
      }
      repo += repo_url.substr(query);
    }
    *out = {std::move(repo), chart_name, version, ""};
  } else if (http(chart_name)) {
    out->url = chart_name;
  } else if (for_http && http(chart_name.substr(chart_name.find("::") + 2))) {
    // go-getter's forced getter before an http(s) URL (`https::https://host/web.tgz`).
    out->url = chart_name.substr(chart_name.find("::") + 2);
  }
  return "";
}

// scp's `USER@HOST:PATH` as `ssh://USER@HOST/PATH`; anything else as it is.
std::string ScpAsSsh(absl::string_view source) {
  if (absl::StrContains(source, "://")) return std::string(source);
  const size_t colon = source.find(':');
  if (colon == absl::string_view::npos || colon + 1 == source.size()) return std::string(source);
  const absl::string_view user_host = source.substr(0, colon);
  const size_t at = user_host.find('@');
  if (at == absl::string_view::npos || at == 0 || at + 1 == user_host.size() ||
      absl::StrContains(user_host, "/")) {
    return std::string(source);
  }
  return absl::StrCat("ssh://", user_host, "/", absl::StripPrefix(source.substr(colon + 1), "/"));
}

}  // namespace

absl::StatusOr<std::optional<std::string>> FleetGitChartSource(absl::string_view chart) {
  const std::string shown(chart.substr(0, 256));
  for (absl::string_view forced : {"git::", "ssh::"}) {
    if (absl::StartsWith(chart, forced)) {
      return std::optional<std::string>(
          absl::StrCat("git::", ScpAsSsh(chart.substr(forced.size()))));
    }
  }
  const std::string scheme = absl::AsciiStrToLower(chart.substr(0, 6));
  if (scheme == "git://" || scheme == "ssh://") {
    return std::optional<std::string>(absl::StrCat("git::", chart));
  }
  // GitHub's, GitLab's and Bitbucket's shorthands: HOST/ORG/REPO, and a folder after it
  // (before or after "//"), over https.
  for (absl::string_view host : {"github.com/", "gitlab.com/", "bitbucket.org/"}) {
    if (!absl::StartsWith(chart, host)) continue;
    absl::string_view rest = chart;
    absl::string_view query;
    if (size_t question = rest.find('?'); question != absl::string_view::npos) {
      query = rest.substr(question);
      rest = rest.substr(0, question);
    }
    absl::string_view after;
    if (size_t split = rest.find("//"); split != absl::string_view::npos) {
      after = rest.substr(split + 2);
      rest = rest.substr(0, split);
    }
    std::vector<absl::string_view> parts = absl::StrSplit(rest, absl::MaxSplits('/', 3));
    if (parts.size() < 3 || parts[1].empty() || parts[2].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("helm.chart ", shown, " names no repository (",
                                                     host, "ORG/REPO, as Fleet reads it)"));
    }
    std::string folder = parts.size() == 4 ? std::string(parts[3]) : std::string();
    if (!after.empty()) absl::StrAppend(&folder, folder.empty() ? "" : "/", after);
    return std::optional<std::string>(absl::StrCat(
        "git::https://", parts[0], "/", parts[1], "/", parts[2],
        absl::EndsWith(parts[2], ".git") ? "" : ".git", folder.empty() ? "" : "//", folder, query));
  }
  if (std::string ssh = ScpAsSsh(chart); ssh != chart) {
    return std::optional<std::string>(absl::StrCat("git::", ssh));
  }
  return std::optional<std::string>();
}

namespace {

// `relative` joined onto repository folder `folder`, "." and ".." worked out; nullopt when
// it climbs out of the repository ("" is the root).
std::optional<std::string> JoinInRepository(const std::string& folder,
                                            const std::string& relative) {
  std::vector<std::string> parts = absl::StrSplit(folder, '/', absl::SkipEmpty());
  for (absl::string_view part : absl::StrSplit(relative, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part != "..") {
      parts.emplace_back(part);
    } else if (parts.empty()) {
      return std::nullopt;
    } else {
      parts.pop_back();
    }
  }
  return absl::StrJoin(parts, "/");
}

// The repository path of the chart folder `named` (a fleet.yaml's helm.chart with a "..")
// names from bundle folder `path`. InvalidArgument, after `where` ("FILE: helm.chart"), when
// it leaves the repository or is its root.
absl::StatusOr<std::string> FleetChartFolderOutside(const std::string& path,
                                                    const std::string& named,
                                                    const std::string& where) {
  std::optional<std::string> joined = JoinInRepository(path, named);
  if (!joined.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " names ", named, ", which is outside the repository"));
  }
  if (joined->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " names ", named, ", the repository's root: name the folder that holds the chart"));
  }
  return *std::move(joined);
}

// A target's helm.releaseName, repo, chart and version, merged over the folder's as Fleet
// merges them, into the render (`placed`): a chart from a chart repository or a URL, the
// folder's own chart, or a chart in a folder inside the bundle's (`chart: ./prod-chart`),
// as Fleet renders it for that target's clusters, or (since reads_fleet_outside_charts) a
// chart folder elsewhere in the repository. One without a Chart.yaml is refused by name.
absl::Status PlaceFleetTargetChart(const std::string& fleet_yaml, const FleetYamlNamespace& fleet,
                                   const FleetYamlNamespace::Target& target, RenderInput* placed) {
  auto refuse = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(fleet_yaml, ": targetCustomizations ", target.name, ": ", why));
  };
  if (!target.chart_error.empty()) return refuse(target.chart_error);
  if (!target.helm_release.empty()) placed->helm_release = target.helm_release;
  if (!target.helm_repo && !target.helm_chart && !target.helm_version) return absl::OkStatus();
  const std::string repo = target.helm_repo.value_or(fleet.helm_repo_field);
  const std::string chart = target.helm_chart.value_or(fleet.helm_chart_field);
  const std::string version = target.helm_version.value_or(fleet.helm_version_field);
  RemoteChart remote;
  if (std::string error =
          RemoteChartOf(repo, chart, version, &remote, placed->reads_fleet_getter_charts);
      !error.empty()) {
    return refuse(absl::StrCat("its ", error));
  }
  if (!remote.empty()) {
    placed->remote_chart = std::move(remote);
    placed->helm_chart.clear();
    placed->helm_chart_folder.clear();
    placed->helm_chart_archive.clear();
    return absl::OkStatus();
  }
  auto clean = [](std::string dir) {
    while (absl::StartsWith(dir, "./")) dir = dir.substr(2);
    while (absl::EndsWith(dir, "/")) dir.pop_back();
    return dir == "." ? std::string() : dir;
  };
  const std::string dir = clean(chart);
  if (dir == clean(fleet.helm_chart_field) && fleet.remote_chart.empty()) {
    return absl::OkStatus();  // the folder's chart, whose version is its own
  }
  const std::string shown = chart.empty() ? "." : chart.substr(0, 256);
  // A chart archive in the repository (`./web-canary-1.0.0.tgz`), unpacked.
  if (placed->reads_fleet_getter_charts && !absl::StartsWith(dir, "/") && NamesArchive(dir)) {
    std::optional<std::string> at = JoinInRepository(placed->path, dir);
    if (!at.has_value() || at->empty()) {
      return refuse(
          absl::StrCat("its helm.chart names ", shown, ", which is outside the repository"));
    }
    placed->remote_chart = RemoteChart();
    placed->helm_chart.clear();
    placed->helm_chart_folder.clear();
    placed->helm_chart_archive = *std::move(at);
    return absl::OkStatus();
  }
  // Another chart folder elsewhere in the repository (`../../charts/web-canary`).
  if (!absl::StartsWith(dir, "/") && dir.size() <= 1024 &&
      absl::StrContains(absl::StrCat("/", dir, "/"), "/../") &&
      placed->reads_fleet_outside_charts) {
    absl::StatusOr<std::string> folder = FleetChartFolderOutside(
        placed->path, dir,
        absl::StrCat(fleet_yaml, ": targetCustomizations ", target.name, ": its helm.chart"));
    if (!folder.ok()) return folder.status();
    placed->remote_chart = RemoteChart();
    placed->helm_chart.clear();
    placed->helm_chart_folder = *std::move(folder);
    placed->helm_chart_archive.clear();
    return absl::OkStatus();
  }
  if (absl::StartsWith(dir, "/") || dir.size() > 1024 ||
      absl::StrContains(absl::StrCat("/", dir, "/"), "/../")) {
    return refuse(absl::StrCat("its helm.chart names the chart folder ", shown,
                               ", outside the bundle's folder (Fleet's bundle holds only the "
                               "folder's files): move the chart into it"));
  }
  const std::string folder = placed->path.empty() ? "" : placed->path + "/";
  const std::string chart_yaml = absl::StrCat(folder, dir.empty() ? "" : dir + "/", "Chart.yaml");
  if (std::none_of(placed->files.begin(), placed->files.end(),
                   [&](const RepoFile& file) { return file.path == chart_yaml; })) {
    return refuse(absl::StrCat("its helm.chart names the chart folder ", shown,
                               ", which holds no Chart.yaml (", chart_yaml, ")"));
  }
  // Another chart in the bundle's folder, for the clusters this target selects.
  placed->remote_chart = RemoteChart();
  placed->helm_chart = dir;
  placed->helm_chart_folder.clear();
  placed->helm_chart_archive.clear();
  return absl::OkStatus();
}

// One of fleet.yaml's targetCustomizations, as a chart rendered with helm takes it.
// `list` is the field it is listed in.
FleetYamlNamespace::Target ReadFleetTarget(const YAML::Node& target, int index,
                                           absl::string_view list = "targetCustomizations") {
  FleetYamlNamespace::Target out;
  out.name = target.IsMap() ? FleetScalar(target["name"]) : "";
  if (out.name.empty()) out.name = absl::StrCat(list, "[", index, "]");
  if (!target.IsMap()) {
    out.error = "is not a mapping";
    return out;
  }
  // Its clusterSelector, else its clusterGroupSelector, as gitfleet's selector text.
  auto selector_of = [&](const char* name, bool* has, std::string* text) {
    const YAML::Node selector = target[name];
    if (!selector || selector.IsNull()) return;
    *has = true;
    absl::StatusOr<std::string> read = ReadFleetSelector(selector, absl::StrCat("its ", name));
    if (read.ok()) {
      *text = *std::move(read);
    } else {
      out.error = std::string(read.status().message());
    }
  };
  selector_of("clusterSelector", &out.has_selector, &out.selector);
  if (const YAML::Node name = target["clusterName"]; name && name.IsScalar()) {
    out.cluster_name = name.Scalar();
  }
  if (const YAML::Node group = target["clusterGroup"]; group && !group.IsNull()) {
    if (!group.IsScalar() || group.Scalar().empty()) {
      out.error = "its clusterGroup is not a group's name";
    } else {
      out.group = FleetScalar(group);
    }
  }
  selector_of("clusterGroupSelector", &out.has_group_selector, &out.group_selector);
  const YAML::Node skip = target["doNotDeploy"];
  out.do_not_deploy = skip && skip.IsScalar() && skip.Scalar() == "true";
  out.kustomize_dir = KustomizeDirOf(target["kustomize"], &out.folder_error);
  for (const char* field : {"namespace", "defaultNamespace"}) {
    const YAML::Node value = target[field];
    if (!value || value.IsNull() || (value.IsScalar() && value.Scalar().empty())) continue;
    if (!value.IsScalar()) {
      out.folder_error = absl::StrCat("its ", field, " is not a string");
      break;
    }
    if (absl::Status valid = ValidateName("namespace", value.Scalar()); !valid.ok()) {
      out.folder_error = absl::StrCat("its ", field, ": ", valid.message());
      break;
    }
    out.ns = value.Scalar();
    out.ns_forced = std::string(field) == "namespace";
    break;
  }
  if (const YAML::Node yaml = target["yaml"]; yaml && yaml.IsMap() && yaml["overlays"]) {
    out.overlays = true;
    const YAML::Node names = yaml["overlays"];
    if (!names.IsSequence()) {
      out.folder_error = "its yaml.overlays is not a list";
    } else if (names.size() > kMaxFleetOverlays) {
      out.folder_error = absl::StrCat("its yaml.overlays names ", names.size(),
                                      " overlays; at most ", kMaxFleetOverlays);
    } else {
      for (const auto& name : names) {
        if (!name.IsScalar()) {
          out.folder_error = "its yaml.overlays holds a name that is not a string";
          break;
        }
        out.overlay_names.push_back(name.Scalar());
      }
    }
  }
  const YAML::Node helm = target["helm"];
  if (!helm || helm.IsNull()) return out;
  if (!helm.IsMap()) {
    out.error = "its helm is not a mapping";
    return out;
  }
  if (absl::Status read = ReadHelmValues(helm, &out.helm_values, &out.helm_values_files);
      !read.ok()) {
    out.error = absl::StrCat("its ", read.message());
  }
  const YAML::Node raw = helm["disablePreProcess"];
  out.helm_preprocess_off = raw && raw.IsScalar() && raw.Scalar() == "true";
  if (const YAML::Node release = helm["releaseName"]; release && !release.IsNull()) {
    const std::string name = release.IsScalar() ? release.Scalar() : "";
    if (!ValidReleaseName(name)) {
      if (out.chart_error.empty()) {
        out.chart_error =
            absl::StrCat("its helm.releaseName \"", FleetScalar(release).substr(0, 256),
                         "\" is not a release name helm takes (a DNS name of at most 53 "
                         "lower-case letters, digits, '-' and '.')");
      }
    } else {
      out.helm_release = name;
    }
  }
  for (auto [field, value] :
       {std::pair<const char*, std::optional<std::string>*>{"repo", &out.helm_repo},
        {"chart", &out.helm_chart},
        {"version", &out.helm_version}}) {
    const YAML::Node node = helm[field];
    if (!node || node.IsNull()) continue;
    if (!node.IsScalar()) {
      if (out.chart_error.empty()) {
        out.chart_error = absl::StrCat("its helm.", field, " is not a string");
      }
      continue;
    }
    if (!node.Scalar().empty()) *value = node.Scalar();
  }
  return out;
}

// fleet.yaml's helm.values, helm.valuesFiles and helm.releaseName, as Fleet passes them to
// the chart in the bundle's folder (its values after its files). What cannot be used is
// said in out->helm_error; the engine decides whether that fails (RenderBundlePath).
void ReadFleetHelm(const YAML::Node& helm, FleetYamlNamespace* out) {
  std::vector<std::string> described;
  // A chart from a chart repository (helm.repo, with the chart's name and version), or an
  // archive's URL in helm.chart: fetched by the control plane.
  out->helm_repo_field = FleetScalar(helm["repo"]);
  out->helm_chart_field = FleetScalar(helm["chart"]);
  out->helm_version_field = FleetScalar(helm["version"]);
  out->remote_chart_error = RemoteChartOf(out->helm_repo_field, out->helm_chart_field,
                                          out->helm_version_field, &out->remote_chart);
  if (out->remote_chart.empty() && out->remote_chart_error.empty()) {
    out->git_chart_form_error =
        RemoteChartOf(out->helm_repo_field, out->helm_chart_field, out->helm_version_field,
                      &out->git_chart_form, /*git_forms=*/true);
  }
  // A chart in a folder inside the bundle's (Fleet's `chart: ./chart`); one from a helm
  // repository, a URL or an OCI registry is Fleet's to fetch, and not read.
  const YAML::Node repo = helm["repo"];
  const bool from_repo = repo && repo.IsScalar() && !repo.Scalar().empty();
  if (const YAML::Node chart = helm["chart"]; chart && chart.IsScalar() && !from_repo) {
    std::string dir = chart.Scalar();
    const bool url = absl::StrContains(dir, "://") || absl::StartsWith(dir, "oci:") ||
                     !out->remote_chart.empty();
    while (absl::StartsWith(dir, "./")) dir = dir.substr(2);
    while (absl::EndsWith(dir, "/")) dir.pop_back();
    if (dir == ".") dir.clear();
    if (!url && !dir.empty() && dir.size() <= 1024 && !absl::StartsWith(dir, "/") &&
        NamesArchive(dir)) {
      out->chart_archive_form = dir;
    }
    if (!url && !dir.empty() && dir.size() <= 1024 && !absl::StartsWith(dir, "/")) {
      // Inside the folder, or (Fleet's `chart: ../../charts/web`) outside it.
      (absl::StrContains(absl::StrCat("/", dir, "/"), "/../") ? out->helm_chart_outside
                                                              : out->helm_chart) = dir;
    }
  }
  for (const auto& option : helm) {
    const std::string key = option.first.IsScalar() ? option.first.Scalar() : "";
    const bool chart_key = key == "repo" || key == "chart" || key == "version";
    const bool remote = !out->remote_chart.empty() && chart_key;
    if (key != "values" && key != "valuesFiles" && key != "releaseName" &&
        key != "disablePreProcess" && !remote) {
      const bool folder =
          key == "chart" && (!out->helm_chart.empty() || !out->helm_chart_outside.empty());
      if (!folder) out->helm_other_options = true;
      if (!folder &&
          !(chart_key && (!out->git_chart_form.empty() || !out->chart_archive_form.empty()))) {
        out->helm_other_options_but_getter = true;
      }
    }
  }
  auto refuse = [&](const std::string& why) {
    if (out->helm_error.empty()) out->helm_error = why;
  };
  if (absl::Status read = ReadHelmValues(helm, &out->helm_values, &out->helm_values_files);
      !read.ok()) {
    refuse(std::string(read.message()));
  }
  if (!out->helm_values_files.empty()) {
    described.push_back(absl::StrCat("helm.valuesFiles ", ListNames(out->helm_values_files, 3)));
  }
  if (!out->helm_values.empty()) described.push_back("helm.values");
  // Fleet fills in ${ } templates in values and values files unless this says not to.
  const YAML::Node raw = helm["disablePreProcess"];
  out->helm_preprocess = !(raw && raw.IsScalar() && raw.Scalar() == "true");
  if (const YAML::Node release = helm["releaseName"]; release && !release.IsNull()) {
    const std::string name = release.IsScalar() ? release.Scalar() : "";
    if (!ValidReleaseName(name)) {
      refuse(absl::StrCat("helm.releaseName \"", FleetScalar(release),
                          "\" is not a release name helm takes (a DNS name of at most 53 "
                          "lower-case letters, digits, '-' and '.')"));
    } else {
      out->helm_release = name;
      described.push_back(absl::StrCat("helm.releaseName ", name));
    }
  }
  out->helm_described = absl::StrJoin(described, ", ");
}

}  // namespace

// Helm's rule for a release name: a DNS subdomain of at most 53 characters.
bool ValidReleaseName(absl::string_view name) {
  if (name.empty() || name.size() > 53) return false;
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-') return false;
    }
  }
  return true;
}

absl::StatusOr<std::vector<std::string>> HelmCapabilityFlags(const HelmCapabilities& capabilities,
                                                             const std::string& kube_flag,
                                                             const std::string& api_flag) {
  if (capabilities.kube_version == kClusterKubeVersion) {
    return absl::InvalidArgumentError(
        "--kube-version=cluster is each cluster's own version, known only where a bundle "
        "renders for a cluster (to render here, give one: --kube-version=1.30)");
  }
  if (std::find(capabilities.api_versions.begin(), capabilities.api_versions.end(),
                kClusterApiVersions) != capabilities.api_versions.end()) {
    return absl::InvalidArgumentError(
        "--api-versions=cluster is the APIs each cluster serves, known only where a bundle "
        "renders for a cluster (to render here, name them: "
        "--api-versions=monitoring.coreos.com/v1)");
  }
  std::vector<std::string> flags;
  if (!capabilities.kube_version.empty()) flags.push_back(kube_flag + capabilities.kube_version);
  for (const std::string& api_version : capabilities.api_versions) {
    flags.push_back(api_flag + api_version);
  }
  return flags;
}

namespace {

bool AllDigits(absl::string_view text, size_t most) {
  return !text.empty() && text.size() <= most &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "1.29", "v1.30.2", "1.28.3-gke.100", "1.27.1+k3s1": as helm's semver reads a version.
bool KubeVersionText(absl::string_view text) {
  absl::ConsumePrefix(&text, "v");
  const size_t suffix = text.find_first_of("-+");
  if (suffix != absl::string_view::npos) {
    const absl::string_view rest = text.substr(suffix + 1);
    if (rest.empty() || rest.size() > 64 || !std::all_of(rest.begin(), rest.end(), [](char c) {
          return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                 c == '+';
        })) {
      return false;
    }
    text = text.substr(0, suffix);
  }
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.size() < 2 || parts.size() > 3) return false;
  return AllDigits(parts[0], 4) && AllDigits(parts[1], 4) &&
         (parts.size() == 2 || AllDigits(parts[2], 6));
}

// "v1", "apps/v1", "monitoring.coreos.com/v1", optionally with "/Kind".
bool ApiVersionText(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
  if (parts.empty() || parts.size() > 3) return false;
  size_t version = 0;
  if (parts.size() >= 2 && !(parts[0].size() >= 2 && parts[0][0] == 'v' &&
                             absl::ascii_isdigit(static_cast<unsigned char>(parts[0][1])))) {
    // A group: a DNS subdomain.
    for (absl::string_view label : absl::StrSplit(parts[0], '.')) {
      if (label.empty() || label.front() == '-' || label.back() == '-') return false;
      for (char c : label) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
      }
    }
    version = 1;
  }
  const absl::string_view v = parts[version];
  if (v.size() < 2 || v[0] != 'v' || !absl::ascii_isdigit(static_cast<unsigned char>(v[1])) ||
      !std::all_of(v.begin() + 1, v.end(),
                   [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); })) {
    return false;
  }
  if (parts.size() == version + 1) return true;
  if (parts.size() != version + 2) return false;
  const absl::string_view kind = parts[version + 1];
  return !kind.empty() && absl::ascii_isalpha(static_cast<unsigned char>(kind[0])) &&
         std::all_of(kind.begin(), kind.end(),
                     [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); });
}

}  // namespace

absl::Status CheckHelmCapabilities(const std::string& kube_version,
                                   const std::vector<std::string>& api_versions,
                                   size_t most_api_versions) {
  if (!kube_version.empty() && kube_version != kClusterKubeVersion &&
      (kube_version.size() > 80 || !KubeVersionText(kube_version))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kube-version=", kube_version.substr(0, 80),
        ": want a Kubernetes version as helm reads it (1.29, v1.30.2, 1.28.3-gke.100), or "
        "\"cluster\" for each cluster's own"));
  }
  if (api_versions.size() > most_api_versions) {
    return absl::InvalidArgumentError(absl::StrCat("--api-versions: ", api_versions.size(),
                                                   " given; at most ", most_api_versions));
  }
  for (const std::string& api_version : api_versions) {
    if (api_version == kClusterApiVersions) continue;
    if (api_version.size() > 317 || !ApiVersionText(api_version)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--api-versions: \"", api_version.substr(0, 80),
          "\" is not an API version (v1, apps/v1, monitoring.coreos.com/v1, or with a kind: "
          "monitoring.coreos.com/v1/ServiceMonitor)"));
    }
  }
  return absl::OkStatus();
}

const std::string& NetworkSandbox() {
  static const std::string* sandbox = new std::string(ProbeUnshare());
  return *sandbox;
}

absl::Status RequireNetworkSandbox(const ToolOptions& options, const char* engine,
                                   const std::string& path) {
  if (!NetworkSandbox().empty() || options.allow_network) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      engine, " ", path,
      ": this machine cannot isolate renders from the network (unshare --net fails here), and "
      "renders do not run with the host's network unless the control plane is started with "
      "--render-network=allow"));
}

absl::Status AddObjects(const std::string& bundle, const std::string& origin,
                        std::vector<v1::ManifestObject> objects, const RenderLimits& limits,
                        ObjectSet* set, size_t* bytes) {
  for (v1::ManifestObject& object : objects) {
    *bytes += object.yaml().size();
    absl::Status added = set->Add(std::move(object), origin);
    if (!added.ok()) return absl::InvalidArgumentError(added.message());
    if (set->size() > limits.max_objects) {
      return absl::ResourceExhaustedError(absl::StrCat("bundle ", bundle, " renders more than ",
                                                       limits.max_objects, " objects (at ", origin,
                                                       ")"));
    }
    if (*bytes > limits.max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "bundle ", bundle, " renders more than ", limits.max_bytes, " bytes (at ", origin, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ObjectSet> ObjectsFromToolOutput(const std::string& bundle,
                                                const std::string& origin, const std::string& text,
                                                const RenderLimits& limits) {
  absl::StatusOr<std::vector<v1::ManifestObject>> objects = ParseManifests(text, origin);
  if (!objects.ok()) return objects.status();
  ObjectSet set;
  size_t bytes = 0;
  absl::Status added = AddObjects(bundle, origin, *std::move(objects), limits, &set, &bytes);
  if (!added.ok()) return added;
  return set;
}

absl::Status CheckHelmValuesFile(const std::string& file) {
  bool escapes = file.empty() || file[0] == '/' || absl::StrContains(file, "://");
  for (absl::string_view part : absl::StrSplit(file, '/')) escapes |= part == "..";
  if (escapes) {
    return absl::InvalidArgumentError(absl::StrCat("helm values file \"",
                                                   RedactUrl(file.substr(0, 256)),
                                                   "\" must be a relative path inside the chart"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> HelmValuesPath(const std::string& folder, const std::string& file) {
  auto refused = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("helm values file \"", RedactUrl(file.substr(0, 256)), "\" ", why));
  };
  if (file.empty() || file.size() > 1024) return refused("is not a path");
  if (file[0] == '/') return refused("must be a path relative to the chart's folder");
  std::optional<std::string> joined = JoinInRepository(folder, file);
  if (!joined.has_value()) return refused("is outside the repository");
  if (joined->empty()) return refused("is not a file");
  return *std::move(joined);
}

bool IsFleetYamlName(absl::string_view name) { return name == "fleet.yaml" || name == "fleet.yml"; }

const RepoFile* FindFleetYaml(const std::string& path, const std::vector<RepoFile>& files,
                              bool fleet_yml) {
  const std::string folder = path.empty() ? "" : path + "/";
  const RepoFile* yml = nullptr;
  for (const RepoFile& file : files) {
    if (file.path.size() != folder.size() + 10 && file.path.size() != folder.size() + 9) continue;
    if (!absl::StartsWith(file.path, folder)) continue;
    const absl::string_view name = absl::string_view(file.path).substr(folder.size());
    if (name == "fleet.yaml") return &file;
    if (name == "fleet.yml" && fleet_yml) yml = &file;
  }
  return yml;
}

bool IsGitChart(const RemoteChart& chart) {
  return chart.repo.empty() && absl::StartsWith(chart.url, "git::");
}

namespace {
// Whether fleet.yaml's helm.chart is a go-getter source (`git::`, `s3::`, ...): read since
// reads_fleet_outside_charts (before, such a folder rendered as its files).
bool GoGetterChart(const FleetYamlNamespace& fleet) {
  if (IsGitChart(fleet.remote_chart)) return true;
  for (const char* getter : {"git::", "s3::", "gcs::", "hg::"}) {
    if (fleet.helm_repo_field.empty() && absl::StartsWith(fleet.helm_chart_field, getter)) {
      return true;
    }
  }
  return false;
}
}  // namespace

void FleetYamlNamespace::MarkRead(absl::string_view field) {
  unread.erase(std::remove(unread.begin(), unread.end(), field), unread.end());
}

void FleetYamlNamespace::ReadGetterCharts() {
  if (!chart_archive_form.empty()) {
    helm_chart_archive = std::move(chart_archive_form);
    chart_archive_form.clear();
    helm_chart.clear();
    helm_chart_outside.clear();
    helm_other_options = helm_other_options_but_getter;
    return;
  }
  if (git_chart_form.empty() && git_chart_form_error.empty()) return;
  remote_chart = std::move(git_chart_form);
  remote_chart_error = std::move(git_chart_form_error);
  git_chart_form = RemoteChart();
  git_chart_form_error.clear();
  helm_chart.clear();
  helm_chart_outside.clear();
  helm_other_options = helm_other_options_but_getter;
}

std::string RemoteChart::Describe() const {
  if (!url.empty()) return version.empty() ? url : absl::StrCat(url, " ", version);
  return absl::StrCat(name, version.empty() ? "" : " ", version, " from ", repo);
}

void UseReads(const RepositoryReads& reads, RenderInput* input) {
  input->declared_namespace = reads.declared_namespace;
  input->reads_fleetignore = reads.fleetignore;
  input->reads_sourceignore = reads.sourceignore;
  input->reads_fleet_helm = reads.fleet_helm;
  input->reads_fleet_targets = reads.fleet_targets;
  input->reads_fleet_target_folders = reads.fleet_target_folders;
  input->reads_fleet_bundle_layout = reads.fleet_bundle_layout;
  input->reads_fleet_charts = reads.fleet_charts;
  input->reads_fleet_diff = reads.fleet_diff;
  input->reads_controller_fields = reads.controller_fields;
  input->reads_fleet_service_account = reads.fleet_service_account;
  input->reads_fleet_depends_on = reads.fleet_depends_on;
  input->reads_fleet_release_name = reads.fleet_release_name;
  input->reads_argocd_source = reads.argocd_source;
  input->reads_argocd_kustomize = reads.argocd_kustomize;
  input->reads_argocd_additions = reads.argocd_additions;
  input->reads_argocd_helm = reads.argocd_helm;
  input->reads_argocd_template_options = reads.argocd_template_options;
  input->reads_fleet_do_not_deploy = reads.fleet_do_not_deploy;
  input->reads_fleet_outside_charts = reads.fleet_outside_charts;
  input->reads_fleet_getter_charts = reads.fleet_getter_charts;
  input->reads_fleet_override_targets = reads.fleet_override_targets;
}

absl::StatusOr<FleetYamlNamespace> ReadFleetYamlNamespace(const std::string& path,
                                                          const std::vector<RepoFile>& files,
                                                          bool fleet_yml) {
  FleetYamlNamespace out;
  const RepoFile* found = FindFleetYaml(path, files, fleet_yml);
  out.file = found != nullptr ? found->path
             : path.empty()   ? "fleet.yaml"
                              : absl::StrCat(path, "/fleet.yaml");
  const std::string& name = out.file;
  if (found == nullptr) return out;
  if (absl::Status bounded = CheckYamlBounds(found->content, name); !bounded.ok()) {
    return absl::Status(bounded.code(),
                        absl::StrCat("Rancher Fleet's bundle options, read for their namespace: ",
                                     bounded.message()));
  }
  YAML::Node options;
  try {
    options = YAML::Load(found->content);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("Rancher Fleet's bundle options, read for their namespace: ", name, ":",
                     e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  if (!options || options.IsNull()) return out;
  // A target's `<<: *defaults` reads as Fleet's Go YAML reads it: the keys merged.
  absl::StatusOr<YAML::Node> merged = ResolveMergeKeys(options);
  if (!merged.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Rancher Fleet's bundle options, read for their namespace: ", name, ": ",
                     merged.status().message()));
  }
  options = *std::move(merged);
  // yaml-cpp throws on a look-up in a node of the wrong kind: a repository's file must
  // never take the control plane down.
  try {
    const YAML::Node& fields = options;  // read only: a const node's [] adds nothing
    if (!options.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " (Rancher Fleet's bundle options) is not a mapping"));
    }
    // What gitfleet does not read is named (what it reads of helm, kustomize and the rest is
    // taken off the list as it is read), and so is what it does not know at all (Fleet's
    // imageScans, a misspelt key: at most ten), rather than passed over without a word.
    static constexpr absl::string_view kNamedWhenSet[] = {"helm",
                                                          "kustomize",
                                                          "yaml",
                                                          "targetCustomizations",
                                                          "overrideTargets",
                                                          "targets",
                                                          "dependsOn",
                                                          "paused",
                                                          "keepResources",
                                                          "correctDrift",
                                                          "namespaceLabels",
                                                          "namespaceAnnotations"};
    static constexpr absl::string_view kRead[] = {
        "serviceAccount", "namespace", "defaultNamespace", "rolloutStrategy", "diff",
        "labels",         "name"};
    for (absl::string_view field : kNamedWhenSet) {
      if (fields[std::string(field)]) out.unread.emplace_back(field);
    }
    int unknown = 0;
    for (const auto& entry : options) {
      if (!entry.first.IsScalar()) continue;
      const std::string& key = entry.first.Scalar();
      if (std::find(std::begin(kNamedWhenSet), std::end(kNamedWhenSet), key) !=
              std::end(kNamedWhenSet) ||
          std::find(std::begin(kRead), std::end(kRead), key) != std::end(kRead)) {
        continue;
      }
      if (++unknown > 10) break;
      out.unread.push_back(key.substr(0, 64));
    }
    if (const YAML::Node account = fields["serviceAccount"]; account && !account.IsNull()) {
      const std::string name = account.IsScalar() ? account.Scalar() : "";
      absl::Status valid = name.find('/') != std::string::npos
                               ? absl::InvalidArgumentError(
                                     "it names a namespace, which Fleet's "
                                     "serviceAccount does not")
                               : ValidateServiceAccount(name);
      if (!account.IsScalar()) valid = absl::InvalidArgumentError("it is not a name");
      if (valid.ok()) {
        out.service_account = name;
      } else if (!name.empty() || !account.IsScalar()) {
        out.service_account_error =
            absl::StrCat("serviceAccount cannot be used: ", valid.message());
      }
    }
    std::string folder_namespace = FleetScalar(fields["namespace"]);
    if (folder_namespace.empty()) folder_namespace = FleetScalar(fields["defaultNamespace"]);
    // overrideTargets: Fleet's list, or (as fleet-examples writes it) `true` with the list
    // under `targets:`; `false` overrides nothing.
    // (yaml-cpp's Node assignment writes through to the document: each node is its own.)
    if (const YAML::Node given = fields["overrideTargets"]; given && !given.IsNull()) {
      const bool flag = given.IsScalar() && (given.Scalar() == "true" || given.Scalar() == "false");
      out.override_targets_from_targets = flag && given.Scalar() == "true";
      const YAML::Node listed = !flag                               ? given
                                : out.override_targets_from_targets ? fields["targets"]
                                                                    : YAML::Node();
      if (out.override_targets_from_targets && (!listed || listed.IsNull())) {
        out.override_targets_given = true;
        out.override_targets_error =
            "overrideTargets is true, and it lists no targets (list them under "
            "overrideTargets, as Fleet reads them)";
      } else if (listed && !listed.IsNull()) {
        out.override_targets_given = true;
        if (!listed.IsSequence()) {
          out.override_targets_error = "overrideTargets is not a list of targets";
        } else if (listed.size() == 0) {
          out.override_targets_error =
              "overrideTargets lists no targets: no cluster would get the bundle";
        } else if (listed.size() > kMaxHelmTargets) {
          out.override_targets_error =
              absl::StrCat("overrideTargets lists ", listed.size(), " targets; at most ",
                           kMaxHelmTargets, " are read");
        } else {
          int index = 0;
          for (const auto& target : listed) {
            out.override_targets.push_back(ReadFleetTarget(target, index++, "overrideTargets"));
            if (out.override_target_names.size() < kMaxTargetsDescribed) {
              out.override_target_names.push_back(out.override_targets.back().name);
            }
          }
        }
      }
    }
    const YAML::Node targets = fields["targetCustomizations"];
    if (targets && targets.IsSequence()) {
      if (targets.size() > kMaxHelmTargets) {
        out.helm_targets_error =
            absl::StrCat("it has ", targets.size(), " targetCustomizations; at most ",
                         kMaxHelmTargets, " are read");
      }
      int index = 0;
      for (const auto& target : targets) {
        if (out.helm_targets.size() < kMaxHelmTargets) {
          out.helm_targets.push_back(ReadFleetTarget(target, index));
          const FleetYamlNamespace::Target& read = out.helm_targets.back();
          if (!read.helm_values.empty() || !read.helm_values_files.empty()) {
            out.helm_target_names.push_back(read.name);
          }
          if (!read.helm_release.empty() || read.helm_repo || read.helm_chart ||
              read.helm_version || !read.chart_error.empty()) {
            out.chart_target_names.push_back(read.name);
          }
          if (!read.kustomize_dir.empty() || !read.ns.empty() || read.overlays ||
              !read.folder_error.empty()) {
            out.folder_target_names.push_back(read.name);
          }
          if (read.do_not_deploy) out.do_not_deploy_target_names.push_back(read.name);
        }
        // A target's own keepResources (Fleet ORs it with the folder's for its clusters):
        // read for the whole bundle, the side that never deletes what Fleet would keep.
        if (target.IsMap() && target["keepResources"] && target["keepResources"].IsScalar() &&
            target["keepResources"].Scalar() == "true" && out.keep_resources_target.empty()) {
          out.keep_resources_target = TargetName(target, index);
        }
        if (target.IsMap() && target["diff"] && out.target_diffs.size() < kMaxTargetsDescribed) {
          absl::StatusOr<FleetComparePatches> diff = ReadFleetComparePatches(target["diff"]);
          if (!diff.ok()) {
            out.target_diffs.push_back(absl::StrCat(
                TargetName(target, index), ": its diff cannot be read: ", diff.status().message()));
          } else if (!diff->rules.empty()) {
            out.target_diffs.push_back(absl::StrCat(TargetName(target, index), ": ",
                                                    TargetWhere(target), " ",
                                                    IgnoreDifferenceFlags(diff->rules)));
          }
        }
        // What is left of the target for a bundle of its own, for each way a render reads
        // it; the first kMaxTargetsDescribed are described, the rest counted.
        auto describe = [&](TargetNative native, std::vector<std::string>* list,
                            int* not_described) {
          std::string folder;
          std::string text =
              DescribeFleetTarget(target, index, path, folder_namespace, native, &folder);
          if (text.empty()) return;
          if (list->size() < kMaxTargetsDescribed) {
            list->push_back(std::move(text));
          } else {
            ++*not_described;
          }
        };
        describe(TargetNative::kHelmValues, &out.targets_beyond_helm,
                 &out.targets_beyond_helm_not_described);
        describe(TargetNative::kChart, &out.targets_beyond_chart,
                 &out.targets_beyond_chart_not_described);
        std::string folder;
        std::string described = DescribeFleetTarget(target, index++, path, folder_namespace,
                                                    TargetNative::kNothing, &folder);
        if (described.empty()) continue;
        if (out.targets.size() < kMaxTargetsDescribed) {
          out.targets.push_back(std::move(described));
          if (!folder.empty()) out.target_folders.push_back(folder);
        } else {
          ++out.targets_not_described;
        }
      }
      if (!out.targets.empty() || !out.target_diffs.empty()) {
        out.MarkRead("targetCustomizations");
      }
    }
    if (const YAML::Node helm = fields["helm"]; helm && helm.IsMap()) ReadFleetHelm(helm, &out);
    for (const auto& [field, list] : {std::pair<const char*, std::vector<std::string>*>{
                                          "namespaceLabels", &out.namespace_labels},
                                      {"namespaceAnnotations", &out.namespace_annotations}}) {
      const YAML::Node map = fields[field];
      if (!map || map.IsNull()) continue;
      out.MarkRead(field);
      if (!map.IsMap()) {
        out.namespace_metadata_error = absl::StrCat(field, " is not a mapping");
        continue;
      }
      std::map<std::string, std::string> sorted;
      for (const auto& entry : map) {
        if (!entry.first.IsScalar() || !entry.second.IsScalar()) {
          out.namespace_metadata_error = absl::StrCat(field, ": a key or value is not a string");
          break;
        }
        sorted[entry.first.Scalar()] = entry.second.Scalar();
        if (sorted.size() > 64) break;  // CheckNamespaceMetadata names the bound
      }
      for (const auto& [key, value] : sorted) list->push_back(absl::StrCat(key, "=", value));
    }
    if (const YAML::Node bundle_name = fields["name"];
        bundle_name && bundle_name.IsScalar() && bundle_name.Scalar().size() <= 253) {
      out.bundle_name = bundle_name.Scalar();
    }
    if (const YAML::Node labels = fields["labels"]; labels && labels.IsMap()) {
      for (const auto& label : labels) {
        if (!label.first.IsScalar() || !label.second.IsScalar() || out.labels.size() >= 64 ||
            !ValidateLabels({{label.first.Scalar(), label.second.Scalar()}}).ok()) {
          continue;  // Fleet's bundle would be refused by Kubernetes: no label to select
        }
        out.labels[label.first.Scalar()] = label.second.Scalar();
      }
    }
    if (const YAML::Node depends = fields["dependsOn"]; depends && depends.IsSequence()) {
      int index = 0;
      for (const YAML::Node& entry : depends) {
        const int at = index++;
        const YAML::Node dependency = entry.IsMap() ? entry["name"] : YAML::Node();
        const YAML::Node selector = entry.IsMap() ? entry["selector"] : YAML::Node();
        std::string declared;
        if (selector && entry.size() == 1) {
          // The bundles whose labels it matches, as Fleet lists them.
          declared = FleetSelectorText(selector);
          absl::StatusOr<LabelSelector> parsed = LabelSelector::Parse(declared);
          if ((declared.empty() && !FleetSelectsEverything(selector)) || !parsed.ok()) {
            out.depends_on_error = absl::StrCat(
                "dependsOn[", at, "].selector is not one gitfleet reads",
                parsed.ok() ? " (matchLabels, and matchExpressions with In, NotIn, Exists or "
                              "DoesNotExist)"
                            : absl::StrCat(": ", parsed.status().message()));
            continue;
          }
          declared = absl::StrCat(kFleetSelectorPrefix, declared);
        } else if (dependency && dependency.IsScalar() && !dependency.Scalar().empty() &&
                   entry.size() == (selector ? 2 : 1)) {
          // With a selector too, Fleet wants the named bundle to match it as well: the
          // named one is waited for.
          declared = dependency.Scalar().substr(0, 253);
        }
        if (declared.empty() || out.depends_on.size() >= 32) {
          out.depends_on_unread = true;
          continue;
        }
        if (std::find(out.depends_on.begin(), out.depends_on.end(), declared) ==
            out.depends_on.end()) {
          out.depends_on.push_back(std::move(declared));
        }
      }
    } else if (depends && !depends.IsNull()) {
      out.depends_on_unread = true;
    }
    if (absl::StatusOr<FleetRollout> rollout = ReadFleetRollout(fields["rolloutStrategy"]);
        rollout.ok()) {
      out.rollout = *std::move(rollout);
    } else {
      out.rollout_error = absl::StrCat(name, ": ", rollout.status().message());
    }
    if (const YAML::Node paused = fields["paused"]; paused && !paused.IsNull()) {
      // As Fleet's Go reader takes a boolean: YAML 1.1's words, unquoted.
      static const std::set<std::string> kTrue = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                                  "on",   "On",   "ON",   "y",   "Y"};
      static const std::set<std::string> kFalse = {"false", "False", "FALSE", "no", "No", "NO",
                                                   "off",   "Off",   "OFF",   "n",  "N"};
      const bool plain = paused.IsScalar() && paused.Tag() != "!";
      if (plain && kTrue.count(paused.Scalar()) > 0) {
        out.paused = true;
      } else if (!plain || kFalse.count(paused.Scalar()) == 0) {
        out.paused_error =
            absl::StrCat(name, ": paused is ",
                         paused.IsScalar() ? absl::StrCat("\"", paused.Scalar().substr(0, 64), "\"")
                                           : std::string("not a scalar"),
                         ", not true or false (unquoted), which Fleet would refuse");
      }
      out.MarkRead("paused");
    }
    if (const YAML::Node keep = fields["keepResources"]; keep && keep.IsScalar()) {
      out.keep_resources = keep.Scalar() == "true";
      out.MarkRead("keepResources");
    }
    if (out.keep_resources) {
      out.keep_resources_target.clear();  // the folder's own asks for every cluster
    } else if (!out.keep_resources_target.empty()) {
      out.keep_resources = true;
    }
    if (absl::StatusOr<FleetComparePatches> diff = ReadFleetComparePatches(fields["diff"]);
        diff.ok()) {
      out.compare_patches = *std::move(diff);
    } else {
      out.compare_patches_error = std::string(diff.status().message());
    }
    out.kustomize_dir = KustomizeDirOf(fields["kustomize"], &out.kustomize_dir_error);
    for (const auto& [section, field] : {std::pair<const char*, const char*>{"kustomize", "dir"},
                                         std::pair<const char*, const char*>{"helm", "chart"}}) {
      const YAML::Node options_of = fields[section];
      const YAML::Node value = options_of && options_of.IsMap() ? options_of[field] : YAML::Node();
      if (value && value.IsScalar() && !value.Scalar().empty() && value.Scalar() != "." &&
          value.Scalar() != "./") {
        std::string elsewhere =
            absl::StrCat(section, ".", field, " ", RedactUrl(value.Scalar().substr(0, 256)));
        if (std::string(section) == "helm") out.chart_elsewhere = elsewhere;
        if (out.renders_elsewhere.empty()) out.renders_elsewhere = std::move(elsewhere);
      }
    }
    for (const char* field : {"namespace", "defaultNamespace"}) {
      const YAML::Node value = fields[field];
      if (!value || value.IsNull() || (value.IsScalar() && value.Scalar().empty())) continue;
      if (!value.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": ", field, " is not a string"));
      }
      if (absl::Status valid = ValidateName("namespace", value.Scalar()); !valid.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": ", field, ": ", valid.message()));
      }
      out.ns = value.Scalar();
      out.forced = std::string(field) == "namespace";
      out.origin = absl::StrCat(name, ": ", field);
      break;
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, " cannot be read: ", e.what()));
  }
  return out;
}

absl::StatusOr<const FleetYamlNamespace::Target*> ChooseFleetTarget(
    const std::vector<FleetYamlNamespace::Target>& targets, const Values& values, ReadValues* read,
    absl::string_view list) {
  auto lookup = [&](const std::string& key) {
    auto it = values.find(key);
    std::optional<std::string> found;
    if (it != values.end()) found = it->second;
    if (read != nullptr) (*read)[key] = found;
    return found;
  };
  for (const FleetYamlNamespace::Target& target : targets) {
    if (!target.error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(list, " ", target.name, ": ", target.error));
    }
    // Every criterion it sets must hold; one that sets none is no cluster's (as in Fleet).
    bool criteria = false;
    bool holds = true;
    if (!target.cluster_name.empty()) {
      criteria = true;
      std::optional<std::string> name = lookup(ClusterNameKey());
      holds = name.has_value() && *name == target.cluster_name;
    }
    if (holds && target.has_selector) {
      criteria = true;
      absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(target.selector);
      if (!selector.ok()) return selector.status();
      LabelMap labels;  // only those it looks at, each recorded
      for (const std::string& key : selector->Keys()) {
        if (std::optional<std::string> value = lookup(ClusterLabelKey(key))) labels[key] = *value;
      }
      holds = selector->Matches(labels);
    }
    if (holds && (!target.group.empty() || target.has_group_selector)) {
      // The cluster's groups (--cluster-groups), each with its labels.
      criteria = true;
      std::optional<std::string> text = lookup(ClusterGroupsKey());
      if (!text.has_value()) {
        // Deploying another target's render to the clusters the repository meant for a
        // group would be a guess.
        return absl::InvalidArgumentError(absl::StrCat(
            list, " ", target.name, " selects by Fleet's ",
            target.group.empty() ? std::string("clusterGroupSelector")
                                 : absl::StrCat("clusterGroup ", target.group),
            ", and the control plane reads no cluster groups, so whether it is this cluster's "
            "target is unknown: give the control plane Fleet's ClusterGroups "
            "(--cluster-groups), or select its clusters with clusterSelector or clusterName"));
      }
      absl::StatusOr<std::vector<ClusterGroupMembership>> groups = DecodeGroupMemberships(*text);
      if (!groups.ok()) return groups.status();
      absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(target.group_selector);
      if (!selector.ok()) return selector.status();
      // As Fleet matches a target once per group of the cluster: one group must be both
      // the one named and one the selector matches.
      holds = std::any_of(groups->begin(), groups->end(), [&](const ClusterGroupMembership& g) {
        return (target.group.empty() || g.name == target.group) &&
               (!target.has_group_selector || selector->Matches(g.labels));
      });
    }
    if (criteria && holds) return &target;
  }
  return nullptr;
}

bool RendersFleetFolders(const std::string& engine) {
  return engine == "plain" || engine == "kustomize";
}

bool RendersPerFleetTarget(const std::string& engine, const std::string& path,
                           const std::vector<RepoFile>& files, bool fleet_yml, bool do_not_deploy,
                           bool override_targets) {
  if (!RendersFleetFolders(engine)) return false;
  absl::StatusOr<FleetYamlNamespace> fleet = ReadFleetYamlNamespace(path, files, fleet_yml);
  return fleet.ok() && fleet->per_target(do_not_deploy, override_targets);
}

// Not an error: the cluster is left out, as Fleet leaves it out (it keeps whatever of the
// bundle it holds: a repository never takes a bundle off a cluster).
absl::Status DoNotDeployError(const std::string& fleet_yaml,
                              const FleetYamlNamespace::Target& target) {
  return NotDeployedHere(absl::StrCat(fleet_yaml, ": targetCustomizations ", target.name,
                                      " says doNotDeploy for this cluster"));
}

// For a chart, what Fleet renders it through and where: the kustomization of the folder the
// cluster's target's kustomize.dir names, else fleet.yaml's own, else the bundle's folder (a
// post-render, when that folder holds a kustomization.yaml), and the target's namespace.
absl::Status PlaceFleetChart(const RenderInput& input, const std::string& fleet_yaml,
                             FleetYamlNamespace* fleet, RenderInput* placed) {
  if (!fleet->kustomize_dir_error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(fleet_yaml, ": ", absl::StripPrefix(fleet->kustomize_dir_error, "its ")));
  }
  std::string dir = fleet->kustomize_dir;
  std::string dir_from = "kustomize.dir";
  if (!fleet->folder_target_names.empty()) {
    if (!fleet->helm_targets_error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": ", fleet->helm_targets_error));
    }
    static const Values kNoValues;
    absl::StatusOr<const FleetYamlNamespace::Target*> chosen =
        ChooseFleetTarget(fleet->helm_targets, input.values != nullptr ? *input.values : kNoValues,
                          input.read_values);
    if (!chosen.ok()) {
      return absl::Status(chosen.status().code(),
                          absl::StrCat(fleet_yaml, ": ", chosen.status().message()));
    }
    if (const FleetYamlNamespace::Target* target = *chosen; target != nullptr) {
      if (target->do_not_deploy) return DoNotDeployError(fleet_yaml, *target);
      if (!target->folder_error.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": targetCustomizations ",
                                                       target->name, ": ", target->folder_error));
      }
      if (!target->kustomize_dir.empty()) {
        dir = target->kustomize_dir;
        dir_from = absl::StrCat("targetCustomizations ", target->name, "'s kustomize.dir");
      }
      if (!target->ns.empty()) {
        fleet->ns = target->ns;
        fleet->forced = target->ns_forced;
        fleet->origin = absl::StrCat(fleet_yaml, ": targetCustomizations ", target->name, " ",
                                     target->ns_forced ? "namespace" : "defaultNamespace");
      }
    }
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat(
          "the chart goes through the kustomization of the folder, and into the namespace, that ",
          fleet_yaml, "'s targetCustomizations ", ListNames(fleet->folder_target_names, 10),
          " give the clusters they select (the first that selects a cluster), as Fleet renders "
          "it"));
    }
  }
  // What is left for a bundle per target: what changes more than a chart's values, folder
  // and namespace.
  fleet->targets = fleet->targets_beyond_chart;
  fleet->targets_not_described = fleet->targets_beyond_chart_not_described;
  fleet->target_folders.clear();
  fleet->MarkRead("kustomize");
  const std::string folder =
      input.path.empty() ? dir : (dir.empty() ? input.path : absl::StrCat(input.path, "/", dir));
  const std::string prefix = folder.empty() ? "" : folder + "/";
  bool any = false;
  std::string other_name;  // a kustomization Fleet's post-render does not read
  for (const RepoFile& file : input.files) {
    if (!absl::StartsWith(file.path, prefix)) continue;
    any = true;
    const absl::string_view name = absl::string_view(file.path).substr(prefix.size());
    if (name == "kustomization.yaml") {
      placed->fleet_post_render = true;
      placed->fleet_post_render_dir = dir;
    } else if (name == "kustomization.yml" || name == "Kustomization") {
      other_name = file.path;
    }
  }
  const std::string where = input.path.empty() ? "the repository root" : input.path;
  if (!any) {
    return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": ", dir_from, " names ", dir,
                                                   ", which is no folder of files in ", where));
  }
  if (input.notes == nullptr) return absl::OkStatus();
  if (placed->fleet_post_render) {
    input.notes->push_back(absl::StrCat(
        "the chart's output goes through ", prefix, "kustomization.yaml",
        dir.empty() ? "" : absl::StrCat(" (", dir_from, ")"), ", as its first resource, ",
        kFleetManifestsFile, ", as Fleet post-renders a chart"));
  } else if (!other_name.empty()) {
    input.notes->push_back(absl::StrCat(
        "the chart renders as it is: Fleet post-renders a chart through a kustomization.yaml "
        "only, and so does gitfleet, so ",
        other_name, " is not read (rename it kustomization.yaml to have it read)"));
  } else if (!dir.empty()) {
    input.notes->push_back(absl::StrCat("the chart renders as it is: ", folder, ", which ",
                                        dir_from,
                                        " names, holds no kustomization.yaml to "
                                        "post-render it through, as in Fleet"));
  }
  return absl::OkStatus();
}

// fleet.yaml's diff.comparePatches, for `objects`: the fields they leave to others, as Fleet
// leaves them out of its comparison (since reads_fleet_diff; noted before); and what of them,
// and of its targets' own, one bundle does not do.
namespace {
absl::Status UseFleetDiff(const RenderInput& input, const FleetYamlNamespace& fleet,
                          ObjectSet* objects) {
  const std::string& fleet_yaml = fleet.file;
  std::vector<std::string>* notes = input.notes;
  // Whether it is there or not: a diff added later changes the revision (unless a folder
  // the render read holds it already).
  if (input.reads_fleet_diff && input.read_paths != nullptr &&
      std::none_of(
          input.read_paths->begin(), input.read_paths->end(), [&](const std::string& read) {
            return read.empty() || read == fleet_yaml || absl::StartsWith(fleet_yaml, read + "/");
          })) {
    input.read_paths->push_back(fleet_yaml);
  }
  // What a namespace created for the bundle gets: read whatever the bundle's age (it changes
  // nothing already in a cluster).
  if (!fleet.namespace_metadata_error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(fleet_yaml, ": ", fleet.namespace_metadata_error));
  }
  if (!fleet.namespace_labels.empty() || !fleet.namespace_annotations.empty()) {
    v1::SyncOptions metadata;
    for (const std::string& label : fleet.namespace_labels) metadata.add_namespace_labels(label);
    for (const std::string& annotation : fleet.namespace_annotations) {
      metadata.add_namespace_annotations(annotation);
    }
    if (absl::Status valid = CheckNamespaceMetadata(metadata); !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": ", valid.message()));
    }
    objects->set_namespace_metadata(fleet.namespace_labels, fleet.namespace_annotations);
    if (notes != nullptr) {
      std::vector<std::string> what;
      if (!fleet.namespace_labels.empty()) {
        what.push_back(absl::StrCat("the labels ", absl::StrJoin(fleet.namespace_labels, ",")));
      }
      if (!fleet.namespace_annotations.empty()) {
        what.push_back(absl::StrCat(fleet.namespace_annotations.size(), " annotation",
                                    fleet.namespace_annotations.size() == 1 ? "" : "s"));
      }
      notes->push_back(absl::StrCat("a namespace created for the bundle (--create-namespace) gets ",
                                    absl::StrJoin(what, " and "), " that ", fleet_yaml,
                                    "'s namespaceLabels and namespaceAnnotations give it, as "
                                    "Fleet gives them"));
    }
  }
  // The account it is applied as, when the bundle names none (since
  // reads_fleet_service_account; noted before).
  if (!fleet.service_account_error.empty() && input.reads_fleet_service_account) {
    return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": ", fleet.service_account_error));
  }
  if (!fleet.service_account.empty() && notes != nullptr) {
    if (!input.reads_fleet_service_account) {
      notes->push_back(absl::StrCat(
          fleet_yaml, " names serviceAccount ", fleet.service_account,
          "; this bundle was rendered before gitfleet read it, and is applied as it was: give "
          "it --service-account=NAMESPACE/",
          fleet.service_account, " to apply it as that account"));
    } else if (input.fleet_service_account_namespace.empty()) {
      notes->push_back(absl::StrCat(fleet_yaml, " names serviceAccount ", fleet.service_account,
                                    ", which is not used: the control plane's "
                                    "--fleet-service-account-namespace is empty"));
    } else {
      notes->push_back(absl::StrCat(
          "applied as service account ", input.fleet_service_account_namespace, "/",
          fleet.service_account, ", the serviceAccount ", fleet_yaml,
          " names (in the agents' namespace, where Fleet looks it up), unless the bundle's own "
          "--service-account or its scope's names another"));
    }
  }
  if (!fleet.service_account.empty() && input.reads_fleet_service_account &&
      !input.fleet_service_account_namespace.empty()) {
    objects->set_declared_service_account(
        absl::StrCat(input.fleet_service_account_namespace, "/", fleet.service_account));
  }
  // Read whatever the bundle's age: keeping more than before is never a loss.
  if (fleet.keep_resources) {
    objects->set_keep_on_removal(true);
    if (notes != nullptr) {
      notes->push_back(absl::StrCat(
          "its objects stay on a cluster the bundle leaves (released, not deleted), as ",
          fleet_yaml, "'s keepResources asks",
          fleet.keep_resources_target.empty()
              ? ""
              : absl::StrCat(" for target ", fleet.keep_resources_target,
                             " (gitfleet keeps them on every cluster of the bundle: keeping more "
                             "is never a loss)"),
          "; `cluster forget --prune` still prunes"));
    }
  }
  const FleetComparePatches& diff = fleet.compare_patches;
  if (!input.reads_fleet_diff) {
    if (notes != nullptr && (!diff.rules.empty() || !fleet.compare_patches_error.empty())) {
      notes->push_back(absl::StrCat(
          fleet_yaml,
          " sets diff.comparePatches; this bundle was rendered before gitfleet read them, and "
          "applies and heals those fields as it did: ",
          diff.rules.empty() ? "add the bundle again to have them read"
                             : absl::StrCat("give the bundle ", IgnoreDifferenceFlags(diff.rules),
                                            ", or add it again, to leave them to others")));
    }
    return absl::OkStatus();
  }
  if (!fleet.compare_patches_error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": ", fleet.compare_patches_error));
  }
  if (!diff.rules.empty()) {
    objects->mutable_ignore_differences()->Assign(diff.rules.begin(), diff.rules.end());
    if (notes != nullptr) {
      notes->push_back(absl::StrCat(
          "leaves to others the fields ", fleet_yaml,
          "'s diff.comparePatches name, as Fleet leaves them out of its comparison: neither "
          "drift nor set back by an apply (",
          IgnoreDifferenceFlags(diff.rules), ")"));
    }
  }
  if (notes != nullptr && (!diff.not_read.empty() || diff.not_read_more > 0)) {
    notes->push_back(absl::StrCat(
        fleet_yaml, "'s diff.comparePatches also say what gitfleet does not read: ",
        absl::StrJoin(diff.not_read, "; "),
        diff.not_read_more > 0 ? absl::StrCat("; and ", diff.not_read_more, " more") : "",
        " (--ignore-difference names fields by JSON pointer)"));
  }
  if (notes != nullptr && !fleet.target_diffs.empty()) {
    notes->push_back(absl::StrCat(
        fleet_yaml,
        "'s targetCustomizations leave other fields to others on some clusters, which one "
        "gitfleet bundle does not: it takes the folder's diff for every cluster it targets; a "
        "bundle per target does their work: ",
        absl::StrJoin(fleet.target_diffs, "; ")));
  }
  return absl::OkStatus();
}

// A field some controller in the cluster sets, which an apply of the manifest's value would
// set back at every new revision and every heal, found in a render.
struct ControllerField {
  v1::IgnoreDifference rule;
  std::string what;  // "Deployment shop/web (HorizontalPodAutoscaler shop/web)"
};

// The group of an apiVersion ("apps/v1": apps; "v1": the core group).
std::string GroupOf(const std::string& api_version) {
  const size_t slash = api_version.find('/');
  return slash == std::string::npos ? "" : api_version.substr(0, slash);
}

// The replicas of each workload an autoscaler among `objects` scales: a
// HorizontalPodAutoscaler's scaleTargetRef, or a KEDA ScaledObject's (which makes one). An
// apply that set them would scale a loaded workload down to the manifest's count until the
// autoscaler noticed. `unmatched` counts those that name it in a form no rule can match.
std::vector<ControllerField> AutoscaledReplicas(const ObjectSet& objects, int* unmatched) {
  std::vector<ControllerField> out;
  for (const auto& [key, object] : objects.objects()) {
    const v1::ObjectKey& scaler = object->key();
    const bool hpa = scaler.group() == "autoscaling" && scaler.kind() == "HorizontalPodAutoscaler";
    const bool keda = scaler.group() == "keda.sh" && scaler.kind() == "ScaledObject";
    if (!hpa && !keda) continue;
    std::string api_version, kind, name;
    try {
      const YAML::Node node = YAML::Load(object->yaml());
      const YAML::Node spec = node["spec"];
      const YAML::Node ref = spec && spec.IsMap() ? spec["scaleTargetRef"] : YAML::Node();
      if (!ref || !ref.IsMap()) continue;
      api_version = FleetScalar(ref["apiVersion"]);
      kind = FleetScalar(ref["kind"]);
      name = FleetScalar(ref["name"]);
    } catch (const YAML::Exception&) {
      continue;  // the apply names what is wrong with it
    }
    // KEDA's defaults; an HPA's kind and name are required, its apiVersion optional.
    if (keda && kind.empty()) kind = "Deployment";
    if (keda && api_version.empty()) api_version = "apps/v1";
    ControllerField field;
    v1::IgnoreDifference& rule = field.rule;
    if (!api_version.empty()) {
      rule.set_group(GroupOf(api_version));
    } else {
      rule.set_group(kind == "Deployment" || kind == "StatefulSet" || kind == "ReplicaSet" ? "apps"
                                                                                           : "*");
    }
    rule.set_kind(kind);
    rule.set_namespace_(scaler.namespace_());
    rule.set_name(name);
    rule.add_json_pointers("/spec/replicas");
    v1::SyncOptions one;
    *one.add_ignore_differences() = rule;
    // A name still to be filled in per cluster (${var}) is no name to match yet.
    if (absl::StrContains(name, "${") || !CheckIgnoreDifferences(one).ok()) {
      ++*unmatched;
      continue;
    }
    field.what =
        absl::StrCat(kind, " ", scaler.namespace_().empty() ? "" : scaler.namespace_() + "/", name,
                     " (", scaler.kind(), " ", KeyDisplay(scaler), ")");
    out.push_back(std::move(field));
  }
  return out;
}

// The CA bundles a controller injects: in webhook configurations, a CRD's conversion webhook
// and an APIService, those the manifest leaves empty ("", as charts write them for istiod,
// Kyverno or cert-manager's cainjector to fill in) and, in an object cert-manager's
// cainjector is asked to inject (its cert-manager.io/inject-ca-from* annotations), every
// one. An apply of the empty value would break TLS to the webhook until the controller put
// it back; with failurePolicy: Fail, every request it admits fails meanwhile.
std::vector<ControllerField> InjectedCaBundles(const ObjectSet& objects) {
  std::vector<ControllerField> out;
  for (const auto& [key, object] : objects.objects()) {
    const v1::ObjectKey& k = object->key();
    const bool webhooks = k.group() == "admissionregistration.k8s.io" &&
                          (k.kind() == "ValidatingWebhookConfiguration" ||
                           k.kind() == "MutatingWebhookConfiguration");
    const bool crd = k.group() == "apiextensions.k8s.io" && k.kind() == "CustomResourceDefinition";
    const bool api_service = k.group() == "apiregistration.k8s.io" && k.kind() == "APIService";
    if (!webhooks && !crd && !api_service) continue;
    if (object->yaml().find("caBundle") == std::string::npos &&
        object->yaml().find("cert-manager.io/inject-") == std::string::npos) {
      continue;  // nothing to read: most CRDs
    }
    std::vector<std::string> pointers;
    std::string injector;
    try {
      const YAML::Node node = YAML::Load(object->yaml());
      const YAML::Node annotations = node["metadata"]["annotations"];
      bool injected = false;
      if (annotations && annotations.IsMap()) {
        for (const char* name :
             {"cert-manager.io/inject-ca-from", "cert-manager.io/inject-ca-from-secret",
              "cert-manager.io/inject-apiserver-ca"}) {
          if (annotations[name]) injected = true;
        }
      }
      // Whether the manifest's value at `config` (a clientConfig, or the APIService's spec)
      // is the controller's to fill in.
      auto theirs = [&](const YAML::Node& config) {
        if (!config || !config.IsMap()) return false;
        const YAML::Node ca = config["caBundle"];
        if (injected) return true;
        return ca && (ca.IsNull() || (ca.IsScalar() && ca.Scalar().empty()));
      };
      if (webhooks) {
        const YAML::Node list = node["webhooks"];
        if (list && list.IsSequence()) {
          for (size_t i = 0; i < list.size() && i < 64; ++i) {
            if (list[i].IsMap() && theirs(list[i]["clientConfig"])) {
              pointers.push_back(absl::StrCat("/webhooks/", i, "/clientConfig/caBundle"));
            }
          }
        }
      } else if (crd) {
        const YAML::Node conversion = node["spec"]["conversion"];
        if (conversion && conversion.IsMap() && conversion["webhook"] &&
            conversion["webhook"].IsMap() && theirs(conversion["webhook"]["clientConfig"])) {
          pointers.push_back("/spec/conversion/webhook/clientConfig/caBundle");
        }
      } else if (theirs(node["spec"])) {
        pointers.push_back("/spec/caBundle");
      }
      injector = injected ? "cert-manager's cainjector" : "the controller that fills it in";
    } catch (const YAML::Exception&) {
      continue;
    }
    for (size_t first = 0; first < pointers.size(); first += 16) {
      ControllerField field;
      field.rule.set_group(k.group());
      field.rule.set_kind(k.kind());
      field.rule.set_name(k.name());
      for (size_t i = first; i < pointers.size() && i < first + 16; ++i) {
        field.rule.add_json_pointers(pointers[i]);
      }
      field.what = absl::StrCat(KeyDisplay(k), "'s caBundle (", injector, ")");
      out.push_back(std::move(field));
    }
  }
  return out;
}

// What controllers set in `objects` (AutoscaledReplicas, InjectedCaBundles), left to them
// (since reads_controller_fields; noted before), after the rules already there, each once.
void LeaveFieldsToControllers(const RenderInput& input, ObjectSet* objects) {
  constexpr int kMaxRules = 64;
  constexpr size_t kMaxNamed = 3;
  int unmatched = 0;
  const std::vector<ControllerField> replicas = AutoscaledReplicas(*objects, &unmatched);
  const std::vector<ControllerField> ca_bundles = InjectedCaBundles(*objects);
  std::vector<std::string>* notes = input.notes;
  if (unmatched > 0 && notes != nullptr) {
    notes->push_back(absl::StrCat(
        unmatched,
        " autoscaler(s) name what they scale in a form gitfleet cannot match (a ${var} still "
        "to fill in): leave its replicas to them with "
        "--ignore-difference=apps/Deployment:NAMESPACE/NAME=/spec/replicas"));
  }
  auto leave = [&](const std::vector<ControllerField>& found, const std::string& field,
                   const std::string& why) {
    if (found.empty()) return;
    std::vector<v1::IgnoreDifference> rules;
    std::vector<std::string> named;
    int past_bound = 0;
    for (const ControllerField& f : found) {
      const std::string wire = f.rule.SerializeAsString();
      auto same = [&](const v1::IgnoreDifference& r) { return r.SerializeAsString() == wire; };
      if (std::any_of(rules.begin(), rules.end(), same)) continue;
      if (objects->ignore_differences().size() + static_cast<int>(rules.size()) >= kMaxRules) {
        ++past_bound;
        continue;
      }
      if (named.size() < kMaxNamed) named.push_back(f.what);
      rules.push_back(f.rule);
    }
    const std::string more = rules.size() > named.size()
                                 ? absl::StrCat(" and ", rules.size() - named.size(), " more")
                                 : "";
    if (!input.reads_controller_fields) {
      if (notes != nullptr && !rules.empty()) {
        notes->push_back(absl::StrCat(
            "controllers set the ", field, " of ", absl::StrJoin(named, ", "), more,
            "; this bundle was rendered before gitfleet left those to them, and every apply "
            "sets the manifest's: give the bundle ",
            IgnoreDifferenceFlags(rules), ", or add it again"));
      }
      return;
    }
    for (const v1::IgnoreDifference& rule : rules) {
      const std::string wire = rule.SerializeAsString();
      if (std::none_of(
              objects->ignore_differences().begin(), objects->ignore_differences().end(),
              [&](const v1::IgnoreDifference& r) { return r.SerializeAsString() == wire; })) {
        *objects->mutable_ignore_differences()->Add() = rule;
      }
    }
    if (notes != nullptr && !rules.empty()) {
      notes->push_back(absl::StrCat(
          "leaves the ", field, " of ", absl::StrJoin(named, ", "), more, " to ", why,
          ": an apply sets them only on a new object (", IgnoreDifferenceFlags(rules), ")",
          past_bound > 0 ? absl::StrCat("; ", past_bound, " more past the bound of ", kMaxRules,
                                        " rules are applied as the manifest says")
                         : ""));
    }
  };
  leave(replicas, "replicas", "the autoscaler that scales it, as Kubernetes advises");
  leave(ca_bundles, "CA bundle", "the controller that injects it");
}
}  // namespace

namespace {

// Argo CD's kubeVersion and apiVersions (of `section`, "helm" or "kustomize") for `placed`,
// in place of the bundle's --kube-version and --api-versions, as Argo CD's replace the
// destination cluster's. `files` are the overrides' files, which `sets` them.
absl::Status PlaceArgoCdCapabilities(const std::optional<std::string>& kube_version,
                                     const std::vector<std::string>& api_versions,
                                     const std::string& files, const char* sets,
                                     const char* section, RenderInput* placed) {
  if (kube_version) {
    if (*kube_version == kClusterKubeVersion || !CheckHelmCapabilities(*kube_version, {}).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(files, sets, section, ".kubeVersion \"", kube_version->substr(0, 80),
                       "\", which is not a Kubernetes version helm reads (1.29, v1.30.2, "
                       "1.28.3-gke.100)"));
    }
    placed->helm_capabilities.kube_version = *kube_version;
  }
  if (!api_versions.empty()) {
    for (const std::string& api : api_versions) {
      if (api == kClusterApiVersions || !CheckHelmCapabilities("", {api}).ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(files, sets, section, ".apiVersions \"", api.substr(0, 80),
                         "\", which is not an API version ([group/]version[/kind]: v1, apps/v1, "
                         "monitoring.coreos.com/v1/ServiceMonitor)"));
      }
    }
    placed->helm_capabilities.api_versions = api_versions;
  }
  return absl::OkStatus();
}

// Argo CD's chart fields (ArgoCdHelm) for `placed`: the value files of the chart's folder,
// checked there, the inline values, read as YAML first, and the release name unless the
// bundle's --release names one. `files` are the overrides' files, which `sets` them.
absl::Status PlaceArgoCdHelm(const RenderInput& input, const ArgoCdHelm& helm,
                             const std::string& files, const char* sets, RenderInput* placed) {
  // Value files are relative to the chart's folder, as Argo CD reads them from the
  // Application's path, and may be anywhere in the repository; one at a URL, or another
  // source's ($ref), is not read here.
  const std::string chart_folder =
      absl::StrCat(input.path.empty() ? "" : input.path + "/",
                   placed->helm_chart.empty() ? "" : placed->helm_chart + "/");
  // Where `file` (of `field`, "helm.valueFiles config" naming a file parameter) is, from the
  // chart's folder, its path as given (without "./"), and whether the repository holds it.
  struct Found {
    std::string at;
    std::string relative;
    bool found = false;
  };
  auto find = [&](const std::string& field, const std::string& file) -> absl::StatusOr<Found> {
    Found out;
    out.relative = file;
    while (absl::StartsWith(out.relative, "./")) out.relative = out.relative.substr(2);
    absl::StatusOr<std::string> at = HelmValuesPath(chart_folder, out.relative);
    if (!at.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(files, sets, field, ": ", at.status().message()));
    }
    out.at = *at;
    out.found = std::any_of(input.files.begin(), input.files.end(),
                            [&](const RepoFile& f) { return f.path == *at; });
    // The bundle's folder is read whole; elsewhere in the repository, asked for.
    const std::string folder = input.path.empty() ? "" : input.path + "/";
    if (!out.found && !absl::StartsWith(*at, folder) && input.read_files != nullptr) {
      absl::StatusOr<std::vector<RepoFile>> read = input.read_files({*at});
      if (!read.ok()) {
        return absl::Status(read.status().code(),
                            absl::StrCat(files, sets, field, " ", out.relative, " (", *at,
                                         "): ", read.status().message()));
      }
      out.found = !read->empty();
    }
    return out;
  };
  for (const std::string& file : helm.value_files) {
    if (absl::StrContains(file, "://") || absl::StartsWith(file, "$")) {
      return absl::InvalidArgumentError(absl::StrCat(
          files, sets, "helm.valueFiles ", RedactUrl(file.substr(0, 256)),
          ", which is not a file in the chart's folder (a URL, or another source's "
          "$ref): put the values in the repository, or in the bundle's --values-file"));
    }
    GF_ASSIGN_OR_RETURN(Found found, find("helm.valueFiles", file));
    if (!found.found && helm.ignore_missing_value_files) continue;
    if (!found.found) {
      return absl::InvalidArgumentError(absl::StrCat(
          files, sets, "helm.valueFiles ", found.relative, ", which is not in the repository (",
          found.at,
          ", from the chart's folder): Argo CD's build fails so too (ignoreMissingValueFiles: "
          "true passes over it)"));
    }
    placed->helm_values_files.push_back(found.relative);
  }
  // fileParameters: as value files are found (Argo CD resolves them so), never missing.
  for (const auto& [name, file] : helm.file_parameters) {
    if (absl::StrContains(file, "://")) {
      return absl::InvalidArgumentError(absl::StrCat(
          files, sets, "helm.fileParameters ", name, " from ", RedactUrl(file.substr(0, 256)),
          ", which is not a file of the repository: put the file in it"));
    }
    GF_ASSIGN_OR_RETURN(Found found, find(absl::StrCat("helm.fileParameters ", name), file));
    if (!found.found) {
      return absl::InvalidArgumentError(
          absl::StrCat(files, sets, "helm.fileParameters ", name, " from ", found.relative,
                       ", which is not in the repository (", found.at,
                       ", from the chart's folder): Argo CD's build fails so too"));
    }
    placed->helm_file_parameters.emplace_back(name, found.relative);
  }
  if (helm.values) {
    // Read as YAML first: helm would fail on it, naming a temporary file.
    GF_RETURN_IF_ERROR(
        LoadBoundedYaml(*helm.values, absl::StrCat(files, ": helm.values")).status());
    placed->argocd_helm_values = *helm.values;
  }
  if (helm.release_name && input.bundle_helm_release.empty()) {
    placed->helm_release = *helm.release_name;
  }
  placed->helm_skips = {helm.skip_crds, helm.skip_tests, helm.skip_schema_validation};
  if (helm.namespace_) {
    if (absl::Status valid = ValidateName("namespace", *helm.namespace_); !valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(files, sets, "helm.namespace: ", valid.message()));
    }
    placed->helm_release_namespace = *helm.namespace_;
  }
  return PlaceArgoCdCapabilities(helm.kube_version, helm.api_versions, files, sets, "helm", placed);
}

// Argo CD's parameter overrides in the bundle's folder (ReadArgoCdSource), for `placed`:
// its kustomization's images and its chart's parameters, as Argo CD applies them. One set
// for an engine that cannot take it fails the render: Argo CD would not render the folder
// so either, and leaving it out would deploy the images the write-back replaced.
absl::Status UseArgoCdSource(const RenderInput& input, const std::string& engine,
                             RenderInput* placed) {
  const std::string app = input.argocd_app.empty() ? input.bundle : input.argocd_app;
  absl::StatusOr<ArgoCdSource> read = ReadArgoCdSource(input.path, app, input.files);
  // A bundle from before renders as it did, whatever the files hold.
  if (!read.ok() && !input.reads_argocd_source) return absl::OkStatus();
  GF_RETURN_IF_ERROR(read.status());
  const ArgoCdSource& source = *read;
  // Another Application's write-back, and none for this bundle: rendered without it, the
  // bundle would deploy the images that write-back replaced. Which one it takes over is the
  // operator's to say.
  const std::string own =
      absl::StrCat(input.path.empty() ? "" : input.path + "/", ".argocd-source-", app, ".yaml");
  if (input.reads_argocd_source && input.argocd_app.empty() && !source.other_apps.empty() &&
      std::find(source.files.begin(), source.files.end(), own) == source.files.end()) {
    std::vector<std::string> others;
    for (const std::string& other : source.other_apps) {
      others.push_back(absl::StrCat(input.path.empty() ? "" : input.path + "/", ".argocd-source-",
                                    other, ".yaml"));
    }
    const bool one = source.other_apps.size() == 1;
    return absl::FailedPreconditionError(absl::StrCat(
        absl::StrJoin(others, " and "), one ? " holds" : " hold",
        " Argo CD's parameter overrides (the image tags its write-back set, say) for the "
        "Application",
        one ? " " : "s ", absl::StrJoin(source.other_apps, ", "), ", and this bundle, ",
        input.bundle, ", has no such file of its own: give it --argocd-app=",
        one ? source.other_apps.front() : "NAME",
        " to apply the overrides of the Application it takes over, or --argocd-app=", input.bundle,
        " to apply only ", kArgoCdSourceFile, "'s"));
  }
  if (source.files.empty()) return absl::OkStatus();
  const std::string files = absl::StrJoin(source.files, " and ");
  const char* sets = source.files.size() == 1 ? " sets " : " set ";
  const bool images = source.has_kustomize_images && !source.kustomize_images.empty();
  const bool parameters = source.has_helm_parameters && !source.helm_parameters.empty();
  ArgoCdKustomize kustomize = source.kustomize;
  std::vector<std::string> unread = source.unread;
  if (input.reads_argocd_kustomize && !input.reads_argocd_additions) {
    // Read since: a bundle from before gets no components or patches by an upgrade.
    if (!kustomize.components.empty()) unread.push_back("kustomize.components");
    if (!kustomize.patches.empty()) unread.push_back("kustomize.patches");
    if (kustomize.label_without_selector) unread.push_back("kustomize.labelWithoutSelector");
    kustomize.components.clear();
    kustomize.patches.clear();
    kustomize.label_without_selector = false;
    kustomize.label_include_templates = false;
  }
  if (input.reads_argocd_kustomize && !input.reads_argocd_template_options) {
    // Read since: a bundle from before does not see other capabilities by an upgrade.
    if (kustomize.kube_version) unread.push_back("kustomize.kubeVersion");
    if (!kustomize.api_versions.empty()) unread.push_back("kustomize.apiVersions");
    kustomize.kube_version.reset();
    kustomize.api_versions.clear();
  }
  const std::vector<std::string> kustomize_fields = kustomize.Fields();
  if (!input.reads_argocd_kustomize) {
    // A bundle from before: its objects are not renamed or relabelled by an upgrade.
    for (const std::string& field : kustomize_fields) unread.push_back("kustomize." + field);
  }
  ArgoCdHelm helm = source.helm;
  if (input.reads_argocd_helm && !input.reads_argocd_additions) {
    // Read since, with kustomize's components and patches.
    if (!helm.file_parameters.empty()) unread.push_back("helm.fileParameters");
    if (helm.skip_crds) unread.push_back("helm.skipCrds");
    helm.file_parameters.clear();
    helm.skip_crds = false;
  }
  if (input.reads_argocd_helm && !input.reads_argocd_template_options) {
    // Read since: a bundle from before keeps its namespace and what its chart sees.
    ArgoCdHelm later;
    later.namespace_ = helm.namespace_;
    later.kube_version = helm.kube_version;
    later.api_versions = helm.api_versions;
    later.skip_tests = helm.skip_tests;
    later.skip_schema_validation = helm.skip_schema_validation;
    for (const std::string& field : later.Fields()) unread.push_back("helm." + field);
    helm.namespace_.reset();
    helm.kube_version.reset();
    helm.api_versions.clear();
    helm.skip_tests = false;
    helm.skip_schema_validation = false;
  }
  const std::vector<std::string> helm_fields = helm.Fields();
  if (!input.reads_argocd_helm) {
    for (const std::string& field : helm_fields) unread.push_back("helm." + field);
  }
  if (!input.reads_argocd_source) {
    if (input.notes != nullptr && (images || parameters)) {
      input.notes->push_back(absl::StrCat(
          files, sets, images ? "kustomize.images" : "helm.parameters",
          " (Argo CD's parameter overrides); this bundle was rendered before gitfleet read "
          "them, and renders as it did: add the bundle again to have them applied"));
    }
    return absl::OkStatus();
  }
  if (input.read_paths != nullptr) {
    input.read_paths->insert(input.read_paths->end(), source.files.begin(), source.files.end());
  }
  auto elsewhere = [&](const char* field, const std::string& first, const char* how) {
    return absl::InvalidArgumentError(
        absl::StrCat(files, sets, field, " (", first, "), which Argo CD applies ", how, ", and ",
                     input.path.empty() ? "the repository root" : input.path, " renders with ",
                     engine, ": render it as Argo CD did, or take the field out"));
  };
  if (images) {
    if (engine != "kustomize") {
      return elsewhere("kustomize.images", source.kustomize_images.front(),
                       "to a kustomize build (kustomize edit set image)");
    }
    placed->kustomize_images = source.kustomize_images;
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat("sets the images ", ListNames(source.kustomize_images, 5),
                                          " as ", files,
                                          " asks (kustomize edit set image), as Argo CD does"));
    }
  }
  if (parameters) {
    if (engine != "helm") {
      return elsewhere("helm.parameters", source.helm_parameters.front().name,
                       "to a chart (helm template --set)");
    }
    placed->helm_parameters = source.helm_parameters;
    if (input.notes != nullptr) {
      std::vector<std::string> names;
      for (const auto& parameter : source.helm_parameters) names.push_back(parameter.name);
      input.notes->push_back(absl::StrCat("sets the chart's ", ListNames(names, 5), " as ", files,
                                          " asks (helm.parameters, over the bundle's values), "
                                          "as Argo CD does"));
    }
  }
  if (input.reads_argocd_kustomize && !kustomize_fields.empty()) {
    if (engine != "kustomize") {
      return elsewhere("kustomize fields", absl::StrJoin(kustomize_fields, ", "),
                       "to a kustomize build (kustomize edit)");
    }
    placed->argocd_kustomize = kustomize;
    GF_RETURN_IF_ERROR(PlaceArgoCdCapabilities(kustomize.kube_version, kustomize.api_versions,
                                               files, sets, "kustomize", placed));
    if (input.notes != nullptr) {
      std::vector<std::string> how;
      if (!kustomize.empty()) how.push_back("kustomize edit");
      if (kustomize.kube_version || !kustomize.api_versions.empty()) {
        how.push_back("what its helmCharts see of the cluster");
      }
      input.notes->push_back(
          absl::StrCat("sets the kustomization's ", absl::StrJoin(kustomize_fields, ", "), " as ",
                       files, " asks (", absl::StrJoin(how, "; "), "), as Argo CD does"));
    }
  }
  if (input.reads_argocd_helm && !helm_fields.empty()) {
    if (engine != "helm") {
      return elsewhere("chart fields", absl::StrJoin(helm_fields, ", "),
                       "to a chart (helm template)");
    }
    GF_RETURN_IF_ERROR(PlaceArgoCdHelm(input, helm, files, sets, placed));
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat("gives the chart ", absl::StrJoin(helm_fields, ", "),
                                          " as ", files, " asks, as Argo CD does",
                                          helm.release_name && !input.bundle_helm_release.empty()
                                              ? " (its releaseName aside: --release names one)"
                                              : ""));
    }
  }
  if (!unread.empty() && input.notes != nullptr) {
    input.notes->push_back(absl::StrCat(
        files, sets, ListNames(unread, 10),
        ", which gitfleet does not read (of Argo CD's parameter overrides it applies "
        "kustomize.images, namePrefix, nameSuffix, namespace, commonLabels, commonAnnotations, "
        "replicas, components, patches, kubeVersion and apiVersions, and helm.parameters, "
        "valueFiles, values, valuesObject, releaseName, fileParameters, skipCrds, namespace, "
        "kubeVersion, apiVersions, skipTests and skipSchemaValidation",
        input.reads_argocd_kustomize && input.reads_argocd_additions && input.reads_argocd_helm &&
                input.reads_argocd_template_options
            ? ""
            : "; all but images and parameters only for bundles added since gitfleet read "
              "them: add the bundle again to have them applied",
        "): the bundle's own flags do that work (--values, --values-file, --release, "
        "--include, --exclude)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ObjectSet> RenderBundlePath(Renderer& renderer, const RenderInput& input) {
  if ((!input.include.empty() || !input.exclude.empty()) &&
      std::string(renderer.engine()) != "plain") {
    return absl::InvalidArgumentError(absl::StrCat(
        "bundle ", input.bundle, ": --include and --exclude choose the files of a plain bundle; ",
        input.path.empty() ? "the repository root" : input.path, " renders with ",
        renderer.engine(), ", which reads the files its entry file names"));
  }
  absl::StatusOr<FleetYamlNamespace> fleet =
      ReadFleetYamlNamespace(input.path, input.files, input.reads_fleet_bundle_layout);
  if (!fleet.ok()) return fleet.status();
  // Fleet's overrideTargets: the bundle's clusters they select get it, the others nothing.
  if (fleet->override_targets_given && input.reads_fleet_override_targets) {
    fleet->MarkRead("overrideTargets");
    if (fleet->override_targets_from_targets) fleet->MarkRead("targets");
    if (!fleet->override_targets_error.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(fleet->file, ": ", fleet->override_targets_error));
    }
    if (input.values != nullptr) {
      absl::StatusOr<const FleetYamlNamespace::Target*> chosen = ChooseFleetTarget(
          fleet->override_targets, *input.values, input.read_values, "overrideTargets");
      if (!chosen.ok()) {
        return absl::Status(chosen.status().code(),
                            absl::StrCat(fleet->file, ": ", chosen.status().message()));
      }
      if (*chosen == nullptr) {
        return NotDeployedHere(absl::StrCat(fleet->file, ": its overrideTargets ",
                                            ListNames(fleet->override_target_names, 10),
                                            " select other clusters than this one"));
      }
    }
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat(
          "only the clusters ", fleet->file, "'s overrideTargets ",
          ListNames(fleet->override_target_names, 10),
          " select get it, as Fleet deploys it; the bundle's other clusters get nothing of it "
          "and keep what they run. A repository never widens a bundle: a cluster outside its "
          "--selector gets nothing, whatever they select"));
    }
  } else if (fleet->override_targets_given && input.notes != nullptr) {
    fleet->MarkRead("overrideTargets");
    input.notes->push_back(absl::StrCat(
        fleet->file,
        "'s overrideTargets choose the clusters Fleet deploys it to; this bundle was rendered "
        "before gitfleet read them, and goes to every cluster its --selector selects, as it "
        "did: add the bundle again to have them read, or narrow its --selector"));
  }
  if (input.reads_fleet_getter_charts) {
    fleet->ReadGetterCharts();
  } else if ((!fleet->git_chart_form.empty() || !fleet->chart_archive_form.empty()) &&
             input.notes != nullptr) {
    input.notes->push_back(absl::StrCat(
        fleet->file, " names the chart ", RedactUrl(fleet->helm_chart_field.substr(0, 256)),
        !fleet->chart_archive_form.empty()                     ? ", an archive,"
        : absl::StartsWith(fleet->git_chart_form.url, "git::") ? " in another Git repository"
                                                               : " as go-getter's forced getter",
        " in helm.chart; this bundle was rendered before gitfleet read that form of a chart, "
        "and renders as it did: add the bundle again to render that chart"));
  }
  if (!input.reads_fleet_bundle_layout && input.notes != nullptr) {
    if (const RepoFile* yml = FindFleetYaml(input.path, input.files);
        yml != nullptr && yml->path != fleet->file) {
      input.notes->push_back(absl::StrCat(
          yml->path,
          " is Rancher Fleet's bundle options under their other name; this bundle was rendered "
          "before gitfleet read it, and renders as it did (a namespace or folder it names "
          "would move or change its objects): rename it fleet.yaml, or add the bundle again, to "
          "have it read"));
    }
  }
  const std::string& fleet_yaml = fleet->file;
  RenderInput placed = input;
  // A chart in a folder inside the bundle's, which fleet.yaml names (Fleet's
  // `helm.chart: ./chart`), is the chart rendered, as Fleet renders it; the folder's other
  // files are not rendered, as in Fleet.
  const bool local_chart = std::string(renderer.engine()) == "helm" && !fleet->helm_chart.empty() &&
                           input.reads_fleet_bundle_layout;
  if (local_chart) {
    const std::string folder = input.path.empty() ? "" : input.path + "/";
    const std::string chart_yaml = absl::StrCat(folder, fleet->helm_chart, "/Chart.yaml");
    if (std::none_of(input.files.begin(), input.files.end(),
                     [&](const RepoFile& file) { return file.path == chart_yaml; })) {
      return absl::InvalidArgumentError(absl::StrCat(
          fleet_yaml, ": helm.chart names ", fleet->helm_chart, ", which holds no Chart.yaml in ",
          input.path.empty() ? "the repository root" : input.path));
    }
    // Fleet renders such a chart through the folder's kustomization (a post-render).
    const bool kustomization =
        std::any_of(input.files.begin(), input.files.end(), [&](const RepoFile& file) {
          return file.path == folder + "kustomization.yaml" ||
                 file.path == folder + "kustomization.yml" || file.path == folder + "Kustomization";
        });
    if (!input.reads_fleet_charts && (kustomization || !fleet->kustomize_dir.empty())) {
      return absl::InvalidArgumentError(absl::StrCat(
          fleet_yaml, ": helm.chart names the chart ", fleet->helm_chart, ", and ",
          kustomization ? "the folder has a kustomization"
                        : absl::StrCat("kustomize.dir names ", fleet->kustomize_dir),
          ": Fleet renders the chart through it (a kustomize post-render); this bundle was "
          "rendered before gitfleet did, and does not: add the bundle again to have it "
          "rendered so"));
    }
    placed.helm_chart = fleet->helm_chart;
    if (absl::StartsWith(fleet->renders_elsewhere, "helm.chart")) fleet->renders_elsewhere.clear();
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat("renders the chart in ", folder, fleet->helm_chart,
                                          ", which ", fleet_yaml,
                                          "'s helm.chart names, as Fleet renders it"));
    }
  } else if (std::string(renderer.engine()) == "helm" && !fleet->helm_chart.empty() &&
             input.notes != nullptr) {
    input.notes->push_back(absl::StrCat(
        fleet_yaml, " names the chart ", fleet->helm_chart,
        " in helm.chart; this bundle was rendered before gitfleet read it, and renders as it "
        "did: add the bundle again to render that chart"));
  }
  // A chart folder elsewhere in the repository, which fleet.yaml names (Fleet's
  // `helm.chart: ../../charts/web`: one chart, and a folder of values per environment), is
  // the chart rendered, read at the same commit, as Fleet renders it.
  const bool outside_chart = std::string(renderer.engine()) == "helm" &&
                             fleet->helm_chart.empty() && fleet->remote_chart.empty() &&
                             !fleet->helm_chart_outside.empty() && input.reads_fleet_outside_charts;
  if (outside_chart) {
    const std::string& named = fleet->helm_chart_outside;
    absl::StatusOr<std::string> folder =
        FleetChartFolderOutside(input.path, named, absl::StrCat(fleet_yaml, ": helm.chart"));
    if (!folder.ok()) return folder.status();
    placed.helm_chart_folder = *std::move(folder);
    if (absl::StartsWith(fleet->renders_elsewhere, "helm.chart")) fleet->renders_elsewhere.clear();
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat("renders the chart in ", placed.helm_chart_folder,
                                          ", which ", fleet_yaml, "'s helm.chart (", named,
                                          ") names, as Fleet renders it"));
    }
  } else if (!fleet->helm_chart_outside.empty() && !input.reads_fleet_outside_charts &&
             input.notes != nullptr) {
    input.notes->push_back(absl::StrCat(
        fleet_yaml, " names the chart ", fleet->helm_chart_outside,
        " outside the bundle's folder in helm.chart; this bundle was rendered before gitfleet "
        "read it, and renders its folder as it did: add the bundle again to render that chart"));
  }
  // A chart archive in the repository (`helm.chart: ./web-1.2.0.tgz`), unpacked as go-getter
  // unpacks it for Fleet.
  const bool archive_chart =
      std::string(renderer.engine()) == "helm" && !fleet->helm_chart_archive.empty();
  if (archive_chart) {
    const std::string& named = fleet->helm_chart_archive;
    std::optional<std::string> at = JoinInRepository(input.path, named);
    if (!at.has_value() || at->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": helm.chart names ", named,
                                                     ", which is outside the repository"));
    }
    placed.helm_chart_archive = *std::move(at);
    if (absl::StartsWith(fleet->renders_elsewhere, "helm.chart")) fleet->renders_elsewhere.clear();
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat("renders the chart archive ", placed.helm_chart_archive,
                                          ", which ", fleet_yaml,
                                          "'s helm.chart names, unpacked, as Fleet renders it"));
    }
  }
  // A chart fleet.yaml names in a chart repository, or by URL: fetched and rendered, as
  // Fleet renders it.
  const bool remote_chart = std::string(renderer.engine()) == "helm" && input.reads_fleet_charts &&
                            fleet->helm_chart.empty() &&
                            (!fleet->remote_chart.empty() || !fleet->remote_chart_error.empty()) &&
                            (input.reads_fleet_outside_charts || !GoGetterChart(*fleet));
  if (!input.reads_fleet_outside_charts && GoGetterChart(*fleet) && input.notes != nullptr) {
    input.notes->push_back(absl::StrCat(
        fleet_yaml, " names the chart ", RedactUrl(fleet->helm_chart_field.substr(0, 256)),
        " in helm.chart; this bundle was rendered before gitfleet fetched such charts, and "
        "renders its folder as it did: add the bundle again to render that chart"));
  }
  if (remote_chart) {
    if (!fleet->remote_chart_error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": ", fleet->remote_chart_error));
    }
    placed.remote_chart = fleet->remote_chart;
    if (absl::StartsWith(fleet->renders_elsewhere, "helm.chart")) fleet->renders_elsewhere.clear();
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat("renders the chart ", fleet->remote_chart.Describe(),
                                          ", which ", fleet_yaml,
                                          " names, as Fleet renders it (fetched by the control "
                                          "plane)"));
    }
  }
  // A chart goes through the kustomization kustomize.dir names (below), as Fleet renders it.
  const bool chart_folders = std::string(renderer.engine()) == "helm" && input.reads_fleet_charts &&
                             input.reads_fleet_helm && input.reads_fleet_targets;
  if (chart_folders && absl::StartsWith(fleet->renders_elsewhere, "kustomize.dir")) {
    fleet->renders_elsewhere =
        local_chart || remote_chart || outside_chart || archive_chart ? "" : fleet->chart_elsewhere;
  }
  // fleet.yaml's helm options, for the chart in the bundle's folder or the one helm.chart names
  // (Fleet's other charts, from elsewhere, are named below), and those its targetCustomizations
  // give the clusters they select.
  const bool chart_here =
      std::string(renderer.engine()) == "helm" && fleet->renders_elsewhere.empty();
  const bool helm_targets = chart_here && !fleet->helm_targets.empty() &&
                            (!fleet->helm_target_names.empty() || !fleet->targets.empty() ||
                             !fleet->chart_target_names.empty());
  const bool targets_native = helm_targets && input.reads_fleet_helm && input.reads_fleet_targets;
  if (chart_here &&
      (!fleet->helm_described.empty() || !fleet->helm_error.empty() || targets_native)) {
    if (!input.reads_fleet_helm) {
      if (input.notes != nullptr) {
        input.notes->push_back(absl::StrCat(
            fleet_yaml, " sets ",
            fleet->helm_described.empty() ? "helm options" : fleet->helm_described,
            "; this bundle was rendered before gitfleet read them, and renders as it did (other "
            "values or another release name would change or rename its objects): give the "
            "chart those values with the bundle's --values-file"));
      }
    } else if (!fleet->helm_error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": ", fleet->helm_error));
    } else if (targets_native && !fleet->helm_targets_error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": ", fleet->helm_targets_error));
    } else {
      // Merged and filled in for this cluster, as Fleet gives them: one file for helm.
      FleetHelmValues values{fleet->helm_values, {}, fleet->helm_preprocess};
      const std::string folder = input.path.empty() ? "" : input.path + "/";
      auto add_files = [&](const std::vector<std::string>& names,
                           const std::string& field) -> absl::Status {
        for (const std::string& name : names) {
          auto file = std::find_if(input.files.begin(), input.files.end(),
                                   [&](const RepoFile& f) { return f.path == folder + name; });
          if (file == input.files.end()) {
            return absl::InvalidArgumentError(
                absl::StrCat(fleet_yaml, ": ", field, " names ", name, ", which is not in ",
                             input.path.empty() ? "the repository root" : input.path));
          }
          values.files.emplace_back(file->path, file->content);
        }
        return absl::OkStatus();
      };
      GF_RETURN_IF_ERROR(add_files(fleet->helm_values_files, "helm.valuesFiles"));
      static const Values kNoValues;
      const Values& cluster = input.values != nullptr ? *input.values : kNoValues;
      const FleetYamlNamespace::Target* chosen_target = nullptr;
      if (targets_native) {
        // The cluster's target, as Fleet chooses it: its values over the folder's.
        absl::StatusOr<const FleetYamlNamespace::Target*> chosen =
            ChooseFleetTarget(fleet->helm_targets, cluster, input.read_values);
        if (!chosen.ok()) {
          return absl::Status(chosen.status().code(),
                              absl::StrCat(fleet_yaml, ": ", chosen.status().message()));
        }
        chosen_target = *chosen;
        if (const FleetYamlNamespace::Target* target = *chosen; target != nullptr) {
          if (target->do_not_deploy) return DoNotDeployError(fleet_yaml, *target);
          if (!target->helm_values.empty()) {
            values.files.emplace_back(
                absl::StrCat("targetCustomizations ", target->name, " helm.values"),
                target->helm_values);
          }
          GF_RETURN_IF_ERROR(
              add_files(target->helm_values_files,
                        absl::StrCat("targetCustomizations ", target->name, " helm.valuesFiles")));
          if (target->helm_preprocess_off) values.preprocess = false;
        }
      }
      absl::StatusOr<std::string> filled = values.For(cluster, input.read_values);
      if (!filled.ok()) {
        return absl::Status(filled.status().code(),
                            absl::StrCat(fleet_yaml, ": helm values: ", filled.status().message()));
      }
      placed.fleet_helm_values = *std::move(filled);
      placed.helm_release = fleet->helm_release;
      if (chosen_target != nullptr && input.reads_fleet_charts) {
        GF_RETURN_IF_ERROR(PlaceFleetTargetChart(fleet_yaml, *fleet, *chosen_target, &placed));
      }
      if (input.notes != nullptr && !fleet->helm_described.empty()) {
        input.notes->push_back(
            absl::StrCat("the chart takes ", fleet->helm_described, " from ", fleet_yaml,
                         ", as Fleet gives them (each values file merged over helm.values, ",
                         fleet->helm_preprocess ? "${ } templates filled in per cluster, " : "",
                         "the bundle's --values-file and --values after them)"));
      }
      if (input.notes != nullptr && targets_native && !fleet->helm_target_names.empty()) {
        input.notes->push_back(absl::StrCat(
            "the chart takes the helm values that ", fleet_yaml, "'s targetCustomizations ",
            ListNames(fleet->helm_target_names, 10),
            " give the clusters they select (the first that selects a cluster), merged over "
            "the folder's, as Fleet gives them"));
      }
      if (input.notes != nullptr && targets_native && !fleet->chart_target_names.empty()) {
        input.notes->push_back(absl::StrCat(
            input.reads_fleet_charts
                ? absl::StrCat("the chart takes the release name, chart and chart version that ",
                               fleet_yaml, "'s targetCustomizations ",
                               ListNames(fleet->chart_target_names, 10),
                               " give the clusters they select, over the folder's, as Fleet "
                               "merges them")
                : absl::StrCat(fleet_yaml, "'s targetCustomizations ",
                               ListNames(fleet->chart_target_names, 10),
                               " give some clusters another release name, chart or chart "
                               "version; this bundle was rendered before gitfleet read them, "
                               "and renders the folder's chart as it did: add the bundle again "
                               "to have them read")));
      }
      if (!fleet->helm_other_options) {
        fleet->MarkRead("helm");
      }
    }
  }
  if (helm_targets && input.reads_fleet_helm && !input.reads_fleet_targets &&
      !fleet->helm_target_names.empty() && input.notes != nullptr) {
    input.notes->push_back(absl::StrCat(
        fleet_yaml, "'s targetCustomizations ", ListNames(fleet->helm_target_names, 10),
        " give some clusters other helm values; this bundle was rendered before gitfleet read "
        "them, and renders as it did for every cluster (their values would change its "
        "objects there)"));
  }
  if (targets_native) {
    // What is left for a bundle per target: what changes more than a chart's values.
    fleet->targets = fleet->targets_beyond_helm;
    fleet->targets_not_described = fleet->targets_beyond_helm_not_described;
  }
  // (Only in Fleet's layout: without a fleet.yaml, a chart is a chart as it is.)
  if (chart_here && chart_folders &&
      FindFleetYaml(input.path, input.files, input.reads_fleet_bundle_layout) != nullptr) {
    GF_RETURN_IF_ERROR(PlaceFleetChart(input, fleet_yaml, &*fleet, &placed));
  }
  // Released as Fleet releases it (under its bundle's name), so that a chart Fleet
  // installed keeps its objects' names (`{{ .Release.Name }}-data`, a StatefulSet's claims)
  // when gitfleet takes it over, instead of new objects beside them.
  if (std::string(renderer.engine()) == "helm" && placed.helm_release.empty() &&
      input.reads_fleet_release_name && !input.fleet_gitrepo.empty() &&
      FindFleetYaml(input.path, input.files, input.reads_fleet_bundle_layout) != nullptr) {
    placed.helm_release = fleet->bundle_name.empty()
                              ? FleetBundleName(input.fleet_gitrepo, input.path)
                              : FleetBundleName(fleet->bundle_name, "");
    if (input.notes != nullptr) {
      input.notes->push_back(
          absl::StrCat("the chart is released as ", placed.helm_release, ", as Fleet releases it (",
                       fleet->bundle_name.empty()
                           ? absl::StrCat("its bundle's name in the GitRepo ", input.fleet_gitrepo,
                                          ", the source's --fleet-gitrepo or else its name")
                           : absl::StrCat(fleet_yaml, "'s name"),
                       "); helm.releaseName in ", fleet_yaml, " names another"));
    }
  }
  // The operator's word wins (the bundle's --release).
  if (std::string(renderer.engine()) == "helm" && !input.bundle_helm_release.empty()) {
    placed.helm_release = input.bundle_helm_release;
  }
  // A plain or kustomize bundle whose fleet.yaml gives clusters another folder or namespace
  // renders per cluster (the controller's renderer mode: `values` are the cluster's), each
  // what its target gives it, as Fleet renders it.
  const std::string engine = renderer.engine();
  const bool folder_targets = RendersFleetFolders(engine) && fleet->folder_targets();
  // Or whose targets leave some clusters out (doNotDeploy): those get nothing.
  const bool per_cluster =
      RendersFleetFolders(engine) &&
      fleet->per_target(input.reads_fleet_do_not_deploy, input.reads_fleet_override_targets) &&
      input.reads_fleet_target_folders && input.values != nullptr;
  const FleetYamlNamespace::Target* folder_target = nullptr;
  // The folder rendered: fleet.yaml's own kustomize.dir, unless the cluster's target gives
  // another, as Fleet renders it.
  const bool folders_read = RendersFleetFolders(engine) && input.reads_fleet_target_folders;
  std::string dir;
  std::string dir_from;
  if (folders_read) {
    if (!fleet->kustomize_dir_error.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(fleet_yaml, ": ", absl::StripPrefix(fleet->kustomize_dir_error, "its ")));
    }
    dir = fleet->kustomize_dir;
    dir_from = "kustomize.dir";
    if (absl::StartsWith(fleet->renders_elsewhere, "kustomize.dir")) {
      fleet->renders_elsewhere.clear();
    }
    fleet->MarkRead("kustomize");
  }
  if (per_cluster) {
    if (!fleet->helm_targets_error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": ", fleet->helm_targets_error));
    }
    absl::StatusOr<const FleetYamlNamespace::Target*> chosen =
        ChooseFleetTarget(fleet->helm_targets, *input.values, input.read_values);
    if (!chosen.ok()) {
      return absl::Status(chosen.status().code(),
                          absl::StrCat(fleet_yaml, ": ", chosen.status().message()));
    }
    folder_target = *chosen;
    if (folder_target != nullptr) {
      const FleetYamlNamespace::Target& target = *folder_target;
      if (target.do_not_deploy) return DoNotDeployError(fleet_yaml, target);
      if (!target.folder_error.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(fleet_yaml, ": targetCustomizations ",
                                                       target.name, ": ", target.folder_error));
      }
      // Fleet applies yaml overlays to a raw YAML bundle only: where the folder it builds
      // (the target's kustomize.dir, fleet.yaml's, or the bundle's own) has a
      // kustomization.yaml, it builds that and leaves the overlays unread.
      const std::string built = target.kustomize_dir.empty() ? dir : target.kustomize_dir;
      const std::string kustomization =
          absl::StrCat(input.path.empty() ? "" : input.path + "/", built.empty() ? "" : built + "/",
                       "kustomization.yaml");
      const bool builds =
          std::any_of(input.files.begin(), input.files.end(),
                      [&](const RepoFile& file) { return file.path == kustomization; });
      if (target.overlays && builds) {
        if (input.notes != nullptr) {
          input.notes->push_back(absl::StrCat(
              fleet_yaml, ": targetCustomizations ", target.name, "'s yaml overlays (",
              absl::StrJoin(target.overlay_names, ", "), ") are not applied: its clusters build ",
              kustomization,
              ", and Fleet applies yaml overlays to raw YAML folders only (make them kustomize "
              "patches to change what those clusters get)"));
        }
      } else if (target.overlays && engine != "plain") {
        return absl::InvalidArgumentError(absl::StrCat(
            fleet_yaml, ": targetCustomizations ", target.name,
            " gives this cluster yaml overlays, which Fleet applies to plain YAML folders, and "
            "this folder renders with ",
            engine,
            ": make the overlay a kustomize overlay and name its folder in the target's "
            "kustomize.dir"));
      } else {
        placed.fleet_overlays = target.overlay_names;
      }
      if (!target.kustomize_dir.empty()) {
        dir = target.kustomize_dir;
        dir_from = absl::StrCat("targetCustomizations ", target.name, "'s kustomize.dir");
      }
      if (!target.ns.empty()) {
        fleet->ns = target.ns;
        fleet->forced = target.ns_forced;
        fleet->origin = absl::StrCat(fleet_yaml, ": targetCustomizations ", target.name, " ",
                                     target.ns_forced ? "namespace" : "defaultNamespace");
      }
    }
    // No bundle per target is needed: this one renders what each target gives.
    fleet->targets.clear();
    fleet->targets_not_described = 0;
    fleet->target_folders.clear();
    if (input.notes != nullptr && !fleet->do_not_deploy_target_names.empty()) {
      input.notes->push_back(absl::StrCat(
          "the clusters ", fleet_yaml, "'s targetCustomizations ",
          ListNames(fleet->do_not_deploy_target_names, 10),
          " select (the first that selects them) get nothing of it (doNotDeploy), as in Fleet; "
          "what they already run of it they keep"));
    }
    if (input.notes != nullptr && folder_targets) {
      input.notes->push_back(absl::StrCat(
          "each cluster renders what ", fleet_yaml, "'s targetCustomizations ",
          ListNames(fleet->folder_target_names, 10),
          " give it (another folder, a namespace, yaml overlays; the first that selects it), as "
          "Fleet renders "
          "it; a cluster none selects renders ",
          input.path.empty() ? "the repository root" : input.path,
          fleet->kustomize_dir.empty()
              ? " as it is"
              : absl::StrCat("/", fleet->kustomize_dir, " (its kustomize.dir)")));
    }
  } else if (folder_targets && !input.reads_fleet_target_folders && input.notes != nullptr) {
    input.notes->push_back(absl::StrCat(
        fleet_yaml, "'s targetCustomizations ", ListNames(fleet->folder_target_names, 10),
        " give some clusters another folder or namespace; this bundle was rendered before "
        "gitfleet read them, and renders ",
        input.path.empty() ? "the repository root" : input.path,
        " as it is for every cluster (rendering theirs would change its objects there)"));
  }
  if (!dir.empty()) {
    if (!placed.fleet_overlays.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          fleet_yaml, ": targetCustomizations ", folder_target->name,
          " gives this cluster yaml overlays, and ", dir_from, " names another folder (", dir,
          "), which gitfleet does not combine: give the overlays' result its own folder"));
    }
    placed.path = input.path.empty() ? dir : input.path + "/" + dir;
    const std::string prefix = placed.path + "/";
    if (std::none_of(input.files.begin(), input.files.end(),
                     [&](const RepoFile& file) { return absl::StartsWith(file.path, prefix); })) {
      return absl::InvalidArgumentError(absl::StrCat(
          fleet_yaml, ": ", dir_from, " names ", dir, ", which is no folder of files in ",
          input.path.empty() ? "the repository root" : input.path));
    }
    if (input.notes != nullptr && folder_target == nullptr) {
      input.notes->push_back(absl::StrCat("renders ", placed.path, ", the folder ", fleet_yaml,
                                          "'s kustomize.dir names, as Fleet renders it"));
    }
  }
  if (input.reads_fleet_depends_on && !fleet->depends_on_unread) {
    fleet->MarkRead("dependsOn");
  }
  if (input.reads_fleet_depends_on && !fleet->depends_on.empty() && input.notes != nullptr) {
    std::vector<std::string> waited;
    for (const std::string& declared : fleet->depends_on) {
      absl::string_view selector = declared;
      waited.push_back(absl::ConsumePrefix(&selector, kFleetSelectorPrefix)
                           ? absl::StrCat("the bundles whose fleet.yaml labels match \"", selector,
                                          "\" (the team's own)")
                           : absl::StrCat("bundle ", declared));
    }
    input.notes->push_back(absl::StrCat(
        "on each cluster, waits for ", absl::StrJoin(waited, ", "),
        " to be applied and Healthy there, as ", fleet_yaml,
        "'s dependsOn asks (a name is a bundle's, the name a folder's fleet.yaml gives it, or "
        "Fleet's name for a folder of the same source: the GitRepo's name, a dash, the "
        "folder's path with dashes)"));
  }
  if (!fleet->unread.empty() && input.notes != nullptr) {
    input.notes->push_back(
        absl::StrCat(fleet_yaml, " sets ", absl::StrJoin(fleet->unread, ", "),
                     ", which gitfleet does not read: the bundle's own flags do that work (--path, "
                     "--values, --cluster-values, --depends-on, --partition, --prune, --self-heal, "
                     "--service-account; bundle suspend)"));
  }
  // One bundle renders one thing for every cluster it targets; Fleet's targets render
  // something else for some of them.
  std::string per_target;
  if (!fleet->targets.empty()) {
    per_target =
        absl::StrCat("a bundle per target does their work: ", absl::StrJoin(fleet->targets, "; "),
                     fleet->targets_not_described > 0
                         ? absl::StrCat("; and ", fleet->targets_not_described, " more")
                         : "");
    if (input.notes != nullptr) {
      input.notes->push_back(
          absl::StrCat(fleet_yaml,
                       "'s targetCustomizations change what some clusters get, which one "
                       "gitfleet bundle does not: it renders ",
                       input.path.empty() ? "the repository root" : input.path,
                       " as it is for every cluster it targets; ", per_target));
    }
  }
  // Where the repository says objects go is not used for a bundle placed before gitfleet
  // read it: moving them at an upgrade would prune them where they are.
  auto not_used = [&](const std::string& ns, const std::string& origin) {
    if (input.notes == nullptr) return;
    input.notes->push_back(absl::StrCat(
        origin, " says namespaced objects that name none go to ", ns,
        "; this bundle was placed before gitfleet read that, and its objects stay where they "
        "are: set --namespace=",
        ns, " to move them there, or --namespace=default to keep them where they are"));
  };
  // The operator's --namespace wins over what the folder declares.
  if (!input.target_namespace.empty()) fleet->ns.clear();
  if (!input.declared_namespace && !fleet->ns.empty()) {
    not_used(fleet->ns, fleet->origin);
    fleet->ns.clear();
  }
  if (!fleet->ns.empty()) placed.target_namespace = fleet->ns;  // helm's release namespace
  // Fleet's overlays/ folder is no manifests of a plain folder with a fleet.yaml.
  placed.fleet_overlays_folder =
      engine == "plain" && input.reads_fleet_target_folders &&
      std::any_of(input.files.begin(), input.files.end(),
                  [&](const RepoFile& file) { return file.path == fleet_yaml; });
  GF_RETURN_IF_ERROR(UseArgoCdSource(input, engine, &placed));
  absl::StatusOr<ObjectSet> objects = renderer.Render(placed);
  if (objects.ok()) GF_RETURN_IF_ERROR(UseFleetDiff(input, *fleet, &*objects));
  // The target chosen, or the folder rendered, depends on fleet.yaml too.
  if ((per_cluster || !dir.empty()) && input.read_paths != nullptr) {
    input.read_paths->push_back(fleet_yaml);
  }
  if (!objects.ok() && per_cluster && folder_target == nullptr) {
    return absl::Status(
        objects.status().code(),
        absl::StrCat(objects.status().message(), " (no targetCustomizations of ", fleet_yaml,
                     " selects this cluster, so it renders ",
                     placed.path.empty() ? "the repository root" : placed.path,
                     dir.empty() ? " as it is" : "",
                     ", as Fleet would: give the cluster the "
                     "labels a target selects, or leave it out of the bundle's --selector)"));
  }
  if (!objects.ok() && !fleet->renders_elsewhere.empty()) {
    return absl::Status(
        objects.status().code(),
        absl::StrCat(objects.status().message(), " (", fleet_yaml, " sets ",
                     fleet->renders_elsewhere,
                     ": Fleet renders that, gitfleet renders the bundle's --path as it is; point "
                     "--path there, or make the chart a bundle of its own)"));
  }
  if (!objects.ok() && !fleet->target_folders.empty()) {
    // Fleet builds each target's folder; this folder as a whole often is no build at all
    // (kustomize: the same object from base and from every overlay).
    return absl::Status(
        objects.status().code(),
        absl::StrCat(objects.status().message(), " (", fleet_yaml, "'s targetCustomizations build ",
                     absl::StrJoin(fleet->target_folders, ", "),
                     " for their clusters: Fleet renders those, gitfleet renders the bundle's "
                     "--path as it is; ",
                     per_target, ")"));
  }
  if (objects.ok() && !input.declared_namespace && !objects->default_namespace().empty()) {
    not_used(objects->default_namespace(), "the Tanka environment");
    objects->set_default_namespace("");
  }
  if (!objects.ok()) return objects;
  if (fleet->ns.empty()) {
    LeaveFieldsToControllers(input, &*objects);
    return objects;
  }
  if (!objects->default_namespace().empty() && objects->default_namespace() != fleet->ns) {
    return absl::InvalidArgumentError(absl::StrCat(
        fleet->origin, " says ", fleet->ns, ", and the render says its objects go to ",
        objects->default_namespace(), "; which is meant is unclear: set the bundle's --namespace"));
  }
  objects->set_default_namespace(fleet->ns);
  std::vector<std::string> moved;
  if (fleet->forced) {
    ObjectSet forced;
    forced.CopyDeclarationsFrom(*objects);
    for (const auto& [key, object] : objects->objects()) {
      const std::string& ns = object->key().namespace_();
      if (ns.empty() || ns == fleet->ns) {
        GF_RETURN_IF_ERROR(forced.Add(object));
        continue;
      }
      YAML::Node node;
      try {
        node = YAML::Load(object->yaml());
        node["metadata"]["namespace"] = fleet->ns;
      } catch (const YAML::Exception& e) {
        return absl::InternalError(absl::StrCat(KeyDisplay(object->key()), ": cannot move it to ",
                                                fleet->ns, ": ", e.what()));
      }
      absl::StatusOr<std::string> yaml = EmitBlockYaml(node);
      if (!yaml.ok()) return yaml.status();
      absl::StatusOr<v1::ManifestObject> rewritten = MakeObject(*yaml, KeyDisplay(object->key()));
      if (!rewritten.ok()) return rewritten.status();
      if (moved.size() < 3) moved.push_back(KeyDisplay(object->key()));
      // Two objects that differ only by namespace now collide: AlreadyExists names them.
      GF_RETURN_IF_ERROR(forced.Add(*std::move(rewritten), KeyDisplay(object->key())));
    }
    *objects = std::move(forced);
  }
  if (input.notes != nullptr) {
    input.notes->push_back(absl::StrCat(
        fleet->forced ? "every namespaced object goes to "
                      : "namespaced objects that name no namespace go to ",
        fleet->ns, " (", fleet->origin, "), unless the bundle has --namespace",
        moved.empty() ? "" : absl::StrCat("; moved there: ", absl::StrJoin(moved, ", "))));
  }
  // After the move: an autoscaler moved names what it scales in its new namespace.
  LeaveFieldsToControllers(input, &*objects);
  return objects;
}

NonManifests::NonManifests(const std::string& path, const std::vector<RepoFile>& files)
    : prefix_(path.empty() ? "" : path + "/") {
  for (const RepoFile& file : files) {
    if (!absl::StartsWith(file.path, prefix_)) continue;
    std::string relative = file.path.substr(prefix_.size());
    if (relative == "Chart.yaml") {
      charts_.push_back("");
    } else if (absl::EndsWith(relative, "/Chart.yaml")) {
      charts_.push_back(relative.substr(0, relative.size() - sizeof("/Chart.yaml") + 1));
    }
    const size_t slash = relative.rfind('/');
    if (slash != std::string::npos &&
        IsFleetYamlName(absl::string_view(relative).substr(slash + 1))) {
      fleet_bundles_.push_back(relative.substr(0, slash));
    }
  }
  // Top-most first, so a file in nested bundles is told by the outer one.
  std::sort(fleet_bundles_.begin(), fleet_bundles_.end());
}

std::string NonManifests::FleetBundleOf(const std::string& repo_path) const {
  if (!absl::StartsWith(repo_path, prefix_)) return "";
  const absl::string_view relative = absl::string_view(repo_path).substr(prefix_.size());
  for (const std::string& folder : fleet_bundles_) {
    if (absl::StartsWith(relative, folder + "/")) return prefix_ + folder;
  }
  return "";
}

std::string NonManifests::Why(const std::string& repo_path) const {
  if (!absl::StartsWith(repo_path, prefix_)) return "";
  std::string relative = repo_path.substr(prefix_.size());
  std::vector<absl::string_view> parts = absl::StrSplit(relative, '/');
  for (absl::string_view part : parts) {
    if (absl::StartsWith(part, ".")) return "a dotfile";
  }
  for (const std::string& chart : charts_) {
    if (chart.empty() || absl::StartsWith(relative, chart + "/")) {
      return absl::StrCat("part of the helm chart at ", prefix_, chart.empty() ? "" : chart,
                          " (a bundle of its own, engine helm)");
    }
  }
  absl::string_view name = parts.back();
  if (IsFleetYamlName(name)) {
    return prefix_.size() + name.size() == repo_path.size()
               ? "Rancher Fleet's bundle options (gitfleet reads its namespace and "
                 "defaultNamespace)"
               : "Rancher Fleet's bundle options (of another bundle's folder)";
  }
  if (name == "kustomization.yaml" || name == "kustomization.yml" || name == "Kustomization") {
    return "a kustomization, not a manifest";
  }
  // CI settings Flux leaves out of every repository by default (those not dotfiles).
  for (const char* ci :
       {"appveyor.yml", "cloudbuild.yaml", "codeship-services.yml", "codeship-steps.yml"}) {
    if (name == ci) return "a CI configuration (Flux leaves it out too)";
  }
  return "";
}

ToolOptions EngineOptions::Tool(const std::string& engine) const {
  ToolOptions tool;
  auto binary = binaries.find(engine);
  if (binary != binaries.end()) tool.binary = binary->second;
  tool.scratch_dir = scratch_dir;
  tool.timeout = timeout;
  tool.limits = limits;
  tool.allow_network = allow_network;
  tool.load_restrictions_none = engine == "kustomize" && kustomize_load_restrictions_none;
  if (engine == "kustomize") {
    auto helm = binaries.find("helm");
    tool.helm_binary = helm != binaries.end() && !helm->second.empty() ? helm->second : FindHelm();
    tool.chart_fetcher = chart_fetcher;
    tool.remote_bases = remote_bases;
  }
  return tool;
}

std::string FindHelm() {
  for (const char* candidate : {"/usr/local/bin/helm", "/usr/bin/helm"}) {
    if (access(candidate, X_OK) == 0) return candidate;
  }
  return "";
}

absl::Status ReadFilesAbove(const RendererFactory& factory, GitRepository& repo,
                            const std::string& commit, const std::string& path,
                            std::vector<RepoFile>* files) {
  std::vector<std::string> above = factory.FilesAbove(path);
  if (above.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<RepoFile>> read = repo.ReadFiles(commit, above);
  if (!read.ok()) return read.status();
  for (RepoFile& file : *read) files->push_back(std::move(file));
  return absl::OkStatus();
}

bool RegisterRendererFactory(std::unique_ptr<RendererFactory> factory) {
  Registry& registry = TheRegistry();
  MutexLock lock(&registry.mu);
  std::string name = factory->name();
  if (!registry.factories.emplace(name, std::move(factory)).second) {
    GF_LOG(ERROR) << "two render engines are registered as \"" << name << "\"";
    std::abort();
  }
  return true;
}

const RendererFactory* FindRendererFactory(const std::string& name) {
  Registry& registry = TheRegistry();
  MutexLock lock(&registry.mu);
  auto it = registry.factories.find(name);
  return it == registry.factories.end() ? nullptr : it->second.get();
}

std::vector<std::string> RendererNames() {
  Registry& registry = TheRegistry();
  MutexLock lock(&registry.mu);
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry.factories) names.push_back(name);
  return names;
}

std::string DetectEngine(const std::string& path, const std::vector<RepoFile>& files,
                         bool fleet_layout, bool fleet_charts, bool fleet_outside_charts,
                         bool fleet_getter_charts) {
  if (fleet_layout && FindRendererFactory("helm") != nullptr &&
      FindFleetYaml(path, files) != nullptr) {
    // Fleet renders a folder with a Chart.yaml as that chart, and post-renders it through a
    // kustomization beside it (which would make it a kustomize folder otherwise).
    const std::string chart_yaml = path.empty() ? "Chart.yaml" : path + "/Chart.yaml";
    if (fleet_charts && std::any_of(files.begin(), files.end(), [&](const RepoFile& file) {
          return file.path == chart_yaml;
        })) {
      return "helm";
    }
    absl::StatusOr<FleetYamlNamespace> fleet = ReadFleetYamlNamespace(path, files);
    if (fleet.ok() && fleet_getter_charts) fleet->ReadGetterCharts();
    // So is one whose fleet.yaml names a chart archive in the repository.
    if (fleet_charts && fleet.ok() && !fleet->helm_chart_archive.empty()) return "helm";
    // So is one whose fleet.yaml names a chart in a chart repository, or by URL.
    if (fleet_charts && fleet.ok() && fleet->helm_chart.empty() &&
        (!fleet->remote_chart.empty() || !fleet->remote_chart_error.empty()) &&
        (fleet_outside_charts || !GoGetterChart(*fleet))) {
      return "helm";
    }
    // And one whose fleet.yaml names a chart folder outside it (the chart is read, and its
    // Chart.yaml looked for, when it renders).
    if (fleet_outside_charts && fleet.ok() && fleet->helm_chart.empty() &&
        fleet->remote_chart.empty() && !fleet->helm_chart_outside.empty()) {
      return "helm";
    }
    if (fleet.ok() && !fleet->helm_chart.empty()) {
      const std::string chart_yaml =
          absl::StrCat(path.empty() ? "" : path + "/", fleet->helm_chart, "/Chart.yaml");
      if (std::any_of(files.begin(), files.end(),
                      [&](const RepoFile& file) { return file.path == chart_yaml; })) {
        return "helm";
      }
    }
  }
  std::vector<const RendererFactory*> factories;
  {
    Registry& registry = TheRegistry();
    MutexLock lock(&registry.mu);
    for (const auto& [name, factory] : registry.factories) factories.push_back(factory.get());
  }
  std::stable_sort(factories.begin(), factories.end(),
                   [](const RendererFactory* a, const RendererFactory* b) {
                     return a->detect_order() < b->detect_order();
                   });
  for (const RendererFactory* factory : factories) {
    if (factory->Detects(path, files)) return factory->name();
  }
  return "plain";
}

bool IsLfsPointer(absl::string_view content) {
  // The spec's first line, and its size bound: a pointer is under 1024 bytes.
  return content.size() < 1024 &&
         (absl::StartsWith(content, "version https://git-lfs.github.com/spec/v1\n") ||
          absl::StartsWith(content, "version https://hawser.github.com/spec/v1\n"));
}

std::string LfsPointerHint(const std::vector<RepoFile>& files, absl::string_view path) {
  std::vector<std::string> pointers;
  const std::string prefix = path.empty() ? "" : absl::StrCat(path, "/");
  for (const RepoFile& file : files) {
    if (absl::StartsWith(file.path, prefix) && IsLfsPointer(file.content)) {
      pointers.push_back(file.path);
    }
  }
  if (pointers.empty()) return "";
  return absl::StrCat(" (", ListNames(pointers, 3), pointers.size() == 1 ? " is a" : " are",
                      " Git LFS pointer", pointers.size() == 1 ? "" : "s",
                      ": give the source --lfs to read files kept in Git LFS)");
}

std::string SubmoduleHint(const std::vector<RepoFile>& files, absl::string_view how) {
  const bool has_submodules = std::any_of(
      files.begin(), files.end(), [](const RepoFile& file) { return file.path == ".gitmodules"; });
  if (!has_submodules) return "";
  return absl::StrCat(" (the repository has submodules, named in .gitmodules, which ", how, ")");
}

absl::Status CheckEngineName(const std::string& engine) {
  if (FindRendererFactory(engine) != nullptr) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("engine \"", engine, "\" is not one of ",
                                                 absl::StrJoin(RendererNames(), ", "),
                                                 " (or empty to detect)"));
}

Renderers::Renderers(const EngineOptions& options) {
  for (const std::string& name : RendererNames()) {
    renderers_[name] = FindRendererFactory(name)->Create(options);
  }
}

Renderer* Renderers::Find(const std::string& engine) const {
  auto it = renderers_.find(engine);
  return it == renderers_.end() ? nullptr : it->second.get();
}

}  // namespace gitfleet
