#ifndef GITFLEET_COMMON_MODEL_CLUSTER_GROUP_H_
#define GITFLEET_COMMON_MODEL_CLUSTER_GROUP_H_

// Groups of clusters, as Rancher Fleet's ClusterGroup: a name, labels of the group's own,
// and a selector over clusters' labels. A fleet.yaml's targetCustomizations select
// clusters by group (clusterGroup: NAME) or by the groups' labels (clusterGroupSelector).
//
//   std::vector<ClusterGroupMembership> in = GroupsMatching(groups, cluster_labels);
//   std::string value = EncodeGroupMemberships(in);  // a cluster's render value
//   absl::StatusOr<std::vector<ClusterGroupMembership>> back = DecodeGroupMemberships(value);

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/label_selector.h"
#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet {

struct ClusterGroup {
  std::string name;
  LabelMap labels;
  // nullopt: no cluster (Fleet reads a ClusterGroup without a selector so); an empty
  // selector matches every cluster.
  std::optional<LabelSelector> selector;
};

// A group a cluster is in: its name and labels.
struct ClusterGroupMembership {
  std::string name;
  LabelMap labels;
  bool operator==(const ClusterGroupMembership& other) const {
    return name == other.name && labels == other.labels;
  }
};

// A cluster's groups as its record carries them (v1::ClusterInfo.groups), and back.
std::vector<ClusterGroupMembership> GroupsOf(const v1::ClusterInfo& cluster);
void SetGroups(const std::vector<ClusterGroupMembership>& groups, v1::ClusterInfo* cluster);

// The groups of `groups` whose selector matches `labels`, in `groups`' order.
std::vector<ClusterGroupMembership> GroupsMatching(const std::vector<ClusterGroup>& groups,
                                                   const LabelMap& labels);

// Memberships as one text, a line per group in the order given ("name\tk=v,k2=v2"): label
// keys and values hold none of tab, line feed, ',' or '='. Decode reads it back;
// InvalidArgument for text Encode did not write.
std::string EncodeGroupMemberships(const std::vector<ClusterGroupMembership>& groups);
absl::StatusOr<std::vector<ClusterGroupMembership>> DecodeGroupMemberships(absl::string_view text);

// A cluster's groups carried beside its labels in one LabelMap (where a rollout's cut
// takes clusters as name and labels): an entry per group under a key no label can have
// (it starts with a tab), its value the group's labels. Selectors never look at them.
void AddGroupEntries(const std::vector<ClusterGroupMembership>& groups, LabelMap* labels);
// The groups AddGroupEntries put in `labels`, in name order.
std::vector<ClusterGroupMembership> GroupEntries(const LabelMap& labels);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MODEL_CLUSTER_GROUP_H_
