#include "agent/agent.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <thread>

#include "agent/apply/applier.h"
#include "agent/state/state_store.h"
#include "common/agent_protocol.h"
#include "common/file_system.h"
#include "common/manifest/object.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A control plane on loopback, current or from before ACKs carried statuses: welcomes
// the agent, offering `ack_carries_status` or not, sends each update in turn once the
// one before it is acknowledged, and records every message the agent sends.
class FakeControlPlane final : public v1::AgentService::Service {
 public:
  FakeControlPlane(bool ack_carries_status, std::vector<v1::BundleUpdate> updates)
      : ack_carries_status_(ack_carries_status), updates_(std::move(updates)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeControlPlane() override { server_->Shutdown(absl::ToChronoTime(absl::Now())); }

  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

  // Set before an agent connects: fills in each stream's welcome (streams counted from 0),
  // and ends the first streams right after their welcome.
  std::function<void(const v1::Hello&, int, v1::Welcome*)> welcome_with;
  int close_first_streams = 0;
  // The first streams get no welcome: they are read until the agent gives them up.
  int silent_first_streams = 0;
  // A stream that carries this token is refused, as a retired token is.
  std::string refused_token;

  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ControlMessage, v1::AgentMessage>* stream) override {
    v1::AgentMessage message;
    if (!stream->Read(&message) || !message.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "expected a hello");
    }
    int stream_number;
    {
      MutexLock lock(&mu_);
      received_.push_back(message);
      stream_number = streams_++;
    }
    auto authorization = context->client_metadata().find("authorization");
    if (!refused_token.empty() && authorization != context->client_metadata().end() &&
        authorization->second == "Bearer " + refused_token) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "this cluster's token changed; reconnect with the new one");
    }
    if (stream_number < silent_first_streams) {
      while (stream->Read(&message)) {
      }
      return grpc::Status::OK;
    }
    v1::ControlMessage welcome;
    welcome.mutable_welcome()->set_controlplane_version("fake");
    if (ack_carries_status_) welcome.mutable_welcome()->set_ack_carries_status(true);
    if (welcome_with) welcome_with(message.hello(), stream_number, welcome.mutable_welcome());
    stream->Write(welcome);
    if (stream_number < close_first_streams) return grpc::Status::OK;  // the agent dials again
    size_t next = 0;
    bool waiting_for_ack = false;
    while (true) {
      if (!waiting_for_ack && next < updates_.size()) {
        v1::ControlMessage update;
        *update.mutable_update() = updates_[next++];
        stream->Write(update);
        waiting_for_ack = true;
      }
      if (!stream->Read(&message)) break;
      MutexLock lock(&mu_);
      received_.push_back(message);
      if (message.has_ack()) waiting_for_ack = false;
    }
    return grpc::Status::OK;
  }

  // Every message the agent sent, once there are `acks` ACKs and `statuses` status
  // messages among them (or after 30 s).
  std::vector<v1::AgentMessage> Received(int acks, int statuses) {
    MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          int a = 0, s = 0;
          for (const v1::AgentMessage& message : received_) {
            a += message.has_ack();
            s += message.has_status();
          }
          return a >= acks && s >= statuses;
        },
        absl::Seconds(30));
    return received_;
  }

  // Whether the agent sent a message `matches` accepts within 30 s.
  bool WaitFor(const std::function<bool(const v1::AgentMessage&)>& matches) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return std::any_of(received_.begin(), received_.end(), matches);
        },
        absl::Seconds(30));
  }

 private:
  const bool ack_carries_status_;
  const std::vector<v1::BundleUpdate> updates_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  Mutex mu_;
  std::vector<v1::AgentMessage> received_ ABSL_GUARDED_BY(mu_);
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
};

// A full update of bundle "web" holding one ConfigMap with `value`.
v1::BundleUpdate WebUpdate(const std::string& value) {
  ObjectSet set;
  set.Put(
      *MakeObject("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: shop}\n"
                  "data: {v: \"" +
                      value + "\"}\n",
                  "test"));
  v1::BundleUpdate update;
  update.set_bundle("web");
  update.mutable_sync()->set_prune(true);
  update.set_revision(ComputeRevision(set, update.sync(), ""));
  update.set_commit("c-" + value);
  update.set_object_count(static_cast<int>(set.size()));
  for (const auto& [key, object] : set.objects()) *update.add_upserts() = *object;
  return update;
}

