// The fault suite: what an operator mistake, a lost disk, a restored backup or a crash
// does to a running fleet. Each test asserts that nothing applied is deleted or rolled back
// unless someone asked for it.

#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_system.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fleet_fixture.h"
#include "tests/util/etcd_server.h"
#include "tests/util/process.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::Cm;
using ::gitfleet::testing::Eventually;
using ::gitfleet::testing::Fleet;
using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kNamespace[] = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";

class Faults : public Fleet {
 protected:
  // Stops the control plane and starts it again on the same port with `data_dir`.
  void RestartControlPlaneOn(const std::string& data_dir, int signal = SIGTERM) {
    cp_->Kill(signal);
    data_dir_ = data_dir;
    StartControlPlane();
    ASSERT_TRUE(Eventually([&] { return ConnectedClusters() == 1; }, absl::Seconds(30)))
        << agents_["prod-eu"].process->Log();
  }

  std::string ClusterList() { return Ctl({"cluster", "list"}); }

  // Starts an etcd for the test (etcd_) and sets on_etcd_ to the control plane's flags for
  // it, with a store lock lease of `ttl_seconds`.
  void StartEtcd(int ttl_seconds) {
    absl::StatusOr<std::string> client_url = testing::StartEtcd(root_ + "/etcd", &etcd_);
    ASSERT_TRUE(client_url.ok()) << client_url.status();
    on_etcd_ = {"--store=etcd", "--etcd-endpoints=" + *client_url,
                absl::StrCat("--etcd-lock-ttl-seconds=", ttl_seconds)};
  }
  // The flags of another control plane on the same etcd, with its own data dir and ports.
  std::vector<std::string> SecondOnEtcd(const std::string& data_dir) const {
    std::vector<std::string> args = {"--data-dir=" + data_dir, "--grpc=127.0.0.1:0",
                                     "--http=127.0.0.1:0"};
    args.insert(args.end(), on_etcd_.begin(), on_etcd_.end());
    return args;
  }

  std::unique_ptr<testing::Process> etcd_;
  std::vector<std::string> on_etcd_;

  std::vector<std::string> Orphans() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListClustersResponse response;
    if (!admin_->ListClusters(&context, v1::ListClustersRequest(), &response).ok() ||
        response.clusters_size() != 1) {
      return {"?"};
    }
    const auto& orphans = response.clusters(0).orphaned_bundles();
    return {orphans.begin(), orphans.end()};
  }

  const std::vector<std::string> kAllFiles = {"_cluster/Namespace/shop.yaml",
                                              "shop/ConfigMap/web.yaml"};
};

TEST_F(Faults, AnEmptyDataDirOrphansWhatAgentsHoldAndRemovesNothing) {
  SyncedFleet();
  ASSERT_EQ(Files("prod-eu"), kAllFiles);

  RestartControlPlaneOn(root_ + "/cp-empty");
  std::string clusters;
  EXPECT_TRUE(Eventually([&] {
    clusters = ClusterList();
    return clusters.find("base,web") != std::string::npos;
  })) << clusters;
  EXPECT_THAT(clusters, HasSubstr("served by fleet"));
  EXPECT_THAT(Ctl({"status", "--cluster=prod-eu"}), HasSubstr("Orphaned"));
  EXPECT_THAT(Ctl({"status", "-o", "json"}), HasSubstr("\"orphaned\": true"));
  EXPECT_EQ(CpMetric("gitfleet_orphaned_bundles"), 2);
  // Give a wrong removal every chance to happen.
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Files("prod-eu"), kAllFiles);
  EXPECT_THAT(agents_["prod-eu"].process->Log(), Not(HasSubstr("pruned 1")));

  // The operator defines the fleet again, from a newer commit: the agent, served by another
  // fleet before, does not let it replace what it holds.
  git_.Write("apps/web/web.yaml", Cm("web", "2"));
  std::string second = git_.Commit("second");
  AddSourceAndBundles();
  EXPECT_FALSE(agents_["prod-eu"].process->WaitForLog("refused revision").empty());
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/web.yaml"), HasSubstr("value: \"1\""));
  EXPECT_TRUE(Eventually([&] { return ClusterList().find("ForeignFleet") != std::string::npos; }))
      << ClusterList();

  // Until the operator adopts the cluster.
  int code;
  std::string out = Ctl({"cluster", "adopt", "prod-eu"}, &code);
  ASSERT_EQ(code, 0) << out;
  ExpectSynced("prod-eu", "web", second);
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/web.yaml"), HasSubstr("value: \"2\""));
  EXPECT_THAT(ClusterList(), Not(HasSubstr("served by fleet")));
  // Adopted, an explicit removal works as always.
  ASSERT_EQ((Ctl({"bundle", "remove", "web"}, &code), code), 0);
  EXPECT_TRUE(Eventually([&] {
    return Files("prod-eu") == std::vector<std::string>{"_cluster/Namespace/shop.yaml"};
  })) << agents_["prod-eu"].process->Log();
}

