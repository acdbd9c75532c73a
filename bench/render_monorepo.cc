// Render time and memory for a monorepo: N jsonnet bundles importing B shared bases, run
// through the real controller (libgit2 source, render cache, hub) in one process.
//
//   bazel run -c opt //bench:render_monorepo -- --bundles=1000 --bases=20
//
// Measures the cold render of every bundle, then a commit touching one shared base (only
// its importers should render again), then a commit touching one bundle, then a commit
// breaking one shared base (what its importers' failures cost afterwards), then other
// teams' commits while it stays broken, each touching one bundle that does not import it
// and fetched as a push webhook fetches (what each costs). Prints peak RSS and one JSON
// line.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/in_process.h"
#include "tests/util/git_fixture.h"

ABSL_FLAG(int, bundles, 1000, "Bundles in the monorepo.");
ABSL_FLAG(int, bases, 20, "Shared bases they import.");
ABSL_FLAG(bool, jsonnet_in_process, false,
          "Evaluate jsonnet in-process instead of in a child killed at the timeout.");
ABSL_FLAG(int, broken_seconds, 20,
          "After a commit breaks one shared base, how long to count what its importers' "
          "failures cost.");
ABSL_FLAG(int, other_commits, 5,
          "While the base stays broken, commits that each touch one bundle not importing it, "
          "fetched as a push webhook asks: the renders and CPU each costs.");
ABSL_FLAG(std::string, jsonnet_cli, "/usr/bin/jsonnet",
          "After the cold render, run this jsonnet CLI once per bundle on the same files, for a "
          "side-by-side cost per evaluation (empty: skip).");

