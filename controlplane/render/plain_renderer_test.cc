#include "controlplane/render/plain_renderer.h"

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/model/revision.h"
#include "controlplane/render/renderer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The fields a render leaves to others, as --ignore-difference writes them.
std::vector<std::string> IgnoreRules(const ObjectSet& set) {
  std::vector<std::string> rules;
  for (const v1::IgnoreDifference& rule : set.ignore_differences()) {
    rules.push_back(DescribeIgnoreDifference(rule));
  }
  return rules;
}

std::string Cm(const std::string& name) {
  return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"" + name + "\"}\n";
}

TEST(PlainRendererTest, RendersYamlAndJsonRecursivelyAndSkipsOtherFiles) {
  PlainRenderer renderer;
  auto set =
      renderer.Render({"web",
                       "apps/web",
                       {{"apps/web/README.md", "not yaml: ["},
                        {"apps/web/a.yaml", Cm("a") + "---\n" + Cm("b")},
                        {"apps/web/sub/c.json",
                         R"({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c"}})"},
                        {"apps/web/sub/d.yml", Cm("d")}}});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 4u);
  EXPECT_EQ(set->objects().count("/Secret//c"), 1u);
}

// A repository that keeps a manifest in Git LFS holds a three-line pointer in its place
// (checkouts without git-lfs see the same): named as such, not "document is not a mapping".
TEST(PlainRendererTest, AGitLfsPointerIsNamedAsOne) {
  const std::string pointer =
      "version https://git-lfs.github.com/spec/v1\n"
      "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
      "size 12345\n";
  EXPECT_TRUE(IsLfsPointer(pointer));
  EXPECT_FALSE(IsLfsPointer(Cm("a")));
  EXPECT_FALSE(IsLfsPointer("version: https://git-lfs.github.com/spec/v1\n"));
  PlainRenderer renderer;
  auto set = renderer.Render(
      {"web", "apps/web", {{"apps/web/a.yaml", Cm("a")}, {"apps/web/big.yaml", pointer}}});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(set.status().message()),
              HasSubstr("apps/web/big.yaml is a Git LFS pointer, not the file"));
  // A pointer that is not a manifest (an image kept in LFS) is no manifest to read.
  set = renderer.Render(
      {"web", "apps/web", {{"apps/web/a.yaml", Cm("a")}, {"apps/web/logo.png", pointer}}});
  EXPECT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(
      LfsPointerHint(
          {{"apps/web/a.yaml", Cm("a")}, {"apps/web/big.yaml", pointer}, {"other/x.yaml", pointer}},
          "apps/web"),
      " (apps/web/big.yaml is a Git LFS pointer: give the source --lfs to read files kept in "
      "Git LFS)");
  EXPECT_EQ(LfsPointerHint({{"apps/web/a.yaml", Cm("a")}}, ""), "");
}

// Rancher Fleet's fleet.yaml in a bundle's folder says where its objects go:
// defaultNamespace for those that name none, namespace for every one (Fleet moves those
// that name another). A repository moved from Fleet lands where it did there.
// Only a plain bundle's files are chosen by patterns: another engine reads what its entry
// file names, and a pattern there would do nothing.
TEST(RenderBundlePathTest, IncludeAndExcludeAreForPlainBundlesOnly) {
  class OtherEngine : public Renderer {
   public:
    const char* engine() const override { return "kustomize"; }
    absl::StatusOr<ObjectSet> Render(const RenderInput&) override { return ObjectSet(); }
  } other;
  std::vector<RepoFile> files = {{"apps/web/kustomization.yaml", "resources: []\n"}};
  RenderInput input{"web", "apps/web", files};
  input.exclude = {"*.json"};
  EXPECT_THAT(std::string(RenderBundlePath(other, input).status().message()),
              HasSubstr("--include and --exclude choose the files of a plain bundle; apps/web "
                        "renders with kustomize"));
  input.exclude.clear();
  EXPECT_TRUE(RenderBundlePath(other, input).ok());
}

// Argo CD's overrides that do not parse fail the render of a bundle that reads them, naming
// the file; a bundle rendered before gitfleet read them renders as it did.
TEST(RenderBundlePathTest, ArgoCdOverridesThatDoNotParseFailOnlyBundlesThatReadThem) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {{"apps/web/a.yaml", Cm("a")},
                                 {"apps/web/.argocd-source.yaml", "helm: [\n"}};
  RenderInput input{"web", "apps/web", files};
  EXPECT_THAT(std::string(RenderBundlePath(renderer, input).status().message()),
              HasSubstr("apps/web/.argocd-source.yaml"));
  input.reads_argocd_source = false;
  absl::StatusOr<ObjectSet> objects = RenderBundlePath(renderer, input);
  ASSERT_TRUE(objects.ok()) << objects.status();
  EXPECT_EQ(objects->size(), 1u);
}

