// Private Git against real servers on loopback: HTTPS with basic auth and a private CA
// (lighttpd running git http-backend), and SSH with a key and verified host keys (sshd).

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_matchers.h"
#include "common/subprocess.h"
#include "controlplane/source/dumb_http.h"
#include "controlplane/source/git_credentials.h"
#include "controlplane/source/git_repository.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/git_fixture.h"
#include "tests/util/git_servers.h"
#include "tests/util/github_api.h"
#include "tests/util/lfs_server.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::HttpsGitServer;

using ::gitfleet::testing::SshGitServer;
using ::gitfleet::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

MATCHER_P(FailsWith, text, absl::StrCat("fails with a message containing \"", text, "\"")) {
  return !arg.ok() && std::string(arg.message()).find(text) != std::string::npos;
}

class PrivateGitTest : public ::testing::Test {
 protected:
  PrivateGitTest() : git_(TempDir("repo")), credentials_(TempDir("credentials")) {
    git_.Write("apps/web/a.yaml", "a: 1\n");
    commit_ = git_.Commit("first");
  }

  // A credential folder NAME holding `files` (file name -> contents).
  void Credential(const std::string& name, const std::map<std::string, std::string>& files) {
    ::gitfleet::testing::Run(absl::StrCat("rm -rf '", credentials_, "/", name, "'; mkdir -p '",
                                          credentials_, "/", name, "'"));
    for (const auto& [file, contents] : files) {
      std::ofstream(absl::StrCat(credentials_, "/", name, "/", file)) << contents;
    }
  }

  std::string Read(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // A repository reading Git LFS files at `url` with `credential`, fetched, in a fresh cache.
  std::shared_ptr<GitRepository> FetchedWithLfs(const std::string& url,
                                                const std::string& credential,
                                                const std::string& server_log) {
    repos_ = NewLibgit2Repositories(TempDir("lfs-cache"), {}, Access());
    absl::StatusOr<std::shared_ptr<GitRepository>> repo =
        repos_->ForUrl(url, credential, false, /*lfs=*/true);
    EXPECT_TRUE(repo.ok()) << repo.status();
    if (!repo.ok()) return nullptr;
    absl::Status fetched = (*repo)->Fetch();
    EXPECT_TRUE(fetched.ok()) << fetched << server_log;
    return fetched.ok() ? *repo : nullptr;
  }

  // Fetches `url` with `credential` in a fresh cache; the commit main is at, or the error.
  absl::StatusOr<std::string> FetchMain(const std::string& url, const std::string& credential) {
    auto repos = NewLibgit2Repositories(TempDir("cache"), {}, Access());
    absl::StatusOr<std::shared_ptr<GitRepository>> repo = repos->ForUrl(url, credential);
    if (!repo.ok()) return repo.status();
    if (absl::Status s = (*repo)->Fetch(); !s.ok()) return s;
    absl::StatusOr<CommitInfo> main = (*repo)->Resolve("main");
    if (!main.ok()) return main.status();
    return main->id;
  }

  // The credentials, and the SSH client ssh_client_ names.
  GitAccess Access() const {
    GitAccess access{credentials_, false};
    access.ssh.client = ssh_client_;
    return access;
  }

  GitFixture git_;
  SshClient ssh_client_ = SshClient::kAuto;
  std::unique_ptr<GitRepositories> repos_;
  std::string credentials_;
  std::string commit_;
};

// A private repository whose files are kept in Git LFS: its LFS server on the source's own
// host gets the source's credential, as git-lfs sends it; one its .lfsconfig names on another
// host gets none (a commit cannot send the credential where the operator did not).
TEST_F(PrivateGitTest, AnLfsServerGetsTheSourcesCredentialOnlyOnItsHost) {
  HttpsGitServer server(TempDir("https-lfs"));
  if (absl::Status s = server.Start("alice", "correct horse"); !s.ok()) GTEST_SKIP() << s;
  ::gitfleet::testing::LfsServer lfs(TempDir("lfs"));
  const std::string pointer = lfs.AddObject("kept: in-lfs\n");
  const std::string other = lfs.AddObject("kept: elsewhere\n");
  lfs.RequireLogin("alice", "correct horse");
  ASSERT_TRUE(lfs.Start().ok());
  const std::string endpoint = lfs.url() + "app.git/info/lfs";  // http://127.0.0.1:PORT/...
  git_.Write(".lfsconfig", absl::StrCat("[lfs]\n  url = ", endpoint, "\n"));
  git_.Write("apps/web/big.yaml", pointer);
  const std::string on_host = git_.Commit("in LFS, on the Git server's host");
  git_.Write(".lfsconfig",
             absl::StrCat("[lfs]\n  url = ",
                          absl::StrReplaceAll(endpoint, {{"127.0.0.1", "localhost"}}), "\n"));
  git_.Write("apps/web/big.yaml", other);  // not in the cache yet
  const std::string elsewhere = git_.Commit("in LFS, on another host");
  const std::string url = server.Serve(git_.dir(), "app");
  Credential("git-https", {{"username", "alice\n"},
                           {"password", "correct horse\n"},
                           {"ca.crt", Read(server.ca_pem_path())}});
  std::shared_ptr<GitRepository> repo = FetchedWithLfs(url, "git-https", server.Log());
  ASSERT_NE(repo, nullptr);
  absl::StatusOr<std::vector<RepoFile>> files =
      repo->ReadTree(on_host, "apps/web", GitRepository::Unreadable::kRefuse);
  ASSERT_TRUE(files.ok()) << files.status() << lfs.Log();
  EXPECT_EQ(files->at(1).content, "kept: in-lfs\n");
  EXPECT_THAT(lfs.Log(), HasSubstr("POST /app.git/info/lfs/objects/batch auth=Basic"));

  files = repo->ReadTree(elsewhere, "apps/web", GitRepository::Unreadable::kRefuse);
  EXPECT_THAT(files.status(), FailsWith("refuses the control plane (HTTP 401, without a "
                                        "credential)"));
}

TEST_F(PrivateGitTest, HttpsWithBasicAuthAndAPrivateCa) {
  HttpsGitServer server(TempDir("https"));
  if (absl::Status s = server.Start("alice", "correct horse"); !s.ok()) GTEST_SKIP() << s;
  std::string url = server.Serve(git_.dir(), "app");
  std::string ca = Read(server.ca_pem_path());

  Credential("git-https",
             {{"username", "alice\n"}, {"password", "correct horse\n"}, {"ca.crt", ca}});
  absl::StatusOr<std::string> fetched = FetchMain(url, "git-https");
  ASSERT_TRUE(fetched.ok()) << fetched.status() << "\n" << server.Log();
  EXPECT_EQ(*fetched, commit_);

  // A wrong password: a clear error that names the credential and not the secret.
  Credential("wrong", {{"username", "alice"}, {"password", "battery staple"}, {"ca.crt", ca}});
  absl::Status wrong = FetchMain(url, "wrong").status();
  EXPECT_THAT(wrong, FailsWith(("the server refused credential wrong")));
  EXPECT_THAT(std::string(wrong.message()), Not(HasSubstr("battery")));

  // Without the private CA the server is not trusted, and the error says where it goes.
  Credential("no-ca", {{"username", "alice"}, {"password", "correct horse"}});
  EXPECT_THAT(FetchMain(url, "no-ca").status(),
              FailsWith(("put it in the ca.crt of the credential it is fetched with")));
  // Another CA is no better.
  Credential("other-ca", {{"username", "alice"},
                          {"password", "correct horse"},
                          {"ca.crt", Read(server.ca_pem_path() + ".other")}});
  EXPECT_FALSE(FetchMain(url, "other-ca").ok());
  // No credential at all.
  EXPECT_FALSE(FetchMain(url, "").ok());
  // A secret in the URL is refused before anything is sent.
  std::string with_secret = url;
  with_secret.insert(std::string("https://").size(), "alice:correct%20horse@");
  absl::Status in_url = FetchMain(with_secret, "").status();
  EXPECT_THAT(in_url, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--credentials")));
  EXPECT_THAT(std::string(in_url.message()), Not(HasSubstr("correct")));
}

// A repository served as plain files (Git's dumb HTTP protocol: a static web server over a
// bare repository that `git update-server-info` keeps), behind basic auth and a private CA:
// libgit2 does not speak it, so git's client fetches it, with the same credential, its
// default branch and later commits included; a wrong password fails without showing it.
TEST_F(PrivateGitTest, HttpsFromAServerOfPlainFiles) {
  if (FindOnPath("git").empty()) GTEST_SKIP() << "git is not installed";
  HttpsGitServer server(TempDir("https-dumb"));
  if (absl::Status s = server.Start("alice", "correct horse"); !s.ok()) GTEST_SKIP() << s;
  const std::string bare = TempDir("dumb") + "/app.git";
  auto publish = [&] {
    ::gitfleet::testing::Run(absl::StrCat("rm -rf '", bare, "' && git clone -q --bare '",
                                          git_.dir(), "' '", bare, "' && git -C '", bare,
                                          "' update-server-info"));
    return server.ServeFiles(bare, "app.git");
  };
  const std::string url = publish();
  const std::string ca = Read(server.ca_pem_path());
  Credential("git-https",
             {{"username", "alice\n"}, {"password", "correct horse\n"}, {"ca.crt", ca}});
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, Access());
  absl::StatusOr<std::shared_ptr<GitRepository>> repo = repos->ForUrl(url, "git-https");
  ASSERT_TRUE(repo.ok()) << repo.status();
  absl::Status fetched = (*repo)->Fetch();
  ASSERT_TRUE(fetched.ok()) << fetched << "\n" << server.Log();
  absl::StatusOr<CommitInfo> head = (*repo)->Resolve("");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->id, commit_) << "the remote's HEAD, as a clone takes it";
  absl::StatusOr<std::vector<RepoFile>> files =
      (*repo)->ReadTree(commit_, "apps/web", GitRepository::Unreadable::kRefuse);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].content, "a: 1\n");
  // A later commit, published: the next fetch brings it.
  git_.Write("apps/web/a.yaml", "a: 2\n");
  const std::string second = git_.Commit("second");
  publish();
  absl::SleepFor(absl::Seconds(2));  // lighttpd's stat cache keeps a file for a second
  ASSERT_TRUE((*repo)->Fetch().ok());
  EXPECT_EQ((*repo)->Resolve("main")->id, second);
  // A wrong password fails, naming neither it nor the right one.
  Credential("wrong", {{"username", "alice"}, {"password", "battery staple"}, {"ca.crt", ca}});
  absl::StatusOr<std::string> refused = FetchMain(url, "wrong");
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("battery")));
  EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("horse")));
}

