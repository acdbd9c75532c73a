#ifndef GITFLEET_CONTROLPLANE_READINESS_H_
#define GITFLEET_CONTROLPLANE_READINESS_H_

// Whether the control plane should get traffic (/readyz and the gRPC health service):
// its store open, loaded and answering, and its servers serving, not starting or
// draining.
//
//   Readiness readiness;                       // starting
//   readiness.SetStore(store);                 // after the definitions loaded
//   readiness.SetPhase(Readiness::Phase::kServing);
//   Probe probe = readiness.Check();
//
// Thread-safe.

#include "absl/base/thread_annotations.h"
#include "common/metrics/heartbeat.h"
#include "common/sync.h"
#include "controlplane/store/store.h"

namespace gitfleet {

class Readiness {
 public:
  enum class Phase { kStarting, kServing, kDraining };

  // The store, once everything in it is loaded.
  void SetStore(Store* store);
  void SetPhase(Phase phase);
  // Reads one key of the store, so a store that stopped answering is not ready.
  Probe Check() const;

 private:
  mutable Mutex mu_;
  Store* store_ ABSL_GUARDED_BY(mu_) = nullptr;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kStarting;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_READINESS_H_
