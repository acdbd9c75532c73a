#include "controlplane/render/renderer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

std::string Cm(const std::string& name) {
  return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\n";
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

}  // namespace
}  // namespace gitfleet
