#include "controlplane/render/kustomize_renderer.h"

#include <errno.h>
#include <fnmatch.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/manifest/yaml.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "controlplane/render/argocd_source.h"
#include "controlplane/render/chart_fetcher.h"
#include "controlplane/render/checkout.h"
#include "controlplane/render/file_patterns.h"
#include "controlplane/render/remote_bases.h"
#include "controlplane/source/git_credentials.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

constexpr size_t kMaxErrorBytes = 4096;

bool IsKustomizationFile(absl::string_view path) {
  size_t slash = path.rfind('/');
  absl::string_view name = slash == absl::string_view::npos ? path : path.substr(slash + 1);
  return name == "kustomization.yaml" || name == "kustomization.yml" || name == "Kustomization";
}

// Joins `relative` onto `dir` within the repository; false when it leaves the repository.
bool ResolveInRepository(const std::string& dir, const std::string& relative, std::string* out) {
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(dir + "/" + relative, '/', absl::SkipEmpty())) {
    if (p == ".") continue;
    if (p == "..") {
      if (parts.empty()) return false;
      parts.pop_back();
      continue;
    }
    parts.emplace_back(p);
  }
  *out = absl::StrJoin(parts, "/");
  return true;
}

// Every path a kustomization names, with the field it came from.
void CollectReferencesUnchecked(const YAML::Node& doc,
                                std::vector<std::pair<std::string, std::string>>* out) {
  auto add_list = [&](const char* field) {
    const YAML::Node list = doc[field];
    if (!list || !list.IsSequence()) return;
    for (const YAML::Node& item : list) {
      if (item.IsScalar()) out->push_back({field, item.Scalar()});
      if (item.IsMap() && item["path"] && item["path"].IsScalar()) {
        out->push_back({field, item["path"].Scalar()});
      }
    }
  };
  for (const char* field : {"resources", "bases", "components", "crds", "patchesStrategicMerge",
                            "patches", "patchesJson6902", "replacements", "transformers",
                            "generators", "validators", "configurations"}) {
    add_list(field);
  }
  for (const char* generator : {"configMapGenerator", "secretGenerator"}) {
    const YAML::Node list = doc[generator];
    if (!list || !list.IsSequence()) continue;
    for (const YAML::Node& item : list) {
      if (!item.IsMap()) continue;  // subscripting anything else throws
      for (const char* field : {"files", "envs"}) {
        if (!item[field] || !item[field].IsSequence()) continue;
        for (const YAML::Node& file : item[field]) {
          if (!file.IsScalar()) continue;
          // "key=path" names the key separately.
          std::string value = file.Scalar();
          size_t eq = value.find('=');
          out->push_back({generator, eq == std::string::npos ? value : value.substr(eq + 1)});
        }
      }
      if (item["env"] && item["env"].IsScalar()) out->push_back({generator, item["env"].Scalar()});
    }
  }
  if (doc["openapi"] && doc["openapi"].IsMap() && doc["openapi"]["path"] &&
      doc["openapi"]["path"].IsScalar()) {
    out->push_back({"openapi", doc["openapi"]["path"].Scalar()});
  }
}

// The same, never throwing: yaml-cpp throws on a subscript of the wrong node type, and a
// repository's file must never take the control plane down (found by
// tests/fuzz:kustomization_fuzzer). False when the file was not a kustomization we can read.
bool CollectReferences(const YAML::Node& doc,
                       std::vector<std::pair<std::string, std::string>>* out) {
  try {
    CollectReferencesUnchecked(doc, out);
    return true;
  } catch (const YAML::Exception&) {
    return false;
  }
}

// `file` read as a kustomization: its mapping, or nullopt when it is too big, not YAML or
// no mapping (kustomize, or CheckKustomizeReferences, says what is wrong).
std::optional<YAML::Node> KustomizationMap(const RepoFile& file) {
  if (!CheckYamlBounds(file.content, file.path).ok()) return std::nullopt;
  try {
    YAML::Node doc = YAML::Load(file.content);
    if (doc.IsMap()) return doc;
  } catch (const YAML::Exception&) {
  }
  return std::nullopt;
}

// The kustomization file of `dir` (of kustomize's three names, the last found; kustomize
// itself refuses a folder with two), or null.
const RepoFile* KustomizationIn(const std::map<std::string, const RepoFile*>& files,
                                const std::string& dir) {
  const RepoFile* kustomization = nullptr;
  for (const char* name : {"kustomization.yaml", "kustomization.yml", "Kustomization"}) {
    auto it = files.find(dir.empty() ? name : dir + "/" + name);
    if (it != files.end()) kustomization = it->second;
  }
  return kustomization;
}

// The repository paths a kustomization's helmCharts name: each chart's valuesFile and
// additionalValuesFiles, and helmGlobals.chartHome. Entries of another type name none.
std::vector<std::string> HelmChartsFiles(const YAML::Node& doc) {
  std::vector<std::string> out;
  auto scalar = [](const YAML::Node& node) {
    return node && node.IsScalar() && !node.Scalar().empty();
  };
  try {
    if (const YAML::Node globals = doc["helmGlobals"]; globals && globals.IsMap()) {
      if (scalar(globals["chartHome"])) out.push_back(globals["chartHome"].Scalar());
    }
    const YAML::Node charts = doc["helmCharts"];
    if (!charts || !charts.IsSequence()) return out;
    for (const YAML::Node& chart : charts) {
      if (!chart.IsMap()) continue;
      if (scalar(chart["valuesFile"])) out.push_back(chart["valuesFile"].Scalar());
      const YAML::Node more = chart["additionalValuesFiles"];
      if (!more || !more.IsSequence()) continue;
      for (const YAML::Node& file : more) {
        if (scalar(file)) out.push_back(file.Scalar());
      }
    }
  } catch (const YAML::Exception&) {
    // A node of the wrong type: kustomize reports it.
  }
  return out;
}

