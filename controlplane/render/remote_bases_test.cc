#include "controlplane/render/remote_bases.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "controlplane/source/git_credentials.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/chart_server.h"
#include "tests/util/git_fixture.h"
#include "tests/util/git_servers.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The forms kustomize's documentation and real repositories write.
TEST(ParseRemoteBaseTest, ReadsTheFormsKustomizeReads) {
  struct Case {
    std::string reference, repo, path, ref;
  };
  for (const Case& c : std::vector<Case>{
           {"https://github.com/kubernetes-sigs/kustomize//examples/multibases?ref=v1.0.6",
            "https://github.com/kubernetes-sigs/kustomize", "examples/multibases", "v1.0.6"},
           {"github.com/kubernetes-sigs/kustomize/examples/helloWorld?ref=v1.0.6",
            "https://github.com/kubernetes-sigs/kustomize", "examples/helloWorld", "v1.0.6"},
           {"https://github.com/argoproj/argo-cd/manifests/cluster-install?ref=v2.9.3",
            "https://github.com/argoproj/argo-cd", "manifests/cluster-install", "v2.9.3"},
           {"git@github.com:org/repo.git/deploy/base?ref=main", "ssh://git@github.com/org/repo.git",
            "deploy/base", "main"},
           {"ssh://git@git.example.com:2222/team/app.git//base?ref=0123",
            "ssh://git@git.example.com:2222/team/app.git", "base", "0123"},
           {"https://gitlab.example.com/group/sub/app.git//k8s/overlay?version=v2",
            "https://gitlab.example.com/group/sub/app.git", "k8s/overlay", "v2"},
           {"git::https://github.com/org/repo//base?ref=v1&timeout=90s&submodules=false",
            "https://github.com/org/repo", "base", "v1"},
           {"https://dev.azure.com/org/project/_git/repo/base?ref=main",
            "https://dev.azure.com/org/project/_git/repo", "base", "main"},
           {"https://github.com/org/repo", "https://github.com/org/repo", "", ""},
           // A repository at the server's root, named before "//" (git daemon, a bare host).
           {"git://127.0.0.1:9418/platform//base?ref=v1", "git://127.0.0.1:9418/platform", "base",
            "v1"},
       }) {
    absl::StatusOr<std::optional<RemoteBase>> base = ParseRemoteBase(c.reference);
    ASSERT_TRUE(base.ok()) << c.reference << ": " << base.status();
    ASSERT_TRUE(base->has_value()) << c.reference;
    EXPECT_EQ((**base).repo, c.repo) << c.reference;
    EXPECT_EQ((**base).path, c.path) << c.reference;
    EXPECT_EQ((**base).ref, c.ref) << c.reference;
  }
  // Not a repository: a path in this one, or a plain file over http.
  for (const char* local : {"../base", "deploy.yaml", "github.io/x"}) {
    absl::StatusOr<std::optional<RemoteBase>> base = ParseRemoteBase(local);
    ASSERT_TRUE(base.ok()) << local;
    EXPECT_FALSE(base->has_value()) << local;
    EXPECT_FALSE(LooksRemote(local)) << local;
  }
  absl::StatusOr<std::optional<RemoteBase>> file =
      ParseRemoteBase("https://raw.githubusercontent.com/org/repo/main/install.yaml");
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE(file->has_value());
  EXPECT_TRUE(LooksRemote("https://raw.githubusercontent.com/org/repo/main/install.yaml"));
  // What cannot be read says why.
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"ftp://example.com/org/repo//base", "is not a scheme gitfleet fetches"},
           {"https://github.com/org/repo//../etc?ref=v1", "may not hold . or .."},
           {"https://github.com/org/repo//base?ref=a..b", "is not a branch, tag or commit"},
           {"https://github.com/org", "names no repository"},
           {"git@github.com", "is not git@HOST:ORG/REPO"},
       }) {
    absl::StatusOr<std::optional<RemoteBase>> base = ParseRemoteBase(bad);
    EXPECT_EQ(base.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(base.status().message(), HasSubstr(says)) << bad;
  }
  EXPECT_TRUE(CheckRemoteBasePrefixes({"*", "https://github.com/org/", "ssh://git@host/"}).ok());
  EXPECT_THAT(CheckRemoteBasePrefixes({"github.com/org/"}).message(),
              HasSubstr("is not an https://, ssh://, git:// or http:// URL prefix"));
}

