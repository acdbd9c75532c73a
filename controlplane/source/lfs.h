#ifndef GITFLEET_CONTROLPLANE_SOURCE_LFS_H_
#define GITFLEET_CONTROLPLANE_SOURCE_LFS_H_

// Git LFS: a file kept in LFS storage is a three-line pointer in Git (git-lfs's spec/v1).
// For a source read with --lfs, the control plane fetches each pointer's object from the
// repository's LFS server as git-lfs does (its batch API, the basic transfer), checks it
// against the pointer's SHA-256 and size, and keeps it under the cache by its id, so each
// object crosses the network once.
//
//   GF_ASSIGN_OR_RETURN(std::string endpoint, LfsEndpoint(url, LfsConfigUrl(lfsconfig)));
//   GF_ASSIGN_OR_RETURN(std::vector<std::string> contents,
//                       FetchLfsObjects(endpoint, login, pointers, options));
//
// The credential (the source's, username and password) goes to the LFS server's host only:
// an object's download URL on another host (GitHub's storage) gets only the headers the
// server's answer names for it. Plain http only on loopback, as for every password.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gitfleet {

struct LfsPointer {
  std::string oid;  // 64 lower-case hex digits (sha256)
  int64_t size = 0;
};

// The pointer `content` is (its version line first, an `oid sha256:` and a `size` line), or
// nullopt when it is no LFS pointer.
std::optional<LfsPointer> ParseLfsPointer(absl::string_view content);

// lfs.url in a repository's .lfsconfig (Git's config syntax), else its
// remote.origin.lfsurl (as git-lfs reads them for a clone's remote), or "" when it sets
// neither; a key given twice, the last.
std::string LfsConfigUrl(absl::string_view lfsconfig);

// The LFS server of the repository at `url`, as git-lfs finds it: `lfs_url` (.lfsconfig's)
// when set; otherwise the URL with ".git" added unless it ends so, and "/info/lfs"
// (https://host/org/app.git/info/lfs), an SSH URL's host and path over https
// (git@host:org/app → https://host/org/app.git/info/lfs). InvalidArgument for other URLs
// (git://, local) without an lfs.url, and for an endpoint that is not https (http only on
// loopback).
absl::StatusOr<std::string> LfsEndpoint(const std::string& url, const std::string& lfs_url);

struct LfsLogin {
  std::string name;  // the credential's, for messages
  std::string username;
  std::string password;
  std::string ca_pem;
  // "Name: value" headers sent instead of a username and password: what
  // git-lfs-authenticate gave over SSH (a token for the batch API).
  std::vector<std::string> headers;
  // A client certificate and its key, for a server that asks for one (mutual TLS).
  std::string client_cert_pem;
  std::string client_key_pem;
};

// An SSH source's LFS access, as git-lfs gets it: `ssh [user@]host git-lfs-authenticate
// PATH download` answers the LFS server (`href`, optional) and the headers to send it.
struct LfsSshAccess {
  std::string href;  // "" when the answer names none: the endpoint the URL implies
  std::vector<std::string> headers;
};

// The command for the repository at ssh:// URL `url` (its path without the leading "/",
// as git-lfs sends it). InvalidArgument for another URL, or a path with characters a
// remote shell would read (spaces, quotes, `$`...): name the server in lfs.url then.
absl::StatusOr<std::string> LfsAuthenticateCommand(const std::string& url);

// git-lfs-authenticate's answer: a JSON object with `header` (names and values, at most
// 16) and `href`. InvalidArgument for anything else, an href that is not https (http only
// on loopback), or a header a request could not carry.
absl::StatusOr<LfsSshAccess> ParseLfsAuthenticate(absl::string_view answer);

struct LfsOptions {
  std::string cache_dir;                       // objects, by id; created when missing
  int64_t max_object_bytes = 16 << 20;         // one object's size
  absl::Duration timeout = absl::Seconds(60);  // one request
  // The cache's size: past it, the objects used longest ago are deleted after a fetch.
  int64_t max_cache_bytes = int64_t{2} << 30;
};

// The objects of `pointers`, in order: from the cache, or fetched from `endpoint` in
// batches of 100, checked and kept. `login` may be null (no credential). NotFound naming
// the object the server does not have, PermissionDenied when it refuses the credential (or
// its absence), DataLoss when an object is not what its pointer says, ResourceExhausted
// for one over max_object_bytes, Unavailable when the server cannot be reached.
absl::StatusOr<std::vector<std::string>> FetchLfsObjects(const std::string& endpoint,
                                                         const LfsLogin* login,
                                                         const std::vector<LfsPointer>& pointers,
                                                         const LfsOptions& options);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_LFS_H_