// The directories kustomize visits from `dir` (each kustomization's whole directory) and
// the files they reference elsewhere: everything a render can depend on.
// *remote, when given, is set when one of them names a remote base or file.
void KustomizeClosure(const std::map<std::string, const RepoFile*>& files, const std::string& dir,
                      std::set<std::string>* visited, std::set<std::string>* read,
                      bool* remote = nullptr) {
  if (!visited->insert(dir).second) return;
  read->insert(dir);
  const RepoFile* kustomization = KustomizationIn(files, dir);
  if (kustomization == nullptr) return;
  const std::optional<YAML::Node> doc = KustomizationMap(*kustomization);
  if (!doc.has_value()) return;
  std::vector<std::pair<std::string, std::string>> references;
  if (!CollectReferences(*doc, &references)) return;  // CheckKustomizeReferences reports it
  for (const auto& [field, reference] : references) {
    if (remote != nullptr && LooksRemote(reference)) *remote = true;
    std::string resolved;
    if (!ResolveInRepository(dir, reference, &resolved)) continue;
    std::string prefix = resolved + "/";
    auto it = files.lower_bound(prefix);
    if (it != files.end() && absl::StartsWith(it->first, prefix)) {
      KustomizeClosure(files, resolved, visited, read, remote);
    } else {
      read->insert(resolved);
    }
  }
  // What its helmCharts read: values files and the chart home, which may lie outside the
  // folder when the build has no load restriction (FetchKustomizeCharts checks them).
  for (const std::string& reference : HelmChartsFiles(*doc)) {
    std::string resolved;
    if (!LooksRemote(reference) && ResolveInRepository(dir, reference, &resolved)) {
      read->insert(resolved);
    }
  }
}

bool HasKustomization(const std::string& path, const std::vector<RepoFile>& files) {
  std::string prefix = path.empty() ? "" : path + "/";
  for (const RepoFile& file : files) {
    if (absl::StartsWith(file.path, prefix) && IsKustomizationFile(file.path) &&
        file.path.find('/', prefix.size()) == std::string::npos) {
      return true;
    }
  }
  return false;
}

// Flux's generated kustomization for `path`: every manifest file under it, except those
// under a subdirectory that has a kustomization (that directory is listed instead, the
// top-most one), files that are never manifests (NonManifests, each noted) and, when
// `reads_sourceignore`, what Flux's .sourceignore files leave out of the repository
// (source-controller does, before kustomize-controller generates it; each noted).
absl::StatusOr<std::string> GenerateKustomization(const std::string& path,
                                                  const std::vector<RepoFile>& files,
                                                  bool reads_sourceignore,
                                                  std::vector<std::string>* kustomize_dirs,
                                                  std::vector<std::string>* notes) {
  std::string prefix = path.empty() ? "" : path + "/";
  const NonManifests skipped(path, files);
  absl::StatusOr<IgnoreFiles> source_ignore =
      IgnoreFiles::Read(path, files, IgnoreFiles::Kind::kFlux);
  if (!source_ignore.ok()) return source_ignore.status();
  // "" when Flux has `repo_path`; else it is left out, and noted.
  auto ignored = [&](const std::string& repo_path) {
    std::string by = source_ignore->Ignored(repo_path);
    if (by.empty()) return false;
    if (notes != nullptr) {
      notes->push_back(reads_sourceignore
                           ? absl::StrCat("skipped ", repo_path, ": ignored by ", by)
                           : absl::StrCat("kept ", repo_path, " although it is ignored by ", by,
                                          " (this bundle was rendered before gitfleet read "
                                          ".sourceignore, and keeps what it rendered)"));
    }
    return reads_sourceignore;
  };
  std::set<std::string> dirs;  // relative directories with a kustomization
  for (const RepoFile& file : files) {
    if (!absl::StartsWith(file.path, prefix) || !IsKustomizationFile(file.path)) continue;
    std::string why = skipped.Why(file.path);
    if (!why.empty() && why != "a kustomization, not a manifest") continue;
    if (ignored(file.path)) continue;
    std::string relative = file.path.substr(prefix.size());
    size_t slash = relative.rfind('/');
    if (slash != std::string::npos) dirs.insert(relative.substr(0, slash));
  }
  auto under = [&](const std::string& relative) -> const std::string* {
    for (const std::string& dir : dirs) {
      if (absl::StartsWith(relative, dir + "/")) return &dir;
    }
    return nullptr;
  };
  std::set<std::string> top;  // kustomization directories not inside another
  for (const std::string& dir : dirs) {
    if (under(dir) == nullptr) top.insert(dir);
  }
  std::vector<std::string> resources;
  for (const RepoFile& file : files) {
    if (!absl::StartsWith(file.path, prefix)) continue;
    std::string relative = file.path.substr(prefix.size());
    if (!absl::EndsWith(relative, ".yaml") && !absl::EndsWith(relative, ".yml") &&
        !absl::EndsWith(relative, ".json")) {
      continue;
    }
    bool in_build = false;
    for (const std::string& dir : top) in_build |= absl::StartsWith(relative, dir + "/");
    if (in_build) continue;
    if (std::string why = skipped.Why(file.path); !why.empty()) {
      if (notes != nullptr) notes->push_back(absl::StrCat("skipped ", file.path, ": ", why));
      continue;
    }
    if (ignored(file.path)) continue;
    resources.push_back(relative);
  }
  for (const std::string& dir : top) {
    resources.push_back(dir);
    kustomize_dirs->push_back(prefix + dir);
  }
  std::sort(resources.begin(), resources.end());
  std::string text =
      "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n";
  for (const std::string& resource : resources) {
    // Repository paths are plain names; quoted so YAML reads each as a string.
    absl::StrAppend(&text, "- \"", absl::CEscape(resource), "\"\n");
  }
  if (resources.empty())
    text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n";
  if (notes != nullptr) {
    notes->push_back(absl::StrCat("no kustomization at ", path.empty() ? "the root" : path,
                                  ": generated one with ", resources.size(),
                                  " resources, as Flux does"));
  }
  return text;
}

constexpr int kMaxKustomizeCharts = 32;

