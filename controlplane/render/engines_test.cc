// Kustomize and Jsonnet renders compared with the real tools' own output.

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_system.h"
#include "common/manifest/yaml.h"
#include "common/model/revision.h"
#include "common/subprocess.h"
#include "controlplane/render/chart_fetcher.h"
#include "controlplane/render/helm_renderer.h"
#include "controlplane/render/jsonnet_renderer.h"
#include "controlplane/render/kustomize_renderer.h"
#include "controlplane/render/plain_renderer.h"
#include "controlplane/render/remote_bases.h"
#include "controlplane/render/renderer.h"
#include "controlplane/render/sops.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/chart_server.h"
#include "tests/util/fake_tools.h"
#include "tests/util/fleet_examples.h"
#include "tests/util/git_fixture.h"
#include "tests/util/git_servers.h"
#include "tests/util/process.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

// Each object's key and its data's `field`, in key order: "/ConfigMap//shop 1.0.0".
std::vector<std::string> KeysWithData(const ObjectSet& set, const char* field) {
  std::vector<std::string> out;
  for (const auto& [key, object] : set.objects()) {
    out.push_back(
        absl::StrCat(key, " ", YAML::Load(object->yaml())["data"][field].as<std::string>()));
  }
  return out;
}

// The same repository as files (for the renderer) and on disk (for the real tool).
struct Repo {
  std::string dir = TempDir("engines");
  std::vector<RepoFile> files;
  void Add(const std::string& path, const std::string& content) {
    files.push_back({path, content});
    ASSERT_TRUE(PosixFileSystem().WriteFileAtomically(dir + "/" + path, content).ok());
  }
  std::vector<RepoFile> Under(const std::string& path) const {
    std::vector<RepoFile> out;
    for (const RepoFile& file : files) {
      if (absl::StartsWith(file.path, path + "/")) out.push_back(file);
    }
    return out;
  }
};

// Object keys and content hashes: equal sets, equal renders.
std::map<std::string, std::string> Summary(const ObjectSet& set) {
  std::map<std::string, std::string> out;
  for (const auto& [key, object] : set.objects()) out[key] = object->content_hash();
  return out;
}

ObjectSet ParseToolOutput(const std::string& text) {
  ObjectSet set;
  auto objects = ParseManifests(text, "tool");
  EXPECT_TRUE(objects.ok()) << objects.status();
  for (auto& o : *objects) set.Put(o);
  return set;
}

TEST(RendererRegistryTest, EnginesRegisterByNameAndSayWhatTheyNeed) {
  EXPECT_THAT(RendererNames(), ::testing::ElementsAre("helm", "jsonnet", "kustomize", "plain"));
  const RendererFactory* jsonnet = FindRendererFactory("jsonnet");
  ASSERT_NE(jsonnet, nullptr);
  EXPECT_TRUE(jsonnet->takes_values());
  EXPECT_TRUE(jsonnet->reads_outside_path());
  EXPECT_FALSE(jsonnet->explicit_values_only());
  EXPECT_TRUE(FindRendererFactory("helm")->explicit_values_only());
  EXPECT_FALSE(FindRendererFactory("plain")->takes_values());
  EXPECT_TRUE(FindRendererFactory("kustomize")->reads_outside_path());
  EXPECT_EQ(FindRendererFactory("ksonnet"), nullptr);
  EXPECT_THAT(std::string(CheckEngineName("ksonnet").message()),
              ::testing::HasSubstr("\"ksonnet\" is not one of helm, jsonnet, kustomize, plain"));
  // One renderer of each, made from the common options.
  EngineOptions options;
  options.scratch_dir = TempDir("scratch");
  Renderers renderers(options);
  for (const std::string& name : RendererNames()) {
    ASSERT_NE(renderers.Find(name), nullptr) << name;
    EXPECT_EQ(renderers.Find(name)->engine(), name);
  }
  EXPECT_EQ(renderers.Find("ksonnet"), nullptr);
  // Detection asks kustomize before helm before jsonnet.
  EXPECT_EQ(DetectEngine("a", {{"a/Chart.yaml", ""}, {"a/kustomization.yaml", ""}}), "kustomize");
  EXPECT_EQ(DetectEngine("a", {{"a/Chart.yaml", ""}, {"a/main.jsonnet", ""}}), "helm");
}

TEST(DetectEngineTest, PicksEngineFromMarkerFiles) {
  EXPECT_EQ(DetectEngine("a", {{"a/kustomization.yaml", ""}}), "kustomize");
  EXPECT_EQ(DetectEngine("a", {{"a/Chart.yaml", ""}}), "helm");
  EXPECT_EQ(DetectEngine("a", {{"a/main.jsonnet", ""}}), "jsonnet");
  // Flux's layout: a subdirectory's kustomization makes the path a kustomize build.
  EXPECT_EQ(DetectEngine("a", {{"a/x.yaml", ""}, {"a/sub/kustomization.yaml", ""}}), "kustomize");
  // Not one inside a dot-directory or a helm chart.
  EXPECT_EQ(DetectEngine("a", {{"a/x.yaml", ""}, {"a/.old/kustomization.yaml", ""}}), "plain");
  EXPECT_EQ(DetectEngine("", {{"kustomization.yaml", ""}}), "kustomize");
}

// Flux's clusters/<env> layout: manifests beside a flux-system directory that has its own
// kustomization, with files that are never manifests around them, and then files its
// .sourceignore names.
TEST(KustomizeRendererTest, ADirectoryWithoutAKustomizationIsBuiltAsFluxDoes) {
  std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  Repo repo;
  repo.Add("clusters/prod/apps.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n");
  repo.Add("clusters/prod/flux-system/kustomization.yaml",
           "resources: [gotk-components.yaml, ../../../infra/base]\n");
  repo.Add("clusters/prod/flux-system/gotk-components.yaml",
           "apiVersion: v1\nkind: Namespace\nmetadata: {name: flux-system}\n");
  repo.Add("infra/base/kustomization.yaml", "resources: [cm.yaml]\n");
  repo.Add("infra/base/cm.yaml",
           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: infra, namespace: apps}\n");
  repo.Add("clusters/prod/fleet.yaml", "defaultNamespace: apps\n");
  repo.Add("clusters/prod/.sops.yaml", "creation_rules: []\n");
  ASSERT_EQ(DetectEngine("clusters/prod", repo.Under("clusters/prod")), "kustomize");
  KustomizeRenderer renderer({kustomize, TempDir("scratch"), absl::Seconds(60), {}});
  std::vector<std::string> read_paths;
  std::vector<std::string> notes;
  RenderInput input{"prod", "clusters/prod", repo.files, &read_paths};
  input.notes = &notes;
  auto set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 3u);
  EXPECT_EQ(set->objects().count("/Namespace//flux-system"), 1u);
  EXPECT_EQ(set->objects().count("/ConfigMap/apps/infra"), 1u);
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("clusters/prod/fleet.yaml")));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("clusters/prod/.sops.yaml: a dotfile")));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("generated one with 2 resources")));
  // The render cache follows the nested build out of the path.
  EXPECT_THAT(read_paths, ::testing::Contains("infra/base"));

  // With a root .sourceignore: source-controller leaves out what it names before
  // kustomize-controller generates the kustomization, so a test fixture and a staging build
  // named there are not part of it; a bundle rendered before gitfleet read .sourceignore
  // keeps them.
  repo.Add(".sourceignore", "# test data\nfixtures/\n/clusters/prod/wip/\n");
  repo.Add("clusters/prod/fixtures/cm.yaml",
           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fixture, namespace: apps}\n");
  repo.Add("clusters/prod/wip/kustomization.yaml", "resources: [ns.yaml]\n");
  repo.Add("clusters/prod/wip/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: wip}\n");
  notes.clear();
  set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 3u);
  EXPECT_THAT(notes, ::testing::IsSupersetOf(
                         {"skipped clusters/prod/fixtures/cm.yaml: ignored by .sourceignore: "
                          "fixtures/",
                          "skipped clusters/prod/wip/kustomization.yaml: ignored by "
                          ".sourceignore: /clusters/prod/wip/",
                          "skipped clusters/prod/wip/ns.yaml: ignored by .sourceignore: "
                          "/clusters/prod/wip/"}));
  EXPECT_THAT(read_paths, ::testing::IsSupersetOf({".sourceignore", "clusters/.sourceignore"}));
  notes.clear();
  input.reads_sourceignore = false;
  set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 5u) << "the upgrade prunes nothing";
  EXPECT_THAT(notes, ::testing::Contains(
                         "kept clusters/prod/fixtures/cm.yaml although it is ignored by "
                         ".sourceignore: fixtures/ (this bundle was rendered before gitfleet read "
                         ".sourceignore, and keeps what it rendered)"));
}

// Fleet's multi-cluster kustomize layout (fleet-examples' multi-cluster/kustomize): one
// base, an overlay per environment, and fleet.yaml's targetCustomizations giving each
// cluster its overlay. Each cluster renders what its target gives it, as Fleet renders it.
TEST(KustomizeRendererTest, FleetTargetCustomizationsGiveEachClusterItsFolder) {
  std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  Repo repo;
  repo.Add("mc/kustomize/fleet.yaml", R"(defaultNamespace: shop
targetCustomizations:
- name: dev
  clusterSelector: {matchLabels: {env: dev}}
  kustomize: {dir: overlays/dev}
- name: prod
  clusterSelector:
    matchExpressions: [{key: env, operator: In, values: [prod, production]}]
  kustomize: {dir: ./overlays/prod/}
  namespace: shop-prod
- name: lab
  clusterName: lab-1
  doNotDeploy: true
- name: legacy
  clusterSelector: {matchLabels: {env: legacy}}
  yaml: {overlays: [legacy]}
- name: both
  clusterSelector: {matchLabels: {env: both}}
  kustomize: {dir: overlays/dev}
  yaml: {overlays: [legacy]}
- name: gone
  clusterSelector: {matchLabels: {env: gone}}
  kustomize: {dir: overlays/gone}
- name: up
  clusterSelector: {matchLabels: {env: up}}
  kustomize: {dir: ../../secrets}
- name: badns
  clusterSelector: {matchLabels: {env: badns}}
  namespace: Shop_Prod
)");
  for (const auto& [path, content] : testing::FleetKustomizeOverlays("mc/kustomize")) {
    repo.Add(path, content);
  }
  ASSERT_EQ(DetectEngine("mc/kustomize", repo.Under("mc/kustomize")), "kustomize");
  KustomizeRenderer renderer({kustomize, TempDir("scratch"), absl::Seconds(60), {}});
  auto render = [&](const Values& cluster, ReadValues* read, std::vector<std::string>* notes,
                    std::vector<std::string>* read_paths, bool reads_targets = true) {
    RenderInput input{"web", "mc/kustomize", repo.files, read_paths, &cluster, read};
    input.notes = notes;
    input.reads_fleet_target_folders = reads_targets;
    return RenderBundlePath(renderer, input);
  };
  const Values dev = {{ClusterNameKey(), "dev-1"}, {ClusterLabelKey("env"), "dev"}};
  ReadValues read;
  std::vector<std::string> notes, read_paths;
  auto dev_set = render(dev, &read, &notes, &read_paths);
  ASSERT_TRUE(dev_set.ok()) << dev_set.status();
  auto tier = [](const absl::StatusOr<ObjectSet>& set) {
    auto it = set->objects().find("/ConfigMap//web");
    return it == set->objects().end() ? "(none)" : it->second->yaml();
  };
  EXPECT_THAT(tier(dev_set), HasSubstr("tier: dev"));
  EXPECT_EQ(dev_set->size(), 1u);
  EXPECT_EQ(dev_set->default_namespace(), "shop");
  // What chose the target is recorded: clusters that agree on it share the render.
  EXPECT_EQ(read, (ReadValues{{ClusterLabelKey("env"), "dev"}}));
  EXPECT_THAT(read_paths,
              ::testing::IsSupersetOf({"mc/kustomize/overlays/dev", "mc/kustomize/fleet.yaml"}));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "each cluster renders what mc/kustomize/fleet.yaml's targetCustomizations "
                         "dev, prod, legacy, both, gone, up, badns give it")))
      << ::testing::PrintToString(notes);
  EXPECT_THAT(notes, ::testing::Not(::testing::Contains(HasSubstr("a bundle per target"))));

  const Values prod = {{ClusterNameKey(), "p"}, {ClusterLabelKey("env"), "production"}};
  auto prod_set = render(prod, nullptr, nullptr, nullptr);
  ASSERT_TRUE(prod_set.ok()) << prod_set.status();
  EXPECT_THAT(tier(prod_set), HasSubstr("tier: prod"));
  EXPECT_EQ(prod_set->default_namespace(), "shop-prod") << "the target's namespace wins";

  // Yaml overlays where the cluster builds a kustomization: Fleet builds it and leaves
  // them unread, and so does gitfleet, saying so.
  std::vector<std::string> both_notes;
  auto both_set = render({{ClusterNameKey(), "b2"}, {ClusterLabelKey("env"), "both"}}, nullptr,
                         &both_notes, nullptr);
  ASSERT_TRUE(both_set.ok()) << both_set.status();
  EXPECT_THAT(tier(both_set), HasSubstr("tier: dev"));
  EXPECT_THAT(both_notes,
              ::testing::Contains(HasSubstr(
                  "targetCustomizations both's yaml overlays (legacy) are not applied: its "
                  "clusters build mc/kustomize/overlays/dev/kustomization.yaml")));

  const std::pair<Values, const char*> kFailing[] = {
      {{{ClusterNameKey(), "lab-1"}, {ClusterLabelKey("env"), "lab"}},
       "targetCustomizations lab says doNotDeploy for this cluster"},
      {{{ClusterNameKey(), "l"}, {ClusterLabelKey("env"), "legacy"}},
       "targetCustomizations legacy gives this cluster yaml overlays, which Fleet applies to "
       "plain YAML folders, and this folder renders with kustomize"},
      {{{ClusterNameKey(), "g"}, {ClusterLabelKey("env"), "gone"}},
       "targetCustomizations gone's kustomize.dir names overlays/gone, which is no folder of "
       "files in mc/kustomize"},
      {{{ClusterNameKey(), "u"}, {ClusterLabelKey("env"), "up"}},
       "targetCustomizations up: its kustomize.dir ../../secrets is not a folder inside the "
       "bundle's"},
      {{{ClusterNameKey(), "b"}, {ClusterLabelKey("env"), "badns"}},
       "targetCustomizations badns: its namespace: "},
      // None selects it: the folder as it is, which as a whole is no build.
      {{{ClusterNameKey(), "x"}, {ClusterLabelKey("env"), "qa"}},
       "(no targetCustomizations of mc/kustomize/fleet.yaml selects this cluster, so it renders "
       "mc/kustomize as it is, as Fleet would"},
  };
  for (const auto& [cluster, error] : kFailing) {
    auto failed = render(cluster, nullptr, nullptr, nullptr);
    EXPECT_FALSE(failed.ok()) << error;
    EXPECT_THAT(std::string(failed.status().message()), HasSubstr(error));
    // Only doNotDeploy leaves a cluster out; the rest fail it.
    EXPECT_EQ(IsNotDeployed(failed.status()), absl::StrContains(error, "doNotDeploy")) << error;
  }

  // A bundle rendered before gitfleet read them renders its folder for every cluster, as it
  // did, and says what the targets would change.
  notes.clear();
  auto old = render(dev, nullptr, &notes, nullptr, /*reads_targets=*/false);
  EXPECT_FALSE(old.ok());
  EXPECT_THAT(std::string(old.status().message()),
              HasSubstr("a bundle per target does their work"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "give some clusters another folder or namespace; this bundle was "
                         "rendered before gitfleet read them")));
  // Without the cluster's values (a render for every cluster alike), nothing is chosen.
  auto template_mode = RenderBundlePath(renderer, {"web", "mc/kustomize", repo.files});
  EXPECT_THAT(std::string(template_mode.status().message()),
              HasSubstr("a bundle per target does their work"));
}

// Fleet's single-cluster kustomize layout (fleet-examples' single-cluster/kustomize):
// fleet.yaml's own kustomize.dir names the overlay Fleet renders, for every cluster whose
// target gives no other.
TEST(KustomizeRendererTest, FleetYamlsKustomizeDirIsTheFolderRendered) {
  std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  Repo repo;
  repo.Add("sc/kustomize/fleet.yaml", "namespace: shop\nkustomize:\n  dir: ./overlays/dev\n");
  for (const auto& [path, content] : testing::FleetKustomizeOverlays("sc/kustomize")) {
    repo.Add(path, content);
  }
  KustomizeRenderer renderer({kustomize, TempDir("scratch"), absl::Seconds(60), {}});
  auto tier = [](const absl::StatusOr<ObjectSet>& set) -> std::string {
    if (!set.ok()) return std::string(set.status().message());
    auto it = set->objects().find("/ConfigMap//web");
    return it == set->objects().end() ? "(none)" : it->second->yaml();
  };
  std::vector<std::string> notes, read_paths;
  RenderInput input{"web", "sc/kustomize", repo.files, &read_paths};
  input.notes = &notes;
  auto set = RenderBundlePath(renderer, input);
  EXPECT_THAT(tier(set), HasSubstr("tier: dev"));
  EXPECT_THAT(notes, ::testing::Contains("renders sc/kustomize/overlays/dev, the folder "
                                         "sc/kustomize/fleet.yaml's kustomize.dir names, as Fleet "
                                         "renders it"));
  EXPECT_THAT(notes,
              ::testing::Not(::testing::Contains(HasSubstr("which gitfleet does not read"))));
  EXPECT_THAT(read_paths,
              ::testing::IsSupersetOf({"sc/kustomize/overlays/dev", "sc/kustomize/fleet.yaml"}));

  // A target's own folder wins for its clusters; the others keep fleet.yaml's.
  repo.files[0].content +=
      "targetCustomizations:\n- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
      "  kustomize: {dir: overlays/prod}\n";
  const Values prod = {{ClusterLabelKey("env"), "prod"}};
  const Values dev = {{ClusterLabelKey("env"), "dev"}};
  EXPECT_THAT(tier(RenderBundlePath(renderer, {"web", "sc/kustomize", repo.files, nullptr, &prod})),
              HasSubstr("tier: prod"));
  EXPECT_THAT(tier(RenderBundlePath(renderer, {"web", "sc/kustomize", repo.files, nullptr, &dev})),
              HasSubstr("tier: dev"));

  // Rendered before gitfleet read it: the folder as it is, and the error says why.
  RenderInput old{"web", "sc/kustomize", repo.files};
  old.reads_fleet_target_folders = false;
  EXPECT_THAT(tier(RenderBundlePath(renderer, old)),
              HasSubstr("sc/kustomize/fleet.yaml sets kustomize.dir ./overlays/dev: Fleet renders "
                        "that"));
  for (const auto& [text, error] :
       {std::pair<const char*, const char*>{"kustomize: {dir: ../up}\n",
                                            "sc/kustomize/fleet.yaml: kustomize.dir ../up is not a "
                                            "folder inside the bundle's"},
        {"kustomize: {dir: overlays/qa}\n",
         "sc/kustomize/fleet.yaml: kustomize.dir names overlays/qa, which is no folder of files in "
         "sc/kustomize"}}) {
    repo.files[0].content = text;
    EXPECT_THAT(tier(RenderBundlePath(renderer, {"web", "sc/kustomize", repo.files})),
                HasSubstr(error));
  }
}

TEST(KustomizeRendererTest, MatchesKubectlKustomizeForOverlays) {
  std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  Repo repo;
  repo.Add("base/kustomization.yaml", "resources: [deploy.yaml]\n");
  repo.Add("base/deploy.yaml", R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.25"}]}
)");
  repo.Add("components/monitoring/kustomization.yaml",
           R"(apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
commonAnnotations: {monitoring: enabled}
)");
  repo.Add("overlays/prod/kustomization.yaml", R"(namespace: shop
resources: [../../base]
components: [../../components/monitoring]
patches:
  - path: replicas.yaml
configMapGenerator:
  - name: settings
    files: [settings.env]
)");
  repo.Add("overlays/prod/replicas.yaml",
           "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n");
  repo.Add("overlays/prod/settings.env", "WORKERS=4\n");

  KustomizeRenderer renderer({kustomize, TempDir("scratch"), absl::Seconds(60), {}});
  std::vector<std::string> read;
  auto ours = renderer.Render({"web", "overlays/prod", repo.files, &read});
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_THAT(read, ::testing::ElementsAre("base", "components/monitoring", "overlays/prod"));

  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin", "HOME=" + repo.dir};
  std::vector<std::string> argv = {kustomize};
  argv.push_back(absl::EndsWith(kustomize, "kubectl") ? "kustomize" : "build");
  argv.push_back(repo.dir + "/overlays/prod");
  auto tool = RunSubprocess(argv, options);
  ASSERT_TRUE(tool.ok() && tool->exit_code == 0) << tool->stderr_text;
  EXPECT_EQ(Summary(*ours), Summary(ParseToolOutput(tool->stdout_text)));
  EXPECT_EQ(ours->size(), 2u);
  EXPECT_THAT(ours->objects().begin()->first, HasSubstr("ConfigMap/shop/settings-"));
}

