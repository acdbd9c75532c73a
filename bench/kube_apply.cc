// kube_apply: how long the agent takes to apply a 1,000-object bundle to a Kubernetes API
// server, and how many API requests it makes (goal: one per changed object, none for
// unchanged ones). Runs the agent's own code path (Reconciler + KubernetesApplier +
// KubeClient over HTTP/1.1 with keep-alive) against the fake API server on loopback.
//
//   bazel run -c opt //bench:kube_apply -- --objects=1000 --runs=5
//
// Each run uses a fresh server and measures, in order:
//   cold     every object is new (namespaces, then ConfigMaps, Services, Deployments)
//   noop     the same revision again
//   change   --changed objects differ
//   drift    a drift check of every object (self-heal on, nothing drifted)
//   prune    --changed objects leave the bundle
//   heal     someone edits one ConfigMap: the time until it is back, with the agent's
//            change watch (--watch-drift) bringing the drift check forward
//   watched  --changed objects change again while the watch runs, then 3 s of passes: the
//            requests (the applies alone, when its own writes cost no drift check)
//   idle     ten periodic drift checks (five minutes' worth at 30 s) while the watch hears
//            every object: one looks, the rest wait for the watched interval
//   idle-every  the same ten with no longer interval (before it, or a bundle not heard whole)
// Prints one line per run and the medians, then a JSON line.

#include <atomic>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "agent/apply/reconciler.h"
#include "agent/kube/applier.h"
#include "agent/kube/drift_watch.h"
#include "agent/metrics.h"
#include "agent/state/state_store.h"
#include "bench/bench_util.h"
#include "common/file_system.h"
#include "common/logging.h"
#include "common/manifest/object.h"
#include "tests/fakekube/fake_apiserver.h"

ABSL_FLAG(int, objects, 1000, "Objects in the bundle.");
ABSL_FLAG(int, changed, 10, "Objects changed (then pruned) after the first apply.");
ABSL_FLAG(int, runs, 5, "Runs; medians are reported.");
ABSL_FLAG(double, qps, 1e6, "Client-side rate limit (default: none that matters).");

namespace gitfleet {
namespace {

struct Phase {
  double seconds = 0;
  int requests = 0;
  int writes = 0;  // PATCH + DELETE
};

v1::ManifestObject Make(const std::string& yaml) { return *MakeObject(yaml, "bench"); }

// Object i of the bundle; `version` changes its content.
v1::ManifestObject Object(int i, int version) {
  std::string ns = absl::StrCat("team-", i % 10);
  switch (i % 3) {
    case 0:
      return Make(absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-", i,
                               "\n  namespace: ", ns, "\ndata:\n  version: \"", version,
                               "\"\n  payload: \"", std::string(200, 'x'), "\"\n"));
    case 1:
      return Make(absl::StrCat("apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-", i,
                               "\n  namespace: ", ns, "\n  labels: {version: \"", version,
                               "\"}\nspec:\n  selector: {app: app-", i,
                               "}\n  ports:\n  - port: 80\n    targetPort: 8080\n"));
    default:
      return Make(absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-", i,
                               "\n  namespace: ", ns,
                               "\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: app-",
                               i, "}\n  template:\n    metadata:\n      labels: {app: app-", i,
                               "}\n    spec:\n      containers:\n      - name: app\n        image: "
                               "registry.example/app:",
                               version, "\n        ports:\n        - containerPort: 8080\n"));
  }
}

v1::BundleUpdate Update(const std::vector<v1::ManifestObject>& objects) {
  ObjectSet set;
  for (const auto& o : objects) set.Put(o);
  v1::SyncOptions sync;
  sync.set_prune(true);
  sync.set_self_heal(true);
  v1::BundleUpdate update;
  update.set_bundle("bench");
  update.set_revision(ComputeRevision(set, sync, ""));
  *update.mutable_sync() = sync;
  update.set_object_count(static_cast<int>(set.size()));
  for (const auto& [k, o] : set.objects()) *update.add_upserts() = *o;
  return update;
}

int Writes(const FakeApiServer& fake) {
  return fake.CountRequests("PATCH") + fake.CountRequests("DELETE");
}

