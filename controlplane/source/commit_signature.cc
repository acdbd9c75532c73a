#include "controlplane/source/commit_signature.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/subprocess.h"

namespace gitfleet {
namespace {

constexpr size_t kMaxKeyFileBytes = 1 << 20;
constexpr int kMaxKeyFiles = 256;
constexpr size_t kMaxKeyBytes = 4 << 20;  // all of a folder's files together
constexpr absl::Duration kToolTimeout = absl::Seconds(30);

constexpr absl::string_view kPgpBegin = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
constexpr absl::string_view kPgpEnd = "-----END PGP PUBLIC KEY BLOCK-----";

// The binary packets of every armored public key block in `text`; false when a block
// cannot be read.
bool Dearmor(absl::string_view text, std::string* out, int* blocks) {
  while (true) {
    const size_t begin = text.find(kPgpBegin);
    if (begin == absl::string_view::npos) return true;
    const size_t end = text.find(kPgpEnd, begin);
    if (end == absl::string_view::npos) return false;
    absl::string_view body = text.substr(begin + kPgpBegin.size(), end - begin - kPgpBegin.size());
    text.remove_prefix(end + kPgpEnd.size());
    std::string base64;
    bool data = false;
    for (absl::string_view line : absl::StrSplit(body, absl::ByAnyChar("\r\n"))) {
      line = absl::StripAsciiWhitespace(line);
      if (line.empty()) continue;
      // Armor headers ("Comment: ...") come before the data; the checksum ("=XXXX") after.
      if (!data && absl::StrContains(line, ": ")) continue;
      if (line[0] == '=' && line.size() == 5) break;
      data = true;
      absl::StrAppend(&base64, line);
    }
    std::string packets;
    if (base64.empty() || !absl::Base64Unescape(base64, &packets)) return false;
    out->append(packets);
    ++*blocks;
  }
}

absl::StatusOr<std::string> FindProgram(const char* name, const char* package) {
  if (std::string found = FindOnPath(name); !found.empty()) return found;
  return absl::UnavailableError(absl::StrCat("cannot check commit signatures: ", name,
                                             " is not installed (Debian's ", package, ")"));
}

// A private scratch folder, removed with everything in it when this goes.
class Scratch {
 public:
  Scratch() {
    const char* tmp = getenv("TMPDIR");
    path_ = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/gitfleet-verify-XXXXXX");
    if (mkdtemp(path_.data()) == nullptr) path_.clear();
  }
  ~Scratch() {
    if (!path_.empty()) RemoveRecursively(path_).IgnoreError();
  }
  bool ok() const { return !path_.empty(); }
  std::string File(const std::string& name, absl::string_view contents) const {
    const std::string file = absl::StrCat(path_, "/", name);
    std::ofstream(file, std::ios::binary) << contents;
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

SubprocessOptions ToolOptions(const Scratch& scratch) {
  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin", absl::StrCat("HOME=", scratch.path()), "LC_ALL=C"};
  options.timeout = kToolTimeout;
  options.max_stdout_bytes = 64 << 10;
  return options;
}

// The first line of `text` that starts with `prefix`, past it; "" when none does.
std::string LineAfter(const std::string& text, absl::string_view prefix) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, prefix)) return std::string(absl::StripAsciiWhitespace(line));
  }
  return "";
}

