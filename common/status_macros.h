#ifndef GITFLEET_COMMON_STATUS_MACROS_H_
#define GITFLEET_COMMON_STATUS_MACROS_H_

// Early-return helpers for absl::Status and absl::StatusOr.
//
//   GF_RETURN_IF_ERROR(store.Put(key, value));
//   GF_ASSIGN_OR_RETURN(Commit commit, repo.Resolve(ref));

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define GF_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status gf_status_ = (expr);      \
    if (!gf_status_.ok()) return gf_status_; \
  } while (0)

#define GF_STATUS_CONCAT_INNER(a, b) a##b
#define GF_STATUS_CONCAT(a, b) GF_STATUS_CONCAT_INNER(a, b)

#define GF_ASSIGN_OR_RETURN(lhs, expr) \
  GF_ASSIGN_OR_RETURN_IMPL(GF_STATUS_CONCAT(gf_statusor_, __LINE__), lhs, expr)

#define GF_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                             \
  if (!statusor.ok()) return statusor.status();       \
  lhs = std::move(statusor).value()

#endif  // GITFLEET_COMMON_STATUS_MACROS_H_
