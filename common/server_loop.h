#ifndef GITFLEET_COMMON_SERVER_LOOP_H_
#define GITFLEET_COMMON_SERVER_LOOP_H_

// Serves a grpc::Server from one polling thread, with reactors in the shape of gRPC's
// callback API (grpc::ServerBidiReactor, grpc::ServerWriteReactor).
//
// Why not gRPC's callback API: in gRPC 1.51 it polls with two threads at least (and a
// synchronous service, such as reflection, adds more). All of them take turns at one
// epoll set, and each wakeup hands the polling role to another thread through a
// condition variable before it handles what woke it: about two context switches per
// message when messages arrive one by one, as agents' reports do during a partitioned
// rollout (docs/BENCHMARKS.md). A ServerLoop owns the server's only completion queue and
// drains it from one thread, which then never hands anything over. Handlers that may
// block (admin calls, anything touching disk or Git) run on a small pool instead.
//
//   grpc::ServerBuilder builder;
//   v1::Foo::AsyncService service;
//   builder.RegisterService(&service);
//   ServerLoop loop(&builder);                  // before BuildAndStart
//   std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
//   ServeUnary(&loop, &service, &v1::Foo::AsyncService::RequestGet, &impl, &Impl::Get);
//   loop.Start();
//   ...
//   server->Shutdown(deadline);
//   loop.Stop();
//
// Reactions run on the loop's thread, except OnStart of a server-streaming call, which
// runs on a handler thread with the reactor's factory (a reaction to a write it started
// may begin before it returns). Every method of a reactor's base may be called from any
// thread.

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/time/time.h"
#include "common/sync.h"
#include "grpcpp/alarm.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/async_stream.h"
#include "grpcpp/support/async_unary_call.h"

namespace gitfleet {

// An operation on the loop's queue; Complete runs on the loop's thread when it is done.
class LoopTag {
 public:
  virtual void Complete(bool ok) = 0;

 protected:
  ~LoopTag() = default;
};

// A tag that calls `object->method(ok)`.
template <typename T>
class MethodTag final : public LoopTag {
 public:
  MethodTag(T* object, void (T::*method)(bool)) : object_(object), method_(method) {}
  void Complete(bool ok) override { (object_->*method_)(ok); }

 private:
  T* const object_;
  void (T::*const method_)(bool);
};

struct ServerLoopOptions {
  // Threads for handlers that may block. An admin call that waits for a fetch or a
  // reconcile (up to its deadline) holds one, so there are enough for several such calls
  // and the quick ones beside them. Idle, they cost nothing: they never poll.
  int handler_threads = 8;
  // Handlers waiting for a thread; past it a call is refused with RESOURCE_EXHAUSTED.
  size_t max_waiting_handlers = 1000;
  // How long Stop waits for the calls still running after the server's Shutdown.
  absl::Duration stop_timeout = absl::Seconds(10);
  // Runs the polling thread as SCHED_BATCH: woken, it does not preempt the thread running
  // on its CPU, but waits for that thread's turn to end or for another CPU. Otherwise
  // every write a bundle worker starts in a fan-out completes at once, wakes the loop for
  // that one completion, and the loop preempts the worker: two context switches per
  // agent, and more while the two then contend for gRPC's completion-queue lock. Woken
  // later, the loop finds many completions and takes them in one go. It costs the loop a
  // scheduler slice (a few ms) of latency when every CPU is busy, and nothing when one
  // is idle (docs/BENCHMARKS.md, "SCHED_BATCH").
  bool batch_scheduling = true;
};

class ServerLoop {
 public:
  // Adds the server's completion queue to `builder`; call before BuildAndStart.
  explicit ServerLoop(grpc::ServerBuilder* builder, ServerLoopOptions options = {});
  ~ServerLoop();  // Stop()
  ServerLoop(const ServerLoop&) = delete;
  ServerLoop& operator=(const ServerLoop&) = delete;

  grpc::ServerCompletionQueue* cq() const { return cq_.get(); }

  // Starts the polling thread and the handler threads. After BuildAndStart.
  void Start();
  // After the server's Shutdown: waits for the calls still running to end (up to
  // stop_timeout), then ends the handlers and the queue. Idempotent.
  void Stop();

  // Runs `fn` on a handler thread. False, and `fn` is dropped, when max_waiting_handlers
  // are waiting already.
  bool Post(std::function<void()> fn);

