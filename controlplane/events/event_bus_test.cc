#include "controlplane/events/event_bus.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_system.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A watcher's type filter names a type or a family; anything else is refused, naming the
// types there are.
TEST(EventTypesTest, AFilterMustNameATypeOrAFamily) {
  for (const char* good : {"rollout.", "cluster.health", "resync", "source.", "bundle.pinned",
                           "rollout.out_of_turn", "rollout.baking", "bundle.prune_held"}) {
    EXPECT_TRUE(CheckEventTypeFilter(good).ok()) << good;
  }
  for (const char* bad : {"bogus", "rollout.pause", "", "x.", "cluster.healthy", "."}) {
    absl::Status refused = CheckEventTypeFilter(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(refused)) << bad;
    EXPECT_THAT(std::string(refused.message()), HasSubstr("want one of source.commit, "));
  }
}

// admin.proto's Event.type documents every type the code has, and no other.
TEST(EventTypesTest, TheProtoDocumentsEveryType) {
  absl::StatusOr<std::string> proto = PosixFileSystem().ReadFile("proto/gitfleet/v1/admin.proto");
  ASSERT_TRUE(proto.ok()) << proto.status();
  const size_t start = proto->find("message Event {");
  const size_t end = proto->find("string type = 3;", start);
  ASSERT_NE(end, std::string::npos);
  const std::string doc = proto->substr(start, end - start);
  std::set<std::string> documented;
  for (absl::string_view word : absl::StrSplit(doc, absl::ByAnyChar(" ,;:()/\n"))) {
    word = absl::StripSuffix(word, ".");
    const bool lower = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
      return absl::ascii_islower(c) || c == '.' || c == '_';
    });
    // "source.commit", not "google.protobuf.Timestamp" or "BundleInfo.waiting".
    if (lower && (absl::StrContains(word, ".") || word == "resync") &&
        !absl::StartsWith(word, "google.")) {
      documented.insert(std::string(word));
    }
  }
  std::set<std::string> known(std::begin(kEventTypes), std::end(kEventTypes));
  EXPECT_EQ(documented, known);
}

std::vector<std::string> Types(const std::vector<v1::Event>& events) {
  std::vector<std::string> out;
  for (const v1::Event& e : events) out.push_back(e.type());
  return out;
}

TEST(EventBusTest, SubscribersGetTheRecentOnesThenNewOnesThatMatchInOrder) {
  FakeClock clock;
  EventBus bus(/*recent=*/3, /*queue=*/10, &clock);
  bus.Publish(MakeEvent("render.done", "old", "", "1 object"));
  bus.Publish(MakeEvent("source.commit", "", "", "c1", "abc", "", "app"),
              std::make_shared<std::vector<std::string>>(std::vector<std::string>{"api", "web"}));
  bus.Publish(MakeEvent("render.done", "web", "", "2 objects"));
  int wakeups = 0;
  auto sub = *bus.Subscribe({"web", "c1"}, [&] { ++wakeups; });
  bus.Publish(MakeEvent("cluster.applied", "web", "c2", ""));  // another cluster
  bus.Publish(MakeEvent("cluster.applied", "web", "c1", ""));
  bus.Publish(MakeEvent("cluster.health", "web", "c1", "healthy"));
  bus.Publish(MakeEvent("cluster.connected", "", "c1", ""));  // not about a bundle
  EXPECT_EQ(wakeups, 0) << "the recent events were queued already: nothing to wake";
  std::vector<v1::Event> events = sub->Take();
  EXPECT_THAT(Types(events),
              ElementsAre("source.commit", "render.done", "cluster.applied", "cluster.health"));
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GT(events[i].sequence(), events[i - 1].sequence());
  }
  EXPECT_TRUE(sub->Take().empty());
  bus.Publish(MakeEvent("cluster.failed", "web", "c1", ""));
  EXPECT_EQ(wakeups, 1) << "woken when its queue stops being empty";
  bus.Publish(MakeEvent("cluster.health", "web", "c1", ""));
  EXPECT_EQ(wakeups, 1);
}

