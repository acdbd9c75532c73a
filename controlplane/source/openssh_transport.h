#ifndef GITFLEET_CONTROLPLANE_SOURCE_OPENSSH_TRANSPORT_H_
#define GITFLEET_CONTROLPLANE_SOURCE_OPENSSH_TRANSPORT_H_

// libgit2's smart protocol carried by OpenSSH's `ssh` (openssh.h), as git carries it:
// `ssh … HOST "git-upload-pack '/path'"`, for a fetch whose key libssh2 cannot sign with
// (an RSA key against OpenSSH 8.8+ or GitHub). Fetch only: gitfleet never pushes.
//
//   OpenSshFetch fetch{settings, &credential};
//   options.callbacks.transport = OpenSshGitTransport;   // payload: &fetch
//
// Each read and write waits at most until the calling thread's fetch deadline, and ends
// when fetches are cancelled (timed_stream.h), as the socket transports do.

#include <git2.h>

#include "controlplane/source/git_credentials.h"
#include "controlplane/source/openssh.h"

namespace gitfleet {

struct OpenSshFetch {
  OpenSshSettings settings;
  const GitCredential* credential = nullptr;  // with an SSH key and known_hosts
};

// A git_transport_cb; `payload` is an OpenSshFetch that outlives the fetch.
int OpenSshGitTransport(git_transport** out, git_remote* owner, void* payload);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_OPENSSH_TRANSPORT_H_
