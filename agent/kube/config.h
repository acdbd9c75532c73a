#ifndef GITFLEET_AGENT_KUBE_CONFIG_H_
#define GITFLEET_AGENT_KUBE_CONFIG_H_

// How to reach a Kubernetes API server: from a kubeconfig file (current or named
// context) or from the pod's service account (in-cluster).
//
//   GF_ASSIGN_OR_RETURN(KubeConfig config, LoadKubeconfig("/home/me/.kube/config", ""));
//   GF_ASSIGN_OR_RETURN(KubeConfig config, InClusterConfig());
//
// Supported: server, certificate-authority[-data], insecure-skip-tls-verify,
// client-certificate[-data], client-key[-data], token, tokenFile,
// the context's namespace. Exec plugins, auth providers and tls-server-name are refused with an
// error that says so. Relative file paths are resolved against the kubeconfig's directory.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gitfleet {

struct KubeConfig {
  std::string server;  // "https://host:port", no trailing slash
  std::string ca_pem;  // empty: the system's CAs
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;
  // Re-read when it changes (projected service-account tokens rotate).
  std::string token_file;
  // Namespace for namespaced objects that name none and have no target namespace.
  std::string default_namespace = "default";
  // Where this came from, for messages: "kubeconfig /p (context kind-dev)".
  std::string origin;
};

// `context` empty means the file's current-context.
absl::StatusOr<KubeConfig> LoadKubeconfig(const std::string& path, absl::string_view context);
absl::StatusOr<KubeConfig> ParseKubeconfig(absl::string_view text, absl::string_view context,
                                           const std::string& base_dir, const std::string& origin);

// From KUBERNETES_SERVICE_HOST/PORT and the service-account directory
// (/var/run/secrets/kubernetes.io/serviceaccount unless `account_dir` is given).
absl::StatusOr<KubeConfig> InClusterConfig(
    const std::string& account_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_KUBE_CONFIG_H_
