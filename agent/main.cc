// gitfleet-agent: dials the control plane, applies its bundles, reports status.
// Wiring only: every component lives in its own package.

#include <string.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <memory>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/apply/applier.h"
#include "agent/apply/impersonating_applier.h"
#include "agent/apply/reconciler.h"
#include "agent/kube/account_watch.h"
#include "agent/kube/applier.h"
#include "agent/kube/client.h"
#include "agent/kube/config.h"
#include "agent/kube/discovery.h"
#include "agent/kube/drift_watch.h"
#include "agent/metrics.h"
#include "agent/state/state_store.h"
#include "common/file_system.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/metrics/http_server.h"
#include "common/model/label_selector.h"
#include "common/names.h"
#include "common/shutdown.h"
#include "common/sync.h"
#include "common/tls.h"

ABSL_FLAG(std::string, controlplane, "127.0.0.1:7070", "Control plane gRPC address.");
ABSL_FLAG(std::string, cluster, "", "This cluster's name (required).");
ABSL_FLAG(std::string, labels, "", "This cluster's labels: k=v,k2=v2.");
ABSL_FLAG(std::string, token, "",
          "Token the control plane expects for this cluster (visible in the process list: "
          "prefer --token-file).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the token, read again before each connection to the control plane.");
ABSL_FLAG(std::string, apply, "",
          "Where to apply (required): kubernetes (with --kubeconfig, or in-cluster) or "
          "directory:DIR.");
ABSL_FLAG(std::string, kubeconfig, "",
          "Kubeconfig for --apply=kubernetes; empty means the pod's service account.");
ABSL_FLAG(std::string, context, "", "Kubeconfig context; empty means its current-context.");
ABSL_FLAG(double, kube_qps, 50, "Most Kubernetes API requests per second.");
ABSL_FLAG(int, kube_burst, 100, "Kubernetes API requests allowed at once above --kube-qps.");
ABSL_FLAG(int, kube_timeout_seconds, 30, "Timeout of one Kubernetes API request.");
ABSL_FLAG(int, crd_wait_seconds, 60,
          "How long a custom resource waits for a CRD applied before it to be Established.");
ABSL_FLAG(int, health_interval_seconds, 2,
          "How often health that is still changing (rollouts) is read again.");
ABSL_FLAG(absl::Duration, hook_timeout, absl::Hours(1),
          "A hook run (a PreSync migration Job, ...) still going after this has failed.");
ABSL_FLAG(std::string, state_dir, "", "Directory for the durable record (required).");
ABSL_FLAG(std::string, http, "127.0.0.1:7081", "Address for /metrics, /healthz and /readyz.");
ABSL_FLAG(std::string, tls_cert, "",
          "Client certificate (PEM) for mTLS. Read again, with --tls-key and --tls-ca, before "
          "each reconnection: a renewed certificate is presented without a restart, once its "
          "key matches it.");
ABSL_FLAG(std::string, tls_key, "", "Client private key (PEM) for mTLS.");
ABSL_FLAG(std::string, tls_ca, "", "CA that signs the control plane's certificate: enables TLS.");
ABSL_FLAG(int, resync_interval_seconds, 30, "How often to check live objects for drift.");
ABSL_FLAG(int, watched_resync_interval_seconds, 300,
          "How often to check a bundle's live objects for drift when --watch-drift hears "
          "every one of them (a change brings a check forward within about a second): the "
          "floor for anything a watch could miss. At most --resync-interval-seconds has no "
          "effect.");
ABSL_FLAG(bool, watch_drift, true,
          "Watch the kinds the bundles hold (objects labelled gitfleet.io/bundle, across "
          "namespaces), so an object someone changes or deletes is checked within about a "
          "second rather than at the next --resync-interval-seconds check. Needs list and "
          "watch on those kinds across the cluster (or, failing that, in the namespaces its "
          "bundles use); a kind it may not watch is left to the periodic checks.");
ABSL_FLAG(int, max_drift_watches, 64,
          "Watches at once, one thread each (--watch-drift: a kind across namespaces, or in "
          "one namespace), the agent's own and those made as its bundles' service accounts "
          "together; the rest are left to the periodic checks.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC message sent or received.");
ABSL_FLAG(bool, grpc_bdp_probe, false,
          "Probe the link's bandwidth-delay product to widen gRPC's flow-control window: "
          "for a first sync of many megabytes over a long-latency link. Costs a ping per "
          "update.");
