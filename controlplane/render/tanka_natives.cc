#include "controlplane/render/tanka_natives.h"

extern "C" {
#include <libjsonnet.h>
}

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/manifest/hash.h"
#include "common/manifest/yaml.h"
#include "common/manifest/yaml_json.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// The natives CallsTankaNatives points calls at (names no builtin has).
constexpr char kTankaParseYaml[] = "gitfleet.tanka.parseYaml";
constexpr char kTankaParseJson[] = "gitfleet.tanka.parseJson";
constexpr char kStdParseYaml[] = "gitfleet.std.parseYaml";

// Nesting a value may have on its way into jsonnet (each level a C++ call).
constexpr int kMaxDepth = 256;
// RE2's memory for one compiled expression.
constexpr int64_t kMaxRegexMemory = 8 << 20;

// A failed call: jsonnet raises `message` as the evaluation's error.
JsonnetJsonValue* Fail(JsonnetVm* vm, int* success, const std::string& message) {
  *success = 0;
  return jsonnet_json_make_string(vm, message.c_str());
}

// The string argument `index` of `function`, or null (with the error set) when it is not
// a string.
const char* StringArg(JsonnetVm* vm, const JsonnetJsonValue* const* argv, int index,
                      const char* function, const char* param, int* success,
                      JsonnetJsonValue** error) {
  const char* text = jsonnet_json_extract_string(vm, argv[index]);
  if (text == nullptr) {
    *error = Fail(vm, success,
                  absl::StrCat("std.native('", function, "'): ", param, " must be a string"));
  }
  return text;
}

// A JSON value as a jsonnet one; null when nested past kMaxDepth (`*too_deep` set).
JsonnetJsonValue* ToJsonnet(JsonnetVm* vm, const nlohmann::ordered_json& value, int depth,
                            bool* too_deep) {
  if (depth > kMaxDepth) {
    *too_deep = true;
    return jsonnet_json_make_null(vm);
  }
  switch (value.type()) {
    case nlohmann::ordered_json::value_t::object: {
      JsonnetJsonValue* object = jsonnet_json_make_object(vm);
      for (auto it = value.begin(); it != value.end(); ++it) {
        jsonnet_json_object_append(vm, object, it.key().c_str(),
                                   ToJsonnet(vm, it.value(), depth + 1, too_deep));
      }
      return object;
    }
    case nlohmann::ordered_json::value_t::array: {
      JsonnetJsonValue* array = jsonnet_json_make_array(vm);
      for (const auto& item : value) {
        jsonnet_json_array_append(vm, array, ToJsonnet(vm, item, depth + 1, too_deep));
      }
      return array;
    }
    case nlohmann::ordered_json::value_t::string:
      return jsonnet_json_make_string(vm, value.get_ref<const std::string&>().c_str());
    case nlohmann::ordered_json::value_t::boolean:
      return jsonnet_json_make_bool(vm, value.get<bool>() ? 1 : 0);
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
    case nlohmann::ordered_json::value_t::number_float:
      return jsonnet_json_make_number(vm, value.get<double>());
    default:
      return jsonnet_json_make_null(vm);
  }
}

// How deeply a JSON text nests arrays and objects (strings skipped), read without recursion,
// so that a value too deep for the recursive steps after parsing is refused first.
int JsonDepth(absl::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// The JSON text argument of `function`, parsed; `*error` set when it is not JSON or nests
// deeper than kMaxDepth.
template <typename Json>
std::optional<Json> JsonArg(JsonnetVm* vm, const char* text, const char* function, int* success,
                            JsonnetJsonValue** error) {
  if (JsonDepth(text) > kMaxDepth) {
    *error = Fail(vm, success,
                  absl::StrCat("std.native('", function, "'): the JSON nests deeper than ",
                               kMaxDepth, " levels"));
    return std::nullopt;
  }
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    *error = Fail(vm, success, absl::StrCat("std.native('", function, "'): not JSON"));
    return std::nullopt;
  }
  return value;
}

