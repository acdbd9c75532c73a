#include "controlplane/events/notifier.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/config_fields.h"
#include "common/crypto.h"
#include "common/http.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/thread_name.h"
#include "controlplane/source/repo_url.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace gitfleet {

constexpr size_t kMaxNotifySinks = 16;
// How many rate limits (RateLimitWait: each at most kMaxRateLimitWait) one POST waits out.
constexpr int kMaxRateLimitWaits = 4;
constexpr size_t kMaxSinkBundles = 64;

namespace {

// The path of an http(s) URL, its parts: no query, no ".git", no empty part.
std::vector<std::string> UrlPathParts(absl::string_view url) {
  absl::string_view path = url.substr(url.find("://") + 3);
  const size_t slash = path.find('/');
  path = slash == absl::string_view::npos ? "" : path.substr(slash);
  path = path.substr(0, path.find_first_of("?#"));
  while (absl::ConsumeSuffix(&path, "/")) {
  }
  absl::ConsumeSuffix(&path, ".git");
  return absl::StrSplit(path, '/', absl::SkipEmpty());
}

// The https address of a repository its host's clone button gives: `https://USER@HOST/...`
// (Bitbucket's and Azure DevOps'), SSH (`git@HOST:PATH`, `ssh://git@HOST[:PORT]/PATH`,
// Azure DevOps' `v3/ORG/PROJECT/REPO`). A password in it is refused, and a Data Center's
// SSH address (its host, port and context path are not its web address's) without its REST
// root (`api`), which gives them.
absl::StatusOr<std::string> RepositoryAddress(absl::string_view url, NotifySink::Format format,
                                              absl::string_view api) {
  absl::string_view rest = url;
  std::string scheme = "https://";
  const size_t colon_slashes = rest.find("://");
  bool ssh = false;
  if (colon_slashes != absl::string_view::npos) {
    scheme = std::string(rest.substr(0, colon_slashes + 3));
    rest.remove_prefix(colon_slashes + 3);
    ssh = scheme == "ssh://";
    if (!ssh && scheme != "https://" && scheme != "http://") return std::string(url);
  } else {
    // scp-like: [USER@]HOST:PATH
    const size_t colon = rest.find(':');
    if (colon == absl::string_view::npos ||
        rest.substr(0, colon).find('/') != absl::string_view::npos) {
      return std::string(url);  // refused as no http(s) URL after
    }
    ssh = true;
  }
  const size_t end =
      rest.find_first_of(ssh && colon_slashes == absl::string_view::npos ? ":" : "/?#");
  absl::string_view authority = rest.substr(0, end);
  absl::string_view path = end == absl::string_view::npos ? "" : rest.substr(end + 1);
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    if (authority.substr(0, at).find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "the URL holds a password (user:password@): the token goes in token-file= or "
          "credential=");
    }
    authority.remove_prefix(at + 1);
  }
  if (!ssh)
    return absl::StrCat(scheme, authority, end == absl::string_view::npos ? "" : rest.substr(end));
  if (format == NotifySink::Format::kBitbucketServer) {
    // ssh://git@HOST:7999/PROJECT/REPO.git: the repository is at ROOT/scm/PROJECT/REPO.git.
    while (absl::ConsumeSuffix(&api, "/")) {
    }
    if (!absl::ConsumeSuffix(&api, "/rest")) {
      return absl::InvalidArgumentError(
          "a Bitbucket Data Center's SSH address is not its web address (another host or port, "
          "a context path): give its https clone URL, or its REST root as "
          "api=https://HOST[/CONTEXT]/rest");
    }
    while (absl::ConsumePrefix(&path, "/")) {
    }
    return absl::StrCat(api, "/scm/", path);
  }
  std::string host(authority.substr(
      0, authority.rfind(':') == absl::string_view::npos || colon_slashes == absl::string_view::npos
             ? authority.size()
             : authority.rfind(':')));
  while (absl::ConsumePrefix(&path, "/")) {
  }
  // Azure DevOps' SSH hosts name the organization's repository as v3/ORG/PROJECT/REPO.
  if (host == "ssh.dev.azure.com" || absl::EndsWith(host, "vs-ssh.visualstudio.com")) {
    std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
    if (parts.size() == 4 && parts[0] == "v3") {
      return absl::StrCat("https://dev.azure.com/", parts[1], "/", parts[2], "/_git/", parts[3]);
    }
  }
  return absl::StrCat("https://", host, "/", path);
}

