#include "controlplane/render/fetch_scope.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controlplane/source/git_credentials.h"

namespace gitfleet {

absl::Status FetchScope::Check(const std::string& url, absl::string_view what) const {
  if (repos.empty() || UrlPlainlyUnder(url, repos)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(what, " ", RedactUrl(url).substr(0, 256),
                   " is outside the repositories of the bundle's scope (",
                   absl::StrJoin(repos, ","), "): a team's bundle fetches only from its own"));
}

}  // namespace gitfleet
