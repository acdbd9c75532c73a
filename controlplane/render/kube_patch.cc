#include "controlplane/render/kube_patch.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace gitfleet {
namespace {

enum class Shape { kNull, kScalar, kMap, kSeq };

Shape ShapeOf(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return Shape::kNull;
  if (node.IsScalar()) return Shape::kScalar;
  if (node.IsMap()) return Shape::kMap;
  return Shape::kSeq;
}

std::string KeyOf(const YAML::Node& key) { return key.IsScalar() ? key.Scalar() : ""; }

// A map's value at `key`, never adding it (a const node's [] adds nothing).
YAML::Node At(const YAML::Node& map, const std::string& key) {
  if (!map.IsMap()) return YAML::Node();
  return map[key];
}

bool Equal(const YAML::Node& a, const YAML::Node& b) {
  const Shape shape = ShapeOf(a);
  if (shape != ShapeOf(b)) return false;
  switch (shape) {
    case Shape::kNull:
      return true;
    case Shape::kScalar:
      return a.Scalar() == b.Scalar();
    case Shape::kMap: {
      if (a.size() != b.size()) return false;
      for (const auto& entry : a) {
        const YAML::Node other = At(b, KeyOf(entry.first));
        if (!other.IsDefined() || !Equal(entry.second, other)) return false;
      }
      return true;
    }
    case Shape::kSeq: {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i) {
        if (!Equal(a[i], b[i])) return false;
      }
      return true;
    }
  }
  return false;
}

// A YAML::Node held in a container. yaml-cpp's assignment writes through: the node assigned
// to takes the other's data, so the algorithms that shift a container's elements (erase,
// insert, sort) would leave one element showing another's. This rebinds instead.
struct Ref {
  Ref() = default;
  Ref(const YAML::Node& n) : node(n) {}  // NOLINT: implicit, as a node is used
  Ref(const Ref& other) : node(other.node) {}
  Ref& operator=(const Ref& other) {
    node.reset(other.node);
    return *this;
  }
  YAML::Node node;
};
using Refs = std::vector<Ref>;

// A map's entries, in order, each value cloned.
using Entries = std::vector<std::pair<std::string, Ref>>;

Entries EntriesOf(const YAML::Node& map) {
  Entries entries;
  if (!map.IsMap()) return entries;
  for (const auto& entry : map) {
    entries.emplace_back(KeyOf(entry.first), Ref(YAML::Clone(entry.second)));
  }
  return entries;
}

YAML::Node MapOf(const Entries& entries) {
  YAML::Node map(YAML::NodeType::Map);
  for (const auto& [key, value] : entries) map[key] = value.node;
  return map;
}

YAML::Node SeqOf(const Refs& items) {
  YAML::Node seq(YAML::NodeType::Sequence);
  for (const Ref& item : items) seq.push_back(item.node);
  return seq;
}

