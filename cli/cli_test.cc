#include "cli/cli.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet::cli {
namespace {

using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunCtl(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

TEST(CliTest, BadUsageIsOneLineAndExitTwo) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"frobnicate"}, "unknown command \"frobnicate\""},
      {{"source", "add", "x"}, "source add needs --url"},
      {{"source", "add"}, "missing source name"},
      {{"source", "add", "x", "--url=file:///r", "--interval=soon"}, "--interval=soon"},
      {{"bundle", "add", "b"}, "bundle add needs --source"},
      {{"bundle", "add", "b", "--source=s", "--prune=maybe"}, "--prune=maybe: want true or false"},
      {{"status", "-o", "xml"}, "output format \"xml\""},
      {{"status", "--colour"}, "unknown flag --colour"},
      {{"source", "remove", "a", "b"}, "unexpected argument \"b\""},
      {{"status", "-o"}, "-o needs a format"},
  };
  for (const Case& c : cases) {
    Result r = RunCtl(c.args);
    EXPECT_EQ(r.code, 2) << c.message;
    EXPECT_THAT(r.err, HasSubstr(c.message));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(CliTest, HelpPrintsUsage) {
  Result r = RunCtl({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("source add NAME --url=URL"));
  EXPECT_EQ(RunCtl({}).code, 2);
}

TEST(CliTest, UnreachableServerIsExitOneWithAddress) {
  Result r = RunCtl({"--server=127.0.0.1:1", "--timeout=2s", "source", "list"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("127.0.0.1:1"));
}

}  // namespace
}  // namespace gitfleet::cli
