// A control plane under abuse: a stuck agent, an agent reconnecting in a loop, a status
// flood, garbage and oversized messages. Each is cut off with an error naming the limit
// while the other agents' updates keep flowing. Small N here; bench/fanout covers large N.

#include <algorithm>
#include <deque>
#include <fstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "bench/swarm.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"
#include "proto/gitfleet/v1/agent.pb.h"
#include "tests/e2e/e2e_util.h"
#include "tests/util/git_fixture.h"
#include "tests/util/process.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::Eventually;
using ::gitfleet::testing::GitFixture;
using ::gitfleet::testing::HttpGet;
using ::gitfleet::testing::MetricValue;
using ::gitfleet::testing::Process;
using ::gitfleet::testing::TempDir;
using ::testing::HasSubstr;

using ::gitfleet::testing::kControlPlane;

// Adds source `name` (the repository at `url`) and bundle `name` of its app/ directory.
absl::StatusOr<v1::BundleInfo> AddSourceAndBundle(v1::AdminService::Stub& admin,
                                                  const std::string& name, const std::string& url) {
  grpc::ClientContext c1, c2;
  v1::AddSourceRequest source;
  source.mutable_source()->set_name(name);
  source.mutable_source()->set_url(url);
  v1::SourceInfo source_info;
  grpc::Status added = admin.AddSource(&c1, source, &source_info);
  if (!added.ok()) return absl::InternalError(added.error_message());
  v1::AddBundleRequest bundle;
  bundle.mutable_bundle()->set_name(name);
  bundle.mutable_bundle()->set_source(name);
  bundle.mutable_bundle()->set_path("app");
  v1::BundleInfo info;
  added = admin.AddBundle(&c2, bundle, &info);
  if (!added.ok()) return absl::InternalError(added.error_message());
  return info;
}

std::string Cm(int i, int version, size_t pad = 400) {
  return absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-", i,
                      "\n  namespace: limits\ndata:\n  version: \"", version, "\"\n  pad: \"",
                      std::string(pad, 'p'), "\"\n");
}

// One raw agent stream: sends what it is given, reads only if asked, records how it ended.
class RawAgent : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  RawAgent(grpc::GenericStub* stub, bool read, const std::string& token = "") : read_(read) {
    if (!token.empty()) context_.AddMetadata("authorization", "Bearer " + token);
    stub->PrepareBidiStreamingCall(&context_, "/gitfleet.v1.AgentService/Connect",
                                   grpc::StubOptions(), this);
  }
  // gRPC calls back until OnDone: the call must be over before this object goes.
  ~RawAgent() {
    if (!started_) return;
    Cancel();
    done_.WaitForNotification();
  }
  void Start() {
    started_ = true;
    if (read_) StartRead(&in_);
    StartCall();
  }
  // Queues one message; writes go out one at a time. Nothing is written once the stream
  // broke: a write after the call is done is undefined.
  void Send(std::string bytes) {
    MutexLock lock(&mu_);
    if (broken_) return;
    queue_.push_back(std::move(bytes));
    if (!writing_) WriteNextLocked();
  }
  void Cancel() { context_.TryCancel(); }
  grpc::Status Wait(absl::Duration timeout) {
    done_.WaitForNotificationWithTimeout(timeout);
    MutexLock lock(&mu_);
    return status_;
  }
  bool done() { return done_.HasBeenNotified(); }

  void OnWriteDone(bool ok) override {
    MutexLock lock(&mu_);
    writing_ = false;
    broken_ |= !ok;
    if (!broken_ && !queue_.empty()) WriteNextLocked();
  }
  void OnReadDone(bool ok) override {
    if (ok) {
      StartRead(&in_);
      return;
    }
    MutexLock lock(&mu_);
    broken_ = true;  // the server ended the call
  }
  void OnDone(const grpc::Status& status) override {
    {
      MutexLock lock(&mu_);
      status_ = status;
    }
    done_.Notify();
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    grpc::Slice slice(queue_.front());
    queue_.pop_front();
    out_ = grpc::ByteBuffer(&slice, 1);
    writing_ = true;
    StartWrite(&out_);
  }

  const bool read_;
  bool started_ = false;
  grpc::ClientContext context_;
  grpc::ByteBuffer in_;
  Mutex mu_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  Notification done_;
};

