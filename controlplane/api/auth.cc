#include "controlplane/api/auth.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/authorization.h"
#include "common/config_fields.h"
#include "common/manifest/hash.h"
#include "common/names.h"
#include "controlplane/source/git_credentials.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/server_context.h"

namespace gitfleet {
namespace {

constexpr char kAgentUriPrefix[] = "gitfleet://cluster/";
constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxTokenBytes = 4096;

// The non-comment lines of a config file, split into fields, with their line numbers.
absl::StatusOr<std::vector<std::pair<int, std::vector<std::string>>>> Lines(
    const std::string& text, absl::string_view flag) {
  std::vector<std::pair<int, std::vector<std::string>>> lines;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    absl::StatusOr<std::vector<std::string>> fields = ConfigFields(line);
    if (!fields.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " line ", number, ": ", fields.status().message()));
    }
    lines.emplace_back(number, *std::move(fields));
  }
  return lines;
}

constexpr size_t kMaxScopeEntries = 100;
constexpr size_t kMaxScopeEntryBytes = 512;

struct MethodRule {
  const char* method;
  Role role;
  bool mutating;
  bool fleet_wide = false;  // never for a scoped caller
};

// Every admin method. A method missing here needs admin (admin_service_test checks that
// every method of the service is listed).
constexpr MethodRule kMethods[] = {
    {"ListSources", Role::kViewer, false},
    {"ListBundles", Role::kViewer, false},
    {"ListClusters", Role::kViewer, false},
    {"GetStatus", Role::kViewer, false},
    {"DiffBundle", Role::kViewer, false},
    {"SyncSource", Role::kOperator, true},
    {"AddSource", Role::kAdmin, true},
    {"RemoveSource", Role::kAdmin, true},
    {"AddBundle", Role::kAdmin, true},
    {"RemoveBundle", Role::kAdmin, true},
    {"AdoptCluster", Role::kAdmin, true, true},
    {"ForgetBundle", Role::kAdmin, true},
    {"Backup", Role::kAdmin, false, true},
    {"RegisterCluster", Role::kAdmin, true, true},
    {"LabelCluster", Role::kAdmin, true, true},
    {"RotateClusterToken", Role::kAdmin, true, true},
    {"RemoveCluster", Role::kAdmin, true, true},
    {"GetRollout", Role::kViewer, false},
    {"ControlRollout", Role::kOperator, true},
    {"SuspendBundle", Role::kOperator, true},
    {"RefreshBundle", Role::kOperator, true},
    {"SuspendCluster", Role::kOperator, true},
    {"BundleHistory", Role::kViewer, false},
    {"PinBundle", Role::kOperator, true},
    {"WatchEvents", Role::kViewer, false},
    {"WhoAmI", Role::kViewer, false},
    // Server reflection (grpcurl's schema): any role.
    {"ServerReflectionInfo", Role::kViewer, false},
};

const MethodRule* FindMethod(const std::string& method) {
  for (const MethodRule& rule : kMethods) {
    if (method == rule.method) return &rule;
  }
  return nullptr;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

absl::StatusOr<Role> ParseRole(const std::string& name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "operator") return Role::kOperator;
  if (name == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError(
      absl::StrCat("role \"", name.substr(0, 32), "\" is not viewer, operator or admin"));
}

Role RequiredRole(const std::string& method) {
  const MethodRule* rule = FindMethod(method);
  return rule == nullptr ? Role::kAdmin : rule->role;
}

bool IsKnownMethod(const std::string& method) { return FindMethod(method) != nullptr; }

bool IsFleetWide(const std::string& method) {
  const MethodRule* rule = FindMethod(method);
  return rule == nullptr || rule->fleet_wide;
}

bool IsMutating(const std::string& method) {
  const MethodRule* rule = FindMethod(method);
  return rule == nullptr || rule->mutating;
}

CallerFacts CallerFacts::Of(const grpc::ServerContextBase& context) {
  CallerFacts facts;
  facts.peer = context.peer();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end()) {
    facts.has_authorization = true;
    absl::string_view value(it->second.data(), it->second.size());
    if (std::optional<absl::string_view> token = BearerCredential(value)) {
      facts.bearer_token = std::string(*token);
    }
  }
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const char* property : {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME}) {
      for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
        facts.certificate.emplace_back(value.data(), value.size());
      }
    }
  }
  return facts;
}

bool Scope::CoversBundle(const std::string& name) const { return MatchesAnyGlob(bundles, name); }

