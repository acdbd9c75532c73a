#include "agent/kube/applier.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "agent/kube/convert.h"
#include "agent/kube/health.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/manifest/object.h"

namespace gitfleet {

std::pair<std::string, std::string> SplitApiVersion(const std::string& api_version) {
  size_t slash = api_version.find('/');
  if (slash == std::string::npos) return {"", api_version};
  return {api_version.substr(0, slash), api_version.substr(slash + 1)};
}

namespace {

using nlohmann::json;

std::string CacheKey(const std::string& bundle, const v1::ObjectKey& key) {
  return absl::StrCat(bundle, std::string(1, '\0'), KeyString(key));
}

v1::ResourceHealth HealthOf(const v1::ObjectKey& key, const json& live) {
  v1::ResourceHealth health;
  if (live.is_null()) {
    health.set_health(v1::HEALTH_STATE_MISSING);
    health.set_message("not found in the cluster");
  } else {
    health = EvaluateHealth(live);
  }
  *health.mutable_key() = key;
  return health;
}

// A hook's run: Jobs by their Complete or Failed condition, Pods by their phase (a
// running Pod has not finished, ready or not); anything else is done once it exists.
HookStatus HookStatusOf(const json& live) {
  const std::string kind = live.value("kind", "");
  const json empty = json::object();
  const json& status =
      live.contains("status") && live["status"].is_object() ? live["status"] : empty;
  if (kind == "Job") {
    if (status.contains("conditions") && status["conditions"].is_array()) {
      for (const json& c : status["conditions"]) {
        if (!c.is_object() || c.value("status", "") != "True") continue;
        if (c.value("type", "") == "Complete") return {HookStatus::kSucceeded, "complete"};
        if (c.value("type", "") == "Failed") {
          return {HookStatus::kFailed,
                  absl::StrCat("failed: ", c.value("reason", ""),
                               c.value("message", "").empty() ? "" : ": ", c.value("message", ""))};
        }
      }
    }
    return {HookStatus::kRunning, absl::StrCat(status.value("active", 0), " active, ",
                                               status.value("failed", 0), " failed")};
  }
  if (kind == "Pod") {
    const std::string phase = status.value("phase", "");
    if (phase == "Succeeded") return {HookStatus::kSucceeded, "succeeded"};
    if (phase == "Failed") {
      return {HookStatus::kFailed, absl::StrCat("failed: ", status.value("reason", ""), " ",
                                                status.value("message", ""))};
    }
    return {HookStatus::kRunning, absl::StrCat("phase ", phase.empty() ? "Pending" : phase)};
  }
  return {HookStatus::kSucceeded, "created"};
}

// The namespace a 404 says is missing ("namespaces \"x\" not found": details.kind
// namespaces), or "".
std::string MissingNamespace(const KubeResponse& response) {
  const json status = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!status.is_object() || !status.contains("details") || !status["details"].is_object()) {
    return "";
  }
  const json& details = status["details"];
  if (details.value("kind", "") != "namespaces") return "";
  return details.value("name", "");
}

absl::Status WithKey(const v1::ObjectKey& key, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(KeyDisplay(key), ": ", status.message()));
}

}  // namespace

absl::StatusOr<ApiResource> KubernetesApplier::WaitForCrd(const std::string& group,
                                                          const std::string& version,
                                                          const std::string& kind,
                                                          const std::string& crd) {
  const absl::Time deadline = RealClock().Now() + options_.crd_wait;
  absl::Status last;
  // Bounded by crd_wait.
  while (true) {
    absl::StatusOr<json> live =
        Get(absl::StrCat("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/", crd));
    if (live.ok() && !live->is_null() &&
        EvaluateHealth(*live).health() == v1::HEALTH_STATE_HEALTHY) {
      mapper_->Invalidate(group, version);
      absl::StatusOr<ApiResource> resource = mapper_->Find(group, version, kind);
      if (resource.ok()) return resource;
      last = resource.status();
    } else if (!live.ok()) {
      last = live.status();
    } else {
      last = absl::UnavailableError(
          absl::StrCat("CustomResourceDefinition ", crd, " is not Established yet"));
    }
    if (RealClock().Now() >= deadline) break;
    absl::SleepFor(options_.poll_interval);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("waited ", absl::FormatDuration(options_.crd_wait),
                   " for CustomResourceDefinition ", crd, ": ", last.message()));
}

namespace {

std::string MetadataField(const nlohmann::json& live, const char* map, const char* key);

// The labels and annotations a bundle asks its created namespace to carry (istio-injection,
// Pod Security levels), as metadata: {"labels": {...}, "annotations": {...}}.
json AskedNamespaceMetadata(const ApplyContext& context) {
  json metadata = json::object();
  for (const auto& [field, entries] : {std::pair<const char*, const std::vector<std::string>*>{
                                           "labels", &context.namespace_labels},
                                       {"annotations", &context.namespace_annotations}}) {
    for (const std::string& entry : *entries) {
      const size_t equals = entry.find('=');
      if (equals == std::string::npos || entry.substr(0, equals) == kCreatedForBundleAnnotation) {
        continue;
      }
      metadata[field][entry.substr(0, equals)] = entry.substr(equals + 1);
    }
  }
  return metadata;
}

}  // namespace

absl::Status KubernetesApplier::UpdateCreatedNamespace(const std::string& ns,
                                                       const ApplyContext& context) {
  const json asked = AskedNamespaceMetadata(context);
  const std::string wanted = absl::StrCat(context.bundle, "\n", asked.dump());
  {
    MutexLock lock(&mu_);
    auto it = namespace_metadata_.find(ns);
    if (it != namespace_metadata_.end() && it->second == wanted) return absl::OkStatus();
  }
  const std::string path = absl::StrCat("/api/v1/namespaces/", ns);
  absl::StatusOr<json> live = Get(path);
  if (!live.ok()) return live.status();
  if (live->is_null()) return absl::OkStatus();  // created when an apply finds it missing
  // Only a namespace created for this bundle: one someone else made is theirs.
  json patch = json::object();
  if (MetadataField(*live, "annotations", kCreatedForBundleAnnotation) == context.bundle) {
    for (const char* field : {"labels", "annotations"}) {
      if (!asked.contains(field)) continue;
      for (const auto& [key, value] : asked[field].items()) {
        if (MetadataField(*live, field, key.c_str()) != value.get<std::string>()) {
          patch["metadata"][field][key] = value;
        }
      }
    }
  }
  if (!patch.empty()) {
    // Added or changed, never removed: a label dropped from the repository stays until an
    // operator removes it (a Pod Security level, an injection switch).
    absl::StatusOr<KubeResponse> response =
        client_->Do("PATCH", absl::StrCat(path, "?fieldManager=", options_.field_manager),
                    patch.dump(), "application/merge-patch+json");
    if (!response.ok()) return response.status();
    if (response->code != 200 && response->code != 404) {
      const absl::Status refused = response->ToStatus();
      return absl::Status(refused.code(),
                          absl::StrCat("cannot label namespace ", ns, " for bundle ",
                                       context.bundle, ": ", refused.message()));
    }
    GF_LOG(INFO) << "namespace " << ns << " (created for bundle " << context.bundle
                 << ") now carries " << patch["metadata"].dump();
  }
  MutexLock lock(&mu_);
  if (namespace_metadata_.size() >= 4096) namespace_metadata_.clear();
  namespace_metadata_[ns] = wanted;
  return absl::OkStatus();
}

absl::Status KubernetesApplier::CreateNamespace(const std::string& ns,
                                                const ApplyContext& context) {
  const std::string& bundle = context.bundle;
  json body = {
      {"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", AskedNamespaceMetadata(context)}};
  body["metadata"]["name"] = ns;
  body["metadata"]["annotations"][kCreatedForBundleAnnotation] = bundle;
  absl::StatusOr<KubeResponse> response =
      client_->Do("POST", absl::StrCat("/api/v1/namespaces?fieldManager=", options_.field_manager),
                  body.dump(), "application/json");
  if (!response.ok()) return response.status();
  if (response->code == 201 || response->code == 409) {  // 409: made meanwhile by another
    if (response->code == 201) {
      GF_LOG(INFO) << "created namespace " << ns << " for bundle " << bundle
                   << " (--create-namespace)";
    }
    return absl::OkStatus();
  }
  const absl::Status refused = response->ToStatus();
  return absl::Status(refused.code(),
                      absl::StrCat("cannot create namespace ", ns, " for bundle ", bundle,
                                   " (--create-namespace): ", refused.message()));
}

