#include "controlplane/events/notifier.h"

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/git_fixture.h"
#include "tests/util/git_servers.h"
#include "tests/util/process.h"
#include "tests/util/webhook_sink.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::Event EventOf(const std::string& type, const std::string& bundle, const std::string& message) {
  v1::Event event;
  event.set_type(type);
  event.set_bundle(bundle);
  event.set_message(message);
  return event;
}

class NotifierTest : public ::testing::Test {
 protected:
  NotifierTest()
      : outcomes_(metrics::BuildCounter()
                      .Name("gitfleet_notifications_total")
                      .Help("h")
                      .LabelNames({"sink", "result"})
                      .Register(registry_)) {}
  double Count(const std::string& sink, const std::string& result) {
    return outcomes_.Add({{"sink", sink}, {"result", result}}).Value();
  }
  metrics::Registry registry_;
  metrics::Family<metrics::Counter>& outcomes_;
};

TEST(ParseNotifySinksTest, ReadsEachLineAndRefusesWhatItCannot) {
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      "# deploys\n"
      "https://hooks.slack.com/services/T0/B0/xyz slack rollout.,render.failed\n"
      "\n"
      "  http://127.0.0.1:9000/events  \n"
      "https://events.example.com/gitfleet json cluster.failed\n");
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  ASSERT_EQ(sinks->size(), 3u);
  EXPECT_EQ((*sinks)[0].format, NotifySink::Format::kSlack);
  EXPECT_THAT((*sinks)[0].types, ElementsAre("rollout.", "render.failed"));
  EXPECT_EQ((*sinks)[0].line, 2);
  EXPECT_EQ((*sinks)[1].url, "http://127.0.0.1:9000/events");
  EXPECT_EQ((*sinks)[1].format, NotifySink::Format::kJson);
  EXPECT_THAT((*sinks)[1].types, ::testing::Contains("render.failed"));
  EXPECT_THAT((*sinks)[1].types, ::testing::Not(::testing::Contains("cluster.applied")));
  EXPECT_THAT((*sinks)[2].types, ElementsAre("cluster.failed"));
  const std::pair<const char*, const char*> kBad[] = {
      {"ftp://example.com/x\n", "line 1: not an http(s) URL"},
      {"https://user:token@example.com/x\n", "line 1: the URL holds credentials"},
      {"# x\nhttps://example.com/x xml\n", "line 2: \"xml\" is neither json nor slack"},
      {"https://example.com/x slack rollout.pause\n", "line 1: "},
      {"https:///x\n", "names no host"},
      {"https://example.com/x slack rollout. extra\n", "more than URL"},
  };
  for (const auto& [text, error] : kBad) {
    absl::StatusOr<std::vector<NotifySink>> refused = ParseNotifySinks(text);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(refused.status().message(), HasSubstr(error)) << text;
    EXPECT_THAT(refused.status().message(), ::testing::Not(HasSubstr("token"))) << text;
  }
  std::string many;
  for (int i = 0; i < 17; ++i) absl::StrAppend(&many, "https://example.com/", i, "\n");
  EXPECT_THAT(ParseNotifySinks(many).status().message(), HasSubstr("more than 16 sinks"));
}

TEST(NotificationBodyTest, JsonIsTheEventAndSlackOneLineOfText) {
  v1::Event event = EventOf("rollout.paused", "web", "partition 2: prod-eu Degraded");
  event.set_commit("0123456789abcdef0123");
  event.set_sequence(7);
  nlohmann::json json = nlohmann::json::parse(NotificationBody(event, NotifySink::Format::kJson));
  EXPECT_EQ(json["type"], "rollout.paused");
  EXPECT_EQ(json["bundle"], "web");
  EXPECT_EQ(json["sequence"], "7");  // proto's JSON: a 64-bit number as a string
  nlohmann::json slack = nlohmann::json::parse(NotificationBody(event, NotifySink::Format::kSlack));
  EXPECT_EQ(slack["text"],
            "gitfleet rollout.paused bundle=web commit=0123456789ab: partition 2: prod-eu "
            "Degraded");
  event.set_message("bad \xff byte");
  EXPECT_FALSE(
      nlohmann::json::parse(NotificationBody(event, NotifySink::Format::kSlack)).is_discarded());
}

