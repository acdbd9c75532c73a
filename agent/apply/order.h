#ifndef GITFLEET_AGENT_APPLY_ORDER_H_
#define GITFLEET_AGENT_APPLY_ORDER_H_

// The order objects are applied in, and its reverse for pruning:
//
//   1. CustomResourceDefinitions  2. Namespaces  3. other cluster-scoped objects
//   4. namespaced objects
//
// and within each phase by the `gitfleet.io/sync-wave` annotation (an integer, default
// 0; lower first), then by key. Prune goes the other way: namespaced objects first,
// CRDs last, so nothing is deleted out from under what depends on it.
//
//   for (const v1::ManifestObject* object : ApplyOrder(objects, namespaced)) ...

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/gitfleet/v1/types.pb.h"

namespace gitfleet {

inline constexpr char kSyncWaveAnnotation[] = "gitfleet.io/sync-wave";

// The object's sync wave; InvalidArgument when the annotation is not an integer.
absl::StatusOr<int> SyncWave(const v1::ManifestObject& object);

// `namespaced` says whether an object's kind is namespaced. Objects with an invalid
// wave sort with wave 0 (the error is reported when they are applied).
// `objects` arrive in key order.
std::vector<const v1::ManifestObject*> ApplyOrder(
    const std::vector<const v1::ManifestObject*>& objects,
    const std::function<bool(const v1::ManifestObject&)>& namespaced);

// Keys in prune order (the reverse phases; the key's namespace tells the scope).
std::vector<v1::ObjectKey> PruneOrder(std::vector<v1::ObjectKey> keys);

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_APPLY_ORDER_H_
