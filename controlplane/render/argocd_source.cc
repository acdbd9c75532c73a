#include "controlplane/render/argocd_source.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/manifest/yaml.h"
#include "common/manifest/yaml_json.h"
#include "common/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// A field as Go's encoding/json finds it (Argo CD reads the file as JSON): the key of that
// exact name, else one equal to it but for case ("forcestring" for forceString).
YAML::Node Field(const YAML::Node& map, const std::string& name) {
  // Not there: undefined, which a null value (a JSON merge patch's removal) is not.
  YAML::Node found(YAML::NodeType::Undefined);
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) continue;
    const std::string& key = entry.first.Scalar();
    if (key == name) return entry.second;
    if (absl::EqualsIgnoreCase(key, name)) found = entry.second;
  }
  return found;
}

// The keys of `map` not among `known` (compared as Field compares), each "PREFIX.KEY".
void AddUnread(const YAML::Node& map, const std::string& prefix,
               const std::vector<std::string>& known, std::vector<std::string>* unread) {
  for (const auto& entry : map) {
    if (!entry.first.IsScalar() || entry.second.IsNull()) continue;
    const std::string& key = entry.first.Scalar();
    if (std::any_of(known.begin(), known.end(),
                    [&](const std::string& k) { return absl::EqualsIgnoreCase(k, key); })) {
      continue;
    }
    std::string field = prefix.empty() ? key : absl::StrCat(prefix, ".", key);
    if (std::find(unread->begin(), unread->end(), field) == unread->end()) {
      unread->push_back(std::move(field));
    }
  }
}

// A scalar as JSON would carry it into a Go string: plain text, numbers and booleans as
// written (Argo CD's YAML-to-JSON keeps 1.25 a number, which a string field refuses).
std::optional<std::string> StringOf(const YAML::Node& node) {
  if (!node || !node.IsScalar()) return std::nullopt;
  return node.Scalar();
}

// As Go's YAML 1.1 reader takes a boolean, unquoted.
std::optional<bool> BoolOf(const YAML::Node& node) {
  if (!node || !node.IsScalar() || node.Tag() == "!") return std::nullopt;
  static const std::set<std::string> kTrue = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                              "on",   "On",   "ON",   "y",   "Y"};
  static const std::set<std::string> kFalse = {"false", "False", "FALSE", "no", "No", "NO",
                                               "off",   "Off",   "OFF",   "n",  "N"};
  if (kTrue.count(node.Scalar()) > 0) return true;
  if (kFalse.count(node.Scalar()) > 0) return false;
  return std::nullopt;
}

// A list field, merged as a JSON merge patch merges it: given, it replaces the one before
// (`*has` says whether one is left: null removes it), its entries in `*list`.
absl::Status TakeList(const YAML::Node& node, const std::string& field, const std::string& file,
                      bool* has, YAML::Node* list) {
  *has = !node.IsNull();
  *list = YAML::Node(YAML::NodeType::Sequence);
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsSequence()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": ", field, " is not a list, which Argo CD would refuse"));
  }
  if (node.size() > kMaxArgoCdOverrides) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", field, " has ", node.size(),
                                                   " entries; at most ", kMaxArgoCdOverrides,
                                                   " are read"));
  }
  *list = node;
  return absl::OkStatus();
}

// A true-or-false field of `section` ("kustomize", "helm"), merged as a JSON merge patch
// merges it: given, it replaces the one before; null makes it false.
absl::Status TakeBool(const YAML::Node& section, const char* field, const std::string& where,
                      const std::string& file, bool* out) {
  const YAML::Node given = Field(section, field);
  if (!given) return absl::OkStatus();
  std::optional<bool> value = given.IsNull() ? std::optional<bool>(false) : BoolOf(given);
  if (!value.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": ", where, ".", field, " is not true or false, which Argo CD would refuse"));
  }
  *out = *value;
  return absl::OkStatus();
}

// A list of strings (`field`, "helm.valueFiles", each `what`, "a path"), given: it replaces
// `out`; null empties it.
absl::Status TakeStrings(const YAML::Node& node, const std::string& field, const std::string& file,
                         std::vector<std::string>* out, size_t most = kMaxArgoCdOverrides,
                         const char* what = "a path") {
  bool has = false;
  YAML::Node list;
  GF_RETURN_IF_ERROR(TakeList(node, field, file, &has, &list));
  if (list.size() > most) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", field, " has ", list.size(),
                                                   " entries; at most ", most, " are read"));
  }
  out->clear();
  for (size_t i = 0; i < list.size(); ++i) {
    std::optional<std::string> path = StringOf(list[i]);
    if (!path.has_value() || path->empty() || path->size() > 1024) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": ", field, "[", i, "] is not ", what,
                                                     ", which Argo CD would refuse"));
    }
    out->push_back(*path);
  }
  return absl::OkStatus();
}

