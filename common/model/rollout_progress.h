#ifndef GITFLEET_COMMON_MODEL_ROLLOUT_PROGRESS_H_
#define GITFLEET_COMMON_MODEL_ROLLOUT_PROGRESS_H_

// How one partition of a rollout is doing: counted by the hub, judged by the controller.
//
//   PartitionProgress p = hub->SummarizeProgress(bundle, content, clusters);
//   if (p.not_ready <= allowed) ...

#include <optional>
#include <string>
#include <vector>

#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet {

struct PartitionProgress {
  int total = 0;
  // Clusters whose report for their revision is not applied, Synced and Healthy.
  int not_ready = 0;
  // Of those, the ones that report their revision failed to apply.
  int failed = 0;
  // The first of each, described; either may be missing even when counted (a report can
  // come in between counting and describing).
  std::optional<v1::RolloutCluster> first_failed;
  std::optional<v1::RolloutCluster> first_waiting;
  // Of the not ready, those connected and not suspended that report an older revision they
  // run as not ready (v1::RolloutCluster.down_on_older), in the order asked.
  std::vector<std::string> down;
  // Of the not ready, those suspended for maintenance (they get nothing new), in the order
  // asked.
  std::vector<std::string> suspended;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MODEL_ROLLOUT_PROGRESS_H_
