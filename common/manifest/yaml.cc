#include "common/manifest/yaml.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace gitfleet {
namespace {

// Whether a string scalar must be quoted to stay a string: its plain form would read
// as null, a YAML 1.1 boolean (Kubernetes' YAML parser still honours yes/no/on/off) or
// a number. Conservative: anything number-like is quoted.
bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  // A quoted "${replicas}" must stay a string once per-cluster values are substituted.
  if (s.find("${") != std::string::npos) return true;
  static const char* const kSpecial[] = {"~",   "null", "true", "false", "yes",   "no",    "on",
                                         "off", "y",    "n",    ".inf",  "-.inf", "+.inf", ".nan"};
  std::string lower = absl::AsciiStrToLower(s);
  for (const char* special : kSpecial) {
    if (lower == special) return true;
  }
  char first = s[0];
  if (!(absl::ascii_isdigit(first) || first == '-' || first == '+' || first == '.')) {
    return false;
  }
  for (char c : s) {
    if (!(absl::ascii_isxdigit(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == 'x' ||
          c == 'X' || c == 'o' || c == 'O' || c == ':')) {
      return false;
    }
  }
  return true;
}

// Emits `node` in block style. Unlike yaml-cpp's own node emitter it keeps quoted
// scalars quoted, so "1" stays a string and never turns into the integer 1.
void EmitCanonical(YAML::Emitter& out, const YAML::Node& node) {
  const std::string& tag = node.Tag();
  if (!tag.empty() && tag != "?" && tag != "!") out << YAML::VerbatimTag(tag);
  switch (node.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (const auto& entry : node) {
        out << YAML::Key;
        EmitCanonical(out, entry.first);
        out << YAML::Value;
        EmitCanonical(out, entry.second);
      }
      out << YAML::EndMap;
      break;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const auto& item : node) EmitCanonical(out, item);
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (tag == "!" && NeedsQuotes(node.Scalar())) {
        out << YAML::DoubleQuoted << node.Scalar();
      } else {
        out << node.Scalar();
      }
      break;
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out << YAML::Null;
      break;
  }
}

}  // namespace

absl::StatusOr<std::string> EmitBlockYaml(const YAML::Node& node) {
  YAML::Emitter out;
  out.SetMapFormat(YAML::Block);
  out.SetSeqFormat(YAML::Block);
  EmitCanonical(out, node);
  if (!out.good()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot serialize YAML: ", out.GetLastError()));
  }
  return std::string(out.c_str(), out.size()) + "\n";
}

}  // namespace gitfleet
