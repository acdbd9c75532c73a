#ifndef GITFLEET_CONTROLPLANE_SOURCE_GIT_CREDENTIALS_H_
#define GITFLEET_CONTROLPLANE_SOURCE_GIT_CREDENTIALS_H_

// Private Git: credentials kept as files, one folder per credential, laid out like a
// mounted Kubernetes Secret (--credentials-dir=DIR):
//
//   DIR/NAME/username, DIR/NAME/password     HTTPS basic auth (a token as the password)
//   DIR/NAME/bearerToken                     or HTTPS `Authorization: Bearer` (the key
//                                            Flux's and Argo CD's Secrets use), to the
//                                            URL's own host only
//   DIR/NAME/githubAppID, githubAppInstallationID, githubAppPrivateKey
//                                            or a GitHub App (github_app.h), whose
//                                            installation token is the password;
//                                            githubAppEnterpriseBaseUrl (or Flux's
//                                            githubAppBaseURL) for GitHub Enterprise
//   DIR/NAME/ssh-privatekey, DIR/NAME/known_hosts   SSH (host keys are always verified)
//   DIR/NAME/ssh-privatekey-cert.pub         optional: the key's certificate, for servers
//                                            that trust an SSH CA for users
//   DIR/NAME/ca.crt                          optional: CAs trusted for that server, on top
//                                            of the system's
//   DIR/NAME/tls.crt, DIR/NAME/tls.key       optional: a client certificate for HTTPS
//                                            servers that ask for one (mutual TLS); Argo
//                                            CD's tlsClientCertData, tlsClientCertKey too
//
// Read again at every fetch, so rotating the Secret needs no restart. Nothing here is
// logged, stored or returned: sources name a credential, never hold one.
//
//   GF_ASSIGN_OR_RETURN(GitCredential c, LoadGitCredential(dir, "github"));
//   GF_RETURN_IF_ERROR(CheckHostKey(c.known_hosts, "git.example.com", 22, blob));

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "controlplane/source/github_app.h"

