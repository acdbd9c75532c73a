#include "bench/swarm.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <deque>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/agent_protocol.h"
#include "common/backoff.h"
#include "common/proto_time.h"
#include "grpcpp/grpcpp.h"
#include "proto/gitfleet/v1/agent.grpc.pb.h"

namespace gitfleet::bench {

// Holders are counted by revision and, under this prefix (no revision id has it), by the
// commit the revision was rendered from.
constexpr char kCommitKey[] = "commit:";

class Stream;

// The lasting part of one simulated agent: identity, channel and what it holds.
class Swarm::Agent : public std::enable_shared_from_this<Swarm::Agent> {
 public:
  Agent(Swarm* swarm, int index)
      : swarm_(swarm),
        name_(absl::StrCat(swarm->options_.name_prefix, index)),
        slow_(index < swarm->options_.slow_agents) {
    const SwarmOptions& o = swarm->options_;
    labels_["env"] = o.envs[index % o.envs.size()];
    labels_["shard"] = absl::StrCat("s", index % std::max(1, o.shards));
    for (const auto& [key, value] : o.extra_labels) labels_[key] = value;
    grpc::ChannelArguments args;
    // Its own subchannel, so its own TCP connection, as a real agent in its own cluster.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);  // as the agent, unless --grpc-bdp-probe
    // No keepalive pings, as before, but said explicitly: gRPC 1.51 turns its client
    // default (INT_MAX ms, meaning "never") into a 24-day keepalive timer that every
    // received message cancels and re-arms. That changes nothing on the wire and cost the
    // swarm 8-25% of its CPU at 10,000 agents (Debian's build also checks every timer in a
    // debug hash table).
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, INT_MAX);
    // As the agent: the redial policy is ours (Redial), so gRPC's own reconnect backoff
    // stays short; its default grows to 120 s and would hold a channel down long after the
    // control plane is back.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetMaxReceiveMessageSize(256 << 20);
    stub_ = v1::AgentService::NewStub(
        grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args));
  }

  void Connect();
  void Send(v1::AgentMessage message, absl::Duration delay);
  void OnMessage(const v1::ControlMessage& message);
  // How long it takes to apply `revision`: its share of apply_time (a slow agent's delay
  // comes on top).
  absl::Duration ApplyTime(const std::string& revision) const;
  // `welcomed`, how long the stream `lived`, and the reconnect window the control plane
  // named when it closed it (zero when none).
  void OnStreamDone(bool welcomed, absl::Duration lived, absl::Duration spread);
  void FlipHealth();
  void Cancel();

  Swarm* const swarm_;
  const std::string name_;
  const bool slow_;
  std::map<std::string, std::string> labels_;
  std::unique_ptr<v1::AgentService::Stub> stub_;

  Mutex mu_;
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::map<std::string, std::string> held_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> held_commit_ ABSL_GUARDED_BY(mu_);  // bundle -> commit
  std::map<std::string, absl::Time> acked_at_ ABSL_GUARDED_BY(mu_);
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;
  Redial redial_ ABSL_GUARDED_BY(mu_){absl::Milliseconds(250), absl::Seconds(30)};  // as the agent
  bool ack_carries_status_ ABSL_GUARDED_BY(mu_) = false;  // from the current welcome
  bool apis_held_ ABSL_GUARDED_BY(mu_) = false;           // from the last welcome
};

// One Connect call. Deletes itself when the call is done.
class Stream : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ControlMessage> {
 public:
  explicit Stream(std::shared_ptr<Swarm::Agent> agent) : agent_(std::move(agent)) {}

  void Begin(const v1::Hello& hello) {
    started_ = absl::Now();
    ++agent_->swarm_->counters().streams;
    if (!agent_->swarm_->options().token.empty()) {
      context_.AddMetadata("authorization",
                           absl::StrCat("Bearer ", agent_->swarm_->options().token));
    }
    agent_->stub_->async()->Connect(&context_, this);
    v1::AgentMessage message;
    *message.mutable_hello() = hello;
    Send(std::move(message));
    StartRead(&in_);
    StartCall();
  }

  // Nothing is written once the stream broke: a write after the call is done is undefined.
  void Send(v1::AgentMessage message) {
    MutexLock lock(&mu_);
    if (broken_) return;
    queue_.push_back(std::move(message));
    if (!writing_) {
      writing_ = true;
      out_ = queue_.front();
      StartWrite(&out_);
    }
  }

