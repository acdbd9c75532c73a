#include "common/manifest/object.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/manifest/yaml.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

TEST(ParseManifestsTest, ParsesMultiDocumentFileInOrder) {
  auto objects = ParseManifests(R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
---
# empty documents are skipped
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: "1"}
)",
                                "apps/web.yaml");
  ASSERT_TRUE(objects.ok()) << objects.status();
  ASSERT_EQ(objects->size(), 2u);
  EXPECT_EQ(KeyString((*objects)[0].key()), "apps/Deployment/shop/web");
  EXPECT_EQ(KeyString((*objects)[1].key()), "/ConfigMap//settings");
  EXPECT_EQ((*objects)[1].api_version(), "v1");
  EXPECT_EQ((*objects)[0].content_hash().size(), 64u);
}

TEST(ParseManifestsTest, ExpandsLists) {
  auto objects = ParseManifests(R"({"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}},
  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"}}]})",
                                "list.json");
  ASSERT_TRUE(objects.ok()) << objects.status();
  EXPECT_EQ(objects->size(), 2u);
  auto typed = ParseManifests(R"(apiVersion: apps/v1
kind: DeploymentList
metadata: {resourceVersion: "1"}
items:
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: web}}
)",
                              "deployments.yaml");
  ASSERT_TRUE(typed.ok()) << typed.status();
  ASSERT_EQ(typed->size(), 1u);
  EXPECT_EQ(KeyString((*typed)[0].key()), "apps/Deployment//web");
}

// What editors on other systems write: a byte-order mark, CRLF line ends, a document end
// marker, tabs after values, a final line without its newline.
TEST(ParseManifestsTest, ReadsFilesAsOtherEditorsWriteThem) {
  const std::string crlf =
      "\xEF\xBB\xBF# written on Windows\r\napiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n"
      "  name: a\t\r\ndata:\r\n  k: \"v\"\r\n...\r\n---\r\napiVersion: v1\r\nkind: ConfigMap\r\n"
      "metadata: {name: b}";
  auto objects = ParseManifests(crlf, "win.yaml");
  ASSERT_TRUE(objects.ok()) << objects.status();
  ASSERT_EQ(objects->size(), 2u);
  EXPECT_EQ(KeyString((*objects)[0].key()), "/ConfigMap//a");
  EXPECT_EQ(KeyString((*objects)[1].key()), "/ConfigMap//b");
  EXPECT_THAT((*objects)[0].yaml(), ::testing::Not(::testing::HasSubstr("\r")));
  auto json = ParseManifests(
      "\xEF\xBB\xBF{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": "
      "\"j\"}}",
      "bom.json");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->size(), 1u);
}

// What kubectl's reader refuses is refused, naming the file: bytes that are not UTF-8 (a
// file saved as Latin-1) and control characters (a NUL pasted into a value). A UTF-16
// file, which both read, is read.
TEST(ParseManifestsTest, BytesKubectlDoesNotReadAreRefused) {
  const std::string head = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: \"";
  for (const std::string& bad : {std::string("caf\xE9"), std::string("a\0b", 3),
                                 std::string("bell\x07"), std::string("c1\xC2\x9B")}) {
    absl::StatusOr<std::vector<v1::ManifestObject>> objects =
        ParseManifests(head + bad + "\"}\n", "apps/cm.yaml");
    EXPECT_FALSE(objects.ok()) << bad;
    EXPECT_THAT(objects.status().message(), ::testing::HasSubstr("apps/cm.yaml: "));
    EXPECT_THAT(objects.status().message(), ::testing::HasSubstr("kubectl refuses such a file"));
  }
  EXPECT_TRUE(ParseManifests(head + "tab\there, caf\xC3\xA9, NEL\xC2\x85\"}\n", "ok.yaml").ok());
  std::string utf16 = "\xFF\xFE";
  for (char c : std::string("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: w}\n")) {
    utf16 += c;
    utf16 += '\0';
  }
  absl::StatusOr<std::vector<v1::ManifestObject>> wide = ParseManifests(utf16, "ps.yaml");
  ASSERT_TRUE(wide.ok()) << wide.status();
  ASSERT_EQ(wide->size(), 1u);
  EXPECT_EQ(KeyString((*wide)[0].key()), "/ConfigMap//w");
  // A value holding control characters that an engine made (jsonnet's "\u0007") is written
  // escaped, and read back as it was.
  YAML::Node made = YAML::Load("{apiVersion: v1, kind: ConfigMap, metadata: {name: e}}");
  made["data"]["k"] = std::string("bell\x07 nul\0 end", 14);
  absl::StatusOr<std::string> emitted = EmitBlockYaml(made);
  ASSERT_TRUE(emitted.ok()) << emitted.status();
  absl::StatusOr<std::vector<v1::ManifestObject>> escaped = ParseManifests(*emitted, "made");
  ASSERT_TRUE(escaped.ok()) << escaped.status() << "\n" << *emitted;
  EXPECT_EQ(YAML::Load((*escaped)[0].yaml())["data"]["k"].as<std::string>(),
            std::string("bell\x07 nul\0 end", 14));
}

