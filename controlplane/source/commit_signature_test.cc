#include "controlplane/source/commit_signature.h"

#include <fstream>
#include <iterator>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "controlplane/source/git_repository.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/git_fixture.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::Run;
using ::gitfleet::testing::TempDir;
using ::testing::HasSubstr;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void Write(const std::string& path, const std::string& contents) {
  Run(absl::StrCat("mkdir -p \"$(dirname '", path, "')\""));
  std::ofstream(path) << contents;
}

// A repository with commits signed as git signs them: with an OpenPGP key (gpg), with an
// SSH key (gpg.format=ssh), with keys nobody trusts, and not at all.
class CommitSignatureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = TempDir("keys");
    // gpg's agent socket lives in GNUPGHOME, whose path must be short.
    gnupg_ = "/tmp/gf-gpg-XXXXXX";
    ASSERT_NE(mkdtemp(gnupg_.data()), nullptr);
    std::string out;
    ASSERT_EQ(::gitfleet::testing::Run(
                  absl::StrCat(
                      "set -e; cd '", keys_, "'; export GNUPGHOME='", gnupg_, "';",
                      "gen() { gpg --batch --passphrase '' --quick-gen-key \"$1\" ed25519 sign "
                      "never; };",
                      "gen 'Release <release@example.com>'; gen 'Stranger <stranger@example.com>';",
                      "gpg --export --armor release@example.com > release.asc;",
                      "gpg --list-keys --with-colons release@example.com | awk -F: '/^fpr/ "
                      "{print $10; exit}' > release.fpr;",
                      "ssh-keygen -q -t ed25519 -N '' -C release -f ssh-release;",
                      "ssh-keygen -q -t ed25519 -N '' -C stranger -f ssh-stranger;",
                      "printf 'release@example.com %s\\n' \"$(cut -d' ' -f1,2 ssh-release.pub)\" "
                      "> allowed_signers"),
                  &out),
              0)
        << out;
    git_.Write("a.yaml", "a: 1\n");
    unsigned_ = git_.Commit("unsigned");
    pgp_ = Signed("-c user.signingkey=release@example.com", "pgp");
    pgp_stranger_ = Signed("-c user.signingkey=stranger@example.com", "pgp stranger");
    ssh_ =
        Signed(absl::StrCat("-c gpg.format=ssh -c user.signingkey=", keys_, "/ssh-release"), "ssh");
    ssh_stranger_ =
        Signed(absl::StrCat("-c gpg.format=ssh -c user.signingkey=", keys_, "/ssh-stranger"),
               "ssh stranger");
    repos_ = NewLibgit2Repositories(TempDir("cache"), {}, {"", /*allow_local=*/true});
    repo_ = *repos_->ForUrl(git_.url(), "");
    ASSERT_TRUE(repo_->Fetch().ok());
  }

  // A new commit signed with git's `options`; its id.
  std::string Signed(const std::string& options, const std::string& message) {
    git_.Write("a.yaml", absl::StrCat("a: ", message, "\n"));
    std::string out;
    EXPECT_EQ(::gitfleet::testing::Run(
                  absl::StrCat("cd '", git_.dir(), "' && GNUPGHOME='", gnupg_, "' git ", options,
                               " commit -q -S -am '", message, "' && git rev-parse HEAD"),
                  &out),
              0)
        << out;
    return std::string(absl::StripAsciiWhitespace(out));
  }

  absl::StatusOr<std::string> Verify(const SigningKeys& keys, const std::string& commit) {
    absl::StatusOr<GitRepository::Signed> signed_commit = repo_->CommitSignature(commit);
    if (!signed_commit.ok()) return signed_commit.status();
    return VerifyCommitSignature(keys, signed_commit->signature, signed_commit->data);
  }

  void TearDown() override {
    ::gitfleet::testing::Run(
        absl::StrCat("GNUPGHOME='", gnupg_, "' gpgconf --kill gpg-agent; rm -rf '", gnupg_, "'"));
  }

  std::string keys_;
  std::string gnupg_;
  GitFixture git_{TempDir("repo")};
  std::unique_ptr<GitRepositories> repos_;
  std::shared_ptr<GitRepository> repo_;
  std::string unsigned_, pgp_, pgp_stranger_, ssh_, ssh_stranger_;
};

