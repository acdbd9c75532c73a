#ifndef GITFLEET_TESTS_FAKEKUBE_FAKE_APISERVER_H_
#define GITFLEET_TESTS_FAKEKUBE_FAKE_APISERVER_H_

// A fake Kubernetes API server on loopback (HTTP or HTTPS) that follows the real API's
// documented behaviour for what gitfleet's agent uses. See tests/fakekube/README.md for
// what it covers and what it does not.
//
//   FakeApiServer::Options options;
//   options.token = "t0k3n";
//   GF_ASSIGN_OR_RETURN(std::unique_ptr<FakeApiServer> server, FakeApiServer::Start(options));
//   ... point a client at server->url() ...
//   server->SetStatus("apps", "deployments", "web", "api", {{"readyReplicas", 2}});
//
// Thread-safe: requests are served on civetweb's threads; test hooks may run at any time.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "nlohmann/json.hpp"
#include "tests/fakekube/tls_frontend.h"

struct mg_context;
struct mg_connection;

namespace gitfleet {

// What GET /version answers as gitVersion.
inline constexpr char kFakeKubernetesVersion[] = "v1.30.2";

class FakeApiServer {
 public:
  struct Options {
    // "127.0.0.1:0" picks a free port.
    std::string listen = "127.0.0.1:0";
    // PEM file holding the server certificate and key: serve HTTPS.
    std::string tls_cert_and_key;
    // With TLS: clients must present a certificate this CA (PEM file) signed, as
    // kube-apiserver's --client-ca-file. With an empty token, the certificate alone admits.
    std::string client_ca;
    // Required bearer token; empty accepts any request.
    std::string token;
    // A second bearer token, whose requests (made without Impersonate-User) are judged by
    // RBAC as `restricted_user`, as the API server judges an agent's own service account,
    // while `token` stays an administrator's (the tests' own setup).
    std::string restricted_token;
    std::string restricted_user;
    // How long a new CRD takes to become Established and served.
    absl::Duration crd_establish_delay = absl::ZeroDuration();
    // Act as the workload controllers would: Deployments, StatefulSets, DaemonSets,
    // ReplicaSets and Jobs report a finished rollout as soon as they are written.
    bool simulate_controllers = false;
    // How many changes watches may start from (resourceVersion): a watch from before the
    // oldest kept gets the API's 410 Expired, as after etcd's compaction.
    size_t watch_history = 10000;
    // Watches open at once; more get 429 (each holds one of the server's threads).
    int max_watches = 200;
  };

  struct Request {
    std::string method;
    std::string path;  // without the query
    std::string query;
    int code = 0;
    std::string user;  // Impersonate-User; "" when the client asked as itself
  };

  static absl::StatusOr<std::unique_ptr<FakeApiServer>> Start(Options options);
  ~FakeApiServer();

  std::string url() const;
  int port() const { return port_; }

  // Test hooks. `group` is "" for the core group; `resource` is the plural name.
  void SetToken(std::string token);
  // The next `count` requests get `code` (e.g. 429 or 503) with a Status body and, when
  // `retry_after_seconds` >= 0, a Retry-After header.
  void FailNext(int count, int code, int retry_after_seconds = -1);
  // The next `count` requests whose Content-Type starts with `content_type` get `code` (a
  // 422 to a JSON patch: its test failed, as when the object changed meanwhile).
  void FailNextOfType(const std::string& content_type, int count, int code);
  // Requests with this verb ("patch", "delete", "get", "list") on the resource get 403.
  void Forbid(const std::string& verb, const std::string& group, const std::string& resource);
  // Undoes a Forbid.
  void Allow(const std::string& verb, const std::string& group, const std::string& resource);
  // Requests made without Impersonate-User are judged by RBAC as `user` (the client's own
  // identity, "system:serviceaccount:gitfleet:agent"), against the Roles, ClusterRoles and
  // bindings stored here, as the API server judges every client. Empty (the default)
  // admits the client to everything.
  void AuthorizeAs(std::string user);
  // Replaces the object's status, as its controller would.
  bool SetStatus(const std::string& group, const std::string& resource, const std::string& ns,
                 const std::string& name, nlohmann::json status);
  // Changes the live object as another client (`kubectl edit`) would: bumps
  // resourceVersion and, for a spec change, generation.
  bool Mutate(const std::string& group, const std::string& resource, const std::string& ns,
              const std::string& name, const std::function<void(nlohmann::json&)>& change);
  // Deletes the object as another client (`kubectl delete`) would; false when absent.
  bool Delete(const std::string& group, const std::string& resource, const std::string& ns,
              const std::string& name);
  // Creates an object no gitfleet bundle owns.
  void Put(const std::string& group, const std::string& resource, nlohmann::json object);
  // The live object, or null.
  nlohmann::json Get(const std::string& group, const std::string& resource, const std::string& ns,
                     const std::string& name) const;
  size_t ObjectCount() const;
  // Forgets the changes kept for watches: a watch from any resourceVersion before now gets
  // 410 Expired, and open ones end with it, as after an etcd compaction.
  void CompactWatchHistory();
  // Watches open now.
  int OpenWatches() const;

