#ifndef GITFLEET_AGENT_KUBE_DISCOVERY_H_
#define GITFLEET_AGENT_KUBE_DISCOVERY_H_

// Maps kinds to API resources from the server's discovery documents, the way kubectl's
// REST mapper does: group/version/kind -> resource name and scope.
//
//   RestMapper mapper(client);
//   GF_ASSIGN_OR_RETURN(ApiResource r, mapper.Find("apps", "v1", "Deployment"));
//   std::string path = r.Path("web", "api");  // /apis/apps/v1/namespaces/web/deployments/api
//
// Each group/version's document (/api/v1, /apis/GROUP/VERSION) is fetched when first
// needed and cached. An unknown kind, or a version the server does not serve yet, makes
// it fetch the document again (at most once per `refresh_interval` per group/version),
// so a CRD applied in the same bundle is found once the server serves it. The preferred
// version of a group (for deleting by key alone) comes from /apis/GROUP.
//
// Thread-safe.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/kube/client.h"
#include "common/sync.h"

namespace gitfleet {

struct ApiResource {
  std::string group;
  std::string version;
  std::string kind;
  std::string resource;  // plural, e.g. "deployments"
  bool namespaced = false;

  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
  // The collection (name empty) or object path.
  std::string Path(const std::string& ns, const std::string& name) const;
};

class RestMapper {
 public:
  explicit RestMapper(KubeClient* client, absl::Duration refresh_interval = absl::Seconds(1))
      : client_(client), refresh_interval_(refresh_interval) {}

  // NotFound when the server does not serve that kind in that group/version.
  absl::StatusOr<ApiResource> Find(const std::string& group, const std::string& version,
                                   const std::string& kind);
  // Finds the kind in the group's preferred version.
  absl::StatusOr<ApiResource> FindPreferred(const std::string& group, const std::string& kind);
  // Forgets a group/version so the next lookup reads it again.
  void Invalidate(const std::string& group, const std::string& version);

 private:
  struct GroupVersion {
    // kind -> resource; empty when the server does not serve the group/version.
    std::map<std::string, ApiResource> kinds;
    bool served = false;
    absl::Time fetched = absl::InfinitePast();
  };

  // Fetches the document unless it was fetched within refresh_interval_.
  absl::Status Fetch(const std::string& group, const std::string& version, bool force)
      ABSL_LOCKS_EXCLUDED(mu_);

  KubeClient* const client_;
  const absl::Duration refresh_interval_;
  Mutex mu_;
  std::map<std::string, GroupVersion> versions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> preferred_ ABSL_GUARDED_BY(mu_);
};

// What the API server serves, from its discovery documents (/api, /apis, then each group
// version's): every group version ("v1", "apps/v1") and every kind in one
// ("apps/v1/Deployment"), sorted, as helm's .Capabilities.APIVersions holds them against a
// cluster. At most kMaxClusterApiVersions entries and 500 group versions read; a group
// version whose document cannot be read counts without its kinds. An error when /api or
// /apis cannot be read.
absl::StatusOr<std::vector<std::string>> ReadServedApiVersions(KubeClient& client);
// Only the group versions, as /api and /apis list them (two requests): a cheap look at
// whether what the server serves changed (a CRD of a new group installed).
absl::StatusOr<std::vector<std::string>> ReadServedGroupVersions(KubeClient& client);

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_KUBE_DISCOVERY_H_
