#include "controlplane/source/submodules.h"

#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER_P(IsOkAndHolds, value, "") {
  if (!arg.ok()) {
    *result_listener << "which is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(value, *arg, result_listener);
}

MATCHER_P3(IsSubmodule, name, path, url, "") {
  return arg.name == name && arg.path == path && arg.url == url;
}

TEST(ParseGitmodulesTest, ReadsWhatGitWrites) {
  // As `git submodule add` writes it, and as people edit it by hand.
  absl::StatusOr<std::vector<Submodule>> parsed = ParseGitmodules(
      "[submodule \"libs/common\"]\n"
      "\tpath = libs/common\n"
      "\turl = ../common.git\n"
      "\tbranch = main\n"
      "# a comment\n"
      "; another\n"
      "[submodule \"charts\"]\r\n"
      "  URL = \"git@github.com:org/charts.git\"  # inline\r\n"
      "  Path=vendor/charts ; inline\r\n"
      "  shallow\n"
      "  update = none\n"
      "[core]\n"
      "  url = not-a-submodule\n"
      "[submodule \"odd \\\"name\\\"\"]\n"
      "  path = \"with space \"\n"
      "  url = https://h/a\\\n"
      "/b.git\n"
      "[submodule \"no-url\"]\n"
      "  path = nowhere\n"
      "[submodule.old]\n"
      "  path = ./old/\n"
      "  url = ./old\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed,
              ElementsAre(IsSubmodule("libs/common", "libs/common", "../common.git"),
                          IsSubmodule("charts", "vendor/charts", "git@github.com:org/charts.git"),
                          IsSubmodule("odd \"name\"", "with space ", "https://h/a/b.git"),
                          IsSubmodule("old", "old", "./old")));
}

TEST(ParseGitmodulesTest, TheLastValueWins) {
  absl::StatusOr<std::vector<Submodule>> parsed = ParseGitmodules(
      "[submodule \"a\"]\npath = a\nurl = ../one\n[submodule \"a\"]\nurl = ../two\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed, ElementsAre(IsSubmodule("a", "a", "../two")));
}

TEST(ParseGitmodulesTest, RefusesWhatGitCannotReadNamingTheLine) {
  EXPECT_THAT(ParseGitmodules("[submodule \"a\"]\npath = a\nurl = \"../x\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 3")));
  EXPECT_THAT(ParseGitmodules("[submodule \"a\"\npath = a\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
  EXPECT_THAT(ParseGitmodules("path = a\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("before any [section]")));
  EXPECT_THAT(ParseGitmodules("[submodule \"a\"]\n  url = \\q\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("escape")));
  EXPECT_THAT(ParseGitmodules("[submodule \"a\"]\n  = x\n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
  EXPECT_THAT(ParseGitmodules(std::string(65 << 10, '#')).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("over the limit")));
  std::string many;
  for (int i = 0; i <= 1000; ++i) many += "[submodule \"s" + std::to_string(i) + "\"]\n";
  EXPECT_THAT(ParseGitmodules(many).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than 1000")));
  EXPECT_THAT(ParseGitmodules(""), IsOkAndHolds(::testing::IsEmpty()));
}

TEST(SubmoduleUrlTest, RelativeUrlsResolveAsGitResolvesThem) {
  EXPECT_THAT(SubmoduleUrl("https://h/org/app.git", "../lib.git"),
              IsOkAndHolds("https://h/org/lib.git"));
  EXPECT_THAT(SubmoduleUrl("https://h/org/app.git/", "../lib.git"),
              IsOkAndHolds("https://h/org/lib.git"));
  EXPECT_THAT(SubmoduleUrl("https://h/org/app.git", "./lib.git"),
              IsOkAndHolds("https://h/org/app.git/lib.git"));
  EXPECT_THAT(SubmoduleUrl("ssh://git@h:2222/org/team/app", "../../other/lib"),
              IsOkAndHolds("ssh://git@h:2222/org/other/lib"));
  EXPECT_THAT(SubmoduleUrl("git://127.0.0.1:9418/app.git", "../lib.git"),
              IsOkAndHolds("git://127.0.0.1:9418/lib.git"));
  EXPECT_THAT(SubmoduleUrl("/srv/git/app.git", "../lib.git"), IsOkAndHolds("/srv/git/lib.git"));
  EXPECT_THAT(SubmoduleUrl("https://h/app.git", "../../lib.git").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("climbs above the host")));
}

TEST(SubmoduleUrlTest, ScpLikeUrlsBecomeSshUrls) {
  EXPECT_THAT(SubmoduleUrl("https://h/a", "git@github.com:org/lib.git"),
              IsOkAndHolds("ssh://git@github.com/org/lib.git"));
  EXPECT_THAT(SubmoduleUrl("https://h/a", "host:/srv/lib.git"),
              IsOkAndHolds("ssh://host/srv/lib.git"));
  EXPECT_THAT(SubmoduleUrl("https://h/a", "https://other/lib.git"),
              IsOkAndHolds("https://other/lib.git"));
  EXPECT_THAT(SubmoduleUrl("https://h/a", "file:///etc"), IsOkAndHolds("file:///etc"));
  // A remote helper (transport::address) stays as written, for CheckSourceUrl to refuse.
  EXPECT_THAT(SubmoduleUrl("https://h/a", "ext::sh -c id"), IsOkAndHolds("ext::sh -c id"));
  EXPECT_THAT(SubmoduleUrl("https://h/a", "").status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SubmoduleUrl("https://h/a", "https://h/x\ny").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("control character")));
}

TEST(UrlHostTest, NamesTheHostAlone) {
  EXPECT_EQ(UrlHost("https://GitHub.com/org/app.git"), "github.com");
  EXPECT_EQ(UrlHost("ssh://git@gitlab.example:2222/org/app"), "gitlab.example");
  EXPECT_EQ(UrlHost("git://[::1]:9418/app.git"), "[::1]");
  EXPECT_EQ(UrlHost("file:///srv/app.git"), "");
  EXPECT_EQ(UrlHost("/srv/app.git"), "");
}

}  // namespace
}  // namespace gitfleet
