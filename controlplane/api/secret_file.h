#ifndef GITFLEET_CONTROLPLANE_API_SECRET_FILE_H_
#define GITFLEET_CONTROLPLANE_API_SECRET_FILE_H_

// A file of shared secrets, one per line, that may change while the control plane runs:
// a mounted Kubernetes Secret is replaced in place, and rotating a webhook secret means
// accepting the old and the new one until every sender has the new one.
//
//   absl::StatusOr<std::unique_ptr<SecretFile>> secrets =
//       SecretFile::Open("/etc/gitfleet/webhook-secret", {});   // refused when unusable
//   for (const std::string& secret : *(*secrets)->Current()) ...
//
// Current() reads the file again at most once per `recheck`. Content that is refused (too
// short a secret, too many, too large a file, or no file) keeps the secrets in force, and
// says why in the log once per distinct problem: a typo never locks every sender out.
// Lines are secrets with trailing whitespace (and a CRLF's CR) cut; empty lines are skipped.
// Thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"

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
  Secrets Current();

 private:
  SecretFile(std::string path, Options options, std::string content, Secrets secrets);
  absl::StatusOr<std::string> Read() const;

  const std::string path_;
  const Options options_;
  Mutex mu_;
  absl::Time checked_ ABSL_GUARDED_BY(mu_);
  std::string content_ ABSL_GUARDED_BY(mu_);     // what `secrets_` was parsed from
  std::string last_error_ ABSL_GUARDED_BY(mu_);  // logged once, until it changes
  Secrets secrets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_API_SECRET_FILE_H_
