#ifndef GITFLEET_CONTROLPLANE_SOURCE_GITHUB_APP_H_
#define GITFLEET_CONTROLPLANE_SOURCE_GITHUB_APP_H_

// A GitHub App as a Git credential, as Argo CD's and Flux's repository Secrets carry it
// (githubAppID, githubAppInstallationID, githubAppPrivateKey, and for GitHub Enterprise
// githubAppEnterpriseBaseUrl or githubAppBaseURL): the App signs a JWT with its private key
// (RS256), trades it for an installation access token at the GitHub API, and Git over HTTPS
// takes that token as the password of "x-access-token". Tokens last an hour; one is kept
// per App installation until 5 minutes before it expires.
//
//   GF_ASSIGN_OR_RETURN(GitHubAppToken token, FetchGitHubAppToken(app, absl::Seconds(30)));
//   // token.token: "ghs_...", sent as x-access-token's password

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gitfleet {

struct GitHubApp {
  std::string app_id;           // digits
  std::string installation_id;  // digits
  std::string private_key_pem;  // the App's RSA private key (PEM)
  // The API: https://api.github.com, or GitHub Enterprise's https://HOST/api/v3.
  std::string base_url = "https://api.github.com";
  std::string ca_pem;  // CAs trusted for the API on top of the system's (the credential's)
};

// InvalidArgument naming what is wrong: an id that is not digits, a key that is no RSA
// private key in PEM, a base URL that is not https (plain http only on loopback).
absl::Status CheckGitHubApp(const GitHubApp& app);

// The App's JWT for `now` (issued a minute before, for clock drift; expiring 9 minutes
// after), signed RS256 with its key.
absl::StatusOr<std::string> GitHubAppJwt(const GitHubApp& app, absl::Time now);

struct GitHubAppToken {
  std::string token;
  absl::Time expires;
};

// An installation access token for `app`: the one kept while it has 5 minutes left, else a
// new one from POST BASE/app/installations/ID/access_tokens. PermissionDenied when the API
// refuses the App (its message names the App and installation, never the key or the
// JWT); Unavailable when it cannot be reached.
absl::StatusOr<GitHubAppToken> FetchGitHubAppToken(const GitHubApp& app, absl::Duration timeout);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_GITHUB_APP_H_