void AppliedCrds::Put(const std::string& group_kind, const std::string& crd) {
  MutexLock lock(&mu_);
  if (crds_.size() >= kMaxCrds && crds_.count(group_kind) == 0) crds_.clear();  // bounded
  crds_[group_kind] = crd;
}

std::string AppliedCrds::Find(const std::string& group_kind) const {
  MutexLock lock(&mu_);
  auto it = crds_.find(group_kind);
  return it == crds_.end() ? std::string() : it->second;
}

absl::StatusOr<KubernetesApplier::Target> KubernetesApplier::Prepare(
    const v1::ManifestObject& object, const ApplyContext& context, bool wait_for_crd) {
  auto [group, version] = SplitApiVersion(object.api_version());
  const std::string& kind = object.key().kind();
  absl::StatusOr<ApiResource> resource = mapper_->Find(group, version, kind);
  if (!resource.ok() && resource.status().code() == absl::StatusCode::kNotFound && wait_for_crd) {
    const std::string crd = crds_->Find(absl::StrCat(group, "/", kind));
    if (!crd.empty()) resource = WaitForCrd(group, version, kind, crd);
  }
  if (!resource.ok()) return resource.status();
  absl::StatusOr<json> body = YamlToJson(object.yaml());
  if (!body.ok()) return body.status();
  if (!body->is_object()) return absl::InvalidArgumentError("the object is not a mapping");
  Target target;
  target.resource = *std::move(resource);
  json& metadata = (*body)["metadata"];
  if (target.resource.namespaced) {
    target.ns = object.key().namespace_();
    if (target.ns.empty()) target.ns = context.target_namespace;
    if (target.ns.empty()) target.ns = options_.default_namespace;
    metadata["namespace"] = target.ns;
  } else {
    metadata.erase("namespace");
  }
  metadata["labels"][kBundleLabel] = context.bundle;
  target.body = *std::move(body);
  return target;
}

absl::StatusOr<json> KubernetesApplier::Get(const std::string& path) {
  absl::StatusOr<KubeResponse> response = client_->Do("GET", path);
  if (!response.ok()) return response.status();
  if (response->code == 404) return json(nullptr);
  if (response->code != 200) return response->ToStatus();
  json live = json::parse(response->body, nullptr, false);
  if (live.is_discarded()) return absl::InternalError(absl::StrCat("GET ", path, ": not JSON"));
  return live;
}

void KubernetesApplier::Remember(const std::string& bundle, const v1::ObjectKey& key,
                                 v1::ResourceHealth health) {
  MutexLock lock(&mu_);
  health_[CacheKey(bundle, key)] = std::move(health);
}