// A dumb server is asked for each object by itself, so each file the fetch writes is under
// the bound while their sum passes it: the fetch fails naming --max-fetch-bytes, where a
// bound on each file alone let it write them all. What a failed fetch wrote goes with it:
// fetches stopped again and again do not add up in the repository (each left its objects,
// and the next went on from them).
TEST_F(PrivateGitTest, AServerOfPlainFilesIsBoundedInWhatAFetchWritesInAll) {
  if (FindOnPath("git").empty()) GTEST_SKIP() << "git is not installed";
  HttpsGitServer server(TempDir("https-dumb-big"));
  if (absl::Status s = server.Start("alice", "correct horse"); !s.ok()) GTEST_SKIP() << s;
  // Eight files of 256 KiB that do not compress: eight loose objects of about that size.
  std::string noise;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 8; ++i) {
    noise.clear();
    for (int j = 0; j < (256 << 10); ++j) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      noise.push_back(static_cast<char>(x));
    }
    git_.Write(absl::StrCat("blobs/b", i), noise);
  }
  git_.Commit("big");
  const std::string bare = TempDir("dumb-big") + "/app.git";
  ::gitfleet::testing::Run(absl::StrCat("git clone -q --bare '", git_.dir(), "' '", bare,
                                        "' && git -C '", bare, "' update-server-info"));
  const std::string url = server.ServeFiles(bare, "app.git");
  Credential("git-https", {{"username", "alice"},
                           {"password", "correct horse"},
                           {"ca.crt", Read(server.ca_pem_path())}});
  absl::StatusOr<GitCredential> credential = LoadGitCredential(credentials_, "git-https");
  ASSERT_TRUE(credential.ok()) << credential.status();
  const std::string dir = TempDir("dumb-into");
  ::gitfleet::testing::Run(absl::StrCat("git init -q --bare '", dir, "'"));
  auto files_in = [&dir] {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
      if (entry.is_regular_file()) files.push_back(entry.path().string().substr(dir.size()));
    }
    std::sort(files.begin(), files.end());
    return files;
  };
  const std::vector<std::string> at_first = files_in();
  auto fetch = [&](int64_t max_bytes) {
    DumbHttpFetch request;
    request.git_dir = dir;
    request.url = url;
    request.refspecs = {"+refs/heads/*:refs/remotes/origin/*"};
    request.credential = &*credential;
    request.max_bytes = max_bytes;
    request.check_every = absl::Milliseconds(1);  // looks as often as a look's cost allows
    return FetchOverDumbHttp(request).status();
  };
  absl::Status over = fetch(1 << 20);
  EXPECT_THAT(over, FailsWith("over --max-fetch-bytes (1048576)")) << server.Log();
  EXPECT_THAT(over, FailsWith("dumb HTTP, with git"));
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(files_in(), at_first) << "what the failed fetch wrote stays";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(fetch(1 << 20).code(), absl::StatusCode::kResourceExhausted) << "fetch " << i;
  }
  EXPECT_EQ(files_in(), at_first);
  // A control plane that died during a fetch left its folder: the next fetch removes it.
  std::filesystem::create_directories(dir + "/gitfleet-incoming-dead/ab");
  std::ofstream(dir + "/gitfleet-incoming-dead/ab/cdef") << "left";
  // With room for all of them it is fetched, into the repository.
  EXPECT_TRUE(fetch(int64_t{8} << 20).ok()) << server.Log();
  EXPECT_FALSE(std::filesystem::exists(dir + "/gitfleet-incoming-dead"));
  EXPECT_EQ(::gitfleet::testing::Run(absl::StrCat("git --git-dir='", dir, "' fsck --no-progress")),
            0);
  std::string blobs;
  ::gitfleet::testing::Run(
      absl::StrCat("git --git-dir='", dir, "' ls-tree --name-only origin/main blobs/ | wc -l"),
      &blobs);
  EXPECT_EQ(absl::StripAsciiWhitespace(blobs), "8");
  for (const std::string& file : files_in()) EXPECT_THAT(file, Not(HasSubstr("incoming")));
}

