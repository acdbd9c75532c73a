#include "controlplane/render/kube_patch.h"

#include <unistd.h>

#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/git_fixture.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

// Whether two nodes hold the same data, whatever the order of their maps' keys.
bool Same(const YAML::Node& a, const YAML::Node& b) {
  if (a.IsNull() || !a.IsDefined()) return b.IsNull() || !b.IsDefined();
  if (a.IsScalar()) return b.IsScalar() && a.Scalar() == b.Scalar();
  if (a.IsSequence()) {
    if (!b.IsSequence() || a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!Same(a[i], b[i])) return false;
    }
    return true;
  }
  if (!b.IsMap() || a.size() != b.size()) return false;
  for (const auto& entry : a) {
    const YAML::Node& other = b;
    const YAML::Node value = other[entry.first.Scalar()];
    if (!value.IsDefined() || !Same(entry.second, value)) return false;
  }
  return true;
}

std::string Text(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return out.c_str();
}

// `kubectl patch --local` of `object` with `patch`, of the kind ApplyKubePatch chose: what
// Kubernetes' own code makes of it (nullopt: kubectl refused it). Skips without kubectl.
struct Kubectl {
  std::optional<YAML::Node> Patch(const std::string& object, const std::string& patch,
                                  const std::string& kind, std::string* error) {
    const std::string dir = testing::TempDir("kubectl-patch");
    std::ofstream(dir + "/object.yaml") << object;
    std::ofstream(dir + "/patch.yaml") << patch;
    SubprocessOptions options;
    options.env = {"PATH=/usr/bin:/bin", "HOME=" + dir, "KUBECONFIG=/dev/null"};
    options.timeout = absl::Seconds(60);
    absl::StatusOr<SubprocessResult> run =
        RunSubprocess({"/usr/bin/kubectl", "patch", "--local", "-f", dir + "/object.yaml",
                       "--type=" + kind, "--patch-file=" + dir + "/patch.yaml", "-o", "yaml"},
                      options);
    if (!run.ok() || run->exit_code != 0) {
      *error = run.ok() ? run->stderr_text : std::string(run.status().message());
      return std::nullopt;
    }
    return YAML::Load(run->stdout_text);
  }
};

constexpr char kDeployment[] = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  finalizers: [a, b]
  labels: {app: web}
spec:
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {disk: ssd}
      containers:
      - name: web
        image: web:1
        ports: [{containerPort: 80, name: http}, {containerPort: 9090, name: metrics}]
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
        volumeMounts: [{name: data, mountPath: /data}]
        resources: {limits: {cpu: "1", memory: 1Gi}, requests: {cpu: 100m}}
      - name: sidecar
        image: side:1
      - name: old
        image: old:1
      initContainers: [{name: init, image: init:1}]
      tolerations: [{key: a, operator: Exists}]
      volumes: [{name: data, emptyDir: {}}, {name: cache, emptyDir: {}}]
      imagePullSecrets: [{name: registry}]
)";

constexpr char kService[] = R"(apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web, tier: front}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
)";

constexpr char kCronJob[] = R"(apiVersion: batch/v1
kind: CronJob
metadata: {name: backup}
spec:
  schedule: "0 1 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: backup
            image: backup:1
            args: [--all]
            env: [{name: TARGET, value: s3}]
)";

constexpr char kWidget[] = R"(apiVersion: example.com/v1
kind: Widget
metadata: {name: w, labels: {a: "1"}}
spec:
  items: [{name: a, v: 1}, {name: b}]
  keep: 1
  nested: {x: 1, z: [1, 2]}
)";

struct Case {
  const char* name;
  const char* object;
  const char* patch;
};

