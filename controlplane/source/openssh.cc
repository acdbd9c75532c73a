#include "controlplane/source/openssh.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "common/status_macros.h"
#include "controlplane/source/git_credentials.h"

namespace gitfleet {
namespace {

constexpr size_t kMaxKeyBytes = 64 << 10;

std::string Where(const SshCommandTarget& target) {
  return target.port == 22 ? target.host : absl::StrCat(target.host, ":", target.port);
}

void RemoveTree(const std::string& dir) {
  if (dir.empty()) return;
  nftw(
      dir.c_str(),
      [](const char* path, const struct stat*, int, struct FTW*) {
        remove(path);
        return 0;
      },
      8, FTW_DEPTH | FTW_PHYS);
}

// A path as an ssh option's value: quoted (a space would end it) and its "%" doubled (ssh
// expands %-tokens in these paths).
std::string ConfigPath(const std::string& path) {
  return absl::StrCat("\"", absl::StrReplaceAll(path, {{"%", "%%"}}), "\"");
}

// The last non-empty lines of what ssh wrote to its error output, at most 512 bytes.
std::string LastWords(const std::string& text) {
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(text, absl::ByAnyChar("\r\n"))) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) lines.push_back(line);
  }
  std::string out;
  for (size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : "; ", lines[i]);
  }
  if (out.size() > 512) out = out.substr(out.size() - 512);
  return out;
}

}  // namespace

absl::StatusOr<SshClient> ParseSshClient(absl::string_view value) {
  if (value == "auto") return SshClient::kAuto;
  if (value == "libssh2") return SshClient::kLibssh2;
  if (value == "openssh") return SshClient::kOpenSsh;
  return absl::InvalidArgumentError(
      absl::StrCat("--ssh-client=", value, ": want auto, libssh2 or openssh"));
}

bool UsesOpenSsh(const OpenSshSettings& settings, const std::string& key_path,
                 const std::string& known_hosts, const std::string& certificate_path) {
  switch (settings.client) {
    case SshClient::kLibssh2:
      return false;
    case SshClient::kOpenSsh:
      return true;
    case SshClient::kAuto:
      if (!certificate_path.empty()) return true;
      for (absl::string_view line : absl::StrSplit(known_hosts, '\n')) {
        if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "@cert-authority")) {
          return true;
        }
      }
      return ReadSshKeyType(key_path) == "ssh-rsa";
  }
  return false;
}

absl::StatusOr<std::string> FindSshProgram(const OpenSshSettings& settings) {
  if (!settings.program.empty()) {
    if (access(settings.program.c_str(), X_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat("cannot run --ssh=", settings.program, ": ", strerror(errno)));
    }
    return settings.program;
  }
  if (std::string found = FindOnPath("ssh"); !found.empty()) return found;
  return absl::NotFoundError(
      "OpenSSH's ssh client is not installed (Debian's openssh-client), or give its path "
      "with --ssh");
}

