#ifndef GITFLEET_AGENT_METRICS_H_
#define GITFLEET_AGENT_METRICS_H_

// Every metric the agent exports, declared in one place.

#include "common/metrics/metrics.h"

namespace gitfleet {

struct AgentMetrics {
  explicit AgentMetrics(metrics::Registry& registry);

  metrics::Registry& registry;
  metrics::Gauge& connected;
  metrics::Family<metrics::Counter>& connects;          // result=ok|error
  metrics::Family<metrics::Counter>& updates_received;  // kind=full|delta|removal
  metrics::Family<metrics::Counter>& objects_applied;   // result=ok|error
  metrics::Family<metrics::Counter>& objects_pruned;    // result=ok|error
  // Hook runs that finished, by phase (presync...) and result=succeeded|failed.
  metrics::Family<metrics::Counter>& hook_runs;
  metrics::Counter& objects_unchanged;
  metrics::Counter& drift_corrections;
  metrics::Counter& drift_events;  // drift found, corrected or not
  metrics::Histogram& apply_seconds;
  metrics::Family<metrics::Gauge>& bundles;        // sync_state
  metrics::Family<metrics::Gauge>& bundle_health;  // health
  // Objects that left a bundle while prune was off and are still applied, unmanaged.
  metrics::Gauge& objects_left_unmanaged;
  // Objects of bundles removed from the cluster that could not be pruned yet (retried).
  metrics::Gauge& objects_left_to_prune;
  // Objects that left a bundle and stay in place for another bundle that holds them now,
  // whose revision has not arrived yet (handovers).
  metrics::Gauge& objects_handed_over;
  // Objects whose live object turns reconciling off (kustomize.toolkit.fluxcd.io/reconcile
  // or gitfleet.io/reconcile: disabled), left as they are.
  metrics::Gauge& objects_not_reconciled;
  // Kubernetes API requests, by method and HTTP code ("0": no response).
  metrics::Family<metrics::Counter>& kube_requests;
  // Kinds the bundles hold, by the state of their change watch (state=watching|starting|
  // forbidden|unwatched).
  metrics::Family<metrics::Gauge>& drift_watches;
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_METRICS_H_