TEST(RenderBundlePathTest, FleetYamlSaysWhereTheObjectsGo) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {
      {"apps/web/a.yaml", Cm("a")},
      {"apps/web/b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: ops}\n"},
      {"apps/web/fleet.yaml", "defaultNamespace: web\nhelm: {releaseName: x}\n"},
      // Another folder's options are not this bundle's.
      {"apps/web/sub/fleet.yaml", "namespace: elsewhere\n"},
  };
  auto keys = [](const ObjectSet& set) {
    std::vector<std::string> out;
    for (const auto& [key, object] : set.objects()) out.push_back(key);
    return out;
  };
  std::vector<std::string> notes;
  RenderInput input{"web", "apps/web", files};
  input.notes = &notes;
  auto by_default = RenderBundlePath(renderer, input);
  ASSERT_TRUE(by_default.ok()) << by_default.status();
  EXPECT_EQ(by_default->default_namespace(), "web");
  EXPECT_THAT(keys(*by_default), ::testing::ElementsAre("/ConfigMap//a", "/ConfigMap/ops/b"));
  EXPECT_THAT(notes, ::testing::Contains(
                         HasSubstr("namespaced objects that name no namespace go to web "
                                   "(apps/web/fleet.yaml: defaultNamespace), unless the bundle has "
                                   "--namespace")));

  // `namespace` is forced: b moves from ops (its text says so too).
  files[2].content = "namespace: shop\ndefaultNamespace: web\n";
  notes.clear();
  auto forced = RenderBundlePath(renderer, input);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ(forced->default_namespace(), "shop");
  EXPECT_THAT(keys(*forced), ::testing::ElementsAre("/ConfigMap//a", "/ConfigMap/shop/b"));
  EXPECT_THAT(forced->objects().at("/ConfigMap/shop/b")->yaml(), HasSubstr("namespace: shop"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "every namespaced object goes to shop (apps/web/fleet.yaml: namespace), "
                         "unless the bundle has --namespace; moved there: ConfigMap ops/b")));

  // A bundle placed before gitfleet read fleet.yaml: noted, not used, nothing moved.
  RenderInput placed_before = input;
  placed_before.declared_namespace = false;
  notes.clear();
  auto kept = RenderBundlePath(renderer, placed_before);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->default_namespace(), "");
  EXPECT_THAT(keys(*kept), ::testing::ElementsAre("/ConfigMap//a", "/ConfigMap/ops/b"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "apps/web/fleet.yaml: namespace says namespaced objects that name none "
                         "go to shop; this bundle was placed before gitfleet read that")));

  // The bundle's own --namespace is the operator's word: fleet.yaml is not read.
  RenderInput own = input;
  own.target_namespace = "mine";
  auto operators = RenderBundlePath(renderer, own);
  ASSERT_TRUE(operators.ok()) << operators.status();
  EXPECT_EQ(operators->default_namespace(), "");
  EXPECT_THAT(keys(*operators), ::testing::ElementsAre("/ConfigMap//a", "/ConfigMap/ops/b"));

  // Moving two objects of one name into one namespace would make one of two: refused.
  files.push_back({"apps/web/c.yaml",
                   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: dev}\n"});
  auto collide = RenderBundlePath(renderer, {"web", "apps/web", files});
  EXPECT_EQ(collide.status().code(), absl::StatusCode::kAlreadyExists) << collide.status();
  files.pop_back();

  // Options that cannot be read fail the render, rather than put the objects elsewhere.
  const std::pair<const char*, const char*> kBad[] = {
      {"namespace: [",
       "Rancher Fleet's bundle options, read for their namespace: apps/web/fleet.yaml:1: "
       "invalid YAML"},
      {"- a\n", "apps/web/fleet.yaml (Rancher Fleet's bundle options) is not a mapping"},
      {"defaultNamespace: Web_1\n",
       "apps/web/fleet.yaml: defaultNamespace: namespace name \"Web_1\" must be"},
      {"namespace: {a: b}\n", "apps/web/fleet.yaml: namespace is not a string"},
  };
  for (const auto& [text, error] : kBad) {
    files[2].content = text;
    auto bad = RenderBundlePath(renderer, {"web", "apps/web", files});
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(error)) << text;
  }
  // fleet.yaml's kustomize.dir is the folder rendered, which must be there.
  files[2].content = "kustomize: {dir: overlays/prod}\nhelm: {releaseName: x}\npaused: false\n";
  EXPECT_THAT(
      std::string(RenderBundlePath(renderer, {"web", "apps/web", files}).status().message()),
      HasSubstr("apps/web/fleet.yaml: kustomize.dir names overlays/prod, which is no "
                "folder of files in apps/web"));
  // For a bundle rendered before gitfleet read it, options Fleet reads and gitfleet does not
  // are named; a render that fails while fleet.yaml says Fleet renders another folder says
  // so too.
  notes.clear();
  RenderInput before{"web", "apps/web", files, nullptr, nullptr, nullptr, {}, {}, &notes};
  before.reads_fleet_target_folders = false;
  auto noted = RenderBundlePath(renderer, before);
  ASSERT_TRUE(noted.ok()) << noted.status();
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "apps/web/fleet.yaml sets helm, kustomize, which gitfleet does not read: "
                         "the bundle's own flags do that work")));
  files.push_back({"apps/web/settings.yaml", "replicas: 3\n"});
  before.notes = nullptr;
  auto elsewhere = RenderBundlePath(renderer, before);
  EXPECT_EQ(elsewhere.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(elsewhere.status().message()), HasSubstr("apps/web/settings.yaml"));
  EXPECT_THAT(std::string(elsewhere.status().message()),
              HasSubstr("(apps/web/fleet.yaml sets kustomize.dir overlays/prod: Fleet renders "
                        "that, gitfleet renders the bundle's --path as it is"));
  files.pop_back();
  // Fields of another shape than Fleet's are named, never thrown out of yaml-cpp.
  files[2].content = "kustomize: [a]\nhelm: x\nnamespace: {a: [b]}\n";
  auto shapes = RenderBundlePath(renderer, {"web", "apps/web", files});
  EXPECT_THAT(std::string(shapes.status().message()),
              HasSubstr("apps/web/fleet.yaml: namespace is not a string"));
  // Empty, or neither field: as without one.
  for (const char* text : {"", "helm: {releaseName: x}\n", "defaultNamespace: \"\"\n"}) {
    files[2].content = text;
    auto plain = RenderBundlePath(renderer, {"web", "apps/web", files});
    ASSERT_TRUE(plain.ok()) << text << ": " << plain.status();
    EXPECT_EQ(plain->default_namespace(), "") << text;
  }
}

// Fleet's targetCustomizations give some clusters another folder, other helm values, an
// overlay or a namespace. One gitfleet bundle renders one thing for all its clusters, so
// they are named as the bundles that do their work; a folder that is no build as a whole
// (base and overlays side by side) says so in its failure.
// fleet.yaml's diff.comparePatches leave fields to others in what the bundle renders (with
// the forced namespace too), and a change to fleet.yaml is a change to the render.
// fleet.yaml read as Fleet's Go YAML reads it: a merge key stands for the keys it merges.
TEST(RenderBundlePathTest, FleetYamlsMergeKeysAreRead) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {
      {"apps/web/a.yaml", Cm("a")},
      {"apps/web/fleet.yaml", "x-defaults: &defaults\n  namespace: shop\n<<: *defaults\n"}};
  RenderInput input{"web", "apps/web", files};
  auto set = RenderBundlePath(renderer, input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->default_namespace(), "shop");
  files[1].content = "<<: shop\n";
  EXPECT_THAT(RenderBundlePath(renderer, RenderInput{"web", "apps/web", files}).status().message(),
              HasSubstr("apps/web/fleet.yaml: line 1: the value of the merge key << is neither"));
}

