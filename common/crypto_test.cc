#include "common/crypto.h"

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace gitfleet::crypto {
namespace {

TEST(HmacSha256Test, MatchesRfc4231) {
  // RFC 4231, test case 2.
  EXPECT_EQ(absl::BytesToHexString(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// The Standard Webhooks specification's own example: a receiver built on any of its
// libraries verifies what gitfleet signs, and gitfleet what they sign.
TEST(StandardWebhookSignatureTest, MatchesTheSpecificationsExample) {
  EXPECT_EQ(StandardWebhookSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                     "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                     R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // Any other secret is the key as written (a whsec_ that is no base64 too).
  EXPECT_EQ(StandardWebhookSignature("plain", "id", "1", "body"),
            "v1," + absl::Base64Escape(HmacSha256("plain", "id.1.body")));
  EXPECT_EQ(StandardWebhookSignature("whsec_!!", "id", "1", "body"),
            "v1," + absl::Base64Escape(HmacSha256("whsec_!!", "id.1.body")));
}

}  // namespace
}  // namespace gitfleet::crypto
