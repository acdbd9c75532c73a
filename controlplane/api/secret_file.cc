#include "controlplane/api/secret_file.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gitfleet {

absl::StatusOr<std::vector<std::string>> SecretFile::Parse(absl::string_view content,
                                                           const Options& options) {
  std::vector<std::string> secrets;
  int line = 0;
  for (absl::string_view text : absl::StrSplit(content, '\n')) {
    ++line;
    text = absl::StripTrailingAsciiWhitespace(text);
    if (text.empty()) continue;
    if (text.size() < options.min_length) {
      return absl::InvalidArgumentError(absl::StrCat(options.what, ": line ", line,
                                                     ": a secret must be at least ",
                                                     options.min_length, " characters"));
    }
    if (secrets.size() == options.max_secrets) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.what, ": more than ", options.max_secrets, " secrets (one per line)"));
    }
    secrets.emplace_back(text);
  }
  if (secrets.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(options.what, ": no secret in it"));
  }
  return secrets;
}

absl::StatusOr<std::unique_ptr<SecretFile>> SecretFile::Open(std::string path, Options options) {
  WatchedFilesOptions watch;
  watch.max_bytes = options.max_bytes;
  watch.recheck = options.recheck;
  watch.clock = options.clock;
  const std::string what = options.what;
  absl::StatusOr<std::unique_ptr<WatchedFiles<std::vector<std::string>>>> file =
      WatchedFiles<std::vector<std::string>>::Open(
          {{what, std::move(path)}},
          [options = std::move(options)](const std::vector<std::string>& contents) {
            return Parse(contents[0], options);
          },
          watch);
  if (!file.ok()) return file.status();
  return std::unique_ptr<SecretFile>(new SecretFile(*std::move(file)));
}

}  // namespace gitfleet
