#include "agent/kube/drift_watch.h"

#include <functional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/kube/applier.h"
#include "common/backoff.h"
#include "common/logging.h"
#include "nlohmann/json.hpp"

namespace gitfleet {
namespace {

using json = nlohmann::json;

// The objects a bundle applies, and its hooks' runs (whose status alone counts: they are
// created and deleted on purpose).
std::string Selector() { return kBundleLabel; }

// The object's labels, or null.
const json* Labels(const json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
    return nullptr;
  }
  const json& meta = object["metadata"];
  return meta.contains("labels") && meta["labels"].is_object() ? &meta["labels"] : nullptr;
}

std::string Label(const json& object) {
  const json* labels = Labels(object);
  if (labels == nullptr || !labels->contains(kBundleLabel)) return "";
  const json& value = (*labels)[kBundleLabel];
  return value.is_string() ? value.get<std::string>() : "";
}

bool IsHookRun(const json& object) {
  const json* labels = Labels(object);
  return labels != nullptr && labels->contains(kHookLabel);
}

std::string NameOf(const json& object) {
  if (!object.contains("metadata") || !object["metadata"].is_object()) return "";
  const json& meta = object["metadata"];
  return absl::StrCat(meta.value("namespace", ""), "/", meta.value("name", ""));
}

std::string VersionOf(const json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
    return "";
  }
  const json& version = object["metadata"].value("resourceVersion", json());
  return version.is_string() ? version.get<std::string>() : "";
}

}  // namespace

uint64_t ObjectDigest(json object) {
  if (!object.is_object()) return 0;
  object.erase("status");
  object.erase("apiVersion");
  object.erase("kind");
  if (object.contains("metadata") && object["metadata"].is_object()) {
    json& meta = object["metadata"];
    meta.erase("resourceVersion");
    meta.erase("managedFields");
    meta.erase("generation");
  }
  return std::hash<std::string>{}(object.dump());
}

uint64_t StatusDigest(const json& object) {
  if (!object.is_object() || !object.contains("status")) return 0;
  return std::hash<std::string>{}(object["status"].dump());
}

DriftWatcher::DriftWatcher(KubeClient* client, RestMapper* mapper, Options options)
    : client_(client), mapper_(mapper), options_(std::move(options)) {}

DriftWatcher::~DriftWatcher() {
  std::map<std::string, std::unique_ptr<Worker>> workers;
  {
    MutexLock lock(&mu_);
    workers.swap(workers_);
  }
  for (auto& [path, worker] : workers) worker->stop = true;
  for (auto& [path, worker] : workers) worker->thread.join();
}

void DriftWatcher::Watch(const Kinds& kinds) {
  {
    MutexLock lock(&mu_);
    if (kinds == kinds_) return;
    kinds_ = kinds;
  }
  // Kinds are looked up outside the lock: discovery may ask the API server.
  std::map<std::string, Target> targets;
  std::map<Kind, std::string> collections;
  int unserved = 0;
  for (const auto& [kind, namespaces] : kinds) {
    auto [group, version] = SplitApiVersion(kind.first);
    absl::StatusOr<ApiResource> resource = mapper_->Find(group, version, kind.second);
    if (!resource.ok()) {
      ++unserved;
      continue;
    }
    ApiResource across = *resource;
    across.namespaced = false;  // its collection across every namespace
    const std::string collection = across.Path("", "");
    collections[kind] = collection;
    Target& target = targets[collection];
    target.resource = *resource;
    if (!resource->namespaced) continue;
    for (const std::string& ns : namespaces) {
      target.namespaces.insert(ns.empty() ? options_.default_namespace : ns);
    }
  }
  std::vector<std::unique_ptr<Worker>> stopped;
  {
    MutexLock lock(&mu_);
    unserved_ = unserved;
    next_lookup_ = unserved > 0 ? absl::Now() + options_.lookup_retry : absl::InfiniteFuture();
    targets_ = std::move(targets);
    collections_ = std::move(collections);
    stopped = ArrangeLocked();
  }
  Join(stopped);
}

