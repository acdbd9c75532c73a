#include "controlplane/fleet/variants.h"

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

v1::ClusterInfo Cluster(const std::string& name, const std::map<std::string, std::string>& labels) {
  v1::ClusterInfo info;
  info.set_name(name);
  info.mutable_labels()->insert(labels.begin(), labels.end());
  return info;
}

v1::Bundle BundleWithValues() {
  v1::Bundle bundle;
  bundle.set_name("web");
  (*bundle.mutable_values())["replicas"] = "2";
  (*bundle.mutable_values())["env"] = "default-env";
  v1::ClusterValues* prod = bundle.add_cluster_values();
  prod->set_selector("env=prod");
  (*prod->mutable_values())["replicas"] = "5";
  v1::ClusterValues* eu = bundle.add_cluster_values();
  eu->set_selector("region=eu");
  (*eu->mutable_values())["replicas"] = "3";
  (*eu->mutable_values())["size"] = "large";
  return bundle;
}

TEST(ValuesSpecTest, LabelsThenDefaultsThenFirstMatchingRule) {
  absl::StatusOr<ValuesSpec> spec = ValuesSpec::Parse(BundleWithValues());
  ASSERT_TRUE(spec.ok()) << spec.status();
  // prod in eu: the prod rule comes first and wins; its values replace the defaults but
  // the eu rule is not merged in.
  Values prod_eu = spec->ForCluster(Cluster("a", {{"env", "prod"}, {"region", "eu"}}));
  EXPECT_EQ(prod_eu["replicas"], "5");
  EXPECT_EQ(prod_eu.count("size"), 0u);
  EXPECT_EQ(prod_eu["env"], "default-env") << "defaults override labels";
  EXPECT_EQ(prod_eu["region"], "eu");
  EXPECT_EQ(prod_eu["cluster.name"], "a");
  Values dev_eu = spec->ForCluster(Cluster("b", {{"env", "dev"}, {"region", "eu"}}));
  EXPECT_EQ(dev_eu["replicas"], "3");
  EXPECT_EQ(dev_eu["size"], "large");
  Values other = spec->ForCluster(Cluster("c", {}));
  EXPECT_EQ(other["replicas"], "2");
  Values explicit_only = spec->ExplicitFor(Cluster("b", {{"env", "dev"}, {"region", "eu"}}));
  EXPECT_EQ(explicit_only, (Values{{"env", "default-env"}, {"replicas", "3"}, {"size", "large"}}));
}

TEST(ValuesSpecTest, BadRulesAreNamed) {
  v1::Bundle bundle;
  bundle.add_cluster_values()->set_selector("");
  absl::Status empty = ValuesSpec::Parse(bundle).status();
  EXPECT_THAT(empty.message(), HasSubstr("cluster_values[0]"));
  EXPECT_THAT(empty.message(), HasSubstr("selector is empty"));
  bundle.mutable_cluster_values(0)->set_selector("env in prod");
  absl::Status bad = ValuesSpec::Parse(bundle).status();
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.message(), HasSubstr("cluster_values[0] (env in prod)"));
  v1::Bundle names;
  (*names.mutable_values())["has space"] = "x";
  EXPECT_THAT(ValuesSpec::Parse(names).status().message(), HasSubstr("\"has space\""));
}

ObjectSet Objects(const std::string& yaml) {
  ObjectSet set;
  absl::StatusOr<std::vector<v1::ManifestObject>> objects = ParseManifests(yaml, "t.yaml");
  EXPECT_TRUE(objects.ok()) << objects.status();
  for (auto& o : *objects) EXPECT_TRUE(set.Add(o, "t.yaml").ok());
  return set;
}

struct Built {
  std::atomic<int> count{0};
};

BundleVariants::Params Params(const v1::Bundle& bundle, Built* built) {
  BundleVariants::Params params;
  params.bundle = "web";
  params.commit = "c1";
  params.values = *ValuesSpec::Parse(bundle);
  params.on_new_revision = [built](const std::shared_ptr<const Revision>&) { ++built->count; };
  return params;
}

constexpr char kConfig[] =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n"
    "  replicas: \"${replicas}\"\n  region: ${region:=none}\n";