namespace {

// A string field of the live object's metadata map (labels, annotations); "" if absent.
std::string MetadataField(const nlohmann::json& live, const char* map, const char* key) {
  if (!live.is_object() || !live.contains("metadata") || !live["metadata"].is_object()) return "";
  const nlohmann::json& metadata = live["metadata"];
  if (!metadata.contains(map) || !metadata[map].is_object()) return "";
  auto it = metadata[map].find(key);
  return it != metadata[map].end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The object's uid, or "".
std::string UidOf(const nlohmann::json& live) {
  if (!live.is_object() || !live.contains("metadata") || !live["metadata"].is_object()) return "";
  const nlohmann::json& metadata = live["metadata"];
  auto it = metadata.find("uid");
  return it != metadata.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Whether the server refused a change to a field that cannot change once the object exists
// (a Deployment's selector, a Job's template, a StatefulSet's volume claims).
bool IsImmutableChange(const KubeResponse& response) {
  return absl::StrContains(response.body, "field is immutable") ||
         (absl::StrContains(response.body, "Forbidden: updates to") &&
          absl::StrContains(response.body, "are forbidden"));
}

// How the manifest `body` asks to be applied (ApplyPolicyOf).
ApplyPolicy PolicyOf(const nlohmann::json& body) {
  return ApplyPolicyOf([&](const char* name) { return MetadataField(body, "annotations", name); });
}

// The health of an object its manifest says never to apply: not gitfleet's to judge.
v1::ResourceHealth NotApplied(const v1::ObjectKey& key, const json& body) {
  v1::ResourceHealth health;
  *health.mutable_key() = key;
  health.set_health(v1::HEALTH_STATE_HEALTHY);
  health.set_message(absl::StrCat(
      "not applied: its manifest says ",
      IgnoredBy([&](const char* name) { return MetadataField(body, "annotations", name); })));
  return health;
}

// Reconciling the live object is turned off (ReconcileDisabledBy): "name=disabled", or "".
std::string LiveReconcileDisabled(const json& live) {
  return ReconcileDisabledBy(
      [&](const char* name) { return MetadataField(live, "annotations", name); });
}

// The health of a live object whose reconciling an operator turned off: its own, said so.
v1::ResourceHealth NotReconciled(const v1::ObjectKey& key, const json& live,
                                 const std::string& disabled) {
  v1::ResourceHealth health = HealthOf(key, live);
  health.set_message(absl::StrCat("not reconciled: the live object is annotated ", disabled,
                                  health.message().empty() ? "" : "; ", health.message()));
  return health;
}

// The annotation by which the live object asks never to be deleted (KeptByAnnotation).
std::string KeptBy(const nlohmann::json& live) {
  return KeptByAnnotation(
      [&](const char* name) { return MetadataField(live, "annotations", name); });
}

// Why Delete leaves the live object of `bundle` in place; "" when it deletes it.
std::string DeleteLeaves(const nlohmann::json& live, const std::string& bundle) {
  const std::string owner = MetadataField(live, "labels", kBundleLabel);
  if (owner != bundle) {
    return absl::StrCat("it is not labelled ", kBundleLabel, "=", bundle,
                        owner.empty() ? "" : absl::StrCat(" (it belongs to ", owner, ")"));
  }
  if (std::string kept = KeptBy(live); !kept.empty()) {
    return absl::StrCat("it is annotated ", kept);
  }
  return "";
}

// The fields `context` leaves to others in `object`: `body` takes the live object's values
// there (an apply keeps them, and they are no difference); a field the live object lacks
// keeps the manifest's value (a new object gets it). Whether any rule applied.
bool RespectIgnored(const v1::ObjectKey& key, const std::string& ns, const ApplyContext& context,
                    const nlohmann::json& live, nlohmann::json* body) {
  if (context.ignore_differences.empty() || !live.is_object()) return false;
  const std::vector<std::string> pointers = IgnoredPointers(context.ignore_differences, key, ns);
  for (const std::string& text : pointers) {
    try {
      const nlohmann::json::json_pointer pointer(text);
      if (live.contains(pointer)) (*body)[pointer] = live.at(pointer);
    } catch (const nlohmann::json::exception&) {
      // A pointer through a value of another type (an index into a map): nothing there.
    }
  }
  return !pointers.empty();
}

bool HasIgnored(const v1::ObjectKey& key, const std::string& ns, const ApplyContext& context) {
  return !context.ignore_differences.empty() &&
         !IgnoredPointers(context.ignore_differences, key, ns).empty();
}

const json& ManagedFields(const json& object) {
  static const json* const kNone = new json(json::array());
  if (!object.is_object()) return *kNone;
  auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return *kNone;
  auto managed = metadata->find("managedFields");
  return managed != metadata->end() && managed->is_array() ? *managed : *kNone;
}

// Whether managedFields entry `entry` is `manager`'s on the object itself (not a
// subresource such as status or scale).
bool OnObjectBy(const json& entry, const std::string& manager) {
  return entry.is_object() && entry.value("manager", "") == manager &&
         !entry.contains("subresource");
}

}  // namespace

std::vector<std::string> DefaultSharedFieldManagers() {
  return {"kubectl*",          "before-first-apply",   "helm",
          "argocd-controller", "kustomize-controller", "helm-controller"};
}

json FieldsNotIn(const json& theirs, const json& mine) {
  if (!theirs.is_object()) return theirs;
  json out = json::object();
  for (auto it = theirs.begin(); it != theirs.end(); ++it) {
    auto match = mine.is_object() ? mine.find(it.key()) : mine.end();
    if (!mine.is_object() || match == mine.end()) {
      out[it.key()] = it.value();
    } else if (!it.value().is_object() || it.value().empty()) {
      // They own this field (or this map or list item itself, "."): so does `mine` when it
      // owns it whole or owns the node itself; not when it owns only fields below it.
      if (!match->is_object() || (!match->empty() && !match->contains("."))) {
        out[it.key()] = it.value();
      }
    } else if (match->is_object() && match->empty()) {
      // `mine` owns the whole value: what they own in it is shared.
    } else if (json rest = FieldsNotIn(it.value(), *match); !rest.empty()) {
      out[it.key()] = std::move(rest);
    }
  }
  return out;
}

bool KubernetesApplier::Shared(const std::string& manager) const {
  for (const std::string& name : options_.shared_field_managers) {
    if (absl::EndsWith(name, "*") ? absl::StartsWith(manager, name.substr(0, name.size() - 1))
                                  : manager == name) {
      return true;
    }
  }
  return false;
}

std::optional<json> KubernetesApplier::SharedFieldsPatch(const json& object,
                                                         std::set<std::string>* from) const {
  const json& managed = ManagedFields(object);
  const json* mine = nullptr;
  for (const json& entry : managed) {
    if (OnObjectBy(entry, options_.field_manager) && entry.value("operation", "") == "Apply") {
      mine = &entry;
    }
  }
  if (mine == nullptr || !mine->contains("fieldsV1")) return std::nullopt;
  json entries = json::array();
  for (const json& entry : managed) {
    const std::string manager = entry.is_object() ? entry.value("manager", "") : "";
    if (&entry == mine || !OnObjectBy(entry, manager) || manager == options_.field_manager ||
        !Shared(manager) || !entry.contains("fieldsV1")) {
      entries.push_back(entry);
      continue;
    }
    json rest = FieldsNotIn(entry["fieldsV1"], (*mine)["fieldsV1"]);
    if (rest == entry["fieldsV1"]) {
      entries.push_back(entry);
      continue;
    }
    from->insert(manager);
    if (rest.empty()) continue;  // an entry that owns nothing is dropped
    json kept = entry;
    kept["fieldsV1"] = std::move(rest);
    entries.push_back(std::move(kept));
  }
  if (from->empty()) return std::nullopt;
  // On the object as read: managedFields another writer changed meanwhile are not undone.
  const std::string version = object["metadata"].value("resourceVersion", "");
  return json::array(
      {{{"op", "test"}, {"path", "/metadata/resourceVersion"}, {"value", version}},
       {{"op", "replace"}, {"path", "/metadata/managedFields"}, {"value", entries}}});
}

absl::Status KubernetesApplier::TakeSharedFields(const std::string& path, const json& applied) {
  if (options_.shared_field_managers.empty()) return absl::OkStatus();
  json object = applied;
  // A controller often writes the object (its status) just after an apply: read it again
  // and retry, a few times.
  constexpr int kAttempts = 3;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::set<std::string> from;
    const std::optional<json> patch = SharedFieldsPatch(object, &from);
    if (!patch.has_value()) return absl::OkStatus();
    absl::StatusOr<KubeResponse> response =
        client_->Do("PATCH", absl::StrCat(path, "?fieldManager=", options_.field_manager),
                    patch->dump(), "application/json-patch+json");
    if (!response.ok()) return response.status();
    if (response->code == 404) return absl::OkStatus();  // gone
    if (response->code == 200) {
      GF_LOG(INFO) << path << ": the fields applied from Git are no longer also owned by "
                   << absl::StrJoin(from, ", ") << " (dropping one from Git now removes it)";
      return absl::OkStatus();
    }
    if (response->code != 409 && response->code != 422) return response->ToStatus();
    absl::StatusOr<json> live = Get(path);  // changed meanwhile: the test failed
    if (!live.ok()) return live.status();
    if (live->is_null()) return absl::OkStatus();
    object = *std::move(live);
  }
  return absl::AbortedError(
      absl::StrCat("the object changed under each of ", kAttempts, " attempts"));
}

namespace {

// An apiVersion's group ("" for the core group).
std::string GroupOf(const std::string& api_version) {
  const size_t slash = api_version.find('/');
  return slash == std::string::npos ? "" : api_version.substr(0, slash);
}

constexpr size_t kMaxAutoscalerNamespaces = 4096;
constexpr int kAutoscalerPages = 10;

}  // namespace

std::string KubernetesApplier::AutoscaledBy(const v1::ObjectKey& key, const std::string& ns,
                                            const json& body) {
  if (ns.empty() || !body.is_object() || !body.contains("spec") || !body["spec"].is_object() ||
      !body["spec"].contains("replicas")) {
    return "";
  }
  const std::string target = absl::StrCat(key.group(), "/", key.kind(), "/", key.name());
  const absl::Time now = absl::Now();
  {
    MutexLock lock(&mu_);
    auto it = autoscalers_.find(ns);
    if (it != autoscalers_.end() && now - it->second.read < options_.autoscaler_cache) {
      auto found = it->second.targets.find(target);
      return found == it->second.targets.end() ? "" : found->second;
    }
  }
  // Read without the lock: at worst two applies read the same namespace at once.
  Autoscalers read{now, {}};
  for (const char* version : {"v2", "v1"}) {
    const std::string path = absl::StrCat("/apis/autoscaling/", version, "/namespaces/", ns,
                                          "/horizontalpodautoscalers");
    std::string next;
    bool served = true;
    for (int page = 0; page < kAutoscalerPages; ++page) {
      absl::StatusOr<KubeResponse> response = client_->Do(
          "GET",
          absl::StrCat(path, "?limit=500", next.empty() ? "" : "&continue=", UrlEncode(next)));
      if (!response.ok() || (response->code != 200 && response->code != 404)) {
        // Unreadable (RBAC, the server): nothing is left to an autoscaler this time. Said
        // once per namespace: the agent's role should let it list them.
        bool first_time;
        {
          MutexLock lock(&mu_);
          first_time = autoscalers_unread_.size() < 1000 && autoscalers_unread_.insert(ns).second;
        }
        if (first_time) {
          GF_LOG(WARNING) << "cannot list HorizontalPodAutoscalers in " << ns
                          << " (the replicas of workloads they scale are applied as the "
                             "manifest says): "
                          << (response.ok() ? response->ToStatus() : response.status());
        }
        served = true;
        break;
      }
      if (response->code == 404) {
        served = false;
        break;
      }
      const json list = json::parse(response->body, nullptr, false);
      if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) break;
      for (const json& item : list["items"]) {
        if (!item.is_object() || !item.contains("spec") || !item["spec"].is_object()) continue;
        const json& ref = item["spec"].value("scaleTargetRef", json::object());
        if (!ref.is_object()) continue;
        const std::string scaled = absl::StrCat(GroupOf(ref.value("apiVersion", "")), "/",
                                                ref.value("kind", ""), "/", ref.value("name", ""));
        const json& metadata = item.value("metadata", json::object());
        read.targets.emplace(scaled, absl::StrCat(ns, "/",
                                                  metadata.is_object() ? metadata.value("name", "")
                                                                       : std::string()));
      }
      next = list.value("metadata", json::object()).value("continue", "");
      if (next.empty()) break;
    }
    if (served) break;  // autoscaling/v1 only where v2 is not served
  }
  MutexLock lock(&mu_);
  if (autoscalers_.size() >= kMaxAutoscalerNamespaces) autoscalers_.clear();
  auto found = read.targets.find(target);
  std::string scaler = found == read.targets.end() ? "" : found->second;
  autoscalers_[ns] = std::move(read);
  return scaler;
}

std::string KubernetesApplier::NoteLiveReconcile(const std::string& path, const json& live) {
  std::string disabled = LiveReconcileDisabled(live);
  size_t count;
  bool changed = false;
  {
    MutexLock lock(&mu_);
    if (disabled.empty()) {
      changed = live_disabled_.erase(path) > 0;
    } else if (live_disabled_.size() < kMaxLiveDisabled && live_disabled_.insert(path).second) {
      changed = true;
      GF_LOG(INFO) << path << ": reconciling is turned off on the live object (" << disabled
                   << "): left as it is until the annotation goes";
    }
    count = live_disabled_.size();
  }
  if (changed && options_.on_not_reconciled) options_.on_not_reconciled(count);
  return disabled;
}

