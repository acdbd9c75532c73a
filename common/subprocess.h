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

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
  // And the size of any one file it writes (RLIMIT_FSIZE: a write past it fails, and the
  // child gets SIGXFSZ), 0 for none.
  int64_t max_file_bytes = 0;
  // Called every `check_every` while the child runs, for a bound no resource limit gives
  // (what it wrote over many files): an error kills the child's process group and is what
  // RunSubprocess returns.
  std::function<absl::Status()> check;
  absl::Duration check_every = absl::Milliseconds(250);
};

struct SubprocessResult {
  int exit_code = 0;  // 128 + signal when killed by a signal
  std::string stdout_text;
  std::string stderr_text;
};

// The executable `name` in a folder of the PATH environment variable (/usr/bin:/bin when it
// is unset), as a shell finds it; "" when none holds one.
std::string FindOnPath(const std::string& name);

// NotFound when the program cannot be executed; DeadlineExceeded on timeout;
// ResourceExhausted when stdout passes its limit. A non-zero exit is not an error here.
absl::StatusOr<SubprocessResult> RunSubprocess(const std::vector<std::string>& argv,
                                               const SubprocessOptions& options);

// A program run beside the caller, spoken to through its standard input and output while
// it runs (as git speaks to `ssh`): every wait bounded by a deadline the caller gives, its
// error output kept (the first max_stderr_bytes). The child gets its own process group;
// the destructor kills the group (SIGKILL) and reaps it, unless Wait saw it exit.
// One thread at a time.
//
//   GF_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> ssh, ChildProcess::Start(argv, options));
//   GF_RETURN_IF_ERROR(ssh->Write(request, deadline));
//   GF_ASSIGN_OR_RETURN(size_t n, ssh->Read(buffer, sizeof(buffer), deadline));  // 0: its end
class ChildProcess {
 public:
  // Uses options' cwd, env and max_stderr_bytes (its timeout and limits are the caller's
  // deadlines here). NotFound when the program cannot be executed.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const SubprocessOptions& options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // All of `data` to its standard input. DeadlineExceeded past `deadline`; Unavailable
  // when it has closed its input (exited).
  absl::Status Write(absl::string_view data, absl::Time deadline);
  // Up to `size` bytes of its standard output as soon as some come; 0 at its end.
  // DeadlineExceeded past `deadline`.
  absl::StatusOr<size_t> Read(char* buffer, size_t size, absl::Time deadline);
  // Ends its standard input (it sees end of file).
  void CloseInput();
  // Its exit code once it exits (128 + signal when killed by one); DeadlineExceeded (and
  // the group killed) when it has not by `deadline`.
  absl::StatusOr<int> Wait(absl::Time deadline);
  // What it wrote to its error output so far (bounded).
  const std::string& stderr_text() const { return stderr_text_; }

 private:
  ChildProcess() = default;
  // Polls `fd` for `events` (and keeps draining its error output) until ready, its error
  // output ends with `fd` < 0, or `deadline`. 1 ready, 0 deadline, -1 poll failed.
  int WaitFor(int fd, short events, absl::Time deadline);
  void DrainStderr();

  pid_t pid_ = -1;
  bool reaped_ = false;
  int in_ = -1;  // a socket: a write to a closed end fails instead of raising SIGPIPE
  int out_ = -1;
  int err_ = -1;
  size_t max_stderr_bytes_ = 0;
  std::string stderr_text_;
};

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
