#include <netinet/in.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/sync.h"
#include "controlplane/source/git_repository.h"
#include "controlplane/source/source_poller.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/git_fixture.h"
#include "tests/util/git_servers.h"
#include "tests/util/lfs_server.h"
#include "tests/util/process.h"

namespace gitfleet {
namespace {

// These tests read repositories from the local disk.
const GitAccess kLocal{"", /*allow_local=*/true};

using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::TempDir;
using ::testing::HasSubstr;
constexpr GitRepository::Unreadable kRefuse = GitRepository::Unreadable::kRefuse;
constexpr GitRepository::Unreadable kLeaveOut = GitRepository::Unreadable::kLeaveOut;

TEST(Libgit2RepositoryTest, AnEmptyRefFollowsTheRemotesDefaultBranch) {
  // A repository whose HEAD is "trunk", with a "main" branch that is not the default.
  GitFixture git(TempDir("repo"));
  git.Git("checkout -q -b trunk");
  git.Write("a.yaml", "a: 1\n");
  std::string trunk = git.Commit("on trunk");
  git.Git("branch -q main");
  git.Write("a.yaml", "a: 2\n");
  std::string newer = git.Commit("newer on trunk");
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  auto repo = *repos->ForUrl(git.url());
  ASSERT_TRUE(repo->Fetch().ok());
  EXPECT_EQ(repo->Resolve("")->id, newer) << "HEAD is trunk, not main";
  EXPECT_EQ(repo->Resolve("main")->id, trunk);
  // Each names the branch it read: sources at "" and "trunk" read one stream of commits.
  EXPECT_EQ(repo->Resolve("")->branch, "trunk");
  EXPECT_EQ(repo->Resolve("main")->branch, "main");
  git.Git("tag v1");
  ASSERT_TRUE(repo->Fetch().ok());
  EXPECT_EQ(repo->Resolve("v1")->branch, "") << "a tag is no branch";
  EXPECT_EQ(repo->Resolve(trunk)->branch, "") << "nor a commit id";
  // Full ref names, as Flux's and Argo CD's users write them, and HEAD.
  EXPECT_EQ(repo->Resolve("refs/heads/main")->id, trunk);
  EXPECT_EQ(repo->Resolve("refs/heads/main")->branch, "main");
  EXPECT_EQ(repo->Resolve("refs/tags/v1")->id, newer);
  EXPECT_EQ(repo->Resolve("HEAD")->branch, "trunk");
  EXPECT_EQ(repo->Resolve("refs/heads/v1").status().code(), absl::StatusCode::kNotFound)
      << "a tag is not a branch";
  // The error lists the branches by name, not origin/HEAD, and says how many it left out.
  for (int i = 0; i < 12; ++i) git.Git(absl::StrCat("branch -q b", i));
  ASSERT_TRUE(repo->Fetch().ok());
  EXPECT_THAT(std::string(repo->Resolve("nope").status().message()),
              HasSubstr("(branches: b0, b1, b10, b11, b2, b3, b4, b5, b6, b7 and 4 more)"));
  // The remote's HEAD moves to main: the next fetch follows it.
  git.Git("checkout -q main");
  ASSERT_TRUE(repo->Fetch().ok());
  EXPECT_EQ(repo->Resolve("")->id, trunk);
  EXPECT_EQ(repo->Resolve("")->branch, "main");

  // A master-only repository.
  GitFixture old(TempDir("old"));
  old.Git("checkout -q -b master");
  old.Write("a.yaml", "a: 1\n");
  std::string master = old.Commit("on master");
  old.Git("branch -q -D main 2>/dev/null || true");
  auto old_repo = *repos->ForUrl(old.url());
  ASSERT_TRUE(old_repo->Fetch().ok());
  EXPECT_EQ(old_repo->Resolve("")->id, master);
  EXPECT_EQ(old_repo->Resolve("")->branch, "master");
}

// Two commits whose ids share their first 7 hex digits: a commit message is varied until
// two collide (about 2^14 tries by the birthday bound), and both are written as they are.
// A repository that keeps files in Git LFS: read with --lfs, they are the files; without
// it, the pointers Git holds. The repository's .lfsconfig names its LFS server.
TEST(Libgit2RepositoryTest, FilesKeptInGitLfsAreReadWithLfs) {
  ::gitfleet::testing::LfsServer lfs(TempDir("lfs-server"));
  const std::string manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\n";
  const std::string chart(300000, 'c');
  const std::string manifest_pointer = lfs.AddObject(manifest);
  const std::string chart_pointer = lfs.AddObject(chart);
  ASSERT_TRUE(lfs.Start().ok());
  GitFixture git(TempDir("lfs-repo"));
  git.Write(".lfsconfig", absl::StrCat("[lfs]\n\turl = ", lfs.url(), "org/app.git/info/lfs\n"));
  git.Write(".gitattributes", "*.tgz filter=lfs diff=lfs merge=lfs -text\n");
  git.Write("apps/web/big.yaml", manifest_pointer);
  git.Write("apps/web/small.yaml", "a: 1\n");
  git.Write("charts/web-1.0.0.tgz", chart_pointer);
  const std::string commit = git.Commit("with LFS");
  auto repos = NewLibgit2Repositories(TempDir("lfs-cache"), {}, kLocal);
  auto with = *repos->ForUrl(git.url(), "", false, /*lfs=*/true);
  auto without = *repos->ForUrl(git.url());
  EXPECT_TRUE(with->reads_lfs());
  EXPECT_FALSE(without->reads_lfs());
  ASSERT_TRUE(with->Fetch().ok());
  ASSERT_TRUE(without->Fetch().ok());
  absl::StatusOr<std::vector<RepoFile>> files = with->ReadTree(commit, "apps/web", kRefuse);
  ASSERT_TRUE(files.ok()) << files.status() << lfs.Log();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].content, manifest);
  EXPECT_EQ((*files)[1].content, "a: 1\n");
  files = without->ReadTree(commit, "apps/web", kRefuse);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ((*files)[0].content, manifest_pointer);
  absl::StatusOr<std::vector<RepoFile>> read = with->ReadFiles(commit, {"charts/web-1.0.0.tgz"});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->at(0).content, chart);

  // An object the server lacks fails the folder that reads it, naming the file; the whole
  // repository (read for tools) keeps a file past its limits as its pointer.
  git.Write("apps/web/gone.yaml",
            absl::StrCat("version https://git-lfs.github.com/spec/v1\noid sha256:",
                         std::string(64, 'd'), "\nsize 10\n"));
  const std::string broken = git.Commit("an object never pushed");
  ASSERT_TRUE(with->Fetch().ok());
  files = with->ReadTree(broken, "apps/web", kRefuse);
  EXPECT_EQ(files.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(files.status().message()),
              HasSubstr("cannot read apps/web/gone.yaml (and 1 more files kept in Git LFS): the "
                        "LFS server"));
  GitLimits small;
  small.max_blob_bytes = 200000;
  auto limited = *NewLibgit2Repositories(TempDir("lfs-cache-small"), small, kLocal)
                      ->ForUrl(git.url(), "", false, true);
  ASSERT_TRUE(limited->Fetch().ok());
  files = limited->ReadTree(commit, "", kLeaveOut);
  ASSERT_TRUE(files.ok()) << files.status();
  for (const RepoFile& file : *files) {
    if (file.path == "charts/web-1.0.0.tgz") {
      EXPECT_EQ(file.content, chart_pointer);
    }
    if (file.path == "apps/web/big.yaml") {
      EXPECT_EQ(file.content, manifest);
    }
  }
  EXPECT_EQ(limited->ReadFiles(commit, {"charts/web-1.0.0.tgz"}).status().code(),
            absl::StatusCode::kResourceExhausted);

  // A team's source (held to its repositories): the LFS server its .lfsconfig names must be
  // among them; nothing is asked of one that is not.
  const std::vector<std::string> team = {git.url()};
  auto scoped = *repos->ForUrl(git.url(), "", false, true, team);
  EXPECT_NE(scoped, with) << "a clone of its own";
  ASSERT_TRUE(scoped->Fetch().ok());
  const std::string log_before = lfs.Log();
  files = scoped->ReadTree(commit, "apps/web", kRefuse);
  EXPECT_EQ(files.status().code(), absl::StatusCode::kPermissionDenied) << files.status();
  EXPECT_THAT(std::string(files.status().message()),
              HasSubstr("the repository's .lfsconfig names " + lfs.url() +
                        "org/app.git/info/lfs, outside the repositories of its source's scope (" +
                        git.url() + ")"));
  EXPECT_EQ(lfs.Log(), log_before);
  auto trusted = *repos->ForUrl(git.url(), "", false, true, {git.url(), lfs.url() + "org/"});
  ASSERT_TRUE(trusted->Fetch().ok());
  files = trusted->ReadTree(commit, "apps/web", kRefuse);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ((*files)[0].content, manifest);
}

