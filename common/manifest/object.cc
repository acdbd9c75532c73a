#include "common/manifest/object.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/manifest/hash.h"
#include "common/manifest/hook.h"
#include "common/manifest/string_fields.h"
#include "common/manifest/yaml.h"
#include "common/manifest/yaml_json.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

std::string Where(absl::string_view file, int zero_based_line) {
  return absl::StrCat(file, ":", zero_based_line + 1);
}

// Reads a required non-empty scalar field of `node`, or explains what is wrong.
absl::StatusOr<std::string> RequiredScalar(const YAML::Node& node, absl::string_view field,
                                           absl::string_view where) {
  YAML::Node value = node[std::string(field)];
  if (!value || value.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": object has no ", field));
  }
  if (!value.IsScalar() || value.Scalar().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", field, " must be a non-empty string"));
  }
  return value.Scalar();
}

// A document SOPS encrypted: a top-level `sops` mapping with its message authentication
// code (every SOPS version writes `mac`) and the version or time it was written.
bool IsSopsEncrypted(const YAML::Node& doc) {
  const YAML::Node sops = doc["sops"];
  return sops && sops.IsMap() && sops["mac"] && (sops["version"] || sops["lastmodified"]);
}

absl::StatusOr<v1::ManifestObject> ObjectFromNode(const YAML::Node& doc, absl::string_view where) {
  if (!doc.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": document is not a mapping"));
  }
  absl::StatusOr<std::string> api_version = RequiredScalar(doc, "apiVersion", where);
  if (!api_version.ok()) return api_version.status();
  absl::StatusOr<std::string> kind = RequiredScalar(doc, "kind", where);
  if (!kind.ok()) return kind.status();
  if (IsSopsEncrypted(doc)) {
    // Flux decrypts these after its build; applied as they are, the ciphertext would
    // replace what the cluster holds (stringData is taken as it is). Left out, the object
    // would be pruned. Neither is safe, so the render fails and the bundle keeps its last
    // good revision.
    const YAML::Node metadata = doc["metadata"];
    const YAML::Node name = metadata && metadata.IsMap() ? metadata["name"] : YAML::Node();
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": ", *kind, name && name.IsScalar() ? absl::StrCat(" ", name.Scalar()) : "",
        " is encrypted with SOPS (it has sops metadata), and applying the ciphertext would "
        "replace what the cluster holds: give the bundle --decrypt=sops (the control plane "
        "decrypts it with its --sops-age-key-file, as Flux's decryption.provider: sops does), "
        "or keep the secret out of the bundle (an ExternalSecret or SealedSecret object)"));
  }
  YAML::Node metadata = doc["metadata"];
  if (!metadata || !metadata.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", *kind, " has no metadata mapping"));
  }
  absl::StatusOr<std::optional<Hook>> hook = HookOfMetadata(metadata);
  if (!hook.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", *kind, ": ", hook.status().message()));
  }
  if (!hook->has_value()) {
    // A wave that is not a number would fail on every cluster: refuse the render instead.
    absl::StatusOr<int> wave = SyncWaveOfMetadata(metadata);
    if (!wave.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", *kind, ": ", wave.status().message()));
    }
  }
  absl::StatusOr<std::string> name =
      RequiredScalar(metadata, "name", absl::StrCat(where, ": ", *kind));
  if (!name.ok()) {
    absl::StatusOr<std::string> generate_name =
        RequiredScalar(metadata, "generateName", absl::StrCat(where, ": ", *kind));
    if (!generate_name.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", *kind, " has no metadata.name"));
    }
    if (!hook->has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", *kind, " has metadata.generateName \"", *generate_name,
                       "\" but no metadata.name: only a hook (annotation ", kArgoHookAnnotation,
                       " or ", kHelmHookAnnotation, ") may be named by the server"));
    }
    // The key carries the generateName: unique within the bundle like any name.
    name = *generate_name;
  }
  v1::ManifestObject object;
  v1::ObjectKey* key = object.mutable_key();
  std::vector<std::string> parts = absl::StrSplit(*api_version, '/');
  if (parts.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": malformed apiVersion \"", *api_version, "\""));
  }
  key->set_group(parts.size() == 2 ? parts[0] : "");
  key->set_kind(*kind);
  key->set_name(*name);
  YAML::Node ns = metadata["namespace"];
  if (ns && !ns.IsNull()) {
    if (!ns.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": metadata.namespace must be a string"));
    }
    key->set_namespace_(ns.Scalar());
  }
  object.set_api_version(*api_version);
  absl::StatusOr<std::string> yaml = EmitBlockYaml(doc);
  if (!yaml.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", yaml.status().message()));
  }
  object.set_yaml(*std::move(yaml));
  // As every agent will read it (the node, not the text emitted from it: the same object,
  // as yaml_fuzzer checks, at a seventh of the cost of parsing it again): what kubectl
  // would refuse (a tag that does not fit, a number where Kubernetes takes a string) fails
  // the render once, naming the field, instead of each cluster's apply.
  absl::StatusOr<nlohmann::json> as_kubectl_reads_it = YamlNodeToJson(doc);
  absl::Status typed = as_kubectl_reads_it.ok()
                           ? CheckStringFields(key->group(), *kind, *as_kubectl_reads_it)
                           : as_kubectl_reads_it.status();
  if (!typed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", KeyDisplay(*key), ": ", typed.message()));
  }
  object.set_content_hash(Sha256Hex(object.yaml()));
  return object;
}

}  // namespace

