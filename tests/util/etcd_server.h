#ifndef GITFLEET_TESTS_UTIL_ETCD_SERVER_H_
#define GITFLEET_TESTS_UTIL_ETCD_SERVER_H_

// A one-member etcd (Debian's etcd-server) for tests and benchmarks, on loopback ports of
// its own, its data and log under `dir`:
//
//   std::unique_ptr<Process> etcd;
//   absl::StatusOr<std::string> url = StartEtcd(root + "/etcd", &etcd);

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/util/process.h"

namespace gitfleet::testing {

// Starts etcd and waits until it serves clients; returns its client URL (https:// with
// `tls`, whose certificate flags go in `extra`). FailedPrecondition when etcd is not
// installed, Unavailable (with its log) when it does not start.
absl::StatusOr<std::string> StartEtcd(const std::string& dir, std::unique_ptr<Process>* etcd,
                                      bool tls = false, const std::vector<std::string>& extra = {});

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_ETCD_SERVER_H_