TEST(Libgit2RepositoryTest, AnAbbreviatedIdOfTwoCommitsIsRefusedAsAmbiguous) {
  GitFixture git(TempDir("repo"));
  git.Write("a.yaml", "a: 1\n");
  git.Commit("first");
  std::string tree;
  ASSERT_EQ(::gitfleet::testing::Run("cd " + git.dir() + " && git mktree </dev/null", &tree), 0);
  tree = std::string(absl::StripAsciiWhitespace(tree));
  auto body = [&](int nonce) {
    return absl::StrCat("tree ", tree, "\nauthor A <a@example.com> 1700000000 +0000\n",
                        "committer A <a@example.com> 1700000000 +0000\n\nnonce ", nonce, "\n");
  };
  auto id = [](const std::string& body) {
    const std::string object =
        absl::StrCat("commit ", body.size(), absl::string_view("\0", 1), body);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(object.data()), object.size(), digest);
    return absl::BytesToHexString(
        absl::string_view(reinterpret_cast<const char*>(digest), SHA_DIGEST_LENGTH));
  };
  absl::flat_hash_map<std::string, int> seen;
  int first = -1;
  int second = -1;
  for (int nonce = 0; nonce < (1 << 20) && second < 0; ++nonce) {
    auto [it, inserted] = seen.emplace(id(body(nonce)).substr(0, 7), nonce);
    if (!inserted) {
      first = it->second;
      second = nonce;
    }
  }
  ASSERT_GE(second, 0) << "no two of 2^20 commit ids share 7 hex digits";
  std::vector<std::string> ids;
  for (int nonce : {first, second}) {
    const std::string file = git.dir() + "/../commit-" + std::to_string(nonce);
    std::ofstream(file, std::ios::binary) << body(nonce);
    std::string written;
    ASSERT_EQ(
        ::gitfleet::testing::Run(
            "cd " + git.dir() + " && git hash-object -t commit -w --stdin <" + file, &written),
        0);
    ids.push_back(std::string(absl::StripAsciiWhitespace(written)));
    ASSERT_EQ(ids.back(), id(body(nonce)));
    git.Git("branch -q collide-" + std::to_string(nonce) + " " + ids.back());
  }
  const std::string shared = ids[0].substr(0, 7);
  ASSERT_EQ(ids[1].substr(0, 7), shared);

  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  auto repo = *repos->ForUrl(git.url());
  ASSERT_TRUE(repo->Fetch().ok());
  auto ambiguous = repo->Resolve(shared);
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kInvalidArgument) << ambiguous.status();
  EXPECT_THAT(std::string(ambiguous.status().message()),
              HasSubstr("commit id " + shared + " is ambiguous"));
  EXPECT_EQ(repo->CompareCommits(shared, repo->Resolve("main")->id).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Enough digits to tell them apart resolve each.
  size_t differ = 7;
  while (ids[0][differ] == ids[1][differ]) ++differ;
  for (const std::string& commit : ids) {
    auto resolved = repo->Resolve(commit.substr(0, differ + 1));
    ASSERT_TRUE(resolved.ok()) << resolved.status();
    EXPECT_EQ(resolved->id, commit);
  }
}