// Where a commit-status sink posts, from its repository's address (`sink->url`) and the
// API root its line gives (`sink->api_url`), and the forms of that address sources may
// fetch by.
absl::Status ReadStatusSink(NotifySink* sink) {
  using Format = NotifySink::Format;
  absl::string_view url = sink->url;
  const bool https = absl::ConsumePrefix(&url, "https://");
  if (!https) absl::ConsumePrefix(&url, "http://");
  const std::string host(url.substr(0, url.find_first_of("/?#")));
  const std::string lower_host = absl::AsciiStrToLower(host.substr(0, host.rfind(':')));
  const std::string origin = absl::StrCat(https ? "https://" : "http://", host);
  std::vector<std::string> parts = UrlPathParts(sink->url);
  std::string api = sink->api_url;
  while (absl::EndsWith(api, "/")) api.pop_back();
  const auto join = [](const std::vector<std::string>& list, size_t from, size_t to,
                       absl::string_view with) {
    return absl::StrJoin(list.begin() + from, list.begin() + to, with);
  };
  // Git over SSH names the repository without the path a web server puts it under.
  sink->repositories = {NormalizeRepoUrl(sink->url)};
  const auto also_by_ssh = [&](const std::string& path) {
    sink->repositories.push_back(NormalizeRepoUrl(absl::StrCat("ssh://", host, "/", path)));
  };
  switch (sink->format) {
    case Format::kGitHub:
    case Format::kGitLab:
    case Format::kGitea: {
      // An API root given under a path (GitLab at https://host/gitlab/api/v4): the
      // repository's address starts with that path too.
      if (!api.empty()) {
        std::vector<std::string> root = UrlPathParts(api);
        auto at = std::find(root.rbegin(), root.rend(), "api");
        root.resize(at == root.rend() ? 0 : root.rend() - at - 1);
        if (root.size() < parts.size() && std::equal(root.begin(), root.end(), parts.begin())) {
          parts.erase(parts.begin(), parts.begin() + root.size());
          also_by_ssh(absl::StrJoin(parts, "/"));
        }
      }
      const size_t count = parts.size();
      if (count < 2 || (sink->format == Format::kGitHub && count != 2)) {
        return absl::InvalidArgumentError(
            absl::StrCat("the URL names no repository: want https://HOST/",
                         sink->format == Format::kGitLab ? "GROUP/PROJECT" : "OWNER/REPO"));
      }
      if (sink->format == Format::kGitHub) {
        // github.com's API has a host of its own; GitHub Enterprise Server's is under /api/v3.
        if (api.empty()) {
          api = lower_host == "github.com" ? "https://api.github.com" : origin + "/api/v3";
        }
        sink->status_url =
            absl::StrCat(api, "/repos/", join(parts, 0, 2, "/"), "/statuses/{commit}");
      } else if (sink->format == Format::kGitLab) {
        // The project by its path, URL-encoded (subgroups included).
        if (api.empty()) api = origin + "/api/v4";
        sink->status_url =
            absl::StrCat(api, "/projects/", join(parts, 0, count, "%2F"), "/statuses/{commit}");
      } else {
        // Gitea and Forgejo may be served under a path: the repository is the last two parts.
        if (api.empty() && count > 2) {
          api = absl::StrCat(origin, "/", join(parts, 0, count - 2, "/"), "/api/v1");
          also_by_ssh(join(parts, count - 2, count, "/"));
        } else if (api.empty()) {
          api = origin + "/api/v1";
        }
        sink->status_url =
            absl::StrCat(api, "/repos/", join(parts, count - 2, count, "/"), "/statuses/{commit}");
      }
      break;
    }
    case Format::kBitbucket: {
      if (parts.size() != 2) {
        return absl::InvalidArgumentError(
            "the URL names no repository: want https://bitbucket.org/WORKSPACE/REPO");
      }
      if (api.empty() && lower_host != "bitbucket.org") {
        return absl::InvalidArgumentError(
            "bitbucket is Bitbucket Cloud (bitbucket.org): for Data Center say "
            "bitbucket-server, for another address of its API give api=URL");
      }
      if (api.empty()) api = "https://api.bitbucket.org/2.0";
      sink->status_url = absl::StrCat(api, "/repositories/", parts[0], "/", parts[1],
                                      "/commit/{commit}/statuses/build");
      sink->page_url = absl::StrCat(origin, "/", parts[0], "/", parts[1]);
      break;
    }
    case Format::kBitbucketServer: {
      // Its clone URL (CONTEXT/scm/PROJECT/REPO.git) or its pages
      // (CONTEXT/projects/PROJECT/repos/REPO/..., a user's CONTEXT/users/USER/repos/REPO/...).
      size_t at = 0;
      std::string project, repo;
      for (; at < parts.size() && repo.empty(); ++at) {
        if (parts[at] == "scm" && parts.size() == at + 3) {
          project = parts[at + 1];
          repo = parts[at + 2];
        } else if ((parts[at] == "projects" || parts[at] == "users") && parts.size() >= at + 4 &&
                   parts[at + 2] == "repos") {
          project = absl::StrCat(parts[at] == "users" ? "~" : "", parts[at + 1]);
          repo = parts[at + 3];
        }
      }
      if (repo.empty()) {
        return absl::InvalidArgumentError(
            "the URL names no repository: want its clone URL, https://HOST/scm/PROJECT/REPO.git, "
            "or its page, https://HOST/projects/PROJECT/repos/REPO");
      }
      const std::string context = join(parts, 0, at - 1, "/");
      if (api.empty()) api = absl::StrCat(origin, context.empty() ? "" : "/", context, "/rest");
      sink->status_url = absl::StrCat(api, "/api/latest/projects/", project, "/repos/", repo,
                                      "/commits/{commit}/builds");
      sink->page_url = absl::StrCat(origin, "/", context, context.empty() ? "" : "/",
                                    project[0] == '~' ? absl::StrCat("users/", project.substr(1))
                                                      : absl::StrCat("projects/", project),
                                    "/repos/", repo);
      sink->repositories = {NormalizeRepoUrl(absl::StrCat(
          origin, "/", context, context.empty() ? "" : "/", "scm/", project, "/", repo))};
      also_by_ssh(absl::StrCat(project, "/", repo));
      break;
    }
    case Format::kAzureDevOps: {
      // ORGANIZATION[/PROJECT]/_git/REPO on dev.azure.com, [DefaultCollection/][PROJECT/]
      // _git/REPO on ORGANIZATION.visualstudio.com, COLLECTION[/PROJECT]/_git/REPO on a
      // server; a repository named as its project leaves the project out.
      auto marker = std::find(parts.begin(), parts.end(), "_git");
      const size_t at = marker - parts.begin();
      size_t collection = 1;  // parts before the project: the organization's, on dev.azure.com
      if (absl::EndsWith(lower_host, ".visualstudio.com")) {
        collection = at > 0 && absl::AsciiStrToLower(parts[0]) == "defaultcollection" ? 1 : 0;
      } else if (lower_host != "dev.azure.com" && at >= 2) {
        collection = at - 1;  // a server's collection may be under a path (tfs/DefaultCollection)
      }
      if (marker == parts.end() || parts.size() != at + 2 || at < collection ||
          at > collection + 1) {
        return absl::InvalidArgumentError(
            "the URL names no repository: want https://dev.azure.com/ORGANIZATION/PROJECT/_git/"
            "REPO (or a server's https://HOST/COLLECTION/PROJECT/_git/REPO)");
      }
      const std::string& repo = parts[at + 1];
      const std::string project = at > collection ? parts[at - 1] : repo;
      const std::string root =
          absl::StrCat(origin, collection > 0 ? "/" : "", join(parts, 0, collection, "/"));
      if (api.empty()) api = root;
      sink->status_url = absl::StrCat(api, "/", project, "/_apis/git/repositories/", repo,
                                      "/commits/{commit}/statuses?api-version=6.0");
      // With the project named or left out, each a form Azure DevOps gives.
      sink->repositories = {NormalizeRepoUrl(absl::StrCat(root, "/", project, "/_git/", repo))};
      if (project == repo) {
        sink->repositories.push_back(NormalizeRepoUrl(absl::StrCat(root, "/_git/", repo)));
      }
      break;
    }
    default:
      return absl::InternalError("not a commit-status format");
  }
  const absl::string_view to = UrlAuthority(sink->status_url);
  if (!absl::StartsWith(sink->status_url, "https://") && !IsLoopbackHost(to)) {
    return absl::InvalidArgumentError(
        "a token goes over https only (plain http to this machine alone)");
  }
  sink->api_url = api;
  std::sort(sink->repositories.begin(), sink->repositories.end());
  sink->repositories.erase(std::unique(sink->repositories.begin(), sink->repositories.end()),
                           sink->repositories.end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<NotifySink>> ParseNotifySinks(absl::string_view text) {
  std::vector<NotifySink> sinks;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const std::string where = absl::StrCat("notify file line ", number);
    // A double-quoted stretch is part of one word: clusters="env in (prod)".
    absl::StatusOr<std::vector<std::string>> fields = ConfigFields(line);
    if (!fields.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", fields.status().message()));
    }
    std::vector<absl::string_view> words;
    NotifySink sink;
    sink.line = number;
    for (absl::string_view word : *fields) {
      if (words.empty() || !absl::StrContains(word, '=')) {
        words.push_back(word);
      } else if (absl::ConsumePrefix(&word, "token-file=") && !word.empty()) {
        sink.token_file = std::string(word);
      } else if (absl::ConsumePrefix(&word, "credential=")) {
        if (absl::Status valid = ValidateName("credential", std::string(word)); !valid.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": credential=: ", valid.message()));
        }
        sink.credential = std::string(word);
      } else if (absl::StartsWith(word, "details=") || absl::StartsWith(word, "api=")) {
        const absl::string_view option = word.substr(0, word.find('=') + 1);
        word.remove_prefix(option.size());
        if (!absl::StartsWith(word, "https://") && !absl::StartsWith(word, "http://")) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": ", option, " is not an http(s) URL"));
        }
        if (word.size() > 1024) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": ", option, " is over 1024 bytes"));
        }
        if (option == "api=" && (UrlAuthority(word).empty() || absl::StrContains(word, '@') ||
                                 absl::StrContains(word, '?') || absl::StrContains(word, '#'))) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": api= is the API's root URL: a host and a path, no credentials or query"));
        }
        (option == "api=" ? sink.api_url : sink.details_url) = std::string(word);
      } else if (absl::ConsumePrefix(&word, "bundles=")) {
        for (absl::string_view name : absl::StrSplit(word, ',', absl::SkipEmpty())) {
          if (name.find_first_of("*?") != absl::string_view::npos) {
            if (name.size() > 63 ||
                name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-*?") !=
                    absl::string_view::npos) {
              return absl::InvalidArgumentError(absl::StrCat(
                  where, ": bundles=: \"", name.substr(0, 64),
                  "\" is not a bundle's name or a glob of them (a-z, 0-9, '-', '*', '?'; at "
                  "most 63)"));
            }
          } else if (absl::Status valid = ValidateName("bundle", std::string(name)); !valid.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(where, ": bundles=: ", valid.message()));
          }
          sink.bundles.emplace_back(name);
        }
        if (sink.bundles.empty() || sink.bundles.size() > kMaxSinkBundles) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": bundles= names 1 to ", kMaxSinkBundles, " bundles"));
        }
        std::sort(sink.bundles.begin(), sink.bundles.end());
      } else if (absl::ConsumePrefix(&word, "clusters=")) {
        absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(word);
        if (!selector.ok() || word.empty() || word.size() > 1024) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": clusters=: ",
              selector.ok() ? "a label selector of 1 to 1024 bytes" : selector.status().message()));
        }
        sink.clusters = *std::move(selector);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": \"", word.substr(0, 64),
                         "\" is none of token-file=PATH, credential=NAME, bundles=NAME,..., "
                         "clusters=SELECTOR, details=URL and api=URL"));
      }
    }
    if (words.size() > 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": more than URL, a format and event types"));
    }
    size_t next = 1;
    static constexpr std::pair<const char*, NotifySink::Format> kFormats[] = {
        {"json", NotifySink::Format::kJson},
        {"slack", NotifySink::Format::kSlack},
        {"teams", NotifySink::Format::kTeams},
        {"github", NotifySink::Format::kGitHub},
        {"gitlab", NotifySink::Format::kGitLab},
        {"gitea", NotifySink::Format::kGitea},
        {"forgejo", NotifySink::Format::kGitea},
        {"bitbucket", NotifySink::Format::kBitbucket},
        {"bitbucket-server", NotifySink::Format::kBitbucketServer},
        {"azure-devops", NotifySink::Format::kAzureDevOps},
        // Flux's names for them
        {"bitbucketserver", NotifySink::Format::kBitbucketServer},
        {"azuredevops", NotifySink::Format::kAzureDevOps}};
    for (const auto& [name, format] : kFormats) {
      if (words.size() > next && words[next] == name) {
        sink.format = format;
        ++next;
        break;
      }
    }
    sink.url = std::string(words[0]);
    if (sink.commit_statuses()) {
      // A repository's address as its host's clone button gives it (a user before the
      // host, SSH) is its https address.
      absl::StatusOr<std::string> address = RepositoryAddress(sink.url, sink.format, sink.api_url);
      if (!address.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": ", address.status().message()));
      }
      sink.url = *std::move(address);
    }
    if (!absl::StartsWith(sink.url, "https://") && !absl::StartsWith(sink.url, "http://")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": not an http(s) URL (its scheme is not shown)"));
    }
    const absl::string_view authority = absl::string_view(sink.url).substr(
        sink.url.find("://") + 3,
        sink.url.find_first_of("/?#", sink.url.find("://") + 3) - sink.url.find("://") - 3);
    if (authority.empty() || absl::StrContains(authority, "@")) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, authority.empty() ? ": the URL names no host"
                                   : ": the URL holds credentials (user@): put the secret in "
                                     "the path, as Slack's do, or sign with --notify-secret-file"));
    }
    if (words.size() > next && next == 1 && !absl::StrContains(words[next], '.') &&
        words[next] != "resync") {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"", words[next].substr(0, 64),
                       "\" is neither json, slack nor teams, nor event types (nor github, "
                       "gitlab, gitea, forgejo, bitbucket, bitbucket-server, azure-devops for "
                       "commit statuses)"));
    }
    if (sink.commit_statuses()) {
      if (words.size() > 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            ": a commit-status sink takes no event types: it follows each bundle's rollout"));
      }
      if (sink.token_file.empty() == sink.credential.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": a commit-status sink needs ", sink.token_file.empty() ? "" : "one of ",
            "token-file=PATH or credential=NAME, a token that may set commit statuses"));
      }
      if (sink.clusters.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where,
                         ": clusters= is not for a commit-status sink: a bundle's status says "
                         "whether every cluster it targets runs the commit"));
      }
      if (absl::Status usable = ReadStatusSink(&sink); !usable.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": ", usable.message()));
      }
      // Sources may fetch by the address the line gave (an SSH host of its own).
      if (std::string given = NormalizeRepoUrl(words[0]);
          std::find(sink.repositories.begin(), sink.repositories.end(), given) ==
          sink.repositories.end()) {
        sink.repositories.push_back(std::move(given));
      }
      next = words.size();
    } else if (!sink.token_file.empty() || !sink.credential.empty() || !sink.details_url.empty() ||
               !sink.api_url.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": ",
          !sink.token_file.empty()   ? "token-file="
          : !sink.credential.empty() ? "credential="
          : !sink.api_url.empty()    ? "api="
                                     : "details=",
          " is for commit statuses (github, gitlab, gitea, bitbucket, bitbucket-server, "
          "azure-devops)"));
    }
    if (words.size() > next) {
      for (absl::string_view type : absl::StrSplit(words[next], ',', absl::SkipEmpty())) {
        if (absl::Status known = CheckEventTypeFilter(std::string(type)); !known.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": ", known.message()));
        }
        sink.types.emplace_back(type);
      }
      ++next;
    }
    if (next != words.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"", words[next].substr(0, 64),
                       "\" is neither json nor slack, nor event types"));
    }
    if (sink.types.empty()) {
      sink.types.assign(std::begin(kDefaultNotifyTypes), std::end(kDefaultNotifyTypes));
    }
    if (sinks.size() >= kMaxNotifySinks) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": more than ", kMaxNotifySinks, " sinks"));
    }
    sinks.push_back(std::move(sink));
  }
  return sinks;
}