bool Scope::CoversSource(const std::string& name) const { return MatchesAnyGlob(sources, name); }

bool Scope::CoversCredential(const std::string& name) const {
  return MatchesAnyGlob(credentials, name);
}

bool Scope::CoversCluster(const LabelMap& labels) const {
  return clusters.has_value() && clusters->Matches(labels);
}

bool Scope::CoversRepo(const std::string& url) const { return UrlPlainlyUnder(url, repos); }

std::string Scope::Describe() const {
  std::vector<std::string> parts;
  auto add = [&parts](const char* key, const std::vector<std::string>& values) {
    if (!values.empty()) parts.push_back(absl::StrCat(key, "=", absl::StrJoin(values, ",")));
  };
  add("bundles", bundles);
  add("sources", sources);
  add("repos", repos);
  add("credentials", credentials);
  if (clusters.has_value()) parts.push_back(absl::StrCat("clusters=", clusters->text()));
  add("namespaces", namespaces);
  if (!service_account.empty()) parts.push_back("service-account=" + service_account);
  add("sops-keys", sops_keys);
  add("kinds", kinds);
  add("deny-kinds", deny_kinds);
  add("cluster-kinds", cluster_kinds);
  return parts.empty() ? "nothing" : absl::StrJoin(parts, " ");
}

absl::StatusOr<Scope> Scope::Parse(const std::vector<std::string>& fields) {
  Scope scope;
  std::set<std::string> seen;
  for (const std::string& field : fields) {
    const size_t equals = field.find('=');
    const std::string key = field.substr(0, equals);
    if (equals == std::string::npos || equals + 1 == field.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", field.substr(0, 64), "\" is not KEY=VALUE (bundles=, sources=, repos=, ",
          "credentials=, clusters=, namespaces=, service-account=, sops-keys=, kinds=, "
          "deny-kinds= or cluster-kinds=)"));
    }
    if (!seen.insert(key).second) {
      return absl::InvalidArgumentError(absl::StrCat(key.substr(0, 32), "= is given twice"));
    }
    const std::string value = field.substr(equals + 1);
    if (key == "clusters") {
      if (value.size() > 4096) {
        return absl::InvalidArgumentError("clusters=: the selector is over 4096 bytes");
      }
      absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(value);
      if (!selector.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("clusters=: ", selector.status().message()));
      }
      if (selector->text().empty()) {
        return absl::InvalidArgumentError(
            "clusters=: an empty selector would be every cluster; a scope names its clusters "
            "(leave the scope out for the whole fleet)");
      }
      scope.clusters = *std::move(selector);
      continue;
    }
    if (key == "service-account") {
      if (absl::Status s = ValidateServiceAccount(value); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("service-account=: ", s.message()));
      }
      scope.service_account = value;
      continue;
    }
    std::vector<std::string>* list = key == "bundles"         ? &scope.bundles
                                     : key == "sources"       ? &scope.sources
                                     : key == "repos"         ? &scope.repos
                                     : key == "credentials"   ? &scope.credentials
                                     : key == "namespaces"    ? &scope.namespaces
                                     : key == "sops-keys"     ? &scope.sops_keys
                                     : key == "kinds"         ? &scope.kinds
                                     : key == "deny-kinds"    ? &scope.deny_kinds
                                     : key == "cluster-kinds" ? &scope.cluster_kinds
                                                              : nullptr;
    if (list == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown scope key \"", key.substr(0, 32),
                       "\" (bundles=, sources=, repos=, credentials=, clusters=, namespaces=, "
                       "service-account=, sops-keys=, kinds=, deny-kinds= or cluster-kinds=)"));
    }
    for (absl::string_view entry : absl::StrSplit(value, ',')) {
      if (entry.empty() || entry.size() > kMaxScopeEntryBytes || list->size() >= kMaxScopeEntries) {
        return absl::InvalidArgumentError(absl::StrCat(key, "=: at most ", kMaxScopeEntries,
                                                       " entries, each 1 to ", kMaxScopeEntryBytes,
                                                       " bytes"));
      }
      if (key == "repos") {
        if (absl::Status s = CheckSourceUrl(std::string(entry), /*allow_local=*/true); !s.ok()) {
          return absl::InvalidArgumentError(absl::StrCat("repos=: ", s.message()));
        }
        if (!UrlPlainlyUnder(std::string(entry), {std::string(entry)})) {
          return absl::InvalidArgumentError(
              absl::StrCat("repos=: \"", entry,
                           "\" is not a plain URL prefix (no dot segments, percent "
                           "escapes, backslashes, queries or fragments)"));
        }
      }
      if (key == "namespaces" &&
          (entry.size() > 63 ||
           entry.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-*?") != entry.npos)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "namespaces=: \"", entry.substr(0, 64),
            "\" is not a namespace or a glob of them (a-z, 0-9, '-', '*', '?'; at most 63)"));
      }
      if (key == "kinds" || key == "deny-kinds" || key == "cluster-kinds") {
        if (absl::Status s = ValidateKindPattern(std::string(entry)); !s.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(key, "=: ", s.message()));
        }
      }
      if (key == "sops-keys") {
        // An age recipient as age-keygen prints it, or a PGP fingerprint (40 hex digits, as
        // SOPS names it; either case).
        const bool age = absl::StartsWith(entry, "age1") && entry.size() <= 100 &&
                         entry.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") ==
                             absl::string_view::npos;
        const bool pgp = entry.size() == 40 && std::all_of(entry.begin(), entry.end(), [](char c) {
                           return absl::ascii_isxdigit(static_cast<unsigned char>(c));
                         });
        if (!age && !pgp) {
          return absl::InvalidArgumentError(absl::StrCat(
              "sops-keys=: \"", entry.substr(0, 64),
              "\" is neither an age recipient (age1...) nor a PGP fingerprint (40 hex digits)"));
        }
        list->push_back(pgp ? absl::AsciiStrToUpper(entry) : std::string(entry));
        continue;
      }
      list->emplace_back(entry);
    }
  }
  // Without a namespace fence every kind is allowed anyway: a list that loosens it would
  // read as a fence of its own.
  if (!scope.cluster_kinds.empty() && scope.namespaces.empty()) {
    return absl::InvalidArgumentError(
        "cluster-kinds= lets cluster-scoped kinds past namespaces=, which is not given (without "
        "it every kind is allowed; to allow some kinds alone, use kinds=)");
  }
  return scope;
}