void KubernetesApplier::LeaveToOthers(const v1::ObjectKey& key, const std::string& ns,
                                      const ApplyContext& context, const std::string& scaler,
                                      const json& live, json* body) {
  RespectIgnored(key, ns, context, live, body);
  if (scaler.empty() || !live.is_object()) return;
  static const json::json_pointer kReplicas("/spec/replicas");
  // A new object gets the manifest's count; then the autoscaler's stands.
  if (!live.contains(kReplicas)) return;
  if ((*body)[kReplicas] != live.at(kReplicas)) {
    MutexLock lock(&mu_);
    const std::string said = absl::StrCat(context.bundle, "/", KeyDisplay(key), "/", scaler);
    if (autoscaled_said_.size() < 10000 && autoscaled_said_.insert(said).second) {
      GF_LOG(INFO) << KeyDisplay(key) << ": replicas left to HorizontalPodAutoscaler " << scaler
                   << " (" << live.at(kReplicas).dump() << ", the manifest says "
                   << (*body)[kReplicas].dump() << ")";
    }
  }
  (*body)[kReplicas] = live.at(kReplicas);
}

absl::StatusOr<ApplyResult> KubernetesApplier::Apply(const v1::ManifestObject& object,
                                                     const ApplyContext& context, bool first) {
  absl::StatusOr<Target> target = Prepare(object, context, /*wait_for_crd=*/true);
  if (!target.ok()) return target.status();
  const std::string object_path = target->resource.Path(target->ns, object.key().name());
  std::string taken_from;
  const bool ignores = HasIgnored(object.key(), target->ns, context);
  const ApplyPolicy policy = PolicyOf(target->body);
  if (policy == ApplyPolicy::kIgnore) {
    Remember(context.bundle, object.key(), NotApplied(object.key(), target->body));
    return ApplyResult();
  }
  const std::string scaler = AutoscaledBy(object.key(), target->ns, target->body);
  bool seen_disabled;
  {
    MutexLock lock(&mu_);
    // Read first when it turned reconciling off, or may have since the last look.
    seen_disabled = live_disabled_.count(object_path) > 0 || read_first_.erase(object_path) > 0;
  }
  absl::StatusOr<json> live = json(nullptr);
  if (first || ignores || !scaler.empty() || seen_disabled ||
      policy == ApplyPolicy::kIfNotPresent) {
    live = Get(object_path);
    if (!live.ok()) return live.status();
    // Reconciling turned off on the live object: left as it is, until the annotation goes.
    if (std::string disabled = NoteLiveReconcile(object_path, *live); !disabled.empty()) {
      Remember(context.bundle, object.key(), NotReconciled(object.key(), *live, disabled));
      return ApplyResult();
    }
    // Fields left to others are applied with their live values: never set back.
    LeaveToOthers(object.key(), target->ns, context, scaler, *live, &target->body);
  }
  if (policy == ApplyPolicy::kIfNotPresent && !live->is_null()) {
    // Created once, then left to whoever fills it in, as its manifest asks.
    Remember(context.bundle, object.key(), HealthOf(object.key(), *live));
    return ApplyResult();
  }
  if (first) {
    // Never take over another bundle's object (the force below would), unless that bundle
    // let go of it: the object moves from one bundle to the other, never deleted between.
    const std::string owner = MetadataField(*live, "labels", kBundleLabel);
    if (!live->is_null() && !owner.empty() && owner != context.bundle) {
      v1::ObjectKey placed = object.key();
      if (target->resource.namespaced) placed.set_namespace_(target->ns);
      if (!context.let_go || !context.let_go(owner, placed)) {
        return absl::FailedPreconditionError(
            absl::StrCat("bundle ", owner, " already manages this object (label ", kBundleLabel,
                         "=", owner, "); it is not taken over"));
      }
      taken_from = owner;
    }
  }
  if (context.create_namespace && target->resource.namespaced &&
      target->ns == context.target_namespace &&
      (!context.namespace_labels.empty() || !context.namespace_annotations.empty())) {
    // What fleet.yaml asks of the namespace created for the bundle, when it changed.
    if (absl::Status updated = UpdateCreatedNamespace(target->ns, context); !updated.ok()) {
      return updated;
    }
  }
  const std::string path =
      absl::StrCat(object_path, "?fieldManager=", options_.field_manager, "&force=true");
  const std::string body = target->body.dump();
  absl::StatusOr<KubeResponse> response =
      client_->Do("PATCH", path, body, "application/apply-patch+yaml");
  if (!response.ok()) return response.status();
  if (response->code == 404 && target->resource.namespaced && !context.target_namespace.empty() &&
      target->ns == context.target_namespace && MissingNamespace(*response) == target->ns) {
    // The bundle's namespace is not on this cluster.
    if (!context.create_namespace) {
      return absl::NotFoundError(absl::StrCat(
          response->ToStatus().message(), " (the bundle's namespace ", target->ns,
          " is not on this cluster: add a Namespace object to the bundle, or create it where "
          "missing with `gitfleetctl bundle set ",
          context.bundle, " --create-namespace`)"));
    }
    if (absl::Status created = CreateNamespace(target->ns, context); !created.ok()) {
      return created;
    }
    response = client_->Do("PATCH", path, body, "application/apply-patch+yaml");
    if (!response.ok()) return response.status();
  }
  if (response->code == 422 && IsImmutableChange(*response)) {
    // A field that cannot change: deleted and created again when the manifest asks for it.
    const std::string asked = RecreateAskedBy(
        [&](const char* name) { return MetadataField(target->body, "annotations", name); });
    if (asked.empty()) {
      const absl::Status refused = response->ToStatus();
      return absl::Status(
          refused.code(),
          absl::StrCat(refused.message(),
                       " (to have gitfleet delete it and create it again, annotate it "
                       "gitfleet.io/force: enabled, as Flux's kustomize.toolkit.fluxcd.io/force)"));
    }
    if (absl::Status deleted = DeleteToRecreate(object.key(), *target, object_path, context);
        !deleted.ok()) {
      return absl::Status(deleted.code(),
                          absl::StrCat(response->ToStatus().message(), "; ", asked,
                                       " asks to recreate it, and it is not: ", deleted.message()));
    }
    GF_LOG(INFO) << KeyDisplay(object.key()) << ": deleted to be created again (" << asked
                 << "): " << response->ToStatus().message();
    response = client_->Do("PATCH", path, body, "application/apply-patch+yaml");
    if (!response.ok()) return response.status();
  }
  if (response->code != 200 && response->code != 201) return response->ToStatus();
  ApplyResult result;
  result.created = response->code == 201;
  result.taken_from = std::move(taken_from);
  json applied = json::parse(response->body, nullptr, false);
  Remember(context.bundle, object.key(),
           HealthOf(object.key(), applied.is_discarded() ? json::object() : applied));
  if (options_.on_written && applied.is_object() && applied.contains("metadata") &&
      applied["metadata"].is_object()) {
    ApiResource across = target->resource;
    across.namespaced = false;
    options_.on_written(across.Path("", ""), absl::StrCat(target->ns, "/", object.key().name()),
                        applied["metadata"].value("resourceVersion", ""));
  }
  if (absl::Status taken = TakeSharedFields(object_path, applied); !taken.ok()) {
    GF_LOG(WARNING) << KeyDisplay(object.key())
                    << ": cannot take the fields it shares with an earlier tool (tried again at "
                       "the next apply): "
                    << taken;
  }
  if (object.key().group() == "apiextensions.k8s.io" &&
      object.key().kind() == "CustomResourceDefinition") {
    try {
      const json& spec = target->body.at("spec");
      std::string group = spec.value("group", "");
      std::string kind = spec.at("names").value("kind", "");
      crds_->Put(absl::StrCat(group, "/", kind), object.key().name());
    } catch (const json::exception&) {
      // The server accepted it, so this cannot be; without it a CR just does not wait.
    }
  }
  return result;
}

absl::Status KubernetesApplier::DeleteToRecreate(const v1::ObjectKey& key, const Target& target,
                                                 const std::string& path,
                                                 const ApplyContext& context) {
  Live live{target.resource, target.ns, path, nullptr};
  absl::StatusOr<json> object = Get(path);
  if (!object.ok()) return object.status();
  if (object->is_null()) return absl::OkStatus();
  live.object = *std::move(object);
  if (MetadataField(live.object, "labels", kBundleLabel) != context.bundle) {
    return absl::FailedPreconditionError(
        absl::StrCat("the live object is not labelled ", kBundleLabel, "=", context.bundle));
  }
  if (std::string kept = KeptBy(live.object); !kept.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("it is annotated ", kept));
  }
  absl::StatusOr<std::string> destroys = DeletionDestroys(key, live, context.bundle);
  if (!destroys.ok()) return destroys.status();
  if (!destroys->empty()) return absl::FailedPreconditionError(*std::move(destroys));
  const std::string uid = UidOf(live.object);
  json options = {
      {"apiVersion", "v1"}, {"kind", "DeleteOptions"}, {"propagationPolicy", "Background"}};
  if (!uid.empty()) options["preconditions"] = {{"uid", uid}};
  absl::StatusOr<KubeResponse> response = client_->Do("DELETE", path, options.dump());
  if (!response.ok()) return response.status();
  if (response->code != 200 && response->code != 202 && response->code != 404 &&
      response->code != 409) {
    return response->ToStatus();
  }
  // Gone before it is created again: finalizers may hold it a while (bounded).
  for (int i = 0; i < 150; ++i) {
    absl::StatusOr<json> still = Get(path);
    if (!still.ok()) return still.status();
    if (still->is_null() || UidOf(*still) != uid) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError("it is still being deleted after 30s (finalizers?)");
}