// One agent (cluster "east", with `options`' extras) applying to a directory in memory and
// talking to `control_plane` from Start until its destruction.
class RunningAgent {
 public:
  RunningAgent(FakeControlPlane& control_plane, Agent::Options options = {},
               absl::Duration welcome_timeout = absl::Seconds(60))
      : applier_("/out", &fs_),
        state_("/state", &fs_),
        metrics_(registry_),
        reconciler_(&applier_, &state_, metrics_) {
    EXPECT_TRUE(reconciler_.Load().ok());
    ControlPlaneClient::Options client;
    client.target = control_plane.target();
    client.credentials = grpc::InsecureChannelCredentials();
    client.welcome_timeout = welcome_timeout;
    options.cluster = "east";
    agent_ = std::make_unique<Agent>(&reconciler_, client, options, metrics_);
    run_ = std::thread([this] { agent_->Run(&stop_); });
  }
  ~RunningAgent() {
    stop_.Notify();
    run_.join();
  }

 private:
  MemoryFileSystem fs_;
  DirectoryApplier applier_;
  BundleStateStore state_;
  metrics::Registry registry_;
  AgentMetrics metrics_;
  Reconciler reconciler_;
  std::unique_ptr<Agent> agent_;
  Notification stop_;
  std::thread run_;
};

// What an agent sent `control_plane` once it has `acks` ACKs and `statuses` status
// messages.
std::vector<v1::AgentMessage> RunAgent(FakeControlPlane& control_plane, int acks, int statuses) {
  RunningAgent agent(control_plane);
  return control_plane.Received(acks, statuses);
}

// What the agent said, in order: each ACK (with the status it carries, if any) and each
// status message on its own.
std::vector<std::string> Said(const std::vector<v1::AgentMessage>& received) {
  auto status = [](const v1::StatusUpdate& status) {
    return absl::StrCat(status.bundle(), " ", v1::SyncState_Name(status.sync_state()), " ",
                        status.applied_revision());
  };
  std::vector<std::string> said;
  for (const v1::AgentMessage& message : received) {
    if (message.has_ack()) {
      said.push_back(absl::StrCat(
          "ack ", message.ack().revision(),
          message.ack().has_status() ? " carrying " + status(message.ack().status()) : ""));
    } else if (message.has_status()) {
      said.push_back("status " + status(message.status()));
    }
  }
  return said;
}

v1::Hello EastHello() {
  v1::Hello hello;
  hello.set_cluster("east");
  return hello;
}

// A client's callbacks that say hello as cluster "east", ignore messages and
// disconnections, and notify `connected` at the first welcome.
ControlPlaneClient::Callbacks ClientCallbacks(Notification* connected) {
  ControlPlaneClient::Callbacks callbacks;
  callbacks.hello = [] { return EastHello(); };
  callbacks.on_message = [](const v1::ControlMessage&) {};
  callbacks.on_connected = [connected](const v1::Welcome&) {
    if (!connected->HasBeenNotified()) connected->Notify();
  };
  callbacks.on_disconnected = [](const absl::Status&) {};
  return callbacks;
}

