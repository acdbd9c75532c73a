#include "controlplane/source/tls_stream.h"

#include <arpa/inet.h>
#include <git2.h>
#include <git2/sys/stream.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "controlplane/source/timed_stream.h"

namespace gitfleet {
namespace {

thread_local const TlsClientIdentity* fetch_identity = nullptr;

int Fail(int klass, const std::string& message) {
  git_error_set_str(klass, message.c_str());
  return -1;
}

// OpenSSL's own words for what failed, or "" (and the queue cleared).
std::string OpenSslError() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof(text));
    out = text;  // the last is the most specific
  }
  return out;
}

// A BIO that reads and writes the wrapped git_stream (the timed socket, or a proxy's
// tunnel), so that its deadline and cancellation hold for TLS too.
int BioWrite(BIO* bio, const char* data, int length) {
  auto* io = static_cast<git_stream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const ssize_t n = io->write(io, data, static_cast<size_t>(length), 0);
  return n < 0 ? -1 : static_cast<int>(n);
}

int BioRead(BIO* bio, char* data, int length) {
  auto* io = static_cast<git_stream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const ssize_t n = io->read(io, data, static_cast<size_t>(length));
  return n < 0 ? -1 : static_cast<int>(n);
}

int BioPuts(BIO* bio, const char* text) {
  return BioWrite(bio, text, static_cast<int>(strlen(text)));
}

long BioCtrl(BIO*, int command, long, void*) { return command == BIO_CTRL_FLUSH ? 1 : 0; }

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  BIO_set_data(bio, nullptr);
  return 1;
}

int BioDestroy(BIO* bio) { return bio != nullptr ? 1 : 0; }

BIO_METHOD* StreamBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gitfleet git stream");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_puts(m, BioPuts);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    BIO_meth_set_destroy(m, BioDestroy);
    return m;
  }();
  return method;
}

// One context for every connection: the system's CAs, TLS 1.2 or later. Verification is
// judged after the handshake (SSL_get_verify_result), as libgit2's own stream does, so a
// failed one reaches the fetch's certificate check.
SSL_CTX* Context() {
  static SSL_CTX* context = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    if (c == nullptr) return c;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c, SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_default_verify_paths(c);
    return c;
  }();
  return context;
}

struct TlsStream {
  git_stream parent;  // first: libgit2 hands this pointer back
  git_stream* io = nullptr;
  bool owned = false;
  bool connected = false;
  std::string host;
  bool presents_identity = false;  // a client certificate is offered
  SSL* ssl = nullptr;
  std::string der;
  git_cert_x509 cert_info{};
};

// The identity's certificate chain and key on `ssl`; an error names what is wrong.
int UseIdentity(SSL* ssl, const TlsClientIdentity& identity) {
  std::unique_ptr<BIO, decltype(&BIO_free)> certs(
      BIO_new_mem_buf(identity.cert_pem.data(), static_cast<int>(identity.cert_pem.size())),
      &BIO_free);
  X509* leaf = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr || SSL_use_certificate(ssl, leaf) != 1) {
    X509_free(leaf);
    return Fail(GIT_ERROR_SSL, "the credential's client certificate cannot be read");
  }
  X509_free(leaf);
  while (X509* more = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr)) {
    SSL_add0_chain_cert(ssl, more);  // owned by ssl now
  }
  ERR_clear_error();  // the end of the PEM list
  std::unique_ptr<BIO, decltype(&BIO_free)> key(
      BIO_new_mem_buf(identity.key_pem.data(), static_cast<int>(identity.key_pem.size())),
      &BIO_free);
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key.get(), nullptr, crypto::NoPemPassphrase, nullptr);
  const bool used =
      pkey != nullptr && SSL_use_PrivateKey(ssl, pkey) == 1 && SSL_check_private_key(ssl) == 1;
  EVP_PKEY_free(pkey);
  if (!used) {
    return Fail(GIT_ERROR_SSL,
                absl::StrCat("the credential's client key cannot be used: ", OpenSslError()));
  }
  return 0;
}

