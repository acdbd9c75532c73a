#include "agent/kube/convert.h"

#include "absl/strings/str_cat.h"

namespace gitfleet {

std::string FirstDifference(const nlohmann::json& want, const nlohmann::json& have,
                            const std::string& path) {
  const std::string here = path.empty() ? "." : path;
  if (want.is_object()) {
    if (!have.is_object()) return here;
    for (auto it = want.begin(); it != want.end(); ++it) {
      const std::string child = absl::StrCat(path, ".", it.key());
      auto found = have.find(it.key());
      if (found == have.end()) {
        if (it.value().is_null()) continue;  // null means "unset"
        // An empty map or list the server leaves out is not a difference.
        if ((it.value().is_object() || it.value().is_array()) && it.value().empty()) continue;
        return child;
      }
      std::string diff = FirstDifference(it.value(), *found, child);
      if (!diff.empty()) return diff;
    }
    return "";
  }
  if (want.is_array()) {
    if (!have.is_array() || have.size() != want.size()) return here;
    for (size_t i = 0; i < want.size(); ++i) {
      std::string diff = FirstDifference(want[i], have[i], absl::StrCat(path, "[", i, "]"));
      if (!diff.empty()) return diff;
    }
    return "";
  }
  if (want.is_number() && have.is_number()) {
    return want.get<double>() == have.get<double>() ? "" : here;
  }
  return want == have ? "" : here;
}

}  // namespace gitfleet
