#ifndef GITFLEET_TESTS_UTIL_GITHUB_API_H_
#define GITFLEET_TESTS_UTIL_GITHUB_API_H_

// The part of GitHub's API a GitHub App credential speaks to, for tests, on loopback:
// POST /api/v3/app/installations/ID/access_tokens answers an installation token when the
// request carries a JWT the App's key signed (RS256, checked with Python's cryptography),
// whose issuer is the App and which is current; 401 otherwise (as GitHub answers a bad
// JWT), 404 for another installation. Each request is logged as "POST path jwt=ok|bad".
//
//   FakeGitHubApi api(TempDir("github"));
//   if (absl::Status s = api.Start("1234", "42", "ghs_token"); !s.ok()) GTEST_SKIP() << s;
//   // credential: githubAppID 1234, githubAppInstallationID 42,
//   // githubAppPrivateKey api.private_key_pem(), githubAppEnterpriseBaseUrl api.url()

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "tests/util/process.h"

namespace gitfleet::testing {

class FakeGitHubApi {
 public:
  explicit FakeGitHubApi(std::string root);
  // Makes the App's key (RSA 2048) and starts serving. Unavailable when python3 or its
  // cryptography module is missing.
  absl::Status Start(const std::string& app_id, const std::string& installation_id,
                     const std::string& token);
  std::string url() const;  // http://127.0.0.1:PORT/api/v3
  const std::string& private_key_pem() const { return key_; }
  // Another RSA key, which GitHub would not take for the App.
  const std::string& other_key_pem() const { return other_key_; }
  std::string Log() const;

 private:
  std::string root_;
  std::string key_;
  std::string other_key_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_GITHUB_API_H_
