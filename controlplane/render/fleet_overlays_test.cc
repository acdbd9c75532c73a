#include "controlplane/render/fleet_overlays.h"

#include "controlplane/render/plain_renderer.h"
#include "controlplane/render/renderer.h"
#include "controlplane/render/values.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

std::string Error(const absl::StatusOr<std::string>& merged) {
  return std::string(merged.status().message());
}

// Fleet's patches where a JSON merge patch and a strategic merge patch agree: scalars and
// maps merged, a null removing a key, a list the object does not have added; quoted
// strings stay strings.
TEST(PatchYamlTest, MergesMapsAndScalarsAsBothOfFleetsPatchesDo) {
  const std::string deployment = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: "1"}
  annotations: {old: "true"}
spec:
  replicas: 1
  template:
    spec:
      containers: [{name: web, image: "nginx:1.25"}]
)";
  absl::StatusOr<std::string> merged = PatchYaml(deployment, R"(metadata:
  labels: {env: prod}
  annotations: {old: null}
spec:
  replicas: 3
  strategy: {rollingUpdate: {maxSurge: "25%"}, type: RollingUpdate}
  template: {spec: {tolerations: [{key: dedicated, operator: Exists}]}}
)",
                                                 "overlays/prod/deploy_patch.yaml");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(*merged, R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
    tier: "1"
    env: prod
  annotations:
    {}
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: web
          image: nginx:1.25
      tolerations:
        - key: dedicated
          operator: Exists
  strategy:
    rollingUpdate:
      maxSurge: 25%
    type: RollingUpdate
)");
  // A map given where the object has a scalar replaces it, its nulls dropped.
  merged = PatchYaml("kind: A\nspec: 1\n", "spec: {a: 1, b: null}\n", "p");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(*merged, "kind: A\nspec:\n  a: 1\n");
}

// A patch is applied as Fleet applies it (kube_patch.h): by a built-in kind's strategic
// merge (containers merged by name), as a JSON merge patch for other objects (lists
// replaced), or as a JSON Patch; what cannot be applied fails naming the patch and the key.
TEST(PatchYamlTest, AppliesThePatchFleetWouldAndRefusesWhatCannotBe) {
  const std::string deployment =
      "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n"
      "      containers: [{name: web, image: web:1, ports: [{containerPort: 80}]}]\n";
  absl::StatusOr<std::string> patched = PatchYaml(
      deployment, "spec: {template: {spec: {containers: [{name: web, image: x}]}}}\n", "p");
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_THAT(*patched, HasSubstr("image: x")) << *patched;
  EXPECT_THAT(*patched, HasSubstr("containerPort: 80")) << "merged by name: " << *patched;
  // Without apiVersion, Fleet cannot tell the kind: a merge patch replaces the list.
  patched = PatchYaml("kind: Deployment\nspec:\n  containers: [{name: web, image: a}]\n",
                      "spec: {containers: [{name: web}]}\n", "p");
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ(*patched, "kind: Deployment\nspec:\n  containers:\n    - name: web\n");
  patched = PatchYaml(deployment, "- {op: replace, path: /kind, value: StatefulSet}\n", "p");
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_THAT(*patched, HasSubstr("kind: StatefulSet"));
  const std::string object = "apiVersion: example.com/v1\nkind: Widget\nspec: {a: 1}\n";
  const std::pair<const char*, const char*> kBad[] = {
      {"spec: {$patch: replace}\n",
       "p: spec.$patch is a strategic-merge directive, and this object's kind is not built "
       "into Kubernetes"},
      {"- {op: remove, path: /spec/b}\n", "p: operation 1 (remove) path /spec/b is not there"},
      {"- {op: replace, path: '', value: text}\n", "p leaves its file without an object"},
      {"just text\n", "p is neither a mapping nor a list of JSON Patch operations"},
      {"a: 1\n---\nb: 2\n", "p holds 2 documents; a patch is one mapping or one list"},
      {"a: [\n", "p:2: invalid YAML"},
  };
  for (const auto& [patch, error] : kBad) {
    EXPECT_THAT(Error(PatchYaml(object, patch, "p")), HasSubstr(error)) << patch;
  }
  EXPECT_THAT(Error(PatchYaml("a: 1\n---\nb: 2\n", "a: 2\n", "p")),
              HasSubstr("p patches a file that holds 2 documents"));
}

