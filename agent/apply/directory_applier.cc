#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/apply/applier.h"
#include "common/logging.h"
#include "common/manifest/object.h"
#include "common/manifest/yaml.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// Kubernetes names are DNS subdomains; anything else could escape the directory.
bool SafePart(const std::string& part) {
  if (part.empty() || part == "." || part == ".." || part.size() > 253) return false;
  for (char c : part) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '.' && c != '_' && c != ':') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> DirectoryApplier::PathFor(const v1::ObjectKey& key) const {
  return PathUnder(dir_, key);
}

absl::StatusOr<std::string> DirectoryApplier::PathUnder(const std::string& root,
                                                        const v1::ObjectKey& key) const {
  const std::string& ns = key.namespace_().empty() ? "_cluster" : key.namespace_();
  for (const std::string* part : {&ns, &key.kind(), &key.name()}) {
    if (!SafePart(*part)) {
      return absl::InvalidArgumentError(
          absl::StrCat(KeyDisplay(key), ": \"", *part, "\" is not a valid Kubernetes name"));
    }
  }
  return absl::StrCat(root, "/", ns, "/", key.kind(), "/", key.name(), ".yaml");
}

absl::StatusOr<v1::ObjectKey> DirectoryApplier::CreateHook(const v1::ManifestObject& hook,
                                                           const ApplyContext&) {
  YAML::Node doc;
  try {
    doc = YAML::Load(hook.yaml());
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(KeyDisplay(hook.key()), ": ", e.msg));
  }
  const bool generated = !doc["metadata"]["name"] || doc["metadata"]["name"].IsNull();
  v1::ObjectKey live = hook.key();  // placed as PathFor places objects
  thread_local absl::BitGen bitgen;
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  // A few tries: a generated name that is taken is drawn again, as the API server does.
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (generated) {
      std::string name = hook.key().name().substr(0, 58);
      for (int i = 0; i < 5; ++i) name += kAlphabet[absl::Uniform(bitgen, 0, 27)];
      live.set_name(name);
      doc["metadata"]["name"] = name;
    }
    absl::StatusOr<std::string> path = PathUnder(dir_ + "/_hooks", live);
    if (!path.ok()) return path.status();
    absl::StatusOr<std::string> existing = fs_->ReadFile(*path);
    if (existing.ok()) {
      if (generated) continue;
      return absl::AlreadyExistsError(
          absl::StrCat(KeyDisplay(live), ": a previous run of this hook still exists"));
    }
    if (!absl::IsNotFound(existing.status())) return existing.status();
    absl::StatusOr<std::string> text = EmitBlockYaml(doc);
    if (!text.ok()) return text.status();
    if (absl::Status written = fs_->WriteFileAtomically(*path, *text); !written.ok()) {
      return written;
    }
    return live;
  }
  return absl::AlreadyExistsError(
      absl::StrCat(KeyDisplay(hook.key()), ": no free generated name after 8 tries"));
}

absl::StatusOr<HookStatus> DirectoryApplier::CheckHook(const v1::ObjectKey& live,
                                                       const ApplyContext&) {
  absl::StatusOr<std::string> path = PathUnder(dir_ + "/_hooks", live);
  if (!path.ok()) return path.status();
  absl::StatusOr<std::string> text = fs_->ReadFile(*path);
  if (absl::IsNotFound(text.status())) return HookStatus{HookStatus::kFailed, "its file is gone"};
  if (!text.ok()) return text.status();
  return HookStatus{HookStatus::kSucceeded, "written"};
}

absl::Status DirectoryApplier::DeleteHook(const v1::ObjectKey& live, const ApplyContext&) {
  absl::StatusOr<std::string> path = PathUnder(dir_ + "/_hooks", live);
  if (!path.ok()) return path.status();
  return fs_->DeleteFile(*path, dir_);
}

absl::StatusOr<ApplyResult> DirectoryApplier::Apply(const v1::ManifestObject& object,
                                                    const ApplyContext& context, bool first) {
  absl::StatusOr<std::string> path = PathFor(object.key());
  if (!path.ok()) return path.status();
  ApplyResult result;
  // A file says nothing of who wrote it: the agent's inventories do. As on Kubernetes,
  // another bundle's object is not taken over unless that bundle let go of it.
  if (first && context.holder) {
    const std::string owner = context.holder(object.key());
    if (!owner.empty() && owner != context.bundle) {
      if (!context.let_go || !context.let_go(owner, object.key())) {
        return absl::FailedPreconditionError(
            absl::StrCat("bundle ", owner, " already manages this object; it is not taken over"));
      }
      result.taken_from = owner;
    }
  }
  absl::StatusOr<std::string> existing = fs_->ReadFile(*path);
  if (absl::IsNotFound(existing.status())) {
    result.created = true;
  } else if (!existing.ok()) {
    return existing.status();
  } else if (*existing == object.yaml()) {
    return result;  // as it should be: not written again
  }
  if (absl::Status written = fs_->WriteFileAtomically(*path, object.yaml()); !written.ok()) {
    return written;
  }
  return result;
}

