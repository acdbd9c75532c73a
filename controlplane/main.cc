// gitfleet-controlplane: tracks Git sources, renders bundles and streams them to agents.
// Wiring only: every component lives in its own package.

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/file_system.h"
#include "common/flags.h"
#include "common/grpc_health.h"
#include "common/grpc_reflection.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/metrics/http_server.h"
#include "common/names.h"
#include "common/server_loop.h"
#include "common/shutdown.h"
#include "common/status_macros.h"
#include "common/sync.h"
#include "common/thread_name.h"
#include "common/tls.h"
#include "common/watched_files.h"
#include "controlplane/api/admin_service.h"
#include "controlplane/api/auth.h"
#include "controlplane/api/secret_file.h"
#include "controlplane/api/status_tokens.h"
#include "controlplane/api/webhook.h"
#include "controlplane/distribute/agent_service.h"
#include "controlplane/events/notifier.h"
#include "controlplane/fleet/controller.h"
#include "controlplane/metrics.h"
#include "controlplane/readiness.h"
#include "controlplane/render/age.h"
#include "controlplane/render/chart_fetcher.h"
#include "controlplane/render/fleet_cluster_groups.h"
#include "controlplane/render/pgp.h"
#include "controlplane/render/remote_bases.h"
#include "controlplane/source/git_credentials.h"
#include "controlplane/source/git_repository.h"
#include "controlplane/store/etcd_store.h"
#include "controlplane/store/store.h"
#include "grpcpp/server_builder.h"

ABSL_FLAG(std::string, grpc, "127.0.0.1:7070", "Address for the agent and admin gRPC APIs.");
ABSL_FLAG(std::string, http, "127.0.0.1:7071", "Address for /metrics, /healthz and /readyz.");
ABSL_FLAG(std::string, data_dir, "", "Directory for the store and Git caches (required).");
ABSL_FLAG(std::string, store, "sqlite",
          "sqlite: definitions and state in --data-dir/gitfleet.db; etcd: in the etcd cluster "
          "--etcd-endpoints names (replicated to its quorum: the state outlives this machine).");
ABSL_FLAG(std::string, etcd_endpoints, "",
          "With --store=etcd: the members' client URLs, http://HOST:PORT or https://HOST:PORT, "
          "comma-separated; one that does not answer gives way to the next.");
ABSL_FLAG(std::string, etcd_prefix, "/gitfleet/",
          "With --store=etcd: the key prefix this fleet's state lives under (one fleet each).");
ABSL_FLAG(std::string, etcd_ca, "",
          "With https:// endpoints: the CA that signs etcd's certificates.");
ABSL_FLAG(std::string, etcd_cert, "", "With https:// endpoints: a client certificate (PEM).");
ABSL_FLAG(std::string, etcd_key, "", "With https:// endpoints: the client certificate's key.");
ABSL_FLAG(int, etcd_max_txn_ops, 128,
          "etcd's --max-txn-ops: a larger batch is written as several transactions.");
ABSL_FLAG(bool, etcd_standby, false,
          "With --store=etcd: when another control plane holds the store, wait (without "
          "serving) until it stops or its lease lapses, then take over, instead of exiting.");
ABSL_FLAG(int, etcd_lock_ttl_seconds, 15,
          "With --store=etcd: the lease of the lock that keeps one control plane writing; a "
          "crashed one's lapses after this long (the next waits for it).");
ABSL_FLAG(int64_t, etcd_max_request_bytes, 1536 * 1024,
          "etcd's --max-request-bytes: larger values are kept in chunks.");
ABSL_FLAG(std::string, agent_tokens, "",
          "File of 'cluster token [k=v,...]' lines: clusters known besides those registered "
          "with 'gitfleetctl cluster add'. Read again within seconds of a change: a removed "
          "line retires its cluster, a changed token stops the old one.");
ABSL_FLAG(std::string, cluster_groups, "",
          "File of Rancher Fleet ClusterGroup manifests (what 'kubectl get clustergroups -A -o "
          "yaml' prints): the groups a fleet.yaml's clusterGroup and clusterGroupSelector "
          "select clusters by, each holding the clusters its spec.selector matches. Read again "
          "within seconds of a change; a change that cannot be read keeps what is in force.");
ABSL_FLAG(bool, allow_any_agent, false,
          "UNSAFE: accept agents of clusters nobody registered, without a token (demos and "
          "tests only). Registered clusters still need their token.");
ABSL_FLAG(bool, trust_agent_labels, false,
          "UNSAFE: target clusters by the labels their agents report (--labels) instead of "
          "the labels assigned with 'gitfleetctl cluster add/label'. Any agent can then claim "
          "any environment.");
ABSL_FLAG(std::string, api_tokens, "",
          "File of 'NAME ROLE TOKEN_SHA256' lines (roles: viewer, operator, admin) for admin "
          "API callers. Without it (and --api-client-roles) only local callers are served. "
          "Read again within a second of a change (a token is revoked without a restart); "
          "a change that is refused keeps what is in force.");
ABSL_FLAG(std::string, api_client_roles, "",
          "With --tls-ca: file of 'CN_OR_SAN ROLE' lines giving client certificates a role.");
ABSL_FLAG(std::string, tls_cert, "",
          "Server certificate (PEM). With --tls-key and --tls-ca, read again every 10 s: a "
          "renewed certificate is served to new connections without a restart, once its key "
          "matches it.");
ABSL_FLAG(std::string, tls_key, "", "Server private key (PEM).");
ABSL_FLAG(std::string, tls_ca, "", "CA that signs agent certificates: requires mTLS.");
ABSL_FLAG(int, poll_interval_seconds, 30, "Default source poll interval.");
ABSL_FLAG(int, resync_interval_seconds, 600,
          "Reconcile every bundle again this often (within 10% either way) whatever "
          "happened, rendering again those that read kustomize remote bases or files; 0: "
          "only events reconcile.");
ABSL_FLAG(std::string, credentials_dir, "",
          "Folder of Git credentials, one folder each (NAME/username + NAME/password, or "
          "NAME/ssh-privatekey + NAME/known_hosts; optional NAME/ca.crt), laid out like a "
          "mounted Kubernetes Secret. Sources name one with --credentials.");
ABSL_FLAG(std::vector<std::string>, git_credentials, {},
          "Credentials by URL prefix, as Argo CD's credential templates: URL_PREFIX=NAME pairs "
          "(comma-separated), NAME a folder in --credentials-dir; e.g. "
          "https://github.com/acme/=acme,ssh://git.example.com/=deploy. A source that names no "
          "--credentials, and a submodule, get the credential of the longest prefix its URL is "
          "under (a submodule on the source's own host otherwise gets the source's; on another "
          "host, nothing). https:// or ssh:// only (plain http only on this machine).");
ABSL_FLAG(bool, allow_local_sources, false,
          "Allow file:// and path sources, which read the control plane's own disk (tests and "
          "demos).");
ABSL_FLAG(int, fetch_timeout_seconds, 60,
          "One Git fetch, connect to last byte; a server that takes longer fails that source.");
ABSL_FLAG(int64_t, max_fetch_bytes, int64_t{1} << 30, "Most bytes one Git fetch may receive.");
ABSL_FLAG(int64_t, max_blob_bytes, 16 << 20, "Largest file a render may read from Git.");
ABSL_FLAG(int64_t, max_read_bytes, int64_t{256} << 20,
          "Most bytes of files one render may read from Git at one commit.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC message sent (bundle updates).");