std::vector<std::unique_ptr<DriftWatcher::Worker>> DriftWatcher::ArrangeLocked() {
  arrange_ = false;
  // What to watch: each kind across namespaces first, then the namespaces of those it may
  // not watch so, within max_watches in all.
  struct Want {
    std::string collection;
    std::string ns;
    bool namespaced;
  };
  std::map<std::string, Want> want;  // by path
  int over_limit = 0;
  for (const auto& [collection, target] : targets_) {
    if (want.size() >= options_.max_watches) {
      ++over_limit;
      continue;
    }
    want[collection] = Want{collection, "", target.resource.namespaced};
  }
  for (const auto& [collection, target] : targets_) {
    auto across = workers_.find(collection);
    if (want.count(collection) == 0 || across == workers_.end() || !across->second->forbidden) {
      continue;
    }
    for (const std::string& ns : target.namespaces) {
      if (want.size() >= options_.max_watches) {
        ++over_limit;
        continue;
      }
      want[target.resource.Path(ns, "")] = Want{collection, ns, true};
    }
  }
  std::vector<std::unique_ptr<Worker>> stopped;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (want.count(it->first) == 0) {
      it->second->stop = true;
      stopped.push_back(std::move(it->second));
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [path, what] : want) {
    if (workers_.count(path) > 0) continue;
    auto worker = std::make_unique<Worker>();
    worker->path = path;
    worker->collection = what.collection;
    worker->ns = what.ns;
    worker->namespaced = what.namespaced;
    Worker* raw = worker.get();
    workers_[path] = std::move(worker);
    raw->thread = std::thread([this, raw] { Run(raw); });
  }
  if (over_limit > 0 && over_limit != over_limit_) {
    GF_LOG(WARNING) << "drift watch: " << over_limit << " kinds or namespaces past the "
                    << options_.max_watches
                    << " watches at once (--max-drift-watches) are checked for drift on the "
                       "periodic checks alone";
  }
  over_limit_ = over_limit;
  return stopped;
}

void DriftWatcher::Join(std::vector<std::unique_ptr<Worker>>& stopped) {
  for (auto& worker : stopped) worker->thread.join();
}

void DriftWatcher::Rearrange(Worker* worker) {
  // Only a namespaced kind's watch across namespaces has namespaces to fall back to.
  if (!worker->ns.empty() || !worker->namespaced) return;
  {
    MutexLock lock(&mu_);
    arrange_ = true;
  }
  if (options_.on_change) options_.on_change();  // the next TakeChanged arranges
}

ChangeWatch::Changed DriftWatcher::TakeChanged() {
  Kinds retry;
  std::vector<std::unique_ptr<Worker>> stopped;
  {
    MutexLock lock(&mu_);
    if (absl::Now() >= next_lookup_) {
      retry = kinds_;
      kinds_.clear();  // Watch looks them all up again
    } else if (arrange_) {
      stopped = ArrangeLocked();
    }
  }
  Join(stopped);
  if (!retry.empty()) Watch(retry);
  MutexLock lock(&mu_);
  ReleaseHeldLocked();
  ChangeWatch::Changed changed;
  std::swap(changed, changed_);
  return changed;
}

bool DriftWatcher::Watching(const Kind& kind, const std::string& ns) const {
  MutexLock lock(&mu_);
  auto collection = collections_.find(kind);
  if (collection == collections_.end()) return false;
  auto across = workers_.find(collection->second);
  if (across == workers_.end()) return false;
  if (across->second->state == State::kWatching) return true;
  auto target = targets_.find(collection->second);
  if (!across->second->forbidden || target == targets_.end() ||
      !target->second.resource.namespaced) {
    return false;
  }
  auto one =
      workers_.find(target->second.resource.Path(ns.empty() ? options_.default_namespace : ns, ""));
  return one != workers_.end() && one->second->state == State::kWatching;
}

