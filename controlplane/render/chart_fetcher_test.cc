#include "controlplane/render/chart_fetcher.h"

#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/subprocess.h"
#include "controlplane/source/repo_url.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/chart_server.h"
#include "tests/util/git_fixture.h"
#include "tests/util/git_servers.h"
#include "tests/util/oci_registry.h"
#include "tests/util/process.h"

namespace gitfleet {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// Helm's constraints (Masterminds semver), as charts' users write them.
TEST(SemverSatisfiesTest, ReadsConstraintsAsHelmDoes) {
  const std::tuple<const char*, const char*, bool> kCases[] = {
      {"1.2.3", "1.2.3", true},
      {"v1.2.3", "1.2.3", true},
      {"1.2.4", "1.2.3", false},
      {"1.2.9", "~1.2.3", true},
      {"1.3.0", "~1.2.3", false},
      {"1.2.2", "~1.2.3", false},
      {"1.9.9", "~1", true},
      {"1.9.0", "^1.2", true},
      {"2.0.0", "^1.2", false},
      {"0.2.5", "^0.2.3", true},
      {"0.3.0", "^0.2.3", false},
      {"0.0.4", "^0.0.3", false},
      {"1.5.0", ">=1.0 <2", true},
      {"2.0.0", ">=1.0, <2", false},
      {"1.5.0", ">= 1.0", true},
      {"1.2.7", "1.2.x", true},
      {"1.3.0", "1.2.x", false},
      {"1.2.7", "1.2", true},
      {"1.2.7", "1", true},
      {"3.0.0", "*", true},
      {"3.0.0", "", true},
      {"1.0.0-rc1", "^1.0", false},
      {"1.0.0-rc1", ">=1.0.0-0", true},
      {"1.0.0-rc.2", ">1.0.0-rc.10", false},
      {"1.4.5", "1.2 - 1.4.5", true},
      {"1.4.6", "1.2 - 1.4.5", false},
      {"1.4.9", "1.2 - 1.4", true},
      {"1.5.0", "1.2 - 1.4", false},
      {"1.1.0", "<1.2 || >=3", true},
      {"2.0.0", "<1.2 || >=3", false},
      {"1.5.0", "!=1.5.0", false},
      {"1.5.1", ">1.5", false},
      {"1.6.0", ">1.5", true},
      {"1.5.9", "<=1.5", true},
      {"not-a-version", "*", false},
  };
  for (const auto& [version, constraint, expected] : kCases) {
    absl::StatusOr<bool> holds = SemverSatisfies(version, constraint);
    ASSERT_TRUE(holds.ok()) << constraint << ": " << holds.status();
    EXPECT_EQ(*holds, expected) << version << " in \"" << constraint << "\"";
  }
  EXPECT_THAT(SemverSatisfies("1.0.0", "soon").status().message(),
              HasSubstr("version constraint \"soon\""));
}

// What a new release in the repository changes: the newest, or a range; never an exact
// version or an archive's URL.
TEST(ChartRefMovesTest, RangesAndTheNewestMoveExactVersionsDoNot) {
  const std::string repo = "https://charts.example.com/";
  for (const char* moving : {"", "^1.2", "~1.2.0", ">=1 <2", "1.x", "1.2", "*", "1.2.*"}) {
    EXPECT_TRUE(ChartRefMoves(ChartRef{repo, "web", moving, ""})) << moving;
  }
  for (const char* exact : {"1.2.3", "v1.2.3", "1.2.3-rc.1"}) {
    EXPECT_FALSE(ChartRefMoves(ChartRef{repo, "web", exact, ""})) << exact;
  }
  EXPECT_FALSE(ChartRefMoves(ChartRef{"", "", "", "https://example.com/web-1.2.3.tgz"}));
  EXPECT_TRUE(ChartRefMoves(ChartRef{"", "", "^1", "oci://ghcr.io/org/charts/web"}));
  EXPECT_FALSE(ChartRefMoves(ChartRef{"", "", "1.0.0", "oci://ghcr.io/org/charts/web"}));
}

TEST(ChooseChartVersionTest, ChoosesTheNewestTheConstraintAllows) {
  absl::StatusOr<ChartIndex> index = ReadChartIndex(
      R"(apiVersion: v1
entries:
  web:
  - {version: 1.0.0, urls: [web-1.0.0.tgz], digest: AB12}
  - {version: 1.2.0, urls: [charts/web-1.2.0.tgz]}
  - {version: 1.3.0-beta.1, urls: [/abs/web-1.3.0-beta.1.tgz]}
  - {version: 2.0.0, urls: ['https://cdn.example.com/web-2.0.0.tgz']}
  - {version: broken}
  db: []
)",
      "https://charts.example.com/stable", "https://charts.example.com/stable/index.yaml");
  ASSERT_TRUE(index.ok()) << index.status();
  auto choose = [&](const std::string& constraint) {
    absl::StatusOr<ChartVersion> v =
        ChooseChartVersion(*index, "https://charts.example.com/stable", "web", constraint);
    return v.ok() ? absl::StrCat(v->version, " ", v->url, " ", v->digest)
                  : std::string(v.status().message());
  };
  EXPECT_EQ(choose(""), "2.0.0 https://cdn.example.com/web-2.0.0.tgz ");
  EXPECT_EQ(choose("^1"), "1.2.0 https://charts.example.com/stable/charts/web-1.2.0.tgz ");
  EXPECT_EQ(choose("1.0.0"), "1.0.0 https://charts.example.com/stable/web-1.0.0.tgz ab12");
  EXPECT_EQ(choose("1.3.0-beta.1"),
            "1.3.0-beta.1 https://charts.example.com/abs/web-1.3.0-beta.1.tgz ")
      << "an exact pre-release";
  EXPECT_EQ(choose("^3"),
            "the chart repository https://charts.example.com/stable has no version of web that "
            "\"^3\" allows (the newest: 2.0.0, 1.3.0-beta.1, 1.2.0, 1.0.0)");
  EXPECT_THAT(std::string(ChooseChartVersion(*index, "r", "db", "").status().message()),
              HasSubstr("the chart repository r has no chart db"));
  EXPECT_THAT(ReadChartIndex("entries: [1]\n", "r", "r/index.yaml").status().message(),
              HasSubstr("r/index.yaml is not a chart repository's index"));
  EXPECT_THAT(ReadChartIndex("entries: {\n", "r", "r/index.yaml").status().message(),
              HasSubstr("r/index.yaml:2: invalid YAML"));
}

// The classic "billion laughs": nine aliases per level, nine levels (`*l9` is 9^9 nodes).
std::string AliasBomb() {
  std::string text = "l0: &l0 [lol]\n";
  for (int level = 1; level <= 9; ++level) {
    absl::StrAppend(&text, "l", level, ": &l", level, " [");
    for (int i = 0; i < 9; ++i) absl::StrAppend(&text, i == 0 ? "" : ",", "*l", level - 1);
    absl::StrAppend(&text, "]\n");
  }
  return text;
}