// Each sink gets its types, in order, signed; a refused POST is tried again; a dead sink
// delays nobody else and counts its failures.
TEST_F(NotifierTest, EachSinkGetsItsEventsInOrderAndFailuresAreTriedAgain) {
  testing::WebhookSink json, slack;
  absl::Status started = json.Start(testing::TempDir("json-sink"), 0);
  if (!started.ok()) GTEST_SKIP() << started;
  ASSERT_TRUE(slack.Start(testing::TempDir("slack-sink"), 2).ok());
  const int dead = testing::FreePort();
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      absl::StrCat("http://127.0.0.1:", json.port(), "/events\n", "http://127.0.0.1:", slack.port(),
                   "/hooks/T0/xyz slack rollout.\n", "http://127.0.0.1:", dead, "/nobody\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  EventBus bus;
  Notifier::Options options;
  options.sinks = *sinks;
  options.secret = [] { return std::string("a-signing-secret"); };
  options.retry_base = absl::Milliseconds(50);
  options.max_attempts = 3;
  options.timeout = absl::Seconds(2);
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  bus.Publish(EventOf("render.failed", "web", "kustomize build failed"));
  bus.Publish(EventOf("cluster.applied", "web", ""));  // per cluster: not by default
  bus.Publish(EventOf("rollout.started", "web", "3 partitions"));
  bus.Publish(EventOf("rollout.done", "web", ""));

  ASSERT_TRUE(testing::Eventually([&] {
    return json.Posts().size() >= 3 && slack.Posts().size() >= 4 && Count("3", "failed") >= 3;
  })) << json.Log()
      << slack.Log();
  std::vector<std::string> types;
  for (const nlohmann::json& post : json.Posts()) {
    EXPECT_EQ(post["path"], "/events");
    EXPECT_EQ(post["type"], "application/json");
    const std::string body = post["body"];
    EXPECT_EQ(post["signature"],
              "sha256=" + absl::BytesToHexString(crypto::HmacSha256("a-signing-secret", body)));
    types.push_back(nlohmann::json::parse(body)["type"]);
  }
  EXPECT_THAT(types, ElementsAre("render.failed", "rollout.started", "rollout.done"));
  // Slack's: refused twice (500), then taken; rollout events only; not signed.
  std::vector<nlohmann::json> posts = slack.Posts();
  ASSERT_EQ(posts.size(), 4u);
  EXPECT_EQ(posts[0]["code"], 500);
  EXPECT_EQ(posts[1]["code"], 500);
  EXPECT_EQ(posts[2]["code"], 200);
  EXPECT_EQ(posts[2]["body"], R"({"text":"gitfleet rollout.started bundle=web: 3 partitions"})");
  EXPECT_EQ(posts[3]["body"], R"({"text":"gitfleet rollout.done bundle=web"})");
  EXPECT_EQ(posts[2]["signature"], "");
  EXPECT_EQ(Count("1", "sent"), 3);
  EXPECT_EQ(Count("2", "sent"), 2);
  EXPECT_EQ(Count("2", "retried"), 2);
  EXPECT_EQ(Count("2", "failed"), 0);
  EXPECT_GE(Count("3", "failed"), 3);
  notifier.Stop();
}

// Stop does not wait out a retry's wait.
TEST_F(NotifierTest, StopEndsAWaitForARetry) {
  absl::StatusOr<std::vector<NotifySink>> sinks =
      ParseNotifySinks(absl::StrCat("http://127.0.0.1:", testing::FreePort(), "/\n"));
  ASSERT_TRUE(sinks.ok());
  EventBus bus;
  Notifier::Options options;
  options.sinks = *sinks;
  options.retry_base = absl::Hours(1);
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  bus.Publish(EventOf("render.failed", "web", ""));
  ASSERT_TRUE(testing::Eventually([&] { return Count("1", "retried") >= 1; }));
  const absl::Time before = absl::Now();
  notifier.Stop();
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
}

}  // namespace
}  // namespace gitfleet
