#ifndef GITFLEET_COMMON_GRPC_STATUS_H_
#define GITFLEET_COMMON_GRPC_STATUS_H_

// Converts between absl::Status and grpc::Status at the service edges.

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace gitfleet {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_GRPC_STATUS_H_
