#include "controlplane/render/file_patterns.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

constexpr IgnoreFiles::Kind kFleet = IgnoreFiles::Kind::kFleet;
constexpr IgnoreFiles::Kind kFlux = IgnoreFiles::Kind::kFlux;

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
TEST(IgnoreFilesTest, EachFleetIgnoreAppliesBelowItsFolderAndTheLastMatchDecides) {
  std::vector<RepoFile> files = {
      {"apps/web/.fleetignore", "# CI files\n*.json\n!keep.json\ntest/\n\n  \n"},
      {"apps/web/sub/.fleetignore", "!*.json\r\nlocal.yaml  \n"},
      {"apps/other/.fleetignore", "*.yaml\n"},
      {"apps/web/a.yaml", ""},
  };
  absl::StatusOr<IgnoreFiles> ignore = IgnoreFiles::Read("apps/web", files, kFleet);
  ASSERT_TRUE(ignore.ok()) << ignore.status();
  EXPECT_EQ(ignore->Ignored("apps/web/package.json"), "apps/web/.fleetignore: *.json");
  EXPECT_EQ(ignore->Ignored("apps/web/keep.json"), "") << "negated";
  EXPECT_EQ(ignore->Ignored("apps/web/test/cm.yaml"), "apps/web/.fleetignore: test/");
  EXPECT_EQ(ignore->Ignored("apps/web/a.yaml"), "") << "another bundle's file does not apply";
  EXPECT_EQ(ignore->Ignored("apps/web/sub/x.json"), "") << "the deeper file un-ignores it";
  EXPECT_EQ(ignore->Ignored("apps/web/sub/local.yaml"), "apps/web/sub/.fleetignore: local.yaml");
  EXPECT_EQ(ignore->Ignored("apps/web/local.yaml"), "") << "not above its folder";

  absl::StatusOr<IgnoreFiles> root =
      IgnoreFiles::Read("", {{".fleetignore", "/values.yaml\n"}}, kFleet);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->Ignored("values.yaml"), ".fleetignore: /values.yaml");
  EXPECT_EQ(root->Ignored("chart/values.yaml"), "");

  EXPECT_THAT(
      IgnoreFiles::Read("a", {{"a/.fleetignore", "ok\n../up\n"}}, kFleet).status().message(),
      HasSubstr("a/.fleetignore:2:"));
  EXPECT_THAT(IgnoreFiles::Read("a", {{"a/.fleetignore", std::string(70 << 10, 'x')}}, kFleet)
                  .status()
                  .message(),
              HasSubstr("a/.fleetignore is 71680 bytes; at most 65536"));
  std::string lines;
  for (int i = 0; i < 1001; ++i) lines += "f" + std::to_string(i) + "\n";
  EXPECT_THAT(IgnoreFiles::Read("a", {{"a/.fleetignore", lines}}, kFleet).status().message(),
              HasSubstr("over 1000 patterns in the bundle's .fleetignore files"));
}

// Flux's .sourceignore files apply to the whole repository, each to its folder and below:
// those above a bundle's folder count, those beside it do not, and Fleet's and Flux's files
// are read apart.
TEST(IgnoreFilesTest, SourceIgnoresAboveTheFolderCountAsFluxReadsThem) {
  EXPECT_EQ(IgnoreFiles::SourceIgnoresAbove("clusters/prod/apps"),
            (std::vector<std::string>{".sourceignore", "clusters/.sourceignore",
                                      "clusters/prod/.sourceignore"}));
  EXPECT_TRUE(IgnoreFiles::SourceIgnoresAbove("").empty()) << "the root's own is in the folder";
  std::vector<RepoFile> files = {
      {".sourceignore", "# CI\n/clusters/prod/apps/scripts/\n*.json\n"},
      {"clusters/.sourceignore", "!prod/apps/keep.json\ntest.yaml\n"},
      {"clusters/staging/.sourceignore", "*.yaml\n"},
      {"clusters/prod/apps/.fleetignore", "fleet-only.yaml\n"},
      {"clusters/prod/apps/sub/.sourceignore", "local.yaml\n"},
  };
  absl::StatusOr<IgnoreFiles> flux = IgnoreFiles::Read("clusters/prod/apps", files, kFlux);
  ASSERT_TRUE(flux.ok()) << flux.status();
  EXPECT_EQ(flux->Ignored("clusters/prod/apps/scripts/ci.yaml"),
            ".sourceignore: /clusters/prod/apps/scripts/");
  EXPECT_EQ(flux->Ignored("clusters/prod/apps/package.json"), ".sourceignore: *.json");
  EXPECT_EQ(flux->Ignored("clusters/prod/apps/keep.json"), "") << "a deeper file un-ignores it";
  EXPECT_EQ(flux->Ignored("clusters/prod/apps/x/test.yaml"), "clusters/.sourceignore: test.yaml");
  EXPECT_EQ(flux->Ignored("clusters/prod/apps/a.yaml"), "") << "staging's is not above it";
  EXPECT_EQ(flux->Ignored("clusters/prod/apps/fleet-only.yaml"), "") << "Fleet's, not Flux's";
  EXPECT_EQ(flux->Ignored("clusters/prod/apps/sub/local.yaml"),
            "clusters/prod/apps/sub/.sourceignore: local.yaml");
  absl::StatusOr<IgnoreFiles> fleet = IgnoreFiles::Read("clusters/prod/apps", files, kFleet);
  ASSERT_TRUE(fleet.ok()) << fleet.status();
  EXPECT_EQ(fleet->Ignored("clusters/prod/apps/fleet-only.yaml"),
            "clusters/prod/apps/.fleetignore: fleet-only.yaml");
  EXPECT_EQ(fleet->Ignored("clusters/prod/apps/package.json"), "");
  EXPECT_THAT(IgnoreFiles::Read("a/b", {{".sourceignore", "[x\n"}}, kFlux).status().message(),
              HasSubstr(".sourceignore:1:"));
}

}  // namespace
}  // namespace gitfleet