// YAML's merge key, as kubectl reads it: `<<: *defaults` (or a list of them) stands for
// the keys the mapping does not set itself, the earlier mapping first; a quoted "<<" is a
// key like any other, and a merge of a scalar is refused, naming the file and line.
TEST(ParseManifestsTest, MergeKeysStandForTheKeysTheyMerge) {
  auto objects = ParseManifests(R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: web
        resources: &defaults
          limits: {cpu: "1"}
          requests: {cpu: 100m}
      - name: sidecar
        resources:
          <<: *defaults
          requests: {cpu: 10m}
      - name: other
        <<: [{image: a, name: ignored}, {image: b, tty: true}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: quoted}
data:
  "<<": kept
)",
                                "merge.yaml");
  ASSERT_TRUE(objects.ok()) << objects.status();
  ASSERT_EQ(objects->size(), 2u);
  const std::string& web = (*objects)[0].yaml();
  EXPECT_THAT(web, ::testing::Not(::testing::HasSubstr("<<"))) << web;
  YAML::Node parsed = YAML::Load(web);
  YAML::Node containers = parsed["spec"]["template"]["spec"]["containers"];
  EXPECT_EQ(containers[1]["resources"]["limits"]["cpu"].as<std::string>(), "1");
  EXPECT_EQ(containers[1]["resources"]["requests"]["cpu"].as<std::string>(), "10m");
  EXPECT_EQ(containers[2]["name"].as<std::string>(), "other");
  EXPECT_EQ(containers[2]["image"].as<std::string>(), "a");
  EXPECT_TRUE(containers[2]["tty"].as<bool>());
  EXPECT_EQ(containers[0]["resources"]["requests"]["cpu"].as<std::string>(), "100m");
  EXPECT_THAT((*objects)[1].yaml(), ::testing::HasSubstr("kept"));
  EXPECT_THAT((*objects)[1].yaml(), ::testing::HasSubstr("<<"));

  auto scalar = ParseManifests(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  <<: text\n", "bad.yaml");
  EXPECT_THAT(scalar.status().message(),
              ::testing::HasSubstr("bad.yaml: line 5: the value of the merge key << is neither a "
                                   "mapping nor a list of mappings"));
}

TEST(ParseManifestsTest, MalformedYamlNamesFileAndLine) {
  auto objects = ParseManifests("apiVersion: v1\nkind: ConfigMap\nmetadata: [\n", "apps/bad.yaml");
  EXPECT_THAT(objects.status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("apps/bad.yaml:")));
}

// The classic "billion laughs": nine aliases per level, nine levels: 9^9 nodes if expanded.
std::string AliasBomb() {
  std::string text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\nlol0: &l0 [lol]\n";
  for (int level = 1; level <= 9; ++level) {
    absl::StrAppend(&text, "lol", level, ": &l", level, " [");
    for (int i = 0; i < 9; ++i) absl::StrAppend(&text, i == 0 ? "" : ",", "*l", level - 1);
    absl::StrAppend(&text, "]\n");
  }
  return text;
}

