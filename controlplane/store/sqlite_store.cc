#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "controlplane/store/store.h"

namespace gitfleet {
namespace {

// RAII for prepared statements.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int index, const std::string& text) {
    sqlite3_bind_blob(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  std::string Column(int index) {
    const void* data = sqlite3_column_blob(stmt_, index);
    int size = sqlite3_column_bytes(stmt_, index);
    return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string dir = path.substr(0, slash);
    for (size_t i = 1; i <= dir.size(); ++i) {
      // The store holds cluster records and definitions: the owner's alone.
      if (i == dir.size() || dir[i] == '/') mkdir(dir.substr(0, i).c_str(), 0700);
    }
  }
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open store ", path, ": ", message));
  }
  const char* setup =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=FULL;"
      "PRAGMA busy_timeout=5000;"
      "CREATE TABLE IF NOT EXISTS kv ("
      "  bucket TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
      "  PRIMARY KEY (bucket, key)) WITHOUT ROWID;";
  char* error = nullptr;
  if (sqlite3_exec(db, setup, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot initialise store ", path, ": ", message,
                                               " (is it a gitfleet database?)"));
  }
  chmod(path.c_str(), 0600);
  for (const char* suffix : {"-wal", "-shm"}) chmod((path + suffix).c_str(), 0600);
  return std::unique_ptr<SqliteStore>(new SqliteStore(db, path));
}

SqliteStore::~SqliteStore() {
  MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status SqliteStore::ErrorLocked(const char* what) {
  return absl::InternalError(absl::StrCat("store ", path_, ": ", what, ": ", sqlite3_errmsg(db_)));
}

absl::Status SqliteStore::Apply(const std::vector<Write>& writes) {
  return ApplyWith(writes, true);
}

absl::Status SqliteStore::ApplyBehind(const std::vector<Write>& writes) {
  return ApplyWith(writes, false);
}

absl::Status SqliteStore::ApplyWith(const std::vector<Write>& writes, bool full) {
  MutexLock lock(&mu_);
  // In WAL mode, FULL syncs the log at every commit; NORMAL only at checkpoints. The
  // setting is the connection's, so each batch sets what it needs.
  if (sqlite3_exec(db_, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", nullptr,
                   nullptr, nullptr) != SQLITE_OK) {
    return ErrorLocked("set synchronous");
  }
  if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return ErrorLocked("begin");
  }
  Statement put(db_, "INSERT OR REPLACE INTO kv (bucket, key, value) VALUES (?, ?, ?)");
  Statement del(db_, "DELETE FROM kv WHERE bucket = ? AND key = ?");
  absl::Status status;
  if (!put.ok() || !del.ok()) status = ErrorLocked("prepare");
  for (const Write& write : writes) {
    if (!status.ok()) break;
    Statement& stmt = write.value.has_value() ? put : del;
    sqlite3_reset(stmt.get());
    stmt.Bind(1, write.bucket);
    stmt.Bind(2, write.key);
    if (write.value.has_value()) stmt.Bind(3, *write.value);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) status = ErrorLocked("write");
  }
  if (!status.ok()) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
  }
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    absl::Status error = ErrorLocked("commit");
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return error;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SqliteStore::Get(const std::string& bucket, const std::string& key) {
  MutexLock lock(&mu_);
  Statement stmt(db_, "SELECT value FROM kv WHERE bucket = ? AND key = ?");
  if (!stmt.ok()) return ErrorLocked("prepare");
  stmt.Bind(1, bucket);
  stmt.Bind(2, key);
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return stmt.Column(0);
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(absl::StrCat(bucket, "/", key, " not found"));
  }
  return ErrorLocked("read");
}

absl::StatusOr<std::vector<Store::Entry>> SqliteStore::List(const std::string& bucket) {
  MutexLock lock(&mu_);
  Statement stmt(db_, "SELECT key, value FROM kv WHERE bucket = ? ORDER BY key");
  if (!stmt.ok()) return ErrorLocked("prepare");
  stmt.Bind(1, bucket);
  std::vector<Entry> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    out.push_back({stmt.Column(0), stmt.Column(1)});
  }
  if (rc != SQLITE_DONE) return ErrorLocked("list");
  return out;
}

absl::Status SqliteStore::Backup(const std::string& path) {
  sqlite3* out = nullptr;
  if (sqlite3_open_v2(path.c_str(), &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string message = out ? sqlite3_errmsg(out) : "out of memory";
    sqlite3_close(out);
    return absl::UnavailableError(absl::StrCat("cannot create backup ", path, ": ", message));
  }
  chmod(path.c_str(), 0600);
  absl::Status status;
  {
    MutexLock lock(&mu_);
    sqlite3_backup* backup = sqlite3_backup_init(out, "main", db_, "main");
    if (backup == nullptr) {
      status = absl::InternalError(absl::StrCat("backup of ", path_, ": ", sqlite3_errmsg(out)));
    } else {
      // One step copies every page: the copy is one consistent snapshot.
      int rc = sqlite3_backup_step(backup, -1);
      sqlite3_backup_finish(backup);
      if (rc != SQLITE_DONE) {
        status = absl::InternalError(
            absl::StrCat("backup of ", path_, " to ", path, ": ", sqlite3_errstr(rc)));
      }
    }
  }
  // The copy is a plain database, not a WAL one: one file to keep.
  if (status.ok() &&
      sqlite3_exec(out, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    status = absl::InternalError(absl::StrCat("backup ", path, ": ", sqlite3_errmsg(out)));
  }
  sqlite3_close(out);
  return status;
}

absl::StatusOr<std::string> LoadOrCreateFleetId(Store* store) {
  absl::StatusOr<std::string> stored = store->Get("meta", "fleet_id");
  if (stored.ok() && !stored->empty()) return stored;
  if (!stored.ok() && stored.status().code() != absl::StatusCode::kNotFound) {
    return stored.status();
  }
  unsigned char bytes[16];
  FILE* random = fopen("/dev/urandom", "rb");
  size_t got = random != nullptr ? fread(bytes, 1, sizeof(bytes), random) : 0;
  if (random != nullptr) fclose(random);
  if (got != sizeof(bytes)) return absl::InternalError("cannot read /dev/urandom for a fleet id");
  std::string id;
  for (unsigned char b : bytes) absl::StrAppend(&id, absl::Hex(b, absl::kZeroPad2));
  if (absl::Status s = store->Apply({Store::Put("meta", "fleet_id", id)}); !s.ok()) return s;
  return id;
}

absl::Status MemoryStore::Apply(const std::vector<Write>& writes) {
  MutexLock lock(&mu_);
  for (const Write& write : writes) {
    if (write.value.has_value()) {
      data_[{write.bucket, write.key}] = *write.value;
    } else {
      data_.erase({write.bucket, write.key});
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryStore::Get(const std::string& bucket, const std::string& key) {
  MutexLock lock(&mu_);
  auto it = data_.find({bucket, key});
  if (it == data_.end()) {
    return absl::NotFoundError(absl::StrCat(bucket, "/", key, " not found"));
  }
  return it->second;
}

absl::StatusOr<std::vector<Store::Entry>> MemoryStore::List(const std::string& bucket) {
  MutexLock lock(&mu_);
  std::vector<Entry> out;
  for (auto it = data_.lower_bound({bucket, ""}); it != data_.end() && it->first.first == bucket;
       ++it) {
    out.push_back({it->first.second, it->second});
  }
  return out;
}

}  // namespace gitfleet
