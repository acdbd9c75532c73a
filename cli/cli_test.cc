#include "cli/cli.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/output.h"
#include "common/manifest/object.h"
#include "common/subprocess.h"
#include "controlplane/render/kustomize_renderer.h"
#include "controlplane/render/renderer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/chart_server.h"
#include "tests/util/git_fixture.h"

namespace gitfleet::cli {
namespace {

using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunCtl(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

// One long cell (a paused rollout's reason) runs on into its own row; the other rows
// stay as narrow as their own cells.
TEST(TableTest, ALongCellDoesNotWidenItsColumnForEveryRow) {
  Table table({"NAME", "ROLLOUT", "ERROR"});
  table.Add({"api", "-", ""});
  table.Add({"web", std::string(70, 'r'), "broken"});
  table.Add({"base", "partition 1/2", "x"});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(),
            "NAME   ROLLOUT         ERROR\n"
            "api    -               \n"
            "web    " +
                std::string(70, 'r') +
                "   broken\n"
                "base   partition 1/2   x\n");
}

// Every part of a definition a flag sets is named when it changes: a field left out here
// would make `bundle set` answer "unchanged" and send nothing.
TEST(ChangesTest, EveryFieldOfADefinitionIsCompared) {
  const google::protobuf::Descriptor* descriptor = v1::Bundle::descriptor();
  const google::protobuf::Reflection* reflection = v1::Bundle::GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    if (field->name() == "name" || field->name() == "generation") continue;
    v1::Bundle after;
    if (field->is_map()) {
      // By name: reflection into a map crashes the TSAN build (Debian's libprotobuf is not
      // built for it). A new map field needs its line here.
      if (field->name() != "values") {
        ADD_FAILURE() << "map field " << field->name() << " is not set by this test";
        continue;
      }
      (*after.mutable_values())["k"] = "v";
    } else if (field->is_repeated() &&
               field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
      reflection->AddString(&after, field, "x");
    } else if (field->is_repeated()) {
      reflection->AddMessage(&after, field);
    } else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
      reflection->SetString(&after, field, "x");
    } else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_BOOL) {
      reflection->SetBool(&after, field, true);
    } else {
      continue;  // sync and rollout: compared field by field above
    }
    EXPECT_FALSE(BundleChanges(v1::Bundle(), after).empty()) << field->name();
  }
}

// A replacement says what it changed, flag by flag: a flag left out is a flag dropped.
TEST(ChangesTest, AReplacementNamesEveryFlagItChanged) {
  v1::Bundle before;
  before.set_source("demo");
  before.set_path("apps/web");
  before.set_selector("env in (prod,staging)");
  before.mutable_sync()->set_prune(true);
  (*before.mutable_values())["replicas"] = "2";
  (*before.mutable_values())["a"] = "1";
  v1::ClusterValues* rule = before.add_cluster_values();
  rule->set_selector("env=prod");
  (*rule->mutable_values())["replicas"] = "3";
  v1::Bundle after = before;
  EXPECT_TRUE(BundleChanges(before, after).empty());
  after.clear_values();
  after.clear_cluster_values();
  after.mutable_rollout()->add_partitions("env=staging");
  after.mutable_rollout()->set_progress_deadline_seconds(60);
  after.mutable_rollout()->set_paced(true);
  after.mutable_rollout()->set_bake_seconds(1800);
  after.set_path("");
  after.mutable_sync()->set_service_account("team-a/deployer");
  EXPECT_THAT(
      BundleChanges(before, after),
      ::testing::ElementsAre(
          "--path: apps/web -> (root)", "--service-account: (the agent) -> team-a/deployer",
          "--values: a=1,replicas=2 -> (none)", "--cluster-values: 'env=prod;replicas=3' -> (none)",
          "--partition: (none) -> env=staging", "--paced: false -> true",
          "--progress-deadline: 10m -> 1m", "--bake-time: (none) -> 30m"));
  v1::Source old_source;
  old_source.set_url("https://git.example.com/a.git");
  v1::Source new_source = old_source;
  new_source.set_ref("release");
  new_source.set_fleet_gitrepo("fleet.apps");
  EXPECT_THAT(SourceChanges(old_source, new_source),
              ::testing::ElementsAre("--ref: (default branch) -> release",
                                     "--fleet-gitrepo: (the source's name) -> fleet.apps"));
}