// kustomize's helmCharts in the kustomizations of `dirs` (those a build reads): each chart in
// a chart repository is fetched and written where kustomize looks before it pulls one
// (CHART_HOME/NAME-VERSION/NAME, or CHART_HOME/NAME without a version; CHART_HOME is
// helmGlobals.chartHome, else "charts", in the kustomization's folder), unless the repository
// holds it there. Adds those files to `fetched`; `seen` says what the helmCharts are.
struct HelmChartsSeen {
  bool any = false;  // a kustomization the build reads has helmCharts
  // "PATH's helmCharts NAME", for the charts that set their own apiVersions and those
  // that do not.
  std::vector<std::string> own_api_versions;
  std::vector<std::string> without_api_versions;
};
absl::Status FetchKustomizeCharts(const std::map<std::string, const RepoFile*>& files,
                                  const std::set<std::string>& dirs, ChartFetcher* fetcher,
                                  std::vector<RepoFile>* fetched, HelmChartsSeen* seen,
                                  std::vector<std::string>* notes, const FetchScope& scope,
                                  bool* read_remote) {
  int charts = 0;
  for (const std::string& dir : dirs) {
    const RepoFile* kustomization = KustomizationIn(files, dir);
    if (kustomization == nullptr) continue;
    if (!CheckYamlBounds(kustomization->content, kustomization->path).ok()) continue;
    YAML::Node doc;
    try {
      doc = YAML::Load(kustomization->content);
    } catch (const YAML::Exception&) {
      continue;  // kustomize reports it
    }
    if (!doc.IsMap()) continue;
    const YAML::Node list = doc["helmCharts"];
    if (!list || !list.IsSequence() || list.size() == 0) continue;
    seen->any = true;
    auto refuse = [&](const std::string& why) {
      return absl::InvalidArgumentError(absl::StrCat(kustomization->path, ": ", why));
    };
    std::string home = "charts";
    if (const YAML::Node globals = doc["helmGlobals"]; globals && globals.IsMap()) {
      if (const YAML::Node set = globals["chartHome"];
          set && set.IsScalar() && !set.Scalar().empty()) {
        home = set.Scalar();
      }
    }
    std::string resolved_home;
    if (absl::StartsWith(home, "/") || !ResolveInRepository(dir, home, &resolved_home)) {
      return refuse(absl::StrCat("helmGlobals.chartHome ", home.substr(0, 256),
                                 " is not a folder in the repository"));
    }
    for (const YAML::Node& chart : list) {
      if (!chart.IsMap()) return refuse("a helmCharts entry is not a mapping");
      auto field = [&](const char* key) {
        const YAML::Node value = chart[key];
        return value && value.IsScalar() ? value.Scalar() : std::string();
      };
      const std::string name = field("name");
      const std::string repo = field("repo");
      const std::string version = field("version");
      const std::string named = absl::StrCat(kustomization->path, "'s helmCharts ",
                                             name.substr(0, 64), " (", field("releaseName"), ")");
      if (const YAML::Node own = chart["apiVersions"]; own && own.IsSequence() && own.size() > 0) {
        seen->own_api_versions.push_back(named);
      } else {
        seen->without_api_versions.push_back(named);
      }
      if (repo.empty()) continue;  // a chart in the chart home, as kustomize finds it
      if (name.empty() || name.size() > 253 || absl::StrContains(name, "/") || name == "." ||
          name == "..") {
        return refuse(absl::StrCat("helmCharts: the chart name \"", name.substr(0, 256),
                                   "\" is not a chart's name"));
      }
      if (absl::StrContains(version, "/") || version.size() > 256) {
        return refuse(absl::StrCat("helmCharts ", name, ": the version \"", version.substr(0, 256),
                                   "\" is not a version"));
      }
      const std::string folder =
          version.empty() ? absl::StrCat(resolved_home, "/", name)
                          : absl::StrCat(resolved_home, "/", name, "-", version, "/", name);
      const std::string prefix = absl::StrCat(absl::StripPrefix(folder, "/"), "/");
      if (auto it = files.lower_bound(prefix);
          it != files.end() && absl::StartsWith(it->first, prefix)) {
        continue;  // committed where kustomize looks: kustomize renders it
      }
      if (++charts > kMaxKustomizeCharts) {
        return refuse(absl::StrCat("the build's kustomizations name more than ",
                                   kMaxKustomizeCharts, " charts in chart repositories"));
      }
      if (UrlCarriesSecret(repo)) {
        return refuse(absl::StrCat("helmCharts ", name, ": its repo ",
                                   SecretInUrlRefusal(repo, "--chart-credentials=PREFIX=NAME")));
      }
      if (fetcher == nullptr) {
        return refuse(absl::StrCat("helmCharts ", name, " from ", repo.substr(0, 256),
                                   ": the control plane fetches no charts (start it with "
                                   "--chart-repositories)"));
      }
      const ChartRef ref =
          absl::StartsWith(repo, "oci://")
              ? ChartRef{"", "", version, absl::StrCat(absl::StripSuffix(repo, "/"), "/", name)}
              : ChartRef{repo, name, version, ""};
      absl::StatusOr<std::shared_ptr<const FetchedChart>> got = fetcher->Fetch(ref, scope);
      if (got.ok() && read_remote != nullptr && ChartRefMoves(ref)) *read_remote = true;
      if (!got.ok()) {
        return absl::Status(got.status().code(), absl::StrCat(kustomization->path, ": helmCharts ",
                                                              name, ": ", got.status().message()));
      }
      bool values = false;
      for (const RepoFile& file : (*got)->files) {
        fetched->push_back({prefix + file.path, file.content});
        values |= file.path == "values.yaml";
      }
      // kustomize reads the chart's values.yaml before helm runs, and fails on a chart that
      // has none (helm does not): an empty one is the same values.
      if (!values) fetched->push_back({prefix + "values.yaml", "{}\n"});
      // Its dependencies, if it was published without them (kustomize runs no `helm
      // dependency build` either).
      {
        std::vector<RepoFile> chart_files;
        for (const RepoFile& file : (*got)->files) chart_files.push_back(file);
        const size_t before = chart_files.size();
        int dependencies = 0;
        absl::Status added = AddChartDependencies("", fetcher, 0, &chart_files, &dependencies,
                                                  notes, nullptr, nullptr, scope, read_remote);
        if (!added.ok()) {
          return absl::Status(added.code(), absl::StrCat(kustomization->path, ": helmCharts ", name,
                                                         ": ", added.message()));
        }
        for (size_t i = before; i < chart_files.size(); ++i) {
          fetched->push_back({prefix + chart_files[i].path, std::move(chart_files[i].content)});
        }
      }
      if (notes != nullptr) {
        notes->push_back(absl::StrCat("fetched the chart ", (*got)->name, " ", (*got)->version,
                                      " from ", (*got)->url,
                                      (*got)->digest.empty() ? "" : " (sha256 checked)", " for ",
                                      kustomization->path, "'s helmCharts"));
      }
    }
  }
  return absl::OkStatus();
}

constexpr int kMaxRemoteBases = 16;
constexpr char kRemoteDir[] = ".gitfleet-remote";

// Where remote bases' copies go in a checkout; never a path of the repository's own
// (.gitfleet-remote/ is refused in it).
bool IsRemoteCopy(absl::string_view path) {
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == kRemoteDir) return true;
  }
  return false;
}