  // Calls in progress or waiting to be accepted; kept by the call objects.
  void CallStarted() { calls_.fetch_add(1); }
  void CallEnded();

 private:
  void Poll();
  void Work();

  const ServerLoopOptions options_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread poller_;
  std::vector<std::thread> handlers_;
  std::atomic<int64_t> calls_{0};
  Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

// Calls of one method requested ahead. A burst of new calls (a fleet reconnecting) is
// matched at once up to this many; the rest wait in gRPC's queue of unmatched calls until
// the loop has accepted those and requested more.
inline constexpr int kStreamAccepts = 64;
inline constexpr int kUnaryAccepts = 8;

// A one-shot timer whose callback runs on the loop's thread: with true when it fires,
// with false when cancelled first. It holds itself until then, so its owner may go away
// before it fires (the callback must check that its owner is still there, e.g. through a
// weak_ptr). Unlike grpc::Alarm's callback form, it costs no hop through gRPC's executor.
//
//   std::shared_ptr<LoopAlarm> alarm = LoopAlarm::Set(loop, deadline, [weak](bool fired) {...});
//   alarm->Cancel();  // from any thread
class LoopAlarm {
 public:
  static std::shared_ptr<LoopAlarm> Set(ServerLoop* loop, absl::Time deadline,
                                        std::function<void(bool fired)> fn);
  // Makes the callback run with false soon, unless it has run. Thread-safe.
  void Cancel() { alarm_.Cancel(); }

 private:
  explicit LoopAlarm(ServerLoop* loop) : loop_(loop) { loop_->CallStarted(); }
  void Fired(bool ok);

  ServerLoop* const loop_;
  grpc::Alarm alarm_;
  MethodTag<LoopAlarm> tag_{this, &LoopAlarm::Fired};
  Mutex mu_;  // orders Set before Fired for ThreadSanitizer (gRPC's hand-off is invisible)
  std::function<void(bool)> fn_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<LoopAlarm> self_ ABSL_GUARDED_BY(mu_);  // until it fires or is cancelled
};

// ----- Unary calls -----

// Serves one unary method: `handler` runs on a handler thread with the request, and its
// status (and, when OK, the response) is the answer.
//
//   ServeUnary(&loop, &async_service, &v1::Foo::AsyncService::RequestGet, &impl, &Impl::Get);
//   grpc::Status Impl::Get(grpc::ServerContext*, const v1::GetRequest*, v1::GetResponse*);
template <typename Req, typename Resp>
struct UnaryMethod {
  using Request = std::function<void(grpc::ServerContext*, Req*,
                                     grpc::ServerAsyncResponseWriter<Resp>*, void* tag)>;
  // Answers by calling `done` once, from any thread, now or later.
  using Done = std::function<void(const grpc::Status&)>;
  using Handler = std::function<void(grpc::ServerContext*, const Req*, Resp*, Done done)>;
  ServerLoop* loop;
  Request request;
  Handler handler;
};

template <typename Req, typename Resp>
class UnaryCall {
 public:
  static void Accept(std::shared_ptr<const UnaryMethod<Req, Resp>> method) {
    auto* call = new UnaryCall(std::move(method));
    call->method_->request(&call->context_, &call->request_, &call->responder_, &call->accepted_);
  }

 private:
  explicit UnaryCall(std::shared_ptr<const UnaryMethod<Req, Resp>> method)
      : method_(std::move(method)) {
    method_->loop->CallStarted();
  }
  ~UnaryCall() { method_->loop->CallEnded(); }

  void Accepted(bool ok) {
    if (!ok) {  // the server is shutting down
      delete this;
      return;
    }
    Accept(method_);
    if (!method_->loop->Post([this] { Run(); })) {
      MutexLock lock(&mu_);
      responder_.FinishWithError(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       "the control plane has too many calls waiting; retry with backoff"),
          &finished_);
    }
  }
  void Run() {
    method_->handler(&context_, &request_, &response_, [this](const grpc::Status& status) {
      MutexLock lock(&mu_);
      if (status.ok()) {
        responder_.Finish(response_, status, &finished_);
      } else {
        responder_.FinishWithError(status, &finished_);
      }
    });
  }
  void Finished(bool) {
    // The answer was serialized under mu_, maybe on another thread; gRPC's own handing
    // over of the tag is invisible to ThreadSanitizer (Debian's gRPC is not built for it).
    { MutexLock lock(&mu_); }
    delete this;
  }