namespace gitfleet {
namespace {

std::string Base(int b, const std::string& value) {
  return absl::StrCat(
      "{ cm(name):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name, "
      "namespace: 'apps' }, data: { base: '",
      b, "', value: '", value, "' } } }\n");
}

// CPU time of this process and of the children it waited for (isolated jsonnet runs).
double CpuSeconds() {
  double total = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage usage;
    getrusage(who, &usage);
    total += usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
             (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  return total;
}

double PeakRssMiB() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

int Main() {
  const int bundles = absl::GetFlag(FLAGS_bundles);
  const int bases = absl::GetFlag(FLAGS_bases);
  if (bundles < 1 || bases < 1) {
    fprintf(stderr, "--bundles and --bases must be at least 1\n");
    return 2;
  }
  testing::ScopedTempDir tmp("bench-monorepo");
  testing::GitFixture git(tmp.path() + "/repo");
  for (int b = 0; b < bases; ++b)
    git.Write(absl::StrCat("lib/base-", b, ".libsonnet"), Base(b, "1"));
  for (int i = 0; i < bundles; ++i) {
    git.Write(
        absl::StrCat("apps/app-", i, "/main.jsonnet"),
        absl::StrCat("local base = import '../../lib/base-", i % bases,
                     ".libsonnet';\n[base.cm('app-", i, "'), base.cm('app-", i, "-extra')]\n"));
  }
  git.Commit("monorepo");

  ControllerOptions options;
  options.engines.isolate_jsonnet = !absl::GetFlag(FLAGS_jsonnet_in_process);
  InProcessControlPlane plane(tmp.path() + "/cache", options);
  ControlPlaneMetrics& metrics = plane.metrics;
  Controller& controller = plane.controller;
  auto renders = [&] {
    return metrics.renders.Add({{"engine", "jsonnet"}, {"result", "ok"}}).Value();
  };

  v1::Source source;
  source.set_name("mono");
  source.set_url(git.url());
  if (absl::Status added = controller.AddSource(source, false).status(); !added.ok()) {
    fprintf(stderr, "source: %s\n", std::string(added.message()).c_str());
    return 1;
  }
  absl::Time start = absl::Now();
  for (int i = 0; i < bundles; ++i) {
    v1::Bundle bundle;
    bundle.set_name(absl::StrCat("app-", i));
    bundle.set_source("mono");
    bundle.set_path(absl::StrCat("apps/app-", i));
    auto info = controller.AddBundle(bundle, false);
    if (!info.ok() || !info->error().empty()) {
      fprintf(stderr, "bundle %d: %s %s\n", i, std::string(info.status().message()).c_str(),
              info.ok() ? info->error().c_str() : "");
      return 1;
    }
  }
  double cold = absl::ToDoubleSeconds(absl::Now() - start);
  double cold_renders = renders();

  // A base and a bundle that exist whatever --bases and --bundles say.
  const int touched_base = 3 % bases;
  const int touched_bundle = 7 % bundles;
  git.Write(absl::StrCat("lib/base-", touched_base, ".libsonnet"), Base(touched_base, "2"));
  git.Commit("touch one base");
  double before = renders();
  start = absl::Now();
  if (!controller.SyncSource("mono").ok()) return 1;
  double base_commit = absl::ToDoubleSeconds(absl::Now() - start);
  double base_renders = renders() - before;

  git.Write(absl::StrCat("apps/app-", touched_bundle, "/main.jsonnet"),
            absl::StrCat("local base = import '../../lib/base-", touched_bundle % bases,
                         ".libsonnet';\n[base.cm('renamed')]\n"));
  git.Commit("touch one bundle");
  before = renders();
  start = absl::Now();
  if (!controller.SyncSource("mono").ok()) return 1;
  double one_file = absl::ToDoubleSeconds(absl::Now() - start);
  double one_renders = renders() - before;

  // One shared base broken: its importers fail on their own content. What the control
  // plane spends on them in the next --broken_seconds, with nothing else happening (a render
  // that fails the same way each time is not worth a retry).
  const int broken_base = 5 % bases;
  int importers = 0;
  for (int i = 0; i < bundles; ++i) importers += i % bases == broken_base ? 1 : 0;
  auto failed = [&] {
    return metrics.renders.Add({{"engine", "jsonnet"}, {"result", "error"}}).Value();
  };
  git.Write(absl::StrCat("lib/base-", broken_base, ".libsonnet"),
            "{ cm(name):: error 'broken' }\n");
  git.Commit("break one base");
  if (!controller.SyncSource("mono").ok()) return 1;
  const double failed_at_commit = failed();
  const double cpu_before = CpuSeconds();
  const int broken_seconds = absl::GetFlag(FLAGS_broken_seconds);
  absl::SleepFor(absl::Seconds(broken_seconds));
  const double broken_renders = failed() - failed_at_commit;
  const double broken_cpu = CpuSeconds() - cpu_before;

  // Other teams go on committing: each commit changes one bundle that does not import the
  // broken base. A fetch (not a sync, which asks every bundle to render again), then a wait
  // until every bundle has judged the commit.
  const int other_commits = absl::GetFlag(FLAGS_other_commits);
  const double other_renders_before = renders() + failed();
  const double other_cpu_before = CpuSeconds();
  const absl::Time other_start = absl::Now();
  for (int c = 0; c < other_commits; ++c) {
    int touched = -1;
    for (int i = 0; i < bundles && touched < 0; ++i) {
      if (i % bases != broken_base && i != touched_bundle && i >= c) touched = i;
    }
    if (touched < 0) break;
    git.Write(absl::StrCat("apps/app-", touched, "/main.jsonnet"),
              absl::StrCat("local base = import '../../lib/base-", touched % bases,
                           ".libsonnet';\n[base.cm('app-", touched, "-", c, "')]\n"));
    const std::string commit = git.Commit(absl::StrCat("another team's change ", c));
    if (!controller.FetchSourceSoon("mono").ok()) return 1;
    const absl::Time deadline = absl::Now() + absl::Minutes(5);
    for (bool judged = false; !judged;) {
      if (absl::Now() > deadline) {
        fprintf(stderr, "commit %s was not judged by every bundle within 5 minutes\n",
                commit.c_str());
        return 1;
      }
      absl::SleepFor(absl::Milliseconds(20));
      judged = true;
      for (const v1::BundleInfo& info : controller.ListBundles()) {
        judged = judged && (info.commit() == commit || info.error_commit() == commit);
      }
    }
  }
  const double other_seconds = absl::ToDoubleSeconds(absl::Now() - other_start);
  const double other_renders = renders() + failed() - other_renders_before;
  const double other_cpu = CpuSeconds() - other_cpu_before;

  // The same files through one jsonnet CLI process each: what a tool that shells out to
  // jsonnet per bundle pays.
  double cli_seconds = -1;
  const std::string cli = absl::GetFlag(FLAGS_jsonnet_cli);
  if (!cli.empty() && access(cli.c_str(), X_OK) == 0) {
    absl::Time cli_start = absl::Now();
    for (int i = 0; i < bundles; ++i) {
      std::string out;
      if (testing::Run(
              absl::StrCat(cli, " '", git.dir(), "/apps/app-", i, "/main.jsonnet' > /dev/null"),
              &out) != 0) {
        fprintf(stderr, "jsonnet CLI failed on app-%d: %s\n", i, out.c_str());
        return 1;
      }
    }
    cli_seconds = absl::ToDoubleSeconds(absl::Now() - cli_start);
  }

  printf("cold: %d bundles rendered in %.2fs (%.0f renders, %.1f ms each)\n", bundles, cold,
         cold_renders, 1000 * cold / std::max(1.0, cold_renders));
  if (cli_seconds >= 0) {
    printf("jsonnet CLI, one process per bundle, same files: %.2fs (%.1f ms each)\n", cli_seconds,
           1000 * cli_seconds / bundles);
  }
  printf("one shared base changed: %.3fs, %.0f renders\n", base_commit, base_renders);
  printf("one bundle changed: %.3fs, %.0f renders\n", one_file, one_renders);
  printf(
      "one shared base broken (%d importers fail): in the next %ds, %.0f renders again, "
      "%.2f CPU s\n",
      importers, broken_seconds, broken_renders, broken_cpu);
  printf(
      "while it stays broken, %d other commits: %.1f renders and %.3f CPU s each (%.2fs in "
      "all)\n",
      other_commits, other_renders / std::max(1, other_commits),
      other_cpu / std::max(1, other_commits), other_seconds);
  printf("peak RSS: %.1f MiB\n", PeakRssMiB());
  printf(
      "{\"bench\": \"render_monorepo\", \"bundles\": %d, \"bases\": %d, \"cold_seconds\": %.2f, "
      "\"base_commit_seconds\": %.3f, \"base_commit_renders\": %.0f, "
      "\"one_file_commit_seconds\": %.3f, \"one_file_commit_renders\": %.0f, "
      "\"broken_importers\": %d, \"broken_seconds\": %d, \"broken_renders_again\": %.0f, "
      "\"broken_cpu_seconds\": %.2f, \"other_commits\": %d, \"other_commit_renders\": %.1f, "
      "\"other_commit_cpu_seconds\": %.3f, "
      "\"peak_rss_mib\": %.1f, \"jsonnet_in_process\": %s, \"jsonnet_cli_seconds\": %.2f}\n",
      bundles, bases, cold, base_commit, base_renders, one_file, one_renders, importers,
      broken_seconds, broken_renders, broken_cpu, other_commits,
      other_renders / std::max(1, other_commits), other_cpu / std::max(1, other_commits),
      PeakRssMiB(), absl::GetFlag(FLAGS_jsonnet_in_process) ? "true" : "false", cli_seconds);
  return 0;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return gitfleet::Main();
}
