#ifndef GITFLEET_CONTROLPLANE_API_AUTH_H_
#define GITFLEET_CONTROLPLANE_API_AUTH_H_

// Who may call the admin API, and what each caller may do.
//
//   GF_ASSIGN_OR_RETURN(auto files, ApiAuthFiles::Open(tokens_path, client_roles_path));
//   absl::StatusOr<Caller> caller = files->Current()->Identify(CallerFacts::Of(*context));
//   absl::Status allowed = Authorize(*caller, "AddSource");
//
// Credentials, in the order they are tried:
// - a bearer token whose SHA-256 is in --api-tokens (`NAME ROLE TOKEN_SHA256 [SCOPE]` lines);
// - with mTLS, a client certificate whose CN or a SAN is in --api-client-roles
//   (`CN_OR_SAN ROLE [SCOPE]` lines). A certificate naming a cluster (SAN URI
//   gitfleet://cluster/NAME) is an agent's and never an API credential;
// - with neither file given, any caller on loopback or a Unix socket, as "local" admin.
// Anyone else gets UNAUTHENTICATED; a caller without the role a method needs gets
// PERMISSION_DENIED naming the role. An ApiAuth is immutable; ApiAuthFiles reads the files
// again when they change, so a token is revoked or a caller added without a restart.
//
// A SCOPE gives a caller a team's share of the fleet rather than all of it (as Argo CD's
// projects and Fleet's workspaces do): `bundles=GLOB,...`, `sources=GLOB,...`,
// `repos=URL_PREFIX,...`, `credentials=GLOB,...`, `clusters=SELECTOR` (quoted when it
// holds spaces: clusters="env in (dev,qa)") and `namespaces=GLOB,...`. What a scope does
// not name is out of it; without namespaces= its bundles place objects anywhere on its
// clusters.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/label_selector.h"
#include "common/watched_files.h"
#include "proto/gitfleet/v1/types.pb.h"

namespace grpc {
class ServerContextBase;
}

namespace gitfleet {

enum class Role { kViewer = 1, kOperator = 2, kAdmin = 3 };

const char* RoleName(Role role);
absl::StatusOr<Role> ParseRole(const std::string& name);

// What a scoped caller may reach. Its role says what it may do there.
struct Scope {
  std::vector<std::string> bundles;       // name globs ("team-a-*")
  std::vector<std::string> sources;       // name globs
  std::vector<std::string> repos;         // URL prefixes its sources may read
  std::vector<std::string> credentials;   // globs of the credentials its sources may name
  std::optional<LabelSelector> clusters;  // none: no cluster
  // Namespace globs its bundles' objects must live in (no cluster-scoped object); empty:
  // any namespace and kind on its clusters.
  std::vector<std::string> namespaces;
  // The service account its bundles are applied as ("NAME" in each bundle's target
  // namespace, or "NAMESPACE/NAME"): the clusters' RBAC for it bounds them. Empty: as the
  // agent.
  std::string service_account;
  // The control plane's SOPS keys its bundles may decrypt with: age recipients ("age1...")
  // and PGP fingerprints (upper-case hex). Empty: none (--decrypt=sops is refused).
  std::vector<std::string> sops_keys;
  // Kind patterns ("[GROUP/]KIND", ValidateKindPattern), as Argo CD's project resource
  // lists: when `kinds` is set its bundles' objects (hooks too) are of these kinds alone;
  // never of `deny_kinds`; and a cluster-scoped object, which `namespaces` otherwise
  // refuses, may be of `cluster_kinds` (a Namespace only if its name is one of
  // `namespaces`). `cluster_kinds` needs `namespaces`.
  std::vector<std::string> kinds;
  std::vector<std::string> deny_kinds;
  std::vector<std::string> cluster_kinds;

  bool CoversBundle(const std::string& name) const;
  bool CoversSource(const std::string& name) const;
  bool CoversCredential(const std::string& name) const;
  bool CoversCluster(const LabelMap& labels) const;
  // Whether a source may read `url`: under one of `repos` at a path boundary
  // ("https://git.example.com/team-a" covers ".../team-a/app.git", not ".../team-ab"),
  // and written plainly: dot segments, percent escapes, backslashes, queries and
  // fragments are refused, since a server may read them as a path outside the prefix.
  bool CoversRepo(const std::string& url) const;
  // "bundles=team-a-* clusters=team=a", for messages.
  std::string Describe() const;

  // The SCOPE fields of a line (`key=value`, a value in double quotes when it holds
  // spaces). InvalidArgument naming what is wrong.
  static absl::StatusOr<Scope> Parse(const std::vector<std::string>& fields);
};

struct Caller {
  std::string name;
  Role role = Role::kViewer;
  std::string via;  // "token", "certificate" or "local"
  // What the caller may reach; null: the whole fleet.
  std::shared_ptr<const Scope> scope;

