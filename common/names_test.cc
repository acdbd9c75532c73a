#include "common/names.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

TEST(ValidateNameTest, AcceptsDnsLabels) {
  for (const std::string& name : {std::string("a"), std::string("web"), std::string("web-1"),
                                  std::string("0abc"), std::string(63, 'x')}) {
    EXPECT_TRUE(ValidateName("bundle", name).ok()) << name;
  }
}

TEST(ValidateNameTest, RefusesEverythingElseNamingWhat) {
  for (const std::string& name :
       {std::string(), std::string(64, 'x'), std::string("Web"), std::string("-web"),
        std::string("web-"), std::string("a_b"), std::string("a.b"), std::string("a/b"),
        std::string("a\nb"), std::string("a\0b", 3)}) {
    EXPECT_THAT(ValidateName("bundle", name),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bundle name")))
        << name;
  }
}

TEST(CommitDigitsTest, TakesAnIdOrItsFirstDigitsAndNothingElse) {
  for (const std::string& digits :
       {std::string("0123"), std::string("89abcdef"), std::string("89ABCDEF"), std::string(40, 'a'),
        std::string(64, 'f')}) {
    EXPECT_TRUE(ValidateCommitDigits("--commit", digits).ok()) << digits;
  }
  for (const std::string& digits :
       {std::string(), std::string("abc"), std::string(65, 'a'), std::string("main"),
        std::string("12 45"), std::string("abcd\n")}) {
    EXPECT_THAT(ValidateCommitDigits("--commit", digits),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("want a commit id, or its first digits (at least 4)")))
        << digits;
  }
  EXPECT_THAT(ValidateCommitDigits("commit", std::string(4096, 'x')).message().size(),
              ::testing::Lt(200u));
}

TEST(GitRepoNameTest, TakesWhatFleetNamesAGitRepoAndNothingElse) {
  for (const std::string& name : {std::string("a"), std::string("my.repo"),
                                  std::string("fleet-infra-2"), std::string(63, 'x')}) {
    EXPECT_TRUE(ValidateGitRepoName("--fleet-gitrepo", name).ok()) << name;
  }
  for (const std::string& name :
       {std::string(), std::string(64, 'x'), std::string("My-Repo"), std::string(".repo"),
        std::string("repo-"), std::string("a_b"), std::string("a/b"), std::string("a b")}) {
    EXPECT_THAT(ValidateGitRepoName("--fleet-gitrepo", name),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("--fleet-gitrepo \"" + name.substr(0, 64) + "\" must be")))
        << name;
  }
}

TEST(ServiceAccountTest, AcceptsNamesAndNamespacedNames) {
  for (const std::string& account :
       {std::string("deployer"), std::string("team-a/deployer"), std::string("ci.bot-1"),
        std::string("a/") + std::string(253, 'x')}) {
    EXPECT_TRUE(ValidateServiceAccount(account).ok()) << account;
  }
  EXPECT_EQ(ServiceAccountUser("deployer", "team-a"), "system:serviceaccount:team-a:deployer");
  EXPECT_EQ(ServiceAccountUser("ops/deployer", "team-a"), "system:serviceaccount:ops:deployer");
  EXPECT_EQ(ServiceAccountUser("deployer", ""), "");
  EXPECT_EQ(ServiceAccountUser("", "team-a"), "");
}

TEST(ServiceAccountTest, RefusesWhatTheApiWouldNotKnowOrAHeaderCouldCarry) {
  for (const std::string& account :
       {std::string(), std::string("Deployer"), std::string("a/b/c"), std::string("/deployer"),
        std::string("team_a/deployer"), std::string("deployer-"), std::string(".deployer"),
        std::string(254, 'x'), std::string("a:b"), std::string("a\r\nX-Evil: 1"),
        std::string("a b")}) {
    EXPECT_THAT(ValidateServiceAccount(account),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("service account")))
        << account;
  }
}

