#include "controlplane/render/values.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

TEST(SubstituteTest, ValuesDefaultsAndEscapes) {
  Values values = {{"env", "prod"}, {"topology.kubernetes.io/zone", "eu-1a"}};
  ReadValues read;
  absl::StatusOr<std::string> out = Substitute(
      "name: web-${env}\nzone: ${topology.kubernetes.io/zone}\nreplicas: ${replicas:=2}\n"
      "script: echo $${HOME} costs $5 and $$ too\nempty: ${missing:=}\n",
      values, &read);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "name: web-prod\nzone: eu-1a\nreplicas: 2\nscript: echo ${HOME} costs $5 and $$ too\n"
            "empty: \n");
  ReadValues want = {{"env", "prod"},
                     {"topology.kubernetes.io/zone", "eu-1a"},
                     {"replicas", std::nullopt},
                     {"missing", std::nullopt}};
  EXPECT_EQ(read, want);
}

TEST(SubstituteTest, SetValueBeatsDefault) {
  absl::StatusOr<std::string> out = Substitute("${replicas:=2}", {{"replicas", "5"}}, nullptr);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "5");
}

TEST(SubstituteTest, UnknownVariableIsNamed) {
  absl::StatusOr<std::string> out = Substitute("a: ${region}\n", {}, nullptr);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("${region} has no value and no default"));
}

TEST(SubstituteTest, OtherFormsAreLeftAsWritten) {
  // Shell scripts and configs in ConfigMaps: what is not one of our forms is not ours.
  for (const char* text :
       {"${}", "${a b}", "${unterminated", "${#arr[@]}", "${a:=x\ny}", "echo ${HOME%%/*}"}) {
    absl::StatusOr<std::string> out = Substitute(text, {{"a", "1"}}, nullptr);
    ASSERT_TRUE(out.ok()) << text << ": " << out.status();
    EXPECT_EQ(*out, text);
  }
  // The shell's default form gives a default, as ${a:=…} does.
  EXPECT_EQ(*Substitute("exit ${BACKUP_EXIT:-0}", {}, nullptr), "exit 0");
  EXPECT_EQ(*Substitute("exit ${BACKUP_EXIT:-0}", {{"BACKUP_EXIT", "3"}}, nullptr), "exit 3");
}

TEST(VariableNamesTest, ListsEveryReference) {
  absl::StatusOr<std::set<std::string>> names = VariableNames("${a} $${b} ${c:=1} ${a}");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::set<std::string>{"a", "c"}));
}

TEST(AgreesTest, PresentAbsentAndDifferent) {
  ReadValues read = {{"env", "prod"}, {"tier", std::nullopt}};
  EXPECT_TRUE(Agrees(read, {{"env", "prod"}, {"other", "x"}}));
  EXPECT_FALSE(Agrees(read, {{"env", "dev"}}));
  EXPECT_FALSE(Agrees(read, {{"env", "prod"}, {"tier", "web"}}));
  EXPECT_FALSE(Agrees(read, {}));
}

ObjectSet Template(const std::string& yaml) {
  ObjectSet set;
  absl::StatusOr<std::vector<v1::ManifestObject>> objects = ParseManifests(yaml, "t.yaml");
  EXPECT_TRUE(objects.ok()) << objects.status();
  for (auto& o : *objects) EXPECT_TRUE(set.Add(o, "t.yaml").ok());
  return set;
}

TEST(SubstituteObjectsTest, ReparsesChangedObjectsOnly) {
  ObjectSet set = Template(
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  a: b\n---\n"
      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-${env}\n"
      "spec:\n  replicas: ${replicas:=1}\n");
  ReadValues read;
  absl::StatusOr<ObjectSet> out =
      SubstituteObjects(set, {{"env", "prod"}, {"replicas", "3"}}, &read);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  const v1::ManifestObject& deploy = *out->objects().at("apps/Deployment//web-prod");
  EXPECT_THAT(deploy.yaml(), HasSubstr("replicas: 3"));
  EXPECT_EQ(out->objects().at("/ConfigMap//plain")->content_hash(),
            set.objects().at("/ConfigMap//plain")->content_hash());
  EXPECT_EQ(read.size(), 2u);
}

TEST(SubstituteObjectsTest, ErrorsNameTheObject) {
  ObjectSet set = Template(
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  region: ${region}\n");
  absl::StatusOr<ObjectSet> out = SubstituteObjects(set, {}, nullptr);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("ConfigMap cfg"));
  EXPECT_THAT(out.status().message(), HasSubstr("${region}"));
  // A value that breaks the YAML is caught by re-parsing.
  out = SubstituteObjects(set, {{"region", "a: b: c"}}, nullptr);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("after substituting values"));
}

// An object opts out by gitfleet's annotation or Flux's (labelled or annotated), as
// kustomize-controller reads it; text that merely mentions one opts nothing out.
TEST(SubstituteObjectsTest, ObjectsThatOptOutAreLeftAsWritten) {
  ObjectSet set = Template(
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flux\n  annotations:\n"
      "    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  run: echo ${HOME}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: labelled\n  labels:\n"
      "    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  run: echo ${HOME}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: own\n  annotations:\n"
      "    gitfleet.io/substitute: disabled\ndata:\n  run: echo ${HOME}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: enabled\n  annotations:\n"
      "    kustomize.toolkit.fluxcd.io/substitute: enabled\ndata:\n  env: ${env}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: docs\ndata:\n"
      "  howto: 'annotate it gitfleet.io/substitute: disabled'\n  env: ${env}\n");
  absl::StatusOr<ObjectSet> out = SubstituteObjects(set, {{"env", "prod"}}, nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  for (const char* name : {"flux", "labelled", "own"}) {
    EXPECT_THAT(out->objects().at(absl::StrCat("/ConfigMap//", name))->yaml(),
                HasSubstr("echo ${HOME}"))
        << name;
  }
  for (const char* name : {"enabled", "docs"}) {
    EXPECT_THAT(out->objects().at(absl::StrCat("/ConfigMap//", name))->yaml(),
                HasSubstr("env: prod"))
        << name;
  }
}

TEST(ValuesTest, FormsLeftAsWrittenAreListedOnce) {
  EXPECT_THAT(UnsubstitutedForms("a: ${env}\nrun: echo ${#A[@]} ${x%%y} ${#A[@]} $${esc} ${open"),
              ::testing::ElementsAre("${#A[@]}", "${x%%y}", "${open"));
  EXPECT_TRUE(UnsubstitutedForms("a: ${env:-dev} ${b:=1}").empty());
}

}  // namespace
}  // namespace gitfleet