std::string Child(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

// The API groups built into Kubernetes, whose kinds client-go's scheme knows: Fleet patches
// their objects with a strategic merge patch.
bool IsBuiltIn(const YAML::Node& object) {
  const YAML::Node api = At(object, "apiVersion");
  const YAML::Node kind = At(object, "kind");
  if (!api.IsDefined() || !api.IsScalar() || !kind.IsDefined() || !kind.IsScalar()) return false;
  if (kind.Scalar() == "CustomResourceDefinition") return false;
  const std::string& version = api.Scalar();
  const size_t slash = version.find('/');
  const std::string group = slash == std::string::npos ? "" : version.substr(0, slash);
  static const std::set<std::string>* const kGroups = new std::set<std::string>{
      "",
      "admissionregistration.k8s.io",
      "apps",
      "authentication.k8s.io",
      "authorization.k8s.io",
      "autoscaling",
      "batch",
      "certificates.k8s.io",
      "coordination.k8s.io",
      "discovery.k8s.io",
      "events.k8s.io",
      "extensions",
      "flowcontrol.apiserver.k8s.io",
      "internal.apiserver.k8s.io",
      "networking.k8s.io",
      "node.k8s.io",
      "policy",
      "rbac.authorization.k8s.io",
      "resource.k8s.io",
      "scheduling.k8s.io",
      "storage.k8s.io",
      "storagemigration.k8s.io",
  };
  return kGroups->count(group) > 0;
}

// The lists a strategic merge patch merges in an object of a built-in `kind`, by path (list
// items as "[]"): the key that names their items, or "" for a list of scalars merged as a set.
// Every other list is replaced. From the patchStrategy and patchMergeKey tags of
// k8s.io/api's types.
using MergeLists = std::map<std::string, std::string>;

MergeLists MergeListsOf(const std::string& kind) {
  MergeLists lists;
  auto meta = [&](const std::string& at) {
    lists[at + ".finalizers"] = "";
    lists[at + ".ownerReferences"] = "uid";
  };
  auto pod = [&](const std::string& at) {
    for (const char* containers : {"containers", "initContainers", "ephemeralContainers"}) {
      const std::string list = absl::StrCat(at, ".", containers);
      lists[list] = "name";
      lists[list + "[].ports"] = "containerPort";
      lists[list + "[].env"] = "name";
      lists[list + "[].volumeMounts"] = "mountPath";
      lists[list + "[].volumeDevices"] = "devicePath";
    }
    lists[at + ".volumes"] = "name";
    lists[at + ".imagePullSecrets"] = "name";
    lists[at + ".hostAliases"] = "ip";
    lists[at + ".topologySpreadConstraints"] = "topologyKey";
    lists[at + ".resourceClaims"] = "name";
    lists[at + ".schedulingGates"] = "name";
  };
  meta("metadata");
  if (kind == "Pod") {
    pod("spec");
  } else if (kind == "PodTemplate") {
    meta("template.metadata");
    pod("template.spec");
  } else if (kind == "Deployment" || kind == "ReplicaSet" || kind == "StatefulSet" ||
             kind == "DaemonSet" || kind == "Job" || kind == "ReplicationController") {
    meta("spec.template.metadata");
    pod("spec.template.spec");
    if (kind == "StatefulSet") meta("spec.volumeClaimTemplates[].metadata");
  } else if (kind == "CronJob") {
    meta("spec.jobTemplate.metadata");
    meta("spec.jobTemplate.spec.template.metadata");
    pod("spec.jobTemplate.spec.template.spec");
  } else if (kind == "Service") {
    lists["spec.ports"] = "port";
  } else if (kind == "ServiceAccount") {
    lists["secrets"] = "name";
  } else if (kind == "MutatingWebhookConfiguration" || kind == "ValidatingWebhookConfiguration") {
    lists["webhooks"] = "name";
  }
  return lists;
}

// `node` without the null values of its maps, at any depth: what Kubernetes takes from a
// strategic merge patch for a key the object lacks (discardNullValuesFromPatch).
YAML::Node WithoutNulls(const YAML::Node& node) {
  if (node.IsMap()) {
    Entries entries;
    for (const auto& entry : node) {
      if (entry.second.IsNull()) continue;
      entries.emplace_back(KeyOf(entry.first), Ref(WithoutNulls(entry.second)));
    }
    return MapOf(entries);
  }
  if (node.IsSequence()) {
    Refs items;
    for (const YAML::Node& item : node) items.push_back(Ref(WithoutNulls(item)));
    return SeqOf(items);
  }
  return YAML::Clone(node);
}

// `node` without what carries a `$patch` directive, at any depth; nullopt when it does itself
// (Kubernetes' removeDirectives, for a value the patch gives whole).
std::optional<YAML::Node> WithoutDirectives(const YAML::Node& node) {
  if (node.IsMap()) {
    if (At(node, "$patch").IsDefined()) return std::nullopt;
    Entries entries;
    for (const auto& entry : node) {
      if (std::optional<YAML::Node> kept = WithoutDirectives(entry.second)) {
        entries.emplace_back(KeyOf(entry.first), Ref(*kept));
      }
    }
    return MapOf(entries);
  }
  if (node.IsSequence()) {
    Refs items;
    for (const YAML::Node& item : node) {
      if (std::optional<YAML::Node> kept = WithoutDirectives(item)) items.push_back(Ref(*kept));
    }
    return SeqOf(items);
  }
  return YAML::Clone(node);
}

class StrategicMerge {
 public:
  StrategicMerge(MergeLists lists, const std::string& what)
      : lists_(std::move(lists)), what_(what) {}

  // `patch` (a map) merged into `original` (a map, or null).
  absl::StatusOr<YAML::Node> MergeMap(const YAML::Node& original, const YAML::Node& patch,
                                      const std::string& path) {
    if (const YAML::Node directive = At(patch, "$patch"); directive.IsDefined()) {
      const std::string value = directive.IsScalar() ? directive.Scalar() : "";
      if (value == "replace") {
        Entries entries = EntriesOf(patch);
        entries.erase(std::remove_if(entries.begin(), entries.end(),
                                     [](const auto& e) { return e.first == "$patch"; }),
                      entries.end());
        return MapOf(entries);
      }
      if (value == "delete") return YAML::Node(YAML::NodeType::Map);
      return Error(path, absl::StrCat("$patch: ", value.substr(0, 64),
                                      " is not one Kubernetes applies to a mapping (replace, "
                                      "delete)"));
    }
    Entries entries = EntriesOf(original);
    auto find = [&](const std::string& key) {
      return std::find_if(entries.begin(), entries.end(),
                          [&](const auto& e) { return e.first == key; });
    };
    if (const YAML::Node retain = At(patch, "$retainKeys"); retain.IsDefined()) {
      if (!retain.IsSequence()) return Error(path, "$retainKeys is not a list");
      std::set<std::string> keep;
      for (const YAML::Node& key : retain) {
        if (!key.IsScalar()) return Error(path, "$retainKeys lists a key that is not a string");
        keep.insert(key.Scalar());
      }
      for (const auto& entry : patch) {
        const std::string key = KeyOf(entry.first);
        if (entry.second.IsNull() || absl::StartsWith(key, "$")) continue;
        if (keep.count(key) == 0) {
          return Error(path, absl::StrCat("sets ", key, ", which its $retainKeys does not list"));
        }
      }
      entries.erase(std::remove_if(entries.begin(), entries.end(),
                                   [&](const auto& e) { return keep.count(e.first) == 0; }),
                    entries.end());
    }
    for (const auto& entry : patch) {
      if (!entry.first.IsScalar()) return Error(path, "a key is not a string");
      std::string key = entry.first.Scalar();
      if (key == "$retainKeys") continue;
      bool delete_list = false;
      if (absl::StartsWith(key, "$setElementOrder/")) {
        return Error(Child(path, key),
                     "is kubectl's ordering directive, which gitfleet does not apply: give the "
                     "list in the order wanted, or the whole file in the overlay");
      }
      if (absl::StartsWith(key, "$deleteFromPrimitiveList/")) {
        key = key.substr(sizeof("$deleteFromPrimitiveList/") - 1);
        if (key.empty()) return Error(path, "$deleteFromPrimitiveList/ names no list");
        delete_list = true;
      } else if (absl::StartsWith(key, "$")) {
        return Error(Child(path, key), "is no strategic-merge directive Kubernetes knows");
      }
      const std::string here = Child(path, key);
      const YAML::Node& value = entry.second;
      auto existing = find(key);
      if (value.IsNull()) {
        if (existing != entries.end()) entries.erase(existing);
        continue;
      }
      // A value given whole: its nulls and what carries a directive left out, as Kubernetes
      // does (a deletion list for a list the object lacks is no value).
      if (existing == entries.end()) {
        if (delete_list) continue;
        if (std::optional<YAML::Node> kept = WithoutDirectives(WithoutNulls(value))) {
          entries.emplace_back(key, Ref(*kept));
        }
        continue;
      }
      const YAML::Node current = existing->second.node;
      const Shape shape = ShapeOf(value);
      if (ShapeOf(current) != shape) {
        if (delete_list) continue;
        if (std::optional<YAML::Node> kept = WithoutDirectives(WithoutNulls(value))) {
          existing->second = Ref(*kept);
        } else {
          entries.erase(existing);
        }
      } else if (shape == Shape::kScalar) {
        existing->second = Ref(YAML::Clone(value));
      } else if (shape == Shape::kMap) {
        GF_ASSIGN_OR_RETURN(YAML::Node merged, MergeMap(current, value, here));
        existing->second = Ref(merged);
      } else if (auto list = lists_.find(here); list != lists_.end() || delete_list) {
        // (A deletion list deletes from any list, as Kubernetes applies it.)
        GF_ASSIGN_OR_RETURN(
            YAML::Node merged,
            MergeList(current, value, list != lists_.end() ? list->second : "", delete_list, here));
        existing->second = Ref(merged);
      } else {
        existing->second = Ref(YAML::Clone(value));  // a list Kubernetes replaces
      }
    }
    return MapOf(entries);
  }

 private:
  absl::Status Error(const std::string& path, const std::string& why) const {
    return absl::InvalidArgumentError(
        absl::StrCat(what_, ": ", path.empty() ? "the patch" : path, " ", why,
                     " (a strategic merge patch, as Fleet applies it to this kind)"));
  }

  // The value items of a list are matched by: their merge key's, or themselves.
  static YAML::Node KeyValue(const YAML::Node& item, const std::string& merge_key) {
    return merge_key.empty() ? item : At(item, merge_key);
  }

  static int IndexIn(const Refs& list, const YAML::Node& item, const std::string& merge_key) {
    const YAML::Node wanted = KeyValue(item, merge_key);
    for (size_t i = 0; i < list.size(); ++i) {
      if (Equal(KeyValue(list[i].node, merge_key), wanted)) return static_cast<int>(i);
    }
    return -1;
  }

  absl::Status CheckMergeKeys(const Refs& items, const std::string& merge_key,
                              const std::string& path) const {
    for (const Ref& ref : items) {
      const YAML::Node& item = ref.node;
      if (!item.IsMap() || !At(item, merge_key).IsDefined()) {
        return Error(path, absl::StrCat("has an item without ", merge_key,
                                        ", the key Kubernetes merges its items by"));
      }
    }
    return absl::OkStatus();
  }

  // Kubernetes' order: the patch's items in the patch's order, the others in the original's,
  // interleaved where both are in the original (strategicpatch's normalizeElementOrder).
  Refs Ordered(Refs patch_items, Refs server_only, const Refs& patch_order,
               const Refs& server_order, const std::string& merge_key) const {
    auto sort_by = [&](Refs* items, const Refs& order) {
      std::vector<std::pair<int, Ref>> indexed;
      for (const Ref& item : *items) {
        indexed.emplace_back(IndexIn(order, item.node, merge_key), item);
      }
      std::stable_sort(indexed.begin(), indexed.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      items->clear();
      for (const auto& entry : indexed) items->push_back(entry.second);
    };
    sort_by(&patch_items, patch_order);
    sort_by(&server_only, server_order);
    Refs out;
    size_t i = 0, j = 0;
    while (i < server_only.size() || j < patch_items.size()) {
      if (i >= server_only.size()) {
        out.push_back(patch_items[j++]);
      } else if (j >= patch_items.size()) {
        out.push_back(server_only[i++]);
      } else {
        const int left = IndexIn(server_order, server_only[i].node, merge_key);
        const int right = IndexIn(server_order, patch_items[j].node, merge_key);
        if (left >= 0 && right >= 0 && left < right) {
          out.push_back(server_only[i++]);
        } else {
          out.push_back(patch_items[j++]);
        }
      }
    }
    return out;
  }

  absl::StatusOr<YAML::Node> MergeList(const YAML::Node& original, const YAML::Node& patch,
                                       const std::string& merge_key, bool delete_list,
                                       const std::string& path) {
    Refs server, patched;
    for (const YAML::Node& item : original) server.push_back(Ref(YAML::Clone(item)));
    for (const YAML::Node& item : patch) patched.push_back(Ref(item));
    if (server.empty() && patched.empty()) return SeqOf(server);
    std::optional<Shape> shape;
    for (const Refs* list : {&server, &patched}) {
      for (const Ref& item : *list) {
        const Shape s = ShapeOf(item.node);
        if (s == Shape::kSeq) return Error(path, "is a list of lists, which Kubernetes refuses");
        if (shape.has_value() && *shape != s) return Error(path, "mixes items of different types");
        shape = s;
      }
    }
    Refs merged;
    Refs server_order;
    std::string key = merge_key;
    if (*shape != Shape::kMap) {
      key.clear();  // scalars are their own key
      if (delete_list) {
        for (const Ref& item : server) {
          if (IndexIn(patched, item.node, "") < 0) merged.push_back(item);
        }
        return SeqOf(merged);
      }
      for (const Refs* list : {&server, &patched}) {
        for (const Ref& item : *list) {
          if (IndexIn(merged, item.node, "") < 0) merged.push_back(Ref(YAML::Clone(item.node)));
        }
      }
      server_order = server;
    } else {
      if (key.empty()) return Error(path, "is a list of mappings merged as a set of scalars");
      // $patch items first: delete by key, or replace the whole list.
      bool replace = false;
      Refs plain;
      for (const Ref& ref : patched) {
        const YAML::Node& item = ref.node;
        const YAML::Node directive = At(item, "$patch");
        if (!directive.IsDefined()) {
          plain.push_back(item);
          continue;
        }
        const std::string value = directive.IsScalar() ? directive.Scalar() : "";
        if (value == "delete") {
          const YAML::Node which = At(item, key);
          if (!which.IsDefined()) {
            return Error(path, absl::StrCat("deletes an item without ", key,
                                            ", the key Kubernetes merges its items by"));
          }
          server.erase(std::remove_if(server.begin(), server.end(),
                                      [&](const Ref& s) {
                                        return s.node.IsMap() && Equal(At(s.node, key), which);
                                      }),
                       server.end());
        } else if (value == "replace") {
          replace = true;
        } else {
          return Error(path, absl::StrCat("has an item with $patch: ", value.substr(0, 64),
                                          ", which Kubernetes does not apply to a list item "
                                          "(delete, replace)"));
        }
      }
      if (replace) {
        server.clear();
        for (const Ref& item : plain) server.push_back(Ref(YAML::Clone(item.node)));
        plain.clear();
      }
      patched = plain;
      GF_RETURN_IF_ERROR(CheckMergeKeys(patched, key, path));
      server_order = server;
      merged = server;
      for (const Ref& item : patched) {
        const int at = IndexIn(merged, item.node, key);
        if (at >= 0) {
          GF_ASSIGN_OR_RETURN(YAML::Node one, MergeMap(merged[at].node, item.node, path + "[]"));
          merged[at] = Ref(one);
        } else {
          merged.push_back(Ref(YAML::Clone(item.node)));
        }
      }
      GF_RETURN_IF_ERROR(CheckMergeKeys(merged, key, path));
    }
    Refs patch_items, server_only;
    for (const Ref& item : merged) {
      (IndexIn(patched, item.node, key) >= 0 ? patch_items : server_only).push_back(item);
    }
    return SeqOf(
        Ordered(std::move(patch_items), std::move(server_only), patched, server_order, key));
  }

  const MergeLists lists_;
  const std::string& what_;
};

// RFC 7386. Fleet would write a `$` key as a field: refused.
absl::StatusOr<YAML::Node> MergePatch(const YAML::Node& original, const YAML::Node& patch,
                                      const std::string& path, const std::string& what) {
  Entries entries = EntriesOf(original);
  for (const auto& entry : patch) {
    if (!entry.first.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": a key of ", path.empty() ? "the patch" : path, " is not a string"));
    }
    const std::string key = entry.first.Scalar();
    const std::string here = Child(path, key);
    if (absl::StartsWith(key, "$")) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": ", here,
          " is a strategic-merge directive, and this object's kind is not built into "
          "Kubernetes, so Fleet applies the patch as a JSON merge patch, which would write it as "
          "a field: give the whole file in the overlay instead of a patch"));
    }
    auto existing =
        std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.first == key; });
    const YAML::Node& value = entry.second;
    if (value.IsNull()) {
      if (existing != entries.end()) entries.erase(existing);
      continue;
    }
    Ref merged;
    if (value.IsMap()) {
      GF_ASSIGN_OR_RETURN(YAML::Node map,
                          MergePatch(existing != entries.end() && existing->second.node.IsMap()
                                         ? existing->second.node
                                         : YAML::Node(YAML::NodeType::Map),
                                     value, here, what));
      merged = Ref(map);
    } else {
      merged = Ref(YAML::Clone(value));  // lists are replaced
    }
    if (existing != entries.end()) {
      existing->second = merged;
    } else {
      entries.emplace_back(key, merged);
    }
  }
  return MapOf(entries);
}

