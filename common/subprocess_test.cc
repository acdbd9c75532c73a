#include "common/subprocess.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

SubprocessOptions Options() {
  SubprocessOptions options;
  options.env = {"PATH=/usr/bin:/bin", "GREETING=hello"};
  options.timeout = absl::Seconds(10);
  return options;
}

TEST(SubprocessTest, CapturesOutputExitCodeAndOnlyTheGivenEnvironment) {
  auto r =
      RunSubprocess({"/bin/sh", "-c", "echo out; echo err >&2; env | sort; exit 3"}, Options());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_THAT(r->stdout_text, HasSubstr("out\n"));
  EXPECT_THAT(r->stdout_text, HasSubstr("GREETING=hello"));
  EXPECT_THAT(r->stdout_text, ::testing::Not(HasSubstr("HOME=")));
  EXPECT_EQ(r->stderr_text, "err\n");
}

TEST(SubprocessTest, KillsTheWholeProcessGroupAtTheTimeout) {
  SubprocessOptions options = Options();
  options.timeout = absl::Milliseconds(300);
  absl::Time start = absl::Now();
  auto r = RunSubprocess({"/bin/sh", "-c", "sleep 30 & sleep 30"}, options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("/bin/sh did not finish"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(SubprocessTest, BoundsOutput) {
  SubprocessOptions options = Options();
  options.max_stdout_bytes = 1000;
  options.max_stderr_bytes = 10;
  auto r = RunSubprocess({"/bin/sh", "-c", "yes | head -c 100000"}, options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  auto e = RunSubprocess({"/bin/sh", "-c", "head -c 100000 /dev/zero >&2; true"}, options);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->stderr_text.size(), 10u);
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  EXPECT_EQ(RunSubprocess({"/nonexistent/kustomize"}, Options()).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace gitfleet
