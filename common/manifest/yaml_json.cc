#include "common/manifest/yaml_json.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gitfleet {
namespace {

// An integer as Go's strconv.ParseInt(text, 0, 64) reads it, which is how go-yaml (under
// sigs.k8s.io/yaml, kubectl's reader) resolves a plain scalar: a sign, then 0x hex, 0o or a
// leading 0 octal (`defaultMode: 0644` is 420), 0b binary, or decimal; underscores between
// digits. nullopt for anything else, or past 64 bits.
std::optional<int64_t> GoInteger(absl::string_view text) {
  bool negative = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (text.empty()) return std::nullopt;
  int base = 10;
  bool prefixed = false;  // an underscore may follow a base prefix
  if (text.size() >= 2 && text[0] == '0') {
    const char b = absl::ascii_tolower(text[1]);
    if (b == 'x' || b == 'o' || b == 'b') {
      base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
      text.remove_prefix(2);
      prefixed = true;
    } else {
      base = 8;
      text.remove_prefix(1);
      prefixed = true;
    }
  }
  uint64_t value = 0;
  bool digits = false;
  char previous = prefixed ? '0' : '\0';  // what an underscore must follow
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '_') {
      if (previous == '_' || previous == '\0' || i + 1 == text.size()) return std::nullopt;
      previous = c;
      continue;
    }
    int d = absl::ascii_isdigit(c)                             ? c - '0'
            : (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ? absl::ascii_tolower(c) - 'a' + 10
                                                               : 99;
    if (d >= base) return std::nullopt;
    if (value > (std::numeric_limits<uint64_t>::max() - d) / base) return std::nullopt;
    value = value * base + d;
    digits = true;
    previous = c;
  }
  if (!digits) return std::nullopt;
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  if (value > limit) return std::nullopt;
  return negative ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value);
}

nlohmann::json PlainScalar(const std::string& text) {
  // go-yaml's YAML 1.1 words, in the three spellings it knows each in.
  static const auto* const kNulls = new std::set<std::string>{"~", "null", "Null", "NULL"};
  static const auto* const kTrue = new std::set<std::string>{
      "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static const auto* const kFalse = new std::set<std::string>{
      "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  if (text.empty() || kNulls->count(text) > 0) return nullptr;
  if (kTrue->count(text) > 0) return true;
  if (kFalse->count(text) > 0) return false;
  if (std::optional<int64_t> i = GoInteger(text); i.has_value()) return *i;
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
