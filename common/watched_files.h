#ifndef GITFLEET_COMMON_WATCHED_FILES_H_
#define GITFLEET_COMMON_WATCHED_FILES_H_

// Configuration read from files that may change while the control plane runs (a mounted
// Kubernetes Secret is replaced in place), so that a secret is rotated or a credential
// revoked without a restart.
//
//   absl::StatusOr<std::unique_ptr<WatchedFiles<Config>>> config = WatchedFiles<Config>::Open(
//       {{"--api-tokens", tokens_path}}, &ParseConfig, {});   // unusable at start: an error
//   std::shared_ptr<const Config> now = (*config)->Current();
//
// Current() reads the files again at most once per `recheck`, and parses them again when
// any changed. Content that is refused (by `parse`, or by `accept` given what was in force;
// a file too large or missing) keeps what is in force, and is logged once per distinct
// problem: an edit with a typo never locks every caller out. An empty path reads as empty
// content. Thread-safe.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/sync.h"

namespace gitfleet {

struct WatchedFilesOptions {
  size_t max_bytes = 1 << 20;  // per file
  absl::Duration recheck = absl::Seconds(1);
  Clock* clock = &RealClock();
};

// The bounded content of `path` ("" for an empty path); errors name `flag`.
absl::StatusOr<std::string> ReadWatchedFile(const std::string& flag, const std::string& path,
                                            size_t max_bytes);

template <typename T>
class WatchedFiles {
 public:
  using Parse = std::function<absl::StatusOr<T>(const std::vector<std::string>& contents)>;
  // An error refuses `after` while `before` is in force.
  using Accept = std::function<absl::Status(const T& before, const T& after)>;
  struct File {
    std::string flag;  // names it in errors and logs: "--api-tokens"
    std::string path;
  };

  static absl::StatusOr<std::unique_ptr<WatchedFiles>> Open(std::vector<File> files, Parse parse,
                                                            WatchedFilesOptions options,
                                                            Accept accept = nullptr) {
    std::unique_ptr<WatchedFiles> watched(new WatchedFiles(std::move(files), std::move(parse),
                                                           std::move(accept), std::move(options)));
    absl::StatusOr<std::vector<std::string>> contents = watched->Read();
    if (!contents.ok()) return contents.status();
    absl::StatusOr<T> value = watched->parse_(*contents);
    if (!value.ok()) return value.status();
    MutexLock lock(&watched->mu_);
    watched->contents_ = *std::move(contents);
    watched->current_ = std::make_shared<const T>(*std::move(value));
    return watched;
  }

  std::shared_ptr<const T> Current() {
    MutexLock lock(&mu_);
    const absl::Time now = options_.clock->Now();
    if (now - checked_ < options_.recheck) return current_;
    checked_ = now;
    absl::StatusOr<std::vector<std::string>> contents = Read();
    if (contents.ok() && *contents == contents_) {
      errors_.Clear();  // put back as it was: a new break is logged again
      return current_;
    }
    absl::StatusOr<T> value = contents.ok() ? parse_(*contents) : contents.status();
    absl::Status accepted =
        value.ok() && accept_ != nullptr ? accept_(*current_, *value) : value.status();
    if (!accepted.ok()) {
      errors_.Report(accepted.message(), "what was read before stays in force");
      return current_;
    }
    errors_.Clear();
    contents_ = *std::move(contents);
    current_ = std::make_shared<const T>(*std::move(value));
    std::string changed;
    for (const File& file : files_) {
      if (!file.path.empty()) absl::StrAppend(&changed, changed.empty() ? "" : ", ", file.flag);
    }
    GF_LOG(INFO) << changed << ": read again after a change; now in force";
    return current_;
  }

 private:
  WatchedFiles(std::vector<File> files, Parse parse, Accept accept, WatchedFilesOptions options)
      : files_(std::move(files)),
        parse_(std::move(parse)),
        accept_(std::move(accept)),
        options_(std::move(options)),
        checked_(options_.clock->Now()) {}

  absl::StatusOr<std::vector<std::string>> Read() const {
    std::vector<std::string> contents;
    for (const File& file : files_) {
      absl::StatusOr<std::string> content =
          ReadWatchedFile(file.flag, file.path, options_.max_bytes);
      if (!content.ok()) return content.status();
      contents.push_back(*std::move(content));
    }
    return contents;
  }

  const std::vector<File> files_;
  const Parse parse_;
  const Accept accept_;
  const WatchedFilesOptions options_;
  Mutex mu_;
  absl::Time checked_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> contents_ ABSL_GUARDED_BY(mu_);  // what `current_` was parsed from
  ErrorLoggedOnce errors_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const T> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_WATCHED_FILES_H_
