#include "controlplane/render/argocd_source.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What Argo CD Image Updater's git write-back leaves: the app's file over the shared one,
// its lists replacing the shared file's; keys matched as Go's JSON reader matches them.
TEST(ArgoCdSourceTest, TheAppsFileIsMergedOverTheSharedOne) {
  std::vector<RepoFile> files = {
      {"apps/web/.argocd-source.yaml",
       "kustomize:\n  images: [nginx:1.24]\nhelm:\n  parameters:\n  - {name: a, value: '1'}\n"},
      {"apps/web/.argocd-source-web.yaml",
       "helm:\n"
       "  parameters:\n"
       "  - name: image.tag\n"
       "    value: 1.25.3\n"
       "    forcestring: true\n"
       "  - name: replicas\n"
       "    value: \"3\"\n"
       "  valueFiles: [prod.yaml]\n"
       "directory: {recurse: true}\n"},
      {"apps/web/.argocd-source-api.yaml", "kustomize: {images: [api:2]}\n"},
      {"apps/other/.argocd-source.yaml", "kustomize: {images: [other:9]}\n"},
  };
  absl::StatusOr<ArgoCdSource> source = ReadArgoCdSource("apps/web", "web", files);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_THAT(source->files,
              ElementsAre("apps/web/.argocd-source.yaml", "apps/web/.argocd-source-web.yaml"));
  EXPECT_THAT(source->kustomize_images, ElementsAre("nginx:1.24"));
  EXPECT_THAT(source->other_apps, ElementsAre("api")) << "another app's file, not read";
  ASSERT_EQ(source->helm_parameters.size(), 2u);
  EXPECT_EQ(source->helm_parameters[0].name, "image.tag");
  EXPECT_EQ(source->helm_parameters[0].value, "1.25.3");
  EXPECT_TRUE(source->helm_parameters[0].force_string);
  EXPECT_EQ(source->helm_parameters[1].value, "3");
  EXPECT_FALSE(source->helm_parameters[1].force_string);
  EXPECT_THAT(source->unread, ElementsAre("directory", "helm.valueFiles"));

  absl::StatusOr<ArgoCdSource> none = ReadArgoCdSource("apps/api", "api", files);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->files.empty());
  EXPECT_FALSE(none->has_kustomize_images || none->has_helm_parameters);
}

TEST(ArgoCdSourceTest, WhatArgoCdWouldRefuseIsRefusedNamingTheFileAndField) {
  struct Case {
    std::string text;
    std::string message;
  } cases[] = {
      {"- a\n", "is not a mapping of source fields"},
      {"helm: {parameters: {a: 1}}\n", "helm.parameters is not a list"},
      {"helm: {parameters: [{value: x}]}\n", "helm.parameters[0] has no name"},
      {"helm: {parameters: [{name: a, forceString: maybe}]}\n",
       "helm.parameters[0].forceString is not true or false"},
      {"helm: {parameters: [{name: 'a=b', value: x}]}\n", "holds '=' or ','"},
      {"kustomize: {images: [{name: x}]}\n", "kustomize.images[0] is not an image"},
      {"kustomize: {images: [a:1]}\nkustomize: {images: [b:1]}\n", "kustomize"},
      {"helm: [\n", "invalid YAML"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ReadArgoCdSource("", "web", {{".argocd-source.yaml", c.text}}).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(".argocd-source.yaml")))
        << c.text;
    EXPECT_THAT(ReadArgoCdSource("", "web", {{".argocd-source.yaml", c.text}}).status().message(),
                HasSubstr(c.message))
        << c.text;
  }
  std::string many = "kustomize:\n  images:\n";
  for (size_t i = 0; i <= kMaxArgoCdOverrides; ++i) absl::StrAppend(&many, "  - a", i, ":1\n");
  EXPECT_THAT(ReadArgoCdSource("", "web", {{".argocd-source.yaml", many}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 256 are read")));
}

// As `kustomize edit set image`: an entry of the same name is updated (a tag drops the
// digest and the other way round, "*" keeps what was there), others are added, and the
// list is written sorted by name.
TEST(ArgoCdSourceTest, ImagesAreSetAsKustomizeEditSetImageSetsThem) {
  const std::string kustomization =
      "resources: [deploy.yaml]\n"
      "images:\n"
      "- name: nginx\n"
      "  newTag: \"1.24\"\n"
      "- name: redis\n"
      "  digest: sha256:aaaa\n"
      "- name: api\n"
      "  newName: registry.example.com/api\n"
      "  newTag: v1\n";
  absl::StatusOr<std::string> edited = SetKustomizeImages(
      kustomization, {"nginx:1.25.3", "redis:7", "api=registry.example.com/team/api:*",
                      "busybox=registry.example.com/busybox@sha256:bbbb"});
  ASSERT_TRUE(edited.ok()) << edited.status();
  EXPECT_EQ(*edited,
            "resources:\n"
            "  - deploy.yaml\n"
            "images:\n"
            "  - name: api\n"
            "    newName: registry.example.com/team/api\n"
            "    newTag: v1\n"
            "  - name: busybox\n"
            "    newName: registry.example.com/busybox\n"
            "    digest: sha256:bbbb\n"
            "  - name: nginx\n"
            "    newTag: \"1.25.3\"\n"
            "  - name: redis\n"
            "    newTag: \"7\"\n");
  for (const char* bad : {"nginx", "localhost:5000/nginx", "=x:1", "a=b=c"}) {
    EXPECT_THAT(SetKustomizeImages(kustomization, {bad}).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("is not one kustomize edit set image takes")))
        << bad;
  }
  ASSERT_TRUE(SetKustomizeImages("", {"nginx:1"}).ok());
}

TEST(ArgoCdSourceTest, HelmValuesAreEscapedAsArgoCdEscapesThem) {
  EXPECT_EQ(ArgoCdHelmSetValue("a,b"), "a\\,b");
  EXPECT_EQ(ArgoCdHelmSetValue("a\\,b"), "a\\,b");
  EXPECT_EQ(ArgoCdHelmSetValue("{a,b}"), "{a,b}");
  EXPECT_EQ(ArgoCdHelmSetValue("1.25.3"), "1.25.3");
}

}  // namespace
}  // namespace gitfleet