std::string Hello(const std::string& cluster) {
  v1::AgentMessage message;
  message.mutable_hello()->set_cluster(cluster);
  (*message.mutable_hello()->mutable_labels())["env"] = "prod";
  return message.SerializeAsString();
}

std::string Status(const std::string& bundle, const std::string& message_text) {
  v1::AgentMessage message;
  message.mutable_status()->set_bundle(bundle);
  message.mutable_status()->set_message(message_text);
  return message.SerializeAsString();
}

class Limits : public ::testing::Test {
 protected:
  Limits() : root_(TempDir("limits")), git_(root_ + "/repo") {
    for (int i = 0; i < 300; ++i) git_.Write(absl::StrCat("app/cm-", i, ".yaml"), Cm(i, 0));
    git_.Commit("initial");
    cp_ = std::make_unique<Process>(
        kControlPlane,
        std::vector<std::string>{"--data-dir=" + root_ + "/cp", "--grpc=127.0.0.1:0",
                                 "--http=127.0.0.1:0", "--poll-interval-seconds=3600",
                                 "--agent-messages-per-second=50", "--agent-connect-burst=5",
                                 "--agent-max-message-bytes=65536", "--allow-any-agent",
                                 "--trust-agent-labels", "--allow-local-sources"},
        root_ + "/cp.log");
    port_ = cp_->WaitForLog(R"(serving gRPC on port (\d+))");
    http_ = std::stoi("0" + cp_->WaitForLog(R"(HTTP on port (\d+))"));
    channel_ = grpc::CreateChannel("127.0.0.1:" + port_, grpc::InsecureChannelCredentials());
    admin_ = v1::AdminService::NewStub(channel_);
  }

  void SetUp() override {
    ASSERT_FALSE(port_.empty()) << cp_->Log();
    absl::StatusOr<v1::BundleInfo> added = AddSourceAndBundle(*admin_, "app", git_.url());
    ASSERT_TRUE(added.ok()) << added.status();
    bundle_ = *std::move(added);
  }

  // Commits a change (to one object, or to all with big ones) and returns the new revision
  // once the control plane rendered it.
  std::string Change(int version, bool all = false) {
    for (int i = 0; i < (all ? 300 : 1); ++i) {
      git_.Write(absl::StrCat("app/cm-", i, ".yaml"), Cm(i, version, all ? 8000 : 400));
    }
    git_.Commit(absl::StrCat("v", version));
    grpc::ClientContext c1, c2;
    v1::SyncSourceRequest sync;
    sync.set_name("app");
    v1::SourceInfo info;
    EXPECT_TRUE(admin_->SyncSource(&c1, sync, &info).ok());
    v1::ListBundlesResponse bundles;
    EXPECT_TRUE(admin_->ListBundles(&c2, v1::ListBundlesRequest(), &bundles).ok());
    return bundles.bundles(0).revision();
  }

  double Metric(const std::string& series) {
    return MetricValue(HttpGet(http_, "/metrics"), series);
  }

  bench::SwarmOptions SwarmOf(int n, const std::string& prefix) {
    bench::SwarmOptions options;
    options.target = "127.0.0.1:" + port_;
    options.agents = n;
    options.name_prefix = prefix;
    return options;
  }

  std::string root_;
  GitFixture git_;
  std::unique_ptr<Process> cp_;
  std::string port_;
  int http_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  v1::BundleInfo bundle_;
};

