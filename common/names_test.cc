#include "common/names.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

TEST(ValidateNameTest, AcceptsDnsLabels) {
  for (const std::string& name : {std::string("a"), std::string("web"), std::string("web-1"),
                                  std::string("0abc"), std::string(63, 'x')}) {
    EXPECT_TRUE(ValidateName("bundle", name).ok()) << name;
  }
}

TEST(ValidateNameTest, RefusesEverythingElseNamingWhat) {
  for (const std::string& name :
       {std::string(), std::string(64, 'x'), std::string("Web"), std::string("-web"),
        std::string("web-"), std::string("a_b"), std::string("a.b"), std::string("a/b"),
        std::string("a\nb"), std::string("a\0b", 3)}) {
    EXPECT_THAT(ValidateName("bundle", name),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bundle name")))
        << name;
  }
}

}  // namespace
}  // namespace gitfleet