std::string NotificationBody(const v1::Event& event, NotifySink::Format format) {
  if (format == NotifySink::Format::kJson) {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    std::string json;
    if (google::protobuf::util::MessageToJsonString(event, &json, options).ok()) return json;
    return nlohmann::json{{"type", event.type()}, {"message", event.message()}}.dump();
  }
  if (format == NotifySink::Format::kTeams) {
    // A card: the type as its title, the message, and what it is about as facts.
    nlohmann::json facts = nlohmann::json::array();
    for (const auto& [title, value] :
         {std::pair<const char*, std::string>{"source", event.source()},
          {"bundle", event.bundle()},
          {"cluster", event.cluster()},
          {"commit", event.commit().substr(0, 12)}}) {
      if (!value.empty()) facts.push_back({{"title", title}, {"value", value}});
    }
    nlohmann::json body = nlohmann::json::array({{{"type", "TextBlock"},
                                                  {"text", absl::StrCat("gitfleet ", event.type())},
                                                  {"weight", "Bolder"},
                                                  {"wrap", true}}});
    if (!event.message().empty()) {
      body.push_back({{"type", "TextBlock"}, {"text", event.message()}, {"wrap", true}});
    }
    if (!facts.empty()) body.push_back({{"type", "FactSet"}, {"facts", facts}});
    nlohmann::json card = {{"type", "message"},
                           {"attachments",
                            {{{"contentType", "application/vnd.microsoft.card.adaptive"},
                              {"content",
                               {{"$schema", "http://adaptivecards.io/schemas/adaptive-card.json"},
                                {"type", "AdaptiveCard"},
                                {"version", "1.4"},
                                {"body", body}}}}}}};
    return card.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  // One line, as `gitfleetctl events` prints it.
  std::string text = absl::StrCat("gitfleet ", event.type());
  if (!event.source().empty()) absl::StrAppend(&text, " source=", event.source());
  if (!event.bundle().empty()) absl::StrAppend(&text, " bundle=", event.bundle());
  if (!event.cluster().empty()) absl::StrAppend(&text, " cluster=", event.cluster());
  if (!event.commit().empty()) absl::StrAppend(&text, " commit=", event.commit().substr(0, 12));
  if (!event.message().empty()) absl::StrAppend(&text, ": ", event.message());
  // Not JSON-valid UTF-8 (a file name in a message, say): replaced rather than refused.
  return nlohmann::json{{"text", text}}.dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace);
}

