#include "controlplane/fleet/repository_files.h"

#include <utility>

namespace gitfleet {

absl::StatusOr<RecentRepositoryFiles::Files> RecentRepositoryFiles::Get(
    const std::string& key, const std::function<absl::StatusOr<std::vector<RepoFile>>()>& read) {
  MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->key != key) continue;
    Entry used = std::move(*it);
    entries_.erase(it);
    entries_.push_back(std::move(used));
    return entries_.back().files;
  }
  absl::StatusOr<std::vector<RepoFile>> files = read();
  if (!files.ok()) return files.status();
  Entry entry{key, nullptr, 0};
  for (const RepoFile& file : *files) entry.bytes += file.path.size() + file.content.size();
  entry.files = std::make_shared<const std::vector<RepoFile>>(*std::move(files));
  bytes_ += entry.bytes;
  entries_.push_back(std::move(entry));
  while (entries_.size() > 1 && (entries_.size() > max_entries_ || bytes_ > max_bytes_)) {
    bytes_ -= entries_.front().bytes;
    entries_.pop_front();
  }
  return entries_.back().files;
}

}  // namespace gitfleet