absl::StatusOr<KubernetesApplier::Live> KubernetesApplier::ReadForRemoval(
    const v1::ObjectKey& key, const ApplyContext& context) {
  {
    MutexLock lock(&mu_);
    health_.erase(CacheKey(context.bundle, key));
  }
  return ReadLive(key, context);
}

absl::StatusOr<KubernetesApplier::Live> KubernetesApplier::ReadLive(const v1::ObjectKey& key,
                                                                    const ApplyContext& context) {
  Live out;
  absl::StatusOr<ApiResource> resource = mapper_->FindPreferred(key.group(), key.kind());
  if (!resource.ok()) {
    // With its CRD gone, the kind's objects are gone too.
    if (resource.status().code() == absl::StatusCode::kNotFound) return out;
    return resource.status();
  }
  out.resource = *std::move(resource);
  out.ns = key.namespace_();
  if (out.ns.empty()) out.ns = context.target_namespace;
  if (out.ns.empty()) out.ns = options_.default_namespace;
  out.path = out.resource.Path(out.ns, key.name());
  absl::StatusOr<json> live = Get(out.path);
  if (!live.ok()) return live.status();
  out.object = *std::move(live);
  return out;
}

absl::StatusOr<bool> KubernetesApplier::LeftBehind(const v1::ObjectKey& key,
                                                   const ApplyContext& context) {
  absl::StatusOr<Live> live = ReadForRemoval(key, context);
  if (!live.ok()) return live.status();
  // Gone, or taken over (relabelled, or applied by another bundle): not ours to list.
  return !live->object.is_null() &&
         MetadataField(live->object, "labels", kBundleLabel) == context.bundle;
}

absl::StatusOr<bool> KubernetesApplier::Terminating(const v1::ObjectKey& key,
                                                    const ApplyContext& context) {
  absl::StatusOr<Live> live = ReadForRemoval(key, context);
  if (!live.ok()) return live.status();
  // Gone; or there without a deletionTimestamp: the delete was declined or the object was
  // made again, and nothing will end by waiting.
  return !live->object.is_null() && live->object.contains("metadata") &&
         live->object["metadata"].is_object() &&
         live->object["metadata"].contains("deletionTimestamp") &&
         !live->object["metadata"]["deletionTimestamp"].is_null();
}

absl::StatusOr<std::string> KubernetesApplier::ClaimDestroys(const json& claim) {
  const json spec = claim.value("spec", json::object());
  const std::string volume =
      spec.is_object() && spec.contains("volumeName") && spec["volumeName"].is_string()
          ? spec["volumeName"].get<std::string>()
          : std::string();
  if (volume.empty()) return std::string();  // never bound: no data of its own
  const std::string how =
      absl::StrCat("; it is pruned at once when it is annotated ", kPruneAnnotation,
                   "=true, or once the volume's reclaim policy is Retain");
  absl::StatusOr<json> pv = Get(absl::StrCat("/api/v1/persistentvolumes/", UrlEncode(volume)));
  if (!pv.ok()) {
    // Unknown is not empty: a claim whose volume cannot be read stays (the agent's role
    // needs `get` on persistentvolumes, as deploy/kubernetes/agent.yaml grants).
    return absl::StrCat("it is bound to PersistentVolume ", volume,
                        ", which cannot be read to tell whether deleting the claim deletes its "
                        "data (",
                        pv.status().message(), ")", how);
  }
  if (pv->is_null()) return std::string();  // its volume is gone already
  const json pv_spec = pv->is_object() ? pv->value("spec", json::object()) : json::object();
  std::string policy = pv_spec.is_object() && pv_spec.contains("persistentVolumeReclaimPolicy") &&
                               pv_spec["persistentVolumeReclaimPolicy"].is_string()
                           ? pv_spec["persistentVolumeReclaimPolicy"].get<std::string>()
                           : std::string();
  // Retain keeps the volume and its data when the claim goes; Delete (a provisioner's
  // default) deletes them, and Recycle scrubs them.
  if (policy == "Retain") return std::string();
  if (policy.empty()) policy = "unknown";
  return absl::StrCat("it is bound to PersistentVolume ", volume, ", whose reclaim policy is ",
                      policy,
                      ": deleting the claim would delete the volume's data, and nothing "
                      "in Git could bring it back",
                      how);
}

absl::StatusOr<std::string> KubernetesApplier::DeletionDestroys(const v1::ObjectKey& key,
                                                                const Live& live,
                                                                const std::string& bundle) {
  const bool ns = live.resource.group.empty() && live.resource.kind == "Namespace";
  const bool crd = live.resource.group == "apiextensions.k8s.io" &&
                   live.resource.kind == "CustomResourceDefinition";
  const bool claim = live.resource.group.empty() && live.resource.kind == "PersistentVolumeClaim";
  const bool volume = live.resource.group.empty() && live.resource.kind == "PersistentVolume";
  const bool stateful = live.resource.group == "apps" && live.resource.kind == "StatefulSet";
  if (!ns && !crd && !claim && !volume && !stateful) return std::string();
  if (MetadataField(live.object, "annotations", kPruneAnnotation) == "true") return std::string();
  if (claim) return ClaimDestroys(live.object);
  const json spec = live.object.value("spec", json::object());
  if ((volume || stateful) && !spec.is_object()) return std::string();
  const std::string how =
      absl::StrCat("; it is pruned at once when it is annotated ", kPruneAnnotation, "=true");
  if (volume) {
    // The API makes a volume written without a policy Retain; a provisioner's are Delete,
    // and deleting the volume itself then deletes the storage behind it (CSI's
    // HonorPVReclaimPolicy, on by default since Kubernetes 1.31).
    const std::string policy = spec.value("persistentVolumeReclaimPolicy", "");
    if (policy.empty() || policy == "Retain") return std::string();
    return absl::StrCat("its reclaim policy is ", policy.substr(0, 32),
                        ": deleting it may delete the storage behind it, and nothing in Git "
                        "could bring the data back",
                        how, ", or once the policy is Retain");
  }
  if (stateful) {
    // Its claims go with it when it asks so (persistentVolumeClaimRetentionPolicy); by
    // default they stay.
    const json policy = spec.value("persistentVolumeClaimRetentionPolicy", json::object());
    const json templates = spec.value("volumeClaimTemplates", json::array());
    if (!policy.is_object() || policy.value("whenDeleted", "") != "Delete" ||
        !templates.is_array() || templates.empty()) {
      return std::string();
    }
    return absl::StrCat(
        "its persistentVolumeClaimRetentionPolicy.whenDeleted is Delete: deleting it deletes "
        "its PersistentVolumeClaims, and with a Delete reclaim policy their volumes' data",
        how, ", or once whenDeleted is Retain");
  }
  std::string what;  // the objects that would go with it, one of them
  std::string path;
  if (ns) {
    what = "PersistentVolumeClaim";
    path = absl::StrCat("/api/v1/namespaces/", key.name(), "/persistentvolumeclaims");
  } else {
    // Its custom resources, in every namespace, read at a version the API serves.
    if (!spec.is_object()) return std::string();
    std::string version;
    const json versions = spec.value("versions", json::array());
    for (const json& v : versions.is_array() ? versions : json::array()) {
      if (!v.is_object() || !v.value("served", false)) continue;
      if (version.empty() || v.value("storage", false)) version = v.value("name", "");
    }
    const json names = spec.value("names", json::object());
    const std::string group = spec.value("group", "");
    const std::string plural = names.is_object() ? names.value("plural", "") : "";
    if (group.empty() || plural.empty()) return std::string();  // not a CRD the API took
    if (version.empty()) {
      // Its objects may still be stored, and deleting it deletes them, but no version
      // serves them to be counted. Unknown is not empty.
      return absl::StrCat(
          "it serves no version, so whether any ", names.value("kind", plural),
          " objects are still stored cannot be read, and deleting it would delete them; "
          "it is pruned at once when it is annotated ",
          kPruneAnnotation, "=true");
    }
    what = absl::StrCat(names.value("kind", plural), " object");
    path = absl::StrCat("/apis/", group, "/", version, "/", plural);
  }
  absl::StatusOr<Held> held =
      ListHeld(path, what, crd, /*pages=*/1, [](const json&) { return true; });
  if (!held.ok()) return held.status();
  if (held->names.empty() && ns) {
    // Secrets Git cannot bring back: read a few pages (a namespace of many service
    // account tokens or owned Secrets), and what was not read counts as held.
    what = "Secret";
    path = absl::StrCat("/api/v1/namespaces/", key.name(), "/secrets");
    held = ListHeld(path, what, false, kSecretPages, [&bundle](const json& item) {
      const json& metadata = item["metadata"];
      const json owners = metadata.value("ownerReferences", json::array());
      if (owners.is_array() && !owners.empty()) return false;  // goes with its owner
      if (item.value("type", std::string()) == "kubernetes.io/service-account-token") {
        return false;  // made again for its service account
      }
      const std::string owner = MetadataField(item, "labels", kBundleLabel);
      if (owner.empty()) return true;              // by hand, or by another tool
      if (owner != bundle) return false;           // that bundle's: it holds the Namespace
      return !DeleteLeaves(item, bundle).empty();  // this bundle's, kept by an annotation
    });
    if (!held.ok()) return held.status();
  }
  if (held->names.empty()) return std::string();
  const std::vector<std::string>& names = held->names;
  const size_t shown = std::min<size_t>(names.size(), 3);
  const bool secrets = what == "Secret";
  return absl::StrCat(
      "it still holds ", names.size(), held->more ? " or more " : " ", what,
      names.size() == 1 ? "" : "s", secrets ? " no bundle applies" : "", " (",
      absl::StrJoin(names.begin(), names.begin() + shown, ", "),
      names.size() > shown ? ", ..." : "", "): ",
      !ns       ? "deleting the CustomResourceDefinition would delete every one of them, whoever "
                  "made them"
      : secrets ? "deleting the Namespace would delete them, and nothing in Git could bring "
                  "them back"
                : "deleting the Namespace would delete them, and with a Delete reclaim policy "
                  "their volumes' data",
      "; it is pruned once they are gone, or at once when it is annotated ", kPruneAnnotation,
      "=true");
}

