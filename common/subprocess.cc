#include "common/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/clock.h"

namespace gitfleet {
namespace {

struct Pipe {
  int read = -1;
  int write = -1;
  ~Pipe() {
    if (read >= 0) close(read);
    if (write >= 0) close(write);
  }
};

absl::Status MakePipe(Pipe* p) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  p->read = fds[0];
  p->write = fds[1];
  return absl::OkStatus();
}

constexpr char kPrlimit[] = "/usr/bin/prlimit";

// Starts `command` in a process group of its own, its signals as a fresh process has them
// (the daemons block SIGTERM; the child must not), reading standard input from `in` (or
// /dev/null when -1) and writing to `out` and `err`, in `cwd` (unless empty), with `env`
// alone. Its pid, or NotFound naming `what` when it cannot be started.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& command,
                            const std::vector<std::string>& env, const std::string& cwd, int in,
                            int out, int err, const std::string& what) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (in >= 0) {
    posix_spawn_file_actions_adddup2(&actions, in, STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err, STDERR_FILENO);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  std::vector<char*> args;
  for (const std::string& a : command) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid;
  const int rc = posix_spawn(&pid, command[0].c_str(), &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return absl::NotFoundError(absl::StrCat("cannot run ", what, ": ", strerror(rc)));
  return pid;
}

}  // namespace