TEST(Libgit2RepositoryTest, FetchesResolvesBranchesTagsCommitsAndReadsTrees) {
  GitFixture git(TempDir("repo"));
  git.Write("apps/web/a.yaml", "a: 1\n");
  git.Write("apps/web/sub/b.yaml", "b: 2\n");
  git.Write("apps/api/c.yaml", "c: 3\n");
  std::string first = git.Commit("first");
  git.Tag("v1");
  git.Write("apps/api/c.yaml", "c: 4\n");
  std::string second = git.Commit("second");

  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  auto repo = repos->ForUrl(git.url());
  ASSERT_TRUE(repo.ok());
  EXPECT_EQ(repo->get(), repos->ForUrl(git.url())->get()) << "one cache per URL";
  ASSERT_TRUE((*repo)->Fetch().ok());

  EXPECT_EQ((*repo)->Resolve("main")->id, second);
  EXPECT_EQ((*repo)->Resolve("")->id, second);
  EXPECT_EQ((*repo)->Resolve("v1")->id, first);
  EXPECT_EQ((*repo)->Resolve(first)->id, first);
  EXPECT_EQ((*repo)->Resolve(first.substr(0, 7))->id, first) << "abbreviated, as git log shows";
  EXPECT_EQ((*repo)->Resolve(second.substr(0, 12))->id, second);
  EXPECT_EQ((*repo)->Resolve(first.substr(0, 6)).status().code(), absl::StatusCode::kNotFound)
      << "too short to take as a commit id";
  EXPECT_EQ((*repo)->Resolve("0000000").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*repo)->Resolve("main")->summary, "second");
  auto missing = (*repo)->Resolve("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("ref \"nope\" not found"));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("main"));

  auto files = (*repo)->ReadTree(second, "apps/web", kRefuse);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].path, "apps/web/a.yaml");
  EXPECT_EQ((*files)[1].path, "apps/web/sub/b.yaml");
  EXPECT_EQ((*files)[1].content, "b: 2\n");

  // The web tree did not change between the commits; the api tree did.
  EXPECT_EQ(*(*repo)->TreeId(first, "apps/web"), *(*repo)->TreeId(second, "apps/web"));
  EXPECT_NE(*(*repo)->TreeId(first, "apps/api"), *(*repo)->TreeId(second, "apps/api"));
  auto ids = (*repo)->EntryIds(first, {"apps/web", "apps/api/c.yaml", "nope", ""});
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->size(), 4u);
  EXPECT_EQ((*ids)[0], *(*repo)->TreeId(first, "apps/web"));
  EXPECT_EQ((*ids)[1].size(), 40u);
  EXPECT_EQ((*ids)[2], "");
  EXPECT_EQ((*ids)[3], *(*repo)->TreeId(first, ""));
  EXPECT_NE((*(*repo)->EntryIds(second, {"apps/api/c.yaml"}))[0], (*ids)[1]);
  EXPECT_EQ((*repo)->ReadTree(second, "apps/nope", kRefuse).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ((*repo)->ReadTree(second, "apps/api/c.yaml", kRefuse).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Whether a commit asked for (a pipeline's, by its first digits) is in the history of the
// commit a bundle runs: `rollout status -w --commit` ends at a later commit too.
TEST(Libgit2RepositoryTest, ComparesACommitWithTheHistoryOfAnother) {
  GitFixture git(TempDir("repo"));
  git.Write("a.yaml", "a: 1\n");
  const std::string first = git.Commit("first");
  git.Write("a.yaml", "a: 2\n");
  const std::string second = git.Commit("second");
  git.Write("b.yaml", "b: 1\n");
  const std::string third = git.Commit("third");
  git.Git("checkout -q -b other " + first);
  git.Write("c.yaml", "c: 1\n");
  const std::string elsewhere = git.Commit("on another branch");
  git.Git("checkout -q main");

  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  auto repo = *repos->ForUrl(git.url());
  ASSERT_TRUE(repo->Fetch().ok());
  auto at = [&](const std::string& asked, const std::string& commit) {
    absl::StatusOr<GitRepository::Ancestry> got = repo->CompareCommits(asked, commit);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? std::make_tuple(got->asked, got->reached, got->ahead)
                    : std::make_tuple(std::string(), false, false);
  };
  EXPECT_EQ(at(second, second), std::make_tuple(second, true, false)) << "itself";
  EXPECT_EQ(at(second.substr(0, 7), third), std::make_tuple(second, true, false)) << "later";
  EXPECT_EQ(at(first.substr(0, 4), third), std::make_tuple(first, true, false));
  EXPECT_EQ(at(third, first), std::make_tuple(third, false, true)) << "not reached yet";
  EXPECT_EQ(at(elsewhere, third), std::make_tuple(elsewhere, false, false)) << "another branch";
  EXPECT_EQ(at(absl::AsciiStrToUpper(second.substr(0, 10)), third),
            std::make_tuple(second, true, false))
      << "digits as a terminal may show them";

  auto missing = repo->CompareCommits("0000000", third);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("no commit 0000000 in "));
  for (const std::string& bad :
       {std::string("abc"), std::string("main"), std::string(41, 'a'), std::string("12 45")}) {
    EXPECT_EQ(repo->CompareCommits(bad, third).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(repo->CompareCommits(first, "main").status().code(), absl::StatusCode::kInvalidArgument)
      << "compared with a full id only";
}

// A fetch holds its clone for as long as its server takes (up to the fetch timeout); asking
// whether the clone's commits descend from one another (an API call for `rollout status -w
// --commit`, whose client gives up after 30 s) does not wait for it.
TEST(Libgit2RepositoryTest, ComparingCommitsDoesNotWaitForAHangingFetch) {
  const std::string root = TempDir("served");
  GitFixture git(root + "/repo");
  git.Write("a.yaml", "a: 1\n");
  const std::string first = git.Commit("first");
  git.Write("a.yaml", "a: 2\n");
  const std::string second = git.Commit("second");
  const int port = ::gitfleet::testing::FreePort();
  auto daemon = std::make_unique<::gitfleet::testing::Process>(
      "/usr/bin/git",
      std::vector<std::string>{"daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
                               absl::StrCat("--port=", port), "--base-path=" + root, root},
      root + "/../git-daemon.log");
  GitLimits limits;
  limits.fetch_timeout = absl::Seconds(8);
  auto repos = NewLibgit2Repositories(TempDir("cache"), limits, {});
  auto repo = *repos->ForUrl(absl::StrCat("git://127.0.0.1:", port, "/repo"));
  ASSERT_TRUE(::gitfleet::testing::Eventually([&] { return repo->Fetch().ok(); })) << daemon->Log();
  daemon->Kill(SIGTERM);
  // The same port now takes connections and never answers.
  const int silent = socket(AF_INET, SOCK_STREAM, 0);
  const int on = 1;
  setsockopt(silent, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(silent, 8), 0);
  std::atomic<bool> fetched{false};
  std::thread fetch([&] {
    EXPECT_FALSE(repo->Fetch().ok()) << "a server that never answers";
    fetched = true;
  });
  absl::SleepFor(absl::Milliseconds(500));  // the fetch holds the clone, waiting
  absl::StatusOr<GitRepository::Ancestry> at = repo->CompareCommits(first.substr(0, 7), second);
  EXPECT_FALSE(fetched) << "answered while the fetch still waits";
  ASSERT_TRUE(at.ok()) << at.status();
  EXPECT_TRUE(at->reached);
  EXPECT_EQ(at->asked, first);
  fetch.join();
  close(silent);
}

// Paths of `files`, in order.
std::vector<std::string> Paths(const absl::StatusOr<std::vector<RepoFile>>& files) {
  std::vector<std::string> paths;
  if (files.ok()) {
    for (const RepoFile& file : *files) paths.push_back(file.path);
  }
  return paths;
}

// Real repositories hold symbolic links: a README pointing at docs, a values file shared
// between folders, a chart's folder linked into an app. A link within the commit reads as
// what it leads to, as a checkout would; one that leads out of the commit, to nothing or
// round a loop is refused in a bundle's own folder (naming it), and left out of the whole
// repository that kustomize and jsonnet read (before, any link anywhere in the repository
// failed every kustomize bundle).
TEST(Libgit2RepositoryTest, FollowsSymlinksWithinTheCommitOnly) {
  GitFixture git(TempDir("repo"));
  git.Write("shared/values.yaml", "replicas: 2\n");
  git.Write("shared/chart/templates/cm.yaml", "kind: ConfigMap\n");
  git.Write("apps/web/a.yaml", "a: 1\n");
  git.Write("docs/intro.md", "hello\n");
  git.Link("docs/intro.md", "README.md");
  git.Link("../../shared/values.yaml", "apps/web/values.yaml");
  git.Link("../../shared/chart", "apps/web/chart");
  git.Link("web", "apps/current");                                // the folder a bundle names
  git.Link("../shared/../apps/current/a.yaml", "apps/hop.yaml");  // through a link, then back
  const std::string good = git.Commit("links within the commit");
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  auto repo = *repos->ForUrl(git.url());
  ASSERT_TRUE(repo->Fetch().ok());

  auto web = repo->ReadTree(good, "apps/web", kRefuse);
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_EQ(Paths(web),
            (std::vector<std::string>{"apps/web/a.yaml", "apps/web/chart/templates/cm.yaml",
                                      "apps/web/values.yaml"}));
  EXPECT_EQ((*web)[2].content, "replicas: 2\n");
  EXPECT_EQ((*web)[1].content, "kind: ConfigMap\n");
  auto current = repo->ReadTree(good, "apps/current", kRefuse);
  ASSERT_TRUE(current.ok()) << current.status();
  EXPECT_EQ(Paths(current).size(), 3u);
  EXPECT_EQ(Paths(current)[0], "apps/current/a.yaml");
  auto all = repo->ReadTree(good, "", kRefuse);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(Paths(all), ::testing::Contains("README.md"));
  EXPECT_THAT(Paths(all), ::testing::Contains("apps/hop.yaml"));
  for (const RepoFile& file : *all) {
    if (file.path == "README.md") {
      EXPECT_EQ(file.content, "hello\n");
    }
    if (file.path == "apps/hop.yaml") {
      EXPECT_EQ(file.content, "a: 1\n");
    }
  }

  // The few files a render reads above its folder: those there, under the path asked.
  auto some = repo->ReadFiles(good, {"README.md", "apps/.sourceignore", "apps/web",
                                     "apps/current/a.yaml", "apps/hop.yaml/x", "../up"});
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_EQ(Paths(some), (std::vector<std::string>{"README.md", "apps/current/a.yaml"}));
  EXPECT_EQ((*some)[0].content, "hello\n") << "through the link";
  EXPECT_EQ((*some)[1].content, "a: 1\n");

  // The render cache: a folder whose link leads to a changed file has a new id; one whose
  // files and links did not change keeps it.
  const std::vector<std::string> read = {"apps/web", "apps/web/values.yaml", "docs"};
  auto before = repo->EntryIds(good, read);
  ASSERT_TRUE(before.ok()) << before.status();
  git.Write("shared/values.yaml", "replicas: 3\n");
  const std::string changed = git.Commit("shared values changed");
  ASSERT_TRUE(repo->Fetch().ok());
  auto after = repo->EntryIds(changed, read);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE((*before)[0], (*after)[0]) << "apps/web reads shared/values.yaml through a link";
  EXPECT_NE((*before)[1], (*after)[1]);
  EXPECT_EQ((*before)[2], (*after)[2]);
  EXPECT_EQ((*before)[2], *repo->TreeId(good, "docs")) << "no links: the folder's own id";

  // Ways out of the commit, to nothing, and round a loop.
  git.Link("/etc/passwd", "apps/web/passwd.yaml");
  git.Link("../../../outside.yaml", "apps/web/up.yaml");
  git.Link("gone.yaml", "apps/web/dangling.yaml");
  git.Link("..", "apps/web/loop");
  git.Link("ping", "apps/pong");
  git.Link("pong", "apps/ping");
  git.Link("../apps/ping/x", "docs/chain.md");
  git.Commit("links out, dangling, a loop");
  git.Gitlink("vendor/lib", good);
  git.CommitStaged("a submodule");
  ASSERT_TRUE(repo->Fetch().ok());
  const std::string bad = repo->Resolve("")->id;
  auto refused = repo->ReadTree(bad, "apps/web", kRefuse);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("apps/web/"));
  auto whole = repo->ReadTree(bad, "", kLeaveOut);
  ASSERT_TRUE(whole.ok()) << whole.status();
  std::vector<std::string> paths = Paths(whole);
  for (const char* left_out : {"apps/web/passwd.yaml", "apps/web/up.yaml", "apps/web/dangling.yaml",
                               "apps/ping", "apps/pong", "docs/chain.md", "vendor/lib"}) {
    EXPECT_THAT(paths, ::testing::Not(::testing::Contains(left_out))) << left_out;
  }
  EXPECT_THAT(paths, ::testing::Not(::testing::Contains(HasSubstr("apps/web/loop/"))));
  EXPECT_THAT(paths, ::testing::Contains("apps/web/values.yaml")) << "the good ones stay";
  EXPECT_THAT(paths, ::testing::Contains("README.md"));
  for (const RepoFile& file : *whole) {
    EXPECT_EQ(file.content.find("root:"), std::string::npos) << file.path;
  }
}

// A repository that vendors another as a submodule (a shared base, a chart), which vendors
// a third: with submodules on, reads show their files where a recursive checkout shows
// them, and a resolve fetches what a new commit's gitlinks name; off, the folder that
// holds one is refused, saying how to fetch it.
TEST(Libgit2RepositoryTest, SubmodulesAreReadWhereACheckoutShowsThem) {
  const std::string forge = TempDir("forge");
  GitFixture deep(forge + "/deep");
  deep.Write("d.yaml", "d: 1\n");
  const std::string deep_1 = deep.Commit("deep");
  GitFixture lib(forge + "/lib");
  lib.Write("base/cm.yaml", "kind: ConfigMap\n");
  lib.Write(".gitmodules", "[submodule \"deep\"]\n\tpath = vendor/deep\n\turl = ../deep\n");
  lib.Git("add .gitmodules base");
  lib.Gitlink("vendor/deep", deep_1);
  std::string lib_head = lib.CommitStaged("lib with deep");
  GitFixture app(forge + "/app");
  app.Write("apps/web/a.yaml", "a: 1\n");
  app.Link("../../vendor/lib/base", "apps/web/base");  // a link into the submodule
  app.Write(".gitmodules", "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib\n");
  app.Git("add -A");
  app.Gitlink("vendor/lib", lib_head);
  app.CommitStaged("app with lib");

  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  // Off (the default): refused where a bundle reads it, left out of a whole read.
  auto plain = *repos->ForUrl(app.url());
  ASSERT_TRUE(plain->Fetch().ok());
  const std::string commit = plain->Resolve("")->id;
  auto refused = plain->ReadTree(commit, "vendor", kRefuse);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("vendor/lib: a submodule, which is not fetched (a source with "
                        "--submodules fetches it)"));
  EXPECT_EQ(Paths(plain->ReadTree(commit, "", kLeaveOut)),
            (std::vector<std::string>{".gitmodules", "apps/web/a.yaml"}));

  // On: a clone of its own, whose resolve fetches lib and deep.
  auto repo = *repos->ForUrl(app.url(), "", /*submodules=*/true);
  EXPECT_NE(repo.get(), plain.get());
  ASSERT_TRUE(repo->Fetch().ok());
  absl::StatusOr<CommitInfo> resolved = repo->Resolve("");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->id, commit);
  EXPECT_EQ(Paths(repo->ReadTree(commit, "", kRefuse)),
            (std::vector<std::string>{".gitmodules", "apps/web/a.yaml", "apps/web/base/cm.yaml",
                                      "vendor/lib/.gitmodules", "vendor/lib/base/cm.yaml",
                                      "vendor/lib/vendor/deep/d.yaml"}));
  auto inside = repo->ReadTree(commit, "vendor/lib/vendor/deep", kRefuse);
  ASSERT_TRUE(inside.ok()) << inside.status();
  ASSERT_EQ(inside->size(), 1u);
  EXPECT_EQ((*inside)[0].path, "vendor/lib/vendor/deep/d.yaml");
  EXPECT_EQ((*inside)[0].content, "d: 1\n");
  auto ids =
      repo->EntryIds(commit, {"apps/web", "vendor/lib/base", "vendor/lib/vendor/deep/d.yaml"});
  ASSERT_TRUE(ids.ok()) << ids.status();
  for (const std::string& id : *ids) EXPECT_NE(id, "");

  // deep moves on, lib and app take it: the next resolve fetches it, and the ids of what
  // reads it change.
  deep.Write("d.yaml", "d: 2\n");
  const std::string deep_2 = deep.Commit("deep 2");
  lib.Gitlink("vendor/deep", deep_2);
  lib_head = lib.CommitStaged("deep 2");
  app.Gitlink("vendor/lib", lib_head);
  app.CommitStaged("lib 2");
  ASSERT_TRUE(repo->Fetch().ok());
  resolved = repo->Resolve("");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  inside = repo->ReadTree(resolved->id, "vendor/lib/vendor/deep", kRefuse);
  ASSERT_TRUE(inside.ok()) << inside.status();
  EXPECT_EQ((*inside)[0].content, "d: 2\n");
  auto later = repo->EntryIds(resolved->id,
                              {"apps/web", "vendor/lib/base", "vendor/lib/vendor/deep/d.yaml"});
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ((*later)[0], (*ids)[0]) << "apps/web's link leads to what did not change";
  EXPECT_EQ((*later)[1], (*ids)[1]);
  EXPECT_NE((*later)[2], (*ids)[2]);
  // The commit before still reads as it did.
  inside = repo->ReadTree(commit, "vendor/lib/vendor/deep", kRefuse);
  ASSERT_TRUE(inside.ok()) << inside.status();
  EXPECT_EQ((*inside)[0].content, "d: 1\n");

  // A team's source (held to its repositories): lib is under them, deep is not, and is
  // not fetched; with deep's too, all three read.
  auto team = *repos->ForUrl(app.url(), "", true, false, {app.url(), "file://" + forge + "/lib"});
  EXPECT_NE(team.get(), repo.get()) << "a clone of its own";
  ASSERT_TRUE(team->Fetch().ok());
  absl::StatusOr<CommitInfo> held = team->Resolve("");
  EXPECT_EQ(held.status().code(), absl::StatusCode::kPermissionDenied) << held.status();
  EXPECT_THAT(std::string(held.status().message()),
              HasSubstr("submodule vendor/lib/vendor/deep is at file://" + forge +
                        "/deep, outside the repositories of its source's scope"));
  auto whole = *repos->ForUrl(app.url(), "", true, false, {"file://" + forge});
  ASSERT_TRUE(whole->Fetch().ok());
  held = whole->Resolve("");
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(Paths(whole->ReadTree(held->id, "vendor/lib/vendor/deep", kRefuse)),
            (std::vector<std::string>{"vendor/lib/vendor/deep/d.yaml"}));
}

// What a submodule may not make the control plane do, and how each is said.
TEST(Libgit2RepositoryTest, SubmodulesThatCannotBeFetchedAreNamed) {
  const std::string forge = TempDir("forge");
  GitFixture lib(forge + "/lib");
  lib.Write("a.yaml", "a: 1\n");
  const std::string lib_1 = lib.Commit("lib");
  GitFixture app(forge + "/app");
  app.Write("a.yaml", "a: 1\n");
  app.Commit("app");
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  auto repo = *repos->ForUrl(app.url(), "", /*submodules=*/true);
  auto commit_with = [&](const std::string& gitmodules, const std::string& link,
                         const std::string& id) {
    app.Write(".gitmodules", gitmodules);
    app.Git("add .gitmodules");
    app.Git("rm -q --cached --ignore-unmatch -r vendor");
    app.Gitlink(link, id);
    app.CommitStaged("submodule");
    EXPECT_TRUE(repo->Fetch().ok());
    return repo->Resolve("");
  };
  struct Case {
    std::string gitmodules;
    std::string link;
    std::string id;
    absl::StatusCode code;
    std::string says;
  };
  const std::string missing(40, 'e');
  for (const Case& c : std::vector<Case>{
           // First: once lib's commit is in the clone, nothing is fetched for it.
           {"[submodule \"x\"]\n path = vendor/x\n url = ../nothing-here\n", "vendor/x", lib_1,
            absl::StatusCode::kUnavailable, "submodule vendor/x: cannot fetch"},
           {"[submodule \"x\"]\n path = vendor/x\n url = ext::sh -c touch% /tmp/pwned\n",
            "vendor/x", lib_1, absl::StatusCode::kInvalidArgument,
            "submodule vendor/x: URL \"ext::sh -c touch% /tmp/pwned\" must start with"},
           {"[submodule \"x\"]\n path = vendor/x\n url = "
            "../../../../../../../../../../../../../../../../x\n",
            "vendor/x", lib_1, absl::StatusCode::kInvalidArgument, "climbs above"},
           {"[submodule \"x\"\n", "vendor/x", lib_1, absl::StatusCode::kInvalidArgument,
            ".gitmodules at "},
           {"[submodule \"x\"]\n path = vendor/x\n url = ../lib\n", "vendor/x", missing,
            absl::StatusCode::kNotFound,
            "submodule vendor/x: commit eeeeeeeeeeee is on no branch or tag of"},
       }) {
    absl::StatusOr<CommitInfo> resolved = commit_with(c.gitmodules, c.link, c.id);
    EXPECT_EQ(resolved.status().code(), c.code) << c.gitmodules << resolved.status();
    EXPECT_THAT(std::string(resolved.status().message()), HasSubstr(c.says)) << c.gitmodules;
  }
  // A gitlink .gitmodules does not name: nothing to fetch, and refused where it is read.
  absl::StatusOr<CommitInfo> resolved = commit_with("", "vendor/x", missing);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_THAT(std::string(repo->ReadTree(resolved->id, "vendor", kRefuse).status().message()),
              HasSubstr("vendor/x: a submodule whose commit"));
  EXPECT_THAT(std::string(repo->ReadTree(resolved->id, "vendor/x", kRefuse).status().message()),
              HasSubstr("leads to vendor/x, a submodule whose commit"));

  // A submodule .gitmodules marks `update = none` is not checked out by Git either: not
  // fetched, and an empty folder to every read.
  resolved = commit_with("[submodule \"x\"]\n path = vendor/x\n url = ../nowhere\n update = none\n",
                         "vendor/x", missing);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  app.Write("vendor/a.yaml", "a: 1\n");
  app.Git("add vendor/a.yaml");
  app.CommitStaged("beside it");
  ASSERT_TRUE(repo->Fetch().ok());
  resolved = repo->Resolve("");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(Paths(repo->ReadTree(resolved->id, "vendor", kRefuse)),
            std::vector<std::string>{"vendor/a.yaml"});
  EXPECT_EQ(repo->ReadTree(resolved->id, "vendor/x", kRefuse).status().code(),
            absl::StatusCode::kNotFound);

  // Bounds: how many, and how deep.
  GitLimits limits;
  limits.max_submodules = 1;
  auto bounded = NewLibgit2Repositories(TempDir("cache"), limits, kLocal);
  auto two = *bounded->ForUrl(app.url(), "", true);
  app.Write(".gitmodules",
            "[submodule \"a\"]\n path = vendor/a\n url = ../lib\n"
            "[submodule \"b\"]\n path = vendor/b\n url = ../lib\n");
  app.Git("add .gitmodules");
  app.Git("rm -q --cached --ignore-unmatch -r vendor");
  app.Gitlink("vendor/a", lib_1);
  app.Gitlink("vendor/b", lib_1);
  app.CommitStaged("two");
  ASSERT_TRUE(two->Fetch().ok());
  EXPECT_THAT(std::string(two->Resolve("").status().message()),
              HasSubstr("names more than 1 submodules, theirs included (at vendor/b)"));
}

// One file over --max-blob-bytes (a video in a docs folder) fails a bundle whose folder
// holds it, naming it, and is left out of the whole repository kustomize and jsonnet read:
// before, it failed every such bundle of the repository.
TEST(Libgit2RepositoryTest, AFileOverTheBoundFailsOnlyTheFolderThatHoldsIt) {
  GitFixture git(TempDir("repo"));
  git.Write("apps/web/a.yaml", "a: 1\n");
  git.Write("docs/video.bin", std::string(5000, 'v'));
  const std::string commit = git.Commit("a big file");
  GitLimits limits;
  limits.max_blob_bytes = 1000;
  auto repos = NewLibgit2Repositories(TempDir("cache"), limits, kLocal);
  auto repo = *repos->ForUrl(git.url());
  ASSERT_TRUE(repo->Fetch().ok());
  auto docs = repo->ReadTree(commit, "docs", kRefuse);
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(docs.status().message()),
              HasSubstr("docs/video.bin is 5000 bytes, over the limit of 1000"));
  auto all = repo->ReadTree(commit, "", kLeaveOut);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(Paths(all), std::vector<std::string>{"apps/web/a.yaml"});
  auto files = repo->ReadFiles(commit, {"apps/web/a.yaml", "docs/video.bin"});
  EXPECT_EQ(files.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("docs/video.bin is 5000 bytes"));
}

