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
  std::ofstream(root_ + "/www/" + path, std::ios::binary) << content;
}

absl::Status ChartRepositoryServer::AddChart(const std::string& name, const std::string& version,
                                             const std::map<std::string, std::string>& files) {
  const std::string staging = absl::StrCat(root_, "/staging-", name, "-", version);
  std::filesystem::remove_all(staging);
  for (const auto& [path, content] : files) {
    const std::string full = absl::StrCat(staging, "/", name, "/", path);
    std::filesystem::create_directories(std::filesystem::path(full).parent_path());
    std::ofstream(full, std::ios::binary) << content;
  }
  const std::string archive = absl::StrCat(root_, "/www/", name, "-", version, ".tgz");
  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin"};
  absl::StatusOr<SubprocessResult> tar =
      RunSubprocess({"/bin/tar", "-C", staging, "-czf", archive, name}, options);
  if (!tar.ok()) return tar.status();
  if (tar->exit_code != 0) return absl::InternalError("tar: " + tar->stderr_text);
  std::ifstream in(archive, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  digests_[name][version] = absl::BytesToHexString(crypto::Sha256(bytes.str()));
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

absl::Status ChartRepositoryServer::Start() {
  if (access("/usr/bin/python3", X_OK) != 0) {
    return absl::UnavailableError("python3 is not installed");
  }
  port_ = FreePort();
  server_ = std::make_unique<Process>(
      "/usr/bin/python3",
      std::vector<std::string>{"-u", "-m", "http.server", std::to_string(port_), "--bind",
                               "127.0.0.1", "--directory", root_ + "/www"},
      root_ + "/server.log");
  if (server_->WaitForLog("Serving HTTP").empty()) {
    return absl::UnavailableError("the chart server did not start: " + server_->Log());
  }
  return absl::OkStatus();
}

std::string ChartRepositoryServer::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/");
}

std::string ChartRepositoryServer::Log() const { return server_ ? server_->Log() : ""; }

}  // namespace gitfleet::testing
