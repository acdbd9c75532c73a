#ifndef GITFLEET_COMMON_GRPC_HEALTH_H_
#define GITFLEET_COMMON_GRPC_HEALTH_H_

// The standard gRPC health service (grpc.health.v1.Health) on a ServerLoop, for load
// balancers and Kubernetes' grpc probes. Check answers at once; Watch sends the status,
// then every change of it. The whole server ("") and each named service share one
// status; any other name is NOT_FOUND to Check and SERVICE_UNKNOWN to Watch.
//
//   HealthService health({"gitfleet.v1.AdminService"});
//   builder.RegisterService(health.service());
//   ServerLoop loop(&builder);
//   auto server = builder.BuildAndStart();
//   health.Serve(&loop);
//   health.SetServing(true);
//
// Thread-safe.

#include <map>
#include <set>
#include <string>

#include "common/server_loop.h"
#include "common/sync.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"

namespace gitfleet {

class HealthService {
 public:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;
  // Watch streams open at once; more are refused with RESOURCE_EXHAUSTED.
  static constexpr size_t kMaxWatchers = 100;

  explicit HealthService(std::set<std::string> services) : services_(std::move(services)) {}

  grpc::Service* service() { return &async_; }
  // Starts answering on `loop`, after the server is started. NOT_SERVING until SetServing.
  void Serve(ServerLoop* loop);
  void SetServing(bool serving);

 private:
  class Watcher;

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response);
  WriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::ServerContext* context, const grpc::health::v1::HealthCheckRequest* request);
  Status StatusOfLocked(const std::string& service) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A watcher starts (returns its first status) and ends.
  Status Add(Watcher* watcher, const std::string& service);
  void Remove(Watcher* watcher);

  grpc::health::v1::Health::AsyncService async_;
  const std::set<std::string> services_;
  mutable Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  std::map<Watcher*, std::string> watchers_ ABSL_GUARDED_BY(mu_);  // and what each watches
  size_t watching_ ABSL_GUARDED_BY(mu_) = 0;                       // accepted, started or not
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_GRPC_HEALTH_H_