// A served index is bounded before it is walked: aliases that would expand past what the
// text could write plainly are refused (a hostile or broken server), while a big public
// index with more nodes than a repository's file may hold reads whole.
TEST(ReadChartIndexTest, RefusesAnAliasBombAndReadsABigPlainIndex) {
  absl::Status refused =
      ReadChartIndex(AliasBomb() + "entries:\n  web: *l9\n", "r", "https://r.example/index.yaml")
          .status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("https://r.example/index.yaml:"));
  EXPECT_THAT(refused.message(), HasSubstr("alias bomb"));
  // 1.2 million nodes, written out: past the bound on a repository's file, not on an index.
  std::string big =
      "apiVersion: v1\nentries:\n  web:\n  - {version: 1.0.0, urls: [web.tgz]}\n"
      "padding: [";
  for (int i = 0; i < 1200000; ++i) big += i ? ",x" : "x";
  big += "]\n";
  absl::StatusOr<ChartIndex> index = ReadChartIndex(big, "r", "https://r.example/index.yaml");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ((*index)["web"].size(), 1u);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// An archive made by `script` (Python's tarfile, gzip) in a scratch folder.
std::string PythonArchive(const std::string& script) {
  const std::string dir = testing::TempDir("archive");
  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin"};
  options.cwd = dir;
  absl::StatusOr<SubprocessResult> run =
      RunSubprocess({"/usr/bin/python3", "-c",
                     absl::StrCat("import io, tarfile\nt = tarfile.open('a.tgz', 'w:gz')\n"
                                  "def add(name, data, type=tarfile.REGTYPE):\n"
                                  "  i = tarfile.TarInfo(name); i.size = len(data); i.type = type\n"
                                  "  t.addfile(i, io.BytesIO(data))\n",
                                  script, "\nt.close()\n")},
                    options);
  if (!run.ok() || run->exit_code != 0) return "";
  return ReadAll(dir + "/a.tgz");
}

TEST(UnpackChartArchiveTest, UnpacksWhatTarWritesAndRefusesTheRest) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 is not installed";
  // tar itself: a path past ustar's 100 characters.
  const std::string long_dir(120, 'd');
  testing::ChartRepositoryServer made(testing::TempDir("made"));
  ASSERT_TRUE(made.AddChart("web", "1.0.0",
                            {{"Chart.yaml", "name: web\nversion: 1.0.0\n"},
                             {"templates/cm.yaml", "kind: ConfigMap\n"},
                             {long_dir + "/x.yaml", "x: 1\n"}})
                  .ok());
  absl::StatusOr<std::vector<RepoFile>> files =
      UnpackChartArchive(ReadAll(made.root() + "/www/web-1.0.0.tgz"), 1 << 20, 100);
  ASSERT_TRUE(files.ok()) << files.status();
  std::map<std::string, std::string> by_path;
  for (const RepoFile& f : *files) by_path[f.path] = f.content;
  EXPECT_EQ(by_path["Chart.yaml"], "name: web\nversion: 1.0.0\n");
  EXPECT_EQ(by_path["templates/cm.yaml"], "kind: ConfigMap\n");
  EXPECT_EQ(by_path[long_dir + "/x.yaml"], "x: 1\n");
  // Python's tarfile (pax headers for long names), and what is refused.
  const std::string pax = PythonArchive(
      "t.format = tarfile.PAX_FORMAT\nadd('c/Chart.yaml', b'name: c')\n"
      "add('c/' + 'p' * 150 + '.yaml', b'pax')\nadd('c/link', b'', tarfile.SYMTYPE)");
  ASSERT_FALSE(pax.empty());
  files = UnpackChartArchive(pax, 1 << 20, 100);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 2u) << "the link left out";
  EXPECT_EQ((*files)[1].path, std::string(150, 'p') + ".yaml");
  const std::pair<std::string, const char*> kBad[] = {
      {PythonArchive("add('c/Chart.yaml', b'x')\nadd('c/../../etc/x', b'x')"),
       "a path outside the archive"},
      {PythonArchive("add('/abs/Chart.yaml', b'x')"), "a path outside the archive"},
      {PythonArchive("add('a/Chart.yaml', b'x')\nadd('b/x', b'x')"), "it holds both a/ and b/"},
      {PythonArchive("add('a/Chart.yaml', b'x')\nadd('x', b'x')"),
       "it holds x outside a chart's folder"},
      {PythonArchive("add('a/values.yaml', b'x')"), "it holds no Chart.yaml in a/"},
      {PythonArchive("add('a/Chart.yaml', b'x' * 5000)"), "more than 100 files or 4096 bytes"},
      {"not gzip at all", "not a chart archive: it is no archive gitfleet reads"},
  };
  for (const auto& [archive, error] : kBad) {
    ASSERT_FALSE(archive.empty());
    EXPECT_THAT(UnpackChartArchive(archive, 4096, 100).status().message(), HasSubstr(error));
  }
  EXPECT_THAT(UnpackChartArchive(pax.substr(0, pax.size() / 2), 1 << 20, 100).status().message(),
              HasSubstr("cut short"));
}

// A chart repository on loopback: fetched when allowed, by version, its digest checked.
TEST(ChartFetcherTest, FetchesChartsFromAllowedRepositoriesByVersion) {
  testing::ChartRepositoryServer server(testing::TempDir("charts"));
  for (const char* version : {"1.0.0", "1.2.0", "2.0.0"}) {
    ASSERT_TRUE(server
                    .AddChart("web", version,
                              {{"Chart.yaml", absl::StrCat("name: web\nversion: ", version, "\n")},
                               {"templates/cm.yaml", "kind: ConfigMap\n"}})
                    .ok());
  }
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  auto options = [](std::vector<std::string> allowed, size_t max_archive_bytes = 1 << 20) {
    ChartFetchOptions o;
    o.allowed = std::move(allowed);
    o.max_archive_bytes = max_archive_bytes;
    return o;
  };
  ChartFetcher fetcher(options({server.url()}));
  absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
      fetcher.Fetch({server.url(), "web", "^1"});
  ASSERT_TRUE(chart.ok()) << chart.status() << server.Log();
  EXPECT_EQ((*chart)->name, "web");
  EXPECT_EQ((*chart)->version, "1.2.0");
  EXPECT_EQ((*chart)->url, server.url() + "web-1.2.0.tgz");
  EXPECT_EQ((*chart)->files.size(), 2u);
  // The archive's own URL.
  chart = fetcher.Fetch({"", "", "", server.url() + "web-2.0.0.tgz"});
  ASSERT_TRUE(chart.ok()) << chart.status();
  EXPECT_EQ((*chart)->version, "2.0.0") << "from its Chart.yaml";
  // A changed archive no longer matches the index's digest.
  server.Write("web-1.0.0.tgz", ReadAll(server.root() + "/www/web-2.0.0.tgz"));
  EXPECT_THAT(fetcher.Fetch({server.url(), "web", "1.0.0"}).status().message(),
              HasSubstr("is not the archive the chart repository's index lists"));
  EXPECT_THAT(fetcher.Fetch({server.url(), "db", ""}).status().message(),
              HasSubstr("has no chart db"));
  absl::Status missing = fetcher.Fetch({"", "", "", server.url() + "none.tgz"}).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnavailable) << missing;
  EXPECT_THAT(missing.message(), HasSubstr("404"));
  // Not allowed: refused before any request, naming the flag.
  ChartFetcher closed(options({}));
  absl::Status refused = closed.Fetch({server.url(), "web", ""}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("--chart-repositories=" + server.url()));
  // A served chart's Chart.yaml is bounded too.
  ASSERT_TRUE(
      server.AddChart("bomb", "1.0.0", {{"Chart.yaml", "name: bomb\n" + AliasBomb()}}).ok());
  absl::Status bombed =
      ChartFetcher(options({server.url()})).Fetch({server.url(), "bomb", ""}).status();
  EXPECT_EQ(bombed.code(), absl::StatusCode::kInvalidArgument) << bombed;
  EXPECT_THAT(bombed.message(), HasSubstr("bomb-1.0.0.tgz: Chart.yaml:"));
  EXPECT_THAT(bombed.message(), HasSubstr("alias bomb"));
  ChartFetcher small(options({"*"}, 10));
  EXPECT_EQ(small.Fetch({server.url(), "web", ""}).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(ChartFetcher(options({"*"})).Allowed("file:///etc/passwd"));
  EXPECT_FALSE(ChartFetcher(options({"https://a.example.com"}))
                   .Allowed("https://a.example.com.evil.example/x"))
      << "a host is a whole host";
  EXPECT_TRUE(ChartFetcher(options({"https://a.example.com"})).Allowed("https://a.example.com/x"));
}

