#ifndef GITFLEET_CONTROLPLANE_SOURCE_SSH_COMMAND_H_
#define GITFLEET_CONTROLPLANE_SOURCE_SSH_COMMAND_H_

// One command run on a Git host over SSH, as git-lfs runs `git-lfs-authenticate` there:
// the host's key checked against the credential's known_hosts, the credential's key
// offered, the command's output read (bounded) and its exit status checked. libssh2, as
// the control plane's SSH fetches use through libgit2.
//
//   SshCommandTarget target{"git.example.com", 22, "git", key_path, known_hosts, "github"};
//   GF_ASSIGN_OR_RETURN(std::string out,
//                       RunSshCommand(target, "git-lfs-authenticate 'org/app.git' download"));

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gitfleet {

struct SshCommandTarget {
  std::string host;
  int port = 22;
  std::string user;
  std::string key_path;          // the private key file
  std::string passphrase;        // the key's, when it is encrypted (else empty)
  std::string known_hosts;       // contents (OpenSSH format)
  std::string credential;        // its name, for messages
  std::string certificate_path;  // the key's OpenSSH certificate, or empty (OpenSSH's only)
};

struct SshCommandOptions {
  absl::Duration timeout = absl::Seconds(30);  // each step (connect, handshake, read)
  size_t max_output_bytes = 64 << 10;
};

// The command's standard output. Unavailable when the host cannot be reached or the
// connection breaks; PermissionDenied when its key is not in known_hosts or it refuses the
// credential's key; FailedPrecondition with its exit status and (the start of) its error
// output when the command fails; ResourceExhausted past max_output_bytes.
absl::StatusOr<std::string> RunSshCommand(const SshCommandTarget& target,
                                          const std::string& command,
                                          const SshCommandOptions& options = {});

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_SSH_COMMAND_H_
