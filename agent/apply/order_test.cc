#include "agent/apply/order.h"

#include "absl/strings/str_cat.h"
#include "common/manifest/object.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;

v1::ManifestObject Obj(const std::string& api_version, const std::string& kind,
                       const std::string& name, const std::string& ns = "",
                       const std::string& wave = "") {
  std::string yaml = absl::StrCat("apiVersion: ", api_version, "\nkind: ", kind,
                                  "\nmetadata:\n  name: ", name, "\n");
  if (!ns.empty()) absl::StrAppend(&yaml, "  namespace: ", ns, "\n");
  if (!wave.empty()) {
    absl::StrAppend(&yaml, "  annotations:\n    gitfleet.io/sync-wave: \"", wave, "\"\n");
  }
  return *MakeObject(yaml, "test");
}

TEST(OrderTest, CrdsAndNamespacesFirstThenEverythingElseByWave) {
  std::vector<const v1::ManifestObject*> objects;
  ObjectSet set;
  set.Put(Obj("example.com/v1", "Widget", "w", "shop"));
  set.Put(Obj("v1", "ConfigMap", "late", "shop", "2"));
  set.Put(Obj("v1", "ConfigMap", "early", "shop", "-3"));
  set.Put(Obj("v1", "ConfigMap", "plain", "shop"));
  set.Put(Obj("rbac.authorization.k8s.io/v1", "ClusterRole", "view"));
  set.Put(Obj("rbac.authorization.k8s.io/v1", "ClusterRole", "first", "", "-1"));
  set.Put(Obj("v1", "Namespace", "shop"));
  set.Put(Obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com"));
  // In key order (as the agent holds them).
  for (const auto& [key, object] : set.objects()) objects.push_back(object.get());
  std::vector<std::string> names;
  for (const OrderedObject& o : ApplyOrder(
           objects, [](const v1::ManifestObject& o) { return !o.key().namespace_().empty(); })) {
    names.push_back(absl::StrCat(o.object->key().name(), "@", o.wave, o.gated ? "" : " first"));
  }
  // A namespaced object of a lower wave goes before a cluster-scoped one of a higher wave
  // (a webhook's Deployment before its ValidatingWebhookConfiguration); within a wave,
  // cluster-scoped objects go first.
  EXPECT_THAT(names, ElementsAre("widgets.example.com@0 first", "shop@0 first", "early@-3",
                                 "first@-1", "view@0", "plain@0", "w@0", "late@2"));
}

// An object as an older control plane could send it: unchecked.
v1::ManifestObject Unchecked(const std::string& annotations) {
  v1::ManifestObject object;
  object.set_yaml(
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\n"
      "  annotations:\n" +
      annotations);
  object.mutable_key()->set_kind("ConfigMap");
  object.mutable_key()->set_namespace_("shop");
  object.mutable_key()->set_name("a");
  return object;
}

TEST(OrderTest, WaveMustBeAnInteger) {
  EXPECT_EQ(*SyncWave(Obj("v1", "ConfigMap", "a", "", "7")), 7);
  EXPECT_EQ(*SyncWave(Obj("v1", "ConfigMap", "a")), 0);
  absl::StatusOr<int> bad = SyncWave(Unchecked("    gitfleet.io/sync-wave: \"1.5\"\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "ConfigMap shop/a: annotation gitfleet.io/sync-wave is \"1.5\", want an integer");
}

TEST(OrderTest, ArgoCdsWaveCountsAndGitfleetsWins) {
  auto with = [](const std::string& annotations) {
    return *MakeObject(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\n"
        "  annotations:\n" +
            annotations,
        "test");
  };
  EXPECT_EQ(*SyncWave(with("    argocd.argoproj.io/sync-wave: \"-2\"\n")), -2);
  EXPECT_EQ(*SyncWave(with("    argocd.argoproj.io/sync-wave: \"-2\"\n"
                           "    gitfleet.io/sync-wave: \"3\"\n")),
            3);
  EXPECT_EQ(*SyncWave(with("    other/sync-wave: \"9\"\n")), 0);
  absl::StatusOr<int> bad = SyncWave(Unchecked("    argocd.argoproj.io/sync-wave: soon\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "ConfigMap shop/a: annotation argocd.argoproj.io/sync-wave is \"soon\", want an "
            "integer");
}

TEST(OrderTest, PruneGoesTheOtherWay) {
  auto key = [](std::string group, std::string kind, std::string ns, std::string name) {
    v1::ObjectKey k;
    k.set_group(group);
    k.set_kind(kind);
    k.set_namespace_(ns);
    k.set_name(name);
    return k;
  };
  std::vector<v1::ObjectKey> order =
      PruneOrder({key("apiextensions.k8s.io", "CustomResourceDefinition", "", "crd"),
                  key("", "Namespace", "", "shop"),
                  key("rbac.authorization.k8s.io", "ClusterRole", "", "role"),
                  key("", "ConfigMap", "shop", "cm")});
  std::vector<std::string> names;
  for (const auto& k : order) names.push_back(k.name());
  EXPECT_THAT(names, ElementsAre("cm", "role", "shop", "crd"));
}

}  // namespace
}  // namespace gitfleet