// A string field, merged as a JSON merge patch merges it: given, it replaces the one
// before; null removes it.
absl::Status TakeString(const YAML::Node& node, const std::string& field, const std::string& file,
                        std::optional<std::string>* out, const char* section = "kustomize") {
  if (!node) return absl::OkStatus();
  if (node.IsNull()) {
    out->reset();
    return absl::OkStatus();
  }
  std::optional<std::string> text = StringOf(node);
  if (!text.has_value() || text->find_first_of("\r\n") != std::string::npos || text->size() > 253) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": ", section, ".", field, " is not a string of one line (at most 253 characters)"));
  }
  *out = *text;
  return absl::OkStatus();
}

// A map of strings, merged key by key (a null value removes its key; null, the map).
absl::Status TakeStringMap(const YAML::Node& node, const std::string& field,
                           const std::string& file, std::map<std::string, std::string>* out) {
  if (!node) return absl::OkStatus();
  if (node.IsNull()) {
    out->clear();
    return absl::OkStatus();
  }
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": kustomize.", field, " is not a mapping, which Argo CD would refuse"));
  }
  for (const auto& entry : node) {
    std::optional<std::string> key = StringOf(entry.first);
    if (!key.has_value() || key->empty() || key->size() > 317 ||
        key->find_first_of(" \t\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": kustomize.", field, " has a key that is no label or annotation key"));
    }
    if (entry.second.IsNull()) {
      out->erase(*key);
      continue;
    }
    std::optional<std::string> value = StringOf(entry.second);
    if (!value.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": kustomize.", field, ".", *key,
                                                     " is not a string, which Argo CD would "
                                                     "refuse"));
    }
    (*out)[*key] = *value;
    if (out->size() > kMaxArgoCdOverrides) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": kustomize.", field, " has more than ",
                                                     kMaxArgoCdOverrides, " entries"));
    }
  }
  return absl::OkStatus();
}

// kubeVersion and apiVersions of `section` ("helm", "kustomize"), merged as the other
// fields: a version given replaces the one before, a list given the list before. Their
// form is checked where they are used (the helm renderer's).
absl::Status TakeCapabilities(const YAML::Node& node, const char* section, const std::string& file,
                              std::optional<std::string>* kube_version,
                              std::vector<std::string>* api_versions) {
  GF_RETURN_IF_ERROR(
      TakeString(Field(node, "kubeVersion"), "kubeVersion", file, kube_version, section));
  if (const YAML::Node given = Field(node, "apiVersions"); given) {
    GF_RETURN_IF_ERROR(TakeStrings(given, absl::StrCat(section, ".apiVersions"), file, api_versions,
                                   kMaxArgoCdOverrides, "an API version"));
  }
  return absl::OkStatus();
}

