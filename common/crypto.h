#ifndef GITFLEET_COMMON_CRYPTO_H_
#define GITFLEET_COMMON_CRYPTO_H_

// The few primitives age and SOPS decryption, webhook signatures and chart archive digests
// need, over OpenSSL's
// EVP interface. Each returns false (or an error) rather than throwing or aborting on bad
// input: the input comes from repositories and from the network.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gitfleet::crypto {

// X25519(`secret`, `peer`) into `out` (32 bytes each); false when OpenSSL refuses (a
// low-order peer point gives the all-zero secret, which is refused too).
bool X25519(const uint8_t* secret, const uint8_t* peer, uint8_t* out);
// The public key of the X25519 `secret` into `out`.
bool X25519Public(const uint8_t* secret, uint8_t* out);
// HKDF-SHA-256 (RFC 5869); an empty `salt` is no salt. `out_len` at most 255 * 32.
bool HkdfSha256(absl::string_view ikm, absl::string_view salt, absl::string_view info, uint8_t* out,
                size_t out_len);
std::string HmacSha256(absl::string_view key, absl::string_view data);
// Standard Webhooks' signature of a delivery (www.standardwebhooks.com; GitLab's signing
// token): "v1," and the base64 HMAC-SHA256 of "ID.TIMESTAMP.BODY", under the key a secret
// "whsec_BASE64" encodes (any other secret is the key as written).
std::string StandardWebhookSignature(absl::string_view secret, absl::string_view id,
                                     absl::string_view timestamp, absl::string_view body);
std::string Sha512(absl::string_view data);
std::string Sha256(absl::string_view data);
// The digest of `data` by OpenSSL's name for its algorithm ("sha256", "sha512", "sha1",
// "md5", ...); nullopt for a name OpenSSL does not know.
std::optional<std::string> DigestNamed(absl::string_view algorithm, absl::string_view data);

enum class Aead { kChaCha20Poly1305, kAes256Gcm };
// The plaintext of `ciphertext` authenticated by the 16-byte `tag`, or InvalidArgument
// when authentication fails. `key` is 32 bytes; `nonce` 12 bytes for ChaCha20-Poly1305,
// any length from 1 to 128 for AES-GCM (SOPS uses 32).
absl::StatusOr<std::string> AeadOpen(Aead aead, absl::string_view key, absl::string_view nonce,
                                     absl::string_view ciphertext, absl::string_view tag,
                                     absl::string_view aad);

// Constant-time equality of two byte strings of the same length (false when they differ
// in length).
bool SecureEquals(absl::string_view a, absl::string_view b);

// A pem_password_cb for PEM_read_bio_PrivateKey that gives no passphrase: an encrypted key
// then fails to read, where OpenSSL's default would ask for one on the terminal.
int NoPemPassphrase(char* buffer, int size, int rwflag, void* userdata);

}  // namespace gitfleet::crypto

#endif  // GITFLEET_COMMON_CRYPTO_H_