// Fetched as sources are, at the ref asked for; read again after a while, a commit id never.
TEST(RemoteBaseFetcherTest, FetchesTheRepositoryAtTheRefOnlyFromTrustedPrefixes) {
  GitFixture remote(TempDir("remote"));
  remote.Write("base/kustomization.yaml", "resources: [cm.yaml]\n");
  remote.Write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
  const std::string first = remote.Commit("first");
  remote.Git("tag v1");
  remote.Write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n");
  const std::string second = remote.Commit("second");
  std::unique_ptr<GitRepositories> repos =
      NewLibgit2Repositories(TempDir("cache"), {}, {"", /*allow_local=*/true});
  RemoteBaseFetcher fetcher(repos.get(), {remote.url()}, absl::ZeroDuration());

  absl::StatusOr<RemoteTree> tree = fetcher.Fetch(remote.url(), "v1");
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->commit, first);
  ASSERT_EQ(tree->files.size(), 2u);
  EXPECT_EQ(tree->files[0].path, "base/cm.yaml");
  EXPECT_THAT(tree->files[0].content, HasSubstr("name: a"));
  tree = fetcher.Fetch(remote.url(), "");
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->commit, second) << "the default branch";
  tree = fetcher.Fetch(remote.url(), first);
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->commit, first);
  // A branch moves: read again once refetch_after has passed (here at once).
  remote.Write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
  const std::string third = remote.Commit("third");
  tree = fetcher.Fetch(remote.url(), "main");
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->commit, third);

  EXPECT_THAT(fetcher.Fetch(remote.url(), "v9").status().message(),
              HasSubstr(absl::StrCat("remote base ", remote.url(), " at v9")));
  RemoteBaseFetcher closed(repos.get(), {"https://github.com/org/"});
  absl::Status refused = closed.Fetch(remote.url(), "v1").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("--kustomize-remote-bases=" + remote.url()));
  EXPECT_FALSE(closed.Allowed("https://github.com.evil.example/org/repo"));
  EXPECT_FALSE(RemoteBaseFetcher(repos.get(), {"https://github.com"})
                   .Allowed("https://github.com.evil.example/org/repo"))
      << "a host is a whole host";
  EXPECT_TRUE(closed.Allowed("https://github.com/org/repo"));
  // A team's bundle: its scope's repositories too, whatever the control plane trusts.
  const FetchScope other_team{{remote.url() + "-team-b"}};
  refused = fetcher.Fetch(remote.url(), "v1", other_team).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("the remote base " + remote.url() +
                                           " is outside the repositories of the bundle's scope"));
  EXPECT_TRUE(fetcher.Fetch(remote.url(), "v1", FetchScope{{remote.url()}}).ok());
}

