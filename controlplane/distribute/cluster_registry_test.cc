#include "controlplane/distribute/cluster_registry.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/agent_protocol.h"
#include "common/clock.h"
#include "common/manifest/hash.h"
#include "common/proto_time.h"
#include "common/status_matchers.h"
#include "common/sync.h"
#include "controlplane/distribute/agent_service.h"
#include "controlplane/distribute/hub.h"
#include "controlplane/metrics.h"
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

// What a hello says of its cluster is bounded before the hub keeps it.
TEST(ValidateHelloTest, BoundsTheClustersVersionAndApis) {
  v1::Hello hello;
  hello.set_cluster("c1");
  hello.set_kubernetes_version("v1.30.2+k3s1");
  hello.add_api_versions("v1");
  hello.add_api_versions("monitoring.coreos.com/v1/ServiceMonitor");
  EXPECT_TRUE(ValidateHello(hello).ok());
  v1::Hello spaced = hello;
  spaced.add_api_versions("apps/v1 --set x=y");
  EXPECT_THAT(ValidateHello(spaced), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("API version \"apps/v1 --set x=y\"")));
  v1::Hello listed = hello;
  listed.add_api_versions("a,b");
  EXPECT_FALSE(ValidateHello(listed).ok());
  v1::Hello long_one = hello;
  long_one.add_api_versions(std::string(kMaxApiVersionBytes + 1, 'a'));
  EXPECT_FALSE(ValidateHello(long_one).ok());
  v1::Hello many = hello;
  for (int i = 0; i < kMaxClusterApiVersions; ++i)
    many.add_api_versions(absl::StrCat("g", i, "/v1"));
  EXPECT_THAT(ValidateHello(many), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("API versions; at most 5000")));
  v1::Hello version = hello;
  version.set_kubernetes_version("v1.30 2");
  EXPECT_FALSE(ValidateHello(version).ok());
  v1::Hello digest = hello;
  digest.set_api_versions_digest("0123456789abcdef01234567");
  EXPECT_TRUE(ValidateHello(digest).ok());
  digest.set_api_versions_digest("../../etc/passwd");
  EXPECT_THAT(ValidateHello(digest),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("api_versions_digest")));
  digest.set_api_versions_digest("0123456789ABCDEF01234567");
  EXPECT_FALSE(ValidateHello(digest).ok());
}

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
  absl::StatusOr<ClusterRegistry::Rotated> rotated = registry->RotateToken("eu-1");
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(rotated->old_valid_until, absl::InfinitePast()) << "no grace";
  EXPECT_FALSE(registry->Check("eu-1", "from-file").ok()) << "the old token stops working";

  auto again = Make("eu-1 from-file\n");
  EXPECT_TRUE(again->Check("prod-eu", *token).ok());
  EXPECT_TRUE(again->Check("eu-1", rotated->token).ok()) << "the API registration wins";
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
  for (const std::string& refused : {std::string("eu-1\n"), std::string("eu-1 a\neu-1 b\neu-1 c\n"),
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
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, "a t\na u\na v\n", "f", false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f:3: cluster a is listed a "
                                                                     "third time")));
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, "a t\nb u\na t\n", "f", false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("listed twice (lines 1 and 3) with one token")));
  EXPECT_THAT(
      ClusterRegistry::Create(&store_, nullptr, "a t env=prod\na u env=dev\n", "f", false).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("with different labels")));
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, "a t env=prod\na u\n", "f", false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("with different labels")));
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, "a t env\n", "f", false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f:1: label")));
  // A corrupt stored registration stops the start, naming it: skipping it would open
  // the cluster to anyone under --allow-any-agent.
  ASSERT_TRUE(store_.Apply({Store::Put("registrations", "bad", "\xff\xff")}).ok());
  EXPECT_THAT(ClusterRegistry::Create(&store_, nullptr, "", "f", true).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("\"bad\"")));
}

// An agent's stream, as the hub sees it: closed from the registry's own thread.
class ClosableConnection : public AgentConnection {
 public:
  void Notify(const std::string&) override {}
  void NotifyControl() override {}
  void Close(const absl::Status& status) override {
    MutexLock lock(&mu_);
    closed_ = status;
  }
  absl::Status closed() {
    MutexLock lock(&mu_);
    return closed_;
  }
  // Waits (up to 10 s of real time) for the stream to be closed.
  absl::Status AwaitClosed() {
    MutexLock lock(&mu_);
    mu_.AwaitWithTimeout([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !closed_.ok(); },
                         absl::Seconds(10));
    return closed_;
  }

 private:
  Mutex mu_;
  absl::Status closed_ ABSL_GUARDED_BY(mu_);
};