// kustomize's remote bases in the kustomizations a build of `path` reads (their resources,
// bases and components, the copies' own too): each repository fetched once at its ref by
// `fetcher`, its files added to *files under .gitfleet-remote/ID/, and the entry rewritten
// to that copy's folder. Without a fetcher, a remote base fails naming the flag; so does a
// plain file over http(s), which kustomize would download. *copied gets what each copy
// (".gitfleet-remote/ID") holds, for kustomize's messages, which name the copies.
absl::Status ExpandRemoteBases(const std::string& path, const std::vector<std::string>& more_dirs,
                               RemoteBaseFetcher* fetcher, std::vector<RepoFile>* files,
                               std::vector<std::string>* notes, const FetchScope& scope,
                               std::map<std::string, std::string>* copied) {
  std::map<std::string, std::string> copies;  // repo + "\n" + ref -> ID
  std::set<std::string> expanded;             // kustomization paths done
  for (int round = 0; round <= kMaxRemoteBases; ++round) {
    std::map<std::string, const RepoFile*> by_path;
    for (const RepoFile& file : *files) by_path[file.path] = &file;
    std::set<std::string> visited, read;
    KustomizeClosure(by_path, path, &visited, &read);
    for (const std::string& dir : more_dirs) KustomizeClosure(by_path, dir, &visited, &read);
    // The kustomizations with remote entries not yet rewritten.
    std::vector<std::string> todo;
    for (const std::string& dir : visited) {
      const RepoFile* kustomization = KustomizationIn(by_path, dir);
      if (kustomization == nullptr || expanded.count(kustomization->path)) continue;
      expanded.insert(kustomization->path);
      if (kustomization->content.find("://") == std::string::npos &&
          kustomization->content.find("github.com/") == std::string::npos &&
          kustomization->content.find("git@") == std::string::npos) {
        continue;
      }
      todo.push_back(kustomization->path);
    }
    if (todo.empty()) return absl::OkStatus();
    std::vector<RepoFile> added;
    for (const std::string& kustomization_path : todo) {
      RepoFile* file = nullptr;
      for (RepoFile& f : *files) {
        if (f.path == kustomization_path) file = &f;
      }
      if (file == nullptr) continue;
      std::optional<YAML::Node> read = KustomizationMap(*file);
      if (!read.has_value()) continue;
      YAML::Node& doc = *read;
      const std::string dir = file->path.find('/') == std::string::npos
                                  ? ""
                                  : file->path.substr(0, file->path.rfind('/'));
      std::string up;
      for (absl::string_view part : absl::StrSplit(dir, '/', absl::SkipEmpty())) {
        (void)part;
        up += "../";
      }
      bool changed = false;
      for (const char* field : {"resources", "bases", "components"}) {
        YAML::Node list = doc[field];
        if (!list || !list.IsSequence()) continue;
        for (size_t i = 0; i < list.size(); ++i) {
          if (!list[i].IsScalar() || !LooksRemote(list[i].Scalar())) continue;
          const std::string reference = list[i].Scalar();
          if (UrlCarriesSecret(reference)) {
            return absl::InvalidArgumentError(
                absl::StrCat(file->path, ": ", field, " ",
                             SecretInUrlRefusal(reference, "--git-credentials=PREFIX=NAME")));
          }
          const std::string where =
              absl::StrCat(file->path, ": ", field, " \"", reference.substr(0, 256), "\"");
          if (IsRemoteFile(reference)) {
            // A file kustomize would download: fetched, and put in the kustomization's own
            // folder (kustomize reads files only in or below it).
            if (fetcher == nullptr || std::string(field) != "resources") {
              return absl::InvalidArgumentError(absl::StrCat(
                  where, " is remote: a file over http(s), which renders cannot download",
                  fetcher == nullptr
                      ? absl::StrCat("; vendor it into the repository, or have the control "
                                     "plane fetch it (--kustomize-remote-bases=",
                                     reference.substr(0, 256), ")")
                      : absl::StrCat(", and ", field, " takes folders")));
            }
            // A copy in each folder that names it.
            const std::string key = absl::StrCat("file\n", dir, "\n", reference);
            auto copy = copies.find(key);
            if (copy == copies.end()) {
              if (static_cast<int>(copies.size()) >= kMaxRemoteBases) {
                return absl::ResourceExhaustedError(
                    absl::StrCat(where, ": the build reads more than ", kMaxRemoteBases,
                                 " remote bases and files, theirs included"));
              }
              absl::StatusOr<std::string> content = fetcher->FetchFile(reference, 16 << 20, scope);
              if (!content.ok()) {
                return absl::Status(content.status().code(),
                                    absl::StrCat(where, ": ", content.status().message()));
              }
              copy = copies.emplace(key, absl::StrCat(copies.size() + 1)).first;
              (*copied)[absl::StrCat(kRemoteDir, "/", copy->second)] =
                  absl::StrCat("the remote file ", reference.substr(0, 256));
              const std::string name = RemoteFileName(reference);
              added.push_back({absl::StrCat(dir.empty() ? "" : dir + "/", kRemoteDir, "/",
                                            copy->second, "/", name),
                               *std::move(content)});
              if (notes != nullptr) {
                notes->push_back(
                    absl::StrCat("fetched the remote file ", reference, " for ", file->path));
              }
            }
            list[i] = absl::StrCat(kRemoteDir, "/", copy->second, "/", RemoteFileName(reference));
            changed = true;
            continue;
          }
          absl::StatusOr<std::optional<RemoteBase>> base = ParseRemoteBase(reference);
          if (!base.ok()) {
            return absl::InvalidArgumentError(
                absl::StrCat(file->path, ": ", base.status().message()));
          }
          if (!base->has_value()) {
            return absl::InvalidArgumentError(
                absl::StrCat(where,
                             " is remote: a file over http(s), which renders cannot download and "
                             "gitfleet does not fetch; vendor it into the repository"));
          }
          if (fetcher == nullptr) {
            return absl::InvalidArgumentError(
                absl::StrCat(where,
                             " is remote; renders have no network access, so vendor it into the "
                             "repository, or have the control plane fetch it "
                             "(--kustomize-remote-bases=",
                             (**base).repo.substr(0, 256), ")"));
          }
          const std::string key = absl::StrCat((**base).repo, "\n", (**base).ref);
          auto copy = copies.find(key);
          if (copy == copies.end()) {
            if (static_cast<int>(copies.size()) >= kMaxRemoteBases) {
              return absl::ResourceExhaustedError(
                  absl::StrCat(where, ": the build reads more than ", kMaxRemoteBases,
                               " remote bases (repositories at a ref), theirs included"));
            }
            absl::StatusOr<RemoteTree> tree = fetcher->Fetch((**base).repo, (**base).ref, scope);
            if (!tree.ok()) {
              return absl::Status(tree.status().code(),
                                  absl::StrCat(where, ": ", tree.status().message()));
            }
            const std::string id = absl::StrCat(copies.size() + 1);
            copy = copies.emplace(key, id).first;
            (*copied)[absl::StrCat(kRemoteDir, "/", id)] = absl::StrCat(
                "the remote base ", (**base).repo.substr(0, 256), " at ",
                (**base).ref.empty() ? "its default branch" : (**base).ref.substr(0, 256),
                " (commit ", tree->commit.substr(0, 12), ")");
            for (RepoFile& remote : tree->files) {
              added.push_back(
                  {absl::StrCat(kRemoteDir, "/", id, "/", remote.path), std::move(remote.content)});
            }
            if (notes != nullptr) {
              notes->push_back(
                  absl::StrCat("fetched the remote base ", (**base).repo, " at ",
                               (**base).ref.empty() ? "its default branch" : (**base).ref,
                               " (commit ", tree->commit.substr(0, 12), ") for ", file->path));
            }
          }
          list[i] = absl::StrCat(up, kRemoteDir, "/", copy->second,
                                 (**base).path.empty() ? "" : "/", (**base).path);
          changed = true;
        }
      }
      if (changed) {
        YAML::Emitter out;
        out << doc;
        file->content = std::string(out.c_str()) + "\n";
      }
    }
    for (RepoFile& file : added) files->push_back(std::move(file));
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("kustomize ", path, ": remote bases nest more than ", kMaxRemoteBases, " deep"));
}

}  // namespace

