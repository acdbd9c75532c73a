#include "controlplane/store/etcd_store.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "controlplane/store/store_conformance.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/etcd/rpc.grpc.pb.h"
#include "tests/util/etcd_server.h"
#include "tests/util/git_servers.h"
#include "tests/util/process.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  std::string tmpl =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/etcdXXXXXX";
  return std::string(mkdtemp(tmpl.data()));
}

std::string Bytes(size_t size, uint32_t seed) {
  std::mt19937 bits(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(bits());
  return out;
}

// One etcd for the suite, on loopback ports of its own.
class EtcdStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    etcd_ = new std::unique_ptr<testing::Process>();
    started_ = new absl::StatusOr<std::string>(testing::StartEtcd(TempDir(), etcd_));
  }
  static void TearDownTestSuite() {
    delete etcd_;
    etcd_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(started_->ok()) << started_->status();
    auto channel = grpc::CreateChannel(started_->value().substr(strlen("http://")),
                                       grpc::InsecureChannelCredentials());
    raw_ = etcdserverpb::KV::NewStub(channel);
  }
  // A prefix no other test uses.
  std::string Prefix() {
    return absl::StrCat("/", ::testing::UnitTest::GetInstance()->current_test_info()->name(), "/",
                        ++prefixes_, "/");
  }
  EtcdOptions Options(const std::string& prefix) {
    EtcdOptions options;
    options.endpoints = {started_->value()};
    options.prefix = prefix;
    options.holder = "test";
    options.lock_ttl = absl::Seconds(2);
    return options;
  }
  // How many keys etcd holds under `prefix`, read past the store.
  int64_t KeysUnder(const std::string& prefix) {
    etcdserverpb::RangeRequest request;
    request.set_key(prefix);
    std::string end = prefix;
    end.back() = static_cast<char>(end.back() + 1);
    request.set_range_end(end);
    request.set_count_only(true);
    etcdserverpb::RangeResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(raw_->Range(&context, request, &response).ok());
    return response.count();
  }
  void RawPut(const std::string& key, const std::string& value) {
    etcdserverpb::PutRequest request;
    request.set_key(key);
    request.set_value(value);
    etcdserverpb::PutResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(raw_->Put(&context, request, &response).ok());
  }

  static std::unique_ptr<testing::Process>* etcd_;
  static absl::StatusOr<std::string>* started_;
  int prefixes_ = 0;
  std::unique_ptr<etcdserverpb::KV::Stub> raw_;
};

std::unique_ptr<testing::Process>* EtcdStoreTest::etcd_ = nullptr;
absl::StatusOr<std::string>* EtcdStoreTest::started_ = nullptr;

TEST_F(EtcdStoreTest, DoesWhatEveryStoreDoesAndKeepsItAcrossOpens) {
  const std::string prefix = Prefix();
  {
    absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(Options(prefix));
    ASSERT_TRUE(store.ok()) << store.status();
    ExerciseStore(**store);
  }
  absl::StatusOr<std::unique_ptr<EtcdStore>> again = EtcdStore::Open(Options(prefix));
  ASSERT_TRUE(again.ok()) << again.status() << ": the lock is given up on close";
  EXPECT_EQ(*(*again)->Get("sources", "b"), "2");
  // Another prefix is another store.
  absl::StatusOr<std::unique_ptr<EtcdStore>> other = EtcdStore::Open(Options(Prefix()));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ((*other)->Get("sources", "b").status().code(), absl::StatusCode::kNotFound);
}

// A value over etcd's request size is kept in chunks, read back whole, listed, backed up;
// replaced or deleted, its chunks go.
TEST_F(EtcdStoreTest, ABigValueIsChunkedAndItsChunksGoWithIt) {
  const std::string prefix = Prefix();
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(Options(prefix));
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string big = Bytes(5 * (*store)->chunk_bytes() + 17, 1);
  const std::string bigger = Bytes(3 * (2 << 20), 2);  // 6 MiB: four times etcd's request
  ASSERT_TRUE(
      (*store)
          ->Apply({Store::Put("revisions", "web/1", big), Store::Put("revisions", "web/2", bigger),
                   Store::Put("revisions", "web/3", "small")})
          .ok());
  EXPECT_EQ(*(*store)->Get("revisions", "web/1"), big);
  absl::StatusOr<std::vector<Store::Entry>> listed = (*store)->List("revisions");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[1].value, bigger);
  EXPECT_EQ(KeysUnder(prefix + "o/"), 2);

  const std::string backup = TempDir() + "/backup.db";
  ASSERT_TRUE((*store)->Backup(backup).ok());
  absl::StatusOr<std::unique_ptr<SqliteStore>> copy = SqliteStore::Open(backup);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(*(*copy)->Get("revisions", "web/2"), bigger);
  EXPECT_EQ(*(*copy)->Get("revisions", "web/3"), "small");

  ASSERT_TRUE((*store)
                  ->Apply({Store::Put("revisions", "web/1", "now small"),
                           Store::Delete("revisions", "web/2")})
                  .ok());
  EXPECT_EQ(*(*store)->Get("revisions", "web/1"), "now small");
  EXPECT_EQ(KeysUnder(prefix + "c/"), 0) << "the replaced values' chunks are deleted";
  EXPECT_EQ(KeysUnder(prefix + "o/"), 0);
}

