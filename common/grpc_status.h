#ifndef GITFLEET_COMMON_GRPC_STATUS_H_
#define GITFLEET_COMMON_GRPC_STATUS_H_

// Converts between absl::Status and grpc::Status at the service edges.

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace gitfleet {

// What a status message may take in its trailer (grpc-message, where every byte outside
// printable ASCII, and '%', takes three). A longer message would make the client refuse
// the whole answer ("received initial metadata size exceeds limit", 8 KiB by default)
// instead of reading the error; one that quotes a long input is cut well before that.
inline constexpr size_t kMaxStatusMessageBytes = 4096;

// `message` as it goes out: whole if it fits in `max_bytes` once encoded, else cut at a
// character boundary and marked with how much was left out.
std::string ClipStatusMessage(absl::string_view message, size_t max_bytes = kMaxStatusMessageBytes);

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_GRPC_STATUS_H_
