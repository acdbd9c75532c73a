#ifndef GITFLEET_CONTROLPLANE_API_ADMIN_SERVICE_H_
#define GITFLEET_CONTROLPLANE_API_ADMIN_SERVICE_H_

// The gRPC adapter for the admin API: checks who calls and whether their role allows the
// method (auth.h), translates requests into Controller calls and absl::Status into
// grpc::Status, counts every call and writes an audit line for every change. No domain
// logic lives here.
//
//   AdminServiceImpl admin(&controller, store, data_dir, auth.get(), metrics);
//   builder.RegisterService(&admin);

#include <string>

#include "common/rate_limit.h"
#include "common/sync.h"
#include "controlplane/api/auth.h"
#include "controlplane/distribute/cluster_registry.h"
#include "controlplane/events/event_bus.h"
#include "controlplane/fleet/controller.h"
#include "controlplane/metrics.h"
#include "controlplane/store/store.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"

namespace gitfleet {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `store` and `scratch_dir` serve Backup: the copy is made in `scratch_dir` (on the
  // store's disk), streamed, and deleted.
  AdminServiceImpl(Controller* controller, Store* store, std::string scratch_dir,
                   const ApiAuth* auth, ControlPlaneMetrics& metrics, ClusterRegistry* registry)
      : controller_(controller),
        store_(store),
        scratch_dir_(std::move(scratch_dir)),
        auth_(auth),
        metrics_(metrics),
        registry_(registry) {}

  // Where WatchEvents subscribes (it answers UNAVAILABLE without one). Set before serving.
  void SetEventBus(EventBus* events) { events_ = events; }
  // Concurrent WatchEvents streams allowed; more are RESOURCE_EXHAUSTED.
  static constexpr size_t kMaxWatchers = 100;

  grpc::ServerWriteReactor<v1::Event>* WatchEvents(grpc::CallbackServerContext* context,
                                                   const v1::WatchEventsRequest* request) override;
  grpc::ServerUnaryReactor* AddSource(grpc::CallbackServerContext* context,
                                      const v1::AddSourceRequest* request,
                                      v1::SourceInfo* response) override;
  grpc::ServerUnaryReactor* ListSources(grpc::CallbackServerContext* context,
                                        const v1::ListSourcesRequest* request,
                                        v1::ListSourcesResponse* response) override;
  grpc::ServerUnaryReactor* RemoveSource(grpc::CallbackServerContext* context,
                                         const v1::RemoveSourceRequest* request,
                                         v1::RemoveSourceResponse* response) override;
  grpc::ServerUnaryReactor* SyncSource(grpc::CallbackServerContext* context,
                                       const v1::SyncSourceRequest* request,
                                       v1::SourceInfo* response) override;
  grpc::ServerUnaryReactor* AddBundle(grpc::CallbackServerContext* context,
                                      const v1::AddBundleRequest* request,
                                      v1::BundleInfo* response) override;
  grpc::ServerUnaryReactor* ListBundles(grpc::CallbackServerContext* context,
                                        const v1::ListBundlesRequest* request,
                                        v1::ListBundlesResponse* response) override;
  grpc::ServerUnaryReactor* RemoveBundle(grpc::CallbackServerContext* context,
                                         const v1::RemoveBundleRequest* request,
                                         v1::RemoveBundleResponse* response) override;
  grpc::ServerUnaryReactor* ListClusters(grpc::CallbackServerContext* context,
                                         const v1::ListClustersRequest* request,
                                         v1::ListClustersResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::GetStatusRequest* request,
                                      v1::GetStatusResponse* response) override;
  grpc::ServerUnaryReactor* DiffBundle(grpc::CallbackServerContext* context,
                                       const v1::DiffBundleRequest* request,
                                       v1::DiffResult* response) override;
  grpc::ServerUnaryReactor* GetRollout(grpc::CallbackServerContext* context,
                                       const v1::GetRolloutRequest* request,
                                       v1::RolloutStatus* response) override;
  grpc::ServerUnaryReactor* ControlRollout(grpc::CallbackServerContext* context,
                                           const v1::ControlRolloutRequest* request,
                                           v1::RolloutStatus* response) override;
  grpc::ServerUnaryReactor* SuspendBundle(grpc::CallbackServerContext* context,
                                          const v1::SuspendBundleRequest* request,
                                          v1::BundleInfo* response) override;
  grpc::ServerUnaryReactor* SuspendCluster(grpc::CallbackServerContext* context,
                                           const v1::SuspendClusterRequest* request,
                                           v1::SuspendClusterResponse* response) override;
  grpc::ServerUnaryReactor* BundleHistory(grpc::CallbackServerContext* context,
                                          const v1::BundleHistoryRequest* request,
                                          v1::BundleHistoryResponse* response) override;
  grpc::ServerUnaryReactor* PinBundle(grpc::CallbackServerContext* context,
                                      const v1::PinBundleRequest* request,
                                      v1::BundleInfo* response) override;
  grpc::ServerUnaryReactor* AdoptCluster(grpc::CallbackServerContext* context,
                                         const v1::AdoptClusterRequest* request,
                                         v1::AdoptClusterResponse* response) override;
  grpc::ServerUnaryReactor* ForgetBundle(grpc::CallbackServerContext* context,
                                         const v1::ForgetBundleRequest* request,
                                         v1::ForgetBundleResponse* response) override;
  grpc::ServerWriteReactor<v1::BackupChunk>* Backup(grpc::CallbackServerContext* context,
                                                    const v1::BackupRequest* request) override;
  grpc::ServerUnaryReactor* RegisterCluster(grpc::CallbackServerContext* context,
                                            const v1::RegisterClusterRequest* request,
                                            v1::ClusterTokenResponse* response) override;
  grpc::ServerUnaryReactor* LabelCluster(grpc::CallbackServerContext* context,
                                         const v1::LabelClusterRequest* request,
                                         v1::LabelClusterResponse* response) override;
  grpc::ServerUnaryReactor* RotateClusterToken(grpc::CallbackServerContext* context,
                                               const v1::RotateClusterTokenRequest* request,
                                               v1::ClusterTokenResponse* response) override;
  grpc::ServerUnaryReactor* RemoveCluster(grpc::CallbackServerContext* context,
                                          const v1::RemoveClusterRequest* request,
                                          v1::RemoveClusterResponse* response) override;

 private:
  EventBus* events_ = nullptr;
  friend class AdminCall;
  Controller* const controller_;
  Store* const store_;
  const std::string scratch_dir_;
  const ApiAuth* const auth_;
  ControlPlaneMetrics& metrics_;
  ClusterRegistry* const registry_;
  Mutex mu_;
  TokenBucket refusal_logs_ ABSL_GUARDED_BY(mu_){1, 20};  // log lines for refused calls
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_API_ADMIN_SERVICE_H_
