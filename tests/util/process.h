#ifndef GITFLEET_TESTS_UTIL_PROCESS_H_
#define GITFLEET_TESTS_UTIL_PROCESS_H_

// A child process for end-to-end tests: output goes to a log file; the process is
// killed and reaped on destruction.
//
//   Process cp("controlplane/gitfleet-controlplane", {"--data-dir=" + dir}, log_path);
//   std::string port = cp.WaitForLog(R"(gRPC on port (\d+))");

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace gitfleet::testing {

class Process {
 public:
  Process(const std::string& binary, const std::vector<std::string>& args,
          const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Sends `signal` and waits for the exit; returns the raw wait status.
  int Kill(int signal);
  bool running();
  // Waits (at most `timeout`) for the process to exit on its own; its raw wait status, or
  // nullopt when it is still running.
  std::optional<int> WaitForExit(absl::Duration timeout);
  // Waits until the log matches `pattern` (ECMAScript regex) and returns the first
  // capture group (or the whole match). Empty on timeout or exit.
  std::string WaitForLog(const std::string& pattern, absl::Duration timeout = absl::Seconds(20));
  std::string Log() const;
  int CountInLog(const std::string& needle) const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// Polls `condition` every 50 ms until it is true or `timeout` passes.
bool Eventually(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(20));

// GET http://127.0.0.1:port/path; the body, or empty on error. `status`, when given,
// receives the HTTP status code (0 on error).
std::string HttpGet(int port, const std::string& path, int* status = nullptr);
// Any method, with headers and a body, the same way.
std::string HttpRequest(int port, const std::string& method, const std::string& path,
                        const std::map<std::string, std::string>& headers, const std::string& body,
                        int* status = nullptr);

// A TCP connection to 127.0.0.1:port (a descriptor the caller closes); -1 on error.
int ConnectLoopback(int port);
// Reads what the peer sent on `fd` into `received`, without waiting; true once the peer
// has closed (or reset) the connection.
bool ClosedByPeer(int fd, std::string* received);

// The value of a metric line such as `name{labels} value` in Prometheus text; -1 when
// absent.
double MetricValue(const std::string& text, const std::string& series);

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_PROCESS_H_
