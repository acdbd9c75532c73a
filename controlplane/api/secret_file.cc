#include "controlplane/api/secret_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"

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

absl::StatusOr<std::string> SecretFile::Read() const {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat(options_.what, ": cannot open ", path_, ": ", std::strerror(errno)));
  }
  std::string content;
  char buffer[1024];
  absl::Status status;
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::UnavailableError(
          absl::StrCat(options_.what, ": cannot read ", path_, ": ", std::strerror(errno)));
      break;
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > options_.max_bytes) {
      status = absl::InvalidArgumentError(absl::StrCat(options_.what, ": ", path_, " is over ",
                                                       options_.max_bytes, " bytes; not a secret"));
      break;
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return content;
}

absl::StatusOr<std::unique_ptr<SecretFile>> SecretFile::Open(std::string path, Options options) {
  std::unique_ptr<SecretFile> file(
      new SecretFile(std::move(path), std::move(options), "", nullptr));
  absl::StatusOr<std::string> content = file->Read();
  if (!content.ok()) return content.status();
  absl::StatusOr<std::vector<std::string>> secrets = Parse(*content, file->options_);
  if (!secrets.ok()) return secrets.status();
  MutexLock lock(&file->mu_);
  file->content_ = std::move(*content);
  file->secrets_ = std::make_shared<const std::vector<std::string>>(std::move(*secrets));
  return file;
}

SecretFile::SecretFile(std::string path, Options options, std::string content, Secrets secrets)
    : path_(std::move(path)),
      options_(std::move(options)),
      checked_(options_.clock->Now()),
      content_(std::move(content)),
      secrets_(std::move(secrets)) {}

SecretFile::Secrets SecretFile::Current() {
  MutexLock lock(&mu_);
  const absl::Time now = options_.clock->Now();
  if (now - checked_ < options_.recheck) return secrets_;
  checked_ = now;
  absl::StatusOr<std::string> content = Read();
  if (content.ok() && *content == content_) {
    last_error_.clear();  // put back as it was: a new break is logged again
    return secrets_;
  }
  absl::StatusOr<std::vector<std::string>> secrets =
      content.ok() ? Parse(*content, options_) : content.status();
  if (!secrets.ok()) {
    std::string error(secrets.status().message());
    if (error != last_error_) {
      GF_LOG(ERROR) << error << "; the " << secrets_->size()
                    << " secret(s) read before stay in force";
      last_error_ = std::move(error);
    }
    return secrets_;
  }
  last_error_.clear();
  content_ = std::move(*content);
  secrets_ = std::make_shared<const std::vector<std::string>>(std::move(*secrets));
  GF_LOG(INFO) << options_.what << ": " << path_ << " changed; " << secrets_->size()
               << " secret(s) in force";
  return secrets_;
}

}  // namespace gitfleet