// libgit2's error for a failed TLS call: the socket's own (a timeout, a reset) when it set
// one, else OpenSSL's words.
int SslFailure(TlsStream* st, int rc, const char* what) {
  const int error = SSL_get_error(st->ssl, rc);
  const std::string words = OpenSslError();
  if (error == SSL_ERROR_SYSCALL && words.empty() && git_error_last() != nullptr &&
      git_error_last()->message != nullptr) {
    return -1;  // the timed socket said why
  }
  // The alerts a server sends when it wants a client certificate, or refuses the one given.
  std::string hint;
  if (absl::StrContains(words, "certificate required") ||
      absl::StrContains(words, "bad certificate") || absl::StrContains(words, "unknown ca") ||
      absl::StrContains(words, "certificate unknown") ||
      (!st->presents_identity && absl::StrContains(words, "handshake failure"))) {
    hint = st->presents_identity
               ? " (the server refused the credential's client certificate: is it signed by a "
                 "CA the server trusts, and still valid?)"
               : " (the server may ask for a client certificate: put one in the credential's "
                 "tls.crt and tls.key)";
  }
  return Fail(GIT_ERROR_SSL, absl::StrCat("TLS ", what, " ", st->host, " failed",
                                          words.empty() ? "" : absl::StrCat(": ", words), hint));
}

int Connect(git_stream* stream) {
  auto* st = reinterpret_cast<TlsStream*>(stream);
  if (st->owned) {
    if (int rc = st->io->connect(st->io); rc < 0) return rc;
  }
  BIO* bio = BIO_new(StreamBioMethod());
  if (bio == nullptr) return Fail(GIT_ERROR_SSL, "out of memory");
  BIO_set_data(bio, st->io);
  SSL_set_bio(st->ssl, bio, bio);
  // The name for SNI (never an address), and the name or address the certificate must hold.
  in6_addr address;
  const bool literal = inet_pton(AF_INET, st->host.c_str(), &address) == 1 ||
                       inet_pton(AF_INET6, st->host.c_str(), &address) == 1;
  X509_VERIFY_PARAM* param = SSL_get0_param(st->ssl);
  if (literal) {
    X509_VERIFY_PARAM_set1_ip_asc(param, st->host.c_str());
  } else {
    SSL_set_tlsext_host_name(st->ssl, st->host.c_str());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, st->host.c_str(), 0);
  }
  ERR_clear_error();
  git_error_clear();
  if (int rc = SSL_connect(st->ssl); rc <= 0) {
    return SslFailure(st, rc, "handshake with");
  }
  st->connected = true;
  X509* peer = SSL_get1_peer_certificate(st->ssl);
  if (peer == nullptr) return Fail(GIT_ERROR_SSL, "the server did not provide a certificate");
  X509_free(peer);
  if (const long verified = SSL_get_verify_result(st->ssl); verified != X509_V_OK) {
    git_error_set_str(GIT_ERROR_SSL,
                      absl::StrCat("the TLS certificate of ", st->host,
                                   " is invalid: ", X509_verify_cert_error_string(verified))
                          .c_str());
    return GIT_ECERTIFICATE;
  }
  return 0;
}

int Certificate(git_cert** out, git_stream* stream) {
  auto* st = reinterpret_cast<TlsStream*>(stream);
  X509* peer = SSL_get1_peer_certificate(st->ssl);
  if (peer == nullptr) return Fail(GIT_ERROR_NET, "the server did not provide a certificate");
  const int length = i2d_X509(peer, nullptr);
  if (length <= 0) {
    X509_free(peer);
    return Fail(GIT_ERROR_NET, "failed to retrieve certificate information");
  }
  st->der.assign(static_cast<size_t>(length), '\0');
  auto* cursor = reinterpret_cast<unsigned char*>(st->der.data());
  i2d_X509(peer, &cursor);
  X509_free(peer);
  st->cert_info.parent.cert_type = GIT_CERT_X509;
  st->cert_info.data = st->der.data();
  st->cert_info.len = st->der.size();
  *out = &st->cert_info.parent;
  return 0;
}

