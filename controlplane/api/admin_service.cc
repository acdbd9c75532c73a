#include "controlplane/api/admin_service.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"

namespace gitfleet {
namespace {

// Finishes a unary call with `status`.
grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

template <typename T>
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context, absl::StatusOr<T> result,
                                T* response) {
  if (result.ok()) *response = *std::move(result);
  return Done(context, result.status());
}

// Streams a finished backup in chunks; deletes itself when the call is done.
class BackupWriter : public grpc::ServerWriteReactor<v1::BackupChunk> {
 public:
  explicit BackupWriter(std::string data) : data_(std::move(data)) { Next(); }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "backup stream broken"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    constexpr size_t kChunk = 1 << 20;
    if (offset_ >= data_.size() && offset_ > 0) {
      Finish(grpc::Status::OK);
      return;
    }
    chunk_.set_data(data_.substr(offset_, kChunk));
    offset_ += kChunk;
    StartWrite(&chunk_);
  }
  const std::string data_;
  size_t offset_ = 0;
  v1::BackupChunk chunk_;
};

class FailedWriter : public grpc::ServerWriteReactor<v1::BackupChunk> {
 public:
  explicit FailedWriter(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::BackupChunk>* AdminServiceImpl::Backup(
    grpc::CallbackServerContext* context, const v1::BackupRequest*) {
  static std::atomic<uint64_t> counter{0};
  const std::string path =
      absl::StrCat(scratch_dir_, "/backup-", getpid(), "-", counter.fetch_add(1), ".db.tmp");
  absl::Status made = store_->Backup(path);
  std::string data;
  if (made.ok()) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (!in) made = absl::InternalError(absl::StrCat("cannot read backup ", path));
    data = buffer.str();
  }
  unlink(path.c_str());
  if (!made.ok()) {
    GF_LOG(ERROR) << "backup failed: " << made;
    return new FailedWriter(made);
  }
  GF_LOG(INFO) << "backup of " << data.size() << " bytes sent";
  return new BackupWriter(std::move(data));
}

grpc::ServerUnaryReactor* AdminServiceImpl::AdoptCluster(grpc::CallbackServerContext* context,
                                                         const v1::AdoptClusterRequest* request,
                                                         v1::AdoptClusterResponse*) {
  return Done(context, controller_->AdoptCluster(request->cluster()));
}

grpc::ServerUnaryReactor* AdminServiceImpl::ForgetBundle(grpc::CallbackServerContext* context,
                                                         const v1::ForgetBundleRequest* request,
                                                         v1::ForgetBundleResponse*) {
  return Done(context,
              controller_->ForgetBundle(request->cluster(), request->bundle(), request->prune()));
}

grpc::ServerUnaryReactor* AdminServiceImpl::AddSource(grpc::CallbackServerContext* context,
                                                      const v1::AddSourceRequest* request,
                                                      v1::SourceInfo* response) {
  return Reply(context, controller_->AddSource(request->source(), request->replace()), response);
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListSources(grpc::CallbackServerContext* context,
                                                        const v1::ListSourcesRequest*,
                                                        v1::ListSourcesResponse* response) {
  for (v1::SourceInfo& info : controller_->ListSources()) {
    *response->add_sources() = std::move(info);
  }
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::RemoveSource(grpc::CallbackServerContext* context,
                                                         const v1::RemoveSourceRequest* request,
                                                         v1::RemoveSourceResponse*) {
  return Done(context, controller_->RemoveSource(request->name()));
}

grpc::ServerUnaryReactor* AdminServiceImpl::SyncSource(grpc::CallbackServerContext* context,
                                                       const v1::SyncSourceRequest* request,
                                                       v1::SourceInfo* response) {
  return Reply(context, controller_->SyncSource(request->name()), response);
}

grpc::ServerUnaryReactor* AdminServiceImpl::AddBundle(grpc::CallbackServerContext* context,
                                                      const v1::AddBundleRequest* request,
                                                      v1::BundleInfo* response) {
  return Reply(context, controller_->AddBundle(request->bundle(), request->replace()), response);
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListBundles(grpc::CallbackServerContext* context,
                                                        const v1::ListBundlesRequest*,
                                                        v1::ListBundlesResponse* response) {
  for (v1::BundleInfo& info : controller_->ListBundles()) {
    *response->add_bundles() = std::move(info);
  }
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::RemoveBundle(grpc::CallbackServerContext* context,
                                                         const v1::RemoveBundleRequest* request,
                                                         v1::RemoveBundleResponse*) {
  return Done(context, controller_->RemoveBundle(request->name()));
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListClusters(grpc::CallbackServerContext* context,
                                                         const v1::ListClustersRequest*,
                                                         v1::ListClustersResponse* response) {
  for (v1::ClusterInfo& info : controller_->ListClusters()) {
    *response->add_clusters() = std::move(info);
  }
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetStatus(grpc::CallbackServerContext* context,
                                                      const v1::GetStatusRequest* request,
                                                      v1::GetStatusResponse* response) {
  for (v1::BundleStatus& status : controller_->GetStatus(request->cluster(), request->bundle())) {
    *response->add_statuses() = std::move(status);
  }
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::DiffBundle(grpc::CallbackServerContext* context,
                                                       const v1::DiffBundleRequest* request,
                                                       v1::DiffResult* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Duration timeout = request->timeout_seconds() > 0
                               ? absl::Seconds(std::min(request->timeout_seconds(), 300))
                               : absl::Seconds(10);
  // Answered from the agent's stream thread, or the hub's timer on expiry.
  controller_->DiffBundle(request->cluster(), request->bundle(), timeout,
                          [reactor, response](absl::StatusOr<v1::DiffResult> result) {
                            if (result.ok()) *response = *std::move(result);
                            reactor->Finish(ToGrpcStatus(result.status()));
                          });
  return reactor;
}

}  // namespace gitfleet