TEST(RenderBundlePathTest, FleetComparePatchesLeaveFieldsToOthers) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {
      {"apps/web/a.yaml", Cm("a")},
      {"apps/web/fleet.yaml", R"(namespace: shop
diff:
  comparePatches:
  - apiVersion: apps/v1
    kind: Deployment
    name: web
    jsonPointers: [/spec/replicas]
  - apiVersion: v1
    kind: ConfigMap
    operations:
    - {op: remove, path: /data/stamp}
targetCustomizations:
- name: prod
  clusterSelector: {matchLabels: {env: prod}}
  diff:
    comparePatches:
    - {apiVersion: v1, kind: ConfigMap, name: a, jsonPointers: [/data/x]}
)"},
  };
  std::vector<std::string> notes;
  std::vector<std::string> read_paths;
  RenderInput input{"web", "apps/web", files, &read_paths};
  input.notes = &notes;
  auto set = RenderBundlePath(renderer, input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(IgnoreRules(*set), ::testing::ElementsAre("apps/Deployment:web=/spec/replicas"));
  EXPECT_EQ(set->default_namespace(), "shop");
  // fleet.yaml counts in the render cache once: the folder read holds it.
  EXPECT_THAT(read_paths, ::testing::Not(::testing::Contains("apps/web/fleet.yaml")));
  EXPECT_THAT(read_paths, ::testing::Contains("apps/web"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "leaves to others the fields apps/web/fleet.yaml's diff.comparePatches "
                         "name, as Fleet leaves them out of its comparison: neither drift nor set "
                         "back by an apply (--ignore-difference=apps/Deployment:web=/spec/"
                         "replicas)")));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("op remove /data/stamp on no named object")));
  EXPECT_THAT(notes, ::testing::Contains(
                         HasSubstr("a bundle per target does their work: prod: --selector=env=prod "
                                   "--ignore-difference=ConfigMap:a=/data/x")));
  EXPECT_FALSE(set->keep_on_removal());
  // A target that only sets a diff is no other render of the folder.
  EXPECT_THAT(notes, ::testing::Not(::testing::Contains(HasSubstr("sets targetCustomizations"))));

  // keepResources: the objects stay when the bundle leaves a cluster, whatever the bundle's
  // age (keeping more is never a loss); a target's own keeps its clusters' objects in Fleet,
  // so it is read for every cluster of the bundle.
  const std::string before_keep = files[1].content;
  const std::pair<std::string, std::string> kKeeps[] = {
      {absl::StrReplaceAll(before_keep,
                           {{"- name: prod\n", "- name: prod\n  keepResources: true\n"}}),
       "keepResources asks for target prod (gitfleet keeps them on every cluster of the bundle"},
      {"keepResources: true\n" + before_keep,
       "its objects stay on a cluster the bundle leaves (released, not deleted), as "
       "apps/web/fleet.yaml's keepResources asks;"},
  };
  for (const auto& [content, note] : kKeeps) {
    files[1].content = content;
    notes.clear();
    auto keeping = RenderBundlePath(renderer, input);
    ASSERT_TRUE(keeping.ok()) << keeping.status();
    EXPECT_TRUE(keeping->keep_on_removal()) << content;
    EXPECT_THAT(notes, ::testing::Contains(HasSubstr(note)));
  }
  EXPECT_THAT(notes, ::testing::Not(::testing::Contains(HasSubstr("keepResources, which"))));

  // namespaceLabels and namespaceAnnotations: what a namespace created for the bundle gets.
  files[1].content =
      "namespaceLabels: {team: web, istio-injection: enabled}\n"
      "namespaceAnnotations: {owner: web team}\n" +
      files[1].content;
  notes.clear();
  auto labelled = RenderBundlePath(renderer, input);
  ASSERT_TRUE(labelled.ok()) << labelled.status();
  EXPECT_THAT(labelled->namespace_labels(),
              ::testing::ElementsAre("istio-injection=enabled", "team=web"));
  EXPECT_THAT(labelled->namespace_annotations(), ::testing::ElementsAre("owner=web team"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "a namespace created for the bundle (--create-namespace) gets the labels "
                         "istio-injection=enabled,team=web and 1 annotation")));
  {
    std::vector<RepoFile> bad = files;
    bad[1].content = "namespaceLabels: {team: has space}\n";
    auto refused = RenderBundlePath(renderer, RenderInput{"web", "apps/web", bad});
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("apps/web/fleet.yaml: namespace label team=has space: the value"));
  }

  // A bundle rendered before gitfleet read them: noted, its revisions as they were.
  RenderInput before = input;
  before.reads_fleet_diff = false;
  notes.clear();
  auto kept = RenderBundlePath(renderer, before);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->ignore_differences().size(), 0);
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "apps/web/fleet.yaml sets diff.comparePatches; this bundle was rendered "
                         "before gitfleet read them, and applies and heals those fields as it did: "
                         "give the bundle --ignore-difference=apps/Deployment:web=/spec/replicas, "
                         "or add it again")));

  // What cannot be read fails the render, naming the file, only when it is read.
  files[1].content = "diff:\n  comparePatches:\n  - {kind: X, jsonPointers: [replicas]}\n";
  auto bad = RenderBundlePath(renderer, input);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("apps/web/fleet.yaml: diff.comparePatches[0] (X): \"replicas\" is not a "
                        "JSON pointer"));
  EXPECT_TRUE(RenderBundlePath(renderer, before).ok());
}

