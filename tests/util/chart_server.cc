#include "tests/util/chart_server.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/subprocess.h"
#include "tests/util/git_servers.h"

namespace gitfleet::testing {

ChartRepositoryServer::ChartRepositoryServer(std::string root) : root_(std::move(root)) {
  std::filesystem::create_directories(root_ + "/www");
}

void ChartRepositoryServer::Write(const std::string& path, const std::string& content) {
  const std::filesystem::path file = std::filesystem::path(root_ + "/www/" + path);
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << content;
}

namespace {

// Packages `files` (paths inside the chart) as helm packages a chart: a folder `name` in a
// gzipped tar at `archive`, staged under `root`. The archive's bytes.
absl::StatusOr<std::string> PackChart(const std::string& root, const std::string& name,
                                      const std::string& version,
                                      const std::map<std::string, std::string>& files,
                                      const std::string& archive) {
  const std::string staging = absl::StrCat(root, "/staging-", name, "-", version);
  std::filesystem::remove_all(staging);
  for (const auto& [path, content] : files) {
    const std::string full = absl::StrCat(staging, "/", name, "/", path);
    std::filesystem::create_directories(std::filesystem::path(full).parent_path());
    std::ofstream(full, std::ios::binary) << content;
  }
  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin"};
  absl::StatusOr<SubprocessResult> tar =
      RunSubprocess({"/bin/tar", "-C", staging, "-czf", archive, name}, options);
  if (!tar.ok()) return tar.status();
  if (tar->exit_code != 0) return absl::InternalError("tar: " + tar->stderr_text);
  std::ifstream in(archive, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

absl::Status ChartRepositoryServer::AddChart(const std::string& name, const std::string& version,
                                             const std::map<std::string, std::string>& files) {
  absl::StatusOr<std::string> bytes = PackChart(
      root_, name, version, files, absl::StrCat(root_, "/www/", name, "-", version, ".tgz"));
  if (!bytes.ok()) return bytes.status();
  digests_[name][version] = absl::BytesToHexString(crypto::Sha256(*bytes));
  return WriteIndex();
}

absl::Status ChartRepositoryServer::WriteIndex() {
  std::string index = "apiVersion: v1\nentries:\n";
  for (const auto& [name, versions] : digests_) {
    absl::StrAppend(&index, "  ", name, ":\n");
    for (const auto& [version, digest] : versions) {
      absl::StrAppend(&index, "  - name: ", name, "\n    version: ", version, "\n    urls: [", name,
                      "-", version, ".tgz]\n    digest: ", digest, "\n");
    }
  }
  Write("index.yaml", index);
  return absl::OkStatus();
}

namespace {

// The chart repository: static files, each request logged with what it authenticated with
// ("auth=Basic …" or "auth=none"), behind basic auth when given a login.
constexpr char kChartRepositoryScript[] = R"py(
import base64, http.server, sys
root, port, login, moved = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
limited = [int(n) for n in sys.argv[5].split(":")]
expected = login if login.startswith("Bearer ") else "Basic " + base64.b64encode(login.encode()).decode()
class Charts(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=root, **kwargs)
    def do_GET(self):
        given = self.headers.get("Authorization")
        sys.stderr.write("GET %s auth=%s\n" % (self.path, given.split(" ")[0] if given else "none"))
        if limited[0] > 0:
            limited[0] -= 1
            self.send_response(429)
            self.send_header("Retry-After", str(limited[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if moved and self.path.startswith("/moved/"):
            self.send_response(302)
            self.send_header("Location", moved + self.path[len("/moved/"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if login and given != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="charts"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        return super().do_GET()
    def log_message(self, format, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Charts)
print("Serving HTTP", flush=True)
server.serve_forever()
)py";

}  // namespace

absl::Status ChartRepositoryServer::Start() {
  port_ = FreePort();
  return StartPythonServer("the chart server", kChartRepositoryScript, root_ + "/charts.py",
                           {root_ + "/www", std::to_string(port_), login_, moved_, limited_},
                           root_ + "/server.log", "Serving HTTP", &server_);
}

std::string ChartRepositoryServer::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/");
}

std::string ChartRepositoryServer::Log() const { return server_ ? server_->Log() : ""; }

namespace {

// The registry: /token gives a token for any scope; /v2/... needs it unless open.
constexpr char kRegistryScript[] = R"py(
import base64, http.server, json, os, sys
root, port, mode, login = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
open_to_all = mode == "open"
TOKEN = "granted-token" if login else "anonymous-token"
BASIC = "Basic " + base64.b64encode(login.encode()).decode()
class Registry(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body=b"", kind="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        path, _, query = self.path.partition("?")
        given = self.headers.get("Authorization")
        sys.stderr.write("GET %s auth=%s\n" % (path, given.split(" ")[0] if given else "none"))
        if path == "/token":
            if login and given != BASIC:
                return self.answer(401, b"{}", headers=[("WWW-Authenticate", 'Basic realm="token"')])
            return self.answer(200, json.dumps({"token": TOKEN}).encode())
        if not path.startswith("/v2/"):
            return self.answer(404)
        if mode == "basic" and given != BASIC:
            return self.answer(401, b"{}", headers=[("WWW-Authenticate", 'Basic realm="registry"')])
        if mode == "token" and given != "Bearer " + TOKEN:
            realm = "http://127.0.0.1:%d/token" % port
            return self.answer(401, b"{}", headers=[("WWW-Authenticate",
                'Bearer realm="%s",service="test-registry",scope="repository:x:pull"' % realm)])
        rest = path[len("/v2/"):]
        for marker, folder in (("/manifests/", "manifests"), ("/blobs/", "blobs")):
            if marker in rest:
                repository, name = rest.split(marker, 1)
                file = os.path.join(root, folder, name if folder == "blobs" else
                                    repository.replace("/", "_") + ":" + name)
                if not os.path.isfile(file):
                    return self.answer(404)
                lag = file + ".lag"  # answered 404 this many more times (LagManifest)
                if os.path.isfile(lag):
                    left = int(open(lag).read() or "0")
                    if left > 0:
                        open(lag, "w").write(str(left - 1))
                        return self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                kind = ("application/vnd.oci.image.manifest.v1+json" if folder == "manifests"
                        else "application/octet-stream")
                return self.answer(200, open(file, "rb").read(), kind)
        if rest.endswith("/tags/list"):
            repository = rest[:-len("/tags/list")]
            prefix = repository.replace("/", "_") + ":"
            tags = sorted(f[len(prefix):] for f in os.listdir(os.path.join(root, "manifests"))
                          if f.startswith(prefix) and not f.endswith(".lag"))
            if not tags:
                return self.answer(404)
            # Two tags a page, the next named in a Link header, as registries page them.
            last = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("last")
            if last is not None:
                tags = [t for t in tags if t > last]
            page, rest = tags[:2], tags[2:]
            headers = []
            if rest:
                headers.append(("Link", '</v2/%s/tags/list?n=2&last=%s>; rel="next"'
                                % (repository, page[-1])))
            return self.answer(200, json.dumps({"name": repository, "tags": page}).encode(),
                               headers=headers)
        return self.answer(404)
    def log_message(self, format, *args):
        sys.stderr.write("%s\n" % (format % args))
server = http.server.HTTPServer(("127.0.0.1", port), Registry)
print("Serving registry", flush=True)
server.serve_forever()
)py";

}  // namespace

OciRegistryServer::OciRegistryServer(std::string root) : root_(std::move(root)) {
  std::filesystem::create_directories(root_ + "/manifests");
  std::filesystem::create_directories(root_ + "/blobs");
}

absl::Status OciRegistryServer::AddChart(const std::string& repository, const std::string& version,
                                         const std::map<std::string, std::string>& files) {
  const std::string name = repository.substr(repository.rfind('/') + 1);
  absl::StatusOr<std::string> packed = PackChart(
      root_, name, version, files, absl::StrCat(root_, "/staging-", name, "-", version, ".tgz"));
  if (!packed.ok()) return packed.status();
  const std::string& bytes = *packed;
  const std::string layer = "sha256:" + absl::BytesToHexString(crypto::Sha256(bytes));
  std::ofstream(absl::StrCat(root_, "/blobs/", layer), std::ios::binary) << bytes;
  const std::string config = "{}";
  const std::string config_digest = "sha256:" + absl::BytesToHexString(crypto::Sha256(config));
  std::ofstream(absl::StrCat(root_, "/blobs/", config_digest), std::ios::binary) << config;
  std::string tag = version;
  for (char& c : tag) c = c == '+' ? '_' : c;
  std::string slug = repository;
  for (char& c : slug) c = c == '/' ? '_' : c;
  std::ofstream(absl::StrCat(root_, "/manifests/", slug, ":", tag), std::ios::binary)
      << absl::StrCat(
             R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)",
             R"("config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":")",
             config_digest, R"(","size":2},"layers":[{"mediaType":)",
             R"("application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":")", layer,
             R"(","size":)", bytes.size(), "}]}");
  return absl::OkStatus();
}

void OciRegistryServer::LagManifest(const std::string& repository, const std::string& version,
                                    int times) {
  std::string tag = version;
  for (char& c : tag) c = c == '+' ? '_' : c;
  std::string slug = repository;
  for (char& c : slug) c = c == '/' ? '_' : c;
  std::ofstream(absl::StrCat(root_, "/manifests/", slug, ":", tag, ".lag")) << times;
}

absl::Status OciRegistryServer::Start() {
  port_ = FreePort();
  return StartPythonServer("the registry", kRegistryScript, root_ + "/registry.py",
                           {root_, std::to_string(port_),
                            open_    ? "open"
                            : basic_ ? "basic"
                                     : "token",
                            login_},
                           root_ + "/server.log", "Serving registry", &server_);
}

std::string OciRegistryServer::url() const { return absl::StrCat("oci://127.0.0.1:", port_, "/"); }

std::string OciRegistryServer::Log() const { return server_ ? server_->Log() : ""; }

}  // namespace gitfleet::testing