// Every patch here, applied by gitfleet and by kubectl (Kubernetes' own strategic merge,
// JSON merge and JSON Patch code), gives the same object, or both refuse it.
const Case kCases[] = {
    {"containers merged by name: one changed, one added, one deleted; env by name; ports "
     "kept; a list without a strategy replaced; finalizers a set; retainKeys",
     kDeployment, R"(metadata:
  finalizers: [c, a]
spec:
  strategy: {$retainKeys: [type], type: Recreate}
  template:
    spec:
      containers:
      - name: web
        image: web:2
        env: [{name: B, value: "3"}, {name: C, value: "4"}]
      - name: extra
        image: extra:1
      - name: old
        $patch: delete
      tolerations: [{key: b, operator: Exists}]
)"},
    {"a container's port and mount changed, one added before the others", kDeployment,
     R"(spec:
  template:
    spec:
      containers:
      - name: extra
        image: extra:1
      - name: web
        ports: [{containerPort: 9090, name: prom}, {containerPort: 443, name: https}]
        volumeMounts: [{name: cache, mountPath: /cache}]
)"},
    {"a map replaced whole, another deleted, a key removed by null", kDeployment, R"(spec:
  template:
    spec:
      nodeSelector: {$patch: delete}
      containers:
      - name: web
        resources: {$patch: replace, limits: {cpu: "2"}}
        image: null
)"},
    {"a list replaced whole by its $patch item; volumes and pull secrets merged by name",
     kDeployment, R"(spec:
  template:
    spec:
      initContainers: [{$patch: replace}, {name: migrate, image: migrate:1}]
      volumes: [{name: cache, emptyDir: {medium: Memory}}, {name: tmp, emptyDir: {}}]
      imagePullSecrets: [{name: other}]
)"},
    {"a volume's source swapped with $retainKeys, as kubectl writes it", kDeployment,
     R"(spec:
  template:
    spec:
      volumes:
      - {name: data, $retainKeys: [configMap, name], configMap: {name: settings}}
      containers:
      - name: sidecar
        envFrom: [{configMapRef: {name: settings}}]
        env: [{name: X, value: "1"}]
)"},
    {"a list given where the object has a map, and a map where it has a scalar", kDeployment,
     R"(metadata:
  labels: [x]
spec:
  strategy: {type: {nested: 1}}
  template:
    spec:
      containers:
      - name: web
        ports: null
)"},
    {"a stateful set's claim templates replaced, its pods' containers merged",
     R"(apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: db:1, ports: [{containerPort: 5432}]}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {resources: {requests: {storage: 1Gi}}}
)",
     R"(spec:
  template:
    spec:
      containers: [{name: db, image: db:2}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {resources: {requests: {storage: 10Gi}}}
)"},
    {"a webhook configuration's webhooks merged by name",
     R"(apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: policy}
webhooks:
- name: a.example.com
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
- name: b.example.com
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
)",
     "webhooks: [{name: b.example.com, failurePolicy: Ignore}]\n"},
    {"scalars deleted from a set", kDeployment,
     "metadata:\n  $deleteFromPrimitiveList/finalizers: [a]\n"},
    {"a whole new list and map", kDeployment, R"(spec:
  template:
    spec:
      hostAliases: [{ip: 10.0.0.1, hostnames: [db]}]
      affinity: {nodeAffinity: {}}
)"},
    {"service ports merged by port, selector merged", kService, R"(spec:
  selector: {tier: null, env: prod}
  ports:
  - {port: 443, targetPort: 9443}
  - {port: 8080, name: alt}
)"},
    {"a cron job's container, deep in its job template", kCronJob, R"(spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: backup
            args: [--changed]
            env: [{name: REGION, value: eu}]
)"},
    {"a custom resource: a JSON merge patch, lists replaced", kWidget, R"(metadata:
  labels: {b: "2"}
spec:
  items: [{name: c}]
  keep: null
  nested: {z: [3]}
)"},
    {"JSON Patch: add, insert, append, replace, remove, move, copy, test, escapes", kDeployment,
     R"(- {op: test, path: /metadata/name, value: web}
- {op: replace, path: /spec/template/spec/containers/0/image, value: web:3}
- {op: add, path: /spec/template/spec/containers/1, value: {name: mid, image: mid:1}}
- {op: add, path: /spec/template/spec/tolerations/-, value: {key: c, operator: Exists}}
- {op: remove, path: /spec/template/spec/containers/3}
- {op: add, path: /metadata/annotations, value: {}}
- {op: add, path: /metadata/annotations/example.com~1team, value: shop}
- {op: copy, from: /metadata/labels, path: /spec/template/metadata/labels}
- {op: move, from: /spec/strategy/rollingUpdate, path: /metadata/annotations/old~0strategy}
- {op: add, path: /spec/replicas, value: 3}
)"},
    {"JSON Patch on a custom resource", kWidget,
     R"(- {op: add, path: /spec/items/1, value: {name: x}}
- {op: move, from: /spec/keep, path: /spec/moved}
- {op: remove, path: /spec/nested/z/0}
)"},
    {"JSON Patch whose test fails", kWidget, "- {op: test, path: /spec/keep, value: 2}\n"},
    {"JSON Patch replacing a key that is not there", kWidget,
     "- {op: replace, path: /spec/none, value: 2}\n"},
    {"JSON Patch testing a key that is not there for null", kWidget,
     "- {op: test, path: /spec/none, value: null}\n"},
    {"JSON Patch removing a key that is not there", kWidget, "- {op: remove, path: /spec/none}\n"},
    {"JSON Patch replacing past a list's end", kWidget,
     "- {op: replace, path: /spec/items/2, value: {name: z}}\n"},
    {"JSON Patch past a list's end", kWidget,
     "- {op: add, path: /spec/items/5, value: {name: z}}\n"},
    {"JSON Patch with no such operation", kWidget, "- {op: frobnicate, path: /spec}\n"},
    {"an item without the key its list merges by", kDeployment,
     "spec:\n  template:\n    spec:\n      containers: [{image: x}]\n"},
    {"$patch: merge in a list", kDeployment,
     "spec:\n  template:\n    spec:\n      containers: [{$patch: merge, name: web}]\n"},
    {"$patch with no meaning", kDeployment, "spec:\n  template: {$patch: frobnicate}\n"},
    {"a key outside $retainKeys", kDeployment,
     "spec:\n  strategy: {$retainKeys: [type], type: Recreate, rollingUpdate: {}}\n"},
};

