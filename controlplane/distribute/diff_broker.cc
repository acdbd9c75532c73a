#include "controlplane/distribute/diff_broker.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace gitfleet {

uint64_t DiffBroker::Add(const std::string& cluster, absl::Time deadline, Callback done) {
  MutexLock lock(&mu_);
  uint64_t id = next_id_++;
  pending_[id] = Pending{cluster, deadline, std::move(done)};
  return id;
}

bool DiffBroker::Answer(const std::string& cluster, v1::DiffResult result) {
  Callback done;
  {
    MutexLock lock(&mu_);
    auto it = pending_.find(result.id());
    if (it == pending_.end() || it->second.cluster != cluster) return false;
    done = std::move(it->second.done);
    pending_.erase(it);
  }
  result.set_cluster(cluster);
  done(std::move(result));
  return true;
}

void DiffBroker::Expire(absl::Time now) {
  std::vector<Pending> expired;
  {
    MutexLock lock(&mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      expired.push_back(std::move(it->second));
      it = pending_.erase(it);
    }
  }
  for (Pending& diff : expired) {
    diff.done(absl::DeadlineExceededError(
        absl::StrCat("cluster ", diff.cluster, " did not answer the diff request in time")));
  }
}

void DiffBroker::FailAll(const absl::Status& status) {
  std::map<uint64_t, Pending> all;
  {
    MutexLock lock(&mu_);
    all.swap(pending_);
  }
  for (auto& [id, diff] : all) diff.done(status);
}

size_t DiffBroker::pending() const {
  MutexLock lock(&mu_);
  return pending_.size();
}

}  // namespace gitfleet
