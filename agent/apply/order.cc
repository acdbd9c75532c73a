#include "agent/apply/order.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/manifest/object.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

bool IsCrd(const v1::ObjectKey& key) {
  return key.group() == "apiextensions.k8s.io" && key.kind() == "CustomResourceDefinition";
}

bool IsNamespace(const v1::ObjectKey& key) {
  return key.group().empty() && key.kind() == "Namespace";
}

}  // namespace

absl::StatusOr<int> SyncWave(const v1::ManifestObject& object) {
  // Most objects have no annotation: skip the parse.
  if (object.yaml().find(kSyncWaveAnnotation) == std::string::npos) return 0;
  std::string text;
  try {
    YAML::Node node = YAML::Load(object.yaml())["metadata"]["annotations"][kSyncWaveAnnotation];
    if (!node || !node.IsScalar()) return 0;
    text = node.Scalar();
  } catch (const YAML::Exception& e) {
    return 0;
  }
  int wave = 0;
  if (!absl::SimpleAtoi(text, &wave)) {
    return absl::InvalidArgumentError(absl::StrCat(KeyDisplay(object.key()), ": annotation ",
                                                   kSyncWaveAnnotation, " is \"", text,
                                                   "\", want an integer"));
  }
  return wave;
}

std::vector<const v1::ManifestObject*> ApplyOrder(
    const std::vector<const v1::ManifestObject*>& objects,
    const std::function<bool(const v1::ManifestObject&)>& namespaced) {
  struct Entry {
    int phase;
    int wave;
    const v1::ManifestObject* object;
  };
  std::vector<Entry> entries;
  entries.reserve(objects.size());
  for (const v1::ManifestObject* listed : objects) {
    const v1::ManifestObject& object = *listed;
    int phase = IsCrd(object.key())         ? 0
                : IsNamespace(object.key()) ? 1
                : !namespaced(object)       ? 2
                                            : 3;
    absl::StatusOr<int> wave = SyncWave(object);
    entries.push_back({phase, wave.ok() ? *wave : 0, &object});
  }
  // The objects arrive ordered by key, so a stable sort keeps key order within a wave.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.phase, a.wave) < std::tie(b.phase, b.wave);
  });
  std::vector<const v1::ManifestObject*> out;
  out.reserve(entries.size());
  for (const Entry& e : entries) out.push_back(e.object);
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