TEST(BundleVariantsTest, NoReferencesMeansOneRevisionForAll) {
  Built built;
  auto content = BundleVariants::FromTemplate(
      Params(BundleWithValues(), &built),
      Objects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n"));
  ASSERT_TRUE(content.ok());
  ASSERT_NE((*content)->Uniform(), nullptr);
  EXPECT_EQ(*(*content)->For(Cluster("a", {{"env", "prod"}})), (*content)->Uniform());
  EXPECT_EQ(built.count, 0);
}

TEST(BundleVariantsTest, ClustersAgreeingOnWhatWasReadShareARevision) {
  Built built;
  auto content = BundleVariants::FromTemplate(Params(BundleWithValues(), &built), Objects(kConfig));
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ((*content)->Uniform(), nullptr);
  auto prod1 = (*content)->For(Cluster("p1", {{"env", "prod"}, {"region", "us"}, {"x", "1"}}));
  auto prod2 = (*content)->For(Cluster("p2", {{"env", "prod"}, {"region", "us"}, {"x", "2"}}));
  auto prod_eu = (*content)->For(Cluster("p3", {{"env", "prod"}, {"region", "eu"}}));
  auto dev = (*content)->For(Cluster("d1", {{"env", "dev"}}));
  ASSERT_TRUE(prod1.ok() && prod2.ok() && prod_eu.ok() && dev.ok());
  EXPECT_EQ(*prod1, *prod2) << "label x and the cluster name were never read";
  EXPECT_NE((*prod1)->id, (*prod_eu)->id);
  EXPECT_NE((*prod1)->id, (*dev)->id);
  EXPECT_THAT((*prod1)->objects.objects().begin()->second->yaml(), HasSubstr("replicas: \"5\""));
  EXPECT_THAT((*dev)->objects.objects().begin()->second->yaml(), HasSubstr("region: none"));
  EXPECT_EQ(built.count, 3);
  EXPECT_EQ((*content)->RevisionIds().size(), 3u);
  EXPECT_EQ((*content)->Find((*dev)->id), *dev);
  EXPECT_EQ((*content)->Find("nope"), nullptr);
}

TEST(BundleVariantsTest, AMissingValueFailsOnlyThatCluster) {
  Built built;
  v1::Bundle no_defaults;
  auto content = BundleVariants::FromTemplate(Params(no_defaults, &built), Objects(kConfig));
  ASSERT_TRUE(content.ok());
  bool depends = false;
  auto missing = (*content)->For(Cluster("a", {}), &depends);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(depends);
  EXPECT_THAT(missing.status().message(), HasSubstr("ConfigMap cfg"));
  EXPECT_THAT(missing.status().message(), HasSubstr("${replicas}"));
  EXPECT_TRUE((*content)->For(Cluster("b", {{"replicas", "4"}})).ok());
}

TEST(BundleVariantsTest, SubstitutionIsOptInAndAnObjectMayOptOut) {
  Built built;
  const std::string text =
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: ${env}\n";
  // Not asked for: ${env} passes through, one revision for everyone.
  BundleVariants::Params off = Params(v1::Bundle(), &built);
  off.substitute = false;
  auto plain = BundleVariants::FromTemplate(off, Objects(text));
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_NE((*plain)->Uniform(), nullptr);
  EXPECT_THAT((*plain)->Uniform()->objects.objects().begin()->second->yaml(), HasSubstr("${env}"));
  EXPECT_THAT((*plain)->notes(),
              ::testing::ElementsAre("ConfigMap cfg holds ${env}, applied as written: this bundle "
                                     "substitutes nothing (it has no --values, --cluster-values "
                                     "or --values-file, nor --substitute)"))
      << "said, as a definition replaced without its --values stops substituting";
  // An object that opts out is never substituted.
  auto opted_out = BundleVariants::FromTemplate(
      Params(v1::Bundle(), &built),
      Objects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  annotations:\n"
              "    gitfleet.io/substitute: disabled\ndata:\n  a: ${env}\n"));
  ASSERT_TRUE(opted_out.ok()) << opted_out.status();
  EXPECT_NE((*opted_out)->Uniform(), nullptr);
  v1::Bundle with_values;
  (*with_values.mutable_values())["x"] = "1";
  EXPECT_TRUE(WantsSubstitution(with_values));
  EXPECT_FALSE(WantsSubstitution(v1::Bundle()));
  v1::Bundle asked;
  asked.set_substitute(true);
  EXPECT_TRUE(WantsSubstitution(asked));
}