int SetProxy(git_stream* stream, const git_proxy_options* options) {
  auto* st = reinterpret_cast<TlsStream*>(stream);
  if (st->io->set_proxy == nullptr) return Fail(GIT_ERROR_NET, "no proxy support");
  return st->io->set_proxy(st->io, options);
}

ssize_t Read(git_stream* stream, void* data, size_t length) {
  auto* st = reinterpret_cast<TlsStream*>(stream);
  ERR_clear_error();
  git_error_clear();
  const int rc = SSL_read(st->ssl, data, static_cast<int>(std::min<size_t>(length, INT_MAX)));
  if (rc > 0) return rc;
  if (SSL_get_error(st->ssl, rc) == SSL_ERROR_ZERO_RETURN) return 0;  // closed cleanly
  return SslFailure(st, rc, "read from");
}

ssize_t Write(git_stream* stream, const char* data, size_t length, int) {
  auto* st = reinterpret_cast<TlsStream*>(stream);
  ERR_clear_error();
  git_error_clear();
  const int rc = SSL_write(st->ssl, data, static_cast<int>(std::min<size_t>(length, INT_MAX)));
  if (rc > 0) return rc;
  return SslFailure(st, rc, "write to");
}

int Close(git_stream* stream) {
  auto* st = reinterpret_cast<TlsStream*>(stream);
  if (st->connected) {
    ERR_clear_error();
    SSL_shutdown(st->ssl);  // a courtesy: the server may be gone already
    ERR_clear_error();
    st->connected = false;
  }
  return st->owned ? st->io->close(st->io) : 0;
}

void Free(git_stream* stream) {
  auto* st = reinterpret_cast<TlsStream*>(stream);
  if (st->owned) st->io->free(st->io);
  SSL_free(st->ssl);
  delete st;
}

int Wrap(git_stream** out, git_stream* in, const char* host, bool owned) {
  SSL_CTX* context = Context();
  if (context == nullptr) return Fail(GIT_ERROR_SSL, "cannot set up TLS");
  SSL* ssl = SSL_new(context);
  if (ssl == nullptr) return Fail(GIT_ERROR_SSL, "cannot set up a TLS connection");
  if (fetch_identity != nullptr && !fetch_identity->empty()) {
    if (int rc = UseIdentity(ssl, *fetch_identity); rc < 0) {
      SSL_free(ssl);
      return rc;
    }
  }
  auto* st = new TlsStream();
  st->io = in;
  st->owned = owned;
  st->host = host;
  st->ssl = ssl;
  st->presents_identity = fetch_identity != nullptr && !fetch_identity->empty();
  st->parent.version = GIT_STREAM_VERSION;
  st->parent.encrypted = 1;
  st->parent.proxy_support = in->proxy_support;
  st->parent.connect = Connect;
  st->parent.certificate = Certificate;
  st->parent.set_proxy = SetProxy;
  st->parent.read = Read;
  st->parent.write = Write;
  st->parent.close = Close;
  st->parent.free = Free;
  *out = &st->parent;
  return 0;
}

int WrapExisting(git_stream** out, git_stream* in, const char* host) {
  return Wrap(out, in, host, /*owned=*/false);
}

int Init(git_stream** out, const char* host, const char* port) {
  git_stream* socket = nullptr;
  if (int rc = NewTimedSocketStream(&socket, host, port); rc < 0) return rc;
  if (int rc = Wrap(out, socket, host, /*owned=*/true); rc < 0) {
    socket->free(socket);
    return rc;
  }
  return 0;
}

}  // namespace

bool RegisterTlsStream() {
  if (Context() == nullptr) return false;
  git_stream_registration registration{};
  registration.version = GIT_STREAM_VERSION;
  registration.init = Init;
  registration.wrap = WrapExisting;
  return git_stream_register(GIT_STREAM_TLS, &registration) == 0;
}

FetchTlsIdentity::FetchTlsIdentity(const TlsClientIdentity* identity) : previous_(fetch_identity) {
  fetch_identity = identity;
}

FetchTlsIdentity::~FetchTlsIdentity() { fetch_identity = previous_; }

}  // namespace gitfleet
