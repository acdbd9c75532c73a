#include "agent/kube/config.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

const char* kConfig = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: Q0EtUEVN
- name: prod-cluster
  cluster:
    server: https://prod.example.com
    certificate-authority: certs/ca.crt
    insecure-skip-tls-verify: true
users:
- name: dev-user
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
- name: prod-user
  user:
    token: abc
    tokenFile: tokens/prod
- name: exec-user
  user:
    exec: {command: aws}
contexts:
- name: dev
  context: {cluster: dev-cluster, user: dev-user}
- name: prod
  context: {cluster: prod-cluster, user: prod-user, namespace: shop}
- name: cloud
  context: {cluster: dev-cluster, user: exec-user}
- name: broken
  context: {cluster: nowhere, user: dev-user}
)";

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

TEST(KubeconfigTest, CurrentContextWithInlineData) {
  absl::StatusOr<KubeConfig> c = ParseKubeconfig(kConfig, "", "/base", "kubeconfig x");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://127.0.0.1:6443");
  EXPECT_EQ(c->ca_pem, "CA-PEM");
  EXPECT_EQ(c->client_cert_pem, "CERT");
  EXPECT_EQ(c->client_key_pem, "KEY");
  EXPECT_EQ(c->default_namespace, "default");
  EXPECT_FALSE(c->insecure_skip_tls_verify);
  EXPECT_THAT(c->origin, HasSubstr("context dev"));
}

TEST(KubeconfigTest, NamedContextWithFilesRelativeToTheKubeconfig) {
  std::string dir = TempDir() + "/kc";
  ASSERT_EQ(system(("mkdir -p " + dir + "/certs " + dir + "/tokens").c_str()), 0);
  std::ofstream(dir + "/certs/ca.crt") << "FILE-CA";
  std::ofstream(dir + "/config") << kConfig;
  absl::StatusOr<KubeConfig> c = LoadKubeconfig(dir + "/config", "prod");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://prod.example.com");
  EXPECT_EQ(c->ca_pem, "FILE-CA");
  EXPECT_TRUE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->token, "abc");
  EXPECT_EQ(c->token_file, dir + "/tokens/prod");
  EXPECT_EQ(c->default_namespace, "shop");
}

TEST(KubeconfigTest, ErrorsNameWhatIsWrong) {
  EXPECT_THAT(ParseKubeconfig(kConfig, "staging", "", "kc").status().message(),
              HasSubstr("no context named \"staging\" (have: dev, prod, cloud, broken)"));
  EXPECT_THAT(ParseKubeconfig(kConfig, "broken", "", "kc").status().message(),
              HasSubstr("no cluster named \"nowhere\""));
  absl::Status exec = ParseKubeconfig(kConfig, "cloud", "", "kc").status();
  EXPECT_EQ(exec.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(exec.message(), HasSubstr("exec plugin"));
  EXPECT_THAT(ParseKubeconfig(kConfig, "prod", "/nonexistent", "kc").status().message(),
              HasSubstr("certificate-authority /nonexistent/certs/ca.crt"));
  EXPECT_THAT(ParseKubeconfig("clusters: [", "", "", "kc").status().message(),
              HasSubstr("not YAML"));
  EXPECT_THAT(ParseKubeconfig("kind: Config\n", "", "", "kc").status().message(),
              HasSubstr("no current-context"));
  EXPECT_THAT(LoadKubeconfig("/nonexistent/config", "").status().message(),
              HasSubstr("cannot read kubeconfig /nonexistent/config"));
  EXPECT_THAT(ParseKubeconfig("current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
                              "clusters: [{name: c, cluster: {server: ftp://x}}]\n",
                              "", "", "kc")
                  .status()
                  .message(),
              HasSubstr("not an http(s) URL"));
  EXPECT_THAT(
      ParseKubeconfig("current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                      "clusters: [{name: c, cluster: {server: https://x}}]\n"
                      "users: [{name: u, user: {client-certificate-data: Q0VSVA==}}]\n",
                      "", "", "kc")
          .status()
          .message(),
      HasSubstr("needs both client-certificate and client-key"));
  // Wrong node types are errors, not crashes (tests/fuzz:kubeconfig_fuzzer found these).
  EXPECT_FALSE(ParseKubeconfig("current-context: a\ncontexts: [x]\n", "", "", "kc").ok());
  EXPECT_FALSE(ParseKubeconfig("current-context: a\ncontexts: [{name: a, context: [1]}]\n"
                               "clusters: x\n",
                               "", "", "kc")
                   .ok());
}

TEST(InClusterConfigTest, ReadsTheServiceAccount) {
  std::string dir = TempDir() + "/sa";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/token") << "tok\n";
  std::ofstream(dir + "/ca.crt") << "CA";
  std::ofstream(dir + "/namespace") << "gitfleet";
  unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_THAT(InClusterConfig(dir).status().message(), HasSubstr("KUBERNETES_SERVICE_HOST"));
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  absl::StatusOr<KubeConfig> c = InClusterConfig(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token, "tok");
  EXPECT_EQ(c->token_file, dir + "/token");
  EXPECT_EQ(c->ca_pem, "CA");
  EXPECT_EQ(c->default_namespace, "gitfleet");
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  EXPECT_EQ(InClusterConfig(dir)->server, "https://[fd00::1]:443");
  EXPECT_THAT(InClusterConfig(dir + "/missing").status().message(), HasSubstr("token"));
}

}  // namespace
}  // namespace gitfleet
