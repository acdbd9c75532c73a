#include "controlplane/distribute/status_bounds.h"

#include "common/agent_protocol.h"

namespace gitfleet {

void BoundStatus(v1::StatusUpdate* status) {
  if (status->message().size() > kMaxStatusMessageBytes) {
    status->mutable_message()->resize(kMaxStatusMessageBytes);
    status->mutable_message()->append("...");
  }
  while (status->left_unmanaged_size() > kMaxLeftUnmanaged) {
    status->mutable_left_unmanaged()->RemoveLast();
  }
  while (status->unhealthy_resources_size() > kMaxUnhealthyResources) {
    status->mutable_unhealthy_resources()->RemoveLast();
  }
  for (v1::ResourceHealth& resource : *status->mutable_unhealthy_resources()) {
    if (resource.message().size() > kMaxStatusMessageBytes) {
      resource.mutable_message()->resize(kMaxStatusMessageBytes);
    }
  }
}

}  // namespace gitfleet
