#include "common/manifest/hook.h"

#include "common/manifest/object.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<std::optional<Hook>> Parse(const std::string& annotations,
                                          const std::string& name = "generateName: h-") {
  absl::StatusOr<v1::ManifestObject> object = MakeObject(
      "apiVersion: batch/v1\nkind: Job\nmetadata:\n  " + name + "\n  annotations:\n" + annotations,
      "test");
  if (!object.ok()) return object.status();
  return HookOf(*object);
}

TEST(HookTest, PlainObjectsAreNotHooks) {
  absl::StatusOr<v1::ManifestObject> object = MakeObject(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
      "data: {note: \"see helm.sh/hook docs\"}\n",
      "t");
  ASSERT_TRUE(object.ok());
  absl::StatusOr<std::optional<Hook>> hook = HookOf(*object);
  ASSERT_TRUE(hook.ok()) << hook.status();
  EXPECT_FALSE(hook->has_value()) << "a mention in data is not an annotation";
}

TEST(HookTest, ArgoPhasesAndPolicies) {
  auto hook = Parse(
      "    argocd.argoproj.io/hook: PreSync,PostSync\n"
      "    argocd.argoproj.io/hook-delete-policy: HookSucceeded, HookFailed\n"
      "    argocd.argoproj.io/sync-wave: \"-2\"\n");
  ASSERT_TRUE(hook.ok()) << hook.status();
  ASSERT_TRUE(hook->has_value());
  const Hook& h = **hook;
  EXPECT_THAT(h.phases, ElementsAre(HookPhase::kPreSync, HookPhase::kPostSync));
  EXPECT_TRUE(h.Runs(HookPhase::kPostSync));
  EXPECT_FALSE(h.Runs(HookPhase::kSync));
  EXPECT_TRUE(h.delete_on_success);
  EXPECT_TRUE(h.delete_on_failure);
  EXPECT_FALSE(h.delete_before_creation) << "an explicit policy replaces the default";
  EXPECT_EQ(h.wave, -2);
  EXPECT_TRUE(h.generated_name);
}

TEST(HookTest, WithoutAPolicyThePreviousRunIsDeletedBeforeTheNext) {
  auto hook = Parse("    argocd.argoproj.io/hook: Sync\n", "name: fixed");
  ASSERT_TRUE(hook.ok() && hook->has_value());
  EXPECT_TRUE((*hook)->delete_before_creation);
  EXPECT_FALSE((*hook)->delete_on_success);
  EXPECT_FALSE((*hook)->generated_name);
}

TEST(HookTest, HelmHooksMapToPhasesAndWeights) {
  auto hook = Parse(
      "    helm.sh/hook: pre-install,pre-upgrade,post-install\n"
      "    helm.sh/hook-weight: \"5\"\n"
      "    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded\n");
  ASSERT_TRUE(hook.ok() && hook->has_value()) << hook.status();
  EXPECT_THAT((*hook)->phases, ElementsAre(HookPhase::kPreSync, HookPhase::kPostSync));
  EXPECT_EQ((*hook)->wave, 5);
  EXPECT_TRUE((*hook)->delete_before_creation);
  EXPECT_TRUE((*hook)->delete_on_success);

  // Argo CD's annotation wins when both are present.
  hook = Parse("    helm.sh/hook: post-install\n    argocd.argoproj.io/hook: SyncFail\n");
  ASSERT_TRUE(hook.ok() && hook->has_value());
  EXPECT_THAT((*hook)->phases, ElementsAre(HookPhase::kSyncFail));
}

TEST(HookTest, DeleteHooksRunOnRemoval) {
  auto hook = Parse("    helm.sh/hook: pre-delete,post-delete\n");
  ASSERT_TRUE(hook.ok() && hook->has_value()) << hook.status();
  EXPECT_THAT((*hook)->phases, ElementsAre(HookPhase::kPreDelete, HookPhase::kPostDelete));
  EXPECT_TRUE((*hook)->never_runs.empty());
  hook = Parse("    argocd.argoproj.io/hook: PreDelete\n");
  ASSERT_TRUE(hook.ok() && hook->has_value());
  EXPECT_THAT((*hook)->phases, ElementsAre(HookPhase::kPreDelete));
  hook = Parse("    argocd.argoproj.io/hook: PostDelete\n");
  ASSERT_TRUE(hook.ok() && hook->has_value());
  EXPECT_THAT((*hook)->phases, ElementsAre(HookPhase::kPostDelete));
  EXPECT_STREQ(HookPhaseName(HookPhase::kPostDelete), "PostDelete");
}

TEST(HookTest, HooksOfOtherOperationsNeverRun) {
  for (const char* annotations : {"    helm.sh/hook: test\n", "    helm.sh/hook: pre-rollback\n",
                                  "    argocd.argoproj.io/hook: Skip\n"}) {
    auto hook = Parse(annotations);
    ASSERT_TRUE(hook.ok() && hook->has_value()) << annotations;
    EXPECT_TRUE((*hook)->phases.empty()) << annotations;
    EXPECT_FALSE((*hook)->never_runs.empty()) << annotations;
  }
}

TEST(HookTest, UnknownValuesAreErrorsNamingThem) {
  EXPECT_THAT(Parse("    argocd.argoproj.io/hook: PreSynk\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("argocd.argoproj.io/hook has \"PreSynk\", want one of PreSync")));
  EXPECT_THAT(Parse("    helm.sh/hook: pre-instal\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"pre-instal\"")));
  EXPECT_THAT(
      Parse("    helm.sh/hook: pre-install\n    helm.sh/hook-delete-policy: always\n").status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("helm.sh/hook-delete-policy has \"always\"")));
  EXPECT_THAT(Parse("    helm.sh/hook: pre-install\n    helm.sh/hook-weight: heavy\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("helm.sh/hook-weight is \"heavy\", want an integer")));
}

}  // namespace
}  // namespace gitfleet