// A repository over its rate limit (429, Retry-After) is not asked again before the time it
// names, by any fetch: each fails at once saying so, and the server hears nothing more
// until then; after it, the chart is fetched.
TEST(ChartFetcherTest, AHostsRateLimitIsWaitedOutByEveryFetch) {
  testing::ChartRepositoryServer server(testing::TempDir("charts-limited"));
  ASSERT_TRUE(
      server.AddChart("web", "1.0.0", {{"Chart.yaml", "name: web\nversion: 1.0.0\n"}}).ok());
  server.RateLimitFirst(1, 2);
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  ChartFetchOptions options;
  options.allowed = {server.url()};
  ChartFetcher fetcher(options);
  absl::Status limited = fetcher.Fetch({server.url(), "web", "^1"}).status();
  EXPECT_THAT(limited.message(), HasSubstr("429")) << limited;
  auto requests = [&server] {
    const std::string log = server.Log();
    int n = 0;
    for (size_t at = log.find("GET /"); at != std::string::npos; at = log.find("GET /", at + 1)) {
      ++n;
    }
    return n;
  };
  ASSERT_EQ(requests(), 1) << server.Log();
  // Not this fetcher alone: any (another bundle's render, say).
  ChartFetcher other(options);
  const std::string host = server.url().substr(7, server.url().size() - 8);  // 127.0.0.1:PORT
  for (ChartFetcher* fetching : {&fetcher, &other}) {
    absl::Status waiting = fetching->Fetch({server.url(), "web", "^1"}).status();
    EXPECT_EQ(waiting.code(), absl::StatusCode::kUnavailable) << waiting;
    EXPECT_THAT(waiting.message(),
                HasSubstr(host + " answered with a rate limit: not asked again for"));
  }
  EXPECT_EQ(requests(), 1) << "nothing sent while it waits: " << server.Log();
  absl::SleepFor(absl::Seconds(2.2));
  absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
      fetcher.Fetch({server.url(), "web", "^1"});
  ASSERT_TRUE(chart.ok()) << chart.status() << server.Log();
  EXPECT_EQ((*chart)->version, "1.0.0");
}

// A chart repository's index is kept for index_ttl; a push naming the repository (as a
// webhook normalizes it) has it read again, and each fetch names the repository it read.
TEST(ChartFetcherTest, AChartRepositoryPushedToIsReadAgain) {
  testing::ChartRepositoryServer server(testing::TempDir("charts"));
  ASSERT_TRUE(
      server.AddChart("web", "1.0.0", {{"Chart.yaml", "name: web\nversion: 1.0.0\n"}}).ok());
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  ChartFetchOptions options;
  options.allowed = {server.url()};
  ChartFetcher fetcher(options);
  std::vector<std::string> read;
  FetchScope scope;
  scope.repos_read = &read;
  absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
      fetcher.Fetch({server.url(), "web", "^1"}, scope);
  ASSERT_TRUE(chart.ok()) << chart.status() << server.Log();
  EXPECT_EQ((*chart)->version, "1.0.0");
  EXPECT_THAT(read, ::testing::ElementsAre(server.url()));
  ASSERT_TRUE(
      server.AddChart("web", "1.1.0", {{"Chart.yaml", "name: web\nversion: 1.1.0\n"}}).ok());
  EXPECT_EQ((*fetcher.Fetch({server.url(), "web", "^1"}))->version, "1.0.0") << "read a moment ago";
  fetcher.FetchAgain({NormalizeRepoUrl(server.url())});
  chart = fetcher.Fetch({server.url(), "web", "^1"});
  ASSERT_TRUE(chart.ok()) << chart.status();
  EXPECT_EQ((*chart)->version, "1.1.0");
}

// An archive's URL with go-getter's checksum parameter (Fleet's docs offer it to check a
// download): the parameter is taken off the URL the server is asked for, and the archive
// is checked against it; one that differs is refused, as is a checksum gitfleet cannot read.
TEST(ChartFetcherTest, ChecksAnArchiveAgainstTheChecksumItsUrlGives) {
  testing::ChartRepositoryServer server(testing::TempDir("charts"));
  ASSERT_TRUE(
      server.AddChart("web", "1.0.0", {{"Chart.yaml", "name: web\nversion: 1.0.0\n"}}).ok());
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  const std::string archive = ReadAll(server.root() + "/www/web-1.0.0.tgz");
  const std::string sha256 = absl::BytesToHexString(crypto::Sha256(archive));
  const std::string sha512 = absl::BytesToHexString(crypto::Sha512(archive));
  ChartFetchOptions options;
  options.allowed = {server.url()};
  const std::string url = server.url() + "web-1.0.0.tgz";
  for (const std::string& checksum :
       {"sha256:" + sha256, sha256, "SHA512%3A" + absl::AsciiStrToUpper(sha512), sha512}) {
    ChartFetcher fetcher(options);
    absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
        fetcher.Fetch({"", "", "", absl::StrCat(url, "?checksum=", checksum)});
    ASSERT_TRUE(chart.ok()) << checksum << ": " << chart.status();
    EXPECT_EQ((*chart)->url, url) << "the parameter is not the server's";
  }
  EXPECT_THAT(server.Log(), Not(HasSubstr("checksum="))) << "never sent";
  const std::string other(64, 'a');
  for (const auto& [checksum, error] : std::vector<std::pair<std::string, std::string>>{
           {"sha256:" + other, "is not the archive its checksum names (its sha256 is " + sha256},
           {"sha256:abc", "is not one gitfleet reads"},
           {"crc32:" + sha256, "is not one gitfleet reads"},
           {"file:https://example.com/SHA256SUMS",
            "is in a file, which gitfleet does not fetch"}}) {
    absl::Status refused = ChartFetcher(options)
                               .Fetch({"", "", "", absl::StrCat(url, "?checksum=", checksum)})
                               .status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << checksum;
    EXPECT_THAT(refused.message(), HasSubstr(error)) << checksum;
  }
  absl::StatusOr<UrlChecksum> kept =
      SplitUrlChecksum("https://h/web.tgz?a=1&checksum=" + sha256 + "&b=2");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->url, "https://h/web.tgz?a=1&b=2");
  EXPECT_EQ(kept->algorithm, "sha256");
  EXPECT_EQ(SplitUrlChecksum("https://h/web.tgz")->algorithm, "");
}

