#ifndef GITFLEET_CONTROLPLANE_API_ADMIN_SERVICE_H_
#define GITFLEET_CONTROLPLANE_API_ADMIN_SERVICE_H_

// The gRPC adapter for the admin API: checks who calls and whether their role allows the
// method (auth.h), translates requests into Controller calls and absl::Status into
// grpc::Status, counts every call and writes an audit line for every change. No domain
// logic lives here.
//
//   AdminServiceImpl admin(&controller, store, data_dir, auth.get(), metrics);
//   builder.RegisterService(admin.service());
//   ServerLoop loop(&builder);
//   auto server = builder.BuildAndStart();
//   admin.Serve(&loop);
//
// Handlers run on the loop's handler threads, never on its polling thread.

#include <string>

#include "common/rate_limit.h"
#include "common/server_loop.h"
#include "common/sync.h"
#include "controlplane/api/auth.h"
#include "controlplane/distribute/cluster_registry.h"
#include "controlplane/events/event_bus.h"
#include "controlplane/fleet/controller.h"
#include "controlplane/metrics.h"
#include "controlplane/store/store.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"

namespace gitfleet {

class AdminServiceImpl final {
 public:
  // `store` and `scratch_dir` serve Backup: the copy is made in `scratch_dir` (on the
  // store's disk), streamed, and deleted.
  AdminServiceImpl(Controller* controller, Store* store, std::string scratch_dir,
                   ApiAuthFiles* auth, ControlPlaneMetrics& metrics, ClusterRegistry* registry)
      : controller_(controller),
        store_(store),
        scratch_dir_(std::move(scratch_dir)),
        auth_(auth),
        metrics_(metrics),
        registry_(registry) {}

  // What to register with the server builder.
  grpc::Service* service() { return &async_; }
  // Starts accepting calls of every method on `loop`, after the server is started.
  void Serve(ServerLoop* loop);

  // Where WatchEvents subscribes (it answers UNAVAILABLE without one). Set before serving.
  void SetEventBus(EventBus* events) { events_ = events; }
  // Whether a server reflection stream may go on (ReflectionService's gate): whoever the
  // API admits, any role (the API's schema is no anonymous caller's business). Counted in
  // api_requests as method ServerReflectionInfo, and a refusal audited, as admin calls are.
  grpc::Status AdmitReflection(const grpc::ServerContext& context);
  // The largest response gRPC will send (--max-message-bytes): GetStatus and ListClusters
  // refuse a larger one themselves, saying how to page. Set before serving.
  void SetMaxResponseBytes(size_t bytes) { max_response_bytes_ = bytes; }
  // GetStatus and ListClusters pages: when a token comes without a size, and the most one
  // may ask for.
  static constexpr int kDefaultPageSize = 1000;
  static constexpr int kMaxPageSize = 10000;
  // Concurrent WatchEvents streams allowed; more are RESOURCE_EXHAUSTED.
  static constexpr size_t kMaxWatchers = 100;

  grpc::Status WhoAmI(grpc::ServerContext* context, const v1::WhoAmIRequest* request,
                      v1::WhoAmIResponse* response);
  WriteReactor<v1::Event>* WatchEvents(grpc::ServerContext* context,
                                       const v1::WatchEventsRequest* request);
  grpc::Status AddSource(grpc::ServerContext* context, const v1::AddSourceRequest* request,
                         v1::SourceInfo* response);
  grpc::Status ListSources(grpc::ServerContext* context, const v1::ListSourcesRequest* request,
                           v1::ListSourcesResponse* response);
  grpc::Status RemoveSource(grpc::ServerContext* context, const v1::RemoveSourceRequest* request,
                            v1::RemoveSourceResponse* response);
  grpc::Status SyncSource(grpc::ServerContext* context, const v1::SyncSourceRequest* request,
                          v1::SourceInfo* response);
  grpc::Status AddBundle(grpc::ServerContext* context, const v1::AddBundleRequest* request,
                         v1::BundleInfo* response);
  grpc::Status ListBundles(grpc::ServerContext* context, const v1::ListBundlesRequest* request,
                           v1::ListBundlesResponse* response);
  grpc::Status RemoveBundle(grpc::ServerContext* context, const v1::RemoveBundleRequest* request,
                            v1::RemoveBundleResponse* response);
  grpc::Status ListClusters(grpc::ServerContext* context, const v1::ListClustersRequest* request,
                            v1::ListClustersResponse* response);
  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest* request,
                         v1::GetStatusResponse* response);
  // Answers later, when the agent has sent its diff or the request timed out.
  void DiffBundle(grpc::ServerContext* context, const v1::DiffBundleRequest* request,
                  v1::DiffResult* response, std::function<void(const grpc::Status&)> done);
  grpc::Status GetRollout(grpc::ServerContext* context, const v1::GetRolloutRequest* request,
                          v1::RolloutStatus* response);
  grpc::Status ControlRollout(grpc::ServerContext* context,
                              const v1::ControlRolloutRequest* request,
                              v1::RolloutStatus* response);
  grpc::Status SuspendBundle(grpc::ServerContext* context, const v1::SuspendBundleRequest* request,
                             v1::BundleInfo* response);
  grpc::Status RefreshBundle(grpc::ServerContext* context, const v1::RefreshBundleRequest* request,
                             v1::BundleInfo* response);
  grpc::Status SuspendCluster(grpc::ServerContext* context,
                              const v1::SuspendClusterRequest* request,
                              v1::SuspendClusterResponse* response);
  grpc::Status BundleHistory(grpc::ServerContext* context, const v1::BundleHistoryRequest* request,
                             v1::BundleHistoryResponse* response);
  grpc::Status PinBundle(grpc::ServerContext* context, const v1::PinBundleRequest* request,
                         v1::BundleInfo* response);
  grpc::Status AdoptCluster(grpc::ServerContext* context, const v1::AdoptClusterRequest* request,
                            v1::AdoptClusterResponse* response);
  grpc::Status ForgetBundle(grpc::ServerContext* context, const v1::ForgetBundleRequest* request,
                            v1::ForgetBundleResponse* response);
  WriteReactor<v1::BackupChunk>* Backup(grpc::ServerContext* context,
                                        const v1::BackupRequest* request);
  grpc::Status RegisterCluster(grpc::ServerContext* context,
                               const v1::RegisterClusterRequest* request,
                               v1::ClusterTokenResponse* response);
  grpc::Status LabelCluster(grpc::ServerContext* context, const v1::LabelClusterRequest* request,
                            v1::LabelClusterResponse* response);
  grpc::Status RotateClusterToken(grpc::ServerContext* context,
                                  const v1::RotateClusterTokenRequest* request,
                                  v1::ClusterTokenResponse* response);
  grpc::Status RemoveCluster(grpc::ServerContext* context, const v1::RemoveClusterRequest* request,
                             v1::RemoveClusterResponse* response);

 private:
  v1::AdminService::AsyncService async_;
  size_t max_response_bytes_ = size_t{64} << 20;
  EventBus* events_ = nullptr;
  friend class AdminCall;
  Controller* const controller_;
  Store* const store_;
  const std::string scratch_dir_;
  ApiAuthFiles* const auth_;
  ControlPlaneMetrics& metrics_;
  ClusterRegistry* const registry_;
  Mutex mu_;
  TokenBucket refusal_logs_ ABSL_GUARDED_BY(mu_){1, 20};  // log lines for refused calls
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_API_ADMIN_SERVICE_H_