// RFC 6902 over RFC 6901 pointers.
class JsonPatch {
 public:
  explicit JsonPatch(const std::string& what) : what_(what) {}

  absl::StatusOr<YAML::Node> Apply(const YAML::Node& object, const YAML::Node& operations) {
    YAML::Node doc = YAML::Clone(object);
    // The document after each operation (reset, never =: see Ref).
    auto Replace = [](YAML::Node* doc, absl::StatusOr<YAML::Node> next) -> absl::Status {
      if (!next.ok()) return next.status();
      doc->reset(*next);
      return absl::OkStatus();
    };
    int index = 0;
    for (const YAML::Node& operation : operations) {
      where_ = absl::StrCat("operation ", index++ + 1);
      if (!operation.IsMap()) return Error("is not a mapping");
      const YAML::Node op = At(operation, "op");
      if (!op.IsDefined() || !op.IsScalar()) return Error("has no op");
      where_ = absl::StrCat(where_, " (", op.Scalar().substr(0, 32), ")");
      GF_ASSIGN_OR_RETURN(std::vector<std::string> path, Pointer(operation, "path"));
      const YAML::Node value = At(operation, "value");
      const std::string& name = op.Scalar();
      if (name == "add" || name == "replace" || name == "test") {
        if (!value.IsDefined()) return Error("has no value");
      }
      const ParentEdit remove = [&](const YAML::Node& parent, const std::string& token) {
        return Remove(parent, token);
      };
      if (name == "add") {
        GF_RETURN_IF_ERROR(Replace(&doc, Add(doc, path, YAML::Clone(value))));
      } else if (name == "remove") {
        if (path.empty()) return Error("removes the whole object");
        GF_RETURN_IF_ERROR(Replace(&doc, Edit(doc, path, 0, remove)));
      } else if (name == "replace") {
        // (A key a mapping lacks is set, as Fleet's json-patch library sets it.)
        const ParentEdit replace = [&](const YAML::Node& parent, const std::string& token) {
          return Set(parent, token, YAML::Clone(value), /*insert=*/false, /*must_exist=*/false);
        };
        if (path.empty()) {
          doc.reset(YAML::Clone(value));
        } else {
          GF_RETURN_IF_ERROR(Replace(&doc, Edit(doc, path, 0, replace)));
        }
      } else if (name == "move" || name == "copy") {
        GF_ASSIGN_OR_RETURN(std::vector<std::string> from, Pointer(operation, "from"));
        GF_ASSIGN_OR_RETURN(const YAML::Node found, Get(doc, from));
        const YAML::Node moved = YAML::Clone(found);
        if (name == "move") {
          if (path.size() > from.size() && std::equal(from.begin(), from.end(), path.begin())) {
            return Error("moves a value into itself");
          }
          if (from.empty()) return Error("moves the whole object");
          GF_RETURN_IF_ERROR(Replace(&doc, Edit(doc, from, 0, remove)));
        }
        GF_RETURN_IF_ERROR(Replace(&doc, Add(doc, path, moved)));
      } else if (name == "test") {
        // (A path that is not there holds null, as Fleet's json-patch library reads it.)
        absl::StatusOr<YAML::Node> found = Get(doc, path);
        if (!Equal(found.ok() ? *found : YAML::Node(), value)) return Error("fails its test");
      } else {
        return Error("is no JSON Patch operation (add, remove, replace, move, copy, test)");
      }
    }
    return doc;
  }

