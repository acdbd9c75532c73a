#include "controlplane/source/git_credentials.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/crypto.h"
#include "common/file_system.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "controlplane/source/repo_url.h"

namespace gitfleet {
namespace {

constexpr size_t kMaxCredentialFileBytes = 64 << 10;

// The file's contents, or nullopt-like empty with `found` false when it does not exist.
absl::StatusOr<std::string> ReadPart(const std::string& name, const std::string& dir,
                                     const std::string& file, bool* found) {
  std::string path = absl::StrCat(dir, "/", file);
  struct stat st;
  *found = stat(path.c_str(), &st) == 0;
  if (!*found) return std::string();
  if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("credential ", name, ": ", file, " is not a file"));
  }
  if (static_cast<size_t>(st.st_size) > kMaxCredentialFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("credential ", name, ": ", file, " is over 64 KiB"));
  }
  absl::StatusOr<std::string> text = PosixFileSystem().ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("credential ", name, ": cannot read ", file));  // no contents, no path
  }
  return text;
}

// Secrets written with `echo` end in a newline that is not part of them.
std::string Chomp(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::string Base64NoPad(absl::string_view bytes) {
  std::string out = absl::Base64Escape(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

// Whether a known_hosts host pattern list ("a,b", "[h]:p", "|1|salt|hash") names `names`.
bool HostMatches(absl::string_view patterns, const std::vector<std::string>& names) {
  if (absl::StartsWith(patterns, "|1|")) {
    std::vector<std::string> parts = absl::StrSplit(patterns.substr(3), '|');
    std::string salt, hash;
    if (parts.size() != 2 || !absl::Base64Unescape(parts[0], &salt) ||
        !absl::Base64Unescape(parts[1], &hash)) {
      return false;
    }
    for (const std::string& name : names) {
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int length = 0;
      HMAC(EVP_sha1(), salt.data(), static_cast<int>(salt.size()),
           reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest, &length);
      if (std::string(reinterpret_cast<char*>(digest), length) == hash) return true;
    }
    return false;
  }
  for (absl::string_view pattern : absl::StrSplit(patterns, ',')) {
    if (absl::StartsWith(pattern, "!")) continue;  // negations never grant
    for (const std::string& name : names) {
      if (absl::AsciiStrToLower(pattern) == absl::AsciiStrToLower(name)) return true;
    }
  }
  return false;
}

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct StoreDeleter {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxDeleter {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};

}  // namespace

absl::StatusOr<GitCredential> LoadGitCredential(const std::string& dir, const std::string& name) {
  if (absl::Status s = ValidateName("credential", name); !s.ok()) return s;
  if (dir.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("source needs credential ", name,
                     " but the control plane has no --credentials-dir to find it in"));
  }
  std::string folder = absl::StrCat(dir, "/", name);
  struct stat st;
  if (stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("credential ", name, " not found: no folder ", name, " in --credentials-dir"));
  }
  GitCredential credential;
  credential.name = name;
  bool has_user, has_password, has_key, has_known_hosts, has_ca;
  absl::StatusOr<std::string> username = ReadPart(name, folder, "username", &has_user);
  if (!username.ok()) return username.status();
  absl::StatusOr<std::string> password = ReadPart(name, folder, "password", &has_password);
  if (!password.ok()) return password.status();
  absl::StatusOr<std::string> key = ReadPart(name, folder, "ssh-privatekey", &has_key);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> known_hosts = ReadPart(name, folder, "known_hosts", &has_known_hosts);
  if (!known_hosts.ok()) return known_hosts.status();
  absl::StatusOr<std::string> ca = ReadPart(name, folder, "ca.crt", &has_ca);
  if (!ca.ok()) return ca.status();
  bool has_bearer;
  absl::StatusOr<std::string> bearer = ReadPart(name, folder, "bearerToken", &has_bearer);
  if (!bearer.ok()) return bearer.status();
  credential.username = Chomp(*username);
  credential.password = Chomp(*password);
  credential.known_hosts = *known_hosts;
  credential.ca_pem = *ca;
  if (has_key) {
    if (key->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("credential ", name, ": ssh-privatekey is empty"));
    }
    if (!has_known_hosts || known_hosts->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "credential ", name,
          " has an ssh-privatekey but no known_hosts: SSH host keys are always verified "
          "(ssh-keyscan -p PORT HOST > known_hosts, then check the fingerprints)"));
    }
    credential.ssh_key_path = absl::StrCat(folder, "/ssh-privatekey");
  }
  bool has_certificate;
  absl::StatusOr<std::string> certificate =
      ReadPart(name, folder, "ssh-privatekey-cert.pub", &has_certificate);
  if (!certificate.ok()) return certificate.status();
  if (has_certificate) {
    if (!has_key) {
      return absl::InvalidArgumentError(absl::StrCat(
          "credential ", name, " has ssh-privatekey-cert.pub but no ssh-privatekey it certifies"));
    }
    if (!absl::StrContains(certificate->substr(0, certificate->find(' ')),
                           "-cert-v01@openssh.com")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "credential ", name,
          "'s ssh-privatekey-cert.pub is not an OpenSSH certificate (ssh-keygen -s CA -I ID -n "
          "PRINCIPAL KEY.pub writes one)"));
    }
    credential.ssh_certificate_path = absl::StrCat(folder, "/ssh-privatekey-cert.pub");
  }
  if (has_password && credential.password.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("credential ", name, ": password is empty"));
  }
  if (has_bearer) {
    credential.bearer_token = Chomp(*bearer);
    if (credential.bearer_token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("credential ", name, ": bearerToken is empty"));
    }
    // A header's value: a line break would end it and start another header.
    if (credential.bearer_token.find_first_of("\r\n") != std::string::npos ||
        absl::StripAsciiWhitespace(credential.bearer_token) != credential.bearer_token) {
      return absl::InvalidArgumentError(absl::StrCat(
          "credential ", name,
          ": bearerToken holds a line break or spaces at an end; it is one header's value"));
    }
    if (has_password) {
      return absl::InvalidArgumentError(absl::StrCat(
          "credential ", name,
          " holds both a password and a bearerToken: a server gets one of them; remove the "
          "other"));
    }
  }
  // A client certificate for servers that ask for one (mutual TLS), as Flux's Secrets carry
  // it (tls.crt, tls.key) or Argo CD's (tlsClientCertData, tlsClientCertKey).
  bool has_tls_cert, has_tls_key, has_argo_cert, has_argo_key;
  absl::StatusOr<std::string> tls_cert = ReadPart(name, folder, "tls.crt", &has_tls_cert);
  if (!tls_cert.ok()) return tls_cert.status();
  absl::StatusOr<std::string> tls_key = ReadPart(name, folder, "tls.key", &has_tls_key);
  if (!tls_key.ok()) return tls_key.status();
  absl::StatusOr<std::string> argo_cert =
      ReadPart(name, folder, "tlsClientCertData", &has_argo_cert);
  if (!argo_cert.ok()) return argo_cert.status();
  absl::StatusOr<std::string> argo_key = ReadPart(name, folder, "tlsClientCertKey", &has_argo_key);
  if (!argo_key.ok()) return argo_key.status();
  const bool has_tls = has_tls_cert || has_tls_key || has_argo_cert || has_argo_key;
  if (has_tls) {
    if ((has_tls_cert || has_tls_key) && (has_argo_cert || has_argo_key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "credential ", name,
          " holds both tls.crt/tls.key and tlsClientCertData/tlsClientCertKey: keep one pair"));
    }
    const bool flux = has_tls_cert || has_tls_key;
    const char* cert_file = flux ? "tls.crt" : "tlsClientCertData";
    const char* key_file = flux ? "tls.key" : "tlsClientCertKey";
    if (flux ? !(has_tls_cert && has_tls_key) : !(has_argo_cert && has_argo_key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("credential ", name, " has ",
                       (flux ? has_tls_cert : has_argo_cert) ? cert_file : key_file, " but not ",
                       (flux ? has_tls_cert : has_argo_cert) ? key_file : cert_file,
                       ": a client certificate needs both"));
    }
    credential.tls_cert_pem = flux ? *tls_cert : *argo_cert;
    credential.tls_key_pem = flux ? *tls_key : *argo_key;
    if (absl::Status valid =
            CheckClientCertificate(credential.tls_cert_pem, credential.tls_key_pem);
        !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("credential ", name, "'s ", cert_file, " and ",
                                                     key_file, ": ", valid.message()));
    }
  }
  // A GitHub App, as Argo CD's and Flux's Secrets carry it.
  bool has_app_id, has_installation, has_app_key, has_enterprise, has_base;
  absl::StatusOr<std::string> app_id = ReadPart(name, folder, "githubAppID", &has_app_id);
  if (!app_id.ok()) return app_id.status();
  absl::StatusOr<std::string> installation =
      ReadPart(name, folder, "githubAppInstallationID", &has_installation);
  if (!installation.ok()) return installation.status();
  absl::StatusOr<std::string> app_key = ReadPart(name, folder, "githubAppPrivateKey", &has_app_key);
  if (!app_key.ok()) return app_key.status();
  absl::StatusOr<std::string> enterprise =
      ReadPart(name, folder, "githubAppEnterpriseBaseUrl", &has_enterprise);
  if (!enterprise.ok()) return enterprise.status();
  absl::StatusOr<std::string> base = ReadPart(name, folder, "githubAppBaseURL", &has_base);
  if (!base.ok()) return base.status();
  const bool has_app = has_app_id || has_installation || has_app_key;
  if (has_app) {
    if (!has_app_id || !has_installation || !has_app_key) {
      return absl::InvalidArgumentError(
          absl::StrCat("credential ", name, " is a GitHub App's but lacks ",
                       !has_app_id         ? "githubAppID"
                       : !has_installation ? "githubAppInstallationID"
                                           : "githubAppPrivateKey",
                       ": it takes githubAppID, githubAppInstallationID and githubAppPrivateKey"));
    }
    if (has_password || has_bearer || has_key) {
      return absl::InvalidArgumentError(absl::StrCat(
          "credential ", name,
          " holds a GitHub App and also a password, bearerToken or ssh-privatekey: the App's "
          "token is the password; remove the other"));
    }
    GitHubApp app;
    app.app_id = std::string(absl::StripAsciiWhitespace(*app_id));
    app.installation_id = std::string(absl::StripAsciiWhitespace(*installation));
    app.private_key_pem = *app_key;
    const std::string given =
        std::string(absl::StripAsciiWhitespace(has_enterprise ? *enterprise : *base));
    if (!given.empty()) app.base_url = given;
    app.ca_pem = *ca;
    if (absl::Status valid = CheckGitHubApp(app); !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("credential ", name, ": ", valid.message()));
    }
    credential.github_app = std::move(app);
  }
  if (!has_key && !has_password && !has_bearer && !has_app && !has_known_hosts && !has_ca &&
      !has_tls) {
    return absl::InvalidArgumentError(absl::StrCat(
        "credential ", name,
        " holds none of username/password, bearerToken, a GitHub App (githubAppID, "
        "githubAppInstallationID, githubAppPrivateKey), ssh-privatekey/known_hosts, a client "
        "certificate (tls.crt/tls.key) or ca.crt"));
  }
  return credential;
}