// Each way a link cannot be read is refused in a bundle's folder, saying which and why.
TEST(Libgit2RepositoryTest, SaysWhyALinkCannotBeRead) {
  GitFixture git(TempDir("repo"));
  git.Write("ok/a.yaml", "a: 1\n");
  git.Link("/etc/passwd", "abs/passwd.yaml");
  git.Link("../../outside.yaml", "up/x.yaml");
  git.Link("gone.yaml", "dangling/x.yaml");
  git.Link("..", "loop/back");
  git.Link("pong", "pingpong/ping");
  git.Link("ping", "pingpong/pong");
  git.Link("../ok", "through/ok");
  git.Link("ok/../../x", "through/out.yaml");
  const std::string first = git.Commit("links");
  // A submodule as `git submodule add` records it: a commit in the tree (not fetched here).
  git.Gitlink("sub/lib", first);
  git.CommitStaged("a submodule");
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  auto repo = *repos->ForUrl(git.url());
  ASSERT_TRUE(repo->Fetch().ok());
  std::string commit = repo->Resolve("")->id;
  ASSERT_NE(commit, first);
  struct Case {
    std::string folder;
    std::string says;
    std::vector<std::string> left;  // what a read that leaves it out gives
  };
  for (const Case& c : std::vector<Case>{
           {"abs",
            "abs/passwd.yaml: a symbolic link to /etc/passwd that leads outside the "
            "repository (an absolute path)"},
           {"up",
            "up/x.yaml: a symbolic link to ../../outside.yaml that leads above the "
            "repository's root"},
           {"dangling",
            "dangling/x.yaml: a symbolic link to gone.yaml that leads to dangling/gone.yaml, "
            "which is not in the commit"},
           {"loop",
            "loop/back: a symbolic link to the folder at the repository's root, which holds it "
            "(a loop)"},
           {"pingpong", "leads through more than 40 symbolic links (a loop?)"},
           {"through",
            "through/out.yaml: a symbolic link to ok/../../x that leads above the repository's "
            "root",
            {"through/ok/a.yaml"}},
           {"sub", "sub/lib: a submodule, which is not fetched"},
       }) {
    auto files = repo->ReadTree(commit, c.folder, kRefuse);
    EXPECT_EQ(files.status().code(), absl::StatusCode::kInvalidArgument) << c.folder;
    EXPECT_THAT(std::string(files.status().message()), HasSubstr(c.says)) << c.folder;
    auto left = repo->ReadTree(commit, c.folder, kLeaveOut);
    EXPECT_TRUE(left.ok()) << c.folder << ": " << left.status();
    EXPECT_EQ(Paths(left), c.left) << c.folder;
  }
  // A bundle's folder that is itself a way out.
  git.Link("/etc", "etc");
  commit = git.Commit("a link to /etc");
  ASSERT_TRUE(repo->Fetch().ok());
  auto out = repo->ReadTree(commit, "etc", kRefuse);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr("path \"etc\" leads outside the repository (through etc, a link to /etc)"));
  EXPECT_EQ((*repo->EntryIds(commit, {"etc", "etc/passwd"}))[1], "");
}

