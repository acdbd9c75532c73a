#include "tests/fakekube/fake_apiserver.h"

#include <civetweb.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/kube/convert.h"
#include "common/civetweb_stop.h"

namespace gitfleet {
namespace {

using nlohmann::json;

json StatusBody(int code, const std::string& reason, const std::string& message,
                json details = json::object()) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", reason},
          {"details", details},  {"code", code}};
}

std::string ApiVersion(const std::string& group, const std::string& version) {
  return group.empty() ? version : group + "/" + version;
}

// A lowercase RFC 1123 subdomain, as metadata.name must be for most kinds.
// Checked by hand: std::regex recurses per character, deep enough to overflow a civetweb
// worker's stack under ASAN.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
  }
  return true;
}

// Label selector: comma-separated k=v, k==v, k!=v, k, !k.
bool Matches(const json& object, const std::string& selector) {
  if (selector.empty()) return true;
  json labels = json::object();
  if (object.contains("metadata") && object["metadata"].contains("labels")) {
    labels = object["metadata"]["labels"];
  }
  for (absl::string_view term : absl::StrSplit(selector, ',', absl::SkipEmpty())) {
    std::string t(term);
    if (size_t p = t.find("!="); p != std::string::npos) {
      std::string k = t.substr(0, p), v = t.substr(p + 2);
      if (labels.contains(k) && labels[k] == v) return false;
    } else if (size_t q = t.find('='); q != std::string::npos) {
      std::string k = t.substr(0, q), v = t.substr(t[q + 1] == '=' ? q + 2 : q + 1);
      if (!labels.contains(k) || labels[k] != v) return false;
    } else if (t[0] == '!') {
      if (labels.contains(t.substr(1))) return false;
    } else if (!labels.contains(t)) {
      return false;
    }
  }
  return true;
}

json FieldsV1(const json& value) {
  json out = json::object();
  if (!value.is_object()) return out;
  for (auto it = value.begin(); it != value.end(); ++it)
    out["f:" + it.key()] = FieldsV1(it.value());
  return out;
}

// Field ownership, as `metadata.managedFields` records it: each entry's `fieldsV1` is a
// tree of "f:<key>" nodes whose empty nodes are the fields it owns (a list is one field).
using FieldPath = std::vector<std::string>;

std::string PathText(const FieldPath& path) { return "." + absl::StrJoin(path, "."); }

// The paths of the leaves of `node`: values that are not maps, and empty maps. Of a
// FieldsV1 set (`fields_v1`), the fields it owns: keys without their "f:", and its "."
// entries (which own a map itself) aside.
void Leaves(const json& node, bool fields_v1, FieldPath* at, std::vector<FieldPath>* out) {
  if (!node.is_object() || node.empty()) {
    if (!at->empty()) out->push_back(*at);
    return;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (fields_v1 && it.key() == ".") continue;
    at->push_back(fields_v1 && absl::StartsWith(it.key(), "f:") ? it.key().substr(2) : it.key());
    Leaves(it.value(), fields_v1, at, out);
    at->pop_back();
  }
}

void LeavesOf(const json& value, FieldPath* at, std::vector<FieldPath>* out) {
  Leaves(value, /*fields_v1=*/false, at, out);
}

std::vector<FieldPath> LeavesOf(const json& value) {
  std::vector<FieldPath> out;
  FieldPath at;
  Leaves(value, /*fields_v1=*/false, &at, &out);
  return out;
}

std::vector<FieldPath> OwnedFields(const json& set) {
  std::vector<FieldPath> out;
  FieldPath at;
  Leaves(set, /*fields_v1=*/true, &at, &out);
  return out;
}

// Whether `set` owns the field at `path`, or a value that holds it.
bool Owns(const json& set, const FieldPath& path) {
  const json* node = &set;
  for (const std::string& key : path) {
    if (!node->is_object()) return false;
    if (node != &set && node->empty()) return true;
    auto it = node->find("f:" + key);
    if (it == node->end()) return false;
    node = &*it;
  }
  return true;
}

// Takes `path`, and what is below it, out of `set`, with the nodes it leaves empty.
void Disown(json* set, const FieldPath& path, size_t i = 0) {
  if (!set->is_object() || i >= path.size()) return;
  auto it = set->find("f:" + path[i]);
  if (it == set->end()) return;
  if (i + 1 == path.size()) {
    set->erase(it);
    return;
  }
  if (it->empty()) return;  // owns the whole value: not taken apart
  Disown(&*it, path, i + 1);
  if (it->empty()) set->erase(it);
}

void Own(json* set, const FieldPath& path) {
  json* node = set;
  for (const std::string& key : path) {
    if (!node->is_object()) *node = json::object();
    node = &(*node)["f:" + key];
  }
  if (!node->is_object()) *node = json::object();
}

const json* ValueAt(const json& value, const FieldPath& path) {
  const json* node = &value;
  for (const std::string& key : path) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(key);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

// Removes the field at `path` from `object`, and the maps it leaves empty on the way.
void EraseAt(json* object, const FieldPath& path, size_t i = 0) {
  if (!object->is_object() || i >= path.size()) return;
  auto it = object->find(path[i]);
  if (it == object->end()) return;
  if (i + 1 == path.size()) {
    object->erase(it);
    return;
  }
  EraseAt(&*it, path, i + 1);
  if (it->is_object() && it->empty()) object->erase(it);
}

bool IsEntry(const json& entry, const std::string& manager, const char* operation) {
  return entry.is_object() && entry.value("manager", "") == manager &&
         entry.value("operation", "") == operation && !entry.contains("subresource");
}

// Entries that own nothing are dropped, as the API drops them.
void DropEmptyEntries(json* managed) {
  json kept = json::array();
  for (json& entry : *managed) {
    if (entry.contains("fieldsV1") && entry["fieldsV1"].is_object() && !entry["fieldsV1"].empty()) {
      kept.push_back(std::move(entry));
    }
  }
  *managed = std::move(kept);
}

// Who owns what, without the times: whether an apply changed it.
json Ownership(const json& managed) {
  json out = json::array();
  if (!managed.is_array()) return out;
  for (const json& entry : managed) {
    json copy = entry;
    if (copy.is_object()) copy.erase("time");
    out.push_back(std::move(copy));
  }
  return out;
}

json ManagedFieldsOf(const json& object) {
  if (object.contains("metadata") && object["metadata"].is_object() &&
      object["metadata"].contains("managedFields") &&
      object["metadata"]["managedFields"].is_array()) {
    return object["metadata"]["managedFields"];
  }
  return json::array();
}

// The fields that differ between `before` and `after`: set or changed in `changed`, gone
// in `removed`.
void Differences(const json& before, const json& after, FieldPath* at,
                 std::vector<FieldPath>* changed, std::vector<FieldPath>* removed) {
  if (before.is_object() && after.is_object() && !before.empty() && !after.empty()) {
    for (auto it = after.begin(); it != after.end(); ++it) {
      at->push_back(it.key());
      if (before.contains(it.key())) {
        Differences(before[it.key()], it.value(), at, changed, removed);
      } else {
        LeavesOf(it.value(), at, changed);
      }
      at->pop_back();
    }
    for (auto it = before.begin(); it != before.end(); ++it) {
      if (after.contains(it.key())) continue;
      at->push_back(it.key());
      removed->push_back(*at);
      at->pop_back();
    }
    return;
  }
  if (before != after) LeavesOf(after, at, changed);
}

// What an update (not an apply) by `manager` does to ownership: the fields it changed
// become its own and nobody else's; fields it removed are nobody's.
void RecordUpdate(const json& before, const json& after, const std::string& manager,
                  const std::string& api_version, const std::string& now, json* managed) {
  std::vector<FieldPath> changed, removed;
  FieldPath at;
  Differences(before, after, &at, &changed, &removed);
  if (changed.empty() && removed.empty()) return;
  for (json& entry : *managed) {
    if (!entry.is_object() || !entry.contains("fieldsV1")) continue;
    for (const FieldPath& path : removed) Disown(&entry["fieldsV1"], path);
    if (IsEntry(entry, manager, "Update")) continue;
    for (const FieldPath& path : changed) Disown(&entry["fieldsV1"], path);
  }
  json* mine = nullptr;
  for (json& entry : *managed) {
    if (IsEntry(entry, manager, "Update")) mine = &entry;
  }
  if (mine == nullptr && !changed.empty()) {
    managed->push_back({{"manager", manager},
                        {"operation", "Update"},
                        {"apiVersion", api_version},
                        {"time", now},
                        {"fieldsType", "FieldsV1"},
                        {"fieldsV1", json::object()}});
    mine = &managed->back();
  }
  if (mine != nullptr) {
    for (const FieldPath& path : changed) Own(&(*mine)["fieldsV1"], path);
    (*mine)["time"] = now;
  }
  DropEmptyEntries(managed);
}

void MergeInto(json& live, const json& applied) {
  if (!applied.is_object() || !live.is_object()) {
    live = applied;
    return;
  }
  for (auto it = applied.begin(); it != applied.end(); ++it) {
    if (it.value().is_null()) {
      live.erase(it.key());
    } else if (it.value().is_object() && live.contains(it.key()) && live[it.key()].is_object()) {
      MergeInto(live[it.key()], it.value());
    } else {
      live[it.key()] = it.value();
    }
  }
}

json WithoutVolatile(json object) {
  object.erase("status");
  if (object.contains("metadata")) {
    for (const char* f : {"managedFields", "resourceVersion", "generation"}) {
      object["metadata"].erase(f);
    }
  }
  return object;
}

json Spec(const json& object) {
  json copy = object;
  copy.erase("metadata");
  copy.erase("status");
  return copy;
}

// The API stores resource quantities in canonical form: a CPU of 0.5 (or "0.5") reads
// back as "500m", 2 as "2". Only CPU is modelled.
void CanonicalQuantities(json& node) {
  if (node.is_array()) {
    for (json& item : node) CanonicalQuantities(item);
    return;
  }
  if (!node.is_object()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (it.key() == "resources" && it.value().is_object()) {
      for (const char* kind : {"limits", "requests"}) {
        auto list = it.value().find(kind);
        if (list == it.value().end() || !list->is_object() || !list->contains("cpu")) continue;
        json& cpu = (*list)["cpu"];
        double cores = -1;
        if (cpu.is_number()) {
          cores = cpu.get<double>();
        } else if (cpu.is_string()) {
          std::string text = cpu.get<std::string>();
          double value;
          if (!text.empty() && text.back() == 'm' &&
              absl::SimpleAtod(text.substr(0, text.size() - 1), &value)) {
            cores = value / 1000;
          } else if (absl::SimpleAtod(text, &value)) {
            cores = value;
          }
        }
        if (cores < 0) continue;
        int64_t milli = static_cast<int64_t>(cores * 1000 + 0.5);
        cpu = milli % 1000 == 0 ? std::to_string(milli / 1000) : absl::StrCat(milli, "m");
      }
    } else {
      CanonicalQuantities(it.value());
    }
  }
}

std::string Now() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
}

}  // namespace