  void Cancel() { context_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    MutexLock lock(&mu_);
    queue_.pop_front();
    broken_ |= !ok;
    if (broken_ || queue_.empty()) {
      writing_ = false;
      return;
    }
    out_ = queue_.front();
    StartWrite(&out_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      MutexLock lock(&mu_);
      broken_ = true;  // the server ended the call; OnDone follows
      return;
    }
    if (!welcomed_) {
      welcomed_ = true;
      ++agent_->swarm_->counters().connected;
    }
    ++agent_->swarm_->counters().messages;
    if (in_.has_update()) ++agent_->swarm_->counters().updates;
    size_t size = in_.ByteSizeLong();
    agent_->swarm_->counters().bytes += static_cast<int64_t>(size);
    agent_->OnMessage(in_);
    // Drop a big message now: protobuf would keep its objects for reuse and clear them all
    // on the next (small) message, billing the full sync's cost to the next measurement.
    if (size > (64 << 10)) in_ = v1::ControlMessage();
    StartRead(&in_);
  }

  void OnDone(const grpc::Status& status) override {
    Swarm::Counters& counters = agent_->swarm_->counters();
    if (welcomed_) --counters.connected;
    absl::Duration spread;
    const auto& trailers = context_.GetServerTrailingMetadata();
    auto it = trailers.find(kReconnectSpreadHeader);
    int64_t ms = 0;
    if (it != trailers.end() &&
        absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms)) {
      spread = absl::Milliseconds(ms);
    }
    (void)status;
    agent_->OnStreamDone(welcomed_, absl::Now() - started_, spread);
    // The last touch of the swarm: once no stream is left, its destructor may finish.
    --counters.streams;
    delete this;
  }

 private:
  std::shared_ptr<Swarm::Agent> agent_;
  grpc::ClientContext context_;
  v1::ControlMessage in_;
  bool welcomed_ = false;
  absl::Time started_;
  Mutex mu_;
  std::deque<v1::AgentMessage> queue_ ABSL_GUARDED_BY(mu_);
  v1::AgentMessage out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
};

void Swarm::Agent::Connect() {
  v1::Hello hello;
  hello.set_cluster(name_);
  hello.mutable_labels()->insert(labels_.begin(), labels_.end());
  hello.set_agent_version("gitfleet-swarm/0.1");
  auto* stream = new Stream(shared_from_this());
  {
    MutexLock lock(&mu_);
    if (!swarm_->apis_.empty()) {
      hello.set_api_versions_digest(swarm_->apis_digest_);
      if (!apis_held_ || !swarm_->options_.api_digest) {
        hello.mutable_api_versions()->Assign(swarm_->apis_.begin(), swarm_->apis_.end());
      }
    }
    for (const auto& [bundle, revision] : held_) {
      v1::HeldRevision* held = hello.add_held();
      held->set_bundle(bundle);
      held->set_revision(revision);
    }
    stream_ = stream;
  }
  swarm_->counters_.hello_bytes += static_cast<int64_t>(hello.ByteSizeLong());
  stream->Begin(hello);
}

void Swarm::Agent::Send(v1::AgentMessage message, absl::Duration delay) {
  if (delay > absl::ZeroDuration()) {
    std::weak_ptr<Agent> self = shared_from_this();
    swarm_->Schedule(absl::Now() + delay, [self, message]() mutable {
      if (auto agent = self.lock()) agent->Send(std::move(message), absl::ZeroDuration());
    });
    return;
  }
  MutexLock lock(&mu_);
  if (stream_ != nullptr) stream_->Send(std::move(message));
}

absl::Duration Swarm::Agent::ApplyTime(const std::string& revision) const {
  const int64_t spread = swarm_->apply_time_us_.load();
  if (spread <= 0) return absl::ZeroDuration();
  uint64_t hash = 14695981039346656037ull;  // FNV-1a: the same on every run
  for (const std::string* part : {&name_, &revision}) {
    for (unsigned char c : *part) hash = (hash ^ c) * 1099511628211ull;
  }
  return absl::Microseconds(static_cast<int64_t>(hash % static_cast<uint64_t>(spread)));
}

