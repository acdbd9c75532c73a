#ifndef GITFLEET_TESTS_UTIL_OCI_REGISTRY_H_
#define GITFLEET_TESTS_UTIL_OCI_REGISTRY_H_

// A registry someone else wrote, for tests of charts in OCI registries: Debian's
// docker-registry (CNCF Distribution 2.8) on loopback, charts pushed to it as `helm push`
// pushes them.
//
//   testing::DistributionRegistry registry(TempDir("registry"));
//   ASSERT_TRUE(registry.Start({.user = "bob", .password = "hunter2"}).ok());
//   ASSERT_TRUE(registry.PushCharts("charts/web", {"1.0.0", "1.2.0"}).ok());
//   // oci://127.0.0.1:PORT/charts/web

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/util/process.h"

namespace gitfleet::testing {

class DistributionRegistry {
 public:
  struct Options {
    // Basic auth (an htpasswd of one user) when set; anonymous otherwise.
    std::string user;
    std::string password;
    // Where it notifies of pushes and pulls (its `notifications` endpoint), with this
    // Authorization header; none when empty.
    std::string notify_url;
    std::string notify_authorization;
    int port = 0;  // on loopback; 0: a free one
  };
  explicit DistributionRegistry(std::string dir) : dir_(std::move(dir)) {}

  // Whether docker-registry and python3 (which pushes) are installed.
  static bool Installed();
  // Starts it and waits until it listens. FailedPrecondition when it is not installed.
  absl::Status Start(const Options& options);
  // Pushes a chart NAME (the repository's last part) at each version, as helm does: each
  // blob uploaded (POST, then PUT with its digest), then the manifest under the version's
  // tag (a "+" written "_"). The chart holds Chart.yaml and templates/cm.yaml.
  absl::Status PushCharts(const std::string& repository, const std::vector<std::string>& versions);

  int port() const { return port_; }
  std::string Log() const { return process_ == nullptr ? "" : process_->Log(); }

 private:
  const std::string dir_;
  Options options_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_OCI_REGISTRY_H_
