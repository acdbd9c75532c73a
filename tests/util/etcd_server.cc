#include "tests/util/etcd_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "tests/util/git_servers.h"

namespace gitfleet::testing {

absl::StatusOr<std::string> StartEtcd(const std::string& dir, std::unique_ptr<Process>* etcd,
                                      bool tls, const std::vector<std::string>& extra) {
  if (access("/usr/bin/etcd", X_OK) != 0) {
    return absl::FailedPreconditionError(
        "etcd is not installed: tools/setup installs Debian's etcd-server");
  }
  mkdir(dir.c_str(), 0700);
  const std::string client = absl::StrCat(tls ? "https" : "http", "://127.0.0.1:", FreePort());
  const std::string peer = absl::StrCat("http://127.0.0.1:", FreePort());
  std::vector<std::string> args = {"--name=test",
                                   "--data-dir=" + dir + "/data",
                                   "--listen-client-urls=" + client,
                                   "--advertise-client-urls=" + client,
                                   "--listen-peer-urls=" + peer,
                                   "--initial-advertise-peer-urls=" + peer,
                                   "--initial-cluster=test=" + peer,
                                   "--logger=zap"};
  args.insert(args.end(), extra.begin(), extra.end());
  *etcd = std::make_unique<Process>("/usr/bin/etcd", args, dir + "/etcd.log");
  if ((*etcd)->WaitForLog("serving client traffic", absl::Seconds(30)).empty()) {
    return absl::UnavailableError(absl::StrCat("etcd did not start:\n", (*etcd)->Log()));
  }
  return client;
}

}  // namespace gitfleet::testing