TEST(KustomizeRendererTest, ErrorsNameRepositoryPathsNotTheScratchCopy) {
  std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  std::string scratch = TempDir("scratch");
  KustomizeRenderer renderer({kustomize, scratch, absl::Seconds(60), {}});
  auto bad = renderer.Render(
      {"web", "apps/web", {{"apps/web/kustomization.yaml", "resources: [missing.yaml]\n"}}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("kustomize build apps/web failed"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("missing.yaml"));
  EXPECT_THAT(std::string(bad.status().message()), Not(HasSubstr(scratch)));
  EXPECT_TRUE(PosixFileSystem().ListFiles(scratch)->size() <= 1u) << "scratch copies removed";
  // A resource kept in Git LFS: kustomize's own error, and what the file really is.
  auto pointer = renderer.Render(
      {"web",
       "apps/web",
       {{"apps/web/kustomization.yaml", "resources: [big.yaml]\n"},
        {"apps/web/big.yaml",
         "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 12345\n"}}});
  EXPECT_EQ(pointer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pointer.status().message()),
              HasSubstr("(apps/web/big.yaml is a Git LFS pointer: give the source --lfs to "
                        "read files kept in Git LFS)"));
  // kustomize's helmCharts from a chart repository, where the control plane fetches none:
  // the message says what to do (KustomizeRendererTest.HelmChartsAreFetchedAndRenderedByHelm).
  auto chart = renderer.Render(
      {"web",
       "apps/web",
       {{"apps/web/kustomization.yaml",
         "helmCharts:\n- {name: app, repo: https://charts.example.com, version: 1.0.0}\n"}}});
  EXPECT_EQ(chart.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(chart.status().message()),
              HasSubstr("apps/web/kustomization.yaml: helmCharts app from "
                        "https://charts.example.com: the control plane fetches no charts (start "
                        "it with --chart-repositories)"));
  auto escape = renderer.Render({"web", "a", {{"../etc/passwd", "x"}}});
  EXPECT_THAT(std::string(escape.status().message()), HasSubstr("refusing repository path"));
}

// kustomize's remote bases (resources naming a folder of another repository at a ref, as
// Argo CD and Flux repositories have them): the control plane fetches each repository,
// theirs too, and kustomize builds a copy, keeping no network. Real kustomize.
TEST(KustomizeRendererTest, RemoteBasesAreFetchedByTheControlPlane) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  testing::GitFixture shared(TempDir("shared"));
  shared.Write("common/kustomization.yaml", "resources: [sa.yaml]\n");
  shared.Write("common/sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app}\n");
  shared.Commit("common");
  testing::GitFixture remote(TempDir("remote"));
  // A base whose own kustomization reaches a folder beside it and another remote base.
  remote.Write("deploy/base/kustomization.yaml",
               absl::StrCat("resources:\n- cm.yaml\n- ../extra\n- ", shared.url(), "//common\n"));
  remote.Write("deploy/base/cm.yaml",
               "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {v: \"1\"}\n");
  remote.Write("deploy/extra/kustomization.yaml", "resources: [svc.yaml]\n");
  remote.Write("deploy/extra/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n");
  const std::string v1 = remote.Commit("v1");
  remote.Git("tag v1.0.0");
  remote.Write("deploy/base/cm.yaml",
               "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {v: \"2\"}\n");
  // A base naming a file it lacks: kustomize's message names the copy, told by its source.
  remote.Write("deploy/broken/kustomization.yaml", "resources: [missing.yaml]\n");
  const std::string v2 = remote.Commit("v2 on main");

  // A release's install.yaml, a plain file over http.
  testing::ChartRepositoryServer releases(TempDir("releases"));
  releases.Write("install.yaml",
                 "apiVersion: v1\nkind: Namespace\nmetadata: {name: operator}\n---\n"
                 "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: operator}\n");
  // A file of a private project, through GitLab's raw-file API (the ref in the query).
  releases.Write("api/v4/projects/7/repository/files/deploy/cm.yaml/raw",
                 "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gitlab}\n");
  if (absl::Status started = releases.Start(); !started.ok()) GTEST_SKIP() << started;

  std::unique_ptr<GitRepositories> repos =
      NewLibgit2Repositories(TempDir("cache"), {}, {"", /*allow_local=*/true});
  KustomizeOptions options{"", TempDir("scratch"), absl::Seconds(60), {}};
  options.allow_network = NetworkSandbox().empty();
  options.remote_bases = std::make_shared<RemoteBaseFetcher>(
      repos.get(), std::vector<std::string>{remote.url(), shared.url(), releases.url()});
  KustomizeRenderer renderer(options);
  std::vector<RepoFile> files = {
      {"apps/web/kustomization.yaml",
       absl::StrCat("namePrefix: shop-\nresources:\n- ", remote.url(), "//deploy/base?ref=v1.0.0\n",
                    "- local.yaml\n- ", releases.url(), "install.yaml\n- ", releases.url(),
                    "api/v4/projects/7/repository/files/deploy%2Fcm.yaml/raw?ref=main\n")},
      {"apps/web/local.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: local}\n"},
      // Another bundle's kustomization with a base from nowhere trusted: not this build's.
      {"apps/other/kustomization.yaml", "resources: [https://github.com/elsewhere/x//y]\n"},
  };
  std::vector<std::string> notes, read;
  RenderInput input{"web", "apps/web", files, &read};
  input.notes = &notes;
  absl::StatusOr<ObjectSet> set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  std::vector<std::string> keys;
  for (const auto& [key, object] : set->objects()) keys.push_back(key);
  EXPECT_THAT(keys, ::testing::ElementsAre("/ConfigMap//shop-gitlab", "/ConfigMap//shop-local",
                                           "/ConfigMap//shop-operator", "/ConfigMap//shop-web",
                                           "/Namespace//operator", "/Service//shop-web",
                                           "/ServiceAccount//shop-app"));
  for (const auto& [key, object] : set->objects()) {
    if (key == "/ConfigMap//shop-web") {
      EXPECT_THAT(object->yaml(), HasSubstr("v: \"1\"")) << "the tag's, not main's";
    }
  }
  EXPECT_THAT(notes,
              ::testing::Contains(absl::StrCat("fetched the remote file ", releases.url(),
                                               "install.yaml for apps/web/kustomization.yaml")));
  EXPECT_THAT(notes, ::testing::Contains(absl::StrCat("fetched the remote base ", remote.url(),
                                                      " at v1.0.0 (commit ", v1.substr(0, 12),
                                                      ") for apps/web/kustomization.yaml")));
  EXPECT_THAT(notes,
              ::testing::Contains(HasSubstr(absl::StrCat("fetched the remote base ", shared.url(),
                                                         " at its default "
                                                         "branch"))));
  EXPECT_THAT(read, ::testing::UnorderedElementsAre("apps/web")) << "the copies are not the "
                                                                    "repository's";

  // Untrusted, unreadable, or with no fetcher at all: fails naming the entry and why.
  const std::pair<std::string, std::string> kBad[] = {
      {"resources:\n- https://github.com/elsewhere/x//y?ref=v1\n",
       "apps/web/kustomization.yaml: resources \"https://github.com/elsewhere/x//y?ref=v1\": "
       "remote base https://github.com/elsewhere/x is in a repository the control plane does "
       "not fetch remote bases from: start it with --kustomize-remote-bases="},
      {absl::StrCat("resources: ['", remote.url(), "//deploy/base?ref=v9']\n"),
       absl::StrCat("remote base ", remote.url(), " at v9")},
      {"resources: [https://raw.githubusercontent.com/org/repo/main/install.yaml]\n",
       "remote file https://raw.githubusercontent.com/org/repo/main/install.yaml is at a URL the "
       "control plane does not fetch remote bases from"},
      {absl::StrCat("resources: ['", releases.url(), "missing.yaml']\n"),
       "the server answered HTTP 404"},
      {absl::StrCat("components: ['", releases.url(), "install.yaml']\n"),
       "and components takes folders"},
      {"resources: ['https://github.com/org/repo//../../etc?ref=v1']\n", "may not hold . or .."},
      {absl::StrCat("resources: ['", remote.url(), "//deploy/broken']\n"),
       absl::StrCat(" (.gitfleet-remote/1 is the remote base ", remote.url(),
                    " at its default branch (commit ", v2.substr(0, 12), "))")},
  };
  for (const auto& [kustomization, error] : kBad) {
    absl::StatusOr<ObjectSet> refused =
        renderer.Render({"web", "apps/web", {{"apps/web/kustomization.yaml", kustomization}}});
    EXPECT_THAT(refused.status().message(), HasSubstr(error)) << kustomization << "\n"
                                                              << refused.status().message();
  }
  KustomizeOptions none = options;
  none.remote_bases = nullptr;
  absl::StatusOr<ObjectSet> without = KustomizeRenderer(none).Render(input);
  EXPECT_THAT(without.status().message(),
              HasSubstr("is remote; renders have no network access, so vendor it into the "
                        "repository, or have the control plane fetch it "
                        "(--kustomize-remote-bases="));
  // The repository may not hold what the copies would be.
  std::vector<RepoFile> clash = files;
  clash.push_back({".gitfleet-remote/1/x.yaml", "x"});
  EXPECT_THAT(renderer.Render({"web", "apps/web", clash}).status().message(),
              HasSubstr("where gitfleet puts copies of remote bases"));
}

// A token or password written into the URL of a remote base, a remote file or a chart (a
// repository's file holds it, so it is leaked already) is never sent anywhere nor shown
// again: the render fails naming the URL without it, before any fetch, and no note holds it,
// even where every repository is trusted. An ssh account (`git@`) is no secret.
TEST(KustomizeRendererTest, CredentialsWrittenIntoARemoteUrlAreNeverSentNorShown) {
  const std::string port = absl::StrCat(::gitfleet::testing::FreePort());
  std::unique_ptr<GitRepositories> repos = NewLibgit2Repositories(TempDir("cache"), {}, {});
  auto trust_all = std::make_shared<RemoteBaseFetcher>(repos.get(), std::vector<std::string>{"*"},
                                                       absl::ZeroDuration());
  KustomizeOptions options{"", TempDir("scratch"), absl::Seconds(60), {}};
  options.remote_bases = trust_all;
  KustomizeRenderer kustomize(options);
  for (const std::string& reference :
       {absl::StrCat("https://git:s3cret@127.0.0.1:", port, "/org/repo//base?ref=v1"),
        absl::StrCat("git::https://s3cret@127.0.0.1:", port, "/org/repo.git//base"),
        absl::StrCat("https://deploy:s3cret@127.0.0.1:", port, "/org/repo/raw/main/install.yaml"),
        absl::StrCat("ssh://git:s3cret@127.0.0.1:", port, "/org/repo//base")}) {
    std::vector<std::string> notes;
    RenderInput input{
        "web", "apps/web", {{"apps/web/kustomization.yaml", "resources: ['" + reference + "']\n"}}};
    input.notes = &notes;
    absl::StatusOr<ObjectSet> refused = kustomize.Render(input);
    ASSERT_FALSE(refused.ok()) << reference;
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("carries credentials in its URL"))
        << reference;
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr("***@127.0.0.1")) << reference;
    EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("s3cret"))) << reference;
    EXPECT_THAT(absl::StrJoin(notes, "\n"), Not(HasSubstr("s3cret"))) << reference;
  }
  // kustomize's helmCharts, whether or not the control plane fetches charts.
  const RepoFile helm_charts = {
      "apps/web/kustomization.yaml",
      absl::StrCat(
          "helmCharts:\n- name: web\n  version: 1.0.0\n  repo: https://u:s3cret@127.0.0.1:", port,
          "/charts\n")};
  ChartFetchOptions any_chart;
  any_chart.allowed = {"*"};
  KustomizeOptions fetching = options;
  fetching.chart_fetcher = std::make_shared<ChartFetcher>(any_chart);
  for (const KustomizeOptions& with : {options, fetching}) {
    absl::StatusOr<ObjectSet> refused =
        KustomizeRenderer(with).Render({"web", "apps/web", {helm_charts}});
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("carries credentials in its URL"));
    EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("s3cret")));
  }
  // An ssh account is named, not refused (the fetch fails: nothing listens there).
  absl::StatusOr<ObjectSet> account = kustomize.Render(
      {"web",
       "apps/web",
       {{"apps/web/kustomization.yaml",
         absl::StrCat("resources: ['ssh://git@127.0.0.1:", port, "/org/repo//base']\n")}}});
  EXPECT_THAT(account.status().message(), Not(HasSubstr("carries credentials")));

  // A chart: in another Git repository, by an archive's URL, in a chart repository.
  HelmOptions helm_options{"/bin/true", TempDir("helm-scratch"), absl::Seconds(30), {}};
  helm_options.allow_network = true;
  ToolOptions remote = helm_options;
  remote.binary.clear();
  remote.remote_bases = trust_all;
  ChartFetchOptions any;
  any.allowed = {"*"};
  HelmRenderer helm(helm_options, remote, std::make_shared<ChartFetcher>(any));
  for (const std::string& chart :
       {absl::StrCat("chart: 'git::https://git:s3cret@127.0.0.1:", port, "/org/charts//web'"),
        absl::StrCat("chart: 'git::ssh://git@127.0.0.1:", port, "/org/charts//web?sshkey=s3cret'"),
        absl::StrCat("chart: 'https://u:s3cret@127.0.0.1:", port, "/web-1.0.0.tgz'"),
        absl::StrCat("repo: 'https://u:s3cret@127.0.0.1:", port, "/charts', chart: web")}) {
    std::vector<std::string> notes;
    RenderInput input{"web", "apps/web", {{"apps/web/fleet.yaml", "helm: {" + chart + "}\n"}}};
    input.notes = &notes;
    EXPECT_EQ(DetectEngine("apps/web", input.files), "helm") << chart;
    absl::StatusOr<ObjectSet> refused = RenderBundlePath(helm, input);
    ASSERT_FALSE(refused.ok()) << chart;
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("carries credentials in its URL"))
        << chart;
    EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("s3cret"))) << chart;
    EXPECT_THAT(absl::StrJoin(notes, "\n"), Not(HasSubstr("s3cret"))) << chart;
  }
  // A values file named by its URL (Fleet reads the bundle's files only).
  {
    std::vector<std::string> notes;
    RenderInput input{"web",
                      "apps/web",
                      {{"apps/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"},
                       {"apps/web/fleet.yaml",
                        "helm: {valuesFiles: ['https://u:s3cret@127.0.0.1/values.yaml']}\n"}}};
    input.notes = &notes;
    absl::StatusOr<ObjectSet> refused = RenderBundlePath(helm, input);
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("\"https://***@127.0.0.1/values.yaml\" must be a relative path"));
    EXPECT_THAT(absl::StrJoin(notes, "\n"), Not(HasSubstr("s3cret")));
  }
  // A chart's dependency, whether or not the control plane fetches charts.
  HelmRenderer fetching_none(helm_options, std::nullopt, nullptr);
  const std::vector<RepoFile> dependent = {
      {"apps/shop/Chart.yaml",
       absl::StrCat("apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n- name: db\n"
                    "  version: 1.0.0\n  repository: https://u:s3cret@127.0.0.1:",
                    port, "/charts\n")}};
  for (HelmRenderer* renderer : {&helm, &fetching_none}) {
    absl::StatusOr<ObjectSet> refused = renderer->Render({"shop", "apps/shop", dependent});
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("carries credentials in its URL"));
    EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("s3cret")));
  }
}

// Adds to `server` a chart for each (name, version): a Chart.yaml and a values.yaml.
absl::Status AddCharts(testing::ChartRepositoryServer& server,
                       const std::vector<std::pair<std::string, std::string>>& charts) {
  for (const auto& [name, version] : charts) {
    absl::Status added = server.AddChart(
        name, version,
        {{"Chart.yaml", absl::StrCat("apiVersion: v2\nname: ", name, "\nversion: ", version, "\n")},
         {"values.yaml", "replicas: 1\n"}});
    if (!added.ok()) return added;
  }
  return absl::OkStatus();
}

// A chart fetcher that trusts `server` alone.
std::shared_ptr<ChartFetcher> TrustingFetcher(const testing::ChartRepositoryServer& server) {
  ChartFetchOptions trusted;
  trusted.allowed = {server.url()};
  return std::make_shared<ChartFetcher>(std::move(trusted));
}

// kustomize's helmCharts (Argo CD's and Flux's "kustomize with a chart"): a chart from a
// chart repository is fetched by the control plane and put where kustomize looks before it
// pulls, so the build itself keeps no network; helm (a stand-in here) renders it; a chart
// committed in the chart home is kustomize's as it is. Real kustomize.
TEST(KustomizeRendererTest, HelmChartsAreFetchedAndRenderedByHelm) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  testing::ChartRepositoryServer server(TempDir("charts"));
  ASSERT_TRUE(AddCharts(server, {{"web", "1.0.0"}, {"web", "1.1.0"}}).ok());
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  const std::string helm = testing::WriteValuesEchoHelm(TempDir("echo-helm"));
  ASSERT_FALSE(helm.empty());
  KustomizeOptions options{"", TempDir("scratch"), absl::Seconds(60), {}};
  options.allow_network = NetworkSandbox().empty();
  options.helm_binary = helm;
  options.chart_fetcher = TrustingFetcher(server);
  KustomizeRenderer renderer(options);
  std::vector<RepoFile> files = {
      {"apps/web/kustomization.yaml",
       absl::StrCat("namePrefix: shop-\nresources: [../base]\nhelmCharts:\n"
                    "- {name: web, repo: '",
                    server.url(),
                    "', version: '~1.0', releaseName: front, valuesInline: {replicas: 2}}\n")},
      {"apps/base/kustomization.yaml",
       "helmCharts:\n- {name: local, releaseName: committed}\n"
       "helmGlobals: {chartHome: vendored}\n"},
      {"apps/base/vendored/local/Chart.yaml", "apiVersion: v2\nname: local\nversion: 0.1.0\n"},
      {"apps/base/vendored/local/values.yaml", "{}\n"},
  };
  std::vector<std::string> notes;
  std::vector<std::string> read;
  RenderInput input{"web", "apps/web", files, &read};
  input.notes = &notes;
  absl::StatusOr<ObjectSet> set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  const std::vector<std::string> out = KeysWithData(*set, "chart");
  EXPECT_THAT(out, ::testing::ElementsAre("/ConfigMap//shop-committed local",
                                          "/ConfigMap//shop-front web"));
  EXPECT_THAT(notes, ::testing::Contains(absl::StrCat(
                         "fetched the chart web 1.0.0 from ", server.url(),
                         "web-1.0.0.tgz (sha256 checked) for apps/web/kustomization.yaml's "
                         "helmCharts")));
  EXPECT_THAT(read, ::testing::UnorderedElementsAre("apps/web", "apps/base"));

  // What cannot be rendered fails, naming the kustomization and why.
  const std::pair<std::string, const char*> kBad[] = {
      {"helmCharts:\n- {name: web, repo: 'oci://registry.example.com/charts'}\n",
       "apps/web/kustomization.yaml: helmCharts web: it is fetched from "
       "oci://registry.example.com/charts/web, which the control plane does not fetch charts "
       "from"},
      {absl::StrCat("helmCharts:\n- {name: web, repo: '", server.url(), "', version: '^9'}\n"),
       "apps/web/kustomization.yaml: helmCharts web: the chart repository"},
      {"helmCharts:\n- {name: web, repo: 'https://elsewhere.example.com'}\n",
       "which the control plane does not fetch charts from"},
      {absl::StrCat("helmCharts:\n- {name: ../web, repo: '", server.url(), "'}\n"),
       "the chart name \"../web\" is not a chart's name"},
      {"helmCharts:\n- {name: web}\nhelmGlobals: {chartHome: ../../..}\n",
       "helmGlobals.chartHome ../../.. is not a folder in the repository"},
  };
  for (const auto& [kustomization, error] : kBad) {
    std::vector<RepoFile> bad = {{"apps/web/kustomization.yaml", kustomization}};
    absl::StatusOr<ObjectSet> refused = renderer.Render({"web", "apps/web", bad});
    EXPECT_THAT(refused.status().message(), HasSubstr(error)) << kustomization;
  }
  // The bundle's --kube-version and --api-versions reach the charts by kustomize's own
  // flags; a chart's own kubeVersion wins, as in kustomize.
  RenderInput capable = input;
  capable.helm_capabilities = {"1.30.2", {"monitoring.coreos.com/v1"}};
  files[1].content =
      "helmCharts:\n- {name: local, releaseName: committed, kubeVersion: '1.25'}\n"
      "helmGlobals: {chartHome: vendored}\n";
  set = renderer.Render(capable);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(
      KeysWithData(*set, "capabilities"),
      ::testing::ElementsAre("/ConfigMap//shop-committed api=monitoring.coreos.com/v1 kube=1.25 ",
                             "/ConfigMap//shop-front api=monitoring.coreos.com/v1 kube=1.30.2 "));
  // kustomize 5.5 gives a chart without apiVersions of its own another chart's list when
  // one sets its own: refused, saying what to do.
  files[1].content =
      "helmCharts:\n- {name: local, releaseName: committed, apiVersions: [own.io/v1]}\n"
      "helmGlobals: {chartHome: vendored}\n";
  EXPECT_THAT(renderer.Render(capable).status().message(),
              HasSubstr("set apiVersions on every helmCharts entry the build reads, or on none"));
  capable.helm_capabilities.api_versions.clear();
  EXPECT_TRUE(renderer.Render(capable).ok()) << "a version alone is never mixed up";
  // Unresolved, it asks for a cluster.
  capable.helm_capabilities = {"cluster", {}};
  EXPECT_THAT(renderer.Render(capable).status().message(),
              HasSubstr("known only where a bundle renders for a cluster"));
  // Argo CD's kustomize.kubeVersion and apiVersions in its overrides replace the bundle's
  // for the charts, as Argo CD's replace the destination cluster's.
  files[1].content =
      "helmCharts:\n- {name: local, releaseName: committed}\nhelmGlobals: {chartHome: vendored}\n";
  files.push_back({"apps/web/.argocd-source.yaml",
                   "kustomize: {kubeVersion: '1.31', apiVersions: [argoproj.io/v1alpha1]}\n"});
  capable.helm_capabilities = {"1.30.2", {"monitoring.coreos.com/v1"}};
  notes.clear();
  set = RenderBundlePath(renderer, capable);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(
      KeysWithData(*set, "capabilities"),
      ::testing::ElementsAre("/ConfigMap//shop-committed api=argoproj.io/v1alpha1 kube=1.31 ",
                             "/ConfigMap//shop-front api=argoproj.io/v1alpha1 kube=1.31 "));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "sets the kustomization's kubeVersion, apiVersions as "
                         "apps/web/.argocd-source.yaml asks (what its helmCharts see of the "
                         "cluster), as Argo CD does")));
  files.back().content = "kustomize: {kubeVersion: 'v1.x'}\n";
  EXPECT_THAT(RenderBundlePath(renderer, capable).status().message(),
              HasSubstr("apps/web/.argocd-source.yaml sets kustomize.kubeVersion \"v1.x\", which "
                        "is not a Kubernetes version helm reads"));
  files.pop_back();

  // Without helm on the control plane, a build with helmCharts fails saying so.
  KustomizeOptions no_helm = options;
  no_helm.helm_binary.clear();
  absl::StatusOr<ObjectSet> without = KustomizeRenderer(no_helm).Render(input);
  EXPECT_EQ(without.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(without.status().message(),
              HasSubstr("a kustomization it builds has helmCharts, which kustomize renders with "
                        "helm, and the control plane has no helm binary (start it with "
                        "--helm=PATH)"));
}

// Flux builds kustomizations without kustomize's load restriction, so Flux repositories
// name files outside a kustomization's folder. By default that fails, and the message
// says what to do; with load_restrictions_none it renders, and what it read is tracked.
TEST(KustomizeRendererTest, FilesOutsideAKustomizationsFolderNeedLoadRestrictionsNone) {
  std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  const std::vector<RepoFile> files = {
      {"apps/web/kustomization.yaml",
       "resources: [../shared/cm.yaml]\n"
       "configMapGenerator: [{name: gen, envs: [../shared/app.env]}]\n"},
      {"apps/shared/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\n"},
      {"apps/shared/app.env", "A=1\n"},
  };
  KustomizeRenderer restricted({kustomize, TempDir("scratch"), absl::Seconds(60), {}});
  auto refused = restricted.Render({"web", "apps/web", files});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("is not in or below"));
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("the control plane does with "
                        "--kustomize-load-restrictor=LoadRestrictionsNone"));

  EngineOptions engines;
  engines.binaries["kustomize"] = kustomize;
  engines.scratch_dir = TempDir("scratch");
  engines.kustomize_load_restrictions_none = true;
  EXPECT_FALSE(engines.Tool("helm").load_restrictions_none) << "kustomize's alone";
  KustomizeRenderer open(engines.Tool("kustomize"));
  std::vector<std::string> read_paths;
  auto rendered = open.Render({"web", "apps/web", files, &read_paths});
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_EQ(rendered->size(), 2u);
  EXPECT_EQ(rendered->objects().count("/ConfigMap//shared"), 1u);
  EXPECT_THAT(read_paths, ::testing::IsSupersetOf({"apps/shared/cm.yaml", "apps/shared/app.env"}));
  // Still confined to the repository by gitfleet's own check.
  auto escape = open.Render(
      {"web", "apps/web", {{"apps/web/kustomization.yaml", "resources: [../../../etc/x.yaml]\n"}}});
  EXPECT_THAT(std::string(escape.status().message()), HasSubstr("leaves the repository"));
}

// What a kustomization's helmCharts read outside its folder (Flux builds without the load
// restriction): a values file, additional ones and a chart home elsewhere are read paths,
// so a commit changing them renders again.
TEST(KustomizeRendererTest, HelmChartsFilesOutsideTheFolderAreReadPaths) {
  std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  const std::string helm = testing::WriteValuesEchoHelm(TempDir("echo-helm"));
  ASSERT_FALSE(helm.empty());
  KustomizeOptions options{kustomize, TempDir("scratch"), absl::Seconds(60), {}};
  options.allow_network = NetworkSandbox().empty();
  options.helm_binary = helm;
  options.load_restrictions_none = true;
  KustomizeRenderer renderer(options);
  const std::vector<RepoFile> files = {
      {"apps/web/kustomization.yaml",
       "helmCharts:\n"
       "- {name: local, releaseName: web, valuesFile: ../shared/values.yaml,\n"
       "   additionalValuesFiles: [../shared/extra.yaml]}\n"
       "helmGlobals: {chartHome: ../../vendor}\n"},
      {"vendor/local/Chart.yaml", "apiVersion: v2\nname: local\nversion: 0.1.0\n"},
      {"vendor/local/values.yaml", "{}\n"},
      {"apps/shared/values.yaml", "replicas: 2\n"},
      {"apps/shared/extra.yaml", "tier: web\n"},
  };
  std::vector<std::string> read;
  absl::StatusOr<ObjectSet> set = renderer.Render({"web", "apps/web", files, &read});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(read, ::testing::IsSupersetOf(
                        {"apps/shared/values.yaml", "apps/shared/extra.yaml", "vendor"}));
}