namespace {

// The scope of a line's fields from `first` on; null when there are none.
absl::StatusOr<std::shared_ptr<const Scope>> LineScope(const std::vector<std::string>& fields,
                                                       size_t first) {
  if (fields.size() <= first) return nullptr;
  absl::StatusOr<Scope> scope =
      Scope::Parse(std::vector<std::string>(fields.begin() + first, fields.end()));
  if (!scope.ok()) return scope.status();
  return std::make_shared<const Scope>(*std::move(scope));
}

}  // namespace

absl::Status OutOfScope(const Caller& caller, absl::string_view what) {
  return absl::PermissionDeniedError(absl::StrCat(
      "caller ", caller.name, "'s scope (", caller.scope->Describe(), ") does not cover ", what));
}

absl::Status Caller::MayReachBundle(const std::string& name) const {
  if (scope == nullptr || scope->CoversBundle(name)) return absl::OkStatus();
  return OutOfScope(*this, absl::StrCat("bundle ", name));
}

absl::Status Caller::MayReachSource(const std::string& name) const {
  if (scope == nullptr || scope->CoversSource(name)) return absl::OkStatus();
  return OutOfScope(*this, absl::StrCat("source ", name));
}

absl::Status Caller::MayReachCluster(const std::string& name, const LabelMap& labels) const {
  if (scope == nullptr || scope->CoversCluster(labels)) return absl::OkStatus();
  return OutOfScope(*this, absl::StrCat("cluster ", name));
}