TEST(ParseManifestsTest, AnAliasBombIsRefusedNotExpanded) {
  absl::Time start = absl::Now();
  absl::StatusOr<std::vector<v1::ManifestObject>> bomb = ParseManifests(AliasBomb(), "bomb.yaml");
  EXPECT_EQ(bomb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bomb.status().message(), HasSubstr("bomb.yaml:"));
  EXPECT_THAT(bomb.status().message(), HasSubstr("once its aliases are expanded"));
  // Refused while parsing: nowhere near the time (or memory) an expansion would take.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // Ordinary anchors and aliases, as real manifests use them, still work.
  absl::StatusOr<std::vector<v1::ManifestObject>> fine = ParseManifests(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: &l {app: web}}\n"
      "other: {x: *l}\n",
      "fine.yaml");
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_THAT((*fine)[0].yaml(), HasSubstr("app: web"));
}

TEST(ParseManifestsTest, AnAliasInsideItsOwnAnchorIsRefusedNotFollowed) {
  // yaml-cpp would build a cycle, and emitting it recursed until the stack ran out.
  for (const char* text : {"a: &a [*a]\n", "a: &a {b: *a}\n",
                           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                           "data: &d {x: [1, *d]}\n"}) {
    absl::StatusOr<std::vector<v1::ManifestObject>> cycle = ParseManifests(text, "cycle.yaml");
    EXPECT_EQ(cycle.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(cycle.status().message(), HasSubstr("refers to a node that contains it")) << text;
  }
}

TEST(ParseManifestsTest, DeepNestingAndTooManyDocumentsAreRefused) {
  std::string deep = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: ";
  deep += std::string(300, '[') + std::string(300, ']') + "\n";
  absl::StatusOr<std::vector<v1::ManifestObject>> nested = ParseManifests(deep, "deep.yaml");
  EXPECT_EQ(nested.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nested.status().message(), HasSubstr("deep.yaml:4: nested more than 256 deep"));

  std::string many;
  for (int i = 0; i < 5; ++i) absl::StrAppend(&many, "---\n{}\n");
  YamlLimits limits;
  limits.max_documents = 4;
  EXPECT_THAT(CheckYamlBounds(many, "many.yaml", limits).message(),
              HasSubstr("more than 4 documents in one file"));
  limits.max_documents = 5;
  EXPECT_TRUE(CheckYamlBounds(many, "many.yaml", limits).ok());
}

// A key set twice in one mapping is refused, naming both lines: the later value would
// silently replace the earlier one (kubernetes#99286: a Deployment's first `envFrom`
// lost), and kubectl's strict validation refuses it. The same key in other mappings, or
// YAML's merge key, is no duplicate; files that are not manifests (values) may repeat.
// Left unquoted, these are a boolean or a number as kubectl reads YAML, and the API server
// refuses the object: the render says so once, naming the field.
TEST(ParseManifestsTest, AnUnquotedValueWhereKubernetesTakesAStringIsRefusedNamingTheField) {
  struct Case {
    std::string yaml;
    std::string error;
  };
  const std::string deployment =
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n"
      "spec:\n  selector: {matchLabels: {app: api}}\n  template:\n"
      "    metadata: {labels: {app: api}}\n    spec:\n      containers:\n      - name: api\n";
  const std::vector<Case> cases = {
      {"apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  annotations:\n"
       "    prometheus.io/scrape: true\n",
       "m.yaml:1: Service api: .metadata.annotations[\"prometheus.io/scrape\"] is the boolean "
       "true (plain true/false, yes/no, on/off and y/n are booleans in YAML as kubectl reads "
       "it), where Kubernetes takes a string: quote it"},
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {version: 1.0}}\n",
       "m.yaml:1: ConfigMap a: .metadata.labels.version is the number 1.0, where Kubernetes "
       "takes a string: quote it"},
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {port: 8080}\n",
       "ConfigMap a: .data.port is the number 8080"},
      {"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {debug: no}\n",
       "Secret a: .stringData.debug is the boolean false"},
      {deployment + "        args: [--port, 8080]\n",
       "Deployment api: .spec.template.spec.containers[0].args[1] is the number 8080"},
      {deployment + "        env: [{name: DEBUG, value: yes}]\n",
       "Deployment api: .spec.template.spec.containers[0].env[0].value is the boolean true"},
      {"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n"
       "spec: {selector: {matchLabels: {tier: 1}}}\n",
       ".spec.selector.matchLabels.tier is the number 1"},
      {"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n"
       "  jobTemplate:\n    spec:\n      template:\n        spec:\n"
       "          initContainers: [{name: wait, command: [sleep, 30]}]\n",
       "CronJob nightly: .spec.jobTemplate.spec.template.spec.initContainers[0].command[1] is "
       "the number 30"},
      {"apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec: {selector: {app: [api]}}\n",
       ".spec.selector.app is a sequence, where Kubernetes takes a string"},
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, annotations: [x]}\n",
       ".metadata.annotations is a sequence, where Kubernetes takes a mapping of strings"},
      // A custom resource's metadata is ObjectMeta too.
      {"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, labels: {on: on}}\n",
       "Widget w: .metadata.labels.true is the boolean true"},
      // What kubectl refuses while converting: a tag that does not fit its value.
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nx: !!int ten\n",
       "m.yaml:1: ConfigMap a: "},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<v1::ManifestObject>> parsed = ParseManifests(c.yaml, "m.yaml");
    ASSERT_FALSE(parsed.ok()) << c.yaml;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.error)) << c.yaml;
  }
  // Quoted, null, and the same fields of other groups' kinds (their schemas judge them).
  absl::StatusOr<std::vector<v1::ManifestObject>> fine = ParseManifests(
      deployment + "        args: [--port, \"8080\"]\n        env: [{name: A, value: }]\n" +
          "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n"
          "    prometheus.io/scrape: \"true\"\n    b: ~\n  labels: {version: '1.0'}\n"
          "data: {port: \"8080\", on: \"yes\"}\n"
          "---\napiVersion: example.com/v1\nkind: Deployment\nmetadata: {name: w}\n"
          "spec: {template: {spec: {containers: [{name: a, args: [1]}]}}}\n",
      "fine.yaml");
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->size(), 3u);
}