// Fleet's multi-cluster manifests layout: the overlays a cluster's target names replace,
// add and patch the folder's files by name, in order; the rest of overlays/ is left out.
TEST(ApplyFleetOverlaysTest, ReplacesAddsAndPatchesByFileNameInOrder) {
  const std::vector<RepoFile> files = {
      {".sourceignore", "x\n"},
      {"mc/fleet.yaml", "targetCustomizations: []\n"},
      {"mc/deploy.yaml", "kind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n"},
      {"mc/overlays/big/deploy_patch.yaml", "spec: {replicas: 5}\n"},
      {"mc/overlays/eu/deploy_patch.yaml", "metadata: {labels: {region: eu}}\n"},
      {"mc/overlays/eu/cm.yaml", "kind: ConfigMap\nmetadata: {name: eu}\n"},
      {"mc/overlays/eu/svc.yaml", "kind: Service\nmetadata: {name: web}\nspec: {type: NodePort}\n"},
      {"mc/overlays/lab/x.yaml", "kind: ConfigMap\n"},
      {"mc/svc.yaml", "kind: Service\nmetadata: {name: web}\n"},
  };
  std::vector<std::string> notes;
  auto applied = ApplyFleetOverlays("mc", files, {"big", "eu"}, &notes);
  ASSERT_TRUE(applied.ok()) << applied.status();
  std::map<std::string, std::string> by_path;
  for (const RepoFile& file : *applied) by_path[file.path] = file.content;
  EXPECT_THAT(by_path, ::testing::ElementsAre(::testing::Key(".sourceignore"),
                                              ::testing::Key("mc/deploy.yaml"),
                                              ::testing::Key("mc/fleet.yaml"),
                                              ::testing::Key("mc/overlays/eu/cm.yaml"),
                                              ::testing::Key("mc/overlays/eu/svc.yaml")));
  EXPECT_EQ(by_path["mc/deploy.yaml"],
            "kind: Deployment\nmetadata:\n  name: web\n  labels:\n    region: eu\nspec:\n  "
            "replicas: 5\n");
  EXPECT_THAT(by_path["mc/overlays/eu/svc.yaml"], HasSubstr("NodePort")) << "replaces svc.yaml";
  EXPECT_THAT(notes, ::testing::ElementsAre(
                         "Fleet's overlay big (mc/overlays/big) patched deploy.yaml",
                         "Fleet's overlay eu (mc/overlays/eu) replaced svc.yaml, added cm.yaml, "
                         "patched deploy.yaml",
                         "left out 1 files under mc/overlays: Fleet's yaml overlays, applied "
                         "only for the clusters whose target names them"));
  // None named: the overlays are left out.
  applied = ApplyFleetOverlays("mc", files, {}, nullptr);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->size(), 4u);

  const std::pair<std::vector<std::string>, const char*> kBad[] = {
      {{"gone"}, "yaml.overlays names gone, and mc/overlays/gone holds no files"},
      {{"../up"}, "yaml.overlays names \"../up\", which is not one folder's name"},
      {{""}, "which is not one folder's name"},
      {std::vector<std::string>(17, "eu"), "at most 16"},
  };
  for (const auto& [names, error] : kBad) {
    EXPECT_THAT(std::string(ApplyFleetOverlays("mc", files, names, nullptr).status().message()),
                HasSubstr(error));
  }
  std::vector<RepoFile> orphan = files;
  orphan.push_back({"mc/overlays/lab/missing_patch.yaml", "a: 1\n"});
  EXPECT_THAT(std::string(ApplyFleetOverlays("mc", orphan, {"lab"}, nullptr).status().message()),
              HasSubstr("mc/overlays/lab/missing_patch.yaml patches missing.yaml, which is not "
                        "a file of mc"));
}

// Through RenderBundlePath with the plain engine: each cluster gets the overlays its target
// names; a cluster no target selects gets the folder without overlays/.
TEST(ApplyFleetOverlaysTest, APlainFleetFolderRendersEachClustersOverlays) {
  const std::vector<RepoFile> files = {
      {"mc/fleet.yaml",
       "targetCustomizations:\n- name: prod\n  clusterSelector: {matchLabels: {env: prod}}\n"
       "  yaml: {overlays: [production]}\n"},
      {"mc/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {size: s}\n"},
      {"mc/overlays/production/cm_patch.yaml", "data: {size: l}\n"},
  };
  PlainRenderer renderer;
  auto size_for = [&](const Values& cluster) -> std::string {
    std::vector<std::string> notes;
    RenderInput input{"web", "mc", files, nullptr, &cluster};
    input.notes = &notes;
    absl::StatusOr<ObjectSet> set = RenderBundlePath(renderer, input);
    if (!set.ok()) return std::string(set.status().message());
    if (set->size() != 1) return "objects: " + std::to_string(set->size());
    return set->objects().begin()->second->yaml();
  };
  EXPECT_THAT(size_for({{ClusterLabelKey("env"), "prod"}}), HasSubstr("size: l"));
  EXPECT_THAT(size_for({{ClusterLabelKey("env"), "dev"}}), HasSubstr("size: s"));
  // A bundle rendered before gitfleet read them renders overlays/ as manifests, as it did.
  RenderInput old{"web", "mc", files};
  old.reads_fleet_target_folders = false;
  EXPECT_THAT(std::string(RenderBundlePath(renderer, old).status().message()),
              HasSubstr("mc/overlays/production/cm_patch.yaml:1: object has no apiVersion"));
}

}  // namespace
}  // namespace gitfleet