std::string KeyString(const v1::ObjectKey& key) {
  return absl::StrCat(key.group(), "/", key.kind(), "/", key.namespace_(), "/", key.name());
}

absl::StatusOr<v1::ObjectKey> ParseKeyString(absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  if (parts.size() != 4 || parts[1].empty() || parts[3].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("object key \"", text, "\" is not group/kind/namespace/name"));
  }
  v1::ObjectKey key;
  key.set_group(parts[0]);
  key.set_kind(parts[1]);
  key.set_namespace_(parts[2]);
  key.set_name(parts[3]);
  return key;
}

std::string KeyDisplay(const v1::ObjectKey& key) {
  if (key.namespace_().empty()) return absl::StrCat(key.kind(), " ", key.name());
  return absl::StrCat(key.kind(), " ", key.namespace_(), "/", key.name());
}

absl::StatusOr<std::vector<v1::ManifestObject>> ParseManifests(absl::string_view text,
                                                               absl::string_view file) {
  // Bounded first: an alias bomb or a pathological nesting is refused before any node is
  // built, and long before one is emitted.
  // A key set twice is refused too, as kubectl's strict validation refuses it.
  YamlLimits limits;
  limits.refuse_duplicate_keys = true;
  if (absl::Status bounded = CheckYamlBounds(text, file, limits); !bounded.ok()) return bounded;
  // What kubectl's reader refuses (bytes that are not UTF-8, control characters) yaml-cpp
  // reads into values no API server takes. A UTF-16 or UTF-32 file (its byte order mark)
  // is YAML to both.
  const bool wide = absl::StartsWith(text, "\xFF\xFE") || absl::StartsWith(text, "\xFE\xFF") ||
                    absl::StartsWith(text, absl::string_view("\0\0\xFE\xFF", 4));
  if (absl::Status characters = CheckGoYamlCharacters(text); !wide && !characters.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": ", characters.message(), " (kubectl refuses such a file too: write it as UTF-8)"));
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(file, e.mark.line), ": invalid YAML: ", e.msg));
  }
  std::vector<v1::ManifestObject> objects;
  try {
    for (const YAML::Node& raw : docs) {
      if (!raw || raw.IsNull()) continue;
      const int line = raw.Mark().line;
      std::string where = Where(file, line);
      // `<<: *defaults` stands for the keys it merges, as kubectl reads it.
      absl::StatusOr<YAML::Node> merged = ResolveMergeKeys(raw);
      if (!merged.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(file, ": ", merged.status().message()));
      }
      const YAML::Node doc = *std::move(merged);
      // A List, or any kind's list (`kubectl get deployments -o yaml` writes a
      // DeploymentList): its items are the objects, as kubectl apply takes them.
      if (doc.IsMap() && doc["kind"] && doc["kind"].IsScalar() &&
          absl::EndsWith(doc["kind"].Scalar(), "List") && doc["items"]) {
        if (!doc["items"].IsSequence()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": List items must be a sequence"));
        }
        for (const YAML::Node& item : doc["items"]) {
          // (A merged document's items have no marks of their own: its line, then.)
          absl::StatusOr<v1::ManifestObject> object =
              ObjectFromNode(item, Where(file, item.Mark().is_null() ? line : item.Mark().line));
          if (!object.ok()) return object.status();
          objects.push_back(*std::move(object));
        }
        continue;
      }
      absl::StatusOr<v1::ManifestObject> object = ObjectFromNode(doc, where);
      if (!object.ok()) return object.status();
      objects.push_back(*std::move(object));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(Where(file, e.mark.line), ": ", e.msg));
  }
  return objects;
}

