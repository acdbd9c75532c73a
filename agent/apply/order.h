#ifndef GITFLEET_AGENT_APPLY_ORDER_H_
#define GITFLEET_AGENT_APPLY_ORDER_H_

// The order objects are applied in, and its reverse for pruning:
//
//   1. CustomResourceDefinitions  2. Namespaces  (each by wave, then key)
//   3. everything else by sync wave (lower first, default 0), cluster-scoped objects before
//      namespaced ones within a wave, then by key.
//
// The wave is the `gitfleet.io/sync-wave` annotation, else Argo CD's
// `argocd.argoproj.io/sync-wave` (an integer). CRDs and Namespaces go first whatever their
// wave: they hold or describe the other objects. Everything else is "gated": while a
// revision is being applied, an object of a wave goes only once every gated object of the
// lower waves is Healthy (the Reconciler's part; Argo CD's sync waves). Prune goes the
// other way: namespaced objects first, CRDs last, so nothing is deleted out from under
// what depends on it.
//
//   for (const OrderedObject& o : ApplyOrder(objects, namespaced)) ...

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/manifest/hook.h"
#include "proto/gitfleet/v1/types.pb.h"

namespace gitfleet {

// The object's sync wave (common/manifest/hook.h: gitfleet's annotation, else Argo CD's);
// InvalidArgument naming the object and the annotation when it is not an integer (the
// control plane refuses such a render; an older one may have sent it).
absl::StatusOr<int> SyncWave(const v1::ManifestObject& object);

// Whether `key` names a Namespace (core group).
bool IsNamespace(const v1::ObjectKey& key);

struct OrderedObject {
  const v1::ManifestObject* object;
  int wave;    // 0 when the annotation is invalid (the error is reported at its apply)
  bool gated;  // waits for the lower waves: not a CRD or Namespace
};

// `namespaced` says whether an object's kind is namespaced. `objects` arrive in key order.
std::vector<OrderedObject> ApplyOrder(
    const std::vector<const v1::ManifestObject*>& objects,
    const std::function<bool(const v1::ManifestObject&)>& namespaced);

// Keys in prune order (the reverse phases; the key's namespace tells the scope).
std::vector<v1::ObjectKey> PruneOrder(std::vector<v1::ObjectKey> keys);

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_APPLY_ORDER_H_