JsonnetJsonValue* Return(JsonnetVm* vm, const nlohmann::ordered_json& value, const char* function,
                         int* success) {
  bool too_deep = false;
  JsonnetJsonValue* out = ToJsonnet(vm, value, 0, &too_deep);
  if (too_deep) {
    return Fail(vm, success,
                absl::StrCat("std.native('", function, "'): the value nests deeper than ",
                             kMaxDepth, " levels"));
  }
  *success = 1;
  return out;
}

// parseJson(json): a JSON text's value, its keys in their order.
JsonnetJsonValue* ParseJson(void* ctx, const JsonnetJsonValue* const* argv, int* success) {
  auto* vm = static_cast<JsonnetVm*>(ctx);
  JsonnetJsonValue* error = nullptr;
  const char* text = StringArg(vm, argv, 0, "parseJson", "json", success, &error);
  if (text == nullptr) return error;
  std::optional<nlohmann::ordered_json> value =
      JsonArg<nlohmann::ordered_json>(vm, text, "parseJson", success, &error);
  if (!value.has_value()) return error;
  return Return(vm, *value, "parseJson", success);
}

// Whether a YAML text is a stream of documents: a line that is a document marker.
bool IsStream(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::ConsumeSuffix(&line, "\r");
    if (line == "---" || absl::StartsWith(line, "--- ")) return true;
  }
  return false;
}

// Every document of a YAML text: as Tanka's parseYaml returns them (an array, one per
// document), or as jsonnet's std.parseYaml does (`lone`: a text that is no stream, its one
// document by itself).
JsonnetJsonValue* ParseYamlAs(JsonnetVm* vm, const JsonnetJsonValue* const* argv, int* success,
                              bool lone) {
  JsonnetJsonValue* error = nullptr;
  const char* text = StringArg(vm, argv, 0, "parseYaml", "yaml", success, &error);
  if (text == nullptr) return error;
  // Bounded before a node is built: an alias bomb is refused, never expanded.
  if (absl::Status bounded = CheckYamlBounds(text, "std.native('parseYaml')"); !bounded.ok()) {
    return Fail(vm, success, std::string(bounded.message()));
  }
  nlohmann::ordered_json documents = nlohmann::ordered_json::array();
  try {
    for (const YAML::Node& document : YAML::LoadAll(text)) {
      absl::StatusOr<nlohmann::json> value = YamlNodeToJson(document);
      if (!value.ok()) {
        return Fail(vm, success,
                    absl::StrCat("std.native('parseYaml'): ", value.status().message()));
      }
      // An empty document (two markers in a row, one at the end) is none, as the
      // Kubernetes YAML reader Tanka and go-jsonnet use skips it.
      if (value->is_null()) continue;
      documents.push_back(nlohmann::ordered_json(*value));
    }
  } catch (const YAML::Exception& e) {
    return Fail(vm, success, absl::StrCat("std.native('parseYaml'): not YAML: ", e.what()));
  }
  if (lone && documents.size() == 1 && !IsStream(text)) {
    return Return(vm, documents[0], "parseYaml", success);
  }
  return Return(vm, documents, "parseYaml", success);
}

JsonnetJsonValue* TankaParseYaml(void* ctx, const JsonnetJsonValue* const* argv, int* success) {
  return ParseYamlAs(static_cast<JsonnetVm*>(ctx), argv, success, /*lone=*/false);
}

JsonnetJsonValue* StdParseYaml(void* ctx, const JsonnetJsonValue* const* argv, int* success) {
  return ParseYamlAs(static_cast<JsonnetVm*>(ctx), argv, success, /*lone=*/true);
}

// manifestJsonFromJson(json, indent): the text indented, keys in their order, a newline
// at the end (as Go's json.Indent and Tanka give it).
JsonnetJsonValue* ManifestJsonFromJson(void* ctx, const JsonnetJsonValue* const* argv,
                                       int* success) {
  auto* vm = static_cast<JsonnetVm*>(ctx);
  JsonnetJsonValue* error = nullptr;
  const char* text = StringArg(vm, argv, 0, "manifestJsonFromJson", "json", success, &error);
  if (text == nullptr) return error;
  double indent = 0;
  if (!jsonnet_json_extract_number(vm, argv[1], &indent) || indent < 0 || indent > 64) {
    return Fail(vm, success,
                "std.native('manifestJsonFromJson'): indent must be a number from 0 to 64");
  }
  std::optional<nlohmann::ordered_json> value =
      JsonArg<nlohmann::ordered_json>(vm, text, "manifestJsonFromJson", success, &error);
  if (!value.has_value()) return error;
  *success = 1;
  return jsonnet_json_make_string(vm, (value->dump(static_cast<int>(indent)) + "\n").c_str());
}