 private:
  using ParentEdit =
      std::function<absl::StatusOr<YAML::Node>(const YAML::Node&, const std::string&)>;

  absl::Status Error(const std::string& why) const {
    return absl::InvalidArgumentError(
        absl::StrCat(what_, ": ", where_, " ", why, " (a JSON Patch, as Fleet applies it)"));
  }

  absl::StatusOr<std::vector<std::string>> Pointer(const YAML::Node& operation, const char* field) {
    const YAML::Node node = At(operation, field);
    if (!node.IsDefined() || !node.IsScalar()) return Error(absl::StrCat("has no ", field));
    const std::string& text = node.Scalar();
    pointer_ = text.substr(0, 256);
    std::vector<std::string> tokens;
    if (text.empty()) return tokens;
    if (text[0] != '/') return Error(absl::StrCat(field, " ", pointer_, " does not start with /"));
    for (absl::string_view part : absl::StrSplit(absl::string_view(text).substr(1), '/')) {
      for (size_t i = 0; i < part.size(); ++i) {
        if (part[i] == '~' &&
            (i + 1 == part.size() || (part[i + 1] != '0' && part[i + 1] != '1'))) {
          return Error(absl::StrCat(field, " ", pointer_, " has a ~ that is not ~0 or ~1"));
        }
      }
      tokens.push_back(absl::StrReplaceAll(part, {{"~1", "/"}, {"~0", "~"}}));
    }
    return tokens;
  }

