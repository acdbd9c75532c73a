#include "controlplane/api/secret_file.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kOld[] = "old-secret-0123456789";
constexpr char kNew[] = "new-secret-9876543210";

TEST(SecretFileTest, ParsesOneSecretPerLineAndRefusesWhatCannotBeOne) {
  SecretFile::Options options;
  options.what = "--webhook-secret-file";
  EXPECT_THAT(*SecretFile::Parse(absl::StrCat(kOld, "\n"), options), ElementsAre(kOld));
  // CRLF, blank lines and trailing blanks are not part of a secret; leading ones are.
  EXPECT_THAT(*SecretFile::Parse(absl::StrCat("\r\n", kOld, " \t\r\n\n ", kNew), options),
              ElementsAre(kOld, absl::StrCat(" ", kNew)));

  EXPECT_THAT(SecretFile::Parse(absl::StrCat(kOld, "\nshort\n"), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--webhook-secret-file: line 2: a secret must be at least 16 "
                                 "characters")));
  EXPECT_THAT(SecretFile::Parse(" \n\r\n", options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no secret in it")));
  std::string nine;
  for (int i = 0; i < 9; ++i) absl::StrAppend(&nine, kOld, i, "\n");
  EXPECT_THAT(SecretFile::Parse(nine, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than 8 secrets")));
}

class SecretFileReloadTest : public ::testing::Test {
 protected:
  SecretFileReloadTest()
      : path_(absl::StrCat(std::getenv("TEST_TMPDIR"), "/secret-",
                           ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    options_.clock = &clock_;
    options_.what = "--webhook-secret-file";
  }
  // Replaces the file as a mounted Kubernetes Secret is replaced: a new file renamed over.
  void Write(const std::string& content) {
    std::ofstream(path_ + ".new", std::ios::binary) << content;
    ASSERT_EQ(std::rename((path_ + ".new").c_str(), path_.c_str()), 0);
  }
  std::vector<std::string> After(SecretFile& file, absl::Duration wait) {
    clock_.Advance(wait);
    return *file.Current();
  }

  std::string path_;
  FakeClock clock_;
  SecretFile::Options options_;
};

TEST_F(SecretFileReloadTest, ARotationIsTakenUpWithoutARestartAndABadEditChangesNothing) {
  Write(absl::StrCat(kOld, "\n"));
  absl::StatusOr<std::unique_ptr<SecretFile>> opened = SecretFile::Open(path_, options_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  SecretFile& file = **opened;
  EXPECT_THAT(*file.Current(), ElementsAre(kOld));

  // Rotation, step 1: both are accepted, once the file is looked at again (every second).
  Write(absl::StrCat(kOld, "\n", kNew, "\n"));
  EXPECT_THAT(After(file, absl::Milliseconds(500)), ElementsAre(kOld)) << "not yet re-read";
  EXPECT_THAT(After(file, absl::Milliseconds(500)), ElementsAre(kOld, kNew));
  // Step 2: only the new one.
  Write(absl::StrCat(kNew, "\n"));
  EXPECT_THAT(After(file, absl::Seconds(1)), ElementsAre(kNew));

  // A bad edit, or no file at all, keeps what was in force: nobody is locked out by a typo.
  Write("short\n");
  EXPECT_THAT(After(file, absl::Seconds(1)), ElementsAre(kNew));
  Write(std::string(5000, 'x'));
  EXPECT_THAT(After(file, absl::Seconds(1)), ElementsAre(kNew));
  ASSERT_EQ(std::remove(path_.c_str()), 0);
  EXPECT_THAT(After(file, absl::Seconds(1)), ElementsAre(kNew));
  // Mended, it is read again.
  Write(absl::StrCat(kOld, "\n"));
  EXPECT_THAT(After(file, absl::Seconds(1)), ElementsAre(kOld));
}

TEST_F(SecretFileReloadTest, AnUnusableFileIsRefusedAtStart) {
  EXPECT_THAT(SecretFile::Open(path_, options_).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("--webhook-secret-file: cannot open " + path_)));
  Write(std::string(4097, 'x'));
  EXPECT_THAT(SecretFile::Open(path_, options_).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("over 4096 bytes")));
  Write("too short");
  EXPECT_THAT(SecretFile::Open(path_, options_).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 1: a secret must be at least 16 characters")));
}

}  // namespace
}  // namespace gitfleet
