#include "common/manifest/string_fields.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace gitfleet {
namespace {

using json = nlohmann::json;

// The member `key` of `node` when it is a mapping that has it.
const json* Field(const json& node, const char* key) {
  if (!node.is_object()) return nullptr;
  auto it = node.find(key);
  return it == node.end() ? nullptr : &*it;
}

// ".key", or ["key"] for a key that is not a plain word (an annotation's domain).
std::string Member(const std::string& path, const std::string& key) {
  bool plain = !key.empty();
  for (char c : key) plain = plain && (absl::ascii_isalnum(c) || c == '-' || c == '_');
  return plain ? absl::StrCat(path, ".", key) : absl::StrCat(path, "[\"", key, "\"]");
}

std::string What(const json& value) {
  switch (value.type()) {
    case json::value_t::boolean:
      return absl::StrCat("the boolean ", value.dump(),
                          " (plain true/false, yes/no, on/off and y/n are booleans in YAML as "
                          "kubectl reads it)");
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return absl::StrCat("the number ", value.dump());
    case json::value_t::object:
      return "a mapping";
    case json::value_t::array:
      return "a sequence";
    default:
      return "not a string";
  }
}

absl::Status String(const json* value, const std::string& path) {
  if (value == nullptr || value->is_null() || value->is_string()) return absl::OkStatus();
  const bool scalar = !value->is_object() && !value->is_array();
  return absl::InvalidArgumentError(absl::StrCat(
      path, " is ", What(*value), ", where Kubernetes takes a string", scalar ? ": quote it" : ""));
}

absl::Status StringMap(const json* value, const std::string& path) {
  if (value == nullptr || value->is_null()) return absl::OkStatus();
  if (!value->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is ", What(*value), ", where Kubernetes takes a mapping of strings"));
  }
  for (const auto& [key, item] : value->items()) {
    if (absl::Status s = String(&item, Member(path, key)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status StringList(const json* value, const std::string& path) {
  if (value == nullptr || !value->is_array()) return absl::OkStatus();
  for (size_t i = 0; i < value->size(); ++i) {
    if (absl::Status s = String(&(*value)[i], absl::StrCat(path, "[", i, "]")); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ObjectMeta(const json* meta, const std::string& path) {
  if (meta == nullptr || !meta->is_object()) return absl::OkStatus();
  for (const char* field : {"name", "namespace", "generateName"}) {
    if (absl::Status s = String(Field(*meta, field), Member(path, field)); !s.ok()) return s;
  }
  for (const char* field : {"labels", "annotations"}) {
    if (absl::Status s = StringMap(Field(*meta, field), Member(path, field)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status PodSpec(const json* spec, const std::string& path) {
  if (spec == nullptr || !spec->is_object()) return absl::OkStatus();
  if (absl::Status s = StringMap(Field(*spec, "nodeSelector"), Member(path, "nodeSelector"));
      !s.ok()) {
    return s;
  }
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
    const json* containers = Field(*spec, list);
    if (containers == nullptr || !containers->is_array()) continue;
    for (size_t i = 0; i < containers->size(); ++i) {
      const json& container = (*containers)[i];
      const std::string at = absl::StrCat(Member(path, list), "[", i, "]");
      for (const char* field : {"name", "image", "workingDir"}) {
        if (absl::Status s = String(Field(container, field), Member(at, field)); !s.ok()) return s;
      }
      for (const char* field : {"command", "args"}) {
        if (absl::Status s = StringList(Field(container, field), Member(at, field)); !s.ok()) {
          return s;
        }
      }
      const json* env = Field(container, "env");
      if (env == nullptr || !env->is_array()) continue;
      for (size_t j = 0; j < env->size(); ++j) {
        const std::string var = absl::StrCat(Member(at, "env"), "[", j, "]");
        for (const char* field : {"name", "value"}) {
          if (absl::Status s = String(Field((*env)[j], field), Member(var, field)); !s.ok()) {
            return s;
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status PodTemplate(const json* tmpl, const std::string& path) {
  if (tmpl == nullptr || !tmpl->is_object()) return absl::OkStatus();
  if (absl::Status s = ObjectMeta(Field(*tmpl, "metadata"), Member(path, "metadata")); !s.ok()) {
    return s;
  }
  return PodSpec(Field(*tmpl, "spec"), Member(path, "spec"));
}

// A workload's spec: its label selector and pod template.
absl::Status WorkloadSpec(const json* spec, const std::string& path) {
  if (spec == nullptr || !spec->is_object()) return absl::OkStatus();
  if (const json* selector = Field(*spec, "selector"); selector != nullptr) {
    const std::string at = Member(path, "selector");
    if (absl::Status s = StringMap(Field(*selector, "matchLabels"), Member(at, "matchLabels"));
        !s.ok()) {
      return s;
    }
  }
  return PodTemplate(Field(*spec, "template"), Member(path, "template"));
}

}  // namespace

absl::Status CheckStringFields(absl::string_view group, absl::string_view kind,
                               const json& object) {
  if (absl::Status s = ObjectMeta(Field(object, "metadata"), ".metadata"); !s.ok()) return s;
  const json* spec = Field(object, "spec");
  if (group.empty()) {
    if (kind == "ConfigMap") {
      if (absl::Status s = StringMap(Field(object, "data"), ".data"); !s.ok()) return s;
      return StringMap(Field(object, "binaryData"), ".binaryData");
    }
    if (kind == "Secret") {
      if (absl::Status s = StringMap(Field(object, "data"), ".data"); !s.ok()) return s;
      return StringMap(Field(object, "stringData"), ".stringData");
    }
    if (kind == "Service" && spec != nullptr) {
      return StringMap(Field(*spec, "selector"), ".spec.selector");
    }
    if (kind == "Pod") return PodSpec(spec, ".spec");
    if (kind == "PodTemplate") return PodTemplate(Field(object, "template"), ".template");
    if (kind == "ReplicationController" && spec != nullptr) {
      if (absl::Status s = StringMap(Field(*spec, "selector"), ".spec.selector"); !s.ok()) {
        return s;
      }
      return PodTemplate(Field(*spec, "template"), ".spec.template");
    }
    return absl::OkStatus();
  }
  if (group == "apps" && (kind == "Deployment" || kind == "ReplicaSet" || kind == "StatefulSet" ||
                          kind == "DaemonSet")) {
    return WorkloadSpec(spec, ".spec");
  }
  if (group == "batch" && kind == "Job") return WorkloadSpec(spec, ".spec");
  if (group == "batch" && kind == "CronJob" && spec != nullptr) {
    const json* job = Field(*spec, "jobTemplate");
    if (job == nullptr) return absl::OkStatus();
    if (absl::Status s = ObjectMeta(Field(*job, "metadata"), ".spec.jobTemplate.metadata");
        !s.ok()) {
      return s;
    }
    return WorkloadSpec(Field(*job, "spec"), ".spec.jobTemplate.spec");
  }
  return absl::OkStatus();
}

}  // namespace gitfleet