// A Flux repository's HelmReleases and an Argo CD app of apps deploy nothing by
// themselves: the render says which tool in the cluster acts on them.
TEST(BundleVariantsTest, ObjectsAnotherGitOpsToolActsOnAreNamed) {
  Built built;
  std::string text =
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n---\n"
      "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook\n"
      "  namespace: argocd\n";
  for (const char* name : {"a", "b", "c", "d"}) {
    absl::StrAppend(&text, "---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n",
                    "metadata:\n  name: ", name, "\n  namespace: podinfo\n");
  }
  auto content = BundleVariants::FromTemplate(Params(v1::Bundle(), &built), Objects(text));
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_THAT((*content)->notes(),
              ::testing::ElementsAre(
                  HasSubstr("holds 4 HelmRelease (helm.toolkit.fluxcd.io) objects podinfo/a, "
                            "podinfo/b, podinfo/c, ...: Flux's helm-controller in the cluster "
                            "installs its chart, not gitfleet"),
                  HasSubstr("holds 1 Application (argoproj.io) object argocd/guestbook: Argo CD "
                            "in the cluster deploys what it names")));
  auto plain = BundleVariants::FromTemplate(
      Params(v1::Bundle(), &built),
      Objects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: HelmRelease\n"));
  ASSERT_TRUE(plain.ok());
  EXPECT_THAT((*plain)->notes(), ::testing::IsEmpty());
}

// What a renderer does to look up `name`: its value, if any, recorded in *read.
std::optional<std::string> LookUp(const Values& values, const std::string& name, ReadValues* read) {
  auto it = values.find(name);
  std::optional<std::string> value =
      it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
  (*read)[name] = value;
  return value;
}

ObjectSet ConfigMapNamed(const std::string& name) {
  return Objects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n");
}

// Renderer-mode content of BundleWithValues whose renders are counted in *renders.
std::shared_ptr<BundleVariants> CountedRenderer(Built* built, std::atomic<int>* renders,
                                                BundleVariants::RenderFn render) {
  return BundleVariants::FromRenderer(
      Params(BundleWithValues(), built),
      [renders, render](const Values& values, ReadValues* read) {
        ++*renders;
        return render(values, read);
      },
      /*explicit_only=*/false);
}

TEST(BundleVariantsTest, RendererRunsOncePerDistinctReadValues) {
  Built built;
  std::atomic<int> renders{0};
  auto content = CountedRenderer(
      &built, &renders, [](const Values& values, ReadValues* read) -> absl::StatusOr<ObjectSet> {
        std::optional<std::string> tier = LookUp(values, "tier", read);
        if (!tier.has_value()) return absl::InvalidArgumentError("tier is required");
        return ConfigMapNamed(*tier);
      });
  EXPECT_TRUE((*content).For(Cluster("a", {{"tier", "web"}, {"env", "prod"}})).ok());
  EXPECT_TRUE((*content).For(Cluster("b", {{"tier", "web"}, {"env", "dev"}})).ok());
  EXPECT_TRUE((*content).For(Cluster("c", {{"tier", "api"}})).ok());
  bool depends = false;
  EXPECT_FALSE((*content).For(Cluster("d", {}), &depends).ok());
  EXPECT_TRUE(depends);
  EXPECT_FALSE((*content).For(Cluster("e", {})).ok());
  EXPECT_EQ(renders, 3);
  EXPECT_EQ(built.count, 2);
  EXPECT_EQ(content->Uniform(), nullptr);
}

// A bundle that names each cluster builds one revision per cluster: a fleet of ten
// thousand keeps every one (none is dropped and built again), each found at once.
TEST(BundleVariantsTest, ARevisionPerClusterStaysBuiltForTheWholeFleet) {
  Built built;
  v1::Bundle bundle = BundleWithValues();
  auto content = BundleVariants::FromTemplate(
      Params(bundle, &built),
      Objects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n"
              "  who: ${cluster.name}\n"));
  ASSERT_TRUE(content.ok()) << content.status();
  constexpr int kClusters = 10000;
  std::vector<std::string> ids;
  for (int i = 0; i < kClusters; ++i) {
    absl::StatusOr<std::shared_ptr<const Revision>> revision =
        (*content)->For(Cluster(absl::StrCat("c", i), {{"env", "prod"}}));
    ASSERT_TRUE(revision.ok()) << revision.status();
    ids.push_back((*revision)->id);
  }
  EXPECT_EQ(built.count, kClusters);
  for (int i = 0; i < kClusters; ++i) {
    auto revision = (*content)->Built(Cluster(absl::StrCat("c", i), {{"env", "dev"}}));
    ASSERT_TRUE(revision.has_value()) << "c" << i << " was dropped";
    ASSERT_TRUE(revision->ok());
    ASSERT_EQ((**revision)->id, ids[i]);
    ASSERT_EQ((*content)->Find(ids[i]), **revision);
  }
  EXPECT_EQ((*content)->builds(), static_cast<uint64_t>(kClusters));
}