// What Fleet's `helm.chart` may name besides a chart's own archive: an archive of a whole
// repository (a GitHub release's, `REPO-TAG/charts/web` inside), the chart a folder of it
// after "//" (a pattern for its top folder), in any compression, as go-getter reads it.
TEST(ChartFetcherTest, FetchesTheChartInAFolderOfAnArchiveItsUrlNames) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 is not installed";
  testing::ChartRepositoryServer server(testing::TempDir("charts"));
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  const std::string tgz = PythonArchive(
      "add('apps-1.2/README.md', b'hi')\n"
      "add('apps-1.2/charts/web/Chart.yaml', b'name: web\\nversion: 0.3.0')\n"
      "add('apps-1.2/charts/web/templates/cm.yaml', b'kind: ConfigMap')\n"
      "add('apps-1.2/charts/api/Chart.yaml', b'name: api\\nversion: 0.1.0')");
  ASSERT_FALSE(tgz.empty());
  server.Write("apps-1.2.tar.gz", tgz);
  // The same as a zip, at a URL that does not say so.
  const std::string dir = testing::TempDir("zip");
  SubprocessOptions run_options;
  run_options.env = {"PATH=/usr/bin:/bin"};
  run_options.cwd = dir;
  absl::StatusOr<SubprocessResult> zipped = RunSubprocess(
      {"/usr/bin/python3", "-c",
       "import zipfile\nz = zipfile.ZipFile('a.zip', 'w', zipfile.ZIP_DEFLATED)\n"
       "z.writestr('apps-1.2/charts/web/Chart.yaml', 'name: web\\nversion: 0.3.0')\n"
       "z.writestr('apps-1.2/charts/web/templates/cm.yaml', 'kind: ConfigMap')\nz.close()\n"},
      run_options);
  ASSERT_TRUE(zipped.ok() && zipped->exit_code == 0);
  server.Write("download", ReadAll(dir + "/a.zip"));
  ChartFetchOptions options;
  options.allowed = {server.url()};
  const std::string sha256 = absl::BytesToHexString(crypto::Sha256(tgz));
  for (const std::string& url :
       {server.url() + "apps-1.2.tar.gz//*/charts/web",
        server.url() + "apps-1.2.tar.gz//apps-1.2/charts/web/?checksum=sha256:" + sha256,
        server.url() + "download//apps-*/charts/web?archive=zip"}) {
    absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
        ChartFetcher(options).Fetch({"", "", "", url});
    ASSERT_TRUE(chart.ok()) << url << ": " << chart.status();
    EXPECT_EQ((*chart)->name, "web") << url;
    EXPECT_EQ((*chart)->version, "0.3.0") << url;
    std::vector<std::string> paths;
    for (const RepoFile& file : (*chart)->files) paths.push_back(file.path);
    EXPECT_THAT(paths, ::testing::UnorderedElementsAre("Chart.yaml", "templates/cm.yaml")) << url;
  }
  // The server is asked for the archive alone: the folder and the parameters are go-getter's.
  EXPECT_THAT(server.Log(),
              AllOf(HasSubstr("/apps-1.2.tar.gz"), HasSubstr("/download"), Not(HasSubstr("charts")),
                    Not(HasSubstr("archive=")), Not(HasSubstr("checksum="))));
  for (const auto& [url, error] : std::vector<std::pair<std::string, std::string>>{
           {server.url() + "apps-1.2.tar.gz", "it holds no Chart.yaml in apps-1.2/"},
           {server.url() + "apps-1.2.tar.gz//*/charts/db", "the archive has no folder */charts/db"},
           {server.url() + "apps-1.2.tar.gz//*/charts/*", "matches 2 folders of the archive"},
           {server.url() + "apps-1.2.tar.gz//apps-1.2",
            "the archive's folder apps-1.2 holds no "
            "Chart.yaml"},
           {server.url() + "download?archive=false", "archive=false makes it a file"}}) {
    absl::Status refused = ChartFetcher(options).Fetch({"", "", "", url}).status();
    EXPECT_THAT(refused.message(), HasSubstr(error)) << url;
  }
  // "//" names a folder only after an archive's name, or with archive=.
  for (const auto& [url, fetched, folder] : std::vector<std::array<std::string, 3>>{
           {"https://h/charts//web-1.0.tgz", "https://h/charts//web-1.0.tgz", ""},
           {"https://h//x.tgz", "https://h//x.tgz", ""},
           {"https://h/v1.TAR.GZ//a/b?x=1#f", "https://h/v1.TAR.GZ?x=1#f", "a/b"},
           {"https://h/dl//a?archive=tgz&x=1", "https://h/dl?x=1", "a"},
           {"https://h/v1.zip//a//b", "https://h/v1.zip", "a//b"}}) {
    absl::StatusOr<ArchiveUrl> split = SplitArchiveUrl(url);
    ASSERT_TRUE(split.ok()) << url;
    EXPECT_EQ(split->url, fetched) << url;
    EXPECT_EQ(split->folder, folder) << url;
  }
}

// A chart in an OCI registry, pulled as helm pulls it: the tag list for a constraint, the
// manifest, the chart's layer by digest, each behind the anonymous token the registry asks
// for (as ghcr.io and Docker Hub do for public charts).
// A team's bundle fetches from its own repositories alone: the chart repository, the
// archive its index lists, each under the scope, whatever the control plane trusts.
TEST(ChartFetcherTest, ATeamsScopeHoldsTheRepositoryAndTheArchiveItsIndexLists) {
  testing::ChartRepositoryServer server(testing::TempDir("charts"));
  ASSERT_TRUE(
      server.AddChart("web", "1.0.0", {{"Chart.yaml", "name: web\nversion: 1.0.0\n"}}).ok());
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  // team-a's folder holds an index whose archive is the repository's root one: outside.
  server.Write("team-a/index.yaml",
               absl::StrCat("apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 1.0.0\n"
                            "    urls: [",
                            server.url(), "web-1.0.0.tgz]\n"));
  ChartFetchOptions options;
  options.allowed = {"*"};
  ChartFetcher fetcher(options);
  const FetchScope team{{server.url() + "team-a"}};
  absl::Status refused = fetcher.Fetch({server.url(), "web", ""}, team).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(),
              HasSubstr(absl::StrCat("the chart repository ", server.url(),
                                     " is outside the repositories of the bundle's scope (",
                                     server.url(), "team-a)")));
  EXPECT_THAT(server.Log(), Not(HasSubstr("GET /index.yaml"))) << "nothing is asked of it";
  refused = fetcher.Fetch({server.url() + "team-a/", "web", ""}, team).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("the archive the index lists for web 1.0.0, " +
                                           server.url() + "web-1.0.0.tgz is outside"));
  EXPECT_THAT(server.Log(), Not(HasSubstr("GET /web-1.0.0.tgz")));
  // The same, for a caller without a scope, and a URL that escapes it by its path.
  EXPECT_TRUE(fetcher.Fetch({server.url() + "team-a/", "web", ""}).ok());
  EXPECT_EQ(
      fetcher.Fetch({"", "", "", server.url() + "team-a/../web-1.0.0.tgz"}, team).status().code(),
      absl::StatusCode::kPermissionDenied);
  // Cached for the one, still refused for the other.
  EXPECT_EQ(fetcher.Fetch({server.url() + "team-a/", "web", ""}, team).status().code(),
            absl::StatusCode::kPermissionDenied);
}