TEST(EventBusTest, ABundlesWatcherSeesCommitsOfTheSourcesItReadsOnly) {
  EventBus bus;
  auto reading = [](std::vector<std::string> bundles) {
    return std::make_shared<const std::vector<std::string>>(std::move(bundles));
  };
  bus.Publish(MakeEvent("source.commit", "", "", "before", "a1", "", "app"), reading({"web"}));
  auto web = *bus.Subscribe({"web", ""}, nullptr);
  auto api = *bus.Subscribe({"api", ""}, nullptr);
  auto all = *bus.Subscribe({}, nullptr);
  auto c1 = *bus.Subscribe({"", "c1"}, nullptr);
  bus.Publish(MakeEvent("source.commit", "", "", "infra change", "b1", "", "infra"),
              reading({"api", "crds"}));
  bus.Publish(MakeEvent("source.commit", "", "", "nobody reads it", "c1", "", "docs"), reading({}));
  bus.Publish(MakeEvent("source.commit", "", "", "no audience given", "d1", "", "old"));
  auto commits = [](const std::vector<v1::Event>& events) {
    std::vector<std::string> out;
    for (const v1::Event& e : events) out.push_back(e.commit());
    return out;
  };
  EXPECT_THAT(commits(web->Take()), ElementsAre("a1")) << "only the source web reads";
  EXPECT_THAT(commits(api->Take()), ElementsAre("b1"));
  EXPECT_THAT(commits(all->Take()), ElementsAre("a1", "b1", "c1", "d1"));
  EXPECT_THAT(commits(c1->Take()), ElementsAre("a1", "b1", "c1", "d1"))
      << "a commit concerns every cluster";
}

// A notification sink's bundles=: events about any of them, and the commits of the sources
// they read.
TEST(EventBusTest, AWatcherOfSeveralBundlesSeesEachOfTheirs) {
  EventBus bus;
  auto reading = [](std::vector<std::string> bundles) {
    return std::make_shared<const std::vector<std::string>>(std::move(bundles));
  };
  EventBus::Filter filter;
  filter.bundles = {"api", "web"};
  auto team = *bus.Subscribe(filter, nullptr);
  bus.Publish(MakeEvent("render.done", "web", "", "w"));
  bus.Publish(MakeEvent("render.done", "billing", "", "b"));
  bus.Publish(MakeEvent("cluster.applied", "api", "c1", "a"));
  bus.Publish(MakeEvent("cluster.connected", "", "c1", "c"));
  bus.Publish(MakeEvent("source.commit", "", "", "s1", "a1", "", "app"), reading({"api", "crds"}));
  bus.Publish(MakeEvent("source.commit", "", "", "s2", "b1", "", "infra"), reading({"crds"}));
  bus.Publish(MakeEvent("source.commit", "", "", "s3", "c1", "", "old"));  // no audience
  std::vector<std::string> messages;
  for (const v1::Event& e : team->Take()) messages.push_back(e.message());
  EXPECT_THAT(messages, ElementsAre("w", "a", "s1"));

  // By glob too: a team's bundles by their prefix, the sources they read among them.
  filter.bundles = {"crd?", "pay*"};
  auto globbed = *bus.Subscribe(filter, nullptr);
  bus.Publish(MakeEvent("render.done", "payments-api", "", "p"));
  bus.Publish(MakeEvent("render.done", "web", "", "w2"));
  bus.Publish(MakeEvent("render.done", "crds2", "", "c2"));
  bus.Publish(MakeEvent("source.commit", "", "", "s4", "d1", "", "infra"), reading({"crds"}));
  messages.clear();
  for (const v1::Event& e : globbed->Take()) messages.push_back(e.message());
  EXPECT_THAT(messages, ElementsAre("s1", "s2", "p", "s4"))
      << "the recent events first (app and infra are read by crds), then the new ones";
}