  // An index into a list of `size` items; `end` allows size itself (and "-").
  absl::StatusOr<size_t> Index(const std::string& token, size_t size, bool end) {
    if (end && token == "-") return size;
    size_t index = 0;
    if (token.empty() || (token.size() > 1 && token[0] == '0') ||
        !std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(token, &index) || index > size || (!end && index == size)) {
      return Error(absl::StrCat("path ", pointer_, " names no item of a list of ", size));
    }
    return index;
  }

  absl::StatusOr<YAML::Node> Get(const YAML::Node& doc, const std::vector<std::string>& path) {
    // (reset, never =: a node's assignment writes through to the node it held)
    YAML::Node node = doc;
    for (const std::string& token : path) {
      if (node.IsMap()) {
        YAML::Node child = At(node, token);
        if (!child.IsDefined()) return Error(absl::StrCat("path ", pointer_, " is not there"));
        node.reset(child);
      } else if (node.IsSequence()) {
        GF_ASSIGN_OR_RETURN(size_t index, Index(token, node.size(), false));
        node.reset(node[index]);
      } else {
        return Error(absl::StrCat("path ", pointer_, " is not there"));
      }
    }
    return node;
  }

  // `node` with `edit` applied to the parent of path's last token.
  absl::StatusOr<YAML::Node> Edit(const YAML::Node& node, const std::vector<std::string>& path,
                                  size_t i, const ParentEdit& edit) {
    if (i + 1 == path.size()) return edit(node, path[i]);
    if (node.IsMap()) {
      YAML::Node child = At(node, path[i]);
      if (!child.IsDefined()) return Error(absl::StrCat("path ", pointer_, " is not there"));
      GF_ASSIGN_OR_RETURN(YAML::Node edited, Edit(child, path, i + 1, edit));
      return Set(node, path[i], edited, false, true);
    }
    if (node.IsSequence()) {
      GF_ASSIGN_OR_RETURN(size_t index, Index(path[i], node.size(), false));
      GF_ASSIGN_OR_RETURN(YAML::Node edited, Edit(node[index], path, i + 1, edit));
      return Set(node, path[i], edited, false, true);
    }
    return Error(absl::StrCat("path ", pointer_, " is not there"));
  }