TEST(KustomizeRendererTest, RefusesReferencesOutsideTheRepository) {
  struct Case {
    std::string kustomization;
    std::string message;
  } cases[] = {
      {"resources: [../../../../etc/app]\n",
       "resources \"../../../../etc/app\" leaves the repository"},
      {"bases: [/etc/app]\n", "bases \"/etc/app\" is an absolute path"},
      {"resources:\n- github.com/example/app//deploy?ref=v1\n", "is remote"},
      {"resources: [https://example.com/app.yaml]\n", "is remote"},
      {"components: [../../../x]\n", "leaves the repository"},
      {"patches: [{path: ../../../p.yaml}]\n", "patches \"../../../p.yaml\" leaves"},
      {"configMapGenerator: [{name: c, files: [key=../../../../etc/passwd]}]\n",
       "configMapGenerator \"../../../../etc/passwd\" leaves"},
  };
  KustomizeRenderer renderer({"/bin/false", TempDir("scratch"), absl::Seconds(5), {}});
  for (const Case& c : cases) {
    auto result = renderer.Render({"web", "a/b", {{"a/b/kustomization.yaml", c.kustomization}}});
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.kustomization;
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(c.message)) << c.kustomization;
    EXPECT_THAT(std::string(result.status().message()), HasSubstr("a/b/kustomization.yaml"));
  }
  // A tool that fails silently still gets a message.
  auto silent = renderer.Render({"web", "a", {{"a/kustomization.yaml", "resources: []\n"}}});
  EXPECT_THAT(std::string(silent.status().message()),
              HasSubstr("kustomize build a failed: exit code 1"));
  // Fields of the wrong type name no paths; kustomize itself reports them. They used to
  // throw out of yaml-cpp (tests/fuzz:kustomization_fuzzer found it).
  EXPECT_TRUE(CheckKustomizeReferences(
                  {{"a/kustomization.yaml", "secretGenerator: [replacement]\nopenapi: x\n"}})
                  .ok());
  EXPECT_TRUE(CheckKustomizeReferences({{"a/kustomization.yaml", "openapi: [x]\n"}}).ok());
  // Climbing within the repository is fine.
  EXPECT_TRUE(CheckKustomizeReferences(
                  {{"a/b/kustomization.yaml", "resources: [../../base, deploy.yaml]\n"}})
                  .ok());
}

TEST(KustomizeRendererTest, MissingToolIsAClearError) {
  KustomizeRenderer renderer({"/nonexistent/kustomize", TempDir("scratch"), absl::Seconds(5), {}});
  auto result = renderer.Render({"web", "a", {{"a/kustomization.yaml", "resources: []\n"}}});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("kustomize a: cannot execute /nonexistent/kustomize"));
}

TEST(HelmRendererTest, WithoutHelmTheBundleFailsSayingSo) {
  if (!FindHelm().empty()) GTEST_SKIP() << "helm is installed; see RendersAChart";
  HelmRenderer renderer({"", TempDir("scratch"), absl::Seconds(5), {}});
  auto result = renderer.Render({"web", "charts/web", {{"charts/web/Chart.yaml", "name: web\n"}}});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("engine helm (charts/web): the control plane has no helm binary"));
}

TEST(HelmRendererTest, RendersAChart) {
  if (FindHelm().empty()) {
    GTEST_SKIP() << "helm is not installed (not packaged for Debian 12); install it as "
                    "/usr/local/bin/helm to run this test";
  }
  HelmRenderer renderer({"", TempDir("scratch"), absl::Seconds(60), {}});
  auto result =
      renderer.Render({"web",
                       "charts/web",
                       {{"charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"},
                        {"charts/web/values.yaml", "port: \"8080\"\n"},
                        {"charts/web/templates/cm.yaml",
                         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\n"
                         "data: {port: {{ .Values.port | quote }}}\n"}}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->objects().count("/ConfigMap//web"), 1u);
}

// A chart that writes `namespace: {{ .Release.Namespace }}` (most do) is rendered with the
// bundle's namespace as the release's, as Argo CD and Flux render it; helm's own default
// ("default") would put those objects outside the bundle's namespace. Helm is not packaged
// here, so a stand-in prints what helm prints for such a template.
TEST(HelmRendererTest, RendersTheReleaseInTheBundlesNamespace) {
  const std::string helm = testing::WriteFakeHelm(TempDir("fake-helm"));
  ASSERT_FALSE(helm.empty());
  HelmOptions options{helm, TempDir("scratch"), absl::Seconds(30), {}};
  options.allow_network = true;  // a stand-in, not a chart's hooks
  HelmRenderer renderer(options);
  const std::vector<RepoFile> chart = {
      {"charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"}};
  RenderInput input{"web", "charts/web", chart};
  input.target_namespace = "shop";
  auto placed = renderer.Render(input);
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->objects().count("/ConfigMap/shop/web"), 1u);
  auto unplaced = renderer.Render({"web", "charts/web", chart});
  ASSERT_TRUE(unplaced.ok()) << unplaced.status();
  EXPECT_EQ(unplaced->objects().count("/ConfigMap/default/web"), 1u) << "helm's own default";
  // Argo CD's helm.namespace renders the release there instead; objects that name no
  // namespace still go to the bundle's (placed after the render).
  input.helm_release_namespace = "monitoring";
  auto argo = renderer.Render(input);
  ASSERT_TRUE(argo.ok()) << argo.status();
  EXPECT_EQ(argo->objects().count("/ConfigMap/monitoring/web"), 1u);
}

// A helm older than 3.16 has no --skip-schema-validation: the render fails with helm's
// words and what to do.
TEST(HelmRendererTest, SkipSchemaValidationOnAnOlderHelmSaysWhatItNeeds) {
  const std::string dir = TempDir("old-helm");
  const std::string helm = dir + "/helm";
  {
    std::ofstream out(helm);
    out << "#!/bin/sh\n[ \"$1\" = version ] && { echo v3.14.0; exit 0; }\n"
           "for a in \"$@\"; do [ \"$a\" = --skip-schema-validation ] && "
           "{ echo 'Error: unknown flag: --skip-schema-validation' >&2; exit 1; }; done\n"
           "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: web\\n'\n";
  }
  ASSERT_EQ(chmod(helm.c_str(), 0755), 0);
  HelmOptions options{helm, TempDir("scratch"), absl::Seconds(30), {}};
  options.allow_network = true;
  HelmRenderer renderer(options);
  const std::vector<RepoFile> chart = {
      {"charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"}};
  RenderInput input{"web", "charts/web", chart};
  ASSERT_TRUE(renderer.Render(input).ok());
  input.helm_skips.schema_validation = true;
  EXPECT_THAT(renderer.Render(input).status().message(),
              HasSubstr("unknown flag: --skip-schema-validation (Argo CD's "
                        "helm.skipSchemaValidation needs helm 3.16 or later on the control "
                        "plane)"));
}

// A fresh age identity (age-keygen), and SOPS files encrypted for it by
// testdata/sops/encrypt.py. ok() is false when the age package is missing.
class SopsTestKey {
 public:
  SopsTestKey() : dir_(TempDir("sops-key")) {
    if (access("/usr/bin/age-keygen", X_OK) != 0) return;
    absl::StatusOr<SubprocessResult> made =
        RunSubprocess({"/usr/bin/age-keygen", "-o", dir_ + "/key.txt"}, {});
    absl::StatusOr<std::string> text = PosixFileSystem().ReadFile(dir_ + "/key.txt");
    if (!made.ok() || !text.ok()) return;
    absl::StatusOr<AgeIdentities> keys = AgeIdentities::Parse(*text, "key.txt");
    if (keys.ok()) keys_ = *std::move(keys);
  }
  bool ok() const { return keys_.size() > 0; }
  const AgeIdentities& keys() const { return keys_; }
  // `plain` encrypted as a file named `name` (`flags`: encrypt.py's, such as --dotenv).
  std::string Encrypt(const std::string& plain, const std::string& name,
                      const std::vector<std::string>& flags = {}) const {
    EXPECT_TRUE(PosixFileSystem().WriteFileAtomically(dir_ + "/plain", plain).ok());
    std::vector<std::string> argv = {"/usr/bin/python3",
                                     "controlplane/render/testdata/sops/encrypt.py",
                                     keys_.Recipients()[0], dir_ + "/plain", dir_ + "/" + name};
    argv.insert(argv.end(), flags.begin(), flags.end());
    absl::StatusOr<SubprocessResult> run = RunSubprocess(argv, {"", {"PATH=/usr/bin:/bin"}});
    EXPECT_TRUE(run.ok() && run->exit_code == 0) << (run.ok() ? run->stderr_text : "");
    absl::StatusOr<std::string> encrypted = PosixFileSystem().ReadFile(dir_ + "/" + name);
    return encrypted.ok() ? *std::move(encrypted) : "";
  }

 private:
  std::string dir_;
  AgeIdentities keys_;
};

// Flux's secretGenerator layout: a kustomization builds a Secret from a SOPS-encrypted .env
// file, which Flux decrypts before the build; so does a --decrypt=sops bundle (its files are
// decrypted before the engine reads them).
TEST(KustomizeRendererTest, ASecretGeneratorReadsItsSopsEncryptedEnvFileDecrypted) {
  const std::string kustomize = FindKustomize();
  if (kustomize.empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  const SopsTestKey key;
  if (!key.ok()) GTEST_SKIP() << "the age package is missing (tools/setup installs it)";
  std::vector<RepoFile> files = {
      {"apps/db/kustomization.yaml",
       "secretGenerator:\n- name: db\n  envs: [db.env]\n"
       "generatorOptions: {disableNameSuffixHash: true}\n"},
      {"apps/db/db.env", key.Encrypt("PASSWORD=p=ss\n", "db.env", {"--dotenv"})}};
  std::vector<std::string> notes;
  ASSERT_TRUE(DecryptSopsFiles("apps/db", key.keys(), &files, &notes).ok());
  EXPECT_THAT(notes, ::testing::ElementsAre("decrypted with SOPS: apps/db/db.env"));
  KustomizeRenderer renderer({kustomize, TempDir("scratch"), absl::Seconds(60), {}});
  absl::StatusOr<ObjectSet> set = RenderBundlePath(renderer, {"db", "apps/db", files});
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->objects().count("/Secret//db"), 1u);
  YAML::Node secret = YAML::Load(set->objects().at("/Secret//db")->yaml());
  EXPECT_EQ(secret["data"]["PASSWORD"].as<std::string>(), "cD1zcw==") << "base64 of p=ss";
}

// A helm engine whose helm is a stand-in that prints the release and each values file it
// was given, in order (tests/util/fake_tools.h): what helm would be told. Null if it cannot
// be written.
std::unique_ptr<HelmRenderer> ValuesEchoHelmRenderer(
    std::shared_ptr<ChartFetcher> charts = nullptr) {
  const std::string helm = testing::WriteValuesEchoHelm(TempDir("echo-helm"));
  if (helm.empty()) return nullptr;
  HelmOptions options{helm, TempDir("scratch"), absl::Seconds(30), {}};
  options.allow_network = true;  // a stand-in, not a chart's hooks
  return std::make_unique<HelmRenderer>(options, std::nullopt, std::move(charts));
}

// Fleet's overrideTargets choose the clusters a folder is deployed to, in place of its
// GitRepo's targets: among the bundle's clusters (its --selector, which a repository never
// widens), those none selects get nothing (NotDeployedHere: they keep what they run), for
// any engine. fleet-examples' form (`overrideTargets: true` and the list under `targets:`)
// reads the same; what cannot be read fails by name. A bundle rendered before goes to
// every cluster, as it did, saying why.
// A chart repository's URL as Fleet joins it with index.yaml: repeated slashes in its path
// are one (fleet-examples' helm-target-customizations writes `.../manifests///`).
TEST(FleetChartRepositoryTest, RepeatedSlashesInTheRepositorysPathAreOne) {
  for (const auto& [repo, read] : std::vector<std::pair<std::string, std::string>>{
           {"https://oauth2-proxy.github.io/manifests///",
            "https://oauth2-proxy.github.io/manifests/"},
           {"https://charts.example.com//a//b", "https://charts.example.com/a/b"},
           {"https://charts.example.com", "https://charts.example.com"},
           {"https://charts.example.com/x?token=a//b",
            "https://charts.example.com/x?token=a//b"}}) {
    absl::StatusOr<FleetYamlNamespace> fleet = ReadFleetYamlNamespace(
        "apps/web",
        {{"apps/web/fleet.yaml", absl::StrCat("helm: {repo: '", repo, "', chart: web}\n")}});
    ASSERT_TRUE(fleet.ok()) << fleet.status();
    EXPECT_EQ(fleet->remote_chart.repo, read) << repo;
  }
}

TEST(FleetOverrideTargetsTest, ChooseTheClustersTheFolderIsDeployedTo) {
  const std::string cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n";
  const std::string listed =
      "overrideTargets:\n- name: test\n  clusterSelector: {matchLabels: {env: test}}\n"
      "- clusterName: edge-1\n";
  const Values test = {{ClusterNameKey(), "t-1"}, {ClusterLabelKey("env"), "test"}};
  const Values edge = {{ClusterNameKey(), "edge-1"}};
  const Values prod = {{ClusterNameKey(), "p-1"}, {ClusterLabelKey("env"), "prod"}};
  PlainRenderer plain;
  auto render = [&](Renderer& renderer, const std::vector<RepoFile>& files, const Values& cluster,
                    std::vector<std::string>* notes = nullptr, ReadValues* read = nullptr,
                    bool reads = true) {
    RenderInput input{"web", "apps/web", files, nullptr, &cluster, read};
    input.notes = notes;
    input.reads_fleet_override_targets = reads;
    return RenderBundlePath(renderer, input);
  };
  const std::vector<RepoFile> files = {{"apps/web/fleet.yaml", listed}, {"apps/web/cm.yaml", cm}};
  EXPECT_TRUE(RendersPerFleetTarget("plain", "apps/web", files));
  EXPECT_FALSE(RendersPerFleetTarget("plain", "apps/web", files, true, true,
                                     /*override_targets=*/false));
  std::vector<std::string> notes;
  ReadValues read;
  absl::StatusOr<ObjectSet> set = render(plain, files, test, &notes, &read);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 1u);
  EXPECT_EQ(read, (ReadValues{{ClusterLabelKey("env"), "test"}})) << "the first that selects it";
  EXPECT_THAT(notes, ::testing::Contains(
                         HasSubstr("only the clusters apps/web/fleet.yaml's overrideTargets test, "
                                   "overrideTargets[1] select get it")));
  EXPECT_THAT(notes, Not(::testing::Contains(HasSubstr("sets overrideTargets"))));
  EXPECT_TRUE(render(plain, files, edge).ok()) << "by its name";
  absl::StatusOr<ObjectSet> left_out = render(plain, files, prod);
  EXPECT_TRUE(IsNotDeployed(left_out.status())) << left_out.status();
  EXPECT_THAT(std::string(left_out.status().message()),
              HasSubstr("apps/web/fleet.yaml: its overrideTargets test, overrideTargets[1] "
                        "select other clusters than this one"));

  // A chart alike.
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer();
  ASSERT_NE(echo, nullptr);
  const std::vector<RepoFile> chart = {
      {"apps/web/fleet.yaml", listed},
      {"apps/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"}};
  EXPECT_TRUE(render(*echo, chart, test).ok());
  EXPECT_TRUE(IsNotDeployed(render(*echo, chart, prod).status()));

  // fleet-examples' multi-cluster/override-targets, as it is written; `false` overrides
  // nothing.
  const std::vector<RepoFile> example = {
      {"apps/web/fleet.yaml",
       "overrideTargets: true\ntargets:\n  - name: test\n    clusterSelector:\n"
       "      matchLabels:\n        env: test\n"},
      {"apps/web/cm.yaml", cm}};
  notes.clear();
  EXPECT_TRUE(render(plain, example, test, &notes).ok());
  EXPECT_THAT(notes, Not(::testing::Contains(HasSubstr("sets targets")))) << "read as the list";
  notes.clear();
  EXPECT_TRUE(render(plain,
                     {{"apps/web/fleet.yaml", "targets:\n- clusterSelector: {}\n"},
                      {"apps/web/cm.yaml", cm}},
                     prod, &notes)
                  .ok());
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("sets targets, which gitfleet does not read")))
      << "Fleet's fleet.yaml targets, beside targetCustomizations: named, not read";
  notes.clear();
  EXPECT_TRUE(render(plain,
                     {{"apps/web/fleet.yaml", "imageScans: []\ndefaultnamespace: shop\n"},
                      {"apps/web/cm.yaml", cm}},
                     prod, &notes)
                  .ok());
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "sets imageScans, defaultnamespace, which gitfleet does not read")))
      << "what gitfleet does not know is named too";
  EXPECT_TRUE(IsNotDeployed(render(plain, example, prod).status()));
  EXPECT_TRUE(
      render(plain, {{"apps/web/fleet.yaml", "overrideTargets: false\n"}, {"apps/web/cm.yaml", cm}},
             prod)
          .ok());

  for (const auto& [fleet_yaml, error] : std::vector<std::pair<std::string, std::string>>{
           {"overrideTargets: {env: test}\n", "overrideTargets is not a list of targets"},
           {"overrideTargets: []\n", "overrideTargets lists no targets"},
           {"overrideTargets: true\n", "overrideTargets is true, and it lists no targets"},
           {"overrideTargets:\n- clusterSelector: {matchExpressions: [{key: env, operator: "
            "Near}]}\n",
            "overrideTargets overrideTargets[0]: its clusterSelector"},
           {"overrideTargets:\n- clusterGroup: edge\n",
            "overrideTargets overrideTargets[0] selects by Fleet's clusterGroup edge"}}) {
    absl::StatusOr<ObjectSet> refused =
        render(plain, {{"apps/web/fleet.yaml", fleet_yaml}, {"apps/web/cm.yaml", cm}}, test);
    EXPECT_FALSE(refused.ok()) << fleet_yaml;
    EXPECT_FALSE(IsNotDeployed(refused.status())) << fleet_yaml;
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(error)) << fleet_yaml;
  }

  // A bundle rendered before: every cluster, as it did.
  notes.clear();
  EXPECT_TRUE(render(plain, files, prod, &notes, nullptr, /*reads=*/false).ok());
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "overrideTargets choose the clusters Fleet deploys it to; this bundle "
                         "was rendered before gitfleet read them")));
}

// Rancher Fleet gives a chart in a bundle's folder fleet.yaml's helm.values with its
// helm.valuesFiles merged over them, under its helm.releaseName; the bundle's own values
// files come after them. Helm is not packaged here: a stand-in shows what it would be told.
TEST(HelmRendererTest, FleetYamlsHelmValuesAndReleaseNameAreTheChartsAsInFleet) {
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer();
  ASSERT_NE(echo, nullptr);
  HelmRenderer& renderer = *echo;
  std::vector<RepoFile> chart = {
      {"charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"},
      {"charts/web/fleet.yaml",
       "helm:\n  releaseName: shop-web\n  valuesFiles: [./values/prod.yaml]\n"
       "  values: {replicas: 3}\n"},
      {"charts/web/values/prod.yaml", "tier: prod\nreplicas: 5\n"},
      {"charts/web/mine.yaml", "mine: 1\n"},
  };
  auto values_of = [](const absl::StatusOr<ObjectSet>& set, const std::string& key) {
    if (!set.ok() || set->objects().count(key) == 0) return std::string("(none)");
    YAML::Node node = YAML::Load(set->objects().at(key)->yaml());
    return node["data"]["values"].as<std::string>();
  };
  std::vector<std::string> notes;
  RenderInput input{"web", "charts/web", chart};
  input.helm_values_files = {"mine.yaml"};
  input.notes = &notes;
  auto fleet = RenderBundlePath(renderer, input);
  ASSERT_TRUE(fleet.ok()) << fleet.status();
  // Each values file merged over helm.values, as `fleet apply` merges them: one file.
  EXPECT_EQ(values_of(fleet, "/ConfigMap//shop-web"),
            ".gitfleet-fleet-yaml-values.yaml=replicas: 5 tier: prod |mine.yaml=mine: 1 |");
  EXPECT_THAT(notes, ::testing::Contains(
                         "the chart takes helm.valuesFiles values/prod.yaml, helm.values, "
                         "helm.releaseName shop-web from charts/web/fleet.yaml, as Fleet gives "
                         "them (each values file merged over helm.values, ${ } templates filled "
                         "in per cluster, the bundle's --values-file and --values after them)"));
  EXPECT_THAT(notes,
              ::testing::Not(::testing::Contains(HasSubstr("which gitfleet does not read"))));

  // A bundle rendered before gitfleet read them renders as it did, and says so.
  RenderInput before = input;
  before.reads_fleet_helm = false;
  notes.clear();
  auto kept = RenderBundlePath(renderer, before);
  EXPECT_EQ(values_of(kept, "/ConfigMap//web"), "mine.yaml=mine: 1 |");
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "charts/web/fleet.yaml sets helm.valuesFiles values/prod.yaml, "
                         "helm.values, helm.releaseName shop-web; this bundle was rendered "
                         "before gitfleet read them, and renders as it did")));

  // Fleet's templating is filled in for the cluster, in values and values files alike, and
  // every label looked up counts; without preprocessing the text is the value.
  chart[1].content =
      "helm:\n  values: {env: '${ .ClusterLabels.env }'}\n  valuesFiles: [values/prod.yaml]\n";
  chart[2].content = "host: ${ .ClusterName }.example.com\n";
  const Values cluster = {{ClusterNameKey(), "eu-1"}, {ClusterLabelKey("env"), "prod"}};
  ReadValues read;
  RenderInput templated{"web", "charts/web", chart, nullptr, &cluster, &read};
  auto filled = RenderBundlePath(renderer, templated);
  ASSERT_TRUE(filled.ok()) << filled.status();
  EXPECT_EQ(values_of(filled, "/ConfigMap//web"),
            ".gitfleet-fleet-yaml-values.yaml=env: prod host: eu-1.example.com |");
  EXPECT_EQ(read, (ReadValues{{ClusterNameKey(), "eu-1"}, {ClusterLabelKey("env"), "prod"}}))
      << "nor does helm get a cluster's name and labels as values of its own";
  const Values unlabelled = {{ClusterNameKey(), "bare"}};
  templated.values = &unlabelled;
  auto missing = RenderBundlePath(renderer, templated);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("charts/web/fleet.yaml: helm values: env: ${ .ClusterLabels.env }: the "
                        "cluster has no label env"));
  chart[1].content =
      "helm:\n  disablePreProcess: true\n  values: {env: '${ .ClusterLabels.env }'}\n";
  auto literal = RenderBundlePath(renderer, {"web", "charts/web", chart});
  ASSERT_TRUE(literal.ok()) << literal.status();
  EXPECT_EQ(values_of(literal, "/ConfigMap//web"),
            ".gitfleet-fleet-yaml-values.yaml=env: ${ .ClusterLabels.env } |");

  const std::pair<const char*, const char*> kBad[] = {
      {"helm: {valuesFiles: [../secrets.yaml]}\n",
       "helm.valuesFiles: helm values file \"../secrets.yaml\" must be a relative path inside "
       "the chart"},
      {"helm: {valuesFiles: values.yaml}\n", "helm.valuesFiles is not a list"},
      {"helm: {valuesFiles: [values/dev.yaml]}\n",
       "helm.valuesFiles names values/dev.yaml, which is not in charts/web"},
      {"helm: {values: {a: '${ toYaml .ClusterLabels }'}}\n",
       "the function \"toYaml\", which gitfleet does not evaluate"},
      {"helm: {values: [a]}\n", "helm.values is not a mapping"},
      {"helm: {releaseName: Shop_Web}\n",
       "helm.releaseName \"Shop_Web\" is not a release name helm takes"},
  };
  for (const auto& [text, error] : kBad) {
    chart[1].content = text;
    auto bad = RenderBundlePath(renderer, {"web", "charts/web", chart});
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(error)) << text;
  }
  // Other engines do not take helm options: named, never failing them.
  PlainRenderer plain;
  std::vector<RepoFile> folder = {
      {"apps/web/cm.yaml",
       "apiVersion: v1\nkind: ConfigMap\n"
       "metadata: {name: a}\n"},
      {"apps/web/fleet.yaml", "helm: {releaseName: Shop_Web}\nserviceAccount: deployer\n"}};
  notes.clear();
  RenderInput plain_input{"web", "apps/web", folder};
  plain_input.notes = &notes;
  ASSERT_TRUE(RenderBundlePath(plain, plain_input).ok());
  EXPECT_THAT(notes, ::testing::Contains(
                         ::testing::AllOf(HasSubstr("sets helm, which gitfleet does not read"),
                                          HasSubstr("--service-account"))));
}

