#ifndef GITFLEET_TESTS_E2E_FLEET_FIXTURE_H_
#define GITFLEET_TESTS_E2E_FLEET_FIXTURE_H_

// The end-to-end fixture: a real control plane, directory agents and gitfleetctl against a
// real Git repository, each a child process with its own log.
//
//   TEST_F(Fleet, Something) {
//     git_.Write("apps/web/web.yaml", Cm("web"));
//     std::string commit = git_.Commit("first");
//     StartControlPlane();
//     StartAgent("prod-eu", "env=prod");
//     AddSourceAndBundles();
//     ExpectSynced("prod-eu", "web", commit);
//   }

#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_system.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"
#include "tests/e2e/e2e_util.h"
#include "tests/util/git_fixture.h"
#include "tests/util/process.h"

namespace gitfleet::testing {

inline std::string Cm(const std::string& name, const std::string& value = "1") {
  return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name +
         "\n  namespace: shop\ndata:\n  value: \"" + value + "\"\n";
}

class Fleet : public ::testing::Test {
 protected:
  struct Agent {
    std::string name;
    std::string labels;
    std::string token;
    std::string out;
    std::string state;
    int http = 0;
    int starts = 0;
    std::vector<std::string> extra;
    std::unique_ptr<Process> process;
  };

  Fleet() : root_(TempDir("e2e")), git_(root_ + "/repo") {}

