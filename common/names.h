#ifndef GITFLEET_COMMON_NAMES_H_
#define GITFLEET_COMMON_NAMES_H_

// The name rules, each in one place, so a name refused in one place is refused everywhere.
//
// gitfleet's own names (sources, bundles, namespaces it creates) are DNS labels, as
// Kubernetes namespaces and label values are. Cluster names are wider, 1-63 of
// [A-Za-z0-9._-]: they come from the fleet's existing infrastructure (kubeconfig contexts,
// "prod.eu-1"), and are never used as a Kubernetes name. The API, the CLI, the agent and
// the agent protocol all check with these two functions.
//
//   GF_RETURN_IF_ERROR(ValidateName("bundle", name));
//   GF_RETURN_IF_ERROR(ValidateClusterName(hello.cluster()));

#include <fnmatch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gitfleet {

// InvalidArgument naming `what` and the rule when `name` is not 1-63 lower-case letters,
// digits or '-', starting and ending with a letter or digit.
absl::Status ValidateName(const std::string& what, const std::string& name);

// InvalidArgument naming the rule when `name` is not 1-63 of [A-Za-z0-9._-].
absl::Status ValidateClusterName(const std::string& name);

// A Rancher Fleet GitRepo's name (Source.fleet_gitrepo): a Kubernetes name Fleet also
// writes as a label value, so 1-63 lower-case letters, digits, '-' or '.', starting and
// ending with a letter or digit. InvalidArgument naming `what` and the rule otherwise.
absl::Status ValidateGitRepoName(const std::string& what, const std::string& name);
// An Argo CD Application's name, as its parameter overrides' file names it
// (.argocd-source-NAME.yaml): 1-253 lower-case letters, digits, '-' or '.' (a Kubernetes
// object's name), or Argo CD's NAMESPACE_NAME for an Application outside its namespace.
// InvalidArgument naming `what` otherwise.
absl::Status ValidateArgoCdAppName(const std::string& what, const std::string& name);

// A commit as a person gives it (`--commit`, GetRolloutRequest.commit): its id, or its first
// digits as `git log --oneline` shows them, 4 to 64 hexadecimal digits (a SHA-256
// repository's ids are 64), either case. InvalidArgument naming `what` otherwise, quoting at
// most 64 characters, escaped.
absl::Status ValidateCommitDigits(const std::string& what, const std::string& digits);

// A Kubernetes service account a bundle is applied as: "NAME", in the bundle's target
// namespace, or "NAMESPACE/NAME". InvalidArgument naming the rule when the namespace is not
// a DNS label (ValidateName) or the name not a DNS subdomain (1-253 lower-case letters,
// digits, '-' or '.', starting and ending with a letter or digit).
absl::Status ValidateServiceAccount(const std::string& account);

// The user the API server knows service account `account` (valid, as above) as:
// "system:serviceaccount:NAMESPACE:NAME", its namespace `default_namespace` when it names
// none. "" when it names none and `default_namespace` is empty.
std::string ServiceAccountUser(const std::string& account, const std::string& default_namespace);

// Whether `name` matches one of `globs`, shell globs as a team's scope writes them
// ("team-a-*": '*', '?' and '[...]', fnmatch's without flags).
template <typename Globs>
bool MatchesAnyGlob(const Globs& globs, const std::string& name) {
  return std::any_of(globs.begin(), globs.end(), [&name](const std::string& glob) {
    return fnmatch(glob.c_str(), name.c_str(), 0) == 0;
  });
}

// A kind pattern of a team's scope (kinds=, deny-kinds=, cluster-kinds=): "[GROUP/]KIND",
// each part a glob as MatchesAnyGlob reads it; no group is the core group ("ConfigMap",
// "apps/Deployment", "rbac.authorization.k8s.io/*", "*/*"), as Argo CD's project resource
// lists name a group and a kind. InvalidArgument naming the rule when it is not one, and
// for a built-in kind of another group written without it ("Deployment": did you mean
// apps/Deployment?), which would match nothing.
absl::Status ValidateKindPattern(const std::string& pattern);

// Whether an object of API group `group` ("" for the core group) and kind `kind` matches
// one of `patterns` (valid, as above).
bool MatchesAnyKind(const std::vector<std::string>& patterns, const std::string& group,
                    const std::string& kind);

// The API group of an apiVersion: "apps" of "apps/v1", "" of "v1".
std::string ApiGroupOf(absl::string_view api_version);

// `names` for a message, in the order given: "a, b, c", or past `most` the first `most`
// and "and N more" ("a, b and 3 more"). "none" when empty.
std::string ListNames(const std::vector<std::string>& names, size_t most = 10);

// `text` as one /bin/sh word, for a command a message suggests or a test runs: as it is
// when the shell reads none of it specially (`env=dev`, `apps/web`), else single-quoted
// (`'env in (a,b)'`, `'Fleet'\''s'`).
std::string ShellWord(absl::string_view text);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_NAMES_H_