absl::Status CheckClientCertificate(const std::string& cert_pem, const std::string& key_pem) {
  std::unique_ptr<BIO, BioDeleter> certs(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  std::unique_ptr<X509, X509Deleter> leaf(
      PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr));
  if (leaf == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the certificate is not a PEM certificate");
  }
  std::unique_ptr<BIO, BioDeleter> key_bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, crypto::NoPemPassphrase, nullptr);
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "the key is not an unencrypted PEM private key (openssl pkey -in KEY -out tls.key)");
  }
  const bool matches = X509_check_private_key(leaf.get(), key) == 1;
  EVP_PKEY_free(key);
  ERR_clear_error();
  if (!matches) return absl::InvalidArgumentError("the key is not the certificate's");
  if (X509_cmp_current_time(X509_get0_notAfter(leaf.get())) < 0) {
    return absl::InvalidArgumentError("the certificate has expired");
  }
  return absl::OkStatus();
}

absl::Status UseGitHubAppToken(GitCredential* credential, absl::Duration timeout) {
  if (!credential->github_app.has_value()) return absl::OkStatus();
  absl::StatusOr<GitHubAppToken> token = FetchGitHubAppToken(*credential->github_app, timeout);
  if (!token.ok()) {
    return absl::Status(token.status().code(), absl::StrCat("credential ", credential->name, ": ",
                                                            token.status().message()));
  }
  credential->username = "x-access-token";
  credential->password = token->token;
  return absl::OkStatus();
}

