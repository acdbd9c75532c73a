// The prune guard's cost at fleet scale: a repository of A apps, each with a prod and a
// staging bundle of 5 ConfigMaps on the default guard, over N clusters (half prod, half
// staging, each with labels no selector reads), through the real controller and hub in
// one process.
//
//   bazel run -c opt //bench:prune_guard -- --clusters=10000 --apps=10 --joins=100
//
// Measures the time from a commit that empties prod's apps (held, cluster by cluster) to
// every prod bundle held, then the control plane's CPU per cluster that joins while the
// drop is held (the count across the repository is worked out again for the new fleet)
// against the same joins before the commit. Prints one JSON line.

#include <sys/resource.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/in_process.h"
#include "tests/util/git_fixture.h"

ABSL_FLAG(int, clusters, 10000, "Clusters connected, half prod and half staging.");
ABSL_FLAG(int, apps, 10, "Apps in the repository, each a prod and a staging bundle.");
ABSL_FLAG(int, objects, 5,
          "ConfigMaps per bundle; the commit drops all but one (12 or more: each prod bundle "
          "is held by its own count as well).");
ABSL_FLAG(int, joins, 100,
          "Reports per phase, one each --join_gap; in the join phases a cluster joins before "
          "each.");
ABSL_FLAG(absl::Duration, join_gap, absl::Milliseconds(20), "Between two reports.");

namespace gitfleet {
namespace {

class IdleConnection : public AgentConnection {
 public:
  void Notify(const std::string&) override {}
  void NotifyControl() override {}
  void Close(const absl::Status&) override {}
};

double CpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

uint64_t Join(Hub* hub, const std::string& name, const std::string& env, int i) {
  v1::Hello hello;
  hello.set_cluster(name);
  (*hello.mutable_labels())["env"] = env;
  (*hello.mutable_labels())["region"] = absl::StrCat("r", i % 7);
  (*hello.mutable_labels())["id"] = absl::StrCat(i);  // read by no selector
  return hub->Connect(hello, "bench", std::make_shared<IdleConnection>());
}

std::string Cm(const std::string& name) {
  return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {v: \"1\"}\n";
}

int Main() {
  const int clusters = absl::GetFlag(FLAGS_clusters);
  const int apps = absl::GetFlag(FLAGS_apps);
  const int objects = absl::GetFlag(FLAGS_objects);
  const int joins = absl::GetFlag(FLAGS_joins);
  const absl::Duration gap = absl::GetFlag(FLAGS_join_gap);
  testing::ScopedTempDir tmp("bench-prune-guard");
  testing::GitFixture git(tmp.path() + "/repo");
  for (int a = 0; a < apps; ++a) {
    for (int i = 0; i < objects; ++i) {
      for (const char* env : {"prod", "staging"}) {
        git.Write(absl::StrCat("apps/a", a, "/", env, "/cm", i, ".yaml"),
                  Cm(absl::StrCat("a", a, "-cm", i)));
      }
    }
  }
  git.Commit("apps");

  // The bench's clusters are targeted by the labels they say.
  InProcessControlPlane plane(tmp.path() + "/cache", ControllerOptions(),
                              /*trust_agent_labels=*/true);
  Hub& hub = plane.hub;
  Controller& controller = plane.controller;
  v1::Source source;
  source.set_name("app");
  source.set_url(git.url());
  if (absl::Status added = controller.AddSource(source, false).status(); !added.ok()) {
    fprintf(stderr, "source: %s\n", std::string(added.message()).c_str());
    return 1;
  }
  for (int a = 0; a < apps; ++a) {
    for (const std::string env : {"prod", "staging"}) {
      v1::Bundle bundle;
      bundle.set_name(absl::StrCat("a", a, "-", env));
      bundle.set_source("app");
      bundle.set_path(absl::StrCat("apps/a", a, "/", env));
      bundle.set_selector("env=" + env);
      bundle.mutable_sync()->set_prune(true);
      if (absl::Status added = controller.AddBundle(bundle, false).status(); !added.ok()) {
        fprintf(stderr, "bundle: %s\n", std::string(added.message()).c_str());
        return 1;
      }
    }
  }
  std::vector<uint64_t> sessions;  // of the first prod clusters, which report
  for (int i = 0; i < clusters; ++i) {
    const uint64_t session = Join(&hub, absl::StrCat("c", i), i % 2 ? "prod" : "staging", i);
    if (i % 2 == 1 && sessions.size() < 64) sessions.push_back(session);
  }
  absl::SleepFor(absl::Seconds(1));

  int joined = 0;
  // `joins` prod clusters report, as agents do all the time (a held bundle's gate is
  // asked), each after a new cluster joined when `join`: the process's CPU per report.
  auto churn = [&](bool join) {
    const double cpu = CpuSeconds();
    for (int k = 0; k < joins; ++k) {
      if (join) Join(&hub, absl::StrCat("j", joined), "prod", clusters + joined++);
      v1::StatusUpdate report;
      report.set_bundle(absl::StrCat("a", k % apps, "-prod"));
      report.set_sync_state(v1::SYNC_STATE_SYNCED);
      report.set_health(k % 2 ? v1::HEALTH_STATE_HEALTHY : v1::HEALTH_STATE_PROGRESSING);
      hub.OnStatus(sessions[k % sessions.size()], report);
      absl::SleepFor(gap);
    }
    absl::SleepFor(absl::Milliseconds(200));
    return (CpuSeconds() - cpu) * 1000 / joins;
  };
  const double quiet_reports_ms = churn(false);
  const double quiet_ms = churn(true);

  for (int a = 0; a < apps; ++a) {
    for (int i = 1; i < objects; ++i) git.Remove(absl::StrCat("apps/a", a, "/prod/cm", i, ".yaml"));
  }
  git.Commit("prod's apps emptied");
  const absl::Time start = absl::Now();
  if (!controller.SyncSource("app").ok()) return 1;
  int held = 0;
  while (held < apps && absl::Now() - start < absl::Seconds(60)) {
    held = 0;
    for (int a = 0; a < apps; ++a) {
      absl::StatusOr<v1::RolloutStatus> rollout =
          controller.GetRollout(absl::StrCat("a", a, "-prod"));
      held += rollout.ok() && rollout->prune_held();
    }
    if (held < apps) absl::SleepFor(absl::Milliseconds(1));
  }
  const double held_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (held < apps) {
    fprintf(stderr, "only %d of %d prod bundles held after 60 s\n", held, apps);
    return 1;
  }
  const double held_reports_ms = churn(false);
  const double held_ms = churn(true);

  printf("%d clusters, %d apps: prod's apps emptied, all %d held in %.3f s\n", clusters, apps, apps,
         held_seconds);
  printf("CPU per report: %.2f ms before the commit, %.2f ms while it is held\n", quiet_reports_ms,
         held_reports_ms);
  printf("CPU per report after a cluster joined: %.2f ms before the commit, %.2f ms while held\n",
         quiet_ms, held_ms);
  printf(
      "{\"bench\": \"prune_guard\", \"clusters\": %d, \"apps\": %d, \"objects\": %d, "
      "\"held_seconds\": %.3f, \"report_cpu_ms_quiet\": %.2f, \"report_cpu_ms_held\": %.2f, "
      "\"join_cpu_ms_quiet\": %.2f, \"join_cpu_ms_held\": %.2f}\n",
      clusters, apps, objects, held_seconds, quiet_reports_ms, held_reports_ms, quiet_ms, held_ms);
  return 0;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return gitfleet::Main();
}