// A server that asks for a client certificate (mutual TLS) gets the credential's, as
// Flux's Secrets (tls.crt, tls.key) and Argo CD's (tlsClientCertData, tlsClientCertKey)
// give it; without one, or with one its CA did not sign, the handshake fails saying so.
TEST_F(PrivateGitTest, HttpsWithAClientCertificate) {
  HttpsGitServer server(TempDir("mtls"));
  server.RequireClientCertificate();
  if (absl::Status s = server.Start("alice", "correct horse"); !s.ok()) GTEST_SKIP() << s;
  const std::string url = server.Serve(git_.dir(), "app");
  const std::string ca = Read(server.ca_pem_path());
  const std::map<std::string, std::string> login = {
      {"username", "alice"}, {"password", "correct horse"}, {"ca.crt", ca}};
  auto with = [&](std::map<std::string, std::string> files) {
    files.insert(login.begin(), login.end());
    return files;
  };
  Credential("flux", with({{"tls.crt", Read(server.client_cert_path())},
                           {"tls.key", Read(server.client_key_path())}}));
  Credential("argocd", with({{"tlsClientCertData", Read(server.client_cert_path())},
                             {"tlsClientCertKey", Read(server.client_key_path())}}));
  for (const char* name : {"flux", "argocd"}) {
    absl::StatusOr<std::string> fetched = FetchMain(url, name);
    ASSERT_TRUE(fetched.ok()) << name << ": " << fetched.status() << "\n" << server.Log();
    EXPECT_EQ(*fetched, commit_);
  }
  Credential("none", login);
  absl::Status refused = FetchMain(url, "none").status();
  EXPECT_THAT(refused, FailsWith("TLS read from 127.0.0.1 failed"));
  EXPECT_THAT(refused, FailsWith("put one in the credential's tls.crt and tls.key"));
  Credential("stranger", with({{"tls.crt", Read(server.other_client_cert_path())},
                               {"tls.key", Read(server.other_client_key_path())}}));
  EXPECT_THAT(FetchMain(url, "stranger").status(),
              FailsWith("the server refused the credential's client certificate"));
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// An HTTP CONNECT proxy on loopback, each tunnel logged as "CONNECT host:port".
constexpr char kConnectProxyScript[] = R"py(
import select, socket, socketserver, sys
class Tunnel(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline().decode()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        method, target = line.split()[:2]
        sys.stderr.write("%s %s\n" % (method, target))
        if method != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        sockets = [self.connection, upstream]
        while True:
            readable, _, _ = select.select(sockets, [], [], 30)
            if not readable:
                return
            for s in readable:
                try:
                    data = s.recv(65536)
                    if data:
                        (upstream if s is self.connection else self.connection).sendall(data)
                except OSError:
                    data = b""
                if not data:
                    return
class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
server = Server(("127.0.0.1", int(sys.argv[1])), Tunnel)
print("Proxying", flush=True)
server.serve_forever()
)py";

// Git goes through the proxy HTTPS_PROXY names, as curl's fetches do, unless NO_PROXY
// names the host.
TEST_F(PrivateGitTest, HttpsThroughTheProxyTheEnvironmentNames) {
  HttpsGitServer server(TempDir("https-proxied"));
  if (absl::Status s = server.Start("alice", "correct horse"); !s.ok()) GTEST_SKIP() << s;
  const std::string url = server.Serve(git_.dir(), "app");
  const std::string proxy_dir = TempDir("proxy");
  const int port = ::gitfleet::testing::FreePort();
  std::unique_ptr<::gitfleet::testing::Process> proxy;
  if (absl::Status s = ::gitfleet::testing::StartPythonServer(
          "the proxy", kConnectProxyScript, proxy_dir + "/proxy.py", {std::to_string(port)},
          proxy_dir + "/proxy.log", "Proxying", &proxy);
      !s.ok()) {
    GTEST_SKIP() << s;
  }
  Credential("git-https", {{"username", "alice"},
                           {"password", "correct horse"},
                           {"ca.crt", Read(server.ca_pem_path())}});
  setenv("HTTPS_PROXY", absl::StrCat("http://127.0.0.1:", port).c_str(), 1);
  unsetenv("NO_PROXY");
  unsetenv("no_proxy");
  absl::StatusOr<std::string> fetched = FetchMain(url, "git-https");
  const std::string through = proxy->Log();
  setenv("NO_PROXY", "127.0.0.1", 1);
  absl::StatusOr<std::string> direct = FetchMain(url, "git-https");
  unsetenv("HTTPS_PROXY");
  unsetenv("NO_PROXY");
  ASSERT_TRUE(fetched.ok()) << fetched.status() << "\n" << through;
  EXPECT_EQ(*fetched, commit_);
  EXPECT_THAT(through, HasSubstr(absl::StrCat("CONNECT 127.0.0.1:", server.port())));
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(Count(proxy->Log(), "CONNECT"), Count(through, "CONNECT"))
      << "NO_PROXY: not through the proxy\n"
      << proxy->Log();
}

// A bearer token (Flux's and Argo CD's `bearerToken`) goes with every request to the
// source's own host over https, and never to another host a redirect leads to.
TEST_F(PrivateGitTest, HttpsWithABearerTokenOnItsOwnHostOnly) {
  HttpsGitServer server(TempDir("https-bearer"));
  server.RequireBearer("glpat-s3cret");
  server.RedirectMoved("https://localhost:{port}/git/");
  if (absl::Status s = server.Start("", ""); !s.ok()) GTEST_SKIP() << s;
  std::string url = server.Serve(git_.dir(), "app");
  const std::string ca = Read(server.ca_pem_path());

  Credential("token", {{"bearerToken", "glpat-s3cret\n"}, {"ca.crt", ca}});
  absl::StatusOr<std::string> fetched = FetchMain(url, "token");
  ASSERT_TRUE(fetched.ok()) << fetched.status() << "\n" << server.Log();
  EXPECT_EQ(*fetched, commit_);
  // The same server behind another name is another host: a redirect there is not followed.
  std::string moved = url;
  moved.replace(moved.find("/git/"), 5, "/moved/");
  absl::Status redirected = FetchMain(moved, "token").status();
  EXPECT_THAT(redirected, FailsWith("sends the fetch on to localhost"));
  EXPECT_THAT(std::string(redirected.message()), Not(HasSubstr("s3cret")));
  // A wrong token is refused by the server; the error keeps it out.
  Credential("wrong", {{"bearerToken", "glpat-wrong"}, {"ca.crt", ca}});
  absl::Status wrong = FetchMain(url, "wrong").status();
  EXPECT_FALSE(wrong.ok());
  EXPECT_THAT(std::string(wrong.message()), Not(HasSubstr("glpat")));
  // Over plain http to another machine it is never sent.
  EXPECT_THAT(FetchMain("http://git.example.com/app.git", "token").status(),
              FailsWith("holds a bearerToken, which is sent over https only"));
  // The source's LFS server on its host gets it too, as git-lfs sends it.
  ::gitfleet::testing::LfsServer lfs(TempDir("lfs-bearer"));
  const std::string pointer = lfs.AddObject("kept: in-lfs\n");
  lfs.RequireAuthorization("Bearer glpat-s3cret");
  ASSERT_TRUE(lfs.Start().ok());
  git_.Write(".lfsconfig", absl::StrCat("[lfs]\n  url = ", lfs.url(), "app.git/info/lfs\n"));
  git_.Write("apps/web/big.yaml", pointer);
  const std::string in_lfs = git_.Commit("in LFS");
  server.Serve(git_.dir(), "app");
  std::shared_ptr<GitRepository> repo = FetchedWithLfs(url, "token", server.Log());
  ASSERT_NE(repo, nullptr);
  absl::StatusOr<std::vector<RepoFile>> files =
      repo->ReadTree(in_lfs, "apps/web", GitRepository::Unreadable::kRefuse);
  ASSERT_TRUE(files.ok()) << files.status() << lfs.Log();
  EXPECT_EQ(files->at(1).content, "kept: in-lfs\n");
}

// A GitHub App as the credential (Argo CD's and Flux's githubApp* keys): its installation
// token, fetched from the API with the App's JWT, is the password of x-access-token.
TEST_F(PrivateGitTest, HttpsWithAGitHubAppsInstallationToken) {
  ::gitfleet::testing::FakeGitHubApi api(TempDir("github-api"));
  if (absl::Status s = api.Start("1234", "42", "ghs_installation"); !s.ok()) GTEST_SKIP() << s;
  HttpsGitServer server(TempDir("https-app"));
  if (absl::Status s = server.Start("x-access-token", "ghs_installation"); !s.ok()) {
    GTEST_SKIP() << s;
  }
  const std::string url = server.Serve(git_.dir(), "app");
  const std::string ca = Read(server.ca_pem_path());
  Credential("app", {{"githubAppID", "1234\n"},
                     {"githubAppInstallationID", "42\n"},
                     {"githubAppPrivateKey", api.private_key_pem()},
                     {"githubAppEnterpriseBaseUrl", api.url() + "\n"},
                     {"ca.crt", ca}});
  absl::StatusOr<std::string> fetched = FetchMain(url, "app");
  ASSERT_TRUE(fetched.ok()) << fetched.status() << "\n" << server.Log() << api.Log();
  EXPECT_EQ(*fetched, commit_);
  // The App's key is not the one GitHub has: the fetch fails naming the App, not the key.
  Credential("other", {{"githubAppID", "1234"},
                       {"githubAppInstallationID", "42"},
                       {"githubAppPrivateKey", api.other_key_pem()},
                       {"githubAppBaseURL", api.url()},
                       {"ca.crt", ca}});
  absl::Status refused = FetchMain(url, "other").status();
  EXPECT_THAT(refused, FailsWith("credential other: GitHub App 1234 (installation 42)"));
  EXPECT_THAT(std::string(refused.message()), Not(HasSubstr("PRIVATE KEY")));
}

// A private repository's submodules are fetched with its credential on its own host, and
// elsewhere with the credential --git-credentials gives their URL, if any: the source's
// never goes to another host.
TEST_F(PrivateGitTest, SubmodulesAreFetchedWithTheSourcesCredentialOnItsHostOnly) {
  HttpsGitServer server(TempDir("https"));
  if (absl::Status s = server.Start("alice", "correct horse"); !s.ok()) GTEST_SKIP() << s;
  GitFixture app(TempDir("app"));
  app.Write(".gitmodules", "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n");
  app.Git("add .gitmodules");
  app.Gitlink("vendor/lib", commit_);
  app.CommitStaged("lib, relative");
  app.Git("branch -q relative");
  const std::string lib_url = server.Serve(git_.dir(), "lib");
  std::string elsewhere = lib_url;
  elsewhere.replace(elsewhere.find("127.0.0.1"), 9, "localhost");
  const std::string url = server.Serve(app.dir(), "app");
  Credential("git-https", {{"username", "alice"},
                           {"password", "correct horse"},
                           {"ca.crt", Read(server.ca_pem_path())}});

  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, {credentials_, false});
  std::shared_ptr<GitRepository> repo = *repos->ForUrl(url, "git-https", /*submodules=*/true);
  ASSERT_TRUE(repo->Fetch().ok());
  absl::StatusOr<CommitInfo> relative = repo->Resolve("relative");
  ASSERT_TRUE(relative.ok()) << relative.status() << "\n" << server.Log();
  absl::StatusOr<std::vector<RepoFile>> files =
      repo->ReadTree(relative->id, "vendor/lib", GitRepository::Unreadable::kRefuse);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].path, "vendor/lib/apps/web/a.yaml");

  // Then lib moves to another host, at a commit the relative one did not fetch.
  git_.Write("apps/web/b.yaml", "b: 1\n");
  const std::string second = git_.Commit("second");
  server.Serve(git_.dir(), "lib");
  app.Write(".gitmodules", "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = " + elsewhere + "\n");
  app.Git("add .gitmodules");
  app.Gitlink("vendor/lib", second);
  app.CommitStaged("lib, on another host");
  server.Serve(app.dir(), "app");
  ASSERT_TRUE(repo->Fetch().ok());
  // Without a credential for that host: fetched as anyone would, so this server (whose CA
  // only the source's credential trusts) is not trusted, and nothing is sent.
  absl::Status other_host = repo->Resolve("main").status();
  EXPECT_THAT(other_host, FailsWith("submodule vendor/lib: "));
  EXPECT_THAT(other_host, FailsWith("TLS certificate of localhost is not trusted"));

  // --git-credentials gives that host one: fetched with it.
  Credential("lib-https", {{"username", "alice"},
                           {"password", "correct horse"},
                           {"ca.crt", Read(server.ca_pem_path())}});
  GitAccess access{credentials_, false};
  absl::StatusOr<CredentialPrefixes> prefixes = ParseCredentialPrefixes(
      {absl::StrCat("https://localhost:", server.port(), "/git/=lib-https")});
  ASSERT_TRUE(prefixes.ok()) << prefixes.status();
  access.credential_prefixes = *prefixes;
  auto templated = NewLibgit2Repositories(TempDir("cache"), {}, access);
  repo = *templated->ForUrl(url, "git-https", /*submodules=*/true);
  ASSERT_TRUE(repo->Fetch().ok());
  absl::StatusOr<CommitInfo> main = repo->Resolve("main");
  ASSERT_TRUE(main.ok()) << main.status() << "\n" << server.Log();
  files = repo->ReadTree(main->id, "vendor/lib", GitRepository::Unreadable::kRefuse);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->size(), 2u);
}

