#ifndef GITFLEET_COMMON_CONFIG_FIELDS_H_
#define GITFLEET_COMMON_CONFIG_FIELDS_H_

// A line of one of gitfleet's config files (--api-tokens, --notify-file, ...) split into its
// fields on spaces and tabs; a double-quoted stretch is part of one field, without its
// quotes, so that a label selector with spaces is one: clusters="env in (dev,qa)".
//
//   GF_ASSIGN_OR_RETURN(std::vector<std::string> fields, ConfigFields(line));

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gitfleet {

// InvalidArgument when a double quote is not closed.
absl::StatusOr<std::vector<std::string>> ConfigFields(absl::string_view line);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_CONFIG_FIELDS_H_