// The notes of `files` at `path` rendered as a plain bundle rendered before gitfleet read
// what `reads` says (a record without it; by default reads_fleet_outside_charts).
std::vector<std::string> NotesOfABundleFromBefore(
    const std::string& path, const std::vector<RepoFile>& files,
    bool RenderInput::*reads = &RenderInput::reads_fleet_outside_charts) {
  PlainRenderer plain;
  std::vector<std::string> notes;
  RenderInput before{"web", path, files};
  before.*reads = false;
  before.notes = &notes;
  (void)RenderBundlePath(plain, before);
  return notes;
}

// A chart in another Git repository, as Fleet names one (go-getter's
// `helm.chart: git::URL//FOLDER?ref=REF`): the control plane fetches that repository at the
// ref as it fetches kustomize's remote bases (from the prefixes --kustomize-remote-bases
// trusts), and renders the folder with the bundle's values. A ref that moves renders again
// at the resync; what cannot be fetched so fails naming it. A bundle rendered before keeps
// its folder, saying why.
TEST(HelmRendererTest, AChartInAnotherGitRepositoryIsFetchedByTheControlPlane) {
  testing::GitFixture charts(TempDir("git-charts"));
  charts.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: git-web\nversion: 1.0.0\n");
  charts.Write("charts/web/values.yaml", "replicas: 1\n");
  charts.Write("charts/none/README.md", "no chart\n");
  const std::string tagged = charts.Commit("v1");
  charts.Git("tag v1.0.0");
  charts.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: git-web-next\nversion: 1.1.0\n");
  charts.Commit("next, on main");
  const std::string helm = testing::WriteValuesEchoHelm(TempDir("echo-helm"));
  ASSERT_FALSE(helm.empty());
  std::unique_ptr<GitRepositories> repos =
      NewLibgit2Repositories(TempDir("cache"), {}, {"", /*allow_local=*/true});
  auto renderer_trusting = [&](std::vector<std::string> prefixes) {
    HelmOptions options{helm, TempDir("scratch"), absl::Seconds(30), {}};
    options.allow_network = true;  // a stand-in, not a chart's hooks
    ToolOptions kustomize = options;
    kustomize.binary.clear();
    kustomize.remote_bases =
        std::make_shared<RemoteBaseFetcher>(repos.get(), std::move(prefixes), absl::ZeroDuration());
    return std::make_unique<HelmRenderer>(options, kustomize);
  };
  std::unique_ptr<HelmRenderer> renderer = renderer_trusting({charts.url()});
  auto fleet_yaml = [&](const std::string& chart) {
    return std::vector<RepoFile>{
        {"apps/web/fleet.yaml", absl::StrCat("helm:\n  chart: '", chart,
                                             "'\n  releaseName: web\n  values: {tier: prod}\n")}};
  };
  const std::string at_tag = absl::StrCat("git::", charts.url(), "//charts/web?ref=v1.0.0");
  std::vector<RepoFile> files = fleet_yaml(at_tag);
  EXPECT_EQ(DetectEngine("apps/web", files), "helm");
  EXPECT_EQ(DetectEngine("apps/web", files, true, true, /*fleet_outside_charts=*/false), "plain")
      << "a bundle rendered before keeps its engine";
  std::vector<std::string> notes;
  bool moves = false;
  RenderInput input{"web", "apps/web", files};
  input.notes = &notes;
  input.read_remote = &moves;
  absl::StatusOr<ObjectSet> set = RenderBundlePath(*renderer, input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//web git-web"));
  EXPECT_THAT(
      KeysWithData(*set, "values"),
      ::testing::ElementsAre("/ConfigMap//web .gitfleet-fleet-yaml-values.yaml=tier: prod |"));
  EXPECT_THAT(notes, ::testing::Contains(
                         absl::StrCat("fetched the chart ", at_tag, " at ", tagged.substr(0, 12))));
  EXPECT_TRUE(moves) << "a tag can move: the resync renders it again";
  // On main; at a commit, which never moves.
  set = RenderBundlePath(
      *renderer, {"web", "apps/web",
                  fleet_yaml(absl::StrCat("git::", charts.url(), "//charts/web?ref=main"))});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//web git-web-next"));
  moves = false;
  RenderInput pinned{"web", "apps/web",
                     fleet_yaml(absl::StrCat("git::", charts.url(), "//charts/web?ref=", tagged))};
  pinned.read_remote = &moves;
  set = RenderBundlePath(*renderer, pinned);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//web git-web"));
  EXPECT_FALSE(moves);

  // What cannot be fetched so fails naming it.
  for (const auto& [chart, error] : std::vector<std::pair<std::string, std::string>>{
           {absl::StrCat("git::", charts.url(), "//charts/none?ref=v1.0.0"),
            "holds no Chart.yaml at charts/none"},
           {"git::https://github.com/elsewhere/charts//web?ref=v1", "--kustomize-remote-bases"},
           {"s3::https://s3.amazonaws.com/bucket/web.tgz",
            "is fetched by go-getter from where gitfleet does not fetch"}}) {
    std::vector<RepoFile> bad = fleet_yaml(chart);
    EXPECT_EQ(DetectEngine("apps/web", bad), "helm") << chart;
    absl::StatusOr<ObjectSet> refused = RenderBundlePath(*renderer, {"web", "apps/web", bad});
    EXPECT_FALSE(refused.ok()) << chart;
    EXPECT_THAT(refused.status().message(), HasSubstr(error)) << chart;
  }
  // A bundle rendered before: its folder as it did (nothing here), noted.
  EXPECT_THAT(NotesOfABundleFromBefore("apps/web", files),
              ::testing::Contains(
                  HasSubstr("this bundle was rendered before gitfleet fetched such charts")));
}

// Fleet's other forms of a Git source for a chart, as its bundle reader resolves them: each
// reads as the `git::` form it stands for, which names the repository, its folder and ref
// as kustomize's remote bases are named; a folder, an archive's URL or an OCI reference is
// none, and a shorthand without ORG/REPO is refused by name.
TEST(FleetGitChartSourceTest, ReadsFleetsFormsOfAGitSource) {
  struct Case {
    std::string chart, source, repo, path, ref;
  };
  for (const Case& c : std::vector<Case>{
           {"github.com/org/charts//web?ref=v1",
            "git::https://github.com/org/charts.git//web?ref=v1",
            "https://github.com/org/charts.git", "web", "v1"},
           {"github.com/org/charts/charts/web?ref=v1",
            "git::https://github.com/org/charts.git//charts/web?ref=v1",
            "https://github.com/org/charts.git", "charts/web", "v1"},
           {"github.com/org/charts.git/deploy//web",
            "git::https://github.com/org/charts.git//deploy/web",
            "https://github.com/org/charts.git", "deploy/web", ""},
           {"gitlab.com/group/charts?ref=main", "git::https://gitlab.com/group/charts.git?ref=main",
            "https://gitlab.com/group/charts.git", "", "main"},
           {"bitbucket.org/team/charts//web", "git::https://bitbucket.org/team/charts.git//web",
            "https://bitbucket.org/team/charts.git", "web", ""},
           {"git@github.com:org/charts//web?ref=v1",
            "git::ssh://git@github.com/org/charts//web?ref=v1", "ssh://git@github.com/org/charts",
            "web", "v1"},
           {"deploy@git.example.com:/srv/charts.git//web",
            "git::ssh://deploy@git.example.com/srv/charts.git//web",
            "ssh://deploy@git.example.com/srv/charts.git", "web", ""},
           {"ssh::git@git.example.com:org/charts//web",
            "git::ssh://git@git.example.com/org/charts//web",
            "ssh://git@git.example.com/org/charts", "web", ""},
           {"ssh://git@git.example.com:2222/org/charts.git//web?ref=v2",
            "git::ssh://git@git.example.com:2222/org/charts.git//web?ref=v2",
            "ssh://git@git.example.com:2222/org/charts.git", "web", "v2"},
           {"git://127.0.0.1:9418/charts//web", "git::git://127.0.0.1:9418/charts//web",
            "git://127.0.0.1:9418/charts", "web", ""},
           {"git::https://git.example.com/org/charts//web?ref=v1",
            "git::https://git.example.com/org/charts//web?ref=v1",
            "https://git.example.com/org/charts", "web", "v1"},
           {"git::deploy@git.example.com:org/charts//web",
            "git::ssh://deploy@git.example.com/org/charts//web",
            "ssh://deploy@git.example.com/org/charts", "web", ""},
       }) {
    absl::StatusOr<std::optional<std::string>> source = FleetGitChartSource(c.chart);
    ASSERT_TRUE(source.ok()) << c.chart << ": " << source.status();
    ASSERT_TRUE(source->has_value()) << c.chart;
    EXPECT_EQ(**source, c.source) << c.chart;
    absl::StatusOr<std::optional<RemoteBase>> base =
        ParseRemoteBase(absl::string_view(**source).substr(5));
    ASSERT_TRUE(base.ok() && base->has_value()) << c.chart << ": " << base.status();
    EXPECT_EQ((**base).repo, c.repo) << c.chart;
    EXPECT_EQ((**base).path, c.path) << c.chart;
    EXPECT_EQ((**base).ref, c.ref) << c.chart;
  }
  for (const char* none : {"charts/web", "./chart", "../../charts/web", "web", "",
                           "https://charts.example.com/web-1.0.0.tgz", "oci://ghcr.io/org/web",
                           "github.com.example.org/org/charts", "team@2024", "charts/a@b:c"}) {
    absl::StatusOr<std::optional<std::string>> source = FleetGitChartSource(none);
    ASSERT_TRUE(source.ok()) << none << ": " << source.status();
    EXPECT_FALSE(source->has_value()) << none << ": " << **source;
  }
  for (const char* bad : {"github.com/org", "github.com/org/", "gitlab.com/"}) {
    absl::StatusOr<std::optional<std::string>> source = FleetGitChartSource(bad);
    EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(source.status().message(), HasSubstr("names no repository")) << bad;
  }
}

// A chart fleet.yaml names in another Git repository in one of Fleet's forms other than
// `git::` (a git:// URL here, served by git daemon; GitHub's shorthand and scp's form,
// which reach no loopback server, are shown read as Git sources by the prefix refused) is
// fetched and rendered as a `git::` one is, in fleet.yaml and in a target. Before, each read
// as a folder inside the bundle's (or as nothing); a bundle rendered before still does,
// saying why.
TEST(HelmRendererTest, AChartInFleetsOtherFormsOfAGitSourceIsFetched) {
  const std::string root = TempDir("served-charts");
  testing::GitFixture charts(root + "/charts");
  charts.Write("charts/web/Chart.yaml", "apiVersion: v2\nname: daemon-web\nversion: 1.0.0\n");
  charts.Write("charts/canary/Chart.yaml", "apiVersion: v2\nname: daemon-canary\nversion: 1.0.0\n");
  charts.Commit("charts");
  charts.Git("tag v1.0.0");
  const int port = ::gitfleet::testing::FreePort();
  ::gitfleet::testing::Process daemon(
      "/usr/bin/git",
      {"daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", absl::StrCat("--port=", port),
       "--base-path=" + root, root},
      root + "/../git-daemon.log");
  const std::string served = absl::StrCat("git://127.0.0.1:", port, "/charts");
  const std::string helm = testing::WriteValuesEchoHelm(TempDir("echo-helm"));
  ASSERT_FALSE(helm.empty());
  std::unique_ptr<GitRepositories> repos = NewLibgit2Repositories(TempDir("cache"), {}, {});
  HelmOptions options{helm, TempDir("scratch"), absl::Seconds(30), {}};
  options.allow_network = true;  // a stand-in, not a chart's hooks
  ToolOptions kustomize = options;
  kustomize.binary.clear();
  kustomize.remote_bases = std::make_shared<RemoteBaseFetcher>(
      repos.get(), std::vector<std::string>{served}, absl::ZeroDuration());
  HelmRenderer renderer(options, kustomize);
  auto fleet_yaml = [](const std::string& chart, const std::string& targets = "") {
    return std::vector<RepoFile>{
        {"apps/web/fleet.yaml",
         absl::StrCat("helm:\n  chart: '", chart, "'\n  releaseName: web\n  values: {tier: prod}\n",
                      targets)}};
  };
  std::vector<RepoFile> files = fleet_yaml(absl::StrCat(served, "//charts/web?ref=v1.0.0"));
  EXPECT_EQ(DetectEngine("apps/web", files), "helm");
  EXPECT_EQ(DetectEngine("apps/web", files, true, true, true, /*fleet_getter_charts=*/false),
            "plain")
      << "a bundle rendered before keeps its engine";
  absl::StatusOr<ObjectSet> set;
  ASSERT_TRUE(::gitfleet::testing::Eventually([&] {
    set = RenderBundlePath(renderer, {"web", "apps/web", files});
    return set.ok();
  })) << set.status()
      << "\n"
      << daemon.Log();
  EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//web daemon-web"));
  EXPECT_THAT(
      KeysWithData(*set, "values"),
      ::testing::ElementsAre("/ConfigMap//web .gitfleet-fleet-yaml-values.yaml=tier: prod |"));
  // A target naming another chart so gives its clusters that one.
  const std::string canary = absl::StrCat(
      "targetCustomizations:\n- name: canary\n  clusterSelector: {matchLabels: {ring: canary}}\n"
      "  helm: {chart: '",
      served, "//charts/canary?ref=v1.0.0'}\n");
  const Values cluster = {{ClusterNameKey(), "c-1"}, {ClusterLabelKey("ring"), "canary"}};
  set = RenderBundlePath(renderer, {"web", "apps/web", fleet_yaml(served + "//charts/web", canary),
                                    nullptr, &cluster, nullptr});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//web daemon-canary"));

  // GitHub's shorthand and scp's form are Git sources: refused here as repositories the
  // control plane was not told to trust, by the URL each stands for.
  for (const auto& [chart, error] : std::vector<std::pair<std::string, std::string>>{
           {"github.com/elsewhere/charts//web?ref=v1", "https://github.com/elsewhere/charts.git"},
           {"git@github.com:elsewhere/charts//web", "ssh://git@github.com/elsewhere/charts"},
           {"github.com/elsewhere", "names no repository (github.com/ORG/REPO"}}) {
    std::vector<RepoFile> bad = fleet_yaml(chart);
    EXPECT_EQ(DetectEngine("apps/web", bad), "helm") << chart;
    absl::StatusOr<ObjectSet> refused = RenderBundlePath(renderer, {"web", "apps/web", bad});
    EXPECT_FALSE(refused.ok()) << chart;
    EXPECT_THAT(refused.status().message(), HasSubstr(error)) << chart;
  }
  // A bundle rendered before: the chart reads as it did, noted.
  EXPECT_THAT(NotesOfABundleFromBefore("apps/web", fleet_yaml("github.com/elsewhere/charts//web"),
                                       &RenderInput::reads_fleet_getter_charts),
              ::testing::Contains(HasSubstr("rendered before gitfleet read that form of a chart")));
}

// A chart archive in the repository that fleet.yaml's helm.chart names (`./web-1.0.0.tgz`,
// which go-getter unpacks for Fleet), in the bundle's folder or elsewhere in the
// repository: unpacked and rendered with the folder's values; one elsewhere counts among
// what the render read. What cannot be unpacked fails naming it; a bundle rendered before
// renders as it did, saying why.
TEST(HelmRendererTest, AChartArchiveInTheRepositoryIsUnpackedAndRendered) {
  testing::ChartRepositoryServer packer(TempDir("packed"));
  ASSERT_TRUE(AddCharts(packer, {{"web", "1.0.0"}, {"next", "2.0.0"}}).ok());
  ASSERT_TRUE(packer.AddChart("nochart", "1.0.0", {{"README.md", "no chart\n"}}).ok());
  auto archive = [&](const std::string& name) {
    std::ifstream in(packer.root() + "/www/" + name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const std::string web = archive("web-1.0.0.tgz");
  ASSERT_FALSE(web.empty());
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer();
  ASSERT_NE(echo, nullptr);
  auto fleet_yaml = [](const std::string& chart) {
    return RepoFile{
        "apps/web/fleet.yaml",
        absl::StrCat("helm:\n  chart: ", chart, "\n  releaseName: web\n  values: {tier: prod}\n")};
  };
  const std::vector<RepoFile> files = {fleet_yaml("./web-1.0.0.tgz"),
                                       {"apps/web/web-1.0.0.tgz", web}};
  EXPECT_EQ(DetectEngine("apps/web", files), "helm");
  EXPECT_EQ(DetectEngine("apps/web", files, true, true, true, /*fleet_getter_charts=*/false),
            "plain")
      << "a bundle rendered before keeps its engine";
  std::vector<std::string> notes;
  RenderInput input{"web", "apps/web", files};
  input.notes = &notes;
  absl::StatusOr<ObjectSet> set = RenderBundlePath(*echo, input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//web web"));
  EXPECT_THAT(
      KeysWithData(*set, "values"),
      ::testing::ElementsAre("/ConfigMap//web .gitfleet-fleet-yaml-values.yaml=tier: prod |"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("renders the chart archive "
                                                   "apps/web/web-1.0.0.tgz, which")));
  // Any compression go-getter unpacks: the same chart as a .tar.xz.
  const std::string unpacked = TempDir("unpacked");
  ASSERT_EQ(
      ::gitfleet::testing::Run(absl::StrCat("cd '", unpacked, "' && tar -xzf '", packer.root(),
                                            "/www/web-1.0.0.tgz' && tar -cJf ", "web.tar.xz web")),
      0);
  std::ifstream xz_in(unpacked + "/web.tar.xz", std::ios::binary);
  const std::string xz((std::istreambuf_iterator<char>(xz_in)), std::istreambuf_iterator<char>());
  const std::vector<RepoFile> xz_files = {fleet_yaml("./web.tar.xz"), {"apps/web/web.tar.xz", xz}};
  EXPECT_EQ(DetectEngine("apps/web", xz_files), "helm");
  RenderInput xz_input{"web", "apps/web", xz_files};
  absl::StatusOr<ObjectSet> xz_set = RenderBundlePath(*echo, xz_input);
  ASSERT_TRUE(xz_set.ok()) << xz_set.status();
  EXPECT_THAT(KeysWithData(*xz_set, "chart"), ::testing::ElementsAre("/ConfigMap//web web"));
  // Elsewhere in the repository: read at the render's commit, and a read path.
  std::vector<std::string> read;
  RenderInput outside{"web", "apps/web", {fleet_yaml("../../charts/web-1.0.0.tgz")}, &read};
  outside.read_files =
      [&](const std::vector<std::string>& paths) -> absl::StatusOr<std::vector<RepoFile>> {
    std::vector<RepoFile> out;
    for (const std::string& path : paths) {
      if (path == "charts/web-1.0.0.tgz") out.push_back({path, web});
    }
    return out;
  };
  set = RenderBundlePath(*echo, outside);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//web web"));
  EXPECT_THAT(read, ::testing::Contains("charts/web-1.0.0.tgz"));
  // A target's own archive, for the clusters it selects.
  const Values canary = {{ClusterNameKey(), "c-1"}, {ClusterLabelKey("ring"), "canary"}};
  RenderInput targeted{
      "web",
      "apps/web",
      {{"apps/web/fleet.yaml",
        "helm: {chart: ./web-1.0.0.tgz}\ntargetCustomizations:\n- name: canary\n"
        "  clusterSelector: {matchLabels: {ring: canary}}\n  helm: {chart: ./next-2.0.0.tgz}\n"},
       {"apps/web/web-1.0.0.tgz", web},
       {"apps/web/next-2.0.0.tgz", archive("next-2.0.0.tgz")}},
      nullptr,
      &canary,
      nullptr};
  set = RenderBundlePath(*echo, targeted);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//web next"));
  // What cannot be rendered so.
  for (const auto& [chart, content, error] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"./web-1.0.0.tgz", "not an archive", "the chart archive apps/web/web-1.0.0.tgz: "},
           {"./nochart-1.0.0.tgz", archive("nochart-1.0.0.tgz"), "holds no Chart.yaml"},
           {"./gone-1.0.0.tgz", "", "is not in the repository"},
           {"../../../away.tgz", "", "which is outside the repository"}}) {
    std::vector<RepoFile> bad = {fleet_yaml(chart)};
    if (!content.empty()) bad.push_back({"apps/web/" + chart.substr(2), content});
    absl::StatusOr<ObjectSet> refused = RenderBundlePath(*echo, {"web", "apps/web", bad});
    EXPECT_FALSE(refused.ok()) << chart;
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(error)) << chart;
  }
  // A bundle rendered before: as it did, noted.
  EXPECT_THAT(NotesOfABundleFromBefore("apps/web", files, &RenderInput::reads_fleet_getter_charts),
              ::testing::Contains(HasSubstr("an archive, in helm.chart; this bundle was "
                                            "rendered before gitfleet read that form")));
}

// Fleet's layout of one chart and a folder of values per environment: each folder's
// fleet.yaml names the chart elsewhere in the repository (`helm.chart: ../../charts/web`,
// rancher/fleet#270). The folder is a chart (detected so), the chart is read from the
// repository at the render's commit and rendered with the folder's values, its folder
// counts among what the render read, and what cannot be rendered so fails naming it. A
// bundle rendered before gitfleet read it renders its folder as it did, saying why.
TEST(HelmRendererTest, AChartFolderOutsideTheBundlesFleetYamlNamesIsRendered) {
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer();
  ASSERT_NE(echo, nullptr);
  const std::vector<RepoFile> repository = {
      {"helm/charts/web/Chart.yaml", "apiVersion: v2\nname: web-chart\nversion: 0.10.0\n"},
      {"helm/charts/web/values.yaml", "replicas: 1\n"},
      {"helm/charts/web/templates/cm.yaml", "kind: ConfigMap\n"},
      {"helm/charts/empty/README.md", "no chart here\n"},
  };
  std::vector<std::string> folders_read;
  auto read_folder = [&](const std::string& folder) -> absl::StatusOr<std::vector<RepoFile>> {
    folders_read.push_back(folder);
    std::vector<RepoFile> out;
    for (const RepoFile& file : repository) {
      if (absl::StartsWith(file.path, folder + "/")) out.push_back(file);
    }
    return out;
  };
  std::vector<RepoFile> files = {
      {"helm/values/prod/fleet.yaml",
       "defaultNamespace: shop\nhelm:\n  chart: ../../charts/web\n  releaseName: web-prod\n"
       "  version: 0.10.0\n  valuesFiles: [prod.yaml]\n  values: {tier: prod}\n"},
      {"helm/values/prod/prod.yaml", "replicas: 3\n"},
  };
  EXPECT_EQ(DetectEngine("helm/values/prod", files), "helm");
  EXPECT_EQ(DetectEngine("helm/values/prod", files, true, true, /*fleet_outside_charts=*/false),
            "plain")
      << "a bundle rendered before keeps its engine";
  std::vector<std::string> notes;
  std::vector<std::string> read;
  RenderInput input{"web", "helm/values/prod", files, &read};
  input.read_folder = read_folder;
  input.notes = &notes;
  absl::StatusOr<ObjectSet> rendered = RenderBundlePath(*echo, input);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_THAT(KeysWithData(*rendered, "chart"),
              ::testing::ElementsAre("/ConfigMap//web-prod web-chart"));
  EXPECT_THAT(KeysWithData(*rendered, "values"),
              ::testing::ElementsAre("/ConfigMap//web-prod "
                                     ".gitfleet-fleet-yaml-values.yaml=tier: prod replicas: 3 |"));
  EXPECT_THAT(folders_read, ::testing::ElementsAre("helm/charts/web"));
  EXPECT_THAT(read, ::testing::Contains("helm/charts/web"))
      << "a change to the chart renders the bundle again";
  EXPECT_THAT(notes, ::testing::Contains("renders the chart in helm/charts/web, which "
                                         "helm/values/prod/fleet.yaml's helm.chart "
                                         "(../../charts/web) names, as Fleet renders it"));
  EXPECT_THAT(notes, Not(::testing::Contains(HasSubstr("helm.chart names"))));

  // What cannot be rendered so fails naming it.
  for (const auto& [chart, error] : std::vector<std::pair<std::string, std::string>>{
           {"../../charts/empty", "the chart folder helm/charts/empty holds no Chart.yaml"},
           {"../../charts/gone", "the chart folder helm/charts/gone holds no Chart.yaml"},
           {"../../../../web", "helm.chart names ../../../../web, which is outside the repository"},
           {"../../..", "helm.chart names ../../.., the repository's root"}}) {
    std::vector<RepoFile> bad = files;
    bad[0].content = absl::StrCat("helm: {chart: '", chart, "'}\n");
    RenderInput bad_input{"web", "helm/values/prod", bad};
    bad_input.read_folder = read_folder;
    absl::StatusOr<ObjectSet> refused = RenderBundlePath(*echo, bad_input);
    EXPECT_FALSE(refused.ok()) << chart;
    EXPECT_THAT(refused.status().message(), HasSubstr(error)) << chart;
  }
  // A render that reads only its folder (none to read the repository with) says so.
  RenderInput folder_only{"web", "helm/values/prod", files};
  EXPECT_THAT(RenderBundlePath(*echo, folder_only).status().message(),
              HasSubstr("is outside the bundle's folder, and this render reads only that folder"));

  // A bundle rendered before gitfleet read it: its folder as it did (here, nothing), noted.
  EXPECT_THAT(NotesOfABundleFromBefore("helm/values/prod", files),
              ::testing::Contains(
                  HasSubstr("names the chart ../../charts/web outside the bundle's folder in "
                            "helm.chart; this bundle was rendered before gitfleet read it")));
}

// Fleet's helm layout with the chart in a folder of its own: fleet.yaml (or fleet.yml)
// names it in helm.chart, with values and values files relative to fleet.yaml's folder. The
// folder is a chart (detected so), that chart is rendered with those options, and the
// folder's other files are not, as in Fleet.
TEST(HelmRendererTest, FleetYamlsHelmChartFolderIsTheChartRendered) {
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer();
  ASSERT_NE(echo, nullptr);
  HelmRenderer& renderer = *echo;
  std::vector<RepoFile> files = {
      {"sc/helm/fleet.yaml",
       "helm:\n  chart: ./chart/\n  releaseName: shop\n  valuesFiles: [values/prod.yaml]\n"
       "  values: {replicas: 2}\n"},
      {"sc/helm/chart/Chart.yaml", "apiVersion: v2\nname: shop-chart\nversion: 0.1.0\n"},
      {"sc/helm/chart/values.yaml", "replicas: 1\n"},
      {"sc/helm/values/prod.yaml", "tier: prod\n"},
      {"sc/helm/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n"},
  };
  EXPECT_EQ(DetectEngine("sc/helm", files), "helm");
  EXPECT_EQ(DetectEngine("sc/helm", files, /*fleet_layout=*/false), "plain")
      << "a bundle rendered before keeps its engine";
  auto rendered = [](const absl::StatusOr<ObjectSet>& set) {
    if (!set.ok()) return std::string(set.status().message());
    std::vector<std::string> out;
    for (const auto& [key, object] : set->objects()) {
      YAML::Node node = YAML::Load(object->yaml());
      out.push_back(absl::StrCat(key, " ", node["data"]["chart"].as<std::string>(), " ",
                                 node["data"]["values"].as<std::string>()));
    }
    return absl::StrJoin(out, "; ");
  };
  std::vector<std::string> notes;
  RenderInput input{"web", "sc/helm", files};
  input.notes = &notes;
  EXPECT_EQ(
      rendered(RenderBundlePath(renderer, input)),
      "/ConfigMap//shop shop-chart .gitfleet-fleet-yaml-values.yaml=replicas: 2 tier: prod |");
  EXPECT_THAT(notes, ::testing::Contains("renders the chart in sc/helm/chart, which "
                                         "sc/helm/fleet.yaml's helm.chart names, as Fleet "
                                         "renders it"));
  EXPECT_THAT(notes, Not(::testing::Contains(HasSubstr("which gitfleet does not read"))));
  // Under fleet.yml, Fleet's other name for it, and at the repository root.
  std::vector<RepoFile> at_root;
  for (const RepoFile& file : files) {
    std::string path = file.path.substr(std::string("sc/helm/").size());
    at_root.push_back({path == "fleet.yaml" ? "fleet.yml" : path, file.content});
  }
  EXPECT_EQ(DetectEngine("", at_root), "helm");
  EXPECT_EQ(
      rendered(RenderBundlePath(renderer, {"web", "", at_root})),
      "/ConfigMap//shop shop-chart .gitfleet-fleet-yaml-values.yaml=replicas: 2 tier: prod |");

  // What cannot be rendered as Fleet renders it fails naming it.
  const std::pair<const char*, const char*> kBad[] = {
      {"helm: {chart: ./missing}\n",
       "sc/helm/fleet.yaml: helm.chart names missing, which holds no Chart.yaml in sc/helm"},
      {"helm: {chart: chart}\nkustomize: {dir: overlays/prod}\n",
       "sc/helm/fleet.yaml: kustomize.dir names overlays/prod, which is no folder of files in "
       "sc/helm"},
  };
  for (const auto& [text, error] : kBad) {
    std::vector<RepoFile> bad = files;
    bad[0].content = text;
    EXPECT_THAT(rendered(RenderBundlePath(renderer, {"web", "sc/helm", bad})), HasSubstr(error))
        << text;
  }
  // A kustomization beside the chart folder: Fleet post-renders the chart through it
  // (HelmRendererTest.AChartGoesThroughTheKustomizationFleetPostRendersItThrough), unless the
  // bundle was rendered before gitfleet did.
  std::vector<RepoFile> post_render = files;
  post_render.push_back({"sc/helm/kustomization.yaml", "resources: []\n"});
  EXPECT_EQ(DetectEngine("sc/helm", post_render), "helm");
  if (!FindKustomize().empty()) {
    EXPECT_EQ(
        rendered(RenderBundlePath(renderer, {"web", "sc/helm", post_render})),
        "/ConfigMap//shop shop-chart .gitfleet-fleet-yaml-values.yaml=replicas: 2 tier: prod |");
  }
  RenderInput unread{"web", "sc/helm", post_render};
  unread.reads_fleet_charts = false;
  EXPECT_THAT(rendered(RenderBundlePath(renderer, unread)),
              HasSubstr("helm.chart names the chart chart, and the folder has a kustomization: "
                        "Fleet renders the chart through it (a kustomize post-render); this "
                        "bundle was rendered before gitfleet did"));
  // A chart Fleet fetches (a helm repository, a URL) is not this one: it is fetched
  // (HelmRendererTest.AChartFromAChartRepositoryIsFetchedAndRendered), or (OCI) refused by
  // name; one outside the folder is read from the repository
  // (HelmRendererTest.AChartFolderOutsideTheBundlesFleetYamlNamesIsRendered). For a bundle
  // rendered before gitfleet read them, the folder is no chart, as before.
  for (const char* elsewhere :
       {"helm: {chart: web, repo: 'https://charts.example.com'}\n",
        "helm: {chart: 'https://charts.example.com/web-1.0.0.tgz'}\n",
        "helm: {chart: 'oci://registry.example.com/web'}\n", "helm: {chart: ../chart}\n"}) {
    std::vector<RepoFile> other = files;
    other[0].content = elsewhere;
    EXPECT_EQ(DetectEngine("sc/helm", other), "helm") << elsewhere;
    EXPECT_EQ(DetectEngine("sc/helm", other, true, /*fleet_charts=*/false,
                           /*fleet_outside_charts=*/false),
              "plain")
        << elsewhere;
  }
  // A bundle rendered before gitfleet read helm.chart renders as it did (here: a folder
  // that is no chart), and says what it would take.
  RenderInput before = input;
  before.reads_fleet_bundle_layout = false;
  notes.clear();
  const std::string old = rendered(RenderBundlePath(renderer, before));
  EXPECT_THAT(old, HasSubstr("Chart.yaml file is missing"));
  EXPECT_THAT(old, HasSubstr("(sc/helm/fleet.yaml sets helm.chart ./chart/: Fleet renders that"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "sc/helm/fleet.yaml names the chart chart in helm.chart; this bundle "
                         "was rendered before gitfleet read it")));
}

