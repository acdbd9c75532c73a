#include "controlplane/source/github_app.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/git_fixture.h"
#include "tests/util/github_api.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Whether `signature` is `key_pem`'s RS256 signature of `data` (the public half checks it).
bool Verifies(const std::string& key_pem, const std::string& data, const std::string& signature) {
  BIO* bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) return false;
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestVerifyInit(context, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(context, reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) == 1;
  EVP_MD_CTX_free(context);
  EVP_PKEY_free(key);
  return ok;
}

TEST(GitHubAppTest, TheJwtIsWhatGitHubAsksFor) {
  const std::string dir = testing::TempDir("app-key");
  std::string out;
  ASSERT_EQ(testing::Run(absl::StrCat("openssl genpkey -algorithm RSA -pkeyopt "
                                      "rsa_keygen_bits:2048 -out '",
                                      dir, "/app.pem' 2>/dev/null"),
                         &out),
            0)
      << out;
  std::string pem;
  ASSERT_EQ(testing::Run(absl::StrCat("cat '", dir, "/app.pem'"), &pem), 0);
  GitHubApp app{"1234", "42", pem};
  ASSERT_TRUE(CheckGitHubApp(app).ok());
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<std::string> jwt = GitHubAppJwt(app, now);
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  std::vector<std::string> parts = absl::StrSplit(*jwt, '.');
  ASSERT_EQ(parts.size(), 3u);
  std::string header, claims, signature;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(parts[0], &header));
  ASSERT_TRUE(absl::WebSafeBase64Unescape(parts[1], &claims));
  ASSERT_TRUE(absl::WebSafeBase64Unescape(parts[2], &signature));
  EXPECT_EQ(nlohmann::json::parse(header)["alg"], "RS256");
  const nlohmann::json c = nlohmann::json::parse(claims);
  EXPECT_EQ(c["iss"], "1234");
  EXPECT_EQ(c["iat"], 1700000000 - 60) << "a minute back, for clock drift";
  EXPECT_EQ(c["exp"], 1700000000 + 540) << "at most 10 minutes after it was issued";
  EXPECT_TRUE(Verifies(pem, parts[0] + "." + parts[1], signature));
  EXPECT_EQ(jwt->find('='), std::string::npos) << "unpadded";
}

TEST(GitHubAppTest, WhatCannotWorkIsRefusedByName) {
  const struct {
    GitHubApp app;
    const char* says;
  } cases[] = {
      {{"12a", "42", "x"}, "githubAppID is not a number"},
      {{"12", "", "x"}, "githubAppInstallationID is not a number"},
      {{"12", "42", "not a key"}, "githubAppPrivateKey is not an RSA private key"},
      {{"12", "42", "x", "http://github.example.com/api/v3"}, "is not https"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(std::string(CheckGitHubApp(c.app).message()), HasSubstr(c.says)) << c.says;
  }
}

// Against a stand-in for GitHub's API that checks the JWT as GitHub does: a token for the
// installation, kept while it lasts; a key not the App's, or another installation, refused
// with a hint and nothing secret.
TEST(GitHubAppTest, AnInstallationTokenIsFetchedOnceAndKept) {
  testing::FakeGitHubApi api(testing::TempDir("github"));
  if (absl::Status s = api.Start("1234", "42", "ghs_installation"); !s.ok()) GTEST_SKIP() << s;
  GitHubApp app{"1234", "42", api.private_key_pem(), api.url()};
  absl::StatusOr<GitHubAppToken> token = FetchGitHubAppToken(app, absl::Seconds(10));
  ASSERT_TRUE(token.ok()) << token.status() << api.Log();
  EXPECT_EQ(token->token, "ghs_installation");
  EXPECT_GT(token->expires, absl::Now() + absl::Minutes(55));
  token = FetchGitHubAppToken(app, absl::Seconds(10));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Count(api.Log(), "jwt=ok"), 1) << "kept, not fetched again\n" << api.Log();

  GitHubApp wrong_key{"1234", "42", api.other_key_pem(), api.url()};
  absl::Status refused = FetchGitHubAppToken(wrong_key, absl::Seconds(10)).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("GitHub App 1234 (installation 42)"));
  EXPECT_THAT(refused.message(), HasSubstr("answered HTTP 401 (A JSON web token could not be "
                                           "decoded): is githubAppPrivateKey this App's"));
  EXPECT_THAT(refused.message(), Not(HasSubstr("eyJ"))) << "no JWT in the error";
  GitHubApp elsewhere{"1234", "7", api.private_key_pem(), api.url()};
  EXPECT_THAT(std::string(FetchGitHubAppToken(elsewhere, absl::Seconds(10)).status().message()),
              HasSubstr("HTTP 404 (Not Found): is the App installed there"));
}

}  // namespace
}  // namespace gitfleet