// A source that names no credential gets the one --git-credentials gives the longest URL
// prefix it is under (as Argo CD's credential templates), read at every fetch.
TEST_F(PrivateGitTest, ASourceGetsTheCredentialOfItsUrlsPrefix) {
  HttpsGitServer server(TempDir("https"));
  if (absl::Status s = server.Start("alice", "correct horse"); !s.ok()) GTEST_SKIP() << s;
  const std::string url = server.Serve(git_.dir(), "app");
  const std::string ca = Read(server.ca_pem_path());
  Credential("org", {{"username", "alice"}, {"password", "correct horse"}, {"ca.crt", ca}});
  Credential("wrong", {{"username", "alice"}, {"password", "battery staple"}, {"ca.crt", ca}});
  const std::string host = absl::StrCat("https://127.0.0.1:", server.port());
  auto fetch = [&](std::vector<std::string> entries, const std::string& named) {
    absl::StatusOr<CredentialPrefixes> prefixes = ParseCredentialPrefixes(entries);
    if (!prefixes.ok()) return absl::StatusOr<std::string>(prefixes.status());
    GitAccess access{credentials_, false, *prefixes};
    auto repos = NewLibgit2Repositories(TempDir("cache"), {}, access);
    absl::StatusOr<std::shared_ptr<GitRepository>> repo = repos->ForUrl(url, named);
    if (!repo.ok()) return absl::StatusOr<std::string>(repo.status());
    if (absl::Status s = (*repo)->Fetch(); !s.ok()) return absl::StatusOr<std::string>(s);
    absl::StatusOr<CommitInfo> resolved = (*repo)->Resolve("main");
    if (!resolved.ok()) return absl::StatusOr<std::string>(resolved.status());
    return absl::StatusOr<std::string>(resolved->id);
  };
  absl::StatusOr<std::string> fetched = fetch({host + "=org"}, "");
  ASSERT_TRUE(fetched.ok()) << fetched.status() << "\n" << server.Log();
  EXPECT_EQ(*fetched, commit_);
  // The longest prefix wins; a source's own --credentials wins over any.
  EXPECT_TRUE(fetch({host + "=wrong", host + "/git/=org"}, "").ok());
  EXPECT_THAT(fetch({host + "/git/=wrong", host + "=org"}, "").status(),
              FailsWith("the server refused credential wrong"));
  EXPECT_TRUE(fetch({host + "=wrong"}, "org").ok());
  // Under no prefix: nothing is sent, and the error names both ways to give one.
  EXPECT_THAT(fetch({"https://git.example.com/=org"}, "").status(), FailsWith("is not trusted"));
  // A credential the flag names that is not there is named at the fetch.
  EXPECT_THAT(fetch({host + "=nope"}, "").status(), FailsWith("credential nope not found"));
}

