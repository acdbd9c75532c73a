#include "common/manifest/yaml_json.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace gitfleet {
namespace {

// An integer as go-yaml v2 reads one (the goyaml.v2 under sigs.k8s.io/yaml, kubectl's
// reader): Go's strconv.ParseInt(text, 0, 64) of the text without its underscores, else
// ParseUint(text, 0, 64). A sign, then 0x hex, 0o or a leading 0 octal (`defaultMode:
// 0644` is 420), 0b binary, or decimal. nullopt for anything else, or past 64 bits.
std::optional<nlohmann::json> GoInteger(absl::string_view text) {
  bool negative = false;
  bool signed_ = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    signed_ = true;
    text.remove_prefix(1);
  }
  if (text.empty()) return std::nullopt;
  int base = 10;
  if (text.size() >= 2 && text[0] == '0') {
    const char b = absl::ascii_tolower(text[1]);
    if (b == 'x' || b == 'o' || b == 'b') {
      base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
      text.remove_prefix(2);
    } else {
      base = 8;
      text.remove_prefix(1);
    }
  }
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    int d = absl::ascii_isdigit(c)                             ? c - '0'
            : (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ? absl::ascii_tolower(c) - 'a' + 10
                                                               : 99;
    if (d >= base) return std::nullopt;
    if (value > (std::numeric_limits<uint64_t>::max() - d) / base) return std::nullopt;
    value = value * base + d;
  }
  constexpr uint64_t kMaxInt = (uint64_t{1} << 63) - 1;
  if (negative) {
    if (value > kMaxInt + 1) return std::nullopt;
    return nlohmann::json(static_cast<int64_t>(0 - value));
  }
  if (value <= kMaxInt) return nlohmann::json(static_cast<int64_t>(value));
  if (signed_) return std::nullopt;  // ParseUint takes no sign
  return nlohmann::json(value);      // a uint64, as go-yaml gives it
}

// go-yaml v2's float syntax, ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$.
bool GoYamlFloat(absl::string_view text) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < text.size() && absl::ascii_isdigit(text[i])) ++i;
    return i > start;
  };
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!digits()) return false;
  } else {
    if (!digits()) return false;
    if (i < text.size() && text[i] == '.') {
      ++i;
      digits();
    }
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == text.size();
}

// A finite double (Go's ParseFloat fails past the largest; go-yaml keeps the text then).
std::optional<double> GoFloat(absl::string_view text) {
  double d;
  if (!absl::SimpleAtod(text, &d) || !std::isfinite(d)) return std::nullopt;
  return d;
}

// A plain (unquoted, untagged) scalar as go-yaml v2 resolves it: its first character
// says what it may be; YAML 1.1's words in go-yaml's three spellings each; infinities and
// NaN are refused, since JSON cannot carry them (kubectl fails on them too).
absl::StatusOr<nlohmann::json> PlainScalar(const std::string& text) {
  static const auto* const kNulls = new std::set<std::string>{"~", "null", "Null", "NULL"};
  static const auto* const kTrue = new std::set<std::string>{
      "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static const auto* const kFalse = new std::set<std::string>{
      "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  static const auto* const kNotNumbers =
      new std::set<std::string>{".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf", "+.INF",
                                "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN"};
  if (text.empty() || kNulls->count(text) > 0) return nullptr;
  if (kTrue->count(text) > 0) return true;
  if (kFalse->count(text) > 0) return false;
  if (kNotNumbers->count(text) > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(text,
                     " is an infinite or NaN number, which JSON cannot carry (kubectl refuses it "
                     "too); quote it if the text is meant"));
  }
  const char first = text[0];
  if (first == '.') {
    if (!GoYamlFloat(text)) return text;
    std::optional<double> d = GoFloat(text);
    if (d.has_value()) return *d;
    return text;
  }
  if (!absl::ascii_isdigit(first) && first != '+' && first != '-') return text;
  const std::string plain = absl::StrReplaceAll(text, {{"_", ""}});
  if (std::optional<nlohmann::json> i = GoInteger(plain); i.has_value()) return *i;
  if (GoYamlFloat(plain)) {
    if (std::optional<double> d = GoFloat(plain); d.has_value()) return *d;
  }
  return text;
}

// Where in the document a conversion failed, outermost first: "at .spec.ports[0]: ...".
absl::Status Under(const absl::Status& status, const std::string& step) {
  absl::string_view message = status.message();
  if (absl::StartsWith(message, "at ")) {
    return absl::Status(status.code(), absl::StrCat("at ", step, message.substr(3)));
  }
  return absl::Status(status.code(), absl::StrCat("at ", step, ": ", message));
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
        if (!value.ok()) return Under(value.status(), absl::StrCat("[", out.size(), "]"));
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
        if (!value.ok()) return Under(value.status(), absl::StrCat(".", entry.first.Scalar()));
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