absl::Status CheckKustomizeReferences(const std::vector<RepoFile>& files) {
  for (const RepoFile& file : files) {
    if (!IsKustomizationFile(file.path)) continue;
    // Walking a node graph visits an alias once per reference: bounded first.
    GF_ASSIGN_OR_RETURN(YAML::Node doc, LoadBoundedYaml(file.content, file.path));
    if (!doc.IsMap()) continue;
    std::string dir =
        file.path.find('/') == std::string::npos ? "" : file.path.substr(0, file.path.rfind('/'));
    std::vector<std::pair<std::string, std::string>> references;
    if (!CollectReferences(doc, &references)) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path, ": not a kustomization (a field has the wrong type)"));
    }
    for (const auto& [field, reference] : references) {
      // Remote: ExpandRemoteBases fetches (or refuses) the ones a build reads; the rest of
      // the repository's are none of this render's business.
      if (LooksRemote(reference)) continue;
      std::string resolved;
      if (!reference.empty() && reference[0] == '/') {
        return absl::InvalidArgumentError(absl::StrCat(file.path, ": ", field, " \"", reference,
                                                       "\" is an absolute path; refused"));
      }
      if (!ResolveInRepository(dir, reference, &resolved)) {
        return absl::InvalidArgumentError(absl::StrCat(file.path, ": ", field, " \"", reference,
                                                       "\" leaves the repository; refused"));
      }
    }
  }
  return absl::OkStatus();
}

std::string FindKustomize() {
  for (const char* candidate : {"/usr/local/bin/kustomize", "/usr/bin/kustomize",
                                "/usr/local/bin/kubectl", "/usr/bin/kubectl"}) {
    if (access(candidate, X_OK) == 0) return candidate;
  }
  return "";
}

KustomizeRenderer::KustomizeRenderer(KustomizeOptions options) : options_(std::move(options)) {
  if (options_.binary.empty()) options_.binary = FindKustomize();
  if (options_.scratch_dir.empty()) options_.scratch_dir = "/tmp";
  unshare_ = NetworkSandbox();
  if (unshare_.empty()) {
    GF_LOG(WARNING) << "cannot create network namespaces here: kustomize renders "
                    << (options_.allow_network
                            ? "run with the host's network (--render-network=allow)"
                            : "fail until --render-network=allow");
  }
}

