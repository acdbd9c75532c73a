#include "controlplane/api/auth.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>

#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/manifest/hash.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/server_context.h"

namespace gitfleet {
namespace {

constexpr char kAgentUriPrefix[] = "gitfleet://cluster/";
constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxTokenBytes = 4096;

// The non-comment lines of a config file, split on whitespace, with their line numbers.
std::vector<std::pair<int, std::vector<std::string>>> Lines(const std::string& text) {
  std::vector<std::pair<int, std::vector<std::string>>> lines;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    lines.emplace_back(number, absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty()));
  }
  return lines;
}

struct MethodRule {
  const char* method;
  Role role;
  bool mutating;
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
    {"AdoptCluster", Role::kAdmin, true},
    {"ForgetBundle", Role::kAdmin, true},
    {"Backup", Role::kAdmin, false},
    {"RegisterCluster", Role::kAdmin, true},
    {"LabelCluster", Role::kAdmin, true},
    {"RotateClusterToken", Role::kAdmin, true},
    {"RemoveCluster", Role::kAdmin, true},
    {"GetRollout", Role::kViewer, false},
    {"ControlRollout", Role::kOperator, true},
    {"SuspendBundle", Role::kOperator, true},
    {"SuspendCluster", Role::kOperator, true},
    {"BundleHistory", Role::kViewer, false},
    {"PinBundle", Role::kOperator, true},
    {"WatchEvents", Role::kViewer, false},
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
    if (absl::ConsumePrefix(&value, "Bearer ")) facts.bearer_token = std::string(value);
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

absl::StatusOr<std::unique_ptr<ApiAuth>> ApiAuth::Parse(const std::string& tokens_text,
                                                        const std::string& client_roles_text) {
  auto auth = std::unique_ptr<ApiAuth>(new ApiAuth());
  std::set<std::string> names;
  for (const auto& [number, fields] : Lines(tokens_text)) {
    auto where = [number = number](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("--api-tokens line ", number, ": ", what));
    };
    if (fields.size() != 3) return where("want NAME ROLE TOKEN_SHA256");
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
    auth->tokens_.push_back({fields[0], *role, *std::move(hash)});
  }
  for (const auto& [number, fields] : Lines(client_roles_text)) {
    auto where = [number = number](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("--api-client-roles line ", number, ": ", what));
    };
    if (fields.size() != 2) return where("want CN_OR_SAN ROLE");
    absl::StatusOr<Role> role = ParseRole(fields[1]);
    if (!role.ok()) return where(role.status().message());
    if (absl::StartsWith(fields[0], kAgentUriPrefix)) {
      return where(absl::StrCat(fields[0],
                                " names an agent; an agent's certificate is never an "
                                "API credential"));
    }
    if (!auth->client_roles_.emplace(fields[0], *role).second) {
      return where(absl::StrCat("\"", fields[0], "\" is listed twice"));
    }
  }
  return auth;
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
      if (found != nullptr) return Caller{found->name, found->role, "token"};
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
    if (it != client_roles_.end()) return Caller{name, it->second, "certificate"};
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

std::string TokenLine(const std::string& name, Role role, const std::string& token) {
  return absl::StrCat(name, " ", RoleName(role), " ", absl::BytesToHexString(Sha256Bytes(token)));
}

}  // namespace gitfleet