absl::Status ReadKustomizeFields(const YAML::Node& kustomize, const std::string& file,
                                 ArgoCdKustomize* out) {
  GF_RETURN_IF_ERROR(
      TakeCapabilities(kustomize, "kustomize", file, &out->kube_version, &out->api_versions));
  GF_RETURN_IF_ERROR(
      TakeString(Field(kustomize, "namePrefix"), "namePrefix", file, &out->name_prefix));
  GF_RETURN_IF_ERROR(
      TakeString(Field(kustomize, "nameSuffix"), "nameSuffix", file, &out->name_suffix));
  GF_RETURN_IF_ERROR(
      TakeString(Field(kustomize, "namespace"), "namespace", file, &out->namespace_));
  GF_RETURN_IF_ERROR(
      TakeStringMap(Field(kustomize, "commonLabels"), "commonLabels", file, &out->common_labels));
  GF_RETURN_IF_ERROR(TakeStringMap(Field(kustomize, "commonAnnotations"), "commonAnnotations", file,
                                   &out->common_annotations));
  for (const auto& [field, flag] :
       {std::pair<const char*, bool*>{"forceCommonLabels", &out->force_common_labels},
        {"forceCommonAnnotations", &out->force_common_annotations},
        {"labelWithoutSelector", &out->label_without_selector},
        {"labelIncludeTemplates", &out->label_include_templates},
        {"ignoreMissingComponents", &out->ignore_missing_components}}) {
    GF_RETURN_IF_ERROR(TakeBool(kustomize, field, "kustomize", file, flag));
  }
  if (const YAML::Node given = Field(kustomize, "components"); given) {
    GF_RETURN_IF_ERROR(TakeStrings(given, "kustomize.components", file, &out->components,
                                   kMaxArgoCdKustomizeAdditions));
  }
  if (const YAML::Node given = Field(kustomize, "patches"); given) {
    bool has = false;
    YAML::Node list;
    GF_RETURN_IF_ERROR(TakeList(given, "kustomize.patches", file, &has, &list));
    out->patches.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = absl::StrCat(file, ": kustomize.patches[", i, "]");
      const YAML::Node entry = list[i];
      if (!entry.IsMap()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " is not a mapping, which Argo CD would refuse"));
      }
      // Argo CD's KustomizePatch: what else an entry says never reaches kustomize.
      YAML::Node patch(YAML::NodeType::Map);
      for (const char* field : {"path", "patch"}) {
        const YAML::Node value = Field(entry, field);
        if (!value || value.IsNull()) continue;
        std::optional<std::string> text = StringOf(value);
        if (!text.has_value()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ".", field,
                                                         " is not a string, which Argo CD would "
                                                         "refuse"));
        }
        if (text->empty()) continue;
        YAML::Node string(*text);
        string.SetTag("!");
        patch[field] = string;
      }
      if (!patch["path"] && !patch["patch"]) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " has neither a patch nor a path, which kustomize refuses"));
      }
      for (const char* field : {"target", "options"}) {
        const YAML::Node value = Field(entry, field);
        if (!value || value.IsNull()) continue;
        if (!value.IsMap()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ".", field,
                                                         " is not a mapping, which Argo CD "
                                                         "would refuse"));
        }
        patch[field] = value;
      }
      absl::StatusOr<std::string> text = EmitBlockYaml(patch);
      if (!text.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": ", text.status().message()));
      }
      out->patches.push_back(*std::move(text));
    }
    if (out->patches.size() > kMaxArgoCdKustomizeAdditions) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": kustomize.patches has ",
                                                     out->patches.size(), " entries; at most ",
                                                     kMaxArgoCdKustomizeAdditions, " are read"));
    }
  }
  if (const YAML::Node given = Field(kustomize, "replicas"); given) {
    bool has = false;
    YAML::Node list;
    GF_RETURN_IF_ERROR(TakeList(given, "kustomize.replicas", file, &has, &list));
    out->replicas.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = absl::StrCat(file, ": kustomize.replicas[", i, "]");
      const YAML::Node entry = list[i];
      std::optional<std::string> name =
          entry.IsMap() ? StringOf(Field(entry, "name")) : std::nullopt;
      std::optional<std::string> count =
          entry.IsMap() ? StringOf(Field(entry, "count")) : std::nullopt;
      int64_t replicas = -1;
      if (!name.has_value() || name->empty() || !count.has_value() ||
          !absl::SimpleAtoi(*count, &replicas) || replicas < 0 || replicas > 1000000000) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, " is not a name and a count of replicas, which Argo CD would refuse"));
      }
      out->replicas.emplace_back(*name, replicas);
    }
  }
  return absl::OkStatus();
}

// A JSON merge patch of `patch` over `target`: mappings merged key by key (null removes a
// key), anything else replacing what was there.
YAML::Node MergePatch(const YAML::Node& target, const YAML::Node& patch) {
  if (!patch.IsMap()) return YAML::Clone(patch);
  YAML::Node out = target && target.IsMap() ? YAML::Clone(target) : YAML::Node(YAML::NodeType::Map);
  for (const auto& entry : patch) {
    if (!entry.first.IsScalar()) continue;
    const std::string key = entry.first.Scalar();
    if (entry.second.IsNull()) {
      out.remove(key);
    } else {
      out[key] = MergePatch(out[key], entry.second);
    }
  }
  return out;
}