absl::StatusOr<std::string> VerifyPgp(const SigningKeys& keys, const std::string& signature,
                                      const std::string& data) {
  if (keys.pgp_keys == 0) {
    return absl::PermissionDeniedError(absl::StrCat("it has an OpenPGP signature, and ", keys.name,
                                                    " holds no OpenPGP key (*.asc)"));
  }
  GF_ASSIGN_OR_RETURN(std::string gpgv, FindProgram("gpgv", "gpgv"));
  Scratch scratch;
  if (!scratch.ok()) return absl::InternalError("cannot make a scratch folder to check it");
  const std::string keyring = scratch.File("keyring.gpg", keys.pgp_keyring);
  const std::string sig = scratch.File("commit.sig", signature);
  const std::string signed_data = scratch.File("commit", data);
  GF_ASSIGN_OR_RETURN(SubprocessResult r,
                      RunSubprocess({gpgv, "--homedir", scratch.path(), "--keyring", keyring,
                                     "--status-fd", "1", sig, signed_data},
                                    ToolOptions(scratch)));
  const std::string valid = LineAfter(r.stdout_text, "[GNUPG:] VALIDSIG ");
  // gpgv calls a signature good whatever became of its key since: not here.
  if (std::string who = LineAfter(r.stdout_text, "[GNUPG:] REVKEYSIG "); !who.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "it is signed by OpenPGP key ", who.substr(0, who.find(' ')), ", which has been revoked"));
  }
  if (std::string who = LineAfter(r.stdout_text, "[GNUPG:] EXPKEYSIG "); !who.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("it is signed by OpenPGP key ", who.substr(0, who.find(' ')),
                     ", which has expired (give ", keys.name, " its renewed key)"));
  }
  if (!LineAfter(r.stdout_text, "[GNUPG:] EXPSIG ").empty()) {
    return absl::PermissionDeniedError("its OpenPGP signature has expired");
  }
  if (r.exit_code == 0 && !valid.empty()) {
    return valid.substr(0, valid.find(' '));  // the signing key's fingerprint
  }
  if (std::string missing = LineAfter(r.stdout_text, "[GNUPG:] NO_PUBKEY "); !missing.empty()) {
    return absl::PermissionDeniedError(absl::StrCat("it is signed by OpenPGP key ", missing,
                                                    ", which ", keys.name, " does not hold"));
  }
  if (!LineAfter(r.stdout_text, "[GNUPG:] BADSIG ").empty()) {
    return absl::PermissionDeniedError("its OpenPGP signature does not match its content");
  }
  std::string said(absl::StripAsciiWhitespace(r.stderr_text));
  if (said.size() > 300) said = said.substr(0, 300);
  return absl::PermissionDeniedError(
      absl::StrCat("its OpenPGP signature does not verify (gpgv: ", said, ")"));
}

absl::StatusOr<std::string> VerifySsh(const SigningKeys& keys, const std::string& signature,
                                      const std::string& data) {
  if (keys.allowed_signers.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("it has an SSH signature, and ", keys.name, " holds no allowed_signers file"));
  }
  GF_ASSIGN_OR_RETURN(std::string keygen, FindProgram("ssh-keygen", "openssh-client"));
  Scratch scratch;
  if (!scratch.ok()) return absl::InternalError("cannot make a scratch folder to check it");
  const std::string signers = scratch.File("allowed_signers", keys.allowed_signers);
  const std::string sig = scratch.File("commit.sig", signature);
  // Who the key is, by allowed_signers; then the signature, as that principal, in git's
  // namespace. The content goes on standard input.
  GF_ASSIGN_OR_RETURN(SubprocessResult found,
                      RunSubprocess({keygen, "-Y", "find-principals", "-s", sig, "-f", signers},
                                    ToolOptions(scratch)));
  std::string principal(absl::StripAsciiWhitespace(found.stdout_text));
  principal = principal.substr(0, principal.find('\n'));
  if (found.exit_code != 0 || principal.empty()) {
    return absl::PermissionDeniedError(absl::StrCat("it is signed by an SSH key that ", keys.name,
                                                    "'s allowed_signers does not list"));
  }
  GF_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> verify,
                      ChildProcess::Start({keygen, "-Y", "verify", "-f", signers, "-I", principal,
                                           "-n", "git", "-s", sig},
                                          ToolOptions(scratch)));
  const absl::Time deadline = RealClock().Now() + kToolTimeout;
  if (absl::Status written = verify->Write(data, deadline); !written.ok()) {
    return absl::InternalError(absl::StrCat("ssh-keygen took no input: ", written.message()));
  }
  verify->CloseInput();
  char buffer[4096];
  std::string out;
  while (true) {
    GF_ASSIGN_OR_RETURN(size_t n, verify->Read(buffer, sizeof(buffer), deadline));
    if (n == 0) break;
    if (out.size() < 4096) out.append(buffer, n);
  }
  GF_ASSIGN_OR_RETURN(int code, verify->Wait(deadline));
  if (code != 0) {
    std::string said(absl::StripAsciiWhitespace(verify->stderr_text()));
    if (said.size() > 300) said = said.substr(0, 300);
    return absl::PermissionDeniedError(
        absl::StrCat("its SSH signature does not verify (ssh-keygen: ", said, ")"));
  }
  return principal;
}

}  // namespace