namespace {

// One SSH wire-format string (a 4-byte big-endian length, then the bytes) off the front of
// `data`; false when it runs past the end.
bool TakeSshString(absl::string_view* data, absl::string_view* out) {
  if (data->size() < 4) return false;
  const uint32_t length = (static_cast<uint32_t>(static_cast<uint8_t>((*data)[0])) << 24) |
                          (static_cast<uint32_t>(static_cast<uint8_t>((*data)[1])) << 16) |
                          (static_cast<uint32_t>(static_cast<uint8_t>((*data)[2])) << 8) |
                          static_cast<uint32_t>(static_cast<uint8_t>((*data)[3]));
  data->remove_prefix(4);
  if (length > data->size()) return false;
  *out = data->substr(0, length);
  data->remove_prefix(length);
  return true;
}

}  // namespace

std::string ReadSshKeyType(const std::string& path) {
  absl::StatusOr<std::string> text = PosixFileSystem().ReadFile(path);
  if (!text.ok() || text->size() > kMaxCredentialFileBytes) return "";
  if (absl::StrContains(*text, "-----BEGIN RSA PRIVATE KEY-----")) return "ssh-rsa";
  if (absl::StrContains(*text, "-----BEGIN EC PRIVATE KEY-----")) return "ecdsa";
  if (absl::StrContains(*text, "-----BEGIN PRIVATE KEY-----")) {
    std::unique_ptr<BIO, BioDeleter> bio(
        BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, crypto::NoPemPassphrase, nullptr);
    const int id = key == nullptr ? 0 : EVP_PKEY_base_id(key);
    EVP_PKEY_free(key);
    return id == EVP_PKEY_RSA       ? "ssh-rsa"
           : id == EVP_PKEY_ED25519 ? "ssh-ed25519"
           : id == EVP_PKEY_EC      ? "ecdsa"
                                    : "";
  }
  // OpenSSH's own format: "openssh-key-v1\0", the cipher, the KDF and its options, the
  // number of keys, then the first public key in the clear, its type first.
  constexpr absl::string_view kBegin = "-----BEGIN OPENSSH PRIVATE KEY-----";
  const size_t begin = text->find(std::string(kBegin));
  const size_t end = text->find("-----END OPENSSH PRIVATE KEY-----");
  if (begin == std::string::npos || end == std::string::npos || end < begin) return "";
  std::string body = text->substr(begin + kBegin.size(), end - begin - kBegin.size());
  body.erase(
      std::remove_if(body.begin(), body.end(),
                     [](char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); }),
      body.end());
  std::string bytes;
  if (!absl::Base64Unescape(body, &bytes)) return "";
  absl::string_view rest = bytes;
  constexpr absl::string_view kMagic("openssh-key-v1\0", 15);
  if (!absl::ConsumePrefix(&rest, kMagic)) return "";
  absl::string_view cipher, kdf, kdf_options, public_key, type;
  if (!TakeSshString(&rest, &cipher) || !TakeSshString(&rest, &kdf) ||
      !TakeSshString(&rest, &kdf_options) || rest.size() < 4) {
    return "";
  }
  rest.remove_prefix(4);  // the number of keys
  if (!TakeSshString(&rest, &public_key) || !TakeSshString(&public_key, &type)) return "";
  if (type.size() > 64) return "";
  return std::string(type);
}

