#include "common/logging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

TEST(LoggingTest, LevelsFilterAndParse) {
  ASSERT_TRUE(SetLogLevelByName("warning").ok());
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
  absl::Status bad = SetLogLevelByName("loud");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("\"loud\""));
  SetLogLevel(LogLevel::kInfo);
}

TEST(LoggingTest, DisabledMessagesDoNotEvaluateTheirArguments) {
  SetLogLevel(LogLevel::kError);
  int evaluated = 0;
  auto touch = [&] { return ++evaluated; };
  GF_LOG(INFO) << touch();
  EXPECT_EQ(evaluated, 0);
  // Safe inside an unbraced if/else: the else binds to our if, not the macro's.
  bool took_else = false;
  if (evaluated > 0)
    GF_LOG(ERROR) << "unreachable";
  else
    took_else = true;
  EXPECT_TRUE(took_else);
  SetLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace gitfleet