TEST_F(CommitSignatureTest, TakesCommitsSignedByTheFoldersKeysAlone) {
  const std::string dir = TempDir("credentials");
  Write(dir + "/signers/release.asc", Read(keys_ + "/release.asc"));
  Write(dir + "/signers/allowed_signers", Read(keys_ + "/allowed_signers"));
  Write(dir + "/signers/README", "not a key: left alone");
  absl::StatusOr<SigningKeys> keys = LoadSigningKeys(dir, "signers");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->pgp_keys, 1);

  absl::StatusOr<std::string> signer = Verify(*keys, pgp_);
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ(*signer, std::string(absl::StripAsciiWhitespace(Read(keys_ + "/release.fpr"))));
  signer = Verify(*keys, ssh_);
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ(*signer, "release@example.com");

  EXPECT_EQ(repo_->CommitSignature(unsigned_).status().code(), absl::StatusCode::kNotFound);
  absl::Status stranger = Verify(*keys, pgp_stranger_).status();
  EXPECT_EQ(stranger.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(stranger.message(), HasSubstr("which signers does not hold"));
  stranger = Verify(*keys, ssh_stranger_).status();
  EXPECT_EQ(stranger.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(stranger.message(), HasSubstr("signers's allowed_signers does not list"));

  // A signature over other content: a commit whose header or tree was changed after.
  absl::StatusOr<GitRepository::Signed> pgp = repo_->CommitSignature(pgp_);
  ASSERT_TRUE(pgp.ok());
  EXPECT_THAT(VerifyCommitSignature(*keys, pgp->signature, pgp->data + "x").status().message(),
              HasSubstr("does not match its content"));
  absl::StatusOr<GitRepository::Signed> ssh = repo_->CommitSignature(ssh_);
  ASSERT_TRUE(ssh.ok());
  EXPECT_THAT(VerifyCommitSignature(*keys, ssh->signature, ssh->data + "x").status().message(),
              HasSubstr("its SSH signature does not verify"));

  // A folder of one kind of key does not take the other kind.
  Write(dir + "/pgp-only/release.asc", Read(keys_ + "/release.asc"));
  EXPECT_THAT(Verify(*LoadSigningKeys(dir, "pgp-only"), ssh_).status().message(),
              HasSubstr("holds no allowed_signers file"));
  EXPECT_THAT(
      VerifyCommitSignature(*keys, "-----BEGIN SIGNED MESSAGE-----\n", "").status().message(),
      HasSubstr("X.509"));
}

// An annotated tag's signature (git tag -s) is read from the tag object, for the commit
// it names alone; a lightweight tag has none.
TEST_F(CommitSignatureTest, ReadsASignedTagsSignature) {
  std::string out;
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("cd '", git_.dir(), "' && GNUPGHOME='", gnupg_,
                             "' git tag -s -u release@example.com -m 'release 1' v1 ", unsigned_,
                             " && git tag light ", unsigned_),
                &out),
            0)
      << out;
  ASSERT_TRUE(repo_->Fetch().ok());
  const std::string dir = TempDir("credentials");
  Write(dir + "/signers/release.asc", Read(keys_ + "/release.asc"));
  absl::StatusOr<SigningKeys> keys = LoadSigningKeys(dir, "signers");
  ASSERT_TRUE(keys.ok()) << keys.status();
  absl::StatusOr<GitRepository::Signed> tag = repo_->TagSignature("v1", unsigned_);
  ASSERT_TRUE(tag.ok()) << tag.status();
  EXPECT_THAT(tag->data, HasSubstr("release 1"));
  EXPECT_TRUE(VerifyCommitSignature(*keys, tag->signature, tag->data).ok());
  EXPECT_TRUE(repo_->TagSignature("refs/tags/v1", unsigned_).ok());
  EXPECT_EQ(repo_->TagSignature("v1", pgp_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(repo_->TagSignature("light", unsigned_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(repo_->TagSignature("none", unsigned_).status().code(), absl::StatusCode::kNotFound);
}

// gpgv calls a signature by a key that has since expired, or been revoked, good; such a
// key no longer vouches for anything here.
TEST_F(CommitSignatureTest, AnExpiredOrRevokedKeySignsNothing) {
  const std::string dir = TempDir("credentials");
  std::string out;
  ASSERT_EQ(
      ::gitfleet::testing::Run(
          absl::StrCat(
              "set -e; export GNUPGHOME='", gnupg_, "'; cd '", keys_, "';",
              "gpg --batch --passphrase '' --faked-system-time 20200101T000000 --quick-gen-key "
              "'Old <old@example.com>' ed25519 sign 2020-01-02 2>/dev/null;",
              "echo data > data; gpg --batch --faked-system-time 20200101T120000 --local-user "
              "old@example.com --detach-sign --armor -o data.asc data 2>/dev/null;",
              "mkdir -p '", dir, "/old'; gpg --export --armor old@example.com > '", dir,
              "/old/old.asc';",
              "gpg --batch --local-user release@example.com --detach-sign --armor -o release.sig "
              "data 2>/dev/null;",
              // gpg wrote a revocation certificate at the key's making; import it.
              "sed 's/^:-----/-----/' \"$GNUPGHOME/openpgp-revocs.d/$(cat release.fpr).rev\" "
              "| gpg --batch --import 2>/dev/null;",
              "mkdir -p '", dir, "/revoked'; gpg --export --armor release@example.com > '", dir,
              "/revoked/release.asc'"),
          &out),
      0)
      << out;
  absl::StatusOr<SigningKeys> old = LoadSigningKeys(dir, "old");
  ASSERT_TRUE(old.ok()) << old.status();
  absl::Status expired =
      VerifyCommitSignature(*old, Read(keys_ + "/data.asc"), Read(keys_ + "/data")).status();
  EXPECT_EQ(expired.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(expired.message(), HasSubstr("which has expired"));
  absl::StatusOr<SigningKeys> revoked = LoadSigningKeys(dir, "revoked");
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  absl::Status refused =
      VerifyCommitSignature(*revoked, Read(keys_ + "/release.sig"), Read(keys_ + "/data")).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("which has been revoked"));
}

TEST_F(CommitSignatureTest, RefusesFoldersThatCannotWorkByName) {
  const std::string dir = TempDir("credentials");
  EXPECT_THAT(LoadSigningKeys(dir, "missing").status().message(), HasSubstr("not found"));
  Write(dir + "/empty/README", "no keys");
  EXPECT_THAT(LoadSigningKeys(dir, "empty").status().message(), HasSubstr("holds no key"));
  Write(dir + "/private/key.asc",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nAAAA\n-----END PGP PRIVATE KEY BLOCK-----\n");
  EXPECT_THAT(LoadSigningKeys(dir, "private").status().message(), HasSubstr("holds a private key"));
  Write(dir + "/garbage/key.asc", "not a key");
  EXPECT_THAT(LoadSigningKeys(dir, "garbage").status().message(),
              HasSubstr("is not an ASCII-armored OpenPGP public key"));
  EXPECT_THAT(LoadSigningKeys(dir, "../etc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadSigningKeys("", "signers").status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace gitfleet