TEST(Libgit2RepositoryTest, UnreachableUrlIsAnError) {
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  auto repo = *repos->ForUrl("file:///nonexistent/repo");
  absl::Status status = repo->Fetch();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("/nonexistent/repo"));
}

TEST(Libgit2RepositoryTest, HttpsIsSupported) {
  // Nothing listens on port 1: the error must be about connecting, which shows libgit2
  // was built with HTTPS (otherwise: "unsupported URL protocol").
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  auto repo = *repos->ForUrl("https://127.0.0.1:1/team/app.git");
  absl::Status status = repo->Fetch();
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("https://127.0.0.1:1/team/app.git"));
  EXPECT_THAT(std::string(status.message()), ::testing::Not(HasSubstr("unsupported")));
  EXPECT_THAT(std::string(status.message()), ::testing::ContainsRegex("connect|refused"));
}

// A repository whose one commit holds NAME.yaml.
std::unique_ptr<GitFixture> OneCommit(const std::string& name) {
  auto git = std::make_unique<GitFixture>(TempDir(name));
  git->Write(name + ".yaml", name + ": 1\n");
  git->Commit(name);
  return git;
}

// The clones (NAME.git) in a cache directory, sorted.
std::vector<std::string> Clones(const std::string& cache) {
  std::string out;
  ::gitfleet::testing::Run("cd '" + cache + "' && ls -d *.git 2>/dev/null | sort", &out);
  return absl::StrSplit(out, '\n', absl::SkipEmpty());
}

