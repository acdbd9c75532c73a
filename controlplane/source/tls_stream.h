#ifndef GITFLEET_CONTROLPLANE_SOURCE_TLS_STREAM_H_
#define GITFLEET_CONTROLPLANE_SOURCE_TLS_STREAM_H_

// libgit2's TLS, done by gitfleet (OpenSSL, over the timed socket of timed_stream.h), so
// that a Git server that asks for a client certificate (mutual TLS, as Flux's `tls.crt` and
// `tls.key` and Argo CD's `tlsClientCertData` and `tlsClientCertKey` give one) gets the
// source credential's. Debian 12's libgit2 (1.5) has no way to give one to its own.
//
// It verifies as libgit2's does: the system's CAs (SSL_CERT_FILE and SSL_CERT_DIR
// honoured), the host name or IP address, TLS 1.2 or later; a certificate that fails is
// handed to the fetch's certificate check as not valid (where a credential's ca.crt may
// still accept it), its DER available as libgit2's x509 certificate.
//
//   RegisterTlsStream();  // once, after git_libgit2_init and RegisterTimedSocketStream
//   {
//     FetchTlsIdentity identity(&credential.tls_identity);  // this thread's fetches
//     git_remote_fetch(...);
//   }

#include <string>

namespace gitfleet {

// A client certificate (PEM, the leaf first, then any intermediates) and its private key.
struct TlsClientIdentity {
  std::string cert_pem;
  std::string key_pem;
  bool empty() const { return cert_pem.empty(); }
};

// Registers the stream with libgit2 for every TLS connection; false when it refuses.
bool RegisterTlsStream();

// Sets the client identity the calling thread's TLS connections present while it lives
// (none outside one, or with null or an empty identity).
class FetchTlsIdentity {
 public:
  explicit FetchTlsIdentity(const TlsClientIdentity* identity);
  ~FetchTlsIdentity();
  FetchTlsIdentity(const FetchTlsIdentity&) = delete;
  FetchTlsIdentity& operator=(const FetchTlsIdentity&) = delete;

 private:
  const TlsClientIdentity* previous_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_TLS_STREAM_H_