bool NotifySink::operator==(const NotifySink& other) const {
  auto selector = [](const std::optional<LabelSelector>& s) {
    return s.has_value() ? std::optional<std::string>(s->text()) : std::nullopt;
  };
  return std::tie(url, format, types, line, token_file, credential, api_url, status_url,
                  repositories, page_url, bundles, details_url) ==
             std::tie(other.url, other.format, other.types, other.line, other.token_file,
                      other.credential, other.api_url, other.status_url, other.repositories,
                      other.page_url, other.bundles, other.details_url) &&
         selector(clusters) == selector(other.clusters);
}

bool NotifySink::Names(absl::string_view source_url) const {
  return std::binary_search(repositories.begin(), repositories.end(), NormalizeRepoUrl(source_url));
}

StatusRequest CommitStatusRequest(const NotifySink& sink, const std::string& bundle,
                                  const CommitStatus& status, const std::string& token) {
  using Format = NotifySink::Format;
  StatusRequest request;
  request.url = absl::StrReplaceAll(sink.status_url, {{"{commit}", status.commit}});
  // Cut to GitHub's 140 bytes, never inside a character.
  std::string description = status.description;
  if (description.size() > 140) {
    size_t end = 137;
    while (end > 0 && (static_cast<unsigned char>(description[end]) & 0xC0) == 0x80) --end;
    description = absl::StrCat(description.substr(0, end), "...");
  }
  // Each host's word for each state.
  struct Words {
    const char* pending;
    const char* success;
    const char* failure;
    const char* superseded;
  };
  Words words = {"pending", "success", "failure", "pending"};
  switch (sink.format) {
    case Format::kGitLab:
      words = {"pending", "success", "failed", "canceled"};
      break;
    case Format::kGitea:
      words.superseded = "warning";
      break;
    case Format::kBitbucket:
      words = {"INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"};
      break;
    case Format::kBitbucketServer:
      // A version that refuses CANCELLED (before 8) is told INPROGRESS, saying why
      // (Notifier::Post).
      words = {"INPROGRESS", "SUCCESSFUL", "FAILED", "CANCELLED"};
      break;
    case Format::kAzureDevOps:
      words = {"pending", "succeeded", "failed", "notApplicable"};
      break;
    default:
      break;
  }
  const char* state = words.pending;
  switch (status.state) {
    case CommitStatus::State::kPending:
      break;
    case CommitStatus::State::kSuccess:
      state = words.success;
      break;
    case CommitStatus::State::kFailure:
      state = words.failure;
      break;
    case CommitStatus::State::kSuperseded:
      state = words.superseded;
      break;
  }
  const std::string context = absl::StrCat("gitfleet/", bundle);
  const std::string details =
      absl::StrReplaceAll(sink.details_url, {{"{bundle}", bundle}, {"{commit}", status.commit}});
  nlohmann::json body = {{"state", state}, {"description", description}};
  request.headers = {"Content-Type: application/json", "User-Agent: gitfleet"};
  // A token file of USER:SECRET is a user and a password (or app password), as Bitbucket's
  // and Azure DevOps' APIs take them.
  const bool user_and_secret = absl::StrContains(token, ':');
  switch (sink.format) {
    case Format::kGitHub:
    case Format::kGitea:
      body["context"] = context;
      if (!details.empty()) body["target_url"] = details;
      if (sink.format == Format::kGitHub) {
        request.headers.push_back("Accept: application/vnd.github+json");
        request.headers.push_back(absl::StrCat("Authorization: Bearer ", token));
      } else {
        request.headers.push_back(absl::StrCat("Authorization: token ", token));
      }
      break;
    case Format::kGitLab:
      body["name"] = context;
      if (!details.empty()) body["target_url"] = details;
      request.headers.push_back(absl::StrCat("PRIVATE-TOKEN: ", token));
      break;
    case Format::kBitbucket:
    case Format::kBitbucketServer:
      // The key names the status (a later post of it replaces it), at most 40 bytes on
      // Bitbucket Cloud; the link is required: the repository's page without details=.
      body["key"] =
          context.size() <= 40
              ? context
              : absl::StrCat("gitfleet-",
                             absl::BytesToHexString(crypto::Sha256(bundle)).substr(0, 31));
      body["name"] = context;
      body["url"] = details.empty() ? sink.page_url : details;
      request.headers.push_back(
          user_and_secret ? absl::StrCat("Authorization: Basic ", absl::Base64Escape(token))
                          : absl::StrCat("Authorization: Bearer ", token));
      break;
    case Format::kAzureDevOps:
      body["context"] = {{"genre", "gitfleet"}, {"name", bundle}};
      if (!details.empty()) body["targetUrl"] = details;
      // A personal access token goes as a password with no user; a Microsoft Entra token (a
      // JWT: "eyJ...") as a bearer.
      request.headers.push_back(
          absl::StartsWith(token, "eyJ") && std::count(token.begin(), token.end(), '.') == 2
              ? absl::StrCat("Authorization: Bearer ", token)
              : absl::StrCat(
                    "Authorization: Basic ",
                    absl::Base64Escape(user_and_secret ? token : absl::StrCat(":", token))));
      break;
    default:
      break;
  }
  request.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return request;
}

