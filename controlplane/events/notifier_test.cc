#include "controlplane/events/notifier.h"

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/sync.h"
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
using ::testing::Not;

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
  // Options for `sinks` under which each of `bundles` stands at `state` on one commit of
  // http://127.0.0.1/acme/fleet, posted with the token "t0ken", judged each 50 ms.
  static Notifier::Options Judging(std::vector<NotifySink> sinks, CommitStatus::State state,
                                   std::vector<std::string> bundles = {"web"}) {
    Notifier::Options options;
    options.sinks = std::move(sinks);
    options.token = [](const NotifySink&) { return std::string("t0ken"); };
    options.judge = [state](const std::string&,
                            const std::string&) -> absl::StatusOr<CommitStatus> {
      return CommitStatus{"http://127.0.0.1/acme/fleet", std::string(40, 'a'), state, "said"};
    };
    options.bundles = [bundles]() -> absl::StatusOr<std::vector<std::string>> { return bundles; };
    options.status_interval = absl::Milliseconds(50);
    return options;
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
      "https://events.example.com/gitfleet json cluster.failed\n"
      "https://prod.westeurope.logic.azure.com:443/workflows/a/triggers/manual/paths/"
      "invoke?api-version=2016-06-01&sp=%2Ftriggers&sig=s3cr3t teams rollout.\n");
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  ASSERT_EQ(sinks->size(), 4u);
  EXPECT_EQ((*sinks)[3].format, NotifySink::Format::kTeams);
  EXPECT_THAT((*sinks)[3].url, HasSubstr("sig=s3cr3t"));  // a query's '=' is the URL's
  EXPECT_THAT((*sinks)[3].types, ElementsAre("rollout."));
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
      {"# x\nhttps://example.com/x xml\n", "line 2: \"xml\" is neither json, slack nor teams"},
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
  // Teams: an Adaptive Card, the type its title, the subjects as facts.
  nlohmann::json teams = nlohmann::json::parse(NotificationBody(event, NotifySink::Format::kTeams));
  EXPECT_EQ(teams["type"], "message");
  const nlohmann::json& attachment = teams["attachments"][0];
  EXPECT_EQ(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
  EXPECT_EQ(attachment["content"]["type"], "AdaptiveCard");
  const nlohmann::json& card = attachment["content"]["body"];
  ASSERT_EQ(card.size(), 3u) << card;
  EXPECT_EQ(card[0]["text"], "gitfleet rollout.paused");
  EXPECT_EQ(card[1]["text"], "partition 2: prod-eu Degraded");
  EXPECT_EQ(card[2]["facts"],
            nlohmann::json::parse(R"([{"title":"bundle","value":"web"},)"
                                  R"({"title":"commit","value":"0123456789ab"}])"));
  event.set_message("bad \xff byte");
  EXPECT_FALSE(
      nlohmann::json::parse(NotificationBody(event, NotifySink::Format::kSlack)).is_discarded());
  EXPECT_FALSE(
      nlohmann::json::parse(NotificationBody(event, NotifySink::Format::kTeams)).is_discarded());
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

TEST(ParseNotifySinksTest, ACommitStatusSinkIsARepositoryAndItsToken) {
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      "https://github.com/Acme/Fleet.git github token-file=/etc/gitfleet/github\n"
      "https://ghe.example.com/acme/fleet github token-file=/t\n"
      "https://gitlab.example.com/platform/infra/fleet gitlab token-file=/t\n"
      "https://code.example.com/git/acme/fleet/ forgejo token-file=/t\n"
      "http://127.0.0.1:3000/acme/fleet gitea token-file=/t\n");
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  ASSERT_EQ(sinks->size(), 5u);
  EXPECT_EQ((*sinks)[0].format, NotifySink::Format::kGitHub);
  EXPECT_TRUE((*sinks)[0].commit_statuses());
  EXPECT_EQ((*sinks)[0].token_file, "/etc/gitfleet/github");
  EXPECT_EQ((*sinks)[0].status_url, "https://api.github.com/repos/Acme/Fleet/statuses/{commit}");
  EXPECT_THAT((*sinks)[0].repositories, ElementsAre("github.com/acme/fleet"));
  EXPECT_TRUE((*sinks)[0].Names("git@github.com:acme/fleet.git"));
  EXPECT_FALSE((*sinks)[0].Names("https://github.com/acme/other"));
  EXPECT_EQ((*sinks)[1].status_url,
            "https://ghe.example.com/api/v3/repos/acme/fleet/statuses/{commit}");
  EXPECT_EQ(
      (*sinks)[2].status_url,
      "https://gitlab.example.com/api/v4/projects/platform%2Finfra%2Ffleet/statuses/{commit}");
  EXPECT_EQ((*sinks)[3].format, NotifySink::Format::kGitea);
  EXPECT_EQ((*sinks)[3].status_url,
            "https://code.example.com/git/api/v1/repos/acme/fleet/statuses/{commit}");
  // Over SSH, the path the web server puts it under is not named.
  EXPECT_THAT((*sinks)[3].repositories,
              ElementsAre("code.example.com/acme/fleet", "code.example.com/git/acme/fleet"));
  EXPECT_EQ((*sinks)[4].status_url,
            "http://127.0.0.1:3000/api/v1/repos/acme/fleet/statuses/{commit}");
  EXPECT_THAT((*sinks)[4].bundles, ::testing::IsEmpty());
  absl::StatusOr<std::vector<NotifySink>> team = ParseNotifySinks(
      "https://github.com/acme/fleet github bundles=web,api token-file=/t\n"
      "https://hooks.example.com/team slack rollout. bundles=web\n");
  ASSERT_TRUE(team.ok()) << team.status();
  EXPECT_THAT((*team)[0].bundles, ElementsAre("api", "web"));
  EXPECT_THAT((*team)[1].bundles, ElementsAre("web"));
  EXPECT_THAT((*team)[1].types, ElementsAre("rollout."));
  // Globs of bundles, and the clusters a sink is told of, a selector with spaces quoted.
  absl::StatusOr<std::vector<NotifySink>> prod = ParseNotifySinks(
      "https://hooks.example.com/prod slack cluster.,rollout. bundles=pay*,web "
      "clusters=\"env in (prod, dr)\"\n"
      "https://hooks.example.com/all slack\n");
  ASSERT_TRUE(prod.ok()) << prod.status();
  EXPECT_THAT((*prod)[0].bundles, ElementsAre("pay*", "web"));
  ASSERT_TRUE((*prod)[0].clusters.has_value());
  EXPECT_TRUE((*prod)[0].clusters->Matches({{"env", "dr"}}));
  EXPECT_FALSE((*prod)[0].clusters->Matches({{"env", "staging"}}));
  EXPECT_FALSE((*prod)[1].clusters.has_value());
  NotifySink other = (*prod)[0];
  other.clusters = *LabelSelector::Parse("env=prod");
  EXPECT_FALSE(other == (*prod)[0]) << "a sink told of other clusters is another sink";
  const std::pair<const char*, const char*> kBad[] = {
      {"https://github.com/acme/fleet github\n", "needs token-file=PATH"},
      {"https://github.com/acme/fleet github rollout. token-file=/t\n", "takes no event types"},
      {"https://github.com/acme/fleet github token-file=/t credential=app\n",
       "needs one of token-file=PATH or credential=NAME"},
      {"https://github.com/acme/fleet github credential=App_1\n", "credential=: "},
      {"https://example.com/x json credential=app\n", "credential= is for commit statuses"},
      {"http://github.example.com/acme/fleet github token-file=/t\n", "over https only"},
      {"https://github.com/acme github token-file=/t\n", "names no repository"},
      {"https://github.com/a/b/c github token-file=/t\n", "names no repository"},
      {"https://gitlab.com/ gitlab token-file=/t\n", "GROUP/PROJECT"},
      {"https://example.com/x json token-file=/t\n", "token-file= is for commit statuses"},
      {"https://github.com/acme/fleet github token=/t\n", "is none of token-file=PATH"},
      {"https://example.com/x json bundles=Web\n", "bundles=: "},
      {"https://example.com/x json bundles=\n", "bundles= names 1 to 64 bundles"},
      {"https://example.com/x json details=https://d\n", "details= is for commit statuses"},
      {"https://github.com/a/b github token-file=/t details=grafana\n", "not an http(s) URL"},
      {"https://example.com/x json bundles=Web*\n", "is not a bundle's name or a glob"},
      {"https://example.com/x json clusters=\n", "clusters=: a label selector"},
      {"https://example.com/x json clusters=env=(\n", "clusters=: "},
      {"https://example.com/x json \"clusters=env in (prod)\n", "a double quote is not closed"},
      {"https://github.com/acme/fleet github token-file=/t clusters=env=prod\n",
       "clusters= is not for a commit-status sink"},
  };
  for (const auto& [text, error] : kBad) {
    absl::StatusOr<std::vector<NotifySink>> refused = ParseNotifySinks(text);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(refused.status().message(), HasSubstr(error)) << text;
    EXPECT_THAT(refused.status().message(), HasSubstr("line 1: ")) << text;
  }
}

