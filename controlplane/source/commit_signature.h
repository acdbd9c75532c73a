#ifndef GITFLEET_CONTROLPLANE_SOURCE_COMMIT_SIGNATURE_H_
#define GITFLEET_CONTROLPLANE_SOURCE_COMMIT_SIGNATURE_H_

// Commit signatures, checked as Flux's `verify` (mode HEAD) and Argo CD's signature keys
// check them: a source that names a key folder takes only commits whose own signature a
// key there made. Whoever can push to the repository, or to the server, cannot deploy
// without one of those keys.
//
// A key folder is one of --credentials-dir (a mounted Secret, as Flux's verify secret):
//   *.asc             OpenPGP public keys, ASCII-armored (gpg --export --armor KEY)
//   allowed_signers   SSH public keys, as git's gpg.ssh.allowedSignersFile lists them
//                     ("PRINCIPAL[,PRINCIPAL…] [OPTIONS] KEYTYPE BASE64"), for commits
//                     signed with gpg.format=ssh
// Checked with Debian's own tools: gpgv (OpenPGP), ssh-keygen -Y verify (SSH, namespace
// "git", as git signs). X.509 (gpgsm) signatures are refused by name.
//
//   GF_ASSIGN_OR_RETURN(SigningKeys keys, LoadSigningKeys(dir, "release-signers"));
//   GF_ASSIGN_OR_RETURN(std::string signer, VerifyCommitSignature(keys, signature, data));

#include <string>

#include "absl/status/statusor.h"

namespace gitfleet {

struct SigningKeys {
  std::string name;             // the folder's, for messages
  std::string pgp_keyring;      // the OpenPGP keys, dearmored and concatenated (a keyring)
  int pgp_keys = 0;             // how many armored blocks
  std::string allowed_signers;  // the allowed_signers file, as written
};

// The keys of folder `name` in `dir`. InvalidArgument naming the folder and the file when
// the folder is missing, holds no key, a *.asc file is not an armored public key (or is a
// private one), a file is over 1 MiB, or they are over 4 MiB (or 256 files) together.
absl::StatusOr<SigningKeys> LoadSigningKeys(const std::string& dir, const std::string& name);

// Whether `signature` (a commit's gpgsig header) over `signed_data` (the commit without
// it) was made by one of `keys`. Returns who signed (an OpenPGP key's fingerprint, or the
// SSH principal). PermissionDenied saying why not: no key there made it, a bad signature,
// a kind of signature the folder holds no keys for. Unavailable when the tool to check it
// is missing.
absl::StatusOr<std::string> VerifyCommitSignature(const SigningKeys& keys,
                                                  const std::string& signature,
                                                  const std::string& signed_data);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_COMMIT_SIGNATURE_H_