std::map<std::string, Phase> RunOnce(int n, int changed) {
  FakeApiServer::Options fake_options;
  fake_options.simulate_controllers = true;  // Deployments report done, as in a healthy cluster
  std::unique_ptr<FakeApiServer> fake = *FakeApiServer::Start(fake_options);
  KubeConfig config;
  config.server = fake->url();
  KubeClient::Options client_options;
  client_options.qps = absl::GetFlag(FLAGS_qps);
  client_options.burst = 1000000;
  std::unique_ptr<KubeClient> client = *KubeClient::Create(config, client_options);
  RestMapper mapper(client.get());
  // The change watch (made before the heal phase) hears of every apply's write.
  std::atomic<DriftWatcher*> watching{nullptr};
  KubernetesApplier::Options applier_options;
  applier_options.on_written = [&watching](const std::string& collection, const std::string& name,
                                           const std::string& version) {
    if (DriftWatcher* w = watching.load(); w != nullptr) w->Written(collection, name, version);
  };
  KubernetesApplier applier(client.get(), &mapper, applier_options);
  MemoryFileSystem fs;
  BundleStateStore state("/state", &fs);
  metrics::Registry registry;
  AgentMetrics metrics(registry);
  Reconciler reconciler(&applier, &state, metrics);
  (void)reconciler.Load();

  std::vector<v1::ManifestObject> objects;
  for (int t = 0; t < 10; ++t) {
    objects.push_back(
        Make(absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-", t, "\n")));
  }
  for (int i = 0; objects.size() < static_cast<size_t>(n); ++i) objects.push_back(Object(i, 1));

  std::map<std::string, Phase> phases;
  auto measure = [&](const std::string& name, const std::function<void()>& step) {
    fake->ClearRequests();
    absl::Time start = absl::Now();
    step();
    Phase& p = phases[name];
    p.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    p.requests = static_cast<int>(fake->Requests().size());
    p.writes = Writes(*fake);
  };
  auto apply = [&](const std::vector<v1::ManifestObject>& set) {
    Reconciler::Outcome outcome = reconciler.OnUpdate(Update(set));
    if (!outcome.ack.ok()) {
      fprintf(stderr, "apply failed: %s\n", outcome.ack.message().c_str());
      exit(1);
    }
  };
  measure("cold", [&] { apply(objects); });
  measure("noop", [&] { apply(objects); });
  for (int c = 0; c < changed; ++c) objects[10 + c] = Object(c, 2);
  measure("change", [&] { apply(objects); });
  measure("drift", [&] { reconciler.Resync(/*check_drift=*/true); });
  objects.erase(objects.begin() + 10, objects.begin() + 10 + changed);
  measure("prune", [&] { apply(objects); });

  DriftWatcher watcher(client.get(), &mapper, {});
  watching = &watcher;
  reconciler.SetChangeWatch(&watcher);
  reconciler.Resync(/*check_drift=*/false);  // tells the watch the kinds held
  for (int i = 0; i < 1000 && watcher.counts().watching < 4; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (watcher.counts().watching < 4) {
    fprintf(stderr, "the change watch did not start\n");
    exit(1);
  }
  const int edited = 3 * changed;  // a ConfigMap neither changed nor pruned
  const std::string ns = absl::StrCat("team-", edited % 10);
  const std::string name = absl::StrCat("cm-", edited);
  measure("heal", [&] {
    fake->Mutate("", "configmaps", ns, name, [](nlohmann::json& o) { o["data"]["version"] = "x"; });
    for (int i = 0; i < 10000; ++i) {
      reconciler.Resync(/*check_drift=*/false);
      if (fake->Get("", "configmaps", ns, name)["data"]["version"] == "1") return;
      absl::SleepFor(absl::Milliseconds(1));
    }
    fprintf(stderr, "the edit was not healed\n");
    exit(1);
  });
  // A commit while the watch runs: its own writes must cost no drift check after it.
  for (int c = 0; c < changed; ++c) objects[10 + c] = Object(10 + c, 3);
  measure("watched", [&] {
    apply(objects);
    const absl::Time end = absl::Now() + absl::Seconds(3);  // past the 2 s check interval
    while (absl::Now() < end) {
      reconciler.Resync(/*check_drift=*/false);
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  // Ten periodic checks (five minutes at --resync-interval-seconds=30) of a bundle the watch
  // hears whole: the first looks, the rest wait for --watched-resync-interval-seconds.
  reconciler.SetChangeWatch(&watcher, absl::Seconds(2), absl::Minutes(5));
  measure("idle", [&] {
    for (int tick = 0; tick < 10; ++tick) reconciler.Resync(/*check_drift=*/true);
  });
  // The same ten as before the longer interval (or for a bundle the watch does not hear).
  reconciler.SetChangeWatch(&watcher, absl::Seconds(2), absl::ZeroDuration());
  measure("idle-every", [&] {
    for (int tick = 0; tick < 10; ++tick) reconciler.Resync(/*check_drift=*/true);
  });
  reconciler.SetChangeWatch(nullptr);
  watching = nullptr;
  return phases;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  gitfleet::SetLogLevelByName("warning").IgnoreError();
  const int n = absl::GetFlag(FLAGS_objects);
  const int changed = absl::GetFlag(FLAGS_changed);
  const std::vector<std::string> names = {"cold", "noop",    "change", "drift",     "prune",
                                          "heal", "watched", "idle",   "idle-every"};
  std::map<std::string, std::vector<double>> seconds;
  std::map<std::string, std::vector<double>> requests, writes;
  for (int run = 0; run < absl::GetFlag(FLAGS_runs); ++run) {
    auto phases = gitfleet::RunOnce(n, changed);
    std::string line = absl::StrCat("run ", run + 1, ":");
    for (const std::string& name : names) {
      const auto& p = phases[name];
      seconds[name].push_back(p.seconds);
      requests[name].push_back(p.requests);
      writes[name].push_back(p.writes);
      absl::StrAppend(&line, absl::StrFormat("  %s %.3fs %d req (%d writes)", name.c_str(),
                                             p.seconds, p.requests, p.writes));
    }
    printf("%s\n", line.c_str());
    fflush(stdout);
  }
  printf("\n%d objects (10 namespaces, ConfigMaps, Services, Deployments), %d changed; medians:\n",
         n, changed);
  printf("| phase | seconds | API requests | writes (PATCH+DELETE) |\n|---|---|---|---|\n");
  std::string json = absl::StrCat("{\"objects\":", n, ",\"changed\":", changed);
  for (const std::string& name : names) {
    double s = gitfleet::bench::Median(seconds[name]);
    double r = gitfleet::bench::Median(requests[name]);
    double w = gitfleet::bench::Median(writes[name]);
    printf("| %s | %.3f | %.0f | %.0f |\n", name.c_str(), s, r, w);
    absl::StrAppend(&json,
                    absl::StrFormat(",\"%s_seconds\":%.4f,\"%s_requests\":%.0f", name, s, name, r));
  }
  printf("%s}\n", json.c_str());
  return 0;
}