TEST(ParseManifestsTest, AKeySetTwiceInOneMappingIsRefusedNamingBothLines) {
  const std::string twice =
      "apiVersion: apps/v1\n"                  // 1
      "kind: Deployment\n"                     // 2
      "metadata: {name: api}\n"                // 3
      "spec:\n"                                // 4
      "  template:\n"                          // 5
      "    spec:\n"                            // 6
      "      containers:\n"                    // 7
      "      - name: api\n"                    // 8
      "        envFrom:\n"                     // 9
      "        - configMapRef: {name: api}\n"  // 10
      "        envFrom:\n"                     // 11
      "        - secretRef: {name: api}\n";    // 12
  absl::StatusOr<std::vector<v1::ManifestObject>> parsed = ParseManifests(twice, "api.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(),
              HasSubstr("api.yaml:11: the mapping key \"envFrom\" is set twice in one mapping "
                        "(first at line 9)"));
  // Quoted or not, it is one key.
  EXPECT_FALSE(ParseManifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
                              "data: {k: x, \"k\": y}\n",
                              "q.yaml")
                   .ok());
  // The same key in sibling mappings and list items, and merge keys, are fine.
  absl::StatusOr<std::vector<v1::ManifestObject>> fine = ParseManifests(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {name: a}}\n"
      "data: {name: a}\nx: [{k: 1}, {k: 2}]\ny: &d {k: 1}\nz: {<<: *d, j: 2}\n"
      "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
      "fine.yaml");
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->size(), 2u);
  EXPECT_TRUE(CheckYamlBounds("a: 1\na: 2\n", "values.yaml").ok()) << "not a manifest";
}