absl::StatusOr<RemovalPreview> DirectoryApplier::ReadForRemoval(const v1::ObjectKey& key,
                                                                std::string* path) {
  absl::StatusOr<std::string> where = PathFor(key);
  if (!where.ok()) return where.status();
  *path = *where;
  absl::StatusOr<std::string> live = fs_->ReadFile(*where);
  if (absl::IsNotFound(live.status())) return RemovalPreview{false, ""};
  if (!live.ok()) return live.status();
  YAML::Node annotations;
  try {
    YAML::Node doc = YAML::Load(*live);
    if (doc.IsMap() && doc["metadata"].IsMap()) annotations = doc["metadata"]["annotations"];
  } catch (const YAML::Exception&) {
    // Not YAML any more (edited by hand): nothing in it asks to keep it.
  }
  std::string kept = KeptByAnnotation([&](const char* name) {
    if (!annotations.IsMap() || !annotations[name].IsScalar()) return std::string();
    return annotations[name].Scalar();
  });
  if (!kept.empty()) kept = absl::StrCat("it is annotated ", kept);
  return RemovalPreview{true, std::move(kept)};
}

absl::Status DirectoryApplier::Delete(const v1::ObjectKey& key, const ApplyContext&) {
  std::string path;
  absl::StatusOr<RemovalPreview> removal = ReadForRemoval(key, &path);
  if (!removal.ok()) return removal.status();
  if (!removal->exists) return absl::OkStatus();
  if (!removal->kept.empty()) {
    GF_LOG(INFO) << "prune: " << KeyDisplay(key) << ": " << removal->kept << "; leaving it";
    return absl::OkStatus();
  }
  return fs_->DeleteFile(path, dir_);
}

absl::StatusOr<RemovalPreview> DirectoryApplier::PreviewRemoval(const v1::ObjectKey& key,
                                                                const ApplyContext& context,
                                                                bool created) {
  if (!created) return Applier::PreviewRemoval(key, context, created);
  std::string path;
  return ReadForRemoval(key, &path);
}

absl::StatusOr<bool> DirectoryApplier::LeftBehind(const v1::ObjectKey& key, const ApplyContext&) {
  absl::StatusOr<std::string> path = PathFor(key);
  if (!path.ok()) return path.status();
  absl::StatusOr<std::string> live = fs_->ReadFile(*path);
  if (absl::IsNotFound(live.status())) return false;
  if (!live.ok()) return live.status();
  return true;
}

absl::StatusOr<bool> DirectoryApplier::InSync(const v1::ManifestObject& object,
                                              const ApplyContext&) {
  absl::StatusOr<std::string> path = PathFor(object.key());
  if (!path.ok()) return path.status();
  absl::StatusOr<std::string> live = fs_->ReadFile(*path);
  if (absl::IsNotFound(live.status())) return false;
  if (!live.ok()) return live.status();
  return *live == object.yaml();
}

v1::ResourceHealth DirectoryApplier::Health(const v1::ManifestObject& object,
                                            const ApplyContext& context) {
  v1::ResourceHealth health;
  *health.mutable_key() = object.key();
  absl::StatusOr<bool> in_sync = InSync(object, context);
  if (!in_sync.ok()) {
    health.set_health(v1::HEALTH_STATE_UNKNOWN);
    health.set_message(std::string(in_sync.status().message()));
  } else if (!*in_sync) {
    absl::StatusOr<std::string> path = PathFor(object.key());
    bool exists = path.ok() && fs_->ReadFile(*path).ok();
    health.set_health(exists ? v1::HEALTH_STATE_DEGRADED : v1::HEALTH_STATE_MISSING);
    health.set_message(exists ? "file differs from the desired object" : "file is missing");
  } else {
    health.set_health(v1::HEALTH_STATE_HEALTHY);
  }
  return health;
}

}  // namespace gitfleet
