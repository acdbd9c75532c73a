#ifndef GITFLEET_CONTROLPLANE_SOURCE_GIT_REPOSITORY_H_
#define GITFLEET_CONTROLPLANE_SOURCE_GIT_REPOSITORY_H_

// The Git seam: a local cache of one remote repository.
//
//   GF_ASSIGN_OR_RETURN(auto repo, repositories.ForUrl("git://127.0.0.1/app"));
//   GF_RETURN_IF_ERROR(repo->Fetch());
//   GF_ASSIGN_OR_RETURN(CommitInfo head, repo->Resolve("main"));
//   GF_ASSIGN_OR_RETURN(auto files,
//                       repo->ReadTree(head.id, "apps/web", GitRepository::Unreadable::kRefuse));
//
// Implementations are thread-safe.

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controlplane/source/openssh.h"

namespace gitfleet {

struct CommitInfo {
  std::string id;  // 40 hex digits
  absl::Time time;
  std::string summary;
  // The branch the ref was resolved from ("main"; for an empty ref, the remote's default
  // branch as its last fetch named it); empty for a tag or a commit id.
  std::string branch;
};

struct RepoFile {
  std::string path;  // relative to the repository root
  std::string content;
};

class GitRepository {
 public:
  virtual ~GitRepository() = default;
  virtual const std::string& url() const = 0;
  // Whether reads show the submodules' files (GitRepositories::ForUrl).
  virtual bool reads_submodules() const { return false; }
  // Whether reads give the content of files kept in Git LFS (GitRepositories::ForUrl).
  virtual bool reads_lfs() const { return false; }
  // Brings branches and tags up to date with the remote.
  virtual absl::Status Fetch() = 0;
  // A branch, tag or full commit id; NotFound names the ref when nothing matches. In a
  // repository read with submodules (GitRepositories::ForUrl), the commit's submodules
  // (and theirs) that the cache lacks are fetched first, so that every read of the commit
  // finds them; a submodule that cannot be fetched fails the resolve, naming it.
  virtual absl::StatusOr<CommitInfo> Resolve(const std::string& ref) = 0;
  // A commit's signature (its gpgsig header) and the content it signs: the commit as Git
  // stores it without that header. NotFound when the commit is not signed.
  struct Signed {
    std::string signature;
    std::string data;
  };
  virtual absl::StatusOr<Signed> CommitSignature(const std::string& commit) {
    return absl::UnimplementedError("this repository cannot read commit signatures");
  }
  // The signature of annotated tag `tag` ("v1" or "refs/tags/v1"), when it points at
  // `commit`, and the tag's content it signs. NotFound when there is no such tag, it is a
  // lightweight one, it points elsewhere, or it is not signed.
  virtual absl::StatusOr<Signed> TagSignature(const std::string& tag, const std::string& commit) {
    return absl::UnimplementedError("this repository cannot read tag signatures");
  }
  // Where commit `asked` (a full id, or its first digits: at least 4) stands against
  // `commit` (a full id) in the cache's history: `commit` is it or descends from it, as
  // `git merge-base --is-ancestor` says, or it descends from `commit` (a later commit the
  // ref has not reached yet), or neither (another branch's, or one a force-push left).
  // NotFound when the cache has no such commit (not fetched yet), InvalidArgument when the
  // digits name several commits or are no id. A walk of the history between the two.
  struct Ancestry {
    std::string asked;     // its full id
    bool reached = false;  // `commit` is `asked` or a later commit
    bool ahead = false;    // `asked` is a later commit than `commit`
  };
  virtual absl::StatusOr<Ancestry> CompareCommits(const std::string& asked,
                                                  const std::string& commit) {
    return absl::UnimplementedError("this repository cannot compare commits");
  }
  // Id of the tree at `path` ("" is the root) in `commit`: equal ids, equal content.
  virtual absl::StatusOr<std::string> TreeId(const std::string& commit,
                                             const std::string& path) = 0;
  // The object id (tree or blob) at each of `paths` in `commit`, "" where nothing is:
  // equal ids, equal content. The render cache compares these. A path through symbolic
  // links is followed as ReadTree follows it, and the id of a folder with links in it
  // also covers what they lead to.
  virtual absl::StatusOr<std::vector<std::string>> EntryIds(
      const std::string& commit, const std::vector<std::string>& paths) = 0;
  // What ReadTree does with an entry it cannot give as a file of the commit: a symbolic
  // link that leads outside the repository, to nothing, or round a loop, a submodule
  // (unless the repository is read with submodules, when it is a folder of the commit's
  // files), and a file over GitLimits::max_blob_bytes (a video in a docs folder).
  enum class Unreadable {
    // InvalidArgument naming it: a bundle's own folder, whose every file is read (a
    // manifest left out would prune what it defines).
    kRefuse,
    // Not among the files: the whole repository, read for tools that open only the files
    // they name (kustomize, jsonnet), which then say which one is missing. A stray link
    // elsewhere in a repository does not break every bundle that reads it.
    kLeaveOut,
  };
  // Every file under `path` in `commit`, sorted by path, as a checkout would show them:
  // a symbolic link to a file or folder of the commit is followed (resolved from the
  // link's folder against the commit's tree, links on the way too, at most 40, never
  // above its root), and gives that file's content, or that folder's files, under the
  // link's own path. `path` may itself run through links.
  virtual absl::StatusOr<std::vector<RepoFile>> ReadTree(const std::string& commit,
                                                         const std::string& path,
                                                         Unreadable unreadable) = 0;
  // The files at `paths` in `commit` that are there, in the order asked, each under the
  // path asked (links followed as ReadTree follows them). A path where nothing or a folder
  // is, or whose links lead out of the commit, gives none; a file over the limits fails
  // the read, naming it. For the few files a render reads above its folder (.sourceignore).
  virtual absl::StatusOr<std::vector<RepoFile>> ReadFiles(
      const std::string& commit, const std::vector<std::string>& paths) = 0;
};

// Reads a folder of `repo` at `commit` (its files, by repository path; files past the
// limits fail the read): what a render takes from elsewhere in the repository
// (RenderInput::read_folder). Holds `repo`.
inline std::function<absl::StatusOr<std::vector<RepoFile>>(const std::string&)> FolderReader(
    std::shared_ptr<GitRepository> repo, std::string commit) {
  return [repo = std::move(repo), commit = std::move(commit)](const std::string& folder) {
    return repo->ReadTree(commit, folder, GitRepository::Unreadable::kRefuse);
  };
}

// Reads files of `repo` at `commit` (those there, by repository path; files past the limits
// fail the read): RenderInput::read_files. Holds `repo`.
inline std::function<absl::StatusOr<std::vector<RepoFile>>(const std::vector<std::string>&)>
FilesReader(std::shared_ptr<GitRepository> repo, std::string commit) {
  return [repo = std::move(repo), commit = std::move(commit)](
             const std::vector<std::string>& paths) { return repo->ReadFiles(commit, paths); };
}

// Which clone: a repository read with one credential, with or without its submodules.
struct RepoRef {
  std::string url;
  std::string credential;
  bool submodules = false;
  bool lfs = false;
  std::vector<std::string> scope;  // see GitRepositories::ForUrl
  bool operator<(const RepoRef& o) const {
    return std::tie(url, credential, submodules, lfs, scope) <
           std::tie(o.url, o.credential, o.submodules, o.lfs, o.scope);
  }
};

class GitRepositories {
 public:
  virtual ~GitRepositories() = default;
  // The same object for the same URL, credential and submodules, so one fetch serves every
  // source that uses them. `credential` names a folder of GitAccess::credentials_dir, or
  // is empty for none. Refuses URLs that carry credentials, and local ones unless allowed.
  // With `submodules`, Resolve fetches a commit's submodules into the same clone and reads
  // show them as folders (a clone of its own: a source without them reads the same
  // repository as before). With `lfs`, ReadTree and ReadFiles give the content of a file
  // kept in Git LFS in place of its pointer: fetched from the repository's LFS server
  // (lfs.h: its .lfsconfig's lfs.url, else found from the URL) with the same credential,
  // checked, and kept under the cache by id (a clone of its own too).
  // With `scope` (a team's source: Source.scope_repos), what the repository sends a read
  // elsewhere for (an LFS server its .lfsconfig names, a submodule) must be under one of
  // those prefixes (a clone of its own too).
  virtual absl::StatusOr<std::shared_ptr<GitRepository>> ForUrl(
      const std::string& url, const std::string& credential = "", bool submodules = false,
      bool lfs = false, const std::vector<std::string>& scope = {}) = 0;
  // Keeps the caches of `in_use` (as ForUrl takes them) and
  // deletes every other clone on disk: a repository object no one holds any more at once,
  // one still held (a fetch under way) on a later call, once no one does. Asked for again
  // before that, the cache is kept after all. The first call also deletes clones no
  // object was made for (left by sources removed before a restart). Returns how many
  // clones it deleted.
  virtual int Retain(const std::set<RepoRef>& in_use) { return 0; }
  // Whether a clone waits for its last holder to let go (Retain then deletes it).
  virtual bool RetainPending() { return false; }
};

// Bare clones under `cache_dir`, one per URL, fetched with libgit2.
// Bounds on what one Git server can make the control plane do.
struct GitLimits {
  // One fetch, connect to last byte; past it the fetch fails naming the server.
  absl::Duration fetch_timeout = absl::Seconds(60);
  // Bytes received by one fetch.
  int64_t max_fetch_bytes = int64_t{1} << 30;
  // Bytes the files read at one commit add up to, and one file's size.
  int64_t max_read_bytes = int64_t{256} << 20;
  int64_t max_blob_bytes = int64_t{16} << 20;
  // Submodules one commit may bring in, theirs included, and how deep they may nest.
  int max_submodules = 64;
  int max_submodule_depth = 4;
};

// Where credentials come from, and whether the control plane's own disk is a source.
struct GitAccess {
  std::string credentials_dir;  // see git_credentials.h; empty: no source may name one
  bool allow_local = false;     // file:// and path sources (--allow-local-sources)
  // --git-credentials: the credential a source naming none, or a submodule, gets by the
  // longest URL prefix it is under (git_credentials.h: ParseCredentialPrefixes).
  std::vector<std::pair<std::string, std::string>> credential_prefixes;
  // Which SSH client fetches over ssh:// (--ssh-client, --ssh; openssh.h). Its scratch
  // folder defaults to one in the cache's.
  OpenSshSettings ssh;
};

std::unique_ptr<GitRepositories> NewLibgit2Repositories(std::string cache_dir,
                                                        GitLimits limits = {},
                                                        GitAccess access = {});

// Ends every fetch in progress (and later ones) at once: for shutdown.
void CancelGitFetches();

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_GIT_REPOSITORY_H_
