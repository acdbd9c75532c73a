#include "controlplane/render/pgp.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_system.h"
#include "common/status_macros.h"
#include "common/subprocess.h"

namespace gitfleet {
namespace {

constexpr size_t kMaxKeyBytes = 1 << 20;
constexpr size_t kMaxMessageBytes = 64 << 10;
constexpr int kMaxKeys = 64;

// gpg's stderr, one line, for an error (never a key: gpg prints none).
std::string GpgSays(const SubprocessResult& result) {
  std::string said(absl::StripAsciiWhitespace(result.stderr_text.substr(0, 512)));
  for (char& c : said) {
    if (c == '\n') c = ';';
  }
  return said;
}

}  // namespace

std::vector<std::string> PgpKeys::Env() const {
  return {"PATH=/usr/bin:/bin", "HOME=" + gpg_home_, "GNUPGHOME=" + gpg_home_, "LC_ALL=C"};
}

absl::StatusOr<std::shared_ptr<PgpKeys>> PgpKeys::Import(absl::string_view armored,
                                                         const Options& options,
                                                         const std::string& origin) {
  if (access(options.gpg.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(origin, ": PGP keys need gpg (", options.gpg,
                                                      "; Debian's gnupg package), not found"));
  }
  if (armored.size() > kMaxKeyBytes || !absl::StrContains(armored, "PRIVATE KEY BLOCK")) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin,
                     ": holds no armored PGP private key (gpg --export-secret-keys "
                     "--armor writes one)"));
  }
  (void)mkdir(options.keyring_dir.c_str(), 0700);
  std::string home = options.keyring_dir + "/keyring-XXXXXX";
  if (mkdtemp(home.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat(origin, ": cannot make a keyring in ", options.keyring_dir));
  }
  // The agent's socket path must fit a sockaddr_un (108 bytes): a long keyring path is
  // reached through a short link.
  std::string link_dir;
  if (home.size() + sizeof("/S.gpg-agent.browser") > 100) {
    link_dir = "/tmp/gitfleet-gpg-XXXXXX";
    if (mkdtemp(link_dir.data()) == nullptr ||
        symlink(home.c_str(), (link_dir + "/h").c_str()) != 0) {
      (void)RemoveRecursively(home);
      return absl::InternalError(absl::StrCat(origin, ": cannot link the keyring from /tmp"));
    }
  }
  std::shared_ptr<PgpKeys> keys(new PgpKeys(options, home, link_dir));
  GF_RETURN_IF_ERROR(
      PosixFileSystem().WriteFileAtomically(keys->home_ + "/import.asc", std::string(armored)));
  SubprocessOptions run;
  run.env = keys->Env();
  run.timeout = absl::Seconds(30);
  absl::StatusOr<SubprocessResult> imported = RunSubprocess(
      {options.gpg, "--batch", "--quiet", "--no-tty", "--import", keys->home_ + "/import.asc"},
      run);
  (void)unlink((keys->home_ + "/import.asc").c_str());
  if (!imported.ok() || imported->exit_code != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": gpg does not import it: ",
        imported.ok() ? GpgSays(*imported) : std::string(imported.status().message())));
  }
  absl::StatusOr<SubprocessResult> listed = RunSubprocess(
      {options.gpg, "--batch", "--no-tty", "--with-colons", "--list-secret-keys"}, run);
  if (!listed.ok() || listed->exit_code != 0) {
    return absl::InternalError(absl::StrCat(origin, ": gpg cannot list the keys it imported"));
  }
  bool secret = false;
  for (absl::string_view line : absl::StrSplit(listed->stdout_text, '\n')) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ':');
    if (fields.empty()) continue;
    if (fields[0] == "sec" || fields[0] == "ssb") {
      secret = true;
      // Field 15 (the serial number field) is "+" for a key whose secret is there; a
      // passphrase shows as protection the agent would ask for, which decrypting refuses.
    } else if (fields[0] == "fpr" && secret && fields.size() > 9) {
      keys->fingerprints_.push_back(std::string(fields[9]));
      secret = false;
    }
  }
  if (keys->fingerprints_.empty() || keys->fingerprints_.size() > kMaxKeys * 2) {
    return absl::InvalidArgumentError(absl::StrCat(origin, keys->fingerprints_.empty()
                                                               ? ": holds no PGP secret key"
                                                               : ": holds too many PGP keys"));
  }
  return keys;
}

