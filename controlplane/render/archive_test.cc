#include "controlplane/render/archive.h"

#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/git_fixture.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// The file `out` that `script` (Python, with io, tarfile and zipfile imported) writes in a
// scratch folder; "" when it fails.
std::string Made(const std::string& script, const std::string& out = "a") {
  const std::string dir = testing::TempDir("archive");
  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin"};
  options.cwd = dir;
  absl::StatusOr<SubprocessResult> run = RunSubprocess(
      {"/usr/bin/python3", "-c", absl::StrCat("import io, tarfile, zipfile\n", script)}, options);
  if (!run.ok() || run->exit_code != 0) return "";
  return ReadAll(dir + "/" + out);
}

// A tar in `mode` ("w", "w:gz", "w:bz2", "w:xz") holding `adds` (calls of add(NAME, DATA[,
// TYPE])).
std::string Tar(const std::string& mode, const std::string& adds) {
  return Made(absl::StrCat("t = tarfile.open('a', '", mode,
                           "')\n"
                           "def add(name, data, type=tarfile.REGTYPE):\n"
                           "  i = tarfile.TarInfo(name); i.size = len(data); i.type = type\n"
                           "  t.addfile(i, io.BytesIO(data))\n",
                           adds, "\nt.close()\n"));
}

// A zip holding `adds` (calls of add(NAME, DATA)), deflated unless `stored`.
std::string Zip(const std::string& adds, bool stored = false) {
  return Made(absl::StrCat("z = zipfile.ZipFile('a', 'w', zipfile.",
                           stored ? "ZIP_STORED" : "ZIP_DEFLATED",
                           ")\n"
                           "def add(name, data): z.writestr(name, data)\n",
                           adds, "\nz.close()\n"));
}

std::map<std::string, std::string> ByPath(const std::vector<RepoFile>& files) {
  std::map<std::string, std::string> out;
  for (const RepoFile& file : files) out[file.path] = file.content;
  return out;
}

constexpr char kChart[] =
    "add('./web-1/', b'', tarfile.DIRTYPE)\n"
    "add('./web-1/charts/web/Chart.yaml', b'name: web')\n"
    "add('./web-1/charts/web/templates/cm.yaml', b'kind: ConfigMap')\n"
    "add('./web-1/README.md', b'hello')\n"
    "add('./web-1/link', b'', tarfile.SYMTYPE)\n";

TEST(UnpackArchiveTest, ReadsEveryCompressionFromItsFirstBytes) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 is not installed";
  const std::map<std::string, std::string> want = {
      {"web-1/charts/web/Chart.yaml", "name: web"},
      {"web-1/charts/web/templates/cm.yaml", "kind: ConfigMap"},
      {"web-1/README.md", "hello"}};
  std::map<std::string, std::string> archives = {
      {"tar", Tar("w", kChart)},
      {"gzip", Tar("w:gz", kChart)},
      {"bzip2", Tar("w:bz2", kChart)},
      {"xz", Tar("w:xz", kChart)},
      {"zip", Zip("add('web-1/', b'')\nadd('web-1/charts/web/Chart.yaml', b'name: web')\n"
                  "add('./web-1/charts/web/templates/cm.yaml', b'kind: ConfigMap')\n"
                  "add('web-1/README.md', b'hello')")},
      {"stored zip", Zip("add('web-1/charts/web/Chart.yaml', b'name: web')\n"
                         "add('web-1/charts/web/templates/cm.yaml', b'kind: ConfigMap')\n"
                         "add('web-1/README.md', b'hello')",
                         /*stored=*/true)}};
  if (access("/usr/bin/zstd", X_OK) == 0) {
    archives["zstd"] = Made(
        absl::StrCat("t = tarfile.open('a.tar', 'w')\n"
                     "def add(name, data, type=tarfile.REGTYPE):\n"
                     "  i = tarfile.TarInfo(name); i.size = len(data); i.type = type\n"
                     "  t.addfile(i, io.BytesIO(data))\n",
                     kChart,
                     "\nt.close()\nimport subprocess\n"
                     "subprocess.run(['/usr/bin/zstd', '-q', 'a.tar', '-o', 'a'], check=True)\n"));
  }
  for (const auto& [format, archive] : archives) {
    ASSERT_FALSE(archive.empty()) << format;
    absl::StatusOr<std::vector<RepoFile>> files = UnpackArchive(archive, {});
    ASSERT_TRUE(files.ok()) << format << ": " << files.status();
    EXPECT_EQ(ByPath(*files), want) << format;
  }
  // A path written twice: the last wins, as tar extracts it.
  absl::StatusOr<std::vector<RepoFile>> twice =
      UnpackArchive(Tar("w:gz", "add('a/x', b'old')\nadd('a/x', b'new')"), {});
  ASSERT_TRUE(twice.ok()) << twice.status();
  EXPECT_EQ(ByPath(*twice), (std::map<std::string, std::string>{{"a/x", "new"}}));
}