TEST_F(Limits, AStuckAgentDoesNotStallTheOthers) {
  // It says hello and never reads: with a small flow-control window and no window
  // probing, its stream fills and stays full.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16384);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  grpc::GenericStub stub(
      grpc::CreateCustomChannel("127.0.0.1:" + port_, grpc::InsecureChannelCredentials(), args));
  RawAgent stuck(&stub, /*read=*/false);
  stuck.Send(Hello("stuck"));
  stuck.Start();
  bench::Swarm swarm(SwarmOf(10, "ok-"));
  swarm.Start();
  ASSERT_TRUE(swarm.WaitUntil([&] { return swarm.Holding("app", bundle_.revision()) == 10; },
                              absl::Seconds(30)));
  // Each change rewrites every object: 2.4 MB per update, far more than the stuck
  // stream's flow-control window.
  for (int version = 1; version <= 4; ++version) {
    std::string revision = Change(version, /*all=*/true);
    absl::Time start = absl::Now();
    EXPECT_TRUE(
        swarm.WaitUntil([&] { return swarm.Holding("app", revision) == 10; }, absl::Seconds(10)))
        << "version " << version;
    EXPECT_LT(absl::Now() - start, absl::Seconds(8));
  }
  EXPECT_FALSE(stuck.done()) << "a slow agent is not cut off, it just waits";
  // Its pending updates coalesced to one per bundle.
  EXPECT_GE(Metric("gitfleet_agent_coalesced_updates_total"), 1);
  // Every acknowledged change is a fan-out sample, and every applied one a commit-to-applied
  // sample of its bundle.
  EXPECT_GE(Metric("gitfleet_fanout_seconds_count"), 40);
  EXPECT_GE(Metric("gitfleet_commit_to_applied_seconds_count{bundle=\"app\"}"), 40);
  stuck.Cancel();
}

TEST_F(Limits, AnAgentReconnectingInALoopIsRefusedWhileOthersConnect) {
  grpc::GenericStub stub(channel_);
  int refused = 0;
  std::string message;
  for (int i = 0; i < 20; ++i) {
    auto agent = std::make_unique<RawAgent>(&stub, /*read=*/true);
    agent->Send(Hello("looper"));
    agent->Start();
    absl::SleepFor(absl::Milliseconds(20));
    agent->Cancel();
    grpc::Status status = agent->Wait(absl::Seconds(10));
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      message = status.error_message();
    }
  }
  EXPECT_GE(refused, 10);
  EXPECT_THAT(message, HasSubstr("cluster looper connected more than 5 times"));
  EXPECT_GE(Metric("gitfleet_agent_limit_hits_total{limit=\"connect_rate\"}"), 10);
  bench::Swarm swarm(SwarmOf(5, "ok-"));
  swarm.Start();
  EXPECT_TRUE(swarm.WaitUntil([&] { return swarm.Holding("app", bundle_.revision()) == 5; },
                              absl::Seconds(30)));
}

TEST_F(Limits, AStatusFloodEndsTheStreamWithAClearError) {
  bench::Swarm swarm(SwarmOf(5, "ok-"));
  swarm.Start();
  grpc::GenericStub stub(channel_);
  RawAgent flood(&stub, /*read=*/true);
  flood.Send(Hello("flood"));
  flood.Start();
  for (int i = 0; i < 3000; ++i) flood.Send(Status("app", absl::StrCat("spam ", i)));
  grpc::Status status = flood.Wait(absl::Seconds(30));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("more than 50 messages per second"));
  EXPECT_THAT(status.error_message(), HasSubstr("cluster flood"));
  EXPECT_TRUE(swarm.WaitUntil([&] { return swarm.Holding("app", bundle_.revision()) == 5; },
                              absl::Seconds(30)));
  std::string revision = Change(1);
  EXPECT_TRUE(
      swarm.WaitUntil([&] { return swarm.Holding("app", revision) == 5; }, absl::Seconds(10)));
}

