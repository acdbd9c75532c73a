#include "common/manifest/yaml_json.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gitfleet {
namespace {

nlohmann::json PlainScalar(const std::string& text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (text.empty() || text == "~" || lower == "null") return nullptr;
  if (lower == "true" || lower == "yes" || lower == "on" || lower == "y") return true;
  if (lower == "false" || lower == "no" || lower == "off" || lower == "n") return false;
  int64_t i;
  if (absl::SimpleAtoi(text, &i)) return i;
  if (absl::StartsWith(lower, "0x") && absl::SimpleHexAtoi(text.substr(2), &i)) return i;
  bool numeric = !text.empty();
  for (char c : text) {
    if (!absl::ascii_isdigit(c) && c != '.' && c != 'e' && c != 'E' && c != '-' && c != '+') {
      numeric = false;
    }
  }
  double d;
  if (numeric && absl::SimpleAtod(text, &d)) return d;
  return text;
}

absl::StatusOr<nlohmann::json> Convert(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nlohmann::json(nullptr);
    case YAML::NodeType::Scalar:
      // yaml-cpp tags quoted scalars "!" and plain ones "?".
      if (node.Tag() == "!") return nlohmann::json(node.Scalar());
      if (node.Tag() == "tag:yaml.org,2002:str") return nlohmann::json(node.Scalar());
      return PlainScalar(node.Scalar());
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const YAML::Node& item : node) {
        absl::StatusOr<nlohmann::json> value = Convert(item);
        if (!value.ok()) return value;
        out.push_back(*std::move(value));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          return absl::InvalidArgumentError("a mapping key is not a scalar");
        }
        absl::StatusOr<nlohmann::json> value = Convert(entry.second);
        if (!value.ok()) return value;
        out[entry.first.Scalar()] = *std::move(value);
      }
      return out;
    }
  }
  return nlohmann::json(nullptr);
}

}  // namespace

absl::StatusOr<nlohmann::json> YamlNodeToJson(const YAML::Node& node) { return Convert(node); }

absl::StatusOr<nlohmann::json> YamlToJson(absl::string_view yaml) {
  try {
    return Convert(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not YAML: ", e.what()));
  }
}

}  // namespace gitfleet
