#include "controlplane/render/remote_bases.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "controlplane/render/chart_fetcher.h"
#include "controlplane/source/repo_url.h"

namespace gitfleet {
namespace {

bool IsFullCommitId(const std::string& ref) {
  return ref.size() == 40 && ref.find_first_not_of("0123456789abcdef") == std::string::npos;
}

bool ValidRef(const std::string& ref) {
  if (ref.size() > 256 || absl::StrContains(ref, "..")) return false;
  for (char c : ref) {
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f || c == '~' || c == '^' || c == ':' ||
        c == '?' || c == '*' || c == '[' || c == '\\') {
      return false;
    }
  }
  return true;
}

}  // namespace

bool LooksRemote(absl::string_view reference) {
  absl::ConsumePrefix(&reference, "git::");
  return reference.find("://") != absl::string_view::npos ||
         absl::StartsWith(reference, "github.com/") || absl::StartsWith(reference, "git@");
}

absl::StatusOr<std::optional<RemoteBase>> ParseRemoteBase(absl::string_view reference) {
  if (!LooksRemote(reference)) return std::optional<RemoteBase>();
  const std::string shown(reference.substr(0, 256));
  absl::string_view rest = reference;
  absl::ConsumePrefix(&rest, "git::");
  // The query: ref (or its old name, version); timeout and submodules are kustomize's own.
  std::string ref;
  if (size_t question = rest.find('?'); question != absl::string_view::npos) {
    for (absl::string_view pair : absl::StrSplit(rest.substr(question + 1), '&')) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(pair, '=');
      if ((kv.first == "ref" || (kv.first == "version" && ref.empty())) && !kv.second.empty()) {
        ref = std::string(kv.second);
      }
    }
    rest = rest.substr(0, question);
  }
  std::string scheme, host;
  absl::string_view path;
  if (size_t at = rest.find("://"); at != absl::string_view::npos) {
    scheme = absl::AsciiStrToLower(rest.substr(0, at));
    rest.remove_prefix(at + 3);
    const size_t slash = std::min(rest.find('/'), rest.size());
    host = std::string(rest.substr(0, slash));
    path = rest.substr(std::min(rest.size(), slash + 1));
  } else if (absl::StartsWith(rest, "git@")) {
    // scp-like: git@host:org/repo.git/path
    const size_t colon = rest.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("remote base \"", shown, "\" is not git@HOST:ORG/REPO"));
    }
    scheme = "ssh";
    host = std::string(rest.substr(0, colon));
    path = rest.substr(colon + 1);
  } else {  // github.com/org/repo/path, as kustomize reads it
    scheme = "https";
    const size_t slash = rest.find('/');
    host = std::string(rest.substr(0, slash));
    path = rest.substr(slash + 1);
  }
  if (scheme != "https" && scheme != "http" && scheme != "ssh" && scheme != "git" &&
      scheme != "file") {
    return absl::InvalidArgumentError(
        absl::StrCat("remote base \"", shown, "\": ", scheme,
                     ":// is not a scheme gitfleet fetches (https, ssh, git, http)"));
  }
  if (host.empty() && scheme != "file") {
    return absl::InvalidArgumentError(absl::StrCat("remote base \"", shown, "\" names no host"));
  }
  // A plain file over http(s) (raw.githubusercontent.com/.../install.yaml), not a repository.
  if (IsRemoteFile(reference)) return std::optional<RemoteBase>();
  // The repository and the folder in it: split at "//", else after a part ending ".git",
  // else after Azure DevOps' "_git/REPO", else after ORG/REPO.
  std::string repo_path, folder;
  const bool split_given = path.find("//") != absl::string_view::npos;
  if (split_given) {
    const size_t split = path.find("//");
    repo_path = std::string(path.substr(0, split));
    folder = std::string(path.substr(split + 2));
  } else {
    std::vector<absl::string_view> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
    size_t repo_parts = scheme == "file" ? parts.size() : std::min<size_t>(2, parts.size());
    for (size_t i = 0; i < parts.size(); ++i) {
      if (absl::EndsWith(parts[i], ".git")) {
        repo_parts = i + 1;
        break;
      }
      if (parts[i] == "_git" && i + 1 < parts.size()) {
        repo_parts = i + 2;
        break;
      }
    }
    repo_path = absl::StrJoin(parts.begin(), parts.begin() + repo_parts, "/");
    folder = absl::StrJoin(parts.begin() + repo_parts, parts.end(), "/");
  }
  folder = std::string(absl::StripSuffix(absl::StripPrefix(folder, "/"), "/"));
  // Without "//" or ".git" the repository is ORG/REPO, as kustomize guesses it.
  if (repo_path.empty() ||
      (!split_given && scheme != "file" && repo_path.find('/') == std::string::npos &&
       !absl::EndsWith(repo_path, ".git"))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "remote base \"", shown, "\" names no repository (HOST/ORG/REPO, or REPO.git)"));
  }
  for (absl::string_view part : absl::StrSplit(folder, '/', absl::SkipEmpty())) {
    if (part == ".." || part == ".") {
      return absl::InvalidArgumentError(
          absl::StrCat("remote base \"", shown, "\": its folder may not hold . or .."));
    }
  }
  if (!ValidRef(ref)) {
    return absl::InvalidArgumentError(absl::StrCat("remote base \"", shown, "\": ref \"",
                                                   ref.substr(0, 64),
                                                   "\" is not a branch, tag or commit"));
  }
  RemoteBase base;
  base.repo = scheme == "file" ? absl::StrCat("file:///", absl::StripPrefix(repo_path, "/"))
                               : absl::StrCat(scheme, "://", host, "/", repo_path);
  base.path = std::move(folder);
  base.ref = std::move(ref);
  return std::optional<RemoteBase>(std::move(base));
}