TEST_F(Limits, AgentsThatSendTheStatusOnItsOwnAreStillHeard) {
  // Agents from before Ack.status: an ACK, then a StatusUpdate of its own.
  bench::SwarmOptions older = SwarmOf(3, "older-");
  older.ack_carries_status = false;
  bench::Swarm old_swarm(older);
  bench::Swarm new_swarm(SwarmOf(3, "newer-"));
  old_swarm.Start();
  new_swarm.Start();
  std::string revision = Change(1);
  for (bench::Swarm* swarm : {&old_swarm, &new_swarm}) {
    EXPECT_TRUE(
        swarm->WaitUntil([&] { return swarm->Holding("app", revision) == 3; }, absl::Seconds(30)));
  }
  EXPECT_EQ(old_swarm.connected(), 3) << "each swarm counts its own agents";
  EXPECT_EQ(new_swarm.connected(), 3);
  auto synced = [&](const std::string& cluster) {
    grpc::ClientContext context;
    v1::GetStatusRequest request;
    request.set_cluster(cluster);
    request.set_bundle("app");
    v1::GetStatusResponse response;
    if (!admin_->GetStatus(&context, request, &response).ok() || response.statuses_size() != 1) {
      return false;
    }
    return response.statuses(0).applied_revision() == revision &&
           response.statuses(0).sync_state() == v1::SYNC_STATE_SYNCED;
  };
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline && !(synced("older-0") && synced("newer-0"))) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(synced("older-0"));
  EXPECT_TRUE(synced("newer-0"));
  EXPECT_GE(Metric("gitfleet_agent_status_reports_total{via=\"message\"}"), 3);
  EXPECT_GE(Metric("gitfleet_agent_status_reports_total{via=\"ack\"}"), 3);
}

TEST_F(Limits, GarbageAndOversizedMessagesAreRefusedByName) {
  grpc::GenericStub stub(channel_);
  RawAgent garbage(&stub, /*read=*/true);
  garbage.Send(std::string("\xff\xff\xff\xff not a protobuf", 20));
  garbage.Start();
  grpc::Status status = garbage.Wait(absl::Seconds(10));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("cannot parse agent message"));

  RawAgent big(&stub, /*read=*/true);
  big.Send(Hello("big"));
  big.Send(Status("app", std::string(100000, 'x')));
  big.Start();
  status = big.Wait(absl::Seconds(10));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("over the limit of 65536 bytes"));

  RawAgent mixed(&stub, /*read=*/true);
  mixed.Send(Hello("mixed"));
  v1::AgentMessage ack;
  ack.mutable_ack()->set_bundle("app");
  ack.mutable_ack()->set_ok(true);
  ack.mutable_ack()->mutable_status()->set_bundle("other");
  mixed.Send(ack.SerializeAsString());
  mixed.Start();
  status = mixed.Wait(absl::Seconds(10));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("the ack for bundle \"app\" carries the status of bundle \"other\""));

  RawAgent no_hello(&stub, /*read=*/true);
  no_hello.Send(Status("app", "hi"));
  no_hello.Start();
  status = no_hello.Wait(absl::Seconds(10));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("first message on a stream must be a hello"));

  // Bundle names an agent reports are names, or the stream ends.
  for (const std::string& name : {std::string("../etc"), std::string(200, 'b'), std::string()}) {
    RawAgent bad_name(&stub, /*read=*/true);
    bad_name.Send(Hello("bad-name"));
    bad_name.Send(Status(name, "hi"));
    bad_name.Start();
    status = bad_name.Wait(absl::Seconds(10));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_THAT(status.error_message(), HasSubstr("status: bundle name"));
  }
}

}  // namespace
}  // namespace gitfleet

