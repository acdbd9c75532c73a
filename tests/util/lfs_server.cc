#include "tests/util/lfs_server.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "tests/util/git_servers.h"

namespace gitfleet::testing {
namespace {

constexpr char kLfsScript[] = R"py(
import base64, http.server, json, os, sys
root, port, login, same_host = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "same"
limited = [int(n) for n in sys.argv[5].split(":")]
token = "RemoteAuth s3cr3t-download-token"
class Lfs(http.server.BaseHTTPRequestHandler):
    def auth(self):
        given = self.headers.get("Authorization")
        return given.split(" ")[0] if given else "none"
    def reply(self, code, body, kind="application/vnd.git-lfs+json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        if code == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="lfs"')
        self.end_headers()
        self.wfile.write(data)
    def basic_ok(self):
        if login.startswith("header:"):
            return self.headers.get("Authorization") == login[len("header:"):]
        return not login or self.headers.get("Authorization") == \
            "Basic " + base64.b64encode(login.encode()).decode()
    def do_POST(self):
        sys.stderr.write("POST %s auth=%s\n" % (self.path, self.auth()))
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        if not self.path.endswith("/info/lfs/objects/batch"):
            return self.reply(404, {"message": "not found"})
        if not self.basic_ok():
            return self.reply(401, {"message": "credentials needed"})
        if limited[0] > 0:
            limited[0] -= 1
            data = json.dumps({"message": "You have exceeded a secondary rate limit"}).encode()
            self.send_response(403)
            self.send_header("Retry-After", str(limited[1]))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        objects = []
        for o in body.get("objects", []):
            oid = o["oid"]
            if not os.path.exists(os.path.join(root, "objects", oid)):
                objects.append({"oid": oid, "size": o["size"],
                                "error": {"code": 404, "message": "Object does not exist"}})
                continue
            host = "127.0.0.1" if same_host else "localhost"
            download = {"href": "http://%s:%d/storage/%s" % (host, port, oid)}
            if not same_host:
                download["header"] = {"Authorization": token}
            objects.append({"oid": oid, "size": o["size"], "authenticated": True,
                            "actions": {"download": download}})
        self.reply(200, {"transfer": "basic", "objects": objects})
    def do_GET(self):
        sys.stderr.write("GET %s auth=%s\n" % (self.path, self.auth()))
        oid = self.path.rsplit("/", 1)[-1]
        if not self.path.startswith("/storage/") or "/" in oid or not oid:
            return self.reply(404, b"", "text/plain")
        ok = self.basic_ok() if same_host else self.headers.get("Authorization") == token
        if not ok:
            return self.reply(403, b"", "text/plain")
        name = os.path.join(root, "served", oid)
        if not os.path.exists(name):
            name = os.path.join(root, "objects", oid)
        with open(name, "rb") as f:
            self.reply(200, f.read(), "application/octet-stream")
    def log_message(self, format, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Lfs)
print("Serving LFS", flush=True)
server.serve_forever()
)py";

std::string Oid(const std::string& content) {
  return absl::BytesToHexString(crypto::Sha256(content));
}

}  // namespace

LfsServer::LfsServer(std::string root) : root_(std::move(root)) {
  std::filesystem::create_directories(root_ + "/objects");
  std::filesystem::create_directories(root_ + "/served");
}

std::string LfsServer::AddObject(const std::string& content) {
  const std::string oid = Oid(content);
  std::ofstream(root_ + "/objects/" + oid, std::ios::binary) << content;
  return absl::StrCat("version https://git-lfs.github.com/spec/v1\noid sha256:", oid, "\nsize ",
                      content.size(), "\n");
}

void LfsServer::Corrupt(const std::string& content, const std::string& served) {
  std::ofstream(root_ + "/served/" + Oid(content), std::ios::binary) << served;
}

absl::Status LfsServer::Start() {
  port_ = FreePort();
  return StartPythonServer(
      "the LFS server", kLfsScript, root_ + "/lfs.py",
      {root_, std::to_string(port_), login_, same_host_ ? "same" : "other", limited_},
      root_ + "/server.log", "Serving LFS", &server_);
}

std::string LfsServer::url() const { return absl::StrCat("http://127.0.0.1:", port_, "/"); }

std::string LfsServer::Log() const { return server_ ? server_->Log() : ""; }

}  // namespace gitfleet::testing