// A tag the registry lists before it serves its manifest (Distribution mid-push, a store
// that lags) is asked for again briefly; one that stays unserved fails as a passing
// trouble (Unavailable: retried), not as a missing chart. An exact version, not listed,
// is not asked again.
TEST(ChartFetcherTest, ATagListedBeforeItIsServedIsAskedForAgain) {
  testing::OciRegistryServer registry(testing::TempDir("lagging-registry"));
  for (const char* version : {"1.0.0", "1.1.0"}) {
    ASSERT_TRUE(registry
                    .AddChart("charts/web", version,
                              {{"Chart.yaml", absl::StrCat("name: web\nversion: ", version, "\n")},
                               {"templates/cm.yaml", "kind: ConfigMap\n"}})
                    .ok());
  }
  registry.OpenToAll();
  if (absl::Status started = registry.Start(); !started.ok()) GTEST_SKIP() << started;
  ChartFetchOptions trusted;
  trusted.allowed = {registry.url() + "charts"};
  const std::string web = registry.url() + "charts/web";
  registry.LagManifest("charts/web", "1.1.0", 2);
  {
    ChartFetcher fetcher(trusted);
    absl::StatusOr<std::shared_ptr<const FetchedChart>> chart = fetcher.Fetch({"", "", "^1", web});
    ASSERT_TRUE(chart.ok()) << chart.status() << registry.Log();
    EXPECT_EQ((*chart)->version, "1.1.0");
  }
  registry.LagManifest("charts/web", "1.1.0", 100);
  {
    ChartFetcher fetcher(trusted);
    absl::Status lagging = fetcher.Fetch({"", "", "^1", web}).status();
    EXPECT_EQ(lagging.code(), absl::StatusCode::kUnavailable) << lagging;
    EXPECT_THAT(lagging.message(), HasSubstr("the registry lists the tag 1.1.0 but does not "
                                             "serve it yet"));
    absl::Status exact = fetcher.Fetch({"", "", "1.1.0", web}).status();
    EXPECT_EQ(exact.code(), absl::StatusCode::kNotFound) << exact;
  }
}