absl::StatusOr<KubernetesApplier::Held> KubernetesApplier::ListHeld(
    const std::string& path, const std::string& what, bool cluster_wide, int pages,
    const std::function<bool(const json&)>& holds) {
  Held out;
  std::string next;
  for (int page = 0; page < pages; ++page) {
    std::string url = absl::StrCat(path, "?limit=", kHeldPage);
    if (!next.empty()) absl::StrAppend(&url, "&continue=", UrlEncode(next));
    absl::StatusOr<KubeResponse> response = client_->Do("GET", url);
    if (cluster_wide && response.ok() && response->code == 404) return out;  // not served
    if (!response.ok() || response->code != 200) {
      // Unknown is not empty: it stays until the agent can tell.
      absl::Status why = response.ok() ? response->ToStatus() : response.status();
      return absl::Status(why.code(), absl::StrCat("cannot tell whether it holds any ", what,
                                                   ", so it is not deleted: ", why.message()));
    }
    json list = json::parse(response->body, nullptr, false);
    if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) {
      return absl::InternalError(
          absl::StrCat("the API's list of ", what, " objects is not a list, so it is not deleted"));
    }
    for (const json& item : list["items"]) {
      if (!item.is_object() || !item.contains("metadata") || !item["metadata"].is_object()) {
        continue;
      }
      const json& metadata = item["metadata"];
      if (metadata.contains("deletionTimestamp") && !metadata["deletionTimestamp"].is_null()) {
        continue;  // its deletion was decided already
      }
      if (!holds(item)) continue;
      std::string name = metadata.value("name", std::string());
      if (cluster_wide && metadata.contains("namespace") && metadata["namespace"].is_string()) {
        name = absl::StrCat(metadata["namespace"].get<std::string>(), "/", name);
      }
      out.names.push_back(std::move(name));
    }
    next = list.contains("metadata") && list["metadata"].is_object()
               ? list["metadata"].value("continue", std::string())
               : std::string();
    if (next.empty()) return out;
    if (!out.names.empty()) break;  // one is enough to hold it
  }
  out.more = true;
  if (out.names.empty()) {
    // Pages left unread may hold one: unknown is not empty.
    out.names.push_back(absl::StrCat("more than ", pages * kHeldPage, " not read to the end"));
  }
  return out;
}

absl::StatusOr<RemovalPreview> KubernetesApplier::PreviewRemoval(const v1::ObjectKey& key,
                                                                 const ApplyContext& context,
                                                                 bool created) {
  absl::StatusOr<Live> live = ReadLive(key, context);
  if (!live.ok()) return live.status();
  if (live->object.is_null()) return RemovalPreview{false, ""};
  // As Release decides: a found object still labelled for the bundle is given back
  // unless it asks to be deleted.
  if (!created && MetadataField(live->object, "labels", kBundleLabel) == context.bundle &&
      MetadataField(live->object, "annotations", kPruneAnnotation) != "true") {
    return Applier::PreviewRemoval(key, context, created);
  }
  if (std::string leaves = DeleteLeaves(live->object, context.bundle); !leaves.empty()) {
    return RemovalPreview{true, std::move(leaves)};
  }
  absl::StatusOr<std::string> data = DeletionDestroys(key, *live, context.bundle);
  if (!data.ok()) return data.status();
  return RemovalPreview{true, *std::move(data)};
}

absl::Status KubernetesApplier::Release(const v1::ObjectKey& key, const ApplyContext& context) {
  absl::StatusOr<Live> live = ReadForRemoval(key, context);
  if (!live.ok()) return live.status();
  if (live->object.is_null()) return absl::OkStatus();
  const std::string owner = MetadataField(live->object, "labels", kBundleLabel);
  if (owner != context.bundle) {
    GF_LOG(INFO) << "release: " << KeyDisplay(key) << " is not labelled " << kBundleLabel << "="
                 << context.bundle << "; nothing to give up";
    return absl::OkStatus();
  }
  if (MetadataField(live->object, "annotations", kPruneAnnotation) == "true") {
    return Delete(key, context);  // the object asks for it
  }
  // Given back as it is: gitfleet's field manager lets go of every field and the bundle
  // label goes; every other field stays (what Git set included: removing a bundle is not
  // removing its fields), owned by whoever else owns it. On the same object only.
  json entries = json::array();
  for (const json& entry : ManagedFields(live->object)) {
    if (!entry.is_object() || entry.value("manager", "") != options_.field_manager) {
      entries.push_back(entry);
    }
  }
  if (entries.empty()) entries.push_back(json::object());  // [{}]: no managedFields left
  json patch = json::array();
  const std::string uid = UidOf(live->object);
  if (!uid.empty()) patch.push_back({{"op", "test"}, {"path", "/metadata/uid"}, {"value", uid}});
  patch.push_back(
      {{"op", "remove"},
       {"path", absl::StrCat("/metadata/labels/",
                             absl::StrReplaceAll(kBundleLabel, {{"~", "~0"}, {"/", "~1"}}))}});
  patch.push_back({{"op", "add"}, {"path", "/metadata/managedFields"}, {"value", entries}});
  absl::StatusOr<KubeResponse> response =
      client_->Do("PATCH", absl::StrCat(live->path, "?fieldManager=", options_.field_manager),
                  patch.dump(), "application/json-patch+json");
  if (!response.ok()) return response.status();
  if (response->code == 404) return absl::OkStatus();
  if (response->code == 422 && !uid.empty()) {
    GF_LOG(INFO) << "release: " << KeyDisplay(key)
                 << " was replaced by another object meanwhile; it is not this bundle's";
    return absl::OkStatus();
  }
  if (response->code != 200) return response->ToStatus();
  GF_LOG(INFO) << "release: " << KeyDisplay(key) << " existed before bundle " << context.bundle
               << " applied it; let go of it, as it is";
  return absl::OkStatus();
}

