#include <dirent.h>
#include <git2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "common/logging.h"
#include "common/manifest/hash.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/sync.h"
#include "controlplane/source/dumb_http.h"
#include "controlplane/source/git_credentials.h"
#include "controlplane/source/git_repository.h"
#include "controlplane/source/lfs.h"
#include "controlplane/source/openssh_transport.h"
#include "controlplane/source/repo_url.h"
#include "controlplane/source/ssh_command.h"
#include "controlplane/source/submodules.h"
#include "controlplane/source/timed_stream.h"
#include "controlplane/source/tls_stream.h"

namespace gitfleet {
namespace {

// libgit2's int error codes become Status here and nowhere else.
absl::Status GitError(int code, absl::string_view what) {
  const git_error* e = git_error_last();
  std::string message =
      absl::StrCat(what, ": ", e != nullptr && e->message ? e->message : "unknown error");
  if (code == GIT_ENOTFOUND) return absl::NotFoundError(message);
  if (code == GIT_EAUTH || code == GIT_ECERTIFICATE) {
    return absl::PermissionDeniedError(message);
  }
  return absl::UnavailableError(message);
}

template <typename T, void (*Free)(T*)>
struct GitPtr {
  T* ptr = nullptr;
  GitPtr() = default;
  GitPtr(const GitPtr&) = delete;
  GitPtr& operator=(const GitPtr&) = delete;
  ~GitPtr() {
    if (ptr != nullptr) Free(ptr);
  }
  T** out() { return &ptr; }
  T* get() const { return ptr; }
};

using Repo = GitPtr<git_repository, git_repository_free>;
using Remote = GitPtr<git_remote, git_remote_free>;
using Object = GitPtr<git_object, git_object_free>;
using Commit = GitPtr<git_commit, git_commit_free>;
using Tree = GitPtr<git_tree, git_tree_free>;
using TreeEntry = GitPtr<git_tree_entry, git_tree_entry_free>;
using Blob = GitPtr<git_blob, git_blob_free>;
using Odb = GitPtr<git_odb, git_odb_free>;
using Reference = GitPtr<git_reference, git_reference_free>;

bool IsHex(const std::string& text) {
  for (char c : text) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

bool IsCommitId(const std::string& ref) { return ref.size() == 40 && IsHex(ref); }

std::string OidString(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof(buf), oid);
  return buf;
}

// A commit's tree as a checkout would show it, symbolic links followed, but never out of
// the commit: a link's target is resolved part by part against the commit's root tree
// from the link's folder, a link met on the way is followed too (at most kMaxLinks in
// all, Linux's own bound), and ".." never climbs above the root (what securejoin does
// for a checkout on disk). Nothing is read outside the commit, whatever a link says.
class CommitTree {
 public:
  static constexpr int kMaxLinks = 40;
  // Folders reached through links inside folders reached through links.
  static constexpr size_t kMaxLinkedFolders = 8;

  // With `submodules`, a submodule's gitlink is read as the tree of its commit (which
  // Resolve fetched into the same clone), as a checkout with its submodules shows it.
  // `not_checked_out` holds the commit ids of gitlinks .gitmodules marks `update = none`:
  // an empty folder, as in a checkout.
  CommitTree(git_repository* repo, git_tree* root, bool submodules,
             const std::set<std::string>* not_checked_out = nullptr)
      : repo_(repo), root_(root), submodules_(submodules), not_checked_out_(not_checked_out) {}

  struct Entry {
    std::string path;  // where it really is ("" for the root)
    git_filemode_t mode = GIT_FILEMODE_TREE;
    git_oid id{};
  };

  // What `target` leads to, from `folder`, with every link on the way followed. NotFound
  // when nothing is there; InvalidArgument saying why for a way out of the commit.
  absl::StatusOr<Entry> Follow(absl::string_view folder, absl::string_view target) const {
    std::vector<std::string> done = absl::StrSplit(folder, '/', absl::SkipEmpty());
    std::deque<std::string> todo;
    auto prepend = [&todo](absl::string_view text) {
      std::vector<std::string> parts = absl::StrSplit(text, '/', absl::SkipEmpty());
      todo.insert(todo.begin(), parts.begin(), parts.end());
    };
    if (absl::StartsWith(target, "/")) {
      return absl::InvalidArgumentError("leads outside the repository (an absolute path)");
    }
    prepend(target);
    int links = 0;
    while (!todo.empty()) {
      std::string part = std::move(todo.front());
      todo.pop_front();
      if (part == ".") continue;
      if (part == "..") {
        if (done.empty()) {
          return absl::InvalidArgumentError("leads above the repository's root");
        }
        done.pop_back();
        continue;
      }
      done.push_back(std::move(part));
      const std::string path = absl::StrJoin(done, "/");
      absl::StatusOr<Entry> entry = Find(path);
      if (!entry.ok()) return entry.status();
      if (entry->mode != GIT_FILEMODE_LINK) continue;
      if (++links > kMaxLinks) {
        return absl::InvalidArgumentError(absl::StrCat("leads through more than ", kMaxLinks,
                                                       " symbolic links (a loop?), at ", path));
      }
      absl::StatusOr<std::string> text = LinkText(entry->id, path);
      if (!text.ok()) return text.status();
      if (absl::StartsWith(*text, "/")) {
        return absl::InvalidArgumentError(absl::StrCat("leads outside the repository (through ",
                                                       path, ", a link to ", Clip(*text), ")"));
      }
      done.pop_back();  // the link's folder is where its target starts from
      prepend(*text);
    }
    Entry found;
    found.path = absl::StrJoin(done, "/");
    if (found.path.empty()) {
      found.id = *git_tree_id(root_);
      return found;
    }
    absl::StatusOr<Entry> entry = Find(found.path);
    if (!entry.ok()) return entry.status();
    found.mode = entry->mode;
    found.id = entry->id;
    if (found.mode == GIT_FILEMODE_COMMIT) {
      if (!submodules_) {
        return absl::InvalidArgumentError(
            absl::StrCat("leads to ", found.path, ", ", kSubmoduleNotFetched));
      }
      absl::StatusOr<git_oid> tree = SubmoduleTree(found.id, found.path);
      if (!tree.ok()) return LeadsTo(found.path, tree.status());
      found.mode = GIT_FILEMODE_TREE;
      found.id = *tree;
    }
    return found;
  }

  // What a walk gives: each file under the path it is shown at; or, walking for ids only,
  // the id of everything reached through a link (a folder's own id covers the rest).
  struct Walk {
    GitRepository::Unreadable unreadable = GitRepository::Unreadable::kRefuse;
    bool read = true;  // false: ids only
    const GitLimits* limits = nullptr;
    std::vector<RepoFile> files;
    int64_t bytes = 0;
    std::string linked_ids;
    std::vector<std::string> folders;  // real folders being walked through links
    int submodules = 0;                // submodules walked into
  };

  // Walks `tree` (really at `real`), showing its entries under `shown`.
  absl::Status WalkFolder(const git_tree* tree, const std::string& real, const std::string& shown,
                          Walk* walk) const {
    const size_t count = git_tree_entrycount(tree);
    for (size_t i = 0; i < count; ++i) {
      const git_tree_entry* entry = git_tree_entry_byindex(tree, i);
      const std::string name = git_tree_entry_name(entry);
      const std::string real_path = real.empty() ? name : absl::StrCat(real, "/", name);
      const std::string shown_path = shown.empty() ? name : absl::StrCat(shown, "/", name);
      const git_filemode_t mode = git_tree_entry_filemode(entry);
      if (mode == GIT_FILEMODE_COMMIT) {
        if (!submodules_) {
          GF_RETURN_IF_ERROR(LeaveOut(shown_path, kSubmoduleNotFetched, walk));
          continue;
        }
        // Bounded apart from the bytes read: a walk for ids reads none, and gitlinks may
        // name commits the clone holds anyway (the repository's own older ones).
        if (++walk->submodules > kMaxSubmoduleWalks) {
          GF_RETURN_IF_ERROR(LeaveOut(
              shown_path,
              absl::StrCat("a submodule past the ", kMaxSubmoduleWalks, " one read holds"), walk));
          continue;
        }
        absl::StatusOr<git_oid> tree = SubmoduleTree(*git_tree_entry_id(entry), real_path);
        if (absl::IsNotFound(tree.status())) continue;  // not checked out: an empty folder
        if (!tree.ok()) {
          if (!absl::IsInvalidArgument(tree.status())) return tree.status();
          GF_RETURN_IF_ERROR(LeaveOut(shown_path, tree.status().message(), walk));
          continue;
        }
        Tree sub;
        int rc = git_tree_lookup(sub.out(), repo_, &*tree);
        if (rc != 0) return GitError(rc, absl::StrCat("cannot read tree ", real_path));
        GF_RETURN_IF_ERROR(WalkFolder(sub.get(), real_path, shown_path, walk));
        continue;
      }
      if (mode == GIT_FILEMODE_TREE) {
        Tree sub;
        int rc = git_tree_lookup(sub.out(), repo_, git_tree_entry_id(entry));
        if (rc != 0) return GitError(rc, absl::StrCat("cannot read tree ", real_path));
        GF_RETURN_IF_ERROR(WalkFolder(sub.get(), real_path, shown_path, walk));
        continue;
      }
      if (mode != GIT_FILEMODE_LINK) {
        GF_RETURN_IF_ERROR(AddFile(shown_path, *git_tree_entry_id(entry), walk));
        continue;
      }
      absl::StatusOr<std::string> text = LinkText(*git_tree_entry_id(entry), real_path);
      absl::StatusOr<Entry> target = text.ok() ? Follow(real, *text) : text.status();
      if (!target.ok()) {
        if (!absl::IsNotFound(target.status()) && !absl::IsInvalidArgument(target.status())) {
          return target.status();
        }
        GF_RETURN_IF_ERROR(
            LeaveOut(shown_path,
                     text.ok() ? absl::StrCat("a symbolic link to ", Clip(*text), " that ",
                                              target.status().message())
                               : absl::StrCat("a symbolic link ", target.status().message()),
                     walk));
        continue;
      }
      if (!walk->read) absl::StrAppend(&walk->linked_ids, git_oid_tostr_s(&target->id), ";");
      if (target->mode != GIT_FILEMODE_TREE) {
        GF_RETURN_IF_ERROR(AddFile(shown_path, target->id, walk));
        continue;
      }
      // A folder: its files under the link's path, unless it holds the link (a loop).
      auto holds = [&target](const std::string& folder) {
        return target->path.empty() || folder == target->path ||
               absl::StartsWith(folder, absl::StrCat(target->path, "/"));
      };
      if (holds(real) || std::any_of(walk->folders.begin(), walk->folders.end(), holds)) {
        GF_RETURN_IF_ERROR(
            LeaveOut(shown_path,
                     absl::StrCat("a symbolic link to the folder ",
                                  target->path.empty() ? "at the repository's root" : target->path,
                                  ", which holds it (a loop)"),
                     walk));
        continue;
      }
      if (walk->folders.size() >= kMaxLinkedFolders) {
        GF_RETURN_IF_ERROR(
            LeaveOut(shown_path,
                     absl::StrCat("a symbolic link to a folder inside ", kMaxLinkedFolders,
                                  " folders reached through symbolic links"),
                     walk));
        continue;
      }
      Tree sub;
      int rc = git_tree_lookup(sub.out(), repo_, &target->id);
      if (rc != 0) return GitError(rc, absl::StrCat("cannot read tree ", target->path));
      walk->folders.push_back(target->path);
      absl::Status walked = WalkFolder(sub.get(), target->path, shown_path, walk);
      walk->folders.pop_back();
      GF_RETURN_IF_ERROR(walked);
    }
    return absl::OkStatus();
  }