// fleet.yaml's serviceAccount: the account the bundle is applied as when it names none, in
// the agents' namespace as Fleet looks it up; noted, not used, for a bundle rendered
// before gitfleet read it or with no namespace to look it up in; a name that is none fails
// the render, naming it, only when it is read.
TEST(RenderBundlePathTest, FleetYamlsServiceAccountIsTheAccountItIsAppliedAs) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {
      {"apps/web/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"},
      {"apps/web/fleet.yaml", "serviceAccount: deployer\n"}};
  std::vector<std::string> notes;
  RenderInput input{"web", "apps/web", files};
  input.notes = &notes;
  input.fleet_service_account_namespace = "gitfleet-system";
  absl::StatusOr<ObjectSet> objects = RenderBundlePath(renderer, input);
  ASSERT_TRUE(objects.ok()) << objects.status();
  EXPECT_EQ(objects->declared_service_account(), "gitfleet-system/deployer");
  EXPECT_THAT(notes,
              ::testing::Contains(HasSubstr(
                  "applied as service account gitfleet-system/deployer, the serviceAccount "
                  "apps/web/fleet.yaml names (in the agents' namespace, where Fleet looks it "
                  "up), unless the bundle's own --service-account or its scope's names "
                  "another")));
  EXPECT_THAT(notes, ::testing::Not(::testing::Contains(HasSubstr("does not read"))));

  // The revision carries it, unless the bundle names an account of its own.
  std::shared_ptr<const Revision> revision =
      Revision::Build("web", "c", absl::UnixEpoch(), *objects, v1::SyncOptions(), "");
  EXPECT_EQ(revision->sync.service_account(), "gitfleet-system/deployer");
  v1::SyncOptions own;
  own.set_service_account("shop/deployer");
  EXPECT_EQ(
      Revision::Build("web", "c", absl::UnixEpoch(), *objects, own, "")->sync.service_account(),
      "shop/deployer");
  absl::StatusOr<std::shared_ptr<const Revision>> stored =
      Revision::FromRecord(revision->ToRecord());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)->objects.declared_service_account(), "gitfleet-system/deployer");

  for (const auto& [without, note] : std::vector<std::pair<RenderInput, std::string>>{
           {[&] {
              RenderInput before = input;
              before.reads_fleet_service_account = false;
              return before;
            }(),
            "apps/web/fleet.yaml names serviceAccount deployer; this bundle was rendered before "
            "gitfleet read it, and is applied as it was: give it "
            "--service-account=NAMESPACE/deployer"},
           {[&] {
              RenderInput nowhere = input;
              nowhere.fleet_service_account_namespace.clear();
              return nowhere;
            }(),
            "apps/web/fleet.yaml names serviceAccount deployer, which is not used: the control "
            "plane's --fleet-service-account-namespace is empty"}}) {
    notes.clear();
    absl::StatusOr<ObjectSet> unused = RenderBundlePath(renderer, without);
    ASSERT_TRUE(unused.ok()) << unused.status();
    EXPECT_EQ(unused->declared_service_account(), "");
    EXPECT_THAT(notes, ::testing::Contains(HasSubstr(note)));
  }

  for (const auto& [content, error] : std::vector<std::pair<std::string, std::string>>{
           {"serviceAccount: kube-system/admin\n", "it names a namespace"},
           {"serviceAccount: Deployer\n", "serviceAccount cannot be used: "},
           {"serviceAccount: [a]\n", "serviceAccount cannot be used: it is not a name"}}) {
    std::vector<RepoFile> bad = files;
    bad[1].content = content;
    RenderInput read{"web", "apps/web", bad};
    read.fleet_service_account_namespace = "gitfleet-system";
    absl::StatusOr<ObjectSet> refused = RenderBundlePath(renderer, read);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << content;
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("apps/web/fleet.yaml: serviceAccount cannot be used: "))
        << content;
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(error)) << content;
    read.reads_fleet_service_account = false;
    EXPECT_TRUE(RenderBundlePath(renderer, read).ok()) << content;
  }
}

// The replicas of a workload an autoscaler in the render scales are left to it.
TEST(RenderBundlePathTest, TheReplicasAnAutoscalerScalesAreLeftToIt) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {
      {"apps/web/hpa.yaml", R"(apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: db}
spec:
  scaleTargetRef: {kind: StatefulSet, name: db}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: per-cluster}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: "web-${cluster}"}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: worker, namespace: jobs}
spec:
  scaleTargetRef: {name: worker}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: canary}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: canary}
spec:
  scaleTargetRef: {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: canary}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: broken}
spec: {scaleTargetRef: just text}
)"},
  };
  std::vector<std::string> notes;
  RenderInput input{"web", "apps/web", files};
  input.notes = &notes;
  auto set = RenderBundlePath(renderer, input);
  ASSERT_TRUE(set.ok()) << set.status();
  const std::vector<std::string> rules = IgnoreRules(*set);
  EXPECT_THAT(rules, ::testing::UnorderedElementsAre("apps/Deployment:shop/web=/spec/replicas",
                                                     "apps/StatefulSet:db=/spec/replicas",
                                                     "apps/Deployment:jobs/worker=/spec/replicas",
                                                     "argoproj.io/Rollout:canary=/spec/replicas"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "to the autoscaler that scales it, as Kubernetes advises: an apply sets "
                         "them only on a new object")));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("1 autoscaler(s) name what they scale in a "
                                                   "form gitfleet cannot match (a ${var} still "
                                                   "to fill in)")));

  // With fleet.yaml's rule for the same field: once.
  files.push_back({"apps/web/fleet.yaml",
                   "diff:\n  comparePatches:\n  - {apiVersion: apps/v1, kind: Deployment, name: "
                   "web, namespace: shop, jsonPointers: [/spec/replicas]}\n"});
  set = RenderBundlePath(renderer, input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->ignore_differences().size(), 4);

  // Rendered before gitfleet did this: noted, with the flags that would.
  RenderInput before = input;
  before.reads_controller_fields = false;
  before.reads_fleet_diff = false;
  notes.clear();
  set = RenderBundlePath(renderer, before);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->ignore_differences().size(), 0);
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "this bundle was rendered before gitfleet left those to them, and every "
                         "apply sets the manifest's: give the bundle --ignore-difference=")));
}

// The CA bundles a controller injects are left to it: those a manifest leaves empty, and all
// of an object cert-manager's cainjector is asked to inject.
TEST(RenderBundlePathTest, InjectedCaBundlesAreLeftToTheirController) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {
      {"apps/web/hooks.yaml", R"(apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: istiod}
webhooks:
- name: a
  clientConfig: {caBundle: "", service: {name: istiod, namespace: istio-system}}
- name: b
  clientConfig: {caBundle: "LS0tLS1CRUdJTg==", service: {name: istiod, namespace: x}}
- name: c
  clientConfig: {caBundle: null, url: "https://x"}
- name: d
  clientConfig: {url: "https://y"}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: cert-manager-webhook
  annotations: {cert-manager.io/inject-ca-from-secret: cert-manager/ca}
webhooks:
- name: a
  clientConfig: {service: {name: w, namespace: cert-manager}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
  annotations: {cert-manager.io/inject-ca-from: shop/widgets-cert}
spec:
  group: example.com
  conversion:
    strategy: Webhook
    webhook:
      clientConfig: {service: {name: conv, namespace: shop}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: plain.example.com}
spec: {group: example.com}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec: {caBundle: "", service: {name: metrics, namespace: kube-system}}
)"},
  };
  std::vector<std::string> notes;
  RenderInput input{"web", "apps/web", files};
  input.notes = &notes;
  auto set = RenderBundlePath(renderer, input);
  ASSERT_TRUE(set.ok()) << set.status();
  const std::vector<std::string> rules = IgnoreRules(*set);
  EXPECT_THAT(
      rules,
      ::testing::UnorderedElementsAre(
          "admissionregistration.k8s.io/ValidatingWebhookConfiguration:istiod=/webhooks/0/"
          "clientConfig/caBundle,/webhooks/2/clientConfig/caBundle",
          "admissionregistration.k8s.io/MutatingWebhookConfiguration:cert-manager-webhook=/"
          "webhooks/0/clientConfig/caBundle",
          "apiextensions.k8s.io/CustomResourceDefinition:widgets.example.com=/spec/conversion/"
          "webhook/clientConfig/caBundle",
          "apiregistration.k8s.io/APIService:v1beta1.metrics.k8s.io=/spec/caBundle"));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("to the controller that injects it: an apply "
                                                   "sets them only on a new object")));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("(cert-manager's cainjector)")));
}

