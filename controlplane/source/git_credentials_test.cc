#include "controlplane/source/git_credentials.h"

#include <fstream>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/git_fixture.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

void Write(const std::string& path, const std::string& contents) {
  ::gitfleet::testing::Run(absl::StrCat("mkdir -p \"$(dirname '", path, "')\""));
  std::ofstream(path) << contents;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(LoadGitCredentialTest, ReadsAFolderLikeAMountedSecret) {
  std::string dir = TempDir("credentials");
  Write(dir + "/https/username", "alice\n");
  Write(dir + "/https/password", "s3cret\n");
  absl::StatusOr<GitCredential> https = LoadGitCredential(dir, "https");
  ASSERT_TRUE(https.ok()) << https.status();
  EXPECT_EQ(https->username, "alice");
  EXPECT_EQ(https->password, "s3cret") << "the newline echo wrote is not part of it";
  EXPECT_FALSE(https->has_ssh_key());

  Write(dir + "/ssh/ssh-privatekey", "KEY");
  Write(dir + "/ssh/known_hosts", "host ssh-ed25519 AAAA\n");
  absl::StatusOr<GitCredential> ssh = LoadGitCredential(dir, "ssh");
  ASSERT_TRUE(ssh.ok()) << ssh.status();
  EXPECT_EQ(ssh->ssh_key_path, dir + "/ssh/ssh-privatekey");
}

// Flux's and Argo CD's Secrets name a bearer token `bearerToken`.
TEST(LoadGitCredentialTest, ReadsABearerTokenAndRefusesOneThatCannotBeAHeader) {
  std::string dir = TempDir("credentials");
  Write(dir + "/token/bearerToken", "glpat-abc\n");
  absl::StatusOr<GitCredential> token = LoadGitCredential(dir, "token");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->bearer_token, "glpat-abc");
  EXPECT_TRUE(token->has_bearer_token());
  EXPECT_FALSE(token->has_password());
  Write(dir + "/both/username", "alice");
  Write(dir + "/both/password", "s3cret");
  Write(dir + "/both/bearerToken", "glpat-abc");
  EXPECT_THAT(LoadGitCredential(dir, "both").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("holds both a password and a bearerToken")));
  Write(dir + "/split/bearerToken", "abc\nX-Injected: 1");
  absl::Status split = LoadGitCredential(dir, "split").status();
  EXPECT_THAT(split, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line break")));
  EXPECT_THAT(std::string(split.message()), Not(HasSubstr("abc"))) << "no secret in the error";
  Write(dir + "/blank/bearerToken", "\n");
  EXPECT_THAT(LoadGitCredential(dir, "blank").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bearerToken is empty")));
}

TEST(LoadGitCredentialTest, ReadsAGitHubAppAsArgoCdAndFluxWriteIt) {
  std::string dir = TempDir("credentials");
  std::string out;
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("mkdir -p '", dir, "/app' && openssl genpkey -algorithm RSA -out '",
                             dir, "/app/githubAppPrivateKey' 2>/dev/null"),
                &out),
            0)
      << out;
  Write(dir + "/app/githubAppID", "1234\n");
  Write(dir + "/app/githubAppInstallationID", "42\n");
  absl::StatusOr<GitCredential> app = LoadGitCredential(dir, "app");
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_TRUE(app->github_app.has_value());
  EXPECT_EQ(app->github_app->app_id, "1234");
  EXPECT_EQ(app->github_app->installation_id, "42");
  EXPECT_EQ(app->github_app->base_url, "https://api.github.com");
  EXPECT_FALSE(app->has_password()) << "the token comes at a fetch";
  Write(dir + "/app/githubAppEnterpriseBaseUrl", "https://ghe.example.com/api/v3\n");
  EXPECT_EQ(LoadGitCredential(dir, "app")->github_app->base_url, "https://ghe.example.com/api/v3");
  Write(dir + "/app/password", "s3cret");
  EXPECT_THAT(LoadGitCredential(dir, "app").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("holds a GitHub App and also a password")));
  Write(dir + "/half/githubAppID", "1234");
  EXPECT_THAT(
      LoadGitCredential(dir, "half").status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lacks githubAppInstallationID")));
  Write(dir + "/bad/githubAppID", "my-app");
  Write(dir + "/bad/githubAppInstallationID", "42");
  Write(dir + "/bad/githubAppPrivateKey", "KEY");
  EXPECT_THAT(LoadGitCredential(dir, "bad").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("credential bad: githubAppID is not a number")));
}