// A plain file over http (a release's install.yaml): from trusted prefixes, bounded, kept a
// while.
TEST(RemoteBaseFetcherTest, FetchesAFileOverHttpFromTrustedPrefixes) {
  testing::ChartRepositoryServer server(TempDir("files"));
  server.Write("install.yaml", "kind: ConfigMap\n");
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  std::unique_ptr<GitRepositories> repos = NewLibgit2Repositories(TempDir("cache"));
  RemoteBaseFetcher fetcher(repos.get(), {server.url()});
  const std::string url = server.url() + "install.yaml";
  absl::StatusOr<std::string> file = fetcher.FetchFile(url);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file, "kind: ConfigMap\n");
  server.Write("install.yaml", "kind: Secret\n");
  EXPECT_EQ(*fetcher.FetchFile(url), "kind: ConfigMap\n") << "kept for refetch_after";
  RemoteBaseFetcher eager(repos.get(), {server.url()}, absl::ZeroDuration());
  EXPECT_EQ(*eager.FetchFile(url), "kind: Secret\n");
  EXPECT_EQ(eager.FetchFile(url, 4).status().code(), absl::StatusCode::kResourceExhausted);
  absl::Status missing = eager.FetchFile(server.url() + "none.yaml").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(missing.message(), HasSubstr("the server answered HTTP 404"));
  absl::Status untrusted =
      RemoteBaseFetcher(repos.get(), {"https://github.com/"}).FetchFile(url).status();
  EXPECT_EQ(untrusted.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(untrusted.message(), HasSubstr("--kustomize-remote-bases=" + url));
  EXPECT_EQ(eager.FetchFile(url, 1 << 20, FetchScope{{server.url() + "team-a/"}}).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(eager.FetchFile(url, 1 << 20, FetchScope{{server.url()}}).ok());
  EXPECT_TRUE(IsRemoteFile("https://github.com/org/op/releases/download/v1/install.yaml"));
  EXPECT_FALSE(IsRemoteFile("https://github.com/org/repo//deploy?ref=v1"));
  // Raw-file APIs take the ref in a query: GitLab's, Gitea's, Bitbucket Server's.
  for (const char* api :
       {"https://gitlab.example.com/api/v4/projects/42/repository/files/deploy%2Fcm.yaml/"
        "raw?ref=main",
        "https://gitea.example.com/api/v1/repos/org/app/raw/deploy/cm.yaml?ref=main",
        "https://bitbucket.example.com/rest/api/1.0/projects/P/repos/app/raw/cm.yaml?at=main"}) {
    EXPECT_TRUE(IsRemoteFile(api)) << api;
    absl::StatusOr<std::optional<RemoteBase>> base = ParseRemoteBase(api);
    ASSERT_TRUE(base.ok()) << api;
    EXPECT_FALSE(base->has_value()) << api;
  }
  EXPECT_FALSE(IsRemoteFile("https://gitlab.example.com/org/app/raw?ref=main"))
      << "a repository's folder named raw";
  EXPECT_FALSE(IsRemoteFile("https://github.com/org/repo//deploy.yaml?ref=v1"));
  EXPECT_EQ(RemoteFileName("https://example.com/a/install.yaml?ref=v1"), "install.yaml");
  EXPECT_EQ(RemoteFileName("https://example.com/files/deploy%2Fcm.yaml/raw?ref=main"),
            "resource.yaml");
  EXPECT_EQ(RemoteFileName("https://example.com/a/.hidden.yaml"), "resource.yaml");
  EXPECT_FALSE(IsRemoteFile("ftp://example.com/x.yaml"));
}

// A private remote file gets the login its URL's credential gives (basic auth, to its host);
// without one the refusal says how to give one.
TEST(RemoteBaseFetcherTest, APrivateFileIsFetchedWithTheCredentialItsUrlGets) {
  testing::ChartRepositoryServer server(TempDir("private-files"));
  server.Write("install.yaml", "kind: ConfigMap\n");
  server.RequireLogin("bot", "s3cret");
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  std::unique_ptr<GitRepositories> repos = NewLibgit2Repositories(TempDir("cache"));
  const std::string url = server.url() + "install.yaml";
  RemoteBaseFetcher anonymous(repos.get(), {server.url()}, absl::ZeroDuration());
  absl::Status refused = anonymous.FetchFile(url).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.message(), HasSubstr("answered HTTP 401 (a private file: give its URL "
                                           "prefix a credential with --git-credentials"));

  RemoteBaseFetcher fetcher(repos.get(), {server.url()}, absl::ZeroDuration());
  std::vector<std::string> asked;
  fetcher.SetLogins([&](const std::string& for_url) -> absl::StatusOr<std::optional<ChartLogin>> {
    asked.push_back(for_url);
    return std::optional<ChartLogin>(ChartLogin{"files", "bot", "s3cret", ""});
  });
  absl::StatusOr<std::string> file = fetcher.FetchFile(url);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file, "kind: ConfigMap\n");
  EXPECT_THAT(asked, ElementsAre(url));

  fetcher.SetLogins([](const std::string&) -> absl::StatusOr<std::optional<ChartLogin>> {
    return std::optional<ChartLogin>(ChartLogin{"stale", "bot", "wrong", ""});
  });
  refused = fetcher.FetchFile(url).status();
  EXPECT_THAT(refused.message(), HasSubstr("answered HTTP 401 to credential stale"));
  fetcher.SetLogins([](const std::string&) -> absl::StatusOr<std::optional<ChartLogin>> {
    return absl::InvalidArgumentError("credential files holds an SSH key");
  });
  refused = fetcher.FetchFile(url).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("credential files holds an SSH key"));
}

// A private remote base gets the credential --git-credentials gives its URL, as a source
// does; without one nothing is sent and the error names both ways to give one.
TEST(RemoteBaseFetcherTest, APrivateRemoteBaseGetsItsPrefixsCredential) {
  testing::HttpsGitServer server(TempDir("https"));
  if (absl::Status s = server.Start("alice", "s3cret"); !s.ok()) GTEST_SKIP() << s;
  GitFixture remote(TempDir("remote"));
  remote.Write("base/kustomization.yaml", "resources: []\n");
  const std::string commit = remote.Commit("base");
  const std::string url = server.Serve(remote.dir(), "platform");
  const std::string dir = TempDir("credentials");
  std::filesystem::create_directories(dir + "/platform");
  std::ofstream(dir + "/platform/username") << "alice";
  std::ofstream(dir + "/platform/password") << "s3cret";
  std::ifstream ca(server.ca_pem_path());
  std::ofstream(dir + "/platform/ca.crt") << ca.rdbuf();
  absl::StatusOr<CredentialPrefixes> prefixes = ParseCredentialPrefixes(
      {absl::StrCat("https://127.0.0.1:", server.port(), "/git/=platform")});
  ASSERT_TRUE(prefixes.ok()) << prefixes.status();
  std::unique_ptr<GitRepositories> repos =
      NewLibgit2Repositories(TempDir("cache"), {}, {dir, false, *prefixes});
  absl::StatusOr<RemoteTree> tree = RemoteBaseFetcher(repos.get(), {"*"}).Fetch(url, "main");
  ASSERT_TRUE(tree.ok()) << tree.status() << server.Log();
  EXPECT_EQ(tree->commit, commit);
  std::unique_ptr<GitRepositories> anonymous =
      NewLibgit2Repositories(TempDir("cache"), {}, {dir, false});
  absl::Status refused = RemoteBaseFetcher(anonymous.get(), {"*"}).Fetch(url, "main").status();
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(refused.message(), HasSubstr("remote base " + url));
}

}  // namespace
}  // namespace gitfleet
