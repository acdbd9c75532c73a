#ifndef GITFLEET_TESTS_UTIL_GIT_SERVERS_H_
#define GITFLEET_TESTS_UTIL_GIT_SERVERS_H_

// Private Git servers for tests, real ones from Debian, on loopback:
// - HttpsGitServer: lighttpd (mod_openssl, mod_auth) running `git http-backend` as CGI,
//   with a certificate from a test CA and HTTP basic auth;
// - SshGitServer: OpenSSH's sshd with its own host key, serving Git over SSH to one
//   authorized test key.
//
//   HttpsGitServer https(TempDir("https"));
//   if (absl::Status s = https.Start("alice", "s3cret"); !s.ok()) GTEST_SKIP() << s;
//   std::string url = https.Serve(git.dir(), "app");   // https://127.0.0.1:PORT/git/app.git
//
// Start fails (Unavailable, saying what is missing) when the server is not installed;
// tools/setup installs both.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/util/process.h"

namespace gitfleet::testing {

class HttpsGitServer {
 public:
  explicit HttpsGitServer(std::string root);
  absl::Status Start(const std::string& user, const std::string& password);
  // Instead of basic auth, every request needs `Authorization: Bearer TOKEN` (403 without
  // it, as lighttpd denies). Before Start.
  void RequireBearer(const std::string& token) { bearer_ = token; }
  // Requests under /moved/ are redirected (302) to `target` + the rest, "{port}" in it the
  // server's own port. Before Start.
  void RedirectMoved(const std::string& target) { moved_ = target; }
  // The TLS handshake needs a client certificate the test CA signed (mutual TLS), on top
  // of the rest. Before Start; client_cert_path() and client_key_path() then hold one, and
  // other_client_*_path() one signed by a CA the server does not trust.
  void RequireClientCertificate() { client_certificates_ = true; }
  std::string client_cert_path() const { return root_ + "/client.crt"; }
  std::string client_key_path() const { return root_ + "/client.key"; }
  std::string other_client_cert_path() const { return root_ + "/stranger.crt"; }
  std::string other_client_key_path() const { return root_ + "/stranger.key"; }
  // Publishes a bare clone of the repository at `repo_dir` as NAME.git; returns its URL.
  // Call again after new commits to publish them.
  std::string Serve(const std::string& repo_dir, const std::string& name);
  // Publishes a copy of the files in `dir` (a chart repository, say) at /NAME/, behind the
  // same basic auth; returns https://127.0.0.1:PORT/NAME/.
  std::string ServeFiles(const std::string& dir, const std::string& name);
  const std::string& ca_pem_path() const { return ca_; }  // the test CA's certificate
  int port() const { return port_; }
  std::string Log() const;

 private:
  std::string root_;
  std::string ca_;
  std::string bearer_;
  std::string moved_;
  bool client_certificates_ = false;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

class SshGitServer {
 public:
  explicit SshGitServer(std::string root);
  // The host key ssh-keygen makes with `args` ("-t rsa -b 3072") instead of ECDSA. Before
  // Start.
  void UseHostKey(const std::string& args) { host_key_args_ = args; }
  // The host key also comes with a certificate a test CA signed for 127.0.0.1. Before
  // Start; cert_authority_line() is then the known_hosts line that trusts that CA.
  void UseHostCertificate() { host_certificate_ = true; }
  // The server also trusts a test SSH CA for users: certified_key_path() is a key no
  // authorized_keys lists, and certified_key_path() + "-cert.pub" its certificate for the
  // login user. Before Start.
  void UseUserCertificates() { user_certificates_ = true; }
  std::string certified_key_path() const { return root_ + "/certified_key"; }
  const std::string& cert_authority_line() const { return cert_authority_; }
  absl::Status Start();
  // Publishes a bare clone as NAME.git; returns ssh://USER@127.0.0.1:PORT/…/NAME.git.
  std::string Serve(const std::string& repo_dir, const std::string& name);
  const std::string& client_key_path() const { return client_key_; }  // authorized
  const std::string& other_key_path() const { return other_key_; }    // not authorized
  // "[127.0.0.1]:PORT <type> <key>": the line a known_hosts file needs.
  const std::string& known_hosts_line() const { return known_hosts_; }
  int port() const { return port_; }
  // The host's git-lfs-authenticate prints `answer` (git-lfs's SSH authentication); ""
  // removes the command, as on a host without LFS. Its arguments are logged.
  void AnswerLfsAuthenticate(const std::string& answer);
  // The arguments git-lfs-authenticate was run with, a line each.
  std::string LfsAuthenticateLog() const;
  std::string Log() const;

 private:
  std::string answer_path() const;
  std::string root_;
  std::string host_key_args_ = "-t ecdsa -b 256";
  bool host_certificate_ = false;
  bool user_certificates_ = false;
  std::string cert_authority_;
  std::string client_key_;
  std::string other_key_;
  std::string known_hosts_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

// A TCP port on 127.0.0.1 nothing listens on right now.
int FreePort();

// A test server written in Python: `script` saved at `path` and run as `python3 -u path
// args...`, logging to `log`; started once its log shows `ready`. Unavailable naming `what`
// (with its log) when it does not start, or when python3 is not installed.
absl::Status StartPythonServer(const std::string& what, const std::string& script,
                               const std::string& path, std::vector<std::string> args,
                               const std::string& log, const std::string& ready,
                               std::unique_ptr<Process>* server);

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_GIT_SERVERS_H_
