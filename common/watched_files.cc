#include "common/watched_files.h"

#include "common/file_system.h"

namespace gitfleet {

absl::StatusOr<std::string> ReadWatchedFile(const std::string& flag, const std::string& path,
                                            size_t max_bytes) {
  if (path.empty()) return std::string();
  absl::StatusOr<std::string> content = ReadFileAtMost(path, max_bytes);
  if (!content.ok()) {
    return absl::Status(content.status().code(),
                        absl::StrCat(flag, ": ", content.status().message()));
  }
  return content;
}

}  // namespace gitfleet
