#include "controlplane/render/values.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-' || c == '/';
}

struct Reference {
  std::string name;
  std::optional<std::string> fallback;
};

// Walks `text`, handing literal runs to `literal` and references to `reference`; `other`
// gets each ${...} form that is not ours (left as written), when it is given.
template <typename Literal, typename Ref>
absl::Status Scan(absl::string_view text, Literal literal, Ref reference,
                  const std::function<void(absl::string_view)>& other = nullptr) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t dollar = text.find('$', pos);
    if (dollar == absl::string_view::npos) {
      literal(text.substr(pos));
      break;
    }
    literal(text.substr(pos, dollar - pos));
    if (text.substr(dollar, 3) == "$${") {
      literal("${");
      pos = dollar + 3;
      continue;
    }
    if (text.substr(dollar, 2) != "${") {
      literal("$");
      pos = dollar + 1;
      continue;
    }
    size_t start = dollar + 2;
    size_t end = start;
    while (end < text.size() && NameChar(text[end])) ++end;
    Reference ref{std::string(text.substr(start, end - start)), std::nullopt};
    size_t close = end;
    // ${name:=default} and the shell's ${name:-default} both give a default here.
    if (text.substr(end, 2) == ":=" || text.substr(end, 2) == ":-") {
      close = text.find('}', end + 2);
      if (close != absl::string_view::npos) {
        ref.fallback = std::string(text.substr(end + 2, close - end - 2));
        if (ref.fallback->find('\n') != std::string::npos) close = absl::string_view::npos;
      }
    }
    if (ref.name.empty() || close == absl::string_view::npos || close >= text.size() ||
        text[close] != '}') {
      // Any other ${...} (a shell's ${#a[@]}, ${x%%y}, an unclosed ${) is not ours: it
      // stays as written, so scripts and configs in ConfigMaps survive.
      if (other) {
        size_t shown = text.find_first_of("}\n", start);
        shown = shown == absl::string_view::npos ? text.size() : shown + (text[shown] == '}');
        other(text.substr(dollar, std::min<size_t>(shown - dollar, 40)));
      }
      literal("${");
      pos = start;
      continue;
    }
    if (absl::Status s = reference(ref); !s.ok()) return s;
    pos = close + 1;
  }
  return absl::OkStatus();
}

}  // namespace

bool Agrees(const ReadValues& read, const Values& values) {
  for (const auto& [name, value] : read) {
    auto it = values.find(name);
    if (value.has_value() ? it == values.end() || it->second != *value : it != values.end()) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::string> Substitute(absl::string_view text, const Values& values,
                                       ReadValues* read) {
  std::string out;
  out.reserve(text.size());
  absl::Status status = Scan(
      text, [&](absl::string_view part) { out.append(part.data(), part.size()); },
      [&](const Reference& ref) -> absl::Status {
        auto it = values.find(ref.name);
        if (read != nullptr) {
          (*read)[ref.name] =
              it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
        }
        if (it != values.end()) {
          out += it->second;
        } else if (ref.fallback.has_value()) {
          out += *ref.fallback;
        } else {
          return absl::InvalidArgumentError(absl::StrCat("variable ${", ref.name,
                                                         "} has no value and no default (write ${",
                                                         ref.name, ":=default} to give one)"));
        }
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::set<std::string>> VariableNames(absl::string_view text) {
  std::set<std::string> names;
  absl::Status status = Scan(
      text, [](absl::string_view) {},
      [&](const Reference& ref) {
        names.insert(ref.name);
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return names;
}

std::vector<std::string> UnsubstitutedForms(absl::string_view text) {
  std::vector<std::string> forms;
  absl::Status status = Scan(
      text, [](absl::string_view) {}, [](const Reference&) { return absl::OkStatus(); },
      [&](absl::string_view form) {
        if (std::find(forms.begin(), forms.end(), form) == forms.end()) forms.emplace_back(form);
      });
  return forms;
}

bool SubstitutionDisabled(const v1::ManifestObject& object) {
  // Most objects say nothing of it: no parse for them.
  if (object.yaml().find("/substitute") == std::string::npos) return false;
  try {
    const YAML::Node metadata = YAML::Load(object.yaml())["metadata"];
    if (!metadata || !metadata.IsMap()) return false;
    // gitfleet's, or Flux's (kustomize-controller skips an object labelled or annotated
    // so), so that a repository moved from Flux keeps its scripts' ${...} as written.
    for (const char* field : {"annotations", "labels"}) {
      const YAML::Node entries = metadata[field];
      if (!entries || !entries.IsMap()) continue;
      for (const char* key : {"gitfleet.io/substitute", "kustomize.toolkit.fluxcd.io/substitute"}) {
        const YAML::Node value = entries[key];
        if (value && value.IsScalar() && value.Scalar() == "disabled") return true;
      }
    }
  } catch (const YAML::Exception&) {
    // Rendered objects parse; one that does not is left to substitution's own errors.
  }
  return false;
}

absl::StatusOr<ObjectSet> SubstituteObjects(const ObjectSet& objects, const Values& values,
                                            ReadValues* read) {
  ObjectSet out;
  out.CopyDeclarationsFrom(objects);
  for (const auto& [key, object] : objects.objects()) {
    if (!HasVariables(object->yaml()) || SubstitutionDisabled(*object)) {
      if (absl::Status s = out.Add(object); !s.ok()) return s;  // shared, not copied
      continue;
    }
    const std::string origin = KeyDisplay(object->key());
    absl::StatusOr<std::string> text = Substitute(object->yaml(), values, read);
    if (!text.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ": ", text.status().message()));
    }
    absl::StatusOr<v1::ManifestObject> substituted = MakeObject(*text, origin);
    if (!substituted.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("after substituting values: ", substituted.status().message()));
    }
    if (absl::Status s = out.Add(*std::move(substituted), origin); !s.ok()) return s;
  }
  return out;
}

}  // namespace gitfleet
