#include "common/config_fields.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(ConfigFieldsTest, SplitsOnSpaceAndTabKeepingQuotedStretchesWhole) {
  EXPECT_THAT(*ConfigFields("  a\tb  c "), ElementsAre("a", "b", "c"));
  const std::string scoped = "team-a admin clusters=\"env in (dev, qa)\" x";
  EXPECT_THAT(*ConfigFields(scoped),
              ElementsAre("team-a", "admin", "clusters=env in (dev, qa)", "x"));
  EXPECT_THAT(*ConfigFields("\"\" \"a b\""), ElementsAre("", "a b"));
  EXPECT_THAT(*ConfigFields(""), IsEmpty());
  EXPECT_THAT(ConfigFields("a \"b c").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "a double quote is not closed"));
}

}  // namespace
}  // namespace gitfleet