TEST(KindPatternTest, NamesAGroupAndAKindEachAGlob) {
  for (const char* pattern :
       {"ConfigMap", "Secret", "*", "apps/Deployment", "rbac.authorization.k8s.io/*", "*/*",
        "*.example.com/Widget", "batch/?ob", "monitoring.coreos.com/ServiceMonitor"}) {
    EXPECT_TRUE(ValidateKindPattern(pattern).ok()) << pattern;
  }
  const std::vector<std::string> patterns = {"ConfigMap", "apps/*", "*.example.com/Widget"};
  EXPECT_TRUE(MatchesAnyKind(patterns, "", "ConfigMap"));
  EXPECT_FALSE(MatchesAnyKind(patterns, "", "Secret"));
  // No group is the core group alone: a custom kind named like a core one is not it.
  EXPECT_FALSE(MatchesAnyKind(patterns, "evil.io", "ConfigMap"));
  EXPECT_TRUE(MatchesAnyKind(patterns, "apps", "Deployment"));
  EXPECT_FALSE(MatchesAnyKind(patterns, "apps.evil.io", "Deployment"));
  EXPECT_TRUE(MatchesAnyKind(patterns, "team.example.com", "Widget"));
  EXPECT_FALSE(MatchesAnyKind(patterns, "example.com", "Widget"));
  EXPECT_TRUE(MatchesAnyKind({"*/*"}, "", "Secret"));  // every group, the core one too
  EXPECT_FALSE(MatchesAnyKind({}, "", "Secret"));
  EXPECT_EQ(ApiGroupOf("apps/v1"), "apps");
  EXPECT_EQ(ApiGroupOf("v1"), "");
  EXPECT_EQ(ApiGroupOf("rbac.authorization.k8s.io/v1"), "rbac.authorization.k8s.io");
}

TEST(KindPatternTest, RefusesWhatNamesNoKindAndABuiltInKindWithoutItsGroup) {
  for (const std::string& pattern :
       {std::string(), std::string("/ConfigMap"), std::string("apps/"),
        std::string("Apps/Deployment"), std::string("apps/Deploy-ment"), std::string("a b"),
        std::string("apps/Deployment\n"), std::string(64, 'K')}) {
    EXPECT_THAT(ValidateKindPattern(pattern),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not [GROUP/]KIND")))
        << pattern;
  }
  EXPECT_THAT(
      ValidateKindPattern("Deployment"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("did you mean apps/Deployment?")));
  EXPECT_THAT(ValidateKindPattern("ClusterRole"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("did you mean rbac.authorization.k8s.io/ClusterRole?")));
}

TEST(ListNamesTest, NamesUpToTheMostAndCountsTheRest) {
  EXPECT_EQ(ListNames({}), "none");
  EXPECT_EQ(ListNames({"a"}), "a");
  EXPECT_EQ(ListNames({"b", "a", "c"}), "b, a, c");
  EXPECT_EQ(ListNames({"a", "b", "c"}, 3), "a, b, c");
  EXPECT_EQ(ListNames({"a", "b", "c", "d", "e"}, 2), "a, b and 3 more");
}

TEST(ShellWordTest, QuotesOnlyWhatTheShellWouldRead) {
  EXPECT_EQ(ShellWord("env=dev"), "env=dev");
  EXPECT_EQ(ShellWord("apps/web-1/overlays_x:2,@%+."), "apps/web-1/overlays_x:2,@%+.");
  EXPECT_EQ(ShellWord(""), "''");
  EXPECT_EQ(ShellWord("env in (a,b)"), "'env in (a,b)'");
  EXPECT_EQ(ShellWord("!canary"), "'!canary'");
  EXPECT_EQ(ShellWord("Fleet's"), R"('Fleet'\''s')");
  EXPECT_EQ(ShellWord("$(rm -rf x);`y`\n"), "'$(rm -rf x);`y`\n'");
}

}  // namespace
}  // namespace gitfleet
