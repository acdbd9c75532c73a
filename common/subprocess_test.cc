#include "common/subprocess.h"

#include <signal.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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

TEST(SubprocessTest, LimitsTheChildsMemoryAndCpu) {
  SubprocessOptions options = Options();
  options.max_memory_bytes = 64 << 20;
  // dd allocates its block up front: 256 MiB is over the limit.
  absl::StatusOr<SubprocessResult> big =
      RunSubprocess({"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"}, options);
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_NE(big->exit_code, 0);
  EXPECT_THAT(big->stderr_text, HasSubstr("memory exhausted"));
  absl::StatusOr<SubprocessResult> small =
      RunSubprocess({"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1"}, options);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->exit_code, 0) << small->stderr_text;

  options.max_memory_bytes = 0;
  options.max_cpu = absl::Seconds(1);
  absl::Time start = absl::Now();
  absl::StatusOr<SubprocessResult> spin =
      RunSubprocess({"/bin/sh", "-c", "while :; do :; done"}, options);
  ASSERT_TRUE(spin.ok()) << spin.status();
  EXPECT_EQ(spin->exit_code, 128 + SIGXCPU) << "stopped by its CPU limit, not the timeout";
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));

  // A file written past its limit: the write fails (SIGXFSZ).
  options.max_cpu = absl::ZeroDuration();
  options.max_file_bytes = 1 << 20;
  const std::string file = ::testing::TempDir() + "/fsize";
  absl::StatusOr<SubprocessResult> large =
      RunSubprocess({"/bin/dd", "if=/dev/zero", "of=" + file, "bs=1M", "count=2"}, options);
  ASSERT_TRUE(large.ok()) << large.status();
  EXPECT_NE(large->exit_code, 0);
  absl::StatusOr<SubprocessResult> fits =
      RunSubprocess({"/bin/dd", "if=/dev/zero", "of=" + file, "bs=1K", "count=1000"}, options);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(fits->exit_code, 0) << fits->stderr_text;
}

// A bound no resource limit gives is checked while the child runs: its error kills the
// child's group and is the answer, well before the timeout; a check that passes changes
// nothing.
TEST(SubprocessTest, ACheckWhileTheChildRunsCanStopIt) {
  SubprocessOptions options;
  options.timeout = absl::Seconds(30);
  options.check_every = absl::Milliseconds(20);
  int checks = 0;
  options.check = [&checks]() -> absl::Status {
    return ++checks < 3 ? absl::OkStatus() : absl::ResourceExhaustedError("wrote too much");
  };
  const absl::Time start = absl::Now();
  absl::StatusOr<SubprocessResult> stopped =
      RunSubprocess({"/bin/sh", "-c", "sleep 20 & wait"}, options);
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(stopped.status().message(), "wrote too much");
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(checks, 3);

  checks = 0;
  options.check = [&checks] {
    ++checks;
    return absl::OkStatus();
  };
  absl::StatusOr<SubprocessResult> done =
      RunSubprocess({"/bin/sh", "-c", "sleep 0.2; echo done"}, options);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->stdout_text, "done\n");
  EXPECT_GE(checks, 2);
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  EXPECT_EQ(RunSubprocess({"/nonexistent/kustomize"}, Options()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(RunInChildTest, ReturnsWhatTheChildComputedFromSharedMemory) {
  std::string big(1 << 20, 'x');  // seen by the child without copying it over a pipe
  absl::StatusOr<std::string> out = RunInChild(
      [&] { return absl::StrCat(big.size(), ":", big.substr(0, 3)); }, absl::Seconds(10), 1 << 20);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "1048576:xxx");
  // Large results come back whole.
  out = RunInChild([&] { return big; }, absl::Seconds(10), 2 << 20);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->size(), big.size());
}

TEST(RunInChildTest, KillsAChildThatRunsPastItsDeadline) {
  absl::Time start = absl::Now();
  absl::StatusOr<std::string> out = RunInChild(
      [] {
        volatile uint64_t n = 0;
        while (true) n = n + 1;
        return std::string();
      },
      absl::Milliseconds(300), 1024);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(RunInChildTest, BoundsOutputAndReportsCrashes) {
  absl::StatusOr<std::string> out =
      RunInChild([] { return std::string(4096, 'y'); }, absl::Seconds(10), 100);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  out = RunInChild(
      []() -> std::string {
        raise(SIGKILL);  // sanitizers catch SIGSEGV; nothing catches this
        return "";
      },
      absl::Seconds(10), 100);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("signal 9"));
}

TEST(ChildProcessTest, IsSpokenToWhileItRunsAndTellsHowItEnded) {
  auto cat = ChildProcess::Start({"/bin/sh", "-c", "echo starting >&2; cat; exit 3"}, Options());
  ASSERT_TRUE(cat.ok()) << cat.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  ASSERT_TRUE((*cat)->Write("one request\n", deadline).ok());
  std::string heard;
  char buffer[64];
  while (heard.size() < 12) {
    absl::StatusOr<size_t> n = (*cat)->Read(buffer, sizeof(buffer), deadline);
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_GT(*n, 0u);
    heard.append(buffer, *n);
  }
  EXPECT_EQ(heard, "one request\n");
  (*cat)->CloseInput();
  absl::StatusOr<size_t> end = (*cat)->Read(buffer, sizeof(buffer), deadline);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(*end, 0u);
  EXPECT_EQ(*(*cat)->Wait(deadline), 3);
  EXPECT_EQ((*cat)->stderr_text(), "starting\n");
}

TEST(ChildProcessTest, EveryWaitEndsAtItsDeadlineAndAGoneChildIsAnError) {
  auto silent = ChildProcess::Start({"/bin/sh", "-c", "sleep 30 & sleep 30"}, Options());
  ASSERT_TRUE(silent.ok()) << silent.status();
  char buffer[16];
  const absl::Time start = absl::Now();
  EXPECT_EQ(
      (*silent)->Read(buffer, sizeof(buffer), start + absl::Milliseconds(200)).status().code(),
      absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*silent)->Wait(absl::Now() + absl::Milliseconds(200)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  silent->reset();  // kills the group and reaps it
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // A child that has exited: writing to it fails (no SIGPIPE), reading ends.
  auto gone = ChildProcess::Start({"/bin/true"}, Options());
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(*(*gone)->Read(buffer, sizeof(buffer), absl::Now() + absl::Seconds(10)), 0u);
  absl::SleepFor(absl::Milliseconds(100));
  std::string big(1 << 20, 'x');
  EXPECT_FALSE((*gone)->Write(big, absl::Now() + absl::Seconds(10)).ok());

  EXPECT_EQ(ChildProcess::Start({"/nonexistent/ssh"}, Options()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(FindOnPathTest, FindsWhatAShellWouldRun) {
  EXPECT_TRUE(absl::EndsWith(FindOnPath("sh"), "/sh")) << FindOnPath("sh");
  EXPECT_EQ(FindOnPath("no-such-program-for-gitfleet"), "");
}

}  // namespace
}  // namespace gitfleet
