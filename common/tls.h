#ifndef GITFLEET_COMMON_TLS_H_
#define GITFLEET_COMMON_TLS_H_

// gRPC credentials from the --tls-cert, --tls-key and --tls-ca flags. With no flags,
// plaintext (loopback demos); with cert and key, TLS; with a CA too, mutual TLS (the
// server requires and verifies client certificates, the client verifies the server).
//
//   GF_ASSIGN_OR_RETURN(auto creds, MakeServerCredentials({cert, key, ca}));

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace gitfleet {

struct TlsFiles {
  std::string cert;
  std::string key;
  std::string ca;
  bool empty() const { return cert.empty() && key.empty() && ca.empty(); }
};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_TLS_H_