FakeApiServer::FakeApiServer(Options options) : options_(std::move(options)) {
  MutexLock lock(&mu_);
  token_ = options_.token;
  auto add = [this](std::string group, std::vector<std::string> versions, std::string kind,
                    std::string plural, bool namespaced) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    resources_.push_back({group, versions, kind, plural, namespaced, true});
  };
  add("", {"v1"}, "Namespace", "namespaces", false);
  add("", {"v1"}, "ConfigMap", "configmaps", true);
  add("", {"v1"}, "Secret", "secrets", true);
  add("", {"v1"}, "Service", "services", true);
  add("", {"v1"}, "ServiceAccount", "serviceaccounts", true);
  add("", {"v1"}, "Pod", "pods", true);
  add("", {"v1"}, "PersistentVolumeClaim", "persistentvolumeclaims", true);
  add("", {"v1"}, "PersistentVolume", "persistentvolumes", false);
  add("apps", {"v1"}, "Deployment", "deployments", true);
  add("apps", {"v1"}, "StatefulSet", "statefulsets", true);
  add("apps", {"v1"}, "DaemonSet", "daemonsets", true);
  add("apps", {"v1"}, "ReplicaSet", "replicasets", true);
  add("batch", {"v1"}, "Job", "jobs", true);
  add("autoscaling", {"v2"}, "HorizontalPodAutoscaler", "horizontalpodautoscalers", true);
  add("admissionregistration.k8s.io", {"v1"}, "ValidatingWebhookConfiguration",
      "validatingwebhookconfigurations", false);
  add("networking.k8s.io", {"v1"}, "Ingress", "ingresses", true);
  add("rbac.authorization.k8s.io", {"v1"}, "ClusterRole", "clusterroles", false);
  add("rbac.authorization.k8s.io", {"v1"}, "ClusterRoleBinding", "clusterrolebindings", false);
  add("rbac.authorization.k8s.io", {"v1"}, "Role", "roles", true);
  add("rbac.authorization.k8s.io", {"v1"}, "RoleBinding", "rolebindings", true);
  add("apiextensions.k8s.io", {"v1"}, "CustomResourceDefinition", "customresourcedefinitions",
      false);
  add("apiregistration.k8s.io", {"v1"}, "APIService", "apiservices", false);
  for (const char* ns : {"default", "kube-system"}) {
    json object = {{"apiVersion", "v1"},
                   {"kind", "Namespace"},
                   {"metadata",
                    {{"name", ns},
                     {"uid", absl::StrCat("uid-", ++uid_)},
                     {"resourceVersion", std::to_string(++resource_version_)}}},
                   {"status", {{"phase", "Active"}}}};
    objects_[ObjectKeyFor("", "namespaces", "", ns)] = object;
  }
}

absl::StatusOr<std::unique_ptr<FakeApiServer>> FakeApiServer::Start(Options options) {
  std::unique_ptr<FakeApiServer> server(new FakeApiServer(options));
  mg_init_library(0);
  // With TLS, civetweb serves plain HTTP on a private port behind a TLS frontend.
  const bool tls = !options.tls_cert_and_key.empty();
  std::string listen = tls ? "127.0.0.1:0" : options.listen;
  // Each open watch holds a thread: room for them all, and for requests besides.
  const std::string threads = std::to_string(std::max(options.max_watches, 0) + 16);
  const char* args[] = {"listening_ports",
                        listen.c_str(),
                        "num_threads",
                        threads.c_str(),
                        "enable_keep_alive",
                        "yes",
                        "keep_alive_timeout_ms",
                        "100",
                        "tcp_nodelay",
                        "1",
                        nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  server->ctx_ = mg_start(&callbacks, nullptr, args);
  if (server->ctx_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("fake apiserver: cannot listen on ", listen));
  }
  mg_server_port ports[2];
  if (mg_get_server_ports(server->ctx_, 2, ports) <= 0) {
    return absl::InternalError("fake apiserver: no port");
  }
  server->port_ = ports[0].port;
  server->internal_port_ = server->port_;
  if (!tls) server->internal_host_ = listen.substr(0, listen.rfind(':'));
  mg_set_request_handler(server->ctx_, "/", &FakeApiServer::Dispatch, server.get());
  if (tls) {
    int port = 0;
    if (size_t colon = options.listen.rfind(':'); colon != std::string::npos) {
      port = std::atoi(options.listen.c_str() + colon + 1);
    }
    absl::StatusOr<std::unique_ptr<TlsFrontend>> frontend =
        TlsFrontend::Start(options.tls_cert_and_key, server->port_, port, options.client_ca);
    if (!frontend.ok()) return frontend.status();
    server->tls_ = *std::move(frontend);
    server->port_ = server->tls_->port();
  }
  return server;
}

FakeApiServer::~FakeApiServer() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;  // open watches end
  }
  tls_.reset();
  if (ctx_ != nullptr) StopCivetweb(ctx_, internal_host_, internal_port_);
}

std::string FakeApiServer::url() const {
  return absl::StrCat(options_.tls_cert_and_key.empty() ? "http" : "https", "://127.0.0.1:", port_);
}