TEST(CommitStatusRequestTest, EachHostsApiGetsItsStateNamesAndToken) {
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      "https://github.com/acme/fleet github token-file=/t\n"
      "https://gitlab.com/acme/fleet gitlab token-file=/t "
      "details=https://grafana.example.com/d/gitfleet?var-bundle={bundle}&var-commit={commit}\n"
      "https://codeberg.org/acme/fleet forgejo token-file=/t\n");
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  CommitStatus status;
  status.commit = "0123456789abcdef0123456789abcdef01234567";
  status.state = CommitStatus::State::kFailure;
  status.description = "PAUSED: partition 1/3: prod-eu Degraded";
  StatusRequest github = CommitStatusRequest((*sinks)[0], "web", status, "ghp_token");
  EXPECT_EQ(github.url, "https://api.github.com/repos/acme/fleet/statuses/" + status.commit);
  EXPECT_EQ(nlohmann::json::parse(github.body),
            nlohmann::json({{"state", "failure"},
                            {"context", "gitfleet/web"},
                            {"description", "PAUSED: partition 1/3: prod-eu Degraded"}}));
  EXPECT_THAT(github.headers, ::testing::Contains("Authorization: Bearer ghp_token"));
  StatusRequest gitlab = CommitStatusRequest((*sinks)[1], "web", status, "glpat-x");
  EXPECT_EQ(gitlab.url,
            "https://gitlab.com/api/v4/projects/acme%2Ffleet/statuses/" + status.commit);
  EXPECT_EQ(nlohmann::json::parse(gitlab.body)["state"], "failed");  // GitLab's word
  EXPECT_EQ(nlohmann::json::parse(gitlab.body)["name"], "gitfleet/web");
  EXPECT_THAT(gitlab.headers, ::testing::Contains("PRIVATE-TOKEN: glpat-x"));
  EXPECT_EQ(nlohmann::json::parse(gitlab.body)["target_url"],
            "https://grafana.example.com/d/gitfleet?var-bundle=web&var-commit=" + status.commit);
  status.state = CommitStatus::State::kSuperseded;
  EXPECT_EQ(
      nlohmann::json::parse(CommitStatusRequest((*sinks)[1], "web", status, "t").body)["state"],
      "canceled");
  EXPECT_EQ(
      nlohmann::json::parse(CommitStatusRequest((*sinks)[2], "web", status, "t").body)["state"],
      "warning");
  EXPECT_EQ(
      nlohmann::json::parse(CommitStatusRequest((*sinks)[0], "web", status, "t").body)["state"],
      "pending");
  StatusRequest gitea = CommitStatusRequest((*sinks)[2], "web", status, "t0k");
  EXPECT_EQ(gitea.url, "https://codeberg.org/api/v1/repos/acme/fleet/statuses/" + status.commit);
  EXPECT_THAT(gitea.headers, ::testing::Contains("Authorization: token t0k"));
  // 140 bytes at most, never cutting a character.
  status.description = std::string(136, 'x') + "\xc3\xa9\xc3\xa9 tail";
  const std::string cut = nlohmann::json::parse(
      CommitStatusRequest((*sinks)[0], "web", status, "t").body)["description"];
  EXPECT_EQ(cut, std::string(136, 'x') + "...");
  status.description = std::string(135, 'x') + "\xc3\xa9\xc3\xa9 tail";
  EXPECT_EQ(nlohmann::json::parse(
                CommitStatusRequest((*sinks)[0], "web", status, "t").body)["description"],
            std::string(135, 'x') + "\xc3\xa9...");
}

