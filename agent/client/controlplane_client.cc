#include "agent/client/controlplane_client.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/agent_protocol.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/thread_name.h"

namespace gitfleet {

// One stream attempt. At most one write is in flight; the rest wait in order.
class ControlPlaneClient::Stream
    : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ControlMessage> {
 public:
  explicit Stream(const Callbacks& callbacks) : callbacks_(callbacks) {}

  // Binds the call and queues the hello, its first message: from then on others may
  // Enqueue (their writes wait for the call to start, and go after the hello). Nothing is
  // sent or read before StartCall.
  void Bind(v1::AgentService::Stub* stub, const std::string& token, const v1::Hello& hello) {
    if (!token.empty()) context_.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    stub->async()->Connect(&context_, this);
    v1::AgentMessage message;
    *message.mutable_hello() = hello;
    Enqueue(message);
    // Writes start on other threads (Send): the hold keeps the call, and so StartWrite,
    // valid until the stream's read side has ended and no write is in flight.
    AddHold();
    StartRead(&in_);
  }
  void Go() { StartCall(); }

  bool Enqueue(const v1::AgentMessage& message) {
    MutexLock lock(&mu_);
    if (done_ || closing_) return false;
    queue_.push_back(message);
    if (!writing_) WriteNextLocked();
    return true;
  }

  void Cancel() { context_.TryCancel(); }

  // Blocks until the control plane welcomed the stream or it is over, at most `timeout`;
  // returns whether either happened.
  bool AwaitWelcome(absl::Duration timeout) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return welcomed_ || done_; }, timeout);
  }

  // Blocks until the stream is over; returns why.
  absl::Status Await() {
    MutexLock lock(&mu_);
    mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_; });
    return status_;
  }

  bool welcomed() {
    MutexLock lock(&mu_);
    return welcomed_;
  }

  // How far the stream got, for an error that says where a welcome went missing.
  std::string Progress(absl::Time started) {
    MutexLock lock(&mu_);
    if (hello_written_ == absl::InfinitePast()) {
      return "the hello was never written (the connection did not carry it)";
    }
    return absl::StrCat(
        "the hello was written ",
        absl::FormatDuration(absl::Trunc(hello_written_ - started, absl::Milliseconds(1))),
        " after the stream began, and no message came back");
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The stream is over: no write starts from now on; the hold goes once none is in
      // flight, and OnDone follows with the status.
      bool release;
      {
        MutexLock lock(&mu_);
        closing_ = true;
        release = !writing_ && !released_;
        released_ = released_ || release;
      }
      if (release) RemoveHold();
      return;
    }
    if (in_.has_welcome()) {
      {
        MutexLock lock(&mu_);
        welcomed_ = true;
      }
      callbacks_.on_connected(in_.welcome());
    } else {
      callbacks_.on_message(in_);
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    bool release = false;
    {
      MutexLock lock(&mu_);
      writing_ = false;
      if (ok && hello_written_ == absl::InfinitePast()) hello_written_ = absl::Now();
      if (ok && !closing_ && !queue_.empty()) {
        WriteNextLocked();
      } else if (closing_ && !released_) {
        released_ = true;
        release = true;
      }
    }
    if (release) RemoveHold();
  }

  void OnDone(const grpc::Status& status) override {
    // A control plane that is stopping says over what window its agents should come back.
    absl::Duration spread = absl::ZeroDuration();
    const auto& trailers = context_.GetServerTrailingMetadata();
    auto it = trailers.find(kReconnectSpreadHeader);
    int64_t ms = 0;
    if (it != trailers.end() &&
        absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms) && ms > 0) {
      spread = std::min(absl::Milliseconds(ms), absl::Minutes(1));  // whatever it says
    }
    MutexLock lock(&mu_);
    status_ = FromGrpcStatus(status);
    spread_ = spread;
    done_ = true;
  }

  absl::Duration spread() {
    MutexLock lock(&mu_);
    return spread_;
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    out_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&out_);
  }

  const Callbacks& callbacks_;
  grpc::ClientContext context_;
  v1::ControlMessage in_;
  Mutex mu_;
  std::deque<v1::AgentMessage> queue_ ABSL_GUARDED_BY(mu_);
  v1::AgentMessage out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time hello_written_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // its first write
  bool closing_ ABSL_GUARDED_BY(mu_) = false;   // the read side ended: no more writes
  bool released_ ABSL_GUARDED_BY(mu_) = false;  // the hold was removed
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  absl::Duration spread_ ABSL_GUARDED_BY(mu_);
};