TEST(CredentialPrefixesTest, ReadsTheFlagAndMatchesTheLongestPrefix) {
  absl::StatusOr<CredentialPrefixes> read =
      ParseCredentialPrefixes({"https://github.com/acme/=acme", "https://github.com=github",
                               "ssh://git@gitlab.example.com/=gl", "http://127.0.0.1:8080/=local"});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(CredentialForUrl(*read, "https://github.com/acme/app.git"), "acme");
  EXPECT_EQ(CredentialForUrl(*read, "https://github.com/other/app.git"), "github");
  EXPECT_EQ(CredentialForUrl(*read, "https://github.com.evil.example/acme/app.git"), "")
      << "a host alone is that whole host";
  EXPECT_EQ(CredentialForUrl(*read, "ssh://gitlab.example.com/team/app.git"), "gl");
  EXPECT_EQ(CredentialForUrl(*read, "ssh://deploy@gitlab.example.com/team/app.git"), "gl")
      << "the ssh account does not count";
  EXPECT_EQ(CredentialForUrl(*read, "http://127.0.0.1:8080/app.git"), "local");
  EXPECT_EQ(CredentialForUrl(*read, "git://github.com/acme/app.git"), "");
  struct Bad {
    std::string entry, says;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"github", "is not PREFIX=NAME"},
           {"https://github.com/=", "is not PREFIX=NAME"},
           {"git://github.com/=a", "not an https:// or ssh:// URL prefix"},
           {"*=a", "not an https:// or ssh:// URL prefix"},
           {"http://git.example.com/=a", "never sent over plain http"},
           {"https://alice:pw@github.com/=a", "carries credentials"},
           {"https://github.com/=../a", "credential"},
       }) {
    absl::Status status = ParseCredentialPrefixes({bad.entry}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad.entry;
    EXPECT_THAT(status.message(), HasSubstr(bad.says)) << bad.entry;
    EXPECT_THAT(status.message(), Not(HasSubstr("pw@"))) << bad.entry;
  }
  EXPECT_THAT(
      ParseCredentialPrefixes({"https://github.com=a", "https://github.com/=b"}).status().message(),
      HasSubstr("is given a credential twice"));
}

