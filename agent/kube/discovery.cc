#include "agent/kube/discovery.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/agent_protocol.h"
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

namespace {

// A JSON document the server answered 200 with; an error naming `path` otherwise.
absl::StatusOr<nlohmann::json> ReadDocument(KubeClient& client, const std::string& path) {
  absl::StatusOr<KubeResponse> response = client.Do("GET", path);
  if (!response.ok()) return response.status();
  if (response->code != 200) return response->ToStatus();
  nlohmann::json document = nlohmann::json::parse(response->body, nullptr, false);
  if (!document.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a discovery document"));
  }
  return document;
}

bool Printable(const std::string& text) {
  return !text.empty() && text.size() <= static_cast<size_t>(kMaxApiVersionBytes) &&
         std::all_of(text.begin(), text.end(),
                     [](char c) { return c > ' ' && c <= '~' && c != ','; });
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ReadServedGroupVersions(KubeClient& client) {
  std::vector<std::string> group_versions;
  absl::StatusOr<nlohmann::json> core = ReadDocument(client, "/api");
  if (!core.ok()) return core.status();
  if (core->contains("versions") && (*core)["versions"].is_array()) {
    for (const nlohmann::json& version : (*core)["versions"]) {
      if (version.is_string()) group_versions.push_back(version.get<std::string>());
    }
  }
  absl::StatusOr<nlohmann::json> groups = ReadDocument(client, "/apis");
  if (!groups.ok()) return groups.status();
  if (groups->contains("groups") && (*groups)["groups"].is_array()) {
    for (const nlohmann::json& group : (*groups)["groups"]) {
      if (!group.is_object() || !group.contains("versions") || !group["versions"].is_array()) {
        continue;
      }
      for (const nlohmann::json& version : group["versions"]) {
        if (version.is_object() && version.contains("groupVersion") &&
            version["groupVersion"].is_string()) {
          group_versions.push_back(version["groupVersion"].get<std::string>());
        }
      }
    }
  }
  return group_versions;
}

absl::StatusOr<std::vector<std::string>> ReadServedApiVersions(KubeClient& client) {
  constexpr size_t kMaxGroupVersions = 500;
  absl::StatusOr<std::vector<std::string>> group_versions = ReadServedGroupVersions(client);
  if (!group_versions.ok()) return group_versions.status();
  std::set<std::string> out;
  size_t read = 0;
  for (const std::string& group_version : *group_versions) {
    if (!Printable(group_version) || out.size() >= static_cast<size_t>(kMaxClusterApiVersions)) {
      continue;
    }
    out.insert(group_version);
    if (read++ >= kMaxGroupVersions) continue;
    const bool core_group = group_version.find('/') == std::string::npos;
    absl::StatusOr<nlohmann::json> resources =
        ReadDocument(client, absl::StrCat(core_group ? "/api/" : "/apis/", group_version));
    if (!resources.ok() || !resources->contains("resources") ||
        !(*resources)["resources"].is_array()) {
      continue;  // an aggregated API that is down: its group version still counts
    }
    for (const nlohmann::json& resource : (*resources)["resources"]) {
      if (!resource.is_object() || !resource.contains("kind") || !resource["kind"].is_string() ||
          !resource.contains("name") || !resource["name"].is_string() ||
          resource["name"].get<std::string>().find('/') != std::string::npos) {
        continue;  // a subresource (deployments/scale) names its parent's kind or another
      }
      std::string entry = absl::StrCat(group_version, "/", resource["kind"].get<std::string>());
      if (Printable(entry) && out.size() < static_cast<size_t>(kMaxClusterApiVersions)) {
        out.insert(std::move(entry));
      }
    }
  }
  return std::vector<std::string>(out.begin(), out.end());
}

}  // namespace gitfleet
