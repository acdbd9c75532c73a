// fake-kube-apiserver: the fake API server as a process, for end-to-end tests and
// benchmarks that run the real agent binary. Prints "listening on URL" when ready and
// serves until SIGTERM or SIGINT.

#include <signal.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/flags.h"
#include "tests/fakekube/fake_apiserver.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "host:port (port 0 picks one).");
ABSL_FLAG(std::string, tls_cert_and_key, "", "PEM with certificate and key: serve HTTPS.");
ABSL_FLAG(std::string, token, "", "Bearer token every request must carry.");
ABSL_FLAG(std::string, restricted_token, "",
          "A second bearer token, whose requests are judged by RBAC as --restricted-user.");
ABSL_FLAG(std::string, restricted_user, "system:serviceaccount:gitfleet:agent",
          "Who --restricted-token's requests are judged as.");
ABSL_FLAG(std::string, client_ca, "", "With TLS: require client certificates this CA signed.");
ABSL_FLAG(bool, simulate_controllers, true, "Report finished rollouts for workloads.");
ABSL_FLAG(std::string, port_file, "", "Write the port here once listening.");

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::vector<char*> args = gitfleet::NormalizeFlagNames(argc, argv);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  gitfleet::FakeApiServer::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.tls_cert_and_key = absl::GetFlag(FLAGS_tls_cert_and_key);
  options.token = absl::GetFlag(FLAGS_token);
  options.restricted_token = absl::GetFlag(FLAGS_restricted_token);
  options.restricted_user = absl::GetFlag(FLAGS_restricted_user);
  options.client_ca = absl::GetFlag(FLAGS_client_ca);
  options.simulate_controllers = absl::GetFlag(FLAGS_simulate_controllers);
  auto server = gitfleet::FakeApiServer::Start(options);
  if (!server.ok()) {
    std::cerr << server.status().message() << "\n";
    return 2;
  }
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    std::string tmp = absl::GetFlag(FLAGS_port_file) + ".tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    if (f == nullptr) return 2;
    fprintf(f, "%d\n", (*server)->port());
    fclose(f);
    rename(tmp.c_str(), absl::GetFlag(FLAGS_port_file).c_str());
  }
  std::cout << "listening on " << (*server)->url() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  return 0;
}