TEST(ChartFetcherTest, FetchesChartsFromOciRegistriesAsHelmPullsThem) {
  testing::OciRegistryServer registry(testing::TempDir("registry"));
  for (const char* version : {"1.0.0", "1.2.0", "1.3.0+build.7", "2.0.0-rc.1"}) {
    ASSERT_TRUE(registry
                    .AddChart("charts/web", version,
                              {{"Chart.yaml", absl::StrCat("name: web\nversion: ", version, "\n")},
                               {"templates/cm.yaml", "kind: ConfigMap\n"}})
                    .ok());
  }
  if (absl::Status started = registry.Start(); !started.ok()) GTEST_SKIP() << started;
  ChartFetchOptions trusted;
  trusted.allowed = {registry.url() + "charts"};
  ChartFetcher fetcher(trusted);
  const std::string web = registry.url() + "charts/web";
  struct Case {
    std::string constraint, version;
  };
  for (const Case& c : std::vector<Case>{{"^1", "1.3.0+build.7"},
                                         {"", "1.3.0+build.7"},
                                         {"~1.2", "1.2.0"},
                                         {"1.0.0", "1.0.0"},
                                         {"2.0.0-rc.1", "2.0.0-rc.1"},
                                         {">=2.0.0-0", "2.0.0-rc.1"}}) {
    absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
        fetcher.Fetch({"", "", c.constraint, web});
    ASSERT_TRUE(chart.ok()) << c.constraint << ": " << chart.status() << registry.Log();
    EXPECT_EQ((*chart)->version, c.version) << c.constraint;
    EXPECT_EQ((*chart)->name, "web");
    EXPECT_EQ((*chart)->files.size(), 2u);
    EXPECT_EQ((*chart)->digest.size(), 64u) << "the layer's sha256, checked";
    EXPECT_EQ((*chart)->url,
              absl::StrCat(web, ":", c.version == "1.3.0+build.7" ? "1.3.0_build.7" : c.version));
  }
  // Within index_ttl, a constraint reads no tag list again, and a tag no manifest: a fleet's
  // renders do not each ask the registry (whose anonymous pulls are rate-limited).
  auto requests = [&](const std::string& what) {
    const std::string log = registry.Log();
    int n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  const int lists = requests("/tags/list"), manifests = requests("/manifests/");
  EXPECT_GT(lists, 0);
  ASSERT_TRUE(fetcher.Fetch({"", "", "^1", web}).ok());
  ASSERT_TRUE(fetcher.Fetch({"", "", "1.0.0", web}).ok());
  EXPECT_EQ(requests("/tags/list"), lists);
  EXPECT_EQ(requests("/manifests/"), manifests);
  // What cannot be pulled fails, naming why.
  EXPECT_EQ(fetcher.Fetch({"", "", "^9", web}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(fetcher.Fetch({"", "", "^9", web}).status().message(),
              HasSubstr("has no version of web that \"^9\" allows (the newest: 2.0.0-rc.1, "
                        "1.3.0, 1.2.0, 1.0.0)"));
  EXPECT_EQ(fetcher.Fetch({"", "", "9.9.9", web}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fetcher.Fetch({"", "", "", registry.url() + "charts/db"}).status().code(),
            absl::StatusCode::kNotFound);
  absl::Status untrusted = fetcher.Fetch({"", "", "", registry.url() + "other/web"}).status();
  EXPECT_EQ(untrusted.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(untrusted.message(), HasSubstr("--chart-repositories="));
  ChartFetcher any({{"*"}});
  EXPECT_EQ(any.Fetch({"", "", "", registry.url() + "charts/Web"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(any.Fetch({"", "", "", "oci://127.0.0.1:1/charts/../web"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ChartFetchOptions small = trusted;
  small.max_archive_bytes = 10;
  EXPECT_EQ(ChartFetcher(small).Fetch({"", "", "1.0.0", web}).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ChartFetcherTest, ReadsABearerChallengeAsRegistriesWriteIt) {
  EXPECT_THAT(
      ReadBearerChallenge(
          R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
          R"(scope="repository:bitnamicharts/redis:pull,push")"),
      ::testing::ElementsAre(::testing::Pair("realm", "https://auth.docker.io/token"),
                             ::testing::Pair("scope", "repository:bitnamicharts/redis:pull,push"),
                             ::testing::Pair("service", "registry.docker.io")));
  EXPECT_THAT(ReadBearerChallenge(R"(bearer Realm=https://ghcr.io/token , service="ghcr.io")"),
              ::testing::ElementsAre(::testing::Pair("realm", "https://ghcr.io/token"),
                                     ::testing::Pair("service", "ghcr.io")));
  EXPECT_TRUE(ReadBearerChallenge(R"(Basic realm="registry")").empty());
  EXPECT_TRUE(ReadBearerChallenge("").empty());
}

TEST(ChartFetcherTest, TrustsOnlyHttpAndOciPrefixes) {
  EXPECT_TRUE(CheckChartPrefixes({"*", "https://charts.example.com/", "http://127.0.0.1:8080",
                                  "oci://ghcr.io/org/"})
                  .ok());
  for (const char* bad :
       {"ftp://charts.example.com/", "charts.example.com", "oci://", "file:///"}) {
    absl::Status status = CheckChartPrefixes({bad});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr(bad));
  }
  // A password in a URL is refused and never shown.
  absl::Status status = CheckChartPrefixes({"https://alice:s3cret@charts.example.com/"});
  EXPECT_THAT(status.message(), HasSubstr("give them with --chart-credentials"));
  EXPECT_THAT(status.message(), ::testing::Not(HasSubstr("s3cret")));
  ChartFetchOptions any;
  any.allowed = {"*"};
  status =
      ChartFetcher(any).Fetch({"https://alice:s3cret@charts.example.com/", "web", ""}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("holds credentials in its URL"));
  EXPECT_THAT(status.message(), ::testing::Not(HasSubstr("s3cret")));
  status = ChartFetcher(any).Fetch({"", "", "", "oci://bob:pw@ghcr.io/org/web"}).status();
  EXPECT_THAT(status.message(), HasSubstr("holds credentials in its URL"));
}

// Writes credential `name` (a folder of `dir`, as a mounted Secret) with these files.
void WriteCredential(const std::string& dir, const std::string& name,
                     const std::map<std::string, std::string>& files) {
  std::filesystem::create_directories(dir + "/" + name);
  for (const auto& [file, content] : files) {
    std::ofstream(absl::StrCat(dir, "/", name, "/", file), std::ios::binary) << content;
  }
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A private chart repository: its credential is sent to URLs under its prefix, and only
// there; a refusal names the flag or the credential.
// A credential holding a bearerToken (as Flux's and Argo CD's Secrets write it) sends it as
// `Authorization: Bearer`, to the repository's own host and port alone: a redirect
// elsewhere gets nothing.
TEST(ChartFetcherTest, SendsABearerTokenToTheRepositoryAlone) {
  testing::ChartRepositoryServer server(testing::TempDir("bearer-charts"));
  testing::ChartRepositoryServer mirror(testing::TempDir("bearer-mirror"));
  ASSERT_TRUE(
      server.AddChart("web", "1.0.0", {{"Chart.yaml", "name: web\nversion: 1.0.0\n"}}).ok());
  ASSERT_TRUE(
      mirror.AddChart("web", "2.0.0", {{"Chart.yaml", "name: web\nversion: 2.0.0\n"}}).ok());
  if (absl::Status started = mirror.Start(); !started.ok()) GTEST_SKIP() << started;
  server.RequireBearer("s3cret-token");
  server.RedirectMoved(mirror.url());
  ASSERT_TRUE(server.Start().ok());
  const std::string dir = testing::TempDir("bearer-credentials");
  WriteCredential(dir, "token", {{"bearerToken", "s3cret-token\n"}});
  WriteCredential(dir, "wrong", {{"bearerToken", "guess"}});
  auto fetcher = [&](const std::string& credential) {
    ChartFetchOptions o;
    o.allowed = {"*"};
    o.credentials_dir = dir;
    o.credentials = {{server.url(), credential}};
    return ChartFetcher(o);
  };
  absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
      fetcher("token").Fetch({server.url(), "web", ""});
  ASSERT_TRUE(chart.ok()) << chart.status() << server.Log();
  EXPECT_EQ(Count(server.Log(), "auth=Bearer"), 2) << "the index and the archive";
  absl::Status refused = fetcher("wrong").Fetch({server.url(), "web", ""}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("refused credential wrong's bearerToken"));
  EXPECT_THAT(refused.message(), Not(HasSubstr("guess")));
  // Sent on to the mirror (another port): followed, the token left behind.
  chart = fetcher("token").Fetch({"", "", "", server.url() + "moved/web-2.0.0.tgz"});
  ASSERT_TRUE(chart.ok()) << chart.status() << server.Log() << mirror.Log();
  EXPECT_EQ((*chart)->version, "2.0.0");
  EXPECT_THAT(server.Log(), HasSubstr("GET /moved/web-2.0.0.tgz auth=Bearer"));
  EXPECT_THAT(mirror.Log(), HasSubstr("GET /web-2.0.0.tgz auth=none"));
}

TEST(ChartFetcherTest, SendsAPrivateRepositorysCredentialToItAlone) {
  testing::ChartRepositoryServer server(testing::TempDir("private-charts"));
  testing::ChartRepositoryServer mirror(testing::TempDir("mirror-charts"));
  ASSERT_TRUE(
      server.AddChart("web", "1.0.0", {{"Chart.yaml", "name: web\nversion: 1.0.0\n"}}).ok());
  ASSERT_TRUE(
      mirror.AddChart("web", "2.0.0", {{"Chart.yaml", "name: web\nversion: 2.0.0\n"}}).ok());
  server.RequireLogin("alice", "s3cret");
  if (absl::Status started = server.Start(); !started.ok()) GTEST_SKIP() << started;
  ASSERT_TRUE(mirror.Start().ok());
  const std::string dir = testing::TempDir("chart-credentials");
  WriteCredential(dir, "charts", {{"username", "alice\n"}, {"password", "s3cret\n"}});
  WriteCredential(dir, "wrong", {{"username", "alice"}, {"password", "guess"}});
  auto options = [&](std::vector<std::pair<std::string, std::string>> credentials) {
    ChartFetchOptions o;
    o.allowed = {"*"};
    o.credentials_dir = dir;
    o.credentials = std::move(credentials);
    o.index_ttl = absl::ZeroDuration();  // every fetch reads the index
    return o;
  };

  // No credential for it: refused, naming the flag to give one.
  absl::Status refused = ChartFetcher(options({})).Fetch({server.url(), "web", ""}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("asks for credentials: give the control plane one with "
                                           "--chart-credentials=" +
                                           server.url() + "=NAME"));
  // Its prefix's credential: index and archive fetched with it.
  ChartFetcher fetcher(options({{server.url(), "charts"}}));
  absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
      fetcher.Fetch({server.url(), "web", ""});
  ASSERT_TRUE(chart.ok()) << chart.status() << server.Log();
  EXPECT_EQ((*chart)->version, "1.0.0");
  EXPECT_EQ(Count(server.Log(), "auth=Basic"), 2) << server.Log();
  // A wrong one is named.
  refused =
      ChartFetcher(options({{server.url(), "wrong"}})).Fetch({server.url(), "web", ""}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("refused credential wrong"));
  // The longest prefix a URL is under wins.
  ChartFetcher deeper(options({{server.url(), "wrong"}, {server.url() + "web-", "charts"}}));
  EXPECT_TRUE(deeper.Fetch({"", "", "", server.url() + "web-1.0.0.tgz"}).ok());
  EXPECT_FALSE(deeper.Fetch({server.url(), "web", ""}).ok()) << "index.yaml is under the other";

  // The index lists an archive on another server: it gets no credential (as helm sends
  // none there without --pass-credentials).
  const std::string mirrored = ReadAll(mirror.root() + "/www/web-2.0.0.tgz");
  server.Write("index.yaml", absl::StrCat("apiVersion: v1\nentries:\n  web:\n  - name: web\n"
                                          "    version: 2.0.0\n    urls: [",
                                          mirror.url(), "web-2.0.0.tgz]\n    digest: ",
                                          absl::BytesToHexString(crypto::Sha256(mirrored)), "\n"));
  chart = fetcher.Fetch({server.url(), "web", "2.0.0"});
  ASSERT_TRUE(chart.ok()) << chart.status();
  EXPECT_EQ((*chart)->url, mirror.url() + "web-2.0.0.tgz");
  // (An index that lists a URL with a password in it is refused, and it is not shown.)
  server.Write("index.yaml",
               "apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 3.0.0\n"
               "    urls: ['https://alice:leaked@cdn.example.com/web-3.0.0.tgz']\n");
  refused = fetcher.Fetch({server.url(), "web", "3.0.0"}).status();
  EXPECT_THAT(refused.message(), HasSubstr("a URL with credentials in it"));
  EXPECT_THAT(refused.message(), ::testing::Not(HasSubstr("leaked")));
  EXPECT_THAT(mirror.Log(), HasSubstr("GET /web-2.0.0.tgz auth=none"));
  EXPECT_EQ(Count(mirror.Log(), "auth=Basic"), 0) << mirror.Log();

  // Read again at every fetch: a rotated password is used at once, without a restart.
  WriteCredential(dir, "charts", {{"password", "rotated"}});
  refused = fetcher.Fetch({server.url(), "web", ""}).status();
  EXPECT_THAT(refused.message(), HasSubstr("refused credential charts"));
  // A credential that cannot be read fails the fetch, naming it and why.
  std::filesystem::remove(dir + "/charts/username");
  refused = fetcher.Fetch({server.url(), "web", ""}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(),
              HasSubstr("credential charts holds a password without a username"));
}

// Chart "web" from the trusted repository `repo`, fetched with credential `credential` of
// the folder `dir`.
absl::StatusOr<std::shared_ptr<const FetchedChart>> FetchWebWith(const std::string& repo,
                                                                 const std::string& dir,
                                                                 const std::string& credential) {
  ChartFetchOptions o;
  o.allowed = {repo};
  o.credentials_dir = dir;
  o.credentials = {{repo, credential}};
  return ChartFetcher(o).Fetch({repo, "web", ""});
}

// Over HTTPS, a credential's ca.crt is trusted for its servers (on top of the system's).
TEST(ChartFetcherTest, TrustsACredentialsCaForItsServers) {
  testing::ChartRepositoryServer charts(testing::TempDir("tls-charts"));
  ASSERT_TRUE(
      charts.AddChart("web", "1.0.0", {{"Chart.yaml", "name: web\nversion: 1.0.0\n"}}).ok());
  testing::HttpsGitServer https(testing::TempDir("tls-server"));
  if (absl::Status started = https.Start("alice", "s3cret"); !started.ok()) GTEST_SKIP() << started;
  const std::string repo = https.ServeFiles(charts.root() + "/www", "charts");
  const std::string dir = testing::TempDir("tls-credentials");
  const std::string ca = ReadAll(https.ca_pem_path());
  WriteCredential(dir, "tls", {{"username", "alice"}, {"password", "s3cret"}, {"ca.crt", ca}});
  WriteCredential(dir, "no-ca", {{"username", "alice"}, {"password", "s3cret"}});
  auto fetch = [&](const std::string& credential) { return FetchWebWith(repo, dir, credential); };
  absl::StatusOr<std::shared_ptr<const FetchedChart>> chart = fetch("tls");
  ASSERT_TRUE(chart.ok()) << chart.status() << https.Log();
  EXPECT_EQ((*chart)->version, "1.0.0");
  absl::Status untrusted = fetch("no-ca").status();
  EXPECT_EQ(untrusted.code(), absl::StatusCode::kUnavailable) << untrusted;
  EXPECT_THAT(untrusted.message(), HasSubstr("certificate"));
}

// A chart repository behind mutual TLS: the credential's client certificate (tls.crt and
// tls.key, as Flux's Secrets carry it) goes with every request; without it, nothing.
TEST(ChartFetcherTest, PresentsACredentialsClientCertificate) {
  testing::ChartRepositoryServer charts(testing::TempDir("mtls-charts"));
  ASSERT_TRUE(
      charts.AddChart("web", "1.0.0", {{"Chart.yaml", "name: web\nversion: 1.0.0\n"}}).ok());
  testing::HttpsGitServer https(testing::TempDir("mtls-server"));
  https.RequireClientCertificate();
  if (absl::Status started = https.Start("alice", "s3cret"); !started.ok()) GTEST_SKIP() << started;
  const std::string repo = https.ServeFiles(charts.root() + "/www", "charts");
  const std::string dir = testing::TempDir("mtls-credentials");
  const std::map<std::string, std::string> login = {
      {"username", "alice"}, {"password", "s3cret"}, {"ca.crt", ReadAll(https.ca_pem_path())}};
  std::map<std::string, std::string> with_cert = login;
  with_cert["tls.crt"] = ReadAll(https.client_cert_path());
  with_cert["tls.key"] = ReadAll(https.client_key_path());
  WriteCredential(dir, "mtls", with_cert);
  WriteCredential(dir, "no-cert", login);
  auto fetch = [&](const std::string& credential) { return FetchWebWith(repo, dir, credential); };
  absl::StatusOr<std::shared_ptr<const FetchedChart>> chart = fetch("mtls");
  ASSERT_TRUE(chart.ok()) << chart.status() << https.Log();
  EXPECT_EQ((*chart)->version, "1.0.0");
  EXPECT_FALSE(fetch("no-cert").ok());
}

// A private OCI registry: the credential buys a token from the registry's token service
// (ghcr.io's and Docker Hub's way), or is sent as basic auth when the registry asks for
// that (Amazon ECR's way).
TEST(ChartFetcherTest, PullsFromPrivateRegistriesWithTheirCredential) {
  for (const bool basic : {false, true}) {
    SCOPED_TRACE(basic ? "basic auth" : "token service");
    testing::OciRegistryServer registry(testing::TempDir(basic ? "basic-registry" : "registry"));
    ASSERT_TRUE(
        registry
            .AddChart("team/charts/web", "1.2.0", {{"Chart.yaml", "name: web\nversion: 1.2.0\n"}})
            .ok());
    registry.RequireLogin("bob", "hunter2");
    if (basic) registry.BasicOnly();
    if (absl::Status started = registry.Start(); !started.ok()) GTEST_SKIP() << started;
    const std::string dir = testing::TempDir(basic ? "basic-credentials" : "credentials");
    WriteCredential(dir, "registry", {{"username", "bob"}, {"password", "hunter2"}});
    WriteCredential(dir, "wrong", {{"username", "bob"}, {"password", "guess"}});
    const std::string web = registry.url() + "team/charts/web";
    auto fetch = [&](std::vector<std::pair<std::string, std::string>> credentials) {
      ChartFetchOptions o;
      o.allowed = {registry.url() + "team/"};
      o.credentials_dir = dir;
      o.credentials = std::move(credentials);
      return ChartFetcher(o).Fetch({"", "", "^1", web});
    };
    absl::Status refused = fetch({}).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
    EXPECT_THAT(refused.message(), HasSubstr("--chart-credentials=" + registry.url() + "=NAME"));
    refused = fetch({{registry.url() + "team/", "wrong"}}).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
    EXPECT_THAT(refused.message(), HasSubstr("refused credential wrong"));
    absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
        fetch({{registry.url() + "team/", "registry"}});
    ASSERT_TRUE(chart.ok()) << chart.status() << registry.Log();
    EXPECT_EQ((*chart)->version, "1.2.0");
    const std::string log = registry.Log();
    if (basic) {
      EXPECT_GE(Count(log, "/blobs/sha256:"), 1);
      EXPECT_THAT(log, ::testing::Not(HasSubstr("auth=Bearer"))) << log;
    } else {
      // The password goes to the token service alone; the registry sees the token.
      EXPECT_THAT(log, HasSubstr("GET /token auth=Basic"));
      EXPECT_EQ(Count(log, "/v2/team/charts/web/tags/list auth=Basic"), 0) << log;
      EXPECT_THAT(log, HasSubstr("/blobs/sha256:"));
    }
  }
}

// A registry someone else wrote: Debian's docker-registry (CNCF Distribution 2.8), charts
// pushed to it as helm pushes them (an OCI manifest, helm's config and layer types), pulled
// by version and by constraint (a "+" tagged "_"), behind its basic auth.
TEST(ChartFetcherTest, PullsChartsFromDistributionsRegistry) {
  if (!testing::DistributionRegistry::Installed()) {
    GTEST_SKIP() << "docker-registry or python3 is not installed (tools/setup)";
  }
  testing::DistributionRegistry registry(testing::TempDir("distribution"));
  absl::Status started = registry.Start({"bob", "hunter2"});
  ASSERT_TRUE(started.ok()) << started;
  absl::Status pushed =
      registry.PushCharts("charts/web", {"1.0.0", "1.2.0", "1.3.0+build.7", "2.0.0-rc.1"});
  ASSERT_TRUE(pushed.ok()) << pushed;
  const int port = registry.port();
  const std::string prefix = absl::StrCat("oci://127.0.0.1:", port, "/charts");
  const std::string credentials = testing::TempDir("distribution-credentials");
  WriteCredential(credentials, "registry", {{"username", "bob"}, {"password", "hunter2"}});
  WriteCredential(credentials, "wrong", {{"username", "bob"}, {"password", "guess"}});
  auto options_with = [&](const std::string& credential) {
    ChartFetchOptions o;
    o.allowed = {prefix};
    o.credentials_dir = credentials;
    if (!credential.empty()) o.credentials = {{prefix, credential}};
    return o;
  };
  const std::string web = prefix + "/web";
  // Without a credential, or with a wrong one: refused, saying so.
  absl::Status refused = ChartFetcher(options_with("")).Fetch({"", "", "^1", web}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("--chart-credentials="));
  refused = ChartFetcher(options_with("wrong")).Fetch({"", "", "^1", web}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("refused credential wrong"));
  ChartFetcher fetcher(options_with("registry"));
  for (const auto& [constraint, version] :
       std::vector<std::pair<std::string, std::string>>{{"^1", "1.3.0+build.7"},
                                                        {"", "1.3.0+build.7"},
                                                        {"~1.2", "1.2.0"},
                                                        {"1.0.0", "1.0.0"},
                                                        {"2.0.0-rc.1", "2.0.0-rc.1"}}) {
    absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
        fetcher.Fetch({"", "", constraint, web});
    ASSERT_TRUE(chart.ok()) << constraint << ": " << chart.status() << registry.Log();
    EXPECT_EQ((*chart)->version, version) << constraint;
    EXPECT_EQ((*chart)->name, "web");
    EXPECT_EQ((*chart)->files.size(), 2u);
  }
  EXPECT_THAT(fetcher.Fetch({"", "", "^9", web}).status().message(),
              HasSubstr("has no version of web that \"^9\" allows"));
  EXPECT_FALSE(fetcher.Fetch({"", "", "1.0.0", web + "-missing"}).ok());

  // A release pushed: its tags were listed a moment ago, so the range's newest stays the
  // one read (for index_ttl), until a webhook says the repository was pushed to. Each
  // fetch names the repository it read.
  pushed = registry.PushCharts("charts/web", {"1.4.0"});
  ASSERT_TRUE(pushed.ok()) << pushed;
  std::vector<std::string> read;
  FetchScope scope;
  scope.repos_read = &read;
  absl::StatusOr<std::shared_ptr<const FetchedChart>> chart =
      fetcher.Fetch({"", "", "^1", web}, scope);
  ASSERT_TRUE(chart.ok()) << chart.status();
  EXPECT_EQ((*chart)->version, "1.3.0+build.7");
  EXPECT_THAT(read, ::testing::ElementsAre(web));
  chart = fetcher.Fetch({"", "", "^1", web});
  ASSERT_TRUE(chart.ok()) << chart.status();
  EXPECT_EQ((*chart)->version, "1.3.0+build.7") << "listed a moment ago";
  fetcher.FetchAgain({web});
  chart = fetcher.Fetch({"", "", "^1", web});
  ASSERT_TRUE(chart.ok()) << chart.status();
  EXPECT_EQ((*chart)->version, "1.4.0");
}

TEST(ChartFetcherTest, ReadsChartCredentialsAsTheFlagGivesThem) {
  const std::vector<std::string> allowed = {"https://charts.example.com/", "oci://ghcr.io/org/",
                                            "http://127.0.0.1:8080/"};
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> read =
      ParseChartCredentials({"https://charts.example.com/private/=charts",
                             "oci://ghcr.io/org/=ghcr", "http://127.0.0.1:8080/=local"},
                            allowed);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(*read, ::testing::ElementsAre(
                         ::testing::Pair("https://charts.example.com/private/", "charts"),
                         ::testing::Pair("oci://ghcr.io/org/", "ghcr"),
                         ::testing::Pair("http://127.0.0.1:8080/", "local")));
  struct Bad {
    std::string entry, says;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"charts", "is not PREFIX=NAME"},
           {"https://charts.example.com/=", "is not PREFIX=NAME"},
           {"*=charts", "never to *"},
           {"ftp://charts.example.com/=charts", "is not an http(s) or oci:// URL prefix"},
           {"https://charts.example.com/=../etc", "credential"},
           {"http://charts.example.com/=charts", "never sent over plain http"},
           {"https://other.example.com/=charts", "is not under any of --chart-repositories"},
           {"https://charts.example.com.evil.example/=charts", "is not under any"},
           {"oci://ghcr.io/=ghcr", "is not under any"},
       }) {
    absl::Status status = ParseChartCredentials({bad.entry}, allowed).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad.entry;
    EXPECT_THAT(status.message(), HasSubstr(bad.says)) << bad.entry;
  }
  EXPECT_THAT(ParseChartCredentials(
                  {"https://charts.example.com/=a", "https://charts.example.com=b"}, allowed)
                  .status()
                  .message(),
              HasSubstr("is given a credential twice"));
  EXPECT_TRUE(ParseChartCredentials({"https://anything.example/=a"}, {"*"}).ok());

  const std::string dir = testing::TempDir("login-credentials");
  WriteCredential(dir, "ssh", {{"ssh-privatekey", "KEY"}, {"known_hosts", "x"}});
  WriteCredential(dir, "half", {{"username", "alice"}});
  WriteCredential(dir, "ca", {{"ca.crt", "PEM"}});
  EXPECT_THAT(LoadChartLogin(dir, "ssh").status().message(), HasSubstr("holds an SSH key"));
  EXPECT_THAT(LoadChartLogin(dir, "half").status().message(),
              HasSubstr("holds none of username/password"));
  EXPECT_THAT(LoadChartLogin(dir, "none").status().message(), HasSubstr("not found"));
  EXPECT_THAT(LoadChartLogin("", "ca").status().message(), HasSubstr("no --credentials-dir"));
  absl::StatusOr<ChartLogin> ca_only = LoadChartLogin(dir, "ca");
  ASSERT_TRUE(ca_only.ok()) << ca_only.status();
  EXPECT_EQ(ca_only->ca_pem, "PEM");
  EXPECT_EQ(ca_only->username, "");
}

}  // namespace
}  // namespace gitfleet