TEST(RenderBundlePathTest, FleetTargetCustomizationsAreNamedAsABundlePerTarget) {
  PlainRenderer renderer;
  const std::string deployment =
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n";
  std::vector<RepoFile> files = {
      {"mc/web/base/deployment.yaml", deployment},
      {"mc/web/fleet.yaml",
       "namespace: shop\n"
       "targetCustomizations:\n"
       "- name: dev\n"
       "  clusterSelector: {matchLabels: {env: dev}}\n"
       "  kustomize: {dir: ./overlays/dev/}\n"
       "- name: prod\n"
       "  clusterSelector:\n"
       "    matchLabels: {env: prod}\n"
       "    matchExpressions:\n"
       "    - {key: region, operator: In, values: [eu, us]}\n"
       "    - {key: tier, operator: NotIn, values: [db]}\n"
       "    - {key: gpu, operator: Exists}\n"
       "    - {key: legacy, operator: DoesNotExist}\n"
       "  kustomize: {dir: overlays/prod}\n"
       "  namespace: shop-prod\n"
       "- name: one\n"
       "  clusterName: edge-1\n"
       "  helm: {values: {replicas: 3}}\n"
       "- clusterGroup: stores\n"
       "  yaml: {overlays: [big]}\n"
       "- name: off\n"
       "  clusterSelector: {matchLabels: {env: lab}}\n"
       "  doNotDeploy: true\n"
       "- name: drift\n"  // changes nothing a render makes: not listed
       "  clusterSelector: {matchLabels: {env: qa}}\n"
       "  correctDrift: {enabled: true}\n"},
  };
  std::vector<std::string> notes;
  RenderInput input{"web", "mc/web", files};
  input.notes = &notes;
  auto rendered = RenderBundlePath(renderer, input);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_THAT(
      notes,
      ::testing::Contains(
          "mc/web/fleet.yaml's targetCustomizations change what some clusters get, which one "
          "gitfleet bundle does not: it renders mc/web as it is for every cluster it targets; a "
          "bundle per target does their work: "
          "dev: --selector=env=dev --path=mc/web/overlays/dev --namespace=shop; "
          "prod: --selector='env=prod,region in (eu,us),tier notin (db),gpu,!legacy' "
          "--path=mc/web/overlays/prod --namespace=shop-prod; "
          "one: a selector of a label only cluster edge-1 has its helm options as --values-file "
          "or --cluster-values; "
          "target 4: a selector of the clusters of Fleet's cluster group stores the files its "
          "yaml overlays change (gitfleet applies no overlays); "
          "off: not deployed to its clusters (leave them out of the bundle's --selector: "
          "--selector=env=lab)"));
  // Named once, not also as an option gitfleet does not read.
  EXPECT_THAT(notes, Not(::testing::Contains(HasSubstr("sets targetCustomizations"))));

  // Base and overlay side by side: the same object twice, and the failure says why, for a
  // bundle rendered before gitfleet read Fleet's overlays/ folder as Fleet's.
  files.push_back({"mc/web/overlays/dev/deployment.yaml", deployment});
  RenderInput before{"web", "mc/web", files};
  before.reads_fleet_target_folders = false;
  auto twice = RenderBundlePath(renderer, before);
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(std::string(twice.status().message()),
              HasSubstr("(mc/web/fleet.yaml's targetCustomizations build overlays/dev, "
                        "overlays/prod for their clusters: Fleet renders those, gitfleet renders "
                        "the bundle's --path as it is; a bundle per target does their work: dev: "
                        "--selector=env=dev --path=mc/web/overlays/dev --namespace=shop;"));
  // Since, overlays/ is no manifests of a folder with a fleet.yaml, as in Fleet.
  notes.clear();
  ASSERT_TRUE(RenderBundlePath(renderer, input).ok());
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("left out 1 files under mc/web/overlays: "
                                                   "Fleet's yaml overlays")));
  files.pop_back();

  // Targets that change nothing rendered stay a passing mention; odd shapes never throw.
  const char* const kOther[] = {
      "targetCustomizations:\n- {name: drift, correctDrift: {enabled: true}}\n",
      "targetCustomizations: 7\n",
      "targetCustomizations: [1, [2], {name: [x]}]\n",
      "targetCustomizations:\n- {clusterSelector: {matchLabels: {a: [1]}}, kustomize: {dir: x}}\n",
      "targetCustomizations:\n- {clusterSelector: {matchExpressions: [{key: a, operator: Gt}]}, "
      "kustomize: {dir: [x]}, helm: 3, yaml: 4, namespace: {a: b}}\n",
  };
  for (const char* text : kOther) {
    files[1].content = text;
    notes.clear();
    auto other = RenderBundlePath(renderer, input);
    ASSERT_TRUE(other.ok()) << text << other.status();
  }
  files[1].content = kOther[0];
  notes.clear();
  ASSERT_TRUE(RenderBundlePath(renderer, input).ok());
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("sets targetCustomizations, which gitfleet "
                                                   "does not read")));
  files[1].content =
      "targetCustomizations:\n- {clusterSelector: {matchLabels: {a: [1]}}, kustomize: {dir: x}}\n";
  notes.clear();
  ASSERT_TRUE(RenderBundlePath(renderer, input).ok());
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "target 1: a selector of the clusters it is for --path=mc/web/x")));

  // Bounded: ten are described, the rest counted; a name cannot write to the terminal.
  std::string many = "targetCustomizations:\n";
  for (int i = 0; i < 12; ++i) {
    absl::StrAppend(&many, "- {name: \"t", i, "\\e[2J\", kustomize: {dir: d", i, "}}\n");
  }
  files[1].content = many;
  notes.clear();
  ASSERT_TRUE(RenderBundlePath(renderer, input).ok());
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("t9?[2J: a selector of the clusters it is "
                                                   "for --path=mc/web/d9; and 2 more")));
}