  absl::StatusOr<YAML::Node> Add(const YAML::Node& doc, const std::vector<std::string>& path,
                                 const YAML::Node& value) {
    if (path.empty()) return value;
    return Edit(doc, path, 0, [&](const YAML::Node& parent, const std::string& token) {
      return Set(parent, token, value, /*insert=*/true, /*must_exist=*/false);
    });
  }

  // `parent` with `value` at `token`: a map's key set, a list's item set or inserted.
  absl::StatusOr<YAML::Node> Set(const YAML::Node& parent, const std::string& token,
                                 const YAML::Node& value, bool insert, bool must_exist) {
    if (parent.IsMap()) {
      Entries entries = EntriesOf(parent);
      auto it = std::find_if(entries.begin(), entries.end(),
                             [&](const auto& e) { return e.first == token; });
      if (it != entries.end()) {
        it->second = Ref(value);
      } else if (must_exist) {
        return Error(absl::StrCat("path ", pointer_, " is not there"));
      } else {
        entries.emplace_back(token, Ref(value));
      }
      return MapOf(entries);
    }
    if (parent.IsSequence()) {
      GF_ASSIGN_OR_RETURN(size_t index, Index(token, parent.size(), insert));
      Refs items;
      for (const YAML::Node& item : parent) items.push_back(Ref(YAML::Clone(item)));
      if (insert) {
        items.insert(items.begin() + index, Ref(value));
      } else {
        items[index] = Ref(value);
      }
      return SeqOf(items);
    }
    return Error(absl::StrCat("path ", pointer_, "'s parent is neither a mapping nor a list"));
  }