// A clone no source uses is deleted: at once when nothing holds its repository, else once
// nothing does; a repository asked for again before that keeps its clone (and object).
TEST(Libgit2RepositoryTest, RetainDeletesTheClonesNoSourceUses) {
  std::unique_ptr<GitFixture> made_a = OneCommit("a"), made_b = OneCommit("b"),
                              made_c = OneCommit("c");
  GitFixture &a = *made_a, &b = *made_b, &c = *made_c;
  const std::string cache = TempDir("cache");
  auto repos = NewLibgit2Repositories(cache, {}, kLocal);
  ASSERT_TRUE((*repos->ForUrl(a.url()))->Fetch().ok());
  std::shared_ptr<GitRepository> held = *repos->ForUrl(b.url());
  ASSERT_TRUE(held->Fetch().ok());
  ASSERT_TRUE((*repos->ForUrl(c.url()))->Fetch().ok());
  const std::vector<std::string> all = Clones(cache);
  ASSERT_EQ(all.size(), 3u);

  // b is unused but held (a fetch under way): kept for now; c goes.
  EXPECT_EQ(repos->Retain({{a.url(), ""}}), 1);
  EXPECT_EQ(Clones(cache).size(), 2u);
  EXPECT_TRUE(repos->RetainPending());
  // Asked for again: the same object, and its clone stays.
  EXPECT_EQ(*repos->ForUrl(b.url()), held);
  EXPECT_EQ(repos->Retain({{a.url(), ""}, {b.url(), ""}}), 0);
  EXPECT_EQ(Clones(cache).size(), 2u);

  EXPECT_EQ(repos->Retain({{a.url(), ""}}), 0) << "still held";
  held.reset();
  EXPECT_EQ(repos->Retain({{a.url(), ""}}), 1);
  EXPECT_FALSE(repos->RetainPending());
  std::vector<std::string> left = Clones(cache);
  ASSERT_EQ(left.size(), 1u);
  // a's clone still serves a.
  EXPECT_TRUE((*repos->ForUrl(a.url()))->Fetch().ok());
  EXPECT_EQ(Clones(cache), left);

  // After a restart, the first Retain deletes clones of repositories no source names
  // (removed while the control plane was down), and nothing else in the directory.
  repos.reset();
  ::gitfleet::testing::Run("cp -r '" + cache + "/" + left[0] + "' '" + cache +
                           "/0123456789abcdef01234567.git'");
  std::ofstream(cache + "/notes.txt") << "mine\n";
  ::gitfleet::testing::Run("mkdir -p '" + cache + "/keep.git'");
  repos = NewLibgit2Repositories(cache, {}, kLocal);
  EXPECT_TRUE(repos->RetainPending());
  EXPECT_EQ(repos->Retain({{a.url(), ""}}), 1);
  EXPECT_EQ(Clones(cache), (std::vector<std::string>{left[0], "keep.git"}));
  EXPECT_TRUE(std::ifstream(cache + "/notes.txt").good());
  EXPECT_TRUE(std::ifstream(cache + "/home/.ssh/known_hosts").good());
  EXPECT_TRUE((*repos->ForUrl(a.url()))->Fetch().ok());
}

// A source removed, or pointed at another repository, leaves no clone behind.
TEST(SourcePollerTest, ARemovedSourcesCloneIsDeleted) {
  std::unique_ptr<GitFixture> made_a = OneCommit("a"), made_b = OneCommit("b");
  GitFixture &a = *made_a, &b = *made_b;
  metrics::Registry registry;
  ControlPlaneMetrics metrics(registry);
  const std::string cache = TempDir("cache");
  auto repos = NewLibgit2Repositories(cache, {}, kLocal);
  SourcePoller poller(repos.get(), metrics, [](const std::string&, const SourceSnapshot&) {});
  poller.Start();
  v1::Source one;
  one.set_name("one");
  one.set_url(a.url());
  v1::Source two = one;
  two.set_name("two");
  poller.Upsert(one);
  poller.Upsert(two);
  ASSERT_TRUE(poller.SyncNow("one", absl::Seconds(30)).ok());
  ASSERT_EQ(Clones(cache).size(), 1u);

  poller.Remove("one");
  EXPECT_EQ(Clones(cache).size(), 1u) << "two still reads it";
  two.set_url(b.url());
  poller.Upsert(two);
  ASSERT_TRUE(poller.SyncNow("two", absl::Seconds(30)).ok());
  // a's clone went when two moved to b (or, if a snapshot still held it, at the fetch).
  const std::vector<std::string> left = Clones(cache);
  ASSERT_EQ(left.size(), 1u);
  // A render still reads b's clone when the last source goes: it stays while held, and
  // goes soon after, with no fetch left to notice.
  std::optional<SourceSnapshot> held = poller.Snapshot("two");
  ASSERT_TRUE(held.has_value());
  poller.Remove("two");
  EXPECT_EQ(Clones(cache), left) << "held";
  held.reset();
  for (absl::Time end = absl::Now() + absl::Seconds(20);
       absl::Now() < end && !Clones(cache).empty();) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(Clones(cache).empty());
}