TEST(PlainRendererTest, FilesThatAreNeverManifestsAreSkippedAndNoted) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {
      {"apps/web/a.yaml", Cm("a")},
      {"apps/web/fleet.yaml", "defaultNamespace: web\nhelm: {releaseName: x}\n"},
      {"apps/web/.github/workflows/ci.yaml", "on: push\njobs: {}\n"},
      {"apps/web/.gitlab-ci.yml", "stages: [test]\n"},
      {"apps/web/chart/Chart.yaml", "apiVersion: v2\nname: x\nversion: 0.1.0\n"},
      {"apps/web/chart/values.yaml", "replicas: 1\n"},
      {"apps/web/chart/templates/dep.yaml", "replicas: {{ .Values.replicas }}\n"},
      {"apps/web/sub/kustomization.yaml", "resources: [b.yaml]\n"},
      // values.yaml outside a chart is an ordinary file: here a manifest.
      {"apps/web/values.yaml", Cm("values")},
      // A manifest kept in a dot-directory was rendered before: it stays, or it would be
      // pruned on upgrade.
      {"apps/web/.archive/old.yaml", Cm("old")},
  };
  std::vector<std::string> notes;
  RenderInput input{"web", "apps/web", files};
  input.notes = &notes;
  auto set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 3u);
  EXPECT_THAT(notes, ::testing::UnorderedElementsAre(
                         HasSubstr("kept apps/web/.archive/old.yaml although it is a dotfile"),
                         HasSubstr("apps/web/fleet.yaml: Rancher Fleet's bundle options"),
                         HasSubstr("apps/web/.github/workflows/ci.yaml: a dotfile"),
                         HasSubstr("apps/web/.gitlab-ci.yml: a dotfile"),
                         HasSubstr("apps/web/chart/Chart.yaml: part of the helm chart"),
                         HasSubstr("apps/web/chart/values.yaml: part of the helm chart"),
                         HasSubstr("apps/web/chart/templates/dep.yaml: part of the helm chart"),
                         HasSubstr("apps/web/sub/kustomization.yaml: a kustomization")));
  // Any other YAML without apiVersion and kind is still an error naming file and line.
  files.push_back({"apps/web/settings.yaml", "replicas: 3\n"});
  auto bad = renderer.Render({"web", "apps/web", files});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("apps/web/settings.yaml"));
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("(if it is not a manifest, leave it out with the bundle's "
                        "--exclude=settings.yaml, or a .fleetignore or .sourceignore line)"));
}

// Fleet scans a repository for fleet.yaml (or fleet.yml, its other name): a subfolder that
// holds one is a bundle of its own, left out of its parent's raw YAML, and fleet.yml is read
// as fleet.yaml when there is none. A bundle rendered before gitfleet did so keeps what it
// rendered.
TEST(RenderBundlePathTest, FleetsNestedBundlesAreLeftOutAndFleetYmlIsFleetYaml) {
  PlainRenderer renderer;
  const std::vector<RepoFile> files = {
      {"repo/fleet.yml", "defaultNamespace: shop\n"},
      {"repo/web.yaml", Cm("web")},
      {"repo/db/fleet.yaml", "namespace: data\n"},
      {"repo/db/db.yaml", Cm("db")},
      {"repo/db/replica/fleet.yml", "{}\n"},
      {"repo/db/replica/r.yaml", Cm("replica")},
      {"repo/cache/fleet.yml", "{}\n"},
      {"repo/cache/c.yaml", Cm("cache")},
      {"repo/cache/c2.yaml", Cm("cache2")},
      {"repo/db-tools/t.yaml", Cm("tools")},  // no fleet.yaml: part of this bundle
      {"repo/fleet.yamls/x.yaml", Cm("x")},
  };
  std::vector<std::string> notes;
  RenderInput input{"web", "repo", files, nullptr, nullptr, nullptr, {}, {}, &notes};
  auto set = RenderBundlePath(renderer, input);
  ASSERT_TRUE(set.ok()) << set.status();
  std::vector<std::string> keys;
  for (const auto& [key, object] : set->objects()) keys.push_back(key);
  EXPECT_THAT(keys, ::testing::ElementsAre("/ConfigMap//tools", "/ConfigMap//web", "/ConfigMap//x"))
      << "no nested bundle's objects";
  EXPECT_EQ(set->default_namespace(), "shop") << "fleet.yml's defaultNamespace";
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "left out repo/cache/, 3 files (repo/cache/fleet.yml, repo/cache/c.yaml, "
                         "repo/cache/c2.yaml): it holds its own Fleet bundle options, which "
                         "make it a bundle of its own, as Fleet makes it; add it as one "
                         "(--path=repo/cache)")));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("left out repo/db/, 4 files")))
      << "the outer bundle folder tells its nested one's files";
  EXPECT_THAT(notes,
              ::testing::Contains(HasSubstr("go to shop (repo/fleet.yml: defaultNamespace)")));
  // A nested bundle is a bundle of its own: its folder renders with its own options.
  auto db = RenderBundlePath(renderer, {"db", "repo/db", files});
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(db->size(), 1u);
  EXPECT_EQ(db->default_namespace(), "data");
  // fleet.yaml wins over fleet.yml beside it, as in Fleet.
  std::vector<RepoFile> both = files;
  both.push_back({"repo/fleet.yaml", "defaultNamespace: store\n"});
  auto store = RenderBundlePath(renderer, {"web", "repo", both});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(store->default_namespace(), "store");
  // A bad fleet.yml is named as fleet.yaml would be.
  std::vector<RepoFile> bad = files;
  bad[0].content = "defaultNamespace: Shop_1\n";
  EXPECT_THAT(std::string(RenderBundlePath(renderer, {"web", "repo", bad}).status().message()),
              HasSubstr("repo/fleet.yml: defaultNamespace: namespace name \"Shop_1\""));
  // Rendered before: the nested folders' manifests stay and fleet.yml is not read, each
  // noted.
  notes.clear();
  RenderInput before = input;
  before.reads_fleet_bundle_layout = false;
  auto kept = RenderBundlePath(renderer, before);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->size(), 7u);
  EXPECT_EQ(kept->default_namespace(), "") << "fleet.yml is not read";
  EXPECT_EQ(kept->objects().count("/ConfigMap//replica"), 1u);
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "kept the manifests of repo/cache/, 2 files (repo/cache/c.yaml, "
                         "repo/cache/c2.yaml), although it holds its own Fleet bundle options")));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("--exclude=cache/** leaves them out")));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "repo/fleet.yml is Rancher Fleet's bundle options under their other "
                         "name; this bundle was rendered before gitfleet read it")));
}

