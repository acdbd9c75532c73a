#include "controlplane/render/file_patterns.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

bool Matches(const std::string& pattern, const std::string& path) {
  absl::StatusOr<PathPattern> parsed = PathPattern::Parse(pattern, "--exclude");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() && parsed->Matches(path);
}

// The .gitignore rules: a name matches at any depth, a path is anchored, a folder takes
// what is in it, `**` spans folders.
TEST(PathPatternTest, MatchesAsGitignoreDoes) {
  EXPECT_TRUE(Matches("settings.yaml", "settings.yaml"));
  EXPECT_TRUE(Matches("settings.yaml", "config/settings.yaml")) << "a name at any depth";
  EXPECT_FALSE(Matches("settings.yaml", "my-settings.yaml"));
  EXPECT_TRUE(Matches("*.json", "package.json"));
  EXPECT_TRUE(Matches("*.json", "a/b/tsconfig.json"));
  EXPECT_FALSE(Matches("*.json", "a.yaml"));
  EXPECT_TRUE(Matches("*", ".hidden.yaml")) << "a leading dot is not special, as in .gitignore";
  EXPECT_TRUE(Matches("test", "test/cm.yaml")) << "a folder takes what is in it";
  EXPECT_TRUE(Matches("test", "a/test/b/cm.yaml"));
  EXPECT_TRUE(Matches("test/", "test/cm.yaml"));
  EXPECT_FALSE(Matches("test/", "test")) << "folders only";
  EXPECT_FALSE(Matches("test/", "a/test.yaml"));
  EXPECT_TRUE(Matches("ci/*.yaml", "ci/lint.yaml"));
  EXPECT_FALSE(Matches("ci/*.yaml", "ci/deep/lint.yaml")) << "* stays within one name";
  EXPECT_FALSE(Matches("ci/*.yaml", "x/ci/lint.yaml")) << "a path is anchored";
  EXPECT_TRUE(Matches("/values.yaml", "values.yaml"));
  EXPECT_FALSE(Matches("/values.yaml", "chart/values.yaml"));
  EXPECT_TRUE(Matches("./values.yaml", "values.yaml"));
  EXPECT_TRUE(Matches("ci/**/*.yaml", "ci/lint.yaml")) << "** may be no folder";
  EXPECT_TRUE(Matches("ci/**/*.yaml", "ci/a/b/lint.yaml"));
  EXPECT_TRUE(Matches("**/fixtures", "a/b/fixtures/x.json"));
  EXPECT_TRUE(Matches("docs/**", "docs/a/b.yaml"));
  EXPECT_FALSE(Matches("docs/**", "other/a.yaml"));
  EXPECT_TRUE(Matches("cm-[0-9].yaml", "cm-3.yaml"));
  EXPECT_FALSE(Matches("cm-[!0-9].yaml", "cm-3.yaml"));
  EXPECT_TRUE(Matches("cm-?.yaml", "cm-a.yaml"));
  EXPECT_TRUE(Matches("a**b", "axyb")) << "** inside a name is *";
  // Many **: still quick (no backtracking blow-up).
  std::string many;
  for (int i = 0; i < 60; ++i) many += "**/";
  EXPECT_FALSE(Matches(many + "z", std::string(2000, 'a') + "/" + "y"));
}

TEST(PathPatternTest, BadPatternsAreRefusedSayingWhy) {
  for (const auto& [pattern, why] : std::vector<std::pair<std::string, std::string>>{
           {"", "names nothing"},
           {"/", "names nothing"},
           {"../secrets", "a . or .. name"},
           {"a/./b", "a . or .. name"},
           {"a//b", "two slashes"},
           {"cm-[0-9.yaml", "a [ with no ]"},
           {"a\nb", "a control character"},
           {std::string(300, 'a'), "over 256 bytes"},
       }) {
    EXPECT_THAT(PathPattern::Parse(pattern, "--exclude").status(),
                ::testing::AllOf(
                    ::testing::Property(&absl::Status::code, absl::StatusCode::kInvalidArgument),
                    ::testing::Property(&absl::Status::message, HasSubstr(why))))
        << pattern;
  }
  std::vector<std::string> too_many(101, "a");
  EXPECT_THAT(PathPatterns::Parse(too_many, "--include").status().message(),
              HasSubstr("--include: 101 patterns; at most 100"));
  absl::StatusOr<PathPatterns> two = PathPatterns::Parse({"*.json", "test/"}, "--exclude");
  ASSERT_TRUE(two.ok());
  ASSERT_NE(two->Match("t/test/a.yaml"), nullptr);
  EXPECT_EQ(two->Match("t/test/a.yaml")->text(), "test/");
  EXPECT_EQ(two->Match("a.yaml"), nullptr);
}

// Each .fleetignore applies to its folder and below; the last line that matches decides,
// a deeper file's lines coming after a shallower one's.
TEST(FleetIgnoreTest, EachFileAppliesBelowItsFolderAndTheLastMatchDecides) {
  std::vector<RepoFile> files = {
      {"apps/web/.fleetignore", "# CI files\n*.json\n!keep.json\ntest/\n\n  \n"},
      {"apps/web/sub/.fleetignore", "!*.json\r\nlocal.yaml  \n"},
      {"apps/other/.fleetignore", "*.yaml\n"},
      {"apps/web/a.yaml", ""},
  };
  absl::StatusOr<FleetIgnore> ignore = FleetIgnore::Read("apps/web", files);
  ASSERT_TRUE(ignore.ok()) << ignore.status();
  EXPECT_EQ(ignore->Ignored("apps/web/package.json"), "apps/web/.fleetignore: *.json");
  EXPECT_EQ(ignore->Ignored("apps/web/keep.json"), "") << "negated";
  EXPECT_EQ(ignore->Ignored("apps/web/test/cm.yaml"), "apps/web/.fleetignore: test/");
  EXPECT_EQ(ignore->Ignored("apps/web/a.yaml"), "") << "another bundle's file does not apply";
  EXPECT_EQ(ignore->Ignored("apps/web/sub/x.json"), "") << "the deeper file un-ignores it";
  EXPECT_EQ(ignore->Ignored("apps/web/sub/local.yaml"), "apps/web/sub/.fleetignore: local.yaml");
  EXPECT_EQ(ignore->Ignored("apps/web/local.yaml"), "") << "not above its folder";

  absl::StatusOr<FleetIgnore> root = FleetIgnore::Read("", {{".fleetignore", "/values.yaml\n"}});
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->Ignored("values.yaml"), ".fleetignore: /values.yaml");
  EXPECT_EQ(root->Ignored("chart/values.yaml"), "");

  EXPECT_THAT(FleetIgnore::Read("a", {{"a/.fleetignore", "ok\n../up\n"}}).status().message(),
              HasSubstr("a/.fleetignore:2:"));
  EXPECT_THAT(
      FleetIgnore::Read("a", {{"a/.fleetignore", std::string(70 << 10, 'x')}}).status().message(),
      HasSubstr("a/.fleetignore is 71680 bytes; at most 65536"));
  std::string lines;
  for (int i = 0; i < 1001; ++i) lines += "f" + std::to_string(i) + "\n";
  EXPECT_THAT(FleetIgnore::Read("a", {{"a/.fleetignore", lines}}).status().message(),
              HasSubstr("over 1000 patterns"));
}

}  // namespace
}  // namespace gitfleet
