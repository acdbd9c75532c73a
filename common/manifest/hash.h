#ifndef GITFLEET_COMMON_MANIFEST_HASH_H_
#define GITFLEET_COMMON_MANIFEST_HASH_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace gitfleet {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);
// The 32 raw bytes of the SHA-256 of `data` (for tokens kept as hashes).
std::string Sha256Bytes(absl::string_view data);
// The 32 raw bytes a SHA-256 written as 64 hex digits (either case) stands for; nullopt
// for anything else.
std::optional<std::string> Sha256FromHex(absl::string_view hex);
// A new secret token: `prefix` and 64 hex digits of the system's randomness. Empty when
// there is none to be had.
std::string RandomToken(absl::string_view prefix);

// Incremental SHA-256 for hashing many pieces without concatenating them.
//
//   Sha256 h;
//   h.Update(a);
//   h.Update(b);
//   std::string hex = h.FinishHex();
//
// Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // Appends `data` with its length, so adjacent fields cannot run into each other.
  void UpdateField(absl::string_view data);
  std::string FinishHex();

 private:
  void* ctx_;  // EVP_MD_CTX
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MANIFEST_HASH_H_
