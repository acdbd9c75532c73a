#ifndef GITFLEET_CONTROLPLANE_STORE_STORE_H_
#define GITFLEET_CONTROLPLANE_STORE_STORE_H_

// Durable storage for the control plane: buckets of key → bytes, with atomic batches.
// Definitions, renders and agent reports are stored as serialized protos.
//
//   store.Apply({Store::Put("sources", "app", source.SerializeAsString())});
//   absl::StatusOr<std::vector<Store::Entry>> all = store.List("sources");
//
// Implementations are thread-safe.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sync.h"

struct sqlite3;

namespace gitfleet {

class Store {
 public:
  struct Write {
    std::string bucket;
    std::string key;
    std::optional<std::string> value;  // nullopt deletes
  };
  struct Entry {
    std::string key;
    std::string value;
  };
  static Write Put(std::string bucket, std::string key, std::string value) {
    return {std::move(bucket), std::move(key), std::move(value)};
  }
  static Write Delete(std::string bucket, std::string key) {
    return {std::move(bucket), std::move(key), std::nullopt};
  }

  virtual ~Store() = default;
  // All writes land, or none do, and are on disk when it returns (definitions, tombstones:
  // what a power failure must not take back).
  virtual absl::Status Apply(const std::vector<Write>& writes) = 0;
  // The same, but a power failure may lose the last of them (never corrupt the store):
  // for what is sent again anyway, such as agents' status reports.
  virtual absl::Status ApplyBehind(const std::vector<Write>& writes) { return Apply(writes); }
  // Writes a consistent copy of the whole store to `path` while it stays in use.
  virtual absl::Status Backup(const std::string& path) {
    return absl::UnimplementedError("this store cannot make backups");
  }
  // NotFound when the key is absent.
  virtual absl::StatusOr<std::string> Get(const std::string& bucket, const std::string& key) = 0;
  // Every entry of the bucket, ordered by key.
  virtual absl::StatusOr<std::vector<Entry>> List(const std::string& bucket) = 0;
};

// SQLite in WAL mode: one table (bucket, key, value).
class SqliteStore : public Store {
 public:
  // Creates the database file and its directory when missing.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;

  absl::Status Apply(const std::vector<Write>& writes) override;
  absl::Status ApplyBehind(const std::vector<Write>& writes) override;
  absl::StatusOr<std::string> Get(const std::string& bucket, const std::string& key) override;
  absl::StatusOr<std::vector<Entry>> List(const std::string& bucket) override;
  // SQLite's online backup API: a crash-consistent copy, taken while writers go on.
  absl::Status Backup(const std::string& path) override;

 private:
  explicit SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  absl::Status ErrorLocked(const char* what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyWith(const std::vector<Write>& writes, bool full);

  Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  const std::string path_;
};

// The fleet id stored with the data (bucket "meta"), created at the first start.
absl::StatusOr<std::string> LoadOrCreateFleetId(Store* store);

// In memory, for tests.
class MemoryStore : public Store {
 public:
  absl::Status Apply(const std::vector<Write>& writes) override;
  absl::StatusOr<std::string> Get(const std::string& bucket, const std::string& key) override;
  absl::StatusOr<std::vector<Entry>> List(const std::string& bucket) override;

 private:
  Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::string> data_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_STORE_STORE_H_
