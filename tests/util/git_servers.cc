#include "tests/util/git_servers.h"

#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "tests/util/git_fixture.h"

namespace gitfleet::testing {
namespace {

constexpr char kLighttpd[] = "/usr/sbin/lighttpd";
constexpr char kSshd[] = "/usr/sbin/sshd";
constexpr char kHttpBackend[] = "/usr/lib/git-core/git-http-backend";

bool Exists(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Publishes a bare clone of `repo_dir` at `dir`/NAME.git (replacing an older one).
void PublishBare(const std::string& repo_dir, const std::string& dir, const std::string& name) {
  std::string bare = absl::StrCat(dir, "/", name, ".git");
  Run(absl::StrCat("rm -rf '", bare, "' && git clone -q --bare '", repo_dir, "' '", bare,
                   "' && git -C '", bare, "' config http.receivepack false"));
}

// Waits until something accepts connections on 127.0.0.1:port.
bool Listening(int port) {
  return Eventually(
      [port] {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
        close(fd);
        return ok;
      },
      absl::Seconds(10));
}

}  // namespace

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

HttpsGitServer::HttpsGitServer(std::string root) : root_(std::move(root)) {}

absl::Status HttpsGitServer::Start(const std::string& user, const std::string& password) {
  if (!Exists(kLighttpd)) {
    return absl::UnavailableError("lighttpd is not installed (tools/setup installs it)");
  }
  if (!Exists(kHttpBackend)) return absl::UnavailableError("git http-backend is not installed");
  if (access("/usr/lib/lighttpd/mod_openssl.so", R_OK) != 0) {
    return absl::UnavailableError("lighttpd-mod-openssl is not installed (tools/setup)");
  }
  ca_ = root_ + "/ca.crt";
  std::string out;
  int rc = Run(
      absl::StrCat("set -e; cd '", root_, "'; mkdir -p repos www;",
                   "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 "
                   "-out $1 2>/dev/null; };",
                   "key ca.key; openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj "
                   "/CN=gitfleet-test-git-ca;",
                   "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext;",
                   "key server.key; openssl req -new -key server.key -out server.csr -subj "
                   "/CN=localhost;",
                   "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                   "-days 2 -extfile server.ext -out server.crt 2>/dev/null;",
                   "cat server.crt server.key > server.pem;",
                   // A second CA that signed nothing here, for tests of the wrong one.
                   "key other.key; openssl req -x509 -new -key other.key -out ca.crt.other "
                   "-days 2 -subj /CN=someone-else;",
                   // Client certificates: one the test CA signed, one the other CA did.
                   "printf 'extendedKeyUsage=clientAuth\n' > client.ext;",
                   "key client.key; openssl req -new -key client.key -out client.csr -subj "
                   "/CN=gitfleet-control-plane;",
                   "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                   "-days 2 -extfile client.ext -out client.crt 2>/dev/null;",
                   "key stranger.key; openssl req -new -key stranger.key -out stranger.csr "
                   "-subj /CN=stranger;",
                   "openssl x509 -req -in stranger.csr -CA ca.crt.other -CAkey other.key "
                   "-CAcreateserial -days 2 -extfile client.ext -out stranger.crt 2>/dev/null"),
      &out);
  if (rc != 0) return absl::InternalError(absl::StrCat("cannot make certificates: ", out));
  std::ofstream(root_ + "/users") << user << ":" << password << "\n";
  port_ = FreePort();
  // Everything behind basic auth, or a bearer token: Git under /git, static files
  // (ServeFiles) elsewhere.
  const std::string auth =
      bearer_.empty()
          ? absl::StrCat("auth.backend = \"plain\"\n", "auth.backend.plain.userfile = \"", root_,
                         "/users\"\n",
                         "auth.require = (\"\" => (\"method\" => \"basic\", \"realm\" => \"git\", "
                         "\"require\" => \"valid-user\"))\n")
          : absl::StrCat("$REQUEST_HEADER[\"Authorization\"] != \"Bearer ", bearer_,
                         "\" {\n  url.access-deny = (\"\")\n}\n");
  std::ofstream(root_ + "/lighttpd.conf")
      << "server.modules = (\"mod_access\", \"mod_redirect\", \"mod_auth\", \"mod_authn_file\", "
         "\"mod_alias\", "
         "\"mod_setenv\", \"mod_cgi\", \"mod_openssl\")\n"
      << "server.document-root = \"" << root_ << "/www\"\n"
      << "server.bind = \"127.0.0.1\"\n"
      << "server.port = " << port_ << "\n"
      << "server.errorlog = \"" << root_ << "/error.log\"\n"
      << "ssl.engine = \"enable\"\n"
      << "ssl.pemfile = \"" << root_ << "/server.pem\"\n"
      << (client_certificates_ ? absl::StrCat("ssl.ca-file = \"", root_,
                                              "/ca.crt\"\nssl.verifyclient.activate = \"enable\"\n"
                                              "ssl.verifyclient.enforce = \"enable\"\n")
                               : "")
      << "alias.url = (\"/git\" => \"" << kHttpBackend << "\")\n"
      << auth
      << (moved_.empty()
              ? ""
              : absl::StrCat("url.redirect = (\"^/moved/(.*)$\" => \"",
                             absl::StrReplaceAll(moved_, {{"{port}", std::to_string(port_)}}),
                             "$1\")\nurl.redirect-code = 302\n"))
      << "$HTTP[\"url\"] =~ \"^/git\" {\n"
      << "  cgi.assign = (\"\" => \"\")\n"
      << "  setenv.add-environment = (\"GIT_PROJECT_ROOT\" => \"" << root_
      << "/repos\", \"GIT_HTTP_EXPORT_ALL\" => \"1\")\n"
      << "}\n";
  server_ = std::make_unique<Process>(
      kLighttpd, std::vector<std::string>{"-D", "-f", root_ + "/lighttpd.conf"},
      root_ + "/lighttpd.log");
  if (!Listening(port_)) {
    return absl::UnavailableError(absl::StrCat("lighttpd did not start: ", Log()));
  }
  return absl::OkStatus();
}

std::string HttpsGitServer::ServeFiles(const std::string& dir, const std::string& name) {
  const std::string target = absl::StrCat(root_, "/www/", name);
  std::filesystem::remove_all(target);
  std::filesystem::create_directories(root_ + "/www");
  std::filesystem::copy(dir, target, std::filesystem::copy_options::recursive);
  return absl::StrCat("https://127.0.0.1:", port_, "/", name, "/");
}

std::string HttpsGitServer::Serve(const std::string& repo_dir, const std::string& name) {
  PublishBare(repo_dir, root_ + "/repos", name);
  return absl::StrCat("https://127.0.0.1:", port_, "/git/", name, ".git");
}

std::string HttpsGitServer::Log() const {
  return ReadAll(root_ + "/lighttpd.log") + ReadAll(root_ + "/error.log");
}

namespace {
// Who logs in over SSH here: the user the tests run as.
std::string LoginUser() {
  passwd* user = getpwuid(geteuid());
  return user != nullptr ? user->pw_name : "root";
}
}  // namespace

SshGitServer::SshGitServer(std::string root) : root_(std::move(root)) {}

absl::Status SshGitServer::Start() {
  if (!Exists(kSshd)) {
    return absl::UnavailableError("sshd is not installed (openssh-server; tools/setup)");
  }
  if (geteuid() != 0) {
    return absl::UnavailableError("sshd needs root to accept logins here");
  }
  mkdir("/run/sshd", 0755);  // its privilege separation directory
  std::string out;
  // ECDSA keys in PEM: what Debian 12's libssh2 reads.
  int rc =
      Run(absl::StrCat(
              "set -e; cd '", root_, "'; mkdir -p repos;", "ssh-keygen -q ", host_key_args_,
              " -N '' -f host_key;", "ssh-keygen -q -t ecdsa -b 256 -m PEM -N '' -f client_key;",
              "ssh-keygen -q -t ecdsa -b 256 -m PEM -N '' -f other_key;",
              "cp client_key.pub authorized_keys; chmod 600 authorized_keys;",
              host_certificate_ ? "ssh-keygen -q -t ed25519 -N '' -f host_ca; ssh-keygen -q -s "
                                  "host_ca -I test-host -h -n 127.0.0.1 -V -1d:+2d host_key.pub"
                                : "true",
              ";",
              user_certificates_ ? absl::StrCat("ssh-keygen -q -t ed25519 -N '' -f user_ca; "
                                                "ssh-keygen -q -t ed25519 -N '' -f certified_key; "
                                                "ssh-keygen -q -s user_ca -I gitfleet -n ",
                                                LoginUser(), " -V -1d:+2d certified_key.pub")
                                 : "true"),
          &out);
  if (rc != 0) return absl::InternalError(absl::StrCat("cannot make SSH keys: ", out));
  client_key_ = root_ + "/client_key";
  other_key_ = root_ + "/other_key";
  port_ = FreePort();
  std::string host_pub(absl::StripAsciiWhitespace(ReadAll(root_ + "/host_key.pub")));
  // "<type> <key> <comment>" -> "[127.0.0.1]:PORT <type> <key>"
  size_t second_space = host_pub.find(' ', host_pub.find(' ') + 1);
  known_hosts_ = absl::StrCat("[127.0.0.1]:", port_, " ", host_pub.substr(0, second_space));
  if (host_certificate_) {
    std::string ca_pub(absl::StripAsciiWhitespace(ReadAll(root_ + "/host_ca.pub")));
    ca_pub = ca_pub.substr(0, ca_pub.find(' ', ca_pub.find(' ') + 1));
    cert_authority_ = absl::StrCat("@cert-authority [127.0.0.1]:", port_, " ", ca_pub);
  }
  std::ofstream(root_ + "/sshd_config")
      << "Port " << port_ << "\n"
      << "ListenAddress 127.0.0.1\n"
      << "HostKey " << root_ << "/host_key\n"
      << (host_certificate_ ? absl::StrCat("HostCertificate ", root_, "/host_key-cert.pub\n") : "")
      << (user_certificates_ ? absl::StrCat("TrustedUserCAKeys ", root_, "/user_ca.pub\n") : "")
      << "PidFile " << root_ << "/sshd.pid\n"
      << "AuthorizedKeysFile " << root_ << "/authorized_keys\n"
      << "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
      << "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
      << "PubkeyAuthentication yes\nLogLevel VERBOSE\n"
      // Commands are looked for in bin/ first (git-lfs-authenticate), then as usual.
      << "SetEnv PATH=" << root_ << "/bin:/usr/local/bin:/usr/bin:/bin\n";
  mkdir((root_ + "/bin").c_str(), 0755);
  server_ = std::make_unique<Process>(
      kSshd, std::vector<std::string>{"-D", "-e", "-f", root_ + "/sshd_config"},
      root_ + "/sshd.log");
  if (!Listening(port_)) {
    return absl::UnavailableError(absl::StrCat("sshd did not start: ", Log()));
  }
  return absl::OkStatus();
}

std::string SshGitServer::Serve(const std::string& repo_dir, const std::string& name) {
  PublishBare(repo_dir, root_ + "/repos", name);
  return absl::StrCat("ssh://", LoginUser(), "@127.0.0.1:", port_, root_, "/repos/", name, ".git");
}

std::string SshGitServer::Log() const { return ReadAll(root_ + "/sshd.log"); }

void SshGitServer::AnswerLfsAuthenticate(const std::string& answer) {
  const std::string command = root_ + "/bin/git-lfs-authenticate";
  if (answer.empty()) {
    unlink(command.c_str());
    return;
  }
  std::ofstream(answer_path()) << answer;
  std::ofstream(command) << "#!/bin/sh\necho \"$*\" >> '" << root_
                         << "/lfs-authenticate.log'\ncat '" << answer_path() << "'\n";
  chmod(command.c_str(), 0755);
}

std::string SshGitServer::answer_path() const { return root_ + "/lfs-authenticate.json"; }

std::string SshGitServer::LfsAuthenticateLog() const {
  return ReadAll(root_ + "/lfs-authenticate.log");
}

absl::Status StartPythonServer(const std::string& what, const std::string& script,
                               const std::string& path, std::vector<std::string> args,
                               const std::string& log, const std::string& ready,
                               std::unique_ptr<Process>* server) {
  if (access("/usr/bin/python3", X_OK) != 0) {
    return absl::UnavailableError("python3 is not installed");
  }
  std::ofstream(path) << script;
  args.insert(args.begin(), {"-u", path});
  *server = std::make_unique<Process>("/usr/bin/python3", std::move(args), log);
  if ((*server)->WaitForLog(ready).empty()) {
    return absl::UnavailableError(absl::StrCat(what, " did not start: ", (*server)->Log()));
  }
  return absl::OkStatus();
}

}  // namespace gitfleet::testing
