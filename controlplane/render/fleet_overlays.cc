#include "controlplane/render/fleet_overlays.h"

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/manifest/yaml.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "controlplane/render/kube_patch.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// The documents of `text` that are not empty.
absl::StatusOr<std::vector<YAML::Node>> Documents(const std::string& text,
                                                  const std::string& name) {
  GF_RETURN_IF_ERROR(CheckYamlBounds(text, name));
  std::vector<YAML::Node> documents;
  try {
    for (YAML::Node& document : YAML::LoadAll(text)) {
      if (document && !document.IsNull()) documents.push_back(std::move(document));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  return documents;
}

}  // namespace

absl::StatusOr<std::string> PatchYaml(const std::string& object, const std::string& patch,
                                      const std::string& what) {
  GF_ASSIGN_OR_RETURN(std::vector<YAML::Node> patches, Documents(patch, what));
  if (patches.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " holds ", patches.size(), " documents; a patch is one mapping or one list"));
  }
  if (!patches[0].IsMap() && !patches[0].IsSequence()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is neither a mapping nor a list of JSON Patch operations"));
  }
  GF_ASSIGN_OR_RETURN(std::vector<YAML::Node> objects, Documents(object, what + "'s target"));
  if (objects.size() != 1 || !objects[0].IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " patches a file that holds ", objects.size() == 1 ? "no object" : "",
                     objects.size() == 1 ? "" : absl::StrCat(objects.size(), " documents"),
                     "; a patch applies to a file of one object"));
  }
  GF_ASSIGN_OR_RETURN(YAML::Node patched, ApplyKubePatch(objects[0], patches[0], what));
  if (!patched.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " leaves its file without an object (a mapping)"));
  }
  return EmitBlockYaml(patched);
}

absl::StatusOr<std::vector<RepoFile>> ApplyFleetOverlays(const std::string& path,
                                                         const std::vector<RepoFile>& files,
                                                         const std::vector<std::string>& overlays,
                                                         std::vector<std::string>* notes) {
  const std::string prefix = path.empty() ? "" : path + "/";
  const std::string folder = path.empty() ? "the repository root" : path;
  const std::string overlays_prefix = prefix + "overlays/";
  if (overlays.size() > kMaxFleetOverlays) {
    return absl::InvalidArgumentError(absl::StrCat("yaml.overlays names ", overlays.size(),
                                                   " overlays; at most ", kMaxFleetOverlays));
  }
  std::vector<RepoFile> out;
  std::map<std::string, RepoFile> current;  // the folder's files, by path inside it
  size_t overlay_files = 0;
  for (const RepoFile& file : files) {
    if (!absl::StartsWith(file.path, prefix)) {
      out.push_back(file);  // read from above the folder (.sourceignore)
    } else if (absl::StartsWith(file.path, overlays_prefix)) {
      ++overlay_files;
    } else {
      current.emplace(file.path.substr(prefix.size()), file);
    }
  }
  size_t applied_files = 0;
  for (const std::string& name : overlays) {
    if (name.empty() || name.size() > 253 || name == "." || name == ".." ||
        name.find('/') != std::string::npos || name.find('\\') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("yaml.overlays names \"", name.substr(0, 256),
                                                     "\", which is not one folder's name"));
    }
    const std::string dir = absl::StrCat(overlays_prefix, name, "/");
    std::vector<std::string> replaced, added, patched;
    for (const RepoFile& file : files) {
      if (!absl::StartsWith(file.path, dir)) continue;
      ++applied_files;
      const std::string relative = file.path.substr(dir.size());
      const size_t at = relative.find("_patch.");
      if (at == std::string::npos) {
        auto [it, inserted] = current.insert_or_assign(relative, file);
        (inserted ? added : replaced).push_back(relative);
        continue;
      }
      const std::string target =
          absl::StrCat(relative.substr(0, at), ".", relative.substr(at + sizeof("_patch.") - 1));
      auto it = current.find(target);
      if (it == current.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(file.path, " patches ", target, ", which is not a file of ", folder));
      }
      GF_ASSIGN_OR_RETURN(it->second.content,
                          PatchYaml(it->second.content, file.content, file.path));
      patched.push_back(target);
    }
    if (replaced.empty() && added.empty() && patched.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("yaml.overlays names ", name, ", and ",
                                                     dir.substr(0, dir.size() - 1),
                                                     " holds no files"));
    }
    if (notes != nullptr) {
      std::vector<std::string> done;
      if (!replaced.empty()) done.push_back(absl::StrCat("replaced ", ListNames(replaced, 5)));
      if (!added.empty()) done.push_back(absl::StrCat("added ", ListNames(added, 5)));
      if (!patched.empty()) done.push_back(absl::StrCat("patched ", ListNames(patched, 5)));
      notes->push_back(absl::StrCat("Fleet's overlay ", name, " (", dir.substr(0, dir.size() - 1),
                                    ") ", absl::StrJoin(done, ", ")));
    }
  }
  if (overlay_files > applied_files && notes != nullptr) {
    notes->push_back(absl::StrCat(
        "left out ", overlay_files - applied_files, " files under ",
        overlays_prefix.substr(0, overlays_prefix.size() - 1),
        ": Fleet's yaml overlays, applied only for the clusters whose target names them"));
  }
  for (auto& [relative, file] : current) out.push_back(std::move(file));
  std::sort(out.begin(), out.end(),
            [](const RepoFile& a, const RepoFile& b) { return a.path < b.path; });
  return out;
}

}  // namespace gitfleet
