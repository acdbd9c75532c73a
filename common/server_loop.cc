#include "common/server_loop.h"

#include <pthread.h>
#include <sched.h>

#include <cstring>

#include "common/logging.h"
#include "common/thread_name.h"

// ThreadSanitizer cannot see gRPC hand a tag from the thread that started an operation
// to the loop's thread (Debian's gRPC is not built for it). Where a tag is made on another
// thread, releasing it there and acquiring it before Complete tells TSAN what gRPC does.
#if defined(__SANITIZE_THREAD__)
#define GF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GF_TSAN 1
#endif
#endif
#ifdef GF_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define GF_TSAN_ACQUIRE(p) __tsan_acquire(p)
#define GF_TSAN_RELEASE(p) __tsan_release(p)
#else
#define GF_TSAN_ACQUIRE(p) (void)(p)
#define GF_TSAN_RELEASE(p) (void)(p)
#endif

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
  if (options_.batch_scheduling) {
    sched_param param{};
    if (int error = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param); error != 0) {
      GF_LOG(WARNING) << "cannot make the gRPC loop SCHED_BATCH: " << strerror(error);
    }
  }
  void* tag;
  bool ok;
  while (cq_->Next(&tag, &ok)) {
    GF_TSAN_ACQUIRE(tag);
    static_cast<LoopTag*>(tag)->Complete(ok);
  }
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
  GF_TSAN_RELEASE(&alarm->tag_);  // made on this thread, completed on the loop's
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
