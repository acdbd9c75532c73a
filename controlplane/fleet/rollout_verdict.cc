#include "controlplane/fleet/rollout_verdict.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gitfleet {
namespace {

std::string Short(const std::string& id) { return id.substr(0, 12); }

}  // namespace

absl::StatusOr<RolloutVerdict> JudgeRollout(
    const v1::BundleInfo& info, const v1::RolloutStatus& status, const std::string& commit,
    int statuses_from, const std::function<absl::StatusOr<StatusTally>()>& tally) {
  const std::string& name = info.bundle().name();
  // The newest commit the bundle was reconciled at: one that changed nothing it reads
  // moves it on while the revision (and the rollout's commit) stays.
  const std::string& current = info.commit();
  const std::string at = absl::StrCat("bundle ", name, " at ", Short(current));
  RolloutVerdict verdict;
  verdict.commit = current;
  auto judged_as = [&verdict](int code, std::string line) {
    verdict.code = code;
    verdict.line = std::move(line);
    return verdict;
  };
  // With `commit`: whether the bundle has reached it, that is been reconciled at it or at a
  // later commit (one fetched with it, or after), as the control plane judges by the
  // source's history; a control plane older than that judge is asked the commit's digits.
  const v1::CommitReach& reach = status.commit_reach();
  const bool judged = !commit.empty() && status.has_commit_reach();
  const bool reached =
      commit.empty() || (judged ? reach.reached() : absl::StartsWith(current, commit));
  const bool failed_since =
      commit.empty() || (judged ? reach.failed() : absl::StartsWith(info.error_commit(), commit));
  // Its newest render failed (of the commit asked for, or a later one, with `commit`).
  if (!info.error().empty() && failed_since) {
    verdict.render_failed = true;
    verdict.commit = info.error_commit();
    return judged_as(RolloutVerdict::kFailed,
                     absl::StrCat(at, ": the render of ", Short(info.error_commit()),
                                  " failed (the clusters keep what they run): ", info.error()));
  }
  if (status.suspended()) {
    return judged_as(RolloutVerdict::kFailed,
                     absl::StrCat(at,
                                  ": suspended: no cluster gets its new revisions until "
                                  "gitfleetctl bundle resume ",
                                  name));
  }
  if (!commit.empty() && !status.pinned_commit().empty() &&
      !(judged ? reach.reached() && absl::StartsWith(reach.bundle_commit(), status.pinned_commit())
               : absl::StartsWith(status.pinned_commit(), commit))) {
    return judged_as(RolloutVerdict::kFailed,
                     absl::StrCat(at, ": pinned to ", Short(status.pinned_commit()),
                                  " (a rollback) until gitfleetctl bundle unpin ", name));
  }
  if (!reached) {
    std::string why;
    if (!reach.note().empty()) {
      why = absl::StrCat(": ", reach.note());
    } else if (!info.source_error().empty()) {
      why = absl::StrCat(" (its source fails: ", info.source_error(), ")");
    }
    return judged_as(RolloutVerdict::kWaiting,
                     absl::StrCat(at, ": waiting for commit ",
                                  reach.commit().empty() ? commit : Short(reach.commit()), why));
  }
  if (status.prune_held()) {
    return judged_as(RolloutVerdict::kFailed,
                     absl::StrCat(at, ": held by the prune guard: ", status.message()));
  }
  if (status.progressive() && status.paused()) {
    return judged_as(RolloutVerdict::kFailed, absl::StrCat(at, ": PAUSED: ", status.message()));
  }
  if (!info.waiting().empty()) {
    return judged_as(RolloutVerdict::kWaiting, absl::StrCat(at, ": waiting: ", info.waiting()));
  }
  if (status.progressive() && !status.done()) {
    // "partition 2/3: ..."
    return judged_as(RolloutVerdict::kWaiting, absl::StrCat(at, ": ", status.message()));
  }
  // Every partition through (or none): every cluster it targets runs it Healthy. In a big
  // fleet, whose statuses are pages, they are asked for only once each cluster has taken
  // the render (counted by the control plane, kept between listings).
  if (info.target_clusters() > statuses_from && info.current_clusters() < info.target_clusters()) {
    return judged_as(RolloutVerdict::kWaiting,
                     absl::StrCat(at, ": ", info.current_clusters(), " of ", info.target_clusters(),
                                  " clusters have taken it"));
  }
  absl::StatusOr<StatusTally> counted = tally();
  if (!counted.ok()) return counted.status();
  if (counted->ready == counted->total) {
    return judged_as(RolloutVerdict::kDone,
                     absl::StrCat(at, ": rolled out, Healthy on ", counted->total, " cluster",
                                  counted->total == 1 ? "" : "s"));
  }
  return judged_as(
      RolloutVerdict::kWaiting,
      absl::StrCat(at, ": ", counted->ready, " of ", counted->total,
                   " clusters run it Healthy; waiting for ", counted->first_not_ready));
}

void StatusTally::Add(const v1::BundleStatus& s) {
  if (s.orphaned() || s.not_deployed()) return;
  ++total;
  if (!s.desired_revision().empty() && s.applied_revision() == s.desired_revision() &&
      s.sync_state() == v1::SYNC_STATE_SYNCED && s.health() == v1::HEALTH_STATE_HEALTHY) {
    ++ready;
  } else if (first_not_ready.empty()) {
    first_not_ready = absl::StrCat(s.cluster(), ": ", WhyNotReady(s));
  }
}

std::string WhyNotReady(const v1::BundleStatus& s) {
  if (!s.held_back().empty()) return s.held_back();
  if (s.desired_revision().empty()) return "its revision is not built yet";
  if (s.applied_revision() != s.desired_revision()) {
    return s.sync_state() == v1::SYNC_STATE_FAILED && !s.message().empty()
               ? absl::StrCat("failed: ", s.message())
               : "it does not run this revision yet";
  }
  std::string health = absl::AsciiStrToLower(v1::HealthState_Name(s.health()));
  std::string why = health.substr(sizeof("health_state_") - 1);
  if (s.unhealthy_resources_size() > 0) {
    absl::StrAppend(&why, ": ", s.unhealthy_resources(0).message());
  } else if (!s.message().empty()) {
    absl::StrAppend(&why, ": ", s.message());
  }
  return why;
}

}  // namespace gitfleet
