#include "common/manifest/yaml.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"

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

// Counts, from the parser's events, what each document would be with its aliases expanded,
// and how deep it nests; throws Exceeded at the first bound passed.
class BoundsCounter : public YAML::EventHandler {
 public:
  struct Exceeded {
    int line;
    std::string what;
  };

  explicit BoundsCounter(const YamlLimits& limits) : limits_(limits) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > limits_.max_documents) {
      throw Exceeded{mark.line,
                     absl::StrCat("more than ", limits_.max_documents, " documents in one file")};
    }
    open_.clear();
    anchors_.clear();
    document_nodes_ = 0;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Child(mark, nullptr);
    Leaf(mark, anchor);
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    Child(mark, &value);
    Leaf(mark, anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    // An alias to a node that is still open makes the node contain itself: yaml-cpp builds
    // a cycle, and anything that walks it recurses until the stack runs out (found by
    // tests/fuzz:yaml_fuzzer: `a: &a [*a]`).
    for (const Container& open : open_) {
      if (open.anchor == anchor) {
        throw Exceeded{mark.line, "an alias refers to a node that contains it (a cycle); refused"};
      }
    }
    Child(mark, nullptr);
    auto it = anchors_.find(anchor);
    Add(mark, it == anchors_.end() ? 1 : it->second);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Child(mark, nullptr);
    Open(mark, anchor, /*map=*/false);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Child(mark, nullptr);
    Open(mark, anchor, /*map=*/true);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Container {
    YAML::anchor_t anchor;
    uint64_t nodes;  // expanded, itself included
    YAML::Mark mark;
    bool map = false;
    bool key_next = true;             // a map's next child is a key
    std::map<std::string, int> keys;  // a map's scalar keys, with their lines
  };

  // A node begins inside the innermost container: in a map, keys and values alternate; a
  // scalar key (`text`) set twice is refused when asked.
  void Child(const YAML::Mark& mark, const std::string* text) {
    if (open_.empty() || !open_.back().map) return;
    Container& map = open_.back();
    const bool key = map.key_next;
    map.key_next = !map.key_next;
    if (!key || text == nullptr || !limits_.refuse_duplicate_keys || *text == "<<") return;
    auto [it, added] = map.keys.emplace(*text, mark.line);
    if (!added) {
      throw Exceeded{mark.line,
                     absl::StrCat("the mapping key \"", text->substr(0, 128),
                                  "\" is set twice in one mapping (first at line ", it->second + 1,
                                  "): the later value would silently replace the earlier one, "
                                  "and kubectl refuses it too; remove one")};
    }
  }

  void Leaf(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = 1;
    Add(mark, 1);
  }
  void Open(const YAML::Mark& mark, YAML::anchor_t anchor, bool map) {
    if (static_cast<int>(open_.size()) >= limits_.max_depth) {
      throw Exceeded{mark.line, absl::StrCat("nested more than ", limits_.max_depth, " deep")};
    }
    open_.push_back({anchor, 1, mark, map});
    Count(mark, 1);
  }
  void Close() {
    Container done = open_.back();
    open_.pop_back();
    if (done.anchor != YAML::NullAnchor) anchors_[done.anchor] = done.nodes;
    if (!open_.empty()) open_.back().nodes = Saturate(open_.back().nodes, done.nodes);
  }
  // `nodes` more under the innermost open container (an alias brings its anchor's size).
  void Add(const YAML::Mark& mark, uint64_t nodes) {
    if (!open_.empty()) open_.back().nodes = Saturate(open_.back().nodes, nodes);
    Count(mark, nodes);
  }
  void Count(const YAML::Mark& mark, uint64_t nodes) {
    document_nodes_ = Saturate(document_nodes_, nodes);
    if (document_nodes_ > limits_.max_expanded_nodes) {
      throw Exceeded{mark.line,
                     absl::StrCat("more than ", limits_.max_expanded_nodes,
                                  " nodes in one document once its aliases are expanded (an "
                                  "alias bomb?); refused, not expanded")};
    }
  }
  static uint64_t Saturate(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
  }

  const YamlLimits& limits_;
  int documents_ = 0;
  uint64_t document_nodes_ = 0;
  std::vector<Container> open_;
  std::map<YAML::anchor_t, uint64_t> anchors_;  // expanded size of each anchored node
};

}  // namespace