  // Adds the file at `id` to walk->files as `shown`, within walk->limits.
  absl::Status AddFile(const std::string& shown, const git_oid& id, Walk* walk) const {
    if (!walk->read) return absl::OkStatus();
    // Left out of a whole-repository read: its size from the object's header first, so a
    // file too big to take is not loaded. (A bundle's own read refuses it below.)
    Odb odb;
    size_t header_size = 0;
    git_object_t type;
    if (walk->unreadable == GitRepository::Unreadable::kLeaveOut &&
        git_repository_odb(odb.out(), repo_) == 0 &&
        git_odb_read_header(&header_size, &type, odb.get(), &id) == 0 &&
        static_cast<int64_t>(header_size) > walk->limits->max_blob_bytes) {
      return absl::OkStatus();  // no tool reads it unless named, and then says it is missing
    }
    Blob blob;
    int rc = git_blob_lookup(blob.out(), repo_, &id);
    if (rc != 0) return GitError(rc, absl::StrCat("cannot read ", shown));
    const int64_t size = static_cast<int64_t>(git_blob_rawsize(blob.get()));
    if (size > walk->limits->max_blob_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(shown, " is ", size, " bytes, over the limit of ",
                       walk->limits->max_blob_bytes, " for one file (--max-blob-bytes)"));
    }
    walk->bytes += size;
    if (walk->bytes > walk->limits->max_read_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("the files read add up to more than ",
                                                       walk->limits->max_read_bytes,
                                                       " bytes (--max-read-bytes), at ", shown));
    }
    walk->files.push_back(
        {shown, std::string(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                            static_cast<size_t>(size))});
    return absl::OkStatus();
  }

 private:
  static std::string Clip(absl::string_view text) {
    return text.size() <= 256 ? std::string(text) : absl::StrCat(text.substr(0, 256), "...");
  }

  static constexpr char kSubmoduleNotFetched[] =
      "a submodule, which is not fetched (a source with --submodules fetches it)";
  static constexpr int kMaxSubmoduleWalks = 256;

  static absl::Status LeadsTo(const std::string& path, const absl::Status& status) {
    if (!absl::IsInvalidArgument(status)) return status;
    return absl::InvalidArgumentError(absl::StrCat("leads to ", path, ", ", status.message()));
  }

  // The entry at `path` (mode and id; `path` is not filled in). With submodules, a path
  // runs on into a submodule's commit as into a folder.
  absl::StatusOr<Entry> Find(const std::string& path) const {
    auto not_found = [&path] {
      return absl::NotFoundError(absl::StrCat("leads to ", path, ", which is not in the commit"));
    };
    Entry found;
    if (!submodules_) {
      TreeEntry entry;
      int rc = git_tree_entry_bypath(entry.out(), root_, path.c_str());
      if (rc == GIT_ENOTFOUND) return not_found();
      if (rc != 0) return GitError(rc, absl::StrCat("cannot look up ", path));
      found.mode = git_tree_entry_filemode(entry.get());
      found.id = *git_tree_entry_id(entry.get());
      return found;
    }
    const std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
    Tree held;
    const git_tree* tree = root_;
    std::string done;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i > 0) {
        if (found.mode == GIT_FILEMODE_COMMIT) {
          absl::StatusOr<git_oid> sub = SubmoduleTree(found.id, done);
          if (!sub.ok()) return LeadsTo(done, sub.status());
          found.mode = GIT_FILEMODE_TREE;
          found.id = *sub;
        }
        if (found.mode != GIT_FILEMODE_TREE) return not_found();
        Tree next;
        int rc = git_tree_lookup(next.out(), repo_, &found.id);
        if (rc != 0) return GitError(rc, absl::StrCat("cannot read tree ", done));
        std::swap(held.ptr, next.ptr);
        tree = held.get();
      }
      const git_tree_entry* entry = git_tree_entry_byname(tree, parts[i].c_str());
      if (entry == nullptr) return not_found();
      found.mode = git_tree_entry_filemode(entry);
      found.id = *git_tree_entry_id(entry);
      done = done.empty() ? parts[i] : absl::StrCat(done, "/", parts[i]);
    }
    if (parts.empty()) found.id = *git_tree_id(root_);
    return found;
  }

  // The tree of a submodule's commit; InvalidArgument saying what it is when the clone
  // lacks it (Resolve fetches those .gitmodules names), NotFound for one not checked out.
  absl::StatusOr<git_oid> SubmoduleTree(const git_oid& commit_id, const std::string& path) const {
    Commit commit;
    int rc = git_commit_lookup(commit.out(), repo_, &commit_id);
    if (rc == GIT_ENOTFOUND && not_checked_out_ != nullptr &&
        not_checked_out_->count(OidString(&commit_id)) > 0) {
      return absl::NotFoundError(
          absl::StrCat("leads into ", path, ", a submodule .gitmodules marks update = none"));
    }
    if (rc == GIT_ENOTFOUND) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a submodule whose commit ", std::string(git_oid_tostr_s(&commit_id)).substr(0, 12),
          " was not fetched (.gitmodules does not name it)"));
    }
    if (rc != 0) return GitError(rc, absl::StrCat("cannot read the commit of submodule ", path));
    return *git_commit_tree_id(commit.get());
  }

  absl::StatusOr<std::string> LinkText(const git_oid& id, const std::string& path) const {
    Blob blob;
    int rc = git_blob_lookup(blob.out(), repo_, &id);
    if (rc != 0) return GitError(rc, absl::StrCat("cannot read ", path));
    const size_t size = static_cast<size_t>(git_blob_rawsize(blob.get()));
    if (size > 4096) {
      return absl::InvalidArgumentError(
          absl::StrCat("whose target is ", size, " bytes long (at ", path, ")"));
    }
    return std::string(static_cast<const char*>(git_blob_rawcontent(blob.get())), size);
  }

  static absl::Status LeaveOut(const std::string& shown, absl::string_view why, Walk* walk) {
    if (walk->unreadable == GitRepository::Unreadable::kRefuse) {
      return absl::InvalidArgumentError(absl::StrCat(shown, ": ", why));
    }
    if (!walk->read) absl::StrAppend(&walk->linked_ids, "!", shown, ";");
    return absl::OkStatus();
  }

  git_repository* const repo_;
  git_tree* const root_;
  const bool submodules_;
  const std::set<std::string>* const not_checked_out_;
};

// What `git log --oneline` shows: at least 7 hex digits of a commit id.
bool IsAbbreviatedCommitId(const std::string& ref) {
  return ref.size() >= 7 && ref.size() < 40 && IsHex(ref);
}

// Whether `url` is fetched over SSH: ssh://, or scp-like "user@host:path".
bool IsSshUrl(const std::string& url) {
  if (absl::StartsWith(url, "ssh://")) return true;
  return !absl::StrContains(url, "://") && !absl::StartsWith(url, "/") &&
         url.find(':') != std::string::npos;
}

// Whether libgit2's error is libssh2 failing its key exchange: no algorithm in common.
bool LibSsh2CannotAgree(const git_error* error) {
  return error != nullptr && error->message != nullptr &&
         absl::StrContains(error->message, "Unable to exchange encryption keys");
}

// The port of an ssh:// URL (22 when none is given).
int SshPort(const std::string& url) {
  absl::string_view rest(url);
  if (!absl::ConsumePrefix(&rest, "ssh://")) return 22;
  rest = rest.substr(0, rest.find('/'));
  size_t at = rest.rfind('@');
  if (at != absl::string_view::npos) rest.remove_prefix(at + 1);
  size_t close = rest.rfind(']');
  size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos || (close != absl::string_view::npos && colon < close)) {
    return 22;
  }
  int port = 22;
  return absl::SimpleAtoi(rest.substr(colon + 1), &port) ? port : 22;
}

// What the fetch callbacks need: the limits, and the credential (if any) read for this
// fetch. Callbacks set libgit2's error message themselves; it becomes the source error.
struct FetchContext {
  const GitLimits* limits;
  std::string url;
  int ssh_port = 22;
  const GitCredential* credential = nullptr;  // null: the source names none
  int secret_attempts = 0;
  OpenSshFetch openssh;  // when OpenSSH's client carries the fetch
};

int CallbackError(const std::string& message) {
  git_error_set_str(GIT_ERROR_CALLBACK, message.c_str());
  return -1;
}

