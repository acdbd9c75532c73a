#include "agent/apply/order.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/manifest/object.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

bool IsCrd(const v1::ObjectKey& key) {
  return key.group() == "apiextensions.k8s.io" && key.kind() == "CustomResourceDefinition";
}

}  // namespace

bool IsNamespace(const v1::ObjectKey& key) {
  return key.group().empty() && key.kind() == "Namespace";
}

absl::StatusOr<int> SyncWave(const v1::ManifestObject& object) {
  // Most objects have no annotation: skip the parse. Both names end in "/sync-wave".
  if (object.yaml().find("/sync-wave") == std::string::npos) return 0;
  YAML::Node metadata;
  try {
    metadata = YAML::Load(object.yaml())["metadata"];
  } catch (const YAML::Exception& e) {
    return 0;
  }
  absl::StatusOr<int> wave = SyncWaveOfMetadata(metadata);
  if (!wave.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(KeyDisplay(object.key()), ": ", wave.status().message()));
  }
  return *wave;
}

std::vector<OrderedObject> ApplyOrder(
    const std::vector<const v1::ManifestObject*>& objects,
    const std::function<bool(const v1::ManifestObject&)>& namespaced) {
  struct Entry {
    int group;  // 0 CRDs, 1 Namespaces, 2 the rest
    int wave;
    int scope;  // 0 cluster-scoped, 1 namespaced (within the rest)
    const v1::ManifestObject* object;
  };
  std::vector<Entry> entries;
  entries.reserve(objects.size());
  for (const v1::ManifestObject* listed : objects) {
    const v1::ManifestObject& object = *listed;
    const int group = IsCrd(object.key()) ? 0 : IsNamespace(object.key()) ? 1 : 2;
    const int scope = group == 2 && namespaced(object) ? 1 : 0;
    absl::StatusOr<int> wave = SyncWave(object);
    entries.push_back({group, wave.ok() ? *wave : 0, scope, &object});
  }
  // The objects arrive ordered by key, so a stable sort keeps key order within a wave.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.group, a.wave, a.scope) < std::tie(b.group, b.wave, b.scope);
  });
  std::vector<OrderedObject> out;
  out.reserve(entries.size());
  for (const Entry& e : entries) out.push_back({e.object, e.wave, e.group == 2});
  return out;
}

std::vector<v1::ObjectKey> PruneOrder(std::vector<v1::ObjectKey> keys) {
  auto phase = [](const v1::ObjectKey& key) {
    return IsCrd(key) ? 3 : IsNamespace(key) ? 2 : key.namespace_().empty() ? 1 : 0;
  };
  std::stable_sort(keys.begin(), keys.end(), [&](const v1::ObjectKey& a, const v1::ObjectKey& b) {
    return phase(a) < phase(b);
  });
  return keys;
}

}  // namespace gitfleet
