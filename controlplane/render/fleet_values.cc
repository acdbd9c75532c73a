#include "controlplane/render/fleet_values.h"

#include <cstdint>
#include <optional>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/manifest/yaml.h"
#include "common/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

constexpr char kLabelPrefix[] = "global.fleet.clusterLabels.";
// What one scalar may grow to once its templates are filled in (`replace` can multiply it).
constexpr size_t kMaxResultBytes = 64 * 1024;
constexpr char kForms[] =
    "gitfleet reads .ClusterName, .ClusterLabels.KEY, index/get/hasKey .ClusterLabels \"KEY\", "
    ".ClusterValues.NAME (the bundle's --values and --cluster-values), and quote, squote, upper, "
    "lower, trim, default, replace and pipes";

std::string Shown(absl::string_view text) {
  std::string out(text.substr(0, 60));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return text.size() > 60 ? out + "..." : out;
}

// A template's value: a string, a boolean, an integer, or one of the two maps.
struct Val {
  enum Kind { kString, kBool, kInt, kLabels, kClusterValues } kind = kString;
  std::string s;
  bool b = false;
  int64_t i = 0;
};

Val String(std::string s) {
  Val v;
  v.s = std::move(s);
  return v;
}

struct Token {
  enum Kind { kField, kIdent, kString, kNumber, kPipe, kOpen, kClose, kVariable, kEnd } kind;
  std::string text;
};

bool IdentChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

absl::Status Unsupported(const std::string& action, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("${", Shown(action), "}: ", what,
                                                 ", which gitfleet does not evaluate (", kForms,
                                                 "; or set disablePreProcess: true)"));
}

// Go's string literal, read from `body` at `*pos` (on the quote).
absl::StatusOr<std::string> ReadString(const std::string& body, size_t* pos,
                                       const std::string& action) {
  const char quote = body[*pos];
  std::string out;
  size_t i = *pos + 1;
  for (; i < body.size() && body[i] != quote; ++i) {
    if (quote == '`' || body[i] != '\\') {
      out.push_back(body[i]);
      continue;
    }
    if (++i >= body.size()) break;
    switch (body[i]) {
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '"':
        out.push_back('"');
        break;
      case '\'':
        out.push_back('\'');
        break;
      default:
        return Unsupported(action, absl::StrCat("the escape \\", Shown(body.substr(i, 1))));
    }
  }
  if (i >= body.size()) {
    return absl::InvalidArgumentError(absl::StrCat("${", Shown(action), "}: an unclosed string"));
  }
  *pos = i + 1;
  return out;
}

absl::StatusOr<std::vector<Token>> Lex(const std::string& body) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < body.size()) {
    const char c = body[i];
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '|') {
      tokens.push_back({Token::kPipe, "|"});
      ++i;
    } else if (c == '(') {
      tokens.push_back({Token::kOpen, "("});
      ++i;
    } else if (c == ')') {
      tokens.push_back({Token::kClose, ")"});
      ++i;
    } else if (c == '"' || c == '`') {
      absl::StatusOr<std::string> text = ReadString(body, &i, body);
      if (!text.ok()) return text.status();
      tokens.push_back({Token::kString, *std::move(text)});
    } else if (c == '.') {
      size_t end = i + 1;
      while (end < body.size() && (IdentChar(body[end]) || body[end] == '.')) ++end;
      const std::string field = body.substr(i, end - i);
      const bool well_formed =
          field.size() > 1 && !absl::StrContains(field, "..") && field.back() != '.';
      if (!well_formed ||
          (end < body.size() && !absl::ascii_isspace(static_cast<unsigned char>(body[end])) &&
           body[end] != '|' && body[end] != ')')) {
        return Unsupported(body, absl::StrCat("the field ", Shown(body.substr(i)),
                                              " (a label key with '-', '.' or '/' is read with "
                                              "index .ClusterLabels \"KEY\")"));
      }
      tokens.push_back({Token::kField, field});
      i = end;
    } else if (c == '$') {
      return Unsupported(body, "a template variable ($)");
    } else if (absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-') {
      size_t end = i + 1;
      while (end < body.size() && absl::ascii_isdigit(static_cast<unsigned char>(body[end]))) ++end;
      tokens.push_back({Token::kNumber, body.substr(i, end - i)});
      i = end;
    } else if (IdentChar(c)) {
      size_t end = i;
      while (end < body.size() && IdentChar(body[end])) ++end;
      tokens.push_back({Token::kIdent, body.substr(i, end - i)});
      i = end;
    } else {
      return Unsupported(body, absl::StrCat("'", Shown(body.substr(i, 1)), "'"));
    }
  }
  tokens.push_back({Token::kEnd, ""});
  return tokens;
}

