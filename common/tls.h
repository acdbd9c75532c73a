#ifndef GITFLEET_COMMON_TLS_H_
#define GITFLEET_COMMON_TLS_H_

// gRPC credentials from the --tls-cert, --tls-key and --tls-ca flags. With no flags,
// plaintext (loopback demos); with cert and key, TLS; with a CA too, mutual TLS (the
// server requires and verifies client certificates, the client verifies the server).
// A server reads its files again while it runs (ReloadingServerTls); a client reads them
// when it makes its credentials.
//
//   GF_ASSIGN_OR_RETURN(auto creds, MakeChannelCredentials({cert, key, ca}));

#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/sync.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace gitfleet {

struct TlsFiles {
  std::string cert;
  std::string key;
  std::string ca;
  bool empty() const { return cert.empty() && key.empty() && ca.empty(); }
};

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files);

// Whether these PEM texts could be used: a certificate and a private key that matches it
// (both may be empty for a client without a certificate), and (when `ca` is not empty) at
// least one CA certificate. Errors name the flag.
absl::Status CheckTlsPem(const std::string& cert, const std::string& key, const std::string& ca);

// Channel credentials for TLS files renewed while a client runs. A connection keeps the
// certificate it was made with, so a client asks Renew() before it dials again: true when
// the files changed and check out (CheckTlsPem), and credentials() then returns new ones
// for a new channel. A renewal that does not check out is logged once and not taken up.
// Without files, insecure credentials that never renew. Not thread-safe: one dialer.
class ReloadingChannelTls {
 public:
  static absl::StatusOr<std::unique_ptr<ReloadingChannelTls>> Open(TlsFiles files);
  std::shared_ptr<grpc::ChannelCredentials> credentials() const { return credentials_; }
  bool Renew();

 private:
  explicit ReloadingChannelTls(TlsFiles files) : files_(std::move(files)) {}
  // Reads the files; when they changed and check out, takes them up and says true.
  absl::StatusOr<bool> Read();
  const TlsFiles files_;
  std::string read_;  // cert + key + ca of credentials_
  ErrorLoggedOnce errors_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
};

// Server credentials for TLS files that are renewed while the server runs (cert-manager
// renews a certificate in place): new connections get the renewed certificate, key and CA
// within `every`; connections made before keep theirs.
//
// gRPC's file watcher serves whatever it finds, and takes up a key that does not match its
// certificate (a renewal caught half-way), after which every new connection fails. So the
// watcher reads copies under `copy_dir` instead, written only once the files check out
// (CheckTlsPem); until they do, the pair in force stays, and why is logged once.
//
//   GF_ASSIGN_OR_RETURN(auto tls, ReloadingServerTls::Start(files, data_dir + "/tls"));
//   builder.AddListeningPort(address, tls->credentials());
class ReloadingServerTls {
 public:
  // Unusable files are an error here, naming the flag.
  static absl::StatusOr<std::unique_ptr<ReloadingServerTls>> Start(
      TlsFiles files, std::string copy_dir, absl::Duration every = absl::Seconds(10));
  ~ReloadingServerTls();

  std::shared_ptr<grpc::ServerCredentials> credentials() const { return credentials_; }
  // Reads the files now and copies them when they changed and check out.
  void CheckNow();

 private:
  ReloadingServerTls(TlsFiles files, std::string copy_dir, absl::Duration every);
  // Reads and checks the files; copies them unless they are what was copied last.
  absl::Status CopyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(check_mu_);
  void CheckUntilStopped();

  const TlsFiles files_;
  const std::string copy_dir_;
  const absl::Duration every_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  Mutex check_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::string copied_ ABSL_GUARDED_BY(check_mu_);   // cert + key + ca as last copied
  int64_t version_ ABSL_GUARDED_BY(check_mu_) = 0;  // of the copies' folder, v1, v2, ...
  int64_t stamp_ ABSL_GUARDED_BY(check_mu_) = 0;    // the copies' mtime, Unix seconds
  ErrorLoggedOnce errors_ ABSL_GUARDED_BY(check_mu_);
  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread checker_;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_TLS_H_