ABSL_FLAG(std::string, take_fields_from, absl::StrJoin(gitfleet::DefaultSharedFieldManagers(), ","),
          "Field managers (a trailing * matches a prefix) that tools used before gitfleet write "
          "as: fields gitfleet applies with the value they set become gitfleet's alone, so that "
          "dropping one from Git removes it. Empty: none.");
ABSL_FLAG(std::string, default_service_account, "",
          "With --apply=kubernetes: bundles that name no service account are applied as this "
          "one ([NAMESPACE/]NAME; NAME alone in each bundle's target namespace), never with the "
          "agent's own rights, as Flux's --default-service-account locks a cluster down.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");

namespace gitfleet {
namespace {

// The agent's token: fixed, or read from a file before each use.
class TokenFile {
 public:
  TokenFile(std::string path, std::string fixed)
      : path_(std::move(path)), token_(std::move(fixed)) {}

  absl::Status Reload() {
    if (path_.empty()) return absl::OkStatus();
    absl::StatusOr<std::string> data = PosixFileSystem().ReadFile(path_);
    if (!data.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--token-file: ", data.status().message()));
    }
    std::string token(absl::StripAsciiWhitespace(*data));
    if (token.empty() || token.size() > 4096) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file: ", path_, " must hold one token of 1 to 4096 characters"));
    }
    MutexLock lock(&mu_);
    if (!token_.empty() && token != token_) GF_LOG(INFO) << "token changed in " << path_;
    token_ = std::move(token);
    return absl::OkStatus();
  }

  std::string Get() {
    if (absl::Status s = Reload(); !s.ok()) {
      GF_LOG(WARNING) << s.message() << "; using the last token read";
    }
    MutexLock lock(&mu_);
    return token_;
  }