namespace gitfleet {
namespace {

// A control plane with agent tokens, two handshake slots and a one-second hello timeout.
// A fleet's whole status can outgrow one gRPC message (1,500 clusters with 10 bundles pass
// 4 MiB). Asked for at once, it is refused by name; asked for in pages, every status comes
// once, in order; gitfleetctl status pages by itself. Here the bound is made small instead.
TEST(Pages, StatusesAndClustersTooManyForOneMessageArePagedNotLost) {
  const std::string root = TempDir("status-pages");
  GitFixture git(root + "/repo");
  git.Write("app/cm.yaml", Cm(0, 0));
  git.Commit("initial");
  Process cp(kControlPlane,
             {"--data-dir=" + root + "/cp", "--grpc=127.0.0.1:0", "--http=127.0.0.1:0",
              "--poll-interval-seconds=3600", "--allow-any-agent", "--trust-agent-labels",
              "--allow-local-sources", "--max-message-bytes=131072", "--max-bundle-bytes=65536"},
             root + "/cp.log");
  const std::string port = cp.WaitForLog(R"(serving gRPC on port (\d+))");
  ASSERT_FALSE(port.empty()) << cp.Log();
  auto admin = v1::AdminService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + port, grpc::InsecureChannelCredentials()));
  for (const char* name : {"app", "app2"}) {
    absl::StatusOr<v1::BundleInfo> added = AddSourceAndBundle(*admin, name, git.url());
    ASSERT_TRUE(added.ok()) << added.status();
  }
  constexpr int kClusters = 300;  // 600 statuses, about 190 KiB
  bench::SwarmOptions options;
  options.target = "127.0.0.1:" + port;
  options.agents = kClusters;
  options.name_prefix = "c-";
  for (int i = 0; i < 6; ++i) {  // about 1 KiB per cluster listed: 300 KiB in all
    options.extra_labels[absl::StrCat("pad-", i)] = std::string(60, 'a' + i);
  }
  bench::Swarm swarm(options);
  swarm.Start();
  ASSERT_TRUE(swarm.WaitUntil([&] { return swarm.connected() == kClusters; }, absl::Seconds(60)));