// The type of a key as ssh-keygen writes it, from its header: what an SSH refusal's hint
// is chosen by (an RSA key is signed with SHA-1 here).
TEST(ReadSshKeyTypeTest, ReadsPemAndOpenSshKeys) {
  const std::string dir = TempDir("keys");
  const std::pair<const char*, const char*> kKeys[] = {
      {"-t ed25519", "ssh-ed25519"},           {"-t ecdsa", "ecdsa-sha2-nistp256"},
      {"-t rsa -b 1024", "ssh-rsa"},           {"-t rsa -b 1024 -m PEM", "ssh-rsa"},
      {"-t rsa -b 1024 -m PKCS8", "ssh-rsa"},  {"-t ecdsa -m PEM", "ecdsa"},
      {"-t ed25519 -N secret", "ssh-ed25519"},  // the public half is in the clear
  };
  int i = 0;
  for (const auto& [args, type] : kKeys) {
    const std::string path = absl::StrCat(dir, "/k", i++);
    std::string out;
    ASSERT_EQ(::gitfleet::testing::Run(
                  absl::StrCat("ssh-keygen -q ", args,
                               std::string(args).find("-N") == std::string::npos ? " -N ''" : "",
                               " -f ", path),
                  &out),
              0)
        << out;
    EXPECT_EQ(ReadSshKeyType(path), type) << args;
  }
  Write(dir + "/junk",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n");
  EXPECT_EQ(ReadSshKeyType(dir + "/junk"), "");
  EXPECT_EQ(ReadSshKeyType(dir + "/none"), "");
  EXPECT_THAT(SshKeyHint("ssh-rsa"), HasSubstr("ed25519"));
  EXPECT_EQ(SshKeyHint("ssh-ed25519"), "");
}

TEST(LoadGitCredentialTest, RefusesWhatCannotWorkByName) {
  std::string dir = TempDir("credentials");
  Write(dir + "/nohosts/ssh-privatekey", "KEY");
  EXPECT_THAT(LoadGitCredential(dir, "nohosts").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no known_hosts")));
  EXPECT_THAT(
      LoadGitCredential(dir, "missing").status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("credential missing not found")));
  EXPECT_THAT(LoadGitCredential(dir, "../etc").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("credential name")));
  EXPECT_THAT(LoadGitCredential("", "x").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--credentials-dir")));
  Write(dir + "/empty/password", "\n");
  EXPECT_THAT(LoadGitCredential(dir, "empty").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("password is empty")));
  Write(dir + "/big/password", std::string(70000, 'x'));
  absl::Status big = LoadGitCredential(dir, "big").status();
  EXPECT_THAT(big, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("over 64 KiB")));
  ::gitfleet::testing::Run("mkdir -p '" + dir + "/nothing'");
  EXPECT_THAT(LoadGitCredential(dir, "nothing").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("holds none of")));
}

TEST(CheckHostKeyTest, PlainHashedPortsChangedAndUnknown) {
  std::string blob("\x00\x00\x00\x0bssh-ed25519 pretend key", 26);
  std::string other = "another key entirely";
  std::string b64 = absl::Base64Escape(blob);
  EXPECT_TRUE(CheckHostKey("git.example.com ssh-ed25519 " + b64, "git.example.com", 22, blob).ok());
  EXPECT_TRUE(
      CheckHostKey("a.example.com,git.example.com ssh-ed25519 " + b64, "git.example.com", 22, blob)
          .ok());
  EXPECT_TRUE(CheckHostKey("[127.0.0.1]:2222 ssh-ed25519 " + b64, "127.0.0.1", 2222, blob).ok());
  EXPECT_FALSE(CheckHostKey("127.0.0.1 ssh-ed25519 " + b64, "127.0.0.1", 2222, blob).ok())
      << "an entry for port 22 does not vouch for another port";
  absl::Status changed = CheckHostKey("git.example.com ssh-ed25519 " + absl::Base64Escape(other),
                                      "git.example.com", 22, blob);
  EXPECT_THAT(changed, StatusIs(absl::StatusCode::kPermissionDenied,
                                HasSubstr("the SSH host key of git.example.com changed")));
  EXPECT_THAT(std::string(changed.message()), HasSubstr(SshFingerprint(blob)));
  EXPECT_THAT(std::string(changed.message()), HasSubstr(SshFingerprint(other)));
  EXPECT_THAT(CheckHostKey("", "git.example.com", 22, blob),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("unknown SSH host")));
  EXPECT_THAT(CheckHostKey("@revoked git.example.com ssh-ed25519 " + b64 +
                               "\ngit.example.com ssh-ed25519 " + b64,
                           "git.example.com", 22, blob),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("@revoked")));
  // As ssh-keygen prints it: SHA-256, base64 without padding.
  EXPECT_EQ(SshFingerprint(""), "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
}

