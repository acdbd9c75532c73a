#ifndef GITFLEET_CONTROLPLANE_RENDER_REMOTE_BASES_H_
#define GITFLEET_CONTROLPLANE_RENDER_REMOTE_BASES_H_

// kustomize's remote bases: a kustomization's `resources`, `bases` or `components` entry
// that names a folder of another Git repository at a ref, as kustomize writes them:
//
//   https://github.com/org/repo//deploy/base?ref=v1.2.0
//   github.com/org/repo/deploy/base?ref=v1.2.0
//   git@github.com:org/repo.git/deploy/base?ref=main
//   ssh://git@git.example.com/org/repo.git//base?ref=0123abcd...
//
// Renders have no network: the control plane fetches the repository itself (with the Git
// clones, limits and --git-credentials its sources use), only from the URL prefixes it is
// told to trust (--kustomize-remote-bases, none by default), and hands kustomize a copy.
//
//   RemoteBaseFetcher bases(repos, {"https://github.com/org/"});
//   GF_ASSIGN_OR_RETURN(RemoteTree tree, bases.Fetch("https://github.com/org/repo.git", "v1"));
//
// Thread-safe. A repository is fetched again at most once per `refetch_after` (a ref's
// commit can move; a full commit id present is never fetched again).

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "controlplane/render/chart_fetcher.h"
#include "controlplane/render/fetch_scope.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

// A remote base, as kustomize reads one.
struct RemoteBase {
  std::string repo;  // the repository's URL, as a source would name it
  std::string path;  // the folder inside it ("" for its root)
  std::string ref;   // ?ref= (or ?version=); empty: the remote's default branch
};

// The remote base `reference` names (a kustomization's entry), or nullopt when it names no
// Git repository: a path in the repository, or a plain http(s) file. InvalidArgument for a
// remote base gitfleet cannot read (naming why).
absl::StatusOr<std::optional<RemoteBase>> ParseRemoteBase(absl::string_view reference);

// Whether `reference` looks remote at all (a URL, github.com/..., git@host:...): what the
// render must fetch or refuse, never read as a path.
bool LooksRemote(absl::string_view reference);

struct RemoteTree {
  std::string commit;
  std::vector<RepoFile> files;  // the whole repository, paths from its root
};

class RemoteBaseFetcher {
 public:
  // `allowed`: URL prefixes remote bases may be fetched from (a host alone meaning that
  // whole host), or "*" for any URL a source could name.
  RemoteBaseFetcher(GitRepositories* repos, std::vector<std::string> allowed,
                    absl::Duration refetch_after = absl::Minutes(5));
  // FailedPrecondition naming --kustomize-remote-bases when `repo` is not allowed; the
  // fetch's or read's error otherwise (naming the repository and ref).
  // With a `scope` (a team's bundle), the repository must be under it too.
  absl::StatusOr<RemoteTree> Fetch(const std::string& repo, const std::string& ref,
                                   const FetchScope& scope = {});
  // A plain file over http(s) (a resources entry such as a release's install.yaml), from
  // the same trusted prefixes: at most `max_bytes`, redirects only to http(s), read again
  // after refetch_after. Unavailable naming the URL when it cannot be read.
  absl::StatusOr<std::string> FetchFile(const std::string& url, size_t max_bytes = 16 << 20,
                                        const FetchScope& scope = {});
  bool Allowed(const std::string& repo) const;
  // The next Fetch of each repository whose normalized URL (NormalizeRepoUrl) is in `repos`
  // fetches it, however recently it was fetched: a push webhook named it.
  void FetchAgain(const std::set<std::string>& repos);
  // The next Fetch and FetchFile of anything fetch it, however recently it was fetched (an
  // operator's refresh: the remote files a render read are not recorded by repository).
  void FetchAllAgain();
  // The login a remote file's URL gets (basic auth, to that host only, and its CAs), as
  // --git-credentials gives a repository under a prefix its credential; nullopt: none, an
  // error: the credential cannot be read. Unset: every file is fetched without one.
  using LoginFor = std::function<absl::StatusOr<std::optional<ChartLogin>>(const std::string& url)>;
  void SetLogins(LoginFor login_for) { login_for_ = std::move(login_for); }

 private:
  absl::Status Refused(const std::string& url, const char* what) const;

  GitRepositories* const repos_;
  const std::vector<std::string> allowed_;
  LoginFor login_for_;  // set before use
  const absl::Duration refetch_after_;
  mutable Mutex mu_;
  std::map<std::string, absl::Time> fetched_ ABSL_GUARDED_BY(mu_);  // by URL
  struct File {
    absl::Time read;
    std::string content;
  };
  std::map<std::string, File> files_ ABSL_GUARDED_BY(mu_);  // by URL, at most 64
};

// Whether `reference` is a plain file over http(s) that kustomize would download: a URL
// with no "//" folder whose path ends .yaml, .yml or .json, or is GitLab's raw-file API
// (.../repository/files/PATH/raw); a query is the server's (?ref= of a raw-file API).
bool IsRemoteFile(absl::string_view reference);

// The name a remote file's copy takes in the kustomization's folder: the URL's last part
// when it is a plain YAML or JSON file name, else "resource.yaml" (an API's ".../raw").
std::string RemoteFileName(absl::string_view url);

// InvalidArgument naming the first of `prefixes` (--kustomize-remote-bases) that is neither
// "*" nor an https://, ssh://, git:// or http:// URL prefix.
absl::Status CheckRemoteBasePrefixes(const std::vector<std::string>& prefixes);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_REMOTE_BASES_H_
