#include "common/grpc_status.h"

#include "absl/strings/str_cat.h"

namespace gitfleet {
namespace {

// Bytes `c` takes in grpc-message (percent-encoded outside printable ASCII, and '%').
size_t EncodedSize(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return u >= 0x20 && u <= 0x7e && c != '%' ? 1 : 3;
}

}  // namespace

std::string ClipStatusMessage(absl::string_view message, size_t max_bytes) {
  size_t encoded = 0;
  for (char c : message) encoded += EncodedSize(c);
  if (encoded <= max_bytes) return std::string(message);
  // Room for the mark: " [... 1234567890 more bytes]" is at most 40.
  const size_t budget = max_bytes > 40 ? max_bytes - 40 : 0;
  size_t kept = 0;
  for (size_t used = 0; kept < message.size(); ++kept) {
    const size_t next = used + EncodedSize(message[kept]);
    if (next > budget) break;
    used = next;
  }
  // Not in the middle of a UTF-8 character: back over its continuation bytes and its lead.
  if (kept < message.size() && (static_cast<unsigned char>(message[kept]) & 0xc0) == 0x80) {
    while (kept > 0 && (static_cast<unsigned char>(message[kept]) & 0xc0) == 0x80) --kept;
  }
  return absl::StrCat(message.substr(0, kept), " [... ", message.size() - kept, " more bytes]");
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      ClipStatusMessage(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace gitfleet