TEST(CheckHostKeyTest, HashedNamesAsSshKeygenWritesThem) {
  std::string dir = TempDir("known-hosts");
  std::string out;
  if (::gitfleet::testing::Run("command -v ssh-keygen >/dev/null") != 0)
    GTEST_SKIP() << "no ssh-keygen";
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("cd '", dir,
                             "' && ssh-keygen -q -t ecdsa -N '' -f k && "
                             "printf '[127.0.0.1]:2222 %s\\n' \"$(cut -d' ' -f1,2 k.pub)\" > kh && "
                             "ssh-keygen -q -H -f kh >/dev/null 2>&1"),
                &out),
            0)
      << out;
  std::string known_hosts = ReadFile(dir + "/kh");
  ASSERT_THAT(known_hosts, HasSubstr("|1|"));
  std::string pub = ReadFile(dir + "/k.pub");
  std::string b64 = pub.substr(pub.find(' ') + 1);
  b64 = b64.substr(0, b64.find(' '));
  std::string blob;
  ASSERT_TRUE(absl::Base64Unescape(b64, &blob));
  EXPECT_TRUE(CheckHostKey(known_hosts, "127.0.0.1", 2222, blob).ok());
  EXPECT_FALSE(CheckHostKey(known_hosts, "127.0.0.2", 2222, blob).ok());
}

