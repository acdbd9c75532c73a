#include "common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace gitfleet::crypto {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

bool X25519(const uint8_t* secret, const uint8_t* peer, uint8_t* out) {
  Pkey mine(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret, 32));
  Pkey theirs(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer, 32));
  if (mine == nullptr || theirs == nullptr) return false;
  PkeyCtx ctx(EVP_PKEY_CTX_new(mine.get(), nullptr));
  size_t len = 32;
  if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), theirs.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), out, &len) != 1 || len != 32) {
    return false;
  }
  uint8_t any = 0;
  for (size_t i = 0; i < 32; ++i) any |= out[i];
  return any != 0;
}

bool X25519Public(const uint8_t* secret, uint8_t* out) {
  Pkey mine(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret, 32));
  size_t len = 32;
  return mine != nullptr && EVP_PKEY_get_raw_public_key(mine.get(), out, &len) == 1 && len == 32;
}

bool HkdfSha256(absl::string_view ikm, absl::string_view salt, absl::string_view info, uint8_t* out,
                size_t out_len) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
  if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), Bytes(ikm), static_cast<int>(ikm.size())) != 1 ||
      EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), Bytes(info), static_cast<int>(info.size())) != 1) {
    return false;
  }
  if (!salt.empty() &&
      EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), Bytes(salt), static_cast<int>(salt.size())) != 1) {
    return false;
  }
  size_t len = out_len;
  return EVP_PKEY_derive(ctx.get(), out, &len) == 1 && len == out_len;
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), Bytes(data), data.size(), digest,
       &len);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string StandardWebhookSignature(absl::string_view secret, absl::string_view id,
                                     absl::string_view timestamp, absl::string_view body) {
  std::string key;
  absl::string_view encoded = secret;
  if (!absl::ConsumePrefix(&encoded, "whsec_") || !absl::Base64Unescape(encoded, &key)) {
    key = std::string(secret);
  }
  return absl::StrCat(
      "v1,", absl::Base64Escape(HmacSha256(key, absl::StrCat(id, ".", timestamp, ".", body))));
}

std::string Sha512(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha512(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::optional<std::string> DigestNamed(absl::string_view algorithm, absl::string_view data) {
  const EVP_MD* md = EVP_get_digestbyname(std::string(algorithm).c_str());
  if (md == nullptr) return std::nullopt;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, md, nullptr) != 1) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string Sha256(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

absl::StatusOr<std::string> AeadOpen(Aead aead, absl::string_view key, absl::string_view nonce,
                                     absl::string_view ciphertext, absl::string_view tag,
                                     absl::string_view aad) {
  const EVP_CIPHER* cipher =
      aead == Aead::kChaCha20Poly1305 ? EVP_chacha20_poly1305() : EVP_aes_256_gcm();
  if (key.size() != 32 || tag.size() != 16 || nonce.empty() || nonce.size() > 128 ||
      (aead == Aead::kChaCha20Poly1305 && nonce.size() != 12)) {
    return absl::InvalidArgumentError("a key, nonce or tag of the wrong size");
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  std::string out(ciphertext.size() + 16, '\0');
  int len = 0;
  int tail = 0;
  unsigned char* buffer = reinterpret_cast<unsigned char*>(out.data());
  const bool ok =
      ctx != nullptr && EVP_DecryptInit_ex(ctx.get(), cipher, nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_IVLEN, static_cast<int>(nonce.size()),
                          nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key), Bytes(nonce)) == 1 &&
      (aad.empty() || EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(aad),
                                        static_cast<int>(aad.size())) == 1) &&
      EVP_DecryptUpdate(ctx.get(), buffer, &len, Bytes(ciphertext),
                        static_cast<int>(ciphertext.size())) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, 16, const_cast<char*>(tag.data())) ==
          1 &&
      EVP_DecryptFinal_ex(ctx.get(), buffer + len, &tail) == 1;
  if (!ok) return absl::InvalidArgumentError("authentication failed");
  out.resize(static_cast<size_t>(len + tail));
  return out;
}

int NoPemPassphrase(char*, int, int, void*) { return 0; }

bool SecureEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace gitfleet::crypto
