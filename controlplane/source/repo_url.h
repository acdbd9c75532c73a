#ifndef GITFLEET_CONTROLPLANE_SOURCE_REPO_URL_H_
#define GITFLEET_CONTROLPLANE_SOURCE_REPO_URL_H_

// Which repository a URL names, however it is written: webhooks match pushes to sources
// with it, and the controller finds sources that read the same commits.

#include <string>

#include "absl/strings/string_view.h"

namespace gitfleet {

// A repository URL in the one form every way of writing it shares: no scheme, user or
// port, lower case, no trailing ".git" or "/". "git@GitHub.com:Org/App.git",
// "https://github.com/org/app" and "ssh://git@github.com:22/org/app.git" are all
// "github.com/org/app". Azure DevOps' SSH and visualstudio.com forms become its
// dev.azure.com HTTPS form ("dev.azure.com/org/project/_git/repo").
std::string NormalizeRepoUrl(absl::string_view url);

// A repository of an OCI registry in the one form the controller keeps for the bundles
// whose charts come from it and registry webhooks name it: "oci://HOST/PATH", the host in
// lower case, no slash at either end of the path.
std::string OciRepositoryKey(absl::string_view host, absl::string_view repository);

// A URL prefix as the flags that trust or give credentials to prefixes read it: one that
// names a host alone ("https://charts.example.com") ends with "/", so it means that host,
// not every host whose name starts the same.
std::string WholeHostPrefix(std::string prefix);

// The host of a URL with its port ("127.0.0.1:5000", "[::1]:80"); "" without "://".
absl::string_view UrlAuthority(absl::string_view url);

// Whether a host ("127.0.0.1:5000", "localhost", "[::1]:80") is this machine: a server
// there may be spoken to in plain HTTP, as Docker speaks to a registry there.
bool IsLoopbackHost(absl::string_view host);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_REPO_URL_H_