int AcquireCredential(git_credential** out, const char* /*url*/, const char* username_from_url,
                      unsigned int allowed, void* payload) {
  auto* context = static_cast<FetchContext*>(payload);
  const GitCredential* credential = context->credential;
  if (credential == nullptr) {
    return CallbackError(
        "the server asks for credentials; give the source one with --credentials (a folder in "
        "the control plane's --credentials-dir), or its URL's prefix one with the control "
        "plane's --git-credentials");
  }
  std::string user = username_from_url != nullptr && *username_from_url != '\0'
                         ? username_from_url
                         : (credential->username.empty() ? "git" : credential->username);
  if ((allowed & GIT_CREDENTIAL_USERNAME) && !(allowed & GIT_CREDENTIAL_SSH_KEY) &&
      !(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT)) {
    return git_credential_username_new(out, user.c_str());
  }
  if (credential->has_bearer_token() && (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT)) {
    // The token went with the first request; being asked means it was refused.
    return CallbackError(absl::StrCat(
        "the server refused credential ", credential->name,
        "'s bearerToken (a token without access, or a server that takes a username and the "
        "token as the password: then write it as username and password)"));
  }
  // libgit2 asks again after each refusal: the second time means the server said no.
  if (++context->secret_attempts > 1) {
    return CallbackError(
        absl::StrCat("the server refused credential ", credential->name,
                     credential->has_ssh_key()
                         ? absl::StrCat(" (its SSH key is not authorized for this repository)",
                                        SshKeyHint(ReadSshKeyType(credential->ssh_key_path)))
                         : " (wrong username or password, or a token without access)"));
  }
  if ((allowed & GIT_CREDENTIAL_SSH_KEY) && credential->has_ssh_key()) {
    // A password beside the key is its passphrase, as in Flux's Secrets (libssh2 reads an
    // unencrypted key without it).
    return git_credential_ssh_key_new(
        out, user.c_str(), nullptr, credential->ssh_key_path.c_str(),
        credential->password.empty() ? nullptr : credential->password.c_str());
  }
  if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && credential->has_password()) {
    return git_credential_userpass_plaintext_new(
        out, credential->username.empty() ? "git" : credential->username.c_str(),
        credential->password.c_str());
  }
  return CallbackError(
      absl::StrCat("credential ", credential->name, " has no ",
                   (allowed & GIT_CREDENTIAL_SSH_KEY) ? "ssh-privatekey" : "username and password",
                   ", which this server asks for"));
}

int CheckServerCertificate(git_cert* cert, int valid, const char* host, void* payload) {
  auto* context = static_cast<FetchContext*>(payload);
  const GitCredential* credential = context->credential;
  if (cert->cert_type == GIT_CERT_HOSTKEY_LIBSSH2) {
    if (credential == nullptr || credential->known_hosts.empty()) {
      return CallbackError(
          absl::StrCat("cannot verify the SSH host key of ", host,
                       ": ssh:// sources need a credential with known_hosts (--credentials, or "
                       "the control plane's --git-credentials)"));
    }
    auto* key = reinterpret_cast<git_cert_hostkey*>(cert);
    if (!(key->type & GIT_CERT_SSH_RAW) || key->hostkey == nullptr) {
      return CallbackError(absl::StrCat("the SSH host key of ", host, " was not available"));
    }
    absl::Status known = CheckHostKey(credential->known_hosts, host, context->ssh_port,
                                      absl::string_view(key->hostkey, key->hostkey_len));
    return known.ok() ? 0 : CallbackError(std::string(known.message()));
  }
  if (cert->cert_type == GIT_CERT_X509) {
    // A bearer token rides on every request as a header, and libgit2 follows a redirect of
    // the first one anywhere: a server on another host is refused before anything is sent.
    if (credential != nullptr && credential->has_bearer_token() &&
        absl::AsciiStrToLower(host) != UrlHost(context->url)) {
      return CallbackError(absl::StrCat("the server sends the fetch on to ", host, "; credential ",
                                        credential->name, "'s bearerToken goes to ",
                                        UrlHost(context->url), " alone, so it is not followed"));
    }
    if (valid) return 0;
    if (credential == nullptr || credential->ca_pem.empty()) {
      return CallbackError(absl::StrCat(
          "the TLS certificate of ", host,
          " is not trusted; for a private CA, put it in the ca.crt of the credential it is "
          "fetched with (the source's --credentials, or --git-credentials for its URL)"));
    }
    auto* x509 = reinterpret_cast<git_cert_x509*>(cert);
    absl::Status trusted =
        CheckCertificate(credential->ca_pem,
                         absl::string_view(static_cast<const char*>(x509->data), x509->len), host);
    return trusted.ok() ? 0 : CallbackError(std::string(trusted.message()));
  }
  return valid ? 0 : CallbackError(absl::StrCat("the server ", host, " is not trusted"));
}

class Libgit2Repository : public GitRepository {
 public:
  Libgit2Repository(std::string url, std::string credential, bool submodules, bool lfs,
                    std::vector<std::string> scope, std::string dir, std::string lfs_dir,
                    const GitLimits& limits, const GitAccess& access)
      : url_(std::move(url)),
        credential_(credential.empty() ? CredentialForUrl(access.credential_prefixes, url_)
                                       : std::move(credential)),
        submodules_(submodules),
        lfs_(lfs),
        scope_(std::move(scope)),
        dir_(std::move(dir)),
        lfs_dir_(std::move(lfs_dir)),
        limits_(limits),
        access_(access) {}

  const std::string& url() const override { return url_; }
  bool reads_submodules() const override { return submodules_; }
  bool reads_lfs() const override { return lfs_; }

  absl::Status Fetch() override {
    // Checked at every fetch: a stored source from before --allow-local-sources was
    // dropped is refused here, with the reason, instead of being dropped.
    if (absl::Status s = CheckSourceUrl(url_, access_.allow_local); !s.ok()) return s;
    absl::StatusOr<std::optional<GitCredential>> credential = LoadCredential();
    if (!credential.ok()) return credential.status();
    MutexLock lock(&mu_);
    if (absl::Status s = OpenLocked(); !s.ok()) return s;
    // Looked up once: libgit2 1.5 leaks pcre2 match data (about 20 KiB) on every
    // git_remote_lookup, which would grow a long-running control plane on each poll.
    if (remote_.get() == nullptr) {
      int rc = git_remote_lookup(remote_.out(), repo_.get(), "origin");
      if (rc != 0) return GitError(rc, absl::StrCat("cannot find remote for ", url_));
    }
    dumb_head_.reset();
    GF_RETURN_IF_ERROR(RunFetchLocked(
        remote_.get(), url_, {"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"},
        credential->has_value() ? &**credential : nullptr));
    // The remote's default branch (its HEAD), kept as refs/remotes/origin/HEAD as git
    // clone does: a source without a ref follows it, whether it is main, master or other.
    std::string default_branch;    // refs/heads/NAME
    if (dumb_head_.has_value()) {  // git fetched it, and said its HEAD
      if (!dumb_head_->empty()) default_branch = "refs/heads/" + *dumb_head_;
    } else {
      git_buf head = {nullptr, 0, 0};
      if (git_remote_default_branch(&head, remote_.get()) == 0 && head.ptr != nullptr) {
        default_branch = head.ptr;
      }
      git_buf_dispose(&head);
    }
    if (absl::string_view branch(default_branch); absl::ConsumePrefix(&branch, "refs/heads/")) {
      git_reference* symbolic = nullptr;
      if (git_reference_symbolic_create(&symbolic, repo_.get(), "refs/remotes/origin/HEAD",
                                        absl::StrCat("refs/remotes/origin/", branch).c_str(),
                                        /*force=*/1, "gitfleet: remote HEAD") == 0) {
        git_reference_free(symbolic);
      }
    }
    return absl::OkStatus();
  }

  // The source's credential, read again every time (a rotated Secret needs no restart);
  // none when the source names none and --git-credentials gives its URL none.
  absl::StatusOr<std::optional<GitCredential>> LoadCredential() const {
    return LoadNamed(credential_);
  }
  absl::StatusOr<std::optional<GitCredential>> LoadNamed(const std::string& name) const {
    if (name.empty()) return std::optional<GitCredential>();
    absl::StatusOr<GitCredential> loaded = LoadGitCredential(access_.credentials_dir, name);
    if (!loaded.ok()) return loaded.status();
    GF_RETURN_IF_ERROR(UseGitHubAppToken(&*loaded, limits_.fetch_timeout));
    return std::optional<GitCredential>(*std::move(loaded));
  }

  // The credential a submodule at `url` is fetched with: the one --git-credentials gives
  // its URL; else, on the source's own host, the source's; else none. The source's never
  // goes to another host.
  std::string SubmoduleCredential(const std::string& url) const {
    std::string name = CredentialForUrl(access_.credential_prefixes, url);
    if (name.empty() && UrlHost(url) == UrlHost(url_)) name = credential_;
    return name;
  }

