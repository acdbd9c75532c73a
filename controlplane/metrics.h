#ifndef GITFLEET_CONTROLPLANE_METRICS_H_
#define GITFLEET_CONTROLPLANE_METRICS_H_

// Every metric the control plane exports, declared in one place. Components take a
// reference to this struct.

#include "common/metrics/metrics.h"
#include "common/workqueue.h"

namespace gitfleet {

struct ControlPlaneMetrics {
  explicit ControlPlaneMetrics(metrics::Registry& registry);

  metrics::Registry& registry;
  // source/
  metrics::Family<metrics::Counter>& source_fetches;  // result=ok|error
  metrics::Family<metrics::Histogram>& source_fetch_seconds;
  // Sources whose last fetch, or the resolution of their ref after it, failed (a fetch of
  // a branch since deleted succeeds; only the ref is missing).
  metrics::Gauge& sources_in_error;
  // 0: this control plane serves (a standby's own endpoint says 1 while it waits).
  metrics::Gauge& standby;
  metrics::Family<metrics::Counter>& source_commits;
  // render/
  metrics::Family<metrics::Counter>& renders;  // engine, result=ok|error
  metrics::Family<metrics::Histogram>& render_seconds;
  metrics::Family<metrics::Counter>& render_cache_hits;
  // result=done|abandoned: how a render that dropped objects ended its wait for the other
  // bundles of its source (Controller::WaitsForSiblings).
  metrics::Family<metrics::Counter>& sibling_waits;
  // distribute/
  metrics::Gauge& connected_agents;
  // Registered clusters by state: connected, disconnected (connected before, away now),
  // never_connected, suspended (under maintenance, connected or not).
  metrics::Family<metrics::Gauge>& clusters;
  metrics::Family<metrics::Counter>& updates_sent;  // kind=full|delta|removal
  metrics::Counter& update_bytes_sent;
  metrics::Family<metrics::Counter>& acks;              // result=ok|nack|need_full
  metrics::Family<metrics::Counter>& status_reports;    // via=ack|message
  metrics::Family<metrics::Counter>& agent_rejections;  // reason
  metrics::Gauge& queued_updates;
  metrics::Counter& coalesced_updates;
  metrics::Family<metrics::Histogram>& commit_to_applied_seconds;  // bundle
  // By bundle, the clusters whose last report on it is in each sync state (synced,
  // out_of_sync, applying, failed) and health (healthy, progressing, degraded, missing,
  // unknown), connected or not: the fleet's state without scraping every agent.
  metrics::Family<metrics::Gauge>& bundle_clusters;        // bundle, sync_state
  metrics::Family<metrics::Gauge>& bundle_cluster_health;  // bundle, health
  // Progressive rollouts, by bundle: the partition rolling out (1-based; 0 when done or
  // none), 1 while paused, partitions passed.
  metrics::Family<metrics::Gauge>& rollout_partition;
  metrics::Family<metrics::Gauge>& rollout_paused;
  metrics::Family<metrics::Gauge>& prune_held;
  metrics::Family<metrics::Counter>& rollout_partitions_passed;
  // POST /hooks/git, by provider and result.
  metrics::Family<metrics::Counter>& webhooks;
  // Verified webhooks by the position (1-based) of the secret that verified them.
  metrics::Family<metrics::Counter>& webhook_secrets_used;
  // Events POSTed to --notify-file's sinks, by sink (its line) and result.
  metrics::Family<metrics::Counter>& notifications;
  metrics::Histogram& fanout_seconds;
  metrics::Family<metrics::Counter>& agent_limits;  // limit
  metrics::Family<metrics::Gauge>& handshakes;      // state: in_progress, waiting
  metrics::Family<metrics::Counter>& api_requests;  // method, code
  // Rows the store held that could not be loaded (skipped at start), by bucket.
  metrics::Family<metrics::Counter>& store_rows_skipped;
  // Bundles connected agents hold that this control plane does not know (kept applied).
  metrics::Gauge& orphaned_bundles;
  // gitfleet_workqueue_*, by queue name (bundles, sources).
  WorkQueueMetrics workqueue;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_METRICS_H_
