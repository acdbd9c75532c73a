#include "controlplane/api/watched_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gitfleet {

absl::StatusOr<std::string> ReadWatchedFile(const std::string& flag, const std::string& path,
                                            size_t max_bytes) {
  if (path.empty()) return std::string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat(flag, ": cannot open ", path, ": ", std::strerror(errno)));
  }
  std::string content;
  char buffer[4096];
  absl::Status status;
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::UnavailableError(
          absl::StrCat(flag, ": cannot read ", path, ": ", std::strerror(errno)));
      break;
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > max_bytes) {
      status = absl::InvalidArgumentError(
          absl::StrCat(flag, ": ", path, " is over ", max_bytes, " bytes"));
      break;
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return content;
}

}  // namespace gitfleet