absl::Status ReadHelmFields(const YAML::Node& helm, const std::string& file, ArgoCdHelm* out,
                            YAML::Node* values_object) {
  if (const YAML::Node given = Field(helm, "valueFiles"); given) {
    GF_RETURN_IF_ERROR(TakeStrings(given, "helm.valueFiles", file, &out->value_files));
  }
  GF_RETURN_IF_ERROR(
      TakeBool(helm, "ignoreMissingValueFiles", "helm", file, &out->ignore_missing_value_files));
  for (const auto& [field, flag] : {std::pair<const char*, bool*>{"skipCrds", &out->skip_crds},
                                    {"skipTests", &out->skip_tests},
                                    {"skipSchemaValidation", &out->skip_schema_validation}}) {
    GF_RETURN_IF_ERROR(TakeBool(helm, field, "helm", file, flag));
  }
  GF_RETURN_IF_ERROR(
      TakeString(Field(helm, "namespace"), "namespace", file, &out->namespace_, "helm"));
  GF_RETURN_IF_ERROR(TakeCapabilities(helm, "helm", file, &out->kube_version, &out->api_versions));
  if (const YAML::Node given = Field(helm, "fileParameters"); given) {
    bool has = false;
    YAML::Node list;
    GF_RETURN_IF_ERROR(TakeList(given, "helm.fileParameters", file, &has, &list));
    out->file_parameters.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = absl::StrCat(file, ": helm.fileParameters[", i, "]");
      const YAML::Node entry = list[i];
      std::optional<std::string> name =
          entry.IsMap() ? StringOf(Field(entry, "name")) : std::nullopt;
      std::optional<std::string> path =
          entry.IsMap() ? StringOf(Field(entry, "path")) : std::nullopt;
      if (!name.has_value() || name->empty() || !path.has_value() || path->empty() ||
          path->size() > 1024) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " is not a name and a path, which Argo CD would refuse"));
      }
      if (name->find_first_of("=,") != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".name \"", name->substr(0, 64),
                         "\" holds '=' or ',', which helm's --set-file cannot take in a name"));
      }
      out->file_parameters.emplace_back(*name, *path);
    }
  }
  std::optional<std::string> release = out->release_name;
  GF_RETURN_IF_ERROR(TakeString(Field(helm, "releaseName"), "releaseName", file, &release, "helm"));
  out->release_name = release;
  if (const YAML::Node given = Field(helm, "values"); given) {
    if (given.IsNull()) {
      out->values.reset();
    } else if (!given.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(
          file,
          ": helm.values is not a string of YAML (valuesObject takes a mapping), which "
          "Argo CD would refuse"));
    } else {
      out->values = given.Scalar();
    }
  }
  if (const YAML::Node given = Field(helm, "valuesObject"); given) {
    if (!given.IsNull() && !given.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": helm.valuesObject is not a mapping, which Argo CD would refuse"));
    }
    *values_object = given.IsNull() ? YAML::Node() : MergePatch(*values_object, given);
  }
  return absl::OkStatus();
}

// `text` with each line break a line feed, as YAML reads a carriage return with or without
// one after it (yaml-cpp reads a lone carriage return otherwise than go-yaml does).
std::string WithLineFeeds(absl::string_view text) {
  return absl::StrReplaceAll(absl::StrReplaceAll(text, {{"\r\n", "\n"}}), {{"\r", "\n"}});
}

