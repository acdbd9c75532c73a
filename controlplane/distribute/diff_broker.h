#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_DIFF_BROKER_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_DIFF_BROKER_H_

// Dry-run diffs asked of agents and not yet answered: each request has an id, the cluster
// asked, a deadline and a callback that runs exactly once (with the answer, or an error
// when the deadline passes or the control plane stops), never with a lock held.
//
//   DiffBroker broker;
//   uint64_t id = broker.Add("prod-eu", clock.Now() + absl::Seconds(10), std::move(done));
//   broker.Answer("prod-eu", result);  // result.id() == id: done(result)
//   broker.Expire(clock.Now());        // from a periodic thread
//
// Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "proto/gitfleet/v1/agent.pb.h"

namespace gitfleet {

class DiffBroker {
 public:
  using Callback = std::function<void(absl::StatusOr<v1::DiffResult>)>;

  // Records a request to `cluster`; returns its id (for the DiffRequest sent).
  uint64_t Add(const std::string& cluster, absl::Time deadline, Callback done);
  // `cluster`'s agent answered. Only the cluster asked may answer a request; anything
  // else (an unknown or expired id, another cluster) is ignored. Returns whether it
  // answered one.
  bool Answer(const std::string& cluster, v1::DiffResult result);
  // Fails every request whose deadline is at or before `now`.
  void Expire(absl::Time now);
  // Fails every request with `status` (shutdown).
  void FailAll(const absl::Status& status);
  size_t pending() const;

 private:
  struct Pending {
    std::string cluster;
    absl::Time deadline;
    Callback done;
  };

  mutable Mutex mu_;
  std::map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_DIFF_BROKER_H_