namespace {

// Rewrites the kustomization in `dir` (the folder `path` of a scratch checkout) with
// `images` set (SetKustomizeImages) and Argo CD's other kustomize fields
// (SetArgoCdKustomizeFields).
absl::Status EditKustomizationIn(const std::string& dir, const std::string& path,
                                 const std::vector<std::string>& images,
                                 const ArgoCdKustomize& fields) {
  for (const char* name : {"kustomization.yaml", "kustomization.yml", "Kustomization"}) {
    const std::string file = absl::StrCat(dir, "/", name);
    std::ifstream in(file);
    if (!in) continue;
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<std::string> edited = text.str();
    if (!images.empty()) edited = SetKustomizeImages(*edited, images);
    if (edited.ok() && !fields.empty()) edited = SetArgoCdKustomizeFields(*edited, fields);
    if (!edited.ok()) {
      return absl::Status(edited.status().code(),
                          absl::StrCat("kustomize ", path, ": ", edited.status().message()));
    }
    std::ofstream out(file, std::ios::trunc);
    out << *edited;
    out.close();
    if (!out) {
      return absl::InternalError(absl::StrCat("kustomize ", path, ": cannot write ", name));
    }
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("kustomize ", path, ": no kustomization to edit as Argo CD does"));
}

// Whether a path has a glob pattern in it, as Go's filepath.Match reads one.
bool IsGlob(absl::string_view text) { return text.find_first_of("*?[") != absl::string_view::npos; }

// Argo CD's components as `kustomize edit add component` takes them: a pattern with `*`,
// `?` or `[...]` (Go's filepath.Glob, relative to the kustomization's folder `path`) is
// the files and folders of the repository it matches, in Glob's order, each written as the
// pattern was; a plain path is itself. A pattern that matches nothing fails the build, as
// kustomize fails ("has no match"); with ignoreMissingComponents, Argo CD looks it up as a
// path, finds none and leaves it out (noted). The folder a pattern lists is read.
absl::StatusOr<std::vector<std::string>> ExpandArgoCdComponents(
    const std::string& path, const ArgoCdKustomize& fields,
    const std::map<std::string, const RepoFile*>& by_path, std::set<std::string>* read,
    std::vector<std::string>* notes) {
  std::vector<std::string> out;
  for (const std::string& component : fields.components) {
    if (!IsGlob(component) || LooksRemote(component)) {
      out.push_back(component);
      continue;
    }
    const std::string shown = component.substr(0, 256);
    if (fields.ignore_missing_components) {
      if (notes != nullptr) {
        notes->push_back(absl::StrCat("leaves out the component ", shown,
                                      ": with ignoreMissingComponents Argo CD looks a pattern up "
                                      "as a path, finds none, and leaves it out"));
      }
      continue;
    }
    std::vector<std::string> written = absl::StrSplit(component, '/', absl::SkipEmpty());
    size_t first = 0;
    while (first < written.size() && !IsGlob(written[first])) ++first;
    std::vector<std::string> tail;
    for (size_t i = first; i < written.size(); ++i) {
      if (written[i] == "..") {
        return absl::InvalidArgumentError(
            absl::StrCat("kustomize.components names ", shown,
                         ", a pattern that climbs (..) after a wildcard, which gitfleet does "
                         "not expand: name the folders"));
      }
      if (written[i] != ".") tail.push_back(written[i]);
    }
    const std::string prefix =
        absl::StrJoin(written.begin(), written.begin() + static_cast<ptrdiff_t>(first), "/");
    std::string resolved;
    if (absl::StartsWith(component, "/") || !ResolveInRepository(path, prefix, &resolved)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kustomize.components names ", shown, ", outside the repository (relative to ",
          path.empty() ? "the repository root" : path, ")"));
    }
    const std::vector<std::string> base =
        resolved.empty() ? std::vector<std::string>()
                         : std::vector<std::string>(absl::StrSplit(resolved, '/'));
    read->insert(resolved);
    // Glob's order: each folder's names sorted, level by level.
    std::set<std::vector<std::string>> matches;
    // Only the files under the pattern's folder (the map is in path order).
    const std::string under = resolved.empty() ? "" : resolved + "/";
    for (auto it = by_path.lower_bound(under);
         it != by_path.end() && absl::StartsWith(it->first, under); ++it) {
      const std::string& file = it->first;
      std::vector<std::string> parts = absl::StrSplit(file, '/');
      if (parts.size() < base.size() + tail.size() ||
          !std::equal(base.begin(), base.end(), parts.begin())) {
        continue;
      }
      bool match = true;
      for (size_t i = 0; match && i < tail.size(); ++i) {
        match = fnmatch(tail[i].c_str(), parts[base.size() + i].c_str(), 0) == 0;
      }
      if (!match) continue;
      parts.erase(parts.begin(), parts.begin() + static_cast<ptrdiff_t>(base.size()));
      parts.resize(tail.size());
      matches.insert(std::move(parts));
      if (matches.size() > kMaxArgoCdKustomizeAdditions) break;
    }
    if (matches.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kustomize.components names ", shown,
          ", which matches nothing in the repository, so Argo CD's build fails (kustomize edit "
          "add component: has no match)"));
    }
    for (const std::vector<std::string>& match : matches) {
      out.push_back(absl::StrCat(prefix, prefix.empty() ? "" : "/", absl::StrJoin(match, "/")));
    }
    if (out.size() > kMaxArgoCdKustomizeAdditions) {
      return absl::InvalidArgumentError(
          absl::StrCat("kustomize.components names ", shown, ", which matches more than ",
                       kMaxArgoCdKustomizeAdditions, " components with the others"));
    }
  }
  return out;
}

// Argo CD's components and patches for the kustomization in `path`, as `fields` gives them
// and the repository (`by_path`) holds them: components (patterns expanded) that are not there left
// out when ignore_missing_components (noted), else refused; a component or patch file that leaves
// the repository, or a remote component, refused. Adds the folders and files they read to
// `visited` and `read` (a change to one renders again).
absl::StatusOr<ArgoCdKustomize> PlaceArgoCdAdditions(
    const std::string& path, const ArgoCdKustomize& fields,
    const std::map<std::string, const RepoFile*>& by_path, std::set<std::string>* visited,
    std::set<std::string>* read, std::vector<std::string>* notes) {
  ArgoCdKustomize placed = fields;
  placed.components.clear();
  const std::string where = path.empty() ? "the repository root" : path;
  GF_ASSIGN_OR_RETURN(std::vector<std::string> components,
                      ExpandArgoCdComponents(path, fields, by_path, read, notes));
  for (const std::string& component : components) {
    if (LooksRemote(component)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kustomize.components names ", component.substr(0, 256),
          ", a remote component; gitfleet builds Argo CD's components from the repository "
          "only: copy it into the repository and name its folder"));
    }
    std::string resolved;
    if (absl::StartsWith(component, "/") || !ResolveInRepository(path, component, &resolved)) {
      return absl::InvalidArgumentError(absl::StrCat("kustomize.components names ",
                                                     component.substr(0, 256),
                                                     ", outside the "
                                                     "repository (relative to ",
                                                     where, ")"));
    }
    auto it = by_path.lower_bound(resolved.empty() ? "" : resolved + "/");
    const bool there =
        it != by_path.end() && (resolved.empty() || absl::StartsWith(it->first, resolved + "/"));
    if (!there) {
      if (fields.ignore_missing_components) {
        if (notes != nullptr) {
          notes->push_back(absl::StrCat("leaves out the component ", component.substr(0, 256),
                                        ", not in the repository (ignoreMissingComponents), "
                                        "as Argo CD does"));
        }
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "kustomize.components names ", component.substr(0, 256), " (", resolved,
          "), which is not a folder of the repository, so Argo CD's build fails (kustomize "
          "edit add component finds nothing): add it, or set ignoreMissingComponents: true"));
    }
    bool remote = false;
    KustomizeClosure(by_path, resolved, visited, read, &remote);
    if (remote) {
      // Remote bases are fetched for the bundle's own kustomizations before the build;
      // one only a component reaches would be fetched by kustomize, which has no network.
      return absl::InvalidArgumentError(absl::StrCat(
          "kustomize.components names ", component.substr(0, 256), " (", resolved,
          "), which reaches a remote base or file; gitfleet builds Argo CD's components from "
          "the repository only: copy what it reaches into the repository"));
    }
    placed.components.push_back(component);
  }
  for (const std::string& text : fields.patches) {
    const YAML::Node patch = YAML::Load(text);  // written by ReadArgoCdSource
    const YAML::Node file = patch["path"];
    if (!file || !file.IsScalar()) continue;
    std::string resolved;
    if (absl::StartsWith(file.Scalar(), "/") ||
        !ResolveInRepository(path, file.Scalar(), &resolved)) {
      return absl::InvalidArgumentError(
          absl::StrCat("kustomize.patches names the file ", file.Scalar().substr(0, 256),
                       ", outside the repository (relative to ", where, ")"));
    }
    read->insert(resolved);
  }
  return placed;
}

}  // namespace