absl::StatusOr<v1::ManifestObject> MakeObject(absl::string_view yaml, absl::string_view origin) {
  absl::StatusOr<std::vector<v1::ManifestObject>> objects = ParseManifests(yaml, origin);
  if (!objects.ok()) return objects.status();
  if (objects->size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": want exactly one object, found ", objects->size()));
  }
  return std::move((*objects)[0]);
}

absl::Status ObjectSet::Add(v1::ManifestObject object, absl::string_view origin) {
  return Add(std::make_shared<const v1::ManifestObject>(std::move(object)), origin);
}

absl::Status ObjectSet::Add(Object object, absl::string_view origin) {
  std::string key = KeyString(object->key());
  auto [it, added] = objects_.try_emplace(key, object);
  if (!added) {
    auto first = origins_.find(key);
    const std::string display = KeyDisplay(object->key());
    return absl::AlreadyExistsError(
        absl::StrCat(origin.empty() ? absl::string_view(display) : origin, ": duplicate object ",
                     display, " (also defined at ",
                     first != origins_.end() ? first->second : KeyDisplay(it->second->key()), ")"));
  }
  if (!origin.empty()) origins_.emplace(std::move(key), std::string(origin));
  return absl::OkStatus();
}

void ObjectSet::Put(v1::ManifestObject object) {
  std::string key = KeyString(object.key());
  origins_.erase(key);
  objects_[std::move(key)] = std::make_shared<const v1::ManifestObject>(std::move(object));
}

bool ObjectSet::Remove(const std::string& key) {
  origins_.erase(key);
  return objects_.erase(key) > 0;
}

size_t ObjectSet::bytes() const {
  size_t total = 0;
  for (const auto& [key, object] : objects_) total += object->yaml().size();
  return total;
}

std::string ComputeRevision(const ObjectSet& set, const v1::SyncOptions& sync,
                            absl::string_view target_namespace) {
  Sha256 h;
  h.UpdateField("gitfleet.revision.v1");
  h.UpdateField(sync.prune() ? "prune" : "keep");
  h.UpdateField(sync.self_heal() ? "self-heal" : "no-self-heal");
  // Only when set, so revisions made before the option existed keep their ids.
  if (sync.create_namespace()) h.UpdateField("create-namespace");
  if (sync.keep_on_removal()) h.UpdateField("keep-on-removal");
  if (sync.prune_last()) h.UpdateField("prune-last");
  if (!sync.service_account().empty()) {
    h.UpdateField("service-account");
    h.UpdateField(sync.service_account());
  }
  for (const std::string& allowed : sync.allowed_namespaces()) {
    h.UpdateField("allowed-namespace");
    h.UpdateField(allowed);
  }
  for (const std::string& kind : sync.allowed_cluster_kinds()) {
    h.UpdateField("allowed-cluster-kind");
    h.UpdateField(kind);
  }
  for (const std::string& label : sync.namespace_labels()) {
    h.UpdateField("namespace-label");
    h.UpdateField(label);
  }
  for (const std::string& annotation : sync.namespace_annotations()) {
    h.UpdateField("namespace-annotation");
    h.UpdateField(annotation);
  }
  for (const v1::IgnoreDifference& rule : sync.ignore_differences()) {
    h.UpdateField("ignore-difference");
    for (const std::string* field :
         {&rule.group(), &rule.kind(), &rule.namespace_(), &rule.name()}) {
      h.UpdateField(*field);
    }
    for (const std::string& pointer : rule.json_pointers()) h.UpdateField(pointer);
  }
  h.UpdateField(target_namespace);
  for (const auto& [key, object] : set.objects()) {
    h.UpdateField(key);
    h.UpdateField(object->content_hash());
  }
  return h.FinishHex();
}