ABSL_FLAG(int, max_request_bytes, 1 << 20,
          "Largest gRPC message received on an admin call; agents have "
          "--agent-max-message-bytes.");
ABSL_FLAG(int, max_objects, 10000, "Most objects one bundle may render.");
ABSL_FLAG(int, max_sources, 1000, "Most sources defined at once (each is polled).");
ABSL_FLAG(int, max_bundles, 10000, "Most bundles defined at once.");
ABSL_FLAG(int64_t, max_bundle_bytes, gitfleet::kDefaultMaxBundleBytes,
          "Most YAML bytes one bundle may render.");
ABSL_FLAG(std::string, kustomize, "",
          "kustomize or kubectl binary for kustomize bundles (default: found on the system).");
ABSL_FLAG(std::string, ssh_client, "auto",
          "SSH client for ssh:// sources: auto (OpenSSH's ssh for RSA keys, which Debian 12's "
          "libssh2 signs with SHA-1 only, and for servers libssh2 shares no algorithm with; "
          "libssh2 for the rest), openssh (every key) or libssh2.");
ABSL_FLAG(std::string, ssh, "", "OpenSSH's ssh binary (default: found on the system).");
ABSL_FLAG(std::string, helm, "",
          "helm binary for helm bundles and kustomize's helmCharts (default: found on the "
          "system).");
ABSL_FLAG(std::vector<std::string>, chart_repositories, {},
          "URL prefixes (comma-separated) the control plane fetches helm charts from, for "
          "fleet.yaml's helm.repo and chart URLs and kustomize's helmCharts: "
          "https://charts.example.com/, oci://ghcr.io/org/ for an OCI registry, or * for any "
          "http(s) or oci:// URL. Default: none (such a chart fails its render, naming this flag). "
          "Renders themselves have no network; this is the control plane's own.");
ABSL_FLAG(std::vector<std::string>, chart_repository_names, {},
          "Names charts' dependencies give repositories (repository: \"@stable\" or "
          "\"alias:stable\" in Chart.yaml, which helm resolves from its own repository list): "
          "NAME=URL pairs (comma-separated), e.g. stable=https://charts.example.com/stable. "
          "The URL must still be under --chart-repositories.");
ABSL_FLAG(std::vector<std::string>, kustomize_remote_bases, {},
          "URL prefixes (comma-separated) of Git repositories the control plane fetches "
          "kustomize's remote bases from (a resources entry such as "
          "https://github.com/org/repo//deploy?ref=v1): https://github.com/org/, "
          "ssh://git@git.example.com/, or * for any URL a source could name. Fetched with the "
          "Git limits and --git-credentials sources use, again at most every 5 minutes for a "
          "branch or tag. Default: none (such a build fails, naming this flag).");
ABSL_FLAG(std::vector<std::string>, chart_credentials, {},
          "Private chart repositories and registries: URL_PREFIX=NAME pairs (comma-separated), "
          "NAME a folder in --credentials-dir holding username and password (a token as the "
          "password) and/or ca.crt; e.g. https://charts.example.com/team/=charts or "
          "oci://ghcr.io/org/=ghcr. Each prefix must be under --chart-repositories, https:// or "
          "oci:// (never plain http but on this machine). A credential goes only to URLs under "
          "its prefix (the longest wins) and to the token service its registry names; read at "
          "every fetch, so a rotated Secret needs no restart.");
ABSL_FLAG(int, render_timeout_seconds, 60,
          "Time limit for one render (plain, kustomize, helm, jsonnet); past it the render is "
          "killed or stopped.");
ABSL_FLAG(int, render_workers, 2,
          "Bundles reconciled (rendered) at once. Each failed reconcile is retried with "
          "exponential backoff, from 1 s up to 5 min.");
ABSL_FLAG(std::string, render_network, "deny",
          "deny: kustomize and helm renders run in a network namespace of their own, and fail "
          "where the machine cannot make one; allow: run them with the host's network there.");
ABSL_FLAG(std::string, fleet_service_account_namespace, "gitfleet-system",
          "Where the service account a Rancher Fleet repository's fleet.yaml names "
          "(serviceAccount) is: the namespace the agents run in, as Fleet looks it up in its "
          "agent's. A bundle defined since applies as NAMESPACE/NAME when it names no account "
          "of its own. Empty: fleet.yaml's serviceAccount is not used (noted).");
ABSL_FLAG(std::string, kustomize_load_restrictor, "LoadRestrictionsRootOnly",
          "LoadRestrictionsRootOnly: a kustomization reads only files in or below its folder "
          "(kustomize's default); LoadRestrictionsNone: anywhere, as Flux builds. References "
          "in kustomization files that leave the repository are refused either way, but with "
          "None a transformer's own config may name any file the control plane can read: for "
          "repositories whose writers you trust as you trust this host's operators.");
ABSL_FLAG(int64_t, render_memory_bytes, int64_t{2} << 30,
          "Data segment limit of a render child (kustomize, helm, isolated jsonnet); 0: none.");
ABSL_FLAG(bool, jsonnet_in_process, false,
          "Evaluate jsonnet in-process: faster, but a program that never ends cannot be "
          "stopped. For trusted repositories only.");
ABSL_FLAG(int, agent_max_message_bytes, 1 << 20, "Largest message an agent may send.");
ABSL_FLAG(double, agent_messages_per_second, 200,
          "Messages per second one agent stream may send (bursts of 10x are allowed).");
ABSL_FLAG(int, agent_connect_burst, 10,
          "Connections one cluster may open in quick succession; then one per second.");
ABSL_FLAG(int, max_concurrent_handshakes, 256,
          "Agent handshakes (hello, token check, welcome) served at once; further connections "
          "wait their turn, unread, so a fleet reconnecting at once is admitted at a bounded "
          "rate.");
ABSL_FLAG(int, max_waiting_handshakes, 100000,
          "Connections that may wait for a handshake; past it new ones are refused at once.");
ABSL_FLAG(int, hello_timeout_seconds, 10,
          "Time an agent has to send its hello once its handshake starts.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(std::string, webhook_secret_file, "",
          "File of the shared secrets of Git push webhooks (POST /hooks/git on --http, or on "
          "--webhook-http when set), one "
          "per line, at least 16 characters each, at most 8: a push verified by any is "
          "accepted, so a secret is rotated by adding the new line, updating the senders, then "
          "removing the old one. Read again within a second of a change (no restart); a change "
          "that is refused keeps the secrets in force. Without it the endpoint is off.");
ABSL_FLAG(std::string, notify_file, "",
          "File of HTTP endpoints the fleet's events are POSTed to, one per line: URL "
          "[json|slack|teams] [TYPE,...] [bundles=NAME|GLOB,...] [clusters=SELECTOR] (default "
          "json, and the events about "
          "sources and bundles: failures, rollouts, an operator's acts; none per cluster). json "
          "sends the event, signed with --notify-secret-file; slack sends {\"text\": ...}; teams "
          "an Adaptive Card. A line REPOSITORY_URL FORMAT token-file=PATH|credential=NAME "
          "[details=URL] [api=URL] "
          "(github, gitlab, gitea, forgejo, bitbucket, bitbucket-server, azure-devops) sets "
          "commit statuses there: gitfleet/BUNDLE, pending, success once every cluster runs the "
          "commit Healthy, failure. Read again within a second of a change (sinks that changed "
          "restart; an edit it cannot read keeps those in force); keep it as private as the "
          "URLs (Slack's hold "
          "their secret). Default: none.");
