#ifndef GITFLEET_CONTROLPLANE_STORE_REVISIONS_H_
#define GITFLEET_CONTROLPLANE_STORE_REVISIONS_H_

// The store's table of rendered revisions: the controller writes it, and both it and the
// hub read revisions back after a restart (the stable revision of a rollout, the revisions
// agents say they hold).
//
//   absl::StatusOr<std::shared_ptr<const Revision>> rev =
//       ReadStoredRevision(store, Revision::RevisionKey(bundle, id));

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/revision.h"
#include "controlplane/store/store.h"

namespace gitfleet {

inline constexpr char kRevisionsTable[] = "revisions";

// The revision stored under `key` (Revision::RevisionKey). NotFound when none is, or
// when what is stored does not parse or is another revision; the error of a record that
// parses but does not make a revision.
absl::StatusOr<std::shared_ptr<const Revision>> ReadStoredRevision(Store* store,
                                                                   const std::string& key);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_STORE_REVISIONS_H_
