#include "controlplane/distribute/agent_tokens.h"

#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

TEST(AgentTokensTest, ChecksTokensPerCluster) {
  auto tokens = AgentTokens::Parse("# comment\n\neu-1 s3cret\nus-1   other\n", "tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_TRUE((*tokens)->Check("eu-1", "s3cret").ok());
  absl::Status wrong = (*tokens)->Check("eu-1", "other");
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(wrong.message()), HasSubstr("cluster \"eu-1\""));
  // An unknown cluster and a missing token get the same answer as a wrong token.
  absl::Status unknown = (*tokens)->Check("nope", "s3cret");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kUnauthenticated);
  absl::Status missing = (*tokens)->Check("eu-1", "");
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(missing.message(), wrong.message());
  EXPECT_EQ(unknown.message(), absl::StrReplaceAll(wrong.message(), {{"eu-1", "nope"}}));
  // The log may say which.
  EXPECT_EQ((*tokens)->Explain("nope", "s3cret"), "the cluster has no token here");
  EXPECT_EQ((*tokens)->Explain("eu-1", ""), "no token sent");
  EXPECT_EQ((*tokens)->Explain("eu-1", "other"), "wrong token");
  EXPECT_TRUE((*tokens)->FirstRefusal("x"));
  EXPECT_FALSE((*tokens)->FirstRefusal("x"));
  EXPECT_TRUE(AgentTokens::AllowAll()->Check("any", "").ok());
}

TEST(AgentTokensTest, MalformedFileNamesLine) {
  auto tokens = AgentTokens::Parse("a t\nb\n", "/etc/tokens");
  EXPECT_THAT(std::string(tokens.status().message()), HasSubstr("/etc/tokens:2:"));
  auto dup = AgentTokens::Parse("a t\na u\n", "f");
  EXPECT_THAT(std::string(dup.status().message()), HasSubstr("listed twice"));
}

}  // namespace
}  // namespace gitfleet