// Bitbucket's and Azure DevOps' repositories are found by any address they give, a
// context path included; `api=` names an API root of its own (GitLab under a path).
TEST(ParseNotifySinksTest, BitbucketAzureDevOpsAndAnApiOfItsOwn) {
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      "https://bitbucket.org/acme/fleet.git bitbucket token-file=/t\n"
      "https://git.example.com/bitbucket/scm/PLAT/fleet.git bitbucket-server token-file=/t\n"
      "https://git.example.com/projects/PLAT/repos/fleet/browse bitbucketserver token-file=/t\n"
      "https://git.example.com/users/jane/repos/fleet bitbucket-server token-file=/t\n"
      "https://dev.azure.com/acme/Platform/_git/fleet azure-devops token-file=/t\n"
      "https://acme.visualstudio.com/DefaultCollection/Platform/_git/fleet azuredevops "
      "token-file=/t\n"
      "https://dev.azure.com/acme/_git/fleet azure-devops token-file=/t\n"
      "https://tfs.example.com/tfs/DefaultCollection/Platform/_git/fleet azure-devops "
      "token-file=/t\n"
      "https://code.example.com/gitlab/platform/fleet.git gitlab token-file=/t "
      "api=https://code.example.com/gitlab/api/v4/\n"
      "http://127.0.0.1:8080/acme/fleet bitbucket token-file=/t api=http://127.0.0.1:8080/2.0\n");
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  ASSERT_EQ(sinks->size(), 10u);
  const std::vector<NotifySink>& s = *sinks;
  EXPECT_EQ(s[0].format, NotifySink::Format::kBitbucket);
  EXPECT_EQ(s[0].status_url,
            "https://api.bitbucket.org/2.0/repositories/acme/fleet/commit/{commit}/statuses/build");
  EXPECT_EQ(s[0].page_url, "https://bitbucket.org/acme/fleet");
  EXPECT_TRUE(s[0].Names("git@bitbucket.org:acme/fleet.git"));
  EXPECT_EQ(s[1].format, NotifySink::Format::kBitbucketServer);
  EXPECT_EQ(s[1].status_url,
            "https://git.example.com/bitbucket/rest/api/latest/projects/PLAT/repos/fleet/commits/"
            "{commit}/builds");
  EXPECT_EQ(s[1].page_url, "https://git.example.com/bitbucket/projects/PLAT/repos/fleet");
  EXPECT_TRUE(s[1].Names("ssh://git@git.example.com:7999/plat/fleet.git"));
  EXPECT_TRUE(s[1].Names("https://jane@git.example.com/bitbucket/scm/plat/fleet.git"));
  EXPECT_FALSE(s[1].Names("https://git.example.com/bitbucket/scm/plat/other.git"));
  EXPECT_EQ(s[2].status_url,
            "https://git.example.com/rest/api/latest/projects/PLAT/repos/fleet/commits/{commit}/"
            "builds");
  EXPECT_TRUE(s[2].Names("https://git.example.com/scm/PLAT/fleet.git"));
  EXPECT_EQ(s[3].status_url,
            "https://git.example.com/rest/api/latest/projects/~jane/repos/fleet/commits/{commit}/"
            "builds");
  EXPECT_EQ(s[3].page_url, "https://git.example.com/users/jane/repos/fleet");
  EXPECT_TRUE(s[3].Names("ssh://git@git.example.com:7999/~jane/fleet.git"));
  EXPECT_EQ(s[4].format, NotifySink::Format::kAzureDevOps);
  EXPECT_EQ(s[4].status_url,
            "https://dev.azure.com/acme/Platform/_apis/git/repositories/fleet/commits/{commit}/"
            "statuses?api-version=6.0");
  EXPECT_TRUE(s[4].Names("git@ssh.dev.azure.com:v3/acme/Platform/fleet"));
  EXPECT_EQ(s[5].status_url,
            "https://acme.visualstudio.com/DefaultCollection/Platform/_apis/git/repositories/"
            "fleet/commits/{commit}/statuses?api-version=6.0");
  EXPECT_TRUE(s[5].Names("https://dev.azure.com/acme/Platform/_git/fleet"));
  EXPECT_EQ(s[6].status_url,
            "https://dev.azure.com/acme/fleet/_apis/git/repositories/fleet/commits/{commit}/"
            "statuses?api-version=6.0");
  EXPECT_TRUE(s[6].Names("https://acme@dev.azure.com/acme/fleet/_git/fleet"));
  EXPECT_TRUE(s[6].Names("https://dev.azure.com/acme/_git/fleet"));
  EXPECT_EQ(s[7].status_url,
            "https://tfs.example.com/tfs/DefaultCollection/Platform/_apis/git/repositories/fleet/"
            "commits/{commit}/statuses?api-version=6.0");
  EXPECT_EQ(s[8].status_url,
            "https://code.example.com/gitlab/api/v4/projects/platform%2Ffleet/statuses/{commit}");
  EXPECT_TRUE(s[8].Names("git@code.example.com:platform/fleet.git"));
  EXPECT_TRUE(s[8].Names("https://code.example.com/gitlab/platform/fleet"));
  EXPECT_EQ(s[9].status_url,
            "http://127.0.0.1:8080/2.0/repositories/acme/fleet/commit/{commit}/statuses/build");
  // As the hosts' clone buttons give them: a user before the host, SSH.
  absl::StatusOr<std::vector<NotifySink>> cloned = ParseNotifySinks(
      "https://jane@bitbucket.org/acme/fleet.git bitbucket token-file=/t\n"
      "https://acme@dev.azure.com/acme/Platform/_git/fleet azure-devops token-file=/t\n"
      "git@github.com:acme/fleet.git github token-file=/t\n"
      "ssh://git@gitlab.example.com:2222/platform/fleet.git gitlab token-file=/t\n"
      "git@ssh.dev.azure.com:v3/acme/Platform/fleet azure-devops token-file=/t\n"
      "acme@vs-ssh.visualstudio.com:v3/acme/Platform/fleet azure-devops token-file=/t\n");
  ASSERT_TRUE(cloned.ok()) << cloned.status();
  ASSERT_EQ(cloned->size(), 6u);
  EXPECT_EQ((*cloned)[0].status_url, s[0].status_url);
  EXPECT_EQ((*cloned)[0].url, "https://bitbucket.org/acme/fleet.git");
  EXPECT_EQ((*cloned)[1].status_url, s[4].status_url);
  EXPECT_EQ((*cloned)[2].status_url, "https://api.github.com/repos/acme/fleet/statuses/{commit}");
  EXPECT_EQ((*cloned)[3].status_url,
            "https://gitlab.example.com/api/v4/projects/platform%2Ffleet/statuses/{commit}");
  EXPECT_EQ((*cloned)[4].status_url, s[4].status_url);
  EXPECT_EQ((*cloned)[5].status_url, s[4].status_url);
  EXPECT_TRUE((*cloned)[3].Names("git@gitlab.example.com:platform/fleet.git"));
  // A Data Center's SSH address, with its REST root: the web address is under that root
  // (a context path, another host), and sources that fetch over SSH, from the SSH host, count.
  absl::StatusOr<std::vector<NotifySink>> data_center = ParseNotifySinks(
      "ssh://git@git.example.com:7999/plat/fleet.git bitbucket-server token-file=/t "
      "api=https://bitbucket.example.com/bb/rest/\n"
      "git@git.example.com:~jane/fleet.git bitbucket-server token-file=/t "
      "api=https://bitbucket.example.com/rest\n");
  ASSERT_TRUE(data_center.ok()) << data_center.status();
  ASSERT_EQ(data_center->size(), 2u);
  EXPECT_EQ((*data_center)[0].status_url,
            "https://bitbucket.example.com/bb/rest/api/latest/projects/plat/repos/fleet/commits/"
            "{commit}/builds");
  EXPECT_EQ((*data_center)[0].page_url,
            "https://bitbucket.example.com/bb/projects/plat/repos/fleet");
  EXPECT_TRUE((*data_center)[0].Names("ssh://git@git.example.com:7999/plat/fleet.git"));
  EXPECT_TRUE((*data_center)[0].Names("https://bitbucket.example.com/bb/scm/plat/fleet.git"));
  EXPECT_FALSE((*data_center)[0].Names("ssh://git@git.example.com:7999/plat/other.git"));
  EXPECT_EQ((*data_center)[1].status_url,
            "https://bitbucket.example.com/rest/api/latest/projects/~jane/repos/fleet/commits/"
            "{commit}/builds");
  EXPECT_TRUE((*data_center)[1].Names("ssh://git@git.example.com:7999/~jane/fleet.git"));
  const std::pair<const char*, const char*> kBad[] = {
      {"https://jane:secret@bitbucket.org/acme/fleet bitbucket token-file=/t\n",
       "holds a password"},
      {"ssh://git@git.example.com:7999/plat/fleet.git bitbucket-server token-file=/t\n",
       "give its https clone URL, or its REST root as api="},
      {"ssh://git@git.example.com:7999/plat/fleet.git bitbucket-server token-file=/t "
       "api=https://bitbucket.example.com\n",
       "api=https://HOST[/CONTEXT]/rest"},
      {"ssh://git@git.example.com:7999/fleet.git bitbucket-server token-file=/t "
       "api=https://bitbucket.example.com/rest\n",
       "/scm/PROJECT/REPO.git"},
      {"git@github.com:acme/fleet.git slack\n", "not an http(s) URL"},
      {"https://bitbucket.example.com/acme/fleet bitbucket token-file=/t\n",
       "bitbucket is Bitbucket Cloud"},
      {"https://bitbucket.org/acme bitbucket token-file=/t\n", "WORKSPACE/REPO"},
      {"https://git.example.com/plat/fleet bitbucket-server token-file=/t\n",
       "/scm/PROJECT/REPO.git"},
      {"https://dev.azure.com/acme/fleet azure-devops token-file=/t\n", "/_git/REPO"},
      {"https://dev.azure.com/_git/fleet azure-devops token-file=/t\n", "/_git/REPO"},
      {"https://github.com/a/b github token-file=/t api=http://api.example.com\n",
       "over https only"},
      {"https://example.com/x json api=https://api.example.com\n", "api= is for commit statuses"},
      {"https://github.com/a/b github token-file=/t api=https://u:p@h/api\n", "API's root URL"},
      {"https://github.com/a/b github token-file=/t api=github\n", "api= is not an http(s) URL"},
  };
  for (const auto& [text, error] : kBad) {
    absl::StatusOr<std::vector<NotifySink>> refused = ParseNotifySinks(text);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(refused.status().message(), HasSubstr(error)) << text;
  }
}