  absl::StatusOr<YAML::Node> Remove(const YAML::Node& parent, const std::string& token) {
    if (parent.IsMap()) {
      Entries entries = EntriesOf(parent);
      auto it = std::find_if(entries.begin(), entries.end(),
                             [&](const auto& e) { return e.first == token; });
      if (it == entries.end()) return Error(absl::StrCat("path ", pointer_, " is not there"));
      entries.erase(it);
      return MapOf(entries);
    }
    if (parent.IsSequence()) {
      GF_ASSIGN_OR_RETURN(size_t index, Index(token, parent.size(), false));
      Refs items;
      for (const YAML::Node& item : parent) items.push_back(Ref(YAML::Clone(item)));
      items.erase(items.begin() + index);
      return SeqOf(items);
    }
    return Error(absl::StrCat("path ", pointer_, " is not there"));
  }

  const std::string& what_;
  std::string where_;
  std::string pointer_;
};

}  // namespace

std::string KubePatchKind(const YAML::Node& object, const YAML::Node& patch) {
  if (patch.IsSequence()) return "json";
  return IsBuiltIn(object) ? "strategic" : "merge";
}

absl::StatusOr<YAML::Node> ApplyKubePatch(const YAML::Node& object, const YAML::Node& patch,
                                          const std::string& what) {
  try {
    const std::string kind = KubePatchKind(object, patch);
    if (kind == "json") return JsonPatch(what).Apply(object, patch);
    if (!patch.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is neither a mapping nor a list of JSON Patch operations"));
    }
    if (kind == "merge") return MergePatch(object, patch, "", what);
    StrategicMerge merge(MergeListsOf(At(object, "kind").Scalar()), what);
    return merge.MergeMap(object, patch, "");
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, " cannot be applied: ", e.what()));
  }
}

}  // namespace gitfleet
