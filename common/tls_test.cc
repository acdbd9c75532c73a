#include "common/tls.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/file_system.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  TlsTest() : dir_(absl::StrCat(std::getenv("TEST_TMPDIR"), "/tls")) {
    // A CA, a server certificate it signs, and a second key that matches nothing.
    EXPECT_EQ(std::system(absl::StrCat(
                              "set -e; mkdir -p '", dir_, "'; cd '", dir_, "';",
                              "key() { openssl genpkey -algorithm EC -pkeyopt "
                              "ec_paramgen_curve:prime256v1 -out $1 2>/dev/null; };",
                              "key ca.key; openssl req -x509 -new -key ca.key -out ca.crt -days 2 "
                              "-subj /CN=test-ca;",
                              "key server.key; openssl req -new -key server.key -out server.csr "
                              "-subj /CN=server;",
                              "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
                              "-CAcreateserial -days 2 -out server.crt 2>/dev/null;",
                              "key other.key;",
                              "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 "
                              "-aes256 -pass pass:secret -out locked.key 2>/dev/null")
                              .c_str()),
              0);
  }
  std::string Read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
  }
  std::string dir_;
};

TEST_F(TlsTest, AServerPairMustMatchAndEachFileHoldWhatItNames) {
  const std::string cert = Read("server.crt"), key = Read("server.key"), ca = Read("ca.crt");
  EXPECT_TRUE(CheckTlsPem(cert, key, ca).ok());
  EXPECT_TRUE(CheckTlsPem(cert, key, "").ok());
  EXPECT_THAT(CheckTlsPem(cert, Read("other.key"), ca),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--tls-key does not match --tls-cert")));
  EXPECT_THAT(CheckTlsPem(key, key, ca),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-cert: no PEM")));
  EXPECT_THAT(CheckTlsPem(cert, Read("locked.key"), ca),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has a passphrase")));
  EXPECT_THAT(CheckTlsPem(cert, cert, ca),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-key: no PEM")));
  EXPECT_THAT(CheckTlsPem(cert, key, key),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-ca: no PEM")));
}

TEST_F(TlsTest, RenewedFilesAreCopiedOnlyOnceTheyCheckOut) {
  const std::string copies = dir_ + "/copies";
  TlsFiles files{dir_ + "/server.crt", dir_ + "/server.key", dir_ + "/ca.crt"};
  absl::StatusOr<std::unique_ptr<ReloadingServerTls>> tls =
      ReloadingServerTls::Start(files, copies, absl::Hours(1));  // checked by hand below
  ASSERT_TRUE(tls.ok()) << tls.status();
  ASSERT_NE((*tls)->credentials(), nullptr);
  auto served = [&](const std::string& name) {
    absl::StatusOr<std::string> text = PosixFileSystem().ReadFile(copies + "/current/" + name);
    return text.ok() ? *text : text.status().ToString();
  };
  EXPECT_EQ(served("tls.crt"), Read("server.crt"));
  EXPECT_EQ(served("tls.key"), Read("server.key"));
  EXPECT_EQ(served("ca.crt"), Read("ca.crt"));

  // Half a renewal: a new key without its certificate. Nothing is copied.
  const std::string before_key = Read("server.key");
  ASSERT_EQ(std::system(absl::StrCat("cp '", dir_, "/other.key' '", dir_, "/server.key'").c_str()),
            0);
  (*tls)->CheckNow();
  EXPECT_EQ(served("tls.key"), before_key);
  // The whole renewal: a certificate for that key. Both are copied, together.
  ASSERT_EQ(std::system(absl::StrCat("set -e; cd '", dir_,
                                     "'; openssl req -new -key server.key -out renewed.csr -subj "
                                     "/CN=renewed; openssl x509 -req -in renewed.csr -CA ca.crt "
                                     "-CAkey ca.key -CAcreateserial -days 2 -out server.crt "
                                     "2>/dev/null")
                            .c_str()),
            0);
  (*tls)->CheckNow();
  EXPECT_EQ(served("tls.key"), Read("other.key"));
  EXPECT_EQ(served("tls.crt"), Read("server.crt"));
  // Within the same second as the first copies, yet stamped apart from them: gRPC's watcher
  // notices a read that straddles the swap only by a change of modification time.
  auto mtime = [&](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mtime;
  };
  EXPECT_NE(mtime(copies + "/v1/tls.key"), mtime(copies + "/current/tls.key"));
  EXPECT_NE(mtime(copies + "/v1/tls.crt"), mtime(copies + "/current/tls.crt"));
  EXPECT_EQ(mtime(copies + "/current/tls.key"), mtime(copies + "/current/tls.crt"));
  // Unusable files at start are refused, naming the flag.
  files.key = dir_ + "/missing.key";
  EXPECT_THAT(ReloadingServerTls::Start(files, dir_ + "/copies2").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-key")));
}

TEST_F(TlsTest, AClientTakesUpARenewalOnlyOnceItChecksOut) {
  TlsFiles files{dir_ + "/client.crt", dir_ + "/client.key", dir_ + "/ca.crt"};
  ASSERT_EQ(std::system(absl::StrCat("set -e; cd '", dir_, "'; cp server.crt client.crt; ",
                                     "cp server.key client.key")
                            .c_str()),
            0);
  absl::StatusOr<std::unique_ptr<ReloadingChannelTls>> tls = ReloadingChannelTls::Open(files);
  ASSERT_TRUE(tls.ok()) << tls.status();
  std::shared_ptr<grpc::ChannelCredentials> first = (*tls)->credentials();
  ASSERT_NE(first, nullptr);
  EXPECT_FALSE((*tls)->Renew()) << "nothing changed";
  // Half a renewal: the key alone. Not taken up.
  ASSERT_EQ(std::system(absl::StrCat("cp '", dir_, "/other.key' '", dir_, "/client.key'").c_str()),
            0);
  EXPECT_FALSE((*tls)->Renew());
  EXPECT_EQ((*tls)->credentials(), first);
  // The certificate for it: taken up, once.
  ASSERT_EQ(std::system(absl::StrCat("set -e; cd '", dir_,
                                     "'; openssl req -new -key client.key -out client.csr -subj "
                                     "/CN=client; openssl x509 -req -in client.csr -CA ca.crt "
                                     "-CAkey ca.key -CAcreateserial -days 2 -out client.crt "
                                     "2>/dev/null")
                            .c_str()),
            0);
  EXPECT_TRUE((*tls)->Renew());
  EXPECT_NE((*tls)->credentials(), first);
  EXPECT_FALSE((*tls)->Renew());
  // Without files: insecure, never renewed.
  absl::StatusOr<std::unique_ptr<ReloadingChannelTls>> plain = ReloadingChannelTls::Open({});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE((*plain)->Renew());
  // A mismatched pair at start is an error.
  EXPECT_THAT(ReloadingChannelTls::Open({dir_ + "/server.crt", dir_ + "/other.key", ""}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
}

}  // namespace
}  // namespace gitfleet