TEST(CommitStatusRequestTest, BitbucketAndAzureDevOpsGetTheirWordsAndKeys) {
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      "https://bitbucket.org/acme/fleet bitbucket token-file=/t\n"
      "https://git.example.com/scm/plat/fleet.git bitbucket-server token-file=/t "
      "details=https://grafana.example.com/d/gitfleet?var-bundle={bundle}\n"
      "https://dev.azure.com/acme/Platform/_git/fleet azure-devops token-file=/t\n");
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  CommitStatus status;
  status.commit = "0123456789abcdef0123456789abcdef01234567";
  status.state = CommitStatus::State::kFailure;
  status.description = "the render failed";
  StatusRequest cloud = CommitStatusRequest((*sinks)[0], "web", status, "jane:app-password");
  EXPECT_EQ(cloud.url, "https://api.bitbucket.org/2.0/repositories/acme/fleet/commit/" +
                           status.commit + "/statuses/build");
  EXPECT_EQ(nlohmann::json::parse(cloud.body),
            nlohmann::json({{"state", "FAILED"},
                            {"key", "gitfleet/web"},
                            {"name", "gitfleet/web"},
                            {"description", "the render failed"},
                            {"url", "https://bitbucket.org/acme/fleet"}}));
  EXPECT_THAT(cloud.headers, ::testing::Contains("Authorization: Basic " +
                                                 absl::Base64Escape("jane:app-password")));
  EXPECT_THAT(CommitStatusRequest((*sinks)[0], "web", status, "ATCTT3x").headers,
              ::testing::Contains("Authorization: Bearer ATCTT3x"));
  // A key is at most 40 bytes: a long bundle name's is a digest of it.
  const std::string long_name(50, 'b');
  const std::string key =
      nlohmann::json::parse(CommitStatusRequest((*sinks)[0], long_name, status, "t").body)["key"];
  EXPECT_EQ(key.size(), 40u);
  EXPECT_TRUE(absl::StartsWith(key, "gitfleet-")) << key;
  EXPECT_NE(key, std::string(nlohmann::json::parse(
                     CommitStatusRequest((*sinks)[0], long_name + "c", status, "t").body)["key"]));
  StatusRequest server = CommitStatusRequest((*sinks)[1], "web", status, "BBDC-token");
  EXPECT_EQ(server.url,
            "https://git.example.com/rest/api/latest/projects/plat/repos/fleet/commits/" +
                status.commit + "/builds");
  EXPECT_EQ(nlohmann::json::parse(server.body)["url"],
            "https://grafana.example.com/d/gitfleet?var-bundle=web");
  EXPECT_THAT(server.headers, ::testing::Contains("Authorization: Bearer BBDC-token"));
  StatusRequest azure = CommitStatusRequest((*sinks)[2], "web", status, "pat");
  EXPECT_EQ(azure.url, "https://dev.azure.com/acme/Platform/_apis/git/repositories/fleet/commits/" +
                           status.commit + "/statuses?api-version=6.0");
  EXPECT_EQ(nlohmann::json::parse(azure.body),
            nlohmann::json({{"state", "failed"},
                            {"description", "the render failed"},
                            {"context", {{"genre", "gitfleet"}, {"name", "web"}}}}));
  EXPECT_THAT(azure.headers,
              ::testing::Contains("Authorization: Basic " + absl::Base64Escape(":pat")));
  EXPECT_THAT(CommitStatusRequest((*sinks)[2], "web", status, "eyJ0eXAi.eyJhdWQi.c2ln").headers,
              ::testing::Contains("Authorization: Bearer eyJ0eXAi.eyJhdWQi.c2ln"));
  const auto state = [&](size_t sink, CommitStatus::State state) {
    status.state = state;
    return std::string(nlohmann::json::parse(
        CommitStatusRequest((*sinks)[sink], "web", status, "t").body)["state"]);
  };
  EXPECT_EQ(state(0, CommitStatus::State::kPending), "INPROGRESS");
  EXPECT_EQ(state(0, CommitStatus::State::kSuccess), "SUCCESSFUL");
  EXPECT_EQ(state(0, CommitStatus::State::kSuperseded), "STOPPED");
  EXPECT_EQ(state(1, CommitStatus::State::kSuperseded), "CANCELLED");
  EXPECT_EQ(state(2, CommitStatus::State::kPending), "pending");
  EXPECT_EQ(state(2, CommitStatus::State::kSuccess), "succeeded");
  EXPECT_EQ(state(2, CommitStatus::State::kSuperseded), "notApplicable");
}