  const std::shared_ptr<const UnaryMethod<Req, Resp>> method_;
  grpc::ServerContext context_;
  Req request_;
  Resp response_;
  grpc::ServerAsyncResponseWriter<Resp> responder_{&context_};
  MethodTag<UnaryCall> accepted_{this, &UnaryCall::Accepted};
  MethodTag<UnaryCall> finished_{this, &UnaryCall::Finished};
  Mutex mu_;  // held while the answer starts
};

namespace server_loop_internal {
template <typename T>
struct Identity {
  using type = T;
};
}  // namespace server_loop_internal

template <typename Service, typename Req, typename Resp>
void ServeUnaryWith(
    ServerLoop* loop, typename server_loop_internal::Identity<Service>::type* service,
    void (Service::*request)(grpc::ServerContext*, Req*, grpc::ServerAsyncResponseWriter<Resp>*,
                             grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*),
    typename UnaryMethod<Req, Resp>::Handler handler) {
  auto method = std::make_shared<UnaryMethod<Req, Resp>>();
  method->loop = loop;
  grpc::ServerCompletionQueue* cq = loop->cq();
  method->request = [service, request, cq](grpc::ServerContext* context, Req* req,
                                           grpc::ServerAsyncResponseWriter<Resp>* responder,
                                           void* tag) {
    (service->*request)(context, req, responder, cq, cq, tag);
  };
  method->handler = std::move(handler);
  for (int i = 0; i < kUnaryAccepts; ++i) UnaryCall<Req, Resp>::Accept(method);
}

// `request` is the generated AsyncService's RequestMETHOD; `handle` a method of `impl`
// with the synchronous API's signature.
template <typename Service, typename Req, typename Resp, typename Impl>
void ServeUnary(ServerLoop* loop, typename server_loop_internal::Identity<Service>::type* service,
                void (Service::*request)(grpc::ServerContext*, Req*,
                                         grpc::ServerAsyncResponseWriter<Resp>*,
                                         grpc::CompletionQueue*, grpc::ServerCompletionQueue*,
                                         void*),
                Impl* impl, grpc::Status (Impl::*handle)(grpc::ServerContext*, const Req*, Resp*)) {
  ServeUnaryWith<Service, Req, Resp>(
      loop, service, request,
      [impl, handle](grpc::ServerContext* context, const Req* req, Resp* resp,
                     typename UnaryMethod<Req, Resp>::Done done) {
        done((impl->*handle)(context, req, resp));
      });
}

// As ServeUnary, for a handler that answers later: it calls `done` once, from any thread.
template <typename Service, typename Req, typename Resp, typename Impl>
void ServeUnaryLater(
    ServerLoop* loop, typename server_loop_internal::Identity<Service>::type* service,
    void (Service::*request)(grpc::ServerContext*, Req*, grpc::ServerAsyncResponseWriter<Resp>*,
                             grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*),
    Impl* impl,
    void (Impl::*handle)(grpc::ServerContext*, const Req*, Resp*,
                         std::function<void(const grpc::Status&)>)) {
  ServeUnaryWith<Service, Req, Resp>(
      loop, service, request,
      [impl, handle](grpc::ServerContext* context, const Req* req, Resp* resp,
                     typename UnaryMethod<Req, Resp>::Done done) {
        (impl->*handle)(context, req, resp, std::move(done));
      });
}

// ----- Streaming calls -----

// For a server-streaming call, which reads nothing after its request.
struct NoRead {};

template <typename R, typename W>
class StreamReactor;

namespace server_loop_internal {
// What a reactor asks of its call.
template <typename R, typename W>
class StreamOps {
 public:
  virtual void StartRead(R* message) = 0;
  virtual void StartWrite(const W* message) = 0;
  virtual void Finish(const grpc::Status& status) = 0;

 protected:
  ~StreamOps() = default;
};
}  // namespace server_loop_internal

// One streaming call's behaviour, as with gRPC's callback reactors:
//  - OnStart comes first, once the reactor is bound to its call: start reading or
//    writing there, not in the constructor;
//  - at most one read and one write may be in flight (the reactor keeps to that);
//  - a Start... or Finish after Finish is ignored, and no reaction comes for it; a Finish
//    while a write is in flight goes out after that write;
//  - OnCancel comes once if the call was cancelled (the client went away, a deadline
//    passed, or the server called TryCancel); it may come while another reaction runs;
//  - OnDone comes last, once Finish has completed and no read or write is in flight. The
//    call's context is gone after it returns, and the reactor may delete itself there.
template <typename R, typename W>
class StreamReactor {
 public:
  virtual ~StreamReactor() = default;