ABSL_FLAG(std::string, notify_secret_file, "",
          "File whose first line signs the json notifications (X-Gitfleet-Signature-256: "
          "sha256=HMAC-SHA256, and Standard Webhooks' webhook-signature, whose key is the "
          "bytes a whsec_BASE64 line encodes), at least 16 characters; read again within a "
          "second of a change. Default: unsigned.");
ABSL_FLAG(std::string, webhook_http, "",
          "Address (host:port) that serves POST /hooks/git alone, apart from --http: Git "
          "servers on the internet then reach the webhooks and nothing else, and no client of "
          "that port can hold the workers that answer the kubelet's probes and Prometheus. "
          "Default: none (webhooks on --http).");
ABSL_FLAG(std::string, sops_age_key_file, "",
          "age identities (age-keygen's AGE-SECRET-KEY-1... lines) that bundles with "
          "--decrypt=sops decrypt their repository's SOPS-encrypted files with. Read "
          "again within a second of a change (no restart); a change that is refused keeps the "
          "identities in force. Keep it readable by the control plane only.");
ABSL_FLAG(std::string, sops_pgp_key_file, "",
          "Armored OpenPGP secret keys (gpg --export-secret-keys --armor; without a "
          "passphrase) that bundles with --decrypt=sops decrypt their repository's "
          "SOPS-encrypted files with, through gpg (Debian's gnupg), in a keyring of the control "
          "plane's own. Read again within a second of a change. Keep it readable by the control "
          "plane only.");
ABSL_FLAG(int, reconnect_spread_seconds, 8,
          "On shutdown, agents are told to redial once each at a random point of this window, "
          "so a restart is not met by the whole fleet at once.");
ABSL_FLAG(int, shutdown_delay_seconds, 0,
          "After SIGTERM, keep serving this long while /readyz and the gRPC health service say "
          "not ready, so load balancers stop sending before the server stops.");

namespace gitfleet {
namespace {

absl::Status Prefixed(absl::string_view flag, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(flag, ": ", status.message()));
}

int Fail(const absl::Status& status) {
  GF_LOG(ERROR) << status.message();
  return 2;
}

// Set when the etcd store's lock was lost: the control plane stops (another may hold the
// store now), and exits non-zero so that its supervisor starts it again.
std::atomic<bool> store_lock_lost{false};

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& data_dir,
                                                 ShutdownSignals& signals) {
  const std::string kind = absl::GetFlag(FLAGS_store);
  if (kind == "sqlite") {
    absl::StatusOr<std::unique_ptr<SqliteStore>> sqlite =
        SqliteStore::Open(absl::StrCat(data_dir, "/gitfleet.db"));
    if (!sqlite.ok()) return sqlite.status();
    return std::unique_ptr<Store>(*std::move(sqlite));
  }
  if (kind != "etcd") {
    return absl::InvalidArgumentError(
        absl::StrCat("--store=", kind, ": want sqlite (the default) or etcd"));
  }
  EtcdOptions options;
  GF_ASSIGN_OR_RETURN(options.endpoints, ParseEtcdEndpoints(absl::GetFlag(FLAGS_etcd_endpoints)));
  options.prefix = absl::GetFlag(FLAGS_etcd_prefix);
  options.ca_file = absl::GetFlag(FLAGS_etcd_ca);
  options.cert_file = absl::GetFlag(FLAGS_etcd_cert);
  options.key_file = absl::GetFlag(FLAGS_etcd_key);
  options.max_txn_ops = absl::GetFlag(FLAGS_etcd_max_txn_ops);
  if (absl::GetFlag(FLAGS_etcd_lock_ttl_seconds) < 2 ||
      absl::GetFlag(FLAGS_etcd_lock_ttl_seconds) > 3600) {
    return absl::InvalidArgumentError("--etcd-lock-ttl-seconds must be 2-3600");
  }
  options.lock_ttl = absl::Seconds(absl::GetFlag(FLAGS_etcd_lock_ttl_seconds));
  options.standby = absl::GetFlag(FLAGS_etcd_standby);
  options.stop_waiting = [&signals] { return signals.Poll() != 0; };
  if (absl::GetFlag(FLAGS_etcd_max_request_bytes) < 0) {
    return absl::InvalidArgumentError("--etcd-max-request-bytes must not be negative");
  }
  options.max_request_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_etcd_max_request_bytes));
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  options.holder = absl::StrCat(host, " pid ", getpid());
  options.on_lock_lost = [](const absl::Status& why) {
    GF_LOG(ERROR) << "stopping: the etcd store is no longer this control plane's (" << why << ")";
    store_lock_lost = true;
    kill(getpid(), SIGTERM);  // the usual shutdown, then a non-zero exit
  };
  // A standby answers on --http while it waits: alive (a liveness probe leaves it be), not
  // ready (no traffic comes its way), and gitfleet_controlplane_standby 1 for Prometheus.
  // The serving endpoint takes the address over once the store is this one's.
  struct Standby {
    Mutex mu;
    std::string holder ABSL_GUARDED_BY(mu);
    metrics::Registry registry;
    std::unique_ptr<HttpServer> http ABSL_GUARDED_BY(mu);
  };
  auto standby = std::make_shared<Standby>();
  if (options.standby) {
    metrics::BuildGauge()
        .Name("gitfleet_controlplane_standby")
        .Help("1 while this control plane stands by for the etcd store another one holds.")
        .Register(standby->registry)
        .Add({})
        .Set(1);
    options.on_standing_by = [standby](const std::string& holder) {
      MutexLock lock(&standby->mu);
      standby->holder = holder;
      if (standby->http != nullptr) return;
      HttpServer::Probes probes;
      std::weak_ptr<Standby> weak = standby;
      probes.ready = [weak] {
        std::shared_ptr<Standby> self = weak.lock();
        if (self == nullptr) return Probe{false, "taking the store over"};
        MutexLock lock(&self->mu);
        return Probe{false, absl::StrCat("standing by: the store is held by another control "
                                         "plane (",
                                         self->holder.empty() ? "unnamed" : self->holder,
                                         "); this one takes it over when that one stops")};
      };
      absl::StatusOr<std::unique_ptr<HttpServer>> http =
          HttpServer::Start(absl::GetFlag(FLAGS_http), &standby->registry, probes);
      if (!http.ok()) {
        GF_LOG(WARNING) << "standing by without an HTTP endpoint: " << http.status().message();
        return;
      }
      standby->http = *std::move(http);
      GF_LOG(INFO) << "standing by: /healthz, /readyz (not ready) and /metrics on port "
                   << standby->http->port();
    };
  }
  absl::StatusOr<std::unique_ptr<EtcdStore>> opened = EtcdStore::Open(std::move(options));
  std::unique_ptr<HttpServer> stopped;
  {
    MutexLock lock(&standby->mu);
    stopped = std::move(standby->http);
  }
  stopped.reset();  // the address is the serving endpoint's now (not under the lock a probe takes)
  GF_ASSIGN_OR_RETURN(std::unique_ptr<EtcdStore> etcd, std::move(opened));
  GF_LOG(INFO) << "store: etcd at " << absl::GetFlag(FLAGS_etcd_endpoints) << " under "
               << absl::GetFlag(FLAGS_etcd_prefix);
  return std::unique_ptr<Store>(std::move(etcd));
}