// manifestYamlFromJson(json): block YAML, keys sorted (as Go's yaml.Marshal writes a
// map), strings that would read as other types quoted.
JsonnetJsonValue* ManifestYamlFromJson(void* ctx, const JsonnetJsonValue* const* argv,
                                       int* success) {
  auto* vm = static_cast<JsonnetVm*>(ctx);
  JsonnetJsonValue* error = nullptr;
  const char* text = StringArg(vm, argv, 0, "manifestYamlFromJson", "json", success, &error);
  if (text == nullptr) return error;
  std::optional<nlohmann::json> value =
      JsonArg<nlohmann::json>(vm, text, "manifestYamlFromJson", success, &error);
  if (!value.has_value()) return error;
  // JSON is YAML: read back, its strings keep their quotes where they need them.
  const std::string compact = value->dump();
  if (absl::Status bounded = CheckYamlBounds(compact, "std.native('manifestYamlFromJson')");
      !bounded.ok()) {
    return Fail(vm, success, std::string(bounded.message()));
  }
  absl::StatusOr<std::string> yaml = absl::InternalError("unset");
  try {
    yaml = EmitBlockYaml(YAML::Load(compact));
  } catch (const YAML::Exception& e) {
    yaml = absl::InvalidArgumentError(e.what());
  }
  if (!yaml.ok()) {
    return Fail(vm, success,
                absl::StrCat("std.native('manifestYamlFromJson'): ", yaml.status().message()));
  }
  *success = 1;
  return jsonnet_json_make_string(vm, yaml->c_str());
}

JsonnetJsonValue* Sha256Of(void* ctx, const JsonnetJsonValue* const* argv, int* success) {
  auto* vm = static_cast<JsonnetVm*>(ctx);
  JsonnetJsonValue* error = nullptr;
  const char* text = StringArg(vm, argv, 0, "sha256", "str", success, &error);
  if (text == nullptr) return error;
  *success = 1;
  return jsonnet_json_make_string(vm, Sha256Hex(text).c_str());
}

// Go's regexp.QuoteMeta.
JsonnetJsonValue* EscapeStringRegex(void* ctx, const JsonnetJsonValue* const* argv, int* success) {
  auto* vm = static_cast<JsonnetVm*>(ctx);
  JsonnetJsonValue* error = nullptr;
  const char* text = StringArg(vm, argv, 0, "escapeStringRegex", "str", success, &error);
  if (text == nullptr) return error;
  std::string out;
  for (const char* c = text; *c != '\0'; ++c) {
    if (std::string_view("\\.+*?()|[]{}^$").find(*c) != std::string_view::npos) out += '\\';
    out += *c;
  }
  *success = 1;
  return jsonnet_json_make_string(vm, out.c_str());
}

// The expression `pattern` as Go's regexp (RE2) reads it; null with the error set when it
// does not compile.
std::unique_ptr<RE2> Compile(JsonnetVm* vm, const char* function, const char* pattern, int* success,
                             JsonnetJsonValue** error) {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(kMaxRegexMemory);
  auto re = std::make_unique<RE2>(pattern, options);
  if (!re->ok()) {
    *error = Fail(vm, success,
                  absl::StrCat("std.native('", function, "'): regular expression \"", pattern,
                               "\": ", re->error()));
    return nullptr;
  }
  return re;
}