// A file saved with a byte-order mark, or as UTF-16 (PowerShell's `>` writes UTF-16LE),
// reads as kubectl's go-yaml reads it.
TEST(ParseManifestsTest, AByteOrderMarkOrUtf16ReadsAsKubectlReadsIt) {
  const std::string text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: é}\n";
  absl::StatusOr<std::vector<v1::ManifestObject>> bom =
      ParseManifests("\xEF\xBB\xBF" + text, "bom.yaml");
  ASSERT_TRUE(bom.ok()) << bom.status();
  ASSERT_EQ(bom->size(), 1u);
  EXPECT_EQ((*bom)[0].key().name(), "a");
  std::string utf16 = "\xFF\xFE";
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0xC3) {  // é, U+00E9
      utf16 += "\xE9";
      utf16.push_back('\0');
      ++i;
      continue;
    }
    utf16.push_back(static_cast<char>(c));
    utf16.push_back('\0');
  }
  absl::StatusOr<std::vector<v1::ManifestObject>> wide = ParseManifests(utf16, "wide.yaml");
  ASSERT_TRUE(wide.ok()) << wide.status();
  ASSERT_EQ(wide->size(), 1u);
  EXPECT_EQ((*wide)[0].key().name(), "a");
  EXPECT_THAT((*wide)[0].yaml(), HasSubstr("k: é"));
  EXPECT_EQ((*wide)[0].yaml(), (*bom)[0].yaml());
}

TEST(ParseManifestsTest, MissingNameNamesFileLineAndField) {
  auto objects = ParseManifests(
      "apiVersion: v1\nkind: A\nmetadata: {name: x}\n---\napiVersion: v1\n"
      "kind: ConfigMap\nmetadata:\n  labels: {a: b}\n",
      "cm.yaml");
  EXPECT_THAT(objects.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("cm.yaml:5: ConfigMap has no metadata.name")));
}

// A Secret SOPS encrypted (Flux repositories keep them so, and Flux decrypts after its
// build): its values are ciphertext, and stringData is applied as it is. Refused, naming
// it; a document with a field that merely is called sops is an object like any other.
TEST(ParseManifestsTest, ASopsEncryptedDocumentIsRefusedNamingIt) {
  const std::string encrypted = R"(apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
stringData:
  password: ENC[AES256_GCM,data:Tr7o=,iv:1Ax=,tag:Qd==,type:str]
sops:
  age:
    - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
      enc: |
        -----BEGIN AGE ENCRYPTED FILE-----
        -----END AGE ENCRYPTED FILE-----
  lastmodified: "2026-11-30T10:00:00Z"
  mac: ENC[AES256_GCM,data:m4c=,iv:i=,tag:t=,type:str]
  encrypted_regex: ^(data|stringData)$
  version: 3.8.1
)";
  auto objects = ParseManifests(
      absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\n", encrypted),
      "secrets.yaml");
  EXPECT_THAT(objects.status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("secrets.yaml:5: Secret db is encrypted with SOPS (it has sops "
                                 "metadata), and applying the ciphertext would replace what the "
                                 "cluster holds: give the bundle --decrypt=sops")));
  // As JSON, as SOPS writes a .json file.
  auto json = ParseManifests(
      R"({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
          "data": {"p": "ENC[AES256_GCM,data:x,type:str]"},
          "sops": {"mac": "ENC[...]", "version": "3.7.3", "lastmodified": "2026-01-01T00:00:00Z"}})",
      "secret.json");
  EXPECT_THAT(json.status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("secret.json:1: Secret db is encrypted with SOPS")));
  // Without metadata it is still named for what it is.
  auto bare =
      ParseManifests("apiVersion: v1\nkind: Secret\nsops: {mac: x, version: 3.8.1}\n", "bare.yaml");
  EXPECT_THAT(bare.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("bare.yaml:1: Secret is encrypted with SOPS")));
  // A custom resource whose own field is called sops is not an encrypted file.
  auto plain = ParseManifests(
      "apiVersion: example.com/v1\nkind: Tool\nmetadata: {name: t}\nsops: {enabled: true}\n",
      "tool.yaml");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->size(), 1u);
}

