#ifndef GITFLEET_CONTROLPLANE_RENDER_PGP_H_
#define GITFLEET_CONTROLPLANE_RENDER_PGP_H_

// OpenPGP secret keys that SOPS data keys are decrypted with, through GnuPG (`gpg`, from
// Debian's gnupg), as SOPS and Flux decrypt them: the keys are imported into a keyring of
// their own (a 0700 GNUPGHOME in `keyring_dir`), and each message is handed to
// `gpg --decrypt` there, bounded in time and output.
//
//   absl::StatusOr<std::shared_ptr<PgpKeys>> keys =
//       PgpKeys::Import(armored, {"/usr/bin/gpg", data_dir + "/gpg"}, "--sops-pgp-key-file");
//   absl::StatusOr<std::string> data_key = (*keys)->Decrypt(message, 1024);
//
// A key protected by a passphrase fails each decryption with gpg's word for it: nothing
// could type the passphrase. Thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sync.h"

namespace gitfleet {

class PgpKeys {
 public:
  struct Options {
    std::string gpg = "/usr/bin/gpg";
    // Where keyrings (the imported secret keys) live: an owner-only folder of the control
    // plane's, emptied at its start (what a crash left). When its path is too long for the
    // agent's socket, gpg is pointed at it through a link in /tmp, which holds no key.
    std::string keyring_dir = "/tmp";
  };
  // The secret keys in `armored` (one or more "-----BEGIN PGP PRIVATE KEY BLOCK-----"
  // blocks), imported. InvalidArgument naming `origin` when there is none, one needs a
  // passphrase, or gpg refuses them; FailedPrecondition when gpg is not installed.
  static absl::StatusOr<std::shared_ptr<PgpKeys>> Import(absl::string_view armored,
                                                         const Options& options,
                                                         const std::string& origin);
  ~PgpKeys();  // stops the keyring's agent and removes the keyring
  PgpKeys(const PgpKeys&) = delete;
  PgpKeys& operator=(const PgpKeys&) = delete;

  // The fingerprints of the keys and their subkeys, upper-case hex, as SOPS names them.
  const std::vector<std::string>& fingerprints() const { return fingerprints_; }

  // The plaintext of an OpenPGP message (armored) one of the keys opens. NotFound when
  // none is a recipient, or (with `only`, upper-case fingerprints) when the key that opens
  // it, and its primary key, are not among `only`: a team's share of the keys (gpg says
  // which key it used; the plaintext is then dropped). InvalidArgument when it cannot be
  // decrypted or its plaintext is longer than `max_plaintext`.
  absl::StatusOr<std::string> Decrypt(absl::string_view message, size_t max_plaintext,
                                      const std::vector<std::string>* only = nullptr) const;

 private:
  PgpKeys(Options options, std::string home, std::string link_dir)
      : options_(std::move(options)),
        home_(std::move(home)),
        link_dir_(std::move(link_dir)),
        gpg_home_(link_dir_.empty() ? home_ : link_dir_ + "/h") {}
  std::vector<std::string> Env() const;

  const Options options_;
  const std::string home_;      // the keyring
  const std::string link_dir_;  // a /tmp folder holding a link "h" to it, or ""
  const std::string gpg_home_;  // what gpg is told
  std::vector<std::string> fingerprints_;
  mutable Mutex mu_;  // one gpg at a time in the keyring
  mutable int messages_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_PGP_H_
