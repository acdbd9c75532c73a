#include "controlplane/distribute/cluster_registry.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/manifest/hash.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ClusterRegistryTest : public ::testing::Test {
 protected:
  std::unique_ptr<ClusterRegistry> Make(const std::string& file, bool allow_any = false) {
    auto registry = ClusterRegistry::Create(&store_, nullptr, file, "tokens", allow_any);
    EXPECT_TRUE(registry.ok()) << registry.status();
    return *std::move(registry);
  }
  // Replaces the tokens file at `path` in one step, as a mounted Secret's update does.
  static void WriteTokens(const std::string& path, const std::string& text) {
    std::ofstream(path + ".new") << text;
    ASSERT_EQ(std::rename((path + ".new").c_str(), path.c_str()), 0);
  }
  MemoryStore store_;
};

TEST_F(ClusterRegistryTest, FileTokensAuthenticateTheirClusterOnly) {
  auto registry = Make("# comment\n\neu-1 s3cret\nus-1   other env=prod,region=us\n");
  EXPECT_TRUE(registry->Check("eu-1", "s3cret").ok());
  EXPECT_TRUE(registry->Check("us-1", "other").ok());
  absl::Status wrong = registry->Check("eu-1", "other");
  EXPECT_THAT(wrong, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("cluster \"eu-1\"")));
  // An unknown cluster and a missing token get the same answer as a wrong token.
  EXPECT_EQ(registry->Check("eu-1", "").message(), wrong.message());
  absl::Status unknown = registry->Check("nope", "s3cret");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unknown.message(), HasSubstr("unknown cluster, or missing or wrong token"));
  // The log may say which.
  EXPECT_THAT(registry->Explain("nope", "s3cret"), HasSubstr("not registered"));
  EXPECT_EQ(registry->Explain("eu-1", ""), "no token sent");
  EXPECT_EQ(registry->Explain("eu-1", "other"), "wrong token");
  EXPECT_TRUE(registry->FirstRefusal("x"));
  EXPECT_FALSE(registry->FirstRefusal("x"));
}

// A line may give the token's SHA-256 instead of the token (`sha256:HEX`), so the file
// holds nothing an agent could present.
TEST_F(ClusterRegistryTest, AFileLineMayHoldTheTokensHashInsteadOfTheToken) {
  const std::string real = absl::BytesToHexString(Sha256Bytes("s3cret"));
  auto registry = Make(absl::StrCat("eu-1 sha256:", real,
                                    " env=prod\nus-1 sha256:", absl::AsciiStrToUpper(real), "\n"));
  EXPECT_TRUE(registry->Check("eu-1", "s3cret").ok());
  EXPECT_TRUE(registry->Check("us-1", "s3cret").ok()) << "hex in either case";
  EXPECT_FALSE(registry->Check("eu-1", "sha256:" + real).ok()) << "the hash is not the token";
  EXPECT_FALSE(registry->Check("eu-1", real).ok());
  auto other =
      Make(absl::StrCat("eu-1 sha256:", absl::BytesToHexString(Sha256Bytes("other")), "\n"));
  EXPECT_FALSE(other->Check("eu-1", "s3cret").ok());
  for (const std::string& bad : {std::string("sha256:abc"), "sha256:" + real + "0",
                                 "sha256:" + std::string(64, 'g'), std::string("sha256:")}) {
    EXPECT_THAT(
        ClusterRegistry::Create(&store_, nullptr, "eu-1 " + bad + "\n", "f", false).status(),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 HasSubstr("f:1: cluster eu-1: sha256: must be followed by the 64 hex")))
        << bad;
  }
}