absl::StatusOr<ObjectSet> KustomizeRenderer::Render(const RenderInput& input) {
  if (options_.binary.empty()) {
    return absl::FailedPreconditionError(
        "engine kustomize needs kustomize or kubectl on the control plane; neither was found");
  }
  if (access(options_.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("kustomize ", input.path, ": cannot execute ",
                                            options_.binary, ": ", strerror(errno)));
  }
  if (absl::Status sandbox = RequireNetworkSandbox(options_, "kustomize", input.path);
      !sandbox.ok()) {
    return sandbox;
  }
  for (const RepoFile& file : input.files) {
    if (IsRemoteCopy(file.path)) {
      return absl::InvalidArgumentError(absl::StrCat("kustomize ", input.path,
                                                     ": the repository holds ", file.path,
                                                     ", where gitfleet "
                                                     "puts copies of remote bases; rename ",
                                                     kRemoteDir));
    }
  }
  // A directory without a kustomization of its own, as Flux builds one: a generated
  // kustomization lists its manifests, and the top-most subdirectories that have a
  // kustomization as kustomize builds.
  std::vector<std::string> generated_dirs;
  const bool generated = !HasKustomization(input.path, input.files);
  std::string generated_text;
  if (generated) {
    absl::StatusOr<std::string> text = GenerateKustomization(
        input.path, input.files, input.reads_sourceignore, &generated_dirs, input.notes);
    if (!text.ok()) return text.status();
    generated_text = *std::move(text);
  }
  std::map<std::string, const RepoFile*> by_path;
  for (const RepoFile& file : input.files) by_path[file.path] = &file;
  std::set<std::string> visited, read;
  bool remote = false;
  KustomizeClosure(by_path, input.path, &visited, &read, &remote);
  for (const std::string& dir : generated_dirs) {
    KustomizeClosure(by_path, dir, &visited, &read, &remote);
  }
  // Remote bases the build reads: fetched by the control plane and copied in (the
  // repository's files copied only then), and the build's closure read again.
  std::vector<RepoFile> with_remote;
  std::map<std::string, std::string> copied;  // ".gitfleet-remote/ID" -> what it holds
  if (remote && input.read_remote != nullptr) *input.read_remote = true;
  if (remote) {
    with_remote = input.files;
    GF_RETURN_IF_ERROR(ExpandRemoteBases(input.path, generated_dirs, options_.remote_bases.get(),
                                         &with_remote, input.notes, input.fetch_scope, &copied));
    by_path.clear();
    for (const RepoFile& file : with_remote) by_path[file.path] = &file;
    visited.clear();
    read.clear();
    KustomizeClosure(by_path, input.path, &visited, &read);
    for (const std::string& dir : generated_dirs) KustomizeClosure(by_path, dir, &visited, &read);
  }
  const std::vector<RepoFile>& files = remote ? with_remote : input.files;
  ArgoCdKustomize argocd_kustomize = input.argocd_kustomize;
  if (!argocd_kustomize.components.empty() || !argocd_kustomize.patches.empty()) {
    absl::StatusOr<ArgoCdKustomize> placed = PlaceArgoCdAdditions(
        input.path, input.argocd_kustomize, by_path, &visited, &read, input.notes);
    if (!placed.ok()) {
      return absl::Status(placed.status().code(),
                          absl::StrCat("kustomize ", input.path, ": ", placed.status().message()));
    }
    argocd_kustomize = *std::move(placed);
  }
  if (absl::Status references = CheckKustomizeReferences(files); !references.ok()) {
    return references;
  }
  // kustomize's helmCharts: their charts fetched by the control plane, rendered by helm.
  std::vector<RepoFile> charts;
  HelmChartsSeen seen;
  GF_RETURN_IF_ERROR(FetchKustomizeCharts(by_path, visited, options_.chart_fetcher.get(), &charts,
                                          &seen, input.notes, input.fetch_scope,
                                          input.read_remote));
  const bool helm_charts = seen.any;
  // The bundle's --kube-version and --api-versions reach its charts as Argo CD passes
  // them, by kustomize's --helm-kube-version and --helm-api-versions: a chart's own
  // kubeVersion or apiVersions win.
  std::vector<std::string> capability_flags;
  if (helm_charts) {
    absl::StatusOr<std::vector<std::string>> flags = HelmCapabilityFlags(
        input.helm_capabilities, "--helm-kube-version=", "--helm-api-versions=");
    if (!flags.ok()) {
      return absl::Status(flags.status().code(),
                          absl::StrCat("kustomize ", input.path, ": ", flags.status().message()));
    }
    capability_flags = *std::move(flags);
    if (!input.helm_capabilities.api_versions.empty() && !seen.own_api_versions.empty() &&
        !seen.without_api_versions.empty()) {
      // kustomize 5.5 shares one list between its charts: a chart without apiVersions of
      // its own gets another chart's list instead of the flags'.
      return absl::InvalidArgumentError(absl::StrCat(
          "kustomize ", input.path, ": the bundle's --api-versions cannot reach ",
          seen.without_api_versions.front(), " while ", seen.own_api_versions.front(),
          " sets apiVersions of its own (kustomize would give it that chart's list instead); "
          "set apiVersions on every helmCharts entry the build reads, or on none"));
    }
  } else if (input.notes != nullptr && (!input.helm_capabilities.kube_version.empty() ||
                                        !input.helm_capabilities.api_versions.empty())) {
    input.notes->push_back(absl::StrCat(
        "--kube-version and --api-versions reach kustomize's helmCharts; the kustomizations ",
        input.path, " builds have none"));
  }
  if (helm_charts &&
      (options_.helm_binary.empty() || access(options_.helm_binary.c_str(), X_OK) != 0)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kustomize ", input.path,
        ": a kustomization it builds has helmCharts, which kustomize renders with helm, and the "
        "control plane has ",
        options_.helm_binary.empty() ? "no helm binary (start it with --helm=PATH)"
                                     : absl::StrCat("no helm at ", options_.helm_binary)));
  }
  std::vector<RepoFile> with_charts;
  if (!charts.empty()) {
    with_charts = files;
    for (RepoFile& file : charts) with_charts.push_back(std::move(file));
  }
  absl::StatusOr<std::unique_ptr<Checkout>> checkout =
      Checkout::Write(options_.scratch_dir, with_charts.empty() ? files : with_charts);
  if (!checkout.ok()) return checkout.status();
  const Checkout& scratch = **checkout;
  std::string dir = scratch.root() + "/" + input.path;
  if (generated) {
    std::ofstream out(dir + "/kustomization.yaml");
    out << generated_text;
    out.close();
    if (!out) {
      return absl::InternalError(
          absl::StrCat("kustomize ", input.path, ": cannot write the generated kustomization"));
    }
  }
  if (!input.kustomize_images.empty() || !argocd_kustomize.empty()) {
    // As Argo CD runs `kustomize edit set image` (and set nameprefix, add label, ...)
    // before the build: in the kustomization built, whichever of kustomize's names it has.
    GF_RETURN_IF_ERROR(
        EditKustomizationIn(dir, input.path, input.kustomize_images, argocd_kustomize));
  }
  std::vector<std::string> argv;
  if (!unshare_.empty()) argv = {unshare_, "--net", "--map-root-user"};
  argv.push_back(options_.binary);
  if (absl::EndsWith(options_.binary, "kubectl")) {
    argv.push_back("kustomize");
  } else {
    argv.push_back("build");
  }
  if (options_.load_restrictions_none) argv.push_back("--load-restrictor=LoadRestrictionsNone");
  if (helm_charts) {
    argv.push_back("--enable-helm");
    argv.push_back("--helm-command=" + options_.helm_binary);
    argv.insert(argv.end(), capability_flags.begin(), capability_flags.end());
  }
  argv.push_back(dir);
  SubprocessOptions run;
  run.cwd = scratch.path();
  run.env = {"PATH=/usr/bin:/bin", "HOME=" + scratch.path(), "KUBECONFIG=/dev/null",
             "XDG_CONFIG_HOME=" + scratch.path()};
  run.timeout = options_.timeout;
  run.max_cpu = options_.timeout;
  run.max_memory_bytes = options_.limits.max_memory_bytes;
  run.max_stdout_bytes = options_.limits.max_bytes * 2;
  run.max_stderr_bytes = kMaxErrorBytes;
  // What the build reads: the repository paths its kustomizations name (those not there
  // too: a base added later builds), as the build's success or failure depends on them.
  std::vector<std::string> reads;
  // A generated kustomization also read the .sourceignore files above the folder.
  if (generated) {
    for (std::string& above : IgnoreFiles::SourceIgnoresAbove(input.path)) {
      read.insert(std::move(above));
    }
  }
  for (const std::string& path : read) {
    if (IsRemoteCopy(path)) continue;  // not the repository's: fetched again at each render
    // A file inside a visited directory is already covered by that directory's tree id.
    bool covered = false;
    for (const std::string& dir : visited) {
      covered |= path != dir && (dir.empty() || absl::StartsWith(path, dir + "/"));
    }
    if (!covered) reads.push_back(path);
  }
  absl::StatusOr<SubprocessResult> result = RunSubprocess(argv, run);
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat("kustomize ", input.path, ": ", result.status().message()));
  }
  if (result->exit_code != 0) {
    // Messages name the scratch copy; show repository paths instead.
    std::string message = absl::StrReplaceAll(result->stderr_text, {{scratch.root() + "/", ""}});
    if (absl::StripAsciiWhitespace(message).empty()) {
      message = absl::StrCat("exit code ", result->exit_code, " and no message");
    }
    // And the copies of remote bases by what they hold.
    std::vector<std::string> named;
    for (const auto& [dir, what] : copied) {
      if (message.find(dir + "/") != std::string::npos) named.push_back(dir + " is " + what);
    }
    if (!named.empty()) {
      message = absl::StrCat(absl::StripTrailingAsciiWhitespace(message), " (",
                             absl::StrJoin(named, "; "), ")");
    }
    if (!options_.load_restrictions_none &&
        message.find("is not in or below") != std::string::npos) {
      absl::StrAppend(
          &message,
          " (kustomize reads only files in or below a kustomization's folder: name the "
          "file's folder as a base, or move the file; Flux builds without that restriction, "
          "and the control plane does with --kustomize-load-restrictor=LoadRestrictionsNone)");
    }
    // Killed by a signal (memory, the machine): not what it read alone.
    if (input.failed_reads != nullptr && result->exit_code < 128) *input.failed_reads = reads;
    return absl::InvalidArgumentError(absl::StrCat(
        "kustomize build ", input.path, " failed: ", absl::StripTrailingAsciiWhitespace(message),
        LfsPointerHint(input.files, "")));
  }
  absl::StatusOr<ObjectSet> objects =
      ObjectsFromToolOutput(input.bundle, absl::StrCat(input.path, " (kustomize output)"),
                            result->stdout_text, options_.limits);
  if (!objects.ok() && input.failed_reads != nullptr) *input.failed_reads = reads;
  if (objects.ok() && input.read_paths != nullptr) *input.read_paths = std::move(reads);
  return objects;
}