JsonnetJsonValue* RegexMatch(void* ctx, const JsonnetJsonValue* const* argv, int* success) {
  auto* vm = static_cast<JsonnetVm*>(ctx);
  JsonnetJsonValue* error = nullptr;
  const char* pattern = StringArg(vm, argv, 0, "regexMatch", "regex", success, &error);
  if (pattern == nullptr) return error;
  const char* text = StringArg(vm, argv, 1, "regexMatch", "string", success, &error);
  if (text == nullptr) return error;
  std::unique_ptr<RE2> re = Compile(vm, "regexMatch", pattern, success, &error);
  if (re == nullptr) return error;
  *success = 1;
  return jsonnet_json_make_bool(vm, RE2::PartialMatch(text, *re) ? 1 : 0);
}

// Appends `repl` with Go's template syntax expanded from `groups` (Regexp.Expand): $1,
// ${1}, $name, ${name}; a group that did not take part, or a name that is none, is
// empty; $$ is a $, and a $ that starts nothing of these stays as it is.
void Expand(const RE2& re, absl::string_view repl, const std::vector<re2::StringPiece>& groups,
            std::string* out) {
  auto is_name_char = [](char c) { return absl::ascii_isalnum(c) || c == '_'; };
  for (size_t i = 0; i < repl.size(); ++i) {
    if (repl[i] != '$' || i + 1 >= repl.size()) {
      out->push_back(repl[i]);
      continue;
    }
    if (repl[i + 1] == '$') {
      out->push_back('$');
      ++i;
      continue;
    }
    std::string name;
    size_t end = i + 1;
    if (repl[end] == '{') {
      const size_t close = repl.find('}', end + 1);
      bool ok = close != absl::string_view::npos && close > end + 1;
      for (size_t k = end + 1; ok && k < close; ++k) ok = is_name_char(repl[k]);
      if (!ok) {
        out->push_back('$');
        continue;
      }
      name = std::string(repl.substr(end + 1, close - end - 1));
      end = close + 1;
    } else {
      while (end < repl.size() && is_name_char(repl[end])) ++end;
      if (end == i + 1) {
        out->push_back('$');
        continue;
      }
      name = std::string(repl.substr(i + 1, end - i - 1));
    }
    int index = -1;
    if (std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isdigit(c); })) {
      index = name.size() <= 9 ? std::stoi(name) : -1;
    } else {
      auto named = re.NamedCapturingGroups().find(name);
      if (named != re.NamedCapturingGroups().end()) index = named->second;
    }
    if (index >= 0 && index < static_cast<int>(groups.size()) && groups[index].data() != nullptr) {
      out->append(groups[index].data(), groups[index].size());
    }
    i = end - 1;
  }
}

// The length of the UTF-8 character at `at` (1 for a byte that starts none).
size_t CharLength(absl::string_view text, size_t at) {
  const unsigned char c = static_cast<unsigned char>(text[at]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
  return std::min(n, text.size() - at);
}

// Go's Regexp.ReplaceAllString: successive non-overlapping matches; an empty match right
// after the one before is not one.
JsonnetJsonValue* RegexSubst(void* ctx, const JsonnetJsonValue* const* argv, int* success) {
  auto* vm = static_cast<JsonnetVm*>(ctx);
  JsonnetJsonValue* error = nullptr;
  const char* pattern = StringArg(vm, argv, 0, "regexSubst", "regex", success, &error);
  if (pattern == nullptr) return error;
  const char* src_text = StringArg(vm, argv, 1, "regexSubst", "src", success, &error);
  if (src_text == nullptr) return error;
  const char* repl = StringArg(vm, argv, 2, "regexSubst", "repl", success, &error);
  if (repl == nullptr) return error;
  std::unique_ptr<RE2> re = Compile(vm, "regexSubst", pattern, success, &error);
  if (re == nullptr) return error;
  const absl::string_view src(src_text);
  std::vector<re2::StringPiece> groups(re->NumberOfCapturingGroups() + 1);
  std::string out;
  size_t copied = 0, search = 0;
  bool matched_before = false;
  size_t previous_end = 0;
  while (search <= src.size()) {
    if (!re->Match(re2::StringPiece(src.data(), src.size()), search, src.size(), RE2::UNANCHORED,
                   groups.data(), static_cast<int>(groups.size()))) {
      break;
    }
    const size_t start = groups[0].data() - src.data();
    const size_t end = start + groups[0].size();
    if (start == end && matched_before && start == previous_end) {
      if (search >= src.size()) break;
      search += CharLength(src, search);
      continue;
    }
    absl::StrAppend(&out, src.substr(copied, start - copied));
    Expand(*re, repl, groups, &out);
    copied = end;
    matched_before = true;
    previous_end = end;
    if (start == end) {
      if (end >= src.size()) break;
      search = end + CharLength(src, end);
    } else {
      search = end;
    }
  }
  absl::StrAppend(&out, src.substr(copied));
  *success = 1;
  return jsonnet_json_make_string(vm, out.c_str());
}

}  // namespace