namespace gitfleet {

struct GitCredential {
  std::string name;
  std::string username;
  std::string password;
  std::string ssh_key_path;  // the ssh-privatekey file, handed to libssh2 by path
  // The ssh-privatekey-cert.pub file (an SSH certificate an SSH CA signed for the key), or
  // empty; used through OpenSSH's client (openssh.h).
  std::string ssh_certificate_path;
  std::string known_hosts;   // contents
  std::string ca_pem;        // contents of ca.crt, or empty
  std::string bearer_token;  // contents of bearerToken, or empty (never with a password)
  // A client certificate (PEM, leaf first) and its key, for servers that ask for one.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // A GitHub App's: its token becomes the password (UseGitHubAppToken).
  std::optional<GitHubApp> github_app;
  bool has_password() const { return !password.empty(); }
  bool has_bearer_token() const { return !bearer_token.empty(); }
  bool has_ssh_key() const { return !ssh_key_path.empty(); }
};

// InvalidArgument naming the credential and the file when the folder is missing, holds
// none of a username/password pair, a bearerToken or an SSH key with known_hosts, holds
// both a password and a bearerToken, or a file is empty or over 64 KiB.
absl::StatusOr<GitCredential> LoadGitCredential(const std::string& dir, const std::string& name);

// OK when `cert_pem` starts with a certificate, `key_pem` is an unencrypted private key
// that is the certificate's, and the certificate has not expired; InvalidArgument saying
// which is not.
absl::Status CheckClientCertificate(const std::string& cert_pem, const std::string& key_pem);

// For a GitHub App's credential: its installation token fetched (or the one kept) and set
// as the password of "x-access-token", as GitHub takes it over HTTPS. Anything else: as it
// is. The error names the credential and what the API said.
absl::Status UseGitHubAppToken(GitCredential* credential, absl::Duration timeout);

// The SSH key type of the private key file at `path` ("ssh-rsa", "ssh-ed25519",
// "ecdsa-sha2-nistp256", ...), read from its PEM or OpenSSH header; "" when it cannot tell.
std::string ReadSshKeyType(const std::string& path);

// What to add to libssh2's refusal of an SSH key of `type`: for an RSA key, that libssh2
// 1.10 (Debian 12's) signs with SHA-1, which OpenSSH 8.8+ and GitHub refuse, and that
// OpenSSH's client (openssh.h) signs with SHA-2; else "".
std::string SshKeyHint(const std::string& type);

// "SHA256:…" (unpadded base64), as ssh-keygen -l prints a key's fingerprint.
std::string SshFingerprint(absl::string_view key_blob);

// OK when `known_hosts` (OpenSSH format, plain or hashed host names, "[host]:port" for a
// port other than 22) lists `key_blob` for the host. PermissionDenied naming the host and
// the offered key's fingerprint when the host is unknown or its key differs.
absl::Status CheckHostKey(const std::string& known_hosts, const std::string& host, int port,
                          absl::string_view key_blob);

// OK when the DER certificate chains to a CA in `ca_pem` and names `host` (a DNS name or
// an IP address). PermissionDenied saying why otherwise.
absl::Status CheckCertificate(const std::string& ca_pem, absl::string_view der,
                              const std::string& host);

// What a source URL may be: file://, git://, http(s)://, ssh:// or an absolute path.
// Refuses credentials written into the URL (pointing at --credentials), and local
// repositories (file:// and paths) unless `allow_local`.
absl::Status CheckSourceUrl(const std::string& url, bool allow_local);

// `url` as it may be shown: any user information before '@' in the authority removed, and
// the value of go-getter's `sshkey` query parameter (a private key).
std::string RedactUrl(const std::string& url);

// Whether `url` (`git::` or another getter's prefix before it, or none) holds a secret
// before its host: a password, or any user of a URL other than an ssh:// one (tokens go
// there), or go-getter's `sshkey` query parameter (a private key). ssh://git@host names an
// account, which is no secret.
bool UrlCarriesSecret(absl::string_view url);
// Why such a URL, which a repository's file names, is refused: "\"URL\" carries credentials
// in its URL, ...", the URL redacted, ending with what gives the control plane a credential
// instead (`flag`: "--git-credentials=PREFIX=NAME").
std::string SecretInUrlRefusal(const std::string& url, absl::string_view flag);

// Credentials by URL prefix (--git-credentials=PREFIX=NAME,..., as Argo CD's credential
// templates): a source that names no credential, and a submodule, get the credential of
// the longest prefix their URL is under. Each PREFIX is an https:// or ssh:// URL prefix
// (http:// only on loopback: a password never crosses a network in clear), a host alone
// meaning that whole host, without a password, named once; NAME a credential's name.
// InvalidArgument naming the entry that is not.
using CredentialPrefixes = std::vector<std::pair<std::string, std::string>>;
// One PREFIX=NAME entry of --git-credentials or --chart-credentials, split. InvalidArgument,
// showing the entry without a password, when it is not PREFIX=NAME, NAME is not a
// credential's name, or PREFIX is plain http:// to another machine (a password never
// crosses a network in clear). Each flag checks its prefixes' schemes itself.
absl::StatusOr<std::pair<std::string, std::string>> SplitCredentialEntry(const std::string& entry);
absl::StatusOr<CredentialPrefixes> ParseCredentialPrefixes(const std::vector<std::string>& entries);

// The credential the longest of `prefixes` that `url` is under gives it; "" under none.
// An ssh:// URL's account (ssh://git@host) does not count: ssh://host/org/ covers it too.
std::string CredentialForUrl(const CredentialPrefixes& prefixes, const std::string& url);

// Whether `url` is under `prefix` at a path boundary: "https://host/team-a" covers
// "https://host/team-a", ".../team-a.git" and ".../team-a/app", not ".../team-ab"; a host
// alone covers that host. An ssh:// URL's account does not count, as in CredentialForUrl.
bool UrlUnderPrefix(const std::string& url, const std::string& prefix);
// Whether `url` is under one of `prefixes` (UrlUnderPrefix) and written plainly: dot
// segments, percent escapes, backslashes, queries and fragments are refused, since a
// server may read them as a path outside the prefix. What a team's scope (repos=) admits.
bool UrlPlainlyUnder(const std::string& url, const std::vector<std::string>& prefixes);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_GIT_CREDENTIALS_H_