  grpc::ClientContext all_context;
  v1::GetStatusResponse all;
  grpc::Status refused = admin->GetStatus(&all_context, v1::GetStatusRequest(), &all);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("the status of 600 bundles on clusters"));
  EXPECT_THAT(refused.error_message(), HasSubstr("ask for pages (page_size"));

  // Pages of 7: every (cluster, bundle) once, in order, whatever the page boundaries.
  std::vector<std::string> seen;
  v1::GetStatusRequest request;
  request.set_page_size(7);
  for (int pages = 0; pages < 200; ++pages) {
    grpc::ClientContext context;
    v1::GetStatusResponse page;
    grpc::Status status = admin->GetStatus(&context, request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(page.statuses_size(), 7);
    for (const v1::BundleStatus& s : page.statuses()) {
      seen.push_back(absl::StrCat(s.cluster(), "/", s.bundle()));
    }
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  ASSERT_EQ(seen.size(), 2u * kClusters);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end()) << "a status twice";
  // A filter pages too; a token it never gave is refused by name.
  request.Clear();
  request.set_bundle("app2");
  request.set_page_size(100);
  int app2 = 0;
  for (int pages = 0; pages < 10; ++pages) {
    grpc::ClientContext context;
    v1::GetStatusResponse page;
    ASSERT_TRUE(admin->GetStatus(&context, request, &page).ok());
    for (const v1::BundleStatus& s : page.statuses()) app2 += s.bundle() == "app2";
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(app2, kClusters);
  request.set_page_token("garbage");
  grpc::ClientContext bad_context;
  v1::GetStatusResponse bad;
  grpc::Status invalid = admin->GetStatus(&bad_context, request, &bad);
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(invalid.error_message(), HasSubstr("page_token \"garbage\" is not one"));

  // gitfleetctl status pages by itself.
  int code = 0;
  std::string table = ::gitfleet::testing::RunCtl(std::stoi(port), {"status"}, &code);
  EXPECT_EQ(code, 0) << table;
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 1 + 2 * kClusters) << table;

  // The cluster list pages the same way.
  grpc::ClientContext list_context;
  v1::ListClustersResponse whole;
  refused = admin->ListClusters(&list_context, v1::ListClustersRequest(), &whole);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("the list of 300 clusters"));
  EXPECT_THAT(refused.error_message(), HasSubstr("ask for pages (page_size"));
  // Pages of 7, and pages asked for larger than a message holds (cut by size): every
  // cluster once, in name order.
  for (int size : {7, 10000}) {
    std::vector<std::string> names;
    v1::ListClustersRequest list;
    list.set_page_size(size);
    int pages = 0;
    for (; pages < 100; ++pages) {
      grpc::ClientContext context;
      v1::ListClustersResponse page;
      grpc::Status status = admin->ListClusters(&context, list, &page);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_LE(page.clusters_size(), size);
      EXPECT_LE(page.ByteSizeLong(), 131072u);
      for (const v1::ClusterInfo& c : page.clusters()) names.push_back(c.name());
      if (page.next_page_token().empty()) break;
      list.set_page_token(page.next_page_token());
    }
    ASSERT_EQ(names.size(), static_cast<size_t>(kClusters)) << size;
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
    EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end()) << "a cluster twice";
    EXPECT_GE(pages, size == 7 ? kClusters / 7 : 2) << size;
  }
  v1::ListClustersRequest bad_list;
  bad_list.set_page_size(5);
  bad_list.set_page_token("no/such");
  grpc::ClientContext bad_list_context;
  invalid = admin->ListClusters(&bad_list_context, bad_list, &whole);
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(invalid.error_message(), HasSubstr("page_token \"no/such\" is not one"));
  // And so does the bundle list.
  v1::ListBundlesRequest bundles;
  bundles.set_page_size(1);
  std::vector<std::string> bundle_names;
  for (int pages = 0; pages < 10; ++pages) {
    grpc::ClientContext context;
    v1::ListBundlesResponse page;
    ASSERT_TRUE(admin->ListBundles(&context, bundles, &page).ok());
    EXPECT_LE(page.bundles_size(), 1);
    for (const v1::BundleInfo& b : page.bundles()) bundle_names.push_back(b.bundle().name());
    if (page.next_page_token().empty()) break;
    bundles.set_page_token(page.next_page_token());
  }
  EXPECT_THAT(bundle_names, ::testing::ElementsAre("app", "app2"));
  bundles.set_page_token("no/such");
  grpc::ClientContext bad_bundles_context;
  v1::ListBundlesResponse no_bundles;
  EXPECT_EQ(admin->ListBundles(&bad_bundles_context, bundles, &no_bundles).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  table = ::gitfleet::testing::RunCtl(std::stoi(port), {"bundle", "list"}, &code);
  EXPECT_EQ(code, 0) << table;
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 3) << table;
  table = ::gitfleet::testing::RunCtl(std::stoi(port), {"cluster", "list"}, &code);
  EXPECT_EQ(code, 0) << table;
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 1 + kClusters) << table;

  // A rollout's status lists a few clusters per partition when asked, and counts them all.
  v1::AddBundleRequest rolled;
  rolled.mutable_bundle()->set_name("rolled");
  rolled.mutable_bundle()->set_source("app");
  rolled.mutable_bundle()->set_path("app");
  rolled.mutable_bundle()->mutable_rollout()->set_partition_size("50%");
  grpc::ClientContext add_context;
  v1::BundleInfo rolled_info;
  ASSERT_TRUE(admin->AddBundle(&add_context, rolled, &rolled_info).ok());
  v1::GetRolloutRequest rollout_request;
  rollout_request.set_bundle("rolled");
  rollout_request.set_clusters_per_partition(5);
  v1::RolloutStatus rollout;
  ASSERT_TRUE(swarm.WaitUntil(
      [&] {
        grpc::ClientContext context;
        rollout.Clear();
        return admin->GetRollout(&context, rollout_request, &rollout).ok() && rollout.done();
      },
      absl::Seconds(60)))
      << rollout.DebugString();
  ASSERT_EQ(rollout.partitions_size(), 2);
  for (const v1::RolloutPartition& partition : rollout.partitions()) {
    EXPECT_EQ(partition.clusters_size(), 5);
    EXPECT_EQ(partition.cluster_count(), kClusters / 2);
    EXPECT_EQ(partition.ready_count(), kClusters / 2);
    EXPECT_EQ(partition.failed_count(), 0);
  }
  rollout_request.set_clusters_per_partition(-1);
  grpc::ClientContext negative_context;
  EXPECT_EQ(admin->GetRollout(&negative_context, rollout_request, &rollout).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A commit to judge it against is hex digits, at most a SHA-256 id's 64: the error says so
  // without echoing it all back.
  rollout_request.set_clusters_per_partition(5);
  for (const std::string& commit :
       {std::string(4096, 'a'), std::string("abc"), std::string("main\n")}) {
    rollout_request.set_commit(commit);
    grpc::ClientContext commit_context;
    grpc::Status refused = admin->GetRollout(&commit_context, rollout_request, &rollout);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << commit.size();
    EXPECT_THAT(refused.error_message(),
                HasSubstr("want a commit id, or its first digits (at least 4)"));
    EXPECT_LT(refused.error_message().size(), 200u);
  }
  rollout_request.set_commit("");
  table = ::gitfleet::testing::RunCtl(std::stoi(port),
                                      {"rollout", "status", "rolled", "--clusters=3"}, &code);
  EXPECT_EQ(code, 0) << table;
  EXPECT_THAT(table, HasSubstr("(147 more)")) << table;
  EXPECT_THAT(table, HasSubstr("150 in all: 150 ready, 0 failed")) << table;
  table = ::gitfleet::testing::RunCtl(std::stoi(port), {"rollout", "status", "rolled"}, &code);
  EXPECT_THAT(table, HasSubstr("(100 more)")) << "50 a partition by default: " << table;
}