// What a poller test starts from: a repository with one commit, and the poller's metrics.
struct PollerSetup {
  PollerSetup() : git(TempDir("repo")), metrics(registry) {
    git.Write("a.yaml", "a: 1\n");
    first = git.Commit("first");
  }
  GitFixture git;
  std::string first;
  metrics::Registry registry;
  ControlPlaneMetrics metrics;
};

TEST(SourcePollerTest, DeliversNewCommitsAndReportsErrors) {
  PollerSetup setup;
  GitFixture& git = setup.git;
  const std::string& first = setup.first;
  ControlPlaneMetrics& metrics = setup.metrics;
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  Mutex mu;
  std::vector<std::pair<std::string, std::string>> seen;
  std::vector<std::pair<std::string, std::string>> errors;  // source, error ("" recovered)
  SourcePoller poller(
      repos.get(), metrics,
      [&](const std::string& name, const SourceSnapshot& snap) {
        MutexLock lock(&mu);
        seen.emplace_back(name, snap.commit.id);
      },
      absl::Seconds(30), 4, &RealClock(),
      [&](const std::string& name, const std::string& error) {
        MutexLock lock(&mu);
        errors.emplace_back(name, error);
      });
  v1::Source source;
  source.set_name("app");
  source.set_url(git.url());
  source.set_ref("main");
  v1::Source same_url = source;
  same_url.set_name("app-too");
  poller.Upsert(source);
  poller.Upsert(same_url);
  poller.Start();
  auto info = poller.SyncNow("app");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->commit(), first);
  EXPECT_EQ(poller.Get("app-too")->commit(), first) << "one fetch serves both";
  // Both upserts fold into one fetch; the sync waits for one after any in progress.
  EXPECT_GE(metrics.source_fetches.Add({{"result", "ok"}}).Value(), 1);
  EXPECT_LE(metrics.source_fetches.Add({{"result", "ok"}}).Value(), 2);

  git.Write("a.yaml", "a: 2\n");
  std::string second = git.Commit("second");
  ASSERT_TRUE(poller.SyncNow("app").ok());
  ASSERT_TRUE(poller.SyncNow("app").ok());  // no new commit: no delivery
  {
    MutexLock lock(&mu);
    ASSERT_EQ(seen.size(), 4u);
    EXPECT_EQ(seen[2].second, second);
  }

  v1::Source bad = source;
  bad.set_name("bad");
  bad.set_ref("no-such-branch");
  poller.Upsert(bad);
  auto bad_info = poller.SyncNow("bad");
  ASSERT_TRUE(bad_info.ok());
  EXPECT_THAT(bad_info->error(), HasSubstr("no-such-branch"));
  // The upsert's fetch and the sync's may both have failed by now.
  EXPECT_GE(bad_info->consecutive_failures(), 1);
  EXPECT_LE(bad_info->consecutive_failures(), 2);
  EXPECT_EQ(poller.SyncNow("missing").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(poller.SyncNow("bad").ok());  // fails again, the same way
  {
    MutexLock lock(&mu);
    ASSERT_EQ(errors.size(), 1u) << "a repeated error is told once";
    EXPECT_EQ(errors[0].first, "bad");
    EXPECT_EQ(errors[0].second, bad_info->error());
  }
  // Mended: told once more, that it recovered; its commit is delivered.
  bad.set_ref("main");
  poller.Upsert(bad);
  ASSERT_TRUE(poller.SyncNow("bad").ok());
  MutexLock lock(&mu);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[1], std::make_pair(std::string("bad"), std::string()));
  EXPECT_EQ(seen.back(), std::make_pair(std::string("bad"), second));
}

// Repositories where one URL's fetch hangs until released; every other URL is real.
class StuckRepositories : public GitRepositories {
 public:
  static constexpr char kStuckUrl[] = "file:///0-stuck";  // sorts before every TempDir URL

  class Stuck : public GitRepository {
   public:
    explicit Stuck(StuckRepositories* owner) : owner_(owner) {}
    const std::string& url() const override { return url_; }
    absl::Status Fetch() override {
      MutexLock lock(&owner_->mu_);
      owner_->fetching_ = true;
      owner_->mu_.Await(
          [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(owner_->mu_) { return owner_->released_; });
      return absl::UnavailableError("the stuck server gave up");
    }
    absl::StatusOr<CommitInfo> Resolve(const std::string&) override {
      return absl::NotFoundError("stuck");
    }
    absl::StatusOr<std::string> TreeId(const std::string&, const std::string&) override {
      return absl::NotFoundError("stuck");
    }
    absl::StatusOr<std::vector<std::string>> EntryIds(const std::string&,
                                                      const std::vector<std::string>&) override {
      return absl::NotFoundError("stuck");
    }
    absl::StatusOr<std::vector<RepoFile>> ReadTree(const std::string&, const std::string&,
                                                   Unreadable) override {
      return absl::NotFoundError("stuck");
    }
    absl::StatusOr<std::vector<RepoFile>> ReadFiles(const std::string&,
                                                    const std::vector<std::string>&) override {
      return absl::NotFoundError("stuck");
    }

   private:
    StuckRepositories* const owner_;
    const std::string url_ = kStuckUrl;
  };

  explicit StuckRepositories(std::unique_ptr<GitRepositories> real) : real_(std::move(real)) {}
  absl::StatusOr<std::shared_ptr<GitRepository>> ForUrl(
      const std::string& url, const std::string& credential, bool submodules, bool lfs,
      const std::vector<std::string>& scope) override {
    if (url == kStuckUrl) return std::make_shared<Stuck>(this);
    return real_->ForUrl(url, credential, submodules, lfs, scope);
  }
  bool fetching() {
    MutexLock lock(&mu_);
    return fetching_;
  }
  void Release() {
    MutexLock lock(&mu_);
    released_ = true;
  }

 private:
  std::unique_ptr<GitRepositories> real_;
  Mutex mu_;
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

TEST(SourcePollerTest, AHangingServerDelaysOnlyItsOwnSources) {
  PollerSetup setup;
  GitFixture& git = setup.git;
  const std::string& first = setup.first;
  ControlPlaneMetrics& metrics = setup.metrics;
  StuckRepositories repos(NewLibgit2Repositories(TempDir("cache"), {}, kLocal));
  SourcePoller poller(&repos, metrics, [](const std::string&, const SourceSnapshot&) {});
  v1::Source stuck;
  stuck.set_name("stuck");
  stuck.set_url(StuckRepositories::kStuckUrl);
  stuck.set_ref("main");
  v1::Source fresh = stuck;
  fresh.set_name("fresh");
  fresh.set_url(git.url());
  poller.Upsert(stuck);
  poller.Upsert(fresh);
  poller.Start();
  bool delivered = false;
  for (int i = 0; i < 1000 && !delivered; ++i) {  // up to 10 s
    delivered = poller.Get("fresh")->commit() == first;
    if (!delivered) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(repos.fetching()) << "the stuck fetch should have started first";
  EXPECT_TRUE(delivered) << "a hanging server held up another source";
  repos.Release();
  for (int i = 0; i < 1000 && poller.Get("stuck")->error().empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(poller.Get("stuck")->error(), HasSubstr("stuck server gave up"));
}

// A source that names signing keys takes only commits one of them signed: an unsigned
// commit, or one signed by another key, is not delivered (the last good one stays), and
// the source's error says why; the next signed commit is taken again.
TEST(SourcePollerTest, TakesOnlyCommitsSignedByTheSourcesKeys) {
  PollerSetup setup;
  GitFixture& git = setup.git;
  const std::string keys = TempDir("signing");
  std::string out;
  ASSERT_EQ(
      ::gitfleet::testing::Run(
          absl::StrCat("set -e; cd '", keys, "';", "ssh-keygen -q -t ed25519 -N '' -f release;",
                       "ssh-keygen -q -t ed25519 -N '' -f stranger;", "mkdir signers;",
                       "printf 'release@example.com %s\\n' \"$(cut -d' ' -f1,2 "
                       "release.pub)\" > signers/allowed_signers"),
          &out),
      0)
      << out;
  auto commit = [&](const std::string& key, const std::string& message) {
    git.Write("a.yaml", absl::StrCat("a: ", message, "\n"));
    std::string id;
    EXPECT_EQ(::gitfleet::testing::Run(
                  absl::StrCat("cd '", git.dir(), "' && git ",
                               key.empty() ? ""
                                           : absl::StrCat("-c gpg.format=ssh -c user.signingkey='",
                                                          keys, "/", key, "' "),
                               "commit -q ", key.empty() ? "" : "-S ", "-am '", message,
                               "' && git rev-parse HEAD"),
                  &id),
              0)
        << id;
    return std::string(absl::StripAsciiWhitespace(id));
  };
  const std::string signed_first = commit("release", "signed");
  std::vector<std::string> delivered;
  Mutex mu;
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  SourcePoller poller(repos.get(), setup.metrics,
                      [&](const std::string&, const SourceSnapshot& snapshot) {
                        MutexLock lock(&mu);
                        delivered.push_back(snapshot.commit.id);
                      });
  poller.SetSigningKeysDir(keys);
  poller.Start();
  v1::Source source;
  source.set_name("apps");
  source.set_url(git.url());
  source.set_verify_commits("signers");
  poller.Upsert(source);
  absl::StatusOr<v1::SourceInfo> info = poller.SyncNow("apps", absl::Seconds(30));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->commit(), signed_first);
  EXPECT_EQ(info->error(), "");
  EXPECT_EQ(info->signed_by(), "release@example.com");

  const std::string unsigned_commit = commit("", "unsigned");
  info = poller.SyncNow("apps", absl::Seconds(30));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->commit(), signed_first) << "the last signed commit stays";
  EXPECT_THAT(info->error(), HasSubstr(absl::StrCat("commit ", unsigned_commit.substr(0, 12),
                                                    " is not signed (this source takes only "
                                                    "commits signed by a key in signers)")));
  commit("stranger", "by a stranger");
  info = poller.SyncNow("apps", absl::Seconds(30));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->commit(), signed_first);
  EXPECT_THAT(info->error(), HasSubstr("allowed_signers does not list"));