// A watcher of one cluster sees what happens to the bundles that reach it (renders,
// rollouts, the commits they read), not every bundle of the fleet's; events about other
// clusters never.
// A team's watcher (the admin API's scope): what `allows` lets through, after the other
// filters, the recent events included.
TEST(EventBusTest, AScopedWatcherSeesWhatItsScopeAllows) {
  EventBus bus;
  bus.Publish(MakeEvent("render.done", "team-a-web", "", "1"));
  bus.Publish(MakeEvent("render.done", "payments", "", "2"));
  int asked = 0;
  EventBus::Filter filter{"", "", {"render.", "cluster."}};
  filter.allows = [&asked](const v1::Event& e) {
    ++asked;
    return absl::StartsWith(e.bundle(), "team-a-") || (e.bundle().empty() && e.cluster() == "a1");
  };
  auto team = *bus.Subscribe(filter, nullptr);
  bus.Publish(MakeEvent("cluster.applied", "team-a-web", "a1", "3"));
  bus.Publish(MakeEvent("cluster.applied", "payments", "b1", "4"));
  bus.Publish(MakeEvent("cluster.connected", "", "a1", "5"));
  bus.Publish(MakeEvent("cluster.connected", "", "b1", "6"));
  bus.Publish(MakeEvent("source.commit", "", "", "7", "a1", "", "app"));  // not its type
  std::vector<std::string> seen;
  for (const v1::Event& e : team->Take()) seen.push_back(e.message());
  EXPECT_THAT(seen, ElementsAre("1", "3", "5"));
  EXPECT_EQ(asked, 6) << "the source's commit is filtered out by its type first";
}

TEST(EventBusTest, AClustersWatcherSeesOnlyTheBundlesThatConcernIt) {
  EventBus bus;
  auto reading = [](std::vector<std::string> bundles) {
    return std::make_shared<const std::vector<std::string>>(std::move(bundles));
  };
  std::vector<std::string> asked;
  EventBus::Filter filter{"", "c1"};
  filter.concerns = [&asked](const std::string& bundle) {
    asked.push_back(bundle);
    return bundle == "web" || bundle == "crds";
  };
  auto c1 = *bus.Subscribe(filter, nullptr);
  EventBus::Filter web_on_c1 = filter;
  web_on_c1.bundle = "web";
  auto web = *bus.Subscribe(web_on_c1, nullptr);
  bus.Publish(MakeEvent("render.done", "web", "", "1"));
  bus.Publish(MakeEvent("render.done", "api", "", "2"));     // api targets other clusters
  bus.Publish(MakeEvent("rollout.paused", "api", "", "3"));  // so does its rollout
  bus.Publish(MakeEvent("bundle.added", "crds", "", "4"));
  bus.Publish(MakeEvent("cluster.applied", "api", "c2", "5"));  // another cluster's
  bus.Publish(MakeEvent("cluster.applied", "web", "c1", "6"));  // its own: never asked
  bus.Publish(MakeEvent("cluster.connected", "", "c1", "7"));
  bus.Publish(MakeEvent("source.commit", "", "", "8", "a1", "", "infra"), reading({"api", "crds"}));
  bus.Publish(MakeEvent("source.commit", "", "", "9", "b1", "", "other"), reading({"api"}));
  bus.Publish(MakeEvent("source.commit", "", "", "10", "c1", "", "docs"), reading({}));
  bus.Publish(MakeEvent("source.commit", "", "", "11", "d1", "", "old"));  // no audience given
  bus.Publish(MakeEvent("source.commit", "", "", "12", "e1", "", "app"), reading({"web"}));
  auto messages = [](const std::vector<v1::Event>& events) {
    std::vector<std::string> out;
    for (const v1::Event& e : events) out.push_back(e.message());
    return out;
  };
  EXPECT_THAT(messages(c1->Take()), ElementsAre("1", "4", "6", "7", "8", "11", "12"));
  EXPECT_THAT(messages(web->Take()), ElementsAre("1", "6", "12"))
      << "with a bundle too: that bundle's, when it concerns the cluster";
  EXPECT_EQ(std::count(asked.begin(), asked.end(), "api"), 4)
      << "renders, rollouts and commits; never an event about one cluster (c2's), nor for "
         "the bundle's watcher, which api's events do not match anyway";
  EXPECT_THAT(asked, ::testing::Not(::testing::Contains("docs")));

  // The recent events a new watcher is sent first are judged by what holds when it subscribes.
  filter.concerns = [](const std::string& bundle) { return bundle == "api"; };
  auto later = *bus.Subscribe(filter, nullptr);
  EXPECT_THAT(messages(later->Take()), ElementsAre("2", "3", "6", "7", "8", "9", "11"));
}