class Handshakes : public ::testing::Test {
 protected:
  Handshakes() : root_(TempDir("handshakes")), git_(root_ + "/repo") {
    git_.Write("app/cm.yaml", Cm(0, 0));
    git_.Commit("initial");
    std::ofstream(root_ + "/tokens") << "real-0 good\nreal-1 good\nreal-2 good\n";
    cp_ = std::make_unique<Process>(
        kControlPlane,
        std::vector<std::string>{"--data-dir=" + root_ + "/cp", "--grpc=127.0.0.1:0",
                                 "--http=127.0.0.1:0", "--poll-interval-seconds=3600",
                                 "--agent-tokens=" + root_ + "/tokens", "--agent-connect-burst=3",
                                 "--max-concurrent-handshakes=2", "--hello-timeout-seconds=1",
                                 "--allow-local-sources"},
        root_ + "/cp.log");
    port_ = cp_->WaitForLog(R"(serving gRPC on port (\d+))");
    http_ = std::stoi("0" + cp_->WaitForLog(R"(HTTP on port (\d+))"));
    channel_ = grpc::CreateChannel("127.0.0.1:" + port_, grpc::InsecureChannelCredentials());
  }

  double Metric(const std::string& series) {
    return MetricValue(HttpGet(http_, "/metrics"), series);
  }

  bench::SwarmOptions Real(int n) {
    bench::SwarmOptions options;
    options.target = "127.0.0.1:" + port_;
    options.agents = n;
    options.name_prefix = "real-";
    options.token = "good";
    return options;
  }