// Go's %q of a string (sprig's quote), for the ASCII that labels and names hold; other
// bytes pass as they are.
std::string GoQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out + "\"";
}

class Evaluator {
 public:
  Evaluator(const std::string& action, std::vector<Token> tokens, const Values& values,
            ReadValues* read)
      : action_(action), tokens_(std::move(tokens)), values_(values), read_(read) {}

  absl::StatusOr<Val> Run() {
    absl::StatusOr<Val> value = Pipeline();
    if (value.ok() && Peek().kind != Token::kEnd) {
      return Unsupported(action_, absl::StrCat("\"", Shown(Peek().text), "\" after the value"));
    }
    return value;
  }

  absl::StatusOr<std::string> Text(const Val& v) const {
    switch (v.kind) {
      case Val::kString:
        return v.s;
      case Val::kBool:
        return std::string(v.b ? "true" : "false");
      case Val::kInt:
        return absl::StrCat(v.i);
      default:
        break;
    }
    return Unsupported(action_, "a whole map as text");
  }

 private:
  const Token& Peek() const { return tokens_[pos_]; }
  bool AtCommandEnd() const {
    const Token::Kind k = Peek().kind;
    return k == Token::kPipe || k == Token::kClose || k == Token::kEnd;
  }

  absl::StatusOr<Val> Pipeline() {
    std::optional<Val> piped;
    while (true) {
      absl::StatusOr<Val> value = Command(piped);
      if (!value.ok()) return value.status();
      piped = *std::move(value);
      if (Peek().kind != Token::kPipe) return *piped;
      ++pos_;
    }
  }

  absl::StatusOr<Val> Command(const std::optional<Val>& piped) {
    if (Peek().kind == Token::kIdent && Peek().text != "true" && Peek().text != "false") {
      const std::string name = tokens_[pos_++].text;
      static const std::set<std::string>* const kControl =
          new std::set<std::string>{"if",       "else",  "end",   "range",    "with", "define",
                                    "template", "block", "break", "continue", "nil"};
      if (kControl->count(name) > 0) {
        return Unsupported(action_, absl::StrCat("the control action \"", name, "\""));
      }
      std::vector<Val> args;
      while (!AtCommandEnd()) {
        absl::StatusOr<Val> arg = Operand();
        if (!arg.ok()) return arg.status();
        args.push_back(*std::move(arg));
      }
      if (piped.has_value()) args.push_back(*piped);
      return Call(name, args);
    }
    absl::StatusOr<Val> value = Operand();
    if (!value.ok()) return value;
    if (!AtCommandEnd()) {
      return Unsupported(action_, absl::StrCat("arguments to a value that is not a function"));
    }
    if (piped.has_value()) {
      return Unsupported(action_, "a pipe into a value that is not a function");
    }
    return value;
  }

