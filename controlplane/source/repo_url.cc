#include "controlplane/source/repo_url.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gitfleet {
namespace {

// Azure DevOps Services names one repository on three hosts: HTTPS on dev.azure.com
// (ORG/PROJECT/_git/REPO), SSH on ssh.dev.azure.com (v3/ORG/PROJECT/REPO), and the older
// ORG.visualstudio.com (PROJECT/_git/REPO, once with DefaultCollection/ before it) with
// SSH on vs-ssh.visualstudio.com. Each becomes the dev.azure.com form, which is what a
// push's remoteUrl says. `path` is otherwise normalized; anything else is returned as is.
std::string AzureDevOpsForm(absl::string_view path) {
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  const absl::string_view host = parts[0];
  if ((host == "ssh.dev.azure.com" || host == "vs-ssh.visualstudio.com") && parts.size() == 5 &&
      parts[1] == "v3") {
    return absl::StrCat("dev.azure.com/", parts[2], "/", parts[3], "/_git/", parts[4]);
  }
  absl::string_view org = host;
  if (host != "vs-ssh.visualstudio.com" && absl::ConsumeSuffix(&org, ".visualstudio.com") &&
      !org.empty() && org.find('.') == absl::string_view::npos) {
    size_t first = 1;
    if (parts.size() > first && parts[first] == "defaultcollection") ++first;
    if (parts.size() == first + 3 && parts[first + 1] == "_git") {
      return absl::StrCat("dev.azure.com/", org, "/", parts[first], "/_git/", parts[first + 2]);
    }
  }
  return std::string(path);
}

}  // namespace

std::string NormalizeRepoUrl(absl::string_view url) {
  std::string text = absl::AsciiStrToLower(absl::StripAsciiWhitespace(url));
  absl::string_view rest = text;
  const size_t scheme = rest.find("://");
  const bool has_scheme = scheme != absl::string_view::npos;
  if (has_scheme) rest.remove_prefix(scheme + 3);
  // user@ before the host
  const size_t at = rest.find('@');
  const size_t slash = rest.find('/');
  if (at != absl::string_view::npos && (slash == absl::string_view::npos || at < slash)) {
    rest.remove_prefix(at + 1);
  }
  std::string host_and_path(rest);
  const size_t first_slash = host_and_path.find('/');
  // An IPv6 literal ([::1]) holds colons of its own: the port or path comes after it.
  const size_t bracket = host_and_path[0] == '[' ? host_and_path.find(']') : std::string::npos;
  const size_t colon = host_and_path.find(':', bracket != std::string::npos ? bracket : size_t{0});
  if (colon != std::string::npos && (first_slash == std::string::npos || colon < first_slash)) {
    std::string after = host_and_path.substr(colon + 1);
    size_t digits = 0;
    while (digits < after.size() && absl::ascii_isdigit(after[digits])) ++digits;
    if (has_scheme && digits > 0 && (digits == after.size() || after[digits] == '/')) {
      host_and_path.erase(colon, digits + 1);  // host:port/path
    } else {
      host_and_path[colon] = '/';  // scp-like host:path
    }
  }
  absl::string_view out = host_and_path;
  while (absl::ConsumeSuffix(&out, "/")) {
  }
  absl::ConsumeSuffix(&out, ".git");
  while (absl::ConsumeSuffix(&out, "/")) {
  }
  return AzureDevOpsForm(out);
}

std::string OciRepositoryKey(absl::string_view host, absl::string_view repository) {
  return absl::StrCat("oci://", absl::AsciiStrToLower(host), "/",
                      absl::StripSuffix(absl::StripPrefix(repository, "/"), "/"));
}

std::string WholeHostPrefix(std::string prefix) {
  const size_t scheme = prefix.find("://");
  if (scheme != std::string::npos && prefix.find('/', scheme + 3) == std::string::npos) {
    prefix += "/";
  }
  return prefix;
}

absl::string_view UrlAuthority(absl::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == absl::string_view::npos) return "";
  url.remove_prefix(scheme + 3);
  return url.substr(0, url.find_first_of("/?#"));
}

bool IsLoopbackHost(absl::string_view host) {
  if (const size_t at = host.rfind('@'); at != absl::string_view::npos) host.remove_prefix(at + 1);
  if (absl::StartsWith(host, "[::1]")) return true;
  host = host.substr(0, host.find(':'));
  return host == "localhost" || absl::StartsWith(host, "127.");
}

}  // namespace gitfleet