  std::string root_;
  GitFixture git_;
  std::unique_ptr<Process> cp_;
  std::string port_;
  int http_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(Handshakes, SilentConnectionsWaitTheirTurnAndTimeOut) {
  ASSERT_FALSE(port_.empty()) << cp_->Log();
  grpc::GenericStub stub(channel_);
  // Two connections that never say hello take both handshake slots...
  RawAgent silent_1(&stub, /*read=*/true);
  RawAgent silent_2(&stub, /*read=*/true);
  silent_1.Start();
  silent_2.Start();
  bench::Swarm swarm(Real(3));
  ASSERT_TRUE(swarm.WaitUntil(
      [&] { return Metric("gitfleet_agent_handshakes{state=\"in_progress\"}") == 2; },
      absl::Seconds(10)));
  // ...so real agents wait, unread, and nobody has a session yet.
  swarm.Start();
  ASSERT_TRUE(
      swarm.WaitUntil([&] { return Metric("gitfleet_agent_handshakes{state=\"waiting\"}") >= 1; },
                      absl::Seconds(10)));
  EXPECT_EQ(swarm.connected(), 0);
  // The hello timeout ends the silent ones, and every real agent gets in.
  EXPECT_TRUE(swarm.WaitUntil([&] { return swarm.connected() == 3; }, absl::Seconds(20)));
  EXPECT_FALSE(silent_1.Wait(absl::Seconds(5)).ok());
  EXPECT_FALSE(silent_2.Wait(absl::Seconds(5)).ok());
  EXPECT_GE(Metric("gitfleet_agent_limit_hits_total{limit=\"hello_timeout\"}"), 2);
  EXPECT_TRUE(swarm.WaitUntil(
      [&] { return Metric("gitfleet_agent_handshakes{state=\"in_progress\"}") == 0; },
      absl::Seconds(10)));
}

TEST_F(Handshakes, AHelloFloodWithoutTheTokenDoesNotLockTheRealAgentOut) {
  ASSERT_FALSE(port_.empty()) << cp_->Log();
  grpc::GenericStub stub(channel_);
  std::string answer;
  for (int i = 0; i < 20; ++i) {
    RawAgent impostor(&stub, /*read=*/true, i % 2 == 0 ? "bad" : "");
    impostor.Send(Hello("real-0"));
    impostor.Start();
    grpc::Status status = impostor.Wait(absl::Seconds(10));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    answer = status.error_message();
  }
  // An unknown cluster gets the same answer as a known one with the wrong token.
  RawAgent stranger(&stub, /*read=*/true, "bad");
  stranger.Send(Hello("nobody"));
  stranger.Start();
  grpc::Status status = stranger.Wait(absl::Seconds(10));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(absl::StrReplaceAll(status.error_message(), {{"nobody", "real-0"}}), answer);
  // The connect budget of real-0 (3) is untouched: its agent gets straight in.
  bench::Swarm swarm(Real(1));
  swarm.Start();
  EXPECT_TRUE(swarm.WaitUntil([&] { return swarm.connected() == 1; }, absl::Seconds(10)));
  EXPECT_LE(Metric("gitfleet_agent_limit_hits_total{limit=\"connect_rate\"}"), 0)
      << "-1: never hit";
}

TEST_F(Handshakes, AnOversizedHelloIsRefusedBeforeAuthentication) {
  ASSERT_FALSE(port_.empty()) << cp_->Log();
  grpc::GenericStub stub(channel_);
  v1::AgentMessage message;
  message.mutable_hello()->set_cluster("real-0");
  (*message.mutable_hello()->mutable_labels())["pad"] = std::string(600 << 10, 'x');
  RawAgent big(&stub, /*read=*/true, "good");
  big.Send(message.SerializeAsString());
  big.Start();
  grpc::Status status = big.Wait(absl::Seconds(10));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("hello of"));
  EXPECT_THAT(status.error_message(), HasSubstr("over the limit of 524288 bytes"));
}

}  // namespace
}  // namespace gitfleet
