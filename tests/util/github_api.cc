#include "tests/util/github_api.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/util/git_fixture.h"
#include "tests/util/git_servers.h"

namespace gitfleet::testing {
namespace {

constexpr char kGitHubApiScript[] = R"py(
import base64, http.server, json, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
port, public_key, app, installation, token = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
key = serialization.load_pem_public_key(open(public_key, "rb").read())
def unbase64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
class Api(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        given = self.headers.get("Authorization", "")
        good = False
        try:
            header, claims, signature = given[len("Bearer "):].split(".")
            key.verify(unbase64(signature), (header + "." + claims).encode(), padding.PKCS1v15(),
                       hashes.SHA256())
            header, claims, now = json.loads(unbase64(header)), json.loads(unbase64(claims)), time.time()
            good = (given.startswith("Bearer ") and header.get("alg") == "RS256" and
                    str(claims["iss"]) == app and claims["iat"] <= now < claims["exp"] and
                    claims["exp"] - claims["iat"] <= 600)
        except Exception as e:
            sys.stderr.write("bad JWT: %r\n" % e)
        sys.stderr.write("POST %s jwt=%s\n" % (self.path, "ok" if good else "bad"))
        if not good:
            code, body = 401, {"message": "A JSON web token could not be decoded"}
        elif self.path != "/api/v3/app/installations/%s/access_tokens" % installation:
            code, body = 404, {"message": "Not Found"}
        else:
            code, body = 201, {"token": token, "expires_at": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, format, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Api)
print("Serving GitHub", flush=True)
server.serve_forever()
)py";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

FakeGitHubApi::FakeGitHubApi(std::string root) : root_(std::move(root)) {}

absl::Status FakeGitHubApi::Start(const std::string& app_id, const std::string& installation_id,
                                  const std::string& token) {
  if (Run("python3 -c 'import cryptography' 2>/dev/null") != 0) {
    return absl::UnavailableError("python3's cryptography module is not installed");
  }
  std::string out;
  if (Run(absl::StrCat("set -e; cd '", root_,
                       "'; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "
                       "app.pem 2>/dev/null; openssl pkey -in app.pem -pubout -out app.pub;"
                       "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "
                       "other.pem 2>/dev/null"),
          &out) != 0) {
    return absl::InternalError(absl::StrCat("cannot make the App's key: ", out));
  }
  key_ = ReadAll(root_ + "/app.pem");
  other_key_ = ReadAll(root_ + "/other.pem");
  port_ = FreePort();
  return StartPythonServer(
      "the GitHub API", kGitHubApiScript, root_ + "/github.py",
      {std::to_string(port_), root_ + "/app.pub", app_id, installation_id, token},
      root_ + "/github.log", "Serving GitHub", &server_);
}

std::string FakeGitHubApi::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/api/v3");
}

std::string FakeGitHubApi::Log() const { return server_ ? server_->Log() : ""; }

}  // namespace gitfleet::testing