// Over SSH too: a relative submodule is fetched with the source's key, its host key
// checked against the credential's known_hosts at its own port.
TEST_F(PrivateGitTest, SubmodulesOverSshUseTheSourcesKey) {
  ssh_client_ = SshClient::kOpenSsh;  // libssh2's path: every other SSH test
  SshGitServer server(TempDir("ssh"));
  if (absl::Status s = server.Start(); !s.ok()) GTEST_SKIP() << s;
  GitFixture app(TempDir("app"));
  app.Write(".gitmodules", "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n");
  app.Git("add .gitmodules");
  app.Gitlink("vendor/lib", commit_);
  app.CommitStaged("lib, relative");
  server.Serve(git_.dir(), "lib");
  const std::string url = server.Serve(app.dir(), "app");
  Credential("git-ssh", {{"ssh-privatekey", Read(server.client_key_path())},
                         {"known_hosts", server.known_hosts_line() + "\n"}});
  auto repos = NewLibgit2Repositories(TempDir("cache"), {}, Access());
  std::shared_ptr<GitRepository> repo = *repos->ForUrl(url, "git-ssh", /*submodules=*/true);
  ASSERT_TRUE(repo->Fetch().ok()) << server.Log();
  absl::StatusOr<CommitInfo> main = repo->Resolve("main");
  ASSERT_TRUE(main.ok()) << main.status() << "\n" << server.Log();
  absl::StatusOr<std::vector<RepoFile>> files =
      repo->ReadTree(main->id, "vendor/lib", GitRepository::Unreadable::kRefuse);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].path, "vendor/lib/apps/web/a.yaml");
}

// A private repository over SSH whose files are in Git LFS: as git-lfs, the control plane
// runs git-lfs-authenticate on the Git host with the source's key, and fetches from the
// server it names with the headers it gives. A host without the command is named.
TEST_F(PrivateGitTest, AnSshSourcesLfsServerIsOpenedWithGitLfsAuthenticate) {
  SshGitServer server(TempDir("ssh-lfs"));
  if (absl::Status s = server.Start(); !s.ok()) GTEST_SKIP() << s;
  ::gitfleet::testing::LfsServer lfs(TempDir("lfs"));
  const std::string pointer = lfs.AddObject("kept: in-lfs\n");
  const std::string other = lfs.AddObject("kept: other\n");
  lfs.RequireAuthorization("RemoteAuth token-over-ssh");
  ASSERT_TRUE(lfs.Start().ok());
  server.AnswerLfsAuthenticate(absl::StrCat(
      R"({"href": ")", lfs.url(),
      R"(org/app.git/info/lfs", "header": {"Authorization": "RemoteAuth token-over-ssh"},
          "expires_in": 3600})"));
  git_.Write("apps/web/big.yaml", pointer);
  const std::string first = git_.Commit("in LFS");
  git_.Write("apps/web/big.yaml", other);
  const std::string second = git_.Commit("another object");
  const std::string url = server.Serve(git_.dir(), "app");
  Credential("git-ssh", {{"ssh-privatekey", Read(server.client_key_path())},
                         {"known_hosts", server.known_hosts_line() + "\n"}});
  const std::string answer = absl::StrCat(
      R"({"href": ")", lfs.url(),
      R"(org/app.git/info/lfs", "header": {"Authorization": "RemoteAuth token-over-ssh"},
          "expires_in": 3600})");
  for (SshClient client : {SshClient::kLibssh2, SshClient::kOpenSsh}) {
    SCOPED_TRACE(client == SshClient::kOpenSsh ? "OpenSSH's client" : "libssh2");
    ssh_client_ = client;
    server.AnswerLfsAuthenticate(answer);
    std::shared_ptr<GitRepository> repo = FetchedWithLfs(url, "git-ssh", server.Log());
    ASSERT_NE(repo, nullptr);
    absl::StatusOr<std::vector<RepoFile>> files =
        repo->ReadTree(first, "apps/web", GitRepository::Unreadable::kRefuse);
    ASSERT_TRUE(files.ok()) << files.status() << lfs.Log() << server.Log();
    EXPECT_EQ(files->at(1).content, "kept: in-lfs\n");
    EXPECT_THAT(lfs.Log(), HasSubstr("POST /org/app.git/info/lfs/objects/batch auth=RemoteAuth"));
    // The path as git-lfs sends it: the URL's, without its leading "/".
    EXPECT_THAT(server.LfsAuthenticateLog(), HasSubstr("/repos/app.git download"));
    EXPECT_NE(server.LfsAuthenticateLog().substr(0, 1), "/");

    // A host that does not run it: the https server the URL implies is tried, and the
    // error says what SSH answered.
    server.AnswerLfsAuthenticate("");
    files = repo->ReadTree(second, "apps/web", GitRepository::Unreadable::kRefuse);
    EXPECT_THAT(files.status(), FailsWith("git-lfs-authenticate over SSH failed"));
    EXPECT_THAT(files.status(), FailsWith("exited with status 127"));
  }
}

