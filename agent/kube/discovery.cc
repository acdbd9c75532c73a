#include "agent/kube/discovery.h"

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "nlohmann/json.hpp"

namespace gitfleet {
namespace {

std::string GroupVersionPath(const std::string& group, const std::string& version) {
  return group.empty() ? absl::StrCat("/api/", version)
                       : absl::StrCat("/apis/", group, "/", version);
}

std::string Display(const std::string& group, const std::string& version) {
  return group.empty() ? version : absl::StrCat(group, "/", version);
}

}  // namespace

std::string ApiResource::Path(const std::string& ns, const std::string& name) const {
  std::string path =
      group.empty() ? absl::StrCat("/api/", version) : absl::StrCat("/apis/", group, "/", version);
  if (namespaced) absl::StrAppend(&path, "/namespaces/", ns);
  absl::StrAppend(&path, "/", resource);
  if (!name.empty()) absl::StrAppend(&path, "/", name);
  return path;
}

absl::Status RestMapper::Fetch(const std::string& group, const std::string& version, bool force) {
  const std::string gv = Display(group, version);
  {
    MutexLock lock(&mu_);
    auto it = versions_.find(gv);
    if (it != versions_.end() &&
        (!force || RealClock().Now() - it->second.fetched < refresh_interval_)) {
      return absl::OkStatus();
    }
  }
  absl::StatusOr<KubeResponse> response = client_->Do("GET", GroupVersionPath(group, version));
  if (!response.ok()) return response.status();
  GroupVersion fetched;
  fetched.fetched = RealClock().Now();
  if (response->code == 404) {
    fetched.served = false;
  } else if (response->code != 200) {
    return absl::Status(response->ToStatus().code(),
                        absl::StrCat("discovery of ", gv, ": ", response->ToStatus().message()));
  } else {
    nlohmann::json doc = nlohmann::json::parse(response->body, nullptr, false);
    if (!doc.is_object() || !doc.contains("resources") || !doc["resources"].is_array()) {
      return absl::InternalError(absl::StrCat("discovery of ", gv, ": not an APIResourceList"));
    }
    fetched.served = true;
    try {
      for (const nlohmann::json& r : doc["resources"]) {
        if (!r.is_object()) continue;
        std::string name = r.value("name", "");
        if (name.empty() || name.find('/') != std::string::npos) continue;  // subresources
        ApiResource resource;
        resource.group = group;
        resource.version = version;
        resource.kind = r.value("kind", "");
        resource.resource = name;
        resource.namespaced = r.value("namespaced", false);
        fetched.kinds.emplace(resource.kind, resource);
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::InternalError(absl::StrCat("discovery of ", gv, ": ", e.what()));
    }
  }
  MutexLock lock(&mu_);
  versions_[gv] = std::move(fetched);
  return absl::OkStatus();
}

absl::StatusOr<ApiResource> RestMapper::Find(const std::string& group, const std::string& version,
                                             const std::string& kind) {
  const std::string gv = Display(group, version);
  for (bool force : {false, true}) {
    if (absl::Status s = Fetch(group, version, force); !s.ok()) return s;
    MutexLock lock(&mu_);
    const GroupVersion& entry = versions_[gv];
    auto it = entry.kinds.find(kind);
    if (it != entry.kinds.end()) return it->second;
  }
  MutexLock lock(&mu_);
  if (!versions_[gv].served) {
    return absl::NotFoundError(
        absl::StrCat("the server does not serve apiVersion ", gv, " (is its CRD installed?)"));
  }
  return absl::NotFoundError(absl::StrCat("the server has no kind ", kind, " in apiVersion ", gv,
                                          " (is its CRD installed?)"));
}

absl::StatusOr<ApiResource> RestMapper::FindPreferred(const std::string& group,
                                                      const std::string& kind) {
  std::string version;
  if (group.empty()) {
    version = "v1";
  } else {
    {
      MutexLock lock(&mu_);
      auto it = preferred_.find(group);
      if (it != preferred_.end()) version = it->second;
    }
    if (version.empty()) {
      absl::StatusOr<KubeResponse> response = client_->Do("GET", absl::StrCat("/apis/", group));
      if (!response.ok()) return response.status();
      if (response->code == 404) {
        return absl::NotFoundError(absl::StrCat("the server does not serve group ", group));
      }
      if (response->code != 200) return response->ToStatus();
      nlohmann::json doc = nlohmann::json::parse(response->body, nullptr, false);
      if (doc.is_object() && doc.contains("preferredVersion") &&
          doc["preferredVersion"].is_object()) {
        version = doc["preferredVersion"].value("version", "");
      }
      if (version.empty()) {
        return absl::InternalError(
            absl::StrCat("discovery of group ", group, ": no preferredVersion"));
      }
      MutexLock lock(&mu_);
      preferred_[group] = version;
    }
  }
  return Find(group, version, kind);
}

void RestMapper::Invalidate(const std::string& group, const std::string& version) {
  MutexLock lock(&mu_);
  versions_.erase(Display(group, version));
}

}  // namespace gitfleet