bool DriftWatcher::Forbidden(const Kind& kind, const std::string& ns) const {
  MutexLock lock(&mu_);
  auto collection = collections_.find(kind);
  if (collection == collections_.end()) return false;
  auto across = workers_.find(collection->second);
  auto target = targets_.find(collection->second);
  if (across == workers_.end() || target == targets_.end()) return false;
  // `forbidden` holds from a 403 to the next good list, through each retry's list.
  if (!across->second->forbidden) return false;
  if (!target->second.resource.namespaced) return true;
  auto one =
      workers_.find(target->second.resource.Path(ns.empty() ? options_.default_namespace : ns, ""));
  return one != workers_.end() && one->second->forbidden;
}

DriftWatcher::Counts DriftWatcher::counts() const {
  MutexLock lock(&mu_);
  Counts counts;
  std::set<std::string> by_namespace;  // collections with a namespace's watch
  for (const auto& [path, worker] : workers_) {
    if (!worker->ns.empty()) by_namespace.insert(worker->collection);
  }
  for (const auto& [path, worker] : workers_) {
    if (worker->ns.empty() && by_namespace.count(worker->collection) > 0) continue;
    switch (worker->state.load()) {
      case State::kWatching:
        ++counts.watching;
        break;
      case State::kStarting:
        ++counts.starting;
        break;
      case State::kForbidden:
        ++counts.forbidden;
        break;
    }
  }
  counts.unwatched = over_limit_ + unserved_;
  counts.by_namespace = static_cast<int>(by_namespace.size());
  return counts;
}

size_t DriftWatcher::threads() const {
  MutexLock lock(&mu_);
  return workers_.size();
}

void DriftWatcher::Written(const std::string& collection, const std::string& name,
                           const std::string& version) {
  if (version.empty()) return;
  const std::string key = absl::StrCat(collection, "\n", name);
  MutexLock lock(&mu_);
  if (workers_.count(collection) == 0) return;  // not watched: nothing to tell apart
  // Its event came first and waits: it was this write.
  if (auto held = held_.find(key); held != held_.end() && held->second.version == version) {
    held_.erase(held);
    return;
  }
  if (written_.size() >= kMaxWritten) written_.clear();  // bounded; forgetting costs a check
  written_[key] = version;
}

void DriftWatcher::ContentChanged(const std::string& collection, const std::string& name,
                                  const std::string& version, std::vector<std::string> bundles) {
  const std::string key = absl::StrCat(collection, "\n", name);
  {
    MutexLock lock(&mu_);
    if (auto it = written_.find(key); it != written_.end() && it->second == version) {
      written_.erase(it);  // gitfleet's own apply: nothing drifted
      return;
    }
    // Perhaps an apply whose answer is still on its way (a watch's event often comes
    // first): it waits that long before it counts.
    Held& held = held_[key];
    held.version = version;
    held.bundles.insert(held.bundles.end(), bundles.begin(), bundles.end());
    held.due = absl::Now() + options_.own_write_grace;
  }
  if (options_.on_change) options_.on_change();
}

void DriftWatcher::ReleaseHeldLocked() {
  const absl::Time now = absl::Now();
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.due > now) {
      ++it;
      continue;
    }
    for (const std::string& bundle : it->second.bundles) {
      if (!bundle.empty()) changed_.content.insert(bundle);
    }
    it = held_.erase(it);
  }
}

void DriftWatcher::Note(const std::string& bundle, bool status) {
  if (bundle.empty()) return;
  bool added;
  {
    MutexLock lock(&mu_);
    added = (status ? changed_.status : changed_.content).insert(bundle).second;
  }
  if (added && options_.on_change) options_.on_change();
}

bool DriftWatcher::Sleep(Worker* worker, absl::Duration duration) {
  const absl::Time end = absl::Now() + duration;
  while (!worker->stop) {
    absl::Duration left = end - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    absl::SleepFor(std::min(left, absl::Milliseconds(100)));
  }
  return false;
}