 private:
  const std::string path_;
  Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
};

int Fail(const absl::Status& status) {
  GF_LOG(ERROR) << status.message();
  return 2;
}

int Main(ShutdownSignals& signals) {
  if (absl::Status s = SetLogLevelByName(absl::GetFlag(FLAGS_log_level)); !s.ok()) return Fail(s);
  const std::string cluster = absl::GetFlag(FLAGS_cluster);
  if (cluster.empty()) return Fail(absl::InvalidArgumentError("--cluster is required"));
  if (absl::Status s = ValidateClusterName(cluster); !s.ok()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--cluster: ", s.message())));
  }
  absl::StatusOr<LabelMap> labels = ParseLabels(absl::GetFlag(FLAGS_labels));
  if (!labels.ok()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--labels: ", labels.status().message())));
  }
  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  if (state_dir.empty()) return Fail(absl::InvalidArgumentError("--state-dir is required"));
  const std::string apply_flag = absl::GetFlag(FLAGS_apply);
  absl::string_view apply = apply_flag;
  const bool kubernetes = apply == "kubernetes";
  if (const std::string account = absl::GetFlag(FLAGS_default_service_account); !account.empty()) {
    if (!kubernetes) {
      return Fail(absl::InvalidArgumentError(
          "--default-service-account needs --apply=kubernetes: only the Kubernetes applier "
          "can act as a service account"));
    }
    if (absl::Status s = ValidateServiceAccount(account); !s.ok()) {
      return Fail(
          absl::InvalidArgumentError(absl::StrCat("--default-service-account: ", s.message())));
    }
  }
  if (!kubernetes && (!absl::ConsumePrefix(&apply, "directory:") || apply.empty())) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--apply=\"", absl::GetFlag(FLAGS_apply),
                                                        "\": want kubernetes or directory:DIR")));
  }
  if (!kubernetes && !absl::GetFlag(FLAGS_kubeconfig).empty()) {
    return Fail(absl::InvalidArgumentError("--kubeconfig needs --apply=kubernetes"));
  }
  if (absl::GetFlag(FLAGS_health_interval_seconds) < 1) {
    return Fail(absl::InvalidArgumentError("--health-interval-seconds must be at least 1"));
  }
  if (absl::GetFlag(FLAGS_hook_timeout) < absl::Seconds(1)) {
    return Fail(absl::InvalidArgumentError("--hook-timeout must be at least 1s"));
  }
  if (absl::GetFlag(FLAGS_max_drift_watches) < 0 || absl::GetFlag(FLAGS_max_drift_watches) > 1000) {
    return Fail(absl::InvalidArgumentError("--max-drift-watches must be between 0 and 1000"));
  }
  if (absl::GetFlag(FLAGS_watched_resync_interval_seconds) < 1 ||
      absl::GetFlag(FLAGS_watched_resync_interval_seconds) > 86400) {
    return Fail(absl::InvalidArgumentError(
        "--watched-resync-interval-seconds must be between 1 and 86400"));
  }
  if (absl::GetFlag(FLAGS_resync_interval_seconds) < 1) {
    return Fail(absl::InvalidArgumentError("--resync-interval-seconds must be at least 1"));
  }
  if (!absl::GetFlag(FLAGS_token).empty() && !absl::GetFlag(FLAGS_token_file).empty()) {
    return Fail(absl::InvalidArgumentError("give --token or --token-file, not both"));
  }
  // The token is read again before each connection, so rotating the file (a mounted
  // Secret) needs no restart. A file that cannot be read keeps the last good token.
  auto token =
      std::make_shared<TokenFile>(absl::GetFlag(FLAGS_token_file), absl::GetFlag(FLAGS_token));
  if (absl::Status s = token->Reload(); !s.ok()) return Fail(s);
  if (!absl::GetFlag(FLAGS_token).empty()) {
    GF_LOG(WARNING) << "--token: a token on the command line is visible to every local user "
                       "(ps, /proc); give --token-file, a file only the agent may read";
  }
  if (!token->Get().empty() && absl::GetFlag(FLAGS_tls_ca).empty()) {
    GF_LOG(WARNING) << "no TLS to the control plane (--tls-ca): this agent's token travels "
                       "in clear";
  }
  // Read again before each reconnection: a renewed client certificate is presented from
  // the next connection on, without a restart.
  absl::StatusOr<std::shared_ptr<ReloadingChannelTls>> tls = ReloadingChannelTls::Open(
      {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key), absl::GetFlag(FLAGS_tls_ca)});
  if (!tls.ok()) return Fail(tls.status());

  metrics::Registry registry;
  AgentMetrics metrics(registry);
  FileSystem& fs = PosixFileSystem();
  // Clients acting as the service accounts bundles name, before the appliers using them.
  std::vector<std::unique_ptr<KubeClient>> account_clients;
  std::unique_ptr<Applier> own_applier;
  std::unique_ptr<Applier> applier;
  std::unique_ptr<KubeClient> kube;
  std::unique_ptr<RestMapper> mapper;
  // The change watch, once made (below), for the appliers to tell what they wrote.
  auto written_to = std::make_shared<std::atomic<AccountWatches*>>(nullptr);
  std::string target;
  std::string default_namespace;  // the kubeconfig's
  if (kubernetes) {
    const std::string kubeconfig = absl::GetFlag(FLAGS_kubeconfig);
    absl::StatusOr<KubeConfig> config =
        kubeconfig.empty() ? InClusterConfig()
                           : LoadKubeconfig(kubeconfig, absl::GetFlag(FLAGS_context));
    if (!config.ok()) return Fail(config.status());
    KubeClient::Options kube_options;
    kube_options.qps = absl::GetFlag(FLAGS_kube_qps);
    kube_options.burst = absl::GetFlag(FLAGS_kube_burst);
    kube_options.timeout = absl::Seconds(absl::GetFlag(FLAGS_kube_timeout_seconds));
    kube_options.on_response = [&metrics](absl::string_view method, int code) {
      metrics.kube_requests.Add({{"method", std::string(method)}, {"code", std::to_string(code)}})
          .Increment();
    };
    absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(*config, kube_options);
    if (!client.ok()) return Fail(client.status());
    kube = *std::move(client);
    mapper = std::make_unique<RestMapper>(kube.get());
    KubernetesApplier::Options applier_options;
    applier_options.default_namespace = config->default_namespace;
    // A CR applied as one account waits for a CRD applied as another (or as the agent).
    applier_options.crds = std::make_shared<AppliedCrds>();
    default_namespace = config->default_namespace;
    applier_options.crd_wait = absl::Seconds(absl::GetFlag(FLAGS_crd_wait_seconds));
    // The gauge is the sum over the agent's own applier and those acting as accounts.
    struct NotReconciled {
      Mutex mu;
      std::map<int, size_t> by_applier ABSL_GUARDED_BY(mu);
    };
    auto not_reconciled = std::make_shared<NotReconciled>();
    auto report_not_reconciled = [not_reconciled, &metrics](int applier) {
      return [not_reconciled, &metrics, applier](size_t count) {
        MutexLock lock(&not_reconciled->mu);
        not_reconciled->by_applier[applier] = count;
        size_t total = 0;
        for (const auto& [id, n] : not_reconciled->by_applier) total += n;
        metrics.objects_not_reconciled.Set(static_cast<double>(total));
      };
    };
    applier_options.on_not_reconciled = report_not_reconciled(0);
    // Every applier (its own, and those acting as accounts) tells the change watch what it
    // wrote, so its own writes cost no drift check.
    applier_options.on_written = [written_to](const std::string& collection,
                                              const std::string& name, const std::string& version) {
      if (AccountWatches* watcher = written_to->load(); watcher != nullptr) {
        watcher->Written(collection, name, version);
      }
    };
    applier_options.shared_field_managers.clear();
    for (absl::string_view name :
         absl::StrSplit(absl::GetFlag(FLAGS_take_fields_from), ',', absl::SkipWhitespace())) {
      name = absl::StripAsciiWhitespace(name);
      if (name.size() > 128 || name == "*") {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "--take-fields-from: \"", name,
            "\" is not a field manager's name (at most 128 characters; \"*\" alone would take "
            "every other controller's fields)")));
      }
      applier_options.shared_field_managers.emplace_back(name);
    }
    own_applier = std::make_unique<KubernetesApplier>(kube.get(), mapper.get(), applier_options);
    // A bundle that names a service account is applied by an applier of its own, whose
    // client impersonates the account (made under the ImpersonatingApplier's lock).
    applier = std::make_unique<ImpersonatingApplier>(
        own_applier.get(),
        [&kube, applier_options, &account_clients, report_not_reconciled, mapper = mapper.get()](
            const std::string& user) -> absl::StatusOr<std::unique_ptr<Applier>> {
          absl::StatusOr<std::unique_ptr<KubeClient>> client = kube->Impersonating(user);
          if (!client.ok()) return client.status();
          account_clients.push_back(*std::move(client));
          KubernetesApplier::Options acting = applier_options;
          acting.on_not_reconciled =
              report_not_reconciled(static_cast<int>(account_clients.size()));
          return std::unique_ptr<Applier>(
              new KubernetesApplier(account_clients.back().get(), mapper, acting));
        },
        /*max_accounts=*/256, absl::GetFlag(FLAGS_default_service_account));
    if (const std::string account = absl::GetFlag(FLAGS_default_service_account);
        !account.empty()) {
      GF_LOG(INFO) << "bundles that name no service account are applied as " << account
                   << " (--default-service-account), never as the agent itself";
    }
    target = absl::StrCat("kubernetes at ", config->server, " from ", config->origin);
  } else {
    applier = std::make_unique<DirectoryApplier>(std::string(apply), &fs);
    target = absl::StrCat("directory ", apply);
  }
  // Wakes the agent's loop when a watch names a bundle (set once the agent exists).
  std::atomic<Agent*> wake{nullptr};
  std::unique_ptr<DriftWatcher> drift_watcher;
  std::unique_ptr<AccountWatches> change_watch;  // drift_watcher's, and as accounts
  if (kube != nullptr && absl::GetFlag(FLAGS_watch_drift) &&
      absl::GetFlag(FLAGS_max_drift_watches) > 0) {
    DriftWatcher::Options watch_options;
    watch_options.max_watches = absl::GetFlag(FLAGS_max_drift_watches);
    if (!default_namespace.empty()) watch_options.default_namespace = default_namespace;
    watch_options.on_change = [&wake] {
      if (Agent* agent = wake.load(); agent != nullptr) agent->Wake();
    };
    drift_watcher = std::make_unique<DriftWatcher>(kube.get(), mapper.get(), watch_options);
    // Where the agent may not watch a kind itself, the accounts its bundles are applied as
    // watch it (an agent locked down to impersonation has no list or watch of its own).
    change_watch = std::make_unique<AccountWatches>(
        drift_watcher.get(),
        [kube = kube.get(), mapper = mapper.get(),
         watch_options](const std::string& user) -> absl::StatusOr<std::shared_ptr<DriftWatcher>> {
          absl::StatusOr<std::unique_ptr<KubeClient>> made = kube->Impersonating(user);
          if (!made.ok()) return made.status();
          std::shared_ptr<KubeClient> client = *std::move(made);
          // The watcher goes first, then its client.
          return std::shared_ptr<DriftWatcher>(
              new DriftWatcher(client.get(), mapper, watch_options),
              [client](DriftWatcher* watcher) { delete watcher; });
        },
        watch_options.max_watches, watch_options.forbidden_retry);
    written_to->store(change_watch.get());
  }
  BundleStateStore state(state_dir, &fs);
  Reconciler reconciler(applier.get(), &state, metrics,
                        absl::Seconds(absl::GetFlag(FLAGS_health_interval_seconds)), &RealClock(),
                        absl::GetFlag(FLAGS_hook_timeout));

  // Ready: the state loaded and the target reachable. Enforcing from local state while the
  // control plane is away counts as ready, and says so.
  std::atomic<bool> loaded{false};
  // The loop wakes every second; one pass may apply a large bundle at the API's rate limit.
  Heartbeat heartbeat("the agent's loop");
  HttpServer::Probes probes;
  probes.live = [&heartbeat] { return heartbeat.Check(absl::Minutes(10)); };
  probes.ready = [&loaded, &metrics, kube = kube.get(), out = std::string(apply)] {
    if (!loaded.load()) return Probe{false, "loading the agent's state"};
    if (kube != nullptr) {
      KubeClient::Access access = kube->access();
      if (!access.ok) {
        return Probe{false, absl::StrCat("Kubernetes API: ", access.reason, ": ", access.message)};
      }
    } else if (access(out.c_str(), W_OK) != 0 && errno != ENOENT) {
      return Probe{false, absl::StrCat("cannot write ", out, ": ", strerror(errno))};
    }
    return Probe{true, metrics.connected.Value() > 0
                           ? "connected to the control plane"
                           : "enforcing from local state (the control plane is not connected)"};
  };
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start(absl::GetFlag(FLAGS_http), &registry, probes);
  if (!http.ok()) {
    return Fail(
        absl::Status(http.status().code(), absl::StrCat("--http: ", http.status().message())));
  }

  if (drift_watcher != nullptr) {
    reconciler.SetChangeWatch(change_watch.get(), absl::Seconds(2),
                              absl::Seconds(absl::GetFlag(FLAGS_watched_resync_interval_seconds)));
  }
  if (absl::Status s = reconciler.Load(); !s.ok()) return Fail(s);
  absl::StatusOr<std::string> fleet_id = state.LoadFleetId();
  if (!fleet_id.ok()) return Fail(fleet_id.status());
  loaded = true;

  ControlPlaneClient::Options client_options;
  client_options.target = absl::GetFlag(FLAGS_controlplane);
  client_options.credentials = (*tls)->credentials();
  client_options.renewed_credentials = [tls = *tls]() -> std::shared_ptr<grpc::ChannelCredentials> {
    return tls->Renew() ? tls->credentials() : nullptr;
  };
  client_options.token = [token] { return token->Get(); };
  client_options.token_origin =
      absl::GetFlag(FLAGS_token_file).empty()
          ? std::string("--token")
          : absl::StrCat("--token-file=", absl::GetFlag(FLAGS_token_file));
  client_options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  client_options.bdp_probe = absl::GetFlag(FLAGS_grpc_bdp_probe);
  Agent::Options options;
  options.cluster = cluster;
  options.labels = *labels;
  options.resync_interval = absl::Seconds(absl::GetFlag(FLAGS_resync_interval_seconds));
  options.fleet_id = *fleet_id;
  options.heartbeat = &heartbeat;
  options.save_fleet_id = [&state](const std::string& id) { return state.SaveFleetId(id); };
  // The cluster's Kubernetes version and the APIs it serves, for each hello and sent again
  // when they change (Agent::SendFacts): read now, and again every 10 minutes by the
  // conditions check, or at once when a look each minute at the group versions finds one
  // new or gone (a CRD bundle installed).
  struct KubeVersion {
    Mutex mu;
    std::string version ABSL_GUARDED_BY(mu);
    // Replaced (never changed) when what the server serves changes: the agent compares
    // pointers each second.
    std::shared_ptr<const std::vector<std::string>> api_versions ABSL_GUARDED_BY(mu);
    std::vector<std::string> group_versions ABSL_GUARDED_BY(mu);
    absl::Time read ABSL_GUARDED_BY(mu) = absl::InfinitePast();
    absl::Time looked ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  };
  auto kube_version = std::make_shared<KubeVersion>();
  auto read_version = [client = kube.get(), kube_version] {
    bool look = false;
    {
      MutexLock lock(&kube_version->mu);
      if (absl::Now() - kube_version->read < absl::Minutes(10)) {
        if (absl::Now() - kube_version->looked < absl::Minutes(1)) return;
        look = true;
      }
      kube_version->looked = absl::Now();
    }
    absl::StatusOr<std::vector<std::string>> groups = ReadServedGroupVersions(*client);
    {
      MutexLock lock(&kube_version->mu);
      if (look && (!groups.ok() || *groups == kube_version->group_versions)) return;
      kube_version->read = absl::Now();
      if (groups.ok()) kube_version->group_versions = *std::move(groups);
    }
    absl::StatusOr<std::vector<std::string>> apis = ReadServedApiVersions(*client);
    if (!apis.ok()) {
      GF_LOG(WARNING) << "cannot read the APIs the cluster serves: " << apis.status();
    } else {
      MutexLock lock(&kube_version->mu);
      if (kube_version->api_versions == nullptr || *kube_version->api_versions != *apis) {
        kube_version->api_versions =
            std::make_shared<const std::vector<std::string>>(*std::move(apis));
      }
    }
    absl::StatusOr<std::string> version = ReadKubernetesVersion(*client);
    if (!version.ok()) {
      GF_LOG(WARNING) << "cannot read the cluster's Kubernetes version: " << version.status();
      return;
    }
    MutexLock lock(&kube_version->mu);
    kube_version->version = *version;
  };
  if (kube != nullptr) {
    read_version();
    options.kubernetes_version = [kube_version] {
      MutexLock lock(&kube_version->mu);
      return kube_version->version;
    };
    options.api_versions = [kube_version] {
      MutexLock lock(&kube_version->mu);
      return kube_version->api_versions;
    };
    options.conditions = [client = kube.get(), read_version, watcher = change_watch.get(),
                          &metrics] {
      read_version();
      if (watcher != nullptr) {
        AccountWatches::Counts all = watcher->counts();
        const DriftWatcher::Counts& counts = all.all;
        metrics.drift_watches.Add({{"state", "as_account"}}).Set(all.as_account);
        metrics.drift_watches.Add({{"state", "watching"}}).Set(counts.watching);
        metrics.drift_watches.Add({{"state", "starting"}}).Set(counts.starting);
        metrics.drift_watches.Add({{"state", "forbidden"}}).Set(counts.forbidden);
        metrics.drift_watches.Add({{"state", "unwatched"}}).Set(counts.unwatched);
        metrics.drift_watches.Add({{"state", "by_namespace"}}).Set(counts.by_namespace);
      }
      KubeClient::Access access = client->CheckAccess(absl::Seconds(30));
      v1::ClusterCondition condition;
      condition.set_type("ApiAccess");
      condition.set_ok(access.ok);
      condition.set_reason(access.reason);
      condition.set_message(access.message);
      return std::vector<v1::ClusterCondition>{condition};
    };
  }
  Agent agent(&reconciler, client_options, options, metrics);
  wake = &agent;

  Notification stop;
  std::thread waiter([&] {
    int sig = signals.Wait();
    GF_LOG(INFO) << "shutting down on " << strsignal(sig);
    stop.Notify();
    agent.Interrupt();
  });
  GF_LOG(INFO) << "gitfleet-agent for cluster " << cluster << " applying to " << target
               << ", HTTP on port " << (*http)->port();
  agent.Run(&stop);
  waiter.join();
  // The watches stop before the agent they wake goes.
  reconciler.SetChangeWatch(nullptr);
  written_to->store(nullptr);
  change_watch.reset();
  drift_watcher.reset();
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
      "--apply=kubernetes [--kubeconfig=PATH --context=NAME] --state-dir=DIR --http=ADDR");
  std::vector<char*> args = gitfleet::NormalizeFlagNames(argc, argv);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  return gitfleet::Main(signals);
}