TEST(EventBusTest, ASlowSubscriberGetsAResyncInsteadOfUnboundedBuffering) {
  EventBus bus(/*recent=*/0, /*queue=*/5);
  auto sub = *bus.Subscribe({}, nullptr);
  EXPECT_EQ(bus.Subscribe({}, nullptr, /*max_subscribers=*/1).status().code(),
            absl::StatusCode::kResourceExhausted)
      << "the limit is checked and taken under one lock";
  for (int i = 0; i < 12; ++i) bus.Publish(MakeEvent("cluster.health", "web", "c1", ""));
  std::vector<v1::Event> events = sub->Take();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].type(), "resync");
  EXPECT_THAT(events[0].message(), HasSubstr("events dropped"));
  EXPECT_LE(events.size(), 6u);
  EXPECT_EQ(events.back().sequence(), 12u) << "what follows the resync is current";

  sub->Cancel();
  bus.Publish(MakeEvent("cluster.health", "web", "c1", ""));
  EXPECT_TRUE(sub->Take().empty());
  sub.reset();
  bus.Publish(MakeEvent("cluster.health", "web", "c1", ""));
  EXPECT_EQ(bus.subscribers(), 0u);
}

// A watcher of rollouts on a large fleet would drown in per-cluster events (and fall
// behind, losing rollout events to a resync): it asks for the types it wants.
TEST(EventBusTest, AWatcherGetsOnlyTheTypesItAsksFor) {
  EventBus bus(/*recent=*/10, /*queue=*/3);
  auto rollouts = *bus.Subscribe({"", "", {"rollout.", "source.commit"}}, nullptr);
  bus.Publish(MakeEvent("rollout.started", "web", "", ""));
  for (int i = 0; i < 10; ++i) bus.Publish(MakeEvent("cluster.applied", "web", "c1", ""));
  bus.Publish(MakeEvent("source.commit", "", "", "", "abc", "", "app"));
  bus.Publish(MakeEvent("source.commits", "", "", "", "abc", "", "app"));
  bus.Publish(MakeEvent("rollout.done", "web", "", ""));
  EXPECT_THAT(Types(rollouts->Take()),
              ElementsAre("rollout.started", "source.commit", "rollout.done"))
      << "no resync: the cluster events never queued";
  EXPECT_THAT(Types((*bus.Subscribe({"", "", {"rollout.done"}}, nullptr))->Take()),
              ElementsAre("rollout.done"))
      << "the recent ones are filtered alike";
  EXPECT_THAT(Types((*bus.Subscribe({"", "", {""}}, nullptr))->Take()), ::testing::IsEmpty());
}