absl::Status ReadOne(const RepoFile& file, ArgoCdSource* out) {
  // What go-yaml would not read (Argo CD refuses the file) could be read here into an
  // image or label that no kustomization written with it reads back.
  if (absl::Status text = CheckGoYamlCharacters(file.content); !text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path, ": ", text.message(), ", which Argo CD's YAML reader refuses"));
  }
  YamlLimits limits;
  limits.refuse_duplicate_keys = true;  // which of two would Argo CD's reader keep?
  GF_ASSIGN_OR_RETURN(YAML::Node root,
                      LoadBoundedYaml(WithLineFeeds(file.content), file.path, limits));
  if (!root || root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.path, " (Argo CD's parameter overrides) is not a mapping of source fields"));
  }
  auto refuse = [&](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path, ": ", field, " ", why, ", which Argo CD would refuse"));
  };
  // The source's place is the Application's, whatever the file says (Argo CD keeps it).
  AddUnread(root, "", {"helm", "kustomize", "repoURL", "path", "targetRevision", "chart"},
            &out->unread);
  if (const YAML::Node kustomize = Field(root, "kustomize"); kustomize && !kustomize.IsNull()) {
    if (!kustomize.IsMap()) return refuse("kustomize", "is not a mapping");
    AddUnread(kustomize, "kustomize",
              {"images", "namePrefix", "nameSuffix", "namespace", "commonLabels",
               "commonAnnotations", "forceCommonLabels", "forceCommonAnnotations", "replicas",
               "labelWithoutSelector", "labelIncludeTemplates", "components",
               "ignoreMissingComponents", "patches", "kubeVersion", "apiVersions"},
              &out->unread);
    GF_RETURN_IF_ERROR(ReadKustomizeFields(kustomize, file.path, &out->kustomize));
    if (const YAML::Node given = Field(kustomize, "images"); given) {
      out->kustomize_images.clear();
      YAML::Node images;
      GF_RETURN_IF_ERROR(
          TakeList(given, "kustomize.images", file.path, &out->has_kustomize_images, &images));
      for (size_t i = 0; i < images.size(); ++i) {
        std::optional<std::string> image = StringOf(images[i]);
        if (!image.has_value() || image->empty()) {
          return refuse(absl::StrCat("kustomize.images[", i, "]"), "is not an image");
        }
        out->kustomize_images.push_back(*image);
      }
    }
  }
  if (const YAML::Node helm = Field(root, "helm"); helm && !helm.IsNull()) {
    if (!helm.IsMap()) return refuse("helm", "is not a mapping");
    std::vector<std::string> known = {
        "parameters",          "valueFiles",  "values",
        "valuesObject",        "releaseName", "ignoreMissingValueFiles",
        "fileParameters",      "skipCrds",    "namespace",
        "kubeVersion",         "apiVersions", "skipTests",
        "skipSchemaValidation"};
    // The helm gitfleet renders with is helm 3, which Argo CD's "v3" names; another is
    // left unread.
    if (std::optional<std::string> version = StringOf(Field(helm, "version"));
        version.has_value() && (*version == "v3" || *version == "3")) {
      known.push_back("version");
    }
    AddUnread(helm, "helm", known, &out->unread);
    GF_RETURN_IF_ERROR(ReadHelmFields(helm, file.path, &out->helm, &out->helm_values_object));
    if (const YAML::Node given = Field(helm, "parameters"); given) {
      out->helm_parameters.clear();
      YAML::Node parameters;
      GF_RETURN_IF_ERROR(
          TakeList(given, "helm.parameters", file.path, &out->has_helm_parameters, &parameters));
      for (size_t i = 0; i < parameters.size(); ++i) {
        const std::string where = absl::StrCat("helm.parameters[", i, "]");
        const YAML::Node entry = parameters[i];
        if (!entry.IsMap()) return refuse(where, "is not a mapping");
        ArgoCdSource::HelmParameter parameter;
        std::optional<std::string> name = StringOf(Field(entry, "name"));
        if (!name.has_value() || name->empty()) return refuse(where, "has no name");
        if (name->find_first_of("=,") != std::string::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat(file.path, ": ", where, ".name \"", name->substr(0, 64),
                           "\" holds '=' or ',', which helm's --set cannot take in a name"));
        }
        parameter.name = *name;
        if (const YAML::Node value = Field(entry, "value"); value && !value.IsNull()) {
          std::optional<std::string> text = StringOf(value);
          if (!text.has_value()) return refuse(where + ".value", "is not a string");
          parameter.value = *text;
        }
        if (const YAML::Node force = Field(entry, "forceString"); force && !force.IsNull()) {
          std::optional<bool> flag = BoolOf(force);
          if (!flag.has_value()) return refuse(where + ".forceString", "is not true or false");
          parameter.force_string = *flag;
        }
        out->helm_parameters.push_back(std::move(parameter));
      }
    }
  }
  return absl::OkStatus();
}

struct Image {
  std::string name;
  std::string new_name;
  std::string tag;
  std::string digest;
};

// As `kustomize edit set image` parses its argument: "[NAME=]NEW[:TAG|@DIGEST]", where
// without "=" the name is the image's own and a tag or digest is needed.
std::optional<Image> ParseSetImage(const std::string& arg) {
  // No image reference holds white space or a line break (nor would one read back from
  // the kustomization as written: YAML folds a line break in a scalar).
  if (arg.find_first_of(" \t\r\n\f\v") != std::string::npos) return std::nullopt;
  Image image;
  std::string rest = arg;
  const size_t equals = arg.find('=');
  const bool overwrite = equals == std::string::npos;
  if (!overwrite) {
    image.name = arg.substr(0, equals);
    rest = arg.substr(equals + 1);
    if (image.name.empty() || rest.find('=') != std::string::npos) return std::nullopt;
  }
  std::string name;
  if (const size_t at = rest.find('@'); at != std::string::npos) {
    name = rest.substr(0, at);
    image.digest = rest.substr(at + 1);
  } else if (const size_t colon = rest.rfind(':');
             colon != std::string::npos &&
             (rest.substr(colon + 1) == "*" ||
              std::all_of(rest.begin() + colon + 1, rest.end(), [](char c) {
                return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                       c == '-';
              }))) {
    name = rest.substr(0, colon);
    image.tag = rest.substr(colon + 1);
  } else if (!overwrite && !rest.empty()) {
    name = rest;
  } else {
    return std::nullopt;
  }
  if (overwrite) {
    image.name = name;
  } else {
    image.new_name = name;
  }
  if (image.name.empty()) return std::nullopt;
  return image;
}

