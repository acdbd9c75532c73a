#ifndef GITFLEET_CONTROLPLANE_RENDER_SOPS_H_
#define GITFLEET_CONTROLPLANE_RENDER_SOPS_H_

// Decryption of SOPS-encrypted YAML and JSON files (getsops/sops), as Flux repositories
// keep Kubernetes Secrets, with age identities (age.h) or PGP keys (pgp.h): the data key is
// opened with one of them, each value with AES-256-GCM bound to its path, and the document's MAC is
// checked, so a value moved, removed or changed after encryption fails the file.
//
//   absl::StatusOr<std::string> plain = DecryptSopsFile("apps/db/secret.yaml", text, keys);
//
// Read as SOPS writes them: every document of a YAML file is one tree under the first
// document's metadata; dotenv and binary files too; encrypted_regex, unencrypted_regex and the
// suffixes choose the values, mac_only_encrypted too. Not read (each refused by name): key groups
// (Shamir), comment-based rules (gitfleet does not keep comments), cloud KMS keys, and SOPS's
// INI format.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controlplane/render/age.h"
#include "controlplane/render/pgp.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

// The keys a SOPS file's data key may be opened with: age identities, PGP keys, or both
// (either may be null). SOPS's order: age first.
struct SopsKeys {
  const AgeIdentities* age = nullptr;
  const PgpKeys* pgp = nullptr;
  // A team's share of `pgp`: only these fingerprints (upper-case; a key's or its primary's)
  // may open a file. Null: any of them. (A team's age identities are a subset already:
  // AgeIdentities::Only.)
  const std::vector<std::string>* pgp_only = nullptr;
};

// Whether `content` is a SOPS-encrypted YAML or JSON document: its first document has a
// top-level `sops` mapping with a `mac`. Cheap for files that are not.
bool IsSopsFile(absl::string_view content);
// Whether the file at `path` is SOPS-encrypted in the format its name says (as SOPS and
// Flux choose it): .yaml/.yml and .json as above, .env dotenv (sops_mac=), .ini INI, any
// other name SOPS's binary format (JSON with one "data" value).
bool IsSopsFile(absl::string_view path, absl::string_view content);

// The plaintext of the SOPS-encrypted file `content` at `path`, in the format its name says,
// as `sops --decrypt` writes it: YAML without the sops metadata, JSON in its key order,
// dotenv lines, or a binary file's bytes (INI is refused). NotFound when none of `identities` is
// one of its age recipients (the message names the recipients); InvalidArgument naming `path` when
// it is malformed, uses what gitfleet does not read, or fails authentication. The message never
// holds a decrypted value.
absl::StatusOr<std::string> DecryptSopsFile(const std::string& path, absl::string_view content,
                                            const SopsKeys& keys);
absl::StatusOr<std::string> DecryptSopsFile(const std::string& path, absl::string_view content,
                                            const AgeIdentities& identities);

// Decrypts, in place, the SOPS-encrypted files among `files` (IsSopsFile(path, content)):
// manifests, and what a kustomization's secretGenerator reads. One under
// `path` (the bundle's folder) that cannot be decrypted fails the call naming it; one
// elsewhere (a kustomize base, another bundle's secret) is left as it is, and fails the
// render only if the render uses it. `notes` (may be null) receives what was decrypted
// and what was left.
absl::Status DecryptSopsFiles(const std::string& path, const SopsKeys& keys,
                              std::vector<RepoFile>* files, std::vector<std::string>* notes);
absl::Status DecryptSopsFiles(const std::string& path, const AgeIdentities& identities,
                              std::vector<RepoFile>* files, std::vector<std::string>* notes);

// The secret `shares` (at least 2, all of one length) of Shamir's secret sharing give back,
// as SOPS splits a data key across key groups (HashiCorp Vault's scheme: GF(2^8), each share
// its values followed by its point). InvalidArgument for shares that cannot be combined.
absl::StatusOr<std::string> CombineShamirShares(const std::vector<std::string>& shares);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_SOPS_H_