void Swarm::Agent::OnMessage(const v1::ControlMessage& message) {
  std::vector<v1::AgentMessage> replies;
  absl::Duration delay = slow_ ? swarm_->options_.slow_delay : absl::ZeroDuration();
  if (message.has_welcome()) {
    MutexLock lock(&mu_);
    ack_carries_status_ =
        message.welcome().ack_carries_status() && swarm_->options_.ack_carries_status;
    apis_held_ = message.welcome().api_versions_held();
    if (message.welcome().send_facts() && stream_ != nullptr) {
      v1::AgentMessage facts;
      facts.mutable_facts()->mutable_api_versions()->Assign(swarm_->apis_.begin(),
                                                            swarm_->apis_.end());
      stream_->Send(std::move(facts));
    }
  } else if (message.has_update()) {
    const v1::BundleUpdate& update = message.update();
    v1::AgentMessage ack;
    ack.mutable_ack()->set_bundle(update.bundle());
    ack.mutable_ack()->set_revision(update.revision());
    MutexLock lock(&mu_);
    auto held = held_.find(update.bundle());
    bool base_ok = update.base_revision().empty() ||
                   (held != held_.end() && held->second == update.base_revision());
    std::string before = held != held_.end() ? held->second : "";
    std::string& commit = held_commit_[update.bundle()];
    const std::string commit_before = commit.empty() ? "" : kCommitKey + commit;
    if (!base_ok) {
      ack.mutable_ack()->set_need_full(true);
      held_.erase(update.bundle());
      swarm_->Held(update.bundle(), before, "", absl::Now(), name_);
      swarm_->Held(update.bundle(), commit_before, "", absl::Now(), name_);
      commit.clear();
    } else {
      ack.mutable_ack()->set_ok(true);
      held_[update.bundle()] = update.revision();
      delay += ApplyTime(update.revision());
      absl::Time acked = absl::Now() + delay;
      acked_at_[update.bundle()] = acked;
      swarm_->Held(update.bundle(), before, update.revision(), acked, name_);
      commit = update.commit();
      swarm_->Held(update.bundle(), commit_before, kCommitKey + commit, acked, name_);
      v1::AgentMessage status;
      v1::StatusUpdate* s =
          ack_carries_status_ ? ack.mutable_ack()->mutable_status() : status.mutable_status();
      s->set_bundle(update.bundle());
      s->set_revision(update.revision());
      s->set_commit(update.commit());
      s->set_applied_revision(update.revision());
      s->set_applied_commit(update.commit());
      s->set_sync_state(v1::SYNC_STATE_SYNCED);
      s->set_health(healthy_ ? v1::HEALTH_STATE_HEALTHY : v1::HEALTH_STATE_DEGRADED);
      *s->mutable_applied_time() = ToProtoTime(absl::Now());
      replies.push_back(ack);
      if (!ack_carries_status_) replies.push_back(status);
    }
    if (!base_ok) replies.push_back(ack);
  } else if (message.has_removal()) {
    MutexLock lock(&mu_);
    auto held = held_.find(message.removal().bundle());
    if (held != held_.end()) {
      swarm_->Held(held->first, held->second, "", absl::Now(), name_);
      held_.erase(held);
    }
    auto commit = held_commit_.find(message.removal().bundle());
    if (commit != held_commit_.end()) {
      swarm_->Held(commit->first, kCommitKey + commit->second, "", absl::Now(), name_);
      held_commit_.erase(commit);
    }
    acked_at_.erase(message.removal().bundle());
  }
  for (v1::AgentMessage& reply : replies) Send(std::move(reply), delay);
}

void Swarm::Agent::OnStreamDone(bool welcomed, absl::Duration lived, absl::Duration spread) {
  absl::Duration wait;
  {
    MutexLock lock(&mu_);
    stream_ = nullptr;
    wait = redial_.After(welcomed, lived, spread);
  }
  {
    MutexLock lock(&swarm_->mu_);
    if (swarm_->stopping_) return;
  }
  ++swarm_->counters().reconnects;
  std::weak_ptr<Agent> self = shared_from_this();
  swarm_->Schedule(absl::Now() + wait, [self] {
    if (auto agent = self.lock()) agent->Connect();
  });
}

void Swarm::Agent::FlipHealth() {
  std::vector<v1::AgentMessage> reports;
  {
    MutexLock lock(&mu_);
    healthy_ = !healthy_;
    for (const auto& [bundle, revision] : held_) {
      v1::AgentMessage status;
      v1::StatusUpdate* s = status.mutable_status();
      s->set_bundle(bundle);
      s->set_revision(revision);
      s->set_applied_revision(revision);
      s->set_sync_state(v1::SYNC_STATE_SYNCED);
      s->set_health(healthy_ ? v1::HEALTH_STATE_HEALTHY : v1::HEALTH_STATE_DEGRADED);
      reports.push_back(std::move(status));
    }
  }
  for (v1::AgentMessage& report : reports) Send(std::move(report), absl::ZeroDuration());
  double churn = swarm_->options_.status_churn_per_second;
  std::weak_ptr<Agent> self = shared_from_this();
  swarm_->Schedule(absl::Now() + absl::Seconds(1.0 / churn), [self] {
    if (auto agent = self.lock()) agent->FlipHealth();
  });
}

void Swarm::Agent::Cancel() {
  MutexLock lock(&mu_);
  if (stream_ != nullptr) stream_->Cancel();
}

