#ifndef GITFLEET_TESTS_UTIL_CHART_SERVER_H_
#define GITFLEET_TESTS_UTIL_CHART_SERVER_H_

// A helm chart repository for tests, on loopback: archives made with tar, an index.yaml
// listing them with their sha256, served by Python's http.server (behind basic auth when
// asked; each request logged with the kind of Authorization it carried, "auth=none" for
// none).
//
//   ChartRepositoryServer charts(TempDir("charts"));
//   ASSERT_TRUE(charts.AddChart("web", "1.2.0", {{"Chart.yaml", "..."}}).ok());
//   ASSERT_TRUE(charts.Start().ok());
//   std::string repo = charts.url();   // http://127.0.0.1:PORT/

#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "tests/util/process.h"

namespace gitfleet::testing {

class ChartRepositoryServer {
 public:
  explicit ChartRepositoryServer(std::string root);
  // Packages `files` (paths inside the chart) as NAME-VERSION.tgz, a folder NAME in it, and
  // lists it in index.yaml (rewritten; served at once when started).
  absl::Status AddChart(const std::string& name, const std::string& version,
                        const std::map<std::string, std::string>& files);
  // Writes a file of the repository as it is, folders made as needed (to break things on
  // purpose, or serve a second repository in a folder).
  void Write(const std::string& path, const std::string& content);
  // Every request needs HTTP basic auth with `user`:`password` (before Start).
  void RequireLogin(const std::string& user, const std::string& password) {
    login_ = user + ":" + password;
  }
  // Every request needs `Authorization: Bearer TOKEN` instead (before Start).
  void RequireBearer(const std::string& token) { login_ = "Bearer " + token; }
  // Requests under /moved/ are redirected (302) to `target` + the rest, before any login is
  // asked for (before Start).
  void RedirectMoved(const std::string& target) { moved_ = target; }
  // Its first `times` requests are answered 429 with `Retry-After: SECONDS`, as a registry
  // over its pull limit answers (before Start).
  void RateLimitFirst(int times, int seconds) {
    limited_ = std::to_string(times) + ":" + std::to_string(seconds);
  }
  absl::Status Start();
  std::string url() const;
  const std::string& root() const { return root_; }
  std::string Log() const;

 private:
  absl::Status WriteIndex();

  std::string root_;
  int port_ = 0;
  std::string login_;
  std::string moved_;
  std::string limited_ = "0:0";
  std::map<std::string, std::map<std::string, std::string>> digests_;  // name → version → sha
  std::unique_ptr<Process> server_;
};

// An OCI registry for tests, on loopback, serving helm charts as helm pushes them: a
// manifest per tag whose layer is the chart's archive, blobs by digest, a tag list two tags
// a page (each naming the next in a Link header), and every /v2/ request behind an
// anonymous bearer token from its own token service (as ghcr.io and Docker Hub ask for
// public charts). Python's http.server.
//
//   OciRegistryServer registry(TempDir("registry"));
//   ASSERT_TRUE(registry.AddChart("charts/web", "1.2.0", {{"Chart.yaml", "..."}}).ok());
//   ASSERT_TRUE(registry.Start().ok());
//   std::string chart = registry.url() + "charts/web";   // oci://127.0.0.1:PORT/charts/web
class OciRegistryServer {
 public:
  explicit OciRegistryServer(std::string root);
  // Pushes `files` (paths inside the chart, a folder named for the repository's last part)
  // as `repository`:`version` (a "+" in it written "_", as helm tags it).
  absl::Status AddChart(const std::string& repository, const std::string& version,
                        const std::map<std::string, std::string>& files);
  // The tag's manifest is answered 404 `times` more times while the tag is listed, as a
  // registry serves a tag being pushed, or one on an eventually consistent store.
  void LagManifest(const std::string& repository, const std::string& version, int times);
  // Requests need no token (a registry that serves anonymous pulls directly).
  void OpenToAll() { open_ = true; }
  // A private registry: its token service grants a token only for `user`:`password` given
  // as basic auth (ghcr.io's and Docker Hub's way); with BasicOnly(), /v2/ asks for that
  // basic auth itself instead (Amazon ECR's way).
  void RequireLogin(const std::string& user, const std::string& password) {
    login_ = user + ":" + password;
  }
  void BasicOnly() { basic_ = true; }
  absl::Status Start();
  std::string url() const;  // oci://127.0.0.1:PORT/
  std::string Log() const;

 private:
  std::string root_;
  int port_ = 0;
  bool open_ = false;
  bool basic_ = false;
  std::string login_;
  std::unique_ptr<Process> server_;
};

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_CHART_SERVER_H_