absl::Status KubernetesApplier::Delete(const v1::ObjectKey& key, const ApplyContext& context) {
  absl::StatusOr<Live> live = ReadForRemoval(key, context);
  if (!live.ok()) return live.status();
  if (live->object.is_null()) return absl::OkStatus();
  if (std::string leaves = DeleteLeaves(live->object, context.bundle); !leaves.empty()) {
    GF_LOG(INFO) << "prune: " << KeyDisplay(key) << ": " << leaves << "; leaving it";
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> data = DeletionDestroys(key, *live, context.bundle);
  if (!data.ok()) return data.status();
  if (!data->empty()) return absl::FailedPreconditionError(*std::move(data));
  const json& metadata = live->object["metadata"];
  json options = {
      {"apiVersion", "v1"},
      {"kind", "DeleteOptions"},
      {"propagationPolicy", "Background"},
      {"preconditions",
       {{"uid", metadata.is_object() && metadata.contains("uid") && metadata["uid"].is_string()
                    ? metadata["uid"].get<std::string>()
                    : std::string()}}}};
  absl::StatusOr<KubeResponse> response = client_->Do("DELETE", live->path, options.dump());
  if (!response.ok()) return response.status();
  if (response->code == 404) return absl::OkStatus();
  if (response->code == 409) {
    GF_LOG(INFO) << "prune: " << KeyDisplay(key) << " was replaced meanwhile; leaving it";
    return absl::OkStatus();
  }
  return response->ToStatus();
}

absl::StatusOr<v1::ObjectKey> KubernetesApplier::CreateHook(const v1::ManifestObject& hook,
                                                            const ApplyContext& context) {
  absl::StatusOr<Target> target = Prepare(hook, context, /*wait_for_crd=*/true);
  if (!target.ok()) return target.status();
  target->body["metadata"]["labels"][kHookLabel] = "true";
  absl::StatusOr<KubeResponse> response = client_->Do(
      "POST",
      absl::StrCat(target->resource.Path(target->ns, ""), "?fieldManager=", options_.field_manager),
      target->body.dump());
  if (!response.ok()) return response.status();
  if (response->code == 409) {
    return absl::AlreadyExistsError(std::string(response->ToStatus().message()));
  }
  if (response->code != 201 && response->code != 200) return response->ToStatus();
  json created = json::parse(response->body, nullptr, false);
  if (!created.is_object() || !created.contains("metadata") || !created["metadata"].is_object() ||
      !created["metadata"].contains("name") || !created["metadata"]["name"].is_string()) {
    return absl::InternalError("the API answered a create without metadata.name");
  }
  v1::ObjectKey live = hook.key();
  live.set_namespace_(target->ns);
  live.set_name(created["metadata"]["name"].get<std::string>());
  return live;
}

absl::StatusOr<HookStatus> KubernetesApplier::CheckHook(const v1::ObjectKey& live,
                                                        const ApplyContext& context) {
  absl::StatusOr<ApiResource> resource = mapper_->FindPreferred(live.group(), live.kind());
  if (!resource.ok()) return resource.status();
  absl::StatusOr<json> object = Get(resource->Path(live.namespace_(), live.name()));
  if (!object.ok()) return object.status();
  if (object->is_null()) return HookStatus{HookStatus::kFailed, "deleted before it finished"};
  return HookStatusOf(*object);
}

absl::Status KubernetesApplier::DeleteHook(const v1::ObjectKey& live, const ApplyContext& context) {
  return Delete(live, context);  // labelled for the bundle; its Pods go with it (Background)
}

void KubernetesApplier::BeginDriftCheck(const std::vector<const v1::ManifestObject*>& objects,
                                        const ApplyContext& context) {
  // What the bundle asks of the namespace created for it: a revision that changes only
  // that applies no object, so each drift pass looks (once per change: remembered).
  if (context.create_namespace && !context.target_namespace.empty() &&
      (!context.namespace_labels.empty() || !context.namespace_annotations.empty())) {
    if (absl::Status updated = UpdateCreatedNamespace(context.target_namespace, context);
        !updated.ok()) {
      GF_LOG(WARNING) << "bundle " << context.bundle << ": " << updated;
    }
  }
  std::map<std::string, ApiResource> collections;  // path -> resource
  for (const v1::ManifestObject* object : objects) {
    std::optional<std::pair<ApiResource, std::string>> place = PlaceOf(*object, context);
    if (place) collections.emplace(place->first.Path(place->second, ""), place->first);
  }
  ListBundle(collections, context, /*keep=*/true);
}

std::optional<std::pair<ApiResource, std::string>> KubernetesApplier::PlaceOf(
    const v1::ManifestObject& object, const ApplyContext& context) {
  auto [group, version] = SplitApiVersion(object.api_version());
  absl::StatusOr<ApiResource> resource = mapper_->Find(group, version, object.key().kind());
  if (!resource.ok()) return std::nullopt;  // the apply or InSync reports it
  std::string ns;
  if (resource->namespaced) {
    ns = object.key().namespace_();
    if (ns.empty()) ns = context.target_namespace;
    if (ns.empty()) ns = options_.default_namespace;
  }
  return std::make_pair(*std::move(resource), std::move(ns));
}

void KubernetesApplier::BeginApply(const std::vector<const v1::ManifestObject*>& objects,
                                   const ApplyContext& context) {
  // A few objects of a kind and namespace are read one by one as they are applied (a GET
  // each, no larger than the object); more are listed at once.
  constexpr size_t kReadEachUpTo = 3;
  std::map<std::string, std::pair<ApiResource, std::vector<std::string>>> changed;
  for (const v1::ManifestObject* object : objects) {
    std::optional<std::pair<ApiResource, std::string>> place = PlaceOf(*object, context);
    if (!place) continue;
    auto& entry = changed[place->first.Path(place->second, "")];
    entry.first = place->first;
    entry.second.push_back(place->first.Path(place->second, object->key().name()));
  }
  std::map<std::string, ApiResource> listed;
  {
    MutexLock lock(&mu_);
    for (auto& [path, entry] : changed) {
      if (entry.second.size() > kReadEachUpTo ||
          read_first_.size() + entry.second.size() > kMaxLiveDisabled) {
        listed.emplace(path, entry.first);
        continue;
      }
      read_first_.insert(entry.second.begin(), entry.second.end());
    }
  }
  ListBundle(listed, context, /*keep=*/false);
}

void KubernetesApplier::ListBundle(const std::map<std::string, ApiResource>& collections,
                                   const ApplyContext& context, bool keep) {
  const std::string selector = UrlEncode(absl::StrCat(kBundleLabel, "=", context.bundle));
  bool not_reconciled_changed = false;
  size_t not_reconciled = 0;
  for (const auto& [path, resource] : collections) {
    absl::StatusOr<KubeResponse> response =
        client_->Do("GET", absl::StrCat(path, "?labelSelector=", selector));
    // Unreachable or refused: the GETs that follow fail the pass fast; no more LISTs.
    if (!response.ok() || response->code == 401 || response->code >= 500) break;
    if (response->code != 200) continue;  // e.g. 403 on LIST: InSync falls back to a GET
    json list = json::parse(response->body, nullptr, false);
    if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) continue;
    MutexLock lock(&mu_);
    for (json& item : list["items"]) {
      if (!item.is_object() || !item.contains("metadata") || !item["metadata"].is_object() ||
          !item["metadata"].contains("name") || !item["metadata"]["name"].is_string()) {
        continue;  // not an object: InSync finds it missing and re-applies
      }
      // List items carry neither apiVersion nor kind.
      item["apiVersion"] = resource.ApiVersion();
      item["kind"] = resource.kind;
      std::string name = item["metadata"]["name"].get<std::string>();
      const std::string object_path = absl::StrCat(path, "/", name);
      // Reconciling turned off on a live object is seen here at each drift pass and before
      // each new revision; the next apply of it reads it first (NoteLiveReconcile).
      if (std::string disabled = LiveReconcileDisabled(item); !disabled.empty()) {
        if (live_disabled_.size() < kMaxLiveDisabled) {
          not_reconciled_changed |= live_disabled_.insert(object_path).second;
        }
      } else {
        not_reconciled_changed |= live_disabled_.erase(object_path) > 0;
      }
      not_reconciled = live_disabled_.size();
      if (keep) prefetched_[object_path] = std::move(item);
    }
  }
  if (not_reconciled_changed && options_.on_not_reconciled) {
    options_.on_not_reconciled(not_reconciled);
  }
}

void KubernetesApplier::EndDriftCheck() {
  MutexLock lock(&mu_);
  prefetched_.clear();
}