// The keys ssh-keygen makes today: OpenSSH's own format (ed25519, ECDSA, RSA) and PEM, and
// encrypted ones, whose passphrase is the credential's password (as in Flux's Secrets). An
// RSA key goes through OpenSSH's client: Debian 12's libssh2 signs with SHA-1, which
// OpenSSH 8.8+ (this sshd) and GitHub refuse; forced onto libssh2, it fails saying so.
TEST_F(PrivateGitTest, SshKeysAsSshKeygenWritesThemPassphrasesIncluded) {
  const std::string root = TempDir("ssh-keys");
  SshGitServer server(root);
  if (absl::Status s = server.Start(); !s.ok()) GTEST_SKIP() << s;
  const std::string url = server.Serve(git_.dir(), "app");
  const std::string known_hosts = server.known_hosts_line() + "\n";
  // A key made with `args`, authorized, as credential NAME with `password` (if any).
  auto key = [&](const std::string& name, const std::string& args, const std::string& password) {
    std::string out;
    EXPECT_EQ(
        ::gitfleet::testing::Run(absl::StrCat("cd '", root, "' && ssh-keygen -q ", args, " -f ",
                                              name, " && cat ", name, ".pub >> authorized_keys"),
                                 &out),
        0)
        << out;
    std::map<std::string, std::string> files = {{"ssh-privatekey", Read(root + "/" + name)},
                                                {"known_hosts", known_hosts}};
    if (!password.empty()) files["password"] = password;
    Credential(name, files);
  };
  key("ed25519", "-t ed25519 -N ''", "");
  key("sealed", "-t ed25519 -N 'pass phrase'", "pass phrase\n");
  key("sealed-pem", "-t ecdsa -m PEM -N 'pass phrase'", "pass phrase");
  for (const char* name : {"ed25519", "sealed", "sealed-pem"}) {
    absl::StatusOr<std::string> fetched = FetchMain(url, name);
    ASSERT_TRUE(fetched.ok()) << name << ": " << fetched.status() << "\n" << server.Log();
    EXPECT_EQ(*fetched, commit_);
  }
  key("unopened", "-t ed25519 -N 'pass phrase'", "");
  absl::Status unopened = FetchMain(url, "unopened").status();
  EXPECT_THAT(unopened, FailsWith("an encrypted key needs its passphrase in the credential's "
                                  "password file"));
  key("rsa", "-t rsa -b 2048 -N ''", "");
  key("sealed-rsa", "-t rsa -b 2048 -N 'pass phrase'", "pass phrase\n");
  key("rsa-pem", "-t rsa -b 2048 -m PEM -N ''", "");
  for (const char* name : {"rsa", "sealed-rsa", "rsa-pem"}) {
    absl::StatusOr<std::string> fetched = FetchMain(url, name);
    ASSERT_TRUE(fetched.ok()) << name << ": " << fetched.status() << "\n" << server.Log();
    EXPECT_EQ(*fetched, commit_);
  }
  // The key is handed to ssh as a private copy: a credential file others may read (as a
  // mounted Secret often is), which OpenSSH would refuse, works all the same.
  ::gitfleet::testing::Run(absl::StrCat("chmod 0644 '", credentials_, "/rsa/ssh-privatekey'"));
  EXPECT_TRUE(FetchMain(url, "rsa").ok());
  key("rsa-wrong-passphrase", "-t rsa -b 2048 -N 'pass phrase'", "other phrase");
  EXPECT_THAT(FetchMain(url, "rsa-wrong-passphrase").status(),
              FailsWith("or the password file is not its passphrase"));
  ssh_client_ = SshClient::kLibssh2;
  EXPECT_THAT(FetchMain(url, "rsa").status(),
              FailsWith("it is an RSA key, which libssh2 (1.10, Debian 12's) signs with SHA-1"));
}

// Both SSH clients hold to the same rules: the credential's key, the host keys its
// known_hosts lists and no others, nothing fetched without them.
TEST_F(PrivateGitTest, SshWithAKeyAndVerifiedHostKeys) {
  SshGitServer server(TempDir("ssh"));
  if (absl::Status s = server.Start(); !s.ok()) GTEST_SKIP() << s;
  std::string url = server.Serve(git_.dir(), "app");
  std::string key = Read(server.client_key_path());
  std::string known_hosts = server.known_hosts_line() + "\n";
  std::string other_pub = Read(server.other_key_path() + ".pub");
  std::string changed = absl::StrCat("[127.0.0.1]:", server.port(), " ",
                                     other_pub.substr(0, other_pub.rfind(' ')), "\n");
  Credential("git-ssh", {{"ssh-privatekey", key}, {"known_hosts", known_hosts}});
  Credential("wrong-key",
             {{"ssh-privatekey", Read(server.other_key_path())}, {"known_hosts", known_hosts}});
  Credential("changed", {{"ssh-privatekey", key}, {"known_hosts", changed}});
  Credential("unknown",
             {{"ssh-privatekey", key},
              {"known_hosts", "git.example.com " + other_pub.substr(0, other_pub.rfind(' '))}});
  for (SshClient client : {SshClient::kLibssh2, SshClient::kOpenSsh}) {
    const bool openssh = client == SshClient::kOpenSsh;
    SCOPED_TRACE(openssh ? "OpenSSH's client" : "libssh2");
    ssh_client_ = client;
    absl::StatusOr<std::string> fetched = FetchMain(url, "git-ssh");
    ASSERT_TRUE(fetched.ok()) << fetched.status() << "\n" << server.Log();
    EXPECT_EQ(*fetched, commit_);

    // A key the server does not authorize.
    EXPECT_THAT(FetchMain(url, "wrong-key").status(), FailsWith("refused credential wrong-key"));

    // A changed host key: named with the offered key's fingerprint.
    absl::Status refused = FetchMain(url, "changed").status();
    EXPECT_THAT(refused, FailsWith("the SSH host key of "));
    EXPECT_THAT(refused, FailsWith("the server offers SHA256:"));
    EXPECT_THAT(refused, FailsWith(openssh ? "credential changed's known_hosts" : "[127.0.0.1]:"));

    // An unknown host.
    EXPECT_THAT(FetchMain(url, "unknown").status(),
                FailsWith(openssh ? "is not one credential unknown's known_hosts lists"
                                  : "unknown SSH host [127.0.0.1]:"));

    // No credential: the host key cannot be checked, so nothing is fetched.
    EXPECT_THAT(FetchMain(url, "").status(),
                FailsWith("ssh:// sources need a credential with known_hosts"));
  }
}

// An OpenSSH 8.8+ server whose only host key is RSA offers rsa-sha2-256/512 host key
// signatures alone, which Debian 12's libssh2 cannot check: by default the fetch goes on
// with OpenSSH's client (the host key still the credential's known_hosts'), and so does
// git-lfs-authenticate.
TEST_F(PrivateGitTest, AServerWithAnRsaHostKeyOnly) {
  SshGitServer server(TempDir("ssh-rsa-host"));
  server.UseHostKey("-t rsa -b 2048");
  if (absl::Status s = server.Start(); !s.ok()) GTEST_SKIP() << s;
  ::gitfleet::testing::LfsServer lfs(TempDir("lfs"));
  const std::string pointer = lfs.AddObject("kept: in-lfs\n");
  ASSERT_TRUE(lfs.Start().ok());
  server.AnswerLfsAuthenticate(
      absl::StrCat(R"({"href": ")", lfs.url(), R"(org/app.git/info/lfs"})"));
  git_.Write("apps/web/big.yaml", pointer);
  const std::string commit = git_.Commit("in LFS");
  const std::string url = server.Serve(git_.dir(), "app");
  Credential("git-ssh", {{"ssh-privatekey", Read(server.client_key_path())},
                         {"known_hosts", server.known_hosts_line() + "\n"}});
  ssh_client_ = SshClient::kLibssh2;
  EXPECT_THAT(FetchMain(url, "git-ssh").status(), FailsWith("Unable to exchange encryption keys"));
  ssh_client_ = SshClient::kAuto;
  absl::StatusOr<std::string> fetched = FetchMain(url, "git-ssh");
  ASSERT_TRUE(fetched.ok()) << fetched.status() << "\n" << server.Log();
  EXPECT_EQ(*fetched, commit);
  std::shared_ptr<GitRepository> repo = FetchedWithLfs(url, "git-ssh", server.Log());
  ASSERT_NE(repo, nullptr);
  absl::StatusOr<std::vector<RepoFile>> files =
      repo->ReadTree(commit, "apps/web", GitRepository::Unreadable::kRefuse);
  ASSERT_TRUE(files.ok()) << files.status() << lfs.Log() << server.Log();
  EXPECT_EQ(files->at(1).content, "kept: in-lfs\n");
  EXPECT_THAT(server.LfsAuthenticateLog(), HasSubstr("app.git download"));
  // Still only the credential's known_hosts.
  Credential("changed",
             {{"ssh-privatekey", Read(server.client_key_path())},
              {"known_hosts", absl::StrCat("[127.0.0.1]:", server.port(),
                                           " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO"
                                           "l7F9I2oUq7Xq7u2ntwGCOd7YbGKTx4xP6dRvjIKYw3\n")}});
  EXPECT_THAT(FetchMain(url, "changed").status(), FailsWith("the SSH host key of"));
}

