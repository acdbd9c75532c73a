#ifndef GITFLEET_COMMON_MODEL_REVISION_H_
#define GITFLEET_COMMON_MODEL_REVISION_H_

// One rendered object set of a bundle, immutable once built and shared by pointer.
//
//   auto rev = Revision::Build("web", commit, std::move(objects), sync, "shop");

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/manifest/object.h"
#include "proto/gitfleet/v1/admin.pb.h"
#include "proto/gitfleet/v1/state.pb.h"

namespace gitfleet {

struct Revision {
  std::string id;
  std::string bundle;
  std::string commit;
  absl::Time committed_time;
  ObjectSet objects;
  v1::SyncOptions sync;
  // For namespaced objects that name none: the bundle's, else `objects.default_namespace()`.
  std::string target_namespace;

  // An empty `target_namespace` takes the one the objects' source declares, and `sync` the
  // fields it leaves to others (ObjectSet::ignore_differences) after its own.
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

// What one render of a bundle means for every cluster: the same revision for all, or
// one per distinct set of cluster values. Immutable in meaning; implementations are
// thread-safe. Readers (the hub, on gRPC threads) never render: they take what is built,
// and the controller's reconcile builds the rest.
class BundleContent {
 public:
  virtual ~BundleContent() = default;
  virtual const std::string& commit() const = 0;
  virtual absl::Time committed_time() const = 0;
  // When the control plane saw the commit it came from; InfinitePast when unknown.
  virtual absl::Time seen_time() const { return absl::InfinitePast(); }
  // The revision every cluster gets, when values make no difference; null otherwise.
  virtual std::shared_ptr<const Revision> Uniform() const = 0;
  // The revision built for `cluster`'s values, or why they do not render; nullopt when it
  // is not built yet (the controller builds it when asked). Never renders.
  virtual std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> Built(
      const v1::ClusterInfo& cluster) const = 0;
  // A revision of this content already built, by id; null when there is none.
  virtual std::shared_ptr<const Revision> Find(const std::string& id) const = 0;
  // Whether some cluster's outcome built so far is NotDeployedHere (below): only then do
  // counts of the clusters it targets look at each cluster's outcome.
  virtual bool LeavesSomeOut() const { return false; }
  // How many revisions (or outcomes) were built so far: what a count over the clusters'
  // outcomes was made at (0 for content that builds none).
  virtual uint64_t builds() const { return 0; }
};

// What a render answers for a cluster the bundle's own files leave out (Fleet's
// `doNotDeploy`): no error of the render's, and no revision. The cluster gets nothing of
// the bundle and keeps whatever of it it holds (a repository never takes a bundle off a
// cluster: removal is an operator's act). Built() gives it as the cluster's outcome;
// IsNotDeployed tells it from a failure. `why` names the file and the rule.
absl::Status NotDeployedHere(absl::string_view why);
bool IsNotDeployed(const absl::Status& status);

// Content whose one revision goes to every cluster.
std::shared_ptr<const BundleContent> SingleRevision(std::shared_ptr<const Revision> revision);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MODEL_REVISION_H_
