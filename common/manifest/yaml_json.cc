#include "common/manifest/yaml_json.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <set>
#include <string>

#include "absl/base/attributes.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

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

// What go-yaml v2's resolver makes of a scalar's text.
struct Resolved {
  enum Kind { kNull, kBool, kInt, kFloat, kStr, kTimestamp };
  Kind kind;
  nlohmann::json value;  // null, a bool, an int64 or uint64, a double (maybe not finite), text
};

const char* KindTag(Resolved::Kind kind) {
  switch (kind) {
    case Resolved::kNull:
      return "!!null";
    case Resolved::kBool:
      return "!!bool";
    case Resolved::kInt:
      return "!!int";
    case Resolved::kFloat:
      return "!!float";
    case Resolved::kTimestamp:
      return "!!timestamp";
    case Resolved::kStr:
      break;
  }
  return "!!str";
}

// Reads up to `max` digits (at least one) at `i` into `value`.
bool Digits(absl::string_view s, size_t& i, size_t max, int& value) {
  const size_t start = i;
  value = 0;
  while (i < s.size() && i - start < max && absl::ascii_isdigit(s[i]))
    value = value * 10 + (s[i++] - '0');
  return i > start;
}

// go-yaml's timestamps (Go's layouts "2006-1-2T15:4:5.999999999Z07:00", with 't' too,
// "2006-1-2 15:4:5.999999999" and "2006-1-2"): a date, then maybe a time.
bool GoYamlTimestamp(absl::string_view s) {
  size_t i = 0;
  int year, month, day;
  if (!Digits(s, i, 4, year) || i != 4 || i >= s.size() || s[i++] != '-') return false;
  if (!Digits(s, i, 2, month) || i >= s.size() || s[i++] != '-' || !Digits(s, i, 2, day)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  if (i == s.size()) return true;
  const char separator = s[i++];
  if (separator != 'T' && separator != 't' && separator != ' ') return false;
  int hour, minute, second;
  if (!Digits(s, i, 2, hour) || i >= s.size() || s[i++] != ':' || !Digits(s, i, 2, minute) ||
      i >= s.size() || s[i++] != ':' || !Digits(s, i, 2, second)) {
    return false;
  }
  if (hour > 23 || minute > 59 || second > 59) return false;
  if (i < s.size() && s[i] == '.') {
    int fraction;
    ++i;
    if (!Digits(s, i, 9, fraction)) return false;
  }
  if (separator == ' ') return i == s.size();
  if (i < s.size() && s[i] == 'Z') return i + 1 == s.size();
  if (i >= s.size() || (s[i] != '+' && s[i] != '-')) return false;
  ++i;
  int zone_hours, zone_minutes;
  return Digits(s, i, 2, zone_hours) && i - 1 < s.size() && i < s.size() && s[i++] == ':' &&
         Digits(s, i, 2, zone_minutes) && i == s.size();
}

// A scalar's text as go-yaml v2 resolves it untagged (or for the tag given, which only
// lets timestamps be tried when it is !!timestamp or none): its first character says what
// it may be; YAML 1.1's words in go-yaml's three spellings each.
Resolved Resolve(const std::string& text, bool timestamps) {
  static const auto* const kNulls = new std::set<std::string>{"~", "null", "Null", "NULL"};
  static const auto* const kTrue = new std::set<std::string>{
      "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static const auto* const kFalse = new std::set<std::string>{
      "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  static const auto* const kInfinite =
      new std::set<std::string>{".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"};
  static const auto* const kMinusInfinite = new std::set<std::string>{"-.inf", "-.Inf", "-.INF"};
  static const auto* const kNaN = new std::set<std::string>{".nan", ".NaN", ".NAN"};
  if (text.empty() || kNulls->count(text) > 0) return {Resolved::kNull, nullptr};
  if (kTrue->count(text) > 0) return {Resolved::kBool, true};
  if (kFalse->count(text) > 0) return {Resolved::kBool, false};
  if (kInfinite->count(text) > 0) {
    return {Resolved::kFloat, std::numeric_limits<double>::infinity()};
  }
  if (kMinusInfinite->count(text) > 0) {
    return {Resolved::kFloat, -std::numeric_limits<double>::infinity()};
  }
  if (kNaN->count(text) > 0) return {Resolved::kFloat, std::numeric_limits<double>::quiet_NaN()};
  const char first = text[0];
  if (first == '.') {
    if (GoYamlFloat(text)) {
      if (std::optional<double> d = GoFloat(text); d.has_value()) return {Resolved::kFloat, *d};
    }
    return {Resolved::kStr, text};
  }
  if (!absl::ascii_isdigit(first) && first != '+' && first != '-') return {Resolved::kStr, text};
  if (timestamps && GoYamlTimestamp(text)) return {Resolved::kTimestamp, text};
  const std::string plain = absl::StrReplaceAll(text, {{"_", ""}});
  if (std::optional<nlohmann::json> i = GoInteger(plain); i.has_value()) {
    return {Resolved::kInt, *std::move(i)};
  }
  if (GoYamlFloat(plain)) {
    if (std::optional<double> d = GoFloat(plain); d.has_value()) return {Resolved::kFloat, *d};
  }
  return {Resolved::kStr, text};
}

// A scalar with its tag as go-yaml v2 decodes it into an interface{} (kubectl's reader):
// quoted or `!` is text; untagged plain is resolved; `!!str` is text; `!!binary` is its
// base64 decoded; a tag go-yaml does not resolve (`!foo`, `!!set`) leaves the text; the
// others must resolve to what they name (`!!int "1"` is 1), `!!float` taking an integer
// too (`!!float 1` is 1.0), else it is an error, as go-yaml's "cannot decode".
absl::StatusOr<Resolved> ResolveTagged(const std::string& tag, const std::string& text) {
  if (tag == "!") return Resolved{Resolved::kStr, text};
  if (tag.empty() || tag == "?") return Resolve(text, /*timestamps=*/true);
  constexpr absl::string_view kCore = "tag:yaml.org,2002:";
  const std::string name =
      absl::StartsWith(tag, kCore) ? absl::StrCat("!!", tag.substr(kCore.size())) : tag;
  if (name == "!!binary") {
    std::string data;
    if (!absl::Base64Unescape(absl::StrReplaceAll(text, {{"\n", ""}, {"\r", ""}}), &data)) {
      return absl::InvalidArgumentError("a !!binary value is not base64");
    }
    if (!IsUtf8(data)) {
      return absl::InvalidArgumentError(
          "a !!binary value decodes to bytes that are not UTF-8 text, which JSON cannot "
          "carry (kubectl would replace them); write a Secret's data in base64 without the "
          "tag");
    }
    return Resolved{Resolved::kStr, data};
  }
  static const auto* const kResolvable =
      new std::set<std::string>{"!!str", "!!bool", "!!int", "!!float", "!!null", "!!timestamp"};
  if (name == "!!str" || kResolvable->count(name) == 0) return Resolved{Resolved::kStr, text};
  Resolved resolved = Resolve(text, /*timestamps=*/name == "!!timestamp");
  if (name == KindTag(resolved.kind)) return resolved;
  if (name == "!!float" && resolved.kind == Resolved::kInt && resolved.value.is_number_integer() &&
      !resolved.value.is_number_unsigned()) {
    return Resolved{Resolved::kFloat, static_cast<double>(resolved.value.get<int64_t>())};
  }
  return absl::InvalidArgumentError(absl::StrCat("`", text, "` tagged ", name, " reads as ",
                                                 KindTag(resolved.kind),
                                                 ", not as the tag says (kubectl refuses it too)"));
}

// A value for JSON: infinities and NaN are refused, since JSON cannot carry them (kubectl
// fails on them too).
absl::StatusOr<nlohmann::json> ValueJson(const Resolved& resolved, const std::string& text) {
  if (resolved.kind == Resolved::kFloat && !std::isfinite(resolved.value.get<double>())) {
    return absl::InvalidArgumentError(
        absl::StrCat(text,
                     " is an infinite or NaN number, which JSON cannot carry (kubectl refuses it "
                     "too); quote it if the text is meant"));
  }
  return resolved.value;
}

// Go's strconv.FormatFloat(value, 'g', -1, 32): the shortest digits that read back as the
// same float32, in %e form when the exponent is under -4 or at least the larger of 6 and
// the digits' count past the point... as Go decides.
std::string GoFloat32String(double value) {
  const float f = static_cast<float>(value);
  if (std::isnan(f)) return ".nan";
  if (std::isinf(f)) return f > 0 ? ".inf" : "-.inf";
  if (f == 0) return std::signbit(f) ? "-0" : "0";
  char buffer[64];
  int precision = 1;
  for (; precision < 9; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*e", precision - 1, static_cast<double>(f));
    if (std::strtof(buffer, nullptr) == f) break;
  }
  std::snprintf(buffer, sizeof(buffer), "%.*e", precision - 1, static_cast<double>(f));
  // buffer: [-]d.ddde[+-]xx
  absl::string_view text = buffer;
  const bool negative = absl::ConsumePrefix(&text, "-");
  const size_t e = text.find('e');
  std::string digits = absl::StrReplaceAll(text.substr(0, e), {{".", ""}});
  int exponent = 0;
  (void)absl::SimpleAtoi(text.substr(e + 1), &exponent);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int count = static_cast<int>(digits.size());
  const int point = exponent + 1;  // digits before the decimal point
  int limit = 6;
  if (limit > count && count >= point) limit = count;
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= limit) {
    out += digits.substr(0, 1);
    if (count > 1) absl::StrAppend(&out, ".", digits.substr(1));
    absl::StrAppend(&out, "e", exponent < 0 ? "-" : "+", std::abs(exponent) < 10 ? "0" : "",
                    std::abs(exponent));
    return out;
  }
  if (point <= 0) {
    absl::StrAppend(&out, "0.", std::string(-point, '0'), digits);
  } else if (point >= count) {
    absl::StrAppend(&out, digits, std::string(point - count, '0'));
  } else {
    absl::StrAppend(&out, digits.substr(0, point), ".", digits.substr(point));
  }
  return out;
}

// A mapping key as sigs.k8s.io/yaml makes it a JSON key: resolved as a value is, then
// written as text (`on:` is "true", `0x10:` is "16", `1.0:` is "1"); a null key, or an
// integer past int64, is refused, as kubectl refuses them.
ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<std::string> KeyText(const YAML::Node& key) {
  if (key.IsNull()) {
    return absl::InvalidArgumentError(
        "a mapping key is null (empty, `~` or `null`), which JSON cannot carry (kubectl refuses "
        "it too); quote it if the text is meant");
  }
  if (!key.IsScalar()) return absl::InvalidArgumentError("a mapping key is not a scalar");
  GF_ASSIGN_OR_RETURN(Resolved resolved, ResolveTagged(key.Tag(), key.Scalar()));
  switch (resolved.kind) {
    case Resolved::kStr:
    case Resolved::kTimestamp:
      return resolved.value.get<std::string>();
    case Resolved::kBool:
      return std::string(resolved.value.get<bool>() ? "true" : "false");
    case Resolved::kFloat:
      return GoFloat32String(resolved.value.get<double>());
    case Resolved::kInt:
      if (resolved.value.is_number_unsigned()) break;
      return absl::StrCat(resolved.value.get<int64_t>());
    case Resolved::kNull:
      return absl::InvalidArgumentError(absl::StrCat(
          "the mapping key `", key.Scalar(),
          "` is null, which JSON cannot carry (kubectl refuses it too); quote it if the text "
          "is meant"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the mapping key `", key.Scalar(),
      "` is an integer past int64, which kubectl refuses; quote it if the text is meant"));
}

// Where in the document a conversion failed, outermost first: "at .spec.ports[0]: ...".
absl::Status Under(const absl::Status& status, const std::string& step) {
  absl::string_view message = status.message();
  if (absl::StartsWith(message, "at ")) {
    return absl::Status(status.code(), absl::StrCat("at ", step, message.substr(3)));
  }
  return absl::Status(status.code(), absl::StrCat("at ", step, ": ", message));
}

// The parts of Convert that are not on its recursion's way, kept out of its frame: the
// agent reads documents nested hundreds deep, and the fake API server's civetweb workers
// have small stacks (more so under ASAN, whose frames keep every local apart).
ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<nlohmann::json> ScalarJson(const YAML::Node& node) {
  // yaml-cpp tags quoted scalars "!" and plain ones "?".
  GF_ASSIGN_OR_RETURN(Resolved resolved, ResolveTagged(node.Tag(), node.Scalar()));
  return ValueJson(resolved, node.Scalar());
}

ABSL_ATTRIBUTE_NOINLINE absl::Status UnderIndex(const absl::Status& status, size_t index) {
  return Under(status, absl::StrCat("[", index, "]"));
}

ABSL_ATTRIBUTE_NOINLINE absl::Status UnderKey(const absl::Status& status, const std::string& key) {
  return Under(status, absl::StrCat(".", key));
}

ABSL_ATTRIBUTE_NOINLINE absl::Status KeyError(const YAML::Node& key, const absl::Status& status) {
  return key.IsScalar() ? UnderKey(status, key.Scalar()) : status;
}

absl::StatusOr<nlohmann::json> Convert(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nlohmann::json(nullptr);
    case YAML::NodeType::Scalar:
      return ScalarJson(node);
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const YAML::Node& item : node) {
        absl::StatusOr<nlohmann::json> value = Convert(item);
        if (!value.ok()) return UnderIndex(value.status(), out.size());
        out.push_back(*std::move(value));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& entry : node) {
        absl::StatusOr<std::string> key = KeyText(entry.first);
        if (!key.ok()) return KeyError(entry.first, key.status());
        absl::StatusOr<nlohmann::json> value = Convert(entry.second);
        if (!value.ok()) return UnderKey(value.status(), *key);
        out[*key] = *std::move(value);
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

bool IsUtf8(absl::string_view data) {
  size_t i = 0;
  while (i < data.size()) {
    const unsigned char c = static_cast<unsigned char>(data[i]);
    size_t length;
    uint32_t code;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      length = 2;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + length > data.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(data[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kSmallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

absl::Status CheckGoYamlCharacters(absl::string_view text) {
  if (!IsUtf8(text)) return absl::InvalidArgumentError("it is not UTF-8 text");
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const unsigned char next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
    // C0 controls but tab, line feed and carriage return; DEL; C1 controls but NEL (U+0085).
    const bool control = (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F ||
                         (c == 0xC2 && next >= 0x80 && next <= 0x9F && next != 0x85);
    if (control) {
      return absl::InvalidArgumentError(
          absl::StrCat("byte ", i, " is a control character (0x",
                       absl::Hex(c == 0xC2 ? next : c, absl::kZeroPad2), ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace gitfleet
