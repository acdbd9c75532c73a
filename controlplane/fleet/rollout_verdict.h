#ifndef GITFLEET_CONTROLPLANE_FLEET_ROLLOUT_VERDICT_H_
#define GITFLEET_CONTROLPLANE_FLEET_ROLLOUT_VERDICT_H_

// Where a bundle's rollout stands, judged from what the admin API shows: whether every
// cluster it targets runs its newest render Healthy (done), it cannot get there without
// an operator or a new commit (failed), or it is on its way (waiting). `gitfleetctl
// rollout status -w` exits by it, and the commit statuses the control plane posts to Git
// hosts say it, so that a pipeline and a pull request read the same thing.
//
//   absl::StatusOr<RolloutVerdict> verdict =
//       JudgeRollout(info, rollout, "", kStatusesFrom, each_status);
//
// Pure: the caller fetches the bundle's info and rollout, and counts its statuses when
// asked.

#include <functional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet {

struct RolloutVerdict {
  enum Code { kWaiting = -1, kDone = 0, kFailed = 1 };
  int code = kWaiting;
  // One line, starting "bundle NAME at COMMIT: ".
  std::string line;
  bool render_failed = false;  // kFailed for that reason
  // The commit judged: the bundle's (BundleInfo.commit), or the failed render's.
  std::string commit;
};

// How many clusters a bundle targets run it ready (applied, Synced and Healthy), and why
// the first that does not.
struct StatusTally {
  int total = 0;
  int ready = 0;
  std::string first_not_ready;  // "CLUSTER: why"
  // Counts `status` (one of GetStatus's): an orphan's or a cluster's its files leave out
  // do not count.
  void Add(const v1::BundleStatus& status);
};

// `info` and `status` (GetRollout's, a summary will do; with `commit`, its commit_reach
// for that commit): the bundle's. `commit`: the commit asked for (digits), or "" for the
// bundle's own. `tally` counts the bundle's statuses, asked only once every partition is
// through and, in a fleet over `statuses_from` clusters, once each cluster has taken the
// render (BundleInfo.current_clusters). An error of `tally` is returned as it is.
absl::StatusOr<RolloutVerdict> JudgeRollout(
    const v1::BundleInfo& info, const v1::RolloutStatus& status, const std::string& commit,
    int statuses_from, const std::function<absl::StatusOr<StatusTally>()>& tally);

// Why a cluster's status is not "runs it Healthy": held back, failed, not taken, or its
// health and first unhealthy object.
std::string WhyNotReady(const v1::BundleStatus& status);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_FLEET_ROLLOUT_VERDICT_H_
