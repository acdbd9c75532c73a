#include "controlplane/render/fleet_diff.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/manifest/object.h"

namespace gitfleet {
namespace {

constexpr int kMaxPointersPerRule = 16;
constexpr int kMaxRules = 64;
constexpr size_t kMaxNotRead = 10;
constexpr size_t kMaxOperations = 64;

// A scalar's text, bounded and without control characters (it goes into messages).
std::string Shown(const YAML::Node& node) {
  if (!node || !node.IsScalar()) return "";
  std::string text = node.Scalar().substr(0, 256);
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return text;
}

absl::Status FieldError(const std::string& entry, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("diff.", entry, ": ", message));
}

// A string field of an entry: absent or null is "", anything but a scalar an error.
absl::StatusOr<std::string> StringField(const YAML::Node& entry, const char* field,
                                        const std::string& where) {
  const YAML::Node value = entry[field];
  if (!value || value.IsNull()) return std::string();
  if (!value.IsScalar()) return FieldError(where, absl::StrCat(field, " is not a string"));
  return value.Scalar();
}

}  // namespace

absl::StatusOr<FleetComparePatches> ReadFleetComparePatches(const YAML::Node& diff) {
  FleetComparePatches out;
  if (!diff || diff.IsNull()) return out;
  if (!diff.IsMap()) return absl::InvalidArgumentError("diff is not a mapping");
  const YAML::Node patches = diff["comparePatches"];
  if (!patches || patches.IsNull()) return out;
  if (!patches.IsSequence()) {
    return absl::InvalidArgumentError("diff.comparePatches is not a list");
  }
  if (patches.size() > kMaxFleetComparePatches) {
    return absl::InvalidArgumentError(absl::StrCat("diff.comparePatches lists ", patches.size(),
                                                   " entries; at most ", kMaxFleetComparePatches,
                                                   " are read"));
  }
  auto not_read = [&](std::string what) {
    if (out.not_read.size() < kMaxNotRead) {
      out.not_read.push_back(std::move(what));
    } else {
      ++out.not_read_more;
    }
  };
  int index = 0;
  for (const YAML::Node& entry : patches) {
    const std::string where = absl::StrCat("comparePatches[", index++, "]");
    if (!entry.IsMap()) return FieldError(where, "is not a mapping");
    absl::StatusOr<std::string> api_version = StringField(entry, "apiVersion", where);
    if (!api_version.ok()) return api_version.status();
    absl::StatusOr<std::string> kind = StringField(entry, "kind", where);
    if (!kind.ok()) return kind.status();
    absl::StatusOr<std::string> ns = StringField(entry, "namespace", where);
    if (!ns.ok()) return ns.status();
    absl::StatusOr<std::string> name = StringField(entry, "name", where);
    if (!name.ok()) return name.status();
    if (kind->empty()) return FieldError(where, "names no kind");
    // "apps/v1" is the group apps; "v1" the core group, as Kubernetes reads an apiVersion.
    v1::IgnoreDifference rule;
    if (const size_t slash = api_version->find('/'); slash != std::string::npos) {
      rule.set_group(api_version->substr(0, slash));
      if (rule.group().empty() || api_version->find('/', slash + 1) != std::string::npos) {
        return FieldError(where, absl::StrCat("apiVersion ", Shown(entry["apiVersion"]),
                                              " is not GROUP/VERSION or VERSION"));
      }
    }
    rule.set_kind(*kind);
    rule.set_namespace_(*ns);
    rule.set_name(*name);
    const std::string object = absl::StrCat(
        where, " (", api_version->empty() ? "" : *api_version + " ", *kind,
        name->empty() ? "" : absl::StrCat(" ", ns->empty() ? "" : *ns + "/", *name), ")");
    std::vector<std::string> pointers;
    auto add_pointer = [&](const std::string& pointer) {
      if (std::find(pointers.begin(), pointers.end(), pointer) == pointers.end()) {
        pointers.push_back(pointer);
      }
    };
    if (const YAML::Node listed = entry["jsonPointers"]; listed && !listed.IsNull()) {
      if (!listed.IsSequence()) return FieldError(where, "jsonPointers is not a list");
      for (const YAML::Node& pointer : listed) {
        if (!pointer.IsScalar()) return FieldError(where, "a jsonPointers entry is not a string");
        add_pointer(pointer.Scalar());
      }
    }
    if (const YAML::Node operations = entry["operations"]; operations && !operations.IsNull()) {
      if (!operations.IsSequence()) return FieldError(where, "operations is not a list");
      if (operations.size() > kMaxOperations) {
        return FieldError(where, absl::StrCat("lists ", operations.size(), " operations; at most ",
                                              kMaxOperations));
      }
      for (const YAML::Node& operation : operations) {
        if (!operation.IsMap()) return FieldError(where, "an operation is not a mapping");
        absl::StatusOr<std::string> op = StringField(operation, "op", where);
        if (!op.ok()) return op.status();
        absl::StatusOr<std::string> path = StringField(operation, "path", where);
        if (!path.ok()) return path.status();
        const std::string shown_op = Shown(operation["op"]);
        if (*op == "ignore") {
          not_read(absl::StrCat(object,
                                ": op ignore (Fleet then does not count the object missing; "
                                "gitfleet creates a missing object it applies)"));
          continue;
        }
        if (*op != "remove" && *op != "replace" && *op != "add") {
          not_read(absl::StrCat(object, ": op ", shown_op.empty() ? "(none)" : shown_op));
          continue;
        }
        if (name->empty()) {
          // Fleet applies an operation to the object its entry names: without a name, to none.
          not_read(absl::StrCat(object, ": op ", *op, " ", Shown(operation["path"]),
                                " on no named object, which Fleet applies to none"));
          continue;
        }
        if (*op == "add" && absl::EndsWith(*path, "/-")) {
          not_read(
              absl::StrCat(object, ": op add ", Shown(operation["path"]), " (appends to a list)"));
          continue;
        }
        add_pointer(*path);
      }
    }
    for (size_t first = 0; first < pointers.size(); first += kMaxPointersPerRule) {
      v1::IgnoreDifference chunk = rule;
      for (size_t i = first; i < pointers.size() && i < first + kMaxPointersPerRule; ++i) {
        chunk.add_json_pointers(pointers[i]);
      }
      v1::SyncOptions one;
      *one.add_ignore_differences() = chunk;
      if (absl::Status valid = CheckIgnoreDifferences(one); !valid.ok()) {
        return FieldError(object,
                          std::string(absl::StripPrefix(
                              valid.message(),
                              absl::StrCat("ignored difference ",
                                           DescribeIgnoreDifference(chunk).substr(0, 256), ": "))));
      }
      out.rules.push_back(std::move(chunk));
    }
    if (out.rules.size() > static_cast<size_t>(kMaxRules)) {
      return absl::InvalidArgumentError(
          absl::StrCat("diff.comparePatches leaves more than ", kMaxRules,
                       " groups of fields to others (16 pointers a group); at most ", kMaxRules));
    }
  }
  return out;
}

std::string IgnoreDifferenceFlags(const std::vector<v1::IgnoreDifference>& rules) {
  std::vector<std::string> flags;
  flags.reserve(rules.size());
  for (const v1::IgnoreDifference& rule : rules) {
    flags.push_back(absl::StrCat("--ignore-difference=", DescribeIgnoreDifference(rule)));
  }
  return absl::StrJoin(flags, " ");
}

}  // namespace gitfleet