std::string QuoteForShell(absl::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

absl::StatusOr<std::unique_ptr<OpenSshConnection>> OpenSshConnection::Start(
    const OpenSshSettings& settings, const SshCommandTarget& target, const std::string& command,
    absl::Duration connect_timeout) {
  absl::StatusOr<std::string> program = FindSshProgram(settings);
  if (!program.ok()) return program.status();
  // A host or user that starts with "-" would be read as an option (CVE-2017-1000117).
  std::string host = target.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host[0] == '-' || target.user.empty() || target.user[0] == '-' ||
      absl::StrContains(host, " ") || absl::StrContains(target.user, " ")) {
    return absl::InvalidArgumentError(
        absl::StrCat("refusing SSH host \"", target.host, "\" or user \"", target.user, "\""));
  }
  absl::StatusOr<std::string> key = PosixFileSystem().ReadFile(target.key_path);
  if (!key.ok() || key->size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the SSH key of credential ", target.credential));
  }
  if (!absl::EndsWith(*key, "\n")) key->push_back('\n');  // OpenSSH wants the last newline
  std::unique_ptr<OpenSshConnection> connection(new OpenSshConnection());
  connection->target_ = target;
  connection->command_ = command;
  const std::string root = settings.scratch_dir.empty() ? "/tmp" : settings.scratch_dir;
  std::string scratch = absl::StrCat(root, "/ssh-XXXXXX");
  if (mkdtemp(scratch.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot make a folder in ", root, " for ssh: ", strerror(errno)));
  }
  connection->scratch_ = scratch;  // removed by the destructor from here on
  GF_RETURN_IF_ERROR(WriteNewFile(scratch + "/key", *key, 0600));
  GF_RETURN_IF_ERROR(WriteNewFile(scratch + "/known_hosts", target.known_hosts, 0600));
  if (!target.certificate_path.empty()) {
    absl::StatusOr<std::string> certificate = PosixFileSystem().ReadFile(target.certificate_path);
    if (!certificate.ok() || certificate->size() > kMaxKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read the SSH certificate of credential ", target.credential));
    }
    GF_RETURN_IF_ERROR(WriteNewFile(scratch + "/key-cert.pub", *certificate, 0600));
  }
  const bool passphrase = !target.passphrase.empty();
  if (passphrase) {
    GF_RETURN_IF_ERROR(WriteNewFile(
        scratch + "/askpass", "#!/bin/sh\nprintf '%s\\n' \"$GITFLEET_SSH_PASSPHRASE\"\n", 0700));
  }
  const int64_t connect_seconds = std::max<int64_t>(1, absl::ToInt64Seconds(connect_timeout));
  // Every option that could reach beyond the credential is set, whatever ssh's defaults.
  const std::vector<std::string> settings_given = {
      absl::StrCat("BatchMode=", passphrase ? "no" : "yes"),
      "IdentitiesOnly=yes",
      "IdentityAgent=none",
      absl::StrCat("IdentityFile=", ConfigPath(scratch + "/key")),
      absl::StrCat("UserKnownHostsFile=", ConfigPath(scratch + "/known_hosts")),
      "GlobalKnownHostsFile=/dev/null",
      "StrictHostKeyChecking=yes",
      "UpdateHostKeys=no",
      "CheckHostIP=no",
      "PreferredAuthentications=publickey",
      "PasswordAuthentication=no",
      "KbdInteractiveAuthentication=no",
      "HostbasedAuthentication=no",
      "GSSAPIAuthentication=no",
      "NumberOfPasswordPrompts=1",
      absl::StrCat("ConnectTimeout=", connect_seconds),
      "ServerAliveInterval=15",
      "ServerAliveCountMax=4",
      "ControlMaster=no",
      "ControlPath=none",
      "ProxyCommand=none",
      "ProxyJump=none",
      "PermitLocalCommand=no",
      "ForwardAgent=no",
      "ForwardX11=no",
      "ClearAllForwardings=yes",
      "RequestTTY=no",
      "LogLevel=ERROR",
  };
  std::vector<std::string> argv = {*program, "-F", "/dev/null"};
  if (!target.certificate_path.empty()) {
    argv.push_back("-o");
    argv.push_back(absl::StrCat("CertificateFile=", ConfigPath(scratch + "/key-cert.pub")));
  }
  for (const std::string& option : settings_given) {
    argv.push_back("-o");
    argv.push_back(option);
  }
  for (const std::string& arg : {std::string("-p"), std::to_string(target.port), std::string("-l"),
                                 target.user, std::string("--"), host, command}) {
    argv.push_back(arg);
  }
  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin", absl::StrCat("HOME=", scratch)};
  if (passphrase) {
    options.env.push_back(absl::StrCat("SSH_ASKPASS=", scratch, "/askpass"));
    options.env.push_back("SSH_ASKPASS_REQUIRE=force");
    options.env.push_back(absl::StrCat("GITFLEET_SSH_PASSPHRASE=", target.passphrase));
  }
  options.max_stderr_bytes = 16 << 10;
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(argv, options);
  if (!child.ok()) return child.status();
  connection->child_ = *std::move(child);
  return connection;
}

OpenSshConnection::~OpenSshConnection() {
  child_.reset();  // killed and reaped before its files go
  RemoveTree(scratch_);
}

absl::Status OpenSshConnection::Write(absl::string_view data, absl::Time deadline) {
  absl::Status written = child_->Write(data, deadline);
  if (written.ok()) return written;
  if (absl::IsDeadlineExceeded(written)) {
    return absl::DeadlineExceededError(
        absl::StrCat("timed out writing to ", Where(target_), " over SSH"));
  }
  // It ended early: say why.
  absl::Status finished = Finish(deadline);
  return finished.ok()
             ? absl::UnavailableError(absl::StrCat(Where(target_), " closed the SSH connection"))
             : finished;
}

absl::StatusOr<size_t> OpenSshConnection::Read(char* buffer, size_t size, absl::Time deadline) {
  absl::StatusOr<size_t> n = child_->Read(buffer, size, deadline);
  if (!n.ok() && absl::IsDeadlineExceeded(n.status())) {
    return absl::DeadlineExceededError(
        absl::StrCat("timed out reading from ", Where(target_), " over SSH"));
  }
  return n;
}

absl::Status OpenSshConnection::Finish(absl::Time deadline) {
  absl::StatusOr<int> code = child_->Wait(deadline);
  if (!code.ok()) {
    return absl::DeadlineExceededError(
        absl::StrCat("ssh to ", Where(target_), " did not end in time"));
  }
  if (*code == 0) return absl::OkStatus();
  const std::string& said = child_->stderr_text();
  const std::string words = LastWords(said);
  if (absl::StrContains(said, "Host key verification failed") ||
      absl::StrContains(said, "REMOTE HOST IDENTIFICATION HAS CHANGED") ||
      absl::StrContains(said, "host key is known for")) {
    // OpenSSH names the offered key's fingerprint when it differs from the listed one.
    std::string offered;
    if (const size_t at = said.find("SHA256:"); at != std::string::npos) {
      const size_t end = said.find_first_of(" .\r\n", at);
      offered = absl::StrCat(": the server offers ", said.substr(at, end - at));
    }
    return absl::PermissionDeniedError(absl::StrCat(
        "the SSH host key of ", Where(target_), " is not one credential ", target_.credential,
        "'s known_hosts lists for it", offered, " (OpenSSH: ", words, ")"));
  }
  if (absl::StrContains(said, "Permission denied (")) {
    return absl::PermissionDeniedError(absl::StrCat(
        Where(target_), " refused credential ", target_.credential, "'s SSH key for user ",
        target_.user, " (its SSH key is not authorized for this repository",
        target_.passphrase.empty() ? "" : ", or the password file is not its passphrase",
        "; OpenSSH: ", words, ")"));
  }
  if (absl::StrContains(said, "Load key") || absl::StrContains(said, "invalid format")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "OpenSSH cannot read credential ", target_.credential, "'s ssh-privatekey: ", words));
  }
  if (*code == 255) {  // ssh's own failure: the connection, not the command
    return absl::UnavailableError(
        absl::StrCat("cannot reach ", Where(target_), " over SSH: ", words));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("`", command_, "` on ", Where(target_), " exited with status ", *code,
                   words.empty() ? "" : absl::StrCat(": ", words)));
}

