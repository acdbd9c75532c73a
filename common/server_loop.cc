#include "common/server_loop.h"

#include "common/logging.h"
#include "common/thread_name.h"

namespace gitfleet {

ServerLoop::ServerLoop(grpc::ServerBuilder* builder, ServerLoopOptions options)
    : options_(options), cq_(builder->AddCompletionQueue()) {}

ServerLoop::~ServerLoop() { Stop(); }

void ServerLoop::Start() {
  MutexLock lock(&mu_);
  if (started_) return;
  started_ = true;
  poller_ = std::thread([this] { Poll(); });
  for (int i = 0; i < options_.handler_threads; ++i) {
    handlers_.emplace_back([this] { Work(); });
  }
}

void ServerLoop::Poll() {
  NameThisThread("gf-grpc-loop");
  void* tag;
  bool ok;
  while (cq_->Next(&tag, &ok)) static_cast<LoopTag*>(tag)->Complete(ok);
}

void ServerLoop::Work() {
  NameThisThread("gf-grpc-handler");
  while (true) {
    std::function<void()> task;
    {
      MutexLock lock(&mu_);
      mu_.Await([this]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !tasks_.empty() || stopping_; });
      if (tasks_.empty()) return;  // stopping, and nothing left to run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

bool ServerLoop::Post(std::function<void()> fn) {
  MutexLock lock(&mu_);
  if (tasks_.size() >= options_.max_waiting_handlers) return false;
  tasks_.push_back(std::move(fn));
  return true;
}

void ServerLoop::CallEnded() {
  if (calls_.fetch_sub(1) == 1) {
    MutexLock lock(&mu_);  // unlocking wakes Stop's wait
  }
}

void ServerLoop::Stop() {
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    if (started_) {
      // After the server's Shutdown every call ends: the ones waiting to be accepted fail,
      // the rest are cancelled. One still running when the queue shuts down would fail
      // on its next operation, so wait for them, within reason.
      if (!mu_.AwaitWithTimeout([this] { return calls_.load() == 0; }, options_.stop_timeout)) {
        GF_LOG(WARNING) << calls_.load() << " gRPC calls still running after "
                        << absl::FormatDuration(options_.stop_timeout) << "; stopping anyway";
      }
    }
    stopping_ = true;
  }
  for (std::thread& handler : handlers_) handler.join();
  cq_->Shutdown();
  if (poller_.joinable()) {
    poller_.join();
  } else {
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) static_cast<LoopTag*>(tag)->Complete(ok);
  }
}

std::shared_ptr<LoopAlarm> LoopAlarm::Set(ServerLoop* loop, absl::Time deadline,
                                          std::function<void(bool fired)> fn) {
  std::shared_ptr<LoopAlarm> alarm(new LoopAlarm(loop));
  MutexLock lock(&alarm->mu_);
  alarm->fn_ = std::move(fn);
  alarm->self_ = alarm;
  alarm->alarm_.Set(loop->cq(), absl::ToChronoTime(deadline), &alarm->tag_);
  return alarm;
}

void LoopAlarm::Fired(bool ok) {
  std::function<void(bool)> fn;
  std::shared_ptr<LoopAlarm> self;
  {
    MutexLock lock(&mu_);
    fn = std::move(fn_);
    self = std::move(self_);
  }
  fn(ok);
  loop_->CallEnded();
  // `self` may be the last reference: this alarm is deleted on return.
}

}  // namespace gitfleet
