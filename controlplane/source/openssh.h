#ifndef GITFLEET_CONTROLPLANE_SOURCE_OPENSSH_H_
#define GITFLEET_CONTROLPLANE_SOURCE_OPENSSH_H_

// SSH through OpenSSH's own client, `ssh`, as git itself speaks it, for what Debian 12's
// libssh2 (1.10) cannot do: an RSA key signs with SHA-2 there (rsa-sha2-256/512), which
// OpenSSH 8.8 and later and GitHub require, where libssh2 1.10 signs with SHA-1 only.
//
// Nothing of the machine's SSH setup is used: no ~/.ssh/config (-F /dev/null), no agent,
// no other key, no known_hosts but the credential's (strictly checked), no password or
// keyboard prompt, no forwarding, no multiplexing. The key is handed over as a private
// copy in a scratch folder of the control plane's (OpenSSH refuses a key others may read,
// which a mounted Secret often is), removed when the connection ends; a passphrase goes
// through SSH_ASKPASS, never on a command line.
//
//   SshCommandTarget target{"git.example.com", 22, "git", key_path, "", known_hosts, "github"};
//   GF_ASSIGN_OR_RETURN(std::unique_ptr<OpenSshConnection> ssh,
//                       OpenSshConnection::Start(settings, target, "git-upload-pack '/app.git'"));

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/subprocess.h"
#include "controlplane/source/ssh_command.h"

namespace gitfleet {

// Which SSH client fetches over ssh:// (--ssh-client): kAuto uses OpenSSH's for RSA keys
// and libssh2 for the rest (going on with OpenSSH's when libssh2 shares no key exchange or
// host key algorithm with the server); kOpenSsh OpenSSH's for every key; kLibssh2 never.
enum class SshClient { kAuto, kLibssh2, kOpenSsh };

// "auto", "libssh2" or "openssh"; InvalidArgument naming the value otherwise.
absl::StatusOr<SshClient> ParseSshClient(absl::string_view value);

struct OpenSshSettings {
  SshClient client = SshClient::kAuto;
  std::string program;      // the ssh binary; empty: "ssh" found on PATH
  std::string scratch_dir;  // where each connection's private folder goes (0700)
};

// Whether a connection with the key at `key_path` (and its certificate, if any), checking
// host keys against `known_hosts`, goes through OpenSSH's client: under kAuto for an RSA
// key, a key with a certificate (user certificates, which libssh2 does not send), and for
// known_hosts that trusts a certificate authority (`@cert-authority`: host certificates,
// which libssh2 does not read).
bool UsesOpenSsh(const OpenSshSettings& settings, const std::string& key_path,
                 const std::string& known_hosts, const std::string& certificate_path = "");

// The ssh binary settings name, or the one on PATH; NotFound saying what to install.
absl::StatusOr<std::string> FindSshProgram(const OpenSshSettings& settings);

// A command running on an SSH host, its standard input and output spoken to.
class OpenSshConnection {
 public:
  // Starts `ssh` to the target running `command` (a shell command line on the host, quoted
  // by the caller: QuoteForShell). NotFound without the binary; InvalidArgument for a host
  // or user OpenSSH would read as an option.
  static absl::StatusOr<std::unique_ptr<OpenSshConnection>> Start(const OpenSshSettings& settings,
                                                                  const SshCommandTarget& target,
                                                                  const std::string& command,
                                                                  absl::Duration connect_timeout);
  ~OpenSshConnection();

  absl::Status Write(absl::string_view data, absl::Time deadline);
  // 0 at the end of its output.
  absl::StatusOr<size_t> Read(char* buffer, size_t size, absl::Time deadline);
  // After its output ended: OK when the command exited 0; else the error, from what ssh and
  // the command said: PermissionDenied when the host key is not the credential's
  // known_hosts' or the key is refused (the message as libssh2's path words it), Unavailable
  // when the host cannot be reached, FailedPrecondition with the command's exit status.
  absl::Status Finish(absl::Time deadline);

 private:
  OpenSshConnection() = default;
  SshCommandTarget target_;
  std::string command_;
  std::string scratch_;
  std::unique_ptr<ChildProcess> child_;
};

// `text` as one word for a POSIX shell (single-quoted, as git quotes the path it gives
// git-upload-pack).
std::string QuoteForShell(absl::string_view text);

// The parts of an ssh:// or scp-like ("user@host:path") URL: the path as git hands it to
// git-upload-pack ("/org/app.git"; "~user/app.git" for ssh://host/~user/app.git).
struct SshUrl {
  std::string user;  // empty when the URL names none
  std::string host;  // as written ("[::1]" keeps its brackets)
  int port = 22;
  std::string path;
};
absl::StatusOr<SshUrl> ParseSshUrl(absl::string_view url);

// RunSshCommand's contract, through OpenSSH's client.
absl::StatusOr<std::string> RunOpenSshCommand(const OpenSshSettings& settings,
                                              const SshCommandTarget& target,
                                              const std::string& command,
                                              const SshCommandOptions& options = {});

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_OPENSSH_H_