TEST(ApplyKubePatchTest, AppliesPatchesAsKubernetesOwnCodeDoes) {
  if (access("/usr/bin/kubectl", X_OK) != 0) GTEST_SKIP() << "kubectl is not installed";
  Kubectl kubectl;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const YAML::Node object = YAML::Load(c.object);
    const YAML::Node patch = YAML::Load(c.patch);
    const std::string before = Text(object);
    absl::StatusOr<YAML::Node> ours = ApplyKubePatch(object, patch, "p");
    EXPECT_EQ(Text(object), before) << "the object is not changed";
    std::string error;
    std::optional<YAML::Node> theirs =
        kubectl.Patch(c.object, c.patch, KubePatchKind(object, patch), &error);
    if (!theirs.has_value()) {
      EXPECT_FALSE(ours.ok()) << "kubectl refused it: " << error << "\ngitfleet made:\n"
                              << Text(*ours);
      continue;
    }
    ASSERT_TRUE(ours.ok()) << ours.status() << "\nkubectl made:\n" << Text(*theirs);
    EXPECT_TRUE(Same(*ours, *theirs)) << "gitfleet:\n"
                                      << Text(*ours) << "\nkubectl:\n"
                                      << Text(*theirs);
  }
}

// Random patches of a Deployment and a custom resource (a fixed seed, so a failure repeats):
// gitfleet and kubectl agree on each, or both refuse it.
TEST(ApplyKubePatchTest, AgreesWithKubectlOnRandomPatches) {
  if (access("/usr/bin/kubectl", X_OK) != 0) GTEST_SKIP() << "kubectl is not installed";
  std::mt19937 random(20261204);
  auto pick = [&](int n) { return static_cast<int>(random() % n); };
  auto one_of = [&](std::vector<std::string> options) { return options[pick(options.size())]; };
  const std::vector<std::string> names = {"web", "sidecar", "old", "new", "init"};
  auto env = [&] {
    std::string out = "[";
    for (int i = 0, n = pick(4); i < n; ++i) {
      out += absl::StrCat(i ? ", " : "", "{name: ", one_of({"A", "B", "C", "D"}), ", value: '",
                          pick(9), "'}");
    }
    return out + "]";
  };
  // A container patch: changes, a directive, or a null.
  auto container = [&]() -> std::string {
    if (pick(25) == 0) return "{image: nameless}";  // refused by both
    std::vector<std::string> fields = {absl::StrCat("name: ", one_of(names))};
    const int change = pick(8);
    switch (change) {
      case 0:
        fields.push_back("$patch: delete");
        break;
      case 1:
        fields.push_back("image: null");
        break;
      case 2:
        fields.push_back(absl::StrCat("env: ", env()));
        break;
      case 3:
        fields.push_back(absl::StrCat("ports: [{containerPort: ", one_of({"80", "9090", "443"}),
                                      ", name: p", pick(9), "}]"));
        break;
      case 4:
        fields.push_back("resources: {$patch: replace, limits: {cpu: '3'}}");
        break;
      case 5:
        fields.push_back(absl::StrCat("$deleteFromPrimitiveList/args: [", one_of({"a", "b"}), "]"));
        break;
      default:
        fields.push_back(absl::StrCat("image: img:", pick(9)));
    }
    // Not beside a $deleteFromPrimitiveList/args: Kubernetes applies the two in its map's
    // order, which Go makes random, so kubectl itself answers either way (CI saw both).
    if (pick(3) == 0 && change != 5) {
      fields.push_back(absl::StrCat("args: [", one_of({"a", "b", "c"}), "]"));
    }
    return "{" + absl::StrJoin(fields, ", ") + "}";
  };
  const std::string deployment =
      absl::StrReplaceAll(kDeployment, {{"image: side:1", "image: side:1\n        args: [a, b]"}});
  int compared = 0, refused = 0;
  for (int round = 0; round < 150; ++round) {
    std::string patch;
    std::vector<std::string> containers;
    for (int i = 0, n = 1 + pick(3); i < n; ++i) containers.push_back(container());
    if (pick(6) == 0)
      containers.insert(containers.begin() + pick(containers.size()), "{$patch: replace}");
    absl::StrAppend(&patch, "spec:\n  template:\n    spec:\n      containers: [",
                    absl::StrJoin(containers, ", "), "]\n");
    if (pick(2)) {
      absl::StrAppend(&patch, "      volumes: [{name: ", one_of({"data", "cache", "tmp"}),
                      pick(2) ? ", emptyDir: {medium: Memory}" : ", $patch: delete", "}]\n");
    }
    if (pick(3) == 0) absl::StrAppend(&patch, "      tolerations: [{key: z, operator: Exists}]\n");
    switch (pick(7)) {
      case 0:
        absl::StrAppend(&patch, "      nodeSelector: {$patch: ", one_of({"replace", "delete"}),
                        ", zone: a}\n");
        break;
      case 1:
        absl::StrAppend(&patch, "      nodeSelector: null\n      affinity: {a: null, b: {c: 1}}\n");
        break;
      case 2:
        absl::StrAppend(&patch, "      initContainers: [{name: init, image: null, env: ", env(),
                        "}, {name: ", one_of({"init", "z"}), ", $patch: delete}]\n");
        break;
      case 3:
        absl::StrAppend(&patch,
                        "      hostAliases: [{ip: 1.2.3.4, hostnames: [a]}]\n"
                        "      imagePullSecrets: [{name: registry, $patch: delete}]\n");
        break;
      default:
        break;
    }
    if (pick(5) == 0) {
      absl::StrAppend(&patch, "  strategy: {$retainKeys: [type], type: ",
                      one_of({"Recreate", "RollingUpdate"}), "}\n");
    } else if (pick(5) == 0) {
      absl::StrAppend(
          &patch, "  strategy: {type: null, rollingUpdate: {maxSurge: null, maxUnavailable: 2}}\n");
    }
    if (pick(3) == 0) {
      absl::StrAppend(&patch, "metadata:\n  finalizers: [", one_of({"c", "a", "b"}), "]\n");
    } else if (pick(4) == 0) {
      absl::StrAppend(&patch, "metadata:\n  $deleteFromPrimitiveList/finalizers: [",
                      one_of({"a", "b", "x"}), "]\n");
    }
    SCOPED_TRACE(patch);
    const YAML::Node object = YAML::Load(deployment);
    const YAML::Node parsed = YAML::Load(patch);
    absl::StatusOr<YAML::Node> ours = ApplyKubePatch(object, parsed, "p");
    std::string error;
    std::optional<YAML::Node> theirs =
        Kubectl().Patch(deployment, patch, KubePatchKind(object, parsed), &error);
    if (!theirs.has_value()) {
      ++refused;
      EXPECT_FALSE(ours.ok()) << "kubectl refused it: " << error << "\ngitfleet made:\n"
                              << Text(*ours);
      continue;
    }
    ++compared;
    ASSERT_TRUE(ours.ok()) << ours.status() << "\nkubectl made:\n" << Text(*theirs);
    EXPECT_TRUE(Same(*ours, *theirs)) << "gitfleet:\n"
                                      << Text(*ours) << "\nkubectl:\n"
                                      << Text(*theirs);
  }
  EXPECT_GT(compared, 100) << "most random patches apply";
  std::cerr << compared << " compared, " << refused << " refused by both\n";
}