  absl::StatusOr<Val> Operand() {
    const Token token = tokens_[pos_];
    if (token.kind == Token::kEnd || token.kind == Token::kPipe || token.kind == Token::kClose) {
      return absl::InvalidArgumentError(
          absl::StrCat("${", Shown(action_), "}: a value is missing"));
    }
    ++pos_;
    switch (token.kind) {
      case Token::kString:
        return String(token.text);
      case Token::kNumber: {
        Val v;
        v.kind = Val::kInt;
        if (!absl::SimpleAtoi(token.text, &v.i)) {
          return Unsupported(action_, absl::StrCat("the number ", Shown(token.text)));
        }
        return v;
      }
      case Token::kIdent: {  // true or false (functions are commands)
        Val v;
        v.kind = Val::kBool;
        v.b = token.text == "true";
        return v;
      }
      case Token::kField:
        return Field(token.text);
      case Token::kOpen: {
        absl::StatusOr<Val> inner = Pipeline();
        if (!inner.ok()) return inner;
        if (Peek().kind != Token::kClose) {
          return absl::InvalidArgumentError(
              absl::StrCat("${", Shown(action_), "}: an unclosed parenthesis"));
        }
        ++pos_;
        return inner;
      }
      default:
        break;
    }
    return Unsupported(action_, absl::StrCat("\"", Shown(token.text), "\""));
  }

  std::optional<std::string> Lookup(const std::string& key) {
    auto it = values_.find(key);
    std::optional<std::string> found;
    if (it != values_.end()) found = it->second;
    if (read_ != nullptr) (*read_)[key] = found;
    return found;
  }

  // A label, or one of the bundle's values, by name; nullopt when there is none.
  std::optional<std::string> Entry(const Val& map, const std::string& key) {
    if (map.kind == Val::kLabels) return Lookup(ClusterLabelKey(key));
    if (key.empty() || IsClusterContextKey(key) || key.find(':') != std::string::npos) {
      return std::nullopt;
    }
    return Lookup(key);
  }

  absl::Status Missing(const Val& map, const std::string& key) const {
    return absl::InvalidArgumentError(
        absl::StrCat("${", Shown(action_), "}: ",
                     map.kind == Val::kLabels
                         ? absl::StrCat("the cluster has no label ", Shown(key))
                         : absl::StrCat("the bundle has no value ", Shown(key),
                                        " for this cluster (.ClusterValues are its --values and "
                                        "--cluster-values)")));
  }