absl::StatusOr<bool> KubernetesApplier::InSync(const v1::ManifestObject& object,
                                               const ApplyContext& context) {
  absl::StatusOr<Target> target = Prepare(object, context, /*wait_for_crd=*/false);
  if (!target.ok()) {
    if (target.status().code() == absl::StatusCode::kNotFound) return false;  // kind gone
    return target.status();
  }
  const ApplyPolicy policy = PolicyOf(target->body);
  if (policy == ApplyPolicy::kIgnore) {
    Remember(context.bundle, object.key(), NotApplied(object.key(), target->body));
    return true;
  }
  const std::string path = target->resource.Path(target->ns, object.key().name());
  absl::StatusOr<json> live = absl::UnknownError("not listed");
  {
    MutexLock lock(&mu_);
    auto it = prefetched_.find(path);
    // Listed by the bundle's label: absent means deleted or relabelled; GET tells which.
    if (it != prefetched_.end()) live = it->second;
  }
  if (!live.ok()) {
    live = Get(path);
    if (!live.ok()) return live.status();
    std::string owner;
    if (live->is_object() && live->contains("metadata") && (*live)["metadata"].is_object()) {
      const json& labels = (*live)["metadata"].value("labels", json::object());
      if (labels.is_object() && labels.contains(kBundleLabel) && labels[kBundleLabel].is_string()) {
        owner = labels[kBundleLabel].get<std::string>();
      }
    }
    if (!owner.empty() && owner != context.bundle) {
      // Two bundles apply the same object: say so rather than take it back and forth.
      return absl::FailedPreconditionError(
          absl::StrCat("bundle ", owner, " applies this object too (label ", kBundleLabel, "=",
                       owner, "); remove it from one of them"));
    }
  }
  if (std::string disabled = NoteLiveReconcile(path, *live); !disabled.empty()) {
    Remember(context.bundle, object.key(), NotReconciled(object.key(), *live, disabled));
    return true;  // an operator holds it as it is: no drift to heal
  }
  Remember(context.bundle, object.key(), HealthOf(object.key(), *live));
  if (live->is_null()) return false;
  if (policy == ApplyPolicy::kIfNotPresent) return true;  // there: whatever it holds
  // No drift in what others own.
  LeaveToOthers(object.key(), target->ns, context,
                AutoscaledBy(object.key(), target->ns, target->body), *live, &target->body);
  std::string diff = FirstDifference(target->body, *live);
  if (diff.empty()) return true;
  // The server may store a field in another form than it was written ("0.5" CPU as
  // "500m"). Before calling it drift, ask the server what an apply would change.
  absl::StatusOr<std::string> dry_run = DryRunDifference(*target, path, *live);
  if (dry_run.ok() && dry_run->empty()) return true;
  GF_LOG(DEBUG) << KeyDisplay(object.key()) << " differs at " << (dry_run.ok() ? *dry_run : diff);
  return false;
}

void KubernetesApplier::Refresh(const v1::ManifestObject& object, const ApplyContext& context) {
  absl::StatusOr<Target> target = Prepare(object, context, /*wait_for_crd=*/false);
  v1::ResourceHealth health;
  *health.mutable_key() = object.key();
  if (!target.ok()) {
    health.set_health(v1::HEALTH_STATE_UNKNOWN);
    health.set_message(std::string(target.status().message()));
  } else if (absl::StatusOr<json> live =
                 Get(target->resource.Path(target->ns, object.key().name()));
             !live.ok()) {
    health.set_health(v1::HEALTH_STATE_UNKNOWN);
    health.set_message(std::string(live.status().message()));
  } else {
    health = HealthOf(object.key(), *live);
  }
  Remember(context.bundle, object.key(), std::move(health));
}

v1::ResourceHealth KubernetesApplier::Health(const v1::ManifestObject& object,
                                             const ApplyContext& context) {
  {
    MutexLock lock(&mu_);
    auto it = health_.find(CacheKey(context.bundle, object.key()));
    if (it != health_.end()) return it->second;
  }
  Refresh(object, context);
  MutexLock lock(&mu_);
  return health_[CacheKey(context.bundle, object.key())];
}

v1::ObjectKey KubernetesApplier::Place(v1::ObjectKey key,
                                       const absl::StatusOr<ApiResource>& resource,
                                       const ApplyContext& context) const {
  if (!key.namespace_().empty() || !resource.ok() || !resource->namespaced) return key;
  key.set_namespace_(context.target_namespace.empty() ? options_.default_namespace
                                                      : context.target_namespace);
  return key;
}

absl::StatusOr<v1::ObjectKey> KubernetesApplier::PlacedKey(const v1::ManifestObject& object,
                                                           const ApplyContext& context) {
  if (!object.key().namespace_().empty()) return object.key();
  auto [group, version] = SplitApiVersion(object.api_version());
  absl::StatusOr<ApiResource> resource = mapper_->Find(group, version, object.key().kind());
  // Not served (yet): a custom resource whose CRD is on its way keeps its key as written.
  if (!resource.ok() && resource.status().code() != absl::StatusCode::kNotFound) {
    return resource.status();
  }
  return Place(object.key(), resource, context);
}

absl::StatusOr<v1::ObjectKey> KubernetesApplier::ResolveKey(const v1::ObjectKey& key,
                                                            const ApplyContext& context) {
  if (!key.namespace_().empty()) return key;
  absl::StatusOr<ApiResource> resource = mapper_->FindPreferred(key.group(), key.kind());
  if (!resource.ok() && resource.status().code() != absl::StatusCode::kNotFound) {
    return resource.status();
  }
  return Place(key, resource, context);
}

bool KubernetesApplier::Namespaced(const v1::ManifestObject& object) {
  auto [group, version] = SplitApiVersion(object.api_version());
  absl::StatusOr<ApiResource> resource = mapper_->Find(group, version, object.key().kind());
  // A kind not served yet is a custom resource: those are usually namespaced, and either
  // way they go after their CRD.
  return resource.ok() ? resource->namespaced : true;
}

absl::StatusOr<bool> KubernetesApplier::ServedNamespaced(const v1::ManifestObject& object) {
  auto [group, version] = SplitApiVersion(object.api_version());
  absl::StatusOr<ApiResource> resource = mapper_->Find(group, version, object.key().kind());
  if (!resource.ok()) return resource.status();
  return resource->namespaced;
}

absl::StatusOr<std::string> KubernetesApplier::Preview(const v1::ManifestObject& object,
                                                       const ApplyContext& context) {
  absl::StatusOr<Target> target = Prepare(object, context, /*wait_for_crd=*/false);
  if (!target.ok()) return WithKey(object.key(), target.status());
  const ApplyPolicy policy = PolicyOf(target->body);
  if (policy == ApplyPolicy::kIgnore) return std::string();
  const std::string object_path = target->resource.Path(target->ns, object.key().name());
  absl::StatusOr<json> live = Get(object_path);
  if (!live.ok()) return WithKey(object.key(), live.status());
  if (live->is_null()) return std::string("create");
  if (policy == ApplyPolicy::kIfNotPresent) return std::string();
  if (!LiveReconcileDisabled(*live).empty()) return std::string();  // left as it is
  LeaveToOthers(object.key(), target->ns, context,
                AutoscaledBy(object.key(), target->ns, target->body), *live, &target->body);
  absl::StatusOr<std::string> diff = DryRunDifference(*target, object_path, *live);
  if (!diff.ok()) return WithKey(object.key(), diff.status());
  return diff;
}

absl::StatusOr<std::string> KubernetesApplier::DryRunDifference(const Target& target,
                                                                const std::string& path,
                                                                json live) {
  absl::StatusOr<KubeResponse> response = client_->Do(
      "PATCH",
      absl::StrCat(path, "?fieldManager=", options_.field_manager, "&force=true&dryRun=All"),
      target.body.dump(), "application/apply-patch+yaml");
  if (!response.ok()) return response.status();
  if (response->code != 200 && response->code != 201) return response->ToStatus();
  json after = json::parse(response->body, nullptr, false);
  if (!after.is_object()) return absl::InternalError("dry run: not a JSON object");
  for (json* doc : {&after, &live}) {
    auto metadata = doc->find("metadata");
    if (metadata == doc->end() || !metadata->is_object()) continue;
    for (const char* field : {"managedFields", "resourceVersion", "generation"}) {
      metadata->erase(field);
    }
  }
  std::string diff = FirstDifference(after, live);
  if (diff.empty()) diff = FirstDifference(live, after);  // a field the apply removes
  return diff;
}

}  // namespace gitfleet
