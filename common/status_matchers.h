#ifndef GITFLEET_COMMON_STATUS_MATCHERS_H_
#define GITFLEET_COMMON_STATUS_MATCHERS_H_

// gMock matchers for absl::Status, so tests check the specific error:
//
//   EXPECT_THAT(hub.AdoptCluster("x"), StatusIs(absl::StatusCode::kNotFound));
//   EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("web")));

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"

namespace gitfleet {

MATCHER_P(StatusIs, code, absl::StrCat("has code ", absl::StatusCodeToString(code))) {
  *result_listener << "which is " << arg;
  return arg.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           absl::StrCat("has code ", absl::StatusCodeToString(code), " and a message that ",
                        ::testing::DescribeMatcher<std::string>(message_matcher))) {
  *result_listener << "which is " << arg;
  return arg.code() == code && ::testing::ExplainMatchResult(
                                   message_matcher, std::string(arg.message()), result_listener);
}

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_STATUS_MATCHERS_H_