// A watcher that reconnects gives the sequence and stream of the last event it handled,
// and gets what followed, or a resync first when that would leave a gap.
TEST(EventBusTest, AWatcherResumesAfterTheLastEventItHandledOrIsToldOfTheGap) {
  FakeClock clock;
  EventBus bus(/*recent=*/4, /*queue=*/10, &clock, "run-1");
  EXPECT_EQ(EventBus(4, 10, &clock).stream().size(), 12u) << "a random one by default";
  EXPECT_NE(EventBus().stream(), EventBus().stream());
  for (int i = 1; i <= 6; ++i) {
    bus.Publish(MakeEvent("cluster.health", i % 2 ? "web" : "api", "c1", absl::StrCat(i)));
  }
  // Kept: 3, 4, 5, 6.
  auto messages = [](const std::vector<v1::Event>& events) {
    std::vector<std::string> out;
    for (const v1::Event& e : events) out.push_back(e.message());
    return out;
  };
  auto all = *bus.Subscribe({}, nullptr);
  std::vector<v1::Event> recent = all->Take();
  EXPECT_THAT(messages(recent), ElementsAre("3", "4", "5", "6"));
  for (const v1::Event& e : recent) EXPECT_EQ(e.stream(), "run-1");

  // After 4 (this stream, named or not): 5 and 6, filtered as asked.
  EXPECT_THAT(messages((*bus.Subscribe({}, nullptr, 0, EventBus::Resume{4, "run-1"}))->Take()),
              ElementsAre("5", "6"));
  EXPECT_THAT(messages((*bus.Subscribe({}, nullptr, 0, EventBus::Resume{4, ""}))->Take()),
              ElementsAre("5", "6"));
  EXPECT_THAT(
      messages((*bus.Subscribe({"web", ""}, nullptr, 0, EventBus::Resume{2, "run-1"}))->Take()),
      ElementsAre("3", "5"))
      << "2 was the last kept one's predecessor: no gap";
  auto current = *bus.Subscribe({}, nullptr, 0, EventBus::Resume{6, "run-1"});
  EXPECT_TRUE(current->Take().empty()) << "nothing since";
  bus.Publish(MakeEvent("cluster.health", "web", "c1", "7"));
  EXPECT_THAT(messages(current->Take()), ElementsAre("7")) << "and new ones follow";

  // No longer kept: 2 and 3 went; a resync says which, then what is kept.
  std::vector<v1::Event> gap =
      (*bus.Subscribe({}, nullptr, 0, EventBus::Resume{1, "run-1"}))->Take();
  ASSERT_EQ(gap.size(), 5u);
  EXPECT_EQ(gap[0].type(), "resync");
  EXPECT_EQ(gap[0].stream(), "run-1");
  EXPECT_THAT(gap[0].message(), HasSubstr("events 2 to 3 are no longer kept"));
  EXPECT_THAT(messages(gap), ElementsAre(gap[0].message(), "4", "5", "6", "7"));

  // Another stream (the control plane restarted): a resync, then everything kept.
  std::vector<v1::Event> restarted =
      (*bus.Subscribe({}, nullptr, 0, EventBus::Resume{5, "run-0"}))->Take();
  ASSERT_EQ(restarted.size(), 5u);
  EXPECT_EQ(restarted[0].type(), "resync");
  EXPECT_THAT(restarted[0].message(), HasSubstr("stream run-0 is gone, this is stream run-1"));
  EXPECT_EQ(restarted[1].message(), "4");
  // A sequence past the last event, with no stream to tell: it restarted too.
  std::vector<v1::Event> ahead = (*bus.Subscribe({}, nullptr, 0, EventBus::Resume{70, ""}))->Take();
  ASSERT_EQ(ahead.size(), 5u);
  EXPECT_THAT(ahead[0].message(), HasSubstr("sequence 70 is past this control plane's last event"));

  // A resync for the gap and one for falling behind are one event.
  EventBus small(/*recent=*/1, /*queue=*/2, &clock, "run-2");
  for (int i = 0; i < 3; ++i) small.Publish(MakeEvent("cluster.health", "web", "c1", ""));
  auto behind = *small.Subscribe({}, nullptr, 0, EventBus::Resume{1, ""});
  for (int i = 0; i < 3; ++i) small.Publish(MakeEvent("cluster.health", "web", "c1", ""));
  std::vector<v1::Event> both = behind->Take();
  ASSERT_FALSE(both.empty());
  EXPECT_EQ(both[0].type(), "resync");
  EXPECT_THAT(both[0].message(), HasSubstr("events 2 to 2 are no longer kept"));
  EXPECT_THAT(both[0].message(), HasSubstr("fell behind"));
  EXPECT_EQ(both.back().sequence(), 6u);
  EXPECT_EQ(std::count_if(both.begin(), both.end(),
                          [](const v1::Event& e) { return e.type() == "resync"; }),
            1);
}

}  // namespace
}  // namespace gitfleet
