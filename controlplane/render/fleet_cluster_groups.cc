#include "controlplane/render/fleet_cluster_groups.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/manifest/yaml.h"
#include "controlplane/render/fleet_selector.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// A Kubernetes object's name: 1-253 lower-case letters, digits, '-' or '.', starting and
// ending with a letter or digit.
bool IsObjectName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  auto alnum = [](char c) { return absl::ascii_islower(c) || absl::ascii_isdigit(c); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '.'; });
}

absl::StatusOr<ClusterGroup> ReadGroup(const YAML::Node& doc, const std::string& where) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", why));
  };
  if (!doc.IsMap()) return bad("is not a mapping");
  const std::string kind = FleetScalar(doc["kind"]);
  const std::string api = FleetScalar(doc["apiVersion"]);
  if (kind != "ClusterGroup" || !absl::StartsWith(api, "fleet.cattle.io/")) {
    return bad(absl::StrCat("is a ", kind.empty() ? "document without a kind" : kind,
                            api.empty() ? "" : absl::StrCat(" (", api, ")"),
                            ", not a Fleet ClusterGroup (apiVersion fleet.cattle.io/v1alpha1, "
                            "kind ClusterGroup)"));
  }
  // A const node's [] throws on a scalar or a list: each is looked into only as a mapping.
  const YAML::Node metadata = doc["metadata"];
  if (!metadata || !metadata.IsMap()) return bad("its metadata is not a mapping");
  ClusterGroup group;
  const YAML::Node name = metadata["name"];
  if (name && name.IsScalar()) group.name = name.Scalar();
  if (!IsObjectName(group.name)) {
    return bad(absl::StrCat("metadata.name \"", FleetScalar(name),
                            "\" is not a Kubernetes name (1-253 lower-case letters, digits, "
                            "'-' or '.')"));
  }
  const std::string named = absl::StrCat("ClusterGroup ", group.name);
  if (const YAML::Node labels = metadata["labels"]; labels && !labels.IsNull()) {
    if (!labels.IsMap()) return bad(named + ": metadata.labels is not a mapping");
    for (const auto& entry : labels) {
      if (!entry.first.IsScalar() || !entry.second.IsScalar()) {
        return bad(named + ": metadata.labels holds a value that is not a string");
      }
      group.labels[entry.first.Scalar()] = entry.second.Scalar();
    }
    if (absl::Status valid = ValidateLabels(group.labels); !valid.ok()) {
      return bad(absl::StrCat(named, ": metadata.labels: ", valid.message()));
    }
  }
  const YAML::Node spec = doc["spec"];
  if (spec && !spec.IsNull() && !spec.IsMap()) return bad(named + ": spec is not a mapping");
  const YAML::Node selector = spec && spec.IsMap() ? spec["selector"] : YAML::Node();
  if (selector && !selector.IsNull()) {
    if (!selector.IsMap()) return bad(named + ": spec.selector is not a mapping");
    absl::StatusOr<std::string> text = ReadFleetSelector(selector, "spec.selector");
    if (!text.ok()) return bad(absl::StrCat(named, ": ", text.status().message()));
    group.selector = *LabelSelector::Parse(*text);  // ReadFleetSelector parsed it
  }
  return group;
}

}  // namespace

absl::StatusOr<std::vector<ClusterGroup>> ParseFleetClusterGroups(absl::string_view text,
                                                                  const std::string& file) {
  if (absl::Status bounded = CheckYamlBounds(text, file); !bounded.ok()) return bounded;
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  std::map<std::string, ClusterGroup> groups;
  int index = 0;
  auto add = [&](const YAML::Node& doc, const std::string& where) -> absl::Status {
    absl::StatusOr<ClusterGroup> group = ReadGroup(doc, where);
    if (!group.ok()) return group.status();
    if (groups.count(group->name) > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": ClusterGroup ", group->name,
          " is defined twice (gitfleet's clusters are one fleet: its groups' names are one "
          "set, whatever their namespaces)"));
    }
    if (groups.size() >= kMaxClusterGroups) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": more than ", kMaxClusterGroups, " cluster groups"));
    }
    std::string name = group->name;
    groups.emplace(std::move(name), *std::move(group));
    return absl::OkStatus();
  };
  try {
    for (const YAML::Node& doc : documents) {
      const std::string where = absl::StrCat(file, ": document ", ++index);
      if (!doc || doc.IsNull()) continue;
      if (doc.IsMap() && FleetScalar(doc["kind"]) == "List") {
        const YAML::Node items = doc["items"];
        if (items && !items.IsNull() && !items.IsSequence()) {
          return absl::InvalidArgumentError(where + ": the List's items is not a list");
        }
        int item = 0;
        for (const YAML::Node& entry : items) {
          if (absl::Status added = add(entry, absl::StrCat(where, ", item ", ++item));
              !added.ok()) {
            return added;
          }
        }
        continue;
      }
      if (absl::Status added = add(doc, where); !added.ok()) return added;
    }
  } catch (const YAML::Exception& e) {  // never expected: the reads above check each node
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", e.msg));
  }
  std::vector<ClusterGroup> out;
  out.reserve(groups.size());
  std::vector<ClusterGroupMembership> all;  // what a cluster in every group carries
  for (auto& [name, group] : groups) {
    all.push_back({group.name, group.labels});
    out.push_back(std::move(group));
  }
  if (const size_t bytes = EncodeGroupMemberships(all).size(); bytes > kMaxClusterGroupBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": the cluster groups' names and labels come to ", bytes,
        " bytes, which a cluster in every group would carry; at most ", kMaxClusterGroupBytes));
  }
  return out;
}

}  // namespace gitfleet
