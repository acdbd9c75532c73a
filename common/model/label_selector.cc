#include "common/model/label_selector.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gitfleet {
namespace {

// What ValidName admits, in words (Kubernetes' rule for label names and values).
constexpr char kLabelRule[] =
    "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

bool ValidName(absl::string_view s, bool allow_empty) {
  if (s.empty()) return allow_empty;
  if (s.size() > 63) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return absl::ascii_isalnum(s.front()) && absl::ascii_isalnum(s.back());
}

bool ValidKey(absl::string_view key) {
  size_t slash = key.find('/');
  if (slash == absl::string_view::npos) return ValidName(key, false);
  absl::string_view prefix = key.substr(0, slash);
  if (prefix.empty() || prefix.size() > 253) return false;
  for (char c : prefix) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '.') return false;
  }
  return ValidName(key.substr(slash + 1), false);
}

// Splits on commas that are not inside parentheses.
std::vector<std::string> SplitTopLevel(absl::string_view text) {
  std::vector<std::string> parts;
  int depth = 0;
  std::string current;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      parts.push_back(current);
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  parts.push_back(current);
  return parts;
}

}  // namespace

absl::StatusOr<LabelSelector> LabelSelector::Parse(absl::string_view text) {
  LabelSelector selector;
  selector.text_ = std::string(absl::StripAsciiWhitespace(text));
  if (selector.text_.empty()) return selector;
  auto bad = [&](absl::string_view part, absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("selector \"", selector.text_, "\": \"", part, "\" ", why));
  };
  for (std::string raw : SplitTopLevel(selector.text_)) {
    absl::string_view part = absl::StripAsciiWhitespace(raw);
    if (part.empty()) return bad(part, "is an empty requirement");
    Requirement req;
    size_t pos;
    if (absl::ConsumePrefix(&part, "!")) {
      req.key = std::string(absl::StripAsciiWhitespace(part));
      req.op = Op::kNotExists;
    } else if ((pos = part.find("!=")) != absl::string_view::npos) {
      req.key = std::string(absl::StripAsciiWhitespace(part.substr(0, pos)));
      req.op = Op::kNotEquals;
      req.values.insert(std::string(absl::StripAsciiWhitespace(part.substr(pos + 2))));
    } else if ((pos = part.find('=')) != absl::string_view::npos) {
      req.key = std::string(absl::StripAsciiWhitespace(part.substr(0, pos)));
      req.op = Op::kEquals;
      absl::string_view value = part.substr(pos + 1);
      absl::ConsumePrefix(&value, "=");
      req.values.insert(std::string(absl::StripAsciiWhitespace(value)));
    } else if ((pos = part.find('(')) != absl::string_view::npos) {
      if (part.back() != ')') return bad(part, "is missing a closing parenthesis");
      std::vector<std::string> words =
          absl::StrSplit(part.substr(0, pos), ' ', absl::SkipWhitespace());
      if (words.size() != 2 || (words[1] != "in" && words[1] != "notin")) {
        return bad(part, "must be \"key in (a,b)\" or \"key notin (a,b)\"");
      }
      req.key = words[0];
      req.op = words[1] == "in" ? Op::kIn : Op::kNotIn;
      absl::string_view list = part.substr(pos + 1, part.size() - pos - 2);
      for (absl::string_view v : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
        v = absl::StripAsciiWhitespace(v);
        if (!ValidName(v, true)) return bad(part, absl::StrCat("has invalid value \"", v, "\""));
        req.values.insert(std::string(v));
      }
      if (req.values.empty()) return bad(part, "has an empty value list");
    } else {
      req.key = std::string(part);
      req.op = Op::kExists;
      if (req.key.find(' ') != std::string::npos) {
        return bad(part, "is not a requirement (want key=value, key in (...), key or !key)");
      }
    }
    if (!ValidKey(req.key)) return bad(part, absl::StrCat("has invalid key \"", req.key, "\""));
    for (const std::string& v : req.values) {
      if (!ValidName(v, true)) return bad(part, absl::StrCat("has invalid value \"", v, "\""));
    }
    selector.requirements_.push_back(std::move(req));
  }
  return selector;
}

std::set<std::string> LabelSelector::Keys() const {
  std::set<std::string> keys;
  for (const Requirement& req : requirements_) keys.insert(req.key);
  return keys;
}

bool LabelSelector::Matches(const LabelMap& labels) const {
  for (const Requirement& req : requirements_) {
    auto it = labels.find(req.key);
    bool has = it != labels.end();
    switch (req.op) {
      case Op::kEquals:
      case Op::kIn:
        if (!has || req.values.count(it->second) == 0) return false;
        break;
      case Op::kNotEquals:
      case Op::kNotIn:
        if (has && req.values.count(it->second) > 0) return false;
        break;
      case Op::kExists:
        if (!has) return false;
        break;
      case Op::kNotExists:
        if (has) return false;
        break;
    }
  }
  return true;
}

absl::StatusOr<LabelMap> ParseLabels(absl::string_view text) {
  LabelMap labels;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("label \"", part.substr(0, 64), "\" is not key=value"));
    }
    std::string key(absl::StripAsciiWhitespace(part.substr(0, eq)));
    std::string value(absl::StripAsciiWhitespace(part.substr(eq + 1)));
    if (absl::Status s = ValidateLabels({{key, value}}); !s.ok()) return s;
    if (!labels.emplace(key, value).second) {
      return absl::InvalidArgumentError(absl::StrCat("label ", key, " given twice"));
    }
  }
  return labels;
}

absl::Status ValidateLabels(const LabelMap& labels) {
  constexpr size_t kMaxLabels = 64;
  if (labels.size() > kMaxLabels) {
    return absl::InvalidArgumentError(absl::StrCat(labels.size(), " labels; at most ", kMaxLabels));
  }
  for (const auto& [key, value] : labels) {
    if (!ValidKey(key)) {
      return absl::InvalidArgumentError(absl::StrCat("label key \"", key.substr(0, 64),
                                                     "\" is invalid: ", kLabelRule,
                                                     ", after an optional DNS prefix and '/'"));
    }
    if (!ValidName(value, true)) {
      return absl::InvalidArgumentError(absl::StrCat("label value \"", value.substr(0, 64),
                                                     "\" of ", key, " is invalid: ", kLabelRule,
                                                     ", or empty"));
    }
  }
  return absl::OkStatus();
}

}  // namespace gitfleet
