#include "controlplane/distribute/agent_service.h"

#include <algorithm>
#include <deque>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/agent_protocol.h"
#include "common/authorization.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "grpc/grpc_security_constants.h"

namespace gitfleet {
namespace {

constexpr char kVersion[] = "gitfleet-controlplane/0.1";
constexpr char kAgentUriPrefix[] = "gitfleet://cluster/";
// A handshake wait or welcome write longer than this is logged: agents give a stream up
// after their welcome timeout (60 s), and this says where the time went.
constexpr absl::Duration kSlowHandshake = absl::Seconds(5);

std::string BearerToken(const grpc::ServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  std::optional<absl::string_view> token =
      BearerCredential(absl::string_view(it->second.data(), it->second.size()));
  return token.has_value() ? std::string(*token) : "";
}

// Wraps the shared serialized bytes in a slice that keeps them alive: every agent that
// needs the same message gets the same bytes, serialized once, never copied.
grpc::ByteBuffer Share(std::shared_ptr<const EncodedMessage> message) {
  auto* holder = new std::shared_ptr<const EncodedMessage>(std::move(message));
  grpc::Slice slice(
      const_cast<char*>((*holder)->bytes.data()), (*holder)->bytes.size(),
      [](void* p) { delete static_cast<std::shared_ptr<const EncodedMessage>*>(p); }, holder);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace

// What a hello may carry: everything in it is kept per cluster, so all of it is bounded.
absl::Status ValidateClusterFacts(const std::string& kubernetes_version,
                                  const google::protobuf::RepeatedPtrField<std::string>& apis) {
  if (kubernetes_version.size() > 64 ||
      std::any_of(kubernetes_version.begin(), kubernetes_version.end(),
                  [](char c) { return c <= ' ' || c > '~'; })) {
    return absl::InvalidArgumentError(
        "kubernetes version is longer than 64 characters or not printable");
  }
  if (apis.size() > kMaxClusterApiVersions) {
    return absl::InvalidArgumentError(
        absl::StrCat(apis.size(), " API versions; at most ", kMaxClusterApiVersions));
  }
  for (const std::string& api : apis) {
    if (api.empty() || api.size() > static_cast<size_t>(kMaxApiVersionBytes) ||
        std::any_of(api.begin(), api.end(),
                    [](char c) { return c <= ' ' || c > '~' || c == ','; })) {
      return absl::InvalidArgumentError(absl::StrCat("API version \"", api.substr(0, 64),
                                                     "\" is empty, too long or not printable"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateHello(const v1::Hello& hello) {
  if (absl::Status s = ValidateClusterName(hello.cluster()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("hello: ", s.message()));
  }
  constexpr int kMaxLabels = 64;
  constexpr size_t kMaxLabelBytes = 316;  // a qualified key (253 + 63) or a value
  constexpr int kMaxHeld = 2048;          // with names and revisions, within max_hello_bytes
  if (hello.labels_size() > kMaxLabels) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello: ", hello.labels_size(), " labels; at most ", kMaxLabels));
  }
  for (const auto& [key, value] : hello.labels()) {
    if (key.empty() || key.size() > kMaxLabelBytes || value.size() > kMaxLabelBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("hello: label \"", key.substr(0, 64), "\" is empty or too long"));
    }
  }
  if (hello.held_size() > kMaxHeld) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello: ", hello.held_size(), " bundles held; at most ", kMaxHeld));
  }
  for (const v1::HeldRevision& held : hello.held()) {
    if (!ValidateName("bundle", held.bundle()).ok() || held.revision().size() > 128) {
      return absl::InvalidArgumentError(absl::StrCat("hello: held bundle \"",
                                                     held.bundle().substr(0, 64),
                                                     "\" is not a bundle name with a revision"));
    }
  }
  if (hello.fleet_id().size() > 128 || hello.agent_version().size() > 256) {
    return absl::InvalidArgumentError("hello: fleet id or agent version too long");
  }
  if (absl::Status facts = ValidateClusterFacts(hello.kubernetes_version(), hello.api_versions());
      !facts.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("hello: ", facts.message()));
  }
  if (!hello.api_versions_digest().empty() && !IsApiVersionsDigest(hello.api_versions_digest())) {
    return absl::InvalidArgumentError(
        "hello: api_versions_digest is not an API list's digest (24 lowercase hex digits)");
  }
  return absl::OkStatus();
}

// Everything else an agent sends names a bundle it holds; the control plane keys state by
// it, so it must be a bundle name, and what it stores from it is bounded by the hub.
absl::Status ValidateAgentMessage(const v1::AgentMessage& message) {
  constexpr size_t kMaxRevisionBytes = 128;
  auto check = [kMaxRevisionBytes](const char* what, const std::string& bundle,
                                   const std::string& revision) -> absl::Status {
    if (absl::Status s = ValidateName("bundle", bundle); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
    }
    if (revision.size() > kMaxRevisionBytes) {
      return absl::InvalidArgumentError(absl::StrCat(what, " for bundle ", bundle, ": revision of ",
                                                     revision.size(), " bytes; at most ",
                                                     kMaxRevisionBytes));
    }
    return absl::OkStatus();
  };
  switch (message.message_case()) {
    case v1::AgentMessage::kAck:
      return check("ack", message.ack().bundle(), message.ack().revision());
    case v1::AgentMessage::kStatus:
      return check("status", message.status().bundle(), message.status().revision());
    case v1::AgentMessage::kDiff:
      return check("diff", message.diff().bundle(), message.diff().revision());
    case v1::AgentMessage::kFacts:
      if (absl::Status facts = ValidateClusterFacts(message.facts().kubernetes_version(),
                                                    message.facts().api_versions());
          !facts.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("facts: ", facts.message()));
      }
      return absl::OkStatus();
    case v1::AgentMessage::kCondition:
      if (message.condition().type().empty() || message.condition().type().size() > 63 ||
          message.condition().reason().size() > 128) {
        return absl::InvalidArgumentError(
            "condition: type must be 1-63 bytes and reason at most 128");
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// One agent stream. Reads run back to back; at most one write is in flight, and the
// set of bundles waiting for a write coalesces, so a slow agent holds one entry per
// bundle however many revisions went by. Owned by itself until OnDone, and by the Hub
// through shared_ptr while connected.
class AgentStream : public StreamReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                    public AgentConnection,
                    public std::enable_shared_from_this<AgentStream> {
 public:
  AgentStream(grpc::ServerContext* context, AgentServiceImpl* service, Hub* hub,
              ClusterRegistry* tokens, ControlPlaneMetrics& metrics)
      : context_(context),
        service_(service),
        hub_(hub),
        tokens_(tokens),
        metrics_(metrics),
        token_(BearerToken(context)),
        peer_(context->peer()),
        messages_(service->limits().messages_per_second, service->limits().message_burst) {}

  void Begin(std::shared_ptr<AgentStream> self) {
    MutexLock lock(&mu_);
    self_ = std::move(self);
    opened_ = absl::Now();
  }

  void OnStart() override {
    std::shared_ptr<AgentStream> self;
    {
      MutexLock lock(&mu_);
      self = self_;
    }
    service_->Admit(std::move(self));
  }

  // Given a handshake slot: read the hello, within the hello timeout.
  void StartHandshake() {
    bool ended;
    {
      MutexLock lock(&mu_);
      in_handshake_ = true;
      ended = done_ || finished_;
      if (!ended) {
        // A stream that waited long for its slot is the first sign of agents left
        // unwelcomed (an agent gives a stream up after its welcome timeout, 60 s).
        int64_t skipped = 0;
        if (const absl::Duration waited = absl::Now() - opened_;
            waited > kSlowHandshake && service_->MayLogSlowHandshake(&skipped)) {
          GF_LOG(WARNING) << "a stream from " << peer_ << " waited " << FormatSeconds(waited)
                          << " for a handshake slot ("
                          << service_->limits().max_concurrent_handshakes << " at once)"
                          << Skipped(skipped);
        }
        StartHelloReadLocked();
      }
    }
    if (ended) ReleaseHandshake();
  }

  void StartHelloReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    {
      std::weak_ptr<AgentStream> weak = weak_from_this();
      hello_alarm_ = LoopAlarm::Set(
          service_->loop(), absl::Now() + service_->limits().hello_timeout, [weak](bool fired) {
            // Not fired: cancelled, the hello came or the stream ended.
            if (!fired) return;
            if (auto stream = weak.lock()) stream->HelloTimedOut();
          });
      StartRead(&in_);  // under mu_, so that no Finish can come between
    }
  }

  // No handshake slot and no room to wait for one.
  void RefuseBusy(size_t waiting) {
    metrics_.agent_limits.Add({{"limit", "handshake_queue"}}).Increment();
    metrics_.agent_rejections.Add({{"reason", "limit"}}).Increment();
    FinishOnce(ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat(waiting,
                     " connections are waiting for a handshake already; reconnect with "
                     "backoff"))));
  }

  // The client went away, maybe while waiting for a handshake with no read pending, when
  // only a Finish of ours lets the stream end.
  void OnCancel() override { FinishOnce(grpc::Status::CANCELLED); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (session_ == 0) ReleaseHandshake();
      FinishOnce(grpc::Status::OK);
      return;
    }
    const AgentLimits& limits = service_->limits();
    if (session_ == 0 && in_.Length() > limits.max_hello_bytes) {
      Limit("hello_size", absl::StrCat("hello of ", in_.Length(), " bytes is over the limit of ",
                                       limits.max_hello_bytes, " bytes"));
      return;
    }
    if (in_.Length() > limits.max_message_bytes) {
      Limit("message_size",
            absl::StrCat("agent message of ", in_.Length(), " bytes is over the limit of ",
                         limits.max_message_bytes, " bytes"));
      return;
    }
    if (!messages_.Take(service_->limits().clock->Now())) {
      Limit("message_rate",
            absl::StrCat("more than ", limits.messages_per_second, " messages per second (burst ",
                         limits.message_burst, ") from ", Who(), "; reconnect with backoff"));
      return;
    }
    grpc::Status parsed = grpc::SerializationTraits<v1::AgentMessage>::Deserialize(&in_, &message_);
    if (!parsed.ok()) {
      Reject("protocol", absl::InvalidArgumentError(
                             absl::StrCat("cannot parse agent message: ", parsed.error_message())));
      return;
    }
    if (absl::Status valid = ValidateAgentMessage(message_); !valid.ok()) {
      Reject("protocol", valid);
      return;
    }
    if (session_ == 0) {
      if (!message_.has_hello()) {
        Reject("protocol",
               absl::FailedPreconditionError("the first message on a stream must be a hello"));
        return;
      }
      if (!Hello(message_.hello())) return;
    } else if (message_.has_ack()) {
      const v1::Ack& ack = message_.ack();
      if (ack.has_status() && !ack.status().bundle().empty() &&
          ack.status().bundle() != ack.bundle()) {
        Reject("protocol", absl::InvalidArgumentError(absl::StrCat(
                               "the ack for bundle \"", ack.bundle(),
                               "\" carries the status of bundle \"", ack.status().bundle(), "\"")));
        return;
      }
      hub_->OnAck(session_, ack);
    } else if (message_.has_status()) {
      hub_->OnStatus(session_, message_.status());
    } else if (message_.has_condition()) {
      hub_->OnCondition(session_, message_.condition());
    } else if (message_.has_facts()) {
      hub_->OnFacts(session_, message_.facts());
    } else if (message_.has_diff()) {
      hub_->OnDiff(session_, message_.diff());
    } else if (message_.has_hello()) {
      Reject("protocol", absl::FailedPreconditionError("hello sent twice on one stream"));
      return;
    } else {
      Reject("protocol", absl::InvalidArgumentError("empty or unknown agent message"));
      return;
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    {
      MutexLock lock(&mu_);
      writing_ = false;
      out_.Clear();
      if (welcome_pending_) WelcomeWrittenLocked(ok);
      if (!ok) {
        closing_ = true;
        return;  // the stream is broken; OnReadDone(false) finishes it
      }
      if (close_status_.has_value()) {
        grpc::Status status = *close_status_;
        close_status_.reset();
        finished_ = true;
        Finish(status);
        return;
      }
    }
    MaybeWrite();
  }

  void OnDone() override {
    if (session_ != 0) hub_->Disconnect(session_);
    ReleaseHandshake();
    std::shared_ptr<AgentStream> self;
    {
      MutexLock lock(&mu_);
      if (hello_alarm_ != nullptr) hello_alarm_->Cancel();  // its tag only goes on the queue
      done_ = true;
      metrics_.queued_updates.Decrement(static_cast<double>(pending_.size()));
      pending_.clear();
      self = std::move(self_);
    }
    // `self` may be the last reference: this object can be deleted on return.
  }

  void Notify(const std::string& bundle) override {
    {
      MutexLock lock(&mu_);
      if (done_ || closing_) return;
      if (pending_.insert(bundle).second) {
        metrics_.queued_updates.Increment();
      } else {
        metrics_.coalesced_updates.Increment();
      }
    }
    MaybeWrite();
  }

  void NotifyControl() override {
    {
      MutexLock lock(&mu_);
      if (done_ || closing_) return;
      control_pending_ = true;
    }
    MaybeWrite();
  }

  void Close(const absl::Status& status) override {
    MutexLock lock(&mu_);
    if (done_ || finished_) return;
    closing_ = true;
    if (int64_t spread = service_->reconnect_spread_ms(); spread > 0) {
      context_->AddTrailingMetadata(kReconnectSpreadHeader, std::to_string(spread));
    }
    if (writing_) {
      close_status_ = ToGrpcStatus(status);
    } else {
      finished_ = true;
      Finish(ToGrpcStatus(status));
    }
  }

 private:
  void HelloTimedOut() {
    MutexLock lock(&mu_);
    if (done_ || finished_ || !in_handshake_ || hello_seen_) return;
    metrics_.agent_limits.Add({{"limit", "hello_timeout"}}).Increment();
    metrics_.agent_rejections.Add({{"reason", "limit"}}).Increment();
    // Under mu_: OnDone (which also takes it) cannot return, and the call free the
    // context, meanwhile. OnCancel comes later on the loop's thread, never inline here.
    context_->TryCancel();  // the pending read fails; OnReadDone(false) finishes
  }

  // Gives the handshake slot back, once, so the next waiting stream may start.
  void ReleaseHandshake() {
    {
      MutexLock lock(&mu_);
      if (!in_handshake_) return;
      in_handshake_ = false;
    }
    service_->HandshakeDone();
  }

  bool Hello(const v1::Hello& hello) {
    {
      MutexLock lock(&mu_);
      hello_seen_ = true;
      if (hello_alarm_ != nullptr) hello_alarm_->Cancel();
    }
    bool ok = Authenticate(hello);
    ReleaseHandshake();  // the welcome is computed and its write started, or we refused
    return ok;
  }

  // Records a refusal where the cluster's operator sees it (cluster list) when the hub
  // knows the cluster; true when it is worth a log line: a known cluster's first refusal
  // since it last connected (or for a new reason), or a name's first ever (bounded).
  bool Refused(const std::string& cluster, const std::string& why) {
    const bool known_first = hub_->NoteRefused(cluster, why);
    return known_first || (!hub_->AdmitsCluster(cluster, 0) && tokens_->FirstRefusal(cluster));
  }

  bool Authenticate(const v1::Hello& hello) {
    absl::Status valid = ValidateHello(hello);
    if (!valid.ok()) {
      Reject("invalid_hello", valid);
      return false;
    }
    // The token first: an unauthenticated client must not spend the cluster's connect
    // budget and lock the real agent out.
    absl::Time old_token_until = absl::InfinitePast();
    if (absl::Status auth = tokens_->Check(hello.cluster(), token_, &old_token_until); !auth.ok()) {
      const std::string why = tokens_->Explain(hello.cluster(), token_);
      if (Refused(hello.cluster(), why)) {
        GF_LOG(WARNING) << "refused agent from " << peer_ << " claiming cluster " << hello.cluster()
                        << ": " << why << " (logged once until it connects)";
      }
      Reject("unauthenticated", auth);
      return false;
    }
    if (absl::Status named = CertificateNames(hello.cluster()); !named.ok()) {
      if (Refused(hello.cluster(), std::string(named.message()))) {
        GF_LOG(WARNING) << "refused agent from " << peer_ << ": " << named.message()
                        << " (logged once until it connects)";
      }
      Reject("unauthenticated", named);
      return false;
    }
    if (!hub_->AdmitsCluster(hello.cluster(), kMaxClusters)) {
      Reject("too_many_clusters",
             absl::ResourceExhaustedError(
                 absl::StrCat("cluster ", hello.cluster(), ": the control plane knows ",
                              kMaxClusters, " clusters, the most it takes; a new one is refused")));
      return false;
    }
    cluster_ = hello.cluster();
    if (!service_->AllowConnect(hello.cluster())) {
      Limit("connect_rate",
            absl::StrCat("cluster ", hello.cluster(), " connected more than ",
                         service_->limits().connect_burst, " times in quick succession; wait ",
                         absl::FormatDuration(service_->limits().connect_interval),
                         " before reconnecting"));
      return false;
    }
    {
      MutexLock lock(&mu_);
      writing_ = true;  // the welcome goes first
    }
    session_ = hub_->Connect(hello, peer_, shared_from_this());
    if (old_token_until != absl::InfinitePast()) {
      hub_->SetOldToken(hello.cluster(), old_token_until);
      if (old_token_until == absl::InfiniteFuture()) {
        GF_LOG(INFO) << "cluster " << hello.cluster() << " connected with the token of the "
                     << "earlier of its two --agent-tokens lines";
      } else {
        GF_LOG(INFO) << "cluster " << hello.cluster() << " connected with the token a rotation "
                     << "replaced, which works until " << FormatUtc(old_token_until);
      }
    }
    GF_LOG(INFO) << "cluster " << hello.cluster() << " connected from " << peer_ << " ("
                 << hello.held_size() << " bundles held)";
    {
      MutexLock lock(&mu_);
      v1::ControlMessage welcome;
      *welcome.mutable_welcome() = hub_->WelcomeFor(session_);
      welcome.mutable_welcome()->set_controlplane_version(kVersion);
      welcome.mutable_welcome()->set_ack_carries_status(true);
      out_ = Share(EncodedMessage::Encode(std::move(welcome)));
      welcome_pending_ = true;
      welcome_started_ = absl::Now();
      welcome_cluster_ = hello.cluster();
      StartWrite(&out_);
    }
    return true;
  }

  // The welcome's write ended: a failure or a slow one is said (each would leave the agent
  // waiting for it; a broken stream ends, a slow one holds the agent that long).
  void WelcomeWrittenLocked(bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    welcome_pending_ = false;
    const absl::Duration took = absl::Now() - welcome_started_;
    int64_t skipped = 0;
    if ((!ok || took > kSlowHandshake) && !service_->MayLogSlowHandshake(&skipped)) return;
    if (!ok) {
      GF_LOG(WARNING) << "the welcome to cluster " << welcome_cluster_
                      << " could not be written (the stream broke after " << FormatSeconds(took)
                      << ")" << Skipped(skipped);
    } else if (took > kSlowHandshake) {
      GF_LOG(WARNING) << "the welcome to cluster " << welcome_cluster_ << " took "
                      << FormatSeconds(took) << " to write" << Skipped(skipped);
    } else {
      GF_LOG(DEBUG) << "welcomed cluster " << welcome_cluster_ << " in "
                    << FormatSeconds(absl::Now() - opened_) << " from the stream's start";
    }
  }

  static std::string Skipped(int64_t skipped) {
    return skipped > 0 ? absl::StrCat(" (", skipped, " more not logged since the last line)") : "";
  }

  static std::string FormatSeconds(absl::Duration d) {
    return absl::StrCat(absl::Trunc(d, absl::Milliseconds(1)) / absl::Seconds(1), " s");
  }

  // With mTLS, the agent's certificate must name the cluster it speaks for: its CN, or a
  // SAN URI gitfleet://cluster/NAME. Without a client certificate there is nothing to check.
  absl::Status CertificateNames(const std::string& cluster) const {
    std::shared_ptr<const grpc::AuthContext> auth = context_->auth_context();
    if (auth == nullptr || !auth->IsPeerAuthenticated()) return absl::OkStatus();
    std::vector<std::string> names;
    for (const grpc::string_ref& cn : auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
      names.emplace_back(cn.data(), cn.size());
      if (names.back() == cluster) return absl::OkStatus();
    }
    for (const grpc::string_ref& san : auth->FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME)) {
      absl::string_view value(san.data(), san.size());
      if (value == absl::StrCat(kAgentUriPrefix, cluster)) return absl::OkStatus();
      if (absl::StartsWith(value, kAgentUriPrefix)) names.emplace_back(value);
    }
    return absl::UnauthenticatedError(absl::StrCat(
        "the client certificate names ", names.empty() ? "no cluster" : absl::StrJoin(names, ", "),
        ", not cluster \"", cluster, "\" (want CN=", cluster, " or a SAN URI ", kAgentUriPrefix,
        cluster, ")"));
  }

  std::string Who() const { return cluster_.empty() ? peer_ : "cluster " + cluster_; }

  void Limit(const char* limit, const std::string& message) {
    metrics_.agent_limits.Add({{"limit", limit}}).Increment();
    Reject("limit", absl::ResourceExhaustedError(message));
  }

  void Reject(const char* reason, const absl::Status& status) {
    metrics_.agent_rejections.Add({{"reason", reason}}).Increment();
    FinishOnce(ToGrpcStatus(status));
  }

  void FinishOnce(const grpc::Status& status) {
    MutexLock lock(&mu_);
    if (finished_) return;
    closing_ = true;
    if (writing_) {
      if (!close_status_.has_value()) close_status_ = status;
      return;
    }
    finished_ = true;
    Finish(status);
  }

  void MaybeWrite() {
    while (true) {
      std::string bundle;
      bool control = false;
      {
        MutexLock lock(&mu_);
        if (writing_ || closing_ || done_ || (pending_.empty() && !control_pending_)) return;
        // Control messages (diff requests, forget orders) go before bundle updates.
        if (control_pending_) {
          control = true;
          control_pending_ = false;
        } else {
          bundle = *pending_.begin();
          pending_.erase(pending_.begin());
          metrics_.queued_updates.Decrement();
        }
        writing_ = true;
      }
      std::shared_ptr<const EncodedMessage> message =
          control ? hub_->NextControlMessage(session_) : hub_->NextMessage(session_, bundle);
      MutexLock lock(&mu_);
      if (message == nullptr || closing_ || done_) {
        writing_ = false;
        if (close_status_.has_value() && !finished_) {
          finished_ = true;
          Finish(*close_status_);
          close_status_.reset();
          return;
        }
        continue;
      }
      out_ = Share(std::move(message));
      StartWrite(&out_);
      return;
    }
  }

  grpc::ServerContext* const context_;
  AgentServiceImpl* const service_;
  Hub* const hub_;
  ClusterRegistry* const tokens_;
  ControlPlaneMetrics& metrics_;
  const std::string token_;
  const std::string peer_;
  std::string cluster_;       // from the hello; touched only by the read chain
  TokenBucket messages_;      // touched only by the read chain
  grpc::ByteBuffer in_;       // touched only by the read chain
  v1::AgentMessage message_;  // touched only by the read chain
  uint64_t session_ = 0;      // set once, on the read chain, before any write

  Mutex mu_;
  bool in_handshake_ ABSL_GUARDED_BY(mu_) = false;  // holds a handshake slot
  bool hello_seen_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time opened_ ABSL_GUARDED_BY(mu_);  // when the stream began
  // The welcome's write, from its start to its end (said when slow or broken; gRPC ends
  // every write before OnDone).
  bool welcome_pending_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time welcome_started_ ABSL_GUARDED_BY(mu_);
  std::string welcome_cluster_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<LoopAlarm> hello_alarm_ ABSL_GUARDED_BY(mu_);  // while the hello is awaited

  std::shared_ptr<AgentStream> self_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> pending_ ABSL_GUARDED_BY(mu_);
  bool control_pending_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ByteBuffer out_ ABSL_GUARDED_BY(mu_);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> close_status_ ABSL_GUARDED_BY(mu_);
};

void AgentServiceImpl::Serve(ServerLoop* loop) {
  loop_ = loop;
  ServeBidi<grpc::ByteBuffer, grpc::ByteBuffer>(
      loop,
      [this](grpc::ServerContext* context, grpc::GenericServerAsyncReaderWriter* stream,
             grpc::CompletionQueue* new_call_cq, grpc::ServerCompletionQueue* cq,
             void* tag) { RequestConnect(context, stream, new_call_cq, cq, tag); },
      [this](grpc::ServerContext* context) {
        auto stream = std::make_shared<AgentStream>(context, this, hub_, tokens_, metrics_);
        stream->Begin(stream);
        return stream.get();  // it owns itself until OnDone
      });
}

void AgentServiceImpl::Admit(std::shared_ptr<AgentStream> stream) {
  size_t waiting = 0;
  bool refuse = false;
  {
    MutexLock lock(&handshake_mu_);
    if (handshakes_ < limits_.max_concurrent_handshakes) {
      ++handshakes_;
      metrics_.handshakes.Add({{"state", "in_progress"}}).Set(handshakes_);
    } else if (waiting_.size() < limits_.max_waiting_handshakes) {
      waiting_.push_back(stream);
      metrics_.handshakes.Add({{"state", "waiting"}}).Set(static_cast<double>(waiting_.size()));
      return;
    } else {
      waiting = waiting_.size();
      refuse = true;
    }
  }
  if (refuse) {
    stream->RefuseBusy(waiting);
  } else {
    stream->StartHandshake();
  }
}

void AgentServiceImpl::HandshakeDone() {
  std::shared_ptr<AgentStream> next;
  {
    MutexLock lock(&handshake_mu_);
    // The slot passes to the first waiting stream that is still there.
    while (next == nullptr && !waiting_.empty()) {
      next = waiting_.front().lock();
      waiting_.pop_front();
    }
    if (next == nullptr) --handshakes_;
    metrics_.handshakes.Add({{"state", "in_progress"}}).Set(handshakes_);
    metrics_.handshakes.Add({{"state", "waiting"}}).Set(static_cast<double>(waiting_.size()));
  }
  if (next != nullptr) next->StartHandshake();
}

bool AgentServiceImpl::MayLogSlowHandshake(int64_t* skipped) {
  const int64_t now = absl::ToUnixMillis(absl::Now());
  int64_t next = next_slow_log_ms_.load();
  if (now < next || !next_slow_log_ms_.compare_exchange_strong(next, now + 10000)) {
    slow_not_logged_.fetch_add(1);
    return false;
  }
  *skipped = slow_not_logged_.exchange(0);
  return true;
}

bool AgentServiceImpl::AllowConnect(const std::string& cluster) {
  constexpr size_t kMaxTrackedClusters = 100000;
  MutexLock lock(&mu_);
  auto it = connects_.find(cluster);
  if (it == connects_.end()) {
    if (connects_.size() >= kMaxTrackedClusters) connects_.clear();
    it = connects_
             .emplace(cluster, TokenBucket(1.0 / absl::ToDoubleSeconds(limits_.connect_interval),
                                           limits_.connect_burst))
             .first;
  }
  return it->second.Take(limits_.clock->Now());
}

}  // namespace gitfleet