// A rotation with a grace lets each cluster's agent be given the new token before the old
// one stops: both work until the grace ends (across a restart too), then the stream of an
// agent still on the old one is closed, and the old token is refused with a reason.
TEST_F(ClusterRegistryTest, ARotationWithAGraceKeepsTheOldTokenWorkingUntilItEnds) {
  FakeClock clock;
  metrics::Registry metrics_registry;
  ControlPlaneMetrics metrics(metrics_registry);
  MemoryStore hub_store;
  Hub hub(&hub_store, metrics);
  auto created = ClusterRegistry::Create(&store_, &hub, "", "tokens", false, &clock);
  ASSERT_TRUE(created.ok()) << created.status();
  ClusterRegistry& registry = **created;
  const std::string t0 = *registry.Register("eu-1", {{"env", "prod"}});
  v1::Hello hello;
  hello.set_cluster("eu-1");
  hello.set_agent_version("test");
  auto connect = [&](const std::string& token) {
    absl::Time until;
    EXPECT_TRUE(registry.Check("eu-1", token, &until).ok());
    auto connection = std::make_shared<ClosableConnection>();
    hub.Connect(hello, "p", connection);
    hub.SetOldToken("eu-1", until);
    return connection;
  };
  auto old_token_until = [&] { return hub.Clusters("eu-1").at(0).info.old_token_until(); };
  std::shared_ptr<ClosableConnection> on_t0 = connect(t0);

  EXPECT_THAT(registry.RotateToken("eu-1", absl::Hours(7 * 24 + 1)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("between 0 and 168h")));
  EXPECT_THAT(registry.RotateToken("eu-1", -absl::Seconds(1)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<ClusterRegistry::Rotated> rotated = registry.RotateToken("eu-1", absl::Hours(2));
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  const std::string t1 = rotated->token;
  const absl::Time end = clock.Now() + absl::Hours(2);
  EXPECT_EQ(rotated->old_valid_until, end);
  EXPECT_TRUE(on_t0->closed().ok()) << "the agent stays connected";
  EXPECT_EQ(FromProtoTime(old_token_until()), end) << "cluster list says it is on the old one";

  absl::Time until;
  ASSERT_TRUE(registry.Check("eu-1", t1, &until).ok());
  EXPECT_EQ(until, absl::InfinitePast());
  ASSERT_TRUE(registry.Check("eu-1", t0, &until).ok()) << "both work during the grace";
  EXPECT_EQ(until, end);
  EXPECT_EQ(registry.Explain("eu-1", t0), "accepted");
  {
    auto restarted = ClusterRegistry::Create(&store_, nullptr, "", "tokens", false, &clock);
    ASSERT_TRUE(restarted.ok());
    ASSERT_TRUE((*restarted)->Check("eu-1", t0, &until).ok()) << "the grace survives a restart";
    EXPECT_EQ(until, end);
  }
  EXPECT_THAT(registry.ExpireGraces(), ::testing::IsEmpty()) << "not over yet";

  clock.Advance(absl::Hours(2));
  EXPECT_THAT(on_t0->AwaitClosed(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("grace")))
      << "the registry's thread closes the stream of the agent still on the old token";
  EXPECT_FALSE(registry.Check("eu-1", t0).ok());
  EXPECT_THAT(registry.Explain("eu-1", t0),
              HasSubstr("the token cluster rotate-token replaced, which worked until "));
  EXPECT_TRUE(registry.Check("eu-1", t1).ok());
  EXPECT_THAT(registry.ExpireGraces(), ::testing::IsEmpty()) << "dealt with once";

  // Without a grace the token stops at once, and so does the stream on it.
  std::shared_ptr<ClosableConnection> on_t1 = connect(t1);
  EXPECT_FALSE(hub.Clusters("eu-1").at(0).info.has_old_token_until()) << "on the current token";
  rotated = registry.RotateToken("eu-1");
  ASSERT_TRUE(rotated.ok());
  const std::string t2 = rotated->token;
  EXPECT_EQ(on_t1->closed().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_FALSE(registry.Check("eu-1", t1).ok());
  EXPECT_THAT(registry.Explain("eu-1", t1), HasSubstr("rotate-token replaced"));

  // A rotation during a grace ends that grace's token at once.
  std::shared_ptr<ClosableConnection> on_t2 = connect(t2);
  rotated = registry.RotateToken("eu-1", absl::Hours(1));
  ASSERT_TRUE(rotated.ok());
  EXPECT_TRUE(on_t2->closed().ok());
  ASSERT_TRUE(registry.RotateToken("eu-1", absl::Hours(1)).ok());
  EXPECT_EQ(on_t2->closed().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_FALSE(registry.Check("eu-1", t2).ok());
  EXPECT_TRUE(registry.Check("eu-1", rotated->token).ok()) << "the one the last grace is for";
}

// A cluster listed in --agent-tokens moves to a new token without a disconnect: a second
// line with the new token makes both work, `cluster list` shows an agent still on the
// earlier one, and removing the earlier line closes only a stream still on it.
TEST_F(ClusterRegistryTest, TwoFileLinesLetAnAgentMoveToANewTokenWithoutADisconnect) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/two-lines");
  const std::string hashed_t1 = absl::StrCat("sha256:", absl::BytesToHexString(Sha256Bytes("t1")));
  WriteTokens(path, "eu-1 t0 env=prod\nus-1 u0 env=prod\n");
  FakeClock clock;
  WatchedFilesOptions options;
  options.clock = &clock;
  metrics::Registry metrics_registry;
  ControlPlaneMetrics metrics(metrics_registry);
  MemoryStore hub_store;
  Hub hub(&hub_store, metrics);
  auto loaded = ClusterRegistry::Load(&store_, &hub, path, false, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ClusterRegistry& registry = **loaded;
  auto edit = [&](const std::string& text) {
    WriteTokens(path, text);
    clock.Advance(absl::Seconds(1));
    registry.Refresh();
  };
  auto connect = [&](const std::string& cluster, const std::string& token) {
    absl::Time until;
    EXPECT_TRUE(registry.Check(cluster, token, &until).ok()) << cluster << " " << token;
    v1::Hello hello;
    hello.set_cluster(cluster);
    hello.set_agent_version("test");
    auto connection = std::make_shared<ClosableConnection>();
    hub.Connect(hello, "p", connection);
    hub.SetOldToken(cluster, until);
    return connection;
  };
  auto on_earlier = [&](const std::string& cluster) {
    return hub.Clusters(cluster).at(0).info.old_token_listed();
  };
  std::shared_ptr<ClosableConnection> eu_t0 = connect("eu-1", "t0");
  std::shared_ptr<ClosableConnection> us_u0 = connect("us-1", "u0");

  // The new tokens are added, one of them as its hash and on a line of its own.
  edit("eu-1 t0 env=prod\nus-1 u0 env=prod\nus-1 u1 env=prod\neu-1 " + hashed_t1 + " env=prod\n");
  EXPECT_TRUE(eu_t0->closed().ok()) << "no disconnect: the token it holds still works";
  EXPECT_TRUE(us_u0->closed().ok());
  EXPECT_TRUE(on_earlier("eu-1")) << "cluster list says it is on the earlier line's token";
  EXPECT_TRUE(on_earlier("us-1"));
  EXPECT_TRUE(registry.Check("eu-1", "t0").ok());
  EXPECT_TRUE(registry.Check("eu-1", "t1").ok());
  EXPECT_FALSE(registry.Check("eu-1", "u1").ok()) << "another cluster's token";
  EXPECT_THAT(registry.SetLabels("eu-1", {{"env", "dev"}}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("two --agent-tokens")));

  // eu-1's agent is given t1 and reconnects; us-1's is not yet.
  std::shared_ptr<ClosableConnection> eu_t1 = connect("eu-1", "t1");
  EXPECT_FALSE(on_earlier("eu-1"));
  // Labels change on both lines of a cluster at once, and its agent stays.
  edit("eu-1 t0 env=prod\nus-1 u0 env=dev\nus-1 u1 env=dev\neu-1 " + hashed_t1 + " env=prod\n");
  EXPECT_TRUE(us_u0->closed().ok());
  EXPECT_TRUE(on_earlier("us-1"));

  // The earlier lines go: eu-1's agent, on t1, stays; us-1's, still on u0, is closed.
  edit("us-1 u1 env=dev\neu-1 " + hashed_t1 + " env=prod\n");
  EXPECT_TRUE(eu_t1->closed().ok()) << "on the token that stays";
  EXPECT_FALSE(on_earlier("eu-1"));
  EXPECT_THAT(us_u0->closed(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("token changed")));
  EXPECT_FALSE(registry.Check("eu-1", "t0").ok());
  EXPECT_FALSE(registry.Check("us-1", "u0").ok());
  EXPECT_TRUE(registry.Check("us-1", "u1").ok());

  // Swapped back: the later line's token stops being current, and an agent on it stays.
  std::shared_ptr<ClosableConnection> us_u1 = connect("us-1", "u1");
  edit("us-1 u1 env=dev\nus-1 u2 env=dev\neu-1 " + hashed_t1 + " env=prod\n");
  EXPECT_TRUE(us_u1->closed().ok());
  EXPECT_TRUE(on_earlier("us-1"));
  // A plain token change still stops the old one at once.
  edit("us-1 u2 env=dev\neu-1 t9 env=prod\n");
  EXPECT_EQ(eu_t1->closed().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(us_u1->closed().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(registry.Check("us-1", "u2").ok());
}

}  // namespace
}  // namespace gitfleet