namespace {
bool ValidPointer(absl::string_view pointer) {
  if (pointer.empty() || pointer[0] != '/' || pointer.size() > 256) return false;
  for (size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] == '~' &&
        (i + 1 == pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))) {
      return false;
    }
    if (static_cast<unsigned char>(pointer[i]) < 0x20) return false;
  }
  return true;
}
}  // namespace

absl::StatusOr<v1::IgnoreDifference> ParseIgnoreDifference(absl::string_view text) {
  const std::string shown(text.substr(0, 256));
  const size_t equals = text.find('=');
  if (equals == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        shown,
        " is not [GROUP/]KIND[:NAMESPACE/NAME]=/POINTER (e.g. apps/Deployment=/spec/replicas)"));
  }
  absl::string_view what = text.substr(0, equals);
  v1::IgnoreDifference rule;
  if (size_t colon = what.find(':'); colon != absl::string_view::npos) {
    absl::string_view object = what.substr(colon + 1);
    what = what.substr(0, colon);
    if (size_t slash = object.find('/'); slash != absl::string_view::npos) {
      rule.set_namespace_(std::string(object.substr(0, slash)));
      object = object.substr(slash + 1);
    }
    rule.set_name(std::string(object));
    if (rule.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(shown, ": names no object after ':'"));
    }
  }
  if (size_t slash = what.rfind('/'); slash != absl::string_view::npos) {
    rule.set_group(std::string(what.substr(0, slash)));
    what = what.substr(slash + 1);
  }
  rule.set_kind(std::string(what));
  for (absl::string_view pointer : absl::StrSplit(text.substr(equals + 1), ',')) {
    rule.add_json_pointers(std::string(pointer));
  }
  v1::SyncOptions one;
  *one.add_ignore_differences() = rule;
  if (absl::Status s = CheckIgnoreDifferences(one); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(shown, ": ", s.message()));
  }
  return rule;
}

std::string DescribeIgnoreDifference(const v1::IgnoreDifference& rule) {
  std::string out =
      rule.group().empty() ? rule.kind() : absl::StrCat(rule.group(), "/", rule.kind());
  if (!rule.name().empty()) {
    absl::StrAppend(&out, ":", rule.namespace_().empty() ? "" : rule.namespace_() + "/",
                    rule.name());
  }
  absl::StrAppend(&out, "=");
  for (int i = 0; i < rule.json_pointers_size(); ++i) {
    absl::StrAppend(&out, i > 0 ? "," : "", rule.json_pointers(i));
  }
  return out;
}

absl::Status CheckIgnoreDifferences(const v1::SyncOptions& sync) {
  if (sync.ignore_differences_size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(sync.ignore_differences_size(), " ignored differences; at most 64"));
  }
  for (const v1::IgnoreDifference& rule : sync.ignore_differences()) {
    const std::string shown = DescribeIgnoreDifference(rule).substr(0, 256);
    auto valid_name = [](const std::string& s) {
      return s.size() <= 253 && s.find_first_of("/:= ,\t\n") == std::string::npos;
    };
    if (rule.kind().empty() || !valid_name(rule.kind()) || !valid_name(rule.group()) ||
        !valid_name(rule.namespace_()) || !valid_name(rule.name())) {
      return absl::InvalidArgumentError(absl::StrCat("ignored difference ", shown,
                                                     ": a kind (and group, namespace, name) "
                                                     "as Kubernetes writes them"));
    }
    if (rule.json_pointers_size() == 0 || rule.json_pointers_size() > 16) {
      return absl::InvalidArgumentError(
          absl::StrCat("ignored difference ", shown, ": 1 to 16 JSON pointers"));
    }
    for (const std::string& pointer : rule.json_pointers()) {
      if (!ValidPointer(pointer)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "ignored difference ", shown, ": \"", pointer.substr(0, 256),
            "\" is not a JSON pointer (RFC 6901: /spec/replicas, ~1 for a / in a key)"));
      }
      if (pointer == "/metadata" || absl::StartsWith(pointer, "/metadata/name") ||
          absl::StartsWith(pointer, "/metadata/namespace") || pointer == "/kind" ||
          pointer == "/apiVersion" || pointer == "/metadata/labels" ||
          pointer == "/metadata/labels/gitfleet.io~1bundle") {
        return absl::InvalidArgumentError(
            absl::StrCat("ignored difference ", shown, ": ", pointer,
                         " is what names the object or its bundle; it cannot be left to others"));
      }
    }
  }
  return absl::OkStatus();
}

