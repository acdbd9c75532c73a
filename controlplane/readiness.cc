#include "controlplane/readiness.h"

#include "absl/strings/str_cat.h"

namespace gitfleet {

void Readiness::SetStore(Store* store) {
  MutexLock lock(&mu_);
  store_ = store;
}

void Readiness::SetPhase(Phase phase) {
  MutexLock lock(&mu_);
  phase_ = phase;
}

Probe Readiness::Check() const {
  Store* store;
  Phase phase;
  {
    MutexLock lock(&mu_);
    store = store_;
    phase = phase_;
  }
  if (phase == Phase::kDraining) return Probe{false, "draining: the control plane is stopping"};
  if (store == nullptr) return Probe{false, "starting: loading the store"};
  if (phase == Phase::kStarting)
    return Probe{false, "starting: the gRPC server is not serving yet"};
  absl::StatusOr<std::string> fleet = store->Get("meta", "fleet_id");
  if (!fleet.ok()) return Probe{false, absl::StrCat("store: ", fleet.status().message())};
  return Probe{};
}

}  // namespace gitfleet