TEST(UnpackArchiveTest, RefusesWhatLeavesTheArchiveIsDamagedOrTooLarge) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 is not installed";
  const std::string tgz = Tar("w:gz", kChart);
  const std::string zip = Zip("add('a/Chart.yaml', b'name: web' * 100)");
  // A zip whose entry says it is encrypted (the flag in both of its headers).
  std::string encrypted = zip;
  for (const char* signature : {"PK\x03\x04", "PK\x01\x02"}) {
    const size_t at = encrypted.find(signature);
    ASSERT_NE(at, std::string::npos);
    encrypted[at + (signature[2] == '\x03' ? 6 : 8)] |= 1;
  }
  // One whose content does not match its CRC.
  std::string altered = Zip("add('a/x', b'abcdefgh')", /*stored=*/true);
  altered[altered.find("abcdefgh")] = 'z';
  // One whose central directory says less than its data unpacks to (a zip bomb's lie).
  std::string bomb = zip;
  const size_t central = bomb.find("PK\x01\x02");
  bomb[central + 24] = 10;
  bomb[central + 25] = 0;
  const std::pair<std::string, const char*> kBad[] = {
      {Tar("w:gz", "add('a/../../etc/x', b'x')"), "a/../../etc/x, a path outside the archive"},
      {Tar("w", "add('/etc/x', b'x')"), "/etc/x, a path outside the archive"},
      {Zip("add('../x', b'x')"), "../x, a path outside the archive"},
      {tgz.substr(0, tgz.size() / 2), "gzip data is damaged or cut short"},
      {Tar("w:bz2", kChart).substr(0, 60), "bzip2 data is damaged or cut short"},
      {Tar("w:xz", kChart).substr(0, 80), "xz data is damaged or cut short"},
      {zip.substr(0, zip.size() - 30), "without its central directory"},
      {encrypted, "a/Chart.yaml is encrypted"},
      {altered, "a/x fails its CRC check"},
      {bomb, "a/Chart.yaml: its deflate data is damaged or cut short"},
      {Made("import gzip\nopen('a', 'wb').write(gzip.compress(b'name: web'))"),
       "what it holds is no tar"},
      {"not an archive at all", "no archive gitfleet reads"},
      {"", "no archive gitfleet reads"},
  };
  for (const auto& [archive, error] : kBad) {
    EXPECT_THAT(UnpackArchive(archive, {}).status().message(), HasSubstr(error)) << error;
  }
  // The bounds, in each form.
  const ArchiveBounds small{.max_bytes = 100, .max_files = 2};
  for (const std::string& archive :
       {Tar("w:gz", "add('a/x', b'x' * 101)"), Zip("add('a/x', b'x' * 101)"),
        Tar("w:xz", "add('a/x', b'x')\nadd('a/y', b'y')\nadd('a/z', b'z')"),
        Zip("add('a/x', b'x')\nadd('a/y', b'y')\nadd('a/z', b'z')")}) {
    absl::Status status = UnpackArchive(archive, small).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  }
  // A gzip that unpacks far past what its files may hold is stopped as it unpacks.
  const std::string zeros =
      Made("import gzip\nopen('a', 'wb').write(gzip.compress(bytes(50 << 20)))");
  EXPECT_EQ(UnpackArchive(zeros, {.max_bytes = 1 << 20, .max_files = 10}).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ArchiveFolderTest, TakesTheOneFolderAPatternNames) {
  const std::vector<RepoFile> files = {{"web-1.2/charts/web/Chart.yaml", "a"},
                                       {"web-1.2/charts/web/templates/cm.yaml", "b"},
                                       {"web-1.2/charts/api/Chart.yaml", "c"},
                                       {"web-1.2/README.md", "d"}};
  const std::map<std::string, std::string> web = {{"Chart.yaml", "a"}, {"templates/cm.yaml", "b"}};
  for (const char* pattern : {"web-1.2/charts/web", "./web-1.2/charts/web/", "*/charts/web",
                              "web-*/charts/w?b", "web-1.[0-9]/*/web"}) {
    absl::StatusOr<std::vector<RepoFile>> got = ArchiveFolder(files, pattern);
    ASSERT_TRUE(got.ok()) << pattern << ": " << got.status();
    EXPECT_EQ(ByPath(*got), web) << pattern;
  }
  absl::StatusOr<std::vector<RepoFile>> all = ArchiveFolder(files, "");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), files.size());
  EXPECT_EQ(ArchiveFolder(files, "*/charts/db").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ArchiveFolder(files, "*/charts/db").status().message(),
              HasSubstr("the archive has no folder */charts/db"));
  // A file is no folder.
  EXPECT_EQ(ArchiveFolder(files, "*/README.md").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ArchiveFolder(files, "*/charts/*").status().message(),
              HasSubstr("matches 2 folders of the archive (web-1.2/charts/api and "
                        "web-1.2/charts/web); it must name one"));
  for (const char* bad : {"/etc", "web-1.2/../..", "../x"}) {
    EXPECT_THAT(ArchiveFolder(files, bad).status().message(),
                HasSubstr("is not a path inside the archive"))
        << bad;
  }
}

}  // namespace
}  // namespace gitfleet
