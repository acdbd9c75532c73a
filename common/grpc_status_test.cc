#include "common/grpc_status.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// What grpc-message takes for `text`: three bytes for each one outside printable ASCII,
// and for '%'.
size_t Encoded(const std::string& text) {
  size_t bytes = 0;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    bytes += u >= 0x20 && u <= 0x7e && c != '%' ? 1 : 3;
  }
  return bytes;
}

TEST(ClipStatusMessageTest, AMessageThatFitsGoesOutWhole) {
  const std::string message = "bundle web not found (see gitfleetctl bundle list)";
  EXPECT_EQ(ClipStatusMessage(message), message);
  const std::string at_bound(kMaxStatusMessageBytes, 'a');
  EXPECT_EQ(ClipStatusMessage(at_bound), at_bound);
}

TEST(ClipStatusMessageTest, ALongOneIsCutWithinTheBoundAndSaysSo) {
  const std::string name(100000, 'a');
  const std::string clipped = ClipStatusMessage("cluster " + name + " not found");
  EXPECT_LE(Encoded(clipped), kMaxStatusMessageBytes);
  EXPECT_THAT(clipped, StartsWith("cluster aaaa"));
  // What is left out is counted: all of it but what was kept.
  const size_t kept = clipped.find(" [... ");
  ASSERT_NE(kept, std::string::npos);
  EXPECT_THAT(clipped, EndsWith(std::to_string(100000 + 18 - kept) + " more bytes]"));
}

TEST(ClipStatusMessageTest, BytesThatAreEncodedCountThreeTimes) {
  // 2,000 two-byte characters: 4,000 bytes, 12,000 once percent-encoded.
  std::string path;
  for (int i = 0; i < 2000; ++i) path += "\xc3\xa9";  // é
  const std::string message = "path \"" + path + "\" not found\nat commit 5d7ab15";
  const std::string clipped = ClipStatusMessage(message);
  EXPECT_LE(Encoded(clipped), kMaxStatusMessageBytes);
  EXPECT_GT(Encoded(clipped), kMaxStatusMessageBytes - 64);  // not cut far short of it
  // Never in the middle of a character: what is kept is whole é's.
  const size_t cut = clipped.find(" [... ");
  ASSERT_NE(cut, std::string::npos);
  EXPECT_EQ((cut - 6) % 2, 0u) << cut;
  EXPECT_THAT(clipped.substr(cut), HasSubstr("more bytes]"));
}

TEST(ClipStatusMessageTest, ASmallBoundStillNamesWhatWasLeftOut) {
  EXPECT_EQ(ClipStatusMessage(std::string(100, 'x'), 10), " [... 100 more bytes]");
}

TEST(ToGrpcStatusTest, KeepsTheCodeAndClipsTheMessage) {
  const grpc::Status status =
      ToGrpcStatus(absl::NotFoundError("bundle " + std::string(50000, 'b') + " not found"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LE(status.error_message().size(), kMaxStatusMessageBytes);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  const absl::Status back = FromGrpcStatus(grpc::Status(grpc::StatusCode::ABORTED, "stale"));
  EXPECT_TRUE(absl::IsAborted(back));
  EXPECT_EQ(back.message(), "stale");
}

}  // namespace
}  // namespace gitfleet