TEST(CliTest, BadUsageIsOneLineAndExitTwo) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"frobnicate"}, "unknown command \"frobnicate\""},
      {{"source", "add", "x"}, "source add needs --url"},
      {{"source", "add"}, "missing source name"},
      {{"source", "add", "x", "--url=file:///r", "--interval=soon"}, "--interval=soon"},
      {{"source", "add", "x", "--url=file:///r", "--fleet-gitrepo=Fleet.Apps"},
       "--fleet-gitrepo \"Fleet.Apps\" must be a GitRepo's name"},
      {{"source", "add", "x", "--url=file:///r", "--rename-releases=maybe"},
       "--rename-releases=maybe: want true or false"},
      {{"source", "add", "x", "--url=file:///r", "--rename-releases"},
       "--rename-releases goes with --replace"},
      {{"render", "--repo=/r", "--fleet-gitrepo=a_b"}, "--fleet-gitrepo \"a_b\" must be"},
      {{"render", "--repo=/r", "--name=Web"}, "--name: bundle name \"Web\""},
      {{"bundle", "add", "b"}, "bundle add needs --source"},
      {{"bundle", "add", "b", "--source=s", "--prune=maybe"}, "--prune=maybe: want true or false"},
      {{"status", "-o", "xml"}, "output format \"xml\""},
      {{"status", "--colour"}, "unknown flag --colour"},
      {{"source", "remove", "a", "b"}, "unexpected argument \"b\""},
      {{"status", "-o"}, "-o needs a format"},
      {{"bundle", "add", "b", "--source=s", "--depends-on=crds,,operator"},
       "--depends-on=crds,,operator: an empty bundle name"},
      {{"bundle", "add", "b", "--source=s", "--depends-on=crds,"}, "an empty bundle name"},
      {{"bundle", "add", "b", "--source=s", "--values=a=1,a=2"},
       "--values: a is given twice (which one would win?)"},
      {{"bundle", "add", "b", "--source=s", "--cluster-values=env=prod;r=1, r=2"},
       "--cluster-values: r is given twice"},
      {{"bundle", "set", "b"}, "bundle set needs a flag to change"},
      {{"bundle", "set", "b", "--allow-removal"}, "bundle set needs a flag to change"},
      {{"bundle", "set", "b", "--bogus=1"}, "unknown flag --bogus"},
      {{"bundle", "set", "b", "--replace", "--path=x"}, "bundle set always replaces"},
      {{"bundle", "set", "b", "--progress-deadline=soon"}, "--progress-deadline=soon"},
      {{"bundle", "set", "b", "--bake-time=0s"}, "--bake-time=0s: want a duration of at least 1s"},
      {{"bundle", "add", "b", "--source=s", "--bake-time=later"}, "--bake-time=later"},
      {{"bundle", "add", "b", "--source=s", "--service-account=Team/deployer"},
       "--service-account: service account's namespace name \"Team\""},
      {{"rollout", "status", "web", "-w", "--watch-timeout=25h"},
       "--watch-timeout wants a duration such as 30m (at most 24h)"},
      {{"rollout", "status", "web", "-w", "--commit=main"},
       "--commit \"main\": want a commit id, or its first digits (at least 4)"},
      {{"rollout", "status", "web", "-w", "--commit=" + std::string(65, 'a')},
       "want a commit id, or its first digits (at least 4)"},
      {{"rollout", "status", "web", "-w", "--commit=abc"},
       "--commit \"abc\": want a commit id, or its first digits (at least 4)"},
      {{"rollout", "status", "web", "--watch-timeout=1m"}, "go with -w (--watch)"},
      {{"rollout", "status", "--source=app"}, "--source goes with -w (--watch)"},
      {{"rollout", "status", "web", "-w", "--source=app"},
       "takes a bundle name or --source, not both"},
      {{"token", "new", "t", "admin", "--bundles=t-*", "--service-account=a:b"},
       "token new: service-account=: service account \"a:b\" must be NAME or NAMESPACE/NAME"},
  };
  for (const Case& c : cases) {
    Result r = RunCtl(c.args);
    EXPECT_EQ(r.code, 2) << c.message;
    EXPECT_THAT(r.err, HasSubstr(c.message));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(CliTest, EveryCommandInTheTableIsDispatchedAndInTheUsage) {
  Result help = RunCtl({"--help"});
  std::vector<std::string> names = CommandNames();
  EXPECT_GE(names.size(), 20u);
  for (const std::string& name : names) {
    EXPECT_THAT(help.out, HasSubstr("  " + name)) << name;
    std::vector<std::string> args = absl::StrSplit(name, ' ');
    args.push_back("--no-such-flag=1");
    args.push_back("--server=127.0.0.1:1");
    args.push_back("--timeout=1s");
    Result r = RunCtl(args);
    EXPECT_THAT(r.err, Not(HasSubstr("unknown command"))) << name;
  }
  EXPECT_THAT(RunCtl({"source", "frobnicate"}).err,
              HasSubstr("unknown command \"source frobnicate\""));
}

TEST(CliTest, HelpPrintsUsage) {
  Result r = RunCtl({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("source add NAME --url=URL"));
  EXPECT_EQ(RunCtl({}).code, 2);
}

TEST(CliTest, UnreachableServerIsExitOneWithAddress) {
  Result r = RunCtl({"--server=127.0.0.1:1", "--timeout=2s", "source", "list"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot reach the control plane at 127.0.0.1:1"));
}

}  // namespace
}  // namespace gitfleet::cli

namespace gitfleet::cli {
namespace {

using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::TempDir;

TEST(RenderCommandTest, PrintsPlainObjectsInKeyOrder) {
  GitFixture git(TempDir("render"));
  git.Write("apps/web/b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n");
  git.Write("apps/web/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
  git.Commit("two");
  Result r = RunCtl({"render", "--repo=" + git.dir(), "--path=apps/web/"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n");
}

// A render says how the control plane would roll it out when its fleet.yaml declares a
// rolloutStrategy, and what of it would hold the commit.
TEST(RenderCommandTest, SaysHowAFleetYamlsRolloutStrategyRollsItOut) {
  GitFixture git(TempDir("render"));
  git.Write("apps/web/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
  git.Write("apps/web/fleet.yaml",
            "rolloutStrategy:\n"
            "  partitions:\n"
            "  - {name: canary, clusterName: c2, maxUnavailable: 0}\n"
            "  - {name: prod, clusterSelector: {matchLabels: {env: prod}}}\n");
  git.Commit("ordered");
  Result r = RunCtl({"render", "--repo=" + git.dir(), "--path=apps/web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("note: rolled out partition by partition, by apps/web/fleet.yaml's "
                               "rolloutStrategy: 1 canary (cluster c2, none may be not ready, "
                               "given to 1 at a time), 2 prod (env=prod, none may be not ready), "
                               "then the clusters left"));
  EXPECT_THAT(r.err, HasSubstr("note: apps/web/fleet.yaml: rolloutStrategy.maxUnavailable is "
                               "unset"));
  git.Write("apps/web/fleet.yaml", "rolloutStrategy:\n  partitions:\n  - clusterGroup: eu\n");
  git.Commit("groups");
  r = RunCtl({"render", "--repo=" + git.dir(), "--path=apps/web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("by apps/web/fleet.yaml's rolloutStrategy: 1 (cluster group eu, "
                               "none may be not ready), then the clusters left"));
  git.Write("apps/web/fleet.yaml",
            "rolloutStrategy:\n  partitions:\n  - clusterSelector: {matchExpressions: [{key: a, "
            "operator: Gt, values: ['1']}]}\n");
  git.Commit("a selector gitfleet cannot write");
  r = RunCtl({"render", "--repo=" + git.dir(), "--path=apps/web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("note: apps/web/fleet.yaml: rolloutStrategy.partitions[0]: its "
                               "clusterSelector is not one gitfleet reads"));
  EXPECT_THAT(r.err, HasSubstr("the control plane holds such a commit from every cluster"));
}

// A repository that vendors its manifests as a submodule renders them with --submodules,
// as a source with --submodules does, and says how without it.
TEST(RenderCommandTest, RendersASubmodulesFilesWhenAsked) {
  const std::string forge = TempDir("render");
  GitFixture lib(forge + "/lib");
  lib.Write("top/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vendored}\n");
  lib.Write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: based}\n");
  lib.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
  const std::string vendored = lib.Commit("lib");
  GitFixture app(forge + "/app");
  app.Write(".gitmodules", "[submodule \"lib\"]\n\tpath = apps/lib\n\turl = ../lib\n");
  app.Git("add .gitmodules");
  app.Gitlink("apps/lib", vendored);
  app.CommitStaged("vendor lib");
  Result r = RunCtl({"render", "--repo=" + app.dir(), "--path=apps/lib/top", "--submodules"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: vendored\n");
  r = RunCtl({"render", "--repo=" + app.dir(), "--path=apps"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("apps/lib: a submodule, which is not fetched (a source with "
                               "--submodules fetches it)"));
  // A tool that reads the whole repository finds nothing where the submodule is.
  if (FindKustomize().empty()) return;
  app.Write("apps/web/kustomization.yaml", "resources: [../lib/base]\n");
  app.Git("add apps/web");
  app.CommitStaged("an overlay of it");
  r = RunCtl({"render", "--repo=" + app.dir(), "--path=apps/web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("(the repository has submodules, named in .gitmodules, which this "
                               "render does not fetch: give it --submodules)"));
  r = RunCtl({"render", "--repo=" + app.dir(), "--path=apps/web", "--submodules"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("name: based"));
}

// --name renders as the bundle of that name would: Argo CD's overrides for the Application
// of that name are read (here refused, since a plain folder cannot take kustomize images).
TEST(RenderCommandTest, ANameReadsArgoCdsOverridesForTheApplicationOfThatName) {
  GitFixture repo(TempDir("render") + "/repo");
  repo.Write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
  repo.Write("app/.argocd-source-web.yaml", "kustomize: {images: ['nginx:1.25']}\n");
  repo.Commit("an app Image Updater writes back to");
  // Another Application's write-back, none of its own: which one is for the operator to say.
  Result r = RunCtl({"render", "--repo=" + repo.dir(), "--path=app"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("app/.argocd-source-web.yaml holds Argo CD's parameter overrides "
                               "(the image tags its write-back set, say) for the Application web"));
  r = RunCtl({"render", "--repo=" + repo.dir(), "--path=app", "--argocd-app=render"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* which : {"--name=web", "--argocd-app=web"}) {
    r = RunCtl({"render", "--repo=" + repo.dir(), "--path=app", which});
    EXPECT_EQ(r.code, 1) << which;
    EXPECT_THAT(r.err, HasSubstr("app/.argocd-source-web.yaml sets kustomize.images (nginx:1.25)"))
        << which;
  }
  r = RunCtl({"render", "--repo=" + repo.dir(), "--path=app", "--argocd-app=Web"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--argocd-app \"Web\" must be an Argo CD Application's name"));
}

// A folder that keeps other JSON or YAML beside its manifests: the failure names the
// --exclude that leaves the file out, which the render then takes, as it takes a
// .fleetignore and a .sourceignore.
TEST(RenderCommandTest, ExcludeAndFleetIgnoreLeaveOutWhatIsNotAManifest) {
  GitFixture repo(TempDir("render") + "/repo");
  repo.Write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
  repo.Write("app/config/package.json", R"({"name": "app"})");
  repo.Commit("an app");
  Result r = RunCtl({"render", "--repo=" + repo.dir(), "--path=app"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("app/config/package.json:1: object has no apiVersion (if it is "
                               "not a manifest, leave it out with the bundle's "
                               "--exclude=config/package.json, or a .fleetignore or .sourceignore "
                               "line)"));
  r = RunCtl({"render", "--repo=" + repo.dir(), "--path=app", "--exclude=*.json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n");
  EXPECT_THAT(r.err, HasSubstr("note: left out by --exclude: 1 file (app/config/package.json)"));
  r = RunCtl({"render", "--repo=" + repo.dir(), "--path=app", "--exclude=../x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--exclude pattern \"../x\": a . or .. name"));
  repo.Write("app/.fleetignore", "config/\n");
  repo.Commit("ignore the config");
  r = RunCtl({"render", "--repo=" + repo.dir(), "--path=app"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("skipped app/config/package.json: ignored by app/.fleetignore: "
                               "config/"));
  // Flux's .sourceignore, at the root above the folder, as the control plane reads it.
  repo.Write("app/tools/lint.yaml", "rules: {}\n");
  repo.Write(".sourceignore", "/app/tools/\n");
  repo.Commit("a linter config, ignored for Flux");
  r = RunCtl({"render", "--repo=" + repo.dir(), "--path=app"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err,
              HasSubstr("skipped app/tools/lint.yaml: ignored by .sourceignore: /app/tools/"));
}

// A folder Fleet renders per cluster group renders, for the cluster --labels describe, what
// its fleet.yaml target gives it, as the control plane renders it.
TEST(RenderCommandTest, RendersTheFolderFleetYamlsTargetGivesTheCluster) {
  GitFixture repo(TempDir("render") + "/repo");
  repo.Write("mc/fleet.yaml",
             "targetCustomizations:\n- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
             "  kustomize: {dir: prod}\n");
  repo.Write("mc/prod/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: prod}\n");
  repo.Write("mc/base.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: base}\n");
  repo.Commit("a target's folder");
  Result r = RunCtl({"render", "--repo=" + repo.dir(), "--path=mc", "--labels=env=prod"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: prod\n");
  EXPECT_THAT(r.err, HasSubstr("each cluster renders what mc/fleet.yaml's targetCustomizations"));
  r = RunCtl({"render", "--repo=" + repo.dir(), "--path=mc", "--labels=env=dev"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("name: base")) << "no target: the folder as it is";
  EXPECT_THAT(r.out, HasSubstr("name: prod"));
}

// A cluster fleet.yaml's doNotDeploy leaves out gets nothing, as on the control plane: the
// render prints nothing and says why, and is no failure.
TEST(RenderCommandTest, ALeftOutClusterRendersNothingAndSaysWhy) {
  GitFixture repo(TempDir("render") + "/repo");
  repo.Write("mc/fleet.yaml",
             "targetCustomizations:\n- name: lab\n  clusterSelector: {matchLabels: {env: lab}}\n"
             "  doNotDeploy: true\n");
  repo.Write("mc/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n");
  repo.Commit("not for the lab");
  Result r = RunCtl({"render", "--repo=" + repo.dir(), "--path=mc", "--labels=env=lab"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("mc/fleet.yaml: targetCustomizations lab says doNotDeploy for "
                               "this cluster: nothing of the bundle is deployed on this cluster"));
  r = RunCtl({"render", "--repo=" + repo.dir(), "--path=mc", "--labels=env=prod"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("name: web"));
}

// The same by Fleet's cluster groups: --cluster-groups gives the cluster the groups its
// labels put it in, as the control plane's flag does; without it, whether the target is
// the cluster's is unknown, and the render fails saying so rather than guess.
TEST(RenderCommandTest, RendersWhatAClusterGroupsTargetGivesTheCluster) {
  const std::string dir = TempDir("render");
  GitFixture repo(dir + "/repo");
  repo.Write("mc/fleet.yaml",
             "targetCustomizations:\n- name: eu\n  clusterGroup: eu\n  kustomize: {dir: eu}\n");
  repo.Write("mc/eu/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: eu}\n");
  repo.Commit("a group's folder");
  std::ofstream(dir + "/groups.yaml")
      << "apiVersion: fleet.cattle.io/v1alpha1\nkind: ClusterGroup\n"
         "metadata: {name: eu}\n"
         "spec: {selector: {matchLabels: {region: eu}}}\n";
  Result r = RunCtl({"render", "--repo=" + repo.dir(), "--path=mc", "--labels=region=eu",
                     "--cluster-groups=" + dir + "/groups.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: eu\n");
  r = RunCtl({"render", "--repo=" + repo.dir(), "--path=mc", "--labels=region=eu"});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("the control plane reads no cluster groups"));
  std::ofstream(dir + "/bad.yaml") << "kind: ConfigMap\n";
  r = RunCtl(
      {"render", "--repo=" + repo.dir(), "--path=mc", "--cluster-groups=" + dir + "/bad.yaml"});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("--cluster-groups: document 1: is a ConfigMap"));
}

// That `rendered` holds the objects `kustomize` builds (itself, with the network this
// machine has) in `repo`'s folder `path`, `count` of them.
void ExpectWhatKustomizeBuilds(const std::string& kustomize, const std::string& repo,
                               const std::string& path, const std::string& rendered, size_t count) {
  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin", "HOME=" + repo};
  std::vector<std::string> argv = {
      kustomize, absl::EndsWith(kustomize, "kubectl") ? "kustomize" : "build", repo + "/" + path};
  auto tool = RunSubprocess(argv, options);
  ASSERT_TRUE(tool.ok()) << tool.status();
  ASSERT_EQ(tool->exit_code, 0) << tool->stderr_text;
  auto ours = ParseManifests(rendered, "ours");
  auto theirs = ParseManifests(tool->stdout_text, "theirs");
  ASSERT_TRUE(ours.ok() && theirs.ok());
  std::map<std::string, std::string> a, b;
  for (const auto& o : *ours) a[KeyString(o.key())] = o.content_hash();
  for (const auto& o : *theirs) b[KeyString(o.key())] = o.content_hash();
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), count);
}

TEST(RenderCommandTest, KustomizeOutputEqualsKubectlKustomize) {
  std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  GitFixture git(TempDir("render"));
  git.Write("base/kustomization.yaml", "resources: [cm.yaml]\ncommonLabels: {app: web}\n");
  git.Write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n");
  git.Write("overlays/prod/kustomization.yaml",
            "namespace: prod\nnamePrefix: prod-\nresources: [../../base]\n"
            "secretGenerator: [{name: creds, literals: [user=admin]}]\n");
  git.Commit("overlay");
  Result r = RunCtl({"render", "--repo=" + git.dir(), "--path=overlays/prod"});
  ASSERT_EQ(r.code, 0) << r.err;
  ExpectWhatKustomizeBuilds(kustomize, git.dir(), "overlays/prod", r.out, 2);
}

// A remote base (another repository at a tag): what gitfleet fetches and builds is what
// kustomize builds when it clones the repository itself.
TEST(RenderCommandTest, ARemoteBaseRendersAsKustomizeBuildsIt) {
  std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  GitFixture platform(TempDir("platform"));
  platform.Write("deploy/base/kustomization.yaml", "resources: [cm.yaml, ../extra]\n");
  platform.Write("deploy/base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
  platform.Write("deploy/extra/kustomization.yaml", "resources: [svc.yaml]\n");
  platform.Write("deploy/extra/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n");
  platform.Commit("v1");
  platform.Git("tag v1");
  platform.Write("deploy/base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n");
  platform.Commit("v2");
  // And a release's install.yaml over http, as kustomize downloads one.
  ::gitfleet::testing::ChartRepositoryServer releases(TempDir("releases"));
  releases.Write("install.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: op}\n");
  if (absl::Status started = releases.Start(); !started.ok()) GTEST_SKIP() << started;
  GitFixture git(TempDir("render"));
  git.Write("app/kustomization.yaml",
            absl::StrCat("namespace: prod\nresources:\n- ", platform.url(),
                         "//deploy/base?ref=v1\n- ", releases.url(), "install.yaml\n"));
  git.Commit("app");
  Result refused = RunCtl({"render", "--repo=" + git.dir(), "--path=app"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, HasSubstr("--kustomize-remote-bases="));
  Result r = RunCtl({"render", "--repo=" + git.dir(), "--path=app",
                     "--kustomize-remote-bases=*," + releases.url()});
  ASSERT_EQ(r.code, 0) << r.err;
  ExpectWhatKustomizeBuilds(kustomize, git.dir(), "app", r.out, 3);
  EXPECT_THAT(r.out, HasSubstr("name: a")) << "the tag's";
}

TEST(RenderCommandTest, SubstitutesTheValuesOfTheClusterDescribed) {
  GitFixture git(TempDir("render"));
  git.Write(
      "web/cm.yaml",
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-${env}\n"
      "data: {replicas: \"${replicas:=1}\", owner: \"${cluster.name}\", raw: \"$${HOME}\"}\n");
  git.Commit("templated");
  Result r = RunCtl({"render", "--repo=" + git.dir(), "--path=web", "--labels=env=prod",
                     "--values=replicas=3", "--cluster=eu-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-prod\ndata:\n"
            "  replicas: \"3\"\n  owner: eu-1\n  raw: \"${HOME}\"\n");
  Result rule =
      RunCtl({"render", "--repo=" + git.dir(), "--path=web", "--labels=env=prod",
              "--cluster-values=env=prod;replicas=5", "--cluster-values=env=dev;replicas=9"});
  ASSERT_EQ(rule.code, 0) << rule.err;
  EXPECT_THAT(rule.out, HasSubstr("replicas: \"5\""));
  // --flag value, as kubectl, argocd and flux take it, means the same as --flag=value.
  Result spaced = RunCtl({"render", "--repo", git.dir(), "--path", "web", "--labels", "env=prod",
                          "--values", "replicas=3", "--cluster", "eu-1"});
  ASSERT_EQ(spaced.code, 0) << spaced.err;
  EXPECT_EQ(spaced.out, r.out);
  // Without values, substitution is off unless asked for: the text passes as written.
  Result untouched = RunCtl({"render", "--repo=" + git.dir(), "--path=web"});
  ASSERT_EQ(untouched.code, 0) << untouched.err;
  EXPECT_THAT(untouched.out, HasSubstr("name: web-${env}"));
  Result missing = RunCtl({"render", "--repo=" + git.dir(), "--path=web", "--substitute"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("ConfigMap web-${env}: variable ${env} has no value"));
}

TEST(RenderCommandTest, SaysWhereATankaEnvironmentPutsObjectsThatNameNoNamespace) {
  GitFixture git(TempDir("render"));
  git.Write("tkrc.yaml", "");
  git.Write("environments/prod/main.jsonnet",
            "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' } }");
  git.Write("environments/prod/spec.json",
            R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment",
                "spec": {"namespace": "shop"}})");
  git.Commit("a Tanka environment");
  Result r = RunCtl({"render", "--repo=" + git.dir(), "--path=environments/prod"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("name: settings"));
  EXPECT_THAT(r.err, HasSubstr("gitfleetctl: note: namespaced objects that name no namespace go "
                               "to shop (environments/prod/spec.json: spec.namespace)"));
}

TEST(RenderCommandTest, AnEmptyRenderIsAnErrorUnlessAllowed) {
  GitFixture git(TempDir("render"));
  git.Write("web/README.md", "not a manifest\n");
  git.Commit("no manifests");
  Result empty = RunCtl({"render", "--repo=" + git.dir(), "--path=web"});
  EXPECT_EQ(empty.code, 1);
  EXPECT_THAT(empty.err, HasSubstr("renders no objects from path web (engine plain)"));
  EXPECT_THAT(empty.err, HasSubstr("--allow-empty"));
  Result allowed = RunCtl({"render", "--repo=" + git.dir(), "--path=web", "--allow-empty"});
  EXPECT_EQ(allowed.code, 0) << allowed.err;
  EXPECT_EQ(allowed.out, "");
}

TEST(RenderCommandTest, BadInputIsAOneLineError) {
  GitFixture git(TempDir("render"));
  git.Write("a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
  git.Commit("broken");
  Result broken = RunCtl({"render", "--repo=" + git.dir(), "--path=a"});
  EXPECT_EQ(broken.code, 1);
  EXPECT_THAT(broken.err, HasSubstr("a/cm.yaml:"));
  Result values = RunCtl({"render", "--repo=" + git.dir(), "--values=novalue"});
  EXPECT_EQ(values.code, 2);
  EXPECT_THAT(values.err, HasSubstr("--values: \"novalue\" is not KEY=VALUE"));
  Result labels = RunCtl({"render", "--repo=" + git.dir(), "--labels=a=b=c"});
  EXPECT_EQ(labels.code, 2);
  EXPECT_THAT(labels.err, HasSubstr("--labels"));
  Result missing = RunCtl({"render", "--repo=/nonexistent/repo"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/repo"));
  EXPECT_EQ(RunCtl({"render"}).code, 2);
  // The control plane's flags, checked as it checks them.
  for (const auto& [flag, says] : std::vector<std::pair<std::string, std::string>>{
           {"--git-credentials=http://git.example.com/=a", "never sent over plain http"},
           {"--kustomize-remote-bases=github.com/org/", "is not an https://, ssh://"},
           {"--chart-credentials=https://charts.example.com/=a",
            "is not under any of --chart-repositories"},
       }) {
    Result bad = RunCtl({"render", "--repo=" + git.dir(), flag});
    EXPECT_EQ(bad.code, 2) << flag;
    EXPECT_THAT(bad.err, HasSubstr(says)) << flag;
  }
}

}  // namespace
}  // namespace gitfleet::cli
