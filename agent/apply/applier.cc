#include "agent/apply/applier.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gitfleet {

std::string KeptByAnnotation(const std::function<std::string(const char* name)>& annotation) {
  if (annotation(kPruneAnnotation) == "false") return absl::StrCat(kPruneAnnotation, "=false");
  const std::string argo = annotation(kArgoSyncOptionsAnnotation);
  for (absl::string_view option : absl::StrSplit(argo, ',', absl::SkipWhitespace())) {
    option = absl::StripAsciiWhitespace(option);
    if (option == "Prune=false" || option == "Delete=false") {
      return absl::StrCat(kArgoSyncOptionsAnnotation, "=", option);
    }
  }
  if (annotation(kFluxPruneAnnotation) == "disabled") {
    return absl::StrCat(kFluxPruneAnnotation, "=disabled");
  }
  if (absl::StripAsciiWhitespace(annotation(kHelmResourcePolicyAnnotation)) == "keep") {
    return absl::StrCat(kHelmResourcePolicyAnnotation, "=keep");
  }
  return "";
}

}  // namespace gitfleet