// The same, spelled out where order matters (kubectl is not needed to read them).
TEST(ApplyKubePatchTest, PutsMergedItemsWhereKubernetesPutsThem) {
  const YAML::Node object = YAML::Load(kDeployment);
  absl::StatusOr<YAML::Node> patched = ApplyKubePatch(object, YAML::Load(kCases[0].patch), "p");
  ASSERT_TRUE(patched.ok()) << patched.status();
  const YAML::Node& spec = (*patched)["spec"]["template"]["spec"];
  std::vector<std::string> names;
  for (const YAML::Node& container : spec["containers"]) {
    names.push_back(container["name"].as<std::string>());
  }
  EXPECT_THAT(names, ::testing::ElementsAre("web", "extra", "sidecar"));
  EXPECT_EQ(spec["containers"][0]["image"].as<std::string>(), "web:2");
  EXPECT_EQ(spec["containers"][0]["ports"].size(), 2u) << "kept";
  EXPECT_EQ(spec["containers"][0]["env"][1]["value"].as<std::string>(), "3");
  EXPECT_EQ(spec["tolerations"].size(), 1u);
  EXPECT_EQ(Text((*patched)["metadata"]["finalizers"]), "- c\n- a\n- b");
  EXPECT_EQ(Text((*patched)["spec"]["strategy"]), "type: Recreate");
}

