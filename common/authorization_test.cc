#include "common/authorization.h"

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

TEST(BearerCredentialTest, ReadsTheTokenAsOtherClientsWriteIt) {
  EXPECT_EQ(BearerCredential("Bearer abc"), "abc");
  EXPECT_EQ(BearerCredential("bearer abc"), "abc");
  EXPECT_EQ(BearerCredential("BEARER abc"), "abc");
  EXPECT_EQ(BearerCredential("Bearer   abc"), "abc");
  EXPECT_EQ(BearerCredential("Bearer\tabc"), "abc");
  EXPECT_EQ(BearerCredential(" Bearer abc \t"), "abc");
  EXPECT_EQ(BearerCredential("Bearer a.b-c_d~e+f/g=="), "a.b-c_d~e+f/g==");
}

TEST(BearerCredentialTest, NoTokenForAnotherSchemeOrNone) {
  EXPECT_EQ(BearerCredential(""), std::nullopt);
  EXPECT_EQ(BearerCredential("Bearer"), std::nullopt);
  EXPECT_EQ(BearerCredential("Bearer   "), std::nullopt);
  EXPECT_EQ(BearerCredential("Bearerabc"), std::nullopt);
  EXPECT_EQ(BearerCredential("Basic YWxpY2U6cHc="), std::nullopt);
  EXPECT_EQ(BearerCredential("abc"), std::nullopt);
}

}  // namespace
}  // namespace gitfleet