  // One fetch from `url` into the clone. Every byte of it is bounded: in time (the socket
  // stream's deadline, timed_stream.h) and in size.
  absl::Status RunFetchLocked(git_remote* remote, const std::string& url,
                              const std::vector<std::string>& specs,
                              const GitCredential* credential) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time until = RealClock().Now() + limits_.fetch_timeout;
    FetchDeadline deadline(until);
    // The credential's client certificate, for an https server that asks for one.
    TlsClientIdentity identity;
    if (credential != nullptr) identity = {credential->tls_cert_pem, credential->tls_key_pem};
    FetchTlsIdentity presenting(&identity);
    FetchContext progress{&limits_, url, SshPort(url), credential};
    git_fetch_options options = GIT_FETCH_OPTIONS_INIT;
    options.callbacks.payload = &progress;
    options.callbacks.credentials = AcquireCredential;
    options.callbacks.certificate_check = CheckServerCertificate;
    const bool ssh = credential != nullptr && credential->has_ssh_key() && IsSshUrl(url);
    auto use_openssh = [&] {
      // As git, through OpenSSH's client, which checks the host key against the
      // credential's known_hosts.
      progress.openssh = {access_.ssh, credential};
      options.callbacks.transport = [](git_transport** out, git_remote* owner, void* payload) {
        return OpenSshGitTransport(out, owner, &static_cast<FetchContext*>(payload)->openssh);
      };
    };
    // A key libssh2 cannot sign with (RSA), or --ssh-client=openssh.
    if (ssh && UsesOpenSsh(access_.ssh, credential->ssh_key_path, credential->known_hosts,
                           credential->ssh_certificate_path))
      use_openssh();
    options.callbacks.transfer_progress = [](const git_indexer_progress* stats, void* payload) {
      auto* p = static_cast<FetchContext*>(payload);
      if (static_cast<int64_t>(stats->received_bytes) > p->limits->max_fetch_bytes) {
        git_error_set_str(GIT_ERROR_NET,
                          absl::StrCat("the fetch received more than ", p->limits->max_fetch_bytes,
                                       " bytes (--max-fetch-bytes)")
                              .c_str());
        return -1;
      }
      return 0;
    };
    options.prune = GIT_FETCH_PRUNE;
    options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    // A proxy as Git and curl find one (http.proxy, HTTPS_PROXY and HTTP_PROXY, NO_PROXY),
    // as the control plane's other fetches (charts, remote files, LFS) take it through curl.
    options.proxy_opts.type = GIT_PROXY_AUTO;
    std::string authorization;
    char* header = nullptr;
    if (credential != nullptr && credential->has_bearer_token()) {
      // Over TLS, where the certificate check keeps it on the URL's host; plain http only on
      // this machine (a test's server).
      if (!absl::StartsWith(url, "https://") &&
          !(absl::StartsWith(url, "http://") && IsLoopbackHost(UrlAuthority(url)))) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot fetch ", RedactUrl(url), ": credential ", credential->name,
                         " holds a bearerToken, which is sent over https only"));
      }
      authorization = "Authorization: Bearer " + credential->bearer_token;
      header = authorization.data();
      options.custom_headers = {&header, 1};
    }
    std::vector<char*> pointers;
    for (const std::string& spec : specs) pointers.push_back(const_cast<char*>(spec.c_str()));
    git_strarray refspecs = {pointers.data(), pointers.size()};
    int rc = git_remote_fetch(remote, &refspecs, &options, "gitfleet fetch");
    if (rc != 0 && ssh && progress.openssh.credential == nullptr &&
        access_.ssh.client == SshClient::kAuto && LibSsh2CannotAgree(git_error_last()) &&
        FindSshProgram(access_.ssh).ok()) {
      // A server libssh2 1.10 shares no algorithm with (an OpenSSH 8.8+ server whose only
      // host key is RSA signs with SHA-2 alone): OpenSSH's client can.
      GF_LOG(INFO) << "libssh2 shares no key exchange or host key algorithm with " << RedactUrl(url)
                   << "; fetching with OpenSSH's client";
      progress.secret_attempts = 0;
      use_openssh();
      rc = git_remote_fetch(remote, &refspecs, &options, "gitfleet fetch");
    }
    if (rc != 0 && (absl::StartsWith(url, "https://") || absl::StartsWith(url, "http://")) &&
        git_error_last() != nullptr && git_error_last()->message != nullptr &&
        IsDumbHttpAnswer(git_error_last()->message)) {
      // A server of plain files (Git's dumb HTTP protocol), which libgit2 does not speak:
      // git's own client fetches from it, bounded as this fetch is.
      if (credential != nullptr && credential->has_ssh_key()) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot fetch ", RedactUrl(url), ": credential ", credential->name,
                         " holds an SSH key, and the URL is http(s)"));
      }
      GF_LOG(INFO) << RedactUrl(url) << " speaks Git's dumb HTTP protocol; fetching with git";
      absl::StatusOr<std::string> head = FetchOverDumbHttp(
          {dir_, url, specs, credential, std::max(absl::Seconds(1), until - RealClock().Now()),
           limits_.max_fetch_bytes});
      if (!head.ok()) return head.status();
      dumb_head_ = *std::move(head);
      return absl::OkStatus();
    }
    if (rc != 0) {
      absl::Status error = GitError(rc, absl::StrCat("cannot fetch ", RedactUrl(url)));
      if (credential != nullptr && credential->has_ssh_key() &&
          absl::StrContains(error.message(), "Unable to extract public key from private key")) {
        // libssh2's words for an encrypted key without its passphrase, or a wrong one.
        return absl::Status(
            error.code(),
            absl::StrCat(error.message(), " (credential ", credential->name, "'s ssh-privatekey",
                         credential->password.empty()
                             ? ": an encrypted key needs its passphrase in the credential's "
                               "password file"
                             : ": is the password file its passphrase?",
                         ")"));
      }
      return error;
    }
    return absl::OkStatus();
  }

  bool HasCommitLocked(const git_oid& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Commit commit;
    return git_commit_lookup(commit.out(), repo_.get(), &id) == 0;
  }

  // Fetches what the clone lacks of the submodules `commit_id` names in its .gitmodules,
  // and of theirs, level by level, into refs of their own (refs/gitfleet/submodules/...);
  // a commit whose submodules were all there once is not looked at again.
  absl::Status FetchSubmodulesLocked(const std::string& commit_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (complete_.count(commit_id) > 0) return absl::OkStatus();
    // Bounded; each is told again at its next resolve.
    if (complete_.size() >= 1024 || not_checked_out_.size() >= 10000) {
      complete_.clear();
      not_checked_out_.clear();
    }
    struct Todo {
      git_oid commit;
      std::string url;     // of the repository whose commit it is
      std::string prefix;  // where its tree shows in the source's commit
      int depth;
    };
    std::deque<Todo> todo;
    todo.push_back({git_oid{}, url_, "", 0});
    if (git_oid_fromstr(&todo.back().commit, commit_id.c_str()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("\"", commit_id, "\" is not a commit id"));
    }
    std::map<std::string, std::optional<GitCredential>> credentials;  // read once, by name
    int count = 0;
    while (!todo.empty()) {
      Todo at = std::move(todo.front());
      todo.pop_front();
      Commit commit;
      int rc = git_commit_lookup(commit.out(), repo_.get(), &at.commit);
      if (rc != 0) return GitError(rc, absl::StrCat("cannot read commit of ", at.prefix));
      Tree root;
      rc = git_commit_tree(root.out(), commit.get());
      if (rc != 0) return GitError(rc, "cannot read commit tree");
      const std::string where =
          at.prefix.empty() ? ".gitmodules" : absl::StrCat(at.prefix, "/.gitmodules");
      TreeEntry file;
      rc = git_tree_entry_bypath(file.out(), root.get(), ".gitmodules");
      if (rc == GIT_ENOTFOUND || (rc == 0 && git_tree_entry_type(file.get()) != GIT_OBJECT_BLOB)) {
        continue;  // no submodules (a gitlink without it is refused where it is read)
      }
      if (rc != 0) return GitError(rc, absl::StrCat("cannot look up ", where));
      Blob blob;
      rc = git_blob_lookup(blob.out(), repo_.get(), git_tree_entry_id(file.get()));
      if (rc != 0) return GitError(rc, absl::StrCat("cannot read ", where));
      absl::StatusOr<std::vector<Submodule>> submodules = ParseGitmodules(
          absl::string_view(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                            static_cast<size_t>(git_blob_rawsize(blob.get()))));
      if (!submodules.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " at ", commit_id.substr(0, 12), ": ",
                         absl::StripPrefix(submodules.status().message(), ".gitmodules ")));
      }
      for (const Submodule& submodule : *submodules) {
        TreeEntry link;
        rc = git_tree_entry_bypath(link.out(), root.get(), submodule.path.c_str());
        if (rc == GIT_ENOTFOUND ||
            (rc == 0 && git_tree_entry_filemode(link.get()) != GIT_FILEMODE_COMMIT)) {
          continue;  // a section its commit has no gitlink for: Git skips it too
        }
        if (rc != 0) return GitError(rc, absl::StrCat("cannot look up ", submodule.path));
        const std::string shown =
            at.prefix.empty() ? submodule.path : absl::StrCat(at.prefix, "/", submodule.path);
        if (submodule.update == "none") {
          // Not checked out by `git submodule update --init` either: an empty folder.
          not_checked_out_.insert(OidString(git_tree_entry_id(link.get())));
          continue;
        }
        if (++count > limits_.max_submodules) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "commit ", commit_id.substr(0, 12), " names more than ", limits_.max_submodules,
              " submodules, theirs included (at ", shown, ")"));
        }
        if (at.depth >= limits_.max_submodule_depth) {
          return absl::InvalidArgumentError(absl::StrCat(
              "submodule ", shown, " is nested more than ", limits_.max_submodule_depth, " deep"));
        }
        absl::StatusOr<std::string> url = SubmoduleUrl(at.url, submodule.url);
        if (!url.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("submodule ", shown, " (", where, "): ", url.status().message()));
        }
        GF_RETURN_IF_ERROR(CheckSubmoduleUrl(shown, *url));
        const git_oid id = *git_tree_entry_id(link.get());
        if (!HasCommitLocked(id)) {
          const std::string name = SubmoduleCredential(*url);
          auto it = credentials.find(name);
          if (it == credentials.end()) {
            absl::StatusOr<std::optional<GitCredential>> loaded = LoadNamed(name);
            if (!loaded.ok()) {
              return absl::Status(loaded.status().code(), absl::StrCat("submodule ", shown, ": ",
                                                                       loaded.status().message()));
            }
            it = credentials.emplace(name, *std::move(loaded)).first;
          }
          GF_RETURN_IF_ERROR(FetchSubmoduleLocked(shown, *url, id,
                                                  it->second.has_value() ? &*it->second : nullptr));
        }
        todo.push_back({id, *url, shown, at.depth + 1});
      }
    }
    complete_.insert(commit_id);
    return absl::OkStatus();
  }

  // Where a submodule may be fetched from: a URL a source could name. (Which credential
  // it gets, if any, is SubmoduleCredential's: never the source's on another host.)
  absl::Status CheckSubmoduleUrl(const std::string& shown, const std::string& url) const {
    if (absl::Status s = CheckSourceUrl(url, access_.allow_local); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("submodule ", shown, ": ",
                                                 absl::StripPrefix(s.message(), "source ")));
    }
    // A team's source: its submodules come from its repositories too, whether or not
    // their commits are here already.
    if (!scope_.empty() && !UrlPlainlyUnder(url, scope_)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "submodule ", shown, " is at ", RedactUrl(url).substr(0, 256),
          ", outside the repositories of its source's scope (", absl::StrJoin(scope_, ","), ")"));
    }
    return absl::OkStatus();
  }

  absl::Status FetchSubmoduleLocked(const std::string& shown, const std::string& url,
                                    const git_oid& id, const GitCredential* credential)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Remote remote;
    int rc = git_remote_create_anonymous(remote.out(), repo_.get(), url.c_str());
    if (rc != 0) {
      return GitError(rc, absl::StrCat("submodule ", shown, ": invalid URL ", RedactUrl(url)));
    }
    const std::string refs =
        absl::StrCat("refs/gitfleet/submodules/", Sha256Hex(url).substr(0, 16));
    absl::Status fetched = RunFetchLocked(remote.get(), url,
                                          {absl::StrCat("+refs/heads/*:", refs, "/heads/*"),
                                           absl::StrCat("+refs/tags/*:", refs, "/tags/*")},
                                          credential);
    if (!fetched.ok()) {
      return absl::Status(fetched.code(),
                          absl::StrCat("submodule ", shown, ": ", fetched.message()));
    }
    if (HasCommitLocked(id)) return absl::OkStatus();
    // On no branch or tag: asked for by id, as `git submodule update` does (servers that
    // allow it, as GitHub and GitLab do).
    const std::string hex = OidString(&id);
    absl::Status by_id = RunFetchLocked(
        remote.get(), url, {absl::StrCat("+", hex, ":", refs, "/commits/", hex)}, credential);
    if (HasCommitLocked(id)) return absl::OkStatus();
    return absl::NotFoundError(absl::StrCat(
        "submodule ", shown, ": commit ", hex.substr(0, 12), " is on no branch or tag of ",
        RedactUrl(url), by_id.ok() ? "" : " and the server did not give it by its id"));
  }

  absl::StatusOr<Signed> CommitSignature(const std::string& commit) override {
    git_oid oid;
    if (!IsCommitId(commit) || git_oid_fromstr(&oid, commit.c_str()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("not a commit id: ", commit.substr(0, 64)));
    }
    MutexLock lock(&mu_);
    if (absl::Status s = OpenLocked(); !s.ok()) return s;
    git_buf signature = {nullptr, 0, 0};
    git_buf data = {nullptr, 0, 0};
    const int rc = git_commit_extract_signature(&signature, &data, repo_.get(), &oid, nullptr);
    Signed out;
    if (rc == 0) {
      out.signature.assign(signature.ptr, signature.size);
      out.data.assign(data.ptr, data.size);
    }
    git_buf_dispose(&signature);
    git_buf_dispose(&data);
    if (rc == GIT_ENOTFOUND) {
      return absl::NotFoundError(absl::StrCat("commit ", commit.substr(0, 12), " is not signed"));
    }
    if (rc != 0) return GitError(rc, absl::StrCat("cannot read commit ", commit.substr(0, 12)));
    return out;
  }

  absl::StatusOr<Ancestry> CompareCommits(const std::string& asked,
                                          const std::string& commit) override {
    git_oid against;
    if (!IsCommitId(commit) || git_oid_fromstr(&against, commit.c_str()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("not a commit id: ", commit.substr(0, 64)));
    }
    if (asked.size() < 4 || asked.size() > 40 || !IsHex(asked)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "commit ", asked.substr(0, 64), ": want a commit id, or its first digits (at least 4)"));
    }
    const std::string digits = absl::AsciiStrToLower(asked);
    git_oid prefix;
    if (git_oid_fromstrn(&prefix, digits.data(), digits.size()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("not a commit id: ", asked));
    }
    // A handle of its own: a fetch holds mu_ for as long as its server takes (up to the
    // fetch timeout), and a caller asking this (an API call) must not wait for that. Objects
    // a fetch adds meanwhile are found once written (libgit2 looks at the packs again on a
    // miss).
    MutexLock lock(&compare_mu_);
    if (compare_repo_.get() == nullptr &&
        git_repository_open_bare(compare_repo_.out(), dir_.c_str()) != 0) {
      return absl::NotFoundError(
          absl::StrCat("no commit ", digits, " in ", url_, " (nothing fetched yet)"));
    }
    git_repository* repo = compare_repo_.get();
    Commit found;
    int rc = git_commit_lookup_prefix(found.out(), repo, &prefix, digits.size());
    if (rc == GIT_EAMBIGUOUS) {
      return absl::InvalidArgumentError(
          absl::StrCat("commit id ", digits, " is ambiguous in ", url_, ": give more of it"));
    }
    if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC) {
      return absl::NotFoundError(
          absl::StrCat("no commit ", digits, " in ", url_, " (not fetched yet?)"));
    }
    if (rc != 0) return GitError(rc, absl::StrCat("cannot look up commit ", digits));
    Ancestry out;
    const git_oid* id = git_commit_id(found.get());
    out.asked = OidString(id);
    if (git_oid_equal(id, &against)) {
      out.reached = true;
      return out;
    }
    rc = git_graph_descendant_of(repo, &against, id);
    if (rc < 0) {
      return GitError(rc, absl::StrCat("cannot compare ", out.asked.substr(0, 12), " with ",
                                       commit.substr(0, 12)));
    }
    out.reached = rc == 1;
    if (!out.reached) {
      rc = git_graph_descendant_of(repo, id, &against);
      if (rc < 0) {
        return GitError(rc, absl::StrCat("cannot compare ", out.asked.substr(0, 12), " with ",
                                         commit.substr(0, 12)));
      }
      out.ahead = rc == 1;
    }
    return out;
  }

  absl::StatusOr<Signed> TagSignature(const std::string& tag, const std::string& commit) override {
    const std::string name = absl::StartsWith(tag, "refs/tags/") ? tag : "refs/tags/" + tag;
    MutexLock lock(&mu_);
    if (absl::Status s = OpenLocked(); !s.ok()) return s;
    Reference reference;
    if (git_reference_lookup(reference.out(), repo_.get(), name.c_str()) != 0 ||
        git_reference_target(reference.get()) == nullptr) {
      return absl::NotFoundError(absl::StrCat("no tag ", tag.substr(0, 128)));
    }
    git_odb* odb = nullptr;
    if (git_repository_odb(&odb, repo_.get()) != 0) {
      return absl::InternalError("cannot open the object database");
    }
    // Its size and type first: a tag is a few lines and a signature, and one pushed with
    // a huge message is not read whole for each verification.
    size_t size = 0;
    git_object_t type = GIT_OBJECT_INVALID;
    int rc = git_odb_read_header(&size, &type, odb, git_reference_target(reference.get()));
    if (rc == 0 && type == GIT_OBJECT_TAG && size > (1 << 20)) {
      git_odb_free(odb);
      return absl::InvalidArgumentError(absl::StrCat("tag ", tag.substr(0, 128), " is over 1 MiB"));
    }
    git_odb_object* object = nullptr;
    if (rc == 0 && type == GIT_OBJECT_TAG) {
      rc = git_odb_read(&object, odb, git_reference_target(reference.get()));
    }
    git_odb_free(odb);
    if (rc != 0) return GitError(rc, absl::StrCat("cannot read tag ", tag.substr(0, 128)));
    if (object == nullptr) {  // a lightweight tag: the reference names the commit itself
      return absl::NotFoundError(absl::StrCat(
          "tag ", tag.substr(0, 128), " is not an annotated tag of commit ", commit.substr(0, 12)));
    }
    const bool annotated = git_odb_object_type(object) == GIT_OBJECT_TAG;
    const std::string raw(static_cast<const char*>(git_odb_object_data(object)),
                          git_odb_object_size(object));
    git_odb_object_free(object);
    // A tag names its target first ("object ID"); a signature is appended to its message.
    if (!annotated || !absl::StartsWith(raw, absl::StrCat("object ", commit, "\n"))) {
      return absl::NotFoundError(absl::StrCat(
          "tag ", tag.substr(0, 128), " is not an annotated tag of commit ", commit.substr(0, 12)));
    }
    for (const char* begin : {"-----BEGIN PGP SIGNATURE-----", "-----BEGIN SSH SIGNATURE-----",
                              "-----BEGIN SIGNED MESSAGE-----"}) {
      const size_t at = raw.find(absl::StrCat("\n", begin));
      if (at != std::string::npos) return Signed{raw.substr(at + 1), raw.substr(0, at + 1)};
    }
    return absl::NotFoundError(absl::StrCat("tag ", tag.substr(0, 128), " is not signed"));
  }

  absl::StatusOr<CommitInfo> Resolve(const std::string& ref) override {
    MutexLock lock(&mu_);
    if (absl::Status s = OpenLocked(); !s.ok()) return s;
    std::vector<std::string> candidates;
    absl::string_view name = ref;
    if (IsCommitId(ref)) {
      candidates.push_back(ref);
    } else if (absl::ConsumePrefix(&name, "refs/heads/")) {
      // A full ref name, as Flux's and Argo CD's users may write it.
      candidates = {absl::StrCat("refs/remotes/origin/", name)};
    } else if (absl::StartsWith(ref, "refs/tags/")) {
      candidates = {ref};
    } else if (ref.empty() || ref == "HEAD") {  // no branch may be named HEAD
      // The remote's default branch; before a fetch told us, the usual names.
      candidates = {"refs/remotes/origin/HEAD", "refs/remotes/origin/main",
                    "refs/remotes/origin/master"};
    } else {
      candidates = {absl::StrCat("refs/remotes/origin/", ref), absl::StrCat("refs/tags/", ref)};
      // A branch or tag of that name comes first.
      if (IsAbbreviatedCommitId(ref)) candidates.push_back(ref);
    }
    for (const std::string& candidate : candidates) {
      Object object;
      int rc = git_revparse_single(object.out(), repo_.get(),
                                   absl::StrCat(candidate, "^{commit}").c_str());
      if (rc == GIT_EAMBIGUOUS && candidate == ref) {
        return absl::InvalidArgumentError(
            absl::StrCat("commit id ", ref, " is ambiguous in ", url_, ": give more of it"));
      }
      if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC || rc == GIT_EAMBIGUOUS) {
        continue;
      }
      if (rc != 0) return GitError(rc, absl::StrCat("cannot resolve ", ref));
      auto* commit = reinterpret_cast<git_commit*>(object.get());
      CommitInfo info;
      info.id = OidString(git_commit_id(commit));
      info.time = absl::FromUnixSeconds(git_commit_time(commit));
      const char* summary = git_commit_summary(commit);
      info.summary = summary ? summary : "";
      info.branch = BranchOfLocked(candidate);
      if (submodules_) GF_RETURN_IF_ERROR(FetchSubmodulesLocked(info.id));
      return info;
    }
    return absl::NotFoundError(absl::StrCat(
        ref.empty() ? std::string("the default branch") : absl::StrCat("ref \"", ref, "\""),
        " not found in ", url_, " (branches: ", BranchesLocked(), ")"));
  }

  // The branch a resolved candidate stands for: "main" for refs/remotes/origin/main, the
  // branch refs/remotes/origin/HEAD points at, "" for a tag or a commit id.
  std::string BranchOfLocked(const std::string& candidate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::string_view branch = candidate;
    if (!absl::ConsumePrefix(&branch, "refs/remotes/origin/")) return "";
    if (branch != "HEAD") return std::string(branch);
    Reference head;
    if (git_reference_lookup(head.out(), repo_.get(), candidate.c_str()) != 0 ||
        git_reference_type(head.get()) != GIT_REFERENCE_SYMBOLIC) {
      return "";
    }
    absl::string_view target = git_reference_symbolic_target(head.get());
    return absl::ConsumePrefix(&target, "refs/remotes/origin/") ? std::string(target) : "";
  }

  absl::StatusOr<std::string> TreeId(const std::string& commit, const std::string& path) override {
    MutexLock lock(&mu_);
    Tree tree;
    if (absl::Status s = LookupTreeLocked(commit, path, &tree); !s.ok()) return s;
    return OidString(git_tree_id(tree.get()));
  }

  absl::StatusOr<std::vector<std::string>> EntryIds(
      const std::string& commit, const std::vector<std::string>& paths) override {
    MutexLock lock(&mu_);
    Tree root;
    if (absl::Status s = LookupTreeLocked(commit, "", &root); !s.ok()) return s;
    const CommitTree tree(repo_.get(), root.get(), submodules_, &not_checked_out_);
    std::vector<std::string> ids;
    for (const std::string& path : paths) {
      absl::StatusOr<CommitTree::Entry> entry = tree.Follow("", path);
      if (absl::IsNotFound(entry.status()) || absl::IsInvalidArgument(entry.status())) {
        ids.emplace_back();  // nothing there a read could give
        continue;
      }
      if (!entry.ok()) return entry.status();
      std::string id = OidString(&entry->id);
      if (entry->mode == GIT_FILEMODE_TREE) {
        // A folder's id covers its files and its links' text, not what they lead to.
        Tree folder;
        int rc = git_tree_lookup(folder.out(), repo_.get(), &entry->id);
        if (rc != 0) return GitError(rc, absl::StrCat("cannot read tree ", entry->path));
        CommitTree::Walk walk;
        walk.read = false;
        walk.unreadable = Unreadable::kLeaveOut;
        walk.folders.push_back(entry->path);
        GF_RETURN_IF_ERROR(tree.WalkFolder(folder.get(), entry->path, path, &walk));
        if (!walk.linked_ids.empty()) {
          absl::StrAppend(&id, "+", Sha256Hex(walk.linked_ids).substr(0, 40));
        }
      }
      ids.push_back(std::move(id));
    }
    return ids;
  }

  absl::StatusOr<std::vector<RepoFile>> ReadTree(const std::string& commit, const std::string& path,
                                                 Unreadable unreadable) override {
    absl::StatusOr<std::vector<RepoFile>> files = ReadTreeOfCommit(commit, path, unreadable);
    if (files.ok() && lfs_) GF_RETURN_IF_ERROR(ResolveLfs(commit, unreadable, &*files));
    return files;
  }

  absl::StatusOr<std::vector<RepoFile>> ReadFiles(const std::string& commit,
                                                  const std::vector<std::string>& paths) override {
    absl::StatusOr<std::vector<RepoFile>> files = ReadFilesOfCommit(commit, paths);
    if (files.ok() && lfs_) GF_RETURN_IF_ERROR(ResolveLfs(commit, Unreadable::kRefuse, &*files));
    return files;
  }

 private:
  // The files among `files` that are Git LFS pointers, given their content (outside the
  // lock: the LFS server may take its time, and reads of other commits need not wait). A
  // file past the limits fails the read (kRefuse), or stays a pointer (kLeaveOut: the whole
  // repository, where an LFS video in a docs folder must not break every render).
  // What git-lfs-authenticate, run over SSH with the source's key, gives for the LFS
  // server: `endpoint` becomes the server it names (when it names one), and the login
  // carries the headers it gave. nullopt when the source has no SSH key; an error when the
  // host cannot be asked or refuses.
  absl::StatusOr<std::optional<LfsLogin>> LfsLoginOverSsh(std::string* endpoint) const {
    absl::StatusOr<std::optional<GitCredential>> credential = LoadCredential();
    if (!credential.ok()) return credential.status();
    if (!credential->has_value() || !(*credential)->has_ssh_key()) {
      return std::optional<LfsLogin>();
    }
    absl::StatusOr<std::string> command = LfsAuthenticateCommand(url_);
    if (!command.ok()) return command.status();
    SshCommandTarget target;
    absl::string_view rest = url_;
    absl::ConsumePrefix(&rest, "ssh://");
    rest = rest.substr(0, rest.find('/'));
    if (const size_t at = rest.rfind('@'); at != absl::string_view::npos) {
      target.user = std::string(rest.substr(0, at));
      rest.remove_prefix(at + 1);
    }
    if (target.user.empty()) {
      target.user = (*credential)->username.empty() ? "git" : (*credential)->username;
    }
    const size_t close = rest.rfind(']');
    const size_t colon = rest.rfind(':');
    target.host = std::string(colon == absl::string_view::npos ||
                                      (close != absl::string_view::npos && colon < close)
                                  ? rest
                                  : rest.substr(0, colon));
    target.port = SshPort(url_);
    target.key_path = (*credential)->ssh_key_path;
    target.certificate_path = (*credential)->ssh_certificate_path;
    target.passphrase = (*credential)->password;
    target.known_hosts = (*credential)->known_hosts;
    target.credential = (*credential)->name;
    SshCommandOptions options;
    options.timeout = limits_.fetch_timeout;
    const bool openssh =
        UsesOpenSsh(access_.ssh, target.key_path, target.known_hosts, target.certificate_path);
    absl::StatusOr<std::string> answer =
        openssh ? RunOpenSshCommand(access_.ssh, target, *command, options)
                : RunSshCommand(target, *command, options);
    if (!answer.ok() && !openssh && access_.ssh.client == SshClient::kAuto &&
        absl::StrContains(answer.status().message(), "Unable to exchange encryption keys") &&
        FindSshProgram(access_.ssh).ok()) {
      answer = RunOpenSshCommand(access_.ssh, target, *command, options);  // as for Git
    }
    if (!answer.ok()) return answer.status();
    absl::StatusOr<LfsSshAccess> access = ParseLfsAuthenticate(*answer);
    if (!access.ok()) return access.status();
    if (!access->href.empty()) *endpoint = access->href;
    LfsLogin login;
    login.name = (*credential)->name;
    login.ca_pem = (*credential)->ca_pem;
    login.headers = std::move(access->headers);
    return std::optional<LfsLogin>(std::move(login));
  }

  absl::Status ResolveLfs(const std::string& commit, Unreadable unreadable,
                          std::vector<RepoFile>* files) {
    int64_t total = 0;
    for (const RepoFile& file : *files) total += static_cast<int64_t>(file.content.size());
    std::vector<LfsPointer> pointers;
    std::vector<size_t> where;
    for (size_t i = 0; i < files->size(); ++i) {
      std::optional<LfsPointer> pointer = ParseLfsPointer((*files)[i].content);
      if (!pointer.has_value()) continue;
      const bool too_big = pointer->size > limits_.max_blob_bytes;
      const bool over = total + pointer->size > limits_.max_read_bytes;
      if ((too_big || over) && unreadable == Unreadable::kLeaveOut) continue;
      if (too_big) {
        return absl::ResourceExhaustedError(
            absl::StrCat((*files)[i].path, " is kept in Git LFS and is ", pointer->size,
                         " bytes; a file may be ", limits_.max_blob_bytes));
      }
      if (over) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the files read at ", commit.substr(0, 12), " with their Git LFS content pass ",
            limits_.max_read_bytes, " bytes (at ", (*files)[i].path, ")"));
      }
      total += pointer->size;
      pointers.push_back(*std::move(pointer));
      where.push_back(i);
    }
    if (pointers.empty()) return absl::OkStatus();
    // The repository's own word on where its LFS server is.
    std::string lfs_url;
    {
      absl::StatusOr<std::vector<RepoFile>> config = ReadFilesOfCommit(commit, {".lfsconfig"});
      if (config.ok() && !config->empty()) lfs_url = LfsConfigUrl(config->front().content);
    }
    absl::StatusOr<std::string> endpoint = LfsEndpoint(url_, lfs_url);
    if (!endpoint.ok()) {
      return absl::Status(endpoint.status().code(),
                          absl::StrCat((*files)[where[0]].path, " is kept in Git LFS, and ",
                                       endpoint.status().message()));
    }
    // A team's source reads its LFS content from its own repositories: an .lfsconfig that
    // points elsewhere would have the control plane fetch there with its credentials.
    if (!scope_.empty() && !lfs_url.empty() && !UrlPlainlyUnder(*endpoint, scope_)) {
      return absl::PermissionDeniedError(absl::StrCat(
          (*files)[where[0]].path, " is kept in Git LFS, and the repository's .lfsconfig names ",
          RedactUrl(*endpoint).substr(0, 256), ", outside the repositories of its source's scope (",
          absl::StrJoin(scope_, ","), ")"));
    }
    std::optional<LfsLogin> login;
    // An SSH source with its key, and no lfs.url: as git-lfs, ask the Git host over SSH
    // (git-lfs-authenticate) where its LFS server is and what to send it.
    std::string ssh_refused;
    if (lfs_url.empty() && absl::StartsWith(url_, "ssh://")) {
      absl::StatusOr<std::optional<LfsLogin>> over_ssh = LfsLoginOverSsh(&*endpoint);
      if (!over_ssh.ok()) {
        ssh_refused = std::string(over_ssh.status().message());
        GF_LOG(INFO) << "git-lfs-authenticate over SSH failed (trying " << *endpoint
                     << " as it is): " << ssh_refused;
      } else {
        login = *std::move(over_ssh);
      }
    }
    if (!login.has_value()) {
      // As a submodule's: the one --git-credentials gives the server's URL, else on the
      // source's own host the source's, else none. A commit's .lfsconfig may name any
      // server; it never gets a credential the operator did not give its URL.
      absl::StatusOr<std::optional<GitCredential>> credential =
          LoadNamed(SubmoduleCredential(*endpoint));
      if (!credential.ok()) return credential.status();
      if (credential->has_value() && (*credential)->has_password()) {
        login = LfsLogin{(*credential)->name, (*credential)->username, (*credential)->password,
                         (*credential)->ca_pem};
      } else if (credential->has_value() && (*credential)->has_bearer_token()) {
        // A header curl keeps from any other host a redirect leads to.
        login = LfsLogin{(*credential)->name,
                         "",
                         "",
                         (*credential)->ca_pem,
                         {"Authorization: Bearer " + (*credential)->bearer_token}};
      } else if (credential->has_value() && !(*credential)->tls_cert_pem.empty()) {
        login = LfsLogin{(*credential)->name, "", "", (*credential)->ca_pem};
      }
      if (login.has_value()) {
        // The credential's client certificate, for a server that asks for one.
        login->client_cert_pem = (*credential)->tls_cert_pem;
        login->client_key_pem = (*credential)->tls_key_pem;
      }
    }
    LfsOptions options;
    options.cache_dir = lfs_dir_;
    options.max_object_bytes = limits_.max_blob_bytes;
    options.timeout = limits_.fetch_timeout;
    absl::StatusOr<std::vector<std::string>> contents =
        FetchLfsObjects(*endpoint, login.has_value() ? &*login : nullptr, pointers, options);
    if (!contents.ok()) {
      const bool ssh = absl::StartsWith(url_, "ssh://") || !absl::StrContains(url_, "://");
      // The file whose object it was, when the message names one.
      size_t failed = 0;
      for (size_t i = 0; i < pointers.size(); ++i) {
        if (absl::StrContains(contents.status().message(), pointers[i].oid.substr(0, 12))) {
          failed = i;
          break;
        }
      }
      return absl::Status(
          contents.status().code(),
          absl::StrCat("cannot read ", (*files)[where[failed]].path,
                       pointers.size() > 1 ? absl::StrCat(" (and ", pointers.size() - 1,
                                                          " more files kept in Git LFS)")
                                           : " (kept in Git LFS)",
                       ": ", contents.status().message(),
                       ssh && !ssh_refused.empty()
                           ? absl::StrCat(" (asked over https, as git-lfs-authenticate over SSH "
                                          "failed: ",
                                          ssh_refused, ")")
                           : ""));
    }
    for (size_t i = 0; i < where.size(); ++i) (*files)[where[i]].content = (*contents)[i];
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<RepoFile>> ReadTreeOfCommit(const std::string& commit,
                                                         const std::string& path,
                                                         Unreadable unreadable) {
    MutexLock lock(&mu_);
    Tree root;
    if (absl::Status s = LookupTreeLocked(commit, "", &root); !s.ok()) return s;
    const CommitTree tree(repo_.get(), root.get(), submodules_, &not_checked_out_);
    absl::StatusOr<CommitTree::Entry> folder = tree.Follow("", path);
    if (absl::IsNotFound(folder.status())) {
      return absl::NotFoundError(
          absl::StrCat("path \"", path, "\" not found at commit ", commit.substr(0, 12)));
    }
    if (absl::IsInvalidArgument(folder.status())) {
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", path, "\" ", folder.status().message()));
    }
    if (!folder.ok()) return folder.status();
    if (folder->mode != GIT_FILEMODE_TREE) {
      return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" is not a directory"));
    }
    Tree start;
    int rc = git_tree_lookup(start.out(), repo_.get(), &folder->id);
    if (rc != 0) return GitError(rc, absl::StrCat("cannot read tree ", path));
    CommitTree::Walk walk;
    walk.unreadable = unreadable;
    walk.limits = &limits_;
    walk.folders.push_back(folder->path);
    GF_RETURN_IF_ERROR(tree.WalkFolder(start.get(), folder->path, path, &walk));
    std::sort(walk.files.begin(), walk.files.end(),
              [](const RepoFile& a, const RepoFile& b) { return a.path < b.path; });
    return std::move(walk.files);
  }

  absl::StatusOr<std::vector<RepoFile>> ReadFilesOfCommit(const std::string& commit,
                                                          const std::vector<std::string>& paths) {
    MutexLock lock(&mu_);
    Tree root;
    if (absl::Status s = LookupTreeLocked(commit, "", &root); !s.ok()) return s;
    const CommitTree tree(repo_.get(), root.get(), submodules_, &not_checked_out_);
    CommitTree::Walk walk;
    walk.unreadable = Unreadable::kRefuse;
    walk.limits = &limits_;
    for (const std::string& path : paths) {
      absl::StatusOr<CommitTree::Entry> entry = tree.Follow("", path);
      if (absl::IsNotFound(entry.status()) || absl::IsInvalidArgument(entry.status())) continue;
      if (!entry.ok()) return entry.status();
      if (entry->mode != GIT_FILEMODE_BLOB && entry->mode != GIT_FILEMODE_BLOB_EXECUTABLE) {
        continue;
      }
      GF_RETURN_IF_ERROR(tree.AddFile(path, entry->id, &walk));
    }
    return std::move(walk.files);
  }

  absl::Status OpenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (repo_.get() != nullptr) return absl::OkStatus();
    int rc = git_repository_open_bare(repo_.out(), dir_.c_str());
    if (rc == 0) return absl::OkStatus();
    rc = git_repository_init(repo_.out(), dir_.c_str(), /*is_bare=*/1);
    if (rc != 0) return GitError(rc, absl::StrCat("cannot create cache at ", dir_));
    Remote origin;
    rc = git_remote_create(origin.out(), repo_.get(), "origin", url_.c_str());
    if (rc != 0) return GitError(rc, absl::StrCat("invalid repository URL ", url_));
    return absl::OkStatus();
  }

  std::string BranchesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // The first ten by name, and how many more: a repository may have thousands.
    std::vector<std::string> names;
    git_strarray refs = {nullptr, 0};
    if (git_reference_list(&refs, repo_.get()) == 0) {
      for (size_t i = 0; i < refs.count; ++i) {
        absl::string_view name(refs.strings[i]);
        // origin/HEAD names the default branch; it is no branch of its own.
        if (!absl::ConsumePrefix(&name, "refs/remotes/origin/") || name == "HEAD") continue;
        names.emplace_back(name);
      }
      git_strarray_dispose(&refs);
    }
    std::sort(names.begin(), names.end());
    return ListNames(names);
  }

  absl::Status LookupTreeLocked(const std::string& commit_id, const std::string& path, Tree* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (absl::Status s = OpenLocked(); !s.ok()) return s;
    git_oid oid;
    if (git_oid_fromstr(&oid, commit_id.c_str()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("\"", commit_id, "\" is not a commit id"));
    }
    Commit commit;
    int rc = git_commit_lookup(commit.out(), repo_.get(), &oid);
    if (rc != 0) return GitError(rc, absl::StrCat("commit ", commit_id, " not found"));
    Tree root;
    rc = git_commit_tree(root.out(), commit.get());
    if (rc != 0) return GitError(rc, "cannot read commit tree");
    if (path.empty()) {
      std::swap(out->ptr, root.ptr);
      return absl::OkStatus();
    }
    TreeEntry entry;
    rc = git_tree_entry_bypath(entry.out(), root.get(), path.c_str());
    if (rc == GIT_ENOTFOUND) {
      return absl::NotFoundError(
          absl::StrCat("path \"", path, "\" not found at commit ", commit_id.substr(0, 12)));
    }
    if (rc != 0) return GitError(rc, absl::StrCat("cannot look up ", path));
    if (git_tree_entry_type(entry.get()) != GIT_OBJECT_TREE) {
      return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" is not a directory"));
    }
    rc = git_tree_lookup(out->out(), repo_.get(), git_tree_entry_id(entry.get()));
    if (rc != 0) return GitError(rc, absl::StrCat("cannot read tree ", path));
    return absl::OkStatus();
  }

  const std::string url_;
  // Its name (the source's, or the one --git-credentials gives its URL); the files are
  // read at each fetch.
  const std::string credential_;
  const bool submodules_;
  const bool lfs_;
  const std::vector<std::string> scope_;  // a team's source: its repos=
  const std::string dir_;
  const std::string lfs_dir_;  // LFS objects, by id, shared by every clone (lfs.h)
  const GitLimits limits_;
  const GitAccess access_;
  Mutex mu_;
  Repo repo_ ABSL_GUARDED_BY(mu_);
  Remote remote_ ABSL_GUARDED_BY(mu_);  // declared after repo_: freed first
  // CompareCommits' own handle on the same clone, which reads objects only.
  Mutex compare_mu_;
  Repo compare_repo_ ABSL_GUARDED_BY(compare_mu_);
  // Commits whose submodules the clone holds (FetchSubmodulesLocked).
  std::set<std::string> complete_ ABSL_GUARDED_BY(mu_);
  // The branch the remote's HEAD names, when git's client made the last fetch (a dumb
  // HTTP server); unset when libgit2 did.
  std::optional<std::string> dumb_head_ ABSL_GUARDED_BY(mu_);
  // Gitlinks (commit ids) .gitmodules marks `update = none`, read as empty folders.
  std::set<std::string> not_checked_out_ ABSL_GUARDED_BY(mu_);
};

