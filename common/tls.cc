#include "common/tls.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/file_system.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace gitfleet {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  absl::StatusOr<std::string> data = PosixFileSystem().ReadFile(path);
  if (!data.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", data.status().message()));
  }
  if (data->find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return data;
}

absl::Status CheckPair(const TlsFiles& files) {
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  return absl::OkStatus();
}

// One string for three PEM texts, to tell whether any changed (lengths keep the boundaries).
std::string PemTexts(const std::string& cert, const std::string& key, const std::string& ca) {
  return absl::StrCat(cert.size(), ":", cert, key.size(), ":", key, ca);
}

// The PEM texts `files` name (empty where a path is empty).
absl::StatusOr<grpc::SslCredentialsOptions> ReadClientPem(const TlsFiles& files) {
  grpc::SslCredentialsOptions options;
  if (!files.ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(files.ca, "--tls-ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  if (!files.cert.empty()) {
    absl::StatusOr<std::string> cert = ReadPem(files.cert, "--tls-cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(files.key, "--tls-key");
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return options;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files) {
  if (files.empty()) return grpc::InsecureChannelCredentials();
  if (absl::Status s = CheckPair(files); !s.ok()) return s;
  absl::StatusOr<grpc::SslCredentialsOptions> options = ReadClientPem(files);
  if (!options.ok()) return options.status();
  return grpc::SslCredentials(*options);
}

absl::StatusOr<std::unique_ptr<ReloadingChannelTls>> ReloadingChannelTls::Open(TlsFiles files) {
  std::unique_ptr<ReloadingChannelTls> tls(new ReloadingChannelTls(std::move(files)));
  if (tls->files_.empty()) {
    tls->credentials_ = grpc::InsecureChannelCredentials();
    return tls;
  }
  if (absl::Status s = CheckPair(tls->files_); !s.ok()) return s;
  if (absl::StatusOr<bool> read = tls->Read(); !read.ok()) return read.status();
  return tls;
}

absl::StatusOr<bool> ReloadingChannelTls::Read() {
  absl::StatusOr<grpc::SslCredentialsOptions> options = ReadClientPem(files_);
  if (!options.ok()) return options.status();
  std::string read =
      PemTexts(options->pem_cert_chain, options->pem_private_key, options->pem_root_certs);
  if (read == read_) return false;
  if (absl::Status s =
          CheckTlsPem(options->pem_cert_chain, options->pem_private_key, options->pem_root_certs);
      !s.ok()) {
    return s;
  }
  read_ = std::move(read);
  credentials_ = grpc::SslCredentials(*options);
  return true;
}

bool ReloadingChannelTls::Renew() {
  if (files_.empty()) return false;
  absl::StatusOr<bool> renewed = Read();
  if (renewed.ok()) {
    errors_.Clear();
    if (*renewed) GF_LOG(INFO) << "--tls-cert, --tls-key, --tls-ca: renewed files taken up";
    return *renewed;
  }
  errors_.Report(renewed.status().message(), "the certificate and key read before stay in use");
  return false;
}

absl::Status CheckTlsPem(const std::string& cert, const std::string& key, const std::string& ca) {
  auto bio = [](const std::string& pem) {
    return std::unique_ptr<BIO, decltype(&BIO_free)>(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  };
  auto check_ca = [&]() -> absl::Status {
    if (ca.empty()) return absl::OkStatus();
    auto ca_bio = bio(ca);
    std::unique_ptr<X509, decltype(&X509_free)> ca_cert(
        PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr), &X509_free);
    if (ca_cert == nullptr) return absl::InvalidArgumentError("--tls-ca: no PEM certificate in it");
    return absl::OkStatus();
  };
  if (cert.empty() && key.empty()) return check_ca();  // a client without a certificate
  auto cert_bio = bio(cert);
  std::unique_ptr<X509, decltype(&X509_free)> x509(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (x509 == nullptr) return absl::InvalidArgumentError("--tls-cert: no PEM certificate in it");
  auto key_bio = bio(key);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, crypto::NoPemPassphrase, nullptr),
      &EVP_PKEY_free);
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        "--tls-key: no PEM private key in it (or it has a passphrase)");
  }
  if (X509_check_private_key(x509.get(), pkey.get()) != 1) {
    return absl::InvalidArgumentError(
        "--tls-key does not match --tls-cert (a renewal caught half-way?)");
  }
  return check_ca();
}

ReloadingServerTls::ReloadingServerTls(TlsFiles files, std::string copy_dir, absl::Duration every)
    : files_(std::move(files)), copy_dir_(std::move(copy_dir)), every_(every) {}

