#ifndef GITFLEET_CONTROLPLANE_API_SECRET_FILE_H_
#define GITFLEET_CONTROLPLANE_API_SECRET_FILE_H_

// A file of shared secrets, one per line, that may change while the control plane runs:
// rotating a webhook secret means accepting the old and the new one until every sender
// has the new one, and a mounted Kubernetes Secret is replaced in place.
//
//   absl::StatusOr<std::unique_ptr<SecretFile>> secrets =
//       SecretFile::Open("/etc/gitfleet/webhook-secret", {});   // refused when unusable
//   for (const std::string& secret : *(*secrets)->Current()) ...
//
// Read again at most once per `recheck`; a change that is refused keeps the secrets in
// force (see WatchedFiles). Lines are secrets with trailing whitespace (and a CRLF's CR)
// cut; empty lines are skipped. Thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/watched_files.h"

namespace gitfleet {

class SecretFile {
 public:
  using Secrets = std::shared_ptr<const std::vector<std::string>>;
  struct Options {
    // Names the file in errors and logs ("--webhook-secret-file").
    std::string what = "secret file";
    size_t min_length = 16;
    size_t max_secrets = 8;
    size_t max_bytes = 4096;
    absl::Duration recheck = absl::Seconds(1);
    Clock* clock = &RealClock();
  };

  // Reads `path` once; an unusable file is an error here, not later.
  static absl::StatusOr<std::unique_ptr<SecretFile>> Open(std::string path, Options options);
  // The secrets in `content`, in file order, or why it is refused (naming the line).
  static absl::StatusOr<std::vector<std::string>> Parse(absl::string_view content,
                                                        const Options& options);

  // The secrets in force, in file order (never empty).
  Secrets Current() { return file_->Current(); }

 private:
  explicit SecretFile(std::unique_ptr<WatchedFiles<std::vector<std::string>>> file)
      : file_(std::move(file)) {}
  const std::unique_ptr<WatchedFiles<std::vector<std::string>>> file_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_API_SECRET_FILE_H_