  void StartControlPlane(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--data-dir=" + data_dir_,
        absl::StrCat("--grpc=127.0.0.1:", grpc_port_),
        "--http=127.0.0.1:0",
        "--poll-interval-seconds=1",
    };
    // Most tests are about delivery: any agent may join, targeted by the labels it
    // reports. Tests of cluster identity set open_fleet_ = false (the default of the
    // control plane).
    if (open_fleet_) {
      args.push_back("--allow-any-agent");
      args.push_back("--trust-agent-labels");
    }
    if (allow_local_sources_) args.push_back("--allow-local-sources");  // file:// test repos
    args.insert(args.end(), extra.begin(), extra.end());
    cp_ = std::make_unique<Process>(kControlPlane, args,
                                    root_ + "/cp.log." + std::to_string(++cp_starts_));
    grpc_port_ = Port(cp_->WaitForLog(R"(serving gRPC on port (\d+))"));
    cp_http_ = Port(cp_->WaitForLog(R"(HTTP on port (\d+))"));
    admin_ = v1::AdminService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_), admin_credentials_));
    // The stub exists either way, so a test whose control plane failed fails cleanly.
    ASSERT_GT(grpc_port_, 0) << "control plane did not start:\n" << cp_->Log();
  }

  Agent& StartAgent(const std::string& name, const std::string& labels,
                    const std::string& token = "", std::vector<std::string> extra = {}) {
    Agent& agent = agents_[name];
    agent.name = name;
    agent.labels = labels;
    agent.token = token;
    agent.extra = std::move(extra);
    agent.out = root_ + "/out-" + name;
    agent.state = root_ + "/state-" + name;
    RestartAgent(name);
    return agent;
  }

  void RestartAgent(const std::string& name) {
    Agent& agent = agents_[name];
    std::vector<std::string> args = {absl::StrCat("--controlplane=127.0.0.1:", grpc_port_),
                                     "--cluster=" + name,
                                     "--labels=" + agent.labels,
                                     "--apply=directory:" + agent.out,
                                     "--state-dir=" + agent.state,
                                     "--http=127.0.0.1:0"};
    if (!agent.token.empty()) {
      // As deployments give it: in a file only the agent reads, not on the command line.
      const std::string token_file = root_ + "/token-" + name;
      ASSERT_TRUE(PosixFileSystem().WriteFileAtomically(token_file, agent.token).ok());
      args.push_back("--token-file=" + token_file);
    }
    args.insert(args.end(), agent.extra.begin(), agent.extra.end());
    agent.process = std::make_unique<Process>(
        kAgent, args, absl::StrCat(root_, "/agent-", name, ".log.", ++agent.starts));
    agent.http = Port(agent.process->WaitForLog(R"(HTTP on port (\d+))"));
    ASSERT_GT(agent.http, 0) << agent.process->Log();
  }

  // git daemon on a free loopback port, exporting every repository under root_ by its
  // path there (git://127.0.0.1:PORT/repo is git_); returns the port, 0 if it did not
  // start. It stops with `daemon`.
  int StartGitDaemon(std::unique_ptr<Process>* daemon) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      int candidate = 20000 + (getpid() * 7 + attempt * 131) % 20000;
      // git-daemon itself: `git daemon` runs it as a child, which a kill of `git` leaves
      // listening on the port until the test binary ends.
      std::vector<std::string> args = {"--reuseaddr",
                                       "--export-all",
                                       "--listen=127.0.0.1",
                                       absl::StrCat("--port=", candidate),
                                       "--base-path=" + root_,
                                       "--informative-errors",
                                       root_};
      std::string binary = "/usr/lib/git-core/git-daemon";
      if (access(binary.c_str(), X_OK) != 0) {
        binary = "/usr/bin/git";
        args.insert(args.begin(), "daemon");
      }
      *daemon = std::make_unique<Process>(binary, args,
                                          root_ + "/git-daemon.log." + std::to_string(attempt));
      absl::SleepFor(absl::Milliseconds(300));
      if ((*daemon)->running()) return candidate;
      ADD_FAILURE() << "git daemon on port " << candidate << ": " << (*daemon)->Log();
    }
    return 0;
  }

  // The repository served by git daemon (StartGitDaemon), a control plane, agent prod-eu
  // (env=prod), source demo reading it every second and bundle web of apps/web; returns the
  // source's --url flag, "" (with a test failure) when something did not start.
  std::string StartWebFromGitDaemon(std::unique_ptr<Process>* daemon) {
    const int port = StartGitDaemon(daemon);
    EXPECT_GT(port, 0) << "git daemon did not start";
    if (port == 0) return "";
    StartControlPlane();
    StartAgent("prod-eu", "env=prod");
    const std::string url = absl::StrCat("--url=git://127.0.0.1:", port, "/repo");
    int code;
    std::string out = Ctl({"source", "add", "demo", url, "--interval=1s"}, &code);
    EXPECT_EQ(code, 0) << out;
    out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web"}, &code);
    EXPECT_EQ(code, 0) << out;
    return code == 0 ? url : "";
  }

  // Source demo at `url` (a --url flag) replaced with the boolean `flag` on ("lfs"): the
  // answer names the change, and `source list` shows "(+flag)" after the URL.
  void TurnOnForDemo(const std::string& url, const std::string& flag) {
    int code;
    std::string out =
        Ctl({"source", "add", "demo", url, "--interval=1s", "--" + flag, "--replace"}, &code);
    ASSERT_EQ(code, 0) << out;
    EXPECT_THAT(out, ::testing::HasSubstr(absl::StrCat("--", flag, ": false -> true")));
    EXPECT_THAT(Ctl({"source", "list"}), ::testing::HasSubstr(absl::StrCat("/repo (+", flag, ")")));
  }

  std::string Ctl(const std::vector<std::string>& args, int* code = nullptr) {
    std::vector<std::string> all = ctl_flags_;
    all.insert(all.end(), args.begin(), args.end());
    return RunCtl(grpc_port_, all, code);
  }

  void AddSourceAndBundles() {
    int code;
    std::string out = Ctl({"source", "add", "demo", "--url=" + git_.url(), "--interval=1s"}, &code);
    ASSERT_EQ(code, 0) << out;
    out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web", "--selector=env=prod"},
              &code);
    ASSERT_EQ(code, 0) << out;
    out = Ctl({"bundle", "add", "base", "--source=demo", "--path=apps/base"}, &code);
    ASSERT_EQ(code, 0) << out;
  }

  // web (env=prod: a ConfigMap of each name in `web`) and base (Namespace shop) synced on
  // prod-eu at the first commit; returns it.
  std::string SyncedFleet(const std::vector<std::string>& web = {"web"}) {
    for (const std::string& name : web) git_.Write("apps/web/" + name + ".yaml", Cm(name));
    git_.Write("apps/base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    std::string first = git_.Commit("first");
    StartControlPlane();
    StartAgent("prod-eu", "env=prod");
    AddSourceAndBundles();
    ExpectSynced("prod-eu", "web", first);
    ExpectSynced("prod-eu", "base", first);
    return first;
  }

  // A context for the test's own admin calls: a 5 s deadline and admin_token_, if set.
  std::unique_ptr<grpc::ClientContext> AdminContext() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!admin_token_.empty()) context->AddMetadata("authorization", "Bearer " + admin_token_);
    return context;
  }

  std::vector<v1::BundleStatus> Status(const std::string& cluster = "",
                                       const std::string& bundle = "") {
    std::unique_ptr<grpc::ClientContext> context = AdminContext();
    v1::GetStatusRequest request;
    request.set_cluster(cluster);
    request.set_bundle(bundle);
    v1::GetStatusResponse response;
    if (!admin_->GetStatus(context.get(), request, &response).ok()) return {};
    return {response.statuses().begin(), response.statuses().end()};
  }

  // True once (cluster, bundle) is Synced at `commit`.
  bool SyncedAt(const std::string& cluster, const std::string& bundle, const std::string& commit) {
    std::vector<v1::BundleStatus> s = Status(cluster, bundle);
    return s.size() == 1 && s[0].sync_state() == v1::SYNC_STATE_SYNCED &&
           s[0].applied_commit() == commit && s[0].desired_commit() == commit;
  }

  void ExpectSynced(const std::string& cluster, const std::string& bundle,
                    const std::string& commit) {
    EXPECT_TRUE(Eventually([&] { return SyncedAt(cluster, bundle, commit); }))
        << cluster << "/" << bundle << " never synced at " << commit << "; status: "
        << (Status(cluster, bundle).empty() ? "none" : Status(cluster, bundle)[0].DebugString())
        << "\ncontrol plane log:\n"
        << cp_->Log();
  }

  int ConnectedClusters() {
    std::unique_ptr<grpc::ClientContext> context = AdminContext();
    v1::ListClustersResponse response;
    if (!admin_->ListClusters(context.get(), v1::ListClustersRequest(), &response).ok()) return -1;
    int connected = 0;
    for (const v1::ClusterInfo& c : response.clusters()) connected += c.connected();
    return connected;
  }

  std::vector<std::string> Files(const std::string& agent) {
    return *PosixFileSystem().ListFiles(agents_[agent].out);
  }

  std::string Read(const std::string& agent, const std::string& path) {
    return PosixFileSystem().ReadFile(agents_[agent].out + "/" + path).value_or("");
  }
  // The first file of `agent` whose path holds `part` ("ConfigMap/web"), or "".
  std::string ReadFileNamed(const std::string& agent, const std::string& part) {
    for (const std::string& file : Files(agent)) {
      if (absl::StrContains(file, part)) return Read(agent, file);
    }
    return "";
  }

  double AgentMetric(const std::string& agent, const std::string& series) {
    return MetricValue(HttpGet(agents_[agent].http, "/metrics"), series);
  }
  double CpMetric(const std::string& series) {
    return MetricValue(HttpGet(cp_http_, "/metrics"), series);
  }

  std::string root_;
  std::string data_dir_ = root_ + "/cp";
  GitFixture git_;
  std::unique_ptr<Process> cp_;
  int grpc_port_ = 0;
  int cp_http_ = 0;
  int cp_starts_ = 0;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::shared_ptr<grpc::ChannelCredentials> admin_credentials_ = grpc::InsecureChannelCredentials();
  std::vector<std::string> ctl_flags_;
  std::string admin_token_;  // for the test's own admin calls (AdminContext)
  bool open_fleet_ = true;   // --allow-any-agent --trust-agent-labels
  bool allow_local_sources_ = true;
  std::map<std::string, Agent> agents_;
};

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_E2E_FLEET_FIXTURE_H_
