#ifndef GITFLEET_CONTROLPLANE_RENDER_FETCH_SCOPE_H_
#define GITFLEET_CONTROLPLANE_RENDER_FETCH_SCOPE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gitfleet {

// A team's bundle (Bundle.scope.repos): what its render fetches from outside its repository
// (a chart, the archive a chart repository's index lists for it, its dependencies,
// kustomize's remote bases and files) must be under one of `repos` as well as trusted by
// the control plane: another team's private repository is not the control plane's to read
// for it. Empty: what the control plane trusts.
struct FetchScope {
  std::vector<std::string> repos;
  // When set, receives the URL of each Git repository the render reads at a ref that can
  // move (kustomize's remote bases and Fleet's git:: charts at a branch or tag, as
  // RemoteBaseFetcher::Fetch is asked), and each OCI registry repository a chart is pulled
  // from (OciRepositoryKey: a tag, or a version range's newest, can change), whether or not
  // the fetch succeeds: a push webhook naming one renders the bundle again at once
  // (Controller::RenderReadersSoon).
  std::vector<std::string>* repos_read = nullptr;
  // PermissionDenied naming `what`, the URL and the scope when the URL is outside it.
  absl::Status Check(const std::string& url, absl::string_view what) const;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_FETCH_SCOPE_H_