// A control plane that takes the stream but never welcomes it does not hold the agent: it
// gives the stream up and dials again, and the next stream is welcomed and served.
// A message sent while the client is still building its hello (a restarted agent reports
// what it holds at once) finds no stream: refused (the hello carries what the control
// plane needs), never written on a call not bound yet, which crashed the agent, nor sent
// before the hello. Once welcomed, messages go out after it.
TEST(ControlPlaneClientTest, NothingIsSentBeforeTheHello) {
  FakeControlPlane control_plane(/*ack_carries_status=*/true, {});
  metrics::Registry registry;
  AgentMetrics metrics(registry);
  Notification building, release, connected;
  ControlPlaneClient::Callbacks callbacks = ClientCallbacks(&connected);
  callbacks.hello = [&] {
    building.Notify();
    release.WaitForNotification();
    return EastHello();
  };
  ControlPlaneClient::Options options;
  options.target = control_plane.target();
  options.credentials = grpc::InsecureChannelCredentials();
  ControlPlaneClient client(options, callbacks, metrics);
  client.Start();
  ASSERT_TRUE(building.WaitForNotificationWithTimeout(absl::Seconds(30)));
  v1::AgentMessage status;
  status.mutable_status()->set_bundle("web");
  for (int i = 0; i < 100; ++i) {  // over 100 ms of the hello's making
    EXPECT_FALSE(client.Send(status)) << "taken before the hello";
    absl::SleepFor(absl::Milliseconds(1));
  }
  release.Notify();
  ASSERT_TRUE(connected.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(client.Send(status));
  std::vector<v1::AgentMessage> received = control_plane.Received(/*acks=*/0, /*statuses=*/1);
  ASSERT_EQ(received.size(), 2u);
  EXPECT_TRUE(received[0].has_hello());
  EXPECT_TRUE(received[1].has_status());
  client.Stop();
}

// A token refused while the agent's token file already holds another (the control plane
// retired the old line after the file got the new token) is replaced at once, not after
// the backoff a retry of the same token waits (here at least 20 s).
TEST(ControlPlaneClientTest, ARefusedTokenThatTheFileNoLongerHoldsIsReplacedAtOnce) {
  FakeControlPlane control_plane(/*ack_carries_status=*/true, {});
  control_plane.refused_token = "old-token";
  metrics::Registry registry;
  AgentMetrics metrics(registry);
  Mutex mu;
  std::string token = "old-token";
  Notification connected;
  ControlPlaneClient::Callbacks callbacks = ClientCallbacks(&connected);
  callbacks.on_disconnected = [&](const absl::Status& status) {
    if (status.code() != absl::StatusCode::kUnauthenticated) return;
    MutexLock lock(&mu);
    token = "new-token";  // the mounted Secret was updated before the old line went
  };
  ControlPlaneClient::Options options;
  options.target = control_plane.target();
  options.credentials = grpc::InsecureChannelCredentials();
  options.token = [&] {
    MutexLock lock(&mu);
    return token;
  };
  options.token_origin = "--token-file=T";
  options.min_backoff = absl::Seconds(20);
  options.max_backoff = absl::Seconds(30);
  ::testing::internal::CaptureStderr();
  ControlPlaneClient client(options, callbacks, metrics);
  const absl::Time start = absl::Now();
  client.Start();
  const bool in = connected.WaitForNotificationWithTimeout(absl::Seconds(60));
  const absl::Duration took = absl::Now() - start;
  client.Stop();
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(in) << log;
  EXPECT_THAT(log, HasSubstr("--token-file=T holds a new token: dialling again at once"));
  EXPECT_LT(took, absl::Seconds(15)) << log;
}

TEST(AgentTest, AStreamWithoutAWelcomeIsGivenUpAndDialledAgain) {
  FakeControlPlane control_plane(/*ack_carries_status=*/true, {WebUpdate("1")});
  control_plane.silent_first_streams = 1;
  ::testing::internal::CaptureStderr();
  std::vector<v1::AgentMessage> received;
  {
    RunningAgent agent(control_plane, {}, /*welcome_timeout=*/absl::Seconds(1));
    received = control_plane.Received(1, 0);
  }
  // The log says how far the stream got: the hello went out, nothing came back.
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              HasSubstr("sent no welcome within 1s (the hello was written "));
  int hellos = 0, acks = 0;
  for (const v1::AgentMessage& message : received) {
    hellos += message.has_hello();
    acks += message.has_ack();
  }
  EXPECT_GE(hellos, 2);
  EXPECT_EQ(acks, 1) << "the second stream is served";
}

// What the hello said of the cluster is sent again when it changes while connected (a CRD
// of a new group installed, an upgrade), once.
TEST(AgentTest, TellsTheControlPlaneWhenTheClusterChanges) {
  FakeControlPlane control_plane(/*ack_carries_status=*/true, {});
  Mutex mu;
  auto apis =
      std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"v1", "apps/v1"});
  Agent::Options options;
  options.kubernetes_version = [] { return std::string("v1.30.2"); };
  options.api_versions = [&] {
    MutexLock lock(&mu);
    return apis;
  };
  auto agent = std::make_unique<RunningAgent>(control_plane, options);
  EXPECT_TRUE(control_plane.WaitFor([](const v1::AgentMessage& m) {
    return m.has_hello() && m.hello().api_versions_size() == 2 &&
           m.hello().kubernetes_version() == "v1.30.2";
  }));
  {
    MutexLock lock(&mu);
    apis = std::make_shared<const std::vector<std::string>>(
        std::vector<std::string>{"v1", "apps/v1", "monitoring.coreos.com/v1"});
  }
  EXPECT_TRUE(control_plane.WaitFor([](const v1::AgentMessage& m) {
    return m.has_facts() && m.facts().api_versions_size() == 3 &&
           m.facts().api_versions(2) == "monitoring.coreos.com/v1" &&
           m.facts().kubernetes_version() == "v1.30.2";
  }));
  absl::SleepFor(absl::Milliseconds(2500));  // two more passes of the agent's loop
  agent.reset();
  int facts = 0;
  for (const v1::AgentMessage& m : control_plane.Received(0, 0)) facts += m.has_facts();
  EXPECT_EQ(facts, 1) << "told once";
}