TEST_F(ClusterRegistryTest, AnyAgentOnlyWhenAskedForAndNeverForARegisteredName) {
  auto strict = Make("");
  EXPECT_EQ(strict->Check("any", "").code(), absl::StatusCode::kUnauthenticated);
  auto open = Make("eu-1 s3cret\n", /*allow_any=*/true);
  EXPECT_TRUE(open->Check("any", "").ok());
  EXPECT_EQ(open->Check("eu-1", "").code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(ClusterRegistryTest, RegisteredClustersSurviveARestartAndOverrideTheFile) {
  auto registry = Make("eu-1 from-file\n");
  absl::StatusOr<std::string> token = registry->Register("prod-eu", {{"env", "prod"}});
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_TRUE(registry->Check("prod-eu", *token).ok());
  EXPECT_THAT(registry->Register("prod-eu", {}).status(),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("rotate-token")));
  // Only the hash is stored.
  absl::StatusOr<std::vector<Store::Entry>> rows = store_.List("registrations");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  for (const Store::Entry& row : *rows) {
    EXPECT_THAT(row.value, Not(HasSubstr(*token)));
  }
  absl::StatusOr<std::string> rotated = registry->RotateToken("eu-1");
  ASSERT_TRUE(rotated.ok());
  EXPECT_FALSE(registry->Check("eu-1", "from-file").ok()) << "the old token stops working";

  auto again = Make("eu-1 from-file\n");
  EXPECT_TRUE(again->Check("prod-eu", *token).ok());
  EXPECT_TRUE(again->Check("eu-1", *rotated).ok()) << "the API registration wins";
  EXPECT_FALSE(again->Check("eu-1", "from-file").ok());
  EXPECT_EQ(again->size(), 2u);
}

TEST_F(ClusterRegistryTest, RemoveRetiresAnApiClusterButNotAFileLine) {
  auto registry = Make("eu-1 from-file\n");
  std::string token = *registry->Register("prod-eu", {});
  ASSERT_TRUE(registry->Remove("prod-eu").ok());
  EXPECT_FALSE(registry->Check("prod-eu", token).ok());
  EXPECT_THAT(registry->Remove("prod-eu"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(registry->Remove("eu-1"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--agent-tokens")));
  EXPECT_EQ(Make("")->size(), 0u) << "the removal is durable";
}

TEST_F(ClusterRegistryTest, TheTokenFileIsReadAgainWhenItChanges) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/agent-tokens");
  auto write = [&](const std::string& text) { WriteTokens(path, text); };
  write("eu-1 leaked\nus-1 keep env=prod\nap-1 file-token\n");
  FakeClock fake_clock;
  WatchedFilesOptions options;
  options.clock = &fake_clock;
  absl::StatusOr<std::unique_ptr<ClusterRegistry>> loaded =
      ClusterRegistry::Load(&store_, nullptr, path, false, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ClusterRegistry& registry = **loaded;
  // ap-1 is registered through the API as well, which wins over its line.
  ASSERT_TRUE(registry.SetLabels("ap-1", {{"env", "dev"}}).ok());
  EXPECT_TRUE(registry.Check("eu-1", "leaked").ok());
  // Retired through the API while its line stays, it would come back at the next start.
  EXPECT_THAT(registry.Remove("ap-1"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("also listed")));

  // The leaked token is replaced, us-1 retired, de-1 added, ap-1's line dropped.
  write("eu-1 fresh\nde-1 new env=dev\n");
  registry.Refresh();
  EXPECT_TRUE(registry.Check("eu-1", "leaked").ok()) << "read again at most once a second";
  fake_clock.Advance(absl::Seconds(1));
  registry.Refresh();
  EXPECT_FALSE(registry.Check("eu-1", "leaked").ok());
  EXPECT_TRUE(registry.Check("eu-1", "fresh").ok());
  EXPECT_FALSE(registry.Check("us-1", "keep").ok());
  EXPECT_TRUE(registry.Check("de-1", "new").ok());
  EXPECT_TRUE(registry.Check("ap-1", "file-token").ok()) << "the API's registration stays";
  EXPECT_EQ(registry.size(), 3u);

  // Edits that do not parse, and an emptied file (a truncated write), change nothing.
  for (const std::string& refused : {std::string("eu-1\n"), std::string("eu-1 a\neu-1 b\n"),
                                     std::string("de-1 new env\n"), std::string(" \n")}) {
    write(refused);
    fake_clock.Advance(absl::Seconds(1));
    registry.Refresh();
    EXPECT_TRUE(registry.Check("eu-1", "fresh").ok()) << refused;
    EXPECT_TRUE(registry.Check("de-1", "new").ok()) << refused;
  }
  ASSERT_EQ(std::remove(path.c_str()), 0);
  fake_clock.Advance(absl::Seconds(1));
  registry.Refresh();
  EXPECT_TRUE(registry.Check("eu-1", "fresh").ok()) << "a missing file changes nothing";

  // A file that says it lists nobody retires them all; the API's cluster stays.
  write("# every cluster is registered through the API now\n");
  fake_clock.Advance(absl::Seconds(1));
  registry.Refresh();
  EXPECT_FALSE(registry.Check("eu-1", "fresh").ok());
  EXPECT_FALSE(registry.Check("de-1", "new").ok());
  EXPECT_EQ(registry.size(), 1u);
  EXPECT_TRUE(registry.Remove("ap-1").ok()) << "its line is gone";
}

TEST_F(ClusterRegistryTest, TheWatchingThreadAppliesAChangeWhileAgentsAreChecked) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/watched-tokens");
  auto write = [&](const std::string& text) { WriteTokens(path, text); };
  write("eu-1 old-token\n");
  WatchedFilesOptions options;
  options.recheck = absl::Milliseconds(10);
  absl::StatusOr<std::unique_ptr<ClusterRegistry>> registry =
      ClusterRegistry::Load(&store_, nullptr, path, false, options);
  ASSERT_TRUE(registry.ok()) << registry.status();
  (*registry)->WatchFile(absl::Milliseconds(5));
  write("eu-1 new-token\n");
  // Handshakes go on while the thread swaps the entry (what TSAN looks at).
  bool changed = false;
  for (int i = 0; i < 2000 && !changed; ++i) {
    changed = (*registry)->Check("eu-1", "new-token").ok();
    if (!changed) {
      // The old token, or the new one should the swap come between the two checks.
      EXPECT_TRUE((*registry)->Check("eu-1", "old-token").ok() ||
                  (*registry)->Check("eu-1", "new-token").ok());
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_TRUE(changed) << "the thread never applied the change";
  EXPECT_FALSE((*registry)->Check("eu-1", "old-token").ok());
  registry->reset();  // stops and joins the thread
}

TEST_F(ClusterRegistryTest, RegistrationsAreBounded) {
  std::string file;
  for (int i = 0; i < 100000; ++i) absl::StrAppend(&file, "c", i, " t", i, "\n");
  auto registry = Make(file);
  EXPECT_THAT(
      registry->Register("one-more", {}).status(),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("100000 clusters are registered")));
  EXPECT_TRUE(registry->Check("c99999", "t99999").ok());
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, file + "c100000 t\n", "f", false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("f:100001: more than 100000 clusters")));
}

TEST_F(ClusterRegistryTest, BadInputIsRefusedByName) {
  auto registry = Make("");
  EXPECT_THAT(registry->Register("no/slash", {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[A-Za-z0-9._-]")));
  EXPECT_THAT(registry->Register("ok", {{"env", "a b"}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("label value")));
  EXPECT_THAT(registry->SetLabels("missing", {}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(registry->RotateToken("missing").status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, "a t\nb\n", "/etc/tokens", false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/etc/tokens:2:")));
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, "a t\na u\n", "f", false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listed twice")));
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, "a t env\n", "f", false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f:1: label")));
  // A corrupt stored registration stops the start, naming it: skipping it would open
  // the cluster to anyone under --allow-any-agent.
  ASSERT_TRUE(store_.Apply({Store::Put("registrations", "bad", "\xff\xff")}).ok());
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, "", "f", true).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("\"bad\"")));
}

}  // namespace
}  // namespace gitfleet