int Main(ShutdownSignals& signals) {
  if (absl::Status s = SetLogLevelByName(absl::GetFlag(FLAGS_log_level)); !s.ok()) return Fail(s);
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) return Fail(absl::InvalidArgumentError("--data-dir is required"));
  // Made first (the owner's alone, as the store it may hold): keyrings and TLS copies go
  // there while the flags are read, before the store is opened.
  for (size_t i = 1; i <= data_dir.size(); ++i) {
    if (i == data_dir.size() || data_dir[i] == '/') mkdir(data_dir.substr(0, i).c_str(), 0700);
  }
  if (struct stat info; stat(data_dir.c_str(), &info) != 0) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--data-dir=", data_dir, ": cannot make it: ", strerror(errno))));
  } else if (!S_ISDIR(info.st_mode)) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("--data-dir=", data_dir, ": not a folder")));
  }
  // Every agent holds one connection: allow as many open files as the hard limit does.
  rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < 20000) {
    GF_LOG(WARNING) << "open files are limited to " << files.rlim_cur
                    << ": at most about that many agents can connect (raise ulimit -n)";
  }
  if (absl::GetFlag(FLAGS_max_bundle_bytes) + (1 << 16) > absl::GetFlag(FLAGS_max_message_bytes)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--max-bundle-bytes (", absl::GetFlag(FLAGS_max_bundle_bytes),
        ") must be smaller than --max-message-bytes (", absl::GetFlag(FLAGS_max_message_bytes),
        ") by at least 64 KiB, or full bundle updates could never be sent")));
  }
  if (absl::GetFlag(FLAGS_poll_interval_seconds) < 1) {
    return Fail(absl::InvalidArgumentError("--poll-interval-seconds must be at least 1"));
  }
  if (absl::GetFlag(FLAGS_resync_interval_seconds) < 0 ||
      (absl::GetFlag(FLAGS_resync_interval_seconds) > 0 &&
       absl::GetFlag(FLAGS_resync_interval_seconds) < 10)) {
    return Fail(
        absl::InvalidArgumentError("--resync-interval-seconds must be 0 (off) or at least 10"));
  }

  // libgit2 reads $HOME/.gitconfig and $HOME/.ssh/known_hosts; neither is the control
  // plane's business (host keys come from source credentials). Set before any thread runs.
  setenv("HOME", absl::StrCat(data_dir, "/git/home").c_str(), 1);

  absl::StatusOr<std::unique_ptr<ApiAuthFiles>> api_auth =
      ApiAuthFiles::Open(absl::GetFlag(FLAGS_api_tokens), absl::GetFlag(FLAGS_api_client_roles));
  if (!api_auth.ok()) return Fail(api_auth.status());
  if (!absl::GetFlag(FLAGS_api_client_roles).empty() && absl::GetFlag(FLAGS_tls_ca).empty()) {
    return Fail(absl::InvalidArgumentError(
        "--api-client-roles needs --tls-ca: without mTLS no client presents a certificate"));
  }
  if ((*api_auth)->Current()->local_only()) {
    GF_LOG(WARNING) << "no --api-tokens: the admin API answers local callers only (loopback "
                       "or a Unix socket), each as admin";
  } else if (absl::GetFlag(FLAGS_tls_cert).empty()) {
    GF_LOG(WARNING) << "--api-tokens without --tls-cert: API tokens travel in clear";
  }
  // With TLS, the files are read again while the control plane runs (a renewed certificate
  // is served without a restart); declared before the server, so it outlives it.
  const TlsFiles tls_files{absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                           absl::GetFlag(FLAGS_tls_ca)};
  std::unique_ptr<ReloadingServerTls> reloading_tls;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      grpc::InsecureServerCredentials();
  if (!tls_files.empty()) {
    absl::StatusOr<std::unique_ptr<ReloadingServerTls>> tls =
        ReloadingServerTls::Start(tls_files, absl::StrCat(data_dir, "/tls"));
    if (!tls.ok()) return Fail(tls.status());
    reloading_tls = *std::move(tls);
    credentials = reloading_tls->credentials();
  }

  // Every flag is read and checked before the store is opened and any port bound: a
  // mistake is told at once (not as a port another process holds, nor when a standby
  // takes the store over, hours later, when it is needed).
  metrics::Registry registry;
  ControlPlaneMetrics metrics(registry);
  if (absl::GetFlag(FLAGS_fetch_timeout_seconds) < 1) {
    return Fail(absl::InvalidArgumentError("--fetch-timeout-seconds must be at least 1"));
  }
  GitLimits git_limits;
  git_limits.fetch_timeout = absl::Seconds(absl::GetFlag(FLAGS_fetch_timeout_seconds));
  git_limits.max_fetch_bytes = absl::GetFlag(FLAGS_max_fetch_bytes);
  git_limits.max_blob_bytes = absl::GetFlag(FLAGS_max_blob_bytes);
  git_limits.max_read_bytes = absl::GetFlag(FLAGS_max_read_bytes);
  GitAccess git_access{absl::GetFlag(FLAGS_credentials_dir),
                       absl::GetFlag(FLAGS_allow_local_sources)};
  {
    absl::StatusOr<SshClient> ssh_client = ParseSshClient(absl::GetFlag(FLAGS_ssh_client));
    if (!ssh_client.ok()) return Fail(ssh_client.status());
    git_access.ssh.client = *ssh_client;
    git_access.ssh.program = absl::GetFlag(FLAGS_ssh);
    if (*ssh_client == SshClient::kOpenSsh || !git_access.ssh.program.empty()) {
      if (absl::StatusOr<std::string> found = FindSshProgram(git_access.ssh); !found.ok()) {
        return Fail(absl::InvalidArgumentError(found.status().message()));
      }
    }
  }
  {
    absl::StatusOr<CredentialPrefixes> prefixes =
        ParseCredentialPrefixes(absl::GetFlag(FLAGS_git_credentials));
    if (!prefixes.ok()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--git-credentials: ", prefixes.status().message())));
    }
    // Named credentials exist and can be read at start (and are read again at every fetch).
    for (const auto& [prefix, name] : *prefixes) {
      absl::Status s = git_access.credentials_dir.empty()
                           ? absl::FailedPreconditionError(
                                 "it names credentials, but there is no --credentials-dir")
                           : LoadGitCredential(git_access.credentials_dir, name).status();
      if (!s.ok()) {
        return Fail(absl::InvalidArgumentError(absl::StrCat("--git-credentials: ", s.message())));
      }
    }
    git_access.credential_prefixes = *std::move(prefixes);
  }
  // Where the fleet's events are POSTed (started once the bus exists).
  Notifier::Options notify_options;
  if (!absl::GetFlag(FLAGS_notify_file).empty()) {
    // The sinks and their tokens, read now (a line it cannot read, or a missing token file
    // or credential, stops the start) and again within a second of a change, when the
    // sinks that changed get new workers (a change that is refused keeps the sinks in
    // force, logged once).
    struct NotifyConfig {
      std::vector<NotifySink> sinks;
      std::shared_ptr<StatusTokens> tokens;
    };
    WatchedFilesOptions watch_options;
    watch_options.max_bytes = 64 << 10;
    absl::StatusOr<std::unique_ptr<WatchedFiles<NotifyConfig>>> watched =
        WatchedFiles<NotifyConfig>::Open(
            {{"--notify-file", absl::GetFlag(FLAGS_notify_file)}},
            [credentials_dir = git_access.credentials_dir](
                const std::vector<std::string>& contents) -> absl::StatusOr<NotifyConfig> {
              absl::StatusOr<std::vector<NotifySink>> sinks = ParseNotifySinks(contents[0]);
              if (!sinks.ok()) return Prefixed("--notify-file", sinks.status());
              absl::StatusOr<std::unique_ptr<StatusTokens>> tokens =
                  StatusTokens::Open(*sinks, credentials_dir, absl::Seconds(30));
              if (!tokens.ok()) return tokens.status();
              return NotifyConfig{*std::move(sinks), *std::move(tokens)};
            },
            watch_options);
    if (!watched.ok()) return Fail(watched.status());
    std::shared_ptr<WatchedFiles<NotifyConfig>> config = *std::move(watched);
    notify_options.sinks = config->Current()->sinks;
    notify_options.token = [config](const NotifySink& sink) {
      return config->Current()->tokens->Token(sink);
    };
    notify_options.reload = [config]() -> std::shared_ptr<const std::vector<NotifySink>> {
      std::shared_ptr<const NotifyConfig> now = config->Current();
      return std::shared_ptr<const std::vector<NotifySink>>(now, &now->sinks);
    };
  }
  if (!absl::GetFlag(FLAGS_notify_secret_file).empty()) {
    if (absl::GetFlag(FLAGS_notify_file).empty()) {
      return Fail(absl::InvalidArgumentError(
          "--notify-secret-file: there is no --notify-file to sign for"));
    }
    SecretFile::Options secret_options;
    secret_options.what = "--notify-secret-file";
    absl::StatusOr<std::unique_ptr<SecretFile>> secrets =
        SecretFile::Open(absl::GetFlag(FLAGS_notify_secret_file), secret_options);
    if (!secrets.ok()) return Fail(secrets.status());
    notify_options.secret = [file = std::shared_ptr<SecretFile>(std::move(*secrets))] {
      return file->Current()->front();
    };
  }
  // Push webhooks (and commit statuses) reach the controller once it exists; until then
  // (and after it is gone) they are answered 503 (asked again).
  struct WebhookTarget {
    Mutex mu;
    Controller* controller ABSL_GUARDED_BY(mu) = nullptr;
  };
  auto webhook_target = std::make_shared<WebhookTarget>();
  std::map<std::string, HttpServer::PostRoute> post_routes;
  if (!absl::GetFlag(FLAGS_webhook_secret_file).empty()) {
    SecretFile::Options secret_options;
    secret_options.what = "--webhook-secret-file";
    absl::StatusOr<std::unique_ptr<SecretFile>> secrets =
        SecretFile::Open(absl::GetFlag(FLAGS_webhook_secret_file), secret_options);
    if (!secrets.ok()) return Fail(secrets.status());
    WebhookReceiver::Options webhook_options;
    webhook_options.secrets = [file = std::shared_ptr<SecretFile>(std::move(*secrets))] {
      return file->Current();
    };
    webhook_options.secrets_used = &metrics.webhook_secrets_used;
    webhook_options.readers = [webhook_target](const std::set<std::string>& pushed) {
      MutexLock lock(&webhook_target->mu);
      if (webhook_target->controller == nullptr) return std::vector<std::string>();
      return webhook_target->controller->RenderReadersSoon(pushed);
    };
    auto receiver = std::make_shared<WebhookReceiver>(
        webhook_options,
        [webhook_target] {
          std::vector<std::pair<std::string, std::string>> out;
          MutexLock lock(&webhook_target->mu);
          if (webhook_target->controller == nullptr) return out;
          for (const v1::SourceInfo& info : webhook_target->controller->ListSources()) {
            out.emplace_back(info.source().name(), info.source().url());
          }
          return out;
        },
        [webhook_target](const std::string& name) {
          MutexLock lock(&webhook_target->mu);
          if (webhook_target->controller == nullptr) {
            return absl::UnavailableError("the control plane is not serving");
          }
          return webhook_target->controller->FetchSourceSoon(name);
        },
        metrics.webhooks);
    post_routes[kWebhookPath] = {
        webhook_options.max_body_bytes,
        [receiver](const HttpRequest& request) { return receiver->Handle(request); }};
    // /hooks/git/TOKEN, for senders that can be given a URL alone (Docker Hub, Quay).
    post_routes[kWebhookPath].one_more_segment = true;
  } else {
    // Said to the Git server's delivery log, where whoever set the hook up will look.
    post_routes[kWebhookPath] = {0, [](const HttpRequest&) {
                                   return HttpResponse{
                                       404, "text/plain; charset=utf-8",
                                       "webhooks are off: this control plane was started "
                                       "without --webhook-secret-file\n"};
                                 }};
    post_routes[kWebhookPath].one_more_segment = true;
  }
  // Fleet's cluster groups, read now: a bad file stops the control plane at once, not when
  // (as a standby) it takes the store over.
  using Groups = std::vector<ClusterGroup>;
  std::shared_ptr<WatchedFiles<Groups>> groups_file;
  if (const std::string path = absl::GetFlag(FLAGS_cluster_groups); !path.empty()) {
    absl::StatusOr<std::unique_ptr<WatchedFiles<Groups>>> opened = WatchedFiles<Groups>::Open(
        {{"--cluster-groups", path}},
        [](const std::vector<std::string>& contents) {
          return ParseFleetClusterGroups(contents[0], "--cluster-groups");
        },
        {});
    if (!opened.ok()) return Fail(opened.status());
    groups_file = *std::move(opened);
    std::vector<std::string> names;
    for (const ClusterGroup& group : *groups_file->Current()) names.push_back(group.name);
    GF_LOG(INFO) << "--cluster-groups: " << groups_file->Current()->size() << " cluster groups ("
                 << ListNames(names, 5) << ")";
  }
  ControllerOptions options;
  options.cluster_groups = !absl::GetFlag(FLAGS_cluster_groups).empty();
  if (const std::string key_file = absl::GetFlag(FLAGS_sops_age_key_file); !key_file.empty()) {
    WatchedFilesOptions watched;
    watched.max_bytes = 64 << 10;
    absl::StatusOr<std::unique_ptr<WatchedFiles<AgeIdentities>>> identities =
        WatchedFiles<AgeIdentities>::Open(
            {{"--sops-age-key-file", key_file}},
            [](const std::vector<std::string>& contents) {
              return AgeIdentities::Parse(contents[0], "--sops-age-key-file");
            },
            watched);
    if (!identities.ok()) return Fail(identities.status());
    GF_LOG(INFO) << "SOPS: bundles with --decrypt=sops decrypt with "
                 << (*identities)->Current()->size() << " age identities ("
                 << ListNames((*identities)->Current()->Recipients(), 3) << ")";
    options.sops_identities = [file = std::shared_ptr<WatchedFiles<AgeIdentities>>(
                                   std::move(*identities))] { return file->Current(); };
  }
  // PGP keys are checked now (a standby's mistake stops it at once), in a keyring of their
  // own in /tmp that goes with the check; they are imported into the data directory's once
  // the store is this control plane's (another may use that directory until then).
  if (const std::string key_file = absl::GetFlag(FLAGS_sops_pgp_key_file); !key_file.empty()) {
    absl::StatusOr<std::string> text = ReadWatchedFile("--sops-pgp-key-file", key_file, 1 << 20);
    if (!text.ok()) return Fail(text.status());
    if (absl::Status checked =
            PgpKeys::Import(*text, {"/usr/bin/gpg", "/tmp"}, "--sops-pgp-key-file").status();
        !checked.ok()) {
      return Fail(checked);
    }
  }
  // A team's bundles follow its scope in --api-tokens and --api-client-roles as it changes.
  // (None when only local callers are served: no line names anyone, and nobody's bundles
  // are stopped for that.)
  options.caller_scopes = [auth = api_auth->get()]() -> std::shared_ptr<const CallerScopes> {
    std::shared_ptr<const ApiAuth> current = auth->Current();
    if (current->local_only()) return nullptr;
    return current->bundle_scopes();
  };
  options.default_poll_interval = absl::Seconds(absl::GetFlag(FLAGS_poll_interval_seconds));
  options.resync_interval = absl::Seconds(absl::GetFlag(FLAGS_resync_interval_seconds));
  options.allow_local_sources = git_access.allow_local;
  options.credentials_dir = git_access.credentials_dir;
  options.credential_prefixes = git_access.credential_prefixes;
  options.engines.limits.max_objects = absl::GetFlag(FLAGS_max_objects);
  if (absl::GetFlag(FLAGS_max_sources) < 1 || absl::GetFlag(FLAGS_max_bundles) < 1) {
    return Fail(absl::InvalidArgumentError("--max-sources and --max-bundles must be at least 1"));
  }
  options.max_sources = static_cast<size_t>(absl::GetFlag(FLAGS_max_sources));
  options.max_bundles = static_cast<size_t>(absl::GetFlag(FLAGS_max_bundles));
  options.engines.limits.max_bytes = absl::GetFlag(FLAGS_max_bundle_bytes);
  options.engines.limits.max_memory_bytes = absl::GetFlag(FLAGS_render_memory_bytes);
  const std::string render_network = absl::GetFlag(FLAGS_render_network);
  if (render_network != "deny" && render_network != "allow") {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--render-network=", render_network, ": want deny or allow")));
  }
  options.engines.allow_network = render_network == "allow";
  options.fleet_service_account_namespace = absl::GetFlag(FLAGS_fleet_service_account_namespace);
  if (!options.fleet_service_account_namespace.empty()) {
    if (absl::Status s = ValidateName("--fleet-service-account-namespace",
                                      options.fleet_service_account_namespace);
        !s.ok()) {
      return Fail(s);
    }
  }
  const std::string load_restrictor = absl::GetFlag(FLAGS_kustomize_load_restrictor);
  if (load_restrictor != "LoadRestrictionsRootOnly" && load_restrictor != "LoadRestrictionsNone") {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--kustomize-load-restrictor=", load_restrictor,
                     ": want LoadRestrictionsRootOnly or LoadRestrictionsNone")));
  }
  options.engines.kustomize_load_restrictions_none = load_restrictor == "LoadRestrictionsNone";
  if (options.engines.kustomize_load_restrictions_none) {
    GF_LOG(WARNING) << "--kustomize-load-restrictor=LoadRestrictionsNone: kustomizations may read "
                       "files outside their folders; a transformer's config may name any file "
                       "this process can read";
  }
  options.engines.binaries["kustomize"] = absl::GetFlag(FLAGS_kustomize);
  options.engines.scratch_dir = absl::StrCat(data_dir, "/render");
  options.engines.timeout = absl::Seconds(absl::GetFlag(FLAGS_render_timeout_seconds));
  options.engines.isolate_jsonnet = !absl::GetFlag(FLAGS_jsonnet_in_process);
  if (absl::GetFlag(FLAGS_render_workers) < 1 || absl::GetFlag(FLAGS_render_workers) > 64) {
    return Fail(absl::InvalidArgumentError("--render-workers must be between 1 and 64"));
  }
  options.workers = absl::GetFlag(FLAGS_render_workers);
  options.engines.binaries["helm"] = absl::GetFlag(FLAGS_helm);
  {
    ChartFetchOptions charts;
    charts.allowed = absl::GetFlag(FLAGS_chart_repositories);
    if (absl::Status valid = CheckChartPrefixes(charts.allowed); !valid.ok()) {
      return Fail(
          absl::InvalidArgumentError(absl::StrCat("--chart-repositories: ", valid.message())));
    }
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> credentials =
        ParseChartCredentials(absl::GetFlag(FLAGS_chart_credentials), charts.allowed);
    if (!credentials.ok()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--chart-credentials: ", credentials.status().message())));
    }
    charts.credentials = *std::move(credentials);
    absl::StatusOr<std::map<std::string, std::string>> names =
        ParseChartRepositoryNames(absl::GetFlag(FLAGS_chart_repository_names));
    if (!names.ok()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--chart-repository-names: ", names.status().message())));
    }
    charts.repository_names = *std::move(names);
    charts.credentials_dir = git_access.credentials_dir;
    // Named credentials exist and can be read at start (and are read again at every fetch).
    for (const auto& [prefix, name] : charts.credentials) {
      if (absl::Status s = LoadChartLogin(charts.credentials_dir, name).status(); !s.ok()) {
        return Fail(absl::InvalidArgumentError(absl::StrCat("--chart-credentials: ", s.message())));
      }
    }
    charts.timeout = options.engines.timeout;
    // A chart at a range is looked up again when its bundles render again at each resync
    // (BundleRecord.reads_remote): an index kept no longer than half of that.
    if (options.resync_interval > absl::ZeroDuration()) {
      charts.index_ttl = std::min(charts.index_ttl, options.resync_interval / 2);
    }
    if (absl::Status valid = CheckRemoteBasePrefixes(absl::GetFlag(FLAGS_kustomize_remote_bases));
        !valid.ok()) {
      return Fail(
          absl::InvalidArgumentError(absl::StrCat("--kustomize-remote-bases: ", valid.message())));
    }
    options.engines.chart_fetcher = std::make_shared<ChartFetcher>(std::move(charts));
  }
  AgentLimits limits;
  limits.max_message_bytes = absl::GetFlag(FLAGS_agent_max_message_bytes);
  limits.messages_per_second = absl::GetFlag(FLAGS_agent_messages_per_second);
  limits.message_burst = limits.messages_per_second * 10;
  limits.connect_burst = absl::GetFlag(FLAGS_agent_connect_burst);
  if (absl::GetFlag(FLAGS_max_concurrent_handshakes) < 1 ||
      absl::GetFlag(FLAGS_max_waiting_handshakes) < 0 ||
      absl::GetFlag(FLAGS_hello_timeout_seconds) < 1) {
    return Fail(absl::InvalidArgumentError(
        "--max-concurrent-handshakes and --hello-timeout-seconds must be at least 1, "
        "--max-waiting-handshakes at least 0"));
  }
  limits.max_concurrent_handshakes = absl::GetFlag(FLAGS_max_concurrent_handshakes);
  limits.max_waiting_handshakes = absl::GetFlag(FLAGS_max_waiting_handshakes);
  limits.hello_timeout = absl::Seconds(absl::GetFlag(FLAGS_hello_timeout_seconds));

  absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(data_dir, signals);
  if (store.status().code() == absl::StatusCode::kCancelled) {
    GF_LOG(INFO) << "shutting down: " << store.status().message();
    return 0;
  }
  if (!store.ok()) return Fail(store.status());

  absl::StatusOr<std::string> fleet_id = LoadOrCreateFleetId(store->get());
  if (!fleet_id.ok()) return Fail(fleet_id.status());
  GF_LOG(INFO) << "fleet id " << *fleet_id;

  // Render scratch copies live only as long as one render; what is there at start is what
  // a crash left behind.
  if (absl::Status s = RemoveRecursively(absl::StrCat(data_dir, "/render")); !s.ok()) {
    GF_LOG(WARNING) << "cannot clear stale render scratch copies: " << s.message();
  }
  // PGP keyrings live in the data directory; what is there at start is a crash's.
  const std::string gpg_dir = absl::StrCat(data_dir, "/gpg");
  (void)RemoveRecursively(gpg_dir);
  if (const std::string key_file = absl::GetFlag(FLAGS_sops_pgp_key_file); !key_file.empty()) {
    WatchedFilesOptions watched;
    watched.max_bytes = 1 << 20;
    using Keyring = std::shared_ptr<const PgpKeys>;
    absl::StatusOr<std::unique_ptr<WatchedFiles<Keyring>>> keys = WatchedFiles<Keyring>::Open(
        {{"--sops-pgp-key-file", key_file}},
        [gpg_dir](const std::vector<std::string>& contents) -> absl::StatusOr<Keyring> {
          absl::StatusOr<std::shared_ptr<PgpKeys>> imported =
              PgpKeys::Import(contents[0], {"/usr/bin/gpg", gpg_dir}, "--sops-pgp-key-file");
          if (!imported.ok()) return imported.status();
          return Keyring(*std::move(imported));
        },
        watched);
    if (!keys.ok()) return Fail(keys.status());
    GF_LOG(INFO) << "SOPS: bundles with --decrypt=sops decrypt with PGP keys "
                 << ListNames((*(*keys)->Current())->fingerprints(), 3);
    options.sops_pgp_keys = [file = std::shared_ptr<WatchedFiles<Keyring>>(std::move(*keys))] {
      return *file->Current();
    };
  }
  std::unique_ptr<GitRepositories> repos =
      NewLibgit2Repositories(absl::StrCat(data_dir, "/git"), git_limits, git_access);
  if (!absl::GetFlag(FLAGS_kustomize_remote_bases).empty()) {
    // A remote base at a branch is read again when its bundles render again at each
    // resync (BundleRecord.reads_remote): kept no longer than half of that.
    absl::Duration refetch_after = absl::Minutes(5);
    if (options.resync_interval > absl::ZeroDuration()) {
      refetch_after = std::min(refetch_after, options.resync_interval / 2);
    }
    auto remote_bases = std::make_shared<RemoteBaseFetcher>(
        repos.get(), absl::GetFlag(FLAGS_kustomize_remote_bases), refetch_after);
    // A remote file under a --git-credentials prefix gets its credential, as a repository
    // there does (read at each fetch, so a rotated password is used at once).
    remote_bases->SetLogins(
        [access = git_access](const std::string& url) -> absl::StatusOr<std::optional<ChartLogin>> {
          const std::string name = CredentialForUrl(access.credential_prefixes, url);
          if (name.empty()) return std::nullopt;
          absl::StatusOr<ChartLogin> login = LoadChartLogin(access.credentials_dir, name);
          if (!login.ok()) return login.status();
          return std::optional<ChartLogin>(*std::move(login));
        });
    options.engines.remote_bases = std::move(remote_bases);
  }
  // What happens in the fleet, for WatchEvents: published by the hub and the controller.
  EventBus events;
  // Commit statuses say where each bundle stands, as rollout status -w judges it.
  notify_options.judge = [webhook_target](
                             const std::string& bundle,
                             const std::string& settled) -> absl::StatusOr<CommitStatus> {
    MutexLock lock(&webhook_target->mu);
    if (webhook_target->controller == nullptr) return absl::UnavailableError("starting");
    absl::StatusOr<Controller::BundleVerdict> judged =
        webhook_target->controller->JudgeBundle(bundle, settled);
    if (!judged.ok()) return judged.status();
    CommitStatus status;
    status.source_url = judged->source_url;
    status.commit = judged->verdict.commit;
    // "bundle NAME at COMMIT: " says what the status's context and commit say.
    const size_t said = judged->verdict.line.find(": ");
    status.description =
        said == std::string::npos ? judged->verdict.line : judged->verdict.line.substr(said + 2);
    // A suspended bundle's commit is not failing: it goes out once the bundle is resumed.
    status.state = judged->verdict.code == RolloutVerdict::kDone ? CommitStatus::State::kSuccess
                   : judged->verdict.code == RolloutVerdict::kFailed && !judged->suspended
                       ? CommitStatus::State::kFailure
                       : CommitStatus::State::kPending;
    // Suspended (for days, perhaps): looked at again when it is resumed (bundle.resumed),
    // not each second.
    status.awaits_event = status.state == CommitStatus::State::kPending && judged->suspended;
    return status;
  };
  notify_options.bundles = [webhook_target]() -> absl::StatusOr<std::vector<std::string>> {
    std::vector<std::string> names;
    MutexLock lock(&webhook_target->mu);
    if (webhook_target->controller == nullptr) return absl::UnavailableError("starting");
    for (const v1::BundleInfo& info : webhook_target->controller->ListBundles()) {
      names.push_back(info.bundle().name());
    }
    return names;
  };
  // A sink's clusters=: asked under the bus's lock, so through a lock of its own (the
  // webhooks' is held while they call the controller).
  struct EventsTarget {
    Mutex mu;
    Controller* controller ABSL_GUARDED_BY(mu) = nullptr;
  };
  auto events_target = std::make_shared<EventsTarget>();
  notify_options.concerns = [events_target](const v1::Event& event, const LabelSelector& clusters) {
    MutexLock lock(&events_target->mu);
    return events_target->controller != nullptr &&
           events_target->controller->EventConcernsClusters(event, clusters);
  };
  // Declared after the bus: stopped before it goes.
  Notifier notifier(notify_options, &events, metrics.notifications);
  if (absl::Status s = notifier.Start(); !s.ok()) return Fail(s);
  Hub hub(store->get(), metrics);
  hub.SetEventBus(&events);
  hub.SetFleetId(*fleet_id);
  hub.SetTrustAgentLabels(absl::GetFlag(FLAGS_trust_agent_labels));
  // Serves /readyz ("starting") while the store loads; declared after the hub, so it stops
  // before the hub its probe reads goes.
  Readiness readiness;
  HttpServer::Probes probes;
  probes.ready = [&readiness] { return readiness.Check(); };
  probes.live = [&hub] { return hub.Liveness(); };
  std::unique_ptr<HttpServer> webhook_http;
  if (!absl::GetFlag(FLAGS_webhook_http).empty()) {
    absl::StatusOr<std::unique_ptr<HttpServer>> started =
        HttpServer::StartPostOnly(absl::GetFlag(FLAGS_webhook_http), std::move(post_routes));
    if (!started.ok()) return Fail(Prefixed("--webhook-http", started.status()));
    webhook_http = *std::move(started);
    post_routes.clear();
    post_routes[kWebhookPath] = {0, [](const HttpRequest&) {
                                   return HttpResponse{
                                       404, "text/plain; charset=utf-8",
                                       "webhooks are served on this control plane's "
                                       "--webhook-http address, not on --http\n"};
                                 }};
    post_routes[kWebhookPath].one_more_segment = true;
  }
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start(absl::GetFlag(FLAGS_http), &registry, probes, {}, std::move(post_routes));
  if (!http.ok()) return Fail(Prefixed("--http", http.status()));
  // Fleet's cluster groups: given to the hub before it loads the clusters, and again as
  // the file changes (each cluster's groups follow; its bundles render again for them).
  struct GroupsWatch {
    absl::Notification stop;
    std::thread thread;
    ~GroupsWatch() {
      stop.Notify();
      if (thread.joinable()) thread.join();
    }
  } groups_watch;
  if (groups_file != nullptr) {
    std::shared_ptr<const Groups> groups = groups_file->Current();
    hub.SetClusterGroups(groups);
    groups_watch.thread =
        std::thread([file = groups_file, groups, &hub, &stop = groups_watch.stop]() mutable {
          NameThisThread("gf-groups");
          while (!stop.WaitForNotificationWithTimeout(absl::Seconds(1))) {
            std::shared_ptr<const Groups> now = file->Current();
            if (now == groups) continue;
            groups = now;
            hub.SetClusterGroups(groups);
          }
        });
  }
  if (absl::Status s = hub.Load(); !s.ok()) return Fail(s);
  absl::StatusOr<std::unique_ptr<ClusterRegistry>> clusters = ClusterRegistry::Load(
      store->get(), &hub, absl::GetFlag(FLAGS_agent_tokens), absl::GetFlag(FLAGS_allow_any_agent));
  if (!clusters.ok()) return Fail(clusters.status());
  (*clusters)->WatchFile();  // a line edited, added or removed is in force within seconds
  if (absl::GetFlag(FLAGS_allow_any_agent)) {
    GF_LOG(WARNING) << "--allow-any-agent: agents of unregistered clusters are accepted "
                       "without a token; for demos and tests only";
  } else if ((*clusters)->size() == 0) {
    GF_LOG(WARNING) << "no clusters registered: agents are refused until they are (gitfleetctl "
                       "cluster add NAME --labels=..., or --agent-tokens)";
  }
  if (absl::GetFlag(FLAGS_trust_agent_labels)) {
    GF_LOG(WARNING) << "--trust-agent-labels: bundles target clusters by the labels their "
                       "agents claim";
  }
  Controller controller(store->get(), repos.get(), &hub, metrics, options);
  controller.SetEventBus(&events);
  // A notify sink's clusters= asks it from the first event on (a cluster connecting before
  // the controller starts among them), until it goes, whichever way main returns.
  {
    MutexLock lock(&events_target->mu);
    events_target->controller = &controller;
  }
  absl::Cleanup forget_controller = [&events_target] {
    MutexLock lock(&events_target->mu);
    events_target->controller = nullptr;
  };
  if (absl::Status s = controller.Load(); !s.ok()) return Fail(s);
  readiness.SetStore(store->get());

  AgentServiceImpl agent_service(&hub, clusters->get(), metrics, limits);
  AdminServiceImpl admin_service(&controller, store->get(), data_dir, api_auth->get(), metrics,
                                 clusters->get());
  admin_service.SetEventBus(&events);
  admin_service.SetMaxResponseBytes(static_cast<size_t>(absl::GetFlag(FLAGS_max_message_bytes)));
  // Every service runs on one ServerLoop, health and reflection included: gRPC's own
  // health (callback API) and reflection (synchronous) services would each add polling
  // threads, and any second polling thread costs context switches on every sparse message
  // (common/server_loop.h).
  const std::vector<std::string> services = {v1::AgentService::service_full_name(),
                                             v1::AdminService::service_full_name()};
  HealthService health({services.begin(), services.end()});
  // Reflection answers whom the admin API admits (any role): the API's schema is no
  // anonymous caller's business. Health answers everyone (probes carry no credentials).
  ReflectionService reflection(
      {services[0], services[1], grpc::health::v1::Health::service_full_name()},
      [&admin_service](const grpc::ServerContext& context) {
        return admin_service.AdmitReflection(context);
      });
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_grpc), *credentials, &grpc_port);
  // What gRPC reads into memory before any of our checks, for every caller: bounded by
  // the largest message anyone may send us, not by what we send.
  builder.SetMaxReceiveMessageSize(std::max(absl::GetFlag(FLAGS_max_request_bytes),
                                            absl::GetFlag(FLAGS_agent_max_message_bytes)));
  builder.SetMaxSendMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Agents send the control plane only small messages (ACKs, status), so probing their
  // bandwidth-delay product gains nothing and costs a ping per received message on every
  // connection: a quarter of the CPU of a 10,000-agent fan-out (docs/BENCHMARKS.md).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // gRPC binds with SO_REUSEPORT by default, so a second control plane on the same port
  // would start and silently take half the agents' connections. Fail to bind instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&agent_service);
  builder.RegisterService(admin_service.service());
  builder.RegisterService(health.service());
  reflection.RegisterWith(&builder);
  ServerLoop loop(&builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", absl::GetFlag(FLAGS_grpc))));
  }
  agent_service.Serve(&loop);
  admin_service.Serve(&loop);
  health.Serve(&loop);
  reflection.Serve(&loop);
  loop.Start();
  // The health service says SERVING only between start and drain.
  controller.Start();
  {
    MutexLock lock(&webhook_target->mu);
    webhook_target->controller = &controller;
  }
  readiness.SetPhase(Readiness::Phase::kServing);
  health.SetServing(true);
  GF_LOG(INFO) << "gitfleet-controlplane serving gRPC on port " << grpc_port << ", HTTP on port "
               << (*http)->port()
               << (webhook_http != nullptr
                       ? absl::StrCat(", webhooks on port ", webhook_http->port())
                       : std::string())
               << ", data in " << data_dir;

  int sig = signals.Wait();
  GF_LOG(INFO) << "shutting down on " << strsignal(sig);
  readiness.SetPhase(Readiness::Phase::kDraining);
  CancelGitFetches();  // a hanging Git server does not hold up the exit
  health.SetServing(false);
  if (absl::GetFlag(FLAGS_shutdown_delay_seconds) > 0) {
    GF_LOG(INFO) << "draining: serving " << absl::GetFlag(FLAGS_shutdown_delay_seconds)
                 << " s more while reporting not ready";
    absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_shutdown_delay_seconds)));
  }
  agent_service.SetStopping(absl::Seconds(absl::GetFlag(FLAGS_reconnect_spread_seconds)));
  hub.CloseAll(absl::UnavailableError("control plane is shutting down"));
  // In-flight admin calls (milliseconds each) get a short grace period; a cancelled one can
  // be retried. gRPC 1.51 waits out the whole deadline while any client holds an idle
  // channel, so keep it short.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  loop.Stop();
  GF_LOG(INFO) << "gRPC server stopped";
  {
    MutexLock lock(&webhook_target->mu);
    webhook_target->controller = nullptr;
  }
  return store_lock_lost ? 1 : 0;
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
      "gitfleet-controlplane --grpc=ADDR --http=ADDR --data-dir=DIR [--agent-tokens=FILE] "
      "[--api-tokens=FILE] [--api-client-roles=FILE]");
  std::vector<char*> args = gitfleet::NormalizeFlagNames(argc, argv);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  return gitfleet::Main(signals);
}
