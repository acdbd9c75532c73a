#include "common/grpc_health.h"

namespace gitfleet {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream: sends the status it last saw whenever it differs from what it sent.
class HealthService::Watcher : public WriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* health, std::string service)
      : health_(health), service_(std::move(service)) {}

  void OnStart() override { Want(health_->Add(this, service_)); }

  // The status is now `status` (called under the service's lock).
  void Want(Status status) {
    MutexLock lock(&mu_);
    want_ = status;
    SendLocked();
  }

  void OnWriteDone(bool ok) override {
    MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "health watch stream broken"));
      return;
    }
    SendLocked();
  }
  void OnCancel() override {
    MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }
  void OnDone() override {
    health_->Remove(this);
    delete this;
  }

 private:
  void SendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || (sent_any_ && sent_ == want_)) return;
    sent_any_ = true;
    sent_ = want_;
    out_.set_status(want_);
    writing_ = true;
    StartWrite(&out_);
  }

  HealthService* const health_;
  const std::string service_;
  Mutex mu_;
  Status want_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  Status sent_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  HealthCheckResponse out_ ABSL_GUARDED_BY(mu_);  // the write in flight
};

void HealthService::Serve(ServerLoop* loop) {
  using Async = grpc::health::v1::Health::AsyncService;
  ServeUnary(loop, &async_, &Async::RequestCheck, this, &HealthService::Check);
  ServeServerStream(loop, &async_, &Async::RequestWatch, this, &HealthService::Watch);
}

HealthService::Status HealthService::StatusOfLocked(const std::string& service) const {
  if (!service.empty() && services_.count(service) == 0)
    return HealthCheckResponse::SERVICE_UNKNOWN;
  return serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetServing(bool serving) {
  MutexLock lock(&mu_);
  serving_ = serving;
  for (const auto& [watcher, service] : watchers_) watcher->Want(StatusOfLocked(service));
}

grpc::Status HealthService::Check(grpc::ServerContext*, const HealthCheckRequest* request,
                                  HealthCheckResponse* response) {
  MutexLock lock(&mu_);
  Status status = StatusOfLocked(request->service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "unknown service \"" + request->service().substr(0, 256) + "\"");
  }
  response->set_status(status);
  return grpc::Status::OK;
}

namespace {

// A watch refused before its first message.
class RefusedWatch : public WriteReactor<HealthCheckResponse> {
 public:
  explicit RefusedWatch(grpc::Status status) : status_(std::move(status)) {}
  void OnStart() override { Finish(status_); }
  void OnDone() override { delete this; }

 private:
  const grpc::Status status_;
};

}  // namespace

WriteReactor<HealthCheckResponse>* HealthService::Watch(grpc::ServerContext*,
                                                        const HealthCheckRequest* request) {
  MutexLock lock(&mu_);
  if (watching_ >= kMaxWatchers) {
    return new RefusedWatch(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     "too many health watches open (" + std::to_string(kMaxWatchers) + ")"));
  }
  ++watching_;
  return new Watcher(this, request->service());
}

HealthService::Status HealthService::Add(Watcher* watcher, const std::string& service) {
  MutexLock lock(&mu_);
  watchers_[watcher] = service;
  return StatusOfLocked(service);
}

void HealthService::Remove(Watcher* watcher) {
  MutexLock lock(&mu_);
  watchers_.erase(watcher);
  --watching_;
}

}  // namespace gitfleet