// A repository that keeps other YAML or JSON beside its manifests: the bundle's --include
// and --exclude choose the files (the operator's choice: manifests too), and a .fleetignore
// leaves out what it names.
TEST(PlainRendererTest, IncludeExcludeAndFleetIgnoreChooseTheFiles) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {
      {"apps/web/a.yaml", Cm("a")},
      {"apps/web/package.json", R"({"name": "web"})"},
      {"apps/web/config/settings.yaml", "replicas: 3\n"},
      {"apps/web/test/fixture.yaml", Cm("fixture")},
      {"apps/web/sub/b.yml", Cm("b")},
  };
  std::vector<std::string> notes;
  RenderInput input{"web", "apps/web", files};
  input.notes = &notes;
  input.exclude = {"*.json", "config/", "test"};
  absl::StatusOr<ObjectSet> set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 2u) << "the fixture's ConfigMap is left out too";
  EXPECT_THAT(notes,
              ::testing::ElementsAre("left out by --exclude: 3 files (apps/web/package.json, "
                                     "apps/web/config/settings.yaml, apps/web/test/fixture.yaml)"));

  notes.clear();
  input.exclude = {"test/"};
  input.include = {"*.yaml", "*.yml"};
  files[2].content = Cm("settings");
  set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 3u);
  EXPECT_THAT(notes,
              ::testing::Contains(
                  "left out: no --include pattern matches them: 1 file (apps/web/package.json)"));

  // Fleet's .fleetignore: what it names is left out, manifests included.
  files[2].content = "replicas: 3\n";
  files.push_back({"apps/web/.fleetignore", "*.json\nconfig/\ntest/\n"});
  notes.clear();
  RenderInput fleet{"web", "apps/web", files};
  fleet.notes = &notes;
  set = renderer.Render(fleet);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 2u);
  EXPECT_THAT(notes,
              ::testing::Contains(
                  "skipped apps/web/test/fixture.yaml: ignored by apps/web/.fleetignore: test/"));
  // A bundle rendered before gitfleet read .fleetignore keeps the manifests it names (an
  // upgrade never prunes them); what is not a manifest is still left out.
  notes.clear();
  fleet.reads_fleetignore = false;
  set = renderer.Render(fleet);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 3u);
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr(
                         "kept apps/web/test/fixture.yaml although it is ignored by "
                         "apps/web/.fleetignore: test/ (this bundle was rendered before gitfleet "
                         "read .fleetignore; --exclude leaves it out)")));
  EXPECT_THAT(notes, ::testing::Contains(HasSubstr("skipped apps/web/package.json: ignored by")));

  // Bad patterns, in either place, fail the render naming them.
  fleet.exclude = {"../up"};
  EXPECT_THAT(std::string(renderer.Render(fleet).status().message()),
              HasSubstr("--exclude pattern \"../up\""));
  files.back().content = "[unclosed\n";
  EXPECT_THAT(std::string(renderer.Render({"web", "apps/web", files}).status().message()),
              HasSubstr("apps/web/.fleetignore:1:"));
}

// A Flux repository: source-controller leaves out what its .sourceignore files name, the
// root's included, and the CI settings it leaves out by default; kustomize-controller
// then reads every manifest left. The same folder renders the same objects here.
TEST(PlainRendererTest, FluxsSourceIgnoreFilesLeaveOutWhatTheyNameFromAboveTheFolderToo) {
  PlainRenderer renderer;
  std::vector<RepoFile> files = {
      // Above the folder: the controller adds them to the bundle's files.
      {".sourceignore", "# tooling\n/apps/web/scripts/\n*.schema.json\n"},
      {"apps/.sourceignore", "fixtures/\n"},
      {"apps/web/a.yaml", Cm("a")},
      {"apps/web/cloudbuild.yaml", "steps:\n- name: gcr.io/cloud-builders/docker\n"},
      {"apps/web/fixtures/cm.yaml", Cm("fixture")},
      {"apps/web/scripts/lint.yaml", "rules: {}\n"},
      {"apps/web/values.schema.json", R"({"type": "object"})"},
  };
  std::vector<std::string> notes;
  std::vector<std::string> read;
  RenderInput input{"web", "apps/web", files, &read};
  input.notes = &notes;
  absl::StatusOr<ObjectSet> set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 1u) << "the fixture's ConfigMap is left out too";
  EXPECT_THAT(notes, ::testing::IsSupersetOf(
                         {"skipped apps/web/fixtures/cm.yaml: ignored by apps/.sourceignore: "
                          "fixtures/",
                          "skipped apps/web/scripts/lint.yaml: ignored by .sourceignore: "
                          "/apps/web/scripts/",
                          "skipped apps/web/values.schema.json: ignored by .sourceignore: "
                          "*.schema.json",
                          "skipped apps/web/cloudbuild.yaml: a CI configuration (Flux leaves it "
                          "out too)"}));
  // A .sourceignore added above the folder later changes what it reads.
  EXPECT_EQ(read, (std::vector<std::string>{"apps/web", ".sourceignore", "apps/.sourceignore"}));

  // A bundle rendered before gitfleet read .sourceignore keeps the manifests they name.
  notes.clear();
  input.reads_sourceignore = false;
  set = renderer.Render(input);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 2u);
  EXPECT_THAT(notes, ::testing::Contains(
                         "kept apps/web/fixtures/cm.yaml although it is ignored by "
                         "apps/.sourceignore: fixtures/ (this bundle was rendered before gitfleet "
                         "read .sourceignore; --exclude leaves it out): it holds manifests"));
  // Fleet's .fleetignore still reads for it: the two are told apart.
  files.push_back({"apps/web/.fleetignore", "fixtures/\n"});
  notes.clear();
  set = renderer.Render({"web", "apps/web", files});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 1u);
  RenderInput old{"web", "apps/web", files};
  old.reads_sourceignore = false;
  old.notes = &notes;
  set = renderer.Render(old);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 1u) << ".fleetignore leaves it out";
  EXPECT_THAT(notes, ::testing::Contains("skipped apps/web/fixtures/cm.yaml: ignored by "
                                         "apps/web/.fleetignore: fixtures/"));

  // A bad line fails the render naming its file and line, above the folder too.
  files[1].content = "ok/\n[unclosed\n";
  EXPECT_THAT(std::string(renderer.Render({"web", "apps/web", files}).status().message()),
              HasSubstr("apps/.sourceignore:2:"));
}