  // With TLS: connections accepted so far (clients that reuse connections make few).
  int TlsConnections() const { return tls_ == nullptr ? 0 : tls_->connections(); }
  std::vector<Request> Requests() const;
  void ClearRequests();
  // Requests (of every code) with this method, e.g. "PATCH".
  int CountRequests(const std::string& method) const;

 private:
  struct Resource {
    std::string group;
    std::vector<std::string> versions;
    std::string kind;
    std::string plural;
    bool namespaced = true;
    bool served = true;
  };
  // A watch the request asked for (GET of a collection with watch=true), served as a stream.
  struct WatchRequest {
    std::string group;
    std::string version;
    std::string prefix;  // of the keys of objects_ it covers
    std::string selector;
    bool from_now = true;  // no resourceVersion (or "0"): the objects now, then changes
    int64_t from = 0;      // else: changes after this resourceVersion
    bool bookmarks = false;
    absl::Duration timeout;
  };
  struct Response {
    int code = 200;
    nlohmann::json body;
    int retry_after = -1;
    // A pointer: Handle's frame holds many Responses, and civetweb's threads small stacks.
    std::shared_ptr<const WatchRequest> watch;
  };
  // One change, kept for watches: the object before and after (null when absent).
  struct Change {
    int64_t version;
    std::string key;
    nlohmann::json before;
    nlohmann::json after;
  };

  explicit FakeApiServer(Options options);
  static int Dispatch(mg_connection* conn, void* self);
  Response Handle(const std::string& method, const std::string& path, const std::string& query,
                  const std::string& authorization, const std::string& content_type,
                  const std::string& body, const std::string& impersonate_user = "");
  // RBAC, for a request made as `user` (Impersonate-User): whether the Roles,
  // ClusterRoles and their bindings stored here grant `verb` on `resource` ("pods",
  // "deployments/status") of `group` named `name` in namespace `ns` ("" for the cluster
  // scope), as the API server's RBAC authorizer decides.
  bool AuthorizedLocked(const std::string& user, const std::string& verb, const std::string& group,
                        const std::string& resource, const std::string& ns,
                        const std::string& name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Response DiscoveryLocked(const std::vector<std::string>& parts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The watch `query` asks for of the collection at `prefix`, or the error to answer.
  Response WatchLocked(const std::string& group, const std::string& version,
                       const std::string& prefix, std::map<std::string, std::string>& query)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Response ApplyLocked(const Resource& resource, const std::string& version, const std::string& ns,
                       const std::string& name, const std::map<std::string, std::string>& query,
                       const nlohmann::json& body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PATCH with a JSON patch or a merge patch (a strategic merge patch is taken as one): an
  // update by `fieldManager`, which owns what it changed; managedFields the patch writes are
  // taken as written.
  // Removes the object at `key` when it is marked for deletion and has no finalizer left.
  void ReapLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Response PatchLocked(const Resource& resource, const std::string& version, const std::string& key,
                       const std::map<std::string, std::string>& query,
                       const std::string& content_type, const std::string& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // POST to a collection: creates, naming the object from metadata.generateName when it
  // has no name.
  Response CreateLocked(const Resource& resource, const std::string& version, const std::string& ns,
                        const std::map<std::string, std::string>& query, nlohmann::json object)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AfterWriteLocked(const Resource& resource, nlohmann::json& object)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps the change of `key` for watches, at the current resource_version_.
  void ChangedLocked(const std::string& key, nlohmann::json before, nlohmann::json after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Streams the events of `watch` to `conn` until it times out, the client goes, the
  // history it follows is compacted or the server stops.
  void ServeWatch(mg_connection* conn, const WatchRequest& watch);
  void EstablishCrdsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Resource* FindResourceLocked(const std::string& group, const std::string& version,
                                     const std::string& plural) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static std::string ObjectKeyFor(const std::string& group, const std::string& plural,
                                  const std::string& ns, const std::string& name);

  const Options options_;
  std::unique_ptr<TlsFrontend> tls_;
  mg_context* ctx_ = nullptr;
  int port_ = 0;
  // Where civetweb itself listens (behind the TLS frontend, when there is one).
  std::string internal_host_ = "127.0.0.1";
  int internal_port_ = 0;

  mutable Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  std::string authorize_as_ ABSL_GUARDED_BY(mu_);
  int fail_count_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_code_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_retry_after_ ABSL_GUARDED_BY(mu_) = -1;
  std::string fail_content_type_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> forbidden_ ABSL_GUARDED_BY(mu_);  // "verb group/resource"
  std::vector<Resource> resources_ ABSL_GUARDED_BY(mu_);
  // "group/plural/ns/name" -> object
  std::map<std::string, nlohmann::json> objects_ ABSL_GUARDED_BY(mu_);
  // CRD name -> when it becomes Established
  std::map<std::string, absl::Time> pending_crds_ ABSL_GUARDED_BY(mu_);
  int64_t resource_version_ ABSL_GUARDED_BY(mu_) = 1000;
  int64_t uid_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
  std::deque<Change> changes_ ABSL_GUARDED_BY(mu_);
  // Changes up to this resourceVersion are forgotten: a watch from before it is expired.
  int64_t forgotten_through_ ABSL_GUARDED_BY(mu_) = 0;
  int open_watches_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gitfleet

#endif  // GITFLEET_TESTS_FAKEKUBE_FAKE_APISERVER_H_
