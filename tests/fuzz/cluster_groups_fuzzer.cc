// Fleet's ClusterGroup manifests (--cluster-groups, fleet_cluster_groups.h) and the text a
// cluster's groups travel in to a render (cluster_group.h). The file is an operator's, but
// it is YAML a tool printed or a person edited: any text must give groups or an error,
// never a throw or a crash, and what is read must keep its bounds and travel unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/model/cluster_group.h"
#include "controlplane/render/fleet_cluster_groups.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<gitfleet::ClusterGroup>> groups =
      gitfleet::ParseFleetClusterGroups(text, "--cluster-groups");
  // The text a render reads, whatever it is, decodes or is refused.
  (void)gitfleet::DecodeGroupMemberships(text);
  if (!groups.ok()) return 0;
  if (groups->size() > gitfleet::kMaxClusterGroups) abort();
  std::vector<gitfleet::ClusterGroupMembership> all;
  for (const gitfleet::ClusterGroup& group : *groups) {
    if (group.name.empty() || group.name.size() > 253) abort();
    all.push_back({group.name, group.labels});
  }
  // Every group a cluster with no labels, and one with each group's labels, is in; and the
  // memberships read back as they were written.
  (void)gitfleet::GroupsMatching(*groups, {});
  for (const gitfleet::ClusterGroup& group : *groups) {
    (void)gitfleet::GroupsMatching(*groups, group.labels);
  }
  absl::StatusOr<std::vector<gitfleet::ClusterGroupMembership>> back =
      gitfleet::DecodeGroupMemberships(gitfleet::EncodeGroupMemberships(all));
  if (!back.ok() || !(*back == all)) abort();
  gitfleet::LabelMap carried;
  gitfleet::AddGroupEntries(all, &carried);
  if (!(gitfleet::GroupEntries(carried) == all)) abort();
  return 0;
}
