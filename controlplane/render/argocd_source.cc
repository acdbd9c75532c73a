#include "controlplane/render/argocd_source.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/manifest/yaml.h"
#include "common/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// A field as Go's encoding/json finds it (Argo CD reads the file as JSON): the key of that
// exact name, else one equal to it but for case ("forcestring" for forceString).
YAML::Node Field(const YAML::Node& map, const std::string& name) {
  YAML::Node found;
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

absl::Status ReadOne(const RepoFile& file, ArgoCdSource* out) {
  YamlLimits limits;
  limits.refuse_duplicate_keys = true;  // which of two would Argo CD's reader keep?
  GF_ASSIGN_OR_RETURN(YAML::Node root, LoadBoundedYaml(file.content, file.path, limits));
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
    AddUnread(kustomize, "kustomize", {"images"}, &out->unread);
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
    AddUnread(helm, "helm", {"parameters"}, &out->unread);
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

absl::StatusOr<std::string> SetKustomizeImages(const std::string& text,
                                               const std::vector<std::string>& images) {
  GF_ASSIGN_OR_RETURN(YAML::Node root, LoadBoundedYaml(text, "the kustomization"));
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) return absl::InvalidArgumentError("the kustomization is not a mapping");
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