absl::Status CheckRemoteBasePrefixes(const std::vector<std::string>& prefixes) {
  for (const std::string& prefix : prefixes) {
    if (prefix == "*") continue;
    bool known = false;
    for (const char* scheme : {"https://", "ssh://", "git://", "http://"}) {
      known |= absl::StartsWith(prefix, scheme) && prefix.size() > strlen(scheme);
    }
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix.substr(0, 256),
                       " is not an https://, ssh://, git:// or http:// URL prefix (or *)"));
    }
  }
  return absl::OkStatus();
}

RemoteBaseFetcher::RemoteBaseFetcher(GitRepositories* repos, std::vector<std::string> allowed,
                                     absl::Duration refetch_after)
    : repos_(repos), allowed_(std::move(allowed)), refetch_after_(refetch_after) {}

bool RemoteBaseFetcher::Allowed(const std::string& repo) const {
  for (const std::string& prefix : allowed_) {
    if (prefix == "*" || absl::StartsWith(repo, WholeHostPrefix(prefix))) return true;
  }
  return false;
}

absl::Status RemoteBaseFetcher::Refused(const std::string& url, const char* what) const {
  return absl::FailedPreconditionError(absl::StrCat(
      what, " ", url.substr(0, 256), " is ",
      absl::string_view(what) == "remote base" ? "in a repository" : "at a URL",
      " the control plane does not fetch remote bases from: start it with "
      "--kustomize-remote-bases=",
      url.substr(0, 256),
      " to trust it (renders have no network; the control plane fetches remote bases only "
      "from the prefixes it is told to)"));
}

bool IsRemoteFile(absl::string_view reference) {
  absl::ConsumePrefix(&reference, "git::");
  if (!absl::StartsWith(reference, "https://") && !absl::StartsWith(reference, "http://")) {
    return false;
  }
  absl::string_view path = reference.substr(reference.find("://") + 3);
  // A query is the file server's own (GitLab's, Gitea's and Bitbucket's raw-file APIs take
  // ?ref= or ?at=): kustomize downloads any http(s) URL as a file first, and a folder (a
  // remote base) is never named like a YAML file.
  path = path.substr(0, path.find('?'));
  if (absl::StrContains(path, "//")) return false;
  if (absl::EndsWith(path, ".yaml") || absl::EndsWith(path, ".yml") ||
      absl::EndsWith(path, ".json")) {
    return true;
  }
  // GitLab's API: /api/v4/projects/ID/repository/files/PATH/raw?ref=BRANCH.
  return absl::StrContains(path, "/repository/files/") && absl::EndsWith(path, "/raw");
}