TEST(ApplyKubePatchTest, ChoosesThePatchAsFleetDoes) {
  const YAML::Node map = YAML::Load("a: 1\n");
  EXPECT_EQ(KubePatchKind(YAML::Load(kDeployment), map), "strategic");
  EXPECT_EQ(KubePatchKind(YAML::Load(kService), map), "strategic");
  EXPECT_EQ(KubePatchKind(YAML::Load("apiVersion: networking.k8s.io/v1\nkind: Ingress\n"), map),
            "strategic");
  EXPECT_EQ(KubePatchKind(YAML::Load(kWidget), map), "merge");
  EXPECT_EQ(KubePatchKind(YAML::Load("apiVersion: apiextensions.k8s.io/v1\n"
                                     "kind: CustomResourceDefinition\n"),
                          map),
            "merge");
  EXPECT_EQ(KubePatchKind(YAML::Load("kind: Deployment\n"), map), "merge") << "no apiVersion";
  EXPECT_EQ(KubePatchKind(YAML::Load(kWidget), YAML::Load("- {op: remove, path: /a}\n")), "json");
}

// What cannot be applied fails naming the patch and the key or operation, never applying
// something else in its place.
TEST(ApplyKubePatchTest, RefusesByName) {
  const YAML::Node deployment = YAML::Load(kDeployment);
  const YAML::Node widget = YAML::Load(kWidget);
  const std::tuple<const YAML::Node*, const char*, const char*> kBad[] = {
      {&deployment, "spec:\n  template:\n    spec:\n      containers: [{image: x}]\n",
       "p: spec.template.spec.containers has an item without name, the key Kubernetes "
       "merges its items by"},
      {&deployment, "spec: {$setElementOrder/x: []}\n",
       "p: spec.$setElementOrder/x is kubectl's ordering directive"},
      {&deployment, "spec: {$frob: 1}\n", "p: spec.$frob is no strategic-merge directive"},
      {&deployment, "metadata: {finalizers: [[a]]}\n", "p: metadata.finalizers is a list of lists"},
      {&widget, "spec: {$patch: replace}\n",
       "p: spec.$patch is a strategic-merge directive, and this object's kind is not built into "
       "Kubernetes"},
      {&widget, "- {op: test, path: /spec/keep, value: 2}\n",
       "p: operation 1 (test) fails its test (a JSON Patch, as Fleet applies it)"},
      {&widget, "- {op: add, path: spec, value: 1}\n",
       "p: operation 1 (add) path spec does not start with /"},
      {&widget, "- {op: remove, path: /spec/items/01}\n",
       "operation 1 (remove) path /spec/items/01 names no item of a list of 2"},
      {&widget, "- {op: add, path: /a~2b, value: 1}\n", "has a ~ that is not ~0 or ~1"},
      {&widget, "- {op: move, from: /spec, path: /spec/x}\n", "moves a value into itself"},
      {&widget, "- {op: add, path: /spec/x}\n", "operation 1 (add) has no value"},
      {&widget, "- 3\n", "operation 1 is not a mapping"},
  };
  for (const auto& [object, patch, error] : kBad) {
    absl::StatusOr<YAML::Node> result = ApplyKubePatch(*object, YAML::Load(patch), "p");
    EXPECT_THAT(result.status().message(), HasSubstr(error)) << patch;
  }
}

}  // namespace
}  // namespace gitfleet