namespace {

class KustomizeFactory : public RendererFactory {
 public:
  std::string name() const override { return "kustomize"; }
  bool takes_values() const override { return false; }
  bool reads_outside_path() const override { return true; }
  int detect_order() const override { return 10; }
  // A kustomization at the path, or (Flux's layout: clusters/<env>/flux-system) in a
  // directory under it; then the path gets a generated kustomization (see Render).
  bool Detects(const std::string& path, const std::vector<RepoFile>& files) const override {
    if (HasKustomization(path, files)) return true;
    std::string prefix = path.empty() ? "" : path + "/";
    const NonManifests skipped(path, files);
    for (const RepoFile& file : files) {
      if (!absl::StartsWith(file.path, prefix) || !IsKustomizationFile(file.path)) continue;
      // Inside a dot-directory or a helm chart it is not part of the bundle.
      std::string why = skipped.Why(file.path);
      if (why.empty() || why == "a kustomization, not a manifest") return true;
    }
    return false;
  }
  std::unique_ptr<Renderer> Create(const EngineOptions& options) const override {
    return std::make_unique<KustomizeRenderer>(options.Tool("kustomize"));
  }
};

const bool kRegistered = RegisterRendererFactory(std::make_unique<KustomizeFactory>());

}  // namespace
}  // namespace gitfleet
