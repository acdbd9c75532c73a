#include "controlplane/fleet/status.h"

#include "absl/strings/str_cat.h"

namespace gitfleet {

v1::BundleStatus ComposeStatus(const v1::ClusterInfo& cluster, const v1::BundleInfo& bundle,
                               const google::protobuf::Timestamp& committed_time,
                               const google::protobuf::Timestamp& seen_time,
                               const v1::StatusUpdate* report, const std::string& held_back,
                               const std::string& not_deployed) {
  v1::BundleStatus s;
  s.set_cluster(cluster.name());
  s.set_bundle(bundle.bundle().name());
  s.set_desired_revision(bundle.revision());
  s.set_desired_commit(bundle.commit());
  *s.mutable_committed_time() = committed_time;
  *s.mutable_seen_time() = seen_time;
  s.set_health(v1::HEALTH_STATE_UNKNOWN);
  s.set_source_error(bundle.source_error());

  if (report != nullptr) {
    s.set_applied_revision(report->applied_revision());
    // Equal revisions are equal content, whichever commit produced them.
    s.set_applied_commit(report->applied_revision() == bundle.revision() &&
                                 !bundle.revision().empty()
                             ? bundle.commit()
                             : report->applied_commit());
    *s.mutable_applied_time() = report->applied_time();
    s.set_health(report->health() == v1::HEALTH_STATE_UNSPECIFIED ? v1::HEALTH_STATE_UNKNOWN
                                                                  : report->health());
    *s.mutable_unhealthy_resources() = report->unhealthy_resources();
    s.set_left_unmanaged_count(report->left_unmanaged_count());
    *s.mutable_left_unmanaged() = report->left_unmanaged();
  }

  const bool current = report != nullptr && !bundle.revision().empty() &&
                       report->applied_revision() == bundle.revision();
  if (!bundle.error().empty()) {
    s.set_sync_state(v1::SYNC_STATE_FAILED);
    s.set_message(absl::StrCat(
        "render failed at commit ", bundle.error_commit().substr(0, 12), ": ", bundle.error(),
        bundle.revision().empty()
            ? ""
            : absl::StrCat(" (keeping revision ", bundle.revision().substr(0, 12), ")")));
  } else if (!not_deployed.empty()) {
    // Nothing is sent: what it holds stays, and says so (removal is an operator's act).
    s.set_not_deployed(true);
    const bool holds = report != nullptr && !report->applied_revision().empty();
    s.set_sync_state(holds ? v1::SYNC_STATE_OUT_OF_SYNC : v1::SYNC_STATE_SYNCED);
    s.set_message(
        holds ? absl::StrCat(not_deployed,
                             ": the cluster gets nothing new of the bundle and keeps "
                             "revision ",
                             report->applied_revision().substr(0, 12),
                             " it runs (a repository never takes a bundle off a cluster); to "
                             "remove it, take the cluster out of the bundle's --selector with "
                             "--allow-removal")
              : absl::StrCat(not_deployed, ": nothing of the bundle is deployed here"));
  } else if (bundle.revision().empty()) {
    s.set_sync_state(v1::SYNC_STATE_OUT_OF_SYNC);
    s.set_message("waiting for the first render");
  } else if (report != nullptr && report->revision() == bundle.revision() &&
             report->sync_state() != v1::SYNC_STATE_UNSPECIFIED) {
    s.set_sync_state(report->sync_state());
    s.set_message(report->message());
  } else if (current) {
    s.set_sync_state(v1::SYNC_STATE_SYNCED);
    s.set_message(report->message());
  } else if (!held_back.empty()) {
    // Nothing was sent: saying the agent is waited for would send someone the wrong way.
    s.set_sync_state(v1::SYNC_STATE_OUT_OF_SYNC);
    s.set_message(held_back);
    s.set_held_back(held_back);
  } else {
    s.set_sync_state(v1::SYNC_STATE_OUT_OF_SYNC);
    s.set_message(cluster.connected() ? "update sent, waiting for the agent"
                                      : "agent disconnected");
  }
  if (!cluster.connected() && s.sync_state() != v1::SYNC_STATE_FAILED && s.message().empty()) {
    s.set_message("agent disconnected; status as last reported");
  }
  return s;
}

}  // namespace gitfleet