  void StartRead(R* message) { ops_->StartRead(message); }
  void StartWrite(const W* message) { ops_->StartWrite(message); }
  void Finish(const grpc::Status& status) { ops_->Finish(status); }

  virtual void OnStart() {}
  virtual void OnReadDone(bool /*ok*/) {}
  virtual void OnWriteDone(bool /*ok*/) {}
  virtual void OnCancel() {}
  virtual void OnDone() = 0;

 private:
  template <typename, typename, typename, typename>
  friend class StreamCall;
  server_loop_internal::StreamOps<R, W>* ops_ = nullptr;
};

template <typename W>
using WriteReactor = StreamReactor<NoRead, W>;

// A streaming method: how to request its calls, and what serves each one. For a
// server-streaming method Req is its request; for a bidi one, NoRead.
template <typename Req, typename R, typename W, typename Stream>
struct StreamMethod {
  using Request = std::function<void(grpc::ServerContext*, Req*, Stream*, void* tag)>;
  // Makes the call's reactor; `request` is null for a bidi method.
  using Factory = std::function<StreamReactor<R, W>*(grpc::ServerContext*, const Req* request)>;
  ServerLoop* loop;
  Request request;
  Factory factory;
  bool factory_may_block = false;  // then it runs on a handler thread
};

template <typename Req, typename R, typename W, typename Stream>
class StreamCall final : public server_loop_internal::StreamOps<R, W> {
 public:
  using Method = StreamMethod<Req, R, W, Stream>;

  static void Accept(std::shared_ptr<const Method> method) {
    auto* call = new StreamCall(std::move(method));
    call->context_.AsyncNotifyWhenDone(&call->done_tag_);
    call->method_->request(&call->context_, &call->request_, &call->stream_, &call->accepted_);
  }

  void StartRead(R* message) override {
    MutexLock lock(&mu_);
    if (finish_started_) return;
    reading_ = true;
    if constexpr (!std::is_same_v<R, NoRead>) {
      stream_.Read(message, &read_done_);
    }
  }
  void StartWrite(const W* message) override {
    MutexLock lock(&mu_);
    if (finish_started_) return;
    writing_ = true;
    stream_.Write(*message, &write_done_);
  }
  void Finish(const grpc::Status& status) override {
    MutexLock lock(&mu_);
    if (finish_started_) return;
    finish_started_ = true;
    if (writing_) {
      deferred_finish_ = status;
    } else {
      stream_.Finish(status, &finish_done_);
    }
  }

 private:
  explicit StreamCall(std::shared_ptr<const Method> method) : method_(std::move(method)) {
    method_->loop->CallStarted();
  }
  ~StreamCall() { method_->loop->CallEnded(); }

  void Accepted(bool ok) {
    if (!ok) {  // the server is shutting down; no done tag comes for a call never begun
      delete this;
      return;
    }
    Accept(method_);
    if (!method_->factory_may_block) {
      Start();
    } else if (!method_->loop->Post([this] { Start(); })) {
      {
        MutexLock lock(&mu_);
        finish_started_ = true;
        stream_.Finish(
            grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                         "the control plane has too many calls waiting; retry with backoff"),
            &finish_done_);
      }
      MarkStarted();
    }
  }

  void Start() {
    StreamReactor<R, W>* reactor =
        method_->factory(&context_, std::is_same_v<Req, NoRead> ? nullptr : &request_);
    reactor->ops_ = this;
    reactor_.store(reactor);
    reactor->OnStart();
    MarkStarted();
  }

  // The reactor (if any) has started: a cancellation seen meanwhile is passed on now.
  void MarkStarted() {
    bool cancel;
    {
      MutexLock lock(&mu_);
      started_ = true;
      cancel = done_ && cancelled_ && !cancel_told_ && reactor_.load() != nullptr;
      if (cancel) cancel_told_ = true;
    }
    if (cancel) reactor_.load()->OnCancel();
    MaybeDone();
  }