TEST(ParseManifestsTest, GenerateNameIsForHooksOnly) {
  // A hook named by the server: its key carries the generateName.
  auto hooks = ParseManifests(R"(apiVersion: batch/v1
kind: Job
metadata:
  generateName: migrate-
  annotations: {argocd.argoproj.io/hook: PreSync}
spec: {}
)",
                              "hooks.yaml");
  ASSERT_TRUE(hooks.ok()) << hooks.status();
  EXPECT_EQ(KeyString((*hooks)[0].key()), "batch/Job//migrate-");

  // The same Job without the annotation: the error names file, line and the way out.
  EXPECT_THAT(
      ParseManifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
                     "apiVersion: batch/v1\nkind: Job\nmetadata:\n"
                     "  generateName: migrate-\n",
                     "jobs.yaml")
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("jobs.yaml:5: Job has metadata.generateName \"migrate-\" but no "
                         "metadata.name: only a hook (annotation argocd.argoproj.io/hook")));
  // A hook with neither name nor generateName.
  EXPECT_THAT(ParseManifests("apiVersion: batch/v1\nkind: Job\nmetadata:\n  annotations:\n"
                             "    helm.sh/hook: pre-install\n",
                             "j.yaml")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("j.yaml:1: Job has no metadata.name")));
  // A delete policy no tool knows is an error, not a silent default.
  EXPECT_THAT(ParseManifests("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: m\n"
                             "  annotations:\n    argocd.argoproj.io/hook: PreSync\n"
                             "    argocd.argoproj.io/hook-delete-policy: WhenDone\n",
                             "j.yaml")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("j.yaml:1: Job: annotation argocd.argoproj.io/hook-delete-policy "
                                 "has \"WhenDone\"")));
  // A sync wave that is not a number is refused at the render, naming file and line.
  EXPECT_THAT(ParseManifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
                             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
                             "  annotations:\n    argocd.argoproj.io/sync-wave: first\n",
                             "cm.yaml")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cm.yaml:5: ConfigMap: annotation argocd.argoproj.io/sync-wave "
                                 "is \"first\", want an integer")));
  // Two hooks with one generateName collide like two objects with one name.
  ObjectSet set;
  ASSERT_TRUE(set.Add((*hooks)[0], "a.yaml").ok());
  EXPECT_THAT(set.Add((*hooks)[0], "b.yaml"), StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(ParseManifestsTest, MissingKindAndApiVersion) {
  EXPECT_THAT(ParseManifests("kind: A\nmetadata: {name: x}\n", "f.yaml").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("f.yaml:1: object has no apiVersion")));
  EXPECT_THAT(ParseManifests("apiVersion: v1\nmetadata: {name: x}\n", "f.yaml").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has no kind")));
  EXPECT_THAT(ParseManifests("- a\n- b\n", "f.yaml").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a mapping")));
}

TEST(ParseManifestsTest, CanonicalYamlKeepsStringsStringsAndIsBlockStyle) {
  auto objects = ParseManifests(
      "{\"apiVersion\": \"example.com/v1\", \"kind\": \"Widget\", \"metadata\": "
      "{\"name\": \"x\"}, \"spec\": {\"port\": \"8080\", \"flag\": \"true\", \"count\": 3, "
      "\"e\": null}}",
      "cm.json");
  ASSERT_TRUE(objects.ok()) << objects.status();
  const std::string& yaml = (*objects)[0].yaml();
  EXPECT_THAT(yaml, HasSubstr("port: \"8080\""));
  EXPECT_THAT(yaml, HasSubstr("flag: \"true\""));
  EXPECT_THAT(yaml, HasSubstr("count: 3\n"));
  EXPECT_THAT(yaml, HasSubstr("metadata:\n  name: x\n"));
  EXPECT_THAT(yaml, HasSubstr("apiVersion: example.com/v1\n"));
  auto quoted = ParseManifests(
      "apiVersion: 'example.com/v1'\nkind: \"Widget\"\nmetadata: {name: x}\n"
      "spec: {port: '8080', flag: 'true', count: 3, e: null}\n",
      "q.yaml");
  ASSERT_TRUE(quoted.ok());
  EXPECT_EQ((*quoted)[0].content_hash(), (*objects)[0].content_hash())
      << "the same object in JSON and YAML hashes the same";
  // Round trip: parsing the canonical form gives the same canonical form.
  auto again = ParseManifests(yaml, "again.yaml");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].yaml(), yaml);
}