std::string Scalar(const YAML::Node& node) {
  return node && node.IsScalar() ? node.Scalar() : std::string();
}

}  // namespace

absl::StatusOr<ArgoCdSource> ReadArgoCdSource(const std::string& path, const std::string& app,
                                              const std::vector<RepoFile>& files) {
  const std::string folder = path.empty() ? "" : path + "/";
  ArgoCdSource out;
  for (const std::string& name :
       {std::string(kArgoCdSourceFile),
        app.empty() ? std::string() : absl::StrCat(".argocd-source-", app, ".yaml")}) {
    if (name.empty()) continue;
    const std::string wanted = folder + name;
    auto file = std::find_if(files.begin(), files.end(),
                             [&](const RepoFile& f) { return f.path == wanted; });
    if (file == files.end()) continue;
    out.files.push_back(wanted);
    GF_RETURN_IF_ERROR(ReadOne(*file, &out));
  }
  // valuesObject wins over values (Argo CD's rule), written out as YAML.
  if (out.helm_values_object && out.helm_values_object.IsMap()) {
    GF_ASSIGN_OR_RETURN(std::string text, EmitBlockYaml(out.helm_values_object));
    out.helm.values = std::move(text);
  }
  // Other Applications' files beside them: the write-back of an app named otherwise.
  const std::string own = absl::StrCat(".argocd-source-", app, ".yaml");
  for (const RepoFile& file : files) {
    absl::string_view name = file.path;
    if (!absl::ConsumePrefix(&name, folder) || name.find('/') != absl::string_view::npos ||
        name == own || !absl::ConsumePrefix(&name, ".argocd-source-") ||
        !absl::ConsumeSuffix(&name, ".yaml") || name.empty()) {
      continue;
    }
    if (out.other_apps.size() < kMaxArgoCdOtherApps) out.other_apps.emplace_back(name);
  }
  return out;
}

namespace {

// The kustomization `text` as a mapping (empty: an empty one). What go-yaml does not read
// at all is refused: kustomize would not read it, nor what is written back from it.
absl::StatusOr<YAML::Node> LoadKustomization(const std::string& text) {
  if (absl::Status bytes = CheckGoYamlCharacters(text); !bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the kustomization: ", bytes.message(),
                                                   ", which kustomize's YAML reader refuses"));
  }
  GF_ASSIGN_OR_RETURN(YAML::Node root, LoadBoundedYaml(WithLineFeeds(text), "the kustomization"));
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) return absl::InvalidArgumentError("the kustomization is not a mapping");
  return root;
}

}  // namespace

absl::StatusOr<std::string> SetKustomizeImages(const std::string& text,
                                               const std::vector<std::string>& images) {
  GF_ASSIGN_OR_RETURN(YAML::Node root, LoadKustomization(text));
  std::map<std::string, Image> by_name;
  if (const YAML::Node existing = root["images"]; existing && existing.IsSequence()) {
    for (const YAML::Node& entry : existing) {
      if (!entry.IsMap()) continue;
      Image image{Scalar(entry["name"]), Scalar(entry["newName"]), Scalar(entry["newTag"]),
                  Scalar(entry["digest"])};
      if (!image.name.empty()) by_name[image.name] = image;
    }
  }
  for (const std::string& arg : images) {
    std::optional<Image> parsed = ParseSetImage(arg);
    if (!parsed.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image \"", arg.substr(0, 128),
          "\" is not one kustomize edit set image takes: [NAME=]NEW_NAME[:TAG|@DIGEST], or "
          "NAME:TAG or NAME@DIGEST"));
    }
    auto [it, added] = by_name.try_emplace(parsed->name, *parsed);
    Image& image = it->second;
    if (added) {
      if (image.tag == "*") image.tag.clear();
      if (image.digest == "*") image.digest.clear();
      continue;
    }
    if (!parsed->new_name.empty()) image.new_name = parsed->new_name;
    if (!parsed->tag.empty() && parsed->tag != "*") {
      image.tag = parsed->tag;
      image.digest.clear();
    }
    if (!parsed->digest.empty() && parsed->digest != "*") {
      image.digest = parsed->digest;
      image.tag.clear();
    }
  }
  // Strings whatever they look like: kustomize reads a tag 7 or 1.24 as a string only
  // when quoted.
  auto string = [](const std::string& text) {
    YAML::Node node(text);
    node.SetTag("!");
    return node;
  };
  YAML::Node list(YAML::NodeType::Sequence);
  for (const auto& [name, image] : by_name) {  // by name, as kustomize writes them
    YAML::Node entry(YAML::NodeType::Map);
    entry["name"] = string(image.name);
    if (!image.new_name.empty()) entry["newName"] = string(image.new_name);
    if (!image.tag.empty()) entry["newTag"] = string(image.tag);
    if (!image.digest.empty()) entry["digest"] = string(image.digest);
    list.push_back(entry);
  }
  root["images"] = list;
  return EmitBlockYaml(root);
}

