#include "controlplane/source/lfs.h"

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/lfs_server.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string TempDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/lfs_test_", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

int Count(const std::string& log, const std::string& what) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) n += absl::StrContains(line, what);
  return n;
}

TEST(LfsTest, PointersAreReadAsTheSpecWritesThem) {
  const std::string oid(64, 'a');
  std::optional<LfsPointer> pointer = ParseLfsPointer(absl::StrCat(
      "version https://git-lfs.github.com/spec/v1\noid sha256:", oid, "\nsize 12345\n"));
  ASSERT_TRUE(pointer.has_value());
  EXPECT_EQ(pointer->oid, oid);
  EXPECT_EQ(pointer->size, 12345);
  // An extension line is allowed; git-lfs's pre-release name for the spec too.
  EXPECT_TRUE(ParseLfsPointer(absl::StrCat("version https://hawser.github.com/spec/v1\next-0-foo "
                                           "sha256:",
                                           oid, "\noid sha256:", oid, "\nsize 1\n"))
                  .has_value());
  for (const std::string& not_one : std::vector<std::string>{
           "apiVersion: v1\nkind: ConfigMap\n",
           absl::StrCat("oid sha256:", oid,
                        "\nsize 1\nversion https://git-lfs.github.com/spec/v1\n"),
           absl::StrCat("version https://git-lfs.github.com/spec/v1\noid sha256:", oid, "\n"),
           "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n",
           absl::StrCat("version https://git-lfs.github.com/spec/v1\noid sha256:", oid,
                        "\nsize -1\n"),
           absl::StrCat("version https://git-lfs.github.com/spec/v1\noid md5:", oid, "\nsize 1\n"),
       }) {
    EXPECT_FALSE(ParseLfsPointer(not_one).has_value()) << not_one;
  }
}

TEST(LfsTest, TheServerIsFoundAsGitLfsFindsIt) {
  struct Case {
    std::string url, lfs_url, endpoint;
  };
  for (const Case& c : std::vector<Case>{
           {"https://github.com/org/app", "", "https://github.com/org/app.git/info/lfs"},
           {"https://github.com/org/app.git", "", "https://github.com/org/app.git/info/lfs"},
           {"https://git.example.com/org/app/", "", "https://git.example.com/org/app.git/info/lfs"},
           {"git@github.com:org/app.git", "", "https://github.com/org/app.git/info/lfs"},
           {"ssh://git@git.example.com:2222/org/app", "",
            "https://git.example.com/org/app.git/info/lfs"},
           {"http://127.0.0.1:8080/app", "", "http://127.0.0.1:8080/app.git/info/lfs"},
           {"git://127.0.0.1/app", "https://lfs.example.com/app/", "https://lfs.example.com/app"},
       }) {
    absl::StatusOr<std::string> endpoint = LfsEndpoint(c.url, c.lfs_url);
    ASSERT_TRUE(endpoint.ok()) << c.url << ": " << endpoint.status();
    EXPECT_EQ(*endpoint, c.endpoint) << c.url;
  }
  EXPECT_THAT(std::string(LfsEndpoint("git://127.0.0.1/app", "").status().message()),
              HasSubstr("name it in the repository's .lfsconfig (lfs.url)"));
  EXPECT_THAT(std::string(LfsEndpoint("http://git.example.com/app", "").status().message()),
              HasSubstr("is not https (plain http only on this machine)"));
  EXPECT_FALSE(LfsEndpoint("https://github.com/app", "http://lfs.example.com/").ok());

  EXPECT_EQ(LfsConfigUrl("[lfs]\n\turl = https://lfs.example.com/org/app\n"),
            "https://lfs.example.com/org/app");
  EXPECT_EQ(LfsConfigUrl("# comment\n[core]\nurl = no\n[LFS]\n  URL = \"https://x/\"\n"),
            "https://x/");
  EXPECT_EQ(LfsConfigUrl("[lfs]\nfetchexclude = *\n"), "");
  // As git-lfs: the remote's lfsurl when lfs.url is not set, lfs.url over it, the last of
  // a key given twice; another remote's is not the source's.
  EXPECT_EQ(LfsConfigUrl("[remote \"origin\"]\n\tlfsurl = https://lfs.example.com/o\n"),
            "https://lfs.example.com/o");
  EXPECT_EQ(LfsConfigUrl("[remote.origin]\nlfsurl = https://lfs.example.com/old-form\n"),
            "https://lfs.example.com/old-form");
  EXPECT_EQ(LfsConfigUrl("[lfs]\nurl = https://a/\n[remote \"origin\"]\nlfsurl = https://o/\n"),
            "https://a/");
  EXPECT_EQ(LfsConfigUrl("[lfs]\nurl = https://a/\nurl = https://b/\n"), "https://b/");
  EXPECT_EQ(LfsConfigUrl("[remote \"upstream\"]\nlfsurl = https://u/\n"), "");
  EXPECT_EQ(LfsConfigUrl("[remote \"Origin\"]\nlfsurl = https://u/\n"), "");
}