  absl::StatusOr<Val> Field(const std::string& field) {
    std::vector<std::string> parts = absl::StrSplit(field.substr(1), '.');
    const std::string& head = parts[0];
    if (head == "ClusterName" && parts.size() == 1) {
      std::optional<std::string> name = Lookup(ClusterNameKey());
      if (!name.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("${", Shown(action_), "}: no cluster to fill in"));
      }
      return String(*name);
    }
    if (head == "ClusterLabels" || head == "ClusterValues") {
      Val map;
      map.kind = head == "ClusterLabels" ? Val::kLabels : Val::kClusterValues;
      if (parts.size() == 1) return map;
      // Labels are one level; a value's name may hold dots (replicas.web).
      std::string key = absl::StrJoin(parts.begin() + 1, parts.end(), ".");
      if (map.kind == Val::kLabels && parts.size() > 2) {
        return Unsupported(action_, absl::StrCat("the field ", Shown(field),
                                                 " (a label key with '.' is read with index "
                                                 ".ClusterLabels \"KEY\")"));
      }
      std::optional<std::string> found = Entry(map, key);
      if (!found.has_value()) return Missing(map, key);
      return String(*found);
    }
    if (head == "ClusterNamespace") {
      return Unsupported(action_,
                         ".ClusterNamespace (Fleet's namespace for its cluster objects; gitfleet "
                         "clusters have none)");
    }
    if (head == "ClusterAnnotations") {
      return Unsupported(action_,
                         ".ClusterAnnotations (gitfleet clusters have labels, not annotations)");
    }
    return Unsupported(action_, absl::StrCat("the field ", Shown(field)));
  }

  absl::StatusOr<std::string> Arg(const std::string& fn, const Val& v) const {
    absl::StatusOr<std::string> text = Text(v);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("${", Shown(action_), "}: ", fn, " takes text, not a map"));
    }
    return text;
  }

  absl::Status Arity(const std::string& fn, const std::vector<Val>& args, size_t n) const {
    if (args.size() == n) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("${", Shown(action_), "}: ", fn, " takes ", n,
                                                   " arguments, not ", args.size()));
  }

  absl::StatusOr<Val> Call(const std::string& fn, const std::vector<Val>& args) {
    if (fn == "quote" || fn == "squote") {
      std::vector<std::string> parts;
      for (const Val& arg : args) {
        absl::StatusOr<std::string> text = Arg(fn, arg);
        if (!text.ok()) return text.status();
        parts.push_back(fn == "quote" ? GoQuote(*text) : absl::StrCat("'", *text, "'"));
      }
      return String(absl::StrJoin(parts, " "));
    }
    if (fn == "upper" || fn == "lower" || fn == "trim") {
      GF_RETURN_IF_ERROR(Arity(fn, args, 1));
      absl::StatusOr<std::string> text = Arg(fn, args[0]);
      if (!text.ok()) return text.status();
      if (fn == "upper") return String(absl::AsciiStrToUpper(*text));
      if (fn == "lower") return String(absl::AsciiStrToLower(*text));
      return String(std::string(absl::StripAsciiWhitespace(*text)));
    }
    if (fn == "default") {
      GF_RETURN_IF_ERROR(Arity(fn, args, 2));
      const Val& given = args[1];
      const bool empty = (given.kind == Val::kString && given.s.empty()) ||
                         (given.kind == Val::kBool && !given.b) ||
                         (given.kind == Val::kInt && given.i == 0);
      return empty ? args[0] : given;
    }
    if (fn == "index" || fn == "get" || fn == "hasKey") {
      GF_RETURN_IF_ERROR(Arity(fn, args, 2));
      if (args[0].kind != Val::kLabels && args[0].kind != Val::kClusterValues) {
        return Unsupported(action_, absl::StrCat(fn,
                                                 " of something other than .ClusterLabels "
                                                 "or .ClusterValues"));
      }
      absl::StatusOr<std::string> key = Arg(fn, args[1]);
      if (!key.ok()) return key.status();
      std::optional<std::string> found = Entry(args[0], *key);
      if (fn == "hasKey") {
        Val v;
        v.kind = Val::kBool;
        v.b = found.has_value();
        return v;
      }
      if (!found.has_value()) {
        if (fn == "get") return String("");
        return Missing(args[0], *key);
      }
      return String(*found);
    }
    if (fn == "replace") {
      GF_RETURN_IF_ERROR(Arity(fn, args, 3));
      std::string text[3];
      for (int i = 0; i < 3; ++i) {
        absl::StatusOr<std::string> arg = Arg(fn, args[i]);
        if (!arg.ok()) return arg.status();
        text[i] = *std::move(arg);
      }
      if (text[0].empty()) {
        return Unsupported(action_, "replace of an empty string");
      }
      if (text[2].size() / text[0].size() * text[1].size() > kMaxResultBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "${", Shown(action_), "}: the result would pass ", kMaxResultBytes, " bytes"));
      }
      return String(absl::StrReplaceAll(text[2], {{text[0], text[1]}}));
    }
    return Unsupported(action_, absl::StrCat("the function \"", Shown(fn), "\""));
  }

  const std::string& action_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  const Values& values_;
  ReadValues* read_;
};

// The Go template's action that starts at text[*pos] ("${"): its body, without the
// delimiters and trim markers; *pos moves past it.
struct Action {
  std::string body;
  bool trim_left = false;
  bool trim_right = false;
};