// Fleet post-renders a chart through the kustomization.yaml of the folder its cluster's
// target's kustomize.dir names, else fleet.yaml's, else the chart's own folder: the chart's
// output is that kustomization's first resource, fleet-manifests.yaml. A target's namespace
// is its clusters'. Real kustomize; helm is a stand-in that says what it rendered.
TEST(HelmRendererTest, AChartGoesThroughTheKustomizationFleetPostRendersItThrough) {
  if (FindKustomize().empty()) GTEST_SKIP() << "neither kustomize nor kubectl is installed";
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer();
  ASSERT_NE(echo, nullptr);
  HelmRenderer& renderer = *echo;
  std::vector<RepoFile> files = {
      {"mc/web/Chart.yaml", "apiVersion: v2\nname: web-chart\nversion: 0.1.0\n"},
      {"mc/web/fleet.yaml",
       "namespace: shop\n"
       "helm: {releaseName: web}\n"
       "targetCustomizations:\n"
       "- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n"
       "  kustomize: {dir: overlays/dev}\n  namespace: shop-dev\n"
       "- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
       "  kustomize: {dir: ./overlays/prod/}\n"
       "- name: lab\n  clusterSelector: {matchLabels: {env: lab}}\n"
       "  kustomize: {dir: overlays/lab}\n"},
      // The folder's own: a block-scalar patch, a resource of its own, labels.
      {"mc/web/kustomization.yaml",
       "# the chart's output comes first\n"
       "resources:\n- extra.yaml\n"
       "commonLabels: {tier: web}\n"
       "patches:\n- patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n"
       "      name: web\n    data:\n      patched: \"yes: with a colon\"\n"},
      {"mc/web/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n"},
      // Fleet's name for the chart's output: a committed file of that name is replaced.
      {"mc/web/fleet-manifests.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stale}\n"},
      {"mc/web/overlays/dev/kustomization.yaml", "namePrefix: dev-\n"},
      {"mc/web/overlays/prod/kustomization.yml", "namePrefix: prod-\n"},
      {"mc/web/overlays/lab/kustomization.yaml",
       "resources: [fleet-manifests.yaml, lab.yaml]\nnameSuffix: -lab\n"},
      {"mc/web/overlays/lab/lab.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lab}\n"},
  };
  EXPECT_EQ(DetectEngine("mc/web", files), "helm")
      << "a chart, whatever kustomization is beside it";
  EXPECT_EQ(DetectEngine("mc/web", files, true, /*fleet_charts=*/false), "kustomize")
      << "a bundle rendered before keeps its engine";
  std::vector<RepoFile> no_fleet_yaml = files;
  no_fleet_yaml.erase(no_fleet_yaml.begin() + 1);
  EXPECT_EQ(DetectEngine("mc/web", no_fleet_yaml), "kustomize")
      << "without Fleet's file, a kustomization beside a chart is the kustomization, as in Flux";
  {
    // And a chart rendered with --engine=helm is the chart as it is.
    absl::StatusOr<ObjectSet> set = RenderBundlePath(renderer, {"web", "mc/web", no_fleet_yaml});
    ASSERT_TRUE(set.ok()) << set.status();
    EXPECT_EQ(set->objects().size(), 1u);
    EXPECT_EQ(set->objects().count("/ConfigMap//web"), 1u);
  }
  auto cluster = [](const std::string& name, const std::map<std::string, std::string>& labels) {
    Values values = {{ClusterNameKey(), name}};
    for (const auto& [key, value] : labels) values[ClusterLabelKey(key)] = value;
    return values;
  };
  // "key chart patched tier" for each object, or the error.
  auto render = [&](const Values* values, ReadValues* read, std::vector<std::string>* notes) {
    RenderInput input{"web", "mc/web", files, nullptr, values, read};
    input.notes = notes;
    absl::StatusOr<ObjectSet> set = RenderBundlePath(renderer, input);
    if (!set.ok()) return "error: " + std::string(set.status().message());
    std::vector<std::string> out;
    for (const auto& [key, object] : set->objects()) {
      YAML::Node node = YAML::Load(object->yaml());
      std::string chart = node["data"]["chart"] ? node["data"]["chart"].as<std::string>() : "-";
      std::string patched =
          node["data"]["patched"] ? node["data"]["patched"].as<std::string>() : "-";
      std::string tier = node["metadata"]["labels"]["tier"]
                             ? node["metadata"]["labels"]["tier"].as<std::string>()
                             : "-";
      out.push_back(absl::StrCat(key, " ", chart, " ", patched, " ", tier));
    }
    return absl::StrCat(set->default_namespace(), ": ", absl::StrJoin(out, "; "));
  };
  // No target selects it: the folder's own kustomization, with the chart's output first.
  std::vector<std::string> notes;
  EXPECT_EQ(render(nullptr, nullptr, &notes),
            "shop: /ConfigMap//extra - - web; /ConfigMap//web web-chart yes: with a colon web");
  EXPECT_THAT(notes, ::testing::Contains(
                         "the chart's output goes through mc/web/kustomization.yaml, as its first "
                         "resource, fleet-manifests.yaml, as Fleet post-renders a chart"));
  EXPECT_THAT(notes, ::testing::Contains("mc/web/fleet-manifests.yaml is not read: the chart's "
                                         "output takes its place, as in Fleet"));
  EXPECT_THAT(notes, Not(::testing::Contains(HasSubstr("a bundle per target"))));
  EXPECT_THAT(notes, Not(::testing::Contains(HasSubstr("which gitfleet does not read"))));
  // A dev cluster: its target's folder and namespace; what it read is every dev cluster's.
  ReadValues read;
  notes.clear();
  const Values dev = cluster("dev-1", {{"env", "dev"}, {"zone", "a"}});
  EXPECT_EQ(render(&dev, &read, &notes), "shop-dev: /ConfigMap//dev-web web-chart - -");
  EXPECT_EQ(read, (ReadValues{{ClusterLabelKey("env"), "dev"}}));
  EXPECT_THAT(notes, ::testing::Contains(
                         "the chart's output goes through mc/web/overlays/dev/kustomization.yaml "
                         "(targetCustomizations dev's kustomize.dir), as its first resource, "
                         "fleet-manifests.yaml, as Fleet post-renders a chart"));
  // Fleet's post-render reads kustomization.yaml only: the chart as it is, noted.
  notes.clear();
  const Values prod = cluster("prod-1", {{"env", "prod"}});
  EXPECT_EQ(render(&prod, nullptr, &notes), "shop: /ConfigMap//web web-chart - -");
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "Fleet post-renders a chart through a kustomization.yaml only, and so "
                         "does gitfleet, so mc/web/overlays/prod/kustomization.yml is not read")));
  // A kustomization that names the output itself is left as it is.
  const Values lab = cluster("lab-1", {{"env", "lab"}});
  EXPECT_EQ(render(&lab, nullptr, nullptr),
            "shop: /ConfigMap//lab-lab - - -; /ConfigMap//web-lab web-chart - -");

  // What kustomize refuses fails naming the kustomization and the chart's part in it.
  std::vector<RepoFile> saved = files;
  files[2].content = "resources: [missing.yaml]\n";
  EXPECT_THAT(render(nullptr, nullptr, nullptr),
              ::testing::AllOf(HasSubstr("post-rendering the chart through "
                                         "mc/web/kustomization.yaml, as Fleet does (the chart's "
                                         "output is its first resource, fleet-manifests.yaml)"),
                               HasSubstr("missing.yaml")));
  files[2].content = "resources: {a: b}\n";
  EXPECT_THAT(render(nullptr, nullptr, nullptr),
              HasSubstr("mc/web/kustomization.yaml: resources is not a list"));
  files[2].content = "resources: [\n";
  EXPECT_THAT(render(nullptr, nullptr, nullptr), HasSubstr("mc/web/kustomization.yaml:"));
  files = saved;
  files[1].content = "kustomize: {dir: overlays/none}\n";
  EXPECT_THAT(render(nullptr, nullptr, nullptr),
              HasSubstr("mc/web/fleet.yaml: kustomize.dir names overlays/none, which is no folder "
                        "of files in mc/web"));
  files[1].content = "kustomize: {dir: ../elsewhere}\n";
  EXPECT_THAT(render(nullptr, nullptr, nullptr), HasSubstr("mc/web/fleet.yaml: kustomize.dir"));
  // fleet.yaml's own kustomize.dir, for every cluster.
  files[1].content = "kustomize: {dir: overlays/dev}\n";
  EXPECT_EQ(render(&prod, nullptr, nullptr), ": /ConfigMap//dev-web web-chart - -");
  files = saved;

  // A bundle rendered before gitfleet read them renders the chart as it did.
  RenderInput before{"web", "mc/web", files, nullptr, &dev, nullptr};
  before.reads_fleet_charts = false;
  notes.clear();
  before.notes = &notes;
  absl::StatusOr<ObjectSet> old = RenderBundlePath(renderer, before);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->objects().count("/ConfigMap//web"), 1u);
  EXPECT_EQ(old->default_namespace(), "shop");
  EXPECT_THAT(notes, ::testing::Contains(
                         HasSubstr("a bundle per target does their work: dev: --selector=env=dev "
                                   "--path=mc/web/overlays/dev --namespace=shop-dev")));
}

// Fleet's charts from chart repositories (helm.repo, chart, version) and by URL: fetched by
// the control plane from the repositories it trusts, rendered with fleet.yaml's values, the
// bundle's own values files read from its folder, post-rendered through a target's
// kustomization (Fleet's helm-kustomize layout). A chart repository on loopback.
// An umbrella chart whose dependencies are not vendored (Argo CD runs `helm dependency
// build` for it): each is fetched as helm would get it, from a chart repository at the
// version Chart.lock pins (else the newest the constraint allows) or from a file://
// folder in the chart; a vendored one is taken as it is. The stand-in helm checks the
// charts/ folder as helm does.
TEST(HelmRendererTest, AnUmbrellaChartsDependenciesAreFetchedAsHelmDependencyBuildGetsThem) {
  testing::ChartRepositoryServer server(TempDir("charts"));
  ASSERT_TRUE(AddCharts(server, {{"postgresql", "12.1.0"},
                                 {"postgresql", "12.2.0"},
                                 {"redis", "17.0.0"},
                                 {"redis", "17.1.0"}})
                  .ok());
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  const std::string helm = testing::WriteDependencyCheckingHelm(TempDir("deps-helm"));
  ASSERT_FALSE(helm.empty());
  HelmOptions options{helm, TempDir("scratch"), absl::Seconds(30), {}};
  options.allow_network = true;  // a stand-in, not a chart's hooks
  HelmRenderer renderer(options, std::nullopt, TrustingFetcher(server));
  const std::string repo = server.url();
  std::vector<RepoFile> files = {
      {"apps/shop/Chart.yaml",
       absl::StrCat("apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n"
                    "- name: postgresql\n  version: ^12\n  repository: ",
                    repo, "\n  condition: postgresql.enabled\n- name: redis\n  version: ~17.0\n",
                    "  repository: '", repo, "'\n- name: common\n  version: 0.1.0\n",
                    "  repository: file://./libs/common\n- name: cache\n  version: 2.0.0\n",
                    "  repository: https://charts.example.com\n")},
      {"apps/shop/Chart.lock", absl::StrCat("dependencies:\n- name: postgresql\n  repository: ",
                                            repo, "\n  version: 12.1.0\ndigest: sha256:x\n")},
      {"apps/shop/libs/common/Chart.yaml", "apiVersion: v2\nname: common\nversion: 0.1.0\n"},
      // Vendored: taken as it is, never fetched (its repository is not even trusted).
      {"apps/shop/charts/cache/Chart.yaml", "apiVersion: v2\nname: cache\nversion: 2.0.0\n"},
  };
  std::vector<std::string> notes;
  RenderInput input{"shop", "apps/shop", files};
  input.notes = &notes;
  absl::StatusOr<ObjectSet> set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  const std::vector<std::string> out = KeysWithData(*set, "version");
  EXPECT_THAT(out, ::testing::ElementsAre("/ConfigMap//shop 1.0.0", "/ConfigMap//shop-cache 2.0.0",
                                          "/ConfigMap//shop-common 0.1.0",
                                          "/ConfigMap//shop-postgresql 12.1.0",
                                          "/ConfigMap//shop-redis 17.0.0"));
  EXPECT_THAT(notes, ::testing::Contains(absl::StrCat(
                         "fetched the chart postgresql 12.1.0 from ", repo,
                         "postgresql-12.1.0.tgz (sha256 checked) for apps/shop's dependency "
                         "postgresql")));
  // redis's ~17.0 is pinned by no lock: a release in its repository changes the render, so
  // the render says it read from outside the repository; exact versions say nothing.
  bool remote = false;
  input.read_remote = &remote;
  ASSERT_TRUE(renderer.Render(input).ok());
  EXPECT_TRUE(remote);
  std::vector<RepoFile> exact = {
      {"apps/shop/Chart.yaml",
       absl::StrCat("apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n"
                    "- name: redis\n  version: 17.1.0\n  repository: ",
                    repo, "\n")}};
  remote = false;
  RenderInput pinned{"shop", "apps/shop", exact};
  pinned.read_remote = &remote;
  ASSERT_TRUE(renderer.Render(pinned).ok());
  EXPECT_FALSE(remote);
  // Without Chart.lock: the newest the constraint allows.
  std::vector<RepoFile> unlocked = files;
  unlocked.erase(unlocked.begin() + 1);
  set = renderer.Render({"shop", "apps/shop", unlocked});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->objects().begin()->first, HasSubstr("shop"));
  bool newest = false;
  for (const auto& [key, object] : set->objects()) {
    newest |= key == "/ConfigMap//shop-postgresql" &&
              YAML::Load(object->yaml())["data"]["version"].as<std::string>() == "12.2.0";
  }
  EXPECT_TRUE(newest);

  // What helm dependency build could not do either, or gitfleet will not: named.
  const std::pair<std::string, std::string> kBad[] = {
      {"- name: lib\n  repository: file://../../lib\n",
       "apps/shop's dependency lib is at file://../../lib, which is not a chart in the bundle's "
       "folder"},
      {"- name: lib\n  repository: '@bitnami'\n",
       "names the repository @bitnami by a name helm's own repository list gives it; give the "
       "control plane that name (--chart-repository-names=bitnami=URL)"},
      {"- name: lib\n", "names no repository and is not in its charts/ folder"},
      {"- name: lib\n  repository: https://elsewhere.example.com\n",
       "which the control plane does not fetch charts from"},
      {"- name: ../x\n  repository: https://elsewhere.example.com\n", "not a chart's name"},
  };
  for (const auto& [dependency, error] : kBad) {
    std::vector<RepoFile> bad = {
        {"apps/shop/Chart.yaml",
         "apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n" + dependency}};
    absl::StatusOr<ObjectSet> refused = renderer.Render({"shop", "apps/shop", bad});
    EXPECT_THAT(refused.status().message(), HasSubstr(error)) << dependency;
  }

  // A repository named as helm's own list names it (`@stable`, `alias:stable`; Argo CD
  // resolves its repositories' names): the control plane's --chart-repository-names.
  ChartFetchOptions named;
  named.allowed = {server.url()};
  absl::StatusOr<std::map<std::string, std::string>> names =
      ParseChartRepositoryNames({"stable=" + repo, "cache.v2=https://charts.example.com/"});
  ASSERT_TRUE(names.ok()) << names.status();
  named.repository_names = *std::move(names);
  HelmRenderer naming(options, std::nullopt, std::make_shared<ChartFetcher>(std::move(named)));
  for (const char* written : {"'@stable'", "alias:stable"}) {
    std::vector<RepoFile> aliased = {
        {"apps/shop/Chart.yaml",
         absl::StrCat("apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n"
                      "- name: redis\n  version: ~17.0\n  repository: ",
                      written, "\n")}};
    notes.clear();
    RenderInput named_input{"shop", "apps/shop", aliased};
    named_input.notes = &notes;
    set = naming.Render(named_input);
    ASSERT_TRUE(set.ok()) << written << ": " << set.status();
    EXPECT_THAT(KeysWithData(*set, "version"),
                ::testing::Contains("/ConfigMap//shop-redis 17.0.0"));
    EXPECT_THAT(notes, ::testing::Contains(HasSubstr("to be " + repo)));
  }
  for (const char* entry :
       {"stable", "=https://x/", "a b=https://x/", "s=ftp://x/", "s=https://"}) {
    EXPECT_FALSE(ParseChartRepositoryNames({entry}).ok()) << entry;
  }
  EXPECT_THAT(ParseChartRepositoryNames({"s=https://a/", "s=https://b/"}).status().message(),
              HasSubstr("the name s is given twice"));
  // A monorepo's library chart beside the bundle's folder: read from the repository at the
  // render's commit when the render can (the control plane's can), and its folder counts
  // among what the render read.
  const std::vector<RepoFile> repository = {
      {"lib/Chart.yaml", "apiVersion: v2\nname: lib\nversion: 3.0.0\n"},
      {"lib/templates/x.yaml", "kind: ConfigMap\n"},
      {"empty/values.yaml", "{}\n"}};
  auto read_folder = [&](const std::string& folder) -> absl::StatusOr<std::vector<RepoFile>> {
    std::vector<RepoFile> out;
    for (const RepoFile& file : repository) {
      if (absl::StartsWith(file.path, folder + "/")) out.push_back(file);
    }
    return out;
  };
  for (const auto& [dependency, error] : std::vector<std::pair<std::string, std::string>>{
           {"- name: lib\n  repository: file://../../lib\n", ""},
           {"- name: lib\n  repository: file://../../empty\n",
            "(empty), which holds no Chart.yaml"},
           {"- name: lib\n  repository: file://../../../x\n", "which is outside the repository"}}) {
    std::vector<RepoFile> beside = {
        {"apps/shop/Chart.yaml",
         "apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n" + dependency}};
    std::vector<std::string> read;
    notes.clear();
    RenderInput with_repository{"shop", "apps/shop", beside, &read};
    with_repository.read_folder = read_folder;
    with_repository.notes = &notes;
    absl::StatusOr<ObjectSet> took = renderer.Render(with_repository);
    if (!error.empty()) {
      EXPECT_THAT(took.status().message(), HasSubstr(error)) << dependency;
      continue;
    }
    ASSERT_TRUE(took.ok()) << took.status();
    EXPECT_THAT(KeysWithData(*took, "version"),
                ::testing::ElementsAre("/ConfigMap//shop 1.0.0", "/ConfigMap//shop-lib 3.0.0"));
    EXPECT_THAT(read, ::testing::ElementsAre("apps/shop", "lib"));
    EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                           "took the chart lib for apps/shop's dependency lib, as helm dependency "
                           "build does (file://../../lib)")));
  }
  // kustomize's helmCharts: a chart published without its dependencies gets them too.
  if (!FindKustomize().empty()) {
    ASSERT_TRUE(server
                    .AddChart("umbrella", "1.0.0",
                              {{"Chart.yaml",
                                absl::StrCat("apiVersion: v2\nname: umbrella\nversion: 1.0.0\n"
                                             "dependencies:\n- name: redis\n  version: 17.1.0\n"
                                             "  repository: ",
                                             repo, "\n")},
                               {"values.yaml", "{}\n"}})
                    .ok());
    KustomizeOptions kustomize{"", TempDir("scratch"), absl::Seconds(60), {}};
    kustomize.allow_network = NetworkSandbox().empty();
    kustomize.helm_binary = helm;
    kustomize.chart_fetcher = TrustingFetcher(server);
    absl::StatusOr<ObjectSet> inflated = KustomizeRenderer(kustomize).Render(
        {"shop",
         "k",
         {{"k/kustomization.yaml", absl::StrCat("helmCharts:\n- {name: umbrella, repo: '", repo,
                                                "', version: 1.0.0, releaseName: u}\n")}}});
    ASSERT_TRUE(inflated.ok()) << inflated.status();
    std::vector<std::string> keys;
    for (const auto& [key, object] : inflated->objects()) keys.push_back(key);
    EXPECT_THAT(keys, ::testing::ElementsAre("/ConfigMap//u", "/ConfigMap//u-redis"));
  }
  // A control plane that fetches no charts says which flag would trust the repository.
  HelmRenderer closed(options);
  EXPECT_THAT(std::string(closed.Render(input).status().message()),
              HasSubstr("apps/shop's dependency postgresql: it is fetched from " + repo +
                        ", which the control plane does not fetch charts from: start it with "
                        "--chart-repositories=" +
                        repo));
}