TEST(ObjectSetTest, DuplicateKeyNamesBothOrigins) {
  ObjectSet set;
  auto a = MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "a");
  auto b = MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(set.Add(*a, "a.yaml:1").ok());
  EXPECT_THAT(set.Add(*b, "b.yaml:3"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("b.yaml:3: duplicate object ConfigMap x (also "
                                 "defined at a.yaml:1)")));
}

// Sets share objects: adding one another set holds copies nothing, and a shared object
// added without an origin is named by its kind and name in the duplicate error.
TEST(ObjectSetTest, SharedObjectsAreNotCopiedAndDuplicatesStillFail) {
  ObjectSet first;
  auto x = MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "a");
  ASSERT_TRUE(x.ok());
  ASSERT_TRUE(first.Add(*x, "a.yaml:1").ok());
  const ObjectSet::Object& shared = first.objects().begin()->second;
  ObjectSet second;
  ASSERT_TRUE(second.Add(shared).ok());
  EXPECT_EQ(second.objects().begin()->second, shared) << "copied";
  ObjectSet copy = second;
  EXPECT_EQ(copy.objects().begin()->second.get(), shared.get());
  EXPECT_THAT(second.Add(shared), StatusIs(absl::StatusCode::kAlreadyExists,
                                           HasSubstr("ConfigMap x: duplicate object ConfigMap x")));
  EXPECT_THAT(second.Add(*x, "b.yaml:2"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("b.yaml:2: duplicate object ConfigMap x (also defined at "
                                 "ConfigMap x)")));
  EXPECT_THAT(first.Add(shared),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("(also defined at a.yaml:1)")));
}

ObjectSet MakeSet(const std::vector<std::string>& docs) {
  ObjectSet set;
  for (const std::string& doc : docs) {
    auto o = MakeObject(doc, "test");
    EXPECT_TRUE(o.ok()) << o.status();
    set.Put(*o);
  }
  return set;
}

TEST(RevisionTest, SameContentSameRevisionAndOptionsMatter) {
  ObjectSet a = MakeSet({"apiVersion: v1\nkind: A\nmetadata: {name: x}\n",
                         "apiVersion: v1\nkind: B\nmetadata: {name: why}\n"});
  ObjectSet b = MakeSet({"apiVersion: v1\nkind: B\nmetadata: {name: why}\n",
                         "apiVersion: v1\nkind: A\nmetadata: {name: x}\n"});
  v1::SyncOptions sync;
  EXPECT_EQ(ComputeRevision(a, sync, ""), ComputeRevision(b, sync, ""));
  EXPECT_NE(ComputeRevision(a, sync, ""), ComputeRevision(a, sync, "ns"));
  v1::SyncOptions prune;
  prune.set_prune(true);
  EXPECT_NE(ComputeRevision(a, sync, ""), ComputeRevision(a, prune, ""));
  ObjectSet c = MakeSet({"apiVersion: v1\nkind: A\nmetadata: {name: x}\ndata: 1\n",
                         "apiVersion: v1\nkind: B\nmetadata: {name: why}\n"});
  EXPECT_NE(ComputeRevision(a, sync, ""), ComputeRevision(c, sync, ""));
}

TEST(DeltaTest, ReportsChangedAddedAndRemoved) {
  ObjectSet base = MakeSet({"apiVersion: v1\nkind: A\nmetadata: {name: same}\n",
                            "apiVersion: v1\nkind: A\nmetadata: {name: changed}\n",
                            "apiVersion: v1\nkind: A\nmetadata: {name: gone}\n"});
  ObjectSet target = MakeSet({"apiVersion: v1\nkind: A\nmetadata: {name: same}\n",
                              "apiVersion: v1\nkind: A\nmetadata: {name: changed}\ndata: 2\n",
                              "apiVersion: v1\nkind: A\nmetadata: {name: new}\n"});
  ObjectDelta delta = ComputeDelta(base, target);
  ASSERT_EQ(delta.upserts.size(), 2u);
  EXPECT_EQ(delta.upserts[0]->key().name(), "changed");
  EXPECT_EQ(delta.upserts[1]->key().name(), "new");
  ASSERT_EQ(delta.removed.size(), 1u);
  EXPECT_EQ(delta.removed[0].name(), "gone");
}