absl::Status DriftWatcher::List(Worker* worker, std::map<std::string, Seen>* seen,
                                std::string* version) {
  seen->clear();
  std::string next;
  constexpr int kMaxPages = 1000;  // 500,000 objects of one kind
  for (int page = 0; page < kMaxPages && !worker->stop; ++page) {
    std::string path = absl::StrCat(worker->path, "?labelSelector=", Selector(), "&limit=500");
    if (!next.empty()) absl::StrAppend(&path, "&continue=", next);
    absl::StatusOr<KubeResponse> response = client_->Do("GET", path);
    if (!response.ok()) return response.status();
    if (response->code != 200) return response->ToStatus();
    json list = json::parse(response->body, nullptr, false);
    if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) {
      return absl::InternalError(absl::StrCat("GET ", worker->path, ": no list in the answer"));
    }
    for (const json& item : list["items"]) {
      (*seen)[NameOf(item)] =
          Seen{Label(item), ObjectDigest(item), StatusDigest(item), IsHookRun(item)};
    }
    *version = VersionOf(list);
    next = list["metadata"].is_object() ? list["metadata"].value("continue", "") : "";
    if (next.empty()) return absl::OkStatus();
  }
  return worker->stop ? absl::CancelledError("stopped")
                      : absl::ResourceExhaustedError(absl::StrCat(
                            "GET ", worker->path, ": more than ", kMaxPages, " pages"));
}

bool DriftWatcher::Follow(Worker* worker, std::map<std::string, Seen>* seen, std::string* version,
                          absl::Status* error) {
  const int64_t timeout_seconds = absl::ToInt64Seconds(options_.watch_timeout);
  const std::string path =
      absl::StrCat(worker->path, "?watch=true&allowWatchBookmarks=true&labelSelector=", Selector(),
                   "&resourceVersion=", *version, "&timeoutSeconds=", timeout_seconds);
  std::string pending;
  bool relist = false;
  auto on_line = [&](absl::string_view line) {
    json event = json::parse(line, nullptr, false);
    if (!event.is_object() || !event.contains("type") || !event["type"].is_string()) {
      *error = absl::InternalError(absl::StrCat("watch of ", worker->path, ": an event not read"));
      relist = true;
      return false;
    }
    const std::string type = event["type"];
    const json& object = event.value("object", json());
    if (type == "ERROR") {
      const int code = object.is_object() ? object.value("code", 0) : 0;
      if (code != 410) {
        *error = absl::UnavailableError(
            absl::StrCat("watch of ", worker->path, ": ",
                         object.is_object() ? object.value("message", "an error") : "an error"));
      }
      relist = true;  // 410 Expired: what it followed from is compacted away
      return false;
    }
    if (const std::string at = VersionOf(object); !at.empty()) *version = at;
    if (type == "BOOKMARK") return true;
    const std::string name = NameOf(object);
    auto it = seen->find(name);
    if (type == "DELETED") {
      const bool hook = IsHookRun(object) || (it != seen->end() && it->second.hook);
      if (!hook) Note(Label(object));  // a hook's run goes on purpose
      if (it != seen->end()) {
        if (!hook) Note(it->second.bundle);
        seen->erase(it);
      }
      return true;
    }
    Seen now{Label(object), ObjectDigest(object), StatusDigest(object), IsHookRun(object)};
    if (now.hook || (it != seen->end() && it->second.hook)) {
      // A hook's run: its progress (a Job finishing) is all there is to hear of it.
      if (it != seen->end() && it->second.status != now.status) Note(now.bundle, /*status=*/true);
      (*seen)[name] = std::move(now);
      return true;
    }
    if (it == seen->end()) {
      // New to the watch: gitfleet created it (or someone labelled it); nothing drifted.
      if (type != "ADDED") Note(now.bundle);
      (*seen)[name] = std::move(now);
      return true;
    }
    if (it->second.digest != now.digest) {
      ContentChanged(worker->collection, name, VersionOf(object), {now.bundle, it->second.bundle});
    } else if (it->second.status != now.status) {
      Note(now.bundle, /*status=*/true);
    }
    it->second = std::move(now);
    return true;
  };
  auto on_data = [&](absl::string_view data) {
    pending.append(data.data(), data.size());
    size_t start = 0;
    for (size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
      if (end > start && !on_line(absl::string_view(pending).substr(start, end - start))) {
        return false;
      }
    }
    pending.erase(0, start);
    if (pending.size() > options_.max_event_bytes) {
      *error = absl::ResourceExhaustedError(absl::StrCat(
          "watch of ", worker->path, ": an event over ", options_.max_event_bytes, " bytes"));
      relist = true;
      return false;
    }
    return true;
  };
  worker->state = State::kWatching;
  absl::StatusOr<KubeResponse> response = client_->Stream(
      path, on_data, [worker] { return worker->stop.load(); },
      options_.watch_timeout + absl::Seconds(30));
  if (!response.ok()) {
    *error = response.status();
    return true;  // the watch is made again from where it was
  }
  if (response->code != 200) {
    *error = response->ToStatus();
    return response->code != 410;
  }
  return !relist;
}

