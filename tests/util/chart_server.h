#ifndef GITFLEET_TESTS_UTIL_CHART_SERVER_H_
#define GITFLEET_TESTS_UTIL_CHART_SERVER_H_

// A helm chart repository for tests, on loopback: archives made with tar, an index.yaml
// listing them with their sha256, served by Python's http.server.
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
  // Writes a file of the repository as it is (to break things on purpose).
  void Write(const std::string& path, const std::string& content);
  absl::Status Start();
  std::string url() const;
  const std::string& root() const { return root_; }
  std::string Log() const;

 private:
  absl::Status WriteIndex();

  std::string root_;
  int port_ = 0;
  std::map<std::string, std::map<std::string, std::string>> digests_;  // name → version → sha
  std::unique_ptr<Process> server_;
};

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_CHART_SERVER_H_