bool FakeApiServer::AuthorizedLocked(const std::string& user, const std::string& verb,
                                     const std::string& group, const std::string& resource,
                                     const std::string& ns, const std::string& name) const {
  constexpr char kRbac[] = "rbac.authorization.k8s.io";
  constexpr absl::string_view kServiceAccount = "system:serviceaccount:";
  std::vector<std::string> groups = {"system:authenticated"};
  std::vector<std::string> account;
  if (absl::StartsWith(user, kServiceAccount)) {
    account = absl::StrSplit(user.substr(kServiceAccount.size()), ':');
    if (account.size() == 2) {
      groups.push_back("system:serviceaccounts");
      groups.push_back("system:serviceaccounts:" + account[0]);
    }
  }
  auto contains = [](const json& list, const std::string& value) {
    if (!list.is_array()) return false;
    for (const json& item : list) {
      if (item.is_string() && (item == value || item == "*")) return true;
    }
    return false;
  };
  auto binds = [&](const json& binding, const std::string& binding_ns) {
    for (const json& subject : binding.value("subjects", json::array())) {
      const std::string kind = subject.value("kind", "");
      const std::string subject_name = subject.value("name", "");
      if (kind == "User" && subject_name == user) return true;
      if (kind == "Group" && std::find(groups.begin(), groups.end(), subject_name) != groups.end())
        return true;
      if (kind == "ServiceAccount" && account.size() == 2 && subject_name == account[1] &&
          subject.value("namespace", binding_ns) == account[0]) {
        return true;
      }
    }
    return false;
  };
  auto grants = [&](const json& role) {
    for (const json& rule : role.value("rules", json::array())) {
      if (!contains(rule.value("verbs", json::array()), verb) ||
          !contains(rule.value("apiGroups", json::array()), group) ||
          !contains(rule.value("resources", json::array()), resource)) {
        continue;
      }
      const json names = rule.value("resourceNames", json::array());
      if (names.empty() || (!name.empty() && contains(names, name))) return true;
    }
    return false;
  };
  auto role = [&](const json& binding, const std::string& binding_ns)
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> const json* {
    const json ref = binding.value("roleRef", json::object());
    const std::string kind = ref.value("kind", "");
    const std::string key =
        kind == "ClusterRole" ? ObjectKeyFor(kRbac, "clusterroles", "", ref.value("name", ""))
        : kind == "Role"      ? ObjectKeyFor(kRbac, "roles", binding_ns, ref.value("name", ""))
                              : "";
    auto it = objects_.find(key);
    return it == objects_.end() ? nullptr : &it->second;
  };
  const std::string cluster_bindings = ObjectKeyFor(kRbac, "clusterrolebindings", "", "");
  for (auto it = objects_.lower_bound(cluster_bindings);
       it != objects_.end() && absl::StartsWith(it->first, cluster_bindings); ++it) {
    if (it->second.value("roleRef", json::object()).value("kind", "") != "ClusterRole") continue;
    const json* granted = role(it->second, "");
    if (binds(it->second, "") && granted != nullptr && grants(*granted)) return true;
  }
  if (ns.empty()) return false;
  const std::string bindings = ObjectKeyFor(kRbac, "rolebindings", ns, "");
  for (auto it = objects_.lower_bound(bindings);
       it != objects_.end() && absl::StartsWith(it->first, bindings); ++it) {
    const json* granted = role(it->second, ns);
    if (binds(it->second, ns) && granted != nullptr && grants(*granted)) return true;
  }
  return false;
}

std::string FakeApiServer::ObjectKeyFor(const std::string& group, const std::string& plural,
                                        const std::string& ns, const std::string& name) {
  return absl::StrCat(group, "/", plural, "/", ns, "/", name);
}

int FakeApiServer::Dispatch(mg_connection* conn, void* self) {
  auto* server = static_cast<FakeApiServer*>(self);
  const mg_request_info* info = mg_get_request_info(conn);
  std::string body;
  char buffer[8192];
  int n;
  while ((n = mg_read(conn, buffer, sizeof(buffer))) > 0) body.append(buffer, n);
  const char* auth = mg_get_header(conn, "Authorization");
  const char* type = mg_get_header(conn, "Content-Type");
  const char* impersonate = mg_get_header(conn, "Impersonate-User");
  Response response;
  // The stream ends as the server stops: its handlers must return for civetweb to stop.
  try {
    response = server->Handle(info->request_method, info->local_uri ? info->local_uri : "",
                              info->query_string ? info->query_string : "", auth ? auth : "",
                              type ? type : "", body, impersonate ? impersonate : "");
  } catch (const nlohmann::json::exception& e) {
    // A body of the wrong shape: the API answers 400, it does not fall over.
    response = {400, StatusBody(400, "BadRequest", std::string("malformed request: ") + e.what())};
  }
  if (response.watch != nullptr) {
    server->ServeWatch(conn, *response.watch);
    MutexLock lock(&server->mu_);
    --server->open_watches_;
    return 200;
  }
  std::string text = response.body.dump();
  std::string extra;
  if (response.retry_after >= 0)
    extra = absl::StrCat("Retry-After: ", response.retry_after, "\r\n");
  // One write: headers and body in two segments would meet Nagle and delayed ACKs
  // (40 ms per request).
  std::string out =
      absl::StrCat("HTTP/1.1 ", response.code, " ", mg_get_response_code_text(conn, response.code),
                   "\r\nContent-Type: application/json\r\nContent-Length: ", text.size(), "\r\n",
                   extra, "\r\n", text);
  mg_write(conn, out.data(), out.size());
  return response.code;
}