std::string SshKeyHint(const std::string& type) {
  if (type != "ssh-rsa") return "";
  return "; it is an RSA key, which libssh2 (1.10, Debian 12's) signs with SHA-1 (ssh-rsa), as "
         "OpenSSH 8.8 and later and GitHub refuse: run the control plane with --ssh-client=auto "
         "(the default: OpenSSH's client for RSA keys) or openssh, or give it an ed25519 key "
         "(ssh-keygen -t ed25519)";
}

std::string SshFingerprint(absl::string_view key_blob) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key_blob.data()), key_blob.size(), digest);
  return absl::StrCat("SHA256:", Base64NoPad(absl::string_view(
                                     reinterpret_cast<const char*>(digest), sizeof(digest))));
}

absl::Status CheckHostKey(const std::string& known_hosts, const std::string& host, int port,
                          absl::string_view key_blob) {
  std::vector<std::string> names;
  if (port == 22 || port == 0) names.push_back(host);
  names.push_back(absl::StrCat("[", host, "]:", port == 0 ? 22 : port));
  std::vector<std::string> listed;
  for (absl::string_view line : absl::StrSplit(known_hosts, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (!fields.empty() && absl::StartsWith(fields[0], "@")) {
      if (fields[0] == "@revoked" && fields.size() >= 4 && HostMatches(fields[1], names)) {
        std::string blob;
        if (absl::Base64Unescape(fields[3], &blob) && blob == key_blob) {
          return absl::PermissionDeniedError(absl::StrCat("the host key of ", host, " (",
                                                          SshFingerprint(key_blob),
                                                          ") is marked @revoked in known_hosts"));
        }
      }
      continue;  // @cert-authority: host certificates are not used here
    }
    if (fields.size() < 3 || !HostMatches(fields[0], names)) continue;
    std::string blob;
    if (!absl::Base64Unescape(fields[2], &blob)) continue;
    if (blob == key_blob) return absl::OkStatus();
    listed.push_back(absl::StrCat(fields[1], " ", SshFingerprint(blob)));
  }
  std::string where = port == 22 || port == 0 ? host : absl::StrCat("[", host, "]:", port);
  if (listed.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "unknown SSH host ", where, ": its key ", SshFingerprint(key_blob),
        " is not in the credential's known_hosts (check the fingerprint, then add it)"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat("the SSH host key of ", where, " changed: the server offers ",
                   SshFingerprint(key_blob), ", known_hosts has ", absl::StrJoin(listed, ", ")));
}

absl::Status CheckCertificate(const std::string& ca_pem, absl::string_view der,
                              const std::string& host) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<X509, X509Deleter> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("the TLS certificate of ", host, " cannot be parsed"));
  }
  std::unique_ptr<X509_STORE, StoreDeleter> store(X509_STORE_new());
  std::unique_ptr<BIO, BioDeleter> bio(
      BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  int cas = 0;
  while (true) {
    std::unique_ptr<X509, X509Deleter> ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (ca == nullptr) break;
    if (X509_STORE_add_cert(store.get(), ca.get()) == 1) ++cas;
  }
  if (cas == 0) {
    return absl::PermissionDeniedError("the credential's ca.crt holds no PEM certificate");
  }
  std::unique_ptr<X509_STORE_CTX, StoreCtxDeleter> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr);
  if (X509_verify_cert(ctx.get()) != 1) {
    return absl::PermissionDeniedError(
        absl::StrCat("the TLS certificate of ", host, " is not signed by the credential's ca.crt: ",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()))));
  }
  bool named = X509_check_ip_asc(cert.get(), host.c_str(), 0) == 1 ||
               X509_check_host(cert.get(), host.c_str(), host.size(), 0, nullptr) == 1;
  if (!named) {
    return absl::PermissionDeniedError(
        absl::StrCat("the TLS certificate of ", host, " does not name ", host));
  }
  return absl::OkStatus();
}