absl::StatusOr<Action> ReadAction(const std::string& text, size_t* pos) {
  size_t i = *pos + 2;
  while (i < text.size() && text[i] != '}') {
    if (text[i] == '"' || text[i] == '`') {
      const char quote = text[i];
      for (++i; i < text.size() && text[i] != quote; ++i) {
        if (quote == '"' && text[i] == '\\') ++i;
      }
      if (i >= text.size()) break;
    }
    ++i;
  }
  if (i >= text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", Shown(text.substr(*pos)),
                     "\": an unclosed ${ (Fleet's templates "
                     "end with }; set disablePreProcess: true for text that is not one)"));
  }
  Action action;
  std::string body = text.substr(*pos + 2, i - *pos - 2);
  auto space = [](char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); };
  if (body.size() >= 2 && body[0] == '-' && space(body[1])) {
    action.trim_left = true;
    body = body.substr(2);
  }
  if (body.size() >= 2 && body.back() == '-' && space(body[body.size() - 2])) {
    action.trim_right = true;
    body.pop_back();
  }
  if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(body), "/*")) {
    return Unsupported(body, "a comment");
  }
  action.body = std::move(body);
  *pos = i + 1;
  return action;
}

// The merge `fleet apply` does: `overlay`'s entries over `base`'s, maps merged key by key.
YAML::Node Merge(const YAML::Node& base, const YAML::Node& overlay) {
  if (!base.IsMap() || !overlay.IsMap()) return YAML::Clone(overlay);
  std::vector<std::pair<YAML::Node, YAML::Node>> entries;
  absl::flat_hash_map<std::string, size_t> by_key;  // a scalar key's entry
  for (const auto& entry : base) {
    if (entry.first.IsScalar()) by_key.emplace(entry.first.Scalar(), entries.size());
    entries.emplace_back(entry.first, entry.second);
  }
  for (const auto& entry : overlay) {
    auto it = entry.first.IsScalar() ? by_key.find(entry.first.Scalar()) : by_key.end();
    if (it != by_key.end()) {
      entries[it->second].second = Merge(entries[it->second].second, entry.second);
      continue;
    }
    if (entry.first.IsScalar()) by_key.emplace(entry.first.Scalar(), entries.size());
    entries.emplace_back(entry.first, YAML::Clone(entry.second));
  }
  YAML::Node out(YAML::NodeType::Map);
  for (auto& [key, value] : entries) out.force_insert(YAML::Clone(key), value);
  return out;
}

class Filler {
 public:
  Filler(const FleetHelmValues& fleet, const Values& values, ReadValues* read)
      : fleet_(fleet), values_(values), read_(read) {}

  absl::StatusOr<YAML::Node> Fill(const YAML::Node& node, const std::string& where,
                                  bool map_value) {
    if (node.IsMap()) {
      YAML::Node out(YAML::NodeType::Map);
      std::set<std::string> keys;
      for (const auto& entry : node) {
        YAML::Node key = YAML::Clone(entry.first);
        if (key.IsScalar() && fleet_.preprocess && HasVariables(key.Scalar())) {
          absl::StatusOr<std::string> filled = EvaluateFleetTemplate(key.Scalar(), values_, read_);
          if (!filled.ok()) return At(where, filled.status());
          key = YAML::Node(*filled);
        }
        const std::string name = key.IsScalar() ? key.Scalar() : "?";
        if (key.IsScalar() && !keys.insert(name).second) {
          return absl::InvalidArgumentError(
              absl::StrCat(where.empty() ? "" : where + ": ", "two keys are ", Shown(name)));
        }
        absl::StatusOr<YAML::Node> value =
            Fill(entry.second, where.empty() ? name : absl::StrCat(where, ".", name), true);
        if (!value.ok()) return value.status();
        out.force_insert(key, *value);
      }
      return out;
    }
    if (node.IsSequence()) {
      YAML::Node out(YAML::NodeType::Sequence);
      int index = 0;
      for (const auto& item : node) {
        absl::StatusOr<YAML::Node> value =
            Fill(item, absl::StrCat(where, "[", index++, "]"), false);
        if (!value.ok()) return value.status();
        out.push_back(*value);
      }
      return out;
    }
    if (!node.IsScalar()) return YAML::Clone(node);
    const std::string& text = node.Scalar();
    if (map_value && absl::StartsWith(text, kLabelPrefix)) {
      // Fleet's older form: the whole value names a label; "" when the cluster has none.
      const std::string label = text.substr(sizeof(kLabelPrefix) - 1);
      auto it = values_.find(ClusterLabelKey(label));
      std::optional<std::string> found;
      if (it != values_.end()) found = it->second;
      if (read_ != nullptr) (*read_)[ClusterLabelKey(label)] = found;
      YAML::Node out(found.value_or(""));
      out.SetTag("!");
      return out;
    }
    if (!fleet_.preprocess || !HasVariables(text)) return YAML::Clone(node);
    absl::StatusOr<std::string> filled = EvaluateFleetTemplate(text, values_, read_);
    if (!filled.ok()) return At(where, filled.status());
    // Fleet fills the text in and reads the result as YAML.
    if (absl::Status bounded = CheckYamlBounds(*filled, where); !bounded.ok()) {
      return At(where, bounded);
    }
    try {
      YAML::Node out = YAML::Load(*filled);
      return out;
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": the filled-in template \"",
                                                     Shown(*filled), "\" is not YAML: ", e.msg));
    }
  }

 private:
  static absl::Status At(const std::string& where, const absl::Status& status) {
    return absl::Status(status.code(),
                        absl::StrCat(where.empty() ? "" : where + ": ", status.message()));
  }

  const FleetHelmValues& fleet_;
  const Values& values_;
  ReadValues* read_;
};

}  // namespace

