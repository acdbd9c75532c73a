#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_WRITE_BEHIND_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_WRITE_BEHIND_H_

// Writes that may land a little later, batched: the hub records each agent's latest
// report and cluster record here, and Flush writes everything that changed since the last
// flush in one transaction (ApplyBehind). A key written twice before a flush is written
// once, with its last value. A failed flush keeps its writes for the next one, newer
// values winning.
//
//   WriteBehind behind(&store);
//   behind.Put("reports", "eu/web", bytes);   // cheap: under the hub's lock
//   behind.Flush();                           // every 250 ms, from the flusher thread
//
// Thread-safe; Put never touches the store, so it may be called under other locks.

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/sync.h"
#include "controlplane/store/store.h"

namespace gitfleet {

class WriteBehind {
 public:
  explicit WriteBehind(Store* store) : store_(store) {}

  void Put(const std::string& bucket, const std::string& key, std::string value);
  void Delete(const std::string& bucket, const std::string& key);
  // The value waiting for `key`, if any (nullopt inside: a deletion waits).
  std::optional<std::optional<std::string>> Pending(const std::string& bucket,
                                                    const std::string& key) const;
  // Writes what waits, in one transaction; one flush at a time, so an older batch never
  // lands after a newer one. Returns the store's error (the writes wait for the next).
  absl::Status Flush();

 private:
  using Key = std::pair<std::string, std::string>;
  Store* const store_;
  Mutex flush_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable Mutex mu_;
  std::map<Key, std::optional<std::string>> dirty_ ABSL_GUARDED_BY(mu_);  // nullopt deletes
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_WRITE_BEHIND_H_