// A revision per cluster holds its own copy only of the objects substitution changed: the
// rest are the template's, shared (at fleet size, the difference between megabytes and
// gigabytes).
TEST(BundleVariantsTest, RevisionsShareTheObjectsSubstitutionLeavesAlone) {
  Built built;
  auto content = BundleVariants::FromTemplate(
      Params(BundleWithValues(), &built),
      Objects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: who\ndata:\n"
              "  who: ${cluster.name}\n---\n"
              "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\ndata:\n  a: b\n---\n"
              "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  annotations:\n"
              "    gitfleet.io/substitute: disabled\ndata:\n  a: ${as-written}\n"));
  ASSERT_TRUE(content.ok()) << content.status();
  auto a = (*content)->For(Cluster("a", {}));
  auto b = (*content)->For(Cluster("b", {}));
  ASSERT_TRUE(a.ok() && b.ok());
  const auto& template_objects = (*content)->template_revision()->objects.objects();
  const auto& ours = (*a)->objects.objects();
  const auto& theirs = (*b)->objects.objects();
  ASSERT_EQ(ours.size(), 3u);
  for (const char* key : {"/ConfigMap//same", "/ConfigMap//kept"}) {
    EXPECT_EQ(ours.at(key), template_objects.at(key)) << key << " was copied";
    EXPECT_EQ(ours.at(key), theirs.at(key)) << key;
  }
  EXPECT_NE(ours.at("/ConfigMap//who"), template_objects.at("/ConfigMap//who"));
  EXPECT_THAT(ours.at("/ConfigMap//who")->yaml(), HasSubstr("who: a"));
  EXPECT_THAT(theirs.at("/ConfigMap//who")->yaml(), HasSubstr("who: b"));
  EXPECT_THAT(template_objects.at("/ConfigMap//who")->yaml(), HasSubstr("${cluster.name}"));
  ObjectDelta delta = ComputeDelta((*a)->objects, (*b)->objects);
  ASSERT_EQ(delta.upserts.size(), 1u);
  EXPECT_EQ(delta.upserts[0], theirs.at("/ConfigMap//who").get());
  // The bound on variants' bytes counts what they hold alone.
  EXPECT_EQ((*content)->variant_bytes(), ours.at("/ConfigMap//who")->yaml().size() +
                                             theirs.at("/ConfigMap//who")->yaml().size());
}

// A renderer's variants (jsonnet, helm) render every object afresh: those that come out
// the same as in the first variant are that variant's, shared.
TEST(BundleVariantsTest, RenderedVariantsShareTheObjectsTheyRenderAlike) {
  Built built;
  std::atomic<int> renders{0};
  auto content = CountedRenderer(
      &built, &renders, [](const Values& values, ReadValues* read) -> absl::StatusOr<ObjectSet> {
        std::optional<std::string> tier = LookUp(values, "tier", read);
        ObjectSet set = ConfigMapNamed("common");
        const ObjectSet own = ConfigMapNamed(tier.value_or("none"));
        for (const auto& [key, object] : own.objects()) {
          if (absl::Status s = set.Add(object, "t"); !s.ok()) return s;
        }
        return set;
      });
  auto web = content->For(Cluster("a", {{"tier", "web"}}));
  auto api = content->For(Cluster("b", {{"tier", "api"}}));
  ASSERT_TRUE(web.ok() && api.ok());
  ASSERT_EQ(renders, 2);
  const auto& first = (*web)->objects.objects();
  const auto& second = (*api)->objects.objects();
  ASSERT_EQ(first.size(), 2u);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(first.at("/ConfigMap//common"), second.at("/ConfigMap//common")) << "not shared";
  EXPECT_EQ(second.count("/ConfigMap//web"), 0u);
  EXPECT_THAT(second.at("/ConfigMap//api")->yaml(), HasSubstr("name: api"));
  EXPECT_NE((*web)->id, (*api)->id);
  EXPECT_EQ(content->variant_bytes(),
            (*web)->objects.bytes() + second.at("/ConfigMap//api")->yaml().size())
      << "the shared object counts once";
}