absl::StatusOr<std::string> EvaluateFleetTemplate(const std::string& text, const Values& values,
                                                  ReadValues* read) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = text.find("${", pos);
    if (start == std::string::npos) {
      out.append(text, pos, std::string::npos);
      break;
    }
    out.append(text, pos, start - pos);
    pos = start;
    absl::StatusOr<Action> action = ReadAction(text, &pos);
    if (!action.ok()) return action.status();
    if (action->trim_left) {
      while (!out.empty() && absl::ascii_isspace(static_cast<unsigned char>(out.back()))) {
        out.pop_back();
      }
    }
    absl::StatusOr<std::vector<Token>> tokens = Lex(action->body);
    if (!tokens.ok()) return tokens.status();
    Evaluator evaluator(action->body, *std::move(tokens), values, read);
    absl::StatusOr<Val> value = evaluator.Run();
    if (!value.ok()) return value.status();
    absl::StatusOr<std::string> printed = evaluator.Text(*value);
    if (!printed.ok()) return printed.status();
    out += *printed;
    if (action->trim_right) {
      while (pos < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[pos]))) {
        ++pos;
      }
    }
    if (out.size() > kMaxResultBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", Shown(text), "\": filled in, it passes ", kMaxResultBytes, " bytes"));
    }
  }
  return out;
}

absl::StatusOr<std::string> FleetHelmValues::For(const Values& values, ReadValues* read) const {
  YAML::Node merged(YAML::NodeType::Map);
  auto load = [](const std::string& text, const std::string& name) -> absl::StatusOr<YAML::Node> {
    GF_RETURN_IF_ERROR(CheckYamlBounds(text, name));
    YAML::Node node;
    try {
      node = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", e.msg));
    }
    if (node.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!node.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name,
                       " is not a mapping of values (Fleet merges each values file into "
                       "helm.values)"));
    }
    // `<<: *defaults` merged before the files are: as helm's Go YAML reads each file.
    absl::StatusOr<YAML::Node> resolved = ResolveMergeKeys(node);
    if (!resolved.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", resolved.status().message()));
    }
    node = *std::move(resolved);
    return node;
  };
  if (!this->values.empty()) {
    absl::StatusOr<YAML::Node> node = load(this->values, "helm.values");
    if (!node.ok()) return node.status();
    merged = *node;
  }
  for (const auto& [name, text] : files) {
    absl::StatusOr<YAML::Node> node = load(text, name);
    if (!node.ok()) return node.status();
    merged = Merge(merged, *node);
  }
  if (merged.size() == 0) return std::string();
  Filler filler(*this, values, read);
  absl::StatusOr<YAML::Node> filled = filler.Fill(merged, "", false);
  if (!filled.ok()) return filled.status();
  return EmitBlockYaml(*filled);
}

}  // namespace gitfleet