absl::StatusOr<std::unique_ptr<ApiAuth>> ApiAuth::Parse(const std::string& tokens_text,
                                                        const std::string& client_roles_text) {
  auto auth = std::unique_ptr<ApiAuth>(new ApiAuth());
  std::set<std::string> names;
  absl::StatusOr<std::vector<std::pair<int, std::vector<std::string>>>> token_lines =
      Lines(tokens_text, "--api-tokens");
  if (!token_lines.ok()) return token_lines.status();
  for (const auto& [number, fields] : *token_lines) {
    auto where = [number = number](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("--api-tokens line ", number, ": ", what));
    };
    if (fields.size() < 3) return where("want NAME ROLE TOKEN_SHA256 [SCOPE]");
    absl::StatusOr<Role> role = ParseRole(fields[1]);
    if (!role.ok()) return where(role.status().message());
    std::optional<std::string> hash = Sha256FromHex(fields[2]);
    if (!hash.has_value()) {
      return where(
          "the third field must be the 64 hex digits of the token's SHA-256 (gitfleetctl token "
          "hash), never the token itself");
    }
    if (!names.insert(fields[0]).second) {
      return where(absl::StrCat("caller \"", fields[0], "\" is listed twice"));
    }
    absl::StatusOr<std::shared_ptr<const Scope>> scope = LineScope(fields, 3);
    if (!scope.ok()) return where(scope.status().message());
    auth->tokens_.push_back({fields[0], *role, *std::move(hash), *std::move(scope)});
  }
  absl::StatusOr<std::vector<std::pair<int, std::vector<std::string>>>> role_lines =
      Lines(client_roles_text, "--api-client-roles");
  if (!role_lines.ok()) return role_lines.status();
  for (const auto& [number, fields] : *role_lines) {
    auto where = [number = number](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("--api-client-roles line ", number, ": ", what));
    };
    if (fields.size() < 2) return where("want CN_OR_SAN ROLE [SCOPE]");
    absl::StatusOr<Role> role = ParseRole(fields[1]);
    if (!role.ok()) return where(role.status().message());
    if (absl::StartsWith(fields[0], kAgentUriPrefix)) {
      return where(absl::StrCat(fields[0],
                                " names an agent; an agent's certificate is never an "
                                "API credential"));
    }
    absl::StatusOr<std::shared_ptr<const Scope>> scope = LineScope(fields, 2);
    if (!scope.ok()) return where(scope.status().message());
    if (!auth->client_roles_.emplace(fields[0], ClientRole{*role, *std::move(scope)}).second) {
      return where(absl::StrCat("\"", fields[0], "\" is listed twice"));
    }
  }
  // Each name's scope, when every line of that name agrees on one that names clusters.
  auto scopes = std::make_shared<BundleScopes>();
  std::set<std::string> unfollowed;
  auto follow = [&](const std::string& name, const std::shared_ptr<const Scope>& scope) {
    if (scope == nullptr || !scope->clusters.has_value()) {
      unfollowed.insert(name);
      return;
    }
    v1::BundleScope recorded = ToBundleScope(name, *scope);
    auto [it, added] = scopes->emplace(name, recorded);
    if (!added && it->second.SerializeAsString() != recorded.SerializeAsString()) {
      unfollowed.insert(name);
    }
  };
  for (const Token& token : auth->tokens_) follow(token.name, token.scope);
  for (const auto& [name, role] : auth->client_roles_) follow(name, role.scope);
  // Named, but not to follow: an entry with no caller (see bundle_scopes).
  for (const std::string& name : unfollowed) (*scopes)[name] = v1::BundleScope();
  auth->bundle_scopes_ = std::move(scopes);
  return auth;
}

v1::BundleScope ToBundleScope(const std::string& caller, const Scope& scope) {
  v1::BundleScope out;
  out.set_caller(caller);
  if (scope.clusters.has_value()) out.set_clusters(scope.clusters->text());
  out.mutable_namespaces()->Add(scope.namespaces.begin(), scope.namespaces.end());
  out.mutable_repos()->Add(scope.repos.begin(), scope.repos.end());
  out.set_service_account(scope.service_account);
  out.mutable_sops_keys()->Add(scope.sops_keys.begin(), scope.sops_keys.end());
  out.mutable_kinds()->Add(scope.kinds.begin(), scope.kinds.end());
  out.mutable_deny_kinds()->Add(scope.deny_kinds.begin(), scope.deny_kinds.end());
  out.mutable_cluster_kinds()->Add(scope.cluster_kinds.begin(), scope.cluster_kinds.end());
  return out;
}

absl::StatusOr<std::unique_ptr<ApiAuthFiles>> ApiAuthFiles::Open(
    const std::string& tokens_path, const std::string& client_roles_path,
    WatchedFilesOptions options) {
  options.max_bytes = kMaxFileBytes;
  absl::StatusOr<std::unique_ptr<WatchedFiles<ApiAuth>>> files = WatchedFiles<ApiAuth>::Open(
      {{"--api-tokens", tokens_path}, {"--api-client-roles", client_roles_path}},
      [](const std::vector<std::string>& contents) -> absl::StatusOr<ApiAuth> {
        absl::StatusOr<std::unique_ptr<ApiAuth>> auth = ApiAuth::Parse(contents[0], contents[1]);
        if (!auth.ok()) return auth.status();
        return std::move(**auth);
      },
      options,
      [](const ApiAuth& before, const ApiAuth& after) {
        if (after.local_only() && !before.local_only()) {
          return absl::FailedPreconditionError(
              "--api-tokens, --api-client-roles: the change leaves no credential, which would "
              "serve every local caller as admin; refused (to shut callers out, leave one "
              "line for a token nobody has)");
        }
        return absl::OkStatus();
      });
  if (!files.ok()) return files.status();
  return std::unique_ptr<ApiAuthFiles>(new ApiAuthFiles(*std::move(files)));
}