absl::StatusOr<std::unique_ptr<ReloadingServerTls>> ReloadingServerTls::Start(
    TlsFiles files, std::string copy_dir, absl::Duration every) {
  if (absl::Status s = CheckPair(files); !s.ok()) return s;
  if (files.cert.empty()) {
    return absl::InvalidArgumentError("--tls-ca needs --tls-cert and --tls-key");
  }
  std::unique_ptr<ReloadingServerTls> tls(
      new ReloadingServerTls(std::move(files), std::move(copy_dir), every));
  // Copies of an earlier run are not this run's.
  if (absl::Status s = RemoveRecursively(tls->copy_dir_); !s.ok()) return s;
  {
    MutexLock lock(&tls->check_mu_);
    if (absl::Status copied = tls->CopyLocked(); !copied.ok()) return copied;
  }
  const std::string dir = tls->copy_dir_ + "/current";
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      dir + "/tls.key", dir + "/tls.crt", tls->files_.ca.empty() ? "" : dir + "/ca.crt",
      static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(every))));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls->files_.ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  tls->credentials_ = grpc::experimental::TlsServerCredentials(options);
  tls->checker_ = std::thread([raw = tls.get()] { raw->CheckUntilStopped(); });
  return tls;
}

void ReloadingServerTls::CheckUntilStopped() {
  NameThisThread("gf-tls-reload");
  while (true) {
    {
      MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; },
                               every_)) {
        return;
      }
    }
    CheckNow();
  }
}

ReloadingServerTls::~ReloadingServerTls() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (checker_.joinable()) checker_.join();
}

void ReloadingServerTls::CheckNow() {
  MutexLock lock(&check_mu_);
  absl::Status copied = CopyLocked();
  if (copied.ok()) {
    errors_.Clear();
  } else {
    errors_.Report(copied.message(), "the certificate and key in force stay");
  }
}

absl::Status ReloadingServerTls::CopyLocked() {
  absl::StatusOr<std::string> cert = ReadPem(files_.cert, "--tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(files_.key, "--tls-key");
  if (!key.ok()) return key.status();
  std::string ca;
  if (!files_.ca.empty()) {
    absl::StatusOr<std::string> read = ReadPem(files_.ca, "--tls-ca");
    if (!read.ok()) return read.status();
    ca = *std::move(read);
  }
  std::string all = PemTexts(*cert, *key, ca);
  if (all == copied_) return absl::OkStatus();
  if (absl::Status s = CheckTlsPem(*cert, *key, ca); !s.ok()) return s;
  // A new folder of copies, then one rename of the `current` link to it: the key and the
  // certificate change in one step, as a mounted Kubernetes Secret's files do.
  ++version_;
  const std::string name = absl::StrCat("v", version_);
  const std::string folder = absl::StrCat(copy_dir_, "/", name);
  FileSystem& fs = PosixFileSystem();
  if (!ca.empty()) {
    if (absl::Status s = fs.WriteFileAtomically(folder + "/ca.crt", ca); !s.ok()) return s;
  }
  if (absl::Status s = fs.WriteFileAtomically(folder + "/tls.key", *key); !s.ok()) return s;
  if (absl::Status s = fs.WriteFileAtomically(folder + "/tls.crt", *cert); !s.ok()) return s;
  // gRPC's watcher tells a read that straddles the swap below (the key of one version, the
  // certificate of the next) by the files' modification times, in whole seconds, before
  // and after it reads: it reads again when they moved. So no two versions share a second.
  stamp_ = std::max(absl::ToUnixSeconds(absl::Now()), stamp_ + 1);
  for (const char* file : {"/ca.crt", "/tls.key", "/tls.crt"}) {
    const std::string path = folder + file;
    const struct timespec times[2] = {{stamp_, 0}, {stamp_, 0}};
    if (::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0 && errno != ENOENT) {
      return absl::InternalError(absl::StrCat("cannot stamp ", path, ": ", std::strerror(errno)));
    }
  }
  const std::string link = copy_dir_ + "/current";
  const std::string staged = link + ".new";
  ::unlink(staged.c_str());
  if (::symlink(name.c_str(), staged.c_str()) != 0 || ::rename(staged.c_str(), link.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot point ", link, " at ", folder, ": ", std::strerror(errno)));
  }
  // The one before stays for a watcher in the middle of reading it.
  if (version_ > 2) {
    (void)RemoveRecursively(absl::StrCat(copy_dir_, "/v", version_ - 2));
  }
  if (!copied_.empty()) GF_LOG(INFO) << "--tls-cert, --tls-key: renewed files taken up";
  copied_ = std::move(all);
  return absl::OkStatus();
}

}  // namespace gitfleet