// A control plane that said it holds the hello's API list gets its digest alone on the
// next hello; one that then says it does not (a restored store) gets the whole list.
TEST(AgentTest, SendsTheApiListsDigestAloneToAControlPlaneThatHoldsIt) {
  FakeControlPlane control_plane(/*ack_carries_status=*/true, {});
  control_plane.close_first_streams = 1;
  control_plane.welcome_with = [](const v1::Hello& hello, int stream, v1::Welcome* welcome) {
    welcome->set_fleet_id("fleet-1");
    if (stream == 0) welcome->set_api_versions_held(hello.api_versions_size() > 0);
    if (stream == 1) welcome->set_send_facts(hello.api_versions().empty());
  };
  Agent::Options options;
  options.api_versions = [] {
    static const auto* apis = new std::shared_ptr<const std::vector<std::string>>(
        std::make_shared<const std::vector<std::string>>(
            std::vector<std::string>{"v1", "apps/v1/Deployment", "apps/v1"}));
    return *apis;
  };
  RunningAgent agent(control_plane, options);
  const std::string digest = ApiVersionsDigest({"apps/v1", "apps/v1/Deployment", "v1"});
  EXPECT_TRUE(control_plane.WaitFor([](const v1::AgentMessage& m) {
    return m.has_facts() && m.facts().api_versions_size() == 3;
  })) << "the list, asked for";
  std::vector<v1::Hello> hellos;
  for (const v1::AgentMessage& m : control_plane.Received(0, 0)) {
    if (m.has_hello()) hellos.push_back(m.hello());
  }
  ASSERT_EQ(hellos.size(), 2u);
  EXPECT_EQ(hellos[0].api_versions_size(), 3) << "the first hello names every API";
  EXPECT_EQ(hellos[0].api_versions_digest(), digest) << "sorted, as the control plane hashes";
  EXPECT_EQ(hellos[1].fleet_id(), "fleet-1");
  EXPECT_EQ(hellos[1].api_versions_size(), 0) << "held by that fleet's control plane";
  EXPECT_EQ(hellos[1].api_versions_digest(), digest);
}

TEST(AgentTest, AckCarriesTheAppliedStatusWhenTheControlPlaneOffersIt) {
  v1::BundleUpdate first = WebUpdate("1"), second = WebUpdate("2");
  FakeControlPlane control_plane(/*ack_carries_status=*/true, {first, second});
  // Messages are ordered on the stream, so a status sent on its own after the first ACK
  // would come before the second.
  EXPECT_THAT(
      Said(RunAgent(control_plane, /*acks=*/2, /*statuses=*/0)),
      ElementsAre(
          "ack " + first.revision() + " carrying web SYNC_STATE_SYNCED " + first.revision(),
          "ack " + second.revision() + " carrying web SYNC_STATE_SYNCED " + second.revision()));
}

TEST(AgentTest, AnOlderControlPlaneGetsTheStatusAsItsOwnMessage) {
  v1::BundleUpdate first = WebUpdate("1"), second = WebUpdate("2");
  FakeControlPlane control_plane(/*ack_carries_status=*/false, {first, second});
  EXPECT_THAT(
      Said(RunAgent(control_plane, /*acks=*/2, /*statuses=*/2)),
      ElementsAre("ack " + first.revision(), "status web SYNC_STATE_SYNCED " + first.revision(),
                  "ack " + second.revision(), "status web SYNC_STATE_SYNCED " + second.revision()));
}

}  // namespace
}  // namespace gitfleet