TEST(KeyStringTest, RoundTrips) {
  auto key = ParseKeyString("apps/Deployment/shop/web");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(KeyString(*key), "apps/Deployment/shop/web");
  EXPECT_EQ(KeyDisplay(*key), "Deployment shop/web");
  EXPECT_THAT(ParseKeyString("a/b").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a/b")));
}

TEST(IgnoreDifferenceTest, ReadsTheFlagMatchesObjectsAndCountsInTheRevision) {
  absl::StatusOr<v1::IgnoreDifference> rule =
      ParseIgnoreDifference("apps/Deployment=/spec/replicas");
  ASSERT_TRUE(rule.ok()) << rule.status();
  EXPECT_EQ(rule->group(), "apps");
  EXPECT_EQ(rule->kind(), "Deployment");
  EXPECT_EQ(DescribeIgnoreDifference(*rule), "apps/Deployment=/spec/replicas");
  absl::StatusOr<v1::IgnoreDifference> named = ParseIgnoreDifference(
      "admissionregistration.k8s.io/ValidatingWebhookConfiguration:hooks="
      "/webhooks/0/clientConfig/caBundle,/metadata/annotations/a~1b");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->name(), "hooks");
  EXPECT_EQ(named->namespace_(), "");
  EXPECT_EQ(named->json_pointers_size(), 2);
  absl::StatusOr<v1::IgnoreDifference> core = ParseIgnoreDifference("ConfigMap:shop/web=/data/x");
  ASSERT_TRUE(core.ok()) << core.status();
  EXPECT_EQ(core->group(), "");
  EXPECT_EQ(core->namespace_(), "shop");
  EXPECT_EQ(DescribeIgnoreDifference(*core), "ConfigMap:shop/web=/data/x");

  v1::SyncOptions sync;
  *sync.add_ignore_differences() = *rule;
  *sync.add_ignore_differences() = *core;
  *sync.add_ignore_differences() = *ParseIgnoreDifference("*/*=/metadata/annotations/note");
  v1::ObjectKey deployment;
  deployment.set_group("apps");
  deployment.set_kind("Deployment");
  deployment.set_name("api");
  EXPECT_THAT(IgnoredPointers(sync.ignore_differences(), deployment, "shop"),
              ::testing::ElementsAre("/spec/replicas", "/metadata/annotations/note"));
  v1::ObjectKey web;
  web.set_kind("ConfigMap");
  web.set_name("web");
  EXPECT_THAT(IgnoredPointers(sync.ignore_differences(), web, "shop"),
              ::testing::ElementsAre("/data/x", "/metadata/annotations/note"));
  EXPECT_THAT(IgnoredPointers(sync.ignore_differences(), web, "other"),
              ::testing::ElementsAre("/metadata/annotations/note"));

  // It counts in the revision: an agent that does not know it refuses the revision.
  ObjectSet set = MakeSet({"apiVersion: v1\nkind: A\nmetadata: {name: x}\n"});
  EXPECT_NE(ComputeRevision(set, sync, ""), ComputeRevision(set, v1::SyncOptions(), ""));

  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"Deployment", "is not [GROUP/]KIND[:NAMESPACE/NAME]=/POINTER"},
           {"=/spec/replicas", "a kind"},
           {"apps/Deployment=spec/replicas", "is not a JSON pointer"},
           {"apps/Deployment=/spec/~2", "is not a JSON pointer"},
           {"apps/Deployment=", "is not a JSON pointer"},
           {"apps/Deployment:=/spec/replicas", "names no object"},
           {"apps/Deployment=/metadata/name", "names the object or its bundle"},
           {"apps/Deployment=/metadata/labels/gitfleet.io~1bundle", "names the object"},
       }) {
    absl::StatusOr<v1::IgnoreDifference> parsed = ParseIgnoreDifference(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr(says)) << bad;
  }
  v1::SyncOptions many;
  for (int i = 0; i < 65; ++i) *many.add_ignore_differences() = *rule;
  EXPECT_THAT(CheckIgnoreDifferences(many).message(), HasSubstr("at most 64"));
}

}  // namespace
}  // namespace gitfleet