TEST(HelmRendererTest, AChartFromAChartRepositoryIsFetchedAndRendered) {
  testing::ChartRepositoryServer server(TempDir("charts"));
  ASSERT_TRUE(
      AddCharts(server, {{"guestbook", "0.1.0"}, {"guestbook", "0.1.5"}, {"guestbook", "0.2.0"}})
          .ok());
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer(TrustingFetcher(server));
  ASSERT_NE(echo, nullptr);
  std::vector<RepoFile> files = {
      {"mc/gb/fleet.yaml",
       absl::StrCat("namespace: shop\nhelm:\n  repo: ", server.url(),
                    "\n  chart: guestbook\n  version: ~0.1.0\n  releaseName: gb\n"
                    "  values: {replicas: 2}\n"
                    "targetCustomizations:\n- name: dev\n  clusterSelector: {matchLabels: "
                    "{env: dev}}\n  kustomize: {dir: overlays/dev}\n")},
      {"mc/gb/mine.yaml", "mine: 1\n"},
      {"mc/gb/overlays/dev/kustomization.yaml", "namePrefix: dev-\n"},
  };
  EXPECT_EQ(DetectEngine("mc/gb", files), "helm");
  EXPECT_EQ(DetectEngine("mc/gb", files, true, /*fleet_charts=*/false), "kustomize")
      << "a bundle rendered before keeps its engine";
  auto rendered = [&](HelmRenderer& renderer, const Values* cluster,
                      std::vector<std::string>* notes) {
    RenderInput input{"web", "mc/gb", files, nullptr, cluster, nullptr};
    input.helm_values_files = {"mine.yaml"};
    input.notes = notes;
    absl::StatusOr<ObjectSet> set = RenderBundlePath(renderer, input);
    if (!set.ok()) return std::string(set.status().message());
    std::vector<std::string> out;
    for (const auto& [key, object] : set->objects()) {
      YAML::Node node = YAML::Load(object->yaml());
      out.push_back(absl::StrCat(key, " ", node["data"]["chart"].as<std::string>(), " ",
                                 node["data"]["values"].as<std::string>()));
    }
    return absl::StrCat(set->default_namespace(), ": ", absl::StrJoin(out, "; "));
  };
  std::vector<std::string> notes;
  EXPECT_EQ(rendered(*echo, nullptr, &notes),
            "shop: /ConfigMap//gb guestbook .gitfleet-fleet-yaml-values.yaml=replicas: 2 "
            "|mine.yaml=mine: 1 |");
  EXPECT_THAT(notes, ::testing::Contains(absl::StrCat(
                         "renders the chart guestbook ~0.1.0 from ", server.url(),
                         ", which mc/gb/fleet.yaml names, as Fleet renders it (fetched by the "
                         "control plane)")));
  EXPECT_THAT(notes, ::testing::Contains(absl::StrCat("fetched the chart guestbook 0.1.5 from ",
                                                      server.url(),
                                                      "guestbook-0.1.5.tgz (sha256 checked)")));
  EXPECT_THAT(notes, Not(::testing::Contains(HasSubstr("which gitfleet does not read"))));
  if (!FindKustomize().empty()) {
    const Values dev = {{ClusterNameKey(), "dev-1"}, {ClusterLabelKey("env"), "dev"}};
    EXPECT_THAT(rendered(*echo, &dev, nullptr), HasSubstr("shop: /ConfigMap//dev-gb guestbook"))
        << "post-rendered through its target's kustomization";
  }
  // helm.chart as the archive's URL.
  const std::string repo_form = files[0].content;
  files[0].content =
      absl::StrCat("helm:\n  chart: ", server.url(), "guestbook-0.2.0.tgz\n  releaseName: gb\n");
  EXPECT_EQ(DetectEngine("mc/gb", files), "helm");
  notes.clear();
  EXPECT_EQ(rendered(*echo, nullptr, &notes), ": /ConfigMap//gb guestbook mine.yaml=mine: 1 |");
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("fetched the chart guestbook 0.2.0")));
  // What cannot be fetched fails naming why.
  files[0].content = repo_form;
  std::unique_ptr<HelmRenderer> closed = ValuesEchoHelmRenderer();
  EXPECT_THAT(rendered(*closed, nullptr, nullptr),
              HasSubstr(absl::StrCat("which the control plane does not fetch charts from: start "
                                     "it with --chart-repositories=",
                                     server.url())));
  const std::pair<std::string, const char*> kBad[] = {
      {"helm: {chart: oci://registry.example.com/charts/guestbook, version: 1.0.0}\n",
       "helm mc/gb: the chart oci://registry.example.com/charts/guestbook 1.0.0: it is fetched "
       "from oci://registry.example.com/charts/guestbook, which the control plane does not "
       "fetch charts from: start it with "
       "--chart-repositories=oci://registry.example.com/charts/guestbook"},
      {absl::StrCat("helm: {repo: '", server.url(), "', chart: guestbook, version: '^9'}\n"),
       "has no version of guestbook that \"^9\" allows (the newest: 0.2.0, 0.1.5, 0.1.0)"},
      {absl::StrCat("helm: {repo: '", server.url(), "', chart: nothing}\n"),
       "has no chart nothing"},
      {"helm: {repo: 'ftp://charts.example.com', chart: guestbook}\n",
       "helm.repo ftp://charts.example.com is not an http(s) URL"},
  };
  for (const auto& [fleet_yaml, error] : kBad) {
    files[0].content = fleet_yaml;
    EXPECT_EQ(DetectEngine("mc/gb", files), "helm") << fleet_yaml;
    EXPECT_THAT(rendered(*echo, nullptr, nullptr), HasSubstr(error)) << fleet_yaml;
  }
}

// Fleet's `helm.chart` naming an archive of a whole repository (a GitHub release's) and the
// chart's folder in it after "//", as go-getter reads it, with or without its forced
// `https::` getter: fetched, and that folder rendered, for the folder and for a target.
TEST(HelmRendererTest, AChartInAFolderOfAnArchivesUrlIsFetchedAndRendered) {
  testing::ChartRepositoryServer server(TempDir("charts"));
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  for (const auto& [path, content] : std::vector<std::pair<std::string, std::string>>{
           {"src/apps-1.2/README.md", "hi\n"},
           {"src/apps-1.2/charts/guestbook/Chart.yaml",
            "apiVersion: v2\nname: guestbook\nversion: 0.3.0\n"},
           {"src/apps-1.2/charts/guestbook/values.yaml", "replicas: 1\n"},
           {"src/apps-1.2/charts/next/Chart.yaml", "apiVersion: v2\nname: next\nversion: 1.0.0\n"},
           {"src/apps-1.2/charts/next/values.yaml", "replicas: 1\n"}}) {
    server.Write(path, content);
  }
  absl::StatusOr<SubprocessResult> packed =
      RunSubprocess({"/bin/tar", "-C", server.root() + "/www/src", "-czf",
                     server.root() + "/www/apps-1.2.tar.gz", "apps-1.2"},
                    {"", {"PATH=/usr/bin:/bin"}});
  ASSERT_TRUE(packed.ok() && packed->exit_code == 0);
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer(TrustingFetcher(server));
  ASSERT_NE(echo, nullptr);
  const std::string archive = server.url() + "apps-1.2.tar.gz";
  const Values canary = {{ClusterNameKey(), "c-1"}, {ClusterLabelKey("ring"), "canary"}};
  for (const std::string& chart :
       {archive + "//*/charts/guestbook", "https::" + archive + "//apps-1.2/charts/guestbook"}) {
    const std::vector<RepoFile> files = {
        {"mc/gb/fleet.yaml",
         absl::StrCat("helm:\n  chart: ", chart,
                      "\n  releaseName: gb\ntargetCustomizations:\n- name: canary\n"
                      "  clusterSelector: {matchLabels: {ring: canary}}\n"
                      "  helm: {chart: '",
                      archive, "//*/charts/next'}\n")}};
    EXPECT_EQ(DetectEngine("mc/gb", files), "helm") << chart;
    std::vector<std::string> notes;
    RenderInput input{"web", "mc/gb", files};
    input.notes = &notes;
    absl::StatusOr<ObjectSet> set = RenderBundlePath(*echo, input);
    ASSERT_TRUE(set.ok()) << chart << ": " << set.status();
    EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//gb guestbook"))
        << chart;
    EXPECT_THAT(notes, ::testing::Contains(HasSubstr("fetched the chart guestbook 0.3.0")));
    input.values = &canary;
    set = RenderBundlePath(*echo, input);
    ASSERT_TRUE(set.ok()) << chart << ": " << set.status();
    EXPECT_THAT(KeysWithData(*set, "chart"), ::testing::ElementsAre("/ConfigMap//gb next"))
        << "the target's own folder of the archive";
  }
  // A bundle rendered before gitfleet read go-getter's forced getter renders as it did.
  std::vector<std::string> notes;
  RenderInput before{"web",
                     "mc/gb",
                     {{"mc/gb/fleet.yaml",
                       absl::StrCat("helm:\n  chart: https::", archive, "//*/charts/guestbook\n")},
                      {"mc/gb/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"}}};
  before.notes = &notes;
  before.reads_fleet_getter_charts = false;
  EXPECT_EQ(DetectEngine("mc/gb", before.files, true, true, true, false), "plain");
  PlainRenderer plain;
  EXPECT_TRUE(RenderBundlePath(plain, before).ok());
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("as go-getter's forced getter in helm.chart; "
                                                   "this bundle was rendered before")));
  // What the archive does not hold, or holds twice, fails naming it.
  for (const auto& [chart, error] : std::vector<std::pair<std::string, std::string>>{
           {archive + "//*/charts/db", "the archive has no folder */charts/db"},
           {archive + "//*/charts/*", "matches 2 folders of the archive"},
           {archive, "it holds no Chart.yaml in apps-1.2/"}}) {
    RenderInput bad{"web", "mc/gb", {{"mc/gb/fleet.yaml", "helm: {chart: '" + chart + "'}\n"}}};
    EXPECT_THAT(RenderBundlePath(*echo, bad).status().message(), HasSubstr(error)) << chart;
  }
}

// A target's helm.releaseName, repo, chart and version are its clusters', over the folder's,
// as Fleet merges a target's helm options: canary clusters on a newer chart version, say.
// A chart folder of their own is refused by name; a bundle rendered before reads none.
TEST(HelmRendererTest, AFleetTargetGivesItsClustersAnotherReleaseChartOrVersion) {
  testing::ChartRepositoryServer server(TempDir("charts"));
  ASSERT_TRUE(
      AddCharts(server,
                {{"guestbook", "0.1.0"}, {"guestbook", "0.2.0"}, {"guestbook-next", "1.0.0"}})
          .ok());
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer(TrustingFetcher(server));
  ASSERT_NE(echo, nullptr);
  std::vector<RepoFile> files = {
      {"mc/gb/fleet.yaml",
       absl::StrCat("helm: {repo: '", server.url(),
                    "', chart: guestbook, version: 0.1.0, releaseName: gb}\n"
                    "targetCustomizations:\n"
                    "- name: canary\n  clusterSelector: {matchLabels: {ring: canary}}\n"
                    "  helm: {version: 0.2.0, releaseName: gb-canary}\n"
                    "- name: next\n  clusterSelector: {matchLabels: {ring: next}}\n"
                    "  helm: {chart: guestbook-next, version: '^1'}\n"
                    "- name: named\n  clusterSelector: {matchLabels: {ring: named}}\n"
                    "  helm: {releaseName: gb-named}\n")},
  };
  auto rendered = [&](const std::string& ring, bool reads_fleet_charts,
                      std::vector<std::string>* notes) {
    const Values cluster = {{ClusterNameKey(), "c-1"}, {ClusterLabelKey("ring"), ring}};
    RenderInput input{"web", "mc/gb", files, nullptr, &cluster, nullptr};
    input.reads_fleet_charts = reads_fleet_charts;
    input.notes = notes;
    // The repository beyond the folder: a chart folder beside it.
    input.read_folder = [](const std::string& folder) -> absl::StatusOr<std::vector<RepoFile>> {
      if (folder != "mc/other") return std::vector<RepoFile>();
      return std::vector<RepoFile>{
          {"mc/other/Chart.yaml", "apiVersion: v2\nname: other-chart\nversion: 0.1.0\n"}};
    };
    absl::StatusOr<ObjectSet> set = RenderBundlePath(*echo, input);
    if (!set.ok()) return std::string(set.status().message());
    std::vector<std::string> out;
    for (const auto& [key, object] : set->objects()) {
      YAML::Node node = YAML::Load(object->yaml());
      out.push_back(absl::StrCat(key, " ", node["data"]["chart"].as<std::string>()));
    }
    return absl::StrJoin(out, "; ");
  };
  auto fetched = [](const std::vector<std::string>& notes) {
    for (const std::string& note : notes) {
      if (absl::StartsWith(note, "fetched the chart ")) {
        const std::string what = note.substr(0, note.find(" from "));
        return what.substr(std::string("fetched the chart ").size());
      }
    }
    return std::string("nothing fetched");
  };
  std::vector<std::string> notes;
  EXPECT_EQ(rendered("prod", true, &notes), "/ConfigMap//gb guestbook");
  EXPECT_EQ(fetched(notes), "guestbook 0.1.0");
  notes.clear();
  EXPECT_EQ(rendered("canary", true, &notes), "/ConfigMap//gb-canary guestbook");
  EXPECT_EQ(fetched(notes), "guestbook 0.2.0") << "the target's version, the folder's chart";
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "the chart takes the release name, chart and chart version that "
                         "mc/gb/fleet.yaml's targetCustomizations canary, next, named give")));
  notes.clear();
  EXPECT_EQ(rendered("next", true, &notes), "/ConfigMap//gb guestbook-next");
  EXPECT_EQ(fetched(notes), "guestbook-next 1.0.0") << "its chart and version, the folder's repo";
  notes.clear();
  EXPECT_EQ(rendered("named", true, &notes), "/ConfigMap//gb-named guestbook");
  EXPECT_EQ(fetched(notes), "guestbook 0.1.0");
  // What cannot be used fails for the clusters it selects, naming the target and why.
  const std::pair<std::string, const char*> kBad[] = {
      {"  helm: {releaseName: Not_A_Name}\n",
       "mc/gb/fleet.yaml: targetCustomizations bad: its helm.releaseName \"Not_A_Name\" is not a "
       "release name helm takes"},
      {"  helm: {repo: 'oci://registry.example.com/charts'}\n",
       "the chart oci://registry.example.com/charts/guestbook 0.1.0: it is fetched from "
       "oci://registry.example.com/charts/guestbook, which the control plane does not fetch"},
      {"  helm: {version: [1]}\n", "targetCustomizations bad: its helm.version is not a string"},
      {"  helm: {version: '^7'}\n", "has no version of guestbook that \"^7\" allows"},
  };
  const std::string good = files[0].content;
  for (const auto& [helm, error] : kBad) {
    files[0].content =
        absl::StrCat(good, "- name: bad\n  clusterSelector: {matchLabels: {ring: bad}}\n", helm);
    EXPECT_THAT(rendered("bad", true, nullptr), HasSubstr(error)) << helm;
    EXPECT_EQ(rendered("prod", true, nullptr), "/ConfigMap//gb guestbook")
        << "other clusters render: " << helm;
  }
  // The folder's own chart: a target's release name; its chart from a chart repository, the
  // folder's chart by name, another chart folder inside the bundle's, or one elsewhere in
  // the repository, as Fleet renders it for that target's clusters; one without a
  // Chart.yaml, or outside the repository, is refused by name.
  files = {{"mc/gb/Chart.yaml", "apiVersion: v2\nname: local\nversion: 0.1.0\n"},
           {"mc/gb/edge/Chart.yaml", "apiVersion: v2\nname: edge-chart\nversion: 0.1.0\n"},
           {"mc/gb/fleet.yaml",
            absl::StrCat("helm: {releaseName: gb}\n"
                         "targetCustomizations:\n"
                         "- name: canary\n  clusterSelector: {matchLabels: {ring: canary}}\n"
                         "  helm: {releaseName: gb-canary, chart: ./}\n"
                         "- name: next\n  clusterSelector: {matchLabels: {ring: next}}\n"
                         "  helm: {repo: '",
                         server.url(),
                         "', chart: guestbook-next}\n"
                         "- name: edge\n  clusterSelector: {matchLabels: {ring: edge}}\n"
                         "  helm: {chart: ./edge/}\n"
                         "- name: bad\n  clusterSelector: {matchLabels: {ring: bad}}\n"
                         "  helm: {chart: ./elsewhere}\n"
                         "- name: out\n  clusterSelector: {matchLabels: {ring: out}}\n"
                         "  helm: {chart: ../other}\n"
                         "- name: gone\n  clusterSelector: {matchLabels: {ring: gone}}\n"
                         "  helm: {chart: ../gone}\n"
                         "- name: away\n  clusterSelector: {matchLabels: {ring: away}}\n"
                         "  helm: {chart: ../../../away}\n")}};
  EXPECT_EQ(rendered("prod", true, nullptr), "/ConfigMap//gb local");
  EXPECT_EQ(rendered("canary", true, nullptr), "/ConfigMap//gb-canary local");
  EXPECT_EQ(rendered("next", true, nullptr), "/ConfigMap//gb guestbook-next");
  EXPECT_EQ(rendered("edge", true, nullptr), "/ConfigMap//gb edge-chart");
  EXPECT_THAT(rendered("bad", true, nullptr),
              HasSubstr("mc/gb/fleet.yaml: targetCustomizations bad: its helm.chart names the "
                        "chart folder ./elsewhere, which holds no Chart.yaml "
                        "(mc/gb/elsewhere/Chart.yaml)"));
  EXPECT_EQ(rendered("out", true, nullptr), "/ConfigMap//gb other-chart");
  EXPECT_THAT(rendered("gone", true, nullptr),
              HasSubstr("the chart folder mc/gone holds no Chart.yaml"));
  EXPECT_THAT(rendered("away", true, nullptr),
              HasSubstr("mc/gb/fleet.yaml: targetCustomizations away: its helm.chart names "
                        "../../../away, which is outside the repository"));
  // The folder's chart elsewhere too: a target's chart from a chart repository, or the
  // folder's own, is the one rendered for its clusters.
  const std::vector<RepoFile> inside = files;
  files[0] = {"mc/gb/fleet.yaml",
              absl::StrCat("helm: {releaseName: gb, chart: ../other}\n"
                           "targetCustomizations:\n"
                           "- name: next\n  clusterSelector: {matchLabels: {ring: next}}\n"
                           "  helm: {repo: '",
                           server.url(),
                           "', chart: guestbook-next}\n"
                           "- name: edge\n  clusterSelector: {matchLabels: {ring: edge}}\n"
                           "  helm: {chart: ./edge/}\n")};
  EXPECT_EQ(rendered("prod", true, nullptr), "/ConfigMap//gb other-chart");
  EXPECT_EQ(rendered("next", true, nullptr), "/ConfigMap//gb guestbook-next");
  EXPECT_EQ(rendered("edge", true, nullptr), "/ConfigMap//gb edge-chart");
  files = inside;
  // A bundle rendered before gitfleet read them renders the folder's chart everywhere, and
  // says so.
  notes.clear();
  EXPECT_EQ(rendered("canary", false, &notes), "/ConfigMap//gb local");
  EXPECT_EQ(rendered("next", false, nullptr), "/ConfigMap//gb local");
  EXPECT_EQ(rendered("bad", false, nullptr), "/ConfigMap//gb local");
  EXPECT_EQ(rendered("edge", false, nullptr), "/ConfigMap//gb local");
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "give some clusters another release name, chart or chart version; this "
                         "bundle was rendered before gitfleet read them")));
}