class Libgit2Repositories : public GitRepositories {
 public:
  Libgit2Repositories(std::string cache_dir, GitLimits limits, GitAccess access)
      : cache_dir_(std::move(cache_dir)), limits_(limits), access_(std::move(access)) {
    git_libgit2_init();
    // libgit2 reads ~/.gitconfig and, for SSH, ~/.ssh/known_hosts (failing when it is
    // missing). Neither belongs to gitfleet: point its "global" directory at an empty one
    // of ours. Host keys are checked against the source credential's known_hosts only.
    const std::string home = absl::StrCat(cache_dir_, "/home");
    for (const std::string& dir : {cache_dir_, home, home + "/.ssh"}) {
      for (size_t i = 1; i <= dir.size(); ++i) {
        if (i == dir.size() || dir[i] == '/') mkdir(dir.substr(0, i).c_str(), 0700);
      }
    }
    if (FILE* f = fopen((home + "/.ssh/known_hosts").c_str(), "a")) fclose(f);
    // OpenSSH's connections each make a private folder here (a copy of the key, the
    // credential's known_hosts), removed as they end; what is here now a crash left.
    if (access_.ssh.scratch_dir.empty()) {
      access_.ssh.scratch_dir = home + "/ssh";
      RemoveRecursively(access_.ssh.scratch_dir).IgnoreError();
      mkdir(access_.ssh.scratch_dir.c_str(), 0700);
    }
    git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, home.c_str());
    git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, home.c_str());
    // libgit2 1.5's SSH transport reads $HOME/.ssh/known_hosts before our check, and fails
    // every SSH fetch when HOME is unset (as under systemd or in a bare container). The
    // control plane sets HOME to `home` at start (main.cc); here only an unset one is
    // filled in, as this runs before fetch threads exist.
    const char* env_home = getenv("HOME");
    if (env_home == nullptr || *env_home == '\0') setenv("HOME", home.c_str(), 1);
    static const bool registered = RegisterTimedSocketStream();
    if (!registered)
      GF_LOG(ERROR) << "libgit2 refused the timed socket stream: fetches have no deadline";
    static const bool tls_registered = registered && RegisterTlsStream();
    if (registered && !tls_registered) {
      GF_LOG(ERROR) << "libgit2 refused gitfleet's TLS stream: no client certificates for Git";
    }
  }
  ~Libgit2Repositories() override {
    {
      MutexLock lock(&mu_);
      repos_.clear();
    }
    git_libgit2_shutdown();
  }

  absl::StatusOr<std::shared_ptr<GitRepository>> ForUrl(
      const std::string& url, const std::string& credential, bool submodules, bool lfs,
      const std::vector<std::string>& scope) override {
    if (absl::Status s = CheckSourceUrl(url, access_.allow_local); !s.ok()) return s;
    if (!credential.empty()) {
      if (absl::Status s = ValidateName("credential", credential); !s.ok()) return s;
    }
    // Only what reads elsewhere is held to it.
    const std::vector<std::string> held = lfs || submodules ? scope : std::vector<std::string>();
    const std::string key = Key({url, credential, submodules, lfs, held});
    MutexLock lock(&mu_);
    auto it = repos_.find(key);
    if (it != repos_.end()) return it->second;
    // Asked for again before Retain deleted it: the clone stays, and so does the object
    // when someone still holds it (two objects would fetch into one directory at once).
    auto unused = unused_.find(key);
    if (unused != unused_.end()) {
      std::shared_ptr<GitRepository> held = unused->second.lock();
      unused_.erase(unused);
      if (held != nullptr) {
        repos_[key] = held;
        return held;
      }
    }
    for (size_t i = 1; i <= cache_dir_.size(); ++i) {
      if (i == cache_dir_.size() || cache_dir_[i] == '/') {
        mkdir(cache_dir_.substr(0, i).c_str(), 0700);
      }
    }
    auto repo = std::make_shared<Libgit2Repository>(
        url, credential, submodules, lfs, held, DirOf(key), cache_dir_ + "/lfs", limits_, access_);
    repos_[key] = repo;
    return repo;
  }

  int Retain(const std::set<RepoRef>& in_use) override {
    std::set<std::string> keep;
    for (const RepoRef& ref : in_use) keep.insert(Key(ref));
    std::vector<std::string> doomed;  // renamed away under the lock, deleted outside it
    {
      MutexLock lock(&mu_);
      for (auto it = repos_.begin(); it != repos_.end();) {
        if (keep.count(it->first) > 0) {
          ++it;
          continue;
        }
        unused_[it->first] = it->second;
        it = repos_.erase(it);
      }
      if (!swept_) {
        swept_ = true;
        std::set<std::string> known;
        for (const std::string& key : keep) known.insert(DirOf(key));
        for (const auto& [key, repo] : repos_) known.insert(DirOf(key));
        for (const auto& [key, repo] : unused_) known.insert(DirOf(key));
        std::vector<std::string> names;  // read whole before anything is renamed
        if (DIR* dir = opendir(cache_dir_.c_str())) {
          while (dirent* entry = readdir(dir)) names.emplace_back(entry->d_name);
          closedir(dir);
        }
        for (const std::string& name : names) {
          const std::string path = absl::StrCat(cache_dir_, "/", name);
          if (absl::StrContains(name, ".git.removing-")) {
            doomed.push_back(path);  // a deletion a stop cut short
          } else if (IsCloneName(name) && known.count(path) == 0) {
            DoomLocked(path, &doomed);
          }
        }
      }
      for (auto it = unused_.begin(); it != unused_.end();) {
        const bool used = keep.count(it->first) > 0;  // asked for again: its clone stays
        if (!used && !it->second.expired()) {
          ++it;  // a fetch or a render still holds it: next time
          continue;
        }
        if (!used) DoomLocked(DirOf(it->first), &doomed);
        it = unused_.erase(it);
      }
    }
    int deleted = 0;
    for (const std::string& dir : doomed) {
      absl::Status removed = RemoveRecursively(dir);
      if (removed.ok()) {
        ++deleted;
      } else {
        GF_LOG(WARNING) << "cannot delete the unused Git cache " << dir << ": " << removed;
      }
    }
    if (deleted > 0) {
      GF_LOG(INFO) << "deleted " << deleted << (deleted == 1 ? " Git cache" : " Git caches")
                   << " no source uses";
    }
    return deleted;
  }

  bool RetainPending() override {
    MutexLock lock(&mu_);
    return !unused_.empty() || !swept_;
  }

 private:
  // One cache per URL and credential: what one credential may read is not served to a
  // source that names another (or none). One with submodules is another: their objects
  // are in it, and a source without them reads the repository as it always did.
  static std::string Key(const RepoRef& ref) {
    std::string key =
        ref.credential.empty() ? ref.url : absl::StrCat(ref.credential, "\n", ref.url);
    if (ref.submodules) key += "\n+submodules";
    if (ref.lfs) key += "\n+lfs";
    // Held to a team's repositories: its own clone, so no read is shared unchecked.
    if ((ref.lfs || ref.submodules) && !ref.scope.empty()) {
      key += absl::StrCat("\n+scope:", absl::StrJoin(ref.scope, ","));
    }
    return key;
  }
  std::string DirOf(const std::string& key) const {
    return absl::StrCat(cache_dir_, "/", Sha256Hex(key).substr(0, 24), ".git");
  }
  // 24 lower-case hex digits and ".git": what DirOf names, nothing else of the cache
  // directory (home/, a user's file).
  static bool IsCloneName(absl::string_view name) {
    if (!absl::ConsumeSuffix(&name, ".git") || name.size() != 24) return false;
    for (char c : name) {
      if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
    }
    return true;
  }
  // Renames `dir` out of the way (at once, so a source added again clones afresh beside
  // the deletion), for deletion after the lock.
  void DoomLocked(const std::string& dir, std::vector<std::string>* doomed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string away = absl::StrCat(dir, ".removing-", getpid(), "-", ++removals_);
    if (rename(dir.c_str(), away.c_str()) == 0) doomed->push_back(away);
  }

  const std::string cache_dir_;
  const GitLimits limits_;
  GitAccess access_;  // its SSH scratch folder filled in by the constructor
  Mutex mu_;
  std::map<std::string, std::shared_ptr<GitRepository>> repos_ ABSL_GUARDED_BY(mu_);
  // Repositories no source uses, whose clones go once no one holds them (Retain).
  std::map<std::string, std::weak_ptr<GitRepository>> unused_ ABSL_GUARDED_BY(mu_);
  bool swept_ ABSL_GUARDED_BY(mu_) = false;  // the cache directory was read (Retain)
  uint64_t removals_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

std::unique_ptr<GitRepositories> NewLibgit2Repositories(std::string cache_dir, GitLimits limits,
                                                        GitAccess access) {
  return std::make_unique<Libgit2Repositories>(std::move(cache_dir), limits, std::move(access));
}

void CancelGitFetches() { CancelAllFetches(); }

}  // namespace gitfleet