TEST_F(Faults, AnOrphanIsReleasedOnlyByAnOperator) {
  SyncedFleet();
  RestartControlPlaneOn(root_ + "/cp-empty");
  ASSERT_TRUE(Eventually([&] { return Orphans() == std::vector<std::string>{"base", "web"}; }));
  int code;
  std::string out = Ctl({"cluster", "forget", "prod-eu", "--bundle=nope"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("does not hold bundle \"nope\""));
  // Forget without --prune: the agent stops managing web, and its objects stay.
  out = Ctl({"cluster", "forget", "prod-eu", "--bundle=web"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] { return Orphans() == std::vector<std::string>{"base"}; }))
      << ClusterList();
  EXPECT_EQ(Files("prod-eu"), kAllFiles);
  // The cluster says what web left (no bundle status shows it any more).
  EXPECT_TRUE(Eventually([&] {
    return ClusterList().find(
               "LeftUnmanaged: bundle web, removed without pruning, left 1 "
               "object in place, unmanaged") != std::string::npos;
  })) << ClusterList();
  // With --prune it deletes what gitfleet created, but not the Namespace web's object,
  // kept by the operator, sits in: deleting it would delete that too. It says so.
  out = Ctl({"cluster", "forget", "prod-eu", "--bundle=base", "--prune"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(Eventually([&] {
    return ClusterList().find("bundle web left 1 object in it unmanaged") != std::string::npos;
  })) << ClusterList()
      << agents_["prod-eu"].process->Log();
  EXPECT_EQ(Files("prod-eu"), kAllFiles);
  EXPECT_TRUE(Orphans().empty());
}

TEST_F(Faults, AnOlderBackupCannotRollBackOrRemoveWhatIsApplied) {
  SyncedFleet();
  int code;
  std::string out = Ctl({"backup", "--out=" + root_ + "/backup.db"}, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("written to"));

  // After the backup: web's definition changes (generation 2) and a bundle is added.
  git_.Write("apps/web2/web.yaml", Cm("web", "new"));
  git_.Write("apps/extra/extra.yaml", Cm("extra"));
  std::string second = git_.Commit("second");
  out = Ctl({"bundle", "add", "web", "--source=demo", "--path=apps/web2", "--selector=env=prod",
             "--replace"},
            &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_EQ((Ctl({"bundle", "add", "extra", "--source=demo", "--path=apps/extra"}, &code), code),
            0);
  ExpectSynced("prod-eu", "web", second);
  ExpectSynced("prod-eu", "extra", second);

  // The backup is restored: web at generation 1, and no extra at all.
  cp_->Kill(SIGTERM);
  std::string restored = root_ + "/cp-restored";
  ASSERT_TRUE(PosixFileSystem()
                  .WriteFileAtomically(restored + "/gitfleet.db",
                                       *PosixFileSystem().ReadFile(root_ + "/backup.db"))
                  .ok());
  data_dir_ = restored;
  StartControlPlane();
  EXPECT_FALSE(agents_["prod-eu"].process->WaitForLog("control plane behind").empty())
      << agents_["prod-eu"].process->Log();
  EXPECT_TRUE(Eventually([&] { return ClusterList().find("extra") != std::string::npos; }));
  absl::SleepFor(absl::Seconds(2));
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/web.yaml"), HasSubstr("value: new"));
  EXPECT_THAT(Read("prod-eu", "shop/ConfigMap/extra.yaml"), HasSubstr("extra"));
  EXPECT_THAT(ClusterList(), HasSubstr("ControlPlaneBehind"));
}

TEST_F(Faults, ACorruptAgentStateFileCostsOneBundleNotTheAgent) {
  std::string first = SyncedFleet();
  Agent& agent = agents_["prod-eu"];
  agent.process->Kill(SIGTERM);
  std::ofstream(agent.state + "/bundles/web.pb") << "this is not a protobuf \xff\xff\xff";
  std::ofstream(agent.state + "/bundles/base.pb.tmp-123-456") << "left by a crash";
  RestartAgent("prod-eu");
  EXPECT_FALSE(agent.process->WaitForLog("is corrupt; moved to").empty()) << agent.process->Log();
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("prod-eu", "base", first);
  EXPECT_TRUE(PosixFileSystem().ReadFile(agent.state + "/bundles/web.pb.corrupt").ok());
  EXPECT_FALSE(PosixFileSystem().ReadFile(agent.state + "/bundles/base.pb.tmp-123-456").ok());
  // Eventually: a listing may catch a write in flight (its temporary file beside it).
  EXPECT_TRUE(Eventually([&] { return Files("prod-eu") == kAllFiles; }))
      << absl::StrJoin(Files("prod-eu"), ", ");
  EXPECT_TRUE(Eventually([&] {
    return ClusterList().find("CorruptStateFile") != std::string::npos;
  })) << ClusterList();
}

TEST_F(Faults, ACorruptStoreRowIsSkippedAndTheRestServed) {
  std::string first = SyncedFleet();
  cp_->Kill(SIGTERM);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((data_dir_ + "/gitfleet.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         // The store binds buckets and keys as blobs.
                         "INSERT INTO kv (bucket, key, value) VALUES "
                         "(CAST('bundles' AS BLOB), CAST('broken' AS BLOB), x'ffffffff'), "
                         "(CAST('sources' AS BLOB), CAST('bad' AS BLOB), x'0a')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  StartControlPlane();
  EXPECT_FALSE(cp_->WaitForLog("skipping stored bundle \"broken\"").empty()) << cp_->Log();
  EXPECT_EQ(CpMetric("gitfleet_store_rows_skipped_total{bucket=\"bundle\"}"), 1);
  EXPECT_EQ(CpMetric("gitfleet_store_rows_skipped_total{bucket=\"source\"}"), 1);
  ExpectSynced("prod-eu", "web", first);
  EXPECT_EQ(Files("prod-eu"), kAllFiles);
}

TEST_F(Faults, AnAliasBombCommitFailsItsBundleAndKeepsWhatRuns) {
  std::string first = SyncedFleet();
  std::string bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\nl0: &l0 [lol]\n";
  for (int level = 1; level <= 12; ++level) {
    absl::StrAppend(&bomb, "l", level, ": &l", level, " [");
    for (int i = 0; i < 9; ++i) absl::StrAppend(&bomb, i == 0 ? "" : ",", "*l", level - 1);
    absl::StrAppend(&bomb, "]\n");
  }
  git_.Write("apps/web/bomb.yaml", bomb);
  std::string second = git_.Commit("billion laughs");
  std::string bundles;
  EXPECT_TRUE(Eventually([&] {
    bundles = Ctl({"bundle", "list"});
    return bundles.find("once its aliases are expanded") != std::string::npos;
  })) << bundles
      << cp_->Log();
  EXPECT_THAT(bundles, HasSubstr("apps/web/bomb.yaml:"));
  std::vector<v1::BundleStatus> web = Status("prod-eu", "web");
  ASSERT_EQ(web.size(), 1u);
  EXPECT_EQ(web[0].applied_commit(), first) << "the last good revision stays";
  EXPECT_THAT(web[0].message(), HasSubstr("once its aliases are expanded"));
  EXPECT_EQ(Files("prod-eu"), kAllFiles);
  // Bounded memory: the control plane stayed small (the expansion would take terabytes).
  std::string status =
      PosixFileSystem().ReadFile(absl::StrCat("/proc/", cp_->pid(), "/status")).value_or("");
  size_t at = status.find("VmHWM:");
  ASSERT_NE(at, std::string::npos) << status;
  EXPECT_LT(std::stol(status.substr(at + 6)), 512 * 1024) << "peak RSS in KiB";
}

// A loopback TCP listener that completes handshakes (the kernel does) and never answers.
int HangingServer(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 16) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

TEST_F(Faults, HangingGitServersBlockNeitherOtherSourcesNorTheApiNorShutdown) {
  git_.Write("apps/web/web.yaml", Cm("web"));
  git_.Write("apps/base/ns.yaml", kNamespace);
  std::string first = git_.Commit("first");
  StartControlPlane({"--fetch-timeout-seconds=2"});
  StartAgent("prod-eu", "env=prod");
  std::vector<int> listeners;
  int code;
  for (int i = 0; i < 5; ++i) {
    int port = 0;
    int fd = HangingServer(&port);
    ASSERT_GE(fd, 0);
    listeners.push_back(fd);
    std::string scheme = i % 2 == 0 ? "git" : "http";
    std::string out =
        Ctl({"source", "add", absl::StrCat("hang", i),
             absl::StrCat("--url=", scheme, "://127.0.0.1:", port, "/repo"), "--interval=1s"},
            &code);
    EXPECT_THAT(out, HasSubstr("timed out")) << out;
  }
  // The fetch threads are busy with hanging servers, and still:
  absl::Time start = absl::Now();
  std::string list = Ctl({"source", "list"}, &code);
  EXPECT_EQ(code, 0) << list;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "source list answers at once";
  EXPECT_THAT(list, HasSubstr("timed out reading from 127.0.0.1"));
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("prod-eu", "base", first);
  // Shutdown does not wait for them.
  start = absl::Now();
  cp_->Kill(SIGTERM);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  for (int fd : listeners) close(fd);
}

// Fills the filesystem holding `dir` with one file, which is returned for removal.
std::string FillDisk(const std::string& dir) {
  std::string filler = dir + "/filler";
  FILE* f = fopen(filler.c_str(), "w");
  if (f == nullptr) return filler;
  std::string block(4096, 'x');
  while (fwrite(block.data(), 1, block.size(), f) == block.size() && fflush(f) == 0) {
  }
  fclose(f);
  return filler;
}

TEST_F(Faults, AFullDiskOnEitherSideLosesNothingAndRecovers) {
  // Real small filesystems: a tmpfs for the agent's state and one for the control plane's data.
  std::string state = root_ + "/state-prod-eu";
  std::string data = root_ + "/cp-small";
  // Unmounted however the test ends (lazily: the daemons may still hold them open).
  struct Unmount {
    std::vector<std::string> dirs;
    ~Unmount() {
      for (const std::string& dir : dirs) ::gitfleet::testing::Run("umount -l '" + dir + "'");
    }
  } unmount;
  for (const std::string& dir : {state, data}) {
    ASSERT_EQ(::gitfleet::testing::Run("mkdir -p '" + dir + "'"), 0);
    std::string out;
    if (::gitfleet::testing::Run("mount -t tmpfs -o size=1m,mode=0700 tmpfs '" + dir + "'", &out) !=
        0) {
      GTEST_SKIP() << "cannot mount a small tmpfs here (needs root): " << out;
    }
    unmount.dirs.push_back(dir);
  }
  data_dir_ = data;
  std::string first = SyncedFleet();

  // The agent's disk fills: a change that adds an object cannot be recorded, so it is not
  // applied; what runs stays, and the status says why.
  std::string agent_filler = FillDisk(state);
  git_.Write("apps/web/more.yaml", Cm("more"));
  std::string second = git_.Commit("more");
  EXPECT_TRUE(Eventually([&] {
    std::vector<v1::BundleStatus> web = Status("prod-eu", "web");
    return web.size() == 1 && web[0].sync_state() == v1::SYNC_STATE_FAILED &&
           web[0].message().find("No space left") != std::string::npos;
  })) << (Status("prod-eu", "web").empty() ? "" : Status("prod-eu", "web")[0].DebugString());
  EXPECT_EQ(Files("prod-eu"), kAllFiles);

  // The control plane's disk fills: a definition write fails clearly, nothing else changes.
  std::string cp_filler = FillDisk(data);
  int code;
  std::string out = Ctl(
      {"bundle", "add", "other", "--source=demo", "--path=apps/web", "--selector=env=none"}, &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("full"));
  EXPECT_THAT(Ctl({"bundle", "list"}), Not(HasSubstr("other")));

  // Space returns: both recover on their own.
  ASSERT_EQ(unlink(agent_filler.c_str()), 0);
  ASSERT_EQ(unlink(cp_filler.c_str()), 0);
  EXPECT_TRUE(Eventually([&] { return SyncedAt("prod-eu", "web", second); }, absl::Seconds(60)))
      << agents_["prod-eu"].process->Log();
  EXPECT_THAT(Files("prod-eu"), ::testing::Contains("shop/ConfigMap/more.yaml"));
  out = Ctl({"bundle", "add", "other", "--source=demo", "--path=apps/web", "--selector=env=none"},
            &code);
  EXPECT_EQ(code, 0) << out;

  agents_["prod-eu"].process->Kill(SIGTERM);
  cp_->Kill(SIGTERM);
}

// With --store=etcd the fleet's state outlives the control plane's machine: a second one
// is refused while the first holds the store, a standby on an empty --data-dir waits, and
// takes over when the first's machine is lost, serving the same fleet (its agents keeping
// what they run) and delivering on; a backup is the SQLite file any store's is.
TEST_F(Faults, TheStateInEtcdOutlivesTheControlPlanesDisk) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd(/*ttl_seconds=*/3));
  const std::vector<std::string>& on_etcd = on_etcd_;
  git_.Write("apps/web/web.yaml", Cm("web"));
  git_.Write("apps/base/ns.yaml", kNamespace);
  const std::string first = git_.Commit("first");
  StartControlPlane(on_etcd);
  StartAgent("prod-eu", "env=prod");
  AddSourceAndBundles();
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("prod-eu", "base", first);
  EXPECT_NE(access((data_dir_ + "/gitfleet.db").c_str(), F_OK), 0)
      << "none of the fleet's state is on this disk";

  testing::Process second(testing::kControlPlane, SecondOnEtcd(root_ + "/cp2"), root_ + "/cp2.log");
  EXPECT_TRUE(Eventually([&] { return !second.running(); }, absl::Seconds(30))) << second.Log();
  EXPECT_THAT(second.Log(), ContainsRegex("is held by another control plane \\(.+ pid [0-9]+\\)"))
      << "it names the holder's host and pid";

  // A standby on another machine (an empty --data-dir) waits without serving, on the same
  // address; the first's machine is lost (a crash: the lock's lease lapses on its own), and
  // the standby takes over.
  std::vector<std::string> args = {"--data-dir=" + root_ + "/cp-standby",
                                   absl::StrCat("--grpc=127.0.0.1:", grpc_port_),
                                   "--http=127.0.0.1:0",
                                   "--poll-interval-seconds=1",
                                   "--allow-any-agent",
                                   "--trust-agent-labels",
                                   "--allow-local-sources",
                                   "--etcd-standby"};
  args.insert(args.end(), on_etcd.begin(), on_etcd.end());
  auto standby =
      std::make_unique<testing::Process>(testing::kControlPlane, args, root_ + "/cp-standby.log");
  EXPECT_FALSE(
      standby->WaitForLog("standing by: the store at /gitfleet/ in etcd is held by").empty())
      << standby->Log();
  EXPECT_TRUE(standby->running());
  // While it waits it answers on --http: alive (a liveness probe leaves it be), not ready
  // (no traffic comes its way), and says so to Prometheus.
  const int standby_http =
      testing::Port(standby->WaitForLog(R"(\(not ready\) and /metrics on port (\d+))"));
  ASSERT_GT(standby_http, 0) << standby->Log();
  int status = 0;
  EXPECT_EQ(testing::HttpGet(standby_http, "/healthz", &status), "ok\n");
  EXPECT_EQ(status, 200);
  EXPECT_THAT(testing::HttpGet(standby_http, "/readyz", &status),
              ContainsRegex("standing by: the store is held by another control plane \\(.+ pid "
                            "[0-9]+\\)"));
  EXPECT_EQ(status, 503);
  EXPECT_EQ(testing::MetricValue(testing::HttpGet(standby_http, "/metrics"),
                                 "gitfleet_controlplane_standby"),
            1);
  cp_->Kill(SIGKILL);
  cp_ = std::move(standby);
  cp_http_ = testing::Port(cp_->WaitForLog(R"(HTTP on port (\d+))", absl::Seconds(30)));
  ASSERT_GT(cp_http_, 0) << cp_->Log();
  ASSERT_TRUE(Eventually([&] { return ConnectedClusters() == 1; }, absl::Seconds(30)))
      << cp_->Log();
  ExpectSynced("prod-eu", "web", first);
  EXPECT_EQ(Files("prod-eu"), kAllFiles);
  EXPECT_EQ(CpMetric("gitfleet_orphaned_bundles"), 0);
  EXPECT_THAT(Ctl({"bundle", "list"}), HasSubstr("web"));
  git_.Write("apps/web/web.yaml", Cm("web", "2"));
  const std::string second_commit = git_.Commit("second");
  ExpectSynced("prod-eu", "web", second_commit);

  int code = 0;
  std::string out = Ctl({"backup", "--out=" + root_ + "/etcd-backup.db"}, &code);
  ASSERT_EQ(code, 0) << out;
  sqlite3* db = nullptr;
  ASSERT_EQ(
      sqlite3_open_v2((root_ + "/etcd-backup.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
      SQLITE_OK);
  sqlite3_stmt* count = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM kv WHERE CAST(bucket AS TEXT) = 'bundles'",
                               -1, &count, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(count), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(count, 0), 2) << "web and base; " << out;
  sqlite3_finalize(count);
  sqlite3_close(db);
}

// A standby reads and checks every flag before it waits for the store: a mistake in one stops
// it at once, saying which, not hours later when the control plane it stands by for is lost
// and it is the one that must serve.
TEST_F(Faults, AStandbyWithABadFlagStopsAtOnceNotWhenItTakesOver) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd(/*ttl_seconds=*/3));
  StartControlPlane(on_etcd_);
  ASSERT_EQ(testing::Run("printf 'not: [a list' > " + root_ + "/groups.yaml"), 0);
  ASSERT_EQ(testing::Run("printf 'no key here' > " + root_ + "/pgp.asc"), 0);
  ASSERT_EQ(testing::Run("printf 'ftp://example.com/x\\n' > " + root_ + "/notify"), 0);
  ASSERT_EQ(testing::Run("printf 'https://github.com/acme/fleet github token-file=" + root_ +
                         "/no-token\\n' > " + root_ + "/statuses"),
            0);
  ASSERT_EQ(testing::Run("printf 'https://github.com/acme/fleet github credential=gh\\n' > " +
                         root_ + "/credential-statuses"),
            0);
  const std::vector<std::pair<std::string, std::string>> mistakes = {
      {"--render-workers=0", "--render-workers must be between 1 and 64"},
      {"--git-credentials=https://git.example.com/=org",
       "it names credentials, but there is no --credentials-dir"},
      {"--chart-credentials=https://charts.example.com/=org",
       "--chart-credentials: https://charts.example.com/=org"},
      {"--cluster-groups=" + root_ + "/groups.yaml", "--cluster-groups"},
      {"--kustomize-load-restrictor=none", "want LoadRestrictionsRootOnly or LoadRestrictionsNone"},
      {"--max-concurrent-handshakes=0", "--max-concurrent-handshakes"},
      {"--sops-pgp-key-file=" + root_ + "/pgp.asc",
       "--sops-pgp-key-file: holds no armored PGP private key"},
      {"--notify-file=" + root_ + "/notify", "--notify-file: notify file line 1: not an http(s)"},
      {"--notify-secret-file=" + root_ + "/pgp.asc", "--notify-secret-file: there is no"},
      {"--notify-file=" + root_ + "/statuses", "--notify-file line 1's token-file"},
      {"--notify-file=" + root_ + "/credential-statuses",
       "--notify-file line 1's credential=gh: the control plane has no --credentials-dir"},
  };
  for (const auto& [flag, said] : mistakes) {
    std::vector<std::string> args = SecondOnEtcd(root_ + "/cp-standby");
    args.push_back("--etcd-standby");
    args.push_back(flag);
    testing::Process standby(testing::kControlPlane, args, root_ + "/cp-standby.log");
    std::optional<int> status = standby.WaitForExit(absl::Seconds(30));
    ASSERT_TRUE(status.has_value()) << flag << ": it stood by\n" << standby.Log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << flag << ": " << *status;
    EXPECT_THAT(standby.Log(), HasSubstr(said)) << flag;
    EXPECT_THAT(standby.Log(), Not(HasSubstr("standing by"))) << flag;
  }
  EXPECT_TRUE(cp_->running()) << cp_->Log();
}

// A control plane that loses the etcd store's lock (paused past its lease, as a long GC pause
// or a partition would leave it, while another took the store) stops, saying why, with a
// non-zero exit for its supervisor: it never writes over the one that holds the store now.
TEST_F(Faults, AControlPlaneThatLostTheEtcdLockStops) {
  ASSERT_NO_FATAL_FAILURE(StartEtcd(/*ttl_seconds=*/2));
  StartControlPlane(on_etcd_);
  ASSERT_EQ(kill(cp_->pid(), SIGSTOP), 0);
  testing::Process second(testing::kControlPlane, SecondOnEtcd(root_ + "/cp2"), root_ + "/cp2.log");
  const bool took = !second.WaitForLog(R"(serving gRPC on port (\d+))", absl::Seconds(30)).empty();
  ASSERT_EQ(kill(cp_->pid(), SIGCONT), 0);
  ASSERT_TRUE(took) << second.Log();
  std::optional<int> status = cp_->WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << cp_->Log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << *status;
  EXPECT_THAT(cp_->Log(), HasSubstr("stopping: the etcd store is no longer this control plane's"));
  EXPECT_TRUE(second.running()) << second.Log();
  second.Kill(SIGTERM);
}

TEST_F(Faults, KillNineOfTheControlPlaneLosesNothingApplied) {
  std::string first = SyncedFleet();
  // What a render killed with its control plane leaves behind.
  const std::string stale = data_dir_ + "/render/render-Xy12ab";
  ASSERT_EQ(system(("mkdir -p " + stale + " && echo x > " + stale + "/kustomization.yaml").c_str()),
            0);
  // SIGKILL while reports are still waiting to be written behind.
  RestartControlPlaneOn(data_dir_, SIGKILL);
  EXPECT_NE(access(stale.c_str(), F_OK), 0) << "stale render copies are cleared at start";
  ExpectSynced("prod-eu", "web", first);
  ExpectSynced("prod-eu", "base", first);
  EXPECT_EQ(Files("prod-eu"), kAllFiles);
  EXPECT_THAT(ClusterList(), Not(HasSubstr("served by fleet")));
  EXPECT_EQ(CpMetric("gitfleet_orphaned_bundles"), 0);
}

}  // namespace
}  // namespace gitfleet
