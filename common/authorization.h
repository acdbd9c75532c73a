#ifndef GITFLEET_COMMON_AUTHORIZATION_H_
#define GITFLEET_COMMON_AUTHORIZATION_H_

// The token of an `authorization` header or gRPC metadata value, as RFC 7235 and RFC 6750
// write it: the scheme's name in any case ("Bearer", "bearer"), one or more spaces, the
// token; whitespace around it is not part of it. Clients other than gitfleet's write it
// each their own way (grpcurl's -H, a script's "bearer", a token file's trailing space).
//
//   if (std::optional<absl::string_view> token = BearerCredential(value)) Check(*token);

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace gitfleet {

// The token after "Bearer"; nullopt for another scheme, or none.
inline std::optional<absl::string_view> BearerCredential(absl::string_view authorization) {
  authorization = absl::StripAsciiWhitespace(authorization);
  constexpr absl::string_view kScheme = "bearer";
  if (!absl::StartsWithIgnoreCase(authorization, kScheme)) return std::nullopt;
  authorization.remove_prefix(kScheme.size());
  if (authorization.empty() || (authorization[0] != ' ' && authorization[0] != '\t')) {
    return std::nullopt;  // "Bearerx", or the scheme alone
  }
  authorization = absl::StripLeadingAsciiWhitespace(authorization);
  if (authorization.empty()) return std::nullopt;
  return authorization;
}

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_AUTHORIZATION_H_
