#include "controlplane/source/timed_stream.h"

#include <fcntl.h>
#include <git2.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/sync.h"
#include "common/thread_name.h"

namespace gitfleet {
namespace {

thread_local absl::Time fetch_deadline = absl::InfiniteFuture();
std::atomic<bool> cancelled{false};

// Laid out as libgit2's own socket stream (parent, host, port, socket): its SSH transport
// reads the socket from there to hand it to libssh2.
struct TimedSocket {
  git_stream parent;
  char* host;
  char* port;
  int s;
};

// libgit2's SSH transport hands the socket to libssh2, which reads and writes it itself and
// waits without a deadline. So every connected socket is also watched: once its fetch's
// deadline passes, or fetches are cancelled, the watchdog shuts it down, which ends any
// wait on it (libssh2's included) with an error. Sockets are unwatched under the same lock
// before they are closed, so a shutdown never reaches a reused descriptor.
class Watchdog {
 public:
  static Watchdog& Get() {
    static Watchdog* watchdog = new Watchdog();  // never destroyed: its thread runs on
    return *watchdog;
  }
  void Watch(int fd, absl::Time deadline) {
    MutexLock lock(&mu_);
    sockets_[fd] = deadline;
  }
  void Unwatch(int fd) {
    MutexLock lock(&mu_);
    sockets_.erase(fd);
  }

 private:
  Watchdog() {
    std::thread([this] {
      NameThisThread("gf-git-timeout");
      Run();
    }).detach();
  }
  void Run() {
    while (true) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      MutexLock lock(&mu_);
      absl::Time now = RealClock().Now();
      for (auto it = sockets_.begin(); it != sockets_.end();) {
        if (cancelled.load() || now > it->second) {
          ::shutdown(it->first, SHUT_RDWR);
          it = sockets_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }
  Mutex mu_;
  std::map<int, absl::Time> sockets_ ABSL_GUARDED_BY(mu_);
};

int Fail(const std::string& message) {
  git_error_set_str(GIT_ERROR_NET, message.c_str());
  return -1;
}

// Whether the fetch must stop (cancelled, or past its deadline); then libgit2's error says
// why. The watchdog shuts such a fetch's socket down, which a read sees as the server's
// end of file and a write as a broken pipe, so those check here first too.
bool Stopped(const char* what, const char* host) {
  if (cancelled.load()) {
    Fail("the fetch was cancelled: the control plane is stopping");
    return true;
  }
  if (RealClock().Now() >= fetch_deadline) {
    Fail(absl::StrCat("timed out ", what, " ", host,
                      " (--fetch-timeout-seconds): the server stopped answering"));
    return true;
  }
  return false;
}

// Waits for `events` on `fd` until the thread's deadline, in slices, so that a cancel is
// seen within 100 ms. 1 when ready, else -1 with libgit2's error set.
int Wait(int fd, short events, const char* what, const char* host) {
  while (true) {
    if (Stopped(what, host)) return -1;
    absl::Duration left = fetch_deadline - RealClock().Now();
    int slice =
        static_cast<int>(absl::ToInt64Milliseconds(std::min(left, absl::Milliseconds(100))) + 1);
    pollfd p{fd, events, 0};
    int rc = poll(&p, 1, slice);
    if (rc > 0) return 1;
    if (rc < 0 && errno != EINTR) {
      return Fail(absl::StrCat("poll on the connection to ", host, ": ", strerror(errno)));
    }
  }
}

int Connect(git_stream* stream) {
  auto* st = reinterpret_cast<TimedSocket*>(stream);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* found = nullptr;
  // Name resolution has no deadline of its own; getaddrinfo honours resolv.conf's timeout.
  if (int rc = getaddrinfo(st->host, st->port, &hints, &found); rc != 0) {
    return Fail(absl::StrCat("cannot resolve ", st->host, ": ", gai_strerror(rc)));
  }
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      last_error = strerror(errno);
      continue;
    }
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (Wait(fd, POLLOUT, "connecting to", st->host) < 0) {
        close(fd);
        freeaddrinfo(found);
        return -1;
      }
      int error = 0;
      socklen_t len = sizeof(error);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
      rc = error == 0 ? 0 : -1;
      errno = error;
    }
    if (rc == 0) {
      st->s = fd;
      freeaddrinfo(found);
      if (fetch_deadline != absl::InfiniteFuture() || cancelled.load()) {
        Watchdog::Get().Watch(fd, fetch_deadline);
      }
      return 0;
    }
    last_error = strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  return Fail(absl::StrCat("cannot connect to ", st->host, ":", st->port, ": ", last_error));
}

ssize_t Read(git_stream* stream, void* data, size_t len) {
  auto* st = reinterpret_cast<TimedSocket*>(stream);
  while (true) {
    ssize_t n = recv(st->s, data, len, 0);
    if (n > 0) return n;
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      if (Stopped("reading from", st->host)) return -1;  // the watchdog's shutdown
      if (n == 0) return 0;
      return Fail(absl::StrCat("reading from ", st->host, ": ", strerror(errno)));
    }
    if (Wait(st->s, POLLIN, "reading from", st->host) < 0) return -1;
  }
}

ssize_t Write(git_stream* stream, const char* data, size_t len, int) {
  auto* st = reinterpret_cast<TimedSocket*>(stream);
  size_t written = 0;
  while (written < len) {
    ssize_t n = send(st->s, data + written, len - written, MSG_NOSIGNAL);
    if (n >= 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      if (Stopped("writing to", st->host)) return -1;  // the watchdog's shutdown
      return Fail(absl::StrCat("writing to ", st->host, ": ", strerror(errno)));
    }
    if (Wait(st->s, POLLOUT, "writing to", st->host) < 0) return -1;
  }
  return static_cast<ssize_t>(written);
}

int Close(git_stream* stream) {
  auto* st = reinterpret_cast<TimedSocket*>(stream);
  if (st->s >= 0) {
    Watchdog::Get().Unwatch(st->s);
    close(st->s);
  }
  st->s = -1;
  return 0;
}

void Free(git_stream* stream) {
  auto* st = reinterpret_cast<TimedSocket*>(stream);
  Close(stream);  // unwatches it too
  free(st->host);
  free(st->port);
  free(st);
}

int Init(git_stream** out, const char* host, const char* port) {
  auto* st = static_cast<TimedSocket*>(calloc(1, sizeof(TimedSocket)));
  if (st == nullptr) return Fail("out of memory");
  st->host = strdup(host);
  st->port = strdup(port);
  st->s = -1;
  st->parent.version = GIT_STREAM_VERSION;
  st->parent.connect = Connect;
  st->parent.read = Read;
  st->parent.write = Write;
  st->parent.close = Close;
  st->parent.free = Free;
  *out = &st->parent;
  return 0;
}

}  // namespace

bool RegisterTimedSocketStream() {
  git_stream_registration registration{};
  registration.version = GIT_STREAM_VERSION;
  registration.init = Init;
  return git_stream_register(GIT_STREAM_STANDARD, &registration) == 0;
}

FetchDeadline::FetchDeadline(absl::Time deadline) : previous_(fetch_deadline) {
  fetch_deadline = deadline;
}

FetchDeadline::~FetchDeadline() { fetch_deadline = previous_; }

int NewTimedSocketStream(git_stream** out, const char* host, const char* port) {
  return Init(out, host, port);
}

absl::Time CurrentFetchDeadline() { return fetch_deadline; }

bool FetchesCancelled() { return cancelled.load(); }

void CancelAllFetches() { cancelled = true; }

}  // namespace gitfleet
