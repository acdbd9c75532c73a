#include "controlplane/render/fleet_selector.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model/label_selector.h"

namespace gitfleet {

std::string FleetScalar(const YAML::Node& node) {
  if (!node || !node.IsScalar()) return "";
  std::string text = node.Scalar().substr(0, kMaxFleetScalar);
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return text;
}

std::string FleetSelectorText(const YAML::Node& selector) {
  if (!selector || !selector.IsMap()) return "";
  std::vector<std::string> terms;
  const YAML::Node labels = selector["matchLabels"];
  if (labels && labels.IsMap()) {
    for (const auto& label : labels) {
      if (!label.first.IsScalar() || !label.second.IsScalar()) return "";
      terms.push_back(absl::StrCat(FleetScalar(label.first), "=", FleetScalar(label.second)));
    }
  }
  const YAML::Node expressions = selector["matchExpressions"];
  if (expressions && expressions.IsSequence()) {
    for (const auto& expression : expressions) {
      if (!expression.IsMap()) return "";
      const std::string key = FleetScalar(expression["key"]);
      const std::string op = FleetScalar(expression["operator"]);
      std::vector<std::string> values;
      const YAML::Node listed = expression["values"];
      if (listed && listed.IsSequence()) {
        for (const auto& value : listed) values.push_back(FleetScalar(value));
      }
      if (key.empty()) return "";
      if (op == "In" || op == "NotIn") {
        terms.push_back(
            absl::StrCat(key, op == "In" ? " in (" : " notin (", absl::StrJoin(values, ","), ")"));
      } else if (op == "Exists") {
        terms.push_back(key);
      } else if (op == "DoesNotExist") {
        terms.push_back("!" + key);
      } else {
        return "";
      }
    }
  }
  return absl::StrJoin(terms, ",");
}

bool FleetSelectsEverything(const YAML::Node& selector) {
  if (!selector.IsMap()) return false;
  for (const char* field : {"matchLabels", "matchExpressions"}) {
    const YAML::Node part = selector[field];
    if (part && !part.IsNull() && part.size() > 0) return false;
  }
  return true;
}

absl::StatusOr<std::string> ReadFleetSelector(const YAML::Node& selector,
                                              const std::string& field) {
  std::string text = FleetSelectorText(selector);
  if (text.empty() && !FleetSelectsEverything(selector)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field,
                     " is not one gitfleet reads (matchLabels, and matchExpressions with In, "
                     "NotIn, Exists or DoesNotExist)"));
  }
  if (absl::StatusOr<LabelSelector> parsed = LabelSelector::Parse(text); !parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", parsed.status().message()));
  }
  return text;
}

}  // namespace gitfleet