  const std::string signed_again = commit("release", "signed again");
  info = poller.SyncNow("apps", absl::Seconds(30));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->commit(), signed_again);
  EXPECT_EQ(info->error(), "");
  {
    MutexLock lock(&mu);
    EXPECT_EQ(delivered, (std::vector<std::string>{signed_first, signed_again}));
  }

  // A source at a tag: a release manager's signed annotated tag vouches for an unsigned
  // commit; an unsigned tag, or one a stranger signed, does not.
  auto tag = [&](const std::string& name, const std::string& key) {
    std::string out;
    EXPECT_EQ(::gitfleet::testing::Run(
                  absl::StrCat("cd '", git.dir(), "' && git ",
                               key.empty() ? "tag -a "
                                           : absl::StrCat("-c gpg.format=ssh -c user.signingkey='",
                                                          keys, "/", key, "' tag -s "),
                               name, " -m 'release ", name, "'"),
                  &out),
              0)
        << out;
  };
  const std::string released = commit("", "released");
  tag("v1", "release");
  tag("v2", "");
  tag("v3", "stranger");
  for (const char* name : {"v1", "v2", "v3"}) {
    v1::Source at_tag = source;
    at_tag.set_name(absl::StrCat("release-", name));
    at_tag.set_ref(name);
    poller.Upsert(at_tag);
    info = poller.SyncNow(at_tag.name(), absl::Seconds(30));
    ASSERT_TRUE(info.ok()) << info.status();
    if (std::string(name) == "v1") {
      EXPECT_EQ(info->commit(), released);
      EXPECT_EQ(info->error(), "");
      EXPECT_EQ(info->signed_by(), "tag v1 by release@example.com");
    } else {
      EXPECT_EQ(info->commit(), "") << "nothing delivered";
      EXPECT_THAT(info->error(),
                  HasSubstr(std::string(name) == "v2" ? "is not signed, nor is tag v2 signed"
                                                      : "and tag v3 is not taken"));
    }
  }
}

// A commit other than the one a source delivers (a rollback's) is judged by the source's
// keys too; a source that starts to verify forgets the commit it took unchecked until its
// next fetch checks it.
TEST(SourcePollerTest, JudgesOtherCommitsByTheSourcesKeysAndForgetsUncheckedOnes) {
  PollerSetup setup;
  GitFixture& git = setup.git;
  const std::string keys = TempDir("signing");
  std::string out;
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("set -e; cd '", keys, "'; ssh-keygen -q -t ed25519 -N '' -f release;",
                             "mkdir signers; printf 'release@example.com %s\\n' \"$(cut -d' ' "
                             "-f1,2 release.pub)\" > signers/allowed_signers"),
                &out),
            0)
      << out;
  const std::string sign =
      absl::StrCat("-c gpg.format=ssh -c user.signingkey='", keys, "/release' ");
  std::string signed_commit;
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("cd '", git.dir(), "' && printf 'a: 2\\n' > a.yaml && git ", sign,
                             "commit -q -S -am signed && git ", sign, "tag -s v1 -m v1 ",
                             setup.first, " && git rev-parse HEAD"),
                &signed_commit),
            0)
      << signed_commit;
  signed_commit = std::string(absl::StripAsciiWhitespace(signed_commit));
  git.Write("a.yaml", "a: 3\n");
  const std::string unsigned_head = git.Commit("unsigned");
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, kLocal);
  SourcePoller poller(repos.get(), setup.metrics, [](const std::string&, const SourceSnapshot&) {});
  poller.SetSigningKeysDir(keys);
  poller.Start();
  v1::Source source;
  source.set_name("apps");
  source.set_url(git.url());
  poller.Upsert(source);
  absl::StatusOr<v1::SourceInfo> info = poller.SyncNow("apps", absl::Seconds(30));
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->commit(), unsigned_head) << "a source that verifies nothing takes it";
  std::optional<SourceSnapshot> snapshot = poller.Snapshot("apps");
  ASSERT_TRUE(snapshot.has_value());
  GitRepository& repo = *snapshot->repo;
  auto judge = [&](const std::string& ref) {
    absl::StatusOr<CommitInfo> commit = repo.Resolve(ref);
    EXPECT_TRUE(commit.ok()) << commit.status();
    return commit.ok() ? poller.VerifyForSource("apps", repo, *commit, ref) : commit.status();
  };
  absl::StatusOr<std::string> signer = judge(setup.first);
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ(*signer, "") << "no keys: any commit";
  EXPECT_TRUE(absl::IsNotFound(
      poller.VerifyForSource("other", repo, *repo.Resolve(setup.first), setup.first).status()));

  source.set_verify_commits("signers");
  poller.Upsert(source);
  EXPECT_FALSE(poller.Snapshot("apps").has_value()) << "the unchecked commit is forgotten";
  EXPECT_EQ(poller.Get("apps")->commit(), "");
  signer = judge(signed_commit);
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ(*signer, "release@example.com");
  signer = judge(unsigned_head);
  EXPECT_TRUE(absl::IsPermissionDenied(signer.status())) << signer.status();
  EXPECT_THAT(signer.status().message(),
              HasSubstr(absl::StrCat("commit ", unsigned_head.substr(0, 12), " is not signed")));
  // The first commit is unsigned, but a signed tag names it.
  signer = judge("v1");
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ(*signer, "tag v1 by release@example.com");
  EXPECT_FALSE(judge(setup.first).ok()) << "by its id, no tag vouches for it";

  info = poller.SyncNow("apps", absl::Seconds(30));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->commit(), "") << "its unsigned head is not taken";
  EXPECT_THAT(info->error(), HasSubstr("is not signed"));
  EXPECT_FALSE(poller.Snapshot("apps").has_value());
}

}  // namespace
}  // namespace gitfleet