// Variants that read different names are each found by what they read.
TEST(BundleVariantsTest, VariantsThatReadDifferentNamesAreEachFound) {
  Built built;
  std::atomic<int> renders{0};
  auto content = CountedRenderer(
      &built, &renders, [](const Values& values, ReadValues* read) -> absl::StatusOr<ObjectSet> {
        std::string name = LookUp(values, "tier", read).value_or("");
        if (name == "web") {  // only web reads the region
          name += "-" + LookUp(values, "region", read).value_or("none");
        }
        return ConfigMapNamed(name);
      });
  for (const auto& [tier, region] : std::vector<std::pair<std::string, std::string>>{
           {"web", "eu"}, {"web", "us"}, {"api", "eu"}, {"api", "us"}}) {
    ASSERT_TRUE(content->For(Cluster("x", {{"tier", tier}, {"region", region}})).ok());
  }
  ASSERT_TRUE(content->For(Cluster("x", {{"tier", "web"}})).ok());
  EXPECT_EQ(renders, 4) << "api clusters share one render";
  auto built_for = [&](const std::map<std::string, std::string>& labels) -> std::string {
    auto revision = content->Built(Cluster("y", labels));
    if (!revision.has_value() || !revision->ok()) return "";
    return (**revision)->objects.objects().begin()->second->key().name();
  };
  EXPECT_EQ(built_for({{"tier", "api"}, {"region", "ap"}}), "api");
  EXPECT_EQ(built_for({{"tier", "web"}, {"region", "us"}}), "web-us");
  EXPECT_EQ(built_for({{"tier", "web"}}), "web-none") << "an absent value is a value too";
  EXPECT_EQ(built_for({{"tier", "web"}, {"region", "ap"}}), "") << "not built";
}

TEST(BundleVariantsTest, RendererThatReadsNothingIsUniform) {
  Built built;
  int renders = 0;
  auto content = BundleVariants::FromRenderer(
      Params(BundleWithValues(), &built),
      [&](const Values&, ReadValues*) -> absl::StatusOr<ObjectSet> {
        ++renders;
        return Objects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n");
      },
      false);
  EXPECT_EQ(content->Uniform(), nullptr) << "not known before the first render";
  auto a = content->For(Cluster("a", {{"env", "prod"}}));
  auto b = content->For(Cluster("b", {{"env", "dev"}}));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(content->Uniform(), *a);
  EXPECT_EQ(renders, 1);
}

TEST(BundleVariantsTest, ConcurrentLookupsBuildEachVariantOnce) {
  Built built;
  auto content = BundleVariants::FromTemplate(Params(v1::Bundle(), &built), Objects(kConfig));
  ASSERT_TRUE(content.ok());
  std::vector<std::thread> threads;
  std::vector<std::map<std::string, std::string>> seen(4);  // per thread: replicas -> id
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string replicas = std::to_string(i % 5);
        auto revision = (*content)->For(Cluster(
            "c" + std::to_string(i % 20), {{"replicas", replicas}, {"n", std::to_string(i)}}));
        ASSERT_TRUE(revision.ok());
        auto [it, inserted] = seen[t].emplace(replicas, (*revision)->id);
        EXPECT_EQ(it->second, (*revision)->id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 1; t < 4; ++t) EXPECT_EQ(seen[t], seen[0]);
  EXPECT_EQ(built.count, 5) << "each distinct variant is announced (and stored) once";
  EXPECT_EQ((*content)->RevisionIds().size(), 5u);
}

TEST(BundleVariantsTest, ShellFormsLeftAsWrittenAreNotedNotFailed) {
  Built built;
  auto content = BundleVariants::FromTemplate(
      Params(BundleWithValues(), &built),
      Objects("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: backup}\n"
              "data: {run.sh: \"exit ${BACKUP_EXIT:-0}; echo ${#ARGS[@]} ${env}\"}\n"));
  ASSERT_TRUE(content.ok()) << content.status();
  ASSERT_EQ((*content)->notes().size(), 1u);
  EXPECT_THAT((*content)->notes()[0], HasSubstr("ConfigMap backup: left ${#ARGS[@]} as written"));
  auto revision = (*content)->For(Cluster("eu", {}));
  ASSERT_TRUE(revision.ok()) << revision.status();
  EXPECT_THAT(revision->get()->objects.objects().begin()->second->yaml(),
              HasSubstr("exit 0; echo ${#ARGS[@]} default-env"));
}

TEST(BundleVariantsTest, OnlyFormsLeftAsWrittenKeepOneRevisionForAll) {
  Built built;
  auto content = BundleVariants::FromTemplate(
      Params(BundleWithValues(), &built),
      Objects("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: backup}\n"
              "data: {run.sh: \"echo ${#ARGS[@]}\"}\n"));
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_NE((*content)->Uniform(), nullptr);
  EXPECT_EQ((*content)->notes().size(), 1u);
}

}  // namespace
}  // namespace gitfleet