  bool scoped() const { return scope != nullptr; }
  // PERMISSION_DENIED naming the caller's scope unless it covers the bundle, the source,
  // the cluster (by its labels); OK for an unscoped caller.
  absl::Status MayReachBundle(const std::string& name) const;
  absl::Status MayReachSource(const std::string& name) const;
  absl::Status MayReachCluster(const std::string& name, const LabelMap& labels) const;
};

// What a call presents, taken from its context.
struct CallerFacts {
  std::string peer;          // grpc's peer string: "ipv4:1.2.3.4:5", "ipv6:[::1]:5", "unix:…"
  std::string bearer_token;  // from "authorization: Bearer …", or empty
  bool has_authorization = false;        // an authorization header was sent at all
  std::vector<std::string> certificate;  // CN and SANs of a verified client certificate
  static CallerFacts Of(const grpc::ServerContextBase& context);
};

// The role each admin method needs; a method not listed needs admin.
Role RequiredRole(const std::string& method);
// Whether a method changes anything (its calls are audited).
bool IsMutating(const std::string& method);
// Whether the method is the whole fleet's (clusters' registration and labels, backups):
// a scoped caller never calls it, whatever its role.
bool IsFleetWide(const std::string& method);
// Whether the method has a rule of its own (auth_test checks every admin method does).
bool IsKnownMethod(const std::string& method);

// What a bundle `caller` defines records of its `scope` (Bundle.scope).
v1::BundleScope ToBundleScope(const std::string& caller, const Scope& scope);

// Scoped callers by name, as their bundles record them (Controller's CallerScopes).
using BundleScopes = std::map<std::string, v1::BundleScope>;

class ApiAuth {
 public:
  // With both texts empty only local callers are served.
  static absl::StatusOr<std::unique_ptr<ApiAuth>> Parse(const std::string& tokens_text,
                                                        const std::string& client_roles_text);

  absl::StatusOr<Caller> Identify(const CallerFacts& facts) const;
  // Only local callers are served (no tokens and no certificate roles configured).
  bool local_only() const { return tokens_.empty() && client_roles_.empty(); }
  // Every caller named on some line, by name, with its scope as its bundles record it:
  // what a team's bundles follow as the files change. A name whose entry has no caller
  // is not one to follow: it is unscoped on some line, its lines disagree (a token's and
  // a certificate's), or its scope names no clusters (its bundles could reach none). A
  // name missing is on no line at all.
  const std::shared_ptr<const BundleScopes>& bundle_scopes() const { return bundle_scopes_; }

 private:
  struct Token {
    std::string name;
    Role role;
    std::string sha256;  // 32 raw bytes
    std::shared_ptr<const Scope> scope;
  };
  struct ClientRole {
    Role role;
    std::shared_ptr<const Scope> scope;
  };
  std::vector<Token> tokens_;
  std::map<std::string, ClientRole> client_roles_;
  std::shared_ptr<const BundleScopes> bundle_scopes_ = std::make_shared<const BundleScopes>();
};

// --api-tokens and --api-client-roles (either path may be empty), read again within a second
// of a change (see WatchedFiles): a leaked token is revoked, or a caller added, without a
// restart. A change that is refused keeps what is in force, and so does one that would leave
// no credential at all, which would serve every local caller as admin. Thread-safe.
class ApiAuthFiles {
 public:
  static absl::StatusOr<std::unique_ptr<ApiAuthFiles>> Open(const std::string& tokens_path,
                                                            const std::string& client_roles_path,
                                                            WatchedFilesOptions options = {});
  std::shared_ptr<const ApiAuth> Current() { return files_->Current(); }

 private:
  explicit ApiAuthFiles(std::unique_ptr<WatchedFiles<ApiAuth>> files) : files_(std::move(files)) {}
  const std::unique_ptr<WatchedFiles<ApiAuth>> files_;
};

// PERMISSION_DENIED naming the scoped `caller`'s scope and `what` it does not cover.
absl::Status OutOfScope(const Caller& caller, absl::string_view what);

// OK when `caller` may call `method`; PERMISSION_DENIED naming the role needed, or the
// scope a fleet-wide method does not take, otherwise.
absl::Status Authorize(const Caller& caller, const std::string& method);

// Whether grpc's peer string is loopback (127.0.0.0/8, ::1) or a Unix socket.
bool IsLocalPeer(const std::string& peer);

// "NAME ROLE HEX" for a token: the line --api-tokens wants.
// `scope` (the SCOPE fields, already checked) is appended as given.
std::string TokenLine(const std::string& name, Role role, const std::string& token,
                      const std::string& scope = "");

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_API_AUTH_H_