TEST(PlainRendererTest, ARenderPastItsTimeoutFailsNamingWhereItStopped) {
  PlainRenderer renderer({}, 64 << 20, absl::ZeroDuration());
  auto set = renderer.Render({"web", "apps/web", {{"apps/web/a.yaml", Cm("a")}}});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("took longer than 0"));
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("stopped before apps/web/a.yaml"));
  PlainRenderer patient({}, 64 << 20, absl::Seconds(60));
  EXPECT_TRUE(patient.Render({"web", "apps/web", {{"apps/web/a.yaml", Cm("a")}}}).ok());
}

TEST(PlainRendererTest, ErrorsNameFileAndLine) {
  PlainRenderer renderer;
  auto set = renderer.Render(
      {"web", "apps/web", {{"apps/web/ok.yaml", Cm("a")}, {"apps/web/bad.yaml", "a: [\n"}}});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("apps/web/bad.yaml:"));
}

TEST(PlainRendererTest, DuplicateKeysAcrossFilesAreErrors) {
  PlainRenderer renderer;
  auto set = renderer.Render({"web", "p", {{"p/a.yaml", Cm("x")}, {"p/b.yaml", Cm("x")}}});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(set.status().message()),
              HasSubstr("p/b.yaml: duplicate object ConfigMap x (also defined at p/a.yaml)"));
}

TEST(PlainRendererTest, EnforcesLimits) {
  PlainRenderer renderer({/*max_objects=*/1, /*max_bytes=*/1 << 20});
  auto set = renderer.Render({"web", "p", {{"p/a.yaml", Cm("x") + "---\n" + Cm("y")}}});
  EXPECT_EQ(set.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("more than 1 objects"));
  PlainRenderer small({100, 10});
  EXPECT_EQ(small.Render({"web", "p", {{"p/a.yaml", Cm("x")}}}).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(PlainRendererTest, ParsesOnlyTheFilesThatChanged) {
  PlainRenderer renderer;
  std::vector<RepoFile> files;
  for (int i = 0; i < 50; ++i) {
    files.push_back({"p/cm-" + std::to_string(i) + ".yaml", Cm("cm-" + std::to_string(i))});
  }
  ASSERT_TRUE(renderer.Render({"b", "p", files}).ok());
  EXPECT_EQ(renderer.parsed_files(), 50);

  files[7].content = Cm("cm-7") + "data: {version: \"2\"}\n";
  auto set = renderer.Render({"b", "p", files});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(renderer.parsed_files(), 51);
  EXPECT_EQ(renderer.cached_files(), 49);
  EXPECT_EQ(set->size(), 50u);
  // The changed file's new content is what renders, not the cached old one.
  EXPECT_THAT(set->objects().at("/ConfigMap//cm-7")->yaml(), HasSubstr("version"));
  EXPECT_THAT(set->objects().at("/ConfigMap//cm-8")->yaml(), Not(HasSubstr("version")));
}

TEST(PlainRendererTest, CachedFilesKeepTheirPathAndErrorsAreNotCached) {
  PlainRenderer renderer;
  ASSERT_TRUE(renderer.Render({"b", "p", {{"p/a.yaml", Cm("x")}}}).ok());
  // The same text at another path is parsed for that path: duplicates name both files.
  auto dup = renderer.Render({"b", "p", {{"p/a.yaml", Cm("x")}, {"p/b.yaml", Cm("x")}}});
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(dup.status().message()), HasSubstr("p/b.yaml"));
  for (int i = 0; i < 2; ++i) {
    auto bad = renderer.Render({"b", "p", {{"p/bad.yaml", "a: [\n"}}});
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr("p/bad.yaml:"));
  }
  EXPECT_EQ(renderer.parsed_files(), 2);  // a.yaml and b.yaml; the bad file never counts
}

TEST(PlainRendererTest, CacheIsBoundedByItsBudget) {
  // Room for about two files per generation: a third file starts a new generation, and
  // a file unused for a whole generation is parsed again.
  const std::string a = Cm("a"), b = Cm("b"), c = Cm("c");
  PlainRenderer renderer({}, /*cache_bytes=*/2 * (a.size() + b.size()));
  ASSERT_TRUE(renderer.Render({"x", "p", {{"p/a.yaml", a}, {"p/b.yaml", b}}}).ok());
  ASSERT_TRUE(renderer.Render({"x", "p", {{"p/c.yaml", c}}}).ok());  // a, b now previous
  ASSERT_TRUE(renderer.Render({"x", "p", {{"p/c.yaml", c}}}).ok());
  EXPECT_EQ(renderer.parsed_files(), 3);
  EXPECT_EQ(renderer.cached_files(), 1);
  ASSERT_TRUE(renderer.Render({"x", "p", {{"p/a.yaml", a}}}).ok());  // from previous
  EXPECT_EQ(renderer.parsed_files(), 3);
  ASSERT_TRUE(renderer.Render({"x", "p", {{"p/d.yaml", Cm("d")}, {"p/e.yaml", Cm("e")}}}).ok());
  ASSERT_TRUE(renderer.Render({"x", "p", {{"p/f.yaml", Cm("f")}, {"p/g.yaml", Cm("g")}}}).ok());
  ASSERT_TRUE(renderer.Render({"x", "p", {{"p/b.yaml", b}}}).ok());  // fell out: parsed
  EXPECT_EQ(renderer.parsed_files(), 8);
}

TEST(PlainRendererTest, ConcurrentRendersShareTheCache) {
  PlainRenderer renderer({}, /*cache_bytes=*/4096);  // small: generations turn over
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        std::vector<RepoFile> files;
        for (int i = 0; i < 10; ++i) {
          std::string name = "cm-" + std::to_string(i) + "-" + std::to_string((round + t) % 7);
          files.push_back({"p/" + std::to_string(i) + ".yaml", Cm(name)});
        }
        auto set = renderer.Render({"b", "p", files});
        if (!set.ok() || set->size() != 10u) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(renderer.parsed_files() + renderer.cached_files(), 4 * 50 * 10);
}

}  // namespace
}  // namespace gitfleet
