#include <atomic>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"

// gitfleetctl against a gRPC server in the test's own process.
namespace gitfleet::cli {
namespace {

// A control plane that answers UNAVAILABLE itself (a source not fetched yet).
class NotYetService : public v1::AdminService::Service {
  grpc::Status ListSources(grpc::ServerContext*, const v1::ListSourcesRequest*,
                           v1::ListSourcesResponse*) override {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "source demo was not fetched yet");
  }
};

TEST(CliTest, AnUnavailableAnswerFromTheControlPlaneIsNotCalledUnreachable) {
  NotYetService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  std::ostringstream out, err;
  int code = RunCli({absl::StrCat("--server=127.0.0.1:", port), "--timeout=5s", "source", "list"},
                    out, err);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(err.str(), "gitfleetctl: UNAVAILABLE: source demo was not fetched yet\n");
  server->Shutdown();
}

// A control plane from before GetStatusRequest.tally: it answers a tally's request with a
// page of statuses (page_size, next_page_token), as an unknown field leaves it.
class BeforeTalliesService : public v1::AdminService::Service {
 public:
  explicit BeforeTalliesService(std::vector<v1::BundleStatus> statuses)
      : statuses_(std::move(statuses)) {}
  grpc::Status ListBundles(grpc::ServerContext*, const v1::ListBundlesRequest*,
                           v1::ListBundlesResponse* response) override {
    v1::BundleInfo* info = response->add_bundles();
    info->mutable_bundle()->set_name("web");
    info->set_commit(std::string(40, 'c'));
    info->set_revision("r1");
    info->set_target_clusters(static_cast<int>(statuses_.size()));
    info->set_current_clusters(static_cast<int>(statuses_.size()));
    return grpc::Status::OK;
  }
  grpc::Status GetRollout(grpc::ServerContext*, const v1::GetRolloutRequest*,
                          v1::RolloutStatus* response) override {
    response->set_bundle("web");
    response->set_commit(std::string(40, 'c'));
    return grpc::Status::OK;
  }
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest* request,
                         v1::GetStatusResponse* response) override {
    ++calls_;
    if (request->tally()) ++tallies_;
    size_t from = 0;
    if (!request->page_token().empty()) from = std::stoul(request->page_token());
    const size_t size = request->page_size() > 0 ? request->page_size() : statuses_.size();
    for (size_t i = from; i < statuses_.size() && i < from + size; ++i) {
      *response->add_statuses() = statuses_[i];
    }
    if (from + size < statuses_.size()) response->set_next_page_token(std::to_string(from + size));
    return grpc::Status::OK;
  }
  int calls() const { return calls_; }
  int tallies() const { return tallies_; }

 private:
  const std::vector<v1::BundleStatus> statuses_;
  std::atomic<int> calls_{0};
  std::atomic<int> tallies_{0};
};

v1::BundleStatus StatusOf(const std::string& cluster, v1::HealthState health) {
  v1::BundleStatus status;
  status.set_cluster(cluster);
  status.set_bundle("web");
  status.set_desired_revision("r1");
  status.set_applied_revision("r1");
  status.set_sync_state(v1::SYNC_STATE_SYNCED);
  status.set_health(health);
  return status;
}

// rollout status -w against a control plane before tallies: it reads the statuses as it
// did (every page), judges from all of them, and asks for no tally again.
TEST(CliTest, AWatchCountsTheStatusesOfAControlPlaneBeforeTallies) {
  for (const bool healthy : {true, false}) {
    BeforeTalliesService service(
        {StatusOf("a", v1::HEALTH_STATE_HEALTHY), StatusOf("b", v1::HEALTH_STATE_HEALTHY),
         StatusOf("c", healthy ? v1::HEALTH_STATE_HEALTHY : v1::HEALTH_STATE_PROGRESSING)});
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    ASSERT_NE(server, nullptr);
    std::ostringstream out, err;
    const int code = RunCli({absl::StrCat("--server=127.0.0.1:", port), "--timeout=5s", "rollout",
                             "status", "web", "-w", "--watch-timeout=2500ms"},
                            out, err);
    if (healthy) {
      EXPECT_EQ(code, 0) << out.str() << err.str();
      EXPECT_THAT(out.str() + err.str(), ::testing::HasSubstr("rolled out, Healthy on 3 clusters"));
      // The one-status page that showed no tally, then the listing.
      EXPECT_EQ(service.calls(), 2) << out.str();
    } else {
      EXPECT_EQ(code, 1) << out.str() << err.str();
      EXPECT_THAT(
          out.str() + err.str(),
          ::testing::HasSubstr("2 of 3 clusters run it Healthy; waiting for c: progressing"));
      // Looked at each second: after the first look, the statuses listed alone.
      EXPECT_GE(service.calls(), 3);
    }
    EXPECT_EQ(service.tallies(), 1) << "a control plane that answered none is not asked again";
    server->Shutdown();
  }
}

}  // namespace
}  // namespace gitfleet::cli
