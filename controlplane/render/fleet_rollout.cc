#include "controlplane/render/fleet_rollout.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/model/label_selector.h"
#include "controlplane/render/fleet_selector.h"

namespace gitfleet {
namespace {

// Partition names are for display: this long at most.
constexpr size_t kMaxPartitionName = 63;

// A Kubernetes IntOrString as gitfleet's "N" or "P%" (a percentage past 100 is 100), or
// InvalidArgument naming `field`. Fleet reads "5" as 5, as Kubernetes' IntOrString does.
absl::StatusOr<std::string> CountOrPercent(const YAML::Node& node, const std::string& field) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is ", why,
                                                   ": want a count of clusters (2) or a whole "
                                                   "percentage of them (10%)"));
  };
  if (!node.IsScalar()) return bad("not a scalar");
  const std::string text(absl::StripAsciiWhitespace(node.Scalar()));
  absl::string_view number = text;
  const bool percent = absl::ConsumeSuffix(&number, "%");
  int value = 0;
  if (number.empty() || number.size() > 9 ||
      !std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(number, &value)) {
    return bad(absl::StrCat("\"", FleetScalar(node).substr(0, 32), "\""));
  }
  if (percent) return absl::StrCat(std::min(value, 100), "%");
  return absl::StrCat(value);
}

bool Set(const YAML::Node& node) { return node && !node.IsNull(); }

constexpr char kUnsetNote[] =
    "rolloutStrategy.maxUnavailable is unset: gitfleet waits for every cluster of a partition "
    "to be Healthy before the next (Fleet's default, 100%, waits for none; write "
    "maxUnavailable: 100% for that)";

}  // namespace

absl::StatusOr<FleetRollout> ReadFleetRollout(const YAML::Node& strategy) {
  FleetRollout out;
  if (!Set(strategy)) return out;
  if (!strategy.IsMap()) {
    return absl::InvalidArgumentError("rolloutStrategy is not a mapping");
  }
  out.declared = true;
  if (const YAML::Node node = strategy["maxUnavailable"]; Set(node)) {
    absl::StatusOr<std::string> read = CountOrPercent(node, "rolloutStrategy.maxUnavailable");
    if (!read.ok()) return read.status();
    out.max_unavailable = *std::move(read);
  }
  if (const YAML::Node node = strategy["maxUnavailablePartitions"]; Set(node)) {
    absl::StatusOr<std::string> read =
        CountOrPercent(node, "rolloutStrategy.maxUnavailablePartitions");
    if (!read.ok()) return read.status();
    if (*read == "0%") {
      out.notes.push_back(
          "rolloutStrategy.maxUnavailablePartitions is 0%: gitfleet goes on to a partition only "
          "once the one before is ready, as with 0 (Fleet reads 0% as 1)");
    }
    if (*read != "0" && *read != "0%") out.max_unavailable_partitions = *std::move(read);
  }
  const YAML::Node partitions = strategy["partitions"];
  if (Set(partitions) && !partitions.IsSequence()) {
    return absl::InvalidArgumentError("rolloutStrategy.partitions is not a list");
  }
  if (Set(partitions) && partitions.size() > kMaxFleetPartitions) {
    return absl::InvalidArgumentError(absl::StrCat("rolloutStrategy.partitions has ",
                                                   partitions.size(), " entries; at most ",
                                                   kMaxFleetPartitions, " are read"));
  }
  if (Set(partitions) && partitions.size() > 0) {
    int index = 0;
    for (const YAML::Node& entry : partitions) {
      FleetRollout::Partition partition;
      std::string field = absl::StrCat("rolloutStrategy.partitions[", index++, "]");
      if (!entry.IsMap()) return absl::InvalidArgumentError(field + " is not a mapping");
      partition.name = FleetScalar(entry["name"]).substr(0, kMaxPartitionName);
      if (!partition.name.empty()) absl::StrAppend(&field, " (", partition.name, ")");
      bool criteria = false;
      if (const YAML::Node group = entry["clusterGroup"]; Set(group)) {
        if (!group.IsScalar() || group.Scalar().empty() || group.Scalar().size() > 253) {
          return absl::InvalidArgumentError(field + ": its clusterGroup is not a group's name");
        }
        criteria = true;
        partition.group = group.Scalar();
      }
      for (const char* name : {"clusterGroupSelector", "clusterSelector"}) {
        const YAML::Node selector = entry[name];
        if (!Set(selector)) continue;
        absl::StatusOr<std::string> text = ReadFleetSelector(selector, absl::StrCat("its ", name));
        if (!text.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(field, ": ", text.status().message()));
        }
        criteria = true;
        if (std::string(name) == "clusterSelector") {
          partition.selector = *std::move(text);
        } else {
          partition.has_group_selector = true;
          partition.group_selector = *std::move(text);
        }
      }
      if (const YAML::Node name = entry["clusterName"]; Set(name)) {
        if (!name.IsScalar() || name.Scalar().empty() || name.Scalar().size() > 253) {
          return absl::InvalidArgumentError(field + ": its clusterName is not a cluster's name");
        }
        criteria = true;
        partition.cluster_name = name.Scalar();
      }
      if (const YAML::Node node = entry["maxUnavailable"]; Set(node)) {
        absl::StatusOr<std::string> read = CountOrPercent(node, field + ".maxUnavailable");
        if (!read.ok()) return read.status();
        partition.max_unavailable = *std::move(read);
      }
      if (!criteria) {
        // Fleet's matcher holds no cluster for a partition that sets nothing to match.
        out.notes.push_back(absl::StrCat(field,
                                         " sets no clusterSelector, clusterName, clusterGroup or "
                                         "clusterGroupSelector, so it holds no cluster (as in "
                                         "Fleet)"));
        continue;
      }
      out.partitions.push_back(std::move(partition));
    }
    if (out.max_unavailable.empty() &&
        std::any_of(out.partitions.begin(), out.partitions.end(),
                    [](const FleetRollout::Partition& p) { return p.max_unavailable.empty(); })) {
      out.notes.push_back(kUnsetNote);
    }
    if (Set(strategy["autoPartitionSize"])) {
      out.notes.push_back(
          "rolloutStrategy.autoPartitionSize is not read where partitions are given (as in "
          "Fleet): the clusters they leave are one last partition");
    }
    return out;
  }
  out.auto_partition_size = kFleetAutoPartitionSize;
  if (const YAML::Node node = strategy["autoPartitionSize"]; Set(node)) {
    absl::StatusOr<std::string> read = CountOrPercent(node, "rolloutStrategy.autoPartitionSize");
    if (!read.ok()) return read.status();
    // Fleet: 0 turns the cut off (one partition); a percentage that makes none makes 1.
    out.auto_partition_size = *read == "0" ? "" : *read == "0%" ? "1" : *std::move(read);
  }
  if (out.max_unavailable.empty()) out.notes.push_back(kUnsetNote);
  return out;
}

}  // namespace gitfleet