struct Notifier::Worker {
  NotifySink sink;  // its `line` as when it started: see `line`
  std::shared_ptr<EventBus::Subscription> subscription;
  uint64_t skip_through = 0;  // events up to this sequence were before the sink was added
  absl::Time last_post = absl::InfinitePast();  // a GitHub status sink's (its worker's alone)
  // A Bitbucket Data Center that refused CANCELLED (before 8): a superseded commit is told
  // INPROGRESS, saying why (its worker's alone).
  bool refuses_cancelled = false;
  Mutex mu;
  bool woken ABSL_GUARDED_BY(mu) = true;  // the recent events Subscribe queued
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool failing ABSL_GUARDED_BY(mu) = false;  // since its last POST taken
  // Its line in the file now (a line inserted above moves it): its label in
  // gitfleet_notifications_total, and its name in the log.
  int line ABSL_GUARDED_BY(mu) = 0;
  std::string Label() ABSL_LOCKS_EXCLUDED(mu) {
    MutexLock lock(&mu);
    return absl::StrCat(line);
  }
  std::thread thread;
  // A commit-status sink's: what it last posted for each bundle (its worker's alone).
  struct Posted {
    std::string commit;
    CommitStatus::State state = CommitStatus::State::kPending;
  };
  std::map<std::string, Posted> posted;
  // Per bundle, the commit last posted pending and not finished since: when the bundle
  // moves on to a later one, it is told it was superseded (not left "rolling out").
  std::map<std::string, std::string> unfinished;
};

namespace {

// What a commit-status sink listens for: what moves a bundle to another commit or state
// (a render, its rollout, an operator's act). Not the clusters' reports, thousands per
// commit in a big fleet: a bundle judged pending is judged again at each interval.
const std::vector<std::string>& StatusEventTypes() {
  static const auto* types =
      new std::vector<std::string>{"render.", "rollout.", "bundle.", "resync"};
  return *types;
}

}  // namespace

Notifier::Notifier(Options options, EventBus* bus, metrics::Family<metrics::Counter>& outcomes)
    : options_(std::move(options)), bus_(bus), outcomes_(outcomes) {}

Notifier::~Notifier() { Stop(); }