absl::Status CheckYamlBounds(absl::string_view text, absl::string_view file,
                             const YamlLimits& limits) {
  std::istringstream in{std::string(text)};
  BoundsCounter counter(limits);
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(counter)) {
    }
  } catch (const BoundsCounter::Exceeded& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", e.line + 1, ": ", e.what));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  return absl::OkStatus();
}

absl::StatusOr<YAML::Node> LoadBoundedYaml(absl::string_view text, absl::string_view file,
                                           const YamlLimits& limits) {
  if (absl::Status bounded = CheckYamlBounds(text, file, limits); !bounded.ok()) return bounded;
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
}

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

namespace {

bool IsMergeKey(const YAML::Node& key) {
  return key.IsScalar() && key.Scalar() == "<<" &&
         (key.Tag() == "?" || key.Tag() == "tag:yaml.org,2002:merge");
}

absl::Status Resolve(const YAML::Node& node, YAML::Node* out) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: {
      YAML::Node sequence(YAML::NodeType::Sequence);
      sequence.SetTag(node.Tag());
      sequence.SetStyle(node.Style());
      for (const YAML::Node& item : node) {
        YAML::Node resolved;
        if (absl::Status s = Resolve(item, &resolved); !s.ok()) return s;
        sequence.push_back(resolved);
      }
      *out = sequence;
      return absl::OkStatus();
    }
    case YAML::NodeType::Map: {
      YAML::Node map(YAML::NodeType::Map);
      map.SetTag(node.Tag());
      map.SetStyle(node.Style());
      std::vector<YAML::Node> merges;
      std::set<std::string> keys;  // scalar keys present
      for (const auto& entry : node) {
        if (IsMergeKey(entry.first)) {
          merges.push_back(entry.second);
          continue;
        }
        YAML::Node value;
        if (absl::Status s = Resolve(entry.second, &value); !s.ok()) return s;
        if (entry.first.IsScalar()) keys.insert(entry.first.Scalar());
        map.force_insert(entry.first, value);
      }
      // Keys the mapping sets itself win; among merged mappings, the earlier one.
      auto take = [&map, &keys](const YAML::Node& from) {
        for (const auto& entry : from) {
          if (entry.first.IsScalar() && !keys.insert(entry.first.Scalar()).second) continue;
          map.force_insert(entry.first, entry.second);
        }
      };
      for (const YAML::Node& merge : merges) {
        YAML::Node resolved;
        if (absl::Status s = Resolve(merge, &resolved); !s.ok()) return s;
        if (resolved.IsMap()) {
          take(resolved);
        } else if (resolved.IsSequence() &&
                   std::all_of(resolved.begin(), resolved.end(),
                               [](const YAML::Node& item) { return item.IsMap(); })) {
          for (const YAML::Node& item : resolved) take(item);
        } else {
          return absl::InvalidArgumentError(absl::StrCat(
              "line ", merge.Mark().line + 1,
              ": the value of the merge key << is neither a mapping nor a list of mappings"));
        }
      }
      *out = map;
      return absl::OkStatus();
    }
    default:
      *out = node;  // scalars and nulls are not changed: shared
      return absl::OkStatus();
  }
}

bool ContainsMergeKey(const YAML::Node& node) {
  if (node.IsSequence()) {
    for (const YAML::Node& item : node) {
      if (ContainsMergeKey(item)) return true;
    }
  } else if (node.IsMap()) {
    for (const auto& entry : node) {
      if (IsMergeKey(entry.first) || ContainsMergeKey(entry.second)) return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<YAML::Node> ResolveMergeKeys(const YAML::Node& node) {
  // Without a merge the node itself, with the lines its marks give errors.
  if (!ContainsMergeKey(node)) return node;
  YAML::Node out;
  if (absl::Status s = Resolve(node, &out); !s.ok()) return s;
  return out;
}

}  // namespace gitfleet