// A batch past etcd's --max-txn-ops lands as several transactions, in order.
TEST_F(EtcdStoreTest, ABatchPastEtcdsLimitsLandsWhole) {
  EtcdOptions options = Options(Prefix());
  options.max_txn_ops = 8;
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<Store::Write> writes;
  for (int i = 0; i < 50; ++i) {
    writes.push_back(
        Store::Put("reports", absl::StrCat("c", absl::Dec(i, absl::kZeroPad2)), absl::StrCat(i)));
  }
  ASSERT_TRUE((*store)->Apply(writes).ok());
  absl::StatusOr<std::vector<Store::Entry>> listed = (*store)->List("reports");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 50u) << "listed in pages";
  EXPECT_EQ(listed->back().key, "c49");
  EXPECT_EQ(listed->back().value, "49");
}

// One control plane writes a store: another is refused, naming the holder, until the first
// gives it up; one whose lock was taken writes nothing more, and is told.
TEST_F(EtcdStoreTest, OneControlPlaneHoldsAStoreAndOneThatLostItWritesNothing) {
  const std::string prefix = Prefix();
  EtcdOptions first = Options(prefix);
  first.holder = "cp-1 pid 10";
  absl::Status lost;
  int told = 0;
  first.on_lock_lost = [&](const absl::Status& why) {
    lost = why;
    ++told;
  };
  absl::StatusOr<std::unique_ptr<EtcdStore>> holder = EtcdStore::Open(first);
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE((*holder)->Apply({Store::Put("bundles", "web", "1")}).ok());

  EtcdOptions second = Options(prefix);
  second.holder = "cp-2 pid 20";
  const absl::Time began = absl::Now();
  absl::StatusOr<std::unique_ptr<EtcdStore>> refused = EtcdStore::Open(second);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("is held by another control plane (cp-1 pid 10)"));
  EXPECT_GE(absl::Now() - began, absl::Seconds(2)) << "it waited for the lease to lapse";

  // The lock taken behind its back (as by another after a partition): fenced.
  RawPut(prefix + "lock", "someone else");
  absl::Status write = (*holder)->Apply({Store::Put("bundles", "web", "2")});
  EXPECT_EQ(write.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(write.message()), HasSubstr("no longer holds the store"));
  EXPECT_EQ(told, 1);
  EXPECT_EQ(*(*holder)->Get("bundles", "web"), "1") << "nothing was written";
  EXPECT_EQ((*holder)->Apply({Store::Put("bundles", "web", "3")}).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(told, 1) << "told once";
}

// A standby waits for the store as long as another holds it, and takes over when that one
// stops; told to stop meanwhile, it gives up.
TEST_F(EtcdStoreTest, AStandbyTakesOverWhenTheHolderStops) {
  const std::string prefix = Prefix();
  absl::StatusOr<std::unique_ptr<EtcdStore>> holder = EtcdStore::Open(Options(prefix));
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE((*holder)->Apply({Store::Put("bundles", "web", "1")}).ok());
  EtcdOptions waiting = Options(prefix);
  waiting.standby = true;
  std::atomic<bool> done{false};
  absl::StatusOr<std::unique_ptr<EtcdStore>> standby;
  std::thread opener([&] {
    standby = EtcdStore::Open(waiting);
    done = true;
  });
  absl::SleepFor(absl::Seconds(5));  // past the lease and the wait of a control plane
  EXPECT_FALSE(done) << "it stands by while the holder holds the store";
  holder->reset();
  EXPECT_TRUE(testing::Eventually([&] { return done.load(); }, absl::Seconds(10)));
  opener.join();
  ASSERT_TRUE(standby.ok()) << standby.status();
  EXPECT_EQ(*(*standby)->Get("bundles", "web"), "1");
  ASSERT_TRUE((*standby)->Apply({Store::Put("bundles", "web", "2")}).ok());

  EtcdOptions stopped = Options(prefix);
  stopped.standby = true;
  std::atomic<int> asked{0};
  stopped.stop_waiting = [&] { return ++asked >= 2; };
  EXPECT_EQ(EtcdStore::Open(stopped).status().code(), absl::StatusCode::kCancelled);
}

// A crash between a big value's chunks and its entry leaves chunks nobody names: the
// next Open deletes them, and only them.
TEST_F(EtcdStoreTest, ChunksACrashLeftAreDeletedAtTheNextOpen) {
  const std::string prefix = Prefix();
  {
    absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(Options(prefix));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(
        (*store)
            ->Apply({Store::Put("revisions", "kept", Bytes(3 * (*store)->chunk_bytes(), 3)),
                     Store::Put("revisions", "lost", Bytes(2 * (*store)->chunk_bytes(), 4))})
            .ok());
  }
  // As if the entry never landed: it holds a small value, its chunks stay behind.
  RawPut(prefix + "d/revisions/lost", "vsmall");
  const int64_t before = KeysUnder(prefix + "c/");
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(Options(prefix));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(KeysUnder(prefix + "o/"), 1);
  EXPECT_EQ(KeysUnder(prefix + "c/"), before - 2);
  EXPECT_EQ((*store)->Get("revisions", "kept")->size(), 3 * (*store)->chunk_bytes());
  EXPECT_EQ(*(*store)->Get("revisions", "lost"), "small");
  // What the sweep found named is known: replaced after the restart, its chunks go too.
  ASSERT_TRUE((*store)->Apply({Store::Put("revisions", "kept", "small too")}).ok());
  EXPECT_EQ(KeysUnder(prefix + "c/"), 0);
  EXPECT_EQ(KeysUnder(prefix + "o/"), 0);
}

