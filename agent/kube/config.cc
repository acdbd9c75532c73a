#include "agent/kube/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

absl::StatusOr<std::string> ReadWhole(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return absl::StrCat(base_dir, "/", path);
}

std::string Scalar(const YAML::Node& node, const char* field) {
  if (!node.IsMap()) return "";  // subscripting anything else throws
  const YAML::Node value = node[field];
  if (!value || !value.IsScalar()) return "";
  return value.as<std::string>();
}

// Finds the entry of `list` (clusters, users, contexts) whose name is `name`.
absl::StatusOr<YAML::Node> Named(const YAML::Node& root, const char* list, const char* inner,
                                 const std::string& name, const std::string& origin) {
  std::vector<std::string> names;
  const YAML::Node entries = root[list];
  if (entries && entries.IsSequence()) {
    for (const YAML::Node& entry : entries) {
      std::string entry_name = Scalar(entry, "name");
      if (entry_name == name) {
        YAML::Node body = entry[inner];
        if (!body || !body.IsMap()) {
          return absl::InvalidArgumentError(
              absl::StrCat(origin, ": ", list, " entry \"", name, "\" has no ", inner, " map"));
        }
        return body;
      }
      names.push_back(entry_name);
    }
  }
  return absl::NotFoundError(absl::StrCat(origin, ": no ", inner, " named \"", name,
                                          "\" (have: ", absl::StrJoin(names, ", "), ")"));
}

// Reads `field-data` (base64) or `field` (a path); empty when neither is set.
absl::StatusOr<std::string> DataOrFile(const YAML::Node& node, const std::string& field,
                                       const std::string& base_dir, const std::string& origin) {
  std::string data = Scalar(node, (field + "-data").c_str());
  if (!data.empty()) {
    std::string decoded;
    if (!absl::Base64Unescape(data, &decoded)) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": ", field, "-data is not valid base64"));
    }
    return decoded;
  }
  std::string path = Scalar(node, field.c_str());
  if (path.empty()) return std::string();
  absl::StatusOr<std::string> text = ReadWhole(Resolve(base_dir, path), field);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", text.status().message()));
  }
  return text;
}

absl::StatusOr<KubeConfig> ParseKubeconfigUnchecked(absl::string_view text,
                                                    absl::string_view context,
                                                    const std::string& base_dir,
                                                    const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": not YAML: ", e.what()));
  }
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(origin, ": not a kubeconfig"));
  std::string context_name(context);
  if (context_name.empty()) context_name = Scalar(root, "current-context");
  if (context_name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": no current-context; pass --context=NAME"));
  }
  KubeConfig config;
  config.origin = absl::StrCat(origin, " (context ", context_name, ")");
  absl::StatusOr<YAML::Node> ctx = Named(root, "contexts", "context", context_name, origin);
  if (!ctx.ok()) return ctx.status();
  std::string cluster_name = Scalar(*ctx, "cluster");
  std::string user_name = Scalar(*ctx, "user");
  if (std::string ns = Scalar(*ctx, "namespace"); !ns.empty()) config.default_namespace = ns;

  absl::StatusOr<YAML::Node> cluster = Named(root, "clusters", "cluster", cluster_name, origin);
  if (!cluster.ok()) return cluster.status();
  config.server = Scalar(*cluster, "server");
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  if (config.server.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": cluster \"", cluster_name, "\" has no server"));
  }
  if (!absl::StartsWith(config.server, "https://") && !absl::StartsWith(config.server, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": cluster \"", cluster_name,
                                                   "\": server \"", config.server,
                                                   "\" is not an http(s) URL"));
  }
  config.insecure_skip_tls_verify = Scalar(*cluster, "insecure-skip-tls-verify") == "true";
  if (!Scalar(*cluster, "tls-server-name").empty()) {
    return absl::UnimplementedError(absl::StrCat(origin, ": cluster \"", cluster_name,
                                                 "\" sets tls-server-name, which gitfleet does "
                                                 "not support; use a server URL whose host is "
                                                 "in the certificate"));
  }
  absl::StatusOr<std::string> ca = DataOrFile(*cluster, "certificate-authority", base_dir, origin);
  if (!ca.ok()) return ca.status();
  config.ca_pem = *std::move(ca);

  if (!user_name.empty()) {
    absl::StatusOr<YAML::Node> user = Named(root, "users", "user", user_name, origin);
    if (!user.ok()) return user.status();
    if ((*user)["exec"] || (*user)["auth-provider"]) {
      return absl::UnimplementedError(
          absl::StrCat(origin, ": user \"", user_name,
                       "\" uses an exec plugin or auth provider, which gitfleet does not run; "
                       "give it a token, tokenFile or client certificate"));
    }
    absl::StatusOr<std::string> cert = DataOrFile(*user, "client-certificate", base_dir, origin);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = DataOrFile(*user, "client-key", base_dir, origin);
    if (!key.ok()) return key.status();
    if (cert->empty() != key->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": user \"", user_name, "\" needs both client-certificate and client-key"));
    }
    config.client_cert_pem = *std::move(cert);
    config.client_key_pem = *std::move(key);
    config.token = Scalar(*user, "token");
    std::string token_file = Scalar(*user, "tokenFile");
    if (!token_file.empty()) config.token_file = Resolve(base_dir, token_file);
  }
  return config;
}

}  // namespace

absl::StatusOr<KubeConfig> ParseKubeconfig(absl::string_view text, absl::string_view context,
                                           const std::string& base_dir, const std::string& origin) {
  // yaml-cpp throws on a subscript of the wrong node type; a malformed kubeconfig must be
  // an error, never a crash (found by tests/fuzz:kubeconfig_fuzzer).
  try {
    return ParseKubeconfigUnchecked(text, context, base_dir, origin);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": not a kubeconfig (", e.what(), ")"));
  }
}

absl::StatusOr<KubeConfig> LoadKubeconfig(const std::string& path, absl::string_view context) {
  absl::StatusOr<std::string> text = ReadWhole(path, "kubeconfig");
  if (!text.ok()) return absl::InvalidArgumentError(text.status().message());
  std::string base_dir;
  if (size_t slash = path.rfind('/'); slash != std::string::npos) base_dir = path.substr(0, slash);
  return ParseKubeconfig(*text, context, base_dir, absl::StrCat("kubeconfig ", path));
}

absl::StatusOr<KubeConfig> InClusterConfig(const std::string& account_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
    return absl::FailedPreconditionError(
        "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); pass --kubeconfig=PATH");
  }
  KubeConfig config;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = absl::StrCat("[", h, "]");  // IPv6
  config.server = absl::StrCat("https://", h, ":", port);
  config.origin = absl::StrCat("in-cluster service account ", account_dir);
  config.token_file = account_dir + "/token";
  absl::StatusOr<std::string> token = ReadWhole(config.token_file, "service-account token");
  if (!token.ok()) return absl::FailedPreconditionError(token.status().message());
  config.token = std::string(absl::StripAsciiWhitespace(*token));
  absl::StatusOr<std::string> ca = ReadWhole(account_dir + "/ca.crt", "service-account CA");
  if (!ca.ok()) return absl::FailedPreconditionError(ca.status().message());
  config.ca_pem = *std::move(ca);
  absl::StatusOr<std::string> ns = ReadWhole(account_dir + "/namespace", "namespace");
  if (ns.ok() && !absl::StripAsciiWhitespace(*ns).empty()) {
    config.default_namespace = std::string(absl::StripAsciiWhitespace(*ns));
  }
  return config;
}

}  // namespace gitfleet