absl::Status CheckSourceUrl(const std::string& url, bool allow_local) {
  if (url.empty()) return absl::InvalidArgumentError("source URL is empty");
  bool local = url[0] == '/' || absl::StartsWith(url, "file://");
  bool known = local;
  for (const char* scheme : {"git://", "http://", "https://", "ssh://"}) {
    if (absl::StartsWith(url, scheme) && url.size() > strlen(scheme)) known = true;
  }
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("source URL \"", RedactUrl(url),
                     "\" must start with file://, git://, http://, https://, ssh:// or /"));
  }
  if (UrlCarriesSecret(url)) {
    return absl::InvalidArgumentError(
        absl::StrCat("source URL \"", RedactUrl(url),
                     "\" carries credentials; put them in a credential (--credentials-dir on the "
                     "control plane) and name it with --credentials"));
  }
  if (local && !allow_local) {
    return absl::PermissionDeniedError(absl::StrCat(
        "source URL \"", url,
        "\" is on the control plane's own disk; local sources need --allow-local-sources"));
  }
  return absl::OkStatus();
}

namespace {
// Where go-getter's `sshkey` query parameter (a private key, base64) starts in `url`, at
// its value; npos without one.
size_t SshKeyParameter(absl::string_view url) {
  const size_t query = url.find('?');
  if (query == absl::string_view::npos) return absl::string_view::npos;
  for (size_t at = query; at < url.size(); at = url.find('&', at + 1)) {
    if (at == absl::string_view::npos) break;
    if (absl::StartsWithIgnoreCase(url.substr(at + 1), "sshkey=")) return at + 8;
  }
  return absl::string_view::npos;
}
}  // namespace