// A member that does not answer gives way to the next.
TEST_F(EtcdStoreTest, AMemberThatDoesNotAnswerGivesWayToTheNext) {
  EtcdOptions options = Options(Prefix());
  options.timeout = absl::Seconds(2);
  options.endpoints.insert(options.endpoints.begin(),
                           absl::StrCat("http://127.0.0.1:", testing::FreePort()));
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Apply({Store::Put("bundles", "web", "1")}).ok());
  EXPECT_EQ(*(*store)->Get("bundles", "web"), "1");

  EtcdOptions nobody = Options(Prefix());
  nobody.timeout = absl::Seconds(1);
  nobody.endpoints = {absl::StrCat("http://127.0.0.1:", testing::FreePort())};
  absl::StatusOr<std::unique_ptr<EtcdStore>> none = EtcdStore::Open(nobody);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable) << none.status();
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("etcd http://127.0.0.1:"));
}

// https:// members: etcd's certificate checked against --etcd-ca, and the client's own
// certificate where etcd asks for one.
TEST_F(EtcdStoreTest, SpeaksTlsWithAClientCertificate) {
  const std::string certs = TempDir();
  const std::string script = absl::StrCat(
      "set -e; cd '", certs, "';",
      "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out $1 "
      "2>/dev/null; };",
      "key ca.key; openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj /CN=test-ca;",
      "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext;",
      "key server.key; openssl req -new -key server.key -out server.csr -subj /CN=etcd;",
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile server.ext -out server.crt 2>/dev/null;",
      "key client.key; openssl req -new -key client.key -out client.csr -subj /CN=gitfleet;",
      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
      "-out client.crt 2>/dev/null");
  ASSERT_EQ(system(script.c_str()), 0);
  std::unique_ptr<testing::Process> secure;
  absl::StatusOr<std::string> client = testing::StartEtcd(
      certs + "/etcd", &secure, /*tls=*/true,
      {"--cert-file=" + certs + "/server.crt", "--key-file=" + certs + "/server.key",
       "--client-cert-auth", "--trusted-ca-file=" + certs + "/ca.crt"});
  ASSERT_TRUE(client.ok()) << client.status();
  EtcdOptions options = Options("/tls/");
  options.endpoints = {*client};
  options.ca_file = certs + "/ca.crt";
  options.cert_file = certs + "/client.crt";
  options.key_file = certs + "/client.key";
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Apply({Store::Put("bundles", "web", "1")}).ok());
  EXPECT_EQ(*(*store)->Get("bundles", "web"), "1");
  store->reset();

  // Without its certificate, etcd does not let it in.
  EtcdOptions anonymous = options;
  anonymous.cert_file.clear();
  anonymous.key_file.clear();
  anonymous.timeout = absl::Seconds(2);
  EXPECT_FALSE(EtcdStore::Open(anonymous).ok());
  // A CA for plain http:// members is a mistake, said.
  EtcdOptions plain = Options("/tls/");
  plain.ca_file = certs + "/ca.crt";
  EXPECT_THAT(std::string(EtcdStore::Open(plain).status().message()),
              HasSubstr("are for https:// endpoints"));
}

TEST(EtcdEndpointsTest, AreClientUrlsOfOneScheme) {
  absl::StatusOr<std::vector<std::string>> parsed =
      ParseEtcdEndpoints("http://10.0.0.5:2379, http://etcd-1.example.com:2379/");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed,
              ::testing::ElementsAre("http://10.0.0.5:2379", "http://etcd-1.example.com:2379"));
  for (const auto& [text, error] : std::vector<std::pair<std::string, std::string>>{
           {"", "names no member"},
           {"10.0.0.5:2379", "is not an etcd client URL"},
           {"http://10.0.0.5", "is not an etcd client URL"},
           {"http://user:pw@10.0.0.5:2379", "is not an etcd client URL"},
           {"http://10.0.0.5:2379/v3", "is not an etcd client URL"},
           {"http://a:1,https://b:2", "one scheme"}}) {
    absl::StatusOr<std::vector<std::string>> bad = ParseEtcdEndpoints(text);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(error)) << text;
  }
  EtcdOptions options;
  options.endpoints = {"http://127.0.0.1:1"};
  options.prefix = "gitfleet";
  EXPECT_THAT(std::string(EtcdStore::Open(options).status().message()),
              HasSubstr("must start and end with '/'"));
}

}  // namespace
}  // namespace gitfleet
