#include "controlplane/metrics.h"

namespace gitfleet {

using metrics::BuildCounter;
using metrics::BuildGauge;
using metrics::BuildHistogram;
using metrics::ExponentialBuckets;

ControlPlaneMetrics::ControlPlaneMetrics(metrics::Registry& r)
    : registry(r),
      source_fetches(BuildCounter()
                         .Name("gitfleet_source_fetches_total")
                         .Help("Git fetches by source URL outcome.")
                         .LabelNames({"result"})
                         .Register(r)),
      source_fetch_seconds(BuildHistogram()
                               .Name("gitfleet_source_fetch_duration_seconds")
                               .Help("Time to fetch a Git URL.")
                               .Register(r)),
      sources_in_error(BuildGauge()
                           .Name("gitfleet_sources_in_error")
                           .Help("Sources whose last fetch failed, or whose ref it did not "
                                 "find (gitfleetctl source list says why).")
                           .Register(r)
                           .Add({})),
      standby(BuildGauge()
                  .Name("gitfleet_controlplane_standby")
                  .Help("1 while this control plane stands by for the etcd store another one "
                        "holds (served by the standby's own endpoint); 0 once it serves.")
                  .Register(r)
                  .Add({})),
      source_commits(BuildCounter()
                         .Name("gitfleet_source_commits_total")
                         .Help("New commits seen on tracked refs.")
                         .Register(r)),
      renders(BuildCounter()
                  .Name("gitfleet_renders_total")
                  .Help("Bundle renders by engine and result.")
                  .LabelNames({"engine", "result"})
                  .Register(r)),
      render_seconds(BuildHistogram()
                         .Name("gitfleet_render_duration_seconds")
                         .Help("Time to render one bundle.")
                         .LabelNames({"engine"})
                         .Register(r)),
      render_cache_hits(
          BuildCounter()
              .Name("gitfleet_render_cache_hits_total")
              .Help("Renders skipped because nothing the bundle reads changed (a good render kept, "
                    "or a failure of the content's own carried to a later commit).")
              .Register(r)),
      sibling_waits(BuildCounter()
                        .Name("gitfleet_render_sibling_waits_total")
                        .Help("Renders that dropped objects and waited for the other bundles "
                              "of their source, by how the wait ended: done (they all "
                              "rendered the commit), abandoned (given up: an object moved "
                              "between bundles may be deleted and created again).")
                        .LabelNames({"result"})
                        .Register(r)),
      connected_agents(BuildGauge()
                           .Name("gitfleet_connected_agents")
                           .Help("Agents with an open stream.")
                           .Register(r)
                           .Add({})),
      clusters(BuildGauge()
                   .Name("gitfleet_clusters")
                   .Help("Registered clusters by state: connected, disconnected (connected "
                         "before, away now), never_connected, suspended.")
                   .LabelNames({"state"})
                   .Register(r)),
      updates_sent(BuildCounter()
                       .Name("gitfleet_updates_sent_total")
                       .Help("Bundle updates sent to agents, by kind.")
                       .LabelNames({"kind"})
                       .Register(r)),
      update_bytes_sent(BuildCounter()
                            .Name("gitfleet_update_bytes_sent_total")
                            .Help("Serialized bytes of bundle updates sent to agents.")
                            .Register(r)
                            .Add({})),
      acks(BuildCounter()
               .Name("gitfleet_agent_acks_total")
               .Help("Revision acknowledgements from agents, by result.")
               .LabelNames({"result"})
               .Register(r)),
      status_reports(BuildCounter()
                         .Name("gitfleet_agent_status_reports_total")
                         .Help("Status changes reported by agents, by how they came: inside "
                               "the ACK of the revision (via=ack) or as a message of their own "
                               "(via=message; older agents, and changes between revisions).")
                         .LabelNames({"via"})
                         .Register(r)),
      agent_rejections(BuildCounter()
                           .Name("gitfleet_agent_rejections_total")
                           .Help("Agent streams refused, by reason.")
                           .LabelNames({"reason"})
                           .Register(r)),
      queued_updates(BuildGauge()
                         .Name("gitfleet_agent_queue_depth")
                         .Help("Bundle updates waiting to be written, over all agents.")
                         .Register(r)
                         .Add({})),
      coalesced_updates(BuildCounter()
                            .Name("gitfleet_agent_coalesced_updates_total")
                            .Help("Changes folded into an update already waiting for a slow "
                                  "agent's stream (it gets only the newest revision).")
                            .Register(r)
                            .Add({})),
      commit_to_applied_seconds(
          BuildHistogram()
              .Name("gitfleet_commit_to_applied_seconds")
              .Help("From a commit's timestamp to an agent reporting it applied, by bundle.")
              .LabelNames({"bundle"})
              .Register(r)),
      bundle_clusters(BuildGauge()
                          .Name("gitfleet_bundle_clusters")
                          .Help("Clusters whose last report on a bundle is in a sync state "
                                "(synced, out_of_sync, applying, failed), connected or not.")
                          .LabelNames({"bundle", "sync_state"})
                          .Register(r)),
      bundle_cluster_health(BuildGauge()
                                .Name("gitfleet_bundle_cluster_health")
                                .Help("Clusters whose last report on a bundle has a health "
                                      "(healthy, progressing, degraded, missing, unknown), "
                                      "connected or not.")
                                .LabelNames({"bundle", "health"})
                                .Register(r)),
      rollout_partition(BuildGauge()
                            .Name("gitfleet_rollout_partition")
                            .Help("The partition a bundle's rollout is on (1-based; 0: none).")
                            .LabelNames({"bundle"})
                            .Register(r)),
      rollout_paused(BuildGauge()
                         .Name("gitfleet_rollout_paused")
                         .Help("1 while a bundle's rollout is paused (by its gate or an operator).")
                         .LabelNames({"bundle"})
                         .Register(r)),
      prune_held(BuildGauge()
                     .Name("gitfleet_bundle_prune_held")
                     .Help("1 while the prune guard holds a bundle's render: it would delete "
                           "more of what the fleet runs than --max-prune allows.")
                     .LabelNames({"bundle"})
                     .Register(r)),
      rollout_partitions_passed(BuildCounter()
                                    .Name("gitfleet_rollout_partitions_passed_total")
                                    .Help("Rollout partitions passed, by bundle.")
                                    .LabelNames({"bundle"})
                                    .Register(r)),
      webhooks(BuildCounter()
                   .Name("gitfleet_webhooks_total")
                   .Help("Push webhooks, by provider (github, gitlab, gitea, gogs, bitbucket, "
                         "azuredevops, registry, unknown) and result.")
                   .LabelNames({"provider", "result"})
                   .Register(r)),
      webhook_secrets_used(
          BuildCounter()
              .Name("gitfleet_webhook_secrets_used_total")
              .Help("Verified Git push webhooks, by the position (1-based) in "
                    "--webhook-secret-file of the secret that verified them: a rotation is "
                    "done when the old one stops counting.")
              .LabelNames({"secret"})
              .Register(r)),
      notifications(BuildCounter()
                        .Name("gitfleet_notifications_total")
                        .Help("Events POSTed to the sinks of --notify-file, by sink (its line "
                              "in the file) and result: sent, retried (a POST refused or "
                              "unanswered, tried again), failed (given up).")
                        .LabelNames({"sink", "result"})
                        .Register(r)),
      fanout_seconds(
          BuildHistogram()
              .Name("gitfleet_fanout_seconds")
              .Help("From the control plane seeing a commit to each agent acknowledging the "
                    "revision it produced.")
              .Register(r)
              .Add({}, ExponentialBuckets(0.001, 2, 16))),
      agent_limits(BuildCounter()
                       .Name("gitfleet_agent_limit_hits_total")
                       .Help("Agent streams cut by a limit, by limit.")
                       .LabelNames({"limit"})
                       .Register(r)),
      handshakes(BuildGauge()
                     .Name("gitfleet_agent_handshakes")
                     .Help("Agent handshakes in progress, and connections waiting for one "
                           "(--max-concurrent-handshakes), by state.")
                     .LabelNames({"state"})
                     .Register(r)),
      api_requests(BuildCounter()
                       .Name("gitfleet_api_requests_total")
                       .Help("Admin API calls, by method and result code (UNAUTHENTICATED "
                             "and PERMISSION_DENIED are refusals).")
                       .LabelNames({"method", "code"})
                       .Register(r)),
      store_rows_skipped(BuildCounter()
                             .Name("gitfleet_store_rows_skipped_total")
                             .Help("Stored rows that could not be loaded at start and were "
                                   "skipped (the log names each), by bucket.")
                             .LabelNames({"bucket"})
                             .Register(r)),
      orphaned_bundles(BuildGauge()
                           .Name("gitfleet_orphaned_bundles")
                           .Help("Bundles that agents hold and this control plane does not "
                                 "know: kept applied until forgotten or defined again.")
                           .Register(r)
                           .Add({})),
      workqueue(r) {
  // The outcomes alerts count with increase() are series from the start, at 0: Prometheus
  // cannot see the increase of a series born at its first count, so an alert on, say, the
  // first abandoned wait after a start would never fire. (Renders' are made per engine by
  // the controller, which knows the engines.)
  for (const char* result : {"ok", "error"}) source_fetches.Add({{"result", result}});
  for (const char* result : {"done", "abandoned"}) sibling_waits.Add({{"result", result}});
  // And what a rate of it charts (the dashboard's renders panel): 0, not "no data".
  render_cache_hits.Add({});
  for (const char* reason :
       {"unauthenticated", "invalid_hello", "protocol", "limit", "too_many_clusters"}) {
    agent_rejections.Add({{"reason", reason}});
  }
}

}  // namespace gitfleet
