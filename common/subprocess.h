#ifndef GITFLEET_COMMON_SUBPROCESS_H_
#define GITFLEET_COMMON_SUBPROCESS_H_

// Runs a program to completion with a deadline, a chosen environment and bounded output.
//
//   SubprocessOptions options;
//   options.timeout = absl::Seconds(30);
//   GF_ASSIGN_OR_RETURN(SubprocessResult r, RunSubprocess({"/usr/bin/kubectl", "kustomize",
//                                                           dir}, options));
//
// The child gets its own process group; on timeout or too much output the whole group is
// killed (SIGKILL) and reaped, so nothing it started is left behind. Thread-safe.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gitfleet {

struct SubprocessOptions {
  std::string cwd;               // empty: inherit
  std::vector<std::string> env;  // the child's whole environment ("K=V")
  absl::Duration timeout = absl::Seconds(60);
  size_t max_stdout_bytes = 64 << 20;
  size_t max_stderr_bytes = 64 << 10;  // beyond this stderr is truncated, not fatal
  // Resource limits on the child, 0 for none: its data segment (RLIMIT_DATA: heap and
  // private mappings it writes; a Go runtime's address-space reservations do not count) and
  // its CPU seconds (RLIMIT_CPU, over all its threads). Set right after the spawn.
  int64_t max_memory_bytes = 0;
  absl::Duration max_cpu = absl::ZeroDuration();
};

struct SubprocessResult {
  int exit_code = 0;  // 128 + signal when killed by a signal
  std::string stdout_text;
  std::string stderr_text;
};

// NotFound when the program cannot be executed; DeadlineExceeded on timeout;
// ResourceExhausted when stdout passes its limit. A non-zero exit is not an error here.
absl::StatusOr<SubprocessResult> RunSubprocess(const std::vector<std::string>& argv,
                                               const SubprocessOptions& options);

// Runs `work` in a forked child, which sees this process's memory as it was at the fork
// (copy-on-write, nothing serialized), and returns the bytes it produced. For in-process
// libraries that cannot be interrupted (libjsonnet): on timeout or too much output the
// child is killed. `work` runs in a copy of a multi-threaded process, so it must only
// compute: no locks other threads may hold, no threads, no logging. It allocates, so the
// allocator must be fork-safe: glibc's malloc and jemalloc are (they hold their locks
// across fork); the AddressSanitizer allocator of Debian's GCC 12 is not, and under
// --config=asan a child forked while another thread allocates can hang until its
// timeout kills it. DeadlineExceeded,
// ResourceExhausted, or Internal when the child dies (the signal is named).
absl::StatusOr<std::string> RunInChild(const std::function<std::string()>& work,
                                       absl::Duration timeout, size_t max_output_bytes,
                                       int64_t max_memory_bytes = 0);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_SUBPROCESS_H_
