#include "tests/util/oci_registry.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/util/git_servers.h"  // FreePort

namespace gitfleet::testing {
namespace {

// helm push's requests (see PushCharts); argv: base URL, repository, user, password,
// versions.
constexpr char kPush[] = R"(
import base64, hashlib, io, json, sys, tarfile, urllib.request
base, repo, user, password = sys.argv[1:5]
name = repo.rsplit('/', 1)[-1]
login = {'Authorization': 'Basic ' + base64.b64encode((user + ':' + password).encode()).decode()} if user else {}
def blob(data):
    digest = 'sha256:' + hashlib.sha256(data).hexdigest()
    r = urllib.request.urlopen(urllib.request.Request(base + '/v2/' + repo + '/blobs/uploads/', method='POST', headers=login))
    loc = r.headers['Location']
    loc = (base + loc if loc.startswith('/') else loc) + ('&' if '?' in loc else '?') + 'digest=' + digest
    urllib.request.urlopen(urllib.request.Request(
        loc, data=data, method='PUT', headers=dict(login, **{'Content-Type': 'application/octet-stream'})))
    return {'digest': digest, 'size': len(data)}
for version in sys.argv[5:]:
    b = io.BytesIO(); t = tarfile.open(fileobj=b, mode='w:gz')
    for path, data in [(name + '/Chart.yaml', ('apiVersion: v2\nname: ' + name + '\nversion: ' + version + '\n').encode()),
                       (name + '/templates/cm.yaml', b'kind: ConfigMap\n')]:
        i = tarfile.TarInfo(path); i.size = len(data); t.addfile(i, io.BytesIO(data))
    t.close()
    config = json.dumps({'name': name, 'version': version, 'apiVersion': 'v2'}).encode()
    manifest = {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
                'config': dict(blob(config), mediaType='application/vnd.cncf.helm.config.v1+json'),
                'layers': [dict(blob(b.getvalue()), mediaType='application/vnd.cncf.helm.chart.content.v1.tar+gzip')]}
    urllib.request.urlopen(urllib.request.Request(
        base + '/v2/' + repo + '/manifests/' + version.replace('+', '_'), data=json.dumps(manifest).encode(),
        method='PUT', headers=dict(login, **{'Content-Type': 'application/vnd.oci.image.manifest.v1+json'})))
)";

// Runs `argv` (no shell), its output into `out`; its exit code, or -1 when it cannot run.
int Run(const std::vector<std::string>& argv, std::string* out) {
  std::string command;
  for (const std::string& arg : argv) {
    std::string quoted = "'";
    for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    absl::StrAppend(&command, quoted, "' ");
  }
  absl::StrAppend(&command, "2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out->append(buffer, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

bool DistributionRegistry::Installed() {
  return access("/usr/bin/docker-registry", X_OK) == 0 && access("/usr/bin/python3", X_OK) == 0;
}

absl::Status DistributionRegistry::Start(const Options& options) {
  if (!Installed()) {
    return absl::FailedPreconditionError(
        "docker-registry or python3 is not installed (tools/setup)");
  }
  options_ = options;
  port_ = options.port > 0 ? options.port : FreePort();
  if (port_ <= 0) return absl::UnavailableError("no free port");
  std::ostringstream config;
  config << "version: 0.1\nstorage:\n  filesystem: {rootdirectory: " << dir_
         << "/data}\nhttp:\n  addr: 127.0.0.1:" << port_ << "\n";
  if (!options.user.empty()) {
    // Its htpasswd: bcrypt, as htpasswd -B writes it.
    std::string hashed;
    if (Run({"/usr/bin/python3", "-c",
             "import crypt, sys; print(sys.argv[1] + ':' + crypt.crypt(sys.argv[2], "
             "crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
             options.user, options.password},
            &hashed) != 0) {
      return absl::InternalError(absl::StrCat("cannot hash the password: ", hashed));
    }
    std::ofstream(dir_ + "/htpasswd") << hashed;
    config << "auth:\n  htpasswd: {realm: charts, path: " << dir_ << "/htpasswd}\n";
  }
  if (!options.notify_url.empty()) {
    // Sent at once (a short backoff on failure), pulls left out as an operator would.
    config << "notifications:\n  endpoints:\n  - name: gitfleet\n    url: " << options.notify_url
           << "\n    timeout: 2s\n    threshold: 1\n    backoff: 1s\n";
    if (!options.notify_authorization.empty()) {
      config << "    headers:\n      Authorization: ['" << options.notify_authorization << "']\n";
    }
    config << "    ignore:\n      actions: [pull]\n";
  }
  std::ofstream(dir_ + "/config.yml") << config.str();
  process_ = std::make_unique<Process>("/usr/bin/docker-registry",
                                       std::vector<std::string>{"serve", dir_ + "/config.yml"},
                                       dir_ + "/registry.log");
  if (process_->WaitForLog("listening on").empty()) {
    return absl::UnavailableError(absl::StrCat("docker-registry did not start: ", Log()));
  }
  return absl::OkStatus();
}

absl::Status DistributionRegistry::PushCharts(const std::string& repository,
                                              const std::vector<std::string>& versions) {
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   "-c",
                                   kPush,
                                   absl::StrCat("http://127.0.0.1:", port_),
                                   repository,
                                   options_.user,
                                   options_.password};
  argv.insert(argv.end(), versions.begin(), versions.end());
  std::string out;
  if (Run(argv, &out) != 0) {
    return absl::InternalError(absl::StrCat("pushing ", repository, " failed: ", out, Log()));
  }
  return absl::OkStatus();
}

}  // namespace gitfleet::testing
