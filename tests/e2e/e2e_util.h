#ifndef GITFLEET_TESTS_E2E_E2E_UTIL_H_
#define GITFLEET_TESTS_E2E_E2E_UTIL_H_

// What every end-to-end test shares: where the binaries are (in the test's runfiles),
// reading a port from a log line, and running gitfleetctl against a control plane.

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "tests/util/git_fixture.h"

namespace gitfleet::testing {

inline constexpr char kControlPlane[] = "controlplane/gitfleet-controlplane";
inline constexpr char kAgent[] = "agent/gitfleet-agent";
inline constexpr char kCtl[] = "cli/gitfleetctl";
inline constexpr char kFakeApiServer[] = "tests/fakekube/fake-kube-apiserver";

// The port in `text` (as Process::WaitForLog captured it), or 0.
inline int Port(const std::string& text) {
  int port = 0;
  return absl::SimpleAtoi(text, &port) ? port : 0;
}

enum class CtlOutput { kStdout, kStdoutAndStderr };

// Runs gitfleetctl against the control plane on 127.0.0.1:`grpc_port`; returns what it
// printed, and its exit code in `code`.
inline std::string RunCtl(int grpc_port, const std::vector<std::string>& args, int* code = nullptr,
                          CtlOutput output = CtlOutput::kStdout) {
  std::string command = absl::StrCat(kCtl, " --server=127.0.0.1:", grpc_port);
  for (const std::string& a : args) absl::StrAppend(&command, " ", ShellWord(a));
  if (output == CtlOutput::kStdoutAndStderr) absl::StrAppend(&command, " 2>&1");
  std::string out;
  const int rc = Run(command, &out);
  if (code != nullptr) *code = rc;
  return out;
}

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_E2E_E2E_UTIL_H_
