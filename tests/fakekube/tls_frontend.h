#ifndef GITFLEET_TESTS_FAKEKUBE_TLS_FRONTEND_H_
#define GITFLEET_TESTS_FAKEKUBE_TLS_FRONTEND_H_

// Terminates TLS on a loopback port and relays each connection to a plain-HTTP backend
// port. Debian's civetweb 1.15 loads OpenSSL 3 at run time and calls a missing symbol
// on the first HTTPS request, so the fake API server serves HTTPS through this instead.
//
//   GF_ASSIGN_OR_RETURN(auto tls, TlsFrontend::Start("server.pem", backend_port));
//   std::string url = "https://127.0.0.1:" + std::to_string(tls->port());

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sync.h"

namespace gitfleet {

class TlsFrontend {
 public:
  // `cert_and_key`: one PEM file with the certificate chain and the private key.
  // `client_ca`: when set, clients must present a certificate it signed.
  static absl::StatusOr<std::unique_ptr<TlsFrontend>> Start(const std::string& cert_and_key,
                                                            int backend_port, int port = 0,
                                                            const std::string& client_ca = "");
  ~TlsFrontend();
  int port() const { return port_; }
  // TLS connections accepted so far.
  int connections() {
    MutexLock lock(&mu_);
    return static_cast<int>(relays_.size());
  }

 private:
  TlsFrontend() = default;
  void AcceptLoop();
  void Relay(int client);

  void* ctx_ = nullptr;  // SSL_CTX
  int listen_fd_ = -1;
  int port_ = 0;
  int backend_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  Mutex mu_;
  std::vector<std::thread> relays_ ABSL_GUARDED_BY(mu_);
  std::vector<int> open_fds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_TESTS_FAKEKUBE_TLS_FRONTEND_H_
