#ifndef GITFLEET_CONTROLPLANE_FLEET_REPOSITORY_FILES_H_
#define GITFLEET_CONTROLPLANE_FLEET_REPOSITORY_FILES_H_

// Every file of a repository at a commit, kept for the renders that read the whole
// repository (kustomize, jsonnet): one read serves every bundle of the commit. The last
// few (repository, commit) pairs are kept, so renders of two sources' commits at once (two
// render workers) do not read each other's out in turn; bounded in count and in bytes
// (the newest is kept whatever its size).
//
//   RecentRepositoryFiles files;
//   auto all = files.Get(url + "@" + commit,
//                        [&] { return repo->ReadTree(commit, "", kLeaveOut); });
//
// Thread-safe. A read runs under the cache's lock: two renders that want the same commit
// read it once.

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/sync.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

class RecentRepositoryFiles {
 public:
  using Files = std::shared_ptr<const std::vector<RepoFile>>;
  static constexpr size_t kEntries = 4;
  static constexpr size_t kBytes = size_t{512} << 20;

  explicit RecentRepositoryFiles(size_t entries = kEntries, size_t bytes = kBytes)
      : max_entries_(entries), max_bytes_(bytes) {}

  // The files kept for `key`, else read with `read` (and kept). A failed read keeps
  // nothing.
  absl::StatusOr<Files> Get(const std::string& key,
                            const std::function<absl::StatusOr<std::vector<RepoFile>>()>& read);

 private:
  struct Entry {
    std::string key;
    Files files;
    size_t bytes = 0;
  };
  const size_t max_entries_;
  const size_t max_bytes_;
  Mutex mu_;
  std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);  // least recently used first
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_FLEET_REPOSITORY_FILES_H_
