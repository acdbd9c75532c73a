// What Fleet's cluster groups (--cluster-groups) cost the hub at fleet scale: N connected
// clusters, each with labels of its own (env, region, and an id no group reads), and G
// groups, each selecting an env and a region, through the real hub in one process.
//
//   bazel run -c opt //bench:cluster_groups -- --clusters=10000 --groups=50
//
// Measures a change of the groups file (Hub::SetClusterGroups: every cluster's groups
// worked out again), as the median of --rounds, and the longest a concurrent hub call
// (MembershipVersion, which takes the hub's lock as every fan-out does) waited meanwhile;
// then a cluster joining with the groups in force. Prints one JSON line.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics/metrics.h"
#include "controlplane/distribute/hub.h"
#include "controlplane/metrics.h"
#include "controlplane/store/store.h"

ABSL_FLAG(int, clusters, 10000, "Clusters connected.");
ABSL_FLAG(int, groups, 50, "Cluster groups, each selecting an env and a region.");
ABSL_FLAG(int, rounds, 5, "Changes of the groups measured.");

namespace gitfleet {
namespace {

class IdleConnection : public AgentConnection {
 public:
  void Notify(const std::string&) override {}
  void NotifyControl() override {}
  void Close(const absl::Status&) override {}
};

constexpr const char* kEnvs[] = {"prod", "staging", "dev"};

uint64_t Join(Hub* hub, int i) {
  v1::Hello hello;
  hello.set_cluster(absl::StrCat("c", i));
  (*hello.mutable_labels())["env"] = kEnvs[i % 3];
  (*hello.mutable_labels())["region"] = absl::StrCat("r", i % 20);
  (*hello.mutable_labels())["id"] = absl::StrCat(i);  // read by no group
  return hub->Connect(hello, "bench", std::make_shared<IdleConnection>());
}

// G groups; `round` changes every group's labels (so every cluster's groups change).
std::shared_ptr<const std::vector<ClusterGroup>> Groups(int count, int round) {
  auto groups = std::make_shared<std::vector<ClusterGroup>>();
  for (int g = 0; g < count; ++g) {
    ClusterGroup group;
    group.name = absl::StrCat("g", g);
    group.labels = {{"round", absl::StrCat(round)}};
    group.selector = *LabelSelector::Parse(
        absl::StrCat("env=", kEnvs[g % 3], ",region in (r", g % 20, ",r", (g + 7) % 20, ")"));
    groups->push_back(std::move(group));
  }
  std::sort(groups->begin(), groups->end(),
            [](const ClusterGroup& a, const ClusterGroup& b) { return a.name < b.name; });
  return groups;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Main() {
  const int clusters = absl::GetFlag(FLAGS_clusters);
  const int group_count = absl::GetFlag(FLAGS_groups);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  metrics::Registry registry;
  ControlPlaneMetrics metrics{registry};
  MemoryStore store;
  Hub hub(&store, metrics);
  hub.SetTrustAgentLabels(true);
  for (int i = 0; i < clusters; ++i) Join(&hub, i);

  std::vector<double> change_ms;
  std::vector<double> waited_ms;
  for (int round = 0; round < rounds; ++round) {
    std::atomic<bool> done{false};
    double longest = 0;
    std::thread caller([&] {
      while (!done.load()) {
        absl::Time start = absl::Now();
        (void)hub.MembershipVersion();
        longest = std::max(longest, absl::ToDoubleMilliseconds(absl::Now() - start));
        absl::SleepFor(absl::Microseconds(200));
      }
    });
    absl::SleepFor(absl::Milliseconds(5));
    auto groups = Groups(group_count, round);
    absl::Time start = absl::Now();
    hub.SetClusterGroups(groups);
    change_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    absl::SleepFor(absl::Milliseconds(5));
    done = true;
    caller.join();
    waited_ms.push_back(longest);
  }
  std::vector<double> join_ms;
  for (int i = 0; i < 100; ++i) {
    absl::Time start = absl::Now();
    Join(&hub, clusters + i);
    join_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  printf(
      "%d clusters, %d groups: a change of the groups %.1f ms (median of %d), a hub call "
      "waited %.1f ms at most (median round); a join %.3f ms (median of 100)\n",
      clusters, group_count, Median(change_ms), rounds, Median(waited_ms), Median(join_ms));
  printf(
      "{\"bench\": \"cluster_groups\", \"clusters\": %d, \"groups\": %d, \"change_ms\": %.1f, "
      "\"hub_call_waited_ms\": %.1f, \"join_ms\": %.3f}\n",
      clusters, group_count, Median(change_ms), Median(waited_ms), Median(join_ms));
  return 0;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return gitfleet::Main();
}