absl::StatusOr<SigningKeys> LoadSigningKeys(const std::string& dir, const std::string& name) {
  GF_RETURN_IF_ERROR(ValidateName("signing key folder", name));
  if (dir.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("signing keys ", name,
                     " are named, but the control plane has no --credentials-dir to find them in"));
  }
  const std::string folder = absl::StrCat(dir, "/", name);
  struct Closer {
    void operator()(DIR* d) const { closedir(d); }
  };
  std::unique_ptr<DIR, Closer> listing(opendir(folder.c_str()));
  if (listing == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("signing keys ", name, " not found: no folder ",
                                                   name, " in --credentials-dir"));
  }
  std::vector<std::string> files;
  while (dirent* entry = readdir(listing.get())) {
    const std::string file = entry->d_name;
    if (file.empty() || file[0] == '.') continue;  // a mounted Secret's ..data and the like
    if (absl::EndsWith(file, ".asc") || file == "allowed_signers") files.push_back(file);
    if (files.size() > static_cast<size_t>(kMaxKeyFiles)) {
      return absl::InvalidArgumentError(
          absl::StrCat("signing keys ", name, ": more than ", kMaxKeyFiles, " key files"));
    }
  }
  std::sort(files.begin(), files.end());
  SigningKeys keys;
  keys.name = name;
  size_t total = 0;
  for (const std::string& file : files) {
    const std::string path = absl::StrCat(folder, "/", file);
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (static_cast<size_t>(st.st_size) > kMaxKeyFileBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("signing keys ", name, ": ", file, " is over 1 MiB"));
    }
    total += static_cast<size_t>(st.st_size);
    if (total > kMaxKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("signing keys ", name, ": its key files are over 4 MiB together"));
    }
    GF_ASSIGN_OR_RETURN(std::string text, PosixFileSystem().ReadFile(path));
    if (file == "allowed_signers") {
      keys.allowed_signers = text;
      continue;
    }
    if (absl::StrContains(text, "PRIVATE KEY BLOCK")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "signing keys ", name, ": ", file,
          " holds a private key; verifying takes public keys alone (gpg --export --armor)"));
    }
    int blocks = 0;
    if (!Dearmor(text, &keys.pgp_keyring, &blocks) || blocks == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("signing keys ", name, ": ", file,
                       " is not an ASCII-armored OpenPGP public key (gpg --export --armor KEY)"));
    }
    keys.pgp_keys += blocks;
  }
  if (keys.pgp_keys == 0 && absl::StripAsciiWhitespace(keys.allowed_signers).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "signing keys ", name,
        " holds no key: put OpenPGP public keys in *.asc files, SSH keys in allowed_signers"));
  }
  return keys;
}

absl::StatusOr<std::string> VerifyCommitSignature(const SigningKeys& keys,
                                                  const std::string& signature,
                                                  const std::string& signed_data) {
  if (absl::StartsWith(signature, "-----BEGIN PGP SIGNATURE-----")) {
    return VerifyPgp(keys, signature, signed_data);
  }
  if (absl::StartsWith(signature, "-----BEGIN SSH SIGNATURE-----")) {
    return VerifySsh(keys, signature, signed_data);
  }
  if (absl::StartsWith(signature, "-----BEGIN SIGNED MESSAGE-----")) {
    return absl::PermissionDeniedError(
        "it has an X.509 (gpgsm) signature, which gitfleet does not check: sign with OpenPGP "
        "or SSH keys");
  }
  return absl::PermissionDeniedError("its signature is of a kind gitfleet does not know");
}

}  // namespace gitfleet