std::string CallsTankaNatives(const std::string& path, const std::string& source) {
  if (!absl::EndsWith(path, ".jsonnet") && !absl::EndsWith(path, ".libsonnet")) return source;
  // Tanka's functions that run a tool from inside an evaluation take an object of options,
  // which libjsonnet 0.18 cannot hand a native at all: a function of the same parameters
  // stands in, failing with what to do instead.
  struct Rewrite {
    const char* name;
    std::string code;
  };
  const Rewrite rewrites[] = {
      {"parseYaml", absl::StrCat("std.native('", kTankaParseYaml, "')")},
      {"parseJson", absl::StrCat("std.native('", kTankaParseJson, "')")},
      {"helmTemplate",
       "(function(name, chart, opts={}) error \"std.native('helmTemplate') runs helm from "
       "inside the evaluation, which gitfleet does not do; render the chart as a bundle of "
       "its own (engine helm), or vendor its output into the repository\")"},
      {"kustomizeBuild",
       "(function(path, opts={}) error \"std.native('kustomizeBuild') runs kustomize from "
       "inside the evaluation, which gitfleet does not do; render the kustomization as a "
       "bundle of its own (engine kustomize)\")"},
  };
  std::string out = source;
  for (const Rewrite& rewrite : rewrites) {
    if (!absl::StrContains(out, rewrite.name)) continue;
    // Compiled at each call, not once: this may run in a forked child, where a static's
    // first-use guard could be a lock another thread of the parent held.
    const RE2 call(absl::StrCat(R"(std\s*\.\s*native\s*\(\s*(?:')", rewrite.name, R"('|")",
                                rewrite.name, R"(")\s*\))"));
    RE2::GlobalReplace(&out, call, rewrite.code);
  }
  if (absl::StrContains(out, "parseYaml")) {
    const RE2 std_parse(R"(\bstd\s*\.\s*parseYaml\b)");
    RE2::GlobalReplace(&out, std_parse, absl::StrCat("std.native('", kStdParseYaml, "')"));
  }
  return out;
}

const std::vector<TankaNative>& TankaNatives() {
  static const char* const kJson[] = {"json", nullptr};
  static const char* const kYaml[] = {"yaml", nullptr};
  static const char* const kJsonIndent[] = {"json", "indent", nullptr};
  static const char* const kStr[] = {"str", nullptr};
  static const char* const kMatch[] = {"regex", "string", nullptr};
  static const char* const kSubst[] = {"regex", "src", "repl", nullptr};
  static const auto* const natives = new std::vector<TankaNative>{
      // Called by the names CallsTankaNatives gives: a builtin answers "parseYaml" and
      // "parseJson" itself (the latter unbounded in depth).
      {kTankaParseJson, &ParseJson, kJson},
      {kTankaParseYaml, &TankaParseYaml, kYaml},
      {kStdParseYaml, &StdParseYaml, kYaml},
      {"manifestJsonFromJson", &ManifestJsonFromJson, kJsonIndent},
      {"manifestYamlFromJson", &ManifestYamlFromJson, kJson},
      {"sha256", &Sha256Of, kStr},
      {"escapeStringRegex", &EscapeStringRegex, kStr},
      {"regexMatch", &RegexMatch, kMatch},
      {"regexSubst", &RegexSubst, kSubst},
  };
  return *natives;
}

void RegisterTankaNatives(JsonnetVm* vm) {
  for (const TankaNative& native : TankaNatives()) {
    jsonnet_native_callback(vm, native.name, native.callback, vm, native.params);
  }
}

}  // namespace gitfleet
