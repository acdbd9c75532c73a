#include "controlplane/distribute/write_behind.h"

#include <vector>

namespace gitfleet {

void WriteBehind::Put(const std::string& bucket, const std::string& key, std::string value) {
  MutexLock lock(&mu_);
  dirty_[{bucket, key}] = std::move(value);
}

void WriteBehind::Delete(const std::string& bucket, const std::string& key) {
  MutexLock lock(&mu_);
  dirty_[{bucket, key}] = std::nullopt;
}

std::optional<std::optional<std::string>> WriteBehind::Pending(const std::string& bucket,
                                                               const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = dirty_.find({bucket, key});
  if (it == dirty_.end()) return std::nullopt;
  return it->second;
}

absl::Status WriteBehind::Flush() {
  MutexLock flushing(&flush_mu_);
  std::map<Key, std::optional<std::string>> dirty;
  {
    MutexLock lock(&mu_);
    dirty.swap(dirty_);
  }
  if (dirty.empty()) return absl::OkStatus();
  std::vector<Store::Write> writes;
  writes.reserve(dirty.size());
  for (auto& [key, value] : dirty) writes.push_back({key.first, key.second, value});
  absl::Status stored = store_->ApplyBehind(writes);
  if (!stored.ok()) {
    MutexLock lock(&mu_);
    for (auto& [key, value] : dirty) dirty_.emplace(key, std::move(value));  // newer ones win
  }
  return stored;
}

}  // namespace gitfleet