// A commit-status sink posts a bundle's state when its commit or state changes, for the
// bundles of its repository alone; a refusal of the token is not tried again.
TEST_F(NotifierTest, CommitStatusesFollowEachBundlesVerdict) {
  testing::WebhookSink github;
  absl::Status started = github.Start(testing::TempDir("github-api"), 0);
  if (!started.ok()) GTEST_SKIP() << started;
  testing::WebhookSink refusing;
  ASSERT_TRUE(
      refusing.Start(testing::TempDir("refusing-api"), 100, 401, R"({"message":"Bad credentials"})")
          .ok());
  testing::WebhookSink others;  // for bundle api alone
  ASSERT_TRUE(others.Start(testing::TempDir("others-api")).ok());
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(absl::StrCat(
      "http://127.0.0.1:", github.port(), "/acme/fleet github token-file=/t\n",
      "http://127.0.0.1:", refusing.port(), "/acme/fleet gitea token-file=/t\n",
      "http://127.0.0.1:", others.port(), "/acme/fleet gitea token-file=/t bundles=api\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  struct Judged {
    Mutex mu;
    std::map<std::string, CommitStatus> bundles ABSL_GUARDED_BY(mu);
    int asked ABSL_GUARDED_BY(mu) = 0;
    std::set<std::string> settled ABSL_GUARDED_BY(mu);  // "BUNDLE COMMIT" asked with
  };
  auto judged = std::make_shared<Judged>();
  const std::string commit1(40, '1'), commit2(40, '2');
  auto set = [&](const std::string& bundle, const std::string& url, const std::string& commit,
                 CommitStatus::State state, const std::string& description) {
    MutexLock lock(&judged->mu);
    judged->bundles[bundle] = {url, commit, state, description};
  };
  // The repository as the sources name it (the port aside: the API and Git may differ).
  set("web", "http://127.0.0.1:1/acme/fleet.git", commit1, CommitStatus::State::kPending,
      "0 of 2 clusters run it Healthy");
  set("other", "http://127.0.0.1:1/acme/other", commit1, CommitStatus::State::kSuccess, "done");
  EventBus bus;
  Notifier::Options options;
  options.sinks = *sinks;
  options.token = [](const NotifySink& sink) { return absl::StrCat("token-", sink.line); };
  options.judge = [judged](const std::string& bundle,
                           const std::string& settled) -> absl::StatusOr<CommitStatus> {
    MutexLock lock(&judged->mu);
    ++judged->asked;
    judged->settled.insert(bundle + " " + settled);
    auto found = judged->bundles.find(bundle);
    if (found == judged->bundles.end()) return absl::NotFoundError("gone");
    return found->second;
  };
  options.bundles = [judged]() -> absl::StatusOr<std::vector<std::string>> {
    MutexLock lock(&judged->mu);
    std::vector<std::string> names;
    for (const auto& [name, status] : judged->bundles) names.push_back(name);
    return names;
  };
  options.status_interval = absl::Milliseconds(50);
  options.retry_base = absl::Milliseconds(50);
  options.github_spacing = absl::ZeroDuration();
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  // At start: web's pending (other's repository is another).
  auto posted = [&](size_t count) {
    return testing::Eventually(
        [&] { return github.Posts().size() >= count && refusing.Posts().size() >= count; });
  };
  ASSERT_TRUE(posted(1)) << github.Log();
  // Pending, it is judged again at each interval: while nothing changes, nothing is posted;
  // once it is done, without an event, the success is.
  absl::SleepFor(absl::Milliseconds(250));
  EXPECT_EQ(github.Posts().size(), 1u);
  set("web", "http://127.0.0.1:1/acme/fleet.git", commit1, CommitStatus::State::kSuccess,
      "rolled out, Healthy on 2 clusters");
  ASSERT_TRUE(posted(2)) << github.Log();
  // Asked again, it is told the commit is settled (by the sink that posted the success).
  bus.Publish(EventOf("rollout.done", "web", ""));
  EXPECT_TRUE(testing::Eventually([&] {
    MutexLock lock(&judged->mu);
    return judged->settled.count("web " + commit1) > 0;
  }));
  set("web", "git@127.0.0.1:acme/fleet.git", commit2, CommitStatus::State::kFailure,
      "the render of 222222222222 failed");
  bus.Publish(EventOf("render.failed", "web", ""));
  bus.Publish(EventOf("render.failed", "other", ""));
  ASSERT_TRUE(posted(3)) << github.Log();
  bus.Publish(EventOf("rollout.paused", "web", ""));  // the same verdict: nothing
  absl::SleepFor(absl::Milliseconds(300));
  std::vector<nlohmann::json> posts = github.Posts();
  ASSERT_EQ(posts.size(), 3u) << github.Log();
  EXPECT_EQ(posts[0]["path"], "/api/v3/repos/acme/fleet/statuses/" + commit1);
  EXPECT_EQ(posts[0]["authorization"], "Bearer token-1");
  EXPECT_EQ(posts[0]["accept"], "application/vnd.github+json");
  EXPECT_EQ(nlohmann::json::parse(std::string(posts[0]["body"])),
            nlohmann::json({{"state", "pending"},
                            {"context", "gitfleet/web"},
                            {"description", "0 of 2 clusters run it Healthy"}}));
  EXPECT_EQ(nlohmann::json::parse(std::string(posts[1]["body"]))["state"], "success");
  EXPECT_EQ(posts[2]["path"], "/api/v3/repos/acme/fleet/statuses/" + commit2);
  EXPECT_EQ(nlohmann::json::parse(std::string(posts[2]["body"]))["state"], "failure");
  EXPECT_EQ(Count("1", "sent"), 3);
  // The refusing API is sent each status once (a bad token stays bad): not again at once,
  // nor at each interval while the bundle is pending.
  std::vector<nlohmann::json> refused = refusing.Posts();
  EXPECT_EQ(refused.size(), 3u) << refusing.Log();
  if (!refused.empty()) {
    EXPECT_EQ(refused[0]["authorization"], "token token-2");
  }
  EXPECT_EQ(Count("2", "failed"), 3);
  EXPECT_EQ(Count("2", "retried"), 0);
  EXPECT_THAT(others.Posts(), ::testing::IsEmpty()) << others.Log();
  notifier.Stop();
}

// A commit still rolling out when a later one goes out is told it was superseded, in each
// host's word for it; one whose later commit failed to render is not (it is what runs). A
// Bitbucket Data Center that refuses CANCELLED (before 8) is told INPROGRESS instead.
TEST_F(NotifierTest, ACommitOvertakenWhileRollingOutIsSaidToBeSuperseded) {
  testing::WebhookSink github, gitea, data_center;
  absl::Status started = github.Start(testing::TempDir("superseded-github"), 0);
  if (!started.ok()) GTEST_SKIP() << started;
  ASSERT_TRUE(gitea.Start(testing::TempDir("superseded-gitea")).ok());
  ASSERT_TRUE(
      data_center.Start(testing::TempDir("superseded-bbdc"), 0, 500, "", "", "CANCELLED").ok());
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(absl::StrCat(
      "http://127.0.0.1:", github.port(), "/acme/fleet github token-file=/t\n", "http://127.0.0.1:",
      gitea.port(), "/acme/fleet gitea token-file=/t\n", "http://127.0.0.1:", data_center.port(),
      "/scm/acme/fleet.git bitbucket-server token-file=/t\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  auto verdict = std::make_shared<std::pair<Mutex, CommitStatus>>();
  const std::string a(40, 'a'), b(40, 'b'), c(40, 'c');
  auto set = [&](const std::string& commit, CommitStatus::State state) {
    MutexLock lock(&verdict->first);
    verdict->second = {"http://127.0.0.1/acme/fleet", commit, state, "said"};
  };
  set(a, CommitStatus::State::kPending);
  EventBus bus;
  Notifier::Options options;
  options.sinks = *sinks;
  options.judge = [verdict](const std::string&,
                            const std::string&) -> absl::StatusOr<CommitStatus> {
    MutexLock lock(&verdict->first);
    return verdict->second;
  };
  options.bundles = []() -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>{"web"};
  };
  options.status_interval = absl::Milliseconds(20);
  options.github_spacing = absl::ZeroDuration();  // not what this tests
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  auto states = [](const testing::WebhookSink& sink) {
    std::vector<std::string> out;
    for (const nlohmann::json& post : sink.Posts()) {
      const std::string path = post["path"];
      out.push_back(
          absl::StrCat(path.substr(path.size() - 1), " ",
                       std::string(nlohmann::json::parse(std::string(post["body"]))["state"])));
    }
    return out;
  };
  // Each step once both sinks have posted the one before.
  auto posted = [&](size_t count) {
    return testing::Eventually(
        [&] { return github.Posts().size() >= count && gitea.Posts().size() >= count; });
  };
  ASSERT_TRUE(posted(1));
  set(b, CommitStatus::State::kFailure);  // b's render failed: a runs still
  bus.Publish(EventOf("render.failed", "web", ""));
  ASSERT_TRUE(posted(2));
  set(c, CommitStatus::State::kPending);  // c goes out: a is superseded
  bus.Publish(EventOf("render.done", "web", ""));
  ASSERT_TRUE(posted(4)) << github.Log() << gitea.Log();
  set(c, CommitStatus::State::kSuccess);  // seen at the next interval: c is pending
  ASSERT_TRUE(posted(5)) << github.Log() << gitea.Log();
  EXPECT_THAT(states(github),
              ElementsAre("a pending", "b failure", "a pending", "c pending", "c success"));
  EXPECT_THAT(states(gitea),
              ElementsAre("a pending", "b failure", "a warning", "c pending", "c success"));
  ASSERT_TRUE(testing::Eventually([&] { return data_center.Posts().size() >= 6; }))
      << data_center.Log();
  std::vector<std::string> words;
  for (const nlohmann::json& post : data_center.Posts()) {
    const std::string path = post["path"];  // .../commits/C/builds
    words.push_back(
        absl::StrCat(path.substr(path.size() - std::string("a/builds").size(), 1), " ",
                     std::string(nlohmann::json::parse(std::string(post["body"]))["state"]), " ",
                     post["code"].get<int>()));
  }
  EXPECT_THAT(words, ElementsAre("a INPROGRESS 200", "b FAILED 200", "a CANCELLED 400",
                                 "a INPROGRESS 200", "c INPROGRESS 200", "c SUCCESSFUL 200"));
  EXPECT_THAT(
      std::string(nlohmann::json::parse(std::string(github.Posts()[2]["body"]))["description"]),
      HasSubstr("superseded by cccccccccccc before it rolled out everywhere"));
  notifier.Stop();
}

// A suspended bundle's pending status is judged when an event names it (its resume), and
// each quiet_interval meanwhile, not at every status_interval: a bundle suspended for days
// is not looked at each second all that time.
TEST_F(NotifierTest, ASuspendedBundleIsNotJudgedEachInterval) {
  testing::WebhookSink github;
  absl::Status started = github.Start(testing::TempDir("quiet-github"), 0);
  if (!started.ok()) GTEST_SKIP() << started;
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      absl::StrCat("http://127.0.0.1:", github.port(), "/acme/fleet github token-file=/t\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  struct Judged {
    Mutex mu;
    int asked ABSL_GUARDED_BY(mu) = 0;
    bool suspended ABSL_GUARDED_BY(mu) = true;
  };
  auto judged = std::make_shared<Judged>();
  EventBus bus;
  Notifier::Options options = Judging(*sinks, CommitStatus::State::kPending);
  options.judge = [judged](const std::string&, const std::string&) -> absl::StatusOr<CommitStatus> {
    MutexLock lock(&judged->mu);
    ++judged->asked;
    CommitStatus status{"http://127.0.0.1/acme/fleet", std::string(40, 'a'),
                        CommitStatus::State::kPending, "suspended"};
    status.awaits_event = judged->suspended;
    return status;
  };
  options.status_interval = absl::Milliseconds(20);
  options.quiet_interval = absl::Milliseconds(600);
  options.github_spacing = absl::ZeroDuration();
  auto asked = [judged] {
    MutexLock lock(&judged->mu);
    return judged->asked;
  };
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  ASSERT_TRUE(testing::Eventually([&] { return github.Posts().size() == 1; })) << github.Log();
  absl::SleepFor(absl::Milliseconds(300));  // fifteen intervals
  EXPECT_EQ(asked(), 1) << "judged at start, and not again within the quiet interval";
  ASSERT_TRUE(testing::Eventually([&] { return asked() >= 2; })) << "the quiet interval";
  // Resumed: the event names it, and it is judged at each interval again.
  {
    MutexLock lock(&judged->mu);
    judged->suspended = false;
  }
  const int before = asked();
  bus.Publish(EventOf("bundle.resumed", "web", "resumed"));
  ASSERT_TRUE(testing::Eventually([&] { return asked() >= before + 5; }));
  EXPECT_EQ(github.Posts().size(), 1u) << "pending all along: posted once";
  notifier.Stop();
}

// A sink with bundles= gets the events about those bundles alone.
TEST_F(NotifierTest, ASinkOfSomeBundlesGetsTheirEventsAlone) {
  testing::WebhookSink team;
  absl::Status started = team.Start(testing::TempDir("team-sink"), 0);
  if (!started.ok()) GTEST_SKIP() << started;
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      absl::StrCat("http://127.0.0.1:", team.port(), "/team slack bundles=api,web\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  EventBus bus;
  Notifier::Options options;
  options.sinks = *sinks;
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  bus.Publish(EventOf("render.failed", "billing", "not theirs"));
  bus.Publish(EventOf("render.failed", "web", "theirs"));
  bus.Publish(EventOf("rollout.done", "api", "theirs too"));
  ASSERT_TRUE(testing::Eventually([&] { return team.Posts().size() >= 2; })) << team.Log();
  absl::SleepFor(absl::Milliseconds(200));
  std::vector<nlohmann::json> posts = team.Posts();
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[0]["body"], R"({"text":"gitfleet render.failed bundle=web: theirs"})");
  EXPECT_EQ(posts[1]["body"], R"({"text":"gitfleet rollout.done bundle=api: theirs too"})");
  notifier.Stop();
}

// A sink with clusters= is told of those clusters alone: what happens on one, and to the
// bundles and sources that concern one (as Options::concerns says); bundles= by glob.
TEST_F(NotifierTest, ASinkOfSomeClustersGetsTheirEventsAlone) {
  testing::WebhookSink prod;
  absl::Status started = prod.Start(testing::TempDir("prod-sink"), 0);
  if (!started.ok()) GTEST_SKIP() << started;
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      absl::StrCat("http://127.0.0.1:", prod.port(),
                   "/prod slack cluster.,render.,source. bundles=pay* clusters=env=prod\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  EventBus bus;
  Notifier::Options options;
  options.sinks = *sinks;
  options.concerns = [](const v1::Event& event, const LabelSelector& clusters) {
    const std::string where = !event.cluster().empty() ? event.cluster() : event.bundle();
    return clusters.Matches({{"env", where == "p1" || where == "payments" ? "prod" : "dev"}});
  };
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  auto on = [](const std::string& type, const std::string& bundle, const std::string& cluster,
               const std::string& message) {
    v1::Event event = EventOf(type, bundle, message);
    event.set_cluster(cluster);
    return event;
  };
  bus.Publish(on("cluster.failed", "payments", "d1", "dev's"));
  bus.Publish(on("cluster.failed", "payments", "p1", "prod's"));
  bus.Publish(on("cluster.failed", "web", "p1", "not a bundle of theirs"));
  bus.Publish(on("render.failed", "payments-api", "", "reaches no prod cluster"));
  bus.Publish(on("render.failed", "payments", "", "reaches prod"));
  ASSERT_TRUE(testing::Eventually([&] { return prod.Posts().size() >= 2; })) << prod.Log();
  absl::SleepFor(absl::Milliseconds(200));
  std::vector<nlohmann::json> posts = prod.Posts();
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[0]["body"],
            R"({"text":"gitfleet cluster.failed bundle=payments cluster=p1: prod's"})");
  EXPECT_EQ(posts[1]["body"], R"({"text":"gitfleet render.failed bundle=payments: reaches prod"})");
  notifier.Stop();
}

// A Bitbucket Data Center's and an Azure DevOps Server's statuses go to their APIs under
// the servers' paths, for the bundles whose sources fetch the repository over SSH too.
TEST_F(NotifierTest, ServersUnderAPathTakeTheStatusesOfTheirRepositories) {
  testing::WebhookSink bitbucket, azure;
  absl::Status started = bitbucket.Start(testing::TempDir("bitbucket-api"), 0);
  if (!started.ok()) GTEST_SKIP() << started;
  ASSERT_TRUE(azure.Start(testing::TempDir("azure-api")).ok());
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(absl::StrCat(
      "http://127.0.0.1:", bitbucket.port(),
      "/bitbucket/scm/plat/fleet.git bitbucket-server token-file=/t\n", "http://127.0.0.1:",
      azure.port(), "/tfs/Main/Platform/_git/fleet azure-devops token-file=/t\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  const std::string commit(40, 'c');
  std::map<std::string, CommitStatus> verdicts = {
      {"web",
       {"ssh://git@127.0.0.1:7999/plat/fleet.git", commit, CommitStatus::State::kSuccess, "done"}},
      {"api",
       {"ssh://127.0.0.1:22/tfs/Main/Platform/_git/fleet", commit, CommitStatus::State::kPending,
        "0 of 1 clusters run it Healthy"}},
      {"billing",
       {"https://127.0.0.1/bitbucket/scm/plat/billing.git", commit, CommitStatus::State::kSuccess,
        "done"}}};
  EventBus bus;
  Notifier::Options options;
  options.sinks = *sinks;
  options.token = [](const NotifySink& sink) {
    return sink.format == NotifySink::Format::kAzureDevOps ? "pat" : "bbdc";
  };
  options.judge = [verdicts](const std::string& bundle,
                             const std::string&) -> absl::StatusOr<CommitStatus> {
    return verdicts.at(bundle);
  };
  options.bundles = []() -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>{"api", "billing", "web"};
  };
  options.status_interval = absl::Milliseconds(50);
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  ASSERT_TRUE(testing::Eventually([&] {
    return !bitbucket.Posts().empty() && !azure.Posts().empty();
  })) << bitbucket.Log()
      << azure.Log();
  absl::SleepFor(absl::Milliseconds(200));
  std::vector<nlohmann::json> posts = bitbucket.Posts();
  ASSERT_EQ(posts.size(), 1u) << bitbucket.Log();
  EXPECT_EQ(posts[0]["path"],
            "/bitbucket/rest/api/latest/projects/plat/repos/fleet/commits/" + commit + "/builds");
  EXPECT_EQ(posts[0]["authorization"], "Bearer bbdc");
  nlohmann::json body = nlohmann::json::parse(std::string(posts[0]["body"]));
  EXPECT_EQ(body["state"], "SUCCESSFUL");
  EXPECT_EQ(body["key"], "gitfleet/web");
  EXPECT_EQ(body["url"], absl::StrCat("http://127.0.0.1:", bitbucket.port(),
                                      "/bitbucket/projects/plat/repos/fleet"));
  posts = azure.Posts();
  ASSERT_EQ(posts.size(), 1u) << azure.Log();
  EXPECT_EQ(posts[0]["path"], "/tfs/Main/Platform/_apis/git/repositories/fleet/commits/" + commit +
                                  "/statuses?api-version=6.0");
  EXPECT_EQ(posts[0]["authorization"], "Basic " + absl::Base64Escape(":pat"));
  EXPECT_EQ(nlohmann::json::parse(std::string(posts[0]["body"]))["state"], "pending");
  notifier.Stop();
}

// A token that cannot be had yet (a GitHub App's API down) fails the post; a pending
// bundle's status goes once it can.
TEST_F(NotifierTest, AStatusWaitsForItsToken) {
  testing::WebhookSink github;
  absl::Status started = github.Start(testing::TempDir("tokenless-api"), 0);
  if (!started.ok()) GTEST_SKIP() << started;
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      absl::StrCat("http://127.0.0.1:", github.port(), "/acme/fleet github credential=app\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  auto minted = std::make_shared<std::atomic<bool>>(false);
  EventBus bus;
  Notifier::Options options = Judging(*sinks, CommitStatus::State::kPending);
  options.token = [minted](const NotifySink&) -> absl::StatusOr<std::string> {
    if (!minted->load()) return absl::UnavailableError("cannot reach the App's API");
    return std::string("ghs_minted");
  };
  options.github_spacing = absl::ZeroDuration();  // not what this tests
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  EXPECT_TRUE(testing::Eventually([&] { return Count("1", "failed") >= 2; }));
  EXPECT_THAT(github.Posts(), ::testing::IsEmpty());
  minted->store(true);
  ASSERT_TRUE(testing::Eventually([&] { return !github.Posts().empty(); })) << github.Log();
  absl::SleepFor(absl::Milliseconds(200));
  std::vector<nlohmann::json> posts = github.Posts();
  ASSERT_EQ(posts.size(), 1u) << github.Log();
  EXPECT_EQ(posts[0]["authorization"], "Bearer ghs_minted");
  notifier.Stop();
}

// The file read again: a sink that did not change keeps its worker (a commit status it
// posted is not posted again), a removed one stops, a new one starts.
TEST_F(NotifierTest, AFileReadAgainChangesTheSinksThatChangedAlone) {
  testing::WebhookSink kept, removed, added, statuses;
  absl::Status started = kept.Start(testing::TempDir("kept-sink"), 0);
  if (!started.ok()) GTEST_SKIP() << started;
  ASSERT_TRUE(removed.Start(testing::TempDir("removed-sink")).ok());
  ASSERT_TRUE(added.Start(testing::TempDir("added-sink")).ok());
  ASSERT_TRUE(statuses.Start(testing::TempDir("statuses-sink")).ok());
  const std::string status_line =
      absl::StrCat("http://127.0.0.1:", statuses.port(), "/acme/fleet github token-file=/t\n");
  auto read = [&](const std::string& text) {
    absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(text);
    EXPECT_TRUE(sinks.ok()) << sinks.status();
    return std::make_shared<const std::vector<NotifySink>>(*sinks);
  };
  struct File {
    Mutex mu;
    std::shared_ptr<const std::vector<NotifySink>> sinks ABSL_GUARDED_BY(mu);
  };
  auto file = std::make_shared<File>();
  {
    MutexLock lock(&file->mu);
    file->sinks = read(absl::StrCat("http://127.0.0.1:", kept.port(), "/kept slack\n", status_line,
                                    "http://127.0.0.1:", removed.port(), "/removed slack\n"));
  }
  EventBus bus;
  Notifier::Options options;
  {
    MutexLock lock(&file->mu);
    options = Judging(*file->sinks, CommitStatus::State::kSuccess);
  }
  options.reload = [file] {
    MutexLock lock(&file->mu);
    return file->sinks;
  };
  options.reload_interval = absl::Milliseconds(20);
  options.github_spacing = absl::ZeroDuration();  // not what this tests
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  bus.Publish(EventOf("render.failed", "web", "one"));
  ASSERT_TRUE(testing::Eventually([&] {
    return kept.Posts().size() == 1 && removed.Posts().size() == 1 && statuses.Posts().size() == 1;
  })) << kept.Log()
      << removed.Log() << statuses.Log();
  {
    MutexLock lock(&file->mu);
    file->sinks = read(absl::StrCat("http://127.0.0.1:", kept.port(), "/kept slack\n", status_line,
                                    "http://127.0.0.1:", added.port(), "/added slack\n"));
  }
  // The new sink hears events once its worker subscribed.
  int published = 0;
  ASSERT_TRUE(testing::Eventually([&] {
    bus.Publish(EventOf("render.failed", "web", absl::StrCat("two-", ++published)));
    absl::SleepFor(absl::Milliseconds(20));
    return !added.Posts().empty();
  })) << added.Log();
  absl::SleepFor(absl::Milliseconds(200));
  // Every event reached the removed sink or the added one (both, while one replaced the
  // other), and the added one none from before it was added.
  std::set<std::string> to_kept, to_others;
  for (const nlohmann::json& post : kept.Posts()) to_kept.insert(post["body"]);
  for (const auto* sink : {&removed, &added}) {
    for (const nlohmann::json& post : sink->Posts()) to_others.insert(post["body"]);
  }
  EXPECT_EQ(to_kept, to_others) << removed.Log() << added.Log();
  EXPECT_EQ(to_kept.size(), published + 1u);
  EXPECT_THAT(added.Log(), Not(HasSubstr(": one"))) << "not sent what came before it";
  EXPECT_EQ(statuses.Posts().size(), 1u) << "its worker kept: " << statuses.Log();
  // A line inserted above moves the others: each keeps its worker (the statuses are not
  // posted again), and its outcomes are counted under its new line.
  const double sent_before = Count("1", "sent");
  {
    MutexLock lock(&file->mu);
    file->sinks = read(absl::StrCat(
        "# the chat rooms, then the statuses\n", "http://127.0.0.1:", added.port(),
        "/added slack\n", "http://127.0.0.1:", kept.port(), "/kept slack\n", status_line));
  }
  absl::SleepFor(absl::Milliseconds(200));  // ten reloads
  const size_t kept_before = kept.Posts().size();
  const double on_2 = Count("2", "sent"), on_3 = Count("3", "sent");
  bus.Publish(EventOf("render.failed", "web", "three"));
  ASSERT_TRUE(testing::Eventually([&] { return kept.Posts().size() > kept_before; })) << kept.Log();
  ASSERT_TRUE(testing::Eventually([&] { return Count("2", "sent") > on_2; })) << added.Log();
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Count("3", "sent"), on_3 + 1) << "the kept room, now on line 3";
  EXPECT_EQ(Count("2", "sent"), on_2 + 1) << "the added room, now on line 2";
  EXPECT_EQ(Count("1", "sent"), sent_before) << "line 1 is a comment now";
  EXPECT_EQ(kept.Posts().size(), kept_before + 1);
  EXPECT_EQ(statuses.Posts().size(), 1u) << "moved, not restarted: " << statuses.Log();
  notifier.Stop();
}

// A rate limit is waited out as the API asks, not taken for a refusal of the status:
// GitHub's secondary limit (403 with Retry-After), Slack's 429.
TEST_F(NotifierTest, ARateLimitIsWaitedOutAsAsked) {
  testing::WebhookSink github, slack;
  absl::Status started =
      github.Start(testing::TempDir("limited-github"), 1, 403,
                   R"({"message":"You have exceeded a secondary rate limit."})", "Retry-After: 1");
  if (!started.ok()) GTEST_SKIP() << started;
  ASSERT_TRUE(
      slack.Start(testing::TempDir("limited-slack"), 1, 429, "rate_limited", "Retry-After: 1")
          .ok());
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      absl::StrCat("http://127.0.0.1:", github.port(), "/acme/fleet github token-file=/t\n",
                   "http://127.0.0.1:", slack.port(), "/room slack\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  EventBus bus;
  Notifier::Options options = Judging(*sinks, CommitStatus::State::kSuccess);
  options.max_attempts = 1;  // a rate limit is no try
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  const absl::Time start = absl::Now();
  bus.Publish(EventOf("render.failed", "web", "one"));
  ASSERT_TRUE(testing::Eventually([&] {
    return github.Posts().size() >= 2 && slack.Posts().size() >= 2;
  })) << github.Log()
      << slack.Log();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900)) << "waited as asked";
  for (const auto* sink : {&github, &slack}) {
    std::vector<nlohmann::json> posts = sink->Posts();
    ASSERT_EQ(posts.size(), 2u) << sink->Log();
    EXPECT_NE(posts[0]["code"], 200);
    EXPECT_EQ(posts[1]["code"], 200);
    EXPECT_EQ(posts[0]["body"], posts[1]["body"]);
  }
  EXPECT_EQ(Count("1", "sent"), 1);
  EXPECT_EQ(Count("1", "failed"), 0);
  EXPECT_EQ(Count("2", "sent"), 1);
  notifier.Stop();
}

// GitHub's statuses go a second apart at least, as GitHub asks of requests that create
// content (a rollout of many bundles would meet its secondary rate limit).
TEST_F(NotifierTest, GitHubStatusesGoASecondApart) {
  testing::WebhookSink github;
  absl::Status started = github.Start(testing::TempDir("paced-github"));
  if (!started.ok()) GTEST_SKIP() << started;
  absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(
      absl::StrCat("http://127.0.0.1:", github.port(), "/acme/fleet github token-file=/t\n"));
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  EventBus bus;
  Notifier::Options options = Judging(*sinks, CommitStatus::State::kSuccess, {"api", "db", "web"});
  const absl::Time start = absl::Now();
  Notifier notifier(options, &bus, outcomes_);
  ASSERT_TRUE(notifier.Start().ok());
  ASSERT_TRUE(testing::Eventually([&] { return github.Posts().size() >= 3; })) << github.Log();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(1900)) << "then one a second";
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
