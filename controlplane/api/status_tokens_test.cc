#include "controlplane/api/status_tokens.h"

#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/git_fixture.h"
#include "tests/util/github_api.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

// A --credentials-dir credential: one file per part, as a mounted Secret holds them.
void WriteCredential(const std::string& dir, const std::string& name,
                     const std::vector<std::pair<std::string, std::string>>& parts) {
  mkdir(dir.c_str(), 0700);
  mkdir((dir + "/" + name).c_str(), 0700);
  for (const auto& [part, value] : parts) std::ofstream(dir + "/" + name + "/" + part) << value;
}

std::vector<NotifySink> Sinks(const std::string& text) {
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(text);
  EXPECT_TRUE(sinks.ok()) << sinks.status();
  return sinks.ok() ? *sinks : std::vector<NotifySink>{};
}

TEST(StatusTokensTest, ATokenFileOrACredentialGivesEachSinkItsToken) {
  const std::string dir = testing::TempDir("status-tokens");
  std::ofstream(dir + "/token") << "ghp_from_the_file\n";
  const std::string credentials = dir + "/credentials";
  WriteCredential(credentials, "gitlab", {{"username", "oauth2"}, {"password", "glpat-secret"}});
  WriteCredential(credentials, "bitbucket", {{"username", "jane"}, {"password", "app-pass"}});
  WriteCredential(credentials, "gitea", {{"bearerToken", "gitea-bearer"}});
  std::vector<NotifySink> sinks =
      Sinks(absl::StrCat("https://github.com/acme/fleet github token-file=", dir, "/token\n",
                         "https://gitlab.com/acme/fleet gitlab credential=gitlab\n",
                         "https://bitbucket.org/acme/fleet bitbucket credential=bitbucket\n",
                         "https://codeberg.org/acme/fleet forgejo credential=gitea\n"));
  ASSERT_EQ(sinks.size(), 4u);
  absl::StatusOr<std::unique_ptr<StatusTokens>> tokens =
      StatusTokens::Open(sinks, credentials, absl::Seconds(10));
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(*(*tokens)->Token(sinks[0]), "ghp_from_the_file");
  EXPECT_EQ(*(*tokens)->Token(sinks[1]), "glpat-secret");   // the password is the token
  EXPECT_EQ(*(*tokens)->Token(sinks[2]), "jane:app-pass");  // Bitbucket takes both
  EXPECT_EQ(*(*tokens)->Token(sinks[3]), "gitea-bearer");
  // Read at each post: a rotated credential is followed.
  WriteCredential(credentials, "gitlab", {{"username", "oauth2"}, {"password", "glpat-rotated"}});
  EXPECT_EQ(*(*tokens)->Token(sinks[1]), "glpat-rotated");
}

// A GitHub App's installation token, minted where the sink posts (GitHub Enterprise's API,
// here on loopback) when the credential names no API, and kept.
TEST(StatusTokensTest, AGitHubAppMintsItsInstallationToken) {
  const std::string dir = testing::TempDir("status-tokens-app");
  ASSERT_EQ(mkdir((dir + "/api").c_str(), 0700), 0);
  testing::FakeGitHubApi api(dir + "/api");
  if (absl::Status s = api.Start("1234", "42", "ghs_installation"); !s.ok()) GTEST_SKIP() << s;
  const std::string credentials = dir + "/credentials";
  WriteCredential(credentials, "app",
                  {{"githubAppID", "1234"},
                   {"githubAppInstallationID", "42"},
                   {"githubAppPrivateKey", api.private_key_pem()}});
  const std::string host = api.url().substr(0, api.url().find("/api/v3"));  // http://127.0.0.1:P
  std::vector<NotifySink> sinks = Sinks(absl::StrCat(host, "/acme/fleet github credential=app\n"));
  ASSERT_EQ(sinks.size(), 1u);
  absl::StatusOr<std::unique_ptr<StatusTokens>> tokens =
      StatusTokens::Open(sinks, credentials, absl::Seconds(10));
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  absl::StatusOr<std::string> token = (*tokens)->Token(sinks[0]);
  ASSERT_TRUE(token.ok()) << token.status() << api.Log();
  EXPECT_EQ(*token, "ghs_installation");
  EXPECT_EQ(*(*tokens)->Token(sinks[0]), "ghs_installation");
  EXPECT_THAT(api.Log(), HasSubstr("jwt=ok"));
  // Another App's key: the API's refusal, and the post is tried again later.
  WriteCredential(credentials, "app", {{"githubAppPrivateKey", api.other_key_pem()}});
  absl::Status refused = (*tokens)->Token(sinks[0]).status();
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(refused.message(), HasSubstr("GitHub App 1234 (installation 42)"));
}

TEST(StatusTokensTest, ACredentialThatCannotGiveATokenStopsTheStart) {
  const std::string dir = testing::TempDir("status-tokens-bad");
  const std::string credentials = dir + "/credentials";
  WriteCredential(credentials, "hosts", {{"known_hosts", "example.com ssh-ed25519 AAAA\n"}});
  WriteCredential(credentials, "app",
                  {{"githubAppID", "1"},
                   {"githubAppInstallationID", "2"},
                   {"githubAppPrivateKey", "not a key"}});
  const std::pair<std::string, std::string> kBad[] = {
      {"https://gitlab.com/a/b gitlab credential=missing\n", "credential missing not found"},
      {"https://gitlab.com/a/b gitlab credential=hosts\n", "holds no token"},
      {"https://gitlab.com/a/b gitlab token-file=" + dir + "/none\n", "token-file"},
      {"https://github.com/a/b github credential=app\n", "credential app"},
  };
  for (const auto& [text, error] : kBad) {
    std::vector<NotifySink> sinks = Sinks(text);
    absl::Status refused = StatusTokens::Open(sinks, credentials, absl::Seconds(1)).status();
    EXPECT_FALSE(refused.ok()) << text;
    EXPECT_THAT(refused.message(), HasSubstr(error)) << text;
    EXPECT_THAT(refused.message(), HasSubstr("--notify-file line 1")) << text;
  }
  std::vector<NotifySink> sinks = Sinks("https://gitlab.com/a/b gitlab credential=hosts\n");
  EXPECT_THAT(std::string(StatusTokens::Open(sinks, "", absl::Seconds(1)).status().message()),
              HasSubstr("no --credentials-dir"));
}

}  // namespace
}  // namespace gitfleet
