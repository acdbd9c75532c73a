#include "agent/metrics.h"

namespace gitfleet {

using metrics::BuildCounter;
using metrics::BuildGauge;
using metrics::BuildHistogram;

AgentMetrics::AgentMetrics(metrics::Registry& r)
    : registry(r),
      connected(BuildGauge()
                    .Name("gitfleet_agent_connected")
                    .Help("1 while the stream to the control plane is up.")
                    .Register(r)
                    .Add({})),
      connects(BuildCounter()
                   .Name("gitfleet_agent_connects_total")
                   .Help("Stream attempts to the control plane, by result.")
                   .LabelNames({"result"})
                   .Register(r)),
      updates_received(BuildCounter()
                           .Name("gitfleet_agent_updates_received_total")
                           .Help("Bundle updates received, by kind.")
                           .LabelNames({"kind"})
                           .Register(r)),
      objects_applied(BuildCounter()
                          .Name("gitfleet_agent_objects_applied_total")
                          .Help("Objects written to the target, by result.")
                          .LabelNames({"result"})
                          .Register(r)),
      objects_pruned(BuildCounter()
                         .Name("gitfleet_agent_objects_pruned_total")
                         .Help("Objects deleted because they left their bundle, by result.")
                         .LabelNames({"result"})
                         .Register(r)),
      hook_runs(BuildCounter()
                    .Name("gitfleet_agent_hook_runs_total")
                    .Help("Hook runs that finished, by sync phase and result.")
                    .LabelNames({"phase", "result"})
                    .Register(r)),
      objects_unchanged(BuildCounter()
                            .Name("gitfleet_agent_objects_unchanged_total")
                            .Help("Objects skipped because they were already applied.")
                            .Register(r)
                            .Add({})),
      drift_corrections(BuildCounter()
                            .Name("gitfleet_agent_drift_corrections_total")
                            .Help("Live objects re-applied because they drifted.")
                            .Register(r)
                            .Add({})),
      drift_events(BuildCounter()
                       .Name("gitfleet_agent_drift_events_total")
                       .Help("Live objects found to differ from what was applied.")
                       .Register(r)
                       .Add({})),
      apply_seconds(BuildHistogram()
                        .Name("gitfleet_agent_apply_duration_seconds")
                        .Help("Time to apply one bundle revision.")
                        .Register(r)
                        .Add({}, metrics::ExponentialBuckets(0.001, 2, 16))),
      bundles(BuildGauge()
                  .Name("gitfleet_agent_bundles")
                  .Help("Bundles held, by sync state.")
                  .LabelNames({"sync_state"})
                  .Register(r)),
      bundle_health(BuildGauge()
                        .Name("gitfleet_agent_bundle_health")
                        .Help("Bundles held, by health.")
                        .LabelNames({"health"})
                        .Register(r)),
      objects_left_unmanaged(
          BuildGauge()
              .Name("gitfleet_agent_objects_left_unmanaged")
              .Help("Objects that left a bundle while prune was off, still applied and no "
                    "longer managed (listed in the bundle's status).")
              .Register(r)
              .Add({})),
      objects_left_to_prune(
          BuildGauge()
              .Name("gitfleet_agent_objects_left_to_prune")
              .Help("Objects of bundles removed from this cluster that could not be pruned yet "
                    "and are tried again (the cluster's Removal condition says why).")
              .Register(r)
              .Add({})),
      objects_handed_over(
          BuildGauge()
              .Name("gitfleet_agent_objects_handed_over")
              .Help("Objects that left a bundle and stay in place, unmanaged meanwhile, for "
                    "another bundle that holds them now and whose revision has not been "
                    "applied here yet (the leaving bundle's status names it).")
              .Register(r)
              .Add({})),
      objects_not_reconciled(
          BuildGauge()
              .Name("gitfleet_agent_objects_not_reconciled")
              .Help("Objects whose live object turns reconciling off (annotated "
                    "gitfleet.io/reconcile or kustomize.toolkit.fluxcd.io/reconcile: "
                    "disabled), left as they are: no drift heal, no apply, no prune.")
              .Register(r)
              .Add({})),
      kube_requests(BuildCounter()
                        .Name("gitfleet_agent_kube_requests_total")
                        .Help("Kubernetes API requests, by method and HTTP code (0: none).")
                        .LabelNames({"method", "code"})
                        .Register(r)),
      drift_watches(BuildGauge()
                        .Name("gitfleet_agent_drift_watches")
                        .Help("The change watches of the kinds the bundles hold, by state: "
                              "watching, starting (listing, or waiting after a failure), "
                              "forbidden (403: checked on the periodic checks alone), "
                              "unwatched (past --max-drift-watches, or not served); "
                              "by_namespace: kinds watched in each of their namespaces; "
                              "as_account: watches made as a bundle's service account, where "
                              "the agent may not watch itself.")
                        .LabelNames({"state"})
                        .Register(r)) {}

}  // namespace gitfleet