namespace {
bool NameChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.'; }
// A qualified name as Kubernetes takes it for label and annotation keys.
bool ValidMetadataKey(absl::string_view key) {
  absl::string_view name = key;
  if (size_t slash = key.rfind('/'); slash != absl::string_view::npos) {
    absl::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty() || prefix.size() > 253) return false;
    for (char c : prefix) {
      if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' || c == '.')) return false;
    }
  }
  if (name.empty() || name.size() > 63 || !absl::ascii_isalnum(name.front()) ||
      !absl::ascii_isalnum(name.back())) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), NameChar);
}
bool ValidLabelValue(absl::string_view value) {
  if (value.empty()) return true;
  if (value.size() > 63 || !absl::ascii_isalnum(value.front()) ||
      !absl::ascii_isalnum(value.back())) {
    return false;
  }
  return std::all_of(value.begin(), value.end(), NameChar);
}
}  // namespace

absl::Status CheckNamespaceMetadata(const v1::SyncOptions& sync) {
  for (const auto& [what, list] :
       {std::pair<const char*, const google::protobuf::RepeatedPtrField<std::string>*>{
            "namespace label", &sync.namespace_labels()},
        {"namespace annotation", &sync.namespace_annotations()}}) {
    if (list->size() > 32) {
      return absl::InvalidArgumentError(absl::StrCat(list->size(), " ", what, "s; at most 32"));
    }
    size_t bytes = 0;
    std::string previous;
    for (const std::string& entry : *list) {
      bytes += entry.size();
      const size_t equals = entry.find('=');
      const std::string shown = entry.substr(0, 256);
      if (equals == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(what, " ", shown, " is not KEY=VALUE"));
      }
      const absl::string_view key = absl::string_view(entry).substr(0, equals);
      const absl::string_view value = absl::string_view(entry).substr(equals + 1);
      if (!ValidMetadataKey(key)) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " ", shown, ": the key is not a name Kubernetes takes"));
      }
      if (std::string(what) == "namespace label" && !ValidLabelValue(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " ", shown,
                         ": the value is not a label value (63 characters of [A-Za-z0-9-_.])"));
      }
      if (!previous.empty() && std::string(key) <= previous) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " ", shown, ": keys must be sorted, each once"));
      }
      previous = std::string(key);
    }
    if (bytes > 64 << 10) {
      return absl::InvalidArgumentError(absl::StrCat(what, "s: more than 64 KiB"));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> IgnoredPointers(
    const google::protobuf::RepeatedPtrField<v1::IgnoreDifference>& rules, const v1::ObjectKey& key,
    absl::string_view ns) {
  std::vector<std::string> out;
  for (const v1::IgnoreDifference& rule : rules) {
    if ((rule.group() == "*" || rule.group() == key.group()) &&
        (rule.kind() == "*" || rule.kind() == key.kind()) &&
        (rule.namespace_().empty() || rule.namespace_() == ns) &&
        (rule.name().empty() || rule.name() == key.name())) {
      out.insert(out.end(), rule.json_pointers().begin(), rule.json_pointers().end());
    }
  }
  return out;
}

ObjectDelta ComputeDelta(const ObjectSet& base, const ObjectSet& target) {
  ObjectDelta delta;
  for (const auto& [key, object] : target.objects()) {
    auto it = base.objects().find(key);
    if (it == base.objects().end() ||
        (it->second != object && it->second->content_hash() != object->content_hash())) {
      delta.upserts.push_back(object.get());
    }
  }
  for (const auto& [key, object] : base.objects()) {
    if (target.objects().count(key) == 0) delta.removed.push_back(object->key());
  }
  return delta;
}

}  // namespace gitfleet