std::vector<std::string> ArgoCdHelm::Fields() const {
  std::vector<std::string> out;
  if (!value_files.empty()) out.push_back("valueFiles");
  if (values) out.push_back("values");
  if (release_name) out.push_back("releaseName");
  if (!file_parameters.empty()) out.push_back("fileParameters");
  if (skip_crds) out.push_back("skipCrds");
  if (namespace_) out.push_back("namespace");
  if (kube_version) out.push_back("kubeVersion");
  if (!api_versions.empty()) out.push_back("apiVersions");
  if (skip_tests) out.push_back("skipTests");
  if (skip_schema_validation) out.push_back("skipSchemaValidation");
  return out;
}

std::vector<std::string> ArgoCdKustomize::Fields() const {
  std::vector<std::string> out;
  if (name_prefix) out.push_back("namePrefix");
  if (name_suffix) out.push_back("nameSuffix");
  if (namespace_) out.push_back("namespace");
  if (!common_labels.empty()) out.push_back("commonLabels");
  if (!common_annotations.empty()) out.push_back("commonAnnotations");
  if (!replicas.empty()) out.push_back("replicas");
  if (!components.empty()) out.push_back("components");
  if (!patches.empty()) out.push_back("patches");
  if (kube_version) out.push_back("kubeVersion");
  if (!api_versions.empty()) out.push_back("apiVersions");
  return out;
}