// An SSH source's LFS access comes from git-lfs-authenticate on its Git host, as git-lfs
// asks for it: the command names the path as git-lfs sends it, the answer is checked.
TEST(LfsTest, SshAuthenticationIsAskedAndReadAsGitLfsDoes) {
  EXPECT_EQ(*LfsAuthenticateCommand("ssh://git@github.com/org/app.git"),
            "git-lfs-authenticate org/app.git download");
  EXPECT_EQ(*LfsAuthenticateCommand("ssh://git@[::1]:2222/srv/git/app.git"),
            "git-lfs-authenticate srv/git/app.git download");
  EXPECT_FALSE(LfsAuthenticateCommand("https://github.com/org/app.git").ok());
  EXPECT_FALSE(LfsAuthenticateCommand("ssh://git@github.com").ok());
  absl::StatusOr<std::string> quoted = LfsAuthenticateCommand("ssh://git@host/org/a;rm -rf.git");
  EXPECT_THAT(std::string(quoted.status().message()), HasSubstr("which a remote shell would read"));

  absl::StatusOr<LfsSshAccess> access = ParseLfsAuthenticate(
      R"({"href": "https://lfs.example.com/org/app.git/info/lfs/", "expires_in": 3600,
          "header": {"Authorization": "RemoteAuth abc", "X-Extra": "1"}})");
  ASSERT_TRUE(access.ok()) << access.status();
  EXPECT_EQ(access->href, "https://lfs.example.com/org/app.git/info/lfs");
  EXPECT_EQ(access->headers,
            std::vector<std::string>({"Authorization: RemoteAuth abc", "X-Extra: 1"}));
  access = ParseLfsAuthenticate(R"({"header": {"Authorization": "RemoteAuth abc"}})");
  ASSERT_TRUE(access.ok());
  EXPECT_EQ(access->href, "") << "none named: the endpoint the URL implies";
  EXPECT_TRUE(ParseLfsAuthenticate(R"({"href": "http://127.0.0.1:8080/lfs"})").ok());
  for (const char* bad :
       {"not json", "[]", R"({"href": "http://lfs.example.com/lfs"})", R"({"href": 3})",
        R"({"header": {"Authorization": "a\r\nX-Injected: 1"}})",
        R"({"header": {"Bad Name": "x"}})", R"({"header": {"A": 1}})", R"({"header": []})"}) {
    EXPECT_FALSE(ParseLfsAuthenticate(bad).ok()) << bad;
  }
}

class LfsFetchTest : public ::testing::Test {
 protected:
  LfsOptions Options(const std::string& name) {
    LfsOptions options;
    options.cache_dir = TempDir(name + "-cache");
    options.timeout = absl::Seconds(20);
    return options;
  }
};

// As against GitHub: the batch request with the credential, each download on the storage
// host with only the header the answer gives for it; then from the cache.
TEST_F(LfsFetchTest, ObjectsAreFetchedCheckedAndKept) {
  testing::LfsServer server(TempDir("server"));
  const std::string big(200000, 'x');
  const std::string small = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
  const std::optional<LfsPointer> first = ParseLfsPointer(server.AddObject(big));
  const std::optional<LfsPointer> second = ParseLfsPointer(server.AddObject(small));
  ASSERT_TRUE(first && second);
  server.RequireLogin("deploy", "t0ken");
  ASSERT_TRUE(server.Start().ok());
  const std::string endpoint = server.url() + "org/app.git/info/lfs";
  const LfsLogin login{"org", "deploy", "t0ken", ""};
  const LfsOptions options = Options("fetch");
  absl::StatusOr<std::vector<std::string>> got =
      FetchLfsObjects(endpoint, &login, {*first, *second, *first}, options);
  ASSERT_TRUE(got.ok()) << got.status() << server.Log();
  EXPECT_EQ((*got)[0], big);
  EXPECT_EQ((*got)[1], small);
  EXPECT_EQ((*got)[2], big);
  const std::string log = server.Log();
  EXPECT_EQ(Count(log, "POST /org/app.git/info/lfs/objects/batch auth=Basic"), 1) << log;
  EXPECT_EQ(Count(log, "GET /storage/"), 2) << log;
  EXPECT_EQ(Count(log, "auth=RemoteAuth"), 2) << log;
  EXPECT_THAT(log, Not(HasSubstr("GET /storage/" + first->oid + " auth=Basic"))) << log;

  // Again: from the cache, no request.
  got = FetchLfsObjects(endpoint, &login, {*second}, options);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0], small);
  EXPECT_EQ(Count(server.Log(), "POST"), 1);

  // The cache keeps to its bound: the object used longest ago goes first.
  LfsOptions bounded = Options("bounded");
  bounded.max_cache_bytes = 150000;
  got = FetchLfsObjects(endpoint, &login, {*second}, bounded);
  ASSERT_TRUE(got.ok()) << got.status();
  got = FetchLfsObjects(endpoint, &login, {*first}, bounded);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0], big) << "what was fetched is returned, kept or not";
  EXPECT_FALSE(std::filesystem::exists(
      absl::StrCat(bounded.cache_dir, "/", second->oid.substr(0, 2), "/", second->oid)));

  // Without the credential: refused, naming that.
  absl::StatusOr<std::vector<std::string>> refused =
      FetchLfsObjects(endpoint, nullptr, {*first}, Options("anonymous"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("refuses the control plane (HTTP 401, without a credential)"));
  const LfsLogin wrong{"org", "deploy", "wrong", ""};
  refused = FetchLfsObjects(endpoint, &wrong, {*first}, Options("wrong"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("with credential org"));
}

// A download on the LFS server's own host with no header of its own takes the credential,
// as git-lfs sends it.
TEST_F(LfsFetchTest, ADownloadOnTheServersOwnHostTakesTheCredential) {
  testing::LfsServer server(TempDir("same-host"));
  const std::optional<LfsPointer> pointer = ParseLfsPointer(server.AddObject("content\n"));
  server.RequireLogin("deploy", "t0ken");
  server.StorageOnSameHost();
  ASSERT_TRUE(server.Start().ok());
  const LfsLogin login{"org", "deploy", "t0ken", ""};
  absl::StatusOr<std::vector<std::string>> got =
      FetchLfsObjects(server.url() + "app.git/info/lfs", &login, {*pointer}, Options("same-host"));
  ASSERT_TRUE(got.ok()) << got.status() << server.Log();
  EXPECT_EQ((*got)[0], "content\n");
  EXPECT_THAT(server.Log(), HasSubstr("GET /storage/" + pointer->oid + " auth=Basic"));
}

// GitHub's secondary rate limit is a 403 with Retry-After: said as a rate limit, not as a
// refused credential, and the server is not asked again before the time it names.
TEST_F(LfsFetchTest, ARateLimitIsWaitedOutNotTakenForARefusal) {
  testing::LfsServer server(TempDir("limited"));
  const std::optional<LfsPointer> pointer = ParseLfsPointer(server.AddObject("content\n"));
  server.RequireLogin("deploy", "t0ken");
  server.RateLimitFirst(1, 2);
  ASSERT_TRUE(server.Start().ok());
  const std::string endpoint = server.url() + "org/app.git/info/lfs";
  const LfsLogin login{"org", "deploy", "t0ken", ""};
  absl::StatusOr<std::vector<std::string>> got =
      FetchLfsObjects(endpoint, &login, {*pointer}, Options("limited"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("answered with a rate limit (HTTP 403): not asked again for 2s"));
  got = FetchLfsObjects(endpoint, &login, {*pointer}, Options("limited"));
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("answered with a rate limit: not asked again for"));
  EXPECT_EQ(Count(server.Log(), "POST"), 1) << "nothing sent while it waits: " << server.Log();
  absl::SleepFor(absl::Seconds(2.2));
  got = FetchLfsObjects(endpoint, &login, {*pointer}, Options("limited"));
  ASSERT_TRUE(got.ok()) << got.status() << server.Log();
  EXPECT_EQ((*got)[0], "content\n");
}

TEST_F(LfsFetchTest, WhatIsWrongIsNamedAndNothingIsKept) {
  testing::LfsServer server(TempDir("wrong"));
  const std::string content = "the real content\n";
  const std::optional<LfsPointer> pointer = ParseLfsPointer(server.AddObject(content));
  server.Corrupt(content, "something else!!\n");
  ASSERT_TRUE(server.Start().ok());
  const std::string endpoint = server.url() + "app.git/info/lfs";
  const LfsOptions options = Options("wrong");
  absl::StatusOr<std::vector<std::string>> got =
      FetchLfsObjects(endpoint, nullptr, {*pointer}, options);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("is not what its pointer says"));
  EXPECT_FALSE(std::filesystem::exists(
      absl::StrCat(options.cache_dir, "/", pointer->oid.substr(0, 2), "/", pointer->oid)));

  const std::optional<LfsPointer> absent = ParseLfsPointer(
      absl::StrCat("version https://git-lfs.github.com/spec/v1\noid sha256:", std::string(64, 'b'),
                   "\nsize 3\n"));
  got = FetchLfsObjects(endpoint, nullptr, {*absent}, options);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("does not have object bbbbbbbbbbbb (Object does not exist)"));

  LfsOptions small = options;
  small.max_object_bytes = 4;
  got = FetchLfsObjects(endpoint, nullptr, {*pointer}, small);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted);

  got = FetchLfsObjects(server.url() + "nothing-here", nullptr, {*pointer}, options);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("no LFS server at"));
}

}  // namespace
}  // namespace gitfleet