FakeApiServer::Response FakeApiServer::Handle(const std::string& method, const std::string& path,
                                              const std::string& query_string,
                                              const std::string& authorization,
                                              const std::string& content_type,
                                              const std::string& body,
                                              const std::string& impersonate_user) {
  MutexLock lock(&mu_);
  requests_.push_back({method, path, query_string, 0, impersonate_user});
  auto finish = [&](Response r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    requests_.back().code = r.code;
    return r;
  };
  EstablishCrdsLocked();
  const bool restricted =
      !options_.restricted_token.empty() && authorization == "Bearer " + options_.restricted_token;
  if (!token_.empty() && authorization != "Bearer " + token_ && !restricted) {
    return finish({401, StatusBody(401, "Unauthorized", "Unauthorized")});
  }
  if (fail_count_ > 0 &&
      (fail_content_type_.empty() || absl::StartsWith(content_type, fail_content_type_))) {
    --fail_count_;
    std::string reason = fail_code_ == 429   ? "TooManyRequests"
                         : fail_code_ == 409 ? "Conflict"
                         : fail_code_ == 422 ? "Invalid"
                         : fail_code_ >= 500 ? "InternalError"
                                             : "BadRequest";
    return finish({fail_code_,
                   StatusBody(fail_code_, reason, absl::StrCat("injected failure ", fail_code_)),
                   fail_retry_after_});
  }
  std::map<std::string, std::string> query;
  for (absl::string_view pair : absl::StrSplit(query_string, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    std::vector<char> decoded(kv.second.size() + 1);
    mg_url_decode(kv.second.c_str(), static_cast<int>(kv.second.size()), decoded.data(),
                  static_cast<int>(decoded.size()), 1);
    query[kv.first] = decoded.data();
  }

  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  if (parts.empty())
    return finish(
        {404, StatusBody(404, "NotFound", "the server could not find the requested resource")});
  std::string group, version;
  size_t rest;
  if (parts[0] == "api" && parts.size() >= 2) {
    version = parts[1];
    rest = 2;
  } else if (parts[0] == "apis" && parts.size() >= 3) {
    group = parts[1];
    version = parts[2];
    rest = 3;
  } else if (parts.size() == 1 && parts[0] == "version") {
    if (method != "GET")
      return finish({405, StatusBody(405, "MethodNotAllowed", "method not allowed")});
    return finish({200,
                   {{"major", "1"},
                    {"minor", "30"},
                    {"gitVersion", kFakeKubernetesVersion},
                    {"platform", "linux/amd64"}}});
  } else {
    if (method != "GET")
      return finish({405, StatusBody(405, "MethodNotAllowed", "method not allowed")});
    return finish(DiscoveryLocked(parts));
  }
  if (parts.size() == rest) {
    if (method != "GET")
      return finish({405, StatusBody(405, "MethodNotAllowed", "method not allowed")});
    return finish(DiscoveryLocked(parts));
  }
  std::string ns, plural, name, subresource;
  std::vector<std::string> tail(parts.begin() + rest, parts.end());
  if (tail[0] == "namespaces" && tail.size() >= 3) {
    ns = tail[1];
    plural = tail[2];
    if (tail.size() >= 4) name = tail[3];
    if (tail.size() >= 5) subresource = tail[4];
  } else {
    plural = tail[0];
    if (tail.size() >= 2) name = tail[1];
    if (tail.size() >= 3) subresource = tail[2];
  }
  const Resource* resource = FindResourceLocked(group, version, plural);
  bool wrong_scope = resource != nullptr && ((!resource->namespaced && !ns.empty()) ||
                                             (resource->namespaced && ns.empty() && !name.empty()));
  if (resource == nullptr || wrong_scope) {
    return finish(
        {404, StatusBody(404, "NotFound", "the server could not find the requested resource")});
  }
  const bool watch = method == "GET" && name.empty() && query.count("watch") > 0 &&
                     (query["watch"] == "true" || query["watch"] == "1");
  std::string verb = method == "GET"      ? (name.empty() ? (watch ? "watch" : "list") : "get")
                     : method == "PATCH"  ? "patch"
                     : method == "DELETE" ? "delete"
                                          : absl::AsciiStrToLower(method);
  if (forbidden_.count(absl::StrCat(verb, " ", group, "/", plural)) > 0) {
    return finish(
        {403,
         StatusBody(
             403, "Forbidden",
             absl::StrCat(plural, " \"", name,
                          "\" is forbidden: User \"system:serviceaccount:gitfleet:agent\" cannot ",
                          verb, " resource \"", plural, "\" in API group \"", group, "\"",
                          ns.empty() ? "" : " in the namespace \"" + ns + "\""))});
  }
  // Who the request is judged as: the impersonated user, or the client itself when
  // AuthorizeAs named it (as the API server judges every client by RBAC).
  const std::string judged = !impersonate_user.empty() ? impersonate_user
                             : restricted              ? options_.restricted_user
                                                       : authorize_as_;
  if (!impersonate_user.empty()) {
    // The client (the agent) may impersonate unless forbidden to; the request is then
    // authorized as the impersonated user alone. A namespace's own object counts as in it.
    constexpr absl::string_view kServiceAccount = "system:serviceaccount:";
    std::vector<std::string> account;
    if (absl::StartsWith(impersonate_user, kServiceAccount)) {
      account = absl::StrSplit(impersonate_user.substr(kServiceAccount.size()), ':');
    }
    const bool is_account = account.size() == 2;
    const std::string what = is_account ? "serviceaccounts" : "users";
    if (forbidden_.count(absl::StrCat("impersonate /", what)) > 0) {
      return finish(
          {403, StatusBody(403, "Forbidden",
                           absl::StrCat(what, " \"", is_account ? account[1] : impersonate_user,
                                        "\" is forbidden: User "
                                        "\"system:serviceaccount:gitfleet:agent\" cannot "
                                        "impersonate resource \"",
                                        what, "\" in API group \"\"",
                                        is_account ? " in the namespace \"" + account[0] + "\""
                                                   : " at the cluster scope"))});
    }
  }
  if (!judged.empty()) {
    std::string rbac_verb =
        method == "GET"
            ? (name.empty()
                   ? (query.count("watch") > 0 && query["watch"] == "true" ? "watch" : "list")
                   : "get")
        : method == "POST"   ? "create"
        : method == "PUT"    ? "update"
        : method == "PATCH"  ? "patch"
        : method == "DELETE" ? (name.empty() ? "deletecollection" : "delete")
                             : absl::AsciiStrToLower(method);
    const std::string resource_path = subresource.empty() ? plural : plural + "/" + subresource;
    const std::string rbac_ns = (group.empty() && plural == "namespaces") ? name : ns;
    if (!AuthorizedLocked(judged, rbac_verb, group, resource_path, rbac_ns, name)) {
      return finish(
          {403,
           StatusBody(403, "Forbidden",
                      absl::StrCat(plural, group.empty() ? "" : "." + group,
                                   name.empty() ? "" : " \"" + name + "\"",
                                   " is forbidden: User \"", judged, "\" cannot ", rbac_verb,
                                   " resource \"", resource_path, "\" in API group \"", group, "\"",
                                   rbac_ns.empty() ? std::string(" at the cluster scope")
                                                   : " in the namespace \"" + rbac_ns + "\""),
                      {{"name", name}, {"group", group}, {"kind", plural}})});
    }
  }
  const std::string key = ObjectKeyFor(group, plural, ns, name);
  json details = {{"name", name}, {"group", group}, {"kind", plural}};
  auto not_found = [&]() {
    return Response{404, StatusBody(404, "NotFound",
                                    absl::StrCat(plural, group.empty() ? "" : "." + group, " \"",
                                                 name, "\" not found"),
                                    details)};
  };

  if (watch) {
    // A watch: served as a stream by Dispatch, outside the lock.
    return finish(WatchLocked(
        group, version,
        ns.empty() ? absl::StrCat(group, "/", plural, "/") : ObjectKeyFor(group, plural, ns, ""),
        query));
  }
  if (method == "GET" && name.empty()) {
    json items = json::array();
    std::string prefix = ObjectKeyFor(group, plural, ns, "");
    if (ns.empty()) prefix = absl::StrCat(group, "/", plural, "/");
    // Pages as the API's chunking does: `limit` items at most, and a `continue` token (here
    // the last key sent) that the next request passes to go on after it.
    size_t limit = 0;
    if (query.count("limit") > 0 && !absl::SimpleAtoi(query["limit"], &limit)) {
      return finish({400, StatusBody(400, "BadRequest", "limit is not a number")});
    }
    const std::string after = query.count("continue") > 0 ? query["continue"] : "";
    std::string last, more;
    for (auto it = after.empty() ? objects_.lower_bound(prefix) : objects_.upper_bound(after);
         it != objects_.end() && absl::StartsWith(it->first, prefix); ++it) {
      if (!Matches(it->second, query.count("labelSelector") ? query["labelSelector"] : "")) {
        continue;
      }
      if (limit > 0 && items.size() == limit) {
        more = last;
        break;
      }
      json item = it->second;
      item["apiVersion"] = ApiVersion(group, version);
      items.push_back(item);
      last = it->first;
    }
    json metadata = {{"resourceVersion", std::to_string(resource_version_)}};
    if (!more.empty()) metadata["continue"] = more;
    return finish({200,
                   {{"kind", resource->kind + "List"},
                    {"apiVersion", ApiVersion(group, version)},
                    {"metadata", metadata},
                    {"items", items}}});
  }
  if (method == "POST" && subresource.empty() && name.empty()) {
    absl::StatusOr<json> parsed = YamlToJson(body);
    if (!parsed.ok() || !parsed->is_object()) {
      return finish({400, StatusBody(400, "BadRequest", "the body is not a JSON object")});
    }
    if (!ns.empty() && objects_.count(ObjectKeyFor("", "namespaces", "", ns)) == 0) {
      return finish(
          {404, StatusBody(404, "NotFound", absl::StrCat("namespaces \"", ns, "\" not found"),
                           {{"name", ns}, {"kind", "namespaces"}})});
    }
    return finish(CreateLocked(*resource, version, ns, query, *parsed));
  }
  if (name.empty()) return finish({405, StatusBody(405, "MethodNotAllowed", "method not allowed")});
  auto it = objects_.find(key);
  if (method == "GET") {
    if (it == objects_.end()) return finish(not_found());
    json object = it->second;
    object["apiVersion"] = ApiVersion(group, version);
    return finish({200, object});
  }
  if (method == "DELETE") {
    if (it == objects_.end()) return finish(not_found());
    json options = json::parse(body.empty() ? "{}" : body, nullptr, false);
    if (options.is_object() && options.contains("preconditions") &&
        options["preconditions"].contains("uid")) {
      std::string want = options["preconditions"]["uid"];
      if (!want.empty() && want != it->second["metadata"].value("uid", "")) {
        return finish(
            {409, StatusBody(409, "Conflict",
                             absl::StrCat(
                                 "Precondition failed: UID in precondition: ", want,
                                 ", UID in object meta: ", it->second["metadata"].value("uid", "")),
                             details)});
      }
    }
    json& meta = it->second["metadata"];
    if (meta.contains("finalizers") && meta["finalizers"].is_array() &&
        !meta["finalizers"].empty()) {
      // As the API does: the object stays, marked, until its finalizers are removed.
      if (!meta.contains("deletionTimestamp")) {
        json before = it->second;
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z";
        meta["deletionGracePeriodSeconds"] = 0;
        meta["resourceVersion"] = std::to_string(++resource_version_);
        ChangedLocked(key, std::move(before), it->second);
      }
      json object = it->second;
      object["apiVersion"] = ApiVersion(group, version);
      return finish({200, object});
    }
    json gone = it->second;
    objects_.erase(it);
    ++resource_version_;
    ChangedLocked(key, std::move(gone), nullptr);
    if (group.empty() && plural == "namespaces") {
      // The namespace controller removes everything inside; here it happens at once.
      for (auto o = objects_.begin(); o != objects_.end();) {
        std::vector<std::string> k = absl::StrSplit(o->first, '/');
        if (k.size() >= 4 && k[k.size() - 2] == name) {
          ChangedLocked(o->first, o->second, nullptr);
          o = objects_.erase(o);
        } else {
          ++o;
        }
      }
    }
    return finish(
        {200,
         {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Success"}, {"details", details}}});
  }
  if (method == "PATCH" && subresource == "status") {
    if (it == objects_.end()) return finish(not_found());
    json patch = json::parse(body, nullptr, false);
    if (!patch.is_object()) return finish({400, StatusBody(400, "BadRequest", "body is not JSON")});
    json before = it->second;
    if (patch.contains("status")) MergeInto(it->second["status"], patch["status"]);
    it->second["metadata"]["resourceVersion"] = std::to_string(++resource_version_);
    ChangedLocked(key, std::move(before), it->second);
    return finish({200, it->second});
  }
  if (method == "PATCH" && subresource.empty() &&
      (absl::StartsWith(content_type, "application/json-patch+json") ||
       absl::StartsWith(content_type, "application/merge-patch+json") ||
       absl::StartsWith(content_type, "application/strategic-merge-patch+json"))) {
    if (it == objects_.end()) return finish(not_found());
    Response patched = PatchLocked(*resource, version, key, query, content_type, body);
    ReapLocked(key);
    return finish(std::move(patched));
  }
  if (method == "PATCH" && subresource.empty()) {
    if (!absl::StartsWith(content_type, "application/apply-patch+yaml")) {
      return finish({415, StatusBody(415, "UnsupportedMediaType",
                                     absl::StrCat("the body of the request was in an unknown "
                                                  "format - accepted media types include: "
                                                  "application/json-patch+json, "
                                                  "application/merge-patch+json, "
                                                  "application/apply-patch+yaml; got ",
                                                  content_type))});
    }
    absl::StatusOr<json> parsed = YamlToJson(body);
    if (!parsed.ok() || !parsed->is_object()) {
      return finish(
          {400, StatusBody(400, "BadRequest",
                           "error decoding YAML: " + std::string(parsed.status().message()))});
    }
    if (!ns.empty() && objects_.count(ObjectKeyFor("", "namespaces", "", ns)) == 0) {
      return finish(
          {404, StatusBody(404, "NotFound", absl::StrCat("namespaces \"", ns, "\" not found"),
                           {{"name", ns}, {"kind", "namespaces"}})});
    }
    Response applied = ApplyLocked(*resource, version, ns, name, query, *parsed);
    ReapLocked(key);
    return finish(std::move(applied));
  }
  return finish({405, StatusBody(405, "MethodNotAllowed", "method not allowed")});
}

FakeApiServer::Response FakeApiServer::ApplyLocked(const Resource& resource,
                                                   const std::string& version,
                                                   const std::string& ns, const std::string& name,
                                                   const std::map<std::string, std::string>& query,
                                                   const json& body) {
  auto q = [&](const char* k) {
    auto it = query.find(k);
    return it == query.end() ? std::string() : it->second;
  };
  const std::string manager = q("fieldManager");
  const std::string display =
      resource.group.empty() ? resource.kind : resource.kind + "." + resource.group;
  if (manager.empty()) {
    return {400, StatusBody(400, "BadRequest",
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required "
                            "value: is required for apply patch")};
  }
  if (body.value("kind", "") != resource.kind ||
      body.value("apiVersion", "") != ApiVersion(resource.group, version)) {
    return {400,
            StatusBody(
                400, "BadRequest",
                absl::StrCat("the API version in the data (", body.value("apiVersion", ""),
                             ") and kind (", body.value("kind", ""), ") do not match the request (",
                             ApiVersion(resource.group, version), ", ", resource.kind, ")"))};
  }
  json metadata = body.contains("metadata") ? body["metadata"] : json::object();
  if (metadata.value("name", "") != name) {
    return {400, StatusBody(400, "BadRequest",
                            absl::StrCat("the name of the object (", metadata.value("name", ""),
                                         ") does not match the name on the URL (", name, ")"))};
  }
  if (!ValidName(name)) {
    return {422,
            StatusBody(
                422, "Invalid",
                absl::StrCat(display, " \"", name,
                             "\" is invalid: metadata.name: Invalid value: \"", name,
                             "\": a lowercase RFC 1123 subdomain must consist of lower case "
                             "alphanumeric characters, '-' or '.', and must start and end with an "
                             "alphanumeric character"),
                {{"name", name}, {"kind", resource.kind}})};
  }
  if (metadata.contains("labels") && metadata["labels"].is_object()) {
    for (auto it = metadata["labels"].begin(); it != metadata["labels"].end(); ++it) {
      if (!it.value().is_string() || it.value().get<std::string>().size() > 63) {
        return {422, StatusBody(422, "Invalid",
                                absl::StrCat(display, " \"", name,
                                             "\" is invalid: metadata.labels: Invalid value: \"",
                                             it.value().dump(),
                                             "\": must be no more than 63 characters"))};
      }
    }
  }
  if (resource.group == "apps" && body.contains("spec") && body["spec"].contains("replicas") &&
      body["spec"]["replicas"].is_number() && body["spec"]["replicas"].get<int64_t>() < 0) {
    return {422, StatusBody(422, "Invalid",
                            absl::StrCat(display, " \"", name,
                                         "\" is invalid: spec.replicas: Invalid value: ",
                                         body["spec"]["replicas"].dump(),
                                         ": must be greater than or equal to 0"))};
  }
  const std::string key = ObjectKeyFor(resource.group, resource.plural, ns, name);
  json applied = body;
  applied.erase("status");
  bool force = q("force") == "true";
  auto it = objects_.find(key);
  bool create = it == objects_.end();
  json object = create ? json::object() : it->second;
  const json before = object;
  // Ownership, as managedFields records it. A field another manager owns with another
  // value is a conflict; with force it changes hands. The same value is owned by both.
  json managed = ManagedFieldsOf(before);
  if (!create && managed.empty()) {
    // An object from before managedFields (or stripped of them): its fields are owned by
    // "before-first-apply", as the API assigns them at the first apply.
    json content = WithoutVolatile(before);
    content["metadata"].erase("uid");
    content["metadata"].erase("creationTimestamp");
    managed.push_back({{"manager", "before-first-apply"},
                       {"operation", "Update"},
                       {"apiVersion", ApiVersion(resource.group, version)},
                       {"time", Now()},
                       {"fieldsType", "FieldsV1"},
                       {"fieldsV1", FieldsV1(content)}});
  }
  json canonical = applied;
  CanonicalQuantities(canonical);
  const std::vector<FieldPath> leaves = LeavesOf(applied);
  for (json& entry : managed) {
    if (!entry.is_object() || !entry.contains("fieldsV1") || IsEntry(entry, manager, "Apply") ||
        entry.contains("subresource")) {
      continue;
    }
    for (const FieldPath& path : leaves) {
      if (!Owns(entry["fieldsV1"], path)) continue;
      const json* live = ValueAt(before, path);
      const json* mine = ValueAt(canonical, path);
      if (live != nullptr && mine != nullptr && *live == *mine) continue;
      if (!force) {
        return {409, StatusBody(409, "Conflict",
                                absl::StrCat("Apply failed with 1 conflict: conflict with \"",
                                             entry.value("manager", ""), "\": ", PathText(path)))};
      }
      Disown(&entry["fieldsV1"], path);
    }
  }
  const json owned = FieldsV1(applied);
  json previous = json::object();
  for (const json& entry : managed) {
    if (IsEntry(entry, manager, "Apply")) previous = entry.value("fieldsV1", json::object());
  }
  // Fields the manager stops applying go, unless another manager owns them too.
  for (const FieldPath& path : OwnedFields(previous)) {
    if (Owns(owned, path)) continue;
    bool kept = false;
    for (const json& entry : managed) {
      if (!IsEntry(entry, manager, "Apply") && entry.contains("fieldsV1") &&
          Owns(entry["fieldsV1"], path)) {
        kept = true;
      }
    }
    if (!kept) EraseAt(&object, path);
  }
  MergeInto(object, applied);
  CanonicalQuantities(object);
  // Fields the real API refuses to change once the object exists, as it words it.
  if (!create) {
    std::vector<const char*> immutable;
    if (resource.group == "apps" &&
        (resource.kind == "Deployment" || resource.kind == "ReplicaSet" ||
         resource.kind == "DaemonSet" || resource.kind == "StatefulSet")) {
      immutable = {"selector"};
    } else if (resource.group == "batch" && resource.kind == "Job") {
      immutable = {"selector", "template"};
    }
    const json none;
    for (const char* field : immutable) {
      const json& was = before.contains("spec") ? before["spec"].value(field, none) : none;
      const json& now = object.contains("spec") ? object["spec"].value(field, none) : none;
      if (was != now) {
        return {422,
                StatusBody(422, "Invalid",
                           absl::StrCat(display, " \"", name, "\" is invalid: spec.", field,
                                        ": Invalid value: ", now.dump(), ": field is immutable"))};
      }
    }
  }
  object["apiVersion"] = ApiVersion(resource.group, version);
  json& meta = object["metadata"];
  if (!ns.empty()) meta["namespace"] = ns;
  if (create) {
    meta["uid"] = absl::StrCat("uid-", ++uid_);
    meta["creationTimestamp"] = Now();
    meta["generation"] = 1;
    if (resource.group.empty() && resource.kind == "Namespace")
      object["status"] = {{"phase", "Active"}};
  } else {
    for (const char* f : {"uid", "creationTimestamp", "generation", "resourceVersion"}) {
      if (before["metadata"].contains(f)) meta[f] = before["metadata"][f];
    }
    if (before.contains("status")) object["status"] = before["status"];
    if (Spec(object) != Spec(before)) meta["generation"] = meta.value("generation", 1) + 1;
  }
  json entries = json::array();
  entries.push_back({{"manager", manager},
                     {"operation", "Apply"},
                     {"apiVersion", ApiVersion(resource.group, version)},
                     {"time", Now()},
                     {"fieldsType", "FieldsV1"},
                     {"fieldsV1", owned}});
  for (json& entry : managed) {
    if (!IsEntry(entry, manager, "Apply")) entries.push_back(std::move(entry));
  }
  DropEmptyEntries(&entries);
  bool changed = create || WithoutVolatile(object) != WithoutVolatile(before) ||
                 Ownership(entries) != Ownership(ManagedFieldsOf(before));
  if (changed) {
    meta["resourceVersion"] = std::to_string(resource_version_ + 1);
    meta["managedFields"] = entries;
  }
  if (q("dryRun") == "All") return {create ? 201 : 200, object};
  if (changed) {
    ++resource_version_;
    AfterWriteLocked(resource, object);
    ChangedLocked(key, objects_.count(key) > 0 ? objects_[key] : json(), object);
    objects_[key] = object;
  }
  return {create ? 201 : 200, object};
}

FakeApiServer::Response FakeApiServer::PatchLocked(const Resource& resource,
                                                   const std::string& version,
                                                   const std::string& key,
                                                   const std::map<std::string, std::string>& query,
                                                   const std::string& content_type,
                                                   const std::string& body) {
  auto q = [&](const char* k) {
    auto it = query.find(k);
    return it == query.end() ? std::string() : it->second;
  };
  const json before = objects_[key];
  json patch = json::parse(body, nullptr, false);
  if (patch.is_discarded()) return {400, StatusBody(400, "BadRequest", "the patch is not JSON")};
  json after = before;
  try {
    if (absl::StartsWith(content_type, "application/json-patch+json")) {
      if (!patch.is_array()) {
        return {400, StatusBody(400, "BadRequest", "a JSON patch must be a list of operations")};
      }
      after = before.patch(patch);
    } else {
      // A strategic merge patch is taken as a JSON merge patch: lists are replaced whole.
      after.merge_patch(patch);
    }
  } catch (const json::exception& e) {
    return {422,
            StatusBody(422, "Invalid", absl::StrCat("the patch cannot be applied: ", e.what()))};
  }
  if (!after.is_object() || !after.contains("metadata") || !after["metadata"].is_object()) {
    return {422, StatusBody(422, "Invalid", "the patch removes the object's metadata")};
  }
  json& meta = after["metadata"];
  for (const char* field : {"name", "namespace", "uid", "creationTimestamp"}) {
    if (meta.value(field, json()) != before["metadata"].value(field, json())) {
      return {422, StatusBody(422, "Invalid",
                              absl::StrCat("metadata.", field, ": the patch may not change it"))};
    }
  }
  for (const char* field : {"resourceVersion", "generation"}) {
    if (before["metadata"].contains(field)) meta[field] = before["metadata"][field];
  }
  if (before.contains("status")) {
    after["status"] = before["status"];
  } else {
    after.erase("status");
  }
  CanonicalQuantities(after);
  const json sent = ManagedFieldsOf(after);
  json managed = ManagedFieldsOf(before);
  if (!sent.empty() && Ownership(sent) != Ownership(managed)) {
    // managedFields written by the request are taken as they are; [{}] strips them (an
    // empty list, or none, leaves them as they were).
    managed = sent;
    DropEmptyEntries(&managed);
  } else {
    json content_before = WithoutVolatile(before), content_after = WithoutVolatile(after);
    for (json* content : {&content_before, &content_after}) {
      (*content)["metadata"].erase("uid");
      (*content)["metadata"].erase("creationTimestamp");
    }
    const std::string manager = q("fieldManager").empty() ? "unknown" : q("fieldManager");
    RecordUpdate(content_before, content_after, manager, ApiVersion(resource.group, version), Now(),
                 &managed);
  }
  if (managed.empty()) {
    meta.erase("managedFields");
  } else {
    meta["managedFields"] = managed;
  }
  const bool changed = WithoutVolatile(after) != WithoutVolatile(before) ||
                       Ownership(managed) != Ownership(ManagedFieldsOf(before));
  if (changed) {
    meta["resourceVersion"] = std::to_string(resource_version_ + 1);
    if (Spec(after) != Spec(before)) meta["generation"] = meta.value("generation", 1) + 1;
  }
  if (q("dryRun") == "All" || !changed) return {200, changed ? after : before};
  ++resource_version_;
  AfterWriteLocked(resource, after);
  ChangedLocked(key, objects_[key], after);
  objects_[key] = after;
  return {200, after};
}

FakeApiServer::Response FakeApiServer::CreateLocked(const Resource& resource,
                                                    const std::string& version,
                                                    const std::string& ns,
                                                    const std::map<std::string, std::string>& query,
                                                    json object) {
  const std::string display =
      resource.group.empty() ? resource.kind : resource.kind + "." + resource.group;
  if (object.value("kind", "") != resource.kind ||
      object.value("apiVersion", "") != ApiVersion(resource.group, version)) {
    return {400,
            StatusBody(400, "BadRequest",
                       absl::StrCat(
                           "the API version in the data (", object.value("apiVersion", ""),
                           ") and kind (", object.value("kind", ""), ") do not match the request (",
                           ApiVersion(resource.group, version), ", ", resource.kind, ")"))};
  }
  json& meta = object["metadata"];
  if (!meta.is_object()) meta = json::object();
  std::string name = meta.value("name", "");
  const std::string generate_name = meta.value("generateName", "");
  if (name.empty() && generate_name.empty()) {
    return {422, StatusBody(422, "Invalid",
                            absl::StrCat(display,
                                         " \"\" is invalid: metadata.name: Required value: name "
                                         "or generateName is required"))};
  }
  if (name.empty()) {
    // The API's own alphabet for generated names: no vowels, no look-alikes.
    static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    name = generate_name.substr(0, 58);
    // Distinct for the first 27^5 objects (the real API draws at random).
    for (int64_t i = 0, n = uid_ * 7919 + 104729; i < 5; ++i, n /= 27) name += kAlphabet[n % 27];
    meta["name"] = name;
  }
  if (!ValidName(name)) {
    return {422, StatusBody(422, "Invalid",
                            absl::StrCat(display, " \"", name,
                                         "\" is invalid: metadata.name: Invalid value: \"", name,
                                         "\": a lowercase RFC 1123 subdomain must consist of lower "
                                         "case alphanumeric characters, '-' or '.'"),
                            {{"name", name}, {"kind", resource.kind}})};
  }
  const std::string key = ObjectKeyFor(resource.group, resource.plural, ns, name);
  if (objects_.count(key) > 0) {
    return {
        409,
        StatusBody(409, "AlreadyExists",
                   absl::StrCat(resource.plural, resource.group.empty() ? "" : "." + resource.group,
                                " \"", name, "\" already exists"),
                   {{"name", name}, {"group", resource.group}, {"kind", resource.plural}})};
  }
  object.erase("status");
  CanonicalQuantities(object);
  const json owned = FieldsV1(object);
  object["apiVersion"] = ApiVersion(resource.group, version);
  if (!ns.empty()) meta["namespace"] = ns;
  meta["uid"] = absl::StrCat("uid-", ++uid_);
  meta["creationTimestamp"] = Now();
  meta["generation"] = 1;
  meta["resourceVersion"] = std::to_string(resource_version_ + 1);
  auto manager = query.find("fieldManager");
  meta["managedFields"] =
      json::array({{{"manager", manager == query.end() ? std::string("unknown") : manager->second},
                    {"operation", "Update"},
                    {"apiVersion", ApiVersion(resource.group, version)},
                    {"time", Now()},
                    {"fieldsType", "FieldsV1"},
                    {"fieldsV1", owned}}});
  if (resource.group.empty() && resource.kind == "Namespace") {
    object["status"] = {{"phase", "Active"}};
  }
  auto dry_run = query.find("dryRun");
  if (dry_run != query.end() && dry_run->second == "All") return {201, object};
  ++resource_version_;
  AfterWriteLocked(resource, object);
  ChangedLocked(key, nullptr, object);
  objects_[key] = object;
  return {201, object};
}

void FakeApiServer::AfterWriteLocked(const Resource& resource, json& object) {
  if (resource.group == "apiextensions.k8s.io" && resource.kind == "CustomResourceDefinition") {
    object["status"]["conditions"] =
        json::array({{{"type", "NamesAccepted"}, {"status", "True"}, {"reason", "NoConflicts"}},
                     {{"type", "Established"}, {"status", "False"}, {"reason", "Installing"}}});
    pending_crds_[object["metadata"].value("name", "")] =
        absl::Now() + options_.crd_establish_delay;
    return;
  }
  if (!options_.simulate_controllers) return;
  int64_t generation = object["metadata"].value("generation", 1);
  int64_t replicas = object.contains("spec") ? object["spec"].value("replicas", 1) : 1;
  json& status = object["status"];
  if (resource.group == "apps" &&
      (resource.kind == "Deployment" || resource.kind == "ReplicaSet")) {
    status = {{"observedGeneration", generation},
              {"replicas", replicas},
              {"updatedReplicas", replicas},
              {"readyReplicas", replicas},
              {"availableReplicas", replicas}};
  } else if (resource.group == "apps" && resource.kind == "StatefulSet") {
    status = {{"observedGeneration", generation}, {"replicas", replicas},
              {"readyReplicas", replicas},        {"updatedReplicas", replicas},
              {"currentRevision", "r1"},          {"updateRevision", "r1"}};
  } else if (resource.group == "apps" && resource.kind == "DaemonSet") {
    status = {{"observedGeneration", generation},
              {"desiredNumberScheduled", 1},
              {"updatedNumberScheduled", 1},
              {"numberAvailable", 1}};
  } else if (resource.group == "batch" && resource.kind == "Job") {
    status = {{"succeeded", 1},
              {"conditions", json::array({{{"type", "Complete"}, {"status", "True"}}})}};
  }
}

void FakeApiServer::EstablishCrdsLocked() {
  absl::Time now = absl::Now();
  for (auto it = pending_crds_.begin(); it != pending_crds_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    auto crd = objects_.find(
        ObjectKeyFor("apiextensions.k8s.io", "customresourcedefinitions", "", it->first));
    if (crd != objects_.end()) {
      json& object = crd->second;
      object["status"]["conditions"][1]["status"] = "True";
      object["status"]["conditions"][1]["reason"] = "InitialNamesAccepted";
      const json& spec = object["spec"];
      Resource resource;
      resource.group = spec.value("group", "");
      resource.kind = spec["names"].value("kind", "");
      resource.plural = spec["names"].value("plural", "");
      resource.namespaced = spec.value("scope", "Namespaced") == "Namespaced";
      for (const json& v : spec["versions"]) {
        if (v.value("served", true)) resource.versions.push_back(v.value("name", ""));
      }
      resources_.erase(std::remove_if(resources_.begin(), resources_.end(),
                                      [&](const Resource& r) {
                                        return r.group == resource.group &&
                                               r.plural == resource.plural;
                                      }),
                       resources_.end());
      resources_.push_back(resource);
    }
    it = pending_crds_.erase(it);
  }
}

const FakeApiServer::Resource* FakeApiServer::FindResourceLocked(const std::string& group,
                                                                 const std::string& version,
                                                                 const std::string& plural) const {
  for (const Resource& r : resources_) {
    if (r.group != group || r.plural != plural) continue;
    if (std::find(r.versions.begin(), r.versions.end(), version) != r.versions.end()) return &r;
  }
  return nullptr;
}

FakeApiServer::Response FakeApiServer::DiscoveryLocked(const std::vector<std::string>& parts) {
  std::map<std::string, std::vector<std::string>> groups;  // group -> versions
  for (const Resource& r : resources_) {
    for (const std::string& v : r.versions) {
      auto& versions = groups[r.group];
      if (std::find(versions.begin(), versions.end(), v) == versions.end()) versions.push_back(v);
    }
  }
  auto group_json = [&](const std::string& group) {
    json versions = json::array();
    for (const std::string& v : groups[group]) {
      versions.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
    }
    return json{{"name", group}, {"versions", versions}, {"preferredVersion", versions[0]}};
  };
  if (parts.size() == 1 && parts[0] == "api") {
    return {200, {{"kind", "APIVersions"}, {"versions", {"v1"}}}};
  }
  if (parts.size() == 1 && parts[0] == "apis") {
    json list = json::array();
    for (const auto& [group, versions] : groups) {
      if (!group.empty()) list.push_back(group_json(group));
    }
    return {200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", list}}};
  }
  if (parts.size() == 2 && parts[0] == "apis") {
    if (groups.count(parts[1]) == 0)
      return {404, StatusBody(404, "NotFound", "the server could not find the requested resource")};
    json g = group_json(parts[1]);
    g["kind"] = "APIGroup";
    g["apiVersion"] = "v1";
    return {200, g};
  }
  std::string group = parts[0] == "api" ? "" : parts[1];
  std::string version = parts[0] == "api" ? parts[1] : (parts.size() > 2 ? parts[2] : "");
  json resources = json::array();
  for (const Resource& r : resources_) {
    if (r.group != group) continue;
    if (std::find(r.versions.begin(), r.versions.end(), version) == r.versions.end()) continue;
    resources.push_back(
        {{"name", r.plural},
         {"singularName", ""},
         {"namespaced", r.namespaced},
         {"kind", r.kind},
         {"verbs", {"create", "delete", "get", "list", "patch", "update", "watch"}}});
    resources.push_back({{"name", r.plural + "/status"},
                         {"namespaced", r.namespaced},
                         {"kind", r.kind},
                         {"verbs", {"get", "patch", "update"}}});
  }
  if (resources.empty())
    return {404, StatusBody(404, "NotFound", "the server could not find the requested resource")};
  return {200,
          {{"kind", "APIResourceList"},
           {"apiVersion", "v1"},
           {"groupVersion", ApiVersion(group, version)},
           {"resources", resources}}};
}

void FakeApiServer::SetToken(std::string token) {
  MutexLock lock(&mu_);
  token_ = std::move(token);
}

void FakeApiServer::FailNext(int count, int code, int retry_after_seconds) {
  MutexLock lock(&mu_);
  fail_count_ = count;
  fail_code_ = code;
  fail_retry_after_ = retry_after_seconds;
  fail_content_type_.clear();
}

void FakeApiServer::FailNextOfType(const std::string& content_type, int count, int code) {
  MutexLock lock(&mu_);
  fail_count_ = count;
  fail_code_ = code;
  fail_retry_after_ = -1;
  fail_content_type_ = content_type;
}

void FakeApiServer::Forbid(const std::string& verb, const std::string& group,
                           const std::string& resource) {
  MutexLock lock(&mu_);
  forbidden_[absl::StrCat(verb, " ", group, "/", resource)] = true;
}

void FakeApiServer::AuthorizeAs(std::string user) {
  MutexLock lock(&mu_);
  authorize_as_ = std::move(user);
}

void FakeApiServer::Allow(const std::string& verb, const std::string& group,
                          const std::string& resource) {
  MutexLock lock(&mu_);
  forbidden_.erase(absl::StrCat(verb, " ", group, "/", resource));
}

bool FakeApiServer::SetStatus(const std::string& group, const std::string& resource,
                              const std::string& ns, const std::string& name, json status) {
  MutexLock lock(&mu_);
  auto it = objects_.find(ObjectKeyFor(group, resource, ns, name));
  if (it == objects_.end()) return false;
  json before = it->second;
  it->second["status"] = std::move(status);
  it->second["metadata"]["resourceVersion"] = std::to_string(++resource_version_);
  ChangedLocked(it->first, std::move(before), it->second);
  return true;
}

bool FakeApiServer::Mutate(const std::string& group, const std::string& resource,
                           const std::string& ns, const std::string& name,
                           const std::function<void(json&)>& change) {
  MutexLock lock(&mu_);
  auto it = objects_.find(ObjectKeyFor(group, resource, ns, name));
  if (it == objects_.end()) return false;
  json before = it->second;
  change(it->second);
  json& meta = it->second["metadata"];
  meta["resourceVersion"] = std::to_string(++resource_version_);
  if (Spec(it->second) != Spec(before)) meta["generation"] = meta.value("generation", 1) + 1;
  ChangedLocked(it->first, std::move(before), it->second);
  ReapLocked(it->first);
  return true;
}

FakeApiServer::Response FakeApiServer::WatchLocked(const std::string& group,
                                                   const std::string& version,
                                                   const std::string& prefix,
                                                   std::map<std::string, std::string>& query) {
  WatchRequest request;
  request.group = group;
  request.version = version;
  request.prefix = prefix;
  request.selector = query.count("labelSelector") > 0 ? query["labelSelector"] : "";
  const std::string from = query.count("resourceVersion") > 0 ? query["resourceVersion"] : "";
  if (!from.empty() && from != "0") {
    request.from_now = false;
    if (!absl::SimpleAtoi(from, &request.from)) {
      return {400, StatusBody(400, "BadRequest", "resourceVersion is not a number")};
    }
  }
  request.bookmarks =
      query.count("allowWatchBookmarks") > 0 && query["allowWatchBookmarks"] == "true";
  int timeout_seconds = 1800;
  if (query.count("timeoutSeconds") > 0 &&
      (!absl::SimpleAtoi(query["timeoutSeconds"], &timeout_seconds) || timeout_seconds < 0)) {
    return {400, StatusBody(400, "BadRequest", "timeoutSeconds is not a number")};
  }
  request.timeout = absl::Seconds(std::min(timeout_seconds, 1800));
  if (open_watches_ >= options_.max_watches) {
    return {429, StatusBody(429, "TooManyRequests", "too many watches open"), 1};
  }
  ++open_watches_;
  Response response{200, json()};
  response.watch = std::make_shared<const WatchRequest>(std::move(request));
  return response;
}

void FakeApiServer::ChangedLocked(const std::string& key, json before, json after) {
  changes_.push_back({resource_version_, key, std::move(before), std::move(after)});
  while (changes_.size() > options_.watch_history) {
    forgotten_through_ = changes_.front().version;
    changes_.pop_front();
  }
}

void FakeApiServer::CompactWatchHistory() {
  MutexLock lock(&mu_);
  forgotten_through_ = resource_version_;
  changes_.clear();
}

int FakeApiServer::OpenWatches() const {
  MutexLock lock(&mu_);
  return open_watches_;
}

void FakeApiServer::ServeWatch(mg_connection* conn, const WatchRequest& watch) {
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
      "Cache-Control: no-cache, private\r\n\r\n";
  if (mg_write(conn, head.data(), head.size()) <= 0) return;
  auto send = [conn](const std::string& lines) {
    if (lines.empty()) return true;
    std::string chunk = absl::StrCat(absl::Hex(lines.size()), "\r\n", lines, "\r\n");
    return mg_write(conn, chunk.data(), chunk.size()) > 0;
  };
  auto event = [&watch](const char* type, json object) {
    if (object.is_object()) object["apiVersion"] = ApiVersion(watch.group, watch.version);
    return json{{"type", type}, {"object", std::move(object)}}.dump() + "\n";
  };
  const absl::Time end = absl::Now() + watch.timeout;
  int64_t cursor = watch.from;
  std::string out;
  {
    MutexLock lock(&mu_);
    if (watch.from_now) {
      // The state now, as ADDED events, then what changes after it.
      for (auto it = objects_.lower_bound(watch.prefix);
           it != objects_.end() && absl::StartsWith(it->first, watch.prefix); ++it) {
        if (Matches(it->second, watch.selector)) out += event("ADDED", it->second);
      }
      cursor = resource_version_;
    }
  }
  if (!send(out)) return;
  absl::Time last_sent = absl::Now();
  while (true) {
    out.clear();
    bool expired = false;
    {
      MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || cursor < forgotten_through_ ||
               (!changes_.empty() && changes_.back().version > cursor);
      };
      mu_.AwaitWithTimeout(ready, std::min(end - absl::Now(), absl::Seconds(1)));
      if (stopping_) break;
      if (cursor < forgotten_through_) {
        // What it follows from is gone: 410 Expired, as an ERROR event, and the end.
        expired = true;
        out = json{{"type", "ERROR"},
                   {"object", StatusBody(410, "Expired",
                                         absl::StrCat("too old resource version: ", cursor, " (",
                                                      forgotten_through_ + 1, ")"))}}
                  .dump() +
              "\n";
      } else {
        auto first = std::upper_bound(
            changes_.begin(), changes_.end(), cursor,
            [](int64_t version, const Change& change) { return version < change.version; });
        for (auto it = first; it != changes_.end(); ++it) {
          cursor = it->version;
          if (!absl::StartsWith(it->key, watch.prefix)) continue;
          // An object entering or leaving the selection is ADDED or DELETED, as the API
          // sends them to a watch with a label selector.
          const bool was = it->before.is_object() && Matches(it->before, watch.selector);
          const bool is = it->after.is_object() && Matches(it->after, watch.selector);
          if (!was && is) {
            out += event("ADDED", it->after);
          } else if (was && is) {
            out += event("MODIFIED", it->after);
          } else if (was) {
            json gone = it->before;
            gone["metadata"]["resourceVersion"] = std::to_string(it->version);
            out += event("DELETED", std::move(gone));
          }
        }
        if (out.empty() && watch.bookmarks && absl::Now() - last_sent >= absl::Seconds(1)) {
          out = json{{"type", "BOOKMARK"},
                     {"object",
                      {{"apiVersion", ApiVersion(watch.group, watch.version)},
                       {"metadata", {{"resourceVersion", std::to_string(resource_version_)}}}}}}
                    .dump() +
                "\n";
          cursor = std::max(cursor, resource_version_);
        }
      }
    }
    if (!out.empty()) {
      if (!send(out)) return;
      last_sent = absl::Now();
    }
    if (expired || absl::Now() >= end) break;
  }
  mg_write(conn, "0\r\n\r\n", 5);
}

void FakeApiServer::ReapLocked(const std::string& key) {
  auto it = objects_.find(key);
  if (it == objects_.end()) return;
  const json& meta = it->second["metadata"];
  if (!meta.is_object() || !meta.contains("deletionTimestamp")) return;
  if (meta.contains("finalizers") && meta["finalizers"].is_array() && !meta["finalizers"].empty()) {
    return;
  }
  json gone = std::move(it->second);
  const std::string name = key;  // `key` may be the entry's own, erased next
  objects_.erase(it);            // its last finalizer removed: the deletion it waited for ends
  ++resource_version_;
  ChangedLocked(name, std::move(gone), nullptr);
}

bool FakeApiServer::Delete(const std::string& group, const std::string& resource,
                           const std::string& ns, const std::string& name) {
  MutexLock lock(&mu_);
  ++resource_version_;
  auto it = objects_.find(ObjectKeyFor(group, resource, ns, name));
  if (it == objects_.end()) return false;
  ChangedLocked(it->first, std::move(it->second), nullptr);
  objects_.erase(it);
  return true;
}

void FakeApiServer::Put(const std::string& group, const std::string& resource, json object) {
  MutexLock lock(&mu_);
  std::string ns = object["metadata"].value("namespace", "");
  std::string name = object["metadata"].value("name", "");
  object["metadata"]["uid"] = absl::StrCat("uid-", ++uid_);
  object["metadata"]["resourceVersion"] = std::to_string(++resource_version_);
  const std::string key = ObjectKeyFor(group, resource, ns, name);
  ChangedLocked(key, objects_.count(key) > 0 ? objects_[key] : json(), object);
  objects_[key] = std::move(object);
}

json FakeApiServer::Get(const std::string& group, const std::string& resource,
                        const std::string& ns, const std::string& name) const {
  MutexLock lock(&mu_);
  auto it = objects_.find(ObjectKeyFor(group, resource, ns, name));
  return it == objects_.end() ? json(nullptr) : it->second;
}

size_t FakeApiServer::ObjectCount() const {
  MutexLock lock(&mu_);
  return objects_.size();
}

std::vector<FakeApiServer::Request> FakeApiServer::Requests() const {
  MutexLock lock(&mu_);
  return requests_;
}

void FakeApiServer::ClearRequests() {
  MutexLock lock(&mu_);
  requests_.clear();
}

int FakeApiServer::CountRequests(const std::string& method) const {
  MutexLock lock(&mu_);
  int n = 0;
  for (const Request& r : requests_) n += r.method == method ? 1 : 0;
  return n;
}

}  // namespace gitfleet
