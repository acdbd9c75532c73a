#include "controlplane/events/event_bus.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

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

}  // namespace
}  // namespace gitfleet