// Charts in an OCI registry (where Bitnami's and many others now publish): Fleet's
// `helm.chart: oci://...` and `helm.repo: oci://...`, and kustomize's helmCharts with an
// oci:// repo, each pulled by the control plane as helm pulls it.
TEST(HelmRendererTest, ChartsInOciRegistriesAreFetchedForFleetAndKustomize) {
  testing::OciRegistryServer registry(TempDir("registry"));
  for (const char* version : {"0.3.0", "0.4.0"}) {
    ASSERT_TRUE(registry
                    .AddChart("charts/guestbook", version,
                              {{"Chart.yaml", absl::StrCat("apiVersion: v2\nname: guestbook\n"
                                                           "version: ",
                                                           version, "\n")},
                               {"values.yaml", "{}\n"}})
                    .ok());
  }
  if (absl::Status started = registry.Start(); !started.ok()) GTEST_SKIP() << started;
  ChartFetchOptions trusted;
  trusted.allowed = {registry.url()};
  auto fetcher = std::make_shared<ChartFetcher>(trusted);
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer(fetcher);
  ASSERT_NE(echo, nullptr);
  for (const std::string& fleet_yaml :
       {absl::StrCat("helm: {chart: '", registry.url(), "charts/guestbook', version: '~0.3'",
                     ", releaseName: gb}\n"),
        absl::StrCat("helm: {repo: '", registry.url(), "charts/', chart: guestbook",
                     ", version: 0.3.0, releaseName: gb}\n")}) {
    std::vector<RepoFile> files = {{"mc/gb/fleet.yaml", fleet_yaml}};
    EXPECT_EQ(DetectEngine("mc/gb", files), "helm") << fleet_yaml;
    std::vector<std::string> notes;
    RenderInput input{"web", "mc/gb", files};
    input.notes = &notes;
    absl::StatusOr<ObjectSet> set = RenderBundlePath(*echo, input);
    ASSERT_TRUE(set.ok()) << fleet_yaml << set.status() << registry.Log();
    ASSERT_EQ(set->size(), 1u);
    EXPECT_EQ(set->objects().begin()->first, "/ConfigMap//gb");
    EXPECT_THAT(notes, ::testing::Contains(absl::StrCat("fetched the chart guestbook 0.3.0 from ",
                                                        registry.url(),
                                                        "charts/guestbook:0.3.0 (sha256 checked)")))
        << fleet_yaml;
  }
  if (FindKustomize().empty()) return;
  const std::string helm = testing::WriteValuesEchoHelm(TempDir("echo-helm"));
  ASSERT_FALSE(helm.empty());
  KustomizeOptions options{"", TempDir("scratch"), absl::Seconds(60), {}};
  options.allow_network = NetworkSandbox().empty();
  options.helm_binary = helm;
  options.chart_fetcher = fetcher;
  std::vector<RepoFile> files = {
      {"apps/gb/kustomization.yaml",
       absl::StrCat("helmCharts:\n- {name: guestbook, repo: '", registry.url(),
                    "charts', version: 0.4.0, releaseName: inflated}\n")}};
  absl::StatusOr<ObjectSet> set = KustomizeRenderer(options).Render({"web", "apps/gb", files});
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->size(), 1u);
  EXPECT_EQ(set->objects().begin()->first, "/ConfigMap//inflated");
}

// The helm-secrets layout (Argo CD's and Flux's charts alike): a chart's values file encrypted
// with SOPS. A --decrypt=sops bundle hands helm the plaintext values, never the ciphertext.
TEST(HelmRendererTest, AChartsSopsEncryptedValuesFileReachesHelmDecrypted) {
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer();
  ASSERT_NE(echo, nullptr);
  const SopsTestKey key;
  if (!key.ok()) GTEST_SKIP() << "the age package is missing (tools/setup installs it)";
  std::vector<RepoFile> files = {
      {"charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"},
      {"charts/web/secrets.yaml", key.Encrypt("password: hunter2\n", "secrets.yaml")}};
  ASSERT_EQ(files[1].content.find("hunter2"), std::string::npos);
  ASSERT_TRUE(DecryptSopsFiles("charts/web", key.keys(), &files, nullptr).ok());
  RenderInput input{"web", "charts/web", files};
  input.helm_values_files = {"secrets.yaml"};
  absl::StatusOr<ObjectSet> set = RenderBundlePath(*echo, input);
  ASSERT_TRUE(set.ok()) << set.status();
  YAML::Node cm = YAML::Load(set->objects().at("/ConfigMap//web")->yaml());
  EXPECT_EQ(cm["data"]["values"].as<std::string>(), "secrets.yaml=password: hunter2 |");
}

// Fleet's targetCustomizations give a chart other values for the clusters they select:
// the first target whose criteria all hold is the cluster's, its values merged over the
// folder's, as Fleet merges them.
TEST(HelmRendererTest, FleetTargetCustomizationsGiveAChartTheirValuesPerCluster) {
  std::unique_ptr<HelmRenderer> echo = ValuesEchoHelmRenderer();
  ASSERT_NE(echo, nullptr);
  HelmRenderer& renderer = *echo;
  std::vector<RepoFile> chart = {
      {"mc/helm/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"},
      {"mc/helm/fleet.yaml",
       "helm:\n  values: {replicas: 1, tier: base}\n"
       "targetCustomizations:\n"
       "- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n"
       "  helm: {values: {replication: false}}\n"
       "- name: canary\n  clusterName: canary-1\n"
       "  helm: {valuesFiles: [values/canary.yaml]}\n"
       "- name: prod\n"
       "  clusterSelector: {matchExpressions: [{key: env, operator: In, values: [prod]}]}\n"
       "  helm: {values: {replicas: 3, zone: '${ .ClusterLabels.zone }'}}\n"
       "- name: retired\n  clusterSelector: {matchLabels: {env: old}}\n  doNotDeploy: true\n"
       "- name: nothing\n  helm: {values: {replicas: 9}}\n"
       "- name: edge\n  clusterGroup: edge-sites\n  helm: {values: {replicas: 2}}\n"},
      {"mc/helm/values/canary.yaml", "tier: canary\n"},
  };
  auto render = [&](const Values& cluster, ReadValues* read,
                    std::vector<std::string>* notes = nullptr, bool reads_targets = true) {
    RenderInput input{"web", "mc/helm", chart, nullptr, &cluster, read};
    input.notes = notes;
    input.reads_fleet_targets = reads_targets;
    absl::StatusOr<ObjectSet> set = RenderBundlePath(renderer, input);
    if (!set.ok()) return "error: " + std::string(set.status().message());
    if (set->objects().count("/ConfigMap//web") == 0) return std::string("(none)");
    YAML::Node node = YAML::Load(set->objects().at("/ConfigMap//web")->yaml());
    return node["data"]["values"].as<std::string>();
  };
  auto cluster = [](const std::string& name, const std::map<std::string, std::string>& labels) {
    Values values = {{ClusterNameKey(), name}};
    for (const auto& [key, value] : labels) values[ClusterLabelKey(key)] = value;
    return values;
  };
  ReadValues read;
  std::vector<std::string> notes;
  EXPECT_EQ(render(cluster("dev-1", {{"env", "dev"}}), &read, &notes),
            ".gitfleet-fleet-yaml-values.yaml=replicas: 1 tier: base replication: false |");
  EXPECT_EQ(read, (ReadValues{{ClusterLabelKey("env"), "dev"}}))
      << "a dev cluster's render is every dev cluster's";
  EXPECT_THAT(notes, ::testing::Contains(
                         HasSubstr("the chart takes the helm values that mc/helm/fleet.yaml's "
                                   "targetCustomizations dev, canary, prod, nothing, edge give the "
                                   "clusters they select")));
  // Only what is more than a chart's values is left for a bundle per target.
  EXPECT_THAT(notes, ::testing::Contains(
                         HasSubstr("a bundle per target does their work: retired: not deployed")));
  EXPECT_THAT(notes, ::testing::Not(::testing::Contains(HasSubstr("its helm options as"))));
  EXPECT_EQ(render(cluster("canary-1", {{"env", "prod"}}), nullptr),
            ".gitfleet-fleet-yaml-values.yaml=replicas: 1 tier: canary |")
      << "the first target that selects it";
  read.clear();
  EXPECT_EQ(render(cluster("prod-1", {{"env", "prod"}, {"zone", "b"}}), &read),
            ".gitfleet-fleet-yaml-values.yaml=replicas: 3 tier: base zone: b |");
  EXPECT_EQ(read, (ReadValues{{ClusterNameKey(), "prod-1"},
                              {ClusterLabelKey("env"), "prod"},
                              {ClusterLabelKey("zone"), "b"}}));
  // A cluster group's (--cluster-groups): the cluster's groups are one value, read as such.
  // Without it (the control plane reads no groups), whether the target is the cluster's is
  // unknown: a guess would deploy another target's values.
  Values lab = cluster("lab", {{"env", "lab"}});
  EXPECT_THAT(render(lab, nullptr),
              HasSubstr("targetCustomizations edge selects by Fleet's clusterGroup edge-sites, "
                        "and the control plane reads no cluster groups"));
  read.clear();
  lab[ClusterGroupsKey()] = "";
  EXPECT_EQ(render(lab, &read), ".gitfleet-fleet-yaml-values.yaml=replicas: 1 tier: base |")
      << "in no group: no target";
  EXPECT_EQ(read[ClusterGroupsKey()], "");
  lab[ClusterGroupsKey()] = "edge-sites\tregion=eu\n";
  read.clear();
  EXPECT_EQ(render(lab, &read), ".gitfleet-fleet-yaml-values.yaml=replicas: 2 tier: base |");
  EXPECT_EQ(read[ClusterGroupsKey()], "edge-sites\tregion=eu\n");
  {
    // Left out, as Fleet leaves it out: no error of the render's, and nothing deployed.
    Values old = cluster("old-1", {{"env", "old"}});
    RenderInput input{"web", "mc/helm", chart, nullptr, &old, nullptr};
    absl::StatusOr<ObjectSet> set = RenderBundlePath(renderer, input);
    EXPECT_TRUE(IsNotDeployed(set.status())) << set.status();
    EXPECT_THAT(std::string(set.status().message()),
                HasSubstr("mc/helm/fleet.yaml: targetCustomizations retired says doNotDeploy for "
                          "this cluster"));
  }
  // A bundle rendered before gitfleet read them renders as it did, and says so.
  notes.clear();
  EXPECT_EQ(render(cluster("prod-1", {{"env", "prod"}}), nullptr, &notes, false),
            ".gitfleet-fleet-yaml-values.yaml=replicas: 1 tier: base |");
  EXPECT_THAT(notes, ::testing::Contains(
                         HasSubstr("give some clusters other helm values; this bundle was rendered "
                                   "before gitfleet read them, and renders as it did")));
  // A target that cannot be read fails by name.
  chart[1].content =
      "targetCustomizations:\n- name: x\n"
      "  clusterSelector: {matchExpressions: [{key: env, operator: Gt, values: ['1']}]}\n"
      "  helm: {values: {a: 1}}\n";
  EXPECT_THAT(render(cluster("a", {}), nullptr),
              HasSubstr("targetCustomizations x: its clusterSelector is not one gitfleet reads"));
  chart[1].content =
      "targetCustomizations:\n- name: y\n  clusterName: a\n  helm: {valuesFiles: [no.yaml]}\n";
  EXPECT_THAT(render(cluster("a", {}), nullptr),
              HasSubstr("targetCustomizations y helm.valuesFiles names no.yaml, which is not in "
                        "mc/helm"));
  // An empty clusterSelector selects every cluster, as in Kubernetes.
  chart[1].content =
      "targetCustomizations:\n- name: all\n  clusterSelector: {}\n  helm: {values: {a: 1}}\n";
  EXPECT_EQ(render(cluster("a", {}), nullptr), ".gitfleet-fleet-yaml-values.yaml=a: 1 |");
}

// Runs the jsonnet CLI with `args` and expects the same objects as `ours`; skips when
// the CLI is not installed.
void ExpectSameAsJsonnetCli(const ObjectSet& ours, std::vector<std::string> args) {
  if (access("/usr/bin/jsonnet", X_OK) != 0) GTEST_SKIP() << "the jsonnet CLI is not installed";
  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin"};
  args.insert(args.begin(), "/usr/bin/jsonnet");
  auto tool = RunSubprocess(args, options);
  ASSERT_TRUE(tool.ok() && tool->exit_code == 0) << tool->stderr_text;
  // The CLI prints a JSON array; as YAML it is a sequence of the same objects.
  ObjectSet theirs;
  YAML::Node array = YAML::Load(tool->stdout_text);
  for (const YAML::Node& item : array) {
    theirs.Put(*MakeObject(*EmitBlockYaml(item), "cli"));
  }
  EXPECT_EQ(Summary(ours), Summary(theirs));
}

TEST(JsonnetRendererTest, MatchesTheJsonnetCliWithImports) {
  Repo repo;
  repo.Add("lib/app.libsonnet", R"(
{
  deployment(name, replicas):: {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: name, namespace: 'shop' },
    spec: { replicas: replicas },
  },
  config(name):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name }, data: { port: '8080' } },
}
)");
  repo.Add("apps/web/main.jsonnet", R"(
local app = import '../../lib/app.libsonnet';
[app.deployment('web', 3), app.config('web-settings')]
)");
  JsonnetRenderer renderer;
  std::vector<std::string> read;
  auto ours = renderer.Render({"web", "apps/web", repo.files, &read});
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_EQ(ours->size(), 2u);
  EXPECT_THAT(read, ::testing::ElementsAre("apps/web", "lib/app.libsonnet"))
      << "not a Tanka or jsonnet-bundler project: no library folders, nothing else read";
  ExpectSameAsJsonnetCli(*ours, {repo.dir + "/apps/web/main.jsonnet"});
}

// Tanka and jsonnet-bundler projects import libraries by their path under vendor/ (or
// lib/), not relative to the importing file: `import 'github.com/acme/k/k.libsonnet'`. In a
// project (the nearest folder up holding tkrc.yaml, else jsonnetfile.json) imports are
// looked for in Tanka's ranks: the environment, ROOT/lib, its own vendor, ROOT/vendor.
TEST(JsonnetRendererTest, ATankaProjectImportsFromItsLibraryFolders) {
  Repo repo;
  repo.Add("jsonnetfile.json", R"({"version": 1, "dependencies": []})");
  repo.Add("vendor/github.com/acme/k/k.libsonnet",
           "{ cm(name):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name }, "
           "data: { from: 'vendor' } } }\n");
  repo.Add("vendor/shadow.libsonnet", "{ from: 'vendor' }\n");
  repo.Add("lib/shadow.libsonnet", "{ from: 'lib' }\n");
  repo.Add("vendor/env.libsonnet", "{ from: 'root vendor' }\n");
  repo.Add("environments/prod/vendor/env.libsonnet", "{ from: 'environment vendor' }\n");
  repo.Add("environments/prod/main.jsonnet", R"(
local k = import 'github.com/acme/k/k.libsonnet';
local shadow = import 'shadow.libsonnet';
local env = import 'env.libsonnet';
[k.cm('a'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b' },
              data: { shadow: shadow.from, env: env.from } }]
)");
  JsonnetRenderer renderer;
  std::vector<std::string> read;
  auto ours = renderer.Render({"prod", "environments/prod", repo.files, &read});
  ASSERT_TRUE(ours.ok()) << ours.status();
  // lib shadows the project's vendor, and the environment's vendor the project's.
  ObjectSet expected;
  // (Keys in jsonnet's order: sorted.)
  for (const YAML::Node& item : YAML::Load(R"([
      {apiVersion: v1, data: {from: vendor}, kind: ConfigMap, metadata: {name: a}},
      {apiVersion: v1, data: {env: environment vendor, shadow: lib}, kind: ConfigMap,
       metadata: {name: b}}])")) {
    expected.Put(*MakeObject(*EmitBlockYaml(item), "expected"));
  }
  EXPECT_EQ(Summary(*ours), Summary(expected));
  // The jsonnet CLI with the same paths (-J: the right-most wins).
  ExpectSameAsJsonnetCli(*ours, {repo.dir + "/environments/prod/main.jsonnet", "-J",
                                 repo.dir + "/vendor", "-J", repo.dir + "/environments/prod/vendor",
                                 "-J", repo.dir + "/lib", "-J", repo.dir + "/environments/prod"});
  // What it read: where the root was looked for, and every place an import was looked in
  // (a shadowing file added later renders again).
  EXPECT_THAT(
      read, ::testing::IsSupersetOf({"environments/prod/tkrc.yaml", "tkrc.yaml", "jsonnetfile.json",
                                     "vendor/github.com/acme/k/k.libsonnet", "lib/shadow.libsonnet",
                                     "environments/prod/shadow.libsonnet",
                                     "environments/prod/vendor/env.libsonnet"}));
  EXPECT_THAT(read, Not(::testing::Contains("vendor/shadow.libsonnet"))) << "never reached";

  // Not a project: imports are relative to the importing file only, and the error names
  // where it looked.
  Repo plain;
  for (const RepoFile& file : repo.files) {
    if (file.path != "jsonnetfile.json") plain.Add(file.path, file.content);
  }
  auto missing = renderer.Render({"prod", "environments/prod", plain.files});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(missing.status().message()),
      HasSubstr("import \"github.com/acme/k/k.libsonnet\": "
                "environments/prod/github.com/acme/k/k.libsonnet is not in the repository"));
  // A library path never lets an import out of the repository.
  Repo escape;
  escape.Add("jsonnetfile.json", "{}");
  escape.Add("app/main.jsonnet", "import '../../../etc/x.libsonnet'\n");
  auto out = renderer.Render({"app", "app", escape.files});
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("escapes the repository; refused"));
}

// Tanka's inline environments: main.jsonnet returns an Environment whose `data` holds the
// resources (Tanka's own object, never applied). Two in one file is refused, naming them.
TEST(JsonnetRendererTest, ATankaInlineEnvironmentRendersItsData) {
  Repo repo;
  repo.Add("tkrc.yaml", "");
  repo.Add("environments/prod/main.jsonnet", R"(
{
  apiVersion: 'tanka.dev/v1alpha1',
  kind: 'Environment',
  metadata: { name: 'environments/prod' },
  spec: { apiServer: 'https://prod.example:6443', namespace: 'shop' },
  data: {
    web: { deployment: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' } } },
    settings: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' } },
  },
}
)");
  JsonnetRenderer renderer;
  auto ours = renderer.Render({"prod", "environments/prod", repo.files});
  ASSERT_TRUE(ours.ok()) << ours.status();
  ObjectSet expected;
  for (const char* yaml : {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
                           "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"}) {
    expected.Put(*MakeObject(yaml, "expected"));
  }
  EXPECT_EQ(Summary(*ours), Summary(expected)) << "the Environment itself is not applied";
  EXPECT_EQ(ours->default_namespace(), "shop") << "its spec.namespace";

  // An environment without metadata or spec renders too (its data), not throws.
  repo.Add("environments/bare/main.jsonnet",
           "{ apiVersion: 'tanka.dev/v1alpha1', kind: 'Environment', data: { apiVersion: 'v1', "
           "kind: 'ConfigMap', metadata: { name: 'bare' } } }");
  auto bare = renderer.Render({"bare", "environments/bare", repo.files});
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->size(), 1u);
  EXPECT_EQ(bare->default_namespace(), "");
  repo.Add("environments/all/main.jsonnet", R"(
local env(name) = { apiVersion: 'tanka.dev/v1alpha1', kind: 'Environment',
                    metadata: { name: name }, data: { apiVersion: 'v1', kind: 'ConfigMap',
                                                      metadata: { name: name } } };
[env('dev'), env('prod')]
)");
  auto both = renderer.Render({"all", "environments/all", repo.files});
  EXPECT_EQ(both.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(both.status().message()),
              HasSubstr("returns 2 Tanka inline environments (dev, prod); a bundle renders one"));
}

// A Tanka environment's spec.resourceDefaults: labels and annotations every object gets
// unless it sets them itself (spec.json's, or an inline environment's own), as Tanka adds
// them; a List's items each. A shape Tanka cannot read fails the render, naming the file.
TEST(JsonnetRendererTest, ATankaEnvironmentsResourceDefaultsAreAddedWhereObjectsSetNone) {
  Repo repo;
  repo.Add("tkrc.yaml", "");
  repo.Add("environments/prod/main.jsonnet", R"({
  a: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } },
  b: { apiVersion: 'v1', kind: 'ConfigMap',
       metadata: { name: 'b', labels: { team: 'payments' }, annotations: null } },
  c: { apiVersion: 'v1', kind: 'List',
       items: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } }] },
})");
  const std::string spec = R"({
  "apiVersion": "tanka.dev/v1alpha1", "kind": "Environment",
  "spec": { "namespace": "shop",
            "resourceDefaults": { "labels": { "team": "platform", "env": "prod" },
                                  "annotations": { "owner": "sre@example.com" } } }
})";
  repo.Add("environments/prod/spec.json", spec);
  JsonnetRenderer renderer;
  std::vector<std::string> notes;
  RenderInput input{"prod", "environments/prod", repo.files};
  input.notes = &notes;
  auto prod = renderer.Render(input);
  ASSERT_TRUE(prod.ok()) << prod.status();
  std::map<std::string, std::string> content;
  for (const auto& [key, object] : prod->objects()) content[object->key().name()] = object->yaml();
  ASSERT_EQ(content.size(), 3u);
  for (const char* name : {"a", "c"}) {
    EXPECT_THAT(content[name], HasSubstr("team: platform")) << name;
    EXPECT_THAT(content[name], HasSubstr("env: prod")) << name;
    EXPECT_THAT(content[name], HasSubstr("owner: sre@example.com")) << name;
  }
  EXPECT_THAT(content["b"], HasSubstr("team: payments")) << "its own label wins";
  EXPECT_THAT(content["b"], Not(HasSubstr("team: platform")));
  EXPECT_THAT(content["b"], HasSubstr("env: prod"));
  EXPECT_THAT(content["b"], HasSubstr("owner: sre@example.com"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "environments/prod/spec.json: spec.resourceDefaults: label env, label "
                         "team, annotation owner added to every object that sets none")));

  // An inline environment's own.
  Repo inline_repo;
  inline_repo.Add("env/main.jsonnet", R"({
  apiVersion: 'tanka.dev/v1alpha1', kind: 'Environment', metadata: { name: 'dev' },
  spec: { resourceDefaults: { labels: { env: 'dev' } } },
  data: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } },
})");
  auto dev = renderer.Render({"dev", "env", inline_repo.files});
  ASSERT_TRUE(dev.ok()) << dev.status();
  ASSERT_EQ(dev->size(), 1u);
  EXPECT_THAT(dev->objects().begin()->second->yaml(), HasSubstr("env: dev"));

  for (const auto& [defaults, says] : std::vector<std::pair<std::string, std::string>>{
           {R"("resourceDefaults": ["a"])", "spec.resourceDefaults is not a mapping"},
           {R"("resourceDefaults": {"labels": "a=b"})",
            "spec.resourceDefaults.labels is not a mapping"},
           {R"("resourceDefaults": {"annotations": {"a": {"b": "c"}}})",
            "spec.resourceDefaults.annotations: each entry must be a string"},
           {R"("resourceDefaults": {"labels": {"bad key!": "x"}})", "spec.resourceDefaults.labels"},
       }) {
    repo.Add("environments/prod/spec.json",
             absl::StrCat(R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", )",
                          R"("spec": {)", defaults, "}}"));
    auto bad = renderer.Render({"prod", "environments/prod", repo.files});
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << defaults;
    EXPECT_THAT(std::string(bad.status().message()),
                HasSubstr(absl::StrCat("environments/prod/spec.json: ", says)))
        << defaults;
  }
}

