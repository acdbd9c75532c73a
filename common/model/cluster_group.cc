#include "common/model/cluster_group.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace gitfleet {

std::vector<ClusterGroupMembership> GroupsOf(const v1::ClusterInfo& cluster) {
  std::vector<ClusterGroupMembership> out;
  for (const v1::ClusterGroupMembership& group : cluster.groups()) {
    out.push_back({group.name(), LabelMap(group.labels().begin(), group.labels().end())});
  }
  return out;
}

void SetGroups(const std::vector<ClusterGroupMembership>& groups, v1::ClusterInfo* cluster) {
  cluster->clear_groups();
  for (const ClusterGroupMembership& group : groups) {
    v1::ClusterGroupMembership& out = *cluster->add_groups();
    out.set_name(group.name);
    out.mutable_labels()->insert(group.labels.begin(), group.labels.end());
  }
}

std::vector<ClusterGroupMembership> GroupsMatching(const std::vector<ClusterGroup>& groups,
                                                   const LabelMap& labels) {
  std::vector<ClusterGroupMembership> out;
  for (const ClusterGroup& group : groups) {
    if (group.selector.has_value() && group.selector->Matches(labels)) {
      out.push_back({group.name, group.labels});
    }
  }
  return out;
}

std::string EncodeGroupMemberships(const std::vector<ClusterGroupMembership>& groups) {
  std::string out;
  for (const ClusterGroupMembership& group : groups) {
    absl::StrAppend(&out, group.name, "\t",
                    absl::StrJoin(group.labels, ",", absl::PairFormatter("=")), "\n");
  }
  return out;
}

absl::StatusOr<std::vector<ClusterGroupMembership>> DecodeGroupMemberships(absl::string_view text) {
  std::vector<ClusterGroupMembership> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(line, '\t');
    if (parts.first.empty() || line.find('\t') == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("not a cluster group: \"", line, "\""));
    }
    ClusterGroupMembership group{std::string(parts.first), {}};
    for (absl::string_view label : absl::StrSplit(parts.second, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
      if (kv.first.empty() || label.find('=') == absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("cluster group ", parts.first, ": not a label: \"", label, "\""));
      }
      group.labels.insert(std::move(kv));
    }
    out.push_back(std::move(group));
  }
  return out;
}

namespace {
constexpr absl::string_view kGroupEntryPrefix = "\tgroup\t";
}  // namespace

void AddGroupEntries(const std::vector<ClusterGroupMembership>& groups, LabelMap* labels) {
  for (const ClusterGroupMembership& group : groups) {
    (*labels)[absl::StrCat(kGroupEntryPrefix, group.name)] =
        absl::StrJoin(group.labels, ",", absl::PairFormatter("="));
  }
}

std::vector<ClusterGroupMembership> GroupEntries(const LabelMap& labels) {
  std::vector<ClusterGroupMembership> out;
  for (auto it = labels.lower_bound(std::string(kGroupEntryPrefix));
       it != labels.end() && absl::StartsWith(it->first, kGroupEntryPrefix); ++it) {
    ClusterGroupMembership group{it->first.substr(kGroupEntryPrefix.size()), {}};
    for (absl::string_view label : absl::StrSplit(it->second, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
      group.labels.insert(std::move(kv));
    }
    out.push_back(std::move(group));
  }
  return out;
}

}  // namespace gitfleet
