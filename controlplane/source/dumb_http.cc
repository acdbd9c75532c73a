#include "controlplane/source/dumb_http.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/file_system.h"
#include "common/status_macros.h"
#include "common/subprocess.h"

namespace gitfleet {
namespace {

// The system's certificate authorities, which a credential's ca.crt adds to (as the smart
// fetch trusts them), since git's http.sslCAInfo replaces them.
constexpr char kSystemCas[] = "/etc/ssl/certs/ca-certificates.crt";

// A folder of files for one run of git, removed with everything in it.
class Scratch {
 public:
  ~Scratch() {
    if (!dir_.empty()) (void)RemoveRecursively(dir_);
  }
  absl::Status Make() {
    const char* tmp = getenv("TMPDIR");
    std::string dir = absl::StrCat(tmp != nullptr && *tmp == '/' ? tmp : "/tmp", "/git-XXXXXX");
    if (mkdtemp(dir.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("cannot make a folder for git: ", strerror(errno)));
    }
    dir_ = std::move(dir);
    return absl::OkStatus();
  }
  // Writes `name` (0600, new) and returns its path.
  absl::StatusOr<std::string> Write(const std::string& name, absl::string_view content) {
    const std::string path = absl::StrCat(dir_, "/", name);
    GF_RETURN_IF_ERROR(WriteNewFile(path, content, 0600));
    return path;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// What git said, for an error: its last lines that say something, without its progress.
std::string Said(const std::string& stderr_text) {
  std::vector<std::string> lines;
  for (absl::string_view line :
       absl::StrSplit(stderr_text, absl::ByAnyChar("\r\n"), absl::SkipWhitespace())) {
    lines.emplace_back(absl::StripAsciiWhitespace(line));
  }
  if (lines.size() > 3) lines.erase(lines.begin(), lines.end() - 3);
  std::string said = absl::StrJoin(lines, "; ");
  if (said.size() > 512) said.resize(512);
  return said.empty() ? "no reason given" : said;
}

// The bytes the files under `dir` hold, and how many there are (files that go while it
// walks, as git renames its temporary ones, are passed over).
struct Held {
  int64_t bytes = 0;
  int64_t files = 0;
};
Held FilesUnder(const std::string& dir) {
  Held held;
  std::error_code error;
  for (std::filesystem::recursive_directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    std::error_code ignored;
    if (!it->is_regular_file(ignored)) continue;
    const std::uintmax_t size = it->file_size(ignored);
    if (!ignored) held.bytes += static_cast<int64_t>(size);
    ++held.files;
  }
  return held;
}

// The folder a fetch writes its objects to until it succeeds (git's own quarantine, as
// receive-pack keeps a push's): a fetch that fails, is stopped past its bound or dies with
// the control plane leaves nothing in the repository, so failed fetches cannot add up.
constexpr char kIncomingPrefix[] = "gitfleet-incoming-";

// Moves what a fetch wrote into `incoming` into `objects`: loose objects by their folder,
// then packs, each pack before its index (a reader finds no index without its pack); an
// object already there stays as it is.
absl::Status MoveObjects(const std::string& incoming, const std::string& objects) {
  namespace fs = std::filesystem;
  std::error_code error;
  std::vector<fs::path> packs, indexes;
  for (fs::directory_iterator dir(incoming, error), end; !error && dir != end;
       dir.increment(error)) {
    const std::string name = dir->path().filename().string();
    if (name == "pack") {
      for (fs::directory_iterator file(dir->path(), error); !error && file != end;
           file.increment(error)) {
        (file->path().extension() == ".idx" ? indexes : packs).push_back(file->path());
      }
      continue;
    }
    std::error_code ignored;
    if (name.size() != 2 || !dir->is_directory(ignored)) continue;  // no object of git's
    fs::create_directories(fs::path(objects) / name, error);
    for (fs::directory_iterator file(dir->path(), error); !error && file != end;
         file.increment(error)) {
      const fs::path to = fs::path(objects) / name / file->path().filename();
      std::error_code exists;
      if (fs::exists(to, exists)) continue;
      fs::rename(file->path(), to, error);
    }
    if (error) break;
  }
  if (!error) fs::create_directories(fs::path(objects) / "pack", error);
  for (const std::vector<fs::path>* files : {&packs, &indexes}) {
    for (const fs::path& file : *files) {
      if (error) break;
      fs::rename(file, fs::path(objects) / "pack" / file.filename(), error);
    }
  }
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot move the objects fetched into ", objects, ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsDumbHttpAnswer(absl::string_view error) {
  return absl::StrContains(error, "invalid content-type");
}

absl::StatusOr<std::string> FetchOverDumbHttp(const DumbHttpFetch& fetch) {
  const std::string git = FindOnPath("git");
  if (git.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot fetch ", fetch.url,
        ": its server speaks Git's dumb HTTP protocol (plain files), which gitfleet fetches "
        "with git's own client, and git is not installed on the control plane's machine"));
  }
  Scratch scratch;
  GF_RETURN_IF_ERROR(scratch.Make());
  // What an earlier fetch left when the control plane died during it goes first.
  std::error_code listed;
  for (std::filesystem::directory_iterator it(fetch.git_dir, listed), end; !listed && it != end;
       it.increment(listed)) {
    if (absl::StartsWith(it->path().filename().string(), kIncomingPrefix))
      (void)RemoveRecursively(it->path().string());
  }
  std::string incoming = absl::StrCat(fetch.git_dir, "/", kIncomingPrefix, "XXXXXX");
  if (mkdtemp(incoming.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot make a folder in ", fetch.git_dir,
                                            " for the objects fetched: ", strerror(errno)));
  }
  absl::Cleanup remove_incoming = [&incoming] { (void)RemoveRecursively(incoming); };
  const std::string objects = fetch.git_dir + "/objects";
  // Configuration from here alone: no user's or system's, no prompt, no helper.
  std::vector<std::string> env = {
      "PATH=/usr/bin:/bin",
      "HOME=" + scratch.dir(),
      "GIT_CONFIG_NOSYSTEM=1",
      "GIT_CONFIG_GLOBAL=/dev/null",
      "GIT_TERMINAL_PROMPT=0",
      "GIT_ASKPASS=/bin/false",
      "LC_ALL=C",
      // New objects go to `incoming`, the repository's are read where they are.
      "GIT_OBJECT_DIRECTORY=" + incoming,
      "GIT_ALTERNATE_OBJECT_DIRECTORIES=" + objects,
  };
  // A proxy as the smart fetch finds one.
  for (const char* name : {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                           "no_proxy", "ALL_PROXY", "all_proxy"}) {
    if (const char* value = getenv(name); value != nullptr)
      env.push_back(absl::StrCat(name, "=", value));
  }
  // Settings by environment (GIT_CONFIG_COUNT), never on the command line another user of
  // the machine can read.
  std::vector<std::pair<std::string, std::string>> config = {
      {"protocol.version", "0"},
      {"http.lowSpeedLimit", "1"},
      {"http.lowSpeedTime", "30"},
      {"fetch.recurseSubmodules", "false"},
      {"core.askPass", "/bin/false"},
      {"credential.helper", ""},
      // No repacking after the fetch, in the background or not: it would pack `incoming`.
      {"gc.auto", "0"},
      {"maintenance.auto", "false"},
  };
  const GitCredential* credential = fetch.credential;
  if (credential != nullptr) {
    if (credential->has_bearer_token()) {
      config.emplace_back("http.extraHeader", "Authorization: Bearer " + credential->bearer_token);
    } else if (credential->has_password()) {
      config.emplace_back(
          "http.extraHeader",
          "Authorization: Basic " +
              absl::Base64Escape(absl::StrCat(credential->username, ":", credential->password)));
    }
    // The credential goes to the URL's own host alone: no redirect carries it elsewhere.
    config.emplace_back("http.followRedirects", "false");
    if (!credential->ca_pem.empty()) {
      absl::StatusOr<std::string> system = ReadFileAtMost(kSystemCas, 4 << 20);
      GF_ASSIGN_OR_RETURN(std::string cas,
                          scratch.Write("ca.pem", absl::StrCat(system.ok() ? *system : "", "\n",
                                                               credential->ca_pem)));
      config.emplace_back("http.sslCAInfo", cas);
    }
    if (!credential->tls_cert_pem.empty()) {
      GF_ASSIGN_OR_RETURN(std::string cert, scratch.Write("tls.crt", credential->tls_cert_pem));
      GF_ASSIGN_OR_RETURN(std::string key, scratch.Write("tls.key", credential->tls_key_pem));
      config.emplace_back("http.sslCert", cert);
      config.emplace_back("http.sslKey", key);
    }
  }
  env.push_back(absl::StrCat("GIT_CONFIG_COUNT=", config.size()));
  for (size_t i = 0; i < config.size(); ++i) {
    env.push_back(absl::StrCat("GIT_CONFIG_KEY_", i, "=", config[i].first));
    env.push_back(absl::StrCat("GIT_CONFIG_VALUE_", i, "=", config[i].second));
  }
  SubprocessOptions options;
  options.env = env;
  options.timeout = fetch.timeout;
  options.max_file_bytes = fetch.max_bytes;
  // A dumb fetch asks for each object and pack by itself, so a server can send any number
  // of files each under the bound: what the fetch writes is bounded too, looked at as it
  // runs (it may pass the bound by what arrives between two looks). A look walks what this
  // fetch wrote alone; the looks keep to a fifth of the time.
  absl::Time next_look = absl::InfinitePast();
  options.check_every = fetch.check_every;
  options.check = [&incoming, &next_look, max = fetch.max_bytes]() -> absl::Status {
    const absl::Time start = RealClock().Now();
    if (start < next_look) return absl::OkStatus();
    const Held now = FilesUnder(incoming);
    next_look = start + 4 * (RealClock().Now() - start);
    if (now.bytes > max) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the fetch wrote ", now.bytes, " bytes in ", now.files,
                       " files, over --max-fetch-bytes (", max, ")"));
    }
    return absl::OkStatus();
  };
  options.max_memory_bytes = int64_t{2} << 30;
  options.max_stdout_bytes = 1 << 20;
  std::vector<std::string> argv = {git,
                                   "--git-dir=" + fetch.git_dir,
                                   "fetch",
                                   "--quiet",
                                   "--prune",
                                   "--no-tags",
                                   "--no-write-fetch-head",
                                   "--no-recurse-submodules",
                                   "--",
                                   fetch.url};
  argv.insert(argv.end(), fetch.refspecs.begin(), fetch.refspecs.end());
  absl::StatusOr<SubprocessResult> run = RunSubprocess(argv, options);
  if (!run.ok()) {
    return absl::Status(run.status().code(),
                        absl::StrCat("cannot fetch ", fetch.url,
                                     " (dumb HTTP, with git): ", run.status().message()));
  }
  if (run->exit_code != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot fetch ", fetch.url, " (dumb HTTP, with git): ",
        run->exit_code == 128 + 25
            ? absl::StrCat("a file it wrote passed --max-fetch-bytes (", fetch.max_bytes, ")")
            : Said(run->stderr_text)));
  }
  GF_RETURN_IF_ERROR(MoveObjects(incoming, objects));
  // The branch its HEAD names, as a clone takes it.
  options.timeout = absl::Seconds(30);
  options.check = nullptr;
  absl::StatusOr<SubprocessResult> head = RunSubprocess(
      {git, "--git-dir=" + fetch.git_dir, "ls-remote", "--symref", "--", fetch.url, "HEAD"},
      options);
  if (!head.ok() || head->exit_code != 0) return std::string();
  for (absl::string_view line : absl::StrSplit(head->stdout_text, '\n')) {
    if (!absl::ConsumePrefix(&line, "ref: refs/heads/")) continue;
    const size_t tab = line.find('\t');
    if (tab != absl::string_view::npos && line.substr(tab + 1) == "HEAD") {
      return std::string(line.substr(0, tab));
    }
  }
  return std::string();
}

}  // namespace gitfleet