absl::StatusOr<std::string> SetArgoCdKustomizeFields(const std::string& text,
                                                     const ArgoCdKustomize& fields) {
  GF_ASSIGN_OR_RETURN(YAML::Node root, LoadKustomization(text));
  // Strings whatever they look like, as kustomize writes them.
  auto string = [](const std::string& value) {
    YAML::Node node(value);
    node.SetTag("!");
    return node;
  };
  if (fields.name_prefix) root["namePrefix"] = string(*fields.name_prefix);
  if (fields.name_suffix) root["nameSuffix"] = string(*fields.name_suffix);
  if (fields.namespace_) root["namespace"] = string(*fields.namespace_);
  // kustomize edit add label|annotation: a key already there is an error unless --force.
  // `map` is the kustomization's `field` (`in` says where, "labels[0].pairs" say).
  auto add_to = [&](YAML::Node map, const std::string& in, const char* field, const char* what,
                    const std::map<std::string, std::string>& add, bool force) -> absl::Status {
    for (const auto& [key, value] : add) {
      if (!force && map[key]) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, " ", key.substr(0, 128), " is already in the kustomization's ", in,
            " (kustomize edit add ", what, " refuses it, so Argo CD's build fails; set force",
            absl::AsciiStrToUpper(std::string(1, field[0])), field + 1, ": true to replace it)"));
      }
      map[key] = string(value);
    }
    return absl::OkStatus();
  };
  auto add = [&](const char* field, const char* what, const std::map<std::string, std::string>& add,
                 bool force) -> absl::Status {
    if (add.empty()) return absl::OkStatus();
    YAML::Node map = root[field];
    if (!map || map.IsNull()) map = YAML::Node(YAML::NodeType::Map);
    if (!map.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the kustomization's ", field, " is not a mapping"));
    }
    GF_RETURN_IF_ERROR(add_to(map, field, field, what, add, force));
    root[field] = map;
    return absl::OkStatus();
  };
  if (fields.label_without_selector && !fields.common_labels.empty()) {
    // kustomize edit add label --without-selector [--include-templates]: into the first
    // entry of `labels` that leaves selectors alone and includes templates alike.
    YAML::Node labels = root["labels"];
    if (!labels || labels.IsNull()) labels = YAML::Node(YAML::NodeType::Sequence);
    if (!labels.IsSequence()) {
      return absl::InvalidArgumentError("the kustomization's labels is not a list");
    }
    auto flag = [](const YAML::Node& entry, const char* name) {
      const YAML::Node value = entry[name];
      return value && value.IsScalar() && value.Scalar() == "true";
    };
    size_t index = labels.size();
    for (size_t i = 0; i < labels.size() && index == labels.size(); ++i) {
      if (labels[i].IsMap() && !flag(labels[i], "includeSelectors") &&
          flag(labels[i], "includeTemplates") == fields.label_include_templates &&
          !labels[i]["fields"]) {
        index = i;
      }
    }
    if (index == labels.size()) {
      YAML::Node entry(YAML::NodeType::Map);
      entry["pairs"] = YAML::Node(YAML::NodeType::Map);
      entry["includeSelectors"] = false;
      if (fields.label_include_templates) entry["includeTemplates"] = true;
      labels.push_back(entry);
    }
    YAML::Node pairs = labels[index]["pairs"];
    if (!pairs || pairs.IsNull()) pairs = YAML::Node(YAML::NodeType::Map);
    if (!pairs.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the kustomization's labels[", index, "].pairs is not a mapping"));
    }
    GF_RETURN_IF_ERROR(add_to(pairs, absl::StrCat("labels[", index, "].pairs"), "commonLabels",
                              "label", fields.common_labels, fields.force_common_labels));
    labels[index]["pairs"] = pairs;
    root["labels"] = labels;
  } else {
    GF_RETURN_IF_ERROR(
        add("commonLabels", "label", fields.common_labels, fields.force_common_labels));
  }
  GF_RETURN_IF_ERROR(add("commonAnnotations", "annotation", fields.common_annotations,
                         fields.force_common_annotations));
  if (!fields.replicas.empty()) {
    // kustomize edit set replicas: an entry of that name updated, else one added.
    YAML::Node list = root["replicas"];
    if (!list || list.IsNull()) list = YAML::Node(YAML::NodeType::Sequence);
    if (!list.IsSequence()) {
      return absl::InvalidArgumentError("the kustomization's replicas is not a list");
    }
    for (const auto& [name, count] : fields.replicas) {
      bool found = false;
      for (YAML::Node entry : list) {
        if (entry.IsMap() && Scalar(entry["name"]) == name) {
          entry["count"] = count;
          found = true;
        }
      }
      if (!found) {
        YAML::Node entry(YAML::NodeType::Map);
        entry["name"] = string(name);
        entry["count"] = count;
        list.push_back(entry);
      }
    }
    root["replicas"] = list;
  }
  // kustomize edit add component: one already listed is not added again.
  auto append = [&](const char* field, const std::vector<YAML::Node>& entries,
                    bool unique) -> absl::Status {
    if (entries.empty()) return absl::OkStatus();
    YAML::Node list = root[field];
    if (!list || list.IsNull()) list = YAML::Node(YAML::NodeType::Sequence);
    if (!list.IsSequence()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the kustomization's ", field, " is not a list"));
    }
    for (const YAML::Node& entry : entries) {
      bool there = false;
      for (size_t i = 0; unique && i < list.size() && !there; ++i) {
        there = list[i].IsScalar() && list[i].Scalar() == entry.Scalar();
      }
      if (!there) list.push_back(entry);
    }
    root[field] = list;
    return absl::OkStatus();
  };
  std::vector<YAML::Node> components;
  for (const std::string& component : fields.components) components.push_back(string(component));
  GF_RETURN_IF_ERROR(append("components", components, /*unique=*/true));
  std::vector<YAML::Node> patches;
  for (const std::string& patch : fields.patches) {
    GF_ASSIGN_OR_RETURN(YAML::Node parsed, LoadBoundedYaml(patch, "a patch"));
    patches.push_back(parsed);
  }
  GF_RETURN_IF_ERROR(append("patches", patches, /*unique=*/false));
  return EmitBlockYaml(root);
}

std::string ArgoCdHelmSetValue(const std::string& value) {
  if (absl::StartsWith(value, "{") && absl::EndsWith(value, "}")) return value;
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == ',' && (i == 0 || value[i - 1] != '\\')) out += '\\';
    out += value[i];
  }
  return out;
}

}  // namespace gitfleet
