// gitfleet-agent: dials the control plane, applies its bundles, reports status.
// Wiring only: every component lives in its own package.

#include <string.h>

#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "agent/apply/applier.h"
#include "agent/apply/reconciler.h"
#include "agent/metrics.h"
#include "agent/state/state_store.h"
#include "common/file_system.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/metrics/http_server.h"
#include "common/shutdown.h"
#include "common/sync.h"
#include "common/tls.h"
#include "controlplane/fleet/label_selector.h"

ABSL_FLAG(std::string, controlplane, "127.0.0.1:7070", "Control plane gRPC address.");
ABSL_FLAG(std::string, cluster, "", "This cluster's name (required).");
ABSL_FLAG(std::string, labels, "", "This cluster's labels: k=v,k2=v2.");
ABSL_FLAG(std::string, token, "", "Token the control plane expects for this cluster.");
ABSL_FLAG(std::string, token_file, "", "File holding the token (read at start).");
ABSL_FLAG(std::string, apply, "", "Where to apply: directory:DIR (required).");
ABSL_FLAG(std::string, state_dir, "", "Directory for the durable record (required).");
ABSL_FLAG(std::string, http, "127.0.0.1:7081", "Address for /metrics, /healthz and /readyz.");
ABSL_FLAG(std::string, tls_cert, "", "Client certificate (PEM) for mTLS.");
ABSL_FLAG(std::string, tls_key, "", "Client private key (PEM) for mTLS.");
ABSL_FLAG(std::string, tls_ca, "", "CA that signs the control plane's certificate: enables TLS.");
ABSL_FLAG(int, resync_interval_seconds, 30, "How often to check live objects for drift.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC message sent or received.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");

namespace gitfleet {
namespace {

int Fail(const absl::Status& status) {
  GF_LOG(ERROR) << status.message();
  return 2;
}

int Main(ShutdownSignals& signals) {
  if (absl::Status s = SetLogLevelByName(absl::GetFlag(FLAGS_log_level)); !s.ok()) return Fail(s);
  const std::string cluster = absl::GetFlag(FLAGS_cluster);
  if (cluster.empty()) return Fail(absl::InvalidArgumentError("--cluster is required"));
  absl::StatusOr<LabelMap> labels = ParseLabels(absl::GetFlag(FLAGS_labels));
  if (!labels.ok()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--labels: ", labels.status().message())));
  }
  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  if (state_dir.empty()) return Fail(absl::InvalidArgumentError("--state-dir is required"));
  const std::string apply_flag = absl::GetFlag(FLAGS_apply);
  absl::string_view apply = apply_flag;
  if (!absl::ConsumePrefix(&apply, "directory:") || apply.empty()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--apply=\"", absl::GetFlag(FLAGS_apply),
                     "\": want directory:DIR (the kubernetes applier is not built yet)")));
  }
  if (absl::GetFlag(FLAGS_resync_interval_seconds) < 1) {
    return Fail(absl::InvalidArgumentError("--resync-interval-seconds must be at least 1"));
  }
  std::string token = absl::GetFlag(FLAGS_token);
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    absl::StatusOr<std::string> data = PosixFileSystem().ReadFile(absl::GetFlag(FLAGS_token_file));
    if (!data.ok()) {
      return Fail(
          absl::InvalidArgumentError(absl::StrCat("--token-file: ", data.status().message())));
    }
    token = std::string(absl::StripAsciiWhitespace(*data));
  }
  TlsFiles tls{absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
               absl::GetFlag(FLAGS_tls_ca)};
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(tls);
  if (!credentials.ok()) return Fail(credentials.status());

  metrics::Registry registry;
  AgentMetrics metrics(registry);
  FileSystem& fs = PosixFileSystem();
  DirectoryApplier applier(std::string(apply), &fs);
  BundleStateStore state(state_dir, &fs);
  Reconciler reconciler(&applier, &state, metrics);
  if (absl::Status s = reconciler.Load(); !s.ok()) return Fail(s);

  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start(absl::GetFlag(FLAGS_http), &registry, [] { return std::string(); });
  if (!http.ok()) return Fail(http.status());

  ControlPlaneClient::Options client_options;
  client_options.target = absl::GetFlag(FLAGS_controlplane);
  client_options.credentials = *credentials;
  client_options.token = token;
  client_options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  Agent::Options options;
  options.cluster = cluster;
  options.labels = *labels;
  options.resync_interval = absl::Seconds(absl::GetFlag(FLAGS_resync_interval_seconds));
  Agent agent(&reconciler, client_options, options, metrics);

  Notification stop;
  std::thread waiter([&] {
    int sig = signals.Wait();
    GF_LOG(INFO) << "shutting down on " << strsignal(sig);
    stop.Notify();
  });
  GF_LOG(INFO) << "gitfleet-agent for cluster " << cluster << " applying to directory " << apply
               << ", HTTP on port " << (*http)->port();
  agent.Run(&stop);
  waiter.join();
  return 0;
}

}  // namespace
}  // namespace gitfleet

int main(int argc, char** argv) {
  gitfleet::ShutdownSignals signals;  // before any thread starts
  // gRPC locks absl::Mutex on every message; Debian's Abseil checks each lock for
  // deadlock cycles unless told not to, which cost 8% of the control plane's CPU in a
  // 5,000-agent fan-out.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "gitfleet-agent --controlplane=ADDR --cluster=NAME --labels=k=v --token=T "
      "--apply=directory:DIR --state-dir=DIR --http=ADDR");
  std::vector<char*> args = gitfleet::NormalizeFlagNames(argc, argv);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  return gitfleet::Main(signals);
}