// known_hosts that trusts a certificate authority for the host (`@cert-authority`, host
// certificates, as larger fleets of Git servers use): OpenSSH's client reads it, libssh2
// does not, so by default such a credential goes through OpenSSH's.
TEST_F(PrivateGitTest, HostCertificatesThroughTheirCertificateAuthority) {
  SshGitServer server(TempDir("ssh-host-ca"));
  server.UseHostCertificate();
  if (absl::Status s = server.Start(); !s.ok()) GTEST_SKIP() << s;
  const std::string url = server.Serve(git_.dir(), "app");
  const std::string key = Read(server.client_key_path());
  Credential("ca", {{"ssh-privatekey", key}, {"known_hosts", server.cert_authority_line() + "\n"}});
  absl::StatusOr<std::string> fetched = FetchMain(url, "ca");
  ASSERT_TRUE(fetched.ok()) << fetched.status() << "\n" << server.Log();
  EXPECT_EQ(*fetched, commit_);
  // Another authority is not trusted.
  std::string other_pub = Read(server.other_key_path() + ".pub");
  Credential("other-ca",
             {{"ssh-privatekey", key},
              {"known_hosts", absl::StrCat("@cert-authority [127.0.0.1]:", server.port(), " ",
                                           other_pub.substr(0, other_pub.rfind(' ')), "\n")}});
  EXPECT_THAT(FetchMain(url, "other-ca").status(), FailsWith("the SSH host key of"));
  ssh_client_ = SshClient::kLibssh2;
  EXPECT_THAT(FetchMain(url, "ca").status(), FailsWith("unknown SSH host"));
}

// A key an SSH CA certified (ssh-privatekey-cert.pub beside it), for servers that trust a
// CA for users rather than list each key: sent through OpenSSH's client (libssh2 sends no
// certificates).
TEST_F(PrivateGitTest, UserCertificatesFromAnSshCa) {
  SshGitServer server(TempDir("ssh-user-ca"));
  server.UseUserCertificates();
  if (absl::Status s = server.Start(); !s.ok()) GTEST_SKIP() << s;
  const std::string url = server.Serve(git_.dir(), "app");
  const std::string key = Read(server.certified_key_path());
  const std::string known_hosts = server.known_hosts_line() + "\n";
  Credential("certified",
             {{"ssh-privatekey", key},
              {"ssh-privatekey-cert.pub", Read(server.certified_key_path() + "-cert.pub")},
              {"known_hosts", known_hosts}});
  absl::StatusOr<std::string> fetched = FetchMain(url, "certified");
  ASSERT_TRUE(fetched.ok()) << fetched.status() << "\n" << server.Log();
  EXPECT_EQ(*fetched, commit_);
  // The key alone is not listed anywhere.
  Credential("uncertified", {{"ssh-privatekey", key}, {"known_hosts", known_hosts}});
  EXPECT_THAT(FetchMain(url, "uncertified").status(), FailsWith("refused credential uncertified"));
  // A certificate without its key, or one that is not a certificate, is refused by name.
  Credential("no-key", {{"ssh-privatekey-cert.pub", "ssh-ed25519-cert-v01@openssh.com AAAA"},
                        {"known_hosts", known_hosts}});
  EXPECT_THAT(FetchMain(url, "no-key").status(), FailsWith("no ssh-privatekey it certifies"));
  Credential("not-a-cert", {{"ssh-privatekey", key},
                            {"ssh-privatekey-cert.pub", Read(server.certified_key_path() + ".pub")},
                            {"known_hosts", known_hosts}});
  EXPECT_THAT(FetchMain(url, "not-a-cert").status(), FailsWith("is not an OpenSSH certificate"));
}

TEST_F(PrivateGitTest, AServerThatNeverAnswersIsCutOffAtTheFetchTimeout) {
  // The kernel accepts the connection into the backlog; nothing ever speaks. libssh2 does
  // its own socket I/O, so only the watchdog of timed_stream.cc can end its wait.
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  socklen_t length = sizeof(addr);
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length);
  int port = ntohs(addr.sin_port);
  Credential("silent",
             {{"ssh-privatekey", "not used"},
              {"known_hosts", absl::StrCat("[127.0.0.1]:", port, " ssh-ed25519 AAAA\n")}});
  GitLimits limits;
  limits.fetch_timeout = absl::Seconds(2);
  // OpenSSH's client waits for the server's banner on its own; the fetch's deadline ends it.
  for (SshClient client : {SshClient::kLibssh2, SshClient::kOpenSsh}) {
    SCOPED_TRACE(client == SshClient::kOpenSsh ? "OpenSSH's client" : "libssh2");
    ssh_client_ = client;
    auto repos = NewLibgit2Repositories(TempDir("cache"), limits, Access());
    auto repo = *repos->ForUrl(absl::StrCat("ssh://git@127.0.0.1:", port, "/app.git"), "silent");
    absl::Time start = absl::Now();
    absl::Status fetched = repo->Fetch();
    absl::Duration took = absl::Now() - start;
    EXPECT_FALSE(fetched.ok());
    EXPECT_LT(took, absl::Seconds(15)) << fetched;
    EXPECT_GE(took, absl::Seconds(1)) << fetched;
    if (client == SshClient::kOpenSsh) EXPECT_THAT(fetched, FailsWith("timed out"));
  }
  // An https server that never finishes the TLS handshake: gitfleet's TLS stream waits on
  // the same timed socket.
  auto repos = NewLibgit2Repositories(TempDir("cache"), limits, Access());
  auto repo = *repos->ForUrl(absl::StrCat("https://127.0.0.1:", port, "/app.git"), "");
  const absl::Time start = absl::Now();
  absl::Status fetched = repo->Fetch();
  EXPECT_THAT(fetched, FailsWith("timed out"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(15)) << fetched;
  close(listener);
}

}  // namespace
}  // namespace gitfleet
