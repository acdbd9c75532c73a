#include "common/file_system.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gitfleet {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path, int err) {
  std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty() || dir == "/" || dir == ".") return absl::OkStatus();
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(dir, " exists and is not a directory"));
  }
  absl::Status parent = MakeDirs(Dirname(dir));
  if (!parent.ok()) return parent;
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError("cannot create directory", dir, errno);
  }
  return absl::OkStatus();
}

// The content of `path`; past `max_bytes`, InvalidArgument without reading on. Reads into
// the string itself, not a stack buffer: it runs on threads with small stacks too (the HTTP
// server's, for the files WatchedFiles reads again).
absl::StatusOr<std::string> ReadUpTo(const std::string& path, size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path, errno);
  constexpr size_t kChunk = 65536;
  std::string data;
  while (true) {
    const size_t had = data.size();
    data.resize(had + kChunk);
    ssize_t n = read(fd, data.data() + had, kChunk);
    data.resize(had + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return ErrnoError("cannot read", path, err);
    }
    if (n == 0) break;
    if (data.size() > max_bytes) {
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, " is over ", max_bytes, " bytes"));
    }
  }
  close(fd);
  return data;
}

class PosixFs : public FileSystem {
 public:
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return ReadUpTo(path, std::numeric_limits<size_t>::max());
  }

  absl::Status WriteFileAtomically(const std::string& path, absl::string_view data) override {
    std::string dir = Dirname(path);
    absl::Status made = MakeDirs(dir);
    if (!made.ok()) return made;
    // The file system is shared by every thread (render workers write checkouts at once):
    // each thread draws its temporary names from its own generator.
    thread_local absl::BitGen bitgen;
    std::string tmp = absl::StrCat(path, ".tmp-", getpid(), "-", absl::Uniform<uint32_t>(bitgen));
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoError("cannot create", tmp, errno);
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = write(fd, data.data() + done, data.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        close(fd);
        unlink(tmp.c_str());
        return ErrnoError("cannot write", tmp, err);
      }
      done += n;
    }
    if (fsync(fd) != 0) {
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return ErrnoError("cannot sync", tmp, err);
    }
    close(fd);
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      unlink(tmp.c_str());
      return ErrnoError("cannot rename into", path, err);
    }
    // Make the rename itself durable.
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    return absl::OkStatus();
  }

  absl::Status DeleteFile(const std::string& path, const std::string& stop_at) override {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError("cannot delete", path, errno);
    }
    std::string dir = Dirname(path);
    while (!stop_at.empty() && dir != stop_at && absl::StartsWith(dir, stop_at) &&
           rmdir(dir.c_str()) == 0) {
      dir = Dirname(dir);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir) override {
    std::vector<std::string> out;
    absl::Status status = Walk(dir, "", &out);
    if (!status.ok()) return status;
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  absl::Status Walk(const std::string& root, const std::string& rel,
                    std::vector<std::string>* out) {
    std::string dir = rel.empty() ? root : absl::StrCat(root, "/", rel);
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT && rel.empty()) return absl::OkStatus();
      return ErrnoError("cannot list", dir, errno);
    }
    absl::Status status;
    while (dirent* entry = readdir(d)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      std::string child = rel.empty() ? name : absl::StrCat(rel, "/", name);
      struct stat st;
      if (lstat(absl::StrCat(root, "/", child).c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        status = Walk(root, child, out);
        if (!status.ok()) break;
      } else if (S_ISREG(st.st_mode)) {
        out->push_back(child);
      }
    }
    closedir(d);
    return status;
  }
};

}  // namespace

FileSystem& PosixFileSystem() {
  static PosixFs* fs = new PosixFs();
  return *fs;
}

absl::StatusOr<std::string> ReadFileAtMost(const std::string& path, size_t max_bytes) {
  return ReadUpTo(path, max_bytes);
}

absl::Status WriteNewFile(const std::string& path, absl::string_view data, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool ok = done == data.size() && fchmod(fd, mode) == 0;
  close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  return absl::OkStatus();
}

absl::Status RemoveRecursively(const std::string& dir) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return absl::OkStatus();
  int rc = nftw(
      dir.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return remove(p); },
      16, FTW_DEPTH | FTW_PHYS);
  if (rc != 0) return ErrnoError("cannot remove", dir, errno);
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryFileSystem::ReadFile(const std::string& path) {
  MutexLock lock(&mu_);
  auto it = files_.find(path);
  if (it == files_.end()) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": no such file"));
  }
  return it->second;
}

absl::Status MemoryFileSystem::WriteFileAtomically(const std::string& path,
                                                   absl::string_view data) {
  MutexLock lock(&mu_);
  files_[path] = std::string(data);
  return absl::OkStatus();
}

absl::Status MemoryFileSystem::DeleteFile(const std::string& path, const std::string&) {
  MutexLock lock(&mu_);
  files_.erase(path);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MemoryFileSystem::ListFiles(const std::string& dir) {
  MutexLock lock(&mu_);
  std::vector<std::string> out;
  std::string prefix = absl::StrCat(dir, "/");
  for (const auto& [path, data] : files_) {
    if (absl::StartsWith(path, prefix)) out.push_back(path.substr(prefix.size()));
  }
  return out;
}

void FaultyFileSystem::FailPathsContaining(std::string fragment) {
  MutexLock lock(&mu_);
  failing_.insert(std::move(fragment));
}

void FaultyFileSystem::Heal() {
  MutexLock lock(&mu_);
  failing_.clear();
}

absl::Status FaultyFileSystem::Check(const std::string& path) {
  MutexLock lock(&mu_);
  for (const std::string& fragment : failing_) {
    if (absl::StrContains(path, fragment)) {
      return absl::UnavailableError(absl::StrCat("injected fault writing ", path));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FaultyFileSystem::ReadFile(const std::string& path) {
  return base_->ReadFile(path);
}

absl::Status FaultyFileSystem::WriteFileAtomically(const std::string& path,
                                                   absl::string_view data) {
  absl::Status status = Check(path);
  if (!status.ok()) return status;
  return base_->WriteFileAtomically(path, data);
}

absl::Status FaultyFileSystem::DeleteFile(const std::string& path, const std::string& stop_at) {
  absl::Status status = Check(path);
  if (!status.ok()) return status;
  return base_->DeleteFile(path, stop_at);
}

absl::StatusOr<std::vector<std::string>> FaultyFileSystem::ListFiles(const std::string& dir) {
  return base_->ListFiles(dir);
}

}  // namespace gitfleet