PgpKeys::~PgpKeys() {
  SubprocessOptions run;
  run.env = Env();
  run.timeout = absl::Seconds(10);
  // gpgconf ships beside gpg (the same gnupg).
  const size_t slash = options_.gpg.rfind('/');
  const std::string gpgconf =
      slash == std::string::npos ? "gpgconf" : options_.gpg.substr(0, slash + 1) + "gpgconf";
  (void)RunSubprocess({gpgconf, "--kill", "gpg-agent"}, run);
  (void)RemoveRecursively(home_);
  if (!link_dir_.empty()) (void)RemoveRecursively(link_dir_);
}

absl::StatusOr<std::string> PgpKeys::Decrypt(absl::string_view message, size_t max_plaintext,
                                             const std::vector<std::string>* only) const {
  if (message.size() > kMaxMessageBytes || !absl::StrContains(message, "BEGIN PGP MESSAGE")) {
    return absl::InvalidArgumentError("the PGP entry is not an armored PGP message");
  }
  MutexLock lock(&mu_);
  const std::string file = absl::StrCat(home_, "/message-", ++messages_, ".asc");
  const std::string status_file = file + ".status";
  GF_RETURN_IF_ERROR(PosixFileSystem().WriteFileAtomically(file, std::string(message)));
  SubprocessOptions run;
  run.env = Env();
  run.timeout = absl::Seconds(30);
  run.max_stdout_bytes = max_plaintext;
  // A key with a passphrase fails here rather than wait for a pinentry nobody answers.
  absl::StatusOr<SubprocessResult> result =
      RunSubprocess({options_.gpg, "--batch", "--quiet", "--no-tty", "--pinentry-mode", "error",
                     "--status-file", status_file, "--decrypt", file},
                    run);
  (void)unlink(file.c_str());
  absl::StatusOr<std::string> status_text = PosixFileSystem().ReadFile(status_file);
  (void)unlink(status_file.c_str());
  if (!result.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpg could not decrypt the PGP entry: ", result.status().message()));
  }
  if (result->exit_code != 0) {
    const std::string said = GpgSays(*result);
    if (absl::StrContains(said, "No secret key")) {
      return absl::NotFoundError("none of the PGP keys is a recipient");
    }
    return absl::InvalidArgumentError(absl::StrCat("gpg could not decrypt the PGP entry: ", said));
  }
  if (only != nullptr) {
    // "[GNUPG:] DECRYPTION_KEY <fingerprint of the key used> <its primary's> <trust>"
    std::vector<std::string> used;
    for (absl::string_view line : absl::StrSplit(status_text.ok() ? *status_text : "", '\n')) {
      if (!absl::ConsumePrefix(&line, "[GNUPG:] DECRYPTION_KEY ")) continue;
      std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      for (size_t i = 0; i < fields.size() && i < 2; ++i) {
        used.push_back(absl::AsciiStrToUpper(fields[i]));
      }
    }
    if (used.empty()) {
      return absl::InvalidArgumentError(
          "gpg did not say which key opened the PGP entry, so whether it may cannot be told");
    }
    if (std::none_of(used.begin(), used.end(), [only](const std::string& fingerprint) {
          return std::find(only->begin(), only->end(), fingerprint) != only->end();
        })) {
      return absl::NotFoundError(absl::StrCat("the PGP key that opens it (", used[0],
                                              ") is not one of those allowed here"));
    }
  }
  return result->stdout_text;
}

}  // namespace gitfleet