bool UrlCarriesSecret(absl::string_view url) {
  if (SshKeyParameter(url) != absl::string_view::npos) return true;
  const size_t scheme = url.find("://");
  if (scheme == absl::string_view::npos) return false;
  const size_t host = scheme + 3;
  const size_t end = std::min(url.find_first_of("/?#", host), url.size());
  const size_t at = url.substr(0, end).rfind('@');
  if (at == absl::string_view::npos || at < host) return false;
  absl::string_view named = url.substr(0, scheme);  // "ssh", "git::ssh"
  if (size_t colon = named.rfind(':'); colon != absl::string_view::npos) {
    named.remove_prefix(colon + 1);
  }
  return !absl::EqualsIgnoreCase(named, "ssh") ||
         absl::StrContains(url.substr(host, at - host), ':');
}

std::string SecretInUrlRefusal(const std::string& url, absl::string_view flag) {
  // Never sent, nor shown again: in a repository's file it is a leak already.
  return absl::StrCat("\"", RedactUrl(url.substr(0, 256)),
                      "\" carries credentials in its URL, which gitfleet never sends nor shows: "
                      "give the control plane a credential for it (",
                      flag, "), and take it out of the repository");
}

std::string RedactUrl(const std::string& url) {
  std::string out = url;
  // go-getter's sshkey parameter: its value.
  if (const size_t key = SshKeyParameter(out); key != std::string::npos) {
    const size_t end = std::min(out.find_first_of("&#", key), out.size());
    out.replace(key, end - key, "***");
  }
  size_t scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  size_t host = scheme + 3;
  size_t end = out.find_first_of("/?#", host);
  size_t at = out.rfind('@', end == std::string::npos ? std::string::npos : end);
  if (at == std::string::npos || at < host) return out;
  return absl::StrCat(out.substr(0, host), "***@", out.substr(at + 1));
}

}  // namespace gitfleet