absl::StatusOr<std::string> RunOpenSshCommand(const OpenSshSettings& settings,
                                              const SshCommandTarget& target,
                                              const std::string& command,
                                              const SshCommandOptions& options) {
  GF_ASSIGN_OR_RETURN(std::unique_ptr<OpenSshConnection> ssh,
                      OpenSshConnection::Start(settings, target, command, options.timeout));
  const absl::Time deadline = RealClock().Now() + options.timeout;
  std::string out;
  char buffer[8192];
  while (true) {
    absl::StatusOr<size_t> n = ssh->Read(buffer, sizeof(buffer), deadline);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    if (out.size() + *n > options.max_output_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("the command on ", Where(target),
                                                       " wrote more than ",
                                                       options.max_output_bytes, " bytes"));
    }
    out.append(buffer, *n);
  }
  GF_RETURN_IF_ERROR(ssh->Finish(deadline));
  return out;
}

absl::StatusOr<SshUrl> ParseSshUrl(absl::string_view url) {
  SshUrl parsed;
  absl::string_view rest = url;
  absl::string_view authority;
  if (absl::ConsumePrefix(&rest, "ssh://") || absl::ConsumePrefix(&rest, "git+ssh://") ||
      absl::ConsumePrefix(&rest, "ssh+git://")) {
    const size_t slash = rest.find('/');
    if (slash == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("no repository path in ", url));
    }
    authority = rest.substr(0, slash);
    absl::string_view path = rest.substr(slash);
    // As git: ssh://host/~user/repo names "~user/repo", in that user's home.
    if (absl::StartsWith(path, "/~")) path.remove_prefix(1);
    parsed.path = std::string(path);
    if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
      parsed.user = std::string(authority.substr(0, at));
      authority.remove_prefix(at + 1);
    }
    const size_t close = authority.rfind(']');
    const size_t colon = authority.rfind(':');
    if (colon != absl::string_view::npos && (close == absl::string_view::npos || colon > close)) {
      if (!absl::SimpleAtoi(authority.substr(colon + 1), &parsed.port) || parsed.port <= 0 ||
          parsed.port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat("bad port in ", url));
      }
      authority = authority.substr(0, colon);
    }
    parsed.host = std::string(authority);
  } else if (!absl::StrContains(rest, "://")) {
    // scp-like: [user@]host:path
    const size_t colon = rest.find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError(absl::StrCat("not an SSH URL: ", url));
    }
    authority = rest.substr(0, colon);
    parsed.path = std::string(rest.substr(colon + 1));
    if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
      parsed.user = std::string(authority.substr(0, at));
      authority.remove_prefix(at + 1);
    }
    parsed.host = std::string(authority);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("not an SSH URL: ", url));
  }
  if (parsed.host.empty() || parsed.path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no host or path in ", url));
  }
  return parsed;
}

}  // namespace gitfleet
