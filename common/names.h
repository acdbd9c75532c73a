#ifndef GITFLEET_COMMON_NAMES_H_
#define GITFLEET_COMMON_NAMES_H_

// The one rule for gitfleet's own names (sources, bundles, namespaces it creates): a DNS
// label, as Kubernetes namespaces and label values are. Used by the API, the CLI and the
// agent protocol, so a name refused in one place is refused everywhere.
//
//   GF_RETURN_IF_ERROR(ValidateName("bundle", name));

#include <string>

#include "absl/status/status.h"

namespace gitfleet {

// InvalidArgument naming `what` and the rule when `name` is not 1-63 lower-case letters,
// digits or '-', starting and ending with a letter or digit.
absl::Status ValidateName(const std::string& what, const std::string& name);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_NAMES_H_
