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
// Pure: the caller fetches the bundle's info and rollout, and walks its statuses when
// asked (only once every partition is through).

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

// Calls `each` for every status of the bundle (GetStatus's, paged or not).
using EachStatus =
    std::function<absl::Status(const std::function<void(const v1::BundleStatus&)>& each)>;

// `info` and `status` (GetRollout's, a summary will do; with `commit`, its commit_reach
// for that commit): the bundle's. `commit`: the commit asked for (digits), or "" for the
// bundle's own. In a fleet over `statuses_from` clusters, statuses are walked only once
// each has taken the render (BundleInfo.current_clusters). An error of `each_status` is
// returned as it is.
absl::StatusOr<RolloutVerdict> JudgeRollout(const v1::BundleInfo& info,
                                            const v1::RolloutStatus& status,
                                            const std::string& commit, int statuses_from,
                                            const EachStatus& each_status);

// Why a cluster's status is not "runs it Healthy": held back, failed, not taken, or its
// health and first unhealthy object.
std::string WhyNotReady(const v1::BundleStatus& status);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_FLEET_ROLLOUT_VERDICT_H_
