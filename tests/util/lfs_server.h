#ifndef GITFLEET_TESTS_UTIL_LFS_SERVER_H_
#define GITFLEET_TESTS_UTIL_LFS_SERVER_H_

// A Git LFS server for tests, on loopback, as GitHub's works: the batch API at
// /REPO.git/info/lfs/objects/batch (behind basic auth when asked) answers each object with a
// download on "storage" (http://localhost:PORT/storage/OID, another host than 127.0.0.1 for
// a client) that needs the header the answer names for it. Python's http.server; each request
// logged as "METHOD path auth=Basic|RemoteAuth|none".
//
//   LfsServer lfs(TempDir("lfs"));
//   std::string pointer = lfs.AddObject("big manifest...");   // what Git holds instead
//   ASSERT_TRUE(lfs.Start().ok());
//   std::string endpoint = lfs.url() + "org/app.git/info/lfs";

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "tests/util/process.h"

namespace gitfleet::testing {

class LfsServer {
 public:
  explicit LfsServer(std::string root);
  // Stores `content` and returns its LFS pointer file (git-lfs's spec/v1).
  std::string AddObject(const std::string& content);
  // Serves other bytes than `content`'s for its object (to break it on purpose).
  void Corrupt(const std::string& content, const std::string& served);
  // The batch API needs HTTP basic auth with `user`:`password` (before Start).
  void RequireLogin(const std::string& user, const std::string& password) {
    login_ = user + ":" + password;
  }
  // The batch API needs `Authorization: <value>` (what git-lfs-authenticate gave).
  void RequireAuthorization(const std::string& value) { login_ = "header:" + value; }
  // Downloads on the batch API's own host (127.0.0.1), with no header of their own: a
  // client then authenticates them as it does the batch request (before Start).
  void StorageOnSameHost() { same_host_ = true; }
  // Its first `times` batch requests are answered 403 with `Retry-After: SECONDS`, as
  // GitHub's secondary rate limit answers (before Start).
  void RateLimitFirst(int times, int seconds) {
    limited_ = std::to_string(times) + ":" + std::to_string(seconds);
  }
  absl::Status Start();
  std::string url() const;  // http://127.0.0.1:PORT/
  std::string Log() const;

 private:
  std::string root_;
  int port_ = 0;
  std::string login_;
  bool same_host_ = false;
  std::string limited_ = "0:0";
  std::unique_ptr<Process> server_;
};

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_LFS_SERVER_H_
