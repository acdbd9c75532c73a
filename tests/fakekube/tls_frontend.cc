#include "tests/fakekube/tls_frontend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace gitfleet {
namespace {

int ListenOn(int port, int* bound) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *bound = ntohs(addr.sin_port);
  return fd;
}

int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsFrontend>> TlsFrontend::Start(const std::string& cert_and_key,
                                                                int backend_port, int port,
                                                                const std::string& client_ca) {
  std::unique_ptr<TlsFrontend> frontend(new TlsFrontend());
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  frontend->ctx_ = ctx;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_and_key.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, cert_and_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load certificate and key from ", cert_and_key));
  }
  if (!client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, client_ca.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("cannot load client CA ", client_ca));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  frontend->backend_port_ = backend_port;
  frontend->listen_fd_ = ListenOn(port, &frontend->port_);
  if (frontend->listen_fd_ < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on 127.0.0.1:", port));
  }
  frontend->acceptor_ = std::thread([f = frontend.get()] { f->AcceptLoop(); });
  return frontend;
}

TlsFrontend::~TlsFrontend() {
  stopping_ = true;
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> relays;
  {
    MutexLock lock(&mu_);
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
    relays.swap(relays_);
  }
  for (std::thread& t : relays) t.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

void TlsFrontend::AcceptLoop() {
  while (!stopping_) {
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) return;  // shut down
    MutexLock lock(&mu_);
    open_fds_.push_back(client);
    relays_.emplace_back([this, client] { Relay(client); });
  }
}

void TlsFrontend::Relay(int client) {
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx_));
  SSL_set_fd(ssl, client);
  int backend = -1;
  if (SSL_accept(ssl) == 1) backend = ConnectTo(backend_port_);
  if (backend >= 0) {
    {
      MutexLock lock(&mu_);
      open_fds_.push_back(backend);
    }
    char buffer[16384];
    // Ends when either side closes.
    while (!stopping_) {
      if (SSL_pending(ssl) == 0) {
        pollfd fds[2] = {{client, POLLIN, 0}, {backend, POLLIN, 0}};
        if (poll(fds, 2, 1000) < 0) break;
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
          ssize_t n = read(backend, buffer, sizeof(buffer));
          if (n <= 0 || SSL_write(ssl, buffer, static_cast<int>(n)) <= 0) break;
        }
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      }
      int n = SSL_read(ssl, buffer, sizeof(buffer));
      if (n <= 0 || write(backend, buffer, n) != n) break;
    }
  }
  SSL_shutdown(ssl);
  SSL_free(ssl);
  MutexLock lock(&mu_);
  for (int fd : {client, backend}) {
    if (fd < 0) continue;
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
    close(fd);
  }
}

}  // namespace gitfleet
