#include "controlplane/store/revisions.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "proto/gitfleet/v1/state.pb.h"

namespace gitfleet {

absl::StatusOr<std::shared_ptr<const Revision>> ReadStoredRevision(Store* store,
                                                                   const std::string& key) {
  absl::StatusOr<std::string> data = store->Get(kRevisionsTable, key);
  v1::RevisionRecord record;
  if (!data.ok() || !record.ParseFromString(*data)) {
    return absl::NotFoundError(absl::StrCat("revision ", key, " is not stored, or unreadable"));
  }
  absl::StatusOr<std::shared_ptr<const Revision>> revision = Revision::FromRecord(record);
  if (revision.ok() && (*revision)->key() != key) {
    return absl::NotFoundError(
        absl::StrCat("the revision stored as ", key, " is ", (*revision)->key()));
  }
  return revision;
}

}  // namespace gitfleet