  void ReadDone(bool ok) {
    {
      MutexLock lock(&mu_);
      reading_ = false;
    }
    reactor_.load()->OnReadDone(ok);
    MaybeDone();
  }
  void WriteDone(bool ok) {
    {
      MutexLock lock(&mu_);
      writing_ = false;
      if (deferred_finish_.has_value()) {
        stream_.Finish(*deferred_finish_, &finish_done_);
        deferred_finish_.reset();
      }
    }
    reactor_.load()->OnWriteDone(ok);
    MaybeDone();
  }
  void FinishDone(bool) {
    {
      MutexLock lock(&mu_);
      finished_ = true;
    }
    MaybeDone();
  }
  void Done(bool) {
    bool cancel;
    {
      MutexLock lock(&mu_);
      done_ = true;
      cancelled_ = context_.IsCancelled();
      cancel = cancelled_ && started_ && reactor_.load() != nullptr && !cancel_told_;
      if (cancel) cancel_told_ = true;
    }
    if (cancel) reactor_.load()->OnCancel();
    MaybeDone();
  }

  void MaybeDone() {
    StreamReactor<R, W>* reactor;
    {
      MutexLock lock(&mu_);
      if (!started_ || !finished_ || !done_ || reading_ || writing_ || ended_) return;
      ended_ = true;
      reactor = reactor_.load();
    }
    if (reactor != nullptr) reactor->OnDone();
    delete this;
  }

  const std::shared_ptr<const Method> method_;
  grpc::ServerContext context_;
  Req request_;
  Stream stream_{&context_};
  MethodTag<StreamCall> accepted_{this, &StreamCall::Accepted};
  MethodTag<StreamCall> read_done_{this, &StreamCall::ReadDone};
  MethodTag<StreamCall> write_done_{this, &StreamCall::WriteDone};
  MethodTag<StreamCall> finish_done_{this, &StreamCall::FinishDone};
  MethodTag<StreamCall> done_tag_{this, &StreamCall::Done};

  // Set once, before the reactor's first operation; null if the call was refused.
  std::atomic<StreamReactor<R, W>*> reactor_{nullptr};
  Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> deferred_finish_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_told_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

// Serves a bidi-streaming method: `factory` makes each call's reactor.
template <typename R, typename W>
void ServeBidi(ServerLoop* loop,
               std::function<void(grpc::ServerContext*, grpc::ServerAsyncReaderWriter<W, R>*,
                                  grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*)>
                   request,
               std::function<StreamReactor<R, W>*(grpc::ServerContext*)> factory,
               bool factory_may_block = false) {
  using Stream = grpc::ServerAsyncReaderWriter<W, R>;
  auto method = std::make_shared<StreamMethod<NoRead, R, W, Stream>>();
  method->loop = loop;
  grpc::ServerCompletionQueue* cq = loop->cq();
  method->request = [request, cq](grpc::ServerContext* context, NoRead*, Stream* stream,
                                  void* tag) { request(context, stream, cq, cq, tag); };
  method->factory = [factory](grpc::ServerContext* context, const NoRead*) {
    return factory(context);
  };
  method->factory_may_block = factory_may_block;
  for (int i = 0; i < kStreamAccepts; ++i) StreamCall<NoRead, R, W, Stream>::Accept(method);
}

// Serves a server-streaming method: `make` (a method of `impl`, on a handler thread)
// makes each call's reactor from its request.
template <typename Service, typename Req, typename W, typename Impl>
void ServeServerStream(ServerLoop* loop,
                       typename server_loop_internal::Identity<Service>::type* service,
                       void (Service::*request)(grpc::ServerContext*, Req*,
                                                grpc::ServerAsyncWriter<W>*, grpc::CompletionQueue*,
                                                grpc::ServerCompletionQueue*, void*),
                       Impl* impl,
                       WriteReactor<W>* (Impl::*make)(grpc::ServerContext*, const Req*)) {
  using Stream = grpc::ServerAsyncWriter<W>;
  auto method = std::make_shared<StreamMethod<Req, NoRead, W, Stream>>();
  method->loop = loop;
  grpc::ServerCompletionQueue* cq = loop->cq();
  method->request = [service, request, cq](grpc::ServerContext* context, Req* req, Stream* stream,
                                           void* tag) {
    (service->*request)(context, req, stream, cq, cq, tag);
  };
  method->factory = [impl, make](grpc::ServerContext* context, const Req* req) {
    return (impl->*make)(context, req);
  };
  method->factory_may_block = true;
  for (int i = 0; i < kUnaryAccepts; ++i) StreamCall<Req, NoRead, W, Stream>::Accept(method);
}

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_SERVER_LOOP_H_