absl::StatusOr<Caller> ApiAuth::Identify(const CallerFacts& facts) const {
  if (facts.has_authorization) {
    // A credential that was sent and is wrong is refused, never ignored in favour of
    // another one.
    if (!facts.bearer_token.empty() && facts.bearer_token.size() <= kMaxTokenBytes) {
      std::string digest = Sha256Bytes(facts.bearer_token);
      const Token* found = nullptr;
      for (const Token& token : tokens_) {  // compare with every entry: constant time
        if (CRYPTO_memcmp(token.sha256.data(), digest.data(), digest.size()) == 0) found = &token;
      }
      if (found != nullptr) return Caller{found->name, found->role, "token", found->scope};
    }
    return absl::UnauthenticatedError(
        "the admin API does not know this token (give the caller a line in --api-tokens; "
        "gitfleetctl token hash prints it)");
  }
  bool agent_certificate = false;
  for (const std::string& name : facts.certificate) {
    if (absl::StartsWith(name, kAgentUriPrefix)) agent_certificate = true;
  }
  if (agent_certificate) {
    return absl::PermissionDeniedError("an agent's certificate is not an admin API credential");
  }
  for (const std::string& name : facts.certificate) {
    auto it = client_roles_.find(name);
    if (it != client_roles_.end()) {
      return Caller{name, it->second.role, "certificate", it->second.scope};
    }
  }
  if (local_only() && IsLocalPeer(facts.peer)) return Caller{"local", Role::kAdmin, "local"};
  if (local_only()) {
    return absl::UnauthenticatedError(
        "this control plane serves its admin API to local callers only; start it with "
        "--api-tokens to admit remote ones");
  }
  return absl::UnauthenticatedError(
      "the admin API needs a token (gitfleetctl --token-file or GITFLEET_TOKEN) or a client "
      "certificate named in --api-client-roles");
}

absl::Status Authorize(const Caller& caller, const std::string& method) {
  Role needed = RequiredRole(method);
  if (caller.scoped() && IsFleetWide(method)) {
    return absl::PermissionDeniedError(absl::StrCat(method, " is the whole fleet's; caller ",
                                                    caller.name, " is scoped to part of it (",
                                                    caller.scope->Describe(), ")"));
  }
  if (static_cast<int>(caller.role) >= static_cast<int>(needed)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(method, " needs role ", RoleName(needed),
                                                  "; caller ", caller.name, " has role ",
                                                  RoleName(caller.role)));
}

bool IsLocalPeer(const std::string& encoded_peer) {
  // gRPC writes the peer as a URI: IPv6 brackets may come percent-encoded.
  std::string peer =
      absl::StrReplaceAll(encoded_peer, {{"%5B", "["}, {"%5b", "["}, {"%5D", "]"}, {"%5d", "]"}});
  absl::string_view rest(peer);
  if (absl::ConsumePrefix(&rest, "unix:") || absl::ConsumePrefix(&rest, "unix-abstract:")) {
    return true;
  }
  if (absl::ConsumePrefix(&rest, "ipv4:")) {
    size_t colon = rest.rfind(':');
    std::string host(rest.substr(0, colon));
    in_addr address;
    return inet_pton(AF_INET, host.c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
  }
  if (absl::ConsumePrefix(&rest, "ipv6:")) {
    if (!absl::ConsumePrefix(&rest, "[")) return false;
    size_t close = rest.find(']');
    if (close == absl::string_view::npos) return false;
    std::string host(rest.substr(0, close));
    in6_addr address;
    if (inet_pton(AF_INET6, host.c_str(), &address) != 1) return false;
    if (IN6_IS_ADDR_LOOPBACK(&address)) return true;
    // ::ffff:127.x.y.z, as a dual-stack socket shows an IPv4 loopback peer.
    return IN6_IS_ADDR_V4MAPPED(&address) && address.s6_addr[12] == 127;
  }
  return false;
}

std::string TokenLine(const std::string& name, Role role, const std::string& token,
                      const std::string& scope) {
  return absl::StrCat(name, " ", RoleName(role), " ", absl::BytesToHexString(Sha256Bytes(token)),
                      scope.empty() ? "" : " ", scope);
}

}  // namespace gitfleet