std::string FindOnPath(const std::string& name) {
  const char* path = getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr && *path != '\0' ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<SubprocessResult> RunSubprocess(const std::vector<std::string>& argv,
                                               const SubprocessOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("no program to run");
  if (access(argv[0].c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot execute ", argv[0], ": ", strerror(errno)));
  }
  Pipe out, err;
  if (absl::Status s = MakePipe(&out); !s.ok()) return s;
  if (absl::Status s = MakePipe(&err); !s.ok()) return s;

  // The limits must hold from the child's first instruction. Set with prlimit(2) on the
  // spawned pid, they raced a fast child (dd had allocated 256 MiB before its 64 MiB
  // limit landed), so util-linux's prlimit(1), Essential in Debian, sets them and then
  // executes the program itself: same pid, exit status and signals.
  std::vector<std::string> command;
  if (options.max_memory_bytes > 0 || options.max_cpu > absl::ZeroDuration() ||
      options.max_file_bytes > 0) {
    command.push_back(kPrlimit);
    if (options.max_file_bytes > 0) {
      command.push_back(
          absl::StrCat("--fsize=", options.max_file_bytes, ":", options.max_file_bytes));
    }
    if (options.max_memory_bytes > 0) {
      command.push_back(
          absl::StrCat("--data=", options.max_memory_bytes, ":", options.max_memory_bytes));
    }
    if (options.max_cpu > absl::ZeroDuration()) {
      // SIGXCPU at the limit, SIGKILL a second later.
      int64_t seconds = std::max<int64_t>(1, absl::ToInt64Seconds(options.max_cpu));
      command.push_back(absl::StrCat("--cpu=", seconds, ":", seconds + 1));
    }
    command.push_back("--");
  }
  command.insert(command.end(), argv.begin(), argv.end());
  absl::StatusOr<pid_t> spawned =
      Spawn(command, options.env, options.cwd, -1, out.write, err.write, argv[0]);
  if (!spawned.ok()) return spawned.status();
  const pid_t pid = *spawned;
  close(out.write);
  out.write = -1;
  close(err.write);
  err.write = -1;

  SubprocessResult result;
  absl::Status status;
  absl::Time deadline = RealClock().Now() + options.timeout;
  pollfd fds[2] = {{out.read, POLLIN, 0}, {err.read, POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  const absl::Duration check_every = std::max(options.check_every, absl::Milliseconds(10));
  absl::Time next_check = RealClock().Now() + check_every;
  while (open_fds > 0) {
    const absl::Time now = RealClock().Now();
    absl::Duration left = deadline - now;
    if (left <= absl::ZeroDuration()) {
      status = absl::DeadlineExceededError(
          absl::StrCat(argv[0], " did not finish within ", absl::FormatDuration(options.timeout)));
      break;
    }
    if (options.check != nullptr) {
      if (now >= next_check) {
        status = options.check();
        if (!status.ok()) break;
        next_check = now + check_every;
      }
      left = std::min(left, next_check - now);
    }
    int ready = poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      status = absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      if (i == 0) {
        result.stdout_text.append(buf, n);
        if (result.stdout_text.size() > options.max_stdout_bytes) {
          status = absl::ResourceExhaustedError(absl::StrCat(
              argv[0], " wrote more than ", options.max_stdout_bytes, " bytes of output"));
        }
      } else if (result.stderr_text.size() < options.max_stderr_bytes) {
        result.stderr_text.append(
            buf, std::min<size_t>(n, options.max_stderr_bytes - result.stderr_text.size()));
      }
    }
    if (!status.ok()) break;
  }
  if (!status.ok()) kill(-pid, SIGKILL);
  int wait_status = 0;
  while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  if (!status.ok()) return status;
  result.exit_code =
      WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
  return result;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const SubprocessOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("no program to run");
  if (access(argv[0].c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot execute ", argv[0], ": ", strerror(errno)));
  }
  int in[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) {
    return absl::InternalError(absl::StrCat("socketpair: ", strerror(errno)));
  }
  Pipe input{in[0], in[1]};  // closed on every early return below
  Pipe out, err;
  if (absl::Status s = MakePipe(&out); !s.ok()) return s;
  if (absl::Status s = MakePipe(&err); !s.ok()) return s;
  absl::StatusOr<pid_t> pid =
      Spawn(argv, options.env, options.cwd, input.read, out.write, err.write, argv[0]);
  if (!pid.ok()) return pid.status();
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = *pid;
  child->max_stderr_bytes_ = options.max_stderr_bytes;
  child->in_ = std::exchange(input.write, -1);
  child->out_ = std::exchange(out.read, -1);
  child->err_ = std::exchange(err.read, -1);
  return child;
}

ChildProcess::~ChildProcess() {
  if (!reaped_ && pid_ > 0) {
    kill(-pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  for (int fd : {in_, out_, err_}) {
    if (fd >= 0) close(fd);
  }
}

void ChildProcess::DrainStderr() {
  char buffer[4096];
  const ssize_t n = read(err_, buffer, sizeof(buffer));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    close(err_);
    err_ = -1;
    return;
  }
  if (stderr_text_.size() < max_stderr_bytes_) {
    stderr_text_.append(
        buffer, std::min<size_t>(static_cast<size_t>(n), max_stderr_bytes_ - stderr_text_.size()));
  }
}

int ChildProcess::WaitFor(int fd, short events, absl::Time deadline) {
  while (true) {
    const absl::Duration left = deadline - RealClock().Now();
    if (left <= absl::ZeroDuration()) return 0;
    pollfd fds[2] = {{fd, events, 0}, {err_, POLLIN, 0}};
    const int ready = poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return -1;
    if (fds[1].revents != 0) DrainStderr();
    if (fd < 0 && err_ < 0) return 1;
    if (fd >= 0 && fds[0].revents != 0) return 1;
  }
}

absl::Status ChildProcess::Write(absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    if (in_ < 0) return absl::UnavailableError("its input is closed");
    const int ready = WaitFor(in_, POLLOUT, deadline);
    if (ready == 0) return absl::DeadlineExceededError("it took no more input in time");
    if (ready < 0) return absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
    const ssize_t n = send(in_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0)
      return absl::UnavailableError(absl::StrCat("it took no more input: ", strerror(errno)));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> ChildProcess::Read(char* buffer, size_t size, absl::Time deadline) {
  if (out_ < 0) return 0;
  while (true) {
    const int ready = WaitFor(out_, POLLIN, deadline);
    if (ready == 0) return absl::DeadlineExceededError("it wrote nothing in time");
    if (ready < 0) return absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
    const ssize_t n = read(out_, buffer, size);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("read: ", strerror(errno)));
    return static_cast<size_t>(n);
  }
}

void ChildProcess::CloseInput() {
  if (in_ >= 0) close(in_);
  in_ = -1;
}

absl::StatusOr<int> ChildProcess::Wait(absl::Time deadline) {
  CloseInput();
  // Its error output ends when it exits (or hands it on): read it to the end first.
  while (err_ >= 0) {
    if (WaitFor(-1, 0, deadline) == 0) break;
  }
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      reaped_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (done < 0 && errno != EINTR)
      return absl::InternalError(absl::StrCat("waitpid: ", strerror(errno)));
    if (RealClock().Now() >= deadline) {
      kill(-pid_, SIGKILL);
      return absl::DeadlineExceededError("it did not exit in time; killed");
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

// A forked child of a sanitizer build keeps the sanitizer's runtime, which maps its
// shadow memory as it goes: a data-segment limit would make it fail, not the work.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

absl::StatusOr<std::string> RunInChild(const std::function<std::string()>& work,
                                       absl::Duration timeout, size_t max_output_bytes,
                                       int64_t max_memory_bytes) {
  Pipe out;
  if (absl::Status s = MakePipe(&out); !s.ok()) return s;
  // Hand free heap pages back first: the child's allocations then land on fresh pages
  // instead of copying the parent's one fault at a time (measured: 2x faster for jsonnet).
  malloc_trim(0);
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    close(out.read);
    if (max_memory_bytes > 0 && !kSanitized) {
      rlimit data{static_cast<rlim_t>(max_memory_bytes), static_cast<rlim_t>(max_memory_bytes)};
      setrlimit(RLIMIT_DATA, &data);
    }
    int code = 0;
    try {
      std::string result = work();
      for (size_t done = 0; done < result.size();) {
        ssize_t n = write(out.write, result.data() + done, result.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          code = 2;
          break;
        }
        done += static_cast<size_t>(n);
      }
    } catch (...) {
      code = 3;
    }
    _exit(code);  // no atexit handlers, no flushing the parent's buffers
  }
  close(out.write);
  out.write = -1;

  std::string result;
  absl::Status status;
  absl::Time deadline = RealClock().Now() + timeout;
  pollfd fd = {out.read, POLLIN, 0};
  char buf[65536];
  while (true) {
    absl::Duration left = deadline - RealClock().Now();
    if (left <= absl::ZeroDuration()) {
      status = absl::DeadlineExceededError(
          absl::StrCat("did not finish within ", absl::FormatDuration(timeout), "; stopped"));
      break;
    }
    int ready = poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      status = absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
      break;
    }
    if (ready == 0) continue;
    ssize_t n = read(out.read, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.append(buf, static_cast<size_t>(n));
    if (result.size() > max_output_bytes) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("produced more than ", max_output_bytes, " bytes; stopped"));
      break;
    }
  }
  if (!status.ok()) kill(pid, SIGKILL);
  int wait_status = 0;
  while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  if (!status.ok()) return status;
  if (WIFSIGNALED(wait_status)) {
    return absl::InternalError(absl::StrCat("died of signal ", WTERMSIG(wait_status), " (",
                                            strsignal(WTERMSIG(wait_status)), ")"));
  }
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    return absl::InternalError(absl::StrCat("failed (exit ", WEXITSTATUS(wait_status), ")"));
  }
  return result;
}

}  // namespace gitfleet