Swarm::Swarm(SwarmOptions options)
    : options_(std::move(options)), apply_time_us_(absl::ToInt64Microseconds(options_.apply_time)) {
  // A cluster with a few operators: group versions and their kinds, sorted.
  for (int i = 0; i < options_.api_versions; ++i) {
    apis_.push_back(absl::StrCat("g", 1000 + i / 4, ".operators.example.com/v1",
                                 i % 4 == 0 ? "" : absl::StrCat("/Kind", i % 4)));
  }
  std::sort(apis_.begin(), apis_.end());
  if (!apis_.empty()) apis_digest_ = ApiVersionsDigest(apis_);
  scheduler_ = std::thread([this] { RunScheduler(); });
}

Swarm::~Swarm() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    timers_.clear();
  }
  for (auto& agent : agents_) agent->Cancel();
  for (int i = 0; i < 3000 && counters_.streams.load() > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  scheduler_.join();
  agents_.clear();
}

void Swarm::Start() {
  std::mt19937 rng(42);
  for (int i = 0; i < options_.agents; ++i) {
    agents_.push_back(std::make_shared<Agent>(this, i));
  }
  for (int i = 0; i < options_.agents; ++i) {
    agents_[i]->Connect();
    if ((i + 1) % options_.connect_batch == 0) {
      // Let the control plane take this batch in before the next one arrives.
      WaitUntil([&] { return connected() >= i + 1; }, absl::Seconds(30));
    }
    if (options_.status_churn_per_second > 0) {
      std::weak_ptr<Agent> agent = agents_[i];
      double first = std::uniform_real_distribution<double>(
          0.5, 0.5 + 1.0 / options_.status_churn_per_second)(rng);
      Schedule(absl::Now() + absl::Seconds(first), [agent] {
        if (auto a = agent.lock()) a->FlipHealth();
      });
    }
  }
}

int Swarm::connected() const { return counters_.connected.load(); }

void Swarm::Held(const std::string& bundle, const std::string& before, const std::string& after,
                 absl::Time when, const std::string& agent) {
  MutexLock lock(&holders_mu_);
  if (!before.empty()) --holders_[{bundle, before}];
  if (!after.empty()) {
    ++holders_[{bundle, after}];
    if (options_.record_ack_times) ack_times_[{bundle, after}][agent] = when;
    absl::Time& last = last_ack_.try_emplace({bundle, after}, absl::InfinitePast()).first->second;
    last = std::max(last, when);
  }
}

int Swarm::Holding(const std::string& bundle, const std::string& revision) const {
  MutexLock lock(&holders_mu_);
  auto it = holders_.find({bundle, revision});
  return it == holders_.end() ? 0 : it->second;
}

absl::Time Swarm::LastAckOf(const std::string& bundle, const std::string& revision) const {
  if (Holding(bundle, revision) < static_cast<int>(agents_.size())) {
    return absl::InfiniteFuture();
  }
  MutexLock lock(&holders_mu_);
  auto it = last_ack_.find({bundle, revision});
  return it == last_ack_.end() ? absl::InfiniteFuture() : it->second;
}

int Swarm::HoldingCommit(const std::string& bundle, const std::string& commit) const {
  return Holding(bundle, kCommitKey + commit);
}

absl::Time Swarm::LastAckOfCommit(const std::string& bundle, const std::string& commit) const {
  return LastAckOf(bundle, kCommitKey + commit);
}

std::map<std::string, absl::Time> Swarm::AckTimes(const std::string& bundle,
                                                  const std::string& revision) const {
  MutexLock lock(&holders_mu_);
  auto it = ack_times_.find({bundle, revision});
  return it == ack_times_.end() ? std::map<std::string, absl::Time>() : it->second;
}

int64_t Swarm::bytes_received() const { return counters_.bytes.load(); }
int64_t Swarm::messages_received() const { return counters_.messages.load(); }
int64_t Swarm::updates_received() const { return counters_.updates.load(); }
int64_t Swarm::reconnects() const { return counters_.reconnects.load(); }

bool Swarm::WaitUntil(const std::function<bool()>& done, absl::Duration timeout,
                      absl::Duration interval) const {
  absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(interval);
  }
  return true;
}

void Swarm::Schedule(absl::Time when, std::function<void()> fn) {
  MutexLock lock(&mu_);
  if (!stopping_) timers_.emplace(when, std::move(fn));
}

void Swarm::RunScheduler() {
  while (true) {
    std::vector<std::function<void()>> due;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      absl::Time now = absl::Now();
      while (!timers_.empty() && timers_.begin()->first <= now) {
        due.push_back(std::move(timers_.begin()->second));
        timers_.erase(timers_.begin());
      }
    }
    for (auto& fn : due) fn();
    if (due.empty()) absl::SleepFor(absl::Milliseconds(5));
  }
}

}  // namespace gitfleet::bench