absl::Status Notifier::Start() {
  MutexLock lock(&workers_mu_);
  for (const NotifySink& sink : options_.sinks) {
    absl::StatusOr<std::unique_ptr<Worker>> worker = StartWorker(sink, /*from_now=*/false);
    if (!worker.ok()) return worker.status();
    workers_.push_back(*std::move(worker));
  }
  if (options_.reload != nullptr) {
    supervisor_ = std::thread([this] { Supervise(); });
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Notifier::Worker>> Notifier::StartWorker(const NotifySink& sink,
                                                                        bool from_now) {
  auto worker = std::make_unique<Worker>();
  // A sink added to a running control plane is not sent what happened before it (the
  // bus's recent events, which Subscribe queues for a watcher).
  if (from_now) worker->skip_through = bus_->last_sequence();
  worker->sink = sink;
  {
    MutexLock lock(&worker->mu);
    worker->line = sink.line;
  }
  for (const char* result : {"sent", "failed", "retried"}) {
    outcomes_.Add({{"sink", worker->Label()}, {"result", result}});
  }
  EventBus::Filter filter;
  filter.types = sink.commit_statuses() ? StatusEventTypes() : sink.types;
  filter.bundles = sink.bundles;
  if (sink.clusters.has_value() && options_.concerns != nullptr) {
    filter.allows = [concerns = options_.concerns, clusters = *sink.clusters](
                        const v1::Event& event) { return concerns(event, clusters); };
  }
  Worker* raw = worker.get();
  absl::StatusOr<std::shared_ptr<EventBus::Subscription>> subscription =
      bus_->Subscribe(std::move(filter), [raw] {
        MutexLock lock(&raw->mu);
        raw->woken = true;
      });
  if (!subscription.ok()) return subscription.status();
  worker->subscription = *std::move(subscription);
  worker->thread =
      std::thread([this, raw] { raw->sink.commit_statuses() ? RunStatuses(raw) : Run(raw); });
  return worker;
}

void Notifier::Supervise() {
  NameThisThread("gf-notify-file");
  std::shared_ptr<const std::vector<NotifySink>> applied;
  while (true) {
    {
      MutexLock lock(&supervisor_mu_);
      if (supervisor_mu_.AwaitWithTimeout(
              [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(supervisor_mu_) { return stopping_; },
              options_.reload_interval)) {
        return;
      }
    }
    std::shared_ptr<const std::vector<NotifySink>> now = options_.reload();
    if (now == nullptr || now == applied) continue;
    if (applied == nullptr && *now == options_.sinks) {  // the file as Start read it
      applied = now;
      continue;
    }
    applied = now;
    // A sink whose line is unchanged keeps its worker, and with it what it was sending (the
    // commit statuses it posted), wherever the line moved (its label moves with it); the
    // others stop, finishing a POST in flight, and new ones start.
    MutexLock lock(&workers_mu_);
    auto same = [](const NotifySink& a, const NotifySink& b) {
      NotifySink moved = a;
      moved.line = b.line;
      return moved == b;
    };
    std::vector<std::unique_ptr<Worker>> kept;
    std::vector<bool> running(now->size(), false);
    // Where it was first, then wherever it went (a line given twice pairs each once).
    for (bool anywhere : {false, true}) {
      for (auto& worker : workers_) {
        if (worker == nullptr) continue;
        for (size_t i = 0; i < now->size(); ++i) {
          const NotifySink& sink = (*now)[i];
          if (running[i] || !same(worker->sink, sink) ||
              (!anywhere && worker->Label() != absl::StrCat(sink.line))) {
            continue;
          }
          running[i] = true;
          {
            MutexLock worker_lock(&worker->mu);
            worker->line = sink.line;
          }
          for (const char* result : {"sent", "failed", "retried"}) {
            outcomes_.Add({{"sink", worker->Label()}, {"result", result}});
          }
          kept.push_back(std::move(worker));
          break;
        }
      }
    }
    std::vector<std::unique_ptr<Worker>> gone;
    for (auto& worker : workers_) {
      if (worker != nullptr) gone.push_back(std::move(worker));
    }
    size_t started = 0;
    for (size_t i = 0; i < now->size(); ++i) {
      if (running[i]) continue;
      const NotifySink& sink = (*now)[i];
      absl::StatusOr<std::unique_ptr<Worker>> worker = StartWorker(sink, /*from_now=*/true);
      if (!worker.ok()) {
        GF_LOG(WARNING) << "notify file line " << sink.line << ": " << worker.status();
        continue;
      }
      kept.push_back(*std::move(worker));
      ++started;
    }
    // Stopped once the new ones listen: a line that changed misses no event between them.
    StopWorkers(gone);
    workers_ = std::move(kept);
    GF_LOG(INFO) << "--notify-file: " << workers_.size() - started << " sinks kept, " << started
                 << " started, " << gone.size() << " stopped";
  }
}

void Notifier::StopWorkers(std::vector<std::unique_ptr<Worker>>& workers) {
  // All told first, then joined: each finishes at most its POST in flight, together.
  for (auto& worker : workers) {
    if (worker->subscription != nullptr) worker->subscription->Cancel();
    MutexLock lock(&worker->mu);
    worker->stopping = true;
  }
  for (auto& worker : workers) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

void Notifier::Stop() {
  {
    MutexLock lock(&supervisor_mu_);
    stopping_ = true;
  }
  if (supervisor_.joinable()) supervisor_.join();
  MutexLock lock(&workers_mu_);
  StopWorkers(workers_);
}

void Notifier::Run(Worker* worker) {
  NameThisThread("gf-notify");
  while (true) {
    if (!AwaitWork(worker)) return;
    for (const v1::Event& event : worker->subscription->Take()) {
      if (event.sequence() <= worker->skip_through && event.type() != "resync") continue;
      HttpFetchOptions request;
      request.body = NotificationBody(event, worker->sink.format);
      request.headers = {"Content-Type: application/json", "User-Agent: gitfleet"};
      const std::string secret = worker->sink.format == NotifySink::Format::kJson && options_.secret
                                     ? options_.secret()
                                     : "";
      std::function<void(std::vector<std::string>*)> stamp;
      if (!secret.empty()) {
        request.headers.push_back(
            absl::StrCat("X-Gitfleet-Signature-256: sha256=",
                         absl::BytesToHexString(crypto::HmacSha256(secret, request.body))));
        // Standard Webhooks: one id for the event at every try, each try's own time (a
        // receiver takes a delivery within minutes of its timestamp).
        stamp = [id = absl::StrCat("gitfleet-", event.stream(), "-", event.sequence()), &secret,
                 &body = request.body](std::vector<std::string>* headers) {
          const std::string now = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
          headers->push_back("webhook-id: " + id);
          headers->push_back("webhook-timestamp: " + now);
          headers->push_back("webhook-signature: " +
                             crypto::StandardWebhookSignature(secret, id, now, body));
        };
      }
      if (!Deliver(worker, worker->sink.url, request, nullptr, stamp) && Stopping(worker)) return;
    }
  }
}

void Notifier::RunStatuses(Worker* worker) {
  NameThisThread("gf-notify");
  std::set<std::string> dirty;
  std::set<std::string> pending;  // judged pending: judged again at the next interval
  // Judged pending and waiting for an event (CommitStatus::awaits_event): judged again at
  // that event, and each quiet_interval in case the clusters finished meanwhile.
  std::set<std::string> quiet;
  absl::Time next_quiet = absl::Now() + options_.quiet_interval;
  bool everything = true;  // every bundle is judged at start
  while (true) {
    if (!AwaitWork(worker)) return;
    for (const v1::Event& event : worker->subscription->Take()) {
      if (event.type() == "resync") {
        everything = true;  // events were dropped: any bundle may have moved
      } else if (event.type() == "bundle.removed") {
        worker->posted.erase(event.bundle());
        worker->unfinished.erase(event.bundle());
        dirty.erase(event.bundle());
        pending.erase(event.bundle());
        quiet.erase(event.bundle());
      } else if (!event.bundle().empty()) {
        dirty.insert(event.bundle());
      }
    }
    if (everything && options_.bundles != nullptr) {
      absl::StatusOr<std::vector<std::string>> bundles = options_.bundles();
      if (bundles.ok()) {
        const std::vector<std::string>& only = worker->sink.bundles;
        for (std::string& bundle : *bundles) {
          if (only.empty() || std::binary_search(only.begin(), only.end(), bundle) ||
              MatchesAnyGlob(only, bundle)) {
            dirty.insert(std::move(bundle));
          }
        }
        everything = false;
      }
    }
    dirty.insert(pending.begin(), pending.end());
    if (!quiet.empty() && absl::Now() >= next_quiet) {
      dirty.insert(quiet.begin(), quiet.end());
      next_quiet = absl::Now() + options_.quiet_interval;
    }
    std::set<std::string> again;  // not judged yet (the controller not up)
    for (const std::string& bundle : dirty) {
      auto before = worker->posted.find(bundle);
      const std::string settled =
          before != worker->posted.end() && before->second.state == CommitStatus::State::kSuccess
              ? before->second.commit
              : "";
      absl::StatusOr<CommitStatus> judged = options_.judge != nullptr
                                                ? options_.judge(bundle, settled)
                                                : absl::UnavailableError("no judge");
      if (absl::IsNotFound(judged.status())) {
        worker->posted.erase(bundle);
        worker->unfinished.erase(bundle);
        pending.erase(bundle);
        quiet.erase(bundle);
        continue;
      }
      if (!judged.ok()) {
        again.insert(bundle);
        continue;
      }
      if (judged->commit.empty() || !worker->sink.Names(judged->source_url)) {
        pending.erase(bundle);
        quiet.erase(bundle);
        continue;
      }
      const bool still = judged->state == CommitStatus::State::kPending;
      if (still && !judged->awaits_event) {
        pending.insert(bundle);
      } else {
        pending.erase(bundle);
      }
      if (still && judged->awaits_event) {
        quiet.insert(bundle);
      } else {
        quiet.erase(bundle);
      }
      if (before != worker->posted.end() && before->second.commit == judged->commit &&
          before->second.state == judged->state) {
        continue;
      }
      // A failure (a later commit's render) leaves the earlier commit what the clusters
      // run, and perhaps still rolling out: it is superseded once a later one goes out.
      auto unfinished = worker->unfinished.find(bundle);
      if (unfinished != worker->unfinished.end() && unfinished->second != judged->commit &&
          judged->state != CommitStatus::State::kFailure) {
        CommitStatus superseded;
        superseded.commit = unfinished->second;
        superseded.state = CommitStatus::State::kSuperseded;
        superseded.description =
            absl::StrCat("superseded by ", judged->commit.substr(0, 12),
                         " before it rolled out everywhere: see that commit's status");
        if (Post(worker, bundle, superseded) == Delivery::kFailed && Stopping(worker)) return;
        worker->unfinished.erase(unfinished);
      }
      // A status the API refused (a bad token, a repository not found) is not sent again
      // until it changes: it would be refused at every interval.
      if (Post(worker, bundle, *judged) != Delivery::kFailed) {
        worker->posted[bundle] = {judged->commit, judged->state};
        if (judged->state == CommitStatus::State::kPending) {
          worker->unfinished[bundle] = judged->commit;
        } else if (judged->state == CommitStatus::State::kSuccess) {
          worker->unfinished.erase(bundle);
        }
      } else if (Stopping(worker)) {
        return;
      }
    }
    dirty = std::move(again);
    if (!dirty.empty() || !pending.empty() || !quiet.empty() ||
        (everything && options_.bundles != nullptr)) {
      MutexLock lock(&worker->mu);
      worker->woken = true;
    }
    // A rollout's reports come in bursts: the bundles they name are judged together, at
    // most once per interval.
    if (!Pause(worker, options_.status_interval)) return;
  }
}

bool Notifier::AwaitWork(Worker* worker) {
  MutexLock lock(&worker->mu);
  worker->mu.Await([worker]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(worker->mu) {
    return worker->woken || worker->stopping;
  });
  if (worker->stopping) return false;
  worker->woken = false;
  return true;
}

bool Notifier::Stopping(Worker* worker) {
  MutexLock lock(&worker->mu);
  return worker->stopping;
}

Notifier::Delivery Notifier::Post(Worker* worker, const std::string& bundle,
                                  const CommitStatus& status) {
  absl::StatusOr<std::string> token =
      options_.token ? options_.token(worker->sink) : absl::StatusOr<std::string>("");
  if (!token.ok()) {
    outcomes_.Add({{"sink", worker->Label()}, {"result", "failed"}}).Increment();
    MutexLock lock(&worker->mu);
    if (!worker->failing) {
      GF_LOG(WARNING) << "notify sink " << worker->line << " (notify file line " << worker->line
                      << "): no token: " << token.status().message()
                      << "; asked again at the next status";
      worker->failing = true;
    }
    return Delivery::kFailed;
  }
  // GitHub asks for a second between requests that create content, or it answers with
  // its secondary rate limit: a rollout of many bundles is posted at that pace.
  if (worker->sink.format == NotifySink::Format::kGitHub) {
    const absl::Duration since = absl::Now() - worker->last_post;
    if (since < options_.github_spacing && !Pause(worker, options_.github_spacing - since)) {
      return Delivery::kFailed;
    }
    worker->last_post = absl::Now();
  }
  StatusRequest made = CommitStatusRequest(worker->sink, bundle, status, *token);
  HttpFetchOptions request;
  request.body = std::move(made.body);
  request.headers = std::move(made.headers);
  // Data Center before 8 knows three states: a superseded commit stays in progress there,
  // its description saying why.
  const bool cancelled = worker->sink.format == NotifySink::Format::kBitbucketServer &&
                         status.state == CommitStatus::State::kSuperseded;
  const auto in_progress = [&request] {
    nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
    if (body.is_object()) body["state"] = "INPROGRESS";
    request.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  if (cancelled && worker->refuses_cancelled) in_progress();
  bool refused = false;
  if (Deliver(worker, made.url, request, &refused)) return Delivery::kTaken;
  if (refused && cancelled && !worker->refuses_cancelled) {
    worker->refuses_cancelled = true;
    in_progress();
    refused = false;
    if (Deliver(worker, made.url, request, &refused)) return Delivery::kTaken;
  }
  return refused ? Delivery::kRefused : Delivery::kFailed;
}

bool Notifier::Pause(Worker* worker, absl::Duration duration) {
  MutexLock lock(&worker->mu);
  return !worker->mu.AwaitWithTimeout(
      [worker]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(worker->mu) { return worker->stopping; }, duration);
}

bool Notifier::Deliver(Worker* worker, const std::string& url, const HttpFetchOptions& options,
                       bool* refused, const std::function<void(std::vector<std::string>*)>& stamp) {
  HttpFetchOptions request = options;
  request.method = "POST";
  request.timeout = options_.timeout;
  request.max_bytes = 64 << 10;  // the answer, read for GitLab's refusal alone
  request.follow_redirects = false;
  absl::Duration wait = options_.retry_base;
  int limited_waits = 0;
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<HttpAnswer> answer;
    if (stamp) {
      HttpFetchOptions stamped = request;
      stamp(&stamped.headers);
      answer = HttpFetch(url, stamped);
    } else {
      answer = HttpFetch(url, request);
    }
    std::string error;
    bool final = false;  // no use trying again
    // A rate limit (429, or GitHub's 403 saying so) is waited out as it asks, a few times,
    // without counting as a failed try.
    std::optional<absl::Duration> limited = answer.ok() && limited_waits < kMaxRateLimitWaits
                                                ? RateLimitWait(*answer, absl::Now())
                                                : std::nullopt;
    if (!answer.ok()) {
      error = std::string(answer.status().message());
    } else if (limited.has_value()) {
      error = absl::StrCat("HTTP ", answer->status, ": rate limited, asked to wait ",
                           absl::FormatDuration(*limited));
      ++limited_waits;
      --attempt;
    } else if (worker->sink.format == NotifySink::Format::kGitLab && answer->status == 400 &&
               absl::StrContains(answer->body, "Cannot transition status")) {
      // GitLab refuses a state the commit's status already has (posted before a restart).
    } else if (answer->status < 200 || answer->status > 299) {
      error = absl::StrCat("HTTP ", answer->status);
      // An API refusing the token or the repository says the same at every try.
      final = worker->sink.commit_statuses() && answer->status >= 400 && answer->status < 500 &&
              answer->status != 408 && answer->status != 429;
      if (final) {
        absl::StrAppend(&error, ": ", absl::CHexEscape(answer->body.substr(0, 200)));
      }
    }
    // The URL may be a secret (Slack's): errors name the sink by its line. (A commit
    // status's is not, and its API's answer may name its docs.)
    for (const char* scheme_end : {"https://", "http://"}) {
      if (worker->sink.commit_statuses()) break;
      for (size_t at = error.find(scheme_end); at != std::string::npos;
           at = error.find(scheme_end)) {
        error.replace(at, error.find_first_of(" '\"", at) - at, "(the sink's URL)");
      }
    }
    if (error.empty()) {
      outcomes_.Add({{"sink", worker->Label()}, {"result", "sent"}}).Increment();
      MutexLock lock(&worker->mu);
      if (worker->failing) {
        GF_LOG(INFO) << "notify sink " << worker->line << " takes events again";
        worker->failing = false;
      }
      return true;
    }
    // Logged when a sink starts failing and when an event is given up (at most once per
    // round of tries), not at every try.
    const bool give_up = attempt >= options_.max_attempts || final;
    if (final && refused != nullptr) *refused = true;
    {
      MutexLock lock(&worker->mu);
      if (!worker->failing || give_up) {
        GF_LOG(WARNING) << "notify sink " << worker->line << " (notify file line " << worker->line
                        << "): " << error
                        << (give_up ? absl::StrCat(
                                          "; ",
                                          worker->sink.commit_statuses() ? "a status" : "an event",
                                          " given up after ", attempt, " tries")
                                    : std::string("; trying again"));
        worker->failing = true;
      }
    }
    if (give_up) break;
    outcomes_.Add({{"sink", worker->Label()}, {"result", "retried"}}).Increment();
    if (!Pause(worker, limited.value_or(wait))) return false;
    if (!limited.has_value()) wait = std::min(wait * 2, options_.retry_max);
  }
  outcomes_.Add({{"sink", worker->Label()}, {"result", "failed"}}).Increment();
  return false;
}

}  // namespace gitfleet
