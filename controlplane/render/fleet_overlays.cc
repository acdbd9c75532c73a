#include "controlplane/render/fleet_overlays.h"

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/manifest/yaml.h"
#include "common/names.h"
#include "common/status_macros.h"
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

// A key of `node` (a patch's part) that starts with `$`, at any depth, or "".
std::string DirectiveIn(const YAML::Node& node, const std::string& at) {
  if (node.IsMap()) {
    for (const auto& entry : node) {
      const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "";
      const std::string here = at.empty() ? key : absl::StrCat(at, ".", key);
      if (absl::StartsWith(key, "$")) return here;
      if (std::string found = DirectiveIn(entry.second, here); !found.empty()) return found;
    }
  } else if (node.IsSequence()) {
    int index = 0;
    for (const auto& item : node) {
      if (std::string found = DirectiveIn(item, absl::StrCat(at, "[", index++, "]"));
          !found.empty()) {
        return found;
      }
    }
  }
  return "";
}

// RFC 7386 on YAML nodes, where both kinds of patch Fleet may apply agree.
absl::Status Merge(YAML::Node target, const YAML::Node& patch, const std::string& at,
                   const std::string& what) {
  for (const auto& entry : patch) {
    if (!entry.first.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": a key of ", at.empty() ? "the patch" : at, " is not a string"));
    }
    const std::string key = entry.first.Scalar();
    const std::string here = at.empty() ? key : absl::StrCat(at, ".", key);
    const YAML::Node value = entry.second;
    if (value.IsNull()) {
      target.remove(key);
      continue;
    }
    YAML::Node existing = static_cast<const YAML::Node&>(target)[key];
    if (value.IsMap()) {
      if (existing.IsDefined() && existing.IsMap()) {
        GF_RETURN_IF_ERROR(Merge(existing, value, here, what));
      } else {
        YAML::Node fresh(YAML::NodeType::Map);
        GF_RETURN_IF_ERROR(Merge(fresh, value, here, what));
        target[key] = fresh;
      }
      continue;
    }
    if (value.IsSequence() && existing.IsDefined() && existing.IsSequence()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": ", here,
          " gives a list the object has too; Fleet merges such a list by its items' keys "
          "(strategic merge: containers by name) or replaces it, by the object's kind, and "
          "gitfleet does not apply either in its place: give the whole file in the overlay "
          "instead of a patch"));
    }
    target[key] = YAML::Clone(value);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> MergePatchYaml(const std::string& object, const std::string& patch,
                                           const std::string& what) {
  GF_ASSIGN_OR_RETURN(std::vector<YAML::Node> patches, Documents(patch, what));
  if (patches.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " holds ", patches.size(), " documents; a patch is one mapping"));
  }
  if (patches[0].IsSequence()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what,
        " is a JSON Patch (a list of operations), which gitfleet does not apply: give the "
        "whole file in the overlay, or the change as a mapping"));
  }
  if (!patches[0].IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a mapping"));
  }
  if (std::string directive = DirectiveIn(patches[0], ""); !directive.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", directive,
        " is a strategic-merge directive, which gitfleet does not apply: give the whole file in "
        "the overlay instead of a patch"));
  }
  GF_ASSIGN_OR_RETURN(std::vector<YAML::Node> objects, Documents(object, what + "'s target"));
  if (objects.size() != 1 || !objects[0].IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " patches a file that holds ", objects.size() == 1 ? "no object" : "",
                     objects.size() == 1 ? "" : absl::StrCat(objects.size(), " documents"),
                     "; a patch applies to a file of one object"));
  }
  YAML::Node merged = YAML::Clone(objects[0]);
  try {
    GF_RETURN_IF_ERROR(Merge(merged, patches[0], "", what));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, " cannot be applied: ", e.what()));
  }
  return EmitBlockYaml(merged);
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
                          MergePatchYaml(it->second.content, file.content, file.path));
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
