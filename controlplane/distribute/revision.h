#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_REVISION_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_REVISION_H_

// One rendered object set of a bundle, immutable once built and shared by pointer.
//
//   auto rev = Revision::Build("web", commit, std::move(objects), sync, "shop");

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/manifest/object.h"
#include "proto/gitfleet/v1/state.pb.h"

namespace gitfleet {

struct Revision {
  std::string id;
  std::string bundle;
  std::string commit;
  absl::Time committed_time;
  ObjectSet objects;
  v1::SyncOptions sync;
  std::string target_namespace;

  static std::shared_ptr<const Revision> Build(std::string bundle, std::string commit,
                                               absl::Time committed_time, ObjectSet objects,
                                               v1::SyncOptions sync, std::string target_namespace);
  // The store and cache key: revision ids alone repeat across bundles of equal content.
  std::string key() const { return RevisionKey(bundle, id); }
  static std::string RevisionKey(const std::string& bundle, const std::string& id) {
    return bundle + "/" + id;
  }
  v1::RevisionRecord ToRecord() const;
  static absl::StatusOr<std::shared_ptr<const Revision>> FromRecord(
      const v1::RevisionRecord& record);
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_REVISION_H_
