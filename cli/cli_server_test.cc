#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
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

}  // namespace
}  // namespace gitfleet::cli
