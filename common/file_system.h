#ifndef GITFLEET_COMMON_FILE_SYSTEM_H_
#define GITFLEET_COMMON_FILE_SYSTEM_H_

// The file system seam: the real one, an in-memory fake and a fault-injecting wrapper.
//
//   FileSystem& fs = PosixFileSystem();
//   GF_RETURN_IF_ERROR(fs.WriteFileAtomically("/var/lib/x/a.yaml", text));
//
// All implementations are thread-safe.

#include <sys/types.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sync.h"

namespace gitfleet {

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // NotFound when the file does not exist.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // Writes to a temporary file beside `path`, syncs it and renames it over `path`,
  // creating parent directories. Readers see the old or the new content, never a mix.
  virtual absl::Status WriteFileAtomically(const std::string& path, absl::string_view data) = 0;
  // OK when the file is already gone. Removes parent directories left empty, up to
  // (not including) `stop_at`.
  virtual absl::Status DeleteFile(const std::string& path, const std::string& stop_at) = 0;
  // Regular files under `dir`, recursively, as sorted paths relative to `dir`. An
  // absent directory has no files.
  virtual absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir) = 0;
};

// The process's real file system.
FileSystem& PosixFileSystem();

// The content of `path` from the real file system, when it is at most `max_bytes` long
// (InvalidArgument "PATH is over N bytes" otherwise, read no further): for files an
// operator edits, whose size is not ours to trust.
absl::StatusOr<std::string> ReadFileAtMost(const std::string& path, size_t max_bytes);

// Deletes `dir` and everything under it, without following symbolic links. OK when it
// does not exist.
absl::Status RemoveRecursively(const std::string& dir);

// Writes `data` to a new file at `path` (one already there is an error, never overwritten)
// with `mode`, as a private copy of a secret is written. InternalError naming the path.
absl::Status WriteNewFile(const std::string& path, absl::string_view data, mode_t mode);

// An in-memory file system for tests.
class MemoryFileSystem : public FileSystem {
 public:
  absl::StatusOr<std::string> ReadFile(const std::string& path) override;
  absl::Status WriteFileAtomically(const std::string& path, absl::string_view data) override;
  absl::Status DeleteFile(const std::string& path, const std::string& stop_at) override;
  absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir) override;

 private:
  Mutex mu_;
  std::map<std::string, std::string> files_ ABSL_GUARDED_BY(mu_);
};

// Wraps another FileSystem and fails writes and deletes of chosen paths.
class FaultyFileSystem : public FileSystem {
 public:
  explicit FaultyFileSystem(FileSystem* base) : base_(base) {}
  // Writes and deletes of paths containing `fragment` fail with Unavailable.
  void FailPathsContaining(std::string fragment);
  void Heal();

  absl::StatusOr<std::string> ReadFile(const std::string& path) override;
  absl::Status WriteFileAtomically(const std::string& path, absl::string_view data) override;
  absl::Status DeleteFile(const std::string& path, const std::string& stop_at) override;
  absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir) override;

 private:
  absl::Status Check(const std::string& path);
  FileSystem* base_;
  Mutex mu_;
  std::set<std::string> failing_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_FILE_SYSTEM_H_