void DriftWatcher::Forbidden(Worker* worker, const absl::Status& status) {
  worker->state = State::kForbidden;
  if (worker->forbidden.exchange(true)) return;  // said already
  if (worker->ns.empty() && worker->namespaced) {
    GF_LOG(WARNING) << "drift watch: " << worker->path << ": " << status.message()
                    << "; watched in each namespace its bundles use instead (asked again every "
                    << absl::FormatDuration(options_.forbidden_retry) << ")";
    Rearrange(worker);
    return;
  }
  GF_LOG(WARNING) << "drift watch: " << worker->path << ": " << status.message()
                  << "; its objects are left to the periodic checks (or to a watch as the "
                     "service account a bundle holding them is applied as)";
}

void DriftWatcher::Run(Worker* worker) {
  std::map<std::string, Seen> seen;
  std::string version;
  bool listed = false;
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (!worker->stop) {
    if (version.empty()) {
      worker->state = State::kStarting;
      std::map<std::string, Seen> fresh;
      absl::Status status = List(worker, &fresh, &version);
      if (worker->stop) return;
      if (!status.ok()) {
        version.clear();
        if (status.code() == absl::StatusCode::kPermissionDenied) {
          Forbidden(worker, status);
          if (!Sleep(worker, options_.forbidden_retry)) return;
        } else {
          GF_LOG(DEBUG) << "drift watch: " << worker->path << ": " << status.message();
          if (!Sleep(worker, backoff.Next())) return;
        }
        continue;
      }
      if (listed) {
        // Changes the watch may have missed: what differs from what it saw.
        for (const auto& [name, before] : seen) {
          auto now = fresh.find(name);
          if (before.hook) {  // a hook's run: its status alone
            if (now != fresh.end() && now->second.status != before.status) {
              Note(before.bundle, /*status=*/true);
            }
            continue;
          }
          if (now == fresh.end() || now->second.digest != before.digest) {
            Note(before.bundle);
          } else if (now->second.status != before.status) {
            Note(before.bundle, /*status=*/true);
          }
          if (now != fresh.end() && now->second.bundle != before.bundle) Note(now->second.bundle);
        }
      }
      seen = std::move(fresh);
      listed = true;
      if (worker->forbidden.exchange(false)) {
        GF_LOG(INFO) << "drift watch: " << worker->path << " may be watched again";
        Rearrange(worker);  // its namespaces' watches stop
      }
      if (version.empty()) {  // a server that gives no resourceVersion cannot be watched
        if (!Sleep(worker, options_.max_backoff)) return;
        continue;
      }
    }
    absl::Status error;
    const bool keep = Follow(worker, &seen, &version, &error);
    if (worker->stop) return;
    if (!keep) version.clear();
    if (error.ok()) {
      backoff.Reset();
      continue;
    }
    if (error.code() == absl::StatusCode::kPermissionDenied) {
      Forbidden(worker, error);
      version.clear();
      if (!Sleep(worker, options_.forbidden_retry)) return;
      continue;
    }
    GF_LOG(DEBUG) << "drift watch: " << worker->path << ": " << error.message();
    worker->state = State::kStarting;
    if (!Sleep(worker, backoff.Next())) return;
  }
}

}  // namespace gitfleet
