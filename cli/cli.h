#ifndef GITFLEET_CLI_CLI_H_
#define GITFLEET_CLI_CLI_H_

// gitfleetctl: drives a control plane through its admin API.
//
//   int code = RunCli({"--server=127.0.0.1:7070", "status", "-o", "json"}, std::cout, std::cerr);
//
// Exit codes: 0 success, 1 the control plane refused or failed the request, 2 bad usage.

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/render/chart_fetcher.h"
#include "controlplane/render/sops.h"
#include "controlplane/source/git_credentials.h"
#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet::cli {

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Every command's words ("source add", "status"), as the command table lists them.
std::vector<std::string> CommandNames();

// What `gitfleetctl render` prints: the objects `bundle` (its path, engine, values and
// engine options) renders for `cluster` (its name and labels) at `ref` of the repository
// at `url`, after substitution, as multi-document YAML in key order. Git caches and
// scratch copies go under `cache_dir`. `notes` receives what the render said without
// failing (files skipped as never manifests, a generated kustomization). With
// `submodules`, the submodules the commit names are fetched and read, as a source with
// --submodules reads them. Charts fleet.yaml names outside the repository are fetched as
// `charts` allows (by default from nowhere), as the control plane's --chart-repositories
// and --chart-credentials; kustomize's remote bases from the prefixes `remote_bases` trusts,
// as its --kustomize-remote-bases, with the credentials (in charts.credentials_dir)
// `git_credentials` gives their URLs, as its --git-credentials. With `lfs`, files kept in
// Git LFS are read as a source with --lfs reads them. A Fleet folder's chart is released
// under Fleet's name for it in the GitRepo `fleet_gitrepo` (as a source's fleet_gitrepo),
// none given: under the bundle's name.
absl::StatusOr<std::string> RenderLocally(const std::string& url, const std::string& ref,
                                          const v1::Bundle& bundle, const v1::ClusterInfo& cluster,
                                          const std::string& cache_dir,
                                          std::vector<std::string>* notes = nullptr,
                                          bool submodules = false, const SopsKeys& sops_keys = {},
                                          ChartFetchOptions charts = {},
                                          std::vector<std::string> remote_bases = {},
                                          CredentialPrefixes git_credentials = {}, bool lfs = false,
                                          const std::string& fleet_gitrepo = "");

}  // namespace gitfleet::cli

#endif  // GITFLEET_CLI_CLI_H_
