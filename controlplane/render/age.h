#ifndef GITFLEET_CONTROLPLANE_RENDER_AGE_H_
#define GITFLEET_CONTROLPLANE_RENDER_AGE_H_

// Decryption of age files (age-encryption.org/v1) with X25519 identities: how SOPS keeps a
// document's data key for its age recipients, and how Flux reads it back.
//
//   absl::StatusOr<AgeIdentities> keys = AgeIdentities::Parse(key_file, "--sops-age-key-file");
//   absl::StatusOr<std::string> data_key = keys->Decrypt(armored, /*max_plaintext=*/1024);
//
// Only X25519 stanzas are read (age-keygen's keys, the ones SOPS and Flux use); a file for
// passphrases, SSH keys or plugins has none an identity here opens. Everything read is
// bounded: a file comes from a repository.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gitfleet {

class AgeIdentities {
 public:
  // The identities of an age key file, as age-keygen writes it: "AGE-SECRET-KEY-1..." lines,
  // "#" comments and blank lines. InvalidArgument naming `origin` and the line for anything
  // else, and for a file with none or more than 64.
  static absl::StatusOr<AgeIdentities> Parse(absl::string_view text, const std::string& origin);

  size_t size() const { return identities_.size(); }
  // Their public keys as age writes them ("age1..."), in file order.
  std::vector<std::string> Recipients() const;
  // The identities whose public keys are among `recipients` ("age1..."), in file order: a
  // team's share of the control plane's keys. Possibly none.
  AgeIdentities Only(const std::vector<std::string>& recipients) const;

  // The plaintext of an age file, armored ("-----BEGIN AGE ENCRYPTED FILE-----") or not,
  // that one of these identities is a recipient of. NotFound when none is;
  // InvalidArgument when the file is malformed, fails authentication or its plaintext is
  // longer than `max_plaintext`.
  absl::StatusOr<std::string> Decrypt(absl::string_view file, size_t max_plaintext) const;

 private:
  struct Identity {
    std::array<uint8_t, 32> secret;
    std::array<uint8_t, 32> public_key;
  };
  std::vector<Identity> identities_;
};

// Bech32 (BIP 173, without its length limit, as age uses it): `hrp` and the 8-bit `data`,
// in lower case.
std::string Bech32Encode(absl::string_view hrp, const std::vector<uint8_t>& data);
// The human-readable part and 8-bit data of a Bech32 string (either case, not mixed), or
// InvalidArgument.
absl::StatusOr<std::pair<std::string, std::vector<uint8_t>>> Bech32Decode(absl::string_view text);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_AGE_H_