namespace gitfleet {
namespace {

// `url` with a host alone ending in "/", and an ssh:// URL's account left out.
std::string PrefixForm(std::string url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t host = scheme + 3;
  const size_t end = std::min(url.find_first_of("/?#", host), url.size());
  if (absl::StartsWith(url, "ssh://")) {
    const size_t at = url.rfind('@', end - 1);
    if (at != std::string::npos && at >= host && at < end) url.erase(host, at + 1 - host);
  }
  return WholeHostPrefix(std::move(url));
}

}  // namespace

absl::StatusOr<std::pair<std::string, std::string>> SplitCredentialEntry(const std::string& entry) {
  const size_t equals = entry.rfind('=');
  const std::string shown = RedactUrl(entry).substr(0, 256);
  if (equals == std::string::npos || equals == 0 || equals + 1 == entry.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown, " is not PREFIX=NAME (a URL prefix and a credential's name)"));
  }
  std::pair<std::string, std::string> out(entry.substr(0, equals), entry.substr(equals + 1));
  if (absl::Status s = ValidateName("credential", out.second); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(shown, ": ", s.message()));
  }
  if (absl::StartsWith(out.first, "http://") && !IsLoopbackHost(UrlAuthority(out.first))) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown,
                     ": a credential is never sent over plain http (only to a server on "
                     "this machine); use https://"));
  }
  return out;
}

absl::StatusOr<CredentialPrefixes> ParseCredentialPrefixes(
    const std::vector<std::string>& entries) {
  CredentialPrefixes out;
  std::set<std::string> seen;
  for (const std::string& entry : entries) {
    GF_ASSIGN_OR_RETURN(auto split, SplitCredentialEntry(entry));
    const auto& [prefix, name] = split;
    const std::string shown = RedactUrl(entry).substr(0, 256);
    if (!(absl::StartsWith(prefix, "https://") || absl::StartsWith(prefix, "ssh://") ||
          absl::StartsWith(prefix, "http://")) ||
        prefix.size() <= prefix.find("://") + 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(shown,
                       ": the prefix is not an https:// or ssh:// URL prefix (a credential is only "
                       "ever sent to the host it names)"));
    }
    if (absl::Status s = CheckSourceUrl(prefix, /*allow_local=*/false); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(shown, ": ", s.message()));
    }
    if (!seen.insert(PrefixForm(prefix)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(shown, ": ", RedactUrl(prefix), " is given a credential twice"));
    }
    out.emplace_back(PrefixForm(prefix), name);
  }
  return out;
}

std::string CredentialForUrl(const CredentialPrefixes& prefixes, const std::string& url) {
  const std::string form = PrefixForm(url);
  const std::pair<std::string, std::string>* best = nullptr;
  for (const auto& entry : prefixes) {
    if (absl::StartsWith(form, PrefixForm(entry.first)) &&
        (best == nullptr || entry.first.size() > best->first.size())) {
      best = &entry;
    }
  }
  return best == nullptr ? "" : best->second;
}

bool UrlPlainlyUnder(const std::string& url, const std::vector<std::string>& prefixes) {
  for (absl::string_view bad : {"%", "\\", "?", "#"}) {
    if (absl::StrContains(url, bad)) return false;
  }
  for (absl::string_view segment : absl::StrSplit(url, '/')) {
    if (segment == "." || segment == "..") return false;
  }
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&url](const std::string& prefix) { return UrlUnderPrefix(url, prefix); });
}

bool UrlUnderPrefix(const std::string& url, const std::string& prefix) {
  const std::string form = PrefixForm(url);
  const std::string under = PrefixForm(prefix);
  if (under.empty() || !absl::StartsWith(form, under)) return false;
  absl::string_view rest = absl::string_view(form).substr(under.size());
  return under.back() == '/' || rest.empty() || rest[0] == '/' || rest == ".git";
}

}  // namespace gitfleet