std::string RemoteFileName(absl::string_view url) {
  absl::string_view path = url.substr(0, url.find('?'));
  absl::string_view name = path.substr(path.rfind('/') + 1);
  const bool plain = !name.empty() && name.size() <= 128 && name[0] != '.' &&
                     name.find_first_not_of(
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789._-") == absl::string_view::npos;
  const bool yaml = absl::EndsWith(name, ".yaml") || absl::EndsWith(name, ".yml") ||
                    absl::EndsWith(name, ".json");
  return plain && yaml ? std::string(name) : "resource.yaml";
}

absl::StatusOr<std::string> RemoteBaseFetcher::FetchFile(const std::string& url, size_t max_bytes,
                                                         const FetchScope& scope) {
  if (!IsRemoteFile(url) || !Allowed(url)) return Refused(url, "remote file");
  GF_RETURN_IF_ERROR(scope.Check(url, "the remote file"));
  const absl::Time now = RealClock().Now();
  {
    MutexLock lock(&mu_);
    auto it = files_.find(url);
    if (it != files_.end() && now - it->second.read < refetch_after_) return it->second.content;
  }
  HttpOptions options;
  options.max_bytes = max_bytes;
  std::optional<ChartLogin> login;
  if (login_for_) {
    absl::StatusOr<std::optional<ChartLogin>> found = login_for_(url);
    if (!found.ok()) {
      return absl::Status(found.status().code(), absl::StrCat("remote file ", url.substr(0, 256),
                                                              ": ", found.status().message()));
    }
    login = *std::move(found);
  }
  if (login.has_value()) {
    options.login = &*login;
    options.basic = true;  // to the URL's host alone, never on a redirect elsewhere
  }
  absl::StatusOr<HttpAnswer> answer = HttpGet(url, options);  // release downloads redirect
  if (!answer.ok()) {
    return absl::Status(answer.status().code(),
                        absl::StrCat("remote file: ", answer.status().message()));
  }
  if (answer->status != 200) {
    const bool refused = answer->status == 401 || answer->status == 403;
    return absl::UnavailableError(absl::StrCat(
        "cannot fetch remote file ", url.substr(0, 256), ": the server answered HTTP ",
        answer->status,
        !refused            ? ""
        : login.has_value() ? absl::StrCat(" to credential ", login->name)
                            : " (a private file: give its URL prefix a credential with "
                              "--git-credentials=PREFIX=NAME)"));
  }
  std::string body = std::move(answer->body);
  MutexLock lock(&mu_);
  if (files_.size() >= 64) files_.clear();
  files_[url] = {now, body};
  return body;
}

absl::StatusOr<RemoteTree> RemoteBaseFetcher::Fetch(const std::string& repo, const std::string& ref,
                                                    const FetchScope& scope) {
  const std::string at = ref.empty() ? "its default branch" : ref;
  if (scope.repos_read != nullptr && !IsFullCommitId(ref)) {
    scope.repos_read->push_back(repo);
  }
  if (!Allowed(repo)) return Refused(repo, "remote base");
  GF_RETURN_IF_ERROR(scope.Check(repo, "the remote base"));
  // Not held between renders: a clone no source uses is the source poller's to delete.
  GF_ASSIGN_OR_RETURN(std::shared_ptr<GitRepository> git, repos_->ForUrl(repo, "", false));
  const absl::Time now = RealClock().Now();
  bool fresh = false;
  {
    MutexLock lock(&mu_);
    auto it = fetched_.find(repo);
    fresh = it != fetched_.end() && now - it->second < refetch_after_;
  }
  bool fetched = false;
  auto fetch = [&]() -> absl::Status {
    absl::Status s = git->Fetch();
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("remote base ", repo.substr(0, 256), ": ", s.message()));
    }
    fetched = true;
    MutexLock lock(&mu_);
    if (fetched_.size() > 1024) fetched_.clear();
    fetched_[repo] = now;
    return absl::OkStatus();
  };
  // A commit id names the same tree for good; a branch or tag is read again after a while.
  if (!fresh && !IsFullCommitId(ref)) GF_RETURN_IF_ERROR(fetch());
  absl::StatusOr<CommitInfo> commit = git->Resolve(ref);
  if (!commit.ok() && !fetched) {  // a clone deleted meanwhile, or a commit not fetched yet
    GF_RETURN_IF_ERROR(fetch());
    commit = git->Resolve(ref);
  }
  if (!commit.ok()) {
    return absl::Status(commit.status().code(),
                        absl::StrCat("remote base ", repo.substr(0, 256), " at ", at, ": ",
                                     commit.status().message()));
  }
  absl::StatusOr<std::vector<RepoFile>> files =
      git->ReadTree(commit->id, "", GitRepository::Unreadable::kLeaveOut);
  if (!files.ok()) {
    return absl::Status(files.status().code(),
                        absl::StrCat("remote base ", repo.substr(0, 256), " at ", at, ": ",
                                     files.status().message()));
  }
  return RemoteTree{commit->id, *std::move(files)};
}

void RemoteBaseFetcher::FetchAllAgain() {
  MutexLock lock(&mu_);
  fetched_.clear();
  files_.clear();
}

void RemoteBaseFetcher::FetchAgain(const std::set<std::string>& repos) {
  MutexLock lock(&mu_);
  for (auto it = fetched_.begin(); it != fetched_.end();) {
    it = repos.count(NormalizeRepoUrl(it->first)) > 0 ? fetched_.erase(it) : std::next(it);
  }
}

}  // namespace gitfleet