// A Tanka environment's spec.json names the namespace `tk apply` puts namespaced objects
// in when they name none; the render says so as its default namespace. A spec.json that
// is not Tanka's is none of its business; one that cannot be read, or names a namespace
// Kubernetes refuses, fails the render rather than move the objects elsewhere.
TEST(JsonnetRendererTest, ATankaEnvironmentsSpecNamesItsDefaultNamespace) {
  Repo repo;
  repo.Add("tkrc.yaml", "");
  repo.Add(
      "environments/prod/main.jsonnet",
      "{ settings: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' } } }\n");
  repo.Add("environments/prod/spec.json", R"({
  "apiVersion": "tanka.dev/v1alpha1",
  "kind": "Environment",
  "metadata": { "name": "environments/prod" },
  "spec": { "apiServer": "https://prod.example:6443", "namespace": "shop",
            "resourceDefaults": {}, "expectVersions": {} }
})");
  JsonnetRenderer renderer;
  std::vector<std::string> notes;
  RenderInput input{"prod", "environments/prod", repo.files};
  input.notes = &notes;
  auto prod = renderer.Render(input);
  ASSERT_TRUE(prod.ok()) << prod.status();
  EXPECT_EQ(prod->default_namespace(), "shop");
  EXPECT_EQ(prod->size(), 1u);
  EXPECT_THAT(notes, ::testing::ElementsAre(
                         HasSubstr("namespaced objects that name no namespace go to shop "
                                   "(environments/prod/spec.json: spec.namespace)")));

  // No namespace in the spec, a spec that is someone else's, or none at all: no default.
  for (
      const char* spec :
      {R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "spec": {}})",
       R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "spec": {"namespace": null}})",
       R"({"openapi": "3.0.0", "spec": {"namespace": "elsewhere"}})"}) {
    repo.Add("environments/prod/spec.json", spec);
    auto plain = renderer.Render({"prod", "environments/prod", repo.files});
    ASSERT_TRUE(plain.ok()) << spec << ": " << plain.status();
    EXPECT_EQ(plain->default_namespace(), "") << spec;
  }
  Repo bare;
  bare.Add("app/main.jsonnet", "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } }");
  auto none = renderer.Render({"app", "app", bare.files});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->default_namespace(), "");

  const std::pair<const char*, const char*> kBad[] = {
      {R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "spec": {"namespace": "Shop_1"}})",
       "environments/prod/spec.json: spec.namespace: namespace name \"Shop_1\""},
      {R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "spec": {"namespace": ["a"]}})",
       "environments/prod/spec.json: spec.namespace is not a string"},
      {R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "spec": {)",
       "a Tanka environment's spec: environments/prod/spec.json:1: invalid YAML"},
  };
  for (const auto& [spec, error] : kBad) {
    repo.Add("environments/prod/spec.json", spec);
    auto bad = renderer.Render({"prod", "environments/prod", repo.files});
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(error)) << spec;
  }

  // An inline environment beside a spec.json that disagrees: which one is meant is unclear.
  repo.Add(
      "environments/prod/spec.json",
      R"({"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment", "spec": {"namespace": "shop"}})");
  repo.Add("environments/prod/main.jsonnet", R"({
  apiVersion: 'tanka.dev/v1alpha1', kind: 'Environment', metadata: { name: 'prod' },
  spec: { namespace: 'store' },
  data: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' } },
})");
  auto disagree = renderer.Render({"prod", "environments/prod", repo.files});
  EXPECT_THAT(std::string(disagree.status().message()),
              HasSubstr("Tanka environments disagree on the namespace: "
                        "environments/prod/spec.json says shop, the inline environment of "
                        "environments/prod/main.jsonnet says store"));
}

TEST(JsonnetRendererTest, ADirectoryWithoutMainJsonnetEvaluatesEveryJsonnetFile) {
  // Argo CD's guestbook layout: an entry file of any name beside a params library.
  Repo repo;
  repo.Add("guestbook/params.libsonnet", "{ replicas: 2, name: 'guestbook-ui' }\n");
  repo.Add("guestbook/guestbook-ui.jsonnet", R"(
local params = import 'params.libsonnet';
[
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: params.name },
    spec: { replicas: params.replicas } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: params.name } },
]
)");
  repo.Add("guestbook/extra.jsonnet",
           "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'extra' } }\n");
  repo.Add("guestbook/sub/ignored.jsonnet", "error 'subdirectories are not entries'\n");
  EXPECT_EQ(DetectEngine("guestbook", repo.files), "jsonnet");
  EXPECT_THAT(JsonnetEntryFiles("guestbook", repo.files),
              ::testing::ElementsAre("guestbook/extra.jsonnet", "guestbook/guestbook-ui.jsonnet"));
  JsonnetRenderer renderer;
  std::vector<std::string> read;
  auto ours = renderer.Render({"guestbook", "guestbook", repo.files, &read});
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_EQ(ours->size(), 3u);
  EXPECT_THAT(read, ::testing::Contains("guestbook/params.libsonnet"));
  // Object for object what the jsonnet CLI makes of the two files.
  if (access("/usr/bin/jsonnet", X_OK) != 0) GTEST_SKIP() << "the jsonnet CLI is not installed";
  ObjectSet theirs;
  for (const char* file : {"extra.jsonnet", "guestbook-ui.jsonnet"}) {
    SubprocessOptions options;
    options.env = {"PATH=/usr/bin:/bin"};
    auto tool = RunSubprocess({"/usr/bin/jsonnet", repo.dir + "/guestbook/" + file}, options);
    ASSERT_TRUE(tool.ok() && tool->exit_code == 0) << tool->stderr_text;
    YAML::Node value = YAML::Load(tool->stdout_text);
    if (value.IsSequence()) {
      for (const YAML::Node& item : value) theirs.Put(*MakeObject(*EmitBlockYaml(item), "cli"));
    } else {
      theirs.Put(*MakeObject(*EmitBlockYaml(value), "cli"));
    }
  }
  EXPECT_EQ(Summary(*ours), Summary(theirs));
  // A plain directory of YAML stays plain.
  EXPECT_EQ(DetectEngine("p", {{"p/a.yaml", ""}, {"p/lib.libsonnet", ""}}), "plain");
}

TEST(JsonnetRendererTest, ExtVarsAndTopLevelArgumentsMatchTheJsonnetCli) {
  Repo repo;
  repo.Add("lib/app.libsonnet", R"(
{
  config(name, env):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name + '-' + env } },
}
)");
  repo.Add("apps/web/main.jsonnet", R"(
local app = import '../../lib/app.libsonnet';
function(replicas, region='none') [
  app.config('web', std.extVar('env')),
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' },
    spec: { replicas: std.parseInt(replicas) }, region:: region },
]
)");
  JsonnetRenderer renderer;
  Values values = {{"env", "prod"}, {"count", "3"}, {"unused", "x"}};
  ReadValues read;
  auto ours = renderer.Render(
      {"web", "apps/web", repo.files, nullptr, &values, &read, {"replicas=count"}, {}});
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_EQ(ours->size(), 2u);
  EXPECT_EQ(read, (ReadValues{{"env", "prod"}, {"count", "3"}}))
      << "lazy: a value the program never used is not a dependency";
  Values missing_env = {{"count", "3"}};
  ReadValues missing_read;
  auto missing = renderer.Render({"web",
                                  "apps/web",
                                  repo.files,
                                  nullptr,
                                  &missing_env,
                                  &missing_read,
                                  {"replicas=count"},
                                  {}});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("env"));
  EXPECT_EQ(missing_read.count("env"), 1u) << "the absent value is a dependency too";
  Values no_count = {{"env", "prod"}};
  auto no_tla = renderer.Render(
      {"web", "apps/web", repo.files, nullptr, &no_count, nullptr, {"replicas=count"}, {}});
  EXPECT_THAT(std::string(no_tla.status().message()),
              HasSubstr("top-level argument replicas: no value \"count\""));

  ExpectSameAsJsonnetCli(*ours, {"--ext-str", "env=prod", "--ext-str", "unused=x", "--tla-str",
                                 "replicas=3", repo.dir + "/apps/web/main.jsonnet"});
}

// What Tanka environments and the libraries they vendor call through std.native, answered
// as Tanka answers it: a repository written for Tanka renders as `tk show` shows it.
TEST(JsonnetRendererTest, TankasNativeFunctionsAnswerAsTankaDoes) {
  Repo repo;
  repo.Add("tkrc.yaml", "");
  repo.Add("environments/prod/crds.yaml",
           "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
           "metadata: {name: widgets.example.com, annotations: {v: \"1.0\"}}\n---\n---\n"
           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\n---\n");
  // A vendored library calling it through a local, as tanka-util does.
  repo.Add("lib/util.libsonnet",
           "local parseYaml = std.native( \"parseYaml\" );\n"
           "{ fromYaml(text):: parseYaml(text) }\n");
  repo.Add("environments/prod/main.jsonnet", R"(
local util = import 'util.libsonnet';
local crds = util.fromYaml(importstr 'crds.yaml');
{
  crds: crds,
  cm: {
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'natives' },
    data: {
      count: std.toString(std.length(crds)),
      single: std.toString(std.native('parseYaml')('a: 1')),
      stdOne: std.toString(std.parseYaml('a: 1')),
      stdStream: std.toString(std.parseYaml('a: 1\n---\nb: 2\n')),
      json: std.toString(std.native('parseJson')('{"b": [1, "x", null, true]}')),
      yaml: std.native('manifestYamlFromJson')('{"port": "8080", "on": true, "l": [1]}'),
      indented: std.native('manifestJsonFromJson')('{"z": 1, "a": [2]}', 2),
      sha: std.native('sha256')('abc'),
      escaped: std.native('escapeStringRegex')('a.b*c[d]'),
      matches: std.toString(std.native('regexMatch')('^v[0-9]+$', 'v12')),
      differs: std.toString(std.native('regexMatch')('^v[0-9]+$', 'v1x')),
      subst: std.native('regexSubst')('(?P<major>[0-9]+)\\.([0-9]+)', 'v1.25, 2.3', '${major}-$2$$'),
      empty: std.native('regexSubst')('x*', 'abc', '-'),
    },
  },
})");
  for (bool isolate : {true, false}) {
    JsonnetOptions options;
    options.isolate = isolate;
    JsonnetRenderer renderer(options);
    absl::StatusOr<ObjectSet> set = renderer.Render({"prod", "environments/prod", repo.files});
    ASSERT_TRUE(set.ok()) << set.status();
    std::map<std::string, std::string> yaml;
    for (const auto& [key, object] : set->objects()) yaml[object->key().name()] = object->yaml();
    ASSERT_EQ(yaml.count("widgets.example.com"), 1u) << "parseYaml's documents are objects";
    ASSERT_EQ(yaml.count("second"), 1u);
    EXPECT_THAT(yaml["widgets.example.com"], HasSubstr("v: \"1.0\""))
        << "a quoted string stays one";
    const std::string& cm = yaml["natives"];
    EXPECT_THAT(cm, HasSubstr("count: \"2\"")) << "empty documents are none";
    EXPECT_THAT(cm, HasSubstr(R"(single: "[{\"a\": 1}]")")) << "Tanka's: always an array";
    EXPECT_THAT(cm, HasSubstr(R"(stdOne: "{\"a\": 1}")")) << "jsonnet's: one document itself";
    EXPECT_THAT(cm, HasSubstr(R"(stdStream: "[{\"a\": 1}, {\"b\": 2}]")"))
        << "a stream without a leading --- (libjsonnet 0.18's own aborts on it)";
    EXPECT_THAT(cm, HasSubstr(R"(json: "{\"b\": [1, \"x\", null, true]}")"));
    EXPECT_THAT(cm, HasSubstr(R"(yaml: "l:\n  - 1\n\"on\": true\nport: \"8080\"\n")"));
    EXPECT_THAT(cm, HasSubstr(R"(indented: "{\n  \"z\": 1,\n  \"a\": [\n    2\n  ]\n}\n")"));
    EXPECT_THAT(cm,
                HasSubstr("sha: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    EXPECT_THAT(cm, HasSubstr(R"(escaped: a\.b\*c\[d\])"));
    EXPECT_THAT(cm, HasSubstr("matches: \"true\""));
    EXPECT_THAT(cm, HasSubstr("differs: \"false\""));
    EXPECT_THAT(cm, HasSubstr("subst: v1-25$, 2-3$")) << "Go's template: ${name}, $2, $$";
    EXPECT_THAT(cm, HasSubstr("empty: \"-a-b-c-\"")) << "Go's ReplaceAll around empty matches";
  }

  // Bad input is an error naming the function, never a crash of the render.
  for (const auto& [call, why] : std::vector<std::pair<std::string, std::string>>{
           {"std.native('parseYaml')('a: [')", "std.native('parseYaml'):1: invalid YAML"},
           {"std.native('parseYaml')('a: &a [*a]')", "parseYaml"},
           {"std.native('manifestJsonFromJson')('{', 2)", "not JSON"},
           {"std.native('parseJson')('" + std::string(300, '[') + "')",
            "std.native('parseJson'): the JSON nests deeper than 256 levels"},
           {"std.native('manifestJsonFromJson')('" + std::string(300, '[') + "', 2)",
            "nests deeper than 256 levels"},
           {"std.native('regexMatch')('(', 'x')", "regular expression \"(\""},
           {"std.native('sha256')(1)", "str must be a string"},
           {"std.native('helmTemplate')('x', './chart', {})", "render the chart as a bundle"},
           {"std.native(\"kustomizeBuild\")('.')", "render the kustomization as a bundle"},
       }) {
    Repo bad;
    bad.Add("j/main.jsonnet",
            "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { v: "
            "std.toString(" +
                call + ") } }");
    absl::StatusOr<ObjectSet> set = JsonnetRenderer().Render({"b", "j", bad.files});
    EXPECT_FALSE(set.ok()) << call;
    EXPECT_THAT(std::string(set.status().message()), HasSubstr(why)) << call;
    EXPECT_THAT(std::string(set.status().message()), Not(HasSubstr("signal"))) << call;
  }
}

TEST(JsonnetRendererTest, InProcessRendersTheSame) {
  std::vector<RepoFile> files = {
      {"j/main.jsonnet",
       "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: std.extVar('n') } }"}};
  Values values = {{"n", "x"}};
  JsonnetOptions in_process;
  in_process.isolate = false;
  ReadValues read_child, read_in_process;
  auto child = JsonnetRenderer().Render({"b", "j", files, nullptr, &values, &read_child});
  auto direct =
      JsonnetRenderer(in_process).Render({"b", "j", files, nullptr, &values, &read_in_process});
  ASSERT_TRUE(child.ok() && direct.ok());
  EXPECT_EQ(Summary(*child), Summary(*direct));
  EXPECT_EQ(read_child, read_in_process);
}

TEST(JsonnetRendererTest, AProgramThatRunsTooLongIsStoppedAtTheTimeout) {
  JsonnetRenderer renderer({absl::Seconds(1), {}});
  // Exponential work at a shallow depth: the stack limit does not stop it, the clock does.
  std::vector<RepoFile> files = {
      {"slow/main.jsonnet", "local f(n) = if n == 0 then 0 else f(n - 1) + f(n - 1); f(60)"}};
  absl::Time start = absl::Now();
  auto result = renderer.Render({"b", "slow", files});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("slow/main.jsonnet"));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("did not finish within 1s"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  // The renderer is fine afterwards.
  auto ok = renderer.Render(
      {"b",
       "",
       {{"main.jsonnet", "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }"}}});
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(HelmValuesPathTest, AnywhereInTheRepositoryNeverOutside) {
  EXPECT_EQ(*HelmValuesPath("charts/web", "values.yaml"), "charts/web/values.yaml");
  EXPECT_EQ(*HelmValuesPath("charts/web/", "./prod/../prod/v.yaml"), "charts/web/prod/v.yaml");
  EXPECT_EQ(*HelmValuesPath("charts/web", "../../envs/prod.yaml"), "envs/prod.yaml");
  EXPECT_EQ(*HelmValuesPath("", "envs//prod.yaml"), "envs/prod.yaml");
  for (const auto& [folder, file] :
       std::vector<std::pair<std::string, std::string>>{{"charts/web", "../../../x.yaml"},
                                                        {"", "../x.yaml"},
                                                        {"charts/web", "/etc/passwd"},
                                                        {"charts/web", ""},
                                                        {"charts/web", "../.."},
                                                        {"charts/web", std::string(1025, 'a')}}) {
    EXPECT_TRUE(absl::IsInvalidArgument(HelmValuesPath(folder, file).status())) << file;
  }
}

TEST(HelmTemplateArgsTest, ValuesFilesThenEscapedValues) {
  auto args = HelmTemplateArgs("/usr/local/bin/helm", "web", "/tmp/c/charts/web", "shop",
                               "/tmp/c/charts/web", {"values-prod.yaml"},
                               {{"image.tag", "1.2"}, {"list", "a,b"}});
  ASSERT_TRUE(args.ok());
  EXPECT_THAT(*args,
              ::testing::ElementsAre("/usr/local/bin/helm", "template", "web", "/tmp/c/charts/web",
                                     "--include-crds", "--namespace=shop",
                                     "--values=/tmp/c/charts/web/values-prod.yaml",
                                     "--set-string=image.tag=1.2", "--set-string=list=a\\,b"));
  // Without a namespace helm's own default holds.
  EXPECT_THAT(*HelmTemplateArgs("helm", "web", "/c", "", "/c", {}, {}),
              ::testing::ElementsAre("helm", "template", "web", "/c", "--include-crds"));
  EXPECT_FALSE(HelmTemplateArgs("helm", "web", "/c", "", "/c", {"../x.yaml"}, {}).ok());
  EXPECT_FALSE(HelmTemplateArgs("helm", "web", "/c", "", "/c", {"/etc/x.yaml"}, {}).ok());
  EXPECT_FALSE(HelmTemplateArgs("helm", "web", "/c", "", "/c", {}, {{"a=b", "c"}}).ok());
  // Argo CD's helm.parameters after the values, typed unless forceString, as Argo CD
  // escapes them (a `{a,b}` list kept).
  EXPECT_THAT(*HelmTemplateArgs("helm", "web", "/c", "", "/c", {}, {{"image.tag", "1"}}, {},
                                {{"image.tag", "2.0", true},
                                 {"hosts", "{a,b}", false},
                                 {"ingress.hosts[0].host", "a,b", false}}),
              ::testing::ElementsAre("helm", "template", "web", "/c", "--include-crds",
                                     "--set-string=image.tag=1", "--set-string=image.tag=2.0",
                                     "--set=hosts={a,b}", "--set=ingress.hosts[0].host=a\\,b"));
  // Argo CD's fileParameters last, each file in the values folder, never outside it.
  EXPECT_THAT(*HelmTemplateArgs("helm", "web", "/c", "", "/s", {}, {}, {}, {},
                                {{"config", "charts/web/files/a,b.conf"}}),
              ::testing::ElementsAre("helm", "template", "web", "/c", "--include-crds",
                                     "--set-file=config=/s/charts/web/files/a\\,b.conf"));
  EXPECT_FALSE(
      HelmTemplateArgs("helm", "web", "/c", "", "/s", {}, {}, {}, {}, {{"config", "../x.conf"}})
          .ok());
  EXPECT_FALSE(
      HelmTemplateArgs("helm", "web", "/c", "", "/s", {}, {}, {}, {}, {{"a=b", "x.conf"}}).ok());
  // Argo CD's skipCrds: the chart's crds/ folder left out.
  EXPECT_THAT(*HelmTemplateArgs("helm", "web", "/c", "", "/s", {}, {}, {}, {}, {}, HelmSkips{true}),
              ::testing::ElementsAre("helm", "template", "web", "/c"));
  // skipTests and skipSchemaValidation: helm's own flags for them.
  EXPECT_THAT(*HelmTemplateArgs("helm", "web", "/c", "", "/s", {}, {}, {}, {}, {},
                                HelmSkips{false, true, true}),
              ::testing::ElementsAre("helm", "template", "web", "/c", "--include-crds",
                                     "--skip-tests", "--skip-schema-validation"));
  // What the chart sees of the cluster.
  EXPECT_THAT(*HelmTemplateArgs("helm", "web", "/c", "", "/c", {}, {},
                                {"v1.30.2", {"monitoring.coreos.com/v1", "v1/Service"}}),
              ::testing::ElementsAre(
                  "helm", "template", "web", "/c", "--include-crds", "--kube-version=v1.30.2",
                  "--api-versions=monitoring.coreos.com/v1", "--api-versions=v1/Service"));
  for (const char* version : {"1.29", "v1.30.2", "1.28.3-gke.100", "1.27.1+k3s1"}) {
    EXPECT_TRUE(CheckHelmCapabilities(version, {}).ok()) << version;
  }
  for (const char* version : {"latest", "1", "v1.x", "1.29 --set a=b", "--kube-version=1"}) {
    EXPECT_FALSE(CheckHelmCapabilities(version, {}).ok()) << version;
  }
  for (const char* api : {"v1", "apps/v1", "monitoring.coreos.com/v1/ServiceMonitor",
                          "autoscaling/v2beta2", "policy/v1beta1/PodDisruptionBudget"}) {
    EXPECT_TRUE(CheckHelmCapabilities("", {api}).ok()) << api;
  }
  for (const char* api : {"", "apps", "Apps/v1", "apps/v1/", "a b/v1", "apps/v1/Kind/x", "--set=x",
                          "monitoring.coreos.com/1"}) {
    absl::Status s = CheckHelmCapabilities("", {api});
    EXPECT_FALSE(s.ok()) << api;
    EXPECT_THAT(std::string(s.message()), HasSubstr("--api-versions")) << api;
  }
  EXPECT_FALSE(CheckHelmCapabilities("", std::vector<std::string>(501, "v1")).ok());
}

TEST(JsonnetRendererTest, ObjectOfObjectsAndErrors) {
  JsonnetRenderer renderer;
  auto map = renderer.Render({"b", "", {{"main.jsonnet", R"({
    b: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b' } },
    a: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } },
  })"}}});
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->size(), 2u);

  auto syntax = renderer.Render({"b", "x", {{"x/main.jsonnet", "{ a: \n"}}});
  EXPECT_EQ(syntax.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(syntax.status().message()), HasSubstr("x/main.jsonnet:"));

  auto escape = renderer.Render({"b", "x", {{"x/main.jsonnet", "import '../../etc/passwd'"}}});
  EXPECT_THAT(std::string(escape.status().message()), HasSubstr("escapes the repository"));
  auto absolute = renderer.Render({"b", "x", {{"x/main.jsonnet", "import '/etc/passwd'"}}});
  EXPECT_THAT(std::string(absolute.status().message()), HasSubstr("absolute paths are refused"));
  auto missing = renderer.Render({"b", "x", {{"x/lib.libsonnet", "{}"}}});
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("no main.jsonnet and no other *.jsonnet file in x"));
}

}  // namespace
}  // namespace gitfleet

namespace gitfleet {
namespace {

// Fleet's post-render adds the chart's output to the kustomization once, first; what it
// writes back reads as a kustomization again, or the rewrite fails saying so (a fuzzer
// found bytes yaml-cpp reads but writes back in a form it cannot read).
TEST(WithChartOutputResourceTest, WritesWhatReadsBackOrSaysSo) {
  absl::StatusOr<std::string> with =
      WithChartOutputResource("k.yaml", "namePrefix: shop-\nresources: [a.yaml]\n");
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_THAT(*with, HasSubstr("- fleet-manifests.yaml\n  - a.yaml"));
  EXPECT_EQ(*WithChartOutputResource("k.yaml", *with), *with) << "once";
  const std::string odd("resources:\n- c\n...\0 \xff\xff\xff\xff\xff\xff", 26);
  EXPECT_THAT(WithChartOutputResource("k.yaml", odd).status().message(),
              HasSubstr("k.yaml: cannot be written back with the chart's output: it holds "
                        "characters YAML cannot write"));
}

}  // namespace
}  // namespace gitfleet