ControlPlaneClient::ControlPlaneClient(Options options, Callbacks callbacks, AgentMetrics& metrics)
    : options_(std::move(options)), callbacks_(std::move(callbacks)), metrics_(metrics) {
  grpc::ChannelArguments& args = channel_args_;
  args.SetMaxReceiveMessageSize(options_.max_message_bytes);
  args.SetMaxSendMessageSize(options_.max_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, options_.bdp_probe ? 1 : 0);
  // We run our own backoff; keep gRPC's reconnect delays short and bounded.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel(options_.target, options_.credentials, args);
  stub_ = v1::AgentService::NewStub(channel_);
}

ControlPlaneClient::~ControlPlaneClient() { Stop(); }

void ControlPlaneClient::Start() {
  thread_ = std::thread([this] {
    NameThisThread("gf-dial");
    DialLoop();
  });
}

void ControlPlaneClient::Stop() {
  std::shared_ptr<Stream> stream;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    stream = current_;
  }
  if (stream != nullptr) stream->Cancel();
  if (thread_.joinable()) thread_.join();
}

bool ControlPlaneClient::Send(const v1::AgentMessage& message) {
  std::shared_ptr<Stream> stream;
  {
    MutexLock lock(&mu_);
    stream = current_;
  }
  return stream != nullptr && stream->Enqueue(message);
}

void ControlPlaneClient::DialLoop() {
  Redial redial(options_.min_backoff, options_.max_backoff);
  std::string last_error;
  for (bool first = true;; first = false) {
    if (!first && options_.renewed_credentials) {
      // A connection keeps the certificate it was made with: a renewed one needs a new
      // channel, made before this dial.
      if (std::shared_ptr<grpc::ChannelCredentials> renewed = options_.renewed_credentials()) {
        channel_ = grpc::CreateCustomChannel(options_.target, renewed, channel_args_);
        stub_ = v1::AgentService::NewStub(channel_);
      }
    }
    auto stream = std::make_shared<Stream>(callbacks_);
    absl::Time started = RealClock().Now();
    const std::string token = options_.token ? options_.token() : std::string();
    stream->Bind(stub_.get(), token, callbacks_.hello());
    // Others may send on it once the call is bound and the hello first in line (published
    // before, a status sent while the hello was being built wrote on a call not bound yet,
    // which crashed the agent, and would have gone before the hello), and before the call
    // starts: what the welcome's handler sends (every status again) must find it.
    bool stopping;
    {
      MutexLock lock(&mu_);
      stopping = stopping_;
      if (!stopping) current_ = stream;
    }
    stream->Go();
    // Wait for the welcome or the end, to count the attempt; a welcome that does not come
    // gives the stream up.
    const bool answered = !stopping && stream->AwaitWelcome(options_.welcome_timeout);
    if (stopping || !answered) stream->Cancel();
    if (stopping) {
      stream->Await();
      return;
    }
    absl::Status status = stream->Await();
    if (!answered) {
      status = absl::DeadlineExceededError(absl::StrCat(
          "the control plane took the stream but sent no welcome within ",
          absl::FormatDuration(options_.welcome_timeout), " (", stream->Progress(started), ")"));
    }
    bool welcomed = stream->welcomed();
    {
      MutexLock lock(&mu_);
      current_.reset();
    }
    metrics_.connected.Set(0);
    callbacks_.on_disconnected(status);
    metrics_.connects.Add({{"result", welcomed ? "ok" : "error"}}).Increment();
    // Stopping, the control plane names a window; each agent redials once at a random
    // point of it instead of probing while it restarts.
    absl::Duration delay = redial.After(welcomed, RealClock().Now() - started, stream->spread());
    std::string error =
        status.ok() ? "stream closed by the control plane" : std::string(status.message());
    if (status.code() == absl::StatusCode::kUnauthenticated && options_.token &&
        options_.token() != token) {
      // The token was refused, and its file holds another by now (a rotation: the file
      // got the new token, then the control plane retired the old): the next dial is a
      // new attempt, not a retry of the refused one, so it goes at once.
      redial.Reset();
      delay = absl::ZeroDuration();
      GF_LOG(WARNING) << "control plane " << options_.target << " refused this agent: " << error
                      << "; " << options_.token_origin
                      << " holds a new token: dialling again at once";
    } else if (status.code() == absl::StatusCode::kUnauthenticated) {
      GF_LOG(ERROR) << "control plane " << options_.target << " refused this agent: " << error
                    << " (check " << options_.token_origin << "); retrying in " << delay;
    } else if (error != last_error || welcomed) {
      GF_LOG(WARNING) << "stream to control plane " << options_.target << " ended: " << error
                      << "; retrying in " << delay << " (keeping the last applied state)";
    }
    last_error = error;
    MutexLock lock(&mu_);
    mu_.AwaitWithTimeout([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_; }, delay);
    if (stopping_) return;
  }
}

}  // namespace gitfleet
