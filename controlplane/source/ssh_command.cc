#include "controlplane/source/ssh_command.h"

#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "controlplane/source/git_credentials.h"

namespace gitfleet {
namespace {

constexpr size_t kMaxErrorBytes = 1024;

std::string Where(const SshCommandTarget& target) {
  return target.port == 22 ? target.host : absl::StrCat(target.host, ":", target.port);
}

// A TCP connection to host:port within `timeout`; -1 with `error` set otherwise.
int Connect(const SshCommandTarget& target, absl::Duration timeout, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string host = target.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const int rc = getaddrinfo(host.c_str(), std::to_string(target.port).c_str(), &hints, &found);
  if (rc != 0) {
    *error = absl::StrCat("cannot resolve ", target.host, ": ", gai_strerror(rc));
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, &freeaddrinfo);
  *error = absl::StrCat("cannot connect to ", Where(target));
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int connected = connect(fd, a->ai_addr, a->ai_addrlen);
    if (connected != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      connected = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) == 1 ? 0 : -1;
      int so_error = 0;
      socklen_t length = sizeof(so_error);
      if (connected == 0 &&
          (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length) != 0 || so_error != 0)) {
        connected = -1;
        errno = so_error;
      } else if (connected != 0) {
        errno = ETIMEDOUT;
      }
    }
    if (connected == 0) {
      fcntl(fd, F_SETFL, flags);
      return fd;
    }
    *error = absl::StrCat("cannot connect to ", Where(target), ": ", strerror(errno));
    close(fd);
  }
  return -1;
}

std::string SessionError(LIBSSH2_SESSION* session) {
  char* message = nullptr;
  int length = 0;
  libssh2_session_last_error(session, &message, &length, 0);
  return message != nullptr && length > 0 ? std::string(message, length) : "unknown error";
}

}  // namespace

absl::StatusOr<std::string> RunSshCommand(const SshCommandTarget& target,
                                          const std::string& command,
                                          const SshCommandOptions& options) {
  static std::once_flag initialized;
  std::call_once(initialized, [] { libssh2_init(0); });
  std::string error;
  const int fd = Connect(target, options.timeout, &error);
  if (fd < 0) return absl::UnavailableError(error);
  struct Closer {
    int fd;
    LIBSSH2_SESSION* session = nullptr;
    LIBSSH2_CHANNEL* channel = nullptr;
    ~Closer() {
      if (channel != nullptr) libssh2_channel_free(channel);
      if (session != nullptr) {
        libssh2_session_disconnect(session, "done");
        libssh2_session_free(session);
      }
      close(fd);
    }
  } closer{fd};
  LIBSSH2_SESSION* session = libssh2_session_init();
  if (session == nullptr) return absl::ResourceExhaustedError("cannot start an SSH session");
  closer.session = session;
  libssh2_session_set_blocking(session, 1);
  libssh2_session_set_timeout(session,
                              static_cast<long>(absl::ToInt64Milliseconds(options.timeout)));
  if (libssh2_session_handshake(session, fd) != 0) {
    return absl::UnavailableError(
        absl::StrCat("SSH handshake with ", Where(target), " failed: ", SessionError(session)));
  }
  size_t key_length = 0;
  int key_type = 0;
  const char* key = libssh2_session_hostkey(session, &key_length, &key_type);
  if (key == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("the SSH host key of ", Where(target), " was not available"));
  }
  if (absl::Status known = CheckHostKey(target.known_hosts, target.host, target.port,
                                        absl::string_view(key, key_length));
      !known.ok()) {
    return known;
  }
  if (libssh2_userauth_publickey_fromfile_ex(
          session, target.user.data(), static_cast<unsigned int>(target.user.size()), nullptr,
          target.key_path.c_str(),
          target.passphrase.empty() ? nullptr : target.passphrase.c_str()) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        Where(target), " refused the SSH key of credential ", target.credential, " for user ",
        target.user, ": ", SessionError(session), SshKeyHint(ReadSshKeyType(target.key_path))));
  }
  LIBSSH2_CHANNEL* channel = libssh2_channel_open_session(session);
  if (channel == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot open an SSH channel to ", Where(target), ": ", SessionError(session)));
  }
  closer.channel = channel;
  if (libssh2_channel_exec(channel, command.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat(Where(target), " would not run a command: ", SessionError(session)));
  }
  std::string out, err;
  char buffer[8192];
  for (;;) {
    const ssize_t n = libssh2_channel_read(channel, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      return absl::UnavailableError(
          absl::StrCat("reading from ", Where(target), " over SSH: ", SessionError(session)));
    }
    if (out.size() + static_cast<size_t>(n) > options.max_output_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("the command on ", Where(target),
                                                       " wrote more than ",
                                                       options.max_output_bytes, " bytes"));
    }
    out.append(buffer, static_cast<size_t>(n));
  }
  for (;;) {
    const ssize_t n = libssh2_channel_read_stderr(channel, buffer, sizeof(buffer));
    if (n <= 0) break;
    if (err.size() < kMaxErrorBytes) {
      err.append(buffer, std::min(static_cast<size_t>(n), kMaxErrorBytes - err.size()));
    }
  }
  libssh2_channel_close(channel);
  libssh2_channel_wait_closed(channel);
  const int status = libssh2_channel_get_exit_status(channel);
  if (status != 0) {
    while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
    return absl::FailedPreconditionError(absl::StrCat("`", command, "` on ", Where(target),
                                                      " exited with status ", status,
                                                      err.empty() ? "" : absl::StrCat(": ", err)));
  }
  return out;
}

}  // namespace gitfleet