TEST(CheckCertificateTest, ChainsToTheCaAndNamesTheHost) {
  std::string dir = TempDir("certs");
  std::string out;
  ASSERT_EQ(
      ::gitfleet::testing::Run(
          absl::StrCat(
              "set -e; cd '", dir, "';",
              "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 "
              "-out $1 2>/dev/null; };",
              "key ca.key; openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj /CN=ca;",
              "key other.key; openssl req -x509 -new -key other.key -out other.crt -days 2 "
              "-subj /CN=other;",
              "printf 'subjectAltName=DNS:git.example.com,IP:127.0.0.1\\n' > ext;",
              "key s.key; openssl req -new -key s.key -out s.csr -subj /CN=git;",
              "openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
              "-extfile ext -outform DER -out s.der 2>/dev/null"),
          &out),
      0)
      << out;
  std::string der = ReadFile(dir + "/s.der");
  std::string ca = ReadFile(dir + "/ca.crt");
  EXPECT_TRUE(CheckCertificate(ca, der, "git.example.com").ok());
  EXPECT_TRUE(CheckCertificate(ca, der, "127.0.0.1").ok());
  EXPECT_THAT(CheckCertificate(ca, der, "evil.example.com"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("does not name")));
  EXPECT_THAT(CheckCertificate(ReadFile(dir + "/other.crt"), der, "git.example.com"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not signed by")));
  EXPECT_THAT(CheckCertificate("not pem", der, "git.example.com"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("no PEM certificate")));
  EXPECT_FALSE(CheckCertificate(ca, "garbage", "git.example.com").ok());
}

// A client certificate as Flux's Secrets (tls.crt, tls.key) and Argo CD's
// (tlsClientCertData, tlsClientCertKey) carry it, and what cannot work refused by name.
TEST(LoadGitCredentialTest, ReadsAClientCertificateAndRefusesOneThatCannotWork) {
  const std::string dir = TempDir("client-certs");
  std::string out;
  ASSERT_EQ(::gitfleet::testing::Run(
                absl::StrCat("set -e; cd '", dir, "';",
                             "key() { openssl genpkey -algorithm EC -pkeyopt "
                             "ec_paramgen_curve:prime256v1 -out $1 2>/dev/null; };",
                             "key a.key; openssl req -x509 -new -key a.key -out a.crt -days 2 "
                             "-subj /CN=a;",
                             "key b.key; openssl req -x509 -new -key b.key -out b.crt -days 2 "
                             "-subj /CN=b;",
                             // Expired in 2020 (OpenSSL 3.0's req cannot back-date).
                             "openssl req -new -key a.key -out old.csr -subj /CN=old;",
                             "printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=index\\n"
                             "new_certs_dir=.\\nserial=serial\\ndefault_md=sha256\\npolicy=p"
                             "\\n[p]\\ncommonName=supplied\\n' > ca.cnf; touch index; "
                             "echo 01 > serial;",
                             "openssl ca -batch -config ca.cnf -selfsign -keyfile a.key -in "
                             "old.csr -startdate 20200101000000Z -enddate 20200102000000Z -out "
                             "old.crt 2>/dev/null"),
                &out),
            0)
      << out;
  const std::string cert = ReadFile(dir + "/a.crt"), key = ReadFile(dir + "/a.key");
  Write(dir + "/creds/flux/tls.crt", cert);
  Write(dir + "/creds/flux/tls.key", key);
  absl::StatusOr<GitCredential> flux = LoadGitCredential(dir + "/creds", "flux");
  ASSERT_TRUE(flux.ok()) << flux.status();
  EXPECT_EQ(flux->tls_cert_pem, cert);
  EXPECT_EQ(flux->tls_key_pem, key);
  Write(dir + "/creds/argocd/tlsClientCertData", cert);
  Write(dir + "/creds/argocd/tlsClientCertKey", key);
  Write(dir + "/creds/argocd/username", "alice");
  Write(dir + "/creds/argocd/password", "s3cret");
  absl::StatusOr<GitCredential> argocd = LoadGitCredential(dir + "/creds", "argocd");
  ASSERT_TRUE(argocd.ok()) << argocd.status();
  EXPECT_EQ(argocd->tls_cert_pem, cert);
  EXPECT_EQ(argocd->username, "alice");

  auto refused = [&](const std::string& name, const std::map<std::string, std::string>& files) {
    for (const auto& [file, contents] : files) Write(dir + "/creds/" + name + "/" + file, contents);
    absl::Status status = LoadGitCredential(dir + "/creds", name).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    return std::string(status.message());
  };
  EXPECT_THAT(refused("no-key", {{"tls.crt", cert}}), HasSubstr("has tls.crt but not tls.key"));
  EXPECT_THAT(refused("no-cert", {{"tlsClientCertKey", key}}),
              HasSubstr("has tlsClientCertKey but not tlsClientCertData"));
  EXPECT_THAT(refused("both", {{"tls.crt", cert},
                               {"tls.key", key},
                               {"tlsClientCertData", cert},
                               {"tlsClientCertKey", key}}),
              HasSubstr("keep one pair"));
  EXPECT_THAT(refused("mismatch", {{"tls.crt", cert}, {"tls.key", ReadFile(dir + "/b.key")}}),
              HasSubstr("the key is not the certificate's"));
  EXPECT_THAT(refused("garbage", {{"tls.crt", "not a certificate"}, {"tls.key", key}}),
              HasSubstr("not a PEM certificate"));
  EXPECT_THAT(refused("expired", {{"tls.crt", ReadFile(dir + "/old.crt")}, {"tls.key", key}}),
              HasSubstr("has expired"));
  // A key with a passphrase: refused, never asked for on a terminal.
  ASSERT_EQ(::gitfleet::testing::Run(absl::StrCat("cd '", dir,
                                                  "' && openssl pkey -in a.key -aes256 -passout "
                                                  "pass:secret -out sealed.key"),
                                     &out),
            0)
      << out;
  EXPECT_THAT(refused("sealed", {{"tls.crt", cert}, {"tls.key", ReadFile(dir + "/sealed.key")}}),
              HasSubstr("is not an unencrypted PEM private key"));
  // Nothing secret in the messages.
  EXPECT_THAT(refused("mismatch2", {{"tls.crt", cert}, {"tls.key", ReadFile(dir + "/b.key")}}),
              Not(HasSubstr("PRIVATE")));
}

TEST(CheckSourceUrlTest, NoSecretsInUrlsAndLocalOnlyWhenAllowed) {
  EXPECT_TRUE(CheckSourceUrl("https://git.example.com/app.git", false).ok());
  EXPECT_TRUE(CheckSourceUrl("ssh://git@git.example.com:2222/app.git", false).ok());
  EXPECT_TRUE(CheckSourceUrl("git://127.0.0.1/app", false).ok());
  for (const char* url :
       {"https://alice:s3cret@git.example.com/app.git", "https://ghp_TOKEN@github.com/org/app.git",
        "ssh://git:s3cret@git.example.com/app.git"}) {
    absl::Status s = CheckSourceUrl(url, true);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--credentials"))) << url;
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("s3cret")));
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("TOKEN")));
  }
  EXPECT_TRUE(CheckSourceUrl("https://git.example.com/team@2024/app.git", false).ok())
      << "an @ in the path is not user information";
  EXPECT_THAT(CheckSourceUrl("file:///srv/repo", false),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("--allow-local-sources")));
  EXPECT_THAT(CheckSourceUrl("/srv/repo", false), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_TRUE(CheckSourceUrl("file:///srv/repo", true).ok());
  EXPECT_THAT(CheckSourceUrl("ftp://x", true), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(RedactUrl("https://a:b@h/p"), "https://***@h/p");
  EXPECT_EQ(RedactUrl("https://h/p@q"), "https://h/p@q");
  EXPECT_EQ(RedactUrl("git::https://a:b@h/p//d"), "git::https://***@h/p//d");
  EXPECT_EQ(RedactUrl("git::ssh://git@h/p//d?ref=v1&sshkey=LS0tS2V5&depth=1"),
            "git::ssh://***@h/p//d?ref=v1&sshkey=***&depth=1");
}

// The same judgement for what a repository's files name (remote bases and files, charts),
// whatever getter's prefix is before the URL.
TEST(UrlCarriesSecretTest, APasswordOrAnHttpUserButNotAnSshAccount) {
  for (const char* secret :
       {"https://alice:s3cret@h/app", "https://ghp_TOKEN@github.com/org/app", "http://u@h/x",
        "git::https://t@h/org/app//d", "ssh://git:s3cret@h/app", "git::SSH://git:pw@h/app",
        "oci://u:p@registry.example.com/charts/web", "git::ssh://git@h/org/app?sshkey=LS0t",
        "github.com/org/app//web?ref=v1&SSHKEY=LS0t"}) {
    EXPECT_TRUE(UrlCarriesSecret(secret)) << secret;
  }
  for (const char* none :
       {"https://h/app", "ssh://git@h:2222/app", "git::ssh://git@h/org/app//d", "git@h:org/app",
        "https://h/team@2024/app", "https://h/app?who=a@b", "charts/web", ""}) {
    EXPECT_FALSE(UrlCarriesSecret(none)) << none;
  }
}

TEST(UrlUnderPrefixTest, AtAPathBoundaryAndAHostAloneIsThatHost) {
  EXPECT_TRUE(UrlUnderPrefix("https://git.example.com/team-a", "https://git.example.com/team-a"));
  EXPECT_TRUE(
      UrlUnderPrefix("https://git.example.com/team-a.git", "https://git.example.com/team-a"));
  EXPECT_TRUE(
      UrlUnderPrefix("https://git.example.com/team-a/app", "https://git.example.com/team-a"));
  EXPECT_TRUE(
      UrlUnderPrefix("https://git.example.com/team-a/app", "https://git.example.com/team-a/"));
  EXPECT_FALSE(
      UrlUnderPrefix("https://git.example.com/team-ab/app", "https://git.example.com/team-a"));
  EXPECT_FALSE(
      UrlUnderPrefix("https://git.example.com/team-a.gitx", "https://git.example.com/team-a"));
  EXPECT_TRUE(UrlUnderPrefix("https://git.example.com/x/y", "https://git.example.com"));
  EXPECT_FALSE(UrlUnderPrefix("https://git.example.com.evil/x", "https://git.example.com"));
  EXPECT_FALSE(UrlUnderPrefix("http://git.example.com/x", "https://git.example.com"));
  // An ssh:// account is not part of what the prefix names, either way.
  EXPECT_TRUE(UrlUnderPrefix("ssh://git@git.example.com/a/b.git", "ssh://git.example.com/a"));
  EXPECT_TRUE(UrlUnderPrefix("ssh://git.example.com/a/b.git", "ssh://git@git.example.com/a/"));
  EXPECT_TRUE(UrlUnderPrefix("file:///srv/git/team-a/app", "file:///srv/git/team-a"));
  EXPECT_FALSE(UrlUnderPrefix("file:///srv/git/team-ab", "file:///srv/git/team-a"));
  EXPECT_FALSE(UrlUnderPrefix("https://git.example.com/x", ""));
}

}  // namespace
}  // namespace gitfleet
