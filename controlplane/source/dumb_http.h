#ifndef GITFLEET_CONTROLPLANE_SOURCE_DUMB_HTTP_H_
#define GITFLEET_CONTROLPLANE_SOURCE_DUMB_HTTP_H_

// Git's "dumb" HTTP protocol: a repository served as plain files (a static web server or
// bucket over a bare repository that `git update-server-info` keeps), which answers
// `info/refs` without the smart protocol's content type. libgit2 speaks only the smart
// protocol, so such a fetch is made by git's own client, as git fetches it, bounded as
// gitfleet's fetches are: in time, in what it writes (each file, and all of them), in memory, with
// the credential's basic auth or bearer token, CA and client certificate given to it outside its
// command line.
//
//   if (IsDumbHttpAnswer(libgit2_error)) {
//     GF_ASSIGN_OR_RETURN(std::string head, FetchOverDumbHttp({dir, url, specs, cred, ...}));
//   }

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "controlplane/source/git_credentials.h"

namespace gitfleet {

// Whether libgit2's error for a fetch from an http(s) URL says the server answered its
// first request without the smart protocol (a dumb server, or a web page).
bool IsDumbHttpAnswer(absl::string_view error);

struct DumbHttpFetch {
  std::string git_dir;                // the bare clone fetched into
  std::string url;                    // http(s), no credentials in it
  std::vector<std::string> refspecs;  // "+refs/heads/*:refs/remotes/origin/*", ...
  const GitCredential* credential = nullptr;
  absl::Duration timeout = absl::Seconds(60);
  // Each pack or object it writes, and what they add up to: looked at while git runs, this
  // often at most (less often when a look takes long: a repository of very many objects).
  int64_t max_bytes = int64_t{1} << 30;
  absl::Duration check_every = absl::Milliseconds(100);
};

// Fetches `fetch.refspecs` from `fetch.url` with git's client (pruning, no tags but those
// the refspecs name); returns the branch the remote's HEAD names ("main"), or "" when it
// names none. The objects it writes join the repository only when it succeeds: a failed
// fetch leaves nothing behind. FailedPrecondition when git is not installed; Unavailable,
// naming the URL and what git said, when the fetch fails; DeadlineExceeded past the timeout;
// ResourceExhausted past `max_bytes`.
absl::StatusOr<std::string> FetchOverDumbHttp(const DumbHttpFetch& fetch);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_DUMB_HTTP_H_
